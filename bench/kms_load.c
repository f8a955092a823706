/*
 * bench/kms_load: a closed-loop HTTP/1.1 load generator for bench/kms.
 *
 *   kms_load (--connect HOST:PORT | --unix PATH) --connections N
 *       --duration SECONDS [--warmup SECONDS] [--threads T]
 *       [--timeout MS] [--expect TEXT] [--sched batch|normal]
 *       --request FILE [--request FILE ...]
 *
 * Each FILE holds one complete raw HTTP/1.1 request (request line,
 * headers, CRLF, body) that is sent byte for byte. N keep-alive
 * connections are spread over T threads (default 2, at most N), one epoll
 * loop per thread. A connection has at most one request in flight (no
 * pipelining) and cycles through the files round-robin, connection i
 * starting at file i mod count.
 *
 * A response is read to its end as RFC 9112 §6.3 says: Content-Length,
 * chunked transfer coding, or until the server closes; 1xx interim
 * responses are skipped. Only status 200 is a success, and with --expect
 * only a 200 whose body (as received, so chunk framing included) holds
 * TEXT; a 200 without it is a "mismatch". Any other status,
 * a malformed response, a connection the server breaks with a request in
 * flight, or a request left unanswered for --timeout ms (default 2000)
 * is an error, counted by its kind. A server that closes after a response
 * (Connection: close) is reconnected and counted in "reconnects", not as
 * an error.
 *
 * Requests that complete during the warm-up are reported separately
 * (warmup_requests, warmup_errors). Of those that complete in the measured
 * window, rps is the count of 200s over the window, and the latency
 * figures (send of the first byte to the last byte of the response, on
 * CLOCK_MONOTONIC) are over the 200s only. Requests still in flight when
 * the window closes are dropped. Output: one JSON line on stdout;
 * "requests" counts the responses (any status) in the window, "errors"
 * everything that was not a success, and the first failed response is
 * copied to stderr.
 *
 * The generator runs under SCHED_BATCH unless --sched normal is given.
 * It shares the machine's cores with the server it measures; as a normal
 * task it is woken by every response and, being the task that slept,
 * preempts the server on that core at once, so that each response costs
 * the server two context switches that a client on another machine would
 * not cause. A SCHED_BATCH task is not given that wakeup preemption: it
 * runs when the server yields the core, then takes every response that has
 * arrived in one pass. The server's own scheduling is untouched.
 *
 * Builds on its own: cc -O2 -Wall -Wextra -o kms_load kms_load.c -lpthread
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNECTIONS 10000
#define MAX_THREADS 64
#define MAX_REQUESTS 64
#define REQUEST_FILE_MAX (1u << 20)
#define HEADER_MAX (64u << 10) /* status line and headers */
#define RESPONSE_MAX (16u << 20) /* whole response, body included */
#define READ_CHUNK (16u << 10)
#define RETRY_NS 10000000ull /* 10 ms between failed connects */
#define SWEEP_NS 50000000ull /* timeout scan every 50 ms */
#define NSTATUS 600

static const char *progname = "kms_load";

/* ------------------------------------------------------------------ */
/* Configuration, shared read-only by the workers                     */

struct request {
	const char *path;
	uint8_t *p;
	size_t len;
	bool head; /* HEAD: the response has no body */
};

struct config {
	struct sockaddr_storage addr;
	socklen_t addrlen;
	int connections;
	int threads;
	double duration;
	double warmup;
	uint64_t timeout_ns;
	const char *expect; /* a 200's body must contain this, or NULL */
	bool sched_batch; /* --sched batch (the default) */
	size_t expect_len;
	struct request req[MAX_REQUESTS];
	size_t nreq;
	uint64_t t_start; /* connections open from here */
	uint64_t t_warm; /* measured window: [t_warm, t_end) */
	uint64_t t_end;
};

static struct config cfg;

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------------ */
/* Per-thread statistics                                              */

struct stats {
	uint64_t status[NSTATUS]; /* measured responses by status */
	uint64_t ok; /* measured 200s (with the --expect text) */
	uint64_t mismatches; /* measured 200s without it */
	uint64_t socket_errors; /* broken or refused connections */
	uint64_t parse_errors; /* malformed or unsolicited responses */
	uint64_t timeouts;
	uint64_t reconnects; /* after Connection: close */
	uint64_t warm_requests;
	uint64_t warm_errors;
	uint64_t *lat; /* ns, one per measured 200 */
	size_t nlat, caplat;
	bool lat_oom;
};

