/*
 * ward sync: the enclave's workspace mounted on the host with libfuse3's
 * high-level API, a remote passthrough. The workspace (in enclave memory)
 * is the only storage: every FUSE operation becomes one request (STAT,
 * LIST, READ, WRITE, ...; docs/protocol.md "Workspace"), so both sides see
 * the same files. Requests are stateless: a file handle is just its path,
 * which the high-level API hands to every operation (renames included).
 *
 * libfuse runs operations on several threads; they share a small pool of
 * connections, one request at a time on each, because the agent serves
 * each connection on its own thread. A connection that fails is dropped
 * and the next operation connects again, so an agent that went away
 * gives EIO (after at most the timeout), never a hang, and one that comes
 * back is picked up.
 */
#define FUSE_USE_VERSION 35

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "client/internal.h"
#include "ward/agent.h"
#include "ward/util.h"

#define DEFAULT_CONNS 4u
#define MAX_CONNS 16u
#define FAIL_LOG_INTERVAL 5.0 /* seconds between "agent unreachable" logs */

struct sync_conn {
	struct ward_client *c;
	bool busy;
};

struct sync_state {
	const struct ward_client_sync_opts *o;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct sync_conn conns[MAX_CONNS];
	unsigned nconns;
	uid_t uid;
	gid_t gid;
	double last_fail_log; /* under lock */
};

static struct sync_state *
state(void)
{
	return fuse_get_context()->private_data;
}

/* FUSE paths are "/a/b"; the workspace's are relative ("a/b", "" for the
 * root; docs/protocol.md "Paths"). */
static const char *
ws_path(const char *path)
{
	while (*path == '/')
		path++;
	return path;
}

/* Log a transport failure, at most every few seconds (a dead agent would
 * otherwise log once per operation). */
static void
log_failure(struct sync_state *s, const char *what)
{
	double now = ward_now();
	bool log;

	pthread_mutex_lock(&s->lock);
	log = now - s->last_fail_log >= FAIL_LOG_INTERVAL;
	if (log)
		s->last_fail_log = now;
	pthread_mutex_unlock(&s->lock);
	if (log)
		ward_warn("ward sync: %s: %s (operations fail with EIO until "
		          "the agent answers again)",
		    what, ward_errmsg());
}

static int
acquire(struct sync_state *s, struct sync_conn **out)
{
	struct sync_conn *k = NULL;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		/* a connected idle slot first, then any idle one */
		for (unsigned i = 0; i < s->nconns && k == NULL; i++)
			if (!s->conns[i].busy && s->conns[i].c != NULL)
				k = &s->conns[i];
		for (unsigned i = 0; i < s->nconns && k == NULL; i++)
			if (!s->conns[i].busy)
				k = &s->conns[i];
		if (k != NULL)
			break;
		pthread_cond_wait(&s->cond, &s->lock);
	}
	k->busy = true;
	pthread_mutex_unlock(&s->lock);
	if (k->c == NULL && ward_client_open(&s->o->conn, &k->c) != 0) {
		log_failure(s, "connecting");
		pthread_mutex_lock(&s->lock);
		k->busy = false;
		pthread_cond_signal(&s->cond);
		pthread_mutex_unlock(&s->lock);
		return -EIO;
	}
	*out = k;
	return 0;
}

static void
release(struct sync_state *s, struct sync_conn *k)
{
	if (k->c != NULL && ward_client_broken(k->c)) {
		ward_client_close(k->c);
		k->c = NULL;
	}
	pthread_mutex_lock(&s->lock);
	k->busy = false;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

/* errno for an ERR code: errno names as they are, the others by kind. */
static int
code_errno(const char *code)
{
	static const struct {
		const char *code;
		int err;
	} map[] = {
	    {WARD_CODE_BAD_REQUEST, EINVAL},
	    {WARD_CODE_UNSUPPORTED, EOPNOTSUPP},
	    {WARD_CODE_BUSY, EBUSY},
	    {WARD_CODE_LIMIT, ENOSPC},
	    {WARD_CODE_ACCESS_DENIED, EACCES},
	};

	if (code == NULL)
		return EIO;
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(code, map[i].code) == 0)
			return map[i].err;
	return ward_code_errno(code);
}

/*
 * One request and its reply on a pooled connection. Returns 0 with the
 * OK in rep (free it), or -errno: the ERR's code, or EIO when the agent
 * could not be reached or broke the protocol. payload (n bytes), when not
 * NULL, is sent after the encoded message without a copy (WRITE). The
 * reply's bytes (d) live in the connection's buffer, which the next user
 * of the connection overwrites: they are copied to dst (at most cap, the
 * count in *got) before the connection goes back to the pool, and
 * rep->data is cleared.
 */
