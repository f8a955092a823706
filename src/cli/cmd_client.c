/* ward sync, ward cp, ward exec: flags to the client module; the work is
 * in src/client. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "ward/agent.h"
#include "ward/client.h"
#include "ward/kms.h"
#include "ward/util.h"

#define ENCLAVE_PREFIX "enclave:"
#define SYNC_TIMEOUT_S 30u
#define CP_TIMEOUT_S 60u
#define EXEC_TIMEOUT_S 60u
#define MAX_LIST 256

#define CONN_HELP                                                              \
	"  --enclave-cid N      the enclave (vsock CID N, port 5000; see\n"    \
	"                       ward describe-enclaves)\n"                     \
	"  --agent ADDR         or an agent at an address: unix:PATH,\n"       \
	"                       vsock:CID:PORT, tcp:HOST:PORT\n"

static const char sync_help[] =
    "usage: ward sync -d DIR (--enclave-cid N | --agent ADDR) [-f]\n"
    "                 [--connections N] [--cache SECONDS] [--timeout SECONDS]\n"
    "                 [--allow-other] [--debug] [--log FILE]\n"
    "\n"
    "Mount an enclave's workspace (its /workspace, in enclave memory) at DIR\n"
    "with FUSE. It is a remote view, not a copy: every operation on DIR is\n"
    "a request to the enclave's agent, so the host and the enclave see the\n"
    "same files at once, and the files live only in the enclave. Put the\n"
    "inputs of 'ward exec' there and read its outputs from there.\n"
    "\n"
    "  -d, --dir DIR        the mount point: an empty directory\n" CONN_HELP
    "  -f, --foreground     stay in the foreground (default: once the mount\n"
    "                       is up, go to the background)\n"
    "  --connections N      connections to the agent, used in parallel\n"
    "                       (default 4)\n"
    "  --cache SECONDS      how long the kernel may trust names and\n"
    "                       attributes it has seen (default 0: always ask,\n"
    "                       so changes the enclave makes show at once)\n"
    "  --timeout SECONDS    an operation the agent does not answer in time\n"
    "                       fails with EIO (default 30)\n"
    "  --allow-other        let other users see the mount (FUSE's\n"
    "                       allow_other; needs user_allow_other in\n"
    "                       /etc/fuse.conf unless root)\n"
    "  --debug              libfuse's trace of every operation (implies -f)\n"
    "  --log FILE           append warnings (an agent that stops answering,\n"
    "                       ...) to FILE, created 0600, each line with its\n"
    "                       UTC time (default: standard error in the\n"
    "                       foreground, syslog once in the background)\n"
    "  -h, --help\n"
    "\n"
    "Errors before the mount is up (no agent, DIR not an empty directory,\n"
    "FUSE unavailable) are printed and the exit status is nonzero; once it\n"
    "is up a line on standard error says so. Unmount with\n"
    "  fusermount3 -u DIR        (or umount DIR as root)\n"
    "or send SIGTERM or SIGINT (Ctrl-C with -f): ward unmounts and exits 0.\n"
    "If the enclave goes away, operations on DIR fail with EIO (within\n"
    "--timeout) and DIR can still be unmounted. Files have no owners in\n"
    "the workspace: they show as the mounting user's, and chown to anyone\n"
    "else fails. Symbolic and hard links, device files and sockets are not\n"
    "supported. Do not keep secrets there that the host must not see: the\n"
    "host sees everything in the workspace.\n";

static const char cp_help[] =
    "usage: ward cp (--enclave-cid N | --agent ADDR) [--progress]\n"
    "               [--timeout SECONDS] SRC DST\n"
    "\n"
    "Copy one file into or out of an enclave's workspace. Exactly one of\n"
    "SRC and DST is enclave:PATH, a path in the workspace (relative to its\n"
    "root; enclave:dir/ or an existing workspace directory takes SRC's\n"
    "name). The other is a local path, or '-' for standard input or\n"
    "output.\n"
    "\n" CONN_HELP
    "  --progress           draw a progress bar even when standard error is\n"
    "                       not a terminal\n"
    "  --timeout SECONDS    fail when the agent is silent this long\n"
    "                       (default 60)\n"
    "  -h, --help\n"
    "\n"
    "Uploads stream (constant memory) and appear in the workspace only when\n"
    "complete; the file keeps SRC's permission bits. Downloads go to a\n"
    "temporary file beside DST, which replaces DST only once the whole\n"
    "file has arrived: a failed copy leaves nothing. An error the enclave\n"
    "reports is printed as \"enclave: CODE: message\" and the exit status\n"
    "says what kind it was (ward(1), EXIT STATUS).\n";

static const char exec_help[] =
    "usage: ward exec (--enclave-cid N | --agent ADDR) --app enclave:PATH\n"
    "                 [--key-id K]... [--context k=v]... [--region R]\n"
    "                 [--endpoint-url URL] [--profile P] [--env K=V]...\n"
    "                 [--no-credentials] -- CMD [ARGS...]\n"
    "\n"
    "Run an encrypted application inside an enclave. The agent decrypts\n"
    "the bundle at PATH in its workspace (a directory encrypted with ward\n"
    "encrypt under a KMS key), asking KMS for the data key with an\n"
    "attestation of the enclave, so only images the key policy names can\n"
    "open it. It unpacks the app into private enclave memory, runs CMD\n"
    "there (the workspace is its /workspace), and wipes it afterwards.\n"
    "The app's standard output and error appear here as it writes them.\n"
    "\n" CONN_HELP
    "  --app enclave:PATH   the encrypted application in the workspace\n"
    "  --key-id K           a KMS key the app may be encrypted under\n"
    "                       (repeatable; default: any)\n"
    "  --context k=v        a pair the app's encryption context must hold\n"
    "                       (repeatable)\n"
    "  --region R           the KMS region (default: AWS_REGION,\n"
    "                       AWS_DEFAULT_REGION, the profile's region)\n"
    "  --endpoint-url URL   the KMS endpoint as the ENCLAVE reaches it,\n"
    "                       through the vsock proxy (default:\n"
    "                       AWS_ENDPOINT_URL_KMS, else\n"
    "                       https://kms.REGION.amazonaws.com). For a 'ward\n"
    "                       kms serve' on the host that is the URL the\n"
    "                       proxy forwards to, e.g. http://127.0.0.1:PORT\n"
    "  --profile P          the AWS profile for credentials and region\n"
    "  --env K=V            environment for the app (repeatable)\n"
    "  --no-credentials     send no AWS credentials\n"
    "  --timeout SECONDS    fail when the agent does not answer the\n"
    "                       connection this long (default 60; the app may\n"
    "                       run and stay silent as long as it likes)\n"
    "  -h, --help\n"
    "\n"
    "Credentials are found as the AWS SDKs find them: AWS_ACCESS_KEY_ID,\n"
    "AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN; the shared credentials and\n"
    "config files (AWS_PROFILE); IMDSv2 on EC2. They go to the enclave with\n"
    "the request (never to disk or logs) and are zeroed here once sent.\n"
    "\n"
    "Exit status: the app's own; 128+N when a signal N killed it. When the\n"
    "app could not run, a message on standard error and ward's status:\n"
    "5 when KMS refused the key (AccessDenied: the enclave's measurement is\n"
    "not in the key policy, or it runs in debug mode), 6 when no key opens\n"
    "the app, 3 when the enclave cannot be reached. SIGINT or SIGTERM\n"
    "cancels the app in the enclave before ward exits.\n";

static const char infer_help[] =
    "usage: ward infer (--enclave-cid N | --agent ADDR) --model enclave:PATH\n"
    "                  --input FILE [--format csv|json] [--output FILE]\n"
    "                  [--receipt FILE] [--nonce HEX] [--key-id K]...\n"
    "                  [--region R] [--endpoint-url URL] [--profile P]\n"
    "                  [--no-credentials] [--force]\n"
    "\n"
    "Predictions from an encrypted model inside an enclave. The agent\n"
    "decrypts the model at PATH in its workspace (a file encrypted with\n"
    "ward encrypt under a KMS key whose policy names the enclave's image)\n"
    "once, keeps it only in enclave memory, and answers predictions on the\n"
    "rows of FILE. FILE may itself be ward encrypt'ed under the data\n"
    "owner's key: it is then decrypted inside the enclave only.\n"
    "\n" CONN_HELP
    "  --model enclave:PATH the encrypted model in the workspace\n"
    "                       (an XGBoost JSON model, ward encrypt'ed)\n"
    "  --input FILE         the rows: CSV (one row per line, an optional\n"
    "                       header line) or JSON (an array of arrays);\n"
    "                       missing values as empty, NA or null; '-' for\n"
    "                       standard input\n"
    "  --format csv|json    the input's format (default: told from it)\n"
    "  --output FILE        write the answer there (default: standard\n"
    "                       output); written whole or not at all\n"
    "  --receipt FILE       also write a receipt: an attestation document\n"
    "                       of the enclave binding the model, the input and\n"
    "                       the answer (check it with ward attest verify\n"
    "                       --receipt FILE --input FILE --output FILE)\n"
    "  --nonce HEX          put this nonce in the receipt's document\n"
    "  --force              replace existing --output and --receipt files\n"
    "  --key-id K           a KMS key the model may be under (repeatable;\n"
    "                       default: any)\n"
    "  --region R, --endpoint-url URL, --profile P, --no-credentials\n"
    "                       as for ward exec: where and as whom the\n"
    "                       enclave asks KMS for the model's (and the\n"
    "                       input's) key\n"
    "  --timeout SECONDS    fail when the agent does not answer this long\n"
    "                       (default 60)\n"
    "  -h, --help\n"
    "\n"
    "The answer is JSON: the model's SHA-384 (of its ciphertext), the\n"
    "enclave's PCR0, and per row {\"label\": L, \"probabilities\": [...]}\n"
    "(classifiers) or {\"value\": V}.\n"
    "\n"
    "Exit status 0: answered. 4: the input does not parse or has the wrong\n"
    "number of features, or the model does not load; 5: KMS refused the\n"
    "key (AccessDenied: the image is not the one the key policy names, or\n"
    "it runs in debug mode); 6: no key opens the model; 3: the enclave\n"
    "cannot be reached or the model is not in the workspace.\n";

enum {
	OPT_CID = 256,
	OPT_AGENT,
	OPT_TIMEOUT,
	OPT_PROGRESS,
	OPT_CONNS,
	OPT_CACHE,
	OPT_ALLOW_OTHER,
	OPT_DEBUG,
	OPT_LOG,
	OPT_APP,
	OPT_KEY_ID,
	OPT_CONTEXT,
	OPT_REGION,
	OPT_ENDPOINT,
	OPT_PROFILE,
	OPT_ENV,
	OPT_NO_CRED,
	OPT_MODEL,
	OPT_INPUT,
	OPT_FORMAT,
	OPT_OUTPUT,
	OPT_RECEIPT,
	OPT_NONCE,
	OPT_FORCE,
};

/* Strict decimal in [min, max]. */
static int
parse_uint(const char *flag, const char *s, unsigned long long min,
    unsigned long long max, unsigned long long *out)
{
	char *end;
	unsigned long long v = 0;

	errno = 0;
	if (*s < '0' || *s > '9')
		goto bad;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		goto bad;
	*out = v;
	return 0;
bad:
	return ward_errf(WARD_EUSAGE, "%s %s: want a number from %llu to %llu",
	    flag, ward_quotes(s), min, max);
}

