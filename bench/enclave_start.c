/*
 * bench/enclave_start: how long a command takes to bring up a program that
 * answers on a Unix socket, for bench/enclave.
 *
 *   enclave_start --socket PATH (--wait | --kill) [--stdout FILE]
 *       [--stderr FILE] [--timeout MS] -- CMD [ARG...]
 *
 * Reads CLOCK_MONOTONIC, forks and execs CMD in a process group of its own
 * (stdin and stdout from/to /dev/null unless --stdout, stderr inherited
 * unless --stderr), then connects to PATH every 200 us, retrying while it
 * is missing (ENOENT) or nothing listens (ECONNREFUSED), until a connection
 * reads "ready\n". Prints, on one line, the milliseconds from before the
 * fork to that answer, to the microsecond.
 *
 *   --wait  CMD starts something and exits (ward run-enclave): after the
 *           answer, wait for CMD to exit, and print its exit time as a
 *           second figure. CMD exiting non-zero is an error, at once.
 *   --kill  CMD is the server itself (unshare ... probe serve): after the
 *           answer, SIGKILL its process group and reap it. CMD exiting
 *           before the answer is an error.
 *
 * Gives up after --timeout ms (default 10000) for the answer, and as long
 * again for CMD to exit under --wait; on giving up, and on SIGINT or
 * SIGTERM, CMD's process group is killed. Exit status: 0 measured, 1
 * failed, 2 usage.
 *
 * Builds on its own: cc -O2 -Wall -Wextra -o enclave_start enclave_start.c
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define POLL_NS 200000ull /* 200 us between connect attempts */
#define REAP_MS 5000 /* after SIGKILL, how long the group may take */
#define ANSWER "ready\n"

static const char *progname = "enclave_start";
static volatile sig_atomic_t stop_sig;

static void
on_signal(int sig)
{
	stop_sig = sig;
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void
sleep_ns(uint64_t ns)
{
	struct timespec ts = {
	    .tv_sec = (time_t)(ns / 1000000000ull),
	    .tv_nsec = (long)(ns % 1000000000ull),
	};

	/* an EINTR cuts the sleep short; the callers recheck their deadline */
	nanosleep(&ts, NULL);
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: %s --socket PATH (--wait | --kill) [--stdout FILE]\n"
	    "           [--stderr FILE] [--timeout MS] -- CMD [ARG...]\n",
	    progname);
	exit(2);
}

static void
describe_status(int st, char *buf, size_t cap)
{
	if (WIFEXITED(st))
		snprintf(buf, cap, "exited with status %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, cap, "was killed by signal %d", WTERMSIG(st));
	else
		snprintf(buf, cap, "stopped (status 0x%x)", (unsigned)st);
}

/* waitpid() for pid, without blocking; 1 when it has ended (*st set). */
static int
reap_nohang(pid_t pid, int *st)
{
	pid_t w;

	while ((w = waitpid(pid, st, WNOHANG)) < 0 && errno == EINTR)
		;
	if (w < 0) {
		fprintf(stderr, "%s: waitpid: %s\n", progname, strerror(errno));
		exit(1);
	}
	return w == pid;
}

/*
 * SIGKILL CMD's process group and reap CMD. Under --kill we are a child
 * subreaper, so whatever of the group outlived CMD (the probe, PID 1 of
 * unshare's PID namespace) is ours to reap too; wait for all of it, so
 * the next round starts on a quiet machine.
 */
static void
kill_group(pid_t pid, bool reaped)
{
	uint64_t deadline = now_ns() + REAP_MS * 1000000ull;
	int st;

	if (kill(-pid, SIGKILL) != 0 && errno != ESRCH)
		fprintf(stderr, "%s: kill -%d: %s\n", progname, (int)pid,
		    strerror(errno));
	for (;;) {
		pid_t w = waitpid(-1, &st, WNOHANG);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == ECHILD)
			return;
		if (w < 0) {
			fprintf(stderr, "%s: waitpid: %s\n", progname,
			    strerror(errno));
			return;
		}
		if (w == pid)
			reaped = true;
		if (w > 0)
			continue;
		if (now_ns() > deadline) {
			fprintf(stderr,
			    "%s: %s still running %d ms after SIGKILL\n",
			    progname,
			    reaped ? "a process of the group is"
			           : "the command is",
			    REAP_MS);
			return;
		}
		sleep_ns(1000000);
	}
}

