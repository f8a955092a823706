/*
 * The run directory and the enclaves' records. Each enclave has
 * <run>/enclaves/<ID>/ (0711: the enclave's root, an unprivileged uid on
 * the host, must reach nsm.sock to bind-mount it; only root lists it) with:
 *
 *   lock        flock'd by its monitor for the monitor's whole life: a
 *               record whose lock can be taken belongs to a dead monitor
 *   state.json  what describe-enclaves prints, and what cleanup needs
 *   nsm.sock    the monitor's NSM, bind-mounted on the enclave's /dev/nsm
 *   console.sock  debug mode only: ward console connects here
 *   monitor.log the monitor's own messages
 *
 * <run>/lock serialises starts (allocation) and the reaping of dead
 * monitors' leftovers.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "enclave/internal.h"
#include "ward/transport.h"

/* a + mid + b, or an error when it does not fit */
static int
fmt(char *out, size_t cap, const char *a, const char *mid, const char *b)
{
	int n = snprintf(out, cap, "%s%s%s", a, mid, b);

	if (n < 0 || (size_t)n >= cap)
		return ward_errf(WARD_ELIMIT,
		    "run directory path too long: %s (set WARD_RUN_DIR to a "
		    "shorter one)",
		    ward_quotes(a));
	return 0;
}

int
enc_paths(const char *id, uint32_t cid, struct enc_paths *p)
{
	char c[16];
	int r;

	memset(p, 0, sizeof(*p));
	if ((r = ward_run_dir(p->run, sizeof(p->run))) != 0)
		return r;
	snprintf(c, sizeof(c), "%u", cid);
	if ((r = fmt(p->dir, sizeof(p->dir), p->run, "/enclaves/", id)) ||
	    (r = fmt(p->lock, sizeof(p->lock), p->dir, "/", "lock")) ||
	    (r = fmt(p->state, sizeof(p->state), p->dir, "/", "state.json")) ||
	    (r = fmt(p->nsm, sizeof(p->nsm), p->dir, "/", "nsm.sock")) ||
	    (r = fmt(p->console, sizeof(p->console), p->dir, "/",
	         "console.sock")) ||
	    (r = fmt(p->log, sizeof(p->log), p->dir, "/", "monitor.log")) ||
	    (r = fmt(p->root, sizeof(p->root), p->dir, "/", "root")) ||
	    (r = fmt(p->vsock_parent, sizeof(p->vsock_parent), p->run, "/",
	         "vsock/3")) ||
	    (r = fmt(p->vsock_own, sizeof(p->vsock_own), p->run, "/vsock/", c)))
		return r;
	/* the console socket path must fit sun_path */
	if (strlen(p->console) >= 108 || strlen(p->nsm) >= 108)
		return ward_errf(WARD_ELIMIT,
		    "run directory %s is too long for Unix socket paths (set "
		    "WARD_RUN_DIR to a shorter one)",
		    ward_quotes(p->run));
	return 0;
}

static int
mkdir_mode(const char *path, mode_t mode)
{
	struct stat st;

	if (mkdir(path, mode) == 0)
		return chmod(path, mode) == 0
		    ? 0
		    : ward_errf(
		          WARD_EIO, "chmod %s: %s", path, strerror(errno));
	if (errno != EEXIST)
		return ward_errf(
		    WARD_EIO, "creating %s: %s", path, strerror(errno));
	if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode))
		return ward_errf(WARD_EIO,
		    "%s exists and is not a directory: remove it", path);
	/* enclaves run as other uids and must pass through (mktemp -d
	 * makes 0700) */
	if ((st.st_mode & 07777) != mode && st.st_uid == geteuid() &&
	    chmod(path, mode) != 0)
		return ward_errf(
		    WARD_EIO, "chmod %s: %s", path, strerror(errno));
	return 0;
}

