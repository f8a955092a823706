/*
 * Recipient end to end, against a real `ward kms serve` over HTTP: the
 * attestation half of the key-policy matrix. The script kms-recipient.sh
 * starts the server (trusting CA A's root, not CA B's) and runs this with
 * the admin's credentials in the environment:
 *
 *   kms_recipient ENDPOINT CA_A_DIR CA_B_DIR
 *
 * Documents are made here with the local CA's signer, exactly as a sandbox
 * enclave's NSM makes them, with chosen PCRs and a fresh RSA-2048 key; the
 * answers' CiphertextForRecipient is opened with that key.
 */
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ward/attest.h"
#include "ward/crypto.h"
#include "ward/kms.h"

static int pass, fail;
static struct ward_kms_client *kc;
static const char *account;

static void
check(bool ok, const char *fmt, ...)
{
	va_list ap;

	printf("%s  ", ok ? "ok  " : "FAIL");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (ok)
		pass++;
	else
		fail++;
}

static void
die(const char *what)
{
	fprintf(stderr, "kms_recipient: %s: %s\n", what, ward_errmsg());
	exit(1);
}

/* A document: PCRs 0, 1, 2, 8 from seeds ('\0' means all zero). */
struct enclave {
	EVP_PKEY *key;
	struct ward_buf doc;
	uint8_t pcrs[WARD_NSM_PCR_COUNT][WARD_NSM_PCR_LEN];
};

static void
pcr_fill(uint8_t out[WARD_NSM_PCR_LEN], char seed)
{
	memset(out, seed == 0 ? 0 : (unsigned char)seed, WARD_NSM_PCR_LEN);
}

static void
hex48(const uint8_t p[WARD_NSM_PCR_LEN], char out[97])
{
	ward_hex_encode(p, WARD_NSM_PCR_LEN, out);
}

static void
make_doc(struct enclave *e, struct ward_attest_signer *signer, char pcr0,
    char pcr1, char pcr2, char pcr8, bool with_key)
{
	struct ward_attest_fields f;
	struct ward_buf spki = {0};
	static const char mod[] = "i-0000000000000000-enc0000000000000000";

	memset(e, 0, sizeof(*e));
	if (ward_rsa_generate(2048, &e->key) != 0 ||
	    ward_pkey_spki(e->key, &spki) != 0)
		die("RSA key");
	pcr_fill(e->pcrs[0], pcr0);
	pcr_fill(e->pcrs[1], pcr1);
	pcr_fill(e->pcrs[2], pcr2);
	pcr_fill(e->pcrs[8], pcr8);
	memset(&f, 0, sizeof(f));
	f.module_id.p = (const uint8_t *)mod;
	f.module_id.len = strlen(mod);
	f.pcr_mask = 0xffff;
	f.pcrs = (const uint8_t(*)[WARD_NSM_PCR_LEN])e->pcrs;
	if (with_key) {
		f.public_key.present = true;
		f.public_key.v.p = spki.p;
		f.public_key.v.len = spki.len;
	}
	if (ward_attest_sign(signer, &f, &e->doc) != 0)
		die("signing a document");
	ward_buf_free(&spki);
}

static void
enclave_free(struct enclave *e)
{
	EVP_PKEY_free(e->key);
	ward_buf_free(&e->doc);
}

static json_t *
recipient(const struct enclave *e, const char *alg)
{
	char *b64 = malloc(ward_b64_len(e->doc.len) + 1);
	json_t *r;

	ward_b64_encode(e->doc.p, e->doc.len, b64);
	r = json_pack("{s:s, s:s}", "KeyEncryptionAlgorithm", alg,
	    "AttestationDocument", b64);
	free(b64);
	return r;
}

/* Open an answer's CiphertextForRecipient with the enclave's key; false
 * also when the answer carries a Plaintext beside it. */
