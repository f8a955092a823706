/* Growable byte buffers; secret ones are cleansed whenever memory moves. */
#include <stdlib.h>
#include <string.h>

#include "ward/util.h"

void
ward_cleanse(void *p, size_t n)
{
	if (p != NULL && n > 0)
		explicit_bzero(p, n);
}

int
ward_ct_memcmp(const void *a, const void *b, size_t n)
{
	const volatile uint8_t *x = a, *y = b;
	uint8_t d = 0;

	for (size_t i = 0; i < n; i++)
		d |= x[i] ^ y[i];
	return d != 0;
}

int
ward_buf_reserve(struct ward_buf *b, size_t extra)
{
	size_t need, cap;
	uint8_t *p;

	if (extra > SIZE_MAX - b->len)
		return ward_enomem();
	need = b->len + extra;
	if (need <= b->cap)
		return 0;
	/* 256: most buffers here (a request's canonical form, an audit
	 * line, a response) pass 64 and 128 on the way, each a realloc */
	cap = b->cap < 256 ? 256 : b->cap;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	if (b->secret) {
		/* realloc could leave a copy behind: move by hand. */
		if ((p = malloc(cap)) == NULL)
			return ward_enomem();
		if (b->len > 0)
			memcpy(p, b->p, b->len);
		ward_cleanse(b->p, b->cap);
		free(b->p);
	} else if ((p = realloc(b->p, cap)) == NULL)
		return ward_enomem();
	b->p = p;
	b->cap = cap;
	return 0;
}

int
ward_buf_append(struct ward_buf *b, const void *p, size_t n)
{
	int r;

	if (n == 0)
		return 0;
	if ((r = ward_buf_reserve(b, n)) != 0)
		return r;
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

int
ward_buf_put_u8(struct ward_buf *b, uint8_t v)
{
	return ward_buf_append(b, &v, 1);
}

int
ward_buf_put_u16(struct ward_buf *b, uint16_t v)
{
	uint8_t t[2];

	ward_store16(t, v);
	return ward_buf_append(b, t, sizeof(t));
}

int
ward_buf_put_u32(struct ward_buf *b, uint32_t v)
{
	uint8_t t[4];

	ward_store32(t, v);
	return ward_buf_append(b, t, sizeof(t));
}

int
ward_buf_put_u64(struct ward_buf *b, uint64_t v)
{
	uint8_t t[8];

	ward_store64(t, v);
	return ward_buf_append(b, t, sizeof(t));
}

void
ward_buf_free(struct ward_buf *b)
{
	if (b->secret)
		ward_cleanse(b->p, b->cap);
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

int
ward_buf_write(void *ctx, const uint8_t *buf, size_t n)
{
	return ward_buf_append(ctx, buf, n);
}
