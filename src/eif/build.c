/*
 * Building an enclave image (`ward build-enclave`): the rootfs (a
 * directory or an unpacked OCI image) plus --app plus, by default, ward
 * and the shared libraries it needs, laid out as nitro-cli lays out its
 * ramdisks (nitro.md §1.3), each a deterministic cpio; then the EIF.
 *
 * Determinism: every entry of both ramdisks is listed first, sorted by
 * name with strcmp (never the locale), written with fixed owners and
 * times (cpio.c), and the metadata's BuildTime comes from
 * SOURCE_DATE_EPOCH or is the epoch. Nothing depends on the machine, the
 * directory or the clock.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <link.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "eif/internal.h"
#include "ward/eif.h"

#define WARD_DIR "ward" /* /ward/bin/ward, /ward/lib/... in the rootfs */
#define DEFAULT_PATH                                                           \
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define ENTRIES_MAX (4u << 20)

/* One entry of the customer ramdisk, before it is written. */
struct entry {
	char *name; /* archive name: rootfs/... */
	char *src; /* file on disk, or NULL */
	char *target; /* symlink target */
	uint32_t mode;
	uint64_t size;
	int prio; /* a later source replaces an earlier one */
};

struct list {
	struct entry *v;
	size_t n, cap;
};

static void
list_free(struct list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].name);
		free(l->v[i].src);
		free(l->v[i].target);
	}
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static int
list_add(struct list *l, const char *name, const char *src, const char *target,
    uint32_t mode, uint64_t size, int prio)
{
	struct entry *e;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 256;
		struct entry *v;

		if (cap > ENTRIES_MAX)
			return ward_errf(WARD_ELIMIT,
			    "more than %u files in the image", ENTRIES_MAX);
		if ((v = realloc(l->v, cap * sizeof(*v))) == NULL)
			return ward_enomem();
		l->v = v;
		l->cap = cap;
	}
	e = &l->v[l->n];
	memset(e, 0, sizeof(*e));
	if ((e->name = strdup(name)) == NULL ||
	    (src != NULL && (e->src = strdup(src)) == NULL) ||
	    (target != NULL && (e->target = strdup(target)) == NULL)) {
		free(e->name);
		free(e->src);
		return ward_enomem();
	}
	e->mode = mode;
	e->size = size;
	e->prio = prio;
	l->n++;
	return 0;
}

static int
join(char *out, size_t cap, const char *a, const char *b)
{
	int n = snprintf(out, cap, "%s%s%s", a, a[0] && b[0] ? "/" : "", b);

	if (n < 0 || (size_t)n >= cap)
		return ward_errf(WARD_ELIMIT, "path too long: %s/%s", a, b);
	return 0;
}

static int
cmp_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * Add dir (on disk) under the archive name prefix, recursively, in
 * strcmp order. Sockets, fifos and device nodes are skipped: the
 * enclave's /dev is mounted at boot.
 */
