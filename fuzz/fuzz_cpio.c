/* libFuzzer: the strict cpio newc reader. Every entry it hands out lies
 * inside the input; every archive it accepts, the writer writes again
 * (its rules are the reader's) and the reader reads back the same. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ward/eif.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
inside(const uint8_t *data, size_t size, const struct ward_cpio_entry *e)
{
	const uint8_t *name = (const uint8_t *)e->name;

	if (name < data || e->name_len >= (size_t)(data + size - name) ||
	    e->name[e->name_len] != '\0' ||
	    memchr(e->name, '\0', e->name_len) != NULL ||
	    e->name_len >= WARD_CPIO_NAME_MAX)
		__builtin_trap();
	if (e->data < data || e->data > data + size ||
	    e->size > (uint64_t)(data + size - e->data))
		__builtin_trap();
}

/* Write e as the writer would; it must accept whatever the reader did. */
static void
rewrite(struct ward_cpio_writer *w, const struct ward_cpio_entry *e)
{
	char target[WARD_CPIO_NAME_MAX];
	int r;

	switch (e->mode & S_IFMT) {
	case S_IFDIR:
		r = ward_cpio_dir(w, e->name, e->mode);
		break;
	case S_IFREG:
		r = ward_cpio_file_mem(
		    w, e->name, e->mode, e->data, (size_t)e->size);
		break;
	case S_IFLNK:
		if (e->size >= sizeof(target))
			__builtin_trap();
		memcpy(target, e->data, (size_t)e->size);
		target[e->size] = '\0';
		r = ward_cpio_symlink(w, e->name, target);
		break;
	default:
		r = ward_cpio_node(w, e->name, e->mode, e->rmajor, e->rminor);
		break;
	}
	if (r != 0)
		__builtin_trap();
}

static bool
same(const struct ward_cpio_entry *a, const struct ward_cpio_entry *b)
{
	uint32_t mode = S_ISLNK(a->mode) ? (S_IFLNK | 0777) : a->mode;
	/* the reader passes rdev on as read; the writer sets it for nodes */
	bool node = !S_ISDIR(a->mode) && !S_ISREG(a->mode) && !S_ISLNK(a->mode);

	return a->name_len == b->name_len &&
	    memcmp(a->name, b->name, a->name_len) == 0 && mode == b->mode &&
	    a->size == b->size &&
	    (a->size == 0 || memcmp(a->data, b->data, (size_t)a->size) == 0) &&
	    (node ? a->rmajor == b->rmajor && a->rminor == b->rminor
	          : b->rmajor == 0 && b->rminor == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ward_cpio_reader rd, back;
	struct ward_cpio_entry e, f;
	struct ward_cpio_writer w;
	struct ward_buf out = {0};
	int r;

	ward_cpio_init(&w, ward_buf_write, &out);
	ward_cpio_reader_init(&rd, data, size);
	while ((r = ward_cpio_next(&rd, &e)) == 1) {
		inside(data, size, &e);
		rewrite(&w, &e);
	}
	if (r != 0)
		goto out;
	/* the end stays the end */
	if (ward_cpio_next(&rd, &e) != 0)
		__builtin_trap();
	if (ward_cpio_finish(&w) != 0 || out.len % 512 != 0)
		__builtin_trap();
	ward_cpio_reader_init(&rd, data, size);
	ward_cpio_reader_init(&back, out.p, out.len);
	while ((r = ward_cpio_next(&rd, &e)) == 1) {
		if (ward_cpio_next(&back, &f) != 1 || !same(&e, &f) ||
		    f.uid != 0 || f.gid != 0 || f.mtime != 0)
			__builtin_trap();
	}
	if (r != 0 || ward_cpio_next(&back, &f) != 0)
		__builtin_trap();
out:
	ward_buf_free(&out);
	return 0;
}
