/*
 * The state directory: kms.db (SQLite, WAL, synchronous=FULL so that an
 * acknowledged write survives a killed server), root.key (32 random bytes,
 * mode 0600; every key's material and every principal's secret is stored
 * wrapped under it with AES-256-GCM bound to a label), audit.log, and
 * generation (the key-row cache's coherence counters, below).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "ward/crypto.h"

#include <openssl/sha.h>

#define DB_NAME "kms.db"
#define ROOT_NAME "root.key"
#define GEN_NAME "generation"
#define SCHEMA_VERSION "1"

static const char schema[] =
    "CREATE TABLE meta(k TEXT PRIMARY KEY, v TEXT NOT NULL);"
    "CREATE TABLE accounts(id TEXT PRIMARY KEY, created REAL NOT NULL);"
    "CREATE TABLE principals(akid TEXT PRIMARY KEY, account TEXT NOT NULL,"
    " name TEXT NOT NULL, arn TEXT NOT NULL UNIQUE, secret BLOB NOT NULL,"
    " token TEXT NOT NULL DEFAULT '', created REAL NOT NULL,"
    " UNIQUE(account, name));"
    "CREATE TABLE keys(id TEXT PRIMARY KEY, arn TEXT NOT NULL UNIQUE,"
    " account TEXT NOT NULL, state TEXT NOT NULL, created REAL NOT NULL,"
    " deletion_date REAL NOT NULL DEFAULT 0, pending_days INTEGER NOT NULL"
    " DEFAULT 0, description TEXT NOT NULL DEFAULT '', policy TEXT NOT"
    " NULL, rotation INTEGER NOT NULL DEFAULT 0, rotated REAL NOT NULL,"
    " version INTEGER NOT NULL);"
    "CREATE TABLE material(key_id TEXT NOT NULL, version INTEGER NOT NULL,"
    " wrapped BLOB NOT NULL, created REAL NOT NULL,"
    " PRIMARY KEY(key_id, version));"
    "CREATE TABLE aliases(account TEXT NOT NULL, name TEXT NOT NULL,"
    " key_id TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL,"
    " PRIMARY KEY(account, name));"
    "CREATE TABLE tags(key_id TEXT NOT NULL, k TEXT NOT NULL, v TEXT NOT"
    " NULL, PRIMARY KEY(key_id, k));"
    "CREATE TABLE grants(id TEXT PRIMARY KEY, key_id TEXT NOT NULL,"
    " name TEXT NOT NULL DEFAULT '', grantee TEXT NOT NULL, retiring TEXT"
    " NOT NULL DEFAULT '', operations TEXT NOT NULL, constraints TEXT NOT"
    " NULL DEFAULT '', issuer TEXT NOT NULL, created REAL NOT NULL,"
    " token TEXT NOT NULL UNIQUE);"
    "CREATE INDEX grants_key ON grants(key_id);"
    "CREATE TABLE audit_anchor(id INTEGER PRIMARY KEY CHECK(id = 1),"
    " seq INTEGER NOT NULL, hash TEXT NOT NULL);";

static void gen_settle(void);
static char *path_join(const char *dir, const char *name);

/*
 * Prepared statements, cached per thread and per connection: the server
 * runs the same few dozen statements on every request, and compiling them
 * each time was a quarter of its CPU. kmsd_prepare has sqlite3_prepare_v2's
 * signature; kmsd_finish resets a cached statement (and clears its
 * bindings, which may point at freed strings) instead of finalizing it. A
 * statement already in use (a nested call) is prepared afresh and
 * finalized as usual. kmsd_db_close finalizes this thread's statements of
 * that connection before closing it; connections are closed by the
 * thread that used them.
 */
#define STMT_CACHE 64
static __thread struct {
	sqlite3 *db;
	const char *sql;
	sqlite3_stmt *st;
	bool busy;
} stmts[STMT_CACHE];

int
kmsd_prepare(
    sqlite3 *db, const char *sql, int n, sqlite3_stmt **st, const char **tail)
{
	int rc, free_slot = -1;

	for (int i = 0; i < STMT_CACHE; i++) {
		if (stmts[i].db == db && stmts[i].sql == sql) {
			if (stmts[i].busy)
				return sqlite3_prepare_v2(db, sql, n, st, tail);
			stmts[i].busy = true;
			*st = stmts[i].st;
			return SQLITE_OK;
		}
		if (stmts[i].db == NULL && free_slot < 0)
			free_slot = i;
	}
	rc = sqlite3_prepare_v2(db, sql, n, st, tail);
	if (rc == SQLITE_OK && free_slot >= 0) {
		stmts[free_slot].db = db;
		stmts[free_slot].sql = sql;
		stmts[free_slot].st = *st;
		stmts[free_slot].busy = true;
	}
	return rc;
}

void
kmsd_finish(sqlite3_stmt *st)
{
	if (st != NULL) {
		int i;

		for (i = 0; i < STMT_CACHE && stmts[i].st != st; i++)
			;
		if (i < STMT_CACHE) {
			sqlite3_reset(st);
			sqlite3_clear_bindings(st);
			stmts[i].busy = false;
		} else {
			sqlite3_finalize(st);
		}
	}
	/* after the reset, which may end an autocommit write */
	gen_settle();
}

void
kmsd_db_close(sqlite3 *db)
{
	gen_settle();
	if (db == NULL)
		return;
	for (int i = 0; i < STMT_CACHE; i++)
		if (stmts[i].db == db) {
			sqlite3_finalize(stmts[i].st);
			memset(&stmts[i], 0, sizeof(stmts[i]));
		}
	sqlite3_close(db);
}

/*
 * The root key's cipher context, one per thread, so that unwrapping key
 * material needs no lock.
 */
static __thread struct ward_gcm tl_root;
static __thread uint64_t tl_root_serial; /* 0: none */
static uint64_t serials;

