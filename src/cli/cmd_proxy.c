/* ward proxy: vsock-proxy's command line (nitro.md §6) and the KMS route
 * (-s kms); the work is in src/proxy. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ward/proxy.h"
#include "ward/util.h"

static const char proxy_help[] =
    "usage: ward proxy [-4|-6] [-w WORKERS] [--config YAML] LOCAL_PORT\n"
    "                  REMOTE_ADDR REMOTE_PORT\n"
    "       ward proxy -s kms [-4|-6] [-w WORKERS] [--config YAML]\n"
    "                  [LOCAL_PORT]\n"
    "\n"
    "Relay connections from enclaves to one TCP destination, as AWS's\n"
    "vsock-proxy does: listen on vsock port LOCAL_PORT of this host (CID 3,\n"
    "the parent; in the sandbox the Unix socket <run>/vsock/3/LOCAL_PORT)\n"
    "and connect each connection to REMOTE_ADDR:REMOTE_PORT. Bytes pass\n"
    "through untouched: TLS runs end to end between the enclave and the\n"
    "remote. The destination must be in the allowlist, or the proxy does\n"
    "not start. Prints {\"Listen\": \"vsock:CID:PORT\", \"Remote\":\n"
    "\"HOST:PORT\"} on standard output once listening; one line per\n"
    "connection on standard error when it ends (time, id, peer, remote,\n"
    "bytes up and down, duration, why it ended; never payload). SIGTERM,\n"
    "SIGINT or SIGHUP stops it: it stops listening, lets connections in\n"
    "flight finish for --shutdown-grace seconds, and exits 0; a second\n"
    "signal closes them at once.\n"
    "\n"
    "  -4, --ipv4               use only IPv4 addresses of names\n"
    "  -6, --ipv6               use only IPv6 addresses of names\n"
    "  -w, --num_workers N      worker threads, each with its own event\n"
    "                           loop (default 4; also --workers)\n"
    "      --config FILE        the allowlist, vsock-proxy's YAML:\n"
    "                             allowlist:\n"
    "                             - {address: HOST-OR-IP, port: N}\n"
    "                           (default " WARD_PROXY_CONFIG_PATH
    "; when that\n"
    "                           file does not exist, the built-in list:\n"
    "                           kms and kms-fips.<region>.amazonaws.com,\n"
    "                           port 443, for the commercial regions)\n"
    "  -s, --service kms        the KMS route: to $AWS_ENDPOINT_URL_KMS (or\n"
    "                           $WARD_KMS_ENDPOINT) when set, such as a\n"
    "                           local ward kms serve: http(s)://HOST[:PORT]\n"
    "                           with no user info, query or fragment. Its\n"
    "                           HOST:PORT is added to the allowlist when\n"
    "                           the list lacks it, and a warning on\n"
    "                           standard error says so (whoever sets the\n"
    "                           variable chose that server). Else to\n"
    "                           kms.$AWS_REGION.amazonaws.com:443, which\n"
    "                           the allowlist must admit. LOCAL_PORT\n"
    "                           defaults to 8000\n"
    "      --max-connections N  at most N at once (default 1024); more are\n"
    "                           closed as they arrive\n"
    "      --idle-timeout S     close a connection after S seconds without\n"
    "                           a byte moving (default 300)\n"
    "      --half-close-timeout S\n"
    "                           the same once one direction has ended, so\n"
    "                           that a peer that half-closes and vanishes\n"
    "                           does not hold a slot (default 60, at most\n"
    "                           --idle-timeout)\n"
    "      --connect-timeout S  give up connecting to the remote after S\n"
    "                           seconds, all its addresses together; each\n"
    "                           gets an equal share of what is left, at\n"
    "                           least 1 s (default 10)\n"
    "      --dns-refresh S      look the remote's name up again every S\n"
    "                           seconds (default 60; a failed lookup keeps\n"
    "                           the last addresses)\n"
    "      --shutdown-grace S   after SIGTERM, how long connections in\n"
    "                           flight may take (default 5)\n"
    "      --splice WHEN        auto (default: splice(2) from the remote to\n"
    "                           the enclave past its first 64 KiB,\n"
    "                           read/write otherwise, as measured\n"
    "                           fastest), always or never\n"
    "  -q, --quiet              no line per connection\n"
    "  -v, --verbose            more log output\n"
    "  -h, --help\n"
    "\n"
    "An address is admitted when an entry with the same port names it, or\n"
    "when REMOTE_ADDR and an entry's address resolve to a common IP; a name\n"
    "in the list that resolves elsewhere does not admit it. With a common\n"
    "IP, the proxy connects only to addresses both resolve to at the last\n"
    "lookup (--dns-refresh): an entry that moves elsewhere stops admitting\n"
    "its old address. A refusal says\n"
    "\"" WARD_PROXY_NOT_ALLOWED "\" and exits 2. See docs/proxy.md.\n"
    "\n"
    "Exit status 0 after SIGTERM/SIGINT/SIGHUP; 2: bad usage or a\n"
    "destination the allowlist lacks; 3: the allowlist file or the vsock\n"
    "port could not be used; 4: a malformed allowlist; 11: the port is in\n"
    "use.\n";

#define usage_err(...) cli_fail("proxy", ward_errf(WARD_EUSAGE, __VA_ARGS__))

enum {
	OPT_CONFIG = 256,
	OPT_MAXCONN,
	OPT_IDLE,
	OPT_CONNECT,
	OPT_GRACE,
	OPT_SPLICE,
	OPT_HALF,
	OPT_DNS,
};

static const struct option longopts[] = {
    {"ipv4", no_argument, NULL, '4'},
    {"ipv6", no_argument, NULL, '6'},
    {"num_workers", required_argument, NULL, 'w'},
    {"num-workers", required_argument, NULL, 'w'},
    {"workers", required_argument, NULL, 'w'},
    {"config", required_argument, NULL, OPT_CONFIG},
    {"service", required_argument, NULL, 's'},
    {"max-connections", required_argument, NULL, OPT_MAXCONN},
    {"idle-timeout", required_argument, NULL, OPT_IDLE},
    {"connect-timeout", required_argument, NULL, OPT_CONNECT},
    {"shutdown-grace", required_argument, NULL, OPT_GRACE},
    {"half-close-timeout", required_argument, NULL, OPT_HALF},
    {"dns-refresh", required_argument, NULL, OPT_DNS},
    {"splice", required_argument, NULL, OPT_SPLICE},
    {"quiet", no_argument, NULL, 'q'},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Strict decimal from lo to hi: digits only, no sign, no leading zero. */
