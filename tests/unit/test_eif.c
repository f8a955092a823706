/* eif: measurements (the nitro.md Appendix C known answers), the CRC, the
 * EIF v4 reader against the synthetic fixture (every byte, every
 * truncation, every structural rule), the writer reproducing the fixture
 * byte for byte, signed images and the signature section's decoder,
 * large images streamed from files, and failed writes leaving nothing. */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "ward/attest.h"
#include "ward/eif.h"

#define FIXTURE "eif/synthetic-v4.eif"
#define FIXTURE_LEN 925
#define FIXTURE_SHA256                                                         \
	"21d2d932ccdd5d1dfac51007574c63b0dedda6a734579f4527ebac6d3f0a93e3"
#define FIXTURE_CRC 0xF395D728u
#define FIXTURE_PCR0                                                           \
	"46157d09a427ebd1a54efc5630e3f089bf6e95041f8f592f3108c56699451b8ac6"   \
	"9c6caac4faa71fca37d9e3757b232e"
#define FIXTURE_PCR1                                                           \
	"5ea395796f0d045aed0d73c4d613adc383fb47ee7d3919d7bf5bc61f953b7eb023"   \
	"54332c0c7bdb1c663638fb2cb1065b"
#define FIXTURE_PCR2                                                           \
	"57c908f2faaef8a69f9318beb295f1ee46f58603c808c3b1ef4609e003f82e7f81"   \
	"5c0ab813a477fac470e9abb4ac8a4d"
#define HELLO_PCR                                                              \
	"1d9b87caf048435fc39a4a0a8e4e864af9c9a584b3a3b436193bb8b6012569808"    \
	"9f57479f370637f16fcce8a1852d1bc"
#define AWS_ROOT_PCR8                                                          \
	"df3a0511a411c6a5628d91a189a052d281dec8153ffecde6bdc1a059825c32e4bf"   \
	"b7fc95b367564a64812a8795af8f8a"
#define EMPTY_PCR                                                              \
	"21b9efbc184807662e966d34f390821309eeac6802309798826296bf3e8bec7c10"   \
	"edb30948c90ba67310f7b964fc500a"

static const char kernel[] = "KERNEL-IMAGE-TEST-VECTOR";
static const char cmdline[] = "console=ttyS0 reboot=k";
static const char metadata[] =
    "{\"ImageName\":\"test\",\"ImageVersion\":\"1.0\",\"BuildMetadata\":{"
    "\"BuildTime\":\"2024-01-01T00:00:00+00:00\",\"BuildTool\":\"eif_build\","
    "\"BuildToolVersion\":\"0.2.0\",\"OperatingSystem\":\"OS\","
    "\"KernelVersion\":\"kernel\"},\"DockerInfo\":null,\"CustomMetadata\":"
    "null}";
static const char bootstrap[] = "BOOTSTRAP-RAMDISK";
static const char customer[] = "CUSTOMER-RAMDISK";

static void
hexeq(const uint8_t *p, size_t n, const char *hex)
{
	char *s = malloc(ward_hex_len(n) + 1);

	assert_non_null(s);
	ward_hex_encode(p, n, s);
	assert_string_equal(s, hex);
	free(s);
}

static void
sha256eq(const uint8_t *p, size_t n, const char *hex)
{
	uint8_t md[32];
	unsigned int len;

	assert_int_equal(EVP_Digest(p, n, md, &len, EVP_sha256(), NULL), 1);
	hexeq(md, sizeof(md), hex);
}

static void
pcr_of(const void *p, size_t n, uint8_t out[WARD_PCR_LEN])
{
	struct ward_pcr h = {0};

	ASSERT_OK(ward_pcr_init(&h));
	ASSERT_OK(ward_pcr_update(&h, p, n));
	ASSERT_OK(ward_pcr_final(&h, out));
	ward_pcr_free(&h);
}

static char *
path_in(const char *dir, const char *name)
{
	char *p;

	if (asprintf(&p, "%s/%s", dir, name) < 0)
		fail_msg("asprintf");
	return p;
}

/* The Appendix C inputs, from memory. */
static struct ward_eif_params
fixture_params(void)
{
	struct ward_eif_params p = {0};

	p.kernel.p = (const uint8_t *)kernel;
	p.kernel.len = strlen(kernel);
	p.cmdline.p = (const uint8_t *)cmdline;
	p.cmdline.len = strlen(cmdline);
	p.metadata_json = metadata;
	p.ramdisks[0].p = (const uint8_t *)bootstrap;
	p.ramdisks[0].len = strlen(bootstrap);
	p.ramdisks[1].p = (const uint8_t *)customer;
	p.ramdisks[1].len = strlen(customer);
	p.n_ramdisks = 2;
	p.flags = 0;
	p.default_mem = 0x40000000;
	p.default_cpus = 2;
	return p;
}

static void
same_buf(const struct ward_buf *a, const struct ward_buf *b)
{
	assert_int_equal(a->len, b->len);
	if (a->len > 0)
		assert_memory_equal(a->p, b->p, a->len);
}

/* Read an image held in memory, handed out chunk bytes at a time. The
 * in-memory reader must decide the same (the same error code, or the same
 * image to the byte), and every image the reader accepts, ward_eif_layout
 * accepts too and lays out the same (the enclave runtime unpacks by the
 * layout while it measures with ward_eif_read_mem). */
static int
read_mem(const uint8_t *p, size_t n, size_t chunk, struct ward_eif_image *img)
{
	struct ward_mem_reader m = {.p = p, .len = n, .chunk = chunk};
	struct ward_eif_image lay, mem;
	int r = ward_eif_read_stream(ward_mem_read, &m, n, "image", img, NULL);
	int rm = ward_eif_read_mem(p, n, "image", &mem);

	assert_int_equal(rm, r);
	if (r == 0) {
		ASSERT_OK(ward_eif_layout(p, n, "image", &lay));
		assert_int_equal(lay.num_sections, img->num_sections);
		assert_int_equal(lay.file_size, n);
		assert_memory_equal(lay.sections, img->sections,
		    sizeof(lay.sections[0]) * lay.num_sections);
		assert_int_equal(mem.num_sections, img->num_sections);
		assert_memory_equal(mem.sections, img->sections,
		    sizeof(mem.sections[0]) * mem.num_sections);
		assert_int_equal(mem.crc_header, img->crc_header);
		assert_int_equal(mem.crc_computed, img->crc_computed);
		assert_memory_equal(mem.pcr0, img->pcr0, WARD_PCR_LEN);
		assert_memory_equal(mem.pcr1, img->pcr1, WARD_PCR_LEN);
		assert_memory_equal(mem.pcr2, img->pcr2, WARD_PCR_LEN);
		assert_memory_equal(mem.pcr8, img->pcr8, WARD_PCR_LEN);
		assert_int_equal(mem.is_signed, img->is_signed);
		assert_int_equal(mem.signature_ok, img->signature_ok);
		assert_int_equal(mem.version, img->version);
		assert_int_equal(mem.flags, img->flags);
		assert_int_equal(mem.default_mem, img->default_mem);
		assert_int_equal(mem.default_cpus, img->default_cpus);
		assert_int_equal(mem.file_size, img->file_size);
		same_buf(&mem.cmdline, &img->cmdline);
		same_buf(&mem.metadata, &img->metadata);
		same_buf(&mem.signature, &img->signature);
		same_buf(&mem.signing_cert_pem, &img->signing_cert_pem);
		ward_eif_image_free(&mem);
	}
	return r;
}

/* CRC over everything but the header's own CRC field (nitro.md §1.4). */
static uint32_t
crc_of(const uint8_t *p, size_t n)
{
	return ward_eif_crc32(ward_eif_crc32(0, p, 544), p + 548, n - 548);
}

static void
fix_crc(uint8_t *p, size_t n)
{
	ward_store32(p + 544, crc_of(p, n));
}

/* An image of arbitrary sections with a consistent table and CRC, for the
 * structural rules the writer never breaks. */
struct sec {
	uint16_t type;
	const void *p;
	size_t n;
};
#define K(s)                                                                   \
	{                                                                      \
		WARD_EIF_SEC_KERNEL, s, strlen(s)                              \
	}
