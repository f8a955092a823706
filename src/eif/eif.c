/*
 * Enclave Image Files, version 4 (nitro.md §1.1-§1.5): a 548-byte
 * big-endian header, then sections, each a 12-byte header and its data,
 * no padding, in the order nitro-cli's EifBuilder writes them: kernel,
 * cmdline, metadata, ramdisks, [signature].
 *
 * Reading is one sequential pass through a bounded buffer, as nitro-cli's
 * EifReader walks the file from offset 548: the CRC runs over every byte
 * but the header's own eif_crc32, and PCR0/1/2 over the measured section
 * data. The header's section table must describe exactly that walk (QEMU
 * seeks by the table, nitro-cli by the walk: an image on which they
 * disagree is refused). Every size is checked against the file size
 * before anything is allocated or read.
 *
 * Writing streams each input once into the output, with the CRC and the
 * PCR hashers over the same bytes. The header, which carries the
 * signature section's size and comes first in the CRC, is written last:
 * the sections' CRC is computed on its own and joined to the header's
 * with zlib's crc32_combine64.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <zlib.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ward/eif.h"

#define EIF_BUF (1u << 20) /* the one buffer a read or write uses */

/* Header field offsets (nitro.md §1.1). */
#define H_MAGIC 0
#define H_VERSION 4
#define H_FLAGS 6
#define H_DEFAULT_MEM 8
#define H_DEFAULT_CPUS 16
#define H_RESERVED 24
#define H_NUM_SECTIONS 26
#define H_SECTION_OFFSETS 28
#define H_SECTION_SIZES 284
#define H_UNUSED 540
#define H_CRC 544

/* kernel, cmdline, metadata and at least one ramdisk */
#define MIN_SECTIONS 4

static const uint8_t eif_magic[4] = {'.', 'e', 'i', 'f'};

/* CRC-32 (ISO-HDLC, as zlib's; nitro.md §1.4). zlib's crc32 is the
 * table-sliced one, several times faster than a byte loop. */
uint32_t
ward_eif_crc32(uint32_t crc, const uint8_t *p, size_t n)
{
	while (n > 0) {
		uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;

		crc = (uint32_t)crc32(crc, p, k);
		p += k;
		n -= k;
	}
	return crc;
}

/* CRC(A || B) from CRC(A), CRC(B) and the length of B. */
static uint32_t
crc_combine(uint32_t crc1, uint32_t crc2, uint64_t len2)
{
	return (uint32_t)crc32_combine64(crc1, crc2, (z_off64_t)len2);
}

static const char *
section_name(enum ward_eif_section_type t)
{
	switch (t) {
	case WARD_EIF_SEC_KERNEL:
		return "kernel";
	case WARD_EIF_SEC_CMDLINE:
		return "cmdline";
	case WARD_EIF_SEC_RAMDISK:
		return "ramdisk";
	case WARD_EIF_SEC_SIGNATURE:
		return "signature";
	case WARD_EIF_SEC_METADATA:
		return "metadata";
	case WARD_EIF_SEC_INVALID:
		break;
	}
	return "invalid";
}

/* The PCR hashers (nitro.md §1.5): PCR0 over kernel, cmdline and every
 * ramdisk; PCR1 over kernel, cmdline and the first ramdisk; PCR2 over
 * the other ramdisks. Metadata and signature are not measured. */
/*
 * PCR1's bytes are PCR0's first ones, so PCR1 is not hashed on its own:
 * it is a copy of PCR0's state taken where the first ramdisk ends. The
 * other ramdisks go into PCR0 and PCR2: a second thread takes PCR2 while
 * the caller's thread does PCR0. The CRC of a measured chunk is the
 * second thread's too, so the two have about the same to do. Chunks under
 * MEAS_PARALLEL_MIN are done inline.
 */
#define MEAS_PARALLEL_MIN (64 * 1024)

struct meas {
	struct ward_pcr pcr0, pcr1, pcr2;
	bool pcr1_taken; /* pcr1 copied from pcr0 after the first ramdisk */
	bool threaded;
	pthread_t worker;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	/* the worker's job: job (if not NULL) and the CRC *crc over p, n */
	struct ward_pcr *job;
	uint32_t *crc;
	const uint8_t *p;
	size_t n;
	bool busy, quit;
	int rc;
};

static void *
meas_worker(void *arg)
{
	struct meas *m = arg;

	pthread_mutex_lock(&m->mu);
	for (;;) {
		while (!m->busy && !m->quit)
			pthread_cond_wait(&m->cv, &m->mu);
		if (m->quit)
			break;
		pthread_mutex_unlock(&m->mu);
		int rc =
		    m->job != NULL ? ward_pcr_update(m->job, m->p, m->n) : 0;
		if (m->crc != NULL)
			*m->crc = ward_eif_crc32(*m->crc, m->p, m->n);
		pthread_mutex_lock(&m->mu);
		m->rc = rc;
		m->busy = false;
		pthread_cond_broadcast(&m->cv);
	}
	pthread_mutex_unlock(&m->mu);
	return NULL;
}

/* worker: whether to start the hashing thread (ward_eif_read_mem brings
 * its own) */
static int
meas_init(struct meas *m, bool worker)
{
	int r;

	memset(m, 0, sizeof(*m));
	if ((r = ward_pcr_init(&m->pcr0)) != 0 ||
	    (r = ward_pcr_init(&m->pcr1)) != 0 ||
	    (r = ward_pcr_init(&m->pcr2)) != 0)
		return r;
	/* Without a second thread it all still works, only slower. */
	if (worker && pthread_mutex_init(&m->mu, NULL) == 0) {
		if (pthread_cond_init(&m->cv, NULL) == 0) {
			if (pthread_create(&m->worker, NULL, meas_worker, m) ==
			    0)
				m->threaded = true;
			else
				pthread_cond_destroy(&m->cv);
		}
		if (!m->threaded)
			pthread_mutex_destroy(&m->mu);
	}
	return 0;
}

