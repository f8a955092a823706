/*
 * vsock-proxy's allowlist (nitro.md §6): the YAML file, the built-in
 * default, the check that admits a destination by name or by address,
 * and name resolution with -4/-6.
 *
 *   allowlist:
 *   - {address: kms.us-east-1.amazonaws.com, port: 443}
 *   - {address: 10.0.0.5, port: 8443}
 *
 * vsock-proxy reads docs[0]["allowlist"] with yaml-rust and takes
 * address with as_str and port with as_i64, so ward accepts the same
 * shapes and is strict where yaml-rust would silently coerce: a port is a
 * plain decimal from 1 to 65535 (vsock-proxy casts any i64 to u16), and an
 * entry holds address and port and nothing else.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <yaml.h>

#include "proxy/internal.h"
#include "ward/proxy.h"
#include "util/yaml.h"
#include "ward/util.h"

#define KEY "allowlist"
#define DEPTH_MAX 64 /* nesting skipped in keys vsock-proxy ignores */
#define REGION_MAX 32
#define BUILTIN_SOURCE "built-in (no " WARD_PROXY_CONFIG_PATH ")"

/* vsock-proxy's default file lists every region; these are the
 * commercial regions docs/proxy.md names. */
static const char *const builtin_regions[] = {
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-central-1",
    "eu-north-1",
    "ap-south-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ca-central-1",
    "sa-east-1",
};

/* ---- entries ---------------------------------------------------------- */

/* A host name or an IP literal as text: printable ASCII a name or an
 * address can hold (IPv6 zone ids included), not starting with '-'. */
static bool
valid_address(const char *s, size_t n)
{
	if (n == 0 || n > WARD_PROXY_ADDRESS_MAX || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		        (c >= '0' && c <= '9') || c == '.' || c == '-' ||
		        c == '_' || c == ':' || c == '%'))
			return false;
	}
	return true;
}

/* Strict decimal 1..65535: digits only, no sign, no leading zero. */
static bool
parse_port(const char *s, size_t n, uint16_t *out)
{
	uint32_t v = 0;

	if (n == 0 || n > 5 || s[0] == '0')
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint32_t)(s[i] - '0');
	}
	if (v > 65535)
		return false;
	*out = (uint16_t)v;
	return true;
}

int
ward_proxy_allowlist_add(
    struct ward_proxy_allowlist *a, const char *address, uint16_t port)
{
	size_t n = strlen(address);
	struct ward_proxy_rule *grown;

	if (!valid_address(address, n))
		return ward_errf(WARD_EUSAGE,
		    "'%s' is not a host name or an IP address",
		    ward_quotes(address));
	if (port == 0)
		return ward_errf(WARD_EUSAGE, "port 0 cannot be allowed");
	if (a->n == WARD_PROXY_RULES_MAX)
		return ward_errf(WARD_ELIMIT,
		    "an allowlist holds at most %d entries",
		    WARD_PROXY_RULES_MAX);
	/* grow by doubling: a, 2a, ... from 8 */
	if ((a->n & (a->n - 1)) == 0 && (a->n == 0 || a->n >= 8)) {
		size_t cap = a->n == 0 ? 8 : a->n * 2;

		if ((grown = realloc(a->rules, cap * sizeof(*grown))) == NULL)
			return ward_enomem();
		a->rules = grown;
	}
	memcpy(a->rules[a->n].address, address, n + 1);
	a->rules[a->n].port = port;
	a->n++;
	return 0;
}

void
ward_proxy_allowlist_free(struct ward_proxy_allowlist *a)
{
	if (a == NULL)
		return;
	free(a->rules);
	memset(a, 0, sizeof(*a));
}

