/* NSM API (nitro.md §2): the serde_cbor codec against the spec's table,
 * the emulation's semantics, the ioctl plumbing and the socket client. */
#include <errno.h>
#include <fcntl.h>
#include <linux/ioctl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "testutil.h"
#include "ward/attest.h"

/* Hex with optional spaces, as the spec's table writes it. */
static size_t
unhex(const char *s, uint8_t *out, size_t cap)
{
	char tight[2 * 1024 + 1];
	size_t n = 0, got;

	for (; *s != '\0'; s++)
		if (*s != ' ') {
			if (n + 1 >= sizeof(tight))
				fail_msg("hex too long in test");
			tight[n++] = *s;
		}
	tight[n] = '\0';
	if (ward_hex_decode(tight, n, out, cap, &got) != 0)
		fail_msg("bad hex in test: %s", ward_errmsg());
	return got;
}

/* for tables (constant initializers) and for expressions */
#define BI(s)                                                                  \
	{                                                                      \
		(const uint8_t *)(s), sizeof(s) - 1                            \
	}
#define OPTI(s)                                                                \
	{                                                                      \
		true, BI(s)                                                    \
	}
#define B(s) ((struct ward_bytes)BI(s))
#define OPT(s) ((struct ward_nsm_opt)OPTI(s))

static void
assert_bytes(struct ward_bytes a, struct ward_bytes b)
{
	assert_int_equal(a.len, b.len);
	if (a.len > 0)
		assert_memory_equal(a.p, b.p, a.len);
}

static void
assert_opt(struct ward_nsm_opt a, struct ward_nsm_opt b)
{
	assert_int_equal(a.present, b.present);
	if (a.present)
		assert_bytes(a.v, b.v);
}

static void
assert_request(
    const struct ward_nsm_request *a, const struct ward_nsm_request *b)
{
	assert_int_equal(a->op, b->op);
	assert_int_equal(a->index, b->index);
	assert_int_equal(a->range, b->range);
	assert_bytes(a->data, b->data);
	assert_opt(a->user_data, b->user_data);
	assert_opt(a->nonce, b->nonce);
	assert_opt(a->public_key, b->public_key);
}

static void
assert_response(
    const struct ward_nsm_response *a, const struct ward_nsm_response *b)
{
	assert_int_equal(a->op, b->op);
	assert_int_equal(a->error, b->error);
	assert_int_equal(a->lock, b->lock);
	assert_bytes(a->data, b->data);
	assert_int_equal(a->version_major, b->version_major);
	assert_int_equal(a->version_minor, b->version_minor);
	assert_int_equal(a->version_patch, b->version_patch);
	assert_bytes(a->module_id, b->module_id);
	assert_int_equal(a->max_pcrs, b->max_pcrs);
	assert_int_equal(a->locked_pcrs_len, b->locked_pcrs_len);
	for (size_t i = 0; i < a->locked_pcrs_len; i++)
		assert_int_equal(a->locked_pcrs[i], b->locked_pcrs[i]);
	assert_int_equal(a->digest, b->digest);
}

/* nitro.md §2.3, "Example encodings", every row (6b…6e is the whole
 * "Attestation" text string). */
static const struct {
	const char *hex;
	struct ward_nsm_request q;
} req_kats[] = {
    {"6b 44657363726962654e534d", {WARD_NSM_DESCRIBE_NSM}},
    {"69 47657452616e646f6d", {WARD_NSM_GET_RANDOM}},
    {"a1 6b4465736372696265504352 a1 65696e646578 00",
        {WARD_NSM_DESCRIBE_PCR, .index = 0}},
    {"a1 69457874656e64504352 a2 65696e646578 10 6464617461 43616263",
        {WARD_NSM_EXTEND_PCR, .index = 16, .data = BI("abc")}},
    {"a1 674c6f636b504352 a1 65696e646578 10",
        {WARD_NSM_LOCK_PCR, .index = 16}},
    {"a1 684c6f636b50435273 a1 6572616e6765 10",
        {WARD_NSM_LOCK_PCRS, .range = 16}},
    {"a1 6b4174746573746174696f6e a3 69757365725f64617461 f6 656e6f6e6365 "
     "f6 6a7075626c69635f6b6579 f6",
        {WARD_NSM_ATTESTATION}},
    {"a1 6b4174746573746174696f6e a3 69757365725f64617461 426869 "
     "656e6f6e6365 420102 6a7075626c69635f6b6579 f6",
        {WARD_NSM_ATTESTATION, .user_data = OPTI("hi"),
            .nonce = OPTI("\x01\x02")}},
    /* derived beyond the table: a u16 index, present-but-empty options */
    {"a1 6b4465736372696265504352 a1 65696e646578 19 ffff",
        {WARD_NSM_DESCRIBE_PCR, .index = 65535}},
    {"a1 6b4174746573746174696f6e a3 69757365725f64617461 40 656e6f6e6365 "
     "f6 6a7075626c69635f6b6579 41 00",
        {WARD_NSM_ATTESTATION, .user_data = OPTI(""),
            .public_key = OPTI("\x00")}},
};

static const struct {
	const char *hex;
	struct ward_nsm_response r;
} resp_kats[] = {
    /* the table's two response rows */
    {"67 4c6f636b504352", {WARD_NSM_LOCK_PCR}},
    {"a1 654572726f72 6c496e76616c6964496e646578",
        {WARD_NSM_ERROR, .error = WARD_NSM_INVALID_INDEX}},
    /* derived from §2.2/§2.3 for the other shapes */
    {"68 4c6f636b50435273", {WARD_NSM_LOCK_PCRS}},
    {"a1 6b4465736372696265504352 a2 646c6f636b f5 6464617461 4100",
        {WARD_NSM_DESCRIBE_PCR, .lock = true, .data = BI("\x00")}},
    {"a1 69457874656e64504352 a1 6464617461 42abcd",
        {WARD_NSM_EXTEND_PCR, .data = BI("\xab\xcd")}},
    {"a1 6b4174746573746174696f6e a1 68646f63756d656e74 41ab",
        {WARD_NSM_ATTESTATION, .data = BI("\xab")}},
    {"a1 6947657452616e646f6d a1 6672616e646f6d 420102",
        {WARD_NSM_GET_RANDOM, .data = BI("\x01\x02")}},
    {"a1 6b44657363726962654e534d a7 6d76657273696f6e5f6d616a6f72 01 "
     "6d76657273696f6e5f6d696e6f72 00 6d76657273696f6e5f7061746368 00 "
     "696d6f64756c655f6964 626964 686d61785f70637273 1820 "
     "6b6c6f636b65645f70637273 82 00 01 66646967657374 66534841333834",
        {WARD_NSM_DESCRIBE_NSM, .version_major = 1, .module_id = BI("id"),
            .max_pcrs = 32, .locked_pcrs = {0, 1}, .locked_pcrs_len = 2,
            .digest = WARD_NSM_SHA384}},
};
#define N(a) (sizeof(a) / sizeof((a)[0]))

static void
test_request_kats(void **state)
{
	for (size_t i = 0; i < N(req_kats); i++) {
		uint8_t want[512];
		size_t n = unhex(req_kats[i].hex, want, sizeof(want));
		struct ward_buf b = {0};
		struct ward_nsm_request q;

		ASSERT_OK(ward_nsm_request_encode(&req_kats[i].q, &b));
		if (b.len != n || memcmp(b.p, want, n) != 0)
			fail_msg("request KAT %zu: encoding differs", i);
		ASSERT_OK(ward_nsm_request_decode(want, n, &q));
		assert_request(&q, &req_kats[i].q);
		/* views into the input, not copies */
		if (q.data.len > 0)
			assert_true(q.data.p > want && q.data.p < want + n);
		ward_buf_free(&b);
	}
}

static void
test_response_kats(void **state)
{
	for (size_t i = 0; i < N(resp_kats); i++) {
		uint8_t want[512];
		size_t n = unhex(resp_kats[i].hex, want, sizeof(want));
		struct ward_buf b = {0};
		struct ward_nsm_response r;

		ASSERT_OK(ward_nsm_response_encode(&resp_kats[i].r, &b));
		if (b.len != n || memcmp(b.p, want, n) != 0)
			fail_msg("response KAT %zu: encoding differs", i);
		ASSERT_OK(ward_nsm_response_decode(want, n, &r));
		assert_response(&r, &resp_kats[i].r);
		ward_buf_free(&b);
	}
}