static int
walk(struct list *l, const char *dir, const char *prefix, int prio,
    unsigned depth)
{
	DIR *d = NULL;
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0;
	int r = 0;

	if (depth > 256)
		return ward_errf(WARD_ELIMIT, "%s: nested too deep", dir);
	if ((d = opendir(dir)) == NULL)
		return ward_errf(WARD_EIO, "%s: %s", dir, strerror(errno));
	while ((errno = 0, de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (n == cap) {
			char **v;

			cap = cap ? cap * 2 : 64;
			if ((v = realloc(names, cap * sizeof(*v))) == NULL) {
				r = ward_enomem();
				goto out;
			}
			names = v;
		}
		if ((names[n] = strdup(de->d_name)) == NULL) {
			r = ward_enomem();
			goto out;
		}
		n++;
	}
	if (errno != 0) {
		r = ward_errf(WARD_EIO, "%s: %s", dir, strerror(errno));
		goto out;
	}
	if (n > 0)
		qsort(names, n, sizeof(*names), cmp_name);
	for (size_t i = 0; i < n; i++) {
		char src[PATH_MAX], name[PATH_MAX], target[PATH_MAX];
		struct stat st;
		ssize_t k;

		if ((r = join(src, sizeof(src), dir, names[i])) != 0 ||
		    (r = join(name, sizeof(name), prefix, names[i])) != 0)
			goto out;
		if (lstat(src, &st) != 0) {
			r = ward_errf(WARD_EIO, "%s: %s", src, strerror(errno));
			goto out;
		}
		if (S_ISDIR(st.st_mode)) {
			if ((r = list_add(l, name, NULL, NULL,
			         S_IFDIR | (st.st_mode & 07777), 0, prio)) !=
			        0 ||
			    (r = walk(l, src, name, prio, depth + 1)) != 0)
				goto out;
		} else if (S_ISREG(st.st_mode)) {
			if ((r = list_add(l, name, src, NULL,
			         S_IFREG | (st.st_mode & 07777),
			         (uint64_t)st.st_size, prio)) != 0)
				goto out;
		} else if (S_ISLNK(st.st_mode)) {
			if ((k = readlink(src, target, sizeof(target) - 1)) <
			    0) {
				r = ward_errf(
				    WARD_EIO, "%s: %s", src, strerror(errno));
				goto out;
			}
			target[k] = '\0';
			if ((r = list_add(l, name, NULL, target, S_IFLNK | 0777,
			         (uint64_t)k, prio)) != 0)
				goto out;
		} else {
			ward_info("%s: not a file, directory or symlink; "
			          "left out of the image",
			    src);
		}
	}
out:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	closedir(d);
	return r;
}

/* Every entry's parent directories exist (mode 0755 when implied). */
static int
add_parents(struct list *l, const char *name)
{
	char p[PATH_MAX];
	size_t n = strlen(name);

	if (n >= sizeof(p))
		return ward_errf(WARD_ELIMIT, "path too long: %s", name);
	memcpy(p, name, n + 1);
	for (size_t i = 1; i < n; i++) {
		int r;

		if (p[i] != '/')
			continue;
		p[i] = '\0';
		if ((r = list_add(l, p, NULL, NULL, S_IFDIR | 0755, 0, -1)) !=
		    0)
			return r;
		p[i] = '/';
	}
	return 0;
}

static int
cmp_name_only(const void *a, const void *b)
{
	return strcmp(
	    ((const struct entry *)a)->name, ((const struct entry *)b)->name);
}

static int
cmp_entry(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c != 0)
		return c;
	return x->prio < y->prio ? -1 : x->prio > y->prio;
}

static void
drop(struct entry *e)
{
	free(e->name);
	free(e->src);
	free(e->target);
}

/*
 * Sort; for each name keep the entry of the highest priority (an implied
 * parent directory has the lowest); drop whatever lies under a name that
 * ended up not a directory (an --app file replacing a rootfs directory).
 * Parents sort before their children and every parent is listed
 * (add_parents), so one pass with a binary search over what is kept
 * settles it.
 */
static void
settle(struct list *l)
{
	size_t w = 0;

	qsort(l->v, l->n, sizeof(*l->v), cmp_entry);
	for (size_t i = 0; i < l->n; i++) {
		struct entry *e = &l->v[i], key = {0}, *parent;
		char *slash;

		if (i + 1 < l->n && strcmp(e->name, l->v[i + 1].name) == 0) {
			drop(e);
			continue;
		}
		if ((slash = strrchr(e->name, '/')) != NULL) {
			*slash = '\0';
			key.name = e->name;
			key.prio = INT_MIN;
			parent = bsearch(
			    &key, l->v, w, sizeof(*l->v), cmp_name_only);
			*slash = '/';
			if (parent == NULL || !S_ISDIR(parent->mode)) {
				drop(e);
				continue;
			}
		}
		l->v[w++] = *e;
	}
	l->n = w;
}

/* PT_INTERP of an ELF64 file: the dynamic loader it names. */
static int
elf_interp(const char *path, char *out, size_t cap)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph;
	int fd,
	    r = ward_errf(WARD_EUNSUPPORTED,
	        "%s: not a dynamically linked 64-bit ELF file", path);

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return ward_errf(WARD_EIO, "%s: %s", path, strerror(errno));
	if (pread(fd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh) ||
	    memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_phentsize != sizeof(ph))
		goto out;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		if (pread(fd, &ph, sizeof(ph),
		        (off_t)(eh.e_phoff + (uint64_t)i * sizeof(ph))) !=
		    (ssize_t)sizeof(ph))
			goto out;
		if (ph.p_type != PT_INTERP)
			continue;
		if (ph.p_filesz == 0 || ph.p_filesz >= cap ||
		    pread(fd, out, ph.p_filesz, (off_t)ph.p_offset) !=
		        (ssize_t)ph.p_filesz)
			goto out;
		out[ph.p_filesz - 1] = '\0';
		r = 0;
		break;
	}
