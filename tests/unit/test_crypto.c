/* crypto: the random generator; SHA-256, HMAC (RFC 4231) and HKDF
 * (RFC 5869) known answers; AES-GCM (NIST/McGrew-Viega test case 14...
 * via round trip and tamper), ECDSA, RSA. */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

#include "testutil.h"
#include "ward/crypto.h"

static void
unhex(const char *s, uint8_t *out, size_t *n)
{
	if (ward_hex_decode(s, strlen(s), out, 512, n) != 0)
		fail_msg("bad hex in test");
}

static void
test_hkdf_rfc5869(void **state)
{
	/* RFC 5869 A.1 (SHA-256) */
	uint8_t ikm[64], salt[64], info[64], okm[64], want[64];
	size_t ni, ns, nf, nw;

	unhex("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", ikm, &ni);
	unhex("000102030405060708090a0b0c", salt, &ns);
	unhex("f0f1f2f3f4f5f6f7f8f9", info, &nf);
	unhex(
	    "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
	    want, &nw);
	ASSERT_OK(ward_hkdf("SHA256", salt, ns, ikm, ni, info, nf, okm, nw));
	assert_memory_equal(okm, want, nw);
	/* A.3: no salt, no info */
	unhex(
	    "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
	    want, &nw);
	ASSERT_OK(ward_hkdf("SHA256", NULL, 0, ikm, ni, NULL, 0, okm, nw));
	assert_memory_equal(okm, want, nw);
}

static void
test_gcm_kat_and_tamper(void **state)
{
	/* McGrew & Viega test case 14: AES-256, zero key, zero IV, 16 zero
	 * bytes. */
	uint8_t key[32] = {0}, iv[12] = {0}, pt[16] = {0}, ct[16], tag[16],
	        back[16], want[64];
	struct ward_gcm g;
	size_t n;

	ASSERT_OK(ward_gcm_init(&g, key, 32));
	ASSERT_OK(ward_gcm_seal(&g, iv, NULL, 0, pt, 16, ct, tag));
	unhex("cea7403d4d606b6e074ec5d3baf39d18", want, &n);
	assert_memory_equal(ct, want, 16);
	unhex("d0d1c8a799996bf0265b98b5d48ab919", want, &n);
	assert_memory_equal(tag, want, 16);
	ASSERT_OK(ward_gcm_open(&g, iv, NULL, 0, ct, 16, tag, back));
	assert_memory_equal(back, pt, 16);
	tag[0] ^= 1;
	ASSERT_ERR(
	    ward_gcm_open(&g, iv, NULL, 0, ct, 16, tag, back), WARD_EAUTH);
	/* the failed open leaves no plaintext behind */
	for (int i = 0; i < 16; i++)
		assert_int_equal(back[i], 0);
	tag[0] ^= 1;
	ASSERT_ERR(
	    ward_gcm_open(&g, iv, (const uint8_t *)"x", 1, ct, 16, tag, back),
	    WARD_EAUTH);
	ward_gcm_free(&g);

	/* one direction only: the same answers, and the other refuses */
	ASSERT_OK(ward_gcm_init_dir(&g, key, 32, WARD_GCM_SEAL));
	memset(ct, 0, sizeof(ct));
	ASSERT_OK(ward_gcm_seal(&g, iv, NULL, 0, pt, 16, ct, tag));
	unhex("cea7403d4d606b6e074ec5d3baf39d18", want, &n);
	assert_memory_equal(ct, want, 16);
	ASSERT_ERR(
	    ward_gcm_open(&g, iv, NULL, 0, ct, 16, tag, back), WARD_EINTERNAL);
	ward_gcm_free(&g);
	ASSERT_OK(ward_gcm_init_dir(&g, key, 32, WARD_GCM_OPEN));
	memset(back, 0xff, sizeof(back));
	ASSERT_OK(ward_gcm_open(&g, iv, NULL, 0, ct, 16, tag, back));
	assert_memory_equal(back, pt, 16);
	/* the key service keeps a context for many requests: one that
	 * failed (bad tag, bad AAD) still opens the next good one */
	tag[0] ^= 1;
	ASSERT_ERR(
	    ward_gcm_open(&g, iv, NULL, 0, ct, 16, tag, back), WARD_EAUTH);
	tag[0] ^= 1;
	ASSERT_ERR(
	    ward_gcm_open(&g, iv, (const uint8_t *)"x", 1, ct, 16, tag, back),
	    WARD_EAUTH);
	memset(back, 0xff, sizeof(back));
	ASSERT_OK(ward_gcm_open(&g, iv, NULL, 0, ct, 16, tag, back));
	assert_memory_equal(back, pt, 16);
	ASSERT_ERR(
	    ward_gcm_seal(&g, iv, NULL, 0, pt, 16, ct, tag), WARD_EINTERNAL);
	ward_gcm_free(&g);
	ASSERT_ERR(ward_gcm_init_dir(&g, key, 32, 0), WARD_EINTERNAL);
	ASSERT_ERR(ward_gcm_init_dir(&g, key, 32, 4), WARD_EINTERNAL);
	ward_gcm_free(&g); /* NULLs from the refused set-up */
}

