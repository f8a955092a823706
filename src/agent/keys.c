/*
 * Key release inside the enclave (nitro.md §4.2, §5): a KMS keyring for
 * one request's credentials, region and endpoint, whose Decrypt carries a
 * Recipient, an NSM attestation document binding an RSA key the agent
 * holds in memory; KMS answers with the data key sealed to that key
 * (CiphertextForRecipient), so the proxy and the host see only
 * ciphertext. Every connection to KMS goes through the parent's proxy
 * (a->kms_proxy, vsock 3:8000 by default): the enclave has no other way
 * out.
 *
 * The recipient key. RSA-2048 generation takes tens of milliseconds,
 * several times the whole budget of a key release, so one key is kept in
 * agent memory and a background thread keeps a second one ready:
 *
 *   - a key serves at most RECIPIENT_MAX_AGE_S (60 s) from its first use
 *     and at most RECIPIENT_MAX_USES (1,000) requests, whichever comes
 *     first; it is then freed (EVP_PKEY_free cleanses RSA private keys)
 *     and the ready one takes its place;
 *   - a retired key lives on only in requests still holding a reference;
 *   - one NSM document binds the key for its life (see recipient_get):
 *     KMS checks the enclave's measurements in it on every request, and
 *     a replayed copy gets only data keys sealed to this key.
 *
 * The key never leaves the agent process: the NSM sees its public half,
 * KMS its public half through the document. What it protects is a data
 * key for the lifetime of one request, and a key that is reused for up to
 * a minute is a key that an attacker who can read enclave memory already
 * had anyway.
 *
 * Credentials arrive with each request and are copied into the KMS client
 * (which zeroes them when freed); nothing here logs them.
 *
 * Which keys. The host is not trusted: were any key good enough, it could
 * run a bundle of its own, under a KMS key it controls, beside the
 * vendor's and with the same uid. So an image that names its keys
 * (ward agent --app-key ARN, part of the measured command line) gets a
 * strict keyring over exactly those ARNs: only data keys under them are
 * tried, never discovery; a request may narrow the set with key ids of
 * its own, each of which must be one of them (else BadRequest). Without
 * --app-key, the request's key ids or, without those, any aws-kms key
 * (discovery): fine for development; docs/threat-model.md says production
 * images must set --app-key.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "internal.h"
#include "ward/attest.h"
#include "ward/crypto.h"
#include "ward/envelope.h"
#include "ward/kms.h"

#define RECIPIENT_MAX_AGE_S 60.0
#define RECIPIENT_MAX_USES 1000u
/* How long a request waits for a key when none is ready. */
#define RECIPIENT_WAIT_S 30.0
/* After a failed generation, the generator retries after this long. */
#define RECIPIENT_RETRY_S 1.0

struct agent_keys {
	struct agent *a;
	struct ward_kms_client *client;
	char *endpoint, *region; /* the client's, to put it back idle */
	struct ward_keyring *keyring;
};

/* ---- idle KMS clients and the NSM --------------------------------------- */

/*
 * A KMS client keeps its connection (through the proxy to KMS) between
 * requests, so key release does not pay for a new connection, a proxy
 * hop and curl's set-up each time. It keeps no credentials: a request's
 * are set when it takes the client and zeroed when it gives it back.
 * Clients idle for IDLE_S are closed.
 */
#define IDLE_MAX 4
#define IDLE_S 60.0

struct idle {
	struct ward_kms_client *c;
	char *endpoint, *region;
	double since;
};
static struct {
	pthread_mutex_t lock;
	struct idle v[IDLE_MAX];
	size_t n;
} idle = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void
idle_drop(size_t i)
{
	ward_kms_client_free(idle.v[i].c);
	free(idle.v[i].endpoint);
	free(idle.v[i].region);
	idle.v[i] = idle.v[--idle.n];
}

