/* ward attest verify, ward attest --enclave-cid, ward ca init: flags to
 * the attest and client modules; the work is in src/attest and src/client. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "ward/attest.h"
#include "ward/agent.h"
#include "ward/client.h"
#include "ward/crypto.h"

static const char attest_help[] =
    "usage: ward attest (--enclave-cid N | --agent ADDR) [--nonce HEX]\n"
    "                   [--user-data HEX] [--expect-pcr N=HEX]...\n"
    "                   [--root PEM]... [--no-aws-root] [--no-debug]\n"
    "                   [--timeout SECONDS] [-q]\n"
    "\n"
    "Check what a running enclave is before sending it anything: ask its\n"
    "agent for an attestation document over a fresh nonce, verify the\n"
    "document (certificate chain to a trusted root, ES384 signature), check\n"
    "that it carries our nonce (so it is not a replay) and every expected\n"
    "PCR, and print it as JSON like 'ward attest verify' does.\n"
    "\n"
    "  --enclave-cid N      the enclave (vsock CID N, port 5000)\n"
    "  --agent ADDR         or an agent at an address (unix:PATH, ...)\n"
    "  --nonce HEX          the nonce (default: 32 random bytes)\n"
    "  --user-data HEX      user data to put in the document\n"
    "  --expect-pcr N=HEX   require PCR N to equal HEX (repeatable); PCR0\n"
    "                       is the image's measurement ('ward\n"
    "                       describe-eif', 'ward build-enclave')\n"
    "  --root PEM           also trust this root (repeatable)\n"
    "  --no-aws-root        do not trust the AWS Nitro Enclaves root\n"
    "  --no-debug           refuse a debug-mode enclave (all-zero PCRs)\n"
    "  -q, --quiet          print no JSON\n"
    "\n"
    "Trusted by default: the AWS Nitro Enclaves root (real hardware) and,\n"
    "when it exists, the local sandbox root ($WARD_CA_DIR/root.pem, else\n"
    "the 'ward ca init' default). A local root is for development: whoever\n"
    "is root on this host can forge what it signs. JSON \"RootKind\" says\n"
    "which kind of root vouched. Exit status 0: verified and every\n"
    "expectation met; 5: it does not verify, or a PCR or the nonce is not\n"
    "what was expected (standard error says which, expected and got);\n"
    "3: the enclave cannot be reached.\n"
    "\n"
    "usage: ward attest verify FILE [--root PEM]... [--no-aws-root]\n"
    "                          [--at RFC3339] [--expect-pcr N=HEX]...\n"
    "                          [--nonce HEX] [--no-debug]\n"
    "       ward attest verify --receipt FILE --input FILE --output FILE\n"
    "                          [--model FILE] [the options above]\n"
    "\n"
    "Verify an attestation document (COSE_Sign1, as /dev/nsm or a ward sandbox\n"
    "enclave returns it; raw CBOR or base64) and print it as JSON: PCRs in hex,\n"
    "the certificates summarised, which root it chains to and whether it comes\n"
    "from a debug-mode enclave. The chain is checked to a trusted root at the\n"
    "given time (revocation is not checked, as AWS specifies), then the ES384\n"
    "signature over the payload exactly as received.\n"
    "\n"
    "  FILE                 the document; '-' for standard input\n"
    "  --root PEM           also trust this root (a ward sandbox CA's root.pem,\n"
    "                       from 'ward ca init'); repeatable\n"
    "  --no-aws-root        do not trust the built-in AWS Nitro Enclaves root\n"
    "  --at TIME            check certificate validity at this RFC 3339 time\n"
    "                       (default: now), e.g. 2022-09-15T17:44:24Z\n"
    "  --expect-pcr N=HEX   require PCR N to equal HEX (repeatable)\n"
    "  --nonce HEX          require the document's nonce to equal HEX\n"
    "  --no-debug           refuse a debug-mode document (all-zero PCR0)\n"
    "  --receipt FILE       verify a receipt of 'ward infer --receipt'\n"
    "                       instead of a bare document: its document must\n"
    "                       verify and bind the model, --input (the input\n"
    "                       file as sent) and --output (the answer as\n"
    "                       written); --model FILE (the encrypted model)\n"
    "                       also checks the model is that file\n"
    "  -q, --quiet          print no JSON (a failure's reason still goes\n"
    "                       to standard error)\n"
    "  -h, --help\n"
    "\n"
    "Exit status 0: verified and every expectation met. 4: not a well-formed\n"
    "document (8: well-formed but not supported, such as another signature\n"
    "algorithm; 9: over a size limit). 5: it does not verify or an\n"
    "expectation failed; the JSON is still printed, with \"Verified\": false\n"
    "and the reason in \"Error\".\n"
    "Sandbox documents only ever verify against the local root that signed\n"
    "them, never against the AWS root.\n"
    "\n"
    "usage: ward attest nsm [--nonce HEX] [--user-data HEX]\n"
    "                       [--public-key FILE] [--base64] [-o FILE]\n"
    "\n"
    "Inside an enclave: ask this enclave's NSM (/dev/nsm, the Nitro device or\n"
    "a ward sandbox's socket; $WARD_NSM overrides) for an attestation document\n"
    "and write it (raw CBOR, or base64 with --base64) to FILE or standard\n"
    "output. --public-key puts a DER public key in the document (up to 1024\n"
    "bytes); nonce and user data up to 512 bytes each.\n";

static const char ca_help[] =
    "usage: ward ca init [--dir DIR] [--force]\n"
    "\n"
    "Create the local attestation root that signs sandbox enclaves' attestation\n"
    "documents: a P-384 root certificate and a monitor certificate it issues\n"
    "(a CA with path length 0), shaped like AWS's Nitro chain. 'ward\n"
    "run-enclave' issues each enclave a short-lived signing certificate from\n"
    "the monitor key. Prints the paths and the root's SHA-256 as JSON.\n"
    "\n"
    "  --dir DIR    where to keep it (default: $WARD_CA_DIR, else\n"
    "               /var/lib/ward/ca for root, else ~/.ward/ca);\n"
    "               holds root.pem, root.key, monitor.pem, monitor.key (keys\n"
    "               mode 0600)\n"
    "  --force      replace an existing CA (documents it signed stop verifying)\n"
    "  -h, --help\n"
    "\n"
    "Anyone who can read monitor.key can forge sandbox attestation documents:\n"
    "a local root is for development and CI, never a substitute for Nitro\n"
    "hardware. A KMS trusts it only when configured to.\n";

#define MAX_ROOTS 6
#define MAX_EXPECT WARD_NSM_PCR_COUNT

struct expect_pcr {
	unsigned index;
	uint8_t value[64];
	size_t len;
};

static int
parse_expect(const char *arg, struct expect_pcr *e)
{
	const char *eq = strchr(arg, '=');
	char *end;
	unsigned long idx;

	if (eq == NULL || eq == arg)
		return ward_errf(WARD_EUSAGE, "--expect-pcr %s: want N=HEX",
		    ward_quotes(arg));
	idx = strtoul(arg, &end, 10);
	if (end != eq || idx >= WARD_NSM_PCR_COUNT)
		return ward_errf(WARD_EUSAGE,
		    "--expect-pcr %s: N must be 0 to 31", ward_quotes(arg));
	e->index = (unsigned)idx;
	if (ward_hex_decode(eq + 1, strlen(eq + 1), e->value, sizeof(e->value),
	        &e->len) != 0 ||
	    (e->len != 32 && e->len != 48 && e->len != 64))
		return ward_errf(WARD_EUSAGE,
		    "--expect-pcr %s: HEX must be 64, 96 or 128 hex digits",
		    ward_quotes(arg));
	return 0;
}

static char *
hexdup(struct ward_bytes b)
{
	char *s = malloc(ward_hex_len(b.len) + 1);

	if (s != NULL)
		ward_hex_encode(b.p, b.len, s);
	return s;
}

static int
set_hex(json_t *o, const char *key, struct ward_bytes b)
{
	char *s = hexdup(b);
	int r;

	if (s == NULL)
		return -1;
	r = json_object_set_new(o, key, json_string(s));
	free(s);
	return r;
}

static int
set_opt(json_t *o, const char *key, const struct ward_nsm_opt *v)
{
	if (!v->present)
		return json_object_set_new(o, key, json_null());
	return set_hex(o, key, v->v);
}

static void
rfc3339(int64_t secs, int ms, char *out, size_t cap)
{
	time_t t = (time_t)secs;
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL) {
		snprintf(out, cap, "?");
		return;
	}
	if (ms >= 0)
		snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		    tm.tm_min, tm.tm_sec, ms);
	else
		snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02dZ",
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		    tm.tm_min, tm.tm_sec);
}

static json_t *
cert_json(struct ward_bytes der)
{
	struct ward_x509_info in;
	char nb[80], na[80], sha[65];
	json_t *o;

	if (ward_x509_info(der.p, der.len, &in) != 0) {
		ward_errclear();
		return json_pack(
		    "{s:s}", "Error", "not a parsable certificate");
	}
	rfc3339(in.not_before, -1, nb, sizeof(nb));
	rfc3339(in.not_after, -1, na, sizeof(na));
	ward_hex_encode(in.sha256, sizeof(in.sha256), sha);
	o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:s}", "Subject",
	    in.subject, "Issuer", in.issuer, "Serial", in.serial, "NotBefore",
	    nb, "NotAfter", na, "Key", in.key, "CA", in.ca, "SHA256", sha);
	if (o != NULL && in.ca && in.pathlen >= 0)
		json_object_set_new(o, "PathLen", json_integer(in.pathlen));
	return o;
}

static json_t *
doc_json(const struct ward_attest_doc *d)
{
	json_t *o = json_object(), *pcrs = json_object(),
	       *bundle = json_array();
	char ts[80], key[4];

	if (o == NULL || pcrs == NULL || bundle == NULL)
		goto fail;
	rfc3339((int64_t)(d->timestamp_ms / 1000),
	    (int)(d->timestamp_ms % 1000), ts, sizeof(ts));
	json_object_set_new(o, "ModuleId",
	    json_stringn((const char *)d->module_id.p, d->module_id.len));
	json_object_set_new(
	    o, "Timestamp", json_integer((json_int_t)d->timestamp_ms));
	json_object_set_new(o, "Time", json_string(ts));
	json_object_set_new(o, "Digest",
	    json_stringn((const char *)d->digest.p, d->digest.len));
	json_object_set_new(o, "Debug", json_boolean(d->debug));
	json_object_set_new(o, "Tagged", json_boolean(d->tagged));
	for (unsigned i = 0; i < WARD_NSM_PCR_COUNT; i++) {
		if (((d->pcr_mask >> i) & 1) == 0)
			continue;
		snprintf(key, sizeof(key), "%u", i);
		if (set_hex(pcrs, key, d->pcrs[i]) != 0)
			goto fail;
	}
	json_object_set_new(o, "PCRs", pcrs);
	pcrs = NULL;
	json_object_set_new(o, "Certificate", cert_json(d->certificate));
	for (size_t i = 0; i < d->cabundle_len; i++)
		json_array_append_new(bundle, cert_json(d->cabundle[i]));
	json_object_set_new(o, "CABundle", bundle);
	bundle = NULL;
	if (set_opt(o, "PublicKey", &d->public_key) != 0 ||
	    set_opt(o, "UserData", &d->user_data) != 0 ||
	    set_opt(o, "Nonce", &d->nonce) != 0)
		goto fail;
	return o;
fail:
	json_decref(o);
	json_decref(pcrs);
	json_decref(bundle);
	return NULL;
}

/* Accept raw CBOR or base64 of it (how documents travel in JSON APIs). */
static int
read_document(const char *path, struct ward_buf *out)
{
	struct ward_buf raw = {0};
	char *clean = NULL;
	size_t n = 0, got;
	int r;

	if (strcmp(path, "-") == 0)
		r = ward_read_file("/dev/stdin", 4 * WARD_ATTEST_DOC_MAX, &raw);
	else
		r = ward_read_file(path, 4 * WARD_ATTEST_DOC_MAX, &raw);
	if (r != 0)
		return r;
	raw.secret = false;
	if (raw.len == 0 || raw.p[0] == 0x84 || raw.p[0] == 0xd2 ||
	    raw.p[0] == 0x9f) {
		*out = raw;
		return 0;
	}
	if ((clean = malloc(raw.len + 1)) == NULL) {
		r = ward_enomem();
		goto out;
	}
	for (size_t i = 0; i < raw.len; i++) {
		if (raw.p[i] != '\n' && raw.p[i] != '\r' && raw.p[i] != ' ' &&
		    raw.p[i] != '\t')
			clean[n++] = (char)raw.p[i];
	}
	if ((r = ward_buf_reserve(out, n)) != 0)
		goto out;
	if (ward_b64_decode(clean, n, out->p, n, &got) != 0) {
		ward_errclear();
		/* Not base64 either: let the CBOR decoder say what is wrong. */
		ward_buf_free(out);
		*out = raw;
		raw = (struct ward_buf){0};
		r = 0;
		goto out;
	}
	out->len = got;
	r = 0;
out:
	free(clean);
	ward_buf_free(&raw);
	return r;
}

