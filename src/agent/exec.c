/*
 * EXEC and CANCEL (docs/protocol.md): run an encrypted application
 * bundle inside the enclave.
 *
 * The host is not trusted; the vendor's bundle, once decrypted here, must
 * stay out of its reach; the image (and so the agent's command line, with
 * its --app-key ARNs) is measured into PCR0 and trusted. So whatever the
 * host sends may choose which of the bundle's programs runs and with
 * which arguments, but never code of its own beside the plaintext:
 *
 *   - argv[0] names a program of the bundle (find_command): a relative
 *     path without "..", resolved beneath the app directory, or a bare
 *     name looked up in the app's bin/ and then the app directory. An
 *     interpreter a script names with "#!" comes from the image;
 *   - the environment may not hold variables that make the loader, libc,
 *     a shell or a language runtime load code (env_check);
 *   - with --app-key, only bundles under those keys are opened, and a
 *     request may not name others (keys.c);
 *   - no process outlives its exec: the agent is a child subreaper, so
 *     every process that leaves an app's process group (setsid) comes to
 *     the agent once its parent dies, and orphaned processes are killed
 *     and reaped (reap_orphans) when an exec starts, when its app exits
 *     and when it ends. Orphans of an exec that still runs are killed
 *     too: an app must not leave processes behind;
 *   - the apps directory is wiped when the agent starts.
 *
 * One EXEC is one thread, so the connection's reader thread keeps
 * reading (CANCEL arrives on it):
 *
 *   1. decrypt the bundle (a `ward encrypt`ed directory in the workspace;
 *      a regular file, opened without blocking so a FIFO cannot stall the
 *      thread) with the key release of keys.c, unpacking into a fresh
 *      private directory apps/<seq> (0700). ward_archive_unpack builds
 *      the tree beside it and renames it into place only once the whole
 *      message authenticated; on any failure nothing of it is left. A
 *      refusal by KMS is ERR "AccessDenied" naming this enclave's PCR0
 *      and whether it is all zeros (debug mode); a bundle that does not
 *      authenticate or open is "DecryptFailed". The decrypted bytes of
 *      all running apps share one budget, the workspace size: beyond it
 *      ERR "ENOSPC".
 *   2. run argv there: its own session and process group, stdin
 *      /dev/null, stdout and stderr to pipes, every other descriptor
 *      closed, signals reset, PR_SET_PDEATHSIG SIGKILL, and exactly the
 *      environment of child_env().
 *   3. stream output as it comes: each read(2) from a pipe becomes one
 *      OUT frame at once; nothing is held back.
 *   4. once the app has exited: SIGKILL its process group and session
 *      and every orphan at once (stragglers; what they wrote before is
 *      still relayed), read the pipes to their end (at most EXEC_DRAIN_MS
 *      more, should a process that left the group hold them), wipe the
 *      directory (every regular file truncated, then the tree removed,
 *      without following links the app made), and only then send EXIT
 *      (the status or the signal, and kr: how long key release took) or
 *      ERR, so a host that got EXIT finds the plaintext gone.
 *
 * CANCEL kills the app's process group (or stops a decryption in
 * progress at its next read) and the EXEC then ends with ERR "Cancelled",
 * never EXIT: a host that asked to cancel learns that it did.
 *
 * At most EXEC_MAX apps run at once in the agent (ERR "Busy" beyond).
 * A finished exec stays in c->execs, marked done, until its thread is
 * joined by the next EXEC or CANCEL on the connection or by
 * agent_exec_conn_close.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/openat2.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "ward/attest.h"
#include "ward/envelope.h"

#define EXEC_MAX 8u
/* After the app exits, how long output from processes that left its
 * process group may keep the pipes open. */
#define EXEC_DRAIN_MS 2000
/* PATH for the app (<app>/bin is prepended); argv[0] itself is looked up
 * in the bundle only (find_command). */
#define EXEC_PATH "/usr/local/bin:/usr/bin:/bin"
/* Directory depth the wipe descends; deeper trees are removed as far as
 * the kernel allows (the directory is private anyway). */
#define WIPE_DEPTH_MAX 128
/* How long reap_orphans keeps killing before it gives up on processes
 * that do not die (stuck in the kernel), and its pause between scans. */
#define REAP_MS 5000
#define REAP_PAUSE_US 2000

struct agent_exec {
	struct agent_exec *next;
	struct agent_conn *c;
	uint64_t id;
	pthread_t thread;
	atomic_bool cancelled;
	/* c->lock */
	pid_t pid; /* > 0 once started */
	bool reaped_soon; /* exited; its group was killed; no more kills */
	bool done; /* the thread has finished; join it */

	/* the request, copied */
	char *app;
	char **argv, **env, **key_ids;
	size_t argc, envc, key_idc;
	struct ward_ec context;
	struct ward_msg_cred cred; /* secret */
	char *region, *endpoint;

	char dir[PATH_MAX]; /* apps/<seq>, once named */
	uint64_t key_ns; /* key release took (EXIT's kr) */
	int app_fd; /* the bundle */
	uint64_t charged; /* unpacked bytes, against unpacked_bytes */
	bool nospc; /* unpacking stopped: the shared budget is spent */
};

/* Apps running in this agent (one agent per process). */
static pthread_mutex_t slots_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned slots_used;
/* Decrypted bytes of the apps unpacked now, all execs together; bounded
 * by the workspace size (a->ws_max). slots_lock. */
static uint64_t unpacked_bytes;

/* The app processes (direct children, session and group leaders) of the
 * execs running now: reap_orphans never kills nor reaps them. A pid is
 * added in the same critical section as its fork and removed in the
 * same one as its waitpid, so it cannot be taken for an orphan. */
static pthread_mutex_t procs_lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t app_pids[EXEC_MAX];

static bool
slot_take(void)
{
	bool ok;

	pthread_mutex_lock(&slots_lock);
	if ((ok = slots_used < EXEC_MAX))
		slots_used++;
	pthread_mutex_unlock(&slots_lock);
	return ok;
}

static void
slot_give(void)
{
	pthread_mutex_lock(&slots_lock);
	slots_used--;
	pthread_mutex_unlock(&slots_lock);
}

/* Budget for unpacked apps: charge n more bytes to x, or false when the
 * apps unpacked now would then hold more than the workspace size;
 * *others: what the other apps hold. */
