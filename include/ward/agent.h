/*
 * ward agent: the in-enclave server and its protocol (docs/protocol.md).
 *
 * A connection carries frames (ward_frame_*, transport.h); each frame body
 * is one CBOR map, a message. This header has the message codec, shared by
 * the agent and the host client, and the agent's entry point.
 */
#ifndef WARD_AGENT_H
#define WARD_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ward/util.h"

#define WARD_AGENT_PORT 5000u
#define WARD_AGENT_VERSION 1u
/* Senders cut DATA, OUT, WRITE and READ payloads at this size. */
#define WARD_AGENT_CHUNK (256u * 1024u)
/* Limits the decoder enforces (docs/protocol.md "Limits"). */
#define WARD_MSG_PATH_MAX 4096u
#define WARD_MSG_NAME_MAX 255u
#define WARD_MSG_ARGS_MAX 256u /* argv and env entries each */
#define WARD_MSG_ARG_MAX 32768u /* bytes in one argv or env entry */
#define WARD_MSG_LIST_MAX 4096u /* entries in one LIST reply */
#define WARD_MSG_TEXT_MAX 4096u /* code, message, software, credentials */
#define WARD_MSG_ATTEST_FIELD_MAX 1024u /* nonce, user data, public key */
#define WARD_MSG_DOC_MAX 16384u /* an attestation document */

enum ward_msg_type {
	WARD_MSG_NONE = 0,
	WARD_MSG_HELLO, /* both ways, first on a connection */
	/* requests (host -> agent) */
	WARD_MSG_ATTEST,
	WARD_MSG_STAT,
	WARD_MSG_LIST,
	WARD_MSG_READ,
	WARD_MSG_WRITE,
	WARD_MSG_CREATE,
	WARD_MSG_TRUNCATE,
	WARD_MSG_UNLINK,
	WARD_MSG_MKDIR,
	WARD_MSG_RMDIR,
	WARD_MSG_RENAME,
	WARD_MSG_CHMOD,
	WARD_MSG_UTIMENS,
	WARD_MSG_STATFS,
	WARD_MSG_PUT,
	WARD_MSG_GET,
	WARD_MSG_EXEC,
	WARD_MSG_CANCEL,
	WARD_MSG_INFER,
	/* streams (DATA both ways, END host -> agent) */
	WARD_MSG_DATA,
	WARD_MSG_END,
	/* replies (agent -> host) */
	WARD_MSG_OK,
	WARD_MSG_ERR,
	WARD_MSG_OUT,
	WARD_MSG_EXIT,
	WARD_MSG_TYPE_COUNT
};

/* The wire name of a type ("stat"), or NULL. */
const char *ward_msg_type_name(enum ward_msg_type t);

/* A file's attributes; times are nanoseconds since the epoch. */
struct ward_msg_stat {
	uint32_t mode; /* st_mode: type and permission bits */
	uint64_t size;
	uint64_t nlink;
	int64_t atime_ns, mtime_ns, ctime_ns;
};

struct ward_msg_dirent {
	char *name;
	struct ward_msg_stat st;
};

struct ward_msg_statfs {
	uint64_t bsize, blocks, bfree, files, ffree, namemax;
};

/* AWS credentials sent with a request; the decoder marks them secret and
 * ward_msg_free zeroes them. */
struct ward_msg_cred {
	char *access_key_id;
	char *secret_access_key;
	char *session_token; /* NULL when none */
};

/*
 * One message. Which fields are meaningful depends on type (the table in
 * docs/protocol.md); has_* say whether an optional field was present.
 * Strings are NUL-terminated copies (never containing NUL). Byte strings
 * (data, nonce, ...) point into the decoded frame when decoded, so the
 * frame must outlive the message; when encoding they are borrowed.
 */
struct ward_msg {
	enum ward_msg_type type;
	uint64_t id;

	/* HELLO */
	uint64_t version;
	char *software;
	uint64_t max_frame;

