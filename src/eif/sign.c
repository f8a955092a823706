/*
 * The EIF signature section (nitro.md §1.6): what nitro-cli's EifBuilder
 * writes when given --signing-certificate and --private-key, and what
 * describe-eif and run-enclave check.
 *
 *   [ { "signing_certificate": [uint...],   PEM bytes, one uint each
 *       "signature":           [uint...] } ] untagged COSE_Sign1 bytes
 *
 * The byte vectors are CBOR arrays of integers, not byte strings: serde
 * encodes Vec<u8> that way and QEMU's parser depends on it. The COSE
 * payload is PcrInfo {"register_index": 0, "register_value": [48 uints
 * of PCR0]}, signed ES384 over the RFC 8152 Sig_structure.
 *
 * The decoder accepts the map keys in either order (serde does) and
 * nothing else that nitro-cli would not write: one signature, definite
 * lengths, minimal integers no larger than a byte, an ES384 protected
 * header, an empty unprotected header (a COSE_Sign1 may carry tag 18, as
 * CoseSign1::from_bytes allows). Only P-384 keys are supported.
 */
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <string.h>

#include "ward/eif.h"

#define WHAT "EIF signature section"
#define COSE_TAG_SIGN1 18
#define COSE_HDR_ALG 1
#define COSE_ALG_ES384 35 /* -35: negint 34 */
#define KEY_MAX 32

/* {1: -35}: alg ES384 (nitro.md §3.2). */
static const uint8_t protected_es384[] = {0xa1, 0x01, 0x38, 0x22};

/* X509::from_pem(..).to_der() as nitro-cli does it: the first
 * certificate in the PEM bytes, re-encoded (OpenSSL keeps the original
 * encoding, so these are the DER bytes as issued). */
static int
pem_to_der(const uint8_t *pem, size_t n, struct ward_buf *der)
{
	int r;

	if (n == 0 || n > WARD_EIF_SIGNATURE_MAX)
		return ward_errf(WARD_EFORMAT,
		    "%s: signing certificate of %zu bytes", WHAT, n);
	if ((r = ward_x509_pem_to_der(pem, n, der)) != 0)
		r = ward_err_prefix(r, "%s: the signing certificate", WHAT);
	return r;
}

/* A Vec<u8> as serde_cbor writes it: an array of small uints. */
static int
put_byte_array(struct ward_buf *b, const uint8_t *p, size_t n)
{
	int r;

	if ((r = ward_cbor_put_array(b, n)) != 0)
		return r;
	for (size_t i = 0; i < n; i++)
		if ((r = ward_cbor_put_uint(b, p[i])) != 0)
			return r;
	return 0;
}

/* PcrInfo {register_index: 0, register_value: PCR0}, field order as the
 * Rust struct declares it. */
static int
put_pcr_info(struct ward_buf *b, const uint8_t pcr0[WARD_PCR_LEN])
{
	int r;

	if ((r = ward_cbor_put_map(b, 2)) != 0 ||
	    (r = ward_cbor_put_textz(b, "register_index")) != 0 ||
	    (r = ward_cbor_put_uint(b, 0)) != 0 ||
	    (r = ward_cbor_put_textz(b, "register_value")) != 0 ||
	    (r = put_byte_array(b, pcr0, WARD_PCR_LEN)) != 0)
		return r;
	return 0;
}

