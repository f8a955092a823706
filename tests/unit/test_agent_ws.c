/* agent workspace (src/agent/workspace.c): every file operation the host
 * uses, escapes from the workspace, PUT/GET streams and their clean-up, the
 * size bound, and LIST paging. The agent side is called directly; its
 * replies are read from the other end of a socketpair by a thread and
 * decoded with the real codec.
 *
 * When the process may make a private mount namespace (root, or an
 * unprivileged user namespace), the workspaces live on a tmpfs of its own,
 * as in an enclave, so that the size bound can be measured exactly while
 * other processes write to /tmp; otherwise the tests that need that
 * exactness are skipped with a SKIP line and the rest run under $TMPDIR. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

#include "agent/internal.h"
#include "testutil.h"
#include "ward/transport.h"

static char *private_tmp; /* the private tmpfs, or NULL */
static bool can_ramfs;

/* ------------------------------------------------------------------ */
/* The rig: an agent, a connection, and a reader on the host's end     */

struct frame {
	struct frame *next;
	struct ward_buf b;
};

struct rig {
	char *root; /* holds ws/ and things outside it */
	char ws[PATH_MAX];
	struct agent a;
	struct agent_conn c;
	int peer;
	uint64_t next_id;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct frame *head, **tail;
	bool eof;
};

struct reply {
	struct ward_buf b;
	struct ward_msg m;
};

static const char sync_body[] = "\xffsync";

