/*
 * The message header (spec §5.2), reader and writer side by side, and the
 * key derivation and body AAD that depend on it (§5.6, §5.8).
 *
 * v2: Version 02 | Suite(2) | MessageID(32) | AADLen(2) | AAD | EDKCount(2) |
 *     EDKs | ContentType(1) | FrameLength(4) | SuiteData(32) || Tag(16)
 * v1: Version 01 | Type 80 | Suite(2) | MessageID(16) | AADLen(2) | AAD |
 *     EDKCount(2) | EDKs | ContentType(1) | Reserved(4)=0 | IVLen(1)=12 |
 *     FrameLength(4) || IV(12) | Tag(16)
 */
#include <string.h>

#include "internal.h"

/* A bounds-checked cursor over the bytes received so far. */
struct cursor {
	const uint8_t *p;
	size_t len;
	size_t off;
	bool short_read;
};

static bool
take(struct cursor *c, size_t n, const uint8_t **out)
{
	if (c->len - c->off < n) {
		c->short_read = true;
		return false;
	}
	*out = c->p + c->off;
	c->off += n;
	return true;
}

static bool
take_u8(struct cursor *c, uint8_t *v)
{
	const uint8_t *p;

	if (!take(c, 1, &p))
		return false;
	*v = p[0];
	return true;
}

static bool
take_u16(struct cursor *c, uint16_t *v)
{
	const uint8_t *p;

	if (!take(c, 2, &p))
		return false;
	*v = ward_load16(p);
	return true;
}

static bool
take_u32(struct cursor *c, uint32_t *v)
{
	const uint8_t *p;

	if (!take(c, 4, &p))
		return false;
	*v = ward_load32(p);
	return true;
}

static int
truncated(struct cursor *c, bool *need_more)
{
	*need_more = true;
	return ward_errf(WARD_EFORMAT,
	    "message truncated in the header (%zu bytes)", c->len);
}

int
ward_header_parse(const uint8_t *p, size_t len, size_t max_edks,
    struct ward_header *h, bool *need_more)
{
	struct cursor c = {.p = p, .len = len};
	const uint8_t *b;
	uint16_t ec_len, edk_count;
	int r;

	memset(h, 0, sizeof(*h));
	*need_more = false;
	if (max_edks == 0)
		max_edks = WARD_MAX_EDKS_DEFAULT;

	if (!take_u8(&c, &h->version))
		return truncated(&c, need_more);
	if (h->version != 1 && h->version != 2) {
		/* Base64 of a message starts AgR4, AgV4 or AYAA (§5.11). */
		if (len >= 4 &&
		    (memcmp(p, "AgR4", 4) == 0 || memcmp(p, "AgV4", 4) == 0 ||
		        memcmp(p, "AYAA", 4) == 0))
			return ward_errf(WARD_EFORMAT,
			    "the input looks base64-encoded: decode it first (base64 -d)");
		return ward_errf(WARD_EFORMAT,
		    "not an AWS Encryption SDK message (version byte 0x%02x)",
		    h->version);
	}
	if (h->version == 1) {
		uint8_t type;

		if (!take_u8(&c, &type))
			return truncated(&c, need_more);
		if (type != 0x80)
			return ward_errf(WARD_EFORMAT,
			    "v1 message type 0x%02x (expected 0x80)", type);
	}
	if (!take_u16(&c, &h->suite_id))
		return truncated(&c, need_more);
	if ((h->suite = ward_suite_lookup(h->suite_id)) == NULL)
		return ward_errf(WARD_EUNSUPPORTED,
		    "unsupported algorithm suite 0x%04x", h->suite_id);
	if (h->suite->msg_version != h->version)
		return ward_errf(WARD_EFORMAT,
		    "suite 0x%04x is not allowed in a version %u message",
		    h->suite_id, h->version);

	h->message_id_len = h->version == 1 ? 16 : 32;
	if (!take(&c, h->message_id_len, &b))
		return truncated(&c, need_more);
	memcpy(h->message_id, b, h->message_id_len);

