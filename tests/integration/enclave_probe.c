/*
 * enclave_probe: the workload the enclave tests run inside sandbox
 * enclaves (static, libc only, so an image needs nothing else).
 *
 *   serve PORT            listen on this enclave's vsock PORT; answer every
 *                         connection with "ready\n"
 *   isolate TCPPORT FILE  try to get out, one way after another; print
 *                         "held NAME: why" or "ESCAPED NAME: how" per try;
 *                         exit 0 only when every try was held
 *   memhog                allocate and touch memory until killed
 *   forkbomb              fork until refused; print how many
 *   relay PORT CMD...     run CMD, send its stdout to the parent's vsock PORT
 *   sink PORT FILE        (on the host) take one connection on the
 *                         parent's vsock PORT and write it to FILE
 *   connect CID PORT      (on the host) print what CID:PORT answers
 *
 * vsock here is ward's emulation (include/ward/transport.h): the socket
 * for CID:PORT is <run>/vsock/<CID>/<PORT>, <run> = /run/ward inside an
 * enclave and $WARD_RUN_DIR on the host.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define TMPFS_MAGIC_ 0x01021994

static int failures;

static void
held(const char *name, const char *fmt, int err)
{
	printf("held %s: %s%s%s\n", name, fmt, err ? ": " : "",
	    err ? strerror(err) : "");
}

static void
escaped(const char *name, const char *how)
{
	printf("ESCAPED %s: %s\n", name, how);
	failures++;
}

static const char *
run_dir(void)
{
	const char *r = getenv("WARD_RUN_DIR");

	return r != NULL && r[0] ? r : "/run/ward";
}

static unsigned
local_cid(void)
{
	char p[256], line[32] = "";
	FILE *f;

	snprintf(p, sizeof(p), "%s/vsock/local-cid", run_dir());
	if ((f = fopen(p, "r")) == NULL)
		return 3;
	if (fgets(line, sizeof(line), f) == NULL)
		line[0] = '\0';
	fclose(f);
	return (unsigned)strtoul(line, NULL, 10);
}

static int
vsock_addr(unsigned cid, unsigned port, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	return snprintf(sa->sun_path, sizeof(sa->sun_path), "%s/vsock/%u/%u",
	           run_dir(), cid, port) >= (int)sizeof(sa->sun_path)
	    ? -1
	    : 0;
}

static int
vsock_listen(unsigned port)
{
	struct sockaddr_un sa;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	if (fd < 0 || vsock_addr(local_cid(), port, &sa) != 0)
		return -1;
	unlink(sa.sun_path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    chmod(sa.sun_path, 0666) != 0 || listen(fd, 64) != 0)
		return -1;
	return fd;
}

static int
serve(unsigned port)
{
	int l = vsock_listen(port);

	if (l < 0) {
		perror("probe serve: listen");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	for (;;) {
		int c = accept(l, NULL, NULL);

		if (c < 0)
			continue;
		if (write(c, "ready\n", 6) != 6)
			perror("probe serve: write");
		close(c);
	}
}

static int
isolate(int tcp_port, const char *host_file)
{
	struct sockaddr_in in = {.sin_family = AF_INET};
	struct statfs sf;
	char line[256];
	int fd, n;
	FILE *f;
	pid_t pid;

	/* the host's loopback: this network namespace has its own */
	in.sin_port = htons((uint16_t)tcp_port);
	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&in, sizeof(in)) == 0)
		escaped("tcp", "connected to the host's loopback listener");
	else
		held("tcp", "connect 127.0.0.1", errno);
	if (fd >= 0)
		close(fd);

	if ((fd = open(host_file, O_RDONLY)) >= 0) {
		escaped("host-file", host_file);
		close(fd);
	} else {
		held("host-file", host_file, errno);
	}

	/* only this enclave's processes: PID 1 (init) and this probe */
	n = 0;
	for (pid = 1; pid < 4194304 && n < 100; pid++) {
		char p[64];

		snprintf(p, sizeof(p), "/proc/%d", (int)pid);
		if (access(p, F_OK) == 0)
			n++;
		if (pid > 1000 && n > 0)
			break;
	}
	if (n > 3 || getpid() > 10)
		escaped("processes", "sees more than its own processes");
	else
		held("processes", "only the enclave's own PIDs are visible", 0);

	if (ptrace(PTRACE_ATTACH, 1, NULL, NULL) == 0)
		escaped("ptrace", "attached to PID 1");
	else
		held("ptrace", "PTRACE_ATTACH 1", errno);
	if ((pid = fork()) == 0)
		_exit(ptrace(PTRACE_TRACEME, 0, NULL, NULL) == 0 ? 0 : 1);
	waitpid(pid, &n, 0);
	if (WIFEXITED(n) && WEXITSTATUS(n) == 0)
		escaped("ptrace", "PTRACE_TRACEME succeeded");

	if (mount("none", "/tmp", "tmpfs", 0, NULL) == 0)
		escaped("mount", "mounted a tmpfs");
	else
		held("mount", "mount tmpfs", errno);
	if (umount2("/proc", MNT_DETACH) == 0)
		escaped("mount", "unmounted /proc");

	if (syscall(SYS_finit_module, 0, "", 0) == 0 || errno != EPERM)
		escaped("module", "finit_module was not refused with EPERM");
	else
		held("module", "finit_module", errno);
	if (syscall(SYS_init_module, NULL, 0, "") == 0 || errno != EPERM)
		escaped("module", "init_module was not refused with EPERM");
	if (syscall(SYS_kexec_load, 0, 0, NULL, 0) == 0 || errno != EPERM)
		escaped("kexec", "kexec_load was not refused with EPERM");
	else
		held("kexec", "kexec_load", errno);
	if (syscall(SYS_bpf, 0, NULL, 0) == 0 || errno != EPERM)
		escaped("bpf", "bpf was not refused with EPERM");
	else
		held("bpf", "bpf", errno);
	if (syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0) == 0 ||
	    errno != EPERM)
		escaped("perf", "perf_event_open was not refused with EPERM");
	else
		held("perf", "perf_event_open", errno);
	if (syscall(SYS_keyctl, 0, 0, 0, 0, 0) == 0 || errno != EPERM)
		escaped("keyctl", "keyctl was not refused with EPERM");
	else
		held("keyctl", "keyctl", errno);
	if (unshare(CLONE_NEWUSER) == 0)
		escaped("unshare", "made a new user namespace");
	else
		held("unshare", "unshare(CLONE_NEWUSER)", errno);

	/* writes: the root is the tmpfs; the parent's vsock ports are
	 * read-only; the kernel's settings are not ours */
	if (statfs("/", &sf) != 0 || sf.f_type != TMPFS_MAGIC_)
		escaped("write", "/ is not the enclave's tmpfs");
	else
		held("write", "/ is the enclave's tmpfs", 0);
	snprintf(line, sizeof(line), "%s/vsock/3/intruder", run_dir());
	if ((fd = open(line, O_WRONLY | O_CREAT, 0600)) >= 0) {
		escaped("write", "created a file among the parent's ports");
		close(fd);
	} else {
		held("write", "the parent's vsock directory", errno);
	}
	if ((fd = open("/proc/sys/kernel/hostname", O_WRONLY)) >= 0 &&
	    write(fd, "x", 1) == 1)
		escaped("write", "changed a kernel setting");
	else
		held("write", "/proc/sys/kernel/hostname", errno);
	if (fd >= 0)
		close(fd);

	/* real vsock is not namespaced: the filter refuses it */
	if ((fd = socket(AF_VSOCK, SOCK_STREAM, 0)) >= 0) {
		escaped("vsock", "made an AF_VSOCK socket");
		close(fd);
	} else {
		held("vsock", "socket(AF_VSOCK)", errno);
	}

	/* no capabilities, no groups, no signals blocked or ignored, and
	 * the filter in force */
	if ((f = fopen("/proc/self/status", "r")) != NULL) {
		while (fgets(line, sizeof(line), f) != NULL) {
			if (strncmp(line, "CapEff:", 7) == 0 ||
			    strncmp(line, "CapBnd:", 7) == 0) {
				if (strtoull(line + 7, NULL, 16) != 0)
					escaped("capabilities", line);
				else
					held("capabilities", "none", 0);
			}
			if (strncmp(line, "Groups:", 7) == 0) {
				if (strspn(line + 7, " \t\n") !=
				    strlen(line + 7))
					escaped("groups", line);
				else
					held("groups",
					    "no supplementary groups", 0);
			}
			if ((strncmp(line, "SigBlk:", 7) == 0 ||
			        strncmp(line, "SigIgn:", 7) == 0) &&
			    strtoull(line + 7, NULL, 16) != 0)
				escaped("signals", line);
			if (strncmp(line, "Seccomp:", 8) == 0 &&
			    strtol(line + 8, NULL, 10) != 2)
				escaped("seccomp", "no filter in force");
			if (strncmp(line, "NoNewPrivs:", 11) == 0 &&
			    strtol(line + 11, NULL, 10) != 1)
				escaped("no_new_privs", "not set");
		}
		fclose(f);
	}
	printf("%s\n", failures ? "SOME ESCAPED" : "ALL HELD");
	fflush(stdout);
	return failures ? 1 : 0;
}