static void
meas_free(struct meas *m)
{
	if (m->threaded) {
		pthread_mutex_lock(&m->mu);
		m->quit = true;
		pthread_cond_broadcast(&m->cv);
		pthread_mutex_unlock(&m->mu);
		pthread_join(m->worker, NULL);
		pthread_cond_destroy(&m->cv);
		pthread_mutex_destroy(&m->mu);
		m->threaded = false;
	}
	ward_pcr_free(&m->pcr0);
	ward_pcr_free(&m->pcr1);
	ward_pcr_free(&m->pcr2);
}

/* PCR1 is PCR0 as it stands when the first ramdisk has been fed. */
static int
take_pcr1(struct meas *m)
{
	int r;

	if (m->pcr1_taken)
		return 0;
	if ((r = ward_pcr_copy(&m->pcr1, &m->pcr0)) != 0)
		return r;
	m->pcr1_taken = true;
	return 0;
}

/* A chunk of section data (of type t; ramdisk: how many ramdisks came
 * before it) into the PCRs it belongs to and the CRC *crc (none when crc
 * is NULL: the writer keeps its own). */
static int
measure(struct meas *m, enum ward_eif_section_type t, size_t ramdisk,
    const uint8_t *p, size_t n, uint32_t *crc)
{
	struct ward_pcr *other = NULL;
	int r, rc;

	if (t != WARD_EIF_SEC_KERNEL && t != WARD_EIF_SEC_CMDLINE &&
	    t != WARD_EIF_SEC_RAMDISK) {
		if (crc != NULL)
			*crc = ward_eif_crc32(*crc, p, n);
		return 0;
	}
	if (t == WARD_EIF_SEC_RAMDISK && ramdisk > 0) {
		if ((r = take_pcr1(m)) != 0)
			return r;
		other = &m->pcr2;
	}
	/* inline when small, or when the worker would have nothing to do
	 * (the writer keeps its own CRC) */
	if (!m->threaded || n < MEAS_PARALLEL_MIN ||
	    (other == NULL && crc == NULL)) {
		if ((r = ward_pcr_update(&m->pcr0, p, n)) != 0 ||
		    (other != NULL && (r = ward_pcr_update(other, p, n)) != 0))
			return r;
		if (crc != NULL)
			*crc = ward_eif_crc32(*crc, p, n);
		return 0;
	}
	pthread_mutex_lock(&m->mu);
	m->job = other;
	m->crc = crc;
	m->p = p;
	m->n = n;
	m->busy = true;
	pthread_cond_broadcast(&m->cv);
	pthread_mutex_unlock(&m->mu);
	r = ward_pcr_update(&m->pcr0, p, n);
	/* p and *crc must stay untouched until the worker is done */
	pthread_mutex_lock(&m->mu);
	while (m->busy)
		pthread_cond_wait(&m->cv, &m->mu);
	rc = m->rc;
	pthread_mutex_unlock(&m->mu);
	if (r == 0 && rc != 0)
		r = ward_errf(
		    WARD_ECRYPTO, "SHA-384 failed in the hashing thread");
	return r;
}

static int
meas_final(struct meas *m, struct ward_eif_image *img)
{
	int r;

	/* one ramdisk: PCR1 covers what PCR0 does */
	if ((r = take_pcr1(m)) != 0 ||
	    (r = ward_pcr_final(&m->pcr0, img->pcr0)) != 0 ||
	    (r = ward_pcr_final(&m->pcr1, img->pcr1)) != 0 ||
	    (r = ward_pcr_final(&m->pcr2, img->pcr2)) != 0)
		return r;
	return 0;
}

/* PCR8: the PCR of the signing certificate's DER, as nitro-cli takes it
 * from the PEM in the signature section (X509::from_pem, to_der). */
static int
pcr8_of_pem(const struct ward_buf *pem, uint8_t out[WARD_PCR_LEN])
{
	struct ward_pcr h = {0};
	struct ward_buf der = {0};
	int r;

	if (pem->len == 0 || pem->len > WARD_EIF_SIGNATURE_MAX)
		return ward_errf(
		    WARD_EFORMAT, "signing certificate of %zu bytes", pem->len);
	if ((r = ward_x509_pem_to_der(pem->p, pem->len, &der)) == 0 &&
	    (r = ward_pcr_init(&h)) == 0 &&
	    (r = ward_pcr_update(&h, der.p, der.len)) == 0)
		r = ward_pcr_final(&h, out);
	ward_pcr_free(&h);
	ward_buf_free(&der);
	return r;
}

/* Metadata is kept as stored; it must be a JSON object (EifIdentityInfo),
 * which is all nitro-cli's describe-eif needs of it to print it. */
static int
check_metadata(const uint8_t *p, size_t n, const char *what)
{
	json_error_t err;
	json_t *j;
	int r = 0;

	if ((j = json_loadb(
	         (const char *)p, n, JSON_REJECT_DUPLICATES, &err)) == NULL)
		return ward_errf(WARD_EFORMAT,
		    "%s: the metadata is not JSON: %s (at byte %d)", what,
		    err.text, err.position);
	if (!json_is_object(j))
		r = ward_errf(WARD_EFORMAT,
		    "%s: the metadata is not a JSON object", what);
	json_decref(j);
	return r;
}

