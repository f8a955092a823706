/*
 * proxy_load: both ends around `ward proxy`, for tests/integration/proxy.sh
 * and bench/proxy. A TCP server, and clients that reach it through the
 * proxy (vsock: AF_VSOCK or ward's emulation, via ward_vsock_connect, as
 * an enclave does) or directly by TCP, with every byte accounted for.
 *
 *   serve [--port P] [--hold N] [--hold-timeout S]
 *       TCP server on 127.0.0.1 (port 0: any). Prints {"Port":P} when
 *       listening; on SIGTERM prints {"Peak","Accepted","Completed",
 *       "Resets","Errors"} and exits 0. --hold N withholds every answer
 *       until N connections have been open at once (or S seconds, default
 *       20, have passed), so that a client's N connections provably
 *       coexist end to end.
 *   run TARGET --connections N [--concurrency C] [--seed S]
 *       [--max-size B] [--reply-max B] [--echo-every K] [--timeout-ms T]
 *       N connections, at most C open at once (default N: all are
 *       connected before the first byte is sent); connection i sends a
 *       payload whose length and bytes come from a fixed-seed generator,
 *       half-closes and checks the answer: length, FNV-1a 64 and a reply
 *       of its own length and bytes. Every K-th (default 0: none) is an
 *       echo instead: full duplex, every byte compared.
 *   vanish TARGET --connections N [--seed S]
 *       peers that disappear: right after connecting, halfway through the
 *       upload, or while the answer streams in (in turn).
 *   resetting TARGET --connections N [--timeout-ms T]
 *       the server resets each connection halfway through the upload; the
 *       client must see its connection end, with no answer, within T ms.
 *   unreachable TARGET --connections N [--timeout-ms T]
 *       nothing listens behind the proxy: each connection must end, with
 *       no byte received, within T ms (default 5000).
 *   slow TARGET [--seed S] [--size B]
 *       one checked connection that sends half its payload, prints
 *       "half", waits for a line on standard input, then finishes.
 *   blackhole
 *       a TCP listener on every address of this host (0.0.0.0, any port)
 *       whose accept queue is kept full and never accepted from, so that
 *       a connect to any 127.x.y.z at its port hangs (the kernel drops
 *       the SYNs of a full queue): an unreachable remote that does not
 *       refuse. Prints {"Port":P}; exits on SIGTERM.
 *   bench TARGET --size B --parallel P --seconds S [--warmup S]
 *       [--download 1] [--cpu-pid PID]
 *       transfers of B bytes (answered with the count only), P at a time,
 *       for S seconds after the warm-up; prints {"Transfers","Bytes",
 *       "Seconds","MiBps","PerSecond","CpuMsPerMiB","PidCpuMsPerMiB"}
 *       (CPU milliseconds per MiB moved in the measured window: this
 *       client's, and --cpu-pid PID's; -1 when not measured).
 *       --download 1: B bytes from the server instead (their number is
 *       checked, not their value).
 *
 * TARGET is --vsock CID:PORT, --unix PATH or --tcp HOST:PORT. A client
 * prints {"Connections","Ok","Failed","Up","Down","MaxOpen","Seconds"}
 * and exits 0 only when every connection did what its kind expects; the
 * first failures are described on standard error.
 *
 * Wire format, client to server: a mode byte, a big-endian u32 ARG, then
 * the payload until end of file (or not, for echo).
 *   'S'  the server answers u64 count, u64 FNV-1a 64 of the payload, then
 *        ARG bytes of the stream seeded by both, and closes
 *   'B'  u64 count and u64 0 (no hash: the benchmark measures the proxy)
 *   'D'  u64 count and u64 0, then ARG zero bytes (the download benchmark)
 *   'E'  the server echoes the payload as it comes, and closes after the
 *        end of file
 *   'R'  the server reads ARG payload bytes, then resets the connection
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ward/transport.h"
#include "ward/util.h"

#define CHUNK (64 * 1024)
#define MAX_FDS 65536
#define HDR 5
#define ANSWER 16
#define FAILURES_SHOWN 5

static const char *progname = "proxy_load";

static void die(const char *fmt, ...)
    __attribute__((noreturn, format(printf, 1, 2)));
static void
die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the byte streams --------------------------------------------------- */

static uint64_t
mix64(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Bytes [off, off+n) of the stream seeded by seed: byte o is byte o%8
 * of mix64(seed + o/8), so any range is made without state. */
static void
gen(uint64_t seed, uint64_t off, uint8_t *p, size_t n)
{
	while (n > 0) {
		uint64_t w = mix64(seed + (off >> 3));
		unsigned k = (unsigned)(off & 7);

		for (; k < 8 && n > 0; k++, n--, off++)
			*p++ = (uint8_t)(w >> (8 * k));
	}
}

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

static uint64_t
fnv(uint64_t h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= FNV_PRIME;
	}
	return h;
}

static uint64_t
reply_seed(uint64_t count, uint64_t hash)
{
	return mix64(count ^ mix64(hash) ^ 0x5eedull);
}

static void
put64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t
get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static void
set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)
		die("fcntl: %s", strerror(errno));
}

static void
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* Strict decimal. */
static uint64_t
num(const char *what, const char *s, uint64_t max)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 || v > max)
		die("%s: bad number '%s'", what, s);
	return v;
}

