/* INFER's rows (src/agent/rows.c): CSV and JSON into a float matrix, known
 * answers, missing values, headers, and every kind of bad input with the
 * row it names; the receipt binding (proto.c) against a hash computed
 * here independently. */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "agent/internal.h"
#include "ward/util.h"

static int
parse(const char *s, enum agent_fmt f, struct agent_rows *r)
{
	return agent_rows_parse((const uint8_t *)s, strlen(s), f, 1u << 20, r);
}

static void
test_csv_known(void **state)
{
	struct agent_rows r;

	assert_int_equal(parse("a,b,c\n1,2.5,-3e2\r\n  4 , \"5\",.5\n\n",
	                     AGENT_FMT_AUTO, &r),
	    0);
	assert_int_equal(r.rows, 2);
	assert_int_equal(r.cols, 3);
	assert_true(r.v[0] == 1.0f && r.v[1] == 2.5f && r.v[2] == -300.0f);
	assert_true(r.v[3] == 4.0f && r.v[4] == 5.0f && r.v[5] == 0.5f);
	agent_rows_free(&r);
	assert_null(r.v);
}

static void
test_csv_no_header_missing(void **state)
{
	struct agent_rows r;

	/* a first line of numbers is data; empty, NA, NaN are missing */
	assert_int_equal(parse("1,,3\nNA,NaN,+6\n", AGENT_FMT_CSV, &r), 0);
	assert_int_equal(r.rows, 2);
	assert_int_equal(r.cols, 3);
	assert_true(r.v[0] == 1.0f && isnan(r.v[1]) && r.v[2] == 3.0f);
	assert_true(isnan(r.v[3]) && isnan(r.v[4]) && r.v[5] == 6.0f);
	agent_rows_free(&r);
	/* no final newline, a byte order mark */
	assert_int_equal(parse("\xef\xbb\xbf"
	                       "7,8",
	                     AGENT_FMT_AUTO, &r),
	    0);
	assert_int_equal(r.rows, 1);
	assert_true(r.v[0] == 7.0f && r.v[1] == 8.0f);
	agent_rows_free(&r);
}

static void
test_float_rounding(void **state)
{
	struct agent_rows r;

	/* the nearest float, as (float)strtod gives it */
	assert_int_equal(parse("0.1,16777217,1e-40\n", AGENT_FMT_CSV, &r), 0);
	assert_true(r.v[0] == 0.1f);
	assert_true(r.v[1] == 16777216.0f);
	assert_true(r.v[2] > 0 && r.v[2] < 1e-38f); /* a subnormal */
	agent_rows_free(&r);
}

static void
test_json_known(void **state)
{
	struct agent_rows r;

	assert_int_equal(
	    parse(" [[1, -0.5, null], [2e1,0,3]]\n", AGENT_FMT_AUTO, &r), 0);
	assert_int_equal(r.rows, 2);
	assert_int_equal(r.cols, 3);
	assert_true(r.v[0] == 1.0f && r.v[1] == -0.5f && isnan(r.v[2]));
	assert_true(r.v[3] == 20.0f && r.v[4] == 0.0f && r.v[5] == 3.0f);
	agent_rows_free(&r);
}

static void
bad(const char *in, enum agent_fmt f, int want, const char *says)
{
	struct agent_rows r;

	assert_int_equal(parse(in, f, &r), want);
	assert_null(r.v);
	assert_int_equal(r.rows, 0);
	if (says != NULL && strstr(ward_errmsg(), says) == NULL)
		fail_msg(
		    "%s: the message '%s' lacks '%s'", in, ward_errmsg(), says);
}

