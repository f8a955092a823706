/*
 * INFER (docs/protocol.md "infer"): predictions from an encrypted model in
 * the workspace on rows the host sends.
 *
 * The model is decrypted once, through the attested KMS path of keys.c,
 * into memory that is locked (mlock) and kept out of core dumps, loaded by
 * the model runtime, and the plaintext is cleansed and unmapped at once:
 * what stays is the runtime's model, kept in a cache keyed by the SHA-384
 * of the ciphertext (so a changed file is a different model), closed after
 * --model-ttl seconds unused or when the cache is full. The data key never
 * outlives the decryption (ward_dec_free). Nothing of the model or the
 * input reaches a file.
 *
 * A request: INFER (model path, format, receipt, credentials), its input
 * as DATA frames, END. On END the request runs on a thread of its own:
 * model (cache or KMS), input (decrypted here when it is a `ward encrypt`
 * message: the data owner's key, released only to this image), rows,
 * predictions; the answer goes back as DATA frames of JSON and an OK
 * carrying its size and, when asked, the receipt's attestation document.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "ward/attest.h"
#include "ward/crypto.h"
#include "ward/envelope.h"

#define INFER_RUNNING_MAX 16u /* requests past END at once */
#define INFER_INPUT_MAX_DEFAULT (64u << 20)
#define MODEL_CACHE_DEFAULT 8u
#define MODEL_TTL_DEFAULT 3600u

struct model {
	uint8_t hash[WARD_SHA384_LEN]; /* of the ciphertext */
	const struct agent_runtime *rt;
	void *h; /* the runtime's model; NULL while loading */
	struct agent_model_info info;
	unsigned refs; /* requests using it (and 1 while loading) */
	bool loading;
	double last_used;
	/* the file it was last read from: while the same inode shows the
	 * same size and ctime (which nobody can set back), its bytes are
	 * the same and need not be read and hashed again */
	bool seen;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec ctime;
	struct model *next;
};

struct agent_models {
	pthread_mutex_t lock;
	pthread_cond_t loaded; /* a load finished (or failed) */
	struct model *list;
	unsigned count;
	unsigned running; /* requests past END, all connections */
	uint64_t buffered; /* input bytes held, all requests */
	char pcr0[2 * WARD_NSM_PCR_LEN + 1]; /* "" until known */
};

struct agent_infer {
	struct agent_conn *c;
	struct ward_msg req; /* the INFER, its allocations taken over */
	uint8_t nonce[WARD_MSG_ATTEST_FIELD_MAX];
	size_t nonce_len;
	bool has_nonce;
	enum agent_fmt fmt;
	struct ward_buf input; /* secret */
	struct agent_infer *next;
};

/* ---- set-up --------------------------------------------------------- */

int
agent_infer_init(struct agent *a)
{
	struct agent_models *ms = calloc(1, sizeof(*ms));

	if (ms == NULL)
		return ward_enomem();
	pthread_mutex_init(&ms->lock, NULL);
	pthread_cond_init(&ms->loaded, NULL);
	a->models = ms;
	if (a->o.infer_input_max == 0)
		a->o.infer_input_max = INFER_INPUT_MAX_DEFAULT;
	if (a->o.model_cache == 0)
		a->o.model_cache = MODEL_CACHE_DEFAULT;
	if (a->o.model_ttl_s == 0)
		a->o.model_ttl_s = MODEL_TTL_DEFAULT;
	return 0;
}

void
agent_infer_fini(struct agent *a)
{
	struct agent_models *ms = a->models;

	if (ms == NULL)
		return;
	while (ms->list != NULL) {
		struct model *m = ms->list;

		ms->list = m->next;
		if (m->h != NULL)
			m->rt->free(m->h);
		free(m);
	}
	pthread_cond_destroy(&ms->loaded);
	pthread_mutex_destroy(&ms->lock);
	free(ms);
	a->models = NULL;
}

/* ---- locked memory -------------------------------------------------- */

/* Plaintext of a model or an input: anonymous memory, locked against
 * swap, left out of core dumps, cleansed and unmapped by locked_free. */
struct locked {
	uint8_t *p;
	size_t len, cap, map;
};

