/*
 * ward proxy: the server. One listening vsock socket (transport.h: AF_VSOCK
 * or the sandbox's Unix-socket emulation) shared by N worker threads, each
 * with its own epoll loop; the listener sits in every loop with
 * EPOLLEXCLUSIVE, so a connection wakes one worker, which then owns it.
 *
 * A connection is a pair: the enclave's socket (side 0) and a non-blocking
 * TCP socket to the remote (side 1). Both are registered edge-triggered for
 * reading and writing once; per side, rd/wr record "may be ready" and are
 * cleared only when a call says EAGAIN. Each direction ("up": enclave to
 * remote, "down": remote to enclave) moves bytes either with splice(2)
 * through a pipe of its own, so the payload is never copied to user
 * space, or with read/write through a buffer. By default (--splice auto)
 * "down" splices (past its first SPLICE_AFTER bytes, which are copied)
 * and "up" copies: measured on loopback (bench/proxy,
 * docs/performance.md), splicing TCP into the enclave's socket is
 * 1.4-1.8x faster than copying, and splicing the enclave's Unix socket
 * into TCP 1.1-1.4x slower (TCP gets the Unix socket's small page
 * fragments instead of filling its own). A socket that refuses splice
 * (EINVAL) is copied. When a direction reaches end of file and has delivered
 * everything, the other socket is shut down for writing (half-close);
 * when both are, the pair is closed. An error on either side ends the
 * pair, and the remote gets a reset rather than a clean end, so a cut
 * upload never looks complete to the server.
 *
 * A side that reports EPOLLERR (its SO_ERROR: a reset, say) or EPOLLHUP
 * (it takes no more bytes) is "gone": what was bound for it is dropped,
 * what it sent that is still in flight is delivered to the other side,
 * and then the pair ends, logged with the cause (end=remote-reset
 * (Connection reset by peer), end=enclave-closed, ...).
 *
 * Memory is bounded per connection (two pipes of RELAY_BYTES or buffers
 * of COPY_BYTES), connections by max_connections, time by the idle
 * timeout (the half-close timeout once one direction has ended) and the
 * connect timeout (for the whole connect, every address included),
 * checked every TICK_MS.
 *
 * The remote's addresses come from the resolver, a thread of its own
 * (getaddrinfo can block for seconds: never in a worker, never where
 * signals are read), as a snapshot each connection holds while it
 * connects.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <linux/vm_sockets.h>

#include "proxy/internal.h"
#include "ward/proxy.h"
#include "ward/transport.h"
#include "ward/util.h"

#define BACKLOG_MIN 128
#define EVENTS_MAX 256
#define ACCEPT_BATCH 64 /* accepts per wake-up, so one worker cannot hog */
#define RELAY_BYTES (64 * 1024) /* a pipe's default size, at most */
/* A copying direction's buffer. Twice a pipe: an upload through the
 * emulated vsock then takes about 12 reads and 10 sends per MiB instead
 * of 20 and 18, and the proxy 11% less CPU per MiB. 256 KiB and 1 MiB
 * measured more than 128 KiB (docs/performance.md, "vsock proxy"). */
#define COPY_BYTES (128 * 1024)
#define TURN_BYTES (1024 * 1024) /* per direction, then other work runs */
/* --splice auto: "down" copies its first bytes and splices only past
 * these, so a short answer costs no pipe (pipe2, F_GETPIPE_SZ, 2 close) */
#define SPLICE_AFTER (64 * 1024)
#define TICK_MS 250 /* timeouts are checked this often */
#define ACCEPT_PAUSE 0.1 /* seconds without accepting after EMFILE */
#define DNS_RETRY_S 5 /* a name that does not resolve is retried so often */
#define ATTEMPT_MIN 1.0 /* seconds an address gets at least, if left */
#define FDS_PER_CONN 6 /* two sockets, two pipes */
#define LINE_MAX_BYTES 512

/* A snapshot of the addresses the remote resolves to, shared by the
 * connections that use it. */
struct targets {
	atomic_uint refs;
	bool refused; /* an IP match whose names resolve apart now */
	struct ward_proxy_target t;
};

/*
 * The resolver: resolves the remote again every dns_refresh_s seconds
 * (DNS_RETRY_S after a failure) on a thread of its own and publishes the
 * addresses connections may use. For an IP match the rule of the check
 * is applied again each time: only addresses that REMOTE_ADDR and an
 * allowlist entry for the port both resolve to now. A failed lookup keeps
 * the last snapshot (a resolver outage does not cut the route); a lookup
 * that succeeds replaces it. The thread may outlive ward_proxy_serve (a
 * lookup in progress is not interrupted), so it owns copies of what it
 * reads and is freed by whichever of the two lets go last.
 */
struct resolver {
	atomic_uint refs;
	pthread_mutex_t lock; /* cur, stop, failing */
	pthread_cond_t cond;
	bool stop, failing;
	struct targets *cur;
	char host[WARD_PROXY_ADDRESS_MAX + 1];
	uint16_t port;
	enum ward_proxy_family family;
	enum ward_proxy_match match;
	struct ward_proxy_allowlist entries; /* IP match: those for port */
	unsigned refresh_s;
};

struct proxy;
struct conn;

struct worker {
	struct proxy *p;
	pthread_t thread;
	bool started;
	int ep, wake;
	struct conn *conns; /* every live connection, for the timer */
	struct conn *ready; /* connections with more to move */
	struct conn *dead; /* closed in this turn, freed at its end */
	unsigned n;
	unsigned starved; /* connections waiting for a descriptor */
	bool accepting, stopping, acked;
	double resume_accept, deadline;
};

struct proxy {
	const struct ward_proxy_opts *o;
	int lfd;
	char remote[WARD_PROXY_ADDRESS_MAX + 16]; /* HOST:PORT */
	unsigned max_connections, idle_s, half_s, connect_s, grace_s;
	pthread_mutex_t lock; /* acked */
	pthread_cond_t cond;
	struct resolver *rs;
	unsigned acked; /* workers that stopped accepting */
	atomic_uint nconns;
	atomic_ullong next_id;
	atomic_bool stopping;
	atomic_bool hurry; /* a second signal: cut what is in flight now */
	atomic_int failed; /* a worker's fatal error */
	int failfd; /* ... wakes the main thread */
	int donefd; /* each worker adds 1 when it ends */
	struct worker *workers;
	unsigned nworkers;
};

/* One direction. */
struct half {
	int pipe[2]; /* splice: -1 until first used */
	size_t cap; /* what the pipe or buffer holds */
	size_t held; /* bytes read from the source, not yet written */
	uint8_t *buf; /* read/write: COPY_BYTES */
	size_t off; /* read/write: first byte of buf to write */
	uint64_t bytes; /* written to the destination */
	bool splice, eof, shut;
	bool splice_later; /* copy the first SPLICE_AFTER bytes, then splice */
};

