/* proxy: vsock-proxy's allowlist (nitro.md §6): the YAML file, the
 * built-in list, the check by name and by IP with -4/-6, resolution, and
 * the -s kms route. Names come from /etc/hosts (localhost) and IPs are
 * numeric, so nothing here needs a DNS server. The server itself is
 * driven through the real binary in tests/integration/proxy.sh. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "ward/proxy.h"

static void
assert_msg_has(const char *needle)
{
	if (strstr(ward_errmsg(), needle) == NULL)
		fail_msg("message \"%s\" lacks \"%s\"", ward_errmsg(), needle);
}

static int
parse_str(const char *yaml, struct ward_proxy_allowlist *a)
{
	return ward_proxy_allowlist_parse(yaml, strlen(yaml), "t.yaml", a);
}

static void
assert_rule(const struct ward_proxy_allowlist *a, size_t i, const char *address,
    uint16_t port)
{
	assert_true(i < a->n);
	assert_string_equal(a->rules[i].address, address);
	assert_int_equal(a->rules[i].port, port);
}

/* ------------------------------------------------------------------ */
/* Parsing                                                             */

/* nitro.md §6: vsock-proxy's own file, abridged. */
static void
test_parse_spec_form(void **state)
{
	static const char yaml[] =
	    "allowlist:\n"
	    "- {address: kms.us-east-2.amazonaws.com, port: 443}\n"
	    "- {address: kms-fips.us-east-2.amazonaws.com, port: 443}\n"
	    "- {address: kms.us-east-1.amazonaws.com, port: 443}\n"
	    "# ... kms and kms-fips endpoints for every region\n"
	    "- {address: kms-fips.cn-northwest-1.amazonaws.com, port: 443}\n";
	struct ward_proxy_allowlist a;

	(void)state;
	ASSERT_OK(parse_str(yaml, &a));
	assert_int_equal(a.n, 4);
	assert_rule(&a, 0, "kms.us-east-2.amazonaws.com", 443);
	assert_rule(&a, 1, "kms-fips.us-east-2.amazonaws.com", 443);
	assert_rule(&a, 2, "kms.us-east-1.amazonaws.com", 443);
	assert_rule(&a, 3, "kms-fips.cn-northwest-1.amazonaws.com", 443);
	assert_string_equal(a.source, "t.yaml");
	ward_proxy_allowlist_free(&a);
	assert_null(a.rules);
	assert_int_equal(a.n, 0);
}

static void
test_parse_forms(void **state)
{
	struct ward_proxy_allowlist a;

	(void)state;
	/* block style, a document marker, comments, an ignored key, IPs */
	ASSERT_OK(parse_str("%YAML 1.1\n---\n# the proxy's list\n"
	                    "other: {nested: [1, 2, {x: y}]}\n"
	                    "allowlist:\n"
	                    "  - address: 10.0.0.5\n"
	                    "    port: 8443\n"
	                    "  - port: 1\n"
	                    "    address: \"::1\"\n"
	                    "  - {address: 'fe80::1%eth0', port: 65535}\n"
	                    "trailing: ignored\n"
	                    "...\n",
	    &a));
	assert_int_equal(a.n, 3);
	assert_rule(&a, 0, "10.0.0.5", 8443);
	assert_rule(&a, 1, "::1", 1);
	assert_rule(&a, 2, "fe80::1%eth0", 65535);
	ward_proxy_allowlist_free(&a);

	/* an empty list allows nothing, but is a valid file */
	ASSERT_OK(parse_str("allowlist: []\n", &a));
	assert_int_equal(a.n, 0);
	ward_proxy_allowlist_free(&a);

	/* flow mapping at the top, anchors on values */
	ASSERT_OK(
	    parse_str("{allowlist: [{address: &h localhost, port: 80}]}", &a));
	assert_int_equal(a.n, 1);
	assert_rule(&a, 0, "localhost", 80);
	ward_proxy_allowlist_free(&a);
}

struct bad {
	const char *yaml;
	int code;
	const char *says;
};

