/*
 * vsock, native (AF_VSOCK) or emulated with Unix sockets under the run
 * directory; the layout and the choice between the two are described at
 * the top of include/ward/transport.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/vm_sockets.h>

#include "transport/internal.h"
#include "ward/util.h"

#define VSOCK_DEVICE "/dev/vsock"
#define NITRO_DEVICE "/dev/nitro_enclaves" /* on a parent instance */
#define NSM_DEVICE "/dev/nsm" /* inside a Nitro enclave */
#define LOCAL_CID_FILE "local-cid"
#define LOCAL_CID_MAX 16 /* bytes: 10 digits, a newline, room to spare */
#define DIR_MODE 0755
#define SOCKET_MODE 0666 /* the other side of a user namespace connects */
/* An AF_VSOCK stream buffers 256 KiB (SO_VM_SOCKETS_BUFFER_SIZE's
 * default); see ward_vsock_buffer. */
#define EMULATED_SNDBUF (256 * 1024)
#define PORT_ANY 0xFFFFFFFFu /* VMADDR_PORT_ANY: no port to name */
#define SUN_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path))
#define NO_VSOCK_HINT                                                          \
	"this machine may have no vsock; set WARD_VSOCK=emulated to use the "  \
	"emulation"

/* Copy src into out, dropping trailing slashes so paths built on it
 * read the same everywhere ("/" stays). */
static int
set_dir(char *out, size_t cap, const char *src, const char *suffix)
{
	int n = snprintf(out, cap, "%s%s", src, suffix);

	if (n < 0 || (size_t)n >= cap)
		return ward_errf(WARD_ELIMIT,
		    "the run directory %s%s is longer than %zu bytes",
		    ward_quotes(src), suffix, cap > 0 ? cap - 1 : 0);
	while (n > 1 && out[n - 1] == '/')
		out[--n] = '\0';
	return 0;
}

int
ward_run_dir(char *out, size_t cap)
{
	const char *env = getenv("WARD_RUN_DIR");
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	char tmp[64];
	struct stat st;
	int r;

	if (env != NULL && env[0] != '\0')
		return set_dir(out, cap, env, "");
	if (geteuid() == 0)
		return set_dir(out, cap, "/run/ward", "");
	if (xdg != NULL && xdg[0] != '\0')
		return set_dir(out, cap, xdg, "/ward");
	snprintf(tmp, sizeof(tmp), "/tmp/ward-%u", (unsigned)geteuid());
	if ((r = set_dir(out, cap, tmp, "")) != 0)
		return r;
	/* /tmp is shared: another user could have made this directory
	 * first and would then see, or stand in for, our sockets. */
	if (lstat(tmp, &st) == 0 &&
	    (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
	        (st.st_mode & 022) != 0))
		return ward_errf(WARD_EUNSAFE,
		    "the run directory %s is not a directory that only you "
		    "own and may write; remove it, or set WARD_RUN_DIR or "
		    "XDG_RUNTIME_DIR",
		    tmp);
	return 0;
}

enum ward_vsock_mode
ward_vsock_mode(void)
{
	static atomic_flag warned = ATOMIC_FLAG_INIT;
	const char *v = getenv("WARD_VSOCK");
	struct stat st;

	if (v != NULL && v[0] != '\0') {
		if (strcmp(v, "native") == 0)
			return WARD_VSOCK_NATIVE;
		if (strcmp(v, "emulated") == 0)
			return WARD_VSOCK_EMULATED;
		/* an enum cannot carry an error: say so once, then decide as
		 * if it were unset */
		if (!atomic_flag_test_and_set(&warned))
			ward_warn("WARD_VSOCK='%s' is neither native nor "
			          "emulated; ignoring it",
			    ward_quotes(v));
	}
	if (access(NITRO_DEVICE, F_OK) == 0)
		return WARD_VSOCK_NATIVE;
	if (stat(NSM_DEVICE, &st) == 0 && S_ISCHR(st.st_mode))
		return WARD_VSOCK_NATIVE;
	return WARD_VSOCK_EMULATED;
}