static bool
open_cfr(const json_t *rs, EVP_PKEY *key, struct ward_buf *out)
{
	const char *c =
	    json_string_value(json_object_get(rs, "CiphertextForRecipient"));
	struct ward_buf raw = {0};
	size_t n;
	bool ok;

	if (c == NULL || json_object_get(rs, "Plaintext") != NULL)
		return false;
	ok = ward_buf_reserve(&raw, strlen(c)) == 0 &&
	    ward_b64_decode(c, strlen(c), raw.p, raw.cap, &n) == 0 &&
	    ward_cms_open(key, raw.p, n, out) == 0;
	ward_buf_free(&raw);
	return ok;
}

/* Call op; returns the error type ("" on success); *resp kept if asked. */
static const char *
call(const char *op, json_t *req, json_t **resp, char *msg, size_t msgn)
{
	static char type[64];
	struct ward_kms_error e;
	json_t *rs = NULL;
	int r;

	memset(&e, 0, sizeof(e));
	r = ward_kms_call(kc, op, req, &rs, &e);
	json_decref(req);
	if (msg != NULL)
		snprintf(msg, msgn, "%s", e.message);
	if (r != 0) {
		snprintf(
		    type, sizeof(type), "%s", e.type[0] ? e.type : "transport");
		ward_errclear();
		return type;
	}
	if (resp != NULL)
		*resp = rs;
	else
		json_decref(rs);
	return "";
}

static char *
create_key(const char *policy)
{
	json_t *rs = NULL;
	const char *t;
	char *arn;

	t = call("CreateKey",
	    policy ? json_pack("{s:s, s:b}", "Policy", policy,
	                 "BypassPolicyLockoutSafetyCheck", 0)
	           : json_object(),
	    &rs, NULL, 0);
	if (*t)
		die(t);
	arn = strdup(json_string_value(
	    json_object_get(json_object_get(rs, "KeyMetadata"), "Arn")));
	json_decref(rs);
	return arn;
}

/* A policy: the admin may do everything but the recipient operations;
 * the enclave statement's condition block is cond (JSON). */
static char *
policy_with(const char *cond)
{
	char *p = NULL;

	if (asprintf(&p,
	        "{\"Version\":\"2012-10-17\",\"Statement\":["
	        "{\"Sid\":\"Admin\",\"Effect\":\"Allow\",\"Principal\":{\"AWS\":"
	        "\"arn:aws:iam::%s:root\"},\"NotAction\":[\"kms:Decrypt\","
	        "\"kms:GenerateDataKey\"],\"Resource\":\"*\"},"
	        "{\"Sid\":\"Enclave\",\"Effect\":\"Allow\",\"Principal\":{\"AWS\":"
	        "\"arn:aws:iam::%s:root\"},\"Action\":[\"kms:Decrypt\","
	        "\"kms:GenerateDataKey\"],\"Resource\":\"*\",\"Condition\":%s}]}",
	        account, account, cond) < 0)
		die("asprintf");
	return p;
}

static struct ward_buf
encrypt(const char *arn, const char *pt)
{
	json_t *rs = NULL;
	struct ward_buf blob = {0};
	const char *t, *b64;
	char *ptb = malloc(ward_b64_len(strlen(pt)) + 1);
	size_t n;

	ward_b64_encode((const uint8_t *)pt, strlen(pt), ptb);
	t = call("Encrypt",
	    json_pack("{s:s, s:s, s:{s:s}}", "KeyId", arn, "Plaintext", ptb,
	        "EncryptionContext", "purpose", "test"),
	    &rs, NULL, 0);
	free(ptb);
	if (*t)
		die(t);
	b64 = json_string_value(json_object_get(rs, "CiphertextBlob"));
	ward_buf_reserve(&blob, strlen(b64));
	ward_b64_decode(b64, strlen(b64), blob.p, blob.cap, &n);
	blob.len = n;
	json_decref(rs);
	return blob;
}

/*
 * Decrypt blob with the enclave's document; returns the error type, and
 * on success checks the answer carries no Plaintext and opens to want.
 */
