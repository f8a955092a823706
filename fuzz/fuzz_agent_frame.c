/* libFuzzer: the agent protocol's frame decoder over a byte stream, two
 * ways: ward_frame_split in memory and ward_frame_read from a socket. Both
 * must see the same frames and stop at the same place, never read past a
 * bad length, and each body goes through the message decoder. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ward/agent.h"
#include "ward/transport.h"
#include "ward/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Small enough for a socket buffer, so one write never blocks. */
#define STREAM_MAX 65536
#define CAP 4096 /* a small cap so oversized lengths are common */

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ward_buf body = {0};
	struct ward_msg m;
	size_t off = 0, flen;
	int sv[2], rs, rr;

	if (size > STREAM_MAX)
		return 0;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		return 0;
	if (size > 0 && write(sv[0], data, size) != (ssize_t)size)
		__builtin_trap();
	close(sv[0]);
	for (;;) {
		rs = ward_frame_split(data + off, size - off, CAP, &flen);
		rr = ward_frame_read(sv[1], CAP, &body);
		if (rs == 0) {
			if (rr != 0 || body.len + 4 != flen ||
			    memcmp(body.p, data + off + 4, body.len) != 0)
				__builtin_trap();
			if (ward_msg_decode(body.p, body.len, &m) == 0) {
				if (ward_msg_type_name(m.type) == NULL)
					__builtin_trap();
				ward_msg_free(&m);
			}
			off += flen;
			continue;
		}
		if (rs == 1) {
			/* need more: the reader sees a clean end only when
			 * nothing of a frame had arrived */
			if ((off == size) != (rr == 1) ||
			    (rr != 1 && rr != -WARD_EIO))
				__builtin_trap();
		} else if (rr != -WARD_EFORMAT || rs != -WARD_EFORMAT)
			__builtin_trap();
		break;
	}
	close(sv[1]);
	ward_buf_free(&body);
	ward_errclear();
	return 0;
}
