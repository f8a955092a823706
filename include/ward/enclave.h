/*
 * ward enclave runtime: the allocator (what all enclaves together may
 * take), the nitro backend (nitro-cli on a Nitro parent instance) and the
 * sandbox backend (namespaces, seccomp, cgroups; a monitor per enclave
 * that plays the hypervisor: it measures the image and serves the NSM).
 * Facts: nitro.md §7; docs/enclaves.md.
 */
#ifndef WARD_ENCLAVE_H
#define WARD_ENCLAVE_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- allocator (nitro.md §7.5) ---------------------------------------- */

#define WARD_ALLOCATOR_PATH "/etc/ward/allocator.yaml"
#define WARD_ALLOCATOR_MAX 65536 /* bytes of YAML read */

struct ward_allocator {
	uint64_t memory_mib; /* for all enclaves together */
	cpu_set_t cpus; /* the CPUs enclaves may be pinned to */
	unsigned cpu_count; /* CPU_COUNT(&cpus) */
	char source[256]; /* the file read, or "built-in defaults (...)" */
};

/*
 * Parse allocator.yaml's text (libyaml): a mapping with memory_mib and
 * exactly one of cpu_count or cpu_pool ("2,3,6-9"), as Nitro's allocator
 * reads it. Unknown keys, a missing memory_mib, both or neither CPU key,
 * zero values and CPUs this process may not run on (sched_getaffinity) are
 * WARD_EFORMAT errors that name the file (name) and the key; more than
 * WARD_ALLOCATOR_MAX bytes is WARD_ELIMIT. cpu_count N takes the N
 * highest-numbered CPUs this process may run on, so CPU 0 stays with the
 * host when it can, as Nitro keeps it.
 */
int ward_allocator_parse(
    const char *text, size_t len, const char *name, struct ward_allocator *out);
/*
 * Load path (NULL: $WARD_ALLOCATOR, else WARD_ALLOCATOR_PATH). A missing
 * default file gives the built-in defaults: a quarter of physical memory
 * and every CPU this process may run on. A missing file that was named
 * explicitly is an error.
 */
int ward_allocator_load(const char *path, struct ward_allocator *out);

/*
 * "0-3,8,10-11" <-> cpu_set_t; CPUs are below CPU_SETSIZE. Parsing is
 * strict (no spaces, signs, leading zeros, repeats or empty items) and
 * fails with WARD_EFORMAT. Formatting always NUL-terminates within cap; a
 * list cut short ends in "..."; WARD_CPU_LIST_MAX bytes hold any set.
 */
#define WARD_CPU_LIST_MAX (CPU_SETSIZE / 2 * 10 + 1)
int ward_cpu_list_parse(const char *s, cpu_set_t *out);
void ward_cpu_list_format(const cpu_set_t *set, char *out, size_t cap);

/*
 * Reserve memory_mib and cpu_count CPUs for one more enclave, given what
 * the running ones hold (used_mib, used_cpus). CPUs are exclusive, as on
 * Nitro; the highest-numbered free ones are taken. Asking beyond what is
 * left is WARD_ELIMIT with a message that says what was asked, what the
 * allocator allows (a->source), what is in use and what is free.
 */
int ward_allocator_reserve(const struct ward_allocator *a, uint64_t used_mib,
    const cpu_set_t *used_cpus, uint64_t memory_mib, unsigned cpu_count,
    cpu_set_t *got);

/* ---- what to run ------------------------------------------------------ */

struct ward_enclave_opts {
	const char *eif_path;
	unsigned cpu_count; /* 0 when cpu_ids is given */
	const char *cpu_ids; /* a CPU list, or NULL */
	uint64_t memory_mib;
	uint32_t cid; /* 0: the first free CID from 16 */
	const char *name; /* NULL: the EIF's file name without .eif */
	bool debug;
	bool attach_console;
};

/* ---- nitro backend ---------------------------------------------------- */

#define WARD_NITRO_DEVICE "/dev/nitro_enclaves"

/* True when this host can run Nitro enclaves (WARD_NITRO_DEVICE exists). */
bool ward_nitro_available(void);
/* nitro-cli: $WARD_NITRO_CLI, else "nitro-cli" (looked up in PATH). */
const char *ward_nitro_cli(void);

/*
 * The nitro-cli command lines ward runs on a Nitro parent instance, as
 * NULL-terminated argument vectors (argv[0] = ward_nitro_cli()); free with
 * ward_argv_free. Flags are nitro-cli 1.x's (nitro.md §7.2-§7.3). id is an
 * EnclaveID; NULL with all = true means --all.
 */
int ward_nitro_run_argv(const struct ward_enclave_opts *o, char ***argv);
int ward_nitro_describe_argv(char ***argv);
int ward_nitro_terminate_argv(const char *id, bool all, char ***argv);
int ward_nitro_console_argv(
    const char *id, int disconnect_timeout, char ***argv);
void ward_argv_free(char **argv);
/*
 * Run argv (execvp), stdin/stdout/stderr inherited, and wait. Returns 0
 * when it exits 0; otherwise WARD_EIO with "nitro-cli exited with status
 * N" (its own "[ Exx ]" message is already on stderr) and *status set to
 * the exit status (128+signal when killed), so the CLI can exit with it.
 * A program that cannot be started is WARD_EIO with *status 127.
 */
int ward_nitro_exec(char *const *argv, int *status);

/* ---- sandbox backend -------------------------------------------------- */

#define WARD_ENCLAVE_MIN_MIB 64 /* Nitro's smallest enclave */
#define WARD_EIF_MEMORY_RATIO 4 /* --memory >= 4 x the EIF (nitro-cli E26) */
#define WARD_HOST_ROLE_FILE "/etc/ward/host-role-arn"
#define WARD_HOST_INSTANCE_FILE "/etc/ward/host-instance-id"

/*
 * Start a sandbox enclave: check the image's CRC (and signature when it
 * is signed), measure it, reserve memory and CPUs from the allocator,
 * start its monitor and wait until the image's command runs. *json gets
 * nitro-cli's run-enclave object (malloc'd); *note a line for stderr
 * ("Started enclave with enclave-cid: ..."). With attach_console,
 * *console_fd is connected to the console before the command starts (so
 * no output is missed; read it with ward_enclave_console_stream), else -1.
 * PCR3/PCR4 come from
 * $WARD_HOST_ROLE_ARN / $WARD_HOST_INSTANCE_ID or the files above.
 */
int ward_enclave_run(const struct ward_enclave_opts *o, char **json,
    char **note, int *console_fd);
/* nitro-cli's describe-enclaves array; removes dead monitors' leftovers. */
int ward_enclave_describe(char **json);
/*
 * Terminate by EnclaveID or EnclaveName (match), or every enclave (all):
 * the monitor kills the enclave and removes what it held. *json gets one
 * nitro-cli terminate object per enclave, one per line.
 */
int ward_enclave_terminate(const char *match, bool all, char **json);
/*
 * A debug-mode enclave's console (by EnclaveID or EnclaveName): connect,
 * then stream what it wrote so far and then live output to out_fd until
 * the enclave ends or disconnect_timeout seconds pass (0: no limit). An
 * enclave not started with --debug-mode has no console, as on Nitro.
 */
int ward_enclave_console_connect(const char *match, int *fd, uint32_t *cid);
int ward_enclave_console_stream(int fd, int disconnect_timeout, int out_fd);

#endif