/* --enclave-cid / --agent / --timeout, shared by the three commands. */
static int
conn_opt(int c, const char *arg, struct ward_client_opts *o, bool *have)
{
	unsigned long long v = 0;
	int r;

	switch (c) {
	case OPT_CID:
		if ((r = parse_uint(
		         "--enclave-cid", arg, 3, 0xFFFFFFFEu, &v)) != 0)
			return r;
		if (*have)
			return ward_errf(WARD_EUSAGE,
			    "give one of --enclave-cid and --agent, once");
		o->cid = (uint32_t)v;
		*have = true;
		return 0;
	case OPT_AGENT:
		if (*have)
			return ward_errf(WARD_EUSAGE,
			    "give one of --enclave-cid and --agent, once");
		o->agent = arg;
		*have = true;
		return 0;
	case OPT_TIMEOUT:
		if ((r = parse_uint("--timeout", arg, 1, 86400, &v)) != 0)
			return r;
		o->timeout = (unsigned)v;
		return 0;
	}
	return ward_errf(WARD_EINTERNAL, "conn_opt: option %d", c);
}

static int
need_conn(bool have, const char *cmd)
{
	if (!have)
		return ward_errf(WARD_EUSAGE,
		    "which enclave? give --enclave-cid N or --agent ADDR "
		    "(see ward %s --help)",
		    cmd);
	return 0;
}

