/*
 * cms: CMS EnvelopedData as AWS KMS sends CiphertextForRecipient
 * (nitro.md §4.3, Appendix B). The KMS vector parsed field by field, the
 * other BER shapes of encryptedContent, round trips, a wrong key,
 * truncations, malformed and tampered messages, and interop with the
 * openssl command-line tool in both directions.
 */
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "ward/crypto.h"

static EVP_PKEY *key1, *key2;
static struct ward_buf spki1;

static int
setup(void **state)
{
	if (ward_rsa_generate(WARD_RSA_RECIPIENT_BITS, &key1) != 0 ||
	    ward_rsa_generate(WARD_RSA_RECIPIENT_BITS, &key2) != 0 ||
	    ward_pkey_spki(key1, &spki1) != 0) {
		printf("setup: %s\n", ward_errmsg());
		return -1;
	}
	return 0;
}

static int
teardown(void **state)
{
	ward_pkey_free(key1);
	ward_pkey_free(key2);
	ward_buf_free(&spki1);
	return 0;
}

static void
unhex(const char *s, uint8_t *out, size_t cap, size_t *n)
{
	if (ward_hex_decode(s, strlen(s), out, cap, n) != 0)
		fail_msg("bad hex in test: %s", ward_errmsg());
}

static void
fill(uint8_t *p, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (uint8_t)(seed >> 16);
	}
}

/* A message sealed to key1 (RSA-2048). */
static void
seal(const uint8_t *pt, size_t n, struct ward_buf *m)
{
	m->len = 0;
	ASSERT_OK(ward_cms_seal(spki1.p, spki1.len, pt, n, m));
}

/* The ciphertext of a single-chunk sealed message: it ends with
 * 04 LEN ct, then the five end-of-contents pairs. */
static size_t
ct_offset(const struct ward_buf *m, size_t ct_len)
{
	size_t off = m->len - 10 - ct_len;

	assert_true(ct_len < 0x80);
	assert_int_equal(m->p[off - 2], 0x04);
	assert_int_equal(m->p[off - 1], ct_len);
	return off;
}

/* Appendix B, byte for byte (the full encryptedKey is nitro.md's hex). */
static void
test_kms_vector(void **state)
{
	static const char *const rid_hex =
	    "7087b55df94ba3255cdf3c01840a2aa3ec93620625d601cf56f97bde7a3d2eb1";
	static const char *const ek_hex =
	    "a0614593a030ee336bfff076618b0130d045de9f4d183d83c5da882f13abc1f4"
	    "bf0d13645869393442ab582e6a04d697d52d5623e367e7e92db6ebd2bd07735b"
	    "153f2826bee5df8e16c713a1e85cb6ba85e88681335c7e941a94abf0c0113e03"
	    "0916e2b6e1826db4ffb919b8e1b6f59ec277e58de40b0ffeecaa0d94fbcb2903"
	    "74ed3dfc35d31a8f43ae1300fe20fdd986d4b8565657451f9dc693e134678920"
	    "221c58a28da5e71ab6b31caa445825a6385c6c4f5d5d5ebbc2c2570e9647fded"
	    "36b559647bcb27e58886255f582c63d863ecec307d15763abce0b1b812a55093"
	    "8ca4e2d28a74563db52367558d3e2e82ac2a27fe5c9391a007c15f75b90ab0dd";
	static const char *const iv_hex = "688c6d5f7f31b0fecedf09f2e7c99ac9";
	static const char *const ct_hex =
	    "70e5caaffd49ad24efe15bf903be9d19895b777d269b57b025f6f67e7ef93f94"
	    "464515f2ebe034ea0b7621a1ff19292e";
	const char *path = tu_fixtures("cms/kmstool-envelopeddata.der");
	uint8_t want[256], *p;
	struct ward_buf out = {0};
	struct ward_cms c;
	size_t n, wn;

	if (path == NULL) {
		skip();
		return;
	}
	p = tu_read_file(path, &n);
	assert_non_null(p);
	assert_int_equal(n, 493);
	ASSERT_OK(ward_cms_parse(p, n, &c));

	unhex(rid_hex, want, sizeof(want), &wn);
	assert_int_equal(c.rid_len, 32);
	assert_memory_equal(c.rid, want, 32);
	assert_ptr_equal(c.rid, p + 33); /* a view into the input */

	unhex(ek_hex, want, sizeof(want), &wn);
	assert_int_equal(wn, 256);
	assert_int_equal(c.encrypted_key_len, 256);
	assert_memory_equal(c.encrypted_key, want, 256);
	assert_ptr_equal(c.encrypted_key, p + 131);
	assert_memory_equal(
	    c.encrypted_key, "\xa0\x61\x45\x93\xa0\x30\xee\x33", 8);
	assert_memory_equal(c.encrypted_key + 253, "\x0a\xb0\xdd", 3);

	unhex(iv_hex, want, sizeof(want), &wn);
	assert_memory_equal(c.iv, want, 16);

	unhex(ct_hex, want, sizeof(want), &wn);
	assert_int_equal(c.content.len, 48);
	assert_memory_equal(c.content.p, want, 48);
	ward_cms_free(&c);

	/* Its private key is not public: any key of ours is the wrong one. */
	ASSERT_ERR(ward_cms_open(key1, p, n, &out), WARD_EKEY);
	assert_int_equal(out.len, 0);
	assert_null(out.p);
	for (size_t cut = 0; cut < n; cut++)
		ASSERT_ERR(ward_cms_parse(p, cut, &c), WARD_EFORMAT);
	free(p);
}