static int
root_gcm(struct kmsd_state *s, struct ward_gcm **g)
{
	int r;

	if (tl_root_serial != s->serial) {
		kmsd_store_thread_release();
		if ((r = ward_gcm_init(
		         &tl_root, s->root_key, KMSD_ROOT_KEY_LEN)) != 0)
			return r;
		tl_root_serial = s->serial;
	}
	*g = &tl_root;
	return 0;
}

/*
 * Key material is immutable per (key, version), so each thread keeps the
 * versions it used last, with the GCM contexts it set up under them (the
 * key schedule and GHASH table were 3% of a Decrypt); zeroed and freed by
 * kmsd_store_thread_release.
 */
#define MATERIAL_CACHE 32
static __thread struct {
	uint64_t serial; /* the state it came from; 0: empty */
	char id[KMSD_KEY_ID_LEN + 1];
	uint32_t version;
	uint8_t key[32];
	struct ward_gcm seal, open; /* set up on first use */
} materials[MATERIAL_CACHE];
static __thread unsigned material_next;

static void materials_release(void);
static void keys_release(void);

/*
 * The key-row cache and its coherence across processes. Decrypt and
 * GenerateDataKey read a key row on every request, and that SELECT (its
 * WAL read locks above all) was a sixth of the server's CPU. Every ward
 * process that opens the state maps DIR/generation, two counters:
 *
 *   begun  bumped by a commit that writes, before the commit is visible
 *          (SQLite's commit hook);
 *   done   bumped after it is visible or rolled back (the WAL hook, the
 *          rollback hook, or, for a commit that wrote no page and so calls
 *          neither, the next gen_settle on that thread).
 *
 * A thread fills its cache only while begun == done, tagging what it read
 * with that value, and uses an entry only while begun == done == its tag.
 * A row read then holds every commit counted in done and none later (a
 * later one bumps begun first), so an entry is used only while no commit
 * has started since it was read. A writer that dies between the two
 * leaves begun != done: every cache stays off (slower, never stale) until
 * kmsd_gen_even evens them, which `ward kms serve` tries at start and does
 * only when no other process has the state open (each holds a shared
 * flock on the file while it does; holding the write lock would not be
 * enough, as a commit is counted done after that lock is released).
 * Connections from kmsd_db_open carry the hooks; the only other
 * connection, kmsd_init's, runs before any state is open. Only init and
 * serve create the file: a process that found it missing (deleted under
 * a running server) and made a new one would count commits the server
 * never sees.
 */
struct kmsd_gen {
	uint64_t begun, done;
};
/* The counters are shared between processes through the mapping. */
_Static_assert(__atomic_always_lock_free(sizeof(uint64_t), 0),
    "the generation counters need lock-free 64-bit atomics");
/* The counters of the commit this thread's hook last began. */
static __thread struct kmsd_gen *tl_pending;

/* Count this thread's last commit done. Called only between SQLite
 * calls, when that commit has finished one way or the other. */
static void
gen_settle(void)
{
	if (tl_pending != NULL) {
		__atomic_add_fetch(&tl_pending->done, 1, __ATOMIC_SEQ_CST);
		tl_pending = NULL;
	}
}

static int
on_commit(void *arg)
{
	struct kmsd_gen *g = arg;

	gen_settle();
	__atomic_add_fetch(&g->begun, 1, __ATOMIC_SEQ_CST);
	tl_pending = g;
	return 0;
}

static void
on_rollback(void *arg)
{
	(void)arg;
	gen_settle();
}

/* Replaces SQLite's default WAL hook, so it checkpoints as that one did
 * (passively, from 1000 frames). */
static int
on_wal(void *arg, sqlite3 *db, const char *name, int frames)
{
	(void)arg;
	gen_settle();
	if (frames >= 1000)
		sqlite3_wal_checkpoint(db, name);
	return SQLITE_OK;
}

/* Whether caches may be used now, and the generation to tag with. */
static bool
gen_coherent(const struct kmsd_state *s, uint64_t *g)
{
	uint64_t done, begun;

	if (s->gen == NULL)
		return false;
	done = __atomic_load_n(&s->gen->done, __ATOMIC_SEQ_CST);
	begun = __atomic_load_n(&s->gen->begun, __ATOMIC_SEQ_CST);
	*g = done;
	return done == begun;
}

int
kmsd_gen_create(const char *dir)
{
	char *path = path_join(dir, GEN_NAME);
	struct stat sb;
	int fd = -1, r = 0;

	if (path == NULL)
		return ward_enomem();
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600)) <
	        0 ||
	    fstat(fd, &sb) != 0) {
		r = ward_errf(WARD_EIO, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(sb.st_mode)) {
		r = ward_errf(WARD_EIO, "%s: not a regular file", path);
		goto out;
	}
	/* extending only: a shorter file would fault its mappings */
	if (sb.st_size < (off_t)sizeof(struct kmsd_gen) &&
	    ftruncate(fd, sizeof(struct kmsd_gen)) != 0)
		r = ward_errf(WARD_EIO, "%s: %s", path, strerror(errno));
out:
	if (fd >= 0)
		close(fd);
	free(path);
	return r;
}

static int
gen_map(struct kmsd_state *s)
{
	char *path = path_join(s->dir, GEN_NAME);
	struct stat sb;
	void *m;
	int fd = -1, r = 0;

	if (path == NULL)
		return ward_enomem();
	if ((fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW)) < 0) {
		r = errno == ENOENT
		    ? ward_errf(WARD_EIO,
		          "%s is missing (it counts commits for the key "
		          "service's caches); `ward kms serve --state %s` "
		          "makes it",
		          path, s->dir)
		    : ward_errf(WARD_EIO, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &sb) != 0) {
		r = ward_errf(WARD_EIO, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(sb.st_mode) ||
	    sb.st_size < (off_t)sizeof(struct kmsd_gen)) {
		r = ward_errf(WARD_EIO, "%s: not a %zu-byte regular file", path,
		    sizeof(struct kmsd_gen));
		goto out;
	}
	/* held while the state is open: kmsd_gen_even checks for others */
	while (flock(fd, LOCK_SH) != 0)
		if (errno != EINTR) {
			r = ward_errf(
			    WARD_EIO, "%s: flock: %s", path, strerror(errno));
			goto out;
		}
	m = mmap(NULL, sizeof(struct kmsd_gen), PROT_READ | PROT_WRITE,
	    MAP_SHARED, fd, 0);
	if (m == MAP_FAILED) {
		r = ward_errf(WARD_EIO, "%s: mmap: %s", path, strerror(errno));
		goto out;
	}
	s->gen = m;
	s->gen_fd = fd;
	fd = -1;
out:
	if (fd >= 0)
		close(fd);
	free(path);
	return r;
}

