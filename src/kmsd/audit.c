/*
 * The audit log: one JSON line per request, allowed or denied, chained by
 * SHA-256. Each line is
 *
 *   {"seq":N, ...fields..., "prev":"<hash of line N-1>","hash":"<h>"}
 *
 * where h is the HMAC-SHA-256 (keyed from root.key) of the line's text up
 * to and excluding
 * ,"hash":... with the closing brace appended, i.e. of the object as it
 * was before "hash" was added. Line 1 has prev = 64 zeros. Editing,
 * deleting or reordering any line breaks the chain at that line. The
 * database keeps an anchor (seq and hash of a recent line, refreshed every
 * KMSD_AUDIT_ANCHOR_EVERY lines and when the server stops); verification
 * checks that the anchored line is present and unchanged, so cutting the
 * log back to before the anchor is detected too. Lines written after the
 * last anchor can be cut from the end undetected: the anchor bounds that
 * window.
 *
 * Lines are written with one write(2) to an O_APPEND file before the
 * response is sent, so a killed server loses none it acknowledged.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "ward/crypto.h"

#define KMSD_AUDIT_ANCHOR_EVERY 256
#define KMSD_AUDIT_LINE_MAX (64 * 1024)
#define HASH_TAIL ",\"hash\":\"" /* then 64 hex, then "} */

struct kmsd_audit {
	pthread_mutex_t lock;
	uint8_t key[32]; /* secret: the chain's HMAC key */
	struct ward_hmac_sha256_key mac; /* of key; unset: one-shot HMAC */
	int fd;
	struct kmsd_state *st; /* open while db is: its hooks use st->gen */
	sqlite3 *db; /* for the anchor */
	uint64_t seq;
	char hash[65];
	uint64_t anchored;
};

/*
 * The chain is keyed: h = HMAC-SHA-256(audit key, line), the audit key
 * derived from root.key with HKDF. Someone who can edit audit.log but not
 * read root.key cannot compute a valid hash for a changed line, so lines
 * after the last anchor cannot be rewritten either (with a plain hash
 * they could be, after a crash, back to the anchor).
 */
static void
mac_hex(const uint8_t key[32], const void *p, size_t n, char out[65])
{
	uint8_t d[WARD_SHA256_LEN];

	if (ward_hmac_sha256(key, 32, p, n, d) != 0) {
		ward_errclear();
		memset(d, 0, sizeof(d)); /* never verifies */
	}
	ward_hex_encode(d, sizeof(d), out);
	ward_cleanse(d, sizeof(d));
}

/* The same, with the key's HMAC states computed once (OpenSSL 3 keys HMAC
 * anew on every one-shot call; under the append lock that cost is
 * serial). Falls back to the one-shot on any failure. */
static void
mac_hex_keyed(const struct ward_hmac_sha256_key *mac, const uint8_t key[32],
    const void *p, size_t n, char out[65])
{
	uint8_t d[WARD_SHA256_LEN];

	if (ward_hmac_sha256_keyed(mac, p, n, d) != 0) {
		ward_errclear();
		mac_hex(key, p, n, out);
		return;
	}
	ward_hex_encode(d, sizeof(d), out);
	ward_cleanse(d, sizeof(d));
}

static int
audit_key(const struct kmsd_state *s, uint8_t key[32])
{
	static const char info[] = "ward kms audit log v1";

	return ward_hkdf("SHA256", NULL, 0, s->root_key, sizeof(s->root_key),
	    (const uint8_t *)info, strlen(info), key, 32);
}

/*
 * Check one line (without its newline) against the previous hash and seq;
 * on success *seq and hash hold this line's.
 */
