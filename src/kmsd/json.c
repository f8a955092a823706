/*
 * Request bodies: JSON (RFC 8259) into jansson values, accepting exactly
 * what json_loadb(JSON_REJECT_DUPLICATES) accepts and building the same
 * values. jansson's own parser reads a character at a time through a
 * stream and was a tenth of a KMS request's CPU (3.7 us for a 171-byte
 * Decrypt body, against about 0.6 here); fuzz/fuzz_kms_json.c checks
 * the two agree on every input, and on the values they build.
 *
 * What jansson accepts with those flags: an object or array at the top,
 * nothing but white space (space, tab, CR, LF) after it; at most 2048
 * nested objects and arrays; strings of valid UTF-8 (no overlong forms,
 * surrogates or code points beyond U+10FFFF), no raw control characters,
 * escapes \" \\ \/ \b \f \n \r \t and \uXXXX (surrogate pairs joined, a
 * lone surrogate or \u0000 refused); numbers as the RFC's grammar, an
 * integer (no fraction or exponent) as json_int_t and refused when it
 * does not fit, any other number as a double and refused when it
 * overflows; no duplicate keys. One difference, on purpose: a raw NUL
 * byte is refused wherever it is, while jansson's stream skips one that
 * follows a character it read ahead (so it takes "[1\0]").
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define MAX_DEPTH 2048 /* jansson's JSON_PARSER_MAX_DEPTH */

struct parser {
	const uint8_t *p, *start, *end;
	struct ward_buf sb; /* secret: unescaped strings may be plaintext */
	char *err;
	size_t errlen;
	int depth;
};

__attribute__((format(printf, 2, 3))) static json_t *
fail(struct parser *ps, const char *fmt, ...)
{
	va_list ap;
	size_t n;

	if (ps->err[0] != '\0')
		return NULL; /* the innermost cause is kept */
	n = (size_t)snprintf(
	    ps->err, ps->errlen, "at byte %zu: ", (size_t)(ps->p - ps->start));
	if (n < ps->errlen) {
		va_start(ap, fmt);
		vsnprintf(ps->err + n, ps->errlen - n, fmt, ap);
		va_end(ap);
	}
	return NULL;
}

static void
skip_ws(struct parser *ps)
{
	while (ps->p < ps->end &&
	    (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' ||
	        *ps->p == '\r'))
		ps->p++;
}

static int
hex4(const uint8_t *p, uint32_t *v)
{
	*v = 0;
	for (int i = 0; i < 4; i++) {
		uint8_t c = p[i];
		uint32_t d;

		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = (uint32_t)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			d = (uint32_t)(c - 'A' + 10);
		else
			return -1;
		*v = *v << 4 | d;
	}
	return 0;
}

static int
put_utf8(struct ward_buf *b, uint32_t c)
{
	uint8_t u[4];
	size_t n;

	if (c < 0x80) {
		u[0] = (uint8_t)c;
		n = 1;
	} else if (c < 0x800) {
		u[0] = (uint8_t)(0xc0 | c >> 6);
		u[1] = (uint8_t)(0x80 | (c & 0x3f));
		n = 2;
	} else if (c < 0x10000) {
		u[0] = (uint8_t)(0xe0 | c >> 12);
		u[1] = (uint8_t)(0x80 | (c >> 6 & 0x3f));
		u[2] = (uint8_t)(0x80 | (c & 0x3f));
		n = 3;
	} else {
		u[0] = (uint8_t)(0xf0 | c >> 18);
		u[1] = (uint8_t)(0x80 | (c >> 12 & 0x3f));
		u[2] = (uint8_t)(0x80 | (c >> 6 & 0x3f));
		u[3] = (uint8_t)(0x80 | (c & 0x3f));
		n = 4;
	}
	return ward_buf_append(b, u, n);
}

/*
 * The string whose opening quote is at ps->p: its bytes in *s, *n (in the
 * input when it has no escapes, else in ps->sb). Advances past the close.
 */
