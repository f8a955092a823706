/*
 * bench_agent: the measurements bench/agent prints, each beside a baseline
 * taken by the same program in the same run.
 *
 *   exec ADDR APP N       N runs of `ward exec` of APP's `./run echo x`
 *                         through the library (the EXEC the CLI sends):
 *                         key release inside the enclave (the agent's
 *                         EXIT "kr": attestation + KMS Decrypt with
 *                         Recipient + unwrap), time to the first output
 *                         line at the host, and the whole exec
 *   kms URL N             the baseline for key release: N plain KMS
 *                         Decrypts of a data key from the host, straight
 *                         to the same ward kms serve (no attestation,
 *                         no proxy, no Recipient)
 *   spawn PROG N          the baseline for the first line: N local runs of
 *                         PROG echo x (fork, exec, read the first line)
 *   sockcopy FILE OUT     the baseline for ward cp: FILE sent over a Unix
 *                         socket by a child process, written to OUT by
 *                         this one, 256 KiB at a time; prints MB/s
 *
 * Credentials, region and endpoint come from the environment as for
 * ward exec. Prints "name value" lines (ms, MB/s) for the script.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ward/agent.h"
#include "ward/client.h"
#include "ward/kms.h"
#include "ward/util.h"

#define CHUNK (256 * 1024)

static void
die(const char *what)
{
	fprintf(stderr, "bench_agent: %s: %s\n", what, ward_errmsg());
	exit(1);
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of n sorted values. */
static double
pct(double *v, size_t n, double p)
{
	size_t k = (size_t)(p / 100.0 * (double)n + 0.999999);

	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return v[k - 1];
}

static void
report(const char *name, double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	printf("%s_p50 %.3f\n%s_p99 %.3f\n", name, pct(v, n, 50), name,
	    pct(v, n, 99));
}

static int
bench_exec(const char *addr, const char *app, size_t n)
{
	struct ward_aws_credentials cred = {0};
	struct ward_client_opts co = {.agent = addr, .timeout = 60};
	struct ward_client *c = NULL;
	char *argv[] = {(char *)"./run", (char *)"echo", (char *)"x", NULL};
	char *region;
	const char *endpoint = getenv("AWS_ENDPOINT_URL_KMS");
	double *kr, *first, *total, t0, t;
	size_t i, got = 0;
	struct ward_msg m;

	kr = calloc(n, sizeof(double));
	first = calloc(n, sizeof(double));
	total = calloc(n, sizeof(double));
	if (kr == NULL || first == NULL || total == NULL)
		die("memory");
	if (ward_aws_credentials_load(NULL, &cred) != 0)
		die("credentials");
	if ((region = ward_aws_region(NULL, NULL)) == NULL) {
		ward_errf(WARD_EUSAGE, "no region (AWS_REGION)");
		die("region");
	}
	if (ward_client_open(&co, &c) != 0)
		die(addr);
	for (i = 0; i < n; i++) {
		struct ward_msg q = {.type = WARD_MSG_EXEC,
		    .app = (char *)app,
		    .argv = argv,
		    .argc = 3,
		    .has_cred = true,
		    .region = region,
		    .endpoint = (char *)endpoint};
		bool seen = false, done = false;

		q.cred.access_key_id = cred.access_key_id;
		q.cred.secret_access_key = cred.secret_access_key;
		q.cred.session_token = cred.session_token;
		q.id = ward_client_id(c);
		t0 = ward_now();
		if (ward_client_send(c, &q) != 0)
			die("exec");
		while (!done) {
			if (ward_client_recv(c, &m, -1) != 0)
				die("exec reply");
			t = ward_now();
			if (m.id != q.id) {
				ward_msg_free(&m);
				continue;
			}
			if (m.type == WARD_MSG_OUT && !seen) {
				first[i] = (t - t0) * 1e3;
				seen = true;
			} else if (m.type == WARD_MSG_EXIT) {
				total[i] = (t - t0) * 1e3;
				if (!m.has_key_ns || !seen || !m.has_status ||
				    m.status != 0) {
					ward_errf(WARD_EFORMAT,
					    "exit without kr, output or status 0");
					die("exec");
				}
				kr[i] = (double)m.key_ns / 1e6;
				done = true;
			} else if (m.type == WARD_MSG_ERR) {
				ward_client_err(&m);
				die("exec");
			}
			ward_msg_free(&m);
		}
		got++;
	}
	report("keyrel_ms", kr, got);
	report("first_line_ms", first, got);
	report("exec_ms", total, got);
	ward_client_close(c);
	ward_aws_credentials_clear(&cred);
	free(region);
	free(kr);
	free(first);
	free(total);
	return 0;
}

static json_t *
call(struct ward_kms_client *c, const char *op, json_t *req)
{
	struct ward_kms_error e;
	json_t *resp = NULL;

	if (ward_kms_call(c, op, req, &resp, &e) != 0)
		die(op);
	json_decref(req);
	return resp;
}

