/*
 * ward kms pin and ward kms region on a state directory, without a
 * server: the policy rewrite itself is ward_policy_pin (src/kms).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int
ward_kmsd_region(const char *dir, char *out, size_t n)
{
	struct kmsd_state *s = NULL;
	int r;

	if ((r = kmsd_state_open(dir, &s)) != 0)
		return r;
	snprintf(out, n, "%s", s->region);
	kmsd_state_close(s);
	return 0;
}

/* Find the key id for an identifier in any account: id, key ARN, alias
 * ARN, or an alias name that exactly one account has. */
static int
find_key(sqlite3 *db, const char *ident, char id[KMSD_KEY_ID_LEN + 1])
{
	sqlite3_stmt *st = NULL;
	const char *name = ident, *account = NULL;
	char acct[KMSD_ACCOUNT_LEN + 1];
	int n = 0;
	uint8_t b[16];

	if (strncmp(ident, "arn:aws:kms:", 12) == 0) {
		const char *p = strchr(ident + 12, ':');
		if (p == NULL || strlen(p + 1) < KMSD_ACCOUNT_LEN + 2 ||
		    p[1 + KMSD_ACCOUNT_LEN] != ':')
			return ward_errf(WARD_EUSAGE, "%s is not a KMS ARN",
			    ward_quotes(ident));
		memcpy(acct, p + 1, KMSD_ACCOUNT_LEN);
		acct[KMSD_ACCOUNT_LEN] = '\0';
		account = acct;
		name = p + 2 + KMSD_ACCOUNT_LEN;
		if (strncmp(name, "key/", 4) == 0)
			name += 4;
	}
	if (kmsd_uuid_to_bytes(name, b) == 0) {
		memcpy(id, name, KMSD_KEY_ID_LEN + 1);
		return 0;
	}
	if (strncmp(name, "alias/", 6) != 0)
		return ward_errf(WARD_EUSAGE,
		    "%s is not a key id, key ARN, alias or alias ARN",
		    ward_quotes(ident));
	if (kmsd_prepare(db,
	        "SELECT key_id FROM aliases WHERE name = ?1 AND"
	        " (?2 IS NULL OR account = ?2)",
	        -1, &st, NULL) != SQLITE_OK)
		return kmsd_db_err(db, "reading aliases");
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if (account != NULL)
		sqlite3_bind_text(st, 2, account, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW) {
		snprintf(id, KMSD_KEY_ID_LEN + 1, "%s",
		    (const char *)sqlite3_column_text(st, 0));
		n++;
	}
	kmsd_finish(st);
	if (n == 0)
		return ward_errf(
		    WARD_EKEY, "no key has the alias %s", ward_quotes(ident));
	if (n > 1)
		return ward_errf(WARD_EUSAGE,
		    "several accounts have the alias %s: give its alias ARN",
		    ward_quotes(ident));
	return 0;
}

int
ward_kmsd_pin(const char *dir, const char *key, const struct ward_pcr_pin *pins,
    size_t npins, bool debug_allowed, char **policy_out)
{
	struct kmsd_state *s = NULL;
	sqlite3 *db = NULL;
	struct kmsd_key k;
	struct ward_kms_error e;
	char id[KMSD_KEY_ID_LEN + 1], *policy = NULL, *old;
	int r;

	*policy_out = NULL;
	memset(&k, 0, sizeof(k));
	if ((r = kmsd_state_open(dir, &s)) != 0 ||
	    (r = kmsd_db_open(s, &db)) != 0 || (r = find_key(db, key, id)) != 0)
		goto out;
	if ((r = kmsd_begin(db)) != 0)
		goto out;
	if ((r = kmsd_key_get(db, id, &k)) == -WARD_EKEY)
		r = ward_errf(WARD_EKEY, "key %s does not exist", id);
	if (r != 0)
		goto out;
	if ((r = ward_policy_pin(k.policy, strlen(k.policy), k.account, pins,
	         npins, debug_allowed, &policy, &e)) != 0)
		goto out;
	old = k.policy;
	k.policy = policy;
	r = kmsd_key_update(db, &k, KMSD_SET_POLICY, 0, NULL);
	k.policy = old;
	if (r != 0 || (r = kmsd_commit(db)) != 0)
		goto out;
	*policy_out = policy;
	policy = NULL;
out:
	if (db != NULL)
		kmsd_rollback(db);
	free(policy);
	kmsd_key_free(&k);
	kmsd_db_close(db);
	kmsd_state_close(s);
	return r;
}
