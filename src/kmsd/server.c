/*
 * ward kms serve: libmicrohttpd with a thread pool, one SQLite connection
 * per worker thread, the AWS JSON 1.1 protocol (kms-and-esdk.md §1.1:
 * POST /, X-Amz-Target: TrentService.<Operation>, JSON bodies, errors as
 * {"__type","message"}), SigV4 on every request, one audit line per
 * request written before the response is sent.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <linux/vm_sockets.h>

#include "internal.h"

#define DEFAULT_LISTEN "127.0.0.1:4599"
#define DEFAULT_MAX_BODY (1024 * 1024)
#define MAX_HEADERS 64
#define JSON_TYPE "application/x-amz-json-1.1"

struct server {
	struct kmsd_state *st;
	struct kmsd_audit *audit;
	struct ward_attest_roots *roots;
	size_t max_body;
	pthread_key_t dbkey;
};

struct conn {
	struct ward_buf body; /* secret: may hold plaintext */
	bool too_big;
};

/* jansson's strings may hold plaintext (base64 in requests, responses):
 * the server frees them zeroed. */
static void
cleansing_free(void *p)
{
	if (p != NULL) {
		OPENSSL_cleanse(p, malloc_usable_size(p));
		free(p);
	}
}

/*
 * Principals never change once made, so each worker thread keeps the
 * last few it authenticated (the secret is needed for SigV4 on every
 * request; looking it up and unwrapping it was an eighth of the cost).
 */
#define PRINCIPAL_CACHE 8
static __thread struct {
	uint64_t serial;
	struct kmsd_principal p;
	char secret[64];
	size_t secret_len;
	char token[65];
} principals[PRINCIPAL_CACHE];
static __thread unsigned principal_next;

/* A worker thread's exit: its caches, then its connection. */
static void
db_close(void *p)
{
	kmsd_ops_thread_release();
	kmsd_db_close(p);
	kmsd_store_thread_release();
	ward_sigv4_thread_release();
	ward_cleanse(principals, sizeof(principals));
}

static int
thread_db(struct server *s, sqlite3 **db)
{
	int r;

	if ((*db = pthread_getspecific(s->dbkey)) != NULL)
		return 0;
	if ((r = kmsd_db_open(s->st, db)) != 0)
		return r;
	pthread_setspecific(s->dbkey, *db);
	return 0;
}

/* ------------------------------------------------------------------ */

struct headers {
	struct ward_sigv4_header h[MAX_HEADERS];
	size_t n;
	bool overflow;
};

static enum MHD_Result
collect(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct headers *hs = cls;

	(void)kind;
	if (hs->n == MAX_HEADERS) {
		hs->overflow = true;
		return MHD_NO;
	}
	hs->h[hs->n].name = key;
	hs->h[hs->n].value = value != NULL ? value : "";
	hs->n++;
	return MHD_YES;
}

/* The single value of a header; *dup set when it came more than once. */
static const char *
header(const struct headers *hs, const char *name, bool *dup)
{
	const char *v = NULL;

	*dup = false;
	for (size_t i = 0; i < hs->n; i++)
		if (strcasecmp(hs->h[i].name, name) == 0) {
			if (v != NULL)
				*dup = true;
			v = hs->h[i].value;
		}
	return v;
}

struct lookup_ctx {
	struct server *s;
	sqlite3 *db;
	struct kmsd_principal *p;
};

static int
lookup_secret(void *ctx, const char *akid, const char *token,
    struct ward_buf *secret, struct ward_kms_error *e)
{
	struct lookup_ctx *l = ctx;
	char want[65] = "";
	int r = 1;

