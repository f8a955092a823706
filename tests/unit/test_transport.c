/* transport: address parsing and formatting, TCP and Unix sockets, and
 * vsock, emulated with Unix sockets (transport.h) or native where the
 * machine has AF_VSOCK. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/vm_sockets.h>

#include "testutil.h"
#include "ward/transport.h"

#define FORMS                                                                  \
	"expected tcp:HOST:PORT, tcp:[IPV6]:PORT, unix:PATH or vsock:CID:PORT"

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

struct env {
	char *dir; /* WARD_RUN_DIR */
};

static int
setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));

	assert_non_null(e);
	e->dir = tu_mkdtemp();
	setenv("WARD_RUN_DIR", e->dir, 1);
	setenv("WARD_VSOCK", "emulated", 1);
	*state = e;
	return 0;
}

static int
teardown(void **state)
{
	struct env *e = *state;

	tu_rmtree(e->dir);
	free(e->dir);
	free(e);
	unsetenv("WARD_RUN_DIR");
	unsetenv("WARD_VSOCK");
	return 0;
}

static char *
path_in(const struct env *e, const char *rel)
{
	char *p;

	if (asprintf(&p, "%s/%s", e->dir, rel) < 0)
		fail_msg("asprintf");
	return p;
}

static void
assert_msg_has(const char *needle)
{
	if (strstr(ward_errmsg(), needle) == NULL)
		fail_msg("message \"%s\" lacks \"%s\"", ward_errmsg(), needle);
}

/* Every socket ward hands out is blocking and close-on-exec. */
static void
check_fd(int fd)
{
	assert_true(fd >= 0);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	assert_false(fcntl(fd, F_GETFL) & O_NONBLOCK);
}

/* accept, but fail rather than hang when nothing is coming */
static int
accept_one(int lfd)
{
	struct pollfd p = {.fd = lfd, .events = POLLIN};
	int fd;

	if (poll(&p, 1, 5000) != 1)
		fail_msg("no connection arrived within 5 s");
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(fd >= 0);
	return fd;
}

static void
send_all(int fd, const char *s)
{
	size_t n = strlen(s);

	assert_int_equal(write(fd, s, n), (ssize_t)n);
}

static void
expect(int fd, const char *s)
{
	char buf[64] = {0};
	size_t n = strlen(s), got = 0;

	while (got < n) {
		ssize_t k = read(fd, buf + got, n - got);

		assert_true(k > 0);
		got += (size_t)k;
	}
	assert_memory_equal(buf, s, n);
}

/* Bytes both ways between a connected client and its accepted peer. */
static void
exchange(int client, int server)
{
	send_all(client, "ping");
	expect(server, "ping");
	send_all(server, "pong!");
	expect(client, "pong!");
}

/* Connect with ward_vsock_connect, accept on lfd and talk. */
static void
vsock_round_trip(int lfd, uint32_t cid, uint32_t port)
{
	int c = -1, s;

	ASSERT_OK(ward_vsock_connect(cid, port, &c));
	check_fd(c);
	s = accept_one(lfd);
	exchange(c, s);
	close(c);
	close(s);
}

/* The live-listener check connects and hangs up: the listener sees that
 * one connection, closed, before any other. */
static void
accept_probe(int lfd)
{
	char c;
	int s = accept_one(lfd);

	assert_int_equal(read(s, &c, 1), 0);
	close(s);
}

static void
write_str(const char *path, const char *s)
{
	assert_int_equal(tu_write_file(path, s, strlen(s)), 0);
}

/* ------------------------------------------------------------------ */
/* Parsing and formatting                                              */

struct good {
	const char *in;
	enum ward_addr_kind kind;
	const char *host_or_path;
	uint32_t a, b; /* TCP: port; vsock: cid, port */
	const char *canon; /* NULL: the same as in */
};

#define LONG253                                                                \
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."    \
	"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb."     \
	"ccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc."     \
	"dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
#define PATH107                                                                \
	"/pppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp"    \
	"pppppppppppppppppppppppppppppppppppppppppp"

static const struct good goods[] = {
    {"tcp:127.0.0.1:80", WARD_ADDR_TCP, "127.0.0.1", 80},
    {"tcp:localhost:0", WARD_ADDR_TCP, "localhost", 0},
    {"tcp:example.com:65535", WARD_ADDR_TCP, "example.com", 65535},
    {"tcp:[::1]:443", WARD_ADDR_TCP, "::1", 443},
    {"tcp:[fe80::1%eth0]:8080", WARD_ADDR_TCP, "fe80::1%eth0", 8080},
    {"tcp:[::ffff:10.0.0.1]:1", WARD_ADDR_TCP, "::ffff:10.0.0.1", 1},
    {"tcp:" LONG253 ":9", WARD_ADDR_TCP, LONG253, 9},
    {"unix:/run/ward/kms.sock", WARD_ADDR_UNIX, "/run/ward/kms.sock"},
    {"unix:relative/sock", WARD_ADDR_UNIX, "relative/sock"},
    {"unix:a:b", WARD_ADDR_UNIX, "a:b"},
    {"unix:" PATH107, WARD_ADDR_UNIX, PATH107},
    {"vsock:3:8000", WARD_ADDR_VSOCK, NULL, 3, 8000},
    {"vsock:0:0", WARD_ADDR_VSOCK, NULL, 0, 0},
    {"vsock:16:9000", WARD_ADDR_VSOCK, NULL, 16, 9000},
    {"vsock:4294967295:4294967294", WARD_ADDR_VSOCK, NULL, 4294967295u,
        4294967294u},
};

