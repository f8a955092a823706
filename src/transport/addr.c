/*
 * Addresses (tcp:HOST:PORT, tcp:[IPV6]:PORT, unix:PATH, vsock:CID:PORT),
 * and listening and connecting on them. The parser is strict so that a
 * parsed address formats back to one canonical string that parses to the
 * same address (fuzz/fuzz_addr.c holds it to that).
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/vm_sockets.h>

#include "transport/internal.h"
#include "ward/util.h"

#define FORMS "tcp:HOST:PORT, tcp:[IPV6]:PORT, unix:PATH or vsock:CID:PORT"
#define HOST_MAX 253 /* RFC 1035 §2.3.4: a name's text form */
#define SUN_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path))

/* ------------------------------------------------------------------ */
/* Parsing and formatting                                              */

enum ward_decimal
ward_transport_decimal(const char *p, size_t n, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (n == 0 || (n > 1 && p[0] == '0'))
		return WARD_DECIMAL_BAD;
	for (size_t i = 0; i < n; i++)
		if (p[i] < '0' || p[i] > '9')
			return WARD_DECIMAL_BAD;
	for (size_t i = 0; i < n; i++) {
		unsigned d = (unsigned)(p[i] - '0');

		/* checked before it could wrap, whatever max is */
		if (v > (max - d) / 10)
			return WARD_DECIMAL_RANGE;
		v = v * 10 + d;
	}
	*out = v;
	return WARD_DECIMAL_OK;
}

static int
bad(const char *s, const char *why)
{
	return ward_errf(WARD_EUSAGE, "address '%s': %s; expected " FORMS,
	    ward_quotes(s), why);
}

/* A number field of s: what names it in messages ("port", "CID"). */
static int
number(const char *s, const char *what, const char *p, size_t n, uint64_t max,
    uint64_t *out)
{
	char why[128];

	switch (ward_transport_decimal(p, n, max, out)) {
	case WARD_DECIMAL_OK:
		return 0;
	case WARD_DECIMAL_RANGE:
		snprintf(why, sizeof(why), "%s %s is out of range (0 to %llu)",
		    what, ward_quote(p, n), (unsigned long long)max);
		break;
	default:
		if (n == 0)
			snprintf(why, sizeof(why), "the %s is missing", what);
		else
			snprintf(why, sizeof(why),
			    "%s '%s' is not a decimal number (digits only, no "
			    "leading zeros)",
			    what, ward_quote(p, n));
	}
	return bad(s, why);
}

/*
 * Host names and addresses are printable ASCII without spaces and without
 * brackets; only a bracketed host may hold ':', so that formatting can tell
 * where the host ends.
 */
static int
host(const char *s, const char *p, size_t n, bool bracketed, char *out)
{
	bool colon = false;

	if (n == 0)
		return bad(s, "the host is empty");
	if (n > HOST_MAX)
		return bad(s, "the host is longer than 253 bytes");
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c <= 0x20 || c >= 0x7f || c == '[' || c == ']')
			return bad(s,
			    "the host holds a space, a control or non-ASCII "
			    "byte, or a bracket");
		colon |= c == ':';
	}
	if (bracketed && !colon)
		return bad(s, "brackets are only for IPv6 addresses");
	if (!bracketed && colon)
		return bad(
		    s, "an IPv6 address goes in brackets: tcp:[ADDR]:PORT");
	memcpy(out, p, n);
	out[n] = '\0';
	return 0;
}

static int
parse_tcp(const char *s, const char *rest, struct ward_addr *out)
{
	const char *h = rest, *end, *port;
	uint64_t v;
	int r;

	if (rest[0] == '[') {
		h = rest + 1;
		if ((end = strchr(h, ']')) == NULL)
			return bad(s, "']' is missing");
		if (end[1] != ':')
			return bad(s, "':PORT' must follow ']'");
		port = end + 2;
	} else {
		if ((end = strchr(h, ':')) == NULL)
			return bad(s, "':PORT' is missing");
		port = end + 1;
		/* "tcp:fe80::1:80": say what is wrong, not "bad port" */
		if (strchr(port, ':') != NULL && end != h)
			return bad(s,
			    "an IPv6 address goes in brackets: tcp:[ADDR]:PORT");
	}
	if ((r = host(s, h, (size_t)(end - h), rest[0] == '[', out->host)) != 0)
		return r;
	if ((r = number(s, "port", port, strlen(port), 65535, &v)) != 0)
		return r;
	out->kind = WARD_ADDR_TCP;
	out->port = (uint16_t)v;
	return 0;
}

