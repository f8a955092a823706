/* The key service's ciphertext blobs (src/kmsd/blob.c): a round trip,
 * every header byte and the context bound, and the IVs: distinct within a
 * thread, across a pool refill, across threads, and after fork (a child
 * must not repeat its parent's next IVs). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kmsd/internal.h"
#include "testutil.h"

#define ID "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
#define IV_AT 23 /* magic (3), key id (16), version (4) */
#define N_IVS 1000 /* more than a 4 KiB pool holds (341) */

static uint8_t key[32];

static void
gcm(struct ward_gcm *g)
{
	memset(key, 0x5a, sizeof(key));
	ASSERT_OK(ward_gcm_init(g, key, sizeof(key)));
}

static void
seal_iv(struct ward_gcm *g, uint8_t iv[WARD_GCM_IV_LEN])
{
	struct ward_buf b = {0};

	ASSERT_OK(kmsd_blob_seal(ID, 7, g, NULL, (const uint8_t *)"pt", 2, &b));
	memcpy(iv, b.p + IV_AT, WARD_GCM_IV_LEN);
	ward_buf_free(&b);
}

static void
test_round_trip(void **state)
{
	struct ward_gcm g;
	struct ward_buf b = {0}, pt = {0};
	struct ward_ec ec = {0};
	char id[KMSD_KEY_ID_LEN + 1];
	uint32_t v;

	(void)state;
	gcm(&g);
	ASSERT_OK(ward_ec_add(&ec, "purpose", 7, "test", 4));
	ASSERT_OK(
	    kmsd_blob_seal(ID, 7, &g, &ec, (const uint8_t *)"secret", 6, &b));
	assert_int_equal(b.len, KMSD_BLOB_OVERHEAD + 6);
	ASSERT_OK(kmsd_blob_peek(b.p, b.len, id, &v));
	assert_string_equal(id, ID);
	assert_int_equal(v, 7);
	ASSERT_OK(kmsd_blob_open(b.p, b.len, &g, &ec, &pt));
	assert_int_equal(pt.len, 6);
	assert_memory_equal(pt.p, "secret", 6);
	/* without its context, or with any byte changed: refused */
	assert_int_not_equal(kmsd_blob_open(b.p, b.len, &g, NULL, &pt), 0);
	ward_errclear();
	for (size_t i = 0; i < b.len; i++) {
		b.p[i] ^= 0x01;
		assert_int_not_equal(
		    kmsd_blob_open(b.p, b.len, &g, &ec, &pt), 0);
		ward_errclear();
		b.p[i] ^= 0x01;
	}
	ward_buf_free(&pt);
	ward_buf_free(&b);
	ward_ec_free(&ec);
	ward_gcm_free(&g);
}

static int
cmp_iv(const void *a, const void *b)
{
	return memcmp(a, b, WARD_GCM_IV_LEN);
}

static void
all_distinct(uint8_t (*ivs)[WARD_GCM_IV_LEN], size_t n)
{
	qsort(ivs, n, WARD_GCM_IV_LEN, cmp_iv);
	for (size_t i = 1; i < n; i++)
		if (memcmp(ivs[i - 1], ivs[i], WARD_GCM_IV_LEN) == 0)
			fail_msg("IV repeated (%zu of %zu)", i, n);
}

static void
test_ivs_distinct(void **state)
{
	static uint8_t ivs[N_IVS][WARD_GCM_IV_LEN];
	struct ward_gcm g;

	(void)state;
	gcm(&g);
	for (size_t i = 0; i < N_IVS; i++)
		seal_iv(&g, ivs[i]);
	all_distinct(ivs, N_IVS);
	ward_gcm_free(&g);
}

struct half {
	uint8_t (*ivs)[WARD_GCM_IV_LEN];
};

static void *
sealer(void *arg)
{
	struct half *h = arg;
	struct ward_gcm g;

	gcm(&g);
	for (size_t i = 0; i < N_IVS / 2; i++)
		seal_iv(&g, h->ivs[i]);
	ward_gcm_free(&g);
	return NULL;
}

static void
test_ivs_threads(void **state)
{
	static uint8_t ivs[N_IVS][WARD_GCM_IV_LEN];
	struct half a = {ivs}, b = {ivs + N_IVS / 2};
	pthread_t t;

	(void)state;
	assert_int_equal(pthread_create(&t, NULL, sealer, &a), 0);
	sealer(&b);
	pthread_join(t, NULL);
	all_distinct(ivs, N_IVS);
}

/* fork(), or the raw clone(2) the enclave sandbox uses, which runs no
 * pthread_atfork handler */
static void
ivs_after(bool raw)
{
	uint8_t parent[WARD_GCM_IV_LEN], child[WARD_GCM_IV_LEN],
	    first[WARD_GCM_IV_LEN];
	struct ward_gcm g;
	int fd[2], status;
	pid_t pid;

	gcm(&g);
	seal_iv(&g, first); /* the pool is filled: most of it unused */
	assert_int_equal(pipe(fd), 0);
	pid = raw ? (pid_t)syscall(SYS_clone, SIGCHLD, NULL, NULL, NULL, 0)
	          : fork();
	if (pid == 0) {
		seal_iv(&g, child);
		_exit(write(fd[1], child, sizeof(child)) == sizeof(child) ? 0
		                                                          : 1);
	}
	assert_true(pid > 0);
	seal_iv(&g, parent);
	assert_int_equal(read(fd[0], child, sizeof(child)), sizeof(child));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* the child drew afresh; without the process check it would have
	 * taken the same next IV from its copy of the pool */
	assert_memory_not_equal(parent, child, sizeof(child));
	assert_memory_not_equal(first, child, sizeof(child));
	close(fd[0]);
	close(fd[1]);
	ward_gcm_free(&g);
}

static void
test_ivs_fork(void **state)
{
	(void)state;
	ivs_after(false);
	ivs_after(true);
	ivs_after(false); /* a second child of the same parent */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_ivs_distinct),
	    cmocka_unit_test(test_ivs_threads),
	    cmocka_unit_test(test_ivs_fork),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
