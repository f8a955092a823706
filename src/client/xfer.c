/*
 * Streams (docs/protocol.md "PUT and GET"): an upload is PUT, DATA chunks
 * of WARD_AGENT_CHUNK and END, answered by one OK or ERR; a download is
 * GET answered by DATA chunks and then OK (with the size) or ERR. Memory
 * stays at one chunk whatever the size; payloads are sent without a copy.
 * And ATTEST, which is one request and one reply.
 */
#include <stdlib.h>
#include <string.h>

#include "client/internal.h"
#include "ward/agent.h"
#include "ward/util.h"

int
client_read_chunk(int fd, uint8_t *buf, size_t cap, size_t *got)
{
	struct ward_fd_stream in = {.fd = fd, .name = "the input"};
	size_t k;
	int r;

	*got = 0;
	while (*got < cap) {
		if ((r = ward_fd_read(&in, buf + *got, cap - *got, &k)) != 0)
			return r;
		if (k == 0)
			break;
		*got += k;
	}
	return 0;
}

/* A reply for the stream id: ERR -> its error, anything else than want
 * or another id -> a protocol error. */
static int
stream_reply(struct ward_client *c, const struct ward_msg *m, uint64_t id,
    enum ward_msg_type want)
{
	if (m->id != id)
		return client_protocol(c, "a %s for request %llu during %llu",
		    ward_msg_type_name(m->type), (unsigned long long)m->id,
		    (unsigned long long)id);
	if (m->type == WARD_MSG_ERR)
		return ward_client_err(m);
	if (m->type != want)
		return client_protocol(c, "an unexpected %s during a transfer",
		    ward_msg_type_name(m->type));
	return 0;
}

int
ward_client_put(struct ward_client *c, const char *path, uint32_t mode, int fd,
    const uint64_t *size, struct ward_progress *progress, uint64_t *sent)
{
	struct ward_msg req = {.type = WARD_MSG_PUT}, rep = {0}, d = {0};
	uint8_t *buf = NULL;
	uint64_t total = 0;
	size_t n;
	int r;

	*sent = 0;
	req.id = ward_client_id(c);
	req.path = (char *)path;
	req.mode = mode & 07777;
	if (size != NULL) {
		req.has_size = true;
		req.size = *size;
	}
	if ((buf = malloc(WARD_AGENT_CHUNK)) == NULL) {
		r = ward_enomem();
		goto out;
	}
	if ((r = ward_client_send(c, &req)) != 0)
		goto out;
	for (;;) {
		/* an ERR may come at any time: stop sending at once */
		r = ward_client_recv(c, &rep, 0);
		if (r < 0)
			goto out;
		if (r == 0) {
			r = stream_reply(c, &rep, req.id, WARD_MSG_ERR);
			if (r == 0)
				r = client_protocol(c, "an early reply");
			goto out;
		}
		if ((r = client_read_chunk(fd, buf, WARD_AGENT_CHUNK, &n)) != 0)
			goto out;
		if (n == 0)
			break;
		d.type = WARD_MSG_DATA;
		d.id = req.id;
		if ((r = ward_client_send_payload(c, &d, buf, n)) != 0)
			goto out;
		total += n;
		if (progress != NULL)
			ward_progress_add(progress, n);
	}
	d.type = WARD_MSG_END;
	d.id = req.id;
	if ((r = ward_client_send(c, &d)) != 0 ||
	    (r = ward_client_recv(c, &rep, -1)) != 0 ||
	    (r = stream_reply(c, &rep, req.id, WARD_MSG_OK)) != 0)
		goto out;
	if (rep.has_size && rep.size != total) {
		r = client_protocol(c, "the agent stored %llu bytes of %llu",
		    (unsigned long long)rep.size, (unsigned long long)total);
		goto out;
	}
	*sent = total;
out:
	ward_msg_free(&rep);
	free(buf);
	return r;
}

int
ward_client_get(struct ward_client *c, const char *path, int fd,
    struct ward_progress *progress, uint64_t *got)
{
	struct ward_msg req = {.type = WARD_MSG_GET}, m = {0};
	struct ward_fd_stream dst = {.fd = fd, .name = "the output"};
	uint64_t total = 0;
	int r;

	*got = 0;
	req.id = ward_client_id(c);
	req.path = (char *)path;
	if ((r = ward_client_send(c, &req)) != 0)
		return r;
	for (;;) {
		if ((r = ward_client_recv(c, &m, -1)) != 0)
			goto out;
		if (m.id == req.id && m.type == WARD_MSG_OK)
			break;
		if ((r = stream_reply(c, &m, req.id, WARD_MSG_DATA)) != 0)
			goto out;
		if ((r = ward_fd_write(&dst, m.data, m.data_len)) != 0)
			goto out;
		total += m.data_len;
		if (progress != NULL)
			ward_progress_add(progress, m.data_len);
		ward_msg_free(&m);
	}
	if (m.has_size && m.size != total) {
		r = client_protocol(c,
		    "the agent announced %llu bytes and sent %llu",
		    (unsigned long long)m.size, (unsigned long long)total);
		goto out;
	}
	*got = total;
out:
	ward_msg_free(&m);
	return r;
}

int
ward_client_attest(struct ward_client *c, const uint8_t *nonce,
    size_t nonce_len, const uint8_t *user_data, size_t user_data_len,
    struct ward_buf *doc)
{
	struct ward_msg req = {.type = WARD_MSG_ATTEST}, rep;
	int r;

	req.nonce = nonce;
	req.nonce_len = nonce_len;
	req.user_data = user_data;
	req.user_data_len = user_data_len;
	if ((r = ward_client_call(c, &req, &rep)) != 0)
		return r;
	if (rep.document == NULL || rep.document_len == 0)
		r = client_protocol(c, "an ATTEST reply without a document");
	else {
		doc->len = 0;
		r = ward_buf_append(doc, rep.document, rep.document_len);
	}
	ward_msg_free(&rep);
	return r;
}
