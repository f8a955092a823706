/*
 * ward transport: addresses (vsock:CID:PORT, unix:PATH, tcp:HOST:PORT) and
 * vsock, real or emulated.
 *
 * vsock emulation (nitro.md §6-§7; docs/enclaves.md). Sandbox enclaves
 * cannot use AF_VSOCK, so vsock ports map to Unix sockets under one
 * directory, the same path on the host and inside every enclave:
 *
 *   <run>/vsock/<CID>/<PORT>      a listener on CID:PORT
 *   <run>/vsock/local-cid         inside an enclave: its CID (absent: 3)
 *
 * <run> is ward_run_dir(). The host (the parent instance) is CID 3 and
 * sees every CID's directory; an enclave sees its own directory and CID 3's
 * (read-only), so it can listen on its own ports and reach the parent's,
 * and nothing else. The mode is native (AF_VSOCK) on Nitro: on a parent
 * instance (/dev/nitro_enclaves exists) and inside a Nitro enclave
 * (/dev/nsm is a character device); emulated everywhere else.
 * WARD_VSOCK=native|emulated overrides.
 */
#ifndef WARD_TRANSPORT_H
#define WARD_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ward/util.h"

#define WARD_VSOCK_CID_HYPERVISOR 0u
#define WARD_VSOCK_CID_LOCAL 1u
#define WARD_VSOCK_CID_HOST 2u
#define WARD_VSOCK_CID_PARENT 3u /* the parent instance (VSOCK_PROXY_CID) */
#define WARD_VSOCK_CID_FIRST 16u /* the first CID nitro-cli assigns */
#define WARD_VSOCK_CID_ANY 0xFFFFFFFFu /* VMADDR_CID_ANY */

enum ward_addr_kind {
	WARD_ADDR_TCP = 1,
	WARD_ADDR_UNIX,
	WARD_ADDR_VSOCK,
};

struct ward_addr {
	enum ward_addr_kind kind;
	char host[256]; /* TCP: name, IPv4 or IPv6 (without brackets) */
	uint16_t port; /* TCP */
	char path[108]; /* UNIX: sun_path, NUL-terminated */
	uint32_t cid, vport; /* VSOCK */
};

/*
 * Parse "tcp:HOST:PORT" ("tcp:[::1]:80" for IPv6), "unix:PATH" or
 * "vsock:CID:PORT". Ports are decimal; a TCP port is 0..65535 (0 = pick
 * one when listening), a vsock port 0..0xFFFFFFFE, a CID 0..0xFFFFFFFF.
 * Anything else is WARD_EUSAGE with a message naming the accepted forms.
 */
int ward_addr_parse(const char *s, struct ward_addr *out);
/* The same forms back; out holds WARD_ADDR_FMT_MAX bytes (less is cut). */
#define WARD_ADDR_FMT_MAX 300
void ward_addr_format(const struct ward_addr *a, char *out, size_t cap);

/*
 * Sockets. Both return a blocking, close-on-exec stream socket in *fd.
 * ward_listen: TCP sets SO_REUSEADDR, and binds the first address the
 * name resolves to that binds; a port in use is WARD_EEXIST. A UNIX path
 * whose socket has no listener is replaced, a live one is WARD_EEXIST
 * (found by connecting: that listener accepts one connection that is
 * already closed), and a file that is not a socket is WARD_EEXIST and
 * never removed. vsock goes through ward_vsock_listen (the address's CID
 * must be the local CID, VMADDR_CID_LOCAL or ANY).
 * ward_connect: TCP tries every address the name resolves to.
 */
int ward_listen(const struct ward_addr *a, int backlog, int *fd);
int ward_connect(const struct ward_addr *a, int *fd);
/* The address a listening socket is bound to: TCP's numeric host and the
 * port (when 0 was given); vsock's local CID when ANY or LOCAL was asked. */
int ward_bound_addr(
    int fd, const struct ward_addr *asked, struct ward_addr *out);

