/*
 * AWS Signature Version 4 (kms-and-esdk.md §2): the client signs a
 * request, the server parses the Authorization header and verifies it.
 * Both ends build the canonical request with the same code, from the
 * headers as received: the server never re-encodes what it checks beyond
 * what §2.1 prescribes (trim, fold whitespace, join repeats with ",").
 *
 * Only the verifier caches the derived signing key, per thread (see
 * signing_key_cached); a client derives it for each request.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <ctype.h>

#include "kms/sigv4_internal.h"
#include "ward/crypto.h"
#include "ward/kms.h"

#define ALGORITHM "AWS4-HMAC-SHA256"
#define TERMINATOR "aws4_request"
#define SKEW_SECONDS 300 /* §2.1: "within five minutes" */
#define HEADERS_MAX 256 /* headers a request to sign may carry */
#define SCOPE_PART_MAX 63 /* region and service */

static const char INCOMPLETE[] = "IncompleteSignatureException";
static const char INVALID[] = "InvalidSignatureException";
static const char MISSING[] = "MissingAuthenticationTokenException";
static const char UNRECOGNIZED[] = "UnrecognizedClientException";

/* A piece of a string held elsewhere. */
struct span {
	const char *p;
	size_t len;
};

static int fail(struct ward_kms_error *e, int status, const char *type,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* An AWS authentication error (§2.4): always -WARD_EAUTH. */
static int
fail(struct ward_kms_error *e, int status, const char *type, const char *fmt,
    ...)
{
	va_list ap;
	char msg[sizeof(((struct ward_kms_error *)0)->message)];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return ward_kms_err(e, WARD_EAUTH, status, type, "%s", msg);
}

static bool
is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' ||
	    c == '\f';
}

static char
lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* RFC 9110 token characters, the alphabet of header names. */
static bool
is_tchar(char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool
is_unreserved(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
	    c == '~';
}

static bool
is_digits(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] < '0' || p[i] > '9')
			return false;
	return true;
}

/* The header name h (NUL-terminated, any case) equals the lowercase n. */
static bool
name_eq(const char *h, struct span n)
{
	for (size_t i = 0; i < n.len; i++)
		if (h[i] == '\0' || lower(h[i]) != n.p[i])
			return false;
	return h[n.len] == '\0';
}

static bool
span_is(struct span s, const char *lit)
{
	return s.len == strlen(lit) && memcmp(s.p, lit, s.len) == 0;
}

static int
append(struct ward_buf *b, const char *s)
{
	return ward_buf_append(b, s, strlen(s));
}

static int
append_nul(struct ward_buf *b)
{
	int r;

	if ((r = ward_buf_put_u8(b, 0)) == 0)
		b->len--;
	return r;
}

/* A header value as §2.1 canonicalizes it: trimmed, each run of
 * whitespace (folded lines included) made one space. */
static int
append_value(struct ward_buf *b, const char *v, size_t n)
{
	size_t i = 0, j;
	int r;

	while (n > 0 && is_ws(v[n - 1]))
		n--;
	while (i < n && is_ws(v[i]))
		i++;
	while (i < n) {
		for (j = i; j < n && !is_ws(v[j]); j++)
			;
		if ((r = ward_buf_append(b, v + i, j - i)) != 0)
			return r;
		if (j == n)
			break;
		if ((r = ward_buf_put_u8(b, ' ')) != 0)
			return r;
		for (i = j; i < n && is_ws(v[i]); i++)
			;
	}
	return 0;
}

static int
sha256_hex(const void *p, size_t n, char out[static 65])
{
	uint8_t md[WARD_SHA256_LEN];
	int r;

	if ((r = ward_sha256(p, n, md)) == 0)
		ward_hex_encode(md, sizeof(md), out);
	return r;
}

static int
hmac(const uint8_t *key, size_t key_len, const void *p, size_t n,
    uint8_t out[static 32])
{
	return ward_hmac_sha256(key, key_len, p, n, out);
}

/* ------------------------------------------------------------------ */
/* Time                                                               */

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; H. Hinnant). */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static unsigned
num(const char *p, size_t n)
{
	unsigned v = 0;

	for (size_t i = 0; i < n; i++)
		v = v * 10 + (unsigned)(p[i] - '0');
	return v;
}

static bool
make_time(unsigned y, unsigned mo, unsigned d, unsigned h, unsigned mi,
    unsigned s, time_t *out)
{
	static const unsigned mdays[] = {
	    31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] ||
	    (mo == 2 && d == 29 && !leap) || h > 23 || mi > 59 || s > 59)
		return false;
	*out = (time_t)(days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 +
	    s);
	return true;
}

/* "YYYYMMDDTHHMMSSZ" (§2.1). */
static bool
parse_iso_basic(const char *v, size_t n, time_t *t)
{
	if (n != 16 || v[8] != 'T' || v[15] != 'Z' || !is_digits(v, 8) ||
	    !is_digits(v + 9, 6))
		return false;
	return make_time(num(v, 4), num(v + 4, 2), num(v + 6, 2), num(v + 9, 2),
	    num(v + 11, 2), num(v + 13, 2), t);
}

/* "Sun, 06 Nov 1994 08:49:37 GMT" (RFC 9110 IMF-fixdate), the Date
 * header's form. */
