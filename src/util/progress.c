/* A one-line progress bar on stderr, only on a terminal unless forced. */
#include <stdio.h>
#include <unistd.h>

#include "ward/util.h"

void
ward_progress_init(
    struct ward_progress *p, const char *label, uint64_t total, bool force)
{
	p->label = label;
	p->total = total;
	p->done = 0;
	p->start = p->last_draw = ward_now();
	p->enabled = force || isatty(STDERR_FILENO);
}

static void
draw(struct ward_progress *p, double now)
{
	double secs = now - p->start;
	double mib = (double)p->done / (1024.0 * 1024.0);
	double rate = secs > 0 ? mib / secs : 0;

	if (p->total > 0) {
		int width = 30, fill;
		double frac = (double)p->done / (double)p->total;
		char bar[31];

		if (frac > 1)
			frac = 1;
		fill = (int)(frac * width);
		for (int i = 0; i < width; i++)
			bar[i] = i < fill ? '#' : '.';
		bar[width] = '\0';
		fprintf(stderr, "\r%s [%s] %5.1f%% %.1f MiB %.1f MiB/s ",
		    p->label, bar, frac * 100, mib, rate);
	} else
		fprintf(
		    stderr, "\r%s %.1f MiB %.1f MiB/s ", p->label, mib, rate);
	fflush(stderr);
	p->last_draw = now;
}

void
ward_progress_add(struct ward_progress *p, uint64_t n)
{
	double now;

	p->done += n;
	if (!p->enabled)
		return;
	now = ward_now();
	if (now - p->last_draw >= 0.1)
		draw(p, now);
}

void
ward_progress_end(struct ward_progress *p)
{
	if (!p->enabled)
		return;
	draw(p, ward_now());
	fputc('\n', stderr);
}
