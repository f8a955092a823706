/*
 * The NSM API codec (nitro.md §2.2, §2.3): requests and responses exactly
 * as serde_cbor 0.11 encodes nsm-api's "externally tagged" enums. A unit
 * variant is a text string ("DescribeNSM"); a struct variant is a map of
 * one entry, the variant's name to a map of its fields in declaration
 * order; Error(ErrorCode) is {"Error": "<Name>"}; Option::None is null
 * with its key present; integers are minimal.
 *
 * The decoders are stricter than serde in what they accept as types and
 * more lenient in one place serde is too: fields may come in any order
 * (QEMU's DescribeNSM does not follow the declaration order) and maps may
 * be definite or indefinite. Strings must be definite-length, so every
 * decoded string is a view into the input.
 */
#include <stdio.h>
#include <string.h>

#include "ward/attest.h"

static const char *const op_names[] = {
    [WARD_NSM_DESCRIBE_PCR] = "DescribePCR",
    [WARD_NSM_EXTEND_PCR] = "ExtendPCR",
    [WARD_NSM_LOCK_PCR] = "LockPCR",
    [WARD_NSM_LOCK_PCRS] = "LockPCRs",
    [WARD_NSM_DESCRIBE_NSM] = "DescribeNSM",
    [WARD_NSM_ATTESTATION] = "Attestation",
    [WARD_NSM_GET_RANDOM] = "GetRandom",
    [WARD_NSM_ERROR] = "Error",
};
#define OP_COUNT (sizeof(op_names) / sizeof(op_names[0]))

static const char *const error_names[] = {
    [WARD_NSM_SUCCESS] = "Success",
    [WARD_NSM_INVALID_ARGUMENT] = "InvalidArgument",
    [WARD_NSM_INVALID_INDEX] = "InvalidIndex",
    [WARD_NSM_INVALID_RESPONSE] = "InvalidResponse",
    [WARD_NSM_READ_ONLY_INDEX] = "ReadOnlyIndex",
    [WARD_NSM_INVALID_OPERATION] = "InvalidOperation",
    [WARD_NSM_BUFFER_TOO_SMALL] = "BufferTooSmall",
    [WARD_NSM_INPUT_TOO_LARGE] = "InputTooLarge",
    [WARD_NSM_INTERNAL_ERROR] = "InternalError",
};
#define ERROR_COUNT (sizeof(error_names) / sizeof(error_names[0]))

static const char *const digest_names[] = {
    [WARD_NSM_SHA256] = "SHA256",
    [WARD_NSM_SHA384] = "SHA384",
    [WARD_NSM_SHA512] = "SHA512",
};
#define DIGEST_COUNT (sizeof(digest_names) / sizeof(digest_names[0]))

const char *
ward_nsm_error_name(enum ward_nsm_error e)
{
	if ((size_t)e >= ERROR_COUNT)
		return "UnknownError";
	return error_names[e];
}

const char *
ward_nsm_op_name(enum ward_nsm_op op)
{
	if (op <= 0 || (size_t)op >= OP_COUNT)
		return "UnknownOperation";
	return op_names[op];
}

/* Index of the name equal to s in names[lo..n), or -1. */
static int
lookup(const char *const *names, size_t lo, size_t n, struct ward_bytes s)
{
	for (size_t i = lo; i < n; i++)
		if (names[i] != NULL && strlen(names[i]) == s.len &&
		    memcmp(names[i], s.p, s.len) == 0)
			return (int)i;
	return -1;
}

/*
 * Writers. Both append to out and leave it as it was on failure; the
 * whole message must fit the NSM's limit for its direction.
 */
static int
put_variant(struct ward_buf *b, enum ward_nsm_op op, size_t nfields)
{
	int e;

	if ((e = ward_cbor_put_map(b, 1)) != 0 ||
	    (e = ward_cbor_put_textz(b, op_names[op])) != 0)
		return e;
	return ward_cbor_put_map(b, nfields);
}

static int
put_u16_field(struct ward_buf *b, const char *name, uint16_t v)
{
	int e;

	if ((e = ward_cbor_put_textz(b, name)) != 0)
		return e;
	return ward_cbor_put_uint(b, v);
}

