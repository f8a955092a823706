/*
 * CMS EnvelopedData (RFC 5652 §6) exactly as AWS KMS returns
 * CiphertextForRecipient (nitro.md §4.3, §5, Appendix B); reader and
 * writer side by side, over a small strict BER reader.
 *
 * ContentInfo ::= SEQUENCE {
 *   contentType      OID pkcs7-envelopedData,
 *   content      [0] EXPLICIT EnvelopedData }
 * EnvelopedData ::= SEQUENCE {
 *   version          INTEGER 2,
 *   originatorInfo   [0] IMPLICIT OriginatorInfo OPTIONAL,  -- skipped
 *   recipientInfos   SET SIZE (1) OF KeyTransRecipientInfo,
 *   encryptedContentInfo EncryptedContentInfo,
 *   unprotectedAttrs [1] IMPLICIT SET OF Attribute OPTIONAL } -- skipped
 * KeyTransRecipientInfo ::= SEQUENCE {
 *   version          INTEGER 2,
 *   rid          [0] IMPLICIT SubjectKeyIdentifier,
 *   keyEncryptionAlgorithm { rsaesOaep, RSAES-OAEP-params {
 *     hashAlgorithm [0] sha256, maskGenAlgorithm [1] mgf1 sha256 } },
 *   encryptedKey     OCTET STRING }
 * EncryptedContentInfo ::= SEQUENCE {
 *   contentType      OID pkcs7-data,
 *   contentEncryptionAlgorithm { aes-256-cbc, OCTET STRING (16) IV },
 *   encryptedContent [0] IMPLICIT OCTET STRING }
 *
 * KMS encodes with indefinite lengths and may split encryptedContent
 * into OCTET STRING chunks, or send it primitive; all of that is read.
 */
#include <openssl/err.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "ward/crypto.h"
#include "ward/util.h"

/*
 * The deepest element of the expected shape sits at depth 10 (the sha256
 * OID inside maskGenAlgorithm); inputs nesting deeper than this are
 * refused before any recursion could grow with them.
 */
#define BER_MAX_DEPTH 16
/* The writer's encryptedContent chunk size (KMS's own is not known). */
#define CMS_CHUNK 1000
#define CMS_AES_KEY_LEN 32
#define CMS_BLOCK 16
#define CMS_RID_LEN 32 /* SHA-256 */

/* Identifier octets (X.690 §8.1.2): class | constructed | tag number. */
#define TAG_INTEGER 0x02
#define TAG_BIT_STRING 0x03
#define TAG_OCTET_STRING 0x04
#define TAG_NULL 0x05
#define TAG_OID 0x06
#define TAG_CONSTRUCTED 0x20
#define TAG_SEQUENCE 0x30
#define TAG_SET 0x31
#define TAG_CTX0 0x80 /* [0] primitive */
#define TAG_CTX0_CONS 0xa0
#define TAG_CTX1_CONS 0xa1
#define TAG_CTX2_CONS 0xa2

struct oid {
	const char *name;
	size_t len;
	uint8_t der[9]; /* contents octets */
};

static const struct oid oid_enveloped_data = {
    "pkcs7-envelopedData (1.2.840.113549.1.7.3)", 9,
    {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03}};
static const struct oid oid_data = {"pkcs7-data (1.2.840.113549.1.7.1)", 9,
    {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01}};
static const struct oid oid_rsaes_oaep = {"rsaesOaep (1.2.840.113549.1.1.7)", 9,
    {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x07}};
static const struct oid oid_mgf1 = {"mgf1 (1.2.840.113549.1.1.8)", 9,
    {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08}};
static const struct oid oid_sha256 = {"sha256 (2.16.840.1.101.3.4.2.1)", 9,
    {0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01}};
static const struct oid oid_aes256_cbc = {
    "aes-256-cbc (2.16.840.1.101.3.4.1.42)", 9,
    {0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a}};

/*
 * The BER reader. A cursor walks the contents of one constructed element
 * (or the whole input); every element it hands out has been checked to lie
 * within those contents. An indefinite-length element is measured up
 * front (its children, recursively, up to its end-of-contents octets), so
 * that callers see definite contents either way.
 */
struct ber {
	const uint8_t *base; /* the whole input, for offsets in messages */
	const uint8_t *p; /* the next element */
	size_t n; /* bytes left in the enclosing contents */
	unsigned depth; /* depth of the elements this cursor reads */
};

struct tlv {
	uint8_t id; /* identifier octet */
	const uint8_t *v; /* contents, without any end-of-contents octets */
	size_t len;
	size_t off; /* offset of the identifier octet in the input */
	unsigned depth;
};

static size_t
offset(const uint8_t *base, const uint8_t *p)
{
	return (size_t)(p - base);
}

