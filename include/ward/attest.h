/*
 * ward attest: attestation documents (COSE_Sign1 over CBOR), their
 * verification to the AWS Nitro root or a local root, the NSM API codec,
 * the NSM clients (the Nitro /dev/nsm ioctl, a socket in the sandbox) and
 * the NSM emulation the sandbox enclave runtime embeds. Byte-level facts:
 * shared/specs/nitro.md §2 (NSM) and §3 (documents).
 */
#ifndef WARD_ATTEST_H
#define WARD_ATTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "ward/crypto.h"
#include "ward/util.h"

/*
 * CBOR (RFC 8949), a pull reader on top of libcbor's streaming decoder and
 * a writer on top of its encoders. The reader never allocates for
 * definite-length items (strings are views into the input), accepts
 * definite and indefinite lengths, bounds nesting, and records one
 * WARD_EFORMAT message naming the input (r->what), the field and the
 * offset. Writers always encode minimally, as serde_cbor does.
 */
enum ward_cbor_type {
	WARD_CBOR_UINT = 1,
	WARD_CBOR_NEGINT, /* the value is -1 - item.value */
	WARD_CBOR_BYTES,
	WARD_CBOR_TEXT,
	WARD_CBOR_ARRAY,
	WARD_CBOR_MAP,
	WARD_CBOR_TAG,
	WARD_CBOR_SIMPLE, /* false, true, null, undefined */
	WARD_CBOR_FLOAT,
	WARD_CBOR_BREAK,
};
#define WARD_CBOR_FALSE 20
#define WARD_CBOR_TRUE 21
#define WARD_CBOR_NULL 22
#define WARD_CBOR_UNDEFINED 23
#define WARD_CBOR_MAX_DEPTH 32

struct ward_cbor_item {
	enum ward_cbor_type type;
	bool indefinite; /* chunked string, or container ended by a break */
	uint64_t value; /* int value, tag number, simple value, or count */
	struct ward_bytes str; /* definite BYTES/TEXT: the content, in place */
	size_t offset; /* where the item's head starts in the input */
};

struct ward_cbor_reader {
	const uint8_t *p;
	size_t len;
	size_t pos;
	const char *what; /* names the input in messages */
};
void ward_cbor_reader_init(
    struct ward_cbor_reader *r, const uint8_t *p, size_t len, const char *what);
/* One head; definite strings include their content. */
int ward_cbor_next(struct ward_cbor_reader *r, struct ward_cbor_item *it);
int ward_cbor_peek(const struct ward_cbor_reader *r, struct ward_cbor_item *it);
/* Skip one whole data item (iteratively; depth-bounded). */
int ward_cbor_skip(struct ward_cbor_reader *r);
/* WARD_EFORMAT unless every input byte has been consumed. */
int ward_cbor_end(const struct ward_cbor_reader *r);

/*
 * A string read by ward_cbor_read_bytes/_text: a view into the input when
 * definite, or the chunks joined into owned storage when indefinite.
 */
struct ward_cbor_str {
	struct ward_bytes v;
	uint8_t *owned;
};
void ward_cbor_str_free(struct ward_cbor_str *s);
/* Typed reads: consume one item of the type or fail naming field. */
int ward_cbor_read_uint(
    struct ward_cbor_reader *r, const char *field, uint64_t *out);
int ward_cbor_read_bool(
    struct ward_cbor_reader *r, const char *field, bool *out);
int ward_cbor_read_bytes(struct ward_cbor_reader *r, const char *field,
    size_t max, struct ward_cbor_str *out);
int ward_cbor_read_text(struct ward_cbor_reader *r, const char *field,
    size_t max, struct ward_cbor_str *out);
/* Consume a null if one is next: 1 if it was, 0 if not. */
int ward_cbor_take_null(struct ward_cbor_reader *r);