static const struct bad bads[] = {
    {"", WARD_EFORMAT, "No allowlist field"},
    {"# nothing\n", WARD_EFORMAT, "No allowlist field"},
    {"services: []\n", WARD_EFORMAT, "No allowlist field"},
    {"- {address: a, port: 1}\n", WARD_EFORMAT, "No allowlist field"},
    {"just text\n", WARD_EFORMAT, "No allowlist field"},
    {"allowlist:\n", WARD_EFORMAT, "expected a list"},
    {"allowlist: kms.us-east-1.amazonaws.com\n", WARD_EFORMAT,
        "expected a list"},
    {"allowlist: {address: a, port: 1}\n", WARD_EFORMAT, "expected a list"},
    {"allowlist:\n- {address: a}\n", WARD_EFORMAT, "without port"},
    {"allowlist:\n- {port: 443}\n", WARD_EFORMAT, "without address"},
    {"allowlist:\n- {}\n", WARD_EFORMAT, "without address"},
    {"allowlist:\n- a.example\n", WARD_EFORMAT, "{address: HOST, port: N}"},
    {"allowlist:\n- [a, 1]\n", WARD_EFORMAT, "{address: HOST, port: N}"},
    {"allowlist:\n- {address: a, port: 0}\n", WARD_EFORMAT, "from 1 to 65535"},
    {"allowlist:\n- {address: a, port: 65536}\n", WARD_EFORMAT,
        "from 1 to 65535"},
    {"allowlist:\n- {address: a, port: -1}\n", WARD_EFORMAT, "from 1 to 65535"},
    {"allowlist:\n- {address: a, port: 0443}\n", WARD_EFORMAT,
        "from 1 to 65535"},
    {"allowlist:\n- {address: a, port: 44.3}\n", WARD_EFORMAT,
        "from 1 to 65535"},
    {"allowlist:\n- {address: a, port: 0x1bb}\n", WARD_EFORMAT,
        "from 1 to 65535"},
    {"allowlist:\n- {address: a, port: \"443\"}\n", WARD_EFORMAT, "unquoted"},
    {"allowlist:\n- {address: a, port: !!int 443}\n", WARD_EFORMAT,
        "from 1 to 65535"},
    {"allowlist:\n- {address: a, port: [443]}\n", WARD_EFORMAT,
        "expected a single value"},
    {"allowlist:\n- {address: '', port: 1}\n", WARD_EFORMAT,
        "expected a host name"},
    {"allowlist:\n- {address: 'a b', port: 1}\n", WARD_EFORMAT,
        "expected a host name"},
    {"allowlist:\n- {address: \"a\\nb\", port: 1}\n", WARD_EFORMAT,
        "expected a host name"},
    {"allowlist:\n- {address: \"a\\0b\", port: 1}\n", WARD_EFORMAT,
        "expected a host name"},
    {"allowlist:\n- {address: -rf, port: 1}\n", WARD_EFORMAT,
        "expected a host name"},
    {"allowlist:\n- {address: [a], port: 1}\n", WARD_EFORMAT,
        "expected a single value"},
    {"allowlist:\n- {address: a, port: 1, proto: tcp}\n", WARD_EFORMAT,
        "unknown key"},
    {"allowlist:\n- {address: a, address: b, port: 1}\n", WARD_EFORMAT,
        "given twice"},
    {"allowlist:\n- {address: a, port: 1, port: 2}\n", WARD_EFORMAT,
        "given twice"},
    {"allowlist: []\nallowlist: []\n", WARD_EFORMAT, "given twice"},
    {"allowlist:\n- &e {address: a, port: 1}\n- *e\n", WARD_EFORMAT,
        "an alias"},
    {"allowlist: []\n---\nallowlist: []\n", WARD_EFORMAT,
        "a second YAML document"},
    /* truncated */
    {"allowlist:\n- {address: a, port: 1", WARD_EFORMAT, "not valid YAML"},
    {"allowlist: [{address: a, port: 1}", WARD_EFORMAT, "not valid YAML"},
    {"allowlist:\n- {address: 'a", WARD_EFORMAT, "not valid YAML"},
    {"allowlist:\n\t- {address: a, port: 1}\n", WARD_EFORMAT, "not valid YAML"},
    {"allowlist: [\xc3\x28]", WARD_EFORMAT, "not valid YAML"},
};

