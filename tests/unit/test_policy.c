/* kms key policies: parsing (kms-and-esdk.md §3.1), evaluation (§3.3-§3.7,
 * nitro.md §5 attestation keys), the default policy (§3.2) and ward kms
 * pin. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "ward/kms.h"

/* JSON written as C tokens: J({"a": 1}) is the string "{\"a\": 1}". */
#define J(...) #__VA_ARGS__

#define ACCT_A "111122223333"
#define ACCT_B "444455556666"
#define ALICE "arn:aws:iam::111122223333:user/alice"
#define MALLORY "arn:aws:iam::111122223333:user/mallory"
#define BOB "arn:aws:iam::444455556666:user/bob"
#define CAROL "arn:aws:iam::444455556666:user/carol"
#define ROOT_A "arn:aws:iam::111122223333:root"
#define ENCLAVE_SESSION "arn:aws:sts::111122223333:assumed-role/enclave/i-0abc"
#define KEY_ARN                                                                \
	"arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"

/* 96 hex digits: PCR values (SHA-384). */
#define X12(s) s s s s s s s s s s s s
#define HEX(c) X12(c c c c)
#define H0 HEX("a0")
#define H0_UPPER HEX("A0")
#define H1 HEX("b1")
#define H8 HEX("c8")
#define H16 HEX("d6")
#define HX HEX("ee")
#define HZ HEX("00")
#define Q(s) "\"" s "\""

/* ------------------------------------------------------------------ */
/* Policies for the evaluation table                                   */

static const char P_CROSS[] = J({
	"Version" : "2012-10-17",
	"Statement" : [
		{
			"Sid" : "Own account",
			"Effect" : "Allow",
			"Principal" :
			    {"AWS" : "arn:aws:iam::111122223333:root"},
			"Action" : "kms:*",
			"Resource" : "*"
		},
		{
			"Sid" : "Bob decrypts",
			"Effect" : "Allow",
			"Principal" :
			    {"AWS" : "arn:aws:iam::444455556666:user/bob"},
			"Action" : "kms:Decrypt",
			"Resource" : "*"
		}
	]
});

static const char P_ACCT_B[] = J({
	"Version" : "2012-10-17",
	"Statement" : {
		"Sid" : "Account B",
		"Effect" : "Allow",
		"Principal" : {"AWS" : ["444455556666"]},
		"Action" : [ "kms:Decrypt", "kms:Encrypt" ],
		"Resource" : "arn:aws:kms:us-east-1:111122223333:key/*"
	}
});

static const char P_USERS[] = J({
	"Version" : "2012-10-17",
	"Statement" : [
		{
			"Sid" : "Alice",
			"Effect" : "Allow",
			"Principal" :
			    {"AWS" : "arn:aws:iam::111122223333:user/alice"},
			"Action" : "kms:Decrypt",
			"Resource" : "*"
		},
		{
			"Sid" : "Enclave role",
			"Effect" : "Allow",
			"Principal" :
			    {"AWS" : "arn:aws:iam::111122223333:role/enclave"},
			"Action" : "kms:GenerateDataKey",
			"Resource" :
			    "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
		}
	]
});

static const char P_STAR[] = J({
	"Version" : "2012-10-17",
	"Statement" : [
		{
			"Sid" : "Any caller of A",
			"Effect" : "Allow",
			"Principal" : {"AWS" : "*"},
			"Action" : "kms:Decrypt",
			"Resource" : "*",
			"Condition" : {
				"StringEquals" :
				    {"kms:CallerAccount" : "111122223333"}
			}
		},
		{
			"Sid" : "Anyone encrypts",
			"Effect" : "Allow",
			"Principal" : "*",
			"Action" : "kms:Encrypt",
			"Resource" : "*"
		}
	]
});

static const char P_DENY[] = J({
	"Version" : "2012-10-17",
	"Statement" : [
		{
			"Sid" : "Own account",
			"Effect" : "Allow",
			"Principal" : {"AWS" : "111122223333"},
			"Action" : "kms:*",
			"Resource" : "*"
		},
		{
			"Sid" : "Deny prod",
			"Effect" : "Deny",
			"Principal" : {"AWS" : "*"},
			"Action" : "kms:Decrypt",
			"Resource" : "*",
			"Condition" : {
				"StringEquals" : {
					"kms:EncryptionContext:Stage" :
					    [ "Production", "Restricted" ]
				}
			}
		}
	]
});

static const char P_ACTIONS[] = J({
	"Version" : "2012-10-17",
	"Statement" : [
		{
			"Sid" : "Wildcards",
			"Effect" : "Allow",
			"Principal" :
			    {"AWS" : "arn:aws:iam::111122223333:user/alice"},
			"Action" : [
				"kms:ReEncrypt*", "kms:Get*", "KMS:encrypt",
				"kms:?escribeKey"
			],
			"Resource" : "*"
		},
		{
			"Sid" : "All but deletion",
			"Effect" : "Allow",
			"Principal" :
			    {"AWS" : "arn:aws:iam::444455556666:user/bob"},
			"NotAction" :
			    [ "kms:ScheduleKeyDeletion", "kms:Delete*" ],
			"Resource" : "*"
		}
	]
});

static const char P_EC[] = J({
	"Version" : "2012-10-17",
	"Statement" : [
		{
			"Sid" : "App only",
			"Effect" : "Allow",
			"Principal" :
			    {"AWS" : "arn:aws:iam::111122223333:user/alice"},
			"Action" : "kms:Decrypt",
			"Resource" : "*",
			"Condition" : {
				"StringEquals" : {
					"kms:EncryptionContext:AppName" :
					    "ExampleApp"
				},
				"ForAllValues:StringEquals" :
				    {"kms:EncryptionContextKeys" : ["AppName"]}
			}
		},
		{
			"Sid" : "Any case",
			"Effect" : "Allow",
			"Principal" :
			    {"AWS" : "arn:aws:iam::111122223333:user/alice"},
			"Action" : "kms:Encrypt",
			"Resource" : "*",
			"Condition" : {
				"StringEqualsIgnoreCase" : {
					"kms:EncryptionContext:AppName" :
					    "ExampleApp"
				}
			}
		}
	]
});

static const char P_SETS[] = J({
	"Version" : "2012-10-17",
	"Statement" : [
		{
			"Sid" : "Only AppName",
			"Effect" : "Allow",
			"Principal" :
			    {"AWS" : "arn:aws:iam::111122223333:user/alice"},
			"Action" : "kms:Encrypt",
			"Resource" : "*",
			"Condition" : {
				"ForAllValues:StringEquals" :
				    {"kms:EncryptionContextKeys" : "AppName"}
			}
		},
		{
			"Sid" : "Tenant or project",
			"Effect" : "Allow",
			"Principal" :
			    {"AWS" : "arn:aws:iam::111122223333:user/alice"},
			"Action" : "kms:Decrypt",
			"Resource" : "*",
			"Condition" : {
				"ForAnyValue:StringEquals" : {
					"kms:EncryptionContextKeys" :
					    [ "Tenant", "Project" ]
				}
			}
		}
	]
});

static const char P_ATTEST[] = J({"Version": "2012-10-17", "Statement": [
	{"Sid": "Enclave", "Effect": "Allow",
	    "Principal": {"AWS": "arn:aws:iam::111122223333:role/enclave"},
	    "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*",
	    "Condition": {"StringEqualsIgnoreCase": {
		"kms:RecipientAttestation:ImageSha384":
	    ) Q(H0) J(, "kms:RecipientAttestation:PCR1":) Q(H1) J(,
		"kms:RecipientAttestation:PCR8":) Q(H8) J(,
		"kms:RecipientAttestation:PCR16":) Q(H16) J(}}}]});

static const char P_PCR0_ROOT[] = J({"Version": "2012-10-17", "Statement": [
	{"Sid": "Nitro only", "Effect": "Allow",
	    "Principal": {"AWS": "arn:aws:iam::111122223333:role/enclave"},
	    "Action": "kms:Decrypt", "Resource": "*",
	    "Condition": {"StringEquals": {"ward:AttestationRoot": "aws-nitro"},
		"StringEqualsIgnoreCase": {"kms:RecipientAttestation:PCR0":
	    ) Q(H0) J(}}}]});

