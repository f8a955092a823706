/* Private to the eif module. */
#ifndef WARD_EIF_INTERNAL_H
#define WARD_EIF_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* init_blob.c: the embedded static ward-init (the bootstrap's /init). */
const uint8_t *ward_init_blob(size_t *len);

/* build.c: remove a directory tree (never following symlinks), or only
 * what is inside it. Best effort: for temporary trees. */
void ward_eif_rmtree(const char *dir);
void ward_eif_rmtree_children(const char *dir);

#endif