static void
test_parse_bad(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		struct ward_proxy_allowlist a;
		int r = parse_str(bads[i].yaml, &a);

		if (r != -bads[i].code)
			fail_msg("case %zu (%s): %s (%s), expected %s", i,
			    bads[i].yaml, ward_errname(r),
			    r != 0 ? ward_errmsg() : "accepted",
			    ward_errname(bads[i].code));
		assert_msg_has(bads[i].says);
		assert_msg_has("t.yaml");
		/* emptied on failure */
		assert_null(a.rules);
		assert_int_equal(a.n, 0);
	}
}

/* An address of 253 characters is the most a DNS name holds. */
static void
test_parse_address_length(void **state)
{
	char yaml[600], name[260];
	struct ward_proxy_allowlist a;

	(void)state;
	memset(name, 'a', 253);
	name[253] = '\0';
	snprintf(
	    yaml, sizeof(yaml), "allowlist: [{address: %s, port: 1}]", name);
	ASSERT_OK(parse_str(yaml, &a));
	assert_string_equal(a.rules[0].address, name);
	ward_proxy_allowlist_free(&a);
	name[253] = 'a';
	name[254] = '\0';
	snprintf(
	    yaml, sizeof(yaml), "allowlist: [{address: %s, port: 1}]", name);
	ASSERT_ERR(parse_str(yaml, &a), WARD_EFORMAT);
	assert_msg_has("at most 253");
}

static void
test_parse_limits(void **state)
{
	size_t cap = WARD_PROXY_CONFIG_MAX + 64, len;
	char *big = malloc(cap);
	struct ward_proxy_allowlist a;

	(void)state;
	assert_non_null(big);
	/* a file just over the size limit, though valid YAML */
	len = (size_t)snprintf(big, cap, "allowlist: []\n");
	memset(big + len, '#', WARD_PROXY_CONFIG_MAX + 1 - len);
	ASSERT_ERR(ward_proxy_allowlist_parse(
	               big, WARD_PROXY_CONFIG_MAX + 1, "big.yaml", &a),
	    WARD_ELIMIT);
	assert_msg_has("big.yaml");
	/* ... and exactly at it */
	big[WARD_PROXY_CONFIG_MAX - 1] = '\n';
	ASSERT_OK(ward_proxy_allowlist_parse(
	    big, WARD_PROXY_CONFIG_MAX, "big.yaml", &a));
	ward_proxy_allowlist_free(&a);

	/* more entries than WARD_PROXY_RULES_MAX */
	len = (size_t)snprintf(big, cap, "allowlist:\n");
	for (int i = 0; i <= WARD_PROXY_RULES_MAX; i++)
		len += (size_t)snprintf(
		    big + len, cap - len, "- {address: h%d, port: 1}\n", i);
	assert_true(len < WARD_PROXY_CONFIG_MAX);
	ASSERT_ERR(parse_str(big, &a), WARD_ELIMIT);
	assert_msg_has("at most 4096");
	/* and the most it takes */
	*strrchr(big, '-') = '\0';
	ASSERT_OK(parse_str(big, &a));
	assert_int_equal(a.n, WARD_PROXY_RULES_MAX);
	assert_rule(&a, WARD_PROXY_RULES_MAX - 1, "h4095", 1);
	ward_proxy_allowlist_free(&a);

	/* deep nesting in an ignored key stops at 64 levels */
	len = (size_t)snprintf(big, cap, "x: ");
	for (int i = 0; i < 100; i++)
		big[len++] = '[';
	for (int i = 0; i < 100; i++)
		big[len++] = ']';
	snprintf(big + len, cap - len, "\nallowlist: []\n");
	ASSERT_ERR(parse_str(big, &a), WARD_EFORMAT);
	assert_msg_has("nested");
	free(big);
}