static const char P_LIKE[] = J({
	"Version" : "2012-10-17",
	"Statement" : [
		{
			"Sid" : "Paths",
			"Effect" : "Allow",
			"Principal" : {"AWS" : "111122223333"},
			"Action" : "kms:Decrypt",
			"Resource" : "*",
			"Condition" : {
				"StringLike" : {
					"kms:EncryptionContext:Path" :
					    "/data/*/file-?.bin"
				}
			}
		},
		{
			"Sid" : "No temps",
			"Effect" : "Allow",
			"Principal" : {"AWS" : "*"},
			"Action" : "kms:Encrypt",
			"Resource" : "*",
			"Condition" : {
				"StringNotLike" : {
					"aws:PrincipalArn" : [
						"arn:aws:iam::*:user/temp-?",
						"*:root"
					]
				},
				"ArnLike" : {
					"aws:PrincipalArn" :
					    "arn:aws:iam::111122223333:*"
				}
			}
		}
	]
});

static const char P_NULL_BOOL[] = J({
	"Version" : "2012-10-17",
	"Statement" : [
		{
			"Sid" : "Own account",
			"Effect" : "Allow",
			"Principal" : {"AWS" : "111122223333"},
			"Action" : [ "kms:Decrypt", "kms:Encrypt" ],
			"Resource" : "*"
		},
		{
			"Sid" : "Owner required",
			"Effect" : "Deny",
			"Principal" : "*",
			"Action" : "kms:Decrypt",
			"Resource" : "*",
			"Condition" :
			    {"Null" : {"kms:EncryptionContext:Owner" : true}}
		},
		{
			"Sid" : "Attested random",
			"Effect" : "Allow",
			"Principal" : {"AWS" : "111122223333"},
			"Action" : "kms:GenerateRandom",
			"Resource" : "*",
			"Condition" : {
				"Null" : {
					"kms:RecipientAttestation:ImageSha384" :
					    "false"
				}
			}
		},
		{
			"Sid" : "Grants for AWS",
			"Effect" : "Allow",
			"Principal" : {"AWS" : "111122223333"},
			"Action" : "kms:CreateGrant",
			"Resource" : "*",
			"Condition" :
			    {"Bool" : {"kms:GrantIsForAWSResource" : true}}
		},
		{
			"Sid" : "Retire unless not",
			"Effect" : "Allow",
			"Principal" : {"AWS" : "111122223333"},
			"Action" : "kms:RetireGrant",
			"Resource" : "*",
			"Condition" : {
				"BoolIfExists" :
				    {"kms:GrantIsForAWSResource" : "true"}
			}
		}
	]
});

static const char P_VALUES[] = J({
	"Version" : "2008-10-17",
	"Statement" : [
		{
			"Sid" : "Tenant if any",
			"Effect" : "Allow",
			"Principal" : {"AWS" : "111122223333"},
			"Action" : "kms:Decrypt",
			"Resource" : "*",
			"Condition" : {
				"StringEqualsIfExists" :
				    {"kms:EncryptionContext:Tenant" : "t1"}
			}
		},
		{
			"Sid" : "Two accounts",
			"Effect" : "Allow",
			"Principal" : {"AWS" : "*"},
			"Action" : "kms:Encrypt",
			"Resource" : "*",
			"Condition" : {
				"StringEquals" : {
					"kms:CallerAccount" :
					    [ 111122223333, "444455556666" ]
				}
			}
		},
		{
			"Sid" : "Not prod",
			"Effect" : "Allow",
			"Principal" : {"AWS" : "*"},
			"Action" : "kms:ReEncryptFrom",
			"Resource" : "*",
			"Condition" : {
				"StringNotEquals" : {
					"kms:EncryptionContext:Stage" :
					    [ "Production", "Restricted" ]
				},
				"StringNotEqualsIgnoreCase" :
				    {"kms:CallerAccount" : "999999999999"}
			}
		}
	]
});

/* ------------------------------------------------------------------ */
/* The evaluation table                                                */

struct tkey {
	const char *name;
	const char *v[4]; /* NULL-terminated; none: present but empty */
};

struct tcase {
	const char *policy;
	const char *principal;
	const char *action;
	enum ward_policy_decision want;
	const char *why; /* a substring of the reason */
	struct tkey keys[6];
};

#define ALLOW WARD_POLICY_ALLOW
#define DENY WARD_POLICY_IMPLICIT_DENY
#define XDENY WARD_POLICY_EXPLICIT_DENY
#define ATT(n) "kms:RecipientAttestation:" n
#define EC(n) "kms:EncryptionContext:" n
#define PCRS(a, b, c, d)                                                       \
	{ATT("ImageSha384"), {a}}, {ATT("PCR1"), {b}}, {ATT("PCR8"), {c}},     \
	    {ATT("PCR16"), {d}},                                               \
	{                                                                      \
		"ward:AttestationRoot",                                        \
		{                                                              \
			"aws-nitro"                                            \
		}                                                              \
	}