/* ---- the server --------------------------------------------------------- */

struct sv {
	int fd;
	uint8_t hdr[HDR];
	size_t hdr_got;
	char mode;
	uint32_t arg;
	uint64_t count, hash;
	bool eof, out_on;
	uint8_t answer[ANSWER];
	size_t answer_sent;
	uint64_t body_sent, rseed;
	uint8_t *eb; /* echo buffer */
	size_t eb_len, eb_off;
};

static struct {
	int ep, lfd;
	struct sv *c[MAX_FDS];
	uint64_t open, peak, accepted, completed, resets, errors;
	uint64_t hold;
	double hold_until;
	bool released;
} S;

static void
sv_interest(struct sv *c, bool out)
{
	struct epoll_event ev = {
	    .events = EPOLLIN | (out ? EPOLLOUT : 0), .data.fd = c->fd};

	if (c->eof || (c->mode == 'E' && c->eb_len == CHUNK))
		ev.events &= ~(uint32_t)EPOLLIN;
	epoll_ctl(S.ep, EPOLL_CTL_MOD, c->fd, &ev);
	c->out_on = out;
}

static void
sv_close(struct sv *c, bool reset, bool ok)
{
	if (reset) {
		struct linger lg = {.l_onoff = 1, .l_linger = 0};

		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	close(c->fd);
	S.c[c->fd] = NULL;
	S.open--;
	if (ok)
		S.completed++;
	free(c->eb);
	free(c);
}

/* Something to send, and allowed to send it now. */
static bool
sv_wants_out(const struct sv *c)
{
	if (!S.released)
		return false;
	if (c->mode == 'E')
		return c->eb_len > c->eb_off || c->eof;
	return c->eof;
}

/* Returns false when c was closed. */
static bool
sv_write(struct sv *c)
{
	uint8_t buf[CHUNK];

	if (!S.released)
		return true;
	if (c->mode == 'E') {
		while (c->eb_off < c->eb_len) {
			ssize_t n = send(c->fd, c->eb + c->eb_off,
			    c->eb_len - c->eb_off, MSG_NOSIGNAL);

			if (n < 0 && errno == EAGAIN)
				return true;
			if (n <= 0) {
				S.errors++;
				sv_close(c, false, false);
				return false;
			}
			c->eb_off += (size_t)n;
		}
		c->eb_off = c->eb_len = 0;
		if (c->eof) {
			sv_close(c, false, true);
			return false;
		}
		return true;
	}
	if (!c->eof)
		return true;
	while (c->answer_sent < ANSWER) {
		ssize_t n = send(c->fd, c->answer + c->answer_sent,
		    ANSWER - c->answer_sent, MSG_NOSIGNAL);

		if (n < 0 && errno == EAGAIN)
			return true;
		if (n <= 0) {
			S.errors++;
			sv_close(c, false, false);
			return false;
		}
		c->answer_sent += (size_t)n;
	}
	while (c->mode == 'D' && c->body_sent < c->arg) {
		static const uint8_t zeros[CHUNK];
		size_t want = c->arg - c->body_sent < CHUNK
		    ? (size_t)(c->arg - c->body_sent)
		    : CHUNK;
		ssize_t n = send(c->fd, zeros, want, MSG_NOSIGNAL);

		if (n < 0 && errno == EAGAIN)
			return true;
		if (n <= 0) {
			S.errors++;
			sv_close(c, false, false);
			return false;
		}
		c->body_sent += (uint64_t)n;
	}
	while (c->mode == 'S' && c->body_sent < c->arg) {
		size_t want = c->arg - c->body_sent < CHUNK
		    ? (size_t)(c->arg - c->body_sent)
		    : CHUNK;
		ssize_t n;

		gen(c->rseed, c->body_sent, buf, want);
		n = send(c->fd, buf, want, MSG_NOSIGNAL);
		if (n < 0 && errno == EAGAIN)
			return true;
		if (n <= 0) {
			S.errors++;
			sv_close(c, false, false);
			return false;
		}
		c->body_sent += (uint64_t)n;
	}
	sv_close(c, false, true);
	return false;
}

/* Returns false when c was closed. */
static bool
sv_read(struct sv *c)
{
	uint8_t buf[CHUNK];

	for (int rounds = 0; rounds < 16 && !c->eof; rounds++) {
		size_t cap = sizeof(buf);
		ssize_t n;
		size_t i = 0;

		if (c->mode == 'E') {
			if (c->eb_len == CHUNK)
				break;
			cap = CHUNK - c->eb_len;
		}
		n = recv(c->fd, buf, cap, 0);
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0) {
			S.errors++;
			sv_close(c, false, false);
			return false;
		}
		if (n == 0) {
			if (c->hdr_got < HDR) {
				S.errors++;
				sv_close(c, false, false);
				return false;
			}
			c->eof = true;
			put64(c->answer, c->count);
			put64(c->answer + 8, c->mode == 'S' ? c->hash : 0);
			c->rseed = reply_seed(c->count, c->hash);
			break;
		}
		while (c->hdr_got < HDR && i < (size_t)n)
			c->hdr[c->hdr_got++] = buf[i++];
		if (c->hdr_got == HDR && c->mode == 0) {
			c->mode = (char)c->hdr[0];
			c->arg = (uint32_t)c->hdr[1] << 24 |
			    (uint32_t)c->hdr[2] << 16 |
			    (uint32_t)c->hdr[3] << 8 | c->hdr[4];
			if (strchr("SBERD", c->mode) == NULL) {
				S.errors++;
				sv_close(c, false, false);
				return false;
			}
			if (c->mode == 'E' && (c->eb = malloc(CHUNK)) == NULL)
				die("out of memory");
		}
		if (i == (size_t)n)
			continue;
		if (c->mode == 'R' && c->count + (size_t)n - i >= c->arg) {
			S.resets++;
			sv_close(c, true, true);
			return false;
		}
		if (c->mode == 'S')
			c->hash = fnv(c->hash, buf + i, (size_t)n - i);
		if (c->mode == 'E') {
			memcpy(c->eb + c->eb_len, buf + i, (size_t)n - i);
			c->eb_len += (size_t)n - i;
		}
		c->count += (size_t)n - i;
	}
	return true;
}

