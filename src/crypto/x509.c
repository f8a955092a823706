/*
 * X.509 chains and ES384 for attestation (nitro.md §3.4, §3.5), and the
 * certificates a local attestation root issues. Certificates cross this
 * interface as DER; OpenSSL objects stay inside this file.
 */
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

#include "ward/crypto.h"

#define ES384_HALF (WARD_ES384_SIG_LEN / 2)

int
ward_ec_generate(enum ward_curve curve, EVP_PKEY **out)
{
	const char *name = curve == WARD_CURVE_P384 ? "P-384" : "P-256";

	*out = EVP_PKEY_Q_keygen(NULL, NULL, "EC", name);
	if (*out == NULL)
		return ward_crypto_err(WARD_ECRYPTO, "EC key generation");
	return 0;
}

static void key_desc(EVP_PKEY *k, char *out, size_t cap);

int
ward_ec_load_private(const char *path, enum ward_curve curve, EVP_PKEY **out)
{
	struct ward_buf b = {0};
	BIO *bio = NULL;
	EVP_PKEY *k = NULL;
	const char *want = curve == WARD_CURVE_P384 ? "EC P-384" : "EC P-256";
	char desc[32];
	int r;

	*out = NULL;
	if ((r = ward_read_file(path, 1 << 20, &b)) != 0)
		return r;
	if (b.len > INT32_MAX ||
	    (bio = BIO_new_mem_buf(b.p, (int)b.len)) == NULL) {
		r = ward_enomem();
		goto out;
	}
	if ((k = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)) == NULL) {
		r = ward_crypto_err(WARD_EFORMAT, "reading a PEM private key");
		r = ward_err_prefix(r, "%s", path);
		goto out;
	}
	key_desc(k, desc, sizeof(desc));
	if (strcmp(desc, want) != 0) {
		r = ward_errf(
		    WARD_EFORMAT, "%s: a %s key, not %s", path, desc, want);
		goto out;
	}
	*out = k;
	k = NULL;
	r = 0;
out:
	EVP_PKEY_free(k);
	BIO_free(bio);
	ward_buf_free(&b);
	return r;
}

int
ward_pkey_private_pem(EVP_PKEY *k, struct ward_buf *out)
{
	BIO *bio = NULL;
	char *p;
	long n;
	int r;

	out->secret = true;
	if ((bio = BIO_new(BIO_s_secmem())) == NULL)
		return ward_crypto_err(WARD_ECRYPTO, "BIO_new");
	if (PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL) != 1) {
		r = ward_crypto_err(WARD_ECRYPTO, "writing a private key");
		goto out;
	}
	n = BIO_get_mem_data(bio, &p);
	r = ward_buf_append(out, p, (size_t)n);
out:
	BIO_free(bio);
	return r;
}

bool
ward_pkey_same_public(EVP_PKEY *a, EVP_PKEY *b)
{
	bool same = EVP_PKEY_eq(a, b) == 1;

	ERR_clear_error();
	return same;
}

int
ward_es384_sign(
    EVP_PKEY *k, const uint8_t *m, size_t n, uint8_t sig[WARD_ES384_SIG_LEN])
{
	EVP_MD_CTX *md = NULL;
	ECDSA_SIG *es = NULL;
	uint8_t der[WARD_ECDSA_SIG_MAX];
	const uint8_t *dp = der;
	size_t dlen = sizeof(der);
	const BIGNUM *br, *bs;
	int r;

	if ((md = EVP_MD_CTX_new()) == NULL)
		return ward_enomem();
	if (EVP_DigestSignInit(md, NULL, EVP_sha384(), NULL, k) != 1 ||
	    EVP_DigestSign(md, der, &dlen, m, n) != 1) {
		r = ward_crypto_err(WARD_ECRYPTO, "ES384 signing");
		goto out;
	}
	if ((es = d2i_ECDSA_SIG(NULL, &dp, (long)dlen)) == NULL) {
		r = ward_crypto_err(WARD_ECRYPTO, "ES384 signature");
		goto out;
	}
	ECDSA_SIG_get0(es, &br, &bs);
	if (BN_bn2binpad(br, sig, ES384_HALF) != ES384_HALF ||
	    BN_bn2binpad(bs, sig + ES384_HALF, ES384_HALF) != ES384_HALF) {
		r = ward_errf(WARD_ECRYPTO, "ES384 signature out of range");
		goto out;
	}
	r = 0;
out:
	ECDSA_SIG_free(es);
	EVP_MD_CTX_free(md);
	return r;
}

