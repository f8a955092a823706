/*
 * ward crypto: thin wrappers over OpenSSL 3 (libcrypto). OpenSSL types stay
 * opaque here so that callers need not include OpenSSL headers.
 */
#ifndef WARD_CRYPTO_H
#define WARD_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "ward/util.h"

#define WARD_GCM_IV_LEN 12
#define WARD_GCM_TAG_LEN 16

/* Fill p with n bytes from the OS-seeded CSPRNG. */
int ward_random(uint8_t *p, size_t n);

/* SHA-384, at once or in pieces (free with ward_sha384_free, which is
 * safe on a zeroed or finished context). */
#define WARD_SHA384_LEN 48
int ward_sha384(const void *p, size_t n, uint8_t out[WARD_SHA384_LEN]);
struct ward_sha384_ctx {
	struct evp_md_ctx_st *md;
};
int ward_sha384_init(struct ward_sha384_ctx *c);
int ward_sha384_update(struct ward_sha384_ctx *c, const void *p, size_t n);
int ward_sha384_final(struct ward_sha384_ctx *c, uint8_t out[WARD_SHA384_LEN]);
void ward_sha384_free(struct ward_sha384_ctx *c);

/* SHA-256 and HMAC-SHA-256 at once. OpenSSL 3 looks an algorithm up by
 * name on every one-shot call through EVP_sha256() or HMAC(); these fetch
 * theirs once per process (SigV4 makes three such calls a request). */
#define WARD_SHA256_LEN 32
int ward_sha256(const void *p, size_t n, uint8_t out[WARD_SHA256_LEN]);
int ward_hmac_sha256(const uint8_t *key, size_t key_len, const void *p,
    size_t n, uint8_t out[WARD_SHA256_LEN]);

/*
 * HMAC-SHA-256 under one key many times: ward_hmac_sha256_key_init hashes
 * the padded key into the inner and outer states once (RFC 2104), and
 * each ward_hmac_sha256_keyed starts from copies of them (two compression
 * blocks saved per call, and no allocation: half the cost of a short
 * message). The states are secret: key_free zeroes them. A zeroed struct
 * is "no key"; key_free on it, or twice, is harmless. Nothing allocated:
 * the struct may be copied, and a copy is a key too.
 */
struct ward_hmac_sha256_key {
	uint64_t state[2][16]; /* inner and outer SHA256_CTX (hash.c) */
	bool keyed;
};
int ward_hmac_sha256_key_init(
    struct ward_hmac_sha256_key *k, const uint8_t *key, size_t key_len);
int ward_hmac_sha256_keyed(const struct ward_hmac_sha256_key *k, const void *p,
    size_t n, uint8_t out[WARD_SHA256_LEN]);
void ward_hmac_sha256_key_free(struct ward_hmac_sha256_key *k);

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
/* The same for one direction only, when a context only seals or only
 * opens (half the set-up: each direction has its own key schedule and
 * GHASH table). The other call then fails with WARD_EINTERNAL. */
#define WARD_GCM_SEAL 1
#define WARD_GCM_OPEN 2
int ward_gcm_init_dir(
    struct ward_gcm *g, const uint8_t *key, size_t key_len, int dirs);
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

/*
 * RSA key pairs for KMS Recipient (nitro.md §4.2): the enclave makes a
 * fresh RSA-2048 (e = 65537) pair per session and sends the public half
 * as DER SubjectPublicKeyInfo inside its attestation document.
 */
#define WARD_RSA_RECIPIENT_BITS 2048
int ward_rsa_generate(unsigned bits, struct evp_pkey_st **out);
/* DER SubjectPublicKeyInfo of k's public half, appended to out. */
int ward_pkey_spki(struct evp_pkey_st *k, struct ward_buf *out);
/* Parse a DER SubjectPublicKeyInfo; the whole input must be consumed. */
int ward_pkey_from_spki(const uint8_t *p, size_t n, struct evp_pkey_st **out);

/*
 * CMS EnvelopedData as AWS KMS returns CiphertextForRecipient (nitro.md
 * §4.3, §5): one KeyTransRecipientInfo (version 2, rid = subject key
 * identifier, RSAES-OAEP with SHA-256 and MGF1-SHA-256), content type
 * data, AES-256-CBC with PKCS#7 padding, BER with indefinite lengths.
 *
 * ward_cms_parse checks the structure and returns views into p (rid,
 * encrypted key) plus the encrypted content, which BER may split into
 * several OCTET STRING chunks and which is therefore copied (joined) into
 * out->content. Anything that is not exactly this shape is WARD_EFORMAT
 * (malformed) or WARD_EUNSUPPORTED (well-formed, other algorithm).
 */