static void
lat_record(struct stats *s, uint64_t ns)
{
	if (s->nlat == s->caplat) {
		size_t cap = s->caplat ? s->caplat * 2 : 65536;
		uint64_t *p = realloc(s->lat, cap * sizeof(*p));

		if (p == NULL) {
			s->lat_oom = true;
			return;
		}
		s->lat = p;
		s->caplat = cap;
	}
	s->lat[s->nlat++] = ns;
}

enum err_kind { ERR_SOCKET, ERR_PARSE, ERR_TIMEOUT };

/* An error at time t: counted in the warm-up or the window, or not at all
 * once the window has closed. */
static void
count_error(struct stats *s, enum err_kind k, uint64_t t)
{
	if (t < cfg.t_warm) {
		s->warm_errors++;
		return;
	}
	if (t >= cfg.t_end)
		return;
	switch (k) {
	case ERR_SOCKET:
		s->socket_errors++;
		break;
	case ERR_PARSE:
		s->parse_errors++;
		break;
	case ERR_TIMEOUT:
		s->timeouts++;
		break;
	}
}

static atomic_flag shown = ATOMIC_FLAG_INIT;

/* The first failed response of the run goes to stderr, to say why. */
static void
show_once(const char *why, const uint8_t *p, size_t len)
{
	if (atomic_flag_test_and_set(&shown))
		return;
	fprintf(stderr, "%s: first failed response (%s):\n%.*s%s\n", progname,
	    why, (int)(len > 2048 ? 2048 : len), (const char *)p,
	    len > 2048 ? "..." : "");
}

/* A complete response in p[0..len) (body from body), sent at t0 and
 * received at t1. */
static void
count_response(struct stats *s, int status, const uint8_t *p, size_t len,
    size_t body, uint64_t t0, uint64_t t1)
{
	bool good = status == 200, match = true;

	if (good && cfg.expect != NULL)
		match = memmem(p + body, len - body, cfg.expect,
		            cfg.expect_len) != NULL;
	if (!good || !match)
		show_once(good ? "--expect text missing" : "not 200", p, len);
	if (t1 < cfg.t_warm) {
		s->warm_requests++;
		if (!good || !match)
			s->warm_errors++;
		return;
	}
	if (t1 >= cfg.t_end)
		return;
	s->status[status]++;
	if (good && !match) {
		s->mismatches++;
	} else if (good) {
		s->ok++;
		lat_record(s, t1 - t0);
	}
}

/* ------------------------------------------------------------------ */
/* Response parsing (RFC 9112)                                        */

enum body_mode { BODY_NONE, BODY_LENGTH, BODY_CHUNKED, BODY_CLOSE };
enum chunk_state { CH_SIZE, CH_DATA, CH_TRAILER };

struct response {
	size_t scan; /* where to resume looking for the header end */
	size_t hdr_end; /* 0 until the headers are complete */
	int status;
	bool keep_alive;
	enum body_mode mode;
	uint64_t clen;
	enum chunk_state cstate;
	size_t pos; /* chunked: next byte to parse */
	uint64_t chunk; /* chunked: size of the current chunk */
	size_t end; /* bytes of buf that the complete response took */
};

enum { PARSE_MORE = 0, PARSE_DONE = 1, PARSE_ERROR = -1 };

/* s/len without CR/LF, case-insensitively equal to lit */
static bool
token_eq(const char *s, size_t len, const char *lit)
{
	return strlen(lit) == len && strncasecmp(s, lit, len) == 0;
}

/* Does the comma-separated list v (len bytes) contain token tok? */
static bool
list_has(const char *v, size_t len, const char *tok)
{
	size_t i = 0;

	while (i < len) {
		size_t a, b;

		while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		a = i;
		while (i < len && v[i] != ',')
			i++;
		b = i;
		while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
			b--;
		if (token_eq(v + a, b - a, tok))
			return true;
	}
	return false;
}

/* Parse the status line and headers in p[0..len), len ending at the blank
 * line's CRLF. */
