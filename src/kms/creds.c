/*
 * AWS credentials and region, found as the AWS SDKs find them: the
 * environment, then a profile of the shared credentials file and of the
 * config file, then the EC2 instance metadata service (IMDSv2).
 *
 * The two files are INI as botocore's configparser reads them: [section]
 * headers ("[NAME]" in credentials, "[profile NAME]" or "[default]" in
 * config), "name = value" or "name: value" settings, whole-line comments
 * starting with # or ;, and indented continuation lines (nested settings
 * such as "s3 =") which ward skips. Anything else is an error, as are
 * lines over WARD_AWS_INI_LINE_MAX and files over WARD_AWS_INI_FILE_MAX.
 * File contents are secrets: they are read into secret buffers, never
 * quoted in messages, and every copy is zeroed.
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "client_internal.h"

/* Credential values: an access key id is at most 128 characters (the
 * SigV4 parser's bound); session tokens run to a few KiB. */
#define ACCESS_KEY_ID_MAX 128
#define SECRET_MAX 1024
#define SESSION_TOKEN_MAX 16384

/* IMDSv2: short timeouts, as off EC2 nothing answers. */
#define IMDS_ENDPOINT "http://169.254.169.254"
#define IMDS_ENDPOINT_V6 "http://[fd00:ec2::254]"
#define IMDS_TIMEOUT_MS 1000L
#define IMDS_BODY_MAX 16384
#define IMDS_TOKEN_TTL "21600"
#define IMDS_ROLE_MAX 128

static const char *
env(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && *v != '\0' ? v : NULL;
}

static void
free_secret_str(char **s)
{
	if (*s != NULL) {
		ward_cleanse(*s, strlen(*s));
		free(*s);
		*s = NULL;
	}
}

void
ward_aws_credentials_clear(struct ward_aws_credentials *c)
{
	if (c == NULL)
		return;
	free_secret_str(&c->access_key_id);
	free_secret_str(&c->secret_access_key);
	free_secret_str(&c->session_token);
	memset(c->source, 0, sizeof(c->source));
}

/* Printable ASCII without spaces, 1..max bytes. Values are never quoted
 * in messages: they may be secrets. */
static bool
token_ok(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] <= ' ' || s[i] > '~')
			return false;
	return true;
}

static int
set_credentials(struct ward_aws_credentials *out, const char *akid,
    const char *secret, const char *token, const char *source)
{
	if (!token_ok(akid, ACCESS_KEY_ID_MAX))
		return ward_errf(WARD_EFORMAT,
		    "AWS access key id from %s is not 1 to %d printable characters",
		    source, ACCESS_KEY_ID_MAX);
	if (!token_ok(secret, SECRET_MAX))
		return ward_errf(WARD_EFORMAT,
		    "AWS secret access key from %s is not 1 to %d printable characters",
		    source, SECRET_MAX);
	if (token != NULL && !token_ok(token, SESSION_TOKEN_MAX))
		return ward_errf(WARD_EFORMAT,
		    "AWS session token from %s is not 1 to %d printable characters",
		    source, SESSION_TOKEN_MAX);
	if ((out->access_key_id = strdup(akid)) == NULL ||
	    (out->secret_access_key = strdup(secret)) == NULL ||
	    (token != NULL && (out->session_token = strdup(token)) == NULL)) {
		ward_aws_credentials_clear(out);
		return ward_enomem();
	}
	snprintf(out->source, sizeof(out->source), "%s", source);
	return 0;
}

/* 1..WARD_AWS_PROFILE_MAX printable characters, no ']' (it could not
 * name a section) and no surrounding blanks. */
static int
check_profile(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > WARD_AWS_PROFILE_MAX || name[0] == ' ' ||
	    name[n - 1] == ' ')
		goto bad;
	for (size_t i = 0; i < n; i++)
		if (name[i] < ' ' || name[i] > '~' || name[i] == ']')
			goto bad;
	return 0;
bad:
	return ward_errf(WARD_EUSAGE,
	    "AWS profile name %s is not 1 to %d printable characters",
	    ward_quotes(name), WARD_AWS_PROFILE_MAX);
}

