/*
 * Streaming ECDSA (P-256/SHA-256, P-384/SHA-384) with SEC1 compressed
 * public points, as the Encryption SDK's signed suites need (spec §5.9).
 */
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <string.h>

#include "ward/crypto.h"
#include "ward/util.h"

static const char *
curve_group(enum ward_curve c)
{
	return c == WARD_CURVE_P256 ? "P-256" : "P-384";
}

static const EVP_MD *
curve_md(enum ward_curve c)
{
	return c == WARD_CURVE_P256 ? EVP_sha256() : EVP_sha384();
}

static size_t
curve_point_len(enum ward_curve c)
{
	return c == WARD_CURVE_P256 ? 33 : 49;
}

int
ward_sig_new_signer(struct ward_sig *s, enum ward_curve curve)
{
	memset(s, 0, sizeof(*s));
	s->curve = curve;
	s->signing = true;
	if ((s->key = EVP_PKEY_Q_keygen(
	         NULL, NULL, "EC", curve_group(curve))) == NULL)
		return ward_crypto_err(WARD_ECRYPTO, "ECDSA key generation");
	if ((s->md = EVP_MD_CTX_new()) == NULL) {
		ward_sig_free(s);
		return ward_enomem();
	}
	if (EVP_DigestSignInit(s->md, NULL, curve_md(curve), NULL, s->key) !=
	    1) {
		ward_sig_free(s);
		return ward_crypto_err(WARD_ECRYPTO, "ECDSA sign set-up");
	}
	return 0;
}

int
ward_sig_new_verifier(struct ward_sig *s, enum ward_curve curve,
    const uint8_t *point, size_t point_len)
{
	EVP_PKEY_CTX *pctx = NULL;
	OSSL_PARAM params[3];
	int r = 0;

	memset(s, 0, sizeof(*s));
	s->curve = curve;
	if (point_len != curve_point_len(curve) ||
	    (point[0] != 0x02 && point[0] != 0x03))
		return ward_errf(WARD_EFORMAT,
		    "signing public key is not a compressed %s point (%zu bytes)",
		    curve_group(curve), point_len);
	params[0] = OSSL_PARAM_construct_utf8_string(
	    OSSL_PKEY_PARAM_GROUP_NAME, (char *)curve_group(curve), 0);
	params[1] = OSSL_PARAM_construct_octet_string(
	    OSSL_PKEY_PARAM_PUB_KEY, (void *)point, point_len);
	params[2] = OSSL_PARAM_construct_end();
	if ((pctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(pctx) != 1 ||
	    EVP_PKEY_fromdata(pctx, &s->key, EVP_PKEY_PUBLIC_KEY, params) !=
	        1) {
		r = ward_crypto_err(
		    WARD_EFORMAT, "decoding the signing public key");
		goto out;
	}
	if ((s->md = EVP_MD_CTX_new()) == NULL) {
		r = ward_enomem();
		goto out;
	}
	if (EVP_DigestVerifyInit(s->md, NULL, curve_md(curve), NULL, s->key) !=
	    1)
		r = ward_crypto_err(WARD_ECRYPTO, "ECDSA verify set-up");
out:
	EVP_PKEY_CTX_free(pctx);
	if (r != 0)
		ward_sig_free(s);
	return r;
}

int
ward_sig_public_point(
    const struct ward_sig *s, uint8_t out[WARD_EC_POINT_MAX], size_t *out_len)
{
	uint8_t raw[1 + 2 * 48];
	size_t n = 0, half = (curve_point_len(s->curve) - 1);

	/* OpenSSL 3.0 ignores the point-format parameter when encoding, so
	 * compress the uncompressed point 04||X||Y by hand (SEC1 §2.3.3):
	 * 02 or 03 by the parity of Y, then X. */
	if (EVP_PKEY_get_octet_string_param(s->key,
	        OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, raw, sizeof(raw),
	        &n) != 1 ||
	    n != 1 + 2 * half || raw[0] != 0x04)
		return ward_crypto_err(
		    WARD_ECRYPTO, "encoding the signing public key");
	out[0] = (uint8_t)(0x02 | (raw[n - 1] & 1));
	memcpy(out + 1, raw + 1, half);
	*out_len = 1 + half;
	return 0;
}

int
ward_sig_update(struct ward_sig *s, const uint8_t *p, size_t n)
{
	int ok = s->signing ? EVP_DigestSignUpdate(s->md, p, n)
	                    : EVP_DigestVerifyUpdate(s->md, p, n);

	if (ok != 1)
		return ward_crypto_err(WARD_ECRYPTO, "ECDSA digest");
	return 0;
}

int
ward_sig_sign(
    struct ward_sig *s, uint8_t out[WARD_ECDSA_SIG_MAX], size_t *out_len)
{
	size_t n = WARD_ECDSA_SIG_MAX;

	if (EVP_DigestSignFinal(s->md, out, &n) != 1)
		return ward_crypto_err(WARD_ECRYPTO, "ECDSA sign");
	*out_len = n;
	return 0;
}

int
ward_sig_verify(struct ward_sig *s, const uint8_t *sig, size_t sig_len)
{
	int ok = EVP_DigestVerifyFinal(s->md, sig, sig_len);

	if (ok != 1) {
		ward_crypto_err(WARD_EAUTH, "ECDSA verification");
		return ward_errf(
		    WARD_EAUTH, "message signature does not verify");
	}
	return 0;
}

void
ward_sig_free(struct ward_sig *s)
{
	EVP_MD_CTX_free(s->md);
	EVP_PKEY_free(s->key);
	s->md = NULL;
	s->key = NULL;
}