out:
	close(fd);
	return r;
}

/*
 * target's shared libraries, resolved as the dynamic loader resolves them
 * (`ld.so --list`, what ldd runs), into /ward/lib. *have_interp is set
 * when the loader itself is among them (its name into interp_name).
 */
static int
add_libs(struct list *l, const char *interp, const char *target,
    char *interp_name, size_t cap, bool *have_interp)
{
	char line[PATH_MAX * 2];
	int pipefd[2] = {-1, -1}, status, r;
	posix_spawn_file_actions_t fa;
	pid_t pid;
	FILE *f = NULL;
	struct stat st;

	if (pipe2(pipefd, O_CLOEXEC) != 0)
		return ward_errf(WARD_EIO, "pipe: %s", strerror(errno));
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
	char *argv[] = {(char *)interp, (char *)"--list", (char *)target, NULL};
	char *envp[] = {NULL};
	/* An empty environment: LD_PRELOAD, LD_LIBRARY_PATH and the like
	 * must not decide what goes into the image. */
	r = posix_spawn(&pid, interp, &fa, NULL, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	close(pipefd[1]);
	if (r != 0) {
		close(pipefd[0]);
		return ward_errf(
		    WARD_EIO, "running %s --list: %s", interp, strerror(r));
	}
	if ((f = fdopen(pipefd[0], "r")) == NULL) {
		close(pipefd[0]);
		r = ward_enomem();
		goto wait;
	}
	/* Lines: "\tname => /path (0x...)", "\t/lib64/ld-... (0x...)",
	 * "\tlinux-vdso.so.1 (0x...)". */
	while (r == 0 && fgets(line, sizeof(line), f) != NULL) {
		char *p = line + strspn(line, " \t"), *arrow, *end;
		char real[PATH_MAX], name[PATH_MAX];
		const char *base;

		if ((arrow = strstr(p, " => ")) != NULL)
			p = arrow + 4;
		if (*p != '/')
			continue; /* the vDSO, or "not found" */
		if ((end = strstr(p, " (")) != NULL)
			*end = '\0';
		p[strcspn(p, "\n")] = '\0';
		if (realpath(p, real) == NULL || stat(real, &st) != 0) {
			r = ward_errf(WARD_EIO, "%s: %s", p, strerror(errno));
			break;
		}
		base = strrchr(p, '/') + 1;
		if (strcmp(p, interp) == 0) {
			*have_interp = true;
			snprintf(interp_name, cap, "%s", base);
		}
		if ((r = join(name, sizeof(name), "rootfs/" WARD_DIR "/lib",
		         base)) == 0)
			r = list_add(l, name, real, NULL, S_IFREG | 0755,
			    (uint64_t)st.st_size, 2);
	}
	fclose(f);
wait:
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (r == 0 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0))
		r = ward_errf(WARD_EIO, "%s --list %s failed", interp, target);
	return r;
}

/*
 * A library ward loads with dlopen (its own on-first-use libraries, a
 * model runtime): found as that dlopen will find it, put into /ward/lib
 * under the name dlopen asks for, with its own libraries. what and
 * package name it in errors.
 */
static int
add_dlopened(struct list *l, const char *interp, const char *soname,
    const char *what, const char *package)
{
	char real[PATH_MAX], name[PATH_MAX], ld[NAME_MAX + 1];
	struct link_map *lm = NULL;
	struct stat st;
	bool have_interp = false;
	void *h;
	int r;

	if ((h = dlopen(soname, RTLD_LAZY | RTLD_LOCAL)) == NULL) {
		const char *why = dlerror();

		return ward_errf(WARD_EIO,
		    "%s: %s is not on this machine (%s; install %s)", what,
		    soname, why != NULL ? why : "dlopen failed", package);
	}
	if (dlinfo(h, RTLD_DI_LINKMAP, &lm) != 0 || lm == NULL ||
	    lm->l_name == NULL || lm->l_name[0] != '/' ||
	    realpath(lm->l_name, real) == NULL || stat(real, &st) != 0) {
		r = ward_errf(
		    WARD_EIO, "%s: cannot tell where %s is", what, soname);
		goto out;
	}
	if ((r = join(name, sizeof(name), "rootfs/" WARD_DIR "/lib", soname)) !=
	        0 ||
	    (r = list_add(l, name, real, NULL, S_IFREG | 0755,
	         (uint64_t)st.st_size, 2)) != 0)
		goto out;
	r = add_libs(l, interp, real, ld, sizeof(ld), &have_interp);
out:
	dlclose(h);
	return r;
}