static bool
parse_imf_fixdate(const char *v, size_t n, time_t *t)
{
	static const char days[] = "MonTueWedThuFriSatSun";
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	unsigned mo = 0;

	if (n != 29 || v[3] != ',' || v[4] != ' ' || v[7] != ' ' ||
	    v[11] != ' ' || v[16] != ' ' || v[19] != ':' || v[22] != ':' ||
	    v[25] != ' ' || memcmp(v + 26, "GMT", 3) != 0 ||
	    !is_digits(v + 5, 2) || !is_digits(v + 12, 4) ||
	    !is_digits(v + 17, 2) || !is_digits(v + 20, 2) ||
	    !is_digits(v + 23, 2))
		return false;
	for (size_t i = 0; i < 7; i++)
		if (memcmp(v, days + 3 * i, 3) == 0)
			break;
		else if (i == 6)
			return false;
	for (size_t i = 0; i < 12 && mo == 0; i++)
		if (memcmp(v + 8, months + 3 * i, 3) == 0)
			mo = (unsigned)i + 1;
	if (mo == 0)
		return false;
	return make_time(num(v + 12, 4), mo, num(v + 5, 2), num(v + 17, 2),
	    num(v + 20, 2), num(v + 23, 2), t);
}

/* The date of a day count from 1970-01-01 (the inverse of
 * days_from_civil; H. Hinnant). */
static void
civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	int64_t era;
	unsigned doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = (unsigned)(z - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static void
put_digits(char *p, unsigned v, int n)
{
	while (n-- > 0) {
		p[n] = (char)('0' + v % 10);
		v /= 10;
	}
}

/* By hand, not gmtime_r and strftime: those take glibc's time zone lock,
 * and a server formats a date for every request it verifies. */
void
ward_sigv4_amz_date(time_t t, char out[static 17])
{
	int64_t days = (int64_t)t / 86400, secs = (int64_t)t % 86400, y;
	unsigned m, d;

	if (secs < 0) {
		secs += 86400;
		days--;
	}
	civil_from_days(days, &y, &m, &d);
	if (y < 0 || y > 9999) {
		memcpy(out, "00000000T000000Z", 17); /* out of range */
		return;
	}
	put_digits(out, (unsigned)y, 4);
	put_digits(out + 4, m, 2);
	put_digits(out + 6, d, 2);
	out[8] = 'T';
	put_digits(out + 9, (unsigned)(secs / 3600), 2);
	put_digits(out + 11, (unsigned)(secs / 60 % 60), 2);
	put_digits(out + 13, (unsigned)(secs % 60), 2);
	out[15] = 'Z';
	out[16] = '\0';
}

/* ------------------------------------------------------------------ */
/* Headers                                                            */

/* The one header named n (lowercase): *idx, or SIZE_MAX when absent.
 * A repeated header is refused. */
static int
find_one(const struct ward_sigv4_request *req, const char *n, size_t *idx,
    struct ward_kms_error *e)
{
	struct span s = {n, strlen(n)};

	*idx = SIZE_MAX;
	for (size_t i = 0; i < req->nheaders; i++) {
		if (req->headers[i].name == NULL ||
		    !name_eq(req->headers[i].name, s))
			continue;
		if (*idx != SIZE_MAX)
			return fail(
			    e, 400, INCOMPLETE, "Multiple '%s' headers", n);
		*idx = i;
	}
	return 0;
}

/* The value of header i, canonicalized, NUL-terminated, in out. */
static int
header_value(const struct ward_sigv4_request *req, size_t i,
    struct ward_buf *out, struct ward_kms_error *e)
{
	const char *v = req->headers[i].value;
	size_t n;
	int r;

	if (v == NULL)
		return fail(e, 400, INCOMPLETE, "Header '%s' has no value",
		    ward_quotes(req->headers[i].name));
	if ((n = strnlen(v, WARD_SIGV4_VALUE_MAX + 1)) > WARD_SIGV4_VALUE_MAX)
		return fail(e, 400, INCOMPLETE, "Header '%s' is too long",
		    ward_quotes(req->headers[i].name));
	out->len = 0;
	if ((r = append_value(out, v, n)) != 0 || (r = append_nul(out)) != 0)
		return r;
	return 0;
}

/*
 * The request's time (§2.1): X-Amz-Date, else Date. amz receives it as
 * "YYYYMMDDTHHMMSSZ", *which the lowercase name of the header used.
 */
static int
request_date(const struct ward_sigv4_request *req, char amz[static 17],
    time_t *t, const char **which, struct ward_kms_error *e)
{
	struct ward_buf v = {0};
	size_t i;
	bool ok;
	int r;

	if ((r = find_one(req, "x-amz-date", &i, e)) != 0)
		return r;
	*which = "x-amz-date";
	if (i == SIZE_MAX) {
		if ((r = find_one(req, "date", &i, e)) != 0)
			return r;
		*which = "date";
	}
	if (i == SIZE_MAX)
		return fail(e, 400, INCOMPLETE,
		    "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.");
	if ((r = header_value(req, i, &v, e)) != 0)
		goto out;
	ok = strcmp(*which, "date") == 0
	    ? parse_imf_fixdate((char *)v.p, v.len, t) ||
	        parse_iso_basic((char *)v.p, v.len, t)
	    : parse_iso_basic((char *)v.p, v.len, t);
	if (!ok) {
		r = fail(e, 400, INCOMPLETE,
		    "Date must be in ISO-8601 'basic format'. Got '%s'. See http://en.wikipedia.org/wiki/ISO_8601",
		    ward_quote(v.p, v.len));
		goto out;
	}
	ward_sigv4_amz_date(*t, amz);
out:
	ward_buf_free(&v);
	return r;
}

/*
 * Split and check SignedHeaders (§2.4 step 5): 1..WARD_SIGV4_SIGNED_MAX
 * names, lowercase tokens, sorted and unique.
 */
static int
parse_signed(const char *s, struct span names[static WARD_SIGV4_SIGNED_MAX],
    size_t *n, struct ward_kms_error *e)
{
	const char *p = s, *q;

	*n = 0;
	for (;;) {
		for (q = p; *q != '\0' && *q != ';'; q++)
			if (!is_tchar(*q) || (*q >= 'A' && *q <= 'Z'))
				return fail(e, 400, INCOMPLETE,
				    "SignedHeaders must be lowercase header names separated by ';'");
		if (q == p || q - p > WARD_SIGV4_NAME_MAX)
			return fail(e, 400, INCOMPLETE,
			    "SignedHeaders has an empty or overlong name");
		if (*n == WARD_SIGV4_SIGNED_MAX)
			return fail(e, 400, INCOMPLETE,
			    "SignedHeaders names more than %d headers",
			    WARD_SIGV4_SIGNED_MAX);
		names[*n] = (struct span){p, (size_t)(q - p)};
		if (*n > 0) {
			struct span a = names[*n - 1], b = names[*n];
			size_t m = a.len < b.len ? a.len : b.len;
			int c = memcmp(a.p, b.p, m);

			if (c > 0 || (c == 0 && a.len >= b.len))
				return fail(e, 400, INCOMPLETE,
				    "SignedHeaders must be sorted and unique");
		}
		(*n)++;
		if (*q == '\0')
			return 0;
		p = q + 1;
	}
}

static bool
signs(const struct span *names, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (span_is(names[i], name))
			return true;
	return false;
}

/* ------------------------------------------------------------------ */
/* The canonical request (§2.1)                                       */

static int
append_encoded(struct ward_buf *b, const uint8_t *p, size_t n, bool slash)
{
	static const char hex[] = "0123456789ABCDEF";
	char t[3] = {'%'};
	int r;

	for (size_t i = 0; i < n; i++) {
		if (is_unreserved(p[i]) || (slash && p[i] == '/'))
			r = ward_buf_put_u8(b, p[i]);
		else {
			t[1] = hex[p[i] >> 4];
			t[2] = hex[p[i] & 15];
			r = ward_buf_append(b, t, 3);
		}
		if (r != 0)
			return r;
	}
	return 0;
}

static int
unhex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = lower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decode p[0..n) into out; false on a bad escape. */
static bool
decode_into(const char *p, size_t n, uint8_t *out, size_t *len)
{
	int hi, lo;

	*len = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] != '%') {
			out[(*len)++] = (uint8_t)p[i];
			continue;
		}
		if (n - i < 3)
			return false;
		if ((hi = unhex_digit(p[i + 1])) < 0 ||
		    (lo = unhex_digit(p[i + 2])) < 0)
			return false;
		out[(*len)++] = (uint8_t)(hi << 4 | lo);
		i += 2;
	}
	return true;
}