/* Every strict prefix of every KAT fails, and so does one byte more. */
static void
test_truncated_and_trailing(void **state)
{
	for (size_t i = 0; i < N(req_kats) + N(resp_kats); i++) {
		bool req = i < N(req_kats);
		const char *hex =
		    req ? req_kats[i].hex : resp_kats[i - N(req_kats)].hex;
		uint8_t msg[513];
		size_t n = unhex(hex, msg, sizeof(msg) - 1);
		struct ward_nsm_request q;
		struct ward_nsm_response r;

		for (size_t k = 0; k < n; k++) {
			int e = req ? ward_nsm_request_decode(msg, k, &q)
			            : ward_nsm_response_decode(msg, k, &r);

			if (e != -WARD_EFORMAT)
				fail_msg("KAT %zu cut to %zu bytes: %s", i, k,
				    ward_errname(e));
		}
		msg[n] = 0x00;
		if (req)
			ASSERT_ERR(ward_nsm_request_decode(msg, n + 1, &q),
			    WARD_EFORMAT);
		else
			ASSERT_ERR(ward_nsm_response_decode(msg, n + 1, &r),
			    WARD_EFORMAT);
		assert_non_null(strstr(ward_errmsg(), "after the end"));
	}
}

static int
req_hex(const char *hex)
{
	uint8_t msg[512];
	size_t n = unhex(hex, msg, sizeof(msg));
	struct ward_nsm_request q;

	return ward_nsm_request_decode(msg, n, &q);
}

static int
resp_hex(const char *hex)
{
	uint8_t msg[512];
	size_t n = unhex(hex, msg, sizeof(msg));
	struct ward_nsm_response r;

	return ward_nsm_response_decode(msg, n, &r);
}

static void
assert_msg(const char *needle)
{
	if (strstr(ward_errmsg(), needle) == NULL)
		fail_msg("message \"%s\" lacks \"%s\"", ward_errmsg(), needle);
}

static void
test_request_rejects(void **state)
{
	struct ward_nsm_request q;
	uint8_t big[WARD_NSM_REQUEST_MAX + 1];

	/* unknown variants, bare or as a map */
	ASSERT_ERR(req_hex("64 4e6f7065"), WARD_EFORMAT); /* "Nope" */
	assert_msg("unknown");
	ASSERT_ERR(req_hex("a1 644e6f7065 a0"), WARD_EFORMAT);
	assert_msg("unknown");
	/* Error is a response variant only */
	ASSERT_ERR(req_hex("a1 654572726f72 6c496e76616c6964496e646578"),
	    WARD_EFORMAT);
	/* unknown field */
	ASSERT_ERR(req_hex("a1 6b4465736372696265504352 a2 65696e646578 00 "
	                   "63666f6f 00"),
	    WARD_EFORMAT);
	assert_msg("unknown field");
	/* duplicate field */
	ASSERT_ERR(req_hex("a1 6b4465736372696265504352 a2 65696e646578 00 "
	                   "65696e646578 01"),
	    WARD_EFORMAT);
	assert_msg("duplicate field");
	/* missing field */
	ASSERT_ERR(req_hex("a1 69457874656e64504352 a1 65696e646578 10"),
	    WARD_EFORMAT);
	assert_msg("missing field \"data\"");
	ASSERT_ERR(req_hex("a1 6b4465736372696265504352 a0"), WARD_EFORMAT);
	/* wrong types: index as text, negative, bool; data as text; an
	 * option as a bool; the field map as an array */
	ASSERT_ERR(req_hex("a1 6b4465736372696265504352 a1 65696e646578 6130"),
	    WARD_EFORMAT);
	ASSERT_ERR(req_hex("a1 6b4465736372696265504352 a1 65696e646578 20"),
	    WARD_EFORMAT);
	ASSERT_ERR(req_hex("a1 6b4465736372696265504352 a1 65696e646578 f5"),
	    WARD_EFORMAT);
	ASSERT_ERR(req_hex("a1 69457874656e64504352 a2 65696e646578 10 "
	                   "6464617461 63616263"),
	    WARD_EFORMAT);
	ASSERT_ERR(
	    req_hex("a1 6b4174746573746174696f6e a3 69757365725f64617461 "
	            "f4 656e6f6e6365 f6 6a7075626c69635f6b6579 f6"),
	    WARD_EFORMAT);
	ASSERT_ERR(req_hex("a1 6b4465736372696265504352 81 00"), WARD_EFORMAT);
	/* a field key that is not text */
	ASSERT_ERR(
	    req_hex("a1 6b4465736372696265504352 a1 00 00"), WARD_EFORMAT);
	/* index 65536 does not fit the u16 */
	ASSERT_ERR(req_hex("a1 6b4465736372696265504352 a1 65696e646578 "
	                   "1a00010000"),
	    WARD_EFORMAT);
	assert_msg("u16");
	ASSERT_ERR(req_hex("a1 684c6f636b50435273 a1 6572616e6765 1a00010000"),
	    WARD_EFORMAT);
	/* shapes: a unit variant with fields, a struct variant bare, two
	 * variants, none, something else entirely */
	ASSERT_ERR(req_hex("a1 6b44657363726962654e534d a0"), WARD_EFORMAT);
	ASSERT_ERR(req_hex("6b 4465736372696265504352"), WARD_EFORMAT);
	ASSERT_ERR(req_hex("a2 6b44657363726962654e534d a0 "
	                   "6947657452616e646f6d a0"),
	    WARD_EFORMAT);
	ASSERT_ERR(req_hex("a0"), WARD_EFORMAT);
	ASSERT_ERR(req_hex("00"), WARD_EFORMAT);
	ASSERT_ERR(req_hex("f6"), WARD_EFORMAT);
	ASSERT_ERR(req_hex(""), WARD_EFORMAT);
	/* chunked strings are not NSM messages */
	ASSERT_ERR(req_hex("7f 6b44657363726962654e534d ff"), WARD_EFORMAT);
	assert_msg("definite-length strings only");
	ASSERT_ERR(req_hex("a1 69457874656e64504352 a2 65696e646578 10 "
	                   "6464617461 5f 43616263 ff"),
	    WARD_EFORMAT);
	assert_msg("definite-length strings only");
	/* not UTF-8 */
	ASSERT_ERR(req_hex("62 c328"), WARD_EFORMAT);
	/* oversized input: refused before parsing */
	memset(big, 0, sizeof(big));
	ASSERT_ERR(ward_nsm_request_decode(big, sizeof(big), &q), WARD_ELIMIT);
}

