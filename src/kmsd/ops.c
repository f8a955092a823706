/*
 * The KMS operations (kms-and-esdk.md §1.4–§1.6, nitro.md §5). Each
 * handler reads rq->in, checks the caller against the key policy and the
 * key's grants, and sets rq->out or fails with an AWS error in rq->err.
 *
 * Identifier forms (§1.3): bare key ids and alias names are looked up in
 * the caller's account; ARNs name any account (cross-account use needs the
 * key owner's policy to allow it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "internal.h"
#include "ward/crypto.h"

#define E400 400
#define DAY 86400.0

static double
now_d(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	/* milliseconds, as AWS's timestamps have */
	return (double)ts.tv_sec +
	    (double)(ts.tv_nsec - ts.tv_nsec % 1000000) / 1e9;
}

#define FAIL(rq, code, type, ...)                                              \
	ward_kms_err(&(rq)->err, (code), E400, (type), __VA_ARGS__)
#define VALIDATION(rq, ...)                                                    \
	FAIL(rq, WARD_EFORMAT, "ValidationException", __VA_ARGS__)
#define SERIALIZATION(rq, ...)                                                 \
	FAIL(rq, WARD_EFORMAT, "SerializationException", __VA_ARGS__)
#define NOTFOUND(rq, ...) FAIL(rq, WARD_EKEY, "NotFoundException", __VA_ARGS__)
#define INVALIDSTATE(rq, ...)                                                  \
	FAIL(rq, WARD_EUNSUPPORTED, "KMSInvalidStateException", __VA_ARGS__)
#define DISABLED(rq, ...)                                                      \
	FAIL(rq, WARD_EUNSUPPORTED, "DisabledException", __VA_ARGS__)
#define UNSUPPORTED(rq, ...)                                                   \
	FAIL(rq, WARD_EUNSUPPORTED, "UnsupportedOperationException",           \
	    __VA_ARGS__)

static int
internal(struct kmsd_req *rq, int r)
{
	/* A database or library failure: the cause goes to the server's
	 * log (the caller prints ward_errmsg()), not to the client. */
	ward_warn("%s: %s", rq->op, ward_errmsg());
	rq->err.status = 500;
	snprintf(rq->err.type, sizeof(rq->err.type), "KMSInternalException");
	snprintf(rq->err.message, sizeof(rq->err.message),
	    "The request could not be completed; the server log has the "
	    "cause.");
	return r < 0 ? r : -WARD_EINTERNAL;
}

/* ------------------------------------------------------------------ */
/* Reading request members                                            */

static const char *
member_type(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "a structure";
	case JSON_ARRAY:
		return "a list";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
	case JSON_REAL:
		return "a number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	default:
		return "null";
	}
}

/* A string member; *out NULL when absent and not required. */
static int
get_str(struct kmsd_req *rq, const json_t *obj, const char *name, bool required,
    size_t min, size_t max, const char **out)
{
	const json_t *v = json_object_get(obj, name);
	size_t n;

	*out = NULL;
	if (v == NULL || json_is_null(v)) {
		if (required)
			return VALIDATION(rq,
			    "1 validation error detected: "
			    "Value null at '%s' failed to satisfy constraint: "
			    "Member must not be null",
			    name);
		return 0;
	}
	if (!json_is_string(v))
		return SERIALIZATION(
		    rq, "'%s' must be a string, not %s", name, member_type(v));
	n = json_string_length(v);
	if (n < min || n > max)
		return VALIDATION(rq,
		    "1 validation error detected: Value at "
		    "'%s' failed to satisfy constraint: Member must have "
		    "length between %zu and %zu",
		    name, min, max);
	if (strlen(json_string_value(v)) != n)
		return SERIALIZATION(rq, "'%s' contains a NUL character", name);
	*out = json_string_value(v);
	return 0;
}

static int
get_int(struct kmsd_req *rq, const json_t *obj, const char *name, long long min,
    long long max, bool *present, long long *out)
{
	const json_t *v = json_object_get(obj, name);

	*present = false;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_integer(v))
		return SERIALIZATION(rq, "'%s' must be an integer, not %s",
		    name, member_type(v));
	*out = json_integer_value(v);
	if (*out < min || *out > max)
		return VALIDATION(rq,
		    "1 validation error detected: Value '%lld' "
		    "at '%s' failed to satisfy constraint: Member must have "
		    "value between %lld and %lld",
		    *out, name, min, max);
	*present = true;
	return 0;
}

static int
get_bool(struct kmsd_req *rq, const json_t *obj, const char *name, bool *out)
{
	const json_t *v = json_object_get(obj, name);

	*out = false;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_boolean(v))
		return SERIALIZATION(
		    rq, "'%s' must be a boolean, not %s", name, member_type(v));
	*out = json_is_true(v);
	return 0;
}

/* A base64 blob member of 1..max bytes. out->secret is kept. */
static int
get_blob(struct kmsd_req *rq, const json_t *obj, const char *name,
    bool required, size_t max, struct ward_buf *out, bool *present)
{
	const json_t *v = json_object_get(obj, name);
	size_t n, got;
	int r;

	out->len = 0;
	if (present != NULL)
		*present = false;
	if (v == NULL || json_is_null(v)) {
		if (required)
			return VALIDATION(rq,
			    "1 validation error detected: "
			    "Value null at '%s' failed to satisfy constraint: "
			    "Member must not be null",
			    name);
		return 0;
	}
	if (!json_is_string(v))
		return SERIALIZATION(rq, "'%s' must be a base64 string, not %s",
		    name, member_type(v));
	n = json_string_length(v);
	if ((r = ward_buf_reserve(out, n / 4 * 3 + 3)) != 0)
		return internal(rq, r);
	if (ward_b64_decode(json_string_value(v), n, out->p, out->cap, &got) !=
	    0) {
		ward_errclear();
		return SERIALIZATION(rq, "'%s' is not valid base64", name);
	}
	out->len = got;
	if (got < 1 || got > max)
		return VALIDATION(rq,
		    "1 validation error detected: Value at "
		    "'%s' failed to satisfy constraint: Member must have "
		    "length between 1 and %zu bytes",
		    name, max);
	if (present != NULL)
		*present = true;
	return 0;
}

static int
get_ec(struct kmsd_req *rq, const json_t *obj, const char *name,
    struct ward_ec *ec)
{
	const json_t *v = json_object_get(obj, name), *val;
	const char *k;
	size_t total = 0;

	memset(ec, 0, sizeof(*ec));
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_object(v))
		return SERIALIZATION(rq,
		    "'%s' must be a map of strings, not %s", name,
		    member_type(v));
	if (json_object_size(v) > KMSD_EC_PAIRS_MAX)
		return VALIDATION(
		    rq, "'%s' has more than %d pairs", name, KMSD_EC_PAIRS_MAX);
	json_object_foreach((json_t *)v, k, val)
	{
		if (!json_is_string(val)) {
			ward_ec_free(ec);
			return SERIALIZATION(
			    rq, "'%s' values must be strings", name);
		}
		total += strlen(k) + json_string_length(val);
		if (total > KMSD_EC_BYTES_MAX || strlen(k) == 0 ||
		    ward_ec_add(ec, k, strlen(k), json_string_value(val),
		        json_string_length(val)) != 0) {
			ward_ec_free(ec);
			ward_errclear();
			return VALIDATION(rq,
			    "'%s' is not a valid encryption "
			    "context (empty key, invalid UTF-8, or over %d "
			    "bytes)",
			    name, KMSD_EC_BYTES_MAX);
		}
	}
	return 0;
}

static json_t *
b64_json(const uint8_t *p, size_t n)
{
	char *s = malloc(ward_b64_len(n) + 1);
	json_t *j;

	if (s == NULL)
		return NULL;
	ward_b64_encode(p, n, s);
	/* base64 is ASCII: no UTF-8 check, no strlen */
	j = json_stringn_nocheck(s, ward_b64_len(n));
	ward_cleanse(s, ward_b64_len(n));
	free(s);
	return j;
}

/* Set member name of rq->out (created on first use). */
static int
out_set(struct kmsd_req *rq, const char *name, json_t *v)
{
	if (v == NULL)
		return internal(rq, ward_enomem());
	if (rq->out == NULL && (rq->out = json_object()) == NULL) {
		json_decref(v);
		return internal(rq, ward_enomem());
	}
	if (json_object_set_new(rq->out, name, v) != 0)
		return internal(rq, ward_enomem());
	return 0;
}

/* ------------------------------------------------------------------ */
/* Keys by identifier                                                 */

static void
key_arn(const struct kmsd_req *rq, const char *account, const char *id,
    char *out, size_t n)
{
	ward_concat(
	    out, n, "arn:aws:kms:", rq->st->region, ":", account, ":key/", id);
}

static bool
is_uuid(const char *s)
{
	uint8_t b[16];

	return kmsd_uuid_to_bytes(s, b) == 0;
}

static int
alias_lookup(struct kmsd_req *rq, const char *account, const char *name,
    char id[KMSD_KEY_ID_LEN + 1])
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (kmsd_prepare(rq->db,
	        "SELECT key_id FROM aliases WHERE account = ? AND name = ?", -1,
	        &st, NULL) != SQLITE_OK)
		return internal(rq, kmsd_db_err(rq->db, "reading alias"));
	sqlite3_bind_text(st, 1, account, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		ward_concat(id, KMSD_KEY_ID_LEN + 1,
		    (const char *)sqlite3_column_text(st, 0));
	kmsd_finish(st);
	if (rc == SQLITE_ROW)
		return 0;
	if (rc == SQLITE_DONE)
		return NOTFOUND(rq, "Alias arn:aws:kms:%s:%s:%s is not found.",
		    rq->st->region, account, name);
	return internal(rq, kmsd_db_err(rq->db, "reading alias"));
}

/* Load a key, deleting it first when its deletion date has passed. */
static int
load_key(struct kmsd_req *rq, const char *id, struct kmsd_key *k)
{
	int r = kmsd_key_get_cached(rq->st, rq->db, id, k);

	if (r == -WARD_EKEY)
		return r;
	if (r != 0)
		return internal(rq, r);
	if (strcmp(k->state, "PendingDeletion") == 0 &&
	    k->deletion_date <= now_d()) {
		kmsd_key_free(k);
		if ((r = kmsd_begin(rq->db)) != 0 ||
		    (r = kmsd_key_delete(rq->db, id)) != 0 ||
		    (r = kmsd_commit(rq->db)) != 0) {
			kmsd_rollback(rq->db);
			return internal(rq, r);
		}
		ward_info("key %s deleted: its waiting period ended", id);
		return -WARD_EKEY;
	}
	return 0;
}

/*
 * Resolve a KeyId member. alias_ok: the operation accepts alias names and
 * alias ARNs (§1.3 table).
 */
static int
resolve(
    struct kmsd_req *rq, const char *ident, bool alias_ok, struct kmsd_key *k)
{
	char id[KMSD_KEY_ID_LEN + 1], account[KMSD_ACCOUNT_LEN + 1],
	    arn[KMSD_ARN_MAX];
	const char *res;
	int r;