/* --model-runtime NAME: the runtime's library (src/agent/runtime_*.c) */
static int
add_runtime(struct list *l, const char *interp, const char *runtime)
{
	static const struct {
		const char *name, *soname;
	} known[] = {{"xgboost", "libxgboost.so.0"}};
	char what[64];

	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(runtime, known[i].name) == 0) {
			snprintf(
			    what, sizeof(what), "--model-runtime %s", runtime);
			return add_dlopened(
			    l, interp, known[i].soname, what, "libxgboost-dev");
		}
	return ward_errf(WARD_EUSAGE,
	    "--model-runtime %s: unknown (known: xgboost)",
	    ward_quotes(runtime));
}

/*
 * ward and its shared libraries go to /ward/bin and /ward/lib. The
 * agent then runs as `/ward/lib/<ld.so> --library-path /ward/lib
 * /ward/bin/ward agent`, so it never mixes with the image's own libraries.
 */
static int
add_ward(const struct ward_enclave_spec *s, struct list *l, char *interp_name,
    size_t cap)
{
	char self[PATH_MAX], interp[PATH_MAX];
	struct stat st;
	bool have_interp = false;
	ssize_t k;
	int r;

	if ((k = readlink("/proc/self/exe", self, sizeof(self) - 1)) < 0)
		return ward_errf(
		    WARD_EIO, "/proc/self/exe: %s", strerror(errno));
	self[k] = '\0';
	if ((r = elf_interp(self, interp, sizeof(interp))) != 0)
		return r;
	if (stat(self, &st) != 0)
		return ward_errf(WARD_EIO, "%s: %s", self, strerror(errno));
	if ((r = list_add(l, "rootfs/" WARD_DIR "/bin/ward", self, NULL,
	         S_IFREG | 0755, (uint64_t)st.st_size, 2)) != 0)
		return r;
	if ((r = add_libs(l, interp, self, interp_name, cap, &have_interp)) !=
	    0)
		return r;
	if (!have_interp)
		return ward_errf(
		    WARD_EIO, "%s --list did not name the loader", interp);
	/* what ward loads on first use (src/util/lazy.c): the agent needs
	 * libcurl for KMS and libarchive for application bundles */
	for (int i = 0; i < WARD_LAZY_N; i++)
		if ((r = add_dlopened(l, interp, ward_lazy_soname(i),
		         "the agent's libraries", "scripts/install-deps")) != 0)
			return r;
	for (size_t i = 0; i < s->runtime_len; i++)
		if ((r = add_runtime(l, interp, s->runtimes[i])) != 0)
			return r;
	return 0;
}

static int
put_lines(struct ward_buf *b, const char *const *v, size_t n)
{
	int r;

	for (size_t i = 0; i < n; i++) {
		if (strchr(v[i], '\n') != NULL)
			return ward_errf(WARD_EUSAGE,
			    "%s: a command argument or environment entry "
			    "cannot hold a newline (/cmd and /env are one "
			    "entry per line)",
			    ward_quotes(v[i]));
		if ((r = ward_buf_append(b, v[i], strlen(v[i]))) != 0 ||
		    (r = ward_buf_put_u8(b, '\n')) != 0)
			return r;
	}
	return 0;
}

#define ENV_MAX 1024

/* Set key=value in v[0..*n): replace an entry with the same key in place
 * (so --env overrides the image's value: C's getenv takes the first). */
static int
env_set(const char **v, size_t *n, const char *kv, const char *what)
{
	const char *eq = strchr(kv, '=');
	size_t klen;

	if (eq == NULL || eq == kv)
		return ward_errf(
		    WARD_EUSAGE, "%s %s: want K=V", what, ward_quotes(kv));
	klen = (size_t)(eq - kv) + 1; /* with the '=' */
	for (size_t i = 0; i < *n; i++) {
		if (strncmp(v[i], kv, klen) == 0) {
			v[i] = kv;
			return 0;
		}
	}
	if (*n == ENV_MAX)
		return ward_errf(
		    WARD_ELIMIT, "more than %d environment entries", ENV_MAX);
	v[(*n)++] = kv;
	return 0;
}