/* <run>/vsock/<suffix> */
static int
vsock_dir_path(const char *suffix, char *out, size_t cap)
{
	char run[PATH_MAX];
	int n, r;

	if ((r = ward_run_dir(run, sizeof(run))) != 0)
		return r;
	n = snprintf(
	    out, cap, "%s/vsock%s%s", run, suffix[0] ? "/" : "", suffix);
	if (n < 0 || (size_t)n >= cap)
		return ward_errf(WARD_ELIMIT,
		    "the vsock emulation path %s/vsock/%s is longer than %zu "
		    "bytes",
		    ward_quotes(run), suffix, cap > 0 ? cap - 1 : 0);
	return 0;
}

int
ward_vsock_path(uint32_t cid, uint32_t port, char *out, size_t cap)
{
	char suffix[32];
	size_t n;
	int r;

	snprintf(
	    suffix, sizeof(suffix), "%u/%u", (unsigned)cid, (unsigned)port);
	if ((r = vsock_dir_path(suffix, out, cap)) != 0)
		return r;
	if ((n = strlen(out)) >= SUN_PATH_MAX)
		return ward_errf(WARD_ELIMIT,
		    "the vsock emulation path %s is %zu bytes, more than a "
		    "Unix socket path holds (%zu); set WARD_RUN_DIR to a "
		    "shorter directory",
		    ward_quotes(out), n, SUN_PATH_MAX - 1);
	return 0;
}

static int
native_local_cid(uint32_t *cid)
{
	unsigned int c = 0;
	int fd, r = 0;

	if ((fd = open(VSOCK_DEVICE, O_RDONLY | O_CLOEXEC)) < 0)
		return ward_errf(WARD_EIO, "opening %s: %s (" NO_VSOCK_HINT ")",
		    VSOCK_DEVICE, strerror(errno));
	if (ioctl(fd, IOCTL_VM_SOCKETS_GET_LOCAL_CID, &c) != 0)
		r = ward_errf(WARD_EIO, "asking %s for the local CID: %s",
		    VSOCK_DEVICE, strerror(errno));
	else
		*cid = c;
	close(fd);
	return r;
}

/*
 * The emulated CID: the local-cid file's decimal number with at most one
 * newline, or the parent's CID when there is no file. The file names an
 * enclave or the parent, so 0..2 and VMADDR_CID_ANY are refused.
 */
static int
emulated_local_cid(uint32_t *cid)
{
	char path[PATH_MAX], buf[LOCAL_CID_MAX + 1];
	size_t len = 0;
	uint64_t v;
	int fd, r = 0;

	if ((r = vsock_dir_path(LOCAL_CID_FILE, path, sizeof(path))) != 0)
		return r;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		if (errno != ENOENT)
			return ward_errf(WARD_EIO, "opening %s: %s",
			    ward_quotes(path), strerror(errno));
		*cid = WARD_VSOCK_CID_PARENT;
		return 0;
	}
	while (len < sizeof(buf)) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = ward_errf(WARD_EIO, "reading %s: %s",
			    ward_quotes(path), strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > LOCAL_CID_MAX) {
		r = ward_errf(WARD_EFORMAT,
		    "%s: longer than a CID (%d bytes at most)",
		    ward_quotes(path), LOCAL_CID_MAX);
		goto out;
	}
	if (len > 0 && buf[len - 1] == '\n')
		len--;
	if (ward_transport_decimal(buf, len, UINT32_MAX, &v) !=
	        WARD_DECIMAL_OK ||
	    v < WARD_VSOCK_CID_PARENT || v == WARD_VSOCK_CID_ANY) {
		r = ward_errf(WARD_EFORMAT,
		    "%s holds '%s', not a CID: expected a decimal number from "
		    "3 to 4294967294 and at most one newline",
		    ward_quotes(path), ward_quote(buf, len));
		goto out;
	}
	*cid = (uint32_t)v;