static int
request(struct ward_msg *req, const void *payload, size_t n,
    struct ward_msg *rep, void *dst, size_t cap, size_t *got)
{
	struct sync_state *s = state();
	struct sync_conn *k;
	struct ward_client *c;
	int r, err;

	memset(rep, 0, sizeof(*rep));
	if ((err = acquire(s, &k)) != 0)
		return err;
	c = k->c;
	req->id = ward_client_id(c);
	if (payload != NULL)
		r = ward_client_send_payload(c, req, payload, n);
	else
		r = ward_client_send(c, req);
	if (r == 0)
		r = ward_client_recv(c, rep, -1);
	if (r == 0 && rep->id != req->id)
		r = client_protocol(c, "a reply for request %llu, not %llu",
		    (unsigned long long)rep->id, (unsigned long long)req->id);
	if (r == 0 && rep->type == WARD_MSG_ERR) {
		err = -code_errno(rep->code);
		ward_debug("ward sync: %s %s: %s: %s",
		    ward_msg_type_name(req->type),
		    ward_quotes(req->path != NULL ? req->path : ""),
		    ward_quotes(rep->code), ward_quotes(rep->message));
		ward_msg_free(rep);
		release(s, k);
		return err;
	}
	if (r == 0 && rep->type != WARD_MSG_OK)
		r = client_protocol(c, "a %s in reply to %s",
		    ward_msg_type_name(rep->type),
		    ward_msg_type_name(req->type));
	if (r == 0 && got != NULL && rep->data_len > cap)
		r = client_protocol(c, "%zu bytes in reply to %s of %zu",
		    rep->data_len, ward_msg_type_name(req->type), cap);
	if (r != 0) {
		ward_msg_free(rep);
		log_failure(s, ward_msg_type_name(req->type));
		release(s, k);
		return -EIO;
	}
	if (got != NULL) {
		if (rep->data_len > 0)
			memcpy(dst, rep->data, rep->data_len);
		*got = rep->data_len;
	}
	rep->data = NULL;
	rep->data_len = 0;
	release(s, k);
	return 0;
}

/* A request whose OK carries nothing we need. */
static int
simple(struct ward_msg *req)
{
	struct ward_msg rep;
	int r;

	if ((r = request(req, NULL, 0, &rep, NULL, 0, NULL)) == 0)
		ward_msg_free(&rep);
	return r;
}

static struct timespec
ts_of(int64_t ns)
{
	struct timespec t;

	t.tv_sec = (time_t)(ns / 1000000000);
	t.tv_nsec = (long)(ns % 1000000000);
	if (t.tv_nsec < 0) {
		t.tv_sec--;
		t.tv_nsec += 1000000000;
	}
	return t;
}

static void
fill_stat(struct sync_state *s, const struct ward_msg_stat *ms, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_mode = (mode_t)ms->mode;
	st->st_nlink = ms->nlink != 0 ? (nlink_t)ms->nlink : 1;
	st->st_size = (off_t)ms->size;
	/* the workspace has no owners: everything is the mounting user's */
	st->st_uid = s->uid;
	st->st_gid = s->gid;
	/* tools size their I/O by st_blksize: one protocol chunk */
	st->st_blksize = WARD_AGENT_CHUNK;
	st->st_blocks = (blkcnt_t)((ms->size + 511) / 512);
	st->st_atim = ts_of(ms->atime_ns);
	st->st_mtim = ts_of(ms->mtime_ns);
	st->st_ctim = ts_of(ms->ctime_ns);
}

static int
op_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	struct ward_msg req = {.type = WARD_MSG_STAT}, rep;
	int r;

	(void)fi;
	req.path = (char *)ws_path(path);
	if ((r = request(&req, NULL, 0, &rep, NULL, 0, NULL)) != 0)
		return r;
	if (!rep.has_st)
		r = -EIO;
	else
		fill_stat(state(), &rep.st, st);
	ward_msg_free(&rep);
	return r;
}