#define C(s)                                                                   \
	{                                                                      \
		WARD_EIF_SEC_CMDLINE, s, strlen(s)                             \
	}
#define M(s)                                                                   \
	{                                                                      \
		WARD_EIF_SEC_METADATA, s, strlen(s)                            \
	}
#define R(s)                                                                   \
	{                                                                      \
		WARD_EIF_SEC_RAMDISK, s, strlen(s)                             \
	}

static void
mk_eif(const struct sec *s, size_t n, struct ward_buf *out)
{
	uint8_t h[WARD_EIF_HEADER_LEN] = {0};
	uint64_t off = WARD_EIF_HEADER_LEN;

	out->len = 0;
	memcpy(h, ".eif", 4);
	ward_store16(h + 4, 4);
	ward_store64(h + 8, 0x40000000);
	ward_store64(h + 16, 2);
	ward_store16(h + 26, (uint16_t)n);
	for (size_t i = 0; i < n; i++) {
		ward_store64(h + 28 + 8 * i, off);
		ward_store64(h + 284 + 8 * i, s[i].n);
		off += 12 + s[i].n;
	}
	ASSERT_OK(ward_buf_append(out, h, sizeof(h)));
	for (size_t i = 0; i < n; i++) {
		uint8_t sh[12];

		ward_store16(sh, s[i].type);
		ward_store16(sh + 2, 0);
		ward_store64(sh + 4, s[i].n);
		ASSERT_OK(ward_buf_append(out, sh, sizeof(sh)));
		ASSERT_OK(ward_buf_append(out, s[i].p, s[i].n));
	}
	fix_crc(out->p, out->len);
}

/* The fixture as the writer makes it (test_fixture_write proves it is the
 * fixture, byte for byte), so the structural tests run without it. */
static uint8_t *
fixture_bytes(const char *dir, size_t *n)
{
	struct ward_eif_params p = fixture_params();
	char *path = path_in(dir, "fixture.eif");
	uint8_t *b;

	ASSERT_OK(ward_eif_write(&p, path, true, NULL, NULL));
	assert_non_null(b = tu_read_file(path, n));
	assert_int_equal(*n, FIXTURE_LEN);
	unlink(path);
	free(path);
	return b;
}

static void
check_fixture_image(const struct ward_eif_image *img)
{
	static const uint64_t offsets[] = {548, 584, 618, 868, 897};
	static const uint64_t sizes[] = {24, 22, 238, 17, 16};
	static const enum ward_eif_section_type types[] = {WARD_EIF_SEC_KERNEL,
	    WARD_EIF_SEC_CMDLINE, WARD_EIF_SEC_METADATA, WARD_EIF_SEC_RAMDISK,
	    WARD_EIF_SEC_RAMDISK};

	assert_int_equal(img->version, 4);
	assert_int_equal(img->flags, 0);
	assert_int_equal(img->default_mem, 0x40000000);
	assert_int_equal(img->default_cpus, 2);
	assert_int_equal(img->num_sections, 5);
	for (size_t i = 0; i < 5; i++) {
		assert_int_equal(img->sections[i].offset, offsets[i]);
		assert_int_equal(img->sections[i].size, sizes[i]);
		assert_int_equal(img->sections[i].type, types[i]);
		assert_int_equal(img->sections[i].flags, 0);
	}
	assert_int_equal(img->crc_header, FIXTURE_CRC);
	assert_int_equal(img->crc_computed, FIXTURE_CRC);
	hexeq(img->pcr0, WARD_PCR_LEN, FIXTURE_PCR0);
	hexeq(img->pcr1, WARD_PCR_LEN, FIXTURE_PCR1);
	hexeq(img->pcr2, WARD_PCR_LEN, FIXTURE_PCR2);
	assert_false(img->is_signed);
	assert_false(img->signature_ok);
	assert_int_equal(img->cmdline.len, strlen(cmdline));
	assert_memory_equal(img->cmdline.p, cmdline, strlen(cmdline));
	assert_int_equal(img->metadata.len, 238);
	assert_int_equal(strlen(metadata), 238);
	assert_memory_equal(img->metadata.p, metadata, 238);
	assert_int_equal(img->signature.len, 0);
	assert_int_equal(img->file_size, FIXTURE_LEN);
}

/* ---- CRC and PCRs ---- */

static void
test_crc32(void **state)
{
	const uint8_t *check = (const uint8_t *)"123456789";
	uint32_t crc = 0;

	assert_int_equal(ward_eif_crc32(0, check, 9), 0xCBF43926u);
	for (size_t i = 0; i < 9; i++)
		crc = ward_eif_crc32(crc, check + i, 1);
	assert_int_equal(crc, 0xCBF43926u);
	assert_int_equal(ward_eif_crc32(0, NULL, 0), 0);
	assert_int_equal(ward_eif_crc32(0x1234, NULL, 0), 0x1234);
}

static void
test_pcr_kats(void **state)
{
	char *dir = tu_mkdtemp(), *hello = path_in(dir, "hello"),
	     *empty = path_in(dir, "empty"), *pem = path_in(dir, "root.pem"),
	     *der = path_in(dir, "root.der");
	struct ward_bytes root = ward_attest_aws_root();
	struct ward_buf b = {0};
	struct ward_pcr h = {0};
	uint8_t v[WARD_PCR_LEN];

	/* nitro-cli pcr --input of the 5-byte file "hello" */
	pcr_of("hello", 5, v);
	hexeq(v, sizeof(v), HELLO_PCR);
	assert_int_equal(tu_write_file(hello, "hello", 5), 0);
	ASSERT_OK(ward_pcr_file(hello, v));
	hexeq(v, sizeof(v), HELLO_PCR);
	/* fed in pieces */
	ASSERT_OK(ward_pcr_init(&h));
	ASSERT_OK(ward_pcr_update(&h, (const uint8_t *)"he", 2));
	ASSERT_OK(ward_pcr_update(&h, NULL, 0));
	ASSERT_OK(ward_pcr_update(&h, (const uint8_t *)"llo", 3));
	ASSERT_OK(ward_pcr_final(&h, v));
	ward_pcr_free(&h);
	ward_pcr_free(&h); /* idempotent */
	hexeq(v, sizeof(v), HELLO_PCR);
	/* PCR2 of an image with one ramdisk: the empty input */
	pcr_of(NULL, 0, v);
	hexeq(v, sizeof(v), EMPTY_PCR);
	assert_int_equal(tu_write_file(empty, "", 0), 0);
	ASSERT_OK(ward_pcr_file(empty, v));
	hexeq(v, sizeof(v), EMPTY_PCR);
	/* PCR8 with the AWS root as signing certificate, PEM and DER */
	assert_int_equal(root.len, 533);
	pcr_of(root.p, root.len, v);
	hexeq(v, sizeof(v), AWS_ROOT_PCR8);
	ASSERT_OK(ward_x509_pem(root.p, root.len, &b));
	assert_int_equal(tu_write_file(pem, b.p, b.len), 0);
	assert_int_equal(tu_write_file(der, root.p, root.len), 0);
	memset(v, 0, sizeof(v));
	ASSERT_OK(ward_pcr_certificate(pem, v));
	hexeq(v, sizeof(v), AWS_ROOT_PCR8);
	memset(v, 0, sizeof(v));
	ASSERT_OK(ward_pcr_certificate(der, v));
	hexeq(v, sizeof(v), AWS_ROOT_PCR8);
	/* failures */
	ASSERT_ERR(ward_pcr_file("/nonexistent/x", v), WARD_EIO);
	ASSERT_ERR(ward_pcr_certificate(hello, v), WARD_EFORMAT);
	ASSERT_ERR(ward_pcr_certificate("/nonexistent/x", v), WARD_EIO);
	ward_buf_free(&b);
	tu_rmtree(dir);
	free(dir);
	free(hello);
	free(empty);
	free(pem);
	free(der);
}

/* ---- the fixture ---- */

