/*
 * CBOR (RFC 8949) for attestation documents, COSE and the NSM API: a pull
 * reader over libcbor's allocation-free streaming decoder, and a writer
 * over its head encoders. The reader checks every length against the
 * bytes that remain before anything trusts it, so a hostile count or
 * length costs nothing, and nesting is bounded by WARD_CBOR_MAX_DEPTH.
 */
#include <cbor.h>
#include <stdlib.h>
#include <string.h>

#include "ward/attest.h"

void
ward_cbor_reader_init(
    struct ward_cbor_reader *r, const uint8_t *p, size_t len, const char *what)
{
	r->p = p;
	r->len = len;
	r->pos = 0;
	r->what = what != NULL ? what : "CBOR input";
}

/* libcbor callbacks: each fills the item being decoded. */
struct tok {
	struct ward_cbor_item *it;
	const uint8_t *start, *end;
	bool bad; /* a string reached past the input (defence in depth) */
};

static void
set_int(void *ctx, enum ward_cbor_type t, uint64_t v)
{
	struct tok *k = ctx;

	k->it->type = t;
	k->it->value = v;
}
static void
cb_u8(void *c, uint8_t v)
{
	set_int(c, WARD_CBOR_UINT, v);
}
static void
cb_u16(void *c, uint16_t v)
{
	set_int(c, WARD_CBOR_UINT, v);
}
static void
cb_u32(void *c, uint32_t v)
{
	set_int(c, WARD_CBOR_UINT, v);
}
static void
cb_u64(void *c, uint64_t v)
{
	set_int(c, WARD_CBOR_UINT, v);
}
static void
cb_n8(void *c, uint8_t v)
{
	set_int(c, WARD_CBOR_NEGINT, v);
}
static void
cb_n16(void *c, uint16_t v)
{
	set_int(c, WARD_CBOR_NEGINT, v);
}
static void
cb_n32(void *c, uint32_t v)
{
	set_int(c, WARD_CBOR_NEGINT, v);
}
static void
cb_n64(void *c, uint64_t v)
{
	set_int(c, WARD_CBOR_NEGINT, v);
}
static void
cb_tag(void *c, uint64_t v)
{
	set_int(c, WARD_CBOR_TAG, v);
}

static void
set_str(void *ctx, enum ward_cbor_type t, cbor_data p, size_t n)
{
	struct tok *k = ctx;

	k->it->type = t;
	if (p < k->start || p > k->end || n > (size_t)(k->end - p)) {
		k->bad = true;
		return;
	}
	k->it->str.p = p;
	k->it->str.len = n;
	k->it->value = n;
}
static void
cb_bytes(void *c, cbor_data p, size_t n)
{
	set_str(c, WARD_CBOR_BYTES, p, n);
}
static void
cb_text(void *c, cbor_data p, size_t n)
{
	set_str(c, WARD_CBOR_TEXT, p, n);
}

static void
set_indef(void *ctx, enum ward_cbor_type t)
{
	struct tok *k = ctx;

	k->it->type = t;
	k->it->indefinite = true;
}
static void
cb_bytes_indef(void *c)
{
	set_indef(c, WARD_CBOR_BYTES);
}
static void
cb_text_indef(void *c)
{
	set_indef(c, WARD_CBOR_TEXT);
}
static void
cb_array_indef(void *c)
{
	set_indef(c, WARD_CBOR_ARRAY);
}
static void
cb_map_indef(void *c)
{
	set_indef(c, WARD_CBOR_MAP);
}
static void
cb_array(void *c, size_t n)
{
	set_int(c, WARD_CBOR_ARRAY, n);
}
static void
cb_map(void *c, size_t n)
{
	set_int(c, WARD_CBOR_MAP, n);
}
static void
cb_float(void *c, float f)
{
	set_int(c, WARD_CBOR_FLOAT, 0);
}
static void
cb_double(void *c, double f)
{
	set_int(c, WARD_CBOR_FLOAT, 0);
}
static void
cb_undef(void *c)
{
	set_int(c, WARD_CBOR_SIMPLE, WARD_CBOR_UNDEFINED);
}
static void
cb_null(void *c)
{
	set_int(c, WARD_CBOR_SIMPLE, WARD_CBOR_NULL);
}
static void
cb_bool(void *c, bool v)
{
	set_int(c, WARD_CBOR_SIMPLE, v ? WARD_CBOR_TRUE : WARD_CBOR_FALSE);
}
static void
cb_break(void *c)
{
	set_int(c, WARD_CBOR_BREAK, 0);
}