static const struct tcase cases[] = {
    /* cross-account: a named user of B, then the whole account B */
    {P_CROSS, BOB, "kms:Decrypt", ALLOW, "\"Bob decrypts\""},
    {P_CROSS, BOB, "kms:Encrypt", DENY, "no statement allows kms:Encrypt"},
    {P_CROSS, CAROL, "kms:Decrypt", DENY, "for " CAROL},
    {P_CROSS, ALICE, "kms:ScheduleKeyDeletion", ALLOW, "\"Own account\""},
    {P_CROSS, ROOT_A, "kms:Decrypt", ALLOW, "\"Own account\""},
    {P_ACCT_B, CAROL, "kms:Encrypt", ALLOW, "\"Account B\""},
    {P_ACCT_B, BOB, "kms:Decrypt", ALLOW, "\"Account B\""},
    {P_ACCT_B, ALICE, "kms:Decrypt", DENY, "no statement"},
    /* principals: exact user, role sessions, wrong principal, resource */
    {P_USERS, ALICE, "kms:Decrypt", ALLOW, "\"Alice\""},
    {P_USERS, MALLORY, "kms:Decrypt", DENY, "for " MALLORY},
    {P_USERS, ENCLAVE_SESSION, "kms:GenerateDataKey", ALLOW,
        "\"Enclave role\""},
    {P_USERS, "arn:aws:sts::111122223333:assumed-role/other/i-0abc",
        "kms:GenerateDataKey", DENY},
    {P_USERS, "arn:aws:iam::111122223333:user/enclave", "kms:GenerateDataKey",
        DENY},
    /* "*" with kms:CallerAccount, "*" bare */
    {P_STAR, ALICE, "kms:Decrypt", ALLOW, "\"Any caller of A\"",
        {{"kms:CallerAccount", {ACCT_A}}}},
    {P_STAR, BOB, "kms:Decrypt", DENY,
        "denied: statement \"Any caller of A\" condition StringEquals kms:CallerAccount not met",
        {{"kms:CallerAccount", {ACCT_B}}}},
    {P_STAR, BOB, "kms:Decrypt", DENY, "key absent"},
    {P_STAR, BOB, "kms:Encrypt", ALLOW, "\"Anyone encrypts\""},
    /* Deny beats Allow */
    {P_DENY, ALICE, "kms:Decrypt", XDENY,
        "explicitly denied by statement \"Deny prod\"",
        {{EC("Stage"), {"Production"}}}},
    {P_DENY, ALICE, "kms:Decrypt", XDENY, "\"Deny prod\"",
        {{EC("stage"), {"Restricted"}}}},
    {P_DENY, ALICE, "kms:Decrypt", ALLOW, "\"Own account\"",
        {{EC("Stage"), {"production"}}}},
    {P_DENY, ALICE, "kms:Decrypt", ALLOW, "\"Own account\""},
    {P_DENY, ALICE, "kms:Encrypt", ALLOW, NULL,
        {{EC("Stage"), {"Production"}}}},
    /* two context keys differing only in case: fail closed */
    {P_DENY, ALICE, "kms:Decrypt", XDENY, NULL,
        {{EC("Stage"), {"dev"}}, {EC("stage"), {"dev"}}}},
    /* actions: wildcards, '?', case, NotAction */
    {P_ACTIONS, ALICE, "kms:ReEncryptFrom", ALLOW, "\"Wildcards\""},
    {P_ACTIONS, ALICE, "kms:ReEncryptTo", ALLOW},
    {P_ACTIONS, ALICE, "KMS:reencryptto", ALLOW},
    {P_ACTIONS, ALICE, "kms:GetPublicKey", ALLOW},
    {P_ACTIONS, ALICE, "kms:GetKeyPolicy", ALLOW},
    {P_ACTIONS, ALICE, "kms:Encrypt", ALLOW},
    {P_ACTIONS, ALICE, "kms:DescribeKey", ALLOW},
    {P_ACTIONS, ALICE, "kms:Decrypt", DENY, "no statement allows kms:Decrypt"},
    {P_ACTIONS, ALICE, "kms:PutKeyPolicy", DENY},
    {P_ACTIONS, BOB, "kms:Decrypt", ALLOW, "\"All but deletion\""},
    {P_ACTIONS, BOB, "kms:ScheduleKeyDeletion", DENY},
    {P_ACTIONS, BOB, "kms:DeleteAlias", DENY},
    /* encryption context */
    {P_EC, ALICE, "kms:Decrypt", ALLOW, "\"App only\"",
        {{EC("appname"), {"ExampleApp"}},
            {"kms:EncryptionContextKeys", {"AppName"}}}},
    {P_EC, ALICE, "kms:Decrypt", DENY,
        "condition StringEquals kms:EncryptionContext:AppName not met",
        {{EC("AppName"), {"exampleapp"}},
            {"kms:EncryptionContextKeys", {"AppName"}}}},
    {P_EC, ALICE, "kms:Decrypt", DENY,
        "condition ForAllValues:StringEquals kms:EncryptionContextKeys not met",
        {{EC("AppName"), {"ExampleApp"}}, {EC("Extra"), {"x"}},
            {"kms:EncryptionContextKeys", {"AppName", "Extra"}}}},
    {P_EC, ALICE, "kms:Encrypt", ALLOW, "\"Any case\"",
        {{EC("AppName"), {"EXAMPLEAPP"}}}},
    {P_EC, ALICE, "kms:Encrypt", DENY, "key absent"},
    {P_SETS, ALICE, "kms:Encrypt", ALLOW, "\"Only AppName\""},
    {P_SETS, ALICE, "kms:Encrypt", ALLOW, NULL,
        {{"kms:EncryptionContextKeys", {NULL}}}},
    {P_SETS, ALICE, "kms:Encrypt", ALLOW, NULL,
        {{"kms:EncryptionContextKeys", {"AppName"}}}},
    {P_SETS, ALICE, "kms:Encrypt", DENY, NULL,
        {{"kms:EncryptionContextKeys", {"AppName", "Tenant"}}}},
    {P_SETS, ALICE, "kms:Decrypt", ALLOW, "\"Tenant or project\"",
        {{"kms:EncryptionContextKeys", {"AppName", "Project"}}}},
    {P_SETS, ALICE, "kms:Decrypt", DENY, NULL,
        {{"kms:EncryptionContextKeys", {"AppName"}}}},
    {P_SETS, ALICE, "kms:Decrypt", DENY, "ForAnyValue:StringEquals"},
    /* attestation: everything met, then each pin missed */
    {P_ATTEST, ENCLAVE_SESSION, "kms:Decrypt", ALLOW, "\"Enclave\"",
        {PCRS(H0, H1, H8, H16)}},
    {P_ATTEST, ENCLAVE_SESSION, "kms:GenerateDataKey", ALLOW, NULL,
        {PCRS(H0_UPPER, H1, H8, H16)}},
    {P_ATTEST, ENCLAVE_SESSION, "kms:Decrypt", DENY,
        "denied: statement \"Enclave\" condition StringEqualsIgnoreCase kms:RecipientAttestation:ImageSha384 not met",
        {PCRS(HX, H1, H8, H16)}},
    {P_ATTEST, ENCLAVE_SESSION, "kms:Decrypt", DENY,
        "kms:RecipientAttestation:PCR1 not met", {PCRS(H0, HX, H8, H16)}},
    {P_ATTEST, ENCLAVE_SESSION, "kms:Decrypt", DENY,
        "kms:RecipientAttestation:PCR8 not met", {PCRS(H0, H1, HX, H16)}},
    {P_ATTEST, ENCLAVE_SESSION, "kms:Decrypt", DENY,
        "kms:RecipientAttestation:PCR16 not met", {PCRS(H0, H1, H8, HX)}},
    {P_ATTEST, ENCLAVE_SESSION, "kms:Decrypt", DENY, "ImageSha384 not met",
        {PCRS(HZ, HZ, HZ, HZ)}},
    {P_ATTEST, ENCLAVE_SESSION, "kms:Decrypt", DENY,
        "ImageSha384 not met (key absent from the request)"},
    {P_PCR0_ROOT, ENCLAVE_SESSION, "kms:Decrypt", ALLOW, "\"Nitro only\"",
        {{"ward:AttestationRoot", {"aws-nitro"}}, {ATT("PCR0"), {H0}}}},
    {P_PCR0_ROOT, ENCLAVE_SESSION, "kms:Decrypt", DENY,
        "condition StringEqualsIgnoreCase kms:RecipientAttestation:PCR0 not met",
        {{"ward:AttestationRoot", {"aws-nitro"}}, {ATT("PCR0"), {HX}}}},
    {P_PCR0_ROOT, ENCLAVE_SESSION, "kms:Decrypt", DENY,
        "condition StringEquals ward:AttestationRoot not met",
        {{"ward:AttestationRoot", {"local"}}, {ATT("PCR0"), {H0}}}},
    /* StringLike / StringNotLike / ArnLike */
    {P_LIKE, ALICE, "kms:Decrypt", ALLOW, "\"Paths\"",
        {{EC("Path"), {"/data/x/y/file-1.bin"}}}},
    {P_LIKE, ALICE, "kms:Decrypt", ALLOW, NULL,
        {{EC("Path"), {"/data//file-\xc3\xa9.bin"}}}},
    {P_LIKE, ALICE, "kms:Decrypt", DENY, "StringLike",
        {{EC("Path"), {"/data/x/file-10.bin"}}}},
    {P_LIKE, ALICE, "kms:Decrypt", DENY, NULL,
        {{EC("Path"), {"/Data/x/file-1.bin"}}}},
    {P_LIKE, ALICE, "kms:Encrypt", ALLOW, "\"No temps\"",
        {{"aws:PrincipalArn", {ALICE}}}},
    {P_LIKE, "arn:aws:iam::111122223333:user/temp-1", "kms:Encrypt", DENY,
        "StringNotLike aws:PrincipalArn",
        {{"aws:PrincipalArn", {"arn:aws:iam::111122223333:user/temp-1"}}}},
    {P_LIKE, ROOT_A, "kms:Encrypt", DENY, "StringNotLike",
        {{"aws:PrincipalArn", {ROOT_A}}}},
    {P_LIKE, BOB, "kms:Encrypt", DENY, "ArnLike aws:PrincipalArn",
        {{"aws:PrincipalArn", {BOB}}}},
    /* Null, Bool, BoolIfExists */
    {P_NULL_BOOL, ALICE, "kms:Decrypt", XDENY,
        "explicitly denied by statement \"Owner required\""},
    {P_NULL_BOOL, ALICE, "kms:Decrypt", ALLOW, "\"Own account\"",
        {{EC("owner"), {"alice"}}}},
    {P_NULL_BOOL, ALICE, "kms:Encrypt", ALLOW},
    {P_NULL_BOOL, ALICE, "kms:GenerateRandom", ALLOW, "\"Attested random\"",
        {{ATT("ImageSha384"), {H0}}}},
    {P_NULL_BOOL, ALICE, "kms:GenerateRandom", DENY,
        "condition Null kms:RecipientAttestation:ImageSha384 not met"},
    {P_NULL_BOOL, ALICE, "kms:CreateGrant", ALLOW, "\"Grants for AWS\"",
        {{"kms:GrantIsForAWSResource", {"true"}}}},
    {P_NULL_BOOL, ALICE, "kms:CreateGrant", ALLOW, NULL,
        {{"kms:GrantIsForAWSResource", {"True"}}}},
    {P_NULL_BOOL, ALICE, "kms:CreateGrant", DENY, "Bool",
        {{"kms:GrantIsForAWSResource", {"false"}}}},
    {P_NULL_BOOL, ALICE, "kms:CreateGrant", DENY, "key absent"},
    {P_NULL_BOOL, ALICE, "kms:RetireGrant", ALLOW, "\"Retire unless not\""},
    {P_NULL_BOOL, ALICE, "kms:RetireGrant", DENY, "BoolIfExists",
        {{"kms:GrantIsForAWSResource", {"false"}}}},
    /* IfExists, values ORed, negated operators with several values */
    {P_VALUES, ALICE, "kms:Decrypt", ALLOW, "\"Tenant if any\""},
    {P_VALUES, ALICE, "kms:Decrypt", ALLOW, NULL, {{EC("Tenant"), {"t1"}}}},
    {P_VALUES, ALICE, "kms:Decrypt", DENY,
        "StringEqualsIfExists kms:EncryptionContext:Tenant",
        {{EC("Tenant"), {"t2"}}}},
    {P_VALUES, ALICE, "kms:Encrypt", ALLOW, "\"Two accounts\"",
        {{"kms:CallerAccount", {ACCT_A}}}},
    {P_VALUES, BOB, "kms:Encrypt", ALLOW, NULL,
        {{"kms:CallerAccount", {ACCT_B}}}},
    {P_VALUES, "arn:aws:iam::777788889999:user/eve", "kms:Encrypt", DENY, NULL,
        {{"kms:CallerAccount", {"777788889999"}}}},
    {P_VALUES, BOB, "kms:ReEncryptFrom", ALLOW, "\"Not prod\"",
        {{EC("Stage"), {"dev"}}, {"kms:CallerAccount", {ACCT_B}}}},
    {P_VALUES, BOB, "kms:ReEncryptFrom", ALLOW, NULL,
        {{"kms:CallerAccount", {ACCT_B}}}},
    {P_VALUES, BOB, "kms:ReEncryptFrom", DENY,
        "StringNotEquals kms:EncryptionContext:Stage",
        {{EC("Stage"), {"Restricted"}}, {"kms:CallerAccount", {ACCT_B}}}},
    {P_VALUES, BOB, "kms:ReEncryptFrom", DENY, NULL,
        {{EC("Stage"), {"Production"}}}},
    {P_VALUES, "arn:aws:iam::999999999999:user/x", "kms:ReEncryptFrom", DENY,
        "StringNotEqualsIgnoreCase kms:CallerAccount",
        {{"kms:CallerAccount", {"999999999999"}}}},
};

