/*
 * Verifying attestation documents (nitro.md §3.5): the chain from the
 * document's certificate through its CA bundle to a pinned root, at a
 * given time, then the ES384 signature over the payload as received.
 * Roots are pinned by their DER bytes: cabundle[0] must be one of them
 * byte for byte; the document's copy is never trusted by itself.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "attest/internal.h"
#include "ward/attest.h"

#define ROOTS_MAX 8

/*
 * AWS Nitro Enclaves Root-G1 (nitro.md §3.4), DER, 533 bytes.
 * SHA-256 641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b.
 */
/* clang-format off */
static const uint8_t aws_root_g1[] = {
	0x30, 0x82, 0x02, 0x11, 0x30, 0x82, 0x01, 0x96, 0xa0, 0x03, 0x02, 0x01,
	0x02, 0x02, 0x11, 0x00, 0xf9, 0x31, 0x75, 0x68, 0x1b, 0x90, 0xaf, 0xe1,
	0x1d, 0x46, 0xcc, 0xb4, 0xe4, 0xe7, 0xf8, 0x56, 0x30, 0x0a, 0x06, 0x08,
	0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03, 0x30, 0x49, 0x31, 0x0b,
	0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x06, 0x13, 0x02, 0x55, 0x53, 0x31,
	0x0f, 0x30, 0x0d, 0x06, 0x03, 0x55, 0x04, 0x0a, 0x0c, 0x06, 0x41, 0x6d,
	0x61, 0x7a, 0x6f, 0x6e, 0x31, 0x0c, 0x30, 0x0a, 0x06, 0x03, 0x55, 0x04,
	0x0b, 0x0c, 0x03, 0x41, 0x57, 0x53, 0x31, 0x1b, 0x30, 0x19, 0x06, 0x03,
	0x55, 0x04, 0x03, 0x0c, 0x12, 0x61, 0x77, 0x73, 0x2e, 0x6e, 0x69, 0x74,
	0x72, 0x6f, 0x2d, 0x65, 0x6e, 0x63, 0x6c, 0x61, 0x76, 0x65, 0x73, 0x30,
	0x1e, 0x17, 0x0d, 0x31, 0x39, 0x31, 0x30, 0x32, 0x38, 0x31, 0x33, 0x32,
	0x38, 0x30, 0x35, 0x5a, 0x17, 0x0d, 0x34, 0x39, 0x31, 0x30, 0x32, 0x38,
	0x31, 0x34, 0x32, 0x38, 0x30, 0x35, 0x5a, 0x30, 0x49, 0x31, 0x0b, 0x30,
	0x09, 0x06, 0x03, 0x55, 0x04, 0x06, 0x13, 0x02, 0x55, 0x53, 0x31, 0x0f,
	0x30, 0x0d, 0x06, 0x03, 0x55, 0x04, 0x0a, 0x0c, 0x06, 0x41, 0x6d, 0x61,
	0x7a, 0x6f, 0x6e, 0x31, 0x0c, 0x30, 0x0a, 0x06, 0x03, 0x55, 0x04, 0x0b,
	0x0c, 0x03, 0x41, 0x57, 0x53, 0x31, 0x1b, 0x30, 0x19, 0x06, 0x03, 0x55,
	0x04, 0x03, 0x0c, 0x12, 0x61, 0x77, 0x73, 0x2e, 0x6e, 0x69, 0x74, 0x72,
	0x6f, 0x2d, 0x65, 0x6e, 0x63, 0x6c, 0x61, 0x76, 0x65, 0x73, 0x30, 0x76,
	0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
	0x05, 0x2b, 0x81, 0x04, 0x00, 0x22, 0x03, 0x62, 0x00, 0x04, 0xfc, 0x02,
	0x54, 0xeb, 0xa6, 0x08, 0xc1, 0xf3, 0x68, 0x70, 0xe2, 0x9a, 0xda, 0x90,
	0xbe, 0x46, 0x38, 0x32, 0x92, 0x73, 0x6e, 0x89, 0x4b, 0xff, 0xf6, 0x72,
	0xd9, 0x89, 0x44, 0x4b, 0x50, 0x51, 0xe5, 0x34, 0xa4, 0xb1, 0xf6, 0xdb,
	0xe3, 0xc0, 0xbc, 0x58, 0x1a, 0x32, 0xb7, 0xb1, 0x76, 0x07, 0x0e, 0xde,
	0x12, 0xd6, 0x9a, 0x3f, 0xea, 0x21, 0x1b, 0x66, 0xe7, 0x52, 0xcf, 0x7d,
	0xd1, 0xdd, 0x09, 0x5f, 0x6f, 0x13, 0x70, 0xf4, 0x17, 0x08, 0x43, 0xd9,
	0xdc, 0x10, 0x01, 0x21, 0xe4, 0xcf, 0x63, 0x01, 0x28, 0x09, 0x66, 0x44,
	0x87, 0xc9, 0x79, 0x62, 0x84, 0x30, 0x4d, 0xc5, 0x3f, 0xf4, 0xa3, 0x42,
	0x30, 0x40, 0x30, 0x0f, 0x06, 0x03, 0x55, 0x1d, 0x13, 0x01, 0x01, 0xff,
	0x04, 0x05, 0x30, 0x03, 0x01, 0x01, 0xff, 0x30, 0x1d, 0x06, 0x03, 0x55,
	0x1d, 0x0e, 0x04, 0x16, 0x04, 0x14, 0x90, 0x25, 0xb5, 0x0d, 0xd9, 0x05,
	0x47, 0xe7, 0x96, 0xc3, 0x96, 0xfa, 0x72, 0x9d, 0xcf, 0x99, 0xa9, 0xdf,
	0x4b, 0x96, 0x30, 0x0e, 0x06, 0x03, 0x55, 0x1d, 0x0f, 0x01, 0x01, 0xff,
	0x04, 0x04, 0x03, 0x02, 0x01, 0x86, 0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86,
	0x48, 0xce, 0x3d, 0x04, 0x03, 0x03, 0x03, 0x69, 0x00, 0x30, 0x66, 0x02,
	0x31, 0x00, 0xa3, 0x7f, 0x2f, 0x91, 0xa1, 0xc9, 0xbd, 0x5e, 0xe7, 0xb8,
	0x62, 0x7c, 0x16, 0x98, 0xd2, 0x55, 0x03, 0x8e, 0x1f, 0x03, 0x43, 0xf9,
	0x5b, 0x63, 0xa9, 0x62, 0x8c, 0x3d, 0x39, 0x80, 0x95, 0x45, 0xa1, 0x1e,
	0xbc, 0xbf, 0x2e, 0x3b, 0x55, 0xd8, 0xae, 0xee, 0x71, 0xb4, 0xc3, 0xd6,
	0xad, 0xf3, 0x02, 0x31, 0x00, 0xa2, 0xf3, 0x9b, 0x16, 0x05, 0xb2, 0x70,
	0x28, 0xa5, 0xdd, 0x4b, 0xa0, 0x69, 0xb5, 0x01, 0x6e, 0x65, 0xb4, 0xfb,
	0xde, 0x8f, 0xe0, 0x06, 0x1d, 0x6a, 0x53, 0x19, 0x7f, 0x9c, 0xda, 0xf5,
	0xd9, 0x43, 0xbc, 0x61, 0xfc, 0x2b, 0xeb, 0x03, 0xcb, 0x6f, 0xee, 0x8d,
	0x23, 0x02, 0xf3, 0xdf, 0xf6,
};
/* clang-format on */

