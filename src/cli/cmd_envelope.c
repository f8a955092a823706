/* ward encrypt, ward decrypt: flags to keyrings and paths; the work is in
 * the envelope module. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ward/envelope.h"
#include "ward/kms.h"

static const char encrypt_help[] =
    "usage: ward encrypt KEY... [--context K=V]... [--suite 0478|0578]\n"
    "                    [--frame-size N] [-o OUT] [-f] [--progress] [PATH|-]\n"
    "                    [--endpoint-url URL] [--region R] [--profile P]\n"
    "\n"
    "Encrypt a file, standard input or a directory into an AWS Encryption SDK\n"
    "message (v2, key-committing suite). Any AWS Encryption SDK can decrypt it\n"
    "with the same key. A directory is packed as a tar archive first and\n"
    "restored by 'ward decrypt -o DIR'.\n"
    "\n"
    "Keys (at least one; several give one message any of them opens; the first\n"
    "generates the data key):\n"
    "  --key-id K              AWS KMS key: key ARN, key id, alias/NAME or alias\n"
    "                          ARN (repeatable); its data key is stored under the\n"
    "                          key ARN KMS returns, which decryption needs\n"
    "  --raw-key FILE          raw AES wrapping key: a file of exactly 16, 24\n"
    "                          or 32 bytes (make one: head -c 32 /dev/urandom)\n"
    "  --raw-rsa-public PEM    RSA public key to encrypt to\n"
    "  --raw-rsa-private PEM   RSA private key (its public half is used)\n"
    "  These apply to the raw key given just before them:\n"
    "  --key-namespace NS      key namespace (default: ward)\n"
    "  --key-name NAME         key name (default: raw-aes or raw-rsa)\n"
    "  --rsa-padding P         oaep-sha256 (default), oaep-sha1, oaep-sha384,\n"
    "                          oaep-sha512\n"
    "  Decryption needs the same namespace and name as encryption.\n"
    "\n"
    "Options:\n"
    "  --context K=V           encryption context pair, bound to the message and\n"
    "                          stored in its header in clear (repeatable)\n"
    "  --suite ID              0478 (default: AES-256-GCM, HKDF-SHA512, key\n"
    "                          commitment) or 0578 (the same plus an ECDSA P-384\n"
    "                          signature)\n"
    "  --frame-size N          plaintext bytes per frame (default 4096; K, M\n"
    "                          suffixes; at most 256M)\n"
    "  -o, --output OUT        output file; '-' for standard output. Default:\n"
    "                          PATH.ward, or standard output for standard input\n"
    "  -f, --force             replace OUT if it exists\n"
    "  --progress              show progress even when stderr is not a terminal\n"
    "  -q, --quiet / -v, --verbose\n"
    "  -h, --help\n"
    "\n"
    "AWS KMS (as the AWS CLI; only with --key-id):\n"
    "  --endpoint-url URL      KMS endpoint, http:// or https:// (default:\n"
    "                          AWS_ENDPOINT_URL_KMS, AWS_ENDPOINT_URL, else\n"
    "                          https://kms.REGION.amazonaws.com)\n"
    "  --region R              AWS region (default: AWS_REGION,\n"
    "                          AWS_DEFAULT_REGION, the profile's region)\n"
    "  --profile P             credentials and region from profile P of\n"
    "                          ~/.aws/credentials and ~/.aws/config instead of\n"
    "                          AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (default:\n"
    "                          those, else AWS_PROFILE or 'default', else the\n"
    "                          EC2 instance metadata service)\n"
    "  The encryption context is sent to KMS with each request.\n"
    "\n"
    "The output file appears only when complete. Examples:\n"
    "  ward encrypt --raw-key model.key model.json            # -> model.json.ward\n"
    "  ward encrypt --raw-key k --context tenant=a -o app.ward app/\n"
    "  tar c data | ward encrypt --raw-rsa-public vendor.pem > data.ward\n"
    "  ward encrypt --key-id alias/models --endpoint-url http://127.0.0.1:4599 \\\n"
    "      --region us-east-1 model.json\n";

static const char decrypt_help[] =
    "usage: ward decrypt [KEY...] [--context K=V]... [-o OUT] [-f] [PATH|-]\n"
    "                    [--endpoint-url URL] [--region R] [--profile P]\n"
    "\n"
    "Decrypt an AWS Encryption SDK message made by ward or any AWS Encryption\n"
    "SDK. The header, every frame and any signature are authenticated; a file\n"
    "or directory output appears only after the whole message authenticated,\n"
    "and nothing is left behind on failure.\n"
    "\n"
    "Keys (any that opens the message will do):\n"
    "  --key-id ARN            AWS KMS key (repeatable): only the message's data\n"
    "                          keys for this key ARN are sent to KMS (the AWS\n"
    "                          Encryption SDK's strict mode, which takes key\n"
    "                          ARNs). An alias or key id is also accepted: each\n"
    "                          aws-kms data key is then sent to KMS naming it,\n"
    "                          and KMS refuses those of other keys\n"
    "  --raw-key FILE          raw AES wrapping key (16, 24 or 32 bytes)\n"
    "  --raw-rsa-private PEM   RSA private key\n"
    "  --key-namespace NS, --key-name NAME, --rsa-padding P\n"
    "                          as for encrypt, applying to the raw key before\n"
    "                          them (padding also accepts pkcs1 for decryption)\n"
    "  With no key given, a message with AWS KMS data keys is decrypted in\n"
    "  discovery mode: KMS is asked to open each of them whose key is in the\n"
    "  region, and the key policy decides.\n"
    "\n"
    "Options:\n"
    "  --context K=V           require this pair: the message must carry it, or\n"
    "                          (Encryption SDK 'required encryption context')\n"
    "                          have been bound to it at encryption (repeatable)\n"
    "  -o, --output OUT        output file, or directory for a directory message;\n"
    "                          '-' for standard output. Default: PATH without\n"
    "                          its .ward suffix, or standard output for stdin\n"
    "  -f, --force             replace OUT if it is an existing file\n"
    "  --allow-legacy-suites   accept v1 messages (suites without key commitment)\n"
    "  --max-edks N            refuse messages with more data keys (default 64)\n"
    "  --max-frame-size N      refuse larger frames (default and limit 256M)\n"
    "  --max-entries N         directory restore: entry limit (default 1000000)\n"
    "  --max-size N            directory restore: byte limit (default 64G)\n"
    "  --progress, -q, -v, -h  as for encrypt\n"
    "  --endpoint-url URL, --region R, --profile P\n"
    "                          AWS KMS, as for encrypt\n"
    "\n"
    "Standard output streams: each regular frame is written once it\n"
    "authenticates; the last frame only after the signature and the end of\n"
    "the message verify. On failure earlier frames may already have been\n"
    "written: check the exit status (in shells, set -o pipefail).\n"
    "\n"
    "Exit status: 0 ok; 3 I/O error (KMS unreachable); 4 malformed or truncated;\n"
    "5 tampered (authentication failed), or KMS denied access (its message\n"
    "names the reason); 6 wrong key; 7 context mismatch; 8 unsupported suite;\n"
    "9 limit exceeded; 10 unsafe archive entry; 11 output exists.\n"
    "On SIGINT, SIGTERM or SIGHUP ward removes its partial output and dies\n"
    "of the signal (exit 130, 143 or 129 in shells).\n";

enum {
	OPT_RAW_KEY = 256,
	OPT_RSA_PUBLIC,
	OPT_RSA_PRIVATE,
	OPT_NAMESPACE,
	OPT_NAME,
	OPT_PADDING,
	OPT_CONTEXT,
	OPT_SUITE,
	OPT_FRAME,
	OPT_PROGRESS,
	OPT_LEGACY,
	OPT_MAX_EDKS,
	OPT_MAX_FRAME,
	OPT_MAX_ENTRIES,
	OPT_MAX_SIZE,
	OPT_KEY_ID,
	OPT_ENDPOINT,
	OPT_REGION,
	OPT_PROFILE,
};

static const struct option long_opts[] = {
    {"key-id", required_argument, NULL, OPT_KEY_ID},
    {"raw-key", required_argument, NULL, OPT_RAW_KEY},
    {"raw-rsa-public", required_argument, NULL, OPT_RSA_PUBLIC},
    {"raw-rsa-private", required_argument, NULL, OPT_RSA_PRIVATE},
    {"key-namespace", required_argument, NULL, OPT_NAMESPACE},
    {"key-name", required_argument, NULL, OPT_NAME},
    {"rsa-padding", required_argument, NULL, OPT_PADDING},
    {"context", required_argument, NULL, OPT_CONTEXT},
    {"suite", required_argument, NULL, OPT_SUITE},
    {"frame-size", required_argument, NULL, OPT_FRAME},
    {"output", required_argument, NULL, 'o'},
    {"force", no_argument, NULL, 'f'},
    {"progress", no_argument, NULL, OPT_PROGRESS},
    {"allow-legacy-suites", no_argument, NULL, OPT_LEGACY},
    {"max-edks", required_argument, NULL, OPT_MAX_EDKS},
    {"max-frame-size", required_argument, NULL, OPT_MAX_FRAME},
    {"max-entries", required_argument, NULL, OPT_MAX_ENTRIES},
    {"max-size", required_argument, NULL, OPT_MAX_SIZE},
    {"endpoint-url", required_argument, NULL, OPT_ENDPOINT},
    {"region", required_argument, NULL, OPT_REGION},
    {"profile", required_argument, NULL, OPT_PROFILE},
    {"quiet", no_argument, NULL, 'q'},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

#define MAX_KEYS 16

struct key_spec {
	int kind; /* OPT_KEY_ID, OPT_RAW_KEY, OPT_RSA_PUBLIC, OPT_RSA_PRIVATE */
	const char *path; /* or the KMS key id */
	const char *ns;
	const char *name;
	enum ward_rsa_padding padding;
};