static int
parse_head(const char *p, size_t len, bool head_req, struct response *r)
{
	const char *eol = memmem(p, len, "\r\n", 2);
	bool http10, have_clen = false, chunked = false, close = false,
	             keep = false;
	uint64_t clen = 0;

	/* status-line = HTTP-version SP status-code SP [ reason-phrase ] */
	if (eol == NULL || eol - p < 12 || memcmp(p, "HTTP/1.", 7) != 0 ||
	    (p[7] != '0' && p[7] != '1') || p[8] != ' ' || p[9] < '1' ||
	    p[9] > '5' || p[10] < '0' || p[10] > '9' || p[11] < '0' ||
	    p[11] > '9' || (eol - p > 12 && p[12] != ' '))
		return PARSE_ERROR;
	http10 = p[7] == '0';
	r->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');

	for (const char *l = eol + 2; l < p + len;) {
		const char *e = memmem(l, (size_t)(p + len - l), "\r\n", 2);
		const char *colon, *v, *ve;

		if (e == NULL)
			e = p + len;
		if (e == l)
			break;
		if ((colon = memchr(l, ':', (size_t)(e - l))) == NULL)
			return PARSE_ERROR;
		for (v = colon + 1; v < e && (*v == ' ' || *v == '\t'); v++)
			;
		for (ve = e; ve > v && (ve[-1] == ' ' || ve[-1] == '\t'); ve--)
			;
		if (token_eq(l, (size_t)(colon - l), "content-length")) {
			uint64_t n = 0;

			if (v == ve)
				return PARSE_ERROR;
			for (const char *d = v; d < ve; d++) {
				if (*d < '0' || *d > '9' || n > RESPONSE_MAX)
					return PARSE_ERROR;
				n = n * 10 + (uint64_t)(*d - '0');
			}
			/* §6.3: differing repeated lengths are an error */
			if (have_clen && n != clen)
				return PARSE_ERROR;
			have_clen = true;
			clen = n;
		} else if (token_eq(
		               l, (size_t)(colon - l), "transfer-encoding")) {
			chunked = list_has(v, (size_t)(ve - v), "chunked");
			if (!chunked)
				return PARSE_ERROR; /* not supported */
		} else if (token_eq(l, (size_t)(colon - l), "connection")) {
			close |= list_has(v, (size_t)(ve - v), "close");
			keep |= list_has(v, (size_t)(ve - v), "keep-alive");
		}
		l = e + 2;
	}

	r->keep_alive = http10 ? keep && !close : !close;
	if (head_req || (r->status >= 100 && r->status < 200) ||
	    r->status == 204 || r->status == 304) {
		r->mode = BODY_NONE;
	} else if (chunked) {
		r->mode = BODY_CHUNKED; /* §6.3: chunked wins over a length */
		r->cstate = CH_SIZE;
	} else if (have_clen) {
		r->mode = BODY_LENGTH;
		r->clen = clen;
	} else {
		r->mode = BODY_CLOSE;
		r->keep_alive = false;
	}
	return PARSE_DONE;
}

/* Chunked body from r->pos (§7.1); sets r->end when complete. */
static int
parse_chunked(const char *p, size_t len, struct response *r)
{
	for (;;) {
		const char *e;

		switch (r->cstate) {
		case CH_SIZE: {
			uint64_t n = 0;
			size_t i = r->pos, digits = 0;

			e = memmem(p + r->pos, len - r->pos, "\r\n", 2);
			if (e == NULL)
				return len - r->pos > 1024 ? PARSE_ERROR
				                           : PARSE_MORE;
			for (; p + i < e; i++, digits++) {
				int c = p[i], d;

				if (c >= '0' && c <= '9')
					d = c - '0';
				else if (c >= 'a' && c <= 'f')
					d = c - 'a' + 10;
				else if (c >= 'A' && c <= 'F')
					d = c - 'A' + 10;
				else
					break; /* chunk-ext or BWS */
				if (n > RESPONSE_MAX)
					return PARSE_ERROR;
				n = n * 16 + (uint64_t)d;
			}
			if (digits == 0)
				return PARSE_ERROR;
			r->pos = (size_t)(e - p) + 2;
			r->chunk = n;
			r->cstate = n == 0 ? CH_TRAILER : CH_DATA;
			break;
		}
		case CH_DATA:
			if (len - r->pos < r->chunk + 2)
				return PARSE_MORE;
			if (memcmp(p + r->pos + r->chunk, "\r\n", 2) != 0)
				return PARSE_ERROR;
			r->pos += (size_t)r->chunk + 2;
			r->cstate = CH_SIZE;
			break;
		case CH_TRAILER:
			e = memmem(p + r->pos, len - r->pos, "\r\n", 2);
			if (e == NULL)
				return PARSE_MORE;
			if (e == p + r->pos) {
				r->end = r->pos + 2;
				return PARSE_DONE;
			}
			r->pos = (size_t)(e - p) + 2;
			break;
		}
	}
}

/*
 * Parse the response in buf[0..*len) (eof: the server has closed). Interim
 * 1xx responses are removed from buf and skipped. Returns PARSE_DONE with
 * r->end and r->status set, PARSE_MORE, or PARSE_ERROR.
 */