static int
parse_unix(const char *s, const char *path, struct ward_addr *out)
{
	size_t n = strlen(path);
	char why[96];

	if (n == 0)
		return bad(s, "the path is empty");
	if (n >= sizeof(out->path)) {
		snprintf(why, sizeof(why),
		    "the path is %zu bytes; a Unix socket path holds at most "
		    "%zu",
		    n, sizeof(out->path) - 1);
		return bad(s, why);
	}
	memcpy(out->path, path, n + 1);
	out->kind = WARD_ADDR_UNIX;
	return 0;
}

static int
parse_vsock(const char *s, const char *rest, struct ward_addr *out)
{
	const char *colon = strchr(rest, ':');
	uint64_t cid, port;
	int r;

	if (colon == NULL)
		return bad(s, "':PORT' is missing");
	if ((r = number(s, "CID", rest, (size_t)(colon - rest), UINT32_MAX,
	         &cid)) != 0 ||
	    (r = number(s, "port", colon + 1, strlen(colon + 1), UINT32_MAX - 1,
	         &port)) != 0)
		return r;
	out->kind = WARD_ADDR_VSOCK;
	out->cid = (uint32_t)cid;
	out->vport = (uint32_t)port;
	return 0;
}

int
ward_addr_parse(const char *s, struct ward_addr *out)
{
	/* every byte defined, so equal addresses compare equal with memcmp */
	memset(out, 0, sizeof(*out));
	if (strncmp(s, "tcp:", 4) == 0)
		return parse_tcp(s, s + 4, out);
	if (strncmp(s, "unix:", 5) == 0)
		return parse_unix(s, s + 5, out);
	if (strncmp(s, "vsock:", 6) == 0)
		return parse_vsock(s, s + 6, out);
	return bad(s, s[0] == '\0' ? "it is empty" : "unknown kind");
}

void
ward_addr_format(const struct ward_addr *a, char *out, size_t cap)
{
	/* bounded reads: the struct may come from a caller, not the parser */
	int hn = (int)strnlen(a->host, sizeof(a->host));
	int pn = (int)strnlen(a->path, sizeof(a->path));

	if (cap == 0)
		return;
	switch (a->kind) {
	case WARD_ADDR_TCP:
		if (memchr(a->host, ':', (size_t)hn) != NULL)
			snprintf(out, cap, "tcp:[%.*s]:%u", hn, a->host,
			    (unsigned)a->port);
		else
			snprintf(out, cap, "tcp:%.*s:%u", hn, a->host,
			    (unsigned)a->port);
		break;
	case WARD_ADDR_UNIX:
		snprintf(out, cap, "unix:%.*s", pn, a->path);
		break;
	case WARD_ADDR_VSOCK:
		snprintf(out, cap, "vsock:%u:%u", (unsigned)a->cid,
		    (unsigned)a->vport);
		break;
	default:
		snprintf(
		    out, cap, "(address of unknown kind %d)", (int)a->kind);
	}
}

/* ------------------------------------------------------------------ */
/* Shared with vsock.c                                                 */

int
ward_transport_interrupted(void)
{
	return ward_errf(WARD_EINTR, "interrupted by signal %d (%s)",
	    ward_signal_caught(), strsignal(ward_signal_caught()));
}

/* The rest of a connect that EINTR cut short: wait, then ask how it
 * ended. */
static int
wait_connected(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	socklen_t n = sizeof(int);
	int err = 0, k;

	while ((k = poll(&p, 1, -1)) <= 0) {
		if (k < 0 && errno != EINTR)
			return errno;
		if (ward_signal_caught() != 0)
			return EINTR;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &n) != 0)
		return errno;
	return err;
}

