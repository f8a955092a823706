/*
 * cpio "newc" ramdisks (nitro.md §1.3): the SVR4 portable ASCII format,
 * magic "070701", as the Linux kernel's initramfs loader reads it
 * (Documentation/driver-api/early-userspace/buffer-format.rst). The
 * deterministic writer and the strict in-memory reader sit side by side.
 *
 * An entry is a 110-byte header (the magic, then 13 fields of exactly 8
 * hex digits: c_ino, c_mode, c_uid, c_gid, c_nlink, c_mtime, c_filesize,
 * c_devmajor, c_devminor, c_rdevmajor, c_rdevminor, c_namesize, c_check),
 * then c_namesize bytes of name including its NUL, NULs up to a multiple
 * of 4 counted from the start of the archive, then c_filesize bytes of
 * data and NULs up to a multiple of 4. The entry named TRAILER!!! ends the
 * archive.
 *
 * The writer emits uppercase hex digits, as GNU cpio (to_ascii) and the
 * kernel's usr/gen_init_cpio ("%08X") do; the reader accepts either case.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ward/eif.h"

/* newc stores the traditional Unix mode bits, which are Linux's too. */
_Static_assert(S_IFMT == 0170000 && S_IFSOCK == 0140000 && S_IFLNK == 0120000 &&
        S_IFREG == 0100000 && S_IFBLK == 0060000 && S_IFDIR == 0040000 &&
        S_IFCHR == 0020000 && S_IFIFO == 0010000,
    "newc mode bits");

#define CPIO_MAGIC "070701"
#define CPIO_MAGIC_LEN 6
#define CPIO_FIELD_LEN 8
#define CPIO_HEADER_LEN (CPIO_MAGIC_LEN + CPIO_NFIELDS * CPIO_FIELD_LEN)
#define CPIO_TRAILER "TRAILER!!!"
#define CPIO_TRAILER_LEN 10
#define CPIO_ALIGN 4
/* The kernel's initramfs loader takes the archive in 512-byte blocks. */
#define CPIO_BLOCK 512
/* ward_cpio_file_fd moves a file through this much memory at a time. */
#define CPIO_CHUNK (1024 * 1024)
/* Permission and set-id/sticky bits; with S_IFMT, all a mode may hold. */
#define CPIO_PERM_MASK 07777

/* The header fields, in order, named as the format names them. */
enum cpio_field {
	c_ino,
	c_mode,
	c_uid,
	c_gid,
	c_nlink,
	c_mtime,
	c_filesize,
	c_devmajor,
	c_devminor,
	c_rdevmajor,
	c_rdevminor,
	c_namesize,
	c_check,
	CPIO_NFIELDS
};

_Static_assert(CPIO_HEADER_LEN == 110, "newc header is 110 bytes");

static size_t
pad4(uint64_t off)
{
	return (
	    size_t)((CPIO_ALIGN - (off & (CPIO_ALIGN - 1))) & (CPIO_ALIGN - 1));
}

/*
 * Why a name may not go in an archive, or NULL: it must be relative, with
 * no empty component (no "//", no trailing "/") and no ".." component, so
 * that whatever unpacks it stays inside its target. "." components are
 * harmless and allowed ("find . | cpio -o" writes an entry named ".").
 */
static const char *
name_problem(const char *name, size_t len)
{
	size_t start = 0;

	if (len == 0)
		return "empty name";
	if (name[0] == '/')
		return "absolute name";
	if (name[len - 1] == '/')
		return "trailing '/'";
	for (size_t i = 0; i <= len; i++) {
		if (i < len && name[i] != '/')
			continue;
		if (i == start)
			return "empty component";
		if (i - start == 2 && name[start] == '.' &&
		    name[start + 1] == '.')
			return "'..' component";
		start = i + 1;
	}
	return NULL;
}

/* ---- writer ---- */

void
ward_cpio_init(struct ward_cpio_writer *w, ward_write_fn write, void *ctx)
{
	w->write = write;
	w->ctx = ctx;
	w->offset = 0;
	w->ino = 0;
}

static int
put(struct ward_cpio_writer *w, const uint8_t *p, size_t n)
{
	int r;

	if (n == 0)
		return 0;
	if ((r = w->write(w->ctx, p, n)) != 0)
		return r;
	w->offset += n;
	return 0;
}

