/* util: errors, hex/base64 (RFC 4648 §10 vectors), JSON strings, sizes, atomic writes,
 * fds, the log's sinks. */
#include <errno.h>
#include <jansson.h>
#include <regex.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

static void
test_errors(void **state)
{
	int r = ward_errf(WARD_EAUTH, "frame %d", 3);

	assert_int_equal(r, -WARD_EAUTH);
	assert_string_equal(ward_errmsg(), "frame 3");
	assert_string_equal(ward_errname(r), "EAUTH");
	assert_int_equal(ward_exit_code(r), 5);
	assert_int_equal(ward_exit_code(0), 0);
	assert_int_equal(ward_err_prefix(r, "file %s", "x"), r);
	assert_string_equal(ward_errmsg(), "file x: frame 3");
	/* an out-of-range code is reported as internal, not passed through */
	assert_int_equal(ward_errf(999, "odd"), -WARD_EINTERNAL);
}

static void
test_hex(void **state)
{
	uint8_t b[4];
	char s[9];
	size_t n;

	ward_hex_encode((const uint8_t *)"\x00\xff\x10\xab", 4, s);
	assert_string_equal(s, "00ff10ab");
	ASSERT_OK(ward_hex_decode("00FF10ab", 8, b, sizeof(b), &n));
	assert_int_equal(n, 4);
	assert_memory_equal(b, "\x00\xff\x10\xab", 4);
	ASSERT_ERR(ward_hex_decode("abc", 3, b, sizeof(b), &n), WARD_EFORMAT);
	ASSERT_ERR(ward_hex_decode("zz", 2, b, sizeof(b), &n), WARD_EFORMAT);
	ASSERT_ERR(
	    ward_hex_decode("0011223344", 10, b, sizeof(b), &n), WARD_ELIMIT);
}

/* For test_base64: len 'A's with byte c at pos, pos not in the last
 * quad; decoded when c is in the alphabet, refused naming pos if not. */
static void
b64_one(int len, int pos, int c)
{
	static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                          "abcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *at = c != 0 ? memchr(abc, c, 64) : NULL;
	char in[12], want[48];
	uint8_t dec[16];
	size_t n;
	int r;

	memset(in, 'A', sizeof(in));
	in[pos] = (char)c;
	r = ward_b64_decode(in, (size_t)len, dec, sizeof(dec), &n);
	if (at == NULL) {
		assert_int_equal(r, -WARD_EFORMAT);
		snprintf(want, sizeof(want), "offset %d", pos);
		assert_non_null(strstr(ward_errmsg(), want));
		ward_errclear();
		return;
	}
	assert_int_equal(r, 0);
	assert_int_equal(n, (size_t)len / 4 * 3);
	/* the value's 6 bits land at bit 18 - 6 * (pos % 4) of its quad's
	 * 24, every other bit zero */
	for (int q = 0; q < len / 4; q++) {
		uint32_t w = (uint32_t)dec[3 * q] << 16 |
		    (uint32_t)dec[3 * q + 1] << 8 | dec[3 * q + 2];
		uint32_t v = (uint32_t)(at - abc) << (18 - 6 * (pos % 4));

		assert_int_equal(w, q == pos / 4 ? v : 0);
	}
}

