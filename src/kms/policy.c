/*
 * Key policies: the document rules of kms-and-esdk.md §3.1, the default
 * policy of §3.2, evaluation as §3.3-§3.7 describe it, and `ward kms pin`
 * (the attestation condition keys of nitro.md §5).
 *
 * A parsed policy keeps only what evaluation needs, every string copied
 * out of the JSON: statements with their principals, actions, resources
 * and conditions (one entry per operator and key). Condition values of
 * any JSON scalar type are kept as strings (true -> "true").
 *
 * Supported condition operators: StringEquals, StringNotEquals,
 * StringEqualsIgnoreCase, StringNotEqualsIgnoreCase, StringLike,
 * StringNotLike, ArnEquals, ArnNotEquals, ArnLike, ArnNotLike, Bool (each
 * also with IfExists and ForAnyValue:/ForAllValues:) and Null. Anything
 * else (Numeric*, Date*, IpAddress, BinaryEquals) is refused at parse
 * time rather than silently never matching.
 *
 * There is no IAM layer: the account principal (a 12-digit id or
 * arn:aws:iam::ACCOUNT:root) stands for every principal of the account
 * (§3.7, the local-kms and moto level of fidelity).
 *
 * Condition key names match case-insensitively, so a request holding two
 * keys that differ only in case (encryption context "Stage" and "stage")
 * is ambiguous for a policy key naming either: such a condition fails
 * closed (not met in an Allow, met in a Deny).
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ward/kms.h"

#define MALFORMED "MalformedPolicyDocumentException"
#define ATTEST_PREFIX "kms:RecipientAttestation:"
#define EC_PREFIX "kms:EncryptionContext:"
#define PIN_DENY_SID "ward-pin-"
#define PIN_SID "ward-enclave"
#define PIN_HEX_LEN 96 /* SHA-384, nitro.md §5 */
#define PCR_MAX 31

/* §3.6: AWS's message for ForAllValues on kms:EncryptionContext:<k>. */
#define OVERLY_PERMISSIVE                                                      \
	"OverlyPermissiveCondition:EncryptionContext: Using the ForAllValues set operator with a single-valued condition key matches requests without the specified encryption context or with an unspecified encryption context. To fix, remove ForAllValues."

struct strv {
	char **v;
	size_t n;
};

enum op {
	OP_STRING_EQUALS,
	OP_STRING_EQUALS_IGNORE_CASE,
	OP_STRING_LIKE,
	OP_ARN_LIKE,
	OP_BOOL,
	OP_NULL,
};

enum set_op {
	SET_NONE,
	SET_ANY, /* ForAnyValue: */
	SET_ALL, /* ForAllValues: */
};

/* The operator table: base name, what it compares, whether it is the
 * negated form. IfExists and the set prefixes are parsed around it. */
static const struct {
	const char *name;
	enum op op;
	bool negated;
} ops[] = {
    {"StringEquals", OP_STRING_EQUALS, false},
    {"StringNotEquals", OP_STRING_EQUALS, true},
    {"StringEqualsIgnoreCase", OP_STRING_EQUALS_IGNORE_CASE, false},
    {"StringNotEqualsIgnoreCase", OP_STRING_EQUALS_IGNORE_CASE, true},
    {"StringLike", OP_STRING_LIKE, false},
    {"StringNotLike", OP_STRING_LIKE, true},
    /* AWS documents ArnEquals and ArnLike as the same test. */
    {"ArnEquals", OP_ARN_LIKE, false},
    {"ArnNotEquals", OP_ARN_LIKE, true},
    {"ArnLike", OP_ARN_LIKE, false},
    {"ArnNotLike", OP_ARN_LIKE, true},
    {"Bool", OP_BOOL, false},
    {"Null", OP_NULL, false},
};

struct cond {
	char *opname; /* as written, for messages */
	enum op op;
	bool negated;
	bool if_exists;
	enum set_op set;
	char *key; /* as written; matched case-insensitively */
	struct strv values; /* ORed (for negated operators: none may match) */
};

struct stmt {
	char *sid; /* NULL when absent */
	size_t index; /* 1-based, for messages when there is no Sid */
	bool deny;
	bool not_principal;
	bool any_principal; /* "*" or {"AWS": "*"} among the principals */
	struct strv principals; /* the AWS ones; Service never matches */
	bool not_action;
	struct strv actions;
	bool not_resource;
	struct strv resources;
	struct cond *conds;
	size_t nconds;
};

struct ward_policy {
	struct stmt *st;
	size_t n;
};

/* ------------------------------------------------------------------ */
/* Text                                                                */

/* One code point from a UTF-8 string, advancing *s. Invalid bytes come
 * back as 0x110000 + byte, which equals no real code point. */
static uint32_t
next_cp(const char **s)
{
	const uint8_t *p = (const uint8_t *)*s;
	uint32_t cp;
	size_t n;

	if (p[0] < 0x80) {
		*s += 1;
		return p[0];
	}
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		cp = p[0] & 0x1f;
		n = 1;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		cp = p[0] & 0x0f;
		n = 2;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		cp = p[0] & 0x07;
		n = 3;
	} else {
		*s += 1;
		return 0x110000u + p[0];
	}
	for (size_t i = 1; i <= n; i++) {
		if ((p[i] & 0xc0) != 0x80) {
			*s += 1;
			return 0x110000u + p[0];
		}
		cp = cp << 6 | (p[i] & 0x3f);
	}
	/* overlong forms, surrogates and values past U+10FFFF are invalid */
	if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) {
		*s += 1;
		return 0x110000u + p[0];
	}
	*s += n + 1;
	return cp;
}

/* Case folding for the IgnoreCase operators and key names: ASCII and
 * the Latin-1 Supplement letters, the characters a policy may hold. */
static uint32_t
fold(uint32_t cp)
{
	if (cp >= 'A' && cp <= 'Z')
		return cp + 32;
	if (cp >= 0xc0 && cp <= 0xde && cp != 0xd7)
		return cp + 32;
	return cp;
}

static bool
equal_fold(const char *a, const char *b)
{
	while (*a != '\0' && *b != '\0')
		if (fold(next_cp(&a)) != fold(next_cp(&b)))
			return false;
	return *a == '\0' && *b == '\0';
}

static bool
prefix_fold(const char *s, const char *prefix)
{
	while (*prefix != '\0') {
		if (*s == '\0' || fold(next_cp(&s)) != fold(next_cp(&prefix)))
			return false;
	}
	return true;
}

/*
 * Glob with '*' (any run, also empty) and '?' (one character), over code
 * points; the classic backtrack to the last '*', O(len(p) * len(s)).
 */