/* An idle client for endpoint and region, or NULL. */
static struct ward_kms_client *
idle_take(const char *endpoint, const char *region)
{
	struct ward_kms_client *c = NULL;
	double now = ward_now();
	size_t i;

	pthread_mutex_lock(&idle.lock);
	for (i = idle.n; i-- > 0;)
		if (now - idle.v[i].since > IDLE_S)
			idle_drop(i);
	for (i = 0; i < idle.n; i++)
		if (strcmp(idle.v[i].endpoint, endpoint) == 0 &&
		    strcmp(idle.v[i].region, region) == 0) {
			c = idle.v[i].c;
			free(idle.v[i].endpoint);
			free(idle.v[i].region);
			idle.v[i] = idle.v[--idle.n];
			break;
		}
	pthread_mutex_unlock(&idle.lock);
	return c;
}

/* Give k's client back, without credentials; takes its strings. */
static void
idle_put(struct agent_keys *k)
{
	size_t i, oldest = 0;

	ward_kms_client_set_credentials(k->client, NULL);
	pthread_mutex_lock(&idle.lock);
	if (idle.n == IDLE_MAX) {
		for (i = 1; i < idle.n; i++)
			if (idle.v[i].since < idle.v[oldest].since)
				oldest = i;
		idle_drop(oldest);
	}
	idle.v[idle.n++] =
	    (struct idle){k->client, k->endpoint, k->region, ward_now()};
	pthread_mutex_unlock(&idle.lock);
	k->client = NULL;
	k->endpoint = k->region = NULL;
}

/* One connection to the NSM for the agent, one request at a time. */
static pthread_mutex_t nsm_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ward_nsm *nsm_shared;

/* ---- the recipient key pool ------------------------------------------- */

static struct {
	pthread_mutex_t lock;
	pthread_cond_t ready; /* a key was made, or making one failed */
	pthread_cond_t wake; /* the generator has work */
	EVP_PKEY *cur; /* in service */
	struct ward_buf cur_spki;
	struct ward_buf cur_doc; /* the NSM's document binding it, once made */
	double cur_since; /* first use */
	unsigned cur_uses;
	EVP_PKEY *next; /* made, never used */
	struct ward_buf next_spki;
	unsigned failures; /* generations that failed */
	char failure[256]; /* the last one's message */
	bool running; /* the generator thread exists */
	bool stop; /* agent_keys_stop asked it to end */
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER};

static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

/* Absolute CLOCK_MONOTONIC time s seconds from now. */
static struct timespec
deadline_in(double s)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t)s;
	ts.tv_nsec += (long)((s - (double)(time_t)s) * 1e9);
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

/* Retire the key in service. pool.lock held. */
static void
retire_cur(void)
{
	EVP_PKEY_free(pool.cur);
	pool.cur = NULL;
	ward_buf_free(&pool.cur_spki);
	ward_buf_free(&pool.cur_doc);
	pool.cur_uses = 0;
}

static bool
cur_spent(double now)
{
	return pool.cur != NULL &&
	    (now - pool.cur_since >= RECIPIENT_MAX_AGE_S ||
	        pool.cur_uses >= RECIPIENT_MAX_USES);
}

static int
make_key(EVP_PKEY **key, struct ward_buf *spki)
{
	int r;

	*key = NULL;
	spki->len = 0;
	if ((r = ward_rsa_generate(WARD_RSA_RECIPIENT_BITS, key)) != 0 ||
	    (r = ward_pkey_spki(*key, spki)) != 0) {
		ward_pkey_free(*key);
		*key = NULL;
		ward_buf_free(spki);
	}
	return r;
}

/*
 * Keeps pool.next filled, and retires the key in service once it is
 * spent even when no request comes to notice it.
 */