static int
op_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t off,
    struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	struct sync_state *s = state();
	struct ward_msg req = {.type = WARD_MSG_LIST}, rep;
	struct stat st;
	uint64_t at = 0;
	bool more = true;
	int r;

	(void)off;
	(void)fi;
	(void)flags;
	filler(buf, ".", NULL, 0, 0);
	filler(buf, "..", NULL, 0, 0);
	req.path = (char *)ws_path(path);
	while (more) {
		req.offset = at;
		if ((r = request(&req, NULL, 0, &rep, NULL, 0, NULL)) != 0)
			return r;
		for (size_t i = 0; i < rep.entryc; i++) {
			fill_stat(s, &rep.entries[i].st, &st);
			if (filler(buf, rep.entries[i].name, &st, 0,
			        FUSE_FILL_DIR_PLUS) != 0) {
				rep.more = false;
				break;
			}
		}
		more = rep.more && rep.entryc > 0;
		at += rep.entryc;
		ward_msg_free(&rep);
	}
	return 0;
}

static int
op_open(const char *path, struct fuse_file_info *fi)
{
	struct ward_msg req = {.type = WARD_MSG_TRUNCATE};

	/* FUSE_CAP_ATOMIC_O_TRUNC: the truncation is ours to do */
	if ((fi->flags & O_TRUNC) && (fi->flags & O_ACCMODE) != O_RDONLY) {
		req.path = (char *)ws_path(path);
		req.size = 0;
		return simple(&req);
	}
	return 0;
}

static int
op_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	struct ward_msg req = {.type = WARD_MSG_CREATE};

	req.path = (char *)ws_path(path);
	req.mode = mode & 07777;
	req.exclusive = (fi->flags & O_EXCL) != 0;
	return simple(&req);
}

static int
op_read(const char *path, char *buf, size_t size, off_t off,
    struct fuse_file_info *fi)
{
	struct ward_msg req = {.type = WARD_MSG_READ}, rep;
	size_t done = 0, want, got;
	int r;

	(void)fi;
	req.path = (char *)ws_path(path);
	while (done < size) {
		want = size - done;
		if (want > WARD_AGENT_CHUNK)
			want = WARD_AGENT_CHUNK;
		req.offset = (uint64_t)off + done;
		req.length = want;
		if ((r = request(
		         &req, NULL, 0, &rep, buf + done, want, &got)) != 0)
			return done > 0 ? (int)done : r;
		done += got;
		ward_msg_free(&rep);
		if (got < want)
			break; /* end of file */
	}
	return (int)done;
}

static int
op_write(const char *path, const char *buf, size_t size, off_t off,
    struct fuse_file_info *fi)
{
	struct ward_msg req = {.type = WARD_MSG_WRITE}, rep;
	size_t done = 0, n;
	int r;

	(void)fi;
	req.path = (char *)ws_path(path);
	while (done < size) {
		n = size - done;
		if (n > WARD_AGENT_CHUNK)
			n = WARD_AGENT_CHUNK;
		req.offset = (uint64_t)off + done;
		if ((r = request(&req, buf + done, n, &rep, NULL, 0, NULL)) !=
		    0)
			return done > 0 ? (int)done : r;
		/* OK carries the bytes written */
		if (rep.has_size && rep.size < n) {
			done += rep.size;
			ward_msg_free(&rep);
			break;
		}
		done += n;
		ward_msg_free(&rep);
	}
	return (int)done;
}

static int
op_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	struct ward_msg req = {.type = WARD_MSG_TRUNCATE};

	(void)fi;
	if (size < 0)
		return -EINVAL;
	req.path = (char *)ws_path(path);
	req.size = (uint64_t)size;
	return simple(&req);
}

static int
op_unlink(const char *path)
{
	struct ward_msg req = {.type = WARD_MSG_UNLINK};

	req.path = (char *)ws_path(path);
	return simple(&req);
}

static int
op_mkdir(const char *path, mode_t mode)
{
	struct ward_msg req = {.type = WARD_MSG_MKDIR};

	req.path = (char *)ws_path(path);
	req.mode = mode & 07777;
	return simple(&req);
}

static int
op_rmdir(const char *path)
{
	struct ward_msg req = {.type = WARD_MSG_RMDIR};

	req.path = (char *)ws_path(path);
	return simple(&req);
}

static int
op_rename(const char *from, const char *to, unsigned int flags)
{
	struct ward_msg req = {.type = WARD_MSG_RENAME};

	if (flags & ~(unsigned)RENAME_NOREPLACE)
		return -EINVAL; /* RENAME_EXCHANGE, RENAME_WHITEOUT */
	req.path = (char *)ws_path(from);
	req.to = (char *)ws_path(to);
	req.exclusive = (flags & RENAME_NOREPLACE) != 0;
	return simple(&req);
}

static int
op_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	struct ward_msg req = {.type = WARD_MSG_CHMOD};

	(void)fi;
	req.path = (char *)ws_path(path);
	req.mode = mode & 07777;
	return simple(&req);
}

