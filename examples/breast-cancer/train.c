/*
 * train: the vendor's training program for the breast-cancer example, on
 * XGBoost's C API.
 *
 *   train DATA.csv OUTDIR [--seed N] [--rounds R] [--holdout PERCENT]
 *
 * DATA.csv is wdbc.csv: a header line, then 30 features and the target
 * (0 = malignant, 1 = benign, as in scikit-learn) per line. A fixed-seed
 * shuffle holds out PERCENT (default 20) of each class; the rest trains a
 * binary:logistic booster. It writes to OUTDIR:
 *
 *   model.json       the trained model (XGBoost JSON), for ward encrypt
 *   patients.csv     the held-out rows without their target: the
 *                    hospital's patient records in the demo
 *   labels.csv       their true targets, one per line, in the same order
 *
 * and prints one JSON line: the row counts and the held-out accuracy of
 * the model's own predictions (probability of benign >= 0.5). The same
 * inputs give the same model, byte for byte: one thread, no sampling, a
 * fixed seed.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xgboost/c_api.h>

#define NFEAT 30
#define MAXROWS 4096
#define LINE_MAX_LEN 8192

struct data {
	float x[MAXROWS][NFEAT];
	float y[MAXROWS];
	size_t n;
	char header[LINE_MAX_LEN];
};

static uint64_t rng_state;

/* PCG-style LCG step; the high bits are uniform enough for a shuffle. */
static uint32_t
rng_next(void)
{
	rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
	return (uint32_t)(rng_state >> 33);
}

static int
parse_ulong(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0 || v > max) {
		fprintf(stderr, "train: %s: not a number up to %lu\n", s, max);
		return -1;
	}
	*out = v;
	return 0;
}

/* One data line: exactly NFEAT numbers and a 0/1 target. */
static int
parse_row(char *line, size_t lineno, float *x, float *y)
{
	char *p = line, *end;

	for (int i = 0; i <= NFEAT; i++) {
		double v;

		errno = 0;
		v = strtod(p, &end);
		if (end == p || errno != 0 ||
		    (*end != (i == NFEAT ? '\0' : ','))) {
			fprintf(stderr,
			    "train: line %zu, field %d: not a number\n", lineno,
			    i + 1);
			return -1;
		}
		if (i < NFEAT)
			x[i] = (float)v;
		else if (v == 0.0 || v == 1.0)
			*y = (float)v;
		else {
			fprintf(stderr,
			    "train: line %zu: target %g is not 0 or 1\n",
			    lineno, v);
			return -1;
		}
		p = end + 1;
	}
	return 0;
}

static int
load(const char *path, struct data *d)
{
	char line[LINE_MAX_LEN];
	size_t lineno = 1;
	FILE *f;
	int r = -1;

	if ((f = fopen(path, "r")) == NULL) {
		fprintf(stderr, "train: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (fgets(d->header, sizeof(d->header), f) == NULL) {
		fprintf(stderr, "train: %s: empty\n", path);
		goto out;
	}
	d->n = 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\r\n")] = '\0';
		lineno++;
		if (line[0] == '\0')
			continue;
		if (d->n == MAXROWS) {
			fprintf(
			    stderr, "train: %s: over %d rows\n", path, MAXROWS);
			goto out;
		}
		if (parse_row(line, lineno, d->x[d->n], &d->y[d->n]) != 0)
			goto out;
		d->n++;
	}
	r = 0;
out:
	fclose(f);
	return r;
}

/* Shuffle idx[0..n) in place (Fisher-Yates). */
static void
shuffle(size_t *idx, size_t n)
{
	for (size_t i = n; i > 1; i--) {
		size_t j = rng_next() % i, t = idx[i - 1];

		idx[i - 1] = idx[j];
		idx[j] = t;
	}
}

#define XGB(call)                                                              \
	do {                                                                   \
		if ((call) != 0) {                                             \
			fprintf(stderr, "train: %s: %s\n", #call,              \
			    XGBGetLastError());                                \
			goto out;                                              \
		}                                                              \
	} while (0)

static FILE *
create(const char *dir, const char *name)
{
	char path[4096];
	FILE *f;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >=
	    sizeof(path)) {
		fprintf(stderr, "train: %s: path too long\n", dir);
		return NULL;
	}
	if ((f = fopen(path, "w")) == NULL)
		fprintf(stderr, "train: %s: %s\n", path, strerror(errno));
	return f;
}