static int
put_bytes_field(struct ward_buf *b, const char *name, struct ward_bytes v)
{
	int e;

	if ((e = ward_cbor_put_textz(b, name)) != 0)
		return e;
	return ward_cbor_put_bytes(b, v.p, v.len);
}

static int
put_opt_field(struct ward_buf *b, const char *name, struct ward_nsm_opt v)
{
	int e;

	if (v.present)
		return put_bytes_field(b, name, v.v);
	if ((e = ward_cbor_put_textz(b, name)) != 0)
		return e;
	return ward_cbor_put_null(b);
}

static int
encode_request(const struct ward_nsm_request *q, struct ward_buf *b)
{
	int e;

	switch (q->op) {
	case WARD_NSM_DESCRIBE_NSM:
	case WARD_NSM_GET_RANDOM:
		return ward_cbor_put_textz(b, op_names[q->op]);
	case WARD_NSM_DESCRIBE_PCR:
	case WARD_NSM_LOCK_PCR:
		if ((e = put_variant(b, q->op, 1)) != 0)
			return e;
		return put_u16_field(b, "index", q->index);
	case WARD_NSM_EXTEND_PCR:
		if (q->data.len > WARD_NSM_EXTEND_MAX)
			return ward_errf(WARD_ELIMIT,
			    "NSM ExtendPCR: %zu bytes of data, more than %d",
			    q->data.len, WARD_NSM_EXTEND_MAX);
		if ((e = put_variant(b, q->op, 2)) != 0 ||
		    (e = put_u16_field(b, "index", q->index)) != 0)
			return e;
		return put_bytes_field(b, "data", q->data);
	case WARD_NSM_LOCK_PCRS:
		if ((e = put_variant(b, q->op, 1)) != 0)
			return e;
		return put_u16_field(b, "range", q->range);
	case WARD_NSM_ATTESTATION:
		if ((e = put_variant(b, q->op, 3)) != 0 ||
		    (e = put_opt_field(b, "user_data", q->user_data)) != 0 ||
		    (e = put_opt_field(b, "nonce", q->nonce)) != 0)
			return e;
		return put_opt_field(b, "public_key", q->public_key);
	case WARD_NSM_ERROR:
		break;
	}
	return ward_errf(
	    WARD_EUSAGE, "NSM request: no such operation (%d)", (int)q->op);
}

int
ward_nsm_request_encode(const struct ward_nsm_request *q, struct ward_buf *out)
{
	size_t start = out->len;
	int e;

	if ((e = encode_request(q, out)) != 0)
		goto out;
	if (out->len - start > WARD_NSM_REQUEST_MAX)
		e = ward_errf(WARD_ELIMIT,
		    "NSM %s request: %zu bytes encoded, more than the NSM's "
		    "%d-byte limit",
		    ward_nsm_op_name(q->op), out->len - start,
		    WARD_NSM_REQUEST_MAX);
out:
	if (e != 0)
		out->len = start;
	return e;
}

static int
encode_describe_nsm(const struct ward_nsm_response *r, struct ward_buf *b)
{
	int e;

	if (r->locked_pcrs_len > WARD_NSM_LOCKED_MAX)
		return ward_errf(WARD_ELIMIT,
		    "NSM DescribeNSM: %zu locked PCRs, more than %d",
		    r->locked_pcrs_len, WARD_NSM_LOCKED_MAX);
	/* a BTreeSet<u16>: serde writes it ascending, without repeats */
	for (size_t i = 1; i < r->locked_pcrs_len; i++)
		if (r->locked_pcrs[i] <= r->locked_pcrs[i - 1])
			return ward_errf(WARD_EUSAGE,
			    "NSM DescribeNSM: locked_pcrs must be strictly "
			    "ascending");
	if ((size_t)r->digest >= DIGEST_COUNT)
		return ward_errf(WARD_EUSAGE,
		    "NSM DescribeNSM: no such digest (%d)", (int)r->digest);
	if ((e = put_variant(b, WARD_NSM_DESCRIBE_NSM, 7)) != 0 ||
	    (e = put_u16_field(b, "version_major", r->version_major)) != 0 ||
	    (e = put_u16_field(b, "version_minor", r->version_minor)) != 0 ||
	    (e = put_u16_field(b, "version_patch", r->version_patch)) != 0 ||
	    (e = ward_cbor_put_textz(b, "module_id")) != 0 ||
	    (e = ward_cbor_put_text(
	         b, (const char *)r->module_id.p, r->module_id.len)) != 0 ||
	    (e = put_u16_field(b, "max_pcrs", r->max_pcrs)) != 0 ||
	    (e = ward_cbor_put_textz(b, "locked_pcrs")) != 0 ||
	    (e = ward_cbor_put_array(b, r->locked_pcrs_len)) != 0)
		return e;
	for (size_t i = 0; i < r->locked_pcrs_len; i++)
		if ((e = ward_cbor_put_uint(b, r->locked_pcrs[i])) != 0)
			return e;
	if ((e = ward_cbor_put_textz(b, "digest")) != 0)
		return e;
	return ward_cbor_put_textz(b, digest_names[r->digest]);
}