struct args {
	bool decrypt;
	struct key_spec keys[MAX_KEYS];
	size_t nkeys;
	struct ward_ec ec;
	uint16_t suite;
	uint32_t frame_len;
	const char *out;
	const char *in;
	struct ward_path_opts opts;
	enum ward_commitment commitment;
	size_t max_edks;
	uint32_t max_frame;
	struct ward_kms_client_opts
	    kms; /* --endpoint-url, --region, --profile */
};

static int
parse_args(struct args *a, int argc, char **argv)
{
	struct key_spec *k = NULL;
	uint64_t v;
	int c, r;

	optind = 1;
	opterr = 0;
	while (
	    (c = getopt_long(argc, argv, ":o:fqvh", long_opts, NULL)) != -1) {
		switch (c) {
		case OPT_KEY_ID:
		case OPT_RAW_KEY:
		case OPT_RSA_PUBLIC:
		case OPT_RSA_PRIVATE:
			if (a->nkeys == MAX_KEYS)
				return ward_errf(
				    WARD_EUSAGE, "at most %d keys", MAX_KEYS);
			if (a->decrypt && c == OPT_RSA_PUBLIC)
				return ward_errf(WARD_EUSAGE,
				    "a public key cannot decrypt: give --raw-rsa-private");
			k = &a->keys[a->nkeys++];
			k->kind = c;
			k->path = optarg;
			k->ns = "ward";
			k->name = c == OPT_RAW_KEY ? "raw-aes" : "raw-rsa";
			k->padding = WARD_RSA_OAEP_SHA256;
			break;
		case OPT_NAMESPACE:
		case OPT_NAME:
		case OPT_PADDING:
			/* modifiers apply to the key given just before them */
			if (a->nkeys == 0 ||
			    a->keys[a->nkeys - 1].kind == OPT_KEY_ID)
				return ward_errf(WARD_EUSAGE,
				    "--%s applies to the raw key given before it: put it after --raw-key or --raw-rsa-*",
				    c == OPT_NAMESPACE  ? "key-namespace"
				        : c == OPT_NAME ? "key-name"
				                        : "rsa-padding");
			k = &a->keys[a->nkeys - 1];
			if (c == OPT_NAMESPACE) {
				k->ns = optarg;
				break;
			}
			if (c == OPT_NAME) {
				k->name = optarg;
				break;
			}
			if (k->kind == OPT_RAW_KEY)
				return ward_errf(WARD_EUSAGE,
				    "--rsa-padding follows an AES key");
			if ((r = ward_rsa_padding_parse(optarg, &k->padding)) !=
			    0)
				return r;
			if (!a->decrypt && k->padding == WARD_RSA_PKCS1)
				return ward_errf(WARD_EUSAGE,
				    "pkcs1 padding is accepted for decryption only");
			break;
		case OPT_CONTEXT:
			if ((r = ward_ec_add_arg(&a->ec, optarg)) != 0)
				return r;
			break;
		case OPT_SUITE:
			if (a->decrypt)
				goto unknown;
			if ((r = ward_suite_parse(optarg, &a->suite)) != 0)
				return r;
			break;
		case OPT_FRAME:
			if (a->decrypt)
				goto unknown;
			if ((r = ward_parse_size(
			         optarg, WARD_FRAME_LEN_MAX, &v)) != 0)
				return r;
			if (v == 0)
				return ward_errf(WARD_EUSAGE,
				    "frame size must be at least 1 byte");
			a->frame_len = (uint32_t)v;
			break;
		case OPT_LEGACY:
			if (!a->decrypt)
				goto unknown;
			a->commitment = WARD_COMMIT_ALLOW_LEGACY;
			break;
		case OPT_MAX_EDKS:
		case OPT_MAX_FRAME:
		case OPT_MAX_ENTRIES:
		case OPT_MAX_SIZE:
			if (!a->decrypt)
				goto unknown;
			if ((r = ward_parse_size(optarg,
			         c == OPT_MAX_EDKS        ? UINT16_MAX
			             : c == OPT_MAX_FRAME ? WARD_FRAME_LEN_MAX
			                                  : UINT64_MAX,
			         &v)) != 0)
				return r;
			if (v == 0)
				return ward_errf(
				    WARD_EUSAGE, "limits must be at least 1");
			if (c == OPT_MAX_EDKS)
				a->max_edks = (size_t)v;
			else if (c == OPT_MAX_FRAME)
				a->max_frame = (uint32_t)v;
			else if (c == OPT_MAX_ENTRIES)
				a->opts.max_entries = v;
			else
				a->opts.max_bytes = v;
			break;
		case OPT_ENDPOINT:
			a->kms.endpoint_url = optarg;
			break;
		case OPT_REGION:
			a->kms.region = optarg;
			break;
		case OPT_PROFILE:
			a->kms.profile = optarg;
			break;
		case 'o':
			a->out = optarg;
			break;
		case 'f':
			a->opts.force = true;
			break;
		case OPT_PROGRESS:
			a->opts.progress = true;
			break;
		case 'q':
			cli_verbosity(-1);
			break;
		case 'v':
			cli_verbosity(+1);
			break;
		case 'h':
			fputs(a->decrypt ? decrypt_help : encrypt_help, stdout);
			return 1;
		case ':':
			return ward_errf(
			    WARD_EUSAGE, "%s needs a value", argv[optind - 1]);
		default:
		unknown:
			return ward_errf(WARD_EUSAGE,
			    "unknown option '%s' (see ward %s --help)",
			    argv[optind - 1],
			    a->decrypt ? "decrypt" : "encrypt");
		}
	}
	if (optind < argc)
		a->in = argv[optind++];
	if (optind < argc)
		return ward_errf(WARD_EUSAGE,
		    "one input at a time ('%s' is extra)", argv[optind]);
	/* ward decrypt without a key decides from the message (discovery). */
	if (a->nkeys == 0 && !a->decrypt)
		return ward_errf(WARD_EUSAGE,
		    "no key given: use --key-id K, --raw-key FILE or --raw-rsa-public PEM (see ward encrypt --help)");
	return 0;
}

