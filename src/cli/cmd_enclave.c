/* ward run-enclave, describe-enclaves, terminate-enclave, console:
 * nitro-cli's commands of the same names (nitro.md §7.2-§7.3) and JSON.
 * On a Nitro parent instance they run nitro-cli; elsewhere the sandbox
 * backend (src/enclave). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "ward/enclave.h"
#include "ward/util.h"

static const char run_help[] =
    "usage: ward run-enclave --eif-path FILE --memory MiB\n"
    "                        (--cpu-count N | --cpu-ids LIST)\n"
    "                        [--enclave-cid CID] [--enclave-name NAME]\n"
    "                        [--debug-mode] [--attach-console]\n"
    "\n"
    "Start an enclave from an image file, as nitro-cli run-enclave does, and\n"
    "print its JSON (EnclaveName, EnclaveID, ProcessID, EnclaveCID,\n"
    "NumberOfCPUs, CPUIDs, MemoryMiB) on standard output.\n"
    "\n"
    "  --eif-path FILE      the image (ward or nitro-cli build-enclave)\n"
    "  --memory MiB         memory for the enclave: at least 64 MiB and 4\n"
    "                       times the image file, as on Nitro\n"
    "  --cpu-count N        CPUs to reserve (from /etc/ward/allocator.yaml)\n"
    "  --cpu-ids LIST       exactly these CPUs (\"1,3\" or \"2-3\")\n"
    "  --enclave-cid CID    its vsock CID (default: the first free from 16;\n"
    "                       1-3 are reserved; the parent is 3)\n"
    "  --enclave-name NAME  default: the image's file name without .eif\n"
    "  --debug-mode         all PCRs read zero in attestation documents, and\n"
    "                       ward console can read the enclave's output\n"
    "  --attach-console     debug mode, then stream the console until the\n"
    "                       enclave ends\n"
    "  -h, --help\n"
    "\n"
    "Backends: on a host with /dev/nitro_enclaves this runs nitro-cli\n"
    "($WARD_NITRO_CLI to name it). Elsewhere it starts a sandbox enclave: a\n"
    "monitor process checks the image's CRC and signature, measures PCR0/1/2/8\n"
    "as Nitro does, unpacks the image's root file system into a private tmpfs\n"
    "of --memory MiB and runs its command in new user, pid, network, mount,\n"
    "IPC, UTS and cgroup namespaces with loopback only, no capabilities, a\n"
    "seccomp filter, a memory bound and a process limit (cgroups; the stderr\n"
    "line says which are in force) and the reserved CPUs. The enclave reaches\n"
    "the host only through vsock (emulated with Unix sockets under\n"
    "/run/ward/vsock) and its NSM (/dev/nsm inside, served by the monitor and\n"
    "signed by the local attestation root, created on first use; see ward ca).\n"
    "PCR3 and PCR4 come from $WARD_HOST_ROLE_ARN and $WARD_HOST_INSTANCE_ID\n"
    "or /etc/ward/host-role-arn and /etc/ward/host-instance-id.\n"
    "\n"
    "The sandbox is not a hypervisor: root on this host can read enclave\n"
    "memory and forge its attestation. See docs/threat-model.md.\n"
    "\n"
    "Exit status 0 once the image's command runs; 2: bad usage or too little\n"
    "memory; 9: beyond what the allocator allows; 5: CRC or signature\n"
    "check failed; 4: not an image; 3: the enclave could not start (the\n"
    "reason is printed).\n";

static const char describe_help[] =
    "usage: ward describe-enclaves\n"
    "\n"
    "Print the running enclaves as nitro-cli does: a JSON array of objects\n"
    "with EnclaveName, EnclaveID, ProcessID (the monitor), EnclaveCID,\n"
    "NumberOfCPUs, CPUIDs, MemoryMiB, State (RUNNING or TERMINATING), Flags\n"
    "(NONE or DEBUG_MODE) and Measurements, and for sandbox enclaves also\n"
    "Backend and Limits (which memory, process and CPU limits are in force).\n"
    "Enclaves whose monitor died are cleaned up and not listed.\n"
    "\n"
    "  -h, --help\n";

static const char terminate_help[] =
    "usage: ward terminate-enclave (--enclave-id ID | --enclave-name NAME |\n"
    "                               --all)\n"
    "\n"
    "Stop enclaves: their processes are killed, and their sockets, mounts and\n"
    "cgroups removed. Prints {\"EnclaveName\", \"EnclaveID\", \"Terminated\"}\n"
    "for each.\n"
    "\n"
    "  --enclave-id ID      the EnclaveID describe-enclaves shows\n"
    "  --enclave-name NAME  or its name\n"
    "  --all                every enclave\n"
    "  -h, --help\n";

static const char console_help[] =
    "usage: ward console (--enclave-id ID | --enclave-name NAME)\n"
    "                    [--disconnect-timeout SECONDS]\n"
    "\n"
    "Stream a debug-mode enclave's console (its command's stdout and stderr:\n"
    "what it wrote so far, up to 64 KiB, then live) until the enclave ends.\n"
    "Enclaves not started with --debug-mode have no console, as on Nitro.\n"
    "\n"
    "  --enclave-id ID, --enclave-name NAME\n"
    "  --disconnect-timeout SECONDS   stop after this long\n"
    "  -h, --help\n";

/* WARD_ENCLAVE_BACKEND=sandbox|nitro overrides the device check. */
static bool
use_nitro(void)
{
	const char *b = getenv("WARD_ENCLAVE_BACKEND");

	if (b != NULL && strcmp(b, "sandbox") == 0)
		return false;
	if (b != NULL && strcmp(b, "nitro") == 0)
		return true;
	return ward_nitro_available();
}

