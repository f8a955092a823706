/* libFuzzer: the address parser, with its round trip: whatever parses
 * formats to a string that fits WARD_ADDR_FMT_MAX and equals the input
 * (the parser accepts only canonical forms), which parses back to the
 * same address; whatever fails says so with the accepted forms. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ward/transport.h"
#include "ward/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ward_addr a, b;
	char s[WARD_ADDR_FMT_MAX], t[WARD_ADDR_FMT_MAX];
	char *in;

	/* the parser takes a C string: the input up to its first NUL */
	if ((in = malloc(size + 1)) == NULL)
		return 0;
	memcpy(in, data, size);
	in[size] = '\0';
	if (ward_addr_parse(in, &a) != 0) {
		/* a refusal says why, and names the forms */
		if (strstr(ward_errmsg(), "expected tcp:HOST:PORT") == NULL)
			__builtin_trap();
		ward_errclear();
		free(in);
		return 0;
	}
	if (a.kind != WARD_ADDR_TCP && a.kind != WARD_ADDR_UNIX &&
	    a.kind != WARD_ADDR_VSOCK)
		__builtin_trap();
	memset(s, 0x55, sizeof(s));
	ward_addr_format(&a, s, sizeof(s));
	/* never cut: the constant is a real bound */
	if (memchr(s, '\0', sizeof(s) - 1) == NULL)
		__builtin_trap();
	/* canonical: the input was already in the formatted form, except
	 * that the parser reads only up to the first NUL */
	if (strcmp(s, in) != 0)
		__builtin_trap();
	if (ward_addr_parse(s, &b) != 0 || memcmp(&a, &b, sizeof(a)) != 0)
		__builtin_trap();
	ward_addr_format(&b, t, sizeof(t));
	if (strcmp(s, t) != 0)
		__builtin_trap();
	free(in);
	return 0;
}
