/* attest: the CBOR layer, attestation documents and their verification —
 * the real AWS document (every byte, every time boundary, every encoding
 * shape), sandbox documents under a local root, chain rules, and the
 * syntactic checks of nitro.md §3.1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"
#include "ward/attest.h"

#define AWS_DOC "/attestation/aws-nitro-2022-09-15.cbor"
#define AWS_AT 1663263864 /* 2022-09-15T17:44:24Z */
#define AWS_PCR0                                                               \
	"ea4212ee889ba1b4dbfe744aadecca8b1930de60a3a1ce3b0c79f42b231700fc56"   \
	"1c3d9b34f0565ed9eb6f460996624c"
#define LEAF_NOT_BEFORE 1663263804 /* 2022-09-15T17:43:24Z */
#define LEAF_NOT_AFTER 1663274607 /* 2022-09-15T20:43:27Z */

static void
unhex(const char *s, uint8_t *out, size_t cap, size_t *n)
{
	if (ward_hex_decode(s, strlen(s), out, cap, n) != 0)
		fail_msg("bad hex in test");
}

static void
hexeq(struct ward_bytes b, const char *hex)
{
	char *s = malloc(ward_hex_len(b.len) + 1);

	assert_non_null(s);
	ward_hex_encode(b.p, b.len, s);
	assert_string_equal(s, hex);
	free(s);
}

/* ---- CBOR ---- */

static void
test_cbor_writer_kat(void **state)
{
	static const struct {
		uint64_t v;
		const char *hex;
	} uints[] = {
	    {0, "00"},
	    {23, "17"},
	    {24, "1818"},
	    {255, "18ff"},
	    {256, "190100"},
	    {65535, "19ffff"},
	    {65536, "1a00010000"},
	    {4294967295u, "1affffffff"},
	    {4294967296u, "1b0000000100000000"},
	    {UINT64_MAX, "1bffffffffffffffff"},
	};
	for (size_t i = 0; i < sizeof(uints) / sizeof(uints[0]); i++) {
		struct ward_buf b = {0};
		struct ward_cbor_reader r;
		uint64_t got;

		ASSERT_OK(ward_cbor_put_uint(&b, uints[i].v));
		hexeq((struct ward_bytes){b.p, b.len}, uints[i].hex);
		ward_cbor_reader_init(&r, b.p, b.len, "t");
		ASSERT_OK(ward_cbor_read_uint(&r, "v", &got));
		assert_int_equal(got, uints[i].v);
		ASSERT_OK(ward_cbor_end(&r));
		ward_buf_free(&b);
	}
	struct ward_buf b = {0};
	ASSERT_OK(ward_cbor_put_negint(&b, 34)); /* -35 */
	ASSERT_OK(ward_cbor_put_bytes(&b, "abc", 3));
	ASSERT_OK(ward_cbor_put_textz(&b, "hi"));
	ASSERT_OK(ward_cbor_put_map(&b, 1));
	ASSERT_OK(ward_cbor_put_array(&b, 24));
	ASSERT_OK(ward_cbor_put_tag(&b, 18));
	ASSERT_OK(ward_cbor_put_null(&b));
	ASSERT_OK(ward_cbor_put_bool(&b, true));
	ASSERT_OK(ward_cbor_put_bool(&b, false));
	ASSERT_OK(ward_cbor_put_indef_map(&b));
	ASSERT_OK(ward_cbor_put_indef_array(&b));
	ASSERT_OK(ward_cbor_put_break(&b));
	hexeq((struct ward_bytes){b.p, b.len},
	    "382243616263626869a19818d2f6f5f4bf9fff");
	ward_buf_free(&b);
}

static int
read_hex(const char *hex, struct ward_buf *out)
{
	size_t n;

	if (ward_buf_reserve(out, strlen(hex) / 2 + 1) != 0)
		return -1;
	unhex(hex, out->p, strlen(hex) / 2 + 1, &n);
	out->len = n;
	return 0;
}

static void
test_cbor_reader(void **state)
{
	struct ward_buf b = {0};
	struct ward_cbor_reader r;
	struct ward_cbor_coll c;
	struct ward_cbor_str s;
	uint64_t v;
	int n = 0;

	/* {_ "a": [_ 1, 2], "b": (_ h'01', h'0203')} then nothing */
	assert_int_equal(read_hex("bf61619f0102ff61625f4101420203ffff", &b), 0);
	ward_cbor_reader_init(&r, b.p, b.len, "t");
	ASSERT_OK(ward_cbor_enter_map(&r, "m", &c));
	assert_true(c.indefinite);
	while (ward_cbor_more(&r, &c) == 1) {
		ASSERT_OK(ward_cbor_read_text(&r, "k", 8, &s));
		if (s.v.p[0] == 'a') {
			struct ward_cbor_coll a;

			ASSERT_OK(ward_cbor_enter_array(&r, "a", &a));
			while (ward_cbor_more(&r, &a) == 1) {
				ASSERT_OK(ward_cbor_read_uint(&r, "x", &v));
				n += (int)v;
			}
		} else {
			struct ward_cbor_str bs;

			ward_cbor_str_free(&s);
			ASSERT_OK(ward_cbor_read_bytes(&r, "b", 8, &bs));
			assert_non_null(bs.owned); /* chunks joined */
			hexeq(bs.v, "010203");
			ward_cbor_str_free(&bs);
		}
		ward_cbor_str_free(&s);
	}
	assert_int_equal(n, 3);
	ASSERT_OK(ward_cbor_end(&r));
	/* skip walks the same item whole */
	ward_cbor_reader_init(&r, b.p, b.len, "t");
	ASSERT_OK(ward_cbor_skip(&r));
	assert_int_equal(r.pos, b.len);
	/* every truncation fails, cleanly */
	for (size_t i = 0; i < b.len; i++) {
		ward_cbor_reader_init(&r, b.p, i, "t");
		ASSERT_ERR(ward_cbor_skip(&r), WARD_EFORMAT);
	}
	ward_buf_free(&b);
}

