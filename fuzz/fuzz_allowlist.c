/* libFuzzer: vsock-proxy.yaml (ward_proxy_allowlist_parse) and KMS
 * endpoint URLs (ward_proxy_kms_route), with their invariants: a parsed
 * allowlist holds at most WARD_PROXY_RULES_MAX entries, each a non-empty
 * printable address of at most WARD_PROXY_ADDRESS_MAX bytes and a port
 * from 1 to 65535, and written back as YAML it parses to the same list; a
 * failed parse leaves the list empty; a route's host is non-empty and
 * comes from the URL. The check itself resolves names, so it is not
 * fuzzed here. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ward/proxy.h"
#include "ward/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define URL_INPUT_MAX 4096

static void
check_rules(const struct ward_proxy_allowlist *a)
{
	if (a->n > WARD_PROXY_RULES_MAX || (a->n > 0 && a->rules == NULL))
		__builtin_trap();
	for (size_t i = 0; i < a->n; i++) {
		const char *s = a->rules[i].address;
		size_t n = strnlen(s, sizeof(a->rules[i].address));

		if (n == 0 || n > WARD_PROXY_ADDRESS_MAX || s[0] == '-' ||
		    a->rules[i].port == 0)
			__builtin_trap();
		for (size_t k = 0; k < n; k++)
			if (s[k] <= ' ' || s[k] >= 127 || s[k] == '"' ||
			    s[k] == '\\')
				__builtin_trap();
	}
}

/* The list as flow YAML, parsed again: the same entries in order. */
static void
round_trip(const struct ward_proxy_allowlist *a)
{
	size_t cap = 32 + a->n * (WARD_PROXY_ADDRESS_MAX + 40), len;
	char *y = malloc(cap);
	struct ward_proxy_allowlist b;

	if (y == NULL)
		return;
	len = (size_t)snprintf(y, cap, "allowlist: [");
	for (size_t i = 0; i < a->n; i++)
		len += (size_t)snprintf(y + len, cap - len,
		    "%s{address: \"%s\", port: %u}", i > 0 ? ", " : "",
		    a->rules[i].address, (unsigned)a->rules[i].port);
	len += (size_t)snprintf(y + len, cap - len, "]\n");
	if (len > WARD_PROXY_CONFIG_MAX) {
		free(y);
		return;
	}
	if (ward_proxy_allowlist_parse(y, len, "again.yaml", &b) != 0 ||
	    b.n != a->n)
		__builtin_trap();
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->rules[i].address, b.rules[i].address) != 0 ||
		    a->rules[i].port != b.rules[i].port)
			__builtin_trap();
	ward_proxy_allowlist_free(&b);
	free(y);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ward_proxy_allowlist a;
	char host[WARD_PROXY_ADDRESS_MAX + 1];
	uint16_t port = 0;
	char *s;

	if (ward_proxy_allowlist_parse(
	        (const char *)data, size, "fuzz.yaml", &a) == 0) {
		check_rules(&a);
		if (strcmp(a.source, "fuzz.yaml") != 0)
			__builtin_trap();
		round_trip(&a);
		ward_proxy_allowlist_free(&a);
	} else if (a.n != 0 || a.rules != NULL) {
		__builtin_trap();
	}

	if (size > URL_INPUT_MAX || (s = malloc(size + 1)) == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (ward_proxy_kms_route(s, NULL, host, sizeof(host), &port) == 0) {
		if (host[0] == '\0' || port == 0 || strstr(s, host) == NULL)
			__builtin_trap();
	}
	free(s);
	ward_errclear();
	return 0;
}