static void
sv_release_all(void)
{
	S.released = true;
	for (int fd = 0; fd < MAX_FDS; fd++) {
		struct sv *c = S.c[fd];

		if (c != NULL && sv_wants_out(c) && sv_write(c))
			sv_interest(S.c[fd], sv_wants_out(S.c[fd]));
	}
}

static void
sv_accept(void)
{
	for (;;) {
		int fd = accept4(S.lfd, NULL, NULL, SOCK_NONBLOCK);
		struct epoll_event ev = {.events = EPOLLIN};
		struct sv *c;

		if (fd < 0) {
			if (errno != EAGAIN && errno != ECONNABORTED)
				S.errors++;
			return;
		}
		if (fd >= MAX_FDS || (c = calloc(1, sizeof(*c))) == NULL)
			die("too many connections");
		c->fd = fd;
		c->hash = FNV_OFFSET;
		S.c[fd] = c;
		ev.data.fd = fd;
		epoll_ctl(S.ep, EPOLL_CTL_ADD, fd, &ev);
		S.accepted++;
		if (++S.open > S.peak)
			S.peak = S.open;
		if (S.hold > 0 && S.accepted == 1)
			S.hold_until = now() + S.hold_until;
	}
}

static int
cmd_serve(int argc, char **argv)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sin);
	struct epoll_event evs[256], ev = {.events = EPOLLIN};
	sigset_t mask;
	int sfd, one = 1;
	double hold_timeout = 20;

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
			sin.sin_port =
			    htons((uint16_t)num("--port", argv[++i], 65535));
		else if (strcmp(argv[i], "--hold") == 0 && i + 1 < argc)
			S.hold = num("--hold", argv[++i], MAX_FDS);
		else if (strcmp(argv[i], "--hold-timeout") == 0 && i + 1 < argc)
			hold_timeout =
			    (double)num("--hold-timeout", argv[++i], 3600);
		else
			die("serve: unknown argument %s", argv[i]);
	}
	S.released = S.hold == 0;
	S.hold_until = hold_timeout; /* from the first accept */
	raise_nofile();
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	if ((sfd = signalfd(-1, &mask, SFD_CLOEXEC)) < 0)
		die("signalfd: %s", strerror(errno));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((S.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0)) < 0 ||
	    setsockopt(S.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) !=
	        0 ||
	    bind(S.lfd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
	    listen(S.lfd, 4096) != 0 ||
	    getsockname(S.lfd, (struct sockaddr *)&sin, &sl) != 0)
		die("listen: %s", strerror(errno));
	if ((S.ep = epoll_create1(0)) < 0)
		die("epoll: %s", strerror(errno));
	ev.data.fd = S.lfd;
	epoll_ctl(S.ep, EPOLL_CTL_ADD, S.lfd, &ev);
	ev.data.fd = sfd;
	epoll_ctl(S.ep, EPOLL_CTL_ADD, sfd, &ev);
	printf("{\"Port\":%u}\n", (unsigned)ntohs(sin.sin_port));
	fflush(stdout);
	for (;;) {
		int n = epoll_wait(S.ep, evs, 256, S.released ? -1 : 100);

		if (n < 0 && errno != EINTR)
			die("epoll_wait: %s", strerror(errno));
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			struct sv *c;

			if (fd == sfd) {
				printf("{\"Peak\":%" PRIu64
				       ",\"Accepted\":%" PRIu64
				       ",\"Completed\":%" PRIu64
				       ",\"Resets\":%" PRIu64
				       ",\"Errors\":%" PRIu64 "}\n",
				    S.peak, S.accepted, S.completed, S.resets,
				    S.errors);
				fflush(stdout);
				return 0;
			}
			if (fd == S.lfd) {
				sv_accept();
				continue;
			}
			if ((c = S.c[fd]) == NULL)
				continue;
			if ((evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) &&
			    !c->eof && !sv_read(c))
				continue;
			if ((evs[i].events & (EPOLLOUT | EPOLLHUP | EPOLLERR) ||
			        sv_wants_out(c)) &&
			    !sv_write(c))
				continue;
			sv_interest(c, sv_wants_out(c));
		}
		if (!S.released && S.hold > 0 &&
		    (S.peak >= S.hold ||
		        (S.accepted > 0 && now() >= S.hold_until)))
			sv_release_all();
	}
}

