/*
 * Keyrings with the Encryption SDK's semantics: raw AES
 * (framework/raw-aes-keyring.md), raw RSA (raw-rsa-keyring.md) and the
 * multi-keyring. The KMS keyring of a later module implements the same
 * struct ward_keyring_ops.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ward/envelope.h"

void
ward_keyring_free(struct ward_keyring *kr)
{
	if (kr != NULL)
		kr->ops->destroy(kr);
}

static int
generate_data_key(struct ward_materials *m)
{
	int r;

	if (m->has_data_key)
		return 0;
	if ((r = ward_random(m->data_key, m->suite->key_len)) != 0)
		return r;
	m->data_key_len = m->suite->key_len;
	m->has_data_key = true;
	return 0;
}

static int
check_names(const char *ns, const char *name)
{
	if (ns == NULL || *ns == '\0' || strlen(ns) > UINT16_MAX)
		return ward_errf(
		    WARD_EUSAGE, "key namespace must be 1 to 65535 bytes");
	if (strcmp(ns, "aws-kms") == 0 || strncmp(ns, "aws-kms", 7) == 0)
		return ward_errf(WARD_EUSAGE,
		    "key namespace '%s' is reserved for AWS KMS", ns);
	if (name == NULL || *name == '\0' || strlen(name) > UINT16_MAX - 20)
		return ward_errf(
		    WARD_EUSAGE, "key name must be 1 to 65515 bytes");
	return 0;
}

/* ---- raw AES ---------------------------------------------------------- */

/* Provider info: key name || u32 tag bits (128) || u32 IV length (12) ||
 * IV (spec §5.5). */
#define AES_INFO_TRAILER 20

struct raw_aes {
	struct ward_keyring kr;
	char *ns;
	char *name;
	struct ward_gcm gcm;
	size_t key_len;
};

static int
raw_aes_on_encrypt(struct ward_keyring *kr, struct ward_materials *m)
{
	struct raw_aes *k = (struct raw_aes *)kr;
	struct ward_buf aad = {0}, info = {0};
	uint8_t iv[WARD_GCM_IV_LEN], ct[WARD_DATA_KEY_MAX + WARD_GCM_TAG_LEN];
	size_t name_len = strlen(k->name);
	int r;

	if ((r = generate_data_key(m)) != 0 ||
	    (r = ward_random(iv, sizeof(iv))) != 0 ||
	    (r = ward_ec_serialize(m->ec, &aad)) != 0)
		goto out;
	if ((r = ward_gcm_seal(&k->gcm, iv, aad.p, aad.len, m->data_key,
	         m->data_key_len, ct, ct + m->data_key_len)) != 0)
		goto out;
	if ((r = ward_buf_append(&info, k->name, name_len)) != 0 ||
	    (r = ward_buf_put_u32(&info, WARD_GCM_TAG_LEN * 8)) != 0 ||
	    (r = ward_buf_put_u32(&info, WARD_GCM_IV_LEN)) != 0 ||
	    (r = ward_buf_append(&info, iv, sizeof(iv))) != 0)
		goto out;
	r = ward_edk_list_add(&m->edks, k->ns, strlen(k->ns), info.p, info.len,
	    ct, m->data_key_len + WARD_GCM_TAG_LEN);
out:
	ward_buf_free(&aad);
	ward_buf_free(&info);
	return r;
}

static int
raw_aes_on_decrypt(struct ward_keyring *kr, struct ward_materials *m,
    const struct ward_edk *edks, size_t n)
{
	struct raw_aes *k = (struct raw_aes *)kr;
	struct ward_buf aad = {0};
	size_t ns_len = strlen(k->ns), name_len = strlen(k->name);
	uint8_t key[WARD_DATA_KEY_MAX];
	int r;

	if ((r = ward_ec_serialize(m->ec, &aad)) != 0)
		return r;
	for (size_t i = 0; i < n && !m->has_data_key; i++) {
		const struct ward_edk *e = &edks[i];
		const uint8_t *info = e->provider_info;

		if (e->provider_id_len != ns_len ||
		    memcmp(e->provider_id, k->ns, ns_len) != 0 ||
		    e->provider_info_len != name_len + AES_INFO_TRAILER ||
		    memcmp(info, k->name, name_len) != 0)
			continue;
		if (ward_load32(info + name_len) != WARD_GCM_TAG_LEN * 8 ||
		    ward_load32(info + name_len + 4) != WARD_GCM_IV_LEN ||
		    e->ciphertext_len !=
		        (size_t)m->suite->key_len + WARD_GCM_TAG_LEN) {
			m->attempts++;
			continue;
		}
		if (ward_gcm_open(&k->gcm, info + name_len + 8, aad.p, aad.len,
		        e->ciphertext, m->suite->key_len,
		        e->ciphertext + m->suite->key_len, key) != 0) {
			m->attempts++;
			continue;
		}
		memcpy(m->data_key, key, m->suite->key_len);
		m->data_key_len = m->suite->key_len;
		m->has_data_key = true;
	}
	ward_cleanse(key, sizeof(key));
	ward_errclear();
	ward_buf_free(&aad);
	return 0;
}

