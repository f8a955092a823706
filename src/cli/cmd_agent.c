/* ward agent: the in-enclave server (src/agent); flags to its options. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ward/agent.h"
#include "ward/util.h"

static const char agent_help[] =
    "usage: ward agent [--listen ADDR] [--workspace DIR] [--workspace-size N]\n"
    "                  [--kms-proxy ADDR] [--ca-file PEM] [--apps-dir DIR]\n"
    "                  [--nsm PATH] [--max-connections N] [--app-key ARN]...\n"
    "                  [--io-timeout S] [--infer-input-max N]\n"
    "                  [--model-cache N] [--model-ttl S] [-v|-q]\n"
    "\n"
    "The server inside an enclave: the default command of images that\n"
    "ward build-enclave makes. The host talks to it with ward attest,\n"
    "ward sync, ward cp and ward exec, over the protocol in\n"
    "docs/protocol.md (length-prefixed CBOR frames). It answers:\n"
    "  attestation   a document from the enclave's security module, with\n"
    "                the host's nonce, user data and public key in it\n"
    "  workspace     file operations on a directory in enclave memory\n"
    "  exec          decrypt an application (a ward encrypt'ed directory)\n"
    "                with a key KMS releases only to this enclave's\n"
    "                attested measurements, run it, stream its output\n"
    "  infer         predictions from an encrypted model (ward infer),\n"
    "                decrypted once the same way and kept only in memory\n"
    "Several hosts' connections are served at once. SIGTERM or SIGINT ends\n"
    "the agent (exit 0): running apps are killed and their files wiped.\n"
    "\n"
    "  --listen ADDR          where to listen (default vsock:ANY:5000, i.e.\n"
    "                         vsock port 5000; also unix:PATH, tcp:HOST:PORT)\n"
    "  --workspace DIR        the workspace (default /workspace; created\n"
    "                         0700). Inside an enclave it lives in memory\n"
    "  --workspace-size N     bound on what the workspace holds (bytes, or\n"
    "                         with K/M/G; default half of its filesystem)\n"
    "  --kms-proxy ADDR       where ward proxy relays KMS (default\n"
    "                         vsock:3:8000: the parent, port 8000)\n"
    "  --ca-file PEM          TLS roots for KMS over https (default: the\n"
    "                         system's)\n"
    "  --app-key ARN          a KMS key (ARN) application bundles may be\n"
    "                         encrypted under (repeatable). Put it in the\n"
    "                         image's command (build-enclave --cmd), so it is\n"
    "                         part of PCR0: without it the host may run\n"
    "                         bundles under keys of its own beside yours\n"
    "  --apps-dir DIR         where decrypted apps are unpacked, each in a\n"
    "                         private directory wiped after it exits\n"
    "                         (default /run/ward-apps)\n"
    "  --nsm PATH             the security module (default $WARD_NSM, else\n"
    "                         /dev/nsm)\n"
    "  --max-connections N    at once (default 64); more are refused with\n"
    "                         Busy\n"
    "  --io-timeout S         end a connection whose host stalls inside a\n"
    "                         frame or stops reading for S seconds\n"
    "                         (default 30)\n"
    "  --infer-input-max N    the input one infer request may send (bytes,\n"
    "                         or with K/M/G; default 64M); all requests'\n"
    "                         input held at once is bounded by 4 times it\n"
    "  --model-cache N        models kept open at once (default 8)\n"
    "  --model-ttl S          close a model unused for S seconds (default\n"
    "                         3600); a revoked key policy then stops it\n"
    "  --ready-fd N           write \"ready\\n\" to descriptor N once\n"
    "                         listening (for supervisors and tests)\n"
    "  -v, --verbose          more log output (never secrets or payload)\n"
    "  -q, --quiet            errors only\n"
    "  -h, --help\n"
    "\n"
    "Exit status 0 after SIGTERM/SIGINT; 2: bad usage; 3: the workspace or\n"
    "the port could not be used.\n";

enum {
	OPT_LISTEN = 256,
	OPT_WORKSPACE,
	OPT_WS_SIZE,
	OPT_KMS_PROXY,
	OPT_CA_FILE,
	OPT_APPS,
	OPT_NSM,
	OPT_MAXCONN,
	OPT_READY_FD,
	OPT_IO_TIMEOUT,
	OPT_APP_KEY,
	OPT_INFER_MAX,
	OPT_MODEL_CACHE,
	OPT_MODEL_TTL,
};

static const struct option longopts[] = {
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"workspace", required_argument, NULL, OPT_WORKSPACE},
    {"workspace-size", required_argument, NULL, OPT_WS_SIZE},
    {"kms-proxy", required_argument, NULL, OPT_KMS_PROXY},
    {"ca-file", required_argument, NULL, OPT_CA_FILE},
    {"apps-dir", required_argument, NULL, OPT_APPS},
    {"nsm", required_argument, NULL, OPT_NSM},
    {"max-connections", required_argument, NULL, OPT_MAXCONN},
    {"ready-fd", required_argument, NULL, OPT_READY_FD},
    {"io-timeout", required_argument, NULL, OPT_IO_TIMEOUT},
    {"app-key", required_argument, NULL, OPT_APP_KEY},
    {"infer-input-max", required_argument, NULL, OPT_INFER_MAX},
    {"model-cache", required_argument, NULL, OPT_MODEL_CACHE},
    {"model-ttl", required_argument, NULL, OPT_MODEL_TTL},
    {"verbose", no_argument, NULL, 'v'},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

int
cmd_agent_main(int argc, char **argv)
{
	struct ward_agent_opts o = {.ready_fd = -1};
	const char *keys[16];
	size_t nkeys = 0;
	uint64_t v;
	int c, r;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "vqh", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_LISTEN:
			o.listen = optarg;
			break;
		case OPT_WORKSPACE:
			o.workspace = optarg;
			break;
		case OPT_WS_SIZE:
			if ((r = ward_parse_size(optarg, UINT64_MAX, &v)) != 0)
				return cli_fail("agent", r);
			if (v == 0)
				return cli_fail("agent",
				    ward_errf(WARD_EUSAGE,
				        "--workspace-size must be above 0"));
			o.workspace_max = v;
			break;
		case OPT_KMS_PROXY:
			o.kms_proxy = optarg;
			break;
		case OPT_CA_FILE:
			o.ca_file = optarg;
			break;
		case OPT_APPS:
			o.apps_dir = optarg;
			break;
		case OPT_NSM:
			o.nsm = optarg;
			break;
		case OPT_MAXCONN:
			if (ward_parse_size(optarg, 100000, &v) != 0 || v == 0)
				return cli_fail("agent",
				    ward_errf(WARD_EUSAGE,
				        "--max-connections: expected 1 to 100000, got '%s'",
				        ward_quotes(optarg)));
			o.max_conns = (unsigned)v;
			break;
		case OPT_READY_FD:
			/* for tests and supervisors: "ready\n" once listening */
			if ((r = ward_parse_size(optarg, 1 << 20, &v)) != 0)
				return cli_fail("agent", r);
			o.ready_fd = (int)v;
			break;
		case OPT_APP_KEY:
			if (nkeys == sizeof(keys) / sizeof(keys[0]))
				return cli_fail("agent",
				    ward_errf(WARD_EUSAGE,
				        "--app-key: at most %zu keys",
				        sizeof(keys) / sizeof(keys[0])));
			if (strncmp(optarg, "arn:", 4) != 0)
				return cli_fail("agent",
				    ward_errf(WARD_EUSAGE,
				        "--app-key: '%s' is not a key ARN (an alias or id could be re-pointed by whoever controls the account)",
				        ward_quotes(optarg)));
			keys[nkeys++] = optarg;
			break;
		case OPT_IO_TIMEOUT:
			if (ward_parse_size(optarg, 3600, &v) != 0 || v == 0)
				return cli_fail("agent",
				    ward_errf(WARD_EUSAGE,
				        "--io-timeout: expected 1 to 3600 seconds, got '%s'",
				        ward_quotes(optarg)));
			o.io_timeout_s = (unsigned)v;
			break;
		case OPT_INFER_MAX:
			if ((r = ward_parse_size(
			         optarg, UINT64_C(1) << 32, &v)) != 0 ||
			    v == 0)
				return cli_fail("agent",
				    r != 0
				        ? r
				        : ward_errf(WARD_EUSAGE,
				              "--infer-input-max must be above 0"));
			o.infer_input_max = v;
			break;
		case OPT_MODEL_CACHE:
			if (ward_parse_size(optarg, 1024, &v) != 0 || v == 0)
				return cli_fail("agent",
				    ward_errf(WARD_EUSAGE,
				        "--model-cache: expected 1 to 1024, got '%s'",
				        ward_quotes(optarg)));
			o.model_cache = (unsigned)v;
			break;
		case OPT_MODEL_TTL:
			if (ward_parse_size(optarg, 30 * 86400, &v) != 0 ||
			    v == 0)
				return cli_fail("agent",
				    ward_errf(WARD_EUSAGE,
				        "--model-ttl: expected 1 to 2592000 seconds, got '%s'",
				        ward_quotes(optarg)));
			o.model_ttl_s = (unsigned)v;
			break;
		case 'v':
			cli_verbosity(1);
			break;
		case 'q':
			cli_verbosity(-1);
			break;
		case 'h':
			fputs(agent_help, stdout);
			return 0;
		default:
			return cli_fail("agent",
			    ward_errf(WARD_EUSAGE,
			        "unknown option %s (see ward agent --help)",
			        argv[optind - 1]));
		}
	}
	if (optind < argc)
		return cli_fail("agent",
		    ward_errf(WARD_EUSAGE, "unexpected argument '%s'",
		        ward_quotes(argv[optind])));
	o.app_keys = keys;
	o.app_keyc = nkeys;
	if ((r = ward_agent_run(&o)) != 0)
		return cli_fail("agent", r);
	return 0;
}