int
ward_transport_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	for (;;) {
		if (connect(fd, sa, len) == 0)
			return 0;
		switch (errno) {
		case EINTR:
			if (ward_signal_caught() != 0)
				return EINTR;
			continue; /* Unix: nothing happened; TCP: see below */
		case EISCONN: /* a retried TCP connect that completed */
			return 0;
		case EALREADY: /* a retried TCP connect still under way */
		case EINPROGRESS:
			return wait_connected(fd);
		default:
			return errno;
		}
	}
}

/*
 * Is the socket file at path a leftover? 0 when it is gone or was removed
 * (bind again), else the error. A connect that is refused means nobody
 * listens; one that succeeds, or would block on a full backlog, means a
 * live listener. Other files are never removed.
 */
static int
clear_stale(const struct sockaddr_un *sun, const char *path, const char *what)
{
	struct stat st;
	int probe, rc, err;

	if (lstat(path, &st) != 0)
		return errno == ENOENT
		    ? 0
		    : ward_errf(WARD_EIO, "%s: %s: %s", what, ward_quotes(path),
		          strerror(errno));
	if (!S_ISSOCK(st.st_mode))
		return ward_errf(WARD_EEXIST,
		    "%s: %s exists and is not a socket; not replacing it", what,
		    ward_quotes(path));
	probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (probe < 0)
		return ward_errf(
		    WARD_EIO, "%s: socket: %s", what, strerror(errno));
	rc = connect(probe, (const struct sockaddr *)sun, sizeof(*sun));
	err = errno;
	close(probe);
	if (rc == 0 || err == EAGAIN || err == EINPROGRESS)
		return ward_errf(WARD_EEXIST, "%s is already in use", what);
	if (err == ENOENT)
		return 0;
	if (err != ECONNREFUSED)
		return ward_errf(WARD_EIO,
		    "%s: checking whether %s is in use: %s", what,
		    ward_quotes(path), strerror(err));
	if (unlink(path) != 0 && errno != ENOENT)
		return ward_errf(WARD_EIO,
		    "%s: removing the stale socket %s: %s", what,
		    ward_quotes(path), strerror(errno));
	return 0;
}

int
ward_transport_unix_listen(
    const char *path, const char *what, int backlog, unsigned mode, int *out)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	size_t n = strlen(path);
	bool bound = false;
	int fd = -1, r = 0;

	*out = -1;
	if (n == 0 || n >= sizeof(sun.sun_path))
		return ward_errf(WARD_ELIMIT,
		    "%s: the socket path %s is %zu bytes; a Unix socket path "
		    "holds 1 to %zu",
		    what, ward_quotes(path), n, sizeof(sun.sun_path) - 1);
	memcpy(sun.sun_path, path, n);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return ward_errf(
		    WARD_EIO, "%s: socket: %s", what, strerror(errno));
	/* A few rounds: another process may be replacing the same
	 * leftover at the same moment. */
	for (int tries = 0; !bound; tries++) {
		if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
			bound = true;
		} else if (errno != EADDRINUSE || tries == 3) {
			r = ward_errf(WARD_EIO, "%s: binding %s: %s", what,
			    ward_quotes(path), strerror(errno));
			goto out;
		} else if ((r = clear_stale(&sun, path, what)) != 0) {
			goto out;
		}
	}
	/* chmod, not fchmod: a socket's fd mode is not the file's */
	if (mode != 0 && chmod(path, mode) != 0) {
		r = ward_errf(WARD_EIO, "%s: chmod %s: %s", what,
		    ward_quotes(path), strerror(errno));
		goto out;
	}
	if (listen(fd, backlog) != 0) {
		r = ward_errf(
		    WARD_EIO, "%s: listen: %s", what, strerror(errno));
		goto out;
	}
	*out = fd;
	fd = -1;
out:
	if (fd >= 0) {
		if (bound)
			unlink(path);
		close(fd);
	}
	return r;
}

/* ------------------------------------------------------------------ */
/* Listening and connecting                                            */

