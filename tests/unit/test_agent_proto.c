/* The agent protocol: frames (transport) and messages (agent codec):
 * known answers from docs/protocol.md, a round trip of every type, and
 * truncated, oversized and corrupted input. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"
#include "ward/agent.h"
#include "ward/attest.h"
#include "ward/transport.h"

/* docs/protocol.md "Examples": hello and an error, byte for byte. */
static const uint8_t hello_kat[] = {0xa3, 0x61, 't', 0x65, 'h', 'e', 'l', 'l',
    'o', 0x62, 'i', 'd', 0x00, 0x61, 'v', 0x01};
static const uint8_t err_kat[] = {0xa4, 0x61, 't', 0x63, 'e', 'r', 'r', 0x62,
    'i', 'd', 0x07, 0x64, 'c', 'o', 'd', 'e', 0x66, 'E', 'N', 'O', 'E', 'N',
    'T', 0x63, 'm', 's', 'g', 0x61, 'x'};

static void
test_known_answers(void **state)
{
	struct ward_msg m = {.type = WARD_MSG_HELLO, .id = 0, .version = 1};
	struct ward_buf b = {0};

	(void)state;
	ASSERT_OK(ward_msg_encode(&m, &b));
	assert_int_equal(b.len, sizeof(hello_kat));
	assert_memory_equal(b.p, hello_kat, sizeof(hello_kat));
	ward_buf_free(&b);
	m = (struct ward_msg){.type = WARD_MSG_ERR,
	    .id = 7,
	    .code = (char *)"ENOENT",
	    .message = (char *)"x"};
	ASSERT_OK(ward_msg_encode(&m, &b));
	assert_int_equal(b.len, sizeof(err_kat));
	assert_memory_equal(b.p, err_kat, sizeof(err_kat));

	ASSERT_OK(ward_msg_decode(err_kat, sizeof(err_kat), &m));
	assert_int_equal(m.type, WARD_MSG_ERR);
	assert_int_equal(m.id, 7);
	assert_string_equal(m.code, "ENOENT");
	assert_string_equal(m.message, "x");
	assert_int_equal(ward_code_errno(m.code), ENOENT);
	ward_msg_free(&m);
	ward_buf_free(&b);
}

/* Encode, decode, and encode again: the same bytes. */
static void
roundtrip(const struct ward_msg *m, struct ward_msg *out)
{
	struct ward_buf a = {0}, b = {0};

	ASSERT_OK(ward_msg_encode(m, &a));
	ASSERT_OK(ward_msg_decode(a.p, a.len, out));
	assert_int_equal(out->type, m->type);
	assert_int_equal(out->id, m->id);
	ASSERT_OK(ward_msg_encode(out, &b));
	assert_int_equal(a.len, b.len);
	assert_memory_equal(a.p, b.p, a.len);
	ward_buf_free(&a);
	ward_buf_free(&b);
}