static void
test_cbor_hostile(void **state)
{
	static const struct {
		const char *hex;
		int code;
	} cases[] = {
	    {"9bffffffffffffffff", WARD_EFORMAT}, /* 2^64-1 entries */
	    {"bb7fffffffffffffff00", WARD_EFORMAT}, /* huge map */
	    {"5bffffffffffffff0000", WARD_EFORMAT}, /* huge string */
	    {"1c", WARD_EFORMAT}, /* reserved additional info */
	    {"ff", WARD_EFORMAT}, /* stray break */
	    {"5f01ff", WARD_EFORMAT}, /* int chunk in a byte string */
	    {"5f5f40ffff", WARD_EFORMAT}, /* nested chunked string */
	    {"7f4100ff", WARD_EFORMAT}, /* byte chunk in a text string */
	    {"", WARD_EFORMAT},
	    {"83010203ff", 0}, /* skip ok; trailing checked by end */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ward_buf b = {0};
		struct ward_cbor_reader r;

		assert_int_equal(read_hex(cases[i].hex, &b), 0);
		ward_cbor_reader_init(&r, b.p, b.len, "t");
		if (cases[i].code == 0) {
			ASSERT_OK(ward_cbor_skip(&r));
			ASSERT_ERR(ward_cbor_end(&r), WARD_EFORMAT);
		} else {
			ASSERT_ERR(ward_cbor_skip(&r), cases[i].code);
		}
		ward_buf_free(&b);
	}
	/* nesting beyond the limit: 1000 nested arrays, 1000 tags */
	uint8_t deep[1001];
	struct ward_cbor_reader r;

	memset(deep, 0x81, 1000);
	deep[1000] = 0x00;
	ward_cbor_reader_init(&r, deep, sizeof(deep), "t");
	ASSERT_ERR(ward_cbor_skip(&r), WARD_ELIMIT);
	memset(deep, 0xc1, 1000);
	ward_cbor_reader_init(&r, deep, sizeof(deep), "t");
	ASSERT_ERR(ward_cbor_skip(&r), WARD_ELIMIT);
	/* invalid UTF-8 text, overlong and surrogate */
	static const char *bad_text[] = {"62c0af", "63eda080", "61ff"};
	for (size_t i = 0; i < 3; i++) {
		struct ward_buf b = {0};
		struct ward_cbor_str s;

		assert_int_equal(read_hex(bad_text[i], &b), 0);
		ward_cbor_reader_init(&r, b.p, b.len, "t");
		ASSERT_ERR(ward_cbor_read_text(&r, "t", 16, &s), WARD_EFORMAT);
		ward_buf_free(&b);
	}
}

/* ---- the real AWS document ---- */

static uint8_t *
aws_doc(size_t *n)
{
	const char *dir = tu_fixtures("attestation");
	char path[4096];

	if (dir == NULL)
		return NULL;
	snprintf(path, sizeof(path), "%s/aws-nitro-2022-09-15.cbor", dir);
	return tu_read_file(path, n);
}

static struct ward_attest_roots *
aws_roots(void)
{
	struct ward_attest_roots *rs;

	if (ward_attest_roots_new(true, &rs) != 0)
		fail_msg("%s", ward_errmsg());
	return rs;
}

static int
parse_verify(const uint8_t *p, size_t n, struct ward_attest_roots *rs,
    time_t at, struct ward_attest_result *res)
{
	struct ward_attest_doc *d;
	int r;

	if ((r = ward_attest_parse(p, n, &d)) != 0)
		return r;
	r = ward_attest_verify(d, rs, at, res);
	ward_attest_doc_free(d);
	return r;
}

static void
test_aws_root_builtin(void **state)
{
	struct ward_bytes root = ward_attest_aws_root();
	struct ward_x509_info in;

	assert_int_equal(root.len, 533);
	ASSERT_OK(ward_x509_info(root.p, root.len, &in));
	hexeq((struct ward_bytes){in.sha256, 32},
	    "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b");
	assert_string_equal(in.serial, "f93175681b90afe11d46ccb4e4e7f856");
	assert_true(in.ca);
}