static void
test_fixture_read(void **state)
{
	const char *path = tu_fixtures(FIXTURE);
	struct ward_eif_image img;
	uint8_t *b;
	size_t n;

	if (path == NULL)
		skip();
	ASSERT_OK(ward_eif_read(path, &img, NULL));
	check_fixture_image(&img);
	ward_eif_image_free(&img);
	assert_non_null(b = tu_read_file(path, &n));
	sha256eq(b, n, FIXTURE_SHA256);
	assert_int_equal(crc_of(b, n), FIXTURE_CRC);
	/* the same from a stream handing out 1 and 7 bytes at a time */
	ASSERT_OK(read_mem(b, n, 1, &img));
	check_fixture_image(&img);
	ward_eif_image_free(&img);
	ASSERT_OK(read_mem(b, n, 7, &img));
	check_fixture_image(&img);
	ward_eif_image_free(&img);
	/* with a progress meter that counts every byte */
	struct ward_progress prog;
	ward_progress_init(&prog, "t", n, false);
	ASSERT_OK(ward_eif_read(path, &img, &prog));
	assert_int_equal(prog.done, n);
	ward_eif_image_free(&img);
	free(b);
}

static void
test_fixture_write(void **state)
{
	const char *fixture = tu_fixtures(FIXTURE);
	char *dir = tu_mkdtemp(), *out = path_in(dir, "out.eif"),
	     *out2 = path_in(dir, "out2.eif"), *kp = path_in(dir, "kernel"),
	     *cp = path_in(dir, "cmdline"), *bp = path_in(dir, "bootstrap"),
	     *up = path_in(dir, "customer");
	struct ward_eif_params p = fixture_params();
	struct ward_eif_image img, back;
	struct ward_progress prog;
	uint8_t *b, *f;
	size_t n, fn;

	ward_progress_init(&prog, "t", FIXTURE_LEN, false);
	ASSERT_OK(ward_eif_write(&p, out, false, &img, &prog));
	assert_int_equal(prog.done, FIXTURE_LEN);
	check_fixture_image(&img);
	assert_non_null(b = tu_read_file(out, &n));
	assert_int_equal(n, FIXTURE_LEN);
	sha256eq(b, n, FIXTURE_SHA256);
	if (fixture != NULL) {
		assert_non_null(f = tu_read_file(fixture, &fn));
		assert_int_equal(fn, n);
		assert_memory_equal(f, b, n);
		free(f);
	}
	ASSERT_OK(ward_eif_read(out, &back, NULL));
	check_fixture_image(&back);
	ward_eif_image_free(&back);
	ward_eif_image_free(&img);
	/* the same inputs from files */
	assert_int_equal(tu_write_file(kp, kernel, strlen(kernel)), 0);
	assert_int_equal(tu_write_file(cp, cmdline, strlen(cmdline)), 0);
	assert_int_equal(tu_write_file(bp, bootstrap, strlen(bootstrap)), 0);
	assert_int_equal(tu_write_file(up, customer, strlen(customer)), 0);
	p.kernel = (struct ward_eif_part){kp, NULL, 0};
	p.cmdline = (struct ward_eif_part){cp, NULL, 0};
	p.ramdisks[0] = (struct ward_eif_part){bp, NULL, 0};
	p.ramdisks[1] = (struct ward_eif_part){up, NULL, 0};
	ASSERT_OK(ward_eif_write(&p, out2, false, &img, NULL));
	check_fixture_image(&img);
	ward_eif_image_free(&img);
	free(b);
	assert_non_null(b = tu_read_file(out2, &n));
	sha256eq(b, n, FIXTURE_SHA256);
	/* an existing output is kept unless overwriting is asked for */
	ASSERT_ERR(ward_eif_write(&p, out2, false, NULL, NULL), WARD_EEXIST);
	ASSERT_OK(ward_eif_write(&p, out2, true, NULL, NULL));
	/* defaults: 0 means 1 GiB and 2 CPUs, as the builder's defaults */
	p.default_mem = p.default_cpus = 0;
	ASSERT_OK(ward_eif_write(&p, out2, true, &img, NULL));
	assert_int_equal(img.default_mem, WARD_EIF_DEFAULT_MEM);
	assert_int_equal(img.default_cpus, WARD_EIF_DEFAULT_CPUS);
	assert_int_equal(img.crc_computed, FIXTURE_CRC);
	ward_eif_image_free(&img);
	/* arm64 flag */
	p.flags = WARD_EIF_ARCH_ARM64;
	ASSERT_OK(ward_eif_write(&p, out2, true, NULL, NULL));
	ASSERT_OK(ward_eif_read(out2, &img, NULL));
	assert_int_equal(img.flags, WARD_EIF_ARCH_ARM64);
	assert_int_equal(img.crc_header, img.crc_computed);
	assert_int_not_equal(img.crc_header, FIXTURE_CRC);
	hexeq(img.pcr0, WARD_PCR_LEN, FIXTURE_PCR0);
	ward_eif_image_free(&img);
	free(b);
	tu_rmtree(dir);
	free(dir);
	free(out);
	free(out2);
	free(kp);
	free(cp);
	free(bp);
	free(up);
}

/* Every single-byte change is refused as malformed, or shows as a CRC
 * mismatch or a different measurement: nothing slips through. */
static void
test_every_byte(void **state)
{
	char *dir = tu_mkdtemp();
	size_t n, refused = 0, crc = 0;
	uint8_t *b = fixture_bytes(dir, &n), *c = malloc(n);
	uint8_t pcr0[WARD_PCR_LEN], pcr1[WARD_PCR_LEN], pcr2[WARD_PCR_LEN];
	struct ward_eif_image img;

	assert_non_null(c);
	ASSERT_OK(read_mem(b, n, 0, &img));
	memcpy(pcr0, img.pcr0, sizeof(pcr0));
	memcpy(pcr1, img.pcr1, sizeof(pcr1));
	memcpy(pcr2, img.pcr2, sizeof(pcr2));
	ward_eif_image_free(&img);
	for (size_t i = 0; i < n; i++) {
		for (unsigned d = 1; d < 256; d++) {
			int r;

			memcpy(c, b, n);
			c[i] ^= (uint8_t)d;
			r = read_mem(c, n, 0, &img);
			if (r != 0) {
				refused++;
				continue;
			}
			if (img.crc_header == img.crc_computed &&
			    memcmp(img.pcr0, pcr0, sizeof(pcr0)) == 0 &&
			    memcmp(img.pcr1, pcr1, sizeof(pcr1)) == 0 &&
			    memcmp(img.pcr2, pcr2, sizeof(pcr2)) == 0)
				fail_msg(
				    "byte %zu ^ 0x%02x went unnoticed", i, d);
			crc++;
			ward_eif_image_free(&img);
		}
	}
	printf("every byte: %zu changes refused, %zu seen as CRC/PCR "
	       "mismatches\n",
	    refused, crc);
	assert_int_equal(refused + crc, n * 255);
	free(b);
	free(c);
	tu_rmtree(dir);
	free(dir);
}

static void
test_truncations(void **state)
{
	char *dir = tu_mkdtemp(), *path = path_in(dir, "t.eif");
	size_t n;
	uint8_t *b = fixture_bytes(dir, &n), *c = malloc(n + 1);
	struct ward_eif_image img;
	struct ward_mem_reader m;

	assert_non_null(c);
	for (size_t len = 0; len < n; len++) {
		ASSERT_ERR(read_mem(b, len, 0, &img), WARD_EFORMAT);
		ASSERT_ERR(ward_eif_layout(b, len, "t", &img), WARD_EFORMAT);
	}
	for (size_t len = 0; len < n; len += 97) {
		assert_int_equal(tu_write_file(path, b, len), 0);
		ASSERT_ERR(ward_eif_read(path, &img, NULL), WARD_EFORMAT);
	}
	/* one byte more */
	memcpy(c, b, n);
	c[n] = 0;
	ASSERT_ERR(read_mem(c, n + 1, 0, &img), WARD_EFORMAT);
	assert_int_equal(tu_write_file(path, c, n + 1), 0);
	ASSERT_ERR(ward_eif_read(path, &img, NULL), WARD_EFORMAT);
	/* a stream longer or shorter than it was said to be */
	m = (struct ward_mem_reader){.p = c, .len = n + 1};
	ASSERT_ERR(ward_eif_read_stream(ward_mem_read, &m, n, "s", &img, NULL),
	    WARD_EFORMAT);
	m = (struct ward_mem_reader){.p = b, .len = n - 1};
	ASSERT_ERR(ward_eif_read_stream(ward_mem_read, &m, n, "s", &img, NULL),
	    WARD_EFORMAT);
	/* not a regular file, absent */
	ASSERT_ERR(ward_eif_read(dir, &img, NULL), WARD_EIO);
	ASSERT_ERR(ward_eif_read("/nonexistent/x.eif", &img, NULL), WARD_EIO);
	free(b);
	free(c);
	tu_rmtree(dir);
	free(dir);
	free(path);
}