static int
check_line(const uint8_t key[32], const char *line, size_t n, uint64_t lineno,
    uint64_t *seq, char hash[65])
{
	size_t tail = strlen(HASH_TAIL) + 64 + 2;
	char *body = NULL, want[65], prev[65];
	json_t *o = NULL, *v;
	json_error_t jerr;
	int r = 0;

	if (n < tail + 2 ||
	    memcmp(line + n - tail, HASH_TAIL, strlen(HASH_TAIL)) != 0 ||
	    memcmp(line + n - 2, "\"}", 2) != 0)
		return ward_errf(WARD_EAUTH,
		    "audit log line %llu: no hash at the end",
		    (unsigned long long)lineno);
	if ((body = malloc(n - tail + 2)) == NULL)
		return ward_enomem();
	memcpy(body, line, n - tail);
	body[n - tail] = '}';
	body[n - tail + 1] = '\0';
	mac_hex(key, body, n - tail + 1, want);
	if (memcmp(want, line + n - 66, 64) != 0) {
		r = ward_errf(WARD_EAUTH,
		    "audit log line %llu: its hash does not match its text "
		    "(the line was edited)",
		    (unsigned long long)lineno);
		goto out;
	}
	if ((o = json_loadb(body, n - tail + 1, 0, &jerr)) == NULL ||
	    !json_is_integer(v = json_object_get(o, "seq"))) {
		r = ward_errf(WARD_EAUTH, "audit log line %llu: not an entry",
		    (unsigned long long)lineno);
		goto out;
	}
	if ((uint64_t)json_integer_value(v) != *seq + 1) {
		r = ward_errf(WARD_EAUTH,
		    "audit log line %llu: sequence %lld where %llu was due "
		    "(lines were deleted or reordered)",
		    (unsigned long long)lineno,
		    (long long)json_integer_value(v),
		    (unsigned long long)(*seq + 1));
		goto out;
	}
	v = json_object_get(o, "prev");
	snprintf(prev, sizeof(prev), "%s",
	    json_is_string(v) ? json_string_value(v) : "");
	if (strcmp(prev, hash) != 0) {
		r = ward_errf(WARD_EAUTH,
		    "audit log line %llu: does not chain to the line before "
		    "it (lines were deleted, reordered or edited)",
		    (unsigned long long)lineno);
		goto out;
	}
	*seq += 1;
	memcpy(hash, want, 65);
out:
	json_decref(o);
	free(body);
	return r;
}

/* Walk the whole log; call back for each verified line's seq/hash. */
static int
scan(const uint8_t key[32], int fd, uint64_t *seq, char hash[65],
    uint64_t anchor_seq, const char *anchor_hash, bool *anchor_seen)
{
	FILE *f;
	char *line = NULL;
	size_t cap = 0;
	ssize_t got;
	uint64_t lineno = 0;
	int r = 0, dfd;

	*seq = 0;
	memset(hash, '0', 64);
	hash[64] = '\0';
	if ((dfd = dup(fd)) < 0)
		return ward_errf(WARD_EIO, "audit log: %s", strerror(errno));
	if ((f = fdopen(dfd, "r")) == NULL) {
		close(dfd);
		return ward_errf(WARD_EIO, "audit log: %s", strerror(errno));
	}
	rewind(f);
	while ((got = getline(&line, &cap, f)) > 0) {
		lineno++;
		if (line[got - 1] != '\n') {
			r = ward_errf(WARD_EAUTH,
			    "audit log line %llu: cut short (no newline)",
			    (unsigned long long)lineno);
			break;
		}
		if (got > KMSD_AUDIT_LINE_MAX) {
			r = ward_errf(WARD_EAUTH,
			    "audit log line %llu: too long",
			    (unsigned long long)lineno);
			break;
		}
		if ((r = check_line(
		         key, line, (size_t)got - 1, lineno, seq, hash)) != 0)
			break;
		if (anchor_seen != NULL && *seq == anchor_seq)
			*anchor_seen = strcmp(hash, anchor_hash) == 0;
	}
	free(line);
	fclose(f);
	return r;
}

static int
anchor_read(sqlite3 *db, uint64_t *seq, char hash[65])
{
	sqlite3_stmt *st = NULL;
	int rc;

	*seq = 0;
	hash[0] = '\0';
	if (sqlite3_prepare_v2(db,
	        "SELECT seq, hash FROM audit_anchor WHERE id = 1", -1, &st,
	        NULL) != SQLITE_OK)
		return kmsd_db_err(db, "reading audit anchor");
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		*seq = (uint64_t)sqlite3_column_int64(st, 0);
		snprintf(
		    hash, 65, "%s", (const char *)sqlite3_column_text(st, 1));
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE
	    ? 0
	    : kmsd_db_err(db, "reading audit anchor");
}

