/*
 * Directories as tar streams (libarchive, pax format). Packing walks the
 * tree in sorted order with owners and user names dropped, so the same
 * tree gives the same archive. Restoring refuses, with a reason, every
 * entry that could write outside the target or surprise its owner:
 * absolute paths, "..", links whose target escapes, device files, fifos
 * and sockets, and archives past the entry-count or size limits. The tree
 * is built in a temporary directory and renamed into place only after the
 * whole message authenticated.
 */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ward/envelope.h"

#define ARCHIVE_CHUNK (64u << 10)

static int check_symlink(const char *path, const char *target);

/* ---- pack ------------------------------------------------------------- */

struct pack_ctx {
	ward_write_fn sink;
	void *sink_ctx;
	int err;
};

static la_ssize_t
pack_write(struct archive *a, void *ctx, const void *buf, size_t n)
{
	struct pack_ctx *c = ctx;
	int r;

	if ((r = c->sink(c->sink_ctx, buf, n)) != 0) {
		c->err = r;
		return -1;
	}
	return (la_ssize_t)n;
}

static int
archive_fail(struct archive *a, struct pack_ctx *c, const char *what)
{
	if (c != NULL && c->err != 0)
		return c->err;
	return ward_errf(WARD_EIO, "%s: %s", what,
	    archive_error_string(a) ? archive_error_string(a)
	                            : "archive error");
}

static int
pack_file(struct archive *a, struct pack_ctx *c, const char *path)
{
	uint8_t buf[ARCHIVE_CHUNK];
	int fd, r = 0;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
		return ward_errf(WARD_EIO, "%s: %s", path, strerror(errno));
	for (;;) {
		ssize_t n;

		if (ward_signal_caught() != 0) {
			r = ward_errf(WARD_EINTR, "interrupted by signal %d",
			    ward_signal_caught());
			break;
		}
		if ((n = read(fd, buf, sizeof(buf))) < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = ward_errf(
			    WARD_EIO, "%s: %s", path, strerror(errno));
			break;
		}
		if (n == 0)
			break;
		if (archive_write_data(a, buf, (size_t)n) != n) {
			r = archive_fail(a, c, path);
			break;
		}
	}
	ward_cleanse(buf, sizeof(buf));
	close(fd);
	return r;
}

/* Add path (relative name rel) and, for a directory, its children. */
static int
pack_tree(
    struct archive *a, struct pack_ctx *c, const char *path, const char *rel)
{
	struct archive_entry *e = NULL;
	struct dirent **names = NULL;
	struct stat st;
	int n = 0, r = 0;

