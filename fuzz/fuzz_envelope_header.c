/* libFuzzer: the header parser alone, with its invariants. */
#include <stdint.h>
#include <stdlib.h>

#include "ward/envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ward_header h;
	bool more;

	if (ward_header_parse(data, size, 0, &h, &more) == 0) {
		/* a parsed header lies within the input, its body within it */
		if (h.len > size || h.body_len > h.len || h.edks.n == 0 ||
		    h.suite == NULL)
			__builtin_trap();
		ward_header_free(&h);
	}
	return 0;
}
