/* Logging to stderr, one line per call. Secrets never reach these calls. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ward/util.h"

static enum ward_log_level log_level = WARD_LOG_WARN;

void
ward_log_set_level(enum ward_log_level level)
{
	log_level = level;
}

enum ward_log_level
ward_log_get_level(void)
{
	return log_level;
}

void
ward_log(enum ward_log_level level, const char *fmt, ...)
{
	static const char *const names[] = {
	    "error", "warning", "info", "debug"};
	char line[2048];
	va_list ap;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "ward: %s: %s\n", names[level], line);
}
