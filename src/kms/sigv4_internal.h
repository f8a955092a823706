/*
 * SigV4 internals shared by src/kms/sigv4.c and its unit test: the
 * canonical request (kms-and-esdk.md §2.1), the string to sign and the
 * signing key, so each step can be checked against the aws-c-auth suite.
 */
#ifndef WARD_KMS_SIGV4_INTERNAL_H
#define WARD_KMS_SIGV4_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "ward/kms.h"

/* Bounds on what a request may carry (ours; AWS documents none). */
#define WARD_SIGV4_AUTH_MAX 4096 /* Authorization header value */
#define WARD_SIGV4_NAME_MAX 128 /* one header name */
#define WARD_SIGV4_VALUE_MAX 16384 /* one header value (session tokens) */
#define WARD_SIGV4_SIGNED_MAX 64 /* names in SignedHeaders */
#define WARD_SIGV4_CANONICAL_MAX 262144 /* the canonical headers block */
#define WARD_SIGV4_PATH_MAX 2048
#define WARD_SIGV4_QUERY_MAX 8192

/*
 * The canonical request for req with the header names in signed_headers
 * ("a;b;c": lowercase, sorted, unique, each present in req). The payload
 * hash is the SHA-256 of req->body. Writes NUL-terminated text to out
 * (out->len excludes the NUL). Errors fill e (IncompleteSignature- or
 * InvalidSignatureException) when e is not NULL.
 */
int ward_sigv4_canonical_request(const struct ward_sigv4_request *req,
    const char *signed_headers, struct ward_buf *out, struct ward_kms_error *e);

/* "AWS4-HMAC-SHA256\n<amz_date>\n<scope>\n<hex sha256(creq)>". */
int ward_sigv4_string_to_sign(const char *amz_date, const char *scope,
    const char *creq, size_t creq_len, struct ward_buf *out);

/* kSigning = HMAC chain over "AWS4"+secret, date, region, service,
 * "aws4_request" (§2.1). key is secret: the caller cleanses it. */
int ward_sigv4_signing_key(const char *secret, size_t secret_len,
    const char *date, const char *region, const char *service,
    uint8_t key[static 32]);

#endif