static int
locked_new(struct locked *l, size_t cap)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t map;
	void *p;

	memset(l, 0, sizeof(*l));
	if (page <= 0)
		page = 4096;
	map = cap == 0 ? (size_t)page
	               : (cap + (size_t)page - 1) / (size_t)page * (size_t)page;
	if ((p = mmap(NULL, map, PROT_READ | PROT_WRITE,
	         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)) == MAP_FAILED)
		return ward_enomem();
	(void)madvise(p, map, MADV_DONTDUMP);
	if (mlock(p, map) != 0) {
		struct rlimit rl = {0, 0};
		int err = errno;

		munmap(p, map);
		(void)getrlimit(RLIMIT_MEMLOCK, &rl);
		return ward_errf(WARD_ELIMIT,
		    "cannot lock %zu bytes of plaintext in memory (mlock: %s; "
		    "RLIMIT_MEMLOCK is %llu bytes): plaintext is never left "
		    "where it could be swapped out; give the enclave more "
		    "--memory or a higher memlock limit",
		    map, strerror(err),
		    rl.rlim_cur == RLIM_INFINITY
		        ? ~0ULL
		        : (unsigned long long)rl.rlim_cur);
	}
	l->p = p;
	l->cap = cap;
	l->map = map;
	return 0;
}

static void
locked_free(struct locked *l)
{
	if (l->p != NULL) {
		ward_cleanse(l->p, l->map);
		munlock(l->p, l->map);
		munmap(l->p, l->map);
	}
	memset(l, 0, sizeof(*l));
}

/*
 * Decrypt the message msg/n into locked memory under the request's
 * credentials (the keyring w watches). The plaintext is never longer than
 * the message. On failure *code is the ERR code and nothing is kept.
 */
static int
decrypt_locked(struct agent_watch *w, const uint8_t *msg, size_t n,
    const char *what, bool model, struct locked *out, const char **code)
{
	struct ward_dec_params dp = {.commitment = WARD_COMMIT_REQUIRE};
	struct ward_dec *dec = NULL;
	const struct ward_ec_pair *fmt;
	const uint8_t *p;
	size_t k;
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = locked_new(out, n)) != 0)
		return r;
	if ((r = ward_dec_new_mem(&dec, &dp, &w->kr, msg, n)) != 0 ||
	    (r = ward_dec_header(dec)) != 0)
		goto out;
	fmt = ward_dec_context(dec) == NULL
	    ? NULL
	    : ward_ec_get(ward_dec_context(dec), WARD_EC_FORMAT,
	          strlen(WARD_EC_FORMAT));
	if (fmt != NULL) {
		r = ward_errf(WARD_EUSAGE,
		    "%s is an encrypted directory (ward:format %s), not a %s: "
		    "encrypt the file itself (ward encrypt FILE)",
		    what, fmt->value, model ? "model" : "file of rows");
		*code = WARD_CODE_BAD_REQUEST;
		goto out;
	}
	for (;;) {
		if ((r = ward_dec_next(dec, &p, &k)) != 0)
			goto out;
		if (k == 0)
			break;
		if (k > out->cap - out->len) {
			r = ward_errf(WARD_EINTERNAL,
			    "%s: more plaintext than ciphertext", what);
			goto out;
		}
		memcpy(out->p + out->len, p, k);
		out->len += k;
	}
out:
	ward_dec_free(dec); /* the data key goes with it */
	if (r != 0) {
		if (*code == NULL)
			*code = agent_watch_code(w, &r);
		r = ward_err_prefix(r, "%s", what);
		locked_free(out);
	}
	return r;
}

/* ---- the request's keys ------------------------------------------------ */

/* KMS for this request, made on first use: one keyring for the model and
 * the input both (one recipient key, one KMS client). */
struct req_keys {
	struct agent_keys *keys;
	struct ward_keyring *kr;
};

static int
req_keyring(struct agent_infer *x, struct req_keys *k, struct agent_watch *w,
    bool app_keys, const char **code)
{
	int r = 0;

	if (k->kr == NULL &&
	    (r = agent_keys_new(x->c->a, &x->req, &k->keys, &k->kr)) != 0) {
		if (r == -WARD_EUSAGE)
			*code = WARD_CODE_BAD_REQUEST;
		return r;
	}
	agent_watch_init(w, x->c->a, app_keys);
	w->inner = k->kr;
	return 0;
}

/* ---- models ----------------------------------------------------------- */

static void
model_unref_locked(struct model *m)
{
	m->refs--;
	m->last_used = ward_now();
}

/* Close models unused past the TTL, then the least recently used unused
 * ones while more than max are open. Called with ms->lock held. */