/* Change the fixture, fix its CRC and expect code. */
static void
expect_bad(const uint8_t *b, size_t n, size_t off, const void *v, size_t vlen,
    int code)
{
	uint8_t *c = malloc(n);
	struct ward_eif_image img;

	assert_non_null(c);
	memcpy(c, b, n);
	memcpy(c + off, v, vlen);
	fix_crc(c, n);
	ASSERT_ERR(read_mem(c, n, 0, &img), code);
	free(c);
}

static void
test_structure(void **state)
{
	char *dir = tu_mkdtemp();
	size_t n;
	uint8_t *b = fixture_bytes(dir, &n), be[8];
	struct ward_buf e = {0}, big = {0};
	struct ward_eif_image img;

	/* mk_eif builds the fixture, so what it builds below differs from a
	 * good image only where intended */
	{
		struct sec s[] = {K(kernel), C(cmdline), M(metadata),
		    R(bootstrap), R(customer)};
		mk_eif(s, 5, &e);
		assert_int_equal(e.len, n);
		assert_memory_equal(e.p, b, n);
	}
	expect_bad(b, n, 0, "EIF.", 4, WARD_EFORMAT); /* magic */
	expect_bad(b, n, 4, "\x00\x03", 2, WARD_EUNSUPPORTED); /* version 3 */
	expect_bad(b, n, 4, "\x00\x05", 2, WARD_EUNSUPPORTED);
	expect_bad(b, n, 4, "\x00\x00", 2, WARD_EUNSUPPORTED);
	expect_bad(b, n, 584, "\x00\x00", 2, WARD_EFORMAT); /* type 0 */
	expect_bad(b, n, 584, "\x00\x06", 2, WARD_EFORMAT); /* type 6 */
	expect_bad(b, n, 584, "\xff\xff", 2, WARD_EFORMAT);
	expect_bad(b, n, 26, "\x00\x03", 2, WARD_EFORMAT); /* 3 sections */
	expect_bad(b, n, 26, "\x00\x06", 2, WARD_EFORMAT); /* table: 6th 0 */
	expect_bad(b, n, 26, "\x00\x21", 2, WARD_EFORMAT); /* 33 sections */
	expect_bad(b, n, 26, "\x00\x04", 2, WARD_EFORMAT); /* 5th listed */
	/* the table disagrees with the walk */
	ward_store64(be, 585);
	expect_bad(b, n, 28 + 8, be, 8, WARD_EFORMAT);
	ward_store64(be, 23);
	expect_bad(b, n, 284, be, 8, WARD_EFORMAT);
	ward_store64(be, 1);
	expect_bad(b, n, 28 + 8 * 5, be, 8, WARD_EFORMAT); /* unused entry */
	expect_bad(b, n, 284 + 8 * 31, be, 8, WARD_EFORMAT);
	ward_store64(be, UINT64_MAX);
	expect_bad(b, n, 284 + 8 * 4, be, 8, WARD_EFORMAT);
	/* a section header disagrees with the table (ramdisk 17 -> 16 bytes:
	 * the walk would then find the customer ramdisk one byte early) */
	ward_store64(be, 16);
	expect_bad(b, n, 868 + 4, be, 8, WARD_EFORMAT);
	/* order: exactly kernel, cmdline, metadata, ramdisks, [signature] */
	{
		static const uint8_t sig[] = {0x80};
		struct sec orders[][5] = {
		    {C(cmdline), K(kernel), M(metadata), R(bootstrap),
		        R(customer)},
		    {K(kernel), M(metadata), C(cmdline), R(bootstrap),
		        R(customer)},
		    {K(kernel), C(cmdline), R(bootstrap), M(metadata),
		        R(customer)},
		    {K(kernel), C(cmdline), M(metadata), M(metadata),
		        R(customer)},
		    {K(kernel), C(cmdline), M(metadata), R(bootstrap),
		        K(kernel)},
		    {K(kernel), C(cmdline), M(metadata),
		        {WARD_EIF_SEC_SIGNATURE, sig, 1}, R(customer)},
		};
		for (size_t i = 0; i < sizeof(orders) / sizeof(orders[0]);
		     i++) {
			mk_eif(orders[i], 5, &e);
			ASSERT_ERR(read_mem(e.p, e.len, 0, &img), WARD_EFORMAT);
		}
		/* no ramdisk at all; a signature and no ramdisk */
		{
			struct sec s[] = {K(kernel), C(cmdline), M(metadata)};
			mk_eif(s, 3, &e);
			ASSERT_ERR(read_mem(e.p, e.len, 0, &img), WARD_EFORMAT);
		}
		{
			struct sec s[] = {K(kernel), C(cmdline), M(metadata),
			    {WARD_EIF_SEC_SIGNATURE, sig, 1}};
			mk_eif(s, 4, &e);
			ASSERT_ERR(read_mem(e.p, e.len, 0, &img), WARD_EFORMAT);
		}
		/* two signatures */
		{
			struct sec s[] = {K(kernel), C(cmdline), M(metadata),
			    R(bootstrap), {WARD_EIF_SEC_SIGNATURE, sig, 1},
			    {WARD_EIF_SEC_SIGNATURE, sig, 1}};
			mk_eif(s, 6, &e);
			ASSERT_ERR(read_mem(e.p, e.len, 0, &img), WARD_EFORMAT);
		}
	}
	/* metadata must be a JSON object */
	{
		const char *bad[] = {"", "[]", "null", "{", "{\"a\":1,\"a\":2}",
		    "{} x", "\"s\""};
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			struct sec s[] = {
			    K(kernel), C(cmdline), M(bad[i]), R(bootstrap)};
			mk_eif(s, 4, &e);
			ASSERT_ERR(read_mem(e.p, e.len, 0, &img), WARD_EFORMAT);
		}
	}
	/* size limits, checked before anything is read or allocated */
	ASSERT_OK(ward_buf_reserve(&big, WARD_EIF_METADATA_MAX + 2));
	memset(big.p, ' ', WARD_EIF_METADATA_MAX + 1);
	big.p[0] = '{';
	big.p[WARD_EIF_METADATA_MAX] = '}';
	big.len = WARD_EIF_METADATA_MAX + 1;
	{
		struct sec s[] = {K(kernel), C(cmdline),
		    {WARD_EIF_SEC_METADATA, big.p, big.len}, R(bootstrap)};
		mk_eif(s, 4, &e);
		ASSERT_ERR(read_mem(e.p, e.len, 0, &img), WARD_ELIMIT);
		s[2].n--; /* exactly the limit: fine */
		big.p[WARD_EIF_METADATA_MAX - 1] = '}';
		mk_eif(s, 4, &e);
		ASSERT_OK(read_mem(e.p, e.len, 0, &img));
		ward_eif_image_free(&img);
	}
	{
		struct sec s[] = {K(kernel),
		    {WARD_EIF_SEC_CMDLINE, big.p, WARD_EIF_CMDLINE_MAX + 1},
		    M(metadata), R(bootstrap)};
		mk_eif(s, 4, &e);
		ASSERT_ERR(read_mem(e.p, e.len, 0, &img), WARD_ELIMIT);
	}
	{
		struct sec s[] = {K(kernel), C(cmdline), M(metadata),
		    R(bootstrap),
		    {WARD_EIF_SEC_SIGNATURE, big.p,
		        WARD_EIF_SIGNATURE_MAX + 1}};
		mk_eif(s, 5, &e);
		ASSERT_ERR(read_mem(e.p, e.len, 0, &img), WARD_ELIMIT);
	}
	/* one ramdisk: PCR2 measures nothing and PCR1 what PCR0 does;
	 * three: PCR2 measures two */
	{
		struct sec s[] = {K(kernel), C(cmdline), M(metadata),
		    R(bootstrap), R(customer), R("THIRD")};
		uint8_t v[WARD_PCR_LEN];
		char all[64];

		mk_eif(s, 4, &e);
		ASSERT_OK(read_mem(e.p, e.len, 0, &img));
		hexeq(img.pcr2, WARD_PCR_LEN, EMPTY_PCR);
		snprintf(
		    all, sizeof(all), "%s%s%s", kernel, cmdline, bootstrap);
		pcr_of(all, strlen(all), v);
		assert_memory_equal(img.pcr1, v, WARD_PCR_LEN);
		assert_memory_equal(img.pcr0, v, WARD_PCR_LEN);
		ward_eif_image_free(&img);
		mk_eif(s, 6, &e);
		ASSERT_OK(read_mem(e.p, e.len, 0, &img));
		snprintf(all, sizeof(all), "%s%s", customer, "THIRD");
		pcr_of(all, strlen(all), v);
		assert_memory_equal(img.pcr2, v, WARD_PCR_LEN);
		snprintf(
		    all, sizeof(all), "%s%s%s", kernel, cmdline, bootstrap);
		pcr_of(all, strlen(all), v);
		assert_memory_equal(img.pcr1, v, WARD_PCR_LEN);
		ward_eif_image_free(&img);
	}
	/* an empty kernel and cmdline (a sandbox-only image) are fine */
	{
		struct sec s[] = {K(""), C(""), M(metadata), R(bootstrap)};
		mk_eif(s, 4, &e);
		ASSERT_OK(read_mem(e.p, e.len, 0, &img));
		assert_int_equal(img.sections[0].size, 0);
		ward_eif_image_free(&img);
	}
	ward_buf_free(&e);
	ward_buf_free(&big);
	free(b);
	tu_rmtree(dir);
	free(dir);
}