/*
 * ward decrypt with no key: the message decides. One with AWS KMS data
 * keys is opened in discovery mode; the KMS client (region, credentials)
 * is made only then, so that a message for raw keys is told apart without
 * any AWS configuration.
 */
struct discovery {
	struct ward_keyring kr;
	const struct ward_kms_client_opts *opts;
	struct ward_kms_client *client;
	struct ward_keyring *kms;
};

static int
discovery_on_encrypt(struct ward_keyring *kr, struct ward_materials *m)
{
	return ward_errf(WARD_EINTERNAL, "a discovery keyring cannot encrypt");
}

static int
discovery_on_decrypt(struct ward_keyring *kr, struct ward_materials *m,
    const struct ward_edk *edks, size_t n)
{
	struct discovery *d = (struct discovery *)kr;
	char have[512];
	size_t off = 0;
	bool kms = false;
	int r;

	have[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		const struct ward_edk *e = &edks[i];

		if (e->provider_id_len == 7 &&
		    memcmp(e->provider_id, "aws-kms", 7) == 0)
			kms = true;
		if (off + 1 < sizeof(have))
			off += (size_t)snprintf(have + off, sizeof(have) - off,
			    "%s%s", i > 0 ? ", " : "",
			    ward_quote(e->provider_id, e->provider_id_len));
	}
	if (!kms)
		return ward_errf(WARD_EUSAGE,
		    "no key given: this message has data keys for [%s]; give --raw-key FILE or --raw-rsa-private PEM (see ward decrypt --help)",
		    have);
	if (d->kms == NULL &&
	    ((r = ward_kms_client_new(&d->client, d->opts)) != 0 ||
	        (r = ward_keyring_kms_new(&d->kms, d->client, NULL, 0, NULL)) !=
	            0))
		return r;
	return d->kms->ops->on_decrypt(d->kms, m, edks, n);
}

