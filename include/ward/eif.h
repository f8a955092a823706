/*
 * ward eif: Enclave Image Files (EIF v4, as nitro-cli writes them), the
 * cpio ramdisks inside them, their measurements (PCR0/1/2/8) and their
 * signature section. Byte-level facts: shared/specs/nitro.md §1 and §7.
 */
#ifndef WARD_EIF_H
#define WARD_EIF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ward/attest.h"
#include "ward/crypto.h"
#include "ward/util.h"

/* ---- measurements (nitro.md §1.5) ---- */

#define WARD_PCR_LEN 48 /* SHA-384 */
/*
 * A PCR over a byte stream: SHA-384(0^48 || SHA-384(bytes)), as nitro-cli's
 * EifHasher finalizes it. Feed the bytes with ward_pcr_update.
 */
struct ward_pcr {
	struct evp_md_ctx_st *md;
};
int ward_pcr_init(struct ward_pcr *h);
int ward_pcr_update(struct ward_pcr *h, const uint8_t *p, size_t n);
int ward_pcr_final(struct ward_pcr *h, uint8_t out[WARD_PCR_LEN]);
/* dst (initialized) becomes a copy of src: the same bytes fed so far. */
int ward_pcr_copy(struct ward_pcr *dst, const struct ward_pcr *src);
void ward_pcr_free(struct ward_pcr *h);
/* `nitro-cli pcr --input FILE`: the PCR of a file's bytes. */
int ward_pcr_file(const char *path, uint8_t out[WARD_PCR_LEN]);
/* `nitro-cli pcr --signing-certificate PEM`: the PCR of the certificate's
 * DER (PCR8 of an image signed with it). */
int ward_pcr_certificate(const char *pem_path, uint8_t out[WARD_PCR_LEN]);

/* ---- EIF v4 (nitro.md §1.1-§1.4, §1.6) ---- */

#define WARD_EIF_VERSION 4
#define WARD_EIF_HEADER_LEN 548
#define WARD_EIF_SECTION_HEADER_LEN 12
#define WARD_EIF_MAX_SECTIONS 32
#define WARD_EIF_ARCH_ARM64 0x1
#define WARD_EIF_DEFAULT_MEM (1024ull * 1024 * 1024)
#define WARD_EIF_DEFAULT_CPUS 2
#define WARD_EIF_METADATA_MAX (64 * 1024)
#define WARD_EIF_SIGNATURE_MAX (64 * 1024)
#define WARD_EIF_CMDLINE_MAX 4096

/* The header's CRC-32 (nitro.md §1.4: ISO-HDLC, as zlib's crc32()):
 * start from 0 and chain, crc = ward_eif_crc32(crc, p, n). */
uint32_t ward_eif_crc32(uint32_t crc, const uint8_t *p, size_t n);

enum ward_eif_section_type {
	WARD_EIF_SEC_INVALID = 0,
	WARD_EIF_SEC_KERNEL = 1,
	WARD_EIF_SEC_CMDLINE = 2,
	WARD_EIF_SEC_RAMDISK = 3,
	WARD_EIF_SEC_SIGNATURE = 4,
	WARD_EIF_SEC_METADATA = 5,
};

struct ward_eif_section {
	enum ward_eif_section_type type;
	uint16_t flags;
	uint64_t offset; /* of the 12-byte section header */
	uint64_t size; /* of the data */
};

/*
 * What ward_eif_read learns from an image. The reader walks the sections
 * sequentially from offset 548 (as nitro-cli's EifReader does) and checks
 * that section_offsets/section_sizes in the header agree (as QEMU needs);
 * it measures PCR0/1/2 and computes the CRC in the same pass, never
 * holding more than a buffer of the image in memory. Metadata, cmdline
 * and signature sections are kept (they are small and bounded).
 */
struct ward_eif_image {
	uint16_t version;
	uint16_t flags;
	uint64_t default_mem;
	uint64_t default_cpus;
	size_t num_sections;
	struct ward_eif_section sections[WARD_EIF_MAX_SECTIONS];
	uint32_t crc_header; /* eif_crc32 as stored */
	uint32_t crc_computed;
	uint8_t pcr0[WARD_PCR_LEN], pcr1[WARD_PCR_LEN], pcr2[WARD_PCR_LEN];
	bool is_signed;
	uint8_t pcr8[WARD_PCR_LEN]; /* when signed */
	struct ward_buf cmdline;
	struct ward_buf metadata; /* JSON as stored (not measured) */
	struct ward_buf signature; /* the signature section's bytes */
	struct ward_buf signing_cert_pem; /* from the signature section */
	bool signature_ok; /* COSE signature verifies and signs PCR0 */
	uint64_t file_size;
};
/*
 * Read and measure an image. A malformed image is WARD_EFORMAT naming the
 * offset; a CRC mismatch is NOT an error here (crc_header vs
 * crc_computed tells; describe-eif reports CheckCRC) but every structural
 * rule is. progress may be NULL.
 */