	if (!take_u16(&c, &ec_len) || !take(&c, ec_len, &b))
		return truncated(&c, need_more);
	if ((r = ward_ec_parse(b, ec_len, &h->ec)) != 0)
		goto fail;

	if (!take_u16(&c, &edk_count))
		goto short_read;
	if (edk_count == 0) {
		r = ward_errf(
		    WARD_EFORMAT, "message has no encrypted data keys");
		goto fail;
	}
	if (edk_count > max_edks) {
		r = ward_errf(WARD_ELIMIT,
		    "message has %u encrypted data keys, more than the limit of %zu",
		    edk_count, max_edks);
		goto fail;
	}
	for (unsigned i = 0; i < edk_count; i++) {
		uint16_t n1, n2, n3;
		const uint8_t *pid, *info, *ct;

		if (!take_u16(&c, &n1) || !take(&c, n1, &pid) ||
		    !take_u16(&c, &n2) || !take(&c, n2, &info) ||
		    !take_u16(&c, &n3) || !take(&c, n3, &ct))
			goto short_read;
		if ((r = ward_edk_list_add(
		         &h->edks, pid, n1, info, n2, ct, n3)) != 0)
			goto fail;
	}

	if (!take_u8(&c, &h->content_type))
		goto short_read;
	if (h->content_type != WARD_CONTENT_FRAMED &&
	    h->content_type != WARD_CONTENT_NONFRAMED) {
		r = ward_errf(WARD_EFORMAT, "unknown content type 0x%02x",
		    h->content_type);
		goto fail;
	}
	if (h->version == 1) {
		uint32_t reserved;
		uint8_t iv_len;

		if (!take_u32(&c, &reserved) || !take_u8(&c, &iv_len))
			goto short_read;
		if (reserved != 0 || iv_len != WARD_GCM_IV_LEN) {
			r = ward_errf(WARD_EFORMAT,
			    "v1 header reserved field or IV length is wrong");
			goto fail;
		}
	}
	if (!take_u32(&c, &h->frame_len))
		goto short_read;
	if ((h->content_type == WARD_CONTENT_FRAMED) != (h->frame_len != 0)) {
		r = ward_errf(WARD_EFORMAT,
		    "frame length %u does not fit content type 0x%02x",
		    h->frame_len, h->content_type);
		goto fail;
	}
	if (h->version == 2) {
		if (!take(&c, 32, &b))
			goto short_read;
		memcpy(h->suite_data, b, 32);
	}
	h->body_len = c.off;

	if (h->version == 1) {
		if (!take(&c, WARD_GCM_IV_LEN, &b))
			goto short_read;
		memcpy(h->iv, b, WARD_GCM_IV_LEN);
	}
	if (!take(&c, WARD_GCM_TAG_LEN, &b))
		goto short_read;
	memcpy(h->tag, b, WARD_GCM_TAG_LEN);
	h->len = c.off;
	return 0;

short_read:
	r = truncated(&c, need_more);
fail:
	ward_header_free(h);
	return r;
}

void
ward_header_free(struct ward_header *h)
{
	ward_ec_free(&h->ec);
	ward_edk_list_free(&h->edks);
}