/* ---- the shared files ------------------------------------------------- */

static const char *
home_dir(char *buf, size_t n)
{
	struct passwd pw, *res = NULL;
	const char *h;

	if ((h = env("HOME")) != NULL)
		return h;
	if (getpwuid_r(getuid(), &pw, buf, n, &res) != 0 || res == NULL ||
	    res->pw_dir == NULL || res->pw_dir[0] == '\0')
		return NULL;
	return res->pw_dir;
}

/* The file named by env_name (a leading ~/ expanded), else ~/rel; *out is
 * NULL when neither can be named. */
static int
config_path(const char *env_name, const char *rel, char **out)
{
	char pwbuf[4096];
	const char *v = env(env_name), *home;

	*out = NULL;
	home = home_dir(pwbuf, sizeof(pwbuf));
	if (v != NULL) {
		if (strncmp(v, "~/", 2) == 0 && home != NULL) {
			if (asprintf(out, "%s%s", home, v + 1) < 0)
				*out = NULL;
		} else
			*out = strdup(v);
	} else if (home != NULL) {
		if (asprintf(out, "%s/%s", home, rel) < 0)
			*out = NULL;
	} else
		return 0;
	return *out == NULL ? ward_enomem() : 0;
}

/* Read a whole config file into a secret buffer; *found is false when it
 * does not exist (an absent file is not an error). */