/* NULs up to the next multiple of 4 from the start of the archive. */
static int
put_pad(struct ward_cpio_writer *w)
{
	static const uint8_t zero[CPIO_ALIGN];

	return put(w, zero, pad4(w->offset));
}

static void
put_hex8(uint8_t *p, uint32_t v)
{
	static const char digits[] = "0123456789ABCDEF";

	for (int i = CPIO_FIELD_LEN - 1; i >= 0; i--) {
		p[i] = (uint8_t)digits[v & 0xf];
		v >>= 4;
	}
}

/* The header, the name and its NUL, and the padding after them. */
static int
put_header(struct ward_cpio_writer *w, const uint32_t f[CPIO_NFIELDS],
    const char *name)
{
	uint8_t h[CPIO_HEADER_LEN];
	int r;

	memcpy(h, CPIO_MAGIC, CPIO_MAGIC_LEN);
	for (int i = 0; i < CPIO_NFIELDS; i++)
		put_hex8(h + CPIO_MAGIC_LEN + i * CPIO_FIELD_LEN, f[i]);
	if ((r = put(w, h, sizeof(h))) != 0)
		return r;
	/* c_namesize counts the NUL, which is written with the name. */
	if ((r = put(w, (const uint8_t *)name, f[c_namesize])) != 0)
		return r;
	return put_pad(w);
}

/*
 * Check an entry and fill its header fields; nothing is written, so a
 * refused entry leaves the writer as it was. The inode number is taken
 * only once the entry is accepted.
 */
static int
begin_entry(struct ward_cpio_writer *w, const char *name, uint32_t mode,
    uint64_t size, uint32_t f[CPIO_NFIELDS])
{
	const char *why;
	size_t len;

	len = strnlen(name, WARD_CPIO_NAME_MAX);
	/* c_namesize (with the NUL) above PATH_MAX makes the kernel skip
	 * the entry silently. */
	if (len >= WARD_CPIO_NAME_MAX)
		return ward_errf(WARD_ELIMIT,
		    "cpio: name %s... longer than %d bytes",
		    ward_quote(name, 64), WARD_CPIO_NAME_MAX - 1);
	if ((why = name_problem(name, len)) != NULL)
		return ward_errf(WARD_EUNSAFE, "cpio: refusing name %s: %s",
		    ward_quote(name, len), why);
	if (len == CPIO_TRAILER_LEN && memcmp(name, CPIO_TRAILER, len) == 0)
		return ward_errf(WARD_EUNSAFE,
		    "cpio: refusing name %s: it would end the archive",
		    CPIO_TRAILER);
	if ((mode & ~(uint32_t)(S_IFMT | CPIO_PERM_MASK)) != 0)
		return ward_errf(WARD_EUSAGE, "cpio: %s: invalid mode 0%o",
		    ward_quote(name, len), mode);
	/* c_filesize is 32 bits. */
	if (size > UINT32_MAX)
		return ward_errf(WARD_ELIMIT,
		    "cpio: %s: %llu bytes, more than newc's limit of %lu",
		    ward_quote(name, len), (unsigned long long)size,
		    (unsigned long)UINT32_MAX);
	if (w->ino == UINT32_MAX)
		return ward_errf(WARD_ELIMIT, "cpio: too many entries");
	memset(f, 0, CPIO_NFIELDS * sizeof(f[0]));
	f[c_ino] = ++w->ino;
	f[c_mode] = mode;
	f[c_nlink] = S_ISDIR(mode) ? 2 : 1;
	f[c_filesize] = (uint32_t)size;
	f[c_namesize] = (uint32_t)len + 1;
	return 0;
}

static int
check_type(const char *name, uint32_t mode, uint32_t type, const char *what)
{
	if ((mode & S_IFMT) != type)
		return ward_errf(WARD_EUSAGE, "cpio: %s: mode 0%o is not %s",
		    ward_quotes(name), mode, what);
	return 0;
}

/* An entry whose data, if any, is in memory. */
static int
put_entry(struct ward_cpio_writer *w, const char *name, uint32_t mode,
    const uint8_t *p, size_t n, uint32_t rmajor, uint32_t rminor)
{
	uint32_t f[CPIO_NFIELDS];
	int r;

	if ((r = begin_entry(w, name, mode, n, f)) != 0)
		return r;
	f[c_rdevmajor] = rmajor;
	f[c_rdevminor] = rminor;
	if ((r = put_header(w, f, name)) != 0)
		return r;
	if ((r = put(w, p, n)) != 0)
		return r;
	return put_pad(w);
}