	memset(k, 0, sizeof(*k));
	ward_concat(account, sizeof(account), rq->caller.account);
	if (strncmp(ident, "arn:", 4) == 0) {
		/* arn:aws:kms:REGION:ACCOUNT:key/ID | alias/NAME */
		char part[6][KMSD_ALIAS_MAX + 8];
		const char *p = ident;
		size_t i;

		for (i = 0; i < 6; i++) {
			const char *c = i < 5 ? strchr(p, ':') : p + strlen(p);
			if (c == NULL || (size_t)(c - p) >= sizeof(part[i]))
				break;
			memcpy(part[i], p, (size_t)(c - p));
			part[i][c - p] = '\0';
			p = c + (i < 5);
		}
		if (i != 6 || strcmp(part[1], "aws") != 0 ||
		    strcmp(part[2], "kms") != 0 ||
		    strlen(part[4]) != KMSD_ACCOUNT_LEN)
			return FAIL(rq, WARD_EFORMAT, "InvalidArnException",
			    "Invalid arn %s", ward_quotes(ident));
		if (strcmp(part[3], rq->st->region) != 0)
			return NOTFOUND(rq,
			    "Invalid arn %s: this key service "
			    "serves region %s",
			    ward_quotes(ident), rq->st->region);
		memcpy(account, part[4], sizeof(account)); /* 12 + NUL */
		res = part[5];
		if (strncmp(res, "key/", 4) == 0 && is_uuid(res + 4)) {
			memcpy(id, res + 4, sizeof(id));
		} else if (strncmp(res, "alias/", 6) == 0 && alias_ok) {
			if ((r = alias_lookup(rq, account, res, id)) != 0)
				return r;
		} else {
			return FAIL(rq, WARD_EFORMAT, "InvalidArnException",
			    "Invalid arn %s", ward_quotes(ident));
		}
	} else if (strncmp(ident, "alias/", 6) == 0) {
		if (!alias_ok)
			return NOTFOUND(rq,
			    "Invalid keyId %s: this operation "
			    "takes a key id or key ARN, not an alias",
			    ward_quotes(ident));
		if ((r = alias_lookup(rq, account, ident, id)) != 0)
			return r;
	} else if (is_uuid(ident)) {
		memcpy(id, ident, sizeof(id));
	} else {
		return NOTFOUND(rq, "Invalid keyId %s", ward_quotes(ident));
	}
	key_arn(rq, account, id, arn, sizeof(arn));
	r = load_key(rq, id, k);
	if (r == 0 && strcmp(k->account, account) != 0) {
		kmsd_key_free(k);
		r = -WARD_EKEY;
	}
	if (r == -WARD_EKEY)
		return NOTFOUND(rq, "Key '%s' does not exist", arn);
	if (r != 0)
		return r;
	ward_concat(rq->key_arn, sizeof(rq->key_arn), k->arn);
	return 0;
}

static int
resolve_member(
    struct kmsd_req *rq, const char *member, bool alias_ok, struct kmsd_key *k)
{
	const char *ident;
	int r;

	if ((r = get_str(rq, rq->in, member, true, 1, 2048, &ident)) != 0)
		return r;
	return resolve(rq, ident, alias_ok, k);
}

/* The key-state checks of §1.5, by operation class. */
enum use { USE_CRYPTO, USE_MANAGE, USE_ANY, USE_GRANT };

static int
check_state(struct kmsd_req *rq, const struct kmsd_key *k, enum use u)
{
	bool pending = strcmp(k->state, "PendingDeletion") == 0;

	if (u == USE_ANY)
		return 0;
	if (pending)
		return INVALIDSTATE(rq, "%s is pending deletion.", k->arn);
	if ((u == USE_CRYPTO || u == USE_GRANT) &&
	    strcmp(k->state, "Enabled") != 0)
		return DISABLED(rq, "%s is disabled.", k->arn);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Attestation (Recipient)                                            */

struct attestation {
	bool present;
	struct ward_attest_doc *doc;
	struct ward_attest_result res;
	char pcr[WARD_NSM_PCR_COUNT][97];
};

static void
att_free(struct attestation *a)
{
	ward_attest_doc_free(a->doc);
	a->doc = NULL;
}

static int
get_recipient(struct kmsd_req *rq, struct attestation *a)
{
	const json_t *rcp = json_object_get(rq->in, "Recipient");
	const char *alg;
	struct ward_buf doc = {0};
	int r;

	memset(a, 0, sizeof(*a));
	if (rcp == NULL || json_is_null(rcp))
		return 0;
	if (!json_is_object(rcp))
		return SERIALIZATION(rq, "'Recipient' must be a structure");
	if ((r = get_str(
	         rq, rcp, "KeyEncryptionAlgorithm", false, 1, 64, &alg)) != 0)
		return r;
	if (alg != NULL && strcmp(alg, "RSAES_OAEP_SHA_256") != 0)
		return VALIDATION(rq,
		    "1 validation error detected: Value '%s' "
		    "at 'recipient.keyEncryptionAlgorithm' failed to satisfy "
		    "constraint: Member must satisfy enum value set: "
		    "[RSAES_OAEP_SHA_256]",
		    ward_quotes(alg));
	if ((r = get_blob(rq, rcp, "AttestationDocument", true,
	         WARD_KMS_ATTESTATION_MAX, &doc, NULL)) != 0)
		goto out;
	if (ward_attest_parse(doc.p, doc.len, &a->doc) != 0) {
		r = VALIDATION(rq,
		    "Recipient.AttestationDocument is not an "
		    "attestation document: %s",
		    ward_errmsg());
		goto out;
	}
	if ((r = ward_attest_verify(a->doc, rq->roots, time(NULL), &a->res)) !=
	    0) {
		r = VALIDATION(rq,
		    "Recipient.AttestationDocument does not "
		    "verify against a trusted root: %s",
		    ward_errmsg());
		goto out;
	}
	if (!a->doc->public_key.present || a->doc->public_key.v.len == 0) {
		r = VALIDATION(rq,
		    "Recipient.AttestationDocument carries no "
		    "public_key to encrypt the response to");
		goto out;
	}
	for (unsigned i = 0; i < WARD_NSM_PCR_COUNT; i++)
		if (a->doc->pcrs[i].p != NULL && a->doc->pcrs[i].len <= 48)
			ward_hex_encode(
			    a->doc->pcrs[i].p, a->doc->pcrs[i].len, a->pcr[i]);
	snprintf(rq->module_id, sizeof(rq->module_id), "%.*s",
	    (int)a->doc->module_id.len, (const char *)a->doc->module_id.p);
	snprintf(rq->pcr0, sizeof(rq->pcr0), "%s", a->pcr[0]);
	a->present = true;
out:
	ward_buf_free(&doc);
	if (r != 0)
		att_free(a);
	return r;
}

/* CiphertextForRecipient: pt sealed to the document's public key. */
static int
seal_for(struct kmsd_req *rq, const struct attestation *a, const uint8_t *pt,
    size_t n)
{
	struct ward_buf ct = {0};
	int r;

	if (ward_cms_seal(a->doc->public_key.v.p, a->doc->public_key.v.len, pt,
	        n, &ct) != 0) {
		r = VALIDATION(rq,
		    "cannot encrypt to the attestation "
		    "document's public_key: %s",
		    ward_errmsg());
		goto out;
	}
	r = out_set(rq, "CiphertextForRecipient", b64_json(ct.p, ct.len));
out:
	ward_buf_free(&ct);
	return r;
}

/* ------------------------------------------------------------------ */
/* Authorization: the key policy, then grants                         */

#define CTX_MAX (8 + KMSD_EC_PAIRS_MAX + WARD_NSM_PCR_COUNT)

struct ctx {
	struct ward_policy_key keys[CTX_MAX];
	const char *vals[CTX_MAX];
	char *names[CTX_MAX]; /* owned; NULL where the name is a literal */
	const char *ec_keys[KMSD_EC_PAIRS_MAX];
	size_t n;
	bool oom;
};

/* name: a literal, or anything that outlives c */
static void
ctx_add(struct ctx *c, const char *name, const char *value)
{
	if (c->n >= CTX_MAX) {
		c->oom = true;
		return;
	}
	c->names[c->n] = NULL;
	c->vals[c->n] = value;
	c->keys[c->n].name = name;
	c->keys[c->n].values = &c->vals[c->n];
	c->keys[c->n].nvalues = 1;
	c->n++;
}

/* the name prefix + name, copied */
static void
ctx_add2(struct ctx *c, const char *prefix, const char *name, const char *value)
{
	size_t a = strlen(prefix), b = strlen(name);
	char *s;

	if (c->n >= CTX_MAX || (s = malloc(a + b + 1)) == NULL) {
		c->oom = true;
		return;
	}
	memcpy(s, prefix, a);
	memcpy(s + a, name, b + 1);
	ctx_add(c, s, value); /* takes it: c->n < CTX_MAX */
	c->names[c->n - 1] = s;
}

static void
ctx_free(struct ctx *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->names[i]);
}

static bool
grant_constraints_hold(const json_t *cons, const struct ward_ec *ec)
{
	const json_t *eq, *sub, *v;
	const char *k;

	if (cons == NULL || !json_is_object(cons))
		return true;
	eq = json_object_get(cons, "EncryptionContextEquals");
	sub = json_object_get(cons, "EncryptionContextSubset");
	if (eq != NULL) {
		if (json_object_size(eq) != (ec != NULL ? ec->n : 0))
			return false;
		sub = eq;
	}
	if (sub != NULL) {
		json_object_foreach((json_t *)sub, k, v)
		{
			const struct ward_ec_pair *p =
			    ec != NULL ? ward_ec_get(ec, k, strlen(k)) : NULL;
			if (p == NULL || !json_is_string(v) ||
			    p->value_len != json_string_length(v) ||
			    memcmp(p->value, json_string_value(v),
			        p->value_len) != 0)
				return false;
		}
	}
	return true;
}

/*
 * The caller's grants on k (granted to its ARN or to its account), one at
 * a time: fn gets each grant's id, operations and constraints (NULL when
 * none) and returns true to stop. The why of the grant that stopped the
 * walk is recorded.
 */
typedef bool (*grant_fn)(const json_t *ops, const json_t *cons, void *ctx);

static int
each_grant(struct kmsd_req *rq, const struct kmsd_key *k, grant_fn fn,
    void *ctx, bool *found)
{
	sqlite3_stmt *st = NULL;
	char root[64];

	*found = false;
	ward_concat(
	    root, sizeof(root), "arn:aws:iam::", rq->caller.account, ":root");
	if (kmsd_prepare(rq->db,
	        "SELECT id, operations, constraints FROM grants"
	        " WHERE key_id = ? AND (grantee = ? OR grantee = ?)",
	        -1, &st, NULL) != SQLITE_OK)
		return internal(rq, kmsd_db_err(rq->db, "reading grants"));
	sqlite3_bind_text(st, 1, k->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, rq->caller.arn, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, root, -1, SQLITE_STATIC);
	while (!*found && sqlite3_step(st) == SQLITE_ROW) {
		const char *ctext = (const char *)sqlite3_column_text(st, 2);
		json_t *ops = json_loads(
		    (const char *)sqlite3_column_text(st, 1), 0, NULL);
		json_t *cons =
		    ctext != NULL && *ctext ? json_loads(ctext, 0, NULL) : NULL;

		if (json_is_array(ops) && fn(ops, cons, ctx)) {
			*found = true;
			snprintf(rq->why, sizeof(rq->why),
			    "allowed by grant %s",
			    (const char *)sqlite3_column_text(st, 0));
		}
		json_decref(ops);
		json_decref(cons);
	}
	kmsd_finish(st);
	return 0;
}

struct op_ctx {
	const char *op;
	const struct ward_ec *ec;
};

static bool
grant_has_op(const json_t *ops, const json_t *cons, void *ctx)
{
	const struct op_ctx *c = ctx;
	size_t i;
	json_t *o;

	json_array_foreach(ops, i, o)
	{
		if (json_is_string(o) &&
		    strcmp(json_string_value(o), c->op) == 0)
			return grant_constraints_hold(cons, c->ec);
	}
	return false;
}

/* Does a grant on k give the caller grant_op? */
static int
grant_allows(struct kmsd_req *rq, const struct kmsd_key *k,
    const char *grant_op, const struct ward_ec *ec, bool *allowed)
{
	struct op_ctx c = {grant_op, ec};

	return each_grant(rq, k, grant_has_op, &c, allowed);
}

/*
 * Parsed key policies, cached per thread by key id and checked against
 * the stored text on every use (so a PutKeyPolicy, here or through
 * another process, takes effect at once). Parsing was a large part of a
 * request's cost.
 */
#define POLICY_CACHE 16
static __thread struct {
	char id[KMSD_KEY_ID_LEN + 1];
	char *text;
	struct ward_policy *p;
} policies[POLICY_CACHE];
static __thread unsigned policy_next;

void
kmsd_ops_thread_release(void)
{
	for (int i = 0; i < POLICY_CACHE; i++) {
		free(policies[i].text);
		ward_policy_free(policies[i].p);
		memset(&policies[i], 0, sizeof(policies[i]));
	}
}

static const struct ward_policy *
policy_for(const struct kmsd_key *k, struct ward_kms_error *perr)
{
	unsigned i;
	struct ward_policy *p = NULL;
	char *text;

	for (i = 0; i < POLICY_CACHE; i++)
		if (policies[i].p != NULL &&
		    strcmp(policies[i].id, k->id) == 0 &&
		    strcmp(policies[i].text, k->policy) == 0)
			return policies[i].p;
	if (ward_policy_parse(k->policy, strlen(k->policy), &p, perr) != 0)
		return NULL;
	if ((text = strdup(k->policy)) == NULL) {
		ward_policy_free(p);
		return NULL;
	}
	i = policy_next++ % POLICY_CACHE;
	free(policies[i].text);
	ward_policy_free(policies[i].p);
	memcpy(policies[i].id, k->id, sizeof(policies[i].id));
	policies[i].text = text;
	policies[i].p = p;
	return p;
}