static void
test_builtin_and_load(void **state)
{
	struct ward_proxy_allowlist a;
	char *dir = tu_mkdtemp(), *path = NULL;
	bool kms = false, fips = false;

	(void)state;
	ASSERT_OK(ward_proxy_allowlist_builtin(&a));
	assert_int_equal(a.n, 32); /* 16 regions, kms and kms-fips */
	for (size_t i = 0; i < a.n; i++) {
		assert_int_equal(a.rules[i].port, 443);
		kms |= strcmp(a.rules[i].address,
		           "kms.us-east-1.amazonaws.com") == 0;
		fips |= strcmp(a.rules[i].address,
		            "kms-fips.sa-east-1.amazonaws.com") == 0;
	}
	assert_true(kms && fips);
	assert_non_null(strstr(a.source, "built-in"));
	ward_proxy_allowlist_free(&a);

	assert_true(asprintf(&path, "%s/vsock-proxy.yaml", dir) > 0);
	ASSERT_ERR(ward_proxy_allowlist_load(path, &a), WARD_EIO);
	assert_msg_has("vsock-proxy.yaml");
	assert_int_equal(
	    tu_write_file(path, "allowlist: [{address: h, port: 9}]", 34), 0);
	ASSERT_OK(ward_proxy_allowlist_load(path, &a));
	assert_int_equal(a.n, 1);
	assert_string_equal(a.source, path);
	ward_proxy_allowlist_free(&a);
	if (access(WARD_PROXY_CONFIG_PATH, F_OK) != 0) {
		ASSERT_OK(ward_proxy_allowlist_load(NULL, &a));
		assert_int_equal(a.n, 32);
		ward_proxy_allowlist_free(&a);
	} else {
		printf("SKIP: %s exists; the built-in fallback is not "
		       "tested\n",
		    WARD_PROXY_CONFIG_PATH);
	}
	free(path);
	tu_rmtree(dir);
	free(dir);
}

static void
test_add(void **state)
{
	struct ward_proxy_allowlist a;
	char name[32];

	(void)state;
	memset(&a, 0, sizeof(a));
	ASSERT_ERR(ward_proxy_allowlist_add(&a, "a b", 1), WARD_EUSAGE);
	ASSERT_ERR(ward_proxy_allowlist_add(&a, "", 1), WARD_EUSAGE);
	ASSERT_ERR(ward_proxy_allowlist_add(&a, "h", 0), WARD_EUSAGE);
	assert_int_equal(a.n, 0);
	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "host%d", i);
		ASSERT_OK(
		    ward_proxy_allowlist_add(&a, name, (uint16_t)(i + 1)));
	}
	assert_int_equal(a.n, 100);
	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "host%d", i);
		assert_rule(&a, (size_t)i, name, (uint16_t)(i + 1));
	}
	ward_proxy_allowlist_free(&a);
}

/* ------------------------------------------------------------------ */
/* The check                                                           */

static struct ward_proxy_allowlist
list_of(const char *yaml)
{
	struct ward_proxy_allowlist a;

	ASSERT_OK(parse_str(yaml, &a));
	return a;
}

static void
assert_target(const struct ward_proxy_target *t, const char *ip, uint16_t port)
{
	char got[INET6_ADDRSTRLEN];

	assert_int_equal(t->n, 1);
	if (t->addr[0].ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)&t->addr[0];

		inet_ntop(AF_INET, &in->sin_addr, got, sizeof(got));
		assert_int_equal(ntohs(in->sin_port), port);
		assert_int_equal(t->len[0], sizeof(struct sockaddr_in));
	} else {
		const struct sockaddr_in6 *in6 = (const void *)&t->addr[0];

		inet_ntop(AF_INET6, &in6->sin6_addr, got, sizeof(got));
		assert_int_equal(ntohs(in6->sin6_port), port);
	}
	assert_string_equal(got, ip);
}

