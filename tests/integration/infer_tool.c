/*
 * infer_tool: XGBoost natively on the host, for tests/integration/infer.sh
 * and bench/infer (linked with libxgboost; nothing of ward in it, so its
 * predictions are an independent reference for the enclave's).
 *
 *   infer_tool train OUT.json [--features F] [--rows N] [--rounds R]
 *                             [--classes K] [--seed S]
 *       a model on synthetic data (a fixed-seed generator): binary
 *       (binary:logistic) or K classes (multi:softprob)
 *   infer_tool rows OUT.csv N F SEED [--missing] [--json]
 *       N rows of F features, with a header line (CSV); --missing leaves
 *       every 7th value empty (null in JSON)
 *   infer_tool predict MODEL CSV
 *       one line per row: the class probabilities ("%.9g", space
 *       separated; binary: 1-p then p) or the value
 *   infer_tool time MODEL CSV ITERS
 *       predictions of the whole CSV ITERS times; prints rows/s
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xgboost/c_api.h>

#define CHECK(call)                                                            \
	do {                                                                   \
		if ((call) != 0) {                                             \
			fprintf(stderr, "infer_tool: %s: %s\n", #call,         \
			    XGBGetLastError());                                \
			exit(1);                                               \
		}                                                              \
	} while (0)

static uint64_t rng;

static double
uniform(void) /* [-1, 1) */
{
	rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
	return (double)(rng >> 11) / (double)(1ULL << 53) * 2.0 - 1.0;
}

static unsigned long
num(const char *s)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (*s == '\0' || *end != '\0') {
		fprintf(stderr, "infer_tool: %s: not a number\n", s);
		exit(2);
	}
	return v;
}

static int
train(int argc, char **argv)
{
	unsigned long f = 30, n = 600, rounds = 20, classes = 2, seed = 1;
	float *x, *y;
	double *w;
	DMatrixHandle d;
	BoosterHandle b;
	char buf[32];

	for (int i = 3; i + 1 < argc; i += 2) {
		unsigned long v = num(argv[i + 1]);

		if (strcmp(argv[i], "--features") == 0)
			f = v;
		else if (strcmp(argv[i], "--rows") == 0)
			n = v;
		else if (strcmp(argv[i], "--rounds") == 0)
			rounds = v;
		else if (strcmp(argv[i], "--classes") == 0)
			classes = v;
		else if (strcmp(argv[i], "--seed") == 0)
			seed = v;
		else {
			fprintf(stderr, "infer_tool: unknown %s\n", argv[i]);
			return 2;
		}
	}
	rng = seed;
	x = calloc(n * f, sizeof(*x));
	y = calloc(n, sizeof(*y));
	w = calloc(f * classes, sizeof(*w));
	if (x == NULL || y == NULL || w == NULL) {
		free(x);
		free(y);
		free(w);
		return 1;
	}
	for (unsigned long i = 0; i < f * classes; i++)
		w[i] = uniform();
	for (unsigned long i = 0; i < n; i++) {
		double best = -INFINITY;

		for (unsigned long j = 0; j < f; j++)
			x[i * f + j] = (float)uniform();
		for (unsigned long k = 0; k < classes; k++) {
			double s = 0.3 * uniform();

			for (unsigned long j = 0; j < f; j++)
				s += w[k * f + j] * x[i * f + j];
			if (classes == 2) {
				y[i] = s > 0 ? 1.0f : 0.0f;
				break;
			}
			if (s > best) {
				best = s;
				y[i] = (float)k;
			}
		}
	}
	CHECK(XGDMatrixCreateFromMat(x, n, f, NAN, &d));
	CHECK(XGDMatrixSetFloatInfo(d, "label", y, n));
	CHECK(XGBoosterCreate(&d, 1, &b));
	CHECK(XGBoosterSetParam(b, "objective",
	    classes == 2 ? "binary:logistic" : "multi:softprob"));
	if (classes != 2) {
		snprintf(buf, sizeof(buf), "%lu", classes);
		CHECK(XGBoosterSetParam(b, "num_class", buf));
	}
	CHECK(XGBoosterSetParam(b, "max_depth", "4"));
	CHECK(XGBoosterSetParam(b, "eta", "0.3"));
	CHECK(XGBoosterSetParam(b, "nthread", "1"));
	snprintf(buf, sizeof(buf), "%lu", seed);
	CHECK(XGBoosterSetParam(b, "seed", buf));
	for (unsigned long r = 0; r < rounds; r++)
		CHECK(XGBoosterUpdateOneIter(b, (int)r, d));
	CHECK(XGBoosterSaveModel(b, argv[2]));
	XGBoosterFree(b);
	XGDMatrixFree(d);
	free(x);
	free(y);
	free(w);
	return 0;
}