void
ward_eif_image_free(struct ward_eif_image *img)
{
	if (img == NULL)
		return;
	ward_buf_free(&img->cmdline);
	ward_buf_free(&img->metadata);
	ward_buf_free(&img->signature);
	ward_buf_free(&img->signing_cert_pem);
	memset(img, 0, sizeof(*img));
}

/* ---- reader ---- */

struct rd {
	ward_read_fn read;
	void *ctx;
	const char *name;
	uint64_t pos;
	struct ward_progress *progress;
};

/* What both readers do once the sections are read and measured: the
 * metadata must be JSON, and a signature section must verify (PCR8). */
static int
finish_image(struct ward_eif_image *img, const char *name)
{
	int r;

	if ((r = check_metadata(img->metadata.p, img->metadata.len, name)) != 0)
		return r;
	if (img->sections[img->num_sections - 1].type ==
	    WARD_EIF_SEC_SIGNATURE) {
		img->is_signed = true;
		if ((r = ward_eif_signature_check(img->signature.p,
		         img->signature.len, img->pcr0, time(NULL),
		         &img->signing_cert_pem, &img->signature_ok)) != 0 ||
		    (r = pcr8_of_pem(&img->signing_cert_pem, img->pcr8)) != 0)
			return ward_err_prefix(r, "%s", name);
	}
	return 0;
}

/* The end both readers share: the CRC and the PCRs into img, its last
 * checks, and img moved to out (img left empty) when they pass. */
static int
conclude(struct meas *m, struct ward_eif_image *img, uint32_t crc,
    const char *name, struct ward_eif_image *out)
{
	int r;

	img->crc_computed = crc;
	if ((r = meas_final(m, img)) != 0 || (r = finish_image(img, name)) != 0)
		return r;
	*out = *img;
	memset(img, 0, sizeof(*img));
	return 0;
}

/* Exactly n bytes, or WARD_EFORMAT naming what was cut short. */
static int
rd_exact(struct rd *s, uint8_t *buf, size_t n, const char *what)
{
	size_t have = 0, got;
	int r;

	while (have < n) {
		if ((r = s->read(s->ctx, buf + have, n - have, &got)) != 0)
			return r;
		if (got == 0)
			return ward_errf(WARD_EFORMAT,
			    "%s: truncated in the %s at offset %llu", s->name,
			    what, (unsigned long long)(s->pos + have));
		have += got;
	}
	s->pos += n;
	if (s->progress != NULL)
		ward_progress_add(s->progress, n);
	return 0;
}

/* The section table (nitro.md §1.1, §1.3): num_sections entries laid
 * end to end from offset 548 to the end of the file, unused entries
 * zero. Checked before any section is read. */
static int
check_table(const uint8_t *h, uint64_t file_size, const char *name, size_t num)
{
	uint64_t end = WARD_EIF_HEADER_LEN;

	for (size_t i = 0; i < WARD_EIF_MAX_SECTIONS; i++) {
		uint64_t off = ward_load64(h + H_SECTION_OFFSETS + 8 * i);
		uint64_t size = ward_load64(h + H_SECTION_SIZES + 8 * i);

		if (i >= num) {
			if (off != 0 || size != 0)
				return ward_errf(WARD_EFORMAT,
				    "%s: section table entry %zu is not zero "
				    "but the header lists %zu sections",
				    name, i, num);
			continue;
		}
		if (off != end)
			return ward_errf(WARD_EFORMAT,
			    "%s: the section table puts section %zu at offset "
			    "%llu, but it starts at %llu (sections follow each "
			    "other without gaps, nitro.md §1.3)",
			    name, i, (unsigned long long)off,
			    (unsigned long long)end);
		if (file_size - end < WARD_EIF_SECTION_HEADER_LEN ||
		    size > file_size - end - WARD_EIF_SECTION_HEADER_LEN)
			return ward_errf(WARD_EFORMAT,
			    "%s: section %zu (%llu bytes at offset %llu) runs "
			    "past the end of the %llu-byte file",
			    name, i, (unsigned long long)size,
			    (unsigned long long)off,
			    (unsigned long long)file_size);
		end += WARD_EIF_SECTION_HEADER_LEN + size;
	}
	if (end != file_size)
		return ward_errf(WARD_EFORMAT,
		    "%s: %llu bytes after the last section (at offset %llu)",
		    name, (unsigned long long)(file_size - end),
		    (unsigned long long)end);
	return 0;
}

/* The section nitro-cli writes at index i of n (nitro.md §1.3). */
static bool
type_expected(
    size_t i, size_t n, enum ward_eif_section_type t, const char **want)
{
	static const enum ward_eif_section_type first[3] = {
	    WARD_EIF_SEC_KERNEL, WARD_EIF_SEC_CMDLINE, WARD_EIF_SEC_METADATA};

	if (i < 3) {
		*want = section_name(first[i]);
		return t == first[i];
	}
	if (i == n - 1 && i > 3) {
		*want = "a ramdisk or the signature";
		return t == WARD_EIF_SEC_RAMDISK || t == WARD_EIF_SEC_SIGNATURE;
	}
	*want = "a ramdisk";
	return t == WARD_EIF_SEC_RAMDISK;
}

static int
section_limit(
    enum ward_eif_section_type t, uint64_t size, const char *name, size_t i)
{
	uint64_t max = t == WARD_EIF_SEC_CMDLINE ? WARD_EIF_CMDLINE_MAX
	    : t == WARD_EIF_SEC_METADATA         ? WARD_EIF_METADATA_MAX
	    : t == WARD_EIF_SEC_SIGNATURE        ? WARD_EIF_SIGNATURE_MAX
	                                         : UINT64_MAX;