	for (unsigned i = 0; i < PRINCIPAL_CACHE; i++)
		if (principals[i].serial == l->s->st->serial &&
		    strcmp(principals[i].p.akid, akid) == 0) {
			*l->p = principals[i].p;
			memcpy(want, principals[i].token, sizeof(want));
			secret->len = 0;
			secret->secret = true;
			r = ward_buf_append(secret, principals[i].secret,
			    principals[i].secret_len);
			if (r != 0)
				return r;
			break;
		}
	if (r != 0) {
		r = kmsd_principal_lookup(
		    l->s->st, l->db, akid, l->p, secret, want);
		if (r == 0 && secret->len <= sizeof(principals[0].secret)) {
			unsigned i = principal_next++ % PRINCIPAL_CACHE;
			principals[i].serial = l->s->st->serial;
			principals[i].p = *l->p;
			memcpy(principals[i].secret, secret->p, secret->len);
			principals[i].secret_len = secret->len;
			memcpy(principals[i].token, want, sizeof(want));
		}
	}
	if (r == -WARD_EAUTH)
		return ward_kms_err(e, WARD_EAUTH, 400,
		    "UnrecognizedClientException",
		    "The security token included in the request is invalid.");
	if (r != 0)
		return r;
	/* Temporary credentials need their token; long-term ones refuse
	 * one. The stored value is the token's SHA-256. */
	if ((want[0] != '\0') != (token != NULL)) {
		ward_buf_free(secret);
		return ward_kms_err(e, WARD_EAUTH, 400,
		    "UnrecognizedClientException",
		    "The security token included in the request is invalid.");
	}
	if (token != NULL) {
		uint8_t d[SHA256_DIGEST_LENGTH];
		char got[65];

		SHA256((const uint8_t *)token, strlen(token), d);
		ward_hex_encode(d, sizeof(d), got);
		if (ward_ct_memcmp(got, want, 64) != 0) {
			ward_buf_free(secret);
			return ward_kms_err(e, WARD_EAUTH, 400,
			    "UnrecognizedClientException",
			    "The security token included in the request is "
			    "invalid.");
		}
	}
	return 0;
}

static void
source_addr(struct MHD_Connection *c, char *out, size_t n)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci != NULL ? ci->client_addr : NULL;
	char host[INET6_ADDRSTRLEN] = "";

	snprintf(out, n, "unknown");
	if (sa == NULL)
		return;
	if (sa->sa_family == AF_INET && n >= sizeof("255.255.255.255:65535")) {
		/* by hand: inet_ntop and snprintf were 2% of a request */
		const struct sockaddr_in *in = (const void *)sa;
		const uint8_t *a = (const uint8_t *)&in->sin_addr;
		unsigned v[5] = {a[0], a[1], a[2], a[3], ntohs(in->sin_port)};
		size_t o = 0;

		for (int i = 0; i < 5; i++) {
			char d[5];
			int k = 0;

			if (i > 0)
				out[o++] = i < 4 ? '.' : ':';
			do
				d[k++] = (char)('0' + v[i] % 10);
			while ((v[i] /= 10) != 0);
			while (k > 0)
				out[o++] = d[--k];
		}
		out[o] = '\0';
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		snprintf(out, n, "[%s]:%u", host, ntohs(in6->sin6_port));
	} else if (sa->sa_family == AF_UNIX) {
		snprintf(out, n, "unix");
	} else if (sa->sa_family == AF_VSOCK) {
		const struct sockaddr_vm *vm = (const void *)sa;
		snprintf(out, n, "vsock:%u:%u", vm->svm_cid, vm->svm_port);
	}
}

static void
rfc3339_now(char out[64])
{
	/* gmtime and the date's formatting once a second per thread, not
	 * once per request */
	static __thread time_t sec = -1;
	static __thread char date[48]; /* YYYY-MM-DDTHH:MM:SS */
	struct timespec ts;
	struct tm tm;
	size_t n;
	long ms;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (ts.tv_sec != sec) {
		gmtime_r(&ts.tv_sec, &tm);
		snprintf(date, sizeof(date), "%04d-%02d-%02dT%02d:%02d:%02d",
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		    tm.tm_min, tm.tm_sec);
		sec = ts.tv_sec;
	}
	n = strlen(date);
	ms = ts.tv_nsec / 1000000;
	memcpy(out, date, n);
	out[n++] = '.';
	out[n++] = (char)('0' + ms / 100);
	out[n++] = (char)('0' + ms / 10 % 10);
	out[n++] = (char)('0' + ms % 10);
	out[n++] = 'Z';
	out[n] = '\0';
}

/* a string literal's bytes, its length counted by the compiler */
#define APPEND_LIT(b, lit) ward_buf_append(b, lit, sizeof(lit) - 1)

/* ,"name":"value" into the line being built; when v is NULL, nothing,
 * or null if null_ok (the members every line has) */
static int
member_or(struct ward_buf *b, const char *name, const char *v, bool null_ok)
{
	int r;

	if (v == NULL && !null_ok)
		return 0;
	if ((r = APPEND_LIT(b, ",\"")) != 0 ||
	    (r = ward_buf_append(b, name, strlen(name))) != 0 ||
	    (r = APPEND_LIT(b, "\":")) != 0)
		return r;
	return v != NULL ? ward_json_str(b, v) : APPEND_LIT(b, "null");
}
#define member(b, name, v) member_or(b, name, v, false)