static void
test_aws_document(void **state)
{
	struct ward_attest_roots *rs;
	struct ward_attest_doc *d;
	struct ward_attest_result res;
	size_t n;
	uint8_t *p = aws_doc(&n);

	if (p == NULL) {
		skip();
		return;
	}
	assert_int_equal(n, 4690);
	rs = aws_roots();
	ASSERT_OK(ward_attest_parse(p, n, &d));
	assert_false(d->tagged);
	assert_memory_equal(d->module_id.p,
	    "i-0697c9729fa547b20-enc0183422ede9a5dc8", d->module_id.len);
	assert_int_equal(d->timestamp_ms, 1663263808848ull);
	assert_int_equal(d->pcr_mask, 0xffff);
	hexeq(d->pcrs[0], AWS_PCR0);
	hexeq(d->nonce.v, "47b5fba6979cbf7e567e2629");
	hexeq(d->public_key.v,
	    "15db1c67adc9fce91f7da323c708b6e639f0585af8a4a091127f2dfdcfeaf808");
	assert_true(d->user_data.present);
	assert_int_equal(d->cabundle_len, 4); /* + the leaf: a chain of 5 */
	assert_false(d->debug);
	ASSERT_OK(ward_attest_verify(d, rs, AWS_AT, &res));
	assert_true(res.aws);
	assert_string_equal(res.root_name, WARD_ATTEST_ROOT_AWS);
	/* the leaf's window, to the second, and well outside it */
	ASSERT_OK(ward_attest_verify(d, rs, LEAF_NOT_BEFORE, &res));
	/* OpenSSL counts notAfter's own second as expired */
	ASSERT_OK(ward_attest_verify(d, rs, LEAF_NOT_AFTER - 1, &res));
	ASSERT_ERR(
	    ward_attest_verify(d, rs, LEAF_NOT_BEFORE - 1, &res), WARD_EAUTH);
	ASSERT_ERR(
	    ward_attest_verify(d, rs, LEAF_NOT_AFTER + 1, &res), WARD_EAUTH);
	ASSERT_ERR(ward_attest_verify(d, rs, time(NULL), &res), WARD_EAUTH);
	ASSERT_ERR(ward_attest_verify(d, rs, 1500000000, &res), WARD_EAUTH);
	ward_attest_roots_free(rs);
	/* without the AWS root nothing verifies it */
	ASSERT_OK(ward_attest_roots_new(false, &rs));
	ASSERT_ERR(ward_attest_verify(d, rs, AWS_AT, &res), WARD_EAUTH);
	assert_non_null(strstr(ward_errmsg(), "not a trusted root"));
	ward_attest_roots_free(rs);
	ward_attest_doc_free(d);
	free(p);
}

/* Change every byte of the document, one at a time: nothing verifies. */
static void
test_aws_every_byte(void **state)
{
	struct ward_attest_roots *rs;
	struct ward_attest_result res;
	size_t n, parse_fail = 0, verify_fail = 0;
	uint8_t *p = aws_doc(&n);

	if (p == NULL) {
		skip();
		return;
	}
	rs = aws_roots();
	for (size_t i = 0; i < n; i++) {
		struct ward_attest_doc *d = NULL;
		int r;

		p[i] ^= (uint8_t)(1u << (i % 8));
		if (ward_attest_parse(p, n, &d) != 0) {
			parse_fail++;
		} else {
			r = ward_attest_verify(d, rs, AWS_AT, &res);
			if (r == 0)
				fail_msg("byte %zu changed and the document "
				         "verified",
				    i);
			verify_fail++;
			ward_attest_doc_free(d);
		}
		p[i] ^= (uint8_t)(1u << (i % 8));
	}
	/* both the decoder and the signature did real work */
	assert_true(verify_fail > 4000);
	assert_true(parse_fail > 10);
	print_message("every byte: %zu rejected by decoding, %zu by "
	              "verification\n",
	    parse_fail, verify_fail);
	/* and every truncation is malformed */
	for (size_t i = 0; i < n; i++) {
		struct ward_attest_doc *d = NULL;

		if (ward_attest_parse(p, i, &d) == 0)
			fail_msg("truncated to %zu bytes and parsed", i);
	}
	ASSERT_OK(parse_verify(p, n, rs, AWS_AT, &res));
	ward_attest_roots_free(rs);
	free(p);
}

/*
 * The same signed bytes in other CBOR shapes: tag 18, an indefinite-length
 * outer array, an indefinite unprotected map, a chunked payload. None of
 * these is covered by the signature, so all must verify.
 */
static void
test_aws_shapes(void **state)
{
	struct ward_attest_roots *rs;
	struct ward_attest_result res;
	struct ward_attest_doc *d;
	size_t n;
	uint8_t *p = aws_doc(&n);

	if (p == NULL) {
		skip();
		return;
	}
	rs = aws_roots();
	/* the document: 84 44 a1013822 a0 59 11e6 <4582 payload> 58 60 <96> */
	assert_int_equal(p[0], 0x84);
	assert_int_equal(p[6], 0xa0);
	assert_int_equal(p[7], 0x59);
	size_t plen = (size_t)p[8] << 8 | p[9];
	const uint8_t *payload = p + 10;
	const uint8_t *sigpart = payload + plen; /* 58 60 ... */
	size_t siglen = n - 10 - plen;

	for (int shape = 0; shape < 4; shape++) {
		struct ward_buf b = {0};

		if (shape == 0)
			ASSERT_OK(ward_buf_put_u8(&b, 0xd2)); /* tag 18 */
		ASSERT_OK(ward_buf_put_u8(&b, shape == 1 ? 0x9f : 0x84));
		ASSERT_OK(ward_buf_append(&b, p + 1, 5));
		if (shape == 2) {
			ASSERT_OK(ward_buf_put_u8(&b, 0xbf));
			ASSERT_OK(ward_buf_put_u8(&b, 0xff));
		} else {
			ASSERT_OK(ward_buf_put_u8(&b, 0xa0));
		}
		if (shape == 3) { /* payload in three chunks */
			ASSERT_OK(ward_buf_put_u8(&b, 0x5f));
			ASSERT_OK(ward_cbor_put_bytes(&b, payload, 100));
			ASSERT_OK(ward_cbor_put_bytes(&b, payload + 100, 0));
			ASSERT_OK(
			    ward_cbor_put_bytes(&b, payload + 100, plen - 100));
			ASSERT_OK(ward_buf_put_u8(&b, 0xff));
		} else {
			ASSERT_OK(ward_buf_append(&b, p + 7, 3 + plen));
		}
		ASSERT_OK(ward_buf_append(&b, sigpart, siglen));
		if (shape == 1)
			ASSERT_OK(ward_buf_put_u8(&b, 0xff));
		ASSERT_OK(ward_attest_parse(b.p, b.len, &d));
		assert_int_equal(d->tagged, shape == 0);
		ASSERT_OK(ward_attest_verify(d, rs, AWS_AT, &res));
		ward_attest_doc_free(d);
		/* another tag, or trailing bytes, are refused */
		if (shape == 0) {
			b.p[0] = 0xd1;
			ASSERT_ERR(
			    ward_attest_parse(b.p, b.len, &d), WARD_EFORMAT);
			b.p[0] = 0xd2;
			ASSERT_OK(ward_buf_put_u8(&b, 0x00));
			ASSERT_ERR(
			    ward_attest_parse(b.p, b.len, &d), WARD_EFORMAT);
		}
		ward_buf_free(&b);
	}
	/* an oversized input is refused before decoding */
	uint8_t *big = calloc(1, WARD_ATTEST_DOC_MAX + 1);
	struct ward_attest_doc *dd;
	assert_non_null(big);
	ASSERT_ERR(
	    ward_attest_parse(big, WARD_ATTEST_DOC_MAX + 1, &dd), WARD_ELIMIT);
	free(big);
	ward_attest_roots_free(rs);
	free(p);
}