/* ---- signed images ---- */

struct signer {
	struct evp_pkey_st *key;
	struct ward_buf der, pem;
};

static void
make_signer(struct signer *s, enum ward_curve curve, int64_t not_before,
    int64_t not_after)
{
	struct ward_x509_template t = {
	    .c = "US",
	    .o = "ward tests",
	    .cn = "eif signer",
	    .not_before = not_before,
	    .not_after = not_after,
	    .pathlen = -1,
	    .digital_signature = true,
	};

	memset(s, 0, sizeof(*s));
	ASSERT_OK(ward_ec_generate(curve, &s->key));
	ASSERT_OK(ward_x509_issue(&t, s->key, s->key, NULL, 0, &s->der));
	ASSERT_OK(ward_x509_pem(s->der.p, s->der.len, &s->pem));
}

static void
free_signer(struct signer *s)
{
	ward_pkey_free(s->key);
	ward_buf_free(&s->der);
	ward_buf_free(&s->pem);
}

static void
test_signed_roundtrip(void **state)
{
	char *dir = tu_mkdtemp(), *out = path_in(dir, "signed.eif"),
	     *pem = path_in(dir, "cert.pem");
	time_t now = time(NULL);
	struct signer s, other, p256;
	struct ward_eif_params p = fixture_params();
	struct ward_eif_image img, back;
	struct ward_buf e = {0}, certpem = {0};
	uint8_t v[WARD_PCR_LEN], *b;
	size_t n;
	bool ok;

	make_signer(&s, WARD_CURVE_P384, now - 3600, now + 86400);
	assert_int_equal(tu_write_file(pem, s.pem.p, s.pem.len), 0);
	p.sign_key = s.key;
	p.sign_cert_pem = s.pem.p;
	p.sign_cert_pem_len = s.pem.len;
	ASSERT_OK(ward_eif_write(&p, out, false, &img, NULL));
	assert_true(img.is_signed);
	assert_int_equal(img.num_sections, 6);
	assert_int_equal(img.sections[5].type, WARD_EIF_SEC_SIGNATURE);
	ASSERT_OK(ward_pcr_certificate(pem, v));
	assert_memory_equal(img.pcr8, v, WARD_PCR_LEN);
	/* PCR0/1/2 do not depend on the signature */
	hexeq(img.pcr0, WARD_PCR_LEN, FIXTURE_PCR0);
	hexeq(img.pcr2, WARD_PCR_LEN, FIXTURE_PCR2);
	ASSERT_OK(ward_eif_read(out, &back, NULL));
	assert_true(back.is_signed);
	assert_true(back.signature_ok);
	assert_int_equal(back.crc_header, back.crc_computed);
	assert_int_equal(back.crc_header, img.crc_header);
	assert_int_equal(back.num_sections, 6);
	assert_int_equal(back.sections[5].offset, FIXTURE_LEN);
	assert_int_equal(back.file_size, FIXTURE_LEN + 12 + img.signature.len);
	assert_memory_equal(back.pcr8, v, WARD_PCR_LEN);
	hexeq(back.pcr0, WARD_PCR_LEN, FIXTURE_PCR0);
	assert_int_equal(back.signing_cert_pem.len, s.pem.len);
	assert_memory_equal(back.signing_cert_pem.p, s.pem.p, s.pem.len);
	assert_int_equal(back.signature.len, img.signature.len);
	assert_memory_equal(
	    back.signature.p, img.signature.p, img.signature.len);
	/* the section's first bytes: [ {"signing_certificate": [... */
	assert_memory_equal(
	    back.signature.p, "\x81\xa2\x73signing_certificate", 22);
	/* the decoder on its own: right PCR0, wrong PCR0, outside validity */
	ASSERT_OK(ward_eif_signature_check(back.signature.p, back.signature.len,
	    back.pcr0, now, &certpem, &ok));
	assert_true(ok);
	ASSERT_OK(ward_eif_signature_check(back.signature.p, back.signature.len,
	    back.pcr1, now, &certpem, &ok));
	assert_false(ok);
	ASSERT_OK(ward_eif_signature_check(back.signature.p, back.signature.len,
	    back.pcr0, now + 2 * 86400, &certpem, &ok));
	assert_false(ok);
	ASSERT_OK(ward_eif_signature_check(back.signature.p, back.signature.len,
	    back.pcr0, now - 7200, &certpem, &ok));
	assert_false(ok);
	ward_eif_image_free(&back);

	/* a tampered signature (the last byte of s), CRC fixed: still well
	 * formed, but the check fails */
	assert_non_null(b = tu_read_file(out, &n));
	b[n - 1] = b[n - 1] < 23 ? b[n - 1] + 1
	    : b[n - 1] == 23     ? 22
	                         : b[n - 1] ^ 1;
	fix_crc(b, n);
	ASSERT_OK(read_mem(b, n, 0, &back));
	assert_true(back.is_signed);
	assert_false(back.signature_ok);
	assert_int_equal(back.crc_header, back.crc_computed);
	ward_eif_image_free(&back);
	free(b);

	/* the old signature on a different customer ramdisk */
	{
		struct sec sn[] = {K(kernel), C(cmdline), M(metadata),
		    R(bootstrap), R("CUSTOMER-RAMDISX"),
		    {WARD_EIF_SEC_SIGNATURE, img.signature.p,
		        img.signature.len}};
		mk_eif(sn, 6, &e);
		ASSERT_OK(read_mem(e.p, e.len, 0, &back));
		assert_true(back.is_signed);
		assert_false(back.signature_ok);
		assert_int_equal(back.crc_header, back.crc_computed);
		assert_memory_equal(back.pcr8, v, WARD_PCR_LEN);
		ward_eif_image_free(&back);
		/* and on the original one it is good (mk_eif = the writer) */
		sn[4] = (struct sec)R(customer);
		mk_eif(sn, 6, &e);
		ASSERT_OK(read_mem(e.p, e.len, 0, &back));
		assert_true(back.signature_ok);
		ward_eif_image_free(&back);
	}
	ward_eif_image_free(&img);

	/* only P-384; the key must be the certificate's */
	make_signer(&other, WARD_CURVE_P384, now - 3600, now + 86400);
	make_signer(&p256, WARD_CURVE_P256, now - 3600, now + 86400);
	p.sign_key = other.key;
	ASSERT_ERR(ward_eif_write(&p, out, true, NULL, NULL), WARD_EKEY);
	assert_non_null(strstr(ward_errmsg(), "P-384"));
	p.sign_key = p256.key;
	p.sign_cert_pem = p256.pem.p;
	p.sign_cert_pem_len = p256.pem.len;
	ASSERT_ERR(
	    ward_eif_write(&p, out, true, NULL, NULL), WARD_EUNSUPPORTED);
	assert_non_null(strstr(ward_errmsg(), "P-384"));
	p.sign_cert_pem = NULL;
	ASSERT_ERR(ward_eif_write(&p, out, true, NULL, NULL), WARD_EUSAGE);
	p.sign_key = s.key;
	p.sign_cert_pem = (const uint8_t *)"not a certificate";
	p.sign_cert_pem_len = 17;
	ASSERT_ERR(ward_eif_write(&p, out, true, NULL, NULL), WARD_EFORMAT);
	/* the failed writes left the signed image as it was */
	ASSERT_OK(ward_eif_read(out, &back, NULL));
	assert_true(back.signature_ok);
	ward_eif_image_free(&back);

	ward_buf_free(&e);
	ward_buf_free(&certpem);
	free_signer(&s);
	free_signer(&other);
	free_signer(&p256);
	tu_rmtree(dir);
	free(dir);
	free(out);
	free(pem);
}

