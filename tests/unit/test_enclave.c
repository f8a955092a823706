/* enclave: the allocator (nitro.md §7.5), CPU lists, reservations, and the
 * nitro backend's nitro-cli command lines (§7.2-§7.3) and their runner.
 * The machine's CPUs differ between hosts, so the allocator tests derive
 * their expectations from sched_getaffinity. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"
#include "ward/enclave.h"

#define NAME "test.yaml"

/* nitro.md §7.5, verbatim. */
static const char SPEC_EXAMPLE[] =
    "---\n"
    "# Enclave configuration file.\n"
    "#\n"
    "# How much memory to allocate for enclaves (in MiB).\n"
    "memory_mib: 512\n"
    "#\n"
    "# How many CPUs to reserve for enclaves.\n"
    "cpu_count: 2\n"
    "#\n"
    "# Alternatively, the exact CPUs to be reserved for the enclave can be "
    "explicitly\n"
    "# configured by using `cpu_pool` (like below), instead of "
    "`cpu_count`.\n"
    "# Note: cpu_count and cpu_pool conflict with each other. Only use "
    "exactly one of them.\n"
    "# Example of reserving CPUs 2, 3, and 6 through 9:\n"
    "# cpu_pool: 2,3,6-9\n";

static cpu_set_t
allowed(void)
{
	cpu_set_t s;

	CPU_ZERO(&s);
	assert_int_equal(sched_getaffinity(0, sizeof(s), &s), 0);
	assert_true(CPU_COUNT(&s) > 0);
	return s;
}

static int
highest_allowed(void)
{
	cpu_set_t s = allowed();

	for (int c = CPU_SETSIZE - 1; c >= 0; c--)
		if (CPU_ISSET(c, &s))
			return c;
	fail_msg("no allowed CPU");
	return -1;
}

static int
lowest_allowed(void)
{
	cpu_set_t s = allowed();

	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &s))
			return c;
	fail_msg("no allowed CPU");
	return -1;
}

static cpu_set_t
set_of(const int *cpus, size_t n)
{
	cpu_set_t s;

	CPU_ZERO(&s);
	for (size_t i = 0; i < n; i++)
		CPU_SET(cpus[i], &s);
	return s;
}
#define SET(...)                                                               \
	set_of((const int[]){__VA_ARGS__},                                     \
	    sizeof((const int[]){__VA_ARGS__}) / sizeof(int))

static void
assert_set_equal(const cpu_set_t *got, const cpu_set_t *want)
{
	char g[WARD_CPU_LIST_MAX], w[WARD_CPU_LIST_MAX];

	if (!CPU_EQUAL(got, want)) {
		ward_cpu_list_format(got, g, sizeof(g));
		ward_cpu_list_format(want, w, sizeof(w));
		fail_msg("CPU set {%s}, expected {%s}", g, w);
	}
}

static int
parse(const char *text, struct ward_allocator *a)
{
	return ward_allocator_parse(text, strlen(text), NAME, a);
}

/* Parsing text fails with code, and the message holds want. */
static void
expect_fail_at(
    int line, const char *text, size_t len, int code, const char *want)
{
	struct ward_allocator a;
	int r;

	memset(&a, 0x5a, sizeof(a));
	ward_errclear();
	r = ward_allocator_parse(text, len, NAME, &a);
	if (r != -code)
		fail_msg("line %d: %s -> %s (%s), expected %s", line,
		    ward_quote(text, len), ward_errname(r),
		    r ? ward_errmsg() : "", ward_errname(code));
	if (strstr(ward_errmsg(), want) == NULL)
		fail_msg("line %d: message \"%s\" lacks \"%s\"", line,
		    ward_errmsg(), want);
	/* nothing half-parsed is left behind */
	assert_int_equal(a.memory_mib, 0);
	assert_int_equal(a.cpu_count, 0);
	assert_int_equal(CPU_COUNT(&a.cpus), 0);
}
#define EXPECT_FAIL(text, code, want)                                          \
	expect_fail_at(__LINE__, text, strlen(text), code, want)

/* ---- allocator.yaml --------------------------------------------------- */

static void
test_spec_example(void **state)
{
	cpu_set_t ok = allowed(), want;
	struct ward_allocator a;
	int top[2], n = 0;

	/* the two highest-numbered allowed CPUs, found the slow way */
	for (int c = CPU_SETSIZE - 1; c >= 0 && n < 2; c--)
		if (CPU_ISSET(c, &ok))
			top[n++] = c;
	if (n < 2) {
		EXPECT_FAIL(SPEC_EXAMPLE, WARD_EFORMAT,
		    NAME ":8: cpu_count: 2 CPUs, but this process may run on "
		         "only 1");
		return;
	}
	want = SET(top[0], top[1]);
	ASSERT_OK(parse(SPEC_EXAMPLE, &a));
	assert_int_equal(a.memory_mib, 512);
	assert_int_equal(a.cpu_count, 2);
	assert_set_equal(&a.cpus, &want);
	assert_string_equal(a.source, NAME);
	/* CPU 0 stays with the host whenever a higher CPU is free */
	if (CPU_COUNT(&ok) > 2)
		assert_false(CPU_ISSET(0, &a.cpus));
}

static void
test_cpu_count(void **state)
{
	cpu_set_t ok = allowed(), want;
	struct ward_allocator a;
	char text[128];
	int n = CPU_COUNT(&ok);

	want = SET(highest_allowed());
	ASSERT_OK(parse("memory_mib: 64\ncpu_count: 1\n", &a));
	assert_int_equal(a.memory_mib, 64);
	assert_int_equal(a.cpu_count, 1);
	assert_set_equal(&a.cpus, &want);

	/* every allowed CPU, CPU 0 included when it is allowed */
	snprintf(text, sizeof(text), "memory_mib: 1\ncpu_count: %d\n", n);
	ASSERT_OK(parse(text, &a));
	assert_int_equal(a.memory_mib, 1);
	assert_int_equal(a.cpu_count, (unsigned)n);
	assert_set_equal(&a.cpus, &ok);

	/* one more than allowed */
	snprintf(text, sizeof(text), "memory_mib: 1\ncpu_count: %d\n", n + 1);
	EXPECT_FAIL(text, WARD_EFORMAT, NAME ":2: cpu_count: ");
	EXPECT_FAIL(text, WARD_EFORMAT, "this process may run on only");

	/* the largest memory_mib, 2^40 */
	ASSERT_OK(parse("memory_mib: 1099511627776\ncpu_count: 1\n", &a));
	assert_int_equal(a.memory_mib, (uint64_t)1 << 40);
}