int
main(int argc, char **argv)
{
	static struct data d;
	static float tx[MAXROWS][NFEAT], ty[MAXROWS], hx[MAXROWS][NFEAT],
	    hy[MAXROWS];
	static size_t idx[2][MAXROWS];
	unsigned long seed = 8, rounds = 100, holdout = 20;
	size_t count[2] = {0, 0}, nt = 0, nh = 0, correct = 0;
	DMatrixHandle dtrain = NULL, dhold = NULL;
	BoosterHandle b = NULL;
	const float *pred;
	const bst_ulong *shape;
	bst_ulong dim;
	FILE *pf = NULL, *lf = NULL;
	char model[4096], buf[32];
	int r = 1;

	if (argc < 3 || argc % 2 == 0) {
		fprintf(stderr,
		    "usage: train DATA.csv OUTDIR [--seed N] "
		    "[--rounds R] [--holdout PERCENT]\n");
		return 2;
	}
	for (int i = 3; i + 1 < argc; i += 2) {
		int e;

		if (strcmp(argv[i], "--seed") == 0)
			e = parse_ulong(argv[i + 1], UINT32_MAX, &seed);
		else if (strcmp(argv[i], "--rounds") == 0)
			e = parse_ulong(argv[i + 1], 10000, &rounds);
		else if (strcmp(argv[i], "--holdout") == 0)
			e = parse_ulong(argv[i + 1], 90, &holdout);
		else {
			fprintf(stderr, "train: unknown option %s\n", argv[i]);
			return 2;
		}
		if (e != 0)
			return 2;
	}
	if (load(argv[1], &d) != 0)
		return 1;

	/* A stratified split: the same share of each class held out. */
	for (size_t i = 0; i < d.n; i++) {
		int c = d.y[i] != 0.0f;

		idx[c][count[c]++] = i;
	}
	rng_state = seed;
	for (int c = 0; c < 2; c++) {
		size_t keep = (count[c] * holdout + 50) / 100;

		shuffle(idx[c], count[c]);
		for (size_t k = 0; k < count[c]; k++) {
			size_t i = idx[c][k];

			if (k < keep) {
				memcpy(hx[nh], d.x[i], sizeof(hx[nh]));
				hy[nh++] = d.y[i];
			} else {
				memcpy(tx[nt], d.x[i], sizeof(tx[nt]));
				ty[nt++] = d.y[i];
			}
		}
	}
	/* Mix the held-out classes, so the patients' file is not sorted. */
	for (size_t i = nh; i > 1; i--) {
		size_t j = rng_next() % i;
		float t[NFEAT], ly = hy[i - 1];

		memcpy(t, hx[i - 1], sizeof(t));
		memcpy(hx[i - 1], hx[j], sizeof(t));
		memcpy(hx[j], t, sizeof(t));
		hy[i - 1] = hy[j];
		hy[j] = ly;
	}
	if (nt == 0 || nh == 0) {
		fprintf(stderr, "train: nothing to train on or to test\n");
		return 1;
	}

	XGB(XGDMatrixCreateFromMat(&tx[0][0], nt, NFEAT, NAN, &dtrain));
	XGB(XGDMatrixSetFloatInfo(dtrain, "label", ty, nt));
	XGB(XGBoosterCreate(&dtrain, 1, &b));
	XGB(XGBoosterSetParam(b, "objective", "binary:logistic"));
	XGB(XGBoosterSetParam(b, "max_depth", "3"));
	XGB(XGBoosterSetParam(b, "eta", "0.2"));
	XGB(XGBoosterSetParam(b, "nthread", "1"));
	XGB(XGBoosterSetParam(b, "tree_method", "exact"));
	snprintf(buf, sizeof(buf), "%lu", seed);
	XGB(XGBoosterSetParam(b, "seed", buf));
	for (unsigned long it = 0; it < rounds; it++)
		XGB(XGBoosterUpdateOneIter(b, (int)it, dtrain));
	if ((size_t)snprintf(model, sizeof(model), "%s/model.json", argv[2]) >=
	    sizeof(model)) {
		fprintf(stderr, "train: %s: path too long\n", argv[2]);
		goto out;
	}
	XGB(XGBoosterSaveModel(b, model));

	XGB(XGDMatrixCreateFromMat(&hx[0][0], nh, NFEAT, NAN, &dhold));
	XGB(XGBoosterPredictFromDMatrix(b, dhold,
	    "{\"type\": 0, \"training\": false, \"iteration_begin\": 0, "
	    "\"iteration_end\": 0, \"strict_shape\": false, \"cache_id\": 0}",
	    &shape, &dim, &pred));
	if ((pf = create(argv[2], "patients.csv")) == NULL ||
	    (lf = create(argv[2], "labels.csv")) == NULL)
		goto out;
	/* The header without the target column. */
	d.header[strcspn(d.header, "\r\n")] = '\0';
	if (strrchr(d.header, ',') != NULL)
		*strrchr(d.header, ',') = '\0';
	fprintf(pf, "%s\n", d.header);
	for (size_t i = 0; i < nh; i++) {
		for (int j = 0; j < NFEAT; j++)
			fprintf(pf, "%s%.7g", j ? "," : "", (double)hx[i][j]);
		fputc('\n', pf);
		fprintf(lf, "%d\n", (int)hy[i]);
		correct += (pred[i] >= 0.5f) == (hy[i] != 0.0f);
	}
	if (ferror(pf) || ferror(lf))
		goto out;
	printf("{\"seed\": %lu, \"rounds\": %lu, \"train_rows\": %zu, "
	       "\"holdout_rows\": %zu, \"holdout_correct\": %zu, "
	       "\"holdout_accuracy\": %.4f}\n",
	    seed, rounds, nt, nh, correct, (double)correct / (double)nh);
	r = 0;
out:
	if (pf != NULL && fclose(pf) != 0)
		r = 1;
	if (lf != NULL && fclose(lf) != 0)
		r = 1;
	if (b != NULL)
		XGBoosterFree(b);
	if (dtrain != NULL)
		XGDMatrixFree(dtrain);
	if (dhold != NULL)
		XGDMatrixFree(dhold);
	return r;
}