	if (size > max)
		return ward_errf(WARD_ELIMIT,
		    "%s: the %s section (section %zu) is %llu bytes; the limit "
		    "is %llu",
		    name, section_name(t), i, (unsigned long long)size,
		    (unsigned long long)max);
	return 0;
}

/* The header (nitro.md §1.1): the magic, version 4, a section count a
 * v4 image can have, and a section table that describes the file. */
static int
read_header(struct rd *s, uint64_t file_size, uint8_t h[WARD_EIF_HEADER_LEN],
    struct ward_eif_image *img)
{
	int r;

	if (file_size < WARD_EIF_HEADER_LEN)
		return ward_errf(WARD_EFORMAT,
		    "%s: %llu bytes, shorter than an EIF header (%d)", s->name,
		    (unsigned long long)file_size, WARD_EIF_HEADER_LEN);
	if ((r = rd_exact(s, h, WARD_EIF_HEADER_LEN, "header")) != 0)
		return r;
	if (memcmp(h + H_MAGIC, eif_magic, sizeof(eif_magic)) != 0)
		return ward_errf(WARD_EFORMAT,
		    "%s: not an enclave image file (magic %s, not \".eif\")",
		    s->name, ward_quote(h, 4));
	img->version = ward_load16(h + H_VERSION);
	if (img->version != WARD_EIF_VERSION)
		return ward_errf(WARD_EUNSUPPORTED,
		    "%s: EIF version %u; ward reads version %d (what current "
		    "nitro-cli writes) only",
		    s->name, img->version, WARD_EIF_VERSION);
	img->flags = ward_load16(h + H_FLAGS);
	img->default_mem = ward_load64(h + H_DEFAULT_MEM);
	img->default_cpus = ward_load64(h + H_DEFAULT_CPUS);
	img->num_sections = ward_load16(h + H_NUM_SECTIONS);
	img->crc_header = ward_load32(h + H_CRC);
	img->file_size = file_size;
	if (img->num_sections < MIN_SECTIONS ||
	    img->num_sections > WARD_EIF_MAX_SECTIONS)
		return ward_errf(WARD_EFORMAT,
		    "%s: %zu sections; an image has %d to %d (kernel, cmdline, "
		    "metadata, ramdisks, [signature])",
		    s->name, img->num_sections, MIN_SECTIONS,
		    WARD_EIF_MAX_SECTIONS);
	return check_table(h, file_size, s->name, img->num_sections);
}

/* Section i's header, checked against the order nitro-cli writes, the
 * section table and the size limits. */
static int
section_header(struct rd *s, const uint8_t *h, size_t i,
    struct ward_eif_image *img, uint8_t sh[WARD_EIF_SECTION_HEADER_LEN])
{
	struct ward_eif_section *sec = &img->sections[i];
	uint64_t table_size = ward_load64(h + H_SECTION_SIZES + 8 * i);
	const char *want;
	uint16_t type;
	int r;

	sec->offset = s->pos;
	if ((r = rd_exact(
	         s, sh, WARD_EIF_SECTION_HEADER_LEN, "section header")) != 0)
		return r;
	type = ward_load16(sh);
	sec->flags = ward_load16(sh + 2);
	sec->size = ward_load64(sh + 4);
	if (type == WARD_EIF_SEC_INVALID || type > WARD_EIF_SEC_METADATA)
		return ward_errf(WARD_EFORMAT,
		    "%s: section %zu at offset %llu has the invalid type %u",
		    s->name, i, (unsigned long long)sec->offset, type);
	sec->type = (enum ward_eif_section_type)type;
	if (!type_expected(i, img->num_sections, sec->type, &want))
		return ward_errf(WARD_EFORMAT,
		    "%s: section %zu at offset %llu is the %s where nitro-cli "
		    "writes %s%s (the order is kernel, cmdline, metadata, "
		    "ramdisks, [signature]: nitro.md §1.3)",
		    s->name, i, (unsigned long long)sec->offset,
		    section_name(sec->type), i < 3 ? "the " : "", want);
	if (sec->size != table_size)
		return ward_errf(WARD_EFORMAT,
		    "%s: section %zu at offset %llu is %llu bytes, but the "
		    "section table says %llu",
		    s->name, i, (unsigned long long)sec->offset,
		    (unsigned long long)sec->size,
		    (unsigned long long)table_size);
	return section_limit(sec->type, sec->size, s->name, i);
}

/* Section i: its header (section_header), then its data streamed through
 * buf into the CRC and the PCRs, and kept if it is one of the small
 * ones. */
static int
read_section(struct rd *s, const uint8_t *h, size_t i,
    struct ward_eif_image *img, struct meas *m, size_t ramdisks, uint32_t *crc,
    uint8_t *buf, size_t bufsize)
{
	struct ward_eif_section *sec = &img->sections[i];
	uint8_t sh[WARD_EIF_SECTION_HEADER_LEN];
	struct ward_buf *keep = NULL;
	int r;

	if ((r = section_header(s, h, i, img, sh)) != 0)
		return r;
	*crc = ward_eif_crc32(*crc, sh, sizeof(sh));
	if (sec->type == WARD_EIF_SEC_CMDLINE)
		keep = &img->cmdline;
	else if (sec->type == WARD_EIF_SEC_METADATA)
		keep = &img->metadata;
	else if (sec->type == WARD_EIF_SEC_SIGNATURE)
		keep = &img->signature;
	/* section_limit bounded these to 64 KiB */
	if (keep != NULL &&
	    (r = ward_buf_reserve(keep, (size_t)sec->size)) != 0)
		return r;
	for (uint64_t left = sec->size; left > 0;) {
		size_t n = left < bufsize ? (size_t)left : bufsize;

		if ((r = rd_exact(s, buf, n, section_name(sec->type))) != 0 ||
		    (r = measure(m, sec->type, ramdisks, buf, n, crc)) != 0)
			return r;
		if (keep != NULL && (r = ward_buf_append(keep, buf, n)) != 0)
			return r;
		left -= n;
	}
	return 0;
}