/* ---- hand-built chains and documents ---- */

struct chain {
	struct evp_pkey_st *root_k, *mon_k, *leaf_k;
	struct ward_buf root, mon, leaf;
};

enum chain_flaw {
	CHAIN_OK,
	CHAIN_LEAF_IS_CA,
	CHAIN_LEAF_NO_DIGSIG,
	CHAIN_MON_NO_CERTSIGN,
	CHAIN_MON_NOT_CA,
	CHAIN_LEAF_P256,
	CHAIN_MON_NO_KU, /* a CA without any key usage extension */
};

static void
make_chain(struct chain *c, enum chain_flaw flaw)
{
	int64_t now = time(NULL);
	struct ward_x509_template root = {.cn = "test root",
	    .not_before = now - 60,
	    .not_after = now + 86400,
	    .ca = true,
	    .pathlen = -1,
	    .key_cert_sign = true};
	struct ward_x509_template mon = {.cn = "test monitor",
	    .not_before = now - 60,
	    .not_after = now + 86400,
	    .ca = flaw != CHAIN_MON_NOT_CA,
	    .pathlen = 0,
	    .key_cert_sign =
	        flaw != CHAIN_MON_NO_CERTSIGN && flaw != CHAIN_MON_NO_KU,
	    .digital_signature = flaw == CHAIN_MON_NO_CERTSIGN};
	struct ward_x509_template leaf = {.cn = "test leaf",
	    .not_before = now - 60,
	    .not_after = now + 3600,
	    .ca = flaw == CHAIN_LEAF_IS_CA,
	    .pathlen = -1,
	    .digital_signature = flaw != CHAIN_LEAF_NO_DIGSIG,
	    .key_cert_sign = flaw == CHAIN_LEAF_IS_CA};

	memset(c, 0, sizeof(*c));
	ASSERT_OK(ward_ec_generate(WARD_CURVE_P384, &c->root_k));
	ASSERT_OK(ward_ec_generate(WARD_CURVE_P384, &c->mon_k));
	ASSERT_OK(ward_ec_generate(
	    flaw == CHAIN_LEAF_P256 ? WARD_CURVE_P256 : WARD_CURVE_P384,
	    &c->leaf_k));
	ASSERT_OK(
	    ward_x509_issue(&root, c->root_k, c->root_k, NULL, 0, &c->root));
	ASSERT_OK(ward_x509_issue(
	    &mon, c->mon_k, c->root_k, c->root.p, c->root.len, &c->mon));
	ASSERT_OK(ward_x509_issue(
	    &leaf, c->leaf_k, c->mon_k, c->mon.p, c->mon.len, &c->leaf));
}

static void
free_chain(struct chain *c)
{
	ward_pkey_free(c->root_k);
	ward_pkey_free(c->mon_k);
	ward_pkey_free(c->leaf_k);
	ward_buf_free(&c->root);
	ward_buf_free(&c->mon);
	ward_buf_free(&c->leaf);
}

/* Payload variations, one flaw at a time. */
enum flaw {
	OK_DEFINITE,
	OK_INDEFINITE, /* the 2026 NSM shape: indefinite payload map */
	OK_UNKNOWN_FIELD,
	OK_OMIT_OPTIONALS,
	NO_MODULE_ID,
	NO_CABUNDLE,
	DUP_DIGEST,
	DIGEST_SHA256,
	PCR_INDEX_32,
	PCR_LEN_47,
	PCRS_EMPTY,
	CABUNDLE_EMPTY,
	MODULE_ID_EMPTY,
	TIMESTAMP_ZERO,
	TIMESTAMP_TEXT,
	USER_DATA_513,
	PUBLIC_KEY_EMPTY,
	CERT_NULL,
	TRAILING_BYTE,
	FLAW_COUNT,
};

static void
put_kv_bytes(struct ward_buf *b, const char *k, const void *p, size_t n)
{
	ASSERT_OK(ward_cbor_put_textz(b, k));
	ASSERT_OK(ward_cbor_put_bytes(b, p, n));
}

