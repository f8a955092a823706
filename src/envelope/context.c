/*
 * Encryption context (spec §5.4): UTF-8 key/value pairs, unique keys,
 * serialized as u16 count then u16-length-prefixed key and value, sorted
 * by key bytes. Parsing keeps the order received (some SDKs wrote
 * unsorted contexts); the header is authenticated as received.
 */
#include <stdlib.h>
#include <string.h>

#include "ward/envelope.h"

/* Strict UTF-8 (RFC 3629): no overlongs, surrogates or code points past
 * U+10FFFF. */
static bool
valid_utf8(const uint8_t *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint8_t c = p[i];
		size_t len;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xE0) == 0xC0) {
			len = 2;
			cp = c & 0x1F;
		} else if ((c & 0xF0) == 0xE0) {
			len = 3;
			cp = c & 0x0F;
		} else if ((c & 0xF8) == 0xF0) {
			len = 4;
			cp = c & 0x07;
		} else
			return false;
		if (n - i < len)
			return false;
		for (size_t j = 1; j < len; j++) {
			if ((p[i + j] & 0xC0) != 0x80)
				return false;
			cp = cp << 6 | (p[i + j] & 0x3F);
		}
		if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
		    (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
		    (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		i += len;
	}
	return true;
}

static char *
dup_bytes(const char *p, size_t n)
{
	char *s = malloc(n + 1);

	if (s != NULL) {
		if (n > 0)
			memcpy(s, p, n);
		s[n] = '\0';
	}
	return s;
}

const struct ward_ec_pair *
ward_ec_get(const struct ward_ec *ec, const char *key, size_t key_len)
{
	if (ec == NULL)
		return NULL;
	for (size_t i = 0; i < ec->n; i++)
		if (ec->pairs[i].key_len == key_len &&
		    memcmp(ec->pairs[i].key, key, key_len) == 0)
			return &ec->pairs[i];
	return NULL;
}

static int
ec_append(struct ward_ec *ec, const char *key, size_t key_len,
    const char *value, size_t value_len, bool check_duplicate)
{
	struct ward_ec_pair *v, *pair;

	if (key_len > UINT16_MAX || value_len > UINT16_MAX)
		return ward_errf(WARD_ELIMIT,
		    "encryption context entry longer than 65535 bytes");
	if (!valid_utf8((const uint8_t *)key, key_len) ||
	    !valid_utf8((const uint8_t *)value, value_len))
		return ward_errf(WARD_EFORMAT,
		    "encryption context entry is not valid UTF-8");
	if (check_duplicate && ward_ec_get(ec, key, key_len) != NULL)
		return ward_errf(WARD_EFORMAT,
		    "encryption context key '%s' appears twice",
		    ward_quote(key, key_len > 64 ? 64 : key_len));
	if (ec->n >= UINT16_MAX)
		return ward_errf(
		    WARD_ELIMIT, "more than 65535 encryption context pairs");
	if ((v = realloc(ec->pairs, (ec->n + 1) * sizeof(*v))) == NULL)
		return ward_enomem();
	ec->pairs = v;
	pair = &v[ec->n];
	pair->key = dup_bytes(key, key_len);
	pair->value = dup_bytes(value, value_len);
	if (pair->key == NULL || pair->value == NULL) {
		free(pair->key);
		free(pair->value);
		return ward_enomem();
	}
	pair->key_len = key_len;
	pair->value_len = value_len;
	ec->n++;
	return 0;
}

int
ward_ec_add(struct ward_ec *ec, const char *key, size_t key_len,
    const char *value, size_t value_len)
{
	return ec_append(ec, key, key_len, value, value_len, true);
}

int
ward_ec_add_arg(struct ward_ec *ec, const char *kv)
{
	const char *eq = strchr(kv, '=');

	if (eq == NULL || eq == kv)
		return ward_errf(
		    WARD_EUSAGE, "context '%s' is not key=value", kv);
	return ward_ec_add(ec, kv, (size_t)(eq - kv), eq + 1, strlen(eq + 1));
}

static int
pair_cmp(const void *a, const void *b)
{
	const struct ward_ec_pair *x = *(const struct ward_ec_pair *const *)a;
	const struct ward_ec_pair *y = *(const struct ward_ec_pair *const *)b;
	size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
	int c = memcmp(x->key, y->key, n);

	if (c != 0)
		return c;
	return x->key_len < y->key_len ? -1 : x->key_len > y->key_len;
}

