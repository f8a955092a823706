/*
 * Bad input against a real `ward agent` (agent-robust.sh starts it):
 * malformed, oversized and truncated frames, a wrong hello, unknown
 * types, a slow peer, peers that vanish mid-request, too many
 * connections, concurrent clients, and 10,000 requests in a row with the
 * agent's memory measured before and after. After every abuse the agent
 * must still answer a fresh connection.
 *   agent_abuse ADDR AGENT_PID MAX_CONNS IO_TIMEOUT_S
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ward/agent.h"
#include "ward/attest.h"
#include "ward/transport.h"
#include "ward/util.h"

static int failures;
static struct ward_addr addr;
static pid_t agent_pid;

#define CHECK(cond, ...)                                                       \
	do {                                                                   \
		if (cond) {                                                    \
			printf("ok    ");                                      \
		} else {                                                       \
			printf("FAIL  ");                                      \
			failures++;                                            \
		}                                                              \
		printf(__VA_ARGS__);                                           \
		printf("\n");                                                  \
		fflush(stdout);                                                \
	} while (0)

static int
dial(void)
{
	int fd;

	if (ward_connect(&addr, &fd) != 0) {
		fprintf(stderr, "connect: %s\n", ward_errmsg());
		return -1;
	}
	return fd;
}

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

/* Read one message; the frame buffer must outlive m's byte strings. */
static int
recv_msg(int fd, struct ward_buf *frame, struct ward_msg *m)
{
	int r;

	if ((r = ward_frame_read(fd, WARD_FRAME_MAX, frame)) != 0)
		return r < 0 ? r : -WARD_EIO;
	return ward_msg_decode(frame->p, frame->len, m);
}

static int
hello_v(int fd, uint64_t version, struct ward_msg *reply, struct ward_buf *f)
{
	struct ward_msg m = {.type = WARD_MSG_HELLO, .version = version};

	if (send_msg(fd, &m) != 0)
		return -1;
	return recv_msg(fd, f, reply);
}

/* A connection that has said hello, or -1. */
static int
session(void)
{
	struct ward_buf f = {0};
	struct ward_msg m;
	int fd = dial();

	if (fd < 0)
		return -1;
	if (hello_v(fd, WARD_AGENT_VERSION, &m, &f) != 0 ||
	    m.type != WARD_MSG_HELLO) {
		close(fd);
		fd = -1;
	}
	ward_msg_free(&m);
	ward_buf_free(&f);
	return fd;
}

/* One request, one reply of type want. */
static bool
rpc(int fd, struct ward_msg *req, enum ward_msg_type want)
{
	struct ward_buf f = {0};
	struct ward_msg m;
	bool ok;

	if (send_msg(fd, req) != 0 || recv_msg(fd, &f, &m) != 0) {
		ward_buf_free(&f);
		return false;
	}
	ok = m.type == want && m.id == req->id;
	if (!ok && m.type == WARD_MSG_ERR)
		fprintf(stderr, "  agent: %s: %s\n", m.code, m.message);
	ward_msg_free(&m);
	ward_buf_free(&f);
	return ok;
}

static bool
alive(void)
{
	struct ward_msg q = {.type = WARD_MSG_STAT, .id = 1, .path = ""};
	int fd = session();
	bool ok;

	if (fd < 0)
		return false;
	ok = rpc(fd, &q, WARD_MSG_OK);
	close(fd);
	return ok;
}

/* The agent's resident memory in KiB. */
static long
rss_kib(void)
{
	char path[64], line[256];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)agent_pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "VmRSS:", 6) == 0)
			v = strtol(line + 6, NULL, 10);
	fclose(f);
	return v;
}

/* The next message on fd, or its end: type, or -1 on end/error. */
static int
next_type(int fd, char *code, size_t cap)
{
	struct ward_buf f = {0};
	struct ward_msg m;
	int t = -1;

	if (recv_msg(fd, &f, &m) == 0) {
		t = (int)m.type;
		if (code != NULL)
			snprintf(code, cap, "%s", m.code != NULL ? m.code : "");
		ward_msg_free(&m);
	}
	ward_buf_free(&f);
	return t;
}

static void
test_hello(void)
{
	struct ward_buf f = {0};
	struct ward_msg m;
	struct ward_msg stat = {.type = WARD_MSG_STAT, .id = 1, .path = ""};
	char code[64] = "";
	int fd;

	fd = dial();
	CHECK(fd >= 0 && hello_v(fd, 2, &m, &f) == 0 &&
	        m.type == WARD_MSG_ERR &&
	        strcmp(m.code, "VersionMismatch") == 0,
	    "hello with version 2 gets VersionMismatch");
	ward_msg_free(&m);
	CHECK(next_type(fd, NULL, 0) == -1, "and the connection is closed");
	close(fd);
	fd = dial();
	send_msg(fd, &stat);
	CHECK(next_type(fd, code, sizeof(code)) == WARD_MSG_ERR &&
	        strcmp(code, "BadRequest") == 0,
	    "a request before hello gets BadRequest");
	close(fd);
	ward_buf_free(&f);
}

