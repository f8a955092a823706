/*
 * The AWS KMS keyring (framework/aws-kms/aws-kms-keyring.md; kms-and-esdk.md
 * §5.5), with KMS's attested Recipient (nitro.md §4.2, §5).
 *
 * Encrypt: the first key id generates the data key (GenerateDataKey),
 * unless the materials already hold one; every other key id encrypts it
 * (Encrypt). Each adds an EDK "aws-kms" whose provider info is the key ARN
 * KMS answered with.
 *
 * Decrypt: only EDKs of provider "aws-kms" are considered, and their
 * provider info must be a key ARN (else the message is malformed, as the
 * spec requires). Which ones are tried depends on the key ids:
 *  - key ARNs (ESDK strict mode): EDKs whose ARN is one of them, exactly;
 *    Decrypt names that ARN as KeyId.
 *  - none (discovery): every EDK whose ARN is in the client's region;
 *    Decrypt names the EDK's ARN.
 *  - an alias, alias ARN or bare key id: an EDK's ARN cannot be compared
 *    with it, so every EDK in the client's region is tried as in
 *    discovery, but Decrypt names the configured identifier and KMS
 *    refuses a ciphertext of another key (IncorrectKeyException). The
 *    ESDK's strict mode accepts key ARNs only; this is ward's convenience.
 * The KeyId KMS answers with must equal the EDK's ARN in every mode.
 *
 * A KMS answer that this EDK does not open (InvalidCiphertext,
 * IncorrectKey, NotFound) moves on to the next EDK and counts in
 * attempts; every other KMS error (AccessDenied above all: its message
 * says which policy condition failed) ends the decryption with KMS's
 * message. With a recipient, data keys arrive as CiphertextForRecipient,
 * opened with the recipient's private key; KMS must not send Plaintext.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "client_internal.h"
#include "ward/crypto.h"
#include "ward/envelope.h"

#define KMS_PROVIDER_ID "aws-kms"
#define KMS_PROVIDER_ID_LEN 7
#define KMS_KEY_ID_MAX 2048 /* KeyIdType, §1.8 */

/* ---- key identifiers (aws-kms-key-arn.md) ----------------------------- */

struct arn {
	const char *part[5]; /* arn, partition, service, region, account */
	size_t len[5];
	const char *type; /* "key" or "alias" */
	size_t type_len;
	const char *id;
	size_t id_len;
};

static bool
arn_parse(const char *s, size_t n, struct arn *a)
{
	const char *p = s, *end = s + n, *c, *slash;

	if (n == 0 || n > KMS_KEY_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] <= ' ' || s[i] > '~')
			return false;
	for (int i = 0; i < 5; i++) {
		if ((c = memchr(p, ':', (size_t)(end - p))) == NULL)
			return false;
		a->part[i] = p;
		a->len[i] = (size_t)(c - p);
		p = c + 1;
	}
	if (a->len[0] != 3 || memcmp(a->part[0], "arn", 3) != 0 ||
	    a->len[1] == 0 || a->len[2] != 3 ||
	    memcmp(a->part[2], "kms", 3) != 0 || a->len[3] == 0 ||
	    a->len[4] == 0)
		return false;
	/* The resource: TYPE/ID, any further '/' belongs to the id. */
	if ((slash = memchr(p, '/', (size_t)(end - p))) == NULL)
		return false;
	a->type = p;
	a->type_len = (size_t)(slash - p);
	a->id = slash + 1;
	a->id_len = (size_t)(end - a->id);
	if (a->id_len == 0)
		return false;
	return (a->type_len == 3 && memcmp(a->type, "key", 3) == 0) ||
	    (a->type_len == 5 && memcmp(a->type, "alias", 5) == 0);
}

bool
ward_kms_arn_is_key(
    const char *s, size_t len, const char **region, size_t *region_len)
{
	struct arn a;

	if (!arn_parse(s, len, &a) || a.type_len != 3)
		return false;
	if (region != NULL) {
		*region = a.part[3];
		*region_len = a.len[3];
	}
	return true;
}

