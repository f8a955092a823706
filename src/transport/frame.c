/*
 * Agent protocol frames (docs/protocol.md "Frames"): a 4-byte big-endian
 * body length, then the body. The length is checked against the caller's
 * cap before a byte of the body is read or a byte of memory reserved.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "ward/transport.h"
#include "ward/util.h"

#define FRAME_HEADER 4

static int
check_len(uint32_t len, size_t max)
{
	if (len == 0)
		return ward_errf(WARD_EFORMAT, "frame: empty frame");
	if (len > max)
		return ward_errf(WARD_EFORMAT,
		    "frame: body of %u bytes is over the limit of %zu", len,
		    max);
	return 0;
}

int
ward_frame_split(const uint8_t *p, size_t n, size_t max, size_t *frame_len)
{
	uint32_t len;
	int r;

	if (n < FRAME_HEADER)
		return 1;
	len = ward_load32(p);
	if ((r = check_len(len, max)) != 0)
		return r;
	if (n - FRAME_HEADER < len)
		return 1;
	*frame_len = FRAME_HEADER + (size_t)len;
	return 0;
}

/* Write all of iov (at most 3 entries), advancing it on short writes. */
static int
write_all(int fd, struct iovec *iov, int cnt)
{
	struct msghdr mh;
	ssize_t w;
	bool sock = true;

	while (cnt > 0) {
		if (iov[0].iov_len == 0) {
			iov++;
			cnt--;
			continue;
		}
		if (sock) {
			memset(&mh, 0, sizeof(mh));
			mh.msg_iov = iov;
			mh.msg_iovlen = (size_t)cnt;
			w = sendmsg(fd, &mh, MSG_NOSIGNAL);
			if (w < 0 && errno == ENOTSOCK) {
				sock = false;
				continue;
			}
		} else
			w = writev(fd, iov, cnt);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return ward_errf(WARD_EIO,
				    "frame: the peer stopped reading (timed out)");
			return ward_errf(
			    WARD_EIO, "frame: writing: %s", strerror(errno));
		}
		while (w > 0 && cnt > 0) {
			if ((size_t)w >= iov[0].iov_len) {
				w -= (ssize_t)iov[0].iov_len;
				iov++;
				cnt--;
			} else {
				iov[0].iov_base =
				    (uint8_t *)iov[0].iov_base + w;
				iov[0].iov_len -= (size_t)w;
				w = 0;
			}
		}
	}
	return 0;
}

int
ward_frame_write2(int fd, const void *head, size_t head_len, const void *tail,
    size_t tail_len)
{
	uint8_t hdr[FRAME_HEADER];
	struct iovec iov[3];
	size_t n = head_len + tail_len;

	if (n == 0 || n > UINT32_MAX || n < head_len)
		return ward_errf(WARD_ELIMIT, "frame: body of %zu bytes", n);
	ward_store32(hdr, (uint32_t)n);
	iov[0].iov_base = hdr;
	iov[0].iov_len = sizeof(hdr);
	iov[1].iov_base = (void *)head;
	iov[1].iov_len = head_len;
	iov[2].iov_base = (void *)tail;
	iov[2].iov_len = tail != NULL ? tail_len : 0;
	return write_all(fd, iov, 3);
}

int
ward_frame_write(int fd, const void *body, size_t n)
{
	return ward_frame_write2(fd, body, n, NULL, 0);
}

/* Read exactly n bytes. 0, 1 on end of stream before the first byte when
 * eof_ok, else -WARD_EIO. */
static int
read_exact(int fd, uint8_t *p, size_t n, bool eof_ok, const char *what)
{
	size_t got = 0;
	ssize_t k;

	while (got < n) {
		k = read(fd, p + got, n - got);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return ward_errf(WARD_EIO,
				    "frame: the peer stalled in the middle of a frame (timed out)");
			return ward_errf(WARD_EIO, "frame: reading %s: %s",
			    what, strerror(errno));
		}
		if (k == 0) {
			if (got == 0 && eof_ok)
				return 1;
			return ward_errf(WARD_EIO,
			    "frame: the stream ended inside a frame's %s (%zu of %zu bytes)",
			    what, got, n);
		}
		got += (size_t)k;
	}
	return 0;
}

int
ward_frame_read(int fd, size_t max, struct ward_buf *body)
{
	uint8_t hdr[FRAME_HEADER];
	uint32_t len;
	int r;

	body->len = 0;
	if ((r = read_exact(fd, hdr, sizeof(hdr), true, "length")) != 0)
		return r;
	len = ward_load32(hdr);
	if ((r = check_len(len, max)) != 0)
		return r;
	if ((r = ward_buf_reserve(body, len)) != 0)
		return r;
	if ((r = read_exact(fd, body->p, len, false, "body")) != 0)
		return r;
	body->len = len;
	return 0;
}