static int
nitro(const char *cmd, int r, char **argv)
{
	int status = 0;

	if (r != 0)
		return cli_fail(cmd, r);
	r = ward_nitro_exec(argv, &status);
	ward_argv_free(argv);
	if (r != 0) {
		fprintf(stderr, "ward %s: %s\n", cmd, ward_errmsg());
		return status != 0 ? status : ward_exit_code(r);
	}
	return 0;
}

static int
parse_u64(const char *flag, const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (s[0] < '0' || s[0] > '9')
		return ward_errf(
		    WARD_EUSAGE, "%s: not a number: %s", flag, ward_quotes(s));
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > max)
		return ward_errf(WARD_EUSAGE, "%s: not a number up to %llu: %s",
		    flag, (unsigned long long)max, ward_quotes(s));
	*out = v;
	return 0;
}

static int
stream_console(const char *cmd, const char *match, int timeout)
{
	uint32_t cid = 0;
	int fd, r;

	if ((r = ward_enclave_console_connect(match, &fd, &cid)) != 0)
		return cli_fail(cmd, r);
	fprintf(stderr, "Connecting to the console for enclave %u...\n", cid);
	fprintf(stderr, "Successfully connected to the console.\n");
	r = ward_enclave_console_stream(fd, timeout, STDOUT_FILENO);
	close(fd);
	return r != 0 ? cli_fail(cmd, r) : 0;
}

int
cmd_run_enclave_main(int argc, char **argv)
{
	static const struct option opts[] = {{"eif-path", 1, NULL, 'e'},
	    {"memory", 1, NULL, 'm'}, {"cpu-count", 1, NULL, 'c'},
	    {"cpu-ids", 1, NULL, 'i'}, {"enclave-cid", 1, NULL, 'C'},
	    {"enclave-name", 1, NULL, 'n'}, {"debug-mode", 0, NULL, 'd'},
	    {"attach-console", 0, NULL, 'a'}, {"help", 0, NULL, 'h'},
	    {NULL, 0, NULL, 0}};
	struct ward_enclave_opts o = {0};
	char *json = NULL, *note = NULL, **nargv = NULL;
	uint64_t v;
	int c, r, console = -1;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'e':
			o.eif_path = optarg;
			break;
		case 'm':
			if ((r = parse_u64("--memory", optarg, 1ull << 30,
			         &o.memory_mib)) != 0)
				return cli_fail("run-enclave", r);
			break;
		case 'c':
			if ((r = parse_u64("--cpu-count", optarg, 4096, &v)) !=
			    0)
				return cli_fail("run-enclave", r);
			o.cpu_count = (unsigned)v;
			if (v == 0)
				return cli_fail("run-enclave",
				    ward_errf(WARD_EUSAGE,
				        "--cpu-count must be at least 1"));
			break;
		case 'i':
			o.cpu_ids = optarg;
			break;
		case 'C':
			if ((r = parse_u64(
			         "--enclave-cid", optarg, UINT32_MAX, &v)) != 0)
				return cli_fail("run-enclave", r);
			o.cid = (uint32_t)v;
			break;
		case 'n':
			o.name = optarg;
			break;
		case 'd':
			o.debug = true;
			break;
		case 'a':
			o.attach_console = true;
			o.debug = true;
			break;
		case 'h':
			fputs(run_help, stdout);
			return 0;
		default:
			fputs(run_help, stderr);
			return ward_exit_code(-WARD_EUSAGE);
		}
	}
	if (optind != argc || o.eif_path == NULL || o.memory_mib == 0) {
		fputs(run_help, stderr);
		return ward_exit_code(-WARD_EUSAGE);
	}
	if (use_nitro())
		return nitro(
		    "run-enclave", ward_nitro_run_argv(&o, &nargv), nargv);
	fprintf(stderr, "Start allocating memory...\n");
	if ((r = ward_enclave_run(&o, &json, &note, &console)) != 0)
		return cli_fail("run-enclave", r);
	fprintf(stderr, "%s\n", note);
	printf("%s\n", json);
	fflush(stdout);
	free(note);
	free(json);
	if (console >= 0) {
		fprintf(stderr, "Successfully connected to the console.\n");
		r = ward_enclave_console_stream(console, 0, STDOUT_FILENO);
		close(console);
		if (r != 0)
			return cli_fail("run-enclave", r);
	}
	return 0;
}