/* Pointers to the pairs, sorted by key bytes (the canonical order). */
static int
sort_pairs(const struct ward_ec *ec, const struct ward_ec_pair ***out)
{
	const struct ward_ec_pair **sorted;

	if ((sorted = calloc(ec->n, sizeof(const struct ward_ec_pair *))) ==
	    NULL)
		return ward_enomem();
	for (size_t i = 0; i < ec->n; i++)
		sorted[i] = &ec->pairs[i];
	qsort(sorted, ec->n, sizeof(const struct ward_ec_pair *), pair_cmp);
	*out = sorted;
	return 0;
}

/* Keys must be unique: sort pointers to the pairs, compare neighbours. */
static int
check_duplicates(const struct ward_ec *ec)
{
	const struct ward_ec_pair **sorted;
	int r = 0;

	if (ec->n < 2)
		return 0;
	if ((r = sort_pairs(ec, &sorted)) != 0)
		return r;
	for (size_t i = 1; i < ec->n && r == 0; i++)
		if (pair_cmp(&sorted[i - 1], &sorted[i]) == 0)
			r = ward_errf(WARD_EFORMAT,
			    "encryption context key '%s' appears twice",
			    ward_quote(sorted[i]->key,
			        sorted[i]->key_len > 64 ? 64
			                                : sorted[i]->key_len));
	free(sorted);
	return r;
}

int
ward_ec_serialize(const struct ward_ec *ec, struct ward_buf *out)
{
	const struct ward_ec_pair **sorted;
	int r = 0;

	if (ec == NULL || ec->n == 0)
		return 0;
	if ((r = sort_pairs(ec, &sorted)) != 0)
		return r;
	if ((r = ward_buf_put_u16(out, (uint16_t)ec->n)) != 0)
		goto out;
	for (size_t i = 0; i < ec->n; i++) {
		const struct ward_ec_pair *pr = sorted[i];

		if ((r = ward_buf_put_u16(out, (uint16_t)pr->key_len)) != 0 ||
		    (r = ward_buf_append(out, pr->key, pr->key_len)) != 0 ||
		    (r = ward_buf_put_u16(out, (uint16_t)pr->value_len)) != 0 ||
		    (r = ward_buf_append(out, pr->value, pr->value_len)) != 0)
			goto out;
	}
out:
	free(sorted);
	return r;
}

int
ward_ec_parse(const uint8_t *p, size_t len, struct ward_ec *out)
{
	size_t off = 2, count;
	int r;

	memset(out, 0, sizeof(*out));
	if (len == 0)
		return 0;
	if (len < 2)
		return ward_errf(WARD_EFORMAT, "encryption context truncated");
	count = ward_load16(p);
	if (count == 0)
		return ward_errf(WARD_EFORMAT,
		    "encryption context has a zero count but a nonzero length");
	for (size_t i = 0; i < count; i++) {
		size_t klen, vlen;
		const uint8_t *k, *v;

		if (len - off < 2)
			goto truncated;
		klen = ward_load16(p + off);
		off += 2;
		if (len - off < klen + 2)
			goto truncated;
		k = p + off;
		off += klen;
		vlen = ward_load16(p + off);
		off += 2;
		if (len - off < vlen)
			goto truncated;
		v = p + off;
		off += vlen;
		/* duplicates are found below in one sorted pass: a
		 * pairwise check here would be quadratic in a header
		 * nobody has authenticated yet */
		if ((r = ec_append(out, (const char *)k, klen, (const char *)v,
		         vlen, false)) != 0) {
			ward_ec_free(out);
			return r;
		}
	}
	if (off != len) {
		ward_ec_free(out);
		return ward_errf(WARD_EFORMAT,
		    "encryption context length %zu does not match its %zu pairs",
		    len, count);
	}
	if ((r = check_duplicates(out)) != 0)
		ward_ec_free(out);
	return r;
truncated:
	ward_ec_free(out);
	return ward_errf(
	    WARD_EFORMAT, "encryption context entries run past its length");
}

int
ward_ec_copy(struct ward_ec *dst, const struct ward_ec *src)
{
	int r;

	memset(dst, 0, sizeof(*dst));
	if (src == NULL)
		return 0;
	for (size_t i = 0; i < src->n; i++)
		if ((r = ward_ec_add(dst, src->pairs[i].key,
		         src->pairs[i].key_len, src->pairs[i].value,
		         src->pairs[i].value_len)) != 0) {
			ward_ec_free(dst);
			return r;
		}
	return 0;
}

void
ward_ec_free(struct ward_ec *ec)
{
	for (size_t i = 0; i < ec->n; i++) {
		free(ec->pairs[i].key);
		free(ec->pairs[i].value);
	}
	free(ec->pairs);
	ec->pairs = NULL;
	ec->n = 0;
}