static void
test_cpu_pool(void **state)
{
	cpu_set_t ok = allowed(), want;
	struct ward_allocator a;
	char text[WARD_CPU_LIST_MAX + 64], list[WARD_CPU_LIST_MAX];
	int hi = highest_allowed(), lo = lowest_allowed();

	/* a single CPU is a YAML integer */
	want = SET(hi);
	snprintf(text, sizeof(text), "memory_mib: 512\ncpu_pool: %d\n", hi);
	ASSERT_OK(parse(text, &a));
	assert_int_equal(a.cpu_count, 1);
	assert_set_equal(&a.cpus, &want);
	/* and a string in any style */
	snprintf(text, sizeof(text), "memory_mib: 512\ncpu_pool: \"%d\"\n", hi);
	ASSERT_OK(parse(text, &a));
	assert_set_equal(&a.cpus, &want);
	snprintf(text, sizeof(text), "memory_mib: 512\ncpu_pool: '%d'\n", hi);
	ASSERT_OK(parse(text, &a));
	assert_set_equal(&a.cpus, &want);

	/* a list of two, lowest and highest */
	if (lo != hi) {
		want = SET(lo, hi);
		snprintf(text, sizeof(text),
		    "memory_mib: 512\ncpu_pool: %d,%d\n", lo, hi);
		ASSERT_OK(parse(text, &a));
		assert_int_equal(a.cpu_count, 2);
		assert_set_equal(&a.cpus, &want);
	}
	/* a range, when the allowed CPUs hold one */
	if (lo != hi && CPU_ISSET(lo + 1, &ok)) {
		want = SET(lo, lo + 1);
		snprintf(text, sizeof(text),
		    "memory_mib: 512\ncpu_pool: %d-%d\n", lo, lo + 1);
		ASSERT_OK(parse(text, &a));
		assert_set_equal(&a.cpus, &want);
	}
	/* every allowed CPU, as a list */
	ward_cpu_list_format(&ok, list, sizeof(list));
	snprintf(text, sizeof(text), "memory_mib: 512\ncpu_pool: %s\n", list);
	ASSERT_OK(parse(text, &a));
	assert_int_equal(a.cpu_count, (unsigned)CPU_COUNT(&ok));
	assert_set_equal(&a.cpus, &ok);

	/* YAML trimmings: comments, quoted keys, the end marker, flow */
	snprintf(text, sizeof(text),
	    "%%YAML 1.1\n---\n\"memory_mib\": 64 # MiB\ncpu_pool: %d\n...\n",
	    hi);
	ASSERT_OK(parse(text, &a));
	assert_int_equal(a.memory_mib, 64);
	snprintf(text, sizeof(text), "{memory_mib: 96, cpu_pool: %d}", hi);
	ASSERT_OK(parse(text, &a));
	assert_int_equal(a.memory_mib, 96);
	want = SET(hi);
	assert_set_equal(&a.cpus, &want);
}

static void
test_cpu_not_allowed(void **state)
{
	cpu_set_t ok = allowed();
	char text[128], want[128];
	int c = 0;

	while (c < CPU_SETSIZE && CPU_ISSET(c, &ok))
		c++;
	if (c == CPU_SETSIZE) {
		printf("SKIP: this process may run on every CPU ward knows\n");
		return;
	}
	snprintf(text, sizeof(text), "memory_mib: 512\ncpu_pool: %d\n", c);
	snprintf(want, sizeof(want),
	    NAME ":2: cpu_pool: CPU %d is not available to this process", c);
	EXPECT_FAIL(text, WARD_EFORMAT, want);
	/* listed beside an allowed one, only the bad one is named */
	snprintf(text, sizeof(text), "memory_mib: 512\ncpu_pool: %d,%d\n",
	    c < lowest_allowed() ? c : lowest_allowed(),
	    c < lowest_allowed() ? lowest_allowed() : c);
	EXPECT_FAIL(text, WARD_EFORMAT, want);
}

