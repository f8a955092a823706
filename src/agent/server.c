/*
 * The agent's server: listen (vsock port 5000 by default), one reader
 * thread per connection, HELLO, dispatch of each request to the workspace
 * (workspace.c), exec (exec.c) or ATTEST (here), and the thread-safe
 * sender every part replies through.
 *
 * A frame that cannot be decoded is answered with ERR and the connection
 * goes on (frame boundaries are intact); a frame whose length is bad, a
 * stream that ends or stalls inside a frame, or a peer that stops reading
 * closes that connection only.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/internal.h"
#include "ward/attest.h"
#include "ward/transport.h"
#include "ward/util.h"

#define DEFAULT_WORKSPACE "/workspace"
#define DEFAULT_APPS "/run/ward-apps"
#define DEFAULT_KMS_PROXY "vsock:3:8000"
#define DEFAULT_MAX_CONNS 64u
#define IO_TIMEOUT_S 30 /* a peer stalled inside a frame, or not reading */
#define POLL_MS 250 /* how often idle threads look for a stop request */
#define STOP_WAIT_MS 40000 /* to end at exit: past a KMS call or a key wait */

static volatile sig_atomic_t stopping;

static void
on_stop(int sig)
{
	(void)sig;
	stopping = 1;
}

/* ------------------------------------------------------------------ */
/* Sending                                                            */

int
agent_send(struct agent_conn *c, const struct ward_msg *m)
{
	struct ward_buf b = {0};
	const uint8_t *tail = NULL;
	size_t tail_len = 0;
	int r;

	/* large payloads go out as the frame's tail, not copied */
	if ((m->type == WARD_MSG_DATA || m->type == WARD_MSG_OUT ||
	        m->type == WARD_MSG_OK) &&
	    m->data != NULL && m->data_len > 256 && m->document == NULL &&
	    !m->has_st && m->entries == NULL && !m->has_fs) {
		tail = m->data;
		tail_len = m->data_len;
		r = ward_msg_encode_head(m, tail_len, &b);
	} else
		r = ward_msg_encode(m, &b);
	if (r != 0)
		goto out;
	pthread_mutex_lock(&c->wlock);
	if (c->broken)
		r = ward_errf(WARD_EIO, "agent: the host has gone");
	else if ((r = ward_frame_write2(c->fd, b.p, b.len, tail, tail_len)) !=
	    0) {
		c->broken = true;
		/* wake the reader so the connection ends */
		shutdown(c->fd, SHUT_RDWR);
	}
	pthread_mutex_unlock(&c->wlock);
out:
	ward_buf_free(&b);
	return r;
}

int
agent_send_ok(struct agent_conn *c, uint64_t id)
{
	struct ward_msg m = {.type = WARD_MSG_OK, .id = id};

	return agent_send(c, &m);
}

