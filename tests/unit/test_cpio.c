/*
 * cpio newc: a known answer derived by hand from the format, cross-checks
 * with libarchive (always) and GNU cpio (when installed), round trips over
 * every padding case, determinism, and the reader's refusals.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "testutil.h"
#include "ward/eif.h"

#define HDR 110
#define Z8 "00000000"

/*
 * dir "dev" 0755, file "init" "hi\n" 0755, symlink "linuxrc" -> "init",
 * by hand: each header is "070701" and 13 fields (c_ino c_mode c_uid c_gid
 * c_nlink c_mtime c_filesize c_devmajor c_devminor c_rdevmajor c_rdevminor
 * c_namesize c_check); header+name padded to 4, data padded to 4.
 */
static const uint8_t kat[512] =
    /* @0 dev: ino 1, 040755, nlink 2, namesize 4; 110+4 -> pad 2 */
    "070701"
    "00000001"
    "000041ED" Z8 Z8 "00000002" Z8 Z8 Z8 Z8 Z8 Z8 "00000004" Z8 "dev\0\0\0"
    /* @116 init: ino 2, 0100755, size 3, namesize 5; 110+5 -> pad 1 */
    "070701"
    "00000002"
    "000081ED" Z8 Z8 "00000001" Z8 "00000003" Z8 Z8 Z8 Z8 "00000005" Z8
    "init\0\0"
    "hi\n\0"
    /* @236 linuxrc: ino 3, 0120777, size 4, namesize 8; 110+8 -> pad 2 */
    "070701"
    "00000003"
    "0000A1FF" Z8 Z8 "00000001" Z8 "00000004" Z8 Z8 Z8 Z8 "00000008" Z8
    "linuxrc\0\0\0"
    "init"
    /* @360 trailer: nlink 1, namesize 11; 110+11 -> pad 3; @484 NULs
     * to 512 */
    "070701" Z8 Z8 Z8 Z8 "00000001" Z8 Z8 Z8 Z8 Z8 Z8 "0000000B" Z8
    "TRAILER!!!\0\0\0\0";
#define KAT_END 484 /* end of the trailer entry */
#define OFF_INIT 116
#define OFF_LINUXRC 236
#define OFF_TRAILER 360

static void
build_kat(struct ward_buf *out)
{
	struct ward_cpio_writer w;

	ward_cpio_init(&w, ward_buf_write, out);
	ASSERT_OK(ward_cpio_dir(&w, "dev", S_IFDIR | 0755));
	ASSERT_OK(ward_cpio_file_mem(
	    &w, "init", S_IFREG | 0755, (const uint8_t *)"hi\n", 3));
	ASSERT_OK(ward_cpio_symlink(&w, "linuxrc", "init"));
	ASSERT_OK(ward_cpio_finish(&w));
	assert_int_equal(w.offset, out->len);
}

/* Read every entry; the count in *n. Returns the first failure or 0. */
static int
read_all(const uint8_t *p, size_t len, int *n)
{
	struct ward_cpio_reader rd;
	struct ward_cpio_entry e;
	int r;

	*n = 0;
	ward_cpio_reader_init(&rd, p, len);
	while ((r = ward_cpio_next(&rd, &e)) == 1) {
		/* every view lies inside the input */
		assert_true((const uint8_t *)e.name >= p);
		assert_true((const uint8_t *)e.name + e.name_len < p + len);
		assert_int_equal(e.name[e.name_len], '\0');
		assert_true(
		    e.data >= p && e.size <= (uint64_t)(p + len - e.data));
		(*n)++;
	}
	return r;
}

/* c_ino of an entry, from the header before its name. */
static uint32_t
entry_ino(const struct ward_cpio_entry *e)
{
	const char *h = e->name - HDR + 6;
	char s[9];

	memcpy(s, h, 8);
	s[8] = '\0';
	return (uint32_t)strtoul(s, NULL, 16);
}

static void
set_field(uint8_t *a, size_t entry, int field, const char *hex8)
{
	memcpy(a + entry + 6 + 8 * field, hex8, 8);
}

static void
expect_kat_entries(const uint8_t *p, size_t n)
{
	struct ward_cpio_reader rd;
	struct ward_cpio_entry e;

	ward_cpio_reader_init(&rd, p, n);
	assert_int_equal(ward_cpio_next(&rd, &e), 1);
	assert_string_equal(e.name, "dev");
	assert_int_equal(e.name_len, 3);
	assert_int_equal(e.mode, S_IFDIR | 0755);
	assert_int_equal(e.nlink, 2);
	assert_int_equal(e.size, 0);
	assert_int_equal(entry_ino(&e), 1);
	assert_int_equal(ward_cpio_next(&rd, &e), 1);
	assert_string_equal(e.name, "init");
	assert_int_equal(e.mode, S_IFREG | 0755);
	assert_int_equal(e.nlink, 1);
	assert_int_equal(e.size, 3);
	assert_memory_equal(e.data, "hi\n", 3);
	assert_int_equal(entry_ino(&e), 2);
	assert_int_equal(ward_cpio_next(&rd, &e), 1);
	assert_string_equal(e.name, "linuxrc");
	assert_int_equal(e.mode, S_IFLNK | 0777);
	assert_int_equal(e.size, 4);
	assert_memory_equal(e.data, "init", 4);
	assert_int_equal(entry_ino(&e), 3);
	assert_int_equal(e.uid, 0);
	assert_int_equal(e.gid, 0);
	assert_int_equal(e.mtime, 0);
	assert_int_equal(ward_cpio_next(&rd, &e), 0);
	/* and stays at the end */
	assert_int_equal(ward_cpio_next(&rd, &e), 0);
}

