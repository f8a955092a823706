/* kms: SigV4 signing and verification (kms-and-esdk.md §2) against the
 * aws-c-auth suite (tests/vectors/sigv4), the KMS-shaped request of §2.2,
 * and every refusal §2.4 names, each with its AWS error type. */
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "kms/sigv4_internal.h"
#include "testutil.h"
#include "ward/kms.h"

#define SUITE_SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define SUITE_T ((time_t)1440938160) /* 2015-08-30T12:36:00Z */
#define KMS_T ((time_t)1795327559) /* 2026-11-22T06:05:59Z */
#define KMS_BODY                                                               \
	"{\"KeyId\": \"alias/test\", \"Plaintext\": \"aGVsbG8=\", "            \
	"\"EncryptionContext\": {\"purpose\": \"test\"}}"

static const char *const suite_cases[] = {
    "post-vanilla",
    "get-vanilla",
    "get-header-value-trim",
    "get-header-key-duplicate",
    "get-header-value-multiline",
    "post-header-key-sort",
    "post-header-value-case",
    "post-sts-header-before",
    "get-vanilla-with-session-token",
};

/* The source tree, from this file's path (CMake compiles it by absolute
 * path): WARD_SOURCE_DIR/tests/unit/test_sigv4.c. */
static const char *
source_dir(void)
{
	static char dir[4096];
	char *p;

	if (dir[0] == '\0') {
		snprintf(dir, sizeof(dir), "%s", __FILE__);
		for (int i = 0; i < 3; i++)
			if ((p = strrchr(dir, '/')) != NULL)
				*p = '\0';
	}
	return dir;
}
#define WARD_SOURCE_DIR source_dir()

static char *
read_vector(const char *name, const char *file)
{
	char path[4200], *s;
	uint8_t *p;
	size_t n;

	snprintf(path, sizeof(path), "%s/tests/vectors/sigv4/%s/%s",
	    WARD_SOURCE_DIR, name, file);
	if ((p = tu_read_file(path, &n)) == NULL ||
	    (s = malloc(n + 1)) == NULL) {
		fail_msg("cannot read %s", path);
		abort(); /* not reached: for the analyzer */
	}
	memcpy(s, p, n);
	s[n] = '\0';
	free(p);
	return s;
}

/* A request parsed from the suite's text form, or built by a test. */
struct treq {
	struct ward_sigv4_header h[32];
	char names[32][64], values[32][600];
	size_t n;
	char *method, *path, *query;
	uint8_t body[256];
	size_t body_len;
	struct ward_sigv4_request r;
};

static void
treq_sync(struct treq *t)
{
	t->r = (struct ward_sigv4_request){t->method, t->path,
	    t->query != NULL ? t->query : "", t->h, t->n, t->body, t->body_len};
}

/* Append a header (copied). */
static void
treq_add(struct treq *t, const char *name, const char *value)
{
	assert_true(t->n < 32);
	snprintf(t->names[t->n], sizeof(t->names[0]), "%s", name);
	snprintf(t->values[t->n], sizeof(t->values[0]), "%s", value);
	t->h[t->n].name = t->names[t->n];
	t->h[t->n].value = t->values[t->n];
	t->n++;
	treq_sync(t);
}

/* Replace the first header called name (any case), else append it. */
static void
treq_set(struct treq *t, const char *name, const char *value)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcasecmp(t->h[i].name, name) == 0) {
			snprintf(
			    t->values[i], sizeof(t->values[0]), "%s", value);
			return;
		}
	treq_add(t, name, value);
}

static void
treq_del(struct treq *t, const char *name)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcasecmp(t->h[i].name, name) == 0) {
			for (size_t j = i; j + 1 < t->n; j++) {
				memcpy(t->names[j], t->names[j + 1],
				    sizeof(t->names[0]));
				memcpy(t->values[j], t->values[j + 1],
				    sizeof(t->values[0]));
			}
			t->n--;
			break;
		}
	for (size_t i = 0; i < t->n; i++) {
		t->h[i].name = t->names[i];
		t->h[i].value = t->values[i];
	}
	treq_sync(t);
}

static const char *
treq_get(const struct treq *t, const char *name)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcasecmp(t->h[i].name, name) == 0)
			return t->h[i].value;
	return NULL;
}

/*
 * "METHOD /path[?query] HTTP/1.1", then "Name:value" lines; a line that
 * starts with whitespace is one more value of the header above it (as
 * aws-c-auth reads get-header-value-multiline); a blank line starts the
 * body.
 */
