/*
 * The local attestation root for sandbox enclaves (`ward ca init`) and the
 * per-enclave document signer. The chain is shaped like AWS's (nitro.md
 * §3.4): a long-lived P-384 root, an intermediate CA (the monitor) with
 * pathlen 0 and keyCertSign only, and a short-lived end-entity leaf with
 * digitalSignature only, issued by the monitor per enclave. Documents
 * carry cabundle = [root, monitor], root first, as NSM's do.
 *
 * Whoever can read monitor.key can forge sandbox documents: that is the
 * sandbox's trust boundary (docs/threat-model.md), and why the key files
 * are 0600 and the KMS trusts a local root only when told to.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <time.h>

#include "attest/internal.h"
#include "ward/attest.h"

#define ROOT_YEARS 30
#define MONITOR_DAYS 3650 /* nothing renews it but ca init --force */
#define LEAF_SKEW 60 /* seconds of notBefore slack for clock skew */
#define LEAF_RENEW 600 /* renew a leaf this close to its end */

struct ward_ca {
	struct ward_buf root_der;
	struct ward_buf monitor_der;
	struct evp_pkey_st *monitor_key;
};

struct ward_attest_signer {
	const struct ward_ca *ca;
	pthread_mutex_t lock;
	struct evp_pkey_st *leaf_key;
	struct ward_buf leaf_der;
	int64_t leaf_not_after;
};

int
ward_ca_default_dir(char *out, size_t cap)
{
	const char *d = getenv("WARD_CA_DIR");
	const char *home = getenv("HOME");
	int n;

	if (d != NULL && d[0] != '\0')
		n = snprintf(out, cap, "%s", d);
	else if (geteuid() == 0)
		/* not $HOME: under sudo -E it is a user's, who would then
		 * choose root's signing key */
		n = snprintf(out, cap, "%s", WARD_CA_ROOT_DIR);
	else if (home != NULL && home[0] != '\0')
		n = snprintf(out, cap, "%s/.ward/ca", home);
	else
		return ward_errf(WARD_EUSAGE,
		    "no CA directory: set WARD_CA_DIR or HOME, or pass --dir");
	if (n < 0 || (size_t)n >= cap)
		return ward_errf(WARD_ELIMIT, "CA directory path too long");
	return 0;
}

static int
path_in(char *out, size_t cap, const char *dir, const char *name)
{
	int n = snprintf(out, cap, "%s/%s", dir, name);

	if (n < 0 || (size_t)n >= cap)
		return ward_errf(
		    WARD_ELIMIT, "%s/%s: path too long", dir, name);
	return 0;
}

/* mkdir -p with mode 0700 for the directories it creates. */
static int
make_dirs(const char *dir)
{
	char p[4096];
	size_t n = strlen(dir);

	if (n == 0 || n >= sizeof(p))
		return ward_errf(
		    WARD_EUSAGE, "bad CA directory %s", ward_quotes(dir));
	memcpy(p, dir, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (p[i] != '/' && p[i] != '\0')
			continue;
		p[i] = '\0';
		if (mkdir(p, 0700) != 0 && errno != EEXIST)
			return ward_errf(
			    WARD_EIO, "%s: %s", p, strerror(errno));
		p[i] = dir[i];
	}
	return 0;
}

static int
write_pem_cert(
    const char *dir, const char *name, const struct ward_buf *der, bool force)
{
	struct ward_buf pem = {0};
	char path[4096];
	int r;

	if ((r = path_in(path, sizeof(path), dir, name)) != 0 ||
	    (r = ward_x509_pem(der->p, der->len, &pem)) != 0)
		goto out;
	r = ward_write_file_atomic(path, pem.p, pem.len, 0644, force);
out:
	ward_buf_free(&pem);
	return r;
}

static int
write_key(const char *dir, const char *name, struct evp_pkey_st *k, bool force)
{
	struct ward_buf pem = {.secret = true};
	char path[4096];
	int r;

	if ((r = path_in(path, sizeof(path), dir, name)) != 0 ||
	    (r = ward_pkey_private_pem(k, &pem)) != 0)
		goto out;
	r = ward_write_file_atomic(path, pem.p, pem.len, 0600, force);
out:
	ward_buf_free(&pem);
	return r;
}