#define WARD_CMS_MAX (256 * 1024) /* inputs above this are refused */
#define WARD_CMS_IV_LEN 16
struct ward_cms {
	const uint8_t *rid; /* subjectKeyIdentifier */
	size_t rid_len;
	const uint8_t *encrypted_key;
	size_t encrypted_key_len;
	uint8_t iv[WARD_CMS_IV_LEN];
	struct ward_buf content; /* AES-256-CBC ciphertext, chunks joined */
};
int ward_cms_parse(const uint8_t *p, size_t n, struct ward_cms *out);
void ward_cms_free(struct ward_cms *c);
/*
 * The KMS side: seal pt to the RSA public key given as DER
 * SubjectPublicKeyInfo (the attestation document's public_key). A fresh
 * AES-256 key and IV per call; rid = SHA-256 of the SPKI's public key bits.
 * The encoding is BER shaped as AWS sends it (indefinite lengths).
 */
int ward_cms_seal(const uint8_t *spki, size_t spki_len, const uint8_t *pt,
    size_t n, struct ward_buf *out);
/*
 * The enclave side: open with the RSA private key. out is marked secret
 * and receives the plaintext only when the whole message decrypted and
 * its padding checked; on any failure out is left empty. A wrong key is
 * WARD_EKEY; a corrupted message WARD_EAUTH or WARD_EFORMAT.
 */
int ward_cms_open(
    struct evp_pkey_st *priv, const uint8_t *p, size_t n, struct ward_buf *out);

/*
 * ECDSA P-384 with SHA-384 and raw r||s signatures, as COSE ES384 wants
 * them (RFC 8152 §8.1; nitro.md §3.2).
 */
#define WARD_ES384_SIG_LEN 96
int ward_ec_generate(enum ward_curve curve, struct evp_pkey_st **out);
/* Load a PEM private key that must be EC on the given curve. */
int ward_ec_load_private(
    const char *path, enum ward_curve curve, struct evp_pkey_st **out);
/* PKCS#8 PEM of a private key, into a secret buffer. */
int ward_pkey_private_pem(struct evp_pkey_st *k, struct ward_buf *out);
/* 1 when both keys have the same public half. */
bool ward_pkey_same_public(struct evp_pkey_st *a, struct evp_pkey_st *b);
int ward_es384_sign(struct evp_pkey_st *k, const uint8_t *m, size_t n,
    uint8_t sig[WARD_ES384_SIG_LEN]);
/* -WARD_EAUTH when the signature does not verify. */
int ward_es384_verify(struct evp_pkey_st *k, const uint8_t *m, size_t n,
    const uint8_t sig[WARD_ES384_SIG_LEN]);

/*
 * X.509 certificates, handled as DER. ward_x509_verify_chain validates
 * leaf <- inter[0] <- ... <- inter[n-1] <- root with root as the only
 * trust anchor, every certificate valid at `at`, issuers CAs with
 * keyCertSign within their path length, no revocation checking (AWS's
 * rule for attestation, nitro.md §3.5), the chain OpenSSL builds exactly
 * the one given, and the leaf an end entity with digitalSignature.
 * Failures are WARD_EAUTH with OpenSSL's reason and the certificate's
 * subject.
 */
struct ward_x509_info {
	char subject[256];
	char issuer[256];
	char cn[128]; /* the subject's commonName, or "" */
	char serial[2 * 20 + 1]; /* hex */
	int64_t not_before, not_after; /* seconds since the epoch */
	bool ca;
	long pathlen; /* -1: no constraint */
	bool digital_signature, key_cert_sign;
	char key[32]; /* "EC P-384", "RSA 2048", ... */
	uint8_t sha256[32]; /* of the DER */
};
int ward_x509_info(const uint8_t *der, size_t n, struct ward_x509_info *out);
int ward_x509_verify_chain(struct ward_bytes leaf,
    const struct ward_bytes *inter, size_t n_inter, struct ward_bytes root,
    time_t at);
/* The certificate's public key (EC P-384 required when p384 is set). */
int ward_x509_pubkey(
    const uint8_t *der, size_t n, bool p384, struct evp_pkey_st **out);
/* First certificate of a PEM file, or a DER file, as DER. */
int ward_x509_load(const char *path, struct ward_buf *der);
int ward_x509_pem(const uint8_t *der, size_t n, struct ward_buf *pem);
/* The first certificate of PEM bytes, as DER (appended to der). */
int ward_x509_pem_to_der(const uint8_t *pem, size_t n, struct ward_buf *der);

struct ward_x509_template {
	const char *c, *o, *ou, *cn; /* subject name parts (NULL: omitted) */
	int64_t not_before, not_after;
	bool ca;
	long pathlen; /* CAs: -1 for none */
	bool digital_signature, key_cert_sign, crl_sign;
};
/* Issue a certificate for subject's public key, signed (ECDSA SHA-384) by
 * issuer_key; issuer_der NULL means self-signed. Random 16-byte serial,
 * subject and authority key identifiers. */
int ward_x509_issue(const struct ward_x509_template *t,
    struct evp_pkey_st *subject, struct evp_pkey_st *issuer_key,
    const uint8_t *issuer_der, size_t issuer_len, struct ward_buf *der);

/* Record OpenSSL's error queue as the message for code; returns -code. */
int ward_crypto_err(int code, const char *what);
#ifdef __clang_analyzer__
#define ward_crypto_err(code, what) (ward_crypto_err((code), (what)), -(code))
#endif

#endif
