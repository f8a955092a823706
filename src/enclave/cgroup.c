/*
 * An enclave's cgroups: its memory bound, a pids limit and its CPUs, in
 * cgroup v2 or, on a machine whose controllers are on v1 hierarchies, in
 * the v1 memory, pids and cpuset controllers. The enclave's cgroups go
 * under this process's own cgroup in each hierarchy (<own>/ward/<ID>), so
 * whatever bounds ward's caller also bounds its enclaves; on v2, where a
 * cgroup with processes cannot hand controllers down, under the root's
 * ward/ when this process sits in a populated cgroup.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "enclave/internal.h"

#define CG_PATH 320

static int
put(const char *dir, const char *file, const char *value)
{
	char p[CG_PATH + 64];
	int fd, r = 0;
	size_t n = strlen(value);

	snprintf(p, sizeof(p), "%s/%s", dir, file);
	if ((fd = open(p, O_WRONLY | O_CLOEXEC)) < 0)
		return ward_errf(WARD_EIO, "%s: %s", p, strerror(errno));
	if (write(fd, value, n) != (ssize_t)n)
		r = ward_errf(WARD_EIO, "writing %s to %s: %s", value, p,
		    strerror(errno));
	close(fd);
	return r;
}

static int
get(const char *dir, const char *file, char *out, size_t cap)
{
	char p[CG_PATH + 64];
	int fd;
	ssize_t k;

	snprintf(p, sizeof(p), "%s/%s", dir, file);
	if ((fd = open(p, O_RDONLY | O_CLOEXEC)) < 0)
		return ward_errf(WARD_EIO, "%s: %s", p, strerror(errno));
	k = read(fd, out, cap - 1);
	close(fd);
	if (k < 0)
		return ward_errf(WARD_EIO, "%s: %s", p, strerror(errno));
	out[k] = '\0';
	out[strcspn(out, "\n")] = '\0';
	return 0;
}

static bool
exists(const char *dir, const char *file)
{
	char p[CG_PATH + 64];

	snprintf(p, sizeof(p), "%s/%s", dir, file);
	return access(p, F_OK) == 0;
}

static int
make_dir(const char *p)
{
	if (mkdir(p, 0755) != 0 && errno != EEXIST)
		return ward_errf(
		    WARD_EIO, "creating cgroup %s: %s", p, strerror(errno));
	return 0;
}

/*
 * Where the hierarchy holding controller (NULL: the v2 one) is mounted, and
 * this process's cgroup in it.
 */
static int
find(const char *controller, char *mnt, size_t mcap, char *own, size_t ocap)
{
	char line[4096];
	FILE *f;
	bool found = false;

	if ((f = fopen("/proc/self/mountinfo", "re")) == NULL)
		return -1;
	while (!found && fgets(line, sizeof(line), f) != NULL) {
		/* id parent maj:min root mountpoint opts... - type src sopts */
		char *sep = strstr(line, " - "), *fields[6], *save = NULL;
		char *type, *src, *sopts;
		size_t i = 0;

		if (sep == NULL)
			continue;
		*sep = '\0';
		for (char *t = strtok_r(line, " ", &save); t != NULL && i < 6;
		     t = strtok_r(NULL, " ", &save))
			fields[i++] = t;
		type = strtok_r(sep + 3, " ", &save);
		src = strtok_r(NULL, " ", &save);
		sopts = strtok_r(NULL, " \n", &save);
		if (i < 5 || type == NULL || src == NULL || sopts == NULL)
			continue;
		if (controller == NULL && strcmp(type, "cgroup2") == 0)
			found = true;
		if (controller != NULL && strcmp(type, "cgroup") == 0) {
			char *o, *s2 = NULL;

			for (o = strtok_r(sopts, ",", &s2); o != NULL;
			     o = strtok_r(NULL, ",", &s2))
				if (strcmp(o, controller) == 0)
					found = true;
		}
		if (found &&
		    (size_t)snprintf(mnt, mcap, "%s", fields[4]) >= mcap)
			found = false;
	}
	fclose(f);
	if (!found)
		return -1;
	/* /proc/self/cgroup: "N:ctrl,ctrl:/path" (v1) or "0::/path" (v2) */
	if ((f = fopen("/proc/self/cgroup", "re")) == NULL)
		return -1;
	found = false;
	while (!found && fgets(line, sizeof(line), f) != NULL) {
		char *a = strchr(line, ':'), *b = a ? strchr(a + 1, ':') : NULL;

		if (b == NULL)
			continue;
		*b = '\0';
		b[1 + strcspn(b + 1, "\n")] = '\0';
		if (controller == NULL) {
			found = a[1] == '\0';
		} else {
			char *o, *s2 = NULL;

			for (o = strtok_r(a + 1, ",", &s2); o != NULL;
			     o = strtok_r(NULL, ",", &s2))
				if (strcmp(o, controller) == 0)
					found = true;
		}
		if (found &&
		    (size_t)snprintf(own, ocap, "%s",
		        strcmp(b + 1, "/") == 0 ? "" : b + 1) >= ocap)
			found = false;
	}
	fclose(f);
	return found ? 0 : -1;
}