static int
parse_response(
    uint8_t *buf, size_t *len, bool eof, bool head_req, struct response *r)
{
	const char *p = (const char *)buf;

again:
	if (r->hdr_end == 0) {
		const char *e =
		    memmem(p + r->scan, *len - r->scan, "\r\n\r\n", 4);

		if (e == NULL) {
			r->scan = *len > 3 ? *len - 3 : 0;
			return *len > HEADER_MAX || eof ? PARSE_ERROR
			                                : PARSE_MORE;
		}
		r->hdr_end = (size_t)(e - p) + 4;
		if (parse_head(p, r->hdr_end - 2, head_req, r) != PARSE_DONE)
			return PARSE_ERROR;
		if (r->status < 200) {
			if (r->status == 101)
				return PARSE_ERROR; /* no upgrades here */
			memmove(buf, buf + r->hdr_end, *len - r->hdr_end);
			*len -= r->hdr_end;
			memset(r, 0, sizeof(*r));
			goto again;
		}
		r->pos = r->hdr_end;
	}
	switch (r->mode) {
	case BODY_NONE:
		r->end = r->hdr_end;
		return PARSE_DONE;
	case BODY_LENGTH:
		if (*len - r->hdr_end >= r->clen) {
			r->end = r->hdr_end + (size_t)r->clen;
			return PARSE_DONE;
		}
		return eof ? PARSE_ERROR : PARSE_MORE;
	case BODY_CLOSE:
		if (!eof)
			return *len > RESPONSE_MAX ? PARSE_ERROR : PARSE_MORE;
		r->end = *len;
		return PARSE_DONE;
	case BODY_CHUNKED: {
		int rc = parse_chunked(p, *len, r);

		if (rc == PARSE_MORE && eof)
			return PARSE_ERROR;
		return rc;
	}
	}
	return PARSE_ERROR;
}

/* ------------------------------------------------------------------ */
/* Connections and the event loop                                     */

enum conn_state { C_IDLE, C_CONNECTING, C_SENDING, C_READING, C_RETRY };

struct conn {
	int fd;
	enum conn_state state;
	size_t next_req; /* index of the next request to send */
	size_t cur_req;
	size_t sent;
	uint64_t t_send; /* first byte of the request handed to send() */
	uint64_t t_retry;
	bool want_out; /* EPOLLOUT registered */
	uint8_t *buf;
	size_t len, cap;
	struct response resp;
};

struct worker {
	pthread_t tid;
	int epfd;
	struct conn *conns;
	size_t nconns;
	size_t nretry; /* connections in C_RETRY */
	struct stats st;
	int fatal; /* errno of a setup failure */
};

static void
conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd); /* also leaves the epoll set */
	c->fd = -1;
	c->len = 0;
	c->want_out = false;
	c->state = C_IDLE;
}

static int
set_events(struct worker *w, struct conn *c, bool out)
{
	struct epoll_event ev = {
	    .events = EPOLLIN | EPOLLRDHUP | (out ? EPOLLOUT : 0),
	    .data.ptr = c,
	};

	if (c->want_out == out)
		return 0;
	c->want_out = out;
	return epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_fail(
    struct worker *w, struct conn *c, enum err_kind k, uint64_t t);

/* Hand the rest of the current request to the kernel. */
static void
conn_send(struct worker *w, struct conn *c)
{
	const struct request *rq = &cfg.req[c->cur_req];

	while (c->sent < rq->len) {
		ssize_t n = send(
		    c->fd, rq->p + c->sent, rq->len - c->sent, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				if (set_events(w, c, true) != 0)
					conn_fail(w, c, ERR_SOCKET, now_ns());
				return;
			}
			conn_fail(w, c, ERR_SOCKET, now_ns());
			return;
		}
		c->sent += (size_t)n;
	}
	c->state = C_READING;
	if (set_events(w, c, false) != 0)
		conn_fail(w, c, ERR_SOCKET, now_ns());
}

static void
conn_start_request(struct worker *w, struct conn *c)
{
	c->cur_req = c->next_req;
	c->next_req = (c->next_req + 1) % cfg.nreq;
	c->sent = 0;
	c->len = 0;
	memset(&c->resp, 0, sizeof(c->resp));
	c->state = C_SENDING;
	c->t_send = now_ns();
	conn_send(w, c);
}

