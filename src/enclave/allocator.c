/*
 * The enclave allocator (nitro.md §7.5): how much memory and which CPUs
 * all enclaves together may take, read from allocator.yaml as Nitro's
 * nitro-enclaves-allocator reads it, and the share one more enclave
 * reserves from what the running ones leave. CPU lists are Linux's
 * cpulist syntax ("0-3,8,10-11").
 *
 * allocator.yaml is one YAML document holding a mapping of scalars:
 * memory_mib and exactly one of cpu_count and cpu_pool. Nitro's own
 * allocator is a bash script reading "key: value" lines, so ward is
 * strict where bash would misread: integers are plain decimal (a leading
 * 0 is octal to bash arithmetic, and YAML 1.1 agrees), and nothing else
 * (other keys, nested values, a second document) is accepted.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <yaml.h>

#include "ward/enclave.h"
#include "util/yaml.h"
#include "ward/util.h"

#define MIB ((uint64_t)1 << 20)
#define MEMORY_MIB_MAX ((uint64_t)1 << 40)
/* The built-in defaults give enclaves a quarter of memory, but never
 * less than the smallest enclave Nitro starts (nitro.md §7.4). */
#define DEFAULT_MEMORY_MIN_MIB 64
#define DEFAULT_SOURCE "built-in defaults (no " WARD_ALLOCATOR_PATH ")"

#define CPU_LIST_EXAMPLE "expected CPU numbers and ranges such as 2,3,6-9"

enum setting { S_MEMORY_MIB, S_CPU_COUNT, S_CPU_POOL, S_COUNT };

static const char *const setting_names[S_COUNT] = {
    [S_MEMORY_MIB] = "memory_mib",
    [S_CPU_COUNT] = "cpu_count",
    [S_CPU_POOL] = "cpu_pool",
};

struct settings {
	bool seen[S_COUNT];
	size_t line[S_COUNT]; /* 1-based, for messages */
	uint64_t memory_mib;
	uint64_t cpu_count;
	cpu_set_t pool;
};

/* ---- CPU lists -------------------------------------------------------- */

/*
 * One CPU number at *p: decimal without sign or leading zeros (bash reads
 * "08" as bad octal), below CPU_SETSIZE. Returns 0, -1 (not a number) or
 * -2 (too large); *p moves past the digits.
 */
static int
cpu_number(const char **p, unsigned *out)
{
	const char *s = *p;
	unsigned v = 0;
	bool big = false;

	if (*s < '0' || *s > '9')
		return -1;
	if (s[0] == '0' && s[1] >= '0' && s[1] <= '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		/* stop accumulating once too large: no overflow */
		if (!big)
			v = v * 10 + (unsigned)(*s - '0');
		if (v >= CPU_SETSIZE)
			big = true;
	}
	*p = s;
	*out = v;
	return big ? -2 : 0;
}

int
ward_cpu_list_parse(const char *s, cpu_set_t *out)
{
	const char *p = s;
	int r = 0;

	CPU_ZERO(out);
	if (s == NULL || *s == '\0')
		return ward_errf(
		    WARD_EFORMAT, "empty CPU list: " CPU_LIST_EXAMPLE);
	for (;;) {
		unsigned lo = 0, hi = 0;
		int n;

		if ((n = cpu_number(&p, &lo)) == 0 && *p == '-') {
			p++;
			n = cpu_number(&p, &hi);
		} else {
			hi = lo;
		}
		if (n == -2) {
			r = ward_errf(WARD_EFORMAT,
			    "CPU list \"%s\": CPU numbers go up to %d",
			    ward_quotes(s), CPU_SETSIZE - 1);
			goto out;
		}
		if (n != 0 || (*p != ',' && *p != '\0')) {
			r = ward_errf(WARD_EFORMAT,
			    "CPU list \"%s\": " CPU_LIST_EXAMPLE,
			    ward_quotes(s));
			goto out;
		}
		if (hi < lo) {
			r = ward_errf(WARD_EFORMAT,
			    "CPU list \"%s\": the range %u-%u runs backwards",
			    ward_quotes(s), lo, hi);
			goto out;
		}
		for (unsigned c = lo; c <= hi; c++) {
			/* a CPU named twice is most likely a typo */
			if (CPU_ISSET(c, out)) {
				r = ward_errf(WARD_EFORMAT,
				    "CPU list \"%s\": CPU %u is listed twice",
				    ward_quotes(s), c);
				goto out;
			}
			CPU_SET(c, out);
		}
		if (*p == '\0')
			break;
		p++;
	}
out:
	if (r != 0)
		CPU_ZERO(out);
	return r;
}