static bool
region_is(const char *r, size_t n, const char *want)
{
	return n == strlen(want) && memcmp(r, want, n) == 0;
}

/* ---- the keyring ------------------------------------------------------ */

struct kms_keyring {
	struct ward_keyring kr;
	struct ward_kms_client *client;
	char **key_ids;
	bool *is_arn; /* key_ids[i] is a key ARN */
	size_t n;
	bool has_recipient;
	struct ward_kms_recipient recipient;
};

/* jansson frees strings without zeroing them: zero a secret's base64 in
 * place first. The string belongs to o, which the caller releases. */
static void
cleanse_member(json_t *o, const char *name)
{
	json_t *v = json_object_get(o, name);

	if (json_is_string(v))
		ward_cleanse(
		    (char *)json_string_value(v), json_string_length(v));
}

static void
release_response(json_t *resp)
{
	if (resp != NULL) {
		cleanse_member(resp, "Plaintext");
		json_decref(resp);
	}
}

static int
ec_json(const struct ward_ec *ec, json_t **out)
{
	json_t *o;

	if ((*out = o = json_object()) == NULL)
		return ward_enomem();
	for (size_t i = 0; ec != NULL && i < ec->n; i++) {
		const struct ward_ec_pair *p = &ec->pairs[i];
		json_t *v = json_stringn(p->value, p->value_len);

		/* setn_new releases v when it fails. */
		if (v == NULL ||
		    json_object_setn_new(o, p->key, p->key_len, v) != 0) {
			json_decref(o);
			*out = NULL;
			return ward_errf(WARD_EFORMAT,
			    "encryption context pair '%s' is not valid UTF-8, which KMS requires",
			    ward_quote(p->key, p->key_len));
		}
	}
	return 0;
}

/* Add "Recipient" to req; *pkey receives the key that opens the answer. */
static int
add_recipient(struct kms_keyring *k, json_t *req, void **pkey)
{
	struct ward_buf doc = {0};
	char *b64 = NULL;
	json_t *rcp;
	int r;

	*pkey = NULL;
	if ((r = k->recipient.get(k->recipient.ctx, &doc, pkey)) != 0)
		goto out;
	if (*pkey == NULL || doc.len == 0) {
		r = ward_errf(WARD_EINTERNAL,
		    "KMS recipient: no attestation document or key");
		goto out;
	}
	if (doc.len > WARD_KMS_ATTESTATION_MAX) {
		r = ward_errf(WARD_ELIMIT,
		    "KMS recipient: attestation document of %zu bytes (KMS takes at most %d)",
		    doc.len, WARD_KMS_ATTESTATION_MAX);
		goto out;
	}
	if ((b64 = malloc(ward_b64_len(doc.len) + 1)) == NULL) {
		r = ward_enomem();
		goto out;
	}
	ward_b64_encode(doc.p, doc.len, b64);
	if ((rcp = json_pack("{s:s, s:s}", "KeyEncryptionAlgorithm",
	         "RSAES_OAEP_SHA_256", "AttestationDocument", b64)) == NULL ||
	    json_object_set_new(req, "Recipient", rcp) != 0)
		r = ward_enomem();
out:
	if (r != 0) {
		ward_pkey_free(*pkey);
		*pkey = NULL;
	}
	free(b64);
	ward_buf_free(&doc);
	return r;
}

/* Decode the base64 member name of resp (1..cap bytes) into out. */
static int
resp_blob(const char *op, json_t *resp, const char *name, uint8_t *out,
    size_t cap, size_t *len)
{
	json_t *v = json_object_get(resp, name);
	int r;

	*len = 0;
	if (!json_is_string(v))
		return ward_errf(
		    WARD_EFORMAT, "KMS %s: the response has no %s", op, name);
	if ((r = ward_b64_decode(json_string_value(v), json_string_length(v),
	         out, cap, len)) != 0) {
		ward_cleanse(out, cap);
		*len = 0;
		return ward_err_prefix(
		    r, "KMS %s: the response's %s", op, name);
	}
	if (*len == 0)
		return ward_errf(WARD_EFORMAT,
		    "KMS %s: the response's %s is empty", op, name);
	return 0;
}