static const struct cbor_callbacks callbacks = {
    .uint8 = cb_u8,
    .uint16 = cb_u16,
    .uint32 = cb_u32,
    .uint64 = cb_u64,
    .negint8 = cb_n8,
    .negint16 = cb_n16,
    .negint32 = cb_n32,
    .negint64 = cb_n64,
    /* libcbor 0.8 names these the other way round from its comments:
	 * byte_string is the definite form, byte_string_start the chunked. */
    .byte_string = cb_bytes,
    .byte_string_start = cb_bytes_indef,
    .string = cb_text,
    .string_start = cb_text_indef,
    .array_start = cb_array,
    .indef_array_start = cb_array_indef,
    .map_start = cb_map,
    .indef_map_start = cb_map_indef,
    .tag = cb_tag,
    .float2 = cb_float,
    .float4 = cb_float,
    .float8 = cb_double,
    .undefined = cb_undef,
    .null = cb_null,
    .boolean = cb_bool,
    .indef_break = cb_break,
};

/*
 * Tags are decoded here: libcbor 0.8 refuses the tag numbers RFC 7049
 * left unassigned, among them 18, COSE_Sign1.
 */
static int
decode_tag(
    const struct ward_cbor_reader *r, struct ward_cbor_item *it, size_t *used)
{
	const uint8_t *h = r->p + r->pos;
	size_t left = r->len - r->pos, hl;
	uint8_t ai = h[0] & 0x1f;
	uint64_t v = 0;

	if (ai < 24) {
		v = ai;
		hl = 1;
	} else if (ai <= 27) {
		hl = 1 + ((size_t)1 << (ai - 24));
		if (left < hl)
			return ward_errf(WARD_EFORMAT,
			    "%s: truncated item at offset %zu (%zu bytes left)",
			    r->what, r->pos, left);
		for (size_t i = 1; i < hl; i++)
			v = v << 8 | h[i];
	} else {
		return ward_errf(WARD_EFORMAT,
		    "%s: malformed or unsupported CBOR at offset %zu (byte "
		    "0x%02x)",
		    r->what, r->pos, h[0]);
	}
	it->type = WARD_CBOR_TAG;
	it->value = v;
	*used = hl;
	return 0;
}

static int
decode_at(
    const struct ward_cbor_reader *r, struct ward_cbor_item *it, size_t *used)
{
	struct tok k;
	struct cbor_decoder_result res;
	size_t left = r->len - r->pos;

	memset(it, 0, sizeof(*it));
	it->offset = r->pos;
	k = (struct tok){it, r->p, r->p + r->len, false};
	if (left == 0)
		return ward_errf(WARD_EFORMAT, "%s: truncated at offset %zu",
		    r->what, r->pos);
	if ((r->p[r->pos] >> 5) == 6)
		return decode_tag(r, it, used);
	res = cbor_stream_decode(r->p + r->pos, left, &callbacks, &k);
	if (res.status == CBOR_DECODER_NEDATA)
		return ward_errf(WARD_EFORMAT,
		    "%s: truncated item at offset %zu (%zu bytes left)",
		    r->what, r->pos, left);
	if (res.status != CBOR_DECODER_FINISHED || it->type == 0 || k.bad ||
	    res.read == 0 || res.read > left)
		return ward_errf(WARD_EFORMAT,
		    "%s: malformed or unsupported CBOR at offset %zu (byte 0x%02x)",
		    r->what, r->pos, r->p[r->pos]);
	*used = res.read;
	return 0;
}

int
ward_cbor_peek(const struct ward_cbor_reader *r, struct ward_cbor_item *it)
{
	size_t used;

	return decode_at(r, it, &used);
}

int
ward_cbor_next(struct ward_cbor_reader *r, struct ward_cbor_item *it)
{
	size_t used;
	int e;

	if ((e = decode_at(r, it, &used)) != 0)
		return e;
	r->pos += used;
	return 0;
}

int
ward_cbor_end(const struct ward_cbor_reader *r)
{
	if (r->pos != r->len)
		return ward_errf(WARD_EFORMAT,
		    "%s: %zu unexpected bytes after the end at offset %zu",
		    r->what, r->len - r->pos, r->pos);
	return 0;
}

/* Each entry of a container takes at least one byte, so a count larger
 * than what is left is malformed; refusing it up front means no loop ever
 * runs on a hostile count. */