/* /env: PATH (a default unless given), the image's, then --env; one line
 * per key, the last value given winning. */
static int
make_env(const struct ward_enclave_spec *s, const struct ward_oci_config *c,
    struct ward_buf *out)
{
	const char **v;
	size_t n = 0;
	int r = 0;

	if ((v = calloc(ENV_MAX, sizeof(*v))) == NULL)
		return ward_enomem();
	if ((r = env_set(v, &n, DEFAULT_PATH, "default")) != 0)
		goto out;
	for (size_t i = 0; i < c->env_len && r == 0; i++)
		r = env_set(v, &n, c->env[i], "image Env");
	for (size_t i = 0; i < s->env_len && r == 0; i++)
		r = env_set(v, &n, s->env[i], "--env");
	if (r == 0)
		r = put_lines(out, v, n);
out:
	free(v);
	return r;
}

static int
write_entries(struct ward_cpio_writer *w, const struct list *l)
{
	int r = 0;

	for (size_t i = 0; i < l->n && r == 0; i++) {
		const struct entry *e = &l->v[i];
		int fd;

		if (S_ISDIR(e->mode)) {
			r = ward_cpio_dir(w, e->name, e->mode);
		} else if (S_ISLNK(e->mode)) {
			r = ward_cpio_symlink(w, e->name, e->target);
		} else {
			if ((fd = open(e->src, O_RDONLY | O_CLOEXEC)) < 0)
				return ward_errf(WARD_EIO, "%s: %s", e->src,
				    strerror(errno));
			r = ward_cpio_file_fd(w, e->name, e->mode, fd, e->size);
			close(fd);
		}
	}
	return r;
}

static int
open_tmp(const char *dir, const char *name, char *path, size_t cap,
    struct ward_fd_stream *fs)
{
	int r;

	if ((r = join(path, cap, dir, name)) != 0)
		return r;
	fs->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fs->fd < 0)
		return ward_errf(WARD_EIO, "%s: %s", path, strerror(errno));
	fs->name = path;
	return 0;
}

static int
bootstrap_ramdisk(
    const struct ward_enclave_spec *s, const char *tmp, char *path, size_t cap)
{
	struct ward_fd_stream fs = {.fd = -1};
	struct ward_cpio_writer w;
	const uint8_t *init;
	size_t init_len;
	int r, fd;
	struct stat st;

	if ((r = open_tmp(tmp, "bootstrap.cpio", path, cap, &fs)) != 0)
		return r;
	ward_cpio_init(&w, ward_fd_write, &fs);
	init = ward_init_blob(&init_len);
	if ((r = ward_cpio_dir(&w, "dev", S_IFDIR | 0755)) != 0 ||
	    (r = ward_cpio_file_mem(
	         &w, "init", S_IFREG | 0755, init, init_len)) != 0)
		goto out;
	if (s->nsm_module != NULL) {
		if ((fd = open(s->nsm_module, O_RDONLY | O_CLOEXEC)) < 0 ||
		    fstat(fd, &st) != 0) {
			r = ward_errf(
			    WARD_EIO, "%s: %s", s->nsm_module, strerror(errno));
			if (fd >= 0)
				close(fd);
			goto out;
		}
		r = ward_cpio_file_fd(
		    &w, "nsm.ko", S_IFREG | 0644, fd, (uint64_t)st.st_size);
		close(fd);
		if (r != 0)
			goto out;
	}
	r = ward_cpio_finish(&w);
out:
	close(fs.fd);
	return r;
}

