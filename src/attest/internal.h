/* Private to the attest module. */
#ifndef WARD_ATTEST_INTERNAL_H
#define WARD_ATTEST_INTERNAL_H

#include "ward/attest.h"

/* doc.c: encode and sign a document with a given leaf key and chain
 * (cabundle = [root, monitor]). */
int ward_attest_sign_with(struct evp_pkey_st *leaf_key,
    struct ward_bytes leaf_der, struct ward_bytes root_der,
    struct ward_bytes monitor_der, const struct ward_attest_fields *f,
    struct ward_buf *out);

/* doc.c: the COSE Sig_structure over the document's bytes as received. */
int ward_attest_sig_structure(
    const struct ward_attest_doc *d, struct ward_buf *out);

/* frame.c: the sandbox NSM socket framing (4-byte big-endian length, then
 * the message). ward_nsm_frame_read: 0 with *len set, or 0 with *eof when
 * the peer closed between frames; a frame over max is WARD_ELIMIT with
 * *len the declared length and its body left unread. who names the
 * speaker in messages. */
int ward_nsm_frame_write(int fd, const uint8_t *msg, size_t n, const char *who);
int ward_nsm_frame_read(
    int fd, uint8_t *buf, size_t max, size_t *len, bool *eof, const char *who);

#endif