/* The account of an IAM/STS ARN, as the server would pass it. */
static void
account_of(const char *arn, char out[13])
{
	const char *p = arn;

	for (int i = 0; i < 4 && p != NULL; i++)
		if ((p = strchr(p, ':')) != NULL)
			p++;
	assert_non_null(p);
	memcpy(out, p, 12);
	out[12] = '\0';
}

static enum ward_policy_decision
eval(const struct ward_policy *p, const char *principal, const char *action,
    const struct tkey *tk, size_t ntk, char *why, size_t why_len)
{
	struct ward_policy_key keys[8];
	struct ward_policy_request rq = {0};
	char acct[13];
	size_t n = 0;

	assert_true(ntk <= 8);
	for (size_t i = 0; i < ntk && tk[i].name != NULL; i++, n++) {
		size_t nv = 0;

		while (nv < 4 && tk[i].v[nv] != NULL)
			nv++;
		keys[n] = (struct ward_policy_key){tk[i].name, tk[i].v, nv};
	}
	account_of(principal, acct);
	rq.principal_arn = principal;
	rq.account = acct;
	rq.action = action;
	rq.resource = KEY_ARN;
	rq.keys = keys;
	rq.nkeys = n;
	return ward_policy_evaluate(p, &rq, why, why_len);
}

static struct ward_policy *
parse_ok(const char *json)
{
	struct ward_policy *p = NULL;
	struct ward_kms_error e = {0};
	int r = ward_policy_parse(json, strlen(json), &p, &e);

	if (r != 0)
		fail_msg("parse failed: %s: %s\n%s", e.type, e.message, json);
	return p;
}

static void
test_evaluate_table(void **state)
{
	size_t n = sizeof(cases) / sizeof(cases[0]);

	assert_true(n >= 40);
	for (size_t i = 0; i < n; i++) {
		const struct tcase *tc = &cases[i];
		struct ward_policy *p = parse_ok(tc->policy);
		char why[512] = "";
		enum ward_policy_decision d = eval(p, tc->principal, tc->action,
		    tc->keys, 6, why, sizeof(why));

		if (d != tc->want)
			fail_msg("case %zu (%s %s): got %d, want %d: %s", i,
			    tc->principal, tc->action, d, tc->want, why);
		if (tc->why != NULL && strstr(why, tc->why) == NULL)
			fail_msg("case %zu: reason '%s' lacks '%s'", i, why,
			    tc->why);
		/* a reason always, and a denial never reads as an allow */
		assert_true(why[0] != '\0');
		assert_int_equal(strncmp(why, "allowed", 7) == 0, d == ALLOW);
		ward_policy_free(p);
	}
	print_message("%zu evaluation cases\n", n);
}

static void
test_default_policy(void **state)
{
	char *doc = ward_policy_default(ACCT_A), why[256];
	struct ward_policy *p;

	assert_non_null(doc);
	assert_string_equal(doc,
	    "{\"Id\":\"key-default-policy\",\"Version\":\"2012-10-17\",\"Statement\":[{\"Sid\":\"Enable IAM User Permissions\",\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"arn:aws:iam::111122223333:root\"},\"Action\":\"kms:*\",\"Resource\":\"*\"}]}");
	p = parse_ok(doc);
	assert_int_equal(
	    eval(p, ALICE, "kms:Decrypt", NULL, 0, why, sizeof(why)), ALLOW);
	assert_string_equal(
	    why, "allowed by statement \"Enable IAM User Permissions\"");
	assert_int_equal(
	    eval(p, ROOT_A, "kms:PutKeyPolicy", NULL, 0, NULL, 0), ALLOW);
	assert_int_equal(
	    eval(p, ENCLAVE_SESSION, "kms:GenerateDataKey", NULL, 0, NULL, 0),
	    ALLOW);
	assert_int_equal(
	    eval(p, BOB, "kms:Decrypt", NULL, 0, why, sizeof(why)), DENY);
	assert_string_equal(why, "no statement allows kms:Decrypt for " BOB);
	ward_policy_free(p);
	free(doc);

	assert_null(ward_policy_default("12345"));
	assert_null(ward_policy_default("1111222233334"));
	assert_null(ward_policy_default("11112222333x"));
	assert_null(ward_policy_default(NULL));
}

/* Without rq->account the account comes from the principal's ARN; no
 * why buffer is fine; a NULL policy denies. */
static void
test_request_edges(void **state)
{
	struct ward_policy *p = parse_ok(P_CROSS);
	struct ward_policy_request rq = {ALICE, NULL, "kms:Decrypt", KEY_ARN};
	char why[64];

	assert_int_equal(ward_policy_evaluate(p, &rq, NULL, 0), ALLOW);
	rq.principal_arn = "arn:aws:iam::111122223333:user/x";
	assert_int_equal(ward_policy_evaluate(p, &rq, why, 0), ALLOW);
	rq.principal_arn = "not-an-arn";
	assert_int_equal(ward_policy_evaluate(p, &rq, why, sizeof(why)), DENY);
	/* a short buffer gets a truncated, terminated reason */
	rq.principal_arn = BOB;
	rq.action = "kms:Encrypt";
	assert_int_equal(ward_policy_evaluate(p, &rq, why, 10), DENY);
	assert_int_equal(strlen(why), 9);
	/* an account that is not 12 digits never matches an account */
	rq.principal_arn = ALICE;
	rq.account = "1111";
	assert_int_equal(ward_policy_evaluate(p, &rq, NULL, 0), DENY);
	assert_int_equal(
	    ward_policy_evaluate(NULL, &rq, why, sizeof(why)), DENY);
	ward_policy_free(p);
}

/* ------------------------------------------------------------------ */
/* Malformed documents                                                 */

#define V "\"Version\": \"2012-10-17\", "
#define OK_ST                                                                  \
	"\"Effect\": \"Allow\", \"Principal\": {\"AWS\": \"111122223333\"}, "  \
	"\"Action\": \"kms:*\", \"Resource\": \"*\""
#define ST(extra) "{" V "\"Statement\": [{" OK_ST extra "}]}"
#define COND(c) ST(", \"Condition\": " c)

