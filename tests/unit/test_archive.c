/*
 * Directory packing and restore. Hostile archives are built in memory with
 * libarchive and fed to the restore path: each must be refused with its
 * reason, leaving neither the target nor a temporary directory behind.
 */
#include <archive.h>
#include <archive_entry.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

struct entry {
	const char *path;
	mode_t type;
	const char *data; /* regular files */
	const char *target; /* symlinks and hard links */
	int64_t size; /* declared size when data is NULL */
};

static void
make_tar(const struct entry *e, size_t n, struct ward_buf *out)
{
	struct archive *a = archive_write_new();
	size_t used = 0;
	static uint8_t mem[1 << 20];

	archive_write_set_format_pax_restricted(a);
	archive_write_add_filter_none(a);
	assert_int_equal(
	    archive_write_open_memory(a, mem, sizeof(mem), &used), ARCHIVE_OK);
	for (size_t i = 0; i < n; i++) {
		struct archive_entry *ae = archive_entry_new();

		archive_entry_set_pathname(ae, e[i].path);
		archive_entry_set_filetype(ae, e[i].type);
		archive_entry_set_perm(
		    ae, e[i].type == AE_IFDIR ? 0755 : 04755);
		if (e[i].type == AE_IFLNK)
			archive_entry_set_symlink(ae, e[i].target);
		else if (e[i].target != NULL)
			archive_entry_set_hardlink(ae, e[i].target);
		archive_entry_set_size(
		    ae, e[i].data ? (int64_t)strlen(e[i].data) : e[i].size);
		if (e[i].type == AE_IFCHR)
			archive_entry_set_rdev(ae, 0x0103);
		assert_int_equal(archive_write_header(a, ae), ARCHIVE_OK);
		if (e[i].data != NULL)
			archive_write_data(a, e[i].data, strlen(e[i].data));
		archive_entry_free(ae);
	}
	archive_write_close(a);
	archive_write_free(a);
	out->len = 0;
	ASSERT_OK(ward_buf_append(out, mem, used));
}

static int
restore(const struct entry *e, size_t n, const char *dest,
    const struct ward_path_opts *o)
{
	struct ward_buf tar = {0};
	struct ward_mem_reader m = {0};
	int r;

	make_tar(e, n, &tar);
	m.p = tar.p;
	m.len = tar.len;
	r = ward_archive_unpack(ward_mem_read, &m, dest, o);
	ward_buf_free(&tar);
	return r;
}

static void
expect_refused(const struct entry *e, size_t n, int code, const char *why)
{
	char *dir = tu_mkdtemp(), dest[4096];
	struct ward_path_opts o = {.max_entries = 10, .max_bytes = 1 << 20};

	snprintf(dest, sizeof(dest), "%s/out", dir);
	ASSERT_ERR(restore(e, n, dest, &o), code);
	if (strstr(ward_errmsg(), why) == NULL)
		fail_msg("message '%s' lacks '%s'", ward_errmsg(), why);
	/* neither the target nor a temporary directory remains */
	assert_int_equal(tu_count_entries(dir), 0);
	tu_rmtree(dir);
	free(dir);
}