/* Containers: enter, then loop while ward_cbor_more() returns 1. */
struct ward_cbor_coll {
	bool indefinite;
	uint64_t left; /* entries (pairs for maps) still to read if definite */
	const char *field;
};
int ward_cbor_enter_map(
    struct ward_cbor_reader *r, const char *field, struct ward_cbor_coll *c);
int ward_cbor_enter_array(
    struct ward_cbor_reader *r, const char *field, struct ward_cbor_coll *c);
/* 1: another entry follows; 0: the container ended (its break consumed). */
int ward_cbor_more(struct ward_cbor_reader *r, struct ward_cbor_coll *c);

int ward_cbor_put_uint(struct ward_buf *b, uint64_t v);
int ward_cbor_put_negint(struct ward_buf *b, uint64_t n); /* -1 - n */
int ward_cbor_put_bytes(struct ward_buf *b, const void *p, size_t n);
int ward_cbor_put_text(struct ward_buf *b, const char *s, size_t n);
int ward_cbor_put_textz(struct ward_buf *b, const char *s);
int ward_cbor_put_array(struct ward_buf *b, size_t n);
int ward_cbor_put_map(struct ward_buf *b, size_t n);
int ward_cbor_put_indef_array(struct ward_buf *b);
int ward_cbor_put_indef_map(struct ward_buf *b);
int ward_cbor_put_break(struct ward_buf *b);
int ward_cbor_put_tag(struct ward_buf *b, uint64_t tag);
int ward_cbor_put_bool(struct ward_buf *b, bool v);
int ward_cbor_put_null(struct ward_buf *b);

/* COSE (RFC 8152 §4.4): Sig_structure = ["Signature1", protected,
 * external_aad = h'', payload], from the bytes exactly as they appear in
 * the signed object. What ES384 signs for attestation documents and for
 * EIF signature sections alike. */
int ward_cose_sig_structure(
    struct ward_bytes prot, struct ward_bytes payload, struct ward_buf *out);

/*
 * NSM API (nitro.md §2): requests and responses as serde_cbor encodes
 * them ("externally tagged" enums), byte for byte. Decoding yields views
 * into the input; strings inside NSM messages must be definite-length
 * (serde_cbor and QEMU never chunk them), containers may be either.
 */
#define WARD_NSM_REQUEST_MAX 0x1000 /* NSM_REQUEST_MAX_SIZE */
#define WARD_NSM_RESPONSE_MAX 0x3000 /* NSM_RESPONSE_MAX_SIZE */
#define WARD_NSM_PCR_COUNT 32
#define WARD_NSM_PCR_LEN 48 /* SHA-384 */
#define WARD_NSM_BOOT_PCRS 16 /* PCR0-15 locked by the monitor */
#define WARD_NSM_USER_DATA_MAX 512
#define WARD_NSM_NONCE_MAX 512
#define WARD_NSM_PUBLIC_KEY_MAX 1024
#define WARD_NSM_RANDOM_LEN 256
#define WARD_NSM_EXTEND_MAX 4096
#define WARD_NSM_LOCKED_MAX 64 /* nsm-lib NsmDescription.locked_pcrs */
#define WARD_NSM_IOCTL_RAW 0xC0200A00UL /* _IOWR(0x0A, 0, struct nsm_raw) */
#define WARD_NSM_DEVICE "/dev/nsm"

