/* Private to the transport module: what addr.c and vsock.c share. */
#ifndef WARD_TRANSPORT_INTERNAL_H
#define WARD_TRANSPORT_INTERNAL_H

#include <stdint.h>
#include <sys/socket.h>

#include "ward/transport.h"

/*
 * connect(2) on a blocking socket, carried through EINTR: an interrupted
 * connect goes on in the background (TCP) or not at all (Unix), so it is
 * retried, and EALREADY/EINPROGRESS are waited out with poll and
 * SO_ERROR. Returns 0, or the errno that failed it; EINTR only when a
 * signal ward_signals_install records arrived (the caller should stop).
 */
int ward_transport_connect(int fd, const struct sockaddr *sa, socklen_t len);

/*
 * Bind and listen on a Unix socket at path, which must fit sun_path. A
 * socket file nobody listens on (ECONNREFUSED) is a leftover and is
 * replaced; a live listener is WARD_EEXIST "<what> is already in use"; any
 * other kind of file is WARD_EEXIST and is never removed. mode, when not
 * 0, is applied to the socket file after bind (umask aside).
 */
int ward_transport_unix_listen(
    const char *path, const char *what, int backlog, unsigned mode, int *fd);

/*
 * Strict decimal: digits only, no sign, no spaces, no leading zero except
 * "0" itself, at most max. For ports, CIDs and the local-cid file.
 */
enum ward_decimal {
	WARD_DECIMAL_OK = 0,
	WARD_DECIMAL_BAD, /* not a decimal number in the strict form */
	WARD_DECIMAL_RANGE, /* a decimal number above max */
};
enum ward_decimal ward_transport_decimal(
    const char *p, size_t n, uint64_t max, uint64_t *out);

/* The message for a recorded signal, as the stream functions word it. */
int ward_transport_interrupted(void);

#endif