/* v1 cpuset: a new cgroup starts with no CPUs and no memory nodes */
static int
cpuset_inherit(const char *parent, const char *child, const char *cpus)
{
	char v[1024];
	int r;

	if ((r = get(parent, "cpuset.mems", v, sizeof(v))) != 0 ||
	    (r = put(child, "cpuset.mems", v)) != 0)
		return r;
	if (cpus == NULL) {
		if ((r = get(parent, "cpuset.cpus", v, sizeof(v))) != 0)
			return r;
		cpus = v;
	}
	return put(child, "cpuset.cpus", cpus);
}

static int
v1_create(const char *id, uint64_t mib, const char *cpus, unsigned pids,
    struct enc_cgroup *cg)
{
	static const char *const ctl[] = {"memory", "pids", "cpuset"};
	char mnt[256], own[256], base[CG_PATH], mine[CG_PATH], v[64];
	int r;

	for (size_t i = 0; i < 3; i++) {
		if (find(ctl[i], mnt, sizeof(mnt), own, sizeof(own)) != 0) {
			if (i == 0)
				return ward_errf(WARD_EIO,
				    "no cgroup v1 memory controller mounted");
			continue; /* pids or cpuset missing: say so below */
		}
		if ((size_t)snprintf(base, sizeof(base), "%s%s/ward", mnt,
		        own) >= sizeof(base) ||
		    (size_t)snprintf(mine, sizeof(mine), "%s/%s", base, id) >=
		        sizeof(mine))
			return ward_errf(WARD_ELIMIT, "cgroup path too long");
		if ((r = make_dir(base)) != 0)
			return r;
		if (i == 2) {
			char parent[CG_PATH];

			if ((size_t)snprintf(parent, sizeof(parent), "%s%s",
			        mnt, own) >= sizeof(parent))
				return ward_errf(
				    WARD_ELIMIT, "cgroup path too long");
			if ((r = cpuset_inherit(parent, base, NULL)) != 0)
				return r;
		}
		if ((r = make_dir(mine)) != 0)
			return r;
		if ((size_t)snprintf(cg->orig[cg->n], sizeof(cg->orig[0]),
		        "%s%s", mnt, own) >= sizeof(cg->orig[0]))
			return ward_errf(WARD_ELIMIT, "cgroup path too long");
		memcpy(cg->paths[cg->n++], mine, sizeof(mine));
		if (i == 0) {
			snprintf(v, sizeof(v), "%llu",
			    (unsigned long long)mib << 20);
			if ((r = put(mine, "memory.limit_in_bytes", v)) != 0)
				return r;
			/* no swapping past the bound where swap is counted */
			if (exists(mine, "memory.memsw.limit_in_bytes") &&
			    (r = put(mine, "memory.memsw.limit_in_bytes", v)) !=
			        0)
				return r;
		} else if (i == 1) {
			snprintf(v, sizeof(v), "%u", pids);
			if ((r = put(mine, "pids.max", v)) != 0)
				return r;
		} else if ((r = cpuset_inherit(base, mine, cpus)) != 0) {
			return r;
		}
	}
	cg->version = 1;
	snprintf(cg->limits, sizeof(cg->limits),
	    "cgroup v1: memory.limit_in_bytes %llu MiB, %s, %s",
	    (unsigned long long)mib,
	    cg->n > 1 ? "pids.max set" : "no pids controller",
	    cg->n > 2 ? "cpuset" : "affinity only (no cpuset controller)");
	return 0;
}