int
ward_ca_init(const char *dir, bool force)
{
	struct evp_pkey_st *root_key = NULL, *mon_key = NULL;
	struct ward_buf root = {0}, mon = {0};
	uint8_t id[4];
	char cn_root[64], cn_mon[64], hex[9], path[4096];
	int64_t now = (int64_t)time(NULL);
	struct stat st;
	int r;

	if ((r = path_in(path, sizeof(path), dir, "root.pem")) != 0)
		return r;
	if (!force && stat(path, &st) == 0)
		return ward_errf(WARD_EEXIST,
		    "%s already holds a CA (use --force to replace it; "
		    "documents it signed will stop verifying)",
		    dir);
	if ((r = make_dirs(dir)) != 0 || (r = ward_random(id, sizeof(id))) != 0)
		return r;
	ward_hex_encode(id, sizeof(id), hex);
	snprintf(cn_root, sizeof(cn_root), "ward-root-%s.sandbox.ward", hex);
	snprintf(cn_mon, sizeof(cn_mon), "ward-monitor-%s.sandbox.ward", hex);
	struct ward_x509_template troot = {
	    .c = "US",
	    .o = "ward",
	    .ou = "sandbox",
	    .cn = cn_root,
	    .not_before = now - LEAF_SKEW,
	    .not_after = now + (int64_t)ROOT_YEARS * 365 * 86400,
	    .ca = true,
	    .pathlen = -1,
	    .digital_signature = true,
	    .key_cert_sign = true,
	    .crl_sign = true,
	};
	struct ward_x509_template tmon = {
	    .c = "US",
	    .o = "ward",
	    .ou = "sandbox",
	    .cn = cn_mon,
	    .not_before = now - LEAF_SKEW,
	    .not_after = now + (int64_t)MONITOR_DAYS * 86400,
	    .ca = true,
	    .pathlen = 0,
	    .key_cert_sign = true,
	};
	if ((r = ward_ec_generate(WARD_CURVE_P384, &root_key)) != 0 ||
	    (r = ward_ec_generate(WARD_CURVE_P384, &mon_key)) != 0 ||
	    (r = ward_x509_issue(&troot, root_key, root_key, NULL, 0, &root)) !=
	        0 ||
	    (r = ward_x509_issue(
	         &tmon, mon_key, root_key, root.p, root.len, &mon)) != 0)
		goto out;
	/* Keys first: a certificate without its key is useless, a key
	 * without its certificate is harmless. */
	if ((r = write_key(dir, "root.key", root_key, true)) != 0 ||
	    (r = write_key(dir, "monitor.key", mon_key, true)) != 0 ||
	    (r = write_pem_cert(dir, "monitor.pem", &mon, true)) != 0 ||
	    (r = write_pem_cert(dir, "root.pem", &root, force)) != 0)
		goto out;
out:
	ward_pkey_free(root_key);
	ward_pkey_free(mon_key);
	ward_buf_free(&root);
	ward_buf_free(&mon);
	return r;
}

void
ward_ca_free(struct ward_ca *ca)
{
	if (ca == NULL)
		return;
	ward_buf_free(&ca->root_der);
	ward_buf_free(&ca->monitor_der);
	ward_pkey_free(ca->monitor_key);
	free(ca);
}

/* As root, the keys must be root's alone: a directory someone else could
 * write would let them choose what root signs with. */
