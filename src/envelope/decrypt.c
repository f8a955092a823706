/*
 * Streaming decryption of Encryption SDK messages (spec §5, checklist
 * §5.11). Order of trust:
 *   1. parse the header as received; refuse what policy forbids;
 *   2. open a data key through the keyring; derive keys; check the commit
 *      key in constant time; verify the header tag over the bytes as
 *      received (plus any authenticated-only context);
 *   3. only then check the required context values and allocate the frame
 *      buffers (so a forged header cannot make us allocate);
 *   4. release each regular frame once its tag verifies, and the final
 *      frame only after the footer signature and the end of input verify.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define DEC_IN_CAP (1u << 20)
#define DEC_OUT_CAP (1u << 20)
#define PAGE_ALIGN 4096u
#define READ_ALIGN 64u

static size_t
round_up(size_t n, size_t a)
{
	return (n + a - 1) / a * a;
}

struct ward_dec {
	struct ward_dec_params p;
	struct ward_ec required;
	struct ward_keyring *kr;
	ward_read_fn src;
	void *src_ctx;
	bool eof;

	uint8_t *in; /* ciphertext read ahead; [in_start, in_end) unread */
	size_t in_cap, in_start, in_end;
	bool in_borrowed; /* in is the caller's message (ward_dec_new_mem) */

	struct ward_header h;
	bool have_header;
	struct ward_gcm gcm;
	bool have_gcm;
	bool authenticated; /* header tag and required context verified */
	struct ward_sig sig;
	bool signing;

	uint8_t *out; /* authenticated plaintext handed out (secret) */
	size_t out_cap;
	uint32_t seq; /* expected sequence number */
	uint64_t plaintext_bytes;
	bool done;
	int failed; /* the error that ended the message, or 0 */

	const uint8_t *pend; /* for ward_dec_read */
	size_t pend_n;
};

int
ward_dec_new(struct ward_dec **out, const struct ward_dec_params *p,
    struct ward_keyring *kr, ward_read_fn src, void *src_ctx)
{
	struct ward_dec *d;
	int r;

	*out = NULL;
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return ward_enomem();
	d->p = *p;
	if (d->p.max_edks == 0)
		d->p.max_edks = WARD_MAX_EDKS_DEFAULT;
	if (d->p.max_frame_len == 0 || d->p.max_frame_len > WARD_FRAME_LEN_MAX)
		d->p.max_frame_len = WARD_FRAME_LEN_MAX;
	d->kr = kr;
	d->src = src;
	d->src_ctx = src_ctx;
	d->seq = 1;
	if ((r = ward_ec_copy(&d->required, p->required_ec)) != 0) {
		free(d);
		return r;
	}
	d->p.required_ec = &d->required;
	d->in_cap = DEC_IN_CAP;
	if ((d->in = aligned_alloc(PAGE_ALIGN, d->in_cap)) == NULL) {
		ward_dec_free(d);
		return ward_enomem();
	}
	*out = d;
	return 0;
}

int
ward_dec_new_mem(struct ward_dec **out, const struct ward_dec_params *p,
    struct ward_keyring *kr, const uint8_t *msg, size_t len)
{
	struct ward_dec *d;
	int r;

	/* No source: the whole message is already "read", so ensure()
	 * never reads, moves or reallocates the caller's bytes. */
	if ((r = ward_dec_new(&d, p, kr, NULL, NULL)) != 0)
		return r;
	free(d->in);
	d->in = (uint8_t *)msg;
	d->in_borrowed = true;
	d->in_cap = d->in_end = len;
	d->eof = true;
	*out = d;
	return 0;
}

/*
 * Make at least need unread bytes available. Sets *short_input when the
 * input ends first. Reads as much as fits, to batch small frames.
 */