/* The workspace keeps no owners: "changing" to the owner shown is fine
 * (cp -p, tar do it), anything else is not possible. */
static int
op_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	struct sync_state *s = state();

	(void)path;
	(void)fi;
	if ((uid != (uid_t)-1 && uid != s->uid) ||
	    (gid != (gid_t)-1 && gid != s->gid))
		return -EPERM;
	return 0;
}

static int
op_utimens(
    const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	struct ward_msg req = {.type = WARD_MSG_UTIMENS};
	struct timespec now;
	int64_t *dst[2] = {&req.atime_ns, &req.mtime_ns};
	bool *has[2] = {&req.has_atime, &req.has_mtime};

	(void)fi;
	clock_gettime(CLOCK_REALTIME, &now);
	for (int i = 0; i < 2; i++) {
		struct timespec t = tv != NULL ? tv[i] : now;

		if (t.tv_nsec == UTIME_OMIT)
			continue;
		if (t.tv_nsec == UTIME_NOW)
			t = now;
		*has[i] = true;
		*dst[i] = (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
	}
	req.path = (char *)ws_path(path);
	return simple(&req);
}

static int
op_statfs(const char *path, struct statvfs *sv)
{
	struct ward_msg req = {.type = WARD_MSG_STATFS}, rep;
	int r;

	(void)path;
	if ((r = request(&req, NULL, 0, &rep, NULL, 0, NULL)) != 0)
		return r;
	memset(sv, 0, sizeof(*sv));
	if (rep.has_fs) {
		sv->f_bsize = sv->f_frsize = (unsigned long)rep.fs.bsize;
		sv->f_blocks = (fsblkcnt_t)rep.fs.blocks;
		sv->f_bfree = sv->f_bavail = (fsblkcnt_t)rep.fs.bfree;
		sv->f_files = (fsfilcnt_t)rep.fs.files;
		sv->f_ffree = sv->f_favail = (fsfilcnt_t)rep.fs.ffree;
		sv->f_namemax = (unsigned long)rep.fs.namemax;
	} else
		r = -EIO;
	ward_msg_free(&rep);
	return r;
}

/* Every WRITE is in the enclave's memory once answered: nothing to sync. */
static int
op_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	(void)path;
	(void)datasync;
	(void)fi;
	return 0;
}

static void *
op_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	struct sync_state *s = state();

	cfg->entry_timeout = s->o->cache;
	cfg->attr_timeout = s->o->cache;
	cfg->negative_timeout = s->o->cache;
	cfg->use_ino = 0;
	/* one protocol chunk per READ and WRITE (the kernel may cap it) */
	conn->max_write = WARD_AGENT_CHUNK;
	conn->max_read = WARD_AGENT_CHUNK;
	if (conn->max_readahead > 4 * WARD_AGENT_CHUNK)
		conn->max_readahead = 4 * WARD_AGENT_CHUNK;
	return s;
}

static const struct fuse_operations sync_ops = {
    .getattr = op_getattr,
    .readdir = op_readdir,
    .open = op_open,
    .create = op_create,
    .read = op_read,
    .write = op_write,
    .truncate = op_truncate,
    .unlink = op_unlink,
    .mkdir = op_mkdir,
    .rmdir = op_rmdir,
    .rename = op_rename,
    .chmod = op_chmod,
    .chown = op_chown,
    .utimens = op_utimens,
    .statfs = op_statfs,
    .fsync = op_fsync,
    .init = op_init,
};

/*
 * The mount point must be an empty directory: files under it would be
 * hidden while mounted. A mount left behind by a ward sync that died
 * answers ENOTCONN; say how to clear it.
 */
static int
check_dir(const char *dir)
{
	struct stat st;
	DIR *d;
	struct dirent *e;
	int r = 0;

	if (stat(dir, &st) != 0) {
		if (errno == ENOTCONN)
			return ward_errf(WARD_EEXIST,
			    "%s is still mounted by a ward sync that has "
			    "ended; run fusermount3 -u %s first",
			    dir, dir);
		return ward_errf(WARD_EUSAGE, "%s: %s", dir, strerror(errno));
	}
	if (!S_ISDIR(st.st_mode))
		return ward_errf(WARD_EUSAGE, "%s is not a directory", dir);
	if ((d = opendir(dir)) == NULL)
		return ward_errf(WARD_EIO, "%s: %s", dir, strerror(errno));
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		r = ward_errf(WARD_EEXIST,
		    "%s is not empty: mount on an empty directory (the files "
		    "in it would be hidden)",
		    dir);
		break;
	}
	closedir(d);
	return r;
}

