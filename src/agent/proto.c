/*
 * Agent protocol messages (docs/protocol.md "Messages"): one CBOR map per
 * frame body, text keys, definite lengths only. The decoder checks every
 * field a message type needs and the limits in agent.h before it keeps
 * anything; byte strings stay in the frame (no copy), text is copied and
 * NUL-terminated.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ward/agent.h"
#include "ward/attest.h"
#include "ward/crypto.h"
#include "ward/transport.h"
#include "ward/util.h"

/* ------------------------------------------------------------------ */
/* Types and keys                                                     */

static const char *const type_names[WARD_MSG_TYPE_COUNT] = {
    [WARD_MSG_HELLO] = "hello",
    [WARD_MSG_ATTEST] = "attest",
    [WARD_MSG_STAT] = "stat",
    [WARD_MSG_LIST] = "list",
    [WARD_MSG_READ] = "read",
    [WARD_MSG_WRITE] = "write",
    [WARD_MSG_CREATE] = "create",
    [WARD_MSG_TRUNCATE] = "truncate",
    [WARD_MSG_UNLINK] = "unlink",
    [WARD_MSG_MKDIR] = "mkdir",
    [WARD_MSG_RMDIR] = "rmdir",
    [WARD_MSG_RENAME] = "rename",
    [WARD_MSG_CHMOD] = "chmod",
    [WARD_MSG_UTIMENS] = "utimens",
    [WARD_MSG_STATFS] = "statfs",
    [WARD_MSG_PUT] = "put",
    [WARD_MSG_GET] = "get",
    [WARD_MSG_EXEC] = "exec",
    [WARD_MSG_CANCEL] = "cancel",
    [WARD_MSG_INFER] = "infer",
    [WARD_MSG_DATA] = "data",
    [WARD_MSG_END] = "end",
    [WARD_MSG_OK] = "ok",
    [WARD_MSG_ERR] = "err",
    [WARD_MSG_OUT] = "out",
    [WARD_MSG_EXIT] = "exit",
};

const char *
ward_msg_type_name(enum ward_msg_type t)
{
	if ((int)t <= 0 || t >= WARD_MSG_TYPE_COUNT)
		return NULL;
	return type_names[t];
}

/* Every key a message may carry; a bit each in the masks below. */
enum key {
	K_T,
	K_ID,
	K_V,
	K_SW,
	K_MAX,
	K_P,
	K_TO,
	K_APP,
	K_OFF,
	K_LEN,
	K_SIZE,
	K_MODE,
	K_EXCL,
	K_AT,
	K_MT,
	K_D,
	K_NONCE,
	K_UD,
	K_PK,
	K_DOC,
	K_ARGV,
	K_ENV,
	K_KEYS,
	K_CTX,
	K_CRED,
	K_REGION,
	K_ENDPOINT,
	K_TARGET,
	K_FD,
	K_STATUS,
	K_SIG,
	K_KR,
	K_CODE,
	K_MSG,
	K_ST,
	K_ENTS,
	K_MORE,
	K_FS,
	K_FMT,
	K_RCPT,
	K_MH,
	K_COUNT
};

static const char *const key_names[K_COUNT] = {
    [K_T] = "t",
    [K_ID] = "id",
    [K_V] = "v",
    [K_SW] = "sw",
    [K_MAX] = "max",
    [K_P] = "p",
    [K_TO] = "to",
    [K_APP] = "app",
    [K_OFF] = "off",
    [K_LEN] = "len",
    [K_SIZE] = "size",
    [K_MODE] = "mode",
    [K_EXCL] = "excl",
    [K_AT] = "at",
    [K_MT] = "mt",
    [K_D] = "d",
    [K_NONCE] = "nonce",
    [K_UD] = "ud",
    [K_PK] = "pk",
    [K_DOC] = "doc",
    [K_ARGV] = "argv",
    [K_ENV] = "env",
    [K_KEYS] = "keys",
    [K_CTX] = "ctx",
    [K_CRED] = "cred",
    [K_REGION] = "region",
    [K_ENDPOINT] = "endpoint",
    [K_TARGET] = "target",
    [K_FD] = "fd",
    [K_STATUS] = "status",
    [K_SIG] = "sig",
    [K_KR] = "kr",
    [K_CODE] = "code",
    [K_MSG] = "msg",
    [K_ST] = "st",
    [K_ENTS] = "ents",
    [K_MORE] = "more",
    [K_FS] = "fs",
    [K_FMT] = "fmt",
    [K_RCPT] = "rcpt",
    [K_MH] = "mh",
};

#define B(k) (UINT64_C(1) << (k))

/* Per type: keys that must be present, and keys that may be. "t" and
 * "id" are always required. */