static const char *
decrypt_as(const struct ward_buf *blob, const struct enclave *e,
    const char *want, char *msg, size_t msgn)
{
	json_t *rq, *rs = NULL;
	const char *t, *verdict = "";
	char *b64 = malloc(ward_b64_len(blob->len) + 1);
	struct ward_buf pt = {0};

	ward_b64_encode(blob->p, blob->len, b64);
	rq = json_pack("{s:s, s:{s:s}}", "CiphertextBlob", b64,
	    "EncryptionContext", "purpose", "test");
	free(b64);
	if (e != NULL)
		json_object_set_new(
		    rq, "Recipient", recipient(e, "RSAES_OAEP_SHA_256"));
	t = call("Decrypt", rq, &rs, msg, msgn);
	if (*t)
		return t;
	if (e != NULL) {
		if (json_object_get(rs, "Plaintext") != NULL)
			verdict = "Plaintext-present";
		else if (!open_cfr(rs, e->key, &pt))
			verdict = "CiphertextForRecipient-does-not-open";
		else if (pt.len != strlen(want) ||
		    memcmp(pt.p, want, pt.len) != 0)
			verdict = "wrong-plaintext";
	}
	ward_buf_free(&pt);
	json_decref(rs);
	return verdict;
}

#define EXPECT(got, want, what)                                                \
	do {                                                                   \
		const char *g_ = (got);                                        \
		check(strcmp(g_, (want)) == 0, "%s: %s%s%s", what,             \
		    *g_ ? g_ : "allowed",                                      \
		    strcmp(g_, (want)) == 0 ? "" : ", expected ",              \
		    strcmp(g_, (want)) == 0 ? ""                               \
		                            : (*(want) ? (want) : "allowed")); \
	} while (0)