/*
 * May the caller perform action on k? ec and a may be NULL. grant_op is
 * the GrantOperation that a grant could give (NULL: grants do not apply).
 */
static int
authorize(struct kmsd_req *rq, const struct kmsd_key *k, const char *action,
    const struct ward_ec *ec, const struct attestation *a, const char *grant_op)
{
	const struct ward_policy *pol;
	struct ward_policy_request prq;
	struct ctx c;
	enum ward_policy_decision d;
	struct ward_kms_error perr;
	int r;
	bool granted = false;

	memset(&c, 0, sizeof(c));
	ctx_add(&c, "kms:CallerAccount", rq->caller.account);
	ctx_add(&c, "aws:PrincipalArn", rq->caller.arn);
	ctx_add(&c, "aws:PrincipalAccount", rq->caller.account);
	if (ec != NULL && ec->n > 0) {
		for (size_t i = 0; i < ec->n && i < KMSD_EC_PAIRS_MAX; i++) {
			ctx_add2(&c, "kms:EncryptionContext:", ec->pairs[i].key,
			    ec->pairs[i].value);
			c.ec_keys[i] = ec->pairs[i].key;
		}
		ctx_add(&c, "kms:EncryptionContextKeys", "");
		if (!c.oom) {
			c.keys[c.n - 1].values = c.ec_keys;
			c.keys[c.n - 1].nvalues = ec->n < KMSD_EC_PAIRS_MAX
			    ? ec->n
			    : KMSD_EC_PAIRS_MAX;
		}
	}
	if (a != NULL && a->present) {
		char num[4];

		ctx_add(&c, "ward:AttestationRoot",
		    a->res.aws ? "aws-nitro" : "local");
		ctx_add(&c, "kms:RecipientAttestation:ImageSha384", a->pcr[0]);
		for (unsigned i = 0; i < WARD_NSM_PCR_COUNT; i++) {
			if (a->pcr[i][0] == '\0')
				continue;
			snprintf(num, sizeof(num), "%u", i);
			ctx_add2(
			    &c, "kms:RecipientAttestation:PCR", num, a->pcr[i]);
		}
	}
	memset(&prq, 0, sizeof(prq));
	prq.principal_arn = rq->caller.arn;
	prq.account = rq->caller.account;
	prq.action = action;
	prq.resource = k->arn;
	prq.keys = c.keys;
	prq.nkeys = c.n;
	if (c.oom) {
		ctx_free(&c);
		return internal(rq, ward_enomem());
	}
	memset(&perr, 0, sizeof(perr));
	if ((pol = policy_for(k, &perr)) == NULL) {
		ward_warn("key %s: stored policy does not parse: %s", k->id,
		    perr.message[0] ? perr.message : ward_errmsg());
		d = WARD_POLICY_IMPLICIT_DENY;
		snprintf(rq->why, sizeof(rq->why), "the key policy is invalid");
	} else {
		d = ward_policy_evaluate(pol, &prq, rq->why, sizeof(rq->why));
	}
	ctx_free(&c);
	rq->explicit_deny = d == WARD_POLICY_EXPLICIT_DENY;
	if (d == WARD_POLICY_ALLOW)
		return 0;
	if (d == WARD_POLICY_IMPLICIT_DENY && grant_op != NULL) {
		if ((r = grant_allows(rq, k, grant_op, ec, &granted)) != 0)
			return r;
		if (granted)
			return 0;
	}
	return FAIL(rq, WARD_EAUTH, "AccessDeniedException",
	    "User: %s is not authorized to perform: %s on resource: %s "
	    "because %s (%s)",
	    rq->caller.arn, action, k->arn,
	    d == WARD_POLICY_EXPLICIT_DENY
	        ? "of an explicit deny in a resource-based policy"
	        : "no resource-based policy allows the action",
	    rq->why);
}

/* ------------------------------------------------------------------ */
/* Key metadata                                                       */

static json_t *
key_metadata(const struct kmsd_key *k)
{
	json_t *m = json_pack("{s:s, s:s, s:s, s:f, s:b, s:s, s:s, s:s, s:s,"
	                      " s:s, s:s, s:s, s:[s], s:b}",
	    "AWSAccountId", k->account, "KeyId", k->id, "Arn", k->arn,
	    "CreationDate", k->created, "Enabled",
	    strcmp(k->state, "Enabled") == 0, "Description", k->description,
	    "KeyUsage", "ENCRYPT_DECRYPT", "KeyState", k->state, "Origin",
	    "AWS_KMS", "KeyManager", "CUSTOMER", "CustomerMasterKeySpec",
	    "SYMMETRIC_DEFAULT", "KeySpec", "SYMMETRIC_DEFAULT",
	    "EncryptionAlgorithms", "SYMMETRIC_DEFAULT", "MultiRegion", 0);

	if (m != NULL && strcmp(k->state, "PendingDeletion") == 0)
		json_object_set_new(
		    m, "DeletionDate", json_real(k->deletion_date));
	return m;
}

/*
 * New key material: when automatic rotation is due (checked on every use
 * of the key) or on demand. Old versions stay, so every blob made under
 * them still decrypts.
 */
static int
rotate(struct kmsd_req *rq, struct kmsd_key *k, bool force)
{
	int r;
	bool changed = false;
	uint32_t old;
	char id[KMSD_KEY_ID_LEN + 1];

	if (!force &&
	    (k->rotation == 0 || now_d() < k->rotated + k->rotation * DAY))
		return 0;
	if ((r = kmsd_begin(rq->db)) != 0)
		return internal(rq, r);
	/* Another request may have rotated it meanwhile: read the current
	 * version inside the transaction and move it on only from there. */
	memcpy(id, k->id, sizeof(id));
	kmsd_key_free(k);
	if ((r = kmsd_key_get(rq->db, id, k)) != 0)
		goto out;
	if (!force && now_d() < k->rotated + k->rotation * DAY) {
		kmsd_rollback(rq->db);
		return 0;
	}
	old = k->version;
	k->version = old + 1;
	k->rotated = now_d();
	if ((r = kmsd_material_add(rq->st, rq->db, k->id, k->version)) != 0 ||
	    (r = kmsd_key_update(rq->db, k, KMSD_SET_VERSION, old, &changed)) !=
	        0)
		goto out;
	if (!changed) {
		r = ward_errf(WARD_EINTERNAL,
		    "key %s changed version during "
		    "rotation",
		    k->id);
		goto out;
	}
	if ((r = kmsd_commit(rq->db)) != 0)
		goto out;
	return 0;
out:
	kmsd_rollback(rq->db);
	return internal(rq, r);
}

/* ------------------------------------------------------------------ */
/* Keys                                                               */

static int
check_policy_text(
    struct kmsd_req *rq, const char *policy, const char *arn, bool bypass)
{
	struct ward_policy *pol = NULL;
	struct ward_policy_request prq;
	struct ward_policy_key keys[2];
	const char *acct[1] = {rq->caller.account};
	const char *parn[1] = {rq->caller.arn};
	const char *unsup;
	int r;

	if ((r = ward_policy_parse(policy, strlen(policy), &pol, &rq->err)) !=
	    0)
		return r;
	if ((unsup = ward_policy_unsupported_key(pol)) != NULL) {
		r = FAIL(rq, WARD_EFORMAT, "MalformedPolicyDocumentException",
		    "Condition key '%s' is not supported by ward kms: a "
		    "condition on it could never hold here, so a Deny on it "
		    "would never apply. Supported: kms:CallerAccount, "
		    "kms:EncryptionContext:*, kms:EncryptionContextKeys, "
		    "kms:RecipientAttestation:ImageSha384, "
		    "kms:RecipientAttestation:PCR0-PCR31, aws:PrincipalArn, "
		    "aws:PrincipalAccount, ward:AttestationRoot",
		    ward_quotes(unsup));
		ward_policy_free(pol);
		return r;
	}
	/* The lockout safety check: the caller must still be able to change
	 * the policy afterwards, unless told to bypass it. */
	keys[0] = (struct ward_policy_key){"kms:CallerAccount", acct, 1};
	keys[1] = (struct ward_policy_key){"aws:PrincipalArn", parn, 1};
	memset(&prq, 0, sizeof(prq));
	prq.principal_arn = rq->caller.arn;
	prq.account = rq->caller.account;
	prq.action = "kms:PutKeyPolicy";
	prq.resource = arn;
	prq.keys = keys;
	prq.nkeys = 2;
	if (!bypass &&
	    ward_policy_evaluate(pol, &prq, NULL, 0) != WARD_POLICY_ALLOW)
		r = FAIL(rq, WARD_EFORMAT, "MalformedPolicyDocumentException",
		    "The new key policy will not allow you to update the key "
		    "policy in the future.");
	ward_policy_free(pol);
	return r;
}

static int
put_tags(struct kmsd_req *rq, const char *key_id, const json_t *tags)
{
	sqlite3_stmt *st = NULL;
	size_t i;
	json_t *t;
	int r = 0;

	if (tags == NULL || json_is_null(tags))
		return 0;
	if (!json_is_array(tags))
		return SERIALIZATION(rq, "'Tags' must be a list");
	if (json_array_size(tags) > KMSD_TAGS_MAX)
		return FAIL(rq, WARD_ELIMIT, "LimitExceededException",
		    "A key may carry at most %d tags", KMSD_TAGS_MAX);
	if (kmsd_prepare(rq->db,
	        "INSERT OR REPLACE INTO tags(key_id, k, v) VALUES (?, ?, ?)",
	        -1, &st, NULL) != SQLITE_OK)
		return internal(rq, kmsd_db_err(rq->db, "writing tags"));
	json_array_foreach(tags, i, t)
	{
		const char *k, *v;

		if (!json_is_object(t)) {
			r = SERIALIZATION(rq,
			    "'Tags' entries must be "
			    "structures");
			break;
		}
		if ((r = get_str(rq, t, "TagKey", true, 1, 128, &k)) != 0 ||
		    (r = get_str(rq, t, "TagValue", true, 0, 256, &v)) != 0)
			break;
		if (strncmp(k, "aws:", 4) == 0) {
			r = FAIL(rq, WARD_EFORMAT, "TagException",
			    "Tag keys may not begin with aws:");
			break;
		}
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, key_id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, k, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, v, -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE) {
			r = internal(rq, kmsd_db_err(rq->db, "writing tags"));
			break;
		}
	}
	kmsd_finish(st);
	return r;
}

