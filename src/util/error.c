/* Error codes and the thread-local message of the last failure. */
#include <stdio.h>
#include <string.h>

#include "ward/util.h"

#define WARD_ERRMSG_MAX 1024

static _Thread_local char errmsg[WARD_ERRMSG_MAX];

static const char *const errnames[] = {
    [WARD_OK] = "OK",
    [WARD_EINTERNAL] = "EINTERNAL",
    [WARD_EUSAGE] = "EUSAGE",
    [WARD_EIO] = "EIO",
    [WARD_EFORMAT] = "EFORMAT",
    [WARD_EAUTH] = "EAUTH",
    [WARD_EKEY] = "EKEY",
    [WARD_ECONTEXT] = "ECONTEXT",
    [WARD_EUNSUPPORTED] = "EUNSUPPORTED",
    [WARD_ELIMIT] = "ELIMIT",
    [WARD_EUNSAFE] = "EUNSAFE",
    [WARD_EEXIST] = "EEXIST",
    [WARD_ENOMEM] = "ENOMEM",
    [WARD_ECRYPTO] = "ECRYPTO",
    [WARD_EINTR] = "EINTR",
};

/* Parenthesized names keep util.h's analyzer-only macros from expanding
 * in the definitions. */
int(ward_errf)(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errmsg, sizeof(errmsg), fmt, ap);
	va_end(ap);
	if (code <= 0 || code >= (int)(sizeof(errnames) / sizeof(errnames[0])))
		code = WARD_EINTERNAL;
	return -code;
}

int
ward_err_prefix(int r, const char *fmt, ...)
{
	char prefix[WARD_ERRMSG_MAX], joined[2 * WARD_ERRMSG_MAX + 2];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	snprintf(joined, sizeof(joined), "%s: %s", prefix, errmsg);
	/* Long messages are cut, never overrun. */
	memcpy(errmsg, joined, sizeof(errmsg) - 1);
	errmsg[sizeof(errmsg) - 1] = '\0';
	return r;
}

const char *
ward_errmsg(void)
{
	return errmsg[0] != '\0' ? errmsg : "unknown error";
}

void
ward_errclear(void)
{
	errmsg[0] = '\0';
}

const char *
ward_errname(int r)
{
	int code = r < 0 ? -r : r;

	if (code >= (int)(sizeof(errnames) / sizeof(errnames[0])))
		return "EINTERNAL";
	return errnames[code];
}

int
ward_exit_code(int r)
{
	if (r == 0)
		return 0;
	r = r < 0 ? -r : r;
	if (r >= (int)(sizeof(errnames) / sizeof(errnames[0])))
		return WARD_EINTERNAL;
	return r;
}

int(ward_enomem)(void)
{
	return ward_errf(WARD_ENOMEM, "out of memory");
}
