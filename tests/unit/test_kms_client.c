/*
 * kms client, offline: credentials from the environment and from the
 * shared credentials and config files (profiles, precedence, broken and
 * oversized files, IMDS switched off or unreachable), the region, the
 * endpoint, AWS error parsing (§1.2 __type forms), key ARNs, and the KMS
 * keyring's checks that need no KMS. Calls to a KMS are tested end to end
 * against the real server elsewhere.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kms/client_internal.h"
#include "testutil.h"
#include "ward/kms.h"

static const char *const aws_env[] = {
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_KMS",
    "AWS_EC2_METADATA_DISABLED",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
    "AWS_CA_BUNDLE",
};

static char *home;

static int
setup(void **state)
{
	for (size_t i = 0; i < sizeof(aws_env) / sizeof(aws_env[0]); i++)
		unsetenv(aws_env[i]);
	/* Never ask a real metadata service (tests may run on EC2). */
	setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
	home = tu_mkdtemp();
	setenv("HOME", home, 1);
	return 0;
}

static int
teardown(void **state)
{
	tu_rmtree(home);
	free(home);
	home = NULL;
	return 0;
}

/* Write HOME/rel (creating HOME/.aws). */
static char *
put(const char *rel, const char *text)
{
	char *path = NULL, *dir = NULL;

	if (asprintf(&dir, "%s/.aws", home) < 0 ||
	    asprintf(&path, "%s/%s", home, rel) < 0)
		fail_msg("asprintf");
	mkdir(dir, 0700);
	free(dir);
	if (tu_write_file(path, text, strlen(text)) != 0)
		fail_msg("writing %s", path);
	return path;
}

static void
assert_msg_has(const char *needle)
{
	if (strstr(ward_errmsg(), needle) == NULL)
		fail_msg("message '%s' lacks '%s'", ward_errmsg(), needle);
}

static void
assert_msg_lacks(const char *needle)
{
	if (strstr(ward_errmsg(), needle) != NULL)
		fail_msg("message '%s' shows '%s'", ward_errmsg(), needle);
}

/* ---- credentials ------------------------------------------------------ */

static void
test_env_credentials(void **state)
{
	struct ward_aws_credentials c;

	setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "secret/env+1", 1);
	ASSERT_OK(ward_aws_credentials_load(NULL, &c));
	assert_string_equal(c.access_key_id, "AKIDENV");
	assert_string_equal(c.secret_access_key, "secret/env+1");
	assert_null(c.session_token);
	assert_string_equal(c.source, "environment");
	ward_aws_credentials_clear(&c);
	assert_null(c.access_key_id);
	assert_null(c.secret_access_key);

	setenv("AWS_SESSION_TOKEN", "tok==", 1);
	ASSERT_OK(ward_aws_credentials_load(NULL, &c));
	assert_string_equal(c.session_token, "tok==");
	ward_aws_credentials_clear(&c);
	assert_null(c.session_token);
	ward_aws_credentials_clear(&c); /* twice is harmless */
}

static void
test_env_partial(void **state)
{
	struct ward_aws_credentials c;

	setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
	ASSERT_ERR(ward_aws_credentials_load(NULL, &c), WARD_EUSAGE);
	assert_msg_has("AWS_SECRET_ACCESS_KEY is not");
	assert_null(c.access_key_id);
	unsetenv("AWS_ACCESS_KEY_ID");
	setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t", 1);
	ASSERT_ERR(ward_aws_credentials_load(NULL, &c), WARD_EUSAGE);
	assert_msg_has("AWS_ACCESS_KEY_ID is not");
	assert_msg_lacks("s3cr3t");
	/* a value with a control character is refused, not echoed */
	setenv("AWS_ACCESS_KEY_ID", "AKID\x1b[2J", 1);
	ASSERT_ERR(ward_aws_credentials_load(NULL, &c), WARD_EFORMAT);
	assert_msg_lacks("\x1b");
}

static const char creds_file[] = "# shared credentials\n"
                                 "; another comment\n"
                                 "\n"
                                 "[default]\n"
                                 "aws_access_key_id = AKIDDEFAULT\n"
                                 "aws_secret_access_key=secretdefault\n"
                                 "\n"
                                 "  [dev]  ; trailing comment\r\n"
                                 "\tAWS_ACCESS_KEY_ID   =   AKIDDEV\r\n"
                                 "aws_secret_access_key: secretdev\r\n"
                                 "aws_session_token = tokendev\r\n"
                                 "s3 =\n"
                                 "    max_concurrent_requests = 20\n"
                                 "[legacy]\n"
                                 "aws_access_key_id = AKIDLEGACY\n"
                                 "aws_secret_access_key = secretlegacy\n"
                                 "aws_security_token = tokenlegacy\n";

