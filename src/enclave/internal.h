/* The sandbox backend's private interfaces: run directory, cgroups, the
 * enclave's set-up inside its namespaces, and the monitor. */
#ifndef WARD_ENCLAVE_INTERNAL_H
#define WARD_ENCLAVE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "ward/eif.h"
#include "ward/enclave.h"
#include "ward/util.h"

#define ENC_ID_MAX 64
#define ENC_NAME_MAX 128
#define ENC_CGROUPS_MAX 4 /* v1: memory, pids, cpuset; v2: one */
#define ENC_CMD_MAX 4096 /* lines in cmd or env, as ward-init */
#define ENC_CONSOLE_RING (64 * 1024)
/* an enclave's uids and gids as root: a block of 65536 from here that no
 * other running enclave has */
#define ENC_UID_BASE 0x40000000u
#define ENC_UID_BLOCK 65536u
#define ENC_UID_SLOTS 16384u

/* ---- run directory: <run>/enclaves/<ID>/ ------------------------------ */

struct enc_paths {
	char run[256]; /* ward_run_dir() */
	char dir[384]; /* <run>/enclaves/<ID> */
	char lock[400], state[400], nsm[400], console[400], log[400];
	char root[400]; /* the enclave's tmpfs is mounted here, in its own
	                 * mount namespace only */
	char vsock_parent[300]; /* <run>/vsock/3 */
	char vsock_own[300]; /* <run>/vsock/<CID> */
};
int enc_paths(const char *id, uint32_t cid, struct enc_paths *p);
/* mkdir -p <run>/enclaves and <run>/vsock/3 with their modes, then
 * enc_run_check */
int enc_run_dirs(const char *run);
/* as root: refuse a run directory anyone but root could change */
int enc_run_check(const char *run);
/* flock(2) a lock file: exclusive, blocking (timeout_ms < 0), or not */
int enc_lock(const char *path, int timeout_ms, int *fd, bool *got);

/* What the runtime records about an enclave (state.json). */
struct enc_record {
	char name[ENC_NAME_MAX];
	char id[ENC_ID_MAX];
	pid_t monitor; /* ProcessID */
	pid_t init; /* the enclave's PID 1, as the host sees it */
	uint32_t cid;
	cpu_set_t cpus;
	uint64_t memory_mib;
	bool debug;
	char state[16]; /* RUNNING | TERMINATING */
	uint8_t pcr0[WARD_PCR_LEN], pcr1[WARD_PCR_LEN], pcr2[WARD_PCR_LEN];
	bool is_signed;
	uint8_t pcr8[WARD_PCR_LEN];
	uid_t host_uid; /* the enclave's root as the host sees it */
	bool vsock_mounted; /* vsock_own is a tmpfs the monitor mounted */
	char limits[256]; /* which memory/pids/cpu limits are in force */
	char cgroups[ENC_CGROUPS_MAX][320];
	size_t n_cgroups;
};
int enc_record_write(const struct enc_paths *p, const struct enc_record *r);
int enc_record_read(const char *path, struct enc_record *r);
/* nitro-cli's JSON for describe-enclaves / run-enclave */
struct json_t;
struct json_t *enc_record_json(const struct enc_record *r, bool describe);

/*
 * Every enclave under run, live ones in *live (n_live), after removing
 * what dead monitors left behind (reap = true; needs the run lock).
 */
int enc_list(
    const char *run, bool reap, struct enc_record **live, size_t *n_live);
/* Remove what an enclave leaves on the host: processes in its cgroups,
 * cgroups, the vsock mount and directory, sockets, the record. */
void enc_cleanup(const struct enc_paths *p, const struct enc_record *r);

/* ---- cgroups (cgroup.c) ------------------------------------------------- */