static void
test_bad_csv(void **state)
{
	bad("", AGENT_FMT_CSV, -WARD_EFORMAT, "no rows");
	bad("a,b\n", AGENT_FMT_CSV, -WARD_EFORMAT, "no rows");
	bad("1,2\n3\n", AGENT_FMT_CSV, -WARD_EFORMAT, "line 2 has 1 values");
	bad("1,2\n3,x\n", AGENT_FMT_CSV, -WARD_EFORMAT, "line 2, value 2");
	bad("1,2\n3,1e999\n", AGENT_FMT_CSV, -WARD_EFORMAT, "range");
	bad("1,2\n3,inf\n", AGENT_FMT_CSV, -WARD_EFORMAT, "not a number");
	bad("1,2\n3,0x10\n", AGENT_FMT_CSV, -WARD_EFORMAT, "not a number");
	{
		/* a NUL inside the text: the length is given, not strlen */
		static const char nul[] = "1,2\n3,\0\n";
		struct agent_rows r;

		assert_int_equal(
		    agent_rows_parse((const uint8_t *)nul, sizeof(nul) - 1,
		        AGENT_FMT_CSV, 1u << 20, &r),
		    -WARD_EFORMAT);
		assert_non_null(strstr(ward_errmsg(), "NUL"));
	}
	{
		char big[200];

		memset(big, '1', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		bad(big, AGENT_FMT_CSV, -WARD_EFORMAT, "not a number");
	}
}

static void
test_bad_json(void **state)
{
	bad("[", AGENT_FMT_JSON, -WARD_EFORMAT, "ends early");
	bad("[]", AGENT_FMT_JSON, -WARD_EFORMAT, "no rows");
	bad("[[]]", AGENT_FMT_JSON, -WARD_EFORMAT, "no values");
	bad("[[1,2],[3]]", AGENT_FMT_JSON, -WARD_EFORMAT, "row 2 has 1");
	bad("[[1,2],[3,\"4\"]]", AGENT_FMT_JSON, -WARD_EFORMAT, "row 2");
	bad("[[01]]", AGENT_FMT_JSON, -WARD_EFORMAT, "not a number");
	bad("[[1.]]", AGENT_FMT_JSON, -WARD_EFORMAT, "not a number");
	bad("[[1]] x", AGENT_FMT_JSON, -WARD_EFORMAT, "after the end");
	bad("[[1],]", AGENT_FMT_JSON, -WARD_EFORMAT, NULL);
	bad("[[1,]]", AGENT_FMT_JSON, -WARD_EFORMAT, NULL);
	bad("{\"rows\":[]}", AGENT_FMT_JSON, -WARD_EFORMAT, NULL);
	bad("[[nul]]", AGENT_FMT_JSON, -WARD_EFORMAT, NULL);
}

static void
test_limit(void **state)
{
	struct agent_rows r;

	assert_int_equal(agent_rows_parse((const uint8_t *)"1,2,3\n4,5,6\n", 12,
	                     AGENT_FMT_CSV, 5, &r),
	    -WARD_ELIMIT);
	assert_null(r.v);
	assert_int_equal(agent_rows_parse((const uint8_t *)"1,2,3\n4,5,6\n", 12,
	                     AGENT_FMT_CSV, 6, &r),
	    0);
	agent_rows_free(&r);
}

static void
test_receipt_binding(void **state)
{
	uint8_t m[48], in[48], out[48], ud[WARD_RECEIPT_UD_LEN], want[48];
	uint8_t msg[16 + 3 * 48];
	unsigned len = 0;

	for (int i = 0; i < 48; i++) {
		m[i] = (uint8_t)i;
		in[i] = (uint8_t)(100 + i);
		out[i] = (uint8_t)(200 + i);
	}
	assert_int_equal(ward_receipt_user_data(m, in, out, ud), 0);
	memcpy(msg, "ward-receipt-v1:", 16);
	memcpy(msg + 16, m, 48);
	memcpy(msg + 64, in, 48);
	memcpy(msg + 112, out, 48);
	assert_int_equal(
	    EVP_Digest(msg, sizeof(msg), want, &len, EVP_sha384(), NULL), 1);
	assert_memory_equal(ud, "ward-receipt-v1:", 16);
	assert_memory_equal(ud + 16, want, 48);
	/* each input matters */
	out[0] ^= 1;
	assert_int_equal(ward_receipt_user_data(m, in, out, msg), 0);
	assert_memory_not_equal(msg, ud, sizeof(ud));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_csv_known),
	    cmocka_unit_test(test_csv_no_header_missing),
	    cmocka_unit_test(test_float_rounding),
	    cmocka_unit_test(test_json_known),
	    cmocka_unit_test(test_bad_csv),
	    cmocka_unit_test(test_bad_json),
	    cmocka_unit_test(test_limit),
	    cmocka_unit_test(test_receipt_binding),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