static int
op_create_key(struct kmsd_req *rq)
{
	const char *policy, *desc, *usage, *spec, *cmkspec, *origin, *store;
	struct kmsd_key k;
	uint8_t uuid[16];
	char *defpol = NULL;
	bool bypass, multi;
	int r;

	memset(&k, 0, sizeof(k));
	if ((r = get_str(rq, rq->in, "Policy", false, 1, WARD_KMS_POLICY_MAX,
	         &policy)) != 0 ||
	    (r = get_str(rq, rq->in, "Description", false, 0, KMSD_DESC_MAX,
	         &desc)) != 0 ||
	    (r = get_str(rq, rq->in, "KeyUsage", false, 1, 64, &usage)) != 0 ||
	    (r = get_str(rq, rq->in, "KeySpec", false, 1, 64, &spec)) != 0 ||
	    (r = get_str(rq, rq->in, "CustomerMasterKeySpec", false, 1, 64,
	         &cmkspec)) != 0 ||
	    (r = get_str(rq, rq->in, "Origin", false, 1, 64, &origin)) != 0 ||
	    (r = get_str(
	         rq, rq->in, "CustomKeyStoreId", false, 1, 64, &store)) != 0 ||
	    (r = get_bool(
	         rq, rq->in, "BypassPolicyLockoutSafetyCheck", &bypass)) != 0 ||
	    (r = get_bool(rq, rq->in, "MultiRegion", &multi)) != 0)
		return r;
	if (usage != NULL && strcmp(usage, "ENCRYPT_DECRYPT") != 0)
		return UNSUPPORTED(rq,
		    "KeyUsage %s: this key service makes "
		    "only ENCRYPT_DECRYPT keys",
		    ward_quotes(usage));
	if ((spec != NULL && strcmp(spec, "SYMMETRIC_DEFAULT") != 0) ||
	    (cmkspec != NULL && strcmp(cmkspec, "SYMMETRIC_DEFAULT") != 0))
		return UNSUPPORTED(rq,
		    "KeySpec %s: this key service makes "
		    "only SYMMETRIC_DEFAULT keys",
		    ward_quotes(spec != NULL ? spec : cmkspec));
	if (origin != NULL && strcmp(origin, "AWS_KMS") != 0)
		return UNSUPPORTED(
		    rq, "Origin %s is not supported", ward_quotes(origin));
	if (store != NULL || multi)
		return UNSUPPORTED(rq,
		    "custom key stores and multi-Region "
		    "keys are not supported");
	if ((r = ward_random(uuid, sizeof(uuid))) != 0)
		return internal(rq, r);
	uuid[6] = (uint8_t)((uuid[6] & 0x0f) | 0x40); /* version 4 */
	uuid[8] = (uint8_t)((uuid[8] & 0x3f) | 0x80);
	kmsd_uuid_from_bytes(uuid, k.id);
	snprintf(k.account, sizeof(k.account), "%s", rq->caller.account);
	key_arn(rq, k.account, k.id, k.arn, sizeof(k.arn));
	snprintf(rq->key_arn, sizeof(rq->key_arn), "%s", k.arn);
	if (policy == NULL) {
		if ((defpol = ward_policy_default(k.account)) == NULL)
			return internal(rq, ward_enomem());
		policy = defpol;
	} else if ((r = check_policy_text(rq, policy, k.arn, bypass)) != 0) {
		return r;
	}
	snprintf(k.state, sizeof(k.state), "Enabled");
	k.created = k.rotated = now_d();
	k.version = 1;
	k.description = (char *)(desc != NULL ? desc : "");
	k.policy = (char *)policy;
	if ((r = kmsd_begin(rq->db)) != 0) {
		r = internal(rq, r);
		goto out;
	}
	if ((r = kmsd_key_insert(rq->db, &k)) != 0 ||
	    (r = kmsd_material_add(rq->st, rq->db, k.id, 1)) != 0) {
		r = internal(rq, r);
		goto out;
	}
	if ((r = put_tags(rq, k.id, json_object_get(rq->in, "Tags"))) != 0)
		goto out;
	if ((r = kmsd_commit(rq->db)) != 0) {
		r = internal(rq, r);
		goto out;
	}
	r = out_set(rq, "KeyMetadata", key_metadata(&k));
out:
	kmsd_rollback(rq->db);
	free(defpol);
	return r;
}

static int
op_describe_key(struct kmsd_req *rq)
{
	struct kmsd_key k;
	int r;

	if ((r = resolve_member(rq, "KeyId", true, &k)) != 0)
		return r;
	if ((r = authorize(
	         rq, &k, "kms:DescribeKey", NULL, NULL, "DescribeKey")) == 0)
		r = out_set(rq, "KeyMetadata", key_metadata(&k));
	kmsd_key_free(&k);
	return r;
}

/* Limit and Marker (an opaque position: the last name returned). */
static int
get_page(struct kmsd_req *rq, long long *limit, const char **marker)
{
	bool has;
	int r;

	*limit = 100;
	if ((r = get_int(rq, rq->in, "Limit", 1, 1000, &has, limit)) != 0 ||
	    (r = get_str(rq, rq->in, "Marker", false, 1, 1024, marker)) != 0)
		return r;
	if (!has)
		*limit = 100;
	return 0;
}

/* Set the list member (name) and the page fields of the answer. */
static int
page_finish(struct kmsd_req *rq, const char *name, json_t *list, bool more,
    const char *last)
{
	int r;

	if ((r = out_set(rq, name, json_incref(list))) != 0 ||
	    (r = out_set(rq, "Truncated", json_boolean(more))) != 0)
		return r;
	if (more && (r = out_set(rq, "NextMarker", json_string(last))) != 0)
		return r;
	return 0;
}

static int
op_list_keys(struct kmsd_req *rq)
{
	long long limit;
	const char *marker;
	sqlite3_stmt *st = NULL;
	json_t *keys = json_array();
	char last[KMSD_KEY_ID_LEN + 1] = "";
	int r;
	long long n = 0;
	bool more = false;

	if (keys == NULL)
		return internal(rq, ward_enomem());
	if ((r = get_page(rq, &limit, &marker)) != 0)
		goto out;
	if (marker != NULL && !is_uuid(marker)) {
		r = FAIL(rq, WARD_EFORMAT, "InvalidMarkerException",
		    "The marker is not one this service returned");
		goto out;
	}
	if (kmsd_prepare(rq->db,
	        "SELECT id, arn FROM keys WHERE account = ? AND id > ?"
	        " ORDER BY id",
	        -1, &st, NULL) != SQLITE_OK) {
		r = internal(rq, kmsd_db_err(rq->db, "listing keys"));
		goto out;
	}
	sqlite3_bind_text(st, 1, rq->caller.account, -1, SQLITE_STATIC);
	sqlite3_bind_text(
	    st, 2, marker != NULL ? marker : "", -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (n == limit) {
			more = true;
			break;
		}
		snprintf(last, sizeof(last), "%s",
		    (const char *)sqlite3_column_text(st, 0));
		json_array_append_new(keys,
		    json_pack("{s:s, s:s}", "KeyId", last, "KeyArn",
		        (const char *)sqlite3_column_text(st, 1)));
		n++;
	}
	r = page_finish(rq, "Keys", keys, more, last);
out:
	kmsd_finish(st);
	json_decref(keys);
	return r;
}

static int
valid_alias(struct kmsd_req *rq, const char *name)
{
	size_t n = strlen(name);

	if (strncmp(name, "alias/", 6) != 0)
		return VALIDATION(rq,
		    "Alias must start with the prefix "
		    "\"alias/\". Please see "
		    "http://docs.aws.amazon.com/kms/latest/developerguide/"
		    "programming-aliases.html");
	if (n <= 6 || n > KMSD_ALIAS_MAX ||
	    strspn(name,
	        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWX"
	        "YZ0123456789:/_-") != n)
		return FAIL(rq, WARD_EFORMAT, "InvalidAliasNameException",
		    "Alias name %s is not valid: use 1 to 250 of a-z A-Z 0-9 "
		    ": / _ - after alias/",
		    ward_quotes(name));
	if (strncmp(name, "alias/aws/", 10) == 0 ||
	    strcmp(name, "alias/aws") == 0)
		return FAIL(rq, WARD_EAUTH, "NotAuthorizedException",
		    "Cannot create an alias with the reserved prefix "
		    "alias/aws/");
	return 0;
}

static int
exec_alias(struct kmsd_req *rq, const char *sql, const char *a, const char *b,
    const char *c, int *changes)
{
	sqlite3_stmt *st = NULL;
	int rc;
	double now = now_d();

	if (kmsd_prepare(rq->db, sql, -1, &st, NULL) != SQLITE_OK)
		return internal(rq, kmsd_db_err(rq->db, "writing alias"));
	sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
	if (c != NULL)
		sqlite3_bind_text(st, 3, c, -1, SQLITE_STATIC);
	sqlite3_bind_double(st, 4, now);
	rc = sqlite3_step(st);
	kmsd_finish(st);
	if (changes != NULL)
		*changes = sqlite3_changes(rq->db);
	if (rc == SQLITE_DONE)
		return 0;
	if (sqlite3_extended_errcode(rq->db) == SQLITE_CONSTRAINT_PRIMARYKEY)
		return -WARD_EEXIST;
	return internal(rq, kmsd_db_err(rq->db, "writing alias"));
}

static int
op_create_alias(struct kmsd_req *rq)
{
	const char *name;
	struct kmsd_key k;
	int r;

	if ((r = get_str(rq, rq->in, "AliasName", true, 1, KMSD_ALIAS_MAX,
	         &name)) != 0 ||
	    (r = valid_alias(rq, name)) != 0)
		return r;
	if ((r = resolve_member(rq, "TargetKeyId", false, &k)) != 0)
		return r;
	if (strcmp(k.account, rq->caller.account) != 0)
		r = FAIL(rq, WARD_EAUTH, "AccessDeniedException",
		    "An alias and its key must be in the same account");
	else if ((r = check_state(rq, &k, USE_MANAGE)) == 0 &&
	    (r = authorize(rq, &k, "kms:CreateAlias", NULL, NULL, NULL)) == 0) {
		r = exec_alias(rq,
		    "INSERT INTO aliases(account, name, key_id, created,"
		    " updated) VALUES (?1, ?2, ?3, ?4, ?4)",
		    rq->caller.account, name, k.id, NULL);
		if (r == -WARD_EEXIST)
			r = FAIL(rq, WARD_EEXIST, "AlreadyExistsException",
			    "An alias with the name arn:aws:kms:%s:%s:%s "
			    "already exists",
			    rq->st->region, rq->caller.account, name);
	}
	kmsd_key_free(&k);
	return r;
}

static int
op_update_alias(struct kmsd_req *rq)
{
	const char *name;
	char cur[KMSD_KEY_ID_LEN + 1];
	struct kmsd_key k, old;
	int r, changes = 0;

	memset(&old, 0, sizeof(old));
	if ((r = get_str(rq, rq->in, "AliasName", true, 1, KMSD_ALIAS_MAX,
	         &name)) != 0 ||
	    (r = alias_lookup(rq, rq->caller.account, name, cur)) != 0)
		return r;
	if ((r = resolve_member(rq, "TargetKeyId", false, &k)) != 0)
		return r;
	if (strcmp(k.account, rq->caller.account) != 0) {
		r = FAIL(rq, WARD_EAUTH, "AccessDeniedException",
		    "An alias and its key must be in the same account");
		goto out;
	}
	if ((r = check_state(rq, &k, USE_MANAGE)) != 0 ||
	    (r = authorize(rq, &k, "kms:UpdateAlias", NULL, NULL, NULL)) != 0)
		goto out;
	if (load_key(rq, cur, &old) == 0 &&
	    (r = authorize(rq, &old, "kms:UpdateAlias", NULL, NULL, NULL)) != 0)
		goto out;
	snprintf(rq->key_arn, sizeof(rq->key_arn), "%s", k.arn);
	r = exec_alias(rq,
	    "UPDATE aliases SET key_id = ?3, updated = ?4"
	    " WHERE account = ?1 AND name = ?2",
	    rq->caller.account, name, k.id, &changes);
out:
	kmsd_key_free(&k);
	kmsd_key_free(&old);
	return r;
}

static int
op_delete_alias(struct kmsd_req *rq)
{
	const char *name;
	char cur[KMSD_KEY_ID_LEN + 1];
	struct kmsd_key k;
	int r;

	if ((r = get_str(rq, rq->in, "AliasName", true, 1, KMSD_ALIAS_MAX,
	         &name)) != 0 ||
	    (r = alias_lookup(rq, rq->caller.account, name, cur)) != 0)
		return r;
	if ((r = load_key(rq, cur, &k)) == 0) {
		snprintf(rq->key_arn, sizeof(rq->key_arn), "%s", k.arn);
		r = authorize(rq, &k, "kms:DeleteAlias", NULL, NULL, NULL);
		kmsd_key_free(&k);
		if (r != 0)
			return r;
	} else if (r != -WARD_EKEY) {
		return r; /* only a key that is gone skips the check */
	}
	return exec_alias(rq,
	    "DELETE FROM aliases WHERE account = ?1 AND name = ?2 AND"
	    " ?4 IS NOT NULL",
	    rq->caller.account, name, NULL, NULL);
}