static void
test_response_rejects(void **state)
{
	struct ward_nsm_response r;
	static uint8_t big[WARD_NSM_RESPONSE_MAX + 1];
	struct ward_buf b = {0};

	ASSERT_ERR(resp_hex("a1 654572726f72 644e6f7065"), WARD_EFORMAT);
	assert_msg("unknown ErrorCode");
	ASSERT_ERR(resp_hex("a1 654572726f72 00"), WARD_EFORMAT);
	ASSERT_ERR(resp_hex("6b 44657363726962654e534d"), WARD_EFORMAT);
	ASSERT_ERR(resp_hex("a1 674c6f636b504352 a0"), WARD_EFORMAT);
	/* DescribePCR's lock must be a bool */
	ASSERT_ERR(resp_hex("a1 6b4465736372696265504352 a2 646c6f636b 01 "
	                    "6464617461 4100"),
	    WARD_EFORMAT);
	/* a bad digest name */
	ASSERT_ERR(
	    resp_hex("a1 6b44657363726962654e534d a7 "
	             "6d76657273696f6e5f6d616a6f72 01 "
	             "6d76657273696f6e5f6d696e6f72 00 "
	             "6d76657273696f6e5f7061746368 00 "
	             "696d6f64756c655f6964 626964 686d61785f70637273 1820 "
	             "6b6c6f636b65645f70637273 80 66646967657374 "
	             "63534841"),
	    WARD_EFORMAT);
	/* locked_pcrs entries above a u16, more than 64 entries */
	ASSERT_ERR(
	    resp_hex("a1 6b44657363726962654e534d a7 "
	             "6d76657273696f6e5f6d616a6f72 01 "
	             "6d76657273696f6e5f6d696e6f72 00 "
	             "6d76657273696f6e5f7061746368 00 "
	             "696d6f64756c655f6964 626964 686d61785f70637273 1820 "
	             "6b6c6f636b65645f70637273 81 1a00010000 "
	             "66646967657374 66534841333834"),
	    WARD_EFORMAT);
	{
		/* 65 entries: built with the writer */
		struct ward_nsm_response in = {WARD_NSM_DESCRIBE_NSM,
		    .module_id = B("id"), .max_pcrs = 32,
		    .digest = WARD_NSM_SHA384};

		in.locked_pcrs_len = WARD_NSM_LOCKED_MAX;
		for (size_t i = 0; i < WARD_NSM_LOCKED_MAX; i++)
			in.locked_pcrs[i] = (uint16_t)i;
		ASSERT_OK(ward_nsm_response_encode(&in, &b));
		ASSERT_OK(ward_nsm_response_decode(b.p, b.len, &r));
		assert_int_equal(r.locked_pcrs_len, WARD_NSM_LOCKED_MAX);
		/* the array head 0x98 0x40 becomes 0x98 0x41 with one more
		 * entry (64 encodes as 0x18 0x40) before "digest" */
		uint8_t *p = memmem(b.p, b.len, "\x98\x40", 2);
		uint8_t *d = memmem(b.p, b.len,
		    "\x66"
		    "digest",
		    7);
		struct ward_buf c = {0};

		assert_non_null(p);
		assert_non_null(d);
		p[1] = 0x41;
		ASSERT_OK(ward_buf_append(&c, b.p, (size_t)(d - b.p)));
		ASSERT_OK(ward_buf_append(&c, "\x18\x40", 2));
		ASSERT_OK(ward_buf_append(&c, d, b.len - (size_t)(d - b.p)));
		ASSERT_ERR(
		    ward_nsm_response_decode(c.p, c.len, &r), WARD_ELIMIT);
		ward_buf_free(&c);
		ward_buf_free(&b);
		/* the writer refuses 65 too, and unsorted sets */
		in.locked_pcrs_len = 2;
		in.locked_pcrs[0] = 3;
		in.locked_pcrs[1] = 3;
		ASSERT_ERR(ward_nsm_response_encode(&in, &b), WARD_EUSAGE);
		assert_int_equal(b.len, 0);
	}
	memset(big, 0, sizeof(big));
	ASSERT_ERR(ward_nsm_response_decode(big, sizeof(big), &r), WARD_ELIMIT);
	ward_buf_free(&b);
}

static void
test_encode_limits(void **state)
{
	static uint8_t data[WARD_NSM_EXTEND_MAX + 1];
	struct ward_buf b = {0};
	struct ward_nsm_request q = {
	    WARD_NSM_EXTEND_PCR, .index = 16, .data = {data, sizeof(data)}};
	struct ward_nsm_request bad = {0}, back;
	struct ward_nsm_response r = {WARD_NSM_ERROR, .error = 9};

	ASSERT_ERR(ward_nsm_request_encode(&q, &b), WARD_ELIMIT);
	/* fits the ExtendPCR cap but not the request limit */
	q.data.len = WARD_NSM_EXTEND_MAX;
	ASSERT_ERR(ward_nsm_request_encode(&q, &b), WARD_ELIMIT);
	assert_int_equal(b.len, 0);
	/* 27 bytes of framing (3 for the data's head): 4069 bytes of data
	 * make a request of exactly 4096, which both sides accept */
	q.data.len = WARD_NSM_REQUEST_MAX - 27;
	ASSERT_OK(ward_nsm_request_encode(&q, &b));
	assert_int_equal(b.len, WARD_NSM_REQUEST_MAX);
	ASSERT_OK(ward_nsm_request_decode(b.p, b.len, &back));
	assert_int_equal(back.data.len, WARD_NSM_REQUEST_MAX - 27);
	b.len = 0;
	q.data.len++;
	ASSERT_ERR(ward_nsm_request_encode(&q, &b), WARD_ELIMIT);
	assert_int_equal(b.len, 0);
	ASSERT_ERR(ward_nsm_request_encode(&bad, &b), WARD_EUSAGE);
	bad.op = WARD_NSM_ERROR;
	ASSERT_ERR(ward_nsm_request_encode(&bad, &b), WARD_EUSAGE);
	ASSERT_ERR(ward_nsm_response_encode(&r, &b), WARD_EUSAGE);
	/* the encoders append */
	ASSERT_OK(ward_buf_append(&b, "x", 1));
	r.error = WARD_NSM_SUCCESS;
	ASSERT_OK(ward_nsm_response_encode(&r, &b));
	assert_int_equal(b.p[0], 'x');
	assert_int_equal(b.len, 1 + 1 + 6 + 8);
	ward_buf_free(&b);
}

/* QEMU's DescribeNSM: digest, max_pcrs, module_id, locked_pcrs,
 * version_* (hw/virtio/virtio-nsm.c), here with the maps indefinite. */
static void
build_qemu_describe(struct ward_buf *b, bool indefinite)
{
	if (indefinite)
		ASSERT_OK(ward_cbor_put_indef_map(b));
	else
		ASSERT_OK(ward_cbor_put_map(b, 1));
	ASSERT_OK(ward_cbor_put_textz(b, "DescribeNSM"));
	if (indefinite)
		ASSERT_OK(ward_cbor_put_indef_map(b));
	else
		ASSERT_OK(ward_cbor_put_map(b, 7));
	ASSERT_OK(ward_cbor_put_textz(b, "digest"));
	ASSERT_OK(ward_cbor_put_textz(b, "SHA384"));
	ASSERT_OK(ward_cbor_put_textz(b, "max_pcrs"));
	ASSERT_OK(ward_cbor_put_uint(b, 32));
	ASSERT_OK(ward_cbor_put_textz(b, "module_id"));
	ASSERT_OK(ward_cbor_put_textz(b, "i-234-enc5678"));
	ASSERT_OK(ward_cbor_put_textz(b, "locked_pcrs"));
	if (indefinite)
		ASSERT_OK(ward_cbor_put_indef_array(b));
	else
		ASSERT_OK(ward_cbor_put_array(b, 16));
	/* out of order and repeated: the set sorts and merges */
	for (int i = 15; i >= 0; i--)
		ASSERT_OK(ward_cbor_put_uint(b, (uint64_t)(i == 0 ? 1 : i)));
	if (indefinite) {
		ASSERT_OK(ward_cbor_put_uint(b, 0));
		ASSERT_OK(ward_cbor_put_break(b));
	}
	ASSERT_OK(ward_cbor_put_textz(b, "version_major"));
	ASSERT_OK(ward_cbor_put_uint(b, 1));
	ASSERT_OK(ward_cbor_put_textz(b, "version_minor"));
	ASSERT_OK(ward_cbor_put_uint(b, 0));
	ASSERT_OK(ward_cbor_put_textz(b, "version_patch"));
	ASSERT_OK(ward_cbor_put_uint(b, 0));
	if (indefinite) {
		ASSERT_OK(ward_cbor_put_break(b));
		ASSERT_OK(ward_cbor_put_break(b));
	}
}

static void
test_describe_qemu_order(void **state)
{
	for (int indef = 0; indef < 2; indef++) {
		struct ward_buf b = {0};
		struct ward_nsm_response r;

		build_qemu_describe(&b, indef);
		ASSERT_OK(ward_nsm_response_decode(b.p, b.len, &r));
		assert_int_equal(r.op, WARD_NSM_DESCRIBE_NSM);
		assert_int_equal(r.version_major, 1);
		assert_int_equal(r.version_minor, 0);
		assert_int_equal(r.version_patch, 0);
		assert_int_equal(r.max_pcrs, 32);
		assert_int_equal(r.digest, WARD_NSM_SHA384);
		assert_bytes(r.module_id, B("i-234-enc5678"));
		assert_int_equal(r.locked_pcrs_len, indef ? 16 : 15);
		for (size_t i = 0; i < r.locked_pcrs_len; i++)
			assert_int_equal(r.locked_pcrs[i], i + (indef ? 0 : 1));
		ward_buf_free(&b);
	}
}