static bool
glob(const char *p, const char *s, bool icase)
{
	const char *star = NULL, *resume = NULL;

	while (*s != '\0') {
		const char *pn = p, *sn = s;
		uint32_t pc, sc;

		if (*p == '*') {
			star = ++p;
			resume = s;
			continue;
		}
		if (*p != '\0') {
			pc = next_cp(&pn);
			sc = next_cp(&sn);
			if (icase) {
				pc = fold(pc);
				sc = fold(sc);
			}
			if (pc == '?' || pc == sc) {
				p = pn;
				s = sn;
				continue;
			}
		}
		if (star == NULL)
			return false;
		p = star;
		(void)next_cp(&resume);
		s = resume;
	}
	while (*p == '*')
		p++;
	return *p == '\0';
}

/* ArnLike/ArnEquals: the six colon-separated parts compared one by one,
 * each a case-sensitive glob; the sixth part runs to the end. */
static bool
arn_like(const char *pat, const char *arn)
{
	char pbuf[1024], abuf[1024];
	char *pp = pbuf, *ap = abuf;

	if (ward_concat(pbuf, sizeof(pbuf), pat) >= sizeof(pbuf) ||
	    ward_concat(abuf, sizeof(abuf), arn) >= sizeof(abuf))
		return false;
	for (int part = 0; part < 6; part++) {
		char *pc = part < 5 ? strchr(pp, ':') : NULL;
		char *ac = part < 5 ? strchr(ap, ':') : NULL;

		if (part < 5 && (pc == NULL || ac == NULL))
			return false;
		if (pc != NULL) {
			*pc = '\0';
			*ac = '\0';
		}
		if (!glob(pp, ap, false))
			return false;
		if (pc != NULL) {
			pp = pc + 1;
			ap = ac + 1;
		}
	}
	return true;
}

/*
 * §3.1: printable ASCII, the Latin-1 Supplement and tab/LF/CR. The C1
 * controls (U+0080-U+009F) and DEL are refused too: they are not
 * printable, and strings from the policy end up in messages.
 */
static bool
allowed_cp(uint32_t cp)
{
	return cp == '\t' || cp == '\n' || cp == '\r' ||
	    (cp >= 0x20 && cp <= 0x7e) || (cp >= 0xa0 && cp <= 0xff);
}

/* Whether all of s[0..len) is in the §3.1 set; if not, the offset and
 * code point of the first character that is not. */
static bool
check_text(const char *s, size_t len, size_t *off, uint32_t *bad)
{
	const char *p = s, *end = s + len;

	while (p < end) {
		const char *at = p;
		uint32_t cp;

		/* a multibyte sequence cut by the end is invalid */
		if ((uint8_t)*p >= 0x80 && end - p < 4) {
			char tmp[5] = {0};
			const char *t = tmp;

			memcpy(tmp, p, (size_t)(end - p));
			cp = next_cp(&t);
			p += t - tmp;
		} else {
			cp = next_cp(&p);
		}
		if (!allowed_cp(cp)) {
			*off = (size_t)(at - s);
			*bad = cp;
			return false;
		}
	}
	return true;
}