struct qparam {
	const char *k, *v; /* encoded, in the params buffer */
	size_t klen, vlen;
};

static int
qparam_cmp(const void *a, const void *b)
{
	const struct qparam *x = a, *y = b;
	size_t m = x->klen < y->klen ? x->klen : y->klen;
	int c = memcmp(x->k, y->k, m);

	if (c != 0 || x->klen != y->klen)
		return c != 0 ? c : (x->klen < y->klen ? -1 : 1);
	m = x->vlen < y->vlen ? x->vlen : y->vlen;
	if ((c = memcmp(x->v, y->v, m)) != 0 || x->vlen == y->vlen)
		return c;
	return x->vlen < y->vlen ? -1 : 1;
}

/*
 * CanonicalQueryString: each name and value decoded and re-encoded
 * (unreserved characters kept, all else %XX), sorted by name then value,
 * joined as name=value with '&'. KMS sends none.
 */
static int
append_query(struct ward_buf *b, const char *q, struct ward_kms_error *e)
{
	struct ward_buf enc = {0};
	struct qparam *ps = NULL;
	uint8_t *tmp = NULL;
	size_t n, np = 0, len, start;
	const char *p, *end, *amp, *eq;
	int r = 0;

	if (q == NULL || *q == '\0')
		return 0;
	if ((n = strnlen(q, WARD_SIGV4_QUERY_MAX + 1)) > WARD_SIGV4_QUERY_MAX)
		return fail(e, 400, INCOMPLETE, "Query string is too long");
	/* Encoding at most triples each byte: reserve once so the pointers
	 * kept in ps stay valid. */
	if ((r = ward_buf_reserve(&enc, 3 * n)) != 0)
		goto out;
	if ((ps = calloc(n / 2 + 1, sizeof(*ps))) == NULL ||
	    (tmp = malloc(n)) == NULL) {
		r = ward_enomem();
		goto out;
	}
	for (p = q, end = q + n; p < end; p = amp + 1) {
		if ((amp = memchr(p, '&', (size_t)(end - p))) == NULL)
			amp = end;
		if (amp == p)
			continue;
		if ((eq = memchr(p, '=', (size_t)(amp - p))) == NULL)
			eq = amp;
		start = enc.len;
		if (!decode_into(p, (size_t)(eq - p), tmp, &len) ||
		    (r = append_encoded(&enc, tmp, len, false)) != 0)
			goto bad;
		ps[np].k = (char *)enc.p + start;
		ps[np].klen = enc.len - start;
		start = enc.len;
		if (eq < amp &&
		    (!decode_into(eq + 1, (size_t)(amp - eq - 1), tmp, &len) ||
		        (r = append_encoded(&enc, tmp, len, false)) != 0))
			goto bad;
		ps[np].v = (char *)enc.p + start;
		ps[np].vlen = enc.len - start;
		np++;
		if (amp == end)
			break;
	}
	qsort(ps, np, sizeof(*ps), qparam_cmp);
	for (size_t i = 0; i < np && r == 0; i++) {
		if ((i > 0 && (r = ward_buf_put_u8(b, '&')) != 0) ||
		    (r = ward_buf_append(b, ps[i].k, ps[i].klen)) != 0 ||
		    (r = ward_buf_put_u8(b, '=')) != 0)
			break;
		r = ward_buf_append(b, ps[i].v, ps[i].vlen);
	}
	goto out;
bad:
	if (r == 0)
		r = fail(e, 400, INCOMPLETE, "Bad percent-encoding in query");
out:
	ward_buf_free(&enc);
	free(ps);
	free(tmp);
	return r;
}