static void
close_pool(struct sync_state *s)
{
	for (unsigned i = 0; i < s->nconns; i++) {
		ward_client_close(s->conns[i].c);
		s->conns[i].c = NULL;
	}
}

int
ward_client_sync(const struct ward_client_sync_opts *o)
{
	struct sync_state s;
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_loop_config lc = {.clone_fd = 0, .max_idle_threads = 10};
	struct fuse *f = NULL;
	char opts[512], fsname[WARD_ADDR_FMT_MAX + 8];
	char dir[PATH_MAX];
	bool mounted = false, handlers = false;
	int r, lr;

	memset(&s, 0, sizeof(s));
	pthread_mutex_init(&s.lock, NULL);
	pthread_cond_init(&s.cond, NULL);
	s.o = o;
	s.nconns = o->conns == 0   ? DEFAULT_CONNS
	    : o->conns > MAX_CONNS ? MAX_CONNS
	                           : o->conns;
	s.uid = getuid();
	s.gid = getgid();
	s.last_fail_log = -FAIL_LOG_INTERVAL;

	if (realpath(o->dir, dir) == NULL) {
		if (errno == ENOTCONN)
			r = check_dir(o->dir);
		else
			r = ward_errf(
			    WARD_EUSAGE, "%s: %s", o->dir, strerror(errno));
		goto out;
	}
	if ((r = check_dir(dir)) != 0)
		goto out;
	/* before the mount (and the daemon's chdir to /): a log that
	 * cannot be opened mounts nothing */
	if (o->log != NULL && (r = ward_log_to_file(o->log)) != 0)
		goto out;
	/* the agent must answer before anything is mounted */
	if ((r = ward_client_open(&o->conn, &s.conns[0].c)) != 0)
		goto out;
	snprintf(
	    fsname, sizeof(fsname), "ward:%s", ward_client_name(s.conns[0].c));
	for (char *p = fsname; *p != '\0'; p++)
		if (*p == ',' || *p == ' ' || *p == '\\')
			*p = '_';
	snprintf(opts, sizeof(opts),
	    "fsname=%s,subtype=ward,default_permissions,max_read=%u%s", fsname,
	    WARD_AGENT_CHUNK, o->allow_other ? ",allow_other" : "");
	if (fuse_opt_add_arg(&args, "ward-sync") != 0 ||
	    fuse_opt_add_arg(&args, "-o") != 0 ||
	    fuse_opt_add_arg(&args, opts) != 0 ||
	    (o->debug && fuse_opt_add_arg(&args, "-d") != 0)) {
		r = ward_enomem();
		goto out;
	}
	if ((f = fuse_new(&args, &sync_ops, sizeof(sync_ops), &s)) == NULL) {
		r = ward_errf(WARD_EINTERNAL,
		    "libfuse refused the mount options %s", opts);
		goto out;
	}
	if (fuse_mount(f, dir) != 0) {
		r = ward_errf(WARD_EIO,
		    "cannot mount at %s (libfuse says why above; is there a "
		    "/dev/fuse, and may this user mount?)",
		    dir);
		goto out;
	}
	mounted = true;
	if (o->mounted != NULL)
		o->mounted(o->arg, dir);
	if (fuse_daemonize(o->foreground || o->debug) != 0) {
		r = ward_errf(WARD_EINTERNAL, "cannot daemonize");
		goto out;
	}
	/*
	 * libfuse installs its handlers (leave the loop, then unmount) only
	 * over the default action: replace what ward_signals_install set.
	 */
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	if (fuse_set_signal_handlers(fuse_get_session(f)) != 0) {
		r = ward_errf(WARD_EINTERNAL, "cannot set signal handlers");
		goto out;
	}
	handlers = true;
	lr = fuse_loop_mt(f, &lc);
	/* a positive value is the signal that ended the loop: a clean stop */
	if (lr < 0)
		r = ward_errf(
		    WARD_EIO, "the FUSE session failed: %s", strerror(-lr));
	else
		r = 0;
out:
	if (handlers)
		fuse_remove_signal_handlers(fuse_get_session(f));
	if (mounted)
		fuse_unmount(f);
	if (f != NULL)
		fuse_destroy(f);
	fuse_opt_free_args(&args);
	close_pool(&s);
	pthread_cond_destroy(&s.cond);
	pthread_mutex_destroy(&s.lock);
	return r;
}