static void *
generator(void *arg)
{
	pthread_mutex_lock(&pool.lock);
	while (!pool.stop) {
		struct timespec until;

		if (cur_spent(ward_now()))
			retire_cur();
		if (pool.next == NULL) {
			struct ward_buf spki = {0};
			EVP_PKEY *k;
			int r;

			pthread_mutex_unlock(&pool.lock);
			r = make_key(&k, &spki);
			pthread_mutex_lock(&pool.lock);
			if (r == 0 && pool.stop) {
				ward_pkey_free(k);
				ward_buf_free(&spki);
				break;
			}
			if (r != 0) {
				pool.failures++;
				snprintf(pool.failure, sizeof(pool.failure),
				    "%s", ward_errmsg());
				pthread_cond_broadcast(&pool.ready);
				until = deadline_in(RECIPIENT_RETRY_S);
				pthread_cond_timedwait(
				    &pool.wake, &pool.lock, &until);
				continue;
			}
			pool.next = k;
			pool.next_spki = spki;
			pthread_cond_broadcast(&pool.ready);
			continue;
		}
		if (pool.cur != NULL) {
			until = deadline_in(RECIPIENT_MAX_AGE_S -
			    (ward_now() - pool.cur_since) + 0.01);
			pthread_cond_timedwait(&pool.wake, &pool.lock, &until);
		} else
			pthread_cond_wait(&pool.wake, &pool.lock);
	}
	/* OpenSSL frees a thread's state (its DRBGs) when the thread ends,
	 * which may be after agent_keys_stop returned and the process
	 * began to exit: free it now */
	pthread_mutex_unlock(&pool.lock);
	OPENSSL_thread_stop();
	pthread_mutex_lock(&pool.lock);
	pool.running = false;
	pthread_cond_broadcast(&pool.ready);
	pthread_mutex_unlock(&pool.lock);
	return NULL;
}

/*
 * At agent exit: end the generator, so that no thread is inside OpenSSL
 * while the process exits (its atexit cleanup would pull the library
 * from under a key being made). Waits for a key in the making.
 */
void
agent_keys_stop(void)
{
	pthread_mutex_lock(&pool.lock);
	pool.stop = true;
	pthread_cond_broadcast(&pool.wake);
	while (pool.running)
		pthread_cond_wait(&pool.ready, &pool.lock);
	pthread_mutex_unlock(&pool.lock);
}

static void
pool_start(void)
{
	pthread_condattr_t ca;
	pthread_attr_t ta;
	pthread_t t;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&pool.ready, &ca);
	pthread_cond_init(&pool.wake, &ca);
	pthread_condattr_destroy(&ca);
	pthread_attr_init(&ta);
	pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
	/* Without the thread, requests make keys themselves (slowly). */
	pool.running = pthread_create(&t, &ta, generator, NULL) == 0;
	pthread_attr_destroy(&ta);
	if (!pool.running)
		ward_warn("agent: no recipient key thread (%s): keys are made "
		          "on the request path",
		    strerror(errno));
}

/* Start making the first recipient key now, so the first request does
 * not wait for RSA key generation. */
void
agent_keys_warm(void)
{
	pthread_once(&pool_once, pool_start);
}