/* ---- the clients -------------------------------------------------------- */

enum kind {
	K_SINK, /* upload, half-close, checked answer */
	K_ECHO, /* full duplex, every byte compared */
	K_BENCH, /* upload, count only */
	K_VANISH_EARLY, /* close right after connecting */
	K_VANISH_HALF, /* close halfway through the upload */
	K_VANISH_READ, /* close while the answer streams in */
	K_RESET, /* the server resets halfway through */
	K_UNREACH, /* nothing behind the proxy */
};

struct target {
	enum { T_VSOCK, T_UNIX, T_TCP } kind;
	uint32_t cid, port;
	char path[108];
	struct sockaddr_storage ss;
	socklen_t sl;
};

struct cl {
	int fd;
	enum kind kind;
	uint64_t idx, seed, len;
	uint32_t arg;
	uint8_t hdr[HDR];
	size_t hdr_sent;
	uint64_t sent, hash;
	bool shut, eof, out_on;
	uint8_t answer[ANSWER];
	size_t answer_got;
	uint64_t got; /* answer body or echo bytes received and checked */
	double start;
};

static struct {
	struct target t;
	int ep;
	uint64_t seed, max_size, reply_max, echo_every, timeout_ms;
	uint64_t n, started, done, ok, failed, up, down, open, max_open;
	uint64_t shown;
	struct cl *c[MAX_FDS];
	/* bench */
	bool bench, download;
	uint64_t size, transfers;
	double warm_at, end_at;
} C;

static void
parse_target(const char *opt, const char *val)
{
	struct target *t = &C.t;

	if (strcmp(opt, "--vsock") == 0) {
		struct ward_addr a;
		char s[64];

		snprintf(s, sizeof(s), "vsock:%s", val);
		if (ward_addr_parse(s, &a) != 0)
			die("--vsock %s: %s", val, ward_errmsg());
		t->kind = T_VSOCK;
		t->cid = a.cid;
		t->port = a.vport;
	} else if (strcmp(opt, "--unix") == 0) {
		if (strlen(val) >= sizeof(t->path))
			die("--unix: path too long");
		t->kind = T_UNIX;
		snprintf(t->path, sizeof(t->path), "%s", val);
	} else {
		struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
		char host[256];
		const char *colon = strrchr(val, ':');
		int gai;

		if (colon == NULL || (size_t)(colon - val) >= sizeof(host))
			die("--tcp HOST:PORT");
		memcpy(host, val, (size_t)(colon - val));
		host[colon - val] = '\0';
		if ((gai = getaddrinfo(host, colon + 1, &hints, &ai)) != 0)
			die("--tcp %s: %s", val, gai_strerror(gai));
		memcpy(&t->ss, ai->ai_addr, ai->ai_addrlen);
		t->sl = ai->ai_addrlen;
		t->kind = T_TCP;
		freeaddrinfo(ai);
	}
}

