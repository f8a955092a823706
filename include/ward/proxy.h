/*
 * ward proxy: a vsock-to-TCP proxy with vsock-proxy's allowlist
 * (nitro.md §6). The enclave's only way out: it connects to the parent's
 * vsock port (CID 3, emulated with Unix sockets in the sandbox; see
 * transport.h), and the proxy connects by TCP to the one destination it
 * was started for, which the allowlist must name. Bytes pass through
 * untouched, so TLS runs end to end between the enclave and the remote.
 * User's page: docs/proxy.md.
 */
#ifndef WARD_PROXY_H
#define WARD_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* ---- the allowlist (vsock-proxy.yaml) --------------------------------- */

#define WARD_PROXY_CONFIG_PATH "/etc/ward/vsock-proxy.yaml"
#define WARD_PROXY_CONFIG_MAX (256 * 1024) /* bytes of YAML read */
#define WARD_PROXY_RULES_MAX 4096 /* allowlist entries */
#define WARD_PROXY_ADDRESS_MAX 253 /* a DNS name's longest text form */
/* vsock-proxy's refusal, word for word (nitro.md §6) */
#define WARD_PROXY_NOT_ALLOWED "The given address and port are not allowed"

struct ward_proxy_rule {
	char address[WARD_PROXY_ADDRESS_MAX + 1]; /* a name or an IP */
	uint16_t port;
};

struct ward_proxy_allowlist {
	struct ward_proxy_rule *rules;
	size_t n;
	char source[300]; /* the file read, or "built-in (...)" */
};

/*
 * Parse vsock-proxy.yaml's text (libyaml): one document, a mapping whose
 * "allowlist" is a list of mappings {address: NAME-OR-IP, port: N}.
 * Other top-level keys are ignored, as vsock-proxy ignores them; inside an
 * entry only address and port are accepted, each once. address is a
 * string of 1 to WARD_PROXY_ADDRESS_MAX printable non-space bytes; port a
 * plain decimal integer from 1 to 65535 (a quoted "443" is a string in
 * YAML, and vsock-proxy refuses it too). An empty list is valid and allows
 * nothing. Errors are WARD_EFORMAT naming name and the line ("No allowlist
 * field" as vsock-proxy words it when the key is missing); more than
 * WARD_PROXY_CONFIG_MAX bytes or WARD_PROXY_RULES_MAX entries is
 * WARD_ELIMIT. *out is emptied on failure; free it with
 * ward_proxy_allowlist_free.
 */
int ward_proxy_allowlist_parse(const char *text, size_t len, const char *name,
    struct ward_proxy_allowlist *out);
/*
 * Load path, or WARD_PROXY_CONFIG_PATH when path is NULL. When that
 * default file does not exist, the built-in allowlist is used (below); a
 * file named explicitly must exist (WARD_EIO otherwise).
 */
int ward_proxy_allowlist_load(
    const char *path, struct ward_proxy_allowlist *out);
/*
 * vsock-proxy's default allowlist: kms.<region>.amazonaws.com and
 * kms-fips.<region>.amazonaws.com, port 443, for the commercial regions
 * listed in docs/proxy.md.
 */
int ward_proxy_allowlist_builtin(struct ward_proxy_allowlist *out);
/* Append one entry (address as parse accepts it, port 1..65535). */
int ward_proxy_allowlist_add(
    struct ward_proxy_allowlist *a, const char *address, uint16_t port);
void ward_proxy_allowlist_free(struct ward_proxy_allowlist *a);

/* -4 / -6: which addresses names resolve to; ANY takes both. */
enum ward_proxy_family {
	WARD_PROXY_ANY = 0,
	WARD_PROXY_IPV4,
	WARD_PROXY_IPV6,
};

/* The addresses the proxy may connect to, port included. */
#define WARD_PROXY_TARGETS_MAX 16
struct ward_proxy_target {
	size_t n;
	struct sockaddr_storage addr[WARD_PROXY_TARGETS_MAX];
	socklen_t len[WARD_PROXY_TARGETS_MAX];
};

enum ward_proxy_match {
	WARD_PROXY_MATCH_NAME = 1, /* an entry's address is REMOTE_ADDR */
	WARD_PROXY_MATCH_IP, /* an entry resolves to a REMOTE_ADDR address */
};

/*
 * vsock-proxy's check_allowlist (nitro.md §6), for the destination
 * remote:port. Entries whose port differs are skipped. An entry whose
 * address is remote itself (compared without regard to case) admits it
 * by name; then *match is NAME and the proxy may go wherever remote
 * resolves, now or later. Otherwise remote and each entry are resolved
 * (getaddrinfo, filtered by family), and an entry admits remote when they
 * share an address; then *match is IP and *target holds exactly the
 * shared addresses, the only ones the proxy may connect to. An entry that
 * does not resolve is skipped. When nothing admits it: WARD_EUSAGE with
 * WARD_PROXY_NOT_ALLOWED and the reason. An IP literal of the family -4
 * or -6 excludes is WARD_EUSAGE before any entry is looked at. target may be NULL; on a name
 * match it is left empty (resolve with ward_proxy_resolve).
 */