static int
encode_response(const struct ward_nsm_response *r, struct ward_buf *b)
{
	int e;

	switch (r->op) {
	case WARD_NSM_DESCRIBE_PCR:
		if ((e = put_variant(b, r->op, 2)) != 0 ||
		    (e = ward_cbor_put_textz(b, "lock")) != 0 ||
		    (e = ward_cbor_put_bool(b, r->lock)) != 0)
			return e;
		return put_bytes_field(b, "data", r->data);
	case WARD_NSM_EXTEND_PCR:
		if ((e = put_variant(b, r->op, 1)) != 0)
			return e;
		return put_bytes_field(b, "data", r->data);
	case WARD_NSM_LOCK_PCR:
	case WARD_NSM_LOCK_PCRS:
		return ward_cbor_put_textz(b, op_names[r->op]);
	case WARD_NSM_DESCRIBE_NSM:
		return encode_describe_nsm(r, b);
	case WARD_NSM_ATTESTATION:
		if ((e = put_variant(b, r->op, 1)) != 0)
			return e;
		return put_bytes_field(b, "document", r->data);
	case WARD_NSM_GET_RANDOM:
		if ((e = put_variant(b, r->op, 1)) != 0)
			return e;
		return put_bytes_field(b, "random", r->data);
	case WARD_NSM_ERROR:
		if ((size_t)r->error >= ERROR_COUNT)
			return ward_errf(WARD_EUSAGE,
			    "NSM response: no such error code (%d)",
			    (int)r->error);
		/* a newtype variant: the value is the unit ErrorCode */
		if ((e = ward_cbor_put_map(b, 1)) != 0 ||
		    (e = ward_cbor_put_textz(b, op_names[r->op])) != 0)
			return e;
		return ward_cbor_put_textz(b, error_names[r->error]);
	}
	return ward_errf(
	    WARD_EUSAGE, "NSM response: no such operation (%d)", (int)r->op);
}

int
ward_nsm_response_encode(
    const struct ward_nsm_response *r, struct ward_buf *out)
{
	size_t start = out->len;
	int e;

	if ((e = encode_response(r, out)) != 0)
		goto out;
	if (out->len - start > WARD_NSM_RESPONSE_MAX)
		e = ward_errf(WARD_ELIMIT,
		    "NSM %s response: %zu bytes encoded, more than the NSM's "
		    "%d-byte limit",
		    ward_nsm_op_name(r->op), out->len - start,
		    WARD_NSM_RESPONSE_MAX);
out:
	if (e != 0)
		out->len = start;
	return e;
}

/*
 * Readers.
 */

/* A definite-length string of type t, as a view into the input. The
 * CBOR reader would join an indefinite one into owned storage; NSM
 * messages never chunk strings (serde_cbor and QEMU write them whole),
 * so a chunked one is refused rather than copied. */