static void
test_known_answer(void **state)
{
	struct ward_buf b = {0};

	build_kat(&b);
	assert_int_equal(b.len, sizeof(kat));
	assert_memory_equal(b.p, kat, sizeof(kat));
	expect_kat_entries(b.p, b.len);
	ward_buf_free(&b);
}

/* libarchive's cpio reader, an independent implementation, agrees. */
static void
test_libarchive_reads_ours(void **state)
{
	struct archive *a = archive_read_new();
	struct archive_entry *ae;
	char data[16];

	assert_non_null(a);
	assert_int_equal(archive_read_support_format_cpio(a), ARCHIVE_OK);
	assert_int_equal(
	    archive_read_open_memory(a, kat, sizeof(kat)), ARCHIVE_OK);
	assert_int_equal(archive_read_next_header(a, &ae), ARCHIVE_OK);
	assert_int_equal(archive_format(a), ARCHIVE_FORMAT_CPIO_SVR4_NOCRC);
	assert_string_equal(archive_entry_pathname(ae), "dev");
	assert_int_equal(archive_entry_mode(ae), S_IFDIR | 0755);
	assert_int_equal(archive_entry_ino(ae), 1);
	assert_int_equal(archive_entry_nlink(ae), 2);
	assert_int_equal(archive_entry_mtime(ae), 0);
	assert_int_equal(archive_read_next_header(a, &ae), ARCHIVE_OK);
	assert_string_equal(archive_entry_pathname(ae), "init");
	assert_int_equal(archive_entry_mode(ae), S_IFREG | 0755);
	assert_int_equal(archive_entry_size(ae), 3);
	assert_int_equal(archive_entry_uid(ae), 0);
	assert_int_equal(archive_read_data(a, data, sizeof(data)), 3);
	assert_memory_equal(data, "hi\n", 3);
	assert_int_equal(archive_read_next_header(a, &ae), ARCHIVE_OK);
	assert_string_equal(archive_entry_pathname(ae), "linuxrc");
	assert_int_equal(archive_entry_filetype(ae), AE_IFLNK);
	assert_string_equal(archive_entry_symlink(ae), "init");
	assert_int_equal(archive_read_next_header(a, &ae), ARCHIVE_EOF);
	archive_read_free(a);
}

/* libarchive extracts it to disk (as 'cpio -idm' would), with the modes,
 * mtime and symlink the archive says. */
static void
test_libarchive_extracts_ours(void **state)
{
	struct archive *a = archive_read_new();
	struct archive *disk = archive_write_disk_new();
	struct archive_entry *ae;
	char *dir = tu_mkdtemp(), path[4096], link[64];
	struct stat st;
	uint8_t *p;
	size_t n;
	int r;

	assert_non_null(a);
	assert_non_null(disk);
	assert_int_equal(archive_write_disk_set_options(disk,
	                     ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME |
	                         ARCHIVE_EXTRACT_SECURE_NODOTDOT |
	                         ARCHIVE_EXTRACT_SECURE_SYMLINKS),
	    ARCHIVE_OK);
	assert_int_equal(archive_read_support_format_cpio(a), ARCHIVE_OK);
	assert_int_equal(
	    archive_read_open_memory(a, kat, sizeof(kat)), ARCHIVE_OK);
	while ((r = archive_read_next_header(a, &ae)) == ARCHIVE_OK) {
		snprintf(path, sizeof(path), "%s/%s", dir,
		    archive_entry_pathname(ae));
		archive_entry_set_pathname(ae, path);
		if (archive_read_extract2(a, ae, disk) != ARCHIVE_OK)
			fail_msg("extract: %s", archive_error_string(a));
	}
	assert_int_equal(r, ARCHIVE_EOF);
	archive_read_free(a);
	archive_write_free(disk);
	snprintf(path, sizeof(path), "%s/dev", dir);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0755);
	snprintf(path, sizeof(path), "%s/init", dir);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0755);
	assert_int_equal(st.st_mtime, 0);
	p = tu_read_file(path, &n);
	assert_non_null(p);
	assert_int_equal(n, 3);
	assert_memory_equal(p, "hi\n", 3);
	free(p);
	snprintf(path, sizeof(path), "%s/linuxrc", dir);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	assert_int_equal(readlink(path, link, sizeof(link)), 4);
	assert_memory_equal(link, "init", 4);
	assert_int_equal(tu_count_entries(dir), 3);
	tu_rmtree(dir);
	free(dir);
}