	/* the root as given may be a link to the directory: follow it */
	if ((rel == NULL ? stat(path, &st) : lstat(path, &st)) != 0)
		return ward_errf(WARD_EIO, "%s: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) &&
	    !S_ISLNK(st.st_mode))
		return ward_errf(WARD_EUNSAFE,
		    "%s: cannot pack a device, fifo or socket", path);
	if (rel != NULL) {
		if ((e = archive_entry_new()) == NULL)
			return ward_enomem();
		archive_entry_copy_stat(e, &st);
		archive_entry_set_pathname(e, rel);
		archive_entry_set_uid(e, 0);
		archive_entry_set_gid(e, 0);
		archive_entry_set_uname(e, NULL);
		archive_entry_set_gname(e, NULL);
		archive_entry_set_nlink(e, 1);
		archive_entry_set_ino(e, 0);
		archive_entry_set_dev(e, 0);
		archive_entry_unset_atime(e);
		archive_entry_unset_ctime(e);
		if (!S_ISREG(st.st_mode))
			archive_entry_set_size(e, 0);
		if (S_ISLNK(st.st_mode)) {
			char target[PATH_MAX];
			ssize_t len =
			    readlink(path, target, sizeof(target) - 1);

			if (len < 0) {
				r = ward_errf(
				    WARD_EIO, "%s: %s", path, strerror(errno));
				goto out;
			}
			target[len] = '\0';
			/* what restore would refuse, refuse now */
			if ((r = check_symlink(rel, target)) != 0) {
				r = ward_err_prefix(r,
				    "cannot pack %s (restore would refuse it; make the link relative and inside the directory)",
				    path);
				goto out;
			}
			archive_entry_set_symlink(e, target);
		}
		if (archive_write_header(a, e) != ARCHIVE_OK) {
			r = archive_fail(a, c, path);
			goto out;
		}
		if (S_ISREG(st.st_mode) && (r = pack_file(a, c, path)) != 0)
			goto out;
	}
	if (!S_ISDIR(st.st_mode))
		goto out;
	if ((n = scandir(path, &names, NULL, alphasort)) < 0) {
		n = 0;
		r = ward_errf(WARD_EIO, "%s: %s", path, strerror(errno));
		goto out;
	}
	for (int i = 0; i < n && r == 0; i++) {
		const char *name = names[i]->d_name;
		char *child = NULL, *child_rel = NULL;

		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			continue;
		if (asprintf(&child, "%s/%s", path, name) < 0 ||
		    asprintf(&child_rel, "%s%s%s", rel ? rel : "",
		        rel ? "/" : "", name) < 0) {
			free(child);
			r = ward_enomem();
			break;
		}
		r = pack_tree(a, c, child, child_rel);
		free(child);
		free(child_rel);
	}
out:
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	archive_entry_free(e);
	return r;
}

int
ward_archive_pack(const char *dir, ward_write_fn sink, void *sink_ctx)
{
	struct pack_ctx c = {.sink = sink, .sink_ctx = sink_ctx};
	struct archive *a;
	int r;

	/* loaded on first use (src/util/lazy.c): an error here, before
	 * anything is written, if it cannot be */
	if ((r = ward_lazy_load(WARD_LAZY_ARCHIVE)) != 0)
		return r;
	if ((a = archive_write_new()) == NULL)
		return ward_enomem();
	if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
	    archive_write_add_filter_none(a) != ARCHIVE_OK ||
	    archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
	    archive_write_open(a, &c, NULL, pack_write, NULL) != ARCHIVE_OK) {
		r = archive_fail(a, &c, "tar set-up");
		goto out;
	}
	if ((r = pack_tree(a, &c, dir, NULL)) != 0)
		goto out;
	if (archive_write_close(a) != ARCHIVE_OK)
		r = archive_fail(a, &c, dir);
out:
	archive_write_free(a);
	return r;
}

/* ---- unpack ----------------------------------------------------------- */

struct unpack_ctx {
	ward_read_fn src;
	void *src_ctx;
	uint8_t buf[ARCHIVE_CHUNK];
	int err;
};

static la_ssize_t
unpack_read(struct archive *a, void *ctx, const void **out)
{
	struct unpack_ctx *c = ctx;
	size_t got;
	int r;

	if ((r = c->src(c->src_ctx, c->buf, sizeof(c->buf), &got)) != 0) {
		c->err = r;
		archive_set_error(a, EIO, "%s", ward_errmsg());
		return -1;
	}
	*out = c->buf;
	return (la_ssize_t)got;
}

/*
 * A relative path with no "..", no empty name, not absolute. Leading "./"
 * components are allowed (tar writes them).
 */
static int
check_path(const char *what, const char *p)
{
	const char *s = p;

	if (p == NULL || *p == '\0')
		return ward_errf(
		    WARD_EUNSAFE, "archive %s has an empty name", what);
	if (*p == '/')
		return ward_errf(WARD_EUNSAFE,
		    "archive %s '%s' has an absolute path", what,
		    ward_quotes(p));
	while (*s != '\0') {
		size_t n = strcspn(s, "/");

		if (n == 2 && s[0] == '.' && s[1] == '.')
			return ward_errf(WARD_EUNSAFE,
			    "archive %s '%s' has a '..' component", what,
			    ward_quotes(p));
		s += n;
		while (*s == '/')
			s++;
	}
	return 0;
}