static void
test_ecdsa(void **state)
{
	enum ward_curve curves[] = {WARD_CURVE_P256, WARD_CURVE_P384};

	for (size_t i = 0; i < 2; i++) {
		struct ward_sig s, v;
		uint8_t point[WARD_EC_POINT_MAX], sig[WARD_ECDSA_SIG_MAX];
		size_t plen, slen;

		ASSERT_OK(ward_sig_new_signer(&s, curves[i]));
		ASSERT_OK(ward_sig_public_point(&s, point, &plen));
		assert_int_equal(plen, curves[i] == WARD_CURVE_P256 ? 33 : 49);
		assert_true(point[0] == 2 || point[0] == 3);
		ASSERT_OK(ward_sig_update(&s, (const uint8_t *)"abc", 3));
		ASSERT_OK(ward_sig_update(&s, (const uint8_t *)"def", 3));
		ASSERT_OK(ward_sig_sign(&s, sig, &slen));
		ASSERT_OK(ward_sig_new_verifier(&v, curves[i], point, plen));
		ASSERT_OK(ward_sig_update(&v, (const uint8_t *)"abcdef", 6));
		ASSERT_OK(ward_sig_verify(&v, sig, slen));
		ward_sig_free(&v);
		ASSERT_OK(ward_sig_new_verifier(&v, curves[i], point, plen));
		ASSERT_OK(ward_sig_update(&v, (const uint8_t *)"abcdeg", 6));
		ASSERT_ERR(ward_sig_verify(&v, sig, slen), WARD_EAUTH);
		ward_sig_free(&v);
		/* the other parity is a different key (or not a point) */
		point[0] ^= 1;
		if (ward_sig_new_verifier(&v, curves[i], point, plen) == 0) {
			ASSERT_OK(
			    ward_sig_update(&v, (const uint8_t *)"abcdef", 6));
			ASSERT_ERR(ward_sig_verify(&v, sig, slen), WARD_EAUTH);
			ward_sig_free(&v);
		}
		ASSERT_ERR(
		    ward_sig_new_verifier(&v, curves[i], point, plen - 1),
		    WARD_EFORMAT);
		ward_sig_free(&s);
	}
}

static void
test_rsa(void **state)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	enum ward_rsa_padding pads[] = {WARD_RSA_PKCS1, WARD_RSA_OAEP_SHA1,
	    WARD_RSA_OAEP_SHA256, WARD_RSA_OAEP_SHA384, WARD_RSA_OAEP_SHA512};
	uint8_t ct[512], pt[512];
	size_t cn, pn;
	enum ward_rsa_padding p;

	assert_non_null(k);
	for (size_t i = 0; i < 5; i++) {
		ASSERT_OK(ward_rsa_encrypt(k, pads[i], (const uint8_t *)"key",
		    3, ct, sizeof(ct), &cn));
		assert_int_equal(cn, 256);
		ASSERT_OK(
		    ward_rsa_decrypt(k, pads[i], ct, cn, pt, sizeof(pt), &pn));
		assert_int_equal(pn, 3);
		assert_memory_equal(pt, "key", 3);
		ASSERT_OK(
		    ward_rsa_padding_parse(ward_rsa_padding_name(pads[i]), &p));
		assert_int_equal(p, pads[i]);
	}
	ASSERT_OK(ward_rsa_encrypt(k, WARD_RSA_OAEP_SHA256,
	    (const uint8_t *)"key", 3, ct, sizeof(ct), &cn));
	ASSERT_ERR(ward_rsa_decrypt(
	               k, WARD_RSA_OAEP_SHA1, ct, cn, pt, sizeof(pt), &pn),
	    WARD_EKEY);
	ASSERT_ERR(ward_rsa_padding_parse("oaep-md5", &p), WARD_EUSAGE);
	ASSERT_ERR(ward_pkey_load_pem_mem((const uint8_t *)"junk", 4, true, &k),
	    WARD_EFORMAT);
	EVP_PKEY_free(k);
}

