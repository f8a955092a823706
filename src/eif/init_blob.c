/*
 * The static ward-init binary (src/init/init.c), embedded so that ward
 * alone can build bootable images. WARD_INIT_PATH names the built binary;
 * CMake rebuilds this file whenever ward-init changes.
 */
#include <stddef.h>
#include <stdint.h>

#include "eif/internal.h"

#ifndef WARD_INIT_PATH
#error "WARD_INIT_PATH must name the built ward-init binary"
#endif

__asm__(".section .rodata\n"
        ".balign 16\n"
        ".global ward_init_blob_start\n"
        "ward_init_blob_start:\n"
        ".incbin \"" WARD_INIT_PATH "\"\n"
        ".global ward_init_blob_end\n"
        "ward_init_blob_end:\n"
        ".previous\n");

extern const uint8_t ward_init_blob_start[];
extern const uint8_t ward_init_blob_end[];

const uint8_t *
ward_init_blob(size_t *len)
{
	/* the two labels bound one object, the .incbin'd file */
	// cppcheck-suppress comparePointers
	*len = (size_t)(ward_init_blob_end - ward_init_blob_start);
	return ward_init_blob_start;
}
