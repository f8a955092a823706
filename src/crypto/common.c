/* Randomness and OpenSSL error reporting. */
#include <openssl/err.h>
#include <openssl/rand.h>
#include <stdio.h>

#include "ward/crypto.h"
#include "ward/util.h"

int(ward_crypto_err)(int code, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256] = "no detail";

	if (e != 0)
		ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return ward_errf(code, "%s failed (%s)", what, buf);
}

int
ward_random(uint8_t *p, size_t n)
{
	while (n > 0) {
		int chunk = n > (1 << 20) ? (1 << 20) : (int)n;

		if (RAND_bytes(p, chunk) != 1)
			return ward_crypto_err(
			    WARD_ECRYPTO, "random generator");
		p += chunk;
		n -= (size_t)chunk;
	}
	return 0;
}