static void
test_roundtrip_every_type(void **state)
{
	static const uint8_t bytes[] = {1, 2, 3, 0, 255};
	char *argv[] = {(char *)"./run", (char *)"-v", (char *)""};
	char *env[] = {(char *)"A=1"};
	char *keys[] = {(char *)"alias/app"};
	char *ctx[] = {(char *)"purpose=app"};
	struct ward_msg_dirent ents[2] = {
	    {(char *)"a", {0100644, 5, 1, -1, 2, 3}},
	    {(char *)"b", {040755, 0, 2, 0, 0, 0}}};
	struct ward_msg m, d;
	int t;

	(void)state;
	for (t = 1; t < WARD_MSG_TYPE_COUNT; t++) {
		memset(&m, 0, sizeof(m));
		m.type = (enum ward_msg_type)t;
		m.id = 1000 + (uint64_t)t;
		m.version = 1;
		m.software = (char *)"ward test";
		m.path = (char *)"dir/file";
		m.to = (char *)"dir/other";
		m.app = (char *)"app.enc";
		m.offset = 1u << 20;
		m.length = 4096;
		m.size = 77;
		m.has_size = true;
		m.mode = 0640;
		m.exclusive = true;
		m.atime_ns = -5;
		m.mtime_ns = 1700000000123456789;
		m.has_atime = m.has_mtime = true;
		m.data = bytes;
		m.data_len = sizeof(bytes);
		m.nonce = bytes;
		m.nonce_len = 2;
		m.argv = argv;
		m.argc = 3;
		m.env = env;
		m.envc = 1;
		m.key_ids = keys;
		m.key_idc = 1;
		m.context = ctx;
		m.contextc = 1;
		m.has_cred = true;
		m.cred.access_key_id = (char *)"AKIDEXAMPLE";
		m.cred.secret_access_key = (char *)"secret";
		m.region = (char *)"eu-west-1";
		m.endpoint = (char *)"http://kms.local:4000";
		m.target = 9;
		m.fd = 2;
		m.has_status = true;
		m.status = 3;
		m.code = (char *)"EIO";
		m.message = (char *)"it broke";
		if (t == WARD_MSG_OK) {
			m.data = NULL;
			m.has_st = true;
			m.st = ents[0].st;
			m.entries = ents;
			m.entryc = 2;
			m.more = true;
			m.has_fs = true;
			m.fs =
			    (struct ward_msg_statfs){4096, 10, 5, 100, 50, 255};
		}
		roundtrip(&m, &d);
		switch (d.type) {
		case WARD_MSG_WRITE:
			assert_string_equal(d.path, "dir/file");
			assert_int_equal(d.offset, 1u << 20);
			assert_int_equal(d.data_len, sizeof(bytes));
			assert_memory_equal(d.data, bytes, sizeof(bytes));
			break;
		case WARD_MSG_UTIMENS:
			assert_true(d.has_atime && d.has_mtime);
			assert_int_equal(d.atime_ns, -5);
			assert_int_equal(d.mtime_ns, 1700000000123456789);
			break;
		case WARD_MSG_EXEC:
			assert_int_equal(d.argc, 3);
			assert_string_equal(d.argv[2], "");
			assert_null(d.argv[3]);
			assert_string_equal(d.env[0], "A=1");
			assert_true(d.has_cred);
			assert_string_equal(d.cred.secret_access_key, "secret");
			assert_null(d.cred.session_token);
			assert_string_equal(d.region, "eu-west-1");
			break;
		case WARD_MSG_OK:
			assert_int_equal(d.entryc, 2);
			assert_string_equal(d.entries[1].name, "b");
			assert_int_equal(d.entries[0].st.atime_ns, -1);
			assert_true(d.more && d.has_fs && d.has_st);
			assert_int_equal(d.fs.namemax, 255);
			break;
		case WARD_MSG_OUT:
			assert_int_equal(d.fd, 2);
			break;
		case WARD_MSG_RENAME:
			assert_string_equal(d.to, "dir/other");
			assert_true(d.exclusive);
			break;
		default:
			break;
		}
		ward_msg_free(&d);
	}
}

/* Build a message by hand: pairs of (key, CBOR item bytes). */
static void
raw(struct ward_buf *b, size_t pairs)
{
	b->len = 0;
	ASSERT_OK(ward_cbor_put_map(b, pairs));
}

static int
decode_buf(const struct ward_buf *b)
{
	struct ward_msg m;
	int r = ward_msg_decode(b->p, b->len, &m);

	if (r == 0)
		ward_msg_free(&m);
	return r;
}