static int
check_expectations(const struct ward_attest_doc *d, const struct expect_pcr *ex,
    size_t nex, const uint8_t *nonce, size_t nonce_len, bool nonce_set,
    bool no_debug)
{
	for (size_t i = 0; i < nex; i++) {
		const struct ward_bytes *v = &d->pcrs[ex[i].index];

		if (((d->pcr_mask >> ex[i].index) & 1) == 0)
			return ward_errf(WARD_EAUTH,
			    "the document carries no PCR%u", ex[i].index);
		if (v->len != ex[i].len ||
		    memcmp(v->p, ex[i].value, v->len) != 0) {
			char *got = hexdup(*v);

			ward_errf(WARD_EAUTH,
			    "PCR%u is %s, not the expected value", ex[i].index,
			    got != NULL ? got : "?");
			free(got);
			return -WARD_EAUTH;
		}
	}
	if (nonce_set &&
	    (!d->nonce.present || d->nonce.v.len != nonce_len ||
	        memcmp(d->nonce.v.p, nonce, nonce_len) != 0))
		return ward_errf(WARD_EAUTH, "%s",
		    d->nonce.present ? "the nonce is not the expected one"
		                     : "the document carries no nonce");
	if (no_debug && d->debug)
		return ward_errf(WARD_EAUTH,
		    "a debug-mode document (PCR0 all zero) and --no-debug");
	return 0;
}

