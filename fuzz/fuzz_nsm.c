/* libFuzzer: the NSM codec (nitro.md §2.3) both ways and the emulation's
 * request handler, with their invariants: whatever decodes re-encodes to
 * something that decodes to the same message and re-encodes identically,
 * and the handler answers every input with a well-formed response. */
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ward/attest.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ward_ca *ca;
static struct ward_attest_signer *signer;

static int
rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	return remove(p);
}

/* A CA in a temporary directory, loaded and then deleted: the signer
 * keeps what it needs in memory. */
int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char dir[4096];

	if (snprintf(dir, sizeof(dir), "%s/ward-fuzz-nsm-XXXXXX", base) >=
	        (int)sizeof(dir) ||
	    mkdtemp(dir) == NULL || ward_ca_init(dir, true) != 0 ||
	    ward_ca_load(dir, &ca) != 0 ||
	    ward_attest_signer_new(ca, &signer) != 0) {
		fprintf(stderr, "fuzz_nsm: set-up failed: %s\n", ward_errmsg());
		__builtin_trap();
	}
	nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	/* malformed requests are logged at debug level only */
	ward_log_set_level(WARD_LOG_ERROR);
	return 0;
}

static bool
same_bytes(struct ward_bytes a, struct ward_bytes b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static bool
same_opt(struct ward_nsm_opt a, struct ward_nsm_opt b)
{
	return a.present == b.present && (!a.present || same_bytes(a.v, b.v));
}

static void
check_request(const uint8_t *data, size_t size)
{
	struct ward_nsm_request q, q2;
	struct ward_buf b1 = {0}, b2 = {0};

	if (ward_nsm_request_decode(data, size, &q) != 0)
		return;
	/* views stay inside the input */
	if ((q.data.len > 0 &&
	        (q.data.p < data || q.data.p + q.data.len > data + size)))
		__builtin_trap();
	/* the canonical form is never longer than what decoded, but for
	 * Attestation's optional keys, which a request may leave out and the
	 * canonical form writes as null: "user_data", "nonce", "public_key"
	 * with their nulls are 11 + 7 + 12 = 30 bytes */
	if (ward_nsm_request_encode(&q, &b1) != 0 || b1.len > size + 30 ||
	    ward_nsm_request_decode(b1.p, b1.len, &q2) != 0 ||
	    ward_nsm_request_encode(&q2, &b2) != 0 || b1.len != b2.len ||
	    memcmp(b1.p, b2.p, b1.len) != 0)
		__builtin_trap();
	if (q.op != q2.op || q.index != q2.index || q.range != q2.range ||
	    !same_bytes(q.data, q2.data) ||
	    !same_opt(q.user_data, q2.user_data) ||
	    !same_opt(q.nonce, q2.nonce) ||
	    !same_opt(q.public_key, q2.public_key))
		__builtin_trap();
	ward_buf_free(&b1);
	ward_buf_free(&b2);
}

static void
check_response(const uint8_t *data, size_t size)
{
	struct ward_nsm_response r, r2;
	struct ward_buf b1 = {0}, b2 = {0};

	if (ward_nsm_response_decode(data, size, &r) != 0)
		return;
	if (r.locked_pcrs_len > WARD_NSM_LOCKED_MAX)
		__builtin_trap();
	for (size_t i = 1; i < r.locked_pcrs_len; i++)
		if (r.locked_pcrs[i] <= r.locked_pcrs[i - 1])
			__builtin_trap();
	if (ward_nsm_response_encode(&r, &b1) != 0 || b1.len > size ||
	    ward_nsm_response_decode(b1.p, b1.len, &r2) != 0 ||
	    ward_nsm_response_encode(&r2, &b2) != 0 || b1.len != b2.len ||
	    memcmp(b1.p, b2.p, b1.len) != 0)
		__builtin_trap();
	if (r.op != r2.op || r.error != r2.error || r.lock != r2.lock ||
	    !same_bytes(r.data, r2.data) ||
	    !same_bytes(r.module_id, r2.module_id) ||
	    r.locked_pcrs_len != r2.locked_pcrs_len ||
	    memcmp(r.locked_pcrs, r2.locked_pcrs,
	        r.locked_pcrs_len * sizeof(r.locked_pcrs[0])) != 0 ||
	    r.digest != r2.digest || r.max_pcrs != r2.max_pcrs ||
	    r.version_major != r2.version_major ||
	    r.version_minor != r2.version_minor ||
	    r.version_patch != r2.version_patch)
		__builtin_trap();
	ward_buf_free(&b1);
	ward_buf_free(&b2);
}

/* A fresh emulation per input (boot PCRs locked, as an enclave sees it),
 * so that every run is reproducible from its input alone. */
static void
check_server(const uint8_t *data, size_t size)
{
	struct ward_nsm_server *s;
	struct ward_nsm_request q;
	struct ward_nsm_response r;
	struct ward_buf resp = {0};
	int e;

	if (ward_nsm_server_new(signer, "i-fuzz-enc", &s) != 0 ||
	    ward_nsm_server_lock_boot(s) != 0)
		__builtin_trap();
	e = ward_nsm_server_handle(s, data, size, &resp);
	if (e != 0 && e != -WARD_ENOMEM)
		__builtin_trap();
	if (e == 0) {
		if (ward_nsm_response_decode(resp.p, resp.len, &r) != 0)
			__builtin_trap();
		/* an undecodable request is InvalidOperation (or too large);
		 * a decodable one never is */
		if (ward_nsm_request_decode(data, size, &q) != 0) {
			if (r.op != WARD_NSM_ERROR ||
			    (r.error != WARD_NSM_INVALID_OPERATION &&
			        r.error != WARD_NSM_INPUT_TOO_LARGE))
				__builtin_trap();
		} else if (r.op != WARD_NSM_ERROR && r.op != q.op) {
			__builtin_trap();
		}
	}
	ward_buf_free(&resp);
	ward_nsm_server_free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_request(data, size);
	check_response(data, size);
	check_server(data, size);
	return 0;
}