static void
test_bad_messages(void **state)
{
	struct ward_buf b = {0}, ok = {0};
	struct ward_msg m = {
	    .type = WARD_MSG_READ, .id = 5, .path = (char *)"f", .length = 10};
	size_t i;

	(void)state;
	/* every truncation of a valid message fails cleanly */
	ASSERT_OK(ward_msg_encode(&m, &ok));
	for (i = 0; i < ok.len; i++)
		ASSERT_ERR(decode_buf(&(struct ward_buf){ok.p, i, i, false}),
		    WARD_EFORMAT);
	/* trailing bytes */
	ASSERT_OK(ward_buf_put_u8(&ok, 0));
	ASSERT_ERR(decode_buf(&ok), WARD_EFORMAT);

	/* missing "t", missing "id", unknown type, duplicate key */
	raw(&b, 1);
	ward_cbor_put_textz(&b, "id");
	ward_cbor_put_uint(&b, 1);
	ASSERT_ERR(decode_buf(&b), WARD_EFORMAT);
	raw(&b, 1);
	ward_cbor_put_textz(&b, "t");
	ward_cbor_put_textz(&b, "stat");
	ASSERT_ERR(decode_buf(&b), WARD_EFORMAT);
	raw(&b, 2);
	ward_cbor_put_textz(&b, "t");
	ward_cbor_put_textz(&b, "format-disk");
	ward_cbor_put_textz(&b, "id");
	ward_cbor_put_uint(&b, 1);
	ASSERT_ERR(decode_buf(&b), WARD_EUNSUPPORTED);
	raw(&b, 4);
	ward_cbor_put_textz(&b, "t");
	ward_cbor_put_textz(&b, "stat");
	ward_cbor_put_textz(&b, "id");
	ward_cbor_put_uint(&b, 1);
	ward_cbor_put_textz(&b, "p");
	ward_cbor_put_textz(&b, "a");
	ward_cbor_put_textz(&b, "p");
	ward_cbor_put_textz(&b, "../b");
	ASSERT_ERR(decode_buf(&b), WARD_EFORMAT);
	/* a required field missing; the wrong type; NUL in a path */
	raw(&b, 2);
	ward_cbor_put_textz(&b, "t");
	ward_cbor_put_textz(&b, "stat");
	ward_cbor_put_textz(&b, "id");
	ward_cbor_put_uint(&b, 1);
	ASSERT_ERR(decode_buf(&b), WARD_EFORMAT);
	assert_non_null(strstr(ward_errmsg(), "\"p\""));
	raw(&b, 3);
	ward_cbor_put_textz(&b, "t");
	ward_cbor_put_textz(&b, "stat");
	ward_cbor_put_textz(&b, "id");
	ward_cbor_put_uint(&b, 1);
	ward_cbor_put_textz(&b, "p");
	ward_cbor_put_bytes(&b, "a", 1);
	ASSERT_ERR(decode_buf(&b), WARD_EFORMAT);
	raw(&b, 3);
	ward_cbor_put_textz(&b, "t");
	ward_cbor_put_textz(&b, "stat");
	ward_cbor_put_textz(&b, "id");
	ward_cbor_put_uint(&b, 1);
	ward_cbor_put_textz(&b, "p");
	ward_cbor_put_text(&b, "a\0b", 3);
	ASSERT_ERR(decode_buf(&b), WARD_EFORMAT);
	/* an array claiming more entries than there are bytes */
	raw(&b, 4);
	ward_cbor_put_textz(&b, "t");
	ward_cbor_put_textz(&b, "exec");
	ward_cbor_put_textz(&b, "id");
	ward_cbor_put_uint(&b, 1);
	ward_cbor_put_textz(&b, "app");
	ward_cbor_put_textz(&b, "a");
	ward_cbor_put_textz(&b, "argv");
	ward_cbor_put_array(&b, 200);
	ASSERT_ERR(decode_buf(&b), WARD_EFORMAT);
	/* too many argv entries */
	raw(&b, 4);
	ward_cbor_put_textz(&b, "t");
	ward_cbor_put_textz(&b, "exec");
	ward_cbor_put_textz(&b, "id");
	ward_cbor_put_uint(&b, 1);
	ward_cbor_put_textz(&b, "app");
	ward_cbor_put_textz(&b, "a");
	ward_cbor_put_textz(&b, "argv");
	ward_cbor_put_array(&b, WARD_MSG_ARGS_MAX + 1);
	for (i = 0; i <= WARD_MSG_ARGS_MAX; i++)
		ward_cbor_put_textz(&b, "x");
	ASSERT_ERR(decode_buf(&b), WARD_EFORMAT);
	/* exit with both status and signal; mode out of range; indefinite */
	raw(&b, 4);
	ward_cbor_put_textz(&b, "t");
	ward_cbor_put_textz(&b, "exit");
	ward_cbor_put_textz(&b, "id");
	ward_cbor_put_uint(&b, 1);
	ward_cbor_put_textz(&b, "status");
	ward_cbor_put_uint(&b, 0);
	ward_cbor_put_textz(&b, "sig");
	ward_cbor_put_uint(&b, 9);
	ASSERT_ERR(decode_buf(&b), WARD_EFORMAT);
	raw(&b, 4);
	ward_cbor_put_textz(&b, "t");
	ward_cbor_put_textz(&b, "mkdir");
	ward_cbor_put_textz(&b, "id");
	ward_cbor_put_uint(&b, 1);
	ward_cbor_put_textz(&b, "p");
	ward_cbor_put_textz(&b, "d");
	ward_cbor_put_textz(&b, "mode");
	ward_cbor_put_uint(&b, 010000);
	ASSERT_ERR(decode_buf(&b), WARD_EFORMAT);
	b.len = 0;
	ward_cbor_put_indef_map(&b);
	ward_cbor_put_textz(&b, "t");
	ward_cbor_put_textz(&b, "statfs");
	ward_cbor_put_textz(&b, "id");
	ward_cbor_put_uint(&b, 1);
	ward_cbor_put_break(&b);
	ASSERT_ERR(decode_buf(&b), WARD_EFORMAT);
	/* unknown keys are ignored; "t" may come last */
	raw(&b, 3);
	ward_cbor_put_textz(&b, "future");
	ward_cbor_put_array(&b, 1);
	ward_cbor_put_uint(&b, 1);
	ward_cbor_put_textz(&b, "id");
	ward_cbor_put_uint(&b, 3);
	ward_cbor_put_textz(&b, "t");
	ward_cbor_put_textz(&b, "statfs");
	ASSERT_OK(decode_buf(&b));
	/* not a map at all */
	b.len = 0;
	ward_cbor_put_array(&b, 0);
	ASSERT_ERR(decode_buf(&b), WARD_EFORMAT);
	ward_buf_free(&b);
	ward_buf_free(&ok);
}

