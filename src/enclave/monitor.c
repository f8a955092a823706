/*
 * The monitor: one daemon per sandbox enclave, as nitro-cli keeps one
 * enclave process per enclave. It plays the hypervisor's part: it holds
 * the enclave's resources (cgroups, the vsock directory, the NSM and
 * console sockets), starts the enclave, serves its NSM with the PCRs it
 * measured itself, keeps the console in debug mode, and when the enclave
 * ends or it is told to terminate (SIGTERM) it removes everything and
 * exits. It holds the enclave's lock for its whole life, so a monitor
 * that died (SIGKILL) is recognised and its leftovers removed by the next
 * ward command that lists enclaves.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "enclave/internal.h"
#include "ward/attest.h"
#include "ward/transport.h"

#define CONSOLE_CLIENTS 16
#define PIDS_MAX 1024

struct monitor {
	struct enc_start *s;
	struct enc_cgroup cg;
	int nsm_listen, console_listen, console_read, sig;
	int clients[CONSOLE_CLIENTS];
	uint8_t ring[ENC_CONSOLE_RING];
	size_t ring_len, ring_pos; /* ring_pos: where the next byte goes */
	pid_t child;
	/* the layout the enclave is unpacked by, and whether the image's
	 * measurement has been taken (measured_r its result) */
	struct ward_eif_image layout;
	bool measured;
	int measured_r;
	char measured_msg[512];
	struct ward_ca *ca;
	struct ward_attest_signer *signer;
	struct ward_nsm_server *nsm;
};