static int
number(const char *what, const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
	uint64_t v = 0;
	size_t n = strlen(s);

	if (n == 0 || n > 20 || (s[0] == '0' && n > 1) ||
	    strspn(s, "0123456789") != n)
		goto bad;
	for (size_t i = 0; i < n; i++) {
		if (v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
			goto bad;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v < lo || v > hi)
		goto bad;
	*out = v;
	return 0;
bad:
	return ward_errf(WARD_EUSAGE,
	    "%s: expected a whole number from %llu "
	    "to %llu, got '%s'",
	    what, (unsigned long long)lo, (unsigned long long)hi,
	    ward_quotes(s));
}

struct args {
	struct ward_proxy_opts o;
	const char *config, *service;
	bool v4, v6;
};

static int
parse(int argc, char **argv, struct args *a, int *first)
{
	uint64_t v;
	int c, r;

	optind = 1;
	while (
	    (c = getopt_long(argc, argv, "46w:s:qvh", longopts, NULL)) != -1) {
		switch (c) {
		case '4':
			a->v4 = true;
			break;
		case '6':
			a->v6 = true;
			break;
		case 'w':
			if ((r = number("--num_workers", optarg, 1,
			         WARD_PROXY_WORKERS_MAX, &v)) != 0)
				return r;
			a->o.workers = (unsigned)v;
			break;
		case OPT_CONFIG:
			a->config = optarg;
			break;
		case 's':
			a->service = optarg;
			break;
		case OPT_MAXCONN:
			if ((r = number("--max-connections", optarg, 1,
			         WARD_PROXY_MAX_CONNECTIONS_MAX, &v)) != 0)
				return r;
			a->o.max_connections = (unsigned)v;
			break;
		case OPT_IDLE:
			if ((r = number(
			         "--idle-timeout", optarg, 1, 86400, &v)) != 0)
				return r;
			a->o.idle_timeout_s = (unsigned)v;
			break;
		case OPT_CONNECT:
			if ((r = number("--connect-timeout", optarg, 1, 3600,
			         &v)) != 0)
				return r;
			a->o.connect_timeout_s = (unsigned)v;
			break;
		case OPT_GRACE:
			if ((r = number(
			         "--shutdown-grace", optarg, 1, 3600, &v)) != 0)
				return r;
			a->o.grace_s = (unsigned)v;
			break;
		case OPT_HALF:
			if ((r = number("--half-close-timeout", optarg, 1,
			         86400, &v)) != 0)
				return r;
			a->o.half_close_timeout_s = (unsigned)v;
			break;
		case OPT_DNS:
			if ((r = number(
			         "--dns-refresh", optarg, 1, 86400, &v)) != 0)
				return r;
			a->o.dns_refresh_s = (unsigned)v;
			break;
		case OPT_SPLICE:
			if (strcmp(optarg, "auto") == 0)
				a->o.splice = WARD_PROXY_SPLICE_AUTO;
			else if (strcmp(optarg, "always") == 0)
				a->o.splice = WARD_PROXY_SPLICE_ALWAYS;
			else if (strcmp(optarg, "never") == 0)
				a->o.splice = WARD_PROXY_SPLICE_NEVER;
			else
				return ward_errf(WARD_EUSAGE,
				    "--splice: auto, always or never, not '%s'",
				    ward_quotes(optarg));
			break;
		case 'q':
			a->o.quiet = true;
			cli_verbosity(-1);
			break;
		case 'v':
			cli_verbosity(1);
			break;
		case 'h':
			fputs(proxy_help, stdout);
			return 1;
		default:
			return ward_errf(
			    WARD_EUSAGE, "see 'ward proxy --help'");
		}
	}
	if (a->v4 && a->v6)
		return ward_errf(WARD_EUSAGE,
		    "-4 (--ipv4) and -6 (--ipv6) conflict: give one");
	a->o.family = a->v4 ? WARD_PROXY_IPV4
	    : a->v6         ? WARD_PROXY_IPV6
	                    : WARD_PROXY_ANY;
	*first = optind;
	return 0;
}

static void
ready(void *ctx, const char *listen, const char *remote)
{
	json_t *j = json_pack("{s:s, s:s}", "Listen", listen, "Remote", remote);

	(void)ctx;
	json_dumpf(j, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
	fputc('\n', stdout);
	fflush(stdout);
	json_decref(j);
}

/* REMOTE_ADDR: a name or an IP; "[v6]" loses its brackets. */
static int
remote_addr(const char *s, char *out, size_t cap)
{
	size_t n = strlen(s);

	if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
		s++;
		n -= 2;
	}
	if (n == 0 || n > WARD_PROXY_ADDRESS_MAX || n >= cap)
		return ward_errf(WARD_EUSAGE,
		    "REMOTE_ADDR: expected a host name or an IP address of 1 "
		    "to %d characters",
		    WARD_PROXY_ADDRESS_MAX);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 127)
			return ward_errf(WARD_EUSAGE,
			    "REMOTE_ADDR '%s' is not a host name or an IP "
			    "address",
			    ward_quotes(s));
	memcpy(out, s, n);
	out[n] = '\0';
	return 0;
}