/* A blocking connect, then non-blocking: -errno on failure. */
static int
open_target(void)
{
	const struct target *t = &C.t;
	int fd, r;

	if (t->kind == T_VSOCK) {
		if (ward_vsock_connect(t->cid, t->port, &fd) != 0) {
			fprintf(stderr, "%s: %s\n", progname, ward_errmsg());
			return -EIO;
		}
	} else if (t->kind == T_UNIX) {
		struct sockaddr_un sun = {.sun_family = AF_UNIX};

		memcpy(sun.sun_path, t->path, strlen(t->path));
		if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
			return -errno;
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
			r = -errno;
			close(fd);
			return r;
		}
	} else {
		int one = 1;

		if ((fd = socket(
		         t->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
			return -errno;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (connect(fd, (struct sockaddr *)&t->ss, t->sl) != 0) {
			r = -errno;
			close(fd);
			return r;
		}
	}
	if (fd >= MAX_FDS)
		die("descriptor %d beyond the table", fd);
	set_nonblock(fd);
	return fd;
}

static void cl_fail(struct cl *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
cl_finish(struct cl *c, bool ok)
{
	if (c->fd >= 0) {
		if (c->kind == K_VANISH_HALF || c->kind == K_VANISH_READ) {
			struct linger lg = {.l_onoff = 1, .l_linger = 0};

			setsockopt(
			    c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		}
		close(c->fd);
		C.c[c->fd] = NULL;
		C.open--;
	}
	C.done++;
	if (C.bench) {
		double t = now();

		if (ok && t >= C.warm_at && t < C.end_at)
			C.transfers++;
		else if (!ok)
			C.failed++;
	} else if (ok) {
		C.ok++;
	} else {
		C.failed++;
	}
	free(c);
}

static void
cl_fail(struct cl *c, const char *fmt, ...)
{
	va_list ap;

	if (C.shown++ < FAILURES_SHOWN) {
		fprintf(stderr,
		    "%s: connection %" PRIu64 " (len %" PRIu64 ", reply %u): ",
		    progname, c->idx, c->len, c->arg);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	}
	cl_finish(c, false);
}

/* Expected answer body bytes for c. */
static uint64_t
cl_expect(const struct cl *c)
{
	if (c->kind == K_BENCH)
		return C.download ? c->arg : 0;
	return c->kind == K_ECHO ? c->len : c->kind == K_SINK ? c->arg : 0;
}

static void
cl_interest(struct cl *c)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
	bool out = !c->shut;

	if (out)
		ev.events |= EPOLLOUT;
	epoll_ctl(C.ep, EPOLL_CTL_MOD, c->fd, &ev);
	c->out_on = out;
}

static void
cl_start(uint64_t idx, enum kind kind)
{
	struct cl *c = calloc(1, sizeof(*c));
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT};
	uint64_t r;
	char mode;
	int fd;

	if (c == NULL)
		die("out of memory");
	C.started++;
	c->idx = idx;
	c->kind = kind;
	c->seed = mix64(C.seed * 0x100000001b3ull + idx);
	c->hash = FNV_OFFSET;
	c->fd = -1;
	c->start = now();
	r = mix64(c->seed ^ 1);
	c->len = C.download ? 0
	    : C.bench       ? C.size
	    : (r & 15) == 0 ? 0
	    : (r & 15) == 1 ? C.max_size
	                    : (r >> 8) % (C.max_size + 1);
	c->arg = C.download ? (uint32_t)C.size
	    : C.bench       ? 0
	              : (uint32_t)(mix64(c->seed ^ 2) % (C.reply_max + 1));
	mode = kind == K_ECHO ? 'E'
	    : kind == K_BENCH ? (C.download ? 'D' : 'B')
	                      : 'S';
	if (kind == K_RESET) {
		mode = 'R';
		if (c->len < 2)
			c->len = 2;
		c->arg = (uint32_t)(c->len / 2);
	}
	if (kind == K_VANISH_READ && c->arg < 4096)
		c->arg = 4096;
	c->hdr[0] = (uint8_t)mode;
	c->hdr[1] = (uint8_t)(c->arg >> 24);
	c->hdr[2] = (uint8_t)(c->arg >> 16);
	c->hdr[3] = (uint8_t)(c->arg >> 8);
	c->hdr[4] = (uint8_t)c->arg;
	if ((fd = open_target()) < 0) {
		cl_fail(c, "connect: %s", strerror(-fd));
		return;
	}
	c->fd = fd;
	C.c[fd] = c;
	if (++C.open > C.max_open)
		C.max_open = C.open;
	if (kind == K_VANISH_EARLY) {
		cl_finish(c, true);
		return;
	}
	ev.data.ptr = c;
	epoll_ctl(C.ep, EPOLL_CTL_ADD, fd, &ev);
	c->out_on = true;
}

/* What this connection sends before it stops: the whole payload, or
 * half of it for a peer that vanishes. */
static uint64_t
cl_send_len(const struct cl *c)
{
	return c->kind == K_VANISH_HALF ? c->len / 2 : c->len;
}

/* Returns false when c is finished (and freed). */
static bool
cl_write(struct cl *c)
{
	static uint8_t zeros[CHUNK];
	uint8_t buf[CHUNK];

	while (c->hdr_sent < HDR) {
		ssize_t n = send(c->fd, c->hdr + c->hdr_sent, HDR - c->hdr_sent,
		    MSG_NOSIGNAL);

		if (n < 0 && errno == EAGAIN)
			return true;
		if (n < 0)
			goto err;
		c->hdr_sent += (size_t)n;
	}
	while (c->sent < cl_send_len(c)) {
		uint64_t left = cl_send_len(c) - c->sent;
		size_t want = left < CHUNK ? (size_t)left : CHUNK;
		const uint8_t *p = zeros;
		ssize_t n;

		if (!C.bench) {
			gen(c->seed, c->sent, buf, want);
			p = buf;
		}
		n = send(c->fd, p, want, MSG_NOSIGNAL);
		if (n < 0 && errno == EAGAIN)
			return true;
		if (n < 0)
			goto err;
		if (!C.bench)
			c->hash = fnv(c->hash, buf, (size_t)n);
		c->sent += (uint64_t)n;
		C.up += (uint64_t)n;
	}
	if (c->kind == K_VANISH_HALF) {
		cl_finish(c, true);
		return false;
	}
	if (shutdown(c->fd, SHUT_WR) != 0)
		goto err;
	c->shut = true;
	cl_interest(c);
	return true;
err:
	if (c->kind == K_RESET || c->kind == K_UNREACH) {
		/* the far end is gone: no more to send, wait for the end */
		c->shut = true;
		cl_interest(c);
		return true;
	}
	cl_fail(
	    c, "send after %" PRIu64 " bytes: %s", c->sent, strerror(errno));
	return false;
}

/* Check received bytes against what the kind expects. */
static bool
cl_check(struct cl *c, const uint8_t *p, size_t n)
{
	uint8_t want[CHUNK];
	uint64_t seed;

	if (c->kind == K_ECHO) {
		if (c->got + n > c->len) {
			cl_fail(c, "echo: more bytes than sent");
			return false;
		}
		seed = c->seed;
	} else {
		seed = reply_seed(c->len, c->hash);
		if (c->got + n > c->arg) {
			cl_fail(c, "answer: more than %u bytes", c->arg);
			return false;
		}
	}
	gen(seed, c->got, want, n);
	if (memcmp(want, p, n) != 0) {
		cl_fail(c, "%s: a byte differs within [%" PRIu64 ", +%zu)",
		    c->kind == K_ECHO ? "echo" : "answer", c->got, n);
		return false;
	}
	c->got += n;
	return true;
}

static void
cl_read(struct cl *c)
{
	uint8_t buf[CHUNK];

	for (int rounds = 0; rounds < 16; rounds++) {
		ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
		size_t i = 0;

		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0) {
			if (c->kind == K_RESET || c->kind == K_UNREACH) {
				if (c->answer_got == 0 && c->got == 0)
					cl_finish(c, true);
				else
					cl_fail(c, "bytes before the end");
				return;
			}
			if (c->kind == K_VANISH_READ) {
				cl_finish(c, true);
				return;
			}
			cl_fail(c, "recv: %s", strerror(errno));
			return;
		}
		if (n == 0) {
			if (c->kind == K_RESET || c->kind == K_UNREACH) {
				if (c->answer_got == 0 && c->got == 0)
					cl_finish(c, true);
				else
					cl_fail(c, "bytes before the end");
				return;
			}
			if (c->kind == K_VANISH_READ) {
				cl_fail(c, "the answer ended early");
				return;
			}
			if (c->kind != K_ECHO && c->answer_got < ANSWER) {
				cl_fail(c, "end of file after %zu answer bytes",
				    c->answer_got);
				return;
			}
			if (c->got != cl_expect(c)) {
				cl_fail(c,
				    "end of file after %" PRIu64 " of %" PRIu64
				    " bytes",
				    c->got, cl_expect(c));
				return;
			}
			if (c->kind == K_ECHO && !c->shut) {
				cl_fail(c,
				    "end of file before the upload "
				    "ended");
				return;
			}
			cl_finish(c, true);
			return;
		}
		C.down += (uint64_t)n;
		if (c->kind == K_RESET || c->kind == K_UNREACH) {
			cl_fail(c, "%zd unexpected bytes", n);
			return;
		}
		if (c->kind != K_ECHO) {
			while (c->answer_got < ANSWER && i < (size_t)n)
				c->answer[c->answer_got++] = buf[i++];
			if (c->answer_got == ANSWER && i > 0) {
				uint64_t count = get64(c->answer);
				uint64_t hash = get64(c->answer + 8);

				if (count != c->len) {
					cl_fail(c,
					    "the server counted %" PRIu64
					    " bytes",
					    count);
					return;
				}
				if (c->kind == K_SINK && hash != c->hash) {
					cl_fail(c,
					    "checksum %016" PRIx64
					    " != sent %016" PRIx64,
					    hash, c->hash);
					return;
				}
				if (c->kind == K_SINK && !c->shut) {
					cl_fail(c,
					    "an answer before the end "
					    "of the upload");
					return;
				}
			}
		}
		if (c->kind == K_BENCH && i < (size_t)n) {
			/* the download benchmark counts bytes */
			c->got += (size_t)n - i;
			if (c->got > c->arg) {
				cl_fail(c, "more than %u bytes", c->arg);
				return;
			}
			continue;
		}
		if (i < (size_t)n && !cl_check(c, buf + i, (size_t)n - i))
			return;
		if (c->kind == K_VANISH_READ && c->got >= c->arg / 4) {
			cl_finish(c, true);
			return;
		}
	}
}

/* At most ten times a second: the scan covers the whole table. */
static void
cl_timeouts(void)
{
	static double next;
	double t = now();

	if (t < next)
		return;
	next = t + 0.1;

	for (int fd = 0; fd < MAX_FDS; fd++) {
		struct cl *c = C.c[fd];

		if (c != NULL && (t - c->start) * 1000 > (double)C.timeout_ms)
			cl_fail(c,
			    "no end after %" PRIu64 " ms (sent %" PRIu64
			    ", received %" PRIu64 ")",
			    C.timeout_ms, c->sent, c->got);
	}
}

/* CPU seconds (user + system) of process pid so far, from /proc; -1 when
 * it cannot be read (the process is gone). pid 0: this process. */
static double
cpu_seconds(long pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut = 0, st = 0;
	ssize_t n;
	int fd;

	if (pid == 0)
		snprintf(path, sizeof(path), "/proc/self/stat");
	else
		snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* the name in parentheses may hold spaces: fields count from the
	 * last ')'; utime and stime are fields 14 and 15, the 12th and
	 * 13th after it */
	if ((p = strrchr(buf, ')')) == NULL)
		return -1;
	for (int field = 1; field <= 13; field++) {
		char *end;
		unsigned long long v;

		p += strspn(p + 1, " ") + 1;
		if (field < 12) {
			p += strcspn(p, " ");
			continue;
		}
		errno = 0;
		v = strtoull(p, &end, 10);
		if (end == p || errno != 0)
			return -1;
		*(field == 12 ? &ut : &st) = v;
		p = end;
	}
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static enum kind
kind_for(const char *cmd, uint64_t i)
{
	if (strcmp(cmd, "vanish") == 0)
		return (enum kind)(K_VANISH_EARLY + i % 3);
	if (strcmp(cmd, "resetting") == 0)
		return K_RESET;
	if (strcmp(cmd, "unreachable") == 0)
		return K_UNREACH;
	if (strcmp(cmd, "bench") == 0)
		return K_BENCH;
	if (C.echo_every > 0 && i % C.echo_every == C.echo_every - 1)
		return K_ECHO;
	return K_SINK;
}

static int
cmd_clients(const char *cmd, int argc, char **argv)
{
	struct epoll_event evs[256];
	uint64_t conc = 0, parallel = 0;
	double t0, seconds = 0, warmup = 0;
	/* CPU of this process and of --cpu-pid over the measured window */
	double self0 = -1, self1 = -1, other0 = -1, other1 = -1;
	long cpu_pid = -1;
	bool have_target = false;

	C.seed = 1;
	C.max_size = 256 * 1024;
	C.reply_max = 64 * 1024;
	C.timeout_ms = 30000;
	C.bench = strcmp(cmd, "bench") == 0;
	if (strcmp(cmd, "unreachable") == 0 || strcmp(cmd, "resetting") == 0)
		C.timeout_ms = 5000;
	for (int i = 0; i < argc; i++) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (v == NULL)
			die("%s needs a value", o);
		i++;
		if (strcmp(o, "--vsock") == 0 || strcmp(o, "--unix") == 0 ||
		    strcmp(o, "--tcp") == 0) {
			parse_target(o, v);
			have_target = true;
		} else if (strcmp(o, "--connections") == 0) {
			C.n = num(o, v, 1000000);
		} else if (strcmp(o, "--concurrency") == 0) {
			conc = num(o, v, MAX_FDS / 2);
		} else if (strcmp(o, "--seed") == 0) {
			C.seed = num(o, v, UINT64_MAX);
		} else if (strcmp(o, "--max-size") == 0) {
			C.max_size = num(o, v, (uint64_t)1 << 40);
		} else if (strcmp(o, "--reply-max") == 0) {
			C.reply_max = num(o, v, UINT32_MAX);
		} else if (strcmp(o, "--echo-every") == 0) {
			C.echo_every = num(o, v, 1000000);
		} else if (strcmp(o, "--timeout-ms") == 0) {
			C.timeout_ms = num(o, v, 3600000);
		} else if (strcmp(o, "--size") == 0) {
			C.size = num(o, v, (uint64_t)1 << 40);
		} else if (strcmp(o, "--parallel") == 0) {
			parallel = num(o, v, 4096);
		} else if (strcmp(o, "--seconds") == 0) {
			seconds = (double)num(o, v, 3600);
		} else if (strcmp(o, "--warmup") == 0) {
			warmup = (double)num(o, v, 3600);
		} else if (strcmp(o, "--download") == 0) {
			C.download = num(o, v, 1) == 1;
		} else if (strcmp(o, "--cpu-pid") == 0) {
			cpu_pid = (long)num(o, v, 1u << 30);
		} else {
			die("%s: unknown option %s", cmd, o);
		}
	}
	if (!have_target)
		die("%s: give --vsock CID:PORT, --unix PATH or --tcp HOST:PORT",
		    cmd);
	if (C.bench) {
		if (parallel == 0 || seconds <= 0)
			die("bench needs --parallel and --seconds");
		if (C.download && C.size > UINT32_MAX)
			die("--download: --size at most %u", UINT32_MAX);
		conc = parallel;
		C.n = UINT64_MAX;
		C.timeout_ms = 60000;
	} else if (C.n == 0) {
		die("%s needs --connections N", cmd);
	}
	if (conc == 0 || conc > C.n)
		conc = C.n;
	raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	if ((C.ep = epoll_create1(0)) < 0)
		die("epoll: %s", strerror(errno));
	t0 = now();
	C.warm_at = t0 + warmup;
	C.end_at = C.warm_at + seconds;
	for (;;) {
		double t = now();
		int n;

		if (C.bench && self0 < 0 && t >= C.warm_at) {
			self0 = cpu_seconds(0);
			other0 = cpu_pid > 0 ? cpu_seconds(cpu_pid) : -1;
		}
		if (C.bench && self1 < 0 && t >= C.end_at) {
			self1 = cpu_seconds(0);
			other1 = cpu_pid > 0 ? cpu_seconds(cpu_pid) : -1;
		}
		while (C.open < conc && C.started < C.n &&
		    (!C.bench || t < C.end_at))
			cl_start(C.started, kind_for(cmd, C.started));
		if (C.open == 0 && (C.started >= C.n || C.bench))
			break;
		n = epoll_wait(C.ep, evs, 256, 100);
		if (n < 0 && errno != EINTR)
			die("epoll_wait: %s", strerror(errno));
		for (int i = 0; i < n; i++) {
			struct cl *c = evs[i].data.ptr;

			if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP) &&
			    !c->shut && !cl_write(c))
				continue; /* finished (and freed) */
			if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
				cl_read(c);
		}
		cl_timeouts();
	}
	if (C.bench) {
		double bytes = (double)C.transfers * (double)C.size;

		/* CPU ms per MiB moved in the window: -1 when not measured */
		double mib = bytes / 1048576.0;
		double cs = self0 >= 0 && self1 >= 0 && mib > 0
		    ? (self1 - self0) * 1000 / mib
		    : -1;
		double co = other0 >= 0 && other1 >= 0 && mib > 0
		    ? (other1 - other0) * 1000 / mib
		    : -1;

		printf(
		    "{\"Transfers\":%" PRIu64 ",\"Bytes\":%.0f,\"Seconds\":"
		    "%.3f,\"MiBps\":%.1f,\"PerSecond\":%.1f,\"Failed\":%" PRIu64
		    ",\"CpuMsPerMiB\":%.3f,\"PidCpuMsPerMiB\":%.3f}\n",
		    C.transfers, bytes, seconds, mib / seconds,
		    (double)C.transfers / seconds, C.failed, cs, co);
		return C.failed == 0 && C.transfers > 0 ? 0 : 1;
	}
	printf("{\"Connections\":%" PRIu64 ",\"Ok\":%" PRIu64
	       ",\"Failed\":%" PRIu64 ",\"Up\":%" PRIu64 ",\"Down\":%" PRIu64
	       ",\"MaxOpen\":%" PRIu64 ",\"Seconds\":%.3f}\n",
	    C.n, C.ok, C.failed, C.up, C.down, C.max_open, now() - t0);
	return C.failed == 0 && C.ok == C.n ? 0 : 1;
}

