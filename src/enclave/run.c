/*
 * The sandbox backend's commands: run-enclave (check, measure, reserve,
 * start a monitor and wait for it), describe-enclaves, terminate-enclave
 * and console. nitro.md §7.2-§7.3 for names, rules and JSON.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "enclave/internal.h"
#include "ward/attest.h"
#include "ward/crypto.h"
#include "ward/transport.h"

#define RUN_LOCK_MS 30000
#define TERMINATE_MS 10000

static int
run_lock(const char *run, int *fd)
{
	char p[320];
	bool got;
	int r;

	snprintf(p, sizeof(p), "%s/lock", run);
	if ((r = enc_lock(p, RUN_LOCK_MS, fd, &got)) != 0)
		return r;
	if (!got) {
		close(*fd);
		*fd = -1;
		return ward_errf(WARD_EIO,
		    "%s is held by another ward command for more than %d s", p,
		    RUN_LOCK_MS / 1000);
	}
	return 0;
}

/* ---- run-enclave -------------------------------------------------------- */

/* The image file opened and its size checked; the monitor reads it (into
 * memory, once, as it measures: read_image in monitor.c) */
static int
open_eif(const char *path, uint64_t memory_mib, int *fd, size_t *len)
{
	struct stat st;
	uint64_t need;
	int r = 0;

	if ((*fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return ward_errf(WARD_EIO, "%s: %s", path, strerror(errno));
	if (fstat(*fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 548) {
		r = ward_errf(
		    WARD_EFORMAT, "%s: not an enclave image file", path);
		goto out;
	}
	/* nitro-cli E26: the image must fit four times in the memory */
	need =
	    ((uint64_t)st.st_size * WARD_EIF_MEMORY_RATIO + (1u << 20) - 1) >>
	    20;
	if (need > memory_mib) {
		r = ward_errf(WARD_EUSAGE,
		    "insufficient memory requested: %s is %llu MiB, so "
		    "--memory must be at least %llu MiB (%d times the image, "
		    "as on Nitro)",
		    path, (unsigned long long)(st.st_size >> 20),
		    (unsigned long long)need, WARD_EIF_MEMORY_RATIO);
		goto out;
	}
	*len = (size_t)st.st_size;
out:
	if (r != 0) {
		close(*fd);
		*fd = -1;
	}
	return r;
}

/* nitro-cli: <board asset tag>-enc<slot uid>, or i-0000000000000000-enc… */
static int
make_id(char *out, size_t cap)
{
	char tag[64] = "i-0000000000000000", hex[17];
	uint8_t rnd[8];
	FILE *f = fopen("/sys/devices/virtual/dmi/id/board_asset_tag", "re");

	if (f != NULL) {
		char line[64] = "";
		size_t j = 0;

		if (fgets(line, sizeof(line), f) != NULL) {
			for (size_t i = 0;
			     line[i] != '\0' && j + 1 < sizeof(tag); i++)
				if (line[i] > ' ' && line[i] < 0x7f &&
				    line[i] != '/')
					tag[j++] = line[i];
			if (j > 2 && strncmp(line, "i-", 2) == 0)
				tag[j] = '\0';
			else
				snprintf(
				    tag, sizeof(tag), "i-0000000000000000");
		}
		fclose(f);
	}
	/* not a secret, only unique: the kernel's generator directly (the
	 * first RAND_bytes sets up OpenSSL's, 1.7 ms on this path) */
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return ward_errf(WARD_EIO, "getrandom: %s", strerror(errno));
	ward_hex_encode(rnd, sizeof(rnd), hex);
	snprintf(out, cap, "%s-enc%s", tag, hex);
	return 0;
}

static bool
name_used(const struct enc_record *v, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].name, name) == 0)
			return true;
	return false;
}