static void
test_shared_file(void **state)
{
	struct ward_aws_credentials c;
	char *p = put(".aws/credentials", creds_file);

	ASSERT_OK(ward_aws_credentials_load(NULL, &c));
	assert_string_equal(c.access_key_id, "AKIDDEFAULT");
	assert_string_equal(c.secret_access_key, "secretdefault");
	assert_null(c.session_token);
	assert_string_equal(c.source, "shared-credentials-file");
	ward_aws_credentials_clear(&c);

	ASSERT_OK(ward_aws_credentials_load("dev", &c));
	assert_string_equal(c.access_key_id, "AKIDDEV");
	assert_string_equal(c.secret_access_key, "secretdev");
	assert_string_equal(c.session_token, "tokendev");
	ward_aws_credentials_clear(&c);

	setenv("AWS_PROFILE", "legacy", 1);
	ASSERT_OK(ward_aws_credentials_load(NULL, &c));
	assert_string_equal(c.access_key_id, "AKIDLEGACY");
	assert_string_equal(c.session_token, "tokenlegacy");
	ward_aws_credentials_clear(&c);
	free(p);
}

static void
test_config_file(void **state)
{
	struct ward_aws_credentials c;
	char *p = put(".aws/config",
	    "[default]\n"
	    "region = eu-west-1\n"
	    "aws_access_key_id = AKIDCONFDEFAULT\n"
	    "aws_secret_access_key = secretconfdefault\n"
	    "[profile   ops]\n"
	    "region = us-east-2\n"
	    "aws_access_key_id = AKIDOPS\n"
	    "aws_secret_access_key = secretops\n"
	    "[ops]\n"
	    "aws_access_key_id = AKIDWRONG\n"
	    "aws_secret_access_key = secretwrong\n");

	ASSERT_OK(ward_aws_credentials_load(NULL, &c));
	assert_string_equal(c.access_key_id, "AKIDCONFDEFAULT");
	assert_string_equal(c.source, "config-file");
	ward_aws_credentials_clear(&c);
	/* "[ops]" is not a profile in the config file; "[profile ops]" is */
	ASSERT_OK(ward_aws_credentials_load("ops", &c));
	assert_string_equal(c.access_key_id, "AKIDOPS");
	assert_string_equal(c.secret_access_key, "secretops");
	ward_aws_credentials_clear(&c);
	free(p);
}

static void
test_precedence(void **state)
{
	struct ward_aws_credentials c;
	char *cred = put(".aws/credentials",
	    "[default]\naws_access_key_id = AKIDFILE\n"
	    "aws_secret_access_key = secretfile\n"
	    "[dev]\naws_access_key_id = AKIDDEV\n"
	    "aws_secret_access_key = secretdev\n");
	char *conf = put(".aws/config",
	    "[default]\naws_access_key_id = AKIDCONF\n"
	    "aws_secret_access_key = secretconf\n");
	char *alt;

	/* the environment first */
	setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "secretenv", 1);
	ASSERT_OK(ward_aws_credentials_load(NULL, &c));
	assert_string_equal(c.access_key_id, "AKIDENV");
	ward_aws_credentials_clear(&c);
	/* ... also with AWS_PROFILE ... */
	setenv("AWS_PROFILE", "dev", 1);
	ASSERT_OK(ward_aws_credentials_load(NULL, &c));
	assert_string_equal(c.access_key_id, "AKIDENV");
	ward_aws_credentials_clear(&c);
	unsetenv("AWS_PROFILE");
	/* ... but an explicit profile overrides it (botocore) */
	ASSERT_OK(ward_aws_credentials_load("dev", &c));
	assert_string_equal(c.access_key_id, "AKIDDEV");
	ward_aws_credentials_clear(&c);
	ASSERT_OK(ward_aws_credentials_load("default", &c));
	assert_string_equal(c.access_key_id, "AKIDFILE");
	ward_aws_credentials_clear(&c);
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");

	/* the credentials file before the config file */
	ASSERT_OK(ward_aws_credentials_load(NULL, &c));
	assert_string_equal(c.access_key_id, "AKIDFILE");
	ward_aws_credentials_clear(&c);

	/* AWS_SHARED_CREDENTIALS_FILE replaces ~/.aws/credentials */
	alt = put("other-creds",
	    "[default]\naws_access_key_id = AKIDALT\n"
	    "aws_secret_access_key = secretalt\n");
	setenv("AWS_SHARED_CREDENTIALS_FILE", alt, 1);
	ASSERT_OK(ward_aws_credentials_load(NULL, &c));
	assert_string_equal(c.access_key_id, "AKIDALT");
	ward_aws_credentials_clear(&c);
	/* an absent file is skipped: the config file answers */
	setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/creds", 1);
	ASSERT_OK(ward_aws_credentials_load(NULL, &c));
	assert_string_equal(c.access_key_id, "AKIDCONF");
	ward_aws_credentials_clear(&c);
	/* ~/ is expanded */
	setenv("AWS_SHARED_CREDENTIALS_FILE", "~/other-creds", 1);
	ASSERT_OK(ward_aws_credentials_load(NULL, &c));
	assert_string_equal(c.access_key_id, "AKIDALT");
	ward_aws_credentials_clear(&c);
	/* AWS_CONFIG_FILE replaces ~/.aws/config */
	setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null", 1);
	setenv("AWS_CONFIG_FILE", alt, 1);
	ASSERT_OK(ward_aws_credentials_load(NULL, &c));
	assert_string_equal(c.access_key_id, "AKIDALT");
	assert_string_equal(c.source, "config-file");
	ward_aws_credentials_clear(&c);
	free(cred);
	free(conf);
	free(alt);
}

