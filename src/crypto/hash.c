/* SHA-384 (crypto.h): receipts and model cache keys. */
#include <openssl/evp.h>

#include "ward/crypto.h"

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