static int
pick_name(const struct ward_enclave_opts *o, const struct enc_record *v,
    size_t n, char *out, size_t cap)
{
	char base[ENC_NAME_MAX];
	const char *slash;
	size_t len;

	if (o->name != NULL) {
		len = strlen(o->name);
		if (len == 0 || len >= cap)
			return ward_errf(WARD_EUSAGE,
			    "--enclave-name: 1 to %zu characters", cap - 1);
		for (size_t i = 0; i < len; i++)
			if ((unsigned char)o->name[i] < 0x20 ||
			    o->name[i] == 0x7f)
				return ward_errf(WARD_EUSAGE,
				    "--enclave-name: no control characters");
		if (name_used(v, n, o->name))
			return ward_errf(WARD_EUSAGE,
			    "an enclave named %s is already running",
			    ward_quotes(o->name));
		snprintf(out, cap, "%s", o->name);
		return 0;
	}
	/* the image's file name without .eif, made unique with _1, _2… */
	slash = strrchr(o->eif_path, '/');
	snprintf(base, sizeof(base) - 8, "%s", slash ? slash + 1 : o->eif_path);
	len = strlen(base);
	if (len > 4 && strcmp(base + len - 4, ".eif") == 0)
		base[len - 4] = '\0';
	snprintf(out, cap, "%s", base);
	for (unsigned i = 1; name_used(v, n, out); i++)
		snprintf(out, cap, "%s_%u", base, i);
	return 0;
}

static int
pick_cid(const struct ward_enclave_opts *o, const struct enc_record *v,
    size_t n, uint32_t *cid)
{
	if (o->cid != 0) {
		if (o->cid <= WARD_VSOCK_CID_PARENT || o->cid == UINT32_MAX)
			return ward_errf(WARD_EUSAGE,
			    "--enclave-cid %u: CIDs 1-3 and 4294967295 are "
			    "reserved",
			    o->cid);
		for (size_t i = 0; i < n; i++)
			if (v[i].cid == o->cid)
				return ward_errf(WARD_EUSAGE,
				    "--enclave-cid %u is in use by enclave %s",
				    o->cid, v[i].id);
		*cid = o->cid;
		return 0;
	}
	for (uint32_t c = WARD_VSOCK_CID_FIRST; c < UINT32_MAX; c++) {
		bool used = false;

		for (size_t i = 0; i < n && !used; i++)
			used = v[i].cid == c;
		if (!used) {
			*cid = c;
			return 0;
		}
	}
	return ward_errf(WARD_ELIMIT, "no free CID");
}

/* As root, each enclave's uids are a block of 65536 no other running
 * enclave has: the first free one. */
static int
pick_uid_block(const struct enc_record *v, size_t n, uid_t *out)
{
	for (uint32_t slot = 0; slot < ENC_UID_SLOTS; slot++) {
		uid_t base = ENC_UID_BASE + slot * ENC_UID_BLOCK;
		bool used = false;

		for (size_t i = 0; i < n && !used; i++)
			used = v[i].host_uid == base;
		if (!used) {
			*out = base;
			return 0;
		}
	}
	return ward_errf(WARD_ELIMIT, "no free uid block for another enclave");
}

static void
host_identity(const char *env, const char *file, char *out, size_t cap)
{
	const char *v = getenv(env);
	FILE *f;

	out[0] = '\0';
	if (v != NULL) {
		snprintf(out, cap, "%s", v);
		return;
	}
	if ((f = fopen(file, "re")) == NULL)
		return;
	if (fgets(out, (int)cap, f) == NULL)
		out[0] = '\0';
	out[strcspn(out, "\r\n")] = '\0';
	fclose(f);
}

static int
ensure_ca(void)
{
	char dir[512], pem[600];
	int r;

	if ((r = ward_ca_default_dir(dir, sizeof(dir))) != 0)
		return r;
	snprintf(pem, sizeof(pem), "%s/root.pem", dir);
	if (access(pem, F_OK) == 0)
		return 0;
	if ((r = ward_ca_init(dir, false)) != 0)
		return r;
	ward_warn("created a local attestation root in %s (ward ca init); "
	          "key services must trust %s to accept this machine's "
	          "enclaves",
	    dir, pem);
	return 0;
}