static int
enable(const char *dir)
{
	char have[256], want[128] = "";
	static const char *const ctl[] = {"memory", "pids", "cpuset"};
	size_t n = 0;

	if (get(dir, "cgroup.controllers", have, sizeof(have)) != 0)
		return -1;
	for (size_t i = 0; i < 3; i++)
		if (strstr(have, ctl[i]) != NULL)
			n += (size_t)snprintf(want + n, sizeof(want) - n,
			    "%s+%s", n ? " " : "", ctl[i]);
	if (strstr(have, "memory") == NULL)
		return ward_errf(
		    WARD_EIO, "cgroup v2 %s has no memory controller", dir);
	return put(dir, "cgroup.subtree_control", want);
}

static int
v2_create(const char *id, uint64_t mib, const char *cpus, unsigned pids,
    struct enc_cgroup *cg)
{
	char mnt[256], own[256], base[CG_PATH], mine[CG_PATH], v[64], procs[64];
	char here[CG_PATH];
	int r;

	if (find(NULL, mnt, sizeof(mnt), own, sizeof(own)) != 0)
		return ward_errf(WARD_EIO, "no cgroup v2 hierarchy mounted");
	/* a populated cgroup cannot enable controllers for children */
	if ((size_t)snprintf(base, sizeof(base), "%s%s", mnt, own) >=
	    sizeof(base))
		return ward_errf(WARD_ELIMIT, "cgroup path too long");
	_Static_assert(sizeof(here) == sizeof(base), "cgroup paths");
	memcpy(here, base, sizeof(here));
	if (own[0] != '\0' &&
	    get(base, "cgroup.procs", procs, sizeof(procs)) == 0 &&
	    procs[0] != '\0')
		own[0] = '\0';
	if ((size_t)snprintf(base, sizeof(base), "%s%s", mnt, own) >=
	    sizeof(base))
		return ward_errf(WARD_ELIMIT, "cgroup path too long");
	if ((r = enable(base)) != 0)
		return r;
	if ((size_t)snprintf(base, sizeof(base), "%s%s/ward", mnt, own) >=
	        sizeof(base) ||
	    (size_t)snprintf(mine, sizeof(mine), "%s/%s", base, id) >=
	        sizeof(mine))
		return ward_errf(WARD_ELIMIT, "cgroup path too long");
	if ((r = make_dir(base)) != 0 || (r = enable(base)) != 0 ||
	    (r = make_dir(mine)) != 0)
		return r;
	memcpy(cg->orig[cg->n], here, sizeof(cg->orig[0]));
	memcpy(cg->paths[cg->n++], mine, sizeof(mine));
	snprintf(v, sizeof(v), "%llu", (unsigned long long)mib << 20);
	if ((r = put(mine, "memory.max", v)) != 0)
		return r;
	if (exists(mine, "memory.swap.max") &&
	    (r = put(mine, "memory.swap.max", "0")) != 0)
		return r;
	snprintf(v, sizeof(v), "%u", pids);
	if (exists(mine, "pids.max") && (r = put(mine, "pids.max", v)) != 0)
		return r;
	if (exists(mine, "cpuset.cpus") &&
	    (r = put(mine, "cpuset.cpus", cpus)) != 0)
		return r;
	cg->version = 2;
	snprintf(cg->limits, sizeof(cg->limits),
	    "cgroup v2: memory.max %llu MiB, %s, %s", (unsigned long long)mib,
	    exists(mine, "pids.max") ? "pids.max set" : "no pids controller",
	    exists(mine, "cpuset.cpus") ? "cpuset"
	                                : "affinity only (no cpuset)");
	return 0;
}

/* Memory controllers on a v1 hierarchy win: then v2 has none of them. */
static bool
v1_memory(void)
{
	char mnt[256], own[256];

	return find("memory", mnt, sizeof(mnt), own, sizeof(own)) == 0;
}