static int
string(struct parser *ps, const char **s, size_t *n)
{
	const uint8_t *run;
	bool copied = false;
	size_t len;
	uint32_t c, lo;

	ps->p++; /* the quote */
	run = ps->p;
	ps->sb.len = 0;
	for (;;) {
		if (ps->p >= ps->end) {
			fail(ps, "unterminated string");
			return -1;
		}
		if (*ps->p == '"')
			break;
		if (*ps->p < 0x20) {
			fail(
			    ps, "control character 0x%02x in a string", *ps->p);
			return -1;
		}
		if (*ps->p != '\\') {
			if (*ps->p < 0x80)
				len = 1;
			else if ((len = ward_utf8_seq(ps->p,
			              (size_t)(ps->end - ps->p), &c)) == 0) {
				fail(ps, "invalid UTF-8 in a string");
				return -1;
			}
			ps->p += len;
			continue;
		}
		/* an escape: from here the string is built in ps->sb */
		if (ward_buf_append(&ps->sb, run, (size_t)(ps->p - run)) != 0) {
			fail(ps, "out of memory");
			return -1;
		}
		copied = true;
		if (ps->end - ps->p < 2) {
			fail(ps, "unterminated string");
			return -1;
		}
		switch (ps->p[1]) {
		case '"':
		case '\\':
		case '/':
			c = ps->p[1];
			break;
		case 'b':
			c = '\b';
			break;
		case 'f':
			c = '\f';
			break;
		case 'n':
			c = '\n';
			break;
		case 'r':
			c = '\r';
			break;
		case 't':
			c = '\t';
			break;
		case 'u':
			if (ps->end - ps->p < 6 || hex4(ps->p + 2, &c) != 0) {
				fail(ps, "invalid \\u escape");
				return -1;
			}
			if (c >= 0xdc00 && c <= 0xdfff) {
				fail(ps, "a low surrogate \\u%04X alone", c);
				return -1;
			}
			if (c >= 0xd800 && c <= 0xdbff) {
				if (ps->end - ps->p < 12 || ps->p[6] != '\\' ||
				    ps->p[7] != 'u' ||
				    hex4(ps->p + 8, &lo) != 0 || lo < 0xdc00 ||
				    lo > 0xdfff) {
					fail(ps,
					    "a high surrogate \\u%04X alone",
					    c);
					return -1;
				}
				c = 0x10000 + ((c - 0xd800) << 10) +
				    (lo - 0xdc00);
				ps->p += 6;
			}
			if (c == 0) {
				fail(ps, "\\u0000 in a string");
				return -1;
			}
			ps->p += 4;
			break;
		default:
			fail(ps, "invalid escape");
			return -1;
		}
		if (put_utf8(&ps->sb, c) != 0) {
			fail(ps, "out of memory");
			return -1;
		}
		ps->p += 2;
		run = ps->p;
	}
	if (copied) {
		if (ward_buf_append(&ps->sb, run, (size_t)(ps->p - run)) != 0) {
			fail(ps, "out of memory");
			return -1;
		}
		*s = (const char *)ps->sb.p;
		*n = ps->sb.len;
	} else {
		*s = (const char *)run;
		*n = (size_t)(ps->p - run);
	}
	ps->p++; /* the closing quote */
	return 0;
}

static json_t *
number(struct parser *ps)
{
	const uint8_t *s = ps->p;
	bool real = false;
	char tmp[64], *copy = tmp, *end;
	size_t n;
	json_t *v = NULL;

	if (ps->p < ps->end && *ps->p == '-')
		ps->p++;
	if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
		return fail(ps, "invalid number");
	if (*ps->p == '0')
		ps->p++;
	else
		while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
			ps->p++;
	if (ps->p < ps->end && *ps->p == '.') {
		real = true;
		ps->p++;
		if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
			return fail(ps, "invalid number");
		while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
			ps->p++;
	}
	if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
		real = true;
		ps->p++;
		if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-'))
			ps->p++;
		if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
			return fail(ps, "invalid number");
		while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
			ps->p++;
	}
	n = (size_t)(ps->p - s);
	if (n >= sizeof(tmp) && (copy = malloc(n + 1)) == NULL)
		return fail(ps, "out of memory");
	memcpy(copy, s, n);
	copy[n] = '\0';
	errno = 0;
	if (!real) {
		long long i = strtoll(copy, &end, 10);

		if (errno == ERANGE)
			fail(ps, "integer out of range");
		else
			v = json_integer((json_int_t)i);
	} else {
		double d = strtod(copy, &end);

		if (errno == ERANGE && (d == HUGE_VAL || d == -HUGE_VAL))
			fail(ps, "real number out of range");
		else
			v = json_real(d);
	}
	if (copy != tmp)
		free(copy);
	if (v == NULL && ps->err[0] == '\0')
		fail(ps, "out of memory");
	return v;
}

static bool
literal(struct parser *ps, const char *w, size_t n)
{
	if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, w, n) != 0)
		return false;
	ps->p += n;
	return true;
}

static json_t *value(struct parser *ps);
static json_t *value_at_depth(struct parser *ps);

static json_t *
object(struct parser *ps)
{
	json_t *o = json_object(), *v;
	const char *k;
	size_t kn;
	char *key;