static void
conn_open(struct worker *w, struct conn *c)
{
	struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
	int fd, one = 1;

	fd = socket(
	    cfg.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		w->fatal = errno;
		return;
	}
	if (cfg.addr.ss_family != AF_UNIX)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->fd = fd;
	c->state = C_CONNECTING;
	c->want_out = true;
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
		w->fatal = errno;
		conn_close(c);
		return;
	}
	/* Connected or not, EPOLLOUT says when the outcome is known. */
	if (connect(fd, (struct sockaddr *)&cfg.addr, cfg.addrlen) == 0 ||
	    errno == EINPROGRESS)
		return;
	conn_fail(w, c, ERR_SOCKET, now_ns());
}

/* Count an error, drop the connection and open it again after a pause
 * (after a refused connect) or at once (anything else). */
static void
conn_fail(struct worker *w, struct conn *c, enum err_kind k, uint64_t t)
{
	bool connecting = c->state == C_CONNECTING || c->fd < 0;

	count_error(&w->st, k, t);
	conn_close(c);
	if (connecting) {
		c->state = C_RETRY;
		c->t_retry = t + RETRY_NS;
		w->nretry++;
	} else {
		conn_open(w, c);
	}
}

static void
conn_readable(struct worker *w, struct conn *c)
{
	for (;;) {
		ssize_t n;
		int rc;
		bool eof = false;

		if (c->cap - c->len < READ_CHUNK) {
			size_t cap = c->cap ? c->cap * 2 : 4 * READ_CHUNK;
			uint8_t *p;

			if (cap > RESPONSE_MAX + READ_CHUNK ||
			    (p = realloc(c->buf, cap)) == NULL) {
				conn_fail(w, c, ERR_PARSE, now_ns());
				return;
			}
			c->buf = p;
			c->cap = cap;
		}
		n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			conn_fail(w, c, ERR_SOCKET, now_ns());
			return;
		}
		if (n == 0)
			eof = true;
		c->len += (size_t)n;
		rc = parse_response(
		    c->buf, &c->len, eof, cfg.req[c->cur_req].head, &c->resp);
		if (rc == PARSE_MORE && !eof)
			continue;
		if (rc == PARSE_MORE || rc == PARSE_ERROR) {
			uint64_t t = now_ns();

			/* A keep-alive connection the server closed before
			 * any byte of the answer: a socket error. */
			conn_fail(w, c,
			    eof && c->len == 0 ? ERR_SOCKET : ERR_PARSE, t);
			return;
		}
		{
			uint64_t t = now_ns();

			if (c->resp.end != c->len) {
				/* Bytes beyond the response, with nothing
				 * asked: the stream is out of step, and the
				 * response is not trusted either. */
				conn_fail(w, c, ERR_PARSE, t);
				return;
			}
			count_response(&w->st, c->resp.status, c->buf,
			    c->resp.end, c->resp.hdr_end, c->t_send, t);
			if (t >= cfg.t_end)
				return;
			/* An answer before the whole request was sent (a
			 * 413, say) leaves the stream unusable too. */
			if (!c->resp.keep_alive || eof ||
			    c->state != C_READING) {
				w->st.reconnects++;
				conn_close(c);
				conn_open(w, c);
				return;
			}
			conn_start_request(w, c);
			return;
		}
	}
}

