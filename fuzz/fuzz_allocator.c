/* libFuzzer: allocator.yaml (ward_allocator_parse) and CPU lists
 * (ward_cpu_list_parse), with their invariants: a parsed allocator holds
 * a positive memory size within bounds and a non-empty CPU set this
 * process may run on; a parsed CPU list formats and reparses to the same
 * set; formatting into any buffer stays inside it and NUL-terminates. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ward/enclave.h"
#include "ward/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* CPU lists longer than this are not interesting, only slow. */
#define LIST_INPUT_MAX 8192

static void
check_format(const cpu_set_t *set, size_t cap_seed)
{
	char full[WARD_CPU_LIST_MAX];
	size_t cap = cap_seed % 40;
	char *small;
	cpu_set_t back;

	ward_cpu_list_format(set, full, sizeof(full));
	if (memchr(full, '\0', sizeof(full)) == NULL)
		__builtin_trap();
	if (CPU_COUNT(set) > 0) {
		if (ward_cpu_list_parse(full, &back) != 0 ||
		    !CPU_EQUAL(&back, set))
			__builtin_trap();
	} else if (full[0] != '\0') {
		__builtin_trap();
	}
	/* an exactly sized heap buffer: ASan sees any write past cap */
	if ((small = malloc(cap != 0 ? cap : 1)) == NULL)
		return;
	ward_cpu_list_format(set, small, cap);
	if (cap > 0) {
		size_t n = strnlen(small, cap);

		if (n == cap)
			__builtin_trap();
		/* a cut list is a prefix of the whole one, ending in "..." */
		if (strcmp(small, full) != 0) {
			size_t keep = n >= 3 ? n - 3 : 0;

			if (n >= 3 && memcmp(small + keep, "...", 3) != 0)
				__builtin_trap();
			/* cut after a whole item, never inside one */
			if (keep > 0 && small[keep - 1] != ',')
				__builtin_trap();
			if (memcmp(small, full, keep) != 0)
				__builtin_trap();
		}
	}
	free(small);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ward_allocator a;
	cpu_set_t set, allowed;
	char *s;

	if (ward_allocator_parse((const char *)data, size, "fuzz.yaml", &a) ==
	    0) {
		CPU_ZERO(&allowed);
		if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0)
			__builtin_trap();
		CPU_AND(&set, &a.cpus, &allowed);
		if (a.memory_mib == 0 || a.memory_mib > ((uint64_t)1 << 40) ||
		    a.cpu_count == 0 ||
		    a.cpu_count != (unsigned)CPU_COUNT(&a.cpus) ||
		    !CPU_EQUAL(&set, &a.cpus) ||
		    strcmp(a.source, "fuzz.yaml") != 0)
			__builtin_trap();
		check_format(&a.cpus, size);
	}

	if (size > LIST_INPUT_MAX)
		return 0;
	if ((s = malloc(size + 1)) == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (ward_cpu_list_parse(s, &set) == 0) {
		if (CPU_COUNT(&set) == 0)
			__builtin_trap();
		check_format(&set, size);
	} else if (CPU_COUNT(&set) != 0) {
		__builtin_trap();
	}
	free(s);
	ward_errclear();
	return 0;
}