static void
test_check_name(void **state)
{
	struct ward_proxy_allowlist a =
	    list_of("allowlist:\n- {address: localhost, port: 9000}\n"
	            "- {address: kms.us-east-1.amazonaws.com, port: 443}\n");
	enum ward_proxy_match m = 0;
	struct ward_proxy_target t;

	(void)state;
	ASSERT_OK(ward_proxy_allowlist_check(
	    &a, "localhost", 9000, WARD_PROXY_ANY, &m, &t));
	assert_int_equal(m, WARD_PROXY_MATCH_NAME);
	assert_int_equal(t.n, 0); /* a name match resolves later */
	/* DNS names are case-insensitive */
	ASSERT_OK(ward_proxy_allowlist_check(
	    &a, "LocalHost", 9000, WARD_PROXY_ANY, &m, NULL));
	assert_int_equal(m, WARD_PROXY_MATCH_NAME);
	/* a listed name is admitted without resolving it (offline here) */
	ASSERT_OK(ward_proxy_allowlist_check(
	    &a, "kms.us-east-1.amazonaws.com", 443, WARD_PROXY_IPV4, &m, NULL));
	assert_int_equal(m, WARD_PROXY_MATCH_NAME);
	ward_proxy_allowlist_free(&a);
}

static void
test_check_ip(void **state)
{
	struct ward_proxy_allowlist a =
	    list_of("allowlist:\n- {address: localhost, port: 9000}\n");
	struct ward_proxy_allowlist b =
	    list_of("allowlist:\n- {address: nosuch.invalid, port: 9000}\n"
	            "- {address: 127.0.0.1, port: 9000}\n");
	enum ward_proxy_match m = 0;
	struct ward_proxy_target t;

	(void)state;
	/* REMOTE_ADDR is an IP a listed name resolves to */
	ASSERT_OK(ward_proxy_allowlist_check(
	    &a, "127.0.0.1", 9000, WARD_PROXY_ANY, &m, &t));
	assert_int_equal(m, WARD_PROXY_MATCH_IP);
	assert_target(&t, "127.0.0.1", 9000);
	/* REMOTE_ADDR is a name resolving to a listed IP; the entry that
	 * does not resolve is skipped */
	ASSERT_OK(ward_proxy_allowlist_check(
	    &b, "localhost", 9000, WARD_PROXY_IPV4, &m, &t));
	assert_int_equal(m, WARD_PROXY_MATCH_IP);
	assert_target(&t, "127.0.0.1", 9000);
	ward_proxy_allowlist_free(&a);
	ward_proxy_allowlist_free(&b);
}

static void
test_check_refused(void **state)
{
	struct ward_proxy_allowlist a =
	    list_of("allowlist:\n- {address: localhost, port: 9000}\n");
	struct ward_proxy_allowlist ip =
	    list_of("allowlist:\n- {address: 127.0.0.2, port: 9000}\n");
	struct ward_proxy_allowlist empty = list_of("allowlist: []\n");
	enum ward_proxy_match m = 0;
	struct ward_proxy_target t;

	(void)state;
	/* the port must match, whatever the address */
	ASSERT_ERR(ward_proxy_allowlist_check(
	               &a, "localhost", 9001, WARD_PROXY_ANY, &m, &t),
	    WARD_EUSAGE);
	assert_msg_has(WARD_PROXY_NOT_ALLOWED);
	assert_msg_has("no entry for port 9001");
	/* a listed name that resolves elsewhere: localhost is 127.0.0.1 */
	ASSERT_ERR(ward_proxy_allowlist_check(
	               &a, "127.0.0.2", 9000, WARD_PROXY_ANY, &m, &t),
	    WARD_EUSAGE);
	assert_msg_has(WARD_PROXY_NOT_ALLOWED);
	/* an unlisted name that resolves elsewhere */
	ASSERT_ERR(ward_proxy_allowlist_check(
	               &ip, "localhost", 9000, WARD_PROXY_ANY, &m, &t),
	    WARD_EUSAGE);
	assert_msg_has(WARD_PROXY_NOT_ALLOWED);
	/* an unlisted IP */
	ASSERT_ERR(ward_proxy_allowlist_check(
	               &ip, "127.0.0.1", 9000, WARD_PROXY_ANY, &m, &t),
	    WARD_EUSAGE);
	/* an unlisted name that does not resolve */
	ASSERT_ERR(ward_proxy_allowlist_check(
	               &a, "nosuch.invalid", 9000, WARD_PROXY_ANY, &m, &t),
	    WARD_EUSAGE);
	assert_msg_has(WARD_PROXY_NOT_ALLOWED);
	assert_msg_has("does not resolve");
	/* nothing at all */
	ASSERT_ERR(ward_proxy_allowlist_check(
	               &empty, "localhost", 9000, WARD_PROXY_ANY, &m, &t),
	    WARD_EUSAGE);
	assert_int_equal(t.n, 0);
	ward_proxy_allowlist_free(&a);
	ward_proxy_allowlist_free(&ip);
	ward_proxy_allowlist_free(&empty);
}