static int
append_path(struct ward_buf *b, const char *path, struct ward_kms_error *e)
{
	size_t n;

	if (path == NULL || *path == '\0')
		return ward_buf_put_u8(b, '/');
	if ((n = strnlen(path, WARD_SIGV4_PATH_MAX + 1)) > WARD_SIGV4_PATH_MAX)
		return fail(e, 400, INCOMPLETE, "Path is too long");
	if (path[0] != '/')
		return fail(e, 400, INCOMPLETE, "Path must be absolute");
	/* Not S3: the path as sent is encoded once more (§2.1). */
	return append_encoded(b, (const uint8_t *)path, n, true);
}

/* name:v1,v2,...\n for every received header called name. */
static int
append_header(struct ward_buf *b, const struct ward_sigv4_request *req,
    struct span name, struct ward_kms_error *e)
{
	const struct ward_sigv4_header *h;
	size_t n, found = 0;
	int r;

	if ((r = ward_buf_append(b, name.p, name.len)) != 0 ||
	    (r = ward_buf_put_u8(b, ':')) != 0)
		return r;
	for (size_t i = 0; i < req->nheaders; i++) {
		h = &req->headers[i];
		if (h->name == NULL || !name_eq(h->name, name))
			continue;
		if (h->value == NULL ||
		    (n = strnlen(h->value, WARD_SIGV4_VALUE_MAX + 1)) >
		        WARD_SIGV4_VALUE_MAX)
			return fail(e, 400, INCOMPLETE,
			    "Header '%.*s' is missing its value or too long",
			    (int)name.len, name.p);
		if ((found++ > 0 && (r = ward_buf_put_u8(b, ',')) != 0) ||
		    (r = append_value(b, h->value, n)) != 0)
			return r;
		if (b->len > WARD_SIGV4_CANONICAL_MAX)
			return fail(
			    e, 400, INCOMPLETE, "Signed headers are too long");
	}
	if (found == 0)
		return fail(e, 400, INVALID,
		    "Header '%.*s' is named in SignedHeaders but absent",
		    (int)name.len, name.p);
	return ward_buf_put_u8(b, '\n');
}

int
ward_sigv4_canonical_request(const struct ward_sigv4_request *req,
    const char *signed_headers, struct ward_buf *out, struct ward_kms_error *e)
{
	struct span names[WARD_SIGV4_SIGNED_MAX];
	char body_hash[65];
	size_t n, i, m, off;
	int r;

	out->len = 0;
	if ((r = parse_signed(signed_headers, names, &n, e)) != 0)
		return r;
	m = req->method != NULL ? strnlen(req->method, 17) : 0;
	for (i = 0; i < m; i++)
		if (req->method[i] < 'A' || req->method[i] > 'Z')
			break;
	if (m == 0 || m > 16 || i != m)
		return fail(e, 400, INCOMPLETE, "Bad HTTP method");
	if ((r = sha256_hex(req->body != NULL ? req->body : (const uint8_t *)"",
	         req->body_len, body_hash)) != 0 ||
	    (r = ward_buf_append(out, req->method, m)) != 0 ||
	    (r = ward_buf_put_u8(out, '\n')) != 0 ||
	    (r = append_path(out, req->path, e)) != 0 ||
	    (r = ward_buf_put_u8(out, '\n')) != 0 ||
	    (r = append_query(out, req->query, e)) != 0 ||
	    (r = ward_buf_put_u8(out, '\n')) != 0)
		return r;
	for (i = 0; i < n; i++) {
		off = out->len + names[i].len + 1;
		if ((r = append_header(out, req, names[i], e)) != 0)
			return r;
		/* A signed payload hash must be this body's (§2.4 step 6). */
		if (span_is(names[i], "x-amz-content-sha256") &&
		    (out->len - 1 - off != 64 ||
		        memcmp(out->p + off, body_hash, 64) != 0))
			return fail(e, 400, INVALID,
			    "x-amz-content-sha256 must be the SHA-256 of the payload (UNSIGNED-PAYLOAD is not accepted)");
	}
	if ((r = ward_buf_put_u8(out, '\n')) != 0 ||
	    (r = append(out, signed_headers)) != 0 ||
	    (r = ward_buf_put_u8(out, '\n')) != 0 ||
	    (r = ward_buf_append(out, body_hash, 64)) != 0)
		return r;
	return append_nul(out);
}

int
ward_sigv4_string_to_sign(const char *amz_date, const char *scope,
    const char *creq, size_t creq_len, struct ward_buf *out)
{
	char h[65];
	int r;

	out->len = 0;
	if ((r = sha256_hex(creq, creq_len, h)) != 0 ||
	    (r = append(out, ALGORITHM "\n")) != 0 ||
	    (r = append(out, amz_date)) != 0 ||
	    (r = ward_buf_put_u8(out, '\n')) != 0 ||
	    (r = append(out, scope)) != 0 ||
	    (r = ward_buf_put_u8(out, '\n')) != 0 ||
	    (r = ward_buf_append(out, h, 64)) != 0)
		return r;
	return append_nul(out);
}