static void
conn_event(struct worker *w, struct conn *c, uint32_t ev)
{
	if (c->state == C_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);

		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 ||
		    err != 0 || (ev & (EPOLLERR | EPOLLHUP))) {
			conn_fail(w, c, ERR_SOCKET, now_ns());
			return;
		}
		if (set_events(w, c, false) != 0) {
			conn_fail(w, c, ERR_SOCKET, now_ns());
			return;
		}
		conn_start_request(w, c);
		return;
	}
	if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
		conn_readable(w, c);
		return;
	}
	if ((ev & EPOLLOUT) && c->state == C_SENDING)
		conn_send(w, c);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct epoll_event evs[256];
	uint64_t t_sweep = 0;

	for (size_t i = 0; i < w->nconns && !w->fatal; i++)
		conn_open(w, &w->conns[i]);
	while (!w->fatal) {
		uint64_t t = now_ns();
		int n, timeout_ms;

		if (t >= cfg.t_end)
			break;
		timeout_ms = (int)((cfg.t_end - t) / 1000000 + 1);
		if (timeout_ms > 10)
			timeout_ms = 10;
		n = epoll_wait(w->epfd, evs, 256, timeout_ms);
		if (n < 0 && errno != EINTR) {
			w->fatal = errno;
			break;
		}
		for (int i = 0; i < n; i++)
			conn_event(w, evs[i].data.ptr, evs[i].events);

		t = now_ns();
		if (w->nretry > 0) {
			for (size_t i = 0; i < w->nconns; i++) {
				struct conn *c = &w->conns[i];

				if (c->state == C_RETRY && t >= c->t_retry) {
					w->nretry--;
					c->state = C_IDLE;
					conn_open(w, c);
				}
			}
		}
		if (t - t_sweep >= SWEEP_NS) {
			t_sweep = t;
			for (size_t i = 0; i < w->nconns; i++) {
				struct conn *c = &w->conns[i];

				if ((c->state == C_SENDING ||
				        c->state == C_READING) &&
				    t - c->t_send > cfg.timeout_ns)
					conn_fail(w, c, ERR_TIMEOUT, t);
			}
		}
	}
	/* The window is closed: what is still in flight is dropped, except
	 * that a request already older than the timeout counts as one. */
	for (size_t i = 0; i < w->nconns; i++) {
		struct conn *c = &w->conns[i];

		if ((c->state == C_SENDING || c->state == C_READING) &&
		    cfg.t_end - c->t_send > cfg.timeout_ns &&
		    c->t_send < cfg.t_end)
			w->st.timeouts++;
		conn_close(c);
		free(c->buf);
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Setup and report                                                   */

static void __attribute__((noreturn)) usage(int code)
{
	fprintf(code ? stderr : stdout,
	    "usage: %s (--connect HOST:PORT | --unix PATH) --connections N\n"
	    "          --duration SECONDS [--warmup SECONDS] [--threads T]\n"
	    "          [--timeout MS] [--expect TEXT] [--sched batch|normal]\n"
	    "          --request FILE [--request FILE ...]\n"
	    "Each FILE is one raw HTTP/1.1 request, sent as is on keep-alive\n"
	    "connections, one request in flight per connection. Prints one\n"
	    "JSON line; only status 200 (with TEXT in the body, when given)\n"
	    "counts as a success. The first failed response goes to stderr.\n"
	    "--sched: this process's scheduling policy (default batch, so\n"
	    "that it does not preempt the server it shares cores with).\n",
	    progname);
	exit(code);
}

static void __attribute__((noreturn, format(printf, 1, 2)))
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
parse_num(const char *opt, const char *s, double min, double max)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end != '\0' || !(v >= min && v <= max))
		die("%s: '%s' is not a number in [%g, %g]", opt, s, min, max);
	return v;
}

static void
load_request(const char *path)
{
	struct request *rq;
	struct stat sb;
	FILE *f;

	if (cfg.nreq == MAX_REQUESTS)
		die("at most %d --request files", MAX_REQUESTS);
	rq = &cfg.req[cfg.nreq];
	if ((f = fopen(path, "rb")) == NULL)
		die("%s: %s", path, strerror(errno));
	if (fstat(fileno(f), &sb) != 0)
		die("%s: %s", path, strerror(errno));
	if (sb.st_size <= 0 || (uint64_t)sb.st_size > REQUEST_FILE_MAX)
		die("%s: empty or larger than %u bytes", path,
		    REQUEST_FILE_MAX);
	rq->len = (size_t)sb.st_size;
	if ((rq->p = malloc(rq->len)) == NULL)
		die("out of memory");
	if (fread(rq->p, 1, rq->len, f) != rq->len)
		die("%s: short read", path);
	fclose(f);
	if (memmem(rq->p, rq->len, "\r\n\r\n", 4) == NULL)
		die("%s: no CRLF CRLF ending the headers; not a raw HTTP "
		    "request",
		    path);
	rq->head = rq->len > 5 && memcmp(rq->p, "HEAD ", 5) == 0;
	rq->path = path;
	cfg.nreq++;
}

static void
resolve_tcp(const char *hostport)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
	char host[256];
	const char *colon = strrchr(hostport, ':');
	size_t hl;
	int rc;

	if (colon == NULL || colon[1] == '\0')
		die("--connect: '%s' is not HOST:PORT", hostport);
	hl = (size_t)(colon - hostport);
	if (hl >= 2 && hostport[0] == '[' && hostport[hl - 1] == ']') {
		hostport++;
		hl -= 2;
	}
	if (hl == 0 || hl >= sizeof(host))
		die("--connect: bad host in '%s'", hostport);
	memcpy(host, hostport, hl);
	host[hl] = '\0';
	if ((rc = getaddrinfo(host, colon + 1, &hints, &ai)) != 0)
		die("--connect %s: %s", hostport, gai_strerror(rc));
	memcpy(&cfg.addr, ai->ai_addr, ai->ai_addrlen);
	cfg.addrlen = ai->ai_addrlen;
	freeaddrinfo(ai);
}