static void
sweep_locked(struct agent *a, unsigned max)
{
	struct agent_models *ms = a->models;
	double now = ward_now();

	for (;;) {
		struct model **pp, **victim = NULL;

		for (pp = &ms->list; *pp != NULL; pp = &(*pp)->next) {
			struct model *m = *pp;

			if (m->refs != 0 || m->loading)
				continue;
			if (now - m->last_used >= a->o.model_ttl_s) {
				victim = pp;
				break;
			}
			if (ms->count > max &&
			    (victim == NULL ||
			        m->last_used < (*victim)->last_used))
				victim = pp;
		}
		if (victim == NULL)
			return;
		{
			struct model *m = *victim;

			*victim = m->next;
			ms->count--;
			m->rt->free(m->h);
			ward_info("infer: model sha384:%02x%02x%02x%02x... "
			          "closed",
			    m->hash[0], m->hash[1], m->hash[2], m->hash[3]);
			free(m);
		}
	}
}

/*
 * The model whose ciphertext is ct/n, referenced: from the cache, or
 * decrypted and loaded now (one request loads it; others asking for the
 * same model meanwhile wait for it). *fresh says which.
 */
static int
model_get(struct agent_infer *x, struct req_keys *keys, const uint8_t *ct,
    size_t n, const uint8_t hash[WARD_SHA384_LEN], struct model **out,
    bool *fresh, const char **code)
{
	struct agent *a = x->c->a;
	struct agent_models *ms = a->models;
	struct agent_watch w;
	struct locked pt = {0};
	struct model *m;
	int r;

	*out = NULL;
	*fresh = false;
	pthread_mutex_lock(&ms->lock);
	sweep_locked(a, a->o.model_cache);
	for (;;) {
		for (m = ms->list; m != NULL; m = m->next)
			if (memcmp(m->hash, hash, sizeof(m->hash)) == 0)
				break;
		if (m == NULL || !m->loading)
			break;
		pthread_cond_wait(&ms->loaded, &ms->lock);
	}
	if (m != NULL) {
		m->refs++;
		pthread_mutex_unlock(&ms->lock);
		*out = m;
		return 0;
	}
	if ((m = calloc(1, sizeof(*m))) == NULL) {
		pthread_mutex_unlock(&ms->lock);
		return ward_enomem();
	}
	memcpy(m->hash, hash, sizeof(m->hash));
	m->rt = &agent_runtime_xgboost;
	m->loading = true;
	m->refs = 1;
	m->next = ms->list;
	ms->list = m;
	ms->count++;
	pthread_mutex_unlock(&ms->lock);

	r = req_keyring(x, keys, &w, true, code);
	if (r == 0) {
		r = decrypt_locked(
		    &w, ct, n, ward_quotes(x->req.path), true, &pt, code);
	}
	if (r == 0 && (r = m->rt->load(pt.p, pt.len, &m->h, &m->info)) != 0)
		*code = r == -WARD_EUNSUPPORTED ? WARD_CODE_UNSUPPORTED
		                                : WARD_CODE_BAD_MODEL;
	locked_free(&pt);

	pthread_mutex_lock(&ms->lock);
	m->loading = false;
	if (r != 0) {
		struct model **pp;

		for (pp = &ms->list; *pp != m; pp = &(*pp)->next)
			;
		*pp = m->next;
		ms->count--;
		free(m);
		m = NULL;
	}
	pthread_cond_broadcast(&ms->loaded);
	pthread_mutex_unlock(&ms->lock);
	if (r != 0)
		return r;
	ward_info("infer: model %s (sha384:%02x%02x%02x%02x..., %s, %zu "
	          "features) open",
	    ward_quotes(x->req.path), hash[0], hash[1], hash[2], hash[3],
	    m->info.objective, m->info.features);
	*out = m;
	*fresh = true;
	return 0;
}

static void
model_put(struct agent *a, struct model *m)
{
	if (m == NULL)
		return;
	pthread_mutex_lock(&a->models->lock);
	model_unref_locked(m);
	pthread_mutex_unlock(&a->models->lock);
}

/* ---- reading the model file ------------------------------------------ */

/* Open the model file: a regular file beneath the workspace. */
static int
open_model(struct agent_infer *x, int *fd, struct stat *st, const char **code)
{
	struct agent *a = x->c->a;
	int fl, r;

	if ((r = agent_ws_open(a, x->req.path,
	         O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW, fd)) != 0) {
		if (r == -WARD_EIO && errno == ENOENT) {
			*code = ward_errno_code(ENOENT);
			r = ward_errf(WARD_EIO,
			    "no model at %s in the workspace (ward cp "
			    "MODEL.enc enclave:%s first)",
			    ward_quotes(x->req.path), x->req.path);
		}
		return r;
	}
	if (fstat(*fd, st) != 0)
		return ward_errf(WARD_EIO, "%s: %s", ward_quotes(x->req.path),
		    strerror(errno));
	if (!S_ISREG(st->st_mode)) {
		*code = ward_errno_code(EINVAL);
		return ward_errf(WARD_EUSAGE,
		    "%s is not a regular file: the model must be a file "
		    "(ward encrypt MODEL)",
		    ward_quotes(x->req.path));
	}
	if ((uint64_t)st->st_size > a->ws_max)
		return ward_errf(WARD_ELIMIT, "%s is larger than the workspace",
		    ward_quotes(x->req.path));
	if ((fl = fcntl(*fd, F_GETFL)) < 0 ||
	    fcntl(*fd, F_SETFL, fl & ~O_NONBLOCK) != 0)
		return ward_errf(WARD_EIO, "%s: %s", ward_quotes(x->req.path),
		    strerror(errno));
	return 0;
}