/* Does the symlink target, read from the entry's directory, stay inside
 * the tree? Lexical: the tree is built fresh, so only archive entries can
 * be links, and libarchive refuses to write through them. */
static int
check_symlink(const char *path, const char *target)
{
	int depth = 0;
	const char *s;

	if (target == NULL || *target == '\0')
		return ward_errf(WARD_EUNSAFE,
		    "archive link '%s' has no target", ward_quotes(path));
	if (*target == '/')
		return ward_errf(WARD_EUNSAFE,
		    "archive link '%s' points to the absolute path '%s'",
		    ward_quotes(path), ward_quotes(target));
	/* depth of the directory holding the link */
	for (s = path; *s != '\0';) {
		size_t n = strcspn(s, "/");

		if (s[n] == '\0')
			break;
		if (!(n == 1 && s[0] == '.') && n > 0)
			depth++;
		s += n;
		while (*s == '/')
			s++;
	}
	for (s = target; *s != '\0';) {
		size_t n = strcspn(s, "/");

		if (n == 2 && s[0] == '.' && s[1] == '.') {
			if (--depth < 0)
				return ward_errf(WARD_EUNSAFE,
				    "archive link '%s' -> '%s' points outside the target directory",
				    ward_quotes(path), ward_quotes(target));
		} else if (n > 0 && !(n == 1 && s[0] == '.'))
			depth++;
		s += n;
		while (*s == '/')
			s++;
	}
	return 0;
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	if (flag == FTW_DP || flag == FTW_D || flag == FTW_DNR)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

static _Thread_local bool saw_unreadable;

static int
chmod_dirs(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	if (flag == FTW_D || flag == FTW_DNR)
		chmod(path, 0700);
	if (flag == FTW_DNR)
		saw_unreadable = true; /* its entries were not visited */
	return 0;
}

/* Remove a partly extracted tree, whatever modes its entries got: make
 * every directory ours again (repeating while unreadable ones turn up),
 * then remove depth first. Says so if anything is left. */
static void
remove_tree(const char *dir)
{
	struct stat st;

	for (int i = 0; i < 64; i++) {
		saw_unreadable = false;
		nftw(dir, chmod_dirs, 16, FTW_PHYS);
		if (!saw_unreadable)
			break;
	}
	nftw(dir, rm_entry, 16, FTW_PHYS | FTW_DEPTH);
	if (lstat(dir, &st) == 0)
		ward_warn(
		    "could not remove the partial restore %s: remove it by hand",
		    dir);
}

/*
 * After extraction, before the tree is published: follow every symlink in
 * it as the kernel would, through links inside the tree too, and refuse
 * any that leads outside. The longest existing prefix of the target is
 * resolved with realpath(3); what does not exist cannot be a link, so the
 * rest is resolved lexically. (Checking link texts alone misses chains
 * such as a/b -> .. then x -> a/b/../../etc.)
 */
static _Thread_local const char *walk_root;
static _Thread_local int walk_err;

static bool
inside_root(const char *p)
{
	size_t n = strlen(walk_root);

	return strncmp(p, walk_root, n) == 0 && (p[n] == '\0' || p[n] == '/');
}

static bool
link_escapes(const char *link, const char *target)
{
	char resolved[PATH_MAX], *full = NULL, *pre = NULL, *dir = NULL;
	char cur[2 * PATH_MAX];
	const char *rest;
	size_t cut;
	bool escapes = true;

	if (*target == '/' || (dir = strdup(link)) == NULL ||
	    asprintf(&full, "%s/%s", dirname(dir), target) < 0 ||
	    (pre = strdup(full)) == NULL)
		goto out;
	for (cut = strlen(full);;) {
		char *slash;

		pre[cut] = '\0';
		if (realpath(pre, resolved) != NULL)
			break;
		if ((errno != ENOENT && errno != ENOTDIR) ||
		    (slash = strrchr(pre, '/')) == NULL || slash == pre)
			goto out; /* loops and the like: refuse */
		cut = (size_t)(slash - pre);
	}
	if (!inside_root(resolved))
		goto out;
	snprintf(cur, sizeof(cur), "%s", resolved);
	for (rest = full + cut; *rest != '\0';) {
		size_t n;

		while (*rest == '/')
			rest++;
		n = strcspn(rest, "/");
		if (n == 2 && rest[0] == '.' && rest[1] == '.') {
			char *slash = strrchr(cur, '/');

			if (slash == NULL || strcmp(cur, walk_root) == 0)
				goto out;
			*slash = '\0';
		} else if (n > 0 && !(n == 1 && rest[0] == '.')) {
			size_t len = strlen(cur);

			if (len + 1 + n >= sizeof(cur))
				goto out;
			cur[len] = '/';
			memcpy(cur + len + 1, rest, n);
			cur[len + 1 + n] = '\0';
		}
		rest += n;
	}
	escapes = !inside_root(cur);
out:
	free(dir);
	free(full);
	free(pre);
	return escapes;
}

static int
check_link_cb(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	char target[PATH_MAX];
	ssize_t n;

	if (flag != FTW_SL)
		return 0;
	if ((n = readlink(path, target, sizeof(target) - 1)) < 0) {
		walk_err = ward_errf(WARD_EIO, "%s: %s", path, strerror(errno));
		return 1;
	}
	target[n] = '\0';
	if (link_escapes(path, target)) {
		walk_err = ward_errf(WARD_EUNSAFE,
		    "archive link '%s' -> '%s' resolves outside the target directory",
		    ward_quotes(path + strlen(walk_root) + 1),
		    ward_quotes(target));
		return 1;
	}
	return 0;
}

static int
check_links(const char *tmp)
{
	char root[PATH_MAX];

	if (realpath(tmp, root) == NULL)
		return ward_errf(WARD_EIO, "%s: %s", tmp, strerror(errno));
	walk_root = root;
	walk_err = 0;
	if (nftw(root, check_link_cb, 16, FTW_PHYS) != 0 && walk_err == 0)
		walk_err = ward_errf(
		    WARD_EIO, "checking %s: %s", tmp, strerror(errno));
	walk_root = NULL;
	return walk_err;
}

static int
check_dest(const char *dest)
{
	struct stat st;
	DIR *d;
	struct dirent *de;
	bool empty = true;

	if (lstat(dest, &st) != 0) {
		if (errno == ENOENT)
			return 0;
		return ward_errf(WARD_EIO, "%s: %s", dest, strerror(errno));
	}
	if (!S_ISDIR(st.st_mode))
		return ward_errf(
		    WARD_EEXIST, "%s exists and is not a directory", dest);
	if ((d = opendir(dest)) == NULL)
		return ward_errf(WARD_EIO, "%s: %s", dest, strerror(errno));
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0) {
			empty = false;
			break;
		}
	closedir(d);
	if (!empty)
		return ward_errf(WARD_EEXIST,
		    "%s exists and is not empty: restore into a new directory",
		    dest);
	return 0;
}