static int
customer_ramdisk(const struct ward_enclave_spec *s, const char *rootfs,
    const struct ward_oci_config *cfg, const char *tmp, char *path, size_t cap)
{
	static const char *const fixed[] = {"rootfs/dev", "rootfs/proc",
	    "rootfs/run", "rootfs/sys", "rootfs/tmp", "rootfs/var"};
	struct ward_fd_stream fs = {.fd = -1};
	struct ward_cpio_writer w;
	struct ward_buf cmd = {0}, env = {0};
	struct list l = {0};
	char ld[NAME_MAX + 1] = "";
	int r;

	if (s->no_ward && s->runtime_len > 0)
		return ward_errf(WARD_EUSAGE,
		    "--model-runtime needs ward in the image (it serves the "
		    "model): drop --no-ward");

	if ((r = list_add(&l, "rootfs", NULL, NULL, S_IFDIR | 0755, 0, 0)) !=
	        0 ||
	    (r = walk(&l, rootfs, "rootfs", 0, 0)) != 0)
		goto out;
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if ((r = list_add(&l, fixed[i], NULL, NULL,
		         S_IFDIR |
		             (strcmp(fixed[i], "rootfs/tmp") == 0 ? 01777
		                                                  : 0755),
		         0, -1)) != 0)
			goto out;
	if (s->app != NULL &&
	    ((r = list_add(
	          &l, "rootfs/app", NULL, NULL, S_IFDIR | 0755, 0, 1)) != 0 ||
	        (r = walk(&l, s->app, "rootfs/app", 1, 0)) != 0))
		goto out;
	if (!s->no_ward && (r = add_ward(s, &l, ld, sizeof(ld))) != 0)
		goto out;
	for (size_t i = 0, n = l.n; i < n; i++) {
		char name[PATH_MAX];

		/* copy: list_add may move l.v */
		snprintf(name, sizeof(name), "%s", l.v[i].name);
		if ((r = add_parents(&l, name)) != 0)
			goto out;
	}
	settle(&l);

	/* /cmd: --cmd, else the image's, else the ward agent */
	if (s->cmd_len > 0) {
		r = put_lines(&cmd, s->cmd, s->cmd_len);
	} else if (cfg->cmd_len > 0) {
		r = put_lines(
		    &cmd, (const char *const *)cfg->cmd, cfg->cmd_len);
	} else if (!s->no_ward) {
		char interp[PATH_MAX];
		snprintf(interp, sizeof(interp), "/" WARD_DIR "/lib/%s", ld);
		const char *agent[] = {interp, "--library-path",
		    "/" WARD_DIR "/lib", "/" WARD_DIR "/bin/ward", "agent"};
		r = put_lines(&cmd, agent, 5);
	} else {
		r = ward_errf(WARD_EUSAGE,
		    "no command: give --cmd, or an image with one, or leave "
		    "ward in (it runs the agent)");
	}
	if (r != 0 || (r = make_env(s, cfg, &env)) != 0)
		goto out;
	if ((r = open_tmp(tmp, "customer.cpio", path, cap, &fs)) != 0)
		goto out;
	ward_cpio_init(&w, ward_fd_write, &fs);
	if ((r = ward_cpio_file_mem(
	         &w, "cmd", S_IFREG | 0644, cmd.p, cmd.len)) != 0 ||
	    (r = ward_cpio_file_mem(
	         &w, "env", S_IFREG | 0644, env.p, env.len)) != 0 ||
	    (r = write_entries(&w, &l)) != 0)
		goto out;
	r = ward_cpio_finish(&w);
out:
	if (fs.fd >= 0)
		close(fs.fd);
	ward_buf_free(&cmd);
	ward_buf_free(&env);
	list_free(&l);
	return r;
}

static int
metadata(const struct ward_enclave_spec *s, const char *out,
    const struct ward_oci_config *cfg, char **json)
{
	char name[256], when[64];
	const char *base = strrchr(out, '/') ? strrchr(out, '/') + 1 : out;
	const char *sde = getenv("SOURCE_DATE_EPOCH");
	time_t t = 0;
	struct tm tm;
	json_t *j;
	size_t n;

	snprintf(name, sizeof(name), "%s", s->name ? s->name : base);
	n = strlen(name);
	if (s->name == NULL && n > 4 && strcmp(name + n - 4, ".eif") == 0)
		name[n - 4] = '\0';
	if (sde != NULL) {
		char *end;
		long long v = strtoll(sde, &end, 10);

		if (*sde == '\0' || *end != '\0' || v < 0)
			return ward_errf(WARD_EUSAGE,
			    "SOURCE_DATE_EPOCH=%s is not a number of seconds",
			    ward_quotes(sde));
		t = (time_t)v;
	}
	if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 > 9999)
		return ward_errf(WARD_EUSAGE,
		    "SOURCE_DATE_EPOCH=%s is past the year 9999",
		    ward_quotes(sde));
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S+00:00", &tm);
	j = json_pack(
	    "{s:s, s:s, s:{s:s, s:s, s:s, s:s, s:s}, s:o, s:{s:{s:b}}}",
	    "ImageName", name, "ImageVersion", s->version ? s->version : "1.0",
	    "BuildMetadata", "BuildTime", when, "BuildTool", "ward",
	    "BuildToolVersion", WARD_VERSION, "OperatingSystem", "linux",
	    "KernelVersion", s->kernel ? "unknown" : "none", "DockerInfo",
	    cfg->digest ? json_pack("{s:s}", "Digest", cfg->digest)
	                : json_null(),
	    "CustomMetadata", "ward", "SandboxOnly", s->kernel == NULL);
	if (j == NULL)
		return ward_enomem();
	*json = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(j);
	return *json != NULL ? 0 : ward_enomem();
}