enum ward_nsm_op {
	WARD_NSM_DESCRIBE_PCR = 1,
	WARD_NSM_EXTEND_PCR,
	WARD_NSM_LOCK_PCR,
	WARD_NSM_LOCK_PCRS,
	WARD_NSM_DESCRIBE_NSM,
	WARD_NSM_ATTESTATION,
	WARD_NSM_GET_RANDOM,
	WARD_NSM_ERROR, /* responses only: the Error(ErrorCode) variant */
};
/* nsm-lib's ErrorCode, same order and values (0..8). */
enum ward_nsm_error {
	WARD_NSM_SUCCESS = 0,
	WARD_NSM_INVALID_ARGUMENT,
	WARD_NSM_INVALID_INDEX,
	WARD_NSM_INVALID_RESPONSE,
	WARD_NSM_READ_ONLY_INDEX,
	WARD_NSM_INVALID_OPERATION,
	WARD_NSM_BUFFER_TOO_SMALL,
	WARD_NSM_INPUT_TOO_LARGE,
	WARD_NSM_INTERNAL_ERROR,
};
enum ward_nsm_digest {
	WARD_NSM_SHA256 = 0,
	WARD_NSM_SHA384,
	WARD_NSM_SHA512,
};
/* An optional byte string: absent (CBOR null) or present, maybe empty. */
struct ward_nsm_opt {
	bool present;
	struct ward_bytes v;
};
struct ward_nsm_request {
	enum ward_nsm_op op;
	uint16_t index; /* DescribePCR, ExtendPCR, LockPCR */
	uint16_t range; /* LockPCRs: locks [0, range) */
	struct ward_bytes data; /* ExtendPCR */
	struct ward_nsm_opt user_data, nonce, public_key; /* Attestation */
};
struct ward_nsm_response {
	enum ward_nsm_op op;
	enum ward_nsm_error error; /* op == WARD_NSM_ERROR */
	bool lock; /* DescribePCR */
	/* DescribePCR/ExtendPCR: the PCR; Attestation: the document;
	 * GetRandom: the random bytes. */
	struct ward_bytes data;
	/* DescribeNSM */
	uint16_t version_major, version_minor, version_patch;
	struct ward_bytes module_id;
	uint16_t max_pcrs;
	uint16_t locked_pcrs[WARD_NSM_LOCKED_MAX];
	size_t locked_pcrs_len;
	enum ward_nsm_digest digest;
};
int ward_nsm_request_encode(
    const struct ward_nsm_request *q, struct ward_buf *out);
int ward_nsm_request_decode(
    const uint8_t *p, size_t n, struct ward_nsm_request *q);
int ward_nsm_response_encode(
    const struct ward_nsm_response *r, struct ward_buf *out);
int ward_nsm_response_decode(
    const uint8_t *p, size_t n, struct ward_nsm_response *r);
const char *ward_nsm_error_name(enum ward_nsm_error e);
const char *ward_nsm_op_name(enum ward_nsm_op op);

/*
 * The Nitro driver's raw message (uapi linux/nsm.h struct nsm_raw, 32
 * bytes): two iovecs. Exposed so tests can check what the ioctl client
 * hands the kernel without a Nitro device.
 */
struct ward_nsm_raw {
	struct {
		uint64_t addr;
		uint64_t len;
	} request, response;
};
void ward_nsm_raw_prepare(struct ward_nsm_raw *raw, const uint8_t *req,
    size_t req_len, uint8_t *resp, size_t resp_cap);

/*
 * NSM clients. where is a device path ("/dev/nsm": the Nitro ioctl) or
 * "unix:PATH" (the sandbox monitor's socket; frames are a 4-byte
 * big-endian length and the CBOR message, both ways). NULL means
 * $WARD_NSM if set, else /dev/nsm.
 */
struct ward_nsm;
int ward_nsm_open(const char *where, struct ward_nsm **out);
void ward_nsm_close(struct ward_nsm *n);
/* One request, one response (resp replaced; at most WARD_NSM_RESPONSE_MAX). */
int ward_nsm_call_raw(struct ward_nsm *n, const uint8_t *req, size_t req_len,
    struct ward_buf *resp);
/* Encode q, call, decode into r (views into raw). An Error response is
 * returned as r->op == WARD_NSM_ERROR with status 0. */
int ward_nsm_call(struct ward_nsm *n, const struct ward_nsm_request *q,
    struct ward_buf *raw, struct ward_nsm_response *r);
/* Typed helpers; an NSM Error becomes a WARD_E* code with its name. */
int ward_nsm_describe_pcr(struct ward_nsm *n, uint16_t index, bool *lock,
    uint8_t value[WARD_NSM_PCR_LEN]);
