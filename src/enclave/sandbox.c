/*
 * The enclave's side of the sandbox: what runs in the process clone()
 * started in new user, pid, net, mount, ipc and uts namespaces (and a new
 * cgroup namespace once the monitor has put it in its cgroups). It
 * becomes the enclave's PID 1:
 *
 *   a private tmpfs of --memory MiB, filled from the customer ramdisk's
 *   rootfs/ (paths resolved inside it, never outside); a fresh /proc; a
 *   minimal /dev (null zero full random urandom, /dev/nsm = the monitor's
 *   NSM socket, /dev/shm); /run/ward/vsock with the parent's ports
 *   read-only and the enclave's own; loopback up; pivot_root into the
 *   tmpfs with the host's tree detached; CPUs pinned; every capability
 *   dropped for good; no_new_privs; a seccomp filter; then the image's
 *   command runs in a child while PID 1 reaps orphans, and PID 1 exits
 *   with the command, which ends the enclave (Nitro reboots).
 *
 * A set-up failure is written to err_fd for run-enclave to report; the
 * command's exec closes err_fd (close-on-exec), which says it started.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/openat2.h>
#include <linux/securebits.h>
#include <net/if.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "enclave/internal.h"

static void fail(const char *fmt, ...)
    __attribute__((noreturn, format(printf, 1, 2)));

/* Where the tmpfs is built before pivot_root: <run>/enclaves/<ID>/root,
 * a directory the monitor made (not an ancestor of anything mounted in). */
static const char *stage;

/* stage + rel, in one of a few rotating buffers */
static const char *
at(const char *rel)
{
	static char buf[4][512];
	static int i;
	char *b = buf[i++ % 4];

	if ((size_t)snprintf(b, sizeof(buf[0]), "%s%s", stage, rel) >=
	    sizeof(buf[0]))
		fail("path too long: %s%s", stage, rel);
	return b;
}

static int err_fd = -1;

static void
fail(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n > 0 && err_fd >= 0) {
		size_t len =
		    (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1;
		ssize_t k = write(err_fd, msg, len);

		(void)k;
	}
	_exit(125);
}

/* ---- cmd and env ------------------------------------------------------ */

void
enc_lines_free(char **lines)
{
	if (lines == NULL)
		return;
	for (size_t i = 0; lines[i] != NULL; i++)
		free(lines[i]);
	free(lines);
}

/*
 * The ramdisk's NAME file ("cmd" or "env"): one entry per line, as
 * ward-init and AWS's init read them. *lines is NULL-terminated, or NULL
 * when the file is absent.
 */
int
enc_ramdisk_lines(const uint8_t *p, size_t n, const char *name, char ***lines)
{
	struct ward_cpio_reader rd;
	struct ward_cpio_entry e;
	char **v = NULL;
	size_t nv = 0;
	int r;

	*lines = NULL;
	ward_cpio_reader_init(&rd, p, n);
	while ((r = ward_cpio_next(&rd, &e)) == 1) {
		const char *nm =
		    strncmp(e.name, "./", 2) == 0 ? e.name + 2 : e.name;
		size_t i = 0;

		if (strcmp(nm, name) != 0 || !S_ISREG(e.mode))
			continue;
		enc_lines_free(v);
		v = NULL;
		nv = 0;
		while (i < e.size) {
			size_t j = i;
			char **nv2;

			while (j < e.size && e.data[j] != '\n')
				j++;
			if (j > i) {
				if (memchr(e.data + i, '\0', j - i) != NULL) {
					r = ward_errf(WARD_EFORMAT,
					    "the image's /%s holds a NUL byte",
					    name);
					goto out;
				}
				if (nv + 1 >= ENC_CMD_MAX) {
					r = ward_errf(WARD_ELIMIT,
					    "the image's /%s has more than %d "
					    "lines",
					    name, ENC_CMD_MAX - 1);
					goto out;
				}
				if ((nv2 = realloc(v, (nv + 2) * sizeof(*v))) ==
				    NULL) {
					r = ward_enomem();
					goto out;
				}
				v = nv2;
				if ((v[nv] = strndup((const char *)e.data + i,
				         j - i)) == NULL) {
					r = ward_enomem();
					goto out;
				}
				v[++nv] = NULL;
			}
			i = j + 1;
		}
		if (v == NULL && (v = calloc(1, sizeof(*v))) == NULL) {
			r = ward_enomem();
			goto out;
		}
	}
	if (r < 0)
		goto out;
	*lines = v;
	v = NULL;
	r = 0;
out:
	enc_lines_free(v);
	return r;
}

