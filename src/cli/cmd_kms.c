/* ward kms init|add-principal|serve|audit verify|pin: flags to the kmsd
 * module (the server) and the kms client; the work is in src/kmsd. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ward/kms.h"
#include "ward/kmsd.h"

static const char kms_help[] =
    "usage: ward kms init --state DIR [--region R]\n"
    "       ward kms add-principal --state DIR [--account ID] --name NAME\n"
    "                              [--session]\n"
    "       ward kms serve --state DIR [--listen ADDR] [--trust-root PEM]...\n"
    "                      [--threads N] [--max-body BYTES]\n"
    "       ward kms audit verify --state DIR\n"
    "       ward kms pin KEY --pcr0 HEX [--pcr N=HEX]... [--debug-allowed]\n"
    "                    (--state DIR | --endpoint-url URL)\n"
    "\n"
    "A local key service that speaks the AWS KMS API (JSON 1.1 over HTTP,\n"
    "SigV4-signed), evaluates key policies and releases keys to attested\n"
    "enclaves (Recipient). Point the AWS CLI or an SDK at it with\n"
    "--endpoint-url http://ADDR (or AWS_ENDPOINT_URL_KMS) and the printed\n"
    "credentials. See docs/kms.md.\n"
    "\n"
    "  init            create DIR: kms.db (SQLite), root.key (mode 0600),\n"
    "                  audit.log, one account and its admin user; prints\n"
    "                  {\"AccountId\",\"AccessKeyId\",\"SecretAccessKey\",\n"
    "                  \"Region\",\"Arn\"}\n"
    "  add-principal   add user NAME to account ID (created if new; without\n"
    "                  --account a new account); prints the same JSON.\n"
    "                  --session makes temporary credentials with a\n"
    "                  SessionToken every request must carry\n"
    "  serve           serve until SIGTERM/SIGINT; prints one JSON line\n"
    "                  {\"Listen\": ADDR, \"Region\": R} when ready. ADDR is\n"
    "                  HOST:PORT or tcp:HOST:PORT (port 0 picks one; default\n"
    "                  127.0.0.1:4599), unix:PATH or vsock:CID:PORT.\n"
    "                  --trust-root PEM also trusts that local attestation\n"
    "                  root (a sandbox CA's root.pem) for Recipient; the AWS\n"
    "                  Nitro root is always trusted. Policies can tell them\n"
    "                  apart with the ward:AttestationRoot condition key\n"
    "                  (\"aws-nitro\" or \"local\")\n"
    "  audit verify    check the audit log's hash chain; prints {\"Lines\",\n"
    "                  \"Verified\", ...}; exit 5 when it does not verify\n"
    "  pin             rewrite KEY's policy so that only an attested enclave\n"
    "                  with these PCRs (PCR0 as kms:RecipientAttestation:\n"
    "                  ImageSha384) can Decrypt (or ReEncrypt from) KEY:\n"
    "                  a Deny per PCR for everyone else, and an Allow for the\n"
    "                  enclave; Encrypt and GenerateDataKey stay open so the\n"
    "                  owner can still encrypt. Other statements are kept.\n"
    "                  The key's own account can still change the policy\n"
    "                  (there is no IAM layer here). --debug-allowed also\n"
    "                  accepts a debug-mode (all-zero) enclave. Through a\n"
    "                  server (--endpoint-url, AWS credentials as the AWS CLI\n"
    "                  finds them) or on a state directory\n"
    "\n"
    "  -v, --verbose   more log output (serve: one line per request at -vv)\n"
    "  -h, --help\n";

#define usage_err(...) cli_fail("kms", ward_errf(WARD_EUSAGE, __VA_ARGS__))

static void
print_json(json_t *j)
{
	json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', stdout);
	fflush(stdout);
}

enum {
	OPT_STATE = 256,
	OPT_REGION,
	OPT_ACCOUNT,
	OPT_NAME,
	OPT_SESSION,
	OPT_LISTEN,
	OPT_TRUST,
	OPT_THREADS,
	OPT_MAXBODY,
	OPT_PCR0,
	OPT_PCR,
	OPT_DEBUG,
	OPT_ENDPOINT,
	OPT_PROFILE,
};

static const struct option longopts[] = {
    {"state", required_argument, NULL, OPT_STATE},
    {"region", required_argument, NULL, OPT_REGION},
    {"account", required_argument, NULL, OPT_ACCOUNT},
    {"name", required_argument, NULL, OPT_NAME},
    {"session", no_argument, NULL, OPT_SESSION},
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"trust-root", required_argument, NULL, OPT_TRUST},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"max-body", required_argument, NULL, OPT_MAXBODY},
    {"pcr0", required_argument, NULL, OPT_PCR0},
    {"pcr", required_argument, NULL, OPT_PCR},
    {"debug-allowed", no_argument, NULL, OPT_DEBUG},
    {"endpoint-url", required_argument, NULL, OPT_ENDPOINT},
    {"profile", required_argument, NULL, OPT_PROFILE},
    {"verbose", no_argument, NULL, 'v'},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

#define MAX_TRUST 8
#define PIN_MAX 32

struct args {
	const char *state, *region, *account, *name, *listen, *endpoint,
	    *profile;
	const char *trust[MAX_TRUST];
	size_t ntrust;
	unsigned long threads, max_body;
	bool session, debug_allowed;
	struct ward_pcr_pin pins[PIN_MAX];
	size_t npins;
	bool have_pcr0;
};

static int
add_pin(struct args *a, unsigned idx, const char *hex)
{
	size_t n = strlen(hex);

	if (n != 96 || strspn(hex, "0123456789abcdefABCDEF") != n)
		return ward_errf(WARD_EUSAGE,
		    "PCR%u value must be 96 hex digits (SHA-384), got %zu "
		    "characters",
		    idx, n);
	for (size_t i = 0; i < a->npins; i++)
		if (a->pins[i].index == idx)
			return ward_errf(WARD_EUSAGE, "PCR%u given twice", idx);
	if (a->npins == PIN_MAX)
		return ward_errf(WARD_EUSAGE, "too many --pcr");
	a->pins[a->npins].index = idx;
	for (size_t i = 0; i <= n; i++)
		a->pins[a->npins].hex[i] =
		    (char)(hex[i] >= 'A' && hex[i] <= 'F' ? hex[i] + 32
		                                          : hex[i]);
	a->npins++;
	if (idx == 0)
		a->have_pcr0 = true;
	return 0;
}

static int
parse(int argc, char **argv, struct args *a, int *first_pos)
{
	int c, r;
	char *end;

	memset(a, 0, sizeof(*a));
	optind = 1;
	while ((c = getopt_long(argc, argv, "vqh", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_STATE:
			a->state = optarg;
			break;
		case OPT_REGION:
			a->region = optarg;
			break;
		case OPT_ACCOUNT:
			a->account = optarg;
			break;
		case OPT_NAME:
			a->name = optarg;
			break;
		case OPT_SESSION:
			a->session = true;
			break;
		case OPT_LISTEN:
			a->listen = optarg;
			break;
		case OPT_TRUST:
			if (a->ntrust == MAX_TRUST)
				return ward_errf(WARD_EUSAGE,
				    "at most %d --trust-root", MAX_TRUST);
			a->trust[a->ntrust++] = optarg;
			break;
		case OPT_THREADS:
			a->threads = strtoul(optarg, &end, 10);
			if (*end || a->threads == 0 || a->threads > 256)
				return ward_errf(
				    WARD_EUSAGE, "--threads: 1 to 256");
			break;
		case OPT_MAXBODY:
			a->max_body = strtoul(optarg, &end, 10);
			if (*end || a->max_body < 4096 ||
			    a->max_body > 64ul * 1024 * 1024)
				return ward_errf(WARD_EUSAGE,
				    "--max-body: 4096 to 67108864 bytes");
			break;
		case OPT_PCR0:
			if ((r = add_pin(a, 0, optarg)) != 0)
				return r;
			break;
		case OPT_PCR: {
			unsigned long idx = strtoul(optarg, &end, 10);
			if (end == optarg || *end != '=' || idx >= PIN_MAX)
				return ward_errf(WARD_EUSAGE,
				    "--pcr takes N=HEX with N from 0 to 31");
			if ((r = add_pin(a, (unsigned)idx, end + 1)) != 0)
				return r;
			break;
		}
		case OPT_DEBUG:
			a->debug_allowed = true;
			break;
		case OPT_ENDPOINT:
			a->endpoint = optarg;
			break;
		case OPT_PROFILE:
			a->profile = optarg;
			break;
		case 'v':
			cli_verbosity(1);
			break;
		case 'q':
			cli_verbosity(-1);
			break;
		case 'h':
			fputs(kms_help, stdout);
			return 1;
		default:
			return ward_errf(WARD_EUSAGE, "see 'ward kms --help'");
		}
	}
	*first_pos = optind;
	return 0;
}

static void
ready(void *ctx, const char *addr)
{
	const char *region = ctx;
	json_t *j = json_pack("{s:s, s:s}", "Listen", addr, "Region", region);

	json_dumpf(j, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
	fputc('\n', stdout);
	fflush(stdout);
	json_decref(j);
}

static int
need_state(const struct args *a, const char *sub)
{
	if (a->state == NULL)
		return ward_errf(WARD_EUSAGE, "kms %s needs --state DIR", sub);
	return 0;
}

/* pin through a server: DescribeKey (for the ARN and account),
 * GetKeyPolicy, rewrite, PutKeyPolicy. */