static void
test_missing_secret(void **state)
{
	struct ward_aws_credentials c;
	char *p = put(".aws/credentials",
	    "[default]\naws_access_key_id = AKIDHALF\n"
	    "[other]\naws_secret_access_key = onlysecret\n");

	ASSERT_ERR(ward_aws_credentials_load(NULL, &c), WARD_EUSAGE);
	assert_msg_has("profile 'default'");
	assert_msg_has("has aws_access_key_id but no aws_secret_access_key");
	assert_msg_lacks("AKIDHALF");
	assert_null(c.access_key_id);
	ASSERT_ERR(ward_aws_credentials_load("other", &c), WARD_EUSAGE);
	assert_msg_has("has aws_secret_access_key but no aws_access_key_id");
	assert_msg_lacks("onlysecret");
	/* an empty value is a missing one */
	free(p);
	p = put(".aws/credentials",
	    "[default]\naws_access_key_id = AKID\n"
	    "aws_secret_access_key =\n");
	ASSERT_ERR(ward_aws_credentials_load(NULL, &c), WARD_EUSAGE);
	assert_msg_has("no aws_secret_access_key");
	free(p);
}

static void
expect_bad_file(const char *text, size_t len, int code, const char *why)
{
	struct ward_aws_credentials c;
	char *path = NULL;

	if (asprintf(&path, "%s/bad-creds", home) < 0)
		fail_msg("asprintf");
	if (tu_write_file(path, text, len) != 0)
		fail_msg("writing %s", path);
	setenv("AWS_SHARED_CREDENTIALS_FILE", path, 1);
	ASSERT_ERR(ward_aws_credentials_load(NULL, &c), code);
	assert_msg_has(path);
	assert_msg_has(why);
	assert_msg_lacks("SECRETVALUE");
	assert_null(c.secret_access_key);
	free(path);
}

/* A literal file (NULs included). */
#define BAD(text, code, why) expect_bad_file(text, sizeof(text) - 1, code, why)

static void
test_bad_files(void **state)
{
	static const char nul[] = "[default]\naws_secret_access_key = "
	                          "SECRETVALUE\0\n";
	struct ward_aws_credentials c;
	size_t big = WARD_AWS_INI_FILE_MAX + 1;
	char *text = malloc(big), *dir;

	/* oversized file: comments only, still refused */
	memset(text, '#', big);
	for (size_t i = 80; i < big; i += 81)
		text[i] = '\n';
	expect_bad_file(text, big, WARD_ELIMIT, "larger than");
	/* an overlong line */
	memcpy(text, "[default]\naws_secret_access_key = SECRETVALUE", 45);
	memset(text + 45, 'x', WARD_AWS_INI_LINE_MAX);
	expect_bad_file(
	    text, 45 + WARD_AWS_INI_LINE_MAX, WARD_ELIMIT, ":2: line longer");
	free(text);

	BAD("aws_secret_access_key = SECRETVALUE\n[default]\n", WARD_EFORMAT,
	    ":1: a setting before any [section]");
	BAD("[default]\nSECRETVALUE\n", WARD_EFORMAT,
	    ":2: expected 'name = value'");
	BAD("[default\naws_secret_access_key = SECRETVALUE\n", WARD_EFORMAT,
	    ":1: section header without ']'");
	BAD("[]\n", WARD_EFORMAT, "empty section name");
	BAD("[default] x\n", WARD_EFORMAT, "text after");
	BAD("[default]\n= SECRETVALUE\n", WARD_EFORMAT, "without a name");
	BAD(nul, WARD_EFORMAT, "NUL byte");
	BAD("[default]\naws_secret_access_key = SECRETVALUE\n"
	    "aws_secret_access_key = SECRETVALUE\n",
	    WARD_EFORMAT, "set twice");

	/* a directory where the file should be */
	if (asprintf(&dir, "%s/adir", home) < 0)
		fail_msg("asprintf");
	mkdir(dir, 0700);
	setenv("AWS_SHARED_CREDENTIALS_FILE", dir, 1);
	ASSERT_ERR(ward_aws_credentials_load(NULL, &c), WARD_EFORMAT);
	assert_msg_has("not a regular file");
	free(dir);

	/* garbage in an unrelated profile still makes the file unusable */
	BAD("[default]\naws_access_key_id = A\n"
	    "aws_secret_access_key = SECRETVALUE\n"
	    "[x]\nnonsense\n",
	    WARD_EFORMAT, ":5: expected");
}

