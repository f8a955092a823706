/*
 * bench/kms_sign: write one complete, SigV4-signed KMS request (request
 * line, headers, body) to a file, for bench/kms_load to replay.
 *
 *   kms_sign --host HOST[:PORT] --target OPERATION
 *       (--body JSON | --body-file FILE) --out FILE [--region REGION]
 *
 * OPERATION is "Decrypt" or "TrentService.Decrypt". The credentials come
 * from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN (so
 * that the secret never sits on a command line), the region from --region,
 * else AWS_REGION, else AWS_DEFAULT_REGION.
 *
 * Signed, as the AWS SDKs sign a KMS call: host, content-type, x-amz-date,
 * x-amz-target (and x-amz-security-token with a session token). The
 * request is dated now; the server accepts it, replayed as often as
 * wanted, while its clock is within 5 minutes of that date
 * (kms-and-esdk.md §2), so sign again for runs longer than that.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ward/kms.h"
#include "ward/util.h"

#define BODY_MAX (1u << 20)

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: kms_sign --host HOST[:PORT] --target OPERATION\n"
	    "                (--body JSON | --body-file FILE) --out FILE\n"
	    "                [--region REGION]\n"
	    "Credentials from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and\n"
	    "AWS_SESSION_TOKEN; region from --region or AWS_REGION.\n");
}

/* Append the NUL-terminated s to b. */
static int
put(struct ward_buf *b, const char *s)
{
	return ward_buf_append(b, s, strlen(s));
}

int
main(int argc, char **argv)
{
	const char *host = NULL, *target = NULL, *body_arg = NULL;
	const char *body_file = NULL, *out_path = NULL, *region = NULL;
	struct ward_buf body = {0}, auth = {0}, req = {0};
	struct ward_sigv4_credentials cred = {0};
	struct ward_sigv4_header h[5];
	char amz[17], target_hdr[128], clen[32];
	size_t nh = 0;
	FILE *f = NULL;
	int r = -WARD_EUSAGE;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return 0;
		}
		if (v == NULL) {
			usage(stderr);
			return 2;
		}
		i++;
		if (strcmp(a, "--host") == 0)
			host = v;
		else if (strcmp(a, "--target") == 0)
			target = v;
		else if (strcmp(a, "--body") == 0)
			body_arg = v;
		else if (strcmp(a, "--body-file") == 0)
			body_file = v;
		else if (strcmp(a, "--out") == 0 || strcmp(a, "-o") == 0)
			out_path = v;
		else if (strcmp(a, "--region") == 0)
			region = v;
		else {
			usage(stderr);
			return 2;
		}
	}
	if (host == NULL || target == NULL || out_path == NULL ||
	    (body_arg == NULL) == (body_file == NULL)) {
		usage(stderr);
		return 2;
	}
	if (region == NULL)
		region = getenv("AWS_REGION");
	if (region == NULL || *region == '\0')
		region = getenv("AWS_DEFAULT_REGION");
	cred.access_key_id = getenv("AWS_ACCESS_KEY_ID");
	cred.secret_access_key = getenv("AWS_SECRET_ACCESS_KEY");
	cred.session_token = getenv("AWS_SESSION_TOKEN");
	if (cred.session_token != NULL && *cred.session_token == '\0')
		cred.session_token = NULL;
	if (cred.access_key_id == NULL || cred.secret_access_key == NULL ||
	    region == NULL || *region == '\0') {
		fprintf(stderr,
		    "kms_sign: set AWS_ACCESS_KEY_ID, "
		    "AWS_SECRET_ACCESS_KEY and AWS_REGION\n");
		return 2;
	}

	if (body_file != NULL) {
		if ((r = ward_read_file(body_file, BODY_MAX, &body)) != 0)
			goto out;
	} else if ((r = put(&body, body_arg)) != 0) {
		goto out;
	}
	snprintf(target_hdr, sizeof(target_hdr), "%s%s",
	    strchr(target, '.') != NULL ? "" : "TrentService.", target);
	ward_sigv4_amz_date(time(NULL), amz);

	h[nh++] = (struct ward_sigv4_header){"Host", host};
	h[nh++] = (struct ward_sigv4_header){
	    "Content-Type", "application/x-amz-json-1.1"};
	h[nh++] = (struct ward_sigv4_header){"X-Amz-Date", amz};
	h[nh++] = (struct ward_sigv4_header){"X-Amz-Target", target_hdr};
	if (cred.session_token != NULL)
		h[nh++] = (struct ward_sigv4_header){
		    "X-Amz-Security-Token", cred.session_token};
	{
		struct ward_sigv4_request sr = {
		    .method = "POST",
		    .path = "/",
		    .query = "",
		    .headers = h,
		    .nheaders = nh,
		    .body = body.p,
		    .body_len = body.len,
		};

		if ((r = ward_sigv4_sign(&sr, &cred, region, "kms", &auth)) !=
		    0)
			goto out;
	}

	/* The request as bytes: the signed headers, Authorization and
	 * Content-Length (unsigned, as the SDKs leave it), the body. */
	snprintf(clen, sizeof(clen), "%zu", body.len);
	if ((r = put(&req, "POST / HTTP/1.1\r\n")) != 0)
		goto out;
	for (size_t i = 0; i < nh; i++) {
		if ((r = put(&req, h[i].name)) != 0 ||
		    (r = put(&req, ": ")) != 0 ||
		    (r = put(&req, h[i].value)) != 0 ||
		    (r = put(&req, "\r\n")) != 0)
			goto out;
	}
	if ((r = put(&req, "Authorization: ")) != 0 ||
	    (r = ward_buf_append(&req, auth.p, auth.len)) != 0 ||
	    (r = put(&req, "\r\nContent-Length: ")) != 0 ||
	    (r = put(&req, clen)) != 0 || (r = put(&req, "\r\n\r\n")) != 0 ||
	    (r = ward_buf_append(&req, body.p, body.len)) != 0)
		goto out;

	if ((f = fopen(out_path, "wb")) == NULL) {
		r = ward_errf(WARD_EIO, "%s: %s", out_path, strerror(errno));
		goto out;
	}
	if (fwrite(req.p, 1, req.len, f) != req.len || fclose(f) != 0) {
		f = NULL;
		r = ward_errf(WARD_EIO, "%s: write failed", out_path);
		goto out;
	}
	f = NULL;
	r = 0;
out:
	if (f != NULL)
		fclose(f);
	if (r != 0)
		fprintf(stderr, "kms_sign: %s\n", ward_errmsg());
	ward_buf_free(&body);
	ward_buf_free(&auth);
	ward_buf_free(&req);
	return r == 0 ? 0 : 1;
}