static int
get_str(struct ward_cbor_reader *r, const char *field, enum ward_cbor_type t,
    size_t max, struct ward_bytes *out)
{
	struct ward_cbor_item it;
	struct ward_cbor_str s;
	int e;

	if ((e = ward_cbor_peek(r, &it)) != 0)
		return e;
	if (it.type == t && it.indefinite)
		return ward_errf(WARD_EFORMAT,
		    "%s: %s at offset %zu is an indefinite-length string; NSM "
		    "messages take definite-length strings only",
		    r->what, field, it.offset);
	if (t == WARD_CBOR_TEXT)
		e = ward_cbor_read_text(r, field, max, &s);
	else
		e = ward_cbor_read_bytes(r, field, max, &s);
	if (e != 0)
		return e;
	if (s.owned != NULL) {
		ward_cbor_str_free(&s);
		return ward_errf(
		    WARD_EINTERNAL, "%s: %s: unexpected copy", r->what, field);
	}
	*out = s.v;
	return 0;
}

static int
get_u16(struct ward_cbor_reader *r, const char *field, uint16_t *out)
{
	size_t at = r->pos;
	uint64_t v;
	int e;

	if ((e = ward_cbor_read_uint(r, field, &v)) != 0)
		return e;
	if (v > UINT16_MAX)
		return ward_errf(WARD_EFORMAT,
		    "%s: %s at offset %zu is %llu, more than a u16 holds",
		    r->what, field, at, (unsigned long long)v);
	*out = (uint16_t)v;
	return 0;
}

static int
get_opt(struct ward_cbor_reader *r, const char *field, size_t max,
    struct ward_nsm_opt *out)
{
	int e;

	if ((e = ward_cbor_take_null(r)) < 0)
		return e;
	out->present = e == 0;
	out->v = (struct ward_bytes){0};
	if (e == 1)
		return 0;
	return get_str(r, field, WARD_CBOR_BYTES, max, &out->v);
}

/* BTreeSet<u16>: kept ascending and without repeats, as the set would
 * hold it whatever order the array came in. */
static int
get_locked(struct ward_cbor_reader *r, const char *field,
    struct ward_nsm_response *out)
{
	struct ward_cbor_coll c;
	size_t seen = 0;
	int e;

	if ((e = ward_cbor_enter_array(r, field, &c)) != 0)
		return e;
	while ((e = ward_cbor_more(r, &c)) == 1) {
		size_t at = r->pos, i;
		uint16_t v;

		if (++seen > WARD_NSM_LOCKED_MAX)
			return ward_errf(WARD_ELIMIT,
			    "%s: %s at offset %zu: more than %d entries",
			    r->what, field, at, WARD_NSM_LOCKED_MAX);
		if ((e = get_u16(r, field, &v)) != 0)
			return e;
		for (i = 0; i < out->locked_pcrs_len; i++)
			if (out->locked_pcrs[i] >= v)
				break;
		if (i < out->locked_pcrs_len && out->locked_pcrs[i] == v)
			continue;
		memmove(&out->locked_pcrs[i + 1], &out->locked_pcrs[i],
		    (out->locked_pcrs_len - i) * sizeof(out->locked_pcrs[0]));
		out->locked_pcrs[i] = v;
		out->locked_pcrs_len++;
	}
	return e;
}

enum kind {
	K_U16,
	K_BOOL,
	K_BYTES,
	K_OPT,
	K_TEXT,
	K_LOCKED,
	K_DIGEST,
};
struct field {
	const char *name;
	enum kind kind;
	size_t max; /* strings */
	void *dst;
};
#define MAX_FIELDS 7

static int
get_digest(
    struct ward_cbor_reader *r, const char *field, enum ward_nsm_digest *out)
{
	struct ward_bytes s;
	size_t at = r->pos;
	int e, i;

	if ((e = get_str(r, field, WARD_CBOR_TEXT, 16, &s)) != 0)
		return e;
	if ((i = lookup(digest_names, 0, DIGEST_COUNT, s)) < 0)
		return ward_errf(WARD_EFORMAT,
		    "%s: %s at offset %zu: unknown digest \"%s\"", r->what,
		    field, at, ward_quote(s.p, s.len));
	*out = (enum ward_nsm_digest)i;
	return 0;
}

