/* libFuzzer: the key-policy parser; whatever parses is evaluated against
 * a few fixed requests and pinned (ward kms pin), with their invariants:
 * a decision in range and a printable reason; a pinned policy that
 * parses, and pinning it again changes nothing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ward/kms.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define H0 "a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0"
#define H1 "b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1"

static const char *const ec_keys[] = {"AppName", "Stage"};
static const char *const app[] = {"ExampleApp"};
static const char *const stage[] = {"Production"};
static const char *const acct_a[] = {"111122223333"};
static const char *const acct_b[] = {"444455556666"};
static const char *const pcr0[] = {H0 H0};
static const char *const pcr1[] = {H1 H1};
static const char *const nitro[] = {"aws-nitro"};
static const char *const yes[] = {"true"};

static const struct ward_policy_key keys_a[] = {
    {"kms:CallerAccount", acct_a, 1},
    {"kms:EncryptionContext:AppName", app, 1},
    {"kms:EncryptionContext:Stage", stage, 1},
    {"kms:EncryptionContextKeys", ec_keys, 2},
    {"aws:PrincipalArn",
        (const char *const[]){"arn:aws:iam::111122223333:user/alice"}, 1},
    {"kms:GrantIsForAWSResource", yes, 1},
};
static const struct ward_policy_key keys_enclave[] = {
    {"kms:CallerAccount", acct_a, 1},
    {"kms:RecipientAttestation:ImageSha384", pcr0, 1},
    {"kms:RecipientAttestation:PCR0", pcr0, 1},
    {"kms:RecipientAttestation:PCR1", pcr1, 1},
    {"ward:AttestationRoot", nitro, 1},
    {"kms:EncryptionContextKeys", NULL, 0},
    /* a second spelling of a key: the ambiguous case */
    {"KMS:RECIPIENTATTESTATION:pcr1", pcr1, 1},
};
static const struct ward_policy_key keys_b[] = {
    {"kms:CallerAccount", acct_b, 1},
};

#define KEY_ARN                                                                \
	"arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"

static const struct ward_policy_request requests[] = {
    {"arn:aws:iam::111122223333:user/alice", "111122223333", "kms:Decrypt",
        KEY_ARN, keys_a, sizeof(keys_a) / sizeof(keys_a[0])},
    {"arn:aws:sts::111122223333:assumed-role/enclave/i-0", "111122223333",
        "kms:GenerateDataKey", KEY_ARN, keys_enclave,
        sizeof(keys_enclave) / sizeof(keys_enclave[0])},
    {"arn:aws:iam::444455556666:user/bob", "444455556666", "kms:ReEncryptFrom",
        KEY_ARN, keys_b, 1},
    {"arn:aws:iam::111122223333:root", NULL, "kms:PutKeyPolicy", KEY_ARN, NULL,
        0},
    {NULL, NULL, NULL, NULL, NULL, 0},
};

static void
evaluate_all(const struct ward_policy *p)
{
	for (size_t i = 0; i < sizeof(requests) / sizeof(requests[0]); i++) {
		char why[256];
		enum ward_policy_decision d;

		memset(why, 0x55, sizeof(why));
		d = ward_policy_evaluate(p, &requests[i], why, sizeof(why));
		if (d != WARD_POLICY_ALLOW && d != WARD_POLICY_IMPLICIT_DENY &&
		    d != WARD_POLICY_EXPLICIT_DENY)
			__builtin_trap();
		/* a terminated, non-empty reason without control bytes */
		if (memchr(why, '\0', sizeof(why)) == NULL || why[0] == '\0')
			__builtin_trap();
		for (const char *c = why; *c != '\0'; c++)
			if ((unsigned char)*c < 0x20 || *c == 0x7f)
				__builtin_trap();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ward_pcr_pin pins[2] = {{0, H0 H0}, {8, H1 H1}};
	struct ward_kms_error e = {0};
	struct ward_policy *p = NULL;
	char *once = NULL, *twice = NULL;

	if (ward_policy_parse((const char *)data, size, &p, &e) != 0) {
		if (p != NULL ||
		    strcmp(e.type, "MalformedPolicyDocumentException"))
			__builtin_trap();
		ward_errclear();
		return 0;
	}
	evaluate_all(p);
	ward_policy_free(p);

	if (ward_policy_pin((const char *)data, size, "111122223333", pins, 2,
	        size & 1, &once, &e) == 0) {
		if (ward_policy_parse(once, strlen(once), &p, &e) != 0)
			__builtin_trap();
		evaluate_all(p);
		ward_policy_free(p);
		/* pinning is idempotent */
		if (ward_policy_pin(once, strlen(once), NULL, pins, 2, size & 1,
		        &twice, &e) != 0 ||
		    strcmp(once, twice) != 0)
			__builtin_trap();
	}
	free(once);
	free(twice);
	ward_errclear();
	return 0;
}
