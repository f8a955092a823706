/* kmsd's private interfaces: the store, blobs, the audit log, handlers. */
#ifndef WARD_KMSD_INTERNAL_H
#define WARD_KMSD_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "ward/attest.h"
#include "ward/envelope.h"
#include "ward/kms.h"
#include "ward/kmsd.h"

#define KMSD_ROOT_KEY_LEN 32
#define KMSD_ACCOUNT_LEN 12
#define KMSD_KEY_ID_LEN 36 /* UUID text */
#define KMSD_ARN_MAX 320
#define KMSD_NAME_MAX 64 /* principal names */
#define KMSD_ALIAS_MAX 256
#define KMSD_DESC_MAX 8192
#define KMSD_TAGS_MAX 50
#define KMSD_GRANTS_MAX 50000
#define KMSD_EC_PAIRS_MAX 64
#define KMSD_EC_BYTES_MAX 8192

/* ------------------------------------------------------------------ */
/* store.c: the state directory and its database                      */

struct kmsd_state {
	char *dir;
	char region[32];
	uint8_t root_key[KMSD_ROOT_KEY_LEN]; /* secret */
	uint64_t serial; /* unique per open state in this process */
	struct kmsd_gen *gen; /* DIR/generation, mapped (store.c) */
	int gen_fd; /* its descriptor, holding a shared flock */
};

/* Open an existing state (root key loaded; database schema checked). */
int kmsd_state_open(const char *dir, struct kmsd_state **out);
void kmsd_state_close(struct kmsd_state *s);
/* A connection per thread; opened on first use, closed by the caller
 * before the state (its hooks count commits in s->gen). */
int kmsd_db_open(const struct kmsd_state *s, sqlite3 **out);
int kmsd_db_err(sqlite3 *db, const char *what);
/* Cached prepared statements (store.c explains). */
int kmsd_prepare(
    sqlite3 *db, const char *sql, int n, sqlite3_stmt **st, const char **tail);
void kmsd_finish(sqlite3_stmt *st);
void kmsd_db_close(sqlite3 *db);
/* Free what this thread cached (the root key's cipher context, parsed
 * policies); the server calls these as each worker thread exits. */
void kmsd_store_thread_release(void);
void kmsd_ops_thread_release(void);

/* Wrap/unwrap secrets under the root key, bound to a label (AAD). */
int kmsd_wrap(struct kmsd_state *s, const char *label, const uint8_t *pt,
    size_t n, struct ward_buf *out);
int kmsd_unwrap(struct kmsd_state *s, const char *label, const uint8_t *ct,
    size_t n, struct ward_buf *out);

struct kmsd_principal {
	char account[KMSD_ACCOUNT_LEN + 1];
	char name[KMSD_NAME_MAX + 1];
	char arn[KMSD_ARN_MAX];
	char akid[32];
};
/* session: temporary credentials (an ASIA... key with a SessionToken
 * that every request must carry, as STS issues them). */
int kmsd_principal_create(struct kmsd_state *s, sqlite3 *db,
    const char *account, const char *name, bool session, json_t **out);
/* SigV4 lookup: the principal's secret (marked secret) by access key, and
 * the hex SHA-256 of its session token ("" for long-term keys). Returns
 * -WARD_EAUTH for an unknown key. */
int kmsd_principal_lookup(struct kmsd_state *s, sqlite3 *db, const char *akid,
    struct kmsd_principal *p, struct ward_buf *secret, char token_sha256[65]);

struct kmsd_key {
	char id[KMSD_KEY_ID_LEN + 1];
	char arn[KMSD_ARN_MAX];
	char account[KMSD_ACCOUNT_LEN + 1];
	char state[24]; /* Enabled, Disabled, PendingDeletion */
	double created;
	double deletion_date; /* 0 unless PendingDeletion */
	int pending_days;
	char *description;
	char *policy;
	int rotation; /* automatic rotation period in days; 0: off */
	double rotated; /* when the current material was made */
	uint32_t version; /* current material version, from 1 */
};
void kmsd_key_free(struct kmsd_key *k);
int kmsd_key_get(sqlite3 *db, const char *id, struct kmsd_key *k);
/* The same through this thread's cache of key rows, which is used only
 * while no commit has begun since the row was read (store.c explains). */
int kmsd_key_get_cached(const struct kmsd_state *s, sqlite3 *db, const char *id,
    struct kmsd_key *k);
/* Create DIR/generation if it is missing (init and serve only). */
int kmsd_gen_create(const char *dir);
/* Turn the caches back on after a writer died mid-commit, if no other
 * process has the state open (warns either way). */
