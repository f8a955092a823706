/*
 * Logging, one line per call: to stderr, or (a daemon whose stderr is
 * /dev/null) to a file or syslog. Secrets never reach these calls.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "ward/util.h"

static enum ward_log_level log_level = WARD_LOG_WARN;
static int log_fd = -1; /* >= 0: lines go to this file */
static int log_syslog; /* nonzero: lines go to syslog */

int
ward_log_to_file(const char *path)
{
	/* O_NONBLOCK: a FIFO without a reader fails (ENXIO), not hangs */
	int fd = open(path,
	    O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY |
	        O_NONBLOCK,
	    0600);
	struct stat st;

	if (fd < 0 && errno != EISDIR && errno != ENXIO)
		return ward_errf(WARD_EIO, "the log file %s: %s",
		    ward_quotes(path), strerror(errno));
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		if (fd >= 0)
			close(fd);
		return ward_errf(WARD_EUSAGE,
		    "the log file %s is not a regular file", ward_quotes(path));
	}
	if (log_fd >= 0)
		close(log_fd);
	log_fd = fd;
	log_syslog = 0;
	return 0;
}

void
ward_log_to_syslog(const char *ident)
{
	openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	if (log_fd >= 0)
		close(log_fd);
	log_fd = -1;
	log_syslog = 1;
}

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
	if (log_fd >= 0) {
		/* one write per line: O_APPEND keeps lines whole */
		char out[sizeof(line) + 64];
		struct timespec ts;
		struct tm tm;
		int n;

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n = snprintf(out, sizeof(out),
		    "%04d-%02d-%02dT%02d:%02d:%02dZ ward[%ld]: %s: %s\n",
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		    tm.tm_min, tm.tm_sec, (long)getpid(), names[level], line);
		if (n > 0) {
			size_t len = (size_t)n;
			ssize_t w;

			if (len >= sizeof(out)) { /* cut: keep the newline */
				len = sizeof(out) - 1;
				out[len - 1] = '\n';
			}
			w = write(log_fd, out, len);
			(void)w; /* a failed log write has nowhere to go */
		}
		return;
	}
	if (log_syslog) {
		static const int prio[] = {
		    LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
		syslog(prio[level], "%s: %s", names[level], line);
		return;
	}
	fprintf(stderr, "ward: %s: %s\n", names[level], line);
}