static void
raw_aes_describe(const struct ward_keyring *kr, char *out, size_t n)
{
	const struct raw_aes *k = (const struct raw_aes *)kr;

	snprintf(
	    out, n, "raw AES-%zu key %s/%s", k->key_len * 8, k->ns, k->name);
}

static void
raw_aes_destroy(struct ward_keyring *kr)
{
	struct raw_aes *k = (struct raw_aes *)kr;

	ward_gcm_free(&k->gcm);
	free(k->ns);
	free(k->name);
	free(k);
}

static const struct ward_keyring_ops raw_aes_ops = {
    .type = "raw-aes",
    .on_encrypt = raw_aes_on_encrypt,
    .on_decrypt = raw_aes_on_decrypt,
    .describe = raw_aes_describe,
    .destroy = raw_aes_destroy,
};

int
ward_keyring_raw_aes_new(struct ward_keyring **out, const char *key_ns,
    const char *key_name, const uint8_t *key, size_t key_len)
{
	struct raw_aes *k;
	int r;

	if ((r = check_names(key_ns, key_name)) != 0)
		return r;
	if (key_len != 16 && key_len != 24 && key_len != 32)
		return ward_errf(WARD_EUSAGE,
		    "a raw AES key must be 16, 24 or 32 bytes, not %zu",
		    key_len);
	if ((k = calloc(1, sizeof(*k))) == NULL)
		return ward_enomem();
	k->kr.ops = &raw_aes_ops;
	k->key_len = key_len;
	if ((k->ns = strdup(key_ns)) == NULL ||
	    (k->name = strdup(key_name)) == NULL) {
		free(k->ns);
		free(k);
		return ward_enomem();
	}
	if ((r = ward_gcm_init(&k->gcm, key, key_len)) != 0) {
		free(k->ns);
		free(k->name);
		free(k);
		return r;
	}
	*out = &k->kr;
	return 0;
}

/* ---- raw RSA ---------------------------------------------------------- */

struct raw_rsa {
	struct ward_keyring kr;
	char *ns;
	char *name;
	struct evp_pkey_st *pub;
	struct evp_pkey_st *priv;
	enum ward_rsa_padding padding;
};

static int
raw_rsa_on_encrypt(struct ward_keyring *kr, struct ward_materials *m)
{
	struct raw_rsa *k = (struct raw_rsa *)kr;
	uint8_t ct[WARD_RSA_MAX_BYTES];
	size_t ct_len;
	int r;

	if (k->padding == WARD_RSA_PKCS1)
		return ward_errf(WARD_EUSAGE,
		    "RSA PKCS #1 v1.5 padding is accepted for decryption only; encrypt with oaep-sha256");
	if ((r = generate_data_key(m)) != 0)
		return r;
	if ((r = ward_rsa_encrypt(k->pub != NULL ? k->pub : k->priv, k->padding,
	         m->data_key, m->data_key_len, ct, sizeof(ct), &ct_len)) != 0)
		return r;
	return ward_edk_list_add(&m->edks, k->ns, strlen(k->ns), k->name,
	    strlen(k->name), ct, ct_len);
}

static int
raw_rsa_on_decrypt(struct ward_keyring *kr, struct ward_materials *m,
    const struct ward_edk *edks, size_t n)
{
	struct raw_rsa *k = (struct raw_rsa *)kr;
	size_t ns_len = strlen(k->ns), name_len = strlen(k->name);
	uint8_t key[WARD_RSA_MAX_BYTES];
	size_t key_len;

	if (k->priv == NULL)
		return 0;
	for (size_t i = 0; i < n && !m->has_data_key; i++) {
		const struct ward_edk *e = &edks[i];

		if (e->provider_id_len != ns_len ||
		    memcmp(e->provider_id, k->ns, ns_len) != 0 ||
		    e->provider_info_len != name_len ||
		    memcmp(e->provider_info, k->name, name_len) != 0)
			continue;
		if (ward_rsa_decrypt(k->priv, k->padding, e->ciphertext,
		        e->ciphertext_len, key, sizeof(key), &key_len) != 0 ||
		    key_len != m->suite->key_len) {
			m->attempts++;
			continue;
		}
		memcpy(m->data_key, key, key_len);
		m->data_key_len = key_len;
		m->has_data_key = true;
	}
	ward_cleanse(key, sizeof(key));
	ward_errclear();
	return 0;
}