static void
discovery_describe(const struct ward_keyring *kr, char *out, size_t n)
{
	const struct discovery *d = (const struct discovery *)kr;

	if (d->kms != NULL)
		d->kms->ops->describe(d->kms, out, n);
	else
		snprintf(out, n, "AWS KMS (discovery)");
}

static void
discovery_destroy(struct ward_keyring *kr)
{
	struct discovery *d = (struct discovery *)kr;

	ward_keyring_free(d->kms);
	ward_kms_client_free(d->client);
	free(d);
}

static const struct ward_keyring_ops discovery_ops = {
    .type = "aws-kms-discovery",
    .on_encrypt = discovery_on_encrypt,
    .on_decrypt = discovery_on_decrypt,
    .describe = discovery_describe,
    .destroy = discovery_destroy,
};

/* Keyrings for the keys given. The KMS client, made for the first
 * --key-id, is shared by the KMS keyrings and outlives them (*client). */
static int
build_keyring(
    struct args *a, struct ward_kms_client **client, struct ward_keyring **out)
{
	struct ward_keyring *krs[MAX_KEYS] = {0};
	size_t n = 0;
	int r = 0;

	if (a->nkeys == 0) {
		struct discovery *d = calloc(1, sizeof(*d));

		if (d == NULL)
			return ward_enomem();
		d->kr.ops = &discovery_ops;
		d->opts = &a->kms;
		*out = &d->kr;
		return 0;
	}
	for (; n < a->nkeys; n++) {
		struct key_spec *k = &a->keys[n];

		if (k->kind == OPT_KEY_ID) {
			const char *id = k->path;

			if (*client == NULL)
				r = ward_kms_client_new(client, &a->kms);
			if (r == 0)
				r = ward_keyring_kms_new(
				    &krs[n], *client, &id, 1, NULL);
		} else if (k->kind == OPT_RAW_KEY) {
			struct ward_buf key = {.secret = true};

			if ((r = ward_read_file(k->path, 64, &key)) == 0) {
				r = ward_keyring_raw_aes_new(
				    &krs[n], k->ns, k->name, key.p, key.len);
				if (r != 0)
					r = ward_err_prefix(r, "%s", k->path);
			}
			ward_buf_free(&key);
		} else {
			struct evp_pkey_st *pkey = NULL;
			bool priv = k->kind == OPT_RSA_PRIVATE;

			if ((r = ward_pkey_load_pem(k->path, priv, &pkey)) == 0)
				r = ward_keyring_raw_rsa_new(&krs[n], k->ns,
				    k->name, priv ? NULL : pkey,
				    priv ? pkey : NULL, k->padding);
		}
		if (r != 0)
			break;
	}
	if (r != 0) {
		for (size_t i = 0; i < n; i++)
			ward_keyring_free(krs[i]);
		return r;
	}
	if (n == 1) {
		*out = krs[0];
		return 0;
	}
	return ward_keyring_multi_new(out, krs, n);
}

