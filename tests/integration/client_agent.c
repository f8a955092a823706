/*
 * A scripted agent for tests/integration/client.sh: it speaks the real
 * protocol (libward's frames and codec) but answers what the test needs
 * to see the host client handle, which a real agent produces only with a
 * whole KMS and enclave behind it, or never: exec output with pauses, an
 * exit by signal, AccessDenied, a cancel, an upload refused half way, a
 * download cut short, an agent that stalls or speaks another version.
 *
 * usage: client_agent MODE SOCKET DIR
 *   MODE normal | old (VersionMismatch to hello) | stall (hello, then
 *   silence). Serves connections one at a time until killed. Writes what
 *   it saw to files in DIR (exec.req, put.count, cancelled).
 *
 * EXEC by argv[0]: "lines" (OUT "line 1" at once, another on stderr 2 s
 * later, EXIT 7), "signal" (EXIT sig 9), "denied" (ERR AccessDenied),
 * "hang" (OUT "started", then waits for CANCEL and answers Cancelled).
 * PUT to "full*": ERR ENOSPC after the first DATA (DATA counted until
 * END). GET "trunc": one DATA, then the connection is closed. STAT: ENOENT.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ward/agent.h"
#include "ward/transport.h"
#include "ward/util.h"

static const char *dir;

static int
send_msg(int fd, const struct ward_msg *m)
{
	struct ward_buf b = {0};
	int r;

	if ((r = ward_msg_encode(m, &b)) == 0)
		r = ward_frame_write(fd, b.p, b.len);
	ward_buf_free(&b);
	return r;
}

static int
send_err(int fd, uint64_t id, const char *code, const char *msg)
{
	struct ward_msg m = {.type = WARD_MSG_ERR, .id = id};

	m.code = (char *)code;
	m.message = (char *)msg;
	return send_msg(fd, &m);
}

static int
send_out(int fd, uint64_t id, uint32_t which, const char *text)
{
	struct ward_msg m = {.type = WARD_MSG_OUT, .id = id, .fd = which};

	m.data = (const uint8_t *)text;
	m.data_len = strlen(text);
	return send_msg(fd, &m);
}

static void
note(const char *name, const char *text)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((f = fopen(path, "w")) != NULL) {
		fputs(text, f);
		fclose(f);
	}
}

static int
recv_msg(int fd, struct ward_buf *b, struct ward_msg *m)
{
	int r;

	if ((r = ward_frame_read(fd, WARD_FRAME_MAX, b)) != 0)
		return r < 0 ? r : -WARD_EIO;
	return ward_msg_decode(b->p, b->len, m);
}

static int
on_exec(int fd, struct ward_msg *m)
{
	struct ward_msg x = {.type = WARD_MSG_EXIT, .id = m->id}, c;
	struct ward_buf b = {0};
	char line[8192];
	const char *cmd = m->argv[0];
	int r = 0;

	snprintf(line, sizeof(line),
	    "app=%s argc=%zu argv0=%s akid=%s secret=%s token=%s region=%s "
	    "endpoint=%s envc=%zu keys=%zu ctx=%zu\n",
	    m->app, m->argc, cmd, m->has_cred ? m->cred.access_key_id : "-",
	    m->has_cred && m->cred.secret_access_key != NULL ? "yes" : "no",
	    m->has_cred && m->cred.session_token != NULL ? "yes" : "no",
	    m->region != NULL ? m->region : "-",
	    m->endpoint != NULL ? m->endpoint : "-", m->envc, m->key_idc,
	    m->contextc);
	note("exec.req", line);
	if (strcmp(cmd, "lines") == 0) {
		send_out(fd, m->id, 1, "line 1\n");
		sleep(2);
		send_out(fd, m->id, 2, "to stderr\n");
		x.has_status = true;
		x.status = 7;
		return send_msg(fd, &x);
	}
	if (strcmp(cmd, "signal") == 0) {
		x.has_signal = true;
		x.signal = 9;
		return send_msg(fd, &x);
	}
	if (strcmp(cmd, "denied") == 0)
		return send_err(fd, m->id, WARD_CODE_ACCESS_DENIED,
		    "KMS refused the key to this enclave (PCR0 000000)");
	if (strcmp(cmd, "hang") == 0) {
		send_out(fd, m->id, 1, "started\n");
		memset(&c, 0, sizeof(c));
		if ((r = recv_msg(fd, &b, &c)) == 0 &&
		    c.type == WARD_MSG_CANCEL && c.target == m->id) {
			note("cancelled", "yes\n");
			r = send_err(
			    fd, m->id, WARD_CODE_CANCELLED, "cancelled");
		}
		ward_msg_free(&c);
		ward_buf_free(&b);
		return r;
	}
	x.has_status = true;
	x.status = 0;
	return send_msg(fd, &x);
}

static int
on_put(int fd, struct ward_msg *m)
{
	struct ward_msg d, ok = {.type = WARD_MSG_OK, .id = m->id};
	struct ward_buf b = {0};
	bool full = strncmp(m->path, "full", 4) == 0, refused = false;
	uint64_t total = 0, frames = 0;
	char text[64];
	int r;

	for (;;) {
		memset(&d, 0, sizeof(d));
		if ((r = recv_msg(fd, &b, &d)) != 0)
			break;
		if (d.type == WARD_MSG_END) {
			ward_msg_free(&d);
			break;
		}
		frames++;
		total += d.data_len;
		ward_msg_free(&d);
		if (full && !refused) {
			refused = true;
			send_err(fd, m->id, "ENOSPC", "the workspace is full");
		}
	}
	ward_buf_free(&b);
	snprintf(text, sizeof(text), "%llu\n", (unsigned long long)frames);
	note("put.count", text);
	if (r != 0)
		return r;
	if (refused)
		return 0;
	ok.has_size = true;
	ok.size = total;
	return send_msg(fd, &ok);
}

static void
serve(int fd, const char *mode)
{
	struct ward_buf b = {0};
	struct ward_msg m, rep;
	uint8_t chunk[4096];

	memset(&m, 0, sizeof(m));
	if (recv_msg(fd, &b, &m) != 0 || m.type != WARD_MSG_HELLO)
		goto out;
	if (strcmp(mode, "old") == 0) {
		send_err(
		    fd, 0, WARD_CODE_VERSION, "this agent speaks version 0");
		goto out;
	}
	rep = (struct ward_msg){.type = WARD_MSG_HELLO,
	    .version = WARD_AGENT_VERSION,
	    .software = (char *)"client_agent",
	    .max_frame = WARD_FRAME_MAX};
	if (send_msg(fd, &rep) != 0)
		goto out;
	for (;;) {
		ward_msg_free(&m);
		if (recv_msg(fd, &b, &m) != 0)
			break;
		if (strcmp(mode, "stall") == 0)
			continue;
		switch (m.type) {
		case WARD_MSG_EXEC:
			if (on_exec(fd, &m) != 0)
				goto out;
			break;
		case WARD_MSG_PUT:
			if (on_put(fd, &m) != 0)
				goto out;
			break;
		case WARD_MSG_GET:
			if (strcmp(m.path, "trunc") != 0) {
				send_err(fd, m.id, "ENOENT", "no such file");
				break;
			}
			memset(chunk, 'x', sizeof(chunk));
			rep = (struct ward_msg){
			    .type = WARD_MSG_DATA, .id = m.id};
			rep.data = chunk;
			rep.data_len = sizeof(chunk);
			send_msg(fd, &rep);
			goto out;
		case WARD_MSG_STAT:
			send_err(fd, m.id, "ENOENT", "no such file");
			break;
		default:
			send_err(
			    fd, m.id, WARD_CODE_UNSUPPORTED, "not scripted");
		}
	}
out:
	ward_msg_free(&m);
	ward_buf_free(&b);
}

int
main(int argc, char **argv)
{
	struct ward_addr a;
	char addr[4200];
	int lfd, fd;

	if (argc != 4) {
		fprintf(stderr, "usage: client_agent MODE SOCKET DIR\n");
		return 2;
	}
	dir = argv[3];
	snprintf(addr, sizeof(addr), "unix:%s", argv[2]);
	if (ward_addr_parse(addr, &a) != 0 || ward_listen(&a, 8, &lfd) != 0) {
		fprintf(stderr, "client_agent: %s\n", ward_errmsg());
		return 3;
	}
	for (;;) {
		if ((fd = accept(lfd, NULL, NULL)) < 0) {
			if (errno == EINTR)
				continue;
			return 3;
		}
		serve(fd, argv[1]);
		close(fd);
	}
}
