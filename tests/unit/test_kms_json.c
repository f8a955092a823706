/* The key service's JSON parser (src/kmsd/json.c): known answers, the
 * inputs jansson refuses (each refused here too, with a reason), depth at
 * jansson's limit, truncation of a good body at every length, and
 * agreement with jansson over corrupted copies of a good body. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmsd/internal.h"
#include "testutil.h"

static json_t *
parse(const char *s)
{
	char err[160];

	return kmsd_json_parse(s, strlen(s), err, sizeof(err));
}

static void
refused(const char *s, size_t n)
{
	char err[160] = "x";
	json_t *v = kmsd_json_parse(s, n, err, sizeof(err));

	if (v != NULL)
		fail_msg("accepted: %.*s", (int)n, s);
	assert_true(strlen(err) > 0);
}

static void
test_known(void **state)
{
	json_t *v, *a;

	(void)state;
	v = parse(" {\"CiphertextBlob\" : \"V0sB\", \"EncryptionContext\":"
	          "{\"a\":\"b\"},\"n\":[0,-0,12,-9223372036854775808,1.5e-3,"
	          "-2E+2,true,false,null]}\r\n");
	assert_non_null(v);
	assert_string_equal(
	    json_string_value(json_object_get(v, "CiphertextBlob")), "V0sB");
	assert_string_equal(json_string_value(json_object_get(
	                        json_object_get(v, "EncryptionContext"), "a")),
	    "b");
	a = json_object_get(v, "n");
	assert_int_equal(json_array_size(a), 9);
	assert_true(json_is_integer(json_array_get(a, 1)));
	assert_int_equal(json_integer_value(json_array_get(a, 3)),
	    (json_int_t)(-9223372036854775807LL - 1));
	assert_true(json_is_real(json_array_get(a, 4)));
	assert_true(json_real_value(json_array_get(a, 4)) == 1.5e-3);
	assert_true(json_real_value(json_array_get(a, 5)) == -200.0);
	assert_true(json_is_true(json_array_get(a, 6)));
	assert_true(json_is_null(json_array_get(a, 8)));
	/* members keep their order */
	assert_string_equal(
	    json_object_iter_key(json_object_iter(v)), "CiphertextBlob");
	json_decref(v);

	/* escapes, a surrogate pair, raw UTF-8, and an escaped key */
	v = parse("[\"\\u00e9\\ud834\\udd1e\\\"\\\\\\/\\b\\f\\n\\r\\t\","
	          "\"\xc3\xa9\xf0\x9d\x84\x9e\",{\"k\\u0065y\":1}]");
	assert_non_null(v);
	assert_string_equal(json_string_value(json_array_get(v, 0)),
	    "\xc3\xa9\xf0\x9d\x84\x9e\"\\/\b\f\n\r\t");
	assert_string_equal(json_string_value(json_array_get(v, 1)),
	    "\xc3\xa9\xf0\x9d\x84\x9e");
	assert_non_null(json_object_get(json_array_get(v, 2), "key"));
	json_decref(v);
}

static void
test_refused(void **state)
{
	static const char *const bad[] = {"", "  ", "1", "\"s\"", "true", "{",
	    "[", "{}x", "[] []", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "{a:1}",
	    "{\"a\":1,\"a\":2}", "[01]", "[-]", "[1.]", "[.5]", "[1e]", "[1e+]",
	    "[+1]", "[9223372036854775808]", "[-9223372036854775809]",
	    "[1e400]", "[-1e400]", "[tru]", "[nul]", "[True]", "[\"\\u0000\"]",
	    "{\"\\u0000\":1}", "[\"\\ud800\"]", "[\"\\udc00\"]",
	    "[\"\\ud800\\u0041\"]", "[\"\\uZZZZ\"]", "[\"\\u12\"]", "[\"\\x\"]",
	    "[\"a\tb\"]", "[\"\x80\"]", "[\"\xc0\xaf\"]", "[\"\xe0\x80\xaf\"]",
	    "[\"\xed\xa0\x80\"]", "[\"\xf4\x90\x80\x80\"]", "[\"\xf5\"]",
	    "[\"\xc3\"]", "[\"abc", "\xef\xbb\xbf{}", "[1\x0b]"};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		refused(bad[i], strlen(bad[i]));
	refused("[1\0]", 4); /* a raw NUL (jansson takes this one) */
	refused("{}\0", 3);
}

/* Depth counts every value, as jansson's does: 2048 levels in all. */
static void
test_depth(void **state)
{
	char *s = malloc(2 * 2049 + 2);
	json_t *v;
	size_t n;

	(void)state;
	assert_non_null(s);
	for (int levels = 2047; levels <= 2049; levels++) {
		json_error_t e;
		json_t *ref;
		char err[160];

		n = 0;
		for (int i = 0; i < levels; i++)
			s[n++] = '[';
		for (int i = 0; i < levels; i++)
			s[n++] = ']';
		v = kmsd_json_parse(s, n, err, sizeof(err));
		ref = json_loadb(s, n, JSON_REJECT_DUPLICATES, &e);
		assert_int_equal(v != NULL, levels <= 2048);
		assert_int_equal(ref != NULL, v != NULL);
		json_decref(v);
		json_decref(ref);
	}
	free(s);
}

/* Every prefix of a good body is refused; corrupted copies are taken or
 * refused as jansson takes or refuses them, and read the same. */
static void
test_truncated_corrupted(void **state)
{
	static const char good[] =
	    "{\"KeyId\":\"alias/x\",\"Plaintext\":\"aGk=\",\"EncryptionContext\":"
	    "{\"k\\u00e9\":\"v\\ud834\\udd1e\"},\"GrantTokens\":[\"t\"],"
	    "\"NumberOfBytes\":32,\"R\":-1.25e2,\"B\":[true,false,null]}";
	/* no NUL: jansson takes some of those (see json.c) */
	static const char subst[] = "{}[]\":,\\u0e-+.1aZ \x80\xc3\xed";
	char buf[sizeof(good)];
	uint32_t x = 12345;
	json_t *whole = parse(good);

	(void)state;
	assert_non_null(whole);
	json_decref(whole);
	for (size_t n = 0; n < sizeof(good) - 1; n++)
		refused(good, n);
	for (int i = 0; i < 20000; i++) {
		json_error_t e;
		json_t *v, *ref;
		char err[160];

		memcpy(buf, good, sizeof(good));
		for (int k = 0; k < 1 + i % 3; k++) {
			x = x * 1103515245u + 12345u;
			buf[(x >> 8) % (sizeof(good) - 1)] =
			    subst[(x >> 20) % (sizeof(subst) - 1)];
		}
		v = kmsd_json_parse(buf, sizeof(good) - 1, err, sizeof(err));
		ref = json_loadb(
		    buf, sizeof(good) - 1, JSON_REJECT_DUPLICATES, &e);
		if ((v == NULL) != (ref == NULL))
			fail_msg("%s / %s: %s", v ? "ward takes" : err,
			    ref ? "jansson takes" : e.text, buf);
		if (v != NULL)
			assert_true(json_equal(v, ref));
		json_decref(v);
		json_decref(ref);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_known),
	    cmocka_unit_test(test_refused),
	    cmocka_unit_test(test_depth),
	    cmocka_unit_test(test_truncated_corrupted),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