int ward_nsm_extend_pcr(struct ward_nsm *n, uint16_t index, const uint8_t *data,
    size_t len, uint8_t value[WARD_NSM_PCR_LEN]);
int ward_nsm_lock_pcr(struct ward_nsm *n, uint16_t index);
int ward_nsm_lock_pcrs(struct ward_nsm *n, uint16_t range);
int ward_nsm_get_random(struct ward_nsm *n, uint8_t *out, size_t len);
int ward_nsm_attestation(struct ward_nsm *n,
    const struct ward_nsm_opt *user_data, const struct ward_nsm_opt *nonce,
    const struct ward_nsm_opt *public_key, struct ward_buf *document);

/*
 * Local attestation root (`ward ca init`): a P-384 root certificate and a
 * monitor certificate (CA, pathlen 0) it issues, shaped like AWS's chain.
 * The monitor key signs a short-lived leaf per enclave, and the leaf signs
 * that enclave's documents: cabundle = [root, monitor]. Files in dir:
 * root.pem, root.key (0600), monitor.pem, monitor.key (0600).
 */
struct ward_ca;
int ward_ca_init(const char *dir, bool force);
int ward_ca_load(const char *dir, struct ward_ca **out);
void ward_ca_free(struct ward_ca *ca);
/* The default directory: $WARD_CA_DIR, else WARD_CA_ROOT_DIR for root,
 * else $HOME/.ward/ca. As root, ward_ca_load refuses a directory that
 * anyone but root owns or may write. */
#define WARD_CA_ROOT_DIR "/var/lib/ward/ca"
int ward_ca_default_dir(char *out, size_t cap);
struct ward_bytes ward_ca_root_der(const struct ward_ca *ca);

/*
 * A document signer: a fresh P-384 leaf key and certificate issued by the
 * CA's monitor key, valid for WARD_ATTEST_LEAF_SECONDS and renewed when a
 * document is asked for near its end.
 */
#define WARD_ATTEST_LEAF_SECONDS (3 * 3600)
struct ward_attest_signer;
int ward_attest_signer_new(
    const struct ward_ca *ca, struct ward_attest_signer **out);
void ward_attest_signer_free(struct ward_attest_signer *s);

struct ward_attest_fields {
	struct ward_bytes module_id;
	uint64_t timestamp_ms; /* 0: now */
	uint32_t pcr_mask; /* which PCRs the document carries */
	const uint8_t (
	    *pcrs)[WARD_NSM_PCR_LEN]; /* WARD_NSM_PCR_COUNT entries */
	struct ward_nsm_opt public_key, user_data, nonce;
};
/* Encode the payload as NSM does (definite map, nitro.md §3.1 field
 * order, absent options as null) and sign it: untagged COSE_Sign1, ES384. */
int ward_attest_sign(struct ward_attest_signer *s,
    const struct ward_attest_fields *f, struct ward_buf *out);

/*
 * NSM emulation (nitro.md §2.3 semantics), one per sandbox enclave, embedded
 * by the enclave runtime: PCR registers with extend and lock, DescribeNSM,
 * GetRandom, and Attestation signed by a ward_attest_signer. The monitor
 * sets PCR0-15 from its measurements and locks them before the enclave
 * starts; PCR16-31 start at zero and are the enclave's. Thread-safe.
 */
#define WARD_NSM_VERSION_MAJOR 1
#define WARD_NSM_VERSION_MINOR 0
#define WARD_NSM_VERSION_PATCH 0
struct ward_nsm_server;
/* signer is borrowed and must outlive the server; module_id is copied. */
int ward_nsm_server_new(struct ward_attest_signer *signer,
    const char *module_id, struct ward_nsm_server **out);
/* Set a PCR that is not locked yet (the monitor's measurements). */
int ward_nsm_server_set_pcr(struct ward_nsm_server *s, uint16_t index,
    const uint8_t value[WARD_NSM_PCR_LEN]);
