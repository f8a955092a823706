/*
 * ward util: errors, logging, buffers, hex/base64, atomic file writes,
 * byte streams and the progress bar. The lowest module: it calls nothing
 * else in libward.
 */
#ifndef WARD_UTIL_H
#define WARD_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * Errors. Every fallible libward function returns 0 or a negative WARD_E*
 * code, and records a message once, at the innermost place that knows the
 * cause (ward_errf). Callers never print what a callee already explained:
 * the CLI prints ward_errmsg() and exits with ward_exit_code(r).
 *
 * The numbers are the process exit codes (see docs/man/ward.1) and are
 * stable: scripts may test for them.
 */
enum ward_err {
	WARD_OK = 0,
	WARD_EINTERNAL = 1, /* a bug or an unexpected library failure */
	WARD_EUSAGE = 2, /* bad command line or argument */
	WARD_EIO = 3, /* reading or writing a file failed */
	WARD_EFORMAT = 4, /* malformed or truncated input */
	WARD_EAUTH = 5, /* authentication failed: tampered or corrupt */
	WARD_EKEY = 6, /* no given key opens the data key */
	WARD_ECONTEXT = 7, /* encryption context mismatch */
	WARD_EUNSUPPORTED = 8, /* valid but unsupported (suite, version) */
	WARD_ELIMIT = 9, /* a size or count limit was exceeded */
	WARD_EUNSAFE = 10, /* refused as unsafe (archive entry, path) */
	WARD_EEXIST = 11, /* output exists and --force was not given */
	WARD_ENOMEM = 12, /* out of memory */
	WARD_ECRYPTO = 13, /* the crypto library failed */
	WARD_EINTR = 14, /* interrupted by a signal */
};