out:
	close(fd);
	return r;
}

int
ward_vsock_local_cid(uint32_t *cid)
{
	if (ward_vsock_mode() == WARD_VSOCK_NATIVE)
		return native_local_cid(cid);
	return emulated_local_cid(cid);
}

/*
 * One directory of the emulation. An existing one is used as it is (inside
 * an enclave the parent's directories may be read-only); a new one gets
 * DIR_MODE whatever the umask, since the other side of a user namespace
 * must be able to enter it.
 */
static int
make_dir(const char *path)
{
	struct stat st;

	if (stat(path, &st) == 0) {
		if (S_ISDIR(st.st_mode))
			return 0;
		return ward_errf(WARD_EIO, "%s exists and is not a directory",
		    ward_quotes(path));
	}
	if (errno != ENOENT)
		return ward_errf(
		    WARD_EIO, "%s: %s", ward_quotes(path), strerror(errno));
	if (mkdir(path, DIR_MODE) != 0) {
		if (errno == EEXIST) /* another process, just now */
			return 0;
		return ward_errf(WARD_EIO, "creating the directory %s: %s",
		    ward_quotes(path), strerror(errno));
	}
	if (chmod(path, DIR_MODE) != 0)
		return ward_errf(WARD_EIO, "chmod %s: %s", ward_quotes(path),
		    strerror(errno));
	return 0;
}

/* mkdir -p of the directory holding the socket at path. */
static int
make_parents(const char *path)
{
	char dir[PATH_MAX];
	char *slash;
	int r;

	snprintf(dir, sizeof(dir), "%s", path); /* path fits: checked */
	if ((slash = strrchr(dir, '/')) == NULL || slash == dir)
		return 0;
	*slash = '\0';
	for (char *p = dir + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		r = make_dir(dir);
		*p = '/';
		if (r != 0)
			return r;
	}
	return make_dir(dir);
}