int
ward_es384_verify(EVP_PKEY *k, const uint8_t *m, size_t n,
    const uint8_t sig[WARD_ES384_SIG_LEN])
{
	EVP_MD_CTX *md = NULL;
	ECDSA_SIG *es = NULL;
	BIGNUM *br = NULL, *bs = NULL;
	uint8_t *der = NULL;
	int dlen, r, v;

	if ((es = ECDSA_SIG_new()) == NULL ||
	    (br = BN_bin2bn(sig, ES384_HALF, NULL)) == NULL ||
	    (bs = BN_bin2bn(sig + ES384_HALF, ES384_HALF, NULL)) == NULL ||
	    ECDSA_SIG_set0(es, br, bs) != 1) {
		BN_free(br);
		BN_free(bs);
		r = ward_enomem();
		goto out;
	}
	if ((dlen = i2d_ECDSA_SIG(es, &der)) <= 0) {
		r = ward_crypto_err(WARD_ECRYPTO, "ES384 signature encoding");
		goto out;
	}
	if ((md = EVP_MD_CTX_new()) == NULL) {
		r = ward_enomem();
		goto out;
	}
	if (EVP_DigestVerifyInit(md, NULL, EVP_sha384(), NULL, k) != 1) {
		r = ward_crypto_err(WARD_ECRYPTO, "ES384 verification");
		goto out;
	}
	v = EVP_DigestVerify(md, der, (size_t)dlen, m, n);
	ERR_clear_error();
	r = v == 1
	    ? 0
	    : ward_errf(WARD_EAUTH, "the ES384 signature does not verify");
out:
	OPENSSL_free(der);
	ECDSA_SIG_free(es);
	EVP_MD_CTX_free(md);
	return r;
}

static int
parse_der(const uint8_t *der, size_t n, X509 **out)
{
	const uint8_t *p = der;

	if (n == 0 || n > 1 << 20)
		return ward_errf(WARD_EFORMAT, "certificate of %zu bytes", n);
	*out = d2i_X509(NULL, &p, (long)n);
	if (*out == NULL) {
		ERR_clear_error();
		return ward_errf(WARD_EFORMAT, "malformed X.509 certificate");
	}
	if (p != der + n) {
		X509_free(*out);
		*out = NULL;
		return ward_errf(WARD_EFORMAT,
		    "%zu bytes after the end of a certificate",
		    (size_t)(der + n - p));
	}
	return 0;
}

/* Append x's DER encoding to out. */
static int
append_der(X509 *x, struct ward_buf *out)
{
	uint8_t *p = NULL;
	int n, r;

	if ((n = i2d_X509(x, &p)) <= 0)
		return ward_crypto_err(WARD_ECRYPTO, "certificate encoding");
	r = ward_buf_append(out, p, (size_t)n);
	OPENSSL_free(p);
	return r;
}

static void
name_str(const X509_NAME *nm, char *out, size_t cap)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *p;
	long n;

	out[0] = '\0';
	if (bio == NULL)
		return;
	if (X509_NAME_print_ex(
	        bio, nm, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0) {
		n = BIO_get_mem_data(bio, &p);
		if (n > 0) {
			size_t k = (size_t)n < cap - 1 ? (size_t)n : cap - 1;

			memcpy(out, p, k);
			out[k] = '\0';
		}
	}
	BIO_free(bio);
}

static int64_t
asn1_time(const ASN1_TIME *t)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return (int64_t)timegm(&tm);
}

static void
key_desc(EVP_PKEY *k, char *out, size_t cap)
{
	char group[64];
	size_t glen = 0;

	if (k == NULL) {
		snprintf(out, cap, "unknown");
		return;
	}
	if (EVP_PKEY_is_a(k, "EC") &&
	    EVP_PKEY_get_utf8_string_param(
	        k, "group", group, sizeof(group), &glen) == 1) {
		const char *nice = strcmp(group, "secp384r1") == 0 ? "P-384"
		    : strcmp(group, "prime256v1") == 0             ? "P-256"
		                                                   : group;
		snprintf(out, cap, "EC %.20s", nice);
	} else if (EVP_PKEY_is_a(k, "RSA")) {
		snprintf(out, cap, "RSA %d", EVP_PKEY_get_bits(k));
	} else {
		snprintf(out, cap, "%.24s", EVP_PKEY_get0_type_name(k));
	}
	ERR_clear_error();
}

