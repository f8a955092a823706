/* Signals become errors, so that cleanup runs on the normal error path. */
#include <signal.h>
#include <string.h>

#include "ward/util.h"

static volatile sig_atomic_t caught;

static void
on_signal(int sig)
{
	caught = sig;
}

void
ward_signals_install(void)
{
	struct sigaction sa;
	const int sigs[] = {SIGINT, SIGTERM, SIGHUP};

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	/* no SA_RESTART: a blocked read or write returns EINTR */
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		struct sigaction old;

		/* a signal the parent told us to ignore stays ignored (as
		 * for background jobs of a non-interactive shell) */
		if (sigaction(sigs[i], NULL, &old) == 0 &&
		    old.sa_handler == SIG_IGN)
			continue;
		sigaction(sigs[i], &sa, NULL);
	}
	signal(SIGPIPE, SIG_IGN);
}

int
ward_signal_caught(void)
{
	return caught;
}

void
ward_signals_reraise(void)
{
	int sig = caught;

	if (sig == 0)
		return;
	signal(sig, SIG_DFL);
	raise(sig);
}