	if (o == NULL)
		return fail(ps, "out of memory");
	ps->p++; /* { */
	skip_ws(ps);
	if (ps->p < ps->end && *ps->p == '}') {
		ps->p++;
		return o;
	}
	for (;;) {
		skip_ws(ps);
		if (ps->p >= ps->end || *ps->p != '"') {
			fail(ps, "a string (a key) expected");
			goto bad;
		}
		/* string() refuses NUL, raw or \u0000, so keys hold none */
		if (string(ps, &k, &kn) != 0)
			goto bad;
		if (json_object_getn(o, k, kn) != NULL) {
			fail(ps, "duplicate key");
			goto bad;
		}
		/* a key that had escapes lives in ps->sb, which the value
		 * reuses: copy it; any other is in the input */
		key = NULL;
		if (k == (const char *)ps->sb.p) {
			if ((key = malloc(kn + 1)) == NULL) {
				fail(ps, "out of memory");
				goto bad;
			}
			memcpy(key, k, kn);
			k = key;
		}
		skip_ws(ps);
		if (ps->p >= ps->end || *ps->p != ':') {
			free(key);
			fail(ps, "':' expected");
			goto bad;
		}
		ps->p++;
		skip_ws(ps);
		v = value(ps);
		if (v != NULL && json_object_setn_new_nocheck(o, k, kn, v) != 0)
			v = fail(ps, "out of memory"); /* setn freed v */
		free(key);
		if (v == NULL)
			goto bad;
		skip_ws(ps);
		if (ps->p < ps->end && *ps->p == ',') {
			ps->p++;
			continue;
		}
		if (ps->p < ps->end && *ps->p == '}') {
			ps->p++;
			return o;
		}
		fail(ps, "',' or '}' expected");
		goto bad;
	}
bad:
	json_decref(o);
	return NULL;
}

static json_t *
array(struct parser *ps)
{
	json_t *a = json_array(), *v;

	if (a == NULL)
		return fail(ps, "out of memory");
	ps->p++; /* [ */
	skip_ws(ps);
	if (ps->p < ps->end && *ps->p == ']') {
		ps->p++;
		return a;
	}
	for (;;) {
		skip_ws(ps);
		if ((v = value(ps)) == NULL)
			goto bad;
		if (json_array_append_new(a, v) != 0) {
			fail(ps, "out of memory");
			goto bad;
		}
		skip_ws(ps);
		if (ps->p < ps->end && *ps->p == ',') {
			ps->p++;
			continue;
		}
		if (ps->p < ps->end && *ps->p == ']') {
			ps->p++;
			return a;
		}
		fail(ps, "',' or ']' expected");
		goto bad;
	}
bad:
	json_decref(a);
	return NULL;
}

/* Every value counts towards the depth, as in jansson: a scalar inside
 * 2048 arrays is one too deep. */
static json_t *
value(struct parser *ps)
{
	json_t *v;

	if (++ps->depth > MAX_DEPTH)
		return fail(ps, "nested more than %d deep", MAX_DEPTH);
	v = value_at_depth(ps);
	ps->depth--;
	return v;
}

static json_t *
value_at_depth(struct parser *ps)
{
	const char *s;
	size_t n;
	json_t *v;

	if (ps->p >= ps->end)
		return fail(ps, "unexpected end of input");
	switch (*ps->p) {
	case '{':
		return object(ps);
	case '[':
		return array(ps);
	case '"':
		if (string(ps, &s, &n) != 0)
			return NULL;
		if ((v = json_stringn_nocheck(s, n)) == NULL)
			return fail(ps, "out of memory");
		return v;
	case 't':
		if (literal(ps, "true", 4))
			return json_true();
		break;
	case 'f':
		if (literal(ps, "false", 5))
			return json_false();
		break;
	case 'n':
		if (literal(ps, "null", 4))
			return json_null();
		break;
	default:
		if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9'))
			return number(ps);
		break;
	}
	return fail(ps, "invalid token");
}

json_t *
kmsd_json_parse(const char *text, size_t n, char *err, size_t errlen)
{
	struct parser ps = {.p = (const uint8_t *)text,
	    .start = (const uint8_t *)text,
	    .end = (const uint8_t *)text + n,
	    .sb = {.secret = true},
	    .err = err,
	    .errlen = errlen};
	json_t *v = NULL;

	if (errlen == 0)
		return NULL;
	err[0] = '\0';
	skip_ws(&ps);
	if (ps.p >= ps.end || (*ps.p != '{' && *ps.p != '['))
		fail(&ps, "'[' or '{' expected");
	else if ((v = value(&ps)) != NULL) {
		skip_ws(&ps);
		if (ps.p != ps.end) {
			fail(&ps, "end of input expected");
			json_decref(v);
			v = NULL;
		}
	}
	ward_buf_free(&ps.sb);
	return v;
}
