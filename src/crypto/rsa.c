/* RSA key transport (PKCS #1 v1.5 and OAEP with MGF1 on the same hash). */
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
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

/*
 * A fresh RSA key pair, e = 65537 (nitro.md §4.2). Sizes below 2048 bits
 * are refused; above 8192 the ciphertexts outgrow WARD_RSA_MAX_BYTES.
 */
int
ward_rsa_generate(unsigned bits, EVP_PKEY **out)
{
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *k = NULL;
	BIGNUM *e = NULL;
	int r = 0;

	*out = NULL;
	if (bits < 2048 || bits > 8 * WARD_RSA_MAX_BYTES)
		return ward_errf(WARD_EUSAGE,
		    "RSA key size of %u bits (use 2048 to %d)", bits,
		    8 * WARD_RSA_MAX_BYTES);
	if ((e = BN_new()) == NULL) {
		r = ward_enomem();
		goto out;
	}
	if ((ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) == NULL ||
	    BN_set_word(e, RSA_F4) != 1 || EVP_PKEY_keygen_init(ctx) != 1 ||
	    EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, (int)bits) != 1 ||
	    EVP_PKEY_CTX_set1_rsa_keygen_pubexp(ctx, e) != 1 ||
	    EVP_PKEY_generate(ctx, &k) != 1) {
		r = ward_crypto_err(WARD_ECRYPTO, "RSA key generation");
		goto out;
	}
	*out = k;
out:
	BN_free(e);
	EVP_PKEY_CTX_free(ctx);
	return r;
}

int
ward_pkey_spki(EVP_PKEY *k, struct ward_buf *out)
{
	uint8_t *q;
	int len, r;

	if ((len = i2d_PUBKEY(k, NULL)) <= 0)
		return ward_crypto_err(
		    WARD_ECRYPTO, "encoding a SubjectPublicKeyInfo");
	if ((r = ward_buf_reserve(out, (size_t)len)) != 0)
		return r;
	q = out->p + out->len;
	if (i2d_PUBKEY(k, &q) != len)
		return ward_crypto_err(
		    WARD_ECRYPTO, "encoding a SubjectPublicKeyInfo");
	out->len += (size_t)len;
	return 0;
}

/* Only RSA keys are accepted, as by ward_pkey_load_pem_mem; an SPKI of
 * another algorithm is well-formed but unsupported. */
int
ward_pkey_from_spki(const uint8_t *p, size_t n, EVP_PKEY **out)
{
	const uint8_t *q = p;
	EVP_PKEY *k;
	int id;

	*out = NULL;
	if (n == 0)
		return ward_errf(WARD_EFORMAT, "empty SubjectPublicKeyInfo");
	if (n > INT32_MAX)
		return ward_errf(WARD_ELIMIT,
		    "SubjectPublicKeyInfo of %zu bytes is too large", n);
	if ((k = d2i_PUBKEY(NULL, &q, (long)n)) == NULL)
		return ward_crypto_err(
		    WARD_EFORMAT, "parsing a DER SubjectPublicKeyInfo");
	/* d2i may leave notes from the decoders it tried first. */
	ERR_clear_error();
	if (q != p + n) {
		EVP_PKEY_free(k);
		return ward_errf(WARD_EFORMAT,
		    "%zu bytes of trailing data after the DER SubjectPublicKeyInfo",
		    (size_t)(p + n - q));
	}
	if ((id = EVP_PKEY_get_base_id(k)) != EVP_PKEY_RSA) {
		EVP_PKEY_free(k);
		return ward_errf(WARD_EUNSUPPORTED,
		    "the SubjectPublicKeyInfo holds a %s key, not an RSA key",
		    OBJ_nid2sn(id));
	}
	*out = k;
	return 0;
}
