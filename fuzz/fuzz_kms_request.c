/*
 * libFuzzer: the key service's request handling after authentication —
 * JSON bodies into every operation, as an authenticated admin, against a
 * real state directory (SQLite, root key) made once per process. The
 * first input byte picks the operation; the rest is the body. Invariants:
 * a handler either answers (an object) or fails with an AWS error type
 * and an HTTP status; a failure never leaves an answer behind, and no
 * answer ever carries both Plaintext and CiphertextForRecipient.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kmsd/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const ops[] = {"CreateKey", "DescribeKey", "ListKeys",
    "CreateAlias", "UpdateAlias", "DeleteAlias", "ListAliases", "Encrypt",
    "Decrypt", "ReEncrypt", "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext", "GenerateRandom", "GetKeyPolicy",
    "PutKeyPolicy", "ListKeyPolicies", "EnableKey", "DisableKey",
    "ScheduleKeyDeletion", "CancelKeyDeletion", "EnableKeyRotation",
    "DisableKeyRotation", "GetKeyRotationStatus", "RotateKeyOnDemand",
    "TagResource", "UntagResource", "ListResourceTags", "CreateGrant",
    "ListGrants", "RevokeGrant", "RetireGrant", "UpdateKeyDescription", "Nope"};

static struct kmsd_state *st;
static sqlite3 *db;
static struct ward_attest_roots *roots;
static struct kmsd_principal admin;

static void
setup(void)
{
	char dir[] = "/tmp/fuzz-kms-XXXXXX";
	char state[64];
	json_t *out = NULL;
	struct ward_buf secret = {0};
	char tok[65];

	if (mkdtemp(dir) == NULL)
		__builtin_trap();
	snprintf(state, sizeof(state), "%s/st", dir);
	if (ward_kmsd_init(state, NULL, &out) != 0 ||
	    kmsd_state_open(state, &st) != 0 || kmsd_db_open(st, &db) != 0 ||
	    ward_attest_roots_new(true, &roots) != 0 ||
	    kmsd_principal_lookup(st, db,
	        json_string_value(json_object_get(out, "AccessKeyId")), &admin,
	        &secret, tok) != 0)
		__builtin_trap();
	ward_buf_free(&secret);
	json_decref(out);
	/* Bodies from the seed corpus name this key and alias. */
	{
		struct kmsd_req rq;
		memset(&rq, 0, sizeof(rq));
		rq.st = st;
		rq.db = db;
		rq.roots = roots;
		rq.caller = admin;
		rq.op = "CreateKey";
		rq.in = json_pack("{s:s}", "Description", "fuzz");
		if (kmsd_dispatch(&rq) != 0)
			__builtin_trap();
		json_decref(rq.in);
		json_decref(rq.out);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kmsd_req rq;
	char jerr[160];
	int r;

	if (st == NULL)
		setup();
	if (size < 1)
		return 0;
	memset(&rq, 0, sizeof(rq));
	rq.st = st;
	rq.db = db;
	rq.roots = roots;
	rq.caller = admin;
	rq.op = ops[data[0] % (sizeof(ops) / sizeof(ops[0]))];
	rq.in = kmsd_json_parse(
	    (const char *)data + 1, size - 1, jerr, sizeof(jerr));
	if (rq.in == NULL || !json_is_object(rq.in)) {
		json_decref(rq.in);
		return 0;
	}
	r = kmsd_dispatch(&rq);
	if (r == 0) {
		if (!json_is_object(rq.out))
			__builtin_trap();
		if (json_object_get(rq.out, "Plaintext") != NULL &&
		    json_object_get(rq.out, "CiphertextForRecipient") != NULL)
			__builtin_trap();
	} else {
		if (rq.err.type[0] == '\0' || rq.err.status < 400 ||
		    rq.out != NULL)
			__builtin_trap();
	}
	kmsd_rollback(db);
	json_decref(rq.in);
	json_decref(rq.out);
	ward_errclear();
	return 0;
}