static int
anchor_write(struct kmsd_audit *a)
{
	sqlite3_stmt *st = NULL;
	int r = 0;

	if (a->db == NULL || a->anchored == a->seq)
		return 0;
	/* The log reaches the disk before the anchor that names it. */
	fdatasync(a->fd);
	if (sqlite3_prepare_v2(a->db,
	        "INSERT OR REPLACE INTO audit_anchor(id, seq, hash)"
	        " VALUES (1, ?, ?)",
	        -1, &st, NULL) != SQLITE_OK)
		return kmsd_db_err(a->db, "writing audit anchor");
	sqlite3_bind_int64(st, 1, (sqlite3_int64)a->seq);
	sqlite3_bind_text(st, 2, a->hash, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		r = kmsd_db_err(a->db, "writing audit anchor");
	else
		a->anchored = a->seq;
	sqlite3_finalize(st);
	return r;
}

static int
open_log(const char *dir, int flags, int *fd)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/audit.log", dir);
	if ((*fd = open(path, flags | O_CLOEXEC | O_NOFOLLOW, 0600)) < 0)
		return ward_errf(WARD_EIO, "%s: %s", path, strerror(errno));
	return 0;
}

int
kmsd_audit_open(const char *dir, struct kmsd_audit **out)
{
	struct kmsd_audit *a;
	struct kmsd_state *s;
	uint64_t aseq;
	char ahash[65];
	bool seen = false;
	int r;

	*out = NULL;
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return ward_enomem();
	pthread_mutex_init(&a->lock, NULL);
	a->fd = -1;
	if ((r = kmsd_state_open(dir, &a->st)) != 0)
		goto out;
	s = a->st;
	if ((r = audit_key(s, a->key)) != 0 ||
	    (r = kmsd_db_open(s, &a->db)) != 0 ||
	    (r = open_log(dir, O_RDWR | O_APPEND | O_CREAT, &a->fd)) != 0)
		goto out;
	/* One writer: a second server would fork the hash chain. The lock
	 * goes with the process, so a killed server leaves none behind. */
	if (flock(a->fd, LOCK_EX | LOCK_NB) != 0) {
		r = errno == EWOULDBLOCK
		    ? ward_errf(WARD_EEXIST,
		          "%s/audit.log is held by another `ward kms serve`: "
		          "one server per state directory",
		          dir)
		    : ward_errf(WARD_EIO, "%s/audit.log: flock: %s", dir,
		          strerror(errno));
		goto out;
	}
	if ((r = anchor_read(a->db, &aseq, ahash)) != 0)
		goto out;
	/* Refuse to extend a log that no longer verifies: appending would
	 * hide the damage behind fresh, valid lines. */
	if ((r = scan(a->key, a->fd, &a->seq, a->hash, aseq, ahash, &seen)) !=
	    0) {
		r = ward_err_prefix(r,
		    "refusing to append to the audit log "
		    "of %s ('ward kms audit verify' explains)",
		    dir);
		goto out;
	}
	if (aseq > 0 && !seen) {
		r = ward_errf(WARD_EAUTH,
		    "refusing to append to the audit log of %s: line %llu, "
		    "anchored in the database, is missing or changed",
		    dir, (unsigned long long)aseq);
		goto out;
	}
	a->anchored = aseq;
	if (ward_hmac_sha256_key_init(&a->mac, a->key, sizeof(a->key)) != 0)
		ward_errclear(); /* mac_hex_keyed falls back to the one-shot */
	*out = a;
	a = NULL;
out:
	kmsd_audit_close(a);
	return r;
}