/*
 * Returns < 0 when the line could not be written. The members are
 * formatted here, not through jansson (whose pack and dump were a tenth of
 * a request's CPU); ward_json_str makes valid JSON of any bytes.
 */
static int
audit(struct server *s, const struct kmsd_req *rq, const char *source,
    const char *claimed, int status)
{
	int r;
	char t[64];
	struct ward_buf b = {0};
	const char *decision = status == 200 ? "allow"
	    : strcmp(rq->err.type, "AccessDeniedException") == 0 ||
	        strstr(rq->err.type, "Signature") != NULL ||
	        strcmp(rq->err.type, "UnrecognizedClientException") == 0 ||
	        strcmp(rq->err.type, "MissingAuthenticationTokenException") == 0
	    ? "deny"
	    : "error";

	rfc3339_now(t);
	/* "time" first: the leading comma becomes the brace */
	if ((r = ward_buf_reserve(&b, 512)) != 0 ||
	    (r = member(&b, "time", t)) != 0 ||
	    (r = member_or(&b, "operation", rq->op, true)) != 0 ||
	    (r = member_or(&b, "principal",
	         rq->caller.arn[0] != '\0' ? rq->caller.arn : claimed, true)) !=
	        0 ||
	    (r = member_or(&b, "key",
	         rq->key_arn[0] != '\0' ? rq->key_arn : NULL, true)) != 0 ||
	    (r = member(&b, "source", source)) != 0 ||
	    (r = member(&b, "decision", decision)) != 0)
		goto out;
	if (rq->source_key_arn[0] != '\0' &&
	    ((r = member(&b, "source_key", rq->source_key_arn)) != 0 ||
	        (r = member(&b, "source_reason",
	             rq->source_why[0] != '\0' ? rq->source_why : NULL)) != 0))
		goto out;
	if (rq->module_id[0] != '\0' &&
	    ((r = APPEND_LIT(&b, ",\"attestation\":{\"module_id\":")) != 0 ||
	        (r = ward_json_str(&b, rq->module_id)) != 0 ||
	        (r = APPEND_LIT(&b, ",\"pcr0\":")) != 0 ||
	        (r = ward_json_str(&b, rq->pcr0)) != 0 ||
	        (r = ward_buf_put_u8(&b, '}')) != 0))
		goto out;
	if (status != 200) {
		if ((r = member(&b, "error", rq->err.type)) == 0)
			r = member(&b, "message", rq->err.message);
	} else if (rq->why[0] != '\0') {
		r = member(&b, "reason", rq->why);
	}
	if (r != 0 || (r = ward_buf_put_u8(&b, '}')) != 0)
		goto out;
	b.p[0] = '{';
	r = kmsd_audit_append(s->audit, (const char *)b.p, b.len);
out:
	if (r != 0)
		ward_warn("audit log: %s", ward_errmsg());
	ward_buf_free(&b);
	return r;
}

/* The response body as a buffer MHD frees through us, zeroed. */
static void
free_body(void *p)
{
	uint8_t *b = (uint8_t *)p - sizeof(size_t);
	size_t n;

	memcpy(&n, b, sizeof(n));
	OPENSSL_cleanse(b, n + sizeof(size_t));
	free(b);
}

/*
 * JSON text of v (compact, members in insertion order, strings as ASCII
 * through ward_json_str), appended to b. Written here rather than with
 * json_dumps, whose text then had to be copied into the response: the
 * two were a twentieth of a request's CPU. Numbers with a fraction are
 * rare (dates) and go through jansson so that they read the same.
 */
