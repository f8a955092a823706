/*
 * ward kms: the AWS KMS API as both ends use it. SigV4 signing and
 * verification (kms-and-esdk.md §2), key-policy parsing and evaluation
 * (§3), AWS credentials found as the AWS SDKs find them, the KMS JSON 1.1
 * HTTP client (libcurl), and the KMS keyring for the envelope module.
 *
 * The server (ward kms serve) is the kmsd module; it uses everything here
 * but the client.
 */
#ifndef WARD_KMS_H
#define WARD_KMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "ward/util.h"

/*
 * An AWS error as the wire carries it: the HTTP status, the error shape
 * name ("AccessDeniedException", "InvalidSignatureException") and the
 * message. Functions that can fail with an AWS error fill one of these
 * and return a negative WARD_E* code as usual.
 */
struct ward_kms_error {
	int status;
	char type[64];
	char message[1024];
};
/* Fill e and return -code (WARD_EAUTH for authentication and policy
 * failures, WARD_EFORMAT for validation, ...). Also records the message
 * with ward_errf so callers may print ward_errmsg(). */
int ward_kms_err(struct ward_kms_error *e, int code, int status,
    const char *type, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Limits from the KMS model (kms-and-esdk.md §1.8). */
#define WARD_KMS_PLAINTEXT_MAX 4096
#define WARD_KMS_CIPHERTEXT_MAX 6144
#define WARD_KMS_DATAKEY_MAX 1024
#define WARD_KMS_POLICY_MAX 32768
#define WARD_KMS_ATTESTATION_MAX 262144

/* ------------------------------------------------------------------ */
/* SigV4 (kms-and-esdk.md §2)                                         */

struct ward_sigv4_header {
	const char *name; /* as received; compared case-insensitively */
	const char *value; /* as received; trimmed and folded when signing */
};

struct ward_sigv4_request {
	const char *method; /* "POST" */
	const char *path; /* "/" */
	const char *query; /* "" when none */
	const struct ward_sigv4_header *headers;
	size_t nheaders;
	const uint8_t *body;
	size_t body_len;
};

struct ward_sigv4_credentials {
	const char *access_key_id;
	const char *secret_access_key; /* secret */
	const char *session_token; /* NULL when none */
};

/* "YYYYMMDDTHHMMSSZ" for t, in UTC. */
void ward_sigv4_amz_date(time_t t, char out[static 17]);

/*
 * Client side. req->headers must already hold every header to be signed,
 * including host and x-amz-date (and x-amz-security-token when the
 * credentials carry one); all of them are signed. Writes the value of the
 * Authorization header to out (NUL-terminated, out->len excludes the NUL).
 */
int ward_sigv4_sign(const struct ward_sigv4_request *req,
    const struct ward_sigv4_credentials *cred, const char *region,
    const char *service, struct ward_buf *out);

/* The parts of an Authorization header. */
struct ward_sigv4_auth {
	char access_key_id[129];
	char date[9]; /* YYYYMMDD from the credential scope */
	char region[64];
	char service[64];
	char signed_headers[1024]; /* "a;b;c" as sent */
	char signature[65]; /* 64 lowercase hex */
};
/* Parse "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=..."
 * (fuzzed). Errors are IncompleteSignatureException. */
int ward_sigv4_parse_authorization(
    const char *value, struct ward_sigv4_auth *out, struct ward_kms_error *e);

/*
 * Looks up the secret for an access key id (and checks the session token,
 * NULL when the request has none). Returns 0 and fills secret (mark it
 * secret), or fills e (UnrecognizedClientException) and returns < 0.
 */
typedef int (*ward_sigv4_secret_fn)(void *ctx, const char *access_key_id,
    const char *session_token, struct ward_buf *secret,
    struct ward_kms_error *e);

/*
 * Server side: verify req's signature as §2.4 describes, at time now with
 * 5 minutes' skew, for region and service. On success fills auth (when
 * not NULL) and returns 0. On failure fills e with AWS's error name and
 * message (MissingAuthenticationTokenException, IncompleteSignature-
 * Exception, UnrecognizedClientException, InvalidSignatureException) and
 * returns -WARD_EAUTH (or another negative code for internal failures).
 * The signature is compared in constant time.
 */
int ward_sigv4_verify(const struct ward_sigv4_request *req, const char *region,
    const char *service, time_t now, ward_sigv4_secret_fn lookup, void *ctx,
    struct ward_sigv4_auth *auth, struct ward_kms_error *e);

/* Zero this thread's cached signing key (and the secret it came from). */
void ward_sigv4_thread_release(void);

/* ------------------------------------------------------------------ */
/* Key policies (kms-and-esdk.md §3, nitro.md §5)                      */

struct ward_policy;

/* Parse and validate a key policy document (fuzzed). Errors are
 * MalformedPolicyDocumentException with a message naming the problem. */
int ward_policy_parse(const char *json, size_t len, struct ward_policy **out,
    struct ward_kms_error *e);
void ward_policy_free(struct ward_policy *p);

/* One condition key of the request context with its values (one for a
 * single-valued key, any number for kms:EncryptionContextKeys). Names are
 * matched case-insensitively. A key absent from the context is absent. */
struct ward_policy_key {
	const char *name;
	const char *const *values;
	size_t nvalues;
};

struct ward_policy_request {
	const char *principal_arn; /* arn:aws:iam::ACCOUNT:user/NAME or :root */
	const char *account; /* the caller's 12-digit account */
	const char *action; /* "kms:Decrypt" */
	const char *resource; /* the key ARN */
	const struct ward_policy_key *keys;
	size_t nkeys;
};

enum ward_policy_decision {
	WARD_POLICY_IMPLICIT_DENY = 0,
	WARD_POLICY_ALLOW = 1,
	WARD_POLICY_EXPLICIT_DENY = 2,
};

/*
 * Evaluate: explicit Deny wins, then any Allow, else implicit deny. why
 * (when not NULL) receives a short human reason naming the statement and,
 * for a denial, the condition that failed or the Deny that matched.
 */
enum ward_policy_decision ward_policy_evaluate(const struct ward_policy *p,
    const struct ward_policy_request *rq, char *why, size_t why_len);

/*
 * The evaluator looks up any condition key, but the key service fills in
 * only some (docs/kms.md). A condition on another key can never hold
 * there, which in a Deny means it silently never applies; the server
 * refuses such policies. _key_supported says whether the service fills
 * key; _unsupported_key returns the first condition key of p it does not
 * (a view into p), or NULL.
 */
bool ward_policy_key_supported(const char *key);
const char *ward_policy_unsupported_key(const struct ward_policy *p);

/* The default key policy for a new key of account (§3.2), as JSON. */
char *ward_policy_default(const char *account);

/*
 * ward kms pin: rewrite the attestation condition of a policy (what the
 * seed runbook did with sed between get- and put-key-policy). Every
 * statement that carries kms:RecipientAttestation:* condition keys has
 * them all replaced by the pins: PCR0 as kms:RecipientAttestation:
 * ImageSha384, others as kms:RecipientAttestation:PCR<n>, each under
 * StringEqualsIgnoreCase with the lowercase hex. With debug_allowed each
 * pin also accepts the all-zero value (a debug-mode enclave). When no
 * statement carries such keys, a statement "Sid": "ward-enclave" is
 * appended allowing kms:Decrypt, kms:GenerateDataKey and
 * kms:GenerateRandom to the account (arn:aws:iam::ACCOUNT:root) under the
 * pins. Every other statement and condition is kept as it was. Returns a
 * new JSON string in *out (free()).
 */
struct ward_pcr_pin {
	unsigned index; /* 0..31 */
	char hex[97]; /* 96 lowercase hex digits and a NUL */
};
int ward_policy_pin(const char *json, size_t len, const char *account,
    const struct ward_pcr_pin *pins, size_t npins, bool debug_allowed,
    char **out, struct ward_kms_error *e);

/* ------------------------------------------------------------------ */
/* Credentials and the client                                         */

/* AWS credentials; the secret and token are zeroed by _clear. */
struct ward_aws_credentials {
	char *access_key_id;
	char *secret_access_key;
	char *session_token;
	char source[64]; /* "environment", "shared-credentials-file", ... */
};
/*
 * Find credentials as the AWS SDKs do: AWS_ACCESS_KEY_ID /
 * AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN; then the profile (profile,
 * else AWS_PROFILE, else "default") in AWS_SHARED_CREDENTIALS_FILE
 * (~/.aws/credentials) and AWS_CONFIG_FILE (~/.aws/config); then IMDSv2
 * (unless AWS_EC2_METADATA_DISABLED=true). Errors say where it looked.
 */
int ward_aws_credentials_load(
    const char *profile, struct ward_aws_credentials *out);
void ward_aws_credentials_clear(struct ward_aws_credentials *c);
/* The region: region if set, else AWS_REGION, AWS_DEFAULT_REGION, the
 * profile's region in the config file. NULL when none is found. */
char *ward_aws_region(const char *region, const char *profile);

struct ward_kms_client_opts {
	const char *endpoint_url; /* NULL: AWS_ENDPOINT_URL_KMS,
				     AWS_ENDPOINT_URL, else
				     https://kms.REGION.amazonaws.com */
	const char *region; /* NULL: ward_aws_region */
	const char *profile; /* NULL: AWS_PROFILE or "default" */
	const struct ward_aws_credentials *credentials; /* NULL: load */
	const char *unix_socket; /* connect through this socket (the
				    sandbox's vsock emulation) */
	/*
	 * Or get every connection from this (the agent's vsock to the KMS
	 * proxy): 0 and a connected stream socket in *fd, which the client
	 * then owns, or < 0 with a message recorded. The URL still gives
	 * the Host header and, for https, the TLS server name to verify;
	 * no name is resolved and no HTTP proxy is used. (With libcurl
	 * 7.87-7.88 a thread relays the connection: see client.c.)
	 */
	int (*connect)(void *ctx, int *fd);
	void *connect_ctx;
	const char *ca_file; /* TLS trust anchors, NULL: system default */
	long timeout_ms; /* 0: 10 s */
};

struct ward_kms_client;
int ward_kms_client_new(
    struct ward_kms_client **out, const struct ward_kms_client_opts *o);
void ward_kms_client_free(struct ward_kms_client *c);
/*
 * Replace the client's credentials (the old ones are zeroed); NULL only
 * forgets them, and calls then fail to sign until new ones are set. The
 * connection stays open, so a caller that serves several principals can
 * keep one client without keeping anyone's credentials between calls.
 */
int ward_kms_client_set_credentials(
    struct ward_kms_client *c, const struct ward_aws_credentials *cred);
const char *ward_kms_client_endpoint(const struct ward_kms_client *c);
const char *ward_kms_client_region(const struct ward_kms_client *c);

/*
 * One call: POST / with X-Amz-Target: TrentService.<operation>, the JSON
 * request signed with SigV4. On HTTP 200 *response holds the parsed body
 * (json_decref it). Otherwise e holds the AWS error (type from __type or
 * X-Amzn-ErrorType, message from message or Message) and the return is
 * -WARD_EAUTH for AccessDenied and signature errors, -WARD_EKEY for
 * InvalidCiphertext/IncorrectKey, -WARD_EIO for transport failures, else
 * -WARD_EFORMAT; ward_errmsg() reads "KMS <operation>: <type>: <message>".
 */
int ward_kms_call(struct ward_kms_client *c, const char *operation,
    json_t *request, json_t **response, struct ward_kms_error *e);

/* ------------------------------------------------------------------ */
/* The KMS keyring (framework/aws-kms/aws-kms-keyring.md)             */

struct ward_keyring;

/*
 * An attested Recipient: attestation document whose public_key is the
 * SPKI of pkey, and the RSA private key that opens CiphertextForRecipient.
 * get() is called once per KMS request that takes a Recipient.
 */
struct ward_kms_recipient {
	int (*get)(void *ctx, struct ward_buf *doc, void **pkey /* EVP_PKEY */);
	void *ctx;
};

/*
 * key_ids: ARNs, ids or aliases. On encrypt the first generates the data
 * key (GenerateDataKey) and each other encrypts it (Encrypt). On decrypt
 * only EDKs whose provider is "aws-kms" are tried: those whose ARN matches
 * one of key_ids, or any when key_ids is empty (discovery). With a
 * recipient, Decrypt and GenerateDataKey carry it and the data key is
 * opened from CiphertextForRecipient. The client is borrowed.
 */
int ward_keyring_kms_new(struct ward_keyring **out, struct ward_kms_client *c,
    const char *const *key_ids, size_t n,
    const struct ward_kms_recipient *recipient);

#endif