static bool
budget_charge(struct agent_exec *x, uint64_t n, uint64_t *others)
{
	uint64_t max = x->c->a->ws_max;
	bool ok;

	pthread_mutex_lock(&slots_lock);
	*others = unpacked_bytes - x->charged;
	if ((ok = n <= max && unpacked_bytes <= max - n)) {
		unpacked_bytes += n;
		x->charged += n;
	}
	pthread_mutex_unlock(&slots_lock);
	return ok;
}

/* x's directory is wiped: its bytes are free again. */
static void
budget_release(struct agent_exec *x)
{
	pthread_mutex_lock(&slots_lock);
	unpacked_bytes -= x->charged;
	x->charged = 0;
	pthread_mutex_unlock(&slots_lock);
}

static void wipe_dir(int dfd, int depth);

/*
 * The agent becomes a child subreaper: a process that leaves its app's
 * process group and session (setsid) and whose parent dies comes to the
 * agent, not to PID 1, so reap_orphans finds and kills it. The apps
 * directory is emptied: an agent that died mid-exec (or anything else)
 * may have left plaintext there; --apps-dir is the agent's alone.
 */
int
agent_exec_init(struct agent *a)
{
	int fd;

	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0)
		return ward_errf(WARD_EINTERNAL,
		    "prctl(PR_SET_CHILD_SUBREAPER): %s", strerror(errno));
	/* twice: readdir while removing may skip entries */
	for (int pass = 0; pass < 2; pass++) {
		if ((fd = open(a->apps_path,
		         O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
			return ward_errf(
			    WARD_EIO, "%s: %s", a->apps_path, strerror(errno));
		wipe_dir(fd, 0); /* closes fd */
	}
	agent_keys_warm();
	return 0;
}

/* ---- the request ------------------------------------------------------ */

/* Free a string vector, zeroing each string first: argv and the
 * environment may carry the app's secrets. */
static void
strv_free(char **v, size_t n)
{
	for (size_t i = 0; v != NULL && i < n; i++)
		if (v[i] != NULL) {
			ward_cleanse(v[i], strlen(v[i]));
			free(v[i]);
		}
	free(v);
}

static int
strv_dup(char *const *v, size_t n, char ***out)
{
	*out = NULL;
	if (n == 0)
		return 0;
	if ((*out = calloc(n + 1, sizeof(char *))) == NULL)
		return ward_enomem();
	for (size_t i = 0; i < n; i++)
		if (((*out)[i] = strdup(v[i])) == NULL) {
			strv_free(*out, n);
			*out = NULL;
			return ward_enomem();
		}
	return 0;
}

static void
secret_free(char **s)
{
	if (*s != NULL) {
		ward_cleanse(*s, strlen(*s));
		free(*s);
		*s = NULL;
	}
}

static void
exec_free(struct agent_exec *x)
{
	if (x == NULL)
		return;
	free(x->app);
	strv_free(x->argv, x->argc);
	strv_free(x->env, x->envc);
	strv_free(x->key_ids, x->key_idc);
	ward_ec_free(&x->context);
	secret_free(&x->cred.access_key_id);
	secret_free(&x->cred.secret_access_key);
	secret_free(&x->cred.session_token);
	free(x->region);
	free(x->endpoint);
	if (x->app_fd >= 0)
		close(x->app_fd);
	free(x);
}

static int
copy_str(const char *s, char **out)
{
	*out = NULL;
	if (s != NULL && (*out = strdup(s)) == NULL)
		return ward_enomem();
	return 0;
}

/*
 * Which environment variables the host may give the app. The host is not
 * trusted and whatever the app runs has its plaintext within reach, so
 * the host may not set a variable that makes the dynamic loader, libc, a
 * shell or a language runtime load or run code (or read files) of its
 * choosing, nor one that moves where the app finds programs and files,
 * nor ward's own:
 *
 *   - names must match ^[A-Za-z_][A-Za-z0-9_]*$ (which also keeps out
 *     bash's exported functions, BASH_FUNC_name%%);
 *   - refused, by exact name: PATH HOME IFS ENV BASH_ENV SHELLOPTS
 *     BASHOPTS GCONV_PATH LOCPATH NLSPATH GLIBC_TUNABLES TMPDIR PERLLIB
 *     CLASSPATH JAVA_TOOL_OPTIONS _JAVA_OPTIONS JDK_JAVA_OPTIONS;
 *   - refused, by prefix: LD_ MALLOC_ WARD_ PYTHON PERL5 RUBY NODE_ LUA_
 *     TCL BASH_FUNC_.
 *
 * Names are compared as they are (the loader and libc read them so).
 * A list cannot know every program's variables: an app that honours
 * others of that power must not take them from the host.
 */
static const char *const env_refused[] = {"PATH", "HOME", "IFS", "ENV",
    "BASH_ENV", "SHELLOPTS", "BASHOPTS", "GCONV_PATH", "LOCPATH", "NLSPATH",
    "GLIBC_TUNABLES", "TMPDIR", "PERLLIB", "CLASSPATH", "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS"};
static const char *const env_refused_prefix[] = {"LD_", "MALLOC_", "WARD_",
    "PYTHON", "PERL5", "RUBY", "NODE_", "LUA_", "TCL", "BASH_FUNC_"};

/* Check one NAME=VALUE of the request; -WARD_EUSAGE naming it. */
static int
env_check(const char *entry)
{
	const char *eq = strchr(entry, '=');
	size_t n = eq != NULL ? (size_t)(eq - entry) : 0;

	/* not quoted: without its '=', all of it may be a value */
	if (n == 0)
		return ward_errf(
		    WARD_EUSAGE, "an environment entry is not NAME=VALUE");
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)entry[i];
		bool alpha = (ch >= 'A' && ch <= 'Z') ||
		    (ch >= 'a' && ch <= 'z') || ch == '_';

		if (!alpha && !(i > 0 && ch >= '0' && ch <= '9'))
			return ward_errf(WARD_EUSAGE,
			    "environment variable %s: a name is letters, "
			    "digits and '_', not starting with a digit",
			    ward_quote(entry, n));
	}
	for (size_t i = 0; i < sizeof(env_refused) / sizeof(env_refused[0]);
	     i++)
		if (strlen(env_refused[i]) == n &&
		    memcmp(entry, env_refused[i], n) == 0)
			goto refused;
	for (size_t i = 0;
	     i < sizeof(env_refused_prefix) / sizeof(env_refused_prefix[0]);
	     i++)
		if (strncmp(entry, env_refused_prefix[i],
		        strlen(env_refused_prefix[i])) == 0)
			goto refused;
	return 0;
refused:
	return ward_errf(WARD_EUSAGE,
	    "environment variable %s may not be set for the app: it could "
	    "make the app load or run code that is not the bundle's (or it "
	    "is ward's own)",
	    ward_quote(entry, n));
}