int
ward_proxy_allowlist_builtin(struct ward_proxy_allowlist *out)
{
	static const char *const prefixes[] = {"kms", "kms-fips"};
	char name[WARD_PROXY_ADDRESS_MAX + 1];
	int r = 0;

	memset(out, 0, sizeof(*out));
	for (size_t i = 0;
	     i < sizeof(builtin_regions) / sizeof(builtin_regions[0]); i++)
		for (size_t k = 0; k < 2 && r == 0; k++) {
			snprintf(name, sizeof(name), "%s.%s.amazonaws.com",
			    prefixes[k], builtin_regions[i]);
			r = ward_proxy_allowlist_add(out, name, 443);
		}
	if (r != 0) {
		ward_proxy_allowlist_free(out);
		return r;
	}
	snprintf(out->source, sizeof(out->source), "%s", BUILTIN_SOURCE);
	return 0;
}

/* ---- vsock-proxy.yaml ------------------------------------------------- */

struct parse {
	yaml_parser_t parser;
	yaml_event_t ev;
	const char *name;
	struct ward_proxy_allowlist *out;
};

static int
next(struct parse *ps)
{
	return ward_yaml_next(&ps->parser, &ps->ev, ps->name);
}

static size_t
line(const struct parse *ps)
{
	return ps->ev.start_mark.line + 1;
}

static bool
scalar_is(const yaml_event_t *ev, const char *s)
{
	return ev->type == YAML_SCALAR_EVENT &&
	    ev->data.scalar.length == strlen(s) &&
	    memcmp(ev->data.scalar.value, s, ev->data.scalar.length) == 0;
}

/* The node that starts at the current event, to its end. */
static int
skip_node(struct parse *ps)
{
	int depth = 0, r;

	for (;;) {
		switch (ps->ev.type) {
		case YAML_MAPPING_START_EVENT:
		case YAML_SEQUENCE_START_EVENT:
			if (++depth > DEPTH_MAX)
				return ward_errf(WARD_EFORMAT,
				    "%s:%zu: nested more than %d levels deep",
				    ps->name, line(ps), DEPTH_MAX);
			break;
		case YAML_MAPPING_END_EVENT:
		case YAML_SEQUENCE_END_EVENT:
			depth--;
			break;
		default:
			break;
		}
		if (depth == 0)
			return 0;
		if ((r = next(ps)) != 0)
			return r;
	}
}