enum { ENCLAVE = 0, REMOTE = 1 };

/* epoll's data: which socket of which connection */
struct side {
	struct conn *c;
	int which;
};

struct conn {
	struct worker *w;
	uint64_t id;
	int fd[2];
	bool rd[2], wr[2];
	bool gone[2]; /* the side takes no more bytes (EPOLLERR, EPOLLHUP) */
	struct side side[2];
	struct half up, down; /* up: ENCLAVE -> REMOTE */
	bool connecting, dead, in_ready, counted;
	bool starved; /* waits for a descriptor to connect with */
	struct targets *tg;
	size_t next_target;
	int last_err; /* the last connect's errno */
	double start, active;
	double connect_deadline; /* for the whole connect */
	double attempt_deadline; /* for the address being tried */
	char peer[48], remote[64];
	const char *why;
	char detail[96];
	struct conn *prev, *next, *ready_next, *dead_next;
};

/* epoll data for the two fds that are not connections */
static char listener_tag, wake_tag;

/* ---- helpers ---------------------------------------------------------- */

static void
targets_unref(struct targets *t)
{
	if (t != NULL && atomic_fetch_sub(&t->refs, 1) == 1)
		free(t);
}

static struct targets *
targets_get(struct proxy *p)
{
	struct resolver *rs = p->rs;
	struct targets *t;

	pthread_mutex_lock(&rs->lock);
	if ((t = rs->cur) != NULL)
		atomic_fetch_add(&t->refs, 1);
	pthread_mutex_unlock(&rs->lock);
	return t;
}

/* "IP:PORT" ("[IP]:PORT" for IPv6) of a socket address. */
static void
format_sockaddr(const struct sockaddr_storage *ss, char *out, size_t cap)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)ss;

		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
		snprintf(out, cap, "%s:%u", ip, (unsigned)ntohs(in->sin_port));
	} else {
		const struct sockaddr_in6 *in6 = (const void *)ss;

		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
		snprintf(
		    out, cap, "[%s]:%u", ip, (unsigned)ntohs(in6->sin6_port));
	}
}

static void set_why(struct conn *c, const char *why, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void
set_why(struct conn *c, const char *why, const char *fmt, ...)
{
	va_list ap;

	if (c->why != NULL)
		return; /* the first cause is the one to report */
	c->why = why;
	va_start(ap, fmt);
	vsnprintf(c->detail, sizeof(c->detail), fmt, ap);
	va_end(ap);
}

static void
set_end(struct conn *c, const char *why)
{
	if (c->why == NULL)
		c->why = why;
}

/*
 * The connection's one line, at its end: UTC time, id, peer, remote, bytes
 * each way, duration and why it ended. Never payload. One write(2), so
 * lines from several workers do not interleave.
 */
static void
log_conn(const struct proxy *p, const struct conn *c)
{
	char line[LINE_MAX_BYTES], stamp[32];
	struct timespec ts;
	struct tm tm;
	int n;

	if (p->o->quiet)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	n = snprintf(line, sizeof(line),
	    "%s.%03ldZ ward proxy: conn=%llu peer=%s remote=%s up=%llu "
	    "down=%llu time=%.3fs end=%s%s%s%s\n",
	    stamp, ts.tv_nsec / 1000000, (unsigned long long)c->id, c->peer,
	    c->remote[0] != '\0' ? c->remote : p->remote,
	    (unsigned long long)c->up.bytes, (unsigned long long)c->down.bytes,
	    ward_now() - c->start, c->why != NULL ? c->why : "done",
	    c->detail[0] != '\0' ? " (" : "", c->detail,
	    c->detail[0] != '\0' ? ")" : "");
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line))
		n = (int)sizeof(line) - 1;
	/* a failed log write has nowhere to be reported */
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		return;
}

/* The enclave's name for the log: vsock CID:port, or the emulation's
 * peer process. */
static void
peer_name(int fd, const struct sockaddr_storage *ss, char *out, size_t cap)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (ss->ss_family == AF_VSOCK) {
		const struct sockaddr_vm *vm = (const void *)ss;

		snprintf(out, cap, "vsock:%u:%u", (unsigned)vm->svm_cid,
		    (unsigned)vm->svm_port);
	} else if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
		snprintf(out, cap, "unix:pid=%ld", (long)cred.pid);
	} else {
		snprintf(out, cap, "unknown");
	}
}

/* ---- relaying --------------------------------------------------------- */

static void
half_release(struct half *h)
{
	for (int i = 0; i < 2; i++)
		if (h->pipe[i] >= 0) {
			close(h->pipe[i]);
			h->pipe[i] = -1;
		}
	free(h->buf);
	h->buf = NULL;
	h->cap = 0;
}

/* The pipe or buffer, made when the direction first carries bytes:
 * 0 or -errno. */
