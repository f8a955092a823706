/* Hex and base64 (RFC 4648 §4, standard alphabet, with padding); JSON
 * string literals. */
#include <endian.h>
#include <stdio.h>
#include <string.h>

#include "ward/util.h"

void
ward_hex_encode(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
ward_hex_decode(
    const char *s, size_t slen, uint8_t *out, size_t outcap, size_t *outlen)
{
	if (slen % 2 != 0)
		return ward_errf(
		    WARD_EFORMAT, "hex string has odd length %zu", slen);
	if (slen / 2 > outcap)
		return ward_errf(WARD_ELIMIT,
		    "hex string too long (%zu bytes, at most %zu)", slen / 2,
		    outcap);
	for (size_t i = 0; i < slen; i += 2) {
		int hi = hexval(s[i]), lo = hexval(s[i + 1]);

		if (hi < 0 || lo < 0)
			return ward_errf(WARD_EFORMAT,
			    "invalid hex digit at offset %zu",
			    hi < 0 ? i : i + 1);
		out[i / 2] = (uint8_t)(hi << 4 | lo);
	}
	*outlen = slen / 2;
	return 0;
}

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void
ward_b64_encode(const uint8_t *p, size_t n, char *out)
{
	size_t i, o = 0;

	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v =
		    (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		out[o++] = b64chars[v >> 18];
		out[o++] = b64chars[(v >> 12) & 63];
		out[o++] = b64chars[(v >> 6) & 63];
		out[o++] = b64chars[v & 63];
	}
	if (i < n) {
		uint32_t v = (uint32_t)p[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		out[o++] = b64chars[v >> 18];
		out[o++] = b64chars[(v >> 12) & 63];
		out[o++] = i + 1 < n ? b64chars[(v >> 6) & 63] : '=';
		out[o++] = '=';
	}
	out[o] = '\0';
}

/*
 * The value of a base64 character, or -1. Without branches or a table on
 * the character: base64 here carries plaintext and data keys, and a
 * search of the alphabet (as this was) takes a time that depends on each
 * character, and was 1% of a KMS request's CPU. ((lo - x) & (x - hi)) >> 8
 * is all ones exactly when lo < x < hi; each range adds its value + 1.
 */
static int
b64val(char c)
{
	int x = (unsigned char)c, r = -1;

	r += (((0x40 - x) & (x - 0x5b)) >> 8) & (x - 64); /* A-Z: 0.. */
	r += (((0x60 - x) & (x - 0x7b)) >> 8) & (x - 70); /* a-z: 26.. */
	r += (((0x2f - x) & (x - 0x3a)) >> 8) & (x + 5); /* 0-9: 52.. */
	r += (((0x2a - x) & (x - 0x2c)) >> 8) & 63; /* '+': 62 */
	r += (((0x2e - x) & (x - 0x30)) >> 8) & 64; /* '/': 63 */
	return r;
}

/*
 * Eight base64 characters at once, by the same rule as b64val with each
 * byte of a 64-bit word a lane (SWAR): for lanes below 0x80,
 * (x | 0x80) - lo has its top bit set exactly when x >= lo, and
 * (hi | 0x80) - x exactly when x <= hi, and neither borrows from the next
 * lane. Still no branch or table on a character, at under half of
 * b64val's cost (a 256-character value: 380-430 ns against 940-1080;
 * base64 was 2% of a Decrypt's CPU, decoding its CiphertextBlob). Returns
 * false, writing nothing, when a character is not in the alphabet; the
 * caller then finds which one.
 */
#define LANES(b) ((uint64_t)(b)*0x0101010101010101ULL)
#define TOP LANES(0x80)

static inline uint64_t
b64_in(uint64_t x, unsigned lo, unsigned hi)
{
	uint64_t in = ((x | TOP) - LANES(lo)) & ((LANES(hi) | TOP) - x) & TOP;

	return (in >> 7) * 0xff; /* 0xff in each lane in [lo, hi] */
}

static bool
b64_decode8(const char *s, uint8_t out[6])
{
	uint64_t x, up, lo, dg, pl, sl, v;

	memcpy(&x, s, 8);
	x = le64toh(x); /* lane i is s[i] */
	up = b64_in(x, 'A', 'Z');
	lo = b64_in(x, 'a', 'z');
	dg = b64_in(x, '0', '9');
	pl = b64_in(x, '+', '+');
	sl = b64_in(x, '/', '/');
	if ((x & TOP) != 0 || (up | lo | dg | pl | sl) != UINT64_MAX)
		return false;
	v = (up & ((x | TOP) - LANES('A')) & LANES(0x3f)) |
	    (lo & ((((x | TOP) - LANES('a')) & LANES(0x7f)) + LANES(26))) |
	    (dg & ((((x | TOP) - LANES('0')) & LANES(0x7f)) + LANES(52))) |
	    (pl & LANES(62)) | (sl & LANES(63));
	for (int q = 0; q < 2; q++, v >>= 32) {
		uint32_t w = (uint32_t)(v & 0x3f) << 18 |
		    (uint32_t)(v >> 8 & 0x3f) << 12 |
		    (uint32_t)(v >> 16 & 0x3f) << 6 |
		    (uint32_t)(v >> 24 & 0x3f);

		out[3 * q] = (uint8_t)(w >> 16);
		out[3 * q + 1] = (uint8_t)(w >> 8);
		out[3 * q + 2] = (uint8_t)w;
	}
	return true;
}

int
ward_b64_decode(
    const char *s, size_t slen, uint8_t *out, size_t outcap, size_t *outlen)
{
	size_t o = 0, pad = 0;

	if (slen % 4 != 0)
		return ward_errf(WARD_EFORMAT,
		    "base64 length %zu is not a multiple of 4", slen);
	if (slen >= 1 && s[slen - 1] == '=')
		pad++;
	if (slen >= 2 && s[slen - 2] == '=')
		pad++;
	if (slen / 4 * 3 - pad > outcap)
		return ward_errf(WARD_ELIMIT, "base64 value too long");
	size_t i = 0;

	/* Every quad but the last: eight characters at a time, then four
	 * values with one check (which also names a bad character). */
	for (; i + 8 < slen && b64_decode8(s + i, out + o); i += 8)
		o += 6;
	for (; i + 4 < slen; i += 4) {
		int a = b64val(s[i]), b = b64val(s[i + 1]),
		    c = b64val(s[i + 2]), d = b64val(s[i + 3]);

		if ((a | b | c | d) < 0) {
			size_t j = a < 0 ? 0 : b < 0 ? 1 : c < 0 ? 2 : 3;

			return ward_errf(WARD_EFORMAT,
			    "invalid base64 character at offset %zu", i + j);
		}
		uint32_t w = (uint32_t)a << 18 | (uint32_t)b << 12 |
		    (uint32_t)c << 6 | (uint32_t)d;
		out[o++] = (uint8_t)(w >> 16);
		out[o++] = (uint8_t)(w >> 8);
		out[o++] = (uint8_t)w;
	}
	/* The last quad, which may hold padding. */
	for (i = slen < 4 ? slen : slen - 4; i < slen; i += 4) {
		int v[4];

		for (int j = 0; j < 4; j++) {
			v[j] = b64val(s[i + j]);
			if (v[j] < 0 && !(s[i + j] == '=' && j >= 4 - (int)pad))
				return ward_errf(WARD_EFORMAT,
				    "invalid base64 character at offset %zu",
				    i + j);
		}
		uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12;
		out[o++] = (uint8_t)(w >> 16);
		if (pad == 2) {
			if (v[1] & 15)
				return ward_errf(WARD_EFORMAT,
				    "non-canonical base64 padding");
			break;
		}
		w |= (uint32_t)v[2] << 6;
		out[o++] = (uint8_t)(w >> 8);
		if (pad == 1) {
			if (v[2] & 3)
				return ward_errf(WARD_EFORMAT,
				    "non-canonical base64 padding");
			break;
		}
		w |= (uint32_t)v[3];
		out[o++] = (uint8_t)w;
	}
	*outlen = o;
	return 0;
}

const char *
ward_quote(const void *p, size_t n)
{
	static _Thread_local char bufs[4][256];
	static _Thread_local unsigned next;
	char *out = bufs[next++ % 4];
	const uint8_t *b = p;
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		if (o + 8 >= sizeof(bufs[0])) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		if (b[i] < 0x20 || b[i] == 0x7f || b[i] == '\\')
			o += (size_t)snprintf(out + o, 5, "\\x%02x", b[i]);
		else
			out[o++] = (char)b[i];
	}
	out[o] = '\0';
	return out;
}

const char *
ward_quotes(const char *s)
{
	return ward_quote(s, strlen(s));
}

size_t
ward_concat_list(char *out, size_t cap, const char *const *parts)
{
	const char *s;
	size_t o = 0, total = 0, n, k;

	while ((s = *parts++) != NULL) {
		n = strlen(s);
		total += n;
		k = o + 1 < cap ? cap - 1 - o : 0;
		if (k > n)
			k = n;
		memcpy(out + o, s, k);
		o += k;
	}
	out[o] = '\0';
	return total;
}

size_t
ward_utf8_seq(const uint8_t *p, size_t n, uint32_t *cp)
{
	size_t len;
	uint32_t c, min;

	if (p[0] < 0xc2 || p[0] > 0xf4)
		return 0;
	if (p[0] < 0xe0) {
		len = 2;
		c = p[0] & 0x1fu;
		min = 0x80;
	} else if (p[0] < 0xf0) {
		len = 3;
		c = p[0] & 0x0fu;
		min = 0x800;
	} else {
		len = 4;
		c = p[0] & 0x07u;
		min = 0x10000;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (p[i] & 0x3fu);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

static int
json_u(struct ward_buf *b, uint32_t u)
{
	char e[8];

	/* u is a UTF-16 unit: callers split what is above U+FFFF */
	snprintf(e, sizeof(e), "\\u%04x", (unsigned)(u & 0xffff));
	return ward_buf_append(b, e, 6);
}

/* Whether byte c goes into a JSON string as it is: printable ASCII but
 * '"' and '\\'. One lookup instead of four tests; with json_plain8 for
 * runs, as the escaping of audit fields was 1.7% of a request's CPU. */
static inline bool
json_plain(uint8_t c)
{
	static const uint64_t plain[4] = {
	    0xfffffffb00000000ULL, /* 0x20-0x3f but '"' */
	    0x7fffffffefffffffULL, /* 0x40-0x7e but '\\' */
	    0, 0};

	return (plain[c >> 6] >> (c & 63)) & 1;
}

/* Whether none of the eight bytes at p needs escaping, by the SWAR rules
 * of b64_in: no top bit, none below 0x20, none equal to 0x7f, '"' or
 * '\\' (v has a zero lane exactly when (v - 1) & ~v has a top bit). */
static inline bool
json_plain8(const uint8_t *p)
{
	uint64_t x, q, e, d;

	memcpy(&x, p, 8);
	q = x ^ LANES('"');
	e = x ^ LANES('\\');
	d = x ^ LANES(0x7f);
	return ((x | ((x - LANES(0x20)) & ~x) | ((q - LANES(1)) & ~q) |
	            ((e - LANES(1)) & ~e) | ((d - LANES(1)) & ~d)) &
	           TOP) == 0;
}

int
ward_json_str_n(struct ward_buf *b, const char *s, size_t n)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t i = 0, run;
	uint32_t c;
	int r;

	if ((r = ward_buf_put_u8(b, '"')) != 0)
		return r;
	while (i < n) {
		/* the longest run of bytes that go out as they are */
		for (run = i; run + 8 <= n && json_plain8(p + run); run += 8)
			;
		for (; run < n && json_plain(p[run]); run++)
			;
		if (run > i && (r = ward_buf_append(b, p + i, run - i)) != 0)
			return r;
		if ((i = run) == n)
			break;
		if (p[i] == '"' || p[i] == '\\') {
			const char e[2] = {'\\', (char)p[i]};

			r = ward_buf_append(b, e, 2);
			i++;
		} else if (p[i] < 0x80) { /* a control character or DEL */
			r = json_u(b, p[i]);
			i++;
		} else {
			size_t len = ward_utf8_seq(p + i, n - i, &c);

			if (len == 0) {
				r = json_u(b, 0xfffd);
				i++;
			} else if (c < 0x10000) {
				r = json_u(b, c);
				i += len;
			} else {
				c -= 0x10000;
				if ((r = json_u(b, 0xd800 | c >> 10)) == 0)
					r = json_u(b, 0xdc00 | (c & 0x3ff));
				i += len;
			}
		}
		if (r != 0)
			return r;
	}
	return ward_buf_put_u8(b, '"');
}

int
ward_json_str(struct ward_buf *b, const char *s)
{
	return ward_json_str_n(b, s, strlen(s));
}