static const struct {
	const char *doc;
	const char *needle;
} malformed[] = {
    {"not json", "not valid JSON"},
    {"{\"Version\": \"2012-10-17\", \"Statement\": [{" OK_ST "}]",
        "not valid JSON"},
    {"[]", "must be a JSON object"},
    {"{\"Version\": \"2012-10-18\", \"Statement\": {" OK_ST "}}",
        "Version must be"},
    {"{\"Version\": 2012, \"Statement\": {" OK_ST "}}", "Version must be"},
    {"{\"Statement\": {" OK_ST "}}", "Version is required"},
    {"{" V "\"Id\": \"x\"}", "Statement is required"},
    {"{" V "\"Statement\": []}", "at least one statement"},
    {"{" V "\"Statement\": \"x\"}", "Statement must be an object or an array"},
    {"{" V "\"Statement\": [1]}", "Statement 1: a statement must be an object"},
    {"{" V "\"Statement\": {" OK_ST "}, \"Foo\": 1}",
        "unknown top-level element 'Foo'"},
    {"{" V "\"Id\": 7, \"Statement\": {" OK_ST "}}", "Id must be a string"},
    {"{" V "\"Statement\": [{\"Effect\": \"allow\", \"Principal\": \"*\", "
     "\"Action\": \"kms:*\", \"Resource\": \"*\"}]}",
        "Effect must be \"Allow\" or \"Deny\""},
    {"{" V "\"Statement\": [{\"Principal\": \"*\", \"Action\": \"kms:*\", "
     "\"Resource\": \"*\"}]}",
        "Effect is required"},
    {"{" V "\"Statement\": [{\"Effect\": \"Allow\", \"Principal\": \"*\", "
     "\"Resource\": \"*\"}]}",
        "Action (or NotAction) is required"},
    {ST(", \"NotAction\": \"kms:Decrypt\""), "Action or NotAction, not both"},
    {"{" V "\"Statement\": [{\"Effect\": \"Allow\", \"Action\": \"kms:*\", "
     "\"Resource\": \"*\"}]}",
        "Principal (or NotPrincipal) is required"},
    {ST(", \"NotPrincipal\": \"*\""), "Principal or NotPrincipal, not both"},
    {"{" V "\"Statement\": [{\"Effect\": \"Allow\", \"Principal\": \"*\", "
     "\"Action\": \"kms:*\"}]}",
        "Resource (or NotResource) is required"},
    {ST(", \"Actions\": \"kms:*\""), "unknown element 'Actions'"},
    {ST(", \"Sid\": 1"), "Sid must be a string"},
    {"{" V "\"Statement\": [{\"Sid\": \"a\", " OK_ST
     "}, {\"Sid\": \"a\", " OK_ST "}]}",
        "Statement 2: Sid 'a' is used by statement 1 too"},
    {"{" V "\"Statement\": [{\"Effect\": \"Allow\", \"Principal\": {\"AWS\": "
     "123}, \"Action\": \"kms:*\", \"Resource\": \"*\"}]}",
        "Principal must be a string or an array of strings"},
    {"{" V "\"Statement\": [{\"Effect\": \"Allow\", \"Principal\": {\"AWS\": "
     "[\"111122223333\", null]}, \"Action\": \"kms:*\", \"Resource\": "
     "\"*\"}]}",
        "Principal must be a string or an array of strings"},
    {"{" V "\"Statement\": [{\"Effect\": \"Allow\", \"Principal\": \"" ALICE
     "\", \"Action\": \"kms:*\", \"Resource\": \"*\"}]}",
        "Principal must be \"*\" or an object"},
    {"{" V "\"Statement\": [{\"Effect\": \"Allow\", \"Principal\": {}, "
     "\"Action\": \"kms:*\", \"Resource\": \"*\"}]}",
        "Principal must not be empty"},
    {"{" V "\"Statement\": [{\"Effect\": \"Allow\", \"Principal\": "
     "{\"Federated\": \"x\"}, \"Action\": \"kms:*\", \"Resource\": \"*\"}]}",
        "Principal type 'Federated' is not supported"},
    {"{" V "\"Statement\": [{\"Effect\": \"Allow\", \"Principal\": {\"AWS\": "
     "\"arn:aws:iam::111122223333:user/*\"}, \"Action\": \"kms:*\", "
     "\"Resource\": \"*\"}]}",
        "is not a valid principal"},
    {"{" V "\"Statement\": [{\"Effect\": \"Allow\", \"Principal\": {\"AWS\": "
     "\"alice\"}, \"Action\": \"kms:*\", \"Resource\": \"*\"}]}",
        "'alice' is not a valid principal"},
    {"{" V "\"Statement\": [{\"Effect\": \"Allow\", \"Principal\": \"*\", "
     "\"Action\": [], \"Resource\": \"*\"}]}",
        "Action must not be an empty array"},
    {"{" V "\"Statement\": [{\"Effect\": \"Allow\", \"Principal\": \"*\", "
     "\"Action\": \"Decrypt\", \"Resource\": \"*\"}]}",
        "must be prefaced by a vendor"},
    {"{" V "\"Statement\": [{\"Effect\": \"Allow\", \"Principal\": \"*\", "
     "\"Action\": \"kms:De crypt\", \"Resource\": \"*\"}]}",
        "is not a valid action name"},
    {"{" V "\"Statement\": [{\"Effect\": \"Allow\", \"Principal\": \"*\", "
     "\"Action\": \"kms:*\", \"Resource\": \"key/1\"}]}",
        "must be \"*\" or an ARN"},
    {COND("\"x\""), "Condition must be an object"},
    {COND("{\"StringEqulas\": {\"kms:CallerAccount\": \"1\"}}"),
        "Statement 1: Condition operator 'StringEqulas' is not supported"},
    {COND("{\"NumericLessThan\": {\"kms:CallerAccount\": 1}}"),
        "Condition operator 'NumericLessThan' is not supported"},
    {COND("{\"NullIfExists\": {\"kms:CallerAccount\": true}}"),
        "Null takes neither"},
    {COND("{\"ForAnyValue:Null\": {\"kms:CallerAccount\": true}}"),
        "Null takes neither"},
    {COND("{\"StringEquals\": \"x\"}"), "must map to an object"},
    {COND("{\"StringEquals\": {\"kms:CallerAccount\": {\"a\": 1}}}"),
        "must be a string, boolean or number"},
    {COND("{\"StringEquals\": {\"kms:CallerAccount\": [\"1\", [\"2\"]]}}"),
        "must be a string, boolean or number"},
    {COND("{\"StringEquals\": {\"kms:CallerAccount\": null}}"),
        "must be a string, boolean or number"},
    {COND("{\"StringEquals\": {\"kms:CallerAccount\": []}}"),
        "must not be an empty array"},
    {COND("{\"StringEquals\": {\"CallerAccount\": \"1\"}}"),
        "must be prefaced by a vendor"},
    {COND("{\"Bool\": {\"aws:SecureTransport\": \"yes\"}}"),
        "takes true or false"},
    {COND("{\"ForAllValues:StringEquals\": {\"kms:EncryptionContext:App\": "
          "\"x\"}}"),
        "OverlyPermissiveCondition:EncryptionContext: Using the ForAllValues set operator"},
    {COND("{\"ForAllValues:StringLike\": {\"KMS:encryptioncontext:app\": "
          "\"x\"}}"),
        "OverlyPermissiveCondition"},
    {ST(", \"Sid\": \"a\x01\""), "character U+0001 at offset"},
    {ST(", \"Sid\": \"a\x7f\""), "character U+007F"},
    {ST(", \"Sid\": \"a\xc2\x85\""), "character U+0085"},
    {ST(", \"Sid\": \"\xe4\xb8\xad\""), "character U+4E2D"},
    {ST(", \"Sid\": \"a\xff\""), "invalid UTF-8 byte 0xFF at offset"},
    {ST(", \"Sid\": \"a\\u0007\""), "contains character U+0007"},
    {COND("{\"StringEquals\": {\"kms:EncryptionContext:k\": \"\\u4e2d\"}}"),
        "contains character U+4E2D"},
    {COND("{\"StringEquals\": {\"kms:CallerAccount\": \"1\", "
          "\"kms:CallerAccount\": \"2\"}}"),
        "duplicate object key"},
    {"{" V "\"Statement\": {" OK_ST ", \"Effect\": \"Deny\"}}",
        "duplicate object key"},
};