/* Identifier and length octets of the element at p, n bytes available. */
static int
ber_header(const uint8_t *base, const uint8_t *p, size_t n, uint8_t *id,
    size_t *hlen, size_t *len, bool *indefinite)
{
	size_t off = offset(base, p), k;
	uint64_t v = 0;

	if (n < 2)
		return ward_errf(
		    WARD_EFORMAT, "CMS: truncated element at offset %zu", off);
	*id = p[0];
	*indefinite = false;
	if (*id == 0x00)
		return ward_errf(WARD_EFORMAT,
		    "CMS: unexpected end-of-contents octets at offset %zu",
		    off);
	if ((*id & 0x1f) == 0x1f)
		return ward_errf(WARD_EFORMAT,
		    "CMS: high tag number at offset %zu (none is used in EnvelopedData)",
		    off);
	if (p[1] < 0x80) {
		*hlen = 2;
		v = p[1];
	} else if (p[1] == 0x80) {
		if (!(*id & TAG_CONSTRUCTED))
			return ward_errf(WARD_EFORMAT,
			    "CMS: primitive element with an indefinite length at offset %zu",
			    off);
		*hlen = 2;
		*len = 0;
		*indefinite = true;
		return 0;
	} else {
		/* Long form: X.690 §8.1.3.5; 0xff is reserved, and lengths
		 * are capped at four octets. */
		k = p[1] & 0x7f;
		if (k > 4)
			return ward_errf(WARD_EFORMAT,
			    "CMS: length of %zu octets at offset %zu (at most 4)",
			    k, off);
		if (n - 2 < k)
			return ward_errf(WARD_EFORMAT,
			    "CMS: truncated length at offset %zu", off);
		for (size_t i = 0; i < k; i++)
			v = v << 8 | p[2 + i];
		*hlen = 2 + k;
	}
	if (v > n - *hlen)
		return ward_errf(WARD_EFORMAT,
		    "CMS: element at offset %zu claims %llu bytes, but only %zu remain",
		    off, (unsigned long long)v, n - *hlen);
	*len = (size_t)v;
	return 0;
}

/*
 * Measure the element at p: its contents into t, its whole size (header,
 * contents and any end-of-contents octets) into total.
 */
static int
ber_measure(const uint8_t *base, const uint8_t *p, size_t n, unsigned depth,
    struct tlv *t, size_t *total)
{
	size_t hlen = 0, len = 0, pos, sub = 0;
	bool indefinite;
	int r;

	if (depth > BER_MAX_DEPTH)
		return ward_errf(WARD_EFORMAT,
		    "CMS: elements nested more than %d deep at offset %zu",
		    BER_MAX_DEPTH, offset(base, p));
	if ((r = ber_header(base, p, n, &t->id, &hlen, &len, &indefinite)) != 0)
		return r;
	t->v = p + hlen;
	t->off = offset(base, p);
	t->depth = depth;
	if (!indefinite) {
		t->len = len;
		*total = hlen + len;
		return 0;
	}
	/* X.690 §8.1.5: children until the end-of-contents octets 00 00. */
	for (pos = hlen; n - pos < 2 || p[pos] != 0 || p[pos + 1] != 0;
	     pos += sub) {
		struct tlv child;

		if ((r = ber_measure(
		         base, p + pos, n - pos, depth + 1, &child, &sub)) != 0)
			return r;
	}
	t->len = pos - hlen;
	*total = pos + 2;
	return 0;
}

static int
ber_next(struct ber *b, struct tlv *t)
{
	size_t total;
	int r;

	if ((r = ber_measure(b->base, b->p, b->n, b->depth, t, &total)) != 0)
		return r;
	b->p += total;
	b->n -= total;
	return 0;
}

/* A cursor over the children of the constructed element t. */
static void
ber_enter(const struct ber *b, const struct tlv *t, struct ber *inner)
{
	inner->base = b->base;
	inner->p = t->v;
	inner->n = t->len;
	inner->depth = t->depth + 1;
}

/* The identifier of the next element, or -1 at the end. */
static int
ber_peek(const struct ber *b)
{
	return b->n > 0 ? b->p[0] : -1;
}

/* The next element, which must carry identifier id. */
static int
expect(struct ber *b, uint8_t id, const char *what, struct tlv *t)
{
	int r;

	if (b->n == 0)
		return ward_errf(WARD_EFORMAT,
		    "CMS: %s is missing (offset %zu)", what,
		    offset(b->base, b->p));
	if ((r = ber_next(b, t)) != 0)
		return r;
	if (t->id == (id | TAG_CONSTRUCTED) &&
	    (id == TAG_OCTET_STRING || id == TAG_BIT_STRING || id == TAG_CTX0))
		return ward_errf(WARD_EUNSUPPORTED,
		    "CMS: %s at offset %zu uses the constructed string encoding, which is not supported here",
		    what, t->off);
	if (t->id != id)
		return ward_errf(WARD_EFORMAT,
		    "CMS: %s at offset %zu has tag 0x%02x, expected 0x%02x",
		    what, t->off, t->id, id);
	return 0;
}