/* The response's KeyId, which must be a key ARN. */
static int
resp_key_arn(const char *op, json_t *resp, const char **arn)
{
	json_t *v = json_object_get(resp, "KeyId");

	if (!json_is_string(v) ||
	    !ward_kms_arn_is_key(
	        json_string_value(v), json_string_length(v), NULL, NULL))
		return ward_errf(WARD_EFORMAT,
		    "KMS %s: the response's KeyId %s is not a key ARN", op,
		    json_is_string(v) ? ward_quote(json_string_value(v),
		                            json_string_length(v))
		                      : "(absent)");
	*arn = json_string_value(v);
	return 0;
}

/*
 * The data key of a GenerateDataKey or Decrypt response: Plaintext, or
 * with a recipient (pkey) CiphertextForRecipient opened with pkey. key
 * has room for WARD_KMS_DATAKEY_MAX bytes; *len is the length KMS sent,
 * for the caller to check.
 */
static int
resp_data_key(
    const char *op, json_t *resp, void *pkey, uint8_t *key, size_t *len)
{
	struct ward_buf pt = {.secret = true};
	uint8_t *cms = NULL;
	size_t cms_len;
	json_t *v;
	int r;

	*len = 0;
	if (pkey == NULL)
		return resp_blob(
		    op, resp, "Plaintext", key, WARD_KMS_DATAKEY_MAX, len);
	v = json_object_get(resp, "Plaintext");
	if (v != NULL && !json_is_null(v) &&
	    !(json_is_string(v) && json_string_length(v) == 0))
		return ward_errf(WARD_EFORMAT,
		    "KMS %s: the response carries Plaintext although the request named a Recipient",
		    op);
	if ((cms = malloc(WARD_CMS_MAX)) == NULL)
		return ward_enomem();
	if ((r = resp_blob(op, resp, "CiphertextForRecipient", cms,
	         WARD_CMS_MAX, &cms_len)) != 0)
		goto out;
	if ((r = ward_cms_open(pkey, cms, cms_len, &pt)) != 0) {
		r = ward_err_prefix(
		    r, "KMS %s: opening CiphertextForRecipient", op);
		goto out;
	}
	if (pt.len == 0 || pt.len > WARD_KMS_DATAKEY_MAX) {
		r = ward_errf(WARD_EFORMAT,
		    "KMS %s: CiphertextForRecipient holds %zu bytes", op,
		    pt.len);
		goto out;
	}
	memcpy(key, pt.p, pt.len);
	*len = pt.len;
out:
	ward_buf_free(&pt);
	free(cms);
	return r;
}

static int
kms_generate(struct kms_keyring *k, struct ward_materials *m,
    const char *key_id, json_t *ec)
{
	static const char op[] = "GenerateDataKey";
	uint8_t key[WARD_KMS_DATAKEY_MAX], ct[WARD_KMS_CIPHERTEXT_MAX];
	size_t key_len = 0, ct_len;
	json_t *req, *resp = NULL;
	const char *arn;
	void *pkey = NULL;
	int r;

	if ((req = json_pack("{s:s, s:I, s:O}", "KeyId", key_id,
	         "NumberOfBytes", (json_int_t)m->suite->key_len,
	         "EncryptionContext", ec)) == NULL)
		return ward_enomem();
	if (k->has_recipient && (r = add_recipient(k, req, &pkey)) != 0)
		goto out;
	if ((r = ward_kms_call(k->client, op, req, &resp, NULL)) != 0 ||
	    (r = resp_key_arn(op, resp, &arn)) != 0 ||
	    (r = resp_blob(
	         op, resp, "CiphertextBlob", ct, sizeof(ct), &ct_len)) != 0 ||
	    (r = resp_data_key(op, resp, pkey, key, &key_len)) != 0)
		goto out;
	if (key_len != m->suite->key_len) {
		r = ward_errf(WARD_EFORMAT,
		    "KMS %s: a %zu-byte data key for a suite that needs %u", op,
		    key_len, m->suite->key_len);
		goto out;
	}
	/* The materials change only once everything succeeded. */
	if ((r = ward_edk_list_add(&m->edks, KMS_PROVIDER_ID,
	         KMS_PROVIDER_ID_LEN, arn, strlen(arn), ct, ct_len)) != 0)
		goto out;
	memcpy(m->data_key, key, key_len);
	m->data_key_len = key_len;
	m->has_data_key = true;
out:
	ward_cleanse(key, sizeof(key));
	ward_pkey_free(pkey);
	release_response(resp);
	json_decref(req);
	return r;
}

