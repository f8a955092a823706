/* libFuzzer: hex and base64 decoders; whatever decodes re-encodes to the
 * same text (canonical forms only are accepted). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ward/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t out[1024];
	char back[2 * 1024 + 8];
	size_t n;

	if (size > 1024)
		return 0;
	if (ward_b64_decode((const char *)data, size, out, sizeof(out), &n) ==
	    0) {
		ward_b64_encode(out, n, back);
		if (strlen(back) != size || memcmp(back, data, size) != 0)
			__builtin_trap();
	}
	if (ward_hex_decode((const char *)data, size, out, sizeof(out), &n) ==
	        0 &&
	    n != size / 2)
		__builtin_trap();
	return 0;
}