struct rule {
	uint64_t need, may;
};
static const struct rule rules[WARD_MSG_TYPE_COUNT] = {
    [WARD_MSG_HELLO] = {B(K_V), B(K_SW) | B(K_MAX)},
    [WARD_MSG_ATTEST] = {0, B(K_NONCE) | B(K_UD) | B(K_PK)},
    [WARD_MSG_STAT] = {B(K_P), 0},
    [WARD_MSG_LIST] = {B(K_P), B(K_OFF) | B(K_LEN)},
    [WARD_MSG_READ] = {B(K_P) | B(K_OFF) | B(K_LEN), 0},
    [WARD_MSG_WRITE] = {B(K_P) | B(K_OFF) | B(K_D), 0},
    [WARD_MSG_CREATE] = {B(K_P) | B(K_MODE), B(K_EXCL)},
    [WARD_MSG_TRUNCATE] = {B(K_P) | B(K_SIZE), 0},
    [WARD_MSG_UNLINK] = {B(K_P), 0},
    [WARD_MSG_MKDIR] = {B(K_P) | B(K_MODE), 0},
    [WARD_MSG_RMDIR] = {B(K_P), 0},
    [WARD_MSG_RENAME] = {B(K_P) | B(K_TO), B(K_EXCL)},
    [WARD_MSG_CHMOD] = {B(K_P) | B(K_MODE), 0},
    [WARD_MSG_UTIMENS] = {B(K_P), B(K_AT) | B(K_MT)},
    [WARD_MSG_STATFS] = {0, 0},
    [WARD_MSG_PUT] = {B(K_P) | B(K_MODE), B(K_SIZE)},
    [WARD_MSG_GET] = {B(K_P), 0},
    [WARD_MSG_EXEC] = {B(K_APP) | B(K_ARGV),
        B(K_ENV) | B(K_KEYS) | B(K_CTX) | B(K_CRED) | B(K_REGION) |
            B(K_ENDPOINT)},
    [WARD_MSG_CANCEL] = {B(K_TARGET), 0},
    [WARD_MSG_INFER] = {B(K_P),
        B(K_FMT) | B(K_RCPT) | B(K_NONCE) | B(K_SIZE) | B(K_KEYS) | B(K_CRED) |
            B(K_REGION) | B(K_ENDPOINT)},
    [WARD_MSG_DATA] = {B(K_D), 0},
    [WARD_MSG_END] = {0, 0},
    [WARD_MSG_OK] = {0,
        B(K_SIZE) | B(K_D) | B(K_DOC) | B(K_ST) | B(K_ENTS) | B(K_MORE) |
            B(K_FS) | B(K_MH)},
    [WARD_MSG_ERR] = {B(K_CODE) | B(K_MSG), 0},
    [WARD_MSG_OUT] = {B(K_FD) | B(K_D), 0},
    [WARD_MSG_EXIT] = {0, B(K_STATUS) | B(K_SIG) | B(K_KR)},
};

/* ------------------------------------------------------------------ */
/* Decoding                                                           */

static int
bad(const char *field, const char *why)
{
	return ward_errf(WARD_EFORMAT, "agent message: %s: %s", field, why);
}

static int
next_of(struct ward_cbor_reader *r, const char *field, enum ward_cbor_type t,
    struct ward_cbor_item *it)
{
	int e;

	if ((e = ward_cbor_next(r, it)) != 0)
		return e;
	if (it->type != t)
		return bad(field,
		    t == WARD_CBOR_UINT        ? "not an unsigned integer"
		        : t == WARD_CBOR_BYTES ? "not a byte string"
		        : t == WARD_CBOR_TEXT  ? "not a text string"
		        : t == WARD_CBOR_ARRAY ? "not an array"
		        : t == WARD_CBOR_MAP   ? "not a map"
		                               : "of the wrong type");
	if (it->indefinite)
		return bad(
		    field, "indefinite length (only definite is allowed)");
	return 0;
}

static int
get_uint(
    struct ward_cbor_reader *r, const char *field, uint64_t max, uint64_t *out)
{
	struct ward_cbor_item it;
	int e;

	if ((e = next_of(r, field, WARD_CBOR_UINT, &it)) != 0)
		return e;
	if (it.value > max)
		return bad(field, "out of range");
	*out = it.value;
	return 0;
}

static int
get_int(struct ward_cbor_reader *r, const char *field, int64_t *out)
{
	struct ward_cbor_item it;
	int e;

	if ((e = ward_cbor_next(r, &it)) != 0)
		return e;
	if (it.type == WARD_CBOR_UINT && it.value <= (uint64_t)INT64_MAX)
		*out = (int64_t)it.value;
	else if (it.type == WARD_CBOR_NEGINT && it.value <= (uint64_t)INT64_MAX)
		*out = -1 - (int64_t)it.value;
	else
		return bad(field, "not an integer in range");
	return 0;
}

static int
get_bool(struct ward_cbor_reader *r, const char *field, bool *out)
{
	return ward_cbor_read_bool(r, field, out);
}

static int
get_bytes(struct ward_cbor_reader *r, const char *field, size_t max,
    const uint8_t **p, size_t *n)
{
	struct ward_cbor_item it;
	int e;

	if ((e = next_of(r, field, WARD_CBOR_BYTES, &it)) != 0)
		return e;
	if (it.str.len > max)
		return bad(field, "too long");
	*p = it.str.p;
	*n = it.str.len;
	return 0;
}

/* A text string as a NUL-terminated copy; empty allowed only if
 * empty_ok; NUL bytes never. */
static int
get_text(struct ward_cbor_reader *r, const char *field, size_t max,
    bool empty_ok, char **out)
{
	struct ward_cbor_item it;
	char *s;
	int e;

	if ((e = next_of(r, field, WARD_CBOR_TEXT, &it)) != 0)
		return e;
	if (it.str.len > max)
		return bad(field, "too long");
	if (it.str.len == 0 && !empty_ok)
		return bad(field, "empty");
	if (it.str.len > 0 && memchr(it.str.p, '\0', it.str.len) != NULL)
		return bad(field, "contains a NUL byte");
	if ((s = malloc(it.str.len + 1)) == NULL)
		return ward_enomem();
	if (it.str.len > 0)
		memcpy(s, it.str.p, it.str.len);
	s[it.str.len] = '\0';
	free(*out); /* never set twice: duplicates are refused earlier */
	*out = s;
	return 0;
}

/* A definite container's count, refused when it cannot fit in what is
 * left of the input (each entry takes at least one byte) or is over max. */
static int
get_count(struct ward_cbor_reader *r, const char *field, enum ward_cbor_type t,
    size_t max, size_t *out)
{
	struct ward_cbor_item it;
	int e;

	if ((e = next_of(r, field, t, &it)) != 0)
		return e;
	if (it.value > max)
		return bad(field, "too many entries");
	if (it.value > r->len - r->pos)
		return bad(field, "more entries than bytes left");
	*out = (size_t)it.value;
	return 0;
}