static ssize_t
half_ready(struct half *h)
{
	if (h->splice && h->pipe[0] < 0) {
		int sz;

		if (pipe2(h->pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
			if (errno != EMFILE && errno != ENFILE)
				return -errno;
			/* out of descriptors: copy instead */
			h->splice = false;
			return half_ready(h);
		}
		sz = fcntl(h->pipe[0], F_GETPIPE_SZ);
		h->cap = sz > 0 ? (size_t)sz : RELAY_BYTES;
		/* the buffer that takes over on EINVAL must hold it all */
		if (h->cap > RELAY_BYTES)
			h->cap = RELAY_BYTES;
	} else if (!h->splice && h->buf == NULL) {
		if ((h->buf = malloc(COPY_BYTES)) == NULL)
			return -ENOMEM;
		h->cap = COPY_BYTES;
	}
	return 0;
}

/* From the source into the pipe or buffer: bytes, 0 at end, -errno. */
static ssize_t
half_in(struct half *h, int fd)
{
	ssize_t n;

	if (h->splice) {
		n = splice(fd, NULL, h->pipe[1], NULL, h->cap - h->held,
		    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n < 0 && errno == EINVAL && h->held == 0) {
			/* this socket cannot splice: read and write */
			half_release(h);
			h->splice = false;
			if ((n = half_ready(h)) != 0)
				return n;
			return half_in(h, fd);
		}
		return n < 0 ? -errno : n;
	}
	if (h->off > 0 && h->held > 0)
		memmove(h->buf, h->buf + h->off, h->held);
	h->off = 0;
	n = read(fd, h->buf + h->held, h->cap - h->held);
	return n < 0 ? -errno : n;
}

/* From the pipe or buffer to the destination: bytes or -errno. */
static ssize_t
half_out(struct half *h, int fd)
{
	ssize_t n;

	if (h->splice) {
		n = splice(h->pipe[0], NULL, fd, NULL, h->held,
		    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n < 0 && errno == EINVAL) {
			/* this socket takes no splice: what the pipe holds
			 * (held <= cap <= RELAY_BYTES < COPY_BYTES) moves to
			 * a buffer */
			uint8_t *b = malloc(COPY_BYTES);
			size_t got = 0;

			if (b == NULL)
				return -ENOMEM;
			while (got < h->held) {
				ssize_t k =
				    read(h->pipe[0], b + got, h->held - got);

				if (k <= 0) {
					free(b);
					return -EIO;
				}
				got += (size_t)k;
			}
			half_release(h);
			h->splice = false;
			h->buf = b;
			h->cap = COPY_BYTES;
			h->off = 0;
			return half_out(h, fd);
		}
		return n < 0 ? -errno : n;
	}
	n = send(fd, h->buf + h->off, h->held, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n > 0)
		h->off += (size_t)n;
	return n < 0 ? -errno : n;
}

enum relay_result { RELAY_IDLE, RELAY_MORE, RELAY_FAILED };

static const char *
side_name(int which)
{
	return which == ENCLAVE ? "enclave-error" : "remote-error";
}

/* Side which failed (a reset, or another error) or closed: it takes no
 * more bytes, and the log says why. */
static void
side_failed(struct conn *c, int which, const char *op, int err)
{
	const char *why = err == ECONNRESET
	    ? (which == ENCLAVE ? "enclave-reset" : "remote-reset")
	    : err == EPIPE
	    ? (which == ENCLAVE ? "enclave-closed" : "remote-closed")
	    : side_name(which);

	c->gone[which] = true;
	set_why(c, why, "%s%s%s", op, op[0] != '\0' ? ": " : "", strerror(err));
}

/*
 * A side that is gone takes nothing more: what was bound for it is
 * dropped, and that direction counts as finished. When something could
 * still have come for it, the log says the side closed (or, when its
 * SO_ERROR said so, that it was reset).
 */
static void
drop_toward(struct conn *c, struct half *h, int d)
{
	if (h->shut)
		return;
	if (!h->eof || h->held > 0)
		set_end(c, d == ENCLAVE ? "enclave-closed" : "remote-closed");
	h->held = 0;
	h->off = 0;
	half_release(h);
	h->eof = h->shut = true;
}

/*
 * Move what can move from side s to side d without blocking, up to
 * TURN_BYTES. A splice into the pipe that says EAGAIN while the pipe
 * holds bytes may mean "pipe full" rather than "nothing to read", so rd
 * stays set until the pipe is drained and the source says EAGAIN again.
 */
static enum relay_result
relay(struct conn *c, struct half *h, int s, int d)
{
	size_t moved = 0;
	ssize_t n;

	for (;;) {
		bool progress = false;

		if (h->held > 0 && c->wr[d]) {
			if ((n = half_out(h, c->fd[d])) > 0) {
				h->held -= (size_t)n;
				h->bytes += (uint64_t)n;
				moved += (size_t)n;
				c->active = ward_now();
				progress = true;
			} else if (n == -EAGAIN || n == 0) {
				c->wr[d] = false;
			} else if (n == -ENOMEM || n == -EIO) {
				set_why(
				    c, "no-resources", "%s", strerror((int)-n));
				return RELAY_FAILED;
			} else {
				/* d takes nothing more; what comes from it
				 * still goes to s */
				side_failed(c, d, "write", (int)-n);
				drop_toward(c, h, d);
				return RELAY_IDLE;
			}
		}
		/* a long "down" stream moves to splice once the buffer is
		 * empty (SPLICE_AFTER) */
		if (h->splice_later && h->held == 0 &&
		    h->bytes >= SPLICE_AFTER) {
			half_release(h);
			h->off = 0;
			h->splice = true;
			h->splice_later = false;
		}
		/* the pipe (or buffer) is made when bytes first come */
		if (!h->eof && c->rd[s] && h->cap == 0 &&
		    (n = half_ready(h)) != 0) {
			set_why(c, "no-resources", "%s", strerror((int)-n));
			return RELAY_FAILED;
		}
		if (!h->eof && c->rd[s] && h->held < h->cap) {
			n = half_in(h, c->fd[s]);
			if (n > 0) {
				h->held += (size_t)n;
				progress = true;
			} else if (n == 0) {
				h->eof = true;
				progress = true;
			} else if (n == -EAGAIN) {
				if (h->held == 0 || !h->splice)
					c->rd[s] = false;
			} else {
				/* s sends nothing more; what it sent is still
				 * delivered */
				side_failed(c, s, "read", (int)-n);
				h->eof = true;
				progress = true;
			}
		}
		if (h->eof && h->held == 0 && !h->shut) {
			/* half-close: the other side reads end of file, and
			 * may still answer */
			if (shutdown(c->fd[d], SHUT_WR) != 0 &&
			    errno != ENOTCONN) {
				set_why(c, side_name(d), "shutdown: %s",
				    strerror(errno));
				return RELAY_FAILED;
			}
			h->shut = true;
			half_release(h);
		}
		if (!progress)
			return RELAY_IDLE;
		if (moved >= TURN_BYTES)
			return RELAY_MORE;
	}
}

static void conn_end(struct conn *c);
static void connect_done(struct conn *c);
static void accept_pause(struct worker *w, const char *what, int err);

static void
ready_push(struct conn *c)
{
	if (c->in_ready)
		return;
	c->in_ready = true;
	c->ready_next = c->w->ready;
	c->w->ready = c;
}

static void
pump(struct conn *c)
{
	enum relay_result up, down;

	if (c->dead || c->connecting || c->starved)
		return;
	if (c->gone[REMOTE])
		drop_toward(c, &c->up, REMOTE);
	if (c->gone[ENCLAVE])
		drop_toward(c, &c->down, ENCLAVE);
	up = c->up.shut ? RELAY_IDLE : relay(c, &c->up, ENCLAVE, REMOTE);
	if (c->gone[ENCLAVE])
		drop_toward(c, &c->down, ENCLAVE);
	down = up == RELAY_FAILED || c->down.shut
	    ? RELAY_IDLE
	    : relay(c, &c->down, REMOTE, ENCLAVE);
	if (c->gone[REMOTE])
		drop_toward(c, &c->up, REMOTE);
	if (up == RELAY_FAILED || down == RELAY_FAILED ||
	    (c->up.shut && c->down.shut)) {
		conn_end(c);
		return;
	}
	if (up == RELAY_MORE || down == RELAY_MORE)
		ready_push(c);
}

/* ---- connections ------------------------------------------------------ */

/* Close both sockets, log, and queue the connection to be freed once the
 * events of this turn, which may still point at it, are handled. */
static void
conn_end(struct conn *c)
{
	struct worker *w = c->w;
	struct proxy *p = w->p;

	if (c->dead)
		return;
	c->dead = true;
	if (c->why == NULL)
		c->why = "done";
	if (c->fd[REMOTE] >= 0) {
		/* anything but a clean end (the enclave's end of file, then
		 * close, included) resets the remote, so that a cut upload
		 * never reads as a complete one; a remote that failed or
		 * closed needs no reset */
		if (strcmp(c->why, "done") != 0 &&
		    strcmp(c->why, "enclave-closed") != 0 &&
		    strncmp(c->why, "remote-", 7) != 0) {
			struct linger lg = {.l_onoff = 1, .l_linger = 0};

			setsockopt(c->fd[REMOTE], SOL_SOCKET, SO_LINGER, &lg,
			    sizeof(lg));
		}
		close(c->fd[REMOTE]);
		c->fd[REMOTE] = -1;
	}
	if (c->fd[ENCLAVE] >= 0) {
		close(c->fd[ENCLAVE]);
		c->fd[ENCLAVE] = -1;
	}
	half_release(&c->up);
	half_release(&c->down);
	log_conn(p, c);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	w->n--;
	if (c->counted)
		atomic_fetch_sub(&p->nconns, 1);
	if (c->starved)
		w->starved--;
	targets_unref(c->tg);
	c->tg = NULL;
	c->dead_next = w->dead;
	w->dead = c;
}

static int
watch(struct worker *w, int fd, void *data)
{
	struct epoll_event ev = {
	    .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
	    .data.ptr = data};

	return epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev) == 0 ? 0 : -errno;
}