static int
connect_console(const char *path, int *fd)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path) >=
	    sizeof(sa.sun_path))
		return ward_errf(WARD_ELIMIT, "%s: path too long", path);
	if ((*fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(*fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		int e = errno;

		if (*fd >= 0)
			close(*fd);
		*fd = -1;
		return ward_errf(WARD_EIO, "connecting to the console %s: %s",
		    path, strerror(e));
	}
	return 0;
}

/* Fork the monitor as a daemon and wait for its word. */
static int
spawn_monitor(struct enc_start *st, int *console_fd, char *msg, size_t cap)
{
	char *end;
	int sp[2], code = 0;
	size_t got = 0;
	ssize_t k;
	pid_t a;

	if (pipe2(sp, O_CLOEXEC) != 0)
		return ward_errf(WARD_EIO, "pipe: %s", strerror(errno));
	fflush(NULL);
	if ((a = fork()) < 0) {
		close(sp[0]);
		close(sp[1]);
		return ward_errf(WARD_EIO, "fork: %s", strerror(errno));
	}
	if (a == 0) {
		/* a session of its own, without a terminal; when run-enclave
		 * exits, the monitor is reparented (one fork, not two: each
		 * fork copies the page tables of the image in memory) */
		setsid();
		close(sp[0]);
		st->status_fd = sp[1];
		ward_close_fds_except(3,
		    (const int[]){st->lock_fd, st->status_fd, st->eif_fd}, 3);
		enc_monitor_main(st);
	}
	close(sp[1]);
	while ((k = read(sp[0], msg + got, cap - 1 - got)) != 0) {
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			break;
		got += (size_t)k;
		if (got >= 2 && memcmp(msg, "C\n", 2) == 0 && *console_fd < 0) {
			/* the monitor waits for us before it starts the
			 * command; if we cannot come, it gives up */
			if (connect_console(st->paths.console, console_fd) != 0)
				ward_warn("%s", ward_errmsg());
			memmove(msg, msg + 2, got - 2);
			got -= 2;
		}
		if (got == cap - 1)
			break;
	}
	close(sp[0]);
	msg[got] = '\0';
	errno = 0;
	code = (int)strtol(msg, &end, 10);
	if (got == 0 || errno != 0 || end == msg ||
	    (*end != ' ' && *end != '\0'))
		return ward_errf(WARD_EINTERNAL,
		    "the enclave's monitor died while starting (see its log)");
	if (code != 0) {
		if (*console_fd >= 0)
			close(*console_fd);
		*console_fd = -1;
		return ward_errf(code, "%s",
		    strchr(msg, ' ') ? strchr(msg, ' ') + 1 : "failed");
	}
	return 0;
}

int
ward_enclave_run(const struct ward_enclave_opts *o, char **json, char **note,
    int *console_fd)
{
	struct ward_allocator alloc;
	struct enc_record *live = NULL;
	struct enc_start *st = NULL;
	struct enc_record rec;
	cpu_set_t used, got;
	uint64_t used_mib = 0;
	size_t n_live = 0;
	static const char *const extra[] = {
	    "State", "Flags", "Measurements", "Backend", "Limits"};
	char run[256], cpus[256], msg[4200];
	const char *limits;
	int lockfd = -1, r;
	bool have_lock;
	json_t *j = NULL;

	*json = NULL;
	*note = NULL;
	*console_fd = -1;
	if (o->eif_path == NULL)
		return ward_errf(WARD_EUSAGE, "--eif-path is required");
	if (o->memory_mib < WARD_ENCLAVE_MIN_MIB)
		return ward_errf(WARD_EUSAGE,
		    "--memory %llu: an enclave needs at least %d MiB",
		    (unsigned long long)o->memory_mib, WARD_ENCLAVE_MIN_MIB);
	if ((o->cpu_count == 0) == (o->cpu_ids == NULL))
		return ward_errf(WARD_EUSAGE,
		    "give exactly one of --cpu-count and --cpu-ids");
	if ((st = calloc(1, sizeof(*st))) == NULL)
		return ward_enomem();
	st->lock_fd = st->status_fd = st->eif_fd = -1;
	if ((r = open_eif(
	         o->eif_path, o->memory_mib, &st->eif_fd, &st->eif_len)) != 0)
		goto out;
	/* the monitor reads the image (once, into memory) and measures it
	 * while it sets up, so start-up pays for the slower of the two only */
	st->eif_path = o->eif_path;
	if ((r = ward_run_dir(run, sizeof(run))) != 0 ||
	    (r = enc_run_dirs(run)) != 0 || (r = run_lock(run, &lockfd)) != 0)
		goto out;
	if ((r = enc_list(run, true, &live, &n_live)) != 0 ||
	    (r = ward_allocator_load(NULL, &alloc)) != 0)
		goto out;
	CPU_ZERO(&used);
	for (size_t i = 0; i < n_live; i++) {
		used_mib += live[i].memory_mib;
		CPU_OR(&used, &used, &live[i].cpus);
	}
	if (o->cpu_ids != NULL) {
		cpu_set_t want, clash, outside;

		if ((r = ward_cpu_list_parse(o->cpu_ids, &want)) != 0)
			goto out;
		CPU_AND(&clash, &want, &used);
		CPU_XOR(&outside, &want, &alloc.cpus);
		CPU_AND(&outside, &outside, &want);
		if (CPU_COUNT(&outside) > 0 || CPU_COUNT(&clash) > 0) {
			ward_cpu_list_format(&alloc.cpus, cpus, sizeof(cpus));
			r = ward_errf(WARD_ELIMIT,
			    "--cpu-ids %s: the allocator (%s) allows CPUs %s, "
			    "and running enclaves hold some of them",
			    o->cpu_ids, alloc.source, cpus);
			goto out;
		}
		if ((r = ward_allocator_reserve(&alloc, used_mib, &used,
		         o->memory_mib, (unsigned)CPU_COUNT(&want), &got)) != 0)
			goto out;
		got = want;
	} else if ((r = ward_allocator_reserve(&alloc, used_mib, &used,
	                o->memory_mib, o->cpu_count, &got)) != 0) {
		goto out;
	}

	memset(&rec, 0, sizeof(rec));
	if ((r = pick_cid(o, live, n_live, &rec.cid)) != 0 ||
	    (r = pick_name(o, live, n_live, rec.name, sizeof(rec.name))) != 0 ||
	    (r = make_id(rec.id, sizeof(rec.id))) != 0)
		goto out;
	rec.cpus = got;
	rec.memory_mib = o->memory_mib;
	rec.debug = o->debug || o->attach_console;
	if (geteuid() != 0)
		rec.host_uid = getuid();
	else if ((r = pick_uid_block(live, n_live, &rec.host_uid)) != 0)
		goto out;
	if ((r = ensure_ca()) != 0)
		goto out;
	host_identity("WARD_HOST_ROLE_ARN", WARD_HOST_ROLE_FILE, st->host_role,
	    sizeof(st->host_role));
	host_identity("WARD_HOST_INSTANCE_ID", WARD_HOST_INSTANCE_FILE,
	    st->host_instance, sizeof(st->host_instance));
	if ((r = enc_paths(rec.id, rec.cid, &st->paths)) != 0)
		goto out;
	if (mkdir(st->paths.dir, 0711) != 0 ||
	    chmod(st->paths.dir, 0711) != 0) {
		r = ward_errf(WARD_EIO, "creating %s: %s", st->paths.dir,
		    strerror(errno));
		goto out;
	}
	if ((r = enc_lock(st->paths.lock, 0, &st->lock_fd, &have_lock)) != 0)
		goto out;
	if (!have_lock) {
		r = ward_errf(WARD_EINTERNAL, "%s is locked", st->paths.lock);
		goto out;
	}
	st->rec = rec;
	st->attach = o->attach_console;
	if ((r = spawn_monitor(st, console_fd, msg, sizeof(msg))) != 0)
		goto out;
	/* "0 " and the record as describe-enclaves shows it; run-enclave
	 * prints nitro-cli's subset */
	if ((j = json_loads(msg + 2, 0, NULL)) == NULL ||
	    (limits = json_string_value(json_object_get(j, "Limits"))) ==
	        NULL) {
		r = ward_errf(
		    WARD_EINTERNAL, "the monitor's answer is garbled");
		goto out;
	}
	ward_cpu_list_format(&rec.cpus, cpus, sizeof(cpus));
	if (asprintf(note,
	        "Started enclave with enclave-cid: %u, memory: %llu MiB, "
	        "cpu-ids: [%s] (sandbox; %s)",
	        rec.cid, (unsigned long long)rec.memory_mib, cpus,
	        limits) < 0) {
		*note = NULL;
		r = ward_enomem();
		goto out;
	}
	for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++)
		json_object_del(j, extra[i]);
	if ((*json = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER)) ==
	    NULL)
		r = ward_enomem();