/* One entry: {address: A, port: P}, from its mapping start to its end. */
static int
read_entry(struct parse *ps)
{
	char address[WARD_PROXY_ADDRESS_MAX + 1];
	size_t entry_line = line(ps), addr_line = 0, port_line = 0;
	uint16_t port = 0;
	int r;

	if (ps->ev.type != YAML_MAPPING_START_EVENT)
		return ward_errf(WARD_EFORMAT,
		    "%s:%zu: allowlist entry: expected {address: HOST, port: "
		    "N}, not %s",
		    ps->name, entry_line, ward_yaml_kind(&ps->ev));
	for (;;) {
		const char *v;
		size_t n, key_line;
		bool is_address;

		if ((r = next(ps)) != 0)
			return r;
		if (ps->ev.type == YAML_MAPPING_END_EVENT)
			break;
		key_line = line(ps);
		if (scalar_is(&ps->ev, "address"))
			is_address = true;
		else if (scalar_is(&ps->ev, "port"))
			is_address = false;
		else if (ps->ev.type == YAML_SCALAR_EVENT)
			return ward_errf(WARD_EFORMAT,
			    "%s:%zu: allowlist entry: unknown key \"%s\": "
			    "expected address and port",
			    ps->name, key_line,
			    ward_quote(ps->ev.data.scalar.value,
			        ps->ev.data.scalar.length));
		else
			return ward_errf(WARD_EFORMAT,
			    "%s:%zu: allowlist entry: expected a key (address "
			    "or port), not %s",
			    ps->name, key_line, ward_yaml_kind(&ps->ev));
		if ((is_address ? addr_line : port_line) != 0)
			return ward_errf(WARD_EFORMAT,
			    "%s:%zu: allowlist entry: %s is given twice",
			    ps->name, key_line,
			    is_address ? "address" : "port");
		if ((r = next(ps)) != 0)
			return r;
		if (ps->ev.type != YAML_SCALAR_EVENT)
			return ward_errf(WARD_EFORMAT,
			    "%s:%zu: %s: expected a single value, not %s",
			    ps->name, line(ps), is_address ? "address" : "port",
			    ward_yaml_kind(&ps->ev));
		v = (const char *)ps->ev.data.scalar.value;
		n = ps->ev.data.scalar.length;
		if (is_address) {
			if (ps->ev.data.scalar.tag != NULL ||
			    !valid_address(v, n))
				return ward_errf(WARD_EFORMAT,
				    "%s:%zu: address: expected a host name or "
				    "an IP address (ASCII letters, digits, "
				    "'.', '-', '_', ':', '%%', at most %d), "
				    "got \"%s\"",
				    ps->name, line(ps), WARD_PROXY_ADDRESS_MAX,
				    ward_quote(v, n));
			memcpy(address, v, n);
			address[n] = '\0';
			addr_line = key_line;
		} else {
			if (ps->ev.data.scalar.tag != NULL ||
			    ps->ev.data.scalar.style !=
			        YAML_PLAIN_SCALAR_STYLE ||
			    !parse_port(v, n, &port))
				return ward_errf(WARD_EFORMAT,
				    "%s:%zu: port: expected a whole number "
				    "from 1 to 65535 (unquoted), got \"%s\"",
				    ps->name, line(ps), ward_quote(v, n));
			port_line = key_line;
		}
	}
	if (addr_line == 0 || port_line == 0)
		return ward_errf(WARD_EFORMAT,
		    "%s:%zu: allowlist entry without %s: expected {address: "
		    "HOST, port: N}",
		    ps->name, entry_line, addr_line == 0 ? "address" : "port");
	if ((r = ward_proxy_allowlist_add(ps->out, address, port)) != 0)
		return ward_err_prefix(r, "%s:%zu", ps->name, entry_line);
	return 0;
}

/* The top-level mapping's entries, from its start to its end. */
static int
read_top(struct parse *ps)
{
	size_t seen = 0;
	int r;

	for (;;) {
		if ((r = next(ps)) != 0)
			return r;
		if (ps->ev.type == YAML_MAPPING_END_EVENT)
			break;
		if (!scalar_is(&ps->ev, KEY)) {
			/* another key, and its value: ignored */
			if ((r = skip_node(ps)) != 0 || (r = next(ps)) != 0 ||
			    (r = skip_node(ps)) != 0)
				return r;
			continue;
		}
		if (seen != 0)
			return ward_errf(WARD_EFORMAT,
			    "%s:%zu: " KEY " is given twice (first on line "
			    "%zu)",
			    ps->name, line(ps), seen);
		seen = line(ps);
		if ((r = next(ps)) != 0)
			return r;
		if (ps->ev.type != YAML_SEQUENCE_START_EVENT)
			return ward_errf(WARD_EFORMAT,
			    "%s:%zu: " KEY ": expected a list of {address, "
			    "port}, not %s",
			    ps->name, line(ps), ward_yaml_kind(&ps->ev));
		for (;;) {
			if ((r = next(ps)) != 0)
				return r;
			if (ps->ev.type == YAML_SEQUENCE_END_EVENT)
				break;
			if ((r = read_entry(ps)) != 0)
				return r;
		}
	}
	if (seen == 0)
		return ward_errf(WARD_EFORMAT,
		    "%s: No allowlist field: expected \"" KEY ":\" and a list "
		    "of {address: HOST, port: N}",
		    ps->name);
	return 0;
}

