/*
 * Attestation documents: COSE_Sign1 (RFC 8152) around the NSM's
 * AttestationDocument map (nitro.md §3.1-§3.3). The writer encodes as NSM
 * does; the reader accepts every shape real NSMs emit (tagged or untagged
 * COSE, definite or indefinite maps and arrays, chunked strings) and keeps
 * the payload bytes as received, because the signature covers them and
 * nothing else.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attest/internal.h"
#include "ward/attest.h"

#define COSE_TAG_SIGN1 18
#define COSE_HDR_ALG 1
#define COSE_ALG_ES384 35 /* -35, encoded as negint 34: 0x38 0x22 */

/* {1: -35}: alg ES384 (nitro.md §3.2). */
static const uint8_t protected_es384[] = {0xa1, 0x01, 0x38, 0x22};

int
ward_cose_sig_structure(
    struct ward_bytes prot, struct ward_bytes payload, struct ward_buf *out)
{
	int r;

	if ((r = ward_cbor_put_array(out, 4)) != 0 ||
	    (r = ward_cbor_put_textz(out, "Signature1")) != 0 ||
	    (r = ward_cbor_put_bytes(out, prot.p, prot.len)) != 0 ||
	    (r = ward_cbor_put_bytes(out, NULL, 0)) != 0 ||
	    (r = ward_cbor_put_bytes(out, payload.p, payload.len)) != 0)
		return r;
	return 0;
}

static int
put_opt(struct ward_buf *b, const char *key, const struct ward_nsm_opt *o)
{
	int r;

	if ((r = ward_cbor_put_textz(b, key)) != 0)
		return r;
	if (!o->present)
		return ward_cbor_put_null(b);
	return ward_cbor_put_bytes(b, o->v.p, o->v.len);
}

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int
ward_attest_sign_with(struct evp_pkey_st *leaf_key, struct ward_bytes leaf_der,
    struct ward_bytes root_der, struct ward_bytes monitor_der,
    const struct ward_attest_fields *f, struct ward_buf *out)
{
	struct ward_buf payload = {0}, tbs = {0};
	uint8_t sig[WARD_ES384_SIG_LEN];
	size_t npcrs = 0;
	int r;

	if (f->module_id.len == 0 ||
	    f->module_id.len > WARD_ATTEST_MODULE_ID_MAX)
		return ward_errf(
		    WARD_EUSAGE, "module id of %zu bytes", f->module_id.len);
	if (f->pcr_mask == 0)
		return ward_errf(WARD_EUSAGE,
		    "a document carries 1 to 32 PCRs; none is locked");
	for (unsigned i = 0; i < WARD_NSM_PCR_COUNT; i++)
		npcrs += (f->pcr_mask >> i) & 1;
	/* Field order and encodings as serde_cbor writes the Rust struct
	 * AttestationDoc (nitro.md §3.1). */
	if ((r = ward_cbor_put_map(&payload, 9)) != 0 ||
	    (r = ward_cbor_put_textz(&payload, "module_id")) != 0 ||
	    (r = ward_cbor_put_text(&payload, (const char *)f->module_id.p,
	         f->module_id.len)) != 0 ||
	    (r = ward_cbor_put_textz(&payload, "digest")) != 0 ||
	    (r = ward_cbor_put_textz(&payload, "SHA384")) != 0 ||
	    (r = ward_cbor_put_textz(&payload, "timestamp")) != 0 ||
	    (r = ward_cbor_put_uint(&payload,
	         f->timestamp_ms != 0 ? f->timestamp_ms : now_ms())) != 0 ||
	    (r = ward_cbor_put_textz(&payload, "pcrs")) != 0 ||
	    (r = ward_cbor_put_map(&payload, npcrs)) != 0)
		goto out;
	for (unsigned i = 0; i < WARD_NSM_PCR_COUNT; i++) {
		if (((f->pcr_mask >> i) & 1) == 0)
			continue;
		if ((r = ward_cbor_put_uint(&payload, i)) != 0 ||
		    (r = ward_cbor_put_bytes(
		         &payload, f->pcrs[i], WARD_NSM_PCR_LEN)) != 0)
			goto out;
	}
	if ((r = ward_cbor_put_textz(&payload, "certificate")) != 0 ||
	    (r = ward_cbor_put_bytes(&payload, leaf_der.p, leaf_der.len)) !=
	        0 ||
	    (r = ward_cbor_put_textz(&payload, "cabundle")) != 0 ||
	    (r = ward_cbor_put_array(&payload, 2)) != 0 ||
	    (r = ward_cbor_put_bytes(&payload, root_der.p, root_der.len)) !=
	        0 ||
	    (r = ward_cbor_put_bytes(
	         &payload, monitor_der.p, monitor_der.len)) != 0 ||
	    (r = put_opt(&payload, "public_key", &f->public_key)) != 0 ||
	    (r = put_opt(&payload, "user_data", &f->user_data)) != 0 ||
	    (r = put_opt(&payload, "nonce", &f->nonce)) != 0)
		goto out;
	if ((r = ward_cose_sig_structure(
	         (struct ward_bytes){protected_es384, sizeof(protected_es384)},
	         (struct ward_bytes){payload.p, payload.len}, &tbs)) != 0 ||
	    (r = ward_es384_sign(leaf_key, tbs.p, tbs.len, sig)) != 0)
		goto out;
	/* NSM emits COSE_Sign1 untagged (nitro.md §3.2). */
	if ((r = ward_cbor_put_array(out, 4)) != 0 ||
	    (r = ward_cbor_put_bytes(
	         out, protected_es384, sizeof(protected_es384))) != 0 ||
	    (r = ward_cbor_put_map(out, 0)) != 0 ||
	    (r = ward_cbor_put_bytes(out, payload.p, payload.len)) != 0 ||
	    (r = ward_cbor_put_bytes(out, sig, sizeof(sig))) != 0)
		goto out;
out:
	ward_buf_free(&payload);
	ward_buf_free(&tbs);
	return r;
}

