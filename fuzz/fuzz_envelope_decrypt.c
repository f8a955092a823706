/* libFuzzer: the whole decrypt path (header, keyrings, frames, footer) on
 * arbitrary input, fed in odd-sized chunks. */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ward_keyring *kr;
	struct ward_dec_params p = {
	    .commitment = WARD_COMMIT_ALLOW_LEGACY, .max_frame_len = 1 << 20};
	struct ward_mem_reader m = {
	    .p = data, .len = size, .chunk = size % 7 == 0 ? 0 : size % 7 * 61};
	struct ward_dec *d;
	uint64_t total = 0;

	if (kr == NULL)
		kr = fuzz_keyring();
	if (ward_dec_new(&d, &p, kr, ward_mem_read, &m) != 0)
		return 0;
	for (;;) {
		const uint8_t *q;
		size_t n;

		if (ward_dec_next(d, &q, &n) != 0 || n == 0)
			break;
		total += n;
		if (total > size) /* plaintext never exceeds ciphertext */
			__builtin_trap();
	}
	ward_dec_free(d);
	return 0;
}