static int
bench_kms(const char *url, size_t n)
{
	struct ward_kms_client_opts o = {.endpoint_url = url};
	struct ward_kms_client *c = NULL;
	json_t *key, *dk, *resp;
	const char *blob;
	double *v, t0;
	size_t i;

	if ((v = calloc(n, sizeof(double))) == NULL)
		die("memory");
	if (ward_kms_client_new(&c, &o) != 0)
		die("KMS client");
	key = call(c, "CreateKey", json_pack("{s:s}", "Description", "bench"));
	dk = call(c, "GenerateDataKeyWithoutPlaintext",
	    json_pack("{s:O,s:i}", "KeyId",
	        json_object_get(json_object_get(key, "KeyMetadata"), "KeyId"),
	        "NumberOfBytes", 32));
	blob = json_string_value(json_object_get(dk, "CiphertextBlob"));
	for (i = 0; i < n; i++) {
		t0 = ward_now();
		resp = call(
		    c, "Decrypt", json_pack("{s:s}", "CiphertextBlob", blob));
		v[i] = (ward_now() - t0) * 1e3;
		json_decref(resp);
	}
	report("kms_decrypt_ms", v, n);
	json_decref(key);
	json_decref(dk);
	ward_kms_client_free(c);
	free(v);
	return 0;
}

static int
bench_spawn(const char *prog, size_t n)
{
	double *v, t0;
	size_t i;
	char ch;

	if ((v = calloc(n, sizeof(double))) == NULL)
		die("memory");
	for (i = 0; i < n; i++) {
		int p[2];
		pid_t pid;

		if (pipe(p) != 0)
			die("pipe");
		t0 = ward_now();
		if ((pid = fork()) == 0) {
			int devnull = open("/dev/null", O_WRONLY);

			dup2(p[1], 1);
			if (devnull >= 0)
				dup2(devnull, 2);
			close(p[0]);
			close(p[1]);
			execl(prog, prog, "echo", "x", (char *)NULL);
			_exit(127);
		}
		close(p[1]);
		if (read(p[0], &ch, 1) != 1) {
			ward_errf(WARD_EIO, "%s printed nothing", prog);
			die("spawn");
		}
		v[i] = (ward_now() - t0) * 1e3;
		while (read(p[0], &ch, 1) > 0)
			;
		close(p[0]);
		waitpid(pid, NULL, 0);
	}
	report("spawn_first_line_ms", v, n);
	free(v);
	return 0;
}

static int
bench_sockcopy(const char *file, const char *out)
{
	static uint8_t buf[CHUNK];
	int sv[2], in, fd;
	uint64_t total = 0;
	ssize_t k;
	double t0;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		die("socketpair");
	t0 = ward_now();
	if ((pid = fork()) == 0) {
		close(sv[0]);
		if ((in = open(file, O_RDONLY)) < 0)
			_exit(1);
		struct ward_fd_stream w = {.fd = sv[1], .name = "socket"};

		while ((k = read(in, buf, sizeof(buf))) > 0)
			if (ward_fd_write(&w, buf, (size_t)k) != 0)
				_exit(1);
		_exit(k == 0 ? 0 : 1);
	}
	close(sv[1]);
	if ((fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600)) < 0) {
		ward_errf(WARD_EIO, "%s: %s", out, strerror(errno));
		die("sockcopy");
	}
	while ((k = read(sv[0], buf, sizeof(buf))) > 0) {
		struct ward_fd_stream w = {.fd = fd, .name = out};

		if (ward_fd_write(&w, buf, (size_t)k) != 0)
			die("sockcopy");
		total += (uint64_t)k;
	}
	close(fd);
	close(sv[0]);
	waitpid(pid, NULL, 0);
	printf("sockcopy_mb_s %.1f\nsockcopy_bytes %llu\n",
	    (double)total / 1e6 / (ward_now() - t0), (unsigned long long)total);
	return 0;
}

int
main(int argc, char **argv)
{
	unsigned long n;

	signal(SIGPIPE, SIG_IGN);
	if (argc == 5 && strcmp(argv[1], "exec") == 0 &&
	    (n = strtoul(argv[4], NULL, 10)) > 0)
		return bench_exec(argv[2], argv[3], n);
	if (argc == 4 && strcmp(argv[1], "kms") == 0 &&
	    (n = strtoul(argv[3], NULL, 10)) > 0)
		return bench_kms(argv[2], n);
	if (argc == 4 && strcmp(argv[1], "spawn") == 0 &&
	    (n = strtoul(argv[3], NULL, 10)) > 0)
		return bench_spawn(argv[2], n);
	if (argc == 4 && strcmp(argv[1], "sockcopy") == 0)
		return bench_sockcopy(argv[2], argv[3]);
	fprintf(stderr,
	    "usage: bench_agent exec ADDR APP N | kms URL N | "
	    "spawn PROG N | sockcopy FILE OUT\n");
	return 2;
}