static void
make_payload(struct ward_buf *b, const struct chain *c, enum flaw f,
    const uint8_t pcr0[48])
{
	uint8_t zero[64] = {0};
	size_t fields = 9;

	if (f == OK_UNKNOWN_FIELD || f == DUP_DIGEST)
		fields++;
	if (f == NO_MODULE_ID || f == NO_CABUNDLE)
		fields--;
	if (f == OK_OMIT_OPTIONALS)
		fields -= 3;
	if (f == OK_INDEFINITE)
		ASSERT_OK(ward_cbor_put_indef_map(b));
	else
		ASSERT_OK(ward_cbor_put_map(b, fields));
	if (f != NO_MODULE_ID) {
		ASSERT_OK(ward_cbor_put_textz(b, "module_id"));
		ASSERT_OK(ward_cbor_put_textz(
		    b, f == MODULE_ID_EMPTY ? "" : "i-test-enc0123"));
	}
	ASSERT_OK(ward_cbor_put_textz(b, "digest"));
	ASSERT_OK(
	    ward_cbor_put_textz(b, f == DIGEST_SHA256 ? "SHA256" : "SHA384"));
	if (f == DUP_DIGEST) {
		ASSERT_OK(ward_cbor_put_textz(b, "digest"));
		ASSERT_OK(ward_cbor_put_textz(b, "SHA384"));
	}
	ASSERT_OK(ward_cbor_put_textz(b, "timestamp"));
	if (f == TIMESTAMP_TEXT)
		ASSERT_OK(ward_cbor_put_textz(b, "1663263808848"));
	else
		ASSERT_OK(ward_cbor_put_uint(
		    b, f == TIMESTAMP_ZERO ? 0 : 1663263808848ull));
	ASSERT_OK(ward_cbor_put_textz(b, "pcrs"));
	if (f == PCRS_EMPTY) {
		ASSERT_OK(ward_cbor_put_map(b, 0));
	} else {
		ASSERT_OK(ward_cbor_put_map(b, 2));
		ASSERT_OK(ward_cbor_put_uint(b, 0));
		ASSERT_OK(ward_cbor_put_bytes(b, pcr0, 48));
		ASSERT_OK(ward_cbor_put_uint(b, f == PCR_INDEX_32 ? 32 : 1));
		ASSERT_OK(
		    ward_cbor_put_bytes(b, zero, f == PCR_LEN_47 ? 47 : 48));
	}
	if (f == CERT_NULL) {
		ASSERT_OK(ward_cbor_put_textz(b, "certificate"));
		ASSERT_OK(ward_cbor_put_null(b));
	} else {
		put_kv_bytes(b, "certificate", c->leaf.p, c->leaf.len);
	}
	if (f != NO_CABUNDLE) {
		ASSERT_OK(ward_cbor_put_textz(b, "cabundle"));
		if (f == CABUNDLE_EMPTY) {
			ASSERT_OK(ward_cbor_put_array(b, 0));
		} else {
			ASSERT_OK(ward_cbor_put_array(b, 2));
			ASSERT_OK(
			    ward_cbor_put_bytes(b, c->root.p, c->root.len));
			ASSERT_OK(ward_cbor_put_bytes(b, c->mon.p, c->mon.len));
		}
	}
	if (f != OK_OMIT_OPTIONALS) {
		uint8_t ud[513] = {0};

		if (f == PUBLIC_KEY_EMPTY)
			put_kv_bytes(b, "public_key", "", 0);
		else {
			ASSERT_OK(ward_cbor_put_textz(b, "public_key"));
			ASSERT_OK(ward_cbor_put_null(b));
		}
		put_kv_bytes(b, "user_data", ud, f == USER_DATA_513 ? 513 : 5);
		put_kv_bytes(b, "nonce", "\x01\x02", 2);
	}
	if (f == OK_UNKNOWN_FIELD) {
		ASSERT_OK(ward_cbor_put_textz(b, "future_field"));
		ASSERT_OK(ward_cbor_put_map(b, 1));
		ASSERT_OK(ward_cbor_put_uint(b, 1));
		ASSERT_OK(ward_cbor_put_array(b, 0));
	}
	if (f == OK_INDEFINITE)
		ASSERT_OK(ward_cbor_put_break(b));
	if (f == TRAILING_BYTE)
		ASSERT_OK(ward_buf_put_u8(b, 0x00));
}

/* COSE_Sign1 over payload, signed with key (ES384). */
static void
make_cose(
    struct ward_buf *out, struct ward_bytes payload, struct evp_pkey_st *key)
{
	static const uint8_t prot[] = {0xa1, 0x01, 0x38, 0x22};
	struct ward_buf tbs = {0};
	uint8_t sig[WARD_ES384_SIG_LEN];

	ASSERT_OK(ward_cbor_put_array(&tbs, 4));
	ASSERT_OK(ward_cbor_put_textz(&tbs, "Signature1"));
	ASSERT_OK(ward_cbor_put_bytes(&tbs, prot, sizeof(prot)));
	ASSERT_OK(ward_cbor_put_bytes(&tbs, NULL, 0));
	ASSERT_OK(ward_cbor_put_bytes(&tbs, payload.p, payload.len));
	ASSERT_OK(ward_es384_sign(key, tbs.p, tbs.len, sig));
	ASSERT_OK(ward_cbor_put_array(out, 4));
	ASSERT_OK(ward_cbor_put_bytes(out, prot, sizeof(prot)));
	ASSERT_OK(ward_cbor_put_map(out, 0));
	ASSERT_OK(ward_cbor_put_bytes(out, payload.p, payload.len));
	ASSERT_OK(ward_cbor_put_bytes(out, sig, sizeof(sig)));
	ward_buf_free(&tbs);
}

static struct ward_attest_roots *
roots_of(const struct chain *c)
{
	struct ward_attest_roots *rs;

	ASSERT_OK(ward_attest_roots_new(true, &rs));
	ASSERT_OK(ward_attest_roots_add_der(rs, c->root.p, c->root.len));
	return rs;
}