static int
get_text_array(
    struct ward_cbor_reader *r, const char *field, char ***out, size_t *count)
{
	size_t n, i;
	char **v;
	int e;

	if ((e = get_count(r, field, WARD_CBOR_ARRAY, WARD_MSG_ARGS_MAX, &n)) !=
	    0)
		return e;
	if ((v = calloc(n + 1, sizeof(*v))) == NULL)
		return ward_enomem();
	*out = v;
	*count = 0;
	for (i = 0; i < n; i++) {
		if ((e = get_text(r, field, WARD_MSG_ARG_MAX, true, &v[i])) !=
		    0)
			return e;
		*count = i + 1;
	}
	return 0;
}

static int
get_stat(
    struct ward_cbor_reader *r, const char *field, struct ward_msg_stat *st)
{
	size_t n, i;
	char *k = NULL;
	uint64_t u = 0;
	int e;

	if ((e = get_count(r, field, WARD_CBOR_MAP, 16, &n)) != 0)
		return e;
	memset(st, 0, sizeof(*st));
	for (i = 0; i < n; i++) {
		if ((e = get_text(r, field, 16, false, &k)) != 0)
			goto out;
		if (strcmp(k, "mode") == 0) {
			if ((e = get_uint(r, "st.mode", UINT32_MAX, &u)) != 0)
				goto out;
			st->mode = (uint32_t)u;
		} else if (strcmp(k, "size") == 0)
			e = get_uint(r, "st.size", UINT64_MAX, &st->size);
		else if (strcmp(k, "nlink") == 0)
			e = get_uint(r, "st.nlink", UINT64_MAX, &st->nlink);
		else if (strcmp(k, "at") == 0)
			e = get_int(r, "st.at", &st->atime_ns);
		else if (strcmp(k, "mt") == 0)
			e = get_int(r, "st.mt", &st->mtime_ns);
		else if (strcmp(k, "ct") == 0)
			e = get_int(r, "st.ct", &st->ctime_ns);
		else
			e = ward_cbor_skip(r);
		if (e != 0)
			goto out;
	}
out:
	free(k);
	return e;
}

static int
get_statfs(
    struct ward_cbor_reader *r, const char *field, struct ward_msg_statfs *fs)
{
	static const char *const names[] = {
	    "bsize", "blocks", "bfree", "files", "ffree", "namemax"};
	uint64_t *dst[] = {&fs->bsize, &fs->blocks, &fs->bfree, &fs->files,
	    &fs->ffree, &fs->namemax};
	size_t n, i, j;
	char *k = NULL;
	int e;

	if ((e = get_count(r, field, WARD_CBOR_MAP, 16, &n)) != 0)
		return e;
	memset(fs, 0, sizeof(*fs));
	for (i = 0; i < n; i++) {
		if ((e = get_text(r, field, 16, false, &k)) != 0)
			goto out;
		for (j = 0; j < sizeof(names) / sizeof(names[0]); j++)
			if (strcmp(k, names[j]) == 0)
				break;
		if (j < sizeof(names) / sizeof(names[0]))
			e = get_uint(r, "fs", UINT64_MAX, dst[j]);
		else
			e = ward_cbor_skip(r);
		if (e != 0)
			goto out;
	}
out:
	free(k);
	return e;
}

static int
get_entries(struct ward_cbor_reader *r, struct ward_msg *m)
{
	size_t n, i, pair;
	int e;

	if ((e = get_count(
	         r, "ents", WARD_CBOR_ARRAY, WARD_MSG_LIST_MAX, &n)) != 0)
		return e;
	if ((m->entries = calloc(n + 1, sizeof(*m->entries))) == NULL)
		return ward_enomem();
	for (i = 0; i < n; i++) {
		if ((e = get_count(r, "ents", WARD_CBOR_ARRAY, 2, &pair)) != 0)
			return e;
		if (pair != 2)
			return bad("ents", "an entry is not [name, st]");
		m->entryc = i + 1;
		if ((e = get_text(r, "ents.name", WARD_MSG_NAME_MAX, false,
		         &m->entries[i].name)) != 0 ||
		    (e = get_stat(r, "ents.st", &m->entries[i].st)) != 0)
			return e;
	}
	return 0;
}

static int
get_cred(struct ward_cbor_reader *r, struct ward_msg *m)
{
	size_t n, i;
	char *k = NULL;
	int e;

	if ((e = get_count(r, "cred", WARD_CBOR_MAP, 8, &n)) != 0)
		return e;
	m->has_cred = true;
	for (i = 0; i < n; i++) {
		if ((e = get_text(r, "cred", 16, false, &k)) != 0)
			goto out;
		if (strcmp(k, "akid") == 0 && m->cred.access_key_id == NULL)
			e = get_text(r, "cred.akid", WARD_MSG_TEXT_MAX, false,
			    &m->cred.access_key_id);
		else if (strcmp(k, "secret") == 0 &&
		    m->cred.secret_access_key == NULL)
			e = get_text(r, "cred.secret", WARD_MSG_TEXT_MAX, false,
			    &m->cred.secret_access_key);
		else if (strcmp(k, "token") == 0 &&
		    m->cred.session_token == NULL)
			e = get_text(r, "cred.token", WARD_MSG_TEXT_MAX, false,
			    &m->cred.session_token);
		else if (strcmp(k, "akid") == 0 || strcmp(k, "secret") == 0 ||
		    strcmp(k, "token") == 0)
			e = bad("cred", "a key appears twice");
		else
			e = ward_cbor_skip(r);
		if (e != 0)
			goto out;
	}
	if (m->cred.access_key_id == NULL || m->cred.secret_access_key == NULL)
		e = bad("cred", "needs akid and secret");
out:
	free(k);
	return e;
}

