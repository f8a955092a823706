/*
 * Container images for `ward build-enclave --oci-archive`: a `docker save`
 * tarball (manifest.json) or an OCI image layout in a tar (index.json,
 * blobs/sha256/...), unpacked into a directory with the layers applied in
 * order, as a container runtime applies them:
 *
 *   - `.wh.NAME` removes NAME from the layers below;
 *   - `.wh..wh..opq` empties its directory of what the layers below put
 *     there (applied before the layer's own entries, so they survive);
 *   - blobs named by digest are checked against it before use;
 *   - every path stays inside the destination: no absolute paths, no
 *     "..", nothing written through a symlink (libarchive's SECURE_*
 *     flags), whiteouts resolved with realpath and checked;
 *   - device nodes, fifos and sockets are left out (the enclave's /dev is
 *     mounted at boot), owners are not restored (the ramdisk records 0).
 *
 * Digests use OpenSSL's EVP directly: a SHA-256 of a file is all this
 * needs, and crypto.h's wrappers are for keys.
 */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "eif/internal.h"
#include "ward/eif.h"

#define JSON_MAX (4 << 20)
#define LAYERS_MAX 256
#define DEPTH_MAX 256 /* path components, as build.c's walk allows */
/* Paths handed to libarchive are absolute (dest + a member path that
 * clean_path has checked), so SECURE_NOABSOLUTEPATHS cannot be used; the
 * member paths themselves never are. */
#define EXTRACT_FLAGS                                                          \
	(ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_UNLINK |                       \
	    ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NODOTDOT)

void
ward_oci_config_free(struct ward_oci_config *c)
{
	for (size_t i = 0; i < c->env_len; i++)
		free(c->env[i]);
	for (size_t i = 0; i < c->cmd_len; i++)
		free(c->cmd[i]);
	free(c->env);
	free(c->cmd);
	free(c->workdir);
	free(c->digest);
	memset(c, 0, sizeof(*c));
}

static int
join(char *out, size_t cap, const char *a, const char *b)
{
	int n = snprintf(out, cap, "%s/%s", a, b);

	if (n < 0 || (size_t)n >= cap)
		return ward_errf(WARD_ELIMIT, "path too long: %s/%s", a, b);
	return 0;
}

/* A member path as it must be: relative, no "..", "./" prefixes gone.
 * Returns NULL for the archive root itself ("." or ""). */
static int
clean_path(const char *in, char *out, size_t cap, const char *what)
{
	const char *p = in;
	unsigned depth = 0;
	size_t n;

	while (p[0] == '.' && p[1] == '/')
		p += 2;
	while (*p == '/')
		p++;
	n = strlen(p);
	while (n > 0 && p[n - 1] == '/')
		n--;
	if (n >= cap)
		return ward_errf(WARD_ELIMIT, "%s: path too long", what);
	memcpy(out, p, n);
	out[n] = '\0';
	if (strcmp(out, ".") == 0)
		out[0] = '\0';
	for (char *c = out; *c != '\0';) {
		size_t len = strcspn(c, "/");

		if (++depth > DEPTH_MAX)
			return ward_errf(WARD_ELIMIT,
			    "%s: member %s is nested deeper than %d", what,
			    ward_quotes(in), DEPTH_MAX);
		if (len == 2 && c[0] == '.' && c[1] == '.')
			return ward_errf(WARD_EUNSAFE,
			    "%s: member %s climbs out with \"..\"", what,
			    ward_quotes(in));
		c += len;
		if (*c == '/')
			c++;
	}
	return 0;
}