static int
ensure(struct ward_dec *d, size_t need, bool *short_input)
{
	int r;

	*short_input = false;
	while (d->in_end - d->in_start < need) {
		size_t got;

		if (d->eof) {
			*short_input = true;
			return 0;
		}
		if (d->in_cap - d->in_start < need) {
			/* Move the unread bytes so that the next read lands
			 * 64-byte aligned: the kernel copies into a
			 * destination 1-31 bytes into a page several times
			 * slower on some CPUs (docs/performance.md). */
			size_t left = d->in_end - d->in_start;
			size_t pad =
			    (READ_ALIGN - left % READ_ALIGN) % READ_ALIGN;

			if (d->in_cap < need + pad) {
				uint8_t *n = aligned_alloc(PAGE_ALIGN,
				    round_up(need + pad, PAGE_ALIGN));

				if (n == NULL)
					return ward_enomem();
				memcpy(n + pad, d->in + d->in_start, left);
				free(d->in);
				d->in = n;
				d->in_cap = round_up(need + pad, PAGE_ALIGN);
			} else
				memmove(d->in + pad, d->in + d->in_start, left);
			d->in_start = pad;
			d->in_end = pad + left;
		}
		if ((r = d->src(d->src_ctx, d->in + d->in_end,
		         d->in_cap - d->in_end, &got)) != 0)
			return r;
		if (got == 0)
			d->eof = true;
		d->in_end += got;
	}
	return 0;
}

/* Mark n bytes read; they are covered by the signature when signing. */
static int
consume(struct ward_dec *d, size_t n)
{
	int r;

	if (d->signing &&
	    (r = ward_sig_update(&d->sig, d->in + d->in_start, n)) != 0)
		return r;
	d->in_start += n;
	return 0;
}

static int
read_header(struct ward_dec *d)
{
	struct ward_header *h = &d->h;
	bool need_more, short_input;
	int r;

	/* Parse what has arrived; when the header runs past it, read at
	 * least twice as much before parsing again, so a header of n bytes
	 * costs O(log n) parses, not one per read. */
	for (;;) {
		size_t avail = d->in_end - d->in_start, want;

		r = ward_header_parse(
		    d->in + d->in_start, avail, d->p.max_edks, h, &need_more);
		if (r == 0)
			break;
		if (!need_more)
			return r;
		if (d->eof) {
			if (avail == 0)
				return ward_errf(WARD_EFORMAT,
				    "the input is empty: not an encrypted message");
			return ward_errf(WARD_EFORMAT,
			    "message truncated in the header (%zu bytes)",
			    avail);
		}
		if (avail >= WARD_HEADER_MAX)
			return ward_errf(WARD_ELIMIT,
			    "message header larger than %u bytes",
			    WARD_HEADER_MAX);
		want = avail < 4096 ? 4096 : 2 * avail;
		if (want > WARD_HEADER_MAX)
			want = WARD_HEADER_MAX;
		/* a short input is not yet an error: the header may end
		 * before want; the next parse decides */
		if ((r = ensure(d, want, &short_input)) != 0)
			return r;
	}
	d->have_header = true;
	if (!h->suite->commit && d->p.commitment == WARD_COMMIT_REQUIRE)
		return ward_errf(WARD_EUNSUPPORTED,
		    "message uses the legacy suite 0x%04x (%s), which has no key commitment; accept it with --allow-legacy-suites",
		    h->suite_id, h->suite->name);
	if (h->frame_len > d->p.max_frame_len)
		return ward_errf(WARD_ELIMIT,
		    "frame length %u exceeds the limit of %u bytes",
		    h->frame_len, d->p.max_frame_len);
	return 0;
}

/* Describe why no keyring opened a data key, naming both sides. */
static int
no_key_error(struct ward_dec *d, unsigned attempts)
{
	char given[512], have[512];
	size_t off = 0;

	d->kr->ops->describe(d->kr, given, sizeof(given));
	have[0] = '\0';
	for (size_t i = 0; i < d->h.edks.n && off + 1 < sizeof(have); i++) {
		const struct ward_edk *e = &d->h.edks.v[i];

		off += (size_t)snprintf(have + off, sizeof(have) - off, "%s%s",
		    i > 0 ? ", " : "",
		    ward_quote(e->provider_id, e->provider_id_len));
	}
	if (attempts > 0)
		return ward_errf(WARD_EKEY,
		    "wrong key: the message has a data key for the name given, but %s does not open it (the key differs, or the message header was modified)",
		    given);
	return ward_errf(WARD_EKEY,
	    "no key given can open this message: it has data keys for [%s], and the keys given are [%s]",
	    have, given);
}