static enum key
key_lookup(const uint8_t *p, size_t n)
{
	int k;

	for (k = 0; k < K_COUNT; k++)
		if (strlen(key_names[k]) == n &&
		    memcmp(key_names[k], p, n) == 0)
			return (enum key)k;
	return K_COUNT;
}

static int
get_field(struct ward_cbor_reader *r, enum key k, struct ward_msg *m)
{
	uint64_t u = 0;
	int e;

	switch (k) {
	case K_T:
	case K_COUNT:
		return bad("t", "internal: not a field");
	case K_ID:
		return get_uint(r, "id", UINT64_MAX, &m->id);
	case K_V:
		return get_uint(r, "v", UINT32_MAX, &m->version);
	case K_SW:
		return get_text(r, "sw", WARD_MSG_TEXT_MAX, true, &m->software);
	case K_MAX:
		return get_uint(r, "max", UINT32_MAX, &m->max_frame);
	case K_P:
		return get_text(r, "p", WARD_MSG_PATH_MAX, true, &m->path);
	case K_TO:
		return get_text(r, "to", WARD_MSG_PATH_MAX, false, &m->to);
	case K_APP:
		return get_text(r, "app", WARD_MSG_PATH_MAX, false, &m->app);
	case K_OFF:
		return get_uint(r, "off", INT64_MAX, &m->offset);
	case K_LEN:
		return get_uint(r, "len", UINT32_MAX, &m->length);
	case K_SIZE:
		m->has_size = true;
		return get_uint(r, "size", INT64_MAX, &m->size);
	case K_MODE:
		if ((e = get_uint(r, "mode", 07777, &u)) != 0)
			return e;
		m->mode = (uint32_t)u;
		return 0;
	case K_EXCL:
		return get_bool(r, "excl", &m->exclusive);
	case K_AT:
		m->has_atime = true;
		return get_int(r, "at", &m->atime_ns);
	case K_MT:
		m->has_mtime = true;
		return get_int(r, "mt", &m->mtime_ns);
	case K_D:
		return get_bytes(
		    r, "d", WARD_FRAME_MAX, &m->data, &m->data_len);
	case K_NONCE:
		return get_bytes(r, "nonce", WARD_MSG_ATTEST_FIELD_MAX,
		    &m->nonce, &m->nonce_len);
	case K_UD:
		return get_bytes(r, "ud", WARD_MSG_ATTEST_FIELD_MAX,
		    &m->user_data, &m->user_data_len);
	case K_PK:
		return get_bytes(r, "pk", WARD_MSG_ATTEST_FIELD_MAX,
		    &m->public_key, &m->public_key_len);
	case K_DOC:
		return get_bytes(
		    r, "doc", WARD_MSG_DOC_MAX, &m->document, &m->document_len);
	case K_ARGV:
		return get_text_array(r, "argv", &m->argv, &m->argc);
	case K_ENV:
		return get_text_array(r, "env", &m->env, &m->envc);
	case K_KEYS:
		return get_text_array(r, "keys", &m->key_ids, &m->key_idc);
	case K_CTX:
		return get_text_array(r, "ctx", &m->context, &m->contextc);
	case K_CRED:
		return get_cred(r, m);
	case K_REGION:
		return get_text(
		    r, "region", WARD_MSG_TEXT_MAX, false, &m->region);
	case K_ENDPOINT:
		return get_text(
		    r, "endpoint", WARD_MSG_TEXT_MAX, false, &m->endpoint);
	case K_TARGET:
		return get_uint(r, "target", UINT64_MAX, &m->target);
	case K_FD:
		if ((e = get_uint(r, "fd", 2, &u)) != 0)
			return e;
		if (u < 1)
			return bad("fd", "not 1 or 2");
		m->fd = (uint32_t)u;
		return 0;
	case K_STATUS:
		m->has_status = true;
		return get_int(r, "status", &m->status);
	case K_SIG:
		m->has_signal = true;
		if ((e = get_uint(r, "sig", 255, &u)) != 0)
			return e;
		m->signal = (uint32_t)u;
		return 0;
	case K_KR:
		m->has_key_ns = true;
		return get_uint(r, "kr", UINT64_MAX, &m->key_ns);
	case K_CODE:
		return get_text(r, "code", 64, false, &m->code);
	case K_MSG:
		return get_text(r, "msg", WARD_MSG_TEXT_MAX, true, &m->message);
	case K_ST:
		m->has_st = true;
		return get_stat(r, "st", &m->st);
	case K_ENTS:
		return get_entries(r, m);
	case K_MORE:
		return get_bool(r, "more", &m->more);
	case K_FS:
		m->has_fs = true;
		return get_statfs(r, "fs", &m->fs);
	case K_FMT:
		return get_text(r, "fmt", 16, false, &m->format);
	case K_RCPT:
		return get_bool(r, "rcpt", &m->receipt);
	case K_MH:
		return get_bytes(
		    r, "mh", 64, &m->model_hash, &m->model_hash_len);
	}
	return bad("?", "internal: unknown key");
}

static int
get_type(struct ward_cbor_reader *r, enum ward_msg_type *t)
{
	struct ward_cbor_item it;
	int e, i;

	if ((e = next_of(r, "t", WARD_CBOR_TEXT, &it)) != 0)
		return e;
	for (i = 1; i < WARD_MSG_TYPE_COUNT; i++)
		if (strlen(type_names[i]) == it.str.len &&
		    memcmp(type_names[i], it.str.p, it.str.len) == 0) {
			*t = (enum ward_msg_type)i;
			return 0;
		}
	return ward_errf(WARD_EUNSUPPORTED, "agent message: unknown type %s",
	    ward_quote(it.str.p, it.str.len));
}

/*
 * Two passes: the first finds "t" (it may come anywhere in the map) and
 * refuses duplicate keys; the second reads the fields the type allows.
 */