/* The stream: one document holding one mapping. */
static int
read_stream(struct parse *ps)
{
	int r;

	if ((r = next(ps)) != 0) /* stream start */
		return r;
	if ((r = next(ps)) != 0)
		return r;
	if (ps->ev.type == YAML_STREAM_END_EVENT)
		return ward_errf(
		    WARD_EFORMAT, "%s: empty: No allowlist field", ps->name);
	if ((r = next(ps)) != 0) /* after the document start */
		return r;
	if (ps->ev.type != YAML_MAPPING_START_EVENT)
		return ward_errf(WARD_EFORMAT,
		    "%s:%zu: No allowlist field: expected a mapping with "
		    "\"" KEY ":\", not %s",
		    ps->name, line(ps), ward_yaml_kind(&ps->ev));
	if ((r = read_top(ps)) != 0 || (r = next(ps)) != 0 || /* doc end */
	    (r = next(ps)) != 0)
		return r;
	if (ps->ev.type != YAML_STREAM_END_EVENT)
		return ward_errf(WARD_EFORMAT,
		    "%s:%zu: a second YAML document: expected one", ps->name,
		    line(ps));
	return 0;
}

int
ward_proxy_allowlist_parse(const char *text, size_t len, const char *name,
    struct ward_proxy_allowlist *out)
{
	struct parse ps;
	bool ready = false;
	int r;

	memset(out, 0, sizeof(*out));
	memset(&ps, 0, sizeof(ps));
	ps.name = name != NULL ? name : "vsock-proxy.yaml";
	ps.out = out;
	if (len > WARD_PROXY_CONFIG_MAX)
		return ward_errf(WARD_ELIMIT, "%s: larger than %d bytes",
		    ps.name, WARD_PROXY_CONFIG_MAX);
	if (!yaml_parser_initialize(&ps.parser))
		return ward_enomem();
	ready = true;
	yaml_parser_set_input_string(
	    &ps.parser, (const unsigned char *)text, len);
	if ((r = read_stream(&ps)) != 0)
		goto out;
	snprintf(out->source, sizeof(out->source), "%s", ps.name);
out:
	yaml_event_delete(&ps.ev);
	if (ready)
		yaml_parser_delete(&ps.parser);
	if (r != 0)
		ward_proxy_allowlist_free(out);
	return r;
}

int
ward_proxy_allowlist_load(const char *path, struct ward_proxy_allowlist *out)
{
	struct ward_fd_stream s = {.fd = -1};
	char *text = NULL;
	size_t len = 0;
	int r;

	memset(out, 0, sizeof(*out));
	s.name = path != NULL ? path : WARD_PROXY_CONFIG_PATH;
	if ((s.fd = open(s.name, O_RDONLY | O_CLOEXEC)) < 0) {
		/* only the default file may be absent: a file the user named
		 * and that is missing is most likely a typo */
		if (errno == ENOENT && path == NULL)
			return ward_proxy_allowlist_builtin(out);
		return ward_errf(
		    WARD_EIO, "%s: %s", ward_quotes(s.name), strerror(errno));
	}
	/* one byte more than allowed, to tell "exactly the limit" apart */
	if ((text = malloc(WARD_PROXY_CONFIG_MAX + 1)) == NULL) {
		r = ward_enomem();
		goto out;
	}
	for (;;) {
		size_t got;

		if ((r = ward_fd_read(&s, (uint8_t *)text + len,
		         WARD_PROXY_CONFIG_MAX + 1 - len, &got)) != 0)
			goto out;
		if (got == 0)
			break;
		len += got;
		if (len > WARD_PROXY_CONFIG_MAX) {
			r = ward_errf(WARD_ELIMIT, "%s: larger than %d bytes",
			    ward_quotes(s.name), WARD_PROXY_CONFIG_MAX);
			goto out;
		}
	}
	r = ward_proxy_allowlist_parse(text, len, s.name, out);
out:
	free(text);
	close(s.fd);
	return r;
}

/* ---- resolution and the check ----------------------------------------- */

static int
family_of(enum ward_proxy_family f)
{
	return f == WARD_PROXY_IPV4 ? AF_INET
	    : f == WARD_PROXY_IPV6  ? AF_INET6
	                            : AF_UNSPEC;
}