static void
report(int fd, int code, const char *msg)
{
	char line[4096];
	int n = snprintf(line, sizeof(line), "%d %s", code, msg);

	if (fd >= 0 && n > 0) {
		ssize_t k = write(fd, line,
		    (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);

		(void)k;
	}
}

static int
listen_unix(const char *path, mode_t mode, uid_t owner, int *fd)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path) >=
	    sizeof(sa.sun_path))
		return ward_errf(WARD_ELIMIT, "%s: path too long", path);
	unlink(path);
	if ((*fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return ward_errf(WARD_EIO, "socket: %s", strerror(errno));
	if (bind(*fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    chmod(path, mode) != 0 ||
	    (owner != (uid_t)-1 && chown(path, owner, owner) != 0) ||
	    listen(*fd, 64) != 0)
		return ward_errf(
		    WARD_EIO, "listening on %s: %s", path, strerror(errno));
	return 0;
}

/* ---- host-side resources ---------------------------------------------- */

static int
vsock_dir(struct monitor *m)
{
	struct enc_start *s = m->s;
	char opts[128];

	if ((mkdir(s->paths.vsock_own, 0755) != 0 && errno != EEXIST) ||
	    chmod(s->paths.vsock_own, 0755) != 0)
		return ward_errf(WARD_EIO, "creating %s: %s",
		    s->paths.vsock_own, strerror(errno));
	if (geteuid() != 0)
		return 0; /* the user's own runtime directory */
	/* a tmpfs of its own: the enclave can write here, and must not
	 * fill the host's /run or leave files behind */
	snprintf(opts, sizeof(opts),
	    "size=64k,nr_inodes=1024,mode=0755,uid=%u,gid=%u",
	    (unsigned)s->rec.host_uid, (unsigned)s->rec.host_uid);
	/* nosymfollow: a symlink the enclave plants here must not send the
	 * host's clients elsewhere */
	if (mount("ward-vsock", s->paths.vsock_own, "tmpfs",
	        MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOSYMFOLLOW, opts) != 0)
		return ward_errf(WARD_EIO, "mounting a tmpfs on %s: %s",
		    s->paths.vsock_own, strerror(errno));
	s->rec.vsock_mounted = true;
	return 0;
}

static int
write_map(pid_t pid, const char *file, const char *map)
{
	char p[64];
	int fd, r = 0;

	snprintf(p, sizeof(p), "/proc/%d/%s", (int)pid, file);
	if ((fd = open(p, O_WRONLY | O_CLOEXEC)) < 0)
		return ward_errf(WARD_EIO, "%s: %s", p, strerror(errno));
	if (write(fd, map, strlen(map)) != (ssize_t)strlen(map))
		r = ward_errf(WARD_EIO, "writing %s: %s", p, strerror(errno));
	close(fd);
	return r;
}

static int
map_ids(struct monitor *m, pid_t pid)
{
	char map[64];
	int r;

	if (geteuid() == 0) {
		snprintf(map, sizeof(map), "0 %u %u\n",
		    (unsigned)m->s->rec.host_uid, ENC_UID_BLOCK);
		if ((r = write_map(pid, "uid_map", map)) != 0 ||
		    (r = write_map(pid, "gid_map", map)) != 0)
			return r;
		return 0;
	}
	if ((r = write_map(pid, "setgroups", "deny")) != 0)
		return r;
	snprintf(map, sizeof(map), "0 %u 1\n", (unsigned)getuid());
	if ((r = write_map(pid, "uid_map", map)) != 0)
		return r;
	snprintf(map, sizeof(map), "0 %u 1\n", (unsigned)getgid());
	return write_map(pid, "gid_map", map);
}

/* ---- starting the enclave ---------------------------------------------- */

static int measure(struct monitor *m);

/*
 * Clone the enclave, let it set itself up (mounts, unpack, /proc, /dev,
 * privileges, PID 1's fork) while the image is measured here, and let its
 * command run only once the measurement stands: the set-up is hidden
 * behind the hashing, and nothing of the image runs unmeasured. The child
 * unpacks this process's copy of the image, read before the clone and
 * never written after it, the same bytes the measurement reads.
 */
static int
start(struct monitor *m, char **cmd, char **env, const uint8_t *ramdisk,
    size_t ramdisk_len)
{
	struct enc_start *s = m->s;
	struct enc_child c = {0};
	int sync_p[2] = {-1, -1}, err_p[2] = {-1, -1}, cons[2] = {-1, -1};
	char msg[600];
	ssize_t k;
	size_t got = 0;
	bool go_ok;
	int r = 0;
	pid_t pid;

	c.eif = m->s->eif;
	c.eif_len = m->s->eif_len;
	c.ramdisk = ramdisk;
	c.ramdisk_len = ramdisk_len;
	c.cmd = cmd;
	c.env = env;
	c.memory_mib = s->rec.memory_mib;
	c.cpus = s->rec.cpus;
	c.cid = s->rec.cid;
	c.debug = s->rec.debug;
	c.rlimits = m->cg.version == 0;
	c.pids_max = PIDS_MAX;
	c.nsm_path = s->paths.nsm;
	c.vsock_parent = s->paths.vsock_parent;
	c.vsock_own = s->paths.vsock_own;
	c.stage = s->paths.root;
	if ((mkdir(s->paths.root, 0755) != 0 && errno != EEXIST) ||
	    chmod(s->paths.root, 0755) != 0) {
		r = ward_errf(WARD_EIO, "creating %s: %s", s->paths.root,
		    strerror(errno));
		goto out;
	}
	if (pipe2(sync_p, O_CLOEXEC) != 0 || pipe2(err_p, O_CLOEXEC) != 0 ||
	    pipe2(cons, O_CLOEXEC) != 0) {
		r = ward_errf(WARD_EIO, "pipe: %s", strerror(errno));
		goto out;
	}
	c.sync_fd = sync_p[0];
	c.err_fd = err_p[1];
	c.console_fd = cons[1];
	/*
	 * The agent locks plaintext (models, decrypted inputs) in memory
	 * with mlock: the enclave may lock as much as it has. A root monitor
	 * raises the limit (inherited by the clone); an ordinary user's stays
	 * as it is, and the agent says so when a lock fails.
	 */
	{
		rlim_t want = (rlim_t)s->rec.memory_mib << 20;
		struct rlimit ml;

		if (getrlimit(RLIMIT_MEMLOCK, &ml) == 0 &&
		    ml.rlim_cur != RLIM_INFINITY && ml.rlim_cur < want) {
			struct rlimit up = {want,
			    ml.rlim_max == RLIM_INFINITY || ml.rlim_max > want
			        ? ml.rlim_max
			        : want};

			if (setrlimit(RLIMIT_MEMLOCK, &up) != 0 &&
			    ml.rlim_max != RLIM_INFINITY) {
				up.rlim_cur = ml.rlim_max;
				up.rlim_max = ml.rlim_max;
				(void)setrlimit(RLIMIT_MEMLOCK, &up);
			}
		}
	}
	/* clone with a NULL stack is fork() into new namespaces; the
	 * monitor is single-threaded here */
	pid = (pid_t)syscall(SYS_clone,
	    CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWNS |
	        CLONE_NEWIPC | CLONE_NEWUTS | SIGCHLD,
	    NULL, NULL, NULL, NULL);
	if (pid < 0) {
		r = ward_errf(WARD_EIO,
		    "creating the enclave's namespaces: %s%s", strerror(errno),
		    errno == EPERM || errno == ENOSPC
		        ? " (are user namespaces disabled? see "
		          "/proc/sys/user/max_user_namespaces)"
		        : "");
		goto out;
	}
	if (pid == 0) {
		close(sync_p[1]);
		close(err_p[0]);
		close(cons[0]);
		enc_child_main(&c);
	}
	m->child = pid;
	s->rec.init = pid;
	close(sync_p[0]);
	sync_p[0] = -1;
	close(err_p[1]);
	err_p[1] = -1;
	close(cons[1]);
	cons[1] = -1;
	/* born in the enclave's cgroups (enc_cgroup_join); the monitor
	 * leaves them at once (their cpuset would hold it on the enclave's
	 * CPU beside the enclave's own set-up) */
	if ((r = enc_cgroup_leave(&m->cg)) != 0 || (r = map_ids(m, pid)) != 0)
		goto out;
	if (write(sync_p[1], "g", 1) != 1) {
		r = ward_errf(
		    WARD_EIO, "the enclave did not start: %s", strerror(errno));
		goto out;
	}
	if ((r = measure(m)) != 0)
		goto out;
	/* the command may run; a set-up that failed meanwhile has closed its
	 * end (EPIPE, SIGPIPE ignored) and says why on err_p */
	go_ok = write(sync_p[1], "x", 1) == 1;
	close(sync_p[1]);
	sync_p[1] = -1;
	/* EOF: the command was exec'd; bytes: why the set-up failed */
	while ((k = read(err_p[0], msg + got, sizeof(msg) - 1 - got)) != 0) {
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			break;
		got += (size_t)k;
		if (got == sizeof(msg) - 1)
			break;
	}
	if (got > 0) {
		msg[got] = '\0';
		r = ward_errf(WARD_EIO, "the enclave did not start: %s", msg);
		goto out;
	}
	if (!go_ok) {
		r = ward_errf(WARD_EIO,
		    "the enclave did not start: it ended during its set-up");
		goto out;
	}
	m->console_read = cons[0];
	cons[0] = -1;
out:
	if (r != 0 && m->child > 0) {
		kill(m->child, SIGKILL);
		waitpid(m->child, NULL, 0);
		m->child = -1;
	}
	for (int i = 0; i < 2; i++) {
		if (sync_p[i] >= 0)
			close(sync_p[i]);
		if (err_p[i] >= 0)
			close(err_p[i]);
		if (cons[i] >= 0)
			close(cons[i]);
	}
	return r;
}

/* PCR3 and PCR4 as Nitro extends them: SHA-384(0^48 || the parent's IAM
 * role ARN), SHA-384(0^48 || its instance id); zero when not configured */
static void
host_pcr(const char *value, uint8_t out[WARD_PCR_LEN])
{
	static const uint8_t zero[WARD_PCR_LEN];
	unsigned int n = 0;
	EVP_MD_CTX *h;

	memset(out, 0, WARD_PCR_LEN);
	if (value[0] == '\0' || (h = EVP_MD_CTX_new()) == NULL)
		return;
	if (EVP_DigestInit_ex(h, EVP_sha384(), NULL) != 1 ||
	    EVP_DigestUpdate(h, zero, sizeof(zero)) != 1 ||
	    EVP_DigestUpdate(h, value, strlen(value)) != 1 ||
	    EVP_DigestFinal_ex(h, out, &n) != 1)
		memset(out, 0, WARD_PCR_LEN);
	EVP_MD_CTX_free(h);
}

static int
nsm_setup(struct monitor *m)
{
	struct enc_start *s = m->s;
	char dir[512];
	uint8_t pcr[WARD_PCR_LEN];
	int r;

	if ((r = ward_ca_default_dir(dir, sizeof(dir))) != 0 ||
	    (r = ward_ca_load(dir, &m->ca)) != 0 ||
	    (r = ward_attest_signer_new(m->ca, &m->signer)) != 0 ||
	    (r = ward_nsm_server_new(m->signer, s->rec.id, &m->nsm)) != 0)
		return r;
	/* debug mode: every PCR reads zero, as on Nitro */
	if (!s->rec.debug) {
		if ((r = ward_nsm_server_set_pcr(m->nsm, 0, s->rec.pcr0)) ||
		    (r = ward_nsm_server_set_pcr(m->nsm, 1, s->rec.pcr1)) ||
		    (r = ward_nsm_server_set_pcr(m->nsm, 2, s->rec.pcr2)))
			return r;
		host_pcr(s->host_role, pcr);
		if ((r = ward_nsm_server_set_pcr(m->nsm, 3, pcr)) != 0)
			return r;
		host_pcr(s->host_instance, pcr);
		if ((r = ward_nsm_server_set_pcr(m->nsm, 4, pcr)) != 0)
			return r;
		if (s->rec.is_signed &&
		    (r = ward_nsm_server_set_pcr(m->nsm, 8, s->rec.pcr8)) != 0)
			return r;
	}
	return ward_nsm_server_lock_boot(m->nsm);
}

/* ---- measuring ------------------------------------------------------------ */

static int
check_image(const char *path, const struct ward_eif_image *img)
{
	size_t ramdisks = 0;

	if (img->crc_header != img->crc_computed)
		return ward_errf(WARD_EAUTH,
		    "%s: CRC mismatch (stored %08x, computed %08x): the image "
		    "is damaged",
		    path, img->crc_header, img->crc_computed);
	if (img->is_signed && !img->signature_ok)
		return ward_errf(WARD_EAUTH,
		    "%s: its signature does not verify (nitro-cli E59)", path);
	for (size_t i = 0; i < img->num_sections; i++)
		ramdisks += img->sections[i].type == WARD_EIF_SEC_RAMDISK;
	if (ramdisks == 0)
		return ward_errf(
		    WARD_EFORMAT, "%s: the image has no ramdisk", path);
	return 0;
}

struct measure {
	struct enc_start *s;
	int r;
	char msg[512];
};

int
enc_image_alloc(size_t len, uint8_t **p)
{
	void *m = mmap(NULL, len, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

	if (m == MAP_FAILED) {
		*p = NULL;
		return ward_errf(WARD_ENOMEM,
		    "no memory for the image (%zu bytes): %s", len,
		    strerror(errno));
	}
	*p = m;
	return 0;
}

void
enc_image_release(uint8_t **p, size_t len)
{
	if (*p != NULL)
		munmap(*p, len);
	*p = NULL;
}

/* The image file into the buffer, all of it: what is measured is then
 * what the enclave gets, whatever happens to the file meanwhile. */
static int
read_image(struct enc_start *s)
{
	size_t off = 0;

	while (off < s->eif_len) {
		ssize_t k = pread(
		    s->eif_fd, s->eif + off, s->eif_len - off, (off_t)off);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return ward_errf(WARD_EIO, "reading %s: %s",
			    s->eif_path,
			    k < 0 ? strerror(errno) : "it shrank while read");
		off += (size_t)k;
	}
	return 0;
}

/* In a thread beside the OpenSSL and cgroup set-up: read the image into
 * memory (measured from there once the enclave is cloned). */
static void *
read_thread(void *arg)
{
	struct measure *mz = arg;
	struct enc_start *s = mz->s;

	mz->r = enc_image_alloc(s->eif_len, &s->eif);
	if (mz->r == 0)
		mz->r = read_image(s);
	close(s->eif_fd);
	s->eif_fd = -1;
	if (mz->r != 0)
		snprintf(mz->msg, sizeof(mz->msg), "%s", ward_errmsg());
	return NULL;
}

/* OpenSSL's first use sets up its providers: done before the clone, the
 * measurement after it finds them ready */
static void *
ossl_thread(void *arg)
{
	(void)arg;
	EVP_MD_free(EVP_MD_fetch(NULL, "SHA2-384", NULL));
	return NULL;
}

/*
 * The image in memory measured (CRC, PCR0/1/2/8, signature: nitro.md
 * §1.4-§1.5) and checked, once; later calls give the first result. The
 * sections it measures are the ones the enclave was unpacked by:
 * ward_eif_read_mem lays the image out with the same ward_eif_layout over
 * the same bytes, which nothing writes after the read (test_eif and
 * fuzz_eif hold that reader to the stream reader's answer).
 */
static int
measure(struct monitor *m)
{
	struct enc_start *s = m->s;
	int r;

	if (m->measured)
		return m->measured_r == 0
		    ? 0
		    : ward_errf(-m->measured_r, "%s", m->measured_msg);
	r = ward_eif_read_mem(s->eif, s->eif_len, s->eif_path, &s->img);
	if (r == 0)
		r = check_image(s->eif_path, &s->img);
	m->measured = true;
	m->measured_r = r;
	if (r != 0) {
		snprintf(m->measured_msg, sizeof(m->measured_msg), "%s",
		    ward_errmsg());
		return r;
	}
	memcpy(s->rec.pcr0, s->img.pcr0, WARD_PCR_LEN);
	memcpy(s->rec.pcr1, s->img.pcr1, WARD_PCR_LEN);
	memcpy(s->rec.pcr2, s->img.pcr2, WARD_PCR_LEN);
	s->rec.is_signed = s->img.is_signed;
	memcpy(s->rec.pcr8, s->img.pcr8, WARD_PCR_LEN);
	return 0;
}

/* ---- running ------------------------------------------------------------ */

struct nsm_conn {
	struct ward_nsm_server *nsm;
	int fd;
};

/* the enclave must not make its monitor (outside its cgroups) spawn
 * threads without end */
#define NSM_CONNECTIONS_MAX 32
#define NSM_IDLE_SECONDS 30
static int nsm_live;
static pthread_mutex_t nsm_mu = PTHREAD_MUTEX_INITIALIZER;

static void *
nsm_thread(void *arg)
{
	struct nsm_conn *c = arg;

	if (ward_nsm_server_serve_fd(c->nsm, c->fd) != 0)
		ward_debug("NSM connection: %s", ward_errmsg());
	close(c->fd);
	free(c);
	pthread_mutex_lock(&nsm_mu);
	nsm_live--;
	pthread_mutex_unlock(&nsm_mu);
	return NULL;
}

static void
nsm_accept(struct monitor *m)
{
	struct nsm_conn *c;
	pthread_attr_t a;
	pthread_t t;
	int fd = accept4(m->nsm_listen, NULL, NULL, SOCK_CLOEXEC);

	struct timeval idle = {NSM_IDLE_SECONDS, 0};
	bool full;

	if (fd < 0)
		return;
	pthread_mutex_lock(&nsm_mu);
	full = nsm_live >= NSM_CONNECTIONS_MAX;
	if (!full)
		nsm_live++;
	pthread_mutex_unlock(&nsm_mu);
	if (full) {
		close(fd);
		return;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &idle, sizeof(idle));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &idle, sizeof(idle));
	if ((c = malloc(sizeof(*c))) == NULL) {
		close(fd);
		pthread_mutex_lock(&nsm_mu);
		nsm_live--;
		pthread_mutex_unlock(&nsm_mu);
		return;
	}
	c->nsm = m->nsm;
	c->fd = fd;
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &a, nsm_thread, c) != 0) {
		close(fd);
		free(c);
		pthread_mutex_lock(&nsm_mu);
		nsm_live--;
		pthread_mutex_unlock(&nsm_mu);
	}
	pthread_attr_destroy(&a);
}