static int
extract(struct archive *in, struct archive *disk, struct unpack_ctx *c,
    const char *tmp, const struct ward_path_opts *o)
{
	uint64_t max_entries =
	    o->max_entries ? o->max_entries : WARD_ARCHIVE_MAX_ENTRIES_DEFAULT;
	uint64_t max_bytes =
	    o->max_bytes ? o->max_bytes : WARD_ARCHIVE_MAX_BYTES_DEFAULT;
	uint64_t entries = 0, bytes = 0;
	struct archive_entry *e;
	char *full = NULL, *path = NULL;
	int r, ar;

	while ((ar = archive_read_next_header(in, &e)) == ARCHIVE_OK) {
		const char *hl = archive_entry_hardlink(e);
		mode_t type = archive_entry_filetype(e);
		const void *blk;
		size_t len;
		la_int64_t off;

		/* the entry's own strings change below: keep the name */
		free(path);
		if ((path = archive_entry_pathname(e)
		            ? strdup(archive_entry_pathname(e))
		            : strdup("")) == NULL) {
			r = ward_enomem();
			goto out;
		}

		if (++entries > max_entries) {
			r = ward_errf(WARD_ELIMIT,
			    "archive has more than %llu entries (raise --max-entries)",
			    (unsigned long long)max_entries);
			goto out;
		}
		if ((r = check_path("entry", path)) != 0)
			goto out;
		/* libarchive drops a trailing '/' when it writes: a link
		 * named "x/" would land at "x" */
		if (type != AE_IFDIR && path[strlen(path) - 1] == '/') {
			r = ward_errf(WARD_EUNSAFE,
			    "archive entry '%s' is not a directory but its name ends in '/'",
			    ward_quotes(path));
			goto out;
		}
		if (hl != NULL) {
			if ((r = check_path("hard link target", hl)) != 0)
				goto out;
		} else if (type == AE_IFLNK) {
			if ((r = check_symlink(
			         path, archive_entry_symlink(e))) != 0)
				goto out;
		} else if (type != AE_IFREG && type != AE_IFDIR) {
			r = ward_errf(WARD_EUNSAFE,
			    "archive entry '%s' is a device, fifo or socket: refused",
			    ward_quotes(path));
			goto out;
		}
		if (archive_entry_size(e) < 0 ||
		    (uint64_t)archive_entry_size(e) > max_bytes - bytes) {
			r = ward_errf(WARD_ELIMIT,
			    "archive contents exceed %llu bytes (raise --max-size)",
			    (unsigned long long)max_bytes);
			goto out;
		}
		bytes += (uint64_t)archive_entry_size(e);

		if (asprintf(&full, "%s/%s", tmp, path) < 0) {
			r = ward_enomem();
			goto out;
		}
		archive_entry_set_pathname(e, full);
		free(full);
		if (hl != NULL) {
			if (asprintf(&full, "%s/%s", tmp, hl) < 0) {
				r = ward_enomem();
				goto out;
			}
			archive_entry_set_hardlink(e, full);
			free(full);
		}
		/* Permission bits only: no set-id, no sticky; owner is the
		 * user restoring. */
		archive_entry_set_perm(e, archive_entry_perm(e) & 0777);
		if (archive_write_header(disk, e) != ARCHIVE_OK) {
			int err = archive_errno(disk);

			/* the disk's failures are I/O errors; the rest are
			 * libarchive's own refusals */
			r = ward_errf(err == ENOSPC || err == EDQUOT ||
			            err == EROFS || err == EIO ||
			            err == EACCES || err == ENAMETOOLONG ||
			            err == EMFILE || err == ENFILE ||
			            err == ENOMEM
			        ? WARD_EIO
			        : WARD_EUNSAFE,
			    "cannot restore '%s': %s", ward_quotes(path),
			    archive_error_string(disk));
			goto out;
		}
		while ((ar = archive_read_data_block(in, &blk, &len, &off)) ==
		    ARCHIVE_OK)
			if (archive_write_data_block(disk, blk, len, off) !=
			    ARCHIVE_OK) {
				r = ward_errf(WARD_EIO, "writing '%s': %s",
				    ward_quotes(path),
				    archive_error_string(disk));
				goto out;
			}
		if (ar != ARCHIVE_EOF)
			goto read_error;
		if (archive_write_finish_entry(disk) != ARCHIVE_OK) {
			r = ward_errf(WARD_EIO, "writing '%s': %s",
			    ward_quotes(path), archive_error_string(disk));
			goto out;
		}
	}
	if (ar == ARCHIVE_EOF) {
		r = 0;
		goto out;
	}
read_error:
	if (c->err != 0)
		r = c->err;
	else
		r = ward_errf(WARD_EFORMAT,
		    "the decrypted directory archive is malformed: %s",
		    archive_error_string(in));
out:
	free(path);
	return r;
}