static int
kms_encrypt_key(struct kms_keyring *k, struct ward_materials *m,
    const char *key_id, json_t *ec)
{
	static const char op[] = "Encrypt";
	char b64[ward_b64_len(WARD_DATA_KEY_MAX) + 1];
	uint8_t ct[WARD_KMS_CIPHERTEXT_MAX];
	json_t *req, *resp = NULL;
	const char *arn;
	size_t ct_len;
	int r;

	ward_b64_encode(m->data_key, m->data_key_len, b64);
	req = json_pack("{s:s, s:s, s:O}", "KeyId", key_id, "Plaintext", b64,
	    "EncryptionContext", ec);
	ward_cleanse(b64, sizeof(b64));
	if (req == NULL)
		return ward_enomem();
	if ((r = ward_kms_call(k->client, op, req, &resp, NULL)) != 0 ||
	    (r = resp_key_arn(op, resp, &arn)) != 0 ||
	    (r = resp_blob(
	         op, resp, "CiphertextBlob", ct, sizeof(ct), &ct_len)) != 0)
		goto out;
	r = ward_edk_list_add(&m->edks, KMS_PROVIDER_ID, KMS_PROVIDER_ID_LEN,
	    arn, strlen(arn), ct, ct_len);
out:
	release_response(resp);
	cleanse_member(req, "Plaintext");
	json_decref(req);
	return r;
}

static int
kms_on_encrypt(struct ward_keyring *kr, struct ward_materials *m)
{
	struct kms_keyring *k = (struct kms_keyring *)kr;
	json_t *ec = NULL;
	int r;

	if (k->n == 0)
		return ward_errf(WARD_EUSAGE,
		    "a KMS keyring without key ids (discovery) cannot encrypt: give a key id");
	if ((r = ec_json(m->ec, &ec)) != 0)
		return r;
	for (size_t i = 0; i < k->n && r == 0; i++)
		r = i == 0 && !m->has_data_key
		    ? kms_generate(k, m, k->key_ids[i], ec)
		    : kms_encrypt_key(k, m, k->key_ids[i], ec);
	json_decref(ec);
	return r;
}

/* Is this KMS error "this EDK does not open here" rather than a failure
 * the user must see? */
static bool
not_this_key(const struct ward_kms_error *e)
{
	return strcmp(e->type, "InvalidCiphertextException") == 0 ||
	    strcmp(e->type, "IncorrectKeyException") == 0 ||
	    strcmp(e->type, "NotFoundException") == 0;
}

/*
 * Try one EDK with Decrypt naming key_id. Returns 0 whether or not it
 * opened (m->has_data_key tells), < 0 on a failure that must stop the
 * decryption. addressed: the EDK was certainly meant for this key id, so
 * a refusal counts in m->attempts.
 */