static int
native_listen(uint32_t port, int backlog, int *out)
{
	struct sockaddr_vm vm = {.svm_family = AF_VSOCK,
	    .svm_cid = VMADDR_CID_ANY,
	    .svm_port = port};
	int fd, r = 0;

	if ((fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return ward_errf(WARD_EIO,
		    "vsock port %u: socket(AF_VSOCK): %s (" NO_VSOCK_HINT ")",
		    port, strerror(errno));
	if (bind(fd, (struct sockaddr *)&vm, sizeof(vm)) != 0) {
		if (errno == EADDRINUSE)
			r = ward_errf(WARD_EEXIST,
			    "vsock port %u is already in use", port);
		else
			r = ward_errf(WARD_EIO, "vsock port %u: bind: %s", port,
			    strerror(errno));
		goto out;
	}
	if (listen(fd, backlog) != 0) {
		r = ward_errf(WARD_EIO, "vsock port %u: listen: %s", port,
		    strerror(errno));
		goto out;
	}
	*out = fd;
	fd = -1;
out:
	if (fd >= 0)
		close(fd);
	return r;
}

static int
emulated_listen(uint32_t port, int backlog, int *out)
{
	char path[PATH_MAX], what[48];
	uint32_t cid;
	int r;

	if ((r = ward_vsock_local_cid(&cid)) != 0 ||
	    (r = ward_vsock_path(cid, port, path, sizeof(path))) != 0 ||
	    (r = make_parents(path)) != 0)
		return r;
	snprintf(what, sizeof(what), "vsock port %u", port);
	return ward_transport_unix_listen(
	    path, what, backlog, SOCKET_MODE, out);
}

int
ward_vsock_listen(uint32_t port, int backlog, int *fd)
{
	*fd = -1;
	if (port == PORT_ANY)
		return ward_errf(WARD_EUSAGE,
		    "vsock port %u (VMADDR_PORT_ANY) cannot be listened on; "
		    "name a port from 0 to %u",
		    port, PORT_ANY - 1);
	if (ward_vsock_mode() == WARD_VSOCK_NATIVE)
		return native_listen(port, backlog, fd);
	return emulated_listen(port, backlog, fd);
}

static int
native_connect(uint32_t cid, uint32_t port, int *out)
{
	struct sockaddr_vm vm = {
	    .svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = port};
	int fd, err;

	if ((fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return ward_errf(WARD_EIO,
		    "connecting to vsock %u:%u: socket(AF_VSOCK): %s "
		    "(" NO_VSOCK_HINT ")",
		    cid, port, strerror(errno));
	err = ward_transport_connect(fd, (struct sockaddr *)&vm, sizeof(vm));
	if (err == 0) {
		*out = fd;
		return 0;
	}
	close(fd);
	switch (err) {
	case EINTR:
		return ward_transport_interrupted();
	case ECONNREFUSED:
	case ECONNRESET: /* what a hypervisor answers for a closed port */
	case ENOENT:
		return ward_errf(
		    WARD_EIO, "nothing listens on vsock %u:%u", cid, port);
	case ENODEV:
	case EHOSTUNREACH:
	case ENETUNREACH:
		return ward_errf(WARD_EIO,
		    "connecting to vsock %u:%u: CID %u cannot be reached from "
		    "here (%s)",
		    cid, port, cid, strerror(err));
	default:
		return ward_errf(WARD_EIO, "connecting to vsock %u:%u: %s", cid,
		    port, strerror(err));
	}
}

void
ward_vsock_buffer(int fd)
{
	int domain = 0, v = EMULATED_SNDBUF;
	socklen_t len = sizeof(domain);

	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0 ||
	    domain != AF_UNIX)
		return;
	/* best effort: the kernel caps it at net.core.wmem_max */
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
}

static int
emulated_connect(uint32_t cid, uint32_t port, int *out)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	char path[PATH_MAX];
	int fd, err, r;

	/* VMADDR_CID_LOCAL is loopback: this side's own CID */
	if (cid == WARD_VSOCK_CID_LOCAL &&
	    (r = ward_vsock_local_cid(&cid)) != 0)
		return r;
	if ((r = ward_vsock_path(cid, port, path, sizeof(path))) != 0)
		return r;
	memcpy(sun.sun_path, path, strlen(path)); /* fits: checked */
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return ward_errf(WARD_EIO,
		    "connecting to vsock %u:%u: socket: %s", cid, port,
		    strerror(errno));
	err = ward_transport_connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	if (err == 0) {
		ward_vsock_buffer(fd);
		*out = fd;
		return 0;
	}
	close(fd);
	switch (err) {
	case EINTR:
		return ward_transport_interrupted();
	case ECONNREFUSED: /* a socket file left behind */
	case ECONNRESET:
	case ENOENT: /* no such port, or no such CID's directory */
		return ward_errf(
		    WARD_EIO, "nothing listens on vsock %u:%u", cid, port);
	case EACCES:
	case EPERM:
		return ward_errf(WARD_EIO,
		    "connecting to vsock %u:%u: permission denied on %s", cid,
		    port, ward_quotes(path));
	default:
		return ward_errf(WARD_EIO, "connecting to vsock %u:%u (%s): %s",
		    cid, port, ward_quotes(path), strerror(err));
	}
}

int
ward_vsock_connect(uint32_t cid, uint32_t port, int *fd)
{
	*fd = -1;
	if (cid == WARD_VSOCK_CID_ANY || port == PORT_ANY)
		return ward_errf(WARD_EUSAGE,
		    "cannot connect to vsock %u:%u: %u is a wildcard; name a "
		    "CID and a port",
		    cid, port, cid == WARD_VSOCK_CID_ANY ? cid : port);
	if (ward_vsock_mode() == WARD_VSOCK_NATIVE)
		return native_connect(cid, port, fd);
	return emulated_connect(cid, port, fd);
}