/* ward_random fills every byte it is asked for, across getrandom's
 * 256-byte boundary, and two draws differ. */
static void
test_random(void **state)
{
	static const size_t sizes[] = {1, 16, 255, 256, 257, 4096, 1u << 20};
	size_t n = (size_t)1 << 20;
	uint8_t *buf = malloc(n + 1), a[32], b[32];
	size_t count[256] = {0};

	(void)state;
	assert_non_null(buf);
	ASSERT_OK(ward_random(buf, 0));
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		/* the byte after the request stays as it was */
		memset(buf, 0, sizes[i] + 1);
		ASSERT_OK(ward_random(buf, sizes[i]));
		assert_int_equal(buf[sizes[i]], 0);
	}
	/* 1 MiB: every byte value near 4096 times (a region left unfilled
	 * puts thousands more zeros in) */
	for (size_t i = 0; i < n; i++)
		count[buf[i]]++;
	for (size_t v = 0; v < 256; v++)
		if (count[v] < 3500 || count[v] > 4700)
			fail_msg(
			    "byte %zu appears %zu times in 1 MiB", v, count[v]);
	ASSERT_OK(ward_random(a, sizeof(a)));
	ASSERT_OK(ward_random(b, sizeof(b)));
	assert_memory_not_equal(a, b, sizeof(a));
	free(buf);
}

/* SHA-256 (FIPS 180-2 "abc") and HMAC-SHA-256 (RFC 4231 cases 2 and 6:
 * a short key, and one longer than the block, which is hashed first). */
/* got (32 bytes) is the digest written in hex */
static void
same_hex(const uint8_t *got, const char *hex)
{
	uint8_t want[WARD_SHA256_LEN];
	size_t n;

	unhex(hex, want, &n);
	assert_int_equal(n, sizeof(want));
	assert_memory_equal(got, want, sizeof(want));
}