static void
test_parse_good(void **state)
{
	(void)state;
	assert_int_equal(strlen(LONG253), 253);
	assert_int_equal(strlen(PATH107), 107);
	for (size_t i = 0; i < sizeof(goods) / sizeof(goods[0]); i++) {
		const struct good *g = &goods[i];
		struct ward_addr a;

		memset(&a, 0x5a, sizeof(a));
		if (ward_addr_parse(g->in, &a) != 0)
			fail_msg("%s: %s", g->in, ward_errmsg());
		assert_int_equal(a.kind, g->kind);
		switch (g->kind) {
		case WARD_ADDR_TCP:
			assert_string_equal(a.host, g->host_or_path);
			assert_int_equal(a.port, g->a);
			break;
		case WARD_ADDR_UNIX:
			assert_string_equal(a.path, g->host_or_path);
			break;
		case WARD_ADDR_VSOCK:
			assert_int_equal(a.cid, g->a);
			assert_int_equal(a.vport, g->b);
			break;
		}
	}
}

struct bad_case {
	const char *in;
	const char *why; /* a part of the message, or NULL */
};

static const struct bad_case bads[] = {
    {"", "empty"},
    {"tcp", "unknown kind"},
    {"TCP:1.2.3.4:5", "unknown kind"},
    {"udp:1.2.3.4:5", "unknown kind"},
    {"1.2.3.4:5", "unknown kind"},
    {"tcp:", "':PORT' is missing"},
    {"tcp:host", "':PORT' is missing"},
    {"tcp:host:", "the port is missing"},
    {"tcp::80", "the host is empty"},
    {"tcp:[]:80", "the host is empty"},
    {"tcp:host:65536", "out of range"},
    {"tcp:host:99999999999999999999", "out of range"},
    {"tcp:host:-1", "not a decimal number"},
    {"tcp:host:+1", "not a decimal number"},
    {"tcp:host: 1", "not a decimal number"},
    {"tcp:host:1 ", "not a decimal number"},
    {"tcp:host:08", "leading zeros"},
    {"tcp:host:00", "leading zeros"},
    {"tcp:host:0x10", "not a decimal number"},
    {"tcp:host:1e3", "not a decimal number"},
    {"tcp:ho st:1", "space"},
    {"tcp:host\t:1", "control"},
    {"tcp:h\x7f:1", "control"},
    {"tcp:h\xc3\xa9:1", "non-ASCII"},
    {"tcp:h[:1", "bracket"},
    {"tcp:[::1:80", "']' is missing"},
    {"tcp:[::1]80", "':PORT' must follow ']'"},
    {"tcp:[::1]", "':PORT' must follow ']'"},
    {"tcp:[localhost]:80", "only for IPv6"},
    {"tcp:[[::1]]:80", "':PORT' must follow ']'"},
    {"tcp:[[::1]:80", "bracket"},
    {"tcp:::1:80", "the host is empty"},
    {"tcp:fe80::1:80", "in brackets"},
    {"tcp:" LONG253 "x:1", "longer than 253"},
    {"unix:", "the path is empty"},
    {"unix:" PATH107 "x", "108 bytes"},
    {"vsock:", "':PORT' is missing"},
    {"vsock:3", "':PORT' is missing"},
    {"vsock:3:", "the port is missing"},
    {"vsock::5", "the CID is missing"},
    {"vsock:4294967296:1", "out of range (0 to 4294967295)"},
    {"vsock:99999999999999999999999:1", "out of range"},
    {"vsock:1:4294967295", "out of range (0 to 4294967294)"},
    {"vsock:1:4294967296", "out of range"},
    {"vsock:-1:1", "not a decimal number"},
    {"vsock:1:1:1", "not a decimal number"},
    {"vsock:03:1", "leading zeros"},
    {"vsock:any:1", "not a decimal number"},
};

static void
test_parse_bad(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		struct ward_addr a;
		int r = ward_addr_parse(bads[i].in, &a);
		char start[32];

		if (r != -WARD_EUSAGE)
			fail_msg("'%s' -> %s, expected EUSAGE",
			    ward_quotes(bads[i].in), ward_errname(r));
		/* the message names the input and the accepted forms */
		snprintf(start, sizeof(start), "address '%.12s",
		    ward_quotes(bads[i].in));
		assert_msg_has(start);
		assert_msg_has(FORMS);
		if (bads[i].why != NULL)
			assert_msg_has(bads[i].why);
	}
}

static void
test_format_round_trip(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(goods) / sizeof(goods[0]); i++) {
		const struct good *g = &goods[i];
		const char *canon = g->canon != NULL ? g->canon : g->in;
		struct ward_addr a, b;
		char s[WARD_ADDR_FMT_MAX];

		ASSERT_OK(ward_addr_parse(g->in, &a));
		memset(s, 0x5a, sizeof(s));
		ward_addr_format(&a, s, sizeof(s));
		assert_string_equal(s, canon);
		ASSERT_OK(ward_addr_parse(s, &b));
		assert_memory_equal(&a, &b, sizeof(a));
	}
}