static void
test_indefinite_maps(void **state)
{
	/* {_ "ExtendPCR": {_ "data": h'616263', "index": 16}} */
	struct ward_nsm_request q;
	struct ward_nsm_response r;

	ASSERT_OK(req_hex("bf 69457874656e64504352 bf 6464617461 43616263 "
	                  "65696e646578 10 ff ff"));
	ASSERT_OK(
	    req_hex("a1 69457874656e64504352 bf 65696e646578 10 6464617461 "
	            "43616263 ff"));
	{
		uint8_t m[64];
		size_t n =
		    unhex("bf 69457874656e64504352 bf 6464617461 43616263 "
		          "65696e646578 10 ff ff",
		        m, sizeof(m));

		ASSERT_OK(ward_nsm_request_decode(m, n, &q));
		assert_int_equal(q.op, WARD_NSM_EXTEND_PCR);
		assert_int_equal(q.index, 16);
		assert_bytes(q.data, B("abc"));
		/* a missing break, or a second variant, still fails */
		ASSERT_ERR(ward_nsm_request_decode(m, n - 1, &q), WARD_EFORMAT);
	}
	ASSERT_ERR(req_hex("bf 6b44657363726962654e534d a0 ff"), WARD_EFORMAT);
	ASSERT_ERR(req_hex("bf ff"), WARD_EFORMAT);
	ASSERT_OK(resp_hex("bf 654572726f72 6c496e76616c6964496e646578 ff"));
	ASSERT_ERR(resp_hex("bf 654572726f72 6c496e76616c6964496e646578 "
	                    "654572726f72 6c496e76616c6964496e646578 ff"),
	    WARD_EFORMAT);
	(void)r;
}

static void
test_error_round_trip(void **state)
{
	static const char *const names[] = {"Success", "InvalidArgument",
	    "InvalidIndex", "InvalidResponse", "ReadOnlyIndex",
	    "InvalidOperation", "BufferTooSmall", "InputTooLarge",
	    "InternalError"};

	for (int e = 0; e < 9; e++) {
		struct ward_nsm_response in = {WARD_NSM_ERROR,
		                             .error = (enum ward_nsm_error)e},
		                         out;
		struct ward_buf b = {0}, want = {0};

		assert_string_equal(ward_nsm_error_name(in.error), names[e]);
		ASSERT_OK(ward_cbor_put_map(&want, 1));
		ASSERT_OK(ward_cbor_put_textz(&want, "Error"));
		ASSERT_OK(ward_cbor_put_textz(&want, names[e]));
		ASSERT_OK(ward_nsm_response_encode(&in, &b));
		assert_int_equal(b.len, want.len);
		assert_memory_equal(b.p, want.p, b.len);
		ASSERT_OK(ward_nsm_response_decode(b.p, b.len, &out));
		assert_int_equal(out.op, WARD_NSM_ERROR);
		assert_int_equal(out.error, e);
		ward_buf_free(&b);
		ward_buf_free(&want);
	}
	assert_string_equal(ward_nsm_op_name(WARD_NSM_LOCK_PCRS), "LockPCRs");
	assert_string_equal(ward_nsm_op_name(0), "UnknownOperation");
	assert_string_equal(ward_nsm_error_name(99), "UnknownError");
}

/*
 * The emulation, driven through ward_nsm_server_handle.
 */
static const char *const extend_abc =
    "b1c16eb7634112b7c9d5ebd27e62a2d4528bbfcfd68b62d3afd9ecf98e0f413a"
    "84314acce78317fb69fd895155343e09";

/* One request through the server; the response decoded into r, which
 * points into *raw. */
static void
serve(struct ward_nsm_server *s, const struct ward_nsm_request *q,
    struct ward_buf *raw, struct ward_nsm_response *r)
{
	struct ward_buf req = {0};

	ASSERT_OK(ward_nsm_request_encode(q, &req));
	ASSERT_OK(ward_nsm_server_handle(s, req.p, req.len, raw));
	ASSERT_OK(ward_nsm_response_decode(raw->p, raw->len, r));
	ward_buf_free(&req);
}

static enum ward_nsm_error
serve_err(struct ward_nsm_server *s, const struct ward_nsm_request *q)
{
	struct ward_buf raw = {0};
	struct ward_nsm_response r;

	serve(s, q, &raw, &r);
	ward_buf_free(&raw);
	if (r.op != WARD_NSM_ERROR)
		return WARD_NSM_SUCCESS;
	return r.error;
}

static void
test_extend_kat(void **state)
{
	struct ward_nsm_server *s;
	struct ward_nsm_request q = {
	    WARD_NSM_EXTEND_PCR, .index = 16, .data = B("abc")};
	struct ward_nsm_request d = {WARD_NSM_DESCRIBE_PCR, .index = 16};
	struct ward_nsm_response r;
	struct ward_buf raw = {0};
	uint8_t want[WARD_NSM_PCR_LEN];

	unhex(extend_abc, want, sizeof(want));
	ASSERT_OK(ward_nsm_server_new(NULL, "i-test-enc", &s));
	serve(s, &q, &raw, &r);
	assert_int_equal(r.op, WARD_NSM_EXTEND_PCR);
	assert_int_equal(r.data.len, WARD_NSM_PCR_LEN);
	assert_memory_equal(r.data.p, want, WARD_NSM_PCR_LEN);
	serve(s, &d, &raw, &r);
	assert_int_equal(r.op, WARD_NSM_DESCRIBE_PCR);
	assert_false(r.lock);
	assert_memory_equal(r.data.p, want, WARD_NSM_PCR_LEN);
	ward_buf_free(&raw);
	ward_nsm_server_free(s);
}