/*
 * Runs of two or more CPUs become ranges. A list that does not fit in
 * cap is cut after a whole item and ends in "...", so a cut list never
 * names CPUs that are not in the set (a cut "10-15" could read "10-1").
 */
void
ward_cpu_list_format(const cpu_set_t *set, char *out, size_t cap)
{
	char full[WARD_CPU_LIST_MAX];
	size_t len = 0, room, cut = 0;

	if (cap == 0)
		return;
	full[0] = '\0';
	for (int c = 0; c < CPU_SETSIZE; c++) {
		int last = c;

		if (!CPU_ISSET(c, set))
			continue;
		while (last + 1 < CPU_SETSIZE && CPU_ISSET(last + 1, set))
			last++;
		/* WARD_CPU_LIST_MAX bounds every set: no truncation here */
		if (last > c)
			len += (size_t)snprintf(full + len, sizeof(full) - len,
			    "%s%d-%d", len > 0 ? "," : "", c, last);
		else
			len += (size_t)snprintf(full + len, sizeof(full) - len,
			    "%s%d", len > 0 ? "," : "", c);
		c = last;
	}
	if (len < cap) {
		memcpy(out, full, len + 1);
		return;
	}
	room = cap - 1;
	if (room < 3) {
		memset(out, '.', room);
		out[room] = '\0';
		return;
	}
	/* the longest prefix ending in a comma that leaves room for "..." */
	for (size_t i = 0; i < len && i + 1 + 3 <= room; i++)
		if (full[i] == ',')
			cut = i + 1;
	memcpy(out, full, cut);
	memcpy(out + cut, "...", 4);
}