static void
test_format_edges(void **state)
{
	struct ward_addr a = {.kind = WARD_ADDR_VSOCK, .cid = 3, .vport = 8000};
	char s[16];

	(void)state;
	/* cut, still terminated */
	memset(s, 0x5a, sizeof(s));
	ward_addr_format(&a, s, 8);
	assert_string_equal(s, "vsock:3");
	assert_int_equal((unsigned char)s[8], 0x5a);
	/* nothing written when there is no room at all */
	ward_addr_format(&a, s, 0);
	assert_int_equal((unsigned char)s[8], 0x5a);
	/* a struct made by hand without a terminator stays in bounds */
	memset(&a, 'q', sizeof(a));
	a.kind = WARD_ADDR_UNIX;
	{
		char big[WARD_ADDR_FMT_MAX];

		ward_addr_format(&a, big, sizeof(big));
		assert_int_equal(strlen(big), 5 + sizeof(a.path));
		a.kind = WARD_ADDR_TCP; /* port 0x7171 */
		ward_addr_format(&a, big, sizeof(big));
		assert_int_equal(strlen(big), 4 + sizeof(a.host) + 6);
		assert_string_equal(big + 4 + sizeof(a.host), ":29041");
	}
	a.kind = (enum ward_addr_kind)99;
	{
		char big[WARD_ADDR_FMT_MAX];

		ward_addr_format(&a, big, sizeof(big));
		assert_non_null(strstr(big, "unknown kind 99"));
	}
}

/* ------------------------------------------------------------------ */
/* Run directory, mode and paths                                       */

static void
test_run_dir(void **state)
{
	struct env *e = *state;
	char buf[4096], want[4096];
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	char *saved_xdg = xdg != NULL ? strdup(xdg) : NULL;

	ASSERT_OK(ward_run_dir(buf, sizeof(buf)));
	assert_string_equal(buf, e->dir);
	/* trailing slashes are dropped, "/" is kept */
	setenv("WARD_RUN_DIR", "/some/where//", 1);
	ASSERT_OK(ward_run_dir(buf, sizeof(buf)));
	assert_string_equal(buf, "/some/where");
	setenv("WARD_RUN_DIR", "/", 1);
	ASSERT_OK(ward_run_dir(buf, sizeof(buf)));
	assert_string_equal(buf, "/");
	/* too small a buffer */
	setenv("WARD_RUN_DIR", "/some/where", 1);
	ASSERT_ERR(ward_run_dir(buf, 11), WARD_ELIMIT);
	ASSERT_OK(ward_run_dir(buf, 12));

	/* an empty variable counts as unset */
	setenv("WARD_RUN_DIR", "", 1);
	if (geteuid() == 0) {
		setenv("XDG_RUNTIME_DIR", "/xdg", 1);
		ASSERT_OK(ward_run_dir(buf, sizeof(buf)));
		assert_string_equal(buf, "/run/ward");
	} else {
		setenv("XDG_RUNTIME_DIR", "/xdg", 1);
		ASSERT_OK(ward_run_dir(buf, sizeof(buf)));
		assert_string_equal(buf, "/xdg/ward");
		unsetenv("XDG_RUNTIME_DIR");
		snprintf(
		    want, sizeof(want), "/tmp/ward-%u", (unsigned)geteuid());
		if (ward_run_dir(buf, sizeof(buf)) == 0)
			assert_string_equal(buf, want);
		else /* someone else's directory is refused */
			assert_msg_has("not a directory that only you own");
	}
	if (saved_xdg != NULL)
		setenv("XDG_RUNTIME_DIR", saved_xdg, 1);
	else
		unsetenv("XDG_RUNTIME_DIR");
	free(saved_xdg);
	setenv("WARD_RUN_DIR", e->dir, 1);
}

static enum ward_vsock_mode
detected_mode(void)
{
	struct stat st;

	if (access("/dev/nitro_enclaves", F_OK) == 0)
		return WARD_VSOCK_NATIVE;
	if (stat("/dev/nsm", &st) == 0 && S_ISCHR(st.st_mode))
		return WARD_VSOCK_NATIVE;
	return WARD_VSOCK_EMULATED;
}

static void
test_mode(void **state)
{
	(void)state;
	setenv("WARD_VSOCK", "native", 1);
	assert_int_equal(ward_vsock_mode(), WARD_VSOCK_NATIVE);
	setenv("WARD_VSOCK", "emulated", 1);
	assert_int_equal(ward_vsock_mode(), WARD_VSOCK_EMULATED);
	/* anything else is as if unset (with one warning) */
	setenv("WARD_VSOCK", "Native", 1);
	assert_int_equal(ward_vsock_mode(), detected_mode());
	setenv("WARD_VSOCK", "bogus", 1);
	assert_int_equal(ward_vsock_mode(), detected_mode());
	unsetenv("WARD_VSOCK");
	assert_int_equal(ward_vsock_mode(), detected_mode());
	printf("# this machine's vsock mode: %s\n",
	    detected_mode() == WARD_VSOCK_NATIVE ? "native" : "emulated");
}