/*
 * As root, every directory from / down to the run directory must be
 * root's and writable by nobody else (a sticky one like /tmp may be, above
 * the run directory): the monitor mounts, chmods and removes by path
 * there, and trusts what the records say.
 */
int
enc_run_check(const char *run)
{
	char p[256];
	size_t n = strlen(run);
	struct stat st;

	if (geteuid() != 0)
		return 0;
	if (n == 0 || n >= sizeof(p) || run[0] != '/')
		return ward_errf(WARD_EUNSAFE,
		    "run directory %s: must be an absolute path",
		    ward_quotes(run));
	for (size_t i = 1; i <= n; i++) {
		bool last = i == n;

		if (!last && run[i] != '/')
			continue;
		memcpy(p, run, i);
		p[i] = '\0';
		if (lstat(p, &st) != 0)
			return ward_errf(
			    WARD_EIO, "%s: %s", p, strerror(errno));
		if (!S_ISDIR(st.st_mode) || st.st_uid != 0 ||
		    ((st.st_mode & 022) != 0 &&
		        (last || (st.st_mode & S_ISVTX) == 0)))
			return ward_errf(WARD_EUNSAFE,
			    "%s: the run directory and every directory above it "
			    "must be root's and writable only by root (it is "
			    "%s, owner %u, mode %04o)",
			    p,
			    S_ISDIR(st.st_mode) ? "a directory"
			                        : "not a directory",
			    (unsigned)st.st_uid,
			    (unsigned)(st.st_mode & 07777));
	}
	return 0;
}

int
enc_run_dirs(const char *run)
{
	char p[320];
	int r;

	if ((r = mkdir_mode(run, 0755)) != 0)
		return r;
	if ((r = fmt(p, sizeof(p), run, "/", "enclaves")) != 0 ||
	    (r = mkdir_mode(p, 0711)) != 0)
		return r;
	if ((r = fmt(p, sizeof(p), run, "/", "vsock")) != 0 ||
	    (r = mkdir_mode(p, 0755)) != 0)
		return r;
	if ((r = fmt(p, sizeof(p), run, "/", "vsock/3")) != 0 ||
	    (r = mkdir_mode(p, 0755)) != 0)
		return r;
	return enc_run_check(run);
}

/*
 * flock(2) path: exclusive; timeout_ms 0 = try once, < 0 = wait forever,
 * else retry every 10 ms for that long (flock has no timeout, and the
 * library installs no signal handlers). *got says whether it was taken;
 * *fd is open either way.
 */
int
enc_lock(const char *path, int timeout_ms, int *fd, bool *got)
{
	struct timespec ts = {0, 10 * 1000 * 1000};
	int f, rc, waited = 0;

	*got = false;
	if ((f = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600)) <
	    0)
		return ward_errf(WARD_EIO, "%s: %s", path, strerror(errno));
	for (;;) {
		rc = flock(f, timeout_ms < 0 ? LOCK_EX : LOCK_EX | LOCK_NB);
		if (rc == 0 || (errno != EWOULDBLOCK && errno != EINTR) ||
		    (timeout_ms >= 0 && waited >= timeout_ms))
			break;
		if (errno == EWOULDBLOCK) {
			nanosleep(&ts, NULL);
			waited += 10;
		}
	}
	if (rc != 0 && errno != EWOULDBLOCK && errno != EINTR) {
		int e = errno;

		close(f);
		return ward_errf(WARD_EIO, "locking %s: %s", path, strerror(e));
	}
	*got = rc == 0;
	*fd = f;
	return 0;
}

/* ---- records ------------------------------------------------------------ */

static void
hex48(const uint8_t v[WARD_PCR_LEN], char out[2 * WARD_PCR_LEN + 1])
{
	ward_hex_encode(v, WARD_PCR_LEN, out);
}

static json_t *
cpu_array(const cpu_set_t *set)
{
	json_t *a = json_array();

	for (int i = 0; a != NULL && i < CPU_SETSIZE; i++)
		if (CPU_ISSET(i, set))
			json_array_append_new(a, json_integer(i));
	return a;
}