/* One connection with a pause halfway, blocking. */
static int
cmd_slow(int argc, char **argv)
{
	struct cl c;
	uint8_t buf[CHUNK];
	uint64_t seed = 7, size = 1 << 20, got = 0, count, hash;
	char line[64];
	bool paused = false;
	int fd, fl;

	for (int i = 0; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--seed") == 0)
			seed = num("--seed", argv[i + 1], UINT64_MAX);
		else if (strcmp(argv[i], "--size") == 0)
			size = num("--size", argv[i + 1], (uint64_t)1 << 32);
		else
			parse_target(argv[i], argv[i + 1]);
	}
	signal(SIGPIPE, SIG_IGN);
	if ((fd = open_target()) < 0)
		die("connect: %s", strerror(-fd));
	/* blocking from here */
	if ((fl = fcntl(fd, F_GETFL)) < 0 ||
	    fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0)
		die("fcntl: %s", strerror(errno));
	memset(&c, 0, sizeof(c));
	c.seed = mix64(seed);
	c.hash = FNV_OFFSET;
	buf[0] = 'S';
	memset(buf + 1, 0, 4);
	if (send(fd, buf, HDR, MSG_NOSIGNAL) != HDR)
		die("send: %s", strerror(errno));
	for (uint64_t off = 0; off < size;) {
		size_t want = size - off < CHUNK ? (size_t)(size - off) : CHUNK;
		ssize_t n;

		if (!paused && off >= size / 2) {
			paused = true;
			printf("half\n");
			fflush(stdout);
			if (fgets(line, sizeof(line), stdin) == NULL)
				die("standard input ended");
		}
		gen(c.seed, off, buf, want);
		if ((n = send(fd, buf, want, MSG_NOSIGNAL)) <= 0)
			die("send at %" PRIu64 ": %s", off, strerror(errno));
		c.hash = fnv(c.hash, buf, (size_t)n);
		off += (uint64_t)n;
	}
	if (shutdown(fd, SHUT_WR) != 0)
		die("shutdown: %s", strerror(errno));
	while (got < ANSWER) {
		ssize_t n = recv(fd, c.answer + got, ANSWER - got, 0);

		if (n <= 0)
			die("answer: %s",
			    n == 0 ? "end of file" : strerror(errno));
		got += (uint64_t)n;
	}
	count = get64(c.answer);
	hash = get64(c.answer + 8);
	if (recv(fd, buf, 1, 0) != 0)
		die("no end of file after the answer");
	close(fd);
	printf("{\"Count\":%" PRIu64 ",\"Ok\":%s}\n", count,
	    count == size && hash == c.hash ? "true" : "false");
	return count == size && hash == c.hash ? 0 : 1;
}