/* ---- unpacking, confined to the tmpfs ------------------------------------ */

static int
open_in_root(int root, const char *path, int flags)
{
	struct open_how how = {
	    .flags = (uint64_t)(flags | O_CLOEXEC),
	    .resolve =
	        RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
	};

	return (int)syscall(SYS_openat2, root, path, &how, sizeof(how));
}

/*
 * Split "a/b/c" into the parent "a/b" opened inside root and the last
 * component; "..", "." and empty components as the last one are refused.
 */
static int
parent_of(int root, const char *rel, char *dir, size_t cap, const char **base)
{
	const char *slash = strrchr(rel, '/');
	size_t n = slash != NULL ? (size_t)(slash - rel) : 0;

	*base = slash != NULL ? slash + 1 : rel;
	if (**base == '\0' || strcmp(*base, ".") == 0 ||
	    strcmp(*base, "..") == 0 || n >= cap)
		return -1;
	memcpy(dir, rel, n);
	dir[n] = '\0';
	return open_in_root(root, n > 0 ? dir : ".", O_PATH | O_DIRECTORY);
}

static void
write_all(int fd, const uint8_t *p, uint64_t n, const char *name)
{
	while (n > 0) {
		ssize_t k = write(fd, p, n > (1u << 30) ? (1u << 30) : n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			fail("unpacking %s: %s (is --memory large enough for "
			     "the image?)",
			    name, k < 0 ? strerror(errno) : "short write");
		p += k;
		n -= (uint64_t)k;
	}
}

static void
unpack_entry(int root, const struct ward_cpio_entry *e, const char *rel)
{
	char dir[4096];
	const char *base;
	int d, fd;
	mode_t perm = e->mode & 07777;

	if ((d = parent_of(root, rel, dir, sizeof(dir), &base)) < 0)
		fail("the image's ramdisk has an entry that cannot be placed: "
		     "%s",
		    ward_quotes(e->name));
	switch (e->mode & S_IFMT) {
	case S_IFDIR:
		if (mkdirat(d, base, perm) != 0 && errno != EEXIST)
			fail("unpacking %s: %s", ward_quotes(e->name),
			    strerror(errno));
		if ((fd = openat(d, base,
		         O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) <
		        0 ||
		    fchmod(fd, perm) != 0)
			fail("unpacking %s: %s", ward_quotes(e->name),
			    strerror(errno));
		close(fd);
		break;
	case S_IFREG:
		/* a later entry of the same name replaces an earlier one */
		if (unlinkat(d, base, 0) != 0 && errno != ENOENT &&
		    errno != EISDIR)
			fail("unpacking %s: %s", ward_quotes(e->name),
			    strerror(errno));
		if ((fd = openat(d, base,
		         O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		         0600)) < 0)
			fail("unpacking %s: %s", ward_quotes(e->name),
			    strerror(errno));
		write_all(fd, e->data, e->size, e->name);
		if (fchmod(fd, perm) != 0)
			fail("unpacking %s: %s", ward_quotes(e->name),
			    strerror(errno));
		close(fd);
		break;
	case S_IFLNK: {
		char target[4096];

		if (e->size == 0 || e->size >= sizeof(target) ||
		    memchr(e->data, '\0', e->size) != NULL)
			fail("the image's symlink %s has a bad target",
			    ward_quotes(e->name));
		memcpy(target, e->data, e->size);
		target[e->size] = '\0';
		unlinkat(d, base, 0);
		if (symlinkat(target, d, base) != 0)
			fail("unpacking %s: %s", ward_quotes(e->name),
			    strerror(errno));
		break;
	}
	default:
		/* devices, fifos, sockets: /dev is made at start, as on Nitro */
		break;
	}
	close(d);
}

static void
unpack(int root, const uint8_t *p, size_t n)
{
	struct ward_cpio_reader rd;
	struct ward_cpio_entry e;
	int r;

	if (n < 6 || memcmp(p, "070701", 6) != 0)
		fail("the image's customer ramdisk is not a cpio newc archive "
		     "(compressed ramdisks are not supported by the sandbox)");
	ward_cpio_reader_init(&rd, p, n);
	while ((r = ward_cpio_next(&rd, &e)) == 1) {
		const char *nm =
		    strncmp(e.name, "./", 2) == 0 ? e.name + 2 : e.name;

		if (strncmp(nm, "rootfs/", 7) != 0 || nm[7] == '\0')
			continue; /* cmd, env, rootfs itself */
		unpack_entry(root, &e, nm + 7);
	}
	if (r < 0)
		fail("the image's customer ramdisk is malformed: %s",
		    ward_errmsg());
}

/* ---- the file system view ------------------------------------------------ */

/* A directory at rel inside root that is really a directory (an image may
 * ship "dev" as a symlink; mounting through it would land elsewhere). */
static void
real_dir(int root, const char *rel)
{
	char dir[512];
	const char *base;
	struct stat st;
	int d;

	if ((d = parent_of(root, rel, dir, sizeof(dir), &base)) < 0)
		fail("/%s: %s", rel, strerror(errno));
	if (fstatat(d, base, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    !S_ISDIR(st.st_mode) && unlinkat(d, base, 0) != 0)
		fail("/%s: %s", rel, strerror(errno));
	if (mkdirat(d, base, 0755) != 0 && errno != EEXIST)
		fail("/%s: %s", rel, strerror(errno));
	close(d);
}

static void
do_mount(const char *src, const char *dst, const char *type,
    unsigned long flags, const char *data)
{
	if (mount(src, dst, type, flags, data) != 0)
		fail("mount %s on %s: %s", type ? type : src, dst,
		    strerror(errno));
}

static void
bind_node(const char *host, const char *dst)
{
	int fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);

	if (fd < 0)
		fail("%s: %s", dst, strerror(errno));
	close(fd);
	do_mount(host, dst, NULL, MS_BIND, NULL);
}

static void
make_view(struct enc_child *c, int root)
{
	static const char *const nodes[] = {
	    "null", "zero", "full", "random", "urandom"};
	char p[512], q[512], opts[64];

	real_dir(root, "dev");
	real_dir(root, "proc");
	real_dir(root, "tmp");
	real_dir(root, "run");
	real_dir(root, "run/ward");
	real_dir(root, "run/ward/vsock");
	real_dir(root, "run/ward/vsock/3");
	snprintf(p, sizeof(p), "run/ward/vsock/%u", c->cid);
	real_dir(root, p);

	do_mount("proc", at("/proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC,
	    NULL);
	do_mount("dev", at("/dev"), "tmpfs", MS_NOSUID | MS_NOEXEC,
	    "size=256k,nr_inodes=256,mode=0755");
	for (size_t i = 0; i < sizeof(nodes) / sizeof(nodes[0]); i++) {
		snprintf(p, sizeof(p), "/dev/%s", nodes[i]);
		snprintf(q, sizeof(q), "%s/dev/%s", stage, nodes[i]);
		bind_node(p, q);
	}
	bind_node(c->nsm_path, at("/dev/nsm"));
	if (mkdir(at("/dev/shm"), 01777) != 0)
		fail("/dev/shm: %s", strerror(errno));
	snprintf(opts, sizeof(opts), "size=%llum,mode=1777",
	    (unsigned long long)c->memory_mib);
	do_mount("shm", at("/dev/shm"), "tmpfs", MS_NOSUID | MS_NODEV, opts);
	if (symlink("/proc/self/fd", at("/dev/fd")) != 0 ||
	    symlink("/proc/self/fd/0", at("/dev/stdin")) != 0 ||
	    symlink("/proc/self/fd/1", at("/dev/stdout")) != 0 ||
	    symlink("/proc/self/fd/2", at("/dev/stderr")) != 0)
		fail("/dev links: %s", strerror(errno));

	/* the parent's vsock ports: reachable, but nobody here may add one */
	do_mount(c->vsock_parent, at("/run/ward/vsock/3"), NULL, MS_BIND, NULL);
	do_mount(NULL, at("/run/ward/vsock/3"), NULL,
	    MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
	    NULL);
	snprintf(q, sizeof(q), "%s/run/ward/vsock/%u", stage, c->cid);
	do_mount(c->vsock_own, q, NULL, MS_BIND, NULL);
	do_mount(NULL, q, NULL,
	    MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	{
		int fd = open(at("/run/ward/vsock/local-cid"),
		    O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
		    0444);
		int n = snprintf(q, sizeof(q), "%u\n", c->cid);

		if (fd < 0 || write(fd, q, (size_t)n) != n)
			fail("/run/ward/vsock/local-cid: %s", strerror(errno));
		close(fd);
	}
}

static void
loopback_up(void)
{
	struct ifreq ifr = {0};
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) != 0)
		fail("loopback: %s", strerror(errno));
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0)
		fail("bringing up loopback: %s", strerror(errno));
	close(s);
}

static void
enter_root(void)
{
	if (chdir(stage) != 0)
		fail("chdir %s: %s", stage, strerror(errno));
	/* pivot_root(".", "."): the old root stacks under the new one and
	 * is then detached, so nothing of the host's tree stays reachable */
	if (syscall(SYS_pivot_root, ".", ".") != 0)
		fail("pivot_root: %s", strerror(errno));
	if (umount2(".", MNT_DETACH) != 0)
		fail("detaching the host's tree: %s", strerror(errno));
	if (chdir("/") != 0)
		fail("chdir /: %s", strerror(errno));
}

/* ---- privileges ----------------------------------------------------------- */

static void
drop_capabilities(void)
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2] = {{0}};

	/* uid 0 must not regain capabilities on exec, ever */
	if (prctl(PR_SET_SECUREBITS,
	        SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
	            SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED |
	            SECBIT_NO_CAP_AMBIENT_RAISE |
	            SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED,
	        0, 0, 0) != 0)
		fail("securebits: %s", strerror(errno));
	for (int cap = 0; cap <= 63; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 &&
		    errno != EINVAL)
			fail(
			    "dropping capability %d: %s", cap, strerror(errno));
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0)
		fail("ambient capabilities: %s", strerror(errno));
	if (syscall(SYS_capset, &h, d) != 0)
		fail("capset: %s", strerror(errno));
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		fail("no_new_privs: %s", strerror(errno));
}