static int
op_list_aliases(struct kmsd_req *rq)
{
	long long limit, n = 0;
	const char *marker, *keyid;
	struct kmsd_key k;
	sqlite3_stmt *st = NULL;
	json_t *list = json_array();
	char last[KMSD_ALIAS_MAX + 1] = "", filter[KMSD_KEY_ID_LEN + 1] = "";
	bool more = false;
	int r;

	if (list == NULL)
		return internal(rq, ward_enomem());
	if ((r = get_page(rq, &limit, &marker)) != 0 ||
	    (r = get_str(rq, rq->in, "KeyId", false, 1, 2048, &keyid)) != 0)
		goto out;
	if (marker != NULL && strncmp(marker, "alias/", 6) != 0) {
		r = FAIL(rq, WARD_EFORMAT, "InvalidMarkerException",
		    "The marker is not one this service returned");
		goto out;
	}
	if (keyid != NULL) {
		if ((r = resolve(rq, keyid, false, &k)) != 0)
			goto out;
		snprintf(filter, sizeof(filter), "%s", k.id);
		kmsd_key_free(&k);
	}
	if (kmsd_prepare(rq->db,
	        "SELECT a.name, a.key_id, a.created, a.updated, k.arn"
	        " FROM aliases a JOIN keys k ON k.id = a.key_id"
	        " WHERE a.account = ? AND a.name > ? AND (? = '' OR"
	        " a.key_id = ?) ORDER BY a.name",
	        -1, &st, NULL) != SQLITE_OK) {
		r = internal(rq, kmsd_db_err(rq->db, "listing aliases"));
		goto out;
	}
	sqlite3_bind_text(st, 1, rq->caller.account, -1, SQLITE_STATIC);
	sqlite3_bind_text(
	    st, 2, marker != NULL ? marker : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, filter, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, filter, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW) {
		char arn[KMSD_ARN_MAX + KMSD_ALIAS_MAX];

		if (n == limit) {
			more = true;
			break;
		}
		snprintf(last, sizeof(last), "%s",
		    (const char *)sqlite3_column_text(st, 0));
		snprintf(arn, sizeof(arn), "arn:aws:kms:%s:%s:%s",
		    rq->st->region, rq->caller.account, last);
		json_array_append_new(list,
		    json_pack("{s:s, s:s, s:s, s:f, s:f}", "AliasName", last,
		        "AliasArn", arn, "TargetKeyId",
		        (const char *)sqlite3_column_text(st, 1),
		        "CreationDate", sqlite3_column_double(st, 2),
		        "LastUpdatedDate", sqlite3_column_double(st, 3)));
		n++;
	}
	r = page_finish(rq, "Aliases", list, more, last);
out:
	kmsd_finish(st);
	json_decref(list);
	return r;
}

/* ------------------------------------------------------------------ */
/* Cryptographic operations                                           */

static int
check_algorithm(struct kmsd_req *rq, const char *member)
{
	const char *alg;
	int r;

	if ((r = get_str(rq, rq->in, member, false, 1, 64, &alg)) != 0)
		return r;
	if (alg != NULL && strcmp(alg, "SYMMETRIC_DEFAULT") != 0)
		return FAIL(rq, WARD_EUNSUPPORTED, "InvalidKeyUsageException",
		    "%s %s is not valid for a SYMMETRIC_DEFAULT key", member,
		    ward_quotes(alg));
	return 0;
}