static int
authenticate_header(struct ward_dec *d)
{
	struct ward_header *h = &d->h;
	struct ward_ec full = {0}, auth_only = {0};
	struct ward_materials m = {0};
	struct ward_buf aad = {0};
	uint8_t content_key[WARD_DATA_KEY_MAX], commit_key[32];
	const uint8_t *body = d->in + d->in_start;
	int r;

	/* Required pairs not stored in the header are authenticated-only
	 * (the ESDK's required encryption context): they join the header
	 * AAD and the keyring's context. */
	if ((r = ward_ec_copy(&full, &h->ec)) != 0)
		goto out;
	for (size_t i = 0; i < d->required.n; i++) {
		const struct ward_ec_pair *q = &d->required.pairs[i];

		if (ward_ec_get(&h->ec, q->key, q->key_len) != NULL)
			continue;
		if ((r = ward_ec_add(&auth_only, q->key, q->key_len, q->value,
		         q->value_len)) != 0 ||
		    (r = ward_ec_add(&full, q->key, q->key_len, q->value,
		         q->value_len)) != 0)
			goto out;
	}

	m.suite = h->suite;
	m.ec = &full;
	if ((r = d->kr->ops->on_decrypt(d->kr, &m, h->edks.v, h->edks.n)) != 0)
		goto out;
	if (!m.has_data_key && auth_only.n > 0) {
		/* Keyrings bind the context: tell a missing --context pair
		 * from a wrong key by trying the stored context alone. */
		struct ward_materials probe = {.suite = h->suite, .ec = &h->ec};

		r = d->kr->ops->on_decrypt(d->kr, &probe, h->edks.v, h->edks.n);
		ward_cleanse(probe.data_key, sizeof(probe.data_key));
		if (r != 0)
			goto out;
		if (probe.has_data_key) {
			r = ward_errf(WARD_ECONTEXT,
			    "encryption context mismatch: the message does not carry '%s' (given with --context), nor was it bound to it",
			    ward_quotes(auth_only.pairs[0].key));
			goto out;
		}
	}
	if (!m.has_data_key && auth_only.n > 0) {
		r = ward_errf(WARD_EKEY,
		    "no key given opens this message with the --context pairs given: the key differs, or the pairs absent from the header (first: '%s') were bound with other values",
		    ward_quotes(auth_only.pairs[0].key));
		goto out;
	}
	if (!m.has_data_key) {
		r = no_key_error(d, m.attempts);
		goto out;
	}
	if (m.data_key_len != h->suite->key_len) {
		r = ward_errf(WARD_EKEY,
		    "keyring returned a %zu-byte data key for a suite that needs %u",
		    m.data_key_len, h->suite->key_len);
		goto out;
	}
	if ((r = ward_derive_keys(h->suite, m.data_key, h->message_id,
	         h->message_id_len, content_key, commit_key)) != 0)
		goto out;
	if (h->suite->commit &&
	    ward_ct_memcmp(commit_key, h->suite_data, 32) != 0) {
		r = ward_errf(WARD_EAUTH,
		    "key commitment mismatch: the message header was modified, or its data key was replaced");
		goto out;
	}
	if ((r = ward_gcm_init_dir(
	         &d->gcm, content_key, h->suite->key_len, WARD_GCM_OPEN)) != 0)
		goto out;
	d->have_gcm = true;

	if ((r = ward_buf_append(&aad, body, h->body_len)) != 0 ||
	    (r = ward_ec_serialize(&auth_only, &aad)) != 0)
		goto out;
	if (ward_gcm_open(
	        &d->gcm, h->iv, aad.p, aad.len, NULL, 0, h->tag, NULL) != 0) {
		if (auth_only.n == 0)
			r = ward_errf(WARD_EAUTH,
			    "header authentication failed: the message header was modified");
		else if (ward_gcm_open(&d->gcm, h->iv, body, h->body_len, NULL,
		             0, h->tag, NULL) == 0)
			/* intact without them: the pairs were never bound */
			r = ward_errf(WARD_ECONTEXT,
			    "encryption context mismatch: the message does not carry '%s' (given with --context), nor was it bound to it",
			    ward_quotes(auth_only.pairs[0].key));
		else
			r = ward_errf(WARD_EAUTH,
			    "header authentication failed: the header was modified, or the --context pairs absent from the header (first: '%s') were bound with other values",
			    ward_quotes(auth_only.pairs[0].key));
		goto out;
	}

	/* Authenticated: now the stored context may be compared. */
	for (size_t i = 0; i < d->required.n; i++) {
		const struct ward_ec_pair *q = &d->required.pairs[i];
		const struct ward_ec_pair *s =
		    ward_ec_get(&h->ec, q->key, q->key_len);

		if (s != NULL &&
		    (s->value_len != q->value_len ||
		        memcmp(s->value, q->value, q->value_len) != 0)) {
			r = ward_errf(WARD_ECONTEXT,
			    "encryption context mismatch: '%s' is '%s' in the message, not '%s'",
			    ward_quotes(q->key), ward_quotes(s->value),
			    ward_quotes(q->value));
			goto out;
		}
	}

	if (h->suite->curve != 0) {
		const struct ward_ec_pair *pk = ward_ec_get(
		    &h->ec, WARD_EC_PUBLIC_KEY, strlen(WARD_EC_PUBLIC_KEY));
		uint8_t point[WARD_EC_POINT_MAX + 3];
		size_t point_len;

		if (pk == NULL) {
			r = ward_errf(WARD_EFORMAT,
			    "signed message has no %s in its context",
			    WARD_EC_PUBLIC_KEY);
			goto out;
		}
		if ((r = ward_b64_decode(pk->value, pk->value_len, point,
		         sizeof(point), &point_len)) != 0 ||
		    (r = ward_sig_new_verifier(
		         &d->sig, h->suite->curve, point, point_len)) != 0) {
			r = ward_err_prefix(r, "%s", WARD_EC_PUBLIC_KEY);
			goto out;
		}
		d->signing = true;
	}
	if ((r = consume(d, h->len)) != 0)
		goto out;

	d->out_cap = h->frame_len > DEC_OUT_CAP ? h->frame_len : DEC_OUT_CAP;
	/* page-aligned, as the read side (see ensure) */
	d->out_cap = round_up(d->out_cap, PAGE_ALIGN);
	if ((d->out = aligned_alloc(PAGE_ALIGN, d->out_cap)) == NULL)
		r = ward_enomem();
	else
		d->authenticated = true;
out:
	ward_cleanse(content_key, sizeof(content_key));
	ward_cleanse(m.data_key, sizeof(m.data_key));
	ward_buf_free(&aad);
	ward_ec_free(&full);
	ward_ec_free(&auth_only);
	return r;
}