int
agent_send_err(
    struct agent_conn *c, uint64_t id, const char *code, const char *fmt, ...)
{
	struct ward_msg m = {.type = WARD_MSG_ERR, .id = id};
	char text[WARD_MSG_TEXT_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	m.code = (char *)code;
	m.message = text;
	ward_log(WARD_LOG_DEBUG, "agent: request %llu: %s: %s",
	    (unsigned long long)id, code, text);
	return agent_send(c, &m);
}

int
agent_send_ward_err(struct agent_conn *c, uint64_t id, int r)
{
	return agent_send_err(c, id, ward_err_code(r), "%s", ward_errmsg());
}

/* ------------------------------------------------------------------ */
/* ATTEST                                                             */

/* nonce, user data and public key in; the NSM's document out. */
int
agent_attest_handle(struct agent_conn *c, struct ward_msg *m)
{
	struct ward_nsm *nsm = NULL;
	struct ward_nsm_opt ud = {0}, nonce = {0}, pk = {0}; /* pk: never */
	struct ward_buf doc = {0};
	struct ward_msg ok = {.type = WARD_MSG_OK, .id = m->id};
	int r;

	/*
	 * Never put a key the host chose into a document: KMS seals data keys
	 * to the document's public_key, so a document binding the host's key
	 * would release the vendor's keys to the host. Only keys whose
	 * private half stays in this agent (keys.c) go into documents.
	 */
	/* Receipts (INFER) carry user data that starts with the tag: the
	 * host must not be able to have one made for an answer the enclave
	 * never gave. */
	if (m->user_data != NULL && m->user_data_len >= WARD_RECEIPT_TAG_LEN &&
	    memcmp(m->user_data, WARD_RECEIPT_TAG, WARD_RECEIPT_TAG_LEN) == 0)
		return agent_send_err(c, m->id, WARD_CODE_BAD_REQUEST,
		    "attest: user data starting with %s is reserved for "
		    "receipts, which only infer makes",
		    WARD_RECEIPT_TAG);
	if (m->public_key != NULL)
		return agent_send_err(c, m->id, WARD_CODE_BAD_REQUEST,
		    "attest: the agent does not sign a public key the host "
		    "chooses (KMS would release keys to its holder); ask with "
		    "a nonce and user data only");
	ud.present = m->user_data != NULL;
	ud.v = (struct ward_bytes){m->user_data, m->user_data_len};
	nonce.present = m->nonce != NULL;
	nonce.v = (struct ward_bytes){m->nonce, m->nonce_len};
	if (ward_nsm_open(c->a->nsm_path, &nsm) != 0 ||
	    ward_nsm_attestation(nsm, &ud, &nonce, &pk, &doc) != 0) {
		r = agent_send_err(c, m->id, WARD_CODE_ATTEST,
		    "the enclave's security module gave no attestation document: %s",
		    ward_errmsg());
		goto out;
	}
	ok.document = doc.p;
	ok.document_len = doc.len;
	r = agent_send(c, &ok);
out:
	ward_nsm_close(nsm);
	ward_buf_free(&doc);
	return r;
}

/* ------------------------------------------------------------------ */
/* Connections                                                        */

/* The peer's HELLO, and ours back. Nonzero: close the connection. */
static int
hello(struct agent_conn *c, struct ward_buf *frame)
{
	struct ward_msg m, reply = {.type = WARD_MSG_HELLO};
	int r;

	if ((r = ward_frame_read(c->fd, WARD_FRAME_MAX, frame)) != 0)
		return r < 0 ? r : -WARD_EIO;
	if ((r = ward_msg_decode(frame->p, frame->len, &m)) != 0) {
		agent_send_err(c, 0, WARD_CODE_BAD_REQUEST,
		    "the first message must be hello: %s", ward_errmsg());
		return r;
	}
	if (m.type != WARD_MSG_HELLO) {
		agent_send_err(c, m.id, WARD_CODE_BAD_REQUEST,
		    "the first message must be hello, not %s",
		    ward_msg_type_name(m.type));
		r = -WARD_EFORMAT;
	} else if (m.version != WARD_AGENT_VERSION) {
		agent_send_err(c, m.id, WARD_CODE_VERSION,
		    "this agent speaks protocol version %u; the client speaks %llu",
		    WARD_AGENT_VERSION, (unsigned long long)m.version);
		r = -WARD_EUNSUPPORTED;
	} else {
		reply.id = m.id;
		reply.version = WARD_AGENT_VERSION;
		reply.software = (char *)"ward-agent " WARD_VERSION;
		reply.max_frame = WARD_FRAME_MAX;
		r = agent_send(c, &reply);
	}
	ward_msg_free(&m);
	return r;
}

/* One request. Nonzero: close the connection. */
static int
dispatch(struct agent_conn *c, struct ward_msg *m)
{
	const char *name = ward_msg_type_name(m->type);

	if (m->id == 0)
		return agent_send_err(c, 0, WARD_CODE_BAD_REQUEST,
		    "%s: request id 0 is reserved for hello", name);
	switch (m->type) {
	case WARD_MSG_ATTEST:
		return agent_attest_handle(c, m);
	case WARD_MSG_EXEC:
	case WARD_MSG_CANCEL:
		return agent_exec_handle(c, m);
	case WARD_MSG_INFER:
		return agent_infer_handle(c, m);
	case WARD_MSG_DATA:
	case WARD_MSG_END:
		if (agent_infer_owns(c, m->id))
			return agent_infer_handle(c, m);
		if (!agent_ws_owns(c, m->id))
			return agent_send_err(c, m->id, WARD_CODE_BAD_REQUEST,
			    "%s for request %llu, which is not an upload", name,
			    (unsigned long long)m->id);
		return agent_ws_handle(c, m);
	case WARD_MSG_STAT:
	case WARD_MSG_LIST:
	case WARD_MSG_READ:
	case WARD_MSG_WRITE:
	case WARD_MSG_CREATE:
	case WARD_MSG_TRUNCATE:
	case WARD_MSG_UNLINK:
	case WARD_MSG_MKDIR:
	case WARD_MSG_RMDIR:
	case WARD_MSG_RENAME:
	case WARD_MSG_CHMOD:
	case WARD_MSG_UTIMENS:
	case WARD_MSG_STATFS:
	case WARD_MSG_PUT:
	case WARD_MSG_GET:
		return agent_ws_handle(c, m);
	case WARD_MSG_HELLO:
	case WARD_MSG_OK:
	case WARD_MSG_ERR:
	case WARD_MSG_OUT:
	case WARD_MSG_EXIT:
	case WARD_MSG_NONE:
	case WARD_MSG_TYPE_COUNT:
		break;
	}
	return agent_send_err(c, m->id, WARD_CODE_BAD_REQUEST,
	    "%s is not a request", name != NULL ? name : "?");
}

/* Wait until fd is readable or the agent stops: 0 readable, 1 stop. */
static int
wait_readable(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	int k;

	for (;;) {
		if (stopping)
			return 1;
		k = poll(&p, 1, POLL_MS);
		if (k > 0)
			return 0;
		if (k < 0 && errno != EINTR)
			return 0; /* the read reports it */
	}
}

static void
serve(struct agent_conn *c)
{
	/* exec requests carry AWS credentials: frames are wiped when the
	 * buffer moves or is freed, and after each exec request */
	struct ward_buf frame = {.secret = true};
	struct ward_msg m;
	int r;

	if (hello(c, &frame) != 0)
		goto out;
	for (;;) {
		if (wait_readable(c->fd) != 0)
			break;
		r = ward_frame_read(c->fd, WARD_FRAME_MAX, &frame);
		if (r == 1)
			break; /* the host closed the connection */
		if (r == -WARD_EFORMAT) {
			/* a bad length: the stream cannot be resynchronized */
			agent_send_err(
			    c, 0, WARD_CODE_BAD_REQUEST, "%s", ward_errmsg());
			break;
		}
		if (r != 0) {
			ward_log(WARD_LOG_DEBUG, "agent: %s", ward_errmsg());
			break;
		}
		if ((r = ward_msg_decode(frame.p, frame.len, &m)) != 0) {
			if (agent_send_err(c, 0,
			        r == -WARD_EUNSUPPORTED ? WARD_CODE_UNSUPPORTED
			                                : WARD_CODE_BAD_REQUEST,
			        "%s", ward_errmsg()) != 0)
				break;
			continue;
		}
		r = dispatch(c, &m);
		if (m.type == WARD_MSG_EXEC)
			ward_cleanse(frame.p, frame.len);
		ward_msg_free(&m);
		if (r != 0 || c->broken)
			break;
		/* a big upload's buffer is not kept for an idle connection */
		if (frame.cap > 2 * WARD_AGENT_CHUNK)
			ward_buf_free(&frame);
	}
out:
	ward_buf_free(&frame);
}

static void
conn_unlink(struct agent_conn *c)
{
	struct agent *a = c->a;
	struct agent_conn **pp;

	pthread_mutex_lock(&a->lock);
	for (pp = &a->conn_list; *pp != NULL; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	a->conns--;
	pthread_mutex_unlock(&a->lock);
}

static void *
conn_main(void *arg)
{
	struct agent_conn *c = arg;

	serve(c);
	/* stop the peer's reads first, so nothing waits on a dead agent */
	shutdown(c->fd, SHUT_RDWR);
	agent_exec_conn_close(c);
	agent_infer_conn_close(c);
	agent_ws_conn_close(c);
	conn_unlink(c);
	close(c->fd);
	pthread_mutex_destroy(&c->wlock);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->infer_done);
	free(c);
	ward_errclear();
	return NULL;
}

static void
set_timeouts(int fd, unsigned seconds)
{
	struct timeval tv = {.tv_sec = seconds};

	/* not fatal: on failure a stalled peer holds one thread longer */
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* Turn a connection away: one ERR (best effort), then close. */
static void
refuse(int fd, unsigned max)
{
	struct agent_conn tmp = {.fd = fd};

	pthread_mutex_init(&tmp.wlock, NULL);
	agent_send_err(&tmp, 0, WARD_CODE_BUSY,
	    "the agent already serves %u connections; try again later", max);
	pthread_mutex_destroy(&tmp.wlock);
	close(fd);
}

static void
accept_one(struct agent *a, int lfd)
{
	struct agent_conn *c;
	pthread_attr_t attr;
	pthread_t t;
	int fd;

	if ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0) {
		if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED)
			ward_log(WARD_LOG_WARN, "agent: accept: %s",
			    strerror(errno));
		if (errno == EMFILE || errno == ENFILE)
			usleep(100 * 1000);
		return;
	}
	ward_vsock_buffer(fd);
	set_timeouts(fd, a->o.io_timeout_s);
	pthread_mutex_lock(&a->lock);
	if (a->conns >= a->o.max_conns) {
		pthread_mutex_unlock(&a->lock);
		refuse(fd, a->o.max_conns);
		return;
	}
	a->conns++;
	pthread_mutex_unlock(&a->lock);
	if ((c = calloc(1, sizeof(*c))) == NULL)
		goto fail;
	c->a = a;
	c->fd = fd;
	pthread_mutex_init(&c->wlock, NULL);
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->infer_done, NULL);
	pthread_mutex_lock(&a->lock);
	c->next = a->conn_list;
	a->conn_list = c;
	pthread_mutex_unlock(&a->lock);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, conn_main, c) != 0) {
		pthread_attr_destroy(&attr);
		conn_unlink(c);
		pthread_mutex_destroy(&c->wlock);
		pthread_mutex_destroy(&c->lock);
		pthread_cond_destroy(&c->infer_done);
		free(c);
		ward_log(WARD_LOG_WARN, "agent: no thread for a connection");
		close(fd);
		return;
	}
	pthread_attr_destroy(&attr);
	return;