int
ward_eif_signature_encode(struct evp_pkey_st *key, const uint8_t *cert_pem,
    size_t cert_pem_len, const uint8_t pcr0[WARD_PCR_LEN], struct ward_buf *out)
{
	struct ward_buf der = {0}, payload = {0}, tbs = {0}, cose = {0};
	struct evp_pkey_st *pub = NULL;
	uint8_t sig[WARD_ES384_SIG_LEN];
	size_t start = out->len;
	int r;

	if ((r = pem_to_der(cert_pem, cert_pem_len, &der)) != 0)
		goto out;
	if ((r = ward_x509_pubkey(der.p, der.len, true, &pub)) != 0) {
		r = ward_err_prefix(r, "EIF signing supports only P-384 keys");
		goto out;
	}
	if (!ward_pkey_same_public(key, pub)) {
		r = ward_errf(WARD_EKEY,
		    "the signing key is not the key of the signing certificate "
		    "(EIF signing supports only P-384 keys)");
		goto out;
	}
	if ((r = put_pcr_info(&payload, pcr0)) != 0 ||
	    (r = ward_cose_sig_structure(
	         (struct ward_bytes){protected_es384, sizeof(protected_es384)},
	         (struct ward_bytes){payload.p, payload.len}, &tbs)) != 0 ||
	    (r = ward_es384_sign(key, tbs.p, tbs.len, sig)) != 0)
		goto out;
	/* CoseSign1::as_bytes(false): untagged. */
	if ((r = ward_cbor_put_array(&cose, 4)) != 0 ||
	    (r = ward_cbor_put_bytes(
	         &cose, protected_es384, sizeof(protected_es384))) != 0 ||
	    (r = ward_cbor_put_map(&cose, 0)) != 0 ||
	    (r = ward_cbor_put_bytes(&cose, payload.p, payload.len)) != 0 ||
	    (r = ward_cbor_put_bytes(&cose, sig, sizeof(sig))) != 0)
		goto out;
	if ((r = ward_cbor_put_array(out, 1)) != 0 ||
	    (r = ward_cbor_put_map(out, 2)) != 0 ||
	    (r = ward_cbor_put_textz(out, "signing_certificate")) != 0 ||
	    (r = put_byte_array(out, cert_pem, cert_pem_len)) != 0 ||
	    (r = ward_cbor_put_textz(out, "signature")) != 0 ||
	    (r = put_byte_array(out, cose.p, cose.len)) != 0)
		goto out;
	if (out->len - start > WARD_EIF_SIGNATURE_MAX)
		r = ward_errf(WARD_ELIMIT,
		    "the signature section would be %zu bytes (the limit is "
		    "%d): the signing certificate is too large",
		    out->len - start, WARD_EIF_SIGNATURE_MAX);
out:
	if (r != 0)
		out->len = start;
	ward_pkey_free(pub);
	ward_buf_free(&der);
	ward_buf_free(&payload);
	ward_buf_free(&tbs);
	ward_buf_free(&cose);
	return r;
}

/* A definite container of exactly n entries, as serde_cbor writes it. */
static int
enter_exact(struct ward_cbor_reader *r, const char *field, bool map, uint64_t n,
    struct ward_cbor_coll *c)
{
	int e;

	if ((e = map ? ward_cbor_enter_map(r, field, c)
	             : ward_cbor_enter_array(r, field, c)) != 0)
		return e;
	if (c->indefinite)
		return ward_errf(WARD_EFORMAT,
		    "%s: %s has an indefinite length", r->what, field);
	if (c->left != n)
		return ward_errf(WARD_EFORMAT,
		    "%s: %s has %llu entries, not %llu", r->what, field,
		    (unsigned long long)c->left, (unsigned long long)n);
	return 0;
}

/* An array of uints 0..255, each minimally encoded (QEMU insists on
 * 8-bit integers), appended to out. The count is bounded before the
 * loop: by max here and by the bytes left in ward_cbor_enter_array. */
static int
read_byte_array(struct ward_cbor_reader *r, const char *field, size_t max,
    struct ward_buf *out)
{
	struct ward_cbor_coll c;
	struct ward_cbor_item it;
	int e;

	if ((e = ward_cbor_enter_array(r, field, &c)) != 0)
		return e;
	if (c.indefinite)
		return ward_errf(WARD_EFORMAT,
		    "%s: %s has an indefinite length", r->what, field);
	if (c.left > max)
		return ward_errf(WARD_EFORMAT,
		    "%s: %s has %llu entries, more than %zu", r->what, field,
		    (unsigned long long)c.left, max);
	if ((e = ward_buf_reserve(out, (size_t)c.left)) != 0)
		return e;
	while ((e = ward_cbor_more(r, &c)) == 1) {
		if ((e = ward_cbor_next(r, &it)) != 0)
			return e;
		if (it.type != WARD_CBOR_UINT || it.value > 0xff ||
		    r->pos - it.offset != (it.value < 24 ? 1u : 2u))
			return ward_errf(WARD_EFORMAT,
			    "%s: %s: the entry at offset %zu is not a minimally "
			    "encoded integer 0..255",
			    r->what, field, it.offset);
		out->p[out->len++] = (uint8_t)it.value;
	}
	return e;
}

/* A text key of a map; returns its index in names or an error. */
static int
read_key(struct ward_cbor_reader *r, const char *const *names, size_t n,
    uint32_t *seen, size_t *which)
{
	struct ward_cbor_str key;
	size_t off = r->pos;
	int e;

	if ((e = ward_cbor_read_text(r, "key", KEY_MAX, &key)) != 0)
		return e;
	for (*which = 0; *which < n; (*which)++)
		if (strlen(names[*which]) == key.v.len &&
		    memcmp(names[*which], key.v.p, key.v.len) == 0)
			break;
	if (*which == n)
		e = ward_errf(WARD_EFORMAT, "%s: unknown key %s at offset %zu",
		    r->what, ward_quote(key.v.p, key.v.len), off);
	else if ((*seen >> *which) & 1)
		e = ward_errf(WARD_EFORMAT, "%s: key %s twice at offset %zu",
		    r->what, names[*which], off);
	else
		*seen |= 1u << *which;
	ward_cbor_str_free(&key);
	return e;
}