static int
check_grant_tokens(struct kmsd_req *rq)
{
	const json_t *g = json_object_get(rq->in, "GrantTokens"), *t;
	size_t i;

	if (g == NULL || json_is_null(g))
		return 0;
	if (!json_is_array(g))
		return SERIALIZATION(rq, "'GrantTokens' must be a list");
	if (json_array_size(g) > 10)
		return VALIDATION(rq,
		    "1 validation error detected: Value at "
		    "'grantTokens' failed to satisfy constraint: Member must "
		    "have length less than or equal to 10");
	json_array_foreach(g, i, t)
	{
		sqlite3_stmt *st = NULL;
		int rc;

		if (!json_is_string(t) || json_string_length(t) < 1 ||
		    json_string_length(t) > 8192)
			return FAIL(rq, WARD_EFORMAT,
			    "InvalidGrantTokenException",
			    "The grant token is not valid");
		/* Grants take effect at once here, so a token adds nothing;
		 * but one that names no grant is refused, as AWS does. */
		if (kmsd_prepare(rq->db, "SELECT 1 FROM grants WHERE token = ?",
		        -1, &st, NULL) != SQLITE_OK)
			return internal(
			    rq, kmsd_db_err(rq->db, "reading grants"));
		sqlite3_bind_text(
		    st, 1, json_string_value(t), -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		kmsd_finish(st);
		if (rc != SQLITE_ROW)
			return FAIL(rq, WARD_EFORMAT,
			    "InvalidGrantTokenException",
			    "The grant token is not valid");
	}
	return 0;
}

/* Seal pt under the key's current material. */
static int
seal_under(struct kmsd_req *rq, struct kmsd_key *k, const struct ward_ec *ec,
    const uint8_t *pt, size_t n, const char *member)
{
	struct ward_gcm *g;
	struct ward_buf blob = {0};
	int r;

	if ((r = rotate(rq, k, false)) != 0)
		return r;
	if ((r = kmsd_material_gcm(
	         rq->st, rq->db, k->id, k->version, WARD_GCM_SEAL, &g)) != 0 ||
	    (r = kmsd_blob_seal(k->id, k->version, g, ec, pt, n, &blob)) != 0) {
		r = internal(rq, r);
		goto out;
	}
	r = out_set(rq, member, b64_json(blob.p, blob.len));
out:
	ward_buf_free(&blob);
	return r;
}

static int
op_encrypt(struct kmsd_req *rq)
{
	struct kmsd_key k;
	struct ward_ec ec;
	struct ward_buf pt = {.secret = true};
	int r;

	memset(&ec, 0, sizeof(ec));
	if ((r = resolve_member(rq, "KeyId", true, &k)) != 0)
		return r;
	if ((r = get_blob(rq, rq->in, "Plaintext", true, WARD_KMS_PLAINTEXT_MAX,
	         &pt, NULL)) != 0 ||
	    (r = get_ec(rq, rq->in, "EncryptionContext", &ec)) != 0 ||
	    (r = check_algorithm(rq, "EncryptionAlgorithm")) != 0 ||
	    (r = check_grant_tokens(rq)) != 0 ||
	    (r = check_state(rq, &k, USE_CRYPTO)) != 0 ||
	    (r = authorize(rq, &k, "kms:Encrypt", &ec, NULL, "Encrypt")) != 0)
		goto out;
	if ((r = seal_under(rq, &k, &ec, pt.p, pt.len, "CiphertextBlob")) ==
	        0 &&
	    (r = out_set(rq, "KeyId", json_string(k.arn))) == 0)
		r = out_set(rq, "EncryptionAlgorithm",
		    json_string("SYMMETRIC_DEFAULT"));
out:
	ward_buf_free(&pt);
	ward_ec_free(&ec);
	kmsd_key_free(&k);
	return r;
}

/*
 * Open a blob for an operation: find its key, check the KeyId the caller
 * named (if any), the state and the policy, then decrypt. On success k is
 * the blob's key and pt its plaintext.
 */
static int
open_blob(struct kmsd_req *rq, const char *blob_member,
    const char *keyid_member, const char *ec_member, const char *action,
    const char *grant_op, const struct attestation *a, struct kmsd_key *k,
    struct ward_ec *ec, struct ward_buf *pt)
{
	struct ward_buf blob = {0};
	char id[KMSD_KEY_ID_LEN + 1];
	uint32_t version;
	struct ward_gcm *g;
	const char *named;
	struct kmsd_key want;
	int r;

	memset(k, 0, sizeof(*k));
	memset(&want, 0, sizeof(want));
	if ((r = get_blob(rq, rq->in, blob_member, true,
	         WARD_KMS_CIPHERTEXT_MAX, &blob, NULL)) != 0 ||
	    (r = get_ec(rq, rq->in, ec_member, ec)) != 0 ||
	    (r = get_str(rq, rq->in, keyid_member, false, 1, 2048, &named)) !=
	        0)
		goto out;
	if (kmsd_blob_peek(blob.p, blob.len, id, &version) != 0) {
		ward_errclear();
		r = FAIL(rq, WARD_EKEY, "InvalidCiphertextException",
		    "The ciphertext is not a KMS ciphertext blob of this key "
		    "service (an Encryption SDK message is not a "
		    "CiphertextBlob)");
		goto out;
	}
	if (named != NULL) {
		if ((r = resolve(rq, named, true, &want)) != 0)
			goto out;
		if (strcmp(want.id, id) != 0) {
			r = FAIL(rq, WARD_EKEY, "IncorrectKeyException",
			    "The key ID in the request does not identify a "
			    "CMK that can perform this operation.");
			goto out;
		}
		/* the key the request names is the blob's: read once */
		*k = want;
		memset(&want, 0, sizeof(want));
	} else if ((r = load_key(rq, id, k)) == -WARD_EKEY) {
		r = FAIL(rq, WARD_EAUTH, "AccessDeniedException",
		    "The ciphertext refers to a customer master key that "
		    "does not exist, does not exist in this region, or you "
		    "are not allowed to access.");
		goto out;
	}
	if (r != 0)
		goto out;
	ward_concat(rq->key_arn, sizeof(rq->key_arn), k->arn);
	if ((r = check_state(rq, k, USE_CRYPTO)) != 0 ||
	    (r = authorize(rq, k, action, ec, a, grant_op)) != 0)
		goto out;
	if ((r = kmsd_material_gcm(rq->st, rq->db, id, version, WARD_GCM_OPEN,
	         &g)) == -WARD_EKEY) {
		r = FAIL(rq, WARD_EKEY, "InvalidCiphertextException",
		    "The ciphertext names key material this key never had");
		goto out;
	}
	if (r != 0) {
		r = internal(rq, r);
		goto out;
	}
	if (kmsd_blob_open(blob.p, blob.len, g, ec, pt) != 0) {
		ward_errclear();
		r = FAIL(rq, WARD_EKEY, "InvalidCiphertextException",
		    "The ciphertext is corrupted or its encryption context "
		    "does not match the one it was encrypted with");
		goto out;
	}
out:
	ward_buf_free(&blob);
	kmsd_key_free(&want);
	if (r != 0)
		kmsd_key_free(k);
	return r;
}

static int
op_decrypt(struct kmsd_req *rq)
{
	struct kmsd_key k;
	struct ward_ec ec;
	struct ward_buf pt = {.secret = true};
	struct attestation a;
	int r;

	memset(&ec, 0, sizeof(ec));
	memset(&k, 0, sizeof(k));
	if ((r = check_algorithm(rq, "EncryptionAlgorithm")) != 0 ||
	    (r = check_grant_tokens(rq)) != 0 ||
	    (r = get_recipient(rq, &a)) != 0)
		return r;
	if ((r = open_blob(rq, "CiphertextBlob", "KeyId", "EncryptionContext",
	         "kms:Decrypt", "Decrypt", &a, &k, &ec, &pt)) != 0)
		goto out;
	if ((r = out_set(rq, "KeyId", json_string(k.arn))) != 0 ||
	    (r = out_set(rq, "EncryptionAlgorithm",
	         json_string("SYMMETRIC_DEFAULT"))) != 0)
		goto out;
	if (a.present)
		r = seal_for(rq, &a, pt.p, pt.len);
	else
		r = out_set(rq, "Plaintext", b64_json(pt.p, pt.len));
out:
	att_free(&a);
	ward_buf_free(&pt);
	ward_ec_free(&ec);
	kmsd_key_free(&k);
	return r;
}

static int
op_reencrypt(struct kmsd_req *rq)
{
	struct kmsd_key src, dst;
	struct ward_ec sec, dec;
	struct ward_buf pt = {.secret = true};
	int r;

	memset(&sec, 0, sizeof(sec));
	memset(&dec, 0, sizeof(dec));
	memset(&dst, 0, sizeof(dst));
	if ((r = check_algorithm(rq, "SourceEncryptionAlgorithm")) != 0 ||
	    (r = check_algorithm(rq, "DestinationEncryptionAlgorithm")) != 0 ||
	    (r = check_grant_tokens(rq)) != 0 ||
	    (r = get_ec(rq, rq->in, "DestinationEncryptionContext", &dec)) != 0)
		goto out;
	if ((r = resolve_member(rq, "DestinationKeyId", true, &dst)) != 0)
		goto out;
	if ((r = open_blob(rq, "CiphertextBlob", "SourceKeyId",
	         "SourceEncryptionContext", "kms:ReEncryptFrom",
	         "ReEncryptFrom", NULL, &src, &sec, &pt)) != 0)
		goto out;
	snprintf(rq->source_key_arn, sizeof(rq->source_key_arn), "%s", src.arn);
	snprintf(rq->source_why, sizeof(rq->source_why), "%s", rq->why);
	snprintf(rq->key_arn, sizeof(rq->key_arn), "%s", dst.arn);
	if ((r = check_state(rq, &dst, USE_CRYPTO)) == 0 &&
	    (r = authorize(rq, &dst, "kms:ReEncryptTo", &dec, NULL,
	         "ReEncryptTo")) == 0 &&
	    (r = seal_under(rq, &dst, &dec, pt.p, pt.len, "CiphertextBlob")) ==
	        0 &&
	    (r = out_set(rq, "SourceKeyId", json_string(src.arn))) == 0 &&
	    (r = out_set(rq, "KeyId", json_string(dst.arn))) == 0 &&
	    (r = out_set(rq, "SourceEncryptionAlgorithm",
	         json_string("SYMMETRIC_DEFAULT"))) == 0)
		r = out_set(rq, "DestinationEncryptionAlgorithm",
		    json_string("SYMMETRIC_DEFAULT"));
	kmsd_key_free(&src);
out:
	ward_buf_free(&pt);
	ward_ec_free(&sec);
	ward_ec_free(&dec);
	kmsd_key_free(&dst);
	return r;
}

static int
data_key_size(struct kmsd_req *rq, size_t *n)
{
	const char *spec;
	long long nb;
	bool has;
	int r;

	if ((r = get_str(rq, rq->in, "KeySpec", false, 1, 16, &spec)) != 0 ||
	    (r = get_int(rq, rq->in, "NumberOfBytes", 1, WARD_KMS_DATAKEY_MAX,
	         &has, &nb)) != 0)
		return r;
	if (spec != NULL && has)
		return VALIDATION(rq,
		    "1 validation error detected: Both "
		    "KeySpec and NumberOfBytes cannot be provided.");
	if (spec == NULL && !has)
		return VALIDATION(rq,
		    "1 validation error detected: Either "
		    "KeySpec or NumberOfBytes is required.");
	if (spec != NULL) {
		if (strcmp(spec, "AES_256") == 0)
			*n = 32;
		else if (strcmp(spec, "AES_128") == 0)
			*n = 16;
		else
			return VALIDATION(rq,
			    "1 validation error detected: "
			    "Value '%s' at 'keySpec' failed to satisfy "
			    "constraint: Member must satisfy enum value set: "
			    "[AES_256, AES_128]",
			    ward_quotes(spec));
	} else {
		*n = (size_t)nb;
	}
	return 0;
}

static int
generate_data_key(struct kmsd_req *rq, bool with_plaintext)
{
	struct kmsd_key k;
	struct ward_ec ec;
	struct attestation a;
	uint8_t dk[WARD_KMS_DATAKEY_MAX];
	size_t n = 0;
	int r;

	memset(&ec, 0, sizeof(ec));
	memset(&a, 0, sizeof(a));
	if ((r = resolve_member(rq, "KeyId", true, &k)) != 0)
		return r;
	if ((r = data_key_size(rq, &n)) != 0 ||
	    (r = get_ec(rq, rq->in, "EncryptionContext", &ec)) != 0 ||
	    (r = check_grant_tokens(rq)) != 0 ||
	    (with_plaintext && (r = get_recipient(rq, &a)) != 0) ||
	    (r = check_state(rq, &k, USE_CRYPTO)) != 0 ||
	    (r = authorize(rq, &k,
	         with_plaintext ? "kms:GenerateDataKey"
	                        : "kms:GenerateDataKeyWithoutPlaintext",
	         &ec, &a,
	         with_plaintext ? "GenerateDataKey"
	                        : "GenerateDataKeyWithoutPlaintext")) != 0)
		goto out;
	if ((r = ward_random(dk, n)) != 0) {
		r = internal(rq, r);
		goto out;
	}
	if ((r = seal_under(rq, &k, &ec, dk, n, "CiphertextBlob")) != 0 ||
	    (r = out_set(rq, "KeyId", json_string(k.arn))) != 0)
		goto out;
	if (a.present)
		r = seal_for(rq, &a, dk, n);
	else if (with_plaintext)
		r = out_set(rq, "Plaintext", b64_json(dk, n));
out:
	ward_cleanse(dk, sizeof(dk));
	att_free(&a);
	ward_ec_free(&ec);
	kmsd_key_free(&k);
	return r;
}

static int
op_generate_data_key(struct kmsd_req *rq)
{
	return generate_data_key(rq, true);
}

static int
op_generate_data_key_wp(struct kmsd_req *rq)
{
	return generate_data_key(rq, false);
}

static int
op_generate_random(struct kmsd_req *rq)
{
	struct attestation a;
	uint8_t buf[WARD_KMS_DATAKEY_MAX];
	long long n;
	bool has;
	const char *store;
	int r;

	if ((r = get_int(rq, rq->in, "NumberOfBytes", 1, WARD_KMS_DATAKEY_MAX,
	         &has, &n)) != 0 ||
	    (r = get_str(
	         rq, rq->in, "CustomKeyStoreId", false, 1, 64, &store)) != 0)
		return r;
	if (!has)
		return VALIDATION(rq,
		    "1 validation error detected: Value null "
		    "at 'numberOfBytes' failed to satisfy constraint: Member "
		    "must not be null");
	if (store != NULL)
		return UNSUPPORTED(rq, "custom key stores are not supported");
	if ((r = get_recipient(rq, &a)) != 0)
		return r;
	if ((r = ward_random(buf, (size_t)n)) != 0)
		r = internal(rq, r);
	else if (a.present)
		r = seal_for(rq, &a, buf, (size_t)n);
	else
		r = out_set(rq, "Plaintext", b64_json(buf, (size_t)n));
	ward_cleanse(buf, sizeof(buf));
	att_free(&a);
	return r;
}

/* ------------------------------------------------------------------ */
/* Policies, state, rotation                                          */

/* Resolve KeyId (id or ARN), check the state class and the action. */
static int
managed_key(struct kmsd_req *rq, enum use u, const char *action,
    const char *grant_op, struct kmsd_key *k)
{
	int r;

	if ((r = resolve_member(rq, "KeyId", false, k)) != 0)
		return r;
	if ((r = check_state(rq, k, u)) != 0 ||
	    (r = authorize(rq, k, action, NULL, NULL, grant_op)) != 0)
		kmsd_key_free(k);
	return r;
}

static int
save_key(struct kmsd_req *rq, const struct kmsd_key *k, enum kmsd_key_set what)
{
	int r;

	if ((r = kmsd_key_update(rq->db, k, what, 0, NULL)) != 0)
		return internal(rq, r);
	return 0;
}

/* A state change that lost a race with ScheduleKeyDeletion (or the
 * reverse) is refused as the state it met would have been. */
static int
save_state(struct kmsd_req *rq, const struct kmsd_key *k)
{
	bool changed = false;
	int r;

	if ((r = kmsd_key_update(rq->db, k, KMSD_SET_STATE, 0, &changed)) != 0)
		return internal(rq, r);
	if (!changed)
		return INVALIDSTATE(rq, "%s is pending deletion.", k->arn);
	return 0;
}

static int
save_deletion(struct kmsd_req *rq, const struct kmsd_key *k, int pending)
{
	bool changed = false;
	int r;

	if ((r = kmsd_key_update(rq->db, k, KMSD_SET_DELETION,
	         (uint32_t)pending, &changed)) != 0)
		return internal(rq, r);
	if (!changed)
		return INVALIDSTATE(rq, "%s is %spending deletion.", k->arn,
		    pending ? "not " : "");
	return 0;
}

static int
policy_name(struct kmsd_req *rq)
{
	const char *name;
	int r;

	if ((r = get_str(rq, rq->in, "PolicyName", false, 1, 128, &name)) != 0)
		return r;
	if (name != NULL && strcmp(name, "default") != 0)
		return NOTFOUND(rq,
		    "No such policy exists: the only policy "
		    "name is default");
	return 0;
}

static int
op_get_key_policy(struct kmsd_req *rq)
{
	struct kmsd_key k;
	int r;

	if ((r = policy_name(rq)) != 0 ||
	    (r = managed_key(rq, USE_ANY, "kms:GetKeyPolicy", NULL, &k)) != 0)
		return r;
	if ((r = out_set(rq, "Policy", json_string(k.policy))) == 0)
		r = out_set(rq, "PolicyName", json_string("default"));
	kmsd_key_free(&k);
	return r;
}

static int
op_put_key_policy(struct kmsd_req *rq)
{
	struct kmsd_key k;
	const char *policy;
	bool bypass;
	char *old;
	int r;

	if ((r = policy_name(rq)) != 0 ||
	    (r = get_str(rq, rq->in, "Policy", true, 1, WARD_KMS_POLICY_MAX,
	         &policy)) != 0 ||
	    (r = get_bool(
	         rq, rq->in, "BypassPolicyLockoutSafetyCheck", &bypass)) != 0)
		return r;
	if ((r = managed_key(rq, USE_ANY, "kms:PutKeyPolicy", NULL, &k)) != 0)
		return r;
	if ((r = check_policy_text(rq, policy, k.arn, bypass)) == 0) {
		old = k.policy;
		k.policy = (char *)policy;
		r = save_key(rq, &k, KMSD_SET_POLICY);
		k.policy = old;
	}
	kmsd_key_free(&k);
	return r;
}

static int
op_list_key_policies(struct kmsd_req *rq)
{
	struct kmsd_key k;
	int r;

	if ((r = managed_key(rq, USE_ANY, "kms:ListKeyPolicies", NULL, &k)) !=
	    0)
		return r;
	kmsd_key_free(&k);
	if ((r = out_set(rq, "PolicyNames", json_pack("[s]", "default"))) != 0)
		return r;
	return out_set(rq, "Truncated", json_false());
}

static int
set_state(struct kmsd_req *rq, const char *action, const char *state)
{
	struct kmsd_key k;
	int r;

	if ((r = managed_key(rq, USE_MANAGE, action, NULL, &k)) != 0)
		return r;
	snprintf(k.state, sizeof(k.state), "%s", state);
	r = save_state(rq, &k);
	kmsd_key_free(&k);
	return r;
}

static int
op_enable_key(struct kmsd_req *rq)
{
	return set_state(rq, "kms:EnableKey", "Enabled");
}

static int
op_disable_key(struct kmsd_req *rq)
{
	return set_state(rq, "kms:DisableKey", "Disabled");
}

static int
op_schedule_key_deletion(struct kmsd_req *rq)
{
	struct kmsd_key k;
	long long days = 30;
	bool has;
	int r;

	if ((r = get_int(
	         rq, rq->in, "PendingWindowInDays", 7, 30, &has, &days)) != 0)
		return r;
	if (!has)
		days = 30;
	if ((r = managed_key(
	         rq, USE_MANAGE, "kms:ScheduleKeyDeletion", NULL, &k)) != 0)
		return r;
	snprintf(k.state, sizeof(k.state), "PendingDeletion");
	k.pending_days = (int)days;
	k.deletion_date = (double)(int64_t)now_d() + (double)days * DAY;
	if ((r = save_deletion(rq, &k, 0)) == 0 &&
	    (r = out_set(rq, "KeyId", json_string(k.arn))) == 0 &&
	    (r = out_set(rq, "DeletionDate", json_real(k.deletion_date))) ==
	        0 &&
	    (r = out_set(rq, "KeyState", json_string(k.state))) == 0)
		r = out_set(rq, "PendingWindowInDays", json_integer(days));
	kmsd_key_free(&k);
	return r;
}

static int
op_cancel_key_deletion(struct kmsd_req *rq)
{
	struct kmsd_key k;
	int r;

	if ((r = managed_key(rq, USE_ANY, "kms:CancelKeyDeletion", NULL, &k)) !=
	    0)
		return r;
	if (strcmp(k.state, "PendingDeletion") != 0) {
		r = INVALIDSTATE(rq, "%s is not pending deletion.", k.arn);
		goto out;
	}
	/* §1.5: cancelling leaves the key Disabled. */
	snprintf(k.state, sizeof(k.state), "Disabled");
	k.deletion_date = 0;
	k.pending_days = 0;
	if ((r = save_deletion(rq, &k, 1)) == 0)
		r = out_set(rq, "KeyId", json_string(k.arn));
out:
	kmsd_key_free(&k);
	return r;
}

static int
op_update_key_description(struct kmsd_req *rq)
{
	struct kmsd_key k;
	const char *desc;
	char *old;
	int r;

	if ((r = get_str(rq, rq->in, "Description", true, 0, KMSD_DESC_MAX,
	         &desc)) != 0 ||
	    (r = managed_key(
	         rq, USE_MANAGE, "kms:UpdateKeyDescription", NULL, &k)) != 0)
		return r;
	old = k.description;
	k.description = (char *)desc;
	r = save_key(rq, &k, KMSD_SET_DESCRIPTION);
	k.description = old;
	kmsd_key_free(&k);
	return r;
}

/* EnableKeyRotation (days > 0) and DisableKeyRotation (days 0). */
static int
set_rotation(struct kmsd_req *rq, const char *action, int days)
{
	struct kmsd_key k;
	int r;

	if ((r = managed_key(rq, USE_GRANT, action, NULL, &k)) != 0)
		return r;
	k.rotation = days;
	r = save_key(rq, &k, KMSD_SET_ROTATION);
	kmsd_key_free(&k);
	return r;
}

static int
op_enable_key_rotation(struct kmsd_req *rq)
{
	long long days = 365;
	bool has;
	int r;

	if ((r = get_int(rq, rq->in, "RotationPeriodInDays", 90, 2560, &has,
	         &days)) != 0)
		return r;
	return set_rotation(rq, "kms:EnableKeyRotation", has ? (int)days : 365);
}

static int
op_disable_key_rotation(struct kmsd_req *rq)
{
	return set_rotation(rq, "kms:DisableKeyRotation", 0);
}

static int
op_get_key_rotation_status(struct kmsd_req *rq)
{
	struct kmsd_key k;
	int r;

	if ((r = managed_key(
	         rq, USE_MANAGE, "kms:GetKeyRotationStatus", NULL, &k)) != 0)
		return r;
	if ((r = out_set(rq, "KeyRotationEnabled",
	         json_boolean(k.rotation > 0))) == 0 &&
	    (r = out_set(rq, "KeyId", json_string(k.arn))) == 0 &&
	    k.rotation > 0 &&
	    (r = out_set(
	         rq, "RotationPeriodInDays", json_integer(k.rotation))) == 0)
		r = out_set(rq, "NextRotationDate",
		    json_real(k.rotated + k.rotation * DAY));
	kmsd_key_free(&k);
	return r;
}

static int
op_rotate_key_on_demand(struct kmsd_req *rq)
{
	struct kmsd_key k;
	int r;

	if ((r = managed_key(
	         rq, USE_GRANT, "kms:RotateKeyOnDemand", NULL, &k)) != 0)
		return r;
	if ((r = rotate(rq, &k, true)) == 0)
		r = out_set(rq, "KeyId", json_string(k.arn));
	kmsd_key_free(&k);
	return r;
}

/* ------------------------------------------------------------------ */
/* Tags                                                               */

static int
op_tag_resource(struct kmsd_req *rq)
{
	struct kmsd_key k;
	const json_t *tags = json_object_get(rq->in, "Tags");
	int r;

	if (tags == NULL)
		return VALIDATION(rq,
		    "1 validation error detected: Value null "
		    "at 'tags' failed to satisfy constraint: Member must not "
		    "be null");
	if ((r = managed_key(rq, USE_MANAGE, "kms:TagResource", NULL, &k)) != 0)
		return r;
	if ((r = kmsd_begin(rq->db)) == 0) {
		if ((r = put_tags(rq, k.id, tags)) == 0 &&
		    (r = kmsd_commit(rq->db)) != 0)
			r = internal(rq, r);
	} else {
		r = internal(rq, r);
	}
	kmsd_rollback(rq->db);
	kmsd_key_free(&k);
	return r;
}

static int
op_untag_resource(struct kmsd_req *rq)
{
	struct kmsd_key k;
	const json_t *keys = json_object_get(rq->in, "TagKeys"), *t;
	sqlite3_stmt *st = NULL;
	size_t i;
	int r;

	if (keys == NULL || !json_is_array(keys))
		return VALIDATION(rq, "'TagKeys' must be a list of strings");
	if ((r = managed_key(rq, USE_MANAGE, "kms:UntagResource", NULL, &k)) !=
	    0)
		return r;
	if (kmsd_prepare(rq->db, "DELETE FROM tags WHERE key_id = ? AND k = ?",
	        -1, &st, NULL) != SQLITE_OK) {
		r = internal(rq, kmsd_db_err(rq->db, "removing tags"));
		goto out;
	}
	json_array_foreach(keys, i, t)
	{
		if (!json_is_string(t)) {
			r = SERIALIZATION(rq, "'TagKeys' must be strings");
			break;
		}
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, k.id, -1, SQLITE_STATIC);
		sqlite3_bind_text(
		    st, 2, json_string_value(t), -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE) {
			r = internal(rq, kmsd_db_err(rq->db, "removing tags"));
			break;
		}
	}
out:
	kmsd_finish(st);
	kmsd_key_free(&k);
	return r;
}