static int
bad_option(int c, char **argv, const char *cmd)
{
	if (c == ':')
		return ward_errf(
		    WARD_EUSAGE, "%s needs a value", argv[optind - 1]);
	return ward_errf(WARD_EUSAGE, "unknown option %s (see ward %s --help)",
	    argv[optind - 1], cmd);
}

/* ------------------------------------------------------------------ */
/* ward sync                                                          */

static void
sync_mounted(void *arg, const char *dir)
{
	const struct ward_client_opts *o = arg;

	if (o->agent == NULL)
		fprintf(stderr,
		    "ward sync: enclave %u's workspace is mounted at %s; "
		    "unmount with fusermount3 -u %s\n",
		    o->cid, dir, dir);
	else
		fprintf(stderr,
		    "ward sync: the workspace of %s is mounted at %s; "
		    "unmount with fusermount3 -u %s\n",
		    o->agent, dir, dir);
	fflush(stderr);
}

int
cmd_sync_main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"dir", required_argument, NULL, 'd'},
	    {"enclave-cid", required_argument, NULL, OPT_CID},
	    {"agent", required_argument, NULL, OPT_AGENT},
	    {"timeout", required_argument, NULL, OPT_TIMEOUT},
	    {"foreground", no_argument, NULL, 'f'},
	    {"connections", required_argument, NULL, OPT_CONNS},
	    {"cache", required_argument, NULL, OPT_CACHE},
	    {"allow-other", no_argument, NULL, OPT_ALLOW_OTHER},
	    {"debug", no_argument, NULL, OPT_DEBUG},
	    {"log", required_argument, NULL, OPT_LOG},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct ward_client_sync_opts so = {0};
	unsigned long long v = 0;
	bool have = false;
	int c, r;

	so.conn.timeout = SYNC_TIMEOUT_S;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":d:fh", opts, NULL)) != -1) {
		r = 0;
		switch (c) {
		case 'd':
			so.dir = optarg;
			break;
		case OPT_CID:
		case OPT_AGENT:
		case OPT_TIMEOUT:
			r = conn_opt(c, optarg, &so.conn, &have);
			break;
		case 'f':
			so.foreground = true;
			break;
		case OPT_CONNS:
			if ((r = parse_uint(
			         "--connections", optarg, 1, 16, &v)) == 0)
				so.conns = (unsigned)v;
			break;
		case OPT_CACHE:
			if ((r = parse_uint("--cache", optarg, 0, 3600, &v)) ==
			    0)
				so.cache = (double)v;
			break;
		case OPT_ALLOW_OTHER:
			so.allow_other = true;
			break;
		case OPT_DEBUG:
			so.debug = true;
			break;
		case OPT_LOG:
			so.log = optarg;
			break;
		case 'h':
			fputs(sync_help, stdout);
			return 0;
		default:
			r = bad_option(c, argv, "sync");
		}
		if (r != 0)
			return cli_fail("sync", r);
	}
	if (optind != argc)
		return cli_fail("sync",
		    ward_errf(WARD_EUSAGE, "unexpected argument %s",
		        ward_quotes(argv[optind])));
	if (so.dir == NULL)
		return cli_fail("sync",
		    ward_errf(WARD_EUSAGE,
		        "where? give -d DIR (see ward sync --help)"));
	if ((r = need_conn(have, "sync")) != 0)
		return cli_fail("sync", r);
	so.mounted = sync_mounted;
	so.arg = &so.conn;
	if ((r = ward_client_sync(&so)) != 0)
		return cli_fail("sync", r);
	return 0;
}