int
ward_sigv4_signing_key(const char *secret, size_t secret_len, const char *date,
    const char *region, const char *service, uint8_t key[static 32])
{
	struct ward_buf k = {.secret = true};
	int r;

	if ((r = append(&k, "AWS4")) != 0 ||
	    (r = ward_buf_append(&k, secret, secret_len)) != 0 ||
	    (r = hmac(k.p, k.len, date, strlen(date), key)) != 0 ||
	    (r = hmac(key, 32, region, strlen(region), key)) != 0 ||
	    (r = hmac(key, 32, service, strlen(service), key)) != 0 ||
	    (r = hmac(key, 32, TERMINATOR, strlen(TERMINATOR), key)) != 0)
		ward_cleanse(key, 32);
	ward_buf_free(&k);
	return r;
}

/*
 * The last signing key this thread derived, with what it was derived
 * from: a server sees the same few credentials all day, and the four
 * HMACs of the derivation were a tenth of a request's cost. The cache
 * holds a copy of the secret to compare against (in constant time); both
 * are zeroed by ward_sigv4_thread_release, which the server calls as
 * each worker thread ends.
 */
static __thread struct {
	bool valid;
	uint8_t secret[128];
	size_t secret_len;
	char date[9], region[SCOPE_PART_MAX + 1], service[SCOPE_PART_MAX + 1];
	struct ward_hmac_sha256_key mac; /* keyed with the signing key */
} kcache;

void
ward_sigv4_thread_release(void)
{
	ward_hmac_sha256_key_free(&kcache.mac);
	ward_cleanse(&kcache, sizeof(kcache));
}

/* *mac is set to the cache's HMAC keyed with the signing key when it is
 * (now) cached; when it could not be cached, *mac is NULL and key holds
 * the signing key for the caller's own HMAC. The cache keeps only the
 * keyed states, not the key itself. */
static int
signing_key_cached(const char *secret, size_t secret_len, const char *date,
    const char *region, const char *service, uint8_t key[static 32],
    const struct ward_hmac_sha256_key **mac)
{
	int r;

	*mac = NULL;
	if (kcache.valid && kcache.secret_len == secret_len &&
	    ward_ct_memcmp(kcache.secret, secret, secret_len) == 0 &&
	    strcmp(kcache.date, date) == 0 &&
	    strcmp(kcache.region, region) == 0 &&
	    strcmp(kcache.service, service) == 0) {
		*mac = &kcache.mac;
		return 0;
	}
	if ((r = ward_sigv4_signing_key(
	         secret, secret_len, date, region, service, key)) != 0)
		return r;
	ward_sigv4_thread_release(); /* the old entry, zeroed */
	if (secret_len > sizeof(kcache.secret) ||
	    strlen(region) >= sizeof(kcache.region) ||
	    strlen(service) >= sizeof(kcache.service))
		return 0;
	if (ward_hmac_sha256_key_init(&kcache.mac, key, 32) != 0) {
		ward_errclear(); /* not cached: the caller keys its own HMAC */
		return 0;
	}
	memcpy(kcache.secret, secret, secret_len);
	kcache.secret_len = secret_len;
	snprintf(kcache.date, sizeof(kcache.date), "%s", date);
	snprintf(kcache.region, sizeof(kcache.region), "%s", region);
	snprintf(kcache.service, sizeof(kcache.service), "%s", service);
	kcache.valid = true;
	*mac = &kcache.mac;
	return 0;
}

/*
 * hex(HMAC(kSigning, string to sign)) for the scope date/region/service.
 * Only the verifier caches the signing key (a server sees the same
 * credentials all day, and releases the cache as its threads end); a
 * client signs a few requests and keeps nothing of its secret.
 */
static int
signature(const char *secret, size_t secret_len, const char *amz,
    const char *region, const char *service, const char *creq, size_t creq_len,
    bool cache, char sig[static 65])
{
	struct ward_buf sts = {0};
	char date[9], scope[9 + 2 * (SCOPE_PART_MAX + 1) + sizeof(TERMINATOR)];
	uint8_t key[32], mac[32];
	const struct ward_hmac_sha256_key *keyed = NULL;
	int r;

	memcpy(date, amz, 8);
	date[8] = '\0';
	ward_concat(scope, sizeof(scope), date, "/", region, "/", service, "/",
	    TERMINATOR);
	if ((r = ward_sigv4_string_to_sign(amz, scope, creq, creq_len, &sts)) !=
	        0 ||
	    (r = cache ? signing_key_cached(secret, secret_len, date, region,
	                     service, key, &keyed)
	               : ward_sigv4_signing_key(secret, secret_len, date,
	                     region, service, key)) != 0)
		goto out;
	if ((r = keyed != NULL
	            ? ward_hmac_sha256_keyed(keyed, sts.p, sts.len, mac)
	            : hmac(key, sizeof(key), sts.p, sts.len, mac)) == 0)
		ward_hex_encode(mac, sizeof(mac), sig);
out:
	ward_cleanse(key, sizeof(key));
	ward_cleanse(mac, sizeof(mac));
	ward_buf_free(&sts);
	return r;
}

/* A scope component: 1..max printable characters, no '/' (§2.1). */
static bool
scope_part_ok(const char *s, size_t max)
{
	size_t n = strnlen(s, max + 1);

	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] <= ' ' || s[i] > '~' || s[i] == '/' || s[i] == ',')
			return false;
	return true;
}

/* ------------------------------------------------------------------ */
/* Client                                                             */

/* A header name to sort (a struct, so qsort moves what it names). */
struct hname {
	const char *p;
};

static int
name_cmp(const void *a, const void *b)
{
	const char *x = ((const struct hname *)a)->p;
	const char *y = ((const struct hname *)b)->p;

	for (;; x++, y++) {
		if (lower(*x) != lower(*y))
			return (unsigned char)lower(*x) <
			        (unsigned char)lower(*y)
			    ? -1
			    : 1;
		if (*x == '\0')
			return 0;
	}
}

