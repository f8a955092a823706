/* HKDF (RFC 5869) through OpenSSL's EVP_KDF. */
#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "ward/crypto.h"
#include "ward/util.h"

int
ward_hkdf(const char *md, const uint8_t *salt, size_t salt_len,
    const uint8_t *ikm, size_t ikm_len, const uint8_t *info, size_t info_len,
    uint8_t *out, size_t out_len)
{
	EVP_KDF *kdf = NULL;
	EVP_KDF_CTX *ctx = NULL;
	OSSL_PARAM params[5], *p = params;
	int r = 0;

	if ((kdf = EVP_KDF_fetch(NULL, "HKDF", NULL)) == NULL ||
	    (ctx = EVP_KDF_CTX_new(kdf)) == NULL) {
		r = ward_crypto_err(WARD_ECRYPTO, "HKDF set-up");
		goto out;
	}
	*p++ = OSSL_PARAM_construct_utf8_string(
	    OSSL_KDF_PARAM_DIGEST, (char *)md, 0);
	*p++ = OSSL_PARAM_construct_octet_string(
	    OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_len);
	if (info_len > 0)
		*p++ = OSSL_PARAM_construct_octet_string(
		    OSSL_KDF_PARAM_INFO, (void *)info, info_len);
	if (salt != NULL && salt_len > 0)
		*p++ = OSSL_PARAM_construct_octet_string(
		    OSSL_KDF_PARAM_SALT, (void *)salt, salt_len);
	*p = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(ctx, out, out_len, params) != 1)
		r = ward_crypto_err(WARD_ECRYPTO, "HKDF");
out:
	EVP_KDF_CTX_free(ctx);
	EVP_KDF_free(kdf);
	return r;
}