/* The protected header: exactly {1: -35}. */
static int
check_protected(struct ward_bytes prot)
{
	struct ward_cbor_reader r;
	struct ward_cbor_coll c;
	struct ward_cbor_item it;
	uint64_t label;
	int e;

	ward_cbor_reader_init(
	    &r, prot.p, prot.len, "EIF signature: COSE header");
	if ((e = enter_exact(&r, "protected header", true, 1, &c)) != 0 ||
	    (e = ward_cbor_read_uint(&r, "label", &label)) != 0)
		return e;
	if (label != COSE_HDR_ALG)
		return ward_errf(WARD_EFORMAT,
		    "%s: protected header label %llu, not alg (1)", r.what,
		    (unsigned long long)label);
	if ((e = ward_cbor_next(&r, &it)) != 0)
		return e;
	if (it.type != WARD_CBOR_NEGINT || it.value != COSE_ALG_ES384 - 1)
		return ward_errf(WARD_EUNSUPPORTED,
		    "%s: the algorithm is not ES384 (-35): only P-384 "
		    "signing keys are supported",
		    r.what);
	return ward_cbor_end(&r);
}

/* PcrInfo, keys in any order: register_index (an integer) and
 * register_value (48 byte-sized uints). *index0 tells whether the index
 * is 0, value gets the register. */
static int
read_pcr_info(
    struct ward_bytes payload, bool *index0, uint8_t value[WARD_PCR_LEN])
{
	static const char *const names[] = {"register_index", "register_value"};
	struct ward_cbor_reader r;
	struct ward_cbor_coll c;
	struct ward_cbor_item it;
	struct ward_buf v = {0};
	uint32_t seen = 0;
	size_t which;
	int e;

	ward_cbor_reader_init(
	    &r, payload.p, payload.len, "EIF signature: COSE payload");
	if ((e = enter_exact(&r, "PcrInfo", true, 2, &c)) != 0)
		goto out;
	while ((e = ward_cbor_more(&r, &c)) == 1) {
		if ((e = read_key(&r, names, 2, &seen, &which)) != 0)
			goto out;
		if (which == 0) {
			if ((e = ward_cbor_next(&r, &it)) != 0)
				goto out;
			if (it.type != WARD_CBOR_UINT &&
			    it.type != WARD_CBOR_NEGINT) {
				e = ward_errf(WARD_EFORMAT,
				    "%s: register_index is not an integer",
				    r.what);
				goto out;
			}
			*index0 = it.type == WARD_CBOR_UINT && it.value == 0;
			continue;
		}
		if ((e = read_byte_array(
		         &r, "register_value", WARD_PCR_LEN, &v)) != 0)
			goto out;
		if (v.len != WARD_PCR_LEN) {
			e = ward_errf(WARD_EFORMAT,
			    "%s: register_value has %zu bytes, not %d", r.what,
			    v.len, WARD_PCR_LEN);
			goto out;
		}
		memcpy(value, v.p, WARD_PCR_LEN);
	}
	if (e < 0)
		goto out;
	e = ward_cbor_end(&r);
out:
	ward_buf_free(&v);
	return e;
}

/* COSE_Sign1 as CoseSign1::from_bytes takes it (tag 18 optional) but as
 * strict as nitro-cli writes it otherwise. Views into p. */
static int
read_cose(const uint8_t *p, size_t n, struct ward_bytes *prot,
    struct ward_bytes *payload, struct ward_bytes *sig)
{
	struct ward_cbor_reader r;
	struct ward_cbor_coll c;
	struct ward_cbor_item it;
	struct ward_cbor_str s;
	int e;