/* Every header of req, lowercase, sorted, unique, joined with ';'. */
static int
signed_list(const struct ward_sigv4_request *req, struct ward_buf *out)
{
	struct hname *v = NULL;
	size_t n, distinct = 0;
	int r = 0;

	if (req->nheaders == 0 || req->nheaders > HEADERS_MAX)
		return ward_errf(WARD_EUSAGE,
		    "SigV4: a request carries 1 to %d headers", HEADERS_MAX);
	if ((v = calloc(req->nheaders, sizeof(*v))) == NULL)
		return ward_enomem();
	for (size_t i = 0; i < req->nheaders; i++) {
		const char *nm = req->headers[i].name;

		n = nm != NULL ? strnlen(nm, WARD_SIGV4_NAME_MAX + 1) : 0;
		for (size_t j = 0; j < n && n <= WARD_SIGV4_NAME_MAX; j++)
			if (!is_tchar(nm[j]))
				n = 0;
		if (n == 0 || n > WARD_SIGV4_NAME_MAX) {
			r = ward_errf(WARD_EUSAGE, "SigV4: bad header name %s",
			    nm != NULL ? ward_quotes(nm) : "(null)");
			goto out;
		}
		v[i].p = nm;
	}
	qsort(v, req->nheaders, sizeof(*v), name_cmp);
	out->len = 0;
	for (size_t i = 0; i < req->nheaders; i++) {
		if (i > 0 && name_cmp(&v[i - 1], &v[i]) == 0)
			continue;
		if (++distinct > WARD_SIGV4_SIGNED_MAX) {
			r = ward_errf(WARD_EUSAGE,
			    "SigV4: more than %d distinct headers to sign",
			    WARD_SIGV4_SIGNED_MAX);
			goto out;
		}
		if (distinct > 1 && (r = ward_buf_put_u8(out, ';')) != 0)
			goto out;
		for (const char *c = v[i].p; *c != '\0'; c++)
			if ((r = ward_buf_put_u8(out, (uint8_t)lower(*c))) != 0)
				goto out;
	}
	/* What the server can take back (struct ward_sigv4_auth). */
	if (out->len >= sizeof(((struct ward_sigv4_auth *)0)->signed_headers)) {
		r = ward_errf(WARD_EUSAGE, "SigV4: SignedHeaders too long");
		goto out;
	}
	r = append_nul(out);
out:
	free(v);
	return r;
}

int
ward_sigv4_sign(const struct ward_sigv4_request *req,
    const struct ward_sigv4_credentials *cred, const char *region,
    const char *service, struct ward_buf *out)
{
	struct ward_kms_error e = {0};
	struct ward_buf names = {0}, creq = {0};
	char amz[17], sig[65];
	const char *which;
	size_t secret_len, i;
	time_t t;
	int r;

	if (cred == NULL || cred->access_key_id == NULL ||
	    cred->secret_access_key == NULL ||
	    !scope_part_ok(cred->access_key_id, 128))
		return ward_errf(WARD_EUSAGE, "SigV4: bad access key id");
	if (region == NULL || service == NULL ||
	    !scope_part_ok(region, SCOPE_PART_MAX) ||
	    !scope_part_ok(service, SCOPE_PART_MAX))
		return ward_errf(WARD_EUSAGE, "SigV4: bad region or service");
	secret_len = strnlen(cred->secret_access_key, 1024 + 1);
	if (secret_len == 0 || secret_len > 1024)
		return ward_errf(WARD_EUSAGE, "SigV4: bad secret access key");
	if ((r = signed_list(req, &names)) != 0)
		goto out;
	if ((r = find_one(req, "host", &i, &e)) == 0 && i == SIZE_MAX)
		r = ward_errf(WARD_EUSAGE, "SigV4: the request has no Host");
	if (r == 0 &&
	    (r = find_one(req, "x-amz-security-token", &i, &e)) == 0 &&
	    (cred->session_token != NULL) != (i != SIZE_MAX))
		r = ward_errf(WARD_EUSAGE,
		    "SigV4: X-Amz-Security-Token must be sent exactly when the credentials carry a session token");
	if (r != 0 || (r = request_date(req, amz, &t, &which, &e)) != 0 ||
	    (r = ward_sigv4_canonical_request(
	         req, (char *)names.p, &creq, &e)) != 0 ||
	    (r = signature(cred->secret_access_key, secret_len, amz, region,
	         service, (char *)creq.p, creq.len, false, sig)) != 0)
		goto out;
	out->len = 0;
	if ((r = append(out, ALGORITHM " Credential=")) != 0 ||
	    (r = append(out, cred->access_key_id)) != 0 ||
	    (r = ward_buf_put_u8(out, '/')) != 0 ||
	    (r = ward_buf_append(out, amz, 8)) != 0 ||
	    (r = ward_buf_put_u8(out, '/')) != 0 ||
	    (r = append(out, region)) != 0 ||
	    (r = ward_buf_put_u8(out, '/')) != 0 ||
	    (r = append(out, service)) != 0 ||
	    (r = append(out, "/" TERMINATOR ", SignedHeaders=")) != 0 ||
	    (r = ward_buf_append(out, names.p, names.len)) != 0 ||
	    (r = append(out, ", Signature=")) != 0 ||
	    (r = ward_buf_append(out, sig, 64)) != 0)
		goto out;
	r = append_nul(out);
out:
	/* Request faults come back as usage errors, not as an AWS error. */
	if (r == -WARD_EAUTH)
		r = ward_errf(WARD_EUSAGE, "SigV4: %s", e.message);
	ward_buf_free(&names);
	ward_buf_free(&creq);
	return r;
}