static void
console_drop(struct monitor *m, int i)
{
	close(m->clients[i]);
	m->clients[i] = -1;
}

static void
console_send(struct monitor *m, const uint8_t *p, size_t n)
{
	for (int i = 0; i < CONSOLE_CLIENTS; i++) {
		if (m->clients[i] < 0)
			continue;
		/* a reader that cannot keep up is dropped, never waited for */
		if (send(m->clients[i], p, n, MSG_DONTWAIT | MSG_NOSIGNAL) !=
		    (ssize_t)n)
			console_drop(m, i);
	}
}

static void
console_read(struct monitor *m)
{
	uint8_t buf[4096];
	ssize_t k = read(m->console_read, buf, sizeof(buf));

	if (k <= 0) {
		if (k == 0 || errno != EINTR) {
			close(m->console_read);
			m->console_read = -1;
		}
		return;
	}
	if (!m->s->rec.debug)
		return; /* no console outside debug mode, as on Nitro */
	for (ssize_t i = 0; i < k; i++) {
		m->ring[m->ring_pos] = buf[i];
		m->ring_pos = (m->ring_pos + 1) % sizeof(m->ring);
		if (m->ring_len < sizeof(m->ring))
			m->ring_len++;
	}
	console_send(m, buf, (size_t)k);
}