int ward_proxy_allowlist_check(const struct ward_proxy_allowlist *a,
    const char *remote, uint16_t port, enum ward_proxy_family family,
    enum ward_proxy_match *match, struct ward_proxy_target *target);

/*
 * Resolve host (a name or an IP) to at most WARD_PROXY_TARGETS_MAX
 * addresses of family, each with port, duplicates dropped. A name that
 * does not resolve, or has no address of that family, is WARD_EIO.
 */
int ward_proxy_resolve(const char *host, uint16_t port,
    enum ward_proxy_family family, struct ward_proxy_target *out);

/*
 * The KMS route of `ward proxy -s kms`: when endpoint_url is set (a local
 * `ward kms serve`: "http://HOST:PORT" or "https://HOST[:PORT]", an
 * optional path of "/"-separated RFC 3986 unreserved characters without
 * "." or ".." segments; no user info, query, fragment or %-escapes; HOST
 * a name of letters, digits, '-', '.', '_', an IPv4 address or
 * "[IPv6[%zone]]"), its host and port (80 or 443 by default); else
 * AWS's regional endpoint kms.<region>.amazonaws.com:443. Neither is
 * WARD_EUSAGE. host holds at least WARD_PROXY_ADDRESS_MAX + 1 bytes.
 */
int ward_proxy_kms_route(const char *endpoint_url, const char *region,
    char *host, size_t host_cap, uint16_t *port);

/* ---- the server ------------------------------------------------------- */

#define WARD_PROXY_DEFAULT_PORT 8000u /* VSOCK_PROXY_PORT (nitro.md §6) */
#define WARD_PROXY_DEFAULT_WORKERS 4u
#define WARD_PROXY_WORKERS_MAX 256u
#define WARD_PROXY_DEFAULT_MAX_CONNECTIONS 1024u
#define WARD_PROXY_MAX_CONNECTIONS_MAX 65536u
#define WARD_PROXY_DEFAULT_IDLE_TIMEOUT 300u /* seconds */
/* once one direction has ended (half-close), seconds without a byte */
#define WARD_PROXY_DEFAULT_HALF_CLOSE_TIMEOUT 60u
#define WARD_PROXY_DEFAULT_CONNECT_TIMEOUT 10u /* seconds, all addresses */
#define WARD_PROXY_DEFAULT_GRACE 5u /* seconds */
#define WARD_PROXY_DEFAULT_DNS_REFRESH 60u /* seconds between lookups */

/* --splice: AUTO splices remote-to-enclave and copies enclave-to-remote,
 * what measured fastest (docs/proxy.md); the others are for comparison. */
enum ward_proxy_splice {
	WARD_PROXY_SPLICE_AUTO = 0,
	WARD_PROXY_SPLICE_ALWAYS,
	WARD_PROXY_SPLICE_NEVER,
};

struct ward_proxy_opts {
	uint32_t local_port; /* the vsock port to listen on */
	const char *remote_host; /* REMOTE_ADDR: a name or an IP */
	uint16_t remote_port;
	enum ward_proxy_family family;
	const struct ward_proxy_allowlist *allowlist; /* checked first */
	unsigned workers; /* 0: WARD_PROXY_DEFAULT_WORKERS */
	unsigned max_connections; /* 0: the default */
	unsigned idle_timeout_s; /* 0: the default */
	/* idle time allowed once one direction has ended; 0: the default,
	 * at most idle_timeout_s */
	unsigned half_close_timeout_s;
	/* for the whole connect, every address of the remote included;
	 * each address gets an equal share of what is left (at least 1 s) */
	unsigned connect_timeout_s; /* 0: the default */
	unsigned grace_s; /* after SIGTERM; 0: the default */
	unsigned dns_refresh_s; /* names are looked up again so often; 0: the
	                         * default */
	enum ward_proxy_splice splice; /* which directions splice(2) */
	bool quiet; /* no line per connection */
	/* Called once listening, with "vsock:CID:PORT" and "HOST:PORT". */
	void (*ready)(void *ctx, const char *listen, const char *remote);
	void *ready_ctx;
};

/*
 * Check the destination against the allowlist, listen on vsock
 * local_port (ward_vsock_listen: AF_VSOCK, or the sandbox's emulation),
 * and relay every connection to the remote by TCP until SIGTERM, SIGINT
 * or SIGHUP. Those signals are blocked in the calling thread (and so in
 * the workers) and read from a signalfd: the listener is closed (the
 * emulation's socket file removed), connections in flight get up to
 * grace_s seconds to finish, and the call returns 0; a second such
 * signal ends them at once. One line per connection goes to stderr when
 * it ends (time, id, peer, remote, bytes each way, duration, why it
 * ended), never any payload.
 *
 * The addresses connected to: for a name match, what REMOTE_ADDR
 * resolves to; for an IP match, only the addresses that REMOTE_ADDR and
 * an allowlist entry for the port both resolve to. Either is looked up
 * again every dns_refresh_s seconds on a thread of its own, so a
 * connection uses a lookup at most that old (a failed lookup keeps the
 * last one); an entry whose name has moved elsewhere stops admitting its
 * old address at the next lookup.
 */
int ward_proxy_serve(const struct ward_proxy_opts *o);

#endif