void
ward_attest_doc_free(struct ward_attest_doc *d)
{
	if (d == NULL)
		return;
	for (size_t i = 0; i < d->owned_len; i++)
		ward_cbor_str_free(&d->owned[i]);
	free(d->input);
	free(d);
}

/* Keep a string's storage (if it joined chunks) for the document's life. */
static int
keep(struct ward_attest_doc *d, struct ward_cbor_str *s, struct ward_bytes *v)
{
	*v = s->v;
	if (s->owned == NULL)
		return 0;
	if (d->owned_len == sizeof(d->owned) / sizeof(d->owned[0])) {
		ward_cbor_str_free(s);
		return ward_errf(WARD_ELIMIT,
		    "attestation document: too many chunked strings");
	}
	d->owned[d->owned_len++] = *s;
	return 0;
}

static int
read_bytes(struct ward_attest_doc *d, struct ward_cbor_reader *r,
    const char *field, size_t min, size_t max, struct ward_bytes *v)
{
	struct ward_cbor_str s;
	int e;

	if ((e = ward_cbor_read_bytes(r, field, max, &s)) != 0)
		return e;
	if ((e = keep(d, &s, v)) != 0)
		return e;
	if (v->len < min)
		return ward_errf(WARD_EFORMAT,
		    "%s: %s is %zu bytes, fewer than %zu", r->what, field,
		    v->len, min);
	return 0;
}

/* An optional field: null (absent) or a byte string. */
static int
read_opt(struct ward_attest_doc *d, struct ward_cbor_reader *r,
    const char *field, size_t min, size_t max, struct ward_nsm_opt *o)
{
	int e;

	if ((e = ward_cbor_take_null(r)) < 0)
		return e;
	if (e == 1) {
		o->present = false;
		return 0;
	}
	o->present = true;
	return read_bytes(d, r, field, min, max, &o->v);
}