int
cmd_describe_enclaves_main(int argc, char **argv)
{
	char *json = NULL, **nargv = NULL;
	int r;

	if (argc == 2 &&
	    (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
		fputs(describe_help, stdout);
		return 0;
	}
	if (argc != 1) {
		fputs(describe_help, stderr);
		return ward_exit_code(-WARD_EUSAGE);
	}
	if (use_nitro())
		return nitro("describe-enclaves",
		    ward_nitro_describe_argv(&nargv), nargv);
	if ((r = ward_enclave_describe(&json)) != 0)
		return cli_fail("describe-enclaves", r);
	printf("%s\n", json);
	free(json);
	return 0;
}

int
cmd_terminate_enclave_main(int argc, char **argv)
{
	static const struct option opts[] = {{"enclave-id", 1, NULL, 'i'},
	    {"enclave-name", 1, NULL, 'n'}, {"all", 0, NULL, 'a'},
	    {"help", 0, NULL, 'h'}, {NULL, 0, NULL, 0}};
	const char *match = NULL;
	char *json = NULL, **nargv = NULL;
	bool all = false;
	int c, r, given = 0;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
		case 'n':
			match = optarg;
			given++;
			break;
		case 'a':
			all = true;
			given++;
			break;
		case 'h':
			fputs(terminate_help, stdout);
			return 0;
		default:
			fputs(terminate_help, stderr);
			return ward_exit_code(-WARD_EUSAGE);
		}
	}
	if (optind != argc || given != 1) {
		fputs(terminate_help, stderr);
		return ward_exit_code(-WARD_EUSAGE);
	}
	if (use_nitro())
		return nitro("terminate-enclave",
		    ward_nitro_terminate_argv(match, all, &nargv), nargv);
	if ((r = ward_enclave_terminate(match, all, &json)) != 0)
		return cli_fail("terminate-enclave", r);
	fputs(json, stdout);
	free(json);
	return 0;
}

int
cmd_console_main(int argc, char **argv)
{
	static const struct option opts[] = {{"enclave-id", 1, NULL, 'i'},
	    {"enclave-name", 1, NULL, 'n'},
	    {"disconnect-timeout", 1, NULL, 't'}, {"help", 0, NULL, 'h'},
	    {NULL, 0, NULL, 0}};
	const char *match = NULL;
	char **nargv = NULL;
	uint64_t timeout = 0;
	int c, r;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
		case 'n':
			match = optarg;
			break;
		case 't':
			if ((r = parse_u64("--disconnect-timeout", optarg,
			         86400 * 365, &timeout)) != 0)
				return cli_fail("console", r);
			break;
		case 'h':
			fputs(console_help, stdout);
			return 0;
		default:
			fputs(console_help, stderr);
			return ward_exit_code(-WARD_EUSAGE);
		}
	}
	if (optind != argc || match == NULL) {
		fputs(console_help, stderr);
		return ward_exit_code(-WARD_EUSAGE);
	}
	if (use_nitro())
		return nitro("console",
		    ward_nitro_console_argv(match, (int)timeout, &nargv),
		    nargv);
	return stream_console("console", match, (int)timeout);
}