struct root {
	struct ward_buf der;
	bool aws;
	char name[128];
	char sha256[65];
};

/*
 * Chains already verified, so a server that sees the same enclave's
 * documents again (KMS: one per request) checks only the document's own
 * signature. An entry is the SHA-256 of the root, the CA bundle and the
 * certificate as received, the window in which every one of them is
 * valid, and the certificate's key. The chain's verdict depends only on
 * those bytes and the time, so a hit inside the window is the verdict
 * ward_x509_verify_chain would give.
 */
#define CHAIN_CACHE_MAX 64

struct chain {
	uint8_t digest[32];
	int64_t not_before, not_after;
	struct evp_pkey_st *leaf;
	uint64_t used; /* for evicting the least recently used */
};

/*
 * Documents whose signature verified: SHA-256 of the signed bytes (which
 * hold the certificate, so the key) and the signature. An enclave that
 * sends the same document again (the agent reuses one per recipient key)
 * is not verified twice; the chain and its time window still are.
 */
#define SIG_CACHE_MAX 64

struct ward_attest_roots {
	struct root r[ROOTS_MAX];
	size_t n;
	pthread_mutex_t lock; /* guards the caches */
	struct chain cache[CHAIN_CACHE_MAX];
	size_t cached;
	uint64_t tick;
	uint8_t sigs[SIG_CACHE_MAX][32];
	size_t nsigs, next_sig;
};

struct ward_bytes
ward_attest_aws_root(void)
{
	return (struct ward_bytes){aws_root_g1, sizeof(aws_root_g1)};
}

