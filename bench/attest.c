/*
 * bench/attest: attestation documents verified and produced per second,
 * printed beside a bare OpenSSL ECDSA P-384 verify (and sign) of the same
 * payload, measured in the same run (see docs/performance.md).
 *
 *   verify (sandbox)  ward_attest_parse + ward_attest_verify of a document
 *                     from a local root: chain root -> monitor -> leaf (2
 *                     certificate signatures) and the COSE signature
 *   verify (AWS)      the same for the real AWS document (fixture; 4 links
 *                     and the COSE signature), when ../shared is present
 *   produce           ward_attest_sign: payload encoding and one ES384 sign
 *   baseline          EVP_DigestVerify / EVP_DigestSign, SHA-384 + ECDSA
 *                     P-384, over the same Sig_structure bytes
 *
 * A verified document costs at least (links + 1) ECDSA verifications, so
 * the verify ratio's ceiling is 1/(links+1): 0.33 for a sandbox document,
 * 0.20 for an AWS one. Each case runs BENCH_SECONDS (default 2) seconds,
 * round-robin over BENCH_RUNS (default 3) rounds, best kept.
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ward/attest.h"

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double seconds = 2.0;

typedef int (*op_fn)(void *ctx);

static double
rate(op_fn op, void *ctx)
{
	double t0 = now(), t;
	long n = 0;

	do {
		for (int i = 0; i < 8; i++) {
			if (op(ctx) != 0) {
				fprintf(stderr, "bench/attest: %s\n",
				    ward_errmsg());
				exit(1);
			}
		}
		n += 8;
		t = now() - t0;
	} while (t < seconds);
	return (double)n / t;
}

struct doc_ctx {
	struct ward_buf doc;
	struct ward_attest_roots *roots;
	time_t at;
};

static int
op_verify(void *p)
{
	struct doc_ctx *c = p;
	struct ward_attest_doc *d;
	struct ward_attest_result res;
	int r;

	if ((r = ward_attest_parse(c->doc.p, c->doc.len, &d)) != 0)
		return r;
	r = ward_attest_verify(d, c->roots, c->at, &res);
	ward_attest_doc_free(d);
	return r;
}

struct sign_ctx {
	struct ward_attest_signer *s;
	struct ward_attest_fields f;
	struct ward_buf out;
};

static int
op_sign(void *p)
{
	struct sign_ctx *c = p;

	c->out.len = 0;
	return ward_attest_sign(c->s, &c->f, &c->out);
}

/* The baseline: one SHA-384 + ECDSA P-384 verify (or sign) of tbs. */
struct base_ctx {
	EVP_PKEY *key;
	struct ward_buf tbs;
	uint8_t sig[WARD_ECDSA_SIG_MAX];
	size_t sig_len;
};

static int
op_base_verify(void *p)
{
	struct base_ctx *c = p;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok = md != NULL &&
	    EVP_DigestVerifyInit(md, NULL, EVP_sha384(), NULL, c->key) == 1 &&
	    EVP_DigestVerify(md, c->sig, c->sig_len, c->tbs.p, c->tbs.len) == 1;

	EVP_MD_CTX_free(md);
	return ok ? 0 : ward_errf(WARD_ECRYPTO, "baseline verify failed");
}

static int
op_base_sign(void *p)
{
	struct base_ctx *c = p;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	size_t n = sizeof(c->sig);
	int ok = md != NULL &&
	    EVP_DigestSignInit(md, NULL, EVP_sha384(), NULL, c->key) == 1 &&
	    EVP_DigestSign(md, c->sig, &n, c->tbs.p, c->tbs.len) == 1;

	EVP_MD_CTX_free(md);
	c->sig_len = n;
	return ok ? 0 : ward_errf(WARD_ECRYPTO, "baseline sign failed");
}

static void
die(int r)
{
	if (r != 0) {
		fprintf(stderr, "bench/attest: %s\n", ward_errmsg());
		exit(1);
	}
}

/* Sig_structure of a document, as a baseline verifies it. */
static void
sig_structure(const struct ward_attest_doc *d, struct ward_buf *out)
{
	die(ward_cbor_put_array(out, 4));
	die(ward_cbor_put_textz(out, "Signature1"));
	die(ward_cbor_put_bytes(out, d->protected_hdr.p, d->protected_hdr.len));
	die(ward_cbor_put_bytes(out, NULL, 0));
	die(ward_cbor_put_bytes(out, d->payload.p, d->payload.len));
}