int
enc_cgroup_create(const char *id, uint64_t memory_mib, const cpu_set_t *cpus,
    unsigned pids_max, struct enc_cgroup *cg)
{
	char list[1024];
	int r;

	memset(cg, 0, sizeof(*cg));
	ward_cpu_list_format(cpus, list, sizeof(list));
	r = v1_memory() ? v1_create(id, memory_mib, list, pids_max, cg)
	                : v2_create(id, memory_mib, list, pids_max, cg);
	if (r != 0) {
		enc_cgroup_destroy(cg->paths, cg->n);
		cg->n = 0;
		cg->version = 0;
		if (geteuid() == 0)
			return r;
		/* an ordinary user without a delegated cgroup */
		ward_debug("no cgroup for the enclave: %s", ward_errmsg());
		snprintf(cg->limits, sizeof(cg->limits),
		    "rlimits: RLIMIT_AS %llu MiB per process, RLIMIT_NPROC "
		    "%u (no cgroup delegated to this user)",
		    (unsigned long long)memory_mib, pids_max);
	}
	return 0;
}

/*
 * On v1, "0" written to a hierarchy's tasks file moves the calling thread
 * alone, and the kernel (6.0 and later) then skips the threadgroup rwsem
 * whose writer side waits for an RCU grace period: 0.05 ms instead of
 * 4-20 ms here. The thread that joins is the one that clones the enclave,
 * so the enclave is born in the cgroups all the same. v2 has no tasks
 * file (cgroup.threads needs a threaded subtree): the whole process moves.
 */
static int
move_self(const struct enc_cgroup *cg, char (*dirs)[320])
{
	char v[32];
	int r = 0, r2;

	if (cg->version == 1)
		snprintf(v, sizeof(v), "0");
	else
		snprintf(v, sizeof(v), "%d", (int)getpid());
	for (size_t i = 0; i < cg->n; i++)
		if ((r2 = put(dirs[i],
		         cg->version == 1 ? "tasks" : "cgroup.procs", v)) !=
		        0 &&
		    r == 0)
			r = r2;
	return r;
}

int
enc_cgroup_join(struct enc_cgroup *cg)
{
	int r;

	if (cg->n == 0)
		return 0;
	cg->joined = true;
	if ((r = move_self(cg, cg->paths)) != 0)
		enc_cgroup_leave(cg);
	return r;
}

int
enc_cgroup_leave(struct enc_cgroup *cg)
{
	int r;

	if (!cg->joined)
		return 0;
	r = move_self(cg, cg->orig);
	cg->joined = r != 0;
	return r;
}

static bool
self_in(const char *dir)
{
	char p[CG_PATH + 64], line[32];
	FILE *f;
	bool in = false;

	snprintf(p, sizeof(p), "%s/cgroup.procs", dir);
	if ((f = fopen(p, "re")) == NULL)
		return false;
	while (!in && fgets(line, sizeof(line), f) != NULL)
		in = strtol(line, NULL, 10) == (long)getpid();
	fclose(f);
	return in;
}

static bool
kill_all(const char *dir)
{
	char p[CG_PATH + 64], line[32];
	FILE *f;
	bool any = false;

	/* never the caller itself (a monitor that has not left yet) */
	if (exists(dir, "cgroup.kill") && !self_in(dir) &&
	    put(dir, "cgroup.kill", "1") == 0)
		return false; /* the kernel does it; rmdir waits below */
	snprintf(p, sizeof(p), "%s/cgroup.procs", dir);
	if ((f = fopen(p, "re")) == NULL)
		return false;
	while (fgets(line, sizeof(line), f) != NULL) {
		long pid = strtol(line, NULL, 10);

		if (pid > 1 && pid != getpid() &&
		    kill((pid_t)pid, SIGKILL) == 0)
			any = true;
	}
	fclose(f);
	return any;
}

void
enc_cgroup_destroy(char (*paths)[320], size_t n)
{
	for (size_t i = n; i-- > 0;) {
		struct timespec ts = {0, 10 * 1000 * 1000};
		int tries = 0;

		if (paths[i][0] == '\0')
			continue;
		/* the kernel empties a cgroup asynchronously after SIGKILL */
		while (
		    rmdir(paths[i]) != 0 && errno == EBUSY && tries++ < 300) {
			kill_all(paths[i]);
			nanosleep(&ts, NULL);
		}
		if (access(paths[i], F_OK) == 0)
			ward_warn("cgroup %s could not be removed: %s",
			    paths[i], strerror(errno));
	}
}