static int
expect_enter(struct ber *b, uint8_t id, const char *what, struct ber *inner)
{
	struct tlv t;
	int r;

	if ((r = expect(b, id, what, &t)) != 0)
		return r;
	ber_enter(b, &t, inner);
	return 0;
}

static int
expect_end(const struct ber *b, const char *what)
{
	if (b->n != 0)
		return ward_errf(WARD_EFORMAT,
		    "CMS: unexpected element (tag 0x%02x) at offset %zu in %s",
		    b->p[0], offset(b->base, b->p), what);
	return 0;
}

/* Dotted text of an OID's contents, for messages only. */
static void
oid_text(const uint8_t *p, size_t n, char *out, size_t cap)
{
	size_t used = 0;
	uint64_t arc = 0;
	bool first = true;

	out[0] = '\0';
	for (size_t i = 0; i < n && used < cap; i++) {
		int w;

		if (arc > UINT64_MAX >> 7) {
			snprintf(out, cap, "(an OID with a huge arc)");
			return;
		}
		arc = arc << 7 | (p[i] & 0x7f);
		if (p[i] & 0x80)
			continue;
		if (first)
			w = snprintf(out + used, cap - used, "%u.%llu",
			    arc < 80 ? (unsigned)(arc / 40) : 2,
			    (unsigned long long)(arc < 80 ? arc % 40
			                                  : arc - 80));
		else
			w = snprintf(out + used, cap - used, ".%llu",
			    (unsigned long long)arc);
		if (w < 0)
			return;
		used += (size_t)w;
		arc = 0;
		first = false;
	}
	if (n == 0 || (p[n - 1] & 0x80))
		snprintf(out, cap, "(a malformed OID)");
}

/* An OID that must be want; any other is code (WARD_EUNSUPPORTED). */
static int
expect_oid(struct ber *b, const struct oid *want, const char *what)
{
	struct tlv t;
	char text[64];
	int r;

	if ((r = expect(b, TAG_OID, what, &t)) != 0)
		return r;
	if (t.len == want->len && memcmp(t.v, want->der, t.len) == 0)
		return 0;
	oid_text(t.v, t.len, text, sizeof(text));
	return ward_errf(WARD_EUNSUPPORTED,
	    "CMS: %s is %s; only %s is supported", what, text, want->name);
}

static int
expect_version(struct ber *b, uint8_t want, const char *what)
{
	struct tlv t;
	int r;

	if ((r = expect(b, TAG_INTEGER, what, &t)) != 0)
		return r;
	if (t.len == 0)
		return ward_errf(
		    WARD_EFORMAT, "CMS: %s is an empty INTEGER", what);
	if (t.len != 1)
		return ward_errf(WARD_EUNSUPPORTED,
		    "CMS: %s is a %zu-byte INTEGER; only %u is supported", what,
		    t.len, want);
	if (t.v[0] != want)
		return ward_errf(WARD_EUNSUPPORTED,
		    "CMS: %s %u is not supported (only %u)", what, t.v[0],
		    want);
	return 0;
}

/* AlgorithmIdentifier { sha256, parameters NULL or absent }: RFC 5754 §2
 * has readers accept both (KMS sends NULL, OpenSSL omits it). */
static int
parse_sha256(struct ber *b, const char *what)
{
	struct ber alg;
	struct tlv t;
	int r;

	if ((r = expect_enter(b, TAG_SEQUENCE, what, &alg)) != 0 ||
	    (r = expect_oid(&alg, &oid_sha256, what)) != 0)
		return r;
	if (alg.n > 0) {
		if ((r = expect(&alg, TAG_NULL, what, &t)) != 0)
			return r;
		if (t.len != 0)
			return ward_errf(WARD_EFORMAT,
			    "CMS: %s: NULL parameters with contents at offset %zu",
			    what, t.off);
	}
	return expect_end(&alg, what);
}

/*
 * RSAES-OAEP-params (RFC 4055 §4.1). Every field has a default, and the
 * defaults (SHA-1, MGF1-SHA-1) are not what KMS uses: both must be present
 * and SHA-256. pSourceAlgorithm must be absent (the empty label).
 */