json_t *
enc_record_json(const struct enc_record *r, bool describe)
{
	char h[2 * WARD_PCR_LEN + 1];
	json_t *o, *m;

	o = json_object();
	if (o == NULL)
		return NULL;
	json_object_set_new(o, "EnclaveName", json_string(r->name));
	json_object_set_new(o, "EnclaveID", json_string(r->id));
	json_object_set_new(o, "ProcessID", json_integer(r->monitor));
	json_object_set_new(o, "EnclaveCID", json_integer(r->cid));
	json_object_set_new(
	    o, "NumberOfCPUs", json_integer(CPU_COUNT(&r->cpus)));
	json_object_set_new(o, "CPUIDs", cpu_array(&r->cpus));
	json_object_set_new(
	    o, "MemoryMiB", json_integer((json_int_t)r->memory_mib));
	if (!describe)
		return o;
	json_object_set_new(o, "State", json_string(r->state));
	json_object_set_new(
	    o, "Flags", json_string(r->debug ? "DEBUG_MODE" : "NONE"));
	m = json_object();
	json_object_set_new(m, "HashAlgorithm", json_string("Sha384 { ... }"));
	hex48(r->pcr0, h);
	json_object_set_new(m, "PCR0", json_string(h));
	hex48(r->pcr1, h);
	json_object_set_new(m, "PCR1", json_string(h));
	hex48(r->pcr2, h);
	json_object_set_new(m, "PCR2", json_string(h));
	if (r->is_signed) {
		hex48(r->pcr8, h);
		json_object_set_new(m, "PCR8", json_string(h));
	}
	json_object_set_new(o, "Measurements", m);
	json_object_set_new(o, "Backend", json_string("sandbox"));
	json_object_set_new(o, "Limits", json_string(r->limits));
	return o;
}

int
enc_record_write(const struct enc_paths *p, const struct enc_record *r)
{
	json_t *o = enc_record_json(r, true), *cg;
	char *text = NULL;
	int rc;

	if (o == NULL)
		return ward_enomem();
	json_object_set_new(o, "InitPID", json_integer(r->init));
	json_object_set_new(o, "HostUID", json_integer(r->host_uid));
	json_object_set_new(o, "VsockMounted", json_boolean(r->vsock_mounted));
	cg = json_array();
	for (size_t i = 0; i < r->n_cgroups; i++)
		json_array_append_new(cg, json_string(r->cgroups[i]));
	json_object_set_new(o, "Cgroups", cg);
	text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (text == NULL)
		return ward_enomem();
	rc = ward_write_file_atomic(p->state, text, strlen(text), 0600, true);
	free(text);
	return rc;
}

static int
get_pcr(json_t *m, const char *k, uint8_t out[WARD_PCR_LEN], bool need)
{
	const char *s = json_string_value(json_object_get(m, k));
	size_t n;

	if (s == NULL)
		return need ? -1 : 1;
	if (ward_hex_decode(s, strlen(s), out, WARD_PCR_LEN, &n) != 0 ||
	    n != WARD_PCR_LEN)
		return -1;
	return 0;
}

static int
copy_str(char *dst, size_t cap, json_t *v)
{
	const char *s = json_string_value(v);

	if (s == NULL || strlen(s) >= cap)
		return -1;
	memcpy(dst, s, strlen(s) + 1);
	return 0;
}

