/*
 * The AWS Encryption SDK's decrypt test vectors (shared/fixtures/
 * esdk-vectors, from aws-encryption-sdk-c tests/TestVectors/from-dafny):
 * every scenario runnable without AWS (raw, multi-keyring of raw keys,
 * required encryption context over raw keys: 187) must decrypt to its
 * expected plaintext. Exits 77 (skipped) when the fixtures are absent.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "ward/crypto.h"

static const char *dir;
static json_t *manifest, *keys;

static int
load(void **state)
{
	char path[4096];
	json_error_t err;

	snprintf(path, sizeof(path), "%s/decrypt-manifest.json", dir);
	if ((manifest = json_load_file(path, 0, &err)) == NULL)
		fail_msg("%s: %s", path, err.text);
	snprintf(path, sizeof(path), "%s/keys.json", dir);
	if ((keys = json_load_file(path, 0, &err)) == NULL)
		fail_msg("%s: %s", path, err.text);
	return 0;
}

static int
unload(void **state)
{
	json_decref(manifest);
	json_decref(keys);
	return 0;
}

static const char *
str(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* A keyring from a decryptKeyDescription; NULL if not runnable here. */
static struct ward_keyring *
keyring_for(json_t *desc)
{
	const char *type = str(desc, "type");
	struct ward_keyring *kr = NULL;

	if (strcmp(type, "raw") == 0) {
		json_t *key = json_object_get(
		    json_object_get(keys, "keys"), str(desc, "key"));
		const char *material = str(key, "material");
		const char *alg = str(desc, "encryption-algorithm");

		if (strcmp(alg, "aes") == 0) {
			uint8_t k[32];
			size_t n;

			ASSERT_OK(ward_b64_decode(
			    material, strlen(material), k, sizeof(k), &n));
			ASSERT_OK(ward_keyring_raw_aes_new(&kr,
			    str(desc, "provider-id"), str(key, "key-id"), k,
			    n));
		} else if (strcmp(alg, "rsa") == 0) {
			struct evp_pkey_st *pk;
			enum ward_rsa_padding pad;
			char name[32];

			if (strcmp(str(desc, "padding-algorithm"), "pkcs1") ==
			    0)
				snprintf(name, sizeof(name), "pkcs1");
			else
				snprintf(name, sizeof(name), "oaep-%s",
				    str(desc, "padding-hash"));
			ASSERT_OK(ward_rsa_padding_parse(name, &pad));
			ASSERT_OK(
			    ward_pkey_load_pem_mem((const uint8_t *)material,
			        strlen(material), true, &pk));
			ASSERT_OK(ward_keyring_raw_rsa_new(&kr,
			    str(desc, "provider-id"), str(key, "key-id"), NULL,
			    pk, pad));
		}
		return kr;
	}
	if (strcmp(type, "multi-keyring") == 0) {
		struct ward_keyring *v[8];
		json_t *children = json_object_get(desc, "childKeyrings");
		size_t n = 0, i;
		json_t *c;

		if (json_object_get(desc, "generator") != NULL &&
		    (v[n++] = keyring_for(
		         json_object_get(desc, "generator"))) == NULL)
			return NULL;
		json_array_foreach(children, i, c)
		{
			if ((v[n++] = keyring_for(c)) == NULL)
				return NULL;
		}
		ASSERT_OK(ward_keyring_multi_new(&kr, v, n));
		return kr;
	}
	if (strcmp(type, "required-encryption-context-cmm") == 0)
		return keyring_for(json_object_get(desc, "underlying"));
	return NULL;
}

static bool
runnable(json_t *desc)
{
	const char *type = str(desc, "type");

	if (strcmp(type, "raw") == 0)
		return strcmp(str(desc, "encryption-algorithm"), "aes") == 0 ||
		    strcmp(str(desc, "encryption-algorithm"), "rsa") == 0;
	if (strcmp(type, "required-encryption-context-cmm") == 0)
		return runnable(json_object_get(desc, "underlying"));
	if (strcmp(type, "multi-keyring") == 0) {
		json_t *c;
		size_t i;

		if (json_object_get(desc, "generator") != NULL &&
		    !runnable(json_object_get(desc, "generator")))
			return false;
		json_array_foreach(json_object_get(desc, "childKeyrings"), i,
		    c) if (!runnable(c)) return false;
		return true;
	}
	return false;
}