/* A reference to the recipient key in service and its SPKI (DER). */
static int
recipient_take(EVP_PKEY **key, struct ward_buf *spki)
{
	struct timespec until = deadline_in(RECIPIENT_WAIT_S);
	unsigned failures;
	int r = 0;

	*key = NULL;
	pthread_once(&pool_once, pool_start);
	pthread_mutex_lock(&pool.lock);
	failures = pool.failures;
	for (;;) {
		double now = ward_now();

		if (cur_spent(now))
			retire_cur();
		if (pool.cur == NULL && pool.next != NULL) {
			pool.cur = pool.next;
			pool.cur_spki = pool.next_spki;
			pool.cur_since = now;
			pool.cur_uses = 0;
			pool.next = NULL;
			pool.next_spki = (struct ward_buf){0};
			pthread_cond_signal(&pool.wake);
		}
		if (pool.cur != NULL)
			break;
		if (!pool.running) {
			/* no generator: make one here */
			struct ward_buf s = {0};
			EVP_PKEY *k;

			pthread_mutex_unlock(&pool.lock);
			r = make_key(&k, &s);
			pthread_mutex_lock(&pool.lock);
			if (r != 0)
				goto out;
			if (pool.next == NULL) {
				pool.next = k;
				pool.next_spki = s;
			} else {
				EVP_PKEY_free(k);
				ward_buf_free(&s);
			}
			continue;
		}
		if (pool.failures != failures) {
			r = ward_errf(WARD_ECRYPTO,
			    "making the recipient RSA key: %s", pool.failure);
			goto out;
		}
		pthread_cond_signal(&pool.wake);
		if (pthread_cond_timedwait(&pool.ready, &pool.lock, &until) ==
		    ETIMEDOUT) {
			r = ward_errf(WARD_EINTERNAL,
			    "no recipient RSA key after %.0f s",
			    RECIPIENT_WAIT_S);
			goto out;
		}
	}
	if ((r = ward_buf_append(spki, pool.cur_spki.p, pool.cur_spki.len)) !=
	    0)
		goto out;
	if (EVP_PKEY_up_ref(pool.cur) != 1) {
		r = ward_errf(WARD_ECRYPTO, "EVP_PKEY_up_ref failed");
		goto out;
	}
	*key = pool.cur;
	if (++pool.cur_uses >= RECIPIENT_MAX_USES) {
		retire_cur(); /* our reference lives on */
		pthread_cond_signal(&pool.wake);
	}
out:
	pthread_mutex_unlock(&pool.lock);
	return r;
}

/* ward_kms_recipient.get: an attestation document binding the key. */
static int
recipient_get(void *ctx, struct ward_buf *doc, void **pkey)
{
	struct agent_keys *k = ctx;
	struct ward_buf spki = {0};
	struct ward_nsm_opt pub;
	EVP_PKEY *key = NULL;
	bool cached = false;
	int r;

	*pkey = NULL;
	if ((r = recipient_take(&key, &spki)) != 0)
		goto out;
	/*
	 * One document per recipient key: it binds the key (and the PCRs,
	 * which do not change), so each KMS request may carry it for the
	 * key's life (60 s, 1,000 uses) without weakening anything: KMS
	 * seals to the key, whose private half never leaves this agent. It
	 * saves the NSM's signature per request, and KMS's check of a
	 * document it has seen.
	 */
	pthread_mutex_lock(&pool.lock);
	if (pool.cur == key && pool.cur_doc.len > 0) {
		r = ward_buf_append(doc, pool.cur_doc.p, pool.cur_doc.len);
		cached = true;
	}
	pthread_mutex_unlock(&pool.lock);
	if (r != 0)
		goto out;
	if (!cached) {
		pub = (struct ward_nsm_opt){
		    .present = true, .v = {spki.p, spki.len}};
		pthread_mutex_lock(&nsm_lock);
		if (nsm_shared == NULL)
			r = ward_nsm_open(
			    k->a->nsm_path[0] != '\0' ? k->a->nsm_path : NULL,
			    &nsm_shared);
		if (r == 0 &&
		    (r = ward_nsm_attestation(
		         nsm_shared, NULL, NULL, &pub, doc)) != 0) {
			/* a broken connection is opened afresh next time */
			ward_nsm_close(nsm_shared);
			nsm_shared = NULL;
		}
		pthread_mutex_unlock(&nsm_lock);
		if (r != 0) {
			r = ward_err_prefix(r, "attestation for KMS");
			goto out;
		}
		pthread_mutex_lock(&pool.lock);
		if (pool.cur == key && pool.cur_doc.len == 0 &&
		    ward_buf_append(&pool.cur_doc, doc->p, doc->len) != 0)
			pool.cur_doc.len = 0; /* only speed is lost */
		pthread_mutex_unlock(&pool.lock);
	}
	*pkey = key;
	key = NULL;
out:
	ward_pkey_free(key);
	ward_buf_free(&spki);
	return r;
}