/*
 * The connect timeout is for the whole connect: each address gets an
 * equal share of what is left (at least ATTEMPT_MIN seconds, if that much
 * is left), so that a name with many unreachable addresses cannot
 * multiply it, and a later address is still tried when an early one
 * hangs.
 */
static void
attempt_deadline(struct conn *c)
{
	double now = ward_now(), left = c->connect_deadline - now;
	size_t remaining = c->tg->t.n - c->next_target + 1;
	double share = left / (double)remaining;

	if (share < ATTEMPT_MIN)
		share = ATTEMPT_MIN;
	c->attempt_deadline = now + share < c->connect_deadline
	    ? now + share
	    : c->connect_deadline;
}

/*
 * Start a non-blocking connect to the next address of the snapshot; when
 * none is left, end the connection with the last error.
 */
static void
connect_next(struct conn *c)
{
	while (c->next_target < c->tg->t.n) {
		size_t i = c->next_target++;
		const struct sockaddr_storage *sa = &c->tg->t.addr[i];
		int fd, one = 1, e;

		format_sockaddr(sa, c->remote, sizeof(c->remote));
		fd = socket(sa->ss_family,
		    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0 && (errno == EMFILE || errno == ENFILE)) {
			/* out of descriptors: wait for one (within the
			 * connect timeout) rather than fail; accepting
			 * pauses meanwhile, as it would on accept's EMFILE */
			accept_pause(c->w, "socket", errno);
			c->next_target--;
			c->starved = true;
			c->w->starved++;
			return;
		}
		if (fd < 0) {
			c->last_err = errno;
			continue;
		}
		/* a relay adds no delay of its own: TLS records go out as
		 * they come */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (connect(fd, (const struct sockaddr *)sa, c->tg->t.len[i]) !=
		        0 &&
		    errno != EINPROGRESS) {
			c->last_err = errno;
			close(fd);
			continue;
		}
		if ((e = watch(c->w, fd, &c->side[REMOTE])) != 0) {
			c->last_err = -e;
			close(fd);
			continue;
		}
		c->fd[REMOTE] = fd;
		c->connecting = true;
		c->rd[REMOTE] = c->wr[REMOTE] = false;
		attempt_deadline(c);
		/* on loopback the handshake is often over already: relay
		 * now rather than a turn of the loop later */
		connect_done(c);
		return;
	}
	if (c->tg->refused)
		set_why(c, "not-allowed",
		    "%s resolves to no address of an allowlist entry now",
		    c->w->p->o->remote_host);
	else if (c->tg->t.n == 0)
		set_why(c, "unresolved", "%s", c->w->p->o->remote_host);
	else if (c->last_err == ETIMEDOUT)
		set_why(c, "connect-timeout", "%zu of %zu addresses tried",
		    c->next_target, c->tg->t.n);
	else
		set_why(c, "connect-failed", "%s", strerror(c->last_err));
	conn_end(c);
}