int
enc_record_read(const char *path, struct enc_record *r)
{
	json_error_t je;
	json_t *o, *m, *v, *cg;
	size_t i;
	int bad = 0;

	memset(r, 0, sizeof(*r));
	if ((o = json_load_file(path, JSON_REJECT_DUPLICATES, &je)) == NULL)
		return ward_errf(errno == ENOENT ? WARD_EIO : WARD_EFORMAT,
		    "enclave record %s: %s", path, je.text);
	bad |= copy_str(
	    r->name, sizeof(r->name), json_object_get(o, "EnclaveName"));
	bad |= copy_str(r->id, sizeof(r->id), json_object_get(o, "EnclaveID"));
	bad |=
	    copy_str(r->state, sizeof(r->state), json_object_get(o, "State"));
	if (copy_str(
	        r->limits, sizeof(r->limits), json_object_get(o, "Limits")))
		r->limits[0] = '\0';
	r->monitor = (pid_t)json_integer_value(json_object_get(o, "ProcessID"));
	r->init = (pid_t)json_integer_value(json_object_get(o, "InitPID"));
	r->cid = (uint32_t)json_integer_value(json_object_get(o, "EnclaveCID"));
	r->memory_mib =
	    (uint64_t)json_integer_value(json_object_get(o, "MemoryMiB"));
	r->host_uid = (uid_t)json_integer_value(json_object_get(o, "HostUID"));
	r->vsock_mounted = json_is_true(json_object_get(o, "VsockMounted"));
	r->debug = strcmp(json_string_value(json_object_get(o, "Flags")) != NULL
	                   ? json_string_value(json_object_get(o, "Flags"))
	                   : "",
	               "DEBUG_MODE") == 0;
	CPU_ZERO(&r->cpus);
	json_array_foreach(json_object_get(o, "CPUIDs"), i, v)
	{
		json_int_t c = json_integer_value(v);

		if (c < 0 || c >= CPU_SETSIZE)
			bad = -1;
		else
			CPU_SET((int)c, &r->cpus);
	}
	m = json_object_get(o, "Measurements");
	bad |= get_pcr(m, "PCR0", r->pcr0, true) < 0 ? -1 : 0;
	bad |= get_pcr(m, "PCR1", r->pcr1, true) < 0 ? -1 : 0;
	bad |= get_pcr(m, "PCR2", r->pcr2, true) < 0 ? -1 : 0;
	{
		int s = get_pcr(m, "PCR8", r->pcr8, false);

		bad |= s < 0 ? -1 : 0;
		r->is_signed = s == 0;
	}
	cg = json_object_get(o, "Cgroups");
	json_array_foreach(cg, i, v)
	{
		if (r->n_cgroups >= ENC_CGROUPS_MAX ||
		    copy_str(
		        r->cgroups[r->n_cgroups], sizeof(r->cgroups[0]), v))
			bad = -1;
		else
			r->n_cgroups++;
	}
	json_decref(o);
	/* what cleanup will act on: never PID 1, the parent's CID or a
	 * cgroup that is not this enclave's */
	if (bad || r->monitor <= 1 || r->init < 0 || r->init == 1 ||
	    r->cid <= 3 || r->cid == UINT32_MAX)
		bad = -1;
	for (size_t k = 0; !bad && k < r->n_cgroups; k++) {
		const char *c = r->cgroups[k];
		size_t cl = strlen(c), il = strlen(r->id);

		if (strncmp(c, "/sys/fs/cgroup/", 15) != 0 ||
		    strstr(c, "/../") != NULL || cl < il + 6 ||
		    strcmp(c + cl - il, r->id) != 0 ||
		    strncmp(c + cl - il - 6, "/ward/", 6) != 0)
			bad = -1;
	}
	if (bad)
		return ward_errf(
		    WARD_EFORMAT, "enclave record %s is damaged", path);
	return 0;
}

/* ---- cleanup and listing ------------------------------------------------ */

static void
unlink_quiet(const char *path)
{
	if (unlink(path) != 0 && errno != ENOENT)
		ward_warn("removing %s: %s", path, strerror(errno));
}

