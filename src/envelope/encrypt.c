/*
 * Streaming encryption into a v2 message (spec §5): header, regular frames
 * of frame_len bytes, one final frame of 0..frame_len bytes, and an ECDSA
 * footer for signed suites. A full frame is held back until more input
 * arrives, so that the final frame is known without knowing the input
 * length in advance. Ciphertext is batched into writes of about 1 MiB.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define ENC_OUT_CAP (1u << 20)
/* Regular frame: seq(4) IV(12) ... tag(16); final adds mark(4), len(4). */
#define FRAME_OVERHEAD (4 + WARD_GCM_IV_LEN + WARD_GCM_TAG_LEN)
#define FINAL_OVERHEAD (FRAME_OVERHEAD + 8)

struct ward_enc {
	const struct ward_suite *suite;
	uint32_t frame_len;
	uint8_t message_id[32];
	struct ward_gcm gcm;
	struct ward_sig sig;
	bool signing;
	ward_write_fn sink;
	void *sink_ctx;
	struct ward_buf out; /* ciphertext not yet handed to the sink */
	uint8_t *frame; /* plaintext of the pending frame (secret) */
	size_t frame_fill;
	uint32_t seq; /* sequence number of the next frame */
	bool done;
	bool failed;
};

static int
flush(struct ward_enc *e)
{
	int r;

	if (e->out.len == 0)
		return 0;
	if (e->signing &&
	    (r = ward_sig_update(&e->sig, e->out.p, e->out.len)) != 0)
		return r;
	if ((r = e->sink(e->sink_ctx, e->out.p, e->out.len)) != 0)
		return r;
	e->out.len = 0;
	return 0;
}

static int
emit_frame(struct ward_enc *e, const uint8_t *pt, size_t n, bool final)
{
	uint8_t aad[WARD_BODY_AAD_MAX], iv[WARD_GCM_IV_LEN], *o;
	size_t need = n + (final ? FINAL_OVERHEAD : FRAME_OVERHEAD), aad_len;
	int r;

	if (e->seq > WARD_FRAME_SEQ_MAX)
		return ward_errf(WARD_ELIMIT,
		    "message needs more than %u frames: use a larger --frame-size",
		    WARD_FRAME_SEQ_MAX);
	if (e->out.cap - e->out.len < need && (r = flush(e)) != 0)
		return r;
	if ((r = ward_buf_reserve(&e->out, need)) != 0)
		return r;
	o = e->out.p + e->out.len;
	if (final) {
		ward_store32(o, WARD_FINAL_FRAME_MARK);
		o += 4;
	}
	ward_store32(o, e->seq);
	ward_frame_iv(iv, e->seq);
	memcpy(o + 4, iv, sizeof(iv));
	o += 4 + sizeof(iv);
	if (final) {
		ward_store32(o, (uint32_t)n);
		o += 4;
	}
	aad_len = ward_body_aad(
	    aad, e->message_id, 32, WARD_CONTENT_FRAMED, final, e->seq, n);
	if ((r = ward_gcm_seal(&e->gcm, iv, aad, aad_len, pt, n, o, o + n)) !=
	    0)
		return r;
	e->out.len += need;
	e->seq++;
	return 0;
}

static int
build_header(struct ward_enc *e, const struct ward_enc_params *p,
    struct ward_keyring *kr)
{
	struct ward_header h = {0};
	struct ward_materials m = {0};
	uint8_t content_key[WARD_DATA_KEY_MAX], zero_iv[WARD_GCM_IV_LEN] = {0};
	uint8_t tag[WARD_GCM_TAG_LEN];
	int r;

	if ((r = ward_ec_copy(&h.ec, p->ec)) != 0)
		return r;
	for (size_t i = 0; i < h.ec.n; i++)
		if (strncmp(h.ec.pairs[i].key, WARD_EC_RESERVED_PREFIX,
		        strlen(WARD_EC_RESERVED_PREFIX)) == 0) {
			r = ward_errf(WARD_EUSAGE,
			    "encryption context key '%s' uses the reserved prefix aws-crypto-",
			    h.ec.pairs[i].key);
			goto out;
		}
	if (e->signing) {
		uint8_t point[WARD_EC_POINT_MAX];
		char b64[ward_b64_len(WARD_EC_POINT_MAX) + 1];
		size_t point_len;

		if ((r = ward_sig_new_signer(&e->sig, e->suite->curve)) != 0 ||
		    (r = ward_sig_public_point(&e->sig, point, &point_len)) !=
		        0)
			goto out;
		ward_b64_encode(point, point_len, b64);
		if ((r = ward_ec_add(&h.ec, WARD_EC_PUBLIC_KEY,
		         strlen(WARD_EC_PUBLIC_KEY), b64, strlen(b64))) != 0)
			goto out;
	}

	m.suite = e->suite;
	m.ec = &h.ec;
	if ((r = kr->ops->on_encrypt(kr, &m)) != 0)
		goto out;
	if (!m.has_data_key || m.data_key_len != e->suite->key_len ||
	    m.edks.n == 0) {
		r = ward_errf(WARD_EINTERNAL, "keyring %s produced no data key",
		    kr->ops->type);
		goto out;
	}
	if (m.edks.n > UINT16_MAX) {
		r = ward_errf(WARD_ELIMIT, "too many encrypted data keys");
		goto out;
	}

	if ((r = ward_random(e->message_id, sizeof(e->message_id))) != 0 ||
	    (r = ward_derive_keys(e->suite, m.data_key, e->message_id, 32,
	         content_key, h.suite_data)) != 0 ||
	    (r = ward_gcm_init_dir(
	         &e->gcm, content_key, e->suite->key_len, WARD_GCM_SEAL)) != 0)
		goto out;