static void
treq_parse(struct treq *t, char *text)
{
	char *line, *next, *colon, *sp;

	memset(t, 0, sizeof(*t));
	if ((next = strchr(text, '\n')) != NULL)
		*next++ = '\0';
	t->method = text;
	assert_non_null(sp = strchr(text, ' '));
	*sp = '\0';
	t->path = sp + 1;
	assert_non_null(sp = strchr(t->path, ' '));
	*sp = '\0';
	if ((t->query = strchr(t->path, '?')) != NULL)
		*t->query++ = '\0';
	for (line = next; line != NULL; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		if (*line == '\0') {
			if (next != NULL) {
				t->body_len = strlen(next);
				assert_true(t->body_len <= sizeof(t->body));
				memcpy(t->body, next, t->body_len);
			}
			break;
		}
		if (*line == ' ' || *line == '\t') {
			assert_true(t->n > 0);
			treq_add(t, t->names[t->n - 1], line);
			continue;
		}
		assert_non_null(colon = strchr(line, ':'));
		*colon = '\0';
		treq_add(t, line, colon + 1);
	}
	treq_sync(t);
}

/* ------------------------------------------------------------------ */
/* The credential store of the tests                                  */

struct store {
	const char *akid, *secret, *token;
	int calls;
};

static int
store_lookup(void *ctx, const char *akid, const char *token,
    struct ward_buf *secret, struct ward_kms_error *e)
{
	struct store *s = ctx;

	s->calls++;
	if (strcmp(akid, s->akid) != 0 ||
	    (s->token == NULL) != (token == NULL) ||
	    (token != NULL && strcmp(token, s->token) != 0))
		return ward_kms_err(e, WARD_EAUTH, 400,
		    "UnrecognizedClientException",
		    "The security token included in the request is invalid.");
	secret->secret = true;
	return ward_buf_append(secret, s->secret, strlen(s->secret));
}

/* A store that fails inside (not an AWS error), or finds an empty secret. */
static int
broken_lookup(void *ctx, const char *akid, const char *token,
    struct ward_buf *secret, struct ward_kms_error *e)
{
	return ctx != NULL ? ward_errf(WARD_EIO, "store: disk on fire") : 0;
}

/* ------------------------------------------------------------------ */
/* The suite                                                          */

struct context {
	json_t *root;
	const char *akid, *secret, *token, *region, *service;
	time_t t;
};

static void
context_load(const char *name, struct context *c)
{
	char *text = read_vector(name, "context.json");
	json_error_t err;
	struct tm tm = {0};
	const char *ts;

	memset(c, 0, sizeof(*c));
	c->root = json_loads(text, 0, &err);
	free(text);
	assert_non_null(c->root);
	assert_int_equal(
	    json_unpack(c->root, "{s:{s:s, s:s, s?s}, s:s, s:s, s:s}",
	        "credentials", "access_key_id", &c->akid, "secret_access_key",
	        &c->secret, "token", &c->token, "region", &c->region, "service",
	        &c->service, "timestamp", &ts),
	    0);
	assert_non_null(strptime(ts, "%Y-%m-%dT%H:%M:%SZ", &tm));
	c->t = timegm(&tm);
}

/* The Authorization value of header-signed-request.txt. */
static char *
expected_authorization(const char *name)
{
	char *text = read_vector(name, "header-signed-request.txt");
	char *p = strstr(text, "\nAuthorization:"), *end, *out;

	assert_non_null(p);
	p += strlen("\nAuthorization:");
	end = strchr(p, '\n');
	assert_non_null(end);
	out = strndup(p, (size_t)(end - p));
	free(text);
	return out;
}