static void
test_document_syntax(void **state)
{
	struct chain c;
	struct ward_attest_roots *rs;
	uint8_t pcr0[48];

	make_chain(&c, CHAIN_OK);
	rs = roots_of(&c);
	memset(pcr0, 0xab, sizeof(pcr0));
	for (int f = 0; f < FLAW_COUNT; f++) {
		struct ward_buf payload = {0}, doc = {0};
		struct ward_attest_doc *d = NULL;
		struct ward_attest_result res;
		int r;

		make_payload(&payload, &c, (enum flaw)f, pcr0);
		make_cose(&doc, (struct ward_bytes){payload.p, payload.len},
		    c.leaf_k);
		r = ward_attest_parse(doc.p, doc.len, &d);
		if (f <= OK_OMIT_OPTIONALS) {
			if (r != 0)
				fail_msg("shape %d: %s", f, ward_errmsg());
			ASSERT_OK(ward_attest_verify(d, rs, time(NULL), &res));
			assert_false(res.aws);
			assert_string_equal(res.root_name, "test root");
			assert_int_equal(
			    d->nonce.present, f != OK_OMIT_OPTIONALS);
			assert_false(d->public_key.present);
			assert_false(d->debug);
			ward_attest_doc_free(d);
		} else if (r == 0) {
			fail_msg("flaw %d was accepted", f);
		} else if (r != -WARD_EFORMAT && r != -WARD_EUNSUPPORTED &&
		    r != -WARD_ELIMIT) {
			fail_msg("flaw %d: %s", f, ward_errname(r));
		}
		ward_buf_free(&payload);
		ward_buf_free(&doc);
	}
	ward_attest_roots_free(rs);
	free_chain(&c);
}

static void
test_chain_rules(void **state)
{
	static const enum chain_flaw flaws[] = {CHAIN_LEAF_IS_CA,
	    CHAIN_LEAF_NO_DIGSIG, CHAIN_MON_NO_CERTSIGN, CHAIN_MON_NOT_CA,
	    CHAIN_LEAF_P256, CHAIN_MON_NO_KU};
	uint8_t pcr0[48] = {1};

	for (size_t i = 0; i < sizeof(flaws) / sizeof(flaws[0]); i++) {
		struct chain c;
		struct ward_attest_roots *rs;
		struct ward_buf payload = {0}, doc = {0};
		struct ward_attest_doc *d;
		struct ward_attest_result res;
		int r;

		make_chain(&c, flaws[i]);
		rs = roots_of(&c);
		make_payload(&payload, &c, OK_DEFINITE, pcr0);
		make_cose(&doc, (struct ward_bytes){payload.p, payload.len},
		    c.leaf_k);
		ASSERT_OK(ward_attest_parse(doc.p, doc.len, &d));
		r = ward_attest_verify(d, rs, time(NULL), &res);
		if (r == 0)
			fail_msg("chain flaw %d verified", flaws[i]);
		print_message("chain flaw %d: %s\n", flaws[i], ward_errmsg());
		ward_attest_doc_free(d);
		ward_buf_free(&payload);
		ward_buf_free(&doc);
		ward_attest_roots_free(rs);
		free_chain(&c);
	}
}

/* Path length: root -> monitor (pathlen 0) -> sub-CA -> leaf must fail,
 * and a cabundle out of order must fail even when each link is sound. */
static void
test_chain_pathlen_and_order(void **state)
{
	struct chain c;
	struct evp_pkey_st *sub_k, *leaf2_k;
	struct ward_buf sub = {0}, leaf2 = {0};
	struct ward_bytes inter[2];
	int64_t now = time(NULL);
	struct ward_x509_template tsub = {.cn = "sub",
	    .not_before = now - 60,
	    .not_after = now + 3600,
	    .ca = true,
	    .pathlen = -1,
	    .key_cert_sign = true};
	struct ward_x509_template tleaf = {.cn = "leaf2",
	    .not_before = now - 60,
	    .not_after = now + 3600,
	    .pathlen = -1,
	    .digital_signature = true};

	make_chain(&c, CHAIN_OK);
	ASSERT_OK(ward_ec_generate(WARD_CURVE_P384, &sub_k));
	ASSERT_OK(ward_ec_generate(WARD_CURVE_P384, &leaf2_k));
	ASSERT_OK(
	    ward_x509_issue(&tsub, sub_k, c.mon_k, c.mon.p, c.mon.len, &sub));
	ASSERT_OK(
	    ward_x509_issue(&tleaf, leaf2_k, sub_k, sub.p, sub.len, &leaf2));
	inter[0] = (struct ward_bytes){sub.p, sub.len};
	inter[1] = (struct ward_bytes){c.mon.p, c.mon.len};
	ASSERT_ERR(
	    ward_x509_verify_chain((struct ward_bytes){leaf2.p, leaf2.len},
	        inter, 2, (struct ward_bytes){c.root.p, c.root.len}, now),
	    WARD_EAUTH);
	/* the sound chain verifies; the same certificates reordered do not */
	inter[0] = (struct ward_bytes){c.mon.p, c.mon.len};
	ASSERT_OK(
	    ward_x509_verify_chain((struct ward_bytes){c.leaf.p, c.leaf.len},
	        inter, 1, (struct ward_bytes){c.root.p, c.root.len}, now));
	inter[1] = inter[0];
	inter[0] = (struct ward_bytes){c.root.p, c.root.len};
	ASSERT_ERR(
	    ward_x509_verify_chain((struct ward_bytes){c.leaf.p, c.leaf.len},
	        inter, 2, (struct ward_bytes){c.root.p, c.root.len}, now),
	    WARD_EAUTH);
	ward_pkey_free(sub_k);
	ward_pkey_free(leaf2_k);
	ward_buf_free(&sub);
	ward_buf_free(&leaf2);
	free_chain(&c);
}

/* ---- the local root and the sandbox signer ---- */