static void
resolve_unix(const char *path)
{
	struct sockaddr_un *sun = (struct sockaddr_un *)&cfg.addr;

	if (strlen(path) >= sizeof(sun->sun_path))
		die("--unix: path too long");
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, path, strlen(path) + 1);
	cfg.addrlen = (socklen_t)sizeof(*sun);
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of the sorted v[0..n). */
static double
pct_ms(const uint64_t *v, size_t n, double p)
{
	size_t rank;

	if (n == 0)
		return 0;
	rank = (size_t)((p / 100.0) * (double)n + 0.999999999);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return (double)v[rank - 1] / 1e6;
}

int
main(int argc, char **argv)
{
	struct worker *w;
	struct stats tot = {0};
	const char *connect_to = NULL, *unix_path = NULL;
	uint64_t errors, t_stop;
	struct rusage ru;
	double window, cpu;
	size_t nc = 0;
	bool first;

	signal(SIGPIPE, SIG_IGN);
	cfg.connections = 0;
	cfg.threads = 2;
	cfg.duration = 0;
	cfg.warmup = 1;
	cfg.timeout_ns = 2000000000ull;
	cfg.sched_batch = true;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
			usage(0);
		if (v == NULL)
			usage(2);
		i++;
		if (strcmp(a, "--connect") == 0)
			connect_to = v;
		else if (strcmp(a, "--unix") == 0)
			unix_path = v;
		else if (strcmp(a, "--connections") == 0 ||
		    strcmp(a, "-c") == 0)
			cfg.connections =
			    (int)parse_num(a, v, 1, MAX_CONNECTIONS);
		else if (strcmp(a, "--duration") == 0 || strcmp(a, "-d") == 0)
			cfg.duration = parse_num(a, v, 0.01, 86400);
		else if (strcmp(a, "--warmup") == 0)
			cfg.warmup = parse_num(a, v, 0, 86400);
		else if (strcmp(a, "--threads") == 0 || strcmp(a, "-t") == 0)
			cfg.threads = (int)parse_num(a, v, 1, MAX_THREADS);
		else if (strcmp(a, "--timeout") == 0)
			cfg.timeout_ns =
			    (uint64_t)parse_num(a, v, 1, 3600000) * 1000000ull;
		else if (strcmp(a, "--request") == 0 || strcmp(a, "-r") == 0)
			load_request(v);
		else if (strcmp(a, "--sched") == 0) {
			if (strcmp(v, "batch") == 0)
				cfg.sched_batch = true;
			else if (strcmp(v, "normal") == 0)
				cfg.sched_batch = false;
			else
				die("--sched: '%s' is not batch or normal", v);
		} else if (strcmp(a, "--expect") == 0) {
			cfg.expect = v;
			cfg.expect_len = strlen(v);
		} else
			usage(2);
	}
	if ((connect_to == NULL) == (unix_path == NULL))
		die("give one of --connect HOST:PORT and --unix PATH");
	if (cfg.connections == 0 || cfg.duration == 0 || cfg.nreq == 0)
		die("--connections, --duration and --request are required");
	if (connect_to != NULL)
		resolve_tcp(connect_to);
	else
		resolve_unix(unix_path);
	if (cfg.threads > cfg.connections)
		cfg.threads = cfg.connections;

	if (cfg.sched_batch) {
		/* threads created below inherit it */
		struct sched_param sp = {.sched_priority = 0};

		if (sched_setscheduler(0, SCHED_BATCH, &sp) != 0)
			die("sched_setscheduler(SCHED_BATCH): %s",
			    strerror(errno));
	}
	if ((w = calloc((size_t)cfg.threads, sizeof(*w))) == NULL)
		die("out of memory");
	cfg.t_start = now_ns();
	cfg.t_warm = cfg.t_start + (uint64_t)(cfg.warmup * 1e9);
	cfg.t_end = cfg.t_warm + (uint64_t)(cfg.duration * 1e9);
	for (int i = 0; i < cfg.threads; i++) {
		size_t n = (size_t)(cfg.connections / cfg.threads +
		    (i < cfg.connections % cfg.threads));

		if ((w[i].conns = calloc(n, sizeof(struct conn))) == NULL)
			die("out of memory");
		w[i].nconns = n;
		for (size_t j = 0; j < n; j++) {
			w[i].conns[j].fd = -1;
			w[i].conns[j].next_req = nc++ % cfg.nreq;
		}
		if ((w[i].epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
			die("epoll_create1: %s", strerror(errno));
		if (pthread_create(&w[i].tid, NULL, worker_main, &w[i]) != 0)
			die("pthread_create failed");
	}
	for (int i = 0; i < cfg.threads; i++) {
		struct stats *s = &w[i].st;

		pthread_join(w[i].tid, NULL);
		if (w[i].fatal)
			die("thread %d: %s", i, strerror(w[i].fatal));
		close(w[i].epfd);
		for (int k = 0; k < NSTATUS; k++)
			tot.status[k] += s->status[k];
		tot.ok += s->ok;
		tot.mismatches += s->mismatches;
		tot.socket_errors += s->socket_errors;
		tot.parse_errors += s->parse_errors;
		tot.timeouts += s->timeouts;
		tot.reconnects += s->reconnects;
		tot.warm_requests += s->warm_requests;
		tot.warm_errors += s->warm_errors;
		tot.lat_oom |= s->lat_oom;
		if (s->nlat > 0) {
			uint64_t *p =
			    realloc(tot.lat, (tot.nlat + s->nlat) * sizeof(*p));

			if (p == NULL)
				die("out of memory");
			tot.lat = p;
			memcpy(
			    tot.lat + tot.nlat, s->lat, s->nlat * sizeof(*p));
			tot.nlat += s->nlat;
		}
		free(s->lat);
	}
	t_stop = now_ns();
	if (tot.lat_oom)
		die("out of memory for latencies");
	qsort(tot.lat, tot.nlat, sizeof(*tot.lat), cmp_u64);
	window = (double)(cfg.t_end - cfg.t_warm) / 1e9;
	getrusage(RUSAGE_SELF, &ru);
	cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;

	errors = tot.socket_errors + tot.parse_errors + tot.timeouts;
	{
		uint64_t all = 0;

		for (int k = 0; k < NSTATUS; k++)
			all += tot.status[k];
		errors += all - tot.ok; /* mismatches included */
		printf("{\"connections\":%d,\"threads\":%d,\"sched\":\"%s\","
		       "\"duration_s\":%.3f,\"requests\":%" PRIu64
		       ",\"ok\":%" PRIu64 ",\"errors\":%" PRIu64
		       ",\"rps\":%.1f",
		    cfg.connections, cfg.threads,
		    cfg.sched_batch ? "batch" : "normal", window, all, tot.ok,
		    errors, (double)tot.ok / window);
	}
	{
		double mean = 0;

		for (size_t i = 0; i < tot.nlat; i++)
			mean += (double)tot.lat[i];
		mean = tot.nlat ? mean / (double)tot.nlat / 1e6 : 0;
		printf(",\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,"
		       "\"p999_ms\":%.3f,\"max_ms\":%.3f,\"mean_ms\":%.3f",
		    pct_ms(tot.lat, tot.nlat, 50),
		    pct_ms(tot.lat, tot.nlat, 90),
		    pct_ms(tot.lat, tot.nlat, 99),
		    pct_ms(tot.lat, tot.nlat, 99.9),
		    tot.nlat ? (double)tot.lat[tot.nlat - 1] / 1e6 : 0, mean);
	}
	printf(",\"status\":{");
	first = true;
	for (int k = 0; k < NSTATUS; k++) {
		if (tot.status[k] == 0)
			continue;
		printf("%s\"%d\":%" PRIu64, first ? "" : ",", k, tot.status[k]);
		first = false;
	}
	printf("},\"mismatches\":%" PRIu64 ",\"socket_errors\":%" PRIu64
	       ",\"parse_errors\":%" PRIu64 ",\"timeouts\":%" PRIu64
	       ",\"reconnects\":%" PRIu64 ",\"warmup_requests\":%" PRIu64
	       ",\"warmup_errors\":%" PRIu64
	       ",\"loadgen_cpu_s\":%.2f,\"wall_s\":%.3f}\n",
	    tot.mismatches, tot.socket_errors, tot.parse_errors, tot.timeouts,
	    tot.reconnects, tot.warm_requests, tot.warm_errors, cpu,
	    (double)(t_stop - cfg.t_start) / 1e9);
	free(tot.lat);
	for (int i = 0; i < cfg.threads; i++)
		free(w[i].conns);
	free(w);
	for (size_t i = 0; i < cfg.nreq; i++)
		free(cfg.req[i].p);
	return tot.ok == 0 ? 1 : 0;
}