void
kmsd_gen_even(struct kmsd_state *s)
{
	uint64_t begun, done;
	bool alone = flock(s->gen_fd, LOCK_EX | LOCK_NB) == 0;

	begun = __atomic_load_n(&s->gen->begun, __ATOMIC_SEQ_CST);
	done = __atomic_load_n(&s->gen->done, __ATOMIC_SEQ_CST);
	if (begun != done && !alone) {
		ward_warn("%s/" GEN_NAME ": a writer stopped mid-commit "
		          "(%llu begun, %llu done) and another ward process "
		          "has the state open; key caches stay off until "
		          "serve starts alone",
		    s->dir, (unsigned long long)begun,
		    (unsigned long long)done);
	} else if (begun != done) {
		/* No other process has the state open, so none is between
		 * a commit and its count. */
		ward_warn("%s/" GEN_NAME ": a writer stopped mid-commit "
		          "(%llu begun, %llu done); key caches were off, and "
		          "are on again",
		    s->dir, (unsigned long long)begun,
		    (unsigned long long)done);
		__atomic_store_n(&s->gen->done, begun, __ATOMIC_SEQ_CST);
	}
	if (alone)
		flock(s->gen_fd, LOCK_SH);
}

void
kmsd_store_thread_release(void)
{
	gen_settle();
	keys_release();
	materials_release();
	ward_gcm_free(&tl_root);
	memset(&tl_root, 0, sizeof(tl_root));
	tl_root_serial = 0;
}

int
kmsd_db_err(sqlite3 *db, const char *what)
{
	return ward_errf(
	    WARD_EIO, "database: %s: %s", what, sqlite3_errmsg(db));
}

static char *
path_join(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);

	if (p != NULL)
		snprintf(p, n, "%s/%s", dir, name);
	return p;
}

int
kmsd_db_open(const struct kmsd_state *s, sqlite3 **out)
{
	int r = 0;
	char *path = path_join(s->dir, DB_NAME);
	sqlite3 *db = NULL;

	*out = NULL;
	if (path == NULL)
		return ward_enomem();
	if ((r = ward_lazy_load(WARD_LAZY_SQLITE)) != 0)
		goto out;
	if (sqlite3_open_v2(path, &db,
	        SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
	        NULL) != SQLITE_OK) {
		r = ward_errf(WARD_EIO, "%s: %s", path,
		    db != NULL ? sqlite3_errmsg(db) : "cannot open");
		goto out;
	}
	sqlite3_busy_timeout(db, 10000);
	if (sqlite3_exec(db,
	        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
	        " PRAGMA foreign_keys=ON;",
	        NULL, NULL, NULL) != SQLITE_OK) {
		r = kmsd_db_err(db, "setting up");
		goto out;
	}
	if (s->gen != NULL) {
		sqlite3_commit_hook(db, on_commit, s->gen);
		sqlite3_rollback_hook(db, on_rollback, s->gen);
		sqlite3_wal_hook(db, on_wal, s->gen);
	}
	*out = db;
	db = NULL;
out:
	kmsd_db_close(db);
	free(path);
	return r;
}

int
kmsd_begin(sqlite3 *db)
{
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return kmsd_db_err(db, "begin");
	return 0;
}

int
kmsd_commit(sqlite3 *db)
{
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		int r = kmsd_db_err(db, "commit");
		kmsd_rollback(db);
		return r;
	}
	gen_settle();
	return 0;
}

void
kmsd_rollback(sqlite3 *db)
{
	if (sqlite3_get_autocommit(db) == 0)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	gen_settle();
}

int
kmsd_wrap(struct kmsd_state *s, const char *label, const uint8_t *pt, size_t n,
    struct ward_buf *out)
{
	int r;
	uint8_t iv[WARD_GCM_IV_LEN], tag[WARD_GCM_TAG_LEN];
	struct ward_gcm *g;

	out->len = 0;
	if ((r = ward_random(iv, sizeof(iv))) != 0 ||
	    (r = ward_buf_reserve(out, sizeof(iv) + n + sizeof(tag))) != 0)
		return r;
	memcpy(out->p, iv, sizeof(iv));
	if ((r = root_gcm(s, &g)) != 0 ||
	    (r = ward_gcm_seal(g, iv, (const uint8_t *)label, strlen(label), pt,
	         n, out->p + sizeof(iv), tag)) != 0)
		return r;
	memcpy(out->p + sizeof(iv) + n, tag, sizeof(tag));
	out->len = sizeof(iv) + n + sizeof(tag);
	return 0;
}

int
kmsd_unwrap(struct kmsd_state *s, const char *label, const uint8_t *ct,
    size_t n, struct ward_buf *out)
{
	int r;
	size_t m;
	struct ward_gcm *g;

	out->len = 0;
	out->secret = true;
	if (n < WARD_GCM_IV_LEN + WARD_GCM_TAG_LEN)
		return ward_errf(
		    WARD_EFORMAT, "database: wrapped %s is short", label);
	m = n - WARD_GCM_IV_LEN - WARD_GCM_TAG_LEN;
	if ((r = ward_buf_reserve(out, m + 1)) != 0)
		return r;
	if ((r = root_gcm(s, &g)) == 0)
		r = ward_gcm_open(g, ct, (const uint8_t *)label, strlen(label),
		    ct + WARD_GCM_IV_LEN, m, ct + n - WARD_GCM_TAG_LEN, out->p);
	if (r != 0)
		return ward_err_prefix(
		    r, "database: %s does not open under root.key", label);
	out->len = m;
	return 0;
}

