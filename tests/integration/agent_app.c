/*
 * The application agent.sh encrypts and runs inside a sandbox enclave
 * with `ward exec`: static, libc only, so the image needs no shell.
 *
 *   run echo WORDS...     "app: WORDS" on stdout, "app-err: WORDS" on stderr
 *   run exit N            exit with status N
 *   run env               the environment, one entry a line
 *   run ws IN OUT         read $WARD_WORKSPACE/IN, write it upper-cased to
 *                         $WARD_WORKSPACE/OUT; also read $WARD_APP/data.txt
 *   run slow SECONDS      "tick", sleep, "tock"
 *   run sleep SECONDS     "sleeping in <app dir's name>", sleep, "slept"
 *   run crash             SIGSEGV
 *   run big BYTES         BYTES of 'x' on stdout
 *   run straggler         leave a child holding stdout for 60 s, exit 0
 *   run ls-apps           the entries of the directory holding $WARD_APP
 *   run self              where this program was run from
 *   run evil [NAME]       what a host's program would do: write
 *                         $WARD_WORKSPACE/NAME (default evil-ran)
 *   run exec-ws FILE ARGS...  execv $WARD_WORKSPACE/FILE with ARGS (FILE
 *                         as argv[0]): a control that FILE runs at all
 *   run escape            fork a child that calls setsid(), closes its
 *                         output, and after 3 s writes
 *                         $WARD_WORKSPACE/escaped, then sleeps 60 s;
 *                         exit 0 once it has called setsid()
 *   run procs [N]         first fork N children that sleep 30 s; then
 *                         "proc PID STAT" for each process in /proc but
 *                         PID 1, this one and its parent (the agent), and
 *                         "procs COUNT"
 *   run mkfifo NAME       make a FIFO $WARD_WORKSPACE/NAME
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

static void
say(int fd, const char *s)
{
	size_t n = strlen(s);

	while (n > 0) {
		ssize_t k = write(fd, s, n);

		if (k <= 0) {
			if (k < 0 && errno == EINTR)
				continue;
			_exit(111);
		}
		s += k;
		n -= (size_t)k;
	}
}

static void
line(int fd, const char *a, const char *b)
{
	say(fd, a);
	say(fd, b);
	say(fd, "\n");
}

static int
die(const char *what)
{
	char buf[512];

	snprintf(
	    buf, sizeof(buf), "agent_app: %s: %s\n", what, strerror(errno));
	say(2, buf);
	return 1;
}

static int
read_all(const char *path, char *buf, size_t cap, size_t *len)
{
	int fd = open(path, O_RDONLY);
	ssize_t k;

	*len = 0;
	if (fd < 0)
		return -1;
	while ((k = read(fd, buf + *len, cap - *len)) > 0)
		*len += (size_t)k;
	close(fd);
	return k < 0 ? -1 : 0;
}

static int
ws(const char *in, const char *out)
{
	static char buf[1 << 20];
	char path[PATH_MAX], msg[128];
	const char *w = getenv("WARD_WORKSPACE"), *app = getenv("WARD_APP");
	size_t n, dn;
	int fd;

	if (w == NULL || app == NULL)
		return die("no WARD_WORKSPACE or WARD_APP");
	snprintf(path, sizeof(path), "%s/data.txt", app);
	if (read_all(path, buf, sizeof(buf), &dn) != 0)
		return die(path);
	snprintf(path, sizeof(path), "%s/%s", w, in);
	if (read_all(path, buf, sizeof(buf), &n) != 0)
		return die(path);
	for (size_t i = 0; i < n; i++)
		buf[i] = (char)toupper((unsigned char)buf[i]);
	snprintf(path, sizeof(path), "%s/%s", w, out);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644)) < 0)
		return die(path);
	if (write(fd, buf, n) != (ssize_t)n)
		return die(path);
	close(fd);
	snprintf(msg, sizeof(msg), "read %zu bytes, app data %zu bytes", n, dn);
	line(1, "app: ", msg);
	return 0;
}

static int
ls_apps(void)
{
	char dir[PATH_MAX], *slash;
	const char *app = getenv("WARD_APP");
	struct dirent *e;
	DIR *d;

	if (app == NULL || strlen(app) >= sizeof(dir))
		return die("no WARD_APP");
	snprintf(dir, sizeof(dir), "%s", app);
	if ((slash = strrchr(dir, '/')) == NULL)
		return die("WARD_APP has no parent");
	*slash = '\0';
	line(1, "self ", slash + 1);
	if ((d = opendir(dir)) == NULL)
		return die(dir);
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			line(1, "entry ", e->d_name);
	closedir(d);
	return 0;
}

/* $WARD_WORKSPACE/name */
static int
ws_path(const char *name, char *out, size_t cap)
{
	const char *w = getenv("WARD_WORKSPACE");

	if (w == NULL) {
		errno = ENOENT;
		return -1;
	}
	if ((size_t)snprintf(out, cap, "%s/%s", w, name) >= cap) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

static int
evil(const char *name)
{
	char path[PATH_MAX];
	int fd;

	if (ws_path(name, path, sizeof(path)) != 0 ||
	    (fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644)) < 0)
		return die("evil");
	say(fd, "a program the host chose ran in the enclave\n");
	close(fd);
	line(1, "evil ran: wrote ", path);
	return 0;
}