static const char *
family_name(enum ward_proxy_family f)
{
	return f == WARD_PROXY_IPV4 ? " IPv4"
	    : f == WARD_PROXY_IPV6  ? " IPv6"
	                            : "";
}

/* The same IP (the port is not compared). */
static bool
same_ip(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET)
		return memcmp(&((const struct sockaddr_in *)a)->sin_addr,
		           &((const struct sockaddr_in *)b)->sin_addr,
		           sizeof(struct in_addr)) == 0;
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a,
		                          *y = (const void *)b;

		return memcmp(&x->sin6_addr, &y->sin6_addr,
		           sizeof(struct in6_addr)) == 0 &&
		    x->sin6_scope_id == y->sin6_scope_id;
	}
	return false;
}

static bool
target_has(const struct ward_proxy_target *t, const struct sockaddr_storage *a)
{
	for (size_t i = 0; i < t->n; i++)
		if (same_ip(&t->addr[i], a))
			return true;
	return false;
}

static void
target_add(struct ward_proxy_target *t, const struct sockaddr_storage *a,
    socklen_t len)
{
	if (t->n == WARD_PROXY_TARGETS_MAX || target_has(t, a))
		return;
	t->addr[t->n] = *a;
	t->len[t->n] = len;
	t->n++;
}

int
ward_proxy_resolve(const char *host, uint16_t port,
    enum ward_proxy_family family, struct ward_proxy_target *out)
{
	struct addrinfo hints, *res = NULL;
	int gai;

	memset(out, 0, sizeof(*out));
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = family_of(family);
	hints.ai_socktype = SOCK_STREAM;
	if ((gai = getaddrinfo(host, NULL, &hints, &res)) != 0)
		return ward_errf(WARD_EIO,
		    "%s does not resolve to an%s "
		    "address: %s",
		    ward_quotes(host), family_name(family),
		    gai == EAI_SYSTEM ? strerror(errno) : gai_strerror(gai));
	for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
		struct sockaddr_storage ss;

		if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
		    ai->ai_addrlen > sizeof(ss))
			continue;
		memset(&ss, 0, sizeof(ss));
		memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
		if (ss.ss_family == AF_INET)
			((struct sockaddr_in *)&ss)->sin_port = htons(port);
		else
			((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
		target_add(out, &ss, ai->ai_addrlen);
	}
	freeaddrinfo(res);
	if (out->n == 0)
		return ward_errf(WARD_EIO, "%s has no%s address",
		    ward_quotes(host), family_name(family));
	return 0;
}

/* An IP literal of the other family can never be reached with -4/-6,
 * whatever the allowlist says (vsock-proxy fails to resolve it). */
static int
literal_family(const char *remote, enum ward_proxy_family family)
{
	struct in6_addr a6;
	struct in_addr a4;

	if (family == WARD_PROXY_IPV6 && inet_pton(AF_INET, remote, &a4) == 1)
		return ward_errf(WARD_EUSAGE,
		    "%s is an IPv4 address, and -6 (--ipv6) allows IPv6 only",
		    ward_quotes(remote));
	if (family == WARD_PROXY_IPV4 && inet_pton(AF_INET6, remote, &a6) == 1)
		return ward_errf(WARD_EUSAGE,
		    "%s is an IPv6 address, and -4 (--ipv4) allows IPv4 only",
		    ward_quotes(remote));
	return 0;
}

int
ward_proxy_allowlist_check(const struct ward_proxy_allowlist *a,
    const char *remote, uint16_t port, enum ward_proxy_family family,
    enum ward_proxy_match *match, struct ward_proxy_target *target)
{
	struct ward_proxy_target want, shared, entry;
	size_t same_port = 0;
	int r;

