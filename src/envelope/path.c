/*
 * Whole-path encryption and decryption, as the CLI uses them. Outputs to
 * files and directories are created beside their final name and renamed
 * into place only after the whole message authenticated, so a failure
 * never leaves partial output (docs/formats.md, "What decryption
 * releases").
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define IO_CHUNK (1u << 20)

static bool
is_std(const char *path)
{
	return path == NULL || strcmp(path, "-") == 0;
}

static mode_t
default_mode(void)
{
	mode_t m = umask(0);

	umask(m);
	return 0666 & ~m;
}

/*
 * Open the output. An existing device, fifo or socket (/dev/null, a pipe)
 * is written in place, as a stream: renaming a file over it would replace
 * the device. Anything else is created atomically beside its name.
 */
static int
open_output(const char *out, mode_t mode, bool force, struct ward_atomic *a,
    struct ward_fd_stream *dst, bool *in_place)
{
	struct stat st;
	int r;

	*in_place = false;
	if (stat(out, &st) == 0 && !S_ISREG(st.st_mode)) {
		if (S_ISDIR(st.st_mode))
			return ward_errf(WARD_EUSAGE, "%s is a directory", out);
		if ((dst->fd = open(out, O_WRONLY | O_CLOEXEC)) < 0)
			return ward_errf(
			    WARD_EIO, "%s: %s", out, strerror(errno));
		dst->name = out;
		*in_place = true;
		return 0;
	}
	if ((r = ward_atomic_open(a, out, mode, force)) != 0)
		return r;
	dst->fd = a->fd;
	dst->name = out;
	return 0;
}

static int
enc_sink(void *ctx, const uint8_t *p, size_t n)
{
	return ward_enc_write(ctx, p, n);
}

int
ward_encrypt_path(const char *in, const char *out,
    const struct ward_enc_params *p, struct ward_keyring *kr,
    const struct ward_path_opts *o)
{
	struct ward_fd_stream src = {
	    .fd = STDIN_FILENO, .name = "standard input"};
	struct ward_fd_stream dst = {
	    .fd = STDOUT_FILENO, .name = "standard output"};
	struct ward_atomic atomic = {.fd = -1};
	struct ward_enc_params params = *p;
	struct ward_progress progress;
	struct ward_enc *enc = NULL;
	struct ward_ec ec = {0};
	uint8_t *buf = NULL;
	struct stat st = {0};
	bool is_dir = false, in_place = false;
	int r;

	if (!is_std(in)) {
		if (stat(in, &st) != 0)
			return ward_errf(
			    WARD_EIO, "%s: %s", in, strerror(errno));
		is_dir = S_ISDIR(st.st_mode);
		src.name = in;
	}
	if (is_dir) {
		if ((r = ward_ec_copy(&ec, p->ec)) != 0)
			return r;
		if (ward_ec_get(&ec, WARD_EC_FORMAT, strlen(WARD_EC_FORMAT)) !=
		    NULL) {
			r = ward_errf(WARD_EUSAGE,
			    "context key %s is set by ward for directories",
			    WARD_EC_FORMAT);
			goto out;
		}
		if ((r = ward_ec_add(&ec, WARD_EC_FORMAT,
		         strlen(WARD_EC_FORMAT), WARD_EC_FORMAT_TAR,
		         strlen(WARD_EC_FORMAT_TAR))) != 0)
			goto out;
		params.ec = &ec;
	} else if (!is_std(in)) {
		if ((src.fd = open(in, O_RDONLY | O_CLOEXEC)) < 0) {
			r = ward_errf(WARD_EIO, "%s: %s", in, strerror(errno));
			goto out;
		}
	}
	if (is_std(out)) {
		if (isatty(STDOUT_FILENO)) {
			r = ward_errf(WARD_EUSAGE,
			    "refusing to write ciphertext to a terminal: give -o FILE or redirect standard output");
			goto out;
		}
	} else if ((r = open_output(out, default_mode(), o->force, &atomic,
	                &dst, &in_place)) != 0)
		goto out;
	ward_progress_init(&progress, "encrypting",
	    !is_dir && !is_std(in) && S_ISREG(st.st_mode) ? (uint64_t)st.st_size
	                                                  : 0,
	    o->progress);
	src.progress = &progress;

	if ((r = ward_enc_new(&enc, &params, kr, ward_fd_write, &dst)) != 0)
		goto out;
	if (is_dir) {
		if ((r = ward_archive_pack(in, enc_sink, enc)) != 0)
			goto out;
	} else {
		/* Page-aligned: the kernel's copy into a destination 1-31
		 * bytes into a page is several times slower on some CPUs
		 * (docs/performance.md). */
		if ((buf = aligned_alloc(4096, IO_CHUNK)) == NULL) {
			r = ward_enomem();
			goto out;
		}
		for (;;) {
			size_t got;

			if ((r = ward_fd_read(&src, buf, IO_CHUNK, &got)) != 0)
				goto out;
			if (got == 0)
				break;
			if ((r = ward_enc_write(enc, buf, got)) != 0)
				goto out;
		}
	}
	if ((r = ward_enc_finish(enc)) != 0)
		goto out;
	ward_progress_end(&progress);
	if (atomic.fd >= 0)
		r = ward_atomic_commit(&atomic);
out:
	if (r != 0)
		ward_atomic_abort(&atomic);
	if (in_place)
		close(dst.fd);
	if (buf != NULL)
		ward_cleanse(buf, IO_CHUNK);
	free(buf);
	ward_enc_free(enc);
	ward_ec_free(&ec);
	if (src.fd != STDIN_FILENO && src.fd >= 0)
		close(src.fd);
	return r;
}

