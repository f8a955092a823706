/*
 * A connection to the agent (docs/protocol.md "Connections"): connect,
 * HELLO both ways, then frames carrying one message each. Replies are
 * waited for with poll, so a slow or vanished agent is a timeout and a
 * signal the CLI records is noticed, not a read blocked forever.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "client/internal.h"
#include "ward/agent.h"
#include "ward/transport.h"
#include "ward/util.h"

#ifndef WARD_VERSION
#define WARD_VERSION "0"
#endif

#define HELLO_TIMEOUT_S 30 /* the agent answers HELLO at once */
#define POLL_SLICE_MS 250 /* how often a wait looks for a signal */

int
client_protocol(struct ward_client *c, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	c->broken = true;
	return ward_errf(WARD_EFORMAT, "%s: %s", c->name, text);
}

int
client_write(
    struct ward_client *c, const struct ward_buf *b, const void *tail, size_t n)
{
	int r;

	if (c->broken)
		return ward_errf(
		    WARD_EIO, "%s: the connection is broken", c->name);
	if (b->len + n > c->peer_max)
		return ward_errf(WARD_ELIMIT,
		    "%s: a message of %zu bytes is over the agent's limit of %llu",
		    c->name, b->len + n, (unsigned long long)c->peer_max);
	if ((r = ward_frame_write2(c->fd, b->p, b->len, tail, n)) != 0) {
		c->broken = true;
		return ward_err_prefix(r, "%s", c->name);
	}
	return 0;
}

int
ward_client_send(struct ward_client *c, const struct ward_msg *m)
{
	int r;

	c->tx.len = 0;
	if ((r = ward_msg_encode(m, &c->tx)) != 0)
		return r;
	return client_write(c, &c->tx, NULL, 0);
}

/* The payload goes out as the tail of the same frame, not copied
 * (ward_msg_encode_head). */
int
ward_client_send_payload(
    struct ward_client *c, const struct ward_msg *m, const void *p, size_t n)
{
	int r;

	c->tx.len = 0;
	if ((r = ward_msg_encode_head(m, n, &c->tx)) != 0)
		return r;
	return client_write(c, &c->tx, p, n);
}

/* Wait until fd is readable: 0; 1 after wait_ms (>= 0) with nothing;
 * errors for the connection's timeout (wait_ms < 0) and signals. */
static int
wait_readable(struct ward_client *c, int wait_ms)
{
	double deadline = -1, left;
	struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
	int slice, n;

	if (wait_ms >= 0)
		deadline = ward_now() + wait_ms / 1000.0;
	else if (c->timeout != 0)
		deadline = ward_now() + c->timeout;
	for (;;) {
		if (ward_signal_caught() != 0 && !c->no_intr)
			return ward_errf(WARD_EINTR, "interrupted by signal %d",
			    ward_signal_caught());
		slice = POLL_SLICE_MS;
		if (deadline >= 0) {
			left = deadline - ward_now();
			if (left < 0)
				left = 0;
			if (left * 1000 < slice)
				slice = (int)(left * 1000);
		}
		n = poll(&pfd, 1, slice);
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR) {
			c->broken = true;
			return ward_errf(
			    WARD_EIO, "%s: poll: %s", c->name, strerror(errno));
		}
		if (deadline >= 0 && ward_now() >= deadline) {
			if (wait_ms >= 0)
				return 1;
			c->broken = true;
			return ward_errf(WARD_EIO,
			    "%s: the agent did not answer within %u s", c->name,
			    c->timeout);
		}
	}
}

int
ward_client_recv(struct ward_client *c, struct ward_msg *m, int wait_ms)
{
	int r;

	memset(m, 0, sizeof(*m));
	if (c->broken)
		return ward_errf(
		    WARD_EIO, "%s: the connection is broken", c->name);
	if ((r = wait_readable(c, wait_ms)) != 0)
		return r;
	r = ward_frame_read(c->fd, WARD_FRAME_MAX, &c->rx);
	if (r == 1) {
		c->broken = true;
		return ward_errf(
		    WARD_EIO, "%s: the agent closed the connection", c->name);
	}
	if (r != 0) {
		c->broken = true;
		return ward_err_prefix(r, "%s", c->name);
	}
	if ((r = ward_msg_decode(c->rx.p, c->rx.len, m)) != 0) {
		c->broken = true;
		return ward_err_prefix(r, "%s", c->name);
	}
	return 0;
}

int
ward_client_err(const struct ward_msg *m)
{
	const char *code = m->code != NULL ? m->code : "?";
	const char *msg = m->message != NULL ? m->message : "";
	char safe[900];
	size_t i;

	/* the agent's words, with control characters made harmless, cut
	 * only where ward's own message would be: KMS's reason (which
	 * policy condition failed) comes last and must survive */
	for (i = 0; msg[i] != '\0' && i + 4 < sizeof(safe); i++)
		safe[i] = (unsigned char)msg[i] < 0x20 || msg[i] == 0x7f
		    ? '?'
		    : msg[i];
	if (msg[i] != '\0')
		memcpy(safe + i, "...", 3), i += 3;
	safe[i] = '\0';
	return ward_errf(
	    -ward_code_err(code), "enclave: %s: %s", ward_quotes(code), safe);
}

uint64_t
ward_client_id(struct ward_client *c)
{
	return ++c->next_id;
}

int
ward_client_call(
    struct ward_client *c, struct ward_msg *req, struct ward_msg *reply)
{
	int r;