int ward_eif_read(const char *path, struct ward_eif_image *out,
    struct ward_progress *progress);
/*
 * The same reader over any byte stream that holds file_size bytes (name
 * is for messages). ward_eif_read opens the file and calls this; tests
 * and the fuzzer feed it memory. Sizes are checked against file_size
 * before anything is allocated, and a stream that ends early or goes on
 * past file_size is WARD_EFORMAT.
 */
int ward_eif_read_stream(ward_read_fn read, void *ctx, uint64_t file_size,
    const char *name, struct ward_eif_image *out,
    struct ward_progress *progress);
/*
 * The same reader over an image held in memory, all of it: the same checks
 * and the same result as ward_eif_read_stream (the tests and the fuzzer
 * hold the two to that), without copying the bytes, with PCR0 in the
 * caller's thread and the CRC and PCR2 in another, neither waiting for the
 * other. p must not change until it returns.
 */
int ward_eif_read_mem(
    const uint8_t *p, size_t len, const char *name, struct ward_eif_image *out);
/*
 * The structure alone, of an image in memory: header, section table and
 * section headers, each checked as ward_eif_read_stream checks them, and
 * out->sections filled in. No CRC, no PCR, nothing kept (nothing to free).
 * For a caller that must know where the sections are before the image is
 * measured; it must still measure the same bytes (ward_eif_read_mem)
 * before it trusts them.
 */
int ward_eif_layout(
    const uint8_t *p, size_t len, const char *name, struct ward_eif_image *out);
void ward_eif_image_free(struct ward_eif_image *img);

/* One section's data for the writer: a file, or bytes in memory. */
struct ward_eif_part {
	const char *path; /* NULL: use p/len */
	const uint8_t *p;
	size_t len;
};
struct ward_eif_params {
	struct ward_eif_part kernel; /* may be empty (sandbox-only image) */
	struct ward_eif_part cmdline; /* written without a trailing NUL */
	const char *metadata_json; /* compact JSON, EifIdentityInfo order */
	struct ward_eif_part ramdisks[WARD_EIF_MAX_SECTIONS - 4];
	size_t n_ramdisks; /* nitro-cli writes 2: bootstrap, customer */
	uint16_t flags; /* WARD_EIF_ARCH_ARM64 or 0 */
	uint64_t default_mem, default_cpus; /* 0: the defaults above */
	/* Signing (optional): a P-384 key and its certificate, PEM. */
	struct evp_pkey_st *sign_key;
	const uint8_t *sign_cert_pem;
	size_t sign_cert_pem_len;
};
/*
 * Write an image: kernel, cmdline, metadata, ramdisks, [signature], each
 * a 12-byte section header then the data, no padding (nitro.md §1.3),
 * header CRC over everything but its own 4 bytes. The file appears
 * atomically (ward_atomic_*), complete or not at all. out receives the
 * measurements as a reader would compute them.
 */
int ward_eif_write(const struct ward_eif_params *p, const char *path,
    bool overwrite, struct ward_eif_image *out, struct ward_progress *progress);

/*
 * The signature section (nitro.md §1.6): CBOR [ {"signing_certificate":
 * [uint...] (PEM bytes), "signature": [uint...] (COSE_Sign1 bytes)} ],
 * integer arrays, not byte strings (serde quirk). The COSE payload is
 * {"register_index": 0, "register_value": [48 uints of PCR0]}.
 */
int ward_eif_signature_encode(struct evp_pkey_st *key, const uint8_t *cert_pem,
    size_t cert_pem_len, const uint8_t pcr0[WARD_PCR_LEN],
    struct ward_buf *out);
/* Decode a signature section; *cert_pem gets the PEM bytes. Returns 0 with
 * *ok telling whether the COSE signature verifies with the certificate's
 * key, the certificate is valid at `at`, and the payload names PCR0 =
 * pcr0. Malformed sections are WARD_EFORMAT. */
int ward_eif_signature_check(const uint8_t *p, size_t n,
    const uint8_t pcr0[WARD_PCR_LEN], time_t at, struct ward_buf *cert_pem,
    bool *ok);

/* ---- cpio "newc" ramdisks (nitro.md §1.3) ---- */

/*
 * A deterministic cpio newc writer: entries in the order added (callers
 * add them sorted), fixed mtime 0, uid/gid 0, inode numbers counted from
 * 1 in order, nlink 1 (2 for directories), devices 0, the TRAILER!!!
 * entry, and the whole archive padded to a 512-byte multiple as the
 * kernel's initramfs loader accepts. The same entries always give the
 * same bytes. Output goes to a ward_write_fn (a file, a hasher, a buffer).
 */