static int
emit_json(struct ward_buf *b, json_t *v, int depth)
{
	const char *key;
	json_t *m;
	size_t i;
	char num[32], *t;
	bool first = true;
	int r = 0;

	if (depth > 32)
		return ward_errf(WARD_EINTERNAL, "response nested too deep");
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		r = ward_buf_put_u8(b, '{');
		json_object_foreach(v, key, m)
		{
			if (r == 0 && !first)
				r = ward_buf_put_u8(b, ',');
			first = false;
			if (r == 0)
				r = ward_json_str(b, key);
			if (r == 0)
				r = ward_buf_put_u8(b, ':');
			if (r == 0)
				r = emit_json(b, m, depth + 1);
		}
		return r != 0 ? r : ward_buf_put_u8(b, '}');
	case JSON_ARRAY:
		r = ward_buf_put_u8(b, '[');
		json_array_foreach(v, i, m)
		{
			if (r == 0 && i > 0)
				r = ward_buf_put_u8(b, ',');
			if (r == 0)
				r = emit_json(b, m, depth + 1);
		}
		return r != 0 ? r : ward_buf_put_u8(b, ']');
	case JSON_STRING:
		return ward_json_str_n(
		    b, json_string_value(v), json_string_length(v));
	case JSON_INTEGER:
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
		    json_integer_value(v));
		return ward_buf_append(b, num, strlen(num));
	case JSON_REAL:
		if ((t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT)) == NULL)
			return ward_enomem();
		r = ward_buf_append(b, t, strlen(t));
		free(t);
		return r;
	case JSON_TRUE:
		return APPEND_LIT(b, "true");
	case JSON_FALSE:
		return APPEND_LIT(b, "false");
	case JSON_NULL:
		return APPEND_LIT(b, "null");
	}
	return ward_errf(WARD_EINTERNAL, "response: unknown JSON type");
}

/*
 * The x-amzn-RequestId value: a random (version 4) UUID. Ids are public,
 * so each thread draws them from a pool it fills 4 KiB at a time (one
 * getrandom per request was 2% of its CPU).
 */
static int
request_id(char out[37])
{
	static __thread uint8_t pool[4096];
	static __thread size_t used = sizeof(pool);
	uint8_t rid[16];
	int r;

	if (used + sizeof(rid) > sizeof(pool)) {
		if ((r = ward_random(pool, sizeof(pool))) != 0)
			return r;
		used = 0;
	}
	memcpy(rid, pool + used, sizeof(rid));
	used += sizeof(rid);
	rid[6] = (uint8_t)((rid[6] & 0x0f) | 0x40);
	rid[8] = (uint8_t)((rid[8] & 0x3f) | 0x80);
	kmsd_uuid_from_bytes(rid, out);
	return 0;
}

/*
 * The body goes to MHD in a buffer it frees through free_body: a size_t
 * (the bytes to zero) and then the text, which may hold plaintext.
 */
