/* Shared inside src/crypto: the algorithms hash.c fetches once. */
#ifndef WARD_CRYPTO_INTERNAL_H
#define WARD_CRYPTO_INTERNAL_H

#include <stddef.h>

struct evp_cipher_st;

/* AES-GCM for a 16-, 24- or 32-byte key, fetched once per process; NULL
 * if the fetch failed or the length is none of those. */
const struct evp_cipher_st *ward_gcm_cipher_fetched(size_t key_len);

#endif
