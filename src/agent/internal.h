/*
 * The agent's parts: server.c (connections, hello, dispatch, ATTEST),
 * workspace.c (file operations, PUT/GET streams), exec.c (EXEC, CANCEL),
 * keys.c (key release: attested KMS Recipient through the proxy).
 */
#ifndef WARD_AGENT_INTERNAL_H
#define WARD_AGENT_INTERNAL_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "ward/agent.h"
#include "ward/envelope.h"
#include "ward/transport.h"

struct ward_keyring;
struct agent_put; /* workspace.c */
struct agent_exec; /* exec.c */
struct agent_infer; /* infer.c */
struct agent_models; /* infer.c */

struct agent {
	struct ward_agent_opts o;
	char ws_path[PATH_MAX]; /* the workspace directory */
	int ws_fd; /* O_PATH|O_DIRECTORY descriptor of it */
	uint64_t ws_max; /* bytes the workspace may hold */
	char apps_path[PATH_MAX]; /* where exec unpacks apps (0700) */
	struct ward_addr kms_proxy;
	char nsm_path[PATH_MAX];

	pthread_mutex_t lock; /* guards what follows */
	unsigned conns; /* open connections */
	struct agent_conn *conn_list;
	uint64_t exec_seq; /* names apps_path/<seq> directories */

	struct agent_models *models; /* infer.c: open models, their lock */
};

struct agent_conn {
	struct agent *a;
	int fd;
	pthread_mutex_t wlock; /* one frame at a time on fd */
	bool broken; /* a write failed: the peer is gone */

	pthread_mutex_t lock; /* guards the lists below */
	struct agent_put *puts; /* PUTs in progress (workspace.c) */
	struct agent_exec *execs; /* EXECs running (exec.c) */
	struct agent_infer *infers; /* INFERs receiving input (infer.c) */
	unsigned infer_running; /* INFERs past END, on their threads */
	pthread_cond_t infer_done; /* signalled as infer_running drops */

	struct agent_conn *next; /* server.c's list of open connections */
};

/*
 * Send one message on c (thread-safe). 0, or -WARD_EIO once the peer is
 * gone (then c->broken is set and later sends fail at once).
 */