static void
test_profiles_missing(void **state)
{
	struct ward_aws_credentials c;
	char *p = put(".aws/credentials", "[default]\nregion = x\n");

	/* a named profile must exist */
	setenv("AWS_PROFILE", "nope", 1);
	ASSERT_ERR(ward_aws_credentials_load(NULL, &c), WARD_EUSAGE);
	assert_msg_has("AWS profile 'nope' not found in");
	assert_msg_has(p);
	unsetenv("AWS_PROFILE");
	ASSERT_ERR(ward_aws_credentials_load("nope", &c), WARD_EUSAGE);
	assert_msg_has("'nope' not found");
	/* the default profile may hold none: then IMDS, here disabled */
	ASSERT_ERR(ward_aws_credentials_load(NULL, &c), WARD_EUSAGE);
	assert_msg_has("no AWS credentials found");
	assert_msg_has("not in the environment");
	assert_msg_has("profile 'default'");
	assert_msg_has("AWS_EC2_METADATA_DISABLED");
	/* names that cannot be sections */
	ASSERT_ERR(ward_aws_credentials_load("a]b", &c), WARD_EUSAGE);
	free(p);
	/* role_arn and friends are named, not silently skipped */
	p = put(".aws/config",
	    "[profile assume]\nrole_arn = arn:aws:iam::1:role/r\n"
	    "source_profile = default\n");
	ASSERT_ERR(ward_aws_credentials_load("assume", &c), WARD_EUSAGE);
	assert_msg_has("role_arn");
	assert_msg_has("does not support");
	free(p);
}

static void
test_imds(void **state)
{
	struct ward_aws_credentials c;

	/* "true" in any case disables it */
	setenv("AWS_EC2_METADATA_DISABLED", "TRUE", 1);
	ASSERT_ERR(ward_aws_credentials_load(NULL, &c), WARD_EUSAGE);
	assert_msg_has("disabled (AWS_EC2_METADATA_DISABLED)");
	/* enabled, at an endpoint where nothing listens: a quick, clear
	 * failure naming the endpoint */
	unsetenv("AWS_EC2_METADATA_DISABLED");
	setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:1/", 1);
	ASSERT_ERR(ward_aws_credentials_load(NULL, &c), WARD_EUSAGE);
	assert_msg_has("instance metadata service did not answer at "
	               "http://127.0.0.1:1/latest/api/token");
	assert_null(c.access_key_id);
	setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "ftp://x", 1);
	ASSERT_ERR(ward_aws_credentials_load(NULL, &c), WARD_EUSAGE);
	assert_msg_has("AWS_EC2_METADATA_SERVICE_ENDPOINT");
}

/* ---- region and endpoint ---------------------------------------------- */

static void
expect_region(const char *arg, const char *profile, const char *want)
{
	char *r = ward_aws_region(arg, profile);

	if (want == NULL) {
		if (r != NULL)
			fail_msg("region %s, expected none", r);
		return;
	}
	if (r == NULL)
		fail_msg("no region, expected %s (%s)", want, ward_errmsg());
	assert_string_equal(r, want);
	free(r);
}

static void
test_region(void **state)
{
	char *p, *out = NULL;

	expect_region(NULL, NULL, NULL);
	p = put(".aws/config",
	    "[default]\nregion = eu-central-1\n"
	    "[profile dev]\nregion = ap-south-1\n");
	expect_region(NULL, NULL, "eu-central-1");
	expect_region(NULL, "dev", "ap-south-1");
	setenv("AWS_PROFILE", "dev", 1);
	expect_region(NULL, NULL, "ap-south-1");
	expect_region(NULL, "default", "eu-central-1");
	setenv("AWS_DEFAULT_REGION", "us-west-1", 1);
	expect_region(NULL, NULL, "us-west-1");
	setenv("AWS_REGION", "us-west-2", 1);
	expect_region(NULL, NULL, "us-west-2");
	expect_region("sa-east-1", NULL, "sa-east-1");
	unsetenv("AWS_REGION");
	unsetenv("AWS_DEFAULT_REGION");
	unsetenv("AWS_PROFILE");
	expect_region(NULL, "unknown", NULL);
	free(p);
	/* a broken config file is an error, not "no region" */
	p = put(".aws/config", "region = x\n");
	ASSERT_ERR(ward_aws_region_resolve(NULL, NULL, &out), WARD_EFORMAT);
	assert_null(out);
	free(p);

	ASSERT_OK(ward_aws_region_check("us-east-1"));
	ASSERT_ERR(ward_aws_region_check(""), WARD_EUSAGE);
	ASSERT_ERR(ward_aws_region_check("us-east-1.evil.com"), WARD_EUSAGE);
	ASSERT_ERR(ward_aws_region_check("US-EAST-1"), WARD_EUSAGE);
}