int
ward_header_write_body(const struct ward_header *h, struct ward_buf *out)
{
	struct ward_buf ec = {0};
	int r;

	if ((r = ward_ec_serialize(&h->ec, &ec)) != 0)
		goto out;
	if (ec.len > UINT16_MAX) {
		r = ward_errf(WARD_ELIMIT,
		    "encryption context serializes to %zu bytes, more than 65535",
		    ec.len);
		goto out;
	}
	if (h->edks.n == 0 || h->edks.n > UINT16_MAX) {
		r = ward_errf(
		    WARD_EINTERNAL, "%zu encrypted data keys", h->edks.n);
		goto out;
	}
	if ((r = ward_buf_put_u8(out, 2)) != 0 ||
	    (r = ward_buf_put_u16(out, h->suite_id)) != 0 ||
	    (r = ward_buf_append(out, h->message_id, 32)) != 0 ||
	    (r = ward_buf_put_u16(out, (uint16_t)ec.len)) != 0 ||
	    (r = ward_buf_append(out, ec.p, ec.len)) != 0 ||
	    (r = ward_buf_put_u16(out, (uint16_t)h->edks.n)) != 0)
		goto out;
	for (size_t i = 0; i < h->edks.n; i++) {
		const struct ward_edk *e = &h->edks.v[i];

		if ((r = ward_buf_put_u16(out, (uint16_t)e->provider_id_len)) ||
		    (r = ward_buf_append(
		         out, e->provider_id, e->provider_id_len)) ||
		    (r = ward_buf_put_u16(
		         out, (uint16_t)e->provider_info_len)) ||
		    (r = ward_buf_append(
		         out, e->provider_info, e->provider_info_len)) ||
		    (r = ward_buf_put_u16(out, (uint16_t)e->ciphertext_len)) ||
		    (r = ward_buf_append(
		         out, e->ciphertext, e->ciphertext_len)))
			goto out;
	}
	if ((r = ward_buf_put_u8(out, WARD_CONTENT_FRAMED)) != 0 ||
	    (r = ward_buf_put_u32(out, h->frame_len)) != 0 ||
	    (r = ward_buf_append(out, h->suite_data, 32)) != 0)
		goto out;
out:
	ward_buf_free(&ec);
	return r;
}

int
ward_derive_keys(const struct ward_suite *s, const uint8_t *data_key,
    const uint8_t *mid, size_t mid_len, uint8_t content_key[WARD_DATA_KEY_MAX],
    uint8_t commit_key[32])
{
	uint8_t info[2 + WARD_MESSAGE_ID_MAX];
	static const uint8_t commit_info[] = "COMMITKEY";
	int r;

	if (s->kdf_md == NULL) {
		memcpy(content_key, data_key, s->key_len);
		return 0;
	}
	ward_store16(info, s->id);
	if (s->commit) {
		/* v2: salt = message id; info = suite || "DERIVEKEY" for the
		 * content key, bare "COMMITKEY" for the commit key. */
		memcpy(info + 2, "DERIVEKEY", 9);
		if ((r = ward_hkdf(s->kdf_md, mid, mid_len, data_key,
		         s->key_len, info, 11, content_key, s->key_len)) != 0)
			return r;
		return ward_hkdf(s->kdf_md, mid, mid_len, data_key, s->key_len,
		    commit_info, sizeof(commit_info) - 1, commit_key, 32);
	}
	/* v1: no salt; info = suite || message id. */
	memcpy(info + 2, mid, mid_len);
	return ward_hkdf(s->kdf_md, NULL, 0, data_key, s->key_len, info,
	    2 + mid_len, content_key, s->key_len);
}

size_t
ward_body_aad(uint8_t out[WARD_BODY_AAD_MAX], const uint8_t *mid,
    size_t mid_len, uint8_t content_type, bool final, uint32_t seq,
    uint64_t len)
{
	const char *label = content_type == WARD_CONTENT_NONFRAMED
	    ? "AWSKMSEncryptionClient Single Block"
	    : final ? "AWSKMSEncryptionClient Final Frame"
	            : "AWSKMSEncryptionClient Frame";
	size_t n = strlen(label), off = 0;

	memcpy(out, mid, mid_len);
	off += mid_len;
	memcpy(out + off, label, n);
	off += n;
	ward_store32(out + off, seq);
	ward_store64(out + off + 4, len);
	return off + 12;
}

void
ward_frame_iv(uint8_t iv[WARD_GCM_IV_LEN], uint32_t seq)
{
	memset(iv, 0, WARD_GCM_IV_LEN);
	ward_store32(iv + 8, seq);
}
