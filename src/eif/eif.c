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
 * with crc32_combine.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
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

/* CRC-32/ISO-HDLC (nitro.md §1.4): reflected polynomial 0xEDB88320, the
 * table of x^8·n mod p(x) for each byte value n. */
#define CRC_POLY 0xedb88320u
static const uint32_t crc_table[256] = {0x00000000, 0x77073096, 0xee0e612c,
    0x990951ba, 0x076dc419, 0x706af48f, 0xe963a535, 0x9e6495a3, 0x0edb8832,
    0x79dcb8a4, 0xe0d5e91e, 0x97d2d988, 0x09b64c2b, 0x7eb17cbd, 0xe7b82d07,
    0x90bf1d91, 0x1db71064, 0x6ab020f2, 0xf3b97148, 0x84be41de, 0x1adad47d,
    0x6ddde4eb, 0xf4d4b551, 0x83d385c7, 0x136c9856, 0x646ba8c0, 0xfd62f97a,
    0x8a65c9ec, 0x14015c4f, 0x63066cd9, 0xfa0f3d63, 0x8d080df5, 0x3b6e20c8,
    0x4c69105e, 0xd56041e4, 0xa2677172, 0x3c03e4d1, 0x4b04d447, 0xd20d85fd,
    0xa50ab56b, 0x35b5a8fa, 0x42b2986c, 0xdbbbc9d6, 0xacbcf940, 0x32d86ce3,
    0x45df5c75, 0xdcd60dcf, 0xabd13d59, 0x26d930ac, 0x51de003a, 0xc8d75180,
    0xbfd06116, 0x21b4f4b5, 0x56b3c423, 0xcfba9599, 0xb8bda50f, 0x2802b89e,
    0x5f058808, 0xc60cd9b2, 0xb10be924, 0x2f6f7c87, 0x58684c11, 0xc1611dab,
    0xb6662d3d, 0x76dc4190, 0x01db7106, 0x98d220bc, 0xefd5102a, 0x71b18589,
    0x06b6b51f, 0x9fbfe4a5, 0xe8b8d433, 0x7807c9a2, 0x0f00f934, 0x9609a88e,
    0xe10e9818, 0x7f6a0dbb, 0x086d3d2d, 0x91646c97, 0xe6635c01, 0x6b6b51f4,
    0x1c6c6162, 0x856530d8, 0xf262004e, 0x6c0695ed, 0x1b01a57b, 0x8208f4c1,
    0xf50fc457, 0x65b0d9c6, 0x12b7e950, 0x8bbeb8ea, 0xfcb9887c, 0x62dd1ddf,
    0x15da2d49, 0x8cd37cf3, 0xfbd44c65, 0x4db26158, 0x3ab551ce, 0xa3bc0074,
    0xd4bb30e2, 0x4adfa541, 0x3dd895d7, 0xa4d1c46d, 0xd3d6f4fb, 0x4369e96a,
    0x346ed9fc, 0xad678846, 0xda60b8d0, 0x44042d73, 0x33031de5, 0xaa0a4c5f,
    0xdd0d7cc9, 0x5005713c, 0x270241aa, 0xbe0b1010, 0xc90c2086, 0x5768b525,
    0x206f85b3, 0xb966d409, 0xce61e49f, 0x5edef90e, 0x29d9c998, 0xb0d09822,
    0xc7d7a8b4, 0x59b33d17, 0x2eb40d81, 0xb7bd5c3b, 0xc0ba6cad, 0xedb88320,
    0x9abfb3b6, 0x03b6e20c, 0x74b1d29a, 0xead54739, 0x9dd277af, 0x04db2615,
    0x73dc1683, 0xe3630b12, 0x94643b84, 0x0d6d6a3e, 0x7a6a5aa8, 0xe40ecf0b,
    0x9309ff9d, 0x0a00ae27, 0x7d079eb1, 0xf00f9344, 0x8708a3d2, 0x1e01f268,
    0x6906c2fe, 0xf762575d, 0x806567cb, 0x196c3671, 0x6e6b06e7, 0xfed41b76,
    0x89d32be0, 0x10da7a5a, 0x67dd4acc, 0xf9b9df6f, 0x8ebeeff9, 0x17b7be43,
    0x60b08ed5, 0xd6d6a3e8, 0xa1d1937e, 0x38d8c2c4, 0x4fdff252, 0xd1bb67f1,
    0xa6bc5767, 0x3fb506dd, 0x48b2364b, 0xd80d2bda, 0xaf0a1b4c, 0x36034af6,
    0x41047a60, 0xdf60efc3, 0xa867df55, 0x316e8eef, 0x4669be79, 0xcb61b38c,
    0xbc66831a, 0x256fd2a0, 0x5268e236, 0xcc0c7795, 0xbb0b4703, 0x220216b9,
    0x5505262f, 0xc5ba3bbe, 0xb2bd0b28, 0x2bb45a92, 0x5cb36a04, 0xc2d7ffa7,
    0xb5d0cf31, 0x2cd99e8b, 0x5bdeae1d, 0x9b64c2b0, 0xec63f226, 0x756aa39c,
    0x026d930a, 0x9c0906a9, 0xeb0e363f, 0x72076785, 0x05005713, 0x95bf4a82,
    0xe2b87a14, 0x7bb12bae, 0x0cb61b38, 0x92d28e9b, 0xe5d5be0d, 0x7cdcefb7,
    0x0bdbdf21, 0x86d3d2d4, 0xf1d4e242, 0x68ddb3f8, 0x1fda836e, 0x81be16cd,
    0xf6b9265b, 0x6fb077e1, 0x18b74777, 0x88085ae6, 0xff0f6a70, 0x66063bca,
    0x11010b5c, 0x8f659eff, 0xf862ae69, 0x616bffd3, 0x166ccf45, 0xa00ae278,
    0xd70dd2ee, 0x4e048354, 0x3903b3c2, 0xa7672661, 0xd06016f7, 0x4969474d,
    0x3e6e77db, 0xaed16a4a, 0xd9d65adc, 0x40df0b66, 0x37d83bf0, 0xa9bcae53,
    0xdebb9ec5, 0x47b2cf7f, 0x30b5ffe9, 0xbdbdf21c, 0xcabac28a, 0x53b39330,
    0x24b4a3a6, 0xbad03605, 0xcdd70693, 0x54de5729, 0x23d967bf, 0xb3667a2e,
    0xc4614ab8, 0x5d681b02, 0x2a6f2b94, 0xb40bbe37, 0xc30c8ea1, 0x5a05df1b,
    0x2d02ef8d};

