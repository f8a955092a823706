/*
 * Ciphertext blobs (kms-and-esdk.md §1.7; AWS's own layout is not public):
 *
 *   "WK" | 0x01 | key id (16, the UUID's bytes) | material version (4, BE)
 *   | IV (12) | ciphertext | tag (16)
 *
 * The GCM additional data is the 35 header bytes followed by the
 * encryption context in the ESDK's canonical serialization (count, then
 * length-prefixed pairs sorted by key), so a blob cannot be moved to
 * another key or material version, and {"ab":"c"} is not {"a":"bc"}.
 */
#include <sys/mman.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "ward/crypto.h"

static const uint8_t magic[3] = {'W', 'K', 0x01};

/*
 * IVs: random, 96 bits each, taken from a per-thread pool that one
 * getrandom(2) fills 4 KiB at a time (a call per seal was 2% of a
 * GenerateDataKey's CPU). IVs are public, so the pool holds nothing
 * secret; each is used once. A child process would inherit the pool and
 * repeat its parent's next IVs, which under the same key is GCM's one
 * fatal misuse, so the pool belongs to the process that filled it, and
 * a seal in another process refills it first. That covers fork and every
 * clone (the sandbox's raw SYS_clone runs no pthread_atfork handler).
 * Which process this is comes from proc_id below, not from getpid(2)
 * per seal: that system call was 1% of a GenerateDataKey's CPU.
 */
#define IV_POOL 4096
static _Thread_local uint8_t iv_pool[IV_POOL];
static _Thread_local size_t iv_left;
static _Thread_local pid_t iv_pid; /* 0: never filled */

static _Atomic pid_t *proc_page; /* MADV_WIPEONFORK: reads 0 in a child */
static pthread_once_t proc_once = PTHREAD_ONCE_INIT;

static void
proc_page_map(void)
{
	size_t n = (size_t)sysconf(_SC_PAGESIZE);
	void *p = mmap(NULL, n, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return;
	if (madvise(p, n, MADV_WIPEONFORK) != 0) { /* before Linux 4.14 */
		munmap(p, n);
		return;
	}
	proc_page = p;
}

/*
 * This process's id, without a system call after its first: it is kept
 * in a page the kernel zeroes in every child whose memory is a copy
 * (fork, or clone without CLONE_VM), so a child finds 0 there and asks
 * getpid once. Where the page cannot be had, getpid every time.
 */
static pid_t
proc_id(void)
{
	pid_t id;

	pthread_once(&proc_once, proc_page_map);
	if (proc_page == NULL)
		return getpid();
	if ((id = atomic_load(proc_page)) == 0) {
		id = getpid();
		atomic_store(proc_page, id);
	}
	return id;
}

static int
next_iv(uint8_t iv[WARD_GCM_IV_LEN])
{
	pid_t pid = proc_id();
	int r;

	if (iv_pid != pid || iv_left < WARD_GCM_IV_LEN) {
		iv_left = 0;
		if ((r = ward_random(iv_pool, sizeof(iv_pool))) != 0)
			return r;
		iv_left = sizeof(iv_pool);
		iv_pid = pid;
	}
	memcpy(iv, iv_pool + sizeof(iv_pool) - iv_left, WARD_GCM_IV_LEN);
	memset(iv_pool + sizeof(iv_pool) - iv_left, 0, WARD_GCM_IV_LEN);
	iv_left -= WARD_GCM_IV_LEN;
	return 0;
}

int
kmsd_uuid_to_bytes(const char *id, uint8_t out[16])
{
	size_t j = 0;

	if (strlen(id) != KMSD_KEY_ID_LEN)
		return -WARD_EFORMAT;
	for (size_t i = 0; i < KMSD_KEY_ID_LEN; i++) {
		int c = (unsigned char)id[i], v;

		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (c != '-')
				return -WARD_EFORMAT;
			continue;
		}
		if (c >= '0' && c <= '9')
			v = c - '0';
		else if (c >= 'a' && c <= 'f')
			v = c - 'a' + 10;
		else
			return -WARD_EFORMAT;
		if (j % 2 == 0)
			out[j / 2] = (uint8_t)(v << 4);
		else
			out[j / 2] |= (uint8_t)v;
		j++;
	}
	return 0;
}

void
kmsd_uuid_from_bytes(const uint8_t in[16], char out[KMSD_KEY_ID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	for (size_t i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[in[i] >> 4];
		out[o++] = hex[in[i] & 15];
	}
	out[o] = '\0';
}

static int
aad_build(const uint8_t *hdr, const struct ward_ec *ec, struct ward_buf *aad)
{
	int r;

	if ((r = ward_buf_append(aad, hdr, KMSD_BLOB_HDR)) != 0)
		return r;
	if (ec != NULL && ec->n > 0)
		return ward_ec_serialize(ec, aad);
	return 0;
}

int
kmsd_blob_seal(const char *key_id, uint32_t version, struct ward_gcm *g,
    const struct ward_ec *ec, const uint8_t *pt, size_t n, struct ward_buf *out)
{
	int r;
	uint8_t *h;
	struct ward_buf aad = {0};

	out->len = 0;
	if ((r = ward_buf_reserve(out, KMSD_BLOB_OVERHEAD + n)) != 0)
		return r;
	h = out->p;
	memcpy(h, magic, 3);
	if (kmsd_uuid_to_bytes(key_id, h + 3) != 0)
		return ward_errf(
		    WARD_EINTERNAL, "key id %s is not a UUID", key_id);
	ward_store32(h + 19, version);
	if ((r = next_iv(h + 23)) != 0 || (r = aad_build(h, ec, &aad)) != 0)
		goto out;
	r = ward_gcm_seal(g, h + 23, aad.p, aad.len, pt, n, h + KMSD_BLOB_HDR,
	    h + KMSD_BLOB_HDR + n);
	if (r == 0)
		out->len = KMSD_BLOB_OVERHEAD + n;
out:
	ward_buf_free(&aad);
	return r;
}

int
kmsd_blob_peek(const uint8_t *p, size_t n, char key_id[KMSD_KEY_ID_LEN + 1],
    uint32_t *version)
{
	if (n < KMSD_BLOB_OVERHEAD || memcmp(p, magic, 3) != 0)
		return ward_errf(
		    WARD_EFORMAT, "not a ward KMS ciphertext blob");
	kmsd_uuid_from_bytes(p + 3, key_id);
	*version = ward_load32(p + 19);
	return 0;
}

int
kmsd_blob_open(const uint8_t *p, size_t n, struct ward_gcm *g,
    const struct ward_ec *ec, struct ward_buf *out)
{
	int r;
	size_t m;
	struct ward_buf aad = {0};

	out->len = 0;
	out->secret = true;
	if (n < KMSD_BLOB_OVERHEAD || memcmp(p, magic, 3) != 0)
		return ward_errf(
		    WARD_EFORMAT, "not a ward KMS ciphertext blob");
	m = n - KMSD_BLOB_OVERHEAD;
	if ((r = ward_buf_reserve(out, m + 1)) != 0 ||
	    (r = aad_build(p, ec, &aad)) != 0)
		goto out;
	if ((r = ward_gcm_open(g, p + 23, aad.p, aad.len, p + KMSD_BLOB_HDR, m,
	         p + n - WARD_GCM_TAG_LEN, out->p)) != 0)
		goto out;
	out->len = m;
out:
	ward_buf_free(&aad);
	return r;
}
