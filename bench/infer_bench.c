/*
 * bench_infer: the measurements bench/infer prints, each beside a baseline
 * taken by the same program in the same run.
 *
 *   enclave CID MODEL INPUT N   N INFER requests of INPUT's rows against
 *                               the encrypted model at MODEL (a workspace
 *                               path) in the enclave at vsock CID, one at
 *                               a time on one connection, through the
 *                               library (what ward infer sends), after a
 *                               warm-up that opens the model
 *   native MODEL INPUT N        the baseline: the same work on the host,
 *                               in this process: INPUT's bytes parsed into
 *                               rows, XGBoost's prediction, the answer's
 *                               JSON, by the very code the agent runs
 *                               (src/agent/rows.c, runtime_xgboost.c,
 *                               infer.c), over the plaintext model file
 *   predict MODEL INPUT N       XGBoost's prediction alone (rows parsed
 *                               once beforehand): the floor
 *
 * Prints "p50 MS", "p99 MS", "rows_per_s X" and "rows R" lines.
 * Credentials, region and endpoint come from the environment as for ward
 * infer.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/internal.h"
#include "ward/client.h"
#include "ward/crypto.h"
#include "ward/kms.h"
#include "ward/util.h"

/* A positive count or CID from the command line; exits on anything else. */
static unsigned long
num(const char *s)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0 || v == 0) {
		fprintf(stderr, "bench_infer: %s: not a positive number\n", s);
		exit(2);
	}
	return v;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void
report(double *lat, size_t n, size_t rows, double total)
{
	qsort(lat, n, sizeof(*lat), cmp_double);
	printf("p50 %.4f\n", lat[n / 2] * 1e3);
	printf("p99 %.4f\n",
	    lat[(n * 99) / 100 >= n ? n - 1 : (n * 99) / 100] * 1e3);
	printf("rows_per_s %.1f\n", (double)(rows * n) / total);
	printf("rows %zu\n", rows);
}

static int
discard(void *ctx, const uint8_t *p, size_t n)
{
	*(size_t *)ctx += n;
	return 0;
}

static int
read_all(const char *path, struct ward_buf *b)
{
	return ward_read_file(path, (size_t)1 << 30, b);
}

static size_t
count_rows(const struct ward_buf *in)
{
	struct agent_rows r;
	size_t n;

	if (agent_rows_parse(
	        in->p, in->len, AGENT_FMT_AUTO, (size_t)1 << 28, &r) != 0) {
		fprintf(stderr, "bench_infer: %s\n", ward_errmsg());
		exit(1);
	}
	n = r.rows;
	agent_rows_free(&r);
	return n;
}

static int
enclave(char **argv)
{
	struct ward_client_opts co = {
	    .cid = (uint32_t)num(argv[2]), .timeout = 60};
	struct ward_client *c = NULL;
	struct ward_aws_credentials cred = {0};
	struct ward_buf in = {0};
	size_t n = (size_t)num(argv[5]), rows;
	double *lat = calloc(n, sizeof(double)), t0, total;
	char *region = ward_aws_region(NULL, NULL);
	int fd;

	if (lat == NULL || region == NULL || read_all(argv[4], &in) != 0 ||
	    (fd = open(argv[4], O_RDONLY)) < 0 ||
	    ward_client_open(&co, &c) != 0) {
		fprintf(stderr, "bench_infer: %s\n", ward_errmsg());
		exit(1); /* what was allocated goes with the process */
	}
	rows = count_rows(&in);
	for (size_t i = 0; i < n + 5; i++) {
		size_t got = 0;
		struct ward_client_infer q = {
		    .model = argv[3],
		    .input_fd = fd,
		    .cred = &cred,
		    .region = region,
		    .endpoint = getenv("AWS_ENDPOINT_URL_KMS"),
		    .out = discard,
		    .out_ctx = &got,
		};
		double t;

		if (ward_aws_credentials_load(NULL, &cred) != 0 ||
		    lseek(fd, 0, SEEK_SET) != 0) {
			fprintf(stderr, "bench_infer: %s\n", ward_errmsg());
			exit(1);
		}
		t = ward_now();
		if (ward_client_infer(c, &q) != 0) {
			fprintf(
			    stderr, "bench_infer: infer: %s\n", ward_errmsg());
			exit(1);
		}
		ward_aws_credentials_clear(&cred);
		if (i >= 5) /* the first opens the model: warm-up */
			lat[i - 5] = ward_now() - t;
	}
	total = 0;
	for (size_t i = 0; i < n; i++)
		total += lat[i];
	t0 = total;
	report(lat, n, rows, t0);
	ward_client_close(c);
	ward_buf_free(&in);
	free(region);
	free(lat);
	close(fd);
	return 0;
}

static int
native(char **argv, bool predict_only)
{
	const struct agent_runtime *rt = &agent_runtime_xgboost;
	struct agent_model_info info;
	struct ward_buf model = {0}, in = {0};
	struct agent_rows once = {0};
	uint8_t hash[48];
	size_t n = (size_t)num(argv[4]);
	double *lat = calloc(n, sizeof(double)), total = 0;
	void *h = NULL;

	if (lat == NULL || read_all(argv[2], &model) != 0 ||
	    read_all(argv[3], &in) != 0 ||
	    ward_sha384(model.p, model.len, hash) != 0 ||
	    rt->load(model.p, model.len, &h, &info) != 0 ||
	    agent_rows_parse(
	        in.p, in.len, AGENT_FMT_AUTO, (size_t)1 << 28, &once) != 0) {
		fprintf(stderr, "bench_infer: %s\n", ward_errmsg());
		exit(1);
	}
	for (size_t i = 0; i < n + 5; i++) {
		struct agent_rows rows = {0};
		struct ward_buf out = {.secret = true};
		float *pred = NULL;
		size_t per = 0;
		double t = ward_now();
		int r;

		if (predict_only)
			r = rt->predict(
			    h, once.v, once.rows, once.cols, &pred, &per);
		else if ((r = agent_rows_parse(in.p, in.len, AGENT_FMT_AUTO,
		              (size_t)1 << 28, &rows)) == 0 &&
		    (r = rt->predict(
		         h, rows.v, rows.rows, rows.cols, &pred, &per)) == 0)
			r = agent_infer_answer(hash, "native", rt, &info, pred,
			    rows.rows, per, &out);
		if (r != 0) {
			fprintf(stderr, "bench_infer: %s\n", ward_errmsg());
			exit(1);
		}
		free(pred);
		agent_rows_free(&rows);
		ward_buf_free(&out);
		if (i >= 5)
			total += lat[i - 5] = ward_now() - t;
	}
	report(lat, n, once.rows, total);
	rt->free(h);
	agent_rows_free(&once);
	ward_buf_free(&model);
	ward_buf_free(&in);
	free(lat);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc == 6 && strcmp(argv[1], "enclave") == 0)
		return enclave(argv);
	if (argc == 5 && strcmp(argv[1], "native") == 0)
		return native(argv, false);
	if (argc == 5 && strcmp(argv[1], "predict") == 0)
		return native(argv, true);
	fprintf(stderr,
	    "usage: see the comment at the top of bench/infer_bench.c\n");
	return 2;
}