static void
test_sandbox_documents(void **state)
{
	char *dir = tu_mkdtemp();
	char path[4096];
	struct stat st;
	struct ward_ca *ca;
	struct ward_attest_signer *s;
	struct ward_attest_roots *local, *aws;
	struct ward_attest_result res;
	uint8_t pcrs[WARD_NSM_PCR_COUNT][WARD_NSM_PCR_LEN];
	struct ward_buf doc = {0};
	struct ward_attest_doc *d;

	ASSERT_OK(ward_ca_init(dir, false));
	ASSERT_ERR(ward_ca_init(dir, false), WARD_EEXIST);
	snprintf(path, sizeof(path), "%s/monitor.key", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	snprintf(path, sizeof(path), "%s/root.key", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	ASSERT_OK(ward_ca_load(dir, &ca));
	ASSERT_OK(ward_attest_signer_new(ca, &s));
	ASSERT_OK(ward_attest_roots_new(false, &local));
	struct ward_bytes root = ward_ca_root_der(ca);
	ASSERT_OK(ward_attest_roots_add_der(local, root.p, root.len));
	ASSERT_OK(ward_attest_roots_new(true, &aws));

	for (int debug = 0; debug < 2; debug++) {
		memset(pcrs, 0, sizeof(pcrs));
		for (int i = 0; i < 3 && !debug; i++)
			memset(pcrs[i], 0x10 + i, WARD_NSM_PCR_LEN);
		memset(pcrs[16], 0x77, WARD_NSM_PCR_LEN);
		struct ward_attest_fields f = {
		    .module_id = {(const uint8_t *)"ward-sandbox-enc01", 18},
		    .pcr_mask = 0xffff,
		    .pcrs = (const uint8_t(*)[WARD_NSM_PCR_LEN])pcrs,
		    .nonce = {true, {(const uint8_t *)"n0", 2}},
		};
		doc.len = 0;
		ASSERT_OK(ward_attest_sign(s, &f, &doc));
		assert_int_equal(doc.p[0], 0x84); /* untagged, like NSM */
		ASSERT_OK(ward_attest_parse(doc.p, doc.len, &d));
		assert_int_equal(d->pcr_mask, 0xffff); /* 16: not locked */
		assert_int_equal(d->debug, debug);
		assert_int_equal(d->cabundle_len, 2);
		assert_true(d->nonce.present);
		assert_false(d->user_data.present);
		assert_false(d->public_key.present);
		ASSERT_OK(ward_attest_verify(d, local, time(NULL), &res));
		assert_false(res.aws);
		assert_non_null(strstr(res.root_name, "ward-root-"));
		/* never against the AWS root */
		ASSERT_ERR(
		    ward_attest_verify(d, aws, time(NULL), &res), WARD_EAUTH);
		/* the leaf lives three hours */
		ASSERT_ERR(
		    ward_attest_verify(d, local,
		        time(NULL) + WARD_ATTEST_LEAF_SECONDS + 120, &res),
		    WARD_EAUTH);
		ward_attest_doc_free(d);
	}
	/* a second CA's root does not verify the first one's documents */
	char *dir2 = tu_mkdtemp();
	struct ward_ca *ca2;
	struct ward_attest_roots *other;

	ASSERT_OK(ward_ca_init(dir2, false));
	ASSERT_OK(ward_ca_load(dir2, &ca2));
	ASSERT_OK(ward_attest_roots_new(false, &other));
	root = ward_ca_root_der(ca2);
	ASSERT_OK(ward_attest_roots_add_der(other, root.p, root.len));
	ASSERT_OK(ward_attest_parse(doc.p, doc.len, &d));
	ASSERT_ERR(ward_attest_verify(d, other, time(NULL), &res), WARD_EAUTH);
	ward_attest_doc_free(d);
	/* --force replaces the CA; a mismatched key is caught on load */
	ASSERT_OK(ward_ca_init(dir2, true));
	char src[4096], dst[4096];
	snprintf(src, sizeof(src), "%s/monitor.key", dir);
	snprintf(dst, sizeof(dst), "%s/monitor.key", dir2);
	size_t kn;
	uint8_t *k = tu_read_file(src, &kn);
	assert_non_null(k);
	assert_int_equal(tu_write_file(dst, k, kn), 0);
	free(k);
	struct ward_ca *bad;
	ASSERT_ERR(ward_ca_load(dir2, &bad), WARD_EKEY);

	ward_attest_roots_free(other);
	ward_ca_free(ca2);
	tu_rmtree(dir2);
	free(dir2);
	ward_buf_free(&doc);
	ward_attest_roots_free(local);
	ward_attest_roots_free(aws);
	ward_attest_signer_free(s);
	ward_ca_free(ca);
	tu_rmtree(dir);
	free(dir);
}

/*
 * The Recipient path at library level, as the KMS (issue 4) will run it:
 * the enclave makes an RSA-2048 pair and puts its SPKI in a document; the
 * key service verifies the document, compares PCR0 with the policy's pin,
 * and seals the data key to the document's public key; only the enclave's
 * private key opens it. A pin on another image releases nothing.
 */
static int
release_to(const struct ward_buf *doc, struct ward_attest_roots *rs,
    const uint8_t pin[WARD_NSM_PCR_LEN], const uint8_t *key, size_t n,
    struct ward_buf *cms)
{
	struct ward_attest_doc *d;
	struct ward_attest_result res;
	int r;

	if ((r = ward_attest_parse(doc->p, doc->len, &d)) != 0)
		return r;
	if ((r = ward_attest_verify(d, rs, time(NULL), &res)) != 0)
		goto out;
	if (!(d->pcr_mask & 1) || d->pcrs[0].len != WARD_NSM_PCR_LEN ||
	    memcmp(d->pcrs[0].p, pin, WARD_NSM_PCR_LEN) != 0) {
		r = ward_errf(WARD_EAUTH, "AccessDenied: PCR0 does not match");
		goto out;
	}
	if (!d->public_key.present) {
		r = ward_errf(WARD_EFORMAT, "no public key in the document");
		goto out;
	}
	r = ward_cms_seal(d->public_key.v.p, d->public_key.v.len, key, n, cms);
out:
	ward_attest_doc_free(d);
	return r;
}

static void
test_recipient_flow(void **state)
{
	char *dir = tu_mkdtemp();
	struct ward_ca *ca;
	struct ward_attest_signer *s;
	struct ward_attest_roots *rs;
	struct evp_pkey_st *enclave, *other;
	struct ward_buf spki = {0}, doc = {0}, cms = {0};
	struct ward_buf pt = {.secret = true};
	uint8_t pcrs[WARD_NSM_PCR_COUNT][WARD_NSM_PCR_LEN] = {{0}};
	uint8_t pin_y[WARD_NSM_PCR_LEN], datakey[32];

	ASSERT_OK(ward_ca_init(dir, false));
	ASSERT_OK(ward_ca_load(dir, &ca));
	ASSERT_OK(ward_attest_signer_new(ca, &s));
	ASSERT_OK(ward_attest_roots_new(true, &rs));
	struct ward_bytes root = ward_ca_root_der(ca);
	ASSERT_OK(ward_attest_roots_add_der(rs, root.p, root.len));
	/* the enclave: an ephemeral RSA-2048 pair, its SPKI in the document */
	ASSERT_OK(ward_rsa_generate(WARD_RSA_RECIPIENT_BITS, &enclave));
	ASSERT_OK(ward_pkey_spki(enclave, &spki));
	memset(pcrs[0], 0x58, WARD_NSM_PCR_LEN); /* image X */
	memset(pin_y, 0x59, sizeof(pin_y)); /* image Y */
	struct ward_attest_fields f = {
	    .module_id = {(const uint8_t *)"i-recipient-enc01", 17},
	    .pcr_mask = 0xffff,
	    .pcrs = (const uint8_t(*)[WARD_NSM_PCR_LEN])pcrs,
	    .public_key = {true, {spki.p, spki.len}},
	};
	ASSERT_OK(ward_attest_sign(s, &f, &doc));
	ASSERT_OK(ward_random(datakey, sizeof(datakey)));
	/* pinned to X: released, and only the enclave's key opens it */
	ASSERT_OK(
	    release_to(&doc, rs, pcrs[0], datakey, sizeof(datakey), &cms));
	ASSERT_OK(ward_cms_open(enclave, cms.p, cms.len, &pt));
	assert_int_equal(pt.len, sizeof(datakey));
	assert_memory_equal(pt.p, datakey, sizeof(datakey));
	ASSERT_OK(ward_rsa_generate(WARD_RSA_RECIPIENT_BITS, &other));
	ward_buf_free(&pt);
	pt.secret = true;
	ASSERT_ERR(ward_cms_open(other, cms.p, cms.len, &pt), WARD_EKEY);
	assert_int_equal(pt.len, 0);
	/* pinned to Y: nothing sealed */
	cms.len = 0;
	ASSERT_ERR(release_to(&doc, rs, pin_y, datakey, sizeof(datakey), &cms),
	    WARD_EAUTH);
	assert_int_equal(cms.len, 0);

	ward_buf_free(&pt);
	ward_buf_free(&cms);
	ward_buf_free(&doc);
	ward_buf_free(&spki);
	ward_pkey_free(enclave);
	ward_pkey_free(other);
	ward_attest_roots_free(rs);
	ward_attest_signer_free(s);
	ward_ca_free(ca);
	tu_rmtree(dir);
	free(dir);
}

static void
test_rfc3339(void **state)
{
	static const struct {
		const char *s;
		long long want; /* -1: invalid */
	} cases[] = {
	    {"2022-09-15T17:44:24Z", 1663263864},
	    {"2022-09-15t17:44:24z", 1663263864},
	    {"2022-09-15T17:44:24.999Z", 1663263864},
	    {"2022-09-15T19:44:24+02:00", 1663263864},
	    {"2022-09-15T16:44:24-01:00", 1663263864},
	    {"1970-01-01T00:00:00Z", 0},
	    {"2024-02-29T00:00:00Z", 1709164800},
	    {"2023-02-29T00:00:00Z", -1},
	    {"2022-09-15T17:44:24", -1},
	    {"2022-9-15T17:44:24Z", -1},
	    {"2022-09-15T24:00:00Z", -1},
	    {"2022-13-01T00:00:00Z", -1},
	    {"2022-09-15T17:44:24Zjunk", -1},
	    {"2022-09-15T17:44:24.Z", -1},
	    {"", -1},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		time_t t = 0;
		int r = ward_parse_rfc3339(cases[i].s, &t);

		if (cases[i].want < 0) {
			if (r != -WARD_EUSAGE)
				fail_msg("%s accepted", cases[i].s);
		} else {
			if (r != 0)
				fail_msg("%s: %s", cases[i].s, ward_errmsg());
			assert_int_equal((long long)t, cases[i].want);
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cbor_writer_kat),
	    cmocka_unit_test(test_cbor_reader),
	    cmocka_unit_test(test_cbor_hostile),
	    cmocka_unit_test(test_aws_root_builtin),
	    cmocka_unit_test(test_aws_document),
	    cmocka_unit_test(test_aws_every_byte),
	    cmocka_unit_test(test_aws_shapes),
	    cmocka_unit_test(test_document_syntax),
	    cmocka_unit_test(test_chain_rules),
	    cmocka_unit_test(test_chain_pathlen_and_order),
	    cmocka_unit_test(test_sandbox_documents),
	    cmocka_unit_test(test_recipient_flow),
	    cmocka_unit_test(test_rfc3339),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