static int
read_root(const char *dir, uint8_t key[KMSD_ROOT_KEY_LEN])
{
	int r = 0, fd;
	char *path = path_join(dir, ROOT_NAME);
	struct stat st;
	ssize_t got;

	if (path == NULL)
		return ward_enomem();
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
		r = ward_errf(WARD_EIO,
		    "%s: %s (is %s a state directory "
		    "made by 'ward kms init'?)",
		    path, strerror(errno), dir);
		goto out;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		r = ward_errf(WARD_EIO, "%s: not a regular file", path);
		goto out;
	}
	if ((st.st_mode & 077) != 0) {
		r = ward_errf(WARD_EUNSAFE,
		    "%s: mode %04o lets others read it; chmod 600 it", path,
		    (unsigned)(st.st_mode & 07777));
		goto out;
	}
	got = read(fd, key, KMSD_ROOT_KEY_LEN);
	if (got != KMSD_ROOT_KEY_LEN || st.st_size != KMSD_ROOT_KEY_LEN)
		r = ward_errf(WARD_EFORMAT, "%s: not a %d-byte key", path,
		    KMSD_ROOT_KEY_LEN);
out:
	if (fd >= 0)
		close(fd);
	free(path);
	return r;
}

static void
material_slot_release(unsigned i)
{
	ward_gcm_free(&materials[i].seal);
	ward_gcm_free(&materials[i].open);
	ward_cleanse(&materials[i], sizeof(materials[i]));
}

static void
materials_release(void)
{
	for (unsigned i = 0; i < MATERIAL_CACHE; i++)
		material_slot_release(i);
}

static int
meta_get(sqlite3 *db, const char *k, char *v, size_t n)
{
	sqlite3_stmt *st = NULL;
	int r = 0;

	if (kmsd_prepare(db, "SELECT v FROM meta WHERE k = ?", -1, &st, NULL) !=
	    SQLITE_OK)
		return kmsd_db_err(db, "reading meta");
	sqlite3_bind_text(st, 1, k, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW)
		r = ward_errf(WARD_EFORMAT, "database: no %s in meta", k);
	else
		snprintf(v, n, "%s", (const char *)sqlite3_column_text(st, 0));
	kmsd_finish(st);
	return r;
}

int
kmsd_state_open(const char *dir, struct kmsd_state **out)
{
	int r;
	struct kmsd_state *s;
	sqlite3 *db = NULL;
	char ver[16];

	*out = NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return ward_enomem();
	s->serial = __atomic_add_fetch(&serials, 1, __ATOMIC_RELAXED);
	s->gen_fd = -1;
	if ((s->dir = strdup(dir)) == NULL) {
		r = ward_enomem();
		goto out;
	}
	if ((r = read_root(dir, s->root_key)) != 0 || (r = gen_map(s)) != 0)
		goto out;
	if ((r = kmsd_db_open(s, &db)) != 0)
		goto out;
	if ((r = meta_get(db, "schema", ver, sizeof(ver))) != 0 ||
	    (r = meta_get(db, "region", s->region, sizeof(s->region))) != 0)
		goto out;
	if (strcmp(ver, SCHEMA_VERSION) != 0) {
		r = ward_errf(WARD_EUNSUPPORTED,
		    "%s: state schema %s, this ward reads %s", dir, ver,
		    SCHEMA_VERSION);
		goto out;
	}
	*out = s;
	s = NULL;
out:
	kmsd_db_close(db);
	kmsd_state_close(s);
	return r;
}

void
kmsd_state_close(struct kmsd_state *s)
{
	if (s == NULL)
		return;
	if (tl_root_serial == s->serial)
		kmsd_store_thread_release();
	if (tl_pending != NULL && tl_pending == s->gen)
		gen_settle();
	if (s->gen != NULL)
		munmap(s->gen, sizeof(*s->gen));
	if (s->gen_fd >= 0)
		close(s->gen_fd);
	ward_cleanse(s->root_key, sizeof(s->root_key));
	free(s->dir);
	free(s);
}

/* Random characters from an alphabet (rejection sampling, no bias). */
static int
random_chars(char *out, size_t n, const char *alphabet)
{
	size_t m = strlen(alphabet), i = 0;
	uint8_t b[64];
	int r;

	while (i < n) {
		if ((r = ward_random(b, sizeof(b))) != 0)
			return r;
		for (size_t j = 0; j < sizeof(b) && i < n; j++)
			if (b[j] < 256 - 256 % m)
				out[i++] = alphabet[b[j] % m];
	}
	out[n] = '\0';
	return 0;
}

static int
valid_name(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > KMSD_NAME_MAX)
		return 0;
	/* IAM user names: alphanumerics and +=,.@_- */
	return strspn(name,
	           "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV"
	           "WXYZ0123456789+=,.@_-") == n;
}

static int
valid_account(const char *a)
{
	return strlen(a) == KMSD_ACCOUNT_LEN &&
	    strspn(a, "0123456789") == KMSD_ACCOUNT_LEN;
}