/* And what libarchive's newc writer makes, we read. */
static void
test_we_read_libarchive(void **state)
{
	static uint8_t out[64 * 1024];
	struct archive *a = archive_write_new();
	struct archive_entry *ae = archive_entry_new();
	struct ward_cpio_reader rd;
	struct ward_cpio_entry e;
	size_t used = 0;

	assert_non_null(a);
	assert_int_equal(archive_write_set_format_cpio_newc(a), ARCHIVE_OK);
	assert_int_equal(
	    archive_write_open_memory(a, out, sizeof(out), &used), ARCHIVE_OK);
	archive_entry_set_pathname(ae, "d");
	archive_entry_set_filetype(ae, AE_IFDIR);
	archive_entry_set_size(ae, 0);
	archive_entry_set_perm(ae, 0700);
	archive_entry_set_nlink(ae, 2);
	if (archive_write_header(a, ae) != ARCHIVE_OK)
		fail_msg("libarchive: %s", archive_error_string(a));
	archive_entry_clear(ae);
	archive_entry_set_pathname(ae, "d/hello");
	archive_entry_set_filetype(ae, AE_IFREG);
	archive_entry_set_perm(ae, 0640);
	archive_entry_set_nlink(ae, 1);
	archive_entry_set_uid(ae, 1000);
	archive_entry_set_mtime(ae, 1234567890, 0);
	archive_entry_set_size(ae, 5);
	if (archive_write_header(a, ae) != ARCHIVE_OK)
		fail_msg("libarchive: %s", archive_error_string(a));
	assert_int_equal(archive_write_data(a, "hello", 5), 5);
	archive_entry_clear(ae);
	archive_entry_set_pathname(ae, "l");
	archive_entry_set_filetype(ae, AE_IFLNK);
	archive_entry_set_size(ae, 0);
	archive_entry_set_perm(ae, 0777);
	archive_entry_set_nlink(ae, 1);
	archive_entry_set_symlink(ae, "d/hello");
	if (archive_write_header(a, ae) != ARCHIVE_OK)
		fail_msg("libarchive: %s", archive_error_string(a));
	archive_entry_clear(ae);
	archive_entry_set_pathname(ae, "console");
	archive_entry_set_filetype(ae, AE_IFCHR);
	archive_entry_set_size(ae, 0);
	archive_entry_set_perm(ae, 0600);
	archive_entry_set_nlink(ae, 1);
	archive_entry_set_rdevmajor(ae, 5);
	archive_entry_set_rdevminor(ae, 1);
	if (archive_write_header(a, ae) != ARCHIVE_OK)
		fail_msg("libarchive: %s", archive_error_string(a));
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_entry_free(ae);
	archive_write_free(a);

	ward_cpio_reader_init(&rd, out, used);
	assert_int_equal(ward_cpio_next(&rd, &e), 1);
	assert_string_equal(e.name, "d");
	assert_int_equal(e.mode, S_IFDIR | 0700);
	assert_int_equal(ward_cpio_next(&rd, &e), 1);
	assert_string_equal(e.name, "d/hello");
	assert_int_equal(e.mode, S_IFREG | 0640);
	assert_int_equal(e.uid, 1000);
	assert_int_equal(e.mtime, 1234567890);
	assert_int_equal(e.size, 5);
	assert_memory_equal(e.data, "hello", 5);
	assert_int_equal(ward_cpio_next(&rd, &e), 1);
	assert_string_equal(e.name, "l");
	assert_int_equal(e.mode, S_IFLNK | 0777);
	assert_int_equal(e.size, 7);
	assert_memory_equal(e.data, "d/hello", 7);
	assert_int_equal(ward_cpio_next(&rd, &e), 1);
	assert_string_equal(e.name, "console");
	assert_int_equal(e.mode, S_IFCHR | 0600);
	assert_int_equal(e.rmajor, 5);
	assert_int_equal(e.rminor, 1);
	assert_int_equal(ward_cpio_next(&rd, &e), 0);
}

static int
have_gnu_cpio(void)
{
	if (system("cpio --version 2>/dev/null | grep -q 'GNU cpio'") == 0)
		return 1;
	printf("SKIP: GNU cpio not found (the Debian package cpio is "
	       "optional): the cross-check with 'cpio -idm' and "
	       "'cpio -o -H newc' did not run; the libarchive one did\n");
	return 0;
}

/* GNU cpio extracts our archive as the kernel would lay it out. */
static void
test_gnu_cpio_extracts_ours(void **state)
{
	char *dir, path[4096], cmd[8192], link[64];
	struct stat st;
	uint8_t *p;
	size_t n;
	ssize_t ln;

	if (!have_gnu_cpio())
		return;
	dir = tu_mkdtemp();
	snprintf(path, sizeof(path), "%s/a.cpio", dir);
	assert_int_equal(tu_write_file(path, kat, sizeof(kat)), 0);
	snprintf(cmd, sizeof(cmd),
	    "mkdir '%s/x' && cd '%s/x' && "
	    "cpio -idm --no-absolute-filenames --quiet < '%s'",
	    dir, dir, path);
	assert_int_equal(system(cmd), 0);
	snprintf(path, sizeof(path), "%s/x/dev", dir);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	snprintf(path, sizeof(path), "%s/x/init", dir);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0755);
	assert_int_equal(st.st_mtime, 0);
	p = tu_read_file(path, &n);
	assert_non_null(p);
	assert_int_equal(n, 3);
	assert_memory_equal(p, "hi\n", 3);
	free(p);
	snprintf(path, sizeof(path), "%s/x/linuxrc", dir);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	ln = readlink(path, link, sizeof(link));
	assert_int_equal(ln, 4);
	assert_memory_equal(link, "init", 4);
	assert_int_equal(tu_count_entries(dir), 2);
	snprintf(path, sizeof(path), "%s/x", dir);
	assert_int_equal(tu_count_entries(path), 3);
	tu_rmtree(dir);
	free(dir);
}

