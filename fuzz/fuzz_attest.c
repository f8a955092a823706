/* libFuzzer: the COSE_Sign1 / attestation document decoder, then the
 * verifier on whatever decodes (fixed time: the AWS fixture's). */
#include <stdint.h>
#include <stdlib.h>

#include "ward/attest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool
inside(struct ward_bytes b, const struct ward_attest_doc *d, size_t size)
{
	/* a view points into the document's copy or into joined chunks */
	if (b.len == 0)
		return true;
	if (b.p >= d->input && b.p + b.len <= d->input + size)
		return true;
	for (size_t i = 0; i < d->owned_len; i++) {
		const struct ward_cbor_str *o = &d->owned[i];

		if (b.p >= o->v.p && b.p + b.len <= o->v.p + o->v.len)
			return true;
	}
	return false;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ward_attest_roots *roots;
	struct ward_attest_doc *d;
	struct ward_attest_result res;

	if (roots == NULL && ward_attest_roots_new(true, &roots) != 0)
		__builtin_trap();
	if (ward_attest_parse(data, size, &d) != 0)
		return 0;
	if (d->signature.len != WARD_ES384_SIG_LEN || d->cabundle_len == 0 ||
	    d->cabundle_len > WARD_ATTEST_CABUNDLE_MAX || d->pcr_mask == 0 ||
	    !inside(d->payload, d, size) || !inside(d->certificate, d, size) ||
	    !inside(d->module_id, d, size))
		__builtin_trap();
	for (unsigned i = 0; i < WARD_NSM_PCR_COUNT; i++)
		if (((d->pcr_mask >> i) & 1) && !inside(d->pcrs[i], d, size))
			__builtin_trap();
	(void)ward_attest_verify(d, roots, 1663263864, &res);
	ward_attest_doc_free(d);
	ward_errclear();
	return 0;
}