static bool
is_account(const char *s)
{
	size_t i;

	for (i = 0; i < 12; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return s[12] == '\0';
}

/* ------------------------------------------------------------------ */
/* Parsing                                                             */

struct pctx {
	struct ward_kms_error *e;
	size_t st; /* 1-based statement being parsed, 0 at top level */
};

static int bad(struct pctx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
bad(struct pctx *c, const char *fmt, ...)
{
	char msg[sizeof(c->e->message)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->st > 0)
		(void)ward_kms_err(c->e, WARD_EFORMAT, 400, MALFORMED,
		    "Statement %zu: %s", c->st, msg);
	else
		(void)ward_kms_err(
		    c->e, WARD_EFORMAT, 400, MALFORMED, "%s", msg);
	/* the code itself, so that the analyzer sees it is never 0 */
	return -WARD_EFORMAT;
}

static int
nomem(struct ward_kms_error *e)
{
	(void)ward_kms_err(
	    e, WARD_ENOMEM, 500, "KMSInternalException", "out of memory");
	return -WARD_ENOMEM;
}

static void
strv_free(struct strv *v)
{
	for (size_t i = 0; i < v->n; i++)
		free(v->v[i]);
	free(v->v);
	v->v = NULL;
	v->n = 0;
}

static int
strv_add(struct pctx *c, struct strv *v, const char *s)
{
	char **nv, *d;

	if ((d = strdup(s)) == NULL)
		return nomem(c->e);
	if ((nv = realloc(v->v, (v->n + 1) * sizeof(*nv))) == NULL) {
		free(d);
		return nomem(c->e);
	}
	v->v = nv;
	v->v[v->n++] = d;
	return 0;
}

/* A decoded string must keep to the §3.1 set too: "\u0001" is as bad as
 * the byte itself. */
static int
check_string(struct pctx *c, const char *s, size_t len, const char *what)
{
	size_t off;
	uint32_t cp;

	if (!check_text(s, len, &off, &cp))
		return bad(c,
		    "%s '%s' contains character U+%04X, which a policy may not hold (printable ASCII, Latin-1 Supplement, tab, LF and CR only)",
		    what, ward_quote(s, len), (unsigned)cp);
	return 0;
}

static int
json_string_checked(struct pctx *c, const json_t *j, const char *what)
{
	return check_string(
	    c, json_string_value(j), json_string_length(j), what);
}

typedef int (*check_fn)(struct pctx *c, const char *s, const char *what);

/* A string or a non-empty array of strings (Action, Resource, the values
 * of a Principal). */
static int
read_strings(struct pctx *c, const json_t *j, const char *what, check_fn check,
    struct strv *out)
{
	size_t i, n;
	int r;

	if (json_is_string(j)) {
		if ((r = json_string_checked(c, j, what)) != 0 ||
		    (r = check(c, json_string_value(j), what)) != 0)
			return r;
		return strv_add(c, out, json_string_value(j));
	}
	if (!json_is_array(j))
		return bad(
		    c, "%s must be a string or an array of strings", what);
	if ((n = json_array_size(j)) == 0)
		return bad(c, "%s must not be an empty array", what);
	for (i = 0; i < n; i++) {
		const json_t *v = json_array_get(j, i);

		if (!json_is_string(v))
			return bad(c,
			    "%s must be a string or an array of strings", what);
		if ((r = json_string_checked(c, v, what)) != 0 ||
		    (r = check(c, json_string_value(v), what)) != 0 ||
		    (r = strv_add(c, out, json_string_value(v))) != 0)
			return r;
	}
	return 0;
}

/* A principal of the "AWS" kind (§3.4): "*", an account id, an IAM or
 * STS ARN naming an account, or an IAM unique id (what AWS leaves in a
 * policy when the user is deleted; it never matches). No partial
 * wildcards. */
static int
check_aws_principal(struct pctx *c, const char *s, const char *what)
{
	const char *p = s;
	char acct[13];
	size_t n;

	if (strcmp(s, "*") == 0 || is_account(s))
		return 0;
	if (strncmp(s, "arn:", 4) == 0) {
		p += 4;
		if (strncmp(p, "aws", 3) != 0)
			goto invalid;
		p += strcspn(p, ":");
		if (strncmp(p, ":iam::", 6) != 0 &&
		    strncmp(p, ":sts::", 6) != 0)
			goto invalid;
		p += 6;
		if (strcspn(p, ":") != 12 || p[12] != ':')
			goto invalid;
		memcpy(acct, p, 12);
		acct[12] = '\0';
		if (!is_account(acct) || p[13] == '\0' ||
		    strchr(p, '*') != NULL || strchr(p, '?') != NULL)
			goto invalid;
		return 0;
	}
	if ((n = strlen(s)) >= 16 && n <= 128 && s[0] == 'A' &&
	    strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") == n)
		return 0;
invalid:
	return bad(c,
	    "%s '%s' is not a valid principal (\"*\", an account id or an IAM ARN; no partial wildcards)",
	    what, ward_quotes(s));
}

static int
check_any(struct pctx *c, const char *s, const char *what)
{
	if (*s == '\0')
		return bad(c, "%s must not be empty", what);
	return 0;
}

/* "*" or "vendor:Action", where the action may hold '*' and '?'. */
static int
check_action(struct pctx *c, const char *s, const char *what)
{
	size_t v = strspn(s,
	    "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-");

	if (strcmp(s, "*") == 0)
		return 0;
	if (v == 0 || s[v] != ':')
		return bad(c,
		    "%s '%s' must be prefaced by a vendor, e.g. kms:Decrypt",
		    what, ward_quotes(s));
	if (s[v + 1] == '\0' ||
	    strspn(s + v + 1,
	        "abcdefghijklmnopqrstuvwxyz"
	        "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789*?") != strlen(s + v + 1))
		return bad(c, "%s '%s' is not a valid action name", what,
		    ward_quotes(s));
	return 0;
}

static int
check_resource(struct pctx *c, const char *s, const char *what)
{
	if (strcmp(s, "*") == 0 || strncmp(s, "arn:", 4) == 0)
		return 0;
	return bad(c, "%s '%s' must be \"*\" or an ARN", what, ward_quotes(s));
}

static int
parse_principal(
    struct pctx *c, const json_t *j, const char *what, struct stmt *st)
{
	const char *k;
	const json_t *v;
	int r;

	if (json_is_string(j)) {
		if (strcmp(json_string_value(j), "*") != 0)
			return bad(c,
			    "%s must be \"*\" or an object such as {\"AWS\": \"arn:aws:iam::111122223333:root\"}",
			    what);
		st->any_principal = true;
		return 0;
	}
	if (!json_is_object(j))
		return bad(c, "%s must be \"*\" or an object", what);
	if (json_object_size(j) == 0)
		return bad(c, "%s must not be empty", what);
	json_object_foreach((json_t *)j, k, v)
	{
		if (strcmp(k, "AWS") == 0) {
			if ((r = read_strings(c, v, what, check_aws_principal,
			         &st->principals)) != 0)
				return r;
		} else if (strcmp(k, "Service") == 0) {
			struct strv ignored = {0};

			/* Kept nowhere: a service never calls this KMS. */
			r = read_strings(c, v, what, check_any, &ignored);
			strv_free(&ignored);
			if (r != 0)
				return r;
		} else {
			return bad(c,
			    "%s type '%s' is not supported (only AWS and Service)",
			    what, ward_quotes(k));
		}
	}
	for (size_t i = 0; i < st->principals.n; i++)
		if (strcmp(st->principals.v[i], "*") == 0)
			st->any_principal = true;
	return 0;
}

/* Operator "[ForAnyValue:|ForAllValues:]Base[IfExists]". */
static int
parse_operator(struct pctx *c, const char *name, struct cond *out)
{
	const char *base = name;
	size_t n, i;

	if (strncmp(base, "ForAnyValue:", 12) == 0) {
		out->set = SET_ANY;
		base += 12;
	} else if (strncmp(base, "ForAllValues:", 13) == 0) {
		out->set = SET_ALL;
		base += 13;
	}
	n = strlen(base);
	if (n > 8 && strcmp(base + n - 8, "IfExists") == 0) {
		out->if_exists = true;
		n -= 8;
	}
	for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (strlen(ops[i].name) == n &&
		    strncmp(ops[i].name, base, n) == 0)
			break;
	if (i == sizeof(ops) / sizeof(ops[0]))
		return bad(c, "Condition operator '%s' is not supported",
		    ward_quotes(name));
	out->op = ops[i].op;
	out->negated = ops[i].negated;
	if (out->op == OP_NULL && (out->if_exists || out->set != SET_NONE))
		return bad(c,
		    "Condition operator '%s' is not supported (Null takes neither IfExists nor a set operator)",
		    ward_quotes(name));
	return 0;
}

/* A condition value: a string, boolean or number, or a non-empty array
 * of them; kept as strings. */
static int
add_value(struct pctx *c, const json_t *v, const char *key, struct strv *out)
{
	char num[64];

	if (json_is_string(v)) {
		int r = check_string(c, json_string_value(v),
		    json_string_length(v), "Condition value");

		return r != 0 ? r : strv_add(c, out, json_string_value(v));
	}
	if (json_is_true(v))
		return strv_add(c, out, "true");
	if (json_is_false(v))
		return strv_add(c, out, "false");
	if (json_is_integer(v)) {
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
		    json_integer_value(v));
		return strv_add(c, out, num);
	}
	if (json_is_real(v)) {
		snprintf(num, sizeof(num), "%.15g", json_real_value(v));
		return strv_add(c, out, num);
	}
	return bad(c,
	    "Condition value for '%s' must be a string, boolean or number, or an array of them",
	    ward_quotes(key));
}

/*
 * The condition keys the key service fills in (docs/kms.md). A condition
 * on any other key could never be met here: in an Allow that only fails
 * closed, but in a Deny it would silently never apply, so a policy that
 * is restrictive on AWS would be permissive here. Such keys are refused.
 */
bool
ward_policy_key_supported(const char *key)
{
	static const char *const exact[] = {"kms:CallerAccount",
	    "kms:EncryptionContextKeys", "aws:PrincipalArn",
	    "aws:PrincipalAccount", "ward:AttestationRoot",
	    "kms:RecipientAttestation:ImageSha384"};
	static const char pcr[] = "kms:RecipientAttestation:PCR";
	char *end;
	unsigned long n;

	for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++)
		if (equal_fold(key, exact[i]))
			return true;
	if (prefix_fold(key, EC_PREFIX) && key[strlen(EC_PREFIX)] != '\0')
		return true;
	if (prefix_fold(key, pcr) && key[strlen(pcr)] >= '0' &&
	    key[strlen(pcr)] <= '9') {
		n = strtoul(key + strlen(pcr), &end, 10);
		return *end == '\0' && n <= 31 &&
		    !(key[strlen(pcr)] == '0' && key[strlen(pcr) + 1] != '\0');
	}
	return false;
}

static int
parse_condition_key(struct pctx *c, const char *opname, const char *key,
    const json_t *v, struct cond *cd)
{
	size_t vendor = strspn(key,
	    "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-");
	int r;

	if ((r = check_string(c, key, strlen(key), "Condition key")) != 0)
		return r;
	if (vendor == 0 || key[vendor] != ':' || key[vendor + 1] == '\0')
		return bad(c,
		    "Condition key '%s' must be prefaced by a vendor, e.g. kms:CallerAccount",
		    ward_quotes(key));
	if (cd->set == SET_ALL && prefix_fold(key, EC_PREFIX))
		return bad(c, "%s", OVERLY_PERMISSIVE);

	if ((cd->opname = strdup(opname)) == NULL ||
	    (cd->key = strdup(key)) == NULL)
		return nomem(c->e);
	if (json_is_array(v)) {
		if (json_array_size(v) == 0)
			return bad(c,
			    "Condition value for '%s' must not be an empty array",
			    ward_quotes(key));
		for (size_t i = 0; i < json_array_size(v); i++)
			if ((r = add_value(c, json_array_get(v, i), key,
			         &cd->values)) != 0)
				return r;
	} else if ((r = add_value(c, v, key, &cd->values)) != 0) {
		return r;
	}
	if (cd->op == OP_BOOL || cd->op == OP_NULL) {
		for (size_t i = 0; i < cd->values.n; i++)
			if (!equal_fold(cd->values.v[i], "true") &&
			    !equal_fold(cd->values.v[i], "false"))
				return bad(c,
				    "Condition %s on '%s' takes true or false, not '%s'",
				    opname, ward_quotes(key),
				    ward_quotes(cd->values.v[i]));
	}
	return 0;
}

static void
cond_free(struct cond *cd)
{
	free(cd->opname);
	free(cd->key);
	strv_free(&cd->values);
}

static int
parse_condition(struct pctx *c, const json_t *j, struct stmt *st)
{
	const char *opname, *key;
	const json_t *keys, *v;
	int r;

	if (!json_is_object(j))
		return bad(c, "Condition must be an object");
	json_object_foreach((json_t *)j, opname, keys)
	{
		struct cond proto = {0};

		if ((r = check_string(c, opname, strlen(opname),
		         "Condition operator")) != 0 ||
		    (r = parse_operator(c, opname, &proto)) != 0)
			return r;
		if (!json_is_object(keys))
			return bad(c,
			    "Condition operator '%s' must map to an object of condition keys",
			    ward_quotes(opname));
		json_object_foreach((json_t *)keys, key, v)
		{
			struct cond *nc =
			    realloc(st->conds, (st->nconds + 1) * sizeof(*nc));

			if (nc == NULL)
				return nomem(c->e);
			st->conds = nc;
			nc[st->nconds] = proto;
			st->nconds++;
			if ((r = parse_condition_key(
			         c, opname, key, v, &nc[st->nconds - 1])) != 0)
				return r;
		}
	}
	return 0;
}

static void
stmt_free(struct stmt *st)
{
	free(st->sid);
	strv_free(&st->principals);
	strv_free(&st->actions);
	strv_free(&st->resources);
	for (size_t i = 0; i < st->nconds; i++)
		cond_free(&st->conds[i]);
	free(st->conds);
}

/* Exactly one of a pair of elements ("Action"/"NotAction"): which, or an
 * error. */
static int
one_of(struct pctx *c, const json_t *j, const char *a, const char *b,
    const json_t **v, bool *is_b)
{
	const json_t *va = json_object_get(j, a), *vb = json_object_get(j, b);

	if (va != NULL && vb != NULL)
		return bad(c, "a statement may have %s or %s, not both", a, b);
	if (va == NULL && vb == NULL)
		return bad(c, "%s (or %s) is required", a, b);
	*v = va != NULL ? va : vb;
	*is_b = va == NULL;
	return 0;
}

static int
parse_statement(struct pctx *c, const json_t *j, struct stmt *st)
{
	static const char *const known[] = {"Sid", "Effect", "Principal",
	    "NotPrincipal", "Action", "NotAction", "Resource", "NotResource",
	    "Condition"};
	const char *k, *effect;
	const json_t *v;
	bool neg = false;
	int r;

	if (!json_is_object(j))
		return bad(c, "a statement must be an object");
	json_object_foreach((json_t *)j, k, v)
	{
		size_t i;

		for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			if (strcmp(k, known[i]) == 0)
				break;
		if (i == sizeof(known) / sizeof(known[0]))
			return bad(c, "unknown element '%s'", ward_quotes(k));
	}
	if ((v = json_object_get(j, "Sid")) != NULL) {
		if (!json_is_string(v))
			return bad(c, "Sid must be a string");
		if ((r = json_string_checked(c, v, "Sid")) != 0)
			return r;
		if ((st->sid = strdup(json_string_value(v))) == NULL)
			return nomem(c->e);
	}
	if ((v = json_object_get(j, "Effect")) == NULL)
		return bad(c, "Effect is required");
	effect = json_string_value(v);
	if (effect == NULL ||
	    (strcmp(effect, "Allow") != 0 && strcmp(effect, "Deny") != 0))
		return bad(c, "Effect must be \"Allow\" or \"Deny\"");
	st->deny = strcmp(effect, "Deny") == 0;

	if ((r = one_of(c, j, "Principal", "NotPrincipal", &v, &neg)) != 0)
		return r;
	st->not_principal = neg;
	if ((r = parse_principal(
	         c, v, neg ? "NotPrincipal" : "Principal", st)) != 0)
		return r;

	if ((r = one_of(c, j, "Action", "NotAction", &v, &neg)) != 0)
		return r;
	st->not_action = neg;
	if ((r = read_strings(c, v, neg ? "NotAction" : "Action", check_action,
	         &st->actions)) != 0)
		return r;

	if ((r = one_of(c, j, "Resource", "NotResource", &v, &neg)) != 0)
		return r;
	st->not_resource = neg;
	if ((r = read_strings(c, v, neg ? "NotResource" : "Resource",
	         check_resource, &st->resources)) != 0)
		return r;

	if ((v = json_object_get(j, "Condition")) != NULL)
		return parse_condition(c, v, st);
	return 0;
}

void
ward_policy_free(struct ward_policy *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->n; i++)
		stmt_free(&p->st[i]);
	free(p->st);
	free(p);
}