static int
escape(void)
{
	int p[2];
	char c = 0;
	pid_t pid;

	if (pipe(p) != 0)
		return die("pipe");
	if ((pid = fork()) < 0)
		return die("fork");
	if (pid == 0) {
		char path[PATH_MAX];
		int fd, nul = open("/dev/null", O_RDWR);

		if (setsid() < 0)
			_exit(1);
		/* hold nothing of the exec's: only the kill can end it */
		dup2(nul, 0);
		dup2(nul, 1);
		dup2(nul, 2);
		(void)!write(p[1], "x", 1);
		close(p[1]);
		sleep(3);
		if (ws_path("escaped", path, sizeof(path)) == 0 &&
		    (fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644)) >=
		        0) {
			say(fd, "I outlived my exec\n");
			close(fd);
		}
		sleep(60);
		_exit(0);
	}
	close(p[1]);
	if (read(p[0], &c, 1) != 1)
		return die("the child did not call setsid");
	{
		char buf[32];

		snprintf(buf, sizeof(buf), "%ld", (long)pid);
		line(1, "escaped child ", buf);
	}
	return 0;
}

static int
procs(unsigned children)
{
	pid_t self = getpid(), parent = getppid();
	unsigned n = 0;
	struct dirent *e;
	char msg[64];
	DIR *d;

	for (unsigned i = 0; i < children; i++) {
		pid_t pid = fork();

		if (pid < 0)
			return die("fork");
		if (pid == 0) {
			sleep(30);
			_exit(0);
		}
	}
	if ((d = opendir("/proc")) == NULL)
		return die("/proc");
	while ((e = readdir(d)) != NULL) {
		char *end, path[300], buf[512] = "";
		long pid = strtol(e->d_name, &end, 10);
		size_t len;

		if (*end != '\0' || end == e->d_name || pid == 1 ||
		    pid == (long)self || pid == (long)parent)
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		if (read_all(path, buf, sizeof(buf) - 1, &len) != 0)
			continue; /* gone meanwhile */
		buf[len] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		line(1, "proc ", buf);
		n++;
	}
	closedir(d);
	snprintf(msg, sizeof(msg), "%u", n);
	line(1, "procs ", msg);
	return 0;
}

int
main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "echo";

	if (strcmp(cmd, "echo") == 0) {
		char buf[4096] = "";
		size_t off = 0;

		for (int i = 2; i < argc && off < sizeof(buf); i++)
			off += (size_t)snprintf(buf + off, sizeof(buf) - off,
			    "%s%s", i > 2 ? " " : "", argv[i]);
		line(1, "app: ", buf);
		line(2, "app-err: ", buf);
		return 0;
	}
	if (strcmp(cmd, "exit") == 0 && argc > 2)
		return (int)strtol(argv[2], NULL, 10);
	if (strcmp(cmd, "env") == 0) {
		for (char **e = environ; *e != NULL; e++)
			line(1, "", *e);
		return 0;
	}
	if (strcmp(cmd, "ws") == 0 && argc > 3)
		return ws(argv[2], argv[3]);
	if (strcmp(cmd, "slow") == 0 && argc > 2) {
		line(1, "tick", "");
		sleep((unsigned)strtoul(argv[2], NULL, 10));
		line(1, "tock", "");
		return 0;
	}
	if (strcmp(cmd, "sleep") == 0 && argc > 2) {
		const char *app = getenv("WARD_APP"), *base;

		base = app != NULL && strrchr(app, '/') != NULL
		    ? strrchr(app, '/') + 1
		    : "?";
		line(1, "sleeping in ", base);
		sleep((unsigned)strtoul(argv[2], NULL, 10));
		line(1, "slept", "");
		return 0;
	}
	if (strcmp(cmd, "crash") == 0) {
		line(1, "crashing", "");
		raise(SIGSEGV);
		return 0;
	}
	if (strcmp(cmd, "big") == 0 && argc > 2) {
		static char buf[65536];
		unsigned long left = strtoul(argv[2], NULL, 10);

		memset(buf, 'x', sizeof(buf));
		while (left > 0) {
			size_t n = left < sizeof(buf) ? left : sizeof(buf);
			ssize_t k = write(1, buf, n);

			if (k <= 0)
				return die("write");
			left -= (unsigned long)k;
		}
		return 0;
	}
	if (strcmp(cmd, "straggler") == 0) {
		pid_t p = fork();

		if (p < 0)
			return die("fork");
		if (p == 0) {
			sleep(60);
			_exit(0);
		}
		line(1, "left a child behind", "");
		return 0;
	}
	if (strcmp(cmd, "ls-apps") == 0)
		return ls_apps();
	if (strcmp(cmd, "evil") == 0)
		return evil(argc > 2 ? argv[2] : "evil-ran");
	if (strcmp(cmd, "exec-ws") == 0 && argc > 2) {
		char path[PATH_MAX];

		if (ws_path(argv[2], path, sizeof(path)) != 0)
			return die("exec-ws");
		execv(path, argv + 2);
		return die(path);
	}
	if (strcmp(cmd, "escape") == 0)
		return escape();
	if (strcmp(cmd, "procs") == 0)
		return procs(
		    argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 0);
	if (strcmp(cmd, "mkfifo") == 0 && argc > 2) {
		char path[PATH_MAX];

		if (ws_path(argv[2], path, sizeof(path)) != 0 ||
		    mkfifo(path, 0644) != 0)
			return die("mkfifo");
		line(1, "made FIFO ", path);
		return 0;
	}
	if (strcmp(cmd, "self") == 0) {
		char cwd[PATH_MAX];

		if (getcwd(cwd, sizeof(cwd)) == NULL)
			return die("getcwd");
		line(1, "cwd ", cwd);
		line(1, "argv0 ", argv[0]);
		return 0;
	}
	line(2, "agent_app: unknown command ", cmd);
	return 2;
}