static void
test_suite_sign(void **state)
{
	for (size_t i = 0; i < sizeof(suite_cases) / sizeof(*suite_cases);
	     i++) {
		const char *name = suite_cases[i];
		struct context c;
		struct treq t;
		struct ward_sigv4_auth a;
		struct ward_kms_error e;
		struct ward_sigv4_credentials cred;
		struct ward_buf creq = {0}, sts = {0}, out = {0};
		char amz[17], scope[128], *want_auth, *want_creq, *want_sts,
		    *want_sig, *text;

		print_message("sign %s\n", name);
		context_load(name, &c);
		text = read_vector(name, "request.txt");
		treq_parse(&t, text);
		ward_sigv4_amz_date(c.t, amz);
		treq_add(&t, "X-Amz-Date", amz);
		if (c.token != NULL &&
		    treq_get(&t, "X-Amz-Security-Token") == NULL)
			treq_add(&t, "X-Amz-Security-Token", c.token);
		want_auth = expected_authorization(name);
		want_creq = read_vector(name, "header-canonical-request.txt");
		want_sts = read_vector(name, "header-string-to-sign.txt");
		want_sig = read_vector(name, "header-signature.txt");

		/* Each step, then the whole. */
		ASSERT_OK(ward_sigv4_parse_authorization(want_auth, &a, &e));
		ASSERT_OK(ward_sigv4_canonical_request(
		    &t.r, a.signed_headers, &creq, &e));
		assert_string_equal((char *)creq.p, want_creq);
		snprintf(scope, sizeof(scope), "%.8s/%s/%s/aws4_request", amz,
		    c.region, c.service);
		ASSERT_OK(ward_sigv4_string_to_sign(
		    amz, scope, (char *)creq.p, creq.len, &sts));
		assert_string_equal((char *)sts.p, want_sts);
		cred =
		    (struct ward_sigv4_credentials){c.akid, c.secret, c.token};
		ASSERT_OK(
		    ward_sigv4_sign(&t.r, &cred, c.region, c.service, &out));
		assert_string_equal((char *)out.p, want_auth);
		assert_int_equal(out.len, strlen(want_auth));
		assert_string_equal(a.signature, want_sig);

		ward_buf_free(&creq);
		ward_buf_free(&sts);
		ward_buf_free(&out);
		free(want_auth);
		free(want_creq);
		free(want_sts);
		free(want_sig);
		free(text);
		json_decref(c.root);
	}
}

static void
test_suite_verify(void **state)
{
	for (size_t i = 0; i < sizeof(suite_cases) / sizeof(*suite_cases);
	     i++) {
		const char *name = suite_cases[i];
		struct context c;
		struct treq t;
		struct store s;
		struct ward_sigv4_auth a;
		struct ward_kms_error e;
		char *sig = read_vector(name, "header-signature.txt"), *text;

		print_message("verify %s\n", name);
		context_load(name, &c);
		s = (struct store){c.akid, c.secret, c.token, 0};
		text = read_vector(name, "header-signed-request.txt");
		treq_parse(&t, text);
		ASSERT_OK(ward_sigv4_verify(
		    &t.r, c.region, c.service, c.t, store_lookup, &s, &a, &e));
		assert_string_equal(a.access_key_id, "AKIDEXAMPLE");
		assert_string_equal(a.date, "20150830");
		assert_string_equal(a.region, "us-east-1");
		assert_string_equal(a.service, "service");
		assert_string_equal(a.signature, sig);
		assert_int_equal(s.calls, 1);
		/* the edges of the window */
		ASSERT_OK(ward_sigv4_verify(&t.r, c.region, c.service,
		    c.t + 300, store_lookup, &s, NULL, &e));
		ASSERT_OK(ward_sigv4_verify(&t.r, c.region, c.service,
		    c.t - 300, store_lookup, &s, NULL, &e));
		free(sig);
		free(text);
		json_decref(c.root);
	}
}

static void
test_primitives(void **state)
{
	uint8_t key[32];
	char hex[65], amz[17];

	ward_sigv4_amz_date(SUITE_T, amz);
	assert_string_equal(amz, "20150830T123600Z");
	ward_sigv4_amz_date(0, amz);
	assert_string_equal(amz, "19700101T000000Z");
	ward_sigv4_amz_date(KMS_T, amz);
	assert_string_equal(amz, "20261122T060559Z");
	/* formatted by hand: the same as gmtime_r over leap
	 * days, century years, before 1970, and the ends of the range */
	{
		static const time_t edges[] = {-1, -86400, -86401,
		    951782400 /* 2000-02-29 */, 4107542400 /* 2100-03-01 */,
		    -2208988800 /* 1900-01-01 */, -62167219200 /* 0000-01-01 */,
		    253402300799 /* 9999-12-31T23:59:59 */};
		char want[64];
		struct tm tm;
		uint64_t x = 0x9e3779b97f4a7c15ull;

		for (int i = 0; i < 20000 + 8; i++) {
			time_t t;

			if (i < 8) {
				t = edges[i];
			} else {
				x ^= x << 13;
				x ^= x >> 7;
				x ^= x << 17;
				/* years 0000 to 9999 */
				t = (time_t)(x % 315537897600ull) - 62167219200;
			}
			assert_non_null(gmtime_r(&t, &tm));
			/* (strftime's %Y has no leading zeros) */
			snprintf(want, sizeof(want),
			    "%04d%02d%02dT%02d%02d%02dZ", tm.tm_year + 1900,
			    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			    tm.tm_sec);
			ward_sigv4_amz_date(t, amz);
			assert_string_equal(amz, want);
		}
		ward_sigv4_amz_date(253402300800, amz); /* year 10000 */
		assert_string_equal(amz, "00000000T000000Z");
		ward_sigv4_amz_date(-62167219201, amz); /* year -1 */
		assert_string_equal(amz, "00000000T000000Z");
	}
	/* kSigning of post-vanilla (§2.2) */
	ASSERT_OK(ward_sigv4_signing_key(SUITE_SECRET, strlen(SUITE_SECRET),
	    "20150830", "us-east-1", "service", key));
	ward_hex_encode(key, 32, hex);
	assert_string_equal(hex,
	    "938127b5336810ddb6a5d6af445fcac9e371f9ed418ed386b022aed82901be75");
}