int
ward_cpio_dir(struct ward_cpio_writer *w, const char *name, uint32_t mode)
{
	int r;

	if ((r = check_type(name, mode, S_IFDIR, "a directory")) != 0)
		return r;
	return put_entry(w, name, mode, NULL, 0, 0, 0);
}

/* The data is the target without a NUL; the kernel caps it at PATH_MAX
 * and symlink(2) needs room for the NUL. */
int
ward_cpio_symlink(
    struct ward_cpio_writer *w, const char *name, const char *target)
{
	size_t n = strnlen(target, WARD_CPIO_NAME_MAX);

	if (n == 0)
		return ward_errf(WARD_EUSAGE, "cpio: %s: empty symlink target",
		    ward_quotes(name));
	if (n >= WARD_CPIO_NAME_MAX)
		return ward_errf(WARD_ELIMIT,
		    "cpio: %s: symlink target longer than %d bytes",
		    ward_quotes(name), WARD_CPIO_NAME_MAX - 1);
	return put_entry(
	    w, name, S_IFLNK | 0777, (const uint8_t *)target, n, 0, 0);
}

int
ward_cpio_file_mem(struct ward_cpio_writer *w, const char *name, uint32_t mode,
    const uint8_t *p, size_t n)
{
	int r;

	if ((r = check_type(name, mode, S_IFREG, "a regular file")) != 0)
		return r;
	return put_entry(w, name, mode, p, n, 0, 0);
}

/*
 * The file is read in chunks from fd's current position; it must hold
 * exactly size bytes. A file that shrank or grew since the caller took
 * its size is WARD_EIO (after the header went out: the archive is then
 * unusable, as after any failed write).
 */
int
ward_cpio_file_fd(struct ward_cpio_writer *w, const char *name, uint32_t mode,
    int fd, uint64_t size)
{
	struct ward_fd_stream s = {.fd = fd, .name = name};
	uint32_t f[CPIO_NFIELDS];
	uint8_t *buf = NULL, extra;
	uint64_t left = size;
	size_t cap, got;
	int r;

	if ((r = check_type(name, mode, S_IFREG, "a regular file")) != 0)
		return r;
	cap = size < CPIO_CHUNK ? (size_t)size : CPIO_CHUNK;
	if (cap > 0 && (buf = malloc(cap)) == NULL)
		return ward_enomem();
	if ((r = begin_entry(w, name, mode, size, f)) != 0)
		goto out;
	if ((r = put_header(w, f, name)) != 0)
		goto out;
	while (left > 0) {
		size_t want = left < cap ? (size_t)left : cap;

		/* ward_fd_read retries EINTR and stops on a caught signal. */
		if ((r = ward_fd_read(&s, buf, want, &got)) != 0)
			goto out;
		if (got == 0) {
			r = ward_errf(WARD_EIO,
			    "cpio: %s: file shrank to %llu bytes (expected %llu)",
			    ward_quotes(name),
			    (unsigned long long)(size - left),
			    (unsigned long long)size);
			goto out;
		}
		if ((r = put(w, buf, got)) != 0)
			goto out;
		left -= got;
	}
	/* One byte more would be growth: the archive would lie. */
	if ((r = ward_fd_read(&s, &extra, 1, &got)) != 0)
		goto out;
	if (got != 0) {
		r = ward_errf(WARD_EIO,
		    "cpio: %s: file grew beyond %llu bytes while being read",
		    ward_quotes(name), (unsigned long long)size);
		goto out;
	}
	r = put_pad(w);
out:
	free(buf);
	return r;
}

/* Character and block devices; FIFOs and sockets (rdev 0) too, as the
 * kernel makes those with mknod as well. */
int
ward_cpio_node(struct ward_cpio_writer *w, const char *name, uint32_t mode,
    uint32_t rmajor, uint32_t rminor)
{
	uint32_t type = mode & S_IFMT;

	if (type != S_IFCHR && type != S_IFBLK && type != S_IFIFO &&
	    type != S_IFSOCK)
		return ward_errf(WARD_EUSAGE,
		    "cpio: %s: mode 0%o is not a device, FIFO or socket",
		    ward_quotes(name), mode);
	return put_entry(w, name, mode, NULL, 0, rmajor, rminor);
}