static const char *
plural(uint64_t n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

/* The CPUs this process may run on. */
static int
allowed_cpus(cpu_set_t *set)
{
	CPU_ZERO(set);
	if (sched_getaffinity(0, sizeof(*set), set) != 0)
		return ward_errf(
		    WARD_EINTERNAL, "sched_getaffinity: %s", strerror(errno));
	return 0;
}

/* The n highest-numbered CPUs of from (n <= CPU_COUNT(from)). */
static void
take_highest(const cpu_set_t *from, unsigned n, cpu_set_t *got)
{
	CPU_ZERO(got);
	for (int c = CPU_SETSIZE - 1; c >= 0 && n > 0; c--) {
		if (CPU_ISSET(c, from)) {
			CPU_SET(c, got);
			n--;
		}
	}
}

/* ---- allocator.yaml --------------------------------------------------- */

static size_t
event_line(const yaml_event_t *ev)
{
	return ev->start_mark.line + 1;
}

/*
 * A positive decimal integer, at most max. Only plain, untagged scalars:
 * "512" in quotes is a YAML string, not a number.
 */
static bool
scalar_uint(const yaml_event_t *ev, uint64_t max, uint64_t *out)
{
	const char *s = (const char *)ev->data.scalar.value;
	size_t n = ev->data.scalar.length;
	uint64_t v = 0;

	if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE ||
	    ev->data.scalar.tag != NULL || n == 0 || s[0] == '0')
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		/* v * 10 + d > max, without overflow */
		if (v > (max - (uint64_t)(s[i] - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return true;
}

static int
set_value(struct settings *st, enum setting k, const yaml_event_t *ev,
    const char *name)
{
	size_t line = event_line(ev), n;
	const char *v;
	int r;

	if (ev->type != YAML_SCALAR_EVENT)
		return ward_errf(WARD_EFORMAT,
		    "%s:%zu: %s: expected a single value, not %s", name, line,
		    setting_names[k], ward_yaml_kind(ev));
	v = (const char *)ev->data.scalar.value;
	n = ev->data.scalar.length;
	switch (k) {
	case S_MEMORY_MIB:
		if (!scalar_uint(ev, MEMORY_MIB_MAX, &st->memory_mib))
			return ward_errf(WARD_EFORMAT,
			    "%s:%zu: memory_mib: expected a whole number of "
			    "MiB from 1 to %llu (such as 512), got \"%s\"",
			    name, line, (unsigned long long)MEMORY_MIB_MAX,
			    ward_quote(v, n));
		break;
	case S_CPU_COUNT:
		if (!scalar_uint(ev, CPU_SETSIZE, &st->cpu_count))
			return ward_errf(WARD_EFORMAT,
			    "%s:%zu: cpu_count: expected a number of CPUs from "
			    "1 to %d (such as 2), got \"%s\"",
			    name, line, CPU_SETSIZE, ward_quote(v, n));
		break;
	case S_CPU_POOL:
		/* A list is a string in any style, and a single CPU is a
		 * YAML integer ("cpu_pool: 3"); an embedded NUL (possible in
		 * a double-quoted "\0") would cut the list short. */
		if (ev->data.scalar.tag != NULL || memchr(v, '\0', n) != NULL)
			return ward_errf(WARD_EFORMAT,
			    "%s:%zu: cpu_pool: " CPU_LIST_EXAMPLE
			    ", got \"%s\"",
			    name, line, ward_quote(v, n));
		if ((r = ward_cpu_list_parse(v, &st->pool)) != 0)
			return ward_err_prefix(
			    r, "%s:%zu: cpu_pool", name, line);
		break;
	default:
		return ward_errf(WARD_EINTERNAL, "bad setting %d", (int)k);
	}
	return 0;
}

/* The mapping's entries, up to and including its end. */
static int
read_settings(
    yaml_parser_t *p, yaml_event_t *ev, const char *name, struct settings *st)
{
	int r;

	for (;;) {
		enum setting k = S_COUNT;
		const char *key;
		size_t line;

		if ((r = ward_yaml_next(p, ev, name)) != 0)
			return r;
		if (ev->type == YAML_MAPPING_END_EVENT)
			return 0;
		line = event_line(ev);
		if (ev->type != YAML_SCALAR_EVENT)
			return ward_errf(WARD_EFORMAT,
			    "%s:%zu: expected a setting name, not %s", name,
			    line, ward_yaml_kind(ev));
		key = (const char *)ev->data.scalar.value;
		for (int i = 0; i < S_COUNT; i++)
			if (strlen(setting_names[i]) ==
			        ev->data.scalar.length &&
			    memcmp(key, setting_names[i],
			        ev->data.scalar.length) == 0)
				k = (enum setting)i;
		if (k == S_COUNT)
			return ward_errf(WARD_EFORMAT,
			    "%s:%zu: unknown setting \"%s\": expected "
			    "memory_mib, cpu_count or cpu_pool",
			    name, line,
			    ward_quote(key, ev->data.scalar.length));
		if (st->seen[k])
			return ward_errf(WARD_EFORMAT,
			    "%s:%zu: %s is set twice (first on line %zu)", name,
			    line, setting_names[k], st->line[k]);
		st->seen[k] = true;
		st->line[k] = line;
		if ((r = ward_yaml_next(p, ev, name)) != 0)
			return r;
		if ((r = set_value(st, k, ev, name)) != 0)
			return r;
	}
}

/* The stream: one document holding one mapping. */
static int
read_stream(yaml_parser_t *p, const char *name, struct settings *st)
{
	yaml_event_t ev;
	int r;

	memset(&ev, 0, sizeof(ev));
	if ((r = ward_yaml_next(p, &ev, name)) != 0) /* stream start */
		goto out;
	if ((r = ward_yaml_next(p, &ev, name)) != 0)
		goto out;
	if (ev.type == YAML_STREAM_END_EVENT) {
		r = ward_errf(WARD_EFORMAT,
		    "%s: no settings: expected memory_mib and cpu_count or "
		    "cpu_pool",
		    name);
		goto out;
	}
	/* document start */
	if ((r = ward_yaml_next(p, &ev, name)) != 0)
		goto out;
	if (ev.type != YAML_MAPPING_START_EVENT) {
		r = ward_errf(WARD_EFORMAT,
		    "%s:%zu: expected settings (\"memory_mib: 512\" and so "
		    "on), not %s",
		    name, event_line(&ev), ward_yaml_kind(&ev));
		goto out;
	}
	if ((r = read_settings(p, &ev, name, st)) != 0)
		goto out;
	/* document end */
	if ((r = ward_yaml_next(p, &ev, name)) != 0)
		goto out;
	/* then the stream's end, or a second document */
	if ((r = ward_yaml_next(p, &ev, name)) != 0)
		goto out;
	if (ev.type != YAML_STREAM_END_EVENT)
		r = ward_errf(WARD_EFORMAT,
		    "%s:%zu: a second YAML document: expected one", name,
		    event_line(&ev));
out:
	yaml_event_delete(&ev);
	return r;
}

/* Whole-file rules: which keys must be there, and the CPUs allowed. */
static int
check_settings(
    const struct settings *st, const char *name, struct ward_allocator *out)
{
	char want[WARD_CPU_LIST_MAX], have[WARD_CPU_LIST_MAX];
	cpu_set_t allowed, outside;
	unsigned n_allowed;
	int r;

	if (!st->seen[S_MEMORY_MIB])
		return ward_errf(WARD_EFORMAT,
		    "%s: memory_mib is missing: expected the MiB of memory "
		    "for all enclaves together (such as memory_mib: 512)",
		    name);
	if (st->seen[S_CPU_COUNT] && st->seen[S_CPU_POOL])
		return ward_errf(WARD_EFORMAT,
		    "%s:%zu: cpu_count and cpu_pool (line %zu) conflict: "
		    "expected exactly one of them",
		    name, st->line[S_CPU_COUNT], st->line[S_CPU_POOL]);
	if (!st->seen[S_CPU_COUNT] && !st->seen[S_CPU_POOL])
		return ward_errf(WARD_EFORMAT,
		    "%s: neither cpu_count nor cpu_pool is set: expected "
		    "exactly one of them (such as cpu_count: 2)",
		    name);
	if ((r = allowed_cpus(&allowed)) != 0)
		return r;
	n_allowed = (unsigned)CPU_COUNT(&allowed);
	ward_cpu_list_format(&allowed, have, sizeof(have));
	if (st->seen[S_CPU_POOL]) {
		/* outside = pool minus allowed */
		CPU_AND(&outside, &st->pool, &allowed);
		CPU_XOR(&outside, &outside, &st->pool);
		if (CPU_COUNT(&outside) > 0) {
			ward_cpu_list_format(&outside, want, sizeof(want));
			return ward_errf(WARD_EFORMAT,
			    "%s:%zu: cpu_pool: %s %s %s not available to this "
			    "process: expected CPUs from %s",
			    name, st->line[S_CPU_POOL],
			    plural(
			        (uint64_t)CPU_COUNT(&outside), "CPU", "CPUs"),
			    want,
			    plural((uint64_t)CPU_COUNT(&outside), "is", "are"),
			    have);
		}
		out->cpus = st->pool;
	} else {
		if (st->cpu_count > n_allowed)
			return ward_errf(WARD_EFORMAT,
			    "%s:%zu: cpu_count: %llu CPUs, but this process "
			    "may run on only %u (%s): expected at most %u",
			    name, st->line[S_CPU_COUNT],
			    (unsigned long long)st->cpu_count, n_allowed, have,
			    n_allowed);
		take_highest(&allowed, (unsigned)st->cpu_count, &out->cpus);
	}
	out->memory_mib = st->memory_mib;
	out->cpu_count = (unsigned)CPU_COUNT(&out->cpus);
	snprintf(out->source, sizeof(out->source), "%s", name);
	return 0;
}

int
ward_allocator_parse(
    const char *text, size_t len, const char *name, struct ward_allocator *out)
{
	yaml_parser_t parser;
	struct settings st;
	bool parser_ready = false;
	int r;

	memset(out, 0, sizeof(*out));
	memset(&st, 0, sizeof(st));
	if (name == NULL)
		name = "allocator.yaml";
	if (len > WARD_ALLOCATOR_MAX)
		return ward_errf(WARD_ELIMIT, "%s: larger than %d bytes", name,
		    WARD_ALLOCATOR_MAX);
	if (!yaml_parser_initialize(&parser)) {
		r = ward_enomem();
		goto out;
	}
	parser_ready = true;
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if ((r = read_stream(&parser, name, &st)) != 0)
		goto out;
	r = check_settings(&st, name, out);
out:
	if (parser_ready)
		yaml_parser_delete(&parser);
	if (r != 0)
		memset(out, 0, sizeof(*out));
	return r;
}

/* A quarter of physical memory and every CPU this process may use. */
static int
builtin_defaults(struct ward_allocator *out)
{
	long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
	uint64_t mib;
	int r;

	if (pages <= 0 || page <= 0)
		return ward_errf(WARD_EINTERNAL,
		    "cannot tell this machine's memory size: %s",
		    strerror(errno));
	mib = (uint64_t)pages * (uint64_t)page / MIB / 4;
	out->memory_mib =
	    mib < DEFAULT_MEMORY_MIN_MIB ? DEFAULT_MEMORY_MIN_MIB : mib;
	if ((r = allowed_cpus(&out->cpus)) != 0)
		return r;
	out->cpu_count = (unsigned)CPU_COUNT(&out->cpus);
	snprintf(out->source, sizeof(out->source), "%s", DEFAULT_SOURCE);
	return 0;
}

int
ward_allocator_load(const char *path, struct ward_allocator *out)
{
	struct ward_fd_stream s = {.fd = -1};
	char *text = NULL;
	size_t len = 0;
	bool named = true;
	int r;

	memset(out, 0, sizeof(*out));
	if (path == NULL || *path == '\0') {
		const char *env = getenv("WARD_ALLOCATOR");

		path = env != NULL && *env != '\0' ? env : NULL;
	}
	if (path == NULL) {
		path = WARD_ALLOCATOR_PATH;
		named = false;
	}
	s.name = path;
	if ((s.fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		/* only the default file may be absent: a file the user named
		 * and that is missing is most likely a typo */
		if (errno == ENOENT && !named)
			return builtin_defaults(out);
		return ward_errf(WARD_EIO, "%s: %s", path, strerror(errno));
	}
	/* one byte more than allowed, to tell "exactly the limit" apart */
	if ((text = malloc(WARD_ALLOCATOR_MAX + 1)) == NULL) {
		r = ward_enomem();
		goto out;
	}
	for (;;) {
		size_t got;

		if ((r = ward_fd_read(&s, (uint8_t *)text + len,
		         WARD_ALLOCATOR_MAX + 1 - len, &got)) != 0)
			goto out;
		if (got == 0)
			break;
		len += got;
		if (len > WARD_ALLOCATOR_MAX) {
			r = ward_errf(WARD_ELIMIT, "%s: larger than %d bytes",
			    path, WARD_ALLOCATOR_MAX);
			goto out;
		}
	}
	r = ward_allocator_parse(text, len, path, out);
out:
	free(text);
	close(s.fd);
	return r;
}

/* ---- reservations ----------------------------------------------------- */

int
ward_allocator_reserve(const struct ward_allocator *a, uint64_t used_mib,
    const cpu_set_t *used_cpus, uint64_t memory_mib, unsigned cpu_count,
    cpu_set_t *got)
{
	char all_s[WARD_CPU_LIST_MAX], used_s[WARD_CPU_LIST_MAX],
	    free_s[WARD_CPU_LIST_MAX];
	cpu_set_t in_use, free_cpus;
	uint64_t free_mib;
	unsigned n_all, n_used, n_free;

	CPU_ZERO(got);
	if (memory_mib == 0)
		return ward_errf(
		    WARD_EUSAGE, "an enclave needs memory: 0 MiB asked");
	if (cpu_count == 0)
		return ward_errf(
		    WARD_EUSAGE, "an enclave needs at least one CPU: 0 asked");
	free_mib = a->memory_mib > used_mib ? a->memory_mib - used_mib : 0;
	if (memory_mib > free_mib)
		return ward_errf(WARD_ELIMIT,
		    "the enclave asks for %llu MiB but the allocator (%s) "
		    "allows %llu MiB for all enclaves and %llu MiB %s in use "
		    "by running enclaves: %llu MiB free",
		    (unsigned long long)memory_mib, a->source,
		    (unsigned long long)a->memory_mib,
		    (unsigned long long)used_mib, plural(used_mib, "is", "are"),
		    (unsigned long long)free_mib);

	/* Only the allocator's CPUs count as in use: a running enclave
	 * may hold CPUs of an earlier configuration. */
	CPU_ZERO(&in_use);
	if (used_cpus != NULL)
		CPU_AND(&in_use, &a->cpus, used_cpus);
	CPU_XOR(&free_cpus, &a->cpus, &in_use);
	n_all = (unsigned)CPU_COUNT(&a->cpus);
	n_used = (unsigned)CPU_COUNT(&in_use);
	n_free = (unsigned)CPU_COUNT(&free_cpus);
	if (cpu_count > n_free) {
		ward_cpu_list_format(&a->cpus, all_s, sizeof(all_s));
		ward_cpu_list_format(&in_use, used_s, sizeof(used_s));
		ward_cpu_list_format(&free_cpus, free_s, sizeof(free_s));
		return ward_errf(WARD_ELIMIT,
		    "the enclave asks for %u %s but the allocator (%s) allows "
		    "%u %s (%s) for all enclaves and %u %s in use by running "
		    "enclaves (%s): %u free%s%s%s",
		    cpu_count, plural(cpu_count, "CPU", "CPUs"), a->source,
		    n_all, plural(n_all, "CPU", "CPUs"),
		    n_all > 0 ? all_s : "none", n_used,
		    plural(n_used, "is", "are"), n_used > 0 ? used_s : "none",
		    n_free, n_free > 0 ? " (" : "", n_free > 0 ? free_s : "",
		    n_free > 0 ? ")" : "");
	}
	take_highest(&free_cpus, cpu_count, got);
	return 0;
}
