/* Keys shared by the fuzz targets and scripts/run-fuzzers' seed corpus. */
#ifndef WARD_FUZZ_COMMON_H
#define WARD_FUZZ_COMMON_H

#include <string.h>

#include "ward/envelope.h"

/* The seed corpus is made with a key file of 32 bytes of 0x42 under the
 * default namespace and name, and with the ESDK vectors' raw AES keys. */
static struct ward_keyring *
fuzz_keyring(void)
{
	static const uint8_t aes128[16] = {0x00, 0x01, 0x02, 0x03, 0x04, 0x05,
	    0x06, 0x07, 0x08, 0x09, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15};
	static const uint8_t aes256[32] = {0x00, 0x01, 0x02, 0x03, 0x04, 0x05,
	    0x06, 0x07, 0x08, 0x09, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16,
	    0x17, 0x18, 0x19, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27,
	    0x28, 0x29, 0x30, 0x31};
	uint8_t ward_key[32];
	struct ward_keyring *v[3], *multi;

	memset(ward_key, 0x42, sizeof(ward_key));
	if (ward_keyring_raw_aes_new(&v[0], "ward", "raw-aes", ward_key, 32) ||
	    ward_keyring_raw_aes_new(&v[1],
	        "aws-raw-vectors-persistent-aes-128", "aes-128", aes128, 16) ||
	    ward_keyring_raw_aes_new(&v[2],
	        "aws-raw-vectors-persistent-aes-256", "aes-256", aes256, 32) ||
	    ward_keyring_multi_new(&multi, v, 3))
		__builtin_trap();
	return multi;
}

#endif