/* ------------------------------------------------------------------ */
/* The KMS request of §1.1 / §2.2                                     */

static const struct ward_sigv4_credentials kms_cred = {
    "AKIDEXAMPLE", SUITE_SECRET, NULL};
static const struct ward_sigv4_credentials kms_cred_token = {
    "AKIDEXAMPLE", SUITE_SECRET, "FwoGZXIvYXdzEXAMPLETOKEN"};

/* Build and sign the captured Encrypt request; the unsigned headers
 * botocore sends are added after signing. */
static void
kms_request(struct treq *t, const struct ward_sigv4_credentials *cred)
{
	struct ward_buf auth = {0};

	memset(t, 0, sizeof(*t));
	t->method = "POST";
	t->path = "/";
	t->query = "";
	memcpy(t->body, KMS_BODY, strlen(KMS_BODY));
	t->body_len = strlen(KMS_BODY);
	treq_add(t, "Host", "127.0.0.1:4599");
	treq_add(t, "X-Amz-Target", "TrentService.Encrypt");
	treq_add(t, "Content-Type", "application/x-amz-json-1.1");
	treq_add(t, "X-Amz-Date", "20261122T060559Z");
	if (cred->session_token != NULL)
		treq_add(t, "X-Amz-Security-Token", cred->session_token);
	ASSERT_OK(ward_sigv4_sign(&t->r, cred, "us-east-1", "kms", &auth));
	treq_add(t, "Authorization", (char *)auth.p);
	treq_add(
	    t, "amz-sdk-invocation-id", "070deec1-0000-4000-8000-000000000000");
	treq_add(t, "amz-sdk-request", "attempt=1");
	treq_add(t, "User-Agent", "Boto3/1.43.11");
	treq_add(t, "Content-Length", "90");
	ward_buf_free(&auth);
}

static struct store kms_store = {"AKIDEXAMPLE", SUITE_SECRET, NULL, 0};
static struct store kms_store_token = {
    "AKIDEXAMPLE", SUITE_SECRET, "FwoGZXIvYXdzEXAMPLETOKEN", 0};

static void
expect_ok(struct treq *t, struct store *s, time_t now)
{
	struct ward_kms_error e = {0};

	ASSERT_OK(ward_sigv4_verify(
	    &t->r, "us-east-1", "kms", now, store_lookup, s, NULL, &e));
}

/* Verification fails with exactly this AWS error (and a message holding
 * want_msg when not NULL). */
static void
expect_fail_at(struct treq *t, struct store *s, time_t now, const char *region,
    const char *service, int status, const char *type, const char *want_msg)
{
	struct ward_kms_error e = {0};
	struct ward_sigv4_auth a;
	int r;

	memset(&a, 0x5a, sizeof(a));
	r = ward_sigv4_verify(
	    &t->r, region, service, now, store_lookup, s, &a, &e);
	if (r != -WARD_EAUTH)
		fail_msg("verify -> %d (%s), expected EAUTH %s", r,
		    ward_errmsg(), type);
	assert_string_equal(e.type, type);
	assert_int_equal(e.status, status);
	if (want_msg != NULL && strstr(e.message, want_msg) == NULL)
		fail_msg("message '%s' lacks '%s'", e.message, want_msg);
	/* auth is left alone on failure */
	assert_int_equal(a.access_key_id[0], 0x5a);
}

static void
expect_fail(struct treq *t, const char *type, const char *want_msg)
{
	expect_fail_at(
	    t, &kms_store, KMS_T, "us-east-1", "kms", 400, type, want_msg);
}

