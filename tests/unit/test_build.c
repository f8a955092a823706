/* eif/build + eif/oci: images built from a directory and from container
 * images made by real tools (tar, umoci), reproducibility, the ramdisks'
 * contents against the source tree, layer whiteouts, and hostile layers. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "eif/internal.h"
#include "testutil.h"
#include "ward/eif.h"

static int
sh(const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	st = system(cmd);
	return st == 0 ? 0 : -1;
}

static bool
have(const char *tool)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", tool);
	return system(cmd) == 0;
}

static void
put(const char *dir, const char *rel, const char *text, mode_t mode)
{
	char p[4096];

	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	assert_int_equal(tu_write_file(p, text, strlen(text)), 0);
	assert_int_equal(chmod(p, mode), 0);
}

/* A small tree: nested dirs, modes, an empty file, a symlink. */
static void
make_tree(const char *root)
{
	assert_int_equal(sh("mkdir -p '%s/usr/bin' '%s/etc/conf.d' '%s/empty'",
	                     root, root, root),
	    0);
	put(root, "usr/bin/tool", "#!/bin/sh\necho tool\n", 0755);
	put(root, "etc/conf.d/a.conf", "a=1\n", 0644);
	put(root, "etc/secret", "s3cret\n", 0600);
	put(root, "etc/zero", "", 0644);
	assert_int_equal(sh("ln -s ../usr/bin/tool '%s/etc/link'", root), 0);
}

/* The bytes of one ramdisk (index i) of an image. */
static uint8_t *
ramdisk(const char *eif, int which, size_t *len, uint8_t **file)
{
	struct ward_eif_image img;
	size_t n;
	int seen = 0;

	*len = 0;
	memset(&img, 0, sizeof(img));
	ASSERT_OK(ward_eif_read(eif, &img, NULL));
	*file = tu_read_file(eif, &n);
	assert_non_null(*file);
	for (size_t i = 0; i < img.num_sections; i++) {
		const struct ward_eif_section *s = &img.sections[i];

		if (s->type != WARD_EIF_SEC_RAMDISK || seen++ != which)
			continue;
		uint64_t off = s->offset + WARD_EIF_SECTION_HEADER_LEN;

		*len = s->size;
		ward_eif_image_free(&img); /* s points into img */
		return *file + off;
	}
	ward_eif_image_free(&img);
	fail_msg("no ramdisk %d in %s", which, eif);
	abort(); /* not reached: fail_msg does not return */
}

/* Find name in a ramdisk; returns 1 and fills e if present. */
static int
find(const uint8_t *rd, size_t len, const char *name,
    struct ward_cpio_entry *out)
{
	struct ward_cpio_reader r;
	struct ward_cpio_entry e;
	int k;

	memset(out, 0, sizeof(*out));
	out->data = (const uint8_t *)""; /* never NULL, even when absent */
	ward_cpio_reader_init(&r, rd, len);
	while ((k = ward_cpio_next(&r, &e)) == 1) {
		if (strcmp(e.name, name) == 0) {
			*out = e;
			return 1;
		}
	}
	if (k < 0)
		fail_msg("ramdisk: %s", ward_errmsg());
	return 0;
}

/*
 * Every file, directory and symlink under src appears under prefix in the
 * ramdisk with the same type, permissions, contents and target.
 */