static void
test_malformed(void **state)
{
	/* keys */
	EXPECT_FAIL("memory_mib: 512\nmemory_mib: 256\ncpu_count: 1\n",
	    WARD_EFORMAT, NAME ":2: memory_mib is set twice (first on line 1)");
	EXPECT_FAIL("memory_mib: 512\ncpu_count: 1\ncpu_count: 1\n",
	    WARD_EFORMAT, NAME ":3: cpu_count is set twice");
	EXPECT_FAIL("memory_mib: 512\ncpu_count: 1\ncpus: 2\n", WARD_EFORMAT,
	    NAME ":3: unknown setting \"cpus\": expected memory_mib, "
	         "cpu_count or cpu_pool");
	EXPECT_FAIL("Memory_MiB: 512\ncpu_count: 1\n", WARD_EFORMAT,
	    "unknown setting \"Memory_MiB\"");
	EXPECT_FAIL("memory_mib: 512\n[a]: 1\n", WARD_EFORMAT,
	    NAME ":2: expected a setting name, not a list");
	EXPECT_FAIL("memory_mib: 512\n? {a: 1}\n: 2\n", WARD_EFORMAT,
	    "expected a setting name, not a mapping");
	EXPECT_FAIL("memory_mib: 512\ncpu_count: 1\ncpu_pool: 0\n",
	    WARD_EFORMAT,
	    NAME ":2: cpu_count and cpu_pool (line 3) conflict: expected "
	         "exactly one of them");
	EXPECT_FAIL("memory_mib: 512\n", WARD_EFORMAT,
	    NAME ": neither cpu_count nor cpu_pool is set");
	EXPECT_FAIL("cpu_count: 1\n", WARD_EFORMAT,
	    NAME ": memory_mib is missing: expected the MiB of memory");

	/* values that are not scalars */
	EXPECT_FAIL("memory_mib: {a: 1}\ncpu_count: 1\n", WARD_EFORMAT,
	    NAME ":1: memory_mib: expected a single value, not a mapping");
	EXPECT_FAIL("memory_mib: 512\ncpu_pool: [1, 2]\n", WARD_EFORMAT,
	    NAME ":2: cpu_pool: expected a single value, not a list");
	EXPECT_FAIL("memory_mib: 512\ncpu_pool:\n  - 1\n", WARD_EFORMAT,
	    "cpu_pool: expected a single value, not a list");
	EXPECT_FAIL("memory_mib: &m 512\ncpu_count: *m\n", WARD_EFORMAT,
	    NAME ":2: cpu_count: expected a single value, not an alias");

	/* numbers: positive plain decimal, in range */
	static const char *const bad_numbers[] = {"0", "-1", "+5", "0x10",
	    "0512", "00", "1_000", "512.0", "512 MiB", "1e3", "\"512\"",
	    "'512'", "!!int 512", "", "~", "true", "1099511627777",
	    "99999999999999999999999999"};
	for (size_t i = 0; i < sizeof(bad_numbers) / sizeof(bad_numbers[0]);
	     i++) {
		char text[128];

		snprintf(text, sizeof(text), "memory_mib: %s\ncpu_count: 1\n",
		    bad_numbers[i]);
		EXPECT_FAIL(text, WARD_EFORMAT,
		    NAME ":1: memory_mib: expected a whole number of MiB from "
		         "1 to 1099511627776 (such as 512), got");
		snprintf(text, sizeof(text), "memory_mib: 1\ncpu_count: %s\n",
		    bad_numbers[i]);
		EXPECT_FAIL(text, WARD_EFORMAT,
		    NAME ":2: cpu_count: expected a number of CPUs from 1 to "
		         "1024");
	}
	EXPECT_FAIL("memory_mib: 1\ncpu_count: 1025\n", WARD_EFORMAT,
	    "cpu_count: expected a number of CPUs from 1 to 1024 (such as "
	    "2), got \"1025\"");

	/* CPU lists */
	EXPECT_FAIL("memory_mib: 512\ncpu_pool: 1-a\n", WARD_EFORMAT,
	    NAME ":2: cpu_pool: CPU list \"1-a\": expected CPU numbers and "
	         "ranges such as 2,3,6-9");
	EXPECT_FAIL("memory_mib: 512\ncpu_pool: 2, 3\n", WARD_EFORMAT,
	    "cpu_pool: CPU list \"2, 3\"");
	EXPECT_FAIL("memory_mib: 512\ncpu_pool: \"\"\n", WARD_EFORMAT,
	    NAME ":2: cpu_pool: empty CPU list");
	EXPECT_FAIL("memory_mib: 512\ncpu_pool: \"1\\0\"\n", WARD_EFORMAT,
	    NAME ":2: cpu_pool: expected CPU numbers");
	EXPECT_FAIL("memory_mib: 512\ncpu_pool: !!str 1\n", WARD_EFORMAT,
	    NAME ":2: cpu_pool: expected CPU numbers");

	/* documents */
	EXPECT_FAIL("memory_mib: 512\ncpu_count: 1\n---\nmemory_mib: 1\n",
	    WARD_EFORMAT, NAME ":3: a second YAML document: expected one");
	EXPECT_FAIL("memory_mib: 512\ncpu_count: 1\n...\n---\n", WARD_EFORMAT,
	    "a second YAML document");
	EXPECT_FAIL("", WARD_EFORMAT, NAME ": no settings: expected");
	EXPECT_FAIL("# only a comment\n", WARD_EFORMAT, NAME ": no settings");
	EXPECT_FAIL("---\n", WARD_EFORMAT,
	    NAME ":2: expected settings (\"memory_mib: 512\" and so on), not "
	         "a single value");
	EXPECT_FAIL("memory_mib\n", WARD_EFORMAT, "not a single value");
	EXPECT_FAIL("- memory_mib: 512\n", WARD_EFORMAT, "not a list");

	/* trailing garbage and broken YAML */
	EXPECT_FAIL("memory_mib: 512\ncpu_count: 1\n]\n", WARD_EFORMAT,
	    NAME ":3:1: not valid YAML: ");
	EXPECT_FAIL("memory_mib: 512\ncpu_count: 1\nfoo\n", WARD_EFORMAT,
	    "not valid YAML");
	/* a more-indented line continues the value before it */
	EXPECT_FAIL("memory_mib: 512\ncpu_count: 1\n  extra: 2\n", WARD_EFORMAT,
	    NAME ":2: cpu_count: expected a number of CPUs");
	EXPECT_FAIL(
	    "memory_mib: 512\ncpu_pool: \"1", WARD_EFORMAT, "not valid YAML");
	EXPECT_FAIL("memory_mib: 512\n\tcpu_count: 1\n", WARD_EFORMAT,
	    "not valid YAML");
	expect_fail_at(__LINE__, "memory_mib: 512\0\ncpu_count: 1\n",
	    sizeof("memory_mib: 512\0\ncpu_count: 1\n") - 1, WARD_EFORMAT,
	    NAME ": not valid YAML at byte 15");
	EXPECT_FAIL("memory_mib: 5\xff\n", WARD_EFORMAT, "not valid YAML");
}

/* Every prefix of a valid file either parses or fails cleanly, and only
 * the complete file gives its values. */
static void
test_truncated(void **state)
{
	char text[128];
	size_t len, parsed = 0;

	snprintf(text, sizeof(text),
	    "---\nmemory_mib: 512\ncpu_pool: \"%d\" # last\n",
	    highest_allowed());
	len = strlen(text);
	for (size_t n = 0; n < len; n++) {
		struct ward_allocator a;
		int r = ward_allocator_parse(text, n, NAME, &a);

		if (r == 0) {
			/* only the comment may be cut */
			assert_true(n >= (size_t)(strstr(text, " #") - text));
			assert_int_equal(a.memory_mib, 512);
			parsed++;
		} else {
			assert_int_equal(r, -WARD_EFORMAT);
		}
	}
	/* from the closing quote on: " # last\n" less its last byte */
	assert_int_equal(parsed, 8);
	assert_int_equal(
	    ward_allocator_parse(text, len, NAME, &(struct ward_allocator){0}),
	    0);
}