int
ward_x509_info(const uint8_t *der, size_t n, struct ward_x509_info *out)
{
	X509 *x = NULL;
	const ASN1_INTEGER *serial;
	BIGNUM *bn = NULL;
	int r;
	uint32_t ku;

	memset(out, 0, sizeof(*out));
	if ((r = parse_der(der, n, &x)) != 0)
		return r;
	name_str(X509_get_subject_name(x), out->subject, sizeof(out->subject));
	name_str(X509_get_issuer_name(x), out->issuer, sizeof(out->issuer));
	if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName,
	        out->cn, sizeof(out->cn)) < 0)
		out->cn[0] = '\0';
	serial = X509_get0_serialNumber(x);
	if ((bn = ASN1_INTEGER_to_BN(serial, NULL)) != NULL) {
		uint8_t b[20];
		int len = BN_num_bytes(bn);

		if (len > 0 && len <= (int)sizeof(b)) {
			BN_bn2bin(bn, b);
			ward_hex_encode(b, (size_t)len, out->serial);
		}
		BN_free(bn);
	}
	out->not_before = asn1_time(X509_get0_notBefore(x));
	out->not_after = asn1_time(X509_get0_notAfter(x));
	out->ca = X509_check_ca(x) != 0;
	out->pathlen = X509_get_pathlen(x);
	ku = X509_get_key_usage(x);
	out->digital_signature = (ku & KU_DIGITAL_SIGNATURE) != 0;
	out->key_cert_sign = (ku & KU_KEY_CERT_SIGN) != 0;
	key_desc(X509_get0_pubkey(x), out->key, sizeof(out->key));
	if (EVP_Digest(der, n, out->sha256, NULL, EVP_sha256(), NULL) != 1)
		r = ward_crypto_err(WARD_ECRYPTO, "SHA-256");
	ERR_clear_error();
	X509_free(x);
	return r;
}

int
ward_x509_pubkey(const uint8_t *der, size_t n, bool p384, EVP_PKEY **out)
{
	X509 *x = NULL;
	EVP_PKEY *k;
	char desc[32];
	int r;

	*out = NULL;
	if ((r = parse_der(der, n, &x)) != 0)
		return r;
	if ((k = X509_get_pubkey(x)) == NULL) {
		r = ward_crypto_err(WARD_EFORMAT, "certificate public key");
		goto out;
	}
	key_desc(k, desc, sizeof(desc));
	if (p384 && strcmp(desc, "EC P-384") != 0) {
		EVP_PKEY_free(k);
		r = ward_errf(WARD_EUNSUPPORTED,
		    "the signing certificate's key is %s, not EC P-384", desc);
		goto out;
	}
	*out = k;
	r = 0;
out:
	X509_free(x);
	return r;
}