void
ward_eif_rmtree_children(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char p[PATH_MAX];
	struct stat st;

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (join(p, sizeof(p), dir, de->d_name) != 0)
			continue;
		if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
			ward_eif_rmtree(p);
		else
			unlink(p);
	}
	closedir(d);
}

void
ward_eif_rmtree(const char *dir)
{
	ward_eif_rmtree_children(dir);
	rmdir(dir);
}

int
ward_build_enclave(const struct ward_enclave_spec *s, const char *out,
    struct ward_eif_image *img, struct ward_progress *progress)
{
	struct ward_oci_config cfg = {0};
	struct ward_eif_params p = {0};
	struct ward_buf cmdline = {0};
	char tmp[PATH_MAX], boot[PATH_MAX], cust[PATH_MAX], rootfs[PATH_MAX];
	const char *tmpdir = getenv("TMPDIR");
	char *meta = NULL;
	bool have_tmp = false;
	int r;

	if ((s->rootfs == NULL) == (s->oci_archive == NULL))
		return ward_errf(WARD_EUSAGE,
		    "give exactly one of --rootfs and --oci-archive");
	if (s->cmdline != NULL && s->kernel == NULL)
		return ward_errf(WARD_EUSAGE, "--cmdline needs --kernel");
	snprintf(tmp, sizeof(tmp), "%s/ward-build-XXXXXX",
	    tmpdir && tmpdir[0] ? tmpdir : "/tmp");
	if (mkdtemp(tmp) == NULL)
		return ward_errf(WARD_EIO, "%s: %s", tmp, strerror(errno));
	have_tmp = true;
	if (s->oci_archive != NULL) {
		if ((r = join(rootfs, sizeof(rootfs), tmp, "rootfs")) != 0)
			goto out;
		if (mkdir(rootfs, 0755) != 0) {
			r = ward_errf(
			    WARD_EIO, "%s: %s", rootfs, strerror(errno));
			goto out;
		}
		if ((r = ward_oci_unpack(s->oci_archive, rootfs, &cfg)) != 0)
			goto out;
	} else {
		snprintf(rootfs, sizeof(rootfs), "%s", s->rootfs);
	}
	if ((r = bootstrap_ramdisk(s, tmp, boot, sizeof(boot))) != 0 ||
	    (r = customer_ramdisk(s, rootfs, &cfg, tmp, cust, sizeof(cust))) !=
	        0 ||
	    (r = metadata(s, out, &cfg, &meta)) != 0)
		goto out;
	if (s->cmdline != NULL &&
	    (r = ward_buf_append(&cmdline, s->cmdline, strlen(s->cmdline))) !=
	        0)
		goto out;
	p.kernel.path = s->kernel;
	p.cmdline.p = cmdline.p;
	p.cmdline.len = cmdline.len;
	p.metadata_json = meta;
	p.ramdisks[0].path = boot;
	p.ramdisks[1].path = cust;
	p.n_ramdisks = 2;
	p.flags = s->arm64 ? WARD_EIF_ARCH_ARM64 : 0;
	p.sign_key = s->sign_key;
	p.sign_cert_pem = s->sign_cert_pem;
	p.sign_cert_pem_len = s->sign_cert_pem_len;
	r = ward_eif_write(&p, out, s->overwrite, img, progress);
out:
	free(meta);
	ward_buf_free(&cmdline);
	ward_oci_config_free(&cfg);
	if (have_tmp)
		ward_eif_rmtree(tmp);
	return r;
}