static void
compare_tree(const uint8_t *rd, size_t len, const char *src, const char *prefix)
{
	DIR *d = opendir(src);
	struct dirent *de;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		char p[4096], name[4096], target[4096];
		struct ward_cpio_entry e;
		struct stat st;

		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", src, de->d_name);
		snprintf(name, sizeof(name), "%s/%s", prefix, de->d_name);
		assert_int_equal(lstat(p, &st), 0);
		if (!find(rd, len, name, &e))
			fail_msg("%s missing from the image", name);
		if ((e.mode & S_IFMT) != (st.st_mode & S_IFMT))
			fail_msg("%s: type differs", name);
		if (S_ISLNK(st.st_mode)) {
			ssize_t k = readlink(p, target, sizeof(target));

			assert_true(k > 0);
			assert_int_equal(e.size, (uint64_t)k);
			assert_memory_equal(e.data, target, (size_t)k);
			continue;
		}
		if ((e.mode & 07777) != (st.st_mode & 07777))
			fail_msg("%s: mode %o, not %o", name, e.mode & 07777,
			    st.st_mode & 07777);
		if (S_ISDIR(st.st_mode)) {
			compare_tree(rd, len, p, name);
		} else {
			size_t n;
			uint8_t *want = tu_read_file(p, &n);

			assert_non_null(want);
			assert_int_equal(e.size, n);
			if (n > 0)
				assert_memory_equal(e.data, want, n);
			free(want);
		}
	}
	closedir(d);
}

static void
test_rootfs_reproducible(void **state)
{
	char *dir = tu_mkdtemp();
	char src[4096], a[4096], b[4096];
	struct ward_eif_image ia, ib;
	const char *cmd[] = {"/usr/bin/tool", "--flag"};
	const char *env[] = {"MODE=test"};
	struct ward_enclave_spec s = {
	    .rootfs = src,
	    .cmd = cmd,
	    .cmd_len = 2,
	    .env = env,
	    .env_len = 1,
	    .no_ward = true,
	};
	size_t na, nb, rdlen;
	uint8_t *fa, *fb, *file;
	const uint8_t *rd;
	struct ward_cpio_entry e;

	memset(&ia, 0, sizeof(ia));
	memset(&ib, 0, sizeof(ib));
	snprintf(src, sizeof(src), "%s/src", dir);
	make_tree(src);
	assert_int_equal(sh("mkdir -p '%s/one' '%s/two/deeper'", dir, dir), 0);
	snprintf(a, sizeof(a), "%s/one/app.eif", dir);
	snprintf(b, sizeof(b), "%s/two/deeper/app.eif", dir);
	ASSERT_OK(ward_build_enclave(&s, a, &ia, NULL));
	/* new times on every source file, a second later */
	sleep(1);
	assert_int_equal(sh("find '%s' -exec touch -h {} +", src), 0);
	ASSERT_OK(ward_build_enclave(&s, b, &ib, NULL));
	fa = tu_read_file(a, &na);
	fb = tu_read_file(b, &nb);
	assert_non_null(fa);
	assert_non_null(fb);
	assert_int_equal(na, nb);
	assert_memory_equal(fa, fb, na);
	assert_memory_equal(ia.pcr0, ib.pcr0, WARD_PCR_LEN);
	free(fa);
	free(fb);

	/* the customer ramdisk holds the tree, cmd and env */
	rd = ramdisk(a, 1, &rdlen, &file);
	compare_tree(rd, rdlen, src, "rootfs");
	assert_int_equal(find(rd, rdlen, "cmd", &e), 1);
	assert_int_equal(e.size, strlen("/usr/bin/tool\n--flag\n"));
	assert_memory_equal(e.data, "/usr/bin/tool\n--flag\n", e.size);
	assert_int_equal(find(rd, rdlen, "env", &e), 1);
	assert_non_null(memmem(e.data, e.size, "MODE=test\n", 10));
	assert_non_null(memmem(e.data, e.size, "PATH=", 5));
	assert_int_equal(find(rd, rdlen, "rootfs/proc", &e), 1);
	assert_int_equal(find(rd, rdlen, "rootfs/ward/bin/ward", &e), 0);
	free(file);
	/* the bootstrap ramdisk: dev/ and ward-init as /init */
	rd = ramdisk(a, 0, &rdlen, &file);
	size_t init_len;
	const uint8_t *init = ward_init_blob(&init_len);
	assert_int_equal(find(rd, rdlen, "init", &e), 1);
	assert_int_equal(e.size, init_len);
	assert_memory_equal(e.data, init, init_len);
	assert_int_equal(e.mode & 07777, 0755);
	assert_int_equal(find(rd, rdlen, "dev", &e), 1);
	free(file);

	ward_eif_image_free(&ia);
	ward_eif_image_free(&ib);
	tu_rmtree(dir);
	free(dir);
}