/*
 * Rebuild a sealed message (one chunk of 64 ciphertext bytes) with
 * another encoding of encryptedContent. Everything around it has an
 * indefinite length, so no outer length changes.
 */
static void
rebuild(const struct ward_buf *m, const uint8_t *enc, size_t enc_len,
    struct ward_buf *out)
{
	static const uint8_t eocs[8] = {0};
	size_t head = m->len - 10 - 64 - 4;

	assert_memory_equal(m->p + head, "\xa0\x80\x04\x40", 4);
	out->len = 0;
	ASSERT_OK(ward_buf_append(out, m->p, head));
	ASSERT_OK(ward_buf_append(out, enc, enc_len));
	ASSERT_OK(ward_buf_append(out, eocs, sizeof(eocs)));
}

/* Append n bytes to the encoding being built in enc. */
static void
cat(uint8_t *enc, size_t *e, const void *p, size_t n)
{
	memcpy(enc + *e, p, n);
	*e += n;
}

static void
test_content_encodings(void **state)
{
	uint8_t pt[48], ct[64], enc[512];
	struct ward_buf m = {0}, v = {0}, out = {0};
	struct ward_cms c;
	size_t e;

	fill(pt, sizeof(pt), 1);
	seal(pt, sizeof(pt), &m);
	memcpy(ct, m.p + ct_offset(&m, 64), 64);

	/* [0] IMPLICIT primitive (tag 0x80), as in KMS's second vector */
	enc[0] = 0x80;
	enc[1] = 64;
	memcpy(enc + 2, ct, 64);
	rebuild(&m, enc, 66, &v);
	ASSERT_OK(ward_cms_parse(v.p, v.len, &c));
	assert_int_equal(c.content.len, 64);
	assert_memory_equal(c.content.p, ct, 64);
	ward_cms_free(&c);
	ASSERT_OK(ward_cms_open(key1, v.p, v.len, &out));
	assert_int_equal(out.len, sizeof(pt));
	assert_memory_equal(out.p, pt, sizeof(pt));
	ward_buf_free(&out);

	/* three chunks of 16, 32 and 16 bytes, joined */
	e = 0;
	cat(enc, &e, "\xa0\x80\x04\x10", 4);
	cat(enc, &e, ct, 16);
	cat(enc, &e, "\x04\x20", 2);
	cat(enc, &e, ct + 16, 32);
	cat(enc, &e, "\x04\x10", 2);
	cat(enc, &e, ct + 48, 16);
	cat(enc, &e, "\x00\x00", 2);
	rebuild(&m, enc, e, &v);
	ASSERT_OK(ward_cms_parse(v.p, v.len, &c));
	assert_int_equal(c.content.len, 64);
	assert_memory_equal(c.content.p, ct, 64);
	ward_cms_free(&c);
	ASSERT_OK(ward_cms_open(key1, v.p, v.len, &out));
	assert_memory_equal(out.p, pt, sizeof(pt));
	ward_buf_free(&out);

	/* definite [0] of an empty chunk, a nested constructed OCTET STRING
	 * (indefinite) and a chunk: BER allows all of it */
	e = 0;
	cat(enc, &e, "\xa0\x4a\x04\x00\x24\x80\x04\x30", 8);
	cat(enc, &e, ct, 48);
	cat(enc, &e, "\x00\x00\x04\x10", 4);
	cat(enc, &e, ct + 48, 16);
	assert_int_equal(e, 2 + 0x4a);
	rebuild(&m, enc, e, &v);
	ASSERT_OK(ward_cms_parse(v.p, v.len, &c));
	assert_int_equal(c.content.len, 64);
	assert_memory_equal(c.content.p, ct, 64);
	ward_cms_free(&c);

	/* a chunk that is not an OCTET STRING */
	enc[2] = 0x02;
	rebuild(&m, enc, e, &v);
	ASSERT_ERR(ward_cms_parse(v.p, v.len, &c), WARD_EFORMAT);
	/* a primitive [0] that is not whole AES blocks */
	enc[0] = 0x80;
	enc[1] = 63;
	memcpy(enc + 2, ct, 63);
	rebuild(&m, enc, 65, &v);
	ASSERT_ERR(ward_cms_parse(v.p, v.len, &c), WARD_EFORMAT);
	/* an encryptedContent nested past the depth limit */
	e = 0;
	cat(enc, &e, "\xa0\x80", 2);
	for (int i = 0; i < 40; i++)
		cat(enc, &e, "\x24\x80", 2);
	cat(enc, &e, "\x04\x10", 2);
	cat(enc, &e, ct, 16);
	for (int i = 0; i < 41; i++)
		cat(enc, &e, "\x00\x00", 2);
	rebuild(&m, enc, e, &v);
	ASSERT_ERR(ward_cms_parse(v.p, v.len, &c), WARD_EFORMAT);
	assert_non_null(strstr(ward_errmsg(), "nested"));
	/* the same with definite lengths, built from the inside out */
	e = 18;
	memcpy(enc + sizeof(enc) - e, "\x04\x10", 2);
	memcpy(enc + sizeof(enc) - 16, ct, 16);
	for (int i = 0; i < 41; i++) {
		enc[sizeof(enc) - e - 2] = i < 40 ? 0x24 : 0xa0;
		enc[sizeof(enc) - e - 1] = (uint8_t)e;
		e += 2;
	}
	rebuild(&m, enc + sizeof(enc) - e, e, &v);
	ASSERT_ERR(ward_cms_parse(v.p, v.len, &c), WARD_EFORMAT);
	assert_non_null(strstr(ward_errmsg(), "nested"));
	/* while a few levels are fine: [0] { 24 { 24 { 24 { 04 } } } } */
	rebuild(&m, enc + sizeof(enc) - 18 - 2 * 4, 18 + 2 * 4, &v);
	v.p[v.len - 8 - (18 + 2 * 4)] = 0xa0;
	ASSERT_OK(ward_cms_parse(v.p, v.len, &c));
	assert_int_equal(c.content.len, 16);
	assert_memory_equal(c.content.p, ct, 16);
	ward_cms_free(&c);

	ward_buf_free(&m);
	ward_buf_free(&v);
}