static void
test_size_limit(void **state)
{
	const char head[] = "memory_mib: 512\ncpu_count: 1\n#";
	size_t n = WARD_ALLOCATOR_MAX;
	struct ward_allocator a;
	char *text = malloc(n + 2);

	assert_non_null(text);
	memcpy(text, head, sizeof(head) - 1);
	memset(text + sizeof(head) - 1, 'x', n + 1 - (sizeof(head) - 1));
	text[n - 1] = '\n';
	/* exactly the limit parses */
	ASSERT_OK(ward_allocator_parse(text, n, NAME, &a));
	assert_int_equal(a.memory_mib, 512);
	/* one byte more does not */
	text[n] = '\n';
	expect_fail_at(__LINE__, text, n + 1, WARD_ELIMIT,
	    NAME ": larger than 65536 bytes");
	free(text);
}

/* ---- ward_allocator_load ---------------------------------------------- */

static void
test_load(void **state)
{
	char *dir = tu_mkdtemp(), path[512], missing[512], big[512], msg[1024];
	const char ok[] = "memory_mib: 300\ncpu_count: 1\n";
	struct ward_allocator a;
	char *blob;

	snprintf(path, sizeof(path), "%s/allocator.yaml", dir);
	snprintf(missing, sizeof(missing), "%s/absent.yaml", dir);
	snprintf(big, sizeof(big), "%s/big.yaml", dir);
	assert_int_equal(tu_write_file(path, ok, sizeof(ok) - 1), 0);

	unsetenv("WARD_ALLOCATOR");
	ASSERT_OK(ward_allocator_load(path, &a));
	assert_int_equal(a.memory_mib, 300);
	assert_int_equal(a.cpu_count, 1);
	assert_string_equal(a.source, path);

	/* $WARD_ALLOCATOR when no path is given */
	setenv("WARD_ALLOCATOR", path, 1);
	memset(&a, 0, sizeof(a));
	ASSERT_OK(ward_allocator_load(NULL, &a));
	assert_int_equal(a.memory_mib, 300);
	assert_string_equal(a.source, path);

	/* a named file that is missing is an error, however named */
	ASSERT_ERR(ward_allocator_load(missing, &a), WARD_EIO);
	snprintf(msg, sizeof(msg), "%s: %s", missing, strerror(ENOENT));
	assert_string_equal(ward_errmsg(), msg);
	assert_int_equal(a.memory_mib, 0);
	setenv("WARD_ALLOCATOR", missing, 1);
	ASSERT_ERR(ward_allocator_load(NULL, &a), WARD_EIO);
	assert_string_equal(ward_errmsg(), msg);

	/* a directory cannot be read */
	ASSERT_ERR(ward_allocator_load(dir, &a), WARD_EIO);

	/* the file's own errors name it */
	assert_int_equal(tu_write_file(path, "memory_mib: 0\n", 14), 0);
	ASSERT_ERR(ward_allocator_load(path, &a), WARD_EFORMAT);
	snprintf(msg, sizeof(msg), "%s:1: memory_mib:", path);
	assert_non_null(strstr(ward_errmsg(), msg));

	/* too large */
	blob = malloc(WARD_ALLOCATOR_MAX + 1);
	assert_non_null(blob);
	memset(blob, '#', WARD_ALLOCATOR_MAX + 1);
	assert_int_equal(tu_write_file(big, blob, WARD_ALLOCATOR_MAX + 1), 0);
	ASSERT_ERR(ward_allocator_load(big, &a), WARD_ELIMIT);
	snprintf(msg, sizeof(msg), "%s: larger than 65536 bytes", big);
	assert_string_equal(ward_errmsg(), msg);
	free(blob);

	unsetenv("WARD_ALLOCATOR");
	tu_rmtree(dir);
	free(dir);
}

static void
test_load_defaults(void **state)
{
	cpu_set_t ok = allowed();
	struct ward_allocator a;
	uint64_t mib;

	if (access(WARD_ALLOCATOR_PATH, F_OK) == 0 || errno != ENOENT) {
		printf("SKIP: " WARD_ALLOCATOR_PATH " exists; built-in "
		       "defaults not checked\n");
		return;
	}
	mib = (uint64_t)sysconf(_SC_PHYS_PAGES) *
	    (uint64_t)sysconf(_SC_PAGESIZE) / 4 / (1024 * 1024);
	if (mib < 64)
		mib = 64;
	/* an empty $WARD_ALLOCATOR names nothing */
	setenv("WARD_ALLOCATOR", "", 1);
	memset(&a, 0x5a, sizeof(a));
	ASSERT_OK(ward_allocator_load(NULL, &a));
	assert_int_equal(a.memory_mib, mib);
	assert_int_equal(a.cpu_count, (unsigned)CPU_COUNT(&ok));
	assert_set_equal(&a.cpus, &ok);
	assert_string_equal(
	    a.source, "built-in defaults (no /etc/ward/allocator.yaml)");
	unsetenv("WARD_ALLOCATOR");
	memset(&a, 0, sizeof(a));
	ASSERT_OK(ward_allocator_load(NULL, &a));
	assert_int_equal(a.memory_mib, mib);
}

/* ---- CPU lists -------------------------------------------------------- */

