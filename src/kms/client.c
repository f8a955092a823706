/*
 * The KMS client: awsJson1_1 over HTTP(S) with libcurl, signed with SigV4
 * (kms-and-esdk.md §1.1, §1.2, §2). One easy handle per client, reused so
 * that connections are kept alive between calls.
 *
 * What is sent is exactly what is signed: Host (host[:port] as the
 * endpoint URL writes it, set explicitly so curl does not rewrite it),
 * Content-Type, X-Amz-Date, X-Amz-Target and X-Amz-Security-Token are all
 * signed; curl adds only User-Agent and Content-Length (never signed by
 * the SDKs either). Its Accept and "Expect: 100-continue" are suppressed.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "client_internal.h"

#define KMS_TIMEOUT_MS_DEFAULT 10000L
#define KMS_OPERATION_MAX 64
#define KMS_ENDPOINT_MAX 2048
#define KMS_USER_AGENT "ward/" WARD_VERSION

struct ward_kms_client {
	CURL *h;
	char *url;
	char *host;
	char *region;
	struct ward_aws_credentials cred;
	char *unix_socket;
	char *ca_file;
	long timeout_ms;
	/* opts.connect: curl's sockets come from it */
	int (*connect)(void *ctx, int *fd);
	void *connect_ctx;
	struct curl_slist *connect_to;
	bool relay; /* this libcurl needs the relay (below) */
	char connect_err[512]; /* why the last connect failed */
};

/* ---- process-wide curl setup ------------------------------------------ */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

static void
curl_init(void)
{
	curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int
ward_kms_curl_global(void)
{
	int r;

	/* loaded on first use (src/util/lazy.c): an error, not an exit */
	if ((r = ward_lazy_load(WARD_LAZY_CURL)) != 0)
		return r;
	pthread_once(&curl_once, curl_init);
	if (curl_init_result != CURLE_OK)
		return ward_errf(WARD_EINTERNAL, "libcurl initialisation: %s",
		    curl_easy_strerror(curl_init_result));
	return 0;
}

static const char *
env(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && *v != '\0' ? v : NULL;
}

/* ---- endpoint --------------------------------------------------------- */

static bool
port_ok(const char *p, size_t n)
{
	unsigned long v = 0;

	if (n == 0 || n > 5)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (unsigned long)(p[i] - '0');
	}
	return v >= 1 && v <= 65535;
}

/* host[:port] or [v6]:port, of plain host name characters. */
static bool
authority_ok(const char *a, size_t n)
{
	const char *colon;
	size_t hn;

	if (n == 0)
		return false;
	if (a[0] == '[') {
		const char *end = memchr(a, ']', n);

		if (end == NULL || end == a + 1)
			return false;
		for (const char *q = a + 1; q < end; q++)
			if (strchr("0123456789abcdefABCDEF:.", *q) == NULL)
				return false;
		hn = (size_t)(end - a) + 1;
		if (hn == n)
			return true;
		return a[hn] == ':' && port_ok(a + hn + 1, n - hn - 1);
	}
	colon = memchr(a, ':', n);
	hn = colon != NULL ? (size_t)(colon - a) : n;
	if (hn == 0)
		return false;
	for (size_t i = 0; i < hn; i++)
		if (strchr("-._", a[i]) == NULL &&
		    !(a[i] >= 'a' && a[i] <= 'z') &&
		    !(a[i] >= 'A' && a[i] <= 'Z') &&
		    !(a[i] >= '0' && a[i] <= '9'))
			return false;
	return colon == NULL || port_ok(colon + 1, n - hn - 1);
}