static int
add_root(struct ward_attest_roots *rs, const uint8_t *der, size_t n, bool aws)
{
	struct ward_x509_info info;
	struct root *rt;
	int r;

	if (rs->n == ROOTS_MAX)
		return ward_errf(
		    WARD_ELIMIT, "more than %d trusted roots", ROOTS_MAX);
	if ((r = ward_x509_info(der, n, &info)) != 0)
		return r;
	if (!info.ca || !info.key_cert_sign)
		return ward_errf(WARD_EUSAGE,
		    "%s is not a CA certificate with keyCertSign",
		    info.subject);
	rt = &rs->r[rs->n];
	memset(rt, 0, sizeof(*rt));
	if ((r = ward_buf_append(&rt->der, der, n)) != 0)
		return r;
	rt->aws = aws;
	if (aws)
		snprintf(
		    rt->name, sizeof(rt->name), "%s", WARD_ATTEST_ROOT_AWS);
	else
		snprintf(rt->name, sizeof(rt->name), "%.127s",
		    info.cn[0] != '\0' ? info.cn : info.subject);
	ward_hex_encode(info.sha256, sizeof(info.sha256), rt->sha256);
	rs->n++;
	return 0;
}

int
ward_attest_roots_new(bool with_aws, struct ward_attest_roots **out)
{
	struct ward_attest_roots *rs;
	int r;

	*out = NULL;
	if ((rs = calloc(1, sizeof(*rs))) == NULL)
		return ward_enomem();
	pthread_mutex_init(&rs->lock, NULL);
	if (with_aws &&
	    (r = add_root(rs, aws_root_g1, sizeof(aws_root_g1), true)) != 0) {
		ward_attest_roots_free(rs);
		return r;
	}
	*out = rs;
	return 0;
}

int
ward_attest_roots_add_der(
    struct ward_attest_roots *rs, const uint8_t *der, size_t n)
{
	bool aws = n == sizeof(aws_root_g1) &&
	    memcmp(der, aws_root_g1, sizeof(aws_root_g1)) == 0;

	return add_root(rs, der, n, aws);
}

int
ward_attest_roots_add_file(struct ward_attest_roots *rs, const char *path)
{
	struct ward_buf der = {0};
	int r;

	if ((r = ward_x509_load(path, &der)) == 0 &&
	    (r = ward_attest_roots_add_der(rs, der.p, der.len)) != 0)
		r = ward_err_prefix(r, "%s", path);
	ward_buf_free(&der);
	return r;
}

void
ward_attest_roots_free(struct ward_attest_roots *rs)
{
	if (rs == NULL)
		return;
	for (size_t i = 0; i < rs->n; i++)
		ward_buf_free(&rs->r[i].der);
	for (size_t i = 0; i < rs->cached; i++)
		ward_pkey_free(rs->cache[i].leaf);
	pthread_mutex_destroy(&rs->lock);
	free(rs);
}

/* SHA-256 over (length, bytes) of the root, the bundle and the leaf. */
static int
chain_digest(const struct ward_attest_doc *d, const struct root *rt,
    uint8_t out[static 32])
{
	EVP_MD_CTX *md;
	uint8_t len[8];
	bool ok;

	if ((md = EVP_MD_CTX_new()) == NULL)
		return ward_enomem();
	ok = EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1;
	ward_store64(len, rt->der.len);
	ok = ok && EVP_DigestUpdate(md, len, 8) == 1 &&
	    EVP_DigestUpdate(md, rt->der.p, rt->der.len) == 1;
	for (size_t i = 1; ok && i < d->cabundle_len; i++) {
		ward_store64(len, d->cabundle[i].len);
		ok = EVP_DigestUpdate(md, len, 8) == 1 &&
		    EVP_DigestUpdate(
		        md, d->cabundle[i].p, d->cabundle[i].len) == 1;
	}
	ward_store64(len, d->certificate.len);
	ok = ok && EVP_DigestUpdate(md, len, 8) == 1 &&
	    EVP_DigestUpdate(md, d->certificate.p, d->certificate.len) == 1 &&
	    EVP_DigestFinal_ex(md, out, NULL) == 1;
	EVP_MD_CTX_free(md);
	return ok ? 0 : ward_errf(WARD_ECRYPTO, "SHA-256 failed");
}

/* The cached key of a chain valid at `at`, referenced; NULL if none. */
static struct evp_pkey_st *
cache_get(
    struct ward_attest_roots *rs, const uint8_t digest[static 32], time_t at)
{
	struct evp_pkey_st *k = NULL;

