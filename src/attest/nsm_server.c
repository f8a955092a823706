/*
 * The NSM emulation a sandbox enclave talks to (nitro.md §2.3 semantics,
 * as QEMU's virtio-nsm implements them): 32 SHA-384 PCRs with extend and
 * lock, DescribeNSM, GetRandom and Attestation documents signed by a
 * ward_attest_signer. One mutex guards the registers; a request is
 * handled whole under it, so every answer sees one consistent state.
 */
#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "attest/internal.h"
#include "ward/attest.h"

struct ward_nsm_server {
	pthread_mutex_t mu;
	struct ward_attest_signer *signer; /* borrowed */
	char *module_id;
	size_t module_id_len;
	uint8_t pcrs[WARD_NSM_PCR_COUNT][WARD_NSM_PCR_LEN];
	uint32_t locked; /* bit i: PCR i is locked */
};

int
ward_nsm_server_new(struct ward_attest_signer *signer, const char *module_id,
    struct ward_nsm_server **out)
{
	struct ward_nsm_server *s;
	size_t n;

	*out = NULL;
	if (module_id == NULL || (n = strlen(module_id)) == 0 ||
	    n > WARD_ATTEST_MODULE_ID_MAX)
		return ward_errf(WARD_EUSAGE,
		    "NSM emulation: the module id must be 1 to %d bytes",
		    WARD_ATTEST_MODULE_ID_MAX);
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return ward_enomem();
	if (pthread_mutex_init(&s->mu, NULL) != 0) {
		free(s);
		return ward_errf(
		    WARD_EINTERNAL, "NSM emulation: cannot create a mutex");
	}
	if ((s->module_id = strdup(module_id)) == NULL) {
		ward_nsm_server_free(s);
		return ward_enomem();
	}
	s->module_id_len = n;
	s->signer = signer;
	*out = s;
	return 0;
}

void
ward_nsm_server_free(struct ward_nsm_server *s)
{
	if (s == NULL)
		return;
	pthread_mutex_destroy(&s->mu);
	free(s->module_id);
	free(s);
}

int
ward_nsm_server_set_pcr(struct ward_nsm_server *s, uint16_t index,
    const uint8_t value[WARD_NSM_PCR_LEN])
{
	int r = 0;

	if (index >= WARD_NSM_PCR_COUNT)
		return ward_errf(WARD_EUSAGE,
		    "NSM emulation: no PCR %u (there are %d)", index,
		    WARD_NSM_PCR_COUNT);
	pthread_mutex_lock(&s->mu);
	if (s->locked & (1u << index))
		r = ward_errf(
		    WARD_EUNSAFE, "NSM emulation: PCR %u is locked", index);
	else
		memcpy(s->pcrs[index], value, WARD_NSM_PCR_LEN);
	pthread_mutex_unlock(&s->mu);
	return r;
}

int
ward_nsm_server_lock_boot(struct ward_nsm_server *s)
{
	pthread_mutex_lock(&s->mu);
	s->locked |= (1u << WARD_NSM_BOOT_PCRS) - 1;
	pthread_mutex_unlock(&s->mu);
	return 0;
}

