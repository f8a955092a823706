/*
 * ward-init: the enclave's PID 1 on Nitro hardware, the bootstrap ramdisk's
 * /init (nitro.md §1.3, §7.2). It does what AWS's bootstrap init does, in
 * a static binary with nothing but libc:
 *
 *   mount devtmpfs on /dev; load /nsm.ko if present (finit_module);
 *   tell the parent the enclave is up (vsock CID 3 port 9000: send 0xB7,
 *   wait for the echo); read /env and /cmd (one entry per line); mount
 *   proc, sysfs, devtmpfs and tmpfs inside /rootfs; chroot there; run the
 *   command with that environment; reap orphans as PID 1 must; when the
 *   command exits, sync and reboot (which ends the enclave).
 *
 * It is built -static without sanitizers and embedded into ward, which
 * writes it into every image it builds; its bytes are part of PCR0/PCR1.
 * The sandbox runtime does not use it (it reads /cmd and /env itself).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define HEARTBEAT 0xB7
#define HEARTBEAT_CID 3 /* the parent instance */
#define HEARTBEAT_PORT 9000
#define LIST_MAX 4096 /* lines in /cmd or /env */
#define FILE_MAX (1 << 20)

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void die(const char *fmt, ...)
    __attribute__((noreturn, format(printf, 1, 2)));