static void
test_cpu_list_parse(void **state)
{
	static const struct {
		const char *s;
		int n;
		int cpus[8];
	} good[] = {
	    {"0", 1, {0}},
	    {"2,3,6-9", 6, {2, 3, 6, 7, 8, 9}},
	    {"1023", 1, {1023}},
	    {"5-5", 1, {5}},
	    {"10-11,0-3,8", 7, {0, 1, 2, 3, 8, 10, 11}},
	    {"1022-1023,0", 3, {0, 1022, 1023}},
	};
	static const char *const bad[] = {"", " 1", "1 ", "1,", ",1", "1,,2",
	    "3-2", "1-", "-1", "a", "01", "00", "1024", "1-1024",
	    "99999999999999999999", "1-2-3", "1,1", "1-3,2", "+1", "1\n", "0x1",
	    "1;2", "1.5", ",", "-"};
	cpu_set_t s, want;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		ASSERT_OK(ward_cpu_list_parse(good[i].s, &s));
		want = set_of(good[i].cpus, (size_t)good[i].n);
		assert_set_equal(&s, &want);
	}
	ASSERT_OK(ward_cpu_list_parse("0-1023", &s));
	assert_int_equal(CPU_COUNT(&s), CPU_SETSIZE);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r;

		CPU_ZERO(&s);
		CPU_SET(7, &s);
		r = ward_cpu_list_parse(bad[i], &s);
		if (r != -WARD_EFORMAT)
			fail_msg("\"%s\" -> %s", ward_quotes(bad[i]),
			    ward_errname(r));
		assert_int_equal(CPU_COUNT(&s), 0);
	}
	ASSERT_ERR(ward_cpu_list_parse(NULL, &s), WARD_EFORMAT);

	ASSERT_ERR(ward_cpu_list_parse("1024", &s), WARD_EFORMAT);
	assert_string_equal(
	    ward_errmsg(), "CPU list \"1024\": CPU numbers go up to 1023");
	ASSERT_ERR(ward_cpu_list_parse("3-2", &s), WARD_EFORMAT);
	assert_string_equal(
	    ward_errmsg(), "CPU list \"3-2\": the range 3-2 runs backwards");
	ASSERT_ERR(ward_cpu_list_parse("1-3,2", &s), WARD_EFORMAT);
	assert_string_equal(
	    ward_errmsg(), "CPU list \"1-3,2\": CPU 2 is listed twice");
	ASSERT_ERR(ward_cpu_list_parse("", &s), WARD_EFORMAT);
	assert_string_equal(ward_errmsg(),
	    "empty CPU list: expected CPU numbers and ranges such as "
	    "2,3,6-9");
	ASSERT_ERR(ward_cpu_list_parse("1\n", &s), WARD_EFORMAT);
	assert_string_equal(ward_errmsg(),
	    "CPU list \"1\\x0a\": expected CPU numbers and ranges such as "
	    "2,3,6-9");
}

static void
test_cpu_list_format(void **state)
{
	static const struct {
		int n;
		int cpus[8];
		const char *want;
	} known[] = {
	    {0, {0}, ""},
	    {1, {0}, "0"},
	    {7, {0, 1, 2, 3, 8, 10, 11}, "0-3,8,10-11"},
	    {3, {1, 3, 5}, "1,3,5"},
	    {2, {5, 6}, "5-6"},
	    {1, {1023}, "1023"},
	    {3, {0, 1022, 1023}, "0,1022-1023"},
	};
	char out[WARD_CPU_LIST_MAX];
	cpu_set_t s, back;

	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		s = set_of(known[i].cpus, (size_t)known[i].n);
		ward_cpu_list_format(&s, out, sizeof(out));
		assert_string_equal(out, known[i].want);
		if (known[i].n > 0) {
			ASSERT_OK(ward_cpu_list_parse(out, &back));
			assert_set_equal(&back, &s);
		}
	}
	/* all of them */
	CPU_ZERO(&s);
	for (int c = 0; c < CPU_SETSIZE; c++)
		CPU_SET(c, &s);
	ward_cpu_list_format(&s, out, sizeof(out));
	assert_string_equal(out, "0-1023");

	/* the longest lists fit in WARD_CPU_LIST_MAX and round-trip: every
	 * other CPU, and pairs with gaps (the most text per CPU) */
	for (int pairs = 0; pairs <= 1; pairs++) {
		CPU_ZERO(&s);
		for (int c = 0; c < CPU_SETSIZE; c++)
			if (pairs ? c % 3 != 2 : c % 2 == 0)
				CPU_SET(c, &s);
		ward_cpu_list_format(&s, out, sizeof(out));
		assert_true(strlen(out) > 2000);
		assert_null(strstr(out, "..."));
		ASSERT_OK(ward_cpu_list_parse(out, &back));
		assert_set_equal(&back, &s);
	}
}

static void
test_cpu_list_truncate(void **state)
{
	static const struct {
		size_t cap;
		const char *want;
	} cut[] = {
	    {12, "0-3,8,10-11"},
	    {11, "0-3,8,..."},
	    {10, "0-3,8,..."},
	    {9, "0-3,..."},
	    {8, "0-3,..."},
	    {7, "..."},
	    {4, "..."},
	    {3, ".."},
	    {2, "."},
	    {1, ""},
	};
	cpu_set_t s = SET(0, 1, 2, 3, 8, 10, 11);
	char buf[32];

	for (size_t i = 0; i < sizeof(cut) / sizeof(cut[0]); i++) {
		memset(buf, 'Z', sizeof(buf));
		ward_cpu_list_format(&s, buf, cut[i].cap);
		assert_string_equal(buf, cut[i].want);
		/* nothing written past cap */
		for (size_t j = cut[i].cap; j < sizeof(buf); j++)
			assert_int_equal(buf[j], 'Z');
	}
	memset(buf, 'Z', sizeof(buf));
	ward_cpu_list_format(&s, buf, 0);
	assert_int_equal(buf[0], 'Z');
}

/* ---- reservations ----------------------------------------------------- */

static struct ward_allocator
test_allocator(void)
{
	struct ward_allocator a;

	memset(&a, 0, sizeof(a));
	a.memory_mib = 1024;
	a.cpus = SET(1, 2, 3, 6, 7);
	a.cpu_count = 5;
	snprintf(a.source, sizeof(a.source), "%s", WARD_ALLOCATOR_PATH);
	return a;
}

static void
test_reserve(void **state)
{
	struct ward_allocator a = test_allocator();
	cpu_set_t used = SET(0, 2, 7), got, want;

	/* CPUs from the top: 7 and 2 are taken, 0 is not the allocator's */
	ASSERT_OK(ward_allocator_reserve(&a, 512, &used, 512, 2, &got));
	want = SET(3, 6);
	assert_set_equal(&got, &want);
	ASSERT_OK(ward_allocator_reserve(&a, 0, &used, 1, 3, &got));
	want = SET(1, 3, 6);
	assert_set_equal(&got, &want);
	/* nothing in use: everything is free */
	ASSERT_OK(ward_allocator_reserve(&a, 0, NULL, 1024, 5, &got));
	assert_set_equal(&got, &a.cpus);
	ASSERT_OK(ward_allocator_reserve(&a, 0, NULL, 1, 1, &got));
	want = SET(7);
	assert_set_equal(&got, &want);
}