int
kmsd_audit_append(struct kmsd_audit *a, const char *fields, size_t fn)
{
	char *text = NULL, h[65], seq[32];
	size_t n, cap;
	ssize_t got;
	struct stat sb;
	int r = 0;

	/* fields: the line's other members, "{...}", formatted by the
	 * caller outside the lock */
	if (fn < 2 || fields[0] != '{' || fields[fn - 1] != '}')
		return ward_errf(WARD_EINTERNAL, "audit line fields");
	cap = 32 + fn + 80 + strlen(HASH_TAIL) + 64 + 4;
	if ((text = malloc(cap)) == NULL)
		return ward_enomem();
	pthread_mutex_lock(&a->lock);
	/* by hand, not snprintf: all of this is under the lock */
	memcpy(text, "{\"seq\":", 7);
	n = 7;
	{
		uint64_t v = a->seq + 1;
		size_t d = 0;

		do
			seq[d++] = (char)('0' + v % 10);
		while ((v /= 10) != 0);
		while (d > 0)
			text[n++] = seq[--d];
	}
	if (fn > 2) {
		text[n++] = ',';
		memcpy(text + n, fields + 1, fn - 2);
		n += fn - 2;
	}
	memcpy(text + n, ",\"prev\":\"", 9);
	n += 9;
	memcpy(text + n, a->hash, 64);
	n += 64;
	memcpy(text + n, "\"}", 2);
	n += 2;
	mac_hex_keyed(&a->mac, a->key, text, n, h);
	/* Replace the closing brace with the hash member. */
	n--;
	memcpy(text + n, HASH_TAIL, strlen(HASH_TAIL));
	n += strlen(HASH_TAIL);
	memcpy(text + n, h, 64);
	n += 64;
	memcpy(text + n, "\"}\n", 3);
	n += 3;
	if ((got = write(a->fd, text, n)) != (ssize_t)n) {
		r = ward_errf(WARD_EIO, "audit log: %s",
		    got < 0 ? strerror(errno) : "short write");
		/* Take back a partial line, or every later line would
		 * follow a broken one. */
		if (got > 0 && fstat(a->fd, &sb) == 0 && sb.st_size >= got &&
		    ftruncate(a->fd, sb.st_size - got) != 0)
			ward_warn("audit log: cannot remove a partial line: %s",
			    strerror(errno));
	} else {
		a->seq++;
		memcpy(a->hash, h, 65);
		if (a->seq - a->anchored >= KMSD_AUDIT_ANCHOR_EVERY)
			anchor_write(a);
	}
	pthread_mutex_unlock(&a->lock);
	free(text);
	return r;
}

void
kmsd_audit_close(struct kmsd_audit *a)
{
	if (a == NULL)
		return;
	if (a->fd >= 0) {
		anchor_write(a);
		close(a->fd);
	}
	kmsd_db_close(a->db);
	kmsd_state_close(a->st);
	ward_cleanse(a->key, sizeof(a->key));
	ward_hmac_sha256_key_free(&a->mac);
	pthread_mutex_destroy(&a->lock);
	free(a);
}

int
ward_kmsd_audit_verify(const char *dir, json_t **out)
{
	struct kmsd_state *s = NULL;
	sqlite3 *db = NULL;
	int r, fd = -1;
	uint64_t seq = 0, aseq = 0;
	char hash[65] = "", ahash[65] = "";
	bool seen = false;
	uint8_t key[32] = {0};

	*out = NULL;
	if ((r = kmsd_state_open(dir, &s)) != 0 ||
	    (r = audit_key(s, key)) != 0 || (r = kmsd_db_open(s, &db)) != 0 ||
	    (r = anchor_read(db, &aseq, ahash)) != 0 ||
	    (r = open_log(dir, O_RDONLY, &fd)) != 0)
		goto out;
	r = scan(key, fd, &seq, hash, aseq, ahash, &seen);
	if (r == 0 && aseq > 0 && !seen)
		r = ward_errf(WARD_EAUTH,
		    "audit log: line %llu, anchored in the database, is "
		    "missing or changed (the log was cut or replaced)",
		    (unsigned long long)aseq);
	*out = json_pack("{s:I, s:b, s:I, s:s}", "Lines", (json_int_t)seq,
	    "Verified", r == 0, "Anchor", (json_int_t)aseq, "Head", hash);
	if (r != 0 && *out != NULL)
		json_object_set_new(*out, "Error", json_string(ward_errmsg()));
out:
	if (fd >= 0)
		close(fd);
	ward_cleanse(key, sizeof(key));
	sqlite3_close(db);
	kmsd_state_close(s);
	return r;
}
