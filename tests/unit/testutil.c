#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

char *
tu_mkdtemp(void)
{
	const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char *d;

	if (asprintf(&d, "%s/ward-test-XXXXXX", base) < 0 || mkdtemp(d) == NULL)
		fail_msg("mkdtemp under %s failed", base);
	return d;
}

static int
rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	if (flag == FTW_DP)
		rmdir(p);
	else
		unlink(p);
	return 0;
}

void
tu_rmtree(const char *dir)
{
	nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

int
tu_count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

int
tu_write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");

	if (f == NULL)
		return -1;
	if (n > 0 && fwrite(p, 1, n, f) != n) {
		fclose(f);
		return -1;
	}
	return fclose(f);
}

uint8_t *
tu_read_file(const char *path, size_t *n)
{
	struct ward_buf b = {0};

	if (access(path, F_OK) != 0)
		return NULL;
	if (ward_read_file(path, (size_t)1 << 30, &b) != 0)
		fail_msg("%s", ward_errmsg());
	*n = b.len;
	if (b.p == NULL)
		return calloc(1, 1);
	return b.p;
}

const char *
tu_fixtures(const char *sub)
{
	static char path[4096];
	const char *base = getenv("WARD_FIXTURES_DIR")
	    ? getenv("WARD_FIXTURES_DIR")
	    : WARD_FIXTURES_DIR;
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", base, sub);
	if (stat(path, &st) != 0) {
		printf(
		    "SKIP: fixtures not found at %s (the shared/ folder is absent, as in a user's clone)\n",
		    path);
		return NULL;
	}
	return path;
}

int
tu_encrypt(struct ward_keyring *kr, uint16_t suite, uint32_t frame,
    const struct ward_ec *ec, const uint8_t *pt, size_t n, struct ward_buf *out)
{
	struct ward_enc_params p = {
	    .suite_id = suite, .frame_len = frame, .ec = ec};
	struct ward_enc *e;
	int r;

	if ((r = ward_enc_new(&e, &p, kr, ward_buf_write, out)) != 0)
		return r;
	if ((r = ward_enc_write(e, pt, n)) == 0)
		r = ward_enc_finish(e);
	ward_enc_free(e);
	return r;
}

int
tu_decrypt(struct ward_keyring *kr, const struct ward_dec_params *p,
    const uint8_t *ct, size_t n, size_t chunk, struct ward_buf *out)
{
	struct ward_mem_reader m = {.p = ct, .len = n, .chunk = chunk};
	struct ward_dec_params defaults = {0};
	struct ward_dec *d;
	int r;

	if ((r = ward_dec_new(&d, p ? p : &defaults, kr, ward_mem_read, &m)) !=
	    0)
		return r;
	for (;;) {
		const uint8_t *q;
		size_t len;

		if ((r = ward_dec_next(d, &q, &len)) != 0 || len == 0)
			break;
		if ((r = ward_buf_append(out, q, len)) != 0)
			break;
	}
	ward_dec_free(d);
	return r;
}

struct ward_keyring *
tu_aes_keyring(const char *name, uint8_t fill)
{
	struct ward_keyring *kr;
	uint8_t key[32];

	memset(key, fill, sizeof(key));
	if (ward_keyring_raw_aes_new(&kr, "test-ns", name, key, 32) != 0)
		fail_msg("%s", ward_errmsg());
	return kr;
}