/* By default ward and its libraries go in, and /cmd runs the agent
 * through the bundled loader; --app lands in /app. */
static void
test_with_ward_and_app(void **state)
{
	char *dir = tu_mkdtemp();
	char src[4096], app[4096], out[4096];
	struct ward_eif_image img;
	struct ward_enclave_spec s = {.rootfs = src, .app = app};
	size_t rdlen;
	uint8_t *file;
	const uint8_t *rd;
	struct ward_cpio_entry e;

	memset(&img, 0, sizeof(img));
	snprintf(src, sizeof(src), "%s/src", dir);
	snprintf(app, sizeof(app), "%s/app", dir);
	snprintf(out, sizeof(out), "%s/w.eif", dir);
	make_tree(src);
	assert_int_equal(sh("mkdir -p '%s/models'", app), 0);
	put(app, "models/m.json", "{\"model\":1}\n", 0644);
	ASSERT_OK(ward_build_enclave(&s, out, &img, NULL));
	rd = ramdisk(out, 1, &rdlen, &file);
	compare_tree(rd, rdlen, app, "rootfs/app");
	assert_int_equal(find(rd, rdlen, "rootfs/ward/bin/ward", &e), 1);
	assert_int_equal(e.mode & 0111, 0111);
	assert_int_equal(
	    find(rd, rdlen, "rootfs/ward/lib/libcrypto.so.3", &e), 1);
	/* and what ward loads on first use, under the names it asks for */
	for (int i = 0; i < WARD_LAZY_N; i++) {
		char lib[256];

		snprintf(lib, sizeof(lib), "rootfs/ward/lib/%s",
		    ward_lazy_soname(i));
		assert_int_equal(find(rd, rdlen, lib, &e), 1);
	}
	assert_int_equal(find(rd, rdlen, "cmd", &e), 1);
	assert_non_null(memmem(e.data, e.size, "/ward/bin/ward\nagent\n", 21));
	assert_non_null(
	    memmem(e.data, e.size, "--library-path\n/ward/lib\n", 25));
	free(file);
	/* an existing output is refused without overwrite */
	ward_eif_image_free(&img);
	ASSERT_ERR(ward_build_enclave(&s, out, &img, NULL), WARD_EEXIST);
	ward_eif_image_free(&img);
	tu_rmtree(dir);
	free(dir);
}

/* A docker-save tarball made with tar: two layers, whiteouts, an opaque
 * directory, the image's Env and Cmd. */
static void
make_docker_save(const char *dir, const char *out)
{
	assert_int_equal(sh("cd '%s' && mkdir -p l1/a l1/b l2/a l2/b img/l1 "
	                    "img/l2",
	                     dir),
	    0);
	put(dir, "l1/a/x", "x\n", 0644);
	put(dir, "l1/a/y", "y\n", 0644);
	put(dir, "l1/b/z", "z\n", 0644);
	put(dir, "l1/c", "c\n", 0644);
	put(dir, "l2/a/.wh.x", "", 0644);
	put(dir, "l2/b/.wh..wh..opq", "", 0644);
	put(dir, "l2/b/new", "new\n", 0644);
	put(dir, "l2/d", "d\n", 0755);
	put(dir, "img/config.json",
	    "{\"config\":{\"Env\":[\"FOO=1\",\"PATH=/bin\"],"
	    "\"Entrypoint\":[\"/bin/run\"],\"Cmd\":[\"--serve\"]}}",
	    0644);
	put(dir, "img/manifest.json",
	    "[{\"Config\":\"config.json\",\"RepoTags\":[\"t:1\"],"
	    "\"Layers\":[\"l1/layer.tar\",\"l2/layer.tar\"]}]",
	    0644);
	assert_int_equal(sh("cd '%s' && tar -C l1 -cf img/l1/layer.tar . && "
	                    "tar -C l2 -cf img/l2/layer.tar . && "
	                    "tar -C img -cf '%s' .",
	                     dir, out),
	    0);
}