/* PCR = SHA-384(PCR || data): the raw data, not a hash of it (§2.3). */
static int
extend(uint8_t pcr[WARD_NSM_PCR_LEN], const uint8_t *data, size_t n)
{
	EVP_MD_CTX *ctx;
	unsigned int len = 0;
	int r = 0;

	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return ward_enomem();
	if (EVP_DigestInit_ex(ctx, EVP_sha384(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, pcr, WARD_NSM_PCR_LEN) != 1 ||
	    (n > 0 && EVP_DigestUpdate(ctx, data, n) != 1) ||
	    EVP_DigestFinal_ex(ctx, pcr, &len) != 1 || len != WARD_NSM_PCR_LEN)
		r = ward_crypto_err(WARD_ECRYPTO, "SHA-384");
	EVP_MD_CTX_free(ctx);
	return r;
}

/*
 * Everything a handler answers with, owned here until it is encoded.
 */
struct answer {
	struct ward_nsm_response r;
	uint8_t pcr[WARD_NSM_PCR_LEN];
	uint8_t random[WARD_NSM_RANDOM_LEN];
	struct ward_buf doc;
};

static void
fail(struct answer *a, enum ward_nsm_error e)
{
	a->r.op = WARD_NSM_ERROR;
	a->r.error = e;
}

/*
 * A library failure inside a handler: out of memory stays a failure of
 * the call; anything else (the RNG, the signer) becomes InternalError for
 * the enclave, with the reason logged for the operator since the answer
 * cannot carry it.
 */
static int
internal(struct answer *a, int r, const char *what)
{
	if (r == -WARD_ENOMEM)
		return r;
	ward_warn("NSM emulation: %s: %s", what, ward_errmsg());
	fail(a, WARD_NSM_INTERNAL_ERROR);
	return 0;
}

static bool
bad_index(struct answer *a, uint16_t index)
{
	if (index < WARD_NSM_PCR_COUNT)
		return false;
	fail(a, WARD_NSM_INVALID_INDEX);
	return true;
}

static int
attestation(struct ward_nsm_server *s, const struct ward_nsm_request *q,
    struct answer *a)
{
	struct ward_attest_fields f = {0};
	int r;

	/* nsm-api docs/attestation_process.md limits (§2.3) */
	if ((q->user_data.present &&
	        q->user_data.v.len > WARD_NSM_USER_DATA_MAX) ||
	    (q->nonce.present && q->nonce.v.len > WARD_NSM_NONCE_MAX) ||
	    (q->public_key.present &&
	        (q->public_key.v.len == 0 ||
	            q->public_key.v.len > WARD_NSM_PUBLIC_KEY_MAX))) {
		fail(a, WARD_NSM_INVALID_ARGUMENT);
		return 0;
	}
	if (s->signer == NULL) {
		ward_warn("NSM emulation: no document signer configured");
		fail(a, WARD_NSM_INTERNAL_ERROR);
		return 0;
	}
	f.module_id = (struct ward_bytes){
	    (const uint8_t *)s->module_id, s->module_id_len};
	f.timestamp_ms = 0;
	f.pcr_mask = s->locked;
	f.pcrs = (const uint8_t(*)[WARD_NSM_PCR_LEN])s->pcrs;
	f.public_key = q->public_key;
	f.user_data = q->user_data;
	f.nonce = q->nonce;
	if ((r = ward_attest_sign(s->signer, &f, &a->doc)) != 0)
		return internal(a, r, "signing an attestation document");
	a->r.op = WARD_NSM_ATTESTATION;
	a->r.data = (struct ward_bytes){a->doc.p, a->doc.len};
	return 0;
}

/* Called with s->mu held. */
static int
dispatch(struct ward_nsm_server *s, const struct ward_nsm_request *q,
    struct answer *a)
{
	int r;

	switch (q->op) {
	case WARD_NSM_DESCRIBE_PCR:
		if (bad_index(a, q->index))
			return 0;
		memcpy(a->pcr, s->pcrs[q->index], WARD_NSM_PCR_LEN);
		a->r.op = q->op;
		a->r.lock = (s->locked & (1u << q->index)) != 0;
		a->r.data = (struct ward_bytes){a->pcr, WARD_NSM_PCR_LEN};
		return 0;
	case WARD_NSM_EXTEND_PCR:
		if (bad_index(a, q->index))
			return 0;
		if (s->locked & (1u << q->index)) {
			fail(a, WARD_NSM_READ_ONLY_INDEX);
			return 0;
		}
		/* extend a copy, so a failure leaves the register as it was */
		memcpy(a->pcr, s->pcrs[q->index], WARD_NSM_PCR_LEN);
		if ((r = extend(a->pcr, q->data.p, q->data.len)) != 0)
			return internal(a, r, "extending a PCR");
		memcpy(s->pcrs[q->index], a->pcr, WARD_NSM_PCR_LEN);
		a->r.op = q->op;
		a->r.data = (struct ward_bytes){a->pcr, WARD_NSM_PCR_LEN};
		return 0;
	case WARD_NSM_LOCK_PCR:
		if (bad_index(a, q->index))
			return 0;
		if (s->locked & (1u << q->index)) {
			fail(a, WARD_NSM_READ_ONLY_INDEX);
			return 0;
		}
		s->locked |= 1u << q->index;
		a->r.op = q->op;
		return 0;
	case WARD_NSM_LOCK_PCRS:
		if (q->range > WARD_NSM_PCR_COUNT) {
			fail(a, WARD_NSM_INVALID_INDEX);
			return 0;
		}
		/* [0, range); PCRs already locked are no error here (QEMU's
		 * handle_lock_pcrs sets the flags unconditionally) */
		if (q->range == WARD_NSM_PCR_COUNT)
			s->locked = UINT32_MAX;
		else
			s->locked |= (1u << q->range) - 1;
		a->r.op = q->op;
		return 0;
	case WARD_NSM_DESCRIBE_NSM:
		a->r.op = q->op;
		a->r.version_major = WARD_NSM_VERSION_MAJOR;
		a->r.version_minor = WARD_NSM_VERSION_MINOR;
		a->r.version_patch = WARD_NSM_VERSION_PATCH;
		a->r.module_id = (struct ward_bytes){
		    (const uint8_t *)s->module_id, s->module_id_len};
		a->r.max_pcrs = WARD_NSM_PCR_COUNT;
		for (uint16_t i = 0; i < WARD_NSM_PCR_COUNT; i++)
			if (s->locked & (1u << i))
				a->r.locked_pcrs[a->r.locked_pcrs_len++] = i;
		a->r.digest = WARD_NSM_SHA384;
		return 0;
	case WARD_NSM_ATTESTATION:
		return attestation(s, q, a);
	case WARD_NSM_GET_RANDOM:
		if ((r = ward_random(a->random, sizeof(a->random))) != 0)
			return internal(a, r, "random bytes");
		a->r.op = q->op;
		a->r.data = (struct ward_bytes){a->random, sizeof(a->random)};
		return 0;
	case WARD_NSM_ERROR:
		break;
	}
	fail(a, WARD_NSM_INVALID_OPERATION);
	return 0;
}

static int
respond_error(struct ward_buf *resp, enum ward_nsm_error e)
{
	struct ward_nsm_response r = {.op = WARD_NSM_ERROR, .error = e};

	resp->len = 0;
	return ward_nsm_response_encode(&r, resp);
}

int
ward_nsm_server_handle(struct ward_nsm_server *s, const uint8_t *req, size_t n,
    struct ward_buf *resp)
{
	struct ward_nsm_request q;
	struct answer a = {0};
	int r;

	resp->len = 0;
	if (n > WARD_NSM_REQUEST_MAX)
		return respond_error(resp, WARD_NSM_INPUT_TOO_LARGE);
	if (ward_nsm_request_decode(req, n, &q) != 0) {
		ward_debug("NSM emulation: %s", ward_errmsg());
		return respond_error(resp, WARD_NSM_INVALID_OPERATION);
	}
	pthread_mutex_lock(&s->mu);
	r = dispatch(s, &q, &a);
	pthread_mutex_unlock(&s->mu);
	/* the answer refers only to a and to the immutable module id */
	if (r == 0 && (r = ward_nsm_response_encode(&a.r, resp)) != 0 &&
	    r != -WARD_ENOMEM) {
		ward_warn("NSM emulation: %s", ward_errmsg());
		r = respond_error(resp, WARD_NSM_INTERNAL_ERROR);
	}
	ward_cleanse(a.random, sizeof(a.random));
	ward_buf_free(&a.doc);
	return r;
}

int
ward_nsm_server_serve_fd(struct ward_nsm_server *s, int fd)
{
	static const char who[] = "NSM emulation";
	struct ward_buf resp = {.secret = true}; /* GetRandom answers */
	uint8_t *req = NULL;
	size_t len;
	bool eof;
	int r;

	if ((req = malloc(WARD_NSM_REQUEST_MAX)) == NULL)
		return ward_enomem();
	for (;;) {
		r = ward_nsm_frame_read(
		    fd, req, WARD_NSM_REQUEST_MAX, &len, &eof, who);
		if (r == -WARD_ELIMIT) {
			/* answer as the NSM would, then hang up: the stream
			 * cannot be resynchronised without reading it all */
			char why[256];

			snprintf(why, sizeof(why), "%s", ward_errmsg());
			if ((r = respond_error(
			         &resp, WARD_NSM_INPUT_TOO_LARGE)) != 0 ||
			    (r = ward_nsm_frame_write(
			         fd, resp.p, resp.len, who)) != 0)
				goto out;
			shutdown(fd, SHUT_RDWR);
			r = ward_errf(
			    WARD_ELIMIT, "%s; connection closed", why);
			goto out;
		}
		if (r != 0)
			goto out;
		if (eof)
			break; /* closed between frames: done */
		if ((r = ward_nsm_server_handle(s, req, len, &resp)) != 0 ||
		    (r = ward_nsm_frame_write(fd, resp.p, resp.len, who)) != 0)
			goto out;
	}
	r = 0;
out:
	free(req);
	ward_buf_free(&resp);
	return r;
}