/* ---- receipts (ward infer --receipt) ---------------------------------- */

static int
hash_file(const char *path, uint8_t out[WARD_SHA384_LEN])
{
	struct ward_sha384_ctx h = {0};
	uint8_t buf[65536];
	FILE *f;
	size_t k;
	int r;

	if ((f = fopen(path, "rb")) == NULL)
		return ward_errf(WARD_EIO, "%s: %s", path, strerror(errno));
	if ((r = ward_sha384_init(&h)) != 0)
		goto out;
	while ((k = fread(buf, 1, sizeof(buf), f)) > 0)
		if ((r = ward_sha384_update(&h, buf, k)) != 0)
			goto out;
	if (ferror(f)) {
		r = ward_errf(WARD_EIO, "%s: %s", path, strerror(errno));
		goto out;
	}
	r = ward_sha384_final(&h, out);
out:
	ward_sha384_free(&h);
	fclose(f);
	return r;
}

static int
receipt_hash(json_t *o, const char *key, uint8_t out[WARD_SHA384_LEN])
{
	const char *s = json_string_value(json_object_get(o, key));
	size_t n = 0;

	if (s == NULL ||
	    ward_hex_decode(s, strlen(s), out, WARD_SHA384_LEN, &n) != 0 ||
	    n != WARD_SHA384_LEN)
		return ward_errf(WARD_EFORMAT,
		    "receipt: %s is missing or not 48 bytes of hex", key);
	return 0;
}