/* A head plus the payload sent after it is the whole message, for each
 * size class of the byte string's head. */
static void
test_encode_head(void **state)
{
	static const size_t sizes[] = {0, 1, 23, 24, 255, 256, 65535, 65536};
	static uint8_t payload[65536];
	struct ward_buf whole = {0}, head = {0};
	struct ward_msg m = {.type = WARD_MSG_OUT, .id = 3, .fd = 2};
	struct ward_msg ok = {.type = WARD_MSG_OK, .id = 4, .has_st = true};

	(void)state;
	memset(payload, 0x5a, sizeof(payload));
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		whole.len = head.len = 0;
		m.data = payload;
		m.data_len = sizes[i];
		ASSERT_OK(ward_msg_encode(&m, &whole));
		ASSERT_OK(ward_msg_encode_head(&m, sizes[i], &head));
		ASSERT_OK(ward_buf_append(&head, payload, sizes[i]));
		assert_int_equal(whole.len, head.len);
		assert_memory_equal(whole.p, head.p, whole.len);
	}
	/* an OK whose payload would not be last is refused */
	head.len = 0;
	ASSERT_ERR(ward_msg_encode_head(&ok, 10, &head), WARD_EINTERNAL);
	ward_buf_free(&whole);
	ward_buf_free(&head);
}

