/* Encrypted data key lists (spec §5.5). */
#include <stdlib.h>
#include <string.h>

#include "ward/envelope.h"

static uint8_t *
dup_mem(const void *p, size_t n)
{
	uint8_t *d = malloc(n > 0 ? n : 1);

	if (d != NULL && n > 0)
		memcpy(d, p, n);
	return d;
}

int
ward_edk_list_add(struct ward_edk_list *l, const void *pid, size_t pid_len,
    const void *info, size_t info_len, const void *ct, size_t ct_len)
{
	struct ward_edk *v, *e;

	if (pid_len > UINT16_MAX || info_len > UINT16_MAX ||
	    ct_len > UINT16_MAX)
		return ward_errf(WARD_ELIMIT,
		    "encrypted data key field longer than 65535 bytes");
	if ((v = realloc(l->v, (l->n + 1) * sizeof(*v))) == NULL)
		return ward_enomem();
	l->v = v;
	e = &v[l->n];
	e->provider_id = dup_mem(pid, pid_len);
	e->provider_info = dup_mem(info, info_len);
	e->ciphertext = dup_mem(ct, ct_len);
	if (e->provider_id == NULL || e->provider_info == NULL ||
	    e->ciphertext == NULL) {
		free(e->provider_id);
		free(e->provider_info);
		free(e->ciphertext);
		return ward_enomem();
	}
	e->provider_id_len = pid_len;
	e->provider_info_len = info_len;
	e->ciphertext_len = ct_len;
	l->n++;
	return 0;
}

void
ward_edk_list_free(struct ward_edk_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].provider_id);
		free(l->v[i].provider_info);
		free(l->v[i].ciphertext);
	}
	free(l->v);
	l->v = NULL;
	l->n = 0;
}