/* What 'find . | cpio -o -H newc' makes, we read entry by entry. */
static void
test_we_read_gnu_cpio(void **state)
{
	static const struct {
		const char *name;
		mode_t type;
		const char *data;
	} want[] = {{".", S_IFDIR, ""}, {"d", S_IFDIR, ""},
	    {"d/f", S_IFREG, "hello\n"}, {"e", S_IFREG, ""},
	    {"l", S_IFLNK, "d/f"}};
	char *dir, path[4096], cmd[8192];
	struct ward_cpio_reader rd;
	struct ward_cpio_entry e;
	uint8_t *p;
	size_t n, i = 0;
	int r;

	if (!have_gnu_cpio())
		return;
	dir = tu_mkdtemp();
	snprintf(path, sizeof(path), "%s/src", dir);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/src/d", dir);
	assert_int_equal(mkdir(path, 0750), 0);
	snprintf(path, sizeof(path), "%s/src/d/f", dir);
	assert_int_equal(tu_write_file(path, "hello\n", 6), 0);
	assert_int_equal(chmod(path, 0640), 0);
	snprintf(path, sizeof(path), "%s/src/e", dir);
	assert_int_equal(tu_write_file(path, "", 0), 0);
	snprintf(path, sizeof(path), "%s/src/l", dir);
	assert_int_equal(symlink("d/f", path), 0);
	snprintf(cmd, sizeof(cmd),
	    "cd '%s/src' && find . | LC_ALL=C sort | "
	    "cpio -o -H newc --quiet > '%s/b.cpio'",
	    dir, dir);
	assert_int_equal(system(cmd), 0);
	snprintf(path, sizeof(path), "%s/b.cpio", dir);
	p = tu_read_file(path, &n);
	assert_non_null(p);
	assert_int_equal(n % 512, 0);
	ward_cpio_reader_init(&rd, p, n);
	while ((r = ward_cpio_next(&rd, &e)) == 1) {
		const char *name = e.name;

		/* GNU cpio strips a leading "./"; accept it either way */
		if (strncmp(name, "./", 2) == 0)
			name += 2;
		assert_true(i < sizeof(want) / sizeof(want[0]));
		assert_string_equal(name, want[i].name);
		assert_int_equal(e.mode & S_IFMT, want[i].type);
		assert_int_equal(e.size, strlen(want[i].data));
		assert_memory_equal(e.data, want[i].data, e.size);
		if (strcmp(name, "d/f") == 0)
			assert_int_equal(e.mode & 07777, 0640);
		if (strcmp(name, "d") == 0)
			assert_int_equal(e.mode & 07777, 0750);
		i++;
	}
	ASSERT_OK(r);
	assert_int_equal(i, sizeof(want) / sizeof(want[0]));
	free(p);
	tu_rmtree(dir);
	free(dir);
}

/* Names of 1 to 10 bytes (every header+name padding) and data of 0 to 8
 * bytes (every data padding). */
static const struct {
	const char *name;
	size_t size;
} sample_files[] = {{"e", 0}, {"d/1", 1}, {"d/22", 2}, {"d/333", 3},
    {"d/4444", 4}, {"d/55555", 5}, {"d/666666", 6}, {"d/7777777", 7},
    {"d/88888888", 8}, {"d/999999999", 4}};

#define BIG_SIZE (3u * 1024 * 1024)

static void
fill(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 131 + seed * 7 + (i >> 12));
}

/* A temporary file of n pattern bytes, open for reading. */
static int
temp_file(const char *dir, const char *leaf, size_t n, unsigned seed)
{
	char path[4096];
	uint8_t *p = malloc(n ? n : 1);
	int fd;

	assert_non_null(p);
	fill(p, n, seed);
	snprintf(path, sizeof(path), "%s/%s", dir, leaf);
	assert_int_equal(tu_write_file(path, p, n), 0);
	free(p);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	return fd;
}

static void
build_sample(struct ward_buf *out, int big_fd, int small_fd)
{
	struct ward_cpio_writer w;
	uint8_t data[16];

	ward_cpio_init(&w, ward_buf_write, out);
	ASSERT_OK(ward_cpio_dir(&w, "d", S_IFDIR | 0755));
	for (size_t i = 0; i < sizeof(sample_files) / sizeof(sample_files[0]);
	     i++) {
		fill(data, sample_files[i].size, (unsigned)i);
		ASSERT_OK(ward_cpio_file_mem(&w, sample_files[i].name,
		    S_IFREG | 0644, data, sample_files[i].size));
	}
	assert_int_equal(lseek(big_fd, 0, SEEK_SET), 0);
	ASSERT_OK(
	    ward_cpio_file_fd(&w, "big", S_IFREG | 0600, big_fd, BIG_SIZE));
	assert_int_equal(lseek(small_fd, 0, SEEK_SET), 0);
	ASSERT_OK(
	    ward_cpio_file_fd(&w, "d/small", S_IFREG | 04755, small_fd, 5));
	ASSERT_OK(ward_cpio_dir(&w, "dev", S_IFDIR | 0700));
	ASSERT_OK(ward_cpio_node(&w, "dev/console", S_IFCHR | 0600, 5, 1));
	ASSERT_OK(ward_cpio_node(&w, "dev/sda", S_IFBLK | 0660, 8, 0));
	ASSERT_OK(ward_cpio_node(&w, "dev/fifo", S_IFIFO | 0600, 0, 0));
	ASSERT_OK(ward_cpio_symlink(&w, "lnk", "/d/1"));
	ASSERT_OK(ward_cpio_finish(&w));
	assert_int_equal(w.offset, out->len);
	assert_int_equal(out->len % 512, 0);
}