int
ward_msg_decode(const uint8_t *p, size_t n, struct ward_msg *out)
{
	struct ward_cbor_reader r;
	struct ward_cbor_item it;
	size_t count, i, body;
	uint64_t seen = 0, allowed;
	enum ward_msg_type t = WARD_MSG_NONE;
	enum key k;
	int e, j;

	memset(out, 0, sizeof(*out));
	ward_cbor_reader_init(&r, p, n, "agent message");
	if ((e = get_count(
	         &r, "message", WARD_CBOR_MAP, K_COUNT + 32, &count)) != 0)
		goto out;
	body = r.pos;
	for (i = 0; i < count; i++) {
		if ((e = next_of(&r, "key", WARD_CBOR_TEXT, &it)) != 0)
			goto out;
		k = key_lookup(it.str.p, it.str.len);
		if (k != K_COUNT) {
			if (seen & B(k)) {
				e = bad(key_names[k], "appears twice");
				goto out;
			}
			seen |= B(k);
		}
		if (k == K_T) {
			if ((e = get_type(&r, &t)) != 0)
				goto out;
		} else if ((e = ward_cbor_skip(&r)) != 0)
			goto out;
	}
	if ((e = ward_cbor_end(&r)) != 0)
		goto out;
	if (t == WARD_MSG_NONE) {
		e = bad("t", "missing");
		goto out;
	}
	if (!(seen & B(K_ID))) {
		e = bad("id", "missing");
		goto out;
	}
	for (j = 0; j < K_COUNT; j++)
		if ((rules[t].need & B(j)) && !(seen & B(j))) {
			e = ward_errf(WARD_EFORMAT,
			    "agent message: %s needs \"%s\"", type_names[t],
			    key_names[j]);
			goto out;
		}
	out->type = t;
	allowed = rules[t].need | rules[t].may | B(K_ID);
	r.pos = body;
	for (i = 0; i < count; i++) {
		if ((e = next_of(&r, "key", WARD_CBOR_TEXT, &it)) != 0)
			goto out;
		k = key_lookup(it.str.p, it.str.len);
		if (k == K_COUNT || k == K_T || !(allowed & B(k))) {
			/* unknown, or not this type's: ignored */
			if ((e = ward_cbor_skip(&r)) != 0)
				goto out;
			continue;
		}
		if ((e = get_field(&r, k, out)) != 0)
			goto out;
	}
	if (t == WARD_MSG_EXIT && out->has_status == out->has_signal) {
		e = bad("exit", "needs exactly one of status and sig");
		goto out;
	}
	if (t == WARD_MSG_EXEC && out->argc == 0) {
		e = bad("argv", "empty");
		goto out;
	}
	if (t == WARD_MSG_LIST && out->length > WARD_MSG_LIST_MAX) {
		e = bad("len", "more entries than a reply may hold");
		goto out;
	}
out:
	if (e != 0) {
		ward_msg_free(out);
		return e < 0 ? e : -WARD_EFORMAT;
	}
	return 0;
}

static void
free_array(char **v, size_t n, bool secret)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; i < n; i++) {
		if (secret && v[i] != NULL)
			ward_cleanse(v[i], strlen(v[i]));
		free(v[i]);
	}
	free(v);
}

static void
free_secret(char *s)
{
	if (s != NULL) {
		ward_cleanse(s, strlen(s));
		free(s);
	}
}

void
ward_msg_free(struct ward_msg *m)
{
	size_t i;

	free(m->software);
	free(m->path);
	free(m->to);
	free(m->app);
	free_array(m->argv, m->argc, false);
	/* the environment may carry secrets of the app's */
	free_array(m->env, m->envc, true);
	free_array(m->key_ids, m->key_idc, false);
	free_array(m->context, m->contextc, false);
	free(m->cred.access_key_id);
	free_secret(m->cred.secret_access_key);
	free_secret(m->cred.session_token);
	free(m->region);
	free(m->format);
	free(m->endpoint);
	free(m->code);
	free(m->message);
	if (m->entries != NULL)
		for (i = 0; i < m->entryc; i++)
			free(m->entries[i].name);
	free(m->entries);
	memset(m, 0, sizeof(*m));
}

/* ------------------------------------------------------------------ */
/* Encoding                                                           */

struct enc {
	struct ward_buf *b;
	size_t count_at; /* offset of the map head */
	unsigned count;
	int e;
};

static void
key(struct enc *x, enum key k)
{
	if (x->e == 0)
		x->e = ward_cbor_put_textz(x->b, key_names[k]);
	x->count++;
}

static void
put_uint(struct enc *x, enum key k, uint64_t v)
{
	key(x, k);
	if (x->e == 0)
		x->e = ward_cbor_put_uint(x->b, v);
}

static int
cbor_int(struct ward_buf *b, int64_t v)
{
	if (v >= 0)
		return ward_cbor_put_uint(b, (uint64_t)v);
	return ward_cbor_put_negint(b, (uint64_t)(-(v + 1)));
}

static void
put_int(struct enc *x, enum key k, int64_t v)
{
	key(x, k);
	if (x->e == 0)
		x->e = cbor_int(x->b, v);
}

static void
put_bool(struct enc *x, enum key k, bool v)
{
	key(x, k);
	if (x->e == 0)
		x->e = ward_cbor_put_bool(x->b, v);
}

static void
put_text(struct enc *x, enum key k, const char *s)
{
	if (s == NULL)
		return;
	key(x, k);
	if (x->e == 0)
		x->e = ward_cbor_put_textz(x->b, s);
}

static void
put_bytes(struct enc *x, enum key k, const uint8_t *p, size_t n, bool always)
{
	if (p == NULL && !always)
		return;
	key(x, k);
	if (x->e == 0)
		x->e = ward_cbor_put_bytes(x->b, p, n);
}

