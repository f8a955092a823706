/*
 * The nitro backend: on a Nitro parent instance, enclaves are run by
 * nitro-cli (nitro.md §7.2-§7.3), so ward builds its command lines and
 * runs it. The argument vectors go to execvp, never to a shell, so no
 * value needs quoting; values are still refused when nitro-cli's
 * argument parser (clap) would read them as a flag ("-x") or when they
 * hold control bytes that would garble its messages and ours.
 */
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ward/enclave.h"
#include "ward/util.h"

/* nitro.md §7.2: CIDs 1-2 (up to VMADDR_CID_HOST) and 3 (the parent) are
 * refused, as is u32::MAX; 0 lets nitro-cli pick. */
#define CID_FIRST 4u
#define CID_LAST (UINT32_MAX - 1)

/* The shell's statuses for a command it could not run. */
#define STATUS_NOT_FOUND 127
#define STATUS_NOT_EXECUTABLE 126

bool
ward_nitro_available(void)
{
	struct stat st;

	return stat(WARD_NITRO_DEVICE, &st) == 0;
}

const char *
ward_nitro_cli(void)
{
	const char *v = getenv("WARD_NITRO_CLI");

	return v != NULL && *v != '\0' ? v : "nitro-cli";
}

/*
 * An argument vector under construction. The first failure sticks, so a
 * builder pushes everything and checks once at the end.
 */
struct argv_build {
	char **v;
	size_t n;
	size_t cap;
	int r;
};

static void
push(struct argv_build *b, const char *s)
{
	char *copy;

	if (b->r != 0)
		return;
	/* room for s and the terminating NULL */
	if (b->n + 2 > b->cap) {
		size_t cap = b->cap != 0 ? b->cap * 2 : 16;
		char **v = realloc(b->v, cap * sizeof(*v));

		if (v == NULL) {
			b->r = ward_enomem();
			return;
		}
		b->v = v;
		b->cap = cap;
	}
	if ((copy = strdup(s)) == NULL) {
		b->r = ward_enomem();
		return;
	}
	b->v[b->n++] = copy;
	b->v[b->n] = NULL;
}

static void
push_u64(struct argv_build *b, uint64_t v)
{
	char s[24];

	snprintf(s, sizeof(s), "%llu", (unsigned long long)v);
	push(b, s);
}

static int
finish(struct argv_build *b, char ***argv)
{
	if (b->r != 0) {
		ward_argv_free(b->v);
		return b->r;
	}
	*argv = b->v;
	return 0;
}

void
ward_argv_free(char **argv)
{
	if (argv == NULL)
		return;
	for (char **a = argv; *a != NULL; a++)
		free(*a);
	free(argv);
}

/* A value for a flag: present, not empty, not taken for a flag itself. */
static int
check_value(const char *what, const char *s)
{
	if (s == NULL || *s == '\0')
		return ward_errf(WARD_EUSAGE, "%s is empty", what);
	if (*s == '-')
		return ward_errf(WARD_EUSAGE,
		    "%s \"%s\" starts with '-', which nitro-cli would read as "
		    "an option",
		    what, ward_quotes(s));
	for (const unsigned char *c = (const unsigned char *)s; *c != '\0'; c++)
		if (*c < 0x20 || *c == 0x7f)
			return ward_errf(WARD_EUSAGE,
			    "%s \"%s\" holds a control character", what,
			    ward_quotes(s));
	return 0;
}

int
ward_nitro_run_argv(const struct ward_enclave_opts *o, char ***argv)
{
	struct argv_build b = {0};
	cpu_set_t ids;
	int r;

	*argv = NULL;
	CPU_ZERO(&ids);
	if (o->eif_path == NULL)
		return ward_errf(WARD_EUSAGE, "no enclave image (EIF) to run");
	if ((r = check_value("the enclave image path", o->eif_path)) != 0)
		return r;
	if (o->memory_mib == 0)
		return ward_errf(
		    WARD_EUSAGE, "an enclave needs memory: 0 MiB asked");
	if (o->cpu_count != 0 && o->cpu_ids != NULL)
		return ward_errf(WARD_EUSAGE,
		    "both a CPU count (%u) and CPU ids (%s) are given: "
		    "nitro-cli takes one of them",
		    o->cpu_count, ward_quotes(o->cpu_ids));
	if (o->cpu_count == 0 && o->cpu_ids == NULL)
		return ward_errf(WARD_EUSAGE,
		    "an enclave needs CPUs: give a CPU count or CPU ids");
	if (o->cpu_ids != NULL && ward_cpu_list_parse(o->cpu_ids, &ids) != 0)
		return ward_err_prefix(-WARD_EUSAGE, "CPU ids");
	if (o->cid != 0 && (o->cid < CID_FIRST || o->cid > CID_LAST))
		return ward_errf(WARD_EUSAGE,
		    "enclave CID %u is reserved: expected %u to %u, or 0 for "
		    "the first free one",
		    o->cid, CID_FIRST, CID_LAST);
	if (o->name != NULL &&
	    (r = check_value("the enclave name", o->name)) != 0)
		return r;

	push(&b, ward_nitro_cli());
	push(&b, "run-enclave");
	push(&b, "--eif-path");
	push(&b, o->eif_path);
	push(&b, "--memory");
	push_u64(&b, o->memory_mib);
	if (o->cpu_ids != NULL) {
		/* nitro-cli takes each CPU id as its own value */
		push(&b, "--cpu-ids");
		for (unsigned c = 0; c < CPU_SETSIZE; c++)
			if (CPU_ISSET(c, &ids))
				push_u64(&b, c);
	} else {
		push(&b, "--cpu-count");
		push_u64(&b, o->cpu_count);
	}
	if (o->cid != 0) {
		push(&b, "--enclave-cid");
		push_u64(&b, o->cid);
	}
	if (o->name != NULL) {
		push(&b, "--enclave-name");
		push(&b, o->name);
	}
	if (o->debug)
		push(&b, "--debug-mode");
	if (o->attach_console)
		push(&b, "--attach-console");
	return finish(&b, argv);
}

