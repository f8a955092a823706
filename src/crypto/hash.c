/*
 * SHA-384 (crypto.h): receipts and model cache keys. SHA-256 and
 * HMAC-SHA-256 (SigV4, the audit chain) on OpenSSL's SHA256_CTX.
 *
 * SHA256_Init/Update/Final are deprecated in OpenSSL 3 in favour of EVP,
 * but every OpenSSL 3 build that keeps the deprecated API has them, and
 * they cost half as much for short messages: EVP allocates a context
 * for each digest and a provider context for each copy, and a KMS
 * request makes five of these. A pre-keyed HMAC state is then a plain
 * struct to copy. Building without the deprecated API fails here, loudly.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <string.h>

#include "ward/crypto.h"
#include "crypto_internal.h"

_Static_assert(
    sizeof(SHA256_CTX) <= sizeof(((struct ward_hmac_sha256_key *)0)->state[0]),
    "struct ward_hmac_sha256_key holds two SHA256_CTX");

static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;
static EVP_CIPHER *gcm_ciphers[3]; /* AES-128, -192, -256-GCM */

/* Held for the life of the process; a failed fetch leaves NULL and the
 * callers fall back to the by-name path. */
static void
fetch_all(void)
{
	static const char *const gcm_names[3] = {
	    "AES-128-GCM", "AES-192-GCM", "AES-256-GCM"};

	for (size_t i = 0; i < 3; i++)
		gcm_ciphers[i] = EVP_CIPHER_fetch(NULL, gcm_names[i], NULL);
	ERR_clear_error();
}

const struct evp_cipher_st *
ward_gcm_cipher_fetched(size_t key_len)
{
	pthread_once(&fetch_once, fetch_all);
	switch (key_len) {
	case 16:
		return gcm_ciphers[0];
	case 24:
		return gcm_ciphers[1];
	case 32:
		return gcm_ciphers[2];
	default:
		return NULL;
	}
}

int
ward_sha256(const void *p, size_t n, uint8_t out[WARD_SHA256_LEN])
{
	SHA256_CTX c;
	int ok = SHA256_Init(&c) == 1 && SHA256_Update(&c, p, n) == 1 &&
	    SHA256_Final(out, &c) == 1;

	ward_cleanse(&c, sizeof(c));
	return ok ? 0 : ward_crypto_err(WARD_ECRYPTO, "SHA-256");
}

int
ward_hmac_sha256(const uint8_t *key, size_t key_len, const void *p, size_t n,
    uint8_t out[WARD_SHA256_LEN])
{
	struct ward_hmac_sha256_key k;
	int r;

	if ((r = ward_hmac_sha256_key_init(&k, key, key_len)) == 0)
		r = ward_hmac_sha256_keyed(&k, p, n, out);
	ward_hmac_sha256_key_free(&k);
	return r;
}

int
ward_hmac_sha256_key_init(
    struct ward_hmac_sha256_key *k, const uint8_t *key, size_t key_len)
{
	static const uint8_t pads[2] = {0x36, 0x5c}; /* inner, outer */
	uint8_t block[64] = {0}, b[64];
	SHA256_CTX c;
	int r = 0;

	memset(k, 0, sizeof(*k));
	/* RFC 2104 §2: a key longer than the block is hashed first */
	if (key_len > sizeof(block)) {
		if ((r = ward_sha256(key, key_len, block)) != 0)
			return r;
	} else if (key_len > 0) {
		memcpy(block, key, key_len);
	}
	for (int i = 0; i < 2 && r == 0; i++) {
		for (size_t j = 0; j < sizeof(b); j++)
			b[j] = block[j] ^ pads[i];
		if (SHA256_Init(&c) == 1 &&
		    SHA256_Update(&c, b, sizeof(b)) == 1)
			memcpy(k->state[i], &c, sizeof(c));
		else
			r = ward_crypto_err(WARD_ECRYPTO, "HMAC-SHA-256 key");
	}
	k->keyed = r == 0;
	if (r != 0)
		ward_hmac_sha256_key_free(k);
	ward_cleanse(&c, sizeof(c));
	ward_cleanse(b, sizeof(b));
	ward_cleanse(block, sizeof(block));
	return r;
}

int
ward_hmac_sha256_keyed(const struct ward_hmac_sha256_key *k, const void *p,
    size_t n, uint8_t out[WARD_SHA256_LEN])
{
	SHA256_CTX c;
	uint8_t in[WARD_SHA256_LEN];
	int ok = k->keyed;

	if (ok) {
		memcpy(&c, k->state[0], sizeof(c));
		ok = SHA256_Update(&c, p, n) == 1 && SHA256_Final(in, &c) == 1;
	}
	if (ok) {
		memcpy(&c, k->state[1], sizeof(c));
		ok = SHA256_Update(&c, in, sizeof(in)) == 1 &&
		    SHA256_Final(out, &c) == 1;
	}
	ward_cleanse(in, sizeof(in));
	ward_cleanse(&c, sizeof(c));
	if (!ok)
		return ward_crypto_err(WARD_ECRYPTO, "HMAC-SHA-256");
	return 0;
}

void
ward_hmac_sha256_key_free(struct ward_hmac_sha256_key *k)
{
	ward_cleanse(k, sizeof(*k));
}

int
ward_sha384(const void *p, size_t n, uint8_t out[WARD_SHA384_LEN])
{
	unsigned len = 0;

	if (EVP_Digest(p, n, out, &len, EVP_sha384(), NULL) != 1 ||
	    len != WARD_SHA384_LEN)
		return ward_crypto_err(WARD_ECRYPTO, "SHA-384");
	return 0;
}

int
ward_sha384_init(struct ward_sha384_ctx *c)
{
	if ((c->md = EVP_MD_CTX_new()) == NULL)
		return ward_enomem();
	if (EVP_DigestInit_ex(c->md, EVP_sha384(), NULL) != 1) {
		ward_sha384_free(c);
		return ward_crypto_err(WARD_ECRYPTO, "SHA-384");
	}
	return 0;
}

int
ward_sha384_update(struct ward_sha384_ctx *c, const void *p, size_t n)
{
	if (c->md == NULL || EVP_DigestUpdate(c->md, p, n) != 1)
		return ward_crypto_err(WARD_ECRYPTO, "SHA-384");
	return 0;
}

int
ward_sha384_final(struct ward_sha384_ctx *c, uint8_t out[WARD_SHA384_LEN])
{
	unsigned len = 0;
	int r = 0;

	if (c->md == NULL || EVP_DigestFinal_ex(c->md, out, &len) != 1 ||
	    len != WARD_SHA384_LEN)
		r = ward_crypto_err(WARD_ECRYPTO, "SHA-384");
	ward_sha384_free(c);
	return r;
}

void
ward_sha384_free(struct ward_sha384_ctx *c)
{
	EVP_MD_CTX_free(c->md);
	c->md = NULL;
}