static int
kms_try_decrypt(struct kms_keyring *k, struct ward_materials *m,
    const struct ward_edk *edk, const char *arn, const char *key_id, json_t *ec,
    bool addressed)
{
	static const char op[] = "Decrypt";
	struct ward_kms_error err;
	uint8_t key[WARD_KMS_DATAKEY_MAX];
	size_t key_len = 0;
	json_t *req = NULL, *resp = NULL;
	const char *got;
	char *b64 = NULL;
	void *pkey = NULL;
	int r;

	if (edk->ciphertext_len == 0 ||
	    edk->ciphertext_len > WARD_KMS_CIPHERTEXT_MAX) {
		ward_debug(
		    "aws-kms data key for %s: a %zu-byte ciphertext is not a KMS ciphertext",
		    arn, edk->ciphertext_len);
		m->attempts += addressed;
		return 0;
	}
	if ((b64 = malloc(ward_b64_len(edk->ciphertext_len) + 1)) == NULL)
		return ward_enomem();
	ward_b64_encode(edk->ciphertext, edk->ciphertext_len, b64);
	req = json_pack("{s:s, s:s, s:O}", "CiphertextBlob", b64, "KeyId",
	    key_id, "EncryptionContext", ec);
	free(b64);
	if (req == NULL)
		return ward_enomem();
	if (k->has_recipient && (r = add_recipient(k, req, &pkey)) != 0)
		goto out;
	if ((r = ward_kms_call(k->client, op, req, &resp, &err)) != 0) {
		if (!not_this_key(&err))
			goto out; /* KMS's message is recorded */
		ward_debug("aws-kms data key for %s: %s", arn, ward_errmsg());
		ward_errclear();
		/* With an alias, IncorrectKey says the EDK is another key's. */
		if (addressed || strcmp(err.type, "IncorrectKeyException") != 0)
			m->attempts++;
		r = 0;
		goto out;
	}
	/* The spec's checks: a mismatch is collected, not fatal, and the
	 * next EDK is tried. */
	if ((r = resp_key_arn(op, resp, &got)) != 0 || strcmp(got, arn) != 0) {
		ward_warn(
		    "KMS Decrypt answered for %s with a data key of %s: ignored",
		    arn, r != 0 ? "no key ARN" : ward_quotes(got));
		ward_errclear();
		m->attempts++;
		r = 0;
		goto out;
	}
	if ((r = resp_data_key(op, resp, pkey, key, &key_len)) != 0)
		goto out;
	if (key_len != m->suite->key_len) {
		ward_warn(
		    "KMS Decrypt gave a %zu-byte data key for %s, the suite needs %u: ignored",
		    key_len, arn, m->suite->key_len);
		m->attempts++;
		goto out;
	}
	memcpy(m->data_key, key, key_len);
	m->data_key_len = key_len;
	m->has_data_key = true;
out:
	ward_cleanse(key, sizeof(key));
	ward_pkey_free(pkey);
	release_response(resp);
	json_decref(req);
	return r;
}

static int
kms_on_decrypt(struct ward_keyring *kr, struct ward_materials *m,
    const struct ward_edk *edks, size_t n)
{
	struct kms_keyring *k = (struct kms_keyring *)kr;
	const char *my_region = ward_kms_client_region(k->client);
	json_t *ec = NULL;
	char *arn = NULL;
	int r = 0;

	for (size_t i = 0; i < n && !m->has_data_key && r == 0; i++) {
		const struct ward_edk *e = &edks[i];
		const char *region;
		size_t region_len;
		bool local;

		if (e->provider_id_len != KMS_PROVIDER_ID_LEN ||
		    memcmp(e->provider_id, KMS_PROVIDER_ID,
		        KMS_PROVIDER_ID_LEN) != 0)
			continue;
		if (!ward_kms_arn_is_key((const char *)e->provider_info,
		        e->provider_info_len, &region, &region_len)) {
			r = ward_errf(WARD_EFORMAT,
			    "data key %zu is an aws-kms key whose provider info %s is not a KMS key ARN",
			    i + 1,
			    ward_quote(e->provider_info, e->provider_info_len));
			break;
		}
		free(arn);
		if ((arn = strndup((const char *)e->provider_info,
		         e->provider_info_len)) == NULL) {
			r = ward_enomem();
			break;
		}
		local = region_is(region, region_len, my_region);
		if (ec == NULL && (r = ec_json(m->ec, &ec)) != 0)
			break;
		if (k->n == 0) {
			if (local)
				r = kms_try_decrypt(
				    k, m, e, arn, arn, ec, true);
			else
				ward_debug(
				    "aws-kms data key for %s: not in region %s, skipped",
				    arn, my_region);
			continue;
		}
		for (size_t j = 0; j < k->n && !m->has_data_key && r == 0;
		     j++) {
			if (k->is_arn[j] && strcmp(k->key_ids[j], arn) == 0)
				r = kms_try_decrypt(
				    k, m, e, arn, arn, ec, true);
			else if (!k->is_arn[j] && local)
				r = kms_try_decrypt(
				    k, m, e, arn, k->key_ids[j], ec, false);
		}
	}
	free(arn);
	json_decref(ec);
	return r;
}