	/* paths: STAT LIST READ WRITE CREATE TRUNCATE UNLINK MKDIR RMDIR
	 * RENAME (from) CHMOD UTIMENS PUT GET; to: RENAME; app: EXEC */
	char *path;
	char *to;
	char *app;
	uint64_t offset; /* READ WRITE LIST */
	uint64_t length; /* READ: bytes wanted; LIST: entries wanted */
	uint64_t size; /* TRUNCATE; PUT (expected, optional); OK of PUT/GET */
	bool has_size;
	uint32_t mode; /* CREATE MKDIR CHMOD PUT */
	bool exclusive; /* CREATE: fail if it exists; RENAME: noreplace */
	int64_t atime_ns, mtime_ns; /* UTIMENS */
	bool has_atime, has_mtime; /* absent: leave as is */

	/* payload: WRITE DATA OUT; OK of READ */
	const uint8_t *data;
	size_t data_len;

	/* ATTEST */
	const uint8_t *nonce, *user_data, *public_key;
	size_t nonce_len, user_data_len, public_key_len;
	/* OK of ATTEST */
	const uint8_t *document;
	size_t document_len;

	/* EXEC */
	char **argv; /* argc entries */
	size_t argc;
	char **env; /* "K=V" */
	size_t envc;
	char **key_ids; /* KMS keys the app may be under; none: any */
	size_t key_idc;
	char **context; /* "k=v" pairs the message must carry */
	size_t contextc;
	struct ward_msg_cred cred;
	bool has_cred;
	char *region;
	char *endpoint; /* KMS endpoint URL as the enclave sees it */

	/* CANCEL */
	uint64_t target; /* the request id to cancel */

	/* INFER: path is the model's workspace path; the input follows as
	 * DATA and END; key_ids, cred, region, endpoint as for EXEC */
	char *format; /* "csv" or "json"; NULL: told from the input */
	bool receipt; /* answer with a receipt's attestation document */
	/* OK of INFER: SHA-384 of the model's ciphertext */
	const uint8_t *model_hash;
	size_t model_hash_len;

	/* OUT */
	uint32_t fd; /* 1 or 2 */

	/* EXIT: exactly one of */
	bool has_status, has_signal;
	int64_t status;
	uint32_t signal;
	/* EXIT, optional: how long key release took in the enclave
	 * (attestation + KMS Decrypt with Recipient + unwrap), ns */
	uint64_t key_ns;
	bool has_key_ns;

	/* ERR */
	char *code; /* docs/protocol.md "Error codes" */
	char *message;

	/* OK of STAT */
	struct ward_msg_stat st;
	bool has_st;
	/* OK of LIST */
	struct ward_msg_dirent *entries;
	size_t entryc;
	bool more; /* LIST: entries follow from offset + entryc */
	/* OK of STATFS */
	struct ward_msg_statfs fs;
	bool has_fs;
	/* OK of WRITE: bytes written (in size) */
};

/*
 * Decode one frame body. Checks the fields that type needs (present, of
 * the right CBOR type, within the limits above) and ignores unknown keys.
 * -WARD_EFORMAT with a message naming the field on anything else; the
 * message is then freed. The decoder never allocates more than a small
 * multiple of n.
 */
int ward_msg_decode(const uint8_t *p, size_t n, struct ward_msg *out);
/* Encode m (only the fields its type uses) as one frame body. */
int ward_msg_encode(const struct ward_msg *m, struct ward_buf *out);
/*
 * Encode m without its payload (m->data is ignored) but announcing n
 * payload bytes, which the caller sends right after as the rest of the
 * same frame (ward_frame_write2): large payloads are never copied. For
 * DATA, OUT, WRITE, and OK with no other result.
 */
int ward_msg_encode_head(
    const struct ward_msg *m, size_t n, struct ward_buf *out);