int
ward_x509_verify_chain(struct ward_bytes leaf, const struct ward_bytes *inter,
    size_t n_inter, struct ward_bytes root, time_t at)
{
	X509 *xleaf = NULL, *xroot = NULL, *x;
	STACK_OF(X509) *untrusted = NULL;
	STACK_OF(X509) * chain;
	X509_STORE *store = NULL;
	X509_STORE_CTX *ctx = NULL;
	char subj[256];
	int r, err;

	if ((r = parse_der(leaf.p, leaf.len, &xleaf)) != 0) {
		r = ward_err_prefix(r, "signing certificate");
		goto out;
	}
	if ((r = parse_der(root.p, root.len, &xroot)) != 0) {
		r = ward_err_prefix(r, "root certificate");
		goto out;
	}
	if ((untrusted = sk_X509_new_null()) == NULL ||
	    (store = X509_STORE_new()) == NULL ||
	    (ctx = X509_STORE_CTX_new()) == NULL) {
		r = ward_enomem();
		goto out;
	}
	for (size_t i = 0; i < n_inter; i++) {
		if ((r = parse_der(inter[i].p, inter[i].len, &x)) != 0) {
			r = ward_err_prefix(r, "CA bundle certificate");
			goto out;
		}
		if (!sk_X509_push(untrusted, x)) {
			X509_free(x);
			r = ward_enomem();
			goto out;
		}
	}
	if (X509_STORE_add_cert(store, xroot) != 1 ||
	    X509_STORE_CTX_init(ctx, store, xleaf, untrusted) != 1) {
		r = ward_crypto_err(WARD_ECRYPTO, "certificate store");
		goto out;
	}
	X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx), at);
	/* CRLs are not consulted (AWS: revocation checking disabled). */
	if (X509_verify_cert(ctx) != 1) {
		err = X509_STORE_CTX_get_error(ctx);
		x = X509_STORE_CTX_get_current_cert(ctx);
		subj[0] = '\0';
		if (x != NULL)
			name_str(X509_get_subject_name(x), subj, sizeof(subj));
		ERR_clear_error();
		r = ward_errf(WARD_EAUTH, "certificate chain: %s (at %s)",
		    X509_verify_cert_error_string(err),
		    subj[0] != '\0' ? subj : "unknown certificate");
		goto out;
	}
	/* The chain must be exactly leaf, the bundle nearest-first, root:
	 * no certificate skipped, none taken from elsewhere. */
	chain = X509_STORE_CTX_get0_chain(ctx);
	if (chain == NULL || (size_t)sk_X509_num(chain) != n_inter + 2) {
		r = ward_errf(WARD_EAUTH,
		    "certificate chain: %d certificates used, the document "
		    "lists %zu",
		    chain != NULL ? sk_X509_num(chain) : 0, n_inter + 2);
		goto out;
	}
	for (size_t i = 0; i < n_inter; i++) {
		if (X509_cmp(sk_X509_value(chain, (int)i + 1),
		        sk_X509_value(untrusted, (int)i)) != 0) {
			r = ward_errf(WARD_EAUTH,
			    "certificate chain: the CA bundle is out of order");
			goto out;
		}
	}
	/* Every issuer states keyCertSign (OpenSSL checks it only when the
	 * extension is present; AWS's rule wants it, nitro.md §3.5). */
	for (int i = 1; i < sk_X509_num(chain); i++) {
		X509 *ca = sk_X509_value(chain, i);

		if ((X509_get_extension_flags(ca) & EXFLAG_KUSAGE) == 0 ||
		    (X509_get_key_usage(ca) & KU_KEY_CERT_SIGN) == 0) {
			name_str(X509_get_subject_name(ca), subj, sizeof(subj));
			r = ward_errf(WARD_EAUTH,
			    "certificate chain: CA %s lacks the keyCertSign "
			    "key usage",
			    subj);
			goto out;
		}
	}
	/* The leaf signs documents: an end entity with digitalSignature. */
	if (X509_check_ca(xleaf) != 0 ||
	    (X509_get_extension_flags(xleaf) & EXFLAG_KUSAGE) == 0 ||
	    (X509_get_key_usage(xleaf) & KU_DIGITAL_SIGNATURE) == 0) {
		name_str(X509_get_subject_name(xleaf), subj, sizeof(subj));
		r = ward_errf(WARD_EAUTH,
		    "signing certificate %s is a CA or lacks the "
		    "digitalSignature key usage",
		    subj);
		goto out;
	}
	r = 0;
out:
	ERR_clear_error();
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	sk_X509_pop_free(untrusted, X509_free);
	X509_free(xleaf);
	X509_free(xroot);
	return r;
}

int
ward_x509_pem_to_der(const uint8_t *pem, size_t n, struct ward_buf *der)
{
	BIO *bio;
	X509 *x;
	int r;

	if (n > INT32_MAX || (bio = BIO_new_mem_buf(pem, (int)n)) == NULL)
		return ward_enomem();
	x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (x == NULL) {
		ERR_clear_error();
		return ward_errf(WARD_EFORMAT, "not a PEM certificate");
	}
	r = append_der(x, der);
	X509_free(x);
	return r;
}

int
ward_x509_load(const char *path, struct ward_buf *der)
{
	struct ward_buf b = {0};
	BIO *bio = NULL;
	X509 *x = NULL;
	int r;

	if ((r = ward_read_file(path, 1 << 20, &b)) != 0)
		return r;
	if ((bio = BIO_new_mem_buf(b.p, (int)b.len)) == NULL) {
		r = ward_enomem();
		goto out;
	}
	x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	if (x == NULL) {
		ERR_clear_error();
		/* Not PEM: maybe DER. */
		if (parse_der(b.p, b.len, &x) != 0) {
			r = ward_errf(WARD_EFORMAT,
			    "%s: not a PEM or DER certificate", path);
			goto out;
		}
	}
	r = append_der(x, der);
out:
	X509_free(x);
	BIO_free(bio);
	ward_buf_free(&b);
	return r;
}

int
ward_x509_pem(const uint8_t *der, size_t n, struct ward_buf *pem)
{
	X509 *x = NULL;
	BIO *bio = NULL;
	char *p;
	long len;
	int r;

	if ((r = parse_der(der, n, &x)) != 0)
		return r;
	if ((bio = BIO_new(BIO_s_mem())) == NULL) {
		r = ward_enomem();
		goto out;
	}
	if (PEM_write_bio_X509(bio, x) != 1) {
		r = ward_crypto_err(WARD_ECRYPTO, "PEM encoding");
		goto out;
	}
	len = BIO_get_mem_data(bio, &p);
	r = ward_buf_append(pem, p, (size_t)len);
out:
	BIO_free(bio);
	X509_free(x);
	return r;
}