/* ---- the signature section's decoder ---- */

static void
put_byte_array(struct ward_buf *b, const uint8_t *p, size_t n)
{
	ASSERT_OK(ward_cbor_put_array(b, n));
	for (size_t i = 0; i < n; i++)
		ASSERT_OK(ward_cbor_put_uint(b, p[i]));
}

/* COSE_Sign1 over a PcrInfo-like payload, with knobs. */
struct cose_opts {
	bool tagged;
	bool value_first; /* register_value before register_index */
	uint64_t index;
	const uint8_t *prot; /* protected header bytes; NULL: {1: -35} */
	size_t prot_len;
	size_t unprotected; /* entries in the unprotected map */
};

static void
make_cose(struct evp_pkey_st *key, const uint8_t pcr0[WARD_PCR_LEN],
    const struct cose_opts *o, struct ward_buf *out)
{
	static const uint8_t es384[] = {0xa1, 0x01, 0x38, 0x22};
	const uint8_t *prot = o->prot != NULL ? o->prot : es384;
	size_t prot_len = o->prot != NULL ? o->prot_len : sizeof(es384);
	struct ward_buf pl = {0}, tbs = {0};
	uint8_t sig[WARD_ES384_SIG_LEN];

	ASSERT_OK(ward_cbor_put_map(&pl, 2));
	if (o->value_first) {
		ASSERT_OK(ward_cbor_put_textz(&pl, "register_value"));
		put_byte_array(&pl, pcr0, WARD_PCR_LEN);
	}
	ASSERT_OK(ward_cbor_put_textz(&pl, "register_index"));
	ASSERT_OK(ward_cbor_put_uint(&pl, o->index));
	if (!o->value_first) {
		ASSERT_OK(ward_cbor_put_textz(&pl, "register_value"));
		put_byte_array(&pl, pcr0, WARD_PCR_LEN);
	}
	ASSERT_OK(ward_cbor_put_array(&tbs, 4));
	ASSERT_OK(ward_cbor_put_textz(&tbs, "Signature1"));
	ASSERT_OK(ward_cbor_put_bytes(&tbs, prot, prot_len));
	ASSERT_OK(ward_cbor_put_bytes(&tbs, NULL, 0));
	ASSERT_OK(ward_cbor_put_bytes(&tbs, pl.p, pl.len));
	ASSERT_OK(ward_es384_sign(key, tbs.p, tbs.len, sig));
	out->len = 0;
	if (o->tagged)
		ASSERT_OK(ward_cbor_put_tag(out, 18));
	ASSERT_OK(ward_cbor_put_array(out, 4));
	ASSERT_OK(ward_cbor_put_bytes(out, prot, prot_len));
	ASSERT_OK(ward_cbor_put_map(out, o->unprotected));
	for (size_t i = 0; i < o->unprotected; i++) {
		ASSERT_OK(ward_cbor_put_uint(out, 4));
		ASSERT_OK(ward_cbor_put_bytes(out, "kid", 3));
	}
	ASSERT_OK(ward_cbor_put_bytes(out, pl.p, pl.len));
	ASSERT_OK(ward_cbor_put_bytes(out, sig, sizeof(sig)));
	ward_buf_free(&pl);
	ward_buf_free(&tbs);
}

enum shape {
	S_NORMAL,
	S_SWAPPED,
	S_EXTRA_KEY,
	S_DUP_KEY,
	S_BYTES,
	S_TWO,
	S_INDEF_MAP,
	S_INDEF_ARRAY,
	S_WIDE_INT,
	S_BIG_INT,
	S_MAP_OUTSIDE,
	S_TRAILING,
	S_UNKNOWN_KEY,
};

static void
make_section(const struct ward_buf *pem, const struct ward_buf *cose,
    enum shape sh, struct ward_buf *out)
{
	out->len = 0;
	if (sh == S_MAP_OUTSIDE)
		ASSERT_OK(ward_cbor_put_map(out, 1));
	else
		ASSERT_OK(ward_cbor_put_array(out, sh == S_TWO ? 2 : 1));
	if (sh == S_MAP_OUTSIDE)
		ASSERT_OK(ward_cbor_put_uint(out, 0));
	if (sh == S_INDEF_MAP)
		ASSERT_OK(ward_cbor_put_indef_map(out));
	else
		ASSERT_OK(ward_cbor_put_map(out, sh == S_EXTRA_KEY ? 3 : 2));
	if (sh != S_SWAPPED) {
		ASSERT_OK(ward_cbor_put_textz(out,
		    sh == S_UNKNOWN_KEY ? "signing_certificat"
		                        : "signing_certificate"));
		if (sh == S_WIDE_INT || sh == S_BIG_INT) {
			ASSERT_OK(ward_cbor_put_array(out, pem->len));
			/* the first byte as 0x19 0x00 XX, or 256 */
			ASSERT_OK(ward_buf_append(out,
			    sh == S_WIDE_INT ? "\x19\x00" : "\x19\x01", 2));
			ASSERT_OK(ward_buf_put_u8(out, pem->p[0]));
			for (size_t i = 1; i < pem->len; i++)
				ASSERT_OK(ward_cbor_put_uint(out, pem->p[i]));
		} else if (sh == S_INDEF_ARRAY) {
			ASSERT_OK(ward_cbor_put_indef_array(out));
			for (size_t i = 0; i < pem->len; i++)
				ASSERT_OK(ward_cbor_put_uint(out, pem->p[i]));
			ASSERT_OK(ward_cbor_put_break(out));
		} else {
			put_byte_array(out, pem->p, pem->len);
		}
	}
	ASSERT_OK(ward_cbor_put_textz(
	    out, sh == S_DUP_KEY ? "signing_certificate" : "signature"));
	if (sh == S_BYTES)
		ASSERT_OK(ward_cbor_put_bytes(out, cose->p, cose->len));
	else
		put_byte_array(out, cose->p, cose->len);
	if (sh == S_SWAPPED) {
		ASSERT_OK(ward_cbor_put_textz(out, "signing_certificate"));
		put_byte_array(out, pem->p, pem->len);
	}
	if (sh == S_EXTRA_KEY) {
		ASSERT_OK(ward_cbor_put_textz(out, "extra"));
		ASSERT_OK(ward_cbor_put_array(out, 0));
	}
	if (sh == S_INDEF_MAP)
		ASSERT_OK(ward_cbor_put_break(out));
	if (sh == S_TWO)
		ASSERT_OK(ward_cbor_put_map(out, 0));
	if (sh == S_TRAILING)
		ASSERT_OK(ward_buf_put_u8(out, 0));
}

static int
check(const struct ward_buf *sec, const uint8_t pcr0[WARD_PCR_LEN], bool *ok)
{
	struct ward_buf pem = {0};
	int r = ward_eif_signature_check(
	    sec->p, sec->len, pcr0, time(NULL), &pem, ok);

	ward_buf_free(&pem);
	return r;
}

