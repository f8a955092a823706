/* libFuzzer: the CMS EnvelopedData reader (KMS CiphertextForRecipient),
 * with its invariants: what parses points inside the input and holds
 * whole AES blocks. */
#include <stdint.h>
#include <stdlib.h>

#include "ward/crypto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
inside(const uint8_t *data, size_t size, const uint8_t *p, size_t n)
{
	uintptr_t lo = (uintptr_t)data, q = (uintptr_t)p;

	return q >= lo && n <= size && q - lo <= size - n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ward_cms c;

	if (ward_cms_parse(data, size, &c) != 0) {
		/* a failed parse leaves nothing to free */
		if (c.content.p != NULL || c.rid != NULL)
			__builtin_trap();
		return 0;
	}
	if (!inside(data, size, c.rid, c.rid_len) || c.rid_len == 0 ||
	    !inside(data, size, c.encrypted_key, c.encrypted_key_len) ||
	    c.encrypted_key_len == 0 || c.content.len == 0 ||
	    c.content.len % 16 != 0 || c.content.len > size)
		__builtin_trap();
	ward_cms_free(&c);
	if (c.content.p != NULL)
		__builtin_trap();
	return 0;
}