/* ------------------------------------------------------------------ */
/* ward cp                                                            */

static bool
is_enclave(const char *s)
{
	return strncmp(s, ENCLAVE_PREFIX, strlen(ENCLAVE_PREFIX)) == 0;
}

/* The last component of a path ("a/b/" -> "b"), in out. */
static int
base_name(const char *path, char *out, size_t cap)
{
	size_t n = strlen(path), start;

	while (n > 0 && path[n - 1] == '/')
		n--;
	start = n;
	while (start > 0 && path[start - 1] != '/')
		start--;
	if (n == start || n - start >= cap ||
	    (n - start == 1 && path[start] == '.') ||
	    (n - start == 2 && path[start] == '.' && path[start + 1] == '.'))
		return ward_errf(WARD_EUSAGE,
		    "%s names no file: give the destination's name",
		    ward_quotes(path));
	memcpy(out, path + start, n - start);
	out[n - start] = '\0';
	return 0;
}

/* dir + "/" + name into out. */
static int
join(const char *dir, const char *name, char *out, size_t cap)
{
	size_t n = strlen(dir);
	int k;

	while (n > 0 && dir[n - 1] == '/')
		n--;
	k = snprintf(out, cap, "%.*s%s%s", (int)n, dir, n > 0 ? "/" : "", name);
	if (k < 0 || (size_t)k >= cap)
		return ward_errf(
		    WARD_ELIMIT, "%s/%s: path too long", dir, name);
	return 0;
}

/* Workspace path from "enclave:PATH": relative to the workspace root. */
static const char *
ws_path(const char *arg)
{
	const char *p = arg + strlen(ENCLAVE_PREFIX);

	while (*p == '/')
		p++;
	return p;
}

static int
cp_upload(
    struct ward_client *c, const char *src, const char *dst, bool progress)
{
	char name[256], path[WARD_MSG_PATH_MAX + 1];
	const char *rpath = ws_path(dst);
	struct ward_msg req = {.type = WARD_MSG_STAT}, rep;
	struct ward_progress pr;
	struct stat st;
	uint64_t size, sent;
	bool stdin_src = strcmp(src, "-") == 0, into_dir;
	uint32_t mode = 0644;
	int fd = 0, r;

	if (!stdin_src) {
		if ((fd = open(src, O_RDONLY | O_CLOEXEC)) < 0)
			return ward_errf(
			    WARD_EIO, "%s: %s", src, strerror(errno));
		if (fstat(fd, &st) != 0) {
			r = ward_errf(WARD_EIO, "%s: %s", src, strerror(errno));
			goto out;
		}
		if (S_ISDIR(st.st_mode)) {
			r = ward_errf(WARD_EUSAGE,
			    "%s is a directory: ward cp copies files (ward "
			    "sync mounts the whole workspace)",
			    src);
			goto out;
		}
		mode = st.st_mode & 0777;
	}
	/* enclave:, enclave:dir/ and an existing directory take SRC's name */
	into_dir = *rpath == '\0' || rpath[strlen(rpath) - 1] == '/';
	if (!into_dir) {
		req.path = (char *)rpath;
		if (ward_client_call(c, &req, &rep) == 0) {
			into_dir = rep.has_st && S_ISDIR(rep.st.mode);
			ward_msg_free(&rep);
		} else if (ward_client_broken(c)) {
			r = -WARD_EIO;
			goto out;
		} else
			ward_errclear(); /* not there yet: fine */
	}
	if (into_dir) {
		if (stdin_src) {
			r = ward_errf(WARD_EUSAGE,
			    "%s is a directory: name the file to write "
			    "standard input to",
			    dst);
			goto out;
		}
		if ((r = base_name(src, name, sizeof(name))) != 0 ||
		    (r = join(rpath, name, path, sizeof(path))) != 0)
			goto out;
		rpath = path;
	}
	ward_progress_init(&pr, rpath,
	    !stdin_src && S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0,
	    progress);
	if (!stdin_src && S_ISREG(st.st_mode)) {
		size = (uint64_t)st.st_size;
		r = ward_client_put(c, rpath, mode, fd, &size, &pr, &sent);
	} else
		r = ward_client_put(c, rpath, mode, fd, NULL, &pr, &sent);
	ward_progress_end(&pr);
	if (r != 0)
		ward_err_prefix(r, "%s -> enclave:%s", src, rpath);
	else
		ward_info("ward cp: %llu bytes to enclave:%s",
		    (unsigned long long)sent, rpath);
out:
	if (!stdin_src)
		close(fd);
	return r;
}