static void
test_vsock_path(void **state)
{
	struct env *e = *state;
	char buf[4096], *want = path_in(e, "vsock/3/5000"), *longdir;
	int fd = 7;

	ASSERT_OK(ward_vsock_path(3, 5000, buf, sizeof(buf)));
	assert_string_equal(buf, want);
	ASSERT_OK(ward_vsock_path(4294967295u, 4294967294u, buf, sizeof(buf)));
	assert_non_null(strstr(buf, "/vsock/4294967295/4294967294"));
	/* a buffer too small */
	ASSERT_ERR(ward_vsock_path(3, 5000, buf, strlen(want)), WARD_ELIMIT);
	ASSERT_OK(ward_vsock_path(3, 5000, buf, strlen(want) + 1));
	free(want);

	/* a path that would not fit sun_path: refused, nothing created */
	if (asprintf(&longdir, "%s/%0100d", e->dir, 0) < 0)
		fail_msg("asprintf");
	setenv("WARD_RUN_DIR", longdir, 1);
	ASSERT_ERR(ward_vsock_path(3, 5000, buf, sizeof(buf)), WARD_ELIMIT);
	assert_msg_has("set WARD_RUN_DIR to a shorter directory");
	ASSERT_ERR(ward_vsock_listen(5000, 4, &fd), WARD_ELIMIT);
	assert_int_equal(fd, -1);
	ASSERT_ERR(ward_vsock_connect(3, 5000, &fd), WARD_ELIMIT);
	assert_int_equal(access(longdir, F_OK), -1);
	free(longdir);
	setenv("WARD_RUN_DIR", e->dir, 1);
}

/* ------------------------------------------------------------------ */
/* Emulated vsock                                                      */