/* The receipt's document and the three hashes it names. */
static int
read_receipt(const char *path, struct ward_buf *doc,
    uint8_t model[WARD_SHA384_LEN], uint8_t in[WARD_SHA384_LEN],
    uint8_t out[WARD_SHA384_LEN])
{
	json_error_t je;
	json_t *o = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	const char *kind, *b64;
	size_t got = 0;
	int r;

	if (o == NULL)
		return ward_errf(WARD_EFORMAT,
		    "%s: not a receipt (%s, line %d)", path, je.text, je.line);
	kind = json_string_value(json_object_get(o, "receipt"));
	b64 = json_string_value(json_object_get(o, "attestation_document"));
	if (kind == NULL || strcmp(kind, "ward-infer-v1") != 0) {
		r = ward_errf(WARD_EFORMAT,
		    "%s: not a ward infer receipt (\"receipt\": "
		    "\"ward-infer-v1\" is missing)",
		    path);
		goto out;
	}
	if ((r = receipt_hash(o, "model_sha384", model)) != 0 ||
	    (r = receipt_hash(o, "input_sha384", in)) != 0 ||
	    (r = receipt_hash(o, "output_sha384", out)) != 0)
		goto out;
	if (b64 == NULL || strlen(b64) > 4 * WARD_MSG_DOC_MAX) {
		r = ward_errf(WARD_EFORMAT,
		    "receipt: attestation_document is missing or too long");
		goto out;
	}
	if ((r = ward_buf_reserve(doc, strlen(b64) + 1)) != 0)
		goto out;
	if (ward_b64_decode(b64, strlen(b64), doc->p, strlen(b64) + 1, &got) !=
	    0) {
		r = ward_err_prefix(
		    -WARD_EFORMAT, "receipt: attestation_document");
		goto out;
	}
	doc->len = got;
out:
	json_decref(o);
	return r;
}

/*
 * The document's user data must be the receipt binding of the model, the
 * input file and the output file (agent.h "Receipts"); each file is
 * checked against the receipt first, for a message that says which one
 * changed.
 */
static int
check_receipt(const struct ward_attest_doc *d,
    const uint8_t rmodel[WARD_SHA384_LEN], const uint8_t rin[WARD_SHA384_LEN],
    const uint8_t rout[WARD_SHA384_LEN], const char *input, const char *output,
    const char *model, json_t *j)
{
	uint8_t in[WARD_SHA384_LEN], out[WARD_SHA384_LEN], m[WARD_SHA384_LEN],
	    ud[WARD_RECEIPT_UD_LEN];
	char hex[2 * WARD_SHA384_LEN + 1];
	json_t *o;
	int r;

	if ((r = hash_file(input, in)) != 0 ||
	    (r = hash_file(output, out)) != 0)
		return r;
	memcpy(m, rmodel, sizeof(m));
	if (model != NULL && (r = hash_file(model, m)) != 0)
		return r;
	if ((o = json_object()) != NULL) {
		ward_hex_encode(m, sizeof(m), hex);
		json_object_set_new(o, "ModelSHA384", json_string(hex));
		ward_hex_encode(in, sizeof(in), hex);
		json_object_set_new(o, "InputSHA384", json_string(hex));
		ward_hex_encode(out, sizeof(out), hex);
		json_object_set_new(o, "OutputSHA384", json_string(hex));
		json_object_set_new(j, "Receipt", o);
	}
	if (memcmp(m, rmodel, sizeof(m)) != 0)
		return ward_errf(WARD_EAUTH,
		    "the model %s is not the one the receipt names", model);
	if (memcmp(in, rin, sizeof(in)) != 0)
		return ward_errf(WARD_EAUTH,
		    "the input %s is not the one the receipt names", input);
	if (memcmp(out, rout, sizeof(out)) != 0)
		return ward_errf(WARD_EAUTH,
		    "the output %s is not the one the receipt names", output);
	if ((r = ward_receipt_user_data(m, in, out, ud)) != 0)
		return r;
	if (!d->user_data.present || d->user_data.v.len != sizeof(ud) ||
	    memcmp(d->user_data.v.p, ud, sizeof(ud)) != 0)
		return ward_errf(WARD_EAUTH,
		    "the receipt's attestation document does not bind this "
		    "model, input and output (its user data differs): the "
		    "receipt was altered");
	return 0;
}

enum {
	OPT_ROOT = 256,
	OPT_NO_AWS,
	OPT_AT,
	OPT_EXPECT,
	OPT_NONCE,
	OPT_NO_DEBUG,
	OPT_DIR,
	OPT_RECEIPT,
	OPT_INPUT,
	OPT_OUTPUT,
	OPT_MODEL,
};