static int
memhog(void)
{
	size_t total = 0;

	for (;;) {
		char *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (p == MAP_FAILED) {
			printf("memhog: mmap refused after %zu MiB\n", total);
			fflush(stdout);
			return 3;
		}
		memset(p, 0xa5, 1 << 20);
		total++;
		if (total % 64 == 0) {
			printf("memhog: %zu MiB\n", total);
			fflush(stdout);
		}
	}
}

static int
forkbomb(void)
{
	unsigned n = 0;

	for (;;) {
		pid_t p = fork();

		if (p == 0) {
			pause();
			_exit(0);
		}
		if (p < 0) {
			printf("forkbomb: refused after %u: %s\n", n,
			    strerror(errno));
			fflush(stdout);
			return 0;
		}
		n++;
	}
}

static int
relay(unsigned port, char **cmd)
{
	struct sockaddr_un sa;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0), status;
	pid_t pid;

	if (fd < 0 || vsock_addr(3, port, &sa) != 0 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		perror("probe relay: connect");
		return 1;
	}
	if ((pid = fork()) == 0) {
		dup2(fd, 1);
		execv(cmd[0], cmd);
		perror("probe relay: exec");
		_exit(127);
	}
	close(fd);
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

static int
sink(unsigned port, const char *path)
{
	int l = vsock_listen(port), c, out;
	char buf[65536];
	ssize_t k;

	if (l < 0) {
		perror("probe sink: listen");
		return 1;
	}
	printf("listening\n");
	fflush(stdout);
	if ((c = accept(l, NULL, NULL)) < 0 ||
	    (out = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644)) < 0)
		return 1;
	while ((k = read(c, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)k) != k)
			return 1;
	close(out);
	return k == 0 ? 0 : 1;
}