static int
check_count(const struct ward_cbor_reader *r, const struct ward_cbor_item *it)
{
	uint64_t need = it->value;

	if (it->indefinite)
		return 0;
	if (it->type == WARD_CBOR_MAP) {
		if (need > UINT64_MAX / 2)
			need = UINT64_MAX;
		else
			need *= 2;
	}
	if (need > r->len - r->pos)
		return ward_errf(WARD_EFORMAT,
		    "%s: container at offset %zu claims %llu entries, more than "
		    "the %zu bytes left",
		    r->what, it->offset, (unsigned long long)it->value,
		    r->len - r->pos);
	return 0;
}

struct frame {
	bool indefinite;
	enum ward_cbor_type chunks; /* chunked string: the chunks' type */
	uint64_t left;
};

int
ward_cbor_skip(struct ward_cbor_reader *r)
{
	struct frame st[WARD_CBOR_MAX_DEPTH + 1];
	struct ward_cbor_item it;
	size_t depth = 1;
	int e;

	st[0] = (struct frame){false, 0, 1};
	while (depth > 0) {
		struct frame *top = &st[depth - 1];

		if (!top->indefinite && top->left == 0) {
			depth--;
			continue;
		}
		if ((e = ward_cbor_next(r, &it)) != 0)
			return e;
		if (it.type == WARD_CBOR_BREAK) {
			if (!top->indefinite)
				return ward_errf(WARD_EFORMAT,
				    "%s: unexpected break at offset %zu",
				    r->what, it.offset);
			depth--;
			continue;
		}
		if (!top->indefinite)
			top->left--;
		if (top->chunks != 0 &&
		    (it.type != top->chunks || it.indefinite))
			return ward_errf(WARD_EFORMAT,
			    "%s: bad chunk in an indefinite-length string at "
			    "offset %zu",
			    r->what, it.offset);
		if (it.type != WARD_CBOR_TAG && it.type != WARD_CBOR_ARRAY &&
		    it.type != WARD_CBOR_MAP && !it.indefinite)
			continue;
		if (depth > WARD_CBOR_MAX_DEPTH)
			return ward_errf(WARD_ELIMIT,
			    "%s: nesting deeper than %d at offset %zu", r->what,
			    WARD_CBOR_MAX_DEPTH, it.offset);
		if ((it.type == WARD_CBOR_ARRAY || it.type == WARD_CBOR_MAP) &&
		    (e = check_count(r, &it)) != 0)
			return e;
		st[depth].indefinite = it.indefinite;
		st[depth].chunks = 0;
		st[depth].left = it.value;
		if (it.type == WARD_CBOR_TAG) {
			st[depth].indefinite = false;
			st[depth].left = 1;
		} else if (it.type == WARD_CBOR_MAP && !it.indefinite) {
			st[depth].left =
			    it.value * 2; /* bounded by check_count */
		} else if (it.type == WARD_CBOR_BYTES ||
		    it.type == WARD_CBOR_TEXT) {
			st[depth].chunks = it.type;
		}
		depth++;
	}
	return 0;
}

static const char *
type_name(enum ward_cbor_type t)
{
	switch (t) {
	case WARD_CBOR_UINT:
		return "an unsigned integer";
	case WARD_CBOR_NEGINT:
		return "a negative integer";
	case WARD_CBOR_BYTES:
		return "a byte string";
	case WARD_CBOR_TEXT:
		return "a text string";
	case WARD_CBOR_ARRAY:
		return "an array";
	case WARD_CBOR_MAP:
		return "a map";
	case WARD_CBOR_TAG:
		return "a tag";
	case WARD_CBOR_SIMPLE:
		return "a simple value";
	case WARD_CBOR_FLOAT:
		return "a float";
	case WARD_CBOR_BREAK:
		return "a break";
	}
	return "an unknown item";
}

static int
expect(struct ward_cbor_reader *r, const char *field, enum ward_cbor_type t,
    struct ward_cbor_item *it)
{
	int e;

	if ((e = ward_cbor_next(r, it)) != 0)
		return e;
	if (it->type != t) {
		const char *got = type_name(it->type);

		if (it->type == WARD_CBOR_SIMPLE && it->value == WARD_CBOR_NULL)
			got = "null";
		return ward_errf(WARD_EFORMAT,
		    "%s: %s at offset %zu must be %s, not %s", r->what, field,
		    it->offset, type_name(t), got);
	}
	return 0;
}