static int
cp_download(
    struct ward_client *c, const char *src, const char *dst, bool progress)
{
	char name[256], *path = NULL;
	const char *rpath = ws_path(src), *out = dst;
	struct ward_msg req = {.type = WARD_MSG_STAT}, rep;
	struct ward_atomic a = {.fd = -1};
	struct ward_progress pr;
	struct stat st;
	uint64_t total = 0, got;
	uint32_t mode = 0644;
	bool to_stdout = strcmp(dst, "-") == 0, opened = false;
	int dev_fd = -1;
	mode_t mask;
	int r;

	if (*rpath == '\0')
		return ward_errf(
		    WARD_EUSAGE, "%s: name a file in the workspace", src);
	/* its mode and size, and a clear error when it is not a file */
	req.path = (char *)rpath;
	if ((r = ward_client_call(c, &req, &rep)) != 0)
		return ward_err_prefix(r, "%s", src);
	if (rep.has_st) {
		if (S_ISDIR(rep.st.mode)) {
			ward_msg_free(&rep);
			return ward_errf(WARD_EUSAGE,
			    "%s is a directory: ward cp copies files (ward "
			    "sync mounts the whole workspace)",
			    src);
		}
		mode = rep.st.mode & 0777;
		total = rep.st.size;
	}
	ward_msg_free(&rep);
	if (!to_stdout) {
		if ((dst[strlen(dst) - 1] == '/' ||
		        (stat(dst, &st) == 0 && S_ISDIR(st.st_mode)))) {
			size_t cap = strlen(dst) + 258;

			if ((r = base_name(rpath, name, sizeof(name))) != 0)
				return r;
			if ((path = malloc(cap)) == NULL)
				return ward_enomem();
			if ((r = join(dst, name, path, cap)) != 0)
				goto out;
			out = path;
		}
		if (stat(out, &st) == 0 && !S_ISREG(st.st_mode)) {
			/* a device or FIFO (/dev/null, a pipe): written to,
			 * never replaced by a file */
			if ((dev_fd = open(
			         out, O_WRONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
				r = ward_errf(
				    WARD_EIO, "%s: %s", out, strerror(errno));
				goto out;
			}
		} else {
			mask = umask(0);
			umask(mask);
			if ((r = ward_atomic_open(
			         &a, out, mode & ~mask, true)) != 0)
				goto out;
			opened = true;
		}
	}
	ward_progress_init(&pr, rpath, total, progress);
	r = ward_client_get(c, rpath,
	    to_stdout         ? 1
	        : dev_fd >= 0 ? dev_fd
	                      : a.fd,
	    &pr, &got);
	ward_progress_end(&pr);
	if (r != 0) {
		ward_err_prefix(r, "%s -> %s", src, out);
		goto out;
	}
	if (opened) {
		opened = false;
		if ((r = ward_atomic_commit(&a)) != 0)
			goto out;
	}
	ward_info("ward cp: %llu bytes to %s", (unsigned long long)got, out);
out:
	if (opened)
		ward_atomic_abort(&a);
	if (dev_fd >= 0)
		close(dev_fd);
	free(path);
	return r;
}

int
cmd_cp_main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"enclave-cid", required_argument, NULL, OPT_CID},
	    {"agent", required_argument, NULL, OPT_AGENT},
	    {"timeout", required_argument, NULL, OPT_TIMEOUT},
	    {"progress", no_argument, NULL, OPT_PROGRESS},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct ward_client_opts co = {.timeout = CP_TIMEOUT_S};
	struct ward_client *c = NULL;
	bool have = false, progress = false, up;
	const char *src, *dst;
	int ch, r;

	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		r = 0;
		switch (ch) {
		case OPT_CID:
		case OPT_AGENT:
		case OPT_TIMEOUT:
			r = conn_opt(ch, optarg, &co, &have);
			break;
		case OPT_PROGRESS:
			progress = true;
			break;
		case 'h':
			fputs(cp_help, stdout);
			return 0;
		default:
			r = bad_option(ch, argv, "cp");
		}
		if (r != 0)
			return cli_fail("cp", r);
	}
	if (argc - optind != 2)
		return cli_fail("cp",
		    ward_errf(
		        WARD_EUSAGE, "give SRC and DST (see ward cp --help)"));
	src = argv[optind];
	dst = argv[optind + 1];
	if (is_enclave(src) == is_enclave(dst))
		return cli_fail("cp",
		    ward_errf(WARD_EUSAGE,
		        "exactly one of SRC and DST must be enclave:PATH"));
	if (*src == '\0' || *dst == '\0')
		return cli_fail("cp", ward_errf(WARD_EUSAGE, "empty path"));
	if ((r = need_conn(have, "cp")) != 0)
		return cli_fail("cp", r);
	up = is_enclave(dst);
	if ((r = ward_client_open(&co, &c)) != 0)
		goto out;
	r = up ? cp_upload(c, src, dst, progress)
	       : cp_download(c, src, dst, progress);