out:
	json_decref(j);
	if (lockfd >= 0)
		close(lockfd);
	if (st != NULL) {
		if (st->lock_fd >= 0)
			close(st->lock_fd);
		if (st->eif_fd >= 0)
			close(st->eif_fd);
		ward_eif_image_free(&st->img);
		free(st);
	}
	free(live);
	if (r != 0) {
		free(*json);
		*json = NULL;
		if (*console_fd >= 0)
			close(*console_fd);
		*console_fd = -1;
	}
	return r;
}

/* ---- describe, terminate, console ---------------------------------------- */

static int
live_list(bool reap, char *run, size_t cap, struct enc_record **v, size_t *n)
{
	struct stat st;
	int lockfd = -1, r;

	*v = NULL;
	*n = 0;
	if ((r = ward_run_dir(run, cap)) != 0)
		return r;
	if (stat(run, &st) != 0)
		return 0; /* no enclave ever ran here */
	if ((r = enc_run_check(run)) != 0)
		return r;
	if (reap && (r = run_lock(run, &lockfd)) != 0)
		return r;
	r = enc_list(run, reap, v, n);
	if (lockfd >= 0)
		close(lockfd);
	return r;
}

int
ward_enclave_describe(char **json)
{
	struct enc_record *v = NULL;
	size_t n = 0;
	char run[256];
	json_t *a;
	int r;

	*json = NULL;
	if ((r = live_list(true, run, sizeof(run), &v, &n)) != 0)
		return r;
	if ((a = json_array()) == NULL) {
		free(v);
		return ward_enomem();
	}
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].state, "STARTING") != 0)
			json_array_append_new(a, enc_record_json(&v[i], true));
	free(v);
	*json = json_dumps(a, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(a);
	return *json != NULL ? 0 : ward_enomem();
}