static void
test_base64(void **state)
{
	/* RFC 4648 §10 */
	static const char *const vec[][2] = {{"", ""}, {"f", "Zg=="},
	    {"fo", "Zm8="}, {"foo", "Zm9v"}, {"foob", "Zm9vYg=="},
	    {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}};
	char enc[16];
	uint8_t dec[16];
	size_t n;

	for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
		ward_b64_encode(
		    (const uint8_t *)vec[i][0], strlen(vec[i][0]), enc);
		assert_string_equal(enc, vec[i][1]);
		ASSERT_OK(ward_b64_decode(
		    vec[i][1], strlen(vec[i][1]), dec, sizeof(dec), &n));
		assert_int_equal(n, strlen(vec[i][0]));
		assert_memory_equal(dec, vec[i][0], n);
	}
	/* round trips of every length to 300, through the eight-at-a-time
	 * path, every character in every lane */
	for (size_t len = 0; len <= 300; len++) {
		uint8_t raw[300], back[300];
		char text[401];

		for (size_t i = 0; i < len; i++)
			raw[i] = (uint8_t)(i * 37 + len * 11);
		ward_b64_encode(raw, len, text);
		ASSERT_OK(ward_b64_decode(
		    text, strlen(text), back, sizeof(back), &n));
		assert_int_equal(n, len);
		assert_memory_equal(back, raw, len);
	}
	ASSERT_ERR(
	    ward_b64_decode("Zg=", 3, dec, sizeof(dec), &n), WARD_EFORMAT);
	ASSERT_ERR(
	    ward_b64_decode("Z!==", 4, dec, sizeof(dec), &n), WARD_EFORMAT);
	ASSERT_ERR(ward_b64_decode("Zh==", 4, dec, sizeof(dec), &n),
	    WARD_EFORMAT); /* non-canonical trailing bits */
	ASSERT_ERR(ward_b64_decode("Zg==Zg==", 8, dec, sizeof(dec), &n),
	    WARD_EFORMAT); /* padding in the middle */
	ASSERT_ERR(ward_b64_decode("Zm9vYmFy", 8, dec, 5, &n), WARD_ELIMIT);
	/* every byte value in the last place of "AAA?": accepted exactly
	 * when it is in the alphabet (or padding), and decoded to its
	 * index */
	for (int c = 0; c < 256; c++) {
		static const char abc[] =
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
		    "abcdefghijklmnopqrstuvwxyz0123456789+/";
		const char *at = c != 0 ? memchr(abc, c, 64) : NULL;
		char in[4] = {'A', 'A', 'A', (char)c};
		int r = ward_b64_decode(in, 4, dec, sizeof(dec), &n);

		if (c == '=') { /* padding */
			assert_int_equal(r, 0);
			assert_int_equal(n, 2);
			continue;
		}
		if (at == NULL) {
			assert_int_not_equal(r, 0);
			ward_errclear();
			continue;
		}
		assert_int_equal(r, 0);
		assert_int_equal(n, 3);
		assert_int_equal(dec[2], at - abc);
	}
	/* every byte value at every place of a quad that is not the last
	 * (decoded four at a time in 8 characters, eight at a time in 12):
	 * accepted exactly when in the alphabet, padding included in the
	 * refusals, the offset named */
	for (int len = 8; len <= 12; len += 4)
		for (int pos = 0; pos < len - 4; pos++)
			for (int c = 0; c < 256; c++)
				b64_one(len, pos, c);
}

static void
test_quote(void **state)
{
	char big[600];

	/* a terminal escape in a provider id or a context value is shown,
	 * not obeyed */
	assert_string_equal(ward_quote("a\x1b[31mb\\", 8), "a\\x1b[31mb\\x5c");
	assert_string_equal(ward_quotes("plain"), "plain");
	memset(big, 'x', sizeof(big));
	assert_true(strlen(ward_quote(big, sizeof(big))) < 256);
	assert_non_null(strstr(ward_quote(big, sizeof(big)), "..."));
}

static void
test_concat(void **state)
{
	char out[8], ref[8];
	const char *parts[] = {"", "a", "bcd", "efghij", "klmnopqrstu"};

	(void)state;
	assert_int_equal(ward_concat(out, sizeof(out), ""), 0);
	assert_string_equal(out, "");
	assert_int_equal(ward_concat(out, sizeof(out), "ab", "", "cd"), 4);
	assert_string_equal(out, "abcd");
	/* exactly full, then cut: always terminated, the whole length
	 * returned, as snprintf does */
	assert_int_equal(ward_concat(out, sizeof(out), "abc", "defg"), 7);
	assert_string_equal(out, "abcdefg");
	assert_int_equal(ward_concat(out, sizeof(out), "abcd", "efgh"), 8);
	assert_string_equal(out, "abcdefg");
	assert_int_equal(ward_concat(out, 1, "abc"), 3);
	assert_string_equal(out, "");
	/* every pair of parts against snprintf, at every capacity */
	for (size_t i = 0; i < 5; i++)
		for (size_t j = 0; j < 5; j++)
			for (size_t cap = 1; cap <= sizeof(out); cap++) {
				int want = snprintf(
				    ref, cap, "%s%s", parts[i], parts[j]);

				memset(out, 'Z', sizeof(out));
				assert_int_equal(
				    ward_concat(out, cap, parts[i], parts[j]),
				    (size_t)want);
				assert_string_equal(out, ref);
			}
}

