/*
 * Rows for INFER (docs/protocol.md "infer"): the input, CSV or JSON, as a
 * dense matrix of floats. Hand-written for a narrow grammar (numbers,
 * missing values, one optional CSV header) so that a 64 MiB input costs
 * the matrix and nothing more: a general JSON library would allocate a
 * node per number.
 *
 * CSV: lines end in LF or CRLF; fields are separated by commas; a field is
 * a decimal number (optionally in double quotes, with spaces around it),
 * or empty, NA, NaN or null for a missing value. The first line is a
 * header, and skipped, when any of its fields is not a number or missing.
 * Blank lines are skipped.
 *
 * JSON: an array of rows, each an array of numbers or nulls (missing),
 * per RFC 8259's number grammar.
 *
 * Every row has the same number of fields; numbers must be finite and fit
 * a float. Errors name the row (1-based, counting lines for CSV) and
 * field.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define FIELD_MAX 64 /* characters in one number */

void
agent_rows_free(struct agent_rows *r)
{
	if (r->v != NULL)
		ward_cleanse(r->v, r->cap * sizeof(float));
	free(r->v);
	memset(r, 0, sizeof(*r));
}

static int
push(struct agent_rows *r, float v, size_t max_cells)
{
	if (r->n == r->cap) {
		size_t cap = r->cap == 0 ? 1024 : r->cap * 2;
		float *nv;

		if (r->n >= max_cells)
			return ward_errf(WARD_ELIMIT,
			    "the input has more than %zu values (the agent's "
			    "limit per request)",
			    max_cells);
		if (cap > max_cells)
			cap = max_cells;
		/* a fresh block, the old one cleansed: patient data is not
		 * left behind in freed memory by realloc */
		if ((nv = malloc(cap * sizeof(float))) == NULL)
			return ward_enomem();
		if (r->n > 0)
			memcpy(nv, r->v, r->n * sizeof(float));
		if (r->v != NULL)
			ward_cleanse(r->v, r->cap * sizeof(float));
		free(r->v);
		r->v = nv;
		r->cap = cap;
	}
	r->v[r->n++] = v;
	return 0;
}

/* A row ended with k fields: the first row sets the width. */
static int
end_row(struct agent_rows *r, size_t k, size_t where, const char *unit)
{
	if (r->rows == 0)
		r->cols = k;
	else if (k != r->cols)
		return ward_errf(WARD_EFORMAT,
		    "%s %zu has %zu values, the rows before it %zu: every row "
		    "needs the same number",
		    unit, where, k, r->cols);
	r->rows++;
	return 0;
}

static bool
is_missing(const char *s, size_t n)
{
	static const char *const words[] = {"NA", "NaN", "nan", "null", "NULL"};

	if (n == 0)
		return true;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strlen(words[i]) == n && memcmp(words[i], s, n) == 0)
			return true;
	return false;
}

/*
 * RFC 8259's number grammar, with a leading '+' allowed when plus_ok
 * (CSV writers emit it) and a leading '.' or digits after a trailing '.'
 * (also seen in CSV). Returns true when s[0..n) is one number.
 */
static bool
number_syntax(const char *s, size_t n, bool lenient)
{
	size_t i = 0, digits = 0;

	if (i < n && (s[i] == '-' || (lenient && s[i] == '+')))
		i++;
	if (!lenient && i < n && s[i] == '0' && i + 1 < n && s[i + 1] >= '0' &&
	    s[i + 1] <= '9')
		return false; /* JSON: no leading zeros */
	while (i < n && s[i] >= '0' && s[i] <= '9')
		i++, digits++;
	if (i < n && s[i] == '.') {
		size_t frac = 0;

		i++;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++, frac++;
		if (frac == 0 && !lenient)
			return false;
		digits += frac;
	} else if (digits == 0)
		return false;
	if (digits == 0)
		return false;
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		size_t exp = 0;

		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++, exp++;
		if (exp == 0)
			return false;
	}
	return i == n;
}