static uint8_t *
read_rel(const char *uri, size_t *n)
{
	char path[4096];
	uint8_t *p;

	assert_true(strncmp(uri, "file://", 7) == 0);
	snprintf(path, sizeof(path), "%s/%s", dir, uri + 7);
	if ((p = tu_read_file(path, n)) == NULL)
		fail_msg("missing %s", path);
	return p;
}

/* §5.10: 0x0478, raw AES-128, 10240 bytes, frame length 4096. */
static void
test_annotated_header(void **state)
{
	static const char *const commit_hex =
	    "03b945b170be7e60f1395756a5483d06d92a4900b0374988e160660be514a15c";
	char path[4096], hex[65];
	struct ward_header h;
	uint8_t *ct;
	size_t n;
	bool more;

	snprintf(path, sizeof(path),
	    "%s/ciphertexts/4a4a5ca4-a690-4445-930d-ac464bf4b936", dir);
	ct = tu_read_file(path, &n);
	assert_non_null(ct);
	assert_int_equal(n, 10551);
	ASSERT_OK(ward_header_parse(ct, n, 0, &h, &more));
	assert_int_equal(h.version, 2);
	assert_int_equal(h.suite_id, 0x0478);
	ward_hex_encode(h.message_id, 32, hex);
	assert_string_equal(hex,
	    "8344959ee77070eb1f01aee365fb76e03a99eff7f85c72cf33965dd041e72fbb");
	assert_int_equal(h.ec.n, 0);
	assert_int_equal(h.edks.n, 1);
	assert_int_equal(h.edks.v[0].provider_id_len, 34);
	assert_memory_equal(
	    h.edks.v[0].provider_id, "aws-raw-vectors-persistent-aes-128", 34);
	assert_int_equal(h.edks.v[0].provider_info_len, 27);
	assert_memory_equal(h.edks.v[0].provider_info,
	    "aes-128\x00\x00\x00\x80\x00\x00\x00\x0c", 15);
	assert_int_equal(h.edks.v[0].ciphertext_len, 48);
	assert_int_equal(h.content_type, 2);
	assert_int_equal(h.frame_len, 4096);
	ward_hex_encode(h.suite_data, 32, hex);
	assert_string_equal(hex, commit_hex);
	assert_int_equal(h.body_len, 191);
	assert_int_equal(h.len, 207);
	ward_header_free(&h);
	/* every proper prefix asks for more bytes */
	for (size_t cut = 0; cut < 207; cut++) {
		assert_int_not_equal(
		    ward_header_parse(ct, cut, 0, &h, &more), 0);
		assert_true(more);
	}
	free(ct);
}

/* Run every runnable scenario under a policy; count outcomes. */
static void
run_all(enum ward_commitment policy, unsigned *ok, unsigned *refused_v1,
    unsigned *failed)
{
	const char *id;
	json_t *t;
	unsigned i = 0;

	json_object_foreach(json_object_get(manifest, "tests"), id, t)
	{
		json_t *sc = json_object_get(t, "decryption-scenario");
		json_t *desc = json_object_get(sc, "decryptKeyDescription");
		json_t *rec =
		    json_object_get(sc, "reproduced-encryption-context");
		struct ward_dec_params p = {.commitment = policy};
		struct ward_ec ec = {0};
		struct ward_buf out = {0};
		struct ward_keyring *kr;
		uint8_t *ct, *want;
		size_t ct_n, want_n;
		const char *k;
		json_t *v;
		int r;

		if (!runnable(desc))
			continue;
		kr = keyring_for(desc);
		assert_non_null(kr);
		json_object_foreach(rec, k, v)
		    ASSERT_OK(ward_ec_add(&ec, k, strlen(k),
		        json_string_value(v), strlen(json_string_value(v))));
		p.required_ec = &ec;
		ct = read_rel(str(sc, "ciphertext"), &ct_n);
		want = read_rel(str(sc, "result"), &want_n);
		/* vary how the input arrives: whole, odd chunks, bytewise */
		r = tu_decrypt(kr, &p, ct, ct_n,
		    i % 3 == 0       ? 0
		        : i % 3 == 1 ? 977
		                     : 1,
		    &out);
		i++;
		if (r == -WARD_EUNSUPPORTED && policy == WARD_COMMIT_REQUIRE &&
		    !ward_suite_lookup(ward_load16(ct + (ct[0] == 1 ? 2 : 1)))
		         ->commit)
			(*refused_v1)++;
		else if (r != 0) {
			printf("FAIL %s (%s, suite %s): %s\n", id,
			    str(sc, "description"), str(sc, "algorithmSuiteId"),
			    ward_errmsg());
			(*failed)++;
		} else if (out.len != want_n ||
		    memcmp(out.p, want, want_n) != 0) {
			printf("FAIL %s: plaintext differs\n", id);
			(*failed)++;
		} else
			(*ok)++;
		ward_buf_free(&out);
		ward_ec_free(&ec);
		ward_keyring_free(kr);
		free(ct);
		free(want);
	}
}