static int
rows(int argc, char **argv)
{
	unsigned long n, f;
	int missing = 0, json = 0;
	FILE *o;

	if (argc < 6)
		return 2;
	n = num(argv[3]);
	f = num(argv[4]);
	rng = num(argv[5]) * 7919 + 17;
	for (int i = 6; i < argc; i++) {
		if (strcmp(argv[i], "--missing") == 0)
			missing = 1;
		else if (strcmp(argv[i], "--json") == 0)
			json = 1;
	}
	if ((o = fopen(argv[2], "w")) == NULL)
		return 1;
	if (json)
		fputs("[\n", o);
	else
		for (unsigned long j = 0; j < f; j++)
			fprintf(o, "%sfeature_%lu", j ? "," : "", j);
	if (!json)
		fputc('\n', o);
	for (unsigned long i = 0; i < n; i++) {
		if (json)
			fputc('[', o);
		for (unsigned long j = 0; j < f; j++) {
			double v = uniform();

			if (j)
				fputc(',', o);
			if (missing && (i * f + j) % 7 == 3)
				fputs(json ? "null" : "", o);
			else
				fprintf(o, "%.6f", v);
		}
		if (json)
			fputs(i + 1 < n ? "],\n" : "]\n", o);
		else
			fputc('\n', o);
	}
	if (json)
		fputs("]\n", o);
	return fclose(o) == 0 ? 0 : 1;
}

/* The CSV of `rows` (header, empty = missing) as a dense matrix. */
static float *
load_csv(const char *path, unsigned long *n, unsigned long *f)
{
	FILE *in = fopen(path, "r");
	char line[1 << 16];
	float *x = NULL;
	size_t cap = 0, len = 0;

	*n = *f = 0;
	if (in == NULL || fgets(line, sizeof(line), in) == NULL)
		exit(1);
	while (fgets(line, sizeof(line), in) != NULL) {
		unsigned long k = 0;
		char *p = line;

		for (;;) {
			char *end = p + strcspn(p, ",\n");
			int last = *end != ',';

			if (len == cap) {
				cap = cap ? cap * 2 : 4096;
				if ((x = realloc(x, cap * sizeof(*x))) == NULL)
					exit(1);
			}
			*end = '\0';
			x[len++] = *p == '\0' ? NAN : (float)strtod(p, NULL);
			k++;
			if (last)
				break;
			p = end + 1;
		}
		*f = k;
		(*n)++;
	}
	fclose(in);
	return x;
}

static BoosterHandle
load_model(const char *path)
{
	BoosterHandle b;

	CHECK(XGBoosterCreate(NULL, 0, &b));
	CHECK(XGBoosterLoadModel(b, path));
	CHECK(XGBoosterSetParam(b, "nthread", "1"));
	return b;
}

static void
predict_dense(BoosterHandle b, const float *x, unsigned long n, unsigned long f,
    const float **res, unsigned long *per)
{
	char values[256];
	const bst_ulong *shape;
	bst_ulong dim;

	snprintf(values, sizeof(values),
	    "{\"data\": [%llu, true], \"shape\": [%lu, %lu], "
	    "\"typestr\": \"<f4\", \"version\": 3}",
	    (unsigned long long)(uintptr_t)x, n, f);
	CHECK(XGBoosterPredictFromDense(b, values,
	    "{\"type\": 0, \"training\": false, \"iteration_begin\": 0, \"cache_id\": 0, "
	    "\"iteration_end\": 0, \"strict_shape\": false, \"missing\": NaN}",
	    NULL, &shape, &dim, res));
	*per = dim == 2 ? (unsigned long)shape[1] : 1;
}

static int
predict(char **argv)
{
	BoosterHandle b = load_model(argv[2]);
	unsigned long n, f, per;
	float *x = load_csv(argv[3], &n, &f);
	const float *res;

	predict_dense(b, x, n, f, &res, &per);
	for (unsigned long i = 0; i < n; i++) {
		if (per == 1)
			printf("%.9g %.9g\n", (double)(1.0f - res[i]),
			    (double)res[i]);
		else
			for (unsigned long k = 0; k < per; k++)
				printf("%.9g%c", (double)res[i * per + k],
				    k + 1 < per ? ' ' : '\n');
	}
	XGBoosterFree(b);
	free(x);
	return 0;
}

static int
timeit(char **argv)
{
	BoosterHandle b = load_model(argv[2]);
	unsigned long n, f, per, iters = num(argv[4]);
	float *x = load_csv(argv[3], &n, &f);
	const float *res;
	struct timespec t0, t1;
	double s;

	predict_dense(b, x, n, f, &res, &per); /* warm-up */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (unsigned long i = 0; i < iters; i++)
		predict_dense(b, x, n, f, &res, &per);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	s = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("%.1f\n", (double)(n * iters) / s);
	XGBoosterFree(b);
	free(x);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc >= 3 && strcmp(argv[1], "train") == 0)
		return train(argc, argv);
	if (argc >= 6 && strcmp(argv[1], "rows") == 0)
		return rows(argc, argv);
	if (argc == 4 && strcmp(argv[1], "predict") == 0)
		return predict(argv);
	if (argc == 5 && strcmp(argv[1], "time") == 0)
		return timeit(argv);
	fprintf(stderr, "usage: see the comment at the top of infer_tool.c\n");
	return 2;
}