int
ward_kms_endpoint_resolve(
    const char *endpoint_url, const char *region, char **url, char **host)
{
	const char *src = NULL, *what = "endpoint URL", *auth, *rest;
	const char *scheme;
	size_t alen;
	int r;

	*url = *host = NULL;
	if (endpoint_url != NULL && *endpoint_url != '\0')
		src = endpoint_url;
	else if ((src = env("AWS_ENDPOINT_URL_KMS")) != NULL)
		what = "AWS_ENDPOINT_URL_KMS";
	else if ((src = env("AWS_ENDPOINT_URL")) != NULL)
		what = "AWS_ENDPOINT_URL";

	if (src == NULL) {
		const char *suffix;

		if (region == NULL)
			return ward_errf(WARD_EUSAGE,
			    "no KMS endpoint: set a region (AWS_REGION) or an endpoint URL (AWS_ENDPOINT_URL_KMS)");
		if ((r = ward_aws_region_check(region)) != 0)
			return r;
		suffix = strncmp(region, "cn-", 3) == 0 ? "amazonaws.com.cn"
		                                        : "amazonaws.com";
		if (asprintf(host, "kms.%s.%s", region, suffix) < 0) {
			*host = NULL;
			return ward_enomem();
		}
		if (asprintf(url, "https://%s/", *host) < 0) {
			*url = NULL;
			free(*host);
			*host = NULL;
			return ward_enomem();
		}
		return 0;
	}

	if (strlen(src) > KMS_ENDPOINT_MAX)
		return ward_errf(WARD_EUSAGE, "KMS %s is longer than %d bytes",
		    what, KMS_ENDPOINT_MAX);
	if (strncasecmp(src, "https://", 8) == 0) {
		scheme = "https";
		auth = src + 8;
	} else if (strncasecmp(src, "http://", 7) == 0) {
		scheme = "http";
		auth = src + 7;
	} else
		return ward_errf(WARD_EUSAGE,
		    "KMS %s %s: only http:// and https:// URLs are supported",
		    what, ward_quotes(src));
	alen = strcspn(auth, "/?#");
	rest = auth + alen;
	if (memchr(auth, '@', alen) != NULL)
		return ward_errf(WARD_EUSAGE,
		    "KMS %s %s: credentials in the URL are not supported", what,
		    ward_quotes(src));
	if (!authority_ok(auth, alen))
		return ward_errf(WARD_EUSAGE,
		    "KMS %s %s: expected http(s)://HOST[:PORT]", what,
		    ward_quotes(src));
	if (*rest != '\0' && strcmp(rest, "/") != 0)
		return ward_errf(WARD_EUSAGE,
		    "KMS %s %s: a path, query or fragment is not supported (KMS is served at /)",
		    what, ward_quotes(src));
	if ((*host = strndup(auth, alen)) == NULL)
		return ward_enomem();
	if (asprintf(url, "%s://%s/", scheme, *host) < 0) {
		*url = NULL;
		free(*host);
		*host = NULL;
		return ward_enomem();
	}
	return 0;
}

/* ---- errors ----------------------------------------------------------- */

void
ward_kms_error_type_sanitize(const char *raw, size_t len, char *out, size_t n)
{
	const char *p = raw, *end, *hash;
	size_t k = 0;

	if (n == 0)
		return;
	out[0] = '\0';
	if (raw == NULL)
		return;
	/* §1.2: keep what is before a ':', then what is after a '#'. */
	if ((end = memchr(raw, ':', len)) == NULL)
		end = raw + len;
	for (hash = p; hash < end; hash++)
		if (*hash == '#')
			p = hash + 1;
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	while (end > p &&
	    (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' ||
	        end[-1] == '\n'))
		end--;
	for (; p < end && k + 1 < n; p++) {
		if (*p <= ' ' || *p > '~') {
			k = 0; /* not a shape name */
			break;
		}
		out[k++] = *p;
	}
	out[k] = '\0';
}

static const char *const auth_types[] = {
    "AccessDeniedException",
    "IncompleteSignatureException",
    "IncompleteSignature",
    "InvalidSignatureException",
    "MissingAuthenticationTokenException",
    "MissingAuthenticationToken",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredTokenException",
    "RequestExpired",
    "SignatureDoesNotMatch",
    "NotAuthorizedException",
};

int
ward_kms_error_code(const char *type, long status)
{
	for (size_t i = 0; i < sizeof(auth_types) / sizeof(auth_types[0]); i++)
		if (strcmp(type, auth_types[i]) == 0)
			return WARD_EAUTH;
	if (strcmp(type, "InvalidCiphertextException") == 0 ||
	    strcmp(type, "IncorrectKeyException") == 0)
		return WARD_EKEY;
	/* Faults (KMSInternalException, DependencyTimeoutException, a
	 * proxy's 502) are the service's, not the request's: like a
	 * transport failure, retrying may help. */
	if (status >= 500)
		return WARD_EIO;
	if (status == 401 || status == 403)
		return WARD_EAUTH;
	return WARD_EFORMAT;
}