int agent_send(struct agent_conn *c, const struct ward_msg *m);
/* OK for id with no fields. */
int agent_send_ok(struct agent_conn *c, uint64_t id);
/* ERR for id with code and a formatted message. */
int agent_send_err(struct agent_conn *c, uint64_t id, const char *code,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* ERR for id from a ward error: ward_err_code(r) and ward_errmsg(). */
int agent_send_ward_err(struct agent_conn *c, uint64_t id, int r);

/*
 * Handlers. Each is called on the connection's reader thread with a
 * decoded message it owns until it returns (m->data points into the frame,
 * valid only during the call). Return 0 to keep reading (protocol errors
 * have been answered with ERR), or a negative ward error to close the
 * connection (the peer broke the protocol or is gone).
 */
int agent_attest_handle(struct agent_conn *c, struct ward_msg *m);

/* Workspace: STAT LIST READ WRITE CREATE TRUNCATE UNLINK MKDIR RMDIR
 * RENAME CHMOD UTIMENS STATFS PUT GET, and DATA/END for PUT ids. */
int agent_ws_init(struct agent *a);
/* mkdir -p, mode 0700 for what it makes (workspace.c). */
int agent_mkdirs(const char *path);
void agent_ws_fini(struct agent *a);
int agent_ws_handle(struct agent_conn *c, struct ward_msg *m);
/* Open path (a workspace path as in messages) beneath the workspace with
 * open(2) flags; errors name the path. For exec and model loading. */
int agent_ws_open(struct agent *a, const char *path, int flags, int *fd);
/* True when id is a PUT in progress on c (DATA/END go to the workspace). */
bool agent_ws_owns(struct agent_conn *c, uint64_t id);
/* The connection is closing: drop unfinished PUTs (nothing of them stays). */
void agent_ws_conn_close(struct agent_conn *c);

/* Exec: EXEC and CANCEL. EXEC runs on its own thread; its OUT/EXIT/ERR
 * frames go through agent_send. */
int agent_exec_init(struct agent *a);
int agent_exec_handle(struct agent_conn *c, struct ward_msg *m);
/* The connection is closing: kill its running apps, wait for their
 * threads, wipe their directories. */
void agent_exec_conn_close(struct agent_conn *c);

/* Infer: INFER, and DATA/END for INFER ids. */
int agent_infer_init(struct agent *a);
void agent_infer_fini(struct agent *a);
int agent_infer_handle(struct agent_conn *c, struct ward_msg *m);
/* True when id is an INFER receiving its input on c. */
bool agent_infer_owns(struct agent_conn *c, uint64_t id);
/* The connection is closing: drop inputs in progress, wait for the
 * requests running on their threads. */
void agent_infer_conn_close(struct agent_conn *c);

/* The answer's JSON (docs/protocol.md "infer") for rows predictions of
 * per_row floats each (infer.c; also bench/infer's native baseline). */
struct agent_runtime;
struct agent_model_info;
int agent_infer_answer(const uint8_t hash[48], const char *pcr0,
    const struct agent_runtime *rt, const struct agent_model_info *info,
    const float *pred, size_t rows, size_t per_row, struct ward_buf *out);

/* Rows of an INFER's input (rows.c): CSV or JSON into a dense row-major
 * matrix of floats, NaN for missing values. */
enum agent_fmt { AGENT_FMT_AUTO, AGENT_FMT_CSV, AGENT_FMT_JSON };
struct agent_rows {
	float *v; /* rows * cols values; cleansed by agent_rows_free */
	size_t rows, cols;
	size_t n, cap; /* values held, room */
};
/* -WARD_EFORMAT naming the row and value, or -WARD_ELIMIT over
 * max_cells values. */
int agent_rows_parse(const uint8_t *p, size_t n, enum agent_fmt f,
    size_t max_cells, struct agent_rows *out);
void agent_rows_free(struct agent_rows *r);

/*
 * A model runtime (runtime_xgboost.c): loads a model from a buffer and
 * predicts batches. Another runtime is another table; the protocol and
 * infer.c do not change.
 */
enum agent_task {
	AGENT_TASK_BINARY, /* one probability per row: of class 1 */
	AGENT_TASK_MULTI, /* one probability per class per row */
	AGENT_TASK_CLASS, /* one class index per row */
	AGENT_TASK_VALUE, /* one value per row (regression, ranking) */
};
struct agent_model_info {
	size_t features; /* columns a row must have */
	enum agent_task task;
	char objective[64]; /* the runtime's name for what it predicts */
};
struct agent_runtime {
	const char *name; /* "xgboost" */
	/* Load from p/n (the caller cleanses and frees the buffer after). On
	 * a bad model -WARD_EFORMAT; when the runtime is not in this image,
	 * -WARD_EUNSUPPORTED saying how to add it. */
	int (*load)(const uint8_t *p, size_t n, void **model,
	    struct agent_model_info *info);
	/* rows x cols floats in; *out is rows * *per_row floats (free with
	 * free(); cleansed by the caller). Safe to call from several threads
	 * on one model. */
	int (*predict)(void *model, const float *x, size_t rows, size_t cols,
	    float **out, size_t *per_row);
	void (*free)(void *model);
};
extern const struct agent_runtime agent_runtime_xgboost;

/*
 * Key release: a KMS keyring for the request's credentials, region and
 * endpoint, reaching KMS through a->kms_proxy, whose Decrypt carries a
 * Recipient (an RSA key only this agent holds and an NSM attestation
 * document binding it).
 * m->key_ids limit which keys may open the message (none: any aws-kms
 * key). Free with agent_keys_free; credentials are zeroed then.
 */
struct agent_keys;
int agent_keys_new(struct agent *a, const struct ward_msg *m,
    struct agent_keys **out, struct ward_keyring **keyring);
void agent_keys_free(struct agent_keys *k);
/*
 * The keyring of agent_keys_new, watched: a failure that comes from it
 * (KMS said no, the proxy is down, the NSM failed) is told apart from one
 * of the message itself (a bad tag is DecryptFailed, not AccessDenied).
 * With app_keys, a message none of whose data keys is under the image's
 * --app-key keys is refused before KMS is asked. Set inner (from
 * agent_keys_new) before use; nothing to free.
 */
struct agent_watch {
	struct ward_keyring kr;
	struct ward_keyring *inner;
	struct agent *a;
	bool app_keys;
	int err; /* the inner keyring's first failure */
	double seconds; /* spent in it: attestation, KMS, unwrapping */
	bool foreign; /* not under the image's --app-key keys */
};
void agent_watch_init(struct agent_watch *w, struct agent *a, bool app_keys);
/* After a decryption under w failed with *r: its ERR code (NULL when
 * none of these fits); when KMS refused the enclave, *r gets a prefix
 * naming the enclave's PCR0. */
const char *agent_watch_code(const struct agent_watch *w, int *r);

/* Make the first recipient key in the background, at agent start. */
void agent_keys_warm(void);
/* At agent exit: stop making keys (waits for one in the making). */
void agent_keys_stop(void);

#endif
