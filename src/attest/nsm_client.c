/*
 * NSM clients (nitro.md §2.1): the Nitro driver's raw ioctl on /dev/nsm,
 * or the sandbox monitor's unix socket carrying the same CBOR messages in
 * frames of a 4-byte big-endian length and the message.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "attest/internal.h"
#include "ward/attest.h"

struct ward_nsm {
	int fd;
	bool sock;
	char *where; /* for messages */
	/* one request in flight on a socket, or frames would interleave */
	pthread_mutex_t mu;
};

static int
open_socket(const char *path, int *fd)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(sa.sun_path))
		return ward_errf(WARD_EUSAGE,
		    "NSM socket path %s: must be 1 to %zu bytes",
		    ward_quotes(path), sizeof(sa.sun_path) - 1);
	memcpy(sa.sun_path, path, n);
	if ((*fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return ward_errf(WARD_EIO, "NSM socket: %s", strerror(errno));
	if (connect(*fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		int err = errno;

		close(*fd);
		*fd = -1;
		return ward_errf(WARD_EIO,
		    "connecting to the NSM socket %s: %s", ward_quotes(path),
		    strerror(err));
	}
	return 0;
}

static int
open_device(const char *path, int *fd)
{
	if ((*fd = open(path, O_RDWR | O_CLOEXEC)) >= 0)
		return 0;
	if (errno == ENOENT)
		return ward_errf(WARD_EIO,
		    "no NSM device at %s: not in a Nitro enclave? set "
		    "WARD_NSM=unix:PATH for a sandbox",
		    path);
	if (errno == EACCES || errno == EPERM)
		return ward_errf(WARD_EIO,
		    "opening the NSM device %s: %s (the raw NSM interface "
		    "needs root)",
		    path, strerror(errno));
	return ward_errf(
	    WARD_EIO, "opening the NSM device %s: %s", path, strerror(errno));
}

int
ward_nsm_open(const char *where, struct ward_nsm **out)
{
	struct ward_nsm *n = NULL;
	int r;

	*out = NULL;
	if (where == NULL || where[0] == '\0')
		where = getenv("WARD_NSM");
	if (where == NULL || where[0] == '\0')
		where = WARD_NSM_DEVICE;
	if ((n = calloc(1, sizeof(*n))) == NULL)
		return ward_enomem();
	n->fd = -1;
	if (pthread_mutex_init(&n->mu, NULL) != 0) {
		free(n);
		return ward_errf(
		    WARD_EINTERNAL, "NSM client: cannot create a mutex");
	}
	if ((n->where = strdup(where)) == NULL) {
		r = ward_enomem();
		goto out;
	}
	n->sock = strncmp(where, "unix:", 5) == 0;
	if (n->sock) {
		r = open_socket(where + 5, &n->fd);
	} else {
		struct stat st;

		/* a ward sandbox enclave's /dev/nsm is the monitor's socket */
		n->sock = stat(where, &st) == 0 && S_ISSOCK(st.st_mode);
		r = n->sock ? open_socket(where, &n->fd)
		            : open_device(where, &n->fd);
	}
out:
	if (r != 0) {
		ward_nsm_close(n);
		return r;
	}
	*out = n;
	return 0;
}

void
ward_nsm_close(struct ward_nsm *n)
{
	if (n == NULL)
		return;
	if (n->fd >= 0)
		close(n->fd);
	pthread_mutex_destroy(&n->mu);
	free(n->where);
	free(n);
}

static int
call_ioctl(struct ward_nsm *n, const uint8_t *req, size_t req_len,
    struct ward_buf *resp)
{
	struct ward_nsm_raw raw;

	ward_nsm_raw_prepare(
	    &raw, req, req_len, resp->p, WARD_NSM_RESPONSE_MAX);
	if (ioctl(n->fd, WARD_NSM_IOCTL_RAW, &raw) != 0) {
		if (errno == EMSGSIZE)
			return ward_errf(WARD_ELIMIT,
			    "NSM request too large: the device at %s refused "
			    "%zu bytes (EMSGSIZE)",
			    n->where, req_len);
		return ward_errf(
		    WARD_EIO, "NSM ioctl on %s: %s", n->where, strerror(errno));
	}
	/* the driver truncates to our capacity and writes the length back */
	if (raw.response.len > WARD_NSM_RESPONSE_MAX)
		return ward_errf(WARD_EIO,
		    "NSM ioctl on %s: response length %llu is beyond the "
		    "buffer",
		    n->where, (unsigned long long)raw.response.len);
	resp->len = (size_t)raw.response.len;
	return 0;
}

static int
call_socket(struct ward_nsm *n, const uint8_t *req, size_t req_len,
    struct ward_buf *resp)
{
	char who[300];
	size_t len;
	bool eof;
	int r;

	snprintf(who, sizeof(who), "NSM socket %s", n->where);
	if ((r = ward_nsm_frame_write(n->fd, req, req_len, who)) != 0)
		return r;
	r = ward_nsm_frame_read(
	    n->fd, resp->p, WARD_NSM_RESPONSE_MAX, &len, &eof, who);
	if (r == -WARD_ELIMIT) /* the monitor broke the protocol */
		return ward_errf(WARD_EFORMAT, "%s", ward_errmsg());
	if (r != 0)
		return r;
	if (eof)
		return ward_errf(
		    WARD_EIO, "%s: the monitor closed the connection", who);
	resp->len = len;
	return 0;
}

int
ward_nsm_call_raw(struct ward_nsm *n, const uint8_t *req, size_t req_len,
    struct ward_buf *resp)
{
	int r;

	resp->len = 0;
	if (req_len > WARD_NSM_REQUEST_MAX)
		return ward_errf(WARD_ELIMIT,
		    "NSM request too large: %zu bytes, more than the NSM's "
		    "%d-byte limit",
		    req_len, WARD_NSM_REQUEST_MAX);
	if ((r = ward_buf_reserve(resp, WARD_NSM_RESPONSE_MAX)) != 0)
		return r;
	if (!n->sock)
		return call_ioctl(n, req, req_len, resp);
	pthread_mutex_lock(&n->mu);
	if (n->fd < 0) {
		r = ward_errf(WARD_EIO,
		    "NSM socket %s: the connection was dropped after an "
		    "earlier error; open it again",
		    n->where);
	} else if ((r = call_socket(n, req, req_len, resp)) != 0) {
		/* The stream may hold part of a frame: never reuse it. */
		close(n->fd);
		n->fd = -1;
	}
	pthread_mutex_unlock(&n->mu);
	if (r != 0)
		resp->len = 0;
	return r;
}

int
ward_nsm_call(struct ward_nsm *n, const struct ward_nsm_request *q,
    struct ward_buf *raw, struct ward_nsm_response *r)
{
	struct ward_buf req = {0};
	int e;

	memset(r, 0, sizeof(*r));
	if ((e = ward_nsm_request_encode(q, &req)) != 0 ||
	    (e = ward_nsm_call_raw(n, req.p, req.len, raw)) != 0)
		goto out;
	if ((e = ward_nsm_response_decode(raw->p, raw->len, r)) != 0)
		e = ward_err_prefix(e, "NSM %s", ward_nsm_op_name(q->op));
out:
	ward_buf_free(&req);
	return e;
}

/*
 * The typed helpers' view of an answer: the variant asked for, or an
 * error naming what the NSM refused.
 */
static int
expect(const struct ward_nsm_request *q, const struct ward_nsm_response *r,
    enum ward_nsm_op want)
{
	const char *op = ward_nsm_op_name(q->op);
	const char *name = ward_nsm_error_name(r->error);
	unsigned idx = q->op == WARD_NSM_LOCK_PCRS ? q->range : q->index;

	if (r->op == want)
		return 0;
	if (r->op != WARD_NSM_ERROR)
		return ward_errf(WARD_EFORMAT,
		    "NSM %s: the NSM answered with a %s response", op,
		    ward_nsm_op_name(r->op));
	switch (r->error) {
	case WARD_NSM_READ_ONLY_INDEX:
		return ward_errf(WARD_EUNSAFE, "NSM %s: PCR %u is locked (%s)",
		    op, idx, name);
	case WARD_NSM_INVALID_INDEX:
		if (q->op == WARD_NSM_LOCK_PCRS)
			return ward_errf(WARD_EUSAGE,
			    "NSM %s: range %u is beyond the NSM's PCRs (%s)",
			    op, idx, name);
		return ward_errf(
		    WARD_EUSAGE, "NSM %s: no PCR %u (%s)", op, idx, name);
	case WARD_NSM_INVALID_ARGUMENT:
	case WARD_NSM_INPUT_TOO_LARGE:
		return ward_errf(
		    WARD_EUSAGE, "NSM %s: the NSM refused it (%s)", op, name);
	default:
		break;
	}
	return ward_errf(WARD_EIO, "NSM %s: the NSM failed (%s)", op, name);
}

/* Call and check the variant; r's views point into raw. */
static int
typed_call(struct ward_nsm *n, const struct ward_nsm_request *q,
    struct ward_buf *raw, struct ward_nsm_response *r)
{
	int e;

	if ((e = ward_nsm_call(n, q, raw, r)) != 0)
		return e;
	return expect(q, r, q->op);
}

static int
pcr_value(const struct ward_nsm_request *q, const struct ward_nsm_response *r,
    uint8_t value[WARD_NSM_PCR_LEN])
{
	if (r->data.len != WARD_NSM_PCR_LEN)
		return ward_errf(WARD_EFORMAT,
		    "NSM %s: PCR %u has %zu bytes, not %d",
		    ward_nsm_op_name(q->op), q->index, r->data.len,
		    WARD_NSM_PCR_LEN);
	memcpy(value, r->data.p, WARD_NSM_PCR_LEN);
	return 0;
}

int
ward_nsm_describe_pcr(struct ward_nsm *n, uint16_t index, bool *lock,
    uint8_t value[WARD_NSM_PCR_LEN])
{
	struct ward_nsm_request q = {
	    .op = WARD_NSM_DESCRIBE_PCR, .index = index};
	struct ward_nsm_response r;
	struct ward_buf raw = {0};
	int e;

	if ((e = typed_call(n, &q, &raw, &r)) != 0 ||
	    (e = pcr_value(&q, &r, value)) != 0)
		goto out;
	*lock = r.lock;
out:
	ward_buf_free(&raw);
	return e;
}

int
ward_nsm_extend_pcr(struct ward_nsm *n, uint16_t index, const uint8_t *data,
    size_t len, uint8_t value[WARD_NSM_PCR_LEN])
{
	struct ward_nsm_request q = {
	    .op = WARD_NSM_EXTEND_PCR, .index = index, .data = {data, len}};
	struct ward_nsm_response r;
	struct ward_buf raw = {0};
	int e;

	if ((e = typed_call(n, &q, &raw, &r)) == 0)
		e = pcr_value(&q, &r, value);
	ward_buf_free(&raw);
	return e;
}

/* A request whose answer carries nothing but its variant. */
static int
call_unit(struct ward_nsm *n, const struct ward_nsm_request *q)
{
	struct ward_nsm_response r;
	struct ward_buf raw = {0};
	int e;

	e = typed_call(n, q, &raw, &r);
	ward_buf_free(&raw);
	return e;
}

int
ward_nsm_lock_pcr(struct ward_nsm *n, uint16_t index)
{
	struct ward_nsm_request q = {.op = WARD_NSM_LOCK_PCR, .index = index};

	return call_unit(n, &q);
}

int
ward_nsm_lock_pcrs(struct ward_nsm *n, uint16_t range)
{
	struct ward_nsm_request q = {.op = WARD_NSM_LOCK_PCRS, .range = range};

	return call_unit(n, &q);
}

/* GetRandom answers up to 256 bytes a call (§2.3): ask until len. */
int
ward_nsm_get_random(struct ward_nsm *n, uint8_t *out, size_t len)
{
	struct ward_nsm_request q = {.op = WARD_NSM_GET_RANDOM};
	struct ward_nsm_response r;
	struct ward_buf raw = {.secret = true};
	int e = 0;

	while (len > 0) {
		size_t k;

		if ((e = typed_call(n, &q, &raw, &r)) != 0)
			goto out;
		if (r.data.len == 0) {
			e = ward_errf(WARD_EFORMAT,
			    "NSM GetRandom: the NSM answered no bytes");
			goto out;
		}
		k = r.data.len < len ? r.data.len : len;
		memcpy(out, r.data.p, k);
		out += k;
		len -= k;
	}
out:
	ward_buf_free(&raw);
	return e;
}

int
ward_nsm_attestation(struct ward_nsm *n, const struct ward_nsm_opt *user_data,
    const struct ward_nsm_opt *nonce, const struct ward_nsm_opt *public_key,
    struct ward_buf *document)
{
	struct ward_nsm_request q = {.op = WARD_NSM_ATTESTATION};
	struct ward_nsm_response r;
	struct ward_buf raw = {0};
	int e;

	if (user_data != NULL)
		q.user_data = *user_data;
	if (nonce != NULL)
		q.nonce = *nonce;
	if (public_key != NULL)
		q.public_key = *public_key;
	document->len = 0;
	if ((e = typed_call(n, &q, &raw, &r)) == 0)
		e = ward_buf_append(document, r.data.p, r.data.len);
	ward_buf_free(&raw);
	return e;
}