/*
 * The TRAILER!!! entry (all fields 0 but c_nlink 1 and c_namesize, as GNU
 * cpio and gen_init_cpio write it), then NULs to a 512-byte multiple.
 */
int
ward_cpio_finish(struct ward_cpio_writer *w)
{
	static const uint8_t zero[CPIO_BLOCK];
	uint32_t f[CPIO_NFIELDS] = {0};
	size_t n;
	int r;

	f[c_nlink] = 1;
	f[c_namesize] = CPIO_TRAILER_LEN + 1;
	if ((r = put_header(w, f, CPIO_TRAILER)) != 0)
		return r;
	n = (size_t)((CPIO_BLOCK - w->offset % CPIO_BLOCK) % CPIO_BLOCK);
	return put(w, zero, n);
}

/* ---- reader ---- */

void
ward_cpio_reader_init(struct ward_cpio_reader *r, const uint8_t *p, size_t len)
{
	r->p = p;
	r->len = len;
	r->pos = 0;
	r->done = false;
}

static int
hexval(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static const char *const field_names[CPIO_NFIELDS] = {"c_ino", "c_mode",
    "c_uid", "c_gid", "c_nlink", "c_mtime", "c_filesize", "c_devmajor",
    "c_devminor", "c_rdevmajor", "c_rdevminor", "c_namesize", "c_check"};

/* The 13 fields after the magic, each exactly 8 hex digits. */
static int
parse_fields(const uint8_t *h, size_t at, uint32_t f[CPIO_NFIELDS])
{
	for (int i = 0; i < CPIO_NFIELDS; i++) {
		const uint8_t *q = h + CPIO_MAGIC_LEN + i * CPIO_FIELD_LEN;
		uint32_t v = 0;

		for (int j = 0; j < CPIO_FIELD_LEN; j++) {
			int d = hexval(q[j]);

			if (d < 0)
				return ward_errf(WARD_EFORMAT,
				    "cpio: offset %zu: %s is not 8 hex digits: %s",
				    at, field_names[i],
				    ward_quote(q, CPIO_FIELD_LEN));
			v = v << 4 | (uint32_t)d;
		}
		f[i] = v;
	}
	return 0;
}

static bool
all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0)
			return false;
	return true;
}

static bool
known_type(uint32_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG:
	case S_IFDIR:
	case S_IFLNK:
	case S_IFCHR:
	case S_IFBLK:
	case S_IFIFO:
	case S_IFSOCK:
		return true;
	default:
		return false;
	}
}

/* After TRAILER!!! only the NULs that pad the archive may follow. */
static int
end_of_archive(
    struct ward_cpio_reader *r, size_t at, size_t next, uint32_t filesize)
{
	if (filesize != 0)
		return ward_errf(WARD_EFORMAT,
		    "cpio: offset %zu: %s entry has data", at, CPIO_TRAILER);
	if (!all_zero(r->p + next, r->len - next))
		return ward_errf(WARD_EFORMAT,
		    "cpio: offset %zu: data after %s (only NUL padding may follow)",
		    next, CPIO_TRAILER);
	r->pos = r->len;
	r->done = true;
	return 0;
}