/* s[0..n) as a float: 0, or -WARD_EFORMAT naming where. */
static int
to_float(const char *s, size_t n, bool lenient, float *out, const char *unit,
    size_t row, size_t field)
{
	char tmp[FIELD_MAX + 1];
	double d;
	char *end;

	if (n > FIELD_MAX || !number_syntax(s, n, lenient))
		return ward_errf(WARD_EFORMAT,
		    "%s %zu, value %zu: %s is not a number", unit, row, field,
		    ward_quote(s, n > FIELD_MAX ? FIELD_MAX : n));
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	errno = 0;
	d = strtod(tmp, &end);
	if (end != tmp + n || !isfinite(d) || fabs(d) > 3.4028234663852886e38)
		return ward_errf(WARD_EFORMAT,
		    "%s %zu, value %zu: %s is out of a float's range", unit,
		    row, field, ward_quote(s, n));
	/* underflow to zero or a subnormal is fine: it is what a float
	 * holds */
	*out = (float)d;
	return 0;
}

static void
trim(const char **s, size_t *n)
{
	while (*n > 0 && (**s == ' ' || **s == '\t'))
		(*s)++, (*n)--;
	while (*n > 0 && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
		(*n)--;
	if (*n >= 2 && (*s)[0] == '"' && (*s)[*n - 1] == '"')
		(*s)++, *n -= 2;
}

/* One CSV line's fields: numbers into r (when !probe), or, when probe,
 * *header set if any field is not a number. */
static int
csv_line(struct agent_rows *r, const char *p, size_t n, size_t line,
    size_t max_cells, bool probe, bool *header)
{
	size_t k = 0, start = 0;
	int e;

	for (size_t i = 0; i <= n; i++) {
		const char *f;
		size_t fl;
		float v;

		if (i < n && p[i] != ',')
			continue;
		f = p + start;
		fl = i - start;
		start = i + 1;
		k++;
		trim(&f, &fl);
		if (probe) {
			if (!is_missing(f, fl) && !number_syntax(f, fl, true)) {
				*header = true;
				return 0;
			}
			continue;
		}
		if (is_missing(f, fl))
			v = NAN;
		else if ((e = to_float(f, fl, true, &v, "line", line, k)) != 0)
			return e;
		if ((e = push(r, v, max_cells)) != 0)
			return e;
	}
	return probe ? 0 : end_row(r, k, line, "line");
}

static int
parse_csv(const char *p, size_t n, size_t max_cells, struct agent_rows *r)
{
	size_t pos = 0, line = 0;
	bool first = true;
	int e;

	while (pos < n) {
		const char *nl = memchr(p + pos, '\n', n - pos);
		size_t len = nl != NULL ? (size_t)(nl - (p + pos)) : n - pos;
		const char *s = p + pos;
		size_t bl = len;

		line++;
		pos += len + (nl != NULL);
		if (bl > 0 && s[bl - 1] == '\r')
			bl--;
		if (memchr(s, '\0', bl) != NULL)
			return ward_errf(WARD_EFORMAT,
			    "line %zu has a NUL byte: the input is not CSV "
			    "text",
			    line);
		{
			const char *t = s;
			size_t tl = bl;

			while (tl > 0 && (*t == ' ' || *t == '\t'))
				t++, tl--;
			if (tl == 0)
				continue; /* blank */
		}
		if (first) {
			bool header = false;

			first = false;
			if ((e = csv_line(r, s, bl, line, max_cells, true,
			         &header)) != 0)
				return e;
			if (header)
				continue;
		}
		if ((e = csv_line(r, s, bl, line, max_cells, false, NULL)) != 0)
			return e;
	}
	return 0;
}

/* ---- JSON ------------------------------------------------------------- */

struct js {
	const char *p;
	size_t n, pos;
};

static void
ws(struct js *j)
{
	while (j->pos < j->n &&
	    (j->p[j->pos] == ' ' || j->p[j->pos] == '\t' ||
	        j->p[j->pos] == '\n' || j->p[j->pos] == '\r'))
		j->pos++;
}

static int
expect(struct js *j, char c, const char *what)
{
	ws(j);
	if (j->pos >= j->n)
		return ward_errf(WARD_EFORMAT,
		    "JSON input ends early (%s expected at byte %zu)", what,
		    j->pos);
	if (j->p[j->pos] != c)
		return ward_errf(WARD_EFORMAT,
		    "JSON input: %s expected at byte %zu, found %s", what,
		    j->pos, ward_quote(j->p + j->pos, 1));
	j->pos++;
	return 0;
}

static bool
peek(struct js *j, char c)
{
	ws(j);
	return j->pos < j->n && j->p[j->pos] == c;
}

static int
json_value(struct js *j, size_t row, size_t field, float *v)
{
	size_t s;

	ws(j);
	s = j->pos;
	if (j->n - s >= 4 && memcmp(j->p + s, "null", 4) == 0) {
		j->pos += 4;
		*v = NAN;
		return 0;
	}
	while (j->pos < j->n && strchr("+-.0123456789eE", j->p[j->pos]) &&
	    j->p[j->pos] != '\0')
		j->pos++;
	if (j->pos == s)
		return ward_errf(WARD_EFORMAT,
		    "JSON input: row %zu, value %zu: a number or null "
		    "expected at byte %zu",
		    row, field, s);
	return to_float(j->p + s, j->pos - s, false, v, "row", row, field);
}

static int
parse_json(const char *p, size_t n, size_t max_cells, struct agent_rows *r)
{
	struct js j = {p, n, 0};
	size_t row = 0;
	int e;

	if ((e = expect(&j, '[', "'['")) != 0)
		return e;
	if (peek(&j, ']')) {
		j.pos++;
		goto end;
	}
	for (;;) {
		size_t k = 0;

		row++;
		if ((e = expect(&j, '[', "'[' (a row)")) != 0)
			return e;
		if (!peek(&j, ']'))
			for (;;) {
				float v;

				k++;
				if ((e = json_value(&j, row, k, &v)) != 0 ||
				    (e = push(r, v, max_cells)) != 0)
					return e;
				if (peek(&j, ','))
					j.pos++;
				else
					break;
			}
		if ((e = expect(&j, ']', "',' or ']'")) != 0 ||
		    (e = end_row(r, k, row, "row")) != 0)
			return e;
		if (peek(&j, ','))
			j.pos++;
		else
			break;
	}
	if ((e = expect(&j, ']', "',' or ']'")) != 0)
		return e;
end:
	ws(&j);
	if (j.pos != j.n)
		return ward_errf(WARD_EFORMAT,
		    "JSON input: data after the end, at byte %zu", j.pos);
	return 0;
}

int
agent_rows_parse(const uint8_t *in, size_t n, enum agent_fmt f,
    size_t max_cells, struct agent_rows *out)
{
	const char *p = (const char *)in;
	size_t skip = 0;
	int e;

	memset(out, 0, sizeof(*out));
	if (n >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0)
		skip = 3; /* a UTF-8 byte order mark */
	if (f == AGENT_FMT_AUTO) {
		size_t i = skip;

		while (i < n && strchr(" \t\r\n", p[i]) != NULL && p[i] != '\0')
			i++;
		f = i < n && p[i] == '[' ? AGENT_FMT_JSON : AGENT_FMT_CSV;
	}
	e = f == AGENT_FMT_JSON ? parse_json(p + skip, n - skip, max_cells, out)
	                        : parse_csv(p + skip, n - skip, max_cells, out);
	if (e == 0 && out->rows == 0)
		e = ward_errf(WARD_EFORMAT, "the input has no rows");
	if (e == 0 && out->cols == 0)
		e = ward_errf(WARD_EFORMAT, "the input's rows have no values");
	if (e != 0)
		agent_rows_free(out);
	return e;
}