static void
test_server_semantics(void **state)
{
	struct ward_nsm_server *s;
	struct ward_nsm_response r;
	struct ward_buf raw = {0};
	uint8_t v[WARD_NSM_PCR_LEN], zero[WARD_NSM_PCR_LEN] = {0};
	uint8_t rnd[2][WARD_NSM_RANDOM_LEN];

	ASSERT_OK(ward_nsm_server_new(NULL, "i-test-enc", &s));
	/* PCRs start zeroed and unlocked */
	for (uint16_t i = 0; i < WARD_NSM_PCR_COUNT; i++) {
		struct ward_nsm_request d = {WARD_NSM_DESCRIBE_PCR, .index = i};

		serve(s, &d, &raw, &r);
		assert_int_equal(r.op, WARD_NSM_DESCRIBE_PCR);
		assert_false(r.lock);
		assert_int_equal(r.data.len, WARD_NSM_PCR_LEN);
		assert_memory_equal(r.data.p, zero, WARD_NSM_PCR_LEN);
	}
	/* the monitor's measurements, then the boot lock */
	memset(v, 0xa5, sizeof(v));
	ASSERT_OK(ward_nsm_server_set_pcr(s, 0, v));
	ASSERT_ERR(ward_nsm_server_set_pcr(s, 32, v), WARD_EUSAGE);
	ASSERT_OK(ward_nsm_server_lock_boot(s));
	ASSERT_ERR(ward_nsm_server_set_pcr(s, 0, v), WARD_EUNSAFE);
	ASSERT_ERR(ward_nsm_server_set_pcr(s, 15, v), WARD_EUNSAFE);
	ASSERT_OK(ward_nsm_server_set_pcr(s, 16, zero));
	{
		struct ward_nsm_request d = {WARD_NSM_DESCRIBE_PCR, .index = 0};

		serve(s, &d, &raw, &r);
		assert_true(r.lock);
		assert_memory_equal(r.data.p, v, WARD_NSM_PCR_LEN);
	}
	/* read-only and invalid indexes */
	assert_int_equal(serve_err(s,
	                     &(struct ward_nsm_request){WARD_NSM_EXTEND_PCR,
	                         .index = 3, .data = B("x")}),
	    WARD_NSM_READ_ONLY_INDEX);
	assert_int_equal(
	    serve_err(
	        s, &(struct ward_nsm_request){WARD_NSM_LOCK_PCR, .index = 15}),
	    WARD_NSM_READ_ONLY_INDEX);
	assert_int_equal(serve_err(s,
	                     &(struct ward_nsm_request){WARD_NSM_EXTEND_PCR,
	                         .index = 32, .data = B("x")}),
	    WARD_NSM_INVALID_INDEX);
	assert_int_equal(
	    serve_err(s,
	        &(struct ward_nsm_request){WARD_NSM_DESCRIBE_PCR, .index = 32}),
	    WARD_NSM_INVALID_INDEX);
	assert_int_equal(
	    serve_err(s,
	        &(struct ward_nsm_request){WARD_NSM_LOCK_PCR, .index = 65535}),
	    WARD_NSM_INVALID_INDEX);
	assert_int_equal(
	    serve_err(
	        s, &(struct ward_nsm_request){WARD_NSM_LOCK_PCRS, .range = 33}),
	    WARD_NSM_INVALID_INDEX);
	/* extend 17 with the empty string, lock it, then it is read-only */
	assert_int_equal(
	    serve_err(s,
	        &(struct ward_nsm_request){WARD_NSM_EXTEND_PCR, .index = 17}),
	    WARD_NSM_SUCCESS);
	serve(s, &(struct ward_nsm_request){WARD_NSM_LOCK_PCR, .index = 17},
	    &raw, &r);
	assert_int_equal(r.op, WARD_NSM_LOCK_PCR);
	assert_int_equal(serve_err(s,
	                     &(struct ward_nsm_request){WARD_NSM_EXTEND_PCR,
	                         .index = 17, .data = B("y")}),
	    WARD_NSM_READ_ONLY_INDEX);
	/* LockPCRs locks [0, range): 16..19 join 0..15 and 17 */
	serve(s, &(struct ward_nsm_request){WARD_NSM_LOCK_PCRS, .range = 20},
	    &raw, &r);
	assert_int_equal(r.op, WARD_NSM_LOCK_PCRS);
	assert_int_equal(serve_err(s,
	                     &(struct ward_nsm_request){WARD_NSM_EXTEND_PCR,
	                         .index = 19, .data = B("y")}),
	    WARD_NSM_READ_ONLY_INDEX);
	assert_int_equal(serve_err(s,
	                     &(struct ward_nsm_request){WARD_NSM_EXTEND_PCR,
	                         .index = 20, .data = B("y")}),
	    WARD_NSM_SUCCESS);
	/* and 22 alone */
	serve(s, &(struct ward_nsm_request){WARD_NSM_LOCK_PCR, .index = 22},
	    &raw, &r);
	serve(s, &(struct ward_nsm_request){WARD_NSM_DESCRIBE_NSM}, &raw, &r);
	assert_int_equal(r.op, WARD_NSM_DESCRIBE_NSM);
	assert_int_equal(r.version_major, WARD_NSM_VERSION_MAJOR);
	assert_int_equal(r.version_minor, WARD_NSM_VERSION_MINOR);
	assert_int_equal(r.version_patch, WARD_NSM_VERSION_PATCH);
	assert_bytes(r.module_id, B("i-test-enc"));
	assert_int_equal(r.max_pcrs, 32);
	assert_int_equal(r.digest, WARD_NSM_SHA384);
	assert_int_equal(r.locked_pcrs_len, 21);
	for (size_t i = 0; i < 20; i++)
		assert_int_equal(r.locked_pcrs[i], i);
	assert_int_equal(r.locked_pcrs[20], 22);
	/* LockPCRs(32) locks everything; (0) is a no-op */
	serve(s, &(struct ward_nsm_request){WARD_NSM_LOCK_PCRS, .range = 0},
	    &raw, &r);
	assert_int_equal(r.op, WARD_NSM_LOCK_PCRS);
	serve(s, &(struct ward_nsm_request){WARD_NSM_LOCK_PCRS, .range = 32},
	    &raw, &r);
	assert_int_equal(r.op, WARD_NSM_LOCK_PCRS);
	serve(s, &(struct ward_nsm_request){WARD_NSM_DESCRIBE_NSM}, &raw, &r);
	assert_int_equal(r.locked_pcrs_len, 32);
	assert_int_equal(r.locked_pcrs[31], 31);
	/* GetRandom: 256 bytes, different each time */
	for (int i = 0; i < 2; i++) {
		serve(s, &(struct ward_nsm_request){WARD_NSM_GET_RANDOM}, &raw,
		    &r);
		assert_int_equal(r.op, WARD_NSM_GET_RANDOM);
		assert_int_equal(r.data.len, WARD_NSM_RANDOM_LEN);
		memcpy(rnd[i], r.data.p, WARD_NSM_RANDOM_LEN);
	}
	assert_memory_not_equal(rnd[0], rnd[1], WARD_NSM_RANDOM_LEN);
	/* no signer: Attestation is an InternalError, not a crash */
	assert_int_equal(
	    serve_err(s, &(struct ward_nsm_request){WARD_NSM_ATTESTATION}),
	    WARD_NSM_INTERNAL_ERROR);
	ward_buf_free(&raw);
	ward_nsm_server_free(s);
}

static enum ward_nsm_error
handle_err(struct ward_nsm_server *s, const uint8_t *p, size_t n)
{
	struct ward_buf raw = {0};
	struct ward_nsm_response r;

	ASSERT_OK(ward_nsm_server_handle(s, p, n, &raw));
	ASSERT_OK(ward_nsm_response_decode(raw.p, raw.len, &r));
	ward_buf_free(&raw);
	assert_int_equal(r.op, WARD_NSM_ERROR);
	return r.error;
}

static void
test_server_malformed(void **state)
{
	static uint8_t big[WARD_NSM_REQUEST_MAX + 1];
	static uint8_t blob[1025];
	uint8_t m[64];
	size_t n;
	struct ward_nsm_server *s;

	ASSERT_OK(ward_nsm_server_new(NULL, "i-test-enc", &s));
	assert_int_equal(
	    handle_err(s, big, sizeof(big)), WARD_NSM_INPUT_TOO_LARGE);
	assert_int_equal(handle_err(s, big, 1), WARD_NSM_INVALID_OPERATION);
	assert_int_equal(handle_err(s, NULL, 0), WARD_NSM_INVALID_OPERATION);
	n = unhex("a1 644e6f7065 a0", m, sizeof(m));
	assert_int_equal(handle_err(s, m, n), WARD_NSM_INVALID_OPERATION);
	/* attestation arguments out of bounds (§2.3) */
	assert_int_equal(serve_err(s,
	                     &(struct ward_nsm_request){WARD_NSM_ATTESTATION,
	                         .user_data = {true, {blob, 513}}}),
	    WARD_NSM_INVALID_ARGUMENT);
	assert_int_equal(serve_err(s,
	                     &(struct ward_nsm_request){WARD_NSM_ATTESTATION,
	                         .nonce = {true, {blob, 513}}}),
	    WARD_NSM_INVALID_ARGUMENT);
	assert_int_equal(serve_err(s,
	                     &(struct ward_nsm_request){WARD_NSM_ATTESTATION,
	                         .public_key = {true, {blob, 1025}}}),
	    WARD_NSM_INVALID_ARGUMENT);
	assert_int_equal(serve_err(s,
	                     &(struct ward_nsm_request){WARD_NSM_ATTESTATION,
	                         .public_key = {true, {blob, 0}}}),
	    WARD_NSM_INVALID_ARGUMENT);
	ward_nsm_server_free(s);
	ASSERT_ERR(ward_nsm_server_new(NULL, "", &s), WARD_EUSAGE);
	assert_null(s);
	ASSERT_ERR(ward_nsm_server_new(NULL, NULL, &s), WARD_EUSAGE);
}

/*
 * Attestation documents, signed by a local CA and checked by the parser
 * and verifier.
 */
struct ca_env {
	char *dir;
	struct ward_ca *ca;
	struct ward_attest_signer *signer;
};