	memset(&shared, 0, sizeof(shared));
	if (target != NULL)
		memset(target, 0, sizeof(*target));
	if ((r = literal_family(remote, family)) != 0)
		return r;
	for (size_t i = 0; i < a->n; i++) {
		if (a->rules[i].port != port)
			continue;
		same_port++;
		/* DNS names are case-insensitive, and so is an IPv6
		 * literal's hex */
		if (strcasecmp(a->rules[i].address, remote) == 0) {
			*match = WARD_PROXY_MATCH_NAME;
			ward_debug("proxy: %s:%u is allowed by name (%s)",
			    ward_quotes(remote), (unsigned)port, a->source);
			return 0;
		}
	}
	if (same_port == 0)
		return ward_errf(WARD_EUSAGE,
		    WARD_PROXY_NOT_ALLOWED
		    ": %s:%u: %s has no entry for port %u",
		    ward_quotes(remote), (unsigned)port, a->source,
		    (unsigned)port);
	if (ward_proxy_resolve(remote, port, family, &want) != 0) {
		char why[256];

		/* ward_errf writes the buffer ward_errmsg reads */
		snprintf(why, sizeof(why), "%s", ward_errmsg());
		return ward_errf(WARD_EUSAGE,
		    WARD_PROXY_NOT_ALLOWED
		    ": %s:%u is not in %s by name, and %s",
		    ward_quotes(remote), (unsigned)port, a->source, why);
	}
	for (size_t i = 0; i < a->n; i++) {
		if (a->rules[i].port != port ||
		    ward_proxy_resolve(
		        a->rules[i].address, port, family, &entry) != 0)
			continue;
		for (size_t k = 0; k < want.n; k++)
			if (target_has(&entry, &want.addr[k]))
				target_add(&shared, &want.addr[k], want.len[k]);
	}
	ward_errclear();
	if (shared.n == 0)
		return ward_errf(WARD_EUSAGE,
		    WARD_PROXY_NOT_ALLOWED
		    ": %s:%u: no entry of %s for port %u names it or resolves "
		    "to its%s address",
		    ward_quotes(remote), (unsigned)port, a->source,
		    (unsigned)port, family_name(family));
	*match = WARD_PROXY_MATCH_IP;
	if (target != NULL)
		*target = shared;
	return 0;
}

int
proxy_shared_targets(const struct ward_proxy_allowlist *a, const char *remote,
    uint16_t port, enum ward_proxy_family family, struct ward_proxy_target *out)
{
	struct ward_proxy_target want, entry;
	size_t resolved = 0, listed = 0;
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = ward_proxy_resolve(remote, port, family, &want)) != 0)
		return r;
	for (size_t i = 0; i < a->n; i++) {
		if (a->rules[i].port != port)
			continue;
		listed++;
		if (ward_proxy_resolve(
		        a->rules[i].address, port, family, &entry) != 0)
			continue;
		resolved++;
		for (size_t k = 0; k < want.n; k++)
			if (target_has(&entry, &want.addr[k]))
				target_add(out, &want.addr[k], want.len[k]);
	}
	if (listed > 0 && resolved == 0) {
		char why[256];

		/* ward_errf writes the buffer ward_errmsg reads */
		snprintf(why, sizeof(why), "%s", ward_errmsg());
		return ward_errf(WARD_EIO,
		    "no entry of %s for port %u resolves now (the last: %s)",
		    a->source, (unsigned)port, why);
	}
	ward_errclear();
	return 0;
}

/* ---- ward proxy -s kms ------------------------------------------------ */

/* A host name or IPv4 literal in a URL: letters, digits, '-', '.', '_'. */
static bool
host_name(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		        (s[i] >= 'A' && s[i] <= 'Z') ||
		        (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
		        s[i] == '.' || s[i] == '_'))
			return false;
	return n > 0;
}

/* What "[...]" holds: an IPv6 address, then an optional "%zone" of
 * letters and digits. */
