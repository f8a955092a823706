/*
 * libcurl, libarchive, libmicrohttpd and libsqlite3, loaded when first
 * used instead of when ward starts.
 *
 * Linked normally, the three bring 39 more shared libraries (gnutls, krb5,
 * ldap, icu, xml2 and their like) into every ward process: ld.so spent
 * about 8 ms mapping and relocating them before main, on commands that
 * never touch HTTP or tar (`ward --version` 9.5 ms against 1.0 ms for
 * /bin/true; run-enclave pays it on every enclave start). Each function
 * ward calls is defined here under its own name, with the prototype from
 * the library's header (the compiler checks the two agree); its first call
 * loads the library with dlopen and looks the function up, and later calls
 * go straight through. The ward executable links with --as-needed, so
 * these definitions satisfy every reference and the libraries are not
 * among its DT_NEEDED entries; docs/architecture.md says so too.
 *
 * A library that cannot be loaded (a broken installation, an enclave image
 * without it) ends the process with a message naming it, as the dynamic
 * loader would have done at start. Long-running users call ward_lazy_load
 * first, so they fail at start with an error instead.
 */
#define CURL_DISABLE_TYPECHECK 1
#include <archive.h>
#include <archive_entry.h>
#include <curl/curl.h>
#include <dlfcn.h>
#include <microhttpd.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ward/util.h"

#ifndef WARD_SONAME_CURL
#define WARD_SONAME_CURL "libcurl.so.4"
#endif
#ifndef WARD_SONAME_ARCHIVE
#define WARD_SONAME_ARCHIVE "libarchive.so.13"
#endif
#ifndef WARD_SONAME_MHD
#define WARD_SONAME_MHD "libmicrohttpd.so.12"
#endif
#ifndef WARD_SONAME_SQLITE
#define WARD_SONAME_SQLITE "libsqlite3.so.0"
#endif

static const struct {
	const char *soname, *package;
} libs[WARD_LAZY_N] = {
    [WARD_LAZY_CURL] = {WARD_SONAME_CURL, "libcurl4"},
    [WARD_LAZY_ARCHIVE] = {WARD_SONAME_ARCHIVE, "libarchive13"},
    [WARD_LAZY_MHD] = {WARD_SONAME_MHD, "libmicrohttpd12"},
    [WARD_LAZY_SQLITE] = {WARD_SONAME_SQLITE, "libsqlite3-0"},
};
static void *handles[WARD_LAZY_N];

const char *
ward_lazy_soname(enum ward_lazy lib)
{
	return (unsigned)lib < WARD_LAZY_N ? libs[lib].soname : NULL;
}

