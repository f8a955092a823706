/*
 * The sandbox NSM's socket framing, for the client and the emulation
 * alike: a 4-byte big-endian length, then the CBOR message. Writes use
 * send(MSG_NOSIGNAL), so a vanished peer is an error and not SIGPIPE
 * (write() when the descriptor is not a socket: a pipe in tests). EINTR
 * is retried unless ward's signal handler caught a signal.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "attest/internal.h"

/* Read exactly n bytes; *got < n only at the end of the stream. */
static int
read_full(int fd, uint8_t *p, size_t n, size_t *got, const char *who)
{
	*got = 0;
	while (*got < n) {
		ssize_t k = read(fd, p + *got, n - *got);

		if (k < 0 && errno == EINTR) {
			if (ward_signal_caught() != 0)
				return ward_errf(WARD_EINTR,
				    "%s: interrupted by signal %d", who,
				    ward_signal_caught());
			continue;
		}
		if (k < 0)
			return ward_errf(WARD_EIO, "%s: receiving: %s", who,
			    strerror(errno));
		if (k == 0)
			return 0;
		*got += (size_t)k;
	}
	return 0;
}

static int
write_full(int fd, const uint8_t *p, size_t n, const char *who)
{
	bool sock = true;

	while (n > 0) {
		ssize_t k =
		    sock ? send(fd, p, n, MSG_NOSIGNAL) : write(fd, p, n);

		if (k < 0 && sock && errno == ENOTSOCK) {
			sock = false;
			continue;
		}
		if (k < 0 && errno == EINTR) {
			if (ward_signal_caught() != 0)
				return ward_errf(WARD_EINTR,
				    "%s: interrupted by signal %d", who,
				    ward_signal_caught());
			continue;
		}
		if (k < 0)
			return ward_errf(
			    WARD_EIO, "%s: sending: %s", who, strerror(errno));
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

int
ward_nsm_frame_write(int fd, const uint8_t *msg, size_t n, const char *who)
{
	uint8_t hdr[4];
	int r;

	if (n > UINT32_MAX)
		return ward_errf(
		    WARD_ELIMIT, "%s: a frame of %zu bytes", who, n);
	ward_store32(hdr, (uint32_t)n);
	if ((r = write_full(fd, hdr, sizeof(hdr), who)) != 0)
		return r;
	return write_full(fd, msg, n, who);
}

int
ward_nsm_frame_read(
    int fd, uint8_t *buf, size_t max, size_t *len, bool *eof, const char *who)
{
	uint8_t hdr[4];
	size_t got;
	uint32_t n;
	int r;

	*len = 0;
	*eof = false;
	if ((r = read_full(fd, hdr, sizeof(hdr), &got, who)) != 0)
		return r;
	if (got == 0) {
		*eof = true;
		return 0;
	}
	if (got < sizeof(hdr))
		return ward_errf(WARD_EIO,
		    "%s: the peer closed the connection inside a frame header",
		    who);
	n = ward_load32(hdr);
	*len = n;
	if (n > max)
		return ward_errf(WARD_ELIMIT,
		    "%s: a frame of %u bytes, more than the %zu-byte limit",
		    who, n, max);
	if ((r = read_full(fd, buf, n, &got, who)) != 0)
		return r;
	if (got < n)
		return ward_errf(WARD_EIO,
		    "%s: the peer closed the connection inside a %u-byte "
		    "frame (%zu bytes read)",
		    who, n, got);
	return 0;
}