	pthread_mutex_lock(&rs->lock);
	for (size_t i = 0; i < rs->cached; i++) {
		struct chain *c = &rs->cache[i];

		if (memcmp(c->digest, digest, 32) != 0)
			continue;
		if ((int64_t)at >= c->not_before &&
		    (int64_t)at < c->not_after &&
		    EVP_PKEY_up_ref(c->leaf) == 1) {
			c->used = ++rs->tick;
			k = c->leaf;
		}
		break;
	}
	pthread_mutex_unlock(&rs->lock);
	return k;
}

/* Remember a verified chain (best effort: failures only cost speed). */
static void
cache_put(struct ward_attest_roots *rs, const uint8_t digest[static 32],
    const struct ward_attest_doc *d, const struct root *rt,
    struct evp_pkey_st *leaf)
{
	struct ward_x509_info info;
	int64_t nb = INT64_MIN, na = INT64_MAX;
	struct chain *c;
	size_t i, victim = 0;

	for (i = 0; i <= d->cabundle_len; i++) {
		struct ward_bytes b = i == d->cabundle_len ? d->certificate
		    : i == 0 ? (struct ward_bytes){rt->der.p, rt->der.len}
		             : d->cabundle[i];

		if (ward_x509_info(b.p, b.len, &info) != 0) {
			ward_errclear();
			return;
		}
		if (info.not_before > nb)
			nb = info.not_before;
		if (info.not_after < na)
			na = info.not_after;
	}
	if (EVP_PKEY_up_ref(leaf) != 1)
		return;
	pthread_mutex_lock(&rs->lock);
	for (i = 0; i < rs->cached; i++)
		if (memcmp(rs->cache[i].digest, digest, 32) == 0)
			break;
	if (i == rs->cached && rs->cached < CHAIN_CACHE_MAX)
		rs->cached++;
	else if (i == rs->cached)
		for (i = 0, victim = 0; i < rs->cached; i++)
			if (rs->cache[i].used < rs->cache[victim].used)
				victim = i;
	if (i == rs->cached)
		i = victim;
	c = &rs->cache[i];
	ward_pkey_free(c->leaf);
	memcpy(c->digest, digest, 32);
	c->not_before = nb;
	c->not_after = na;
	c->leaf = leaf;
	c->used = ++rs->tick;
	pthread_mutex_unlock(&rs->lock);
}

static int
sig_digest(const struct ward_buf *tbs, const struct ward_attest_doc *d,
    uint8_t out[static 32])
{
	EVP_MD_CTX *md;
	bool ok;

	if ((md = EVP_MD_CTX_new()) == NULL)
		return ward_enomem();
	ok = EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
	    EVP_DigestUpdate(md, tbs->p, tbs->len) == 1 &&
	    EVP_DigestUpdate(md, d->signature.p, d->signature.len) == 1 &&
	    EVP_DigestFinal_ex(md, out, NULL) == 1;
	EVP_MD_CTX_free(md);
	return ok ? 0 : ward_errf(WARD_ECRYPTO, "SHA-256 failed");
}

static bool
sig_seen(struct ward_attest_roots *rs, const uint8_t dg[static 32])
{
	bool seen = false;

	pthread_mutex_lock(&rs->lock);
	for (size_t i = 0; i < rs->nsigs && !seen; i++)
		seen = memcmp(rs->sigs[i], dg, 32) == 0;
	pthread_mutex_unlock(&rs->lock);
	return seen;
}

static void
sig_remember(struct ward_attest_roots *rs, const uint8_t dg[static 32])
{
	pthread_mutex_lock(&rs->lock);
	memcpy(rs->sigs[rs->next_sig], dg, 32);
	rs->next_sig = (rs->next_sig + 1) % SIG_CACHE_MAX;
	if (rs->nsigs < SIG_CACHE_MAX)
		rs->nsigs++;
	pthread_mutex_unlock(&rs->lock);
}

int
ward_attest_verify(const struct ward_attest_doc *d,
    const struct ward_attest_roots *rs, time_t at,
    struct ward_attest_result *res)
{
	struct ward_bytes inter[WARD_ATTEST_CABUNDLE_MAX];
	struct ward_buf tbs = {0};
	struct evp_pkey_st *leaf = NULL;
	const struct root *rt = NULL;
	struct ward_bytes first = d->cabundle[0];
	uint8_t digest[32], sig[32];
	int r;

