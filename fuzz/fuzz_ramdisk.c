/* libFuzzer: what the sandbox monitor reads from an untrusted image before
 * anything runs: the customer ramdisk's cmd and env (cpio newc, one entry
 * per line). Invariants: lines hold no newline or NUL, fewer than
 * ENC_CMD_MAX of them, and a failure leaves nothing allocated. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "enclave/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(char **v)
{
	size_t n = 0;

	if (v == NULL)
		return;
	for (; v[n] != NULL; n++)
		if (v[n][0] == '\0' || strchr(v[n], '\n') != NULL)
			__builtin_trap();
	if (n >= ENC_CMD_MAX)
		__builtin_trap();
	enc_lines_free(v);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char **v = NULL;

	if (enc_ramdisk_lines(data, size, "cmd", &v) == 0)
		check(v);
	else if (v != NULL)
		__builtin_trap();
	v = NULL;
	if (enc_ramdisk_lines(data, size, "env", &v) == 0)
		check(v);
	else if (v != NULL)
		__builtin_trap();
	return 0;
}