static int
connect_to(unsigned cid, unsigned port)
{
	struct sockaddr_un sa;
	char buf[256];
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ssize_t k;

	if (fd < 0 || vsock_addr(cid, port, &sa) != 0 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		perror("probe connect");
		return 1;
	}
	while ((k = read(fd, buf, sizeof(buf))) > 0)
		if (write(1, buf, (size_t)k) != k)
			return 1;
	return k == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 3 && strcmp(argv[1], "serve") == 0)
		return serve((unsigned)strtoul(argv[2], NULL, 10));
	if (argc == 4 && strcmp(argv[1], "isolate") == 0)
		return isolate((int)strtol(argv[2], NULL, 10), argv[3]);
	if (argc == 2 && strcmp(argv[1], "memhog") == 0)
		return memhog();
	if (argc == 2 && strcmp(argv[1], "forkbomb") == 0)
		return forkbomb();
	if (argc >= 4 && strcmp(argv[1], "relay") == 0)
		return relay((unsigned)strtoul(argv[2], NULL, 10), argv + 3);
	if (argc == 4 && strcmp(argv[1], "connect") == 0)
		return connect_to((unsigned)strtoul(argv[2], NULL, 10),
		    (unsigned)strtoul(argv[3], NULL, 10));
	if (argc == 4 && strcmp(argv[1], "sink") == 0)
		return sink((unsigned)strtoul(argv[2], NULL, 10), argv[3]);
	fprintf(stderr,
	    "usage: enclave_probe serve PORT | isolate TCPPORT "
	    "FILE | memhog | forkbomb | relay PORT CMD... | sink "
	    "PORT FILE | connect CID PORT\n");
	return 2;
}
