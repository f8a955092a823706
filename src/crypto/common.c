/* Randomness and OpenSSL error reporting. */
#include <openssl/err.h>
#include <openssl/rand.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

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

/*
 * The kernel's CSPRNG through getrandom(2): the generator OpenSSL seeds
 * from, without RAND_bytes' per-call locking and fork check (3.7 us a
 * call in the key service, against about 0.6 us). RAND_bytes only where
 * the system call is missing or filtered.
 */
int
ward_random(uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t got = getrandom(p, n, 0);

		if (got > 0) {
			p += got;
			n -= (size_t)got;
			continue;
		}
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0 && (errno == ENOSYS || errno == EPERM))
			break;
		return ward_errf(WARD_ECRYPTO,
		    "random generator: getrandom: %s", strerror(errno));
	}
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