int
ward_dec_header(struct ward_dec *d)
{
	int r;

	if (d->failed)
		return d->failed;
	if (d->authenticated)
		return 0;
	if ((r = read_header(d)) != 0 || (r = authenticate_header(d)) != 0) {
		d->failed = r;
		return r;
	}
	return 0;
}

const struct ward_suite *
ward_dec_suite(const struct ward_dec *d)
{
	return d->have_header ? d->h.suite : NULL;
}

const struct ward_ec *
ward_dec_context(const struct ward_dec *d)
{
	return d->authenticated ? &d->h.ec : NULL;
}

static int
truncated_body(struct ward_dec *d)
{
	return ward_errf(WARD_EFORMAT,
	    "message truncated in frame %u (after %llu bytes of plaintext)",
	    d->seq, (unsigned long long)d->plaintext_bytes);
}

/* Footer (signed suites) and end of input: run before the final frame
 * is released. */
static int
finish_message(struct ward_dec *d)
{
	bool short_input;
	int r;

	if (d->signing) {
		uint16_t sig_len;

		d->signing = false; /* the footer is not itself signed */
		if ((r = ensure(d, 2, &short_input)) != 0)
			return r;
		if (short_input)
			return ward_errf(WARD_EFORMAT,
			    "message truncated: the signature footer is missing");
		sig_len = ward_load16(d->in + d->in_start);
		if ((r = ensure(d, 2 + (size_t)sig_len, &short_input)) != 0)
			return r;
		if (short_input)
			return ward_errf(WARD_EFORMAT,
			    "message truncated in the signature footer");
		if (ward_sig_verify(
		        &d->sig, d->in + d->in_start + 2, sig_len) != 0)
			return ward_errf(WARD_EAUTH,
			    "message signature does not verify: the message was modified");
		d->in_start += 2 + (size_t)sig_len;
	}
	if ((r = ensure(d, 1, &short_input)) != 0)
		return r;
	if (!short_input)
		return ward_errf(WARD_EFORMAT,
		    "unexpected data after the end of the message");
	return 0;
}

