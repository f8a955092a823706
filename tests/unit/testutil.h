/* Helpers shared by the unit tests. */
#ifndef WARD_TESTUTIL_H
#define WARD_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "ward/envelope.h"
#include "ward/util.h"

/* Assert a libward call returned 0, printing its message if not. */
#define ASSERT_OK(expr)                                                        \
	do {                                                                   \
		int r_ = (expr);                                               \
		if (r_ != 0)                                                   \
			fail_msg("%s -> %s: %s", #expr, ward_errname(r_),      \
			    ward_errmsg());                                    \
	} while (0)
/* Assert a libward call failed with the given code. */
#define ASSERT_ERR(expr, code)                                                 \
	do {                                                                   \
		int r_ = (expr);                                               \
		if (r_ != -(code))                                             \
			fail_msg("%s -> %s (%s), expected %s", #expr,          \
			    ward_errname(r_), r_ ? ward_errmsg() : "",         \
			    ward_errname(code));                               \
	} while (0)

/* A fresh directory under $TMPDIR, removed by tu_rmtree. */
char *tu_mkdtemp(void);
void tu_rmtree(const char *dir);
/* Number of entries in a directory (not . and ..). */
int tu_count_entries(const char *dir);
int tu_write_file(const char *path, const void *p, size_t n);
/* Read a whole file; NULL if absent. */
uint8_t *tu_read_file(const char *path, size_t *n);
/* The fixtures directory, or NULL (and a SKIP line) when absent. */
const char *tu_fixtures(const char *sub);

/* Encrypt/decrypt a buffer in memory. */
int tu_encrypt(struct ward_keyring *kr, uint16_t suite, uint32_t frame,
    const struct ward_ec *ec, const uint8_t *pt, size_t n,
    struct ward_buf *out);
int tu_decrypt(struct ward_keyring *kr, const struct ward_dec_params *p,
    const uint8_t *ct, size_t n, size_t chunk, struct ward_buf *out);
struct ward_keyring *tu_aes_keyring(const char *name, uint8_t fill);

#endif