/* Load a document as JSON after the §3.1 size and character checks. */
static int
load(const char *json, size_t len, json_t **out, struct ward_kms_error *e)
{
	struct pctx c = {e, 0};
	json_error_t jerr;
	size_t off;
	uint32_t cp;

	*out = NULL;
	if (len > WARD_KMS_POLICY_MAX)
		return bad(&c,
		    "the policy is %zu bytes; a key policy may hold at most %d",
		    len, WARD_KMS_POLICY_MAX);
	if (json == NULL || len == 0)
		return bad(&c, "the policy is empty");
	if (!check_text(json, len, &off, &cp) && cp >= 0x110000)
		return bad(&c, "invalid UTF-8 byte 0x%02X at offset %zu",
		    (unsigned)(cp - 0x110000), off);
	if (!check_text(json, len, &off, &cp))
		return bad(&c,
		    "character U+%04X at offset %zu is not allowed (printable ASCII, Latin-1 Supplement, tab, LF and CR only)",
		    (unsigned)cp, off);
	if ((*out = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr)) ==
	    NULL)
		return bad(&c, "not valid JSON: %s at line %d column %d",
		    jerr.text, jerr.line, jerr.column);
	return 0;
}

/* Validate a loaded document and build the policy. */
static int
build(const json_t *root, struct ward_policy **out, struct ward_kms_error *e)
{
	struct pctx c = {e, 0};
	struct ward_policy *p = NULL;
	const json_t *v, *stv;
	const char *k, *ver;
	size_t n;
	int r;

	*out = NULL;
	if (!json_is_object(root)) {
		r = bad(&c, "the policy must be a JSON object");
		goto out;
	}
	json_object_foreach((json_t *)root, k, v)
	{
		if (strcmp(k, "Version") != 0 && strcmp(k, "Statement") != 0 &&
		    strcmp(k, "Id") != 0) {
			r = bad(&c, "unknown top-level element '%s'",
			    ward_quotes(k));
			goto out;
		}
	}
	if ((v = json_object_get(root, "Id")) != NULL) {
		if (!json_is_string(v)) {
			r = bad(&c, "Id must be a string");
			goto out;
		}
		if ((r = json_string_checked(&c, v, "Id")) != 0)
			goto out;
	}
	if ((v = json_object_get(root, "Version")) == NULL) {
		r = bad(&c, "Version is required (\"2012-10-17\")");
		goto out;
	}
	ver = json_string_value(v);
	if (ver == NULL ||
	    (strcmp(ver, "2012-10-17") != 0 &&
	        strcmp(ver, "2008-10-17") != 0)) {
		r = bad(
		    &c, "Version must be \"2012-10-17\" (or \"2008-10-17\")");
		goto out;
	}
	if ((stv = json_object_get(root, "Statement")) == NULL) {
		r = bad(&c, "Statement is required");
		goto out;
	}
	if (json_is_object(stv)) {
		n = 1;
	} else if (json_is_array(stv)) {
		if ((n = json_array_size(stv)) == 0) {
			r = bad(
			    &c, "Statement must hold at least one statement");
			goto out;
		}
	} else {
		r = bad(
		    &c, "Statement must be an object or an array of objects");
		goto out;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (p->st = calloc(n, sizeof(*p->st))) == NULL) {
		r = nomem(e);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		c.st = i + 1;
		p->st[i].index = i + 1;
		p->n++;
		if ((r = parse_statement(&c,
		         json_is_array(stv) ? json_array_get(stv, i) : stv,
		         &p->st[i])) != 0)
			goto out;
		/* AWS: "Statement IDs (SID) in a single policy must be
		 * unique". */
		for (size_t j = 0; j < i && p->st[i].sid != NULL; j++) {
			if (p->st[j].sid != NULL && p->st[i].sid[0] != '\0' &&
			    strcmp(p->st[j].sid, p->st[i].sid) == 0) {
				r = bad(&c,
				    "Sid '%s' is used by statement %zu too",
				    ward_quotes(p->st[i].sid), j + 1);
				goto out;
			}
		}
	}
	*out = p;
	p = NULL;
	r = 0;
out:
	ward_policy_free(p);
	return r;
}

