/* libFuzzer: directory restore from an arbitrary tar stream. Whatever it
 * accepts lands inside the target; whatever it refuses leaves nothing. */
#include <dirent.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ward/envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	if (flag == FTW_DP)
		rmdir(p);
	else
		unlink(p);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char base[64];
	char dest[128];
	struct ward_mem_reader m = {.p = data, .len = size};
	struct ward_path_opts o = {.max_entries = 64, .max_bytes = 1 << 20};
	DIR *d;
	struct dirent *e;
	int left = 0, r;

	if (base[0] == '\0') {
		snprintf(base, sizeof(base), "/tmp/ward-fuzz-XXXXXX");
		if (mkdtemp(base) == NULL)
			__builtin_trap();
	}
	snprintf(dest, sizeof(dest), "%s/out", base);
	r = ward_archive_unpack(ward_mem_read, &m, dest, &o);
	if ((d = opendir(base)) == NULL)
		__builtin_trap();
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			left++;
	closedir(d);
	/* success leaves exactly the target; failure leaves nothing */
	if (left != (r == 0 ? 1 : 0))
		__builtin_trap();
	nftw(dest, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}