static void
expect_endpoint(
    const char *arg, const char *region, const char *url, const char *host)
{
	char *u = NULL, *h = NULL;

	ASSERT_OK(ward_kms_endpoint_resolve(arg, region, &u, &h));
	assert_string_equal(u, url);
	assert_string_equal(h, host);
	free(u);
	free(h);
}

static void
expect_bad_endpoint(const char *arg, const char *why)
{
	char *u = (char *)"x", *h = (char *)"x";

	ASSERT_ERR(
	    ward_kms_endpoint_resolve(arg, "us-east-1", &u, &h), WARD_EUSAGE);
	assert_null(u);
	assert_null(h);
	assert_msg_has(why);
}

static void
test_endpoint(void **state)
{
	char *u, *h;

	expect_endpoint(NULL, "us-east-1",
	    "https://kms.us-east-1.amazonaws.com/",
	    "kms.us-east-1.amazonaws.com");
	expect_endpoint(NULL, "cn-north-1",
	    "https://kms.cn-north-1.amazonaws.com.cn/",
	    "kms.cn-north-1.amazonaws.com.cn");
	ASSERT_ERR(ward_kms_endpoint_resolve(NULL, NULL, &u, &h), WARD_EUSAGE);
	assert_msg_has("AWS_REGION");
	ASSERT_ERR(ward_kms_endpoint_resolve(NULL, "a.b", &u, &h), WARD_EUSAGE);

	/* the port stays in the Host value, as it is signed */
	expect_endpoint("http://127.0.0.1:4599", NULL, "http://127.0.0.1:4599/",
	    "127.0.0.1:4599");
	expect_endpoint(
	    "HTTPS://kms.local/", "x", "https://kms.local/", "kms.local");
	expect_endpoint(
	    "http://[::1]:8080/", NULL, "http://[::1]:8080/", "[::1]:8080");
	expect_endpoint(
	    "http://localhost", NULL, "http://localhost/", "localhost");

	setenv("AWS_ENDPOINT_URL", "http://generic:1", 1);
	expect_endpoint(NULL, "us-east-1", "http://generic:1/", "generic:1");
	setenv("AWS_ENDPOINT_URL_KMS", "http://kms-only:2", 1);
	expect_endpoint(NULL, "us-east-1", "http://kms-only:2/", "kms-only:2");
	expect_endpoint("http://explicit:3", "us-east-1", "http://explicit:3/",
	    "explicit:3");
	setenv("AWS_ENDPOINT_URL_KMS", "ftp://kms-only", 1);
	expect_bad_endpoint(NULL, "AWS_ENDPOINT_URL_KMS");
	unsetenv("AWS_ENDPOINT_URL_KMS");
	unsetenv("AWS_ENDPOINT_URL");

	expect_bad_endpoint("file:///etc/passwd", "only http:// and https://");
	expect_bad_endpoint("kms.local:4599", "only http:// and https://");
	expect_bad_endpoint(
	    "http://user:pw@kms.local/", "credentials in the URL");
	expect_bad_endpoint("http://kms.local/path", "a path, query");
	expect_bad_endpoint("http://kms.local/?a=b", "a path, query");
	expect_bad_endpoint("http://kms.local:0/", "HOST[:PORT]");
	expect_bad_endpoint("http://kms.local:65536/", "HOST[:PORT]");
	expect_bad_endpoint("http://kms.local:80x/", "HOST[:PORT]");
	expect_bad_endpoint("http://", "HOST[:PORT]");
	expect_bad_endpoint("http://kms local/", "HOST[:PORT]");
	expect_bad_endpoint("http://[::1/", "HOST[:PORT]");
	expect_bad_endpoint("http://kms.local\r\nX-Evil: 1/", "HOST[:PORT]");
}

/* ---- errors ----------------------------------------------------------- */

static void
expect_type(const char *raw, const char *want)
{
	char out[64];

	ward_kms_error_type_sanitize(raw, strlen(raw), out, sizeof(out));
	assert_string_equal(out, want);
}