int
kmsd_principal_create(struct kmsd_state *s, sqlite3 *db, const char *account,
    const char *name, bool session, json_t **out)
{
	int r;
	char acct[KMSD_ACCOUNT_LEN + 1], akid[21], secret[41],
	    arn[KMSD_ARN_MAX], label[64], token[129] = "", token_hash[65] = "";
	struct ward_buf wrapped = {0};
	sqlite3_stmt *st = NULL;
	double now = (double)time(NULL);

	*out = NULL;
	if (!valid_name(name))
		return ward_errf(WARD_EUSAGE,
		    "principal name '%s': use 1 to %d of A-Z a-z 0-9 +=,.@_-",
		    ward_quotes(name), KMSD_NAME_MAX);
	if (account != NULL) {
		if (!valid_account(account))
			return ward_errf(WARD_EUSAGE,
			    "account '%s' is not 12 digits",
			    ward_quotes(account));
		snprintf(acct, sizeof(acct), "%s", account);
	} else {
		if ((r = random_chars(acct, KMSD_ACCOUNT_LEN, "0123456789")) !=
		    0)
			return r;
		acct[0] = (char)('1' + (acct[0] - '0') % 9);
	}
	if ((r = random_chars(
	         akid + 4, 16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")) != 0 ||
	    (r = random_chars(secret, 40,
	         "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	         "0123456789+/")) != 0)
		goto out;
	memcpy(akid, session ? "ASIA" : "AKIA", 4);
	if (session) {
		uint8_t d[32];

		if ((r = random_chars(token, 128,
		         "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		         "0123456789")) != 0)
			goto out;
		SHA256((const uint8_t *)token, 128, d);
		ward_hex_encode(d, sizeof(d), token_hash);
	}
	snprintf(arn, sizeof(arn), "arn:aws:iam::%s:user/%s", acct, name);
	snprintf(label, sizeof(label), "principal:%s", akid);
	if ((r = kmsd_wrap(s, label, (const uint8_t *)secret, 40, &wrapped)) !=
	    0)
		goto out;
	if ((r = kmsd_begin(db)) != 0)
		goto out;
	if (kmsd_prepare(db,
	        "INSERT OR IGNORE INTO accounts(id, created) VALUES (?, ?)", -1,
	        &st, NULL) != SQLITE_OK) {
		r = kmsd_db_err(db, "adding account");
		goto out;
	}
	sqlite3_bind_text(st, 1, acct, -1, SQLITE_STATIC);
	sqlite3_bind_double(st, 2, now);
	if (sqlite3_step(st) != SQLITE_DONE) {
		r = kmsd_db_err(db, "adding account");
		goto out;
	}
	kmsd_finish(st);
	st = NULL;
	if (kmsd_prepare(db,
	        "INSERT INTO principals(akid, account, name, arn, secret,"
	        " created, token) VALUES (?, ?, ?, ?, ?, ?, ?)",
	        -1, &st, NULL) != SQLITE_OK) {
		r = kmsd_db_err(db, "adding principal");
		goto out;
	}
	sqlite3_bind_text(st, 1, akid, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, acct, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, arn, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 5, wrapped.p, (int)wrapped.len, SQLITE_STATIC);
	sqlite3_bind_double(st, 6, now);
	sqlite3_bind_text(st, 7, token_hash, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE) {
		if (sqlite3_extended_errcode(db) == SQLITE_CONSTRAINT_UNIQUE)
			r = ward_errf(WARD_EEXIST,
			    "account %s already has a principal named %s", acct,
			    name);
		else
			r = kmsd_db_err(db, "adding principal");
		goto out;
	}
	if ((r = kmsd_commit(db)) != 0)
		goto out;
	*out = json_pack("{s:s, s:s, s:s, s:s, s:s}", "AccountId", acct,
	    "AccessKeyId", akid, "SecretAccessKey", secret, "Region", s->region,
	    "Arn", arn);
	if (*out != NULL && session &&
	    json_object_set_new(*out, "SessionToken", json_string(token)) !=
	        0) {
		json_decref(*out);
		*out = NULL;
	}
	if (*out == NULL)
		r = ward_enomem();
out:
	kmsd_finish(st);
	kmsd_rollback(db);
	ward_cleanse(secret, sizeof(secret));
	ward_cleanse(token, sizeof(token));
	ward_buf_free(&wrapped);
	return r;
}

int
kmsd_principal_lookup(struct kmsd_state *s, sqlite3 *db, const char *akid,
    struct kmsd_principal *p, struct ward_buf *secret, char token_sha256[65])
{
	sqlite3_stmt *st = NULL;
	int r = 0, rc;
	char label[64];

	memset(p, 0, sizeof(*p));
	if (kmsd_prepare(db,
	        "SELECT account, name, arn, secret, token FROM principals"
	        " WHERE akid = ?",
	        -1, &st, NULL) != SQLITE_OK)
		return kmsd_db_err(db, "reading principal");
	sqlite3_bind_text(st, 1, akid, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_DONE) {
		r = -WARD_EAUTH;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		r = kmsd_db_err(db, "reading principal");
		goto out;
	}
	snprintf(p->account, sizeof(p->account), "%s",
	    (const char *)sqlite3_column_text(st, 0));
	snprintf(p->name, sizeof(p->name), "%s",
	    (const char *)sqlite3_column_text(st, 1));
	snprintf(p->arn, sizeof(p->arn), "%s",
	    (const char *)sqlite3_column_text(st, 2));
	snprintf(p->akid, sizeof(p->akid), "%s", akid);
	snprintf(
	    token_sha256, 65, "%s", (const char *)sqlite3_column_text(st, 4));
	snprintf(label, sizeof(label), "principal:%s", akid);
	r = kmsd_unwrap(s, label, sqlite3_column_blob(st, 3),
	    (size_t)sqlite3_column_bytes(st, 3), secret);
out:
	kmsd_finish(st);
	return r;
}

void
kmsd_key_free(struct kmsd_key *k)
{
	free(k->description);
	free(k->policy);
	k->description = k->policy = NULL;
}

static char *
col_strdup(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return strdup(t != NULL ? (const char *)t : "");
}

int
kmsd_key_get(sqlite3 *db, const char *id, struct kmsd_key *k)
{
	sqlite3_stmt *st = NULL;
	int r = 0, rc;

	memset(k, 0, sizeof(*k));
	if (kmsd_prepare(db,
	        "SELECT id, arn, account, state, created, deletion_date,"
	        " pending_days, description, policy, rotation, rotated,"
	        " version FROM keys WHERE id = ?",
	        -1, &st, NULL) != SQLITE_OK)
		return kmsd_db_err(db, "reading key");
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_DONE) {
		r = -WARD_EKEY;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		r = kmsd_db_err(db, "reading key");
		goto out;
	}
	snprintf(k->id, sizeof(k->id), "%s",
	    (const char *)sqlite3_column_text(st, 0));
	snprintf(k->arn, sizeof(k->arn), "%s",
	    (const char *)sqlite3_column_text(st, 1));
	snprintf(k->account, sizeof(k->account), "%s",
	    (const char *)sqlite3_column_text(st, 2));
	snprintf(k->state, sizeof(k->state), "%s",
	    (const char *)sqlite3_column_text(st, 3));
	k->created = sqlite3_column_double(st, 4);
	k->deletion_date = sqlite3_column_double(st, 5);
	k->pending_days = sqlite3_column_int(st, 6);
	k->description = col_strdup(st, 7);
	k->policy = col_strdup(st, 8);
	k->rotation = sqlite3_column_int(st, 9);
	k->rotated = sqlite3_column_double(st, 10);
	k->version = (uint32_t)sqlite3_column_int64(st, 11);
	if (k->description == NULL || k->policy == NULL) {
		kmsd_key_free(k);
		r = ward_enomem();
	}
out:
	kmsd_finish(st);
	return r;
}

/*
 * The key rows this thread read last, each tagged with the generation it
 * was read in (see struct kmsd_gen); zeroed by kmsd_store_thread_release.
 */
#define KEY_CACHE 16
static __thread struct {
	uint64_t serial; /* the state it came from; 0: empty */
	uint64_t tag;
	struct kmsd_key k;
} keys[KEY_CACHE];
static __thread unsigned key_next;

static void
keys_release(void)
{
	for (unsigned i = 0; i < KEY_CACHE; i++) {
		kmsd_key_free(&keys[i].k);
		memset(&keys[i], 0, sizeof(keys[i]));
	}
	key_next = 0;
}

/* A deep copy; -WARD_ENOMEM leaves *to empty. */
static int
key_copy(const struct kmsd_key *from, struct kmsd_key *to)
{
	*to = *from;
	to->description =
	    from->description != NULL ? strdup(from->description) : NULL;
	to->policy = from->policy != NULL ? strdup(from->policy) : NULL;
	if ((from->description != NULL && to->description == NULL) ||
	    (from->policy != NULL && to->policy == NULL)) {
		kmsd_key_free(to);
		return ward_enomem();
	}
	return 0;
}

int
kmsd_key_get_cached(
    const struct kmsd_state *s, sqlite3 *db, const char *id, struct kmsd_key *k)
{
	uint64_t g = 0;
	bool coherent;
	int r;

	gen_settle();
	/* Inside a transaction this connection's own writes may not be
	 * committed yet: read them. */
	coherent = sqlite3_get_autocommit(db) != 0 && gen_coherent(s, &g);
	if (coherent)
		for (unsigned i = 0; i < KEY_CACHE; i++)
			if (keys[i].serial == s->serial && keys[i].tag == g &&
			    strcmp(keys[i].k.id, id) == 0 &&
			    key_copy(&keys[i].k, k) == 0)
				return 0;
	ward_errclear();
	if ((r = kmsd_key_get(db, id, k)) != 0 || !coherent)
		return r;
	/* Keep a copy: in the slot of an older read of this key, else in
	 * the oldest slot. */
	{
		unsigned i;

		for (i = 0; i < KEY_CACHE; i++)
			if (keys[i].serial == s->serial &&
			    strcmp(keys[i].k.id, id) == 0)
				break;
		if (i == KEY_CACHE)
			i = key_next++ % KEY_CACHE;

		kmsd_key_free(&keys[i].k);
		memset(&keys[i], 0, sizeof(keys[i]));
		if (key_copy(k, &keys[i].k) == 0) {
			keys[i].serial = s->serial;
			keys[i].tag = g;
		} else {
			ward_errclear();
		}
	}
	return 0;
}

int
kmsd_key_insert(sqlite3 *db, const struct kmsd_key *k)
{
	static const char sql[] =
	    "INSERT INTO keys(arn, account, state, created, deletion_date,"
	    " pending_days, description, policy, rotation, rotated, version,"
	    " id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
	sqlite3_stmt *st = NULL;
	int r = 0;

	if (kmsd_prepare(db, sql, -1, &st, NULL) != SQLITE_OK)
		return kmsd_db_err(db, "writing key");
	sqlite3_bind_text(st, 1, k->arn, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, k->account, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, k->state, -1, SQLITE_STATIC);
	sqlite3_bind_double(st, 4, k->created);
	sqlite3_bind_double(st, 5, k->deletion_date);
	sqlite3_bind_int(st, 6, k->pending_days);
	sqlite3_bind_text(st, 7, k->description, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, k->policy, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 9, k->rotation);
	sqlite3_bind_double(st, 10, k->rotated);
	sqlite3_bind_int64(st, 11, k->version);
	sqlite3_bind_text(st, 12, k->id, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		r = kmsd_db_err(db, "writing key");
	kmsd_finish(st);
	return r;
}

/*
 * One column (or one group that changes together) at a time: handlers
 * read a key, check, then write only what they change, so two requests
 * on one key never undo each other's acknowledged change.
 */
static const char *const update_sql[] = {
    /* Enable/Disable never touch a key pending deletion. */
    [KMSD_SET_STATE] = "UPDATE keys SET state = ?2 WHERE id = ?1"
                       " AND state <> 'PendingDeletion'",
    /* Schedule (?5 = 0) only from not pending, cancel (?5 = 1) only
     * from pending. */
    [KMSD_SET_DELETION] = "UPDATE keys SET state = ?2, deletion_date = ?3,"
                          " pending_days = ?4 WHERE id = ?1"
                          " AND (state = 'PendingDeletion') = ?5",
    [KMSD_SET_DESCRIPTION] = "UPDATE keys SET description = ?2 WHERE id = ?1",
    [KMSD_SET_POLICY] = "UPDATE keys SET policy = ?2 WHERE id = ?1",
    [KMSD_SET_ROTATION] = "UPDATE keys SET rotation = ?2 WHERE id = ?1",
    [KMSD_SET_VERSION] = "UPDATE keys SET version = ?2, rotated = ?3"
                         " WHERE id = ?1 AND version = ?4",
};

int
kmsd_key_update(sqlite3 *db, const struct kmsd_key *k, enum kmsd_key_set what,
    uint32_t old_version, bool *changed)
{
	sqlite3_stmt *st = NULL;
	int r = 0;

	if (kmsd_prepare(db, update_sql[what], -1, &st, NULL) != SQLITE_OK)
		return kmsd_db_err(db, "writing key");
	sqlite3_bind_text(st, 1, k->id, -1, SQLITE_STATIC);
	switch (what) {
	case KMSD_SET_STATE:
		sqlite3_bind_text(st, 2, k->state, -1, SQLITE_STATIC);
		break;
	case KMSD_SET_DELETION:
		sqlite3_bind_text(st, 2, k->state, -1, SQLITE_STATIC);
		sqlite3_bind_double(st, 3, k->deletion_date);
		sqlite3_bind_int(st, 4, k->pending_days);
		sqlite3_bind_int(st, 5, old_version != 0);
		break;
	case KMSD_SET_DESCRIPTION:
		sqlite3_bind_text(st, 2, k->description, -1, SQLITE_STATIC);
		break;
	case KMSD_SET_POLICY:
		sqlite3_bind_text(st, 2, k->policy, -1, SQLITE_STATIC);
		break;
	case KMSD_SET_ROTATION:
		sqlite3_bind_int(st, 2, k->rotation);
		break;
	case KMSD_SET_VERSION:
		sqlite3_bind_int64(st, 2, k->version);
		sqlite3_bind_double(st, 3, k->rotated);
		sqlite3_bind_int64(st, 4, old_version);
		break;
	}
	if (sqlite3_step(st) != SQLITE_DONE)
		r = kmsd_db_err(db, "writing key");
	else if (changed != NULL)
		*changed = sqlite3_changes(db) > 0;
	kmsd_finish(st);
	return r;
}

int
kmsd_key_delete(sqlite3 *db, const char *id)
{
	static const char *const sql[] = {
	    "DELETE FROM keys WHERE id = ?",
	    "DELETE FROM material WHERE key_id = ?",
	    "DELETE FROM aliases WHERE key_id = ?",
	    "DELETE FROM tags WHERE key_id = ?",
	    "DELETE FROM grants WHERE key_id = ?",
	};
	sqlite3_stmt *st = NULL;

	for (size_t i = 0; i < sizeof(sql) / sizeof(sql[0]); i++) {
		if (kmsd_prepare(db, sql[i], -1, &st, NULL) != SQLITE_OK)
			return kmsd_db_err(db, "deleting key");
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE) {
			kmsd_finish(st);
			return kmsd_db_err(db, "deleting key");
		}
		kmsd_finish(st);
	}
	return 0;
}

static void
material_label(char *out, size_t n, const char *id, uint32_t v)
{
	snprintf(out, n, "material:%s:%u", id, v);
}

int
kmsd_material_gcm(struct kmsd_state *s, sqlite3 *db, const char *id, uint32_t v,
    int dir, struct ward_gcm **g)
{
	sqlite3_stmt *st = NULL;
	struct ward_buf pt = {.secret = true};
	struct ward_gcm *c;
	char label[96];
	int r = 0;
	unsigned slot = MATERIAL_CACHE;

	*g = NULL;
	if (dir != WARD_GCM_SEAL && dir != WARD_GCM_OPEN)
		return ward_errf(WARD_EINTERNAL, "material: direction %d", dir);
	for (unsigned i = 0; i < MATERIAL_CACHE; i++)
		if (materials[i].serial == s->serial &&
		    materials[i].version == v &&
		    strcmp(materials[i].id, id) == 0) {
			slot = i;
			break;
		}
	if (slot == MATERIAL_CACHE) {
		if (kmsd_prepare(db,
		        "SELECT wrapped FROM material "
		        "WHERE key_id = ? AND version = ?",
		        -1, &st, NULL) != SQLITE_OK)
			return kmsd_db_err(db, "reading key material");
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, v);
		if (sqlite3_step(st) != SQLITE_ROW) {
			r = -WARD_EKEY;
			goto out;
		}
		material_label(label, sizeof(label), id, v);
		if ((r = kmsd_unwrap(s, label, sqlite3_column_blob(st, 0),
		         (size_t)sqlite3_column_bytes(st, 0), &pt)) != 0)
			goto out;
		if (pt.len != 32) {
			r = ward_errf(WARD_EFORMAT,
			    "database: key material of %s is %zu bytes", id,
			    pt.len);
			goto out;
		}
		slot = material_next++ % MATERIAL_CACHE;
		material_slot_release(slot);
		materials[slot].serial = s->serial;
		snprintf(
		    materials[slot].id, sizeof(materials[slot].id), "%s", id);
		materials[slot].version = v;
		memcpy(materials[slot].key, pt.p, 32);
	}
	c = dir == WARD_GCM_SEAL ? &materials[slot].seal
	                         : &materials[slot].open;
	if (c->enc == NULL && c->dec == NULL &&
	    (r = ward_gcm_init_dir(c, materials[slot].key, 32, dir)) != 0)
		goto out;
	*g = c;
out:
	kmsd_finish(st);
	ward_buf_free(&pt);
	return r;
}

int
kmsd_material_add(struct kmsd_state *s, sqlite3 *db, const char *id, uint32_t v)
{
	uint8_t key[32];
	struct ward_buf w = {0};
	sqlite3_stmt *st = NULL;
	char label[96];
	int r;

	if ((r = ward_random(key, sizeof(key))) != 0)
		goto out;
	material_label(label, sizeof(label), id, v);
	if ((r = kmsd_wrap(s, label, key, sizeof(key), &w)) != 0)
		goto out;
	if (kmsd_prepare(db,
	        "INSERT INTO material(key_id, version, wrapped, created)"
	        " VALUES (?, ?, ?, ?)",
	        -1, &st, NULL) != SQLITE_OK) {
		r = kmsd_db_err(db, "writing key material");
		goto out;
	}
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, v);
	sqlite3_bind_blob(st, 3, w.p, (int)w.len, SQLITE_STATIC);
	sqlite3_bind_double(st, 4, (double)time(NULL));
	if (sqlite3_step(st) != SQLITE_DONE)
		r = kmsd_db_err(db, "writing key material");
out:
	kmsd_finish(st);
	ward_cleanse(key, sizeof(key));
	ward_buf_free(&w);
	return r;
}

/* ------------------------------------------------------------------ */

int
ward_kmsd_init(const char *dir, const char *region, json_t **out)
{
	int r = 0, fd = -1;
	char *rootp = NULL, *dbp = NULL;
	uint8_t key[KMSD_ROOT_KEY_LEN];
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	struct kmsd_state *s = NULL;
	struct stat sb;

	*out = NULL;
	if (region == NULL)
		region = WARD_KMSD_DEFAULT_REGION;
	if (strlen(region) == 0 || strlen(region) > 25 ||
	    strspn(region, "abcdefghijklmnopqrstuvwxyz0123456789-") !=
	        strlen(region))
		return ward_errf(WARD_EUSAGE,
		    "region '%s' is not like "
		    "us-east-1",
		    ward_quotes(region));
	/* before anything is made: without libsqlite3 nothing is left */
	if ((r = ward_lazy_load(WARD_LAZY_SQLITE)) != 0)
		return r;
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return ward_errf(WARD_EIO, "%s: %s", dir, strerror(errno));
	if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
		return ward_errf(WARD_EIO, "%s: not a directory", dir);
	rootp = path_join(dir, ROOT_NAME);
	dbp = path_join(dir, DB_NAME);
	if (rootp == NULL || dbp == NULL) {
		r = ward_enomem();
		goto out;
	}
	if (access(dbp, F_OK) == 0 || access(rootp, F_OK) == 0) {
		r = ward_errf(WARD_EEXIST,
		    "%s already holds a key service "
		    "state; use another directory",
		    dir);
		goto out;
	}
	if ((r = ward_random(key, sizeof(key))) != 0)
		goto out;
	if ((fd = open(rootp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) <
	    0) {
		r = ward_errf(WARD_EIO, "%s: %s", rootp, strerror(errno));
		goto out;
	}
	if (write(fd, key, sizeof(key)) != (ssize_t)sizeof(key) ||
	    fsync(fd) != 0) {
		r = ward_errf(WARD_EIO, "%s: %s", rootp, strerror(errno));
		goto out;
	}
	if (sqlite3_open_v2(dbp, &db,
	        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
	        NULL) != SQLITE_OK) {
		r = ward_errf(WARD_EIO, "%s: %s", dbp,
		    db != NULL ? sqlite3_errmsg(db) : "cannot create");
		goto out;
	}
	chmod(dbp, 0600);
	if (sqlite3_exec(db, "PRAGMA journal_mode=WAL; BEGIN;", NULL, NULL,
	        NULL) != SQLITE_OK ||
	    sqlite3_exec(db, schema, NULL, NULL, NULL) != SQLITE_OK) {
		r = kmsd_db_err(db, "creating schema");
		goto out;
	}
	if (kmsd_prepare(db,
	        "INSERT INTO meta(k, v) VALUES ('schema', ?), ('region', ?)",
	        -1, &st, NULL) != SQLITE_OK) {
		r = kmsd_db_err(db, "writing meta");
		goto out;
	}
	sqlite3_bind_text(st, 1, SCHEMA_VERSION, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, region, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE ||
	    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		r = kmsd_db_err(db, "writing meta");
		goto out;
	}
	kmsd_finish(st);
	st = NULL;
	kmsd_db_close(db);
	db = NULL;
	if ((r = kmsd_gen_create(dir)) != 0 ||
	    (r = kmsd_state_open(dir, &s)) != 0 ||
	    (r = kmsd_db_open(s, &db)) != 0)
		goto out;
	if ((r = kmsd_principal_create(s, db, NULL, "admin", false, out)) != 0)
		goto out;
	{
		/* An empty audit log, so the directory is whole from the
		 * start. */
		char *lp = path_join(dir, "audit.log");
		int lfd = lp != NULL
		    ? open(lp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)
		    : -1;
		if (lfd < 0) {
			r = ward_errf(
			    WARD_EIO, "%s/audit.log: %s", dir, strerror(errno));
			json_decref(*out);
			*out = NULL;
		} else {
			close(lfd);
		}
		free(lp);
	}
out:
	if (fd >= 0)
		close(fd);
	kmsd_finish(st);
	kmsd_db_close(db);
	kmsd_state_close(s);
	ward_cleanse(key, sizeof(key));
	if (r != 0 && r != -WARD_EEXIST && rootp != NULL) {
		/* Leave nothing half-made behind. */
		unlink(rootp);
		{
			char *gp = path_join(dir, GEN_NAME);

			if (gp != NULL)
				unlink(gp);
			free(gp);
		}
		if (dbp != NULL) {
			char wal[4096];
			unlink(dbp);
			snprintf(wal, sizeof(wal), "%s-wal", dbp);
			unlink(wal);
			snprintf(wal, sizeof(wal), "%s-shm", dbp);
			unlink(wal);
		}
	}
	free(rootp);
	free(dbp);
	return r;
}

int
ward_kmsd_add_principal(const char *dir, const char *account, const char *name,
    bool session, json_t **out)
{
	int r;
	struct kmsd_state *s = NULL;
	sqlite3 *db = NULL;

	*out = NULL;
	if ((r = kmsd_state_open(dir, &s)) != 0 ||
	    (r = kmsd_db_open(s, &db)) != 0)
		goto out;
	r = kmsd_principal_create(s, db, account, name, session, out);
out:
	kmsd_db_close(db);
	kmsd_state_close(s);
	return r;
}