static void
expect_malformed(const char *doc, size_t len, const char *needle)
{
	struct ward_policy *p = (struct ward_policy *)1;
	struct ward_kms_error e = {0};
	int r = ward_policy_parse(doc, len, &p, &e);

	if (r != -WARD_EFORMAT)
		fail_msg("accepted or wrong code %d: %s", r, doc);
	assert_null(p);
	assert_int_equal(e.status, 400);
	assert_string_equal(e.type, "MalformedPolicyDocumentException");
	if (strstr(e.message, needle) == NULL)
		fail_msg(
		    "message '%s' lacks '%s' for %s", e.message, needle, doc);
	assert_non_null(strstr(ward_errmsg(), e.message));
}

static void
test_malformed(void **state)
{
	size_t n = sizeof(malformed) / sizeof(malformed[0]);
	char *big;
	const char *base = "{" V "\"Statement\": {" OK_ST "}}";
	const char *second =
	    "{" V "\"Statement\": [{" OK_ST "}, {" OK_ST
	    ", \"Condition\": {\"StringEqulas\": {\"aws:x\": 1}}}]}";
	size_t blen = strlen(base);

	for (size_t i = 0; i < n; i++)
		expect_malformed(malformed[i].doc, strlen(malformed[i].doc),
		    malformed[i].needle);

	/* the statement is numbered */
	expect_malformed(second, strlen(second),
	    "Statement 2: Condition operator 'StringEqulas' is not supported");
	/* empty; a NUL inside (not NUL-terminated input) */
	expect_malformed("", 0, "empty");
	expect_malformed("{\"Version\"\0", 11, "U+0000");

	/* 32768 bytes pass, 32769 do not (padding is JSON whitespace) */
	big = malloc(WARD_KMS_POLICY_MAX + 2);
	assert_non_null(big);
	memset(big, ' ', WARD_KMS_POLICY_MAX + 1);
	memcpy(big, base, blen);
	big[WARD_KMS_POLICY_MAX + 1] = '\0';
	{
		struct ward_policy *p = NULL;

		ASSERT_OK(
		    ward_policy_parse(big, WARD_KMS_POLICY_MAX, &p, NULL));
		ward_policy_free(p);
	}
	expect_malformed(big, WARD_KMS_POLICY_MAX + 1, "at most 32768");
	free(big);
	print_message("%zu malformed documents\n", n + 4);
}

/* Documents AWS accepts that the parser must too. */
static void
test_accepted(void **state)
{
	static const char *const docs[] = {
	    J({
		    "Version" : "2012-10-17",
		    "Id" : "x",
		    "Statement" : {
			    "Effect" : "Deny",
			    "NotPrincipal" : {
				    "AWS" : [
					    "arn:aws:iam::111122223333:root",
					    "AIDAJQABLZS4A3QDU576Q"
				    ],
				    "Service" : "ec2.amazonaws.com"
			    },
			    "NotAction" : "kms:*",
			    "NotResource" : "*",
			    "Condition" : {}
		    }
	    }),
	    J({
		    "Version" : "2012-10-17",
		    "Statement" : [
			    {
				    "Sid" : "",
				    "Effect" : "Allow",
				    "Principal" : {"AWS" : "*"},
				    "Action" : "*",
				    "Resource" : ["*"],
				    "Condition" : {
					    "StringLikeIfExists" :
					        {"aws:x" : 1.5},
					    "ForAnyValue:StringNotEqualsIgnoreCase" :
					        {"kms:y" : [ true, 2 ]},
					    "ArnNotLikeIfExists" : {
						    "aws:PrincipalArn" :
						        "arn:*:*:*:*:*"
					    }
				    }
			    },
			    {
				    "Sid" : "",
				    "Effect" : "Allow",
				    "Principal" : {"Service" : [ "a", "b" ]},
				    "Action" : "kms:Decrypt",
				    "Resource" : "*"
			    }
		    ]
	    }),
	    "{\"Version\":\"2012-10-17\",\"Statement\":{\"Sid\":\"Caf\xc3\xa9 "
	    "\\u00e9\\t\",\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":"
	    "\"kms:*\",\"Resource\":\"*\"}}\r\n\t",
	};

	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++)
		ward_policy_free(parse_ok(docs[i]));
}

/* NotPrincipal, NotResource and service principals in evaluation. */
static void
test_not_principal(void **state)
{
	struct ward_policy *p = parse_ok(J({
		"Version" : "2012-10-17",
		"Statement" : [
			{
				"Sid" : "All",
				"Effect" : "Allow",
				"Principal" : "*",
				"Action" : "kms:*",
				"Resource" : "*"
			},
			{
				"Sid" : "Only admins",
				"Effect" : "Deny",
				"NotPrincipal" : {
					"AWS" :
					    ["arn:aws:iam::111122223333:user/alice"],
					"Service" : "logs.amazonaws.com"
				},
				"Action" : "kms:PutKeyPolicy",
				"Resource" : "*"
			},
			{
				"Sid" : "Other keys",
				"Effect" : "Deny",
				"Principal" : "*",
				"Action" : "kms:Sign",
				"NotResource" : "arn:aws:kms:*:*:key/1234*"
			},
			{
				"Sid" : "Services",
				"Effect" : "Allow",
				"Principal" : {"Service" : "kms.amazonaws.com"},
				"Action" : "kms:Verify",
				"Resource" : "*"
			}
		]
	}));
	char why[256];

	assert_int_equal(
	    eval(p, ALICE, "kms:PutKeyPolicy", NULL, 0, NULL, 0), ALLOW);
	assert_int_equal(
	    eval(p, MALLORY, "kms:PutKeyPolicy", NULL, 0, why, sizeof(why)),
	    XDENY);
	assert_string_equal(
	    why, "explicitly denied by statement \"Only admins\"");
	/* the key ARN matches the NotResource glob: the Deny does not apply */
	assert_int_equal(eval(p, BOB, "kms:Sign", NULL, 0, NULL, 0), ALLOW);
	ward_policy_free(p);
}

/* ------------------------------------------------------------------ */
/* ward kms pin                                                        */

static const char PINNED[] = J({
	"Version" : "2012-10-17",
	"Id" : "ours",
	"Statement" : [
		{
			"Sid" : "Admin",
			"Effect" : "Allow",
			"Principal" :
			    {"AWS" : "arn:aws:iam::111122223333:user/admin"},
			"Action" : [ "kms:Put*", "kms:Get*" ],
			"Resource" : "*",
			"Condition" :
			    {"Bool" : {"aws:MultiFactorAuthPresent" : true}}
		},
		{
			"Sid" : "Enclave",
			"Effect" : "Allow",
			"Principal" :
			    {"AWS" : "arn:aws:iam::111122223333:role/enclave"},
			"Action" : [ "kms:Decrypt", "kms:GenerateDataKey" ],
			"Resource" : "*",
			"Condition" : {
				"StringEquals" :
				    {"kms:EncryptionContext:App" : "x"},
				"StringEqualsIgnoreCase" : {
					"kms:RecipientAttestation:ImageSha384" :
					    "old0",
					"aws:PrincipalTag/team" : "blue"
				},
				"StringLike" :
				    {"kms:recipientattestation:pcr8" : "old8*"}
			}
		}
	]
});

static json_t *
load_json(const char *s)
{
	json_error_t err;
	json_t *j = json_loads(s, 0, &err);

	if (j == NULL)
		fail_msg("bad JSON: %s", err.text);
	return j;
}

static void
pin_set(struct ward_pcr_pin *p, unsigned index, const char *hex)
{
	p->index = index;
	snprintf(p->hex, sizeof(p->hex), "%s", hex);
}

#define ENCLAVE_KEYS(h0, h1)                                                   \
	{                                                                      \
		{EC("App"), {"x"}}, {ATT("ImageSha384"), {h0}},                \
		    {ATT("PCR0"), {h0}}, {ATT("PCR1"), {h1}},                  \
		    {ATT("PCR8"), {HX}},                                       \
		{                                                              \
			"aws:PrincipalTag/team",                               \
			{                                                      \
				"blue"                                         \
			}                                                      \
		}                                                              \
	}