static int
read_config_file(const char *path, struct ward_buf *out, bool *found)
{
	struct stat st;
	int fd, r = 0;

	*found = false;
	out->secret = true;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return 0;
		return ward_errf(WARD_EIO, "%s: %s", path, strerror(errno));
	}
	if (fstat(fd, &st) != 0) {
		r = ward_errf(WARD_EIO, "%s: %s", path, strerror(errno));
		goto out;
	}
	/* Character devices too: AWS_CONFIG_FILE=/dev/null is common. */
	if (!S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode)) {
		r = ward_errf(WARD_EFORMAT, "%s: not a regular file", path);
		goto out;
	}
	for (;;) {
		ssize_t got;

		if ((r = ward_buf_reserve(out, 4096)) != 0)
			goto out;
		got = read(fd, out->p + out->len, out->cap - out->len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			r = ward_errf(
			    WARD_EIO, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (got == 0)
			break;
		out->len += (size_t)got;
		if (out->len > WARD_AWS_INI_FILE_MAX) {
			r = ward_errf(WARD_ELIMIT,
			    "%s: larger than %d bytes: not an AWS config file",
			    path, WARD_AWS_INI_FILE_MAX);
			goto out;
		}
	}
	*found = true;
out:
	close(fd);
	return r;
}

enum ini_key {
	K_ACCESS_KEY_ID,
	K_SECRET_ACCESS_KEY,
	K_SESSION_TOKEN,
	K_SECURITY_TOKEN, /* older name of the session token */
	K_REGION,
	K_N
};

static const char *const ini_names[K_N] = {
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "aws_security_token",
    "region",
};

/* Ways to get credentials the SDKs know and ward does not. */
static const char *const ini_unsupported[] = {
    "role_arn",
    "credential_process",
    "sso_session",
    "sso_start_url",
    "web_identity_token_file",
};

/* What one file says about one profile. */
struct ini_profile {
	bool found; /* a section for the profile exists */
	char *v[K_N];
	char unsupported[32];
};

static void
ini_profile_free(struct ini_profile *p)
{
	for (int i = 0; i < K_N; i++)
		free_secret_str(&p->v[i]);
}

static void
trim(const char **s, size_t *n)
{
	while (*n > 0 && (**s == ' ' || **s == '\t')) {
		(*s)++;
		(*n)--;
	}
	while (*n > 0 && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
		(*n)--;
}

static bool
word_is(const char *s, size_t n, const char *w)
{
	return n == strlen(w) && memcmp(s, w, n) == 0;
}

/* Does section name s name profile? In the config file profiles are
 * "profile NAME", and the default one also plain "default". */
static bool
section_matches(const char *s, size_t n, const char *profile, bool config)
{
	if (!config)
		return word_is(s, n, profile);
	if (strcmp(profile, "default") == 0 && word_is(s, n, "default"))
		return true;
	if (n < 8 || memcmp(s, "profile", 7) != 0 ||
	    (s[7] != ' ' && s[7] != '\t'))
		return false;
	s += 7;
	n -= 7;
	trim(&s, &n);
	return word_is(s, n, profile);
}

static int
ini_setting(const char *path, size_t lineno, const char *key, size_t klen,
    const char *val, size_t vlen, unsigned *seen, struct ini_profile *out)
{
	for (int i = 0; i < K_N; i++) {
		if (klen != strlen(ini_names[i]) ||
		    strncasecmp(key, ini_names[i], klen) != 0)
			continue;
		if (*seen & (1u << i))
			return ward_errf(WARD_EFORMAT,
			    "%s:%zu: %s is set twice in the same section", path,
			    lineno, ini_names[i]);
		*seen |= 1u << i;
		/* A later section for the same profile wins. */
		free_secret_str(&out->v[i]);
		if (vlen > 0 && (out->v[i] = strndup(val, vlen)) == NULL)
			return ward_enomem();
		return 0;
	}
	for (size_t i = 0;
	     i < sizeof(ini_unsupported) / sizeof(ini_unsupported[0]); i++)
		if (klen == strlen(ini_unsupported[i]) &&
		    strncasecmp(key, ini_unsupported[i], klen) == 0 &&
		    out->unsupported[0] == '\0')
			snprintf(out->unsupported, sizeof(out->unsupported),
			    "%s", ini_unsupported[i]);
	return 0;
}

/*
 * Parse an AWS credentials (config false) or config (true) file and keep
 * the settings of profile's section(s). Errors name the line, never its
 * contents.
 */
static int
ini_parse(const char *path, const uint8_t *p, size_t len, const char *profile,
    bool config, struct ini_profile *out)
{
	size_t off = 0, lineno = 0;
	bool in_section = false, want = false, continuation = false;
	unsigned seen = 0;
	int r;

	while (off < len) {
		const char *line = (const char *)p + off, *nl, *end, *d;
		size_t n, klen, vlen;
		bool indented;

		nl = memchr(line, '\n', len - off);
		n = nl != NULL ? (size_t)(nl - line) : len - off;
		off += n + (nl != NULL ? 1 : 0);
		lineno++;
		if (n > WARD_AWS_INI_LINE_MAX)
			return ward_errf(WARD_ELIMIT,
			    "%s:%zu: line longer than %d bytes", path, lineno,
			    WARD_AWS_INI_LINE_MAX);
		if (memchr(line, '\0', n) != NULL)
			return ward_errf(WARD_EFORMAT,
			    "%s:%zu: NUL byte: not a text file", path, lineno);
		if (n > 0 && line[n - 1] == '\r')
			n--;
		indented = n > 0 && (line[0] == ' ' || line[0] == '\t');
		trim(&line, &n);
		if (n == 0) {
			continuation = false;
			continue;
		}
		if (line[0] == '#' || line[0] == ';')
			continue;
		if (indented && continuation)
			continue; /* a nested value: "s3 =\n  key = v" */
		continuation = false;
		if (line[0] == '[') {
			const char *name = line + 1, *rest;
			size_t nlen, rlen;

			if ((end = memchr(line, ']', n)) == NULL)
				return ward_errf(WARD_EFORMAT,
				    "%s:%zu: section header without ']'", path,
				    lineno);
			nlen = (size_t)(end - name);
			rest = end + 1;
			rlen = n - (size_t)(rest - line);
			trim(&name, &nlen);
			trim(&rest, &rlen);
			if (nlen == 0)
				return ward_errf(WARD_EFORMAT,
				    "%s:%zu: empty section name", path, lineno);
			if (rlen > 0 && rest[0] != '#' && rest[0] != ';')
				return ward_errf(WARD_EFORMAT,
				    "%s:%zu: text after a section header", path,
				    lineno);
			in_section = true;
			want = section_matches(name, nlen, profile, config);
			out->found |= want;
			seen = 0;
			continue;
		}
		if (!in_section)
			return ward_errf(WARD_EFORMAT,
			    "%s:%zu: a setting before any [section]", path,
			    lineno);
		d = line;
		while (d < line + n && *d != '=' && *d != ':')
			d++;
		if (d == line + n)
			return ward_errf(WARD_EFORMAT,
			    "%s:%zu: expected 'name = value'", path, lineno);
		klen = (size_t)(d - line);
		end = d + 1;
		vlen = n - (size_t)(end - line);
		trim(&line, &klen);
		trim(&end, &vlen);
		if (klen == 0)
			return ward_errf(WARD_EFORMAT,
			    "%s:%zu: a setting without a name", path, lineno);
		continuation = true;
		if (want &&
		    (r = ini_setting(
		         path, lineno, line, klen, end, vlen, &seen, out)) != 0)
			return r;
	}
	return 0;
}

static int
load_profile_file(
    const char *path, const char *profile, bool config, struct ini_profile *out)
{
	struct ward_buf b = {.secret = true};
	bool found;
	int r;

	if (path == NULL)
		return 0;
	if ((r = read_config_file(path, &b, &found)) == 0 && found)
		r = ini_parse(path, b.p, b.len, profile, config, out);
	ward_buf_free(&b);
	return r;
}

/* 0 and out filled; 1 when the profile holds no credentials here. */
static int
profile_credentials(struct ward_aws_credentials *out,
    const struct ini_profile *p, const char *profile, const char *path,
    const char *source)
{
	const char *akid = p->v[K_ACCESS_KEY_ID];
	const char *secret = p->v[K_SECRET_ACCESS_KEY];
	const char *token = p->v[K_SESSION_TOKEN] != NULL
	    ? p->v[K_SESSION_TOKEN]
	    : p->v[K_SECURITY_TOKEN];
	int r;

	if (!p->found || (akid == NULL && secret == NULL))
		return 1;
	if (akid == NULL || secret == NULL)
		return ward_errf(WARD_EUSAGE,
		    "incomplete AWS credentials: profile '%s' in %s has %s but no %s",
		    profile, path,
		    akid != NULL ? "aws_access_key_id"
		                 : "aws_secret_access_key",
		    akid != NULL ? "aws_secret_access_key"
		                 : "aws_access_key_id");
	if ((r = set_credentials(out, akid, secret, token, source)) != 0)
		return ward_err_prefix(r, "profile '%s' in %s", profile, path);
	return 0;
}

/* ---- IMDSv2 ----------------------------------------------------------- */

static size_t
imds_write(char *p, size_t size, size_t n, void *ctx)
{
	struct ward_buf *b = ctx;
	size_t len = size * n;

	if (len > IMDS_BODY_MAX - b->len || ward_buf_append(b, p, len) != 0)
		return 0; /* curl fails with CURLE_WRITE_ERROR */
	return len;
}

static void
slist_free_cleansed(struct curl_slist *l)
{
	for (struct curl_slist *i = l; i != NULL; i = i->next)
		ward_cleanse(i->data, strlen(i->data));
	curl_slist_free_all(l);
}

/* One IMDS request; on failure why says what happened. */
static int
imds_request(CURL *h, bool put, const char *url, const char *header,
    struct ward_buf *body, char *why, size_t whylen)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *hl = NULL;
	long status = 0;
	CURLcode cc;
	int r = 0;

	ward_cleanse(body->p, body->len);
	body->len = 0;
	if (header != NULL && (hl = curl_slist_append(NULL, header)) == NULL)
		return ward_enomem();
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	if (put) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PUT");
	} else {
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, NULL);
	}
	cc = curl_easy_perform(h);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
	slist_free_cleansed(hl);
	if (cc != CURLE_OK) {
		snprintf(why, whylen, "did not answer at %s (%s)", url,
		    errbuf[0] != '\0' ? errbuf : curl_easy_strerror(cc));
		r = -WARD_EIO;
	} else if (curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status) !=
	        CURLE_OK ||
	    status != 200) {
		snprintf(why, whylen, "answered HTTP %ld to %s%s", status, url,
		    status == 404 ? " (no IAM role attached?)" : "");
		r = -WARD_EIO;
	}
	return r;
}