static void
test_docker_save_whiteouts(void **state)
{
	char *dir = tu_mkdtemp();
	char tarball[4096], out[4096];
	struct ward_eif_image img;
	struct ward_enclave_spec s = {.oci_archive = tarball, .no_ward = true};
	size_t rdlen;
	uint8_t *file;
	const uint8_t *rd;
	struct ward_cpio_entry e;

	memset(&img, 0, sizeof(img));
	snprintf(tarball, sizeof(tarball), "%s/image.tar", dir);
	snprintf(out, sizeof(out), "%s/d.eif", dir);
	make_docker_save(dir, tarball);
	ASSERT_OK(ward_build_enclave(&s, out, &img, NULL));
	rd = ramdisk(out, 1, &rdlen, &file);
	assert_int_equal(find(rd, rdlen, "rootfs/a/y", &e), 1);
	assert_int_equal(find(rd, rdlen, "rootfs/a/x", &e), 0); /* .wh.x */
	assert_int_equal(find(rd, rdlen, "rootfs/b/z", &e), 0); /* opaque */
	assert_int_equal(find(rd, rdlen, "rootfs/b/new", &e), 1);
	assert_int_equal(find(rd, rdlen, "rootfs/c", &e), 1);
	assert_int_equal(find(rd, rdlen, "rootfs/d", &e), 1);
	assert_int_equal(e.mode & 07777, 0755);
	assert_int_equal(find(rd, rdlen, "rootfs/a/.wh.x", &e), 0);
	assert_int_equal(find(rd, rdlen, "rootfs/b/.wh..wh..opq", &e), 0);
	assert_int_equal(find(rd, rdlen, "cmd", &e), 1);
	assert_int_equal(e.size, strlen("/bin/run\n--serve\n"));
	assert_memory_equal(e.data, "/bin/run\n--serve\n", e.size);
	assert_int_equal(find(rd, rdlen, "env", &e), 1);
	assert_non_null(memmem(e.data, e.size, "FOO=1\n", 6));
	assert_null(memmem(e.data, e.size, "/usr/local/sbin", 15));
	free(file);

	/* the same image under another umask: the same bytes (directories
	 * the layers imply but do not list get 0755 either way) */
	uint8_t pcr2[WARD_PCR_LEN];
	char out2[4200];
	mode_t old = umask(077);

	memcpy(pcr2, img.pcr2, sizeof(pcr2));
	ward_eif_image_free(&img);
	snprintf(out2, sizeof(out2), "%s/d2.eif", dir);
	ASSERT_OK(ward_build_enclave(&s, out2, &img, NULL));
	umask(old);
	assert_memory_equal(img.pcr2, pcr2, sizeof(pcr2));
	ward_eif_image_free(&img);

	/* --env replaces the image's value (one line per key) */
	const char *env[] = {"FOO=2"};
	snprintf(out2, sizeof(out2), "%s/d3.eif", dir);
	s.env = env;
	s.env_len = 1;
	ASSERT_OK(ward_build_enclave(&s, out2, &img, NULL));
	rd = ramdisk(out2, 1, &rdlen, &file);
	assert_int_equal(find(rd, rdlen, "env", &e), 1);
	assert_non_null(memmem(e.data, e.size, "FOO=2\n", 6));
	assert_null(memmem(e.data, e.size, "FOO=1", 5));
	assert_int_equal(memcmp(e.data, "PATH=/bin\n", 10), 0);
	free(file);
	ward_eif_image_free(&img);
	tu_rmtree(dir);
	free(dir);
}

/* A ustar member, written by hand so that a test can say things GNU tar
 * will not (a hard link with data, to an absolute path). */