/* ---- the client ------------------------------------------------------- */

/* ward_kms_client_opts.connect: a stream to KMS through the proxy. */
static int
proxy_connect(void *ctx, int *fd)
{
	struct agent *a = ctx;
	char addr[WARD_ADDR_FMT_MAX];
	int r;

	if ((r = ward_connect(&a->kms_proxy, fd)) != 0) {
		ward_addr_format(&a->kms_proxy, addr, sizeof(addr));
		return ward_err_prefix(r,
		    "reaching KMS through the proxy %s (is `ward proxy` running on the parent?)",
		    addr);
	}
	return 0;
}

/* The regional endpoint (kms-and-esdk.md §1.1), as the SDKs name it. */
static char *
default_endpoint(const char *region)
{
	char *url;

	if (asprintf(&url, "https://kms.%s.%s/", region,
	        strncmp(region, "cn-", 3) == 0 ? "amazonaws.com.cn"
	                                       : "amazonaws.com") < 0)
		return NULL;
	return url;
}

static char *
dup_or_null(const char *s, bool *failed)
{
	char *d;

	if (s == NULL)
		return NULL;
	if ((d = strdup(s)) == NULL)
		*failed = true;
	return d;
}

/*
 * The key ids the keyring is made of (see "Which keys" above): *ids and
 * *n; -WARD_EUSAGE when the request names a key the image does not allow.
 */
static int
keyring_keys(struct agent *a, const struct ward_msg *m, const char *const **ids,
    size_t *n)
{
	*ids = (const char *const *)m->key_ids;
	*n = m->key_idc;
	if (a->o.app_keyc == 0)
		return 0;
	for (size_t i = 0; i < m->key_idc; i++) {
		size_t j;

		for (j = 0; j < a->o.app_keyc; j++)
			if (strcmp(m->key_ids[i], a->o.app_keys[j]) == 0)
				break;
		if (j == a->o.app_keyc)
			return ward_errf(WARD_EUSAGE,
			    "key %s is not one of this image's application "
			    "keys (ward agent --app-key): this enclave opens "
			    "bundles under those only; name them by their ARN",
			    ward_quotes(m->key_ids[i]));
	}
	if (m->key_idc == 0) {
		*ids = a->o.app_keys;
		*n = a->o.app_keyc;
	}
	return 0;
}

/*
 * The keyring belongs to the returned agent_keys: use it until
 * agent_keys_free, never free it yourself.
 */
int
agent_keys_new(struct agent *a, const struct ward_msg *m,
    struct agent_keys **out, struct ward_keyring **keyring)
{
	struct ward_aws_credentials cred = {0};
	struct ward_kms_client_opts o = {0};
	struct ward_kms_recipient rcp;
	struct agent_keys *k = NULL;
	const char *const *ids;
	char *endpoint = NULL;
	bool failed = false;
	size_t idc;
	int r;