static int
read_model(
    struct agent_infer *x, int fd, const struct stat *st, struct ward_buf *ct)
{
	size_t got = 0;
	int r;

	if ((r = ward_buf_reserve(ct, (size_t)st->st_size + 1)) != 0)
		return r;
	while (got < (size_t)st->st_size) {
		ssize_t k = read(fd, ct->p + got, (size_t)st->st_size - got);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return ward_errf(WARD_EIO, "%s: %s",
			    ward_quotes(x->req.path),
			    k < 0 ? strerror(errno) : "shorter than its size");
		got += (size_t)k;
	}
	ct->len = got;
	return 0;
}

static bool
same_file(const struct model *m, const struct stat *st)
{
	return m->seen && m->dev == st->st_dev && m->ino == st->st_ino &&
	    m->size == st->st_size && m->ctime.tv_sec == st->st_ctim.tv_sec &&
	    m->ctime.tv_nsec == st->st_ctim.tv_nsec;
}

/* An open model last read from this very file, referenced; or NULL. */
static struct model *
model_seen(struct agent *a, const struct stat *st)
{
	struct agent_models *ms = a->models;
	struct model *m;

	pthread_mutex_lock(&ms->lock);
	sweep_locked(a, a->o.model_cache);
	for (m = ms->list; m != NULL; m = m->next)
		if (!m->loading && same_file(m, st)) {
			m->refs++;
			break;
		}
	pthread_mutex_unlock(&ms->lock);
	return m;
}

static void
model_remember(struct agent *a, struct model *m, const struct stat *st)
{
	pthread_mutex_lock(&a->models->lock);
	m->seen = true;
	m->dev = st->st_dev;
	m->ino = st->st_ino;
	m->size = st->st_size;
	m->ctime = st->st_ctim;
	pthread_mutex_unlock(&a->models->lock);
}

/* ---- the answer ------------------------------------------------------- */

static const char *
pcr0_hex(struct agent *a)
{
	struct agent_models *ms = a->models;

	pthread_mutex_lock(&ms->lock);
	if (ms->pcr0[0] == '\0') {
		uint8_t pcr[WARD_NSM_PCR_LEN];
		struct ward_nsm *nsm = NULL;
		bool lock;

		if (ward_nsm_open(a->nsm_path[0] != '\0' ? a->nsm_path : NULL,
		        &nsm) == 0 &&
		    ward_nsm_describe_pcr(nsm, 0, &lock, pcr) == 0)
			ward_hex_encode(pcr, sizeof(pcr), ms->pcr0);
		ward_nsm_close(nsm);
	}
	pthread_mutex_unlock(&ms->lock);
	return ms->pcr0[0] != '\0' ? ms->pcr0 : "unknown";
}