static int
attest_verify(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"root", required_argument, NULL, OPT_ROOT},
	    {"no-aws-root", no_argument, NULL, OPT_NO_AWS},
	    {"at", required_argument, NULL, OPT_AT},
	    {"expect-pcr", required_argument, NULL, OPT_EXPECT},
	    {"nonce", required_argument, NULL, OPT_NONCE},
	    {"no-debug", no_argument, NULL, OPT_NO_DEBUG},
	    {"receipt", required_argument, NULL, OPT_RECEIPT},
	    {"input", required_argument, NULL, OPT_INPUT},
	    {"output", required_argument, NULL, OPT_OUTPUT},
	    {"model", required_argument, NULL, OPT_MODEL},
	    {"quiet", no_argument, NULL, 'q'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *receipt = NULL, *input = NULL, *output = NULL,
	           *model = NULL;
	uint8_t rmodel[WARD_SHA384_LEN], rin[WARD_SHA384_LEN],
	    rout[WARD_SHA384_LEN];
	const char *roots[MAX_ROOTS];
	struct expect_pcr ex[MAX_EXPECT];
	uint8_t nonce[WARD_NSM_NONCE_MAX];
	size_t nroots = 0, nex = 0, nonce_len = 0;
	bool aws = true, nonce_set = false, no_debug = false, quiet = false;
	time_t at = time(NULL);
	struct ward_buf raw = {0};
	struct ward_attest_doc *d = NULL;
	struct ward_attest_roots *rs = NULL;
	struct ward_attest_result res;
	json_t *j = NULL;
	char why[1024] = "";
	int c, r = 0, vr;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":qh", opts, NULL)) != -1) {
		switch (c) {
		case OPT_ROOT:
			if (nroots == MAX_ROOTS)
				return cli_fail("attest verify",
				    ward_errf(WARD_EUSAGE, "at most %d --root",
				        MAX_ROOTS));
			roots[nroots++] = optarg;
			break;
		case OPT_NO_AWS:
			aws = false;
			break;
		case OPT_AT:
			if ((r = ward_parse_rfc3339(optarg, &at)) != 0)
				return cli_fail("attest verify", r);
			break;
		case OPT_EXPECT:
			if (nex == MAX_EXPECT)
				return cli_fail("attest verify",
				    ward_errf(
				        WARD_EUSAGE, "too many --expect-pcr"));
			if ((r = parse_expect(optarg, &ex[nex++])) != 0)
				return cli_fail("attest verify", r);
			break;
		case OPT_NONCE:
			if (ward_hex_decode(optarg, strlen(optarg), nonce,
			        sizeof(nonce), &nonce_len) != 0)
				return cli_fail("attest verify",
				    ward_errf(WARD_EUSAGE,
				        "--nonce: not hex of at most %d bytes",
				        WARD_NSM_NONCE_MAX));
			nonce_set = true;
			break;
		case OPT_NO_DEBUG:
			no_debug = true;
			break;
		case OPT_RECEIPT:
			receipt = optarg;
			break;
		case OPT_INPUT:
			input = optarg;
			break;
		case OPT_OUTPUT:
			output = optarg;
			break;
		case OPT_MODEL:
			model = optarg;
			break;
		case 'q':
			quiet = true;
			break;
		case 'h':
			fputs(attest_help, stdout);
			return 0;
		case ':':
			return cli_fail("attest verify",
			    ward_errf(WARD_EUSAGE, "%s needs a value",
			        argv[optind - 1]));
		default:
			return cli_fail("attest verify",
			    ward_errf(WARD_EUSAGE,
			        "unknown option %s (see ward attest --help)",
			        argv[optind - 1]));
		}
	}
	if (receipt != NULL && (input == NULL || output == NULL))
		return cli_fail("attest verify",
		    ward_errf(WARD_EUSAGE,
		        "--receipt needs --input and --output (the files the "
		        "prediction was made from and written to)"));
	if (receipt == NULL &&
	    (input != NULL || output != NULL || model != NULL))
		return cli_fail("attest verify",
		    ward_errf(WARD_EUSAGE,
		        "--input, --output and --model go with --receipt"));
	if (receipt == NULL && optind != argc - 1)
		return cli_fail("attest verify",
		    ward_errf(WARD_EUSAGE,
		        "give exactly one FILE (see ward attest --help)"));
	if (receipt != NULL && optind != argc)
		return cli_fail("attest verify",
		    ward_errf(WARD_EUSAGE,
		        "give the receipt with --receipt, not as FILE"));
	if ((r = ward_attest_roots_new(aws, &rs)) != 0)
		goto out;
	for (size_t i = 0; i < nroots; i++)
		if ((r = ward_attest_roots_add_file(rs, roots[i])) != 0)
			goto out;
	if (!aws && nroots == 0) {
		r = ward_errf(
		    WARD_EUSAGE, "--no-aws-root without --root trusts nothing");
		goto out;
	}
	if ((r = receipt != NULL
	            ? read_receipt(receipt, &raw, rmodel, rin, rout)
	            : read_document(argv[optind], &raw)) != 0 ||
	    (r = ward_attest_parse(raw.p, raw.len, &d)) != 0)
		goto out;
	if ((j = doc_json(d)) == NULL) {
		r = ward_enomem();
		goto out;
	}
	vr = ward_attest_verify(d, rs, at, &res);
	if (vr == 0)
		vr = check_expectations(
		    d, ex, nex, nonce, nonce_len, nonce_set, no_debug);
	if (vr == 0 && receipt != NULL)
		vr = check_receipt(
		    d, rmodel, rin, rout, input, output, model, j);
	/* Anything that fails once the document has decoded means "does
	 * not verify" (exit 5), whatever the cause's own code. */
	if (vr != 0) {
		vr = -WARD_EAUTH;
		snprintf(why, sizeof(why), "%s", ward_errmsg());
	}
	json_object_set_new(j, "Verified", json_boolean(vr == 0));
	if (vr == 0) {
		json_object_set_new(j, "Root", json_string(res.root_name));
		json_object_set_new(
		    j, "RootSHA256", json_string(res.root_sha256));
		json_object_set_new(
		    j, "RootKind", json_string(res.aws ? "aws" : "local"));
	} else {
		json_object_set_new(j, "Error", json_string(why));
	}
	if (!quiet) {
		char at_s[80];

		rfc3339((int64_t)at, -1, at_s, sizeof(at_s));
		json_object_set_new(j, "CheckedAt", json_string(at_s));
		json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		fputc('\n', stdout);
		fflush(stdout);
	}
	r = vr != 0 ? ward_errf(WARD_EAUTH, "%s", why) : 0;
out:
	json_decref(j);
	ward_attest_doc_free(d);
	ward_attest_roots_free(rs);
	ward_buf_free(&raw);
	if (r != 0)
		return cli_fail("attest verify", r);
	return 0;
}

/* ward attest nsm: a document from this enclave's NSM, as the agent gets
 * one. */