/* ------------------------------------------------------------------ */
/* Server                                                             */

/* Copy a credential part of at most cap-1 characters; false if bad. */
static bool
take_part(const char *p, size_t n, char *dst, size_t cap)
{
	if (n == 0 || n >= cap)
		return false;
	for (size_t i = 0; i < n; i++)
		if (p[i] <= ' ' || p[i] > '~' || p[i] == '/')
			return false;
	memcpy(dst, p, n);
	dst[n] = '\0';
	return true;
}

/* Credential=AKID/YYYYMMDD/region/service/aws4_request */
static int
parse_credential(const char *p, size_t n, struct ward_sigv4_auth *out,
    struct ward_kms_error *e)
{
	struct span part[5];
	size_t np = 0, start = 0;

	for (size_t i = 0; i <= n; i++) {
		if (i < n && p[i] != '/')
			continue;
		if (np == 5)
			return fail(e, 400, INCOMPLETE,
			    "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '%s'",
			    ward_quote(p, n));
		part[np++] = (struct span){p + start, i - start};
		start = i + 1;
	}
	if (np != 5)
		return fail(e, 400, INCOMPLETE,
		    "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '%s'",
		    ward_quote(p, n));
	if (!take_part(part[0].p, part[0].len, out->access_key_id,
	        sizeof(out->access_key_id)))
		return fail(
		    e, 400, INCOMPLETE, "Bad access key id in Credential");
	if (part[1].len != 8 || !is_digits(part[1].p, 8) ||
	    !take_part(part[1].p, 8, out->date, sizeof(out->date)))
		return fail(e, 400, INCOMPLETE,
		    "Credential date must be YYYYMMDD, got '%s'",
		    ward_quote(part[1].p, part[1].len));
	if (!take_part(
	        part[2].p, part[2].len, out->region, sizeof(out->region)) ||
	    !take_part(
	        part[3].p, part[3].len, out->service, sizeof(out->service)))
		return fail(
		    e, 400, INCOMPLETE, "Bad region or service in Credential");
	if (!span_is(part[4], TERMINATOR))
		return fail(e, 400, INCOMPLETE,
		    "Credential should be scoped with a valid terminator: 'aws4_request', not '%s'.",
		    ward_quote(part[4].p, part[4].len));
	return 0;
}

int
ward_sigv4_parse_authorization(
    const char *value, struct ward_sigv4_auth *out, struct ward_kms_error *e)
{
	static const char *const keys[] = {
	    "Credential", "SignedHeaders", "Signature"};
	const char *p, *end, *k, *v, *c;
	size_t n, klen, vlen, i;
	bool seen[3] = {false};
	int r;

	memset(out, 0, sizeof(*out));
	if (value == NULL ||
	    (n = strnlen(value, WARD_SIGV4_AUTH_MAX + 1)) > WARD_SIGV4_AUTH_MAX)
		return fail(e, 400, INCOMPLETE,
		    "Authorization header is missing or too long");
	p = value;
	end = value + n;
	while (p < end && is_ws(*p))
		p++;
	while (end > p && is_ws(end[-1]))
		end--;
	n = strlen(ALGORITHM);
	if ((size_t)(end - p) <= n || memcmp(p, ALGORITHM, n) != 0 ||
	    !is_ws(p[n])) {
		for (c = p; c < end && !is_ws(*c); c++)
			;
		return fail(e, 400, INCOMPLETE,
		    "Unsupported AWS 'algorithm': '%s'",
		    ward_quote(p, (size_t)(c - p)));
	}
	for (p += n; p < end; p = c + 1) {
		while (p < end && is_ws(*p))
			p++;
		if ((c = memchr(p, ',', (size_t)(end - p))) == NULL)
			c = end;
		if ((v = memchr(p, '=', (size_t)(c - p))) == NULL)
			return fail(e, 400, INCOMPLETE,
			    "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' as key=value pairs separated by commas");
		k = p;
		klen = (size_t)(v - k);
		v++;
		for (vlen = (size_t)(c - v); vlen > 0 && is_ws(v[vlen - 1]);
		     vlen--)
			;
		for (i = 0; i < 3; i++)
			if (klen == strlen(keys[i]) &&
			    memcmp(k, keys[i], klen) == 0)
				break;
		if (i == 3 || seen[i])
			return fail(e, 400, INCOMPLETE,
			    "Unexpected or repeated Authorization element '%s'",
			    ward_quote(k, klen));
		seen[i] = true;
		if (i == 0 && (r = parse_credential(v, vlen, out, e)) != 0)
			return r;
		if (i == 1) {
			if (vlen == 0 || vlen >= sizeof(out->signed_headers))
				return fail(e, 400, INCOMPLETE,
				    "SignedHeaders is empty or too long");
			memcpy(out->signed_headers, v, vlen);
		}
		if (i == 2) {
			for (size_t j = 0; j < vlen; j++)
				if (unhex_digit(v[j]) < 0 ||
				    (v[j] >= 'A' && v[j] <= 'F'))
					vlen = 0;
			if (vlen != 64)
				return fail(e, 400, INCOMPLETE,
				    "Signature must be 64 lowercase hexadecimal digits");
			memcpy(out->signature, v, 64);
		}
		if (c == end)
			break;
	}
	for (i = 0; i < 3; i++)
		if (!seen[i])
			return fail(e, 400, INCOMPLETE,
			    "Authorization header requires '%s' parameter.",
			    keys[i]);
	return 0;
}