static int putf(struct ward_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
putf(struct ward_buf *b, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return ward_errf(
		    WARD_EINTERNAL, "infer: an answer field is long");
	return ward_buf_append(b, tmp, (size_t)n);
}

/* A float as JSON: the shortest of %.9g that reads back the same float
 * is not needed; %.9g always reads back the same float. */
static int
put_float(struct ward_buf *b, float v)
{
	if (!isfinite(v))
		return ward_buf_append(b, "null", 4);
	return putf(b, "%.9g", (double)v);
}

/*
 * The answer (docs/protocol.md "infer"): one JSON object, each prediction
 * on a line of its own.
 */
int
agent_infer_answer(const uint8_t hash[WARD_SHA384_LEN], const char *pcr0,
    const struct agent_runtime *rt, const struct agent_model_info *info,
    const float *pred, size_t rows, size_t per_row, struct ward_buf *out)
{
	char hex[2 * WARD_SHA384_LEN + 1];
	int r;

	ward_hex_encode(hash, WARD_SHA384_LEN, hex);
	if ((r = putf(out, "{\"model_sha384\":\"%s\",", hex)) != 0 ||
	    (r = putf(out, "\"pcr0\":\"%s\",", pcr0)) != 0 ||
	    (r = putf(out, "\"runtime\":\"%s\",\"objective\":\"%s\",", rt->name,
	         info->objective)) != 0 ||
	    (r = putf(out, "\"rows\":%zu,\"predictions\":[\n", rows)) != 0)
		return r;
	for (size_t i = 0; i < rows && r == 0; i++) {
		const float *p = pred + i * per_row;

		if (info->task == AGENT_TASK_BINARY && per_row == 1) {
			r = putf(out, "{\"label\":%d,\"probabilities\":[",
			    p[0] >= 0.5f ? 1 : 0);
			if (r == 0)
				r = put_float(out, 1.0f - p[0]);
			if (r == 0)
				r = ward_buf_append(out, ",", 1);
			if (r == 0)
				r = put_float(out, p[0]);
			if (r == 0)
				r = ward_buf_append(out, "]}", 2);
		} else if (info->task == AGENT_TASK_MULTI ||
		    (info->task == AGENT_TASK_BINARY && per_row > 1)) {
			size_t best = 0;

			for (size_t k = 1; k < per_row; k++)
				if (p[k] > p[best])
					best = k;
			r = putf(
			    out, "{\"label\":%zu,\"probabilities\":[", best);
			for (size_t k = 0; k < per_row && r == 0; k++) {
				if (k > 0)
					r = ward_buf_append(out, ",", 1);
				if (r == 0)
					r = put_float(out, p[k]);
			}
			if (r == 0)
				r = ward_buf_append(out, "]}", 2);
		} else if (info->task == AGENT_TASK_CLASS && per_row == 1 &&
		    isfinite(p[0])) {
			r = putf(out, "{\"label\":%.0f}", (double)p[0]);
		} else {
			r = ward_buf_append(out, "{\"value\":", 9);
			for (size_t k = 0; k < per_row && r == 0; k++) {
				if (per_row > 1)
					r = ward_buf_append(
					    out, k == 0 ? "[" : ",", 1);
				if (r == 0)
					r = put_float(out, p[k]);
			}
			if (r == 0 && per_row > 1)
				r = ward_buf_append(out, "]", 1);
			if (r == 0)
				r = ward_buf_append(out, "}", 1);
		}
		if (r == 0)
			r = ward_buf_append(out, i + 1 < rows ? ",\n" : "\n",
			    i + 1 < rows ? 2 : 1);
	}
	if (r == 0)
		r = ward_buf_append(out, "]}\n", 3);
	return r;
}

/* ---- one request ------------------------------------------------------ */

/* An ESDK message (`ward encrypt`): version 1 with type 0x80, or 2. */
static bool
is_encrypted(const uint8_t *p, size_t n)
{
	return n >= 2 && ((p[0] == 0x01 && p[1] == 0x80) || p[0] == 0x02);
}

static void
drop_cred(struct ward_msg_cred *cr)
{
	if (cr->secret_access_key != NULL)
		ward_cleanse(
		    cr->secret_access_key, strlen(cr->secret_access_key));
	if (cr->session_token != NULL)
		ward_cleanse(cr->session_token, strlen(cr->session_token));
	free(cr->access_key_id);
	free(cr->secret_access_key);
	free(cr->session_token);
	memset(cr, 0, sizeof(*cr));
}

static void
release_input(struct agent *a, struct agent_infer *x)
{
	pthread_mutex_lock(&a->models->lock);
	a->models->buffered -= x->input.len;
	pthread_mutex_unlock(&a->models->lock);
	ward_buf_free(&x->input);
}

/* Drop a request: its input (and its share of the agent's input budget),
 * its nonce and its credentials. */
static void
infer_free(struct agent *a, struct agent_infer *x)
{
	if (x == NULL)
		return;
	release_input(a, x);
	ward_cleanse(x->nonce, sizeof(x->nonce));
	ward_msg_free(&x->req);
	free(x);
}

static int
run(struct agent_infer *x, const char **code)
{
	struct agent *a = x->c->a;
	struct ward_buf ct = {0}, out = {.secret = true};
	struct req_keys keys = {0};
	struct agent_watch w;
	struct locked pin = {0};
	struct agent_rows rows = {0};
	struct model *m = NULL;
	uint8_t hash[WARD_SHA384_LEN], in_hash[WARD_SHA384_LEN],
	    out_hash[WARD_SHA384_LEN], ud[WARD_RECEIPT_UD_LEN];
	const uint8_t *in;
	size_t in_len, per_row = 0;
	float *pred = NULL;
	struct ward_buf doc = {0};
	double t0 = ward_now();
	struct stat st;
	bool fresh = false;
	int fd = -1, r;

	if ((r = open_model(x, &fd, &st, code)) != 0)
		goto out;
	if ((m = model_seen(a, &st)) == NULL) {
		if ((r = read_model(x, fd, &st, &ct)) != 0 ||
		    (r = ward_sha384(ct.p, ct.len, hash)) != 0 ||
		    (r = model_get(
		         x, &keys, ct.p, ct.len, hash, &m, &fresh, code)) != 0)
			goto out;
		model_remember(a, m, &st);
	}
	close(fd);
	fd = -1;
	if (x->req.receipt &&
	    (r = ward_sha384(x->input.p, x->input.len, in_hash)) != 0)
		goto out;
	in = x->input.p;
	in_len = x->input.len;
	if (is_encrypted(in, in_len)) {
		if ((r = req_keyring(x, &keys, &w, false, code)) != 0 ||
		    (r = decrypt_locked(
		         &w, in, in_len, "the input", false, &pin, code)) != 0)
			goto out;
		in = pin.p;
		in_len = pin.len;
	}
	/* KMS is done with: the credentials and the KMS client go now, not
	 * after the prediction */
	agent_keys_free(keys.keys);
	keys = (struct req_keys){0};
	drop_cred(&x->req.cred);
	if ((r = agent_rows_parse(in, in_len, x->fmt,
	         (size_t)(a->o.infer_input_max / 2 + 1), &rows)) != 0) {
		*code =
		    r == -WARD_ELIMIT ? WARD_CODE_LIMIT : WARD_CODE_BAD_INPUT;
		r = ward_err_prefix(r, "the input");
		goto out;
	}
	locked_free(&pin);
	release_input(a, x);
	if (rows.cols != m->info.features) {
		*code = WARD_CODE_BAD_INPUT;
		r = ward_errf(WARD_EFORMAT,
		    "wrong feature count: the model takes %zu features, the "
		    "input's rows have %zu values",
		    m->info.features, rows.cols);
		goto out;
	}
	if ((r = m->rt->predict(
	         m->h, rows.v, rows.rows, rows.cols, &pred, &per_row)) != 0)
		goto out;
	if ((r = agent_infer_answer(m->hash, pcr0_hex(a), m->rt, &m->info, pred,
	         rows.rows, per_row, &out)) != 0)
		goto out;
	/* the answer in DATA frames */
	for (size_t off = 0; off < out.len; off += WARD_AGENT_CHUNK) {
		size_t k = out.len - off < WARD_AGENT_CHUNK ? out.len - off
		                                            : WARD_AGENT_CHUNK;
		struct ward_msg d = {.type = WARD_MSG_DATA,
		    .id = x->req.id,
		    .data = out.p + off,
		    .data_len = k};

		if ((r = agent_send(x->c, &d)) != 0)
			goto out;
	}
	if (x->req.receipt) {
		struct ward_nsm *nsm = NULL;
		struct ward_nsm_opt u = {.present = true}, nonce = {0},
		                    pk = {0};

		if ((r = ward_sha384(out.p, out.len, out_hash)) != 0 ||
		    (r = ward_receipt_user_data(
		         m->hash, in_hash, out_hash, ud)) != 0)
			goto out;
		u.v = (struct ward_bytes){ud, sizeof(ud)};
		nonce.present = x->has_nonce;
		nonce.v = (struct ward_bytes){x->nonce, x->nonce_len};
		if ((r = ward_nsm_open(
		         a->nsm_path[0] != '\0' ? a->nsm_path : NULL, &nsm)) !=
		        0 ||
		    (r = ward_nsm_attestation(nsm, &u, &nonce, &pk, &doc)) !=
		        0) {
			ward_nsm_close(nsm);
			*code = WARD_CODE_ATTEST;
			r = ward_err_prefix(r, "the receipt's attestation");
			goto out;
		}
		ward_nsm_close(nsm);
	}
	{
		struct ward_msg ok = {.type = WARD_MSG_OK,
		    .id = x->req.id,
		    .size = out.len,
		    .has_size = true,
		    .document = doc.p,
		    .document_len = doc.len,
		    .model_hash = m->hash,
		    .model_hash_len = sizeof(m->hash)};

		r = agent_send(x->c, &ok);
	}
	ward_info("infer %llu: %zu rows, model %s%s, %.1f ms",
	    (unsigned long long)x->req.id, rows.rows,
	    fresh ? "decrypted" : "cached", x->req.receipt ? ", receipt" : "",
	    (ward_now() - t0) * 1e3);
out:
	if (pred != NULL)
		ward_cleanse(
		    pred, rows.rows * (per_row ? per_row : 1) * sizeof(float));
	free(pred);
	agent_rows_free(&rows);
	locked_free(&pin);
	ward_buf_free(&out);
	ward_buf_free(&doc);
	ward_buf_free(&ct);
	agent_keys_free(keys.keys);
	model_put(a, m);
	if (fd >= 0)
		close(fd);
	return r;
}

static void *
run_main(void *arg)
{
	struct agent_infer *x = arg;
	struct agent_conn *c = x->c;
	struct agent *a = c->a;
	const char *code = NULL;
	int r;

	if ((r = run(x, &code)) != 0 && !c->broken)
		agent_send_err(c, x->req.id,
		    code != NULL ? code : ward_err_code(r), "%s",
		    ward_errmsg());
	infer_free(a, x);
	pthread_mutex_lock(&a->models->lock);
	a->models->running--;
	pthread_mutex_unlock(&a->models->lock);
	pthread_mutex_lock(&c->lock);
	c->infer_running--;
	pthread_cond_broadcast(&c->infer_done);
	pthread_mutex_unlock(&c->lock);
	ward_errclear();
	return NULL;
}

/* ---- messages --------------------------------------------------------- */

static struct agent_infer *
take(struct agent_conn *c, uint64_t id)
{
	struct agent_infer **pp, *x = NULL;

	pthread_mutex_lock(&c->lock);
	for (pp = &c->infers; *pp != NULL; pp = &(*pp)->next)
		if ((*pp)->req.id == id) {
			x = *pp;
			*pp = x->next;
			x->next = NULL;
			break;
		}
	pthread_mutex_unlock(&c->lock);
	return x;
}

/* back on the connection's list of uploads (take's inverse) */
static void
put(struct agent_conn *c, struct agent_infer *x)
{
	pthread_mutex_lock(&c->lock);
	x->next = c->infers;
	c->infers = x;
	pthread_mutex_unlock(&c->lock);
}

bool
agent_infer_owns(struct agent_conn *c, uint64_t id)
{
	bool found = false;

	pthread_mutex_lock(&c->lock);
	for (struct agent_infer *x = c->infers; x != NULL; x = x->next)
		if (x->req.id == id) {
			found = true;
			break;
		}
	pthread_mutex_unlock(&c->lock);
	return found;
}

static int
on_infer(struct agent_conn *c, struct ward_msg *m)
{
	struct agent_infer *x;
	enum agent_fmt fmt = AGENT_FMT_AUTO;

	if (agent_infer_owns(c, m->id) || agent_ws_owns(c, m->id))
		return agent_send_err(c, m->id, WARD_CODE_BAD_REQUEST,
		    "infer: request id %llu is in use",
		    (unsigned long long)m->id);
	if (m->format != NULL) {
		if (strcmp(m->format, "csv") == 0)
			fmt = AGENT_FMT_CSV;
		else if (strcmp(m->format, "json") == 0)
			fmt = AGENT_FMT_JSON;
		else
			return agent_send_err(c, m->id, WARD_CODE_BAD_REQUEST,
			    "infer: format %s is not csv or json",
			    ward_quotes(m->format));
	}
	if (m->path[0] == '\0')
		return agent_send_err(
		    c, m->id, WARD_CODE_BAD_REQUEST, "infer: no model path");
	if (m->has_size && m->size > c->a->o.infer_input_max)
		return agent_send_err(c, m->id, WARD_CODE_LIMIT,
		    "infer: the input (%llu bytes) is over the agent's limit "
		    "of %llu bytes per request",
		    (unsigned long long)m->size,
		    (unsigned long long)c->a->o.infer_input_max);
	if ((x = calloc(1, sizeof(*x))) == NULL)
		return agent_send_ward_err(c, m->id, ward_enomem());
	x->c = c;
	x->fmt = fmt;
	x->input.secret = true;
	/* announced: one allocation, not a series of grow-and-cleanse */
	if (m->has_size && m->size > 0 &&
	    ward_buf_reserve(&x->input, (size_t)m->size) != 0) {
		infer_free(c->a, x);
		return agent_send_ward_err(c, m->id, ward_enomem());
	}
	if (m->nonce != NULL) {
		memcpy(x->nonce, m->nonce, m->nonce_len);
		x->nonce_len = m->nonce_len;
		x->has_nonce = true;
	}
	/* take over the decoded request; byte strings point into the
	 * frame and are not kept */
	x->req = *m;
	x->req.nonce = NULL;
	x->req.nonce_len = 0;
	x->req.data = NULL;
	x->req.data_len = 0;
	memset(m, 0, sizeof(*m));
	put(c, x);
	return 0;
}

static int
on_data(struct agent_conn *c, struct ward_msg *m)
{
	struct agent *a = c->a;
	struct agent_infer *x;
	uint64_t others = 0;
	bool over_request, over_agent = false;
	int r;

	/* the reader thread is the only one adding input: x stays ours
	 * between take and the put back */
	if ((x = take(c, m->id)) == NULL)
		return agent_send_err(c, m->id, WARD_CODE_BAD_REQUEST,
		    "data for request %llu, which is not an upload",
		    (unsigned long long)m->id);
	over_request = m->data_len > a->o.infer_input_max - x->input.len;
	if (!over_request) {
		pthread_mutex_lock(&a->models->lock);
		others = a->models->buffered;
		over_agent = m->data_len > 4 * a->o.infer_input_max - others;
		if (!over_agent)
			a->models->buffered += m->data_len;
		pthread_mutex_unlock(&a->models->lock);
	}
	if (over_request || over_agent) {
		r = agent_send_err(c, m->id,
		    over_request ? WARD_CODE_LIMIT : WARD_CODE_BUSY,
		    over_request
		        ? "infer: the input is over the agent's limit of %llu "
		          "bytes per request (ward agent --infer-input-max)"
		        : "infer: the agent holds %llu bytes of other "
		          "requests' input; try again",
		    (unsigned long long)(over_request ? a->o.infer_input_max
		                                      : others));
		infer_free(a, x);
		return r;
	}
	if ((r = ward_buf_append(&x->input, m->data, m->data_len)) != 0) {
		pthread_mutex_lock(&a->models->lock);
		a->models->buffered -= m->data_len;
		pthread_mutex_unlock(&a->models->lock);
		r = agent_send_ward_err(c, m->id, r);
		infer_free(a, x);
		return r;
	}
	put(c, x);
	return 0;
}

static int
on_end(struct agent_conn *c, struct ward_msg *m)
{
	struct agent *a = c->a;
	struct agent_infer *x = take(c, m->id);
	pthread_attr_t attr;
	pthread_t t;
	bool busy;
	int r;

	if (x == NULL)
		return agent_send_err(c, m->id, WARD_CODE_BAD_REQUEST,
		    "end for request %llu, which is not an upload",
		    (unsigned long long)m->id);
	if (x->req.has_size && x->req.size != x->input.len) {
		r = agent_send_err(c, m->id, WARD_CODE_BAD_REQUEST,
		    "infer: %zu bytes of input came, %llu were announced",
		    x->input.len, (unsigned long long)x->req.size);
		infer_free(a, x);
		return r;
	}
	pthread_mutex_lock(&a->models->lock);
	busy = a->models->running >= INFER_RUNNING_MAX;
	if (!busy)
		a->models->running++;
	pthread_mutex_unlock(&a->models->lock);
	if (busy) {
		r = agent_send_err(c, m->id, WARD_CODE_BUSY,
		    "infer: %u requests are running; try again",
		    INFER_RUNNING_MAX);
		infer_free(a, x);
		return r;
	}
	pthread_mutex_lock(&c->lock);
	c->infer_running++;
	pthread_mutex_unlock(&c->lock);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	r = pthread_create(&t, &attr, run_main, x);
	pthread_attr_destroy(&attr);
	if (r != 0) {
		pthread_mutex_lock(&a->models->lock);
		a->models->running--;
		pthread_mutex_unlock(&a->models->lock);
		pthread_mutex_lock(&c->lock);
		c->infer_running--;
		pthread_mutex_unlock(&c->lock);
		r = agent_send_err(c, m->id, WARD_CODE_BUSY,
		    "infer: no thread for the request (%s)", strerror(r));
		infer_free(a, x);
		return r;
	}
	return 0;
}

int
agent_infer_handle(struct agent_conn *c, struct ward_msg *m)
{
	switch (m->type) {
	case WARD_MSG_INFER:
		return on_infer(c, m);
	case WARD_MSG_DATA:
		return on_data(c, m);
	case WARD_MSG_END:
		return on_end(c, m);
	default:
		return agent_send_err(c, m->id, WARD_CODE_BAD_REQUEST,
		    "infer: unexpected %s", ward_msg_type_name(m->type));
	}
}

void
agent_infer_conn_close(struct agent_conn *c)
{
	struct agent_infer *x;

	pthread_mutex_lock(&c->lock);
	x = c->infers;
	c->infers = NULL;
	pthread_mutex_unlock(&c->lock);
	while (x != NULL) {
		struct agent_infer *next = x->next;

		infer_free(c->a, x);
		x = next;
	}
	pthread_mutex_lock(&c->lock);
	while (c->infer_running > 0)
		pthread_cond_wait(&c->infer_done, &c->lock);
	pthread_mutex_unlock(&c->lock);
}