/* "<realpath of dest's parent>/<dest's name>.ward-tmp-XXXXXX" */
static int
temp_dir_name(const char *dest, char **out)
{
	char *a = strdup(dest), *b = strdup(dest), *parent = NULL;
	int r = 0;

	if (a == NULL || b == NULL) {
		r = ward_enomem();
		goto done;
	}
	if ((parent = realpath(dirname(a), NULL)) == NULL) {
		r = ward_errf(WARD_EIO, "%s: %s", dest, strerror(errno));
		goto done;
	}
	if (asprintf(out, "%s/%s.ward-tmp-XXXXXX", parent, basename(b)) < 0) {
		*out = NULL;
		r = ward_enomem();
	}
done:
	free(a);
	free(b);
	free(parent);
	return r;
}

int
ward_archive_unpack(ward_read_fn src, void *src_ctx, const char *dest,
    const struct ward_path_opts *o)
{
	struct unpack_ctx *c = NULL;
	struct archive *in = NULL, *disk = NULL;
	char *tmp = NULL;
	int r;

	if ((r = ward_lazy_load(WARD_LAZY_ARCHIVE)) != 0 ||
	    (r = check_dest(dest)) != 0)
		return r;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return ward_enomem();
	c->src = src;
	c->src_ctx = src_ctx;
	/* Entry names are prefixed with this directory, so it must contain
	 * no symlink for ARCHIVE_EXTRACT_SECURE_SYMLINKS: resolve it. */
	if ((r = temp_dir_name(dest, &tmp)) != 0)
		goto out;
	if (mkdtemp(tmp) == NULL) {
		r = ward_errf(WARD_EIO,
		    "cannot create a directory beside %s: %s", dest,
		    strerror(errno));
		free(tmp);
		tmp = NULL;
		goto out;
	}
	if ((in = archive_read_new()) == NULL ||
	    (disk = archive_write_disk_new()) == NULL) {
		r = ward_enomem();
		goto out;
	}
	archive_read_support_format_tar(in);
	archive_read_support_filter_none(in);
	archive_write_disk_set_options(disk,
	    ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM |
	        ARCHIVE_EXTRACT_SECURE_SYMLINKS |
	        ARCHIVE_EXTRACT_SECURE_NODOTDOT);
	if (archive_read_open(in, c, NULL, unpack_read, NULL) != ARCHIVE_OK) {
		r = c->err != 0
		    ? c->err
		    : ward_errf(WARD_EFORMAT,
		          "the decrypted payload is not a tar archive: %s",
		          archive_error_string(in));
		goto out;
	}
	if ((r = extract(in, disk, c, tmp, o)) != 0)
		goto out;
	if (archive_write_close(disk) != ARCHIVE_OK) {
		r = ward_errf(WARD_EIO, "finishing %s: %s", dest,
		    archive_error_string(disk));
		goto out;
	}
	if ((r = check_links(tmp)) != 0)
		goto out;
	/* The archive ended; the message may not have. Read it to its end so
	 * that the final frame and the signature are verified. */
	for (;;) {
		size_t got;

		if ((r = src(src_ctx, c->buf, sizeof(c->buf), &got)) != 0)
			goto out;
		if (got == 0)
			break;
	}
	if (rename(tmp, dest) != 0) {
		r = ward_errf(WARD_EIO, "%s: %s", dest, strerror(errno));
		goto out;
	}
	free(tmp);
	tmp = NULL;
out:
	archive_read_free(in);
	archive_write_free(disk);
	if (tmp != NULL) {
		remove_tree(tmp);
		free(tmp);
	}
	if (c != NULL)
		ward_cleanse(c->buf, sizeof(c->buf));
	free(c);
	return r;
}