int
main(int argc, char **argv)
{
	const char *fixtures = argc > 1 ? argv[1] : NULL;
	int runs = getenv("BENCH_RUNS") ? atoi(getenv("BENCH_RUNS")) : 3;
	char dir[] = "/tmp/ward-bench-attest-XXXXXX";
	struct ward_ca *ca;
	struct sign_ctx sc = {0};
	struct doc_ctx sandbox = {0}, aws = {0};
	struct base_ctx base = {0};
	struct ward_attest_doc *d;
	uint8_t pcrs[WARD_NSM_PCR_COUNT][WARD_NSM_PCR_LEN];
	uint8_t spki[294];
	double best[6] = {0};
	bool have_aws = false;
	char cmd[256];

	if (getenv("BENCH_SECONDS"))
		seconds = atof(getenv("BENCH_SECONDS"));
	if (runs < 1)
		runs = 1;
	if (mkdtemp(dir) == NULL)
		return 1;
	die(ward_ca_init(dir, false));
	die(ward_ca_load(dir, &ca));
	die(ward_attest_signer_new(ca, &sc.s));
	memset(pcrs, 0x5a, sizeof(pcrs));
	memset(spki, 0x30, sizeof(spki)); /* an RSA-2048 SPKI's size */
	sc.f = (struct ward_attest_fields){
	    .module_id = {(const uint8_t *)"i-bench-enc0123456789abcdef", 27},
	    .pcr_mask = 0xffff,
	    .pcrs = (const uint8_t(*)[WARD_NSM_PCR_LEN])pcrs,
	    .public_key = {true, {spki, sizeof(spki)}},
	};
	die(op_sign(&sc));
	sandbox.doc = (struct ward_buf){0};
	die(ward_buf_append(&sandbox.doc, sc.out.p, sc.out.len));
	die(ward_attest_roots_new(false, &sandbox.roots));
	struct ward_bytes root = ward_ca_root_der(ca);
	die(ward_attest_roots_add_der(sandbox.roots, root.p, root.len));
	sandbox.at = time(NULL);
	/* baseline: a fresh P-384 key signs and verifies the same
	 * Sig_structure bytes a document verification hashes */
	die(ward_attest_parse(sandbox.doc.p, sandbox.doc.len, &d));
	sig_structure(d, &base.tbs);
	ward_attest_doc_free(d);
	die(ward_ec_generate(WARD_CURVE_P384, &base.key));
	die(op_base_sign(&base));
	if (fixtures != NULL) {
		char path[4096];
		FILE *f;

		snprintf(path, sizeof(path),
		    "%s/attestation/aws-nitro-2022-09-15.cbor", fixtures);
		if ((f = fopen(path, "rb")) != NULL) {
			uint8_t b[8192];
			size_t n = fread(b, 1, sizeof(b), f);

			fclose(f);
			die(ward_buf_append(&aws.doc, b, n));
			die(ward_attest_roots_new(true, &aws.roots));
			aws.at = 1663263864;
			have_aws = true;
		}
	}
	if (!have_aws)
		printf("(AWS document: fixtures not found; that row is "
		       "skipped)\n");

	for (int round = 0; round < runs; round++) {
		double v[6];

		v[0] = rate(op_base_verify, &base);
		v[1] = rate(op_verify, &sandbox);
		v[2] = have_aws ? rate(op_verify, &aws) : 0;
		v[3] = rate(op_base_sign, &base);
		v[4] = rate(op_sign, &sc);
		for (int i = 0; i < 5; i++)
			if (v[i] > best[i])
				best[i] = v[i];
	}
	printf("bench/attest: %d round(s) of %.1f s per case, best kept; "
	       "payload %zu bytes\n",
	    runs, seconds, base.tbs.len);
	printf("%-44s %10s %8s\n", "case", "per s", "ratio");
	printf("%-44s %10.0f %8s\n", "openssl ECDSA P-384 verify (baseline)",
	    best[0], "1.00");
	printf("%-44s %10.0f %8.2f  (ceiling 0.33: 3 verifies)\n",
	    "ward verify, sandbox document (2 links)", best[1],
	    best[1] / best[0]);
	if (have_aws)
		printf("%-44s %10.0f %8.2f  (ceiling 0.20: 5 verifies)\n",
		    "ward verify, AWS document (4 links)", best[2],
		    best[2] / best[0]);
	printf("%-44s %10.0f %8s\n", "openssl ECDSA P-384 sign (baseline)",
	    best[3], "1.00");
	printf("%-44s %10.0f %8.2f\n", "ward produce (encode + ES384 sign)",
	    best[4], best[4] / best[3]);

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "bench/attest: could not remove %s\n", dir);
	ward_buf_free(&sc.out);
	ward_buf_free(&sandbox.doc);
	ward_buf_free(&aws.doc);
	ward_buf_free(&base.tbs);
	ward_pkey_free(base.key);
	ward_attest_roots_free(sandbox.roots);
	ward_attest_roots_free(aws.roots);
	ward_attest_signer_free(sc.s);
	ward_ca_free(ca);
	return 0;
}