int
ward_nitro_describe_argv(char ***argv)
{
	struct argv_build b = {0};

	*argv = NULL;
	push(&b, ward_nitro_cli());
	push(&b, "describe-enclaves");
	return finish(&b, argv);
}

int
ward_nitro_terminate_argv(const char *id, bool all, char ***argv)
{
	struct argv_build b = {0};
	int r;

	*argv = NULL;
	if (all && id != NULL)
		return ward_errf(WARD_EUSAGE,
		    "terminate either one enclave (%s) or all of them, not both",
		    ward_quotes(id));
	if (!all && (r = check_value("the enclave ID", id)) != 0)
		return r;
	push(&b, ward_nitro_cli());
	push(&b, "terminate-enclave");
	if (all) {
		push(&b, "--all");
	} else {
		push(&b, "--enclave-id");
		push(&b, id);
	}
	return finish(&b, argv);
}

int
ward_nitro_console_argv(const char *id, int disconnect_timeout, char ***argv)
{
	struct argv_build b = {0};
	int r;

	*argv = NULL;
	if ((r = check_value("the enclave ID", id)) != 0)
		return r;
	if (disconnect_timeout < 0)
		return ward_errf(WARD_EUSAGE,
		    "disconnect timeout %d: expected seconds (0: none)",
		    disconnect_timeout);
	push(&b, ward_nitro_cli());
	push(&b, "console");
	push(&b, "--enclave-id");
	push(&b, id);
	if (disconnect_timeout > 0) {
		push(&b, "--disconnect-timeout");
		push_u64(&b, (uint64_t)disconnect_timeout);
	}
	return finish(&b, argv);
}

int
ward_nitro_exec(char *const *argv, int *status)
{
	posix_spawnattr_t attr;
	sigset_t reset, none;
	pid_t pid;
	int err, ws, st;

	if (status != NULL)
		*status = STATUS_NOT_FOUND;
	if (argv == NULL || argv[0] == NULL)
		return ward_errf(WARD_EINTERNAL, "no command to run");
	if ((err = posix_spawnattr_init(&attr)) != 0)
		return ward_errf(
		    WARD_EINTERNAL, "posix_spawnattr_init: %s", strerror(err));
	/* The CLI ignores SIGPIPE and may block signals; nitro-cli should
	 * start as it would from a shell. */
	sigemptyset(&reset);
	sigaddset(&reset, SIGPIPE);
	sigemptyset(&none);
	posix_spawnattr_setsigdefault(&attr, &reset);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setflags(
	    &attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
	/* whatever the caller printed comes before nitro-cli's output */
	fflush(stdout);
	/* glibc's posix_spawnp reports the child's exec failure (ENOENT
	 * and so on) as its return value. */
	err = posix_spawnp(&pid, argv[0], NULL, &attr, argv, environ);
	posix_spawnattr_destroy(&attr);
	if (err == ENOENT)
		return ward_errf(WARD_EIO,
		    "%s not found%s: install aws-nitro-enclaves-cli (the Nitro "
		    "Enclaves CLI) or set WARD_NITRO_CLI to its path",
		    ward_quotes(argv[0]),
		    strchr(argv[0], '/') == NULL ? " in PATH" : "");
	if (err != 0) {
		if (status != NULL)
			*status = STATUS_NOT_EXECUTABLE;
		return ward_errf(WARD_EIO, "cannot run %s: %s",
		    ward_quotes(argv[0]), strerror(err));
	}
	/* A terminal's ^C reaches nitro-cli too (same process group), and
	 * ward's handlers only record signals: keep waiting until it has
	 * exited, so it is never left running behind ward. */
	while (waitpid(pid, &ws, 0) < 0) {
		if (errno != EINTR)
			return ward_errf(WARD_EINTERNAL, "waiting for %s: %s",
			    ward_quotes(argv[0]), strerror(errno));
	}
	if (WIFEXITED(ws))
		st = WEXITSTATUS(ws);
	else if (WIFSIGNALED(ws))
		st = 128 + WTERMSIG(ws);
	else
		st = 128; /* not reached: waitpid without WUNTRACED */
	if (status != NULL)
		*status = st;
	if (st == 0)
		return 0;
	if (WIFSIGNALED(ws))
		return ward_errf(WARD_EIO, "%s was killed by signal %d (%s)",
		    ward_quotes(argv[0]), WTERMSIG(ws),
		    strsignal(WTERMSIG(ws)));
	return ward_errf(
	    WARD_EIO, "%s exited with status %d", ward_quotes(argv[0]), st);
}