void kmsd_gen_even(struct kmsd_state *s);
/* A new key row; later changes go through kmsd_key_update. */
int kmsd_key_insert(sqlite3 *db, const struct kmsd_key *k);
int kmsd_key_delete(sqlite3 *db, const char *id);
/* Write one group of columns of an existing key (store.c explains). For
 * KMSD_SET_VERSION the row changes only if its version is still
 * old_version; for KMSD_SET_DELETION only if it is pending deletion
 * (old_version 1) or not (0); KMSD_SET_STATE never changes a key pending
 * deletion. *changed (may be NULL) says whether a row changed. */
enum kmsd_key_set {
	KMSD_SET_STATE,
	KMSD_SET_DELETION, /* state, deletion_date, pending_days */
	KMSD_SET_DESCRIPTION,
	KMSD_SET_POLICY,
	KMSD_SET_ROTATION,
	KMSD_SET_VERSION, /* version, rotated */
};
int kmsd_key_update(sqlite3 *db, const struct kmsd_key *k,
    enum kmsd_key_set what, uint32_t old_version, bool *changed);
/* An AES-256-GCM context under the material of version v, for dir
 * (WARD_GCM_SEAL or WARD_GCM_OPEN): the thread's own, cached with the
 * unwrapped material; valid until this thread's next call. -WARD_EKEY
 * when the key has no such version. */
int kmsd_material_gcm(struct kmsd_state *s, sqlite3 *db, const char *id,
    uint32_t v, int dir, struct ward_gcm **g);
int kmsd_material_add(
    struct kmsd_state *s, sqlite3 *db, const char *id, uint32_t v);

int kmsd_begin(sqlite3 *db);
int kmsd_commit(sqlite3 *db);
void kmsd_rollback(sqlite3 *db);

/* ------------------------------------------------------------------ */
/* json.c: request bodies                                               */

/* A JSON text (an object or array at the top, no duplicate keys) into
 * jansson values: exactly what json_loadb(JSON_REJECT_DUPLICATES) accepts
 * and builds, faster. NULL with the reason in err (at most errlen bytes,
 * NUL-terminated) when the text is not accepted. */
json_t *kmsd_json_parse(const char *text, size_t n, char *err, size_t errlen);

/* ------------------------------------------------------------------ */
/* blob.c: ciphertext blobs (kms-and-esdk.md §1.7)                     */

/*
 * magic "WK" | version 1 | key id (16 bytes, the UUID) | material version
 * (4, BE) | IV (12) | ciphertext | tag (16). GCM AAD = the 35 header bytes
 * || the canonical encryption context (§5.4 serialization).
 */
#define KMSD_BLOB_HDR 35
#define KMSD_BLOB_OVERHEAD (KMSD_BLOB_HDR + 16)
int kmsd_blob_seal(const char *key_id, uint32_t version, struct ward_gcm *g,
    const struct ward_ec *ec, const uint8_t *pt, size_t n,
    struct ward_buf *out);
/* Parse the header only: the key id and material version. */
int kmsd_blob_peek(const uint8_t *p, size_t n, char key_id[KMSD_KEY_ID_LEN + 1],
    uint32_t *version);
int kmsd_blob_open(const uint8_t *p, size_t n, struct ward_gcm *g,
    const struct ward_ec *ec, struct ward_buf *out);
int kmsd_uuid_to_bytes(const char *id, uint8_t out[16]);
void kmsd_uuid_from_bytes(const uint8_t in[16], char out[KMSD_KEY_ID_LEN + 1]);

/* ------------------------------------------------------------------ */
/* audit.c: the hash-chained audit log                                */

struct kmsd_audit;
int kmsd_audit_open(const char *dir, struct kmsd_audit **out);
/* Append one entry (fields of obj; "seq", "prev" and "hash" added). */
int kmsd_audit_append(struct kmsd_audit *a, const char *fields, size_t fn);
void kmsd_audit_close(struct kmsd_audit *a);

/* ------------------------------------------------------------------ */
/* ops.c: the operations                                              */

struct kmsd_server;

/* One authenticated request being handled. */
struct kmsd_req {
	struct kmsd_state *st;
	sqlite3 *db;
	const struct ward_attest_roots *roots;
	struct kmsd_principal caller;
	const char *op; /* "Decrypt" */
	json_t *in; /* the request object */
	json_t *out; /* the response object (set by the handler) */
	struct ward_kms_error err;
	/* for the audit log */
	char key_arn[KMSD_ARN_MAX];
	char module_id[WARD_ATTEST_MODULE_ID_MAX + 1];
	char pcr0[97];
	char why[512];
	char source_key_arn[KMSD_ARN_MAX]; /* ReEncrypt's source */
	char source_why[512];
	bool explicit_deny; /* the last authorization failed on a Deny */
};

/* Dispatch to the handler; 0 with rq->out set, or < 0 with rq->err. */
int kmsd_dispatch(struct kmsd_req *rq);
bool kmsd_op_known(const char *op);

#endif
