/*
 * The agent's workspace: the file operations behind `ward sync` (FUSE) and
 * `ward cp` (docs/protocol.md "Workspace").
 *
 * The workspace is a directory in enclave memory. Every path in a message
 * is resolved beneath it with openat2(2) RESOLVE_IN_ROOT, so "..", absolute
 * symlinks and symlinks to ".." made by apps all stay inside. Operations on
 * a final component (create, remove, rename, lstat, chmod, utimens) open
 * the parent that way and use the *at() call on the last name without
 * following it. Each request opens and closes what it needs: the protocol
 * is stateless except for PUT, whose temporary file lives until its END.
 *
 * Usage is measured, not counted: the filesystem's used bytes now minus
 * those at start, checked before anything grows a file. On ramfs, which
 * reports no sizes, memory in use stands in for it (there, files are
 * memory).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/openat2.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "agent/internal.h"

#define WS_DEFAULT "/workspace"
/* PUTs writing at once on one connection, and failed ones whose END has
 * not come yet (they hold no file, only the id). */
#define WS_PUTS_MAX 16
#define WS_FAILED_MAX 64
/* A LIST reply's bytes: each entry costs its name and at most this much
 * CBOR for its keys and attributes; the rest of the frame is slack for the
 * reply's own header. */
#define WS_DIRENT_COST 128u
/* ws_room's answer when the bound, not the filesystem, says no. */
#define WS_EQUOTA (-1)
#define WS_LIST_BUDGET (WARD_FRAME_MAX - 64u * 1024u)

struct agent_put {
	struct agent_put *next;
	uint64_t id;
	int dir; /* the target's directory (O_PATH); -1 once failed */
	int fd; /* the temporary file; -1 once failed */
	char *tmp; /* its name when named, NULL when anonymous (O_TMPFILE) */
	char name[WARD_MSG_NAME_MAX + 1]; /* the target's final component */
	char *show; /* the target's workspace path, for messages */
	uint64_t want, got;
	bool has_size;
	uint32_t mode;
};

/*
 * What agent_ws_init measured. struct agent has no field for them; one
 * agent runs per process (the tests run theirs one at a time).
 */
static struct {
	uint64_t base; /* bytes in use at init */
	bool mem; /* ramfs: usage is memory in use */
} ws_state;

static atomic_uint ws_seq;

/* ---- paths ---------------------------------------------------------- */

/*
 * A workspace path split for use: buf holds it without leading or
 * trailing slashes; rel is what openat2 resolves ("." for the root); slash
 * is the last '/' in buf (NULL: the parent is the root) and name the final
 * component (NULL for the root).
 */
struct ws_path {
	char buf[WARD_MSG_PATH_MAX + 1];
	const char *rel;
	char *slash;
	const char *name;
};

/* 0, or an errno value: ENAMETOOLONG for a path over WARD_MSG_PATH_MAX
 * or a component over 255 bytes. */
static int
ws_parse(const char *in, struct ws_path *p)
{
	size_t n, start = 0;

	if (in == NULL)
		in = "";
	while (*in == '/')
		in++;
	n = strlen(in);
	while (n > 0 && in[n - 1] == '/')
		n--;
	memcpy(p->buf, in, n > WARD_MSG_PATH_MAX ? WARD_MSG_PATH_MAX : n);
	p->buf[n > WARD_MSG_PATH_MAX ? WARD_MSG_PATH_MAX : n] = '\0';
	p->rel = ".";
	p->slash = NULL;
	p->name = NULL;
	if (n > WARD_MSG_PATH_MAX)
		return ENAMETOOLONG;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && p->buf[i] != '/')
			continue;
		if (i - start > WARD_MSG_NAME_MAX)
			return ENAMETOOLONG;
		start = i + 1;
	}
	if (n == 0)
		return 0;
	p->rel = p->buf;
	p->slash = strrchr(p->buf, '/');
	p->name = p->slash != NULL ? p->slash + 1 : p->buf;
	return 0;
}

/* The final component must name something: not the root, ".", "..". */
static int
ws_final(const struct ws_path *p)
{
	if (p->name == NULL || strcmp(p->name, ".") == 0 ||
	    strcmp(p->name, "..") == 0)
		return EINVAL;
	return 0;
}

