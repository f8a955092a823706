/*
 * EXEC (docs/protocol.md "EXEC"): one request carrying the app's path,
 * its command, the KMS credentials and where to reach KMS; answered by OUT
 * frames as the app writes, then EXIT (or ERR when it never ran). The
 * encoded request holds the credentials, so it lives in a secret buffer
 * that is zeroed as soon as it is sent.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "client/internal.h"
#include "ward/agent.h"
#include "ward/kms.h"
#include "ward/util.h"

#define EXEC_POLL_MS 500
#define CANCEL_WAIT_S 5.0 /* how long a cancelled app gets to end */

/* Write OUT bytes at once, unbuffered. A reader that went away (EPIPE)
 * is an error: the app is then cancelled. */
static int
out_write(int fd, const uint8_t *p, size_t n)
{
	ssize_t k;

	while (n > 0) {
		k = write(fd, p, n);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return ward_errf(WARD_EIO,
			    "writing the app's output: %s", strerror(errno));
		}
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static int
send_exec(struct ward_client *c, const struct ward_client_exec *e, uint64_t id)
{
	struct ward_msg req = {.type = WARD_MSG_EXEC, .id = id};
	struct ward_buf b = {.secret = true};
	int r;

	req.app = (char *)e->app;
	req.argv = e->argv;
	req.argc = e->argc;
	req.env = e->env;
	req.envc = e->envc;
	req.key_ids = e->key_ids;
	req.key_idc = e->key_idc;
	req.context = e->context;
	req.contextc = e->contextc;
	req.region = (char *)e->region;
	req.endpoint = (char *)e->endpoint;
	if (e->cred != NULL && e->cred->access_key_id != NULL) {
		req.has_cred = true;
		req.cred.access_key_id = e->cred->access_key_id;
		req.cred.secret_access_key = e->cred->secret_access_key;
		req.cred.session_token = e->cred->session_token;
	}
	if ((r = ward_msg_encode(&req, &b)) == 0)
		r = client_write(c, &b, NULL, 0);
	ward_buf_free(&b); /* secret: zeroed */
	/* sent (or not): nothing here needs them while the app runs */
	if (e->cred != NULL)
		ward_aws_credentials_clear(e->cred);
	return r;
}

/* Handle one message for the exec; *done once it ended: EXIT in *x, or
 * an ERR returned as an error. */
static int
on_message(struct ward_client *c, const struct ward_client_exec *e, uint64_t id,
    uint64_t cancel_id, const struct ward_msg *m, struct ward_client_exit *x,
    bool *done)
{
	if (cancel_id != 0 && m->id == cancel_id)
		return 0; /* the CANCEL's own answer: the EXIT tells more */
	if (m->id != id)
		return client_protocol(c,
		    "a %s for request %llu during exec %llu",
		    ward_msg_type_name(m->type), (unsigned long long)m->id,
		    (unsigned long long)id);
	switch (m->type) {
	case WARD_MSG_OUT:
		return out_write(
		    m->fd == 2 ? e->err_fd : e->out_fd, m->data, m->data_len);
	case WARD_MSG_EXIT:
		*done = true;
		x->signaled = m->has_signal;
		x->status = m->has_signal ? (int)m->signal : (int)m->status;
		return 0;
	case WARD_MSG_ERR:
		*done = true;
		return ward_client_err(m);
	default:
		return client_protocol(c, "an unexpected %s during exec",
		    ward_msg_type_name(m->type));
	}
}

/*
 * Cancel the exec and wait a little for its end, printing what output
 * still comes. Whatever happens, the caller's error (why) stands.
 */
static int
cancel(struct ward_client *c, const struct ward_client_exec *e, uint64_t id,
    struct ward_client_exit *x, int why)
{
	struct ward_msg m = {.type = WARD_MSG_CANCEL};
	char saved[1024];
	double deadline = ward_now() + CANCEL_WAIT_S;
	uint64_t cancel_id;
	bool done = false;
	int r;

	snprintf(saved, sizeof(saved), "%s", ward_errmsg());
	if (c->broken)
		goto out;
	m.id = cancel_id = ward_client_id(c);
	m.target = id;
	if (ward_client_send(c, &m) != 0)
		goto out;
	c->no_intr = true;
	while (!done && ward_now() < deadline) {
		r = ward_client_recv(c, &m, EXEC_POLL_MS);
		if (r == 1)
			continue;
		if (r != 0)
			break;
		r = on_message(c, e, id, cancel_id, &m, x, &done);
		ward_msg_free(&m);
		if (r != 0)
			break;
	}
	c->no_intr = false;
out:
	return ward_errf(-why, "%s", saved);
}

int
ward_client_exec(struct ward_client *c, const struct ward_client_exec *e,
    struct ward_client_exit *x)
{
	struct ward_msg m = {0};
	uint64_t id = ward_client_id(c);
	bool done = false;
	int r;

	memset(x, 0, sizeof(*x));
	if ((r = send_exec(c, e, id)) != 0)
		return r;
	for (;;) {
		r = ward_client_recv(c, &m, EXEC_POLL_MS);
		if (r == 1)
			continue;
		if (r == -WARD_EINTR)
			return cancel(c, e, id, x, r);
		if (r != 0)
			return r;
		r = on_message(c, e, id, 0, &m, x, &done);
		ward_msg_free(&m);
		if (done)
			return r;
		if (r != 0)
			return c->broken ? r : cancel(c, e, id, x, r);
	}
}
