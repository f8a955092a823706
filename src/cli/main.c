/* ward: the command table. Each command parses its own flags and prints its
 * own --help; nothing else lives here. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "ward/util.h"

static const struct ward_cmd commands[] = {
    {"encrypt", cmd_encrypt_main,
        "encrypt a file, stream or directory (AWS Encryption SDK format)"},
    {"decrypt", cmd_decrypt_main,
        "decrypt a message; outputs appear only once fully authenticated"},
    {"attest", cmd_attest_main,
        "verify an attestation document (AWS Nitro or a ward sandbox)"},
    {"ca", cmd_ca_main,
        "create the local attestation root for sandbox enclaves"},
    {"build-enclave", cmd_build_enclave_main,
        "build an enclave image (EIF) from a directory or container image"},
    {"describe-eif", cmd_describe_eif_main,
        "check an enclave image file and print its measurements"},
    {"pcr", cmd_pcr_main,
        "print the PCR of a file or of a signing certificate"},
    {"kms", cmd_kms_main,
        "the local key service (AWS KMS API, key policies, Recipient)"},
    {"run-enclave", cmd_run_enclave_main,
        "start an enclave (sandbox here, nitro-cli on Nitro hosts)"},
    {"describe-enclaves", cmd_describe_enclaves_main,
        "list running enclaves as JSON"},
    {"terminate-enclave", cmd_terminate_enclave_main,
        "stop an enclave and remove what it held"},
    {"console", cmd_console_main, "stream a debug-mode enclave's console"},
    {"proxy", cmd_proxy_main,
        "relay enclaves' vsock connections to an allowlisted TCP server"},
    {"agent", cmd_agent_main,
        "the in-enclave server (attestation, workspace, exec)"},
    {"sync", cmd_sync_main, "mount an enclave's workspace (FUSE)"},
    {"cp", cmd_cp_main, "copy files to or from an enclave's workspace"},
    {"exec", cmd_exec_main,
        "decrypt an application inside an enclave and run it"},
    {"infer", cmd_infer_main,
        "predictions from an encrypted model inside an enclave"},
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: ward COMMAND [OPTIONS] [ARGS]\n"
	    "       ward COMMAND --help\n"
	    "       ward --version\n\n"
	    "ward ships encrypted applications and models to enclaves whose measured\nimage a key policy names. Commands:\n\n");
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(
		    f, "  %-17s %s\n", commands[i].name, commands[i].summary);
	fprintf(f,
	    "\nExit status: 0 on success; otherwise a code naming the failure\n(see ward(1), EXIT STATUS). Documentation: docs/ in the source tree.\n");
}

int
cli_fail(const char *cmd, int r)
{
	fprintf(stderr, "ward %s: %s\n", cmd, ward_errmsg());
	return ward_exit_code(r);
}

void
cli_verbosity(int delta)
{
	int level = (int)ward_log_get_level() + delta;

	if (level < WARD_LOG_ERROR)
		level = WARD_LOG_ERROR;
	if (level > WARD_LOG_DEBUG)
		level = WARD_LOG_DEBUG;
	ward_log_set_level((enum ward_log_level)level);
}

int
main(int argc, char **argv)
{
	const char *name;

	if (argc < 2) {
		usage(stderr);
		return WARD_EUSAGE;
	}
	name = argv[1];
	if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 ||
	    strcmp(name, "help") == 0) {
		if (argc > 2 && strcmp(name, "help") == 0) {
			char help[] = "--help";
			char *sub[] = {argv[2], help, NULL};

			for (size_t i = 0; i < NCOMMANDS; i++)
				if (strcmp(argv[2], commands[i].name) == 0)
					return commands[i].main(2, sub);
			fprintf(
			    stderr, "ward: unknown command '%s'\n", argv[2]);
			return WARD_EUSAGE;
		}
		usage(stdout);
		return 0;
	}
	if (strcmp(name, "--version") == 0 || strcmp(name, "version") == 0) {
		printf("ward %s\n", WARD_VERSION);
		return 0;
	}
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(name, commands[i].name) == 0) {
			int status;

			/* a signal becomes an error, the command cleans up,
			 * then ward dies of the signal as expected */
			ward_signals_install();
			status = commands[i].main(argc - 1, argv + 1);
			ward_signals_reraise();
			return status;
		}
	fprintf(
	    stderr, "ward: unknown command '%s' (try 'ward --help')\n", name);
	return WARD_EUSAGE;
}
