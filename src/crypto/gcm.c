/*
 * AES-GCM with 12-byte IVs and 16-byte tags. The EVP contexts keep the key
 * schedule; each call only sets the IV, which is what makes 4 KiB frames
 * cheap.
 */
#include <openssl/evp.h>
#include <limits.h>

#include "ward/crypto.h"
#include "ward/util.h"
#include "crypto_internal.h"

static const EVP_CIPHER *
gcm_cipher(size_t key_len)
{
	const EVP_CIPHER *c = ward_gcm_cipher_fetched(key_len);

	if (c != NULL)
		return c;
	switch (key_len) {
	case 16:
		return EVP_aes_128_gcm();
	case 24:
		return EVP_aes_192_gcm();
	case 32:
		return EVP_aes_256_gcm();
	default:
		return NULL;
	}
}

int
ward_gcm_init_dir(
    struct ward_gcm *g, const uint8_t *key, size_t key_len, int dirs)
{
	const EVP_CIPHER *c = gcm_cipher(key_len);

	g->enc = g->dec = NULL;
	if (c == NULL)
		return ward_errf(WARD_EINTERNAL, "AES key length %zu", key_len);
	if (dirs == 0 || (dirs & ~(WARD_GCM_SEAL | WARD_GCM_OPEN)) != 0)
		return ward_errf(WARD_EINTERNAL, "AES-GCM directions %d", dirs);
	if (((dirs & WARD_GCM_SEAL) &&
	        (g->enc = EVP_CIPHER_CTX_new()) == NULL) ||
	    ((dirs & WARD_GCM_OPEN) &&
	        (g->dec = EVP_CIPHER_CTX_new()) == NULL)) {
		ward_gcm_free(g);
		return ward_enomem();
	}
	if ((g->enc != NULL &&
	        EVP_EncryptInit_ex(g->enc, c, NULL, key, NULL) != 1) ||
	    (g->dec != NULL &&
	        EVP_DecryptInit_ex(g->dec, c, NULL, key, NULL) != 1)) {
		ward_gcm_free(g);
		return ward_crypto_err(WARD_ECRYPTO, "AES-GCM key set-up");
	}
	return 0;
}

int
ward_gcm_init(struct ward_gcm *g, const uint8_t *key, size_t key_len)
{
	return ward_gcm_init_dir(
	    g, key, key_len, WARD_GCM_SEAL | WARD_GCM_OPEN);
}

void
ward_gcm_free(struct ward_gcm *g)
{
	/* EVP_CIPHER_CTX_free cleanses the key schedule. */
	EVP_CIPHER_CTX_free(g->enc);
	EVP_CIPHER_CTX_free(g->dec);
	g->enc = g->dec = NULL;
}

/* EVP's update functions take int lengths: feed in chunks. */
#define GCM_CHUNK (1 << 30)

int
ward_gcm_seal(struct ward_gcm *g, const uint8_t iv[WARD_GCM_IV_LEN],
    const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t n,
    uint8_t *out, uint8_t tag[WARD_GCM_TAG_LEN])
{
	uint8_t dummy[1];
	int len;

	if (g->enc == NULL)
		return ward_errf(
		    WARD_EINTERNAL, "AES-GCM context not set up to seal");
	if (out == NULL)
		out = dummy; /* n == 0: GCM final writes nothing */
	if (EVP_EncryptInit_ex(g->enc, NULL, NULL, NULL, iv) != 1)
		return ward_crypto_err(WARD_ECRYPTO, "AES-GCM IV set-up");
	if (aad_len > 0 &&
	    EVP_EncryptUpdate(g->enc, NULL, &len, aad, (int)aad_len) != 1)
		return ward_crypto_err(WARD_ECRYPTO, "AES-GCM AAD");
	while (n > 0) {
		int chunk = n > GCM_CHUNK ? GCM_CHUNK : (int)n;

		if (EVP_EncryptUpdate(g->enc, out, &len, in, chunk) != 1)
			return ward_crypto_err(WARD_ECRYPTO, "AES-GCM encrypt");
		in += chunk;
		out += chunk;
		n -= (size_t)chunk;
	}
	if (EVP_EncryptFinal_ex(g->enc, out, &len) != 1 ||
	    EVP_CIPHER_CTX_ctrl(
	        g->enc, EVP_CTRL_GCM_GET_TAG, WARD_GCM_TAG_LEN, tag) != 1)
		return ward_crypto_err(WARD_ECRYPTO, "AES-GCM tag");
	return 0;
}

int
ward_gcm_open(struct ward_gcm *g, const uint8_t iv[WARD_GCM_IV_LEN],
    const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t n,
    const uint8_t tag[WARD_GCM_TAG_LEN], uint8_t *out)
{
	uint8_t dummy[1], *start;
	size_t total = n;
	int len;

	if (g->dec == NULL)
		return ward_errf(
		    WARD_EINTERNAL, "AES-GCM context not set up to open");
	if (out == NULL)
		out = dummy; /* n == 0: GCM final writes nothing */
	start = out;
	if (EVP_DecryptInit_ex(g->dec, NULL, NULL, NULL, iv) != 1)
		return ward_crypto_err(WARD_ECRYPTO, "AES-GCM IV set-up");
	if (aad_len > 0 &&
	    EVP_DecryptUpdate(g->dec, NULL, &len, aad, (int)aad_len) != 1)
		return ward_crypto_err(WARD_ECRYPTO, "AES-GCM AAD");
	while (n > 0) {
		int chunk = n > GCM_CHUNK ? GCM_CHUNK : (int)n;

		if (EVP_DecryptUpdate(g->dec, out, &len, in, chunk) != 1)
			return ward_crypto_err(WARD_ECRYPTO, "AES-GCM decrypt");
		in += chunk;
		out += chunk;
		n -= (size_t)chunk;
	}
	if (EVP_CIPHER_CTX_ctrl(g->dec, EVP_CTRL_GCM_SET_TAG, WARD_GCM_TAG_LEN,
	        (void *)tag) != 1)
		return ward_crypto_err(WARD_ECRYPTO, "AES-GCM tag set-up");
	if (EVP_DecryptFinal_ex(g->dec, out, &len) != 1) {
		ward_cleanse(start, total);
		return ward_errf(WARD_EAUTH, "authentication tag mismatch");
	}
	return 0;
}