static void
console_accept(struct monitor *m)
{
	int fd = accept4(m->console_listen, NULL, NULL, SOCK_CLOEXEC),
	    slot = -1;
	size_t start;

	if (fd < 0)
		return;
	for (int i = 0; i < CONSOLE_CLIENTS && slot < 0; i++)
		if (m->clients[i] < 0)
			slot = i;
	if (slot < 0) {
		close(fd);
		return;
	}
	m->clients[slot] = fd;
	/* what the enclave wrote so far, then the live stream */
	start = (m->ring_pos + sizeof(m->ring) - m->ring_len) % sizeof(m->ring);
	for (size_t done = 0; done < m->ring_len && m->clients[slot] >= 0;) {
		size_t n = sizeof(m->ring) - start;

		if (n > m->ring_len - done)
			n = m->ring_len - done;
		if (send(fd, m->ring + start, n, MSG_NOSIGNAL) != (ssize_t)n)
			console_drop(m, slot);
		done += n;
		start = (start + n) % sizeof(m->ring);
	}
}

/* --attach-console: run-enclave connects before the command starts */
static int
console_wait(struct monitor *m)
{
	struct pollfd p = {.fd = m->console_listen, .events = POLLIN};
	ssize_t k = write(m->s->status_fd, "C\n", 2);

	if (k != 2 || poll(&p, 1, 10000) != 1)
		return ward_errf(WARD_EIO, "the console's reader did not come");
	console_accept(m);
	return 0;
}