int
ward_eif_read_stream(ward_read_fn read, void *ctx, uint64_t file_size,
    const char *name, struct ward_eif_image *out,
    struct ward_progress *progress)
{
	struct rd s = {read, ctx, name, 0, progress};
	struct ward_eif_image img;
	struct meas m;
	uint8_t h[WARD_EIF_HEADER_LEN], *buf = NULL;
	size_t bufsize, ramdisks = 0, got;
	uint32_t crc;
	int r;

	memset(out, 0, sizeof(*out));
	memset(&img, 0, sizeof(img));
	if ((r = meas_init(&m, true)) != 0 ||
	    (r = read_header(&s, file_size, h, &img)) != 0)
		goto out;
	crc = ward_eif_crc32(0, h, H_CRC);
	bufsize = file_size < EIF_BUF ? (size_t)file_size : EIF_BUF;
	if ((buf = malloc(bufsize)) == NULL) {
		r = ward_enomem();
		goto out;
	}
	for (size_t i = 0; i < img.num_sections; i++) {
		if ((r = read_section(&s, h, i, &img, &m, ramdisks, &crc, buf,
		         bufsize)) != 0)
			goto out;
		if (img.sections[i].type == WARD_EIF_SEC_RAMDISK)
			ramdisks++;
	}
	/* The table summed to file_size; a stream that goes on has grown. */
	if ((r = s.read(s.ctx, h, 1, &got)) != 0)
		goto out;
	if (got != 0) {
		r = ward_errf(WARD_EFORMAT,
		    "%s: data after the last section at offset %llu (did the "
		    "file change while being read?)",
		    name, (unsigned long long)s.pos);
		goto out;
	}
	r = conclude(&m, &img, crc, name, out);
out:
	ward_eif_image_free(&img);
	meas_free(&m);
	free(buf);
	return r;
}

int
ward_eif_layout(
    const uint8_t *p, size_t len, const char *name, struct ward_eif_image *out)
{
	struct ward_mem_reader mr = {.p = p, .len = len};
	struct rd s = {ward_mem_read, &mr, name, 0, NULL};
	uint8_t h[WARD_EIF_HEADER_LEN], sh[WARD_EIF_SECTION_HEADER_LEN];
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = read_header(&s, len, h, out)) != 0)
		goto out;
	for (size_t i = 0; i < out->num_sections; i++) {
		if ((r = section_header(&s, h, i, out, sh)) != 0)
			goto out;
		/* check_table: every section lies inside the image */
		mr.off += (size_t)out->sections[i].size;
		s.pos += out->sections[i].size;
	}
out:
	if (r != 0)
		memset(out, 0, sizeof(*out));
	return r;
}

/* ---- an image in memory ---- */

/* ward_eif_read_mem's second thread: the CRC of everything but the
 * header's own field, and PCR2 over the ramdisks after the first. */
struct mem_job {
	const uint8_t *p;
	const struct ward_eif_image *img;
	struct ward_pcr *pcr2;
	uint32_t crc;
	int rc;
};

static void *
mem_worker(void *arg)
{
	struct mem_job *j = arg;
	const struct ward_eif_image *img = j->img;
	size_t ramdisks = 0;

	j->crc = ward_eif_crc32(0, j->p, H_CRC);
	j->crc = ward_eif_crc32(j->crc, j->p + WARD_EIF_HEADER_LEN,
	    (size_t)img->file_size - WARD_EIF_HEADER_LEN);
	for (size_t i = 0; j->rc == 0 && i < img->num_sections; i++) {
		const struct ward_eif_section *sec = &img->sections[i];

		if (sec->type == WARD_EIF_SEC_RAMDISK && ramdisks++ > 0)
			j->rc = ward_pcr_update(j->pcr2,
			    j->p + sec->offset + WARD_EIF_SECTION_HEADER_LEN,
			    (size_t)sec->size);
	}
	return NULL;
}

int
ward_eif_read_mem(
    const uint8_t *p, size_t len, const char *name, struct ward_eif_image *out)
{
	struct ward_eif_image img;
	struct meas m;
	struct mem_job j = {.p = p, .img = &img, .pcr2 = &m.pcr2};
	pthread_t t;
	bool threaded = false;
	size_t ramdisks = 0;
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = ward_eif_layout(p, len, name, &img)) != 0)
		return r;
	if ((r = meas_init(&m, false)) != 0)
		goto out;
	/* the two threads only read p; neither waits for the other until
	 * both are done */
	threaded = len >= MEAS_PARALLEL_MIN &&
	    pthread_create(&t, NULL, mem_worker, &j) == 0;
	for (size_t i = 0; r == 0 && i < img.num_sections; i++) {
		const struct ward_eif_section *sec = &img.sections[i];
		const uint8_t *d =
		    p + sec->offset + WARD_EIF_SECTION_HEADER_LEN;
		size_t n = (size_t)sec->size;
		struct ward_buf *keep = sec->type == WARD_EIF_SEC_CMDLINE
		    ? &img.cmdline
		    : sec->type == WARD_EIF_SEC_METADATA  ? &img.metadata
		    : sec->type == WARD_EIF_SEC_SIGNATURE ? &img.signature
		                                          : NULL;

		/* section_limit bounded the kept ones to 64 KiB */
		if (keep != NULL && n > 0 &&
		    (r = ward_buf_append(keep, d, n)) != 0)
			break;
		if (sec->type == WARD_EIF_SEC_RAMDISK && ramdisks++ == 1 &&
		    (r = take_pcr1(&m)) != 0)
			break;
		if (sec->type == WARD_EIF_SEC_KERNEL ||
		    sec->type == WARD_EIF_SEC_CMDLINE ||
		    sec->type == WARD_EIF_SEC_RAMDISK)
			r = ward_pcr_update(&m.pcr0, d, n);
	}
	if (threaded)
		pthread_join(t, NULL);
	else
		mem_worker(&j);
	if (r != 0)
		goto out;
	if (j.rc != 0) {
		/* its message is in the worker's thread; say it here */
		r = ward_errf(
		    WARD_ECRYPTO, "SHA-384 failed in the hashing thread");
		goto out;
	}
	r = conclude(&m, &img, j.crc, name, out);