static void
test_round_trip(void **state)
{
	char *dir = tu_mkdtemp();
	int big_fd = temp_file(dir, "big", BIG_SIZE, 99);
	int small_fd = temp_file(dir, "small", 5, 98);
	struct ward_buf a = {0}, b = {0};
	struct ward_cpio_reader rd;
	struct ward_cpio_entry e;
	uint8_t want[16], *big = malloc(BIG_SIZE);
	uint32_t ino = 0;
	int n;

	assert_non_null(big);
	build_sample(&a, big_fd, small_fd);
	/* determinism: the same entries give the same bytes */
	build_sample(&b, big_fd, small_fd);
	assert_int_equal(a.len, b.len);
	assert_memory_equal(a.p, b.p, a.len);

	ward_cpio_reader_init(&rd, a.p, a.len);
	assert_int_equal(ward_cpio_next(&rd, &e), 1);
	assert_string_equal(e.name, "d");
	assert_int_equal(e.nlink, 2);
	assert_int_equal(entry_ino(&e), ++ino);
	for (size_t i = 0; i < sizeof(sample_files) / sizeof(sample_files[0]);
	     i++) {
		assert_int_equal(ward_cpio_next(&rd, &e), 1);
		assert_string_equal(e.name, sample_files[i].name);
		assert_int_equal(e.name_len, strlen(sample_files[i].name));
		assert_int_equal(e.mode, S_IFREG | 0644);
		assert_int_equal(e.nlink, 1);
		assert_int_equal(e.uid, 0);
		assert_int_equal(e.gid, 0);
		assert_int_equal(e.mtime, 0);
		assert_int_equal(e.size, sample_files[i].size);
		fill(want, sample_files[i].size, (unsigned)i);
		if (e.size > 0)
			assert_memory_equal(e.data, want, e.size);
		assert_int_equal(entry_ino(&e), ++ino);
		/* the header starts 4-aligned, the data too */
		assert_int_equal(((const uint8_t *)e.name - HDR - a.p) % 4, 0);
		assert_int_equal((e.data - a.p) % 4, 0);
	}
	assert_int_equal(ward_cpio_next(&rd, &e), 1);
	assert_string_equal(e.name, "big");
	assert_int_equal(e.mode, S_IFREG | 0600);
	assert_int_equal(e.size, BIG_SIZE);
	fill(big, BIG_SIZE, 99);
	assert_memory_equal(e.data, big, BIG_SIZE);
	assert_int_equal(entry_ino(&e), ++ino);
	assert_int_equal(ward_cpio_next(&rd, &e), 1);
	assert_string_equal(e.name, "d/small");
	assert_int_equal(e.mode, S_IFREG | 04755);
	assert_int_equal(e.size, 5);
	fill(want, 5, 98);
	assert_memory_equal(e.data, want, 5);
	assert_int_equal(ward_cpio_next(&rd, &e), 1);
	assert_string_equal(e.name, "dev");
	assert_int_equal(e.mode, S_IFDIR | 0700);
	assert_int_equal(ward_cpio_next(&rd, &e), 1);
	assert_string_equal(e.name, "dev/console");
	assert_int_equal(e.mode, S_IFCHR | 0600);
	assert_int_equal(e.rmajor, 5);
	assert_int_equal(e.rminor, 1);
	assert_int_equal(e.size, 0);
	assert_int_equal(ward_cpio_next(&rd, &e), 1);
	assert_string_equal(e.name, "dev/sda");
	assert_int_equal(e.mode, S_IFBLK | 0660);
	assert_int_equal(e.rmajor, 8);
	assert_int_equal(ward_cpio_next(&rd, &e), 1);
	assert_string_equal(e.name, "dev/fifo");
	assert_int_equal(e.mode, S_IFIFO | 0600);
	assert_int_equal(ward_cpio_next(&rd, &e), 1);
	assert_string_equal(e.name, "lnk");
	assert_int_equal(e.mode, S_IFLNK | 0777);
	assert_int_equal(e.size, 4);
	assert_memory_equal(e.data, "/d/1", 4);
	assert_int_equal(entry_ino(&e), ino + 6);
	assert_int_equal(ward_cpio_next(&rd, &e), 0);
	ASSERT_OK(read_all(a.p, a.len, &n));
	assert_int_equal(n, 18);

	/* a second ramdisk is a different archive: inodes restart at 1 */
	ward_buf_free(&b);
	build_kat(&b);
	assert_memory_equal(b.p, kat, sizeof(kat));

	free(big);
	ward_buf_free(&a);
	ward_buf_free(&b);
	close(big_fd);
	close(small_fd);
	tu_rmtree(dir);
	free(dir);
}