static void
ca_setup(struct ca_env *c)
{
	c->dir = tu_mkdtemp();
	ASSERT_OK(ward_ca_init(c->dir, false));
	ASSERT_OK(ward_ca_load(c->dir, &c->ca));
	ASSERT_OK(ward_attest_signer_new(c->ca, &c->signer));
}

static void
ca_teardown(struct ca_env *c)
{
	ward_attest_signer_free(c->signer);
	ward_ca_free(c->ca);
	tu_rmtree(c->dir);
	free(c->dir);
}

/* Parse and verify a document; check what the server put in it. */
static void
check_doc(struct ca_env *c, const uint8_t *p, size_t n, const char *module_id,
    uint32_t mask, const uint8_t (*pcrs)[WARD_NSM_PCR_LEN],
    const struct ward_nsm_request *q)
{
	struct ward_attest_doc *d;
	struct ward_attest_roots *roots;
	struct ward_attest_result res;
	struct ward_bytes root = ward_ca_root_der(c->ca);

	ASSERT_OK(ward_attest_parse(p, n, &d));
	assert_int_equal(d->module_id.len, strlen(module_id));
	assert_memory_equal(d->module_id.p, module_id, d->module_id.len);
	assert_int_equal(d->pcr_mask, mask);
	for (int i = 0; i < WARD_NSM_PCR_COUNT; i++) {
		if (!(mask & (1u << i)))
			continue;
		assert_int_equal(d->pcrs[i].len, WARD_NSM_PCR_LEN);
		assert_memory_equal(d->pcrs[i].p, pcrs[i], WARD_NSM_PCR_LEN);
	}
	assert_opt(d->user_data, q->user_data);
	assert_opt(d->nonce, q->nonce);
	assert_opt(d->public_key, q->public_key);
	ASSERT_OK(ward_attest_roots_new(false, &roots));
	ASSERT_OK(ward_attest_roots_add_der(roots, root.p, root.len));
	ASSERT_OK(ward_attest_verify(d, roots, time(NULL), &res));
	assert_false(res.aws);
	ward_attest_roots_free(roots);
	ward_attest_doc_free(d);
}

static void
test_server_attestation(void **state)
{
	struct ca_env c;
	struct ward_nsm_server *s;
	struct ward_nsm_response r;
	struct ward_buf raw = {0};
	uint8_t pcrs[WARD_NSM_PCR_COUNT][WARD_NSM_PCR_LEN] = {{0}};
	struct ward_nsm_request q[] = {
	    {WARD_NSM_ATTESTATION},
	    {WARD_NSM_ATTESTATION, .user_data = OPT("hi"),
	        .nonce = OPT("\x01\x02"), .public_key = OPT("spki")},
	    {WARD_NSM_ATTESTATION, .user_data = OPT(""), .nonce = OPT("")},
	};

	ca_setup(&c);
	ASSERT_OK(ward_nsm_server_new(c.signer, "i-0123-enc4567", &s));
	for (uint16_t i = 0; i < WARD_NSM_BOOT_PCRS; i++) {
		memset(pcrs[i], 0x10 + i, WARD_NSM_PCR_LEN);
		ASSERT_OK(ward_nsm_server_set_pcr(s, i, pcrs[i]));
	}
	ASSERT_OK(ward_nsm_server_lock_boot(s));
	for (size_t i = 0; i < N(q); i++) {
		serve(s, &q[i], &raw, &r);
		assert_int_equal(r.op, WARD_NSM_ATTESTATION);
		check_doc(&c, r.data.p, r.data.len, "i-0123-enc4567", 0xffff,
		    (const uint8_t(*)[WARD_NSM_PCR_LEN])pcrs, &q[i]);
	}
	/* extend and lock PCR 16: the next document carries it */
	serve(s,
	    &(struct ward_nsm_request){
	        WARD_NSM_EXTEND_PCR, .index = 16, .data = B("abc")},
	    &raw, &r);
	unhex(extend_abc, pcrs[16], WARD_NSM_PCR_LEN);
	serve(s, &(struct ward_nsm_request){WARD_NSM_LOCK_PCR, .index = 16},
	    &raw, &r);
	serve(s, &q[1], &raw, &r);
	check_doc(&c, r.data.p, r.data.len, "i-0123-enc4567", 0x1ffff,
	    (const uint8_t(*)[WARD_NSM_PCR_LEN])pcrs, &q[1]);
	ward_buf_free(&raw);
	ward_nsm_server_free(s);
	ca_teardown(&c);
}

/*
 * The ioctl plumbing.
 */
static void
test_raw_layout(void **state)
{
	struct ward_nsm_raw raw;
	uint8_t req[3], resp[5];

	assert_int_equal(sizeof(struct ward_nsm_raw), 32);
	assert_int_equal(offsetof(struct ward_nsm_raw, request.addr), 0);
	assert_int_equal(offsetof(struct ward_nsm_raw, request.len), 8);
	assert_int_equal(offsetof(struct ward_nsm_raw, response.addr), 16);
	assert_int_equal(offsetof(struct ward_nsm_raw, response.len), 24);
	assert_int_equal(
	    WARD_NSM_IOCTL_RAW, _IOWR(0x0A, 0, struct ward_nsm_raw));
	assert_int_equal(WARD_NSM_IOCTL_RAW, 0xC0200A00UL);
	memset(&raw, 0xff, sizeof(raw));
	ward_nsm_raw_prepare(&raw, req, sizeof(req), resp, sizeof(resp));
	assert_int_equal(raw.request.addr, (uint64_t)(uintptr_t)req);
	assert_int_equal(raw.request.len, 3);
	assert_int_equal(raw.response.addr, (uint64_t)(uintptr_t)resp);
	assert_int_equal(raw.response.len, 5);
}

static void
test_device_errors(void **state)
{
	char *dir = tu_mkdtemp(), path[512];
	struct ward_nsm *n;
	uint8_t v[WARD_NSM_PCR_LEN];
	struct ward_buf raw = {0};
	static uint8_t big[WARD_NSM_REQUEST_MAX + 1];
	bool lock;

	/* a regular file is no NSM: the ioctl fails cleanly (ENOTTY) */
	snprintf(path, sizeof(path), "%s/nsm", dir);
	assert_int_equal(tu_write_file(path, "x", 1), 0);
	ASSERT_OK(ward_nsm_open(path, &n));
	ASSERT_ERR(ward_nsm_describe_pcr(n, 0, &lock, v), WARD_EIO);
	assert_msg(strerror(ENOTTY));
	ASSERT_ERR(ward_nsm_call_raw(n, big, sizeof(big), &raw), WARD_ELIMIT);
	assert_msg("too large");
	assert_int_equal(raw.len, 0);
	ward_nsm_close(n);
	/* no device */
	snprintf(path, sizeof(path), "%s/absent", dir);
	ASSERT_ERR(ward_nsm_open(path, &n), WARD_EIO);
	assert_null(n);
	assert_msg("no NSM device at");
	assert_msg("WARD_NSM=unix:PATH");
	/* the default: $WARD_NSM, else /dev/nsm */
	setenv("WARD_NSM", path, 1);
	ASSERT_ERR(ward_nsm_open(NULL, &n), WARD_EIO);
	assert_msg(path);
	unsetenv("WARD_NSM");
	if (access(WARD_NSM_DEVICE, F_OK) != 0) {
		ASSERT_ERR(ward_nsm_open(NULL, &n), WARD_EIO);
		assert_msg("no NSM device at /dev/nsm: not in a Nitro "
		           "enclave? set WARD_NSM=unix:PATH for a sandbox");
	}
	/* a socket nobody listens on */
	snprintf(path, sizeof(path), "unix:%s/none.sock", dir);
	ASSERT_ERR(ward_nsm_open(path, &n), WARD_EIO);
	ward_buf_free(&raw);
	tu_rmtree(dir);
	free(dir);
}

/*
 * The socket client against a server thread.
 */
struct peer {
	int lfd, fd;
	struct ward_nsm_server *s; /* serve_fd, or ... */
	const uint8_t *canned; /* ... answer every frame with this */
	size_t canned_len;
	int rc;
	char errmsg[256];
	pthread_t t;
};