int
main(int argc, char **argv)
{
	struct ward_kms_client_opts o;
	struct ward_ca *ca_a = NULL, *ca_b = NULL;
	struct ward_attest_signer *sa = NULL, *sb = NULL;
	struct enclave good, other, dbg, badpcr1, nokey, foreign, up;
	char x[97], p1[97], p2[97], p8[97], cond[2048], msg[1024];
	char *pol, *k1, *k2, *k3, *k4, *k5;
	struct ward_buf b1, b2, b3, b4, b5;
	json_t *rs = NULL;
	const char *t;

	if (argc != 4) {
		fprintf(stderr, "usage: kms_recipient ENDPOINT CA_A CA_B\n");
		return 2;
	}
	if ((account = getenv("WARD_TEST_ACCOUNT")) == NULL) {
		fprintf(stderr, "kms_recipient: WARD_TEST_ACCOUNT unset\n");
		return 2;
	}
	memset(&o, 0, sizeof(o));
	o.endpoint_url = argv[1];
	if (ward_kms_client_new(&kc, &o) != 0)
		die("client");
	if (ward_ca_load(argv[2], &ca_a) != 0 ||
	    ward_ca_load(argv[3], &ca_b) != 0 ||
	    ward_attest_signer_new(ca_a, &sa) != 0 ||
	    ward_attest_signer_new(ca_b, &sb) != 0)
		die("CA");

	make_doc(&good, sa, 'X', 'a', 'b', 'c', true);
	make_doc(&other, sa, 'Y', 'a', 'b', 'c', true);
	make_doc(&dbg, sa, 0, 0, 0, 0, true);
	make_doc(&badpcr1, sa, 'X', 'z', 'b', 'c', true);
	make_doc(&nokey, sa, 'X', 'a', 'b', 'c', false);
	make_doc(&foreign, sb, 'X', 'a', 'b', 'c', true);
	make_doc(&up, sa, 'X', 'a', 'b', 'c', true);
	hex48(good.pcrs[0], x);
	hex48(good.pcrs[1], p1);
	hex48(good.pcrs[2], p2);
	hex48(good.pcrs[8], p8);

	/* K1: ImageSha384 pinned to X. */
	snprintf(cond, sizeof(cond),
	    "{\"StringEqualsIgnoreCase\":{\"kms:RecipientAttestation:"
	    "ImageSha384\":\"%s\"}}",
	    x);
	pol = policy_with(cond);
	k1 = create_key(pol);
	free(pol);
	b1 = encrypt(k1, "model key one");
	EXPECT(decrypt_as(&b1, &good, "model key one", NULL, 0), "",
	    "ImageSha384 pinned to X, document with PCR0 X");
	EXPECT(decrypt_as(&b1, &other, "", msg, sizeof(msg)),
	    "AccessDeniedException",
	    "ImageSha384 pinned to X, document with PCR0 Y");
	check(strstr(msg, "ImageSha384") != NULL,
	    "the denial names the condition that failed: %s", msg);
	EXPECT(decrypt_as(&b1, NULL, "", NULL, 0), "AccessDeniedException",
	    "ImageSha384 pinned, no Recipient at all");
	EXPECT(decrypt_as(&b1, &dbg, "", NULL, 0), "AccessDeniedException",
	    "ImageSha384 pinned, debug-mode document (all-zero PCRs)");
	EXPECT(decrypt_as(&b1, &foreign, "", NULL, 0), "ValidationException",
	    "document signed by an untrusted root");
	EXPECT(decrypt_as(&b1, &nokey, "", NULL, 0), "ValidationException",
	    "document without a public_key");
	{
		json_t *rq;
		char *b64 = malloc(ward_b64_len(b1.len) + 1);
		ward_b64_encode(b1.p, b1.len, b64);
		rq = json_pack("{s:s, s:{s:s}, s:o}", "CiphertextBlob", b64,
		    "EncryptionContext", "purpose", "test", "Recipient",
		    recipient(&good, "RSAES_OAEP_SHA_1"));
		free(b64);
		EXPECT(call("Decrypt", rq, NULL, NULL, 0),
		    "ValidationException",
		    "KeyEncryptionAlgorithm other than RSAES_OAEP_SHA_256");
	}
	{
		/* A tampered document: one byte of its signature. */
		struct enclave bad = good;
		struct ward_buf copy = {0};
		ward_buf_append(&copy, good.doc.p, good.doc.len);
		copy.p[copy.len - 5] ^= 1;
		bad.doc = copy;
		EXPECT(decrypt_as(&b1, &bad, "", NULL, 0),
		    "ValidationException", "document with a flipped byte");
		ward_buf_free(&copy);
	}

	/* GenerateDataKey with Recipient: the key only for the enclave. */
	t = call("GenerateDataKey",
	    json_pack("{s:s, s:s, s:{s:s}, s:o}", "KeyId", k1, "KeySpec",
	        "AES_256", "EncryptionContext", "purpose", "test", "Recipient",
	        recipient(&good, "RSAES_OAEP_SHA_256")),
	    &rs, NULL, 0);
	EXPECT(t, "", "GenerateDataKey with Recipient, PCR0 X");
	if (!*t) {
		struct ward_buf dk = {0}, again = {0};
		const char *cb =
		    json_string_value(json_object_get(rs, "CiphertextBlob"));
		json_t *r2 = NULL;
		bool ok =
		    cb != NULL && open_cfr(rs, good.key, &dk) && dk.len == 32;

		check(ok,
		    "GenerateDataKey answer: CiphertextForRecipient "
		    "opens to 32 bytes, no Plaintext");
		if (ok) {
			/* Its CiphertextBlob decrypts (attested) to the same
			 * key. */
			t = call("Decrypt",
			    json_pack("{s:s, s:{s:s}, s:o}", "CiphertextBlob",
			        cb, "EncryptionContext", "purpose", "test",
			        "Recipient",
			        recipient(&good, "RSAES_OAEP_SHA_256")),
			    &r2, NULL, 0);
			check(!*t && open_cfr(r2, good.key, &again) &&
			        again.len == 32 &&
			        memcmp(again.p, dk.p, 32) == 0,
			    "the data key's CiphertextBlob decrypts (attested) "
			    "to the same key");
		}
		json_decref(r2);
		ward_buf_free(&dk);
		ward_buf_free(&again);
		json_decref(rs);
		rs = NULL;
	}
	t = call("GenerateDataKey",
	    json_pack("{s:s, s:s, s:{s:s}, s:o}", "KeyId", k1, "KeySpec",
	        "AES_256", "EncryptionContext", "purpose", "test", "Recipient",
	        recipient(&other, "RSAES_OAEP_SHA_256")),
	    NULL, NULL, 0);
	EXPECT(t, "AccessDeniedException",
	    "GenerateDataKey with Recipient, PCR0 Y");
	t = call("GenerateRandom",
	    json_pack("{s:i, s:o}", "NumberOfBytes", 16, "Recipient",
	        recipient(&good, "RSAES_OAEP_SHA_256")),
	    &rs, NULL, 0);
	check(!*t && json_object_get(rs, "Plaintext") == NULL &&
	        json_object_get(rs, "CiphertextForRecipient") != NULL,
	    "GenerateRandom with Recipient: CiphertextForRecipient only (%s)",
	    *t ? t : "ok");
	json_decref(rs);
	rs = NULL;

	/* K2: pinned by `ward kms pin`'s policy rewrite on PCR0,1,2,8. */
	{
		struct ward_pcr_pin pins[4];
		struct ward_kms_error e;
		char *pinned = NULL, *def = ward_policy_default(account);
		unsigned idx[4] = {0, 1, 2, 8};
		const char *vals[4] = {x, p1, p2, p8};

		for (int i = 0; i < 4; i++) {
			pins[i].index = idx[i];
			snprintf(
			    pins[i].hex, sizeof(pins[i].hex), "%s", vals[i]);
		}
		if (ward_policy_pin(def, strlen(def), account, pins, 4, false,
		        &pinned, &e) != 0)
			die("ward_policy_pin");
		k2 = create_key(pinned);
		free(pinned);
		free(def);
	}
	b2 = encrypt(k2, "model key two");
	EXPECT(decrypt_as(&b2, &good, "model key two", NULL, 0), "",
	    "pinned PCR0/1/2/8, all match");
	EXPECT(decrypt_as(&b2, &badpcr1, "", NULL, 0), "AccessDeniedException",
	    "pinned PCR0/1/2/8, PCR1 differs");
	EXPECT(decrypt_as(&b2, &dbg, "", NULL, 0), "AccessDeniedException",
	    "pinned PCR0/1/2/8, debug-mode document");

	/* K3: demands real hardware (ward:AttestationRoot aws-nitro). */
	snprintf(cond, sizeof(cond),
	    "{\"StringEqualsIgnoreCase\":{\"kms:RecipientAttestation:"
	    "ImageSha384\":\"%s\"},\"StringEquals\":{\"ward:AttestationRoot\":"
	    "\"aws-nitro\"}}",
	    x);
	pol = policy_with(cond);
	k3 = create_key(pol);
	free(pol);
	b3 = encrypt(k3, "three");
	EXPECT(decrypt_as(&b3, &good, "", msg, sizeof(msg)),
	    "AccessDeniedException",
	    "policy demands aws-nitro, document from the local root");
	check(strstr(msg, "AttestationRoot") != NULL,
	    "the denial names ward:AttestationRoot: %s", msg);

	/* K4: the local root is acceptable; uppercase hex in the policy. */
	{
		char upx[97];
		for (int i = 0; i < 97; i++)
			upx[i] = (char)(x[i] >= 'a' && x[i] <= 'f' ? x[i] - 32
			                                           : x[i]);
		snprintf(cond, sizeof(cond),
		    "{\"StringEqualsIgnoreCase\":{\"kms:RecipientAttestation:"
		    "PCR0\":\"%s\"},\"StringEquals\":{\"ward:AttestationRoot\":"
		    "\"local\"}}",
		    upx);
	}
	pol = policy_with(cond);
	k4 = create_key(pol);
	free(pol);
	b4 = encrypt(k4, "four");
	EXPECT(decrypt_as(&b4, &up, "four", NULL, 0), "",
	    "PCR0 key (uppercase in policy) and AttestationRoot local");

	/* K5: the key's state comes before the policy. */
	snprintf(cond, sizeof(cond),
	    "{\"StringEqualsIgnoreCase\":{\"kms:RecipientAttestation:"
	    "ImageSha384\":\"%s\"}}",
	    x);
	pol = policy_with(cond);
	k5 = create_key(pol);
	free(pol);
	b5 = encrypt(k5, "five");
	EXPECT(
	    call("DisableKey", json_pack("{s:s}", "KeyId", k5), NULL, NULL, 0),
	    "", "disable K5");
	EXPECT(decrypt_as(&b5, &good, "", NULL, 0), "DisabledException",
	    "disabled key, matching document");
	call("EnableKey", json_pack("{s:s}", "KeyId", k5), NULL, NULL, 0);
	call("ScheduleKeyDeletion",
	    json_pack("{s:s, s:i}", "KeyId", k5, "PendingWindowInDays", 7),
	    NULL, NULL, 0);
	EXPECT(decrypt_as(&b5, &good, "", NULL, 0), "KMSInvalidStateException",
	    "key pending deletion, matching document");
	call("CancelKeyDeletion", json_pack("{s:s}", "KeyId", k5), NULL, NULL,
	    0);
	call("EnableKey", json_pack("{s:s}", "KeyId", k5), NULL, NULL, 0);
	EXPECT(decrypt_as(&b5, &good, "five", NULL, 0), "",
	    "after cancel and enable, matching document");

	/* Re-pinning K1 to Y through PutKeyPolicy: X is refused from now. */
	snprintf(cond, sizeof(cond),
	    "{\"StringEqualsIgnoreCase\":{\"kms:RecipientAttestation:"
	    "ImageSha384\":\"%s\"}}",
	    "yyyy");
	{
		char y[97];
		hex48(other.pcrs[0], y);
		snprintf(cond, sizeof(cond),
		    "{\"StringEqualsIgnoreCase\":{\"kms:RecipientAttestation:"
		    "ImageSha384\":\"%s\"}}",
		    y);
	}
	pol = policy_with(cond);
	t = call("PutKeyPolicy",
	    json_pack("{s:s, s:s, s:s}", "KeyId", k1, "PolicyName", "default",
	        "Policy", pol),
	    NULL, NULL, 0);
	free(pol);
	EXPECT(t, "", "re-pin K1 to Y");
	EXPECT(decrypt_as(&b1, &good, "", NULL, 0), "AccessDeniedException",
	    "after re-pin, PCR0 X is refused");
	EXPECT(decrypt_as(&b1, &other, "model key one", NULL, 0), "",
	    "after re-pin, PCR0 Y is allowed");

	enclave_free(&good);
	enclave_free(&other);
	enclave_free(&dbg);
	enclave_free(&badpcr1);
	enclave_free(&nokey);
	enclave_free(&foreign);
	enclave_free(&up);
	ward_buf_free(&b1);
	ward_buf_free(&b2);
	ward_buf_free(&b3);
	ward_buf_free(&b4);
	ward_buf_free(&b5);
	free(k1);
	free(k2);
	free(k3);
	free(k4);
	free(k5);
	ward_attest_signer_free(sa);
	ward_attest_signer_free(sb);
	ward_ca_free(ca_a);
	ward_ca_free(ca_b);
	ward_kms_client_free(kc);
	printf("kms_recipient: %d passed, %d failed\n", pass, fail);
	return fail == 0 ? 0 : 1;
}