static void
test_check_families(void **state)
{
	struct ward_proxy_allowlist v6 =
	    list_of("allowlist:\n- {address: '::1', port: 9000}\n");
	struct ward_proxy_allowlist v4 =
	    list_of("allowlist:\n- {address: 127.0.0.1, port: 9000}\n");
	struct ward_proxy_allowlist mapped =
	    list_of("allowlist:\n- {address: '::ffff:127.0.0.1', port: "
	            "9000}\n");
	enum ward_proxy_match m = 0;
	struct ward_proxy_target t;

	(void)state;
	/* the same IPv6 address written another way: by IP */
	ASSERT_OK(ward_proxy_allowlist_check(
	    &v6, "0:0:0:0:0:0:0:1", 9000, WARD_PROXY_IPV6, &m, &t));
	assert_int_equal(m, WARD_PROXY_MATCH_IP);
	assert_target(&t, "::1", 9000);
	ASSERT_OK(ward_proxy_allowlist_check(
	    &v6, "0:0:0:0:0:0:0:1", 9000, WARD_PROXY_ANY, &m, &t));
	/* -4 with an IPv6 literal, -6 with an IPv4 one: never */
	ASSERT_ERR(ward_proxy_allowlist_check(
	               &v6, "::1", 9000, WARD_PROXY_IPV4, &m, &t),
	    WARD_EUSAGE);
	assert_msg_has("-4");
	ASSERT_ERR(ward_proxy_allowlist_check(
	               &v4, "127.0.0.1", 9000, WARD_PROXY_IPV6, &m, &t),
	    WARD_EUSAGE);
	assert_msg_has("-6");
	/* a name resolved with -6 has no 127.0.0.1 to match */
	ASSERT_ERR(ward_proxy_allowlist_check(
	               &v4, "localhost", 9000, WARD_PROXY_IPV6, &m, &t),
	    WARD_EUSAGE);
	/* ... and with -4 it does */
	ASSERT_OK(ward_proxy_allowlist_check(
	    &v4, "localhost", 9000, WARD_PROXY_IPV4, &m, &t));
	assert_target(&t, "127.0.0.1", 9000);
	/* an IPv4-mapped IPv6 address is not the IPv4 address */
	ASSERT_ERR(ward_proxy_allowlist_check(
	               &mapped, "127.0.0.1", 9000, WARD_PROXY_ANY, &m, &t),
	    WARD_EUSAGE);
	ward_proxy_allowlist_free(&v6);
	ward_proxy_allowlist_free(&v4);
	ward_proxy_allowlist_free(&mapped);
}

static void
test_resolve(void **state)
{
	struct ward_proxy_target t;

	(void)state;
	ASSERT_OK(ward_proxy_resolve("127.0.0.1", 80, WARD_PROXY_ANY, &t));
	assert_target(&t, "127.0.0.1", 80);
	ASSERT_OK(ward_proxy_resolve("::1", 443, WARD_PROXY_IPV6, &t));
	assert_target(&t, "::1", 443);
	assert_int_equal(t.addr[0].ss_family, AF_INET6);
	ASSERT_OK(ward_proxy_resolve("localhost", 7, WARD_PROXY_IPV4, &t));
	assert_target(&t, "127.0.0.1", 7);
	ASSERT_ERR(
	    ward_proxy_resolve("127.0.0.1", 80, WARD_PROXY_IPV6, &t), WARD_EIO);
	assert_msg_has("IPv6");
	ASSERT_ERR(ward_proxy_resolve("nosuch.invalid", 80, WARD_PROXY_ANY, &t),
	    WARD_EIO);
	assert_int_equal(t.n, 0);
}