static void
test_parse_size(void **state)
{
	uint64_t v;

	ASSERT_OK(ward_parse_size("4096", UINT64_MAX, &v));
	assert_int_equal(v, 4096);
	ASSERT_OK(ward_parse_size("64K", UINT64_MAX, &v));
	assert_int_equal(v, 65536);
	ASSERT_OK(ward_parse_size("2GiB", UINT64_MAX, &v));
	assert_int_equal(v, 2ULL << 30);
	ASSERT_ERR(ward_parse_size("1T", UINT64_MAX, &v), WARD_EUSAGE);
	ASSERT_ERR(ward_parse_size("-1", UINT64_MAX, &v), WARD_EUSAGE);
	ASSERT_ERR(ward_parse_size("5M", 1 << 20, &v), WARD_EUSAGE);
	ASSERT_ERR(ward_parse_size("99999999999999999999", UINT64_MAX, &v),
	    WARD_EUSAGE);
}

static void
test_atomic(void **state)
{
	char *dir = tu_mkdtemp(), path[4096];
	struct ward_atomic a;
	struct stat st;
	size_t n;
	uint8_t *p;

	snprintf(path, sizeof(path), "%s/out", dir);
	/* anonymous where the filesystem allows: nothing named until commit */
	ASSERT_OK(ward_atomic_open(&a, path, 0600, false));
	if (a.anonymous)
		assert_int_equal(tu_count_entries(dir), 0);
	else
		printf(
		    "note: %s has no O_TMPFILE; named temporary used\n", dir);
	ward_atomic_abort(&a);
	/* abort leaves nothing */
	ASSERT_OK(ward_atomic_open(&a, path, 0600, false));
	assert_int_equal(write(a.fd, "partial", 7), 7);
	ward_atomic_abort(&a);
	assert_int_equal(tu_count_entries(dir), 0);
	/* commit publishes with the mode asked for */
	ASSERT_OK(ward_write_file_atomic(path, "hello", 5, 0640, false));
	p = tu_read_file(path, &n);
	assert_non_null(p);
	assert_int_equal(n, 5);
	assert_memory_equal(p, "hello", 5);
	free(p);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	/* no overwrite without asking; the old content survives */
	ASSERT_ERR(
	    ward_write_file_atomic(path, "bye", 3, 0600, false), WARD_EEXIST);
	p = tu_read_file(path, &n);
	assert_memory_equal(p, "hello", 5);
	free(p);
	/* a file that appears between open and commit is not replaced */
	unlink(path);
	ASSERT_OK(ward_atomic_open(&a, path, 0600, false));
	assert_int_equal(tu_write_file(path, "racer", 5), 0);
	ASSERT_ERR(ward_atomic_commit(&a), WARD_EEXIST);
	p = tu_read_file(path, &n);
	assert_memory_equal(p, "racer", 5);
	free(p);
	assert_int_equal(tu_count_entries(dir), 1);
	/* overwrite when asked */
	ASSERT_OK(ward_write_file_atomic(path, "bye", 3, 0600, true));
	p = tu_read_file(path, &n);
	assert_int_equal(n, 3);
	free(p);
	tu_rmtree(dir);
	free(dir);
}

static void
test_buf_secret(void **state)
{
	struct ward_buf b = {.secret = true};

	for (int i = 0; i < 1000; i++)
		ASSERT_OK(ward_buf_put_u32(&b, (uint32_t)i));
	assert_int_equal(b.len, 4000);
	assert_int_equal(ward_load32(b.p + 3996), 999);
	ward_buf_free(&b);
	assert_null(b.p);
	assert_int_equal(ward_ct_memcmp("abc", "abc", 3), 0);
	assert_int_not_equal(ward_ct_memcmp("abc", "abd", 3), 0);
}

/* In a child: open fds at 3..40 and one at 700, keep three of them (in
 * no order, one below lowest, one twice), close the rest; the exit
 * status says what went wrong. */
static int
close_fds_child(void)
{
	const int keep[] = {17, 5, 700, 2, 17, 40};

	for (int fd = 3; fd <= 40; fd++)
		if (dup2(0, fd) != fd)
			return 10;
	if (dup2(0, 700) != 700)
		return 11;
	ward_close_fds_except(4, keep, sizeof(keep) / sizeof(keep[0]));
	for (int fd = 0; fd <= 800; fd++) {
		bool open = fcntl(fd, F_GETFD) >= 0;
		bool want =
		    fd <= 3 || fd == 5 || fd == 17 || fd == 40 || fd == 700;

		if (open != want)
			return 20;
	}
	return 0;
}