static int
root_owned(const char *dir)
{
	struct stat st;

	if (geteuid() != 0)
		return 0;
	if (stat(dir, &st) != 0)
		return ward_errf(WARD_EIO, "%s: %s", dir, strerror(errno));
	if (st.st_uid != 0 || (st.st_mode & 022) != 0)
		return ward_errf(WARD_EUNSAFE,
		    "%s: the attestation root's directory must be root's and "
		    "writable only by root (owner %u, mode %04o)",
		    dir, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
	return 0;
}

int
ward_ca_load(const char *dir, struct ward_ca **out)
{
	struct ward_ca *ca;
	struct evp_pkey_st *pub = NULL;
	char path[4096];
	int r;

	*out = NULL;
	if ((r = root_owned(dir)) != 0)
		return r;
	if ((ca = calloc(1, sizeof(*ca))) == NULL)
		return ward_enomem();
	if ((r = path_in(path, sizeof(path), dir, "root.pem")) != 0 ||
	    (r = ward_x509_load(path, &ca->root_der)) != 0 ||
	    (r = path_in(path, sizeof(path), dir, "monitor.pem")) != 0 ||
	    (r = ward_x509_load(path, &ca->monitor_der)) != 0 ||
	    (r = path_in(path, sizeof(path), dir, "monitor.key")) != 0 ||
	    (r = ward_ec_load_private(
	         path, WARD_CURVE_P384, &ca->monitor_key)) != 0)
		goto out;
	if ((r = ward_x509_pubkey(
	         ca->monitor_der.p, ca->monitor_der.len, true, &pub)) != 0)
		goto out;
	if (!ward_pkey_same_public(pub, ca->monitor_key)) {
		r = ward_errf(WARD_EKEY,
		    "%s: monitor.key does not belong to monitor.pem", dir);
		goto out;
	}
	*out = ca;
	ca = NULL;
out:
	ward_pkey_free(pub);
	ward_ca_free(ca);
	if (r != 0 && r != -WARD_EKEY)
		r = ward_err_prefix(
		    r, "CA %s (create one with `ward ca init`)", dir);
	return r;
}

struct ward_bytes
ward_ca_root_der(const struct ward_ca *ca)
{
	return (struct ward_bytes){ca->root_der.p, ca->root_der.len};
}

static int
renew_leaf(struct ward_attest_signer *s, int64_t now)
{
	struct evp_pkey_st *k = NULL;
	struct ward_buf der = {0};
	uint8_t id[8];
	char cn[64], hex[17];
	int r;

	if ((r = ward_random(id, sizeof(id))) != 0)
		return r;
	ward_hex_encode(id, sizeof(id), hex);
	snprintf(cn, sizeof(cn), "ward-enclave-%s.sandbox.ward", hex);
	struct ward_x509_template t = {
	    .c = "US",
	    .o = "ward",
	    .ou = "sandbox",
	    .cn = cn,
	    .not_before = now - LEAF_SKEW,
	    .not_after = now + WARD_ATTEST_LEAF_SECONDS,
	    .ca = false,
	    .pathlen = -1,
	    .digital_signature = true,
	};
	if ((r = ward_ec_generate(WARD_CURVE_P384, &k)) != 0 ||
	    (r = ward_x509_issue(&t, k, s->ca->monitor_key,
	         s->ca->monitor_der.p, s->ca->monitor_der.len, &der)) != 0)
		goto out;
	ward_pkey_free(s->leaf_key);
	ward_buf_free(&s->leaf_der);
	s->leaf_key = k;
	s->leaf_der = der;
	s->leaf_not_after = t.not_after;
	k = NULL;
	der = (struct ward_buf){0};
out:
	ward_pkey_free(k);
	ward_buf_free(&der);
	return r;
}

int
ward_attest_signer_new(
    const struct ward_ca *ca, struct ward_attest_signer **out)
{
	struct ward_attest_signer *s;
	int r;

	*out = NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return ward_enomem();
	s->ca = ca;
	if (pthread_mutex_init(&s->lock, NULL) != 0) {
		free(s);
		return ward_enomem();
	}
	if ((r = renew_leaf(s, (int64_t)time(NULL))) != 0) {
		ward_attest_signer_free(s);
		return r;
	}
	*out = s;
	return 0;
}

void
ward_attest_signer_free(struct ward_attest_signer *s)
{
	if (s == NULL)
		return;
	ward_pkey_free(s->leaf_key);
	ward_buf_free(&s->leaf_der);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

int
ward_attest_sign(struct ward_attest_signer *s,
    const struct ward_attest_fields *f, struct ward_buf *out)
{
	int64_t now = (int64_t)time(NULL);
	int r;

	pthread_mutex_lock(&s->lock);
	if (now > s->leaf_not_after - LEAF_RENEW &&
	    (r = renew_leaf(s, now)) != 0)
		goto out;
	r = ward_attest_sign_with(s->leaf_key,
	    (struct ward_bytes){s->leaf_der.p, s->leaf_der.len},
	    (struct ward_bytes){s->ca->root_der.p, s->ca->root_der.len},
	    (struct ward_bytes){s->ca->monitor_der.p, s->ca->monitor_der.len},
	    f, out);
out:
	pthread_mutex_unlock(&s->lock);
	return r;
}