uint32_t
ward_eif_crc32(uint32_t crc, const uint8_t *p, size_t n)
{
	crc = ~crc;
	for (size_t i = 0; i < n; i++)
		crc = crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
	return ~crc;
}

/* a(x)·b(x) mod p(x), bits reflected (x^0 is the top bit); a != 0. */
static uint32_t
multmodp(uint32_t a, uint32_t b)
{
	uint32_t m = 1u << 31, p = 0;

	for (;;) {
		if (a & m) {
			p ^= b;
			if ((a & (m - 1)) == 0)
				break;
		}
		m >>= 1;
		b = b & 1 ? (b >> 1) ^ CRC_POLY : b >> 1;
	}
	return p;
}

/* CRC(A || B) from CRC(A), CRC(B) and the length of B: zlib's
 * crc32_combine, which shifts CRC(A) over len2 zero bytes by multiplying
 * with x^(8·len2) mod p(x). */
static uint32_t
crc32_combine(uint32_t crc1, uint32_t crc2, uint64_t len2)
{
	uint32_t x2n[32], p = 1u << 30, xp = 1u << 31; /* x^1, x^0 */
	unsigned k = 3; /* x^(2^3) = x^8: one byte */

	x2n[0] = p;
	for (int i = 1; i < 32; i++)
		x2n[i] = p = multmodp(p, p); /* x^(2^i) */
	for (; len2 != 0; len2 >>= 1, k++)
		if (len2 & 1)
			xp = multmodp(x2n[k & 31], xp);
	return multmodp(xp, crc1) ^ crc2;
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
struct meas {
	struct ward_pcr pcr0, pcr1, pcr2;
};

static int
meas_init(struct meas *m)
{
	int r;

	memset(m, 0, sizeof(*m));
	if ((r = ward_pcr_init(&m->pcr0)) != 0 ||
	    (r = ward_pcr_init(&m->pcr1)) != 0 ||
	    (r = ward_pcr_init(&m->pcr2)) != 0)
		return r;
	return 0;
}

static void
meas_free(struct meas *m)
{
	ward_pcr_free(&m->pcr0);
	ward_pcr_free(&m->pcr1);
	ward_pcr_free(&m->pcr2);
}

static int
measure(struct meas *m, enum ward_eif_section_type t, size_t ramdisk,
    const uint8_t *p, size_t n)
{
	int r;

	if (t != WARD_EIF_SEC_KERNEL && t != WARD_EIF_SEC_CMDLINE &&
	    t != WARD_EIF_SEC_RAMDISK)
		return 0;
	if ((r = ward_pcr_update(&m->pcr0, p, n)) != 0)
		return r;
	if (t == WARD_EIF_SEC_RAMDISK && ramdisk > 0)
		return ward_pcr_update(&m->pcr2, p, n);
	return ward_pcr_update(&m->pcr1, p, n);
}

static int
meas_final(struct meas *m, struct ward_eif_image *img)
{
	int r;

	if ((r = ward_pcr_final(&m->pcr0, img->pcr0)) != 0 ||
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
	BIO *bio = NULL;
	X509 *x = NULL;
	uint8_t *der = NULL;
	int len, r;

	if (pem->len == 0 || pem->len > WARD_EIF_SIGNATURE_MAX)
		return ward_errf(
		    WARD_EFORMAT, "signing certificate of %zu bytes", pem->len);
	if ((bio = BIO_new_mem_buf(pem->p, (int)pem->len)) == NULL)
		return ward_enomem();
	if ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) == NULL) {
		ERR_clear_error();
		r = ward_errf(
		    WARD_EFORMAT, "the signing certificate is not PEM");
		goto out;
	}
	if ((len = i2d_X509(x, &der)) <= 0) {
		r = ward_crypto_err(WARD_ECRYPTO, "certificate encoding");
		goto out;
	}
	if ((r = ward_pcr_init(&h)) == 0 &&
	    (r = ward_pcr_update(&h, der, (size_t)len)) == 0)
		r = ward_pcr_final(&h, out);
out:
	ward_pcr_free(&h);
	OPENSSL_free(der);
	X509_free(x);
	BIO_free(bio);
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

/* Section i: its header checked against the order nitro-cli writes, the
 * section table and the size limits, then its data streamed through buf
 * into the CRC and the PCRs, and kept if it is one of the small ones. */
static int
read_section(struct rd *s, const uint8_t *h, size_t i,
    struct ward_eif_image *img, struct meas *m, size_t ramdisks, uint32_t *crc,
    uint8_t *buf, size_t bufsize)
{
	struct ward_eif_section *sec = &img->sections[i];
	uint8_t sh[WARD_EIF_SECTION_HEADER_LEN];
	struct ward_buf *keep = NULL;
	uint64_t table_size = ward_load64(h + H_SECTION_SIZES + 8 * i);
	const char *want;
	uint16_t type;
	int r;

	sec->offset = s->pos;
	if ((r = rd_exact(s, sh, sizeof(sh), "section header")) != 0)
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
	if ((r = section_limit(sec->type, sec->size, s->name, i)) != 0)
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
		    (r = measure(m, sec->type, ramdisks, buf, n)) != 0)
			return r;
		*crc = ward_eif_crc32(*crc, buf, n);
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
	if ((r = meas_init(&m)) != 0 ||
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
	img.crc_computed = crc;
	if ((r = meas_final(&m, &img)) != 0 ||
	    (r = check_metadata(img.metadata.p, img.metadata.len, name)) != 0)
		goto out;
	if (img.sections[img.num_sections - 1].type == WARD_EIF_SEC_SIGNATURE) {
		img.is_signed = true;
		if ((r = ward_eif_signature_check(img.signature.p,
		         img.signature.len, img.pcr0, time(NULL),
		         &img.signing_cert_pem, &img.signature_ok)) != 0 ||
		    (r = pcr8_of_pem(&img.signing_cert_pem, img.pcr8)) != 0) {
			r = ward_err_prefix(r, "%s", name);
			goto out;
		}
	}
	*out = img;
	memset(&img, 0, sizeof(img));
out:
	ward_eif_image_free(&img);
	meas_free(&m);
	free(buf);
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
		if ((r = measure(m, s->type, ramdisk, s->p, s->size)) != 0)
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
		if ((r = measure(m, s->type, ramdisk, buf, got)) != 0 ||
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
	if ((r = meas_init(&m)) != 0 || (r = check_params(p, &cmdline)) != 0)
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
	    crc32_combine(ward_eif_crc32(0, h, H_CRC), w.crc, w.len);
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