static int
parse_oaep_params(struct ber *b)
{
	struct ber params, e, mgf;
	int r;

	if (b->n == 0)
		return ward_errf(WARD_EUNSUPPORTED,
		    "CMS: RSAES-OAEP without parameters means SHA-1; only SHA-256 with MGF1-SHA-256 is supported");
	if ((r = expect_enter(
	         b, TAG_SEQUENCE, "RSAES-OAEP parameters", &params)) != 0)
		return r;
	if (ber_peek(&params) != TAG_CTX0_CONS)
		return ward_errf(WARD_EUNSUPPORTED,
		    "CMS: RSAES-OAEP with the default hash (SHA-1); only SHA-256 is supported");
	if ((r = expect_enter(&params, TAG_CTX0_CONS,
	         "RSAES-OAEP hashAlgorithm", &e)) != 0 ||
	    (r = parse_sha256(&e, "RSAES-OAEP hashAlgorithm")) != 0 ||
	    (r = expect_end(&e, "RSAES-OAEP hashAlgorithm")) != 0)
		return r;
	if (ber_peek(&params) != TAG_CTX1_CONS)
		return ward_errf(WARD_EUNSUPPORTED,
		    "CMS: RSAES-OAEP with the default mask generation (MGF1-SHA-1); only MGF1-SHA-256 is supported");
	if ((r = expect_enter(&params, TAG_CTX1_CONS,
	         "RSAES-OAEP maskGenAlgorithm", &e)) != 0 ||
	    (r = expect_enter(
	         &e, TAG_SEQUENCE, "RSAES-OAEP maskGenAlgorithm", &mgf)) != 0 ||
	    (r = expect_oid(&mgf, &oid_mgf1, "RSAES-OAEP maskGenAlgorithm")) !=
	        0 ||
	    (r = parse_sha256(&mgf, "MGF1 hash")) != 0 ||
	    (r = expect_end(&mgf, "RSAES-OAEP maskGenAlgorithm")) != 0 ||
	    (r = expect_end(&e, "RSAES-OAEP maskGenAlgorithm")) != 0)
		return r;
	if (ber_peek(&params) == TAG_CTX2_CONS)
		return ward_errf(WARD_EUNSUPPORTED,
		    "CMS: RSAES-OAEP with a pSourceAlgorithm (label) is not supported");
	return expect_end(&params, "RSAES-OAEP parameters");
}

static int
parse_recipient(struct ber *ris, struct ward_cms *out)
{
	struct ber ktri, alg;
	struct tlv t;
	int r;

	/* RecipientInfo is a CHOICE: only ktri is a bare SEQUENCE. */
	if (ber_peek(ris) != TAG_SEQUENCE && ber_peek(ris) != -1)
		return ward_errf(WARD_EUNSUPPORTED,
		    "CMS: the RecipientInfo (tag 0x%02x) is not key transport; only KeyTransRecipientInfo is supported",
		    ris->p[0]);
	if ((r = expect_enter(
	         ris, TAG_SEQUENCE, "KeyTransRecipientInfo", &ktri)) != 0 ||
	    (r = expect_version(&ktri, 2, "KeyTransRecipientInfo version")) !=
	        0)
		return r;
	/* Version 2 means rid is [0] subjectKeyIdentifier (RFC 5652 §6.2.1). */
	if ((r = expect(&ktri, TAG_CTX0, "KeyTransRecipientInfo rid", &t)) != 0)
		return r;
	if (t.len == 0)
		return ward_errf(WARD_EFORMAT,
		    "CMS: empty subjectKeyIdentifier at offset %zu", t.off);
	out->rid = t.v;
	out->rid_len = t.len;
	if ((r = expect_enter(
	         &ktri, TAG_SEQUENCE, "keyEncryptionAlgorithm", &alg)) != 0 ||
	    (r = expect_oid(&alg, &oid_rsaes_oaep, "keyEncryptionAlgorithm")) !=
	        0 ||
	    (r = parse_oaep_params(&alg)) != 0 ||
	    (r = expect_end(&alg, "keyEncryptionAlgorithm")) != 0)
		return r;
	if ((r = expect(&ktri, TAG_OCTET_STRING, "encryptedKey", &t)) != 0)
		return r;
	if (t.len == 0 || t.len > WARD_RSA_MAX_BYTES)
		return ward_errf(WARD_EFORMAT,
		    "CMS: encryptedKey of %zu bytes (an RSA ciphertext has 1 to %d)",
		    t.len, WARD_RSA_MAX_BYTES);
	out->encrypted_key = t.v;
	out->encrypted_key_len = t.len;
	return expect_end(&ktri, "KeyTransRecipientInfo");
}

/*
 * The contents of an OCTET STRING, appended to out: primitive, or
 * constructed of OCTET STRING segments that may themselves be
 * constructed (X.690 §8.7.3). Depth is bounded by ber_measure.
 */
static int
join_octets(const struct ber *b, const struct tlv *t, struct ward_buf *out)
{
	struct ber seg;
	struct tlv s;
	int r;

	if (!(t->id & TAG_CONSTRUCTED))
		return ward_buf_append(out, t->v, t->len);
	ber_enter(b, t, &seg);
	while (seg.n > 0) {
		if ((r = ber_next(&seg, &s)) != 0)
			return r;
		if ((s.id & ~TAG_CONSTRUCTED) != TAG_OCTET_STRING)
			return ward_errf(WARD_EFORMAT,
			    "CMS: encryptedContent segment at offset %zu has tag 0x%02x, expected an OCTET STRING",
			    s.off, s.id);
		if ((r = join_octets(&seg, &s, out)) != 0)
			return r;
	}
	return 0;
}

