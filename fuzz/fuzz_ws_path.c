/* libFuzzer: workspace paths (src/agent/workspace.c) against a workspace
 * full of traps an app could leave: symlinks to /, to ../.., to a host
 * directory, to a file outside, a loop. Invariants: whatever opens is
 * inside the workspace; a path over WARD_MSG_PATH_MAX or with a component
 * over 255 bytes is refused; STAT and LIST answer every path with exactly
 * one OK or ERR, and never touch anything outside. Nothing here writes. */
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/internal.h"
#include "ward/transport.h"
#include "ward/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct agent agent;
static struct agent_conn conn;
static int peer = -1;
static char root[PATH_MAX], ws_real[PATH_MAX];
static size_t ws_real_len;

static int
rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)f;
	if (flag == FTW_DP)
		rmdir(p);
	else
		unlink(p);
	return 0;
}

static void
cleanup(void)
{
	nftw(root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void
at(const char *rel, char *out, size_t cap)
{
	snprintf(out, cap, "%s/ws/%s", root, rel);
}

static void
setup(void)
{
	const char *tmp = getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp";
	static const char *const links[][2] = {{"/", "abs"}, {"../..", "up"},
	    {"/etc", "host"}, {"d/../..", "rel"}, {"loop", "loop"},
	    {"..", "d/back"}, {"../../../..", "d/deep"}};
	char p[PATH_MAX + 64], outside[PATH_MAX + 64];
	int sv[2];

	snprintf(root, sizeof(root), "%s/ward-fuzz-ws-XXXXXX", tmp);
	if (mkdtemp(root) == NULL)
		__builtin_trap();
	atexit(cleanup);
	snprintf(outside, sizeof(outside), "%s/secret", root);
	if (close(open(outside, O_WRONLY | O_CREAT, 0600)) != 0)
		__builtin_trap();
	snprintf(agent.ws_path, sizeof(agent.ws_path), "%s/ws", root);
	if (agent_ws_init(&agent) != 0)
		__builtin_trap();
	at("d", p, sizeof(p));
	if (mkdir(p, 0755) != 0)
		__builtin_trap();
	at("d/f", p, sizeof(p));
	if (close(open(p, O_WRONLY | O_CREAT, 0600)) != 0)
		__builtin_trap();
	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
		at(links[i][1], p, sizeof(p));
		if (symlink(links[i][0], p) != 0)
			__builtin_trap();
	}
	at("escape", p, sizeof(p));
	if (symlink(outside, p) != 0)
		__builtin_trap();
	if (realpath(agent.ws_path, ws_real) == NULL)
		__builtin_trap();
	ws_real_len = strlen(ws_real);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		__builtin_trap();
	conn.a = &agent;
	conn.fd = sv[0];
	peer = sv[1];
	pthread_mutex_init(&conn.wlock, NULL);
	pthread_mutex_init(&conn.lock, NULL);
}

/* Inside: the workspace itself or beneath it. */
static void
check_inside(int fd)
{
	char proc[64], got[PATH_MAX];
	ssize_t n;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if ((n = readlink(proc, got, sizeof(got) - 1)) < 0)
		__builtin_trap();
	got[n] = '\0';
	if (strncmp(got, ws_real, ws_real_len) != 0 ||
	    (got[ws_real_len] != '\0' && got[ws_real_len] != '/'))
		__builtin_trap();
}

/* What ws_parse must refuse: too long a path or component, counted
 * without the leading and trailing slashes it drops. */
static int
too_long(const char *s)
{
	size_t n, run = 0;

	while (*s == '/')
		s++;
	n = strlen(s);
	while (n > 0 && s[n - 1] == '/')
		n--;
	if (n > WARD_MSG_PATH_MAX)
		return 1;
	for (size_t i = 0; i < n; i++) {
		run = s[i] == '/' ? 0 : run + 1;
		if (run > WARD_MSG_NAME_MAX)
			return 1;
	}
	return 0;
}

/* One request: exactly one frame comes back, an OK or an ERR. */
static void
one_reply(enum ward_msg_type t, char *path)
{
	struct ward_msg m = {.type = t, .id = 7, .path = path};
	struct ward_msg r;
	struct ward_buf b = {0};

	if (agent_ws_handle(&conn, &m) != 0)
		__builtin_trap();
	if (ward_frame_read(peer, WARD_FRAME_MAX, &b) != 0 ||
	    ward_msg_decode(b.p, b.len, &r) != 0)
		__builtin_trap();
	if (r.id != 7 || (r.type != WARD_MSG_OK && r.type != WARD_MSG_ERR))
		__builtin_trap();
	ward_msg_free(&r);
	ward_buf_free(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in;
	int fd, r;

	if (peer < 0)
		setup();
	if (size > 2 * WARD_MSG_PATH_MAX)
		return 0;
	if ((in = malloc(size + 1)) == NULL)
		return 0;
	memcpy(in, data, size);
	in[size] = '\0';
	r = agent_ws_open(&agent, in, O_PATH, &fd);
	if (r == 0) {
		if (fd < 0 || too_long(in))
			__builtin_trap();
		check_inside(fd);
		close(fd);
	} else if (fd != -1) {
		__builtin_trap();
	}
	ward_errclear();
	one_reply(WARD_MSG_STAT, in);
	one_reply(WARD_MSG_LIST, in);
	free(in);
	return 0;
}
