/*
 * SHA-384 (crypto.h): receipts and model cache keys. SHA-256 and
 * HMAC-SHA-256 with their algorithms fetched once (SigV4).
 */
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <limits.h>
#include <pthread.h>
#include <string.h>

#include "ward/crypto.h"
#include "crypto_internal.h"

static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha256_md;
static EVP_CIPHER *gcm_ciphers[3]; /* AES-128, -192, -256-GCM */
/* HMAC with SHA-256 set and no key: each call duplicates it and keys the
 * copy, which skips the by-name fetches of both algorithms. */
static EVP_MAC_CTX *hmac_template;

/* Held for the life of the process; a failed fetch leaves NULL and the
 * callers fall back to the by-name path. */
static void
fetch_all(void)
{
	static const char *const gcm_names[3] = {
	    "AES-128-GCM", "AES-192-GCM", "AES-256-GCM"};
	EVP_MAC *mac = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);
	OSSL_PARAM params[2] = {
	    OSSL_PARAM_construct_utf8_string(
	        OSSL_MAC_PARAM_DIGEST, (char *)"SHA2-256", 0),
	    OSSL_PARAM_construct_end()};

	sha256_md = EVP_MD_fetch(NULL, "SHA2-256", NULL);
	for (size_t i = 0; i < 3; i++)
		gcm_ciphers[i] = EVP_CIPHER_fetch(NULL, gcm_names[i], NULL);
	hmac_template = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
	EVP_MAC_free(mac);
	if (hmac_template != NULL &&
	    EVP_MAC_CTX_set_params(hmac_template, params) != 1) {
		EVP_MAC_CTX_free(hmac_template);
		hmac_template = NULL;
	}
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
	unsigned len = 0;

	pthread_once(&fetch_once, fetch_all);
	if (EVP_Digest(p, n, out, &len,
	        sha256_md != NULL ? sha256_md : EVP_sha256(), NULL) != 1 ||
	    len != WARD_SHA256_LEN)
		return ward_crypto_err(WARD_ECRYPTO, "SHA-256");
	return 0;
}

int
ward_hmac_sha256(const uint8_t *key, size_t key_len, const void *p, size_t n,
    uint8_t out[WARD_SHA256_LEN])
{
	EVP_MAC_CTX *c;
	size_t len = 0;
	unsigned ulen = 0;
	int ok;

	pthread_once(&fetch_once, fetch_all);
	if (hmac_template == NULL) {
		ok = key_len <= INT_MAX &&
		    HMAC(EVP_sha256(), key, (int)key_len, p, n, out, &ulen) !=
		        NULL &&
		    ulen == WARD_SHA256_LEN;
	} else {
		c = EVP_MAC_CTX_dup(hmac_template);
		ok = c != NULL && EVP_MAC_init(c, key, key_len, NULL) == 1 &&
		    EVP_MAC_update(c, p, n) == 1 &&
		    EVP_MAC_final(c, out, &len, WARD_SHA256_LEN) == 1 &&
		    len == WARD_SHA256_LEN;
		EVP_MAC_CTX_free(c); /* cleanses the keyed state */
	}
	if (!ok)
		return ward_crypto_err(WARD_ECRYPTO, "HMAC-SHA-256");
	return 0;
}

/* Hash 64 bytes of key ^ pad into a new context. */
static EVP_MD_CTX *
pad_state(const uint8_t block[64], uint8_t pad)
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	uint8_t b[64];
	int ok;

	for (size_t i = 0; i < sizeof(b); i++)
		b[i] = block[i] ^ pad;
	ok = c != NULL &&
	    EVP_DigestInit_ex2(
	        c, sha256_md != NULL ? sha256_md : EVP_sha256(), NULL) == 1 &&
	    EVP_DigestUpdate(c, b, sizeof(b)) == 1;
	ward_cleanse(b, sizeof(b));
	if (!ok) {
		EVP_MD_CTX_free(c);
		return NULL;
	}
	return c;
}

int
ward_hmac_sha256_key_init(
    struct ward_hmac_sha256_key *k, const uint8_t *key, size_t key_len)
{
	uint8_t block[64] = {0};
	int r = 0;

	pthread_once(&fetch_once, fetch_all);
	k->inner = k->outer = NULL;
	/* RFC 2104 §2: a key longer than the block is hashed first */
	if (key_len > sizeof(block)) {
		if ((r = ward_sha256(key, key_len, block)) != 0)
			return r;
	} else if (key_len > 0) {
		memcpy(block, key, key_len);
	}
	if ((k->inner = pad_state(block, 0x36)) == NULL ||
	    (k->outer = pad_state(block, 0x5c)) == NULL) {
		ward_hmac_sha256_key_free(k);
		r = ward_crypto_err(WARD_ECRYPTO, "HMAC-SHA-256 key");
	}
	ward_cleanse(block, sizeof(block));
	return r;
}

int
ward_hmac_sha256_keyed(const struct ward_hmac_sha256_key *k, const void *p,
    size_t n, uint8_t out[WARD_SHA256_LEN])
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	uint8_t in[WARD_SHA256_LEN];
	unsigned len = 0, olen = 0;
	int ok;

	ok = c != NULL && k->inner != NULL && k->outer != NULL &&
	    EVP_MD_CTX_copy_ex(c, k->inner) == 1 &&
	    EVP_DigestUpdate(c, p, n) == 1 &&
	    EVP_DigestFinal_ex(c, in, &len) == 1 && len == sizeof(in) &&
	    EVP_MD_CTX_copy_ex(c, k->outer) == 1 &&
	    EVP_DigestUpdate(c, in, sizeof(in)) == 1 &&
	    EVP_DigestFinal_ex(c, out, &olen) == 1 && olen == WARD_SHA256_LEN;
	ward_cleanse(in, sizeof(in));
	EVP_MD_CTX_free(c); /* cleanses the state */
	if (!ok)
		return ward_crypto_err(WARD_ECRYPTO, "HMAC-SHA-256");
	return 0;
}

void
ward_hmac_sha256_key_free(struct ward_hmac_sha256_key *k)
{
	EVP_MD_CTX_free(k->inner);
	EVP_MD_CTX_free(k->outer);
	k->inner = k->outer = NULL;
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