out:
	ward_eif_image_free(&img);
	meas_free(&m);
	return r;
}

int
ward_eif_read(const char *path, struct ward_eif_image *out,
    struct ward_progress *progress)
{
	struct ward_fd_stream s = {.fd = -1, .name = path};
	struct stat st;
	int r;

	memset(out, 0, sizeof(*out));
	if ((s.fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return ward_errf(WARD_EIO, "%s: %s", path, strerror(errno));
	if (fstat(s.fd, &st) != 0) {
		r = ward_errf(WARD_EIO, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = ward_errf(WARD_EIO, "%s: not a regular file", path);
		goto out;
	}
	r = ward_eif_read_stream(
	    ward_fd_read, &s, (uint64_t)st.st_size, path, out, progress);
out:
	close(s.fd);
	return r;
}

/* ---- writer ---- */

/* One section's source: a part file opened and sized up front, or
 * bytes in memory. */
struct src {
	enum ward_eif_section_type type;
	char label[32];
	const char *path; /* NULL: p/len */
	const uint8_t *p;
	uint64_t size;
	int fd;
};

struct wr {
	struct ward_fd_stream out;
	struct ward_progress *progress;
	uint32_t crc; /* of everything after the header */
	uint64_t len; /* bytes after the header */
};

static int
wr_put(struct wr *w, const uint8_t *p, size_t n)
{
	int r;

	if ((r = ward_fd_write(&w->out, p, n)) != 0)
		return r;
	w->crc = ward_eif_crc32(w->crc, p, n);
	w->len += n;
	if (w->progress != NULL)
		ward_progress_add(w->progress, n);
	return 0;
}

static int
wr_section_header(struct wr *w, enum ward_eif_section_type t, uint64_t size)
{
	uint8_t sh[WARD_EIF_SECTION_HEADER_LEN];

	ward_store16(sh, (uint16_t)t);
	ward_store16(sh + 2, 0);
	ward_store64(sh + 4, size);
	return wr_put(w, sh, sizeof(sh));
}

/* Open a part file and take its size now: the header is built from these
 * sizes, and the file must still have them when it is streamed. */
static int
src_open(struct src *s, enum ward_eif_section_type t, const char *label,
    const struct ward_eif_part *part)
{
	struct stat st;

	memset(s, 0, sizeof(*s));
	s->fd = -1;
	s->type = t;
	snprintf(s->label, sizeof(s->label), "%s", label);
	if (part->path == NULL) {
		if (part->p == NULL && part->len != 0)
			return ward_errf(WARD_EUSAGE,
			    "the %s: %zu bytes at NULL", label, part->len);
		s->p = part->p;
		s->size = part->len;
		return 0;
	}
	s->path = part->path;
	if ((s->fd = open(part->path, O_RDONLY | O_CLOEXEC)) < 0)
		return ward_errf(WARD_EIO, "the %s %s: %s", label, part->path,
		    strerror(errno));
	if (fstat(s->fd, &st) != 0)
		return ward_errf(WARD_EIO, "the %s %s: %s", label, part->path,
		    strerror(errno));
	if (!S_ISREG(st.st_mode))
		return ward_errf(WARD_EIO, "the %s %s is not a regular file",
		    label, part->path);
	s->size = (uint64_t)st.st_size;
	return 0;
}

static void
src_close(struct src *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

/* Stream one section's data into the output, the CRC and the PCRs. */
static int
src_copy(struct src *s, struct wr *w, struct meas *m, size_t ramdisk,
    uint8_t *buf, size_t bufsize)
{
	struct ward_fd_stream in = {.fd = s->fd, .name = s->path};
	uint64_t left = s->size;
	size_t got;
	int r;

	if (s->path == NULL) {
		if (s->size == 0)
			return 0;
		if ((r = measure(m, s->type, ramdisk, s->p, s->size, NULL)) !=
		    0)
			return r;
		return wr_put(w, s->p, s->size);
	}
	while (left > 0) {
		size_t n = left < bufsize ? (size_t)left : bufsize;

		if ((r = ward_fd_read(&in, buf, n, &got)) != 0)
			return r;
		if (got == 0)
			return ward_errf(WARD_EIO,
			    "the %s %s shrank while being read (%llu of %llu "
			    "bytes)",
			    s->label, s->path,
			    (unsigned long long)(s->size - left),
			    (unsigned long long)s->size);
		if ((r = measure(m, s->type, ramdisk, buf, got, NULL)) != 0 ||
		    (r = wr_put(w, buf, got)) != 0)
			return r;
		left -= got;
	}
	if ((r = ward_fd_read(&in, buf, 1, &got)) != 0)
		return r;
	if (got != 0)
		return ward_errf(WARD_EIO,
		    "the %s %s grew while being read (it had %llu bytes)",
		    s->label, s->path, (unsigned long long)s->size);
	return 0;
}

static int
pwrite_all(int fd, const uint8_t *p, size_t n, off_t off, const char *path)
{
	while (n > 0) {
		ssize_t w = pwrite(fd, p, n, off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return ward_errf(WARD_EIO, "writing %s: %s", path,
			    w < 0 ? strerror(errno) : "short write");
		p += w;
		n -= (size_t)w;
		off += w;
	}
	return 0;
}

static int
check_params(const struct ward_eif_params *p, struct ward_buf *cmdline)
{
	size_t mlen;
	int r;

	if (p->n_ramdisks == 0 ||
	    p->n_ramdisks > sizeof(p->ramdisks) / sizeof(p->ramdisks[0]))
		return ward_errf(WARD_EUSAGE,
		    "%zu ramdisks; an image has 1 to %zu", p->n_ramdisks,
		    sizeof(p->ramdisks) / sizeof(p->ramdisks[0]));
	if ((p->sign_key == NULL) != (p->sign_cert_pem == NULL))
		return ward_errf(WARD_EUSAGE,
		    "signing needs both a private key and its certificate");
	if (p->metadata_json == NULL)
		return ward_errf(WARD_EUSAGE, "an EIF v4 needs its metadata");
	mlen = strlen(p->metadata_json);
	if (mlen > WARD_EIF_METADATA_MAX)
		return ward_errf(WARD_ELIMIT,
		    "metadata of %zu bytes; the limit is %d", mlen,
		    WARD_EIF_METADATA_MAX);
	if ((r = check_metadata(
	         (const uint8_t *)p->metadata_json, mlen, "the image")) != 0)
		return r;
	/* The cmdline is small and read whole: it goes into the image
	 * unchanged (a CString without its NUL, nitro.md §1.3). */
	if (p->cmdline.path != NULL) {
		if ((r = ward_read_file(
		         p->cmdline.path, WARD_EIF_CMDLINE_MAX, cmdline)) != 0)
			return r;
		cmdline->secret = false;
	} else {
		if (p->cmdline.p == NULL && p->cmdline.len != 0)
			return ward_errf(WARD_EUSAGE,
			    "the cmdline: %zu bytes at NULL", p->cmdline.len);
		if (p->cmdline.len > WARD_EIF_CMDLINE_MAX)
			return ward_errf(WARD_ELIMIT,
			    "a cmdline of %zu bytes; the limit is %d",
			    p->cmdline.len, WARD_EIF_CMDLINE_MAX);
		if (p->cmdline.len > 0 &&
		    (r = ward_buf_append(
		         cmdline, p->cmdline.p, p->cmdline.len)) != 0)
			return r;
	}
	if (cmdline->len > 0 && memchr(cmdline->p, 0, cmdline->len) != NULL)
		return ward_errf(WARD_EUSAGE,
		    "the cmdline contains a NUL byte (nitro-cli stores a C "
		    "string)");
	/* A key that cannot sign (not P-384, not the certificate's) is
	 * refused now, not after the ramdisks have been streamed: one
	 * signature over a zero PCR0, thrown away. */
	if (p->sign_key != NULL) {
		static const uint8_t zero[WARD_PCR_LEN];
		struct ward_buf trial = {0};

		r = ward_eif_signature_encode(p->sign_key, p->sign_cert_pem,
		    p->sign_cert_pem_len, zero, &trial);
		ward_buf_free(&trial);
		if (r != 0)
			return r;
	}
	return 0;
}

/* The header as EifBuilder writes it (nitro.md §1.1), but for the CRC;
 * reserved, unused and the table past num_sections stay zero. */
static void
put_header(uint8_t h[WARD_EIF_HEADER_LEN], const struct ward_eif_image *img)
{
	memset(h, 0, WARD_EIF_HEADER_LEN);
	memcpy(h + H_MAGIC, eif_magic, sizeof(eif_magic));
	ward_store16(h + H_VERSION, img->version);
	ward_store16(h + H_FLAGS, img->flags);
	ward_store64(h + H_DEFAULT_MEM, img->default_mem);
	ward_store64(h + H_DEFAULT_CPUS, img->default_cpus);
	ward_store16(h + H_NUM_SECTIONS, (uint16_t)img->num_sections);
	for (size_t i = 0; i < img->num_sections; i++) {
		ward_store64(
		    h + H_SECTION_OFFSETS + 8 * i, img->sections[i].offset);
		ward_store64(
		    h + H_SECTION_SIZES + 8 * i, img->sections[i].size);
	}
}

/*
 * The order of work: parameters checked (and a signing key tried) and
 * every part file opened and sized; a placeholder header; each section
 * streamed once into the file, the CRC and the PCR hashers; the signature
 * section, which signs PCR0 and so can only now be encoded (its size
 * depends on the signature bytes: every byte is a CBOR uint of one or two
 * bytes); then the header with its CRC, joined from the header's and the
 * sections' CRCs, written at offset 0; then the commit.
 */
int
ward_eif_write(const struct ward_eif_params *p, const char *path,
    bool overwrite, struct ward_eif_image *out, struct ward_progress *progress)
{
	struct src src[WARD_EIF_MAX_SECTIONS];
	struct ward_eif_image img;
	struct ward_atomic a = {.fd = -1};
	struct wr w = {0};
	struct meas m;
	struct ward_buf cmdline = {0}, sig = {0};
	uint8_t h[WARD_EIF_HEADER_LEN], *buf = NULL;
	size_t n = 0, ramdisks = 0;
	uint64_t off = WARD_EIF_HEADER_LEN;
	bool opened = false;
	char label[32];
	int r;

	if (out != NULL)
		memset(out, 0, sizeof(*out));
	memset(&img, 0, sizeof(img));
	for (size_t i = 0; i < WARD_EIF_MAX_SECTIONS; i++)
		src[i].fd = -1;
	if ((r = meas_init(&m, true)) != 0 ||
	    (r = check_params(p, &cmdline)) != 0)
		goto out;
	/* Every size is known before the first byte is written. */
	if ((r = src_open(
	         &src[n++], WARD_EIF_SEC_KERNEL, "kernel", &p->kernel)) != 0 ||
	    (r = src_open(&src[n++], WARD_EIF_SEC_CMDLINE, "cmdline",
	         &(struct ward_eif_part){NULL, cmdline.p, cmdline.len})) != 0 ||
	    (r = src_open(&src[n++], WARD_EIF_SEC_METADATA, "metadata",
	         &(struct ward_eif_part){NULL,
	             (const uint8_t *)p->metadata_json,
	             strlen(p->metadata_json)})) != 0)
		goto out;
	for (size_t i = 0; i < p->n_ramdisks; i++) {
		snprintf(label, sizeof(label), "ramdisk %zu", i + 1);
		if ((r = src_open(&src[n++], WARD_EIF_SEC_RAMDISK, label,
		         &p->ramdisks[i])) != 0)
			goto out;
	}
	for (size_t i = 0; i < n; i++) {
		img.sections[i] =
		    (struct ward_eif_section){src[i].type, 0, off, src[i].size};
		if (src[i].size >
		    UINT64_MAX - off - WARD_EIF_SECTION_HEADER_LEN) {
			r = ward_errf(WARD_ELIMIT, "the image is too large");
			goto out;
		}
		off += WARD_EIF_SECTION_HEADER_LEN + src[i].size;
	}
	if ((buf = malloc(EIF_BUF)) == NULL) {
		r = ward_enomem();
		goto out;
	}
	if ((r = ward_atomic_open(&a, path, 0644, overwrite)) != 0)
		goto out;
	opened = true;
	w.out = (struct ward_fd_stream){.fd = a.fd, .name = path};
	w.progress = progress;
	/* Room for the header, written last (it needs the CRC and the
	 * signature section's size). */
	memset(h, 0, sizeof(h));
	if ((r = ward_fd_write(&w.out, h, sizeof(h))) != 0)
		goto out;
	if (progress != NULL)
		ward_progress_add(progress, sizeof(h));
	for (size_t i = 0; i < n; i++) {
		if ((r = wr_section_header(&w, src[i].type, src[i].size)) !=
		        0 ||
		    (r = src_copy(&src[i], &w, &m, ramdisks, buf, EIF_BUF)) !=
		        0)
			goto out;
		if (src[i].type == WARD_EIF_SEC_RAMDISK)
			ramdisks++;
		src_close(&src[i]);
	}
	if ((r = meas_final(&m, &img)) != 0)
		goto out;
	/* The signature signs PCR0, known only now. */
	if (p->sign_key != NULL) {
		if ((r = ward_eif_signature_encode(p->sign_key,
		         p->sign_cert_pem, p->sign_cert_pem_len, img.pcr0,
		         &sig)) != 0 ||
		    (r = ward_buf_append(&img.signing_cert_pem,
		         p->sign_cert_pem, p->sign_cert_pem_len)) != 0 ||
		    (r = pcr8_of_pem(&img.signing_cert_pem, img.pcr8)) != 0)
			goto out;
		img.sections[n++] = (struct ward_eif_section){
		    WARD_EIF_SEC_SIGNATURE, 0, off, sig.len};
		off += WARD_EIF_SECTION_HEADER_LEN + sig.len;
		if ((r = wr_section_header(
		         &w, WARD_EIF_SEC_SIGNATURE, sig.len)) != 0 ||
		    (r = wr_put(&w, sig.p, sig.len)) != 0)
			goto out;
		img.is_signed = true;
		img.signature_ok = true;
	}
	img.version = WARD_EIF_VERSION;
	img.flags = p->flags;
	img.default_mem =
	    p->default_mem != 0 ? p->default_mem : WARD_EIF_DEFAULT_MEM;
	img.default_cpus =
	    p->default_cpus != 0 ? p->default_cpus : WARD_EIF_DEFAULT_CPUS;
	img.num_sections = n;
	img.file_size = off;
	put_header(h, &img);
	img.crc_computed = img.crc_header =
	    crc_combine(ward_eif_crc32(0, h, H_CRC), w.crc, w.len);
	ward_store32(h + H_CRC, img.crc_header);
	if ((r = pwrite_all(a.fd, h, sizeof(h), 0, path)) != 0)
		goto out;
	if (out != NULL &&
	    (r = ward_buf_append(&img.metadata, p->metadata_json,
	         strlen(p->metadata_json))) != 0)
		goto out;
	opened = false;
	if ((r = ward_atomic_commit(&a)) != 0)
		goto out;
	if (out != NULL) {
		img.cmdline = cmdline;
		cmdline = (struct ward_buf){0};
		img.signature = sig;
		sig = (struct ward_buf){0};
		*out = img;
		memset(&img, 0, sizeof(img));
	}
out:
	if (opened)
		ward_atomic_abort(&a);
	for (size_t i = 0; i < WARD_EIF_MAX_SECTIONS; i++)
		src_close(&src[i]);
	ward_eif_image_free(&img);
	ward_buf_free(&cmdline);
	ward_buf_free(&sig);
	meas_free(&m);
	free(buf);
	return r;
}