static void
put_array(struct enc *x, enum key k, char *const *v, size_t n, bool always)
{
	size_t i;

	if (n == 0 && !always)
		return;
	key(x, k);
	if (x->e == 0)
		x->e = ward_cbor_put_array(x->b, n);
	for (i = 0; i < n && x->e == 0; i++)
		x->e = ward_cbor_put_textz(x->b, v[i]);
}

static int
enc_stat(struct ward_buf *b, const struct ward_msg_stat *st)
{
	int e;

	if ((e = ward_cbor_put_map(b, 6)) != 0 ||
	    (e = ward_cbor_put_textz(b, "mode")) != 0 ||
	    (e = ward_cbor_put_uint(b, st->mode)) != 0 ||
	    (e = ward_cbor_put_textz(b, "size")) != 0 ||
	    (e = ward_cbor_put_uint(b, st->size)) != 0 ||
	    (e = ward_cbor_put_textz(b, "nlink")) != 0 ||
	    (e = ward_cbor_put_uint(b, st->nlink)) != 0 ||
	    (e = ward_cbor_put_textz(b, "at")) != 0 ||
	    (e = cbor_int(b, st->atime_ns)) != 0 ||
	    (e = ward_cbor_put_textz(b, "mt")) != 0 ||
	    (e = cbor_int(b, st->mtime_ns)) != 0 ||
	    (e = ward_cbor_put_textz(b, "ct")) != 0)
		return e;
	return cbor_int(b, st->ctime_ns);
}

static void
put_stat(struct enc *x, const struct ward_msg_stat *st)
{
	key(x, K_ST);
	if (x->e == 0)
		x->e = enc_stat(x->b, st);
}

static void
put_entries(struct enc *x, const struct ward_msg *m)
{
	size_t i;

	key(x, K_ENTS);
	if (x->e == 0)
		x->e = ward_cbor_put_array(x->b, m->entryc);
	for (i = 0; i < m->entryc && x->e == 0; i++)
		if ((x->e = ward_cbor_put_array(x->b, 2)) == 0 &&
		    (x->e = ward_cbor_put_textz(x->b, m->entries[i].name)) == 0)
			x->e = enc_stat(x->b, &m->entries[i].st);
}

static void
put_statfs(struct enc *x, const struct ward_msg_statfs *fs)
{
	static const char *const names[] = {
	    "bsize", "blocks", "bfree", "files", "ffree", "namemax"};
	const uint64_t v[] = {fs->bsize, fs->blocks, fs->bfree, fs->files,
	    fs->ffree, fs->namemax};
	size_t i;

	key(x, K_FS);
	if (x->e == 0)
		x->e = ward_cbor_put_map(x->b, 6);
	for (i = 0; i < 6 && x->e == 0; i++)
		if ((x->e = ward_cbor_put_textz(x->b, names[i])) == 0)
			x->e = ward_cbor_put_uint(x->b, v[i]);
}

static void
put_cred(struct enc *x, const struct ward_msg_cred *c)
{
	size_t n = c->session_token != NULL ? 3 : 2;

	key(x, K_CRED);
	if (x->e == 0)
		x->e = ward_cbor_put_map(x->b, n);
	if (x->e == 0 && (x->e = ward_cbor_put_textz(x->b, "akid")) == 0)
		x->e = ward_cbor_put_textz(x->b, c->access_key_id);
	if (x->e == 0 && (x->e = ward_cbor_put_textz(x->b, "secret")) == 0)
		x->e = ward_cbor_put_textz(x->b, c->secret_access_key);
	if (x->e == 0 && c->session_token != NULL &&
	    (x->e = ward_cbor_put_textz(x->b, "token")) == 0)
		x->e = ward_cbor_put_textz(x->b, c->session_token);
}