fail:
	pthread_mutex_lock(&a->lock);
	a->conns--;
	pthread_mutex_unlock(&a->lock);
	close(fd);
}

/* At exit: end every connection (their threads clean up) and wait. */
static void
drain(struct agent *a)
{
	struct agent_conn *c;
	unsigned left;
	int waited;

	pthread_mutex_lock(&a->lock);
	for (c = a->conn_list; c != NULL; c = c->next)
		shutdown(c->fd, SHUT_RDWR);
	pthread_mutex_unlock(&a->lock);
	for (waited = 0; waited < STOP_WAIT_MS; waited += 20) {
		pthread_mutex_lock(&a->lock);
		left = a->conns;
		pthread_mutex_unlock(&a->lock);
		if (left == 0)
			return;
		usleep(20 * 1000);
	}
	/*
	 * Their threads still use a (on ward_agent_run's stack) and the
	 * workspace: returning would pull both from under them. Leave now;
	 * the enclave's memory goes with it, and the next agent wipes the
	 * apps directory when it starts.
	 */
	ward_log(WARD_LOG_WARN,
	    "agent: %u connections still busy %d s after the stop; exiting",
	    left, STOP_WAIT_MS / 1000);
	_exit(0);
}

/* Fill a from o: defaults, addresses, directories. */
static int
setup(struct agent *a, const struct ward_agent_opts *o)
{
	const char *s;
	int r;

	memset(a, 0, sizeof(*a));
	a->o = *o;
	a->ws_fd = -1;
	if (a->o.max_conns == 0)
		a->o.max_conns = DEFAULT_MAX_CONNS;
	if (a->o.io_timeout_s == 0)
		a->o.io_timeout_s = IO_TIMEOUT_S;
	s = o->workspace != NULL ? o->workspace : DEFAULT_WORKSPACE;
	if (strlen(s) >= sizeof(a->ws_path))
		return ward_errf(WARD_EUSAGE, "--workspace: path too long");
	memcpy(a->ws_path, s, strlen(s) + 1);
	s = o->apps_dir != NULL ? o->apps_dir : DEFAULT_APPS;
	if (strlen(s) >= sizeof(a->apps_path))
		return ward_errf(WARD_EUSAGE, "--apps-dir: path too long");
	memcpy(a->apps_path, s, strlen(s) + 1);
	if ((r = agent_mkdirs(a->apps_path)) != 0)
		return r;
	if (chmod(a->apps_path, 0700) != 0)
		return ward_errf(
		    WARD_EIO, "%s: %s", a->apps_path, strerror(errno));
	s = o->nsm != NULL ? o->nsm : getenv("WARD_NSM");
	if (s == NULL || *s == '\0')
		s = "/dev/nsm";
	if (strlen(s) >= sizeof(a->nsm_path))
		return ward_errf(WARD_EUSAGE, "--nsm: path too long");
	memcpy(a->nsm_path, s, strlen(s) + 1);
	s = o->kms_proxy != NULL ? o->kms_proxy : DEFAULT_KMS_PROXY;
	if ((r = ward_addr_parse(s, &a->kms_proxy)) != 0)
		return ward_err_prefix(r, "--kms-proxy");
	pthread_mutex_init(&a->lock, NULL);
	return 0;
}

