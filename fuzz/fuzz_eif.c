/* libFuzzer: the EIF v4 reader over the input as a stream (handed out in
 * uneven chunks), the layout and in-memory readers over it (they must
 * accept what the reader accepts, the layout laying it out the same and
 * the in-memory reader measuring it the same), then the signature
 * section decoder on the raw input (fixed time and PCR0: it must never
 * crash, whatever it decides). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ward/eif.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t pcr0[WARD_PCR_LEN];
	struct ward_mem_reader m = {
	    .p = data, .len = size, .chunk = size > 0 ? 1 + data[0] % 97 : 0};
	struct ward_eif_image img, lay, mem;
	struct ward_buf pem = {0};
	bool ok = false;
	int laid = ward_eif_layout(data, size, "fuzz input", &lay);
	int rm = ward_eif_read_mem(data, size, "fuzz input", &mem);

	ward_errclear();
	if (ward_eif_read_stream(
	        ward_mem_read, &m, size, "fuzz input", &img, NULL) == 0) {
		if (laid != 0 || lay.num_sections != img.num_sections ||
		    memcmp(lay.sections, img.sections,
		        sizeof(lay.sections[0]) * lay.num_sections) != 0)
			__builtin_trap();
		/* the in-memory reader decides the same, to the byte */
		if (rm != 0 || mem.num_sections != img.num_sections ||
		    memcmp(mem.sections, img.sections,
		        sizeof(mem.sections[0]) * mem.num_sections) != 0 ||
		    mem.crc_computed != img.crc_computed ||
		    memcmp(mem.pcr0, img.pcr0, WARD_PCR_LEN) != 0 ||
		    memcmp(mem.pcr1, img.pcr1, WARD_PCR_LEN) != 0 ||
		    memcmp(mem.pcr2, img.pcr2, WARD_PCR_LEN) != 0 ||
		    mem.is_signed != img.is_signed ||
		    mem.signature_ok != img.signature_ok ||
		    mem.metadata.len != img.metadata.len ||
		    mem.cmdline.len != img.cmdline.len)
			__builtin_trap();
		ward_eif_image_free(&mem);
		/* what the reader promises of an image it accepts */
		if (img.version != WARD_EIF_VERSION || img.num_sections < 4 ||
		    img.num_sections > WARD_EIF_MAX_SECTIONS ||
		    img.file_size != size ||
		    img.sections[0].offset != WARD_EIF_HEADER_LEN ||
		    img.metadata.len > WARD_EIF_METADATA_MAX ||
		    img.cmdline.len > WARD_EIF_CMDLINE_MAX ||
		    img.signature.len > WARD_EIF_SIGNATURE_MAX ||
		    img.is_signed !=
		        (img.signature.len > 0 ||
		            img.sections[img.num_sections - 1].type ==
		                WARD_EIF_SEC_SIGNATURE) ||
		    (!img.is_signed && img.signature_ok))
			__builtin_trap();
		for (size_t i = 0; i + 1 < img.num_sections; i++)
			if (img.sections[i + 1].offset !=
			    img.sections[i].offset +
			        WARD_EIF_SECTION_HEADER_LEN +
			        img.sections[i].size)
				__builtin_trap();
		ward_eif_image_free(&img);
	} else if (rm == 0) {
		__builtin_trap(); /* accepted from memory, refused streamed */
	}
	ward_errclear();
	if (ward_eif_signature_check(data, size, pcr0, 1700000000, &pem, &ok) ==
	    0) {
		if (pem.len == 0)
			__builtin_trap();
	} else if (ok || pem.len != 0) {
		__builtin_trap();
	}
	ward_buf_free(&pem);
	ward_errclear();
	return 0;
}