/* Give up: kill CMD's process group (unless CMD has been reaped), exit. */
static void
fail_kill(pid_t pid, bool reaped, int code)
{
	if (!reaped)
		kill_group(pid, false);
	exit(code);
}

/*
 * One attempt: connect to sa and read its answer until deadline.
 * Returns 1 answered "ready\n", 0 not listening yet (retry), -1 failed
 * (a message printed).
 */
static int
try_connect(const struct sockaddr_un *sa, uint64_t deadline)
{
	char buf[64];
	size_t got = 0;
	int fd, r = -1;

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		fprintf(stderr, "%s: socket: %s\n", progname, strerror(errno));
		return -1;
	}
	while (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) != 0) {
		if (errno == EINTR && !stop_sig)
			continue;
		/* EINTR here: a stop signal, which the caller acts on */
		if (errno == ENOENT || errno == ECONNREFUSED ||
		    errno == EINTR) {
			r = 0;
		} else {
			fprintf(stderr, "%s: connect %s: %s\n", progname,
			    sa->sun_path, strerror(errno));
		}
		goto out;
	}
	/* connected: the answer must be exactly "ready\n" */
	while (got < sizeof(buf)) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		uint64_t t = now_ns();
		ssize_t n;
		int k;

		if (stop_sig)
			goto out;
		if (t >= deadline) {
			fprintf(stderr, "%s: %s: connected, but no answer\n",
			    progname, sa->sun_path);
			goto out;
		}
		k = poll(&p, 1, (int)((deadline - t) / 1000000ull) + 1);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			fprintf(stderr, "%s: poll: %s\n", progname,
			    strerror(errno));
			goto out;
		}
		if (k == 0)
			continue;
		if ((n = read(fd, buf + got, sizeof(buf) - got)) < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "%s: read %s: %s\n", progname,
			    sa->sun_path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (memchr(buf, '\n', got) != NULL)
			break;
	}
	if (got == strlen(ANSWER) && memcmp(buf, ANSWER, got) == 0) {
		r = 1;
	} else {
		fprintf(stderr,
		    "%s: %s answered %zu bytes, not \"ready\\n\": "
		    "\"%.*s\"\n",
		    progname, sa->sun_path, got, (int)got, buf);
	}
out:
	close(fd);
	return r;
}

/* The child: its own process group, stdio redirected, exec; on failure
 * the errno goes up errfd (close-on-exec, so a good exec sends nothing). */
_Noreturn static void
child(char **cmd, const char *out, const char *err, int errfd)
{
	int e, fd;

	setpgid(0, 0);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	if ((fd = open("/dev/null", O_RDONLY)) < 0 || dup2(fd, 0) < 0)
		goto fail;
	close(fd);
	if ((fd = open(out != NULL ? out : "/dev/null",
	         O_WRONLY | O_CREAT | O_TRUNC, 0644)) < 0 ||
	    dup2(fd, 1) < 0)
		goto fail;
	close(fd);
	if (err != NULL) {
		if ((fd = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644)) < 0 ||
		    dup2(fd, 2) < 0)
			goto fail;
		close(fd);
	}
	execvp(cmd[0], cmd);
fail:
	e = errno;
	while (write(errfd, &e, sizeof(e)) < 0 && errno == EINTR)
		;
	_exit(127);
}