	ward_cbor_reader_init(&r, p, n, "EIF signature: COSE_Sign1");
	if ((e = ward_cbor_peek(&r, &it)) != 0)
		return e;
	if (it.type == WARD_CBOR_TAG) {
		if (it.value != COSE_TAG_SIGN1)
			return ward_errf(WARD_EFORMAT,
			    "%s: tag %llu, not COSE_Sign1 (18)", r.what,
			    (unsigned long long)it.value);
		(void)ward_cbor_next(&r, &it);
	}
	if ((e = enter_exact(&r, "COSE_Sign1", false, 4, &c)) != 0)
		return e;
	if ((e = ward_cbor_read_bytes(&r, "protected header", 64, &s)) != 0)
		return e;
	if (s.owned != NULL) {
		ward_cbor_str_free(&s);
		return ward_errf(
		    WARD_EFORMAT, "%s: chunked protected header", r.what);
	}
	*prot = s.v;
	if ((e = enter_exact(&r, "unprotected header", true, 0, &c)) != 0)
		return e;
	if ((e = ward_cbor_read_bytes(
	         &r, "payload", WARD_EIF_SIGNATURE_MAX, &s)) != 0)
		return e;
	if (s.owned != NULL) {
		ward_cbor_str_free(&s);
		return ward_errf(WARD_EFORMAT, "%s: chunked payload", r.what);
	}
	*payload = s.v;
	if ((e = ward_cbor_read_bytes(&r, "signature", 512, &s)) != 0)
		return e;
	if (s.owned != NULL) {
		ward_cbor_str_free(&s);
		return ward_errf(WARD_EFORMAT, "%s: chunked signature", r.what);
	}
	*sig = s.v;
	if (sig->len != WARD_ES384_SIG_LEN)
		return ward_errf(WARD_EUNSUPPORTED,
		    "%s: a %zu-byte signature, not ES384's %d (only P-384 "
		    "signing keys are supported)",
		    r.what, sig->len, WARD_ES384_SIG_LEN);
	return ward_cbor_end(&r);
}

int
ward_eif_signature_check(const uint8_t *p, size_t n,
    const uint8_t pcr0[WARD_PCR_LEN], time_t at, struct ward_buf *cert_pem,
    bool *ok)
{
	static const char *const names[] = {"signing_certificate", "signature"};
	struct ward_cbor_reader r;
	struct ward_cbor_coll c;
	struct ward_buf fields[2] = {{0}, {0}}, der = {0}, tbs = {0};
	struct ward_bytes prot = {0}, payload = {0}, sig = {0};
	struct ward_x509_info info;
	struct evp_pkey_st *pub = NULL;
	uint8_t value[WARD_PCR_LEN];
	bool index0 = false, verified, valid, names_pcr0;
	uint32_t seen = 0;
	size_t which;
	int e;

	*ok = false;
	if (n > WARD_EIF_SIGNATURE_MAX)
		return ward_errf(WARD_ELIMIT,
		    "%s of %zu bytes (the limit is %d)", WHAT, n,
		    WARD_EIF_SIGNATURE_MAX);
	ward_cbor_reader_init(&r, p, n, WHAT);
	/* Vec<PcrSignature>: nitro-cli writes and reads only [0], PCR0's. */
	if ((e = enter_exact(&r, "signature list", false, 1, &c)) != 0 ||
	    (e = enter_exact(&r, "PcrSignature", true, 2, &c)) != 0)
		goto out;
	while ((e = ward_cbor_more(&r, &c)) == 1) {
		if ((e = read_key(&r, names, 2, &seen, &which)) != 0 ||
		    (e = read_byte_array(&r, names[which],
		         WARD_EIF_SIGNATURE_MAX, &fields[which])) != 0)
			goto out;
	}
	if (e < 0 || (e = ward_cbor_end(&r)) != 0)
		goto out;
	if ((e = pem_to_der(fields[0].p, fields[0].len, &der)) != 0)
		goto out;
	if ((e = ward_x509_pubkey(der.p, der.len, true, &pub)) != 0) {
		e = ward_err_prefix(e, "%s", WHAT);
		goto out;
	}
	if ((e = ward_x509_info(der.p, der.len, &info)) != 0 ||
	    (e = read_cose(
	         fields[1].p, fields[1].len, &prot, &payload, &sig)) != 0 ||
	    (e = check_protected(prot)) != 0 ||
	    (e = read_pcr_info(payload, &index0, value)) != 0 ||
	    (e = ward_cose_sig_structure(prot, payload, &tbs)) != 0)
		goto out;
	e = ward_es384_verify(pub, tbs.p, tbs.len, sig.p);
	if (e != 0 && e != -WARD_EAUTH)
		goto out;
	verified = e == 0;
	valid = (int64_t)at >= info.not_before && (int64_t)at <= info.not_after;
	names_pcr0 = index0 && memcmp(value, pcr0, WARD_PCR_LEN) == 0;
	if ((e = ward_buf_append(cert_pem, fields[0].p, fields[0].len)) != 0)
		goto out;
	*ok = verified && valid && names_pcr0;
	ward_errclear();
out:
	ward_pkey_free(pub);
	ward_buf_free(&fields[0]);
	ward_buf_free(&fields[1]);
	ward_buf_free(&der);
	ward_buf_free(&tbs);
	return e;
}