	h.version = 2;
	h.suite_id = e->suite->id;
	memcpy(h.message_id, e->message_id, 32);
	h.edks = m.edks;
	m.edks = (struct ward_edk_list){0};
	h.content_type = WARD_CONTENT_FRAMED;
	h.frame_len = e->frame_len;
	if ((r = ward_header_write_body(&h, &e->out)) != 0)
		goto out;
	if (e->out.len > WARD_HEADER_MAX) {
		r = ward_errf(WARD_ELIMIT,
		    "header of %zu bytes exceeds the limit", e->out.len);
		goto out;
	}
	/* Header tag: GCM over no plaintext, AAD = header body (§5.7). */
	if ((r = ward_gcm_seal(&e->gcm, zero_iv, e->out.p, e->out.len, NULL, 0,
	         NULL, tag)) != 0)
		goto out;
	r = ward_buf_append(&e->out, tag, sizeof(tag));
out:
	ward_cleanse(content_key, sizeof(content_key));
	ward_cleanse(m.data_key, sizeof(m.data_key));
	ward_edk_list_free(&m.edks);
	ward_header_free(&h);
	return r;
}

int
ward_enc_new(struct ward_enc **out, const struct ward_enc_params *p,
    struct ward_keyring *kr, ward_write_fn sink, void *sink_ctx)
{
	struct ward_enc *e;
	uint16_t suite_id = p->suite_id != 0 ? p->suite_id : WARD_SUITE_DEFAULT;
	uint32_t frame_len =
	    p->frame_len != 0 ? p->frame_len : WARD_FRAME_LEN_DEFAULT;
	int r;

	*out = NULL;
	if (suite_id != WARD_SUITE_DEFAULT && suite_id != WARD_SUITE_SIGNED)
		return ward_errf(WARD_EUNSUPPORTED,
		    "ward encrypts only with the committing suites 0478 and 0578, not 0x%04x",
		    suite_id);
	if (frame_len > WARD_FRAME_LEN_MAX)
		return ward_errf(WARD_ELIMIT,
		    "frame size %u exceeds the limit of %u bytes", frame_len,
		    WARD_FRAME_LEN_MAX);
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return ward_enomem();
	e->suite = ward_suite_lookup(suite_id);
	e->signing = e->suite->curve != 0;
	e->frame_len = frame_len;
	e->sink = sink;
	e->sink_ctx = sink_ctx;
	e->seq = 1;
	if ((e->frame = malloc(frame_len)) == NULL) {
		free(e);
		return ward_enomem();
	}
	/* The output buffer is sized once for the largest frame and
	 * page-aligned: write(2) from a buffer 16 bytes into a page (where
	 * malloc puts large blocks) is markedly slower on some CPUs
	 * (docs/performance.md). emit_frame never needs to grow it. */
	e->out.cap = frame_len + FINAL_OVERHEAD;
	if (e->out.cap < ENC_OUT_CAP)
		e->out.cap = ENC_OUT_CAP;
	e->out.cap = (e->out.cap + 4095) / 4096 * 4096;
	if ((e->out.p = aligned_alloc(4096, e->out.cap)) == NULL) {
		ward_enc_free(e);
		return ward_enomem();
	}
	if ((r = build_header(e, p, kr)) != 0) {
		ward_enc_free(e);
		return r;
	}
	*out = e;
	return 0;
}

int
ward_enc_write(struct ward_enc *e, const uint8_t *p, size_t n)
{
	int r;

	if (e->done || e->failed)
		return ward_errf(
		    WARD_EINTERNAL, "write after the message ended");
	while (n > 0) {
		size_t take;

		if (e->frame_fill == e->frame_len) {
			/* More input follows, so this frame is not final. */
			if ((r = emit_frame(
			         e, e->frame, e->frame_len, false)) != 0)
				goto fail;
			e->frame_fill = 0;
		}
		if (e->frame_fill == 0 && n > e->frame_len) {
			/* Encrypt straight from the caller's memory. */
			if ((r = emit_frame(e, p, e->frame_len, false)) != 0)
				goto fail;
			p += e->frame_len;
			n -= e->frame_len;
			continue;
		}
		take = e->frame_len - e->frame_fill;
		if (take > n)
			take = n;
		memcpy(e->frame + e->frame_fill, p, take);
		e->frame_fill += take;
		p += take;
		n -= take;
	}
	return 0;
fail:
	e->failed = true;
	return r;
}

int
ward_enc_finish(struct ward_enc *e)
{
	uint8_t sig[WARD_ECDSA_SIG_MAX];
	size_t sig_len;
	int r;

	if (e->done || e->failed)
		return ward_errf(WARD_EINTERNAL, "message already ended");
	if ((r = emit_frame(e, e->frame, e->frame_fill, true)) != 0)
		goto fail;
	ward_cleanse(e->frame, e->frame_fill);
	e->frame_fill = 0;
	if (e->signing) {
		if ((r = flush(e)) != 0 ||
		    (r = ward_sig_sign(&e->sig, sig, &sig_len)) != 0 ||
		    (r = ward_buf_put_u16(&e->out, (uint16_t)sig_len)) != 0 ||
		    (r = ward_buf_append(&e->out, sig, sig_len)) != 0)
			goto fail;
		/* The footer is not itself signed: write it without hashing. */
		e->signing = false;
	}
	if ((r = flush(e)) != 0)
		goto fail;
	e->done = true;
	return 0;
fail:
	e->failed = true;
	return r;
}

void
ward_enc_free(struct ward_enc *e)
{
	if (e == NULL)
		return;
	ward_gcm_free(&e->gcm);
	ward_sig_free(&e->sig);
	if (e->frame != NULL)
		ward_cleanse(e->frame, e->frame_len);
	free(e->frame);
	ward_buf_free(&e->out);
	free(e);
}