static void
test_round_trip(void **state)
{
	static const size_t sizes[] = {0, 1, 15, 16, 17, 32, 4096};
	/* Appendix B's bytes other than rid, encryptedKey, IV and content,
	 * the same for any RSA-2048 key: up to the rid, the
	 * keyEncryptionAlgorithm at 65, the EncryptedContentInfo up to the
	 * IV at 387, and the [0] after it at 431 */
	static const struct {
		size_t off;
		const char *hex;
	} same[] = {
	    {0, "308006092a864886f70d010703a08030800201023182016b308201670201028020"},
	    {65,
	        "303c06092a864886f70d010107302fa00f300d06096086480165030402010500"
	        "a11c301a06092a864886f70d010108300d06096086480165030402010500"
	        "04820100"},
	    {387, "308006092a864886f70d010701301d060960864801650304012a0410"},
	    {431, "a080"},
	};
	uint8_t want[128], pt[4096], rid[32], *der = NULL;
	unsigned rid_len;
	struct ward_buf m = {0}, out = {0};
	struct ward_cms c;
	size_t wn;
	int der_len;

	/* rid: SHA-256 of the RSAPublicKey, the BIT STRING's contents */
	assert_true((der_len = i2d_PublicKey(key1, &der)) > 0);
	assert_int_equal(
	    EVP_Digest(der, (size_t)der_len, rid, &rid_len, EVP_sha256(), NULL),
	    1);
	OPENSSL_free(der);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t n = sizes[i];

		fill(pt, n, (uint32_t)n);
		seal(pt, n, &m);
		for (size_t j = 0; j < sizeof(same) / sizeof(same[0]); j++) {
			unhex(same[j].hex, want, sizeof(want), &wn);
			assert_true(m.len > same[j].off + wn);
			assert_memory_equal(m.p + same[j].off, want, wn);
		}
		ASSERT_OK(ward_cms_parse(m.p, m.len, &c));
		assert_int_equal(c.rid_len, 32);
		assert_memory_equal(c.rid, rid, 32);
		assert_int_equal(c.encrypted_key_len, 256);
		assert_int_equal(c.content.len, (n / 16 + 1) * 16);
		ward_cms_free(&c);
		ASSERT_OK(ward_cms_open(key1, m.p, m.len, &out));
		assert_true(out.secret);
		assert_int_equal(out.len, n);
		if (n > 0)
			assert_memory_equal(out.p, pt, n);
		ward_buf_free(&out);
	}
	/* a fresh key and IV each time */
	{
		struct ward_buf m2 = {0};

		seal(pt, 32, &m);
		seal(pt, 32, &m2);
		assert_int_equal(m.len, m2.len);
		assert_memory_not_equal(
		    m.p + m.len - 10 - 48, m2.p + m2.len - 10 - 48, 48);
		ward_buf_free(&m2);
	}
	ward_buf_free(&m);
}