int
ward_decrypt_path(const char *in, const char *out,
    const struct ward_dec_params *p, struct ward_keyring *kr,
    const struct ward_path_opts *o)
{
	struct ward_fd_stream src = {
	    .fd = STDIN_FILENO, .name = "standard input"};
	struct ward_fd_stream dst = {
	    .fd = STDOUT_FILENO, .name = "standard output"};
	struct ward_atomic atomic = {.fd = -1};
	struct ward_progress progress;
	struct ward_dec *dec = NULL;
	const struct ward_ec_pair *fmt;
	struct stat st = {0};
	bool in_place = false;
	int r;

	if (!is_std(in)) {
		if ((src.fd = open(in, O_RDONLY | O_CLOEXEC)) < 0)
			return ward_errf(
			    WARD_EIO, "%s: %s", in, strerror(errno));
		src.name = in;
		if (fstat(src.fd, &st) == 0 && S_ISDIR(st.st_mode)) {
			r = ward_errf(WARD_EUSAGE,
			    "%s is a directory, not an encrypted message", in);
			goto out;
		}
	}
	ward_progress_init(&progress, "decrypting",
	    !is_std(in) && S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0,
	    o->progress);
	src.progress = &progress;
	if ((r = ward_dec_new(&dec, p, kr, ward_fd_read, &src)) != 0 ||
	    (r = ward_dec_header(dec)) != 0)
		goto out;

	fmt = ward_ec_get(
	    ward_dec_context(dec), WARD_EC_FORMAT, strlen(WARD_EC_FORMAT));
	if (fmt != NULL) {
		if (strcmp(fmt->value, WARD_EC_FORMAT_TAR) != 0) {
			r = ward_errf(WARD_EUNSUPPORTED,
			    "message payload format '%s' is not one this ward knows",
			    ward_quotes(fmt->value));
			goto out;
		}
		if (is_std(out)) {
			r = ward_errf(WARD_EUSAGE,
			    "this message holds a directory: give -o DIR to restore it");
			goto out;
		}
		r = ward_archive_unpack(ward_dec_read, dec, out, o);
		if (r == 0)
			ward_progress_end(&progress);
		goto out;
	}

	/* Plaintext is for its owner only. */
	if (!is_std(out) &&
	    (r = open_output(out, 0600, o->force, &atomic, &dst, &in_place)) !=
	        0)
		goto out;
	for (;;) {
		const uint8_t *pt;
		size_t n;

		if ((r = ward_dec_next(dec, &pt, &n)) != 0)
			goto out;
		if (n == 0)
			break;
		if ((r = ward_fd_write(&dst, pt, n)) != 0)
			goto out;
	}
	ward_progress_end(&progress);
	if (atomic.fd >= 0)
		r = ward_atomic_commit(&atomic);
out:
	if (r != 0)
		ward_atomic_abort(&atomic);
	if (in_place)
		close(dst.fd);
	ward_dec_free(dec);
	if (src.fd != STDIN_FILENO)
		close(src.fd);
	return r;
}