/* A file that changed size between stat and read is refused. */
static void
test_file_fd_size_changed(void **state)
{
	char *dir = tu_mkdtemp();
	int fd = temp_file(dir, "ten", 10, 1);
	int big_fd = temp_file(dir, "big", BIG_SIZE, 2);
	struct ward_buf b = {0};
	struct ward_cpio_writer w;
	int n;

	ward_cpio_init(&w, ward_buf_write, &b);
	/* shrank: 10 bytes where 11 were announced */
	ASSERT_ERR(
	    ward_cpio_file_fd(&w, "f", S_IFREG | 0644, fd, 11), WARD_EIO);
	assert_non_null(strstr(ward_errmsg(), "shrank"));
	/* grew: 10 bytes where 9 were announced */
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	ASSERT_ERR(ward_cpio_file_fd(&w, "f", S_IFREG | 0644, fd, 9), WARD_EIO);
	assert_non_null(strstr(ward_errmsg(), "grew"));
	/* across chunks, too */
	ASSERT_ERR(
	    ward_cpio_file_fd(&w, "big", S_IFREG | 0644, big_fd, BIG_SIZE + 1),
	    WARD_EIO);
	assert_int_equal(lseek(big_fd, 0, SEEK_SET), 0);
	ASSERT_ERR(
	    ward_cpio_file_fd(&w, "big", S_IFREG | 0644, big_fd, BIG_SIZE - 1),
	    WARD_EIO);
	/* exact: fine */
	ward_buf_free(&b);
	ward_cpio_init(&w, ward_buf_write, &b);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	ASSERT_OK(ward_cpio_file_fd(&w, "f", S_IFREG | 0644, fd, 10));
	ASSERT_OK(ward_cpio_finish(&w));
	ASSERT_OK(read_all(b.p, b.len, &n));
	assert_int_equal(n, 1);
	/* a bad descriptor is an I/O error, not a crash */
	ASSERT_ERR(ward_cpio_file_fd(&w, "g", S_IFREG | 0644, -1, 1), WARD_EIO);
	ward_buf_free(&b);
	close(fd);
	close(big_fd);
	tu_rmtree(dir);
	free(dir);
}

static void
test_writer_refuses(void **state)
{
	static const char *const unsafe[] = {"..", "../a", "a/..", "a/../b",
	    "/abs", "/", "", "a//b", "a/", "//", "TRAILER!!!"};
	static const char *const fine[] = {
	    ".", "...", "a/.b", "..a", "a/b..", "a/./b", "TRAILER!!!x"};
	struct ward_buf b = {0};
	struct ward_cpio_writer w;
	char *name = malloc(WARD_CPIO_NAME_MAX + 2);
	uint64_t off;
	uint32_t ino;
	int n;

	assert_non_null(name);
	ward_cpio_init(&w, ward_buf_write, &b);
	ASSERT_OK(ward_cpio_dir(&w, "first", S_IFDIR | 0755));
	off = w.offset;
	ino = w.ino;
	for (size_t i = 0; i < sizeof(unsafe) / sizeof(unsafe[0]); i++) {
		ASSERT_ERR(
		    ward_cpio_dir(&w, unsafe[i], S_IFDIR | 0755), WARD_EUNSAFE);
		ASSERT_ERR(ward_cpio_file_mem(&w, unsafe[i], S_IFREG | 0644,
		               (const uint8_t *)"x", 1),
		    WARD_EUNSAFE);
		ASSERT_ERR(ward_cpio_symlink(&w, unsafe[i], "x"), WARD_EUNSAFE);
		ASSERT_ERR(ward_cpio_node(&w, unsafe[i], S_IFCHR | 0600, 1, 3),
		    WARD_EUNSAFE);
		ASSERT_ERR(
		    ward_cpio_file_fd(&w, unsafe[i], S_IFREG | 0644, -1, 0),
		    WARD_EUNSAFE);
	}
	/* too long: c_namesize, NUL included, is at most
	 * WARD_CPIO_NAME_MAX (the kernel skips longer names) */
	memset(name, 'a', WARD_CPIO_NAME_MAX + 1);
	name[WARD_CPIO_NAME_MAX + 1] = '\0';
	ASSERT_ERR(ward_cpio_dir(&w, name, S_IFDIR | 0755), WARD_ELIMIT);
	name[WARD_CPIO_NAME_MAX] = '\0';
	ASSERT_ERR(ward_cpio_dir(&w, name, S_IFDIR | 0755), WARD_ELIMIT);
	/* modes that do not match the call */
	ASSERT_ERR(ward_cpio_dir(&w, "x", S_IFREG | 0755), WARD_EUSAGE);
	ASSERT_ERR(ward_cpio_dir(&w, "x", 0755), WARD_EUSAGE);
	ASSERT_ERR(
	    ward_cpio_file_mem(&w, "x", S_IFDIR | 0644, NULL, 0), WARD_EUSAGE);
	ASSERT_ERR(
	    ward_cpio_file_mem(&w, "x", 0x10000 | S_IFREG | 0644, NULL, 0),
	    WARD_EUSAGE);
	ASSERT_ERR(
	    ward_cpio_file_fd(&w, "x", S_IFLNK | 0644, -1, 0), WARD_EUSAGE);
	ASSERT_ERR(ward_cpio_node(&w, "x", S_IFREG | 0644, 1, 3), WARD_EUSAGE);
	ASSERT_ERR(ward_cpio_node(&w, "x", S_IFDIR | 0755, 1, 3), WARD_EUSAGE);
	/* symlink targets: not empty, shorter than PATH_MAX */
	ASSERT_ERR(ward_cpio_symlink(&w, "x", ""), WARD_EUSAGE);
	ASSERT_ERR(ward_cpio_symlink(&w, "x", name), WARD_ELIMIT);
	/* sizes past newc's 32 bits (checked before anything is read) */
	if (SIZE_MAX > UINT32_MAX)
		ASSERT_ERR(ward_cpio_file_mem(&w, "x", S_IFREG | 0644,
		               (const uint8_t *)"x", (size_t)UINT32_MAX + 1),
		    WARD_ELIMIT);
	ASSERT_ERR(ward_cpio_file_fd(
	               &w, "x", S_IFREG | 0644, -1, (uint64_t)UINT32_MAX + 1),
	    WARD_ELIMIT);
	/* a refused entry writes nothing and takes no inode number */
	assert_int_equal(w.offset, off);
	assert_int_equal(w.ino, ino);
	assert_int_equal(b.len, off);

	/* the longest name and symlink target that fit */
	name[WARD_CPIO_NAME_MAX - 1] = '\0';
	ASSERT_OK(ward_cpio_dir(&w, name, S_IFDIR | 0755));
	ASSERT_OK(ward_cpio_symlink(&w, "long", name));
	for (size_t i = 0; i < sizeof(fine) / sizeof(fine[0]); i++)
		ASSERT_OK(ward_cpio_dir(&w, fine[i], S_IFDIR | 0755));
	ASSERT_OK(ward_cpio_finish(&w));
	ASSERT_OK(read_all(b.p, b.len, &n));
	assert_int_equal(n, 3 + (int)(sizeof(fine) / sizeof(fine[0])));
	free(name);
	ward_buf_free(&b);
}

