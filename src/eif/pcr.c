/*
 * Measurements (nitro.md §1.5): nitro-cli's EifHasher without a cache is
 * a plain SHA-384 over the measured bytes, finalized TPM-style as one
 * extend of that digest onto an all-zero register:
 * PCR = SHA-384(0^48 || SHA-384(bytes)).
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ward/eif.h"

#define PCR_FILE_BUF (1u << 20)

int
ward_pcr_init(struct ward_pcr *h)
{
	if ((h->md = EVP_MD_CTX_new()) == NULL)
		return ward_enomem();
	if (EVP_DigestInit_ex(h->md, EVP_sha384(), NULL) != 1) {
		EVP_MD_CTX_free(h->md);
		h->md = NULL;
		return ward_crypto_err(WARD_ECRYPTO, "SHA-384");
	}
	return 0;
}

int
ward_pcr_update(struct ward_pcr *h, const uint8_t *p, size_t n)
{
	if (n == 0)
		return 0;
	if (EVP_DigestUpdate(h->md, p, n) != 1)
		return ward_crypto_err(WARD_ECRYPTO, "SHA-384");
	return 0;
}

/* The extend: the register starts at 48 zero bytes, and one extend with
 * the digest d gives SHA-384(register || d). */
int
ward_pcr_final(struct ward_pcr *h, uint8_t out[WARD_PCR_LEN])
{
	uint8_t reg[2 * WARD_PCR_LEN] = {0};
	unsigned int n = 0;

	if (EVP_DigestFinal_ex(h->md, reg + WARD_PCR_LEN, &n) != 1 ||
	    n != WARD_PCR_LEN)
		return ward_crypto_err(WARD_ECRYPTO, "SHA-384");
	if (EVP_Digest(reg, sizeof(reg), out, &n, EVP_sha384(), NULL) != 1 ||
	    n != WARD_PCR_LEN)
		return ward_crypto_err(WARD_ECRYPTO, "SHA-384");
	return 0;
}

int
ward_pcr_copy(struct ward_pcr *dst, const struct ward_pcr *src)
{
	if (EVP_MD_CTX_copy_ex(dst->md, src->md) != 1)
		return ward_crypto_err(WARD_ECRYPTO, "SHA-384");
	return 0;
}

void
ward_pcr_free(struct ward_pcr *h)
{
	EVP_MD_CTX_free(h->md);
	h->md = NULL;
}

static int
pcr_bytes(const uint8_t *p, size_t n, uint8_t out[WARD_PCR_LEN])
{
	struct ward_pcr h = {0};
	int r;

	if ((r = ward_pcr_init(&h)) == 0 &&
	    (r = ward_pcr_update(&h, p, n)) == 0)
		r = ward_pcr_final(&h, out);
	ward_pcr_free(&h);
	return r;
}

int
ward_pcr_file(const char *path, uint8_t out[WARD_PCR_LEN])
{
	struct ward_fd_stream s = {.fd = -1, .name = path};
	struct ward_pcr h = {0};
	uint8_t *buf = NULL;
	size_t got;
	int r;

	if ((s.fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return ward_errf(WARD_EIO, "%s: %s", path, strerror(errno));
	if ((buf = malloc(PCR_FILE_BUF)) == NULL) {
		r = ward_enomem();
		goto out;
	}
	if ((r = ward_pcr_init(&h)) != 0)
		goto out;
	for (;;) {
		if ((r = ward_fd_read(&s, buf, PCR_FILE_BUF, &got)) != 0)
			goto out;
		if (got == 0)
			break;
		if ((r = ward_pcr_update(&h, buf, got)) != 0)
			goto out;
	}
	r = ward_pcr_final(&h, out);
out:
	ward_pcr_free(&h);
	free(buf);
	close(s.fd);
	return r;
}

int
ward_pcr_certificate(const char *pem_path, uint8_t out[WARD_PCR_LEN])
{
	struct ward_buf der = {0};
	int r;

	if ((r = ward_x509_load(pem_path, &der)) == 0)
		r = pcr_bytes(der.p, der.len, out);
	ward_buf_free(&der);
	return r;
}
