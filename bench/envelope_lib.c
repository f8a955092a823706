/*
 * In-process throughput of libward's envelope encryption on a buffer in
 * memory: the like-for-like counterpart of `openssl speed -evp
 * aes-256-gcm`, which also works on in-memory buffers and reads no file.
 * bench/envelope prints these figures beside openssl's, measured in the
 * same run.
 *
 * usage: bench_envelope_lib SIZE_MIB RUNS
 * output: one line per figure, "name MiB/s", best of RUNS.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ward/envelope.h"

static int
null_sink(void *ctx, const uint8_t *p, size_t n)
{
	*(uint64_t *)ctx += n;
	return 0;
}

static void
die(const char *what)
{
	fprintf(stderr, "bench_envelope_lib: %s: %s\n", what, ward_errmsg());
	exit(1);
}

int
main(int argc, char **argv)
{
	size_t size = (size_t)(argc > 1 ? atol(argv[1]) : 1024) << 20;
	int runs = argc > 2 ? atoi(argv[2]) : 3;
	const uint32_t frames[] = {4096, 65536};
	const uint16_t suites[] = {WARD_SUITE_DEFAULT, WARD_SUITE_SIGNED};
	struct ward_keyring *kr;
	uint8_t key[32], *pt;

	if (size == 0 || runs < 1 || (pt = malloc(size)) == NULL) {
		fprintf(stderr, "usage: bench_envelope_lib SIZE_MIB RUNS\n");
		return 2;
	}
	if (ward_random(key, sizeof(key)) != 0 || ward_random(pt, size) != 0 ||
	    ward_keyring_raw_aes_new(&kr, "bench", "k", key, 32) != 0)
		die("set-up");
	for (size_t s = 0; s < 2; s++)
		for (size_t f = 0; f < 2; f++) {
			struct ward_enc_params ep = {
			    .suite_id = suites[s], .frame_len = frames[f]};
			struct ward_buf ct = {0};
			double best_enc = 1e9, best_dec = 1e9;

			if (suites[s] == WARD_SUITE_SIGNED && f == 0)
				continue; /* one signed row is enough */
			/* the ciphertext to decrypt, made once */
			{
				struct ward_enc *e;

				if (ward_enc_new(&e, &ep, kr, ward_buf_write,
				        &ct) != 0 ||
				    ward_enc_write(e, pt, size) != 0 ||
				    ward_enc_finish(e) != 0)
					die("encrypt");
				ward_enc_free(e);
			}
			for (int i = 0; i < runs; i++) {
				struct ward_enc *e;
				struct ward_dec *d;
				struct ward_dec_params dp = {0};
				uint64_t out = 0, plain = 0;
				const uint8_t *q;
				size_t n;
				double t0 = ward_now(), t1, t2;

				/* 1 MiB writes, as the CLI hands them over */
				if (ward_enc_new(
				        &e, &ep, kr, null_sink, &out) != 0)
					die("encrypt");
				for (size_t off = 0; off < size; off += 1 << 20)
					if (ward_enc_write(e, pt + off,
					        size - off < (1 << 20)
					            ? size - off
					            : (1 << 20)) != 0)
						die("encrypt");
				if (ward_enc_finish(e) != 0)
					die("encrypt");
				ward_enc_free(e);
				t1 = ward_now();
				if (ward_dec_new_mem(
				        &d, &dp, kr, ct.p, ct.len) != 0)
					die("decrypt");
				while (ward_dec_next(d, &q, &n) == 0 && n > 0)
					plain += n;
				ward_dec_free(d);
				t2 = ward_now();
				/* a DER signature's length varies by a byte
				 * or two between messages */
				if (out + 2 < ct.len || out > ct.len + 2 ||
				    plain != size)
					die("byte counts differ");
				if (t1 - t0 < best_enc)
					best_enc = t1 - t0;
				if (t2 - t1 < best_dec)
					best_dec = t2 - t1;
			}
			printf("lib-encrypt-%04x-%u %.0f\n", suites[s],
			    frames[f], (double)size / 1048576.0 / best_enc);
			printf("lib-decrypt-%04x-%u %.0f\n", suites[s],
			    frames[f], (double)size / 1048576.0 / best_dec);
			fflush(stdout);
			ward_buf_free(&ct);
		}
	ward_keyring_free(kr);
	free(pt);
	return 0;
}