static int
attest_nsm(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"nonce", required_argument, NULL, 'n'},
	    {"user-data", required_argument, NULL, 'u'},
	    {"public-key", required_argument, NULL, 'k'},
	    {"base64", no_argument, NULL, 'b'},
	    {"output", required_argument, NULL, 'o'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	uint8_t nonce[512], ud[512];
	struct ward_nsm_opt o_nonce = {0}, o_ud = {0}, o_pk = {0};
	struct ward_buf pk = {0}, doc = {0};
	struct ward_nsm *n = NULL;
	const char *out = NULL;
	char *text = NULL;
	bool b64 = false;
	size_t len;
	int c, r = 0;

	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
		case 'u':
			if (ward_hex_decode(optarg, strlen(optarg),
			        c == 'n' ? nonce : ud, 512, &len) != 0) {
				r = ward_errf(WARD_EUSAGE,
				    "--%s: up to 512 bytes in hex",
				    c == 'n' ? "nonce" : "user-data");
				goto out;
			}
			*(c == 'n' ? &o_nonce : &o_ud) = (struct ward_nsm_opt){
			    true, {c == 'n' ? nonce : ud, len}};
			break;
		case 'k':
			if ((r = ward_read_file(optarg, 1024, &pk)) != 0)
				goto out;
			o_pk = (struct ward_nsm_opt){true, {pk.p, pk.len}};
			break;
		case 'b':
			b64 = true;
			break;
		case 'o':
			out = optarg;
			break;
		case 'h':
			fputs(attest_help, stdout);
			return 0;
		default:
			fputs(attest_help, stderr);
			return ward_exit_code(-WARD_EUSAGE);
		}
	}
	if (optind != argc) {
		fputs(attest_help, stderr);
		return ward_exit_code(-WARD_EUSAGE);
	}
	if ((r = ward_nsm_open(NULL, &n)) != 0 ||
	    (r = ward_nsm_attestation(n, &o_ud, &o_nonce, &o_pk, &doc)) != 0)
		goto out;
	if (b64) {
		if ((text = malloc(ward_b64_len(doc.len) + 2)) == NULL) {
			r = ward_enomem();
			goto out;
		}
		ward_b64_encode(doc.p, doc.len, text);
		len = strlen(text);
		text[len++] = '\n';
	}
	if (out != NULL)
		r = ward_write_file_atomic(out, b64 ? (uint8_t *)text : doc.p,
		    b64 ? len : doc.len, 0644, true);
	else if (fwrite(b64 ? (uint8_t *)text : doc.p, 1, b64 ? len : doc.len,
	             stdout) != (b64 ? len : doc.len) ||
	    fflush(stdout) != 0)
		r = ward_errf(
		    WARD_EIO, "writing the document: %s", strerror(errno));
out:
	free(text);
	ward_nsm_close(n);
	ward_buf_free(&doc);
	ward_buf_free(&pk);
	return r != 0 ? cli_fail("attest nsm", r) : 0;
}

/* ------------------------------------------------------------------ */
/* ward attest --enclave-cid N: ask a running enclave                 */

enum {
	OPT_ENCLAVE_CID = 300,
	OPT_AGENT_ADDR,
	OPT_USER_DATA,
	OPT_CONN_TIMEOUT,
};

#define ENCLAVE_NONCE_LEN 32
#define ENCLAVE_TIMEOUT_S 30u

/*
 * What the host must see before it trusts the enclave: our nonce (the
 * document is fresh, not a replay), then every PCR asked for. Messages
 * say which PCR, expected and got, and name debug mode, whose all-zero
 * PCRs are the usual reason for a mismatch.
 */
static int
check_enclave(const struct ward_attest_doc *d, const struct expect_pcr *ex,
    size_t nex, const uint8_t *nonce, size_t nonce_len, bool no_debug)
{
	const char *dbg = d->debug ? " (the enclave runs in debug mode: its "
	                             "PCRs are all zeros)"
	                           : "";

	if (!d->nonce.present || d->nonce.v.len != nonce_len ||
	    memcmp(d->nonce.v.p, nonce, nonce_len) != 0)
		return ward_errf(WARD_EAUTH, "%s",
		    d->nonce.present
		        ? "the document carries another nonce than ours: "
		          "it is not an answer to this request (replayed?)"
		        : "the document carries no nonce: it is not an "
		          "answer to this request");
	for (size_t i = 0; i < nex; i++) {
		const struct ward_bytes *v = &d->pcrs[ex[i].index];
		char *want, *got;

		if (((d->pcr_mask >> ex[i].index) & 1) == 0)
			return ward_errf(WARD_EAUTH,
			    "the document carries no PCR%u", ex[i].index);
		if (v->len == ex[i].len &&
		    memcmp(v->p, ex[i].value, v->len) == 0)
			continue;
		want = hexdup((struct ward_bytes){ex[i].value, ex[i].len});
		got = hexdup(*v);
		ward_errf(WARD_EAUTH, "PCR%u: expected %s, got %s%s",
		    ex[i].index, want != NULL ? want : "?",
		    got != NULL ? got : "?", dbg);
		free(want);
		free(got);
		return -WARD_EAUTH;
	}
	if (no_debug && d->debug)
		return ward_errf(WARD_EAUTH,
		    "the enclave runs in debug mode (its PCRs are all zeros) "
		    "and --no-debug was given");
	return 0;
}

/* The local sandbox root, when there is one: $WARD_CA_DIR/root.pem or
 * the default CA directory's. */
static int
add_local_root(struct ward_attest_roots *rs)
{
	char dir[4096], path[4200];

	if (ward_ca_default_dir(dir, sizeof(dir)) != 0) {
		ward_errclear();
		return 0;
	}
	snprintf(path, sizeof(path), "%s/root.pem", dir);
	if (access(path, R_OK) != 0)
		return 0;
	return ward_attest_roots_add_file(rs, path);
}