/* Check an EXEC and copy what the thread needs. On a bad request, the
 * ERR code is BadRequest and the message is recorded. */
static int
exec_new(
    struct agent_conn *c, const struct ward_msg *m, struct agent_exec **out)
{
	struct agent_exec *x;
	int r;

	*out = NULL;
	if (m->app == NULL || m->app[0] == '\0')
		return ward_errf(WARD_EUSAGE, "EXEC without an app");
	if (m->argc == 0 || m->argv == NULL || m->argv[0][0] == '\0')
		return ward_errf(WARD_EUSAGE, "EXEC without a command");
	if (!m->has_cred)
		return ward_errf(
		    WARD_EUSAGE, "no AWS credentials came with the request");
	if (m->region == NULL || m->region[0] == '\0')
		return ward_errf(
		    WARD_EUSAGE, "no AWS region came with the request");
	for (size_t i = 0; i < m->envc; i++)
		if ((r = env_check(m->env[i])) != 0)
			return r;
	if ((x = calloc(1, sizeof(*x))) == NULL)
		return ward_enomem();
	x->c = c;
	x->id = m->id;
	x->app_fd = -1;
	atomic_init(&x->cancelled, false);
	for (size_t i = 0; i < m->contextc; i++)
		if ((r = ward_ec_add_arg(&x->context, m->context[i])) != 0) {
			r = ward_err_prefix(r, "EXEC context");
			/* a malformed pair is the request's fault */
			if (r != -WARD_ENOMEM)
				r = -WARD_EUSAGE;
			goto out;
		}
	if ((r = copy_str(m->app, &x->app)) != 0 ||
	    (r = strv_dup(m->argv, m->argc, &x->argv)) != 0)
		goto out;
	x->argc = m->argc;
	if ((r = strv_dup(m->env, m->envc, &x->env)) != 0)
		goto out;
	x->envc = m->envc;
	if ((r = strv_dup(m->key_ids, m->key_idc, &x->key_ids)) != 0)
		goto out;
	x->key_idc = m->key_idc;
	if ((r = copy_str(m->cred.access_key_id, &x->cred.access_key_id)) !=
	        0 ||
	    (r = copy_str(
	         m->cred.secret_access_key, &x->cred.secret_access_key)) != 0 ||
	    (r = copy_str(m->cred.session_token, &x->cred.session_token)) !=
	        0 ||
	    (r = copy_str(m->region, &x->region)) != 0 ||
	    (r = copy_str(m->endpoint, &x->endpoint)) != 0)
		goto out;
	*out = x;
	x = NULL;
out:
	exec_free(x);
	return r;
}

/* ---- decrypting the bundle -------------------------------------------- */

/* ward_read_fn over the bundle that stops once the exec is cancelled. */
static int
bundle_read(void *ctx, uint8_t *buf, size_t cap, size_t *got)
{
	struct agent_exec *x = ctx;
	struct ward_fd_stream s = {.fd = x->app_fd, .name = x->app};

	*got = 0;
	if (atomic_load(&x->cancelled))
		return ward_errf(WARD_EINTR, "cancelled");
	return ward_fd_read(&s, buf, cap, got);
}

/* The decrypted tar stream, as ward_archive_unpack reads it: every byte
 * is charged to the shared budget before it can reach the disk (file
 * contents are never more than the stream that carries them). */
struct unpack_src {
	struct agent_exec *x;
	struct ward_dec *dec;
};

static int
unpack_read(void *ctx, uint8_t *buf, size_t cap, size_t *got)
{
	struct unpack_src *s = ctx;
	uint64_t others;
	int r;

	if ((r = ward_dec_read(s->dec, buf, cap, got)) != 0 || *got == 0)
		return r;
	if (!budget_charge(s->x, *got, &others)) {
		ward_cleanse(buf, *got);
		*got = 0;
		s->x->nospc = true;
		return ward_errf(WARD_ELIMIT,
		    "no room to unpack %s: the apps unpacked in this enclave "
		    "may hold %" PRIu64 " bytes in all (the workspace size); "
		    "the other apps running hold %" PRIu64
		    " and this one would need more than %" PRIu64,
		    ward_quotes(s->x->app), s->x->c->a->ws_max, others,
		    s->x->charged);
	}
	return 0;
}

/* Open the bundle: a regular file. O_NONBLOCK so that a FIFO (or a
 * device) cannot block the thread in open(2); cleared once it is known
 * to be a file. On failure *code may be set. */
static int
open_bundle(struct agent_exec *x, const char **code)
{
	struct stat st;
	int fl, r;

	if ((r = agent_ws_open(x->c->a, x->app,
	         O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW, &x->app_fd)) !=
	    0)
		return r;
	if (fstat(x->app_fd, &st) != 0)
		return ward_errf(
		    WARD_EIO, "%s: %s", ward_quotes(x->app), strerror(errno));
	if (!S_ISREG(st.st_mode)) {
		*code = ward_errno_code(EINVAL);
		return ward_errf(WARD_EUSAGE,
		    "%s is not a regular file: the app must be a bundle "
		    "(ward encrypt DIR)",
		    ward_quotes(x->app));
	}
	if ((fl = fcntl(x->app_fd, F_GETFL)) < 0 ||
	    fcntl(x->app_fd, F_SETFL, fl & ~O_NONBLOCK) != 0)
		return ward_errf(
		    WARD_EIO, "%s: %s", ward_quotes(x->app), strerror(errno));
	return 0;
}

/*
 * Decrypt and unpack the bundle into x->dir. On failure, *code is the ERR
 * code and the message is recorded; nothing of the bundle is left.
 */