static int
read_all(int fd, uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t k = read(fd, p, n);

		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static void *
peer_main(void *arg)
{
	struct peer *pe = arg;
	int fd = pe->fd;

	if (fd < 0 && (fd = accept(pe->lfd, NULL, NULL)) < 0) {
		pe->rc = -1;
		return NULL;
	}
	if (pe->canned == NULL) {
		pe->rc = ward_nsm_server_serve_fd(pe->s, fd);
		snprintf(pe->errmsg, sizeof(pe->errmsg), "%s", ward_errmsg());
	} else {
		uint8_t hdr[4], buf[WARD_NSM_REQUEST_MAX];

		while (read_all(fd, hdr, 4) == 0 &&
		    ward_load32(hdr) <= sizeof(buf) &&
		    read_all(fd, buf, ward_load32(hdr)) == 0) {
			ward_store32(hdr, (uint32_t)pe->canned_len);
			if (write(fd, hdr, 4) != 4 ||
			    write(fd, pe->canned, pe->canned_len) !=
			        (ssize_t)pe->canned_len)
				break;
		}
		pe->rc = 0;
	}
	close(fd);
	return NULL;
}

/* A listener at dir/nsm.sock and a thread behind it; where gets the
 * client's "unix:" address. */
static void
peer_listen(struct peer *pe, const char *dir, char *where, size_t cap)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/nsm.sock", dir);
	snprintf(where, cap, "unix:%s", sa.sun_path);
	pe->fd = -1;
	assert_true((pe->lfd = socket(AF_UNIX, SOCK_STREAM, 0)) >= 0);
	assert_int_equal(bind(pe->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(pe->lfd, 1), 0);
	assert_int_equal(pthread_create(&pe->t, NULL, peer_main, pe), 0);
}

static void
peer_join(struct peer *pe)
{
	assert_int_equal(pthread_join(pe->t, NULL), 0);
	if (pe->lfd >= 0)
		close(pe->lfd);
}

static void
test_socket_round_trip(void **state)
{
	struct ca_env c;
	struct peer pe = {0};
	struct ward_nsm *n;
	char *dir = tu_mkdtemp(), where[600];
	uint8_t v[WARD_NSM_PCR_LEN], want[WARD_NSM_PCR_LEN], big[1000];
	uint8_t pcrs[WARD_NSM_PCR_COUNT][WARD_NSM_PCR_LEN] = {{0}};
	struct ward_nsm_request q = {WARD_NSM_DESCRIBE_NSM};
	struct ward_nsm_response r;
	struct ward_buf raw = {0}, doc = {0};
	struct ward_nsm_opt nonce = OPT("nonce"), pk = OPT("spki");
	bool lock;

	ca_setup(&c);
	ASSERT_OK(ward_nsm_server_new(c.signer, "i-sock-enc", &pe.s));
	ASSERT_OK(ward_nsm_server_lock_boot(pe.s));
	peer_listen(&pe, dir, where, sizeof(where));
	ASSERT_OK(ward_nsm_open(where, &n));

	ASSERT_OK(ward_nsm_call(n, &q, &raw, &r));
	assert_int_equal(r.op, WARD_NSM_DESCRIBE_NSM);
	assert_bytes(r.module_id, B("i-sock-enc"));
	assert_int_equal(r.locked_pcrs_len, 16);
	/* extend, describe, lock, and the typed errors */
	unhex(extend_abc, want, sizeof(want));
	ASSERT_OK(ward_nsm_extend_pcr(n, 16, (const uint8_t *)"abc", 3, v));
	assert_memory_equal(v, want, sizeof(v));
	ASSERT_OK(ward_nsm_describe_pcr(n, 16, &lock, v));
	assert_false(lock);
	assert_memory_equal(v, want, sizeof(v));
	memcpy(pcrs[16], want, sizeof(want));
	ASSERT_OK(ward_nsm_lock_pcr(n, 16));
	ASSERT_ERR(ward_nsm_extend_pcr(n, 16, (const uint8_t *)"x", 1, v),
	    WARD_EUNSAFE);
	assert_msg("PCR 16 is locked");
	ASSERT_ERR(ward_nsm_lock_pcr(n, 3), WARD_EUNSAFE);
	ASSERT_ERR(ward_nsm_describe_pcr(n, 40, &lock, v), WARD_EUSAGE);
	assert_msg("InvalidIndex");
	ASSERT_ERR(ward_nsm_lock_pcrs(n, 33), WARD_EUSAGE);
	ASSERT_OK(ward_nsm_lock_pcrs(n, 16));
	/* random: more than one answer's worth, and not all the same */
	ASSERT_OK(ward_nsm_get_random(n, big, sizeof(big)));
	assert_memory_not_equal(big, big + 500, 500);
	ASSERT_OK(ward_nsm_get_random(n, big, 1));
	/* attestation */
	ASSERT_OK(ward_nsm_attestation(n, NULL, &nonce, &pk, &doc));
	check_doc(&c, doc.p, doc.len, "i-sock-enc", 0x1ffff,
	    (const uint8_t(*)[WARD_NSM_PCR_LEN])pcrs,
	    &(struct ward_nsm_request){
	        WARD_NSM_ATTESTATION, .nonce = nonce, .public_key = pk});
	{
		struct ward_nsm_opt huge = {true, {big, 600}};

		ASSERT_ERR(ward_nsm_attestation(n, &huge, NULL, NULL, &doc),
		    WARD_EUSAGE);
		assert_msg("InvalidArgument");
	}
	/* raw calls: garbage gets InvalidOperation */
	ASSERT_OK(ward_nsm_call_raw(n, (const uint8_t *)"\xff", 1, &raw));
	ASSERT_OK(ward_nsm_response_decode(raw.p, raw.len, &r));
	assert_int_equal(r.op, WARD_NSM_ERROR);
	assert_int_equal(r.error, WARD_NSM_INVALID_OPERATION);

	ward_nsm_close(n);
	peer_join(&pe);
	if (pe.rc != 0)
		fail_msg("serve_fd: %s", pe.errmsg);
	ward_nsm_server_free(pe.s);
	ward_buf_free(&raw);
	ward_buf_free(&doc);
	ca_teardown(&c);
	tu_rmtree(dir);
	free(dir);
}

/* A monitor answering the wrong thing: the typed helpers say so. */
static void
test_socket_wrong_variant(void **state)
{
	static const uint8_t lockpcr[] = "\x67LockPCR";
	static const uint8_t internal[] = "\xa1\x65"
	                                  "Error"
	                                  "\x6d"
	                                  "InternalError";
	char *dir = tu_mkdtemp(), where[600];
	struct peer pe = {.canned = lockpcr, .canned_len = 8};
	struct ward_nsm *n;
	uint8_t v[WARD_NSM_PCR_LEN];
	bool lock;

	peer_listen(&pe, dir, where, sizeof(where));
	ASSERT_OK(ward_nsm_open(where, &n));
	ASSERT_ERR(ward_nsm_describe_pcr(n, 0, &lock, v), WARD_EFORMAT);
	assert_msg("LockPCR");
	ASSERT_OK(ward_nsm_lock_pcr(n, 0));
	ASSERT_ERR(ward_nsm_get_random(n, v, 1), WARD_EFORMAT);
	ward_nsm_close(n);
	peer_join(&pe);
	unlink(where + 5);

	pe = (struct peer){
	    .canned = internal, .canned_len = sizeof(internal) - 1};
	peer_listen(&pe, dir, where, sizeof(where));
	ASSERT_OK(ward_nsm_open(where, &n));
	ASSERT_ERR(ward_nsm_lock_pcr(n, 0), WARD_EIO);
	assert_msg("InternalError");
	ward_nsm_close(n);
	peer_join(&pe);
	tu_rmtree(dir);
	free(dir);
}

/* Missing Option fields are None (serde, QEMU): a client that leaves out
 * user_data/nonce/public_key still gets a document. */
static void
test_attestation_optional_keys(void **state)
{
	uint8_t msg[64];
	size_t n;
	struct ward_nsm_request q;

	n = unhex("a1 6b4174746573746174696f6e a0", msg, sizeof(msg));
	ASSERT_OK(ward_nsm_request_decode(msg, n, &q));
	assert_int_equal(q.op, WARD_NSM_ATTESTATION);
	assert_false(q.user_data.present);
	assert_false(q.nonce.present);
	assert_false(q.public_key.present);
	n = unhex("a1 6b4174746573746174696f6e a1 656e6f6e6365 4101", msg,
	    sizeof(msg));
	ASSERT_OK(ward_nsm_request_decode(msg, n, &q));
	assert_true(q.nonce.present);
	assert_int_equal(q.nonce.v.len, 1);
	assert_false(q.user_data.present);
	/* other variants' fields stay required */
	ASSERT_ERR(req_hex("a1 6b4465736372696265504352 a0"), WARD_EFORMAT);
}

/* A bad frame from the monitor drops the connection: later calls fail
 * cleanly instead of reading the rest of that frame as a header. */
static void
test_socket_bad_frame_drops(void **state)
{
	static uint8_t big[WARD_NSM_RESPONSE_MAX + 1];
	char *dir = tu_mkdtemp(), where[600];
	struct peer pe = {.canned = big, .canned_len = sizeof(big)};
	struct ward_nsm *n;

	memset(big, 0x41, sizeof(big));
	peer_listen(&pe, dir, where, sizeof(where));
	ASSERT_OK(ward_nsm_open(where, &n));
	ASSERT_ERR(ward_nsm_lock_pcr(n, 0), WARD_EFORMAT);
	ASSERT_ERR(ward_nsm_lock_pcr(n, 0), WARD_EIO);
	assert_msg("dropped");
	ward_nsm_close(n);
	peer_join(&pe);
	tu_rmtree(dir);
	free(dir);
}

/* A frame over the request limit gets InputTooLarge, then a hang-up. */
static void
test_socket_oversized_frame(void **state)
{
	struct peer pe = {.lfd = -1};
	int sv[2];
	uint8_t hdr[4], buf[64];
	struct ward_nsm_response r;
	uint32_t len;

	ASSERT_OK(ward_nsm_server_new(NULL, "i-test-enc", &pe.s));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	pe.fd = sv[1];
	assert_int_equal(pthread_create(&pe.t, NULL, peer_main, &pe), 0);
	/* one good frame first, in pieces */
	assert_int_equal(write(sv[0], "\x00\x00", 2), 2);
	usleep(10000);
	assert_int_equal(write(sv[0], "\x00\x0a\x69GetRa", 8), 8);
	usleep(10000);
	assert_int_equal(write(sv[0], "ndom", 4), 4);
	assert_int_equal(read_all(sv[0], hdr, 4), 0);
	len = ward_load32(hdr);
	assert_true(len > 256 && len < 300);
	{
		uint8_t resp[300];

		assert_int_equal(read_all(sv[0], resp, len), 0);
		ASSERT_OK(ward_nsm_response_decode(resp, len, &r));
		assert_int_equal(r.op, WARD_NSM_GET_RANDOM);
	}
	ward_store32(hdr, WARD_NSM_REQUEST_MAX + 1);
	assert_int_equal(write(sv[0], hdr, 4), 4);
	assert_int_equal(read_all(sv[0], hdr, 4), 0);
	len = ward_load32(hdr);
	assert_true(len < sizeof(buf));
	assert_int_equal(read_all(sv[0], buf, len), 0);
	ASSERT_OK(ward_nsm_response_decode(buf, len, &r));
	assert_int_equal(r.op, WARD_NSM_ERROR);
	assert_int_equal(r.error, WARD_NSM_INPUT_TOO_LARGE);
	/* then the connection is closed */
	assert_int_equal(read(sv[0], buf, 1), 0);
	peer_join(&pe);
	assert_int_equal(pe.rc, -WARD_ELIMIT);
	close(sv[0]);
	ward_nsm_server_free(pe.s);

	/* a peer closing between frames ends serving cleanly; inside a
	 * frame it is an error */
	pe = (struct peer){.lfd = -1};
	ASSERT_OK(ward_nsm_server_new(NULL, "i-test-enc", &pe.s));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	pe.fd = sv[1];
	assert_int_equal(pthread_create(&pe.t, NULL, peer_main, &pe), 0);
	close(sv[0]);
	peer_join(&pe);
	assert_int_equal(pe.rc, 0);
	ward_nsm_server_free(pe.s);

	pe = (struct peer){.lfd = -1};
	ASSERT_OK(ward_nsm_server_new(NULL, "i-test-enc", &pe.s));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	pe.fd = sv[1];
	assert_int_equal(pthread_create(&pe.t, NULL, peer_main, &pe), 0);
	assert_int_equal(write(sv[0], "\x00\x00\x00\x10\x69", 5), 5);
	close(sv[0]);
	peer_join(&pe);
	assert_int_equal(pe.rc, -WARD_EIO);
	ward_nsm_server_free(pe.s);
}

/* Concurrent clients on one server: every extend lands exactly once. */
struct hammer {
	struct ward_nsm_server *s;
	uint16_t index;
};

static void *
hammer_main(void *arg)
{
	struct hammer *h = arg;
	struct ward_nsm_request q = {
	    WARD_NSM_EXTEND_PCR, .index = h->index, .data = B("z")};
	struct ward_buf req = {0}, resp = {0};

	if (ward_nsm_request_encode(&q, &req) != 0)
		return (void *)1;
	for (int i = 0; i < 200; i++)
		if (ward_nsm_server_handle(h->s, req.p, req.len, &resp) != 0)
			return (void *)1;
	ward_buf_free(&req);
	ward_buf_free(&resp);
	return NULL;
}

static void
test_server_threads(void **state)
{
	struct ward_nsm_server *s;
	struct hammer h[4];
	pthread_t t[4];
	uint8_t want[WARD_NSM_PCR_LEN] = {0}, tmp[WARD_NSM_PCR_LEN + 1];
	struct ward_nsm_response r;
	struct ward_buf raw = {0};
	void *rv;

	ASSERT_OK(ward_nsm_server_new(NULL, "i-test-enc", &s));
	for (int i = 0; i < 4; i++) {
		h[i] = (struct hammer){s, 20};
		assert_int_equal(
		    pthread_create(&t[i], NULL, hammer_main, &h[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(t[i], &rv), 0);
		assert_null(rv);
	}
	/* 800 extends by "z", in whatever order: all the same data */
	for (int i = 0; i < 800; i++) {
		memcpy(tmp, want, sizeof(want));
		memcpy(tmp + WARD_NSM_PCR_LEN, "z", 1);
		assert_int_equal(EVP_Digest(tmp, sizeof(tmp), want, NULL,
		                     EVP_sha384(), NULL),
		    1);
	}
	serve(s, &(struct ward_nsm_request){WARD_NSM_DESCRIBE_PCR, .index = 20},
	    &raw, &r);
	assert_memory_equal(r.data.p, want, sizeof(want));
	ward_buf_free(&raw);
	ward_nsm_server_free(s);
}

int
main(void)
{
	/* the canned peers write after a client hangs up */
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_request_kats),
	    cmocka_unit_test(test_response_kats),
	    cmocka_unit_test(test_truncated_and_trailing),
	    cmocka_unit_test(test_request_rejects),
	    cmocka_unit_test(test_response_rejects),
	    cmocka_unit_test(test_encode_limits),
	    cmocka_unit_test(test_describe_qemu_order),
	    cmocka_unit_test(test_indefinite_maps),
	    cmocka_unit_test(test_error_round_trip),
	    cmocka_unit_test(test_extend_kat),
	    cmocka_unit_test(test_server_semantics),
	    cmocka_unit_test(test_server_malformed),
	    cmocka_unit_test(test_server_attestation),
	    cmocka_unit_test(test_raw_layout),
	    cmocka_unit_test(test_device_errors),
	    cmocka_unit_test(test_socket_round_trip),
	    cmocka_unit_test(test_socket_wrong_variant),
	    cmocka_unit_test(test_socket_oversized_frame),
	    cmocka_unit_test(test_attestation_optional_keys),
	    cmocka_unit_test(test_socket_bad_frame_drops),
	    cmocka_unit_test(test_server_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
