/*
 * ward envelope: the AWS Encryption SDK message format (specs/kms-and-esdk.md
 * §5), keyrings, streaming encryption and decryption, and directory
 * packing. ward writes v2 messages with committing suites (0x0478 default,
 * 0x0578 signed) and reads every AES-GCM suite of the format.
 */
#ifndef WARD_ENVELOPE_H
#define WARD_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ward/crypto.h"
#include "ward/util.h"

/* Limits (spec §5.8 and client-apis/client.md). */
#define WARD_FRAME_LEN_DEFAULT 4096u
/* Largest frame ward writes or reads: frames are authenticated units and
 * held in memory whole, so this bounds memory per message. */
#define WARD_FRAME_LEN_MAX (256u << 20)
#define WARD_MAX_EDKS_DEFAULT 64u
#define WARD_HEADER_MAX (16u << 20)
#define WARD_DATA_KEY_MAX 32
#define WARD_MESSAGE_ID_MAX 32
#define WARD_FRAME_SEQ_MAX 0xFFFFFFFEu /* 0xFFFFFFFF marks the final frame */

/* Reserved context prefix and the key ward itself uses (docs/formats.md). */
#define WARD_EC_RESERVED_PREFIX "aws-crypto-"
#define WARD_EC_PUBLIC_KEY "aws-crypto-public-key"
#define WARD_EC_FORMAT "ward:format"
#define WARD_EC_FORMAT_TAR "tar"

/* Algorithm suites (spec §5.3). */
#define WARD_SUITE_DEFAULT 0x0478
#define WARD_SUITE_SIGNED 0x0578
struct ward_suite {
	uint16_t id;
	const char *name;
	uint8_t msg_version; /* 1 or 2 */
	uint8_t key_len; /* data key = content key length */
	const char *kdf_md; /* NULL: the data key is the content key */
	bool commit; /* key commitment (v2 suites) */
	enum ward_curve curve; /* 0: unsigned */
};
const struct ward_suite *ward_suite_lookup(uint16_t id);
/* Parse "0478", "0x0578" and the like. */
int ward_suite_parse(const char *s, uint16_t *out);

/*
 * Encryption context: UTF-8 pairs, keys unique. Keys and values carry
 * their lengths and are also NUL-terminated for printing.
 */
struct ward_ec_pair {
	char *key;
	size_t key_len;
	char *value;
	size_t value_len;
};
struct ward_ec {
	struct ward_ec_pair *pairs;
	size_t n;
};
int ward_ec_add(struct ward_ec *ec, const char *key, size_t key_len,
    const char *value, size_t value_len);
/* "key=value" from the command line. */
int ward_ec_add_arg(struct ward_ec *ec, const char *kv);
const struct ward_ec_pair *ward_ec_get(
    const struct ward_ec *ec, const char *key, size_t key_len);
/* Canonical serialization (§5.4): empty for an empty context, else count
 * and pairs sorted by key bytes. Appends to out. */
int ward_ec_serialize(const struct ward_ec *ec, struct ward_buf *out);
/* Parse a serialized context as stored in a header (order as received). */
int ward_ec_parse(const uint8_t *p, size_t len, struct ward_ec *out);
int ward_ec_copy(struct ward_ec *dst, const struct ward_ec *src);
void ward_ec_free(struct ward_ec *ec);

/* Encrypted data keys (§5.5). */
struct ward_edk {
	uint8_t *provider_id;
	size_t provider_id_len;
	uint8_t *provider_info;
	size_t provider_info_len;
	uint8_t *ciphertext;
	size_t ciphertext_len;
};
struct ward_edk_list {
	struct ward_edk *v;
	size_t n;
};
int ward_edk_list_add(struct ward_edk_list *l, const void *pid, size_t pid_len,
    const void *info, size_t info_len, const void *ct, size_t ct_len);
void ward_edk_list_free(struct ward_edk_list *l);