/* Is s (n bytes) an IAM role name, safe in a URL path? */
static bool
role_ok(const char *s, size_t n)
{
	if (n == 0 || n > IMDS_ROLE_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (strchr("+=,.@_-", s[i]) == NULL &&
		    !(s[i] >= 'a' && s[i] <= 'z') &&
		    !(s[i] >= 'A' && s[i] <= 'Z') &&
		    !(s[i] >= '0' && s[i] <= '9'))
			return false;
	return true;
}

static void
json_cleanse_member(json_t *o, const char *name)
{
	json_t *v = json_object_get(o, name);

	/* jansson frees strings without zeroing them; the string belongs to
	 * o, which the caller releases next. */
	if (json_is_string(v))
		ward_cleanse(
		    (char *)json_string_value(v), json_string_length(v));
}

static int
imds_credentials(
    struct ward_aws_credentials *out, const char *base, char *why, size_t n)
{
	struct ward_buf body = {.secret = true}, hdr = {.secret = true};
	char *url = NULL, role[IMDS_ROLE_MAX + 1];
	const char *s, *akid, *secret, *token;
	json_t *j = NULL;
	CURL *h;
	size_t len;
	int r;

	if ((r = ward_kms_curl_global()) != 0)
		return r;
	if ((h = curl_easy_init()) == NULL)
		return ward_enomem();
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, IMDS_TIMEOUT_MS);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, IMDS_TIMEOUT_MS);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, imds_write);

	/* The session token (a secret, briefly) goes into a header. */
	if (asprintf(&url, "%s/latest/api/token", base) < 0) {
		url = NULL;
		r = ward_enomem();
		goto out;
	}
	if ((r = imds_request(h, true, url,
	         "X-aws-ec2-metadata-token-ttl-seconds: " IMDS_TOKEN_TTL, &body,
	         why, n)) != 0)
		goto out;
	len = body.len;
	while (len > 0 && (body.p[len - 1] == '\n' || body.p[len - 1] == '\r'))
		len--;
	if (len == 0 || len > 4096 || memchr(body.p, '\n', len) != NULL) {
		snprintf(why, n, "sent a malformed session token");
		r = -WARD_EFORMAT;
		goto out;
	}
	if ((r = ward_buf_append(&hdr, "X-aws-ec2-metadata-token: ", 26)) !=
	        0 ||
	    (r = ward_buf_append(&hdr, body.p, len)) != 0 ||
	    (r = ward_buf_put_u8(&hdr, 0)) != 0)
		goto out;

	free(url);
	if (asprintf(&url, "%s/latest/meta-data/iam/security-credentials/",
	        base) < 0) {
		url = NULL;
		r = ward_enomem();
		goto out;
	}
	if ((r = imds_request(
	         h, false, url, (const char *)hdr.p, &body, why, n)) != 0)
		goto out;
	s = (const char *)body.p;
	for (len = 0; len < body.len && s[len] != '\n' && s[len] != '\r'; len++)
		;
	if (!role_ok(s, len)) {
		snprintf(why, n, "named no usable IAM role");
		r = -WARD_EFORMAT;
		goto out;
	}
	memcpy(role, s, len);
	role[len] = '\0';

	free(url);
	if (asprintf(&url, "%s/latest/meta-data/iam/security-credentials/%s",
	        base, role) < 0) {
		url = NULL;
		r = ward_enomem();
		goto out;
	}
	if ((r = imds_request(
	         h, false, url, (const char *)hdr.p, &body, why, n)) != 0)
		goto out;
	if ((j = json_loadb((const char *)body.p, body.len, 0, NULL)) == NULL ||
	    !json_is_object(j)) {
		snprintf(why, n,
		    "sent credentials for role %s that are not JSON", role);
		r = -WARD_EFORMAT;
		goto out;
	}
	s = json_string_value(json_object_get(j, "Code"));
	akid = json_string_value(json_object_get(j, "AccessKeyId"));
	secret = json_string_value(json_object_get(j, "SecretAccessKey"));
	token = json_string_value(json_object_get(j, "Token"));
	if ((s != NULL && strcmp(s, "Success") != 0) || akid == NULL ||
	    secret == NULL) {
		snprintf(why, n, "sent no credentials for role %s (Code %s)",
		    role, s != NULL ? ward_quotes(s) : "absent");
		r = -WARD_EFORMAT;
		goto out;
	}
	if ((r = set_credentials(out, akid, secret, token, "imds")) != 0) {
		snprintf(why, n, "sent unusable credentials for role %s", role);
		goto out;
	}
