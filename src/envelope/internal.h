/* Private to the envelope module: pieces shared by encrypt and decrypt. */
#ifndef WARD_ENVELOPE_INTERNAL_H
#define WARD_ENVELOPE_INTERNAL_H

#include "ward/envelope.h"

#define WARD_CONTENT_NONFRAMED 0x01
#define WARD_CONTENT_FRAMED 0x02
#define WARD_FINAL_FRAME_MARK 0xFFFFFFFFu
/* Non-framed body limit, spec §5.8: 2^36 - 32. */
#define WARD_NONFRAMED_MAX 0xFFFFFFFE0ull

/* Serialize a v2 header body (§5.2) from h: everything the header tag
 * covers. The EC is serialized canonically from h->ec. */
int ward_header_write_body(const struct ward_header *h, struct ward_buf *out);

/* Derive the content key (and, for committing suites, the commit key)
 * from the data key (§5.6). */
int ward_derive_keys(const struct ward_suite *s, const uint8_t *data_key,
    const uint8_t *message_id, size_t message_id_len,
    uint8_t content_key[WARD_DATA_KEY_MAX], uint8_t commit_key[32]);

/* Body AAD (§5.8): message id || content string || seq || length. */
#define WARD_BODY_AAD_MAX (WARD_MESSAGE_ID_MAX + 40 + 12)
size_t ward_body_aad(uint8_t out[WARD_BODY_AAD_MAX], const uint8_t *mid,
    size_t mid_len, uint8_t content_type, bool final, uint32_t seq,
    uint64_t len);
/* IV: the sequence number, big-endian, left-padded with zeros. */
void ward_frame_iv(uint8_t iv[WARD_GCM_IV_LEN], uint32_t seq);

#endif
