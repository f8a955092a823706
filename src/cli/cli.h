/* Private to the ward binary: the subcommand table and shared helpers. */
#ifndef WARD_CLI_H
#define WARD_CLI_H

#include <stdbool.h>

struct ward_cmd {
	const char *name;
	int (*main)(int argc, char **argv);
	const char *summary;
};

int cmd_encrypt_main(int argc, char **argv);
int cmd_decrypt_main(int argc, char **argv);
int cmd_attest_main(int argc, char **argv);
int cmd_ca_main(int argc, char **argv);
int cmd_build_enclave_main(int argc, char **argv);
int cmd_describe_eif_main(int argc, char **argv);
int cmd_pcr_main(int argc, char **argv);
int cmd_kms_main(int argc, char **argv);
int cmd_run_enclave_main(int argc, char **argv);
int cmd_describe_enclaves_main(int argc, char **argv);
int cmd_terminate_enclave_main(int argc, char **argv);
int cmd_console_main(int argc, char **argv);
int cmd_proxy_main(int argc, char **argv);
int cmd_agent_main(int argc, char **argv);
/* cmd_client.c */
int cmd_sync_main(int argc, char **argv);
int cmd_cp_main(int argc, char **argv);
int cmd_exec_main(int argc, char **argv);
int cmd_infer_main(int argc, char **argv);

/* Print "ward CMD: message" for a failed call and return its exit code. */
int cli_fail(const char *cmd, int r);
/* Common flags: -v/--verbose, -q/--quiet adjust the log level. */
void cli_verbosity(int delta);

#endif