/* The fields of m's type, in the order of docs/protocol.md's table. */
static void
enc_fields(struct enc *x, const struct ward_msg *m)
{
	switch (m->type) {
	case WARD_MSG_HELLO:
		put_uint(x, K_V, m->version);
		put_text(x, K_SW, m->software);
		if (m->max_frame != 0)
			put_uint(x, K_MAX, m->max_frame);
		break;
	case WARD_MSG_ATTEST:
		put_bytes(x, K_NONCE, m->nonce, m->nonce_len, false);
		put_bytes(x, K_UD, m->user_data, m->user_data_len, false);
		put_bytes(x, K_PK, m->public_key, m->public_key_len, false);
		break;
	case WARD_MSG_STAT:
	case WARD_MSG_UNLINK:
	case WARD_MSG_RMDIR:
	case WARD_MSG_GET:
		put_text(x, K_P, m->path != NULL ? m->path : "");
		break;
	case WARD_MSG_LIST:
		put_text(x, K_P, m->path != NULL ? m->path : "");
		if (m->offset != 0)
			put_uint(x, K_OFF, m->offset);
		if (m->length != 0)
			put_uint(x, K_LEN, m->length);
		break;
	case WARD_MSG_READ:
		put_text(x, K_P, m->path != NULL ? m->path : "");
		put_uint(x, K_OFF, m->offset);
		put_uint(x, K_LEN, m->length);
		break;
	case WARD_MSG_WRITE:
		put_text(x, K_P, m->path != NULL ? m->path : "");
		put_uint(x, K_OFF, m->offset);
		put_bytes(x, K_D, m->data, m->data_len, true);
		break;
	case WARD_MSG_CREATE:
	case WARD_MSG_MKDIR:
	case WARD_MSG_CHMOD:
		put_text(x, K_P, m->path != NULL ? m->path : "");
		put_uint(x, K_MODE, m->mode);
		if (m->type == WARD_MSG_CREATE && m->exclusive)
			put_bool(x, K_EXCL, true);
		break;
	case WARD_MSG_TRUNCATE:
		put_text(x, K_P, m->path != NULL ? m->path : "");
		put_uint(x, K_SIZE, m->size);
		break;
	case WARD_MSG_RENAME:
		put_text(x, K_P, m->path != NULL ? m->path : "");
		put_text(x, K_TO, m->to != NULL ? m->to : "");
		if (m->exclusive)
			put_bool(x, K_EXCL, true);
		break;
	case WARD_MSG_UTIMENS:
		put_text(x, K_P, m->path != NULL ? m->path : "");
		if (m->has_atime)
			put_int(x, K_AT, m->atime_ns);
		if (m->has_mtime)
			put_int(x, K_MT, m->mtime_ns);
		break;
	case WARD_MSG_PUT:
		put_text(x, K_P, m->path != NULL ? m->path : "");
		put_uint(x, K_MODE, m->mode);
		if (m->has_size)
			put_uint(x, K_SIZE, m->size);
		break;
	case WARD_MSG_EXEC:
		put_text(x, K_APP, m->app != NULL ? m->app : "");
		put_array(x, K_ARGV, m->argv, m->argc, true);
		put_array(x, K_ENV, m->env, m->envc, false);
		put_array(x, K_KEYS, m->key_ids, m->key_idc, false);
		put_array(x, K_CTX, m->context, m->contextc, false);
		if (m->has_cred)
			put_cred(x, &m->cred);
		put_text(x, K_REGION, m->region);
		put_text(x, K_ENDPOINT, m->endpoint);
		break;
	case WARD_MSG_CANCEL:
		put_uint(x, K_TARGET, m->target);
		break;
	case WARD_MSG_INFER:
		put_text(x, K_P, m->path != NULL ? m->path : "");
		put_text(x, K_FMT, m->format);
		if (m->receipt)
			put_bool(x, K_RCPT, true);
		put_bytes(x, K_NONCE, m->nonce, m->nonce_len, false);
		if (m->has_size)
			put_uint(x, K_SIZE, m->size);
		put_array(x, K_KEYS, m->key_ids, m->key_idc, false);
		if (m->has_cred)
			put_cred(x, &m->cred);
		put_text(x, K_REGION, m->region);
		put_text(x, K_ENDPOINT, m->endpoint);
		break;
	case WARD_MSG_DATA:
		put_bytes(x, K_D, m->data, m->data_len, true);
		break;
	case WARD_MSG_OK:
		if (m->has_size)
			put_uint(x, K_SIZE, m->size);
		put_bytes(x, K_D, m->data, m->data_len, false);
		put_bytes(x, K_DOC, m->document, m->document_len, false);
		put_bytes(x, K_MH, m->model_hash, m->model_hash_len, false);
		if (m->has_st)
			put_stat(x, &m->st);
		if (m->entries != NULL) {
			put_entries(x, m);
			put_bool(x, K_MORE, m->more);
		}
		if (m->has_fs)
			put_statfs(x, &m->fs);
		break;
	case WARD_MSG_ERR:
		put_text(x, K_CODE, m->code != NULL ? m->code : "Internal");
		put_text(x, K_MSG, m->message != NULL ? m->message : "");
		break;
	case WARD_MSG_OUT:
		put_uint(x, K_FD, m->fd);
		put_bytes(x, K_D, m->data, m->data_len, true);
		break;
	case WARD_MSG_EXIT:
		if (m->has_signal)
			put_uint(x, K_SIG, m->signal);
		else
			put_int(x, K_STATUS, m->status);
		if (m->has_key_ns)
			put_uint(x, K_KR, m->key_ns);
		break;
	case WARD_MSG_END:
	case WARD_MSG_STATFS:
	case WARD_MSG_NONE:
	case WARD_MSG_TYPE_COUNT:
		break;
	}
}

int
ward_msg_encode(const struct ward_msg *m, struct ward_buf *out)
{
	struct enc x = {out, out->len, 0, 0};
	const char *name = ward_msg_type_name(m->type);

	if (name == NULL)
		return ward_errf(
		    WARD_EINTERNAL, "agent message: no type to encode");
	/* a map of fewer than 24 pairs has a one-byte head, patched below */
	if ((x.e = ward_buf_put_u8(out, 0xa0)) != 0)
		return x.e;
	put_text(&x, K_T, name);
	put_uint(&x, K_ID, m->id);
	enc_fields(&x, m);
	if (x.e != 0)
		return x.e;
	if (x.count >= 24)
		return ward_errf(
		    WARD_EINTERNAL, "agent message: %u fields", x.count);
	out->p[x.count_at] = (uint8_t)(0xa0 | x.count);
	return 0;
}

/* The CBOR head of a byte string of n bytes (RFC 8949 §3.1, major 2). */
static int
bytes_head(struct ward_buf *b, size_t n)
{
	uint8_t h[9];
	size_t k;

	if (n < 24) {
		h[0] = (uint8_t)(0x40 | n);
		k = 1;
	} else if (n <= UINT8_MAX) {
		h[0] = 0x58;
		h[1] = (uint8_t)n;
		k = 2;
	} else if (n <= UINT16_MAX) {
		h[0] = 0x59;
		ward_store16(h + 1, (uint16_t)n);
		k = 3;
	} else if (n <= UINT32_MAX) {
		h[0] = 0x5a;
		ward_store32(h + 1, (uint32_t)n);
		k = 5;
	} else {
		h[0] = 0x5b;
		ward_store64(h + 1, (uint64_t)n);
		k = 9;
	}
	return ward_buf_append(b, h, k);
}

/*
 * "d" is the last key of every type that carries it (when OK carries no
 * other result), so the map is encoded with an empty byte string there,
 * whose head (0x40) is swapped for one announcing n bytes.
 */