/* The current entry's data from a to w, then the entry finished. */
static int
copy_entry(struct archive *a, struct archive *w, struct archive_entry *e,
    const char *member)
{
	const void *buf;
	size_t n;
	la_int64_t off;
	int k;

	if (archive_entry_filetype(e) == AE_IFREG &&
	    archive_entry_size(e) > 0) {
		while ((k = archive_read_data_block(a, &buf, &n, &off)) ==
		    ARCHIVE_OK) {
			if (archive_write_data_block(w, buf, n, off) !=
			    ARCHIVE_OK)
				return ward_errf(WARD_EIO, "member %s: %s",
				    ward_quotes(member),
				    archive_error_string(w));
		}
		if (k != ARCHIVE_EOF)
			return ward_errf(WARD_EFORMAT, "member %s: %s",
			    ward_quotes(member), archive_error_string(a));
	}
	if (archive_write_finish_entry(w) != ARCHIVE_OK)
		return ward_errf(WARD_EIO, "member %s: %s", ward_quotes(member),
		    archive_error_string(w));
	return 0;
}

/* Extract a whole tar (any compression) into dir: the outer archive. */
static int
extract_outer(const char *archive, const char *dir)
{
	struct archive *a = archive_read_new(), *w = archive_write_disk_new();
	struct archive_entry *e;
	char rel[PATH_MAX], path[PATH_MAX];
	int r = 0, k;

	if (a == NULL || w == NULL) {
		r = ward_enomem();
		goto out;
	}
	archive_read_support_filter_all(a);
	archive_read_support_format_tar(a);
	archive_write_disk_set_options(w, EXTRACT_FLAGS);
	if (archive_read_open_filename(a, archive, 1 << 16) != ARCHIVE_OK) {
		r = ward_errf(WARD_EFORMAT, "%s", archive_error_string(a));
		goto out;
	}
	while ((k = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		mode_t t = archive_entry_filetype(e);

		/* Image layouts hold files and directories only. A hard link
		 * (even one typed as a regular file) could point at a host
		 * file and be written through: never extracted. */
		if ((t != AE_IFREG && t != AE_IFDIR) ||
		    archive_entry_hardlink(e) != NULL)
			continue;
		if ((r = clean_path(archive_entry_pathname(e), rel, sizeof(rel),
		         archive)) != 0)
			goto out;
		if (rel[0] == '\0')
			continue;
		if ((r = join(path, sizeof(path), dir, rel)) != 0)
			goto out;
		archive_entry_set_pathname(e, path);
		if (archive_write_header(w, e) != ARCHIVE_OK) {
			r = ward_errf(WARD_EUNSAFE, "member %s: %s",
			    ward_quotes(rel), archive_error_string(w));
			goto out;
		}
		if ((r = copy_entry(a, w, e, rel)) != 0)
			goto out;
	}
	if (k != ARCHIVE_EOF)
		r = ward_errf(WARD_EFORMAT, "%s", archive_error_string(a));
out:
	if (w != NULL)
		archive_write_free(w);
	if (a != NULL)
		archive_read_free(a);
	return r;
}

static int
load_json(const char *path, json_t **out)
{
	struct ward_buf b = {0};
	json_error_t err;
	int r;

	if ((r = ward_read_file(path, JSON_MAX, &b)) != 0)
		return r;
	*out = json_loadb((const char *)b.p, b.len, 0, &err);
	ward_buf_free(&b);
	if (*out == NULL)
		return ward_errf(
		    WARD_EFORMAT, "%s: line %d: %s", path, err.line, err.text);
	return 0;
}

/* blobs/<alg>/<hex> for "sha256:<hex>", checked against the digest. */
static int
blob_path(const char *root, const char *digest, char *out, size_t cap)
{
	static const char hexd[] = "0123456789abcdef";
	uint8_t buf[1 << 16], md[32];
	char hex[65];
	EVP_MD_CTX *ctx = NULL;
	ssize_t k;
	int fd = -1, r;
	size_t i;

	if (digest == NULL || strncmp(digest, "sha256:", 7) != 0 ||
	    strlen(digest) != 7 + 64 || strspn(digest + 7, hexd) != 64)
		return ward_errf(WARD_EUNSUPPORTED,
		    "blob digest %s: only sha256 digests are supported",
		    digest ? ward_quotes(digest) : "(missing)");
	if (snprintf(out, cap, "%s/blobs/sha256/%s", root, digest + 7) >=
	    (int)cap)
		return ward_errf(WARD_ELIMIT, "path too long");
	if ((fd = open(out, O_RDONLY | O_CLOEXEC)) < 0)
		return ward_errf(
		    WARD_EFORMAT, "the image lacks blob %s", digest);
	if ((ctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		r = ward_enomem();
		goto out;
	}
	while ((k = read(fd, buf, sizeof(buf))) > 0)
		EVP_DigestUpdate(ctx, buf, (size_t)k);
	if (k < 0 || EVP_DigestFinal_ex(ctx, md, NULL) != 1) {
		r = ward_errf(WARD_EIO, "%s: %s", out, strerror(errno));
		goto out;
	}
	for (i = 0; i < 32; i++) {
		hex[2 * i] = hexd[md[i] >> 4];
		hex[2 * i + 1] = hexd[md[i] & 15];
	}
	hex[64] = '\0';
	r = strcmp(hex, digest + 7) == 0
	    ? 0
	    : ward_errf(
	          WARD_EAUTH, "blob %s does not match its digest", digest);
out:
	EVP_MD_CTX_free(ctx);
	close(fd);
	return r;
}

static int
strv(json_t *arr, char ***v, size_t *n)
{
	size_t i;
	json_t *s;

	if (arr == NULL || json_is_null(arr))
		return 0;
	if (!json_is_array(arr))
		return ward_errf(WARD_EFORMAT, "image config: not a list");
	json_array_foreach(arr, i, s)
	{
		char **nv;

		if (!json_is_string(s))
			return ward_errf(WARD_EFORMAT,
			    "image config: a list entry is not a string");
		if ((nv = realloc(*v, (*n + 1) * sizeof(**v))) == NULL)
			return ward_enomem();
		*v = nv;
		if ((nv[*n] = strdup(json_string_value(s))) == NULL)
			return ward_enomem();
		(*n)++;
	}
	return 0;
}

static int
read_config(const char *path, struct ward_oci_config *cfg)
{
	json_t *j = NULL, *c;
	int r;

	if ((r = load_json(path, &j)) != 0)
		return r;
	c = json_object_get(j, "config");
	if (c != NULL && json_is_object(c)) {
		json_t *wd = json_object_get(c, "WorkingDir");

		if ((r = strv(json_object_get(c, "Env"), &cfg->env,
		         &cfg->env_len)) != 0 ||
		    (r = strv(json_object_get(c, "Entrypoint"), &cfg->cmd,
		         &cfg->cmd_len)) != 0 ||
		    (r = strv(json_object_get(c, "Cmd"), &cfg->cmd,
		         &cfg->cmd_len)) != 0)
			goto out;
		if (json_is_string(wd) && json_string_length(wd) > 0 &&
		    (cfg->workdir = strdup(json_string_value(wd))) == NULL) {
			r = ward_enomem();
			goto out;
		}
	}
out:
	json_decref(j);
	return r;
}

/* Remove path (file or tree) without following a final symlink. */
static void
remove_path(const char *path)
{
	struct stat st;

	if (lstat(path, &st) != 0)
		return;
	if (S_ISDIR(st.st_mode))
		ward_eif_rmtree(path);
	else
		unlink(path);
}

/*
 * dest/rel's parent, resolved; it must lie inside dest (a whiteout must not
 * follow a symlink a layer planted to reach the host).
 */
static int
inside(const char *realdest, const char *dest, const char *rel_parent,
    char *out, size_t cap)
{
	char p[PATH_MAX];
	size_t n = strlen(realdest);
	int r;

	if (rel_parent[0] == '\0') {
		snprintf(out, cap, "%s", realdest);
		return 0;
	}
	if ((r = join(p, sizeof(p), dest, rel_parent)) != 0)
		return r;
	if (realpath(p, out) == NULL)
		return 1; /* nothing there: nothing to remove */
	if (strncmp(out, realdest, n) != 0 || (out[n] != '/' && out[n] != '\0'))
		return ward_errf(WARD_EUNSAFE,
		    "%s resolves outside the image (through a symlink a layer "
		    "planted)",
		    ward_quotes(rel_parent));
	return 0;
}

/* One pass over a layer: either collect opaque directories (and apply
 * them), or extract entries and apply plain whiteouts. */
static int
layer_pass(
    const char *layer, const char *dest, const char *realdest, bool opaque_pass)
{
	struct archive *a = archive_read_new(), *w = NULL;
	struct archive_entry *e;
	char rel[PATH_MAX], path[PATH_MAX], dir[PATH_MAX], link[PATH_MAX];
	char member[PATH_MAX];
	int r = 0, k;

	if (a == NULL)
		return ward_enomem();
	archive_read_support_filter_all(a);
	archive_read_support_format_tar(a);
	if (!opaque_pass) {
		if ((w = archive_write_disk_new()) == NULL) {
			r = ward_enomem();
			goto out;
		}
		archive_write_disk_set_options(w, EXTRACT_FLAGS);
	}
	if (archive_read_open_filename(a, layer, 1 << 16) != ARCHIVE_OK) {
		r = ward_errf(
		    WARD_EFORMAT, "a layer: %s", archive_error_string(a));
		goto out;
	}
	while ((k = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		mode_t t = archive_entry_filetype(e);
		char *slash, *base;

		if ((r = clean_path(archive_entry_pathname(e), rel, sizeof(rel),
		         "layer")) != 0)
			goto out;
		if (rel[0] == '\0')
			continue;
		slash = strrchr(rel, '/');
		base = slash ? slash + 1 : rel;
		if (strncmp(base, ".wh.", 4) == 0) {
			bool opq = strcmp(base, ".wh..wh..opq") == 0;

			if (opq != opaque_pass)
				continue;
			if (slash)
				*slash = '\0';
			r = inside(
			    realdest, dest, slash ? rel : "", dir, sizeof(dir));
			if (r == 1) {
				r = 0;
				continue;
			}
			if (r != 0)
				goto out;
			if (opq) {
				ward_eif_rmtree_children(dir);
			} else if (strcmp(base + 4, ".") != 0 &&
			    strcmp(base + 4, "..") != 0 &&
			    join(path, sizeof(path), dir, base + 4) == 0) {
				remove_path(path);
			}
			continue;
		}
		if (opaque_pass)
			continue;
		if (t == AE_IFCHR || t == AE_IFBLK || t == AE_IFIFO ||
		    t == AE_IFSOCK)
			continue;
		snprintf(member, sizeof(member), "%s", rel);
		if ((r = join(path, sizeof(path), dest, rel)) != 0)
			goto out;
		/*
		 * A member whose parent resolves outside the image (through a
		 * symlink planted by this or a lower layer) is refused: the
		 * lstat and removal below would follow it to the host.
		 */
		slash = strrchr(rel, '/');
		if (slash != NULL)
			*slash = '\0';
		r = inside(realdest, dest, slash ? rel : "", dir, sizeof(dir));
		if (slash != NULL)
			*slash = '/';
		if (r < 0)
			goto out;
		/* a directory replaced by a non-directory goes entirely */
		if (r == 0 && t != AE_IFDIR) {
			struct stat st;
			char in[PATH_MAX];

			if (join(in, sizeof(in), dir, base) == 0 &&
			    lstat(in, &st) == 0 && S_ISDIR(st.st_mode))
				ward_eif_rmtree(in);
		}
		archive_entry_set_pathname(e, path);
		if (archive_entry_hardlink(e) != NULL) {
			if ((r = clean_path(archive_entry_hardlink(e), rel,
			         sizeof(rel), "layer")) != 0 ||
			    (r = join(link, sizeof(link), dest, rel)) != 0)
				goto out;
			archive_entry_set_hardlink(e, link);
		}
		archive_entry_set_uid(e, 0);
		archive_entry_set_gid(e, 0);
		if (archive_write_header(w, e) != ARCHIVE_OK) {
			r = ward_errf(WARD_EUNSAFE,
			    "layer member %s refused (it would escape the image "
			    "or is malformed): %s",
			    ward_quotes(member), archive_error_string(w));
			goto out;
		}
		if ((r = copy_entry(a, w, e, member)) != 0)
			goto out;
		/*
		 * The layer's permission bits exactly, whoever builds: as a
		 * user, libarchive drops setuid/setgid, and the umask would
		 * shape directories. (A symlink has no bits of its own.)
		 */
		if ((t == AE_IFREG || t == AE_IFDIR) &&
		    chmod(path, archive_entry_perm(e) & 07777) != 0) {
			r = ward_errf(WARD_EIO, "layer member %s: chmod: %s",
			    ward_quotes(member), strerror(errno));
			goto out;
		}
	}
	if (k != ARCHIVE_EOF)
		r = ward_errf(
		    WARD_EFORMAT, "a layer: %s", archive_error_string(a));
out:
	if (w != NULL)
		archive_write_free(w);
	archive_read_free(a);
	return r;
}

/* The layers and config of an OCI layout: index -> manifest (one level of
 * nested index allowed; the first manifest listed is used). */
static int
oci_layout(const char *root, char ***layers, size_t *n, char *config,
    size_t cap, struct ward_oci_config *cfg)
{
	char path[PATH_MAX];
	json_t *idx = NULL, *man = NULL, *m, *ls, *l;
	const char *digest;
	size_t i;
	int r;

	if ((r = join(path, sizeof(path), root, "index.json")) != 0 ||
	    (r = load_json(path, &idx)) != 0)
		return r;
	m = json_array_get(json_object_get(idx, "manifests"), 0);
	digest = json_string_value(json_object_get(m, "digest"));
	if (m == NULL) {
		r = ward_errf(WARD_EFORMAT, "index.json lists no manifest");
		goto out;
	}
	if ((r = blob_path(root, digest, path, sizeof(path))) != 0 ||
	    (r = load_json(path, &man)) != 0)
		goto out;
	if (json_object_get(man, "manifests") != NULL) {
		/* an index: take the first manifest it lists */
		m = json_array_get(json_object_get(man, "manifests"), 0);
		digest = json_string_value(json_object_get(m, "digest"));
		json_decref(man);
		man = NULL;
		if ((r = blob_path(root, digest, path, sizeof(path))) != 0 ||
		    (r = load_json(path, &man)) != 0)
			goto out;
	}
	if ((cfg->digest = strdup(digest)) == NULL) {
		r = ward_enomem();
		goto out;
	}
	if ((r = blob_path(root,
	         json_string_value(
	             json_object_get(json_object_get(man, "config"), "digest")),
	         config, cap)) != 0)
		goto out;
	ls = json_object_get(man, "layers");
	if (!json_is_array(ls) || json_array_size(ls) > LAYERS_MAX) {
		r = ward_errf(WARD_EFORMAT, "manifest: bad layer list");
		goto out;
	}
	json_array_foreach(ls, i, l)
	{
		if ((r = blob_path(root,
		         json_string_value(json_object_get(l, "digest")), path,
		         sizeof(path))) != 0)
			goto out;
		if (((*layers)[*n] = strdup(path)) == NULL) {
			r = ward_enomem();
			goto out;
		}
		(*n)++;
	}
out:
	json_decref(man);
	json_decref(idx);
	return r;
}

/* The layers and config of a `docker save` tarball. */
static int
docker_save(
    const char *root, char ***layers, size_t *n, char *config, size_t cap)
{
	char path[PATH_MAX], rel[PATH_MAX];
	json_t *man = NULL, *m, *ls, *l;
	size_t i;
	int r;

	if ((r = join(path, sizeof(path), root, "manifest.json")) != 0 ||
	    (r = load_json(path, &man)) != 0)
		return r;
	m = json_array_get(man, 0);
	ls = json_object_get(m, "Layers");
	if (!json_is_string(json_object_get(m, "Config")) ||
	    !json_is_array(ls) || json_array_size(ls) > LAYERS_MAX) {
		r = ward_errf(WARD_EFORMAT,
		    "manifest.json: no Config or Layers in its first image");
		goto out;
	}
	if ((r = clean_path(json_string_value(json_object_get(m, "Config")),
	         rel, sizeof(rel), "manifest.json")) != 0 ||
	    (r = join(config, cap, root, rel)) != 0)
		goto out;
	json_array_foreach(ls, i, l)
	{
		if (!json_is_string(l)) {
			r = ward_errf(WARD_EFORMAT, "manifest.json: bad layer");
			goto out;
		}
		if ((r = clean_path(json_string_value(l), rel, sizeof(rel),
		         "manifest.json")) != 0 ||
		    (r = join(path, sizeof(path), root, rel)) != 0)
			goto out;
		if (((*layers)[*n] = strdup(path)) == NULL) {
			r = ward_enomem();
			goto out;
		}
		(*n)++;
	}
out:
	json_decref(man);
	return r;
}

int
ward_oci_unpack(
    const char *archive, const char *dest, struct ward_oci_config *cfg)
{
	char outer[PATH_MAX], config[PATH_MAX], path[PATH_MAX],
	    realdest[PATH_MAX];
	const char *tmpdir = getenv("TMPDIR");
	char **layers = NULL;
	size_t n = 0;
	struct stat st;
	mode_t old_mask = 0;
	bool masked = false;
	int r;

	memset(cfg, 0, sizeof(*cfg));
	if ((r = ward_lazy_load(WARD_LAZY_ARCHIVE)) != 0)
		return r;
	snprintf(outer, sizeof(outer), "%s/ward-oci-XXXXXX",
	    tmpdir && tmpdir[0] ? tmpdir : "/tmp");
	if (mkdtemp(outer) == NULL)
		return ward_errf(WARD_EIO, "%s: %s", outer, strerror(errno));
	if (realpath(dest, realdest) == NULL) {
		r = ward_errf(WARD_EIO, "%s: %s", dest, strerror(errno));
		goto out;
	}
	/* libarchive writes below absolute paths here; resolving them first
	 * keeps its symlink check from tripping on a symlinked TMPDIR */
	if (realpath(outer, path) == NULL) {
		r = ward_errf(WARD_EIO, "%s: %s", outer, strerror(errno));
		goto out;
	}
	snprintf(outer, sizeof(outer), "%s", path);
	if ((layers = calloc(LAYERS_MAX, sizeof(*layers))) == NULL) {
		r = ward_enomem();
		goto out;
	}
	/* Directories libarchive creates for unlisted parents get 0755 on
	 * every machine, not whatever the caller's umask makes of them. */
	old_mask = umask(022);
	masked = true;
	if ((r = extract_outer(archive, outer)) != 0)
		goto out;
	if (join(path, sizeof(path), outer, "index.json") == 0 &&
	    stat(path, &st) == 0)
		r = oci_layout(outer, &layers, &n, config, sizeof(config), cfg);
	else if (join(path, sizeof(path), outer, "manifest.json") == 0 &&
	    stat(path, &st) == 0)
		r = docker_save(outer, &layers, &n, config, sizeof(config));
	else
		r = ward_errf(WARD_EFORMAT,
		    "%s: neither an OCI layout (index.json) nor a docker save "
		    "tarball (manifest.json)",
		    archive);
	if (r != 0 || (r = read_config(config, cfg)) != 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if ((r = layer_pass(layers[i], realdest, realdest, true)) !=
		        0 ||
		    (r = layer_pass(layers[i], realdest, realdest, false)) != 0)
			goto out;
	}
out:
	if (masked)
		umask(old_mask);
	if (r != 0)
		r = ward_err_prefix(r, "%s", archive);
	for (size_t i = 0; i < n; i++)
		free(layers[i]);
	free(layers);
	ward_eif_rmtree(outer);
	if (r != 0)
		ward_oci_config_free(cfg);
	return r;
}