/* A ward_write_fn that fails after `left` bytes. */
struct failing {
	size_t left;
};

static int
failing_write(void *ctx, const uint8_t *p, size_t n)
{
	struct failing *f = ctx;

	if (n > f->left)
		return ward_errf(WARD_EIO, "disk full");
	f->left -= n;
	return 0;
}

static void
test_write_errors(void **state)
{
	for (size_t cut = 0; cut < sizeof(kat); cut += 7) {
		struct failing f = {.left = cut};
		struct ward_cpio_writer w;
		int r;

		ward_cpio_init(&w, failing_write, &f);
		r = ward_cpio_dir(&w, "dev", S_IFDIR | 0755);
		if (r == 0)
			r = ward_cpio_file_mem(&w, "init", S_IFREG | 0755,
			    (const uint8_t *)"hi\n", 3);
		if (r == 0)
			r = ward_cpio_symlink(&w, "linuxrc", "init");
		if (r == 0)
			r = ward_cpio_finish(&w);
		assert_int_equal(r, -WARD_EIO);
		assert_string_equal(ward_errmsg(), "disk full");
		assert_true(w.offset <= cut);
	}
}

static void
test_truncations(void **state)
{
	int n;

	/* up to the end of the trailer's padding, every cut is malformed */
	for (size_t len = 0; len < KAT_END; len++) {
		uint8_t *p = malloc(len ? len : 1);

		/* a copy of exactly len bytes, so ASan sees any overread */
		memcpy(p, kat, len);
		ASSERT_ERR(read_all(p, len, &n), WARD_EFORMAT);
		free(p);
	}
	/* the block padding after it is optional */
	for (size_t len = KAT_END; len <= sizeof(kat); len++) {
		uint8_t *p = malloc(len);

		memcpy(p, kat, len);
		ASSERT_OK(read_all(p, len, &n));
		assert_int_equal(n, 3);
		free(p);
	}
	/* no trailer at all */
	ASSERT_ERR(read_all(kat, OFF_TRAILER, &n), WARD_EFORMAT);
	assert_non_null(strstr(ward_errmsg(), "TRAILER!!!"));
}

/* Patch a copy of the known answer and expect a refusal. */
static void
expect_bad(size_t off, const char *bytes, size_t len, int code)
{
	uint8_t a[sizeof(kat)];
	int n;

	memcpy(a, kat, sizeof(a));
	memcpy(a + off, bytes, len);
	ASSERT_ERR(read_all(a, sizeof(a), &n), code);
}

static void
expect_bad_field(size_t entry, int field, const char *hex8, int code)
{
	uint8_t a[sizeof(kat)];
	int n;

	memcpy(a, kat, sizeof(a));
	set_field(a, entry, field, hex8);
	ASSERT_ERR(read_all(a, sizeof(a), &n), code);
}