/* Record a message for code and return -code. Thread-local. */
int ward_errf(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prefix the recorded message with more context ("decrypting x: ..."). */
int ward_err_prefix(int r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
const char *ward_errmsg(void);
void ward_errclear(void);
/* Short stable name of a code ("EAUTH"), for logs and tests. */
const char *ward_errname(int r);
/* Exit status for a return value: 0 for 0, else the code's number. */
int ward_exit_code(int r);
/* ward_errf(WARD_ENOMEM, ...) with a fixed message. */
int ward_enomem(void);
#ifdef __clang_analyzer__
/* The static analyzer cannot see across files that these never return
 * 0; without this it explores failure paths that "succeed". */
#define ward_errf(code, ...) (ward_errf((code), __VA_ARGS__), -(code))
#define ward_enomem() (ward_enomem(), -WARD_ENOMEM)
#endif

/*
 * Signals. A program (not the library) calls ward_signals_install: SIGINT,
 * SIGTERM and SIGHUP are then recorded instead of killing the process, and
 * the stream functions below fail with WARD_EINTR at their next step, so
 * every temporary output is removed on the normal error path. SIGPIPE is
 * ignored (writes fail with EPIPE instead). The program then calls
 * ward_signals_reraise to die of the signal it caught.
 */
void ward_signals_install(void);
int ward_signal_caught(void);
void ward_signals_reraise(void);

/* Logging to stderr. Never pass a secret to these. */
enum ward_log_level {
	WARD_LOG_ERROR = 0,
	WARD_LOG_WARN = 1,
	WARD_LOG_INFO = 2,
	WARD_LOG_DEBUG = 3,
};
void ward_log_set_level(enum ward_log_level level);
enum ward_log_level ward_log_get_level(void);
void ward_log(enum ward_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/*
 * Where the lines go once standard error is no longer read (a daemon's is
 * /dev/null): appended to a file (created 0600; a path that is not a
 * regular file is refused), each line with its UTC time and pid, or to
 * syslog (facility daemon). Call before any thread logs.
 */
int ward_log_to_file(const char *path);
void ward_log_to_syslog(const char *ident);
#define ward_warn(...) ward_log(WARD_LOG_WARN, __VA_ARGS__)
#define ward_info(...) ward_log(WARD_LOG_INFO, __VA_ARGS__)
#define ward_debug(...) ward_log(WARD_LOG_DEBUG, __VA_ARGS__)

/*
 * Bytes from a message or an archive, made safe to print: control bytes
 * become \xNN and long values are cut. Returns one of a few rotating
 * thread-local buffers, valid until the fourth next call.
 */
const char *ward_quote(const void *p, size_t n);
const char *ward_quotes(const char *s);

/*
 * The strings, one after another, into out (cap bytes, cap > 0): always
 * terminated, cut to fit. Returns the length the whole would have, so a
 * result >= cap means it was cut (as snprintf's). For hot paths where
 * snprintf("%s%s...") costs more than the copy. ward_concat(out, cap, a,
 * b, ...) passes its strings as a NULL-terminated array (no variadic
 * sentinel) to ward_concat_list.
 */
size_t ward_concat_list(char *out, size_t cap, const char *const *parts);
#define ward_concat(out, cap, ...)                                             \
	ward_concat_list((out), (cap), (const char *const[]){__VA_ARGS__, NULL})

/* Zero memory in a way the compiler may not elide. */
void ward_cleanse(void *p, size_t n);
/* Constant-time comparison; 0 when equal. */
int ward_ct_memcmp(const void *a, const void *b, size_t n);

/* A view of bytes held elsewhere (never owned). */
struct ward_bytes {
	const uint8_t *p;
	size_t len;
};

/*
 * A growable byte buffer. A buffer flagged secret is cleansed whenever its
 * storage is released or moved.
 */
struct ward_buf {
	uint8_t *p;
	size_t len;
	size_t cap;
	bool secret;
};
int ward_buf_reserve(struct ward_buf *b, size_t extra);
int ward_buf_append(struct ward_buf *b, const void *p, size_t n);
int ward_buf_put_u8(struct ward_buf *b, uint8_t v);
int ward_buf_put_u16(struct ward_buf *b, uint16_t v); /* big-endian */
int ward_buf_put_u32(struct ward_buf *b, uint32_t v);
int ward_buf_put_u64(struct ward_buf *b, uint64_t v);
void ward_buf_free(struct ward_buf *b);

/* Big-endian loads and stores. */
static inline uint16_t
ward_load16(const uint8_t *p)
{
	return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}
static inline uint32_t
ward_load32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t
ward_load64(const uint8_t *p)
{
	return (uint64_t)ward_load32(p) << 32 | ward_load32(p + 4);
}
static inline void
ward_store16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}
static inline void
ward_store32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}
static inline void
ward_store64(uint8_t *p, uint64_t v)
{
	ward_store32(p, (uint32_t)(v >> 32));
	ward_store32(p + 4, (uint32_t)v);
}

/*
 * Hex and base64 (RFC 4648, standard alphabet, padded). The encoders
 * NUL-terminate; out must hold ward_hex_len(n)+1 / ward_b64_len(n)+1 bytes.
 * The decoders reject any character outside the alphabet, bad padding and
 * output longer than outcap.
 */
#define ward_hex_len(n) ((n)*2)
#define ward_b64_len(n) (((n) + 2) / 3 * 4)
void ward_hex_encode(const uint8_t *p, size_t n, char *out);
int ward_hex_decode(
    const char *s, size_t slen, uint8_t *out, size_t outcap, size_t *outlen);
void ward_b64_encode(const uint8_t *p, size_t n, char *out);
int ward_b64_decode(
    const char *s, size_t slen, uint8_t *out, size_t outcap, size_t *outlen);

/*
 * Append s as a JSON string literal, quotes included, in ASCII only:
 * '"', '\\' and control characters escaped, every other non-ASCII
 * character as \uXXXX (a surrogate pair above U+FFFF), and each byte
 * that is not part of valid UTF-8 (overlong forms, surrogates and code
 * points above U+10FFFF included) as \ufffd, so any input makes valid
 * JSON and nothing is dropped silently. ward_json_str_n takes a length
 * (NUL bytes become \u0000).
 */
int ward_json_str(struct ward_buf *b, const char *s);
int ward_json_str_n(struct ward_buf *b, const char *s, size_t n);

/* The length (2 to 4) of the valid multi-byte UTF-8 sequence at p, of at
 * most n bytes (RFC 3629: no overlong forms, no surrogates, nothing above
 * U+10FFFF), and its code point in *cp; 0 if p does not start one (an
 * ASCII byte included). */
size_t ward_utf8_seq(const uint8_t *p, size_t n, uint32_t *cp);

/*
 * Byte streams. A reader fills up to cap bytes and sets *got; *got == 0
 * means end of stream. A writer writes all n bytes or fails.
 */
typedef int (*ward_read_fn)(void *ctx, uint8_t *buf, size_t cap, size_t *got);
typedef int (*ward_write_fn)(void *ctx, const uint8_t *buf, size_t n);

struct ward_fd_stream {
	int fd;
	const char *name; /* for messages: a path or "standard input" */
	uint64_t bytes; /* count of bytes moved so far */
	struct ward_progress *progress; /* optional */
};
int ward_fd_read(void *ctx, uint8_t *buf, size_t cap, size_t *got);
int ward_fd_write(void *ctx, const uint8_t *buf, size_t n);

struct ward_mem_reader {
	const uint8_t *p;
	size_t len;
	size_t off;
	size_t chunk; /* if nonzero, hand out at most this much per read */
};
int ward_mem_read(void *ctx, uint8_t *buf, size_t cap, size_t *got);
/* A ward_write_fn appending to a struct ward_buf. */
int ward_buf_write(void *ctx, const uint8_t *buf, size_t n);

/*
 * Close every file descriptor from lowest up but the n in keep (at most
 * WARD_CLOSE_KEEP_MAX; negative ones are ignored): for a child before it
 * runs something else. No allocation, so safe after fork.
 */
#define WARD_CLOSE_KEEP_MAX 8
void ward_close_fds_except(int lowest, const int *keep, size_t n);

/* Read a whole (small) file, at most max bytes, into a secret buffer. */
int ward_read_file(const char *path, size_t max, struct ward_buf *out);

/*
 * Atomic file creation: the data goes to a temporary file beside path,
 * which replaces path only on ward_atomic_commit (fsync, rename, fsync of
 * the directory). Where the filesystem allows, the temporary file is
 * anonymous (O_TMPFILE) and gets a name only at commit, so not even
 * SIGKILL leaves a partial file behind. ward_atomic_abort (or commit failing) removes the
 * temporary file, so a failure never leaves a partial output. Without
 * overwrite, an existing path is refused up front and, racing creators
 * aside, at commit time (link(2) instead of rename(2)).
 */
struct ward_atomic {
	int fd;
	char *path;
	char *tmp; /* named temporary file, or NULL when anonymous */
	bool anonymous; /* O_TMPFILE: no name until commit, even if killed */
	bool overwrite;
};
int ward_atomic_open(
    struct ward_atomic *a, const char *path, mode_t mode, bool overwrite);
int ward_atomic_commit(struct ward_atomic *a);
void ward_atomic_abort(struct ward_atomic *a);
/* Write a whole buffer atomically. */
int ward_write_file_atomic(
    const char *path, const void *p, size_t n, mode_t mode, bool overwrite);

/*
 * Progress bar on stderr: drawn only when stderr is a terminal or when
 * forced; redrawn at most ten times a second. total 0 = unknown.
 */
struct ward_progress {
	const char *label;
	uint64_t total;
	uint64_t done;
	double start;
	double last_draw;
	bool enabled;
};
void ward_progress_init(
    struct ward_progress *p, const char *label, uint64_t total, bool force);
void ward_progress_add(struct ward_progress *p, uint64_t n);
void ward_progress_end(struct ward_progress *p);

/* Monotonic time in seconds. */
double ward_now(void);

/* Parse a size such as 4096, 64K, 1M, 2G (binary units). */
int ward_parse_size(const char *s, uint64_t max, uint64_t *out);

/*
 * libcurl, libarchive, libmicrohttpd and libsqlite3 are loaded on first use
 * (src/util/lazy.c), not at start. ward_lazy_load loads one now: 0, or
 * WARD_EIO naming the library when it cannot be loaded (a process that
 * will need it later calls this first, to fail at start and not midway).
 * ward_lazy_soname: the name it is loaded by, what an enclave image must
 * carry in /ward/lib.
 */
enum ward_lazy {
	WARD_LAZY_CURL,
	WARD_LAZY_ARCHIVE,
	WARD_LAZY_MHD,
	WARD_LAZY_SQLITE,
	WARD_LAZY_N
};
int ward_lazy_load(enum ward_lazy lib);
const char *ward_lazy_soname(enum ward_lazy lib);

#endif