static int
resolve(const struct ward_addr *a, const char *name, const char *doing,
    int flags, struct addrinfo **res)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
	    .ai_socktype = SOCK_STREAM,
	    .ai_flags = flags | AI_NUMERICSERV};
	char port[8];
	int gai;

	snprintf(port, sizeof(port), "%u", (unsigned)a->port);
	gai = getaddrinfo(a->host, port, &hints, res);
	if (gai == 0)
		return 0;
	*res = NULL;
	if (gai == EAI_SYSTEM)
		return ward_errf(WARD_EIO, "%s %s: resolving the host: %s",
		    doing, ward_quotes(name), strerror(errno));
	/* a name that does not exist is the caller's mistake, not I/O */
	return ward_errf(gai == EAI_NONAME ? WARD_EUSAGE : WARD_EIO,
	    "%s %s: resolving the host: %s", doing, ward_quotes(name),
	    gai_strerror(gai));
}

/* The first address the name resolves to that binds: one socket. */
static int
tcp_listen(const struct ward_addr *a, int backlog, int *out)
{
	struct addrinfo *res = NULL;
	const char *step = "socket";
	char name[WARD_ADDR_FMT_MAX];
	int fd = -1, err = 0, one = 1, r;

	ward_addr_format(a, name, sizeof(name));
	if ((r = resolve(a, name, "listening on", AI_PASSIVE, &res)) != 0)
		return r;
	for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
		    ai->ai_protocol);
		if (fd < 0) {
			err = errno;
			step = "socket";
			continue;
		}
		if (setsockopt(
		        fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0)
			step = "setsockopt SO_REUSEADDR";
		else if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0)
			step = "bind";
		else if (listen(fd, backlog) != 0)
			step = "listen";
		else
			break;
		err = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		if (err == EADDRINUSE)
			return ward_errf(WARD_EEXIST,
			    "listening on %s: the port is already in use",
			    ward_quotes(name));
		return ward_errf(WARD_EIO, "listening on %s: %s: %s",
		    ward_quotes(name), step, strerror(err));
	}
	*out = fd;
	return 0;
}

static int
tcp_connect(const struct ward_addr *a, int *out)
{
	struct addrinfo *res = NULL;
	char name[WARD_ADDR_FMT_MAX];
	int fd = -1, err = 0, tried = 0, r;

	ward_addr_format(a, name, sizeof(name));
	if ((r = resolve(a, name, "connecting to", 0, &res)) != 0)
		return r;
	for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
		tried++;
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
		    ai->ai_protocol);
		if (fd < 0) {
			err = errno;
			continue;
		}
		err = ward_transport_connect(fd, ai->ai_addr, ai->ai_addrlen);
		if (err == 0)
			break;
		close(fd);
		fd = -1;
		if (err == EINTR)
			break;
	}
	freeaddrinfo(res);
	if (fd >= 0) {
		*out = fd;
		return 0;
	}
	if (err == EINTR)
		return ward_transport_interrupted();
	if (tried > 1)
		return ward_errf(WARD_EIO,
		    "connecting to %s: %s (tried %d addresses)",
		    ward_quotes(name), strerror(err), tried);
	return ward_errf(
	    WARD_EIO, "connecting to %s: %s", ward_quotes(name), strerror(err));
}

static int
unix_connect(const char *path, int *out)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	size_t n = strnlen(path, SUN_PATH_MAX);
	int fd, err;

	if (n == 0 || n >= sizeof(sun.sun_path))
		return ward_errf(WARD_ELIMIT,
		    "connecting to unix:%s: a Unix socket path holds 1 to %zu "
		    "bytes",
		    ward_quote(path, n), sizeof(sun.sun_path) - 1);
	memcpy(sun.sun_path, path, n);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return ward_errf(WARD_EIO, "connecting to unix:%s: socket: %s",
		    ward_quotes(path), strerror(errno));
	err = ward_transport_connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	if (err == 0) {
		*out = fd;
		return 0;
	}
	close(fd);
	if (err == EINTR)
		return ward_transport_interrupted();
	if (err == ENOENT || err == ECONNREFUSED)
		return ward_errf(
		    WARD_EIO, "nothing listens on unix:%s", ward_quotes(path));
	return ward_errf(WARD_EIO, "connecting to unix:%s: %s",
	    ward_quotes(path), strerror(err));
}