static void
test_kms_capture(void **state)
{
	struct treq t;
	struct ward_buf creq = {0};
	struct ward_kms_error e;
	struct ward_sigv4_auth a;
	const char *want =
	    "POST\n/\n\n"
	    "content-type:application/x-amz-json-1.1\n"
	    "host:127.0.0.1:4599\n"
	    "x-amz-date:20261122T060559Z\n"
	    "x-amz-target:TrentService.Encrypt\n\n"
	    "content-type;host;x-amz-date;x-amz-target\n"
	    "8f3c50c2f40e66e3e35e8c53c0613331d873304d0bec6173b24287eda69b8820";

	kms_request(&t, &kms_cred);
	ASSERT_OK(ward_sigv4_canonical_request(
	    &t.r, "content-type;host;x-amz-date;x-amz-target", &creq, &e));
	assert_string_equal((char *)creq.p, want);
	ASSERT_OK(ward_sigv4_parse_authorization(
	    treq_get(&t, "Authorization"), &a, &e));
	assert_string_equal(
	    a.signed_headers, "content-type;host;x-amz-date;x-amz-target");
	assert_string_equal(a.service, "kms");
	ASSERT_OK(ward_sigv4_verify(
	    &t.r, "us-east-1", "kms", KMS_T, store_lookup, &kms_store, &a, &e));
	/* with a session token: signed, and handed to the lookup */
	kms_request(&t, &kms_cred_token);
	ASSERT_OK(ward_sigv4_parse_authorization(
	    treq_get(&t, "Authorization"), &a, &e));
	assert_string_equal(a.signed_headers,
	    "content-type;host;x-amz-date;x-amz-security-token;x-amz-target");
	expect_ok(&t, &kms_store_token, KMS_T);
	expect_fail_at(&t, &kms_store, KMS_T, "us-east-1", "kms", 400,
	    "UnrecognizedClientException", "security token");
	ward_buf_free(&creq);
}

static void
test_parse_authorization(void **state)
{
	static const char
	    *const
	        bad
	            [] =
	                {
	                    "",
	                    "garbage",
	                    "AWS4-HMAC-SHA256",
	                    "AWS4-HMAC-SHA256 ",
	                    "AWS4-HMAC-SHA256Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
	                    "AWS4-HMAC-SHA512 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
	                    "AWS4-ECDSA-P256-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
	                    /* truncated */
	                    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5da7c1a2",
	                    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=",
	                    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Sign",
	                    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/serv",
	                    /* a part missing */
	                    "AWS4-HMAC-SHA256 SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
	                    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
	                    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date",
	                    /* bad hex, case, length */
	                    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6g",
	                    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5DA7C1A2ACD57CEE7505FC6676E4E544621C30862966E37DDDB68E92EFBE5D6B",
	                    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b00",
	                    /* the credential */
	                    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service, SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
	                    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request/x, SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
	                    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws5_request, SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
	                    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/2015083/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
	                    "AWS4-HMAC-SHA256 Credential=/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
	                    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830//service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
	                    /* repeated, unknown, empty elements */
	                    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
	                    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, Foo=bar, SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
	                    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request,, SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
	                    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
	                };
	struct ward_sigv4_auth a;
	struct ward_kms_error e;
	char *big;

	/* optional whitespace, any order */
	ASSERT_OK(ward_sigv4_parse_authorization(
	    "  AWS4-HMAC-SHA256   Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b,SignedHeaders=host;x-amz-date ,  Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request  ",
	    &a, &e));
	assert_string_equal(a.access_key_id, "AKIDEXAMPLE");
	assert_string_equal(a.date, "20150830");
	assert_string_equal(a.region, "us-east-1");
	assert_string_equal(a.service, "service");
	assert_string_equal(a.signed_headers, "host;x-amz-date");
	assert_string_equal(a.signature,
	    "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b");
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		memset(&e, 0, sizeof(e));
		if (ward_sigv4_parse_authorization(bad[i], &a, &e) !=
		    -WARD_EAUTH)
			fail_msg("accepted: %s", bad[i]);
		assert_string_equal(e.type, "IncompleteSignatureException");
		assert_int_equal(e.status, 400);
	}
	/* too long: refused without reading past the cap */
	big = malloc(WARD_SIGV4_AUTH_MAX + 2);
	assert_non_null(big);
	memset(big, 'A', WARD_SIGV4_AUTH_MAX + 1);
	big[WARD_SIGV4_AUTH_MAX + 1] = '\0';
	ASSERT_ERR(ward_sigv4_parse_authorization(big, &a, &e), WARD_EAUTH);
	assert_string_equal(e.type, "IncompleteSignatureException");
	free(big);
}