static void
raw_rsa_describe(const struct ward_keyring *kr, char *out, size_t n)
{
	const struct raw_rsa *k = (const struct raw_rsa *)kr;

	snprintf(out, n, "raw RSA %s key %s/%s (%s)",
	    k->priv != NULL ? "private" : "public", k->ns, k->name,
	    ward_rsa_padding_name(k->padding));
}

static void
raw_rsa_destroy(struct ward_keyring *kr)
{
	struct raw_rsa *k = (struct raw_rsa *)kr;

	ward_pkey_free(k->pub);
	ward_pkey_free(k->priv);
	free(k->ns);
	free(k->name);
	free(k);
}

static const struct ward_keyring_ops raw_rsa_ops = {
    .type = "raw-rsa",
    .on_encrypt = raw_rsa_on_encrypt,
    .on_decrypt = raw_rsa_on_decrypt,
    .describe = raw_rsa_describe,
    .destroy = raw_rsa_destroy,
};

int
ward_keyring_raw_rsa_new(struct ward_keyring **out, const char *key_ns,
    const char *key_name, struct evp_pkey_st *public_key,
    struct evp_pkey_st *private_key, enum ward_rsa_padding padding)
{
	struct raw_rsa *k;
	int r;

	if ((r = check_names(key_ns, key_name)) != 0)
		goto fail;
	if (public_key == NULL && private_key == NULL) {
		r = ward_errf(WARD_EUSAGE, "raw RSA keyring without a key");
		goto fail;
	}
	if ((k = calloc(1, sizeof(*k))) == NULL) {
		r = ward_enomem();
		goto fail;
	}
	k->kr.ops = &raw_rsa_ops;
	k->padding = padding;
	k->pub = public_key;
	k->priv = private_key;
	if ((k->ns = strdup(key_ns)) == NULL ||
	    (k->name = strdup(key_name)) == NULL) {
		raw_rsa_destroy(&k->kr);
		return ward_enomem();
	}
	*out = &k->kr;
	return 0;
fail:
	ward_pkey_free(public_key);
	ward_pkey_free(private_key);
	return r;
}

/* ---- multi-keyring ---------------------------------------------------- */

struct multi {
	struct ward_keyring kr;
	struct ward_keyring **v;
	size_t n;
};

static int
multi_on_encrypt(struct ward_keyring *kr, struct ward_materials *m)
{
	struct multi *k = (struct multi *)kr;
	int r;

	for (size_t i = 0; i < k->n; i++)
		if ((r = k->v[i]->ops->on_encrypt(k->v[i], m)) != 0)
			return r;
	return 0;
}

static int
multi_on_decrypt(struct ward_keyring *kr, struct ward_materials *m,
    const struct ward_edk *edks, size_t n)
{
	struct multi *k = (struct multi *)kr;
	int r;

	for (size_t i = 0; i < k->n && !m->has_data_key; i++)
		if ((r = k->v[i]->ops->on_decrypt(k->v[i], m, edks, n)) != 0)
			return r;
	return 0;
}

static void
multi_describe(const struct ward_keyring *kr, char *out, size_t n)
{
	const struct multi *k = (const struct multi *)kr;
	size_t off = 0;

	out[0] = '\0';
	for (size_t i = 0; i < k->n && off + 1 < n; i++) {
		if (i > 0)
			off += (size_t)snprintf(out + off, n - off, "; ");
		if (off + 1 < n)
			k->v[i]->ops->describe(k->v[i], out + off, n - off);
		off = strlen(out);
	}
}

static void
multi_destroy(struct ward_keyring *kr)
{
	struct multi *k = (struct multi *)kr;

	for (size_t i = 0; i < k->n; i++)
		ward_keyring_free(k->v[i]);
	free(k->v);
	free(k);
}

static const struct ward_keyring_ops multi_ops = {
    .type = "multi",
    .on_encrypt = multi_on_encrypt,
    .on_decrypt = multi_on_decrypt,
    .describe = multi_describe,
    .destroy = multi_destroy,
};

int
ward_keyring_multi_new(
    struct ward_keyring **out, struct ward_keyring **keyrings, size_t n)
{
	struct multi *k;

	if (n == 0)
		return ward_errf(WARD_EUSAGE, "no keyring given");
	if ((k = calloc(1, sizeof(*k))) == NULL ||
	    (k->v = calloc(n, sizeof(struct ward_keyring *))) == NULL) {
		free(k);
		for (size_t i = 0; i < n; i++)
			ward_keyring_free(keyrings[i]);
		return ward_enomem();
	}
	k->kr.ops = &multi_ops;
	memcpy(k->v, keyrings, n * sizeof(struct ward_keyring *));
	k->n = n;
	*out = &k->kr;
	return 0;
}