static int
listen_on(const char *where, int *fd)
{
	struct ward_addr addr;
	int r;

	if (where == NULL)
		return ward_vsock_listen(WARD_AGENT_PORT, 64, fd);
	if ((r = ward_addr_parse(where, &addr)) != 0)
		return ward_err_prefix(r, "--listen");
	return ward_listen(&addr, 64, fd);
}

int
ward_agent_run(const struct ward_agent_opts *o)
{
	struct agent a;
	struct sigaction sa;
	struct pollfd p;
	int lfd = -1, r, ws = 0, ex = 0;

	/* what ward loads on first use (KMS over HTTP, app bundles): loaded
	 * now, so an image without them fails here, not midway through a
	 * request */
	if ((r = ward_lazy_load(WARD_LAZY_CURL)) != 0 ||
	    (r = ward_lazy_load(WARD_LAZY_ARCHIVE)) != 0)
		return r;
	if ((r = setup(&a, o)) != 0)
		return r;
	/*
	 * Apps run as this uid: without this they could read the agent's
	 * memory (keys, credentials) through /proc/<pid>/mem.
	 */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
		r = ward_errf(WARD_EINTERNAL, "prctl(PR_SET_DUMPABLE): %s",
		    strerror(errno));
		goto out;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if ((r = agent_ws_init(&a)) != 0)
		goto out;
	ws = 1;
	if ((r = agent_exec_init(&a)) != 0)
		goto out;
	ex = 1;
	if ((r = agent_infer_init(&a)) != 0)
		goto out;
	if ((r = listen_on(o->listen, &lfd)) != 0)
		goto out;
	ward_log(WARD_LOG_INFO, "agent: listening on %s; workspace %s",
	    o->listen != NULL ? o->listen : "vsock port 5000", a.ws_path);
	if (o->ready_fd >= 0) {
		if (write(o->ready_fd, "ready\n", 6) != 6) {
			/* nobody waits: not an error */
		}
		close(o->ready_fd);
	}
	p.fd = lfd;
	p.events = POLLIN;
	while (!stopping) {
		if (poll(&p, 1, POLL_MS) > 0)
			accept_one(&a, lfd);
	}
	ward_log(WARD_LOG_INFO, "agent: stopping");
	r = 0;
out:
	if (lfd >= 0)
		close(lfd);
	drain(&a);
	if (ex)
		agent_keys_stop();
	agent_infer_fini(&a);
	if (ws)
		agent_ws_fini(&a);
	return r;
}