static int
op_list_resource_tags(struct kmsd_req *rq)
{
	struct kmsd_key k;
	sqlite3_stmt *st = NULL;
	json_t *tags = json_array();
	int r;

	if (tags == NULL)
		return internal(rq, ward_enomem());
	if ((r = managed_key(rq, USE_ANY, "kms:ListResourceTags", NULL, &k)) !=
	    0)
		goto out;
	if (kmsd_prepare(rq->db,
	        "SELECT k, v FROM tags WHERE key_id = ? ORDER BY k", -1, &st,
	        NULL) != SQLITE_OK) {
		r = internal(rq, kmsd_db_err(rq->db, "reading tags"));
		kmsd_key_free(&k);
		goto out;
	}
	sqlite3_bind_text(st, 1, k.id, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW)
		json_array_append_new(tags,
		    json_pack("{s:s, s:s}", "TagKey",
		        (const char *)sqlite3_column_text(st, 0), "TagValue",
		        (const char *)sqlite3_column_text(st, 1)));
	kmsd_key_free(&k);
	if ((r = out_set(rq, "Tags", json_incref(tags))) == 0)
		r = out_set(rq, "Truncated", json_false());
out:
	kmsd_finish(st);
	json_decref(tags);
	return r;
}

/* ------------------------------------------------------------------ */
/* Grants                                                             */

static const char *const grant_ops[] = {"Decrypt", "Encrypt", "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext", "ReEncryptFrom", "ReEncryptTo", "Sign",
    "Verify", "GetPublicKey", "CreateGrant", "RetireGrant", "DescribeKey",
    "GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext", "GenerateMac",
    "VerifyMac", "DeriveSharedSecret"};

static bool
valid_principal_arn(const char *s)
{
	return strncmp(s, "arn:aws:iam::", 13) == 0 && strlen(s) > 26 &&
	    strspn(s + 13, "0123456789") == KMSD_ACCOUNT_LEN && s[25] == ':';
}

/*
 * Does one of the caller's grants on k include CreateGrant and cover the
 * requested operations, with constraints no looser than the new grant's?
 */
struct covers_ctx {
	const json_t *ops, *cons;
};

static bool
grant_covers_one(const json_t *have, const json_t *hcons, void *ctx)
{
	const struct covers_ctx *c = ctx;
	bool has_cg = false;
	size_t i, j;
	json_t *o, *h;

	json_array_foreach(have, j, h)
	{
		has_cg = has_cg ||
		    (json_is_string(h) &&
		        strcmp(json_string_value(h), "CreateGrant") == 0);
	}
	if (!has_cg)
		return false;
	json_array_foreach(c->ops, i, o)
	{
		bool found = false;
		json_array_foreach(have, j, h) found =
		    found || json_equal(o, h);
		if (!found)
			return false;
	}
	/* constraints: none on the parent, or exactly the parent's */
	return hcons == NULL || (c->cons != NULL && json_equal(hcons, c->cons));
}

static int
grant_covers(struct kmsd_req *rq, const struct kmsd_key *k, const json_t *ops,
    const json_t *cons, bool *ok)
{
	struct covers_ctx c = {ops, cons};

	return each_grant(rq, k, grant_covers_one, &c, ok);
}

static int
op_create_grant(struct kmsd_req *rq)
{
	struct kmsd_key k;
	const char *grantee, *retiring, *name;
	const json_t *ops = json_object_get(rq->in, "Operations"), *o;
	const json_t *cons = json_object_get(rq->in, "Constraints");
	char *opstxt = NULL, *constxt = NULL;
	uint8_t rnd[32 + 48];
	char id[65], token[ward_b64_len(48) + 1];
	sqlite3_stmt *st = NULL;
	size_t i;
	int r;

	if ((r = get_str(rq, rq->in, "GranteePrincipal", true, 1, 256,
	         &grantee)) != 0 ||
	    (r = get_str(rq, rq->in, "RetiringPrincipal", false, 1, 256,
	         &retiring)) != 0 ||
	    (r = get_str(rq, rq->in, "Name", false, 1, 256, &name)) != 0 ||
	    (r = check_grant_tokens(rq)) != 0)
		return r;
	if (!valid_principal_arn(grantee) ||
	    (retiring != NULL && !valid_principal_arn(retiring)))
		return VALIDATION(rq,
		    "GranteePrincipal and RetiringPrincipal "
		    "must be IAM principal ARNs (arn:aws:iam::ACCOUNT:...)");
	if (ops == NULL || !json_is_array(ops) || json_array_size(ops) == 0 ||
	    json_array_size(ops) > 20)
		return VALIDATION(rq,
		    "'Operations' must be a list of 1 to 20 "
		    "grant operations");
	json_array_foreach(ops, i, o)
	{
		bool ok = false;
		for (size_t j = 0; j < sizeof(grant_ops) / sizeof(*grant_ops);
		     j++)
			ok = ok ||
			    (json_is_string(o) &&
			        strcmp(json_string_value(o), grant_ops[j]) ==
			            0);
		if (!ok)
			return VALIDATION(rq,
			    "1 validation error detected: "
			    "Value at 'operations' failed to satisfy "
			    "constraint: Member must satisfy enum value set");
	}
	if (cons != NULL && !json_is_null(cons)) {
		const json_t *eq, *sub;
		struct ward_ec tmp;

		if (!json_is_object(cons))
			return SERIALIZATION(rq,
			    "'Constraints' must be a "
			    "structure");
		eq = json_object_get(cons, "EncryptionContextEquals");
		sub = json_object_get(cons, "EncryptionContextSubset");
		if ((r = get_ec(rq, cons, "EncryptionContextEquals", &tmp)) !=
		    0)
			return r;
		ward_ec_free(&tmp);
		if ((r = get_ec(rq, cons, "EncryptionContextSubset", &tmp)) !=
		    0)
			return r;
		ward_ec_free(&tmp);
		if (eq != NULL && sub != NULL)
			return VALIDATION(rq,
			    "Constraints may hold "
			    "EncryptionContextEquals or "
			    "EncryptionContextSubset, not both");
	}
	if ((r = resolve_member(rq, "KeyId", false, &k)) != 0)
		return r;
	if ((r = check_state(rq, &k, USE_GRANT)) != 0)
		goto out;
	/* The key policy may allow CreateGrant outright. A grant that
	 * includes CreateGrant lets its grantee pass on only what it has:
	 * the same or fewer operations under the same constraints. */
	if ((r = authorize(rq, &k, "kms:CreateGrant", NULL, NULL, NULL)) != 0 &&
	    !rq->explicit_deny) {
		bool ok = false;
		int g = grant_covers(rq, &k, ops, cons, &ok);
		if (g != 0) {
			r = g;
			goto out;
		}
		if (ok) {
			r = 0;
			memset(&rq->err, 0, sizeof(rq->err));
			ward_errclear();
		}
	}
	if (r != 0)
		goto out;
	if ((r = ward_random(rnd, sizeof(rnd))) != 0) {
		r = internal(rq, r);
		goto out;
	}
	ward_hex_encode(rnd, 32, id);
	ward_b64_encode(rnd + 32, 48, token);
	opstxt = json_dumps(ops, JSON_COMPACT);
	constxt = cons != NULL && !json_is_null(cons)
	    ? json_dumps(cons, JSON_COMPACT)
	    : strdup("");
	if (opstxt == NULL || constxt == NULL) {
		r = internal(rq, ward_enomem());
		goto out;
	}
	if (kmsd_prepare(rq->db,
	        "INSERT INTO grants(id, key_id, name, grantee, retiring,"
	        " operations, constraints, issuer, created, token)"
	        " SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?"
	        " WHERE (SELECT count(*) FROM grants WHERE key_id = ?2) < ?11",
	        -1, &st, NULL) != SQLITE_OK) {
		r = internal(rq, kmsd_db_err(rq->db, "adding grant"));
		goto out;
	}
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, k.id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, name != NULL ? name : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, grantee, -1, SQLITE_STATIC);
	sqlite3_bind_text(
	    st, 5, retiring != NULL ? retiring : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, opstxt, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, constxt, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, rq->caller.account, -1, SQLITE_STATIC);
	sqlite3_bind_double(st, 9, now_d());
	sqlite3_bind_text(st, 10, token, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 11, KMSD_GRANTS_MAX);
	if (sqlite3_step(st) != SQLITE_DONE) {
		r = internal(rq, kmsd_db_err(rq->db, "adding grant"));
		goto out;
	}
	if (sqlite3_changes(rq->db) == 0) {
		r = FAIL(rq, WARD_ELIMIT, "LimitExceededException",
		    "%s has %d grants already", k.arn, KMSD_GRANTS_MAX);
		goto out;
	}
	if ((r = out_set(rq, "GrantId", json_string(id))) == 0)
		r = out_set(rq, "GrantToken", json_string(token));