static enum MHD_Result
respond(struct MHD_Connection *c, int status, json_t *body)
{
	struct ward_buf b = {.secret = true};
	struct MHD_Response *resp;
	enum MHD_Result ret;
	char rid[37];
	size_t n;

	if (ward_buf_reserve(&b, 512) != 0 ||
	    ward_buf_append(&b, &(size_t){0}, sizeof(size_t)) != 0 ||
	    emit_json(&b, body, 0) != 0) {
		ward_warn("kms: cannot format a response: %s", ward_errmsg());
		ward_buf_free(&b);
		return MHD_NO;
	}
	n = b.cap - sizeof(size_t);
	memcpy(b.p, &n, sizeof(n));
	resp = MHD_create_response_from_buffer_with_free_callback(
	    b.len - sizeof(size_t), b.p + sizeof(size_t), free_body);
	if (resp == NULL) {
		ward_buf_free(&b);
		return MHD_NO;
	}
	/* b.p is MHD's now: free_body releases it with the response. */
	MHD_add_response_header(resp, "Content-Type", JSON_TYPE);
	if (request_id(rid) == 0)
		MHD_add_response_header(resp, "x-amzn-RequestId", rid);
	ret = MHD_queue_response(c, (unsigned)status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static json_t *
error_body(const struct ward_kms_error *e)
{
	return json_pack(
	    "{s:s, s:s}", "__type", e->type, "message", e->message);
}

/*
 * Handle one complete request. Returns the HTTP status; *out is the JSON
 * body to send.
 */
static int
handle(struct server *s, struct MHD_Connection *c, const char *method,
    const char *url, struct conn *cn, json_t **out)
{
	struct kmsd_req rq;
	struct headers hs = {0};
	struct ward_sigv4_request sreq;
	struct lookup_ctx lctx;
	const char *target, *ctype;
	char source[128], op[64] = "", claimed[160] = "";
	bool dup;
	char jerr[160];
	int status = 400;

	memset(&rq, 0, sizeof(rq));
	rq.st = s->st;
	rq.roots = s->roots;
	*out = NULL;
	source_addr(c, source, sizeof(source));
	MHD_get_connection_values(c, MHD_HEADER_KIND, collect, &hs);
	target = header(&hs, "X-Amz-Target", &dup);
	if (target != NULL && strncmp(target, "TrentService.", 13) == 0 &&
	    strlen(target + 13) < sizeof(op))
		ward_concat(op, sizeof(op), target + 13);
	rq.op = op[0] != '\0' ? op : NULL;

	if (cn->too_big) {
		status = 413;
		ward_kms_err(&rq.err, WARD_ELIMIT, 413, "ValidationException",
		    "The request body is larger than %zu bytes", s->max_body);
		goto done;
	}
	if (hs.overflow) {
		ward_kms_err(&rq.err, WARD_ELIMIT, 400, "ValidationException",
		    "More than %d request headers", MAX_HEADERS);
		goto done;
	}
	if (strcmp(method, "POST") != 0 || strcmp(url, "/") != 0) {
		status = strcmp(url, "/") != 0 ? 404 : 405;
		ward_kms_err(&rq.err, WARD_EUSAGE, status,
		    "UnknownOperationException",
		    "The KMS API is POST / (got %s %s)", ward_quotes(method),
		    ward_quotes(url));
		goto done;
	}
	if (target == NULL || dup) {
		ward_kms_err(&rq.err, WARD_EUSAGE, 400,
		    "UnknownOperationException",
		    target == NULL ? "X-Amz-Target is missing"
		                   : "X-Amz-Target was given more than once");
		goto done;
	}
	if (rq.op == NULL) {
		ward_kms_err(&rq.err, WARD_EUSAGE, 400,
		    "UnknownOperationException",
		    "X-Amz-Target %s is not TrentService.<Operation>",
		    ward_quotes(target));
		goto done;
	}
	ctype = header(&hs, "Content-Type", &dup);
	if (ctype == NULL || dup || strstr(ctype, "json") == NULL) {
		ward_kms_err(&rq.err, WARD_EFORMAT, 400,
		    "SerializationException",
		    "Content-Type must be " JSON_TYPE);
		goto done;
	}
	if (thread_db(s, &rq.db) != 0) {
		status = 500;
		ward_warn("%s", ward_errmsg());
		ward_kms_err(&rq.err, WARD_EIO, 500, "KMSInternalException",
		    "The key service's database is unavailable");
		goto done;
	}

	/* Who is asking (SigV4, §2.4). */
	memset(&sreq, 0, sizeof(sreq));
	sreq.method = method;
	sreq.path = url;
	sreq.query = "";
	sreq.headers = hs.h;
	sreq.nheaders = hs.n;
	sreq.body = cn->body.p;
	sreq.body_len = cn->body.len;
	lctx.s = s;
	lctx.db = rq.db;
	lctx.p = &rq.caller;
	if (ward_sigv4_verify(&sreq, s->st->region, "kms", time(NULL),
	        lookup_secret, &lctx, NULL, &rq.err) != 0) {
		/* The access key id the request claimed, for the log. */
		const char *a = header(&hs, "Authorization", &dup);
		const char *cred = a != NULL ? strstr(a, "Credential=") : NULL;
		if (cred != NULL)
			snprintf(claimed, sizeof(claimed), "%.*s",
			    (int)strcspn(cred + 11, "/, "), cred + 11);
		memset(&rq.caller, 0, sizeof(rq.caller));
		status = rq.err.status != 0 ? rq.err.status : 400;
		goto done;
	}

	if (cn->body.len == 0)
		rq.in = json_object();
	else
		rq.in = kmsd_json_parse(
		    (const char *)cn->body.p, cn->body.len, jerr, sizeof(jerr));
	if (rq.in == NULL || !json_is_object(rq.in)) {
		ward_kms_err(&rq.err, WARD_EFORMAT, 400,
		    "SerializationException",
		    "The request body is not a JSON object%s%s",
		    rq.in == NULL ? ": " : "", rq.in == NULL ? jerr : "");
		goto done;
	}
	if (kmsd_dispatch(&rq) == 0) {
		status = 200;
		*out = json_incref(rq.out);
	} else {
		status = rq.err.status != 0 ? rq.err.status : 400;
	}
done:
	if (audit(s, &rq, source, claimed[0] != '\0' ? claimed : NULL,
	        status) != 0 &&
	    status == 200) {
		/* Nothing is released that the log does not record. */
		json_decref(*out);
		*out = NULL;
		status = 500;
		ward_kms_err(&rq.err, WARD_EIO, 500, "KMSInternalException",
		    "The request could not be recorded in the audit log; the "
		    "server log has the cause.");
	}
	if (status != 200)
		*out = error_body(&rq.err);
	json_decref(rq.in);
	json_decref(rq.out);
	ward_errclear();
	return status;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url,
    const char *method, const char *version, const char *upload,
    size_t *upload_size, void **con_cls)
{
	struct server *s = cls;
	struct conn *cn = *con_cls;
	json_t *out = NULL;
	enum MHD_Result ret;
	int status;

	(void)version;
	if (cn == NULL) {
		const char *cl;

		if ((cn = calloc(1, sizeof(*cn))) == NULL)
			return MHD_NO;
		cn->body.secret = true;
		cl = MHD_lookup_connection_value(
		    c, MHD_HEADER_KIND, "Content-Length");
		if (cl != NULL && strtoull(cl, NULL, 10) > s->max_body)
			cn->too_big = true;
		*con_cls = cn;
		return MHD_YES;
	}
	if (*upload_size > 0) {
		if (!cn->too_big &&
		    (cn->body.len + *upload_size > s->max_body ||
		        ward_buf_append(&cn->body, upload, *upload_size) != 0))
			cn->too_big = true;
		*upload_size = 0;
		return MHD_YES;
	}
	status = handle(s, c, method, url, cn, &out);
	ret = out != NULL ? respond(c, status, out) : MHD_NO;
	json_decref(out);
	ward_buf_free(&cn->body);
	return ret;
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct conn *cn = *con_cls;

	(void)cls;
	(void)c;
	(void)toe;
	if (cn != NULL) {
		ward_buf_free(&cn->body);
		free(cn);
		*con_cls = NULL;
	}
}

__attribute__((format(printf, 2, 0))) static void
on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	ward_debug("http: %s", msg);
}

/* ------------------------------------------------------------------ */
/* Listening                                                          */

static int
listen_on(const char *addr, int *fd_out, char *bound, size_t bound_len)
{
	int fd = -1, r = 0, one = 1;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	memset(&ss, 0, sizeof(ss));

	*fd_out = -1;
	if (strncmp(addr, "unix:", 5) == 0) {
		struct sockaddr_un un = {.sun_family = AF_UNIX};
		struct stat st;
		const char *path = addr + 5;

		if (strlen(path) == 0 || strlen(path) >= sizeof(un.sun_path))
			return ward_errf(WARD_EUSAGE,
			    "unix socket path '%s' is "
			    "empty or too long",
			    ward_quotes(path));
		memcpy(un.sun_path, path, strlen(path));
		/* A stale socket from a killed server; never a file. */
		if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
			unlink(path);
		if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
		    bind(fd, (struct sockaddr *)&un, sizeof(un)) != 0) {
			r = ward_errf(
			    WARD_EIO, "%s: %s", addr, strerror(errno));
			goto out;
		}
		snprintf(bound, bound_len, "unix:%s", path);
	} else if (strncmp(addr, "vsock:", 6) == 0) {
		struct sockaddr_vm vm = {.svm_family = AF_VSOCK};
		unsigned long cid, port;
		char *end;

		if (strncmp(addr + 6, "any:", 4) == 0) {
			cid = VMADDR_CID_ANY;
			end = (char *)addr + 9;
		} else {
			cid = strtoul(addr + 6, &end, 10);
		}
		if (*end != ':' ||
		    (port = strtoul(end + 1, &end, 10)) > UINT32_MAX || *end)
			return ward_errf(WARD_EUSAGE,
			    "'%s' is not vsock:CID:PORT", ward_quotes(addr));
		vm.svm_cid = (unsigned)cid;
		vm.svm_port = (unsigned)port;
		if ((fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0)) <
		        0 ||
		    bind(fd, (struct sockaddr *)&vm, sizeof(vm)) != 0) {
			r = ward_errf(WARD_EIO,
			    "%s: %s (this machine may have "
			    "no vsock; listen on unix:PATH instead)",
			    addr, strerror(errno));
			goto out;
		}
		snprintf(bound, bound_len, "vsock:%lu:%lu", cid, port);
	} else {
		const char *hp =
		    strncmp(addr, "tcp:", 4) == 0 ? addr + 4 : addr;
		const char *colon = strrchr(hp, ':');
		char host[256], port[16];
		struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
		                    .ai_flags = AI_PASSIVE | AI_NUMERICSERV},
		                *ai = NULL;
		int gai;

		if (colon == NULL || (size_t)(colon - hp) >= sizeof(host) ||
		    strlen(colon + 1) == 0 || strlen(colon + 1) >= sizeof(port))
			return ward_errf(WARD_EUSAGE,
			    "'%s' is not HOST:PORT, unix:PATH or vsock:CID:PORT",
			    ward_quotes(addr));
		memcpy(host, hp, (size_t)(colon - hp));
		host[colon - hp] = '\0';
		if (host[0] == '[' && host[strlen(host) - 1] == ']') {
			memmove(host, host + 1, strlen(host) - 2);
			host[strlen(host) - 2] = '\0';
		}
		snprintf(port, sizeof(port), "%s", colon + 1);
		if ((gai = getaddrinfo(
		         host[0] ? host : NULL, port, &hints, &ai)) != 0)
			return ward_errf(WARD_EUSAGE, "%s: %s",
			    ward_quotes(addr), gai_strerror(gai));
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
		    ai->ai_protocol);
		if (fd < 0 ||
		    setsockopt(
		        fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
		    bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
			r = ward_errf(
			    WARD_EIO, "%s: %s", addr, strerror(errno));
			freeaddrinfo(ai);
			goto out;
		}
		freeaddrinfo(ai);
		if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
			char h[INET6_ADDRSTRLEN] = "";
			unsigned p = 0;
			if (ss.ss_family == AF_INET) {
				struct sockaddr_in *in = (void *)&ss;
				inet_ntop(AF_INET, &in->sin_addr, h, sizeof(h));
				p = ntohs(in->sin_port);
				snprintf(bound, bound_len, "tcp:%s:%u", h, p);
			} else {
				struct sockaddr_in6 *in6 = (void *)&ss;
				inet_ntop(
				    AF_INET6, &in6->sin6_addr, h, sizeof(h));
				p = ntohs(in6->sin6_port);
				snprintf(bound, bound_len, "tcp:[%s]:%u", h, p);
			}
		}
	}
	if (listen(fd, 1024) != 0) {
		r = ward_errf(WARD_EIO, "%s: %s", addr, strerror(errno));
		goto out;
	}
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
		r = ward_errf(WARD_EIO, "%s: %s", addr, strerror(errno));
		goto out;
	}
	*fd_out = fd;
	fd = -1;