static bool
ipv6_literal(const char *s, size_t n)
{
	char text[INET6_ADDRSTRLEN];
	struct in6_addr a;
	size_t an = strcspn(s, "%]");

	if (an > n || an == 0 || an >= sizeof(text))
		return false;
	memcpy(text, s, an);
	text[an] = '\0';
	if (inet_pton(AF_INET6, text, &a) != 1)
		return false;
	if (an == n)
		return true;
	if (an + 1 == n)
		return false; /* "%" and no zone */
	for (size_t i = an + 1; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		        (s[i] >= 'A' && s[i] <= 'Z') ||
		        (s[i] >= '0' && s[i] <= '9')))
			return false;
	return true;
}

/* A path of "/"-separated segments of RFC 3986's unreserved characters,
 * without "." or ".." segments: the proxy routes by host and port only,
 * and a path that some parser might read differently is refused. */
static bool
plain_path(const char *p)
{
	if (*p != '/')
		return false;
	while (*p == '/') {
		size_t n = strspn(p + 1,
		    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		    "0123456789-._~");

		if ((n == 1 && p[1] == '.') ||
		    (n == 2 && p[1] == '.' && p[2] == '.'))
			return false;
		p += 1 + n;
	}
	return *p == '\0';
}

int
ward_proxy_kms_route(const char *endpoint_url, const char *region, char *host,
    size_t host_cap, uint16_t *port)
{
	const char *p, *h, *end;
	size_t hn;
	uint16_t def;

	if (endpoint_url != NULL && endpoint_url[0] != '\0') {
		if (strncasecmp(endpoint_url, "http://", 7) == 0) {
			p = endpoint_url + 7;
			def = 80;
		} else if (strncasecmp(endpoint_url, "https://", 8) == 0) {
			p = endpoint_url + 8;
			def = 443;
		} else {
			return ward_errf(WARD_EUSAGE,
			    "KMS endpoint '%s': expected http://HOST:PORT or "
			    "https://HOST[:PORT]",
			    ward_quotes(endpoint_url));
		}
		/* host: [IPv6] or up to ':' or '/'; no user info, query,
		 * fragment or escapes anywhere, so that no parser could read
		 * another host out of the same text */
		if (*p == '[') {
			h = p + 1;
			if ((end = strchr(h, ']')) == NULL)
				goto bad;
			hn = (size_t)(end - h);
			if (!ipv6_literal(h, hn))
				goto bad;
			p = end + 1;
		} else {
			h = p;
			hn = strcspn(p, ":/");
			if (!host_name(h, hn))
				goto bad;
			p += hn;
		}
		if (!valid_address(h, hn) || hn >= host_cap)
			goto bad;
		*port = def;
		if (*p == ':') {
			size_t pn = strcspn(p + 1, "/");

			if (!parse_port(p + 1, pn, port))
				goto bad;
			p += 1 + pn;
		}
		if (*p != '\0' && !plain_path(p))
			goto bad;
		memcpy(host, h, hn);
		host[hn] = '\0';
		return 0;
	}
	if (region == NULL || region[0] == '\0')
		return ward_errf(WARD_EUSAGE,
		    "the KMS route needs a region: set AWS_REGION (or "
		    "AWS_DEFAULT_REGION), or AWS_ENDPOINT_URL_KMS for a local "
		    "ward kms serve");
	if (strlen(region) > REGION_MAX ||
	    strspn(region, "abcdefghijklmnopqrstuvwxyz0123456789-") !=
	        strlen(region))
		return ward_errf(WARD_EUSAGE,
		    "region '%s' is not an AWS region name (such as "
		    "us-east-1)",
		    ward_quotes(region));
	if ((size_t)snprintf(host, host_cap, "kms.%s.amazonaws.com", region) >=
	    host_cap)
		return ward_errf(WARD_ELIMIT, "the KMS host name is too long");
	*port = 443;
	return 0;
bad:
	return ward_errf(WARD_EUSAGE,
	    "KMS endpoint '%s': expected http://HOST:PORT or "
	    "https://HOST[:PORT] (a port from 1 to 65535)",
	    ward_quotes(endpoint_url));
}