/* Lock PCR0..WARD_NSM_BOOT_PCRS-1, as Nitro does before the enclave runs. */
int ward_nsm_server_lock_boot(struct ward_nsm_server *s);
/* One request in, one response out (resp replaced). Malformed requests get
 * an Error response, not a failure; only resource failures return < 0. */
int ward_nsm_server_handle(struct ward_nsm_server *s, const uint8_t *req,
    size_t n, struct ward_buf *resp);
/* Serve the socket framing on fd until the peer closes it. */
int ward_nsm_server_serve_fd(struct ward_nsm_server *s, int fd);
void ward_nsm_server_free(struct ward_nsm_server *s);

/*
 * Decoding and verification (nitro.md §3.5). ward_attest_parse does the
 * syntactic checks; ward_attest_verify checks the chain to one of the
 * trusted roots at a given time and the COSE signature over the payload
 * exactly as received.
 */
#define WARD_ATTEST_DOC_MAX (16 * 1024)
#define WARD_ATTEST_CABUNDLE_MAX 16
#define WARD_ATTEST_CERT_MAX 1024
/* module ids in documents and DescribeNSM; real ones are like
 * "i-0123456789abcdef0-enc0123456789abcdef" (39 bytes) */
#define WARD_ATTEST_MODULE_ID_MAX 256
struct ward_attest_doc {
	bool tagged; /* COSE tag 18 present */
	struct ward_bytes protected_hdr, payload, signature;
	struct ward_bytes module_id; /* text, not NUL-terminated */
	struct ward_bytes digest; /* "SHA384" */
	uint64_t timestamp_ms;
	uint32_t pcr_mask;
	struct ward_bytes pcrs[WARD_NSM_PCR_COUNT];
	struct ward_bytes certificate;
	struct ward_bytes cabundle[WARD_ATTEST_CABUNDLE_MAX];
	size_t cabundle_len;
	struct ward_nsm_opt public_key, user_data, nonce;
	bool debug; /* PCR0 is all zero: a debug-mode enclave */
	/* private: the input copy and joined chunks the views point into */
	uint8_t *input;
	struct ward_cbor_str
	    owned[3 + 9 + WARD_NSM_PCR_COUNT + WARD_ATTEST_CABUNDLE_MAX];
	size_t owned_len;
};
int ward_attest_parse(const uint8_t *p, size_t n, struct ward_attest_doc **out);
void ward_attest_doc_free(struct ward_attest_doc *d);

/* Trust anchors: the built-in AWS Nitro root and/or local roots. */
#define WARD_ATTEST_ROOT_AWS "aws-nitro-enclaves"
struct ward_attest_roots;
int ward_attest_roots_new(bool with_aws, struct ward_attest_roots **out);
/* Add a PEM certificate file (or DER bytes) as a local root. */
int ward_attest_roots_add_file(struct ward_attest_roots *r, const char *path);
int ward_attest_roots_add_der(
    struct ward_attest_roots *r, const uint8_t *der, size_t n);
void ward_attest_roots_free(struct ward_attest_roots *r);
/* The AWS Nitro Enclaves Root-G1 certificate, DER (533 bytes). */
struct ward_bytes ward_attest_aws_root(void);

struct ward_attest_result {
	bool aws; /* chained to the AWS Nitro root */
	char root_name[128]; /* WARD_ATTEST_ROOT_AWS or the local root's CN */
	char root_sha256[65]; /* hex SHA-256 of the root's DER */
};
/* at: seconds since the epoch at which certificates must be valid. */
int ward_attest_verify(const struct ward_attest_doc *d,
    const struct ward_attest_roots *roots, time_t at,
    struct ward_attest_result *res);

/* Parse RFC 3339 ("2022-09-15T17:44:24Z", offsets, fractions). */
int ward_parse_rfc3339(const char *s, time_t *out);

#endif