static void
test_signature_section(void **state)
{
	time_t now = time(NULL);
	struct signer s, p256;
	struct ward_buf cose = {0}, sec = {0}, enc = {0}, pem = {0};
	uint8_t pcr0[WARD_PCR_LEN];
	struct cose_opts o = {0};
	bool ok;

	make_signer(&s, WARD_CURVE_P384, now - 60, now + 3600);
	make_signer(&p256, WARD_CURVE_P256, now - 60, now + 3600);
	pcr_of("image", 5, pcr0);
	/* the encoder's output is what make_section builds (the signature
	 * bytes aside: ECDSA is randomized) and decodes with ok */
	ASSERT_OK(
	    ward_eif_signature_encode(s.key, s.pem.p, s.pem.len, pcr0, &enc));
	ASSERT_OK(check(&enc, pcr0, &ok));
	assert_true(ok);
	ASSERT_OK(
	    ward_eif_signature_check(enc.p, enc.len, pcr0, now, &pem, &ok));
	assert_int_equal(pem.len, s.pem.len);
	assert_memory_equal(pem.p, s.pem.p, pem.len);

	make_cose(s.key, pcr0, &o, &cose);
	make_section(&s.pem, &cose, S_NORMAL, &sec);
	ASSERT_OK(check(&sec, pcr0, &ok));
	assert_true(ok);
	/* accepted: the keys in either order, in the section and the
	 * payload; a tagged COSE_Sign1 */
	make_section(&s.pem, &cose, S_SWAPPED, &sec);
	ASSERT_OK(check(&sec, pcr0, &ok));
	assert_true(ok);
	o.value_first = true;
	make_cose(s.key, pcr0, &o, &cose);
	make_section(&s.pem, &cose, S_NORMAL, &sec);
	ASSERT_OK(check(&sec, pcr0, &ok));
	assert_true(ok);
	o = (struct cose_opts){.tagged = true};
	make_cose(s.key, pcr0, &o, &cose);
	make_section(&s.pem, &cose, S_NORMAL, &sec);
	ASSERT_OK(check(&sec, pcr0, &ok));
	assert_true(ok);
	/* well formed but not PCR0's signature */
	o = (struct cose_opts){.index = 1};
	make_cose(s.key, pcr0, &o, &cose);
	make_section(&s.pem, &cose, S_NORMAL, &sec);
	ASSERT_OK(check(&sec, pcr0, &ok));
	assert_false(ok);
	/* refused */
	o = (struct cose_opts){0};
	make_cose(s.key, pcr0, &o, &cose);
	{
		static const enum shape bad[] = {S_EXTRA_KEY, S_DUP_KEY,
		    S_BYTES, S_TWO, S_INDEF_MAP, S_INDEF_ARRAY, S_WIDE_INT,
		    S_BIG_INT, S_MAP_OUTSIDE, S_TRAILING, S_UNKNOWN_KEY};
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			make_section(&s.pem, &cose, bad[i], &sec);
			ASSERT_ERR(check(&sec, pcr0, &ok), WARD_EFORMAT);
		}
	}
	o = (struct cose_opts){.unprotected = 1};
	make_cose(s.key, pcr0, &o, &cose);
	make_section(&s.pem, &cose, S_NORMAL, &sec);
	ASSERT_ERR(check(&sec, pcr0, &ok), WARD_EFORMAT);
	{
		static const uint8_t es256[] = {0xa1, 0x01, 0x26}; /* -7 */
		static const uint8_t two[] = {
		    0xa2, 0x01, 0x38, 0x22, 0x04, 0x00};
		o = (struct cose_opts){.prot = es256, .prot_len = 3};
		make_cose(s.key, pcr0, &o, &cose);
		make_section(&s.pem, &cose, S_NORMAL, &sec);
		ASSERT_ERR(check(&sec, pcr0, &ok), WARD_EUNSUPPORTED);
		assert_non_null(strstr(ward_errmsg(), "P-384"));
		o = (struct cose_opts){.prot = two, .prot_len = sizeof(two)};
		make_cose(s.key, pcr0, &o, &cose);
		make_section(&s.pem, &cose, S_NORMAL, &sec);
		ASSERT_ERR(check(&sec, pcr0, &ok), WARD_EFORMAT);
	}
	/* a P-256 signing certificate: not supported, and says so */
	o = (struct cose_opts){0};
	make_cose(s.key, pcr0, &o, &cose);
	make_section(&p256.pem, &cose, S_NORMAL, &sec);
	ASSERT_ERR(check(&sec, pcr0, &ok), WARD_EUNSUPPORTED);
	assert_non_null(strstr(ward_errmsg(), "P-384"));
	ASSERT_ERR(ward_eif_signature_encode(
	               p256.key, p256.pem.p, p256.pem.len, pcr0, &sec),
	    WARD_EUNSUPPORTED);
	/* not a certificate */
	{
		struct ward_buf junk = {0};
		ASSERT_OK(ward_buf_append(&junk, "-----BEGIN JUNK-----\n", 21));
		make_section(&junk, &cose, S_NORMAL, &sec);
		ASSERT_ERR(check(&sec, pcr0, &ok), WARD_EFORMAT);
		ward_buf_free(&junk);
	}
	/* another key's signature under this certificate */
	{
		struct signer t;
		make_signer(&t, WARD_CURVE_P384, now - 60, now + 3600);
		make_cose(t.key, pcr0, &o, &cose);
		make_section(&s.pem, &cose, S_NORMAL, &sec);
		ASSERT_OK(check(&sec, pcr0, &ok));
		assert_false(ok);
		free_signer(&t);
	}
	/* every truncation is malformed; every single-byte change is
	 * refused, fails the check, or names another certificate (PCR8) */
	for (size_t len = 0; len < enc.len; len++) {
		struct ward_buf t = {enc.p, len, len, false};
		int r = check(&t, pcr0, &ok);

		if (r != -WARD_EFORMAT && r != -WARD_EUNSUPPORTED)
			fail_msg("truncated to %zu: %s", len, ward_errname(r));
	}
	for (size_t i = 0; i < enc.len; i++) {
		struct ward_buf c = {0}, certpem = {0};
		int r;

		ASSERT_OK(ward_buf_append(&c, enc.p, enc.len));
		c.p[i] ^= 0x01;
		r = ward_eif_signature_check(
		    c.p, c.len, pcr0, now, &certpem, &ok);
		if (r == 0 && ok &&
		    (certpem.len == s.pem.len &&
		        memcmp(certpem.p, s.pem.p, s.pem.len) == 0))
			fail_msg("byte %zu changed and still verifies", i);
		ward_buf_free(&c);
		ward_buf_free(&certpem);
	}
	/* too large */
	{
		struct ward_buf t = {
		    enc.p, WARD_EIF_SIGNATURE_MAX + 1, 0, false};
		ASSERT_ERR(check(&t, pcr0, &ok), WARD_ELIMIT);
	}
	ward_buf_free(&cose);
	ward_buf_free(&sec);
	ward_buf_free(&enc);
	ward_buf_free(&pem);
	free_signer(&s);
	free_signer(&p256);
}

/* ---- large images, failures ---- */

static void
fill(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)(x >> 32);
	}
}