static void
finish(struct monitor *m, const char *why)
{
	struct enc_start *s = m->s;

	ward_info("enclave %s: %s", s->rec.id, why);
	if (m->child > 0) {
		kill(m->child, SIGKILL); /* PID 1: its namespace goes with it */
		while (waitpid(m->child, NULL, 0) < 0 && errno == EINTR)
			;
		m->child = -1;
	}
	enc_cleanup(&s->paths, &s->rec);
	_exit(0);
}

static void
loop(struct monitor *m)
{
	for (;;) {
		struct pollfd p[4 + CONSOLE_CLIENTS];
		int n = 0;

		p[n++] = (struct pollfd){.fd = m->sig, .events = POLLIN};
		p[n++] = (struct pollfd){.fd = m->nsm_listen, .events = POLLIN};
		p[n++] =
		    (struct pollfd){.fd = m->console_read, .events = POLLIN};
		p[n++] =
		    (struct pollfd){.fd = m->console_listen, .events = POLLIN};
		for (int i = 0; i < CONSOLE_CLIENTS; i++)
			p[n++] = (struct pollfd){.fd = m->clients[i]};
		if (poll(p, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			finish(m, "poll failed; terminating");
		}
		if (p[0].revents & POLLIN) {
			struct signalfd_siginfo si;
			int status;

			if (read(m->sig, &si, sizeof(si)) == sizeof(si) &&
			    si.ssi_signo != SIGCHLD) {
				m->s->rec.state[0] = '\0';
				snprintf(m->s->rec.state,
				    sizeof(m->s->rec.state), "TERMINATING");
				enc_record_write(&m->s->paths, &m->s->rec);
				finish(m, "terminated");
			}
			if (waitpid(m->child, &status, WNOHANG) == m->child) {
				char why[96];

				m->child = -1;
				if (WIFSIGNALED(status))
					snprintf(why, sizeof(why),
					    "its init was killed by signal %d",
					    WTERMSIG(status));
				else
					snprintf(why, sizeof(why),
					    "its command exited with status %d",
					    WEXITSTATUS(status));
				/* let the console readers have the end, but
				 * never wait on a pipe end the enclave passed
				 * on to someone else */
				for (int i = 0; i < 100 && m->console_read >= 0;
				     i++) {
					struct pollfd cp = {
					    m->console_read, POLLIN, 0};

					if (poll(&cp, 1, 10) != 1)
						break;
					console_read(m);
				}
				finish(m, why);
			}
		}
		if (p[1].revents & POLLIN)
			nsm_accept(m);
		if (p[2].revents & (POLLIN | POLLHUP))
			console_read(m);
		if (p[3].revents & POLLIN)
			console_accept(m);
		for (int i = 0; i < CONSOLE_CLIENTS; i++)
			if (p[4 + i].fd >= 0 &&
			    (p[4 + i].revents & (POLLHUP | POLLERR)))
				console_drop(m, i);
	}
}

void
enc_monitor_main(struct enc_start *s)
{
	static struct monitor mon; /* the console ring is 64 KiB */
	struct monitor *m = &mon;
	const struct ward_eif_section *rd = NULL;
	char **cmd = NULL, **env = NULL;
	struct measure mz = {.s = s};
	pthread_t mt, ossl;
	bool ossl_started;
	sigset_t set;
	int r, logfd;

	m->s = s;
	m->nsm_listen = m->console_listen = m->console_read = m->sig = -1;
	m->child = -1;
	for (int i = 0; i < CONSOLE_CLIENTS; i++)
		m->clients[i] = -1;
	/* the monitor's own messages go to its log, never to a terminal */
	if ((logfd = open(s->paths.log,
	         O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW,
	         0600)) >= 0) {
		dup2(logfd, 2);
		close(logfd);
	}
	{
		int nul = open("/dev/null", O_RDWR | O_CLOEXEC);

		if (nul >= 0) {
			dup2(nul, 0);
			dup2(nul, 1);
			close(nul);
		}
	}
	prctl(PR_SET_NAME, "ward-monitor", 0, 0, 0);
	/* it will hold the attestation signing key: no core dumps, nothing
	 * relative to the caller; not dumpable once the enclave's ids are
	 * mapped (an unprivileged monitor must write them, and a clone of a
	 * non-dumpable process has root-owned /proc files) */
	{
		struct rlimit none = {0, 0};

		setrlimit(RLIMIT_CORE, &none);
	}
	umask(077);
	if (chdir("/") != 0)
		ward_warn("chdir /: %s", strerror(errno));
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if ((m->sig = signalfd(-1, &set, SFD_CLOEXEC)) < 0) {
		r = ward_errf(WARD_EIO, "signalfd: %s", strerror(errno));
		goto fail;
	}
	s->rec.monitor = getpid();

	/* read the image in one thread and set up OpenSSL's providers for
	 * the measurement in another (about 1 ms) while the cgroups are made
	 * and joined in this one (on v2, a cgroup.procs write waits for an
	 * RCU grace period) */
	if (pthread_create(&mt, NULL, read_thread, &mz) != 0) {
		r = ward_errf(WARD_EINTERNAL, "cannot start a thread");
		goto fail;
	}
	ossl_started = pthread_create(&ossl, NULL, ossl_thread, NULL) == 0;
	r = enc_cgroup_create(
	    s->rec.id, s->rec.memory_mib, &s->rec.cpus, PIDS_MAX, &m->cg);
	for (size_t i = 0; i < m->cg.n; i++)
		memcpy(s->rec.cgroups[i], m->cg.paths[i],
		    sizeof(s->rec.cgroups[i]));
	s->rec.n_cgroups = m->cg.n;
	if (r == 0)
		r = enc_cgroup_join(&m->cg);
	pthread_join(mt, NULL);
	if (ossl_started)
		pthread_join(ossl, NULL);
	/* single-threaded again from here to the clone */
	if (r != 0)
		goto fail;
	if (mz.r != 0) {
		r = ward_errf(-mz.r, "%s", mz.msg);
		goto fail;
	}
	/* where the sections are, to unpack while they are measured */
	if ((r = ward_eif_layout(
	         s->eif, s->eif_len, s->eif_path, &m->layout)) != 0)
		goto fail;
	/* the customer ramdisk: the last one (nitro-cli writes bootstrap,
	 * customer; the layout rules make index 3 a ramdisk) */
	for (size_t i = 0; i < m->layout.num_sections; i++)
		if (m->layout.sections[i].type == WARD_EIF_SEC_RAMDISK)
			rd = &m->layout.sections[i];
	{
		const uint8_t *p = s->eif + rd->offset + 12;
		size_t n = (size_t)rd->size;

		if ((r = enc_ramdisk_lines(p, n, "cmd", &cmd)) != 0 ||
		    (r = enc_ramdisk_lines(p, n, "env", &env)) != 0)
			goto fail;
		if (cmd == NULL || cmd[0] == NULL) {
			r = ward_errf(WARD_EFORMAT,
			    "the image has no command (/cmd in its customer "
			    "ramdisk is missing or empty)");
			goto fail;
		}
		if (env == NULL && (env = calloc(1, sizeof(*env))) == NULL) {
			r = ward_enomem();
			goto fail;
		}
		_Static_assert(
		    sizeof(s->rec.limits) == sizeof(m->cg.limits), "limits");
		memcpy(s->rec.limits, m->cg.limits, sizeof(s->rec.limits));
		if ((r = vsock_dir(m)) != 0)
			goto fail;
		snprintf(s->rec.state, sizeof(s->rec.state), "STARTING");
		if ((r = enc_record_write(&s->paths, &s->rec)) != 0)
			goto fail;
		if ((r = listen_unix(s->paths.nsm, 0600, s->rec.host_uid,
		         &m->nsm_listen)) != 0)
			goto fail;
		if (s->rec.debug &&
		    (r = listen_unix(s->paths.console, 0600, (uid_t)-1,
		         &m->console_listen)) != 0)
			goto fail;
		if (s->attach && (r = console_wait(m)) != 0)
			goto fail;
		if ((r = start(m, cmd, env, p, n)) != 0)
			goto fail;
	}
	/* the enclave's CPUs are its own (on Nitro they leave the host): the
	 * monitor runs on the others where there are any, so its own work,
	 * from the NSM set-up below on, does not take them from the enclave */
	{
		cpu_set_t host, both;

		if (sched_getaffinity(0, sizeof(host), &host) == 0) {
			/* host minus the enclave's */
			CPU_AND(&both, &host, &s->rec.cpus);
			CPU_XOR(&host, &host, &both);
			if (CPU_COUNT(&host) > 0 &&
			    sched_setaffinity(0, sizeof(host), &host) != 0)
				ward_debug(
				    "monitor affinity: %s", strerror(errno));
		}
	}
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	/* the image is no longer needed: the enclave has its own copy */
	enc_image_release(&s->eif, s->eif_len);
	enc_lines_free(cmd);
	enc_lines_free(env);
	cmd = env = NULL;
	if ((r = nsm_setup(m)) != 0)
		goto fail;
	snprintf(s->rec.state, sizeof(s->rec.state), "RUNNING");
	if ((r = enc_record_write(&s->paths, &s->rec)) != 0)
		goto fail;
	/* the record itself: a command that ends at once takes the record
	 * file with it before run-enclave could read it */
	{
		json_t *j = enc_record_json(&s->rec, true);
		char *text = j
		    ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER)
		    : NULL;

		report(s->status_fd, 0, text ? text : "{}");
		free(text);
		json_decref(j);
	}
	close(s->status_fd);
	s->status_fd = -1;
	loop(m);
fail:
	/* a damaged image is reported as damaged (CRC, signature), not by
	 * whatever its damage broke first (the command line, the unpack) */
	if (m->layout.num_sections > 0 && measure(m) != 0)
		r = m->measured_r;
	report(s->status_fd, -r, ward_errmsg());
	enc_cgroup_leave(&m->cg);
	enc_lines_free(cmd);
	enc_lines_free(env);
	if (m->child > 0) {
		kill(m->child, SIGKILL);
		waitpid(m->child, NULL, 0);
	}
	s->rec.n_cgroups = m->cg.n;
	enc_cleanup(&s->paths, &s->rec);
	_exit(1);
}
