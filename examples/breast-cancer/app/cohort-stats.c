/*
 * cohort-stats: the third party's application in the runbook flow. It is
 * shipped encrypted (ward encrypt of the app/ directory) and runs only
 * inside an attested enclave (ward exec), over the dataset the host put
 * in the enclave's workspace (ward sync or ward cp).
 *
 *   cohort-stats DATASET_DIR OUTPUT_DIR
 *
 * Reads every *.csv in DATASET_DIR (a header line of column names, then
 * numbers; a column named "target" holds the diagnosis, 0 = malignant,
 * 1 = benign), and writes OUTPUT_DIR/summary.csv: per feature, its mean
 * over all records and over each diagnosis, and how far apart the two
 * means are in units of the pooled standard deviation (which features
 * separate the classes best). Prints a short report on standard output.
 *
 * Built static (libc only), since an enclave image holds no libraries of
 * its own beyond what ward brings.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXCOLS 64
#define NAME_MAX_LEN 64
#define LINE_MAX_LEN 8192

struct stats {
	char name[MAXCOLS][NAME_MAX_LEN];
	int ncols, target; /* target: column index, -1 when absent */
	double sum[3][MAXCOLS], sq[3][MAXCOLS];
	long n[3]; /* 0: malignant, 1: benign, 2: all */
	long files;
};

static int
read_header(char *line, struct stats *s, const char *path)
{
	int n = 0, target = -1;

	line[strcspn(line, "\r\n")] = '\0';
	for (char *tok = strtok(line, ","); tok != NULL;
	     tok = strtok(NULL, ",")) {
		if (n == MAXCOLS) {
			fprintf(stderr, "cohort-stats: %s: too many columns\n",
			    path);
			return -1;
		}
		if (strcmp(tok, "target") == 0)
			target = n;
		else if (s->files > 0 && strcmp(tok, s->name[n]) != 0) {
			fprintf(stderr,
			    "cohort-stats: %s: column %d is %s, "
			    "not %s\n",
			    path, n + 1, tok, s->name[n]);
			return -1;
		}
		snprintf(s->name[n], sizeof(s->name[n]), "%s", tok);
		n++;
	}
	if (s->files > 0 && (n != s->ncols || target != s->target)) {
		fprintf(stderr,
		    "cohort-stats: %s: other columns than the "
		    "first file's\n",
		    path);
		return -1;
	}
	s->ncols = n;
	s->target = target;
	return 0;
}