/* Free what decode allocated and zero the credentials; m is then empty. */
void ward_msg_free(struct ward_msg *m);

/*
 * Receipts (docs/protocol.md "infer"): the user data of a receipt's
 * attestation document is WARD_RECEIPT_TAG followed by
 * SHA-384(WARD_RECEIPT_TAG || SHA-384(model ciphertext) ||
 * SHA-384(input) || SHA-384(output)). The agent's ATTEST refuses user data
 * that starts with the tag, so only INFER can make one.
 */
#define WARD_RECEIPT_TAG "ward-receipt-v1:"
#define WARD_RECEIPT_TAG_LEN 16u
#define WARD_RECEIPT_UD_LEN (WARD_RECEIPT_TAG_LEN + 48u)
int ward_receipt_user_data(const uint8_t model[48], const uint8_t input[48],
    const uint8_t output[48], uint8_t ud[WARD_RECEIPT_UD_LEN]);

/* ERR codes (docs/protocol.md): errno names such as "ENOENT", and: */
#define WARD_CODE_BAD_REQUEST "BadRequest"
#define WARD_CODE_UNSUPPORTED "Unsupported"
#define WARD_CODE_VERSION "VersionMismatch"
#define WARD_CODE_BUSY "Busy"
#define WARD_CODE_LIMIT "LimitExceeded"
#define WARD_CODE_ACCESS_DENIED "AccessDenied" /* KMS refused the key */
#define WARD_CODE_KMS "KMSError"
#define WARD_CODE_DECRYPT "DecryptFailed"
#define WARD_CODE_ATTEST "AttestationFailed"
#define WARD_CODE_CANCELLED "Cancelled"
#define WARD_CODE_INTERNAL "Internal"
#define WARD_CODE_BAD_INPUT "BadInput" /* INFER: rows do not parse/fit */
#define WARD_CODE_BAD_MODEL "BadModel" /* INFER: the model does not load */

/* errno for an errno-name code ("ENOENT"), else EIO. */
int ward_code_errno(const char *code);
/* The errno-name code for an errno value ("EIO" for unknown ones). */
const char *ward_errno_code(int err);
/* The ERR code for a ward error (WARD_EAUTH -> AccessDenied, ...). */
const char *ward_err_code(int r);
/* The ward error for an ERR code (AccessDenied -> -WARD_EAUTH, ...). */
int ward_code_err(const char *code);

/* ------------------------------------------------------------------ */
/* The agent                                                          */

struct ward_agent_opts {
	const char *listen; /* address; NULL: vsock:ANY:5000 */
	const char *workspace; /* NULL: /workspace */
	uint64_t workspace_max; /* bytes; 0: half the memory */
	const char
	    *kms_proxy; /* address of the KMS proxy; NULL: vsock:3:8000 */
	const char
	    *apps_dir; /* where exec unpacks apps; NULL: /run/ward-apps */
	const char *nsm; /* NULL: $WARD_NSM, else /dev/nsm */
	const char *ca_file; /* TLS roots for KMS over https; NULL: default */
	/* KMS keys (ARNs) an app bundle may be encrypted under; the image's
	 * command line sets them, so they are part of PCR0. None: any key
	 * (the host may then run bundles of its own beside the vendor's). */
	const char *const *app_keys;
	size_t app_keyc;
	unsigned max_conns; /* 0: 64 */
	unsigned io_timeout_s; /* a peer stalled mid-frame or not reading;
				  0: 30 */
	int ready_fd; /* -1, or a descriptor that gets "ready\n" */
	/* INFER: the input a request may send (bytes; 0: 64 MiB), models
	 * kept open (0: 8) and for how long after their last use (seconds;
	 * 0: 3600) */
	uint64_t infer_input_max;
	unsigned model_cache;
	unsigned model_ttl_s;
};

/* Serve until SIGTERM or SIGINT; returns 0 then. */
int ward_agent_run(const struct ward_agent_opts *o);

#endif