static void
test_error_type(void **state)
{
	/* the forms of kms-and-esdk.md §1.2 */
	expect_type("FooError", "FooError");
	expect_type(
	    "FooError:http://internal.amazon.com/coral/com.amazon.coral.validate/",
	    "FooError");
	expect_type("aws.protocoltests.restjson#FooError", "FooError");
	expect_type(
	    "aws.protocoltests.restjson#FooError:http://internal.amazon.com/coral/com.amazon.coral.validate/",
	    "FooError");
	expect_type(
	    "com.amazonaws.kms#AccessDeniedException", "AccessDeniedException");
	expect_type(" NotFoundException\r\n", "NotFoundException");
	expect_type("", "");
	expect_type("a#b#C", "C");
	expect_type("bad\x01type", "");
	expect_type("two words", "");
}

static void
test_error_parse(void **state)
{
	struct ward_kms_error e;
	const char *b;

	b = "{\"__type\":\"AccessDeniedException\",\"message\":\"User: arn:aws:iam::111122223333:user/u is not authorized to perform: kms:Decrypt\"}";
	ASSERT_ERR(ward_kms_parse_error(
	               "Decrypt", 400, NULL, (const uint8_t *)b, strlen(b), &e),
	    WARD_EAUTH);
	assert_int_equal(e.status, 400);
	assert_string_equal(e.type, "AccessDeniedException");
	assert_string_equal(e.message,
	    "User: arn:aws:iam::111122223333:user/u is not authorized to perform: kms:Decrypt");
	assert_string_equal(ward_errmsg(),
	    "KMS Decrypt: AccessDeniedException: User: arn:aws:iam::111122223333:user/u is not authorized to perform: kms:Decrypt");

	/* capital Message, qualified type */
	b = "{\"__type\":\"com.amazonaws.kms#InvalidCiphertextException:http://x\",\"Message\":\"bad\"}";
	ASSERT_ERR(ward_kms_parse_error(
	               "Decrypt", 400, NULL, (const uint8_t *)b, strlen(b), &e),
	    WARD_EKEY);
	assert_string_equal(e.type, "InvalidCiphertextException");
	assert_string_equal(
	    ward_errmsg(), "KMS Decrypt: InvalidCiphertextException: bad");

	/* the type only in the header */
	b = "{\"message\":\"no such key\"}";
	ASSERT_ERR(ward_kms_parse_error("Encrypt", 400,
	               "NotFoundException:http://internal", (const uint8_t *)b,
	               strlen(b), &e),
	    WARD_EFORMAT);
	assert_string_equal(e.type, "NotFoundException");
	assert_string_equal(
	    ward_errmsg(), "KMS Encrypt: NotFoundException: no such key");

	/* "code" as the type member */
	b = "{\"code\":\"IncorrectKeyException\",\"message\":\"m\"}";
	ASSERT_ERR(ward_kms_parse_error(
	               "Decrypt", 400, NULL, (const uint8_t *)b, strlen(b), &e),
	    WARD_EKEY);
	assert_string_equal(e.type, "IncorrectKeyException");

	/* signature failures are authentication failures */
	b = "{\"__type\":\"InvalidSignatureException\",\"message\":\"Signature expired\"}";
	ASSERT_ERR(ward_kms_parse_error(
	               "Decrypt", 400, NULL, (const uint8_t *)b, strlen(b), &e),
	    WARD_EAUTH);
	b = "{\"__type\":\"UnrecognizedClientException\"}";
	ASSERT_ERR(ward_kms_parse_error(
	               "Decrypt", 400, NULL, (const uint8_t *)b, strlen(b), &e),
	    WARD_EAUTH);
	assert_string_equal(ward_errmsg(),
	    "KMS Decrypt: UnrecognizedClientException: HTTP status 400");

	/* validation */
	b = "{\"__type\":\"ValidationException\",\"message\":\"1 validation error detected\"}";
	ASSERT_ERR(ward_kms_parse_error("GenerateDataKey", 400, NULL,
	               (const uint8_t *)b, strlen(b), &e),
	    WARD_EFORMAT);

	/* a proxy's HTML error page: no AWS error at all */
	b = "<html>Bad Gateway</html>";
	ASSERT_ERR(ward_kms_parse_error(
	               "Decrypt", 502, NULL, (const uint8_t *)b, strlen(b), &e),
	    WARD_EIO);
	assert_string_equal(e.type, "UnknownError");
	assert_string_equal(
	    ward_errmsg(), "KMS Decrypt: UnknownError: HTTP status 502");
	ASSERT_ERR(ward_kms_parse_error("Decrypt", 403, NULL, NULL, 0, &e),
	    WARD_EAUTH);
	b = "{\"__type\":\"KMSInternalException\",\"message\":\"x\"}";
	ASSERT_ERR(ward_kms_parse_error("Decrypt", 500, NULL,
	               (const uint8_t *)b, strlen(b), NULL),
	    WARD_EIO);

	/* the server's text cannot drive the terminal */
	b = "{\"__type\":\"AccessDeniedException\",\"message\":\"a\\u001b[2Jb\\nc\"}";
	ASSERT_ERR(ward_kms_parse_error(
	               "Decrypt", 400, NULL, (const uint8_t *)b, strlen(b), &e),
	    WARD_EAUTH);
	assert_string_equal(e.message, "a?[2Jb?c");
	assert_msg_lacks("\x1b");
}