static void
test_sha256_hmac(void **state)
{
	static const char case2[] =
	    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
	uint8_t key[131], out[WARD_SHA256_LEN];
	const char *big =
	    "Test Using Larger Than Block-Size Key - Hash Key First";

	(void)state;
	ASSERT_OK(ward_sha256("abc", 3, out));
	same_hex(out,
	    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	/* twice: the template is not changed by a keyed copy */
	for (int i = 0; i < 2; i++) {
		ASSERT_OK(ward_hmac_sha256((const uint8_t *)"Jefe", 4,
		    "what do ya want for nothing?", 28, out));
		same_hex(out, case2);
	}
	memset(key, 0xaa, sizeof(key));
	ASSERT_OK(ward_hmac_sha256(key, sizeof(key), big, strlen(big), out));
	same_hex(out,
	    "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

/* The pre-keyed HMAC: RFC 4231 cases 1, 2 and 6 (a 20-byte key, a 4-byte
 * one, one longer than the block), each used twice (the saved states are
 * not changed by a call), a 64-byte key (exactly a block: not hashed),
 * and the empty message; a freed key refuses to compute. */
static void
test_hmac_keyed(void **state)
{
	static const struct {
		size_t klen;
		uint8_t kbyte; /* the key: klen copies, or "Jefe" when 0 */
		const char *msg, *hex;
	} cases[] = {
	    {20, 0x0b, "Hi There",
	        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
	    {0, 0, "what do ya want for nothing?",
	        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
	    {131, 0xaa,
	        "Test Using Larger Than Block-Size Key - Hash Key First",
	        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
	};
	struct ward_hmac_sha256_key k = {0};
	uint8_t key[131], out[WARD_SHA256_LEN], ref[WARD_SHA256_LEN];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const uint8_t *kp = key;
		size_t kl = cases[i].klen;

		memset(key, cases[i].kbyte, sizeof(key));
		if (kl == 0) {
			kp = (const uint8_t *)"Jefe";
			kl = 4;
		}
		ASSERT_OK(ward_hmac_sha256_key_init(&k, kp, kl));
		for (int j = 0; j < 2; j++) {
			memset(out, 0, sizeof(out));
			ASSERT_OK(ward_hmac_sha256_keyed(
			    &k, cases[i].msg, strlen(cases[i].msg), out));
			same_hex(out, cases[i].hex);
		}
		ward_hmac_sha256_key_free(&k);
	}
	/* a block-sized key, and an empty message, against the one-shot */
	for (size_t i = 0; i < 64; i++)
		key[i] = (uint8_t)(i * 7 + 1);
	ASSERT_OK(ward_hmac_sha256_key_init(&k, key, 64));
	ASSERT_OK(ward_hmac_sha256_keyed(&k, "m", 1, out));
	ASSERT_OK(ward_hmac_sha256(key, 64, "m", 1, ref));
	assert_memory_equal(out, ref, sizeof(out));
	ASSERT_OK(ward_hmac_sha256_keyed(&k, "", 0, out));
	ASSERT_OK(ward_hmac_sha256(key, 64, "", 0, ref));
	assert_memory_equal(out, ref, sizeof(out));
	ward_hmac_sha256_key_free(&k);
	ward_hmac_sha256_key_free(&k); /* twice is harmless */
	assert_int_not_equal(ward_hmac_sha256_keyed(&k, "m", 1, out), 0);
	ward_errclear();
	/* against OpenSSL's EVP digest and HMAC, at the lengths around the
	 * 64-byte block and its 55-byte padding limit, keys longer than a
	 * block included; a copied key is a key */
	{
		static const size_t lens[] = {
		    0, 1, 31, 32, 55, 56, 63, 64, 65, 119, 120, 131, 200};
		/* keys from msg, messages from msg + 3 */
		uint8_t msg[208], want[32];
		unsigned wl = 0;

		for (size_t i = 0; i < sizeof(msg); i++)
			msg[i] = (uint8_t)(i * 13 + 5);
		for (size_t a = 0; a < sizeof(lens) / sizeof(lens[0]); a++) {
			ASSERT_OK(ward_sha256(msg, lens[a], out));
			assert_int_equal(EVP_Digest(msg, lens[a], want, &wl,
			                     EVP_sha256(), NULL),
			    1);
			assert_memory_equal(out, want, sizeof(out));
			for (size_t b = 0; b < sizeof(lens) / sizeof(lens[0]);
			     b++) {
				struct ward_hmac_sha256_key copy;

				assert_non_null(
				    HMAC(EVP_sha256(), msg, (int)lens[a],
				        msg + 3, lens[b] - (b > 0), want, &wl));
				ASSERT_OK(ward_hmac_sha256(msg, lens[a],
				    msg + 3, lens[b] - (b > 0), out));
				assert_memory_equal(out, want, sizeof(out));
				ASSERT_OK(ward_hmac_sha256_key_init(
				    &k, msg, lens[a]));
				copy = k;
				ward_hmac_sha256_key_free(&k);
				ASSERT_OK(ward_hmac_sha256_keyed(
				    &copy, msg + 3, lens[b] - (b > 0), out));
				assert_memory_equal(out, want, sizeof(out));
				ward_hmac_sha256_key_free(&copy);
			}
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_random),
	    cmocka_unit_test(test_sha256_hmac),
	    cmocka_unit_test(test_hmac_keyed),
	    cmocka_unit_test(test_hkdf_rfc5869),
	    cmocka_unit_test(test_gcm_kat_and_tamper),
	    cmocka_unit_test(test_ecdsa),
	    cmocka_unit_test(test_rsa),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
