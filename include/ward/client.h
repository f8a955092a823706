/*
 * ward client: the host side of the agent protocol (docs/protocol.md).
 *
 * A ward_client is one connection to an agent, after the HELLO exchange.
 * On it: single requests (ward_client_call), streams in both directions
 * (ward_client_put, ward_client_get), attestation, and EXEC with its
 * output. ward_client_sync mounts the agent's workspace with libfuse3.
 *
 * Errors the agent reports (ERR replies) become ward errors: the code
 * mapped by ward_code_err and the message "enclave: CODE: MESSAGE", so
 * the CLI prints them as they are and exits with a status that says what
 * kind of failure it was.
 */
#ifndef WARD_CLIENT_H
#define WARD_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ward/agent.h"
#include "ward/util.h"

struct ward_aws_credentials;

/* Where the agent is: an address, else vsock CID:WARD_AGENT_PORT. */
struct ward_client_opts {
	const char *agent; /* "unix:/path", "vsock:16:5000", "tcp:h:p" */
	uint32_t cid; /* used when agent is NULL */
	/* Seconds to wait for the agent's next frame while a reply is due
	 * (and for a blocked write); 0: wait forever. */
	unsigned timeout;
};

struct ward_client;

/* Connect and exchange HELLO. A VersionMismatch from the agent is
 * WARD_EUNSUPPORTED naming both versions. */
int ward_client_open(
    const struct ward_client_opts *o, struct ward_client **out);
void ward_client_close(struct ward_client *c);
/* "vsock:16:5000" or the address given, for messages. */
const char *ward_client_name(const struct ward_client *c);
/* The agent's software string from its HELLO ("ward 0.1.0"). */
const char *ward_client_peer(const struct ward_client *c);
/* True once a read or write on the connection failed: it must be closed
 * (a reply may be half read). ERR replies do not break it. */
bool ward_client_broken(const struct ward_client *c);

/* A fresh request id: nonzero, increasing. */
uint64_t ward_client_id(struct ward_client *c);
/* Send one message. */
int ward_client_send(struct ward_client *c, const struct ward_msg *m);
/*
 * Send a DATA (or WRITE) message whose payload p/n is not copied: the
 * message is encoded with an empty payload and the payload follows it in
 * the same frame (m->data and m->data_len are ignored).
 */
int ward_client_send_payload(
    struct ward_client *c, const struct ward_msg *m, const void *p, size_t n);
/*
 * Receive the next message into m (free it with ward_msg_free). Byte
 * strings in m point into c's receive buffer: valid until the next
 * receive. Waits at most the connection's timeout; 1 when wait_ms (>= 0)
 * passed with nothing to read, -WARD_EINTR when a signal
 * ward_signals_install records arrived while waiting.
 */
int ward_client_recv(struct ward_client *c, struct ward_msg *m, int wait_ms);
/* The ward error for an ERR message (recorded, returned). */
int ward_client_err(const struct ward_msg *m);
/*
 * One request, one reply: gives req an id, sends it, and receives the
 * reply with that id into reply (OK; an ERR is returned as a ward error
 * and reply is then empty). A reply for another id breaks the
 * connection (this function is for connections with one request at a
 * time).
 */
int ward_client_call(
    struct ward_client *c, struct ward_msg *req, struct ward_msg *reply);

/* Upload: PUT path with mode (and size when known), the bytes of fd in
 * DATA chunks, END; then the agent's OK. An ERR stops the upload at once.
 * *sent gets the byte count. */
int ward_client_put(struct ward_client *c, const char *path, uint32_t mode,
    int fd, const uint64_t *size, struct ward_progress *progress,
    uint64_t *sent);
/* Download: GET path, DATA written to fd, then OK (its size checked
 * against the bytes received). On failure fd holds a partial copy. */
int ward_client_get(struct ward_client *c, const char *path, int fd,
    struct ward_progress *progress, uint64_t *got);