static int
read_pcrs(struct ward_attest_doc *d, struct ward_cbor_reader *r)
{
	struct ward_cbor_coll c;
	size_t n = 0;
	int e;

	if ((e = ward_cbor_enter_map(r, "pcrs", &c)) != 0)
		return e;
	while ((e = ward_cbor_more(r, &c)) == 1) {
		uint64_t idx;
		struct ward_bytes *v;

		if ((e = ward_cbor_read_uint(r, "PCR index", &idx)) != 0)
			return e;
		if (idx >= WARD_NSM_PCR_COUNT)
			return ward_errf(WARD_EFORMAT, "%s: PCR index %llu",
			    r->what, (unsigned long long)idx);
		if ((d->pcr_mask >> idx) & 1)
			return ward_errf(WARD_EFORMAT, "%s: PCR%llu twice",
			    r->what, (unsigned long long)idx);
		d->pcr_mask |= 1u << idx;
		v = &d->pcrs[idx];
		if ((e = read_bytes(d, r, "PCR value", 0, 64, v)) != 0)
			return e;
		if (v->len != 32 && v->len != 48 && v->len != 64)
			return ward_errf(WARD_EFORMAT,
			    "%s: PCR%llu is %zu bytes, not 32, 48 or 64",
			    r->what, (unsigned long long)idx, v->len);
		n++;
	}
	if (e < 0)
		return e;
	if (n == 0)
		return ward_errf(WARD_EFORMAT, "%s: no PCRs", r->what);
	return 0;
}

static int
read_cabundle(struct ward_attest_doc *d, struct ward_cbor_reader *r)
{
	struct ward_cbor_coll c;
	int e;

	if ((e = ward_cbor_enter_array(r, "cabundle", &c)) != 0)
		return e;
	while ((e = ward_cbor_more(r, &c)) == 1) {
		if (d->cabundle_len == WARD_ATTEST_CABUNDLE_MAX)
			return ward_errf(WARD_ELIMIT,
			    "%s: more than %d certificates in cabundle",
			    r->what, WARD_ATTEST_CABUNDLE_MAX);
		if ((e = read_bytes(d, r, "cabundle certificate", 1,
		         WARD_ATTEST_CERT_MAX,
		         &d->cabundle[d->cabundle_len])) != 0)
			return e;
		d->cabundle_len++;
	}
	if (e < 0)
		return e;
	if (d->cabundle_len == 0)
		return ward_errf(WARD_EFORMAT, "%s: empty cabundle", r->what);
	return 0;
}

enum field {
	F_MODULE_ID,
	F_DIGEST,
	F_TIMESTAMP,
	F_PCRS,
	F_CERTIFICATE,
	F_CABUNDLE,
	F_PUBLIC_KEY,
	F_USER_DATA,
	F_NONCE,
	F_COUNT,
};
static const char *const field_names[F_COUNT] = {
    "module_id",
    "digest",
    "timestamp",
    "pcrs",
    "certificate",
    "cabundle",
    "public_key",
    "user_data",
    "nonce",
};
#define F_REQUIRED 0x3f /* the first six */

static int
read_field(struct ward_attest_doc *d, struct ward_cbor_reader *r, enum field f)
{
	struct ward_cbor_str s;
	int e;

	switch (f) {
	case F_MODULE_ID:
		if ((e = ward_cbor_read_text(
		         r, "module_id", WARD_ATTEST_MODULE_ID_MAX, &s)) != 0 ||
		    (e = keep(d, &s, &d->module_id)) != 0)
			return e;
		if (d->module_id.len == 0)
			return ward_errf(
			    WARD_EFORMAT, "%s: empty module_id", r->what);
		return 0;
	case F_DIGEST:
		if ((e = ward_cbor_read_text(r, "digest", 16, &s)) != 0 ||
		    (e = keep(d, &s, &d->digest)) != 0)
			return e;
		if (d->digest.len != 6 || memcmp(d->digest.p, "SHA384", 6) != 0)
			return ward_errf(WARD_EUNSUPPORTED,
			    "%s: digest %s (only SHA384 is defined)", r->what,
			    ward_quote(d->digest.p, d->digest.len));
		return 0;
	case F_TIMESTAMP:
		if ((e = ward_cbor_read_uint(
		         r, "timestamp", &d->timestamp_ms)) != 0)
			return e;
		if (d->timestamp_ms == 0)
			return ward_errf(
			    WARD_EFORMAT, "%s: zero timestamp", r->what);
		return 0;
	case F_PCRS:
		return read_pcrs(d, r);
	case F_CERTIFICATE:
		return read_bytes(d, r, "certificate", 1, WARD_ATTEST_CERT_MAX,
		    &d->certificate);
	case F_CABUNDLE:
		return read_cabundle(d, r);
	case F_PUBLIC_KEY:
		return read_opt(d, r, "public_key", 1, WARD_NSM_PUBLIC_KEY_MAX,
		    &d->public_key);
	case F_USER_DATA:
		return read_opt(d, r, "user_data", 0, WARD_NSM_USER_DATA_MAX,
		    &d->user_data);
	case F_NONCE:
		return read_opt(
		    d, r, "nonce", 0, WARD_NSM_NONCE_MAX, &d->nonce);
	case F_COUNT:
		break;
	}
	return ward_errf(WARD_EINTERNAL, "bad field");
}