	*out = NULL;
	*keyring = NULL;
	if ((r = keyring_keys(a, m, &ids, &idc)) != 0)
		return r;
	if (!m->has_cred || m->cred.access_key_id == NULL ||
	    m->cred.secret_access_key == NULL ||
	    m->cred.access_key_id[0] == '\0' ||
	    m->cred.secret_access_key[0] == '\0')
		return ward_errf(
		    WARD_EUSAGE, "no AWS credentials came with the request");
	if (m->region == NULL || m->region[0] == '\0')
		return ward_errf(
		    WARD_EUSAGE, "no AWS region came with the request");
	if ((k = calloc(1, sizeof(*k))) == NULL)
		return ward_enomem();
	k->a = a;
	cred.access_key_id = dup_or_null(m->cred.access_key_id, &failed);
	cred.secret_access_key =
	    dup_or_null(m->cred.secret_access_key, &failed);
	if (m->cred.session_token != NULL && m->cred.session_token[0] != '\0')
		cred.session_token =
		    dup_or_null(m->cred.session_token, &failed);
	snprintf(cred.source, sizeof(cred.source), "request");
	if (m->endpoint != NULL && m->endpoint[0] != '\0')
		endpoint = dup_or_null(m->endpoint, &failed);
	else if ((endpoint = default_endpoint(m->region)) == NULL)
		failed = true;
	if (failed) {
		r = ward_enomem();
		goto out;
	}
	o.endpoint_url = endpoint;
	o.region = m->region;
	o.credentials = &cred;
	o.connect = proxy_connect;
	o.connect_ctx = a;
	o.ca_file = a->o.ca_file;
	if ((k->client = idle_take(endpoint, m->region)) != NULL) {
		if ((r = ward_kms_client_set_credentials(k->client, &cred)) !=
		    0)
			goto out;
	} else if ((r = ward_kms_client_new(&k->client, &o)) != 0)
		goto out;
	k->endpoint = endpoint;
	endpoint = NULL;
	if ((k->region = strdup(m->region)) == NULL) {
		r = ward_enomem();
		goto out;
	}
	rcp = (struct ward_kms_recipient){.get = recipient_get, .ctx = k};
	if ((r = ward_keyring_kms_new(
	         &k->keyring, k->client, ids, idc, &rcp)) != 0)
		goto out;
	*out = k;
	*keyring = k->keyring;
	k = NULL;
out:
	/* the client keeps its own copy */
	ward_aws_credentials_clear(&cred);
	free(endpoint);
	agent_keys_free(k);
	return r;
}

void
agent_keys_free(struct agent_keys *k)
{
	if (k == NULL)
		return;
	ward_keyring_free(k->keyring);
	if (k->client != NULL && k->endpoint != NULL && k->region != NULL)
		idle_put(k); /* zeroes its credentials */
	ward_kms_client_free(k->client); /* zeroes its credentials */
	free(k->endpoint);
	free(k->region);
	free(k);
}

/* ---- the watched keyring -------------------------------------------- */

/* "PCR0 <hex> (...)" for an AccessDenied message: what the host user
 * needs first, before KMS's own words (clients may cut long messages). */
static void
describe_pcr0(struct agent *a, char *out, size_t n)
{
	uint8_t pcr[WARD_NSM_PCR_LEN], zero[WARD_NSM_PCR_LEN] = {0};
	char hex[ward_hex_len(WARD_NSM_PCR_LEN) + 1];
	struct ward_nsm *nsm = NULL;
	bool lock;

	if (ward_nsm_open(a->nsm_path[0] != '\0' ? a->nsm_path : NULL, &nsm) !=
	        0 ||
	    ward_nsm_describe_pcr(nsm, 0, &lock, pcr) != 0) {
		snprintf(out, n, "PCR0 unknown (%s)", ward_errmsg());
		ward_nsm_close(nsm);
		return;
	}
	ward_nsm_close(nsm);
	ward_hex_encode(pcr, sizeof(pcr), hex);
	if (memcmp(pcr, zero, sizeof(pcr)) == 0)
		snprintf(out, n, "PCR0 %s (all zeros: debug mode)", hex);
	else
		snprintf(out, n,
		    "PCR0 %s (not debug mode; ward kms pin KEY --pcr0 "
		    "with it would allow it)",
		    hex);
}

/*
 * The keyring of keys.c, watched: a failure that comes from it (KMS said
 * no, the proxy is down, the NSM failed) is told apart from one of the
 * message itself (a bad tag says DecryptFailed, not AccessDenied).
 */

/*
 * With --app-key, a bundle none of whose data keys is under one of the
 * image's keys is refused before KMS is asked for anything: the strict
 * keyring of keys.c would skip its data keys too, but say only that no
 * key opened it. -WARD_EUSAGE naming a key it is under, or 0.
 */