/* Attestation: ATTEST with the given fields (NULL/0: absent); the
 * document (raw COSE_Sign1) into doc. */
int ward_client_attest(struct ward_client *c, const uint8_t *nonce,
    size_t nonce_len, const uint8_t *user_data, size_t user_data_len,
    struct ward_buf *doc);

/* EXEC: run argv from the encrypted application at app. */
struct ward_client_exec {
	const char *app; /* workspace path of the `ward encrypt`ed bundle */
	char **argv;
	size_t argc;
	char **env; /* "K=V" */
	size_t envc;
	char **key_ids;
	size_t key_idc;
	char **context; /* "k=v" */
	size_t contextc;
	/* NULL: none; zeroed (ward_aws_credentials_clear) once sent */
	struct ward_aws_credentials *cred;
	const char *region;
	const char *endpoint; /* as the enclave reaches KMS */
	int out_fd, err_fd; /* where OUT frames for 1 and 2 go */
};
struct ward_client_exit {
	bool signaled;
	int status; /* exit status, or the signal number */
};
/*
 * Send EXEC (the encoded request, credentials included, is zeroed once
 * sent), copy OUT frames to out_fd/err_fd as they arrive, and return the
 * app's EXIT in *x. A signal ward_signals_install records makes it send
 * CANCEL, wait briefly for the end, and return -WARD_EINTR.
 */
int ward_client_exec(struct ward_client *c, const struct ward_client_exec *e,
    struct ward_client_exit *x);

/*
 * INFER (docs/protocol.md "infer"): predictions from the encrypted model
 * at model (a workspace path) on the rows read from input_fd (CSV or JSON,
 * plaintext or `ward encrypt`ed), streamed in DATA chunks; the answer's
 * JSON goes to out as it arrives. With receipt, the SHA-384s of the input
 * as sent and the answer as received come back, and the attestation
 * document binding them (and the model) goes into document.
 */
struct ward_client_infer {
	const char *model;
	const char *format; /* "csv", "json", NULL: the agent tells */
	int input_fd;
	char **key_ids; /* keys the model may be under; none: any */
	size_t key_idc;
	/* NULL: none; zeroed (ward_aws_credentials_clear) once sent */
	struct ward_aws_credentials *cred;
	const char *region;
	const char *endpoint;
	bool receipt;
	const uint8_t *nonce; /* for the receipt's document; NULL: none */
	size_t nonce_len;
	ward_write_fn out;
	void *out_ctx;
	/* results */
	uint8_t input_sha384[48], output_sha384[48], model_sha384[48];
	uint64_t input_len, output_len;
	struct ward_buf *document; /* filled when receipt */
};
int ward_client_infer(struct ward_client *c, struct ward_client_infer *q);

/*
 * Mount the agent's workspace at dir with libfuse3 and serve it until
 * unmounted (fusermount3 -u, umount, or SIGTERM/SIGINT/SIGHUP, after which
 * it unmounts). Returns 0 then. Everything that can fail before the mount
 * is up (the agent unreachable, dir not an empty directory, the mount
 * refused) is an error returned before anything is mounted; mounted()
 * is called once the mount is up, before daemonizing. Unless foreground,
 * the process then daemonizes (the parent exits 0 inside libfuse).
 */
struct ward_client_sync_opts {
	struct ward_client_opts conn;
	const char *dir;
	bool foreground;
	bool allow_other; /* FUSE allow_other (needs user_allow_other) */
	bool debug; /* libfuse's debug output (implies foreground) */
	/* warnings: appended to this file when set (opened before the
	 * mount: an error mounts nothing); otherwise stderr, or syslog once
	 * daemonized (stderr is /dev/null then) */
	const char *log;
	unsigned conns; /* connections to the agent, 0: 4 */
	double cache; /* seconds the kernel may cache names and attributes */
	void (*mounted)(void *arg, const char *dir);
	void *arg;
};
int ward_client_sync(const struct ward_client_sync_opts *o);

#endif