static void
test_garbage(void)
{
	static const uint8_t junk[] = {0xff, 0x00, 0x13, 0x37, 0xa1, 0x61};
	struct ward_buf b = {0};
	struct ward_msg stat = {.type = WARD_MSG_STAT, .id = 9, .path = ""};
	char code[64] = "";
	uint8_t hdr[4];
	int fd = session(), i, errs = 0;

	for (i = 0; i < 100; i++) {
		ward_frame_write(fd, junk, 1 + (size_t)i % sizeof(junk));
		if (next_type(fd, code, sizeof(code)) == WARD_MSG_ERR &&
		    strcmp(code, "BadRequest") == 0)
			errs++;
	}
	CHECK(errs == 100 && rpc(fd, &stat, WARD_MSG_OK),
	    "100 malformed bodies: each gets BadRequest, the connection goes on");
	ward_cbor_put_map(&b, 2);
	ward_cbor_put_textz(&b, "t");
	ward_cbor_put_textz(&b, "launch-missiles");
	ward_cbor_put_textz(&b, "id");
	ward_cbor_put_uint(&b, 3);
	ward_frame_write(fd, b.p, b.len);
	CHECK(next_type(fd, code, sizeof(code)) == WARD_MSG_ERR &&
	        strcmp(code, "Unsupported") == 0 && rpc(fd, &stat, WARD_MSG_OK),
	    "an unknown message type gets Unsupported, the connection goes on");
	/* oversized: 2 MiB announced */
	ward_store32(hdr, 2u << 20);
	CHECK(write(fd, hdr, 4) == 4 &&
	        next_type(fd, code, sizeof(code)) == WARD_MSG_ERR &&
	        next_type(fd, NULL, 0) == -1,
	    "a 2 MiB frame length: BadRequest, connection closed, nothing read");
	close(fd);
	CHECK(alive(), "the agent still answers");
	ward_buf_free(&b);
}

static void
test_truncated_and_vanishing(void)
{
	struct ward_buf big = {0};
	struct ward_msg put = {
	    .type = WARD_MSG_PUT, .id = 4, .path = "big", .mode = 0600};
	struct ward_msg data = {.type = WARD_MSG_DATA, .id = 4};
	struct ward_msg end = {.type = WARD_MSG_END, .id = 4};
	struct ward_msg get = {.type = WARD_MSG_GET, .id = 5, .path = "big"};
	uint8_t hdr[4];
	int fd, i;

	fd = session();
	ward_store32(hdr, 100);
	(void)!write(fd, hdr, 4);
	(void)!write(fd, "0123456789", 10);
	close(fd);
	CHECK(alive(), "a stream cut inside a frame: the agent still answers");

	/* an 8 MiB file, then a GET whose reader vanishes at once */
	ward_buf_reserve(&big, WARD_AGENT_CHUNK);
	memset(big.p, 'x', WARD_AGENT_CHUNK);
	fd = session();
	send_msg(fd, &put);
	data.data = big.p;
	data.data_len = WARD_AGENT_CHUNK;
	for (i = 0; i < 32; i++)
		send_msg(fd, &data);
	CHECK(rpc(fd, &end, WARD_MSG_OK), "an 8 MiB upload");
	send_msg(fd, &get);
	close(fd);
	/* and an upload whose sender vanishes half way */
	fd = session();
	put.path = "half";
	send_msg(fd, &put);
	for (i = 0; i < 8; i++)
		send_msg(fd, &data);
	close(fd);
	usleep(200 * 1000);
	fd = session();
	{
		struct ward_msg st = {
		    .type = WARD_MSG_STAT, .id = 6, .path = "half"};
		struct ward_buf f = {0};
		struct ward_msg m;

		send_msg(fd, &st);
		CHECK(recv_msg(fd, &f, &m) == 0 && m.type == WARD_MSG_ERR &&
		        strcmp(m.code, "ENOENT") == 0,
		    "peers that vanish mid-GET and mid-PUT: the agent goes on, "
		    "the half upload left nothing");
		ward_msg_free(&m);
		ward_buf_free(&f);
	}
	close(fd);
	ward_buf_free(&big);
}

static void
test_slow_peer(unsigned timeout_s)
{
	uint8_t hdr[4];
	double t0, dt;
	int fd = session();
	bool others;

	ward_store32(hdr, 100);
	(void)!write(fd, hdr, 4);
	(void)!write(fd, "01234", 5);
	t0 = ward_now();
	others = alive();
	CHECK(
	    others, "while one peer stalls inside a frame, others are served");
	CHECK(next_type(fd, NULL, 0) == -1 &&
	        (dt = ward_now() - t0) < timeout_s + 5.0,
	    "the stalled peer is cut off after the %u s timeout", timeout_s);
	close(fd);
}

