/* Algorithm suites of the AWS Encryption SDK (spec §5.3). */
#include <string.h>

#include "ward/envelope.h"

static const struct ward_suite suites[] = {
    {0x0578, "AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384", 2, 32, "SHA512",
        true, WARD_CURVE_P384},
    {0x0478, "AES_256_GCM_HKDF_SHA512_COMMIT_KEY", 2, 32, "SHA512", true, 0},
    {0x0378, "AES_256_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384", 1, 32, "SHA384",
        false, WARD_CURVE_P384},
    {0x0346, "AES_192_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384", 1, 24, "SHA384",
        false, WARD_CURVE_P384},
    {0x0214, "AES_128_GCM_IV12_TAG16_HKDF_SHA256_ECDSA_P256", 1, 16, "SHA256",
        false, WARD_CURVE_P256},
    {0x0178, "AES_256_GCM_IV12_TAG16_HKDF_SHA256", 1, 32, "SHA256", false, 0},
    {0x0146, "AES_192_GCM_IV12_TAG16_HKDF_SHA256", 1, 24, "SHA256", false, 0},
    {0x0114, "AES_128_GCM_IV12_TAG16_HKDF_SHA256", 1, 16, "SHA256", false, 0},
    {0x0078, "AES_256_GCM_IV12_TAG16_NO_KDF", 1, 32, NULL, false, 0},
    {0x0046, "AES_192_GCM_IV12_TAG16_NO_KDF", 1, 24, NULL, false, 0},
    {0x0014, "AES_128_GCM_IV12_TAG16_NO_KDF", 1, 16, NULL, false, 0},
};

const struct ward_suite *
ward_suite_lookup(uint16_t id)
{
	for (size_t i = 0; i < sizeof(suites) / sizeof(suites[0]); i++)
		if (suites[i].id == id)
			return &suites[i];
	return NULL;
}

int
ward_suite_parse(const char *s, uint16_t *out)
{
	uint8_t b[2];
	size_t n;
	const char *hex = s;

	if (strncmp(hex, "0x", 2) == 0 || strncmp(hex, "0X", 2) == 0)
		hex += 2;
	if (strlen(hex) != 4 || ward_hex_decode(hex, 4, b, sizeof(b), &n) != 0)
		return ward_errf(WARD_EUSAGE,
		    "'%s' is not a suite id (four hex digits, such as 0478)",
		    s);
	*out = ward_load16(b);
	if (ward_suite_lookup(*out) == NULL)
		return ward_errf(
		    WARD_EUNSUPPORTED, "unknown algorithm suite 0x%04x", *out);
	return 0;
}