/* ------------------------------------------------------------------ */
/* -s kms                                                              */

static void
test_kms_route(void **state)
{
	static const struct {
		const char *url, *host;
		uint16_t port;
	} goods[] = {
	    {"http://127.0.0.1:4599", "127.0.0.1", 4599},
	    {"http://127.0.0.1:4599/", "127.0.0.1", 4599},
	    {"https://kms.internal", "kms.internal", 443},
	    {"http://localhost", "localhost", 80},
	    {"HTTP://Host:1/some/path", "Host", 1},
	    {"http://[::1]:8080/", "::1", 8080},
	    {"https://[fe80::1%eth0]", "fe80::1%eth0", 443},
	};
	static const char *const bad_urls[] = {
	    "ftp://h:1",
	    "h:1",
	    "http://",
	    "http://:80",
	    "http://h:",
	    "http://h:0",
	    "http://h:65536",
	    "http://h:12ab",
	    "http://h:080",
	    "http://h h:1",
	    "http://u@h:1",
	    "http://[::1",
	    "http://[::1]x",
	    "http://h?x",
	};
	char host[WARD_PROXY_ADDRESS_MAX + 1];
	uint16_t port = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(goods) / sizeof(goods[0]); i++) {
		ASSERT_OK(ward_proxy_kms_route(
		    goods[i].url, "us-east-1", host, sizeof(host), &port));
		assert_string_equal(host, goods[i].host);
		assert_int_equal(port, goods[i].port);
	}
	for (size_t i = 0; i < sizeof(bad_urls) / sizeof(bad_urls[0]); i++) {
		int r = ward_proxy_kms_route(
		    bad_urls[i], "us-east-1", host, sizeof(host), &port);

		if (r != -WARD_EUSAGE)
			fail_msg("%s: %s, expected EUSAGE", bad_urls[i],
			    ward_errname(r));
	}
	ASSERT_OK(
	    ward_proxy_kms_route(NULL, "eu-west-3", host, sizeof(host), &port));
	assert_string_equal(host, "kms.eu-west-3.amazonaws.com");
	assert_int_equal(port, 443);
	ASSERT_OK(ward_proxy_kms_route(
	    "", "us-gov-west-1", host, sizeof(host), &port));
	assert_string_equal(host, "kms.us-gov-west-1.amazonaws.com");
	ASSERT_ERR(ward_proxy_kms_route(NULL, NULL, host, sizeof(host), &port),
	    WARD_EUSAGE);
	assert_msg_has("AWS_REGION");
	ASSERT_ERR(ward_proxy_kms_route(NULL, "", host, sizeof(host), &port),
	    WARD_EUSAGE);
	ASSERT_ERR(
	    ward_proxy_kms_route(NULL, "US_EAST_1", host, sizeof(host), &port),
	    WARD_EUSAGE);
	ASSERT_ERR(ward_proxy_kms_route(NULL, "us-east-1.evil.example/x", host,
	               sizeof(host), &port),
	    WARD_EUSAGE);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_spec_form),
	    cmocka_unit_test(test_parse_forms),
	    cmocka_unit_test(test_parse_bad),
	    cmocka_unit_test(test_parse_address_length),
	    cmocka_unit_test(test_parse_limits),
	    cmocka_unit_test(test_builtin_and_load),
	    cmocka_unit_test(test_add),
	    cmocka_unit_test(test_check_name),
	    cmocka_unit_test(test_check_ip),
	    cmocka_unit_test(test_check_refused),
	    cmocka_unit_test(test_check_families),
	    cmocka_unit_test(test_resolve),
	    cmocka_unit_test(test_kms_route),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