int
ward_cbor_read_uint(
    struct ward_cbor_reader *r, const char *field, uint64_t *out)
{
	struct ward_cbor_item it;
	int e;

	if ((e = expect(r, field, WARD_CBOR_UINT, &it)) != 0)
		return e;
	*out = it.value;
	return 0;
}

int
ward_cbor_read_bool(struct ward_cbor_reader *r, const char *field, bool *out)
{
	struct ward_cbor_item it;
	int e;

	if ((e = expect(r, field, WARD_CBOR_SIMPLE, &it)) != 0)
		return e;
	if (it.value != WARD_CBOR_TRUE && it.value != WARD_CBOR_FALSE)
		return ward_errf(WARD_EFORMAT,
		    "%s: %s at offset %zu must be true or false", r->what,
		    field, it.offset);
	*out = it.value == WARD_CBOR_TRUE;
	return 0;
}

int
ward_cbor_take_null(struct ward_cbor_reader *r)
{
	struct ward_cbor_item it;
	int e;

	if ((e = ward_cbor_peek(r, &it)) != 0)
		return e;
	if (it.type != WARD_CBOR_SIMPLE || it.value != WARD_CBOR_NULL)
		return 0;
	r->pos++;
	return 1;
}

void
ward_cbor_str_free(struct ward_cbor_str *s)
{
	free(s->owned);
	s->owned = NULL;
	s->v.p = NULL;
	s->v.len = 0;
}