out:
	if (fd >= 0)
		close(fd);
	return r;
}

/*
 * Connections are accepted here and handed to libmicrohttpd, which gives
 * each to a worker by its descriptor number, so consecutive connections
 * alternate between workers. Left to accept on their own, the workers
 * raced for the listening socket and one could take a whole burst: 16
 * connections opened together sometimes all went to one worker, which
 * then served them on one core while the other idled.
 */
struct acceptor {
	struct MHD_Daemon *d;
	int fd; /* listening */
	int stop[2]; /* a pipe: written to stop */
};

static void *
accept_main(void *arg)
{
	struct acceptor *ac = arg;
	struct pollfd p[2] = {{.fd = ac->fd, .events = POLLIN},
	    {.fd = ac->stop[0], .events = POLLIN}};

	for (;;) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int c;

		if (poll(p, 2, -1) < 0) {
			/* (ENOMEM): wait and try again rather than serve
			 * on with no one accepting */
			if (errno != EINTR) {
				ward_warn("kms: poll on the listening socket: "
				          "%s",
				    strerror(errno));
				poll(NULL, 0, 100);
			}
			continue;
		}
		if (p[1].revents != 0)
			break;
		if ((c = accept4(ac->fd, (struct sockaddr *)&ss, &len,
		         SOCK_NONBLOCK | SOCK_CLOEXEC)) < 0) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				ward_warn("kms: accept: %s", strerror(errno));
				poll(NULL, 0, 100); /* let connections close */
			}
			continue; /* EAGAIN, ECONNABORTED, EINTR, ... */
		}
		/* closes c itself when it cannot take it (connection limit) */
		if (MHD_add_connection(ac->d, c, (struct sockaddr *)&ss, len) !=
		    MHD_YES)
			ward_debug("kms: a connection was refused: %s",
			    strerror(errno));
	}
	return NULL;
}