struct enc_cgroup {
	int version; /* 1 or 2; 0: none could be made */
	char paths[ENC_CGROUPS_MAX][320];
	char orig[ENC_CGROUPS_MAX][320]; /* where this process was */
	size_t n;
	bool joined; /* this process is in paths[] (enc_cgroup_join) */
	char limits[256]; /* for the record and describe */
};
/* Create the enclave's cgroups with its memory, pids and cpuset limits. A
 * non-root user without a delegated cgroup gets version 0 and rlimits. */
int enc_cgroup_create(const char *id, uint64_t memory_mib,
    const cpu_set_t *cpus, unsigned pids_max, struct enc_cgroup *cg);
/*
 * Move this process (on v1, the calling thread alone: no RCU grace period
 * to wait for) into the enclave's cgroups, so that what it clones is born
 * there (v1 has no CLONE_INTO_CGROUP), and back to where it was.
 */
int enc_cgroup_join(struct enc_cgroup *cg);
int enc_cgroup_leave(struct enc_cgroup *cg);
/* SIGKILL everything left in the cgroups, then remove them (waits a
 * little for the kernel to empty them). */
void enc_cgroup_destroy(char (*paths)[320], size_t n);

/* ---- the enclave's set-up, in its namespaces (sandbox.c) ---------------- */

struct enc_child {
	/* borrowed from the monitor, valid in the child after clone */
	uint8_t *eif; /* the child's copy of the image, released once
	               * unpacked (enc_image_release) */
	size_t eif_len;
	const uint8_t *ramdisk; /* the customer ramdisk, inside eif */
	size_t ramdisk_len;
	char **cmd, **env; /* NULL-terminated */
	uint64_t memory_mib;
	cpu_set_t cpus;
	uint32_t cid;
	bool debug;
	bool rlimits; /* no cgroup: bound memory and processes by rlimits */
	unsigned pids_max;
	/* host paths, bind-mounted in (an fd from the monitor's mount
	 * namespace cannot be the source of a mount in the enclave's) */
	const char *nsm_path; /* the NSM socket, on /dev/nsm */
	const char *vsock_parent; /* <run>/vsock/3, mounted read-only */
	const char *vsock_own; /* <run>/vsock/<CID> */
	const char *stage; /* <run>/enclaves/<ID>/root: the tmpfs goes here */
	int console_fd; /* the write end of the console pipe */
	int sync_fd; /* read: the monitor's go-ahead */
	int err_fd; /* write: a set-up failure's message */
};
/* Run in the child clone() made: set everything up, become the enclave's
 * PID 1 and run its command. Never returns. */
void enc_child_main(struct enc_child *c) __attribute__((noreturn));
/* The enclave's init: read cmd and env lines from the customer ramdisk */
int enc_ramdisk_lines(
    const uint8_t *p, size_t n, const char *name, char ***lines);
void enc_lines_free(char **lines);

/* ---- the monitor (monitor.c) ------------------------------------------ */

struct enc_start {
	struct enc_paths paths;
	struct enc_record rec;
	const char *eif_path; /* for messages */
	struct ward_eif_image img; /* the monitor's measurement */
	/* the image file, opened and sized by run-enclave; the monitor reads
	 * it once, into eif (read_image in monitor.c), measures those bytes,
	 * and uses only them from then on */
	int eif_fd;
	uint8_t *eif;
	size_t eif_len;
	int lock_fd; /* the enclave's lock, held for the monitor's life */
	int status_fd; /* write: "C\n" when the console waits for its reader
	                * (attach), then "0 ok" or "CODE message" */
	bool attach; /* wait for the console's reader before starting */
	char host_role[512], host_instance[128]; /* PCR3, PCR4 inputs */
};
/* The image's bytes: a mapping of len bytes, faulted in at once (a
 * fresh malloc'd buffer took a page fault per 4 KiB as read filled it) */
int enc_image_alloc(size_t len, uint8_t **p);
void enc_image_release(uint8_t **p, size_t len);
/* The monitor's body (in the double-forked daemon). Never returns. */
void enc_monitor_main(struct enc_start *s) __attribute__((noreturn));

#endif