static void
say(const char *fmt, ...)
{
	va_list ap;

	fputs("ward-init: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void __attribute__((noreturn)) die(const char *fmt, ...)
{
	va_list ap;

	fputs("ward-init: fatal: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	sync();
	if (getpid() == 1)
		reboot(RB_AUTOBOOT);
	exit(1);
}

static void
mount_fs(const char *src, const char *dst, const char *type,
    unsigned long flags, const char *data)
{
	if (mkdir(dst, 0755) != 0 && errno != EEXIST)
		die("mkdir %s: %s", dst, strerror(errno));
	if (mount(src, dst, type, flags, data) != 0 && errno != EBUSY)
		die("mount %s on %s: %s", type, dst, strerror(errno));
}

/* Nice to have (pty, shm, cgroups): a kernel without it still boots. */
static void
mount_opt(const char *src, const char *dst, const char *type,
    unsigned long flags, const char *data)
{
	if ((mkdir(dst, 0755) != 0 && errno != EEXIST) ||
	    (mount(src, dst, type, flags, data) != 0 && errno != EBUSY))
		say("mount %s on %s: %s (continuing)", type, dst,
		    strerror(errno));
}

static void
load_nsm(void)
{
	int fd = open("/nsm.ko", O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		if (errno != ENOENT)
			say("/nsm.ko: %s", strerror(errno));
		return;
	}
	if (syscall(SYS_finit_module, fd, "", 0) != 0 && errno != EEXIST)
		die("loading /nsm.ko: %s", strerror(errno));
	close(fd);
	/* /nsm.ko is no longer needed; the ramdisk is in memory anyway */
	unlink("/nsm.ko");
}

/* The boot handshake nitro-cli waits for (nitro.md §7.2). */
static void
heartbeat(void)
{
	struct sockaddr_vm sa = {
	    .svm_family = AF_VSOCK,
	    .svm_cid = HEARTBEAT_CID,
	    .svm_port = HEARTBEAT_PORT,
	};
	unsigned char b = HEARTBEAT;
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		say("no vsock (%s): not on Nitro? continuing", strerror(errno));
		return;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    write(fd, &b, 1) != 1 || read(fd, &b, 1) != 1 || b != HEARTBEAT)
		say("heartbeat to CID 3 port 9000 failed (%s); continuing",
		    strerror(errno));
	close(fd);
}

/* Read a file of lines into a NULL-terminated vector (empty lines left
 * out), in static storage that lives until exec: PID 1 allocates nothing
 * it would have to free. */
struct lines {
	char buf[FILE_MAX + 1];
	char *v[LIST_MAX + 1];
	size_t n;
};

static void
read_lines(const char *path, struct lines *l)
{
	char *p, *nl;
	size_t n = 0;
	ssize_t k;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		die("%s: %s", path, strerror(errno));
	while ((k = read(fd, l->buf + n, FILE_MAX - n)) > 0)
		n += (size_t)k;
	if (k < 0)
		die("%s: %s", path, strerror(errno));
	if (n == FILE_MAX)
		die("%s: larger than %d bytes", path, FILE_MAX);
	close(fd);
	l->buf[n] = '\0';
	l->n = 0;
	for (p = l->buf; p < l->buf + n; p = nl + 1) {
		if ((nl = memchr(p, '\n', (size_t)(l->buf + n - p))) == NULL)
			nl = l->buf + n;
		*nl = '\0';
		if (*p == '\0')
			continue;
		if (l->n == LIST_MAX)
			die("%s: more than %d lines", path, LIST_MAX);
		l->v[l->n++] = p;
	}
	l->v[l->n] = NULL;
}

/* /dev/fd, /dev/stdin... as a container runtime provides them (nginx
 * logs to /dev/stdout, bash's <(...) needs /dev/fd). */
static void
dev_links(void)
{
	static const char *const links[][2] = {
	    {"/proc/self/fd", "/rootfs/dev/fd"},
	    {"/proc/self/fd/0", "/rootfs/dev/stdin"},
	    {"/proc/self/fd/1", "/rootfs/dev/stdout"},
	    {"/proc/self/fd/2", "/rootfs/dev/stderr"},
	    {"pts/ptmx", "/rootfs/dev/ptmx"},
	};

	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++)
		if (symlink(links[i][0], links[i][1]) != 0 && errno != EEXIST)
			say("symlink %s: %s", links[i][1], strerror(errno));
}

/* execvpe searches the caller's PATH, not envp's: take the command's. */
static void
use_path(char **envp, size_t envc)
{
	const char *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
	                   "/sbin:/bin";

	for (size_t i = 0; i < envc; i++)
		if (strncmp(envp[i], "PATH=", 5) == 0)
			path = envp[i] + 5;
	setenv("PATH", path, 1);
}

int
main(void)
{
	static struct lines env, cmd;
	pid_t child, w;
	int status = 0;

	if (getpid() != 1)
		die("must run as PID 1, inside an enclave");
	mount_fs("dev", "/dev", "devtmpfs", MS_NOSUID, NULL);
	load_nsm();
	heartbeat();
	read_lines("/env", &env);
	read_lines("/cmd", &cmd);
	if (cmd.n == 0)
		die("/cmd is empty: nothing to run");
	mount_fs("proc", "/rootfs/proc", "proc",
	    MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	mount_fs("sysfs", "/rootfs/sys", "sysfs",
	    MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	mount_fs("dev", "/rootfs/dev", "devtmpfs", MS_NOSUID, NULL);
	mount_opt("devpts", "/rootfs/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
	    "ptmxmode=0666,mode=0620");
	mount_opt(
	    "shm", "/rootfs/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, NULL);
	mount_opt("cgroup2", "/rootfs/sys/fs/cgroup", "cgroup2",
	    MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	dev_links();
	mount_fs("tmpfs", "/rootfs/tmp", "tmpfs", MS_NOSUID | MS_NODEV, NULL);
	mount_fs("tmpfs", "/rootfs/run", "tmpfs", MS_NOSUID | MS_NODEV, NULL);
	if (chroot("/rootfs") != 0 || chdir("/") != 0)
		die("chroot /rootfs: %s", strerror(errno));
	if ((child = fork()) < 0)
		die("fork: %s", strerror(errno));
	if (child == 0) {
		setsid();
		use_path(env.v, env.n);
		execvpe(cmd.v[0], cmd.v, env.v);
		say("exec %s: %s", cmd.v[0], strerror(errno));
		_exit(127);
	}
	/* PID 1 reaps every orphan until the command itself exits. */
	while ((w = wait(&status)) != child) {
		if (w < 0 && errno != EINTR)
			break;
	}
	say("%s exited with status %d", cmd.v[0],
	    WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	sync();
	reboot(RB_AUTOBOOT);
	return 0;
}