static void
test_pin_replace(void **state)
{
	struct ward_pcr_pin pins[2];
	struct ward_kms_error e = {0};
	struct ward_policy *p;
	json_t *in, *res, *st0, *st1, *cond, *sei, *want;
	const char *k;
	char *out = NULL, why[512];
	const struct tkey good[] = ENCLAVE_KEYS(H0, H1),
	                  upper[] = ENCLAVE_KEYS(H0_UPPER, H1),
	                  bad1[] = ENCLAVE_KEYS(H0, HX),
	                  zero[] = ENCLAVE_KEYS(HZ, HZ),
	                  noapp[] = {
	                      {ATT("ImageSha384"), {H0}}, {ATT("PCR1"), {H1}}};

	/* uppercase input hex comes out lowercase */
	pin_set(&pins[0], 1, H1);
	pin_set(&pins[1], 0, H0_UPPER);
	ASSERT_OK(ward_policy_pin(
	    PINNED, strlen(PINNED), ACCT_A, pins, 2, false, &out, &e));
	in = load_json(PINNED);
	res = load_json(out);

	/* top level and the other statement as they were, in order */
	k = json_object_iter_key(json_object_iter(res));
	assert_string_equal(k, "Version");
	assert_string_equal(
	    json_string_value(json_object_get(res, "Id")), "ours");
	/* two statements as before, then one Deny per pin */
	assert_int_equal(json_array_size(json_object_get(res, "Statement")), 4);
	st0 = json_array_get(json_object_get(res, "Statement"), 0);
	assert_true(json_equal(
	    st0, json_array_get(json_object_get(in, "Statement"), 0)));
	/* the enclave statement: the other conditions kept, the attestation
	 * keys exactly the pins, PCR0 as ImageSha384, PCR8 gone */
	st1 = json_array_get(json_object_get(res, "Statement"), 1);
	cond = json_object_get(st1, "Condition");
	assert_int_equal(json_object_size(cond), 2);
	assert_true(json_equal(json_object_get(cond, "StringEquals"),
	    json_object_get(
	        json_object_get(
	            json_array_get(json_object_get(in, "Statement"), 1),
	            "Condition"),
	        "StringEquals")));
	assert_null(json_object_get(cond, "StringLike"));
	sei = json_object_get(cond, "StringEqualsIgnoreCase");
	want = json_pack("{s:s, s:s, s:s}", "aws:PrincipalTag/team", "blue",
	    ATT("ImageSha384"), H0, ATT("PCR1"), H1);
	assert_true(json_equal(sei, want));
	/* key order inside the operator: the survivor first, pins in PCR
	 * order */
	k = json_object_iter_key(json_object_iter(sei));
	assert_string_equal(k, "aws:PrincipalTag/team");
	json_decref(want);
	json_decref(in);
	json_decref(res);

	/* the result evaluates as pinned */
	p = parse_ok(out);
	assert_int_equal(
	    eval(p, ENCLAVE_SESSION, "kms:Decrypt", good, 6, why, sizeof(why)),
	    ALLOW);
	assert_string_equal(why, "allowed by statement \"Enclave\"");
	assert_int_equal(
	    eval(p, ENCLAVE_SESSION, "kms:Decrypt", upper, 6, NULL, 0), ALLOW);
	assert_int_equal(
	    eval(p, ENCLAVE_SESSION, "kms:Decrypt", bad1, 6, why, sizeof(why)),
	    XDENY);
	assert_non_null(strstr(why, "ward-pin-PCR1"));
	assert_int_equal(
	    eval(p, ENCLAVE_SESSION, "kms:Decrypt", zero, 6, NULL, 0), XDENY);
	assert_int_equal(
	    eval(p, ENCLAVE_SESSION, "kms:Decrypt", noapp, 2, why, sizeof(why)),
	    DENY);
	assert_non_null(strstr(why, "kms:EncryptionContext:App"));
	ward_policy_free(p);

	/* pinning again with the same pins is a fixed point */
	{
		char *again = NULL;

		ASSERT_OK(ward_policy_pin(
		    out, strlen(out), NULL, pins, 2, false, &again, &e));
		assert_string_equal(again, out);
		free(again);
	}
	free(out);
}

static void
test_pin_default_and_debug(void **state)
{
	struct ward_pcr_pin pins[3];
	struct ward_kms_error e = {0};
	char *def = ward_policy_default(ACCT_A), *out = NULL, why[512];
	struct ward_policy *p;
	json_t *res, *st, *sei, *want;
	const struct tkey good[] = {{ATT("ImageSha384"), {H0}},
	    {ATT("PCR8"), {H8}}},
	                  zero[] = {{ATT("ImageSha384"), {HZ}},
	                      {ATT("PCR8"), {HZ}}},
	                  mixed[] = {{ATT("ImageSha384"), {HZ}},
	                      {ATT("PCR8"), {H8}}},
	                  bad[] = {
	                      {ATT("ImageSha384"), {HX}}, {ATT("PCR8"), {H8}}};

	assert_non_null(def);
	pin_set(&pins[0], 0, H0);
	pin_set(&pins[1], 8, H8);
	ASSERT_OK(ward_policy_pin(
	    def, strlen(def), ACCT_A, pins, 2, false, &out, &e));
	res = load_json(out);
	assert_int_equal(json_array_size(json_object_get(res, "Statement")), 4);
	st = json_array_get(json_object_get(res, "Statement"), 1);
	assert_string_equal(
	    json_string_value(json_object_get(st, "Sid")), "ward-enclave");
	assert_string_equal(json_string_value(json_object_get(
	                        json_object_get(st, "Principal"), "AWS")),
	    ROOT_A);
	want = json_pack("[sss]", "kms:Decrypt", "kms:GenerateDataKey",
	    "kms:GenerateRandom");
	assert_true(json_equal(json_object_get(st, "Action"), want));
	json_decref(want);
	sei = json_object_get(
	    json_object_get(st, "Condition"), "StringEqualsIgnoreCase");
	assert_int_equal(json_object_size(sei), 2);
	assert_string_equal(
	    json_string_value(json_object_get(sei, ATT("ImageSha384"))), H0);
	assert_string_equal(
	    json_string_value(json_object_get(sei, ATT("PCR8"))), H8);
	/* the default statement survives */
	assert_string_equal(
	    json_string_value(json_object_get(
	        json_array_get(json_object_get(res, "Statement"), 0), "Sid")),
	    "Enable IAM User Permissions");
	json_decref(res);
	/* ...but no longer releases plaintext without the attestation: the
	 * pins' Deny statements beat it, while Encrypt and a plain
	 * GenerateDataKey (how the vendor encrypts) stay allowed */
	p = parse_ok(out);
	assert_int_equal(
	    eval(p, ALICE, "kms:Decrypt", good, 2, why, sizeof(why)), ALLOW);
	assert_int_equal(
	    eval(p, ALICE, "kms:Decrypt", bad, 2, why, sizeof(why)), XDENY);
	assert_non_null(strstr(why, "ward-pin-ImageSha384"));
	assert_int_equal(
	    eval(p, ALICE, "kms:Decrypt", NULL, 0, NULL, 0), XDENY);
	assert_int_equal(
	    eval(p, ALICE, "kms:ReEncryptFrom", NULL, 0, NULL, 0), XDENY);
	assert_int_equal(
	    eval(p, ALICE, "kms:Encrypt", NULL, 0, NULL, 0), ALLOW);
	assert_int_equal(
	    eval(p, ALICE, "kms:GenerateDataKey", NULL, 0, NULL, 0), ALLOW);
	ward_policy_free(p);
	free(out);

	/* a policy of a lone statement object: ours is appended and then
	 * decides alone for kms:Decrypt */
	{
		const char *lone = J({
			"Version" : "2012-10-17",
			"Statement" : {
				"Sid" : "Admin",
				"Effect" : "Allow",
				"Principal" :
				    {"AWS" : "arn:aws:iam::111122223333:root"},
				"Action" : "kms:PutKeyPolicy",
				"Resource" : "*"
			}
		});

		ASSERT_OK(ward_policy_pin(
		    lone, strlen(lone), ACCT_A, pins, 2, false, &out, &e));
		p = parse_ok(out);
		assert_int_equal(
		    eval(p, ALICE, "kms:Decrypt", good, 2, why, sizeof(why)),
		    ALLOW);
		assert_string_equal(
		    why, "allowed by statement \"ward-enclave\"");
		assert_int_equal(
		    eval(p, ALICE, "kms:Decrypt", bad, 2, why, sizeof(why)),
		    XDENY);
		assert_non_null(strstr(why, "ward-pin-ImageSha384"));
		assert_int_equal(
		    eval(p, ALICE, "kms:Decrypt", zero, 2, NULL, 0), XDENY);
		assert_int_equal(
		    eval(p, ALICE, "kms:PutKeyPolicy", NULL, 0, NULL, 0),
		    ALLOW);
		ward_policy_free(p);

		/* debug_allowed: each pin also takes the all-zero value */
		free(out);
		ASSERT_OK(ward_policy_pin(
		    lone, strlen(lone), ACCT_A, pins, 2, true, &out, &e));
		res = load_json(out);
		sei = json_object_get(
		    json_object_get(
		        json_array_get(json_object_get(res, "Statement"), 1),
		        "Condition"),
		    "StringEqualsIgnoreCase");
		want = json_pack("[ss]", H8, HZ);
		assert_true(
		    json_equal(json_object_get(sei, ATT("PCR8")), want));
		json_decref(want);
		json_decref(res);
		p = parse_ok(out);
		assert_int_equal(
		    eval(p, ALICE, "kms:Decrypt", good, 2, NULL, 0), ALLOW);
		assert_int_equal(
		    eval(p, ALICE, "kms:Decrypt", zero, 2, NULL, 0), ALLOW);
		/* ORed per key, ANDed across keys: a mix passes too */
		assert_int_equal(
		    eval(p, ALICE, "kms:Decrypt", mixed, 2, NULL, 0), ALLOW);
		assert_int_equal(
		    eval(p, ALICE, "kms:Decrypt", bad, 2, NULL, 0), XDENY);
		assert_int_equal(
		    eval(p, ALICE, "kms:Decrypt", NULL, 0, NULL, 0), XDENY);
		ward_policy_free(p);
		free(out);
	}
	/* an existing "ward-enclave" statement without pins gets them */
	{
		const char *ours = J({
			"Version" : "2012-10-17",
			"Statement" : [ {
				"Sid" : "ward-enclave",
				"Effect" : "Allow",
				"Principal" : {"AWS" : "111122223333"},
				"Action" : "kms:Decrypt",
				"Resource" : "*"
			} ]
		});

		ASSERT_OK(ward_policy_pin(
		    ours, strlen(ours), NULL, pins, 1, false, &out, &e));
		p = parse_ok(out);
		assert_int_equal(
		    eval(p, ALICE, "kms:Decrypt", NULL, 0, NULL, 0), XDENY);
		assert_int_equal(
		    eval(p, ALICE, "kms:Decrypt", good, 2, NULL, 0), ALLOW);
		ward_policy_free(p);
		free(out);
	}
	free(def);
}