static int
cmd_blackhole(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sin);
	sigset_t mask;
	int lfd, fill, sig;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	/* backlog 0: one connection fills the queue */
	if ((lfd = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
	    bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
	    listen(lfd, 0) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&sin, &sl) != 0)
		die("blackhole: listen: %s", strerror(errno));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fill = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
	    connect(fill, (struct sockaddr *)&sin, sizeof(sin)) != 0)
		die("blackhole: fill: %s", strerror(errno));
	printf("{\"Port\":%u}\n", (unsigned)ntohs(sin.sin_port));
	sigwait(&mask, &sig);
	close(fill);
	close(lfd);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc < 2)
		die("usage: proxy_load serve|run|vanish|resetting|unreachable|"
		    "slow|blackhole|bench ...");
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (strcmp(argv[1], "serve") == 0)
		return cmd_serve(argc - 2, argv + 2);
	if (strcmp(argv[1], "slow") == 0)
		return cmd_slow(argc - 2, argv + 2);
	if (strcmp(argv[1], "blackhole") == 0)
		return cmd_blackhole();
	if (strcmp(argv[1], "run") == 0 || strcmp(argv[1], "vanish") == 0 ||
	    strcmp(argv[1], "resetting") == 0 ||
	    strcmp(argv[1], "unreachable") == 0 ||
	    strcmp(argv[1], "bench") == 0)
		return cmd_clients(argv[1], argc - 2, argv + 2);
	die("unknown command %s", argv[1]);
	return 2;
}