/*
 * Calls an enclave has no business making: they reach past the sandbox
 * (ptrace, process_vm_*, kcmp), change the file system view after set-up
 * (mount and the new mount API, pivot_root, chroot), the kernel
 * (modules, kexec, bpf, perf, keyrings, swap, reboot, clock, syslog,
 * acct, quotactl) or make new namespaces; io_uring and userfaultfd are
 * denied as the usual means of exploiting kernel bugs. EPERM, as a
 * kernel without the feature would say; clone3 gets ENOSYS so libc falls
 * back to clone, whose flags a filter can see.
 */
static const char *const denied[] = {"ptrace", "process_vm_readv",
    "process_vm_writev", "kcmp", "mount", "umount", "umount2", "pivot_root",
    "chroot", "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount",
    "fspick", "mount_setattr", "init_module", "finit_module", "delete_module",
    "create_module", "kexec_load", "kexec_file_load", "bpf", "perf_event_open",
    "keyctl", "add_key", "request_key", "unshare", "setns", "swapon", "swapoff",
    "reboot", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    "syslog", "acct", "quotactl", "quotactl_fd", "open_by_handle_at",
    "name_to_handle_at", "userfaultfd", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "iopl", "ioperm", "lookup_dcookie", "vhangup",
    "nfsservctl", "uselib", "personality", "fanotify_init", "sethostname",
    "setdomainname"};