static void
test_all_runnable_vectors_decrypt(void **state)
{
	unsigned ok = 0, refused = 0, failed = 0;

	run_all(WARD_COMMIT_ALLOW_LEGACY, &ok, &refused, &failed);
	printf("esdk vectors: %u decrypted, %u failed\n", ok, failed);
	assert_int_equal(failed, 0);
	assert_int_equal(ok, 187);
}

static void
test_default_policy_refuses_v1(void **state)
{
	unsigned ok = 0, refused = 0, failed = 0;

	run_all(WARD_COMMIT_REQUIRE, &ok, &refused, &failed);
	printf(
	    "esdk vectors, commitment required: %u decrypted (v2), %u refused (v1), %u failed\n",
	    ok, refused, failed);
	assert_int_equal(failed, 0);
	assert_int_equal(ok + refused, 187);
	assert_true(ok > 0 && refused > 0);
}

/* An authenticated-only pair reproduced with another value: refused, and
 * the message says the pair may be why. */
static void
test_required_context_wrong_value(void **state)
{
	const char *id;
	json_t *t;

	json_object_foreach(json_object_get(manifest, "tests"), id, t)
	{
		json_t *sc = json_object_get(t, "decryption-scenario");
		json_t *desc = json_object_get(sc, "decryptKeyDescription");
		struct ward_dec_params p = {0};
		struct ward_ec ec = {0};
		struct ward_buf out = {0};
		struct ward_keyring *kr;
		uint8_t *ct;
		size_t n;

		if (strcmp(str(desc, "type"),
		        "required-encryption-context-cmm") != 0 ||
		    strcmp(str(json_object_get(desc, "underlying"),
		               "encryption-algorithm"),
		        "aes") != 0 ||
		    strcmp(str(sc, "algorithmSuiteId"), "0478") != 0)
			continue;
		kr = keyring_for(desc);
		ASSERT_OK(ward_ec_add_arg(&ec, "a=a"));
		ASSERT_OK(ward_ec_add_arg(&ec, "b=not-b"));
		p.required_ec = &ec;
		ct = read_rel(str(sc, "ciphertext"), &n);
		ASSERT_ERR(tu_decrypt(kr, &p, ct, n, 0, &out), WARD_EKEY);
		assert_non_null(
		    strstr(ward_errmsg(), "bound with other values"));
		free(ct);
		ward_ec_free(&ec);
		ward_buf_free(&out);
		ward_keyring_free(kr);
		return; /* one is enough */
	}
	fail_msg("no required-context vector over AES with suite 0478");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_annotated_header),
	    cmocka_unit_test(test_all_runnable_vectors_decrypt),
	    cmocka_unit_test(test_default_policy_refuses_v1),
	    cmocka_unit_test(test_required_context_wrong_value),
	};

	if ((dir = tu_fixtures("esdk-vectors")) == NULL)
		return 77;
	dir = strdup(dir);
	return cmocka_run_group_tests(tests, load, unload);
}
