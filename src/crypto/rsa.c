/* RSA key transport (PKCS #1 v1.5 and OAEP with MGF1 on the same hash). */
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <string.h>

#include "ward/crypto.h"
#include "ward/util.h"

static const struct {
	const char *name;
	enum ward_rsa_padding pad;
} paddings[] = {
    {"pkcs1", WARD_RSA_PKCS1},
    {"oaep-sha1", WARD_RSA_OAEP_SHA1},
    {"oaep-sha256", WARD_RSA_OAEP_SHA256},
    {"oaep-sha384", WARD_RSA_OAEP_SHA384},
    {"oaep-sha512", WARD_RSA_OAEP_SHA512},
};

int
ward_rsa_padding_parse(const char *name, enum ward_rsa_padding *out)
{
	for (size_t i = 0; i < sizeof(paddings) / sizeof(paddings[0]); i++)
		if (strcmp(name, paddings[i].name) == 0) {
			*out = paddings[i].pad;
			return 0;
		}
	return ward_errf(WARD_EUSAGE,
	    "unknown RSA padding '%s' (use oaep-sha256, oaep-sha1, oaep-sha384, oaep-sha512 or pkcs1)",
	    name);
}

const char *
ward_rsa_padding_name(enum ward_rsa_padding p)
{
	for (size_t i = 0; i < sizeof(paddings) / sizeof(paddings[0]); i++)
		if (paddings[i].pad == p)
			return paddings[i].name;
	return "?";
}

int
ward_pkey_load_pem_mem(
    const uint8_t *pem, size_t len, bool private_key, EVP_PKEY **out)
{
	BIO *bio;
	EVP_PKEY *k;

	if (len > INT32_MAX || (bio = BIO_new_mem_buf(pem, (int)len)) == NULL)
		return ward_enomem();
	k = private_key ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)
	                : PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (k == NULL)
		return ward_crypto_err(WARD_EFORMAT,
		    private_key ? "reading a PEM private key"
		                : "reading a PEM public key");
	if (EVP_PKEY_get_base_id(k) != EVP_PKEY_RSA) {
		EVP_PKEY_free(k);
		return ward_errf(WARD_EFORMAT, "the PEM key is not an RSA key");
	}
	*out = k;
	return 0;
}

int
ward_pkey_load_pem(const char *path, bool private_key, EVP_PKEY **out)
{
	struct ward_buf b = {0};
	int r;

	if ((r = ward_read_file(path, 1 << 20, &b)) != 0)
		return r;
	if ((r = ward_pkey_load_pem_mem(b.p, b.len, private_key, out)) != 0)
		r = ward_err_prefix(r, "%s", path);
	ward_buf_free(&b);
	return r;
}

void
ward_pkey_free(EVP_PKEY *k)
{
	EVP_PKEY_free(k);
}

static int
set_padding(EVP_PKEY_CTX *ctx, enum ward_rsa_padding pad)
{
	const EVP_MD *md = NULL;

	switch (pad) {
	case WARD_RSA_PKCS1:
		return EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1
		    ? 0
		    : -1;
	case WARD_RSA_OAEP_SHA1:
		md = EVP_sha1();
		break;
	case WARD_RSA_OAEP_SHA256:
		md = EVP_sha256();
		break;
	case WARD_RSA_OAEP_SHA384:
		md = EVP_sha384();
		break;
	case WARD_RSA_OAEP_SHA512:
		md = EVP_sha512();
		break;
	}
	if (md == NULL ||
	    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) != 1 ||
	    EVP_PKEY_CTX_set_rsa_oaep_md(ctx, md) != 1 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) != 1)
		return -1;
	return 0;
}

int
ward_rsa_encrypt(EVP_PKEY *k, enum ward_rsa_padding pad, const uint8_t *in,
    size_t n, uint8_t *out, size_t out_cap, size_t *out_len)
{
	EVP_PKEY_CTX *ctx;
	size_t len = out_cap;
	int r = 0;

	if ((ctx = EVP_PKEY_CTX_new(k, NULL)) == NULL)
		return ward_enomem();
	if (EVP_PKEY_encrypt_init(ctx) != 1 || set_padding(ctx, pad) != 0 ||
	    EVP_PKEY_encrypt(ctx, out, &len, in, n) != 1)
		r = ward_crypto_err(WARD_ECRYPTO, "RSA encryption");
	else
		*out_len = len;
	EVP_PKEY_CTX_free(ctx);
	return r;
}

int
ward_rsa_decrypt(EVP_PKEY *k, enum ward_rsa_padding pad, const uint8_t *in,
    size_t n, uint8_t *out, size_t out_cap, size_t *out_len)
{
	EVP_PKEY_CTX *ctx;
	size_t len = out_cap;
	int r = 0;

	if ((ctx = EVP_PKEY_CTX_new(k, NULL)) == NULL)
		return ward_enomem();
	if (EVP_PKEY_decrypt_init(ctx) != 1 || set_padding(ctx, pad) != 0 ||
	    EVP_PKEY_decrypt(ctx, out, &len, in, n) != 1)
		r = ward_crypto_err(WARD_EKEY, "RSA decryption");
	else
		*out_len = len;
	EVP_PKEY_CTX_free(ctx);
	return r;
}