static void
test_busy(unsigned max)
{
	int fds[256], i, n = 0;
	char code[64] = "";
	int extra;

	for (i = 0; i < (int)max && i < 256; i++)
		if ((fds[n] = session()) >= 0)
			n++;
	extra = dial();
	CHECK(n == (int)max && extra >= 0 &&
	        next_type(extra, code, sizeof(code)) == WARD_MSG_ERR &&
	        strcmp(code, "Busy") == 0,
	    "%u connections are served; one more gets Busy", max);
	close(extra);
	for (i = 0; i < n; i++)
		close(fds[i]);
	usleep(300 * 1000);
	CHECK(alive(), "and once they close, new ones are served");
}

static void *
client_thread(void *arg)
{
	int *ok = arg, fd = session(), i;
	char name[64];
	uint8_t buf[512];
	struct ward_msg w = {.type = WARD_MSG_WRITE, .path = name};
	struct ward_msg c = {
	    .type = WARD_MSG_CREATE, .path = name, .mode = 0600};
	struct ward_msg r = {
	    .type = WARD_MSG_READ, .path = name, .length = 512};

	*ok = 0;
	if (fd < 0)
		return NULL;
	snprintf(name, sizeof(name), "conc-%p", (void *)ok);
	memset(buf, (int)((uintptr_t)ok & 0xff), sizeof(buf));
	w.data = buf;
	w.data_len = sizeof(buf);
	c.id = 1;
	if (!rpc(fd, &c, WARD_MSG_OK))
		goto out;
	for (i = 0; i < 100; i++) {
		w.id = 2 + 2 * (uint64_t)i;
		r.id = w.id + 1;
		if (!rpc(fd, &w, WARD_MSG_OK) || !rpc(fd, &r, WARD_MSG_OK))
			goto out;
	}
	*ok = 1;
out:
	close(fd);
	return NULL;
}

static void
test_concurrent(void)
{
	pthread_t t[16];
	int ok[16], i, good = 0;

	for (i = 0; i < 16; i++)
		pthread_create(&t[i], NULL, client_thread, &ok[i]);
	for (i = 0; i < 16; i++) {
		pthread_join(t[i], NULL);
		good += ok[i];
	}
	CHECK(good == 16, "16 clients at once, 201 requests each: %d of 16 ok",
	    good);
}

/* n requests on one connection: write, read, stat, list in turn. */
static bool
requests(int fd, int n, uint64_t *id)
{
	static uint8_t buf[4096];
	struct ward_msg q;
	int i;

	for (i = 0; i < n; i++) {
		memset(&q, 0, sizeof(q));
		q.id = ++*id;
		q.path = "loop";
		switch (i % 4) {
		case 0:
			q.type = WARD_MSG_WRITE;
			q.offset = (uint64_t)(i % 64) * sizeof(buf);
			q.data = buf;
			q.data_len = sizeof(buf);
			break;
		case 1:
			q.type = WARD_MSG_READ;
			q.length = sizeof(buf);
			break;
		case 2:
			q.type = WARD_MSG_STAT;
			break;
		default:
			q.type = WARD_MSG_LIST;
			q.path = "";
			break;
		}
		if (!rpc(fd, &q, WARD_MSG_OK))
			return false;
	}
	return true;
}

static void
test_flat_memory(void)
{
	struct ward_msg c = {
	    .type = WARD_MSG_CREATE, .id = 1, .path = "loop", .mode = 0600};
	uint64_t id = 1;
	long before, after, conn_after;
	double t0;
	int fd = session(), i, k;
	bool ok;

	ok = fd >= 0 && rpc(fd, &c, WARD_MSG_OK) && requests(fd, 1000, &id);
	before = rss_kib();
	t0 = ward_now();
	ok = ok && requests(fd, 10000, &id);
	after = rss_kib();
	CHECK(ok, "10,000 requests in a row on one connection (%.0f per s)",
	    10000 / (ward_now() - t0));
	CHECK(before > 0 && after - before < 2048,
	    "the agent's memory stays flat: %ld KiB before, %ld KiB after",
	    before, after);
	close(fd);
	for (i = 0, k = 0; i < 1000; i++) {
		fd = session();
		if (fd >= 0) {
			k++;
			close(fd);
		}
	}
	usleep(300 * 1000);
	conn_after = rss_kib();
	CHECK(k == 1000 && conn_after - after < 4096,
	    "1,000 connections opened and closed: %ld KiB after", conn_after);
}

int
main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr,
		    "usage: agent_abuse ADDR AGENT_PID MAX_CONNS IO_TIMEOUT_S\n");
		return 2;
	}
	if (ward_addr_parse(argv[1], &addr) != 0) {
		fprintf(stderr, "%s\n", ward_errmsg());
		return 2;
	}
	agent_pid = (pid_t)strtol(argv[2], NULL, 10);
	CHECK(alive(), "the agent answers stat after hello");
	test_hello();
	test_garbage();
	test_truncated_and_vanishing();
	test_slow_peer((unsigned)strtoul(argv[4], NULL, 10));
	test_busy((unsigned)strtoul(argv[3], NULL, 10));
	test_concurrent();
	test_flat_memory();
	CHECK(alive(), "the agent still answers at the end");
	return failures == 0 ? 0 : 1;
}