static int
pin_remote(const struct args *a, const char *key, char **policy_out)
{
	struct ward_kms_client_opts o;
	struct ward_kms_client *c = NULL;
	struct ward_kms_error e;
	json_t *rq = NULL, *desc = NULL, *got = NULL, *put = NULL, *meta;
	const char *arn, *account, *policy;
	int r;

	memset(&o, 0, sizeof(o));
	o.endpoint_url = a->endpoint;
	o.region = a->region;
	o.profile = a->profile;
	if ((r = ward_kms_client_new(&c, &o)) != 0)
		goto out;
	rq = json_pack("{s:s}", "KeyId", key);
	if ((r = ward_kms_call(c, "DescribeKey", rq, &desc, &e)) != 0)
		goto out;
	meta = json_object_get(desc, "KeyMetadata");
	arn = json_string_value(json_object_get(meta, "Arn"));
	account = json_string_value(json_object_get(meta, "AWSAccountId"));
	if (arn == NULL || account == NULL) {
		r = ward_errf(WARD_EFORMAT,
		    "DescribeKey: no Arn or AWSAccountId in the answer");
		goto out;
	}
	json_decref(rq);
	rq = json_pack("{s:s, s:s}", "KeyId", arn, "PolicyName", "default");
	if ((r = ward_kms_call(c, "GetKeyPolicy", rq, &got, &e)) != 0)
		goto out;
	if ((policy = json_string_value(json_object_get(got, "Policy"))) ==
	    NULL) {
		r = ward_errf(WARD_EFORMAT, "GetKeyPolicy: no Policy");
		goto out;
	}
	if ((r = ward_policy_pin(policy, strlen(policy), account, a->pins,
	         a->npins, a->debug_allowed, policy_out, &e)) != 0)
		goto out;
	json_decref(rq);
	rq = json_pack("{s:s, s:s, s:s}", "KeyId", arn, "PolicyName", "default",
	    "Policy", *policy_out);
	r = ward_kms_call(c, "PutKeyPolicy", rq, &put, &e);
out:
	json_decref(rq);
	json_decref(desc);
	json_decref(got);
	json_decref(put);
	ward_kms_client_free(c);
	return r;
}