int
ward_msg_encode_head(const struct ward_msg *m, size_t n, struct ward_buf *out)
{
	struct ward_msg head = *m;
	int r;

	head.data = (const uint8_t *)"";
	head.data_len = 0;
	if ((r = ward_msg_encode(&head, out)) != 0)
		return r;
	if (out->len == 0 || out->p[out->len - 1] != 0x40 ||
	    (m->type == WARD_MSG_OK &&
	        (m->document != NULL || m->has_st || m->entries != NULL ||
	            m->has_fs)))
		return ward_errf(WARD_EINTERNAL,
		    "agent message: the payload is not the last field of %s",
		    ward_msg_type_name(m->type));
	out->len--;
	return bytes_head(out, n);
}

/* ------------------------------------------------------------------ */
/* Error codes                                                        */

static const struct {
	const char *name;
	int err;
} errnos[] = {
    {"EPERM", EPERM},
    {"ENOENT", ENOENT},
    {"ESRCH", ESRCH},
    {"EIO", EIO},
    {"EBADF", EBADF},
    {"ENOMEM", ENOMEM},
    {"EACCES", EACCES},
    {"EBUSY", EBUSY},
    {"EEXIST", EEXIST},
    {"EXDEV", EXDEV},
    {"ENOTDIR", ENOTDIR},
    {"EISDIR", EISDIR},
    {"EINVAL", EINVAL},
    {"ENFILE", ENFILE},
    {"EMFILE", EMFILE},
    {"ETXTBSY", ETXTBSY},
    {"EFBIG", EFBIG},
    {"ENOSPC", ENOSPC},
    {"ESPIPE", ESPIPE},
    {"EROFS", EROFS},
    {"EMLINK", EMLINK},
    {"ERANGE", ERANGE},
    {"ENAMETOOLONG", ENAMETOOLONG},
    {"ENOTEMPTY", ENOTEMPTY},
    {"ELOOP", ELOOP},
    {"ENOTSUP", ENOTSUP},
    {"EOVERFLOW", EOVERFLOW},
    {"EDQUOT", EDQUOT},
};
#define NERRNOS (sizeof(errnos) / sizeof(errnos[0]))

int
ward_code_errno(const char *code)
{
	size_t i;

	for (i = 0; code != NULL && i < NERRNOS; i++)
		if (strcmp(code, errnos[i].name) == 0)
			return errnos[i].err;
	return EIO;
}

const char *
ward_errno_code(int err)
{
	size_t i;

	for (i = 0; i < NERRNOS; i++)
		if (errnos[i].err == err)
			return errnos[i].name;
	return "EIO";
}

const char *
ward_err_code(int r)
{
	switch (r < 0 ? -r : r) {
	case WARD_EUSAGE:
	case WARD_EFORMAT:
		return WARD_CODE_BAD_REQUEST;
	case WARD_EAUTH:
		return WARD_CODE_ACCESS_DENIED;
	case WARD_EKEY:
	case WARD_ECONTEXT:
		return WARD_CODE_DECRYPT;
	case WARD_EUNSUPPORTED:
		return WARD_CODE_UNSUPPORTED;
	case WARD_ELIMIT:
		return WARD_CODE_LIMIT;
	case WARD_EUNSAFE:
		return "EACCES";
	case WARD_EEXIST:
		return "EEXIST";
	case WARD_ENOMEM:
		return "ENOMEM";
	case WARD_EIO:
		return "EIO";
	case WARD_EINTR:
		return WARD_CODE_CANCELLED;
	default:
		return WARD_CODE_INTERNAL;
	}
}

int
ward_code_err(const char *code)
{
	static const struct {
		const char *code;
		int err;
	} map[] = {
	    {WARD_CODE_BAD_REQUEST, WARD_EFORMAT},
	    {WARD_CODE_UNSUPPORTED, WARD_EUNSUPPORTED},
	    {WARD_CODE_VERSION, WARD_EUNSUPPORTED},
	    {WARD_CODE_BUSY, WARD_ELIMIT},
	    {WARD_CODE_LIMIT, WARD_ELIMIT},
	    {WARD_CODE_ACCESS_DENIED, WARD_EAUTH},
	    {WARD_CODE_KMS, WARD_EIO},
	    {WARD_CODE_DECRYPT, WARD_EKEY},
	    {WARD_CODE_ATTEST, WARD_EAUTH},
	    {WARD_CODE_CANCELLED, WARD_EINTR},
	    {WARD_CODE_INTERNAL, WARD_EINTERNAL},
	    {WARD_CODE_BAD_INPUT, WARD_EFORMAT},
	    {WARD_CODE_BAD_MODEL, WARD_EFORMAT},
	    {"EEXIST", WARD_EEXIST},
	    {"ENOMEM", WARD_ENOMEM},
	    {"ENOSPC", WARD_ELIMIT},
	    {"EFBIG", WARD_ELIMIT},
	    {"EDQUOT", WARD_ELIMIT},
	};
	size_t i;

	for (i = 0; code != NULL && i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(code, map[i].code) == 0)
			return -map[i].err;
	return -WARD_EIO;
}

/* ------------------------------------------------------------------ */
/* Receipts                                                           */

int
ward_receipt_user_data(const uint8_t model[48], const uint8_t input[48],
    const uint8_t output[48], uint8_t ud[WARD_RECEIPT_UD_LEN])
{
	uint8_t m[WARD_RECEIPT_TAG_LEN + 3 * WARD_SHA384_LEN];

	memcpy(m, WARD_RECEIPT_TAG, WARD_RECEIPT_TAG_LEN);
	memcpy(m + WARD_RECEIPT_TAG_LEN, model, WARD_SHA384_LEN);
	memcpy(
	    m + WARD_RECEIPT_TAG_LEN + WARD_SHA384_LEN, input, WARD_SHA384_LEN);
	memcpy(m + WARD_RECEIPT_TAG_LEN + 2 * WARD_SHA384_LEN, output,
	    WARD_SHA384_LEN);
	memcpy(ud, WARD_RECEIPT_TAG, WARD_RECEIPT_TAG_LEN);
	return ward_sha384(m, sizeof(m), ud + WARD_RECEIPT_TAG_LEN);
}