static void
test_emulated_round_trip(void **state)
{
	struct env *e = *state;
	char *sock = path_in(e, "vsock/3/5000");
	char *cdir = path_in(e, "vsock/3"), *vdir = path_in(e, "vsock");
	struct ward_addr a, bound;
	struct stat st;
	mode_t old;
	int lfd = -1, lfd2 = -1, c = -1, s;
	uint32_t cid = 0;

	ASSERT_OK(ward_vsock_local_cid(&cid));
	assert_int_equal(cid, WARD_VSOCK_CID_PARENT); /* no local-cid file */

	/* a strict umask must not narrow what the other side needs */
	old = umask(077);
	ASSERT_OK(ward_vsock_listen(5000, 8, &lfd));
	umask(old);
	check_fd(lfd);
	assert_int_equal(lstat(sock, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0666);
	assert_int_equal(stat(cdir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755);
	assert_int_equal(stat(vdir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755);

	vsock_round_trip(lfd, 3, 5000);
	/* VMADDR_CID_LOCAL is this side's CID */
	vsock_round_trip(lfd, WARD_VSOCK_CID_LOCAL, 5000);

	/* the same through addresses */
	ASSERT_OK(ward_addr_parse("vsock:3:5000", &a));
	ASSERT_OK(ward_connect(&a, &c));
	check_fd(c);
	s = accept_one(lfd);
	exchange(c, s);
	close(c);
	close(s);
	ASSERT_OK(ward_bound_addr(lfd, &a, &bound));
	assert_memory_equal(&a, &bound, sizeof(a));

	/* ward_listen on the wildcard CID; the bound address names ours */
	ASSERT_OK(ward_addr_parse("vsock:4294967295:5001", &a));
	ASSERT_OK(ward_listen(&a, 4, &lfd2));
	ASSERT_OK(ward_bound_addr(lfd2, &a, &bound));
	assert_int_equal(bound.cid, 3);
	assert_int_equal(bound.vport, 5001);
	vsock_round_trip(lfd2, 3, 5001);
	/* out may be the address asked */
	ASSERT_OK(ward_bound_addr(lfd2, &a, &a));
	assert_int_equal(a.cid, 3);
	close(lfd2);

	/* another CID's port cannot be listened on */
	ASSERT_OK(ward_addr_parse("vsock:16:5002", &a));
	ASSERT_ERR(ward_listen(&a, 4, &lfd2), WARD_EUSAGE);
	assert_msg_has("this side is CID 3");
	assert_int_equal(lfd2, -1);

	/* a vsock address does not describe a TCP socket */
	ASSERT_OK(ward_addr_parse("tcp:127.0.0.1:1", &a));
	ASSERT_ERR(ward_bound_addr(lfd, &a, &bound), WARD_EUSAGE);

	close(lfd);
	free(sock);
	free(cdir);
	free(vdir);
}

static int
sndbuf(int fd)
{
	int v = 0;
	socklen_t len = sizeof(v);

	assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, &len), 0);
	return v;
}

/* An emulated connection gets a vsock stream's buffering: the connecting
 * side from ward_vsock_connect, the accepting side from ward_vsock_buffer;
 * more than a fresh Unix socket's default, whatever wmem_max allows.
 * A TCP socket is left as it is. */
static void
test_emulated_buffer(void **state)
{
	struct ward_addr a;
	int lfd = -1, c = -1, s, fresh, tcp, before;

	(void)state;
	assert_true((fresh = socket(AF_UNIX, SOCK_STREAM, 0)) >= 0);
	ASSERT_OK(ward_vsock_listen(5060, 4, &lfd));
	ASSERT_OK(ward_vsock_connect(3, 5060, &c));
	assert_true(sndbuf(c) > sndbuf(fresh));
	s = accept_one(lfd);
	assert_int_equal(sndbuf(s), sndbuf(fresh));
	ward_vsock_buffer(s);
	assert_int_equal(sndbuf(s), sndbuf(c));
	exchange(c, s);
	close(c);
	close(s);
	close(lfd);

	ASSERT_OK(ward_addr_parse("tcp:127.0.0.1:0", &a));
	ASSERT_OK(ward_listen(&a, 4, &lfd));
	assert_true((tcp = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	before = sndbuf(tcp);
	ward_vsock_buffer(tcp);
	assert_int_equal(sndbuf(tcp), before);
	close(tcp);
	close(lfd);
	close(fresh);
}

static void
test_emulated_stale(void **state)
{
	struct env *e = *state;
	char *sock = path_in(e, "vsock/3/5010");
	char *old = path_in(e, "vsock/3/old");
	struct stat st1, st2;
	int lfd = -1;

	ASSERT_OK(ward_vsock_listen(5010, 4, &lfd));
	close(lfd); /* the file stays: a listener that died */
	/* a second name keeps the old inode alive, so a new socket file
	 * cannot reuse its number */
	assert_int_equal(link(sock, old), 0);
	assert_int_equal(lstat(old, &st1), 0);
	assert_true(S_ISSOCK(st1.st_mode));
	/* connecting to it is refused, with the clear message */
	ASSERT_ERR(ward_vsock_connect(3, 5010, &lfd), WARD_EIO);
	assert_string_equal(ward_errmsg(), "nothing listens on vsock 3:5010");

	ASSERT_OK(ward_vsock_listen(5010, 4, &lfd));
	assert_int_equal(lstat(sock, &st2), 0);
	assert_true(S_ISSOCK(st2.st_mode));
	assert_true(st1.st_ino != st2.st_ino); /* a new socket file */
	vsock_round_trip(lfd, 3, 5010);
	close(lfd);
	free(sock);
	free(old);
}

static void
test_emulated_in_use(void **state)
{
	int lfd = -1, lfd2 = -1;

	(void)state;
	ASSERT_OK(ward_vsock_listen(5020, 4, &lfd));
	ASSERT_ERR(ward_vsock_listen(5020, 4, &lfd2), WARD_EEXIST);
	assert_string_equal(ward_errmsg(), "vsock port 5020 is already in use");
	assert_int_equal(lfd2, -1);
	/* the live listener was left alone, but for the probe */
	accept_probe(lfd);
	vsock_round_trip(lfd, 3, 5020);
	close(lfd);
}

/* A listener whose backlog is full is live too, not a leftover. */
static void
test_emulated_backlog_full(void **state)
{
	struct env *e = *state;
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	char *sock = path_in(e, "vsock/3/5021");
	int lfd = -1, fd = -1, c[64], n = 0;
	bool full = false;

	ASSERT_OK(ward_vsock_listen(5021, 1, &lfd));
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock);
	while (n < 64 && !full) {
		c[n] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
		assert_true(c[n] >= 0);
		if (connect(c[n], (struct sockaddr *)&sun, sizeof(sun)) != 0) {
			assert_int_equal(errno, EAGAIN);
			full = true;
		}
		n++;
	}
	assert_true(full);
	ASSERT_ERR(ward_vsock_listen(5021, 1, &fd), WARD_EEXIST);
	assert_string_equal(ward_errmsg(), "vsock port 5021 is already in use");
	assert_int_equal(fd, -1);
	for (int i = 0; i < n; i++)
		close(c[i]);
	close(lfd);
	free(sock);
}

static void
test_emulated_not_a_socket(void **state)
{
	struct env *e = *state;
	char *dir = path_in(e, "vsock"), *cdir = path_in(e, "vsock/3");
	char *file = path_in(e, "vsock/3/5030"),
	     *sub = path_in(e, "vsock/3/5031");
	uint8_t *got;
	size_t n;
	int lfd = -1;

	assert_int_equal(mkdir(dir, 0755), 0);
	assert_int_equal(mkdir(cdir, 0755), 0);
	write_str(file, "keep me");
	ASSERT_ERR(ward_vsock_listen(5030, 4, &lfd), WARD_EEXIST);
	assert_msg_has("is not a socket; not replacing it");
	assert_msg_has(file);
	assert_int_equal(lfd, -1);
	got = tu_read_file(file, &n);
	assert_non_null(got);
	assert_int_equal(n, 7);
	assert_memory_equal(got, "keep me", 7);
	free(got);
	/* nor a directory */
	assert_int_equal(mkdir(sub, 0755), 0);
	ASSERT_ERR(ward_vsock_listen(5031, 4, &lfd), WARD_EEXIST);
	assert_int_equal(access(sub, F_OK), 0);
	/* connecting to the file finds nobody */
	ASSERT_ERR(ward_vsock_connect(3, 5030, &lfd), WARD_EIO);
	assert_string_equal(ward_errmsg(), "nothing listens on vsock 3:5030");
	free(dir);
	free(cdir);
	free(file);
	free(sub);
}

static void
test_emulated_local_cid(void **state)
{
	struct env *e = *state;
	char *vdir = path_in(e, "vsock"), *f = path_in(e, "vsock/local-cid");
	char *sock = path_in(e, "vsock/17/5040");
	static const char *const bad_files[] = {"", "\n", "abc", "17\n\n",
	    " 17", "17 ", "+17", "017", "0", "1", "2", "4294967295",
	    "4294967296", "12345678901234567", "1\r\n"};
	struct ward_addr a, bound;
	uint32_t cid = 0;
	int lfd = -1, fd = -1;

	assert_int_equal(mkdir(vdir, 0755), 0);
	write_str(f, "17\n");
	ASSERT_OK(ward_vsock_local_cid(&cid));
	assert_int_equal(cid, 17);
	ASSERT_OK(ward_vsock_listen(5040, 4, &lfd));
	assert_int_equal(access(sock, F_OK), 0);
	vsock_round_trip(lfd, 17, 5040);
	vsock_round_trip(lfd, WARD_VSOCK_CID_LOCAL, 5040);
	/* the parent's port of the same number is somebody else's */
	ASSERT_ERR(ward_vsock_connect(3, 5040, &fd), WARD_EIO);
	assert_string_equal(ward_errmsg(), "nothing listens on vsock 3:5040");
	ASSERT_OK(ward_addr_parse("vsock:1:5041", &a));
	ASSERT_OK(ward_listen(&a, 4, &fd));
	ASSERT_OK(ward_bound_addr(fd, &a, &bound));
	assert_int_equal(bound.cid, 17);
	close(fd);
	close(lfd);

	write_str(f, "4294967294");
	ASSERT_OK(ward_vsock_local_cid(&cid));
	assert_int_equal(cid, 4294967294u);
	write_str(f, "3");
	ASSERT_OK(ward_vsock_local_cid(&cid));
	assert_int_equal(cid, 3);
	for (size_t i = 0; i < sizeof(bad_files) / sizeof(bad_files[0]); i++) {
		write_str(f, bad_files[i]);
		cid = 99;
		if (ward_vsock_local_cid(&cid) != -WARD_EFORMAT)
			fail_msg("local-cid '%s' was accepted (%u)",
			    ward_quotes(bad_files[i]), cid);
		assert_msg_has("local-cid");
		assert_int_equal(cid, 99);
		if (strlen(bad_files[i]) > 16)
			assert_msg_has("longer than a CID");
		/* and nothing listens under a CID read from a bad file */
		ASSERT_ERR(ward_vsock_listen(5042, 4, &fd), WARD_EFORMAT);
	}
	/* gone: the parent again */
	assert_int_equal(unlink(f), 0);
	ASSERT_OK(ward_vsock_local_cid(&cid));
	assert_int_equal(cid, 3);
	free(vdir);
	free(f);
	free(sock);
}

static void
test_emulated_nothing_listens(void **state)
{
	int fd = 7;

	(void)state;
	/* neither the port nor the CID's directory exist */
	ASSERT_ERR(ward_vsock_connect(3, 6000, &fd), WARD_EIO);
	assert_string_equal(ward_errmsg(), "nothing listens on vsock 3:6000");
	assert_int_equal(fd, -1);
	ASSERT_ERR(ward_vsock_connect(42, 6000, &fd), WARD_EIO);
	assert_string_equal(ward_errmsg(), "nothing listens on vsock 42:6000");
	ASSERT_ERR(
	    ward_vsock_connect(WARD_VSOCK_CID_LOCAL, 6001, &fd), WARD_EIO);
	assert_string_equal(ward_errmsg(), "nothing listens on vsock 3:6001");
	/* wildcards name nobody */
	ASSERT_ERR(
	    ward_vsock_connect(WARD_VSOCK_CID_ANY, 6000, &fd), WARD_EUSAGE);
	ASSERT_ERR(ward_vsock_connect(3, 0xFFFFFFFFu, &fd), WARD_EUSAGE);
	ASSERT_ERR(ward_vsock_listen(0xFFFFFFFFu, 4, &fd), WARD_EUSAGE);
	assert_int_equal(fd, -1);
}

/* A socket the caller may not open: the message says so, with the path.
 * Root passes every permission check, so as root a child drops to
 * nobody first. */
static void
test_emulated_permission(void **state)
{
	struct env *e = *state;
	char *sock = path_in(e, "vsock/3/5050");
	int lfd = -1, fd = -1, status = 0;
	pid_t pid;

	ASSERT_OK(ward_vsock_listen(5050, 4, &lfd));
	assert_int_equal(chmod(sock, 0), 0);
	if (geteuid() != 0) {
		ASSERT_ERR(ward_vsock_connect(3, 5050, &fd), WARD_EIO);
		assert_msg_has("permission denied on ");
		assert_msg_has(sock);
		goto out;
	}
	fflush(stdout);
	if ((pid = fork()) == 0) {
		int r;

		if (setgid(65534) != 0 || setuid(65534) != 0)
			_exit(2);
		r = ward_vsock_connect(3, 5050, &fd);
		_exit(r == -WARD_EIO &&
		            strstr(ward_errmsg(), "permission denied on ") &&
		            strstr(ward_errmsg(), "/vsock/3") != NULL
		        ? 0
		        : 1);
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == 2) {
		printf("SKIP: permission check: cannot drop to uid 65534\n");
		goto out;
	}
	assert_int_equal(WEXITSTATUS(status), 0);
out:
	close(lfd);
	free(sock);
}

/* ------------------------------------------------------------------ */
/* Unix and TCP                                                        */

static void
test_unix(void **state)
{
	struct env *e = *state;
	char *path = path_in(e, "s.sock"), *file = path_in(e, "plain");
	char *spec, *nodir;
	struct ward_addr a, bound;
	struct stat st;
	uint8_t *got;
	size_t n;
	int lfd = -1, lfd2 = -1, c = -1, s;

	if (asprintf(&spec, "unix:%s", path) < 0)
		fail_msg("asprintf");
	ASSERT_OK(ward_addr_parse(spec, &a));
	ASSERT_OK(ward_listen(&a, 4, &lfd));
	check_fd(lfd);
	ASSERT_OK(ward_bound_addr(lfd, &a, &bound));
	assert_memory_equal(&a, &bound, sizeof(a));
	ASSERT_OK(ward_connect(&a, &c));
	check_fd(c);
	s = accept_one(lfd);
	exchange(c, s);
	close(c);
	close(s);

	/* live: refused; the listener still works */
	ASSERT_ERR(ward_listen(&a, 4, &lfd2), WARD_EEXIST);
	assert_msg_has("is already in use");
	assert_msg_has(path);
	accept_probe(lfd);
	ASSERT_OK(ward_connect(&a, &c));
	s = accept_one(lfd);
	exchange(c, s);
	close(c);
	close(s);

	/* dead: connect says so; listen replaces the leftover */
	close(lfd);
	assert_int_equal(lstat(path, &st), 0);
	ASSERT_ERR(ward_connect(&a, &c), WARD_EIO);
	assert_msg_has("nothing listens on unix:");
	assert_msg_has(path);
	ASSERT_OK(ward_listen(&a, 4, &lfd));
	ASSERT_OK(ward_connect(&a, &c));
	s = accept_one(lfd);
	exchange(c, s);
	close(c);
	close(s);
	close(lfd);
	unlink(path);
	ASSERT_ERR(ward_connect(&a, &c), WARD_EIO);
	assert_msg_has("nothing listens on unix:");

	/* a regular file is never replaced */
	write_str(file, "data");
	free(spec);
	if (asprintf(&spec, "unix:%s", file) < 0)
		fail_msg("asprintf");
	ASSERT_OK(ward_addr_parse(spec, &a));
	ASSERT_ERR(ward_listen(&a, 4, &lfd), WARD_EEXIST);
	assert_msg_has("not a socket");
	got = tu_read_file(file, &n);
	assert_non_null(got);
	assert_int_equal(n, 4);
	free(got);

	/* a directory that does not exist */
	nodir = path_in(e, "missing/s.sock");
	memset(&a, 0, sizeof(a));
	a.kind = WARD_ADDR_UNIX;
	snprintf(a.path, sizeof(a.path), "%s", nodir);
	ASSERT_ERR(ward_listen(&a, 4, &lfd), WARD_EIO);
	assert_int_equal(lfd, -1);
	/* a TCP address does not describe a Unix socket */
	ASSERT_OK(ward_addr_parse(spec, &a));
	ASSERT_OK(ward_addr_parse("tcp:127.0.0.1:0", &bound));
	ASSERT_OK(ward_listen(&bound, 4, &lfd));
	ASSERT_ERR(ward_bound_addr(lfd, &a, &bound), WARD_EUSAGE);
	close(lfd);
	free(nodir);
	free(spec);
	free(path);
	free(file);
}

/* Listen on addr (port 0), check the bound address, connect, talk;
 * then the port is in use; after closing, nothing listens. */
static void
tcp_round_trip(const char *addr, const char *host)
{
	struct ward_addr a, bound;
	char s[WARD_ADDR_FMT_MAX], want[WARD_ADDR_FMT_MAX];
	int lfd = -1, lfd2 = -1, c = -1, sfd;

	ASSERT_OK(ward_addr_parse(addr, &a));
	ASSERT_OK(ward_listen(&a, 4, &lfd));
	check_fd(lfd);
	ASSERT_OK(ward_bound_addr(lfd, &a, &bound));
	assert_int_equal(bound.kind, WARD_ADDR_TCP);
	assert_string_equal(bound.host, host);
	assert_true(bound.port != 0);
	ward_addr_format(&bound, s, sizeof(s));
	if (strchr(host, ':') != NULL)
		snprintf(want, sizeof(want), "tcp:[%s]:%u", host,
		    (unsigned)bound.port);
	else
		snprintf(want, sizeof(want), "tcp:%s:%u", host,
		    (unsigned)bound.port);
	assert_string_equal(s, want);

	ASSERT_OK(ward_connect(&bound, &c));
	check_fd(c);
	sfd = accept_one(lfd);
	exchange(c, sfd);
	close(c);
	close(sfd);

	ASSERT_ERR(ward_listen(&bound, 4, &lfd2), WARD_EEXIST);
	assert_msg_has("already in use");
	assert_int_equal(lfd2, -1);
	close(lfd);
	ASSERT_ERR(ward_connect(&bound, &c), WARD_EIO);
	assert_msg_has(want);
	assert_msg_has(strerror(ECONNREFUSED));
	assert_int_equal(c, -1);
}

static void
test_tcp(void **state)
{
	struct ward_addr a;
	int fd = 7, probe;

	(void)state;
	tcp_round_trip("tcp:127.0.0.1:0", "127.0.0.1");
	probe = socket(AF_INET6, SOCK_STREAM, 0);
	if (probe >= 0) {
		struct sockaddr_in6 sa = {.sin6_family = AF_INET6,
		    .sin6_addr = IN6ADDR_LOOPBACK_INIT};
		bool ok = bind(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0;

		close(probe);
		if (ok)
			tcp_round_trip("tcp:[::1]:0", "::1");
		else
			printf("SKIP: IPv6: cannot bind ::1 here\n");
	} else {
		printf("SKIP: IPv6: no AF_INET6 sockets here\n");
	}

	/* a name that cannot resolve */
	ASSERT_OK(ward_addr_parse("tcp:nonexistent.invalid:80", &a));
	assert_true(ward_connect(&a, &fd) != 0);
	assert_msg_has("connecting to tcp:nonexistent.invalid:80: resolving");
	assert_int_equal(fd, -1);
	/* an address not on this machine */
	ASSERT_OK(ward_addr_parse("tcp:192.0.2.1:0", &a));
	ASSERT_ERR(ward_listen(&a, 4, &fd), WARD_EIO);
	assert_msg_has("listening on tcp:192.0.2.1:0: bind: ");
	assert_int_equal(fd, -1);
	/* kinds that do not exist */
	memset(&a, 0, sizeof(a));
	a.kind = (enum ward_addr_kind)0;
	ASSERT_ERR(ward_listen(&a, 4, &fd), WARD_EINTERNAL);
	ASSERT_ERR(ward_connect(&a, &fd), WARD_EINTERNAL);
}

/* ------------------------------------------------------------------ */
/* Native vsock, as far as this machine goes                           */

static void
test_native(void **state)
{
	struct sockaddr_vm vm = {.svm_family = AF_VSOCK,
	    .svm_cid = VMADDR_CID_ANY,
	    .svm_port = 47123};
	struct ward_addr a = {.kind = WARD_ADDR_VSOCK,
	                     .cid = WARD_VSOCK_CID_ANY,
	                     .vport = 47123},
	                 bound;
	unsigned int want_cid = 0;
	uint32_t cid = 0;
	int probe, lfd = -1, lfd2 = -1, fd = -1, dev, err;
	bool can_listen;

	(void)state;
	setenv("WARD_VSOCK", "native", 1);
	probe = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe < 0) {
		/* the failure is clear and points at the emulation */
		ASSERT_ERR(ward_vsock_listen(47123, 4, &lfd), WARD_EIO);
		assert_msg_has("WARD_VSOCK=emulated");
		ASSERT_ERR(ward_vsock_connect(3, 47123, &fd), WARD_EIO);
		assert_msg_has("WARD_VSOCK=emulated");
		printf("SKIP: native vsock: no AF_VSOCK here (%s); checked "
		       "only the errors\n",
		    strerror(errno));
		return;
	}
	can_listen = bind(probe, (struct sockaddr *)&vm, sizeof(vm)) == 0 &&
	    listen(probe, 1) == 0;
	close(probe);

	/* the local CID: what the device says */
	dev = open("/dev/vsock", O_RDONLY | O_CLOEXEC);
	if (dev >= 0 &&
	    ioctl(dev, IOCTL_VM_SOCKETS_GET_LOCAL_CID, &want_cid) == 0) {
		ASSERT_OK(ward_vsock_local_cid(&cid));
		assert_int_equal(cid, want_cid);
	} else {
		ASSERT_ERR(ward_vsock_local_cid(&cid), WARD_EIO);
		printf("SKIP: native vsock: no local CID from /dev/vsock\n");
	}
	if (dev >= 0)
		close(dev);

	if (!can_listen) {
		ASSERT_ERR(ward_vsock_listen(47123, 4, &lfd), WARD_EIO);
		assert_msg_has("vsock port 47123");
		printf("SKIP: native vsock: cannot listen here (%s)\n",
		    ward_errmsg());
	} else {
		ASSERT_OK(ward_listen(&a, 4, &lfd));
		check_fd(lfd);
		ASSERT_ERR(ward_vsock_listen(47123, 4, &lfd2), WARD_EEXIST);
		assert_string_equal(
		    ward_errmsg(), "vsock port 47123 is already in use");
		if (dev >= 0 && cid == want_cid && want_cid != 0) {
			ASSERT_OK(ward_bound_addr(lfd, &a, &bound));
			assert_int_equal(bound.vport, 47123);
			assert_int_equal(bound.cid, want_cid);
		}
		close(lfd);
	}

	/* a closed port on the host: the hypervisor resets or refuses,
	 * when this machine has a vsock transport at all */
	probe = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
	vm.svm_cid = WARD_VSOCK_CID_HOST;
	vm.svm_port = 47124;
	err =
	    connect(probe, (struct sockaddr *)&vm, sizeof(vm)) == 0 ? 0 : errno;
	close(probe);
	if (err == ECONNREFUSED || err == ECONNRESET) {
		ASSERT_ERR(ward_vsock_connect(WARD_VSOCK_CID_HOST, 47124, &fd),
		    WARD_EIO);
		assert_string_equal(
		    ward_errmsg(), "nothing listens on vsock 2:47124");
		assert_int_equal(fd, -1);
	} else {
		printf("SKIP: native vsock: connecting to the host's closed "
		       "port gives %s here\n",
		    err == 0 ? "a connection" : strerror(err));
	}
	setenv("WARD_VSOCK", "emulated", 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_good),
	    cmocka_unit_test(test_parse_bad),
	    cmocka_unit_test(test_format_round_trip),
	    cmocka_unit_test(test_format_edges),
	    cmocka_unit_test_setup_teardown(test_run_dir, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_mode, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_vsock_path, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_emulated_round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_emulated_stale, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_emulated_in_use, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_emulated_backlog_full, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_emulated_not_a_socket, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_emulated_local_cid, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_emulated_nothing_listens, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_emulated_permission, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_emulated_buffer, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unix, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tcp, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_native, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