static void *
handle(enum ward_lazy lib, char *why, size_t cap)
{
	void *h = __atomic_load_n(&handles[lib], __ATOMIC_ACQUIRE),
	     *want = NULL;
	const char *e;

	if (h != NULL)
		return h;
	/* RTLD_LOCAL: the library's symbols never interpose on anyone's */
	if ((h = dlopen(libs[lib].soname, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		e = dlerror();
		snprintf(why, cap, "%s", e != NULL ? e : "dlopen failed");
		return NULL;
	}
	/* two threads may race here: one handle is kept, the other dropped
	 * (dlopen counts references, so both name the same library) */
	if (!__atomic_compare_exchange_n(&handles[lib], &want, h, false,
	        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		dlclose(h);
		h = want;
	}
	return h;
}

int
ward_lazy_load(enum ward_lazy lib)
{
	char why[512];

	if ((unsigned)lib >= WARD_LAZY_N)
		return ward_errf(WARD_EINTERNAL, "no such library");
	if (handle(lib, why, sizeof(why)) == NULL)
		return ward_errf(WARD_EIO,
		    "%s cannot be loaded: %s (install the %s package; "
		    "scripts/install-deps does)",
		    libs[lib].soname, why, libs[lib].package);
	return 0;
}

/* The function's address, or the end of the process with the reason. */
static void *
sym(enum ward_lazy lib, const char *name)
{
	char why[512];
	void *h, *f = NULL;
	const char *e;

	if ((h = handle(lib, why, sizeof(why))) != NULL) {
		dlerror();
		if ((f = dlsym(h, name)) == NULL) {
			e = dlerror();
			snprintf(why, sizeof(why), "%s",
			    e != NULL ? e : "no such symbol");
		}
	}
	if (f == NULL) {
		dprintf(STDERR_FILENO,
		    "ward: %s is needed here and cannot be loaded (%s): "
		    "install the %s package (scripts/install-deps does)\n",
		    libs[lib].soname, why, libs[lib].package);
		_exit(127);
	}
	return f;
}

/* f: the function, of the real one's type, looked up once; memcpy because
 * ISO C has no conversion from dlsym's void * to a function pointer */
#define RESOLVE(lib, name)                                                     \
	__typeof__(name) *f;                                                   \
	do {                                                                   \
		static __typeof__(name) *cache_;                               \
		if ((f = __atomic_load_n(&cache_, __ATOMIC_ACQUIRE)) ==        \
		    NULL) {                                                    \
			void *p_ = sym(lib, #name);                            \
			memcpy(&f, &p_, sizeof(f));                            \
			__atomic_store_n(&cache_, f, __ATOMIC_RELEASE);        \
		}                                                              \
	} while (0)

/* RET NAME(PARAMS) { return real(ARGS); } */
#define LAZY(lib, ret, name, params, args)                                     \
	ret name params                                                        \
	{                                                                      \
		RESOLVE(lib, name);                                            \
		return f args;                                                 \
	}
#define LAZY_VOID(lib, name, params, args)                                     \
	void name params                                                       \
	{                                                                      \
		RESOLVE(lib, name);                                            \
		f args;                                                        \
	}

/* ---- libcurl --------------------------------------------------------------- */

#define C WARD_LAZY_CURL
LAZY(C, CURLcode, curl_global_init, (long flags), (flags))
LAZY(C, CURL *, curl_easy_init, (void), ())
LAZY(C, CURLcode, curl_easy_perform, (CURL * curl), (curl))
LAZY_VOID(C, curl_easy_cleanup, (CURL * curl), (curl))
LAZY(C, const char *, curl_easy_strerror, (CURLcode code), (code))
LAZY(C, struct curl_slist *, curl_slist_append,
    (struct curl_slist * list, const char *data), (list, data))
LAZY_VOID(C, curl_slist_free_all, (struct curl_slist * list), (list))
LAZY(C, curl_version_info_data *, curl_version_info, (CURLversion v), (v))

/* The one argument after the option has the type its number says
 * (curl.h's CURLOPTTYPE_*: a long, an object pointer, a function pointer,
 * a curl_off_t, a blob pointer), as curl itself reads it. */
CURLcode
curl_easy_setopt(CURL *curl, CURLoption option, ...)
{
	RESOLVE(C, curl_easy_setopt);
	CURLcode r;
	va_list ap;

	va_start(ap, option);
	if (option < CURLOPTTYPE_OBJECTPOINT) {
		long n = va_arg(ap, long);

		r = f(curl, option, n);
	} else if (option >= CURLOPTTYPE_FUNCTIONPOINT &&
	    option < CURLOPTTYPE_OFF_T) {
		void (*fn)(void) = va_arg(ap, void (*)(void));

		r = f(curl, option, fn);
	} else if (option >= CURLOPTTYPE_OFF_T && option < CURLOPTTYPE_BLOB) {
		curl_off_t off = va_arg(ap, curl_off_t);

		r = f(curl, option, off);
	} else { /* an object or a blob */
		void *p = va_arg(ap, void *);

		r = f(curl, option, p);
	}
	va_end(ap);
	return r;
}

/* Every CURLINFO takes a pointer to where the answer goes. */
CURLcode
curl_easy_getinfo(CURL *curl, CURLINFO info, ...)
{
	RESOLVE(C, curl_easy_getinfo);
	CURLcode r;
	va_list ap;

	va_start(ap, info);
	r = f(curl, info, va_arg(ap, void *));
	va_end(ap);
	return r;
}
#undef C

/* ---- libarchive ------------------------------------------------------------ */

#define A WARD_LAZY_ARCHIVE
#define AE struct archive_entry *e
LAZY(A, struct archive *, archive_read_new, (void), ())
LAZY(A, struct archive *, archive_write_new, (void), ())
LAZY(A, struct archive *, archive_write_disk_new, (void), ())
LAZY(A, int, archive_read_free, (struct archive * a), (a))
LAZY(A, int, archive_write_free, (struct archive * a), (a))
LAZY(A, int, archive_errno, (struct archive * a), (a))
LAZY(A, const char *, archive_error_string, (struct archive * a), (a))
LAZY(A, int, archive_read_support_filter_all, (struct archive * a), (a))
LAZY(A, int, archive_read_support_filter_none, (struct archive * a), (a))
LAZY(A, int, archive_read_support_format_tar, (struct archive * a), (a))
LAZY(A, int, archive_read_open,
    (struct archive * a, void *data, archive_open_callback *o,
        archive_read_callback *r, archive_close_callback *c),
    (a, data, o, r, c))
LAZY(A, int, archive_read_open_filename,
    (struct archive * a, const char *path, size_t block), (a, path, block))
LAZY(A, int, archive_read_next_header,
    (struct archive * a, struct archive_entry **e), (a, e))
LAZY(A, int, archive_read_data_block,
    (struct archive * a, const void **buff, size_t *size, la_int64_t *offset),
    (a, buff, size, offset))
LAZY(A, int, archive_write_add_filter_none, (struct archive * a), (a))
LAZY(A, int, archive_write_set_format_pax_restricted, (struct archive * a), (a))
LAZY(A, int, archive_write_set_bytes_in_last_block,
    (struct archive * a, int bytes), (a, bytes))
LAZY(A, int, archive_write_open,
    (struct archive * a, void *data, archive_open_callback *o,
        archive_write_callback *w, archive_close_callback *c),
    (a, data, o, w, c))
LAZY(A, int, archive_write_header, (struct archive * a, AE), (a, e))
LAZY(A, la_ssize_t, archive_write_data,
    (struct archive * a, const void *p, size_t n), (a, p, n))
LAZY(A, la_ssize_t, archive_write_data_block,
    (struct archive * a, const void *p, size_t n, la_int64_t off),
    (a, p, n, off))
LAZY(A, int, archive_write_finish_entry, (struct archive * a), (a))
LAZY(A, int, archive_write_close, (struct archive * a), (a))
LAZY(A, int, archive_write_disk_set_options, (struct archive * a, int flags),
    (a, flags))
LAZY(A, struct archive_entry *, archive_entry_new, (void), ())
LAZY_VOID(A, archive_entry_free, (AE), (e))
LAZY_VOID(A, archive_entry_copy_stat, (AE, const struct stat *st), (e, st))
LAZY(A, mode_t, archive_entry_filetype, (AE), (e))
LAZY(A, mode_t, archive_entry_perm, (AE), (e))
LAZY(A, la_int64_t, archive_entry_size, (AE), (e))
LAZY(A, const char *, archive_entry_pathname, (AE), (e))
LAZY(A, const char *, archive_entry_hardlink, (AE), (e))
LAZY(A, const char *, archive_entry_symlink, (AE), (e))
LAZY_VOID(A, archive_entry_set_pathname, (AE, const char *s), (e, s))
LAZY_VOID(A, archive_entry_set_hardlink, (AE, const char *s), (e, s))
LAZY_VOID(A, archive_entry_set_symlink, (AE, const char *s), (e, s))
LAZY_VOID(A, archive_entry_set_uname, (AE, const char *s), (e, s))
LAZY_VOID(A, archive_entry_set_gname, (AE, const char *s), (e, s))
LAZY_VOID(A, archive_entry_set_perm, (AE, mode_t m), (e, m))
LAZY_VOID(A, archive_entry_set_dev, (AE, dev_t d), (e, d))
LAZY_VOID(A, archive_entry_set_ino, (AE, la_int64_t v), (e, v))
LAZY_VOID(A, archive_entry_set_nlink, (AE, unsigned int v), (e, v))
LAZY_VOID(A, archive_entry_set_uid, (AE, la_int64_t v), (e, v))
LAZY_VOID(A, archive_entry_set_gid, (AE, la_int64_t v), (e, v))
LAZY_VOID(A, archive_entry_set_size, (AE, la_int64_t v), (e, v))
LAZY_VOID(A, archive_entry_unset_atime, (AE), (e))
LAZY_VOID(A, archive_entry_unset_ctime, (AE), (e))
#undef AE

/* Formatted here, handed over as one "%s" argument. */
void
archive_set_error(struct archive *a, int err, const char *fmt, ...)
{
	RESOLVE(A, archive_set_error);
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	f(a, err, "%s", msg);
}
#undef A

/* ---- libmicrohttpd --------------------------------------------------------- */

#define M WARD_LAZY_MHD
LAZY_VOID(M, MHD_stop_daemon, (struct MHD_Daemon * d), (d))
LAZY(M, enum MHD_Result, MHD_add_connection,
    (struct MHD_Daemon * d, MHD_socket s, const struct sockaddr *addr,
        socklen_t addrlen),
    (d, s, addr, addrlen))
LAZY(M, struct MHD_Response *,
    MHD_create_response_from_buffer_with_free_callback,
    (size_t size, void *buffer, MHD_ContentReaderFreeCallback crfc),
    (size, buffer, crfc))
LAZY(M, enum MHD_Result, MHD_add_response_header,
    (struct MHD_Response * r, const char *header, const char *content),
    (r, header, content))
LAZY_VOID(M, MHD_destroy_response, (struct MHD_Response * r), (r))
LAZY(M, enum MHD_Result, MHD_queue_response,
    (struct MHD_Connection * c, unsigned int status, struct MHD_Response *r),
    (c, status, r))
LAZY(M, int, MHD_get_connection_values,
    (struct MHD_Connection * c, enum MHD_ValueKind kind,
        MHD_KeyValueIterator it, void *cls),
    (c, kind, it, cls))
LAZY(M, const char *, MHD_lookup_connection_value,
    (struct MHD_Connection * c, enum MHD_ValueKind kind, const char *key),
    (c, kind, key))

/* ward asks only for information types that take no further argument */
const union MHD_ConnectionInfo *
MHD_get_connection_info(
    struct MHD_Connection *c, enum MHD_ConnectionInfoType type, ...)
{
	RESOLVE(M, MHD_get_connection_info);

	return f(c, type);
}

/* The options list goes over as a va_list to the _va form. */
struct MHD_Daemon *
MHD_start_daemon(unsigned int flags, uint16_t port,
    MHD_AcceptPolicyCallback apc, void *apc_cls, MHD_AccessHandlerCallback dh,
    void *dh_cls, ...)
{
	RESOLVE(M, MHD_start_daemon_va);
	struct MHD_Daemon *d;
	va_list ap;

	va_start(ap, dh_cls);
	d = f(flags, port, apc, apc_cls, dh, dh_cls, ap);
	va_end(ap);
	return d;
}
#undef M

/* ---- libsqlite3 (the key service's store) ---------------------------------- */

#define S WARD_LAZY_SQLITE
#define ST sqlite3_stmt *st
LAZY(S, int, sqlite3_open_v2,
    (const char *filename, sqlite3 **db, int flags, const char *vfs),
    (filename, db, flags, vfs))
/* Closing NULL is a harmless no-op to SQLite; here it must not load the
 * library either (a clean-up path may run before anything was opened). */
#define LAZY_CLOSE(name, type)                                                 \
	int name(type p)                                                       \
	{                                                                      \
		if (p == NULL)                                                 \
			return SQLITE_OK;                                      \
		RESOLVE(S, name);                                              \
		return f(p);                                                   \
	}
LAZY_CLOSE(sqlite3_close, sqlite3 *)
LAZY_CLOSE(sqlite3_finalize, sqlite3_stmt *)
#undef LAZY_CLOSE
LAZY(S, int, sqlite3_busy_timeout, (sqlite3 * db, int ms), (db, ms))
LAZY(S, int, sqlite3_exec,
    (sqlite3 * db, const char *sql, int (*cb)(void *, int, char **, char **),
        void *arg, char **err),
    (db, sql, cb, arg, err))
LAZY(S, int, sqlite3_changes, (sqlite3 * db), (db))
LAZY(S, int, sqlite3_get_autocommit, (sqlite3 * db), (db))
LAZY(S, int, sqlite3_extended_errcode, (sqlite3 * db), (db))
LAZY(S, const char *, sqlite3_errmsg, (sqlite3 * db), (db))
LAZY(S, int, sqlite3_prepare_v2,
    (sqlite3 * db, const char *sql, int n, sqlite3_stmt **st,
        const char **tail),
    (db, sql, n, st, tail))
LAZY(S, int, sqlite3_step, (ST), (st))
LAZY(S, int, sqlite3_reset, (ST), (st))
LAZY(S, int, sqlite3_clear_bindings, (ST), (st))
LAZY(S, int, sqlite3_bind_blob,
    (ST, int i, const void *p, int n, void (*d)(void *)), (st, i, p, n, d))
LAZY(S, int, sqlite3_bind_text,
    (ST, int i, const char *p, int n, void (*d)(void *)), (st, i, p, n, d))
LAZY(S, int, sqlite3_bind_double, (ST, int i, double v), (st, i, v))
LAZY(S, int, sqlite3_bind_int, (ST, int i, int v), (st, i, v))
LAZY(S, int, sqlite3_bind_int64, (ST, int i, sqlite3_int64 v), (st, i, v))
LAZY(S, const void *, sqlite3_column_blob, (ST, int i), (st, i))
LAZY(S, int, sqlite3_column_bytes, (ST, int i), (st, i))
LAZY(S, double, sqlite3_column_double, (ST, int i), (st, i))
LAZY(S, int, sqlite3_column_int, (ST, int i), (st, i))
LAZY(S, sqlite3_int64, sqlite3_column_int64, (ST, int i), (st, i))
LAZY(S, const unsigned char *, sqlite3_column_text, (ST, int i), (st, i))
LAZY(S, void *, sqlite3_commit_hook,
    (sqlite3 * db, int (*cb)(void *), void *arg), (db, cb, arg))
LAZY(S, void *, sqlite3_rollback_hook,
    (sqlite3 * db, void (*cb)(void *), void *arg), (db, cb, arg))
LAZY(S, void *, sqlite3_wal_hook,
    (sqlite3 * db, int (*cb)(void *, sqlite3 *, const char *, int), void *arg),
    (db, cb, arg))
LAZY(S, int, sqlite3_wal_checkpoint, (sqlite3 * db, const char *name),
    (db, name))
#undef ST
#undef S