static bool
matches(const struct enc_record *r, const char *match)
{
	return strcmp(r->id, match) == 0 || strcmp(r->name, match) == 0;
}

static int
stop_one(const char *run, const struct enc_record *rec)
{
	struct enc_paths p;
	bool got = false;
	int fd = -1, r;

	if ((r = enc_paths(rec->id, rec->cid, &p)) != 0)
		return r;
	/* open the lock first: it tells when the monitor has gone */
	if ((r = enc_lock(p.lock, 0, &fd, &got)) != 0)
		return errno == ENOENT ? 0 : r;
	if (!got) {
		if (kill(rec->monitor, SIGTERM) != 0 && errno != ESRCH)
			ward_warn("signalling monitor %d: %s",
			    (int)rec->monitor, strerror(errno));
		close(fd);
		fd = -1;
		if ((r = enc_lock(p.lock, TERMINATE_MS, &fd, &got)) != 0)
			return errno == ENOENT ? 0 : r;
		if (!got) {
			ward_warn("monitor %d did not stop in %d s; killing it",
			    (int)rec->monitor, TERMINATE_MS / 1000);
			kill(rec->monitor, SIGKILL);
			close(fd);
			fd = -1;
			if ((r = enc_lock(p.lock, 2000, &fd, &got)) != 0)
				return r;
		}
	}
	if (got && access(p.dir, F_OK) == 0) {
		/* whatever a killed monitor left, under the run lock so that
		 * no new enclave has taken its CID meanwhile */
		int lk = -1;

		if (run_lock(run, &lk) == 0) {
			if (access(p.dir, F_OK) == 0)
				enc_cleanup(&p, rec);
			close(lk);
		}
	}
	if (fd >= 0)
		close(fd);
	return got
	    ? 0
	    : ward_errf(WARD_EIO, "enclave %s could not be stopped", rec->id);
}