static int
attest_enclave(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"enclave-cid", required_argument, NULL, OPT_ENCLAVE_CID},
	    {"agent", required_argument, NULL, OPT_AGENT_ADDR},
	    {"timeout", required_argument, NULL, OPT_CONN_TIMEOUT},
	    {"nonce", required_argument, NULL, OPT_NONCE},
	    {"user-data", required_argument, NULL, OPT_USER_DATA},
	    {"expect-pcr", required_argument, NULL, OPT_EXPECT},
	    {"root", required_argument, NULL, OPT_ROOT},
	    {"no-aws-root", no_argument, NULL, OPT_NO_AWS},
	    {"no-debug", no_argument, NULL, OPT_NO_DEBUG},
	    {"quiet", no_argument, NULL, 'q'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *roots[MAX_ROOTS];
	struct expect_pcr ex[MAX_EXPECT];
	uint8_t nonce[WARD_NSM_NONCE_MAX], ud[WARD_NSM_USER_DATA_MAX];
	size_t nroots = 0, nex = 0, nonce_len = 0, ud_len = 0;
	bool aws = true, nonce_set = false, no_debug = false, quiet = false,
	     have = false;
	struct ward_client_opts co = {.timeout = ENCLAVE_TIMEOUT_S};
	struct ward_client *c = NULL;
	struct ward_buf raw = {0};
	struct ward_attest_doc *d = NULL;
	struct ward_attest_roots *rs = NULL;
	struct ward_attest_result res;
	time_t at;
	json_t *j = NULL;
	char why[1024] = "", *end;
	unsigned long v;
	int ch, r = 0, vr;

	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":qh", opts, NULL)) != -1) {
		switch (ch) {
		case OPT_ENCLAVE_CID:
		case OPT_AGENT_ADDR:
			if (have) {
				r = ward_errf(WARD_EUSAGE,
				    "give one of --enclave-cid and --agent, "
				    "once");
				goto out;
			}
			have = true;
			if (ch == OPT_AGENT_ADDR) {
				co.agent = optarg;
				break;
			}
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (*optarg < '0' || *optarg > '9' || *end != '\0' ||
			    errno != 0 || v < 3 || v > 0xFFFFFFFEul) {
				r = ward_errf(WARD_EUSAGE,
				    "--enclave-cid %s: want a CID from 3 to "
				    "4294967294",
				    ward_quotes(optarg));
				goto out;
			}
			co.cid = (uint32_t)v;
			break;
		case OPT_CONN_TIMEOUT:
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (*optarg < '0' || *optarg > '9' || *end != '\0' ||
			    errno != 0 || v < 1 || v > 86400) {
				r = ward_errf(WARD_EUSAGE,
				    "--timeout %s: want seconds from 1 to 86400",
				    ward_quotes(optarg));
				goto out;
			}
			co.timeout = (unsigned)v;
			break;
		case OPT_NONCE:
		case OPT_USER_DATA:
			if (ward_hex_decode(optarg, strlen(optarg),
			        ch == OPT_NONCE ? nonce : ud, sizeof(nonce),
			        ch == OPT_NONCE ? &nonce_len : &ud_len) != 0 ||
			    (ch == OPT_NONCE && nonce_len == 0)) {
				ward_errclear();
				r = ward_errf(WARD_EUSAGE,
				    "%s: want hex of 1 to %d bytes",
				    ch == OPT_NONCE ? "--nonce" : "--user-data",
				    WARD_NSM_NONCE_MAX);
				goto out;
			}
			if (ch == OPT_NONCE)
				nonce_set = true;
			break;
		case OPT_EXPECT:
			if (nex == MAX_EXPECT) {
				r = ward_errf(
				    WARD_EUSAGE, "too many --expect-pcr");
				goto out;
			}
			if ((r = parse_expect(optarg, &ex[nex++])) != 0)
				goto out;
			break;
		case OPT_ROOT:
			if (nroots == MAX_ROOTS) {
				r = ward_errf(WARD_EUSAGE, "at most %d --root",
				    MAX_ROOTS);
				goto out;
			}
			roots[nroots++] = optarg;
			break;
		case OPT_NO_AWS:
			aws = false;
			break;
		case OPT_NO_DEBUG:
			no_debug = true;
			break;
		case 'q':
			quiet = true;
			break;
		case 'h':
			fputs(attest_help, stdout);
			return 0;
		case ':':
			r = ward_errf(
			    WARD_EUSAGE, "%s needs a value", argv[optind - 1]);
			goto out;
		default:
			r = ward_errf(WARD_EUSAGE,
			    "unknown option %s (see ward attest --help)",
			    argv[optind - 1]);
			goto out;
		}
	}
	if (optind != argc) {
		r = ward_errf(WARD_EUSAGE, "unexpected argument %s",
		    ward_quotes(argv[optind]));
		goto out;
	}
	if (!have) {
		r = ward_errf(WARD_EUSAGE,
		    "which enclave? give --enclave-cid N or --agent ADDR");
		goto out;
	}
	if ((r = ward_attest_roots_new(aws, &rs)) != 0)
		goto out;
	for (size_t i = 0; i < nroots; i++)
		if ((r = ward_attest_roots_add_file(rs, roots[i])) != 0)
			goto out;
	if (nroots == 0 && (r = add_local_root(rs)) != 0)
		goto out;
	if (!aws && nroots == 0) {
		r = ward_errf(
		    WARD_EUSAGE, "--no-aws-root without --root trusts nothing");
		goto out;
	}
	if (!nonce_set) {
		if ((r = ward_random(nonce, ENCLAVE_NONCE_LEN)) != 0)
			goto out;
		nonce_len = ENCLAVE_NONCE_LEN;
	}
	if ((r = ward_client_open(&co, &c)) != 0 ||
	    (r = ward_client_attest(c, nonce, nonce_len, ud_len > 0 ? ud : NULL,
	         ud_len, &raw)) != 0)
		goto out;
	if ((r = ward_attest_parse(raw.p, raw.len, &d)) != 0) {
		ward_err_prefix(r, "the document %s sent", ward_client_name(c));
		goto out;
	}
	at = time(NULL);
	vr = ward_attest_verify(d, rs, at, &res);
	if (vr == 0)
		vr = check_enclave(d, ex, nex, nonce, nonce_len, no_debug);
	if (vr != 0) {
		vr = -WARD_EAUTH;
		snprintf(why, sizeof(why), "%s", ward_errmsg());
	} else if (d->debug)
		fprintf(stderr,
		    "ward attest: warning: the enclave runs in debug mode: its "
		    "PCRs are all zeros, so the document does not say which "
		    "image runs (--no-debug refuses it)\n");
	else if (nex == 0)
		fprintf(stderr,
		    "ward attest: warning: no --expect-pcr: this shows that an "
		    "enclave under a trusted root answered, not which image it "
		    "runs (compare PCR0 with the vendor's)\n");
	if ((j = doc_json(d)) == NULL) {
		r = ward_enomem();
		goto out;
	}
	json_object_set_new(j, "Enclave", json_string(ward_client_name(c)));
	json_object_set_new(j, "Verified", json_boolean(vr == 0));
	if (vr == 0) {
		json_object_set_new(j, "Root", json_string(res.root_name));
		json_object_set_new(
		    j, "RootSHA256", json_string(res.root_sha256));
		json_object_set_new(
		    j, "RootKind", json_string(res.aws ? "aws" : "local"));
	} else
		json_object_set_new(j, "Error", json_string(why));
	if (!quiet) {
		char at_s[80];

		rfc3339((int64_t)at, -1, at_s, sizeof(at_s));
		json_object_set_new(j, "CheckedAt", json_string(at_s));
		json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		fputc('\n', stdout);
		fflush(stdout);
	}
	r = vr != 0 ? ward_errf(WARD_EAUTH, "%s: %s", ward_client_name(c), why)
	            : 0;