/* ---- ARNs and the keyring --------------------------------------------- */

static void
test_arn(void **state)
{
	static const char key[] =
	    "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
	const char *region;
	size_t rlen;

	assert_true(ward_kms_arn_is_key(key, strlen(key), &region, &rlen));
	assert_int_equal(rlen, 9);
	assert_memory_equal(region, "us-west-2", 9);
	assert_true(ward_kms_arn_is_key(
	    "arn:aws-cn:kms:cn-north-1:1:key/a/b", 35, NULL, NULL));
	assert_false(ward_kms_arn_is_key(
	    "arn:aws:kms:us-west-2:111122223333:alias/x", 42, NULL, NULL));
	assert_false(ward_kms_arn_is_key(
	    "arn:aws:kms:us-west-2:111122223333:key/", 39, NULL, NULL));
	assert_false(ward_kms_arn_is_key(
	    "arn:aws:iam:us-west-2:111122223333:key/x", 40, NULL, NULL));
	assert_false(
	    ward_kms_arn_is_key("arn::kms:us-west-2:1:key/x", 26, NULL, NULL));
	assert_false(
	    ward_kms_arn_is_key("arn:aws:kms::1:key/x", 20, NULL, NULL));
	assert_false(
	    ward_kms_arn_is_key("arn:aws:kms:r::key/x", 20, NULL, NULL));
	assert_false(
	    ward_kms_arn_is_key("arn:aws:kms:r:1:keyx", 20, NULL, NULL));
	assert_false(ward_kms_arn_is_key("arn:aws:kms:r:1", 15, NULL, NULL));
	assert_false(ward_kms_arn_is_key(
	    "1234abcd-12ab-34cd-56ef-1234567890ab", 36, NULL, NULL));
	assert_false(
	    ward_kms_arn_is_key("arn:aws:kms:r:1:key/a\nb", 23, NULL, NULL));
	assert_false(ward_kms_arn_is_key("", 0, NULL, NULL));
}

static struct ward_kms_client *
offline_client(void)
{
	struct ward_aws_credentials cr = {
	    .access_key_id = (char *)"AKIDEXAMPLE",
	    .secret_access_key = (char *)"secret",
	};
	struct ward_kms_client_opts o = {
	    .endpoint_url = "http://127.0.0.1:1",
	    .region = "us-east-1",
	    .credentials = &cr,
	};
	struct ward_kms_client *c = NULL;

	ASSERT_OK(ward_kms_client_new(&c, &o));
	return c;
}

static void
test_client_new(void **state)
{
	struct ward_kms_client_opts o = {.endpoint_url = "http://127.0.0.1:1"};
	struct ward_kms_client *c = offline_client();

	assert_string_equal(ward_kms_client_endpoint(c), "http://127.0.0.1:1/");
	assert_string_equal(ward_kms_client_region(c), "us-east-1");
	ward_kms_client_free(c);
	ward_kms_client_free(NULL);

	/* no region anywhere */
	ASSERT_ERR(ward_kms_client_new(&c, &o), WARD_EUSAGE);
	assert_msg_has("no AWS region");
	assert_null(c);
	/* the region from the environment, no credentials anywhere */
	setenv("AWS_REGION", "eu-west-3", 1);
	ASSERT_ERR(ward_kms_client_new(&c, &o), WARD_EUSAGE);
	assert_msg_has("no AWS credentials found");
	/* credentials from the environment, endpoint from the region */
	setenv("AWS_ACCESS_KEY_ID", "AKID", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "s", 1);
	o.endpoint_url = NULL;
	ASSERT_OK(ward_kms_client_new(&c, &o));
	assert_string_equal(ward_kms_client_endpoint(c),
	    "https://kms.eu-west-3.amazonaws.com/");
	ward_kms_client_free(c);
	setenv("AWS_REGION", "EU-WEST-3", 1);
	ASSERT_ERR(ward_kms_client_new(&c, &o), WARD_EUSAGE);
}