static const char *
env(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && v[0] != '\0' ? v : NULL;
}

/*
 * -s kms: the destination from the environment. An endpoint URL
 * (AWS_ENDPOINT_URL_KMS, as the AWS SDKs read it) is the host admin's
 * configuration, like the allowlist itself, so its HOST:PORT is admitted
 * even when the list lacks it: the list is extended with that one entry,
 * a warning names the entry and the variable, and the allowlist's name in
 * the log says "+ $VAR". ward_proxy_kms_route refuses a URL with user
 * info, a query, a fragment, escapes or dot segments, so the host logged
 * is the host connected to. The regional endpoint is never added: the
 * list must admit it, as vsock-proxy's does.
 */
static int
kms_route(struct ward_proxy_allowlist *al, char *host, size_t cap,
    uint16_t *port, enum ward_proxy_family family)
{
	const char *var = "AWS_ENDPOINT_URL_KMS", *url = env(var);
	const char *region = env("AWS_REGION");
	char source[sizeof(al->source)];
	enum ward_proxy_match m;
	int r;

	if (url == NULL) {
		var = "WARD_KMS_ENDPOINT";
		url = env(var);
	}
	if (region == NULL)
		region = env("AWS_DEFAULT_REGION");
	if ((r = ward_proxy_kms_route(url, region, host, cap, port)) != 0)
		return r;
	if (url == NULL ||
	    ward_proxy_allowlist_check(al, host, *port, family, &m, NULL) == 0)
		return 0;
	ward_errclear();
	if ((r = ward_proxy_allowlist_add(al, host, *port)) != 0)
		return r;
	ward_warn("proxy: allowlist extended with %s%s%s:%u (from $%s=%s), "
	          "which %s does not list",
	    strchr(host, ':') != NULL ? "[" : "", host,
	    strchr(host, ':') != NULL ? "]" : "", (unsigned)*port, var, url,
	    al->source);
	snprintf(source, sizeof(source), "%s", al->source);
	snprintf(al->source, sizeof(al->source), "%.*s + $%s",
	    (int)(sizeof(al->source) - 32), source, var);
	return 0;
}