static int
parse_encrypted_content_info(struct ber *eci, struct ward_cms *out)
{
	struct ber cea;
	struct tlv t;
	int r;

	if ((r = expect_oid(
	         eci, &oid_data, "EncryptedContentInfo contentType")) != 0 ||
	    (r = expect_enter(
	         eci, TAG_SEQUENCE, "contentEncryptionAlgorithm", &cea)) != 0 ||
	    (r = expect_oid(
	         &cea, &oid_aes256_cbc, "contentEncryptionAlgorithm")) != 0 ||
	    (r = expect(&cea, TAG_OCTET_STRING, "AES-256-CBC IV", &t)) != 0)
		return r;
	if (t.len != WARD_CMS_IV_LEN)
		return ward_errf(WARD_EFORMAT,
		    "CMS: AES-256-CBC IV of %zu bytes (expected %d)", t.len,
		    WARD_CMS_IV_LEN);
	memcpy(out->iv, t.v, WARD_CMS_IV_LEN);
	if ((r = expect_end(&cea, "contentEncryptionAlgorithm")) != 0)
		return r;
	if (eci->n == 0)
		return ward_errf(WARD_EUNSUPPORTED,
		    "CMS: no encryptedContent (detached content is not supported)");
	if ((r = ber_next(eci, &t)) != 0)
		return r;
	if ((t.id & ~TAG_CONSTRUCTED) != TAG_CTX0)
		return ward_errf(WARD_EFORMAT,
		    "CMS: encryptedContent at offset %zu has tag 0x%02x, expected [0]",
		    t.off, t.id);
	if ((r = join_octets(eci, &t, &out->content)) != 0)
		return r;
	if (out->content.len == 0 || out->content.len % CMS_BLOCK != 0)
		return ward_errf(WARD_EFORMAT,
		    "CMS: encrypted content of %zu bytes is not a positive multiple of the AES block size",
		    out->content.len);
	return expect_end(eci, "EncryptedContentInfo");
}

int
ward_cms_parse(const uint8_t *p, size_t n, struct ward_cms *out)
{
	struct ber in = {.base = p, .p = p, .n = n}, ci, content, ed, ris, eci;
	struct tlv t;
	int r;

	memset(out, 0, sizeof(*out));
	if (n > WARD_CMS_MAX)
		return ward_errf(WARD_ELIMIT,
		    "CMS: message of %zu bytes is above the %d-byte limit", n,
		    WARD_CMS_MAX);
	if (n == 0)
		return ward_errf(WARD_EFORMAT, "CMS: the message is empty");
	/* Base64 of a BER SEQUENCE starts "MI" (KMS's JSON carries it so). */
	if (n >= 2 && p[0] == 'M' && p[1] == 'I')
		return ward_errf(WARD_EFORMAT,
		    "CMS: the input looks base64-encoded: decode it first (base64 -d)");

	if ((r = expect_enter(&in, TAG_SEQUENCE, "ContentInfo", &ci)) != 0)
		goto out;
	if (in.n != 0) {
		r = ward_errf(WARD_EFORMAT,
		    "CMS: %zu bytes of trailing data after the ContentInfo",
		    in.n);
		goto out;
	}
	if ((r = expect_oid(
	         &ci, &oid_enveloped_data, "ContentInfo contentType")) != 0 ||
	    (r = expect_enter(
	         &ci, TAG_CTX0_CONS, "ContentInfo content", &content)) != 0 ||
	    (r = expect_end(&ci, "ContentInfo")) != 0 ||
	    (r = expect_enter(&content, TAG_SEQUENCE, "EnvelopedData", &ed)) !=
	        0 ||
	    (r = expect_end(&content, "ContentInfo content")) != 0)
		goto out;

	if ((r = expect_version(&ed, 2, "EnvelopedData version")) != 0)
		goto out;
	/* originatorInfo: certificates and CRLs for key agreement, which
	 * key transport does not use. */
	if (ber_peek(&ed) == TAG_CTX0_CONS && (r = ber_next(&ed, &t)) != 0)
		goto out;
	if ((r = expect_enter(
	         &ed, TAG_SET, "EnvelopedData recipientInfos", &ris)) != 0 ||
	    (r = parse_recipient(&ris, out)) != 0)
		goto out;
	if (ris.n != 0) {
		r = ward_errf(WARD_EUNSUPPORTED,
		    "CMS: more than one RecipientInfo (KMS sends exactly one)");
		goto out;
	}
	if ((r = expect_enter(
	         &ed, TAG_SEQUENCE, "EncryptedContentInfo", &eci)) != 0 ||
	    (r = parse_encrypted_content_info(&eci, out)) != 0)
		goto out;
	/* unprotectedAttrs: neither authenticated nor used. */
	if (ber_peek(&ed) == TAG_CTX1_CONS && (r = ber_next(&ed, &t)) != 0)
		goto out;
	r = expect_end(&ed, "EnvelopedData");
out:
	if (r != 0)
		ward_cms_free(out);
	return r;
}