static int
unpack_app(struct agent_exec *x, const char **code)
{
	struct agent *a = x->c->a;
	struct agent_watch w;
	struct ward_dec_params dp = {
	    .required_ec = &x->context, .commitment = WARD_COMMIT_REQUIRE};
	struct ward_path_opts po = {.max_bytes = a->ws_max};
	struct agent_keys *keys = NULL;
	struct ward_dec *dec = NULL;
	struct unpack_src src = {.x = x};
	const struct ward_ec_pair *fmt;
	uint64_t seq;
	int r;

	*code = NULL;
	agent_watch_init(&w, a, true);
	pthread_mutex_lock(&a->lock);
	seq = ++a->exec_seq;
	pthread_mutex_unlock(&a->lock);
	if ((size_t)snprintf(x->dir, sizeof(x->dir), "%s/%" PRIu64,
	        a->apps_path, seq) >= sizeof(x->dir)) {
		x->dir[0] = '\0';
		return ward_errf(WARD_ELIMIT, "apps directory path too long");
	}
	if ((r = open_bundle(x, code)) != 0)
		goto out;
	{
		struct ward_msg km = {
		    .type = WARD_MSG_EXEC,
		    .cred = x->cred,
		    .has_cred = true,
		    .region = x->region,
		    .endpoint = x->endpoint,
		    .key_ids = x->key_ids,
		    .key_idc = x->key_idc,
		};

		r = agent_keys_new(a, &km, &keys, &w.inner);
	}
	if (r != 0) {
		if (r == -WARD_EUSAGE)
			*code = WARD_CODE_BAD_REQUEST;
		goto out;
	}
	if ((r = ward_dec_new(&dec, &dp, &w.kr, bundle_read, x)) != 0 ||
	    (r = ward_dec_header(dec)) != 0)
		goto out;
	fmt = ward_dec_context(dec) == NULL
	    ? NULL
	    : ward_ec_get(ward_dec_context(dec), WARD_EC_FORMAT,
	          strlen(WARD_EC_FORMAT));
	if (fmt == NULL || strcmp(fmt->value, WARD_EC_FORMAT_TAR) != 0) {
		r = ward_errf(WARD_EUSAGE,
		    "%s is not an application bundle: encrypt a directory "
		    "(ward encrypt DIR)",
		    ward_quotes(x->app));
		*code = WARD_CODE_BAD_REQUEST;
		goto out;
	}
	x->key_ns = (uint64_t)(w.seconds * 1e9);
	src.dec = dec;
	r = ward_archive_unpack(unpack_read, &src, x->dir, &po);
out:
	/* the KMS client had its own copy; it is gone too (agent_keys_free) */
	secret_free(&x->cred.access_key_id);
	secret_free(&x->cred.secret_access_key);
	secret_free(&x->cred.session_token);
	if (r != 0 && *code == NULL) {
		if (atomic_load(&x->cancelled)) {
			*code = WARD_CODE_CANCELLED;
			r = ward_errf(WARD_EINTR, "cancelled");
		} else if (x->nospc && !w.foreign)
			*code = ward_errno_code(ENOSPC);
		else
			*code = agent_watch_code(&w, &r);
	}
	ward_dec_free(dec);
	agent_keys_free(keys);
	if (x->app_fd >= 0) {
		close(x->app_fd);
		x->app_fd = -1;
	}
	return r;
}

/* ---- wiping ----------------------------------------------------------- */

/*
 * Empty directory dfd: truncate every regular file that has no other
 * link (a hard link the app made to a file elsewhere must not zero that
 * file), remove every entry. Links are never followed: entries are
 * reached with *at() calls relative to their directory, O_NOFOLLOW.
 */
static void
wipe_dir(int dfd, int depth)
{
	DIR *d;
	struct dirent *e;

	if ((d = fdopendir(dfd)) == NULL) {
		close(dfd);
		return;
	}
	while ((e = readdir(d)) != NULL) {
		const char *name = e->d_name;
		struct stat st;

		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			continue;
		if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) != 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			int sub;

			if (depth < WIPE_DEPTH_MAX) {
				/* the app may have made it unwritable */
				fchmodat(
				    dirfd(d), name, 0700, AT_SYMLINK_NOFOLLOW);
				sub = openat(dirfd(d), name,
				    O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
				        O_CLOEXEC);
				if (sub >= 0)
					wipe_dir(sub, depth + 1);
			}
			unlinkat(dirfd(d), name, AT_REMOVEDIR);
			continue;
		}
		if (S_ISREG(st.st_mode) && st.st_nlink == 1 && st.st_size > 0) {
			int fd;

			fchmodat(dirfd(d), name, 0600, AT_SYMLINK_NOFOLLOW);
			fd = openat(dirfd(d), name,
			    O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
			if (fd >= 0) {
				struct stat fst;

				if (fstat(fd, &fst) == 0 &&
				    S_ISREG(fst.st_mode))
					(void)ftruncate(fd, 0);
				close(fd);
			}
		}
		unlinkat(dirfd(d), name, 0);
	}
	closedir(d);
}

static void
wipe_app(const char *dir)
{
	int fd;

	if (dir[0] == '\0')
		return;
	fchmodat(AT_FDCWD, dir, 0700, AT_SYMLINK_NOFOLLOW);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0)
		wipe_dir(fd, 0);
	if (rmdir(dir) != 0 && errno != ENOENT) {
		/* readdir while removing may skip entries: once more */
		fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0)
			wipe_dir(fd, 0);
		if (rmdir(dir) != 0 && errno != ENOENT)
			ward_warn("agent: cannot remove %s: %s", dir,
			    strerror(errno));
	}
}

/* ---- orphans ---------------------------------------------------------- */

/* Is pid the app of an exec running now? procs_lock held. */
static bool
is_app_pid(pid_t pid)
{
	for (size_t i = 0; i < EXEC_MAX; i++)
		if (app_pids[i] == pid)
			return true;
	return false;
}

/* Record (old 0, new pid) or forget (old pid, new 0) an app's pid.
 * procs_lock held. */
static void
set_app_pid(pid_t old, pid_t new)
{
	for (size_t i = 0; i < EXEC_MAX; i++)
		if (app_pids[i] == old) {
			app_pids[i] = new;
			return;
		}
}