int
cmd_proxy_main(int argc, char **argv)
{
	struct args a;
	struct ward_proxy_allowlist al;
	char host[WARD_PROXY_ADDRESS_MAX + 1];
	uint64_t v;
	int r, pos = 0, npos;

	memset(&a, 0, sizeof(a));
	memset(&al, 0, sizeof(al));
	if ((r = parse(argc, argv, &a, &pos)) != 0)
		return r > 0 ? 0 : cli_fail("proxy", r);
	npos = argc - pos;
	a.o.local_port = WARD_PROXY_DEFAULT_PORT;
	if (a.service != NULL) {
		if (strcmp(a.service, "kms") != 0)
			return usage_err("-s: unknown service '%s': the one "
			                 "route is kms",
			    ward_quotes(a.service));
		if (npos > 1)
			return usage_err(
			    "-s kms takes at most LOCAL_PORT, not the remote "
			    "(it comes from AWS_ENDPOINT_URL_KMS or "
			    "AWS_REGION)");
	} else if (npos != 3) {
		return usage_err(
		    "expected LOCAL_PORT REMOTE_ADDR REMOTE_PORT (or -s kms); "
		    "see 'ward proxy --help'");
	}
	if (npos >= 1) {
		if ((r = number("LOCAL_PORT", argv[pos], 0, 0xFFFFFFFEu, &v)) !=
		    0)
			return cli_fail("proxy", r);
		a.o.local_port = (uint32_t)v;
	}
	if (a.service == NULL) {
		if ((r = remote_addr(argv[pos + 1], host, sizeof(host))) != 0 ||
		    (r = number("REMOTE_PORT", argv[pos + 2], 1, 65535, &v)) !=
		        0)
			return cli_fail("proxy", r);
		a.o.remote_port = (uint16_t)v;
	}
	if ((r = ward_proxy_allowlist_load(a.config, &al)) != 0)
		return cli_fail("proxy", r);
	if (a.service != NULL &&
	    (r = kms_route(
	         &al, host, sizeof(host), &a.o.remote_port, a.o.family)) != 0) {
		ward_proxy_allowlist_free(&al);
		return cli_fail("proxy", r);
	}
	a.o.remote_host = host;
	a.o.allowlist = &al;
	a.o.ready = ready;
	r = ward_proxy_serve(&a.o);
	ward_proxy_allowlist_free(&al);
	return r != 0 ? cli_fail("proxy", r) : 0;
}