static void
test_restore_good_tree(void **state)
{
	const struct entry e[] = {
	    {"./app", AE_IFDIR},
	    {"./app/run.sh", AE_IFREG, "echo hi\n"},
	    {"./app/lib", AE_IFDIR},
	    {"./app/lib/x", AE_IFREG, "x"},
	    {"./app/link", AE_IFLNK, NULL, "lib/x"},
	    {"./app/up", AE_IFLNK, NULL, "../app/run.sh"},
	    {"./app/hard", AE_IFREG, NULL, "./app/lib/x", 0},
	};
	char *dir = tu_mkdtemp(), dest[4096], p[4200];
	struct ward_path_opts o = {0};
	struct stat st;
	uint8_t *data;
	size_t n;

	snprintf(dest, sizeof(dest), "%s/out", dir);
	ASSERT_OK(restore(e, 7, dest, &o));
	snprintf(p, sizeof(p), "%s/app/run.sh", dest);
	data = tu_read_file(p, &n);
	assert_non_null(data);
	assert_int_equal(n, 8);
	free(data);
	/* set-id bits are dropped */
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755);
	snprintf(p, sizeof(p), "%s/app/link", dest);
	assert_int_equal(lstat(p, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	assert_int_equal(tu_count_entries(dir), 1);
	/* restoring over a non-empty directory is refused */
	ASSERT_ERR(restore(e, 7, dest, &o), WARD_EEXIST);
	tu_rmtree(dir);
	free(dir);
}

static void
test_refuse_absolute(void **state)
{
	const struct entry e[] = {{"/etc/evil", AE_IFREG, "x"}};

	expect_refused(e, 1, WARD_EUNSAFE, "absolute");
}

static void
test_refuse_dotdot(void **state)
{
	const struct entry e[] = {
	    {"a", AE_IFDIR}, {"a/../../evil", AE_IFREG, "x"}};

	expect_refused(e, 2, WARD_EUNSAFE, "'..'");
}

static void
test_refuse_symlink_escape(void **state)
{
	const struct entry abs[] = {{"l", AE_IFLNK, NULL, "/etc/passwd"}};
	const struct entry rel[] = {
	    {"d", AE_IFDIR}, {"d/l", AE_IFLNK, NULL, "../../outside"}};
	const struct entry sneaky[] = {
	    {"d", AE_IFDIR}, {"d/l", AE_IFLNK, NULL, "x/../../../outside"}};

	expect_refused(abs, 1, WARD_EUNSAFE, "absolute");
	expect_refused(rel, 2, WARD_EUNSAFE, "outside");
	expect_refused(sneaky, 2, WARD_EUNSAFE, "outside");
}

/* Found in review: link texts checked alone miss these two. */
static void
test_refuse_trailing_slash_link(void **state)
{
	/* libarchive writes "x/" as "x": the link sits at the root */
	const struct entry e[] = {{"x/", AE_IFLNK, NULL, "../outside"}};

	expect_refused(e, 1, WARD_EUNSAFE, "ends in '/'");
}

static void
test_refuse_chained_link_escape(void **state)
{
	/* a/b -> .. is harmless alone, and x's text never climbs above the
	 * root, but through a/b it does */
	const struct entry e[] = {{"a", AE_IFDIR},
	    {"a/b", AE_IFLNK, NULL, ".."},
	    {"x", AE_IFLNK, NULL, "a/b/a/b/../../../../outside"}};

	expect_refused(e, 3, WARD_EUNSAFE, "resolves outside");
}

static void
test_links_inside_tree_accepted(void **state)
{
	/* chains and dangling links that stay inside are fine */
	const struct entry e[] = {{"a", AE_IFDIR},
	    {"a/b", AE_IFLNK, NULL, ".."}, {"x", AE_IFLNK, NULL, "a/b/a/b/a"},
	    {"y", AE_IFLNK, NULL, "not/yet/there"}};
	char *dir = tu_mkdtemp(), dest[4096];
	struct ward_path_opts o = {0};

	snprintf(dest, sizeof(dest), "%s/out", dir);
	ASSERT_OK(restore(e, 4, dest, &o));
	tu_rmtree(dir);
	free(dir);
}

static void
test_refuse_write_through_symlink(void **state)
{
	/* an in-tree link to a directory, then a file "through" it: the
	 * link is harmless, writing through it is not */
	const struct entry e[] = {{"d", AE_IFDIR}, {"l", AE_IFLNK, NULL, "d"},
	    {"l/f", AE_IFREG, "x"}};

	expect_refused(e, 3, WARD_EUNSAFE, "l/f");
}

static void
test_refuse_hardlink_escape(void **state)
{
	const struct entry e[] = {{"h", AE_IFREG, NULL, "../../etc/passwd", 0}};

	expect_refused(e, 1, WARD_EUNSAFE, "hard link");
}

static void
test_refuse_devices(void **state)
{
	const struct entry chr[] = {{"tty", AE_IFCHR, NULL, NULL, 0}};
	const struct entry fifo[] = {{"p", AE_IFIFO, NULL, NULL, 0}};

	expect_refused(chr, 1, WARD_EUNSAFE, "device");
	expect_refused(fifo, 1, WARD_EUNSAFE, "device");
}

static void
test_refuse_bombs(void **state)
{
	struct entry many[11];
	char names[11][8];
	const struct entry big[] = {
	    {"big", AE_IFREG, NULL, NULL, (int64_t)2 << 20}};

	for (int i = 0; i < 11; i++) {
		snprintf(names[i], sizeof(names[i]), "f%d", i);
		many[i] = (struct entry){names[i], AE_IFREG, "x"};
	}
	expect_refused(many, 11, WARD_ELIMIT, "entries");
	expect_refused(big, 1, WARD_ELIMIT, "bytes");
}

static void
test_refuse_garbage(void **state)
{
	char *dir = tu_mkdtemp(), dest[4096];
	struct ward_path_opts o = {0};
	uint8_t junk[2048];
	struct ward_mem_reader m = {.p = junk, .len = sizeof(junk)};

	memset(junk, 'A', sizeof(junk));
	snprintf(dest, sizeof(dest), "%s/out", dir);
	ASSERT_ERR(
	    ward_archive_unpack(ward_mem_read, &m, dest, &o), WARD_EFORMAT);
	assert_int_equal(tu_count_entries(dir), 0);
	tu_rmtree(dir);
	free(dir);
}

/* pack -> encrypt -> decrypt -> restore, through the path API */
static void
test_directory_round_trip(void **state)
{
	char *dir = tu_mkdtemp(), src[4096], msg[4200], out[4200], p[4300];
	struct ward_keyring *kr = tu_aes_keyring("k", 9);
	struct ward_enc_params ep = {0};
	struct ward_dec_params dp = {0};
	struct ward_path_opts o = {0};
	uint8_t *data;
	size_t n;

	snprintf(src, sizeof(src), "%s/app", dir);
	assert_int_equal(mkdir(src, 0755), 0);
	snprintf(p, sizeof(p), "%s/main.py", src);
	assert_int_equal(tu_write_file(p, "print(1)\n", 9), 0);
	snprintf(p, sizeof(p), "%s/sub", src);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/sub/data.bin", src);
	assert_int_equal(tu_write_file(p, "\0\1\2", 3), 0);
	snprintf(msg, sizeof(msg), "%s/app.ward", dir);
	snprintf(out, sizeof(out), "%s/restored", dir);
	ASSERT_OK(ward_encrypt_path(src, msg, &ep, kr, &o));
	ASSERT_OK(ward_decrypt_path(msg, out, &dp, kr, &o));
	snprintf(p, sizeof(p), "%s/sub/data.bin", out);
	data = tu_read_file(p, &n);
	assert_non_null(data);
	assert_int_equal(n, 3);
	assert_memory_equal(data, "\0\1\2", 3);
	free(data);
	/* the directory message refuses to go to standard output */
	ASSERT_ERR(ward_decrypt_path(msg, "-", &dp, kr, &o), WARD_EUSAGE);
	ward_keyring_free(kr);
	tu_rmtree(dir);
	free(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_restore_good_tree),
	    cmocka_unit_test(test_refuse_absolute),
	    cmocka_unit_test(test_refuse_dotdot),
	    cmocka_unit_test(test_refuse_symlink_escape),
	    cmocka_unit_test(test_refuse_trailing_slash_link),
	    cmocka_unit_test(test_refuse_chained_link_escape),
	    cmocka_unit_test(test_links_inside_tree_accepted),
	    cmocka_unit_test(test_refuse_write_through_symlink),
	    cmocka_unit_test(test_refuse_hardlink_escape),
	    cmocka_unit_test(test_refuse_devices),
	    cmocka_unit_test(test_refuse_bombs),
	    cmocka_unit_test(test_refuse_garbage),
	    cmocka_unit_test(test_directory_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