#define WARD_CPIO_NAME_MAX 4096
struct ward_cpio_writer {
	ward_write_fn write;
	void *ctx;
	uint64_t offset;
	uint32_t ino;
};
void ward_cpio_init(struct ward_cpio_writer *w, ward_write_fn write, void *ctx);
/* mode: full st_mode (S_IFDIR|0755, S_IFREG|0644, S_IFLNK|0777, ...). */
int ward_cpio_dir(struct ward_cpio_writer *w, const char *name, uint32_t mode);
int ward_cpio_symlink(
    struct ward_cpio_writer *w, const char *name, const char *target);
/* A regular file from memory, or streamed from a file descriptor of
 * exactly size bytes. */
int ward_cpio_file_mem(struct ward_cpio_writer *w, const char *name,
    uint32_t mode, const uint8_t *p, size_t n);
int ward_cpio_file_fd(struct ward_cpio_writer *w, const char *name,
    uint32_t mode, int fd, uint64_t size);
/* Device nodes (mode S_IFCHR/S_IFBLK) with rdev major/minor. */
int ward_cpio_node(struct ward_cpio_writer *w, const char *name, uint32_t mode,
    uint32_t rmajor, uint32_t rminor);
int ward_cpio_finish(struct ward_cpio_writer *w);

/*
 * A strict cpio newc reader over memory (for tests, describe and the
 * sandbox runtime): every header field hex-checked, names NUL-terminated
 * and within WARD_CPIO_NAME_MAX, sizes within the input, 4-byte
 * alignment, stops at TRAILER!!!. Each entry's name and data are views
 * into the input.
 */
struct ward_cpio_entry {
	const char *name; /* NUL-terminated, in the input */
	size_t name_len;
	uint32_t mode, uid, gid, nlink, mtime, rmajor, rminor;
	const uint8_t *data; /* file contents or symlink target */
	uint64_t size;
};
struct ward_cpio_reader {
	const uint8_t *p;
	size_t len;
	size_t pos;
	bool done;
};
void ward_cpio_reader_init(
    struct ward_cpio_reader *r, const uint8_t *p, size_t len);
/* 1: an entry; 0: the trailer was reached; < 0: malformed. */
int ward_cpio_next(struct ward_cpio_reader *r, struct ward_cpio_entry *e);

/* ---- building an image (`ward build-enclave`) ---- */

/*
 * An OCI image's runtime defaults, from its config (Env, Entrypoint, Cmd,
 * WorkingDir). Strings are owned; free with ward_oci_config_free.
 */
struct ward_oci_config {
	char **env;
	size_t env_len;
	char **cmd; /* Entrypoint then Cmd */
	size_t cmd_len;
	char *workdir;
	char *digest; /* the manifest's sha256:..., for DockerInfo */
};
void ward_oci_config_free(struct ward_oci_config *c);
/*
 * Unpack a `docker save` tarball or an OCI image layout (as a tar) into
 * dest, an empty directory: layers applied in order with whiteouts
 * (.wh.NAME removes NAME, .wh..wh..opq empties a directory of what lower
 * layers put there), blob digests checked, paths confined to dest, device
 * nodes skipped. cfg receives the image's defaults.
 */
int ward_oci_unpack(
    const char *archive, const char *dest, struct ward_oci_config *cfg);

struct ward_enclave_spec {
	const char *rootfs; /* a directory, or NULL with oci_archive */
	const char *oci_archive;
	const char *app; /* copied to /app in the rootfs (optional) */
	const char *const *cmd; /* argv; NULL: the image's, else ward agent */
	size_t cmd_len;
	const char *const *env; /* K=V, after the image's */
	size_t env_len;
	bool no_ward; /* leave ward and its libraries out */
	/* model runtimes the agent may load ("xgboost"): their libraries go
	 * to /ward/lib */
	const char *const *runtimes;
	size_t runtime_len;
	const char *kernel; /* NULL: a sandbox-only image */
	const char *cmdline;
	const char *nsm_module;
	bool arm64;
	const char *name, *version; /* metadata; default from the output */
	struct evp_pkey_st *sign_key; /* optional, with sign_cert_pem */
	const uint8_t *sign_cert_pem;
	size_t sign_cert_pem_len;
	bool overwrite;
};
/*
 * Build an image as nitro-cli lays it out (nitro.md §1.3): a bootstrap
 * ramdisk (dev/, init = ward-init, nsm.ko when given) and a customer
 * ramdisk (cmd, env, rootfs/...), both deterministic cpio, so the same
 * inputs give the same bytes on any machine at any time (BuildTime comes
 * from SOURCE_DATE_EPOCH, else the epoch).
 */
int ward_build_enclave(const struct ward_enclave_spec *s, const char *out,
    struct ward_eif_image *img, struct ward_progress *progress);

#endif