static void *
reader(void *arg)
{
	struct rig *r = arg;

	for (;;) {
		struct frame *f = calloc(1, sizeof(*f));

		if (f == NULL ||
		    ward_frame_read(r->peer, WARD_FRAME_MAX, &f->b) != 0) {
			if (f != NULL)
				ward_buf_free(&f->b);
			free(f);
			break;
		}
		pthread_mutex_lock(&r->mu);
		*r->tail = f;
		r->tail = &f->next;
		pthread_cond_signal(&r->cv);
		pthread_mutex_unlock(&r->mu);
	}
	pthread_mutex_lock(&r->mu);
	r->eof = true;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

static void
rig_start(struct rig *r, const char *sub, uint64_t ws_max)
{
	int sv[2];

	memset(r, 0, sizeof(*r));
	r->root = tu_mkdtemp();
	snprintf(r->ws, sizeof(r->ws), "%s/%s", r->root, sub);
	memcpy(r->a.ws_path, r->ws, strlen(r->ws) + 1);
	r->a.o.workspace_max = ws_max;
	ASSERT_OK(agent_ws_init(&r->a));
	assert_int_equal(
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	r->c.a = &r->a;
	r->c.fd = sv[0];
	r->peer = sv[1];
	pthread_mutex_init(&r->c.wlock, NULL);
	pthread_mutex_init(&r->c.lock, NULL);
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	r->tail = &r->head;
	r->next_id = 1;
	assert_int_equal(pthread_create(&r->th, NULL, reader, r), 0);
}

static void
rig_stop(struct rig *r)
{
	struct frame *f;

	agent_ws_conn_close(&r->c);
	shutdown(r->c.fd, SHUT_RDWR);
	pthread_join(r->th, NULL);
	close(r->c.fd);
	close(r->peer);
	while ((f = r->head) != NULL) {
		r->head = f->next;
		ward_buf_free(&f->b);
		free(f);
	}
	agent_ws_fini(&r->a);
	assert_int_equal(r->a.ws_fd, -1);
	tu_rmtree(r->root);
	free(r->root);
}

/* The next frame the agent sent, within 10 s. */
static struct frame *
next_frame(struct rig *r)
{
	struct timespec dl;
	struct frame *f;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 10;
	pthread_mutex_lock(&r->mu);
	while (r->head == NULL && !r->eof)
		if (pthread_cond_timedwait(&r->cv, &r->mu, &dl) != 0)
			break;
	f = r->head;
	if (f != NULL && (r->head = f->next) == NULL)
		r->tail = &r->head;
	pthread_mutex_unlock(&r->mu);
	if (f == NULL)
		fail_msg("no reply from the agent");
	return f;
}

static void
next_reply(struct rig *r, struct reply *out)
{
	struct frame *f = next_frame(r);

	out->b = f->b;
	free(f);
	if (out->b.len == sizeof(sync_body) - 1 &&
	    memcmp(out->b.p, sync_body, out->b.len) == 0)
		fail_msg("expected a reply, the agent sent nothing");
	ASSERT_OK(ward_msg_decode(out->b.p, out->b.len, &out->m));
}

static void
reply_free(struct reply *x)
{
	ward_msg_free(&x->m);
	ward_buf_free(&x->b);
}

/* Assert the agent sent nothing more: a marker written on its side of the
 * connection must be the next frame. */
static void
expect_quiet(struct rig *r)
{
	struct frame *f;

	ASSERT_OK(ward_frame_write(r->c.fd, sync_body, sizeof(sync_body) - 1));
	f = next_frame(r);
	if (f->b.len != sizeof(sync_body) - 1 ||
	    memcmp(f->b.p, sync_body, f->b.len) != 0)
		fail_msg("the agent sent a reply where none was due");
	ward_buf_free(&f->b);
	free(f);
}

static uint64_t
call(struct rig *r, struct ward_msg *m)
{
	if (m->id == 0)
		m->id = r->next_id++;
	assert_int_equal(agent_ws_handle(&r->c, m), 0);
	return m->id;
}

/* Send m; expect OK for it (kept in out when out is not NULL). */
static void
ok(struct rig *r, struct ward_msg m, struct reply *out)
{
	struct reply x;
	uint64_t id = call(r, &m);

	next_reply(r, &x);
	if (x.m.type == WARD_MSG_ERR)
		fail_msg("%s %s: ERR %s: %s", ward_msg_type_name(m.type),
		    m.path ? m.path : "", x.m.code, x.m.message);
	assert_int_equal(x.m.type, WARD_MSG_OK);
	assert_int_equal(x.m.id, id);
	if (out != NULL)
		*out = x;
	else
		reply_free(&x);
}

/* Send m; expect ERR code for it. */
static void
err(struct rig *r, struct ward_msg m, const char *code)
{
	struct reply x;
	uint64_t id = call(r, &m);

	next_reply(r, &x);
	if (x.m.type != WARD_MSG_ERR)
		fail_msg("%s %s: %s, expected ERR %s",
		    ward_msg_type_name(m.type), m.path ? m.path : "",
		    ward_msg_type_name(x.m.type), code);
	assert_int_equal(x.m.id, id);
	if (strcmp(x.m.code, code) != 0)
		fail_msg("%s %s: ERR %s (%s), expected %s",
		    ward_msg_type_name(m.type), m.path ? m.path : "", x.m.code,
		    x.m.message, code);
	assert_true(strlen(x.m.message) > 0);
	reply_free(&x);
}

#define MSG(t, p, ...)                                                         \
	((struct ward_msg){                                                    \
	    .type = WARD_MSG_##t, .path = (char *)(p), __VA_ARGS__})

static char *
in(struct rig *r, const char *rel)
{
	static char bufs[4][PATH_MAX + 64];
	static unsigned k;
	char *b = bufs[k++ % 4];

	snprintf(b, sizeof(bufs[0]), "%s/%s", r->ws, rel);
	return b;
}

static void
put_file(struct rig *r, const char *rel, const char *text)
{
	assert_int_equal(tu_write_file(in(r, rel), text, strlen(text)), 0);
}

static void
assert_file(const char *path, const void *want, size_t n)
{
	size_t got;
	uint8_t *p = tu_read_file(path, &got);

	if (p == NULL)
		fail_msg("%s is missing", path);
	assert_int_equal(got, n);
	assert_memory_equal(p, want, n);
	free(p);
}

static void
assert_absent(const char *path)
{
	struct stat st;

	if (lstat(path, &st) == 0)
		fail_msg("%s exists", path);
	assert_int_equal(errno, ENOENT);
}

/* Deterministic bytes that differ at every offset of a run. */
static void
fill(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15u + 1;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)x;
	}
}

static uint64_t
fnv1a(uint64_t h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3u;
	return h;
}
#define FNV_INIT 0xcbf29ce484222325u

static bool
need_private_fs(void)
{
	if (private_tmp != NULL)
		return true;
	printf("SKIP: no private tmpfs (mount namespace refused), so usage "
	       "cannot be measured exactly while others write to $TMPDIR\n");
	return false;
}

/* ------------------------------------------------------------------ */
/* init                                                                */

static void
test_init(void **state)
{
	struct rig r;
	struct statvfs v;
	struct stat st;
	char parent[PATH_MAX + 16];

	(void)state;
	rig_start(&r, "a/b/ws", 0);
	/* parents made, 0700 */
	assert_int_equal(stat(r.ws, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0700);
	snprintf(parent, sizeof(parent), "%s/a", r.root);
	assert_int_equal(stat(parent, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_true(r.a.ws_fd >= 0);
	/* default bound: half the filesystem */
	assert_int_equal(statvfs(r.ws, &v), 0);
	assert_int_equal(r.a.ws_max, (uint64_t)v.f_blocks * v.f_frsize / 2);
	rig_stop(&r);

	/* an explicit bound wins; an existing directory is reused */
	rig_start(&r, "ws", 12345);
	assert_int_equal(r.a.ws_max, 12345);
	put_file(&r, "keep", "x");
	agent_ws_fini(&r.a);
	ASSERT_OK(agent_ws_init(&r.a));
	assert_file(in(&r, "keep"), "x", 1);
	rig_stop(&r);
}

static void
test_init_refused(void **state)
{
	struct agent a;
	char *d = tu_mkdtemp();
	char f[PATH_MAX];

	(void)state;
	memset(&a, 0, sizeof(a));
	snprintf(f, sizeof(f), "%s/file", d);
	assert_int_equal(tu_write_file(f, "x", 1), 0);
	snprintf(a.ws_path, sizeof(a.ws_path), "%s/file", d);
	ASSERT_ERR(agent_ws_init(&a), WARD_EIO);
	assert_int_equal(a.ws_fd, -1);
	snprintf(a.ws_path, sizeof(a.ws_path), "%s/file/sub", d);
	ASSERT_ERR(agent_ws_init(&a), WARD_EIO);
	assert_non_null(strstr(ward_errmsg(), "file/sub"));
	tu_rmtree(d);
	free(d);
}

/* On ramfs (Nitro's initramfs may be one) the filesystem reports no
 * sizes: the default bound is half the memory. */
static void
test_init_ramfs(void **state)
{
	struct agent a;
	struct sysinfo si;
	char *d;

	(void)state;
	if (!can_ramfs) {
		printf("SKIP: cannot mount a ramfs here\n");
		skip();
	}
	d = tu_mkdtemp();
	if (mount("none", d, "ramfs", 0, NULL) != 0)
		fail_msg("mount ramfs: %s", strerror(errno));
	memset(&a, 0, sizeof(a));
	snprintf(a.ws_path, sizeof(a.ws_path), "%s/ws", d);
	ASSERT_OK(agent_ws_init(&a));
	assert_int_equal(sysinfo(&si), 0);
	assert_int_equal(a.ws_max, (uint64_t)si.totalram * si.mem_unit / 2);
	agent_ws_fini(&a);
	umount2(d, MNT_DETACH);
	tu_rmtree(d);
	free(d);
}

/* ------------------------------------------------------------------ */
/* single operations                                                   */

static void
test_stat(void **state)
{
	struct rig r;
	struct reply x;
	struct stat st;

	(void)state;
	rig_start(&r, "ws", 0);
	put_file(&r, "f", "hello");
	assert_int_equal(symlink("/etc/passwd", in(&r, "ln")), 0);

	ok(&r, MSG(STAT, ""), &x);
	assert_true(x.m.has_st);
	assert_true(S_ISDIR(x.m.st.mode));
	reply_free(&x);
	ok(&r, MSG(STAT, "/"), &x);
	assert_true(S_ISDIR(x.m.st.mode));
	reply_free(&x);

	ok(&r, MSG(STAT, "/f"), &x);
	assert_int_equal(stat(in(&r, "f"), &st), 0);
	assert_true(S_ISREG(x.m.st.mode));
	assert_int_equal(x.m.st.mode, st.st_mode);
	assert_int_equal(x.m.st.size, 5);
	assert_int_equal(x.m.st.nlink, 1);
	assert_int_equal(x.m.st.mtime_ns,
	    (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec);
	reply_free(&x);
	ok(&r, MSG(STAT, "f"), NULL); /* the leading slash is optional */

	/* lstat: the link itself */
	ok(&r, MSG(STAT, "ln"), &x);
	assert_true(S_ISLNK(x.m.st.mode));
	assert_int_equal(x.m.st.size, strlen("/etc/passwd"));
	reply_free(&x);

	err(&r, MSG(STAT, "missing"), "ENOENT");
	err(&r, MSG(STAT, "missing/f"), "ENOENT");
	err(&r, MSG(STAT, "f/x"), "ENOTDIR");
	err(&r, MSG(STAT, "f/.."), "EINVAL");
	err(&r, MSG(STAT, "."), "EINVAL");
	rig_stop(&r);
}

static void
test_names(void **state)
{
	struct rig r;
	char name[300], path[WARD_MSG_PATH_MAX + 10];

	(void)state;
	rig_start(&r, "ws", 0);
	memset(name, 'n', 256);
	name[256] = '\0';
	err(&r, MSG(MKDIR, name, .mode = 0755), "ENAMETOOLONG");
	err(&r, MSG(STAT, name), "ENAMETOOLONG");
	name[255] = '\0'; /* 255 is fine */
	ok(&r, MSG(CREATE, name, .mode = 0644), NULL);
	ok(&r, MSG(STAT, name), NULL);
	/* a long path of short components is still beneath the limit... */
	for (size_t i = 0; i < WARD_MSG_PATH_MAX + 2; i += 2)
		memcpy(path + i, "a/", 2);
	path[WARD_MSG_PATH_MAX + 1] = '\0';
	err(&r, MSG(STAT, path), "ENAMETOOLONG");
	/* final names that name nothing */
	err(&r, MSG(CREATE, "", .mode = 0644), "EINVAL");
	err(&r, MSG(CREATE, "/", .mode = 0644), "EINVAL");
	err(&r, MSG(MKDIR, "x/..", .mode = 0755), "EINVAL");
	err(&r, MSG(MKDIR, "x/.", .mode = 0755), "EINVAL");
	err(&r, MSG(UNLINK, ".."), "EINVAL");
	err(&r, MSG(RMDIR, ""), "EINVAL");
	err(&r, MSG(RENAME, "", .to = (char *)"x"), "EINVAL");
	/* trailing and doubled slashes are tolerated */
	ok(&r, MSG(MKDIR, "d/", .mode = 0755), NULL);
	ok(&r, MSG(CREATE, "//d//f", .mode = 0644), NULL);
	ok(&r, MSG(STAT, "d/f/"), NULL);
	rig_stop(&r);
}

static void
test_create_write_read(void **state)
{
	struct rig r;
	struct reply x;
	struct stat st;
	static const uint8_t want[15] = "hello\0\0\0\0\0world";

	(void)state;
	rig_start(&r, "ws", 0);
	ok(&r, MSG(CREATE, "f", .mode = 0640, .exclusive = true), &x);
	assert_true(x.m.has_st);
	assert_true(S_ISREG(x.m.st.mode));
	assert_int_equal(x.m.st.mode & 07777, 0640);
	reply_free(&x);
	/* the mode as asked, whatever the umask */
	assert_int_equal(stat(in(&r, "f"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	err(&r, MSG(CREATE, "f", .mode = 0600, .exclusive = true), "EEXIST");
	ok(&r, MSG(CREATE, "f", .mode = 0600), NULL); /* left as it is */
	assert_int_equal(stat(in(&r, "f"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	err(&r, MSG(CREATE, "nodir/f", .mode = 0600), "ENOENT");

	ok(&r, MSG(WRITE, "f", .data = (const uint8_t *)"hello", .data_len = 5),
	    &x);
	assert_true(x.m.has_size);
	assert_int_equal(x.m.size, 5);
	reply_free(&x);
	ok(&r,
	    MSG(WRITE, "/f", .offset = 10, .data = (const uint8_t *)"world",
	        .data_len = 5),
	    NULL);
	assert_file(in(&r, "f"), want, sizeof(want));

	ok(&r, MSG(READ, "f", .offset = 0, .length = 100), &x);
	assert_int_equal(x.m.data_len, sizeof(want));
	assert_memory_equal(x.m.data, want, sizeof(want));
	reply_free(&x);
	ok(&r, MSG(READ, "f", .offset = 3, .length = 4), &x);
	assert_int_equal(x.m.data_len, 4);
	assert_memory_equal(x.m.data, "lo\0\0", 4);
	reply_free(&x);
	/* at and past the end: nothing */
	ok(&r, MSG(READ, "f", .offset = 15, .length = 10), &x);
	assert_int_equal(x.m.data_len, 0);
	reply_free(&x);
	ok(&r, MSG(READ, "f", .offset = 1u << 30, .length = 10), &x);
	assert_int_equal(x.m.data_len, 0);
	reply_free(&x);

	/* malformed */
	err(&r, MSG(READ, "f", .length = 0), WARD_CODE_BAD_REQUEST);
	err(&r, MSG(READ, "f", .length = WARD_AGENT_CHUNK + 1),
	    WARD_CODE_BAD_REQUEST);
	/* WRITE does not create */
	err(&r, MSG(WRITE, "g", .data = (const uint8_t *)"x", .data_len = 1),
	    "ENOENT");
	assert_absent(in(&r, "g"));
	err(&r, MSG(READ, "g", .length = 1), "ENOENT");
	err(&r, MSG(READ, "", .length = 1), "EISDIR");
	err(&r, MSG(WRITE, "/", .data = (const uint8_t *)"x", .data_len = 1),
	    "EISDIR");
	/* a fifo an app left does not stall the connection */
	assert_int_equal(mkfifo(in(&r, "fifo"), 0600), 0);
	err(&r, MSG(READ, "fifo", .length = 1), "EINVAL");
	err(&r, MSG(GET, "fifo"), "EINVAL");
	rig_stop(&r);
}

static void
test_truncate(void **state)
{
	struct rig r;
	struct stat st;

	(void)state;
	rig_start(&r, "ws", 0);
	put_file(&r, "f", "hello world");
	ok(&r, MSG(TRUNCATE, "f", .size = 5), NULL);
	assert_file(in(&r, "f"), "hello", 5);
	ok(&r, MSG(TRUNCATE, "f", .size = 100000), NULL);
	assert_int_equal(stat(in(&r, "f"), &st), 0);
	assert_int_equal(st.st_size, 100000);
	ok(&r, MSG(TRUNCATE, "f", .size = 0), NULL);
	assert_int_equal(stat(in(&r, "f"), &st), 0);
	assert_int_equal(st.st_size, 0);
	err(&r, MSG(TRUNCATE, "missing", .size = 0), "ENOENT");
	err(&r, MSG(TRUNCATE, "", .size = 0), "EISDIR");
	rig_stop(&r);
}

static void
test_mkdir_rmdir_unlink(void **state)
{
	struct rig r;
	struct reply x;
	struct stat st;

	(void)state;
	rig_start(&r, "ws", 0);
	ok(&r, MSG(MKDIR, "d", .mode = 0750), &x);
	assert_true(x.m.has_st && S_ISDIR(x.m.st.mode));
	reply_free(&x);
	assert_int_equal(stat(in(&r, "d"), &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0750);
	err(&r, MSG(MKDIR, "d", .mode = 0750), "EEXIST");
	ok(&r, MSG(MKDIR, "d/e", .mode = 0700), NULL);
	err(&r, MSG(MKDIR, "x/y", .mode = 0700), "ENOENT");
	ok(&r, MSG(CREATE, "d/f", .mode = 0600), NULL);

	err(&r, MSG(RMDIR, "d"), "ENOTEMPTY");
	err(&r, MSG(UNLINK, "d"), "EISDIR");
	err(&r, MSG(RMDIR, "d/f"), "ENOTDIR");
	ok(&r, MSG(UNLINK, "d/f"), NULL);
	assert_absent(in(&r, "d/f"));
	err(&r, MSG(UNLINK, "d/f"), "ENOENT");
	ok(&r, MSG(RMDIR, "d/e"), NULL);
	ok(&r, MSG(RMDIR, "/d/"), NULL);
	assert_absent(in(&r, "d"));
	err(&r, MSG(RMDIR, "d"), "ENOENT");
	assert_int_equal(tu_count_entries(r.ws), 0);
	rig_stop(&r);
}

static void
test_rename(void **state)
{
	struct rig r;

	(void)state;
	rig_start(&r, "ws", 0);
	put_file(&r, "a", "AAA");
	put_file(&r, "b", "BB");
	ok(&r, MSG(MKDIR, "d", .mode = 0755), NULL);

	ok(&r, MSG(RENAME, "a", .to = (char *)"c"), NULL);
	assert_absent(in(&r, "a"));
	assert_file(in(&r, "c"), "AAA", 3);
	/* noreplace */
	err(&r, MSG(RENAME, "c", .to = (char *)"b", .exclusive = true),
	    "EEXIST");
	assert_file(in(&r, "b"), "BB", 2);
	/* replace */
	ok(&r, MSG(RENAME, "c", .to = (char *)"/b"), NULL);
	assert_file(in(&r, "b"), "AAA", 3);
	assert_absent(in(&r, "c"));
	/* across directories, and back */
	ok(&r, MSG(RENAME, "b", .to = (char *)"d/b"), NULL);
	assert_file(in(&r, "d/b"), "AAA", 3);
	ok(&r, MSG(RENAME, "d", .to = (char *)"e"), NULL);
	assert_file(in(&r, "e/b"), "AAA", 3);

	err(&r, MSG(RENAME, "missing", .to = (char *)"x"), "ENOENT");
	err(&r, MSG(RENAME, "e/b", .to = (char *)"nodir/x"), "ENOENT");
	err(&r, MSG(RENAME, "e/b", .to = (char *)".."), "EINVAL");
	put_file(&r, "f", "x");
	err(&r, MSG(RENAME, "f", .to = (char *)"e"), "EISDIR");
	rig_stop(&r);
}

static void
test_chmod_utimens(void **state)
{
	struct rig r;
	struct stat st;
	struct reply x;

	(void)state;
	rig_start(&r, "ws", 0);
	put_file(&r, "f", "x");
	ok(&r, MSG(CHMOD, "f", .mode = 04751), NULL);
	assert_int_equal(stat(in(&r, "f"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 04751);
	ok(&r, MSG(CHMOD, "f", .mode = 0600), NULL);
	assert_int_equal(stat(in(&r, "f"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	err(&r, MSG(CHMOD, "missing", .mode = 0600), "ENOENT");
	/* the workspace itself */
	ok(&r, MSG(CHMOD, "/", .mode = 0711), NULL);
	assert_int_equal(stat(r.ws, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0711);
	ok(&r, MSG(CHMOD, "/", .mode = 0700), NULL);

	/* both times */
	ok(&r,
	    MSG(UTIMENS, "f", .has_atime = true, .atime_ns = 1000000000123,
	        .has_mtime = true, .mtime_ns = 2000000000456),
	    NULL);
	assert_int_equal(stat(in(&r, "f"), &st), 0);
	assert_int_equal(st.st_atim.tv_sec, 1000);
	assert_int_equal(st.st_atim.tv_nsec, 123);
	assert_int_equal(st.st_mtim.tv_sec, 2000);
	assert_int_equal(st.st_mtim.tv_nsec, 456);
	/* only mtime: atime left alone; negative times before 1970 */
	ok(&r, MSG(UTIMENS, "f", .has_mtime = true, .mtime_ns = -1500000000),
	    NULL);
	assert_int_equal(stat(in(&r, "f"), &st), 0);
	assert_int_equal(st.st_atim.tv_sec, 1000);
	assert_int_equal(st.st_mtim.tv_sec, -2);
	assert_int_equal(st.st_mtim.tv_nsec, 500000000);
	ok(&r, MSG(STAT, "f"), &x);
	assert_int_equal(x.m.st.mtime_ns, -1500000000);
	assert_int_equal(x.m.st.atime_ns, 1000000000123);
	reply_free(&x);
	/* neither: nothing changes */
	ok(&r, MSG(UTIMENS, "f"), NULL);
	assert_int_equal(stat(in(&r, "f"), &st), 0);
	assert_int_equal(st.st_mtim.tv_sec, -2);
	ok(&r, MSG(UTIMENS, "", .has_mtime = true, .mtime_ns = 5000000000),
	    NULL);
	assert_int_equal(stat(r.ws, &st), 0);
	assert_int_equal(st.st_mtim.tv_sec, 5);
	err(&r, MSG(UTIMENS, "missing", .has_mtime = true), "ENOENT");
	rig_stop(&r);
}

static void
test_statfs(void **state)
{
	struct rig r;
	struct reply x;
	struct statvfs v;

	(void)state;
	rig_start(&r, "ws", 64u << 20);
	ok(&r, MSG(STATFS, NULL), &x);
	assert_true(x.m.has_fs);
	assert_int_equal(statvfs(r.ws, &v), 0);
	assert_int_equal(x.m.fs.bsize, v.f_frsize);
	assert_int_equal(x.m.fs.blocks, (64u << 20) / v.f_frsize);
	assert_true(x.m.fs.bfree <= x.m.fs.blocks);
	assert_int_equal(x.m.fs.namemax, 255);
	assert_int_equal(x.m.fs.files, v.f_files);
	reply_free(&x);
	if (private_tmp != NULL) {
		uint64_t before;
		uint8_t *buf = calloc(1, 1 << 20);

		/* a MiB written shows as a MiB less free */
		ok(&r, MSG(STATFS, NULL), &x);
		before = x.m.fs.bfree;
		reply_free(&x);
		assert_non_null(buf);
		assert_int_equal(tu_write_file(in(&r, "m"), buf, 1 << 20), 0);
		free(buf);
		ok(&r, MSG(STATFS, NULL), &x);
		assert_int_equal(
		    x.m.fs.bfree, before - (1u << 20) / v.f_frsize);
		reply_free(&x);
	}
	rig_stop(&r);
}

/* ------------------------------------------------------------------ */
/* LIST                                                                */

static void
make_files(struct rig *r, const char *dir, unsigned n, size_t namelen)
{
	char name[300], path[PATH_MAX + 400];

	snprintf(path, sizeof(path), "%s/%s", r->ws, dir);
	assert_int_equal(mkdir(path, 0755), 0);
	/* created in an order that is not the sorted one */
	for (unsigned i = 0; i < n; i++) {
		unsigned k = (i * 7919u) % n;
		int fd;

		memset(name, 'x', namelen);
		snprintf(name, sizeof(name), "%05u", k);
		name[5] = 'x';
		name[namelen] = '\0';
		snprintf(path, sizeof(path), "%s/%s/%s", r->ws, dir, name);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, name, k % 10), (ssize_t)(k % 10));
		close(fd);
	}
}

/* Page through dir with pages of len; check every name once, in order. */
static size_t
list_all(
    struct rig *r, const char *dir, uint64_t len, unsigned n, size_t *pages)
{
	struct reply x;
	uint64_t off = 0;
	char prev[300] = "";
	size_t seen = 0;

	*pages = 0;
	for (;;) {
		ok(r, MSG(LIST, dir, .offset = off, .length = len), &x);
		(*pages)++;
		assert_true(x.m.entries != NULL || x.m.entryc == 0);
		if (len != 0)
			assert_true(x.m.entryc <= len);
		assert_true(x.m.entryc <= WARD_MSG_LIST_MAX);
		for (size_t i = 0; i < x.m.entryc; i++) {
			const struct ward_msg_dirent *e = &x.m.entries[i];
			unsigned k = (unsigned)strtoul(e->name, NULL, 10);

			assert_true(strcmp(prev, e->name) < 0);
			assert_true(strlen(e->name) < sizeof(prev));
			memcpy(prev, e->name, strlen(e->name) + 1);
			assert_int_equal(k, seen);
			assert_true(S_ISREG(e->st.mode));
			assert_int_equal(e->st.size, k % 10);
			seen++;
		}
		off += x.m.entryc;
		if (!x.m.more) {
			reply_free(&x);
			break;
		}
		assert_true(x.m.entryc > 0);
		reply_free(&x);
		assert_true(*pages < 10000);
	}
	assert_int_equal(seen, n);
	return seen;
}

static void
test_list(void **state)
{
	struct rig r;
	struct reply x;
	size_t pages;

	(void)state;
	rig_start(&r, "ws", 0);
	/* empty */
	ok(&r, MSG(LIST, ""), &x);
	assert_int_equal(x.m.entryc, 0);
	assert_false(x.m.more);
	reply_free(&x);
	/* a few kinds, lstat attributes */
	put_file(&r, "b", "xy");
	assert_int_equal(mkdir(in(&r, "a"), 0700), 0);
	assert_int_equal(symlink("/", in(&r, "c")), 0);
	put_file(&r, ".hidden", "");
	ok(&r, MSG(LIST, "/"), &x);
	assert_int_equal(x.m.entryc, 4);
	assert_false(x.m.more);
	assert_string_equal(x.m.entries[0].name, ".hidden");
	assert_string_equal(x.m.entries[1].name, "a");
	assert_true(S_ISDIR(x.m.entries[1].st.mode));
	assert_string_equal(x.m.entries[2].name, "b");
	assert_int_equal(x.m.entries[2].st.size, 2);
	assert_string_equal(x.m.entries[3].name, "c");
	assert_true(S_ISLNK(x.m.entries[3].st.mode));
	reply_free(&x);
	/* past the end */
	ok(&r, MSG(LIST, "/", .offset = 4), &x);
	assert_int_equal(x.m.entryc, 0);
	assert_false(x.m.more);
	reply_free(&x);
	ok(&r, MSG(LIST, "/", .offset = 1000), &x);
	assert_int_equal(x.m.entryc, 0);
	reply_free(&x);
	err(&r, MSG(LIST, "b"), "ENOTDIR");
	err(&r, MSG(LIST, "missing"), "ENOENT");

	/* more than one reply holds: the default page is WARD_MSG_LIST_MAX */
	make_files(&r, "big", WARD_MSG_LIST_MAX + 5, 8);
	ok(&r, MSG(LIST, "big"), &x);
	assert_int_equal(x.m.entryc, WARD_MSG_LIST_MAX);
	assert_true(x.m.more);
	reply_free(&x);
	list_all(&r, "big", 0, WARD_MSG_LIST_MAX + 5, &pages);
	assert_int_equal(pages, 2);
	list_all(&r, "big", 1000, WARD_MSG_LIST_MAX + 5, &pages);
	assert_int_equal(pages, 5);
	/* long names: the frame bound cuts pages before the count does */
	make_files(&r, "long", WARD_MSG_LIST_MAX + 5, 250);
	list_all(&r, "long", 0, WARD_MSG_LIST_MAX + 5, &pages);
	assert_true(pages >= 2);
	rig_stop(&r);
}

/* ------------------------------------------------------------------ */
/* escapes                                                             */

static void
test_escape(void **state)
{
	struct rig r;
	struct reply x;
	struct stat st, st0;
	char outside[PATH_MAX + 32], evil[PATH_MAX + 32];
	static const uint8_t one[1] = {'!'};

	(void)state;
	rig_start(&r, "ws", 0);
	snprintf(outside, sizeof(outside), "%s/outside.txt", r.root);
	assert_int_equal(tu_write_file(outside, "secret", 6), 0);
	assert_int_equal(stat(outside, &st0), 0);
	assert_int_equal(mkdir(in(&r, "etc"), 0755), 0);
	put_file(&r, "etc/passwd", "inside");

	/* ".." stops at the workspace */
	err(&r, MSG(READ, "../outside.txt", .length = 100), "ENOENT");
	err(&r, MSG(STAT, "../outside.txt"), "ENOENT");
	ok(&r, MSG(READ, "/../../etc/passwd", .length = 100), &x);
	assert_int_equal(x.m.data_len, 6);
	assert_memory_equal(x.m.data, "inside", 6);
	reply_free(&x);
	ok(&r, MSG(CREATE, "../x", .mode = 0644), NULL);
	assert_file(in(&r, "x"), "", 0);
	snprintf(evil, sizeof(evil), "%s/x", r.root);
	assert_absent(evil);

	/* symlinks an app made: to /, to ../.., to a host path */
	assert_int_equal(symlink("/", in(&r, "abs")), 0);
	assert_int_equal(symlink("../..", in(&r, "up")), 0);
	assert_int_equal(symlink(outside, in(&r, "esc")), 0);
	assert_int_equal(symlink(r.root, in(&r, "rootdir")), 0);

	ok(&r, MSG(READ, "abs/etc/passwd", .length = 100), &x);
	assert_memory_equal(x.m.data, "inside", 6);
	reply_free(&x);
	err(&r, MSG(READ, "up/outside.txt", .length = 100), "ENOENT");
	err(&r, MSG(READ, "esc", .length = 100), "ENOENT");
	err(&r, MSG(GET, "esc"), "ENOENT");
	err(&r, MSG(WRITE, "esc", .data = one, .data_len = 1), "ENOENT");
	err(&r, MSG(TRUNCATE, "esc", .size = 0), "ENOENT");
	err(&r, MSG(CREATE, "rootdir/evil", .mode = 0644), "ENOENT");
	err(&r, MSG(MKDIR, "rootdir/evil", .mode = 0755), "ENOENT");
	snprintf(evil, sizeof(evil), "%s/evil", r.root);
	assert_absent(evil);
	/* through "up", creation lands in the workspace */
	ok(&r, MSG(CREATE, "up/y", .mode = 0644), NULL);
	assert_file(in(&r, "y"), "", 0);
	snprintf(evil, sizeof(evil), "%s/y", r.root);
	assert_absent(evil);
	/* LIST of a link to / lists the workspace */
	ok(&r, MSG(LIST, "abs"), &x);
	assert_true(x.m.entryc >= 5);
	assert_string_equal(x.m.entries[0].name, "abs");
	reply_free(&x);

	/* final symlinks are never followed */
	ok(&r, MSG(STAT, "esc"), &x);
	assert_true(S_ISLNK(x.m.st.mode));
	reply_free(&x);
	err(&r, MSG(CHMOD, "esc", .mode = 0777), "ENOTSUP");
	err(&r, MSG(CREATE, "esc", .mode = 0644), "ELOOP");
	ok(&r, MSG(UTIMENS, "esc", .has_mtime = true, .mtime_ns = 0), NULL);
	ok(&r, MSG(RENAME, "esc", .to = (char *)"moved"), NULL);
	assert_int_equal(lstat(in(&r, "moved"), &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	ok(&r, MSG(UNLINK, "moved"), NULL);
	assert_absent(in(&r, "moved"));
	err(&r, MSG(RMDIR, "rootdir"), "ENOTDIR");

	/* a PUT through a link lands inside, and replaces no host file */
	{
		struct ward_msg p = MSG(PUT, "up/outside.txt", .mode = 0600);
		uint64_t id = call(&r, &p);
		struct ward_msg d = {.type = WARD_MSG_DATA,
		    .id = id,
		    .data = one,
		    .data_len = 1};
		struct ward_msg e = {.type = WARD_MSG_END, .id = id};

		call(&r, &d);
		ok(&r, e, NULL);
	}
	assert_file(in(&r, "outside.txt"), "!", 1);

	/* agent_ws_open (exec, models) is held to the same root */
	{
		int fd;
		char buf[16];

		ASSERT_OK(agent_ws_open(&r.a, "/../etc/passwd", O_RDONLY, &fd));
		assert_int_equal(read(fd, buf, sizeof(buf)), 6);
		assert_memory_equal(buf, "inside", 6);
		close(fd);
		ASSERT_ERR(agent_ws_open(&r.a, "up/../outside.txt/..",
		               O_RDONLY | O_DIRECTORY, &fd),
		    WARD_EIO);
		assert_int_equal(fd, -1);
		ASSERT_OK(agent_ws_open(
		    &r.a, "abs/new", O_WRONLY | O_CREAT | O_EXCL, &fd));
		close(fd);
		assert_file(in(&r, "new"), "", 0);
		ASSERT_ERR(
		    agent_ws_open(&r.a, "missing", O_RDONLY, &fd), WARD_EIO);
		assert_non_null(strstr(ward_errmsg(), "/missing"));
	}

	/* the host file is untouched throughout */
	assert_file(outside, "secret", 6);
	assert_int_equal(stat(outside, &st), 0);
	assert_int_equal(st.st_mode, st0.st_mode);
	assert_int_equal(st.st_mtim.tv_sec, st0.st_mtim.tv_sec);
	assert_int_equal(st.st_mtim.tv_nsec, st0.st_mtim.tv_nsec);
	assert_int_equal(tu_count_entries(r.root), 2); /* ws, outside.txt */
	rig_stop(&r);
}

/* ------------------------------------------------------------------ */
/* PUT and GET                                                         */

/* PUT n bytes of fill(seed) in chunks of chunk; returns the checksum. */
static uint64_t
put_stream(struct rig *r, const char *path, uint32_t mode, size_t n,
    bool with_size, size_t chunk, uint64_t seed, bool check_hidden)
{
	struct ward_msg p =
	    MSG(PUT, path, .mode = mode, .size = n, .has_size = with_size);
	uint8_t *buf = malloc(n ? n : 1);
	uint64_t id, h;
	struct reply x;

	assert_non_null(buf);
	fill(buf, n, seed);
	h = fnv1a(FNV_INIT, buf, n);
	id = call(r, &p);
	assert_true(agent_ws_owns(&r->c, id));
	for (size_t off = 0; off < n; off += chunk) {
		struct ward_msg d = {.type = WARD_MSG_DATA,
		    .id = id,
		    .data = buf + off,
		    .data_len = n - off < chunk ? n - off : chunk};

		call(r, &d);
		if (check_hidden)
			assert_absent(in(r, path));
	}
	expect_quiet(r); /* no reply before END */
	ok(r, ((struct ward_msg){.type = WARD_MSG_END, .id = id}), &x);
	assert_true(x.m.has_size);
	assert_int_equal(x.m.size, n);
	reply_free(&x);
	assert_false(agent_ws_owns(&r->c, id));
	assert_file(in(r, path), buf, n);
	free(buf);
	return h;
}

/* GET path: the checksum of the DATA, which must add up to the OK's size
 * in frames of at most WARD_AGENT_CHUNK. */
static uint64_t
get_stream(struct rig *r, const char *path, size_t *n, size_t *frames)
{
	struct ward_msg g = MSG(GET, path);
	uint64_t id = call(r, &g), h = FNV_INIT;
	struct reply x;

	*n = 0;
	*frames = 0;
	for (;;) {
		next_reply(r, &x);
		assert_int_equal(x.m.id, id);
		if (x.m.type != WARD_MSG_DATA)
			break;
		assert_true(x.m.data_len > 0);
		assert_true(x.m.data_len <= WARD_AGENT_CHUNK);
		h = fnv1a(h, x.m.data, x.m.data_len);
		*n += x.m.data_len;
		(*frames)++;
		reply_free(&x);
	}
	if (x.m.type == WARD_MSG_ERR)
		fail_msg("GET %s: %s %s", path, x.m.code, x.m.message);
	assert_int_equal(x.m.type, WARD_MSG_OK);
	assert_true(x.m.has_size);
	assert_int_equal(x.m.size, *n);
	reply_free(&x);
	return h;
}

static void
test_put_get(void **state)
{
	struct rig r;
	struct stat st;
	size_t n, frames;
	const size_t big = 3 * WARD_AGENT_CHUNK + 12345;
	uint64_t h;

	(void)state;
	rig_start(&r, "ws", 0);
	ok(&r, MSG(MKDIR, "d", .mode = 0755), NULL);
	/* several chunks, with a size */
	h = put_stream(
	    &r, "d/model.bin", 0751, big, true, WARD_AGENT_CHUNK, 1, true);
	assert_int_equal(stat(in(&r, "d/model.bin"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0751);
	assert_int_equal(get_stream(&r, "d/model.bin", &n, &frames), h);
	assert_int_equal(n, big);
	assert_int_equal(frames, 4);
	/* nothing else was left in the directory */
	assert_int_equal(tu_count_entries(in(&r, "d")), 1);

	/* without a size, odd chunks, replacing the file */
	h = put_stream(&r, "/d/model.bin", 0600, 100000, false, 777, 2, false);
	assert_int_equal(get_stream(&r, "d/model.bin", &n, &frames), h);
	assert_int_equal(n, 100000);
	assert_int_equal(tu_count_entries(in(&r, "d")), 1);
	/* empty */
	h = put_stream(&r, "empty", 0644, 0, true, 1, 3, false);
	assert_int_equal(get_stream(&r, "empty", &n, &frames), h);
	assert_int_equal(n, 0);
	assert_int_equal(frames, 0);

	err(&r, MSG(GET, "d"), "EISDIR");
	err(&r, MSG(GET, ""), "EISDIR");
	err(&r, MSG(GET, "missing"), "ENOENT");
	rig_stop(&r);
}

/* Two PUTs interleaved on one connection keep apart. */
static void
test_put_interleaved(void **state)
{
	struct rig r;
	uint8_t a[1000], b[1500];
	struct ward_msg pa = MSG(PUT, "a", .mode = 0644);
	struct ward_msg pb =
	    MSG(PUT, "b", .mode = 0644, .size = sizeof(b), .has_size = true);
	uint64_t ia, ib;

	(void)state;
	rig_start(&r, "ws", 0);
	fill(a, sizeof(a), 10);
	fill(b, sizeof(b), 11);
	ia = call(&r, &pa);
	ib = call(&r, &pb);
	for (size_t i = 0; i < 10; i++) {
		struct ward_msg da = {.type = WARD_MSG_DATA,
		    .id = ia,
		    .data = a + i * 100,
		    .data_len = 100};
		struct ward_msg db = {.type = WARD_MSG_DATA,
		    .id = ib,
		    .data = b + i * 150,
		    .data_len = 150};

		call(&r, &db);
		call(&r, &da);
	}
	ok(&r, ((struct ward_msg){.type = WARD_MSG_END, .id = ib}), NULL);
	ok(&r, ((struct ward_msg){.type = WARD_MSG_END, .id = ia}), NULL);
	assert_file(in(&r, "a"), a, sizeof(a));
	assert_file(in(&r, "b"), b, sizeof(b));
	assert_int_equal(tu_count_entries(r.ws), 2);
	rig_stop(&r);
}

static void
test_put_wrong_size(void **state)
{
	struct rig r;
	uint8_t buf[100];
	struct ward_msg p;
	uint64_t id;

	(void)state;
	rig_start(&r, "ws", 0);
	fill(buf, sizeof(buf), 4);
	put_file(&r, "old", "previous");

	/* fewer bytes than announced: ERR at END, nothing stays */
	p = MSG(PUT, "old", .mode = 0644, .size = 100, .has_size = true);
	id = call(&r, &p);
	call(&r,
	    &(struct ward_msg){
	        .type = WARD_MSG_DATA, .id = id, .data = buf, .data_len = 50});
	err(&r, (struct ward_msg){.type = WARD_MSG_END, .id = id}, "EINVAL");
	assert_false(agent_ws_owns(&r.c, id));
	assert_file(in(&r, "old"), "previous", 8);

	/* more: ERR at the DATA that overflows, once; the rest is dropped
	 * silently until END, which is forgotten */
	p = MSG(PUT, "new", .mode = 0644, .size = 10, .has_size = true);
	id = call(&r, &p);
	call(&r,
	    &(struct ward_msg){
	        .type = WARD_MSG_DATA, .id = id, .data = buf, .data_len = 8});
	expect_quiet(&r);
	err(&r,
	    (struct ward_msg){
	        .type = WARD_MSG_DATA, .id = id, .data = buf, .data_len = 8},
	    "EINVAL");
	assert_true(agent_ws_owns(&r.c, id));
	call(&r,
	    &(struct ward_msg){
	        .type = WARD_MSG_DATA, .id = id, .data = buf, .data_len = 8});
	call(&r, &(struct ward_msg){.type = WARD_MSG_END, .id = id});
	expect_quiet(&r);
	assert_false(agent_ws_owns(&r.c, id));
	assert_absent(in(&r, "new"));
	/* only "old": no temporary file, hidden or not */
	assert_int_equal(tu_count_entries(r.ws), 1);

	/* a DATA over the chunk size is a bad request */
	{
		uint8_t *huge = calloc(1, WARD_AGENT_CHUNK + 1);

		assert_non_null(huge);
		p = MSG(PUT, "huge", .mode = 0644);
		id = call(&r, &p);
		err(&r,
		    (struct ward_msg){.type = WARD_MSG_DATA,
		        .id = id,
		        .data = huge,
		        .data_len = WARD_AGENT_CHUNK + 1},
		    WARD_CODE_BAD_REQUEST);
		call(&r, &(struct ward_msg){.type = WARD_MSG_END, .id = id});
		expect_quiet(&r);
		free(huge);
	}
	assert_int_equal(tu_count_entries(r.ws), 1);
	rig_stop(&r);
}

static void
test_put_close(void **state)
{
	struct rig r;
	uint8_t buf[4096];
	uint64_t id1, id2;

	(void)state;
	rig_start(&r, "ws", 0);
	fill(buf, sizeof(buf), 5);
	put_file(&r, "keep", "old");
	id1 = call(&r, &MSG(PUT, "keep", .mode = 0600));
	id2 = call(&r,
	    &MSG(PUT, "fresh", .mode = 0600, .size = 100000, .has_size = true));
	for (int i = 0; i < 4; i++) {
		call(&r,
		    &(struct ward_msg){.type = WARD_MSG_DATA,
		        .id = id1,
		        .data = buf,
		        .data_len = sizeof(buf)});
		call(&r,
		    &(struct ward_msg){.type = WARD_MSG_DATA,
		        .id = id2,
		        .data = buf,
		        .data_len = sizeof(buf)});
	}
	expect_quiet(&r);
	assert_true(agent_ws_owns(&r.c, id1));
	agent_ws_conn_close(&r.c);
	assert_false(agent_ws_owns(&r.c, id1));
	assert_false(agent_ws_owns(&r.c, id2));
	assert_null(r.c.puts);
	assert_file(in(&r, "keep"), "old", 3);
	assert_absent(in(&r, "fresh"));
	assert_int_equal(tu_count_entries(r.ws), 1);
	rig_stop(&r);
}

static void
test_put_errors(void **state)
{
	struct rig r;
	uint64_t id, ids[16];
	static const uint8_t one[1] = {'1'};

	(void)state;
	rig_start(&r, "ws", 0);
	/* ERR right away, then the stream's DATA and END are swallowed */
	id = r.next_id++;
	err(&r, MSG(PUT, "nodir/f", .id = id, .mode = 0644), "ENOENT");
	assert_true(agent_ws_owns(&r.c, id));
	call(&r,
	    &(struct ward_msg){
	        .type = WARD_MSG_DATA, .id = id, .data = one, .data_len = 1});
	call(&r, &(struct ward_msg){.type = WARD_MSG_END, .id = id});
	expect_quiet(&r);
	assert_false(agent_ws_owns(&r.c, id));

	ok(&r, MSG(MKDIR, "d", .mode = 0755), NULL);
	id = r.next_id++;
	err(&r, MSG(PUT, "d", .id = id, .mode = 0644), "EISDIR");
	call(&r, &(struct ward_msg){.type = WARD_MSG_END, .id = id});
	id = r.next_id++;
	err(&r, MSG(PUT, "", .id = id, .mode = 0644), "EINVAL");
	call(&r, &(struct ward_msg){.type = WARD_MSG_END, .id = id});
	id = r.next_id++;
	err(&r, MSG(PUT, "d/..", .id = id, .mode = 0644), "EINVAL");
	call(&r, &(struct ward_msg){.type = WARD_MSG_END, .id = id});
	expect_quiet(&r);

	/* DATA or END for no PUT */
	err(&r,
	    (struct ward_msg){.type = WARD_MSG_DATA,
	        .id = 999999,
	        .data = one,
	        .data_len = 1},
	    WARD_CODE_BAD_REQUEST);
	err(&r, (struct ward_msg){.type = WARD_MSG_END, .id = 999999},
	    WARD_CODE_BAD_REQUEST);

	/* 16 at once; the 17th is refused but its stream still swallowed */
	for (int i = 0; i < 16; i++) {
		char name[16];

		snprintf(name, sizeof(name), "p%d", i);
		ids[i] = call(&r, &MSG(PUT, name, .mode = 0644));
	}
	expect_quiet(&r);
	id = r.next_id++;
	err(&r, MSG(PUT, "p16", .id = id, .mode = 0644), WARD_CODE_LIMIT);
	call(&r,
	    &(struct ward_msg){
	        .type = WARD_MSG_DATA, .id = id, .data = one, .data_len = 1});
	call(&r, &(struct ward_msg){.type = WARD_MSG_END, .id = id});
	expect_quiet(&r);
	assert_absent(in(&r, "p16"));
	/* one finishing makes room */
	ok(&r, ((struct ward_msg){.type = WARD_MSG_END, .id = ids[0]}), NULL);
	assert_file(in(&r, "p0"), "", 0);
	ids[0] = call(&r, &MSG(PUT, "p16", .mode = 0644));
	expect_quiet(&r);
	/* a second PUT with the id of one in progress voids both */
	err(&r, MSG(PUT, "other", .id = ids[1], .mode = 0644),
	    WARD_CODE_BAD_REQUEST);
	call(&r, &(struct ward_msg){.type = WARD_MSG_END, .id = ids[1]});
	expect_quiet(&r);
	assert_absent(in(&r, "p1"));
	assert_absent(in(&r, "other"));
	agent_ws_conn_close(&r.c);
	/* d, p0 */
	assert_int_equal(tu_count_entries(r.ws), 2);
	rig_stop(&r);
}

/* ------------------------------------------------------------------ */
/* the size bound                                                      */

static void
assert_nospc(struct rig *r, struct ward_msg m)
{
	struct reply x;
	uint64_t id = call(r, &m);

	next_reply(r, &x);
	assert_int_equal(x.m.id, id);
	if (x.m.type != WARD_MSG_ERR || strcmp(x.m.code, "ENOSPC") != 0)
		fail_msg("%s: expected ERR ENOSPC", ward_msg_type_name(m.type));
	/* says the bound and how to raise it */
	assert_non_null(strstr(x.m.message, "--workspace-size"));
	assert_non_null(strstr(x.m.message, "262144"));
	reply_free(&x);
}

/* What no usage elsewhere can change: growing by more than the bound. */
static void
test_quota(void **state)
{
	struct rig r;
	uint8_t *buf = calloc(1, WARD_AGENT_CHUNK);
	uint64_t id;

	(void)state;
	assert_non_null(buf);
	rig_start(&r, "ws", 256u * 1024);
	put_file(&r, "f", "0123456789");
	/* PUT announcing more than fits: refused before any byte */
	id = r.next_id++;
	assert_nospc(&r,
	    MSG(PUT, "big", .id = id, .mode = 0644, .size = 1u << 20,
	        .has_size = true));
	call(&r,
	    &(struct ward_msg){
	        .type = WARD_MSG_DATA, .id = id, .data = buf, .data_len = 100});
	call(&r, &(struct ward_msg){.type = WARD_MSG_END, .id = id});
	expect_quiet(&r);
	/* WRITE or TRUNCATE growing past it */
	assert_nospc(
	    &r, MSG(WRITE, "f", .offset = 300000, .data = buf, .data_len = 1));
	assert_nospc(&r, MSG(TRUNCATE, "f", .size = 1u << 20));
	assert_file(in(&r, "f"), "0123456789", 10);
	/* not growing is always allowed */
	ok(&r,
	    MSG(WRITE, "f", .offset = 0, .data = (const uint8_t *)"abc",
	        .data_len = 3),
	    NULL);
	ok(&r, MSG(TRUNCATE, "f", .size = 2), NULL);
	assert_file(in(&r, "f"), "ab", 2);
	free(buf);
	assert_int_equal(tu_count_entries(r.ws), 1);
	rig_stop(&r);
}

/* Usage adds up across files, and a PUT cut off by the bound leaves
 * nothing. Needs a filesystem nobody else writes to. */
static void
test_quota_usage(void **state)
{
	struct rig r;
	uint8_t *buf;
	uint64_t id;
	struct reply x;

	(void)state;
	if (!need_private_fs())
		skip();
	buf = calloc(1, WARD_AGENT_CHUNK);
	assert_non_null(buf);
	rig_start(&r, "ws", 256u * 1024);
	put_stream(&r, "a", 0644, 100 * 1024, true, 64 * 1024, 6, false);
	put_stream(&r, "b", 0644, 100 * 1024, false, 64 * 1024, 7, false);
	/* 200 KiB used: a third 100 KiB does not fit, in either form */
	id = r.next_id++;
	assert_nospc(&r,
	    MSG(PUT, "c", .id = id, .mode = 0644, .size = 100 * 1024,
	        .has_size = true));
	call(&r, &(struct ward_msg){.type = WARD_MSG_END, .id = id});
	id = call(&r, &MSG(PUT, "c", .mode = 0644));
	call(&r,
	    &(struct ward_msg){.type = WARD_MSG_DATA,
	        .id = id,
	        .data = buf,
	        .data_len = 40 * 1024});
	expect_quiet(&r);
	assert_nospc(&r,
	    (struct ward_msg){.type = WARD_MSG_DATA,
	        .id = id,
	        .data = buf,
	        .data_len = 40 * 1024});
	call(&r,
	    &(struct ward_msg){.type = WARD_MSG_DATA,
	        .id = id,
	        .data = buf,
	        .data_len = 40 * 1024});
	call(&r, &(struct ward_msg){.type = WARD_MSG_END, .id = id});
	expect_quiet(&r);
	assert_absent(in(&r, "c"));
	assert_int_equal(tu_count_entries(r.ws), 2);
	/* the dropped temporary file gave its space back */
	assert_nospc(&r,
	    MSG(WRITE, "a", .offset = 100 * 1024, .data = buf,
	        .data_len = 60 * 1024));
	ok(&r,
	    MSG(WRITE, "a", .offset = 100 * 1024, .data = buf,
	        .data_len = 40 * 1024),
	    NULL);
	/* STATFS agrees: under 16 KiB left */
	ok(&r, MSG(STATFS, NULL), &x);
	assert_true(x.m.fs.bfree * x.m.fs.bsize <= 16 * 1024);
	reply_free(&x);
	/* removing files frees room again */
	ok(&r, MSG(UNLINK, "a"), NULL);
	ok(&r, MSG(UNLINK, "b"), NULL);
	put_stream(&r, "c", 0644, 200 * 1024, true, WARD_AGENT_CHUNK, 8, false);
	free(buf);
	rig_stop(&r);
}

/* ------------------------------------------------------------------ */

static int
write_proc(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* A tmpfs of this process's own, in a private mount namespace, as the
 * parent of every test directory. Before any thread exists. */
static void
private_tmpfs(void)
{
	const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	uid_t uid = geteuid();
	gid_t gid = getegid();
	char map[64], *d;

	if (asprintf(&d, "%s/ward-ws-XXXXXX", base) < 0 || mkdtemp(d) == NULL)
		fail_msg("mkdtemp under %s", base);
	if (uid == 0 ? unshare(CLONE_NEWNS) != 0
	             : unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0)
		goto fail;
	if (uid != 0) {
		snprintf(map, sizeof(map), "0 %u 1", (unsigned)uid);
		if (write_proc("/proc/self/setgroups", "deny") != 0 ||
		    write_proc("/proc/self/uid_map", map) != 0)
			goto fail;
		snprintf(map, sizeof(map), "0 %u 1", (unsigned)gid);
		if (write_proc("/proc/self/gid_map", map) != 0)
			goto fail;
	}
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
	    mount("ward-ws", d, "tmpfs", 0, "size=256m,mode=0700") != 0)
		goto fail;
	private_tmp = d;
	setenv("TMPDIR", d, 1);
	{
		char *t = tu_mkdtemp();

		can_ramfs = mount("none", t, "ramfs", 0, NULL) == 0;
		if (can_ramfs)
			umount2(t, MNT_DETACH);
		rmdir(t);
		free(t);
	}
	return;
fail:
	printf("# no private mount namespace (%s): using %s\n", strerror(errno),
	    base);
	rmdir(d);
	free(d);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_init),
	    cmocka_unit_test(test_init_refused),
	    cmocka_unit_test(test_init_ramfs),
	    cmocka_unit_test(test_stat),
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_create_write_read),
	    cmocka_unit_test(test_truncate),
	    cmocka_unit_test(test_mkdir_rmdir_unlink),
	    cmocka_unit_test(test_rename),
	    cmocka_unit_test(test_chmod_utimens),
	    cmocka_unit_test(test_statfs),
	    cmocka_unit_test(test_list),
	    cmocka_unit_test(test_escape),
	    cmocka_unit_test(test_put_get),
	    cmocka_unit_test(test_put_interleaved),
	    cmocka_unit_test(test_put_wrong_size),
	    cmocka_unit_test(test_put_close),
	    cmocka_unit_test(test_put_errors),
	    cmocka_unit_test(test_quota),
	    cmocka_unit_test(test_quota_usage),
	};
	int rc;

	signal(SIGPIPE, SIG_IGN);
	private_tmpfs();
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	if (private_tmp != NULL) {
		umount2(private_tmp, MNT_DETACH);
		rmdir(private_tmp);
		free(private_tmp);
	}
	return rc;
}
