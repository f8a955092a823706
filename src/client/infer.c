/*
 * INFER (docs/protocol.md "infer"): the request (credentials included,
 * in a secret buffer zeroed once sent), the input in DATA chunks and END,
 * then the answer: DATA chunks of JSON and an OK with its size and, when
 * a receipt was asked for, the attestation document. An ERR at any point
 * ends it (one sent while the input is still going stops the upload).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/internal.h"
#include "ward/agent.h"
#include "ward/crypto.h"
#include "ward/kms.h"
#include "ward/util.h"

static int
send_infer(
    struct ward_client *c, const struct ward_client_infer *q, uint64_t id)
{
	struct ward_msg req = {.type = WARD_MSG_INFER, .id = id};
	struct ward_buf b = {.secret = true};
	int r;

	struct stat st;

	/* a file's size, announced: the agent reserves it at once */
	if (fstat(q->input_fd, &st) == 0 && S_ISREG(st.st_mode)) {
		req.has_size = true;
		req.size = (uint64_t)st.st_size;
	}
	req.path = (char *)q->model;
	req.format = (char *)q->format;
	req.receipt = q->receipt;
	req.nonce = q->nonce;
	req.nonce_len = q->nonce_len;
	req.key_ids = q->key_ids;
	req.key_idc = q->key_idc;
	req.region = (char *)q->region;
	req.endpoint = (char *)q->endpoint;
	if (q->cred != NULL && q->cred->access_key_id != NULL) {
		req.has_cred = true;
		req.cred.access_key_id = q->cred->access_key_id;
		req.cred.secret_access_key = q->cred->secret_access_key;
		req.cred.session_token = q->cred->session_token;
	}
	if ((r = ward_msg_encode(&req, &b)) == 0)
		r = client_write(c, &b, NULL, 0);
	ward_buf_free(&b); /* secret: zeroed */
	if (q->cred != NULL)
		ward_aws_credentials_clear(q->cred);
	return r;
}

/* A message for the request: ERR becomes its error; another id or type
 * than the ones expected breaks the connection. */
static int
check(struct ward_client *c, const struct ward_msg *m, uint64_t id)
{
	if (m->id != id)
		return client_protocol(c,
		    "a %s for request %llu during infer %llu",
		    ward_msg_type_name(m->type), (unsigned long long)m->id,
		    (unsigned long long)id);
	if (m->type == WARD_MSG_ERR)
		return ward_client_err(m);
	if (m->type != WARD_MSG_DATA && m->type != WARD_MSG_OK)
		return client_protocol(c, "an unexpected %s during infer",
		    ward_msg_type_name(m->type));
	return 0;
}

int
ward_client_infer(struct ward_client *c, struct ward_client_infer *q)
{
	struct ward_sha384_ctx hin = {0}, hout = {0};
	struct ward_msg m = {0}, d = {0};
	uint8_t *buf = NULL;
	uint64_t id = ward_client_id(c);
	size_t n;
	int r;

	q->input_len = q->output_len = 0;
	if ((buf = malloc(WARD_AGENT_CHUNK)) == NULL) {
		r = ward_enomem();
		goto out;
	}
	/* the hashes are a receipt's; without one there is nothing to
	 * hash */
	if (q->receipt &&
	    ((r = ward_sha384_init(&hin)) != 0 ||
	        (r = ward_sha384_init(&hout)) != 0))
		goto out;
	if ((r = send_infer(c, q, id)) != 0)
		goto out;
	for (;;) {
		/* the agent may refuse at any time: stop sending then */
		if ((r = ward_client_recv(c, &m, 0)) < 0)
			goto out;
		if (r == 0) {
			if ((r = check(c, &m, id)) == 0)
				r = client_protocol(
				    c, "an answer before the input's end");
			goto out;
		}
		if ((r = client_read_chunk(
		         q->input_fd, buf, WARD_AGENT_CHUNK, &n)) != 0)
			goto out;
		if (n == 0)
			break;
		if (q->receipt && (r = ward_sha384_update(&hin, buf, n)) != 0)
			goto out;
		d.type = WARD_MSG_DATA;
		d.id = id;
		if ((r = ward_client_send_payload(c, &d, buf, n)) != 0)
			goto out;
		q->input_len += n;
	}
	ward_cleanse(buf, WARD_AGENT_CHUNK);
	d.type = WARD_MSG_END;
	d.id = id;
	if ((r = ward_client_send(c, &d)) != 0 ||
	    (q->receipt && (r = ward_sha384_final(&hin, q->input_sha384)) != 0))
		goto out;
	for (;;) {
		if ((r = ward_client_recv(c, &m, -1)) != 0 ||
		    (r = check(c, &m, id)) != 0)
			goto out;
		if (m.type == WARD_MSG_OK)
			break;
		if ((q->receipt &&
		        (r = ward_sha384_update(&hout, m.data, m.data_len)) !=
		            0) ||
		    (r = q->out(q->out_ctx, m.data, m.data_len)) != 0)
			goto out;
		q->output_len += m.data_len;
		ward_msg_free(&m);
	}
	if (!m.has_size || m.size != q->output_len) {
		r = client_protocol(c,
		    "the agent announced %llu bytes of answer and sent %llu",
		    (unsigned long long)m.size,
		    (unsigned long long)q->output_len);
		goto out;
	}
	if (q->receipt && (r = ward_sha384_final(&hout, q->output_sha384)) != 0)
		goto out;
	if (m.model_hash == NULL || m.model_hash_len != 48) {
		r = client_protocol(c, "the answer names no model hash");
		goto out;
	}
	memcpy(q->model_sha384, m.model_hash, 48);
	if (q->receipt) {
		if (m.document == NULL || m.document_len == 0) {
			r = client_protocol(
			    c, "no receipt came with the answer");
			goto out;
		}
		q->document->len = 0;
		r = ward_buf_append(q->document, m.document, m.document_len);
	}
out:
	ward_msg_free(&m);
	ward_sha384_free(&hin);
	ward_sha384_free(&hout);
	if (buf != NULL)
		ward_cleanse(buf, WARD_AGENT_CHUNK);
	free(buf);
	return r;
}