/* Replace part of the Authorization header. */
static void
edit_auth(struct treq *t, const char *from, const char *to)
{
	char buf[1024];
	const char *v = treq_get(t, "Authorization");
	const char *p = strstr(v, from);

	assert_non_null(p);
	snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(p - v), v, to,
	    p + strlen(from));
	treq_set(t, "Authorization", buf);
}

static void
test_refusals(void **state)
{
	struct treq t;
	char v[600];

	/* §2.4 step 1 */
	kms_request(&t, &kms_cred);
	treq_del(&t, "Authorization");
	expect_fail_at(&t, &kms_store, KMS_T, "us-east-1", "kms", 403,
	    "MissingAuthenticationTokenException",
	    "Missing Authentication Token");
	kms_request(&t, &kms_cred);
	treq_set(&t, "Authorization", "garbage");
	expect_fail(&t, "IncompleteSignatureException", NULL);
	kms_request(&t, &kms_cred);
	snprintf(v, sizeof(v), "%.60s", treq_get(&t, "Authorization"));
	treq_set(&t, "Authorization", v);
	expect_fail(&t, "IncompleteSignatureException", NULL);
	kms_request(&t, &kms_cred);
	edit_auth(&t, "AWS4-HMAC-SHA256", "AWS4-HMAC-SHA1");
	expect_fail(&t, "IncompleteSignatureException", "algorithm");
	kms_request(&t, &kms_cred);
	treq_add(&t, "authorization", treq_get(&t, "Authorization"));
	expect_fail(&t, "IncompleteSignatureException", "Multiple");

	/* step 2: who */
	kms_request(&t, &kms_cred);
	edit_auth(&t, "Credential=AKIDEXAMPLE", "Credential=AKIDUNKNOWN");
	expect_fail(&t, "UnrecognizedClientException",
	    "The security token included in the request is invalid.");

	{
		struct ward_kms_error e = {0};
		int fire = 1;

		ASSERT_ERR(ward_sigv4_verify(&t.r, "us-east-1", "kms", KMS_T,
		               broken_lookup, &fire, NULL, &e),
		    WARD_EIO);
		ASSERT_ERR(ward_sigv4_verify(&t.r, "us-east-1", "kms", KMS_T,
		               broken_lookup, NULL, NULL, &e),
		    WARD_EAUTH);
		assert_string_equal(e.type, "UnrecognizedClientException");
	}

	/* step 3: the scope */
	kms_request(&t, &kms_cred);
	expect_fail_at(&t, &kms_store, KMS_T, "us-west-2", "kms", 400,
	    "InvalidSignatureException",
	    "Credential should be scoped to a valid Region, not 'us-east-1'.");
	expect_fail_at(&t, &kms_store, KMS_T, "us-east-1", "sts", 400,
	    "InvalidSignatureException",
	    "Credential should be scoped to correct service: 'sts'.");
	edit_auth(&t, "/20261122/", "/20261121/");
	expect_fail(&t, "InvalidSignatureException",
	    "Date in Credential scope does not match");

	/* step 4: the clock */
	kms_request(&t, &kms_cred);
	expect_ok(&t, &kms_store, KMS_T + 299);
	expect_ok(&t, &kms_store, KMS_T - 299);
	expect_fail_at(&t, &kms_store, KMS_T + 301, "us-east-1", "kms", 400,
	    "InvalidSignatureException",
	    "Signature expired: 20261122T060559Z is now earlier than 20261122T060600Z (20261122T061100Z - 5 min.)");
	expect_fail_at(&t, &kms_store, KMS_T - 301, "us-east-1", "kms", 400,
	    "InvalidSignatureException",
	    "Signature not yet current: 20261122T060559Z is still later than 20261122T060558Z (20261122T060058Z + 5 min.)");

	/* step 5: what was signed */
	kms_request(&t, &kms_cred);
	edit_auth(&t, "content-type;host;", "host;content-type;");
	expect_fail(&t, "IncompleteSignatureException", "sorted");
	kms_request(&t, &kms_cred);
	edit_auth(&t, "content-type;host;", "content-type;content-type;host;");
	expect_fail(&t, "IncompleteSignatureException", "sorted");
	kms_request(&t, &kms_cred);
	edit_auth(&t, "content-type;host;", "Content-Type;host;");
	expect_fail(&t, "IncompleteSignatureException", "lowercase");
	kms_request(&t, &kms_cred);
	edit_auth(&t, "content-type;host;", "content-type;");
	expect_fail(&t, "IncompleteSignatureException", "'Host'");
	kms_request(&t, &kms_cred);
	edit_auth(&t, ";x-amz-date;", ";");
	expect_fail(&t, "IncompleteSignatureException", "x-amz-date");
	/* every x-amz-* header must be signed: an unsigned X-Amz-Target
	 * would let a signed request be replayed as another operation */
	kms_request(&t, &kms_cred);
	edit_auth(&t, ";x-amz-target", "");
	expect_fail(&t, "IncompleteSignatureException", "X-Amz-Target");
	kms_request(&t, &kms_cred);
	treq_add(&t, "X-Amz-Foo", "bar");
	expect_fail(&t, "IncompleteSignatureException", "X-Amz-Foo");
	kms_request(&t, &kms_cred);
	treq_del(&t, "Content-Type");
	expect_fail(&t, "InvalidSignatureException", "absent");
	kms_request(&t, &kms_cred);
	treq_add(&t, "X-Amz-Security-Token", "FwoGZXIvYXdzEXAMPLETOKEN");
	expect_fail(&t, "IncompleteSignatureException", "X-Amz-Security-Token");
	kms_request(&t, &kms_cred_token);
	treq_add(&t, "x-amz-security-token", "FwoGZXIvYXdzEXAMPLETOKEN");
	expect_fail_at(&t, &kms_store_token, KMS_T, "us-east-1", "kms", 400,
	    "IncompleteSignatureException", "Multiple");
	kms_request(&t, &kms_cred);
	treq_add(&t, "x-amz-date", "20261122T060559Z");
	expect_fail(&t, "IncompleteSignatureException", "Multiple");
	kms_request(&t, &kms_cred);
	treq_set(&t, "X-Amz-Date", "2026-11-22T06:05:59Z");
	expect_fail(&t, "IncompleteSignatureException", "ISO-8601");
	kms_request(&t, &kms_cred);
	treq_set(&t, "X-Amz-Date", "20261322T060559Z");
	expect_fail(&t, "IncompleteSignatureException", "ISO-8601");
	kms_request(&t, &kms_cred);
	treq_del(&t, "X-Amz-Date");
	expect_fail(&t, "IncompleteSignatureException", "'Date'");

	/* steps 6 and 7: the bytes */
	kms_request(&t, &kms_cred);
	t.body[10] ^= 1;
	expect_fail(&t, "InvalidSignatureException",
	    "The request signature we calculated does not match the signature you provided.");
	kms_request(&t, &kms_cred);
	t.r.body_len--;
	expect_fail(&t, "InvalidSignatureException", "does not match");
	kms_request(&t, &kms_cred);
	treq_set(&t, "X-Amz-Target", "TrentService.Encrypu");
	expect_fail(&t, "InvalidSignatureException", "does not match");
	kms_request(&t, &kms_cred);
	treq_set(&t, "Host", "127.0.0.1:4598");
	expect_fail(&t, "InvalidSignatureException", "does not match");
	kms_request(&t, &kms_cred);
	snprintf(v, sizeof(v), "%s", treq_get(&t, "Authorization"));
	v[strlen(v) - 1] = v[strlen(v) - 1] == '0' ? '1' : '0';
	treq_set(&t, "Authorization", v);
	expect_fail(&t, "InvalidSignatureException", "does not match");
	kms_request(&t, &kms_cred);
	snprintf(v, sizeof(v), "%s", treq_get(&t, "Authorization"));
	v[strlen(v) - 64] = v[strlen(v) - 64] == 'a' ? 'b' : 'a';
	treq_set(&t, "Authorization", v);
	expect_fail(&t, "InvalidSignatureException", "does not match");
	/* whitespace the canonical form folds still verifies */
	kms_request(&t, &kms_cred);
	treq_set(&t, "X-Amz-Target", "  TrentService.Encrypt \t");
	expect_ok(&t, &kms_store, KMS_T);
	/* unsigned headers are free to change */
	treq_set(&t, "User-Agent", "other");
	expect_ok(&t, &kms_store, KMS_T);
}