static int
get_value(struct ward_cbor_reader *r, const char *field, const struct field *f)
{
	switch (f->kind) {
	case K_U16:
		return get_u16(r, field, f->dst);
	case K_BOOL:
		return ward_cbor_read_bool(r, field, f->dst);
	case K_BYTES:
		return get_str(r, field, WARD_CBOR_BYTES, f->max, f->dst);
	case K_TEXT:
		return get_str(r, field, WARD_CBOR_TEXT, f->max, f->dst);
	case K_OPT:
		return get_opt(r, field, f->max, f->dst);
	case K_LOCKED:
		return get_locked(r, field, f->dst);
	case K_DIGEST:
		return get_digest(r, field, f->dst);
	}
	return ward_errf(
	    WARD_EINTERNAL, "%s: %s: bad field kind", r->what, field);
}

/*
 * A struct variant's field map: every field exactly once, in any order,
 * nothing else. variant names the variant in messages.
 */
static int
get_fields(struct ward_cbor_reader *r, const char *variant,
    const struct field *fields, size_t n)
{
	struct ward_cbor_coll c;
	uint32_t seen = 0;
	char name[64];
	int e;

	if ((e = ward_cbor_enter_map(r, variant, &c)) != 0)
		return e;
	while ((e = ward_cbor_more(r, &c)) == 1) {
		struct ward_bytes key;
		size_t at = r->pos, i;

		snprintf(name, sizeof(name), "%s field name", variant);
		if ((e = get_str(r, name, WARD_CBOR_TEXT, SIZE_MAX, &key)) != 0)
			return e;
		for (i = 0; i < n; i++)
			if (strlen(fields[i].name) == key.len &&
			    memcmp(fields[i].name, key.p, key.len) == 0)
				break;
		if (i == n)
			return ward_errf(WARD_EFORMAT,
			    "%s: %s: unknown field \"%s\" at offset %zu",
			    r->what, variant, ward_quote(key.p, key.len), at);
		if (seen & (1u << i))
			return ward_errf(WARD_EFORMAT,
			    "%s: %s: duplicate field \"%s\" at offset %zu",
			    r->what, variant, fields[i].name, at);
		seen |= 1u << i;
		snprintf(name, sizeof(name), "%s.%s", variant, fields[i].name);
		if ((e = get_value(r, name, &fields[i])) != 0)
			return e;
	}
	if (e < 0)
		return e;
	/* A missing Option field is None, as serde and QEMU read it. The
	 * K_OPT targets start absent (the caller zeroes the request). */
	for (size_t i = 0; i < n; i++)
		if (!(seen & (1u << i)) && fields[i].kind != K_OPT)
			return ward_errf(WARD_EFORMAT,
			    "%s: %s: missing field \"%s\"", r->what, variant,
			    fields[i].name);
	return 0;
}

/*
 * The enum's outer shape: a text string naming a unit variant, or a map
 * of one entry naming a struct (or newtype) variant. *op is the variant
 * (an index into op_names), *unit whether it came as a bare string; c is
 * the outer map, to be ended by end_variant.
 */
static int
get_variant(struct ward_cbor_reader *r, const char *what_enum,
    struct ward_cbor_coll *c, int *op, bool *unit)
{
	struct ward_cbor_item it;
	struct ward_bytes name;
	size_t at;
	int e;

	if ((e = ward_cbor_peek(r, &it)) != 0)
		return e;
	*unit = it.type == WARD_CBOR_TEXT;
	if (it.type != WARD_CBOR_TEXT && it.type != WARD_CBOR_MAP)
		return ward_errf(WARD_EFORMAT,
		    "%s: a %s must be a text string or a map of one entry, "
		    "not the item at offset %zu",
		    r->what, what_enum, it.offset);
	if (!*unit) {
		if ((e = ward_cbor_enter_map(r, what_enum, c)) != 0)
			return e;
		if ((e = ward_cbor_more(r, c)) < 0)
			return e;
		if (e == 0)
			return ward_errf(WARD_EFORMAT,
			    "%s: an empty map names no %s variant", r->what,
			    what_enum);
	}
	at = r->pos;
	if ((e = get_str(
	         r, "the variant name", WARD_CBOR_TEXT, SIZE_MAX, &name)) != 0)
		return e;
	if ((*op = lookup(op_names, 1, OP_COUNT, name)) < 0)
		return ward_errf(WARD_EFORMAT,
		    "%s: unknown %s variant \"%s\" at offset %zu", r->what,
		    what_enum, ward_quote(name.p, name.len), at);
	return 0;
}