/* A message from the server, control bytes replaced. */
static void
copy_message(char *out, size_t n, const char *s)
{
	size_t k = 0;

	for (; s[k] != '\0' && k + 1 < n; k++)
		out[k] = (unsigned char)s[k] < ' ' || s[k] == 0x7f ? '?' : s[k];
	out[k] = '\0';
}

int
ward_kms_parse_error(const char *operation, long status,
    const char *header_type, const uint8_t *body, size_t len,
    struct ward_kms_error *e)
{
	struct ward_kms_error local;
	char type[sizeof(local.type)] = "", msg[sizeof(local.message)] = "";
	json_t *j = NULL, *v;
	int code;

	if (e == NULL)
		e = &local;
	if (len > 0)
		j = json_loadb((const char *)body, len, 0, NULL);
	if (json_is_object(j)) {
		if (!json_is_string(v = json_object_get(j, "__type")))
			v = json_object_get(j, "code");
		if (json_is_string(v))
			ward_kms_error_type_sanitize(json_string_value(v),
			    json_string_length(v), type, sizeof(type));
		if (!json_is_string(v = json_object_get(j, "message")))
			v = json_object_get(j, "Message");
		if (json_is_string(v))
			copy_message(msg, sizeof(msg), json_string_value(v));
	}
	json_decref(j);
	if (type[0] == '\0' && header_type != NULL)
		ward_kms_error_type_sanitize(
		    header_type, strlen(header_type), type, sizeof(type));
	if (type[0] == '\0')
		snprintf(type, sizeof(type), "UnknownError");
	if (msg[0] == '\0')
		snprintf(msg, sizeof(msg), "HTTP status %ld", status);
	code = ward_kms_error_code(type, status);
	return ward_err_prefix(
	    ward_kms_err(e, code, (int)status, type, "%s", msg), "KMS %s",
	    operation);
}

/* ---- the client ------------------------------------------------------- */

struct response {
	struct ward_buf body; /* secret: may hold a data key */
	bool too_big;
	char error_type[256]; /* X-Amzn-ErrorType, raw */
};

static size_t
on_body(char *p, size_t size, size_t n, void *ctx)
{
	struct response *rs = ctx;
	size_t len = size * n;

	if (len > WARD_KMS_RESPONSE_MAX - rs->body.len) {
		rs->too_big = true;
		return 0;
	}
	if (ward_buf_append(&rs->body, p, len) != 0)
		return 0;
	return len;
}

static size_t
on_header(char *p, size_t size, size_t n, void *ctx)
{
	static const char name[] = "x-amzn-errortype:";
	struct response *rs = ctx;
	size_t len = size * n, k = sizeof(name) - 1;

	if (len > k && strncasecmp(p, name, k) == 0) {
		while (k < len && (p[k] == ' ' || p[k] == '\t'))
			k++;
		snprintf(rs->error_type, sizeof(rs->error_type), "%.*s",
		    (int)(len - k), p + k);
		rs->error_type[strcspn(rs->error_type, "\r\n")] = '\0';
	}
	return len;
}

const char *
ward_kms_client_endpoint(const struct ward_kms_client *c)
{
	return c->url;
}

const char *
ward_kms_client_region(const struct ward_kms_client *c)
{
	return c->region;
}

void
ward_kms_client_free(struct ward_kms_client *c)
{
	if (c == NULL)
		return;
	if (c->h != NULL)
		curl_easy_cleanup(c->h);
	ward_aws_credentials_clear(&c->cred);
	free(c->url);
	free(c->host);
	free(c->region);
	free(c->unix_socket);
	free(c->ca_file);
	curl_slist_free_all(c->connect_to);
	free(c);
}