int
cmd_kms_main(int argc, char **argv)
{
	struct args a;
	const char *sub;
	json_t *out = NULL;
	int r, pos = 0;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0) {
		fputs(kms_help, argc < 2 ? stderr : stdout);
		return argc < 2 ? WARD_EUSAGE : 0;
	}
	sub = argv[1];
	if (strcmp(sub, "audit") == 0) {
		if (argc < 3 || strcmp(argv[2], "verify") != 0)
			return usage_err(
			    "kms audit: the subcommand is 'verify'");
		argc--;
		argv++;
	}
	if ((r = parse(argc - 1, argv + 1, &a, &pos)) != 0)
		return r > 0 ? 0 : cli_fail("kms", r);
	pos++; /* index into argv */

	if (strcmp(sub, "init") == 0) {
		if (pos < argc)
			return usage_err(
			    "kms init: unexpected %s", ward_quotes(argv[pos]));
		if ((r = need_state(&a, "init")) != 0 ||
		    (r = ward_kmsd_init(a.state, a.region, &out)) != 0)
			return cli_fail("kms init", r);
	} else if (strcmp(sub, "add-principal") == 0) {
		if ((r = need_state(&a, "add-principal")) != 0)
			return cli_fail("kms add-principal", r);
		if (a.name == NULL)
			return usage_err("kms add-principal needs --name");
		if ((r = ward_kmsd_add_principal(
		         a.state, a.account, a.name, a.session, &out)) != 0)
			return cli_fail("kms add-principal", r);
	} else if (strcmp(sub, "serve") == 0) {
		struct ward_kmsd_serve_opts o;
		char region[64] = "";

		if ((r = need_state(&a, "serve")) != 0)
			return cli_fail("kms serve", r);
		memset(&o, 0, sizeof(o));
		o.dir = a.state;
		o.listen = a.listen;
		o.trust_roots = a.trust;
		o.ntrust_roots = a.ntrust;
		o.threads = (unsigned)a.threads;
		o.max_body = a.max_body;
		o.ready = ready;
		o.ready_ctx = region;
		if ((r = ward_kmsd_region(a.state, region, sizeof(region))) !=
		        0 ||
		    (r = ward_kmsd_serve(&o)) != 0)
			return cli_fail("kms serve", r);
		return 0;
	} else if (strcmp(sub, "audit") == 0) {
		if ((r = need_state(&a, "audit verify")) != 0)
			return cli_fail("kms audit verify", r);
		r = ward_kmsd_audit_verify(a.state, &out);
		if (out != NULL)
			print_json(out);
		json_decref(out);
		return r != 0 ? cli_fail("kms audit verify", r) : 0;
	} else if (strcmp(sub, "pin") == 0) {
		char *policy = NULL;

		if (pos >= argc || pos + 1 < argc)
			return usage_err("kms pin needs exactly one KEY");
		if (!a.have_pcr0)
			return usage_err(
			    "kms pin needs --pcr0 HEX (the image's "
			    "PCR0 from build-enclave)");
		if ((a.state == NULL) == (a.endpoint == NULL))
			return usage_err(
			    "kms pin needs --state DIR or --endpoint-url URL");
		r = a.state != NULL ? ward_kmsd_pin(a.state, argv[pos], a.pins,
		                          a.npins, a.debug_allowed, &policy)
		                    : pin_remote(&a, argv[pos], &policy);
		if (r != 0) {
			free(policy);
			return cli_fail("kms pin", r);
		}
		fputs(policy, stdout);
		fputc('\n', stdout);
		free(policy);
		return 0;
	} else {
		return usage_err("unknown subcommand %s (see ward kms --help)",
		    ward_quotes(sub));
	}
	print_json(out);
	json_decref(out);
	return 0;
}