static void
tar_add(struct ward_buf *t, const char *name, char type, const char *link,
    const void *data, size_t n)
{
	uint8_t h[512] = {0};
	unsigned sum = 0;
	uint8_t pad[512] = {0};

	snprintf((char *)h, 100, "%s", name);
	snprintf((char *)h + 100, 8, "%07o", 0644);
	snprintf((char *)h + 108, 8, "%07o", 0);
	snprintf((char *)h + 116, 8, "%07o", 0);
	snprintf((char *)h + 124, 12, "%011zo", n);
	snprintf((char *)h + 136, 12, "%011o", 0);
	memset(h + 148, ' ', 8);
	h[156] = (uint8_t)type;
	if (link != NULL)
		snprintf((char *)h + 157, 100, "%s", link);
	memcpy(h + 257, "ustar", 6);
	memcpy(h + 263, "00", 2);
	for (size_t i = 0; i < 512; i++)
		sum += h[i];
	snprintf((char *)h + 148, 8, "%06o", sum);
	ASSERT_OK(ward_buf_append(t, h, sizeof(h)));
	ASSERT_OK(ward_buf_append(t, data, n));
	ASSERT_OK(ward_buf_append(t, pad, (512 - n % 512) % 512));
}

/* A member with a long name, through a pax extended header. */
static void
tar_add_pax_path(
    struct ward_buf *t, const char *path, const void *data, size_t n)
{
	char rec[8192];
	size_t len = strlen(path) + strlen(" path=\n");
	size_t digits = 1;

	while (snprintf(NULL, 0, "%zu", len + digits) > (int)digits)
		digits++;
	snprintf(rec, sizeof(rec), "%zu path=%s\n", len + digits, path);
	tar_add(t, "PaxHeader", 'x', NULL, rec, strlen(rec));
	tar_add(t, "placeholder", '0', NULL, data, n);
}

/* Layers that try to reach outside the image are refused, and nothing
 * outside is touched. */