/*
 * Sockets from opts.connect. curl asks for a socket where it would call
 * socket(2), is told it is already connected, and closes it with close(2)
 * through us. It still "resolves" the URL's host first: CONNECT_TO maps
 * every host to 127.0.0.1, which curl takes as a literal without a
 * lookup (an enclave has no DNS), while the Host header and TLS SNI and
 * certificate check keep the URL's name.
 *
 * libcurl 7.87.0 to 7.88.1 (Debian 12 has 7.88.1) connect() a socket even
 * when the sockopt callback says it is connected already, which fails
 * (curl issue #10626, fixed in 8.0.0), and they accept no address family
 * but IP and Unix in its place. With those, the connection is relayed:
 * curl gets a fresh Unix socket to connect to a private listener (an
 * autobound abstract name, so nothing appears in any directory), and a
 * thread copies bytes between what it accepts and the connection from
 * opts.connect until both directions have ended.
 */
#define RELAY_CHUNK 16384

struct relay {
	int listen_fd; /* the private listener curl connects to */
	int far_fd; /* the connection from opts.connect */
	long timeout_ms; /* for curl to connect */
};

static bool
relay_needed(void)
{
	const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);

	return v->version_num >= 0x075700 && v->version_num < 0x080000;
}

/* Write all of p to fd; false when the peer is gone. */
static bool
relay_write(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return false;
		p += k;
		n -= (size_t)k;
	}
	return true;
}