/*
 * ward's run directory: $WARD_RUN_DIR, else /run/ward for root, else
 * $XDG_RUNTIME_DIR/ward, else /tmp/ward-<uid>, which is WARD_EUNSAFE when
 * it exists and is not a directory only this user owns and may write.
 * Trailing slashes are dropped. Not created here.
 */
int ward_run_dir(char *out, size_t cap);

enum ward_vsock_mode {
	WARD_VSOCK_NATIVE = 1,
	WARD_VSOCK_EMULATED,
};
/* Which vsock this process uses (see the top of this file). */
enum ward_vsock_mode ward_vsock_mode(void);
/* This side's CID: AF_VSOCK's IOCTL_VM_SOCKETS_GET_LOCAL_CID, or 3 / the
 * local-cid file when emulated. */
int ward_vsock_local_cid(uint32_t *cid);
/* The emulation's socket path for CID:PORT (fails if it would not fit). */
int ward_vsock_path(uint32_t cid, uint32_t port, char *out, size_t cap);

/*
 * Listen on PORT of the local CID. Emulated: binds <run>/vsock/<cid>/<port>
 * (mode 0666, so the other side of a user namespace can connect), with
 * ward_listen's rule for a UNIX path already there; <run>, <run>/vsock
 * and the CID's directory are created (0755) when missing. Native:
 * AF_VSOCK bound to VMADDR_CID_ANY:port. Port 0xFFFFFFFF is WARD_EUSAGE.
 */
int ward_vsock_listen(uint32_t port, int backlog, int *fd);
/*
 * Connect to CID:PORT; CID 1 (VMADDR_CID_LOCAL) is this side's own CID,
 * and the wildcards (CID or port 0xFFFFFFFF) are WARD_EUSAGE. A port
 * nobody listens on is WARD_EIO with "nothing listens on vsock CID:PORT"
 * (ECONNREFUSED, ECONNRESET or ENOENT). A sun_path overflow is ELIMIT.
 */
int ward_vsock_connect(uint32_t cid, uint32_t port, int *fd);
/*
 * Give an emulated vsock connection (a Unix socket; AF_VSOCK is left as it
 * is) the buffering of a real one. An AF_VSOCK stream holds 256 KiB in
 * flight per direction; a Unix socket's default send buffer
 * (net.core.wmem_default, 208 KiB of memory, skb overhead included) holds
 * less, so a bulk sender sleeps and wakes its reader about twice as often.
 * This asks for 256 KiB, which the kernel doubles for that overhead and
 * caps at net.core.wmem_max. Best effort: nothing to report. Called by
 * ward_vsock_connect, and by servers on what they accept from a vsock
 * listener (the buffer is the sender's, so each side sets its own).
 */
void ward_vsock_buffer(int fd);

/*
 * Agent protocol frames (docs/protocol.md): a 4-byte big-endian body
 * length, then that many bytes of body. Bodies are 1 to max bytes.
 */
#define WARD_FRAME_MAX (1024u * 1024u)
/* Write one frame, all of it (retrying short writes and EINTR, no
 * SIGPIPE). -WARD_EIO naming the cause when the peer is gone. */
int ward_frame_write(int fd, const void *body, size_t n);
/* Write a frame whose body is head followed by tail (tail may be NULL):
 * one writev, so a large payload is not copied to join them. */
int ward_frame_write2(int fd, const void *head, size_t head_len,
    const void *tail, size_t tail_len);
/*
 * Read one frame into body (replacing its contents). 0: a frame; 1: the
 * peer closed cleanly before a frame began; -WARD_EFORMAT: a length of 0
 * or over max (nothing more is read); -WARD_EIO: a read error, a timeout
 * (SO_RCVTIMEO) or end of stream inside a frame.
 */
int ward_frame_read(int fd, size_t max, struct ward_buf *body);
/*
 * The same over bytes in memory: 0 and *frame_len (4 + body) when p holds
 * a whole frame at its start, 1 when more bytes are needed, -WARD_EFORMAT
 * for a bad length. The body is p + 4.
 */
int ward_frame_split(const uint8_t *p, size_t n, size_t max, size_t *frame_len);

#endif