	req->id = ward_client_id(c);
	memset(reply, 0, sizeof(*reply));
	if ((r = ward_client_send(c, req)) != 0 ||
	    (r = ward_client_recv(c, reply, -1)) != 0)
		return r;
	if (reply->id != req->id)
		r = client_protocol(c,
		    "a %s for request %llu while %llu was awaited",
		    ward_msg_type_name(reply->type),
		    (unsigned long long)reply->id, (unsigned long long)req->id);
	else if (reply->type == WARD_MSG_ERR)
		r = ward_client_err(reply);
	else if (reply->type != WARD_MSG_OK)
		r = client_protocol(c, "a %s in reply to a %s",
		    ward_msg_type_name(reply->type),
		    ward_msg_type_name(req->type));
	if (r != 0)
		ward_msg_free(reply);
	return r;
}

static int
set_timeouts(int fd, unsigned secs)
{
	struct timeval tv = {.tv_sec = (time_t)secs};

	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0)
		return ward_errf(
		    WARD_EIO, "setting socket timeouts: %s", strerror(errno));
	return 0;
}

static int
hello(struct ward_client *c)
{
	struct ward_msg m = {.type = WARD_MSG_HELLO,
	    .id = 0,
	    .version = WARD_AGENT_VERSION,
	    .software = (char *)"ward " WARD_VERSION,
	    .max_frame = WARD_FRAME_MAX};
	struct ward_msg rep;
	unsigned saved = c->timeout;
	int r;

	if ((r = ward_client_send(c, &m)) != 0)
		return r;
	if (c->timeout == 0 || c->timeout > HELLO_TIMEOUT_S)
		c->timeout = HELLO_TIMEOUT_S;
	r = ward_client_recv(c, &rep, -1);
	c->timeout = saved;
	if (r != 0)
		return r;
	if (rep.type == WARD_MSG_ERR) {
		if (rep.code != NULL &&
		    strcmp(rep.code, WARD_CODE_VERSION) == 0)
			r = ward_errf(WARD_EUNSUPPORTED,
			    "%s: the agent does not speak this ward's protocol "
			    "(version %u): %s; use the same ward version on "
			    "both sides",
			    c->name, WARD_AGENT_VERSION,
			    ward_quotes(
			        rep.message != NULL ? rep.message : ""));
		else
			r = ward_client_err(&rep);
		c->broken = true;
	} else if (rep.type != WARD_MSG_HELLO) {
		r = client_protocol(
		    c, "a %s instead of hello", ward_msg_type_name(rep.type));
	} else if (rep.version != WARD_AGENT_VERSION) {
		c->broken = true;
		r = ward_errf(WARD_EUNSUPPORTED,
		    "%s: the agent speaks protocol version %llu, this ward %u",
		    c->name, (unsigned long long)rep.version,
		    WARD_AGENT_VERSION);
	} else {
		if (rep.max_frame != 0 && rep.max_frame < c->peer_max)
			c->peer_max = rep.max_frame;
		c->peer = rep.software;
		rep.software = NULL;
		if (c->peer_max < WARD_AGENT_CHUNK + 4096) {
			r = ward_errf(WARD_EUNSUPPORTED,
			    "%s: the agent takes frames of at most %llu "
			    "bytes, too few for %u-byte chunks",
			    c->name, (unsigned long long)c->peer_max,
			    WARD_AGENT_CHUNK);
			c->broken = true;
		}
	}
	ward_msg_free(&rep);
	return r;
}

int
ward_client_open(const struct ward_client_opts *o, struct ward_client **out)
{
	struct ward_client *c;
	struct ward_addr a;
	int r;

	*out = NULL;
	if (o->agent != NULL) {
		if ((r = ward_addr_parse(o->agent, &a)) != 0)
			return ward_err_prefix(r, "--agent");
	} else {
		memset(&a, 0, sizeof(a));
		a.kind = WARD_ADDR_VSOCK;
		a.cid = o->cid;
		a.vport = WARD_AGENT_PORT;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return ward_enomem();
	c->fd = -1;
	c->timeout = o->timeout;
	c->peer_max = WARD_FRAME_MAX;
	if (o->agent == NULL)
		snprintf(c->name, sizeof(c->name), "enclave %u", o->cid);
	else
		ward_addr_format(&a, c->name, sizeof(c->name));
	if ((r = ward_connect(&a, &c->fd)) != 0) {
		ward_err_prefix(r, "%s", c->name);
		goto out;
	}
	if (o->timeout != 0 && (r = set_timeouts(c->fd, o->timeout)) != 0)
		goto out;
	if ((r = hello(c)) != 0)
		goto out;
	ward_debug(
	    "connected to %s (%s)", c->name, ward_quotes(ward_client_peer(c)));
	*out = c;
	c = NULL;
out:
	ward_client_close(c);
	return r;
}

void
ward_client_close(struct ward_client *c)
{
	if (c == NULL)
		return;
	if (c->fd >= 0)
		close(c->fd);
	free(c->peer);
	ward_buf_free(&c->rx);
	ward_buf_free(&c->tx);
	free(c);
}

const char *
ward_client_name(const struct ward_client *c)
{
	return c->name;
}

const char *
ward_client_peer(const struct ward_client *c)
{
	return c->peer != NULL ? c->peer : "?";
}

bool
ward_client_broken(const struct ward_client *c)
{
	return c->broken;
}