/* The remote socket reported: connected, or try the next address. */
static void
connect_done(struct conn *c)
{
	int err = 0;
	socklen_t len = sizeof(err);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (getsockopt(c->fd[REMOTE], SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		err = errno;
	if (err == 0 &&
	    getpeername(c->fd[REMOTE], (struct sockaddr *)&ss, &sl) != 0) {
		if (errno == ENOTCONN)
			return; /* still connecting (a stale event) */
		err = errno;
	}
	if (err == EINPROGRESS || err == EALREADY)
		return;
	if (err != 0) {
		c->last_err = err;
		close(c->fd[REMOTE]);
		c->fd[REMOTE] = -1;
		c->connecting = false;
		connect_next(c);
		return;
	}
	/* Writable now; readable only once the remote sends, which the
	 * edge-triggered registration made before the connect reports: so
	 * no pipe is made for a direction that carries nothing yet. */
	c->connecting = false;
	c->wr[REMOTE] = true;
	c->active = ward_now();
	pump(c);
}

static void
conn_new(struct worker *w, int fd, const struct sockaddr_storage *ss)
{
	struct proxy *p = w->p;
	struct conn *c;
	int e;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		close(fd);
		return;
	}
	c->w = w;
	c->id = atomic_fetch_add(&p->next_id, 1);
	c->fd[ENCLAVE] = fd;
	c->fd[REMOTE] = -1;
	c->up.pipe[0] = c->up.pipe[1] = -1;
	c->down.pipe[0] = c->down.pipe[1] = -1;
	c->up.splice = p->o->splice == WARD_PROXY_SPLICE_ALWAYS;
	c->down.splice = p->o->splice == WARD_PROXY_SPLICE_ALWAYS;
	c->down.splice_later = p->o->splice == WARD_PROXY_SPLICE_AUTO;
	c->side[ENCLAVE] = (struct side){c, ENCLAVE};
	c->side[REMOTE] = (struct side){c, REMOTE};
	c->start = c->active = ward_now();
	c->connect_deadline = c->start + p->connect_s;
	c->rd[ENCLAVE] = c->wr[ENCLAVE] = true;
	peer_name(fd, ss, c->peer, sizeof(c->peer));
	c->next = w->conns;
	if (w->conns != NULL)
		w->conns->prev = c;
	w->conns = c;
	w->n++;
	if (atomic_fetch_add(&p->nconns, 1) >= p->max_connections) {
		atomic_fetch_sub(&p->nconns, 1);
		set_why(c, "limit", "%u connections", p->max_connections);
		conn_end(c);
		return;
	}
	c->counted = true;
	if ((e = watch(w, fd, &c->side[ENCLAVE])) != 0) {
		set_why(c, "enclave-error", "epoll: %s", strerror(-e));
		conn_end(c);
		return;
	}
	c->tg = targets_get(p);
	if (c->tg == NULL) {
		set_why(c, "unresolved", "%s", p->o->remote_host);
		conn_end(c);
		return;
	}
	connect_next(c);
}

/* ---- the worker loop -------------------------------------------------- */

static void
listener_watch(struct worker *w, bool on)
{
	struct epoll_event ev = {
	    .events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = &listener_tag};

	if (on == w->accepting)
		return;
	if (on) {
		if (epoll_ctl(w->ep, EPOLL_CTL_ADD, w->p->lfd, &ev) == 0)
			w->accepting = true;
	} else {
		epoll_ctl(w->ep, EPOLL_CTL_DEL, w->p->lfd, NULL);
		w->accepting = false;
	}
}

static void
accept_some(struct worker *w)
{
	for (int i = 0; i < ACCEPT_BATCH && w->accepting; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd;

		memset(&ss, 0, sizeof(ss));
		fd = accept4(w->p->lfd, (struct sockaddr *)&ss, &sl,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			ward_vsock_buffer(fd);
			conn_new(w, fd, &ss);
			continue;
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
			continue;
		accept_pause(w, "accept", errno);
		return;
	}
}

/*
 * Out of descriptors or memory: a level-triggered listener would wake
 * this loop at once, so stop listening for ACCEPT_PAUSE; the loop's
 * timeout is at most what is left of it (accept_resume).
 */
static void
accept_pause(struct worker *w, const char *what, int err)
{
	if (w->resume_accept > 0)
		return;
	ward_warn("proxy: %s: %s; pausing for %.0f ms", what, strerror(err),
	    ACCEPT_PAUSE * 1000);
	listener_watch(w, false);
	w->resume_accept = ward_now() + ACCEPT_PAUSE;
}

/* The accept pause after EMFILE ends (checked every turn of the loop,
 * whose timeout is at most what is left of it). */
static void
accept_resume(struct worker *w, double now)
{
	struct conn *c, *nx;

	if (w->resume_accept == 0 || now < w->resume_accept)
		return;
	w->resume_accept = 0;
	/* the connections waiting for a descriptor go first; while one
	 * still waits, accepting more would only take descriptors from it */
	for (c = w->conns; c != NULL && w->starved > 0; c = nx) {
		nx = c->next;
		if (!c->starved)
			continue;
		c->starved = false;
		w->starved--;
		connect_next(c);
	}
	if (w->resume_accept == 0 && !w->stopping)
		listener_watch(w, true);
}

/* Every TICK_MS: timeouts and the shutdown deadline. */
static void
tick(struct worker *w)
{
	struct proxy *p = w->p;
	double now = ward_now();
	struct conn *c, *nx;

	for (c = w->conns; c != NULL; c = nx) {
		nx = c->next;
		if (c->dead)
			continue;
		if (w->stopping && now >= w->deadline) {
			set_end(c, "shutdown");
			conn_end(c);
		} else if ((c->connecting || c->starved) &&
		    now >= c->connect_deadline) {
			set_why(c, "connect-timeout",
			    "%u s, %zu of %zu addresses tried", p->connect_s,
			    c->next_target, c->tg->t.n);
			conn_end(c);
		} else if (c->connecting && now >= c->attempt_deadline) {
			close(c->fd[REMOTE]);
			c->fd[REMOTE] = -1;
			c->connecting = false;
			c->last_err = ETIMEDOUT;
			connect_next(c);
		} else if (c->starved) {
			continue;
		} else if (!c->connecting && (c->up.shut || c->down.shut) &&
		    now - c->active >= p->half_s) {
			/* one direction has ended: a peer that half-closed
			 * and vanished does not hold a slot for long */
			set_why(c, "half-close-timeout", "%u s", p->half_s);
			conn_end(c);
		} else if (!c->connecting && now - c->active >= p->idle_s) {
			set_why(c, "idle-timeout", "%u s", p->idle_s);
			conn_end(c);
		}
	}
}

/* The end of a turn: no event or list points at the connections closed
 * in it any more, so they can go. */
static void
end_turn(struct worker *w)
{
	struct conn **pp = &w->ready;

	while (*pp != NULL) {
		struct conn *c = *pp;

		if (c->dead) {
			*pp = c->ready_next;
			c->in_ready = false;
		} else {
			pp = &c->ready_next;
		}
	}
	while (w->dead != NULL) {
		struct conn *c = w->dead;

		w->dead = c->dead_next;
		free(c);
	}
}

/* Tell the main thread this worker accepts no more (once). */
static void
worker_ack(struct worker *w)
{
	struct proxy *p = w->p;

	if (w->acked)
		return;
	w->acked = true;
	pthread_mutex_lock(&p->lock);
	p->acked++;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

static void
on_wake(struct worker *w)
{
	struct proxy *p = w->p;
	uint64_t v;

	if (read(w->wake, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
	if (!atomic_load(&p->stopping))
		return;
	if (!w->stopping) {
		w->stopping = true;
		w->deadline = ward_now() + p->grace_s;
		listener_watch(w, false);
		worker_ack(w);
	}
	if (atomic_load(&p->hurry)) {
		/* a second signal: no more grace */
		w->deadline = 0;
		for (struct conn *c = w->conns; c != NULL; c = c->next)
			if (!c->dead) {
				set_end(c, "shutdown");
				conn_end(c);
			}
	}
}

/*
 * EPOLLERR: the side's pending error (read, and so cleared, here) is the
 * cause the log gives; the side takes no more bytes. What it sent that is
 * still readable, or held in the pipe, is delivered to the other side
 * before the pair ends.
 */
static void
side_error(struct conn *c, int which)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(c->fd[which], SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		err = errno;
	if (err == EPIPE) {
		/* TCP's word for a reset after the peer's end of file */
		c->gone[which] = true;
		set_why(c, which == ENCLAVE ? "enclave-reset" : "remote-reset",
		    "after its end of file");
	} else if (err != 0) {
		side_failed(c, which, "", err);
	}
}

static void
on_event(struct worker *w, const struct epoll_event *ev)
{
	struct side *s;
	struct conn *c;

	if (ev->data.ptr == &listener_tag) {
		accept_some(w);
		return;
	}
	if (ev->data.ptr == &wake_tag) {
		on_wake(w);
		return;
	}
	s = ev->data.ptr;
	c = s->c;
	if (c->dead)
		return;
	if (ev->events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		c->rd[s->which] = true;
	if (ev->events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
		c->wr[s->which] = true;
	if (s->which == REMOTE && c->connecting) {
		connect_done(c); /* it reads SO_ERROR itself */
		return;
	}
	if (ev->events & EPOLLERR)
		side_error(c, s->which);
	if (ev->events & EPOLLHUP)
		c->gone[s->which] = true;
	if ((c->connecting || c->starved) && c->gone[ENCLAVE] &&
	    c->why != NULL) {
		/* the enclave was reset before the remote answered the
		 * connect: nothing it sent is worth delivering */
		conn_end(c);
		return;
	}
	pump(c);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct epoll_event evs[EVENTS_MAX];
	double next_tick = ward_now() + TICK_MS / 1000.0;

	while (!(w->stopping && w->n == 0)) {
		int n, timeout;
		double now = ward_now();
		struct conn *list;

		timeout = (int)((next_tick - now) * 1000) + 1;
		if (w->resume_accept > 0 &&
		    (int)((w->resume_accept - now) * 1000) + 1 < timeout)
			timeout = (int)((w->resume_accept - now) * 1000) + 1;
		if (timeout < 0)
			timeout = 0;
		if (w->ready != NULL)
			timeout = 0;
		n = epoll_wait(w->ep, evs, EVENTS_MAX, timeout);
		if (n < 0 && errno != EINTR) {
			ward_warn("proxy: epoll_wait: %s", strerror(errno));
			atomic_store(&w->p->failed, WARD_EINTERNAL);
			if (eventfd_write(w->p->failfd, 1) != 0)
				ward_debug(
				    "proxy: eventfd: %s", strerror(errno));
			break;
		}
		for (int i = 0; i < n; i++)
			on_event(w, &evs[i]);
		/* connections that used up their turn go again */
		list = w->ready;
		w->ready = NULL;
		while (list != NULL) {
			struct conn *c = list;

			list = c->ready_next;
			c->in_ready = false;
			pump(c);
		}
		now = ward_now();
		accept_resume(w, now);
		if (now >= next_tick) {
			tick(w);
			next_tick = ward_now() + TICK_MS / 1000.0;
		}
		end_turn(w);
	}
	/* what is left after a fatal error */
	listener_watch(w, false);
	while (w->conns != NULL) {
		set_end(w->conns, "shutdown");
		conn_end(w->conns);
	}
	end_turn(w);
	worker_ack(w);
	if (eventfd_write(w->p->donefd, 1) != 0)
		ward_debug("proxy: eventfd: %s", strerror(errno));
	return NULL;
}

/* ---- start and stop --------------------------------------------------- */

/* Enough descriptors for max_connections: the soft limit is raised
 * toward the hard one. */
static void
raise_nofile(unsigned max_connections)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)max_connections * FDS_PER_CONN + 64;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want
	    ? want
	    : rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < want)
		ward_warn("proxy: %u connections may need %llu file "
		          "descriptors but the limit is %llu; beyond it "
		          "connections are closed (no-resources)",
		    max_connections, (unsigned long long)want,
		    (unsigned long long)rl.rlim_cur);
}

static void
resolver_unref(struct resolver *rs)
{
	if (rs == NULL || atomic_fetch_sub(&rs->refs, 1) != 1)
		return;
	targets_unref(rs->cur);
	ward_proxy_allowlist_free(&rs->entries);
	pthread_cond_destroy(&rs->cond);
	pthread_mutex_destroy(&rs->lock);
	free(rs);
}

static bool
same_targets(
    const struct ward_proxy_target *a, const struct ward_proxy_target *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (a->len[i] != b->len[i] ||
		    memcmp(&a->addr[i], &b->addr[i], a->len[i]) != 0)
			return false;
	return true;
}

/* One lookup: the snapshot is replaced when it succeeds (and said so in
 * the log when the addresses changed), kept when it fails. */
static void
resolver_pass(struct resolver *rs, bool first)
{
	struct targets *t, *old;
	char list[WARD_PROXY_TARGETS_MAX * 50] = "";
	size_t used = 0;
	bool changed;
	int r;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return;
	atomic_init(&t->refs, 1);
	if (rs->match == WARD_PROXY_MATCH_NAME)
		r = ward_proxy_resolve(rs->host, rs->port, rs->family, &t->t);
	else
		r = proxy_shared_targets(
		    &rs->entries, rs->host, rs->port, rs->family, &t->t);
	if (r != 0) {
		ward_warn("proxy: %s; %s, trying again in %d s", ward_errmsg(),
		    rs->cur != NULL ? "keeping the addresses last resolved"
		                    : "connections fail until it does",
		    DNS_RETRY_S);
		free(t);
		pthread_mutex_lock(&rs->lock);
		rs->failing = true;
		pthread_mutex_unlock(&rs->lock);
		return;
	}
	t->refused = t->t.n == 0;
	pthread_mutex_lock(&rs->lock);
	old = rs->cur;
	changed = old == NULL || old->refused != t->refused ||
	    !same_targets(&old->t, &t->t);
	rs->cur = t;
	rs->failing = false;
	pthread_mutex_unlock(&rs->lock);
	targets_unref(old);
	if (!changed)
		return;
	for (size_t i = 0; i < t->t.n && used < sizeof(list); i++) {
		char a[64];

		format_sockaddr(&t->t.addr[i], a, sizeof(a));
		used += (size_t)snprintf(list + used, sizeof(list) - used,
		    "%s%s", i > 0 ? " " : "", a);
	}
	if (t->refused)
		ward_warn("proxy: %s resolves to no address an allowlist "
		          "entry for port %u resolves to now; connections "
		          "are refused until it does",
		    rs->host, (unsigned)rs->port);
	else if (first)
		ward_debug("proxy: %s: %s", rs->host, list);
	else
		ward_info("proxy: %s now: %s", rs->host, list);
}

static void *
resolver_main(void *arg)
{
	struct resolver *rs = arg;

	pthread_mutex_lock(&rs->lock);
	while (!rs->stop) {
		struct timespec ts;
		unsigned wait = rs->failing && rs->refresh_s > DNS_RETRY_S
		    ? DNS_RETRY_S
		    : rs->refresh_s;
		int e = 0;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += (time_t)wait;
		while (!rs->stop && e != ETIMEDOUT)
			e = pthread_cond_timedwait(&rs->cond, &rs->lock, &ts);
		if (rs->stop)
			break;
		pthread_mutex_unlock(&rs->lock);
		resolver_pass(rs, false);
		pthread_mutex_lock(&rs->lock);
	}
	pthread_mutex_unlock(&rs->lock);
	resolver_unref(rs);
	return NULL;
}

/*
 * The resolver for the destination the check admitted (match), with the
 * first snapshot: for an IP match the addresses the check found, for a
 * name match a first lookup (a name that does not resolve yet is
 * retried). Its thread starts with resolver_start.
 */
static int
resolver_new(const struct ward_proxy_opts *o, enum ward_proxy_match match,
    const struct ward_proxy_target *allowed, unsigned refresh_s,
    struct resolver **out)
{
	struct resolver *rs;
	pthread_condattr_t ca;
	int r;

	*out = NULL;
	if ((rs = calloc(1, sizeof(*rs))) == NULL)
		return ward_enomem();
	atomic_init(&rs->refs, 1);
	pthread_mutex_init(&rs->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&rs->cond, &ca);
	pthread_condattr_destroy(&ca);
	snprintf(rs->host, sizeof(rs->host), "%s", o->remote_host);
	rs->port = o->remote_port;
	rs->family = o->family;
	rs->match = match;
	rs->refresh_s = refresh_s;
	snprintf(rs->entries.source, sizeof(rs->entries.source), "%s",
	    o->allowlist->source);
	for (size_t i = 0; match == WARD_PROXY_MATCH_IP && i < o->allowlist->n;
	     i++)
		if (o->allowlist->rules[i].port == o->remote_port &&
		    (r = ward_proxy_allowlist_add(&rs->entries,
		         o->allowlist->rules[i].address, o->remote_port)) != 0)
			goto fail;
	if (match == WARD_PROXY_MATCH_IP) {
		if ((rs->cur = calloc(1, sizeof(*rs->cur))) == NULL) {
			r = ward_enomem();
			goto fail;
		}
		atomic_init(&rs->cur->refs, 1);
		rs->cur->t = *allowed;
	} else {
		resolver_pass(rs, true);
	}
	ward_errclear();
	*out = rs;
	return 0;
fail:
	resolver_unref(rs);
	return r;
}

/* The resolver's thread, detached: it holds a reference of its own. */
static int
resolver_start(struct resolver *rs)
{
	pthread_t t;

	atomic_fetch_add(&rs->refs, 1);
	if (pthread_create(&t, NULL, resolver_main, rs) != 0) {
		atomic_fetch_sub(&rs->refs, 1);
		return ward_errf(
		    WARD_EINTERNAL, "proxy: cannot start the resolver thread");
	}
	pthread_detach(t);
	return 0;
}

/* Stop it (a lookup in progress finishes on its own) and let go. */
static void
resolver_stop(struct resolver *rs)
{
	if (rs == NULL)
		return;
	pthread_mutex_lock(&rs->lock);
	rs->stop = true;
	pthread_cond_broadcast(&rs->cond);
	pthread_mutex_unlock(&rs->lock);
	resolver_unref(rs);
}

/* Wake every worker (to stop accepting, or to cut what is in flight). */
static void
wake_workers(struct proxy *p)
{
	for (unsigned i = 0; p->workers != NULL && i < p->nworkers; i++)
		if (p->workers[i].started &&
		    eventfd_write(p->workers[i].wake, 1) != 0)
			ward_debug("proxy: eventfd: %s", strerror(errno));
}

/*
 * Until every started worker has ended: connections in flight get the
 * grace period, but another SIGTERM, SIGINT or SIGHUP ends them at once.
 */
static void
wait_workers(struct proxy *p, int sigfd, unsigned started)
{
	uint64_t done = 0;

	while (done < started) {
		struct pollfd pf[2] = {{.fd = p->donefd, .events = POLLIN},
		    {.fd = sigfd, .events = POLLIN}};
		struct signalfd_siginfo si;
		uint64_t v;

		if (poll(pf, sigfd >= 0 ? 2 : 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			return; /* pthread_join waits instead */
		}
		if ((pf[0].revents & POLLIN) &&
		    eventfd_read(p->donefd, &v) == 0)
			done += v;
		if (sigfd < 0 || !(pf[1].revents & POLLIN))
			continue;
		while (read(sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
			if (!atomic_exchange(&p->hurry, true)) {
				ward_warn("proxy: %s again: closing the %u "
				          "connections in flight now",
				    strsignal((int)si.ssi_signo),
				    atomic_load(&p->nconns));
				wake_workers(p);
			}
	}
}

static int
worker_start(struct proxy *p, struct worker *w)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &wake_tag};

	w->p = p;
	if ((w->ep = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
	    (w->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0 ||
	    epoll_ctl(w->ep, EPOLL_CTL_ADD, w->wake, &ev) != 0)
		return ward_errf(WARD_EIO, "proxy: epoll: %s", strerror(errno));
	listener_watch(w, true);
	if (!w->accepting)
		return ward_errf(WARD_EIO, "proxy: epoll on the listener: %s",
		    strerror(errno));
	if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
		return ward_errf(
		    WARD_EINTERNAL, "proxy: cannot start a worker thread");
	w->started = true;
	return 0;
}

/* The socket file of the emulation, to remove at the end if it is still
 * the one this process bound. */
struct sockfile {
	char path[PATH_MAX];
	dev_t dev;
	ino_t ino;
	bool set;
};

static void
sockfile_note(int lfd, uint32_t cid, uint32_t port, struct sockfile *sf)
{
	struct sockaddr_un sun;
	socklen_t sl = sizeof(sun);
	struct stat st;

	memset(sf, 0, sizeof(*sf));
	memset(&sun, 0, sizeof(sun));
	if (getsockname(lfd, (struct sockaddr *)&sun, &sl) != 0 ||
	    sun.sun_family != AF_UNIX ||
	    ward_vsock_path(cid, port, sf->path, sizeof(sf->path)) != 0 ||
	    stat(sf->path, &st) != 0)
		return;
	sf->dev = st.st_dev;
	sf->ino = st.st_ino;
	sf->set = true;
}

static void
sockfile_remove(const struct sockfile *sf)
{
	struct stat st;

	if (sf->set && stat(sf->path, &st) == 0 && st.st_dev == sf->dev &&
	    st.st_ino == sf->ino)
		unlink(sf->path);
}

int
ward_proxy_serve(const struct ward_proxy_opts *o)
{
	struct proxy p;
	struct ward_proxy_target allowed;
	enum ward_proxy_match match;
	struct sockfile sf;
	sigset_t set, old;
	bool masked = false;
	uint32_t cid = WARD_VSOCK_CID_PARENT;
	char listen_s[64];
	unsigned backlog, started = 0;
	struct signalfd_siginfo si;
	int r, fl, sigfd = -1;

	memset(&p, 0, sizeof(p));
	memset(&sf, 0, sizeof(sf));
	p.o = o;
	p.lfd = p.failfd = p.donefd = -1;
	pthread_mutex_init(&p.lock, NULL);
	pthread_cond_init(&p.cond, NULL);
	atomic_init(&p.next_id, 1);
	p.nworkers = o->workers != 0 ? o->workers : WARD_PROXY_DEFAULT_WORKERS;
	p.max_connections = o->max_connections != 0
	    ? o->max_connections
	    : WARD_PROXY_DEFAULT_MAX_CONNECTIONS;
	p.idle_s = o->idle_timeout_s != 0 ? o->idle_timeout_s
	                                  : WARD_PROXY_DEFAULT_IDLE_TIMEOUT;
	p.connect_s = o->connect_timeout_s != 0
	    ? o->connect_timeout_s
	    : WARD_PROXY_DEFAULT_CONNECT_TIMEOUT;
	p.grace_s = o->grace_s != 0 ? o->grace_s : WARD_PROXY_DEFAULT_GRACE;
	p.half_s = o->half_close_timeout_s != 0
	    ? o->half_close_timeout_s
	    : WARD_PROXY_DEFAULT_HALF_CLOSE_TIMEOUT;
	if (p.half_s > p.idle_s)
		p.half_s = p.idle_s;
	snprintf(p.remote, sizeof(p.remote),
	    strchr(o->remote_host, ':') != NULL ? "[%s]:%u" : "%s:%u",
	    o->remote_host, (unsigned)o->remote_port);
	if (p.nworkers > WARD_PROXY_WORKERS_MAX ||
	    p.max_connections > WARD_PROXY_MAX_CONNECTIONS_MAX ||
	    o->remote_port == 0) {
		r = ward_errf(WARD_EUSAGE, "proxy: options out of range");
		goto out;
	}

	/* the allowlist first: nothing listens for a destination it
	 * lacks */
	if ((r = ward_proxy_allowlist_check(o->allowlist, o->remote_host,
	         o->remote_port, o->family, &match, &allowed)) != 0)
		goto out;
	/* by name: wherever the name resolves, now and later; by IP: the
	 * addresses the names share, now and at each lookup */
	if ((r = resolver_new(o, match, &allowed,
	         o->dns_refresh_s != 0 ? o->dns_refresh_s
	                               : WARD_PROXY_DEFAULT_DNS_REFRESH,
	         &p.rs)) != 0)
		goto out;
	raise_nofile(p.max_connections);

	/* SIGTERM, SIGINT and SIGHUP are read from a signalfd below;
	 * SIGPIPE, which splice to a closed socket raises, stays blocked
	 * in the workers and dies with them */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	masked = true;
	sigdelset(&set, SIGPIPE);
	if ((sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK)) < 0 ||
	    (p.failfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0 ||
	    (p.donefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		r = ward_errf(WARD_EIO, "proxy: %s", strerror(errno));
		goto out;
	}
	if ((r = resolver_start(p.rs)) != 0)
		goto out;

	backlog =
	    p.max_connections < BACKLOG_MIN ? BACKLOG_MIN : p.max_connections;
	if ((r = ward_vsock_listen(o->local_port, (int)backlog, &p.lfd)) != 0)
		goto out;
	if ((fl = fcntl(p.lfd, F_GETFL)) < 0 ||
	    fcntl(p.lfd, F_SETFL, fl | O_NONBLOCK) != 0) {
		r = ward_errf(WARD_EIO, "proxy: listener: %s", strerror(errno));
		goto out;
	}
	if (ward_vsock_local_cid(&cid) != 0)
		cid = WARD_VSOCK_CID_PARENT;
	ward_errclear();
	sockfile_note(p.lfd, cid, o->local_port, &sf);
	if ((p.workers = calloc(p.nworkers, sizeof(*p.workers))) == NULL) {
		r = ward_enomem();
		goto out;
	}
	for (unsigned i = 0; i < p.nworkers; i++)
		p.workers[i].ep = p.workers[i].wake = -1;
	for (unsigned i = 0; i < p.nworkers; i++)
		if ((r = worker_start(&p, &p.workers[i])) != 0)
			goto out;
	snprintf(listen_s, sizeof(listen_s), "vsock:%u:%u", (unsigned)cid,
	    (unsigned)o->local_port);
	ward_info("proxy: %s -> %s (allowed by %s in %s), %u workers", listen_s,
	    p.remote, match == WARD_PROXY_MATCH_NAME ? "name" : "IP",
	    o->allowlist->source, p.nworkers);
	if (o->ready != NULL)
		o->ready(o->ready_ctx, listen_s, p.remote);

	/* until a signal or a worker's failure (the resolver thread looks
	 * names up meanwhile) */
	for (;;) {
		struct pollfd pf[2] = {{.fd = sigfd, .events = POLLIN},
		    {.fd = p.failfd, .events = POLLIN}};

		if (poll(pf, 2, -1) > 0)
			break;
		if (errno != EINTR) {
			r = ward_errf(
			    WARD_EINTERNAL, "proxy: poll: %s", strerror(errno));
			goto out;
		}
	}
	if (read(sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		ward_info("proxy: %s", strsignal((int)si.ssi_signo));
	ward_info("proxy: stopping; connections in flight get %u s", p.grace_s);
	r = atomic_load(&p.failed) != 0
	    ? ward_errf(WARD_EINTERNAL, "proxy: a worker failed")
	    : 0;
out:
	/* stop accepting everywhere, then close the listener, then let
	 * the workers finish what they hold */
	sockfile_remove(&sf);
	atomic_store(&p.stopping, true);
	wake_workers(&p);
	pthread_mutex_lock(&p.lock);
	for (;;) {
		started = 0;
		for (unsigned i = 0; p.workers != NULL && i < p.nworkers; i++)
			started += p.workers[i].started;
		if (p.acked >= started)
			break;
		pthread_cond_wait(&p.cond, &p.lock);
	}
	pthread_mutex_unlock(&p.lock);
	if (p.lfd >= 0)
		close(p.lfd);
	if (started > 0)
		wait_workers(&p, sigfd, started);
	for (unsigned i = 0; p.workers != NULL && i < p.nworkers; i++) {
		struct worker *w = &p.workers[i];

		if (w->started)
			pthread_join(w->thread, NULL);
		if (w->ep >= 0)
			close(w->ep);
		if (w->wake >= 0)
			close(w->wake);
	}
	free(p.workers);
	resolver_stop(p.rs);
	if (sigfd >= 0) {
		/* signals that came during the grace period are consumed
		 * here too: the mask below would deliver them otherwise */
		while (read(sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
			continue;
		close(sigfd);
	}
	if (p.failfd >= 0)
		close(p.failfd);
	if (p.donefd >= 0)
		close(p.donefd);
	if (masked)
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_cond_destroy(&p.cond);
	pthread_mutex_destroy(&p.lock);
	return r;
}