static void
test_reserve_memory(void **state)
{
	struct ward_allocator a = test_allocator();
	cpu_set_t got;

	CPU_ZERO(&got);
	CPU_SET(1, &got);
	ASSERT_ERR(
	    ward_allocator_reserve(&a, 512, NULL, 2048, 1, &got), WARD_ELIMIT);
	assert_string_equal(ward_errmsg(),
	    "the enclave asks for 2048 MiB but the allocator "
	    "(/etc/ward/allocator.yaml) allows 1024 MiB for all enclaves and "
	    "512 MiB are in use by running enclaves: 512 MiB free");
	assert_int_equal(CPU_COUNT(&got), 0);
	/* one MiB over */
	ASSERT_ERR(
	    ward_allocator_reserve(&a, 512, NULL, 513, 1, &got), WARD_ELIMIT);
	/* running enclaves holding more than the allocator now allows */
	ASSERT_ERR(
	    ward_allocator_reserve(&a, 2000, NULL, 1, 1, &got), WARD_ELIMIT);
	assert_non_null(strstr(ward_errmsg(),
	    "2000 MiB are in use by running enclaves: 0 MiB free"));
	ASSERT_ERR(
	    ward_allocator_reserve(&a, 0, NULL, 0, 1, &got), WARD_EUSAGE);
	ASSERT_ERR(
	    ward_allocator_reserve(&a, 0, NULL, 1, 0, &got), WARD_EUSAGE);
}

static void
test_reserve_cpus(void **state)
{
	struct ward_allocator a = test_allocator();
	cpu_set_t used = SET(0, 2, 7), got;

	ASSERT_ERR(
	    ward_allocator_reserve(&a, 0, &used, 1, 4, &got), WARD_ELIMIT);
	assert_string_equal(ward_errmsg(),
	    "the enclave asks for 4 CPUs but the allocator "
	    "(/etc/ward/allocator.yaml) allows 5 CPUs (1-3,6-7) for all "
	    "enclaves and 2 are in use by running enclaves (2,7): 3 free "
	    "(1,3,6)");
	assert_int_equal(CPU_COUNT(&got), 0);
	used = SET(1, 2, 3, 6, 7);
	ASSERT_ERR(
	    ward_allocator_reserve(&a, 0, &used, 1, 1, &got), WARD_ELIMIT);
	assert_string_equal(ward_errmsg(),
	    "the enclave asks for 1 CPU but the allocator "
	    "(/etc/ward/allocator.yaml) allows 5 CPUs (1-3,6-7) for all "
	    "enclaves and 5 are in use by running enclaves (1-3,6-7): 0 free");
	ASSERT_ERR(
	    ward_allocator_reserve(&a, 0, NULL, 1, 6, &got), WARD_ELIMIT);
}

/* ---- nitro-cli command lines ------------------------------------------ */

static void
assert_argv_at(int line, char **got, const char *const *want)
{
	size_t n = 0;

	/* the returns are for the analyzer: fail_msg does not return */
	if (got == NULL) {
		fail_msg("line %d: no argv", line);
		return;
	}
	for (; want[n] != NULL; n++) {
		if (got[n] == NULL) {
			fail_msg("line %d: argv ends at %zu, expected \"%s\"",
			    line, n, want[n]);
			return;
		}
		if (strcmp(got[n], want[n]) != 0)
			fail_msg("line %d: argv[%zu] \"%s\", expected \"%s\"",
			    line, n, got[n], want[n]);
	}
	if (got[n] != NULL)
		fail_msg("line %d: argv[%zu] \"%s\" is extra", line, n, got[n]);
}
#define ASSERT_ARGV(got, ...)                                                  \
	assert_argv_at(__LINE__, got, (const char *const[]){__VA_ARGS__, NULL})

static void
test_nitro_cli(void **state)
{
	unsetenv("WARD_NITRO_CLI");
	assert_string_equal(ward_nitro_cli(), "nitro-cli");
	setenv("WARD_NITRO_CLI", "", 1);
	assert_string_equal(ward_nitro_cli(), "nitro-cli");
	setenv("WARD_NITRO_CLI", "/opt/aws/bin/nitro-cli", 1);
	assert_string_equal(ward_nitro_cli(), "/opt/aws/bin/nitro-cli");
	unsetenv("WARD_NITRO_CLI");
	/* whatever the host, the answer is the device's presence */
	assert_int_equal(
	    ward_nitro_available(), access(WARD_NITRO_DEVICE, F_OK) == 0);
}

static void
test_run_argv(void **state)
{
	struct ward_enclave_opts o = {
	    .eif_path = "app.eif", .cpu_count = 2, .memory_mib = 512};
	char **argv = NULL;

	unsetenv("WARD_NITRO_CLI");
	ASSERT_OK(ward_nitro_run_argv(&o, &argv));
	ASSERT_ARGV(argv, "nitro-cli", "run-enclave", "--eif-path", "app.eif",
	    "--memory", "512", "--cpu-count", "2");
	ward_argv_free(argv);

	setenv("WARD_NITRO_CLI", "/opt/nitro-cli", 1);
	o = (struct ward_enclave_opts){.eif_path = "/srv/images/hello.eif",
	    .cpu_ids = "6-7,1,3",
	    .memory_mib = 4096,
	    .cid = 16,
	    .name = "hello",
	    .debug = true,
	    .attach_console = true};
	ASSERT_OK(ward_nitro_run_argv(&o, &argv));
	ASSERT_ARGV(argv, "/opt/nitro-cli", "run-enclave", "--eif-path",
	    "/srv/images/hello.eif", "--memory", "4096", "--cpu-ids", "1", "3",
	    "6", "7", "--enclave-cid", "16", "--enclave-name", "hello",
	    "--debug-mode", "--attach-console");
	ward_argv_free(argv);
	unsetenv("WARD_NITRO_CLI");

	/* the CID bounds of nitro.md §7.2; names with spaces pass as is */
	o = (struct ward_enclave_opts){.eif_path = "a.eif",
	    .cpu_ids = "1",
	    .memory_mib = 1,
	    .cid = 4294967294u,
	    .name = "my enclave",
	    .debug = true};
	ASSERT_OK(ward_nitro_run_argv(&o, &argv));
	ASSERT_ARGV(argv, "nitro-cli", "run-enclave", "--eif-path", "a.eif",
	    "--memory", "1", "--cpu-ids", "1", "--enclave-cid", "4294967294",
	    "--enclave-name", "my enclave", "--debug-mode");
	ward_argv_free(argv);
	/* nitro-cli's --attach-console implies debug mode by itself */
	o.cid = 4;
	o.name = NULL;
	o.debug = false;
	o.attach_console = true;
	ASSERT_OK(ward_nitro_run_argv(&o, &argv));
	ASSERT_ARGV(argv, "nitro-cli", "run-enclave", "--eif-path", "a.eif",
	    "--memory", "1", "--cpu-ids", "1", "--enclave-cid", "4",
	    "--attach-console");
	ward_argv_free(argv);
	o.attach_console = false;
	o.memory_mib = UINT64_MAX;
	ASSERT_OK(ward_nitro_run_argv(&o, &argv));
	ASSERT_ARGV(argv, "nitro-cli", "run-enclave", "--eif-path", "a.eif",
	    "--memory", "18446744073709551615", "--cpu-ids", "1",
	    "--enclave-cid", "4");
	ward_argv_free(argv);
}