	memset(res, 0, sizeof(*res));
	for (size_t i = 0; i < rs->n && rt == NULL; i++) {
		if (rs->r[i].der.len == first.len &&
		    memcmp(rs->r[i].der.p, first.p, first.len) == 0)
			rt = &rs->r[i];
	}
	if (rt == NULL) {
		struct ward_x509_info info;
		char hex[65];
		bool aws = first.len == sizeof(aws_root_g1) &&
		    memcmp(first.p, aws_root_g1, first.len) == 0;

		if (ward_x509_info(first.p, first.len, &info) != 0)
			return ward_errf(WARD_EAUTH,
			    "the document's CA bundle does not start with a "
			    "trusted root (nor with a certificate at all)");
		ward_hex_encode(info.sha256, sizeof(info.sha256), hex);
		return ward_errf(WARD_EAUTH,
		    "the document chains to %s (SHA-256 %s), which is not a "
		    "trusted root here%s",
		    info.subject, hex,
		    aws ? " (the AWS Nitro root was not enabled)"
		        : " (pass it with --root if you trust it)");
	}
	if ((r = chain_digest(d, rt, digest)) != 0)
		return r;
	/* the roots are shared and const to callers; only the cache moves */
	leaf = cache_get((struct ward_attest_roots *)rs, digest, at);
	if (leaf == NULL) {
		/* cabundle is root first; the chain runs leaf first. */
		for (size_t i = 1; i < d->cabundle_len; i++)
			inter[i - 1] = d->cabundle[d->cabundle_len - i];
		if ((r = ward_x509_verify_chain(d->certificate, inter,
		         d->cabundle_len - 1,
		         (struct ward_bytes){rt->der.p, rt->der.len}, at)) != 0)
			goto out;
		if ((r = ward_x509_pubkey(d->certificate.p, d->certificate.len,
		         true, &leaf)) != 0)
			goto out;
		cache_put((struct ward_attest_roots *)rs, digest, d, rt, leaf);
	}
	if ((r = ward_attest_sig_structure(d, &tbs)) != 0)
		goto out;
	if ((r = sig_digest(&tbs, d, sig)) != 0)
		goto out;
	if (sig_seen((struct ward_attest_roots *)rs, sig))
		r = 0;
	else if ((r = ward_es384_verify(
	              leaf, tbs.p, tbs.len, d->signature.p)) == 0)
		sig_remember((struct ward_attest_roots *)rs, sig);
	if (r != 0) {
		r = ward_errf(WARD_EAUTH,
		    "the document's signature does not verify with its "
		    "certificate");
		goto out;
	}
	res->aws = rt->aws;
	snprintf(res->root_name, sizeof(res->root_name), "%s", rt->name);
	memcpy(res->root_sha256, rt->sha256, sizeof(res->root_sha256));
out:
	ward_pkey_free(leaf);
	ward_buf_free(&tbs);
	return r;
}

static int
digits(const char **s, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*s)[i]))
			return -1;
		v = v * 10 + ((*s)[i] - '0');
	}
	*s += n;
	*out = v;
	return 0;
}

static int
lit(const char **s, const char *set)
{
	if (**s == '\0' || strchr(set, **s) == NULL)
		return -1;
	(*s)++;
	return 0;
}

int
ward_parse_rfc3339(const char *str, time_t *out)
{
	static const int mdays[] = {
	    31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	const char *s = str;
	struct tm tm;
	int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0;
	time_t t;

	memset(&tm, 0, sizeof(tm));
	if (digits(&s, 4, &y) || lit(&s, "-") || digits(&s, 2, &mo) ||
	    lit(&s, "-") || digits(&s, 2, &d) || lit(&s, "Tt ") ||
	    digits(&s, 2, &h) || lit(&s, ":") || digits(&s, 2, &mi) ||
	    lit(&s, ":") || digits(&s, 2, &sec))
		goto bad;
	if (*s == '.') {
		s++;
		if (!isdigit((unsigned char)*s))
			goto bad;
		while (isdigit((unsigned char)*s))
			s++; /* fractions of a second are dropped */
	}
	if (*s == 'Z' || *s == 'z') {
		s++;
	} else if (*s == '+' || *s == '-') {
		sign = *s == '-' ? -1 : 1;
		s++;
		if (digits(&s, 2, &oh) || lit(&s, ":") || digits(&s, 2, &om) ||
		    oh > 23 || om > 59)
			goto bad;
	} else {
		goto bad;
	}
	if (*s != '\0' || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] ||
	    h > 23 || mi > 59 || sec > 60)
		goto bad;
	if (mo == 2 && d == 29 &&
	    !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
		goto bad;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec == 60 ? 59 : sec;
	if ((t = timegm(&tm)) == (time_t)-1)
		goto bad;
	*out = t - sign * (oh * 3600 + om * 60);
	return 0;
bad:
	return ward_errf(WARD_EUSAGE,
	    "%s is not an RFC 3339 time (like 2022-09-15T17:44:24Z)",
	    ward_quotes(str));
}