static void
test_keys(void **state)
{
	struct ward_buf b = {0}, m = {0};
	EVP_PKEY *k, *ec;

	ASSERT_OK(ward_pkey_from_spki(spki1.p, spki1.len, &k));
	ASSERT_OK(ward_pkey_spki(k, &b));
	assert_int_equal(b.len, spki1.len);
	assert_memory_equal(b.p, spki1.p, b.len);
	assert_int_equal(EVP_PKEY_get_bits(k), 2048);
	ward_pkey_free(k);
	/* trailing byte, truncated, empty */
	ASSERT_OK(ward_buf_put_u8(&b, 0));
	ASSERT_ERR(ward_pkey_from_spki(b.p, b.len, &k), WARD_EFORMAT);
	assert_null(k);
	ASSERT_ERR(ward_pkey_from_spki(b.p, b.len - 2, &k), WARD_EFORMAT);
	ASSERT_ERR(ward_pkey_from_spki(b.p, 0, &k), WARD_EFORMAT);
	/* well-formed but not RSA */
	assert_non_null(ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"));
	b.len = 0;
	ASSERT_OK(ward_pkey_spki(ec, &b));
	ASSERT_ERR(ward_pkey_from_spki(b.p, b.len, &k), WARD_EUNSUPPORTED);
	ASSERT_ERR(ward_cms_seal(b.p, b.len, (const uint8_t *)"x", 1, &m),
	    WARD_EUNSUPPORTED);
	assert_int_equal(m.len, 0);
	EVP_PKEY_free(ec);
	ASSERT_ERR(ward_rsa_generate(1024, &k), WARD_EUSAGE);
	ward_buf_free(&b);
}

static void
test_wrong_key(void **state)
{
	struct ward_buf m = {0}, out = {0};

	seal((const uint8_t *)"data key", 8, &m);
	ASSERT_ERR(ward_cms_open(key2, m.p, m.len, &out), WARD_EKEY);
	assert_non_null(strstr(ward_errmsg(), "private key does not open"));
	assert_int_equal(out.len, 0);
	assert_null(out.p);
	ASSERT_OK(ward_cms_open(key1, m.p, m.len, &out));
	assert_int_equal(out.len, 8);
	ward_buf_free(&out);
	ward_buf_free(&m);
}

static void
test_truncations(void **state)
{
	struct ward_buf m = {0}, out = {0};
	struct ward_cms c;
	uint8_t pt[100];

	fill(pt, sizeof(pt), 7);
	seal(pt, sizeof(pt), &m);
	for (size_t cut = 0; cut < m.len; cut++) {
		ASSERT_ERR(ward_cms_parse(m.p, cut, &c), WARD_EFORMAT);
		assert_null(c.content.p);
	}
	ASSERT_ERR(ward_cms_open(key1, m.p, m.len - 1, &out), WARD_EFORMAT);
	assert_int_equal(out.len, 0);
	ward_buf_free(&m);
}

/* Parse m with byte i set to v; restore it. */
static int
parse_with(struct ward_buf *m, size_t i, uint8_t v)
{
	struct ward_cms c;
	uint8_t old = m->p[i];
	int r;

	m->p[i] = v;
	if ((r = ward_cms_parse(m->p, m->len, &c)) == 0)
		ward_cms_free(&c);
	m->p[i] = old;
	return r;
}

/* Parse m with bytes inserted at i. */
static int
parse_inserted(
    const struct ward_buf *m, size_t i, const void *ins, size_t ins_len)
{
	struct ward_buf v = {0};
	struct ward_cms c;
	int r;

	ASSERT_OK(ward_buf_append(&v, m->p, i));
	ASSERT_OK(ward_buf_append(&v, ins, ins_len));
	ASSERT_OK(ward_buf_append(&v, m->p + i, m->len - i));
	if ((r = ward_cms_parse(v.p, v.len, &c)) == 0)
		ward_cms_free(&c);
	ward_buf_free(&v);
	return r;
}

static size_t
find(const struct ward_buf *m, const char *hex)
{
	uint8_t needle[64];
	size_t n;
	const uint8_t *at;

	unhex(hex, needle, sizeof(needle), &n);
	at = memmem(m->p, m->len, needle, n);
	assert_non_null(at);
	return (size_t)(at - m->p);
}

/*
 * m with extra bytes appended to the RSAES-OAEP parameters, every
 * enclosing definite length (SET, KeyTransRecipientInfo, the
 * AlgorithmIdentifier and the parameters) grown to match.
 */
static void
oaep_extra(
    const struct ward_buf *m, const void *extra, size_t n, struct ward_buf *v)
{
	static const size_t kea = 28 + 3 + 34; /* after version and rid */
	uint8_t h[4];

	assert_memory_equal(m->p + 20, "\x31\x82\x01\x6b\x30\x82\x01\x67", 8);
	assert_memory_equal(m->p + kea, "\x30\x3c\x06\x09", 4);
	assert_memory_equal(m->p + kea + 13, "\x30\x2f", 2);
	v->len = 0;
	ASSERT_OK(ward_buf_append(v, m->p, 20));
	ward_store16(h + 2, (uint16_t)(0x16b + n));
	memcpy(h, "\x31\x82", 2);
	ASSERT_OK(ward_buf_append(v, h, 4));
	ward_store16(h + 2, (uint16_t)(0x167 + n));
	memcpy(h, "\x30\x82", 2);
	ASSERT_OK(ward_buf_append(v, h, 4));
	ASSERT_OK(ward_buf_append(v, m->p + 28, kea - 28));
	ASSERT_OK(ward_buf_put_u8(v, 0x30));
	ASSERT_OK(ward_buf_put_u8(v, (uint8_t)(0x3c + n)));
	ASSERT_OK(ward_buf_append(v, m->p + kea + 2, 11));
	ASSERT_OK(ward_buf_put_u8(v, 0x30));
	ASSERT_OK(ward_buf_put_u8(v, (uint8_t)(0x2f + n)));
	ASSERT_OK(ward_buf_append(v, m->p + kea + 15, 47));
	ASSERT_OK(ward_buf_append(v, extra, n));
	ASSERT_OK(ward_buf_append(v, m->p + kea + 62, m->len - kea - 62));
}

static void
test_malformed(void **state)
{
	struct ward_buf m = {0}, v = {0};
	struct ward_cms c;
	uint8_t pt[20];
	size_t at;

	fill(pt, sizeof(pt), 3);
	seal(pt, sizeof(pt), &m);
	ASSERT_OK(ward_cms_parse(m.p, m.len, &c));
	ward_cms_free(&c);

	/* versions: EnvelopedData at 19, KeyTransRecipientInfo at 30 */
	assert_int_equal(m.p[19], 2);
	assert_int_equal(m.p[30], 2);
	ASSERT_ERR(parse_with(&m, 19, 0), WARD_EUNSUPPORTED);
	ASSERT_ERR(parse_with(&m, 19, 3), WARD_EUNSUPPORTED);
	ASSERT_ERR(parse_with(&m, 30, 0), WARD_EUNSUPPORTED);
	/* OIDs: contentType signedData; rsaEncryption (PKCS #1 v1.5);
	 * sha384 in OAEP's hash and in MGF1's; pkcs7-encryptedData;
	 * aes-128-cbc */
	ASSERT_ERR(parse_with(&m, 12, 0x02), WARD_EUNSUPPORTED);
	at = find(&m, "2a864886f70d010107");
	ASSERT_ERR(parse_with(&m, at + 8, 0x01), WARD_EUNSUPPORTED);
	at = find(&m, "608648016503040201");
	ASSERT_ERR(parse_with(&m, at + 8, 0x02), WARD_EUNSUPPORTED);
	at = find(&m, "2a864886f70d010108300d0609608648016503040201");
	ASSERT_ERR(parse_with(&m, at + 21, 0x02), WARD_EUNSUPPORTED);
	at = find(&m, "2a864886f70d010701");
	ASSERT_ERR(parse_with(&m, at + 8, 0x06), WARD_EUNSUPPORTED);
	at = find(&m, "60864801650304012a");
	ASSERT_ERR(parse_with(&m, at + 8, 0x02), WARD_EUNSUPPORTED);
	assert_non_null(strstr(ward_errmsg(), "2.16.840.1.101.3.4.1.2;"));
	/* a key agreement RecipientInfo ([1]) instead of key transport */
	assert_int_equal(m.p[24], 0x30);
	ASSERT_ERR(parse_with(&m, 24, 0xa1), WARD_EUNSUPPORTED);
	/* encryptedKey claiming one byte more than its SEQUENCE holds */
	at = find(&m, "04820100");
	ASSERT_ERR(parse_with(&m, at + 3, 0x01), WARD_EFORMAT);

	/* two recipients: the KeyTransRecipientInfo twice in the SET */
	assert_memory_equal(m.p + 20, "\x31\x82\x01\x6b", 4);
	ASSERT_OK(ward_buf_append(&v, m.p, 20));
	ASSERT_OK(ward_buf_append(&v, "\x31\x82\x02\xd6", 4));
	ASSERT_OK(ward_buf_append(&v, m.p + 24, 363));
	ASSERT_OK(ward_buf_append(&v, m.p + 24, 363));
	ASSERT_OK(ward_buf_append(&v, m.p + 24 + 363, m.len - 24 - 363));
	ASSERT_ERR(ward_cms_parse(v.p, v.len, &c), WARD_EUNSUPPORTED);
	assert_non_null(strstr(ward_errmsg(), "more than one RecipientInfo"));
	/* an empty recipientInfos SET */
	v.len = 0;
	ASSERT_OK(ward_buf_append(&v, m.p, 20));
	ASSERT_OK(ward_buf_append(&v, "\x31\x00", 2));
	ASSERT_OK(ward_buf_append(&v, m.p + 24 + 363, m.len - 24 - 363));
	ASSERT_ERR(ward_cms_parse(v.p, v.len, &c), WARD_EFORMAT);

	/* originatorInfo [0] and unprotectedAttrs [1] are tolerated (and
	 * skipped); any other trailing field of EnvelopedData is not */
	ASSERT_OK(parse_inserted(&m, 20, "\xa0\x00", 2));
	ASSERT_OK(parse_inserted(&m, m.len - 6, "\xa1\x02\x30\x00", 4));
	ASSERT_ERR(parse_inserted(&m, m.len - 6, "\xa2\x00", 2), WARD_EFORMAT);
	ASSERT_ERR(parse_inserted(&m, 20, "\x02\x01\x02", 3), WARD_EFORMAT);
	/* an OAEP label (pSourceAlgorithm [2], pSpecified, empty): refused
	 * even though it means the default, so that only KMS's exact
	 * parameters pass; without it the same rebuild parses */
	v.len = 0;
	oaep_extra(&m, "", 0, &v);
	ASSERT_OK(ward_cms_parse(v.p, v.len, &c));
	ward_cms_free(&c);
	oaep_extra(&m,
	    "\xa2\x0f\x30\x0d\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x09\x04\x00",
	    17, &v);
	ASSERT_ERR(ward_cms_parse(v.p, v.len, &c), WARD_EUNSUPPORTED);
	assert_non_null(strstr(ward_errmsg(), "pSourceAlgorithm"));

	/* trailing garbage after the ContentInfo */
	ASSERT_ERR(parse_inserted(&m, m.len, "\x00", 1), WARD_EFORMAT);
	ASSERT_ERR(parse_inserted(&m, m.len, "\x00\x00", 2), WARD_EFORMAT);
	ASSERT_ERR(parse_inserted(&m, m.len, "\x30\x00", 2), WARD_EFORMAT);
	assert_non_null(strstr(ward_errmsg(), "trailing"));

	/* lengths: past the end, more than four length octets, reserved */
	ASSERT_ERR(
	    ward_cms_parse(
	        (const uint8_t *)"\x30\x84\xff\xff\xff\xff\x00\x00", 8, &c),
	    WARD_EFORMAT);
	ASSERT_ERR(
	    ward_cms_parse(
	        (const uint8_t *)"\x30\x85\x00\x00\x00\x00\x02\x05\x00", 9, &c),
	    WARD_EFORMAT);
	ASSERT_ERR(ward_cms_parse((const uint8_t *)"\x30\xff\x00\x00", 4, &c),
	    WARD_EFORMAT);
	ASSERT_ERR(
	    ward_cms_parse((const uint8_t *)"\x30\x82\x01\x00\x05\x00", 6, &c),
	    WARD_EFORMAT);
	/* a primitive element with an indefinite length; end-of-contents
	 * inside a definite length; empty input; base64 */
	ASSERT_ERR(
	    ward_cms_parse(
	        (const uint8_t *)"\x30\x80\x04\x80\x00\x00\x00\x00", 8, &c),
	    WARD_EFORMAT);
	ASSERT_ERR(ward_cms_parse((const uint8_t *)"\x30\x02\x00\x00", 4, &c),
	    WARD_EFORMAT);
	ASSERT_ERR(ward_cms_parse(m.p, 0, &c), WARD_EFORMAT);
	ASSERT_ERR(
	    ward_cms_parse((const uint8_t *)"MIAGCSqGSIb3DQEHA6CA", 20, &c),
	    WARD_EFORMAT);
	assert_non_null(strstr(ward_errmsg(), "base64"));
	/* too large, whatever it holds */
	{
		uint8_t *huge = calloc(1, WARD_CMS_MAX + 1);

		assert_non_null(huge);
		ASSERT_ERR(
		    ward_cms_parse(huge, WARD_CMS_MAX + 1, &c), WARD_ELIMIT);
		free(huge);
	}
	/* deep nesting (definite lengths are only descended into along the
	 * expected shape; see test_content_encodings for that case) */
	v.len = 0;
	for (int i = 0; i < 200; i++)
		ASSERT_OK(ward_buf_append(&v, "\x30\x80", 2));
	for (int i = 0; i < 200; i++)
		ASSERT_OK(ward_buf_append(&v, "\x00\x00", 2));
	ASSERT_ERR(ward_cms_parse(v.p, v.len, &c), WARD_EFORMAT);
	assert_non_null(strstr(ward_errmsg(), "nested"));
	ward_buf_free(&v);
	ward_buf_free(&m);
}

/*
 * Tampering. RSA-OAEP detects any change to the encrypted key. CBC has
 * no integrity: only the PKCS#7 padding check can notice a change, so a
 * flipped bit is detected deterministically only where it lands in the
 * padding. Flipping bit 0 of the block before the last (the IV for a
 * one-block message) flips bit 0 of the padding length p: p ^ 1 is 0,
 * above 16, or disagrees with the byte before it, so it is always
 * refused. A flip in the last block garbles all of that block: refused
 * unless the garbled block happens to end in valid padding (about 1 in
 * 256). A flip earlier in the ciphertext is not detected at all.
 */
static void
test_tamper(void **state)
{
	static const size_t sizes[] = {0, 1, 15, 16, 17, 100};
	struct ward_buf m = {0}, out = {0};
	struct ward_cms c;
	uint8_t pt[100];
	char wrong_key[512];
	size_t at;
	int r;

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t n = sizes[i], ct_len = (n / 16 + 1) * 16, ct;

		fill(pt, n, (uint32_t)(n + 11));
		seal(pt, n, &m);
		ct = ct_offset(&m, ct_len);

		/* the encrypted key */
		assert_int_equal(m.p[127], 0x04);
		m.p[131 + n] ^= 0x01;
		ASSERT_ERR(ward_cms_open(key1, m.p, m.len, &out), WARD_EKEY);
		assert_null(out.p);
		m.p[131 + n] ^= 0x01;

		/* the padding length, through the previous block or IV */
		if (ct_len == 16) {
			ASSERT_OK(ward_cms_parse(m.p, m.len, &c));
			at = (size_t)((const uint8_t *)memmem(
			                  m.p, m.len, c.iv, 16) -
			    m.p);
			ward_cms_free(&c);
			at += 15;
		} else
			at = ct + ct_len - 17;
		/* ...fails exactly as a wrong key does: one code, one
		 * message, so a relay learns nothing from which it was */
		ASSERT_ERR(ward_cms_open(key2, m.p, m.len, &out), WARD_EKEY);
		snprintf(wrong_key, sizeof(wrong_key), "%s", ward_errmsg());
		m.p[at] ^= 0x01;
		ASSERT_ERR(ward_cms_open(key1, m.p, m.len, &out), WARD_EKEY);
		assert_string_equal(ward_errmsg(), wrong_key);
		assert_null(out.p);
		m.p[at] ^= 0x01;

		/* the last ciphertext byte: refused, or (rarely) a different
		 * plaintext, never the original */
		m.p[ct + ct_len - 1] ^= 0x01;
		r = ward_cms_open(key1, m.p, m.len, &out);
		if (r == 0)
			assert_true(out.len != n || memcmp(out.p, pt, n) != 0);
		else
			assert_int_equal(r, -WARD_EKEY);
		ward_buf_free(&out);
		m.p[ct + ct_len - 1] ^= 0x01;

		ASSERT_OK(ward_cms_open(key1, m.p, m.len, &out));
		assert_int_equal(out.len, n);
		ward_buf_free(&out);
	}

	/* Not detected, by design of CBC: a flip in the first of seven
	 * blocks garbles that block and flips the same bit of the next. */
	m.p[ct_offset(&m, 112) + 3] ^= 0x40;
	ASSERT_OK(ward_cms_open(key1, m.p, m.len, &out));
	assert_int_equal(out.len, 100);
	assert_memory_not_equal(out.p, pt, 16);
	assert_int_equal(out.p[16 + 3], pt[16 + 3] ^ 0x40);
	assert_memory_equal(out.p + 32, pt + 32, 100 - 32);
	ward_buf_free(&out);
	ward_buf_free(&m);
}

