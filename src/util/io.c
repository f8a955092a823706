/* Byte streams over file descriptors and memory; small-file reads. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "ward/util.h"

static int
interrupted(void)
{
	return ward_errf(WARD_EINTR, "interrupted by signal %d (%s)",
	    ward_signal_caught(), strsignal(ward_signal_caught()));
}

int
ward_fd_read(void *ctx, uint8_t *buf, size_t cap, size_t *got)
{
	struct ward_fd_stream *s = ctx;
	ssize_t n;

	do {
		if (ward_signal_caught() != 0)
			return interrupted();
		n = read(s->fd, buf, cap);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return ward_errf(
		    WARD_EIO, "reading %s: %s", s->name, strerror(errno));
	*got = (size_t)n;
	s->bytes += (uint64_t)n;
	if (s->progress != NULL)
		ward_progress_add(s->progress, (uint64_t)n);
	return 0;
}

int
ward_fd_write(void *ctx, const uint8_t *buf, size_t n)
{
	struct ward_fd_stream *s = ctx;

	while (n > 0) {
		ssize_t w;

		if (ward_signal_caught() != 0)
			return interrupted();
		w = write(s->fd, buf, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return ward_errf(WARD_EIO, "writing %s: %s", s->name,
			    strerror(errno));
		buf += w;
		n -= (size_t)w;
		s->bytes += (uint64_t)w;
	}
	return 0;
}

int
ward_mem_read(void *ctx, uint8_t *buf, size_t cap, size_t *got)
{
	struct ward_mem_reader *m = ctx;
	size_t n = m->len - m->off;

	if (n > cap)
		n = cap;
	if (m->chunk != 0 && n > m->chunk)
		n = m->chunk;
	if (n > 0)
		memcpy(buf, m->p + m->off, n);
	m->off += n;
	*got = n;
	return 0;
}

int
ward_read_file(const char *path, size_t max, struct ward_buf *out)
{
	struct ward_fd_stream s = {.name = path};
	int r = 0;

	out->secret = true;
	if ((s.fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return ward_errf(WARD_EIO, "%s: %s", path, strerror(errno));
	for (;;) {
		size_t got;

		if ((r = ward_buf_reserve(out, 4096)) != 0)
			break;
		if ((r = ward_fd_read(&s, out->p + out->len,
		         out->cap - out->len, &got)) != 0)
			break;
		if (got == 0)
			break;
		out->len += got;
		if (out->len > max) {
			r = ward_errf(WARD_ELIMIT, "%s: larger than %zu bytes",
			    path, max);
			break;
		}
	}
	close(s.fd);
	return r;
}

double
ward_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
ward_parse_size(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0, mul = 1;
	const char *p = s;

	if (*p < '0' || *p > '9')
		return ward_errf(WARD_EUSAGE, "'%s' is not a size", s);
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - 9) / 10)
			return ward_errf(WARD_EUSAGE, "size '%s' too large", s);
		v = v * 10 + (uint64_t)(*p - '0');
	}
	switch (*p) {
	case '\0':
		break;
	case 'K':
	case 'k':
		mul = 1ULL << 10;
		p++;
		break;
	case 'M':
	case 'm':
		mul = 1ULL << 20;
		p++;
		break;
	case 'G':
	case 'g':
		mul = 1ULL << 30;
		p++;
		break;
	default:
		return ward_errf(WARD_EUSAGE,
		    "'%s' is not a size (use a number with an optional K, M or G suffix)",
		    s);
	}
	if (*p == 'i' && p[1] == 'B')
		p += 2;
	if (*p != '\0')
		return ward_errf(WARD_EUSAGE, "'%s' is not a size", s);
	if (v > UINT64_MAX / mul || v * mul > max)
		return ward_errf(WARD_EUSAGE,
		    "size '%s' exceeds the limit %llu", s,
		    (unsigned long long)max);
	*out = v * mul;
	return 0;
}

/* The most descriptors the one-by-one fallback closes: a limit of a
 * million (a common container default) would cost a million calls. */
#define CLOSE_LOOP_MAX 65536u

/* fds lo..hi, with one close_range call where the kernel allows it (5.9+),
 * else one by one up to the open-file limit or CLOSE_LOOP_MAX */
static void
close_span(unsigned lo, unsigned hi)
{
	struct rlimit rl;
	unsigned max = CLOSE_LOOP_MAX;

	if (syscall(SYS_close_range, lo, hi, 0u) == 0)
		return;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	    rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < CLOSE_LOOP_MAX)
		max = (unsigned)rl.rlim_cur;
	for (unsigned fd = lo; fd <= hi && fd < max; fd++)
		close((int)fd);
}

void
ward_close_fds_except(int lowest, const int *keep, size_t n)
{
	int k[WARD_CLOSE_KEEP_MAX];
	size_t m = 0;
	unsigned from = (unsigned)lowest;

	/* the kept ones at or above lowest, in order */
	for (size_t i = 0; i < n && m < WARD_CLOSE_KEEP_MAX; i++) {
		size_t j = m;

		if (keep[i] < lowest)
			continue;
		while (j > 0 && k[j - 1] > keep[i]) {
			k[j] = k[j - 1];
			j--;
		}
		k[j] = keep[i];
		m++;
	}
	for (size_t i = 0; i < m; i++) {
		if ((unsigned)k[i] > from)
			close_span(from, (unsigned)k[i] - 1);
		if ((unsigned)k[i] + 1 > from)
			from = (unsigned)k[i] + 1;
	}
	close_span(from, ~0u);
}