void
enc_cleanup(const struct enc_paths *p, const struct enc_record *r)
{
	/* processes first: nothing may hold the mounts or cgroups */
	if (r != NULL && r->init > 0 && r->n_cgroups == 0)
		kill(r->init, SIGKILL); /* rlimit mode: no cgroup to empty */
	if (r != NULL)
		enc_cgroup_destroy((char(*)[320])r->cgroups, r->n_cgroups);
	if (r != NULL && r->vsock_mounted &&
	    umount2(p->vsock_own, MNT_DETACH) != 0 && errno != EINVAL &&
	    errno != ENOENT)
		ward_warn("unmounting %s: %s", p->vsock_own, strerror(errno));
	if (r != NULL) {
		/* sockets the enclave left in its vsock directory */
		DIR *d = opendir(p->vsock_own);
		struct dirent *e;

		while (d != NULL && (e = readdir(d)) != NULL) {
			if (e->d_name[0] != '.')
				unlinkat(dirfd(d), e->d_name, 0);
		}
		if (d != NULL)
			closedir(d);
		if (rmdir(p->vsock_own) != 0 && errno != ENOENT)
			ward_warn(
			    "removing %s: %s", p->vsock_own, strerror(errno));
	}
	unlink_quiet(p->nsm);
	unlink_quiet(p->console);
	unlink_quiet(p->state);
	unlink_quiet(p->log);
	if (rmdir(p->root) != 0 && errno != ENOENT)
		ward_warn("removing %s: %s", p->root, strerror(errno));
	unlink_quiet(p->lock);
	if (rmdir(p->dir) != 0 && errno != ENOENT)
		ward_warn("removing %s: %s", p->dir, strerror(errno));
}

static int
add_live(struct enc_record **v, size_t *n, const struct enc_record *r)
{
	struct enc_record *nv = realloc(*v, (*n + 1) * sizeof(**v));

	if (nv == NULL)
		return ward_enomem();
	nv[*n] = *r;
	*v = nv;
	(*n)++;
	return 0;
}

/* Sorted by CID, as nitro-cli lists slots in order. */
static int
by_cid(const void *a, const void *b)
{
	const struct enc_record *x = a, *y = b;

	return x->cid < y->cid ? -1 : x->cid > y->cid;
}

int
enc_list(const char *run, bool reap, struct enc_record **live, size_t *n_live)
{
	char dir[320];
	DIR *d = NULL;
	struct dirent *e;
	int r = 0;

	*live = NULL;
	*n_live = 0;
	if ((r = fmt(dir, sizeof(dir), run, "/", "enclaves")) != 0)
		return r;
	if ((d = opendir(dir)) == NULL)
		return errno == ENOENT
		    ? 0
		    : ward_errf(WARD_EIO, "%s: %s", dir, strerror(errno));
	while ((e = readdir(d)) != NULL) {
		struct enc_paths p;
		struct enc_record rec;
		int lfd = -1;
		bool got, have;

		if (e->d_name[0] == '.' || strlen(e->d_name) >= ENC_ID_MAX)
			continue;
		/* the CID is not known yet: fill it in from the record */
		if (enc_paths(e->d_name, 0, &p) != 0)
			continue;
		if ((r = enc_lock(p.lock, 0, &lfd, &got)) != 0)
			goto out;
		have = enc_record_read(p.state, &rec) == 0;
		if (have)
			enc_paths(e->d_name, rec.cid, &p);
		if (!got) {
			/* a live monitor; a record it has not written yet is
			 * an enclave still starting: not listed */
			if (have && (r = add_live(live, n_live, &rec)) != 0) {
				close(lfd);
				goto out;
			}
		} else if (reap) {
			ward_debug("enclave %s: its monitor is gone; cleaning "
			           "up",
			    e->d_name);
			enc_cleanup(&p, have ? &rec : NULL);
		}
		close(lfd);
	}
	if (*n_live > 1)
		qsort(*live, *n_live, sizeof(**live), by_cid);
out:
	closedir(d);
	if (r != 0) {
		free(*live);
		*live = NULL;
		*n_live = 0;
	}
	return r;
}