/* openat2 beneath root; -1 and errno on failure. */
static int
ws_openat2(int root, const char *rel, int flags, mode_t mode)
{
	struct open_how how = {
	    .flags = (uint64_t)(flags | O_CLOEXEC),
	    .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};
	int fd, tries = 0;

	if ((flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE)
		how.mode = mode;
	/* EAGAIN: ".." raced a rename or mount elsewhere; try again */
	do
		fd = (int)syscall(SYS_openat2, root, rel, &how, sizeof(how));
	while (fd < 0 && (errno == EAGAIN || errno == EINTR) && ++tries < 32);
	return fd;
}

static int
ws_open(struct agent *a, const struct ws_path *p, int flags, mode_t mode)
{
	return ws_openat2(a->ws_fd, p->rel, flags, mode);
}

/* The parent directory of p's final component (O_PATH); -1 and errno. */
static int
ws_parent(struct agent *a, struct ws_path *p)
{
	int fd, e;

	if (p->slash == NULL)
		return ws_openat2(a->ws_fd, ".", O_PATH | O_DIRECTORY, 0);
	*p->slash = '\0';
	fd = ws_openat2(a->ws_fd, p->buf, O_PATH | O_DIRECTORY, 0);
	e = errno;
	*p->slash = '/';
	errno = e;
	return fd;
}

/* ---- replies -------------------------------------------------------- */

static int
reply_errno(struct agent_conn *c, uint64_t id, const struct ws_path *p, int e)
{
	return agent_send_err(c, id, ward_errno_code(e), "/%s: %s",
	    ward_quotes(p->buf), strerror(e));
}

static int
reply_bad(struct agent_conn *c, uint64_t id, const char *why)
{
	return agent_send_err(c, id, WARD_CODE_BAD_REQUEST, "%s", why);
}

static int
reply_nospc(struct agent_conn *c, uint64_t id, const char *show)
{
	return agent_send_err(c, id, "ENOSPC",
	    "/%s: the workspace is full: it may hold %" PRIu64
	    " bytes (raise the bound with `ward agent --workspace-size`)",
	    ward_quotes(show), c->a->ws_max);
}

static int64_t
ts_ns(const struct timespec *t)
{
	const int64_t lim = INT64_MAX / 1000000000 - 1;

	if (t->tv_sec > lim)
		return INT64_MAX;
	if (t->tv_sec < -lim)
		return INT64_MIN;
	return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
}

static void
to_msg_stat(const struct stat *st, struct ward_msg_stat *o)
{
	o->mode = st->st_mode;
	o->size = st->st_size < 0 ? 0 : (uint64_t)st->st_size;
	o->nlink = st->st_nlink;
	o->atime_ns = ts_ns(&st->st_atim);
	o->mtime_ns = ts_ns(&st->st_mtim);
	o->ctime_ns = ts_ns(&st->st_ctim);
}

static int
reply_stat(struct agent_conn *c, uint64_t id, const struct stat *st)
{
	struct ward_msg r = {.type = WARD_MSG_OK, .id = id, .has_st = true};

	to_msg_stat(st, &r.st);
	return agent_send(c, &r);
}

static int
reply_size(struct agent_conn *c, uint64_t id, uint64_t size)
{
	struct ward_msg r = {
	    .type = WARD_MSG_OK, .id = id, .size = size, .has_size = true};

	return agent_send(c, &r);
}

/* ---- usage ---------------------------------------------------------- */

static int
fs_used(int fd, bool mem, uint64_t *used)
{
	struct statvfs v;
	struct sysinfo si;

	if (mem) {
		if (sysinfo(&si) != 0)
			return errno;
		*used = (uint64_t)(si.totalram - si.freeram) * si.mem_unit;
		return 0;
	}
	if (fstatvfs(fd, &v) != 0)
		return errno;
	*used = (uint64_t)(v.f_blocks - v.f_bfree) * v.f_frsize;
	return 0;
}

/* Bytes the workspace holds now (never negative: files that were there
 * at start may have gone). */
static int
ws_usage(struct agent *a, uint64_t *usage)
{
	uint64_t used = 0;
	int e;

	if ((e = fs_used(a->ws_fd, ws_state.mem, &used)) != 0)
		return e;
	*usage = used > ws_state.base ? used - ws_state.base : 0;
	return 0;
}

/* 0 when grow more bytes fit under the bound, else WS_EQUOTA (or the
 * errno of measuring). */
static int
ws_room(struct agent *a, uint64_t grow)
{
	uint64_t usage;
	int e;

	if (grow == 0)
		return 0;
	if ((e = ws_usage(a, &usage)) != 0)
		return e;
	if (grow > a->ws_max || usage > a->ws_max - grow)
		return WS_EQUOTA;
	return 0;
}

/* ---- init ----------------------------------------------------------- */

/* mkdir -p with mode 0700 for what is missing. */
int
agent_mkdirs(const char *path)
{
	char tmp[PATH_MAX];
	size_t n = strlen(path);

	if (n >= sizeof(tmp))
		return ward_errf(WARD_EUSAGE, "workspace path too long: %s",
		    ward_quotes(path));
	memcpy(tmp, path, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (i < n && tmp[i] != '/')
			continue;
		tmp[i] = '\0';
		if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
			return ward_errf(WARD_EIO, "creating %s: %s",
			    ward_quotes(tmp), strerror(errno));
		if (i < n)
			tmp[i] = '/';
	}
	return 0;
}

int
agent_ws_init(struct agent *a)
{
	struct statvfs v;
	struct sysinfo si = {0};
	int r;

	a->ws_fd = -1;
	if (a->ws_path[0] == '\0')
		memcpy(a->ws_path, WS_DEFAULT, sizeof(WS_DEFAULT));
	if ((r = agent_mkdirs(a->ws_path)) != 0)
		return r;
	if ((a->ws_fd = open(a->ws_path, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
		return ward_errf(WARD_EIO, "opening the workspace %s: %s",
		    ward_quotes(a->ws_path), strerror(errno));
	if (fstatvfs(a->ws_fd, &v) != 0) {
		r = ward_errf(WARD_EIO, "the workspace %s: statvfs: %s",
		    ward_quotes(a->ws_path), strerror(errno));
		goto out;
	}
	ws_state.mem = v.f_blocks == 0;
	if (ws_state.mem && sysinfo(&si) != 0) {
		r = ward_errf(WARD_EIO, "sysinfo: %s", strerror(errno));
		goto out;
	}
	a->ws_max = a->o.workspace_max;
	if (a->ws_max == 0)
		a->ws_max = ws_state.mem
		    ? (uint64_t)si.totalram * si.mem_unit / 2
		    : (uint64_t)v.f_blocks * v.f_frsize / 2;
	if (fs_used(a->ws_fd, ws_state.mem, &ws_state.base) != 0) {
		r = ward_errf(WARD_EIO, "the workspace %s: measuring: %s",
		    ward_quotes(a->ws_path), strerror(errno));
		goto out;
	}
	ward_debug("workspace %s: up to %" PRIu64 " bytes%s",
	    ward_quotes(a->ws_path), a->ws_max,
	    ws_state.mem ? " (ramfs: bounded by memory in use)" : "");
	r = 0;
out:
	if (r != 0) {
		close(a->ws_fd);
		a->ws_fd = -1;
	}
	return r;
}

void
agent_ws_fini(struct agent *a)
{
	if (a->ws_fd >= 0)
		close(a->ws_fd);
	a->ws_fd = -1;
}

int
agent_ws_open(struct agent *a, const char *path, int flags, int *fd)
{
	struct ws_path p;
	int e;

	*fd = -1;
	if ((e = ws_parse(path, &p)) == 0 &&
	    (*fd = ws_open(a, &p, flags, 0600)) < 0)
		e = errno;
	if (e != 0)
		return ward_errf(WARD_EIO, "workspace path /%s: %s",
		    ward_quotes(p.buf), strerror(e));
	return 0;
}

/* ---- single requests ------------------------------------------------ */

static int
op_stat(struct agent_conn *c, struct ward_msg *m, struct ws_path *p)
{
	struct stat st = {0};
	int d = -1, e = 0, r;

	if (p->name == NULL) {
		if (fstatat(c->a->ws_fd, ".", &st, AT_SYMLINK_NOFOLLOW) != 0)
			e = errno;
	} else if ((e = ws_final(p)) == 0) {
		if ((d = ws_parent(c->a, p)) < 0 ||
		    fstatat(d, p->name, &st, AT_SYMLINK_NOFOLLOW) != 0)
			e = errno;
	}
	r = e != 0 ? reply_errno(c, m->id, p, e) : reply_stat(c, m->id, &st);
	if (d >= 0)
		close(d);
	return r;
}

static int
cmp_names(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

/*
 * LIST: the names sorted, so that an offset means the same entry from one
 * page to the next while the directory is unchanged; then lstat for the
 * page asked. Entries that vanish in between are left out.
 */
static int
op_list(struct agent_conn *c, struct ward_msg *m, struct ws_path *p)
{
	struct ward_msg r = {.type = WARD_MSG_OK, .id = m->id};
	struct dirent *de;
	struct stat st = {0};
	char **names = NULL;
	size_t n = 0, cap = 0, want, bytes = 0, i;
	DIR *dir = NULL;
	int fd, e = 0, ret;

	want = m->length == 0 || m->length > WARD_MSG_LIST_MAX
	    ? WARD_MSG_LIST_MAX
	    : (size_t)m->length;
	if ((fd = ws_open(c->a, p, O_RDONLY | O_DIRECTORY, 0)) < 0) {
		e = errno;
		goto out;
	}
	if ((dir = fdopendir(fd)) == NULL) {
		e = errno;
		close(fd);
		goto out;
	}
	for (;;) {
		errno = 0;
		if ((de = readdir(dir)) == NULL) {
			e = errno;
			break;
		}
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			char **v = reallocarray(names, ncap, sizeof(*v));

			if (v == NULL) {
				e = ENOMEM;
				break;
			}
			names = v;
			cap = ncap;
		}
		if ((names[n] = strdup(de->d_name)) == NULL) {
			e = ENOMEM;
			break;
		}
		n++;
	}
	if (e != 0)
		goto out;
	if (n > 1)
		qsort(names, n, sizeof(*names), cmp_names);
	/* never NULL, so that an empty page still says "no entries" */
	i = m->offset < n ? n - (size_t)m->offset : 0;
	if ((r.entries = calloc(i < want ? i + 1 : want, sizeof(*r.entries))) ==
	    NULL) {
		e = ENOMEM;
		goto out;
	}
	for (i = m->offset < n ? (size_t)m->offset : n; i < n; i++) {
		size_t len = strlen(names[i]);

		if (r.entryc == want ||
		    bytes + len + WS_DIRENT_COST > WS_LIST_BUDGET) {
			r.more = true;
			break;
		}
		if (fstatat(dirfd(dir), names[i], &st, AT_SYMLINK_NOFOLLOW) !=
		    0) {
			if (errno == ENOENT)
				continue;
			e = errno;
			goto out;
		}
		r.entries[r.entryc].name = names[i];
		to_msg_stat(&st, &r.entries[r.entryc].st);
		r.entryc++;
		bytes += len + WS_DIRENT_COST;
	}
out:
	ret = e != 0 ? reply_errno(c, m->id, p, e) : agent_send(c, &r);
	if (dir != NULL)
		closedir(dir);
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(r.entries);
	return ret;
}

/* Open a regular file for READ, WRITE, TRUNCATE or GET. O_NONBLOCK so a
 * fifo an app left in the workspace cannot stall the connection. */
static int
open_regular(struct agent_conn *c, struct ws_path *p, int flags,
    struct stat *st, int *fd)
{
	int e;

	if ((*fd = ws_open(c->a, p, flags | O_NONBLOCK, 0)) < 0)
		return errno;
	if (fstat(*fd, st) != 0)
		e = errno;
	else if (S_ISDIR(st->st_mode))
		e = EISDIR;
	else if (!S_ISREG(st->st_mode))
		e = EINVAL;
	else
		return 0;
	close(*fd);
	*fd = -1;
	return e;
}

static int
op_read(struct agent_conn *c, struct ward_msg *m, struct ws_path *p)
{
	struct ward_msg r = {.type = WARD_MSG_OK, .id = m->id};
	struct stat st = {0};
	uint8_t *buf = NULL;
	size_t got = 0;
	int fd = -1, e, ret;

	if (m->length == 0 || m->length > WARD_AGENT_CHUNK)
		return reply_bad(c, m->id,
		    "READ length must be 1 to WARD_AGENT_CHUNK bytes");
	if (m->offset > INT64_MAX)
		return reply_errno(c, m->id, p, EINVAL);
	if ((e = open_regular(c, p, O_RDONLY, &st, &fd)) != 0)
		goto out;
	if ((buf = malloc((size_t)m->length)) == NULL) {
		e = ENOMEM;
		goto out;
	}
	while (got < m->length) {
		ssize_t k = pread(fd, buf + got, (size_t)m->length - got,
		    (off_t)(m->offset + got));

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			e = errno;
			goto out;
		}
		if (k == 0)
			break;
		got += (size_t)k;
	}
	r.data = buf;
	r.data_len = got;
out:
	ret = e != 0 ? reply_errno(c, m->id, p, e) : agent_send(c, &r);
	if (fd >= 0)
		close(fd);
	free(buf);
	return ret;
}

static int
op_write(struct agent_conn *c, struct ward_msg *m, struct ws_path *p)
{
	struct stat st = {0};
	size_t done = 0;
	uint64_t end;
	int fd = -1, e, ret;

	if (m->data_len > WARD_AGENT_CHUNK)
		return reply_bad(
		    c, m->id, "WRITE data is over WARD_AGENT_CHUNK bytes");
	if (m->offset > (uint64_t)INT64_MAX - m->data_len)
		return reply_errno(c, m->id, p, EFBIG);
	if ((e = open_regular(c, p, O_WRONLY, &st, &fd)) != 0)
		goto out;
	end = m->offset + m->data_len;
	if (end > (uint64_t)st.st_size &&
	    (e = ws_room(c->a, end - (uint64_t)st.st_size)) != 0)
		goto out;
	while (done < m->data_len) {
		ssize_t k = pwrite(fd, m->data + done, m->data_len - done,
		    (off_t)(m->offset + done));

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			e = errno;
			goto out;
		}
		done += (size_t)k;
	}
out:
	if (e == WS_EQUOTA)
		ret = reply_nospc(c, m->id, p->buf);
	else if (e != 0)
		ret = reply_errno(c, m->id, p, e);
	else
		ret = reply_size(c, m->id, done);
	if (fd >= 0)
		close(fd);
	return ret;
}

static int
op_truncate(struct agent_conn *c, struct ward_msg *m, struct ws_path *p)
{
	struct stat st = {0};
	int fd = -1, e, ret;

	if (m->size > INT64_MAX)
		return reply_errno(c, m->id, p, EFBIG);
	if ((e = open_regular(c, p, O_WRONLY, &st, &fd)) != 0)
		goto out;
	if (m->size > (uint64_t)st.st_size &&
	    (e = ws_room(c->a, m->size - (uint64_t)st.st_size)) != 0)
		goto out;
	if (ftruncate(fd, (off_t)m->size) != 0)
		e = errno;
out:
	if (e == WS_EQUOTA)
		ret = reply_nospc(c, m->id, p->buf);
	else if (e != 0)
		ret = reply_errno(c, m->id, p, e);
	else
		ret = agent_send_ok(c, m->id);
	if (fd >= 0)
		close(fd);
	return ret;
}

/*
 * CREATE: a regular file, mode exactly as asked (not the agent's umask).
 * Without exclusive, an existing file is left as it is; a directory there
 * is EISDIR and a symlink ELOOP (never followed).
 */
static int
op_create(struct agent_conn *c, struct ward_msg *m, struct ws_path *p)
{
	struct stat st = {0};
	int d = -1, fd = -1, e = 0, ret;

	if ((e = ws_final(p)) != 0)
		goto out;
	if ((d = ws_parent(c->a, p)) < 0) {
		e = errno;
		goto out;
	}
	fd = openat(d, p->name,
	    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd >= 0) {
		if (fchmod(fd, m->mode & 07777) != 0 || fstat(fd, &st) != 0) {
			e = errno;
			unlinkat(d, p->name, 0);
		}
	} else if (errno == EEXIST && !m->exclusive &&
	    fstatat(d, p->name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (S_ISDIR(st.st_mode))
			e = EISDIR;
		else if (S_ISLNK(st.st_mode))
			e = ELOOP;
	} else {
		e = errno;
	}
out:
	ret = e != 0 ? reply_errno(c, m->id, p, e) : reply_stat(c, m->id, &st);
	if (fd >= 0)
		close(fd);
	if (d >= 0)
		close(d);
	return ret;
}

static int
op_mkdir(struct agent_conn *c, struct ward_msg *m, struct ws_path *p)
{
	struct stat st = {0};
	int d = -1, fd = -1, e, ret;

	if ((e = ws_final(p)) != 0)
		goto out;
	if ((d = ws_parent(c->a, p)) < 0 || mkdirat(d, p->name, 0700) != 0) {
		e = errno;
		goto out;
	}
	/* the mode exactly as asked; through a descriptor, since an app
	 * could swap the new directory for a symlink */
	if ((fd = openat(d, p->name,
	         O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0 ||
	    fchmod(fd, m->mode & 07777) != 0 || fstat(fd, &st) != 0)
		e = errno;
out:
	ret = e != 0 ? reply_errno(c, m->id, p, e) : reply_stat(c, m->id, &st);
	if (fd >= 0)
		close(fd);
	if (d >= 0)
		close(d);
	return ret;
}

/* UNLINK and RMDIR; unlinkat never follows the final symlink. */
static int
op_remove(struct agent_conn *c, struct ward_msg *m, struct ws_path *p)
{
	int d = -1, e, ret;
	const int flags = m->type == WARD_MSG_RMDIR ? AT_REMOVEDIR : 0;

	if ((e = ws_final(p)) == 0 &&
	    ((d = ws_parent(c->a, p)) < 0 || unlinkat(d, p->name, flags) != 0))
		e = errno;
	ret = e != 0 ? reply_errno(c, m->id, p, e) : agent_send_ok(c, m->id);
	if (d >= 0)
		close(d);
	return ret;
}

static int
op_rename(struct agent_conn *c, struct ward_msg *m, struct ws_path *p)
{
	struct ws_path *to;
	struct ws_path *bad = p;
	int d = -1, td = -1, e, ret;

	if ((to = malloc(sizeof(*to))) == NULL)
		return reply_errno(c, m->id, p, ENOMEM);
	if ((e = ws_final(p)) != 0)
		goto out;
	if ((e = ws_parse(m->to, to)) != 0 || (e = ws_final(to)) != 0) {
		bad = to;
		goto out;
	}
	if ((d = ws_parent(c->a, p)) < 0) {
		e = errno;
		goto out;
	}
	if ((td = ws_parent(c->a, to)) < 0) {
		e = errno;
		bad = to;
		goto out;
	}
	if (renameat2(d, p->name, td, to->name,
	        m->exclusive ? RENAME_NOREPLACE : 0) != 0)
		e = errno;
out:
	ret = e != 0 ? reply_errno(c, m->id, bad, e) : agent_send_ok(c, m->id);
	if (d >= 0)
		close(d);
	if (td >= 0)
		close(td);
	free(to);
	return ret;
}

/* CHMOD: never through a symlink (glibc's AT_SYMLINK_NOFOLLOW refuses
 * one with EOPNOTSUPP; a symlink has no mode of its own on Linux). */
static int
op_chmod(struct agent_conn *c, struct ward_msg *m, struct ws_path *p)
{
	int d = -1, e = 0, ret;
	const char *name = ".";

	if (p->name != NULL) {
		name = p->name;
		if ((e = ws_final(p)) != 0)
			goto out;
		if ((d = ws_parent(c->a, p)) < 0) {
			e = errno;
			goto out;
		}
	}
	if (fchmodat(d >= 0 ? d : c->a->ws_fd, name, m->mode & 07777,
	        AT_SYMLINK_NOFOLLOW) != 0)
		e = errno;
out:
	ret = e != 0 ? reply_errno(c, m->id, p, e) : agent_send_ok(c, m->id);
	if (d >= 0)
		close(d);
	return ret;
}

static struct timespec
ns_ts(int64_t ns)
{
	struct timespec t = {
	    .tv_sec = (time_t)(ns / 1000000000), .tv_nsec = ns % 1000000000};

	if (t.tv_nsec < 0) {
		t.tv_nsec += 1000000000;
		t.tv_sec--;
	}
	return t;
}

static int
op_utimens(struct agent_conn *c, struct ward_msg *m, struct ws_path *p)
{
	struct timespec ts[2] = {
	    {.tv_nsec = UTIME_OMIT}, {.tv_nsec = UTIME_OMIT}};
	int d = -1, e = 0, ret;
	const char *name = ".";

	if (m->has_atime)
		ts[0] = ns_ts(m->atime_ns);
	if (m->has_mtime)
		ts[1] = ns_ts(m->mtime_ns);
	if (p->name != NULL) {
		name = p->name;
		if ((e = ws_final(p)) != 0)
			goto out;
		if ((d = ws_parent(c->a, p)) < 0) {
			e = errno;
			goto out;
		}
	}
	if (utimensat(
	        d >= 0 ? d : c->a->ws_fd, name, ts, AT_SYMLINK_NOFOLLOW) != 0)
		e = errno;
out:
	ret = e != 0 ? reply_errno(c, m->id, p, e) : agent_send_ok(c, m->id);
	if (d >= 0)
		close(d);
	return ret;
}

static int
op_statfs(struct agent_conn *c, struct ward_msg *m, struct ws_path *p)
{
	struct ward_msg r = {.type = WARD_MSG_OK, .id = m->id, .has_fs = true};
	struct statvfs v;
	uint64_t usage, bsize, room, real;
	int e;

	if (fstatvfs(c->a->ws_fd, &v) != 0)
		return reply_errno(c, m->id, p, errno);
	if ((e = ws_usage(c->a, &usage)) != 0)
		return reply_errno(c, m->id, p, e);
	bsize = v.f_frsize != 0 ? v.f_frsize : v.f_bsize;
	if (bsize == 0)
		bsize = 4096;
	room = usage < c->a->ws_max ? c->a->ws_max - usage : 0;
	/* never more than the filesystem itself has left */
	real = (uint64_t)v.f_bavail * bsize;
	if (v.f_blocks != 0 && real < room)
		room = real;
	r.fs.bsize = bsize;
	r.fs.blocks = c->a->ws_max / bsize;
	r.fs.bfree = room / bsize;
	r.fs.files = v.f_files;
	r.fs.ffree = v.f_ffree;
	r.fs.namemax = WARD_MSG_NAME_MAX;
	return agent_send(c, &r);
}

/* GET: the file in DATA frames of up to WARD_AGENT_CHUNK, then OK with
 * its size. A read error after some DATA is an ERR in place of the OK. */
static int
op_get(struct agent_conn *c, struct ward_msg *m, struct ws_path *p)
{
	struct ward_msg d = {.type = WARD_MSG_DATA, .id = m->id};
	struct stat st = {0};
	uint8_t *buf = NULL;
	uint64_t total = 0;
	int fd = -1, e, ret;

	if ((e = open_regular(c, p, O_RDONLY, &st, &fd)) != 0)
		goto out;
	if ((buf = malloc(WARD_AGENT_CHUNK)) == NULL) {
		e = ENOMEM;
		goto out;
	}
	for (;;) {
		ssize_t k = read(fd, buf, WARD_AGENT_CHUNK);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			e = errno;
			goto out;
		}
		if (k == 0)
			break;
		d.data = buf;
		d.data_len = (size_t)k;
		if ((ret = agent_send(c, &d)) != 0)
			goto done;
		total += (uint64_t)k;
	}
out:
	ret =
	    e != 0 ? reply_errno(c, m->id, p, e) : reply_size(c, m->id, total);
done:
	if (fd >= 0)
		close(fd);
	free(buf);
	return ret;
}

/* ---- PUT streams ---------------------------------------------------- */

static struct agent_put *
put_find(struct agent_conn *c, uint64_t id)
{
	struct agent_put *u;

	for (u = c->puts; u != NULL; u = u->next)
		if (u->id == id)
			break;
	return u;
}

/* Drop the temporary file; the entry stays (failed) until its END. */
static void
put_drop(struct agent_put *u)
{
	if (u->fd >= 0)
		close(u->fd);
	if (u->tmp != NULL && u->dir >= 0)
		unlinkat(u->dir, u->tmp, 0);
	if (u->dir >= 0)
		close(u->dir);
	u->fd = -1;
	u->dir = -1;
	free(u->tmp);
	u->tmp = NULL;
}

static void
put_free(struct agent_put *u)
{
	put_drop(u);
	free(u->show);
	free(u);
}

static void
put_unlink_list(struct agent_conn *c, struct agent_put *u)
{
	struct agent_put **pp;

	pthread_mutex_lock(&c->lock);
	for (pp = &c->puts; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == u) {
			*pp = u->next;
			break;
		}
	}
	pthread_mutex_unlock(&c->lock);
}

/* Fail a PUT in progress: one ERR, the file gone, the id kept. */
static int
put_fail(struct agent_conn *c, struct agent_put *u, int e)
{
	put_drop(u);
	if (e == WS_EQUOTA)
		return reply_nospc(c, u->id, u->show);
	return agent_send_err(c, u->id, ward_errno_code(e), "/%s: %s",
	    ward_quotes(u->show), strerror(e));
}

/* The temporary file: anonymous where the filesystem and /proc allow
 * (nothing to clean up even if the agent dies), else a hidden name. */
static int
put_open_tmp(struct agent_put *u)
{
	static atomic_int proc_ok = -1;
	char name[64];

	if (proc_ok < 0)
		proc_ok = access("/proc/self/fd", X_OK) == 0;
	if (proc_ok) {
		u->fd =
		    openat(u->dir, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
		if (u->fd >= 0)
			return 0;
		if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
			return errno;
	}
	for (int i = 0; i < 32; i++) {
		snprintf(name, sizeof(name), ".ward-put-%ld-%u", (long)getpid(),
		    atomic_fetch_add(&ws_seq, 1));
		u->fd = openat(u->dir, name,
		    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (u->fd >= 0) {
			if ((u->tmp = strdup(name)) == NULL) {
				unlinkat(u->dir, name, 0);
				return ENOMEM;
			}
			return 0;
		}
		if (errno != EEXIST)
			return errno;
	}
	return EEXIST;
}

/*
 * PUT: the stream's state, registered before anything can fail so that
 * the DATA and END the host sends without waiting are taken and dropped
 * after an ERR. perr is the error parsing the path found, if any.
 */
static int
op_put(struct agent_conn *c, struct ward_msg *m, struct ws_path *p, int perr)
{
	struct agent_put *u, *old;
	struct stat st = {0};
	unsigned active = 0, failed = 0;
	bool over;
	int e;

	pthread_mutex_lock(&c->lock);
	old = put_find(c, m->id);
	for (u = c->puts; u != NULL; u = u->next) {
		if (u->fd >= 0)
			active++;
		else
			failed++;
	}
	pthread_mutex_unlock(&c->lock);
	if (old != NULL) {
		/* the id's one reply: the stream it named is void */
		put_drop(old);
		return reply_bad(
		    c, m->id, "PUT with the id of a PUT in progress");
	}
	if (failed >= WS_FAILED_MAX)
		return agent_send_err(c, m->id, WARD_CODE_LIMIT,
		    "too many unfinished PUTs on this connection");
	/* over the limit, it is still registered (failed) for its stream */
	over = active >= WS_PUTS_MAX;
	if ((u = calloc(1, sizeof(*u))) == NULL ||
	    (u->show = strdup(p->buf)) == NULL) {
		free(u);
		return reply_errno(c, m->id, p, ENOMEM);
	}
	u->id = m->id;
	u->fd = u->dir = -1;
	u->want = m->size;
	u->has_size = m->has_size;
	u->mode = m->mode & 07777;
	pthread_mutex_lock(&c->lock);
	u->next = c->puts;
	c->puts = u;
	pthread_mutex_unlock(&c->lock);
	if (over)
		return agent_send_err(c, m->id, WARD_CODE_LIMIT,
		    "at most %d PUTs at once on one connection", WS_PUTS_MAX);
	if ((e = perr) != 0 || (e = ws_final(p)) != 0)
		goto fail;
	memcpy(u->name, p->name, strlen(p->name) + 1);
	if ((u->dir = ws_parent(c->a, p)) < 0) {
		e = errno;
		goto fail;
	}
	if (fstatat(u->dir, u->name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISDIR(st.st_mode)) {
		e = EISDIR;
		goto fail;
	}
	if (u->has_size && (e = ws_room(c->a, u->want)) != 0)
		goto fail;
	if ((e = put_open_tmp(u)) != 0)
		goto fail;
	return 0;
fail:
	return put_fail(c, u, e);
}

static int
put_data(struct agent_conn *c, struct agent_put *u, struct ward_msg *m)
{
	size_t done = 0;
	int e;

	if (u->fd < 0)
		return 0; /* failed already: discarded until END */
	if (m->data_len > WARD_AGENT_CHUNK) {
		put_drop(u);
		return reply_bad(
		    c, u->id, "DATA is over WARD_AGENT_CHUNK bytes");
	}
	if (u->has_size && m->data_len > u->want - u->got) {
		put_drop(u);
		return agent_send_err(c, u->id, "EINVAL",
		    "/%s: more bytes came than the PUT announced (%" PRIu64 ")",
		    ward_quotes(u->show), u->want);
	}
	if ((e = ws_room(c->a, m->data_len)) != 0)
		return put_fail(c, u, e);
	while (done < m->data_len) {
		ssize_t k = write(u->fd, m->data + done, m->data_len - done);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return put_fail(c, u, errno);
		done += (size_t)k;
	}
	u->got += done;
	return 0;
}

/* Give the anonymous file the target's name, replacing what is there:
 * link it under a hidden name, then rename that over the target. */
static int
put_link(struct agent_put *u)
{
	char proc[64], name[64];
	int e;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", u->fd);
	if (linkat(AT_FDCWD, proc, u->dir, u->name, AT_SYMLINK_FOLLOW) == 0)
		return 0;
	if (errno != EEXIST)
		return errno;
	for (int i = 0; i < 32; i++) {
		snprintf(name, sizeof(name), ".ward-put-%ld-%u", (long)getpid(),
		    atomic_fetch_add(&ws_seq, 1));
		if (linkat(AT_FDCWD, proc, u->dir, name, AT_SYMLINK_FOLLOW) ==
		    0) {
			if (renameat(u->dir, name, u->dir, u->name) == 0)
				return 0;
			e = errno;
			unlinkat(u->dir, name, 0);
			return e;
		}
		if (errno != EEXIST)
			return errno;
	}
	return EEXIST;
}

static int
put_end(struct agent_conn *c, struct agent_put *u)
{
	int e, r;

	put_unlink_list(c, u);
	if (u->fd < 0) {
		put_free(u); /* answered when it failed */
		return 0;
	}
	if (u->has_size && u->got != u->want) {
		r = agent_send_err(c, u->id, "EINVAL",
		    "/%s: %" PRIu64 " bytes came, the PUT announced %" PRIu64,
		    ward_quotes(u->show), u->got, u->want);
		goto out;
	}
	if (fchmod(u->fd, u->mode) != 0) {
		e = errno;
		goto fail;
	}
	if (u->tmp != NULL)
		e = renameat(u->dir, u->tmp, u->dir, u->name) != 0 ? errno : 0;
	else
		e = put_link(u);
	if (e != 0)
		goto fail;
	free(u->tmp); /* renamed: nothing to remove */
	u->tmp = NULL;
	r = reply_size(c, u->id, u->got);
	goto out;
fail:
	r = agent_send_err(c, u->id, ward_errno_code(e), "/%s: %s",
	    ward_quotes(u->show), strerror(e));
out:
	put_free(u);
	return r;
}

bool
agent_ws_owns(struct agent_conn *c, uint64_t id)
{
	bool owns;

	pthread_mutex_lock(&c->lock);
	owns = put_find(c, id) != NULL;
	pthread_mutex_unlock(&c->lock);
	return owns;
}

void
agent_ws_conn_close(struct agent_conn *c)
{
	struct agent_put *u, *next;

	pthread_mutex_lock(&c->lock);
	u = c->puts;
	c->puts = NULL;
	pthread_mutex_unlock(&c->lock);
	for (; u != NULL; u = next) {
		next = u->next;
		put_free(u);
	}
}

/* ---- dispatch ------------------------------------------------------- */

int
agent_ws_handle(struct agent_conn *c, struct ward_msg *m)
{
	struct ws_path *p;
	struct agent_put *u;
	int e, r;

	if (m->type == WARD_MSG_DATA || m->type == WARD_MSG_END) {
		pthread_mutex_lock(&c->lock);
		u = put_find(c, m->id);
		pthread_mutex_unlock(&c->lock);
		if (u == NULL)
			return reply_bad(c, m->id,
			    "DATA or END for an id with no PUT in progress");
		return m->type == WARD_MSG_DATA ? put_data(c, u, m)
		                                : put_end(c, u);
	}
	/* a path is 4 KiB: off the reader thread's stack */
	if ((p = malloc(sizeof(*p))) == NULL)
		return agent_send_err(c, m->id, "ENOMEM", "out of memory");
	if ((e = ws_parse(m->path, p)) != 0) {
		r = m->type == WARD_MSG_PUT ? op_put(c, m, p, e)
		                            : reply_errno(c, m->id, p, e);
		goto out;
	}
	switch (m->type) {
	case WARD_MSG_STAT:
		r = op_stat(c, m, p);
		break;
	case WARD_MSG_LIST:
		r = op_list(c, m, p);
		break;
	case WARD_MSG_READ:
		r = op_read(c, m, p);
		break;
	case WARD_MSG_WRITE:
		r = op_write(c, m, p);
		break;
	case WARD_MSG_CREATE:
		r = op_create(c, m, p);
		break;
	case WARD_MSG_TRUNCATE:
		r = op_truncate(c, m, p);
		break;
	case WARD_MSG_UNLINK:
	case WARD_MSG_RMDIR:
		r = op_remove(c, m, p);
		break;
	case WARD_MSG_MKDIR:
		r = op_mkdir(c, m, p);
		break;
	case WARD_MSG_RENAME:
		r = op_rename(c, m, p);
		break;
	case WARD_MSG_CHMOD:
		r = op_chmod(c, m, p);
		break;
	case WARD_MSG_UTIMENS:
		r = op_utimens(c, m, p);
		break;
	case WARD_MSG_STATFS:
		r = op_statfs(c, m, p);
		break;
	case WARD_MSG_PUT:
		r = op_put(c, m, p, 0);
		break;
	case WARD_MSG_GET:
		r = op_get(c, m, p);
		break;
	default:
		r = agent_send_err(
		    c, m->id, WARD_CODE_UNSUPPORTED, "not a workspace request");
		break;
	}
out:
	free(p);
	return r;
}