int
ward_policy_parse(const char *json, size_t len, struct ward_policy **out,
    struct ward_kms_error *e)
{
	json_t *root = NULL;
	int r;

	*out = NULL;
	if ((r = load(json, len, &root, e)) != 0)
		goto out;
	r = build(root, out, e);
out:
	json_decref(root);
	return r;
}

/* ------------------------------------------------------------------ */
/* Evaluation                                                          */

/* The caller's account: rq->account, else the fifth field of its ARN. */
static bool
request_account(const struct ward_policy_request *rq, char acct[static 13])
{
	const char *p = rq->principal_arn;

	if (rq->account != NULL)
		return ward_concat(acct, 13, rq->account) == 12 &&
		    is_account(acct);
	if (p == NULL)
		return false;
	for (int i = 0; i < 4; i++) {
		if ((p = strchr(p, ':')) == NULL)
			return false;
		p++;
	}
	if (strcspn(p, ":") != 12 || p[12] != ':')
		return false;
	memcpy(acct, p, 12);
	acct[12] = '\0';
	return is_account(acct);
}

/* The account a principal names as a whole (id or :root ARN), or NULL. */
static bool
account_principal(const char *s, char acct[static 13])
{
	const char *p;

	if (is_account(s)) {
		memcpy(acct, s, 13);
		return true;
	}
	if (strncmp(s, "arn:aws", 7) != 0 ||
	    (p = strstr(s, ":iam::")) == NULL || strchr(s + 4, ':') != p)
		return false;
	p += 6;
	if (strcspn(p, ":") != 12 || strcmp(p + 12, ":root") != 0)
		return false;
	memcpy(acct, p, 12);
	acct[12] = '\0';
	return is_account(acct);
}

/* A role ARN arn:P:iam::A:role/[path/]NAME also matches its sessions,
 * arn:P:sts::A:assumed-role/NAME/SESSION (§3.4). */
