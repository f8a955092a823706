/*
 * Atomic file creation: temp file beside the target, fsync, rename (or
 * link, when overwriting is not allowed), fsync of the directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ward/util.h"

static int
fsync_parent(const char *path)
{
	char *copy, *dir;
	int fd, r = 0;

	if ((copy = strdup(path)) == NULL)
		return ward_enomem();
	dir = dirname(copy);
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		if (fsync(fd) != 0 && errno != EINVAL)
			r = ward_errf(
			    WARD_EIO, "%s: fsync: %s", dir, strerror(errno));
		close(fd);
	}
	free(copy);
	return r;
}

/* Open an anonymous file in path's directory; -1 where unsupported or
 * where /proc (needed to name it later, unprivileged) is absent. */
static int
open_anonymous(const char *path)
{
	char *copy = strdup(path);
	int fd = -1;

	if (copy != NULL && access("/proc/self/fd", X_OK) == 0)
		fd = open(dirname(copy), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	free(copy);
	return fd;
}

int
ward_atomic_open(
    struct ward_atomic *a, const char *path, mode_t mode, bool overwrite)
{
	struct stat st;
	size_t n = strlen(path) + sizeof(".ward-tmp-XXXXXX");
	int r;

	memset(a, 0, sizeof(*a));
	a->fd = -1;
	a->overwrite = overwrite;
	if (!overwrite && lstat(path, &st) == 0)
		return ward_errf(WARD_EEXIST,
		    "%s already exists (use --force to replace it)", path);
	if ((a->path = strdup(path)) == NULL || (a->tmp = malloc(n)) == NULL) {
		free(a->path);
		a->path = NULL;
		return ward_enomem();
	}
	snprintf(a->tmp, n, "%s.ward-tmp-XXXXXX", path);
	if ((a->fd = open_anonymous(path)) >= 0) {
		a->anonymous = true; /* tmp is only a name pattern for now */
	} else if ((a->fd = mkostemp(a->tmp, O_CLOEXEC)) < 0) {
		r = ward_errf(WARD_EIO, "cannot create a file beside %s: %s",
		    path, strerror(errno));
		free(a->path);
		free(a->tmp);
		a->path = a->tmp = NULL;
		return r;
	}
	if (fchmod(a->fd, mode) != 0) {
		r = ward_errf(WARD_EIO, "%s: chmod: %s", path, strerror(errno));
		ward_atomic_abort(a);
		return r;
	}
	return 0;
}

/* Give the anonymous file a name: path itself (no overwrite: linkat fails
 * if it exists), or a fresh temporary name to rename over path. */
static int
name_anonymous(struct ward_atomic *a)
{
	char proc[64];
	uint32_t rnd;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", a->fd);
	if (!a->overwrite) {
		if (linkat(AT_FDCWD, proc, AT_FDCWD, a->path,
		        AT_SYMLINK_FOLLOW) != 0)
			return ward_errf(
			    errno == EEXIST ? WARD_EEXIST : WARD_EIO, "%s: %s",
			    a->path, strerror(errno));
		return 0;
	}
	for (int tries = 0; tries < 16; tries++) {
		size_t n = strlen(a->tmp);

		if (getentropy(&rnd, sizeof(rnd)) != 0)
			rnd = (uint32_t)getpid() ^ (uint32_t)tries;
		snprintf(a->tmp + n - 6, 7, "%06x", rnd & 0xffffff);
		if (linkat(AT_FDCWD, proc, AT_FDCWD, a->tmp,
		        AT_SYMLINK_FOLLOW) == 0) {
			a->anonymous = false; /* now named: abort unlinks it */
			if (rename(a->tmp, a->path) != 0)
				return ward_errf(WARD_EIO, "%s: rename: %s",
				    a->path, strerror(errno));
			free(a->tmp);
			a->tmp = NULL;
			return 0;
		}
		if (errno != EEXIST)
			break;
	}
	return ward_errf(
	    WARD_EIO, "cannot name %s: %s", a->path, strerror(errno));
}

int
ward_atomic_commit(struct ward_atomic *a)
{
	int r = 0;

	if (fsync(a->fd) != 0) {
		r = ward_errf(
		    WARD_EIO, "%s: fsync: %s", a->path, strerror(errno));
		goto out;
	}
	if (a->anonymous) {
		if ((r = name_anonymous(a)) != 0)
			goto out;
		free(a->tmp);
		a->tmp = NULL;
	} else if (a->overwrite) {
		if (rename(a->tmp, a->path) != 0) {
			r = ward_errf(WARD_EIO, "%s: rename: %s", a->path,
			    strerror(errno));
			goto out;
		}
		free(a->tmp);
		a->tmp = NULL;
	} else {
		/* link(2) fails with EEXIST instead of replacing a file
		 * that appeared since open. */
		if (link(a->tmp, a->path) != 0) {
			/* filesystems without hard links (vfat, some network
			 * mounts): rename that still refuses to replace */
			if ((errno != EPERM && errno != EOPNOTSUPP) ||
			    renameat2(AT_FDCWD, a->tmp, AT_FDCWD, a->path,
			        RENAME_NOREPLACE) != 0) {
				r = ward_errf(
				    errno == EEXIST ? WARD_EEXIST : WARD_EIO,
				    "%s: %s", a->path, strerror(errno));
				goto out;
			}
		} else
			unlink(a->tmp);
		free(a->tmp);
		a->tmp = NULL;
	}
	if (close(a->fd) != 0) {
		a->fd = -1;
		r = ward_errf(
		    WARD_EIO, "%s: close: %s", a->path, strerror(errno));
		goto out;
	}
	a->fd = -1;
	/* the output is in place; if its directory entry cannot be made
	 * durable, say so without reporting the write as failed */
	if (fsync_parent(a->path) != 0)
		ward_warn("%s", ward_errmsg());
out:
	ward_atomic_abort(a);
	return r;
}

void
ward_atomic_abort(struct ward_atomic *a)
{
	if (a->fd >= 0)
		close(a->fd);
	a->fd = -1;
	if (a->tmp != NULL && !a->anonymous)
		unlink(a->tmp);
	free(a->tmp);
	free(a->path);
	a->tmp = a->path = NULL;
}

int
ward_write_file_atomic(
    const char *path, const void *p, size_t n, mode_t mode, bool overwrite)
{
	struct ward_atomic a;
	struct ward_fd_stream s = {.name = path};
	int r;

	if ((r = ward_atomic_open(&a, path, mode, overwrite)) != 0)
		return r;
	s.fd = a.fd;
	if ((r = ward_fd_write(&s, p, n)) != 0) {
		ward_atomic_abort(&a);
		return r;
	}
	return ward_atomic_commit(&a);
}
