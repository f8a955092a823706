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

#endif