static void
test_large_image(void **state)
{
	const size_t kn = 3 * 1024 * 1024 + 1, bn = 4 * 1024 * 1024 + 3,
	             cn = 16 * 1024 * 1024 + 5;
	char *dir = tu_mkdtemp(), *kp = path_in(dir, "kernel"),
	     *bp = path_in(dir, "boot"), *cp = path_in(dir, "cust"),
	     *out = path_in(dir, "big.eif");
	uint8_t *k = malloc(kn), *bo = malloc(bn), *cu = malloc(cn);
	uint8_t v0[WARD_PCR_LEN], v1[WARD_PCR_LEN], v2[WARD_PCR_LEN],
	    v[WARD_PCR_LEN];
	struct ward_eif_params p = fixture_params();
	struct ward_eif_image img, back;
	struct ward_progress prog;
	struct ward_pcr h0 = {0}, h1 = {0};
	struct stat st;

	assert_non_null(k);
	assert_non_null(bo);
	assert_non_null(cu);
	fill(k, kn, 1);
	fill(bo, bn, 2);
	fill(cu, cn, 3);
	assert_int_equal(tu_write_file(kp, k, kn), 0);
	assert_int_equal(tu_write_file(bp, bo, bn), 0);
	assert_int_equal(tu_write_file(cp, cu, cn), 0);
	/* the measurements computed apart from the image */
	ASSERT_OK(ward_pcr_init(&h0));
	ASSERT_OK(ward_pcr_init(&h1));
	ASSERT_OK(ward_pcr_update(&h0, k, kn));
	ASSERT_OK(ward_pcr_update(&h1, k, kn));
	ASSERT_OK(
	    ward_pcr_update(&h0, (const uint8_t *)cmdline, strlen(cmdline)));
	ASSERT_OK(
	    ward_pcr_update(&h1, (const uint8_t *)cmdline, strlen(cmdline)));
	ASSERT_OK(ward_pcr_update(&h0, bo, bn));
	ASSERT_OK(ward_pcr_update(&h1, bo, bn));
	ASSERT_OK(ward_pcr_update(&h0, cu, cn));
	ASSERT_OK(ward_pcr_final(&h0, v0));
	ASSERT_OK(ward_pcr_final(&h1, v1));
	ward_pcr_free(&h0);
	ward_pcr_free(&h1);
	ASSERT_OK(ward_pcr_file(cp, v2));

	p.kernel = (struct ward_eif_part){kp, NULL, 0};
	p.ramdisks[0] = (struct ward_eif_part){bp, NULL, 0};
	p.ramdisks[1] = (struct ward_eif_part){cp, NULL, 0};
	ward_progress_init(&prog, "t", 0, false);
	ASSERT_OK(ward_eif_write(&p, out, false, &img, &prog));
	assert_int_equal(stat(out, &st), 0);
	assert_int_equal((uint64_t)st.st_size, img.file_size);
	assert_int_equal(prog.done, img.file_size);
	assert_int_equal(img.file_size,
	    548 + 5 * 12 + kn + strlen(cmdline) + strlen(metadata) + bn + cn);
	assert_memory_equal(img.pcr0, v0, WARD_PCR_LEN);
	assert_memory_equal(img.pcr1, v1, WARD_PCR_LEN);
	assert_memory_equal(img.pcr2, v2, WARD_PCR_LEN);
	ASSERT_OK(ward_eif_read(out, &back, NULL));
	assert_memory_equal(back.pcr0, v0, WARD_PCR_LEN);
	assert_memory_equal(back.pcr1, v1, WARD_PCR_LEN);
	assert_memory_equal(back.pcr2, v2, WARD_PCR_LEN);
	assert_int_equal(back.crc_header, back.crc_computed);
	assert_int_equal(back.crc_header, img.crc_header);
	assert_int_equal(back.sections[4].size, cn);
	ward_eif_image_free(&back);
	/* and the whole file's PCR is what nitro-cli pcr --input says */
	ASSERT_OK(ward_pcr_file(out, v));
	{
		size_t n;
		uint8_t *b = tu_read_file(out, &n);
		uint8_t w[WARD_PCR_LEN];

		assert_non_null(b);
		pcr_of(b, n, w);
		assert_memory_equal(v, w, WARD_PCR_LEN);
		assert_int_equal(crc_of(b, n), img.crc_header);
		/* from memory, in two threads (read_mem holds it to the
		 * stream reader's answer) */
		ASSERT_OK(read_mem(b, n, 0, &back));
		assert_memory_equal(back.pcr0, v0, WARD_PCR_LEN);
		assert_memory_equal(back.pcr1, v1, WARD_PCR_LEN);
		assert_memory_equal(back.pcr2, v2, WARD_PCR_LEN);
		assert_int_equal(back.crc_computed, img.crc_header);
		ward_eif_image_free(&back);
		free(b);
	}
	ward_eif_image_free(&img);
	free(k);
	free(bo);
	free(cu);
	tu_rmtree(dir);
	free(dir);
	free(kp);
	free(bp);
	free(cp);
	free(out);
}

static void
test_write_failures(void **state)
{
	char *dir = tu_mkdtemp(), *out = path_in(dir, "out.eif"),
	     *missing = path_in(dir, "missing"),
	     *nodir = path_in(dir, "nodir/out.eif");
	struct ward_eif_params p = fixture_params(), q;
	struct ward_eif_image img;

	/* a missing part file: nothing appears, not even a temporary */
	q = p;
	q.ramdisks[1] = (struct ward_eif_part){missing, NULL, 0};
	ASSERT_ERR(ward_eif_write(&q, out, false, &img, NULL), WARD_EIO);
	assert_non_null(strstr(ward_errmsg(), "missing"));
	assert_int_equal(access(out, F_OK), -1);
	assert_int_equal(tu_count_entries(dir), 0);
	/* a directory as a part */
	q.ramdisks[1] = (struct ward_eif_part){dir, NULL, 0};
	ASSERT_ERR(ward_eif_write(&q, out, false, NULL, NULL), WARD_EIO);
	assert_int_equal(tu_count_entries(dir), 0);
	/* bad parameters */
	q = p;
	q.metadata_json = "{\"a\":";
	ASSERT_ERR(ward_eif_write(&q, out, false, NULL, NULL), WARD_EFORMAT);
	q.metadata_json = "[1]";
	ASSERT_ERR(ward_eif_write(&q, out, false, NULL, NULL), WARD_EFORMAT);
	q.metadata_json = NULL;
	ASSERT_ERR(ward_eif_write(&q, out, false, NULL, NULL), WARD_EUSAGE);
	q = p;
	q.n_ramdisks = 0;
	ASSERT_ERR(ward_eif_write(&q, out, false, NULL, NULL), WARD_EUSAGE);
	q.n_ramdisks = WARD_EIF_MAX_SECTIONS;
	ASSERT_ERR(ward_eif_write(&q, out, false, NULL, NULL), WARD_EUSAGE);
	q = p;
	q.cmdline = (struct ward_eif_part){NULL, (const uint8_t *)"a\0b", 3};
	ASSERT_ERR(ward_eif_write(&q, out, false, NULL, NULL), WARD_EUSAGE);
	q.cmdline = (struct ward_eif_part){NULL, NULL, 5};
	ASSERT_ERR(ward_eif_write(&q, out, false, NULL, NULL), WARD_EUSAGE);
	q.cmdline =
	    (struct ward_eif_part){NULL, (const uint8_t *)metadata, 4097};
	ASSERT_ERR(ward_eif_write(&q, out, false, NULL, NULL), WARD_ELIMIT);
	assert_int_equal(tu_count_entries(dir), 0);
	/* an output directory that does not exist */
	ASSERT_ERR(ward_eif_write(&p, nodir, false, NULL, NULL), WARD_EIO);
	/* 28 ramdisks fit (32 sections with the signature) */
	q = p;
	for (size_t i = 0; i < WARD_EIF_MAX_SECTIONS - 4; i++)
		q.ramdisks[i] = p.ramdisks[i % 2];
	q.n_ramdisks = WARD_EIF_MAX_SECTIONS - 4;
	ASSERT_OK(ward_eif_write(&q, out, false, &img, NULL));
	assert_int_equal(img.num_sections, WARD_EIF_MAX_SECTIONS - 1);
	ward_eif_image_free(&img);
	ASSERT_OK(ward_eif_read(out, &img, NULL));
	assert_int_equal(img.num_sections, WARD_EIF_MAX_SECTIONS - 1);
	assert_int_equal(img.crc_header, img.crc_computed);
	ward_eif_image_free(&img);
	assert_int_equal(tu_count_entries(dir), 1);
	tu_rmtree(dir);
	free(dir);
	free(out);
	free(missing);
	free(nodir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_crc32),
	    cmocka_unit_test(test_pcr_kats),
	    cmocka_unit_test(test_fixture_read),
	    cmocka_unit_test(test_fixture_write),
	    cmocka_unit_test(test_every_byte),
	    cmocka_unit_test(test_truncations),
	    cmocka_unit_test(test_structure),
	    cmocka_unit_test(test_signed_roundtrip),
	    cmocka_unit_test(test_signature_section),
	    cmocka_unit_test(test_large_image),
	    cmocka_unit_test(test_write_failures),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