/* Decrypt one body unit whose header fields start at in_start. */
static int
open_unit(struct ward_dec *d, size_t field_len, const uint8_t *iv, uint64_t len,
    bool final, uint32_t seq, uint8_t *out)
{
	uint8_t aad[WARD_BODY_AAD_MAX], expect_iv[WARD_GCM_IV_LEN];
	const uint8_t *ct = d->in + d->in_start + field_len;
	size_t aad_len;
	int r;

	ward_frame_iv(expect_iv, seq);
	if (memcmp(iv, expect_iv, sizeof(expect_iv)) != 0)
		return ward_errf(WARD_EAUTH,
		    "frame %u has an unexpected IV: the message was modified",
		    seq);
	aad_len = ward_body_aad(aad, d->h.message_id, d->h.message_id_len,
	    d->h.content_type, final, seq, len);
	if (ward_gcm_open(
	        &d->gcm, iv, aad, aad_len, ct, (size_t)len, ct + len, out) != 0)
		return ward_errf(WARD_EAUTH,
		    "frame %u failed authentication: the message was modified or corrupted",
		    seq);
	if ((r = consume(d, field_len + (size_t)len + WARD_GCM_TAG_LEN)) != 0)
		return r;
	d->plaintext_bytes += len;
	return 0;
}

static int
next_nonframed(struct ward_dec *d, size_t *out_len)
{
	bool short_input;
	uint64_t len;
	int r;

	/* IV(12) | u64 content length | ciphertext | tag(16) */
	if ((r = ensure(d, 20, &short_input)) != 0)
		return r;
	if (short_input)
		return truncated_body(d);
	len = ward_load64(d->in + d->in_start + 12);
	if (len > WARD_NONFRAMED_MAX)
		return ward_errf(WARD_EFORMAT,
		    "non-framed content length %llu exceeds the format's limit",
		    (unsigned long long)len);
	if (len > d->p.max_frame_len)
		return ward_errf(WARD_ELIMIT,
		    "non-framed content of %llu bytes exceeds the limit of %u bytes",
		    (unsigned long long)len, d->p.max_frame_len);
	if (len > d->out_cap) {
		uint8_t *o = aligned_alloc(
		    PAGE_ALIGN, round_up((size_t)len, PAGE_ALIGN));

		if (o == NULL)
			return ward_enomem();
		free(d->out);
		d->out = o;
		d->out_cap = (size_t)len;
	}
	if ((r = ensure(
	         d, 20 + (size_t)len + WARD_GCM_TAG_LEN, &short_input)) != 0)
		return r;
	if (short_input)
		return truncated_body(d);
	if ((r = open_unit(d, 20, d->in + d->in_start, len, true, 1, d->out)) !=
	    0)
		return r;
	*out_len = (size_t)len;
	if ((r = finish_message(d)) != 0)
		return r;
	d->done = true;
	return 0;
}