static void
test_payload_hash_and_date(void **state)
{
	struct treq t;
	struct ward_buf auth = {0};
	char hash[65];
	uint8_t md[32];

	/* a signed x-amz-content-sha256 must be the body's */
	memset(&t, 0, sizeof(t));
	t.method = "POST";
	t.path = "/";
	memcpy(t.body, KMS_BODY, strlen(KMS_BODY));
	t.body_len = strlen(KMS_BODY);
	treq_add(&t, "Host", "kms.us-east-1.amazonaws.com");
	treq_add(&t, "X-Amz-Date", "20261122T060559Z");
	assert_int_equal(
	    EVP_Digest(t.body, t.body_len, md, NULL, EVP_sha256(), NULL), 1);
	ward_hex_encode(md, 32, hash);
	treq_add(&t, "X-Amz-Content-Sha256", hash);
	ASSERT_OK(ward_sigv4_sign(&t.r, &kms_cred, "us-east-1", "kms", &auth));
	treq_add(&t, "Authorization", (char *)auth.p);
	expect_ok(&t, &kms_store, KMS_T);
	treq_set(&t, "X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD");
	expect_fail(&t, "InvalidSignatureException", "UNSIGNED-PAYLOAD");
	treq_set(&t, "X-Amz-Content-Sha256", hash);
	t.body[0] = '[';
	expect_fail(&t, "InvalidSignatureException", "x-amz-content-sha256");
	/* the signer refuses it too */
	treq_del(&t, "Authorization");
	ASSERT_ERR(ward_sigv4_sign(&t.r, &kms_cred, "us-east-1", "kms", &auth),
	    WARD_EUSAGE);

	/* no X-Amz-Date: the Date header, which must then be signed */
	memset(&t, 0, sizeof(t));
	t.method = "POST";
	t.path = "/";
	treq_add(&t, "Host", "kms.us-east-1.amazonaws.com");
	treq_add(&t, "Date", "Sun, 22 Nov 2026 06:05:59 GMT");
	ASSERT_OK(ward_sigv4_sign(&t.r, &kms_cred, "us-east-1", "kms", &auth));
	assert_non_null(strstr((char *)auth.p,
	    "/20261122/us-east-1/kms/aws4_request, SignedHeaders=date;host,"));
	treq_add(&t, "Authorization", (char *)auth.p);
	expect_ok(&t, &kms_store, KMS_T);
	expect_fail_at(&t, &kms_store, KMS_T + 301, "us-east-1", "kms", 400,
	    "InvalidSignatureException", "Signature expired");
	treq_set(&t, "Date", "Sun, 22 Nov 2026 06:05:58 GMT");
	expect_fail(&t, "InvalidSignatureException", "does not match");
	treq_set(&t, "Date", "Sunday, 22-Nov-26 06:05:59 GMT");
	expect_fail(&t, "IncompleteSignatureException", "ISO-8601");
	ward_buf_free(&auth);
}

