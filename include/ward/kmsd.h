/*
 * ward kmsd: the local key service (`ward kms init|add-principal|serve|
 * audit verify|pin`). One state directory holds a SQLite database (keys,
 * their material wrapped under a root key, policies, aliases, tags,
 * grants, principals), the root key file (mode 0600) and the hash-chained
 * audit log. The server speaks the AWS KMS JSON 1.1 API with SigV4
 * (include/ward/kms.h) over libmicrohttpd.
 */
#ifndef WARD_KMSD_H
#define WARD_KMSD_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "ward/kms.h"

#define WARD_KMSD_DEFAULT_REGION "us-east-1"

/* Create DIR (it must not hold a state already) with one account and its
 * admin user; *out is {"AccountId","AccessKeyId","SecretAccessKey",
 * "Region","Arn"}. region NULL: WARD_KMSD_DEFAULT_REGION. */
int ward_kmsd_init(const char *dir, const char *region, json_t **out);

/* Add user NAME to ACCOUNT (which is created when absent, so a second
 * account is one command); *out as for init. account NULL: a new random
 * account id. session: temporary credentials, with a "SessionToken" that
 * every request must carry (X-Amz-Security-Token). */
int ward_kmsd_add_principal(const char *dir, const char *account,
    const char *name, bool session, json_t **out);

struct ward_kmsd_serve_opts {
	const char *dir;
	const char *listen; /* tcp:HOST:PORT, HOST:PORT, unix:PATH,
			       vsock:CID:PORT; NULL: 127.0.0.1:4599 */
	const char *const *trust_roots; /* local attestation root PEMs */
	size_t ntrust_roots;
	unsigned threads; /* 0: one per CPU, at least 2 */
	size_t max_body; /* 0: 1 MiB */
	unsigned max_connections; /* 0: 1024 */
	unsigned timeout_s; /* idle connection timeout; 0: 30 */
	/* Called once when listening, with the bound address ("tcp:
	 * 127.0.0.1:41234"); the CLI prints the ready line. */
	void (*ready)(void *ctx, const char *addr);
	void *ready_ctx;
};
/* Serve until SIGTERM or SIGINT (the caller blocks them in every thread
 * first; see the CLI), then finish the requests in flight and return 0. */
int ward_kmsd_serve(const struct ward_kmsd_serve_opts *o);

/* The region a state serves. */
int ward_kmsd_region(const char *dir, char *out, size_t n);

/* Check the audit log's hash chain against its anchor in the database.
 * *out: {"Lines":n,"Verified":bool,"Error":...}. Returns 0 when the log
 * verifies, -WARD_EAUTH (with the first bad line in the message) when it
 * does not. */
int ward_kmsd_audit_verify(const char *dir, json_t **out);

/* ward kms pin on a state directory (the server may be running: SQLite
 * serialises the write). key: id, ARN, alias or alias ARN. */
int ward_kmsd_pin(const char *dir, const char *key,
    const struct ward_pcr_pin *pins, size_t npins, bool debug_allowed,
    char **policy_out);

#endif