static int
add_name(X509_NAME *nm, const char *field, const char *v)
{
	if (v == NULL)
		return 0;
	if (X509_NAME_add_entry_by_txt(nm, field, MBSTRING_UTF8,
	        (const unsigned char *)v, -1, -1, 0) != 1)
		return ward_crypto_err(WARD_ECRYPTO, "certificate name");
	return 0;
}

static int
add_ext(X509 *x, X509V3_CTX *v3, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, v3, nid, value);
	int ok;

	if (ext == NULL)
		return ward_crypto_err(WARD_ECRYPTO, "certificate extension");
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok == 1 ? 0
	               : ward_crypto_err(WARD_ECRYPTO, "certificate extension");
}

int
ward_x509_issue(const struct ward_x509_template *t, EVP_PKEY *subject,
    EVP_PKEY *issuer_key, const uint8_t *issuer_der, size_t issuer_len,
    struct ward_buf *der)
{
	X509 *x = NULL, *issuer = NULL;
	X509_NAME *nm = NULL;
	BIGNUM *bn = NULL;
	X509V3_CTX v3;
	uint8_t serial[16];
	char bc[64], ku[96];
	int r;

	if (issuer_der != NULL &&
	    (r = parse_der(issuer_der, issuer_len, &issuer)) != 0)
		return r;
	if ((x = X509_new()) == NULL || (nm = X509_NAME_new()) == NULL) {
		r = ward_enomem();
		goto out;
	}
	if ((r = ward_random(serial, sizeof(serial))) != 0)
		goto out;
	serial[0] &= 0x7f; /* positive */
	serial[0] |= 0x01; /* and 16 bytes long */
	if ((r = add_name(nm, "C", t->c)) != 0 ||
	    (r = add_name(nm, "O", t->o)) != 0 ||
	    (r = add_name(nm, "OU", t->ou)) != 0 ||
	    (r = add_name(nm, "CN", t->cn)) != 0)
		goto out;
	if (X509_set_version(x, X509_VERSION_3) != 1 ||
	    (bn = BN_bin2bn(serial, sizeof(serial), NULL)) == NULL ||
	    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL ||
	    X509_set_subject_name(x, nm) != 1 ||
	    X509_set_issuer_name(
	        x, issuer != NULL ? X509_get_subject_name(issuer) : nm) != 1 ||
	    ASN1_TIME_set(X509_getm_notBefore(x), (time_t)t->not_before) ==
	        NULL ||
	    ASN1_TIME_set(X509_getm_notAfter(x), (time_t)t->not_after) ==
	        NULL ||
	    X509_set_pubkey(x, subject) != 1) {
		r = ward_crypto_err(WARD_ECRYPTO, "certificate fields");
		goto out;
	}
	X509V3_set_ctx(&v3, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
	if (t->ca && t->pathlen >= 0)
		snprintf(
		    bc, sizeof(bc), "critical,CA:TRUE,pathlen:%ld", t->pathlen);
	else
		snprintf(
		    bc, sizeof(bc), "critical,CA:%s", t->ca ? "TRUE" : "FALSE");
	snprintf(ku, sizeof(ku), "critical%s%s%s",
	    t->digital_signature ? ",digitalSignature" : "",
	    t->key_cert_sign ? ",keyCertSign" : "",
	    t->crl_sign ? ",cRLSign" : "");
	if ((r = add_ext(x, &v3, NID_basic_constraints, bc)) != 0 ||
	    (strcmp(ku, "critical") != 0 &&
	        (r = add_ext(x, &v3, NID_key_usage, ku)) != 0) ||
	    (r = add_ext(x, &v3, NID_subject_key_identifier, "hash")) != 0 ||
	    (r = add_ext(
	         x, &v3, NID_authority_key_identifier, "keyid:always")) != 0)
		goto out;
	if (X509_sign(x, issuer_key, EVP_sha384()) <= 0) {
		r = ward_crypto_err(WARD_ECRYPTO, "certificate signing");
		goto out;
	}
	r = append_der(x, der);
out:
	BN_free(bn);
	X509_NAME_free(nm);
	X509_free(x);
	X509_free(issuer);
	return r;
}