static void
test_sign_usage(void **state)
{
	struct treq t;
	struct ward_buf auth = {0};
	const struct ward_sigv4_credentials bad_akid = {
	    "AKID/EXAMPLE", SUITE_SECRET, NULL};

	memset(&t, 0, sizeof(t));
	t.method = "POST";
	t.path = "/";
	treq_add(&t, "X-Amz-Date", "20261122T060559Z");
	/* no Host */
	ASSERT_ERR(ward_sigv4_sign(&t.r, &kms_cred, "us-east-1", "kms", &auth),
	    WARD_EUSAGE);
	treq_add(&t, "Host", "h");
	ASSERT_OK(ward_sigv4_sign(&t.r, &kms_cred, "us-east-1", "kms", &auth));
	/* a token in the credentials but not in the headers */
	ASSERT_ERR(
	    ward_sigv4_sign(&t.r, &kms_cred_token, "us-east-1", "kms", &auth),
	    WARD_EUSAGE);
	ASSERT_ERR(ward_sigv4_sign(&t.r, &bad_akid, "us-east-1", "kms", &auth),
	    WARD_EUSAGE);
	ASSERT_ERR(ward_sigv4_sign(&t.r, &kms_cred, "us/east-1", "kms", &auth),
	    WARD_EUSAGE);
	treq_add(&t, "Bad Name", "x");
	ASSERT_ERR(ward_sigv4_sign(&t.r, &kms_cred, "us-east-1", "kms", &auth),
	    WARD_EUSAGE);
	ward_buf_free(&auth);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_primitives),
	    cmocka_unit_test(test_suite_sign),
	    cmocka_unit_test(test_suite_verify),
	    cmocka_unit_test(test_kms_capture),
	    cmocka_unit_test(test_parse_authorization),
	    cmocka_unit_test(test_refusals),
	    cmocka_unit_test(test_payload_hash_and_date),
	    cmocka_unit_test(test_sign_usage),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