/*
 * Keyrings (ESDK semantics). On encrypt, a keyring given materials with no
 * data key generates one (it is then the generator); every keyring
 * appends an encrypted data key. On decrypt, a keyring that can open one
 * of the message's encrypted data keys sets the data key; one that cannot
 * returns 0 and leaves it unset (and counts in attempts the keys that were
 * addressed to it but did not open). Errors are returned only for
 * failures that are not "this key does not fit" (out of memory, say).
 */
struct ward_materials {
	const struct ward_suite *suite;
	const struct ward_ec
	    *ec; /* full context: stored + authenticated-only */
	uint8_t data_key[WARD_DATA_KEY_MAX];
	size_t data_key_len;
	bool has_data_key;
	struct ward_edk_list edks; /* encrypt: output */
	unsigned attempts; /* decrypt: addressed EDKs that failed */
};
struct ward_keyring;
struct ward_keyring_ops {
	const char *type;
	int (*on_encrypt)(struct ward_keyring *kr, struct ward_materials *m);
	int (*on_decrypt)(struct ward_keyring *kr, struct ward_materials *m,
	    const struct ward_edk *edks, size_t n);
	/* One line naming the key, for error messages ("raw AES key
	 * ward/raw-aes"). */
	void (*describe)(const struct ward_keyring *kr, char *out, size_t n);
	void (*destroy)(struct ward_keyring *kr);
};
struct ward_keyring {
	const struct ward_keyring_ops *ops;
};
void ward_keyring_free(struct ward_keyring *kr);

/* Raw AES (framework/raw-aes-keyring.md): key of 16, 24 or 32 bytes. The
 * key bytes are copied; the caller cleanses its own copy. */
int ward_keyring_raw_aes_new(struct ward_keyring **out, const char *key_ns,
    const char *key_name, const uint8_t *key, size_t key_len);
/* Raw RSA (framework/raw-rsa-keyring.md). Takes ownership of the keys;
 * either may be NULL (encrypt needs a public or private key, decrypt a
 * private key). PKCS #1 v1.5 is refused for encryption. */
int ward_keyring_raw_rsa_new(struct ward_keyring **out, const char *key_ns,
    const char *key_name, struct evp_pkey_st *public_key,
    struct evp_pkey_st *private_key, enum ward_rsa_padding padding);
/* Multi-keyring: the first is the generator, the others wrap the same data
 * key; on decrypt, any one that opens a key wins. Takes ownership. */
int ward_keyring_multi_new(
    struct ward_keyring **out, struct ward_keyring **keyrings, size_t n);

/*
 * Encryption: push plaintext in, ciphertext goes to sink in large writes.
 * ward_enc_new generates the data key through the keyring and writes the
 * header; ward_enc_finish writes the final frame and, for signed suites,
 * the footer. On any error the message is unusable: free it.
 */
struct ward_enc_params {
	uint16_t suite_id; /* 0: WARD_SUITE_DEFAULT */
	uint32_t frame_len; /* 0: WARD_FRAME_LEN_DEFAULT */
	const struct ward_ec *ec; /* may be NULL; aws-crypto-* keys refused */
};
struct ward_enc;
int ward_enc_new(struct ward_enc **out, const struct ward_enc_params *p,
    struct ward_keyring *kr, ward_write_fn sink, void *sink_ctx);
int ward_enc_write(struct ward_enc *e, const uint8_t *p, size_t n);
int ward_enc_finish(struct ward_enc *e);
void ward_enc_free(struct ward_enc *e);

/*
 * Decryption: pull authenticated plaintext out. ward_dec_next returns a
 * pointer to the next run of plaintext (valid until the next call) and
 * *n == 0 once the whole message, its signature and the absence of
 * trailing bytes are verified. Release rule (docs/formats.md): a regular
 * frame is returned once its tag verifies; the final frame (or a
 * non-framed body) only once the footer signature and the end of input
 * are verified too.
 */