/* A transport failure is EIO and names the endpoint. */
static void
test_call_unreachable(void **state)
{
	struct ward_kms_client *c = offline_client();
	struct ward_kms_error e;
	json_t *resp = (json_t *)1;

	ASSERT_ERR(ward_kms_call(c, "DescribeKey", NULL, &resp, &e), WARD_EIO);
	assert_null(resp);
	assert_int_equal(e.status, 0);
	assert_msg_has("KMS DescribeKey: http://127.0.0.1:1/: ");
	ASSERT_ERR(ward_kms_call(c, "Bad.Op", NULL, &resp, &e), WARD_EINTERNAL);
	ward_kms_client_free(c);
}

static void
test_keyring_offline(void **state)
{
	static const char mine[] =
	    "arn:aws:kms:us-east-1:111122223333:key/11111111-1111-1111-1111-111111111111";
	static const char other[] =
	    "arn:aws:kms:us-east-1:111122223333:key/22222222-2222-2222-2222-222222222222";
	static const char far[] =
	    "arn:aws:kms:eu-west-1:111122223333:key/33333333-3333-3333-3333-333333333333";
	const char *ids[] = {mine};
	const char *bad_ids[] = {"arn:aws:iam::1:role/x"};
	struct ward_kms_client *c = offline_client();
	struct ward_keyring *kr = NULL;
	struct ward_materials m = {.suite = ward_suite_lookup(0x0478)};
	struct ward_edk_list l = {0};
	struct ward_ec ec = {0};
	char desc[256];

	m.ec = &ec;
	ASSERT_ERR(ward_keyring_kms_new(&kr, c, bad_ids, 1, NULL), WARD_EUSAGE);
	assert_msg_has("not a KMS key or alias ARN");

	/* discovery cannot encrypt */
	ASSERT_OK(ward_keyring_kms_new(&kr, c, NULL, 0, NULL));
	kr->ops->describe(kr, desc, sizeof(desc));
	assert_string_equal(desc, "AWS KMS (discovery in us-east-1)");
	ASSERT_ERR(kr->ops->on_encrypt(kr, &m), WARD_EUSAGE);
	assert_false(m.has_data_key);

	/* other providers are not KMS's; an aws-kms EDK of another region
	 * is not this client's: neither is sent to KMS nor counted */
	ASSERT_OK(ward_edk_list_add(&l, "ward", 4, "raw-aes", 7, "x", 1));
	ASSERT_OK(
	    ward_edk_list_add(&l, "aws-kms", 7, far, strlen(far), "ct", 2));
	ASSERT_OK(kr->ops->on_decrypt(kr, &m, l.v, l.n));
	assert_false(m.has_data_key);
	assert_int_equal(m.attempts, 0);

	/* an aws-kms EDK whose provider info is not a key ARN: malformed */
	ASSERT_OK(ward_edk_list_add(&l, "aws-kms", 7, "alias/x", 7, "ct", 2));
	ASSERT_ERR(kr->ops->on_decrypt(kr, &m, l.v, l.n), WARD_EFORMAT);
	assert_msg_has("data key 3 is an aws-kms key");
	ward_keyring_free(kr);
	ward_edk_list_free(&l);

	/* strict: an EDK for another key ARN is left alone (no call) */
	ASSERT_OK(ward_keyring_kms_new(&kr, c, ids, 1, NULL));
	kr->ops->describe(kr, desc, sizeof(desc));
	assert_string_equal(desc,
	    "AWS KMS key arn:aws:kms:us-east-1:111122223333:key/11111111-1111-1111-1111-111111111111");
	ASSERT_OK(
	    ward_edk_list_add(&l, "aws-kms", 7, other, strlen(other), "ct", 2));
	ASSERT_OK(kr->ops->on_decrypt(kr, &m, l.v, l.n));
	assert_false(m.has_data_key);
	assert_int_equal(m.attempts, 0);
	/* ... and one for this key is sent: the transport failure shows */
	ASSERT_OK(
	    ward_edk_list_add(&l, "aws-kms", 7, mine, strlen(mine), "ct", 2));
	ASSERT_ERR(kr->ops->on_decrypt(kr, &m, l.v, l.n), WARD_EIO);
	assert_msg_has("KMS Decrypt");
	ward_keyring_free(kr);
	ward_edk_list_free(&l);
	ward_kms_client_free(c);
}

int
main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_env_credentials),
	    T(test_env_partial),
	    T(test_shared_file),
	    T(test_config_file),
	    T(test_precedence),
	    T(test_missing_secret),
	    T(test_bad_files),
	    T(test_profiles_missing),
	    T(test_imds),
	    T(test_region),
	    T(test_endpoint),
	    T(test_error_type),
	    T(test_error_parse),
	    T(test_arn),
	    T(test_client_new),
	    T(test_call_unreachable),
	    T(test_keyring_offline),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