int
main(int argc, char **argv)
{
	const char *sock = NULL, *out = NULL, *err = NULL;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct sigaction sact = {.sa_handler = on_signal};
	char how[64];
	bool wait_mode = false, kill_mode = false, reaped = false;
	uint64_t timeout_ms = 10000, t0, t_ready, t_exit = 0, deadline;
	int i, pfd[2], e = 0, st = 0, r;
	ssize_t n;
	pid_t pid;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (strcmp(a, "--wait") == 0) {
			wait_mode = true;
		} else if (strcmp(a, "--kill") == 0) {
			kill_mode = true;
		} else if (i + 1 < argc && strcmp(a, "--socket") == 0) {
			sock = argv[++i];
		} else if (i + 1 < argc && strcmp(a, "--stdout") == 0) {
			out = argv[++i];
		} else if (i + 1 < argc && strcmp(a, "--stderr") == 0) {
			err = argv[++i];
		} else if (i + 1 < argc && strcmp(a, "--timeout") == 0) {
			char *end;

			errno = 0;
			timeout_ms = strtoull(argv[++i], &end, 10);
			if (errno != 0 || *end != '\0' || end == argv[i] ||
			    timeout_ms == 0 || timeout_ms > 3600000)
				usage();
		} else {
			usage();
		}
	}
	if (sock == NULL || wait_mode == kill_mode || i >= argc)
		usage();
	if (strlen(sock) >= sizeof(sa.sun_path)) {
		fprintf(stderr,
		    "%s: %s: longer than a socket path may be "
		    "(%zu bytes)\n",
		    progname, sock, sizeof(sa.sun_path) - 1);
		return 1;
	}
	memcpy(sa.sun_path, sock, strlen(sock) + 1);

	sigemptyset(&sact.sa_mask);
	if (sigaction(SIGINT, &sact, NULL) != 0 ||
	    sigaction(SIGTERM, &sact, NULL) != 0) {
		fprintf(
		    stderr, "%s: sigaction: %s\n", progname, strerror(errno));
		return 1;
	}
	if (kill_mode && prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
		fprintf(stderr, "%s: PR_SET_CHILD_SUBREAPER: %s\n", progname,
		    strerror(errno));
		return 1;
	}
	if (pipe2(pfd, O_CLOEXEC) != 0) {
		fprintf(stderr, "%s: pipe: %s\n", progname, strerror(errno));
		return 1;
	}

	t0 = now_ns();
	if ((pid = fork()) < 0) {
		fprintf(stderr, "%s: fork: %s\n", progname, strerror(errno));
		return 1;
	}
	if (pid == 0) {
		close(pfd[0]);
		child(argv + i, out, err, pfd[1]);
	}
	/* both sides set the group, so kill(-pid) works whoever runs first */
	setpgid(pid, pid);
	close(pfd[1]);
	while ((n = read(pfd[0], &e, sizeof(e))) < 0 && errno == EINTR)
		;
	close(pfd[0]);
	if (n > 0) {
		fprintf(stderr, "%s: %s: %s\n", progname, argv[i], strerror(e));
		fail_kill(pid, false, 1);
	}

	deadline = t0 + timeout_ms * 1000000ull;
	for (;;) {
		if (stop_sig)
			fail_kill(pid, reaped, 128 + stop_sig);
		if ((r = try_connect(&sa, deadline)) == 1)
			break;
		if (r < 0)
			fail_kill(pid, reaped, stop_sig ? 128 + stop_sig : 1);
		if (!reaped && reap_nohang(pid, &st)) {
			reaped = true;
			t_exit = now_ns();
			if (kill_mode || !WIFEXITED(st) ||
			    WEXITSTATUS(st) != 0) {
				describe_status(st, how, sizeof(how));
				fprintf(stderr,
				    "%s: %s %s before %s answered\n", progname,
				    argv[i], how, sock);
				fail_kill(pid, true, 1);
			}
		}
		if (now_ns() >= deadline) {
			fprintf(stderr, "%s: no answer on %s after %llu ms\n",
			    progname, sock, (unsigned long long)timeout_ms);
			fail_kill(pid, reaped, 1);
		}
		sleep_ns(POLL_NS);
	}
	t_ready = now_ns();

	if (kill_mode) {
		kill_group(pid, false);
	} else if (!reaped) {
		deadline = t_ready + timeout_ms * 1000000ull;
		while (!reap_nohang(pid, &st)) {
			if (stop_sig)
				fail_kill(pid, false, 128 + stop_sig);
			if (now_ns() >= deadline) {
				fprintf(stderr,
				    "%s: %s still running %llu ms after the "
				    "answer\n",
				    progname, argv[i],
				    (unsigned long long)timeout_ms);
				fail_kill(pid, false, 1);
			}
			sleep_ns(POLL_NS);
		}
		t_exit = now_ns();
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			describe_status(st, how, sizeof(how));
			fprintf(stderr, "%s: %s %s\n", progname, argv[i], how);
			return 1;
		}
	}

	if (wait_mode)
		printf("%.3f %.3f\n", (double)(t_ready - t0) / 1e6,
		    (double)(t_exit - t0) / 1e6);
	else
		printf("%.3f\n", (double)(t_ready - t0) / 1e6);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "%s: writing the result: %s\n", progname,
		    strerror(errno));
		return 1;
	}
	return 0;
}