static void
test_run_argv_errors(void **state)
{
	static const struct {
		struct ward_enclave_opts o;
		const char *want;
	} bad[] = {
	    {{.cpu_count = 1, .memory_mib = 64}, "no enclave image"},
	    {{.eif_path = "", .cpu_count = 1, .memory_mib = 64},
	        "the enclave image path is empty"},
	    {{.eif_path = "-x.eif", .cpu_count = 1, .memory_mib = 64},
	        "starts with '-'"},
	    {{.eif_path = "a.eif", .cpu_count = 1}, "0 MiB"},
	    {{.eif_path = "a.eif", .memory_mib = 64}, "give a CPU count or"},
	    {{.eif_path = "a.eif",
	         .cpu_count = 2,
	         .cpu_ids = "1,3",
	         .memory_mib = 64},
	        "both a CPU count (2) and CPU ids (1,3)"},
	    {{.eif_path = "a.eif", .cpu_ids = "1-a", .memory_mib = 64},
	        "CPU ids: CPU list \"1-a\""},
	    {{.eif_path = "a.eif", .cpu_ids = "", .memory_mib = 64},
	        "CPU ids: empty CPU list"},
	    {{.eif_path = "a.eif", .cpu_count = 1, .memory_mib = 64, .cid = 1},
	        "enclave CID 1 is reserved: expected 4 to 4294967294"},
	    {{.eif_path = "a.eif", .cpu_count = 1, .memory_mib = 64, .cid = 2},
	        "enclave CID 2 is reserved"},
	    {{.eif_path = "a.eif", .cpu_count = 1, .memory_mib = 64, .cid = 3},
	        "enclave CID 3 is reserved"},
	    {{.eif_path = "a.eif",
	         .cpu_count = 1,
	         .memory_mib = 64,
	         .cid = UINT32_MAX},
	        "enclave CID 4294967295 is reserved"},
	    {{.eif_path = "a.eif",
	         .cpu_count = 1,
	         .memory_mib = 64,
	         .name = ""},
	        "the enclave name is empty"},
	    {{.eif_path = "a.eif",
	         .cpu_count = 1,
	         .memory_mib = 64,
	         .name = "--debug-mode"},
	        "the enclave name \"--debug-mode\" starts with '-'"},
	    {{.eif_path = "a.eif",
	         .cpu_count = 1,
	         .memory_mib = 64,
	         .name = "a\nb"},
	        "the enclave name \"a\\x0ab\" holds a control character"},
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char **argv = (char **)&argv; /* must be reset to NULL */
		int r = ward_nitro_run_argv(&bad[i].o, &argv);

		if (r != -WARD_EUSAGE)
			fail_msg("case %zu -> %s (%s)", i, ward_errname(r),
			    r ? ward_errmsg() : "");
		if (strstr(ward_errmsg(), bad[i].want) == NULL)
			fail_msg("case %zu: \"%s\" lacks \"%s\"", i,
			    ward_errmsg(), bad[i].want);
		assert_null(argv);
	}
}

static void
test_other_argv(void **state)
{
	const char *id = "i-0123456789abcdef0-enc0123456789abcdef";
	char **argv = NULL;

	unsetenv("WARD_NITRO_CLI");
	ASSERT_OK(ward_nitro_describe_argv(&argv));
	ASSERT_ARGV(argv, "nitro-cli", "describe-enclaves");
	ward_argv_free(argv);

	ASSERT_OK(ward_nitro_terminate_argv(id, false, &argv));
	ASSERT_ARGV(argv, "nitro-cli", "terminate-enclave", "--enclave-id", id);
	ward_argv_free(argv);
	ASSERT_OK(ward_nitro_terminate_argv(NULL, true, &argv));
	ASSERT_ARGV(argv, "nitro-cli", "terminate-enclave", "--all");
	ward_argv_free(argv);
	argv = (char **)&argv;
	ASSERT_ERR(ward_nitro_terminate_argv(NULL, false, &argv), WARD_EUSAGE);
	assert_string_equal(ward_errmsg(), "the enclave ID is empty");
	assert_null(argv);
	ASSERT_ERR(ward_nitro_terminate_argv("", false, &argv), WARD_EUSAGE);
	ASSERT_ERR(ward_nitro_terminate_argv(id, true, &argv), WARD_EUSAGE);
	assert_non_null(strstr(ward_errmsg(), "not both"));
	ASSERT_ERR(
	    ward_nitro_terminate_argv("--all", false, &argv), WARD_EUSAGE);
	assert_null(argv);

	ASSERT_OK(ward_nitro_console_argv(id, 0, &argv));
	ASSERT_ARGV(argv, "nitro-cli", "console", "--enclave-id", id);
	ward_argv_free(argv);
	ASSERT_OK(ward_nitro_console_argv(id, 30, &argv));
	ASSERT_ARGV(argv, "nitro-cli", "console", "--enclave-id", id,
	    "--disconnect-timeout", "30");
	ward_argv_free(argv);
	argv = (char **)&argv;
	ASSERT_ERR(ward_nitro_console_argv(id, -1, &argv), WARD_EUSAGE);
	assert_null(argv);
	ASSERT_ERR(ward_nitro_console_argv(NULL, 0, &argv), WARD_EUSAGE);
	ASSERT_ERR(ward_nitro_console_argv("i-\x1b[2J", 0, &argv), WARD_EUSAGE);
	ASSERT_ERR(ward_nitro_console_argv("i-\x7f", 0, &argv), WARD_EUSAGE);
	assert_string_equal(ward_errmsg(),
	    "the enclave ID \"i-\\x7f\" holds a control character");

	ward_argv_free(NULL);
}

