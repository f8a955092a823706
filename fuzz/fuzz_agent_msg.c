/* libFuzzer: the agent protocol's message decoder (every request and reply
 * type), two ways:
 *  - the input as a frame body: whatever decodes must satisfy the limits
 *    in agent.h and encode back to bytes that decode and encode to the
 *    same bytes again (the encoding is canonical);
 *  - structure-aware: the first byte picks a message type, a valid message
 *    of that type is encoded, and the rest of the input overwrites bytes
 *    of it and may cut it short, so each type's decoder sees near-valid
 *    input without needing a seed per type. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ward/agent.h"
#include "ward/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_text(const char *s, size_t max)
{
	if (s != NULL && strlen(s) > max)
		__builtin_trap();
}

static void
check(const struct ward_msg *m)
{
	struct ward_buf a = {0}, b = {0};
	struct ward_msg d;
	size_t i;

	if (ward_msg_type_name(m->type) == NULL)
		__builtin_trap();
	check_text(m->path, WARD_MSG_PATH_MAX);
	check_text(m->to, WARD_MSG_PATH_MAX);
	check_text(m->app, WARD_MSG_PATH_MAX);
	check_text(m->code, 64);
	check_text(m->message, WARD_MSG_TEXT_MAX);
	if (m->argc > WARD_MSG_ARGS_MAX || m->envc > WARD_MSG_ARGS_MAX ||
	    m->entryc > WARD_MSG_LIST_MAX || m->nonce_len > 1024 ||
	    m->document_len > WARD_MSG_DOC_MAX || m->mode > 07777)
		__builtin_trap();
	if (m->type == WARD_MSG_EXEC && (m->argc == 0 || m->argv[m->argc]))
		__builtin_trap();
	if (m->type == WARD_MSG_EXIT && m->has_status == m->has_signal)
		__builtin_trap();
	for (i = 0; i < m->entryc; i++)
		check_text(m->entries[i].name, WARD_MSG_NAME_MAX);
	if (ward_msg_encode(m, &a) != 0)
		__builtin_trap();
	if (ward_msg_decode(a.p, a.len, &d) != 0)
		__builtin_trap();
	if (ward_msg_encode(&d, &b) != 0 || a.len != b.len ||
	    memcmp(a.p, b.p, a.len) != 0)
		__builtin_trap();
	ward_msg_free(&d);
	ward_buf_free(&a);
	ward_buf_free(&b);
}

static void
decode(const uint8_t *p, size_t n)
{
	struct ward_msg m;

	if (ward_msg_decode(p, n, &m) == 0) {
		check(&m);
		ward_msg_free(&m);
	}
}

/* A valid message of type t with every field its type may carry. */
static void template(enum ward_msg_type t, struct ward_buf *out)
{
	static const uint8_t bytes[] = {0, 1, 2, 3};
	static char *argv[] = {(char *)"./run", (char *)"-x", NULL};
	static char *kv[] = {(char *)"a=b", NULL};
	static struct ward_msg_dirent ents[] = {
	    {(char *)"f", {0100600, 3, 1, 1, 2, 3}}};
	struct ward_msg m = {
	    .type = t,
	    .id = 42,
	    .version = 1,
	    .software = (char *)"ward",
	    .max_frame = 1 << 20,
	    .path = (char *)"a/b",
	    .to = (char *)"a/c",
	    .app = (char *)"app.enc",
	    .offset = 7,
	    .length = 100,
	    .size = 9,
	    .has_size = true,
	    .mode = 0644,
	    .exclusive = true,
	    .atime_ns = -1,
	    .mtime_ns = 1,
	    .has_atime = true,
	    .has_mtime = true,
	    .data = bytes,
	    .data_len = sizeof(bytes),
	    .nonce = bytes,
	    .nonce_len = 4,
	    .user_data = bytes,
	    .user_data_len = 2,
	    .public_key = bytes,
	    .public_key_len = 3,
	    .argv = argv,
	    .argc = 2,
	    .env = kv,
	    .envc = 1,
	    .key_ids = kv,
	    .key_idc = 1,
	    .context = kv,
	    .contextc = 1,
	    .has_cred = true,
	    .cred = {(char *)"AKID", (char *)"secret", (char *)"token"},
	    .region = (char *)"eu-west-1",
	    .endpoint = (char *)"http://kms",
	    .target = 3,
	    .fd = 1,
	    .has_status = true,
	    .status = 1,
	    .code = (char *)"ENOENT",
	    .message = (char *)"no",
	};

	if (t == WARD_MSG_OK) {
		m.data = NULL;
		m.document = bytes;
		m.document_len = 4;
		m.has_st = true;
		m.entries = ents;
		m.entryc = 1;
		m.has_fs = true;
		m.fs.namemax = 255;
	}
	if (ward_msg_encode(&m, out) != 0)
		__builtin_trap();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ward_buf b = {0};
	size_t i, len;

	decode(data, size);
	if (size >= 1) {
		template((enum ward_msg_type)(
		             1 + data[0] % (WARD_MSG_TYPE_COUNT - 1)),
		    &b);
		len = b.len;
		for (i = 1; i + 1 < size; i += 2)
			b.p[data[i] % b.len] = data[i + 1];
		if (size % 2 == 0 && size > 1)
			len = data[size - 1] % (b.len + 1);
		decode(b.p, len);
		ward_buf_free(&b);
	}
	ward_errclear();
	return 0;
}
