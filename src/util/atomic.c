/*
 * Atomic file creation: temp file beside the target, fsync, rename (or
 * link, when overwriting is not allowed), fsync of the directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
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

int
ward_atomic_open(
    struct ward_atomic *a, const char *path, mode_t mode, bool overwrite)
{
	struct stat st;
	size_t n = strlen(path) + sizeof(".ward-tmp-XXXXXX");

	memset(a, 0, sizeof(*a));
	a->fd = -1;
	a->overwrite = overwrite;
	if (!overwrite && lstat(path, &st) == 0)
		return ward_errf(WARD_EEXIST,
		    "%s already exists (use --force "
		    "to replace it)",
		    path);
	if ((a->path = strdup(path)) == NULL || (a->tmp = malloc(n)) == NULL) {
		free(a->path);
		a->path = NULL;
		return ward_enomem();
	}
	snprintf(a->tmp, n, "%s.ward-tmp-XXXXXX", path);
	if ((a->fd = mkostemp(a->tmp, O_CLOEXEC)) < 0) {
		int r = ward_errf(WARD_EIO,
		    "cannot create a file beside %s: "
		    "%s",
		    path, strerror(errno));
		free(a->path);
		free(a->tmp);
		a->path = a->tmp = NULL;
		return r;
	}
	if (fchmod(a->fd, mode) != 0) {
		int r = ward_errf(
		    WARD_EIO, "%s: chmod: %s", a->tmp, strerror(errno));
		ward_atomic_abort(a);
		return r;
	}
	return 0;
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
	if (close(a->fd) != 0) {
		a->fd = -1;
		r = ward_errf(
		    WARD_EIO, "%s: close: %s", a->path, strerror(errno));
		goto out;
	}
	a->fd = -1;
	if (a->overwrite) {
		if (rename(a->tmp, a->path) != 0) {
			r = ward_errf(WARD_EIO, "%s: rename: %s", a->path,
			    strerror(errno));
			goto out;
		}
	} else {
		/* link(2) fails with EEXIST instead of replacing a file
		 * that appeared since open. */
		if (link(a->tmp, a->path) != 0) {
			r = ward_errf(errno == EEXIST ? WARD_EEXIST : WARD_EIO,
			    "%s: %s", a->path, strerror(errno));
			goto out;
		}
		unlink(a->tmp);
	}
	free(a->tmp);
	a->tmp = NULL;
	r = fsync_parent(a->path);
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
	if (a->tmp != NULL)
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