static void
load_seccomp(void)
{
	static const unsigned long ns[] = {CLONE_NEWUSER, CLONE_NEWNS,
	    CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWIPC, CLONE_NEWUTS,
	    CLONE_NEWCGROUP, CLONE_NEWTIME};
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	int rc = 0;

	if (ctx == NULL)
		fail("seccomp: cannot allocate a filter");
	for (size_t i = 0; rc == 0 && i < sizeof(denied) / sizeof(denied[0]);
	     i++) {
		int nr = seccomp_syscall_resolve_name(denied[i]);

		if (nr != __NR_SCMP_ERROR)
			rc =
			    seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
	}
	for (size_t i = 0; rc == 0 && i < sizeof(ns) / sizeof(ns[0]); i++)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM),
		    SCMP_SYS(clone), 1,
		    SCMP_A0(SCMP_CMP_MASKED_EQ, ns[i], ns[i]));
	if (rc == 0)
		rc = seccomp_rule_add(
		    ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	/* real vsock would reach past the network namespace (AF_VSOCK is
	 * not namespaced): the enclave's vsock is the emulation's sockets */
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT),
		    SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_EQ, AF_VSOCK, 0));
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT),
		    SCMP_SYS(socketpair), 1, SCMP_A0(SCMP_CMP_EQ, AF_VSOCK, 0));
	if (rc == 0)
		rc = seccomp_load(ctx);
	seccomp_release(ctx);
	if (rc != 0)
		fail("seccomp: %s", strerror(-rc));
}

