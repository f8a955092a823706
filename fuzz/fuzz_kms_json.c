/*
 * libFuzzer: the key service's JSON parser (src/kmsd/json.c) against
 * jansson's json_loadb(JSON_REJECT_DUPLICATES), the parser it replaces.
 * Invariants: the two accept exactly the same inputs, and build equal
 * values (json_equal: same types, strings byte for byte, integers and
 * doubles equal, members in any order). A parse that fails has a reason.
 * One exception, on purpose: jansson's stream skips a NUL byte that
 * follows a character it read ahead and put back (after a number, say),
 * so it accepts "[1\0]"; a raw NUL is never valid JSON, and ward refuses
 * every input that holds one.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "kmsd/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_error_t e;
	char err[160];
	json_t *ref, *got;

	got = kmsd_json_parse((const char *)data, size, err, sizeof(err));
	if (memchr(data, 0, size) != NULL) {
		if (got != NULL || err[0] == '\0')
			__builtin_trap();
		return 0;
	}
	ref = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &e);
	if ((ref == NULL) != (got == NULL)) {
		fprintf(stderr, "jansson %s, ward %s\n",
		    ref == NULL ? e.text : "accepts",
		    got == NULL ? err : "accepts");
		__builtin_trap();
	}
	if (got == NULL && err[0] == '\0')
		__builtin_trap();
	if (got != NULL && !json_equal(ref, got))
		__builtin_trap();
	json_decref(ref);
	json_decref(got);
	return 0;
}