void
ward_cms_free(struct ward_cms *c)
{
	if (c == NULL)
		return;
	ward_buf_free(&c->content);
	memset(c, 0, sizeof(*c));
}

/* The writer. Definite lengths in the minimal form. */
static int
put_len(struct ward_buf *b, size_t len)
{
	uint8_t h[1 + sizeof(size_t)];
	size_t k = 0;

	if (len < 0x80)
		return ward_buf_put_u8(b, (uint8_t)len);
	for (size_t v = len; v > 0; v >>= 8)
		k++;
	h[0] = (uint8_t)(0x80 | k);
	for (size_t i = 0; i < k; i++)
		h[1 + i] = (uint8_t)(len >> (8 * (k - 1 - i)));
	return ward_buf_append(b, h, 1 + k);
}

static int
put_tlv(struct ward_buf *b, uint8_t id, const void *v, size_t len)
{
	int r;

	if ((r = ward_buf_put_u8(b, id)) != 0 || (r = put_len(b, len)) != 0)
		return r;
	return ward_buf_append(b, v, len);
}

static int
put_oid(struct ward_buf *b, const struct oid *o)
{
	return put_tlv(b, TAG_OID, o->der, o->len);
}

/* The start of a constructed element with an indefinite length. */
static int
put_indefinite(struct ward_buf *b, uint8_t id)
{
	const uint8_t h[2] = {id, 0x80};

	return ward_buf_append(b, h, sizeof(h));
}

/* The keyEncryptionAlgorithm KMS sends, byte for byte (Appendix B):
 * rsaesOaep { [0] { sha256, NULL }, [1] { mgf1, { sha256, NULL } } }. */
static const uint8_t kea_oaep_sha256[] = {0x30, 0x3c, 0x06, 0x09, 0x2a, 0x86,
    0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x07, 0x30, 0x2f, 0xa0, 0x0f, 0x30,
    0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
    0x05, 0x00, 0xa1, 0x1c, 0x30, 0x1a, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
    0xf7, 0x0d, 0x01, 0x01, 0x08, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48,
    0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00};

/*
 * rid: SHA-256 of the subjectPublicKey BIT STRING's contents after the
 * unused-bits octet (RFC 5280 §4.2.1.2 method 1, with SHA-256), hashed
 * as received. The SPKI was already parsed by ward_pkey_from_spki.
 */
static int
spki_key_id(const uint8_t *spki, size_t n, uint8_t rid[CMS_RID_LEN])
{
	struct ber in = {.base = spki, .p = spki, .n = n}, s;
	struct tlv t;
	unsigned md_len = 0;
	int r;

	if ((r = expect_enter(&in, TAG_SEQUENCE, "SubjectPublicKeyInfo", &s)) !=
	        0 ||
	    (r = expect(&s, TAG_SEQUENCE, "SubjectPublicKeyInfo algorithm",
	         &t)) != 0 ||
	    (r = expect(&s, TAG_BIT_STRING, "subjectPublicKey", &t)) != 0)
		return r;
	if (t.len < 1 || t.v[0] != 0)
		return ward_errf(WARD_EFORMAT,
		    "subjectPublicKey is not a whole number of bytes");
	if (EVP_Digest(t.v + 1, t.len - 1, rid, &md_len, EVP_sha256(), NULL) !=
	        1 ||
	    md_len != CMS_RID_LEN)
		return ward_crypto_err(WARD_ECRYPTO, "SHA-256");
	return 0;
}

/* AES-256-CBC with PKCS#7 padding; ct has room for n + 16 bytes. */
static int
cbc_encrypt(const uint8_t key[CMS_AES_KEY_LEN],
    const uint8_t iv[WARD_CMS_IV_LEN], const uint8_t *pt, size_t n, uint8_t *ct,
    size_t *ct_len)
{
	EVP_CIPHER_CTX *ctx;
	int len1 = 0, len2 = 0, r = 0;

	if ((ctx = EVP_CIPHER_CTX_new()) == NULL)
		return ward_enomem();
	if (EVP_EncryptInit_ex(ctx, EVP_aes_256_cbc(), NULL, key, iv) != 1 ||
	    (n > 0 && EVP_EncryptUpdate(ctx, ct, &len1, pt, (int)n) != 1) ||
	    EVP_EncryptFinal_ex(ctx, ct + len1, &len2) != 1)
		r = ward_crypto_err(WARD_ECRYPTO, "AES-256-CBC encryption");
	else
		*ct_len = (size_t)len1 + (size_t)len2;
	/* Frees the key schedule, cleansed. */
	EVP_CIPHER_CTX_free(ctx);
	return r;
}