out:
	ward_client_close(c);
	return r != 0 ? cli_fail("cp", r) : 0;
}

/* ------------------------------------------------------------------ */
/* ward exec                                                          */

/* Where and as whom the enclave asks KMS (exec, infer): the flags, else
 * the AWS CLI's conventions. */
struct kms_target {
	const char *region_flag, *endpoint, *profile;
	bool no_cred;
	char *region; /* found */
	struct ward_aws_credentials cred;
	bool have_cred;
};

/* The --region/--endpoint-url/--profile/--no-credentials options: true
 * when ch was one. */
static bool
kms_opt(int ch, const char *arg, struct kms_target *t)
{
	switch (ch) {
	case OPT_REGION:
		t->region_flag = arg;
		return true;
	case OPT_ENDPOINT:
		t->endpoint = arg;
		return true;
	case OPT_PROFILE:
		t->profile = arg;
		return true;
	case OPT_NO_CRED:
		t->no_cred = true;
		return true;
	default:
		return false;
	}
}

static int
kms_target_resolve(struct kms_target *t)
{
	int r;

	if (t->endpoint == NULL)
		t->endpoint = getenv("AWS_ENDPOINT_URL_KMS");
	if (t->endpoint != NULL && *t->endpoint == '\0')
		t->endpoint = NULL;
	if ((t->region = ward_aws_region(t->region_flag, t->profile)) == NULL)
		return ward_errf(WARD_EUSAGE,
		    "no AWS region: give --region or set AWS_REGION");
	if (t->no_cred)
		return 0;
	if ((r = ward_aws_credentials_load(t->profile, &t->cred)) != 0)
		return ward_err_prefix(
		    r, "AWS credentials for the enclave's KMS calls");
	t->have_cred = true;
	return 0;
}

/* The credentials are zeroed (once sent, or on failure). */
static void
kms_target_clear(struct kms_target *t)
{
	if (t->have_cred)
		ward_aws_credentials_clear(&t->cred);
	t->have_cred = false;
}

static void
kms_target_free(struct kms_target *t)
{
	kms_target_clear(t);
	free(t->region);
	t->region = NULL;
}

static int
add_list(char **v, size_t *n, const char *flag, char *arg, bool pair)
{
	if (pair && (strchr(arg, '=') == NULL || *arg == '='))
		return ward_errf(
		    WARD_EUSAGE, "%s %s: want K=V", flag, ward_quotes(arg));
	if (*n == MAX_LIST)
		return ward_errf(WARD_EUSAGE, "at most %d %s", MAX_LIST, flag);
	v[(*n)++] = arg;
	return 0;
}

int
cmd_exec_main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"enclave-cid", required_argument, NULL, OPT_CID},
	    {"agent", required_argument, NULL, OPT_AGENT},
	    {"timeout", required_argument, NULL, OPT_TIMEOUT},
	    {"app", required_argument, NULL, OPT_APP},
	    {"key-id", required_argument, NULL, OPT_KEY_ID},
	    {"context", required_argument, NULL, OPT_CONTEXT},
	    {"region", required_argument, NULL, OPT_REGION},
	    {"endpoint-url", required_argument, NULL, OPT_ENDPOINT},
	    {"profile", required_argument, NULL, OPT_PROFILE},
	    {"env", required_argument, NULL, OPT_ENV},
	    {"no-credentials", no_argument, NULL, OPT_NO_CRED},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	static char *keys[MAX_LIST], *ctx[MAX_LIST], *env[MAX_LIST];
	struct ward_client_opts co = {.timeout = EXEC_TIMEOUT_S};
	struct ward_client_exec e = {.out_fd = 1, .err_fd = 2};
	struct kms_target t = {0};
	struct ward_client_exit x;
	struct ward_client *c = NULL;
	const char *app = NULL;
	bool have = false;
	int ch, r;

	optind = 1;
	opterr = 0;
	/* "+": options end at the first non-option (CMD) */
	while ((ch = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
		r = 0;
		switch (ch) {
		case OPT_CID:
		case OPT_AGENT:
		case OPT_TIMEOUT:
			r = conn_opt(ch, optarg, &co, &have);
			break;
		case OPT_APP:
			app = optarg;
			break;
		case OPT_KEY_ID:
			r = add_list(
			    keys, &e.key_idc, "--key-id", optarg, false);
			break;
		case OPT_CONTEXT:
			r = add_list(
			    ctx, &e.contextc, "--context", optarg, true);
			break;
		case OPT_ENV:
			r = add_list(env, &e.envc, "--env", optarg, true);
			break;
		case 'h':
			fputs(exec_help, stdout);
			return 0;
		default:
			if (!kms_opt(ch, optarg, &t))
				r = bad_option(ch, argv, "exec");
		}
		if (r != 0)
			return cli_fail("exec", r);
	}
	if (optind >= argc)
		return cli_fail("exec",
		    ward_errf(WARD_EUSAGE,
		        "what to run? give -- CMD [ARGS...] (see ward exec "
		        "--help)"));
	if (app == NULL || !is_enclave(app) || *ws_path(app) == '\0')
		return cli_fail("exec",
		    ward_errf(WARD_EUSAGE,
		        "give the app as --app enclave:PATH (a file in the "
		        "workspace)"));
	if ((r = need_conn(have, "exec")) != 0)
		return cli_fail("exec", r);
	if ((size_t)(argc - optind) > WARD_MSG_ARGS_MAX)
		return cli_fail("exec",
		    ward_errf(WARD_EUSAGE, "at most %u arguments",
		        WARD_MSG_ARGS_MAX));
	e.app = ws_path(app);
	e.argv = argv + optind;
	e.argc = (size_t)(argc - optind);
	e.key_ids = keys;
	e.context = ctx;
	e.env = env;
	if ((r = kms_target_resolve(&t)) != 0)
		goto out;
	e.endpoint = t.endpoint;
	e.region = t.region;
	e.cred = t.have_cred ? &t.cred : NULL;
	if ((r = ward_client_open(&co, &c)) != 0)
		goto out;
	r = ward_client_exec(c, &e, &x);
	/* sent (or not): the credentials are no longer needed */
	kms_target_clear(&t);
	if (r != 0)
		goto out;
	ward_client_close(c);
	c = NULL;
	kms_target_free(&t);
	if (x.signaled) {
		fprintf(stderr,
		    "ward exec: the app was killed by signal %d (%s)\n",
		    x.status, strsignal(x.status));
		return 128 + x.status;
	}
	if (x.status < 0 || x.status > 255)
		return 255;
	return x.status;
out:
	kms_target_free(&t);
	ward_client_close(c);
	return cli_fail("exec", r);
}