/* The key service refuses conditions on keys it never fills in: a Deny
 * on one would silently never apply. */
static void
test_supported_keys(void **state)
{
	static const char *const yes[] = {"kms:CallerAccount",
	    "KMS:callerAccount", "kms:EncryptionContext:App",
	    "kms:EncryptionContextKeys", "aws:PrincipalArn",
	    "aws:PrincipalAccount", "ward:AttestationRoot",
	    "kms:RecipientAttestation:ImageSha384",
	    "kms:RecipientAttestation:PCR0", "kms:RecipientAttestation:PCR31"};
	static const char *const no[] = {"kms:GrantIsForAWSResource",
	    "kms:GrantOperations", "kms:EncryptionAlgorithm",
	    "aws:SecureTransport",
	    "kms:EncryptionContext:", "kms:RecipientAttestation:PCR32",
	    "kms:RecipientAttestation:PCR01", "kms:RecipientAttestation:PCR",
	    "kms:ViaService"};
	const char *pol = J({
		"Version" : "2012-10-17",
		"Statement" : [
			{
				"Effect" : "Allow",
				"Principal" : {"AWS" : "111122223333"},
				"Action" : "kms:*",
				"Resource" : "*",
				"Condition" : {
					"StringEquals" :
					    {"kms:CallerAccount" : "1"}
				}
			},
			{
				"Effect" : "Deny",
				"Principal" : "*",
				"Action" : "kms:CreateGrant",
				"Resource" : "*",
				"Condition" : {
					"Bool" : {
						"kms:GrantIsForAWSResource" :
						    false
					}
				}
			}
		]
	});
	struct ward_policy *p;

	(void)state;
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		assert_true(ward_policy_key_supported(yes[i]));
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		assert_false(ward_policy_key_supported(no[i]));
	p = parse_ok(pol);
	assert_string_equal(
	    ward_policy_unsupported_key(p), "kms:GrantIsForAWSResource");
	ward_policy_free(p);
	{
		char *def = ward_policy_default(ACCT_A);
		p = parse_ok(def);
		assert_null(ward_policy_unsupported_key(p));
		ward_policy_free(p);
		free(def);
	}
}

static void
test_pin_errors(void **state)
{
	struct ward_pcr_pin pins[2];
	struct ward_kms_error e;
	char *def = ward_policy_default(ACCT_A), *out = (char *)1;
	size_t dl = strlen(def);
	const char *deny = J({
		"Version" : "2012-10-17",
		"Statement" : [
			{
				"Effect" : "Allow",
				"Principal" : "*",
				"Action" : "kms:*",
				"Resource" : "*"
			},
			{
				"Sid" : "Guard",
				"Effect" : "Deny",
				"Principal" : "*",
				"Action" : "kms:Decrypt",
				"Resource" : "*",
				"Condition" : {
					"StringNotEqualsIgnoreCase" : {
						"kms:RecipientAttestation:PCR0" :
						    "x"
					}
				}
			}
		]
	});

	pin_set(&pins[0], 0, H0);
	pin_set(&pins[1], 32, H1);
	ASSERT_ERR(ward_policy_pin(def, dl, ACCT_A, pins, 2, false, &out, &e),
	    WARD_EUSAGE);
	assert_null(out);
	assert_string_equal(e.message, "PCR32: index must be 0..31");
	pin_set(&pins[1], 4, "abc");
	ASSERT_ERR(ward_policy_pin(def, dl, ACCT_A, pins, 2, false, &out, &e),
	    WARD_EUSAGE);
	assert_string_equal(e.message, "PCR4: value must be 96 hex digits");
	pin_set(&pins[1], 4, HEX("g0"));
	ASSERT_ERR(ward_policy_pin(def, dl, ACCT_A, pins, 2, false, &out, &e),
	    WARD_EUSAGE);
	memset(pins[1].hex, 'a', sizeof(pins[1].hex)); /* no NUL */
	ASSERT_ERR(ward_policy_pin(def, dl, ACCT_A, pins, 2, false, &out, &e),
	    WARD_EUSAGE);
	pin_set(&pins[1], 0, H1);
	ASSERT_ERR(ward_policy_pin(def, dl, ACCT_A, pins, 2, false, &out, &e),
	    WARD_EUSAGE);
	assert_string_equal(e.message, "PCR0 is pinned twice");
	ASSERT_ERR(ward_policy_pin(def, dl, ACCT_A, pins, 0, false, &out, &e),
	    WARD_EUSAGE);
	assert_string_equal(e.message, "no PCR to pin");
	/* appending needs the account */
	ASSERT_ERR(ward_policy_pin(def, dl, "1234", pins, 1, false, &out, &e),
	    WARD_EUSAGE);
	assert_non_null(strstr(e.message, "12-digit"));
	ASSERT_ERR(ward_policy_pin(def, dl, NULL, pins, 1, false, &out, &e),
	    WARD_EUSAGE);
	/* an invalid policy is not rewritten */
	ASSERT_ERR(ward_policy_pin("{\"Version\": 1}", 14, ACCT_A, pins, 1,
	               false, &out, &e),
	    WARD_EFORMAT);
	assert_string_equal(e.type, "MalformedPolicyDocumentException");
	/* nor a Deny carrying attestation keys */
	ASSERT_ERR(ward_policy_pin(
	               deny, strlen(deny), ACCT_A, pins, 1, false, &out, &e),
	    WARD_EUSAGE);
	assert_non_null(strstr(e.message, "statement \"Guard\" is a Deny"));
	assert_null(out);
	free(def);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_evaluate_table),
	    cmocka_unit_test(test_default_policy),
	    cmocka_unit_test(test_request_edges),
	    cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_accepted),
	    cmocka_unit_test(test_not_principal),
	    cmocka_unit_test(test_pin_replace),
	    cmocka_unit_test(test_pin_default_and_debug),
	    cmocka_unit_test(test_pin_errors),
	    cmocka_unit_test(test_supported_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