/* A number of /proc/<pid>/stat: *p at a space, then digits (or '-'). */
static bool
stat_field(const char **p, long *v)
{
	char *end;

	if (**p != ' ')
		return false;
	errno = 0;
	*v = strtol(*p + 1, &end, 10);
	if (errno != 0 || end == *p + 1)
		return false;
	*p = end;
	return true;
}

/* state, ppid, process group and session of pid from /proc/<pid>/stat;
 * false when it is gone or unreadable. The command name (field 2) may
 * hold spaces and parentheses: the fields after it are read from the
 * last ')'. */
static bool
proc_stat(int proc_fd, const char *pid, char *state, pid_t *ppid, pid_t *pgrp,
    pid_t *sid)
{
	char path[64], buf[1024];
	const char *p;
	long v[3];
	ssize_t n;
	int fd;

	if ((size_t)snprintf(path, sizeof(path), "%s/stat", pid) >=
	    sizeof(path))
		return false;
	if ((fd = openat(proc_fd, path, O_RDONLY | O_CLOEXEC)) < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	/* "pid (comm) S ppid pgrp session ..." */
	if ((p = strrchr(buf, ')')) == NULL || p[1] != ' ' || p[2] == '\0')
		return false;
	*state = p[2];
	p += 3;
	for (int i = 0; i < 3; i++)
		if (!stat_field(&p, &v[i]))
			return false;
	*ppid = (pid_t)v[0];
	*pgrp = (pid_t)v[1];
	*sid = (pid_t)v[2];
	return true;
}

/*
 * Kill (SIGKILL) and reap every orphan: every child of the agent that is
 * not the app of a running exec. They are processes an app left behind
 * (setsid escapes kill(-pgid)); as the agent is a child subreaper, they
 * come to it as soon as their parent dies. With sid > 0 (an exec's app,
 * exited but not yet reaped, so its pid still names its group and
 * session), every process in that session or process group is killed
 * too. Repeats until none is left, since the children of a killed
 * process come to the agent in turn; gives up after REAP_MS (processes
 * stuck in the kernel). Orphans of an exec that still runs are killed as
 * well: no app may leave processes behind.
 */
static void
reap_orphans(pid_t sid)
{
	pid_t self = getpid();
	double until = ward_now() + REAP_MS / 1000.0;

	pthread_mutex_lock(&procs_lock);
	for (;;) {
		bool left = false;
		struct dirent *e;
		DIR *d;

		if ((d = opendir("/proc")) == NULL) {
			ward_warn("agent: /proc: %s: orphaned processes "
			          "cannot be found",
			    strerror(errno));
			break;
		}
		while ((e = readdir(d)) != NULL) {
			pid_t pid, ppid, pgrp, psid;
			char *end, state;
			long v;

			errno = 0;
			v = strtol(e->d_name, &end, 10);
			if (errno != 0 || *end != '\0' || v <= 0 ||
			    end == e->d_name)
				continue;
			pid = (pid_t)v;
			if (pid == self || is_app_pid(pid) ||
			    !proc_stat(dirfd(d), e->d_name, &state, &ppid,
			        &pgrp, &psid))
				continue;
			if (ppid == self) {
				kill(pid, SIGKILL);
				if (waitpid(pid, NULL, WNOHANG) != pid)
					left = true;
			} else if (sid > 0 && (psid == sid || pgrp == sid)) {
				/* its parent dies too; a zombie then comes
				 * here to be reaped */
				if (state != 'Z')
					kill(pid, SIGKILL);
				left = true;
			}
		}
		closedir(d);
		if (!left)
			break;
		if (ward_now() > until) {
			ward_warn("agent: processes an app left do not die "
			          "(after %d ms)",
			    REAP_MS);
			break;
		}
		usleep(REAP_PAUSE_US);
	}
	pthread_mutex_unlock(&procs_lock);
}

/* ---- running the app -------------------------------------------------- */

static char *
concat3(const char *a, const char *b, const char *c)
{
	char *s;

	if (asprintf(&s, "%s%s%s", a, b, c) < 0)
		return NULL;
	return s;
}

/*
 * The environment, and nothing of the agent's: PATH=<app>/bin:EXEC_PATH,
 * HOME=<app>, WARD_APP=<app>, WARD_WORKSPACE=<workspace>, then the
 * request's entries (env_check let none of these names through), a
 * later one replacing an earlier one of the same name.
 */
static int
child_env(struct agent_exec *x, char ***out, size_t *n)
{
	struct agent *a = x->c->a;
	char **v;
	size_t k = 0;

	*out = NULL;
	*n = 0;
	if ((v = calloc(4 + x->envc + 1, sizeof(char *))) == NULL)
		return ward_enomem();
	v[k++] = concat3("PATH=", x->dir, "/bin:" EXEC_PATH);
	v[k++] = concat3("HOME=", x->dir, "");
	v[k++] = concat3("WARD_APP=", x->dir, "");
	v[k++] = concat3("WARD_WORKSPACE=", a->ws_path, "");
	for (size_t i = 0; i < x->envc; i++) {
		size_t nl = (size_t)(strchr(x->env[i], '=') - x->env[i]) + 1;
		size_t j;

		for (j = 0; j < k; j++)
			if (v[j] != NULL && strncmp(v[j], x->env[i], nl) == 0)
				break;
		if (j < k && v[j] != NULL) {
			ward_cleanse(v[j], strlen(v[j]));
			free(v[j]);
		}
		v[j < k ? j : k++] = strdup(x->env[i]);
	}
	for (size_t i = 0; i < k; i++)
		if (v[i] == NULL) {
			strv_free(v, k);
			return ward_enomem();
		}
	*out = v;
	*n = k;
	return 0;
}

/* Look rel up beneath the app directory dfd: 0 and its attributes, or an
 * errno. RESOLVE_BENEATH: neither ".." nor a symbolic link may leave the
 * directory (EXDEV); no /proc magic links. */
static int
bundle_stat(int dfd, const char *rel, struct stat *st)
{
	struct open_how how = {
	    .flags = O_PATH | O_CLOEXEC,
	    .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
	};
	int fd, e = 0, tries = 0;

	memset(st, 0, sizeof(*st));
	do
		fd = (int)syscall(SYS_openat2, dfd, rel, &how, sizeof(how));
	while (fd < 0 && (errno == EAGAIN || errno == EINTR) && ++tries < 32);
	if (fd < 0)
		return errno;
	if (fstat(fd, st) != 0)
		e = errno;
	close(fd);
	return e;
}

/*
 * The file to execve for argv[0], which must be a program of the
 * application bundle: the host chooses argv, and a program of its own
 * (one it uploaded to the workspace, say) would run with the app's
 * plaintext within reach. So argv[0] is
 *   - a relative path, without any ".." component, of a file beneath the
 *     app directory (symbolic links the bundle holds may be followed as
 *     long as they stay beneath it), or
 *   - a bare name, looked up in the app's bin/ and then in the app
 *     directory itself (not in the image's PATH);
 * and that file is a regular file with an execute bit. *path is its
 * absolute path (the directory is private to the agent and its apps;
 * exec by path, not by descriptor, so that scripts work: the kernel runs
 * their "#!" interpreter, which comes from the measured image). Refused
 * with BadRequest; a name that is not in the bundle is ENOENT.
 */
static int
find_command(struct agent_exec *x, char **path, const char **code)
{
	static const char must[] =
	    "the command must be a program of the application bundle: a "
	    "relative path beneath the app directory or a name in its bin/";
	const char *cmd = x->argv[0];
	const char *cand[2];
	size_t nc = 0;
	struct stat st;
	int dfd = -1, e = ENOENT, r = 0;

	*path = NULL;
	if (cmd[0] == '/') {
		*code = WARD_CODE_BAD_REQUEST;
		return ward_errf(WARD_EUSAGE, "%s is an absolute path: %s",
		    ward_quotes(cmd), must);
	}
	for (const char *p = cmd; *p != '\0';) {
		size_t n = strcspn(p, "/");

		if (n == 2 && p[0] == '.' && p[1] == '.') {
			*code = WARD_CODE_BAD_REQUEST;
			return ward_errf(WARD_EUSAGE,
			    "%s has a \"..\" component: %s", ward_quotes(cmd),
			    must);
		}
		p += n;
		p += strspn(p, "/");
	}
	if (strchr(cmd, '/') != NULL) {
		cand[nc++] = cmd;
	} else {
		char *bin;

		if ((bin = concat3("bin/", cmd, "")) == NULL)
			return ward_enomem();
		*path = bin; /* freed below */
		cand[nc++] = bin;
		cand[nc++] = cmd;
	}
	if ((dfd = open(
	         x->dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		r = ward_errf(WARD_EIO, "%s: %s", x->dir, strerror(errno));
		goto out;
	}
	for (size_t i = 0; i < nc; i++) {
		int f = bundle_stat(dfd, cand[i], &st);

		if (f == 0 && S_ISREG(st.st_mode) &&
		    (st.st_mode & (S_IXUSR | S_IXGRP | S_IXOTH)) != 0) {
			char *full = concat3(x->dir, "/", cand[i]);

			if (full == NULL) {
				r = ward_enomem();
				goto out;
			}
			free(*path);
			*path = full;
			goto out;
		}
		/* the first failure that is not "there is none" tells */
		if (e == ENOENT)
			e = f != 0 ? f : S_ISREG(st.st_mode) ? EACCES : EISDIR;
	}
	free(*path);
	*path = NULL;
	if (e == ENOENT || e == ENOTDIR) {
		*code = ward_errno_code(ENOENT);
		r = ward_errf(WARD_EUSAGE,
		    "%s: no such program in the application bundle (%s)",
		    ward_quotes(cmd), must);
	} else {
		*code = WARD_CODE_BAD_REQUEST;
		r = ward_errf(WARD_EUSAGE, "%s: %s: %s", ward_quotes(cmd),
		    e == EXDEV        ? "leaves the app directory"
		        : e == EACCES ? "not an executable file"
		        : e == EISDIR ? "not a regular file"
		                      : strerror(e),
		    must);
	}
out:
	if (dfd >= 0)
		close(dfd);
	return r;
}

/* Between fork and exec: async-signal-safe calls only. Reports errno on
 * status_fd (close-on-exec: nothing arrives when execve succeeds). */
static void __attribute__((noreturn))
child(const char *dir, const char *path, char **argv, char **envp, int null_fd,
    int out_fd, int err_fd, int status_fd)
{
	struct sigaction sa;
	sigset_t all;
	int e;

	if (setsid() < 0 || prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
		goto fail;
	if (dup2(null_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0)
		goto fail;
	if (dup2(status_fd, 3) < 0 || fcntl(3, F_SETFD, FD_CLOEXEC) != 0)
		goto fail;
	ward_close_fds_except(4, NULL, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (int s = 1; s < NSIG; s++)
		(void)sigaction(s, &sa, NULL);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	if (chdir(dir) != 0)
		goto fail;
	execve(path, argv, envp);
fail:
	e = errno;
	(void)!write(3, &e, sizeof(e));
	_exit(127);
}

/* Kill the app's process group (and the app itself, should CANCEL come
 * before its setsid). c->lock held. */
static void
kill_app(struct agent_exec *x)
{
	if (x->pid > 0 && !x->reaped_soon) {
		kill(-x->pid, SIGKILL);
		kill(x->pid, SIGKILL);
	}
}

/* The child has exited (a zombie, not yet reaped, so its pid still names
 * the group and the session): kill what is left of them, once, and every
 * orphan. */
static void
app_exited(struct agent_exec *x)
{
	pthread_mutex_lock(&x->c->lock);
	kill_app(x);
	x->reaped_soon = true;
	pthread_mutex_unlock(&x->c->lock);
	reap_orphans(x->pid);
}

static int
send_out(struct agent_exec *x, uint32_t fd, const uint8_t *p, size_t n)
{
	struct ward_msg m = {.type = WARD_MSG_OUT,
	    .id = x->id,
	    .fd = fd,
	    .data = p,
	    .data_len = n};

	return agent_send(x->c, &m);
}

/* Has the child exited? Without a pidfd: a non-blocking peek. */
static bool
child_gone(pid_t pid, int pidfd, short revents)
{
	siginfo_t si;

	if (pidfd >= 0)
		return (revents & POLLIN) != 0;
	memset(&si, 0, sizeof(si));
	return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) ==
	    0 &&
	    si.si_pid == pid;
}

/*
 * Relay the pipes until both end (or, once the app has exited, until
 * EXEC_DRAIN_MS pass without them ending), then reap the app.
 */
static int
relay(struct agent_exec *x, int out_fd, int err_fd, int *status)
{
	struct pollfd pf[3];
	uint8_t *buf;
	pid_t pid = x->pid;
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	bool gone = false, peer_gone = false;
	double drain_until = 0;
	int open_pipes = 2, r = 0;

	if ((buf = malloc(WARD_AGENT_CHUNK)) == NULL) {
		r = ward_enomem();
		pthread_mutex_lock(&x->c->lock);
		kill_app(x);
		pthread_mutex_unlock(&x->c->lock);
		goto reap;
	}
	pf[0] = (struct pollfd){.fd = out_fd, .events = POLLIN};
	pf[1] = (struct pollfd){.fd = err_fd, .events = POLLIN};
	pf[2] = (struct pollfd){.fd = pidfd, .events = POLLIN};
	while (open_pipes > 0) {
		int timeout = pidfd >= 0 ? -1 : 100;

		if (gone) {
			double left = drain_until - ward_now();

			if (left <= 0)
				break; /* something left the group holds them */
			timeout = (int)(left * 1000) + 1;
			pf[2].fd = -1;
		}
		if (poll(pf, 3, timeout) < 0) {
			if (errno == EINTR)
				continue;
			r = ward_errf(WARD_EIO, "poll: %s", strerror(errno));
			break;
		}
		for (int i = 0; i < 2; i++) {
			ssize_t got;

			if (pf[i].fd < 0 ||
			    (pf[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0)
				continue;
			got = read(pf[i].fd, buf, WARD_AGENT_CHUNK);
			if (got < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (got <= 0) {
				close(pf[i].fd);
				pf[i].fd = -1;
				open_pipes--;
				continue;
			}
			if (!peer_gone &&
			    send_out(x, (uint32_t)i + 1, buf, (size_t)got) !=
			        0) {
				/* nobody to run for: stop the app */
				peer_gone = true;
				pthread_mutex_lock(&x->c->lock);
				kill_app(x);
				pthread_mutex_unlock(&x->c->lock);
			}
		}
		if (!gone && child_gone(pid, pidfd, pf[2].revents)) {
			gone = true;
			app_exited(x);
			drain_until = ward_now() + EXEC_DRAIN_MS / 1000.0;
		}
	}
reap:
	for (int i = 0; i < 2; i++)
		if (buf != NULL && pf[i].fd >= 0)
			close(pf[i].fd);
	if (buf == NULL) {
		close(out_fd);
		close(err_fd);
	}
	if (!gone) {
		siginfo_t si;

		/* both pipes ended (or failed) while it runs: wait for it,
		 * still killable by CANCEL */
		while (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) != 0 &&
		    errno == EINTR)
			;
		app_exited(x);
	}
	/* it has exited: this does not block */
	pthread_mutex_lock(&procs_lock);
	while (waitpid(pid, status, 0) < 0 && errno == EINTR)
		;
	set_app_pid(pid, 0);
	pthread_mutex_unlock(&procs_lock);
	if (pidfd >= 0)
		close(pidfd);
	free(buf);
	return r;
}

/* Move fd above the standard descriptors (and fd 3, the child's status
 * pipe), so the child's dup2 calls cannot clobber one another. */
static int
high_fd(int *fd)
{
	int h;

	if (*fd > 3)
		return 0;
	if ((h = fcntl(*fd, F_DUPFD_CLOEXEC, 10)) < 0)
		return -1;
	close(*fd);
	*fd = h;
	return 0;
}

/* Start the app and relay its output; *status from waitpid. */
static int
run_app(struct agent_exec *x, int *status, const char **code)
{
	struct agent_conn *c = x->c;
	char **envp = NULL, *path = NULL;
	size_t envc = 0;
	int out[2] = {-1, -1}, err[2] = {-1, -1}, st[2] = {-1, -1};
	int null_fd = -1, e = 0, r;
	ssize_t got;
	pid_t pid;

	if ((r = find_command(x, &path, code)) != 0 ||
	    (r = child_env(x, &envp, &envc)) != 0)
		goto out;
	if ((null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0 ||
	    pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0 ||
	    pipe2(st, O_CLOEXEC) != 0 || high_fd(&null_fd) != 0 ||
	    high_fd(&out[1]) != 0 || high_fd(&err[1]) != 0 ||
	    high_fd(&st[1]) != 0) {
		r = ward_errf(
		    WARD_EIO, "starting the app: %s", strerror(errno));
		goto out;
	}
	/* CANCEL may come between fork and the pid being known: it then
	 * sets cancelled, which is checked under the same lock below. */
	pthread_mutex_lock(&c->lock);
	if (atomic_load(&x->cancelled)) {
		pthread_mutex_unlock(&c->lock);
		*code = WARD_CODE_CANCELLED;
		r = ward_errf(WARD_EINTR, "cancelled");
		goto out;
	}
	/* and reap_orphans must know it for an app from its first moment */
	pthread_mutex_lock(&procs_lock);
	pid = fork();
	if (pid == 0)
		child(x->dir, path, x->argv, envp, null_fd, out[1], err[1],
		    st[1]);
	if (pid > 0) {
		x->pid = pid;
		set_app_pid(0, pid);
	}
	pthread_mutex_unlock(&procs_lock);
	pthread_mutex_unlock(&c->lock);
	if (pid < 0) {
		r = ward_errf(WARD_EIO, "fork: %s", strerror(errno));
		goto out;
	}
	close(out[1]);
	close(err[1]);
	close(st[1]);
	out[1] = err[1] = st[1] = -1;
	/* the exec's errno, or nothing once it succeeded */
	while ((got = read(st[0], &e, sizeof(e))) < 0 && errno == EINTR)
		;
	if (got == (ssize_t)sizeof(e)) {
		/* whatever it printed before failing, then the cause */
		(void)relay(x, out[0], err[0], status);
		out[0] = err[0] = -1;
		*code = ward_errno_code(e);
		r = ward_errf(WARD_EIO, "cannot run %s: %s",
		    ward_quotes(x->argv[0]), strerror(e));
		goto out;
	}
	r = relay(x, out[0], err[0], status);
	out[0] = err[0] = -1;
out:
	for (int i = 0; i < 2; i++) {
		if (out[i] >= 0)
			close(out[i]);
		if (err[i] >= 0)
			close(err[i]);
		if (st[i] >= 0)
			close(st[i]);
	}
	if (null_fd >= 0)
		close(null_fd);
	strv_free(envp, envc);
	free(path);
	return r;
}

/* ---- the exec thread -------------------------------------------------- */

static void *
exec_main(void *arg)
{
	struct agent_exec *x = arg;
	struct agent_conn *c = x->c;
	const char *code = NULL;
	int status = 0, r;

	/* nothing an earlier app left may see this one's plaintext */
	reap_orphans(0);
	if ((r = unpack_app(x, &code)) == 0)
		r = run_app(x, &status, &code);
	if (r == 0 && atomic_load(&x->cancelled)) {
		code = WARD_CODE_CANCELLED;
		r = ward_errf(WARD_EINTR, "cancelled");
	}
	/* stragglers, then the plaintext */
	pthread_mutex_lock(&c->lock);
	kill_app(x);
	pthread_mutex_unlock(&c->lock);
	reap_orphans(0);
	wipe_app(x->dir);
	budget_release(x);
	slot_give();

	if (r != 0) {
		if (code == NULL)
			code = ward_err_code(r);
		agent_send_err(c, x->id, code, "%s", ward_errmsg());
	} else {
		struct ward_msg m = {.type = WARD_MSG_EXIT,
		    .id = x->id,
		    .key_ns = x->key_ns,
		    .has_key_ns = true};

		if (WIFSIGNALED(status)) {
			m.has_signal = true;
			m.signal = (uint32_t)WTERMSIG(status);
		} else {
			m.has_status = true;
			m.status = WEXITSTATUS(status);
		}
		agent_send(c, &m);
	}
	pthread_mutex_lock(&c->lock);
	x->done = true;
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* Join and free c's finished execs. */
static void
reap_done(struct agent_conn *c)
{
	struct agent_exec *done = NULL, **pp, *x;

	pthread_mutex_lock(&c->lock);
	for (pp = &c->execs; (x = *pp) != NULL;) {
		if (x->done) {
			*pp = x->next;
			x->next = done;
			done = x;
		} else
			pp = &x->next;
	}
	pthread_mutex_unlock(&c->lock);
	while ((x = done) != NULL) {
		done = x->next;
		pthread_join(x->thread, NULL);
		exec_free(x);
	}
}

static int
handle_exec(struct agent_conn *c, struct ward_msg *m)
{
	struct agent_exec *x = NULL, *y;
	bool dup = false;
	int r;

	if ((r = exec_new(c, m, &x)) != 0) {
		if (r == -WARD_ENOMEM)
			return agent_send_ward_err(c, m->id, r) == 0 ? 0 : r;
		return agent_send_err(c, m->id, WARD_CODE_BAD_REQUEST, "%s",
		           ward_errmsg()) == 0
		    ? 0
		    : -WARD_EIO;
	}
	pthread_mutex_lock(&c->lock);
	for (y = c->execs; y != NULL; y = y->next)
		if (y->id == x->id && !y->done)
			dup = true;
	pthread_mutex_unlock(&c->lock);
	if (dup) {
		r = agent_send_err(c, m->id, WARD_CODE_BAD_REQUEST,
		    "request id %" PRIu64 " is already running", m->id);
		goto fail;
	}
	if (!slot_take()) {
		r = agent_send_err(c, m->id, WARD_CODE_BUSY,
		    "%u apps are running in this enclave; try again when one "
		    "ends",
		    EXEC_MAX);
		goto fail;
	}
	pthread_mutex_lock(&c->lock);
	if ((r = pthread_create(&x->thread, NULL, exec_main, x)) != 0) {
		pthread_mutex_unlock(&c->lock);
		slot_give();
		r = agent_send_err(c, m->id, WARD_CODE_INTERNAL,
		    "cannot start a thread: %s", strerror(r));
		goto fail;
	}
	x->next = c->execs;
	c->execs = x;
	pthread_mutex_unlock(&c->lock);
	return 0;
fail:
	exec_free(x);
	return r == 0 ? 0 : -WARD_EIO;
}

static int
handle_cancel(struct agent_conn *c, struct ward_msg *m)
{
	struct agent_exec *x;
	bool found = false;

	pthread_mutex_lock(&c->lock);
	for (x = c->execs; x != NULL; x = x->next)
		if (x->id == m->target && !x->done) {
			atomic_store(&x->cancelled, true);
			kill_app(x);
			found = true;
		}
	pthread_mutex_unlock(&c->lock);
	if (!found)
		return agent_send_err(c, m->id, ward_errno_code(ESRCH),
		           "no app is running as request %" PRIu64,
		           m->target) == 0
		    ? 0
		    : -WARD_EIO;
	return agent_send_ok(c, m->id) == 0 ? 0 : -WARD_EIO;
}

int
agent_exec_handle(struct agent_conn *c, struct ward_msg *m)
{
	reap_done(c);
	switch (m->type) {
	case WARD_MSG_EXEC:
		return handle_exec(c, m);
	case WARD_MSG_CANCEL:
		return handle_cancel(c, m);
	default:
		return agent_send_err(c, m->id, WARD_CODE_UNSUPPORTED,
		           "the exec handler got a %s message",
		           ward_msg_type_name(m->type) != NULL
		               ? ward_msg_type_name(m->type)
		               : "unknown") == 0
		    ? 0
		    : -WARD_EIO;
	}
}

void
agent_exec_conn_close(struct agent_conn *c)
{
	struct agent_exec *x, *all;

	pthread_mutex_lock(&c->lock);
	for (x = c->execs; x != NULL; x = x->next) {
		atomic_store(&x->cancelled, true);
		kill_app(x);
	}
	all = c->execs;
	c->execs = NULL;
	pthread_mutex_unlock(&c->lock);
	/* each thread wipes its directory before it ends */
	while ((x = all) != NULL) {
		all = x->next;
		pthread_join(x->thread, NULL);
		exec_free(x);
	}
}