/* ---- running nitro-cli ------------------------------------------------ */

static void
test_exec(void **state)
{
	char *const sh_exit[] = {"/bin/sh", "-c", "exit 3", NULL};
	char *const sh_kill[] = {"/bin/sh", "-c", "kill -TERM $$", NULL};
	char *const sh_pipe[] = {"/bin/sh", "-c", "kill -PIPE $$", NULL};
	char *const in_path[] = {"ward-test-no-such-nitro-cli", NULL};
	char **argv = NULL;
	int status = -1;

	/* through the builder and $WARD_NITRO_CLI, as the CLI does it */
	setenv("WARD_NITRO_CLI", "/bin/true", 1);
	ASSERT_OK(ward_nitro_describe_argv(&argv));
	ASSERT_OK(ward_nitro_exec(argv, &status));
	assert_int_equal(status, 0);
	ward_argv_free(argv);

	setenv("WARD_NITRO_CLI", "/bin/false", 1);
	ASSERT_OK(ward_nitro_describe_argv(&argv));
	ASSERT_ERR(ward_nitro_exec(argv, &status), WARD_EIO);
	assert_int_equal(status, 1);
	assert_string_equal(ward_errmsg(), "/bin/false exited with status 1");
	ward_argv_free(argv);

	setenv("WARD_NITRO_CLI", "/nonexistent/nitro-cli", 1);
	ASSERT_OK(ward_nitro_describe_argv(&argv));
	status = -1;
	ASSERT_ERR(ward_nitro_exec(argv, &status), WARD_EIO);
	assert_int_equal(status, 127);
	assert_string_equal(ward_errmsg(),
	    "/nonexistent/nitro-cli not found: install aws-nitro-enclaves-cli "
	    "(the Nitro Enclaves CLI) or set WARD_NITRO_CLI to its path");
	ward_argv_free(argv);
	unsetenv("WARD_NITRO_CLI");

	status = -1;
	ASSERT_ERR(ward_nitro_exec(in_path, &status), WARD_EIO);
	assert_int_equal(status, 127);
	assert_non_null(strstr(ward_errmsg(),
	    "ward-test-no-such-nitro-cli not found in PATH: install "
	    "aws-nitro-enclaves-cli"));

	ASSERT_ERR(ward_nitro_exec(sh_exit, &status), WARD_EIO);
	assert_int_equal(status, 3);
	ASSERT_ERR(ward_nitro_exec(sh_exit, NULL), WARD_EIO);

	ASSERT_ERR(ward_nitro_exec(sh_kill, &status), WARD_EIO);
	assert_int_equal(status, 128 + SIGTERM);
	assert_non_null(
	    strstr(ward_errmsg(), "/bin/sh was killed by signal 15"));

	/* ward ignores SIGPIPE; nitro-cli starts with it at its default */
	signal(SIGPIPE, SIG_IGN);
	ASSERT_ERR(ward_nitro_exec(sh_pipe, &status), WARD_EIO);
	assert_int_equal(status, 128 + SIGPIPE);
	signal(SIGPIPE, SIG_DFL);
}

static void
test_exec_not_executable(void **state)
{
	char *dir = tu_mkdtemp(), path[512];
	char *argv[] = {path, NULL};
	int status = -1;

	snprintf(path, sizeof(path), "%s/nitro-cli", dir);
	assert_int_equal(tu_write_file(path, "#!/bin/sh\n", 10), 0);
	assert_int_equal(chmod(path, 0644), 0);
	ASSERT_ERR(ward_nitro_exec(argv, &status), WARD_EIO);
	assert_int_equal(status, 126);
	assert_non_null(strstr(ward_errmsg(), "cannot run"));
	assert_non_null(strstr(ward_errmsg(), strerror(EACCES)));
	tu_rmtree(dir);
	free(dir);
}

/* What the caller printed reaches stdout before nitro-cli's output. */
static void
test_exec_order(void **state)
{
	char *const sh_print[] = {"/bin/sh", "-c", "printf after", NULL};
	char *dir = tu_mkdtemp(), path[512];
	int fd, saved, status = -1;
	uint8_t *got;
	size_t n;

	snprintf(path, sizeof(path), "%s/stdout", dir);
	fflush(stdout);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	saved = dup(STDOUT_FILENO);
	assert_true(saved >= 0);
	assert_int_equal(dup2(fd, STDOUT_FILENO), STDOUT_FILENO);
	close(fd);
	printf("before-"); /* held in stdio's buffer: stdout is a file */
	ASSERT_OK(ward_nitro_exec(sh_print, &status));
	fflush(stdout);
	assert_int_equal(dup2(saved, STDOUT_FILENO), STDOUT_FILENO);
	close(saved);
	assert_int_equal(status, 0);
	got = tu_read_file(path, &n);
	assert_non_null(got);
	assert_int_equal(n, 12);
	assert_memory_equal(got, "before-after", 12);
	free(got);
	tu_rmtree(dir);
	free(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_spec_example),
	    cmocka_unit_test(test_cpu_count),
	    cmocka_unit_test(test_cpu_pool),
	    cmocka_unit_test(test_cpu_not_allowed),
	    cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_truncated),
	    cmocka_unit_test(test_size_limit),
	    cmocka_unit_test(test_load),
	    cmocka_unit_test(test_load_defaults),
	    cmocka_unit_test(test_cpu_list_parse),
	    cmocka_unit_test(test_cpu_list_format),
	    cmocka_unit_test(test_cpu_list_truncate),
	    cmocka_unit_test(test_reserve),
	    cmocka_unit_test(test_reserve_memory),
	    cmocka_unit_test(test_reserve_cpus),
	    cmocka_unit_test(test_nitro_cli),
	    cmocka_unit_test(test_run_argv),
	    cmocka_unit_test(test_run_argv_errors),
	    cmocka_unit_test(test_other_argv),
	    cmocka_unit_test(test_exec),
	    cmocka_unit_test(test_exec_not_executable),
	    cmocka_unit_test(test_exec_order),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
