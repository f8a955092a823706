/* libFuzzer: SigV4 (kms-and-esdk.md §2). The input is parsed as an
 * Authorization value, then read as a request ("METHOD /path?query",
 * "Name:value" lines, a blank line, the body) and verified with a fixed
 * credential store. A request without Authorization is also signed, and
 * what ward signs must verify: the only refusal allowed is the clock. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ward/kms.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define INPUT_MAX 16384
#define HEADERS_MAX 64
#define SUITE_T ((time_t)1440938160) /* 2015-08-30T12:36:00Z */

static const struct ward_sigv4_credentials cred = {
    "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", NULL};

static int
lookup(void *ctx, const char *akid, const char *token, struct ward_buf *secret,
    struct ward_kms_error *e)
{
	if (strcmp(akid, cred.access_key_id) != 0 || token != NULL)
		return ward_kms_err(e, WARD_EAUTH, 400,
		    "UnrecognizedClientException",
		    "The security token included in the request is invalid.");
	secret->secret = true;
	return ward_buf_append(
	    secret, cred.secret_access_key, strlen(cred.secret_access_key));
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	ward_log_set_level(WARD_LOG_ERROR);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ward_sigv4_header h[HEADERS_MAX + 1];
	struct ward_sigv4_request req = {0};
	struct ward_sigv4_auth a;
	struct ward_kms_error e;
	struct ward_buf auth = {0};
	char *text, *line, *next, *colon, *sp;
	bool has_auth = false;
	int r;

	if (size > INPUT_MAX || (text = malloc(size + 1)) == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	ward_sigv4_parse_authorization(text, &a, &e);

	/* The request line, the headers, the body. */
	req.method = text;
	req.path = "/";
	req.query = "";
	req.headers = h;
	if ((next = memchr(text, '\n', size)) != NULL)
		*next++ = '\0';
	if ((sp = strchr(text, ' ')) != NULL) {
		*sp = '\0';
		req.path = sp + 1;
		if ((sp = strchr(sp + 1, '?')) != NULL) {
			*sp = '\0';
			req.query = sp + 1;
		}
	}
	for (line = next; line != NULL && line < text + size; line = next) {
		size_t rest = size - (size_t)(line - text);

		if ((next = memchr(line, '\n', rest)) != NULL)
			*next++ = '\0';
		if (*line == '\0') {
			if (next != NULL) {
				req.body = (const uint8_t *)next;
				req.body_len = size - (size_t)(next - text);
			}
			break;
		}
		if (req.nheaders == HEADERS_MAX ||
		    (colon = strchr(line, ':')) == NULL)
			continue;
		*colon = '\0';
		h[req.nheaders++] = (struct ward_sigv4_header){line, colon + 1};
		if (strcasecmp(line, "authorization") == 0 ||
		    strcasecmp(line, "x-amz-security-token") == 0)
			has_auth = true;
	}
	ward_sigv4_verify(
	    &req, "us-east-1", "service", SUITE_T, lookup, NULL, &a, &e);

	/* What ward signs, ward verifies. */
	if (!has_auth &&
	    ward_sigv4_sign(&req, &cred, "us-east-1", "service", &auth) == 0) {
		h[req.nheaders++] = (struct ward_sigv4_header){
		    "Authorization", (const char *)auth.p};
		r = ward_sigv4_verify(&req, "us-east-1", "service", SUITE_T,
		    lookup, NULL, &a, &e);
		if (r != 0 &&
		    !(strcmp(e.type, "InvalidSignatureException") == 0 &&
		        (strncmp(e.message, "Signature expired", 17) == 0 ||
		            strncmp(e.message, "Signature not yet", 17) == 0)))
			__builtin_trap();
	}
	ward_buf_free(&auth);
	free(text);
	return 0;
}
