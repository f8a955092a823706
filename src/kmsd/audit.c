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
 * Each line is written before the response is sent, so a killed server
 * loses none it acknowledged. The lock covers only the chain: a line takes
 * its sequence number, its prev and its place in the file (an offset)
 * under the lock, then is written with one pwrite(2) at that offset
 * outside it, so that two workers' writes do not queue on the lock (the
 * kernel orders them on the file's own lock, which spins rather than
 * sleeps). A line counts as written, and its request may be answered,
 * only once it and every line before it are in the file: appenders wait
 * for those ahead of them (rarely: the one ahead had usually finished).
 * If a write fails, it and every line reserved after it fail (their
 * requests are refused), the file is cut back to the last written line
 * and the chain resumes from there.
 *
 * A server killed mid-append can leave a torn tail: a line cut short, or
 * a run of zero bytes where a line reserved earlier was never written
 * before a later one. No request recorded there was answered. `serve`
 * drops such a tail when it starts (saying so); `audit verify` reports
 * it. What makes a tail torn rather than edited: it follows the last
 * line that verifies, is at most KMSD_AUDIT_TORN_MAX bytes, and holds a
 * zero byte or does not end in a newline (an edited line has no zero
 * byte and ends in one).
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
/* Space for the log is allocated KMSD_AUDIT_STEP bytes at a time, so
 * that at least KMSD_AUDIT_AHEAD bytes lie ahead of the last line: see
 * preallocate(). Small steps: the file is locked while one is zeroed. */
#define KMSD_AUDIT_AHEAD ((off_t)1024 * 1024)
#define KMSD_AUDIT_STEP ((off_t)256 * 1024)
/* A torn tail holds at most one line per worker in flight. */
#define KMSD_AUDIT_TORN_MAX (4 * 1024 * 1024)
#define HASH_TAIL ",\"hash\":\"" /* then 64 hex, then "} */

/* One line between taking its place and being known written: on the
 * stack of the worker appending it, linked in file order. */
struct pending {
	struct pending *next;
	uint64_t seq;
	off_t end; /* offset just past the line */
	char hash[65];
	enum { P_WRITING, P_WRITTEN, P_FAILED } state;
	bool resolved; /* popped: ok says whether the line is in the log */
	bool ok;
};

struct kmsd_audit {
	pthread_mutex_t lock;
	pthread_cond_t moved; /* a pending line was resolved */
	unsigned waiting; /* workers waiting on moved */
	uint8_t key[32]; /* secret: the chain's HMAC key */
	struct ward_hmac_sha256_key mac; /* of key; unset: one-shot HMAC */
	int fd;
	struct kmsd_state *st; /* open while db is: its hooks use st->gen */
	sqlite3 *db; /* for the anchor */
	/* the anchor's statement, prepared on first use: compiling it each
	 * time was half of what an anchor cost. Used by one appender at a
	 * time (anchoring), or by close once the workers are gone. */
	sqlite3_stmt *anchor_st;
	/* the chain's head, lines reserved but maybe not yet written
	 * included: the next line's seq - 1, prev and offset */
	uint64_t seq;
	char hash[65];
	off_t end;
	/* the last line known written, with every line before it */
	uint64_t done_seq;
	char done_hash[65];
	off_t done_end;
	struct pending *head, *tail; /* in file order */
	off_t allocated; /* space allocated ahead up to here */
	bool allocating; /* an appender is extending it */
	bool failing; /* a write failed: reserve nothing until cut back */
	bool broken; /* the log could not be cut back: refuse every line */
	bool anchoring; /* an appender is writing the anchor */
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

/* Walk the whole log: *seq and hash end as the last verified line's,
 * *good the offset just past it, *anchor_seen whether the anchored line
 * was among them unchanged. */
static int
scan(const uint8_t key[32], int fd, uint64_t *seq, char hash[65],
    uint64_t anchor_seq, const char *anchor_hash, bool *anchor_seen,
    off_t *good)
{
	FILE *f;
	char *line = NULL;
	size_t cap = 0;
	ssize_t got;
	uint64_t lineno = 0;
	int r = 0, dfd;

	*good = 0;
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
		*good += got;
	}
	free(line);
	fclose(f);
	return r;
}

/*
 * Whether what follows offset good, to the end of the file, is a torn
 * tail (see the top of this file): 1 if so, with its size in *bytes, 0 if
 * not (or if there is nothing), < 0 on a read error.
 */