/* The openssl command-line tool, or a SKIP line. */
static bool
have_openssl(void)
{
	if (system("openssl version >/dev/null 2>&1") == 0)
		return true;
	printf("SKIP: the openssl command-line tool is not installed\n");
	return false;
}

static void
write_key_pem(const char *path, EVP_PKEY *k)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(
	    PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
	assert_int_equal(fclose(f), 0);
}

static void run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
run(const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (system(cmd) != 0)
		fail_msg("command failed: %s", cmd);
}

/* ward seals, openssl cms -decrypt opens. */
static void
test_openssl_opens_ward(void **state)
{
	static const size_t sizes[] = {0, 1, 17, 4096};
	char path[4][4096];
	struct ward_buf m = {0};
	uint8_t pt[4096], *back;
	char *dir;
	size_t n;

	if (!have_openssl()) {
		skip();
		return;
	}
	dir = tu_mkdtemp();
	snprintf(path[0], sizeof(path[0]), "%s/k.pem", dir);
	snprintf(path[1], sizeof(path[1]), "%s/msg.der", dir);
	snprintf(path[2], sizeof(path[2]), "%s/out", dir);
	write_key_pem(path[0], key1);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		fill(pt, sizes[i], (uint32_t)(sizes[i] + 5));
		seal(pt, sizes[i], &m);
		assert_int_equal(tu_write_file(path[1], m.p, m.len), 0);
		run("openssl cms -decrypt -inform DER -in '%s' -inkey '%s' -out '%s'",
		    path[1], path[0], path[2]);
		back = tu_read_file(path[2], &n);
		assert_non_null(back);
		assert_int_equal(n, sizes[i]);
		assert_memory_equal(back, pt, n);
		free(back);
	}
	ward_buf_free(&m);
	tu_rmtree(dir);
	free(dir);
}