static void
test_error_codes(void **state)
{
	(void)state;
	assert_string_equal(ward_errno_code(ENOENT), "ENOENT");
	assert_string_equal(ward_errno_code(ENOTEMPTY), "ENOTEMPTY");
	assert_string_equal(ward_errno_code(12345), "EIO");
	assert_int_equal(ward_code_errno("ENOSPC"), ENOSPC);
	assert_int_equal(ward_code_errno("AccessDenied"), EIO);
	assert_string_equal(ward_err_code(-WARD_EAUTH), "AccessDenied");
	assert_int_equal(ward_code_err("AccessDenied"), -WARD_EAUTH);
	assert_int_equal(ward_code_err("ENOSPC"), -WARD_ELIMIT);
	assert_int_equal(ward_code_err("Busy"), -WARD_ELIMIT);
	assert_int_equal(ward_code_err("nonsense"), -WARD_EIO);
}

static void
test_frames(void **state)
{
	uint8_t big[3000], hdr[4];
	struct ward_buf body = {0};
	size_t len;
	int sv[2];

	(void)state;
	memset(big, 0xab, sizeof(big));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ASSERT_OK(ward_frame_write(sv[0], "abc", 3));
	ASSERT_OK(ward_frame_write2(sv[0], "x", 1, big, sizeof(big)));
	ASSERT_OK(ward_frame_read(sv[1], 4096, &body));
	assert_int_equal(body.len, 3);
	assert_memory_equal(body.p, "abc", 3);
	ASSERT_OK(ward_frame_read(sv[1], 4096, &body));
	assert_int_equal(body.len, 1 + sizeof(big));
	assert_memory_equal(body.p + 1, big, sizeof(big));
	/* over the reader's cap: refused before the body is read */
	ASSERT_OK(ward_frame_write(sv[0], big, sizeof(big)));
	ASSERT_ERR(ward_frame_read(sv[1], 100, &body), WARD_EFORMAT);
	/* a zero length */
	assert_int_equal(read(sv[1], big, sizeof(big)), (ssize_t)sizeof(big));
	memset(hdr, 0, sizeof(hdr));
	assert_int_equal(write(sv[0], hdr, 4), 4);
	ASSERT_ERR(ward_frame_read(sv[1], 100, &body), WARD_EFORMAT);
	/* a stream ending inside the header, then inside the body */
	ward_store32(hdr, 10);
	assert_int_equal(write(sv[0], hdr, 2), 2);
	shutdown(sv[0], SHUT_WR);
	ASSERT_ERR(ward_frame_read(sv[1], 100, &body), WARD_EIO);
	close(sv[0]);
	close(sv[1]);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(write(sv[0], hdr, 4), 4);
	assert_int_equal(write(sv[0], "12345", 5), 5);
	shutdown(sv[0], SHUT_WR);
	ASSERT_ERR(ward_frame_read(sv[1], 100, &body), WARD_EIO);
	close(sv[1]);
	close(sv[0]);
	/* a clean end between frames */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	close(sv[0]);
	assert_int_equal(ward_frame_read(sv[1], 100, &body), 1);
	close(sv[1]);
	/* splitting in memory */
	ward_store32(big, 3);
	memcpy(big + 4, "abc", 3);
	assert_int_equal(ward_frame_split(big, 3, 100, &len), 1);
	assert_int_equal(ward_frame_split(big, 6, 100, &len), 1);
	assert_int_equal(ward_frame_split(big, 7, 100, &len), 0);
	assert_int_equal(len, 7);
	ASSERT_ERR(ward_frame_split(big, 7, 2, &len), WARD_EFORMAT);
	ward_buf_free(&body);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_known_answers),
	    cmocka_unit_test(test_roundtrip_every_type),
	    cmocka_unit_test(test_bad_messages),
	    cmocka_unit_test(test_encode_head),
	    cmocka_unit_test(test_error_codes),
	    cmocka_unit_test(test_frames),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