static int
check_app_keys(struct agent *a, const struct ward_edk *edks, size_t n)
{
	static const char kms_provider[] = "aws-kms";
	const struct ward_edk *seen = NULL;

	if (a->o.app_keyc == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		const struct ward_edk *e = &edks[i];

		if (e->provider_id_len != strlen(kms_provider) ||
		    memcmp(e->provider_id, kms_provider, e->provider_id_len) !=
		        0)
			continue;
		seen = e;
		for (size_t j = 0; j < a->o.app_keyc; j++)
			if (strlen(a->o.app_keys[j]) == e->provider_info_len &&
			    memcmp(a->o.app_keys[j], e->provider_info,
			        e->provider_info_len) == 0)
				return 0;
	}
	/* the bundle's key first: clients may cut long messages */
	return ward_errf(WARD_EUSAGE,
	    "the bundle is under %s, which is not one of this image's "
	    "application keys (ward agent --app-key): this enclave opens "
	    "bundles and models under those only",
	    seen != NULL
	        ? ward_quote(seen->provider_info, seen->provider_info_len)
	        : "no KMS key");
}

static int
watched_on_encrypt(struct ward_keyring *kr, struct ward_materials *m)
{
	return ward_errf(WARD_EINTERNAL, "the agent's keyring only decrypts");
}

static int
watched_on_decrypt(struct ward_keyring *kr, struct ward_materials *m,
    const struct ward_edk *edks, size_t n)
{
	struct agent_watch *w = (struct agent_watch *)kr;
	double t0 = ward_now();
	int r;

	if (w->app_keys && (r = check_app_keys(w->a, edks, n)) != 0) {
		w->foreign = true;
		return r;
	}
	r = w->inner->ops->on_decrypt(w->inner, m, edks, n);
	w->seconds += ward_now() - t0;
	if (r != 0 && w->err == 0)
		w->err = r;
	return r;
}

static void
watched_describe(const struct ward_keyring *kr, char *out, size_t n)
{
	const struct agent_watch *w = (const struct agent_watch *)kr;

	w->inner->ops->describe(w->inner, out, n);
}

static void
watched_destroy(struct ward_keyring *kr)
{
	/* on the stack; the inner keyring belongs to agent_keys */
}

static const struct ward_keyring_ops watched_ops = {
    .type = "agent",
    .on_encrypt = watched_on_encrypt,
    .on_decrypt = watched_on_decrypt,
    .describe = watched_describe,
    .destroy = watched_destroy,
};

void
agent_watch_init(struct agent_watch *w, struct agent *a, bool app_keys)
{
	memset(w, 0, sizeof(*w));
	w->kr.ops = &watched_ops;
	w->a = a;
	w->app_keys = app_keys;
}

const char *
agent_watch_code(const struct agent_watch *w, int *r)
{
	int e = *r;

	if (e == 0)
		return NULL;
	if (w->foreign)
		return WARD_CODE_BAD_REQUEST;
	if (w->err != 0 && w->err == e && e == -WARD_EAUTH) {
		char why[512];

		describe_pcr0(w->a, why, sizeof(why));
		*r = ward_err_prefix(
		    e, "the KMS key policy refused this enclave, %s", why);
		return WARD_CODE_ACCESS_DENIED;
	}
	if (w->err != 0 && w->err == e && e != -WARD_ENOMEM)
		return WARD_CODE_KMS;
	if (e == -WARD_EAUTH || e == -WARD_EKEY || e == -WARD_ECONTEXT ||
	    e == -WARD_EFORMAT || e == -WARD_EUNSUPPORTED)
		/* the message cannot be opened, whatever byte of it says so
		 * (random bytes may name an unknown suite) */
		return WARD_CODE_DECRYPT;
	return NULL;
}