out:
	json_decref(j);
	ward_attest_doc_free(d);
	ward_attest_roots_free(rs);
	ward_buf_free(&raw);
	ward_client_close(c);
	return r != 0 ? cli_fail("attest", r) : 0;
}

int
cmd_attest_main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0) {
		fputs(attest_help, argc < 2 ? stderr : stdout);
		return argc < 2 ? WARD_EUSAGE : 0;
	}
	if (strcmp(argv[1], "verify") == 0)
		return attest_verify(argc - 1, argv + 1);
	if (strcmp(argv[1], "nsm") == 0)
		return attest_nsm(argc - 1, argv + 1);
	/* no subcommand, only flags: ask a running enclave */
	if (argv[1][0] == '-')
		return attest_enclave(argc, argv);
	return cli_fail("attest",
	    ward_errf(WARD_EUSAGE,
	        "unknown subcommand %s (ward attest --enclave-cid N | verify "
	        "| nsm)",
	        ward_quotes(argv[1])));
}

static int
ca_init(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"dir", required_argument, NULL, OPT_DIR},
	    {"force", no_argument, NULL, 'f'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	char dir[4096], path[4200];
	const char *d = NULL;
	bool force = false;
	struct ward_ca *ca = NULL;
	struct ward_x509_info info;
	struct ward_bytes root;
	char sha[65], na[80];
	json_t *j = NULL;
	int c, r;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":fh", opts, NULL)) != -1) {
		switch (c) {
		case OPT_DIR:
			d = optarg;
			break;
		case 'f':
			force = true;
			break;
		case 'h':
			fputs(ca_help, stdout);
			return 0;
		case ':':
			return cli_fail("ca init",
			    ward_errf(WARD_EUSAGE, "%s needs a value",
			        argv[optind - 1]));
		default:
			return cli_fail("ca init",
			    ward_errf(WARD_EUSAGE,
			        "unknown option %s (see ward ca --help)",
			        argv[optind - 1]));
		}
	}
	if (optind != argc)
		return cli_fail("ca init",
		    ward_errf(WARD_EUSAGE, "unexpected argument %s",
		        ward_quotes(argv[optind])));
	if (d == NULL) {
		if ((r = ward_ca_default_dir(dir, sizeof(dir))) != 0)
			return cli_fail("ca init", r);
		d = dir;
	}
	if ((r = ward_ca_init(d, force)) != 0 ||
	    (r = ward_ca_load(d, &ca)) != 0)
		goto out;
	root = ward_ca_root_der(ca);
	if ((r = ward_x509_info(root.p, root.len, &info)) != 0)
		goto out;
	ward_hex_encode(info.sha256, sizeof(info.sha256), sha);
	rfc3339(info.not_after, -1, na, sizeof(na));
	snprintf(path, sizeof(path), "%s/root.pem", d);
	j = json_pack("{s:s, s:s, s:s, s:s, s:s}", "Dir", d, "Root", path,
	    "RootSubject", info.subject, "RootSHA256", sha, "RootNotAfter", na);
	if (j == NULL) {
		r = ward_enomem();
		goto out;
	}
	json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', stdout);
out:
	json_decref(j);
	ward_ca_free(ca);
	if (r != 0)
		return cli_fail("ca init", r);
	return 0;
}

int
cmd_ca_main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0) {
		fputs(ca_help, argc < 2 ? stderr : stdout);
		return argc < 2 ? WARD_EUSAGE : 0;
	}
	if (strcmp(argv[1], "init") == 0)
		return ca_init(argc - 1, argv + 1);
	return cli_fail("ca",
	    ward_errf(WARD_EUSAGE, "unknown subcommand %s (ward ca init)",
	        ward_quotes(argv[1])));
}