static void
test_hostile_layers(void **state)
{
	char *dir = tu_mkdtemp();
	char tarball[4096], out[4096], victim[2048];
	struct ward_eif_image img;
	struct ward_enclave_spec s = {.oci_archive = tarball, .no_ward = true};
	struct stat st;

	memset(&img, 0, sizeof(img));
	snprintf(tarball, sizeof(tarball), "%s/image.tar", dir);
	snprintf(out, sizeof(out), "%s/h.eif", dir);
	snprintf(victim, sizeof(victim), "%s/victim", dir);
	assert_int_equal(sh("mkdir -p '%s/keep'", victim), 0);
	put(victim, "keep/file", "precious\n", 0644);

	/* 1: a whiteout through a symlink a lower layer planted */
	/* layer 2 holds only the whiteout, not its parent directory */
	assert_int_equal(sh("cd '%s' && rm -rf l1 l2 img && mkdir -p l1 l2/l "
	                    "img/l1 img/l2 && ln -s '%s' l1/l && "
	                    ": > l2/l/.wh.keep",
	                     dir, victim),
	    0);
	put(dir, "img/config.json", "{}", 0644);
	put(dir, "img/manifest.json",
	    "[{\"Config\":\"config.json\",\"Layers\":[\"l1/layer.tar\","
	    "\"l2/layer.tar\"]}]",
	    0644);
	assert_int_equal(sh("cd '%s' && tar -C l1 -cf img/l1/layer.tar . && "
	                    "tar -C l2 -cf img/l2/layer.tar ./l/.wh.keep && "
	                    "tar -C img -cf '%s' .",
	                     dir, tarball),
	    0);
	int r = ward_build_enclave(&s, out, &img, NULL);
	assert_true(r == -WARD_EUNSAFE);
	print_message("whiteout via symlink: %s\n", ward_errmsg());
	assert_int_equal(stat("/dev/null", &st), 0);
	assert_int_equal(lstat(out, &st), -1);
	char kept[4200];
	snprintf(kept, sizeof(kept), "%s/keep/file", victim);
	assert_int_equal(stat(kept, &st), 0); /* untouched */

	/* 2: a file written through that symlink */
	assert_int_equal(sh("cd '%s' && rm -rf l2 && mkdir -p l2/l && "
	                    "echo owned > l2/l/planted && "
	                    "tar -C l2 -cf img/l2/layer.tar ./l/planted && "
	                    "tar -C img -cf '%s' .",
	                     dir, tarball),
	    0);
	/* a member below a symlink that leaves the image is refused */
	ASSERT_ERR(ward_build_enclave(&s, out, &img, NULL), WARD_EUNSAFE);
	print_message("write via symlink: %s\n", ward_errmsg());
	snprintf(kept, sizeof(kept), "%s/planted", victim);
	assert_int_equal(lstat(kept, &st), -1);

	/* 2b: a file where the symlink's target holds a directory: the
	 * directory-in-the-way removal must not follow the symlink */
	assert_int_equal(sh("cd '%s' && rm -rf l2 && mkdir -p l2/l && "
	                    "echo x > l2/l/keep && "
	                    "tar -C l2 -cf img/l2/layer.tar ./l/keep && "
	                    "tar -C img -cf '%s' .",
	                     dir, tarball),
	    0);
	ASSERT_ERR(ward_build_enclave(&s, out, &img, NULL), WARD_EUNSAFE);
	snprintf(kept, sizeof(kept), "%s/keep/file", victim);
	assert_int_equal(stat(kept, &st), 0); /* still there */

	/* 3: a member named with ".." */
	assert_int_equal(sh("cd '%s' && rm -rf l1 && mkdir -p l1/x && "
	                    "echo up > l1/up && (cd l1/x && tar -P -cf "
	                    "../../img/l1/layer.tar ../up) && "
	                    "tar -C img -cf '%s' .",
	                     dir, tarball),
	    0);
	ASSERT_ERR(ward_build_enclave(&s, out, &img, NULL), WARD_EUNSAFE);
	print_message("dot-dot member: %s\n", ward_errmsg());

	/* 3b: the outer archive carries a hard link to a host file, with
	 * data: never created, never written through */
	char target[4200];
	snprintf(target, sizeof(target), "%s/keep/file", victim);
	{
		struct ward_buf t = {0};
		char p1[4200];
		size_t n;
		uint8_t *b;

		snprintf(p1, sizeof(p1), "%s/img/manifest.json", dir);
		b = tu_read_file(p1, &n);
		tar_add(&t, "manifest.json", '0', NULL, b, n);
		free(b);
		tar_add(&t, "config.json", '0', NULL, "{}", 2);
		snprintf(p1, sizeof(p1), "%s/img/l1/layer.tar", dir);
		b = tu_read_file(p1, &n);
		tar_add(&t, "l1/layer.tar", '0', NULL, b, n);
		tar_add(&t, "l2/layer.tar", '0', NULL, b, n);
		free(b);
		tar_add(&t, "x", '1', target, "PWNED", 5);
		ASSERT_OK(ward_buf_append(&t, NULL, 0));
		uint8_t zero[1024] = {0};
		ASSERT_OK(ward_buf_append(&t, zero, sizeof(zero)));
		snprintf(tarball, sizeof(tarball), "%s/hl.tar", dir);
		assert_int_equal(tu_write_file(tarball, t.p, t.len), 0);
		ward_buf_free(&t);
	}
	(void)ward_build_enclave(&s, out, &img, NULL);
	{
		size_t n;
		uint8_t *b = tu_read_file(target, &n);

		assert_non_null(b);
		assert_int_equal(n, strlen("precious\n"));
		assert_memory_equal(b, "precious\n", n);
		free(b);
		assert_int_equal(stat(target, &st), 0);
		assert_int_equal(st.st_nlink, 1);
	}
	ward_eif_image_free(&img);
	unlink(out);
	snprintf(tarball, sizeof(tarball), "%s/image.tar", dir);

	/* 3c: a member 2000 directories deep: a limit, not a crash */
	{
		struct ward_buf t = {0};
		char *deep = malloc(2000 * 2 + 2);
		char p1[4200];

		assert_non_null(deep);
		for (int k = 0; k < 2000; k++)
			memcpy(deep + 2 * k, "d/", 2);
		memcpy(deep + 4000, "f", 2);
		tar_add_pax_path(&t, deep, "x", 1);
		uint8_t zero[1024] = {0};
		ASSERT_OK(ward_buf_append(&t, zero, sizeof(zero)));
		snprintf(p1, sizeof(p1), "%s/img/l1/layer.tar", dir);
		assert_int_equal(tu_write_file(p1, t.p, t.len), 0);
		ward_buf_free(&t);
		free(deep);
	}
	assert_int_equal(
	    sh("cd '%s' && tar -C img -cf '%s' .", dir, tarball), 0);
	ASSERT_ERR(ward_build_enclave(&s, out, &img, NULL), WARD_ELIMIT);

	/* 4: neither layout */
	put(dir, "junk.tar", "not a tar at all", 0644);
	snprintf(tarball, sizeof(tarball), "%s/junk.tar", dir);
	assert_true(ward_build_enclave(&s, out, &img, NULL) < 0);
	assert_int_equal(lstat(out, &st), -1);
	tu_rmtree(dir);
	free(dir);
}