/* RFC 3629 UTF-8: no overlongs, no surrogates, nothing above U+10FFFF. */
static bool
utf8_valid(const uint8_t *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		/* The analyzer cannot see libcbor's callbacks fill the item,
		 * so it takes joined chunks for garbage. */
		// NOLINTNEXTLINE(clang-analyzer-core.uninitialized.Assign)
		uint8_t c = p[i];
		size_t k;
		uint32_t cp, min;

		if (c < 0x80) {
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0) {
			k = 1, cp = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			k = 2, cp = c & 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			k = 3, cp = c & 0x07, min = 0x10000;
		} else {
			return false;
		}
		if (n - i <= k)
			return false;
		for (size_t j = 1; j <= k; j++) {
			if ((p[i + j] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (p[i + j] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += k + 1;
	}
	return true;
}

static int
read_string(struct ward_cbor_reader *r, const char *field,
    enum ward_cbor_type t, size_t max, struct ward_cbor_str *out)
{
	struct ward_cbor_item it;
	struct ward_buf joined = {0};
	int e;

	memset(out, 0, sizeof(*out));
	if ((e = expect(r, field, t, &it)) != 0)
		return e;
	if (!it.indefinite) {
		if (it.str.len > max)
			return ward_errf(WARD_EFORMAT,
			    "%s: %s at offset %zu is %zu bytes, more than %zu",
			    r->what, field, it.offset, it.str.len, max);
		out->v = it.str;
		goto check;
	}
	for (;;) {
		struct ward_cbor_item c;

		if ((e = ward_cbor_next(r, &c)) != 0)
			goto out;
		if (c.type == WARD_CBOR_BREAK)
			break;
		if (c.type != t || c.indefinite) {
			e = ward_errf(WARD_EFORMAT,
			    "%s: %s: bad chunk at offset %zu", r->what, field,
			    c.offset);
			goto out;
		}
		if (c.str.len > max - joined.len) {
			e = ward_errf(WARD_EFORMAT,
			    "%s: %s at offset %zu is more than %zu bytes",
			    r->what, field, it.offset, max);
			goto out;
		}
		if ((e = ward_buf_append(&joined, c.str.p, c.str.len)) != 0)
			goto out;
	}
	if (joined.p == NULL && (joined.p = malloc(1)) == NULL) {
		e = ward_enomem();
		goto out;
	}
	out->owned = joined.p;
	out->v.p = joined.p;
	out->v.len = joined.len;
	joined.p = NULL;
check:
	if (t == WARD_CBOR_TEXT && !utf8_valid(out->v.p, out->v.len)) {
		ward_cbor_str_free(out);
		e = ward_errf(WARD_EFORMAT,
		    "%s: %s at offset %zu is not valid UTF-8", r->what, field,
		    it.offset);
		goto out;
	}
	e = 0;
out:
	ward_buf_free(&joined);
	return e;
}

int
ward_cbor_read_bytes(struct ward_cbor_reader *r, const char *field, size_t max,
    struct ward_cbor_str *out)
{
	return read_string(r, field, WARD_CBOR_BYTES, max, out);
}

int
ward_cbor_read_text(struct ward_cbor_reader *r, const char *field, size_t max,
    struct ward_cbor_str *out)
{
	return read_string(r, field, WARD_CBOR_TEXT, max, out);
}

static int
enter(struct ward_cbor_reader *r, const char *field, enum ward_cbor_type t,
    struct ward_cbor_coll *c)
{
	struct ward_cbor_item it;
	int e;

	if ((e = expect(r, field, t, &it)) != 0)
		return e;
	if ((e = check_count(r, &it)) != 0)
		return e;
	c->indefinite = it.indefinite;
	c->left = it.value;
	c->field = field;
	return 0;
}

int
ward_cbor_enter_map(
    struct ward_cbor_reader *r, const char *field, struct ward_cbor_coll *c)
{
	return enter(r, field, WARD_CBOR_MAP, c);
}

int
ward_cbor_enter_array(
    struct ward_cbor_reader *r, const char *field, struct ward_cbor_coll *c)
{
	return enter(r, field, WARD_CBOR_ARRAY, c);
}

int
ward_cbor_more(struct ward_cbor_reader *r, struct ward_cbor_coll *c)
{
	struct ward_cbor_item it;
	int e;

	if (!c->indefinite) {
		if (c->left == 0)
			return 0;
		c->left--;
		return 1;
	}
	if ((e = ward_cbor_peek(r, &it)) != 0)
		return e;
	if (it.type != WARD_CBOR_BREAK)
		return 1;
	r->pos++;
	return 0;
}

/* Writer. libcbor's encoders write one minimal head into a small buffer. */
static int
put_head(struct ward_buf *b, size_t n, const unsigned char *head)
{
	if (n == 0)
		return ward_errf(WARD_EINTERNAL, "CBOR: head encoding failed");
	return ward_buf_append(b, head, n);
}

#define PUT(b, call)                                                           \
	do {                                                                   \
		unsigned char head_[9];                                        \
		return put_head((b), (call), head_);                           \
	} while (0)

int
ward_cbor_put_uint(struct ward_buf *b, uint64_t v)
{
	PUT(b, cbor_encode_uint(v, head_, sizeof(head_)));
}

int
ward_cbor_put_negint(struct ward_buf *b, uint64_t n)
{
	PUT(b, cbor_encode_negint(n, head_, sizeof(head_)));
}

int
ward_cbor_put_bytes(struct ward_buf *b, const void *p, size_t n)
{
	unsigned char head[9];
	int e;

	if ((e = put_head(b,
	         cbor_encode_bytestring_start(n, head, sizeof(head)), head)) !=
	    0)
		return e;
	return ward_buf_append(b, p, n);
}

int
ward_cbor_put_text(struct ward_buf *b, const char *s, size_t n)
{
	unsigned char head[9];
	int e;

	if ((e = put_head(b, cbor_encode_string_start(n, head, sizeof(head)),
	         head)) != 0)
		return e;
	return ward_buf_append(b, s, n);
}

int
ward_cbor_put_textz(struct ward_buf *b, const char *s)
{
	return ward_cbor_put_text(b, s, strlen(s));
}

int
ward_cbor_put_array(struct ward_buf *b, size_t n)
{
	PUT(b, cbor_encode_array_start(n, head_, sizeof(head_)));
}

int
ward_cbor_put_map(struct ward_buf *b, size_t n)
{
	PUT(b, cbor_encode_map_start(n, head_, sizeof(head_)));
}

int
ward_cbor_put_indef_array(struct ward_buf *b)
{
	PUT(b, cbor_encode_indef_array_start(head_, sizeof(head_)));
}

int
ward_cbor_put_indef_map(struct ward_buf *b)
{
	PUT(b, cbor_encode_indef_map_start(head_, sizeof(head_)));
}

int
ward_cbor_put_break(struct ward_buf *b)
{
	PUT(b, cbor_encode_break(head_, sizeof(head_)));
}

int
ward_cbor_put_tag(struct ward_buf *b, uint64_t tag)
{
	PUT(b, cbor_encode_tag(tag, head_, sizeof(head_)));
}

int
ward_cbor_put_bool(struct ward_buf *b, bool v)
{
	PUT(b, cbor_encode_bool(v, head_, sizeof(head_)));
}

int
ward_cbor_put_null(struct ward_buf *b)
{
	PUT(b, cbor_encode_null(head_, sizeof(head_)));
}