/* The AttestationDocument map, with the checks of nitro.md §3.1. */
static int
parse_payload(struct ward_attest_doc *d)
{
	struct ward_cbor_reader r;
	struct ward_cbor_coll c;
	uint32_t seen = 0;
	int e;

	ward_cbor_reader_init(
	    &r, d->payload.p, d->payload.len, "attestation document payload");
	if ((e = ward_cbor_enter_map(&r, "payload", &c)) != 0)
		return e;
	while ((e = ward_cbor_more(&r, &c)) == 1) {
		struct ward_cbor_str key;
		enum field f;

		if ((e = ward_cbor_read_text(&r, "key", 64, &key)) != 0)
			return e;
		for (f = 0; f < F_COUNT; f++) {
			if (strlen(field_names[f]) == key.v.len &&
			    memcmp(field_names[f], key.v.p, key.v.len) == 0)
				break;
		}
		ward_cbor_str_free(&key);
		if (f == F_COUNT) {
			/* Unknown fields are covered by the signature and
			 * ignored, as AWS's own decoder ignores them. */
			if ((e = ward_cbor_skip(&r)) != 0)
				return e;
			continue;
		}
		if ((seen >> f) & 1)
			return ward_errf(WARD_EFORMAT, "%s: %s twice", r.what,
			    field_names[f]);
		seen |= 1u << f;
		if ((e = read_field(d, &r, f)) != 0)
			return e;
	}
	if (e < 0)
		return e;
	if ((e = ward_cbor_end(&r)) != 0)
		return e;
	for (unsigned f = 0; f < F_COUNT; f++) {
		if ((F_REQUIRED >> f & 1) && !((seen >> f) & 1))
			return ward_errf(
			    WARD_EFORMAT, "%s: no %s", r.what, field_names[f]);
	}
	return 0;
}

/* The protected header must say alg ES384 and nothing we do not know. */
static int
check_protected(struct ward_bytes prot)
{
	struct ward_cbor_reader r;
	struct ward_cbor_coll c;
	struct ward_cbor_item it;
	bool alg = false;
	int e;

	ward_cbor_reader_init(&r, prot.p, prot.len, "COSE protected header");
	if ((e = ward_cbor_enter_map(&r, "header", &c)) != 0)
		return e;
	while ((e = ward_cbor_more(&r, &c)) == 1) {
		uint64_t label;

		if ((e = ward_cbor_read_uint(&r, "label", &label)) != 0)
			return e;
		if (label != COSE_HDR_ALG || alg)
			return ward_errf(WARD_EUNSUPPORTED,
			    "%s: unsupported parameter %llu", r.what,
			    (unsigned long long)label);
		if ((e = ward_cbor_next(&r, &it)) != 0)
			return e;
		if (it.type != WARD_CBOR_NEGINT ||
		    it.value != COSE_ALG_ES384 - 1)
			return ward_errf(WARD_EUNSUPPORTED,
			    "%s: algorithm is not ES384 (-35)", r.what);
		alg = true;
	}
	if (e < 0)
		return e;
	if ((e = ward_cbor_end(&r)) != 0)
		return e;
	if (!alg)
		return ward_errf(WARD_EFORMAT, "%s: no algorithm", r.what);
	return 0;
}