out:
	if (j != NULL) {
		json_cleanse_member(j, "SecretAccessKey");
		json_cleanse_member(j, "Token");
		json_decref(j);
	}
	curl_easy_cleanup(h);
	free(url);
	ward_buf_free(&body);
	ward_buf_free(&hdr);
	return r;
}

/* The IMDS base URL (no trailing slash), or NULL when disabled. */
static int
imds_endpoint(char **out)
{
	const char *v;
	size_t n;

	*out = NULL;
	if ((v = env("AWS_EC2_METADATA_DISABLED")) != NULL &&
	    strcasecmp(v, "true") == 0)
		return 0;
	if ((v = env("AWS_EC2_METADATA_SERVICE_ENDPOINT")) == NULL) {
		v = env("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
		v = v != NULL && strcasecmp(v, "ipv6") == 0 ? IMDS_ENDPOINT_V6
		                                            : IMDS_ENDPOINT;
	}
	if (strncasecmp(v, "http://", 7) != 0 &&
	    strncasecmp(v, "https://", 8) != 0)
		return ward_errf(WARD_EUSAGE,
		    "AWS_EC2_METADATA_SERVICE_ENDPOINT %s is not an http:// or https:// URL",
		    ward_quotes(v));
	n = strlen(v);
	while (n > 0 && v[n - 1] == '/')
		n--;
	if ((*out = strndup(v, n)) == NULL)
		return ward_enomem();
	return 0;
}

/* ---- the chain -------------------------------------------------------- */

int
ward_aws_credentials_load(const char *profile, struct ward_aws_credentials *out)
{
	struct ini_profile cred = {0}, conf = {0};
	char *cred_path = NULL, *conf_path = NULL, *imds = NULL;
	char looked[1024], why[512] = "";
	const char *name, *akid, *secret, *unsupported_in = NULL;
	bool explicit = profile != NULL && *profile != '\0', named = true;
	int r;

	memset(out, 0, sizeof(*out));
	if (explicit)
		name = profile;
	else if ((name = env("AWS_PROFILE")) == NULL) {
		name = "default";
		named = false;
	}
	if ((r = check_profile(name)) != 0)
		return r;

	/* An explicitly chosen profile overrides the environment's keys
	 * (botocore does the same); AWS_PROFILE does not. */
	if (!explicit) {
		akid = env("AWS_ACCESS_KEY_ID");
		secret = env("AWS_SECRET_ACCESS_KEY");
		if (akid != NULL && secret != NULL) {
			r = set_credentials(out, akid, secret,
			    env("AWS_SESSION_TOKEN"), "environment");
			goto out;
		}
		if (akid != NULL || secret != NULL) {
			r = ward_errf(WARD_EUSAGE,
			    "incomplete AWS credentials in the environment: %s is set but %s is not",
			    akid != NULL ? "AWS_ACCESS_KEY_ID"
			                 : "AWS_SECRET_ACCESS_KEY",
			    akid != NULL ? "AWS_SECRET_ACCESS_KEY"
			                 : "AWS_ACCESS_KEY_ID");
			goto out;
		}
	}

	if ((r = config_path("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials",
	         &cred_path)) != 0 ||
	    (r = config_path("AWS_CONFIG_FILE", ".aws/config", &conf_path)) !=
	        0)
		goto out;
	if ((r = load_profile_file(cred_path, name, false, &cred)) != 0 ||
	    (r = profile_credentials(
	         out, &cred, name, cred_path, "shared-credentials-file")) <= 0)
		goto out;
	if ((r = load_profile_file(conf_path, name, true, &conf)) != 0 ||
	    (r = profile_credentials(
	         out, &conf, name, conf_path, "config-file")) <= 0)
		goto out;
	if (named && !cred.found && !conf.found) {
		r = ward_errf(WARD_EUSAGE,
		    "AWS profile '%s' not found in %s or %s", name,
		    cred_path != NULL ? cred_path : "~/.aws/credentials",
		    conf_path != NULL ? conf_path : "~/.aws/config");
		goto out;
	}
	if (cred.unsupported[0] != '\0')
		unsupported_in = cred_path;
	else if (conf.unsupported[0] != '\0')
		unsupported_in = conf_path;
	if (unsupported_in != NULL) {
		r = ward_errf(WARD_EUSAGE,
		    "AWS profile '%s' in %s gets credentials through %s, which ward does not support: give the profile aws_access_key_id and aws_secret_access_key, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
		    name, unsupported_in,
		    cred.unsupported[0] != '\0' ? cred.unsupported
		                                : conf.unsupported);
		goto out;
	}

	snprintf(looked, sizeof(looked),
	    "no AWS credentials found: %s, not in profile '%s' of %s or %s",
	    explicit
	        ? "the environment is not used with an explicit profile"
	        : "not in the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)",
	    name, cred_path != NULL ? cred_path : "~/.aws/credentials",
	    conf_path != NULL ? conf_path : "~/.aws/config");
	if ((r = imds_endpoint(&imds)) != 0)
		goto out;
	if (imds == NULL) {
		r = ward_errf(WARD_EUSAGE,
		    "%s, and the instance metadata service is disabled (AWS_EC2_METADATA_DISABLED)",
		    looked);
		goto out;
	}
	if ((r = imds_credentials(out, imds, why, sizeof(why))) != 0) {
		if (r == -WARD_ENOMEM)
			goto out;
		r = ward_errf(WARD_EUSAGE,
		    "%s, and the instance metadata service %s", looked, why);
		goto out;
	}
out:
	if (r != 0)
		ward_aws_credentials_clear(out);
	ini_profile_free(&cred);
	ini_profile_free(&conf);
	free(cred_path);
	free(conf_path);
	free(imds);
	return r;
}

/* ---- region ----------------------------------------------------------- */

int
ward_aws_region_check(const char *region)
{
	size_t n = strlen(region);

	if (n == 0 || n > WARD_AWS_REGION_MAX)
		goto bad;
	for (size_t i = 0; i < n; i++)
		if (!(region[i] >= 'a' && region[i] <= 'z') &&
		    !(region[i] >= '0' && region[i] <= '9') && region[i] != '-')
			goto bad;
	return 0;
bad:
	return ward_errf(WARD_EUSAGE,
	    "AWS region %s is not 1 to %d of a-z, 0-9 and '-'",
	    ward_quotes(region), WARD_AWS_REGION_MAX);
}

int
ward_aws_region_resolve(const char *region, const char *profile, char **out)
{
	struct ini_profile conf = {0};
	char *conf_path = NULL;
	const char *v = region != NULL && *region != '\0' ? region : NULL;
	const char *name;
	int r;

	*out = NULL;
	if (v == NULL && (v = env("AWS_REGION")) == NULL)
		v = env("AWS_DEFAULT_REGION");
	if (v != NULL)
		return (*out = strdup(v)) == NULL ? ward_enomem() : 0;
	if (profile != NULL && *profile != '\0')
		name = profile;
	else if ((name = env("AWS_PROFILE")) == NULL)
		name = "default";
	if ((r = check_profile(name)) != 0 ||
	    (r = config_path("AWS_CONFIG_FILE", ".aws/config", &conf_path)) !=
	        0 ||
	    (r = load_profile_file(conf_path, name, true, &conf)) != 0)
		goto out;
	if (conf.v[K_REGION] != NULL &&
	    (*out = strdup(conf.v[K_REGION])) == NULL)
		r = ward_enomem();
out:
	ini_profile_free(&conf);
	free(conf_path);
	return r;
}

char *
ward_aws_region(const char *region, const char *profile)
{
	char *out = NULL;

	if (ward_aws_region_resolve(region, profile, &out) != 0)
		return NULL;
	return out;
}