/* After the variant's value: the one-entry map must end there. */
static int
end_variant(struct ward_cbor_reader *r, struct ward_cbor_coll *c, bool unit)
{
	int e;

	if (unit)
		return ward_cbor_end(r);
	if ((e = ward_cbor_more(r, c)) < 0)
		return e;
	if (e == 1)
		return ward_errf(WARD_EFORMAT,
		    "%s: more than one variant in the outer map at offset %zu",
		    r->what, r->pos);
	return ward_cbor_end(r);
}

static bool
is_unit_request(int op)
{
	return op == WARD_NSM_DESCRIBE_NSM || op == WARD_NSM_GET_RANDOM;
}

static bool
is_unit_response(int op)
{
	return op == WARD_NSM_LOCK_PCR || op == WARD_NSM_LOCK_PCRS;
}

static int
decode_request(struct ward_cbor_reader *r, struct ward_nsm_request *q)
{
	struct ward_cbor_coll c = {0};
	struct field f[3];
	size_t nf = 0;
	bool unit;
	int op, e;

	if ((e = get_variant(r, "Request", &c, &op, &unit)) != 0)
		return e;
	if (op == WARD_NSM_ERROR)
		return ward_errf(WARD_EFORMAT,
		    "%s: unknown Request variant \"Error\"", r->what);
	q->op = (enum ward_nsm_op)op;
	if (unit != is_unit_request(op))
		return ward_errf(WARD_EFORMAT,
		    unit ? "%s: %s must be a map with its fields"
		         : "%s: %s takes no fields and must be a bare string",
		    r->what, op_names[op]);
	switch (q->op) {
	case WARD_NSM_DESCRIBE_PCR:
	case WARD_NSM_LOCK_PCR:
		f[nf++] = (struct field){"index", K_U16, 0, &q->index};
		break;
	case WARD_NSM_EXTEND_PCR:
		f[nf++] = (struct field){"index", K_U16, 0, &q->index};
		f[nf++] = (struct field){
		    "data", K_BYTES, WARD_NSM_EXTEND_MAX, &q->data};
		break;
	case WARD_NSM_LOCK_PCRS:
		f[nf++] = (struct field){"range", K_U16, 0, &q->range};
		break;
	case WARD_NSM_ATTESTATION:
		/* the limits of §2.3 are the server's to enforce (it answers
		 * InvalidArgument); the decoder bounds only by the input */
		f[nf++] = (struct field){
		    "user_data", K_OPT, WARD_NSM_REQUEST_MAX, &q->user_data};
		f[nf++] = (struct field){
		    "nonce", K_OPT, WARD_NSM_REQUEST_MAX, &q->nonce};
		f[nf++] = (struct field){
		    "public_key", K_OPT, WARD_NSM_REQUEST_MAX, &q->public_key};
		break;
	default:
		break;
	}
	if (!unit && (e = get_fields(r, op_names[op], f, nf)) != 0)
		return e;
	return end_variant(r, &c, unit);
}

int
ward_nsm_request_decode(const uint8_t *p, size_t n, struct ward_nsm_request *q)
{
	struct ward_cbor_reader r;
	int e;

	memset(q, 0, sizeof(*q));
	if (n > WARD_NSM_REQUEST_MAX)
		return ward_errf(WARD_ELIMIT,
		    "NSM request: %zu bytes, more than the NSM's %d-byte limit",
		    n, WARD_NSM_REQUEST_MAX);
	ward_cbor_reader_init(&r, p, n, "NSM request");
	if ((e = decode_request(&r, q)) != 0)
		memset(q, 0, sizeof(*q));
	return e;
}