static int
next_framed(struct ward_dec *d, size_t *out_len)
{
	const uint32_t flen = d->h.frame_len;
	bool short_input;
	size_t n = 0;
	int r;

	for (;;) {
		const uint8_t *f;
		uint32_t seq, len;

		if ((r = ensure(d, 4, &short_input)) != 0)
			return r;
		if (short_input)
			return d->in_end == d->in_start && d->seq > 1
			    ? ward_errf(WARD_EFORMAT,
			          "message truncated after frame %u: the final frame is missing",
			          d->seq - 1)
			    : truncated_body(d);
		f = d->in + d->in_start;
		if (ward_load32(f) == WARD_FINAL_FRAME_MARK) {
			/* mark(4) seq(4) IV(12) len(4) ct tag(16) */
			if ((r = ensure(d, 24, &short_input)) != 0)
				return r;
			if (short_input)
				return truncated_body(d);
			f = d->in + d->in_start;
			seq = ward_load32(f + 4);
			len = ward_load32(f + 20);
			if (seq != d->seq)
				return ward_errf(WARD_EAUTH,
				    "final frame has sequence number %u, expected %u: frames were removed or reordered",
				    seq, d->seq);
			if (len > flen)
				return ward_errf(WARD_EFORMAT,
				    "final frame length %u exceeds the frame length %u",
				    len, flen);
			if (n > 0 && d->out_cap - n < len)
				break; /* release what we have first */
			if ((r = ensure(d, 24 + (size_t)len + WARD_GCM_TAG_LEN,
			         &short_input)) != 0)
				return r;
			if (short_input)
				return truncated_body(d);
			if ((r = open_unit(d, 24, d->in + d->in_start + 8, len,
			         true, seq, d->out + n)) != 0)
				return r;
			n += len;
			if ((r = finish_message(d)) != 0)
				return r;
			d->done = true;
			break;
		}
		seq = ward_load32(f);
		if (seq != d->seq)
			return ward_errf(WARD_EAUTH,
			    "frame has sequence number %u, expected %u: frames were removed or reordered",
			    seq, d->seq);
		if (seq > WARD_FRAME_SEQ_MAX - 1)
			return ward_errf(WARD_EFORMAT, "too many frames");
		if (d->out_cap - n < flen)
			break;
		if ((r = ensure(d, 16 + (size_t)flen + WARD_GCM_TAG_LEN,
		         &short_input)) != 0)
			return r;
		if (short_input)
			return truncated_body(d);
		if ((r = open_unit(d, 16, d->in + d->in_start + 4, flen, false,
		         seq, d->out + n)) != 0)
			return r;
		n += flen;
		d->seq++;
	}
	*out_len = n;
	return 0;
}

int
ward_dec_next(struct ward_dec *d, const uint8_t **p, size_t *n)
{
	size_t len = 0;
	int r;

	*p = NULL;
	*n = 0;
	if (d->failed)
		return d->failed;
	if (d->done)
		return 0;
	if ((r = ward_dec_header(d)) != 0)
		return r;
	do {
		r = d->h.content_type == 1 ? next_nonframed(d, &len)
		                           : next_framed(d, &len);
		if (r != 0) {
			ward_cleanse(d->out, d->out_cap);
			d->failed = r;
			return r;
		}
	} while (len == 0 && !d->done);
	*p = d->out;
	*n = len;
	return 0;
}

int
ward_dec_read(void *ctx, uint8_t *buf, size_t cap, size_t *got)
{
	struct ward_dec *d = ctx;
	size_t n;
	int r;

	if (d->pend_n == 0 && (r = ward_dec_next(d, &d->pend, &d->pend_n)) != 0)
		return r;
	n = d->pend_n < cap ? d->pend_n : cap;
	if (n > 0)
		memcpy(buf, d->pend, n);
	d->pend += n;
	d->pend_n -= n;
	*got = n;
	return 0;
}

void
ward_dec_free(struct ward_dec *d)
{
	if (d == NULL)
		return;
	if (d->have_gcm)
		ward_gcm_free(&d->gcm);
	ward_sig_free(&d->sig);
	if (d->out != NULL)
		ward_cleanse(d->out, d->out_cap);
	free(d->out);
	if (!d->in_borrowed)
		free(d->in);
	ward_header_free(&d->h);
	ward_ec_free(&d->required);
	free(d);
}