static int
child_status(pid_t pid)
{
	int status;

	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void
test_close_fds(void **state)
{
	pid_t pid;

	(void)state;
	assert_true((pid = fork()) >= 0);
	if (pid == 0)
		_exit(close_fds_child());
	assert_int_equal(child_status(pid), 0);
}

/* In a child (the sink is process-wide): lines appended to a 0600 file
 * with time and pid; a directory and a FIFO without a reader refused. */
static int
log_file_child(const char *dir)
{
	char path[512], fifo[512], text[512] = {0};
	regex_t re;
	struct stat st;
	ssize_t n;
	int fd, ok;

	snprintf(path, sizeof(path), "%s/w.log", dir);
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	if (ward_log_to_file(dir) != -WARD_EUSAGE)
		return 10;
	if (mkfifo(fifo, 0600) != 0 || ward_log_to_file(fifo) != -WARD_EUSAGE)
		return 11;
	if (ward_log_to_file(path) != 0)
		return 12;
	ward_warn("first %d", 1);
	ward_info("not shown at the default level");
	ward_log(WARD_LOG_ERROR, "second");
	if (stat(path, &st) != 0 || (st.st_mode & 0777) != 0600)
		return 13;
	if ((fd = open(path, O_RDONLY)) < 0)
		return 14;
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n <= 0)
		return 14;
	if (regcomp(&re,
	        "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z "
	        "ward\\[[0-9]+\\]: warning: first 1\n"
	        "[0-9-]{10}T[0-9:]{8}Z ward\\[[0-9]+\\]: error: second\n$",
	        REG_EXTENDED) != 0)
		return 15;
	ok = regexec(&re, text, 0, NULL, 0) == 0;
	regfree(&re);
	return ok ? 0 : 16;
}

static void
test_log_file(void **state)
{
	char dir[] = "/tmp/ward-test-log.XXXXXX";
	char cmd[64];
	pid_t pid;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_true((pid = fork()) >= 0);
	if (pid == 0)
		_exit(log_file_child(dir));
	assert_int_equal(child_status(pid), 0);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/* In a child with a private /dev: a datagram socket at /dev/log, as
 * syslogd has, receives the line. 77: no mount namespace here. */
static int
log_syslog_child(void)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = 5};
	char msg[512] = {0};
	int fd;

	if (unshare(CLONE_NEWNS) != 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
	    mount("tmpfs", "/dev", "tmpfs", 0, "size=64k") != 0)
		return 77;
	strcpy(sun.sun_path, "/dev/log");
	if ((fd = socket(AF_UNIX, SOCK_DGRAM, 0)) < 0 ||
	    bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0)
		return 10;
	ward_log_to_syslog("ward-test");
	ward_warn("to syslog %d", 7);
	if (recv(fd, msg, sizeof(msg) - 1, 0) <= 0)
		return 11;
	/* <28>: facility daemon (3 << 3), severity warning (4) */
	if (strncmp(msg, "<28>", 4) != 0 || strstr(msg, "ward-test[") == NULL ||
	    strstr(msg, "warning: to syslog 7") == NULL)
		return 12;
	return 0;
}

static void
test_log_syslog(void **state)
{
	pid_t pid;
	int st;

	(void)state;
	assert_true((pid = fork()) >= 0);
	if (pid == 0)
		_exit(log_syslog_child());
	if ((st = child_status(pid)) == 77) {
		printf("SKIP: no private mount namespace here (not root?), so "
		       "the syslog sink is not checked\n");
		skip();
	}
	assert_int_equal(st, 0);
}

/* JSON string literals: known answers, and any bytes make JSON that
 * jansson parses, in ASCII, back to the input where it was valid UTF-8. */