static int
decode_error(struct ward_cbor_reader *r, struct ward_nsm_response *out)
{
	struct ward_bytes name;
	size_t at = r->pos;
	int e, i;

	if ((e = get_str(r, "Error", WARD_CBOR_TEXT, SIZE_MAX, &name)) != 0)
		return e;
	if ((i = lookup(error_names, 0, ERROR_COUNT, name)) < 0)
		return ward_errf(WARD_EFORMAT,
		    "%s: unknown ErrorCode \"%s\" at offset %zu", r->what,
		    ward_quote(name.p, name.len), at);
	out->error = (enum ward_nsm_error)i;
	return 0;
}

static int
decode_response(struct ward_cbor_reader *r, struct ward_nsm_response *out)
{
	struct ward_cbor_coll c = {0};
	struct field f[MAX_FIELDS];
	size_t nf = 0;
	bool unit;
	int op, e;

	if ((e = get_variant(r, "Response", &c, &op, &unit)) != 0)
		return e;
	out->op = (enum ward_nsm_op)op;
	if (unit != is_unit_response(op))
		return ward_errf(WARD_EFORMAT,
		    unit ? "%s: %s must be a map with its fields"
		         : "%s: %s takes no fields and must be a bare string",
		    r->what, op_names[op]);
	switch (out->op) {
	case WARD_NSM_DESCRIBE_PCR:
		f[nf++] = (struct field){"lock", K_BOOL, 0, &out->lock};
		f[nf++] = (struct field){
		    "data", K_BYTES, WARD_NSM_RESPONSE_MAX, &out->data};
		break;
	case WARD_NSM_EXTEND_PCR:
		f[nf++] = (struct field){
		    "data", K_BYTES, WARD_NSM_RESPONSE_MAX, &out->data};
		break;
	case WARD_NSM_DESCRIBE_NSM:
		f[nf++] = (struct field){
		    "version_major", K_U16, 0, &out->version_major};
		f[nf++] = (struct field){
		    "version_minor", K_U16, 0, &out->version_minor};
		f[nf++] = (struct field){
		    "version_patch", K_U16, 0, &out->version_patch};
		f[nf++] = (struct field){"module_id", K_TEXT,
		    WARD_NSM_RESPONSE_MAX, &out->module_id};
		f[nf++] = (struct field){"max_pcrs", K_U16, 0, &out->max_pcrs};
		f[nf++] = (struct field){"locked_pcrs", K_LOCKED, 0, out};
		f[nf++] = (struct field){"digest", K_DIGEST, 0, &out->digest};
		break;
	case WARD_NSM_ATTESTATION:
		f[nf++] = (struct field){
		    "document", K_BYTES, WARD_NSM_RESPONSE_MAX, &out->data};
		break;
	case WARD_NSM_GET_RANDOM:
		f[nf++] = (struct field){
		    "random", K_BYTES, WARD_NSM_RESPONSE_MAX, &out->data};
		break;
	default:
		break;
	}
	if (op == WARD_NSM_ERROR)
		e = decode_error(r, out);
	else if (!unit)
		e = get_fields(r, op_names[op], f, nf);
	if (e != 0)
		return e;
	return end_variant(r, &c, unit);
}

int
ward_nsm_response_decode(
    const uint8_t *p, size_t n, struct ward_nsm_response *out)
{
	struct ward_cbor_reader r;
	int e;

	memset(out, 0, sizeof(*out));
	if (n > WARD_NSM_RESPONSE_MAX)
		return ward_errf(WARD_ELIMIT,
		    "NSM response: %zu bytes, more than the NSM's %d-byte "
		    "limit",
		    n, WARD_NSM_RESPONSE_MAX);
	ward_cbor_reader_init(&r, p, n, "NSM response");
	if ((e = decode_response(&r, out)) != 0)
		memset(out, 0, sizeof(*out));
	return e;
}

void
ward_nsm_raw_prepare(struct ward_nsm_raw *raw, const uint8_t *req,
    size_t req_len, uint8_t *resp, size_t resp_cap)
{
	memset(raw, 0, sizeof(*raw));
	raw->request.addr = (uint64_t)(uintptr_t)req;
	raw->request.len = req_len;
	raw->response.addr = (uint64_t)(uintptr_t)resp;
	raw->response.len = resp_cap;
}
