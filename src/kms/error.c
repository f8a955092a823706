/*
 * AWS errors: the HTTP status, shape name and message a KMS request
 * failed with, on the server (to send) and on the client (as received).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ward/kms.h"

int
ward_kms_err(struct ward_kms_error *e, int code, int status, const char *type,
    const char *fmt, ...)
{
	va_list ap;
	char msg[sizeof(((struct ward_kms_error *)0)->message)];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (e != NULL) {
		e->status = status;
		snprintf(e->type, sizeof(e->type), "%s", type);
		snprintf(e->message, sizeof(e->message), "%s", msg);
	}
	return ward_errf(code, "%s: %s", type, msg);
}