/* The CIDs a listener may name: its own, VMADDR_CID_LOCAL or ANY. */
static int
vsock_listen(const struct ward_addr *a, int backlog, int *out)
{
	uint32_t local;
	int r;

	if (a->cid != WARD_VSOCK_CID_ANY && a->cid != WARD_VSOCK_CID_LOCAL) {
		if ((r = ward_vsock_local_cid(&local)) != 0)
			return r;
		if (a->cid != local)
			return ward_errf(WARD_EUSAGE,
			    "cannot listen on vsock:%u:%u: this side is CID "
			    "%u (listen on vsock:%u:%u or vsock:%u:%u)",
			    a->cid, a->vport, local, local, a->vport,
			    WARD_VSOCK_CID_ANY, a->vport);
	}
	return ward_vsock_listen(a->vport, backlog, out);
}

int
ward_listen(const struct ward_addr *a, int backlog, int *fd)
{
	char what[WARD_ADDR_FMT_MAX];

	*fd = -1;
	switch (a->kind) {
	case WARD_ADDR_TCP:
		return tcp_listen(a, backlog, fd);
	case WARD_ADDR_UNIX:
		snprintf(what, sizeof(what), "unix:%s",
		    ward_quote(a->path, strnlen(a->path, sizeof(a->path))));
		if (strnlen(a->path, sizeof(a->path)) == sizeof(a->path))
			return ward_errf(WARD_ELIMIT,
			    "listening on %s...: the path is not terminated",
			    what);
		return ward_transport_unix_listen(
		    a->path, what, backlog, 0, fd);
	case WARD_ADDR_VSOCK:
		return vsock_listen(a, backlog, fd);
	}
	return ward_errf(WARD_EINTERNAL,
	    "ward_listen: address of unknown kind %d", (int)a->kind);
}

int
ward_connect(const struct ward_addr *a, int *fd)
{
	*fd = -1;
	switch (a->kind) {
	case WARD_ADDR_TCP:
		return tcp_connect(a, fd);
	case WARD_ADDR_UNIX:
		return unix_connect(a->path, fd);
	case WARD_ADDR_VSOCK:
		return ward_vsock_connect(a->cid, a->vport, fd);
	}
	return ward_errf(WARD_EINTERNAL,
	    "ward_connect: address of unknown kind %d", (int)a->kind);
}

int
ward_bound_addr(int fd, const struct ward_addr *asked, struct ward_addr *out)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct ward_addr a = *asked; /* out may be asked */
	int family, gai, r;

	memset(&ss, 0, sizeof(ss));
	if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
		return ward_errf(WARD_EIO, "getsockname: %s", strerror(errno));
	family = ss.ss_family;
	switch (a.kind) {
	case WARD_ADDR_TCP:
		if (family != AF_INET && family != AF_INET6)
			break;
		/* numeric, so a name that resolved to several addresses
		 * reads as the one bound */
		memset(a.host, 0, sizeof(a.host));
		gai = getnameinfo((struct sockaddr *)&ss, len, a.host,
		    sizeof(a.host), NULL, 0, NI_NUMERICHOST);
		if (gai != 0)
			return ward_errf(
			    WARD_EIO, "getnameinfo: %s", gai_strerror(gai));
		a.port = ntohs(family == AF_INET
		        ? ((struct sockaddr_in *)&ss)->sin_port
		        : ((struct sockaddr_in6 *)&ss)->sin6_port);
		*out = a;
		return 0;
	case WARD_ADDR_UNIX:
		if (family != AF_UNIX)
			break;
		*out = a;
		return 0;
	case WARD_ADDR_VSOCK:
		/* AF_UNIX: the emulation, which binds exactly the port
		 * asked for */
		if (family != AF_VSOCK && family != AF_UNIX)
			break;
		if (family == AF_VSOCK)
			a.vport = ((struct sockaddr_vm *)&ss)->svm_port;
		/* the CID a peer dials, not the wildcard */
		if ((a.cid == WARD_VSOCK_CID_ANY ||
		        a.cid == WARD_VSOCK_CID_LOCAL) &&
		    (r = ward_vsock_local_cid(&a.cid)) != 0)
			return r;
		*out = a;
		return 0;
	default:
		return ward_errf(WARD_EINTERNAL,
		    "ward_bound_addr: address of unknown kind %d", (int)a.kind);
	}
	return ward_errf(WARD_EUSAGE,
	    "ward_bound_addr: the socket (address family %d) is not of the "
	    "kind asked for",
	    family);
}