enum ward_commitment {
	WARD_COMMIT_REQUIRE = 0, /* committing (v2) suites only */
	WARD_COMMIT_ALLOW_LEGACY = 1, /* also v1 suites (no commitment) */
};
struct ward_dec_params {
	/* Pairs that must be in force: present in the header with the same
	 * value, or else authenticated-only (ESDK "reproduced context"). */
	const struct ward_ec *required_ec;
	enum ward_commitment commitment;
	size_t max_edks; /* 0: WARD_MAX_EDKS_DEFAULT */
	uint32_t max_frame_len; /* 0: WARD_FRAME_LEN_MAX */
};
struct ward_dec;
int ward_dec_new(struct ward_dec **out, const struct ward_dec_params *p,
    struct ward_keyring *kr, ward_read_fn src, void *src_ctx);
/* Decrypt a message held in memory, without copying it: p must stay valid
 * and unchanged until ward_dec_free. */
int ward_dec_new_mem(struct ward_dec **out, const struct ward_dec_params *p,
    struct ward_keyring *kr, const uint8_t *msg, size_t len);
/* Read, open and authenticate the header (ward_dec_next does it too). */
int ward_dec_header(struct ward_dec *d);
const struct ward_suite *ward_dec_suite(const struct ward_dec *d);
/* The context stored in the header (valid after the header). */
const struct ward_ec *ward_dec_context(const struct ward_dec *d);
int ward_dec_next(struct ward_dec *d, const uint8_t **p, size_t *n);
/* ward_read_fn adapter over ward_dec_next (ctx is the struct ward_dec). */
int ward_dec_read(void *ctx, uint8_t *buf, size_t cap, size_t *got);
void ward_dec_free(struct ward_dec *d);

/*
 * Header parsing, exposed for tests and fuzzing. Parses the header body
 * and its authentication fields from p; *need_more is set when p ends
 * before the header does.
 */
struct ward_header {
	uint8_t version;
	uint16_t suite_id;
	const struct ward_suite *suite;
	uint8_t message_id[WARD_MESSAGE_ID_MAX];
	size_t message_id_len;
	struct ward_ec ec;
	struct ward_edk_list edks;
	uint8_t content_type; /* 1 non-framed, 2 framed */
	uint32_t frame_len;
	uint8_t suite_data[32]; /* v2: the commit key */
	uint8_t iv[WARD_GCM_IV_LEN]; /* v1 header IV; zeros for v2 */
	uint8_t tag[WARD_GCM_TAG_LEN];
	size_t body_len; /* bytes covered by the header tag */
	size_t len; /* body + authentication */
};
int ward_header_parse(const uint8_t *p, size_t len, size_t max_edks,
    struct ward_header *h, bool *need_more);
void ward_header_free(struct ward_header *h);

/*
 * Whole-path operations used by the CLI. A NULL or "-" path is stdin or
 * stdout. A directory input is packed as a tar (EC ward:format=tar);
 * such a message decrypts into a directory. File and directory outputs
 * appear only after the whole message authenticated; on failure nothing
 * is left behind.
 */
struct ward_path_opts {
	bool force; /* replace an existing output file */
	bool progress; /* force the progress bar */
	uint64_t max_entries; /* archive restore limits; 0: defaults */
	uint64_t max_bytes;
};
#define WARD_ARCHIVE_MAX_ENTRIES_DEFAULT 1000000u
#define WARD_ARCHIVE_MAX_BYTES_DEFAULT (64ULL << 30)
int ward_encrypt_path(const char *in, const char *out,
    const struct ward_enc_params *p, struct ward_keyring *kr,
    const struct ward_path_opts *o);
int ward_decrypt_path(const char *in, const char *out,
    const struct ward_dec_params *p, struct ward_keyring *kr,
    const struct ward_path_opts *o);

/* Directory <-> tar stream (libarchive), with the restore checks of
 * docs/formats.md. */
int ward_archive_pack(const char *dir, ward_write_fn sink, void *sink_ctx);
int ward_archive_unpack(ward_read_fn src, void *src_ctx, const char *dest,
    const struct ward_path_opts *o);

#endif