static int
read_file(const char *path, struct stats *s)
{
	char line[LINE_MAX_LEN];
	long lineno = 1;
	FILE *f;
	int r = -1;

	if ((f = fopen(path, "r")) == NULL) {
		fprintf(
		    stderr, "cohort-stats: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (fgets(line, sizeof(line), f) == NULL ||
	    read_header(line, s, path) != 0)
		goto out;
	while (fgets(line, sizeof(line), f) != NULL) {
		double v[MAXCOLS];
		char *p = line, *end;
		int cls = 2;

		lineno++;
		if (line[strspn(line, " \r\n")] == '\0')
			continue;
		for (int i = 0; i < s->ncols; i++) {
			errno = 0;
			v[i] = strtod(p, &end);
			if (end == p || errno != 0 ||
			    (i + 1 < s->ncols ? *end != ','
			                      : strchr("\r\n", *end) == NULL)) {
				fprintf(stderr,
				    "cohort-stats: %s:%ld: field %d "
				    "is not a number\n",
				    path, lineno, i + 1);
				goto out;
			}
			p = end + 1;
		}
		if (s->target >= 0) {
			if (v[s->target] != 0.0 && v[s->target] != 1.0) {
				fprintf(stderr,
				    "cohort-stats: %s:%ld: target "
				    "is not 0 or 1\n",
				    path, lineno);
				goto out;
			}
			cls = (int)v[s->target];
		}
		for (int c = 0; c < 3; c++) {
			if (c != cls && c != 2)
				continue;
			s->n[c]++;
			for (int i = 0; i < s->ncols; i++) {
				s->sum[c][i] += v[i];
				s->sq[c][i] += v[i] * v[i];
			}
		}
	}
	s->files++;
	r = 0;
out:
	fclose(f);
	return r;
}

static double
mean(const struct stats *s, int c, int i)
{
	return s->n[c] ? s->sum[c][i] / (double)s->n[c] : NAN;
}

static double
var(const struct stats *s, int c, int i)
{
	double m = mean(s, c, i);

	return s->n[c] > 1
	    ? (s->sq[c][i] - (double)s->n[c] * m * m) / (double)(s->n[c] - 1)
	    : NAN;
}

/* Standardized difference of the class means (Cohen's d). */
static double
separation(const struct stats *s, int i)
{
	double pooled;

	if (s->n[0] < 2 || s->n[1] < 2)
		return NAN;
	pooled = sqrt(((double)(s->n[0] - 1) * var(s, 0, i) +
	                  (double)(s->n[1] - 1) * var(s, 1, i)) /
	    (double)(s->n[0] + s->n[1] - 2));
	return pooled > 0 ? (mean(s, 0, i) - mean(s, 1, i)) / pooled : NAN;
}

static int
by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

int
main(int argc, char **argv)
{
	static struct stats s;
	struct dirent **ents = NULL;
	char path[4096];
	int n, best[3] = {-1, -1, -1}, r = 1;
	FILE *out = NULL;

	if (argc != 3) {
		fprintf(stderr, "usage: cohort-stats DATASET_DIR OUTPUT_DIR\n");
		return 2;
	}
	if ((n = scandir(argv[1], &ents, NULL, by_name)) < 0) {
		fprintf(
		    stderr, "cohort-stats: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	for (int k = 0; k < n; k++) {
		size_t len = strlen(ents[k]->d_name);

		if (len < 5 || strcmp(ents[k]->d_name + len - 4, ".csv") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", argv[1], ents[k]->d_name);
		if (read_file(path, &s) != 0)
			goto out;
	}
	if (s.n[2] == 0) {
		fprintf(
		    stderr, "cohort-stats: no records in %s/*.csv\n", argv[1]);
		goto out;
	}
	snprintf(path, sizeof(path), "%s/summary.csv", argv[2]);
	if ((out = fopen(path, "w")) == NULL) {
		fprintf(
		    stderr, "cohort-stats: %s: %s\n", path, strerror(errno));
		goto out;
	}
	fprintf(out,
	    "feature,mean_all,mean_malignant,mean_benign,"
	    "separation\n");
	for (int i = 0; i < s.ncols; i++) {
		double d = separation(&s, i);

		if (i == s.target)
			continue;
		fprintf(out, "%s,%.6g,%.6g,%.6g,%.3f\n", s.name[i],
		    mean(&s, 2, i), mean(&s, 0, i), mean(&s, 1, i), d);
		/* the three features that separate the classes best */
		for (int k = 0; k < 3 && !isnan(d); k++) {
			if (best[k] < 0 ||
			    fabs(d) > fabs(separation(&s, best[k]))) {
				memmove(&best[k + 1], &best[k],
				    (size_t)(2 - k) * sizeof(best[0]));
				best[k] = i;
				break;
			}
		}
	}
	if (fclose(out) != 0) {
		out = NULL;
		fprintf(stderr, "cohort-stats: %s: write failed\n", path);
		goto out;
	}
	out = NULL;
	printf("cohort-stats: %ld file(s), %ld records", s.files, s.n[2]);
	if (s.target >= 0)
		printf(" (%ld malignant, %ld benign)", s.n[0], s.n[1]);
	printf("\n");
	for (int k = 0; k < 3 && best[k] >= 0; k++)
		printf("  %-22s malignant %9.4g   benign %9.4g   (d = %.2f)\n",
		    s.name[best[k]], mean(&s, 0, best[k]), mean(&s, 1, best[k]),
		    separation(&s, best[k]));
	printf("cohort-stats: wrote %s\n", path);
	r = 0;
out:
	if (out != NULL)
		fclose(out);
	for (int k = 0; k < n; k++)
		free(ents[k]);
	free(ents);
	return r;
}