static bool
role_session_matches(const char *role, const char *caller)
{
	const char *r = strstr(role, ":iam::"), *cs = strstr(caller, ":sts::");
	const char *name, *sess;
	size_t plen;

	if (r == NULL || cs == NULL || strncmp(role, "arn:", 4) != 0 ||
	    strncmp(caller, "arn:", 4) != 0)
		return false;
	/* same partition */
	plen = (size_t)(r - role);
	if ((size_t)(cs - caller) != plen || memcmp(role, caller, plen) != 0)
		return false;
	r += 6;
	cs += 6;
	/* same account, then role/ against assumed-role/ */
	if (strncmp(r, cs, 13) != 0 || r[12] != ':')
		return false;
	r += 13;
	cs += 13;
	if (strncmp(r, "role/", 5) != 0 ||
	    strncmp(cs, "assumed-role/", 13) != 0)
		return false;
	name = strrchr(r, '/') + 1;
	cs += 13;
	if (*name == '\0')
		return false;
	if ((sess = strchr(cs, '/')) == NULL || sess[1] == '\0')
		return false;
	return strlen(name) == (size_t)(sess - cs) &&
	    strncmp(name, cs, (size_t)(sess - cs)) == 0;
}

static bool
principal_is(const char *pol, const struct ward_policy_request *rq)
{
	char want[13], have[13];

	if (strcmp(pol, "*") == 0)
		return true;
	if (account_principal(pol, want))
		return request_account(rq, have) && strcmp(want, have) == 0;
	if (rq->principal_arn == NULL)
		return false;
	return strcmp(pol, rq->principal_arn) == 0 ||
	    role_session_matches(pol, rq->principal_arn);
}

static bool
principal_matches(const struct stmt *st, const struct ward_policy_request *rq)
{
	bool m = st->any_principal;

	for (size_t i = 0; !m && i < st->principals.n; i++)
		m = principal_is(st->principals.v[i], rq);
	return m != st->not_principal;
}

static bool
list_matches(const struct strv *v, const char *s, bool icase, bool neg)
{
	bool m = false;

	for (size_t i = 0; !m && i < v->n; i++)
		m = glob(v->v[i], s != NULL ? s : "", icase);
	return m != neg;
}

/* One request value against the policy's values (ORed), before negation. */
static bool
value_matches(const struct cond *cd, const char *v)
{
	for (size_t i = 0; i < cd->values.n; i++) {
		const char *pv = cd->values.v[i];
		bool m = false;

		switch (cd->op) {
		case OP_STRING_EQUALS:
			m = strcmp(pv, v) == 0;
			break;
		case OP_STRING_EQUALS_IGNORE_CASE:
		case OP_BOOL:
			m = equal_fold(pv, v);
			break;
		case OP_STRING_LIKE:
			m = glob(pv, v, false);
			break;
		case OP_ARN_LIKE:
			m = arn_like(pv, v);
			break;
		case OP_NULL:
			break;
		}
		if (m)
			return true;
	}
	return false;
}

enum cond_result {
	COND_MET,
	COND_NOT_MET,
	COND_ABSENT, /* not met because the key is absent */
	COND_AMBIGUOUS, /* not met: several request keys differ in case */
};

/*
 * One condition (§3.6). deny tells which way an ambiguous request (two
 * entries whose names differ only in case, e.g. encryption context keys
 * "Stage" and "stage") fails: closed, i.e. not met for an Allow and met
 * for a Deny.
 */
static enum cond_result
cond_eval(
    const struct cond *cd, const struct ward_policy_request *rq, bool deny)
{
	const struct ward_policy_key *k = NULL;
	size_t found = 0;
	bool present, any = false, all = true;

	for (size_t i = 0; i < rq->nkeys; i++) {
		if (rq->keys[i].name != NULL &&
		    equal_fold(rq->keys[i].name, cd->key)) {
			k = &rq->keys[i];
			found++;
		}
	}
	if (found > 1)
		return deny ? COND_MET : COND_AMBIGUOUS;
	present = k != NULL && k->nvalues > 0;
	if (cd->op == OP_NULL) {
		/* "Null": true means the key is absent */
		for (size_t i = 0; i < cd->values.n; i++)
			if (equal_fold(cd->values.v[i], "true") != present)
				return COND_MET;
		return COND_NOT_MET;
	}
	if (!present) {
		if (cd->if_exists || cd->set == SET_ALL ||
		    (cd->set == SET_NONE && cd->negated))
			return COND_MET;
		return COND_ABSENT;
	}
	for (size_t i = 0; i < k->nvalues; i++) {
		const char *v = k->values[i] != NULL ? k->values[i] : "";
		bool m = value_matches(cd, v) != cd->negated;

		any = any || m;
		all = all && m;
	}
	switch (cd->set) {
	case SET_ANY:
		return any ? COND_MET : COND_NOT_MET;
	case SET_ALL:
		return all ? COND_MET : COND_NOT_MET;
	case SET_NONE:
		break;
	}
	/* a negated operator: no request value may match any policy value */
	if (cd->negated)
		return all ? COND_MET : COND_NOT_MET;
	return any ? COND_MET : COND_NOT_MET;
}

static void
name_stmt(const struct stmt *st, char *out, size_t cap)
{
	if (st->sid != NULL && st->sid[0] != '\0')
		ward_concat(
		    out, cap, "statement \"", ward_quotes(st->sid), "\"");
	else
		snprintf(out, cap, "statement %zu", st->index);
}

enum ward_policy_decision
ward_policy_evaluate(const struct ward_policy *p,
    const struct ward_policy_request *rq, char *why, size_t why_len)
{
	const struct stmt *allowed = NULL, *failed = NULL;
	const struct cond *failed_cond = NULL;
	enum cond_result failed_res = COND_MET;
	char name[300];

	if (why == NULL)
		why_len = 0;
	if (p == NULL || rq == NULL) {
		if (why_len > 0)
			snprintf(why, why_len, "no key policy");
		return WARD_POLICY_IMPLICIT_DENY;
	}
	for (size_t i = 0; i < p->n; i++) {
		const struct stmt *st = &p->st[i];
		const struct cond *cd = NULL;
		enum cond_result res = COND_MET;

		if (!principal_matches(st, rq) ||
		    !list_matches(
		        &st->actions, rq->action, true, st->not_action) ||
		    !list_matches(
		        &st->resources, rq->resource, false, st->not_resource))
			continue;
		for (size_t j = 0; j < st->nconds && res == COND_MET; j++) {
			cd = &st->conds[j];
			res = cond_eval(cd, rq, st->deny);
		}
		if (res != COND_MET) {
			if (!st->deny && failed == NULL) {
				failed = st;
				failed_cond = cd;
				failed_res = res;
			}
			continue;
		}
		if (st->deny) {
			name_stmt(st, name, sizeof(name));
			if (why_len > 0)
				snprintf(why, why_len,
				    "explicitly denied by %s", name);
			return WARD_POLICY_EXPLICIT_DENY;
		}
		if (allowed == NULL)
			allowed = st;
	}
	if (allowed != NULL) {
		name_stmt(allowed, name, sizeof(name));
		if (why_len > 0)
			ward_concat(why, why_len, "allowed by ", name);
		return WARD_POLICY_ALLOW;
	}
	if (why_len == 0)
		return WARD_POLICY_IMPLICIT_DENY;
	if (failed != NULL) {
		name_stmt(failed, name, sizeof(name));
		snprintf(why, why_len, "denied: %s condition %s %s not met%s",
		    name, ward_quotes(failed_cond->opname),
		    ward_quotes(failed_cond->key),
		    failed_res == COND_ABSENT ? " (key absent from the request)"
		        : failed_res == COND_AMBIGUOUS
		        ? " (several request keys differ only in case)"
		        : "");
	} else {
		snprintf(why, why_len, "no statement allows %s for %s",
		    rq->action != NULL ? ward_quotes(rq->action) : "(none)",
		    rq->principal_arn != NULL ? ward_quotes(rq->principal_arn)
		                              : "(anonymous)");
	}
	return WARD_POLICY_IMPLICIT_DENY;
}

