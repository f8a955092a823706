/*
 * Between the allowlist (allowlist.c) and the server (proxy.c); not part
 * of libward's API.
 */
#ifndef WARD_PROXY_INTERNAL_H
#define WARD_PROXY_INTERNAL_H

#include "ward/proxy.h"

/*
 * The addresses an IP match may use now: those remote resolves to that
 * an entry of a for port also resolves to (the check's rule, applied
 * again each time the names are resolved, so that an entry's name that
 * has moved elsewhere stops admitting its old address). 0 with out->n
 * possibly 0 (the names resolve, to no common address); WARD_EIO when
 * remote, or every entry for port, fails to resolve (a resolver outage,
 * which the caller may choose to ride out).
 */
int proxy_shared_targets(const struct ward_proxy_allowlist *a,
    const char *remote, uint16_t port, enum ward_proxy_family family,
    struct ward_proxy_target *out);

#endif