/* ------------------------------------------------------------------ */
/* ward infer                                                         */

static int
fd_write(void *ctx, const uint8_t *p, size_t n)
{
	int fd = *(int *)ctx;

	while (n > 0) {
		ssize_t k = write(fd, p, n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return ward_errf(WARD_EIO, "writing the answer: %s",
			    strerror(errno));
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static int
write_receipt(const char *path, const struct ward_client_infer *q,
    const uint8_t *nonce, size_t nonce_len, bool force)
{
	char m[2 * 48 + 1], in[2 * 48 + 1], out[2 * 48 + 1];
	char *doc = NULL, *nhex = NULL, *text = NULL;
	json_t *j = NULL;
	int r;

	if ((doc = malloc(ward_b64_len(q->document->len) + 1)) == NULL ||
	    (nonce != NULL &&
	        (nhex = malloc(ward_hex_len(nonce_len) + 1)) == NULL)) {
		r = ward_enomem();
		goto out;
	}
	ward_b64_encode(q->document->p, q->document->len, doc);
	/* the model's hash is in the answer's first line; the agent put it
	 * in the document's binding too, and verify checks both */
	ward_hex_encode(q->input_sha384, 48, in);
	ward_hex_encode(q->output_sha384, 48, out);
	ward_hex_encode(q->model_sha384, 48, m);
	j = json_pack("{s:s, s:s, s:s, s:s, s:s}", "receipt", "ward-infer-v1",
	    "model_sha384", m, "input_sha384", in, "output_sha384", out,
	    "attestation_document", doc);
	if (j != NULL && nonce != NULL) {
		ward_hex_encode(nonce, nonce_len, nhex);
		json_object_set_new(j, "nonce", json_string(nhex));
	}
	if (j == NULL ||
	    (text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER)) ==
	        NULL) {
		r = ward_enomem();
		goto out;
	}
	{
		size_t n = strlen(text);

		text[n] = '\n';
		r = ward_write_file_atomic(path, text, n + 1, 0644, force);
		text[n] = '\0';
	}
out:
	free(text);
	json_decref(j);
	free(nhex);
	free(doc);
	return r;
}

int
cmd_infer_main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"enclave-cid", required_argument, NULL, OPT_CID},
	    {"agent", required_argument, NULL, OPT_AGENT},
	    {"timeout", required_argument, NULL, OPT_TIMEOUT},
	    {"model", required_argument, NULL, OPT_MODEL},
	    {"input", required_argument, NULL, OPT_INPUT},
	    {"format", required_argument, NULL, OPT_FORMAT},
	    {"output", required_argument, NULL, OPT_OUTPUT},
	    {"receipt", required_argument, NULL, OPT_RECEIPT},
	    {"nonce", required_argument, NULL, OPT_NONCE},
	    {"force", no_argument, NULL, OPT_FORCE},
	    {"key-id", required_argument, NULL, OPT_KEY_ID},
	    {"region", required_argument, NULL, OPT_REGION},
	    {"endpoint-url", required_argument, NULL, OPT_ENDPOINT},
	    {"profile", required_argument, NULL, OPT_PROFILE},
	    {"no-credentials", no_argument, NULL, OPT_NO_CRED},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	static char *keys[MAX_LIST];
	struct ward_client_opts co = {.timeout = EXEC_TIMEOUT_S};
	struct ward_client_infer q = {.input_fd = -1};
	struct kms_target t = {0};
	struct ward_atomic at = {.fd = -1};
	struct ward_buf doc = {0};
	struct ward_client *c = NULL;
	const char *model = NULL, *input = NULL, *output = NULL,
	           *receipt = NULL, *format = NULL;
	uint8_t nonce[WARD_MSG_ATTEST_FIELD_MAX];
	size_t nonce_len = 0;
	bool have = false, force = false, have_nonce = false,
	     atomic_open = false;
	int ch, r, out_fd = 1;

	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		r = 0;
		switch (ch) {
		case OPT_CID:
		case OPT_AGENT:
		case OPT_TIMEOUT:
			r = conn_opt(ch, optarg, &co, &have);
			break;
		case OPT_MODEL:
			model = optarg;
			break;
		case OPT_INPUT:
			input = optarg;
			break;
		case OPT_FORMAT:
			format = optarg;
			if (strcmp(format, "csv") != 0 &&
			    strcmp(format, "json") != 0)
				r = ward_errf(WARD_EUSAGE,
				    "--format %s: csv or json",
				    ward_quotes(format));
			break;
		case OPT_OUTPUT:
			output = optarg;
			break;
		case OPT_RECEIPT:
			receipt = optarg;
			break;
		case OPT_NONCE:
			if (ward_hex_decode(optarg, strlen(optarg), nonce,
			        sizeof(nonce), &nonce_len) != 0 ||
			    nonce_len == 0)
				r = ward_errf(WARD_EUSAGE,
				    "--nonce: not hex of 1 to %u bytes",
				    WARD_MSG_ATTEST_FIELD_MAX);
			have_nonce = true;
			break;
		case OPT_FORCE:
			force = true;
			break;
		case OPT_KEY_ID:
			r = add_list(
			    keys, &q.key_idc, "--key-id", optarg, false);
			break;
		case 'h':
			fputs(infer_help, stdout);
			return 0;
		default:
			if (!kms_opt(ch, optarg, &t))
				r = bad_option(ch, argv, "infer");
		}
		if (r != 0)
			return cli_fail("infer", r);
	}
	if (optind != argc)
		return cli_fail("infer",
		    ward_errf(WARD_EUSAGE,
		        "unexpected argument %s (see ward infer --help)",
		        ward_quotes(argv[optind])));
	if (model == NULL || !is_enclave(model) || *ws_path(model) == '\0')
		return cli_fail("infer",
		    ward_errf(WARD_EUSAGE,
		        "give the model as --model enclave:PATH (a file in the "
		        "workspace)"));
	if (input == NULL)
		return cli_fail("infer",
		    ward_errf(WARD_EUSAGE, "give the rows as --input FILE"));
	if (have_nonce && receipt == NULL)
		return cli_fail("infer",
		    ward_errf(WARD_EUSAGE, "--nonce goes with --receipt"));
	if ((r = need_conn(have, "infer")) != 0)
		return cli_fail("infer", r);
	if (strcmp(input, "-") == 0)
		q.input_fd = 0;
	else if ((q.input_fd = open(input, O_RDONLY | O_CLOEXEC)) < 0) {
		r = ward_errf(WARD_EIO, "%s: %s", input, strerror(errno));
		goto out;
	}
	q.model = ws_path(model);
	q.format = format;
	q.key_ids = keys;
	q.receipt = receipt != NULL;
	q.nonce = have_nonce ? nonce : NULL;
	q.nonce_len = nonce_len;
	q.document = &doc;
	if ((r = kms_target_resolve(&t)) != 0)
		goto out;
	q.endpoint = t.endpoint;
	q.region = t.region;
	q.cred = t.have_cred ? &t.cred : NULL;
	if (output != NULL && strcmp(output, "-") != 0) {
		if ((r = ward_atomic_open(&at, output, 0644, force)) != 0)
			goto out;
		atomic_open = true;
		out_fd = at.fd;
	}
	if (receipt != NULL && !force && access(receipt, F_OK) == 0) {
		r = ward_errf(
		    WARD_EEXIST, "%s exists (--force replaces it)", receipt);
		goto out;
	}
	q.out = fd_write;
	q.out_ctx = &out_fd;
	if ((r = ward_client_open(&co, &c)) != 0)
		goto out;
	r = ward_client_infer(c, &q);
	kms_target_clear(&t); /* sent (or not) */
	if (r != 0)
		goto out;
	if (atomic_open) {
		atomic_open = false;
		if ((r = ward_atomic_commit(&at)) != 0)
			goto out;
	}
	if (receipt != NULL)
		r = write_receipt(
		    receipt, &q, have_nonce ? nonce : NULL, nonce_len, force);
out:
	if (atomic_open)
		ward_atomic_abort(&at);
	kms_target_free(&t);
	if (q.input_fd > 0)
		close(q.input_fd);
	ward_client_close(c);
	ward_buf_free(&doc);
	return r != 0 ? cli_fail("infer", r) : 0;
}
