/*
 * ward crypto: thin wrappers over OpenSSL 3 (libcrypto). OpenSSL types stay
 * opaque here so that callers need not include OpenSSL headers.
 */
#ifndef WARD_CRYPTO_H
#define WARD_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WARD_GCM_IV_LEN 12
#define WARD_GCM_TAG_LEN 16

/* Fill p with n bytes from the OS-seeded CSPRNG. */
int ward_random(uint8_t *p, size_t n);

/*
 * AES-GCM with a fixed key and a fresh IV per call. The key schedule is
 * computed once in ward_gcm_init, so sealing many frames costs only the
 * IV set-up per frame. key_len is 16, 24 or 32. ward_gcm_open returns
 * -WARD_EAUTH (message recorded) when the tag does not verify; out may then
 * hold unauthenticated bytes, which it zeroes before returning.
 */
struct ward_gcm {
	struct evp_cipher_ctx_st *enc;
	struct evp_cipher_ctx_st *dec;
};
int ward_gcm_init(struct ward_gcm *g, const uint8_t *key, size_t key_len);
void ward_gcm_free(struct ward_gcm *g);
int ward_gcm_seal(struct ward_gcm *g, const uint8_t iv[WARD_GCM_IV_LEN],
    const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t n,
    uint8_t *out, uint8_t tag[WARD_GCM_TAG_LEN]);
int ward_gcm_open(struct ward_gcm *g, const uint8_t iv[WARD_GCM_IV_LEN],
    const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t n,
    const uint8_t tag[WARD_GCM_TAG_LEN], uint8_t *out);

/* HKDF (RFC 5869). md is "SHA256", "SHA384" or "SHA512"; salt may be
 * NULL (HashLen zero bytes). */
int ward_hkdf(const char *md, const uint8_t *salt, size_t salt_len,
    const uint8_t *ikm, size_t ikm_len, const uint8_t *info, size_t info_len,
    uint8_t *out, size_t out_len);

/*
 * ECDSA over a stream: P-256 with SHA-256 or P-384 with SHA-384, DER
 * signatures (ECDSA-Sig-Value). Public keys travel as SEC1 compressed
 * points (33 or 49 bytes).
 */
enum ward_curve {
	WARD_CURVE_P256 = 1,
	WARD_CURVE_P384 = 2,
};
#define WARD_EC_POINT_MAX 49 /* compressed P-384 */
#define WARD_ECDSA_SIG_MAX 104
struct ward_sig {
	struct evp_pkey_st *key;
	struct evp_md_ctx_st *md;
	enum ward_curve curve;
	bool signing;
};
/* A fresh signing key; the private half lives only in this object. */
int ward_sig_new_signer(struct ward_sig *s, enum ward_curve curve);
int ward_sig_new_verifier(struct ward_sig *s, enum ward_curve curve,
    const uint8_t *point, size_t point_len);
int ward_sig_public_point(
    const struct ward_sig *s, uint8_t out[WARD_EC_POINT_MAX], size_t *out_len);
int ward_sig_update(struct ward_sig *s, const uint8_t *p, size_t n);
int ward_sig_sign(
    struct ward_sig *s, uint8_t out[WARD_ECDSA_SIG_MAX], size_t *out_len);
/* -WARD_EAUTH when the signature does not verify. */
int ward_sig_verify(struct ward_sig *s, const uint8_t *sig, size_t sig_len);
void ward_sig_free(struct ward_sig *s);

/* RSA key transport, for the raw RSA keyring. */
enum ward_rsa_padding {
	WARD_RSA_PKCS1 = 1,
	WARD_RSA_OAEP_SHA1,
	WARD_RSA_OAEP_SHA256,
	WARD_RSA_OAEP_SHA384,
	WARD_RSA_OAEP_SHA512,
};
#define WARD_RSA_MAX_BYTES 1024 /* 8192-bit modulus */
/* Parse "oaep-sha256" and friends; names as the ESDK test vectors use. */
int ward_rsa_padding_parse(const char *name, enum ward_rsa_padding *out);
const char *ward_rsa_padding_name(enum ward_rsa_padding p);
/* Load a PEM key (public, or private: PKCS#8 or PKCS#1) from a file. */
int ward_pkey_load_pem(
    const char *path, bool private_key, struct evp_pkey_st **out);
int ward_pkey_load_pem_mem(
    const uint8_t *pem, size_t len, bool private_key, struct evp_pkey_st **out);
void ward_pkey_free(struct evp_pkey_st *k);
int ward_rsa_encrypt(struct evp_pkey_st *k, enum ward_rsa_padding pad,
    const uint8_t *in, size_t n, uint8_t *out, size_t out_cap, size_t *out_len);
int ward_rsa_decrypt(struct evp_pkey_st *k, enum ward_rsa_padding pad,
    const uint8_t *in, size_t n, uint8_t *out, size_t out_cap, size_t *out_len);

/* Record OpenSSL's error queue as the message for code; returns -code. */
int ward_crypto_err(int code, const char *what);
#ifdef __clang_analyzer__
#define ward_crypto_err(code, what) (ward_crypto_err((code), (what)), -(code))
#endif

#endif