int
ward_kmsd_serve(const struct ward_kmsd_serve_opts *o)
{
	struct server s;
	struct MHD_Daemon *d = NULL;
	struct acceptor ac = {.fd = -1, .stop = {-1, -1}};
	pthread_t acc;
	bool accepting = false;
	sigset_t set, old;
	int r, fd = -1, sig = 0;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned threads = o->threads;
	char bound[300] = "";

	memset(&s, 0, sizeof(s));
	/* loaded on first use (src/util/lazy.c): fail here if it cannot be */
	if ((r = ward_lazy_load(WARD_LAZY_MHD)) != 0)
		return r;
	s.max_body = o->max_body != 0 ? o->max_body : DEFAULT_MAX_BODY;
	if (threads == 0)
		threads = ncpu > 2 ? (unsigned)ncpu : 2;
	if (pthread_key_create(&s.dbkey, db_close) != 0)
		return ward_errf(WARD_EINTERNAL, "pthread_key_create failed");
	json_set_alloc_funcs(malloc, cleansing_free);
	if ((r = kmsd_gen_create(o->dir)) != 0 ||
	    (r = kmsd_state_open(o->dir, &s.st)) != 0)
		goto out;
	/* before the audit log opens the state a second time */
	kmsd_gen_even(s.st);
	/* A file size limit (RLIMIT_FSIZE) reached by the audit log or the
	 * database fails that write with EFBIG, and the request with it,
	 * like a full disk; the default SIGXFSZ would kill the server. */
	signal(SIGXFSZ, SIG_IGN);
	if ((r = kmsd_audit_open(o->dir, &s.audit)) != 0 ||
	    (r = ward_attest_roots_new(true, &s.roots)) != 0)
		goto out;
	for (size_t i = 0; i < o->ntrust_roots; i++)
		if ((r = ward_attest_roots_add_file(
		         s.roots, o->trust_roots[i])) != 0)
			goto out;
	if ((r = listen_on(o->listen != NULL ? o->listen : DEFAULT_LISTEN, &fd,
	         bound, sizeof(bound))) != 0)
		goto out;

	/* Workers inherit a mask without SIGTERM/SIGINT; this thread
	 * takes them with sigwait. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	/* libmicrohttpd zeroes a connection's whole memory pool between
	 * requests: at 64 KiB that memset was 5% of a request's CPU. 16 KiB
	 * holds about 14 KB of headers (431 beyond); bodies go to cn->body
	 * as they arrive, so --max-body is not bounded by it. */
	d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
	        MHD_USE_TURBO | MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET |
	        MHD_USE_ITC,
	    0, NULL, NULL, on_request, &s, MHD_OPTION_THREAD_POOL_SIZE, threads,
	    MHD_OPTION_CONNECTION_LIMIT,
	    o->max_connections != 0 ? o->max_connections : 1024u,
	    MHD_OPTION_CONNECTION_TIMEOUT,
	    o->timeout_s != 0 ? o->timeout_s : 30u,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)16 * 1024,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, &s,
	    MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL, MHD_OPTION_END);
	if (d == NULL) {
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		r = ward_errf(WARD_EINTERNAL,
		    "cannot start the HTTP server "
		    "on %s",
		    bound);
		goto out;
	}
	ac.d = d;
	ac.fd = fd;
	if (pipe2(ac.stop, O_CLOEXEC) != 0) {
		r = ward_errf(WARD_EIO, "pipe: %s", strerror(errno));
		goto out_mask;
	}
	if (pthread_create(&acc, NULL, accept_main, &ac) != 0) {
		r = ward_errf(WARD_EINTERNAL, "cannot start the accept thread");
		goto out_mask;
	}
	accepting = true;
	ward_info("kms: serving region %s on %s with %u threads", s.st->region,
	    bound, threads);
	if (o->ready != NULL)
		o->ready(o->ready_ctx, bound);
	sigwait(&set, &sig);
	ward_info("kms: %s: finishing requests in flight",
	    sig == SIGTERM ? "SIGTERM" : "SIGINT");
	if (strncmp(bound, "unix:", 5) == 0)
		unlink(bound + 5);
out_mask:
	/* no new connections, then the ones MHD has are finished */
	if (accepting) {
		if (write(ac.stop[1], "x", 1) != 1)
			ward_warn("kms: cannot stop the accept thread: %s",
			    strerror(errno));
		else
			pthread_join(acc, NULL);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
out:
	if (d != NULL)
		MHD_stop_daemon(d);
	if (fd >= 0)
		close(fd);
	for (int i = 0; i < 2; i++)
		if (ac.stop[i] >= 0)
			close(ac.stop[i]);
	kmsd_audit_close(s.audit);
	ward_attest_roots_free(s.roots);
	kmsd_state_close(s.st);
	pthread_key_delete(s.dbkey);
	return r;
}