static void
limits(const struct enc_child *c)
{
	struct rlimit none = {0, 0};

	/* no core dumps: they would put enclave memory on a disk */
	if (setrlimit(RLIMIT_CORE, &none) != 0)
		fail("RLIMIT_CORE: %s", strerror(errno));
	if (c->rlimits) {
		struct rlimit np = {c->pids_max, c->pids_max};

		/* RLIMIT_AS is set in the command's process just before exec:
		 * PID 1, a copy of the monitor, already maps more than that */
		if (setrlimit(RLIMIT_NPROC, &np) != 0)
			fail("rlimits: %s", strerror(errno));
	}
	if (sched_setaffinity(0, sizeof(c->cpus), &c->cpus) != 0)
		fail("pinning to the enclave's CPUs: %s", strerror(errno));
}

/* PATH for execvpe comes from the caller's environment, so take the
 * image's (ward-init does the same). */
static void
use_path(char **env)
{
	const char *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
	                   "/sbin:/bin";

	for (size_t i = 0; env[i] != NULL; i++)
		if (strncmp(env[i], "PATH=", 5) == 0)
			path = env[i] + 5;
	setenv("PATH", path, 1);
}

void
enc_child_main(struct enc_child *c)
{
	int root, status = 0, devnull;
	pid_t cmd, w;
	char go = 0;

	err_fd = c->err_fd;
	stage = c->stage;
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
		fail("PR_SET_PDEATHSIG: %s", strerror(errno));
	/* the monitor maps our ids and fills our cgroups, then says go (and
	 * later, once it has measured the image, 'x': the command may run) */
	if (read(c->sync_fd, &go, 1) != 1 || go != 'g')
		_exit(125);
	if (unshare(CLONE_NEWCGROUP) != 0)
		fail("cgroup namespace: %s", strerror(errno));
	/* no supplementary groups: as root they would be the host's */
	if (setgroups(0, NULL) != 0 && errno != EPERM)
		fail("dropping supplementary groups: %s", strerror(errno));
	if (setresgid(0, 0, 0) != 0 || setresuid(0, 0, 0) != 0)
		fail("becoming root in the enclave's user namespace: %s",
		    strerror(errno));
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
		fail("making mounts private: %s", strerror(errno));
	{
		char opts[96];

		snprintf(opts, sizeof(opts), "size=%llum,mode=0755",
		    (unsigned long long)c->memory_mib);
		if (mount("ward-enclave", stage, "tmpfs", MS_NOSUID | MS_NODEV,
		        opts) != 0)
			fail("mount tmpfs on %s: %s%s", stage, strerror(errno),
			    errno == EACCES
			        ? " (the enclave's root is another uid on the "
			          "host: the run directory and every directory "
			          "above it must be searchable by all)"
			        : "");
	}
	if ((root = open(stage, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
		fail("%s: %s", stage, strerror(errno));
	unpack(root, c->ramdisk, c->ramdisk_len);
	/* this process's copy of the image: not the enclave's to keep */
	enc_image_release(&c->eif, c->eif_len);
	c->ramdisk = NULL;
	make_view(c, root);
	close(root);
	loopback_up();
	if (sethostname("enclave", 7) != 0)
		fail("hostname: %s", strerror(errno));
	enter_root();
	limits(c);

	/* stdin from /dev/null; stdout and stderr are the console */
	if ((devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0 ||
	    dup2(devnull, 0) < 0 || dup2(c->console_fd, 1) < 0 ||
	    dup2(c->console_fd, 2) < 0)
		fail("console: %s", strerror(errno));
	ward_close_fds_except(3, (const int[]){err_fd, c->sync_fd}, 2);
	drop_capabilities();
	load_seccomp();
	/* nobody in here may read PID 1's memory, a copy of the monitor's */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	if ((cmd = fork()) < 0)
		fail("fork: %s", strerror(errno));
	if (cmd == 0) {
		sigset_t none;

		/* the command starts as on Nitro: no signal blocked or
		 * ignored (the monitor blocks some and ignores SIGPIPE) */
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		/* the raw call: libc refuses to touch its own real-time
		 * signals, which an instrumented monitor may have ignored */
		for (int sig = 1; sig < NSIG; sig++) {
			struct {
				void (*handler)(int);
				unsigned long flags;
				void (*restorer)(void);
				uint64_t mask;
			} dfl = {SIG_DFL, 0, NULL, 0};

			if (sig != SIGKILL && sig != SIGSTOP)
				syscall(SYS_rt_sigaction, sig, &dfl, NULL, 8);
		}
		setsid();
		prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
		if (c->rlimits) {
			struct rlimit as = {
			    c->memory_mib << 20, c->memory_mib << 20};

			if (setrlimit(RLIMIT_AS, &as) != 0)
				fail("RLIMIT_AS: %s", strerror(errno));
		}
		use_path(c->env);
		/* nothing of the image runs before the monitor's measurement
		 * stands; without its 'x' (it killed us, or died) not at all */
		if (read(c->sync_fd, &go, 1) != 1 || go != 'x')
			_exit(125);
		execvpe(c->cmd[0], c->cmd, c->env);
		fail("the image's command %s cannot be run: %s",
		    ward_quotes(c->cmd[0]), strerror(errno));
	}
	close(err_fd);
	err_fd = -1;
	close(c->sync_fd);
	/* PID 1 reaps every orphan until the command itself exits */
	while ((w = wait(&status)) != cmd)
		if (w < 0 && errno != EINTR)
			break;
	if (WIFSIGNALED(status)) {
		fprintf(stderr,
		    "ward: the enclave's command was killed by "
		    "signal %d\n",
		    WTERMSIG(status));
		_exit(128 + WTERMSIG(status));
	}
	_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 125);
}