/* ------------------------------------------------------------------ */
/* The default policy and ward kms pin                                 */

char *
ward_policy_default(const char *account)
{
	static const char fmt[] =
	    "{\"Id\":\"key-default-policy\",\"Version\":\"2012-10-17\",\"Statement\":[{\"Sid\":\"Enable IAM User Permissions\",\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"arn:aws:iam::%s:root\"},\"Action\":\"kms:*\",\"Resource\":\"*\"}]}";
	size_t n = sizeof(fmt) + 12;
	char *s;

	if (account == NULL || !is_account(account)) {
		ward_errf(WARD_EUSAGE, "account '%s' is not a 12-digit id",
		    account != NULL ? ward_quotes(account) : "");
		return NULL;
	}
	if ((s = malloc(n)) == NULL) {
		ward_enomem();
		return NULL;
	}
	snprintf(s, n, fmt, account);
	return s;
}

static int pin_err(struct ward_kms_error *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Bad pins are the caller's error, not the document's. */
static int
pin_err(struct ward_kms_error *e, const char *fmt, ...)
{
	char msg[sizeof(e->message)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	(void)ward_kms_err(
	    e, WARD_EUSAGE, 400, "ValidationException", "%s", msg);
	return -WARD_EUSAGE;
}

/* The pins as { "kms:RecipientAttestation:<name>": hex | [hex, zeros] },
 * in PCR order. */
static json_t *
pin_object(
    const struct ward_pcr_pin *const slot[PCR_MAX + 1], bool debug_allowed)
{
	char zeros[PIN_HEX_LEN + 1], key[64];
	json_t *o = json_object();

	memset(zeros, '0', PIN_HEX_LEN);
	zeros[PIN_HEX_LEN] = '\0';
	if (o == NULL)
		return NULL;
	for (unsigned i = 0; i <= PCR_MAX; i++) {
		char hex[PIN_HEX_LEN + 1];
		json_t *v;

		if (slot[i] == NULL)
			continue;
		for (size_t j = 0; j < PIN_HEX_LEN; j++) {
			char ch = slot[i]->hex[j];

			hex[j] = ch >= 'A' && ch <= 'F' ? (char)(ch + 32) : ch;
		}
		hex[PIN_HEX_LEN] = '\0';
		if (i == 0)
			snprintf(key, sizeof(key), ATTEST_PREFIX "ImageSha384");
		else
			snprintf(key, sizeof(key), ATTEST_PREFIX "PCR%u", i);
		if (debug_allowed && strcmp(hex, zeros) != 0)
			v = json_pack("[ss]", hex, zeros);
		else
			v = json_string(hex);
		if (v == NULL || json_object_set_new(o, key, v) != 0) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

/* Remove every kms:RecipientAttestation:* key from a statement's
 * Condition (and operators left empty by that). True if any was there. */
static bool
strip_attestation(json_t *st)
{
	json_t *cond = json_object_get(st, "Condition"), *keys, *v;
	const char *op, *k;
	void *t1, *t2;
	bool found = false;

	if (!json_is_object(cond))
		return false;
	json_object_foreach_safe(cond, t1, op, keys)
	{
		bool here = false;

		json_object_foreach_safe(keys, t2, k, v)
		{
			if (prefix_fold(k, ATTEST_PREFIX)) {
				json_object_del(keys, k);
				here = true;
			}
		}
		if (here && json_object_size(keys) == 0)
			json_object_del(cond, op);
		found = found || here;
	}
	return found;
}

/* Add the pins to a statement, under its StringEqualsIgnoreCase. */
static int
add_pins(json_t *st, const json_t *pins)
{
	json_t *cond = json_object_get(st, "Condition"), *sei;
	const char *k;
	json_t *v;

	if (cond == NULL) {
		if ((cond = json_object()) == NULL ||
		    json_object_set_new(st, "Condition", cond) != 0)
			return -1;
	}
	/* An empty operator goes too, so that the pins always land where a
	 * second pin would put them (pinning is idempotent). */
	if ((sei = json_object_get(cond, "StringEqualsIgnoreCase")) != NULL &&
	    json_object_size(sei) == 0) {
		json_object_del(cond, "StringEqualsIgnoreCase");
		sei = NULL;
	}
	if (sei == NULL) {
		if ((sei = json_object()) == NULL ||
		    json_object_set_new(cond, "StringEqualsIgnoreCase", sei) !=
		        0)
			return -1;
	}
	json_object_foreach((json_t *)pins, k,
	    v) if (json_object_set(sei, k, v) != 0) return -1;
	return 0;
}

int
ward_policy_pin(const char *json, size_t len, const char *account,
    const struct ward_pcr_pin *pins, size_t npins, bool debug_allowed,
    char **out, struct ward_kms_error *e)
{
	const struct ward_pcr_pin *slot[PCR_MAX + 1] = {0};
	json_t *root = NULL, *stv, *pinobj = NULL, *arr;
	struct ward_policy *check = NULL;
	char *dumped = NULL, name[300];
	size_t pinned = 0, n;
	int r;

	*out = NULL;
	if (npins == 0) {
		r = pin_err(e, "no PCR to pin");
		goto out;
	}
	for (size_t i = 0; i < npins; i++) {
		const struct ward_pcr_pin *p = &pins[i];

		if (p->index > PCR_MAX) {
			r = pin_err(
			    e, "PCR%u: index must be 0..%d", p->index, PCR_MAX);
			goto out;
		}
		if (strnlen(p->hex, sizeof(p->hex)) != PIN_HEX_LEN ||
		    strspn(p->hex, "0123456789abcdefABCDEF") != PIN_HEX_LEN) {
			r = pin_err(e, "PCR%u: value must be %d hex digits",
			    p->index, PIN_HEX_LEN);
			goto out;
		}
		if (slot[p->index] != NULL) {
			r = pin_err(e, "PCR%u is pinned twice", p->index);
			goto out;
		}
		slot[p->index] = p;
	}
	/* Only a valid policy is rewritten. */
	if ((r = load(json, len, &root, e)) != 0 ||
	    (r = build(root, &check, e)) != 0)
		goto out;
	if ((pinobj = pin_object(slot, debug_allowed)) == NULL) {
		r = nomem(e);
		goto out;
	}
	stv = json_object_get(root, "Statement");
	/* Our Deny statements from an earlier pin go; new ones follow. */
	if (json_is_array(stv))
		for (size_t i = json_array_size(stv); i-- > 0;) {
			const char *sid = json_string_value(
			    json_object_get(json_array_get(stv, i), "Sid"));
			if (sid != NULL &&
			    strncmp(sid, PIN_DENY_SID, strlen(PIN_DENY_SID)) ==
			        0)
				json_array_remove(stv, i);
		}
	n = json_is_array(stv) ? json_array_size(stv) : 1;
	for (size_t i = 0; i < n; i++) {
		json_t *st = json_is_array(stv) ? json_array_get(stv, i) : stv;
		const char *sid = json_string_value(json_object_get(st, "Sid"));
		bool ours = sid != NULL && strcmp(sid, PIN_SID) == 0;

		if (!strip_attestation(st) && !ours)
			continue;
		/* Pins under StringEqualsIgnoreCase in a Deny would deny the
		 * pinned image itself: refuse rather than invert it. */
		if (strcmp(json_string_value(json_object_get(st, "Effect")),
		        "Deny") == 0) {
			if (sid != NULL && sid[0] != '\0')
				snprintf(name, sizeof(name), "statement \"%s\"",
				    ward_quotes(sid));
			else
				snprintf(
				    name, sizeof(name), "statement %zu", i + 1);
			r = pin_err(e,
			    "%s is a Deny with attestation conditions; ward kms pin rewrites only Allow statements (edit it by hand)",
			    name);
			goto out;
		}
		if (add_pins(st, pinobj) != 0) {
			r = nomem(e);
			goto out;
		}
		pinned++;
	}
	if (pinned == 0) {
		json_t *st;

		if (account == NULL || !is_account(account)) {
			r = pin_err(e, "account '%s' is not a 12-digit id",
			    account != NULL ? ward_quotes(account) : "");
			goto out;
		}
		st = json_pack("{s:s, s:s, s:{s:s++}, s:[sss], s:s, s:{s:O}}",
		    "Sid", PIN_SID, "Effect", "Allow", "Principal", "AWS",
		    "arn:aws:iam::", account, ":root", "Action", "kms:Decrypt",
		    "kms:GenerateDataKey", "kms:GenerateRandom", "Resource",
		    "*", "Condition", "StringEqualsIgnoreCase", pinobj);
		if (st == NULL) {
			r = nomem(e);
			goto out;
		}
		if (json_is_array(stv)) {
			r = json_array_append_new(stv, st);
		} else if ((arr = json_array()) != NULL) {
			/* a lone statement object becomes [it, ours] */
			r = json_array_append(arr, stv) ||
			    json_array_append_new(arr, st) ||
			    json_object_set_new(root, "Statement", arr);
		} else {
			json_decref(st);
			r = -1;
		}
		if (r != 0) {
			r = nomem(e);
			goto out;
		}
	}
	/*
	 * An Allow alone restricts nothing when another statement (the
	 * default policy's "Enable IAM User Permissions", say) already
	 * allows kms:Decrypt. So each pin also gets a Deny, for everyone, of
	 * what would release existing plaintext (Decrypt, and ReEncryptFrom,
	 * which decrypts on the caller's behalf) unless the request carries
	 * an attestation with that value. A negated operator is true when
	 * the key is absent, so requests without a Recipient are denied too.
	 * One statement per PCR: keys within one condition block are ANDed,
	 * and any one mismatch must deny.
	 */
	stv = json_object_get(root, "Statement");
	if (!json_is_array(stv)) {
		if ((arr = json_array()) == NULL ||
		    json_array_append(arr, stv) != 0 ||
		    json_object_set_new(root, "Statement", arr) != 0) {
			json_decref(arr);
			r = nomem(e);
			goto out;
		}
		stv = arr;
	}
	{
		const char *key;
		json_t *val, *deny;
		char sid[64];

		json_object_foreach(pinobj, key, val)
		{
			const char *tail = strrchr(key, ':');
			snprintf(sid, sizeof(sid), "%s%s", PIN_DENY_SID,
			    tail != NULL ? tail + 1 : key);
			deny = json_pack(
			    "{s:s, s:s, s:s, s:[ss], s:s, s:{s:{s:O}}}", "Sid",
			    sid, "Effect", "Deny", "Principal", "*", "Action",
			    "kms:Decrypt", "kms:ReEncryptFrom", "Resource", "*",
			    "Condition", "StringNotEqualsIgnoreCase", key, val);
			if (deny == NULL ||
			    json_array_append_new(stv, deny) != 0) {
				r = nomem(e);
				goto out;
			}
		}
	}
	/* Indented for the person who reads it, compact when that would
	 * not fit the limit. */
	if ((dumped = json_dumps(root, JSON_INDENT(2))) != NULL &&
	    strlen(dumped) > WARD_KMS_POLICY_MAX) {
		free(dumped);
		dumped = json_dumps(root, JSON_COMPACT);
	}
	if (dumped == NULL) {
		r = nomem(e);
		goto out;
	}
	/* The result must itself be a valid policy (and fit). */
	ward_policy_free(check);
	check = NULL;
	if ((r = ward_policy_parse(dumped, strlen(dumped), &check, e)) != 0)
		goto out;
	*out = dumped;
	dumped = NULL;
out:
	free(dumped);
	ward_policy_free(check);
	json_decref(pinobj);
	json_decref(root);
	return r;
}

const char *
ward_policy_unsupported_key(const struct ward_policy *p)
{
	for (size_t i = 0; i < p->n; i++)
		for (size_t j = 0; j < p->st[i].nconds; j++)
			if (!ward_policy_key_supported(p->st[i].conds[j].key))
				return p->st[i].conds[j].key;
	return NULL;
}