int
ward_attest_parse(const uint8_t *p, size_t n, struct ward_attest_doc **out)
{
	struct ward_attest_doc *d;
	struct ward_cbor_reader r;
	struct ward_cbor_item it;
	struct ward_cbor_coll c;
	struct ward_bytes *parts[3];
	size_t nparts = 0;
	int e;

	*out = NULL;
	if (n > WARD_ATTEST_DOC_MAX)
		return ward_errf(WARD_ELIMIT,
		    "attestation document of %zu bytes (the limit is %d)", n,
		    WARD_ATTEST_DOC_MAX);
	if ((d = calloc(1, sizeof(*d))) == NULL ||
	    (d->input = malloc(n > 0 ? n : 1)) == NULL) {
		free(d);
		return ward_enomem();
	}
	if (n > 0)
		memcpy(d->input, p, n);
	parts[0] = &d->protected_hdr;
	parts[1] = &d->payload;
	parts[2] = &d->signature;
	ward_cbor_reader_init(&r, d->input, n, "attestation document");
	if ((e = ward_cbor_peek(&r, &it)) != 0)
		goto out;
	if (it.type == WARD_CBOR_TAG) {
		if (it.value != COSE_TAG_SIGN1) {
			e = ward_errf(WARD_EFORMAT,
			    "%s: tag %llu, not COSE_Sign1 (18)", r.what,
			    (unsigned long long)it.value);
			goto out;
		}
		d->tagged = true;
		(void)ward_cbor_next(&r, &it);
	}
	if ((e = ward_cbor_enter_array(&r, "COSE_Sign1", &c)) != 0)
		goto out;
	for (size_t i = 0; (e = ward_cbor_more(&r, &c)) == 1; i++) {
		if (i >= 4) {
			e = ward_errf(WARD_EFORMAT,
			    "%s: COSE_Sign1 has more than 4 elements", r.what);
			goto out;
		}
		if (i == 1) {
			/* Unprotected header: a map, not covered by the
			 * signature; NSM leaves it empty. */
			if ((e = ward_cbor_peek(&r, &it)) != 0)
				goto out;
			if (it.type != WARD_CBOR_MAP) {
				e = ward_errf(WARD_EFORMAT,
				    "%s: unprotected header is not a map",
				    r.what);
				goto out;
			}
			if ((e = ward_cbor_skip(&r)) != 0)
				goto out;
			continue;
		}
		if ((e = read_bytes(d, &r,
		         i == 0       ? "protected header"
		             : i == 2 ? "payload"
		                      : "signature",
		         i == 2 ? 1 : 0, WARD_ATTEST_DOC_MAX, parts[nparts])) !=
		    0)
			goto out;
		nparts++;
	}
	if (e < 0)
		goto out;
	if (nparts != 3) {
		e = ward_errf(WARD_EFORMAT,
		    "%s: COSE_Sign1 has fewer than 4 elements", r.what);
		goto out;
	}
	if ((e = ward_cbor_end(&r)) != 0)
		goto out;
	if (d->signature.len != WARD_ES384_SIG_LEN) {
		e = ward_errf(WARD_EFORMAT,
		    "%s: signature is %zu bytes, not %d (ES384 r||s)", r.what,
		    d->signature.len, WARD_ES384_SIG_LEN);
		goto out;
	}
	if ((e = check_protected(d->protected_hdr)) != 0 ||
	    (e = parse_payload(d)) != 0)
		goto out;
	d->debug = false;
	if ((d->pcr_mask & 1) != 0) {
		d->debug = true;
		for (size_t i = 0; i < d->pcrs[0].len; i++)
			d->debug = d->debug && d->pcrs[0].p[i] == 0;
	}
	*out = d;
	d = NULL;
out:
	ward_attest_doc_free(d);
	return e;
}

/* verify.c needs the signed bytes. */
int
ward_attest_sig_structure(const struct ward_attest_doc *d, struct ward_buf *out)
{
	return ward_cose_sig_structure(d->protected_hdr, d->payload, out);
}