static void
kms_describe(const struct ward_keyring *kr, char *out, size_t n)
{
	const struct kms_keyring *k = (const struct kms_keyring *)kr;
	size_t off;

	if (k->n == 0) {
		snprintf(out, n, "AWS KMS (discovery in %s)",
		    ward_kms_client_region(k->client));
		return;
	}
	snprintf(out, n, "AWS KMS key%s ", k->n > 1 ? "s" : "");
	for (size_t i = 0; i < k->n; i++) {
		off = strlen(out);
		if (off + 1 >= n)
			break;
		snprintf(out + off, n - off, "%s%s", i > 0 ? ", " : "",
		    k->key_ids[i]);
	}
}

static void
kms_destroy(struct ward_keyring *kr)
{
	struct kms_keyring *k = (struct kms_keyring *)kr;

	for (size_t i = 0; i < k->n; i++)
		free(k->key_ids[i]);
	free(k->key_ids);
	free(k->is_arn);
	free(k);
}

static const struct ward_keyring_ops kms_ops = {
    .type = "aws-kms",
    .on_encrypt = kms_on_encrypt,
    .on_decrypt = kms_on_decrypt,
    .describe = kms_describe,
    .destroy = kms_destroy,
};

/* A key id as KMS's KeyIdType allows it: 1..2048 printable characters;
 * one starting with "arn:" must be a KMS key or alias ARN. */
static int
check_key_id(const char *id, bool *is_key_arn)
{
	size_t n = strlen(id);
	struct arn a;

	*is_key_arn = false;
	if (n == 0 || n > KMS_KEY_ID_MAX)
		return ward_errf(WARD_EUSAGE,
		    "KMS key id must be 1 to %d characters", KMS_KEY_ID_MAX);
	for (size_t i = 0; i < n; i++)
		if (id[i] <= ' ' || id[i] > '~')
			return ward_errf(WARD_EUSAGE,
			    "KMS key id %s has a space or a non-ASCII character",
			    ward_quotes(id));
	if (strncmp(id, "arn:", 4) != 0)
		return 0;
	if (!arn_parse(id, n, &a))
		return ward_errf(WARD_EUSAGE,
		    "KMS key id %s is not a KMS key or alias ARN (arn:PARTITION:kms:REGION:ACCOUNT:key/ID)",
		    ward_quotes(id));
	*is_key_arn = a.type_len == 3;
	return 0;
}

int
ward_keyring_kms_new(struct ward_keyring **out, struct ward_kms_client *c,
    const char *const *key_ids, size_t n,
    const struct ward_kms_recipient *recipient)
{
	struct kms_keyring *k;
	int r;

	*out = NULL;
	if (c == NULL)
		return ward_errf(
		    WARD_EINTERNAL, "KMS keyring without a client");
	if (recipient != NULL && recipient->get == NULL)
		return ward_errf(
		    WARD_EINTERNAL, "KMS recipient without a get function");
	if ((k = calloc(1, sizeof(*k))) == NULL)
		return ward_enomem();
	k->kr.ops = &kms_ops;
	k->client = c;
	if (recipient != NULL) {
		k->has_recipient = true;
		k->recipient = *recipient;
	}
	if (n > 0 &&
	    ((k->key_ids = calloc(n, sizeof(char *))) == NULL ||
	        (k->is_arn = calloc(n, sizeof(bool))) == NULL)) {
		r = ward_enomem();
		goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		if ((r = check_key_id(key_ids[i], &k->is_arn[i])) != 0)
			goto fail;
		if ((k->key_ids[i] = strdup(key_ids[i])) == NULL) {
			r = ward_enomem();
			goto fail;
		}
		k->n = i + 1;
	}
	*out = &k->kr;
	return 0;
fail:
	kms_destroy(&k->kr);
	return r;
}