out:
	kmsd_finish(st);
	free(opstxt);
	free(constxt);
	kmsd_key_free(&k);
	return r;
}

static json_t *
grant_json(sqlite3_stmt *st, const char *arn)
{
	json_t *g, *v;
	const char *s;

	g = json_pack("{s:s, s:s, s:f, s:s, s:s}", "KeyId", arn, "GrantId",
	    (const char *)sqlite3_column_text(st, 0), "CreationDate",
	    sqlite3_column_double(st, 6), "GranteePrincipal",
	    (const char *)sqlite3_column_text(st, 2), "IssuingAccount",
	    (const char *)sqlite3_column_text(st, 5));
	if (g == NULL)
		return NULL;
	if ((s = (const char *)sqlite3_column_text(st, 1)) != NULL && *s)
		json_object_set_new(g, "Name", json_string(s));
	if ((s = (const char *)sqlite3_column_text(st, 3)) != NULL && *s)
		json_object_set_new(g, "RetiringPrincipal", json_string(s));
	if ((v = json_loads(
	         (const char *)sqlite3_column_text(st, 4), 0, NULL)) != NULL)
		json_object_set_new(g, "Operations", v);
	if ((s = (const char *)sqlite3_column_text(st, 7)) != NULL && *s &&
	    (v = json_loads(s, 0, NULL)) != NULL)
		json_object_set_new(g, "Constraints", v);
	/* IssuingAccount is the account principal's ARN on the wire. */
	s = json_string_value(json_object_get(g, "IssuingAccount"));
	if (s != NULL && strlen(s) == KMSD_ACCOUNT_LEN) {
		char root[40];
		snprintf(root, sizeof(root), "arn:aws:iam::%s:root", s);
		json_object_set_new(g, "IssuingAccount", json_string(root));
	}
	return g;
}

#define GRANT_COLS                                                             \
	"id, name, grantee, retiring, operations, issuer, created, constraints"

static int
op_list_grants(struct kmsd_req *rq)
{
	struct kmsd_key k;
	const char *gid, *grantee, *marker;
	long long limit, n = 0;
	sqlite3_stmt *st = NULL;
	json_t *list = json_array();
	char last[65] = "";
	bool more = false;
	int r;

	if (list == NULL)
		return internal(rq, ward_enomem());
	if ((r = get_page(rq, &limit, &marker)) != 0 ||
	    (r = get_str(rq, rq->in, "GrantId", false, 1, 128, &gid)) != 0 ||
	    (r = get_str(rq, rq->in, "GranteePrincipal", false, 1, 256,
	         &grantee)) != 0 ||
	    (r = managed_key(rq, USE_ANY, "kms:ListGrants", NULL, &k)) != 0)
		goto out;
	if (kmsd_prepare(rq->db,
	        "SELECT " GRANT_COLS " FROM grants WHERE key_id = ?"
	        " AND id > ? AND (?3 IS NULL OR id = ?3)"
	        " AND (?4 IS NULL OR grantee = ?4) ORDER BY id",
	        -1, &st, NULL) != SQLITE_OK) {
		r = internal(rq, kmsd_db_err(rq->db, "listing grants"));
		kmsd_key_free(&k);
		goto out;
	}
	sqlite3_bind_text(st, 1, k.id, -1, SQLITE_STATIC);
	sqlite3_bind_text(
	    st, 2, marker != NULL ? marker : "", -1, SQLITE_STATIC);
	if (gid != NULL)
		sqlite3_bind_text(st, 3, gid, -1, SQLITE_STATIC);
	if (grantee != NULL)
		sqlite3_bind_text(st, 4, grantee, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (n == limit) {
			more = true;
			break;
		}
		snprintf(last, sizeof(last), "%s",
		    (const char *)sqlite3_column_text(st, 0));
		json_array_append_new(list, grant_json(st, k.arn));
		n++;
	}
	kmsd_key_free(&k);
	r = page_finish(rq, "Grants", list, more, last);
out:
	kmsd_finish(st);
	json_decref(list);
	return r;
}

static int
delete_grant(struct kmsd_req *rq, const char *id)
{
	sqlite3_stmt *st = NULL;
	int r = 0;

	if (kmsd_prepare(rq->db, "DELETE FROM grants WHERE id = ?", -1, &st,
	        NULL) != SQLITE_OK)
		return internal(rq, kmsd_db_err(rq->db, "removing grant"));
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		r = internal(rq, kmsd_db_err(rq->db, "removing grant"));
	kmsd_finish(st);
	return r;
}

/* Find a grant of key k by id (k may be NULL with token set). */
static int
find_grant(struct kmsd_req *rq, const char *key_id, const char *gid,
    const char *token, char out_key[KMSD_KEY_ID_LEN + 1], char out_id[65],
    char grantee[KMSD_ARN_MAX], char retiring[KMSD_ARN_MAX], bool *retire_op)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (kmsd_prepare(rq->db,
	        "SELECT id, key_id, grantee, retiring, operations FROM grants"
	        " WHERE (?1 IS NULL OR key_id = ?1) AND (?2 IS NULL OR id = ?2)"
	        " AND (?3 IS NULL OR token = ?3)",
	        -1, &st, NULL) != SQLITE_OK)
		return internal(rq, kmsd_db_err(rq->db, "reading grant"));
	if (key_id != NULL)
		sqlite3_bind_text(st, 1, key_id, -1, SQLITE_STATIC);
	if (gid != NULL)
		sqlite3_bind_text(st, 2, gid, -1, SQLITE_STATIC);
	if (token != NULL)
		sqlite3_bind_text(st, 3, token, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		snprintf(
		    out_id, 65, "%s", (const char *)sqlite3_column_text(st, 0));
		snprintf(out_key, KMSD_KEY_ID_LEN + 1, "%s",
		    (const char *)sqlite3_column_text(st, 1));
		snprintf(grantee, KMSD_ARN_MAX, "%s",
		    (const char *)sqlite3_column_text(st, 2));
		snprintf(retiring, KMSD_ARN_MAX, "%s",
		    (const char *)sqlite3_column_text(st, 3));
		*retire_op = strstr((const char *)sqlite3_column_text(st, 4),
		                 "\"RetireGrant\"") != NULL;
	}
	kmsd_finish(st);
	if (rc == SQLITE_ROW)
		return 0;
	if (rc == SQLITE_DONE)
		return NOTFOUND(rq, "Grant ID not found");
	return internal(rq, kmsd_db_err(rq->db, "reading grant"));
}

static int
op_revoke_grant(struct kmsd_req *rq)
{
	struct kmsd_key k;
	const char *gid;
	char kid[KMSD_KEY_ID_LEN + 1], id[65], grantee[KMSD_ARN_MAX],
	    retiring[KMSD_ARN_MAX];
	bool rop;
	int r;

	if ((r = get_str(rq, rq->in, "GrantId", true, 1, 128, &gid)) != 0 ||
	    (r = managed_key(rq, USE_ANY, "kms:RevokeGrant", NULL, &k)) != 0)
		return r;
	if ((r = find_grant(
	         rq, k.id, gid, NULL, kid, id, grantee, retiring, &rop)) == 0)
		r = delete_grant(rq, id);
	kmsd_key_free(&k);
	return r;
}

static int
op_retire_grant(struct kmsd_req *rq)
{
	struct kmsd_key k;
	const char *token, *gid, *keyid;
	char kid[KMSD_KEY_ID_LEN + 1], id[65], grantee[KMSD_ARN_MAX],
	    retiring[KMSD_ARN_MAX];
	bool rop = false, allowed;
	int r;

	memset(&k, 0, sizeof(k));
	if ((r = get_str(rq, rq->in, "GrantToken", false, 1, 8192, &token)) !=
	        0 ||
	    (r = get_str(rq, rq->in, "GrantId", false, 1, 128, &gid)) != 0 ||
	    (r = get_str(rq, rq->in, "KeyId", false, 1, 2048, &keyid)) != 0)
		return r;
	if (token == NULL && (gid == NULL || keyid == NULL))
		return VALIDATION(rq,
		    "RetireGrant needs GrantToken, or KeyId "
		    "and GrantId");
	if (keyid != NULL && (r = resolve(rq, keyid, false, &k)) != 0)
		return r;
	if ((r = find_grant(rq, keyid != NULL ? k.id : NULL, gid, token, kid,
	         id, grantee, retiring, &rop)) != 0)
		goto out;
	if (keyid == NULL && (r = load_key(rq, kid, &k)) != 0) {
		if (r == -WARD_EKEY)
			r = NOTFOUND(rq, "Grant ID not found");
		goto out;
	}
	snprintf(rq->key_arn, sizeof(rq->key_arn), "%s", k.arn);
	/* The retiring principal, or the grantee when the grant includes
	 * RetireGrant, may retire it; so may whoever the key policy lets. */
	allowed = strcmp(rq->caller.arn, retiring) == 0 ||
	    (rop && strcmp(rq->caller.arn, grantee) == 0);
	if (!allowed &&
	    (r = authorize(rq, &k, "kms:RetireGrant", NULL, NULL, NULL)) != 0)
		goto out;
	r = delete_grant(rq, id);
out:
	kmsd_key_free(&k);
	return r;
}

/* ------------------------------------------------------------------ */

static const struct {
	const char *name;
	int (*fn)(struct kmsd_req *);
} ops[] = {
    {"CancelKeyDeletion", op_cancel_key_deletion},
    {"CreateAlias", op_create_alias},
    {"CreateGrant", op_create_grant},
    {"CreateKey", op_create_key},
    {"Decrypt", op_decrypt},
    {"DeleteAlias", op_delete_alias},
    {"DescribeKey", op_describe_key},
    {"DisableKey", op_disable_key},
    {"DisableKeyRotation", op_disable_key_rotation},
    {"EnableKey", op_enable_key},
    {"EnableKeyRotation", op_enable_key_rotation},
    {"Encrypt", op_encrypt},
    {"GenerateDataKey", op_generate_data_key},
    {"GenerateDataKeyWithoutPlaintext", op_generate_data_key_wp},
    {"GenerateRandom", op_generate_random},
    {"GetKeyPolicy", op_get_key_policy},
    {"GetKeyRotationStatus", op_get_key_rotation_status},
    {"ListAliases", op_list_aliases},
    {"ListGrants", op_list_grants},
    {"ListKeyPolicies", op_list_key_policies},
    {"ListKeys", op_list_keys},
    {"ListResourceTags", op_list_resource_tags},
    {"PutKeyPolicy", op_put_key_policy},
    {"ReEncrypt", op_reencrypt},
    {"RetireGrant", op_retire_grant},
    {"RevokeGrant", op_revoke_grant},
    {"RotateKeyOnDemand", op_rotate_key_on_demand},
    {"ScheduleKeyDeletion", op_schedule_key_deletion},
    {"TagResource", op_tag_resource},
    {"UntagResource", op_untag_resource},
    {"UpdateAlias", op_update_alias},
    {"UpdateKeyDescription", op_update_key_description},
};

bool
kmsd_op_known(const char *op)
{
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (strcmp(ops[i].name, op) == 0)
			return true;
	return false;
}

int
kmsd_dispatch(struct kmsd_req *rq)
{
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (strcmp(ops[i].name, rq->op) == 0) {
			int r = ops[i].fn(rq);
			if (r == 0 && rq->out == NULL &&
			    (rq->out = json_object()) == NULL)
				r = internal(rq, ward_enomem());
			if (r != 0) {
				/* Half an answer is never sent. */
				json_decref(rq->out);
				rq->out = NULL;
			}
			return r;
		}
	return FAIL(rq, WARD_EUNSUPPORTED, "UnknownOperationException",
	    "Operation %s is not supported by this key service",
	    ward_quotes(rq->op));
}