/* An OCI layout made by umoci (a tool nobody here wrote) from a directory
 * converts to an image whose rootfs matches the directory. */
static void
test_umoci_layout(void **state)
{
	char *dir = tu_mkdtemp();
	char src[4096], tarball[4096], out[4096];
	struct ward_eif_image img;
	struct ward_enclave_spec s = {.oci_archive = tarball, .no_ward = true};
	size_t rdlen;
	uint8_t *file;
	const uint8_t *rd;
	struct ward_cpio_entry e;

	if (!have("umoci")) {
		print_message(
		    "SKIP: umoci is not installed (scripts/install-deps "
		    "installs it): the OCI layout test did not run\n");
		tu_rmtree(dir);
		free(dir);
		skip();
		return;
	}
	memset(&img, 0, sizeof(img));
	snprintf(src, sizeof(src), "%s/src", dir);
	snprintf(tarball, sizeof(tarball), "%s/oci.tar", dir);
	snprintf(out, sizeof(out), "%s/u.eif", dir);
	make_tree(src);
	assert_int_equal(
	    sh("cd '%s' && umoci init --layout layout >/dev/null && "
	       "umoci new --image layout:t >/dev/null && "
	       "umoci unpack --image layout:t bundle >/dev/null && "
	       "cp -a src/. bundle/rootfs/ && "
	       "umoci repack --image layout:t bundle >/dev/null && "
	       "umoci config --image layout:t --config.cmd /usr/bin/tool "
	       "--config.env GREETING=hi >/dev/null && "
	       "umoci gc --layout layout && tar -C layout -cf oci.tar .",
	        dir),
	    0);
	ASSERT_OK(ward_build_enclave(&s, out, &img, NULL));
	rd = ramdisk(out, 1, &rdlen, &file);
	compare_tree(rd, rdlen, src, "rootfs");
	assert_int_equal(find(rd, rdlen, "cmd", &e), 1);
	assert_int_equal(e.size, strlen("/usr/bin/tool\n"));
	assert_int_equal(find(rd, rdlen, "env", &e), 1);
	assert_non_null(memmem(e.data, e.size, "GREETING=hi\n", 12));
	free(file);
	ward_eif_image_free(&img);

	/* a blob that no longer matches its digest is refused */
	assert_int_equal(
	    sh("cd '%s' && f=$(ls layout/blobs/sha256 | head -1) && "
	       "chmod u+w layout/blobs/sha256/$f && "
	       "printf x >> layout/blobs/sha256/$f && "
	       "tar -C layout -cf oci.tar .",
	        dir),
	    0);
	assert_true(ward_build_enclave(&s, out, &img, NULL) < 0);
	tu_rmtree(dir);
	free(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rootfs_reproducible),
	    cmocka_unit_test(test_with_ward_and_app),
	    cmocka_unit_test(test_docker_save_whiteouts),
	    cmocka_unit_test(test_hostile_layers),
	    cmocka_unit_test(test_umoci_layout),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