static void
test_json_str(void **state)
{
	static const struct {
		const char *in;
		size_t n;
		const char *out;
	} vec[] = {
	    {"", 0, "\"\""},
	    {"plain ARN:aws/x", 15, "\"plain ARN:aws/x\""},
	    {"a\"b\\c\n\x01\x7f", 8, "\"a\\\"b\\\\c\\u000a\\u0001\\u007f\""},
	    {"nul\0x", 5, "\"nul\\u0000x\""},
	    {"\xc3\xa9\xe2\x82\xac", 5, "\"\\u00e9\\u20ac\""},
	    {"\xf0\x9f\x98\x80", 4, "\"\\ud83d\\ude00\""},
	    {"\xf4\x8f\xbf\xbf", 4, "\"\\udbff\\udfff\""}, /* U+10FFFF */
	    {"\xff", 1, "\"\\ufffd\""},
	    {"\xc0\xaf", 2, "\"\\ufffd\\ufffd\""}, /* overlong '/' */
	    {"\xe0\x80\xaf", 3, "\"\\ufffd\\ufffd\\ufffd\""}, /* overlong */
	    {"\xed\xa0\x80", 3, "\"\\ufffd\\ufffd\\ufffd\""}, /* surrogate */
	    {"\xf4\x90\x80\x80", 4,
	        "\"\\ufffd\\ufffd\\ufffd\\ufffd\""}, /* above U+10FFFF */
	    {"\xe2\x82", 2, "\"\\ufffd\\ufffd\""}, /* cut short */
	    {"x\xe2\x82y", 4, "\"x\\ufffd\\ufffdy\""},
	};
	uint8_t raw[64];
	char wrapped[1024];

	(void)state;
	for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
		struct ward_buf b = {0};

		ASSERT_OK(ward_json_str_n(&b, vec[i].in, vec[i].n));
		if (b.len != strlen(vec[i].out) ||
		    memcmp(b.p, vec[i].out, b.len) != 0)
			fail_msg("case %zu: got %.*s, want %s", i, (int)b.len,
			    (const char *)b.p, vec[i].out);
		ward_buf_free(&b);
	}
	/* every byte alone, and at every place of 16 (scanned eight at a
	 * time): as it is exactly when printable ASCII but '"' or '\\' */
	for (int c = 0; c < 0x100; c++) {
		struct ward_buf b = {0};
		const char one = (char)c;
		bool plain = c >= 0x20 && c < 0x7f && c != '"' && c != '\\';

		ASSERT_OK(ward_json_str_n(&b, &one, 1));
		assert_int_equal(b.len == 3 && b.p[1] == c, plain);
		for (int pos = 0; pos < 16; pos++) {
			char in[16];

			memset(in, 'x', sizeof(in));
			in[pos] = (char)c;
			b.len = 0;
			ASSERT_OK(ward_json_str_n(&b, in, sizeof(in)));
			assert_int_equal(
			    b.len == 18 && b.p[pos + 1] == c, plain);
		}
		ward_buf_free(&b);
	}
	/* random bytes, biased towards UTF-8 lead and continuation bytes */
	srand(7);
	for (int t = 0; t < 20000; t++) {
		size_t n = (size_t)(rand() % (int)sizeof(raw));
		struct ward_buf b = {0};
		json_error_t err;
		json_t *j, *in;

		for (size_t k = 0; k < n; k++) {
			int c = rand() % 4;
			raw[k] = (uint8_t)(c == 0 ? 0x80 + rand() % 64
			        : c == 1          ? 0xc0 + rand() % 64
			        : c == 2          ? rand() % 128
			                          : rand() % 256);
		}
		ASSERT_OK(ward_json_str_n(&b, (const char *)raw, n));
		for (size_t k = 0; k < b.len; k++)
			if (b.p[k] < 0x20 || b.p[k] > 0x7e)
				fail_msg("byte %#x in the output", b.p[k]);
		snprintf(wrapped, sizeof(wrapped), "[%.*s]", (int)b.len,
		    (const char *)b.p);
		j = json_loads(wrapped, JSON_ALLOW_NUL, &err);
		if (j == NULL)
			fail_msg("jansson: %s: %s", err.text, wrapped);
		/* where jansson takes the input as UTF-8 it must come back */
		in = json_stringn((const char *)raw, n); /* NULL: not UTF-8 */
		if (in != NULL)
			assert_true(json_equal(in, json_array_get(j, 0)));
		json_decref(in);
		json_decref(j);
		ward_buf_free(&b);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_hex),
	    cmocka_unit_test(test_base64),
	    cmocka_unit_test(test_json_str),
	    cmocka_unit_test(test_quote),
	    cmocka_unit_test(test_concat),
	    cmocka_unit_test(test_parse_size),
	    cmocka_unit_test(test_atomic),
	    cmocka_unit_test(test_buf_secret),
	    cmocka_unit_test(test_close_fds),
	    cmocka_unit_test(test_log_file),
	    cmocka_unit_test(test_log_syslog),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