int
ward_cms_seal(const uint8_t *spki, size_t spki_len, const uint8_t *pt, size_t n,
    struct ward_buf *out)
{
	static const uint8_t version2[] = {0x02};
	static const uint8_t eoc[2] = {0x00, 0x00};
	struct ward_buf ktri = {0}, ris = {0}, alg = {0}, ct = {0}, m = {0};
	uint8_t key[CMS_AES_KEY_LEN], iv[WARD_CMS_IV_LEN], rid[CMS_RID_LEN];
	uint8_t ek[WARD_RSA_MAX_BYTES];
	size_t ek_len = 0, ct_len = 0;
	EVP_PKEY *k = NULL;
	int r;

	if (n > WARD_CMS_MAX)
		return ward_errf(WARD_ELIMIT,
		    "CMS: %zu bytes to seal, above the %d-byte message limit",
		    n, WARD_CMS_MAX);
	if ((r = ward_pkey_from_spki(spki, spki_len, &k)) != 0)
		return r;
	if ((r = spki_key_id(spki, spki_len, rid)) != 0 ||
	    (r = ward_random(key, sizeof(key))) != 0 ||
	    (r = ward_random(iv, sizeof(iv))) != 0)
		goto out;
	/* WARD_RSA_OAEP_SHA256 sets MGF1 to SHA-256 too, and no label. */
	if ((r = ward_rsa_encrypt(k, WARD_RSA_OAEP_SHA256, key, sizeof(key), ek,
	         sizeof(ek), &ek_len)) != 0)
		goto out;
	if ((r = ward_buf_reserve(&ct, n + CMS_BLOCK)) != 0 ||
	    (r = cbc_encrypt(key, iv, pt, n, ct.p, &ct_len)) != 0)
		goto out;
	ct.len = ct_len;

	/* KeyTransRecipientInfo, definite as in Appendix B. */
	if ((r = put_tlv(&ktri, TAG_INTEGER, version2, 1)) != 0 ||
	    (r = put_tlv(&ktri, TAG_CTX0, rid, sizeof(rid))) != 0 ||
	    (r = ward_buf_append(
	         &ktri, kea_oaep_sha256, sizeof(kea_oaep_sha256))) != 0 ||
	    (r = put_tlv(&ktri, TAG_OCTET_STRING, ek, ek_len)) != 0 ||
	    (r = put_tlv(&ris, TAG_SEQUENCE, ktri.p, ktri.len)) != 0)
		goto out;
	/* contentEncryptionAlgorithm { aes-256-cbc, IV } */
	if ((r = put_oid(&alg, &oid_aes256_cbc)) != 0 ||
	    (r = put_tlv(&alg, TAG_OCTET_STRING, iv, sizeof(iv))) != 0)
		goto out;

	if ((r = put_indefinite(&m, TAG_SEQUENCE)) != 0 || /* ContentInfo */
	    (r = put_oid(&m, &oid_enveloped_data)) != 0 ||
	    (r = put_indefinite(&m, TAG_CTX0_CONS)) != 0 ||
	    (r = put_indefinite(&m, TAG_SEQUENCE)) != 0 || /* EnvelopedData */
	    (r = put_tlv(&m, TAG_INTEGER, version2, 1)) != 0 ||
	    (r = put_tlv(&m, TAG_SET, ris.p, ris.len)) != 0 ||
	    (r = put_indefinite(&m, TAG_SEQUENCE)) != 0 || /* ECI */
	    (r = put_oid(&m, &oid_data)) != 0 ||
	    (r = put_tlv(&m, TAG_SEQUENCE, alg.p, alg.len)) != 0 ||
	    (r = put_indefinite(&m, TAG_CTX0_CONS)) != 0)
		goto out;
	for (size_t off = 0; off < ct.len; off += CMS_CHUNK) {
		size_t len =
		    ct.len - off < CMS_CHUNK ? ct.len - off : CMS_CHUNK;

		if ((r = put_tlv(&m, TAG_OCTET_STRING, ct.p + off, len)) != 0)
			goto out;
	}
	/* End of encryptedContent, ECI, EnvelopedData, [0], ContentInfo. */
	for (int i = 0; i < 5; i++)
		if ((r = ward_buf_append(&m, eoc, sizeof(eoc))) != 0)
			goto out;
	if (m.len > WARD_CMS_MAX) {
		r = ward_errf(WARD_ELIMIT,
		    "CMS: the sealed message would be %zu bytes, above the %d-byte limit",
		    m.len, WARD_CMS_MAX);
		goto out;
	}
	r = ward_buf_append(out, m.p, m.len);
out:
	ward_cleanse(key, sizeof(key));
	ward_pkey_free(k);
	ward_buf_free(&ktri);
	ward_buf_free(&ris);
	ward_buf_free(&alg);
	ward_buf_free(&ct);
	ward_buf_free(&m);
	return r;
}

/* Constant-time masks: all ones when true, zero when false. */
static unsigned
ct_eq(unsigned a, unsigned b)
{
	unsigned x = a ^ b;

	return 0u - (((x | (0u - x)) >> (sizeof(unsigned) * 8 - 1)) ^ 1u);
}