/* PATH.ward for encryption; PATH minus .ward for decryption. */
static int
default_output(struct args *a, char **owned)
{
	size_t len;

	*owned = NULL;
	if (a->out != NULL || a->in == NULL || strcmp(a->in, "-") == 0)
		return 0;
	len = strlen(a->in);
	while (len > 1 && a->in[len - 1] == '/')
		len--;
	if (!a->decrypt) {
		if (asprintf(owned, "%.*s.ward", (int)len, a->in) < 0)
			return ward_enomem();
	} else {
		if (len <= 5 || strncmp(a->in + len - 5, ".ward", 5) != 0)
			return ward_errf(WARD_EUSAGE,
			    "cannot name the output for '%s' (no .ward suffix): give -o OUT",
			    a->in);
		if ((*owned = strndup(a->in, len - 5)) == NULL)
			return ward_enomem();
	}
	a->out = *owned;
	return 0;
}

static int
run(bool decrypt, int argc, char **argv)
{
	const char *cmd = decrypt ? "decrypt" : "encrypt";
	struct args a = {.decrypt = decrypt};
	struct ward_keyring *kr = NULL;
	struct ward_kms_client *client = NULL;
	char *owned_out = NULL;
	int r;

	if ((r = parse_args(&a, argc, argv)) != 0) {
		ward_ec_free(&a.ec);
		if (r > 0)
			return 0; /* --help */
		return cli_fail(cmd, r);
	}
	if ((r = default_output(&a, &owned_out)) != 0 ||
	    (r = build_keyring(&a, &client, &kr)) != 0)
		goto out;
	if (decrypt) {
		struct ward_dec_params p = {
		    .required_ec = &a.ec,
		    .commitment = a.commitment,
		    .max_edks = a.max_edks,
		    .max_frame_len = a.max_frame,
		};
		r = ward_decrypt_path(a.in, a.out, &p, kr, &a.opts);
	} else {
		struct ward_enc_params p = {
		    .suite_id = a.suite,
		    .frame_len = a.frame_len,
		    .ec = &a.ec,
		};
		r = ward_encrypt_path(a.in, a.out, &p, kr, &a.opts);
	}
	if (r == 0 && a.out != NULL && strcmp(a.out, "-") != 0)
		ward_info("wrote %s", a.out);
out:
	ward_keyring_free(kr);
	ward_kms_client_free(client);
	ward_ec_free(&a.ec);
	free(owned_out);
	if (r != 0)
		return cli_fail(cmd, r);
	return 0;
}

int
cmd_encrypt_main(int argc, char **argv)
{
	return run(false, argc, argv);
}

int
cmd_decrypt_main(int argc, char **argv)
{
	return run(true, argc, argv);
}