int
ward_enclave_terminate(const char *match, bool all, char **json)
{
	struct enc_record *v = NULL;
	size_t n = 0, done = 0;
	char run[256];
	json_t *o;
	int r;

	*json = NULL;
	if ((r = live_list(true, run, sizeof(run), &v, &n)) != 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		char *line = NULL, *joined;

		if (!all && !matches(&v[i], match))
			continue;
		if ((r = stop_one(run, &v[i])) != 0)
			goto out;
		done++;
		o = json_pack("{s:s,s:s,s:b}", "EnclaveName", v[i].name,
		    "EnclaveID", v[i].id, "Terminated", 1);
		line = o ? json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER)
		         : NULL;
		json_decref(o);
		if (line == NULL ||
		    asprintf(&joined, "%s%s%s\n", *json ? *json : "", "",
		        line) < 0) {
			free(line);
			r = ward_enomem();
			goto out;
		}
		free(line);
		free(*json);
		*json = joined;
	}
	if (done == 0 && !all)
		r = ward_errf(WARD_EUSAGE,
		    "no running enclave has the ID or "
		    "name %s (see ward describe-enclaves)",
		    ward_quotes(match));
	if (done == 0 && all && (*json = strdup("")) == NULL)
		r = ward_enomem();
out:
	free(v);
	if (r != 0) {
		free(*json);
		*json = NULL;
	}
	return r;
}

int
ward_enclave_console_connect(const char *match, int *fd, uint32_t *cid)
{
	struct enc_record *v = NULL, *rec = NULL;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct enc_paths p;
	size_t n = 0;
	char run[256];
	int r;

	*fd = -1;
	if ((r = live_list(false, run, sizeof(run), &v, &n)) != 0)
		return r;
	for (size_t i = 0; i < n && rec == NULL; i++)
		if (matches(&v[i], match))
			rec = &v[i];
	if (rec == NULL) {
		r = ward_errf(WARD_EUSAGE,
		    "no running enclave has the ID or "
		    "name %s (see ward describe-enclaves)",
		    ward_quotes(match));
		goto out;
	}
	if (!rec->debug) {
		r = ward_errf(WARD_EUSAGE,
		    "enclave %s was not started with --debug-mode, so it has "
		    "no console (as on Nitro, E44)",
		    rec->id);
		goto out;
	}
	*cid = rec->cid;
	if ((r = enc_paths(rec->id, rec->cid, &p)) != 0)
		goto out;
	if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s",
	        p.console) >= sizeof(sa.sun_path)) {
		r = ward_errf(WARD_ELIMIT, "%s: path too long", p.console);
		goto out;
	}
	if ((*fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(*fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		r = ward_errf(WARD_EIO, "connecting to the console of %s: %s",
		    rec->id, strerror(errno));
		if (*fd >= 0)
			close(*fd);
		*fd = -1;
	}
out:
	free(v);
	return r;
}

int
ward_enclave_console_stream(int fd, int disconnect_timeout, int out_fd)
{
	struct timespec t0, now;
	uint8_t buf[4096];

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int wait_ms = -1, k;
		ssize_t got;

		if (disconnect_timeout > 0) {
			long long left;

			clock_gettime(CLOCK_MONOTONIC, &now);
			left = (long long)disconnect_timeout * 1000 -
			    ((now.tv_sec - t0.tv_sec) * 1000LL +
			        (now.tv_nsec - t0.tv_nsec) / 1000000);
			if (left <= 0)
				return 0;
			wait_ms = (int)left;
		}
		if ((k = poll(&p, 1, wait_ms)) < 0) {
			if (errno == EINTR && ward_signal_caught() == 0)
				continue;
			return ward_errf(WARD_EINTR, "console: interrupted");
		}
		if (k == 0)
			continue;
		if ((got = read(fd, buf, sizeof(buf))) < 0) {
			if (errno == EINTR)
				continue;
			return ward_errf(
			    WARD_EIO, "console: %s", strerror(errno));
		}
		if (got == 0)
			return 0; /* the enclave ended */
		for (ssize_t off = 0; off < got;) {
			ssize_t w =
			    write(out_fd, buf + off, (size_t)(got - off));

			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				return ward_errf(WARD_EIO, "console output: %s",
				    strerror(errno));
			off += w;
		}
	}
}