int
ward_cpio_next(struct ward_cpio_reader *r, struct ward_cpio_entry *e)
{
	const uint8_t *h = r->p + r->pos;
	size_t at = r->pos, avail = r->len - r->pos, name_len, head, npad;
	uint64_t data_len;
	uint32_t f[CPIO_NFIELDS];
	const char *name, *why;
	int rc;

	if (r->done)
		return 0;
	if (avail == 0)
		return ward_errf(WARD_EFORMAT,
		    "cpio: input ends at offset %zu with no %s entry", at,
		    CPIO_TRAILER);
	if (avail >= CPIO_MAGIC_LEN && memcmp(h, "070702", 6) == 0)
		return ward_errf(WARD_EUNSUPPORTED,
		    "cpio: offset %zu: the \"crc\" format (magic 070702) is not supported, only newc (070701)",
		    at);
	if (avail >= CPIO_MAGIC_LEN && memcmp(h, "070707", 6) == 0)
		return ward_errf(WARD_EUNSUPPORTED,
		    "cpio: offset %zu: the \"odc\" format (magic 070707) is not supported, only newc (070701)",
		    at);
	if (avail < CPIO_MAGIC_LEN ||
	    memcmp(h, CPIO_MAGIC, CPIO_MAGIC_LEN) != 0)
		return ward_errf(WARD_EFORMAT,
		    "cpio: offset %zu: no newc magic (070701)%s", at,
		    avail < CPIO_MAGIC_LEN ? " (input truncated)" : "");
	if (avail < CPIO_HEADER_LEN)
		return ward_errf(WARD_EFORMAT,
		    "cpio: offset %zu: header truncated (%zu of %d bytes)", at,
		    avail, CPIO_HEADER_LEN);
	if ((rc = parse_fields(h, at, f)) != 0)
		return rc;

	/* The name: c_namesize bytes with the NUL last and only there,
	 * then NULs to a multiple of 4. Bounded above, so no overflow. */
	if (f[c_namesize] < 1 || f[c_namesize] > WARD_CPIO_NAME_MAX)
		return ward_errf(WARD_EFORMAT,
		    "cpio: offset %zu: c_namesize %u not in 1..%d", at,
		    f[c_namesize], WARD_CPIO_NAME_MAX);
	name = (const char *)h + CPIO_HEADER_LEN;
	name_len = f[c_namesize] - 1;
	npad = pad4((uint64_t)at + CPIO_HEADER_LEN + f[c_namesize]);
	head = CPIO_HEADER_LEN + f[c_namesize] + npad;
	if (avail < head)
		return ward_errf(WARD_EFORMAT,
		    "cpio: offset %zu: name and its padding truncated", at);
	if (memchr(name, '\0', f[c_namesize]) != name + name_len)
		return ward_errf(WARD_EFORMAT,
		    "cpio: offset %zu: name not NUL-terminated at c_namesize",
		    at);
	if (!all_zero(h + CPIO_HEADER_LEN + f[c_namesize], npad))
		return ward_errf(WARD_EFORMAT,
		    "cpio: offset %zu: nonzero padding after the name", at);
	if (name_len == CPIO_TRAILER_LEN &&
	    memcmp(name, CPIO_TRAILER, CPIO_TRAILER_LEN) == 0)
		return end_of_archive(r, at, at + head, f[c_filesize]);
	if ((why = name_problem(name, name_len)) != NULL)
		return ward_errf(WARD_EFORMAT, "cpio: offset %zu: name %s: %s",
		    at, ward_quote(name, name_len), why);

	if (!known_type(f[c_mode]) ||
	    (f[c_mode] & ~(uint32_t)(S_IFMT | CPIO_PERM_MASK)) != 0)
		return ward_errf(WARD_EFORMAT, "cpio: %s: invalid c_mode 0%o",
		    ward_quote(name, name_len), f[c_mode]);
	/* Only files and symlinks carry data (the kernel skips others). */
	if (!S_ISREG(f[c_mode]) && !S_ISLNK(f[c_mode]) && f[c_filesize] != 0)
		return ward_errf(WARD_EFORMAT,
		    "cpio: %s: c_filesize %u for an entry with no data",
		    ward_quote(name, name_len), f[c_filesize]);

	/* The data and its padding, in 64 bits: c_filesize may be
	 * 0xFFFFFFFF and size_t as narrow as 32 bits. */
	data_len = f[c_filesize];
	npad = pad4((uint64_t)at + head + data_len);
	if (data_len + npad > (uint64_t)(avail - head))
		return ward_errf(WARD_EFORMAT,
		    "cpio: %s: c_filesize %u runs past the end of the input",
		    ward_quote(name, name_len), f[c_filesize]);
	if (!all_zero(h + head + data_len, npad))
		return ward_errf(WARD_EFORMAT,
		    "cpio: %s: nonzero padding after the data",
		    ward_quote(name, name_len));
	if (S_ISLNK(f[c_mode]) &&
	    (data_len == 0 || data_len >= WARD_CPIO_NAME_MAX ||
	        memchr(h + head, '\0', (size_t)data_len) != NULL))
		return ward_errf(WARD_EFORMAT,
		    "cpio: %s: symlink target empty, too long or with a NUL",
		    ward_quote(name, name_len));

	e->name = name;
	e->name_len = name_len;
	e->mode = f[c_mode];
	e->uid = f[c_uid];
	e->gid = f[c_gid];
	e->nlink = f[c_nlink];
	e->mtime = f[c_mtime];
	e->rmajor = f[c_rdevmajor];
	e->rminor = f[c_rdevminor];
	e->data = h + head;
	e->size = data_len;
	r->pos = at + head + (size_t)(data_len + npad);
	return 1;
}