/*
 * openssl cms -encrypt seals, ward opens. Without -stream openssl writes
 * DER (primitive [0] content, sha256 without NULL parameters, a 20-byte
 * SHA-1 rid); with -stream, indefinite lengths and the content in
 * several OCTET STRING chunks.
 */
static void
test_ward_opens_openssl(void **state)
{
	static const size_t sizes[] = {0, 33, 5000};
	char key[4096], cert[4096], in[4096], msg[4096];
	struct ward_buf out = {0};
	uint8_t pt[5000], *m;
	struct ward_cms c;
	char *dir;
	size_t n;

	if (!have_openssl()) {
		skip();
		return;
	}
	dir = tu_mkdtemp();
	snprintf(key, sizeof(key), "%s/k.pem", dir);
	snprintf(cert, sizeof(cert), "%s/c.pem", dir);
	snprintf(in, sizeof(in), "%s/pt", dir);
	snprintf(msg, sizeof(msg), "%s/msg.der", dir);
	write_key_pem(key, key1);
	run("openssl req -x509 -new -key '%s' -subj /CN=t -days 1 -out '%s'",
	    key, cert);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		for (int stream = 0; stream < 2; stream++) {
			fill(pt, sizes[i], (uint32_t)(sizes[i] + 9));
			assert_int_equal(tu_write_file(in, pt, sizes[i]), 0);
			run("openssl cms -encrypt -binary %s -in '%s' -outform DER -out '%s' -recip '%s' -keyid -aes256 -keyopt rsa_padding_mode:oaep -keyopt rsa_oaep_md:sha256 -keyopt rsa_mgf1_md:sha256",
			    stream ? "-stream" : "", in, msg, cert);
			m = tu_read_file(msg, &n);
			assert_non_null(m);
			/* -stream writes indefinite lengths; without it, DER */
			assert_int_equal(m[1] == 0x80, stream);
			ASSERT_OK(ward_cms_parse(m, n, &c));
			assert_int_equal(c.encrypted_key_len, 256);
			ward_cms_free(&c);
			ASSERT_OK(ward_cms_open(key1, m, n, &out));
			assert_int_equal(out.len, sizes[i]);
			if (sizes[i] > 0)
				assert_memory_equal(out.p, pt, sizes[i]);
			ward_buf_free(&out);
			ASSERT_ERR(ward_cms_open(key2, m, n, &out), WARD_EKEY);
			free(m);
		}
	}
	tu_rmtree(dir);
	free(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_kms_vector),
	    cmocka_unit_test(test_content_encodings),
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_keys),
	    cmocka_unit_test(test_wrong_key),
	    cmocka_unit_test(test_truncations),
	    cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_tamper),
	    cmocka_unit_test(test_openssl_opens_ward),
	    cmocka_unit_test(test_ward_opens_openssl),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