static void
test_corruptions(void **state)
{
	uint8_t a[sizeof(kat)];
	int n;

	/* magic: crc and odc are named, anything else is not cpio */
	expect_bad(0, "070702", 6, WARD_EUNSUPPORTED);
	assert_non_null(strstr(ward_errmsg(), "crc"));
	expect_bad(OFF_INIT, "070707", 6, WARD_EUNSUPPORTED);
	assert_non_null(strstr(ward_errmsg(), "odc"));
	expect_bad(0, "070700", 6, WARD_EFORMAT);
	expect_bad(OFF_LINUXRC, "\0\0\0\0\0\0", 6, WARD_EFORMAT);
	expect_bad(OFF_TRAILER, "07071", 5, WARD_EFORMAT);
	/* every field is exactly 8 hex digits */
	for (int field = 0; field < 13; field++) {
		expect_bad_field(0, field, "0000000G", WARD_EFORMAT);
		expect_bad_field(OFF_INIT, field, " 0000001", WARD_EFORMAT);
		expect_bad_field(OFF_TRAILER, field, "-0000001", WARD_EFORMAT);
		expect_bad_field(OFF_LINUXRC, field, "0x000001", WARD_EFORMAT);
	}
	/* lowercase hex digits are fine */
	memcpy(a, kat, sizeof(a));
	set_field(a, 0, 1, "000041ed");
	set_field(a, OFF_LINUXRC, 1, "0000a1ff");
	set_field(a, OFF_TRAILER, 11, "0000000b");
	expect_kat_entries(a, sizeof(a));
	/* c_namesize: 0, too short (no NUL at the end), too long (NUL
	 * before the end), beyond the limit, beyond the input */
	expect_bad_field(0, 11, Z8, WARD_EFORMAT);
	expect_bad_field(0, 11, "00000003", WARD_EFORMAT);
	expect_bad_field(0, 11, "00000005", WARD_EFORMAT);
	expect_bad_field(0, 11, "00001001", WARD_EFORMAT);
	expect_bad_field(0, 11, "FFFFFFFF", WARD_EFORMAT);
	expect_bad_field(OFF_TRAILER, 11, "0000000A", WARD_EFORMAT);
	/* c_filesize: beyond the input, misaligning the next header,
	 * eating into nonzero bytes, data on a directory or the trailer */
	expect_bad_field(OFF_INIT, 6, "FFFFFFFF", WARD_EFORMAT);
	expect_bad_field(OFF_INIT, 6, "FFFFFFFD", WARD_EFORMAT);
	expect_bad_field(OFF_INIT, 6, "00000002", WARD_EFORMAT);
	expect_bad_field(OFF_INIT, 6, "00000005", WARD_EFORMAT);
	expect_bad_field(OFF_INIT, 6, "00000007", WARD_EFORMAT);
	expect_bad_field(0, 6, "00000004", WARD_EFORMAT);
	expect_bad_field(OFF_TRAILER, 6, "00000004", WARD_EFORMAT);
	/* symlinks: no empty target */
	expect_bad_field(OFF_LINUXRC, 6, Z8, WARD_EFORMAT);
	/* c_mode: no type, an unknown type, bits beyond the type */
	expect_bad_field(0, 1, "000001ED", WARD_EFORMAT);
	expect_bad_field(0, 1, "0000F1ED", WARD_EFORMAT);
	expect_bad_field(0, 1, "000141ED", WARD_EFORMAT);
	/* unsafe names (same length as "linuxrc") */
	expect_bad(OFF_LINUXRC + HDR, "../init", 7, WARD_EFORMAT);
	expect_bad(OFF_LINUXRC + HDR, "/linuxr", 7, WARD_EFORMAT);
	expect_bad(OFF_LINUXRC + HDR, "lin//rc", 7, WARD_EFORMAT);
	expect_bad(OFF_LINUXRC + HDR, "linuxr/", 7, WARD_EFORMAT);
	expect_bad(OFF_LINUXRC + HDR, "init/..", 7, WARD_EFORMAT);
	expect_bad(OFF_LINUXRC + HDR, "lin\0xrc", 7, WARD_EFORMAT);
	/* nonzero padding after a name or data */
	expect_bad(OFF_INIT - 1, "x", 1, WARD_EFORMAT);
	expect_bad(OFF_LINUXRC - 1, "x", 1, WARD_EFORMAT);
	expect_bad(KAT_END - 1, "x", 1, WARD_EFORMAT);
	/* anything but NULs after the trailer (a second archive too) */
	expect_bad(sizeof(kat) - 1, "x", 1, WARD_EFORMAT);
	expect_bad(KAT_END, "070701", 6, WARD_EFORMAT);
	/* c_check and the other numbers are read, not judged */
	memcpy(a, kat, sizeof(a));
	set_field(a, OFF_INIT, 12, "DEADBEEF");
	set_field(a, OFF_INIT, 2, "000003E8");
	ASSERT_OK(read_all(a, sizeof(a), &n));
	assert_int_equal(n, 3);
}

/* A signal caught by ward_signals_install stops a long copy with
 * WARD_EINTR. Runs last: the flag stays set for the process. */
static void
test_signal(void **state)
{
	char *dir = tu_mkdtemp();
	int fd = temp_file(dir, "f", 100, 3);
	struct ward_buf b = {0};
	struct ward_cpio_writer w;

	ward_signals_install();
	raise(SIGHUP);
	if (ward_signal_caught() == 0) {
		printf("SKIP: SIGHUP is ignored here; signal path not run\n");
	} else {
		ward_cpio_init(&w, ward_buf_write, &b);
		ASSERT_ERR(ward_cpio_file_fd(&w, "f", S_IFREG | 0644, fd, 100),
		    WARD_EINTR);
	}
	ward_buf_free(&b);
	close(fd);
	tu_rmtree(dir);
	free(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_known_answer),
	    cmocka_unit_test(test_libarchive_reads_ours),
	    cmocka_unit_test(test_libarchive_extracts_ours),
	    cmocka_unit_test(test_we_read_libarchive),
	    cmocka_unit_test(test_gnu_cpio_extracts_ours),
	    cmocka_unit_test(test_we_read_gnu_cpio),
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_file_fd_size_changed),
	    cmocka_unit_test(test_writer_refuses),
	    cmocka_unit_test(test_write_errors),
	    cmocka_unit_test(test_truncations),
	    cmocka_unit_test(test_corruptions),
	    cmocka_unit_test(test_signal),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
