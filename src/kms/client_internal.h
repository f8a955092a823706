/*
 * Private to the kms client (creds.c, client.c, keyring.c) and its unit
 * test: the pieces that can be checked without a network.
 */
#ifndef WARD_KMS_CLIENT_INTERNAL_H
#define WARD_KMS_CLIENT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ward/kms.h"

/* AWS shared config files (credentials, config): bounds of the parser. */
#define WARD_AWS_INI_LINE_MAX 4096
#define WARD_AWS_INI_FILE_MAX (1024 * 1024)
#define WARD_AWS_PROFILE_MAX 128
#define WARD_AWS_REGION_MAX 63

/* Largest KMS response body the client accepts. */
#define WARD_KMS_RESPONSE_MAX (1024 * 1024)

/* curl_global_init, once per process (thread-safe). */
int ward_kms_curl_global(void);

/*
 * The region as ward_aws_region finds it, but with errors: 0 and *out
 * (free()) or NULL when no source names one; < 0 when the config file is
 * unreadable or malformed.
 */
int ward_aws_region_resolve(
    const char *region, const char *profile, char **out);

/* 0 when region is 1..63 of [a-z0-9-] (it becomes part of a host name and
 * of the signing scope). */
int ward_aws_region_check(const char *region);

/*
 * The KMS endpoint: endpoint_url if set, else AWS_ENDPOINT_URL_KMS, else
 * AWS_ENDPOINT_URL, else https://kms.REGION.amazonaws.com (amazonaws.com.cn
 * for cn-* regions). Only http:// and https:// URLs with a host, an
 * optional port and no path beyond "/" are accepted. *url is the URL to
 * POST to (ending in "/"), *host the Host header value (host[:port] as
 * written in the URL); both free().
 */
int ward_kms_endpoint_resolve(
    const char *endpoint_url, const char *region, char **url, char **host);

/*
 * An error type as awsJson1_1 clients read it (kms-and-esdk.md §1.2):
 * keep what precedes the first ':', then what follows the last '#'.
 * Writes "" when nothing printable is left.
 */
void ward_kms_error_type_sanitize(
    const char *raw, size_t len, char *out, size_t n);

/*
 * Fill e from a non-200 response: the type from the body's __type (or
 * code), else the X-Amzn-ErrorType header (header_type, may be NULL);
 * the message from message or Message. Records "KMS <operation>: <type>:
 * <message>" and returns the code ward_kms_call documents.
 */
int ward_kms_parse_error(const char *operation, long status,
    const char *header_type, const uint8_t *body, size_t len,
    struct ward_kms_error *e);

/* The return code for an AWS error type and HTTP status. */
int ward_kms_error_code(const char *type, long status);

/*
 * A KMS key ARN as the ESDK defines a valid one (aws-kms-key-arn.md):
 * arn:PARTITION:kms:REGION:ACCOUNT:key/ID with every part non-empty.
 * When region is not NULL it receives a view of the region part.
 */
bool ward_kms_arn_is_key(
    const char *s, size_t len, const char **region, size_t *region_len);

#endif