static int
torn_tail(int fd, off_t good, off_t *bytes)
{
	struct stat sb;
	char *t;
	size_t n, got = 0;
	ssize_t k;
	int torn;

	*bytes = 0;
	if (fstat(fd, &sb) != 0)
		return ward_errf(WARD_EIO, "audit log: %s", strerror(errno));
	if (sb.st_size <= good || sb.st_size - good > KMSD_AUDIT_TORN_MAX)
		return 0;
	n = (size_t)(sb.st_size - good);
	if ((t = malloc(n)) == NULL)
		return ward_enomem();
	while (got < n) {
		k = pread(fd, t + got, n - got, good + (off_t)got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			free(t);
			return ward_errf(WARD_EIO, "audit log: %s",
			    k < 0 ? strerror(errno) : "changed while read");
		}
		got += (size_t)k;
	}
	torn = memchr(t, '\0', n) != NULL || t[n - 1] != '\n';
	free(t);
	if (torn)
		*bytes = (off_t)n;
	return torn;
}

/* scan(), then a failure that is only a torn tail (*torn bytes of it)
 * is no failure: what serve and verify both need. */
static int
scan_log(const uint8_t key[32], int fd, uint64_t *seq, char hash[65],
    uint64_t anchor_seq, const char *anchor_hash, bool *anchor_seen,
    off_t *good, off_t *torn)
{
	int r, t;

	*torn = 0;
	r = scan(
	    key, fd, seq, hash, anchor_seq, anchor_hash, anchor_seen, good);
	if (r != 0 && (t = torn_tail(fd, *good, torn)) != 0) {
		if (t < 0)
			return t;
		ward_errclear();
		r = 0;
	}
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

/* Anchor line seq, whose hash is hash; a->anchored is the caller's to
 * set. Outside the lock while serving (one anchoring at a time: see
 * kmsd_audit_append), so that the fdatasync and the database write do
 * not hold every worker. */
static int
anchor_write(struct kmsd_audit *a, uint64_t seq, const char *hash)
{
	int r = 0;

	if (a->db == NULL || a->anchored == seq)
		return 0;
	/* The log reaches the disk before the anchor that names it. */
	fdatasync(a->fd);
	if (a->anchor_st == NULL &&
	    sqlite3_prepare_v2(a->db,
	        "INSERT OR REPLACE INTO audit_anchor(id, seq, hash)"
	        " VALUES (1, ?, ?)",
	        -1, &a->anchor_st, NULL) != SQLITE_OK) {
		a->anchor_st = NULL;
		return kmsd_db_err(a->db, "writing audit anchor");
	}
	sqlite3_bind_int64(a->anchor_st, 1, (sqlite3_int64)seq);
	sqlite3_bind_text(a->anchor_st, 2, hash, -1, SQLITE_STATIC);
	if (sqlite3_step(a->anchor_st) != SQLITE_DONE)
		r = kmsd_db_err(a->db, "writing audit anchor");
	sqlite3_reset(a->anchor_st);
	sqlite3_clear_bindings(a->anchor_st); /* hash is the caller's */
	return r;
}

/*
 * Allocate the log's space from `from` to `to` ahead of the lines that
 * will fill it (fallocate, FALLOC_FL_KEEP_SIZE: the file's size, and what
 * a reader sees, stay as they are). A write that reaches unallocated space
 * makes the file system allocate it inside the write, with the file
 * locked: on tmpfs that was 10% of a Decrypt's CPU, the other worker
 * spinning on the lock meanwhile. Called outside the lock; failure
 * (EOPNOTSUPP, ENOSPC, EFBIG) only means the writes allocate for
 * themselves.
 */
static void
preallocate(struct kmsd_audit *a, off_t from, off_t to)
{
	if (to > from &&
	    fallocate(a->fd, FALLOC_FL_KEEP_SIZE, from, to - from) != 0)
		ward_debug("audit log: fallocate: %s", strerror(errno));
	pthread_mutex_lock(&a->lock);
	a->allocated = to;
	a->allocating = false;
	pthread_mutex_unlock(&a->lock);
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
	off_t good, torn;
	int r;

	*out = NULL;
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return ward_enomem();
	{
		/* The lock is held for a line's HMAC, not across its
		 * write (only every KMSD_AUDIT_ANCHOR_EVERY lines, for the
		 * anchor): a waiter spins briefly before it sleeps. */
		pthread_mutexattr_t at;

		pthread_mutexattr_init(&at);
		pthread_mutexattr_settype(&at, PTHREAD_MUTEX_ADAPTIVE_NP);
		pthread_mutex_init(&a->lock, &at);
		pthread_mutexattr_destroy(&at);
	}
	pthread_cond_init(&a->moved, NULL);
	a->fd = -1;
	if ((r = kmsd_state_open(dir, &a->st)) != 0)
		goto out;
	s = a->st;
	if ((r = audit_key(s, a->key)) != 0 ||
	    (r = kmsd_db_open(s, &a->db)) != 0 ||
	    (r = open_log(dir, O_RDWR | O_CREAT, &a->fd)) != 0)
		goto out;
	/* The anchor's commits change nothing a cache holds: without this,
	 * each one (every 256 lines) told every worker's key, principal and
	 * policy caches to read afresh, and to bypass them while it was
	 * written. The WAL hook stays: it checkpoints. */
	sqlite3_commit_hook(a->db, NULL, NULL);
	sqlite3_rollback_hook(a->db, NULL, NULL);
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
	 * hide the damage behind fresh, valid lines. A torn tail is no
	 * damage (no request it records was answered): it goes, below. */
	if ((r = scan_log(a->key, a->fd, &a->seq, a->hash, aseq, ahash, &seen,
	         &good, &torn)) != 0) {
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
	if (torn > 0) {
		if (ftruncate(a->fd, good) != 0 || fdatasync(a->fd) != 0) {
			r = ward_errf(WARD_EIO,
			    "%s/audit.log: cannot drop its torn tail: %s", dir,
			    strerror(errno));
			goto out;
		}
		ward_warn("audit log: dropped a torn tail of %lld bytes after "
		          "line %llu (a server was stopped mid-append; no "
		          "request recorded there was answered)",
		    (long long)torn, (unsigned long long)a->seq);
	}
	a->end = a->done_end = a->allocated = good;
	preallocate(a, good, good + KMSD_AUDIT_AHEAD + KMSD_AUDIT_STEP);
	a->done_seq = a->seq;
	memcpy(a->done_hash, a->hash, sizeof(a->hash));
	a->anchored = aseq;
	if (ward_hmac_sha256_key_init(&a->mac, a->key, sizeof(a->key)) != 0)
		ward_errclear(); /* mac_hex_keyed falls back to the one-shot */
	*out = a;
	a = NULL;
out:
	kmsd_audit_close(a);
	return r;
}

/* Under the lock: sleep until a pending line is resolved. */
static void
wait_moved(struct kmsd_audit *a)
{
	a->waiting++;
	pthread_cond_wait(&a->moved, &a->lock);
	a->waiting--;
}

/*
 * Resolve what can be resolved, front to back, under the lock: written
 * lines at the front of the queue are in the log (with all before them);
 * once a write has failed and no write is still in flight, the file is
 * cut back to the last written line and every line still queued fails.
 */
static void
settle(struct kmsd_audit *a)
{
	struct pending *p;
	bool moved = false;

	while ((p = a->head) != NULL && p->state == P_WRITTEN) {
		a->head = p->next;
		a->done_seq = p->seq;
		a->done_end = p->end;
		memcpy(a->done_hash, p->hash, sizeof(p->hash));
		p->resolved = p->ok = true;
		moved = true;
	}
	if (a->head == NULL)
		a->tail = NULL;
	if (a->failing) {
		for (p = a->head; p != NULL; p = p->next)
			if (p->state == P_WRITING)
				goto out; /* its write could land later */
		/* Every line queued chains from the first failed one. */
		while ((p = a->head) != NULL) {
			a->head = p->next;
			p->resolved = true;
			p->ok = false;
		}
		a->tail = NULL;
		if (ftruncate(a->fd, a->done_end) != 0) {
			ward_warn("audit log: cannot cut back to line %llu "
			          "after a failed write (%s): refusing every "
			          "request from now on",
			    (unsigned long long)a->done_seq, strerror(errno));
			a->broken = true;
		}
		a->seq = a->done_seq;
		a->end = a->done_end;
		memcpy(a->hash, a->done_hash, sizeof(a->hash));
		/* the cut freed the space allocated ahead, too */
		if (!a->allocating)
			a->allocated = a->done_end;
		a->failing = false;
		moved = true;
	}
out:
	if (moved && a->waiting > 0)
		pthread_cond_broadcast(&a->moved);
}

int
kmsd_audit_append(struct kmsd_audit *a, const char *fields, size_t fn)
{
	char *text = NULL, h[65], seq[32];
	struct pending me = {0};
	size_t n, cap, got = 0;
	ssize_t k;
	off_t off, alloc_from = 0, alloc_to = 0;
	int r = 0, e = 0;
	uint64_t aseq = 0;
	char ahash[65];

	/* fields: the line's other members, "{...}", formatted by the
	 * caller outside the lock */
	if (fn < 2 || fields[0] != '{' || fields[fn - 1] != '}')
		return ward_errf(WARD_EINTERNAL, "audit line fields");
	cap = 32 + fn + 80 + strlen(HASH_TAIL) + 64 + 4;
	if ((text = malloc(cap)) == NULL)
		return ward_enomem();
	pthread_mutex_lock(&a->lock);
	/* Nothing takes a place while a failed write is being undone: it
	 * would chain from a line that is about to go. */
	while (a->failing && !a->broken)
		wait_moved(a);
	if (a->broken) {
		pthread_mutex_unlock(&a->lock);
		free(text);
		return ward_errf(WARD_EIO,
		    "audit log: unusable since a failed write (see the "
		    "server's log); restart the server");
	}
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
	/* Take the line's place in the chain and in the file. */
	off = a->end;
	a->end += (off_t)n;
	a->seq++;
	memcpy(a->hash, h, sizeof(h));
	me.seq = a->seq;
	me.end = a->end;
	memcpy(me.hash, h, sizeof(h));
	me.state = P_WRITING;
	/* me lives on this stack while linked: it is unlinked (resolved)
	 * before this function returns, below */
	if (a->tail != NULL)
		a->tail->next = &me;
	else
		a->head = &me; // cppcheck-suppress autoVariables
	a->tail = &me; // cppcheck-suppress autoVariables
	if (!a->allocating && a->allocated - a->end < KMSD_AUDIT_AHEAD) {
		/* this appender extends the space, after its line */
		a->allocating = true;
		alloc_from = a->allocated > a->end ? a->allocated : a->end;
		alloc_to = alloc_from + KMSD_AUDIT_STEP;
	}
	pthread_mutex_unlock(&a->lock);

	while (got < n) {
		k = pwrite(a->fd, text + got, n - got, off + (off_t)got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			e = k < 0 ? errno : ENOSPC;
			break;
		}
		got += (size_t)k;
	}
	free(text);

	pthread_mutex_lock(&a->lock);
	if (e == 0) {
		me.state = P_WRITTEN;
	} else {
		me.state = P_FAILED;
		a->failing = true;
	}
	settle(a);
	while (!me.resolved)
		wait_moved(a);
	if (!me.ok)
		r = e != 0 ? ward_errf(WARD_EIO, "audit log: %s", strerror(e))
		           : ward_errf(WARD_EIO,
		                 "audit log: a line before this one could not "
		                 "be written");
	else if (!a->anchoring &&
	    a->done_seq - a->anchored >= KMSD_AUDIT_ANCHOR_EVERY) {
		/* this appender anchors the last written line, after */
		a->anchoring = true;
		aseq = a->done_seq;
		memcpy(ahash, a->done_hash, sizeof(ahash));
	}
	pthread_mutex_unlock(&a->lock);
	if (aseq != 0) {
		if (anchor_write(a, aseq, ahash) != 0) {
			ward_warn("%s", ward_errmsg());
			ward_errclear();
		}
		pthread_mutex_lock(&a->lock);
		a->anchored = aseq; /* failed or not: retried 256 lines on */
		a->anchoring = false;
		pthread_mutex_unlock(&a->lock);
	}
	if (alloc_to != 0)
		preallocate(a, alloc_from, alloc_to);
	return r;
}

void
kmsd_audit_close(struct kmsd_audit *a)
{
	if (a == NULL)
		return;
	if (a->fd >= 0) {
		if (anchor_write(a, a->done_seq, a->done_hash) != 0)
			ward_warn("%s", ward_errmsg());
		close(a->fd);
	}
	sqlite3_finalize(a->anchor_st); /* a no-op on NULL */
	kmsd_db_close(a->db);
	kmsd_state_close(a->st);
	ward_cleanse(a->key, sizeof(a->key));
	ward_hmac_sha256_key_free(&a->mac);
	pthread_cond_destroy(&a->moved);
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
	off_t good = 0, torn = 0;

	*out = NULL;
	if ((r = kmsd_state_open(dir, &s)) != 0 ||
	    (r = audit_key(s, key)) != 0 || (r = kmsd_db_open(s, &db)) != 0 ||
	    (r = anchor_read(db, &aseq, ahash)) != 0 ||
	    (r = open_log(dir, O_RDONLY, &fd)) != 0)
		goto out;
	/* A torn tail (a server stopped mid-append) records no answered
	 * request: reported, not a failure; serve drops it when it starts. */
	r = scan_log(key, fd, &seq, hash, aseq, ahash, &seen, &good, &torn);
	if (r == 0 && aseq > 0 && !seen)
		r = ward_errf(WARD_EAUTH,
		    "audit log: line %llu, anchored in the database, is "
		    "missing or changed (the log was cut or replaced)",
		    (unsigned long long)aseq);
	*out = json_pack("{s:I, s:b, s:I, s:s}", "Lines", (json_int_t)seq,
	    "Verified", r == 0, "Anchor", (json_int_t)aseq, "Head", hash);
	if (torn > 0 && *out != NULL)
		json_object_set_new(*out, "TornTail", json_integer(torn));
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