static void *
relay_main(void *arg)
{
	struct relay *rl = arg;
	struct pollfd pf[2];
	uint8_t buf[RELAY_CHUNK];
	bool open_in[2] = {true, true}; /* near, far */
	int near = -1, n;

	/*
	 * The abstract name is visible in /proc/net/unix: anyone in the
	 * enclave could connect first. Only this process's curl is taken;
	 * others are closed, until curl comes or the connect timeout ends.
	 */
	pf[0] = (struct pollfd){.fd = rl->listen_fd, .events = POLLIN};
	for (double end = ward_now() + (double)rl->timeout_ms / 1e3;;) {
		struct ucred who;
		socklen_t wl = sizeof(who);
		double left = end - ward_now();

		if (left <= 0)
			break;
		n = poll(pf, 1, (int)(left * 1e3) + 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		near = accept4(rl->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (near < 0)
			continue;
		if (getsockopt(near, SOL_SOCKET, SO_PEERCRED, &who, &wl) == 0 &&
		    who.pid == getpid())
			break;
		close(near);
		near = -1;
	}
	close(rl->listen_fd);
	if (near < 0)
		goto out;
	/* pf[i] is read, and what arrives is written to the other */
	pf[0] = (struct pollfd){.fd = near, .events = POLLIN};
	pf[1] = (struct pollfd){.fd = rl->far_fd, .events = POLLIN};
	while (open_in[0] || open_in[1]) {
		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (int i = 0; i < 2; i++) {
			ssize_t k;

			if (!open_in[i] ||
			    (pf[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0)
				continue;
			k = recv(pf[i].fd, buf, sizeof(buf), 0);
			if (k < 0 && errno == EINTR)
				continue;
			if (k > 0) {
				if (!relay_write(pf[1 - i].fd, buf, (size_t)k))
					goto out; /* the other end is gone */
				continue;
			}
			/* a reset, or curl closed the connection: it wants
			 * nothing more from this one */
			if (k < 0 || i == 0)
				goto out;
			/* the far end is done: curl reads to the end */
			shutdown(pf[1 - i].fd, SHUT_WR);
			open_in[i] = false;
			pf[i].fd = -1;
		}
	}
out:
	ward_cleanse(buf, sizeof(buf));
	if (near >= 0)
		close(near);
	close(rl->far_fd);
	free(rl);
	return NULL;
}

/* A Unix socket for curl to connect to *addr, relayed to far_fd (taken). */
static int
relay_start(struct ward_kms_client *c, int far_fd, struct curl_sockaddr *addr,
    int *curl_fd)
{
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	socklen_t len = sizeof(sa_family_t);
	struct relay *rl = NULL;
	pthread_attr_t ta;
	pthread_t t;
	int lfd = -1, fd = -1, e;

	*curl_fd = -1;
	if ((rl = calloc(1, sizeof(*rl))) == NULL) {
		close(far_fd);
		return ward_enomem();
	}
	/* binding just the family autobinds an abstract name */
	if ((lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    bind(lfd, (struct sockaddr *)&un, len) != 0 ||
	    listen(lfd, 1) != 0) {
		e = errno;
		goto fail;
	}
	len = sizeof(un);
	if (getsockname(lfd, (struct sockaddr *)&un, &len) != 0 ||
	    (fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		e = errno;
		goto fail;
	}
	/* "\0" and 5 hex digits: within struct sockaddr, as curl has it */
	if (len > sizeof(addr->addr)) {
		e = ENAMETOOLONG;
		goto fail;
	}
	rl->listen_fd = lfd;
	rl->far_fd = far_fd;
	rl->timeout_ms = c->timeout_ms;
	pthread_attr_init(&ta);
	pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
	e = pthread_create(&t, &ta, relay_main, rl);
	pthread_attr_destroy(&ta);
	if (e != 0)
		goto fail;
	addr->family = AF_UNIX;
	addr->socktype = SOCK_STREAM;
	addr->protocol = 0;
	addr->addrlen = len;
	memcpy(&addr->addr, &un, len);
	*curl_fd = fd;
	return 0;
fail:
	if (lfd >= 0)
		close(lfd);
	if (fd >= 0)
		close(fd);
	close(far_fd);
	free(rl);
	return ward_errf(WARD_EIO, "KMS connection relay: %s", strerror(e));
}

static curl_socket_t
open_socket(void *ctx, curlsocktype purpose, struct curl_sockaddr *addr)
{
	struct ward_kms_client *c = ctx;
	int fd = -1, curl_fd;

	if (purpose != CURLSOCKTYPE_IPCXN) {
		snprintf(c->connect_err, sizeof(c->connect_err),
		    "unexpected socket purpose %d", (int)purpose);
		return CURL_SOCKET_BAD;
	}
	if (c->connect(c->connect_ctx, &fd) != 0 || fd < 0 ||
	    (c->relay && relay_start(c, fd, addr, &curl_fd) != 0)) {
		snprintf(c->connect_err, sizeof(c->connect_err), "%s",
		    ward_errmsg());
		return CURL_SOCKET_BAD;
	}
	return c->relay ? curl_fd : fd;
}

static int
sockopt_connected(void *ctx, curl_socket_t fd, curlsocktype purpose)
{
	struct ward_kms_client *c = ctx;

	return c->relay ? CURL_SOCKOPT_OK : CURL_SOCKOPT_ALREADY_CONNECTED;
}

static int
close_socket(void *ctx, curl_socket_t fd)
{
	return close(fd);
}

static int
copy_credentials(
    struct ward_aws_credentials *dst, const struct ward_aws_credentials *src)
{
	if (src->access_key_id == NULL || src->secret_access_key == NULL)
		return ward_errf(WARD_EUSAGE,
		    "AWS credentials without an access key id or secret");
	if ((dst->access_key_id = strdup(src->access_key_id)) == NULL ||
	    (dst->secret_access_key = strdup(src->secret_access_key)) == NULL ||
	    (src->session_token != NULL &&
	        (dst->session_token = strdup(src->session_token)) == NULL)) {
		ward_aws_credentials_clear(dst);
		return ward_enomem();
	}
	memcpy(dst->source, src->source, sizeof(dst->source));
	dst->source[sizeof(dst->source) - 1] = '\0';
	return 0;
}

int
ward_kms_client_set_credentials(
    struct ward_kms_client *c, const struct ward_aws_credentials *cred)
{
	ward_aws_credentials_clear(&c->cred);
	if (cred == NULL)
		return 0;
	return copy_credentials(&c->cred, cred);
}

static bool
setopt_failed(CURLcode *acc, CURLcode c)
{
	if (*acc == CURLE_OK)
		*acc = c;
	return c != CURLE_OK;
}

int
ward_kms_client_new(
    struct ward_kms_client **out, const struct ward_kms_client_opts *o)
{
	static const struct ward_kms_client_opts none = {0};
	struct ward_kms_client *c;
	const char *ca;
	CURLcode cc = CURLE_OK;
	int r;

	*out = NULL;
	if (o == NULL)
		o = &none;
	if ((r = ward_kms_curl_global()) != 0)
		return r;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return ward_enomem();
	c->timeout_ms =
	    o->timeout_ms > 0 ? o->timeout_ms : KMS_TIMEOUT_MS_DEFAULT;
	if ((r = ward_aws_region_resolve(o->region, o->profile, &c->region)) !=
	    0)
		goto out;
	if (c->region == NULL) {
		r = ward_errf(WARD_EUSAGE,
		    "no AWS region: use --region, set AWS_REGION, or set region in the profile's section of ~/.aws/config");
		goto out;
	}
	if ((r = ward_aws_region_check(c->region)) != 0 ||
	    (r = ward_kms_endpoint_resolve(
	         o->endpoint_url, c->region, &c->url, &c->host)) != 0)
		goto out;
	if (o->credentials != NULL)
		r = copy_credentials(&c->cred, o->credentials);
	else
		r = ward_aws_credentials_load(o->profile, &c->cred);
	if (r != 0)
		goto out;
	/* AWS_CA_BUNDLE: the SDKs' way to name trust anchors. */
	ca = o->ca_file != NULL ? o->ca_file : env("AWS_CA_BUNDLE");
	if (o->unix_socket != NULL && o->connect != NULL) {
		r = ward_errf(WARD_EUSAGE,
		    "KMS client: give a Unix socket or a connect function, not both");
		goto out;
	}
	c->connect = o->connect;
	c->connect_ctx = o->connect_ctx;
	c->relay = c->connect != NULL && relay_needed();
	if ((c->connect != NULL &&
	        (c->connect_to = curl_slist_append(NULL, "::127.0.0.1:")) ==
	            NULL) ||
	    (o->unix_socket != NULL &&
	        (c->unix_socket = strdup(o->unix_socket)) == NULL) ||
	    (ca != NULL && (c->ca_file = strdup(ca)) == NULL)) {
		r = ward_enomem();
		goto out;
	}
	if ((c->h = curl_easy_init()) == NULL) {
		r = ward_errf(WARD_EINTERNAL, "libcurl: no easy handle");
		goto out;
	}
	setopt_failed(&cc, curl_easy_setopt(c->h, CURLOPT_URL, c->url));
	setopt_failed(&cc, curl_easy_setopt(c->h, CURLOPT_POST, 1L));
	setopt_failed(&cc, curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L));
	setopt_failed(
	    &cc, curl_easy_setopt(c->h, CURLOPT_TIMEOUT_MS, c->timeout_ms));
	setopt_failed(&cc,
	    curl_easy_setopt(c->h, CURLOPT_CONNECTTIMEOUT_MS, c->timeout_ms));
	setopt_failed(
	    &cc, curl_easy_setopt(c->h, CURLOPT_PROTOCOLS_STR, "http,https"));
	setopt_failed(&cc,
	    curl_easy_setopt(c->h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https"));
	setopt_failed(&cc, curl_easy_setopt(c->h, CURLOPT_FOLLOWLOCATION, 0L));
	setopt_failed(
	    &cc, curl_easy_setopt(c->h, CURLOPT_USERAGENT, KMS_USER_AGENT));
	setopt_failed(
	    &cc, curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, on_body));
	setopt_failed(
	    &cc, curl_easy_setopt(c->h, CURLOPT_HEADERFUNCTION, on_header));
	if (c->unix_socket != NULL)
		setopt_failed(&cc,
		    curl_easy_setopt(
		        c->h, CURLOPT_UNIX_SOCKET_PATH, c->unix_socket));
	if (c->connect != NULL) {
		setopt_failed(&cc,
		    curl_easy_setopt(
		        c->h, CURLOPT_OPENSOCKETFUNCTION, open_socket));
		setopt_failed(
		    &cc, curl_easy_setopt(c->h, CURLOPT_OPENSOCKETDATA, c));
		setopt_failed(&cc,
		    curl_easy_setopt(
		        c->h, CURLOPT_SOCKOPTFUNCTION, sockopt_connected));
		setopt_failed(
		    &cc, curl_easy_setopt(c->h, CURLOPT_SOCKOPTDATA, c));
		setopt_failed(&cc,
		    curl_easy_setopt(
		        c->h, CURLOPT_CLOSESOCKETFUNCTION, close_socket));
		setopt_failed(
		    &cc, curl_easy_setopt(c->h, CURLOPT_CLOSESOCKETDATA, c));
		setopt_failed(&cc,
		    curl_easy_setopt(c->h, CURLOPT_CONNECT_TO, c->connect_to));
		/* not a TCP socket; and no http_proxy from the environment */
		setopt_failed(
		    &cc, curl_easy_setopt(c->h, CURLOPT_TCP_NODELAY, 0L));
		setopt_failed(&cc, curl_easy_setopt(c->h, CURLOPT_PROXY, ""));
	}
	if (c->ca_file != NULL)
		setopt_failed(
		    &cc, curl_easy_setopt(c->h, CURLOPT_CAINFO, c->ca_file));
	if (cc != CURLE_OK) {
		r = ward_errf(
		    WARD_EINTERNAL, "libcurl: %s", curl_easy_strerror(cc));
		goto out;
	}
	*out = c;
	c = NULL;
out:
	ward_kms_client_free(c);
	return r;
}

static int
dump_to_buf(const char *p, size_t n, void *ctx)
{
	return ward_buf_append(ctx, p, n) == 0 ? 0 : -1;
}

/* Append "Name: value" to the list; the copy curl keeps is cleansed by
 * slist_free. */
static int
add_header(struct curl_slist **l, const char *name, const char *value)
{
	struct ward_buf b = {.secret = true};
	struct curl_slist *n = NULL;
	int r;

	if ((r = ward_buf_append(&b, name, strlen(name))) == 0 &&
	    (r = ward_buf_append(&b, ": ", 2)) == 0 &&
	    (r = ward_buf_append(&b, value, strlen(value))) == 0 &&
	    (r = ward_buf_put_u8(&b, 0)) == 0) {
		if ((n = curl_slist_append(*l, (const char *)b.p)) == NULL)
			r = ward_enomem();
		else
			*l = n;
	}
	ward_buf_free(&b);
	return r;
}

static void
slist_free(struct curl_slist *l)
{
	for (struct curl_slist *i = l; i != NULL; i = i->next)
		ward_cleanse(i->data, strlen(i->data));
	curl_slist_free_all(l);
}

static bool
operation_ok(const char *op)
{
	size_t n = strlen(op);

	if (n == 0 || n > KMS_OPERATION_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(op[i] >= 'a' && op[i] <= 'z') &&
		    !(op[i] >= 'A' && op[i] <= 'Z'))
			return false;
	return true;
}

int
ward_kms_call(struct ward_kms_client *c, const char *operation, json_t *request,
    json_t **response, struct ward_kms_error *e)
{
	static const char content_type[] = "application/x-amz-json-1.1";
	struct ward_kms_error local;
	struct ward_buf body = {.secret = true}, auth = {0};
	struct response rs = {.body = {.secret = true}};
	struct curl_slist *hl = NULL;
	struct ward_sigv4_header sh[5];
	char date[17], target[16 + KMS_OPERATION_MAX];
	char errbuf[CURL_ERROR_SIZE] = "";
	size_t nsh = 0;
	long status = 0;
	json_error_t jerr;
	json_t *j;
	CURLcode cc;
	int r;

	if (e == NULL)
		e = &local;
	memset(e, 0, sizeof(*e));
	*response = NULL;
	if (!operation_ok(operation))
		return ward_errf(
		    WARD_EINTERNAL, "KMS operation %s", ward_quotes(operation));
	/* The body may carry a plaintext (Encrypt): a secret buffer, and
	 * jansson writes straight into it. */
	if (request == NULL)
		r = ward_buf_append(&body, "{}", 2);
	else if (json_dump_callback(
	             request, dump_to_buf, &body, JSON_COMPACT) != 0)
		r = ward_errf(WARD_EFORMAT,
		    "KMS %s: the request cannot be written as JSON", operation);
	else
		r = 0;
	if (r != 0)
		goto out;

	if (c->cred.access_key_id == NULL ||
	    c->cred.secret_access_key == NULL) {
		r = ward_errf(
		    WARD_EUSAGE, "KMS %s: no AWS credentials", operation);
		goto out;
	}
	ward_sigv4_amz_date(time(NULL), date);
	snprintf(target, sizeof(target), "TrentService.%s", operation);
	sh[nsh++] = (struct ward_sigv4_header){"Host", c->host};
	sh[nsh++] = (struct ward_sigv4_header){"Content-Type", content_type};
	sh[nsh++] = (struct ward_sigv4_header){"X-Amz-Date", date};
	sh[nsh++] = (struct ward_sigv4_header){"X-Amz-Target", target};
	if (c->cred.session_token != NULL)
		sh[nsh++] = (struct ward_sigv4_header){
		    "X-Amz-Security-Token", c->cred.session_token};
	{
		const struct ward_sigv4_request req = {
		    .method = "POST",
		    .path = "/",
		    .query = "",
		    .headers = sh,
		    .nheaders = nsh,
		    .body = body.p,
		    .body_len = body.len,
		};
		const struct ward_sigv4_credentials cr = {
		    .access_key_id = c->cred.access_key_id,
		    .secret_access_key = c->cred.secret_access_key,
		    .session_token = c->cred.session_token,
		};

		if ((r = ward_sigv4_sign(&req, &cr, c->region, "kms", &auth)) !=
		    0)
			goto out;
	}
	for (size_t i = 0; i < nsh; i++)
		if ((r = add_header(&hl, sh[i].name, sh[i].value)) != 0)
			goto out;
	if ((r = add_header(&hl, "Authorization", (const char *)auth.p)) != 0)
		goto out;
	/* No unsigned headers of curl's own but User-Agent and
	 * Content-Length: "Name:" with no value removes a default one. */
	for (size_t i = 0; i < 2; i++) {
		struct curl_slist *n =
		    curl_slist_append(hl, i == 0 ? "Expect:" : "Accept:");

		if (n == NULL) {
			r = ward_enomem();
			goto out;
		}
		hl = n;
	}

	curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(
	    c->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body.len);
	curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, body.p);
	curl_easy_setopt(c->h, CURLOPT_WRITEDATA, &rs);
	curl_easy_setopt(c->h, CURLOPT_HEADERDATA, &rs);
	curl_easy_setopt(c->h, CURLOPT_ERRORBUFFER, errbuf);
	c->connect_err[0] = '\0';
	cc = curl_easy_perform(c->h);
	curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(c->h, CURLOPT_ERRORBUFFER, NULL);
	curl_easy_setopt(c->h, CURLOPT_WRITEDATA, NULL);
	curl_easy_setopt(c->h, CURLOPT_HEADERDATA, NULL);
	/* Sent: the plaintext it may hold goes now. */
	ward_buf_free(&body);
	curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, NULL);

	if (rs.too_big) {
		r = ward_errf(WARD_ELIMIT,
		    "KMS %s: %s: response larger than %d bytes", operation,
		    c->url, WARD_KMS_RESPONSE_MAX);
		snprintf(e->message, sizeof(e->message), "%s", ward_errmsg());
		goto out;
	}
	if (cc != CURLE_OK) {
		snprintf(e->message, sizeof(e->message), "%s",
		    c->connect_err[0] != '\0' ? c->connect_err
		        : errbuf[0] != '\0'   ? errbuf
		                              : curl_easy_strerror(cc));
		r = ward_errf(
		    WARD_EIO, "KMS %s: %s: %s", operation, c->url, e->message);
		goto out;
	}
	curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200) {
		r = ward_kms_parse_error(operation, status,
		    rs.error_type[0] != '\0' ? rs.error_type : NULL, rs.body.p,
		    rs.body.len, e);
		goto out;
	}
	e->status = 200;
	/* Operations without output may send an empty body. */
	if (rs.body.len == 0)
		j = json_object();
	else
		j = json_loadb((const char *)rs.body.p, rs.body.len,
		    JSON_REJECT_DUPLICATES, &jerr);
	if (j == NULL || !json_is_object(j)) {
		json_decref(j);
		r = ward_errf(WARD_EFORMAT,
		    "KMS %s: %s: the response is not a JSON object", operation,
		    c->url);
		goto out;
	}
	*response = j;
out:
	slist_free(hl);
	ward_buf_free(&body);
	ward_buf_free(&rs.body);
	ward_buf_free(&auth);
	return r;
}