static unsigned
ct_lt(unsigned a, unsigned b) /* for a, b < 2^31 */
{
	return 0u - ((a - b) >> (sizeof(unsigned) * 8 - 1));
}

/*
 * AES-256-CBC without OpenSSL's padding removal (which returns early),
 * then PKCS#7 checked in constant time. *pad_ok is a mask; the caller
 * decides only once everything has run.
 */
static int
cbc_decrypt(const uint8_t key[CMS_AES_KEY_LEN],
    const uint8_t iv[WARD_CMS_IV_LEN], const uint8_t *ct, size_t n, uint8_t *pt,
    size_t *pt_len, unsigned *pad_ok)
{
	EVP_CIPHER_CTX *ctx;
	int len1 = 0, len2 = 0, r = 0;
	unsigned pad, good;

	if (n < CMS_BLOCK || n % CMS_BLOCK != 0 || n > INT32_MAX)
		return ward_errf(WARD_EFORMAT,
		    "CMS: content of %zu bytes is not whole AES blocks", n);
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL)
		return ward_enomem();
	if (EVP_DecryptInit_ex(ctx, EVP_aes_256_cbc(), NULL, key, iv) != 1 ||
	    EVP_CIPHER_CTX_set_padding(ctx, 0) != 1 ||
	    EVP_DecryptUpdate(ctx, pt, &len1, ct, (int)n) != 1 ||
	    EVP_DecryptFinal_ex(ctx, pt + len1, &len2) != 1 ||
	    (size_t)len1 + (size_t)len2 != n) {
		r = ward_crypto_err(WARD_ECRYPTO, "AES-256-CBC decryption");
		goto out;
	}
	pad = pt[n - 1];
	good = ~ct_eq(pad, 0) & ct_lt(pad, CMS_BLOCK + 1);
	for (unsigned i = 0; i < CMS_BLOCK; i++)
		good &= ~ct_lt(i, pad) | ct_eq(pt[n - 1 - i], pad);
	*pad_ok = good;
	/* pad is at most 16 when good; otherwise the length is unused */
	*pt_len = n - (pad & good & 0xff);
out:
	EVP_CIPHER_CTX_free(ctx);
	return r;
}

/*
 * CBC without a MAC (KMS's choice, not ours): the padding check is the
 * only integrity there is, and it is an oracle. So every failure after
 * parsing - the RSA unwrap, the content key's length, the padding - gives
 * the same error, and takes the same path: a failed unwrap continues with
 * a random key (implicit rejection), the padding is checked in constant
 * time, and the verdict comes once, at the end. The plaintext (a data
 * key, say) should still be authenticated by its own use.
 */
int
ward_cms_open(EVP_PKEY *priv, const uint8_t *p, size_t n, struct ward_buf *out)
{
	struct ward_cms c;
	struct ward_buf pt = {.secret = true};
	uint8_t key[WARD_RSA_MAX_BYTES], fake[CMS_AES_KEY_LEN];
	size_t key_len = 0, pt_len = 0;
	unsigned ok, pad_ok = 0;
	int r, rr;

	out->secret = true;
	if ((r = ward_cms_parse(p, n, &c)) != 0)
		return r;
	if ((r = ward_random(fake, sizeof(fake))) != 0)
		goto out;
	rr = ward_rsa_decrypt(priv, WARD_RSA_OAEP_SHA256, c.encrypted_key,
	    c.encrypted_key_len, key, sizeof(key), &key_len);
	if (rr != 0 && rr != -WARD_EKEY) {
		r = rr; /* out of memory, or the library failed */
		goto out;
	}
	ward_errclear();
	ok = ct_eq((unsigned)(rr == 0), 1) &
	    ct_eq((unsigned)key_len, CMS_AES_KEY_LEN);
	for (size_t i = 0; i < CMS_AES_KEY_LEN; i++)
		key[i] = (uint8_t)((key[i] & ok) | (fake[i] & ~ok));
	if ((r = ward_buf_reserve(&pt, c.content.len)) != 0 ||
	    (r = cbc_decrypt(key, c.iv, c.content.p, c.content.len, pt.p,
	         &pt_len, &pad_ok)) != 0)
		goto out;
	if ((ok & pad_ok) == 0) {
		r = ward_errf(WARD_EKEY,
		    "CMS: the private key does not open this message, or the "
		    "message was altered");
		goto out;
	}
	pt.len = pt_len;
	/* Hand over the plaintext: moved if out is unused, else copied. */
	if (out->p == NULL) {
		*out = pt;
		pt = (struct ward_buf){.secret = true};
	} else
		r = ward_buf_append(out, pt.p, pt.len);
out:
	ward_cleanse(key, sizeof(key));
	ward_cleanse(fake, sizeof(fake));
	/* Secret: cleansed in full, partial plaintext included. */
	ward_buf_free(&pt);
	ward_cms_free(&c);
	return r;
}