static int
check_time(time_t t, time_t now, const char *amz, struct ward_kms_error *e)
{
	char a[17], b[17];

	if (t >= now - SKEW_SECONDS && t <= now + SKEW_SECONDS)
		return 0;
	ward_sigv4_amz_date(now, a);
	if (t < now - SKEW_SECONDS) {
		ward_sigv4_amz_date(now - SKEW_SECONDS, b);
		return fail(e, 400, INVALID,
		    "Signature expired: %s is now earlier than %s (%s - 5 min.)",
		    amz, b, a);
	}
	if (t > now + SKEW_SECONDS) {
		ward_sigv4_amz_date(now + SKEW_SECONDS, b);
		return fail(e, 400, INVALID,
		    "Signature not yet current: %s is still later than %s (%s + 5 min.)",
		    amz, b, a);
	}
	return 0;
}

int
ward_sigv4_verify(const struct ward_sigv4_request *req, const char *region,
    const char *service, time_t now, ward_sigv4_secret_fn lookup, void *ctx,
    struct ward_sigv4_auth *auth, struct ward_kms_error *e)
{
	struct ward_sigv4_auth a;
	struct ward_buf token = {.secret = true}, secret = {.secret = true},
	                creq = {0};
	struct span names[WARD_SIGV4_SIGNED_MAX];
	char amz[17] = {0}, want[65] = {0};
	const char *which = NULL;
	size_t n, i;
	time_t t = 0;
	int r;

	if (e != NULL)
		e->type[0] = '\0';
	if (req == NULL || region == NULL || service == NULL || lookup == NULL)
		return ward_errf(WARD_EUSAGE, "SigV4: missing argument");
	if ((r = find_one(req, "authorization", &i, e)) != 0)
		goto out;
	if (i == SIZE_MAX) {
		r = fail(e, 403, MISSING, "Missing Authentication Token");
		goto out;
	}
	if ((r = ward_sigv4_parse_authorization(
	         req->headers[i].value, &a, e)) != 0 ||
	    (r = parse_signed(a.signed_headers, names, &n, e)) != 0)
		goto out;
	if (!signs(names, n, "host")) {
		r = fail(e, 400, INCOMPLETE,
		    "'Host' must be a 'SignedHeader' in the AWS Authorization.");
		goto out;
	}
	if ((r = request_date(req, amz, &t, &which, e)) != 0)
		goto out;
	if (!signs(names, n, which)) {
		r = fail(e, 400, INCOMPLETE,
		    "'%s' must be a 'SignedHeader' in the AWS Authorization.",
		    which);
		goto out;
	}
	if ((r = find_one(req, "x-amz-security-token", &i, e)) != 0)
		goto out;
	if (i != SIZE_MAX) {
		if (!signs(names, n, "x-amz-security-token")) {
			r = fail(e, 400, INCOMPLETE,
			    "'X-Amz-Security-Token' must be a 'SignedHeader' in the AWS Authorization.");
			goto out;
		}
		if ((r = header_value(req, i, &token, e)) != 0)
			goto out;
	}
	/* §2.4 step 5: every x-amz-* header is signed. Otherwise a signed
	 * request could be replayed with another X-Amz-Target, say. */
	for (size_t h = 0; h < req->nheaders; h++) {
		const char *nm = req->headers[h].name;
		char low[WARD_SIGV4_NAME_MAX + 1];
		size_t k;

		if (nm == NULL || strncasecmp(nm, "x-amz-", 6) != 0)
			continue;
		for (k = 0; k < WARD_SIGV4_NAME_MAX && nm[k] != '\0'; k++)
			low[k] = (char)tolower((unsigned char)nm[k]);
		low[k] = '\0';
		if (!signs(names, n, low)) {
			r = fail(e, 400, INCOMPLETE,
			    "'%s' must be a 'SignedHeader' in the AWS "
			    "Authorization.",
			    ward_quotes(nm));
			goto out;
		}
	}

	/* §2.4 step 2: who is it? */
	r = lookup(ctx, a.access_key_id, i != SIZE_MAX ? (char *)token.p : NULL,
	    &secret, e);
	if (r < 0 && e != NULL && e->type[0] == '\0')
		goto out; /* not an AWS error: the store failed */
	if (r != 0 || secret.len == 0) {
		if (r >= 0 || e == NULL)
			r = fail(e, 400, UNRECOGNIZED,
			    "The security token included in the request is invalid.");
		goto out;
	}

	/* Steps 3 and 4: the scope and the clock. */
	if (strcmp(a.region, region) != 0) {
		r = fail(e, 400, INVALID,
		    "Credential should be scoped to a valid Region, not '%s'.",
		    a.region);
		goto out;
	}
	if (strcmp(a.service, service) != 0) {
		r = fail(e, 400, INVALID,
		    "Credential should be scoped to correct service: '%s'.",
		    service);
		goto out;
	}
	if (memcmp(a.date, amz, 8) != 0) {
		r = fail(e, 400, INVALID,
		    "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '%s' != '%.8s', from '%s'.",
		    a.date, amz, amz);
		goto out;
	}
	if ((r = check_time(t, now, amz, e)) != 0)
		goto out;

	/* Steps 5 to 7: rebuild and compare. */
	if ((r = ward_buf_reserve(&creq, 1024)) != 0 ||
	    (r = ward_sigv4_canonical_request(
	         req, a.signed_headers, &creq, e)) != 0 ||
	    (r = signature((char *)secret.p, secret.len, amz, region, service,
	         (char *)creq.p, creq.len, true, want)) != 0)
		goto out;
	/* The canonical request is not logged: it may hold the session
	 * token. */
	if (ward_ct_memcmp(want, a.signature, 64) != 0) {
		r = fail(e, 400, INVALID,
		    "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.");
		goto out;
	}
	if (auth != NULL)
		*auth = a;
out:
	ward_cleanse(want, sizeof(want));
	ward_buf_free(&secret);
	ward_buf_free(&token);
	ward_buf_free(&creq);
	return r;
}
