/* libFuzzer: INFER's rows (src/agent/rows.c), CSV and JSON. The first
 * byte picks the format (auto, csv, json). Invariants: a success has rows
 * and columns, rows * cols values, every value a float or NaN (never an
 * infinity); a failure leaves nothing allocated and says why; the matrix
 * never exceeds the cell limit. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/internal.h"
#include "ward/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CELLS 4096

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct agent_rows r;
	enum agent_fmt f;
	int e;

	if (size < 1)
		return 0;
	f = data[0] % 3 == 0   ? AGENT_FMT_AUTO
	    : data[0] % 3 == 1 ? AGENT_FMT_CSV
	                       : AGENT_FMT_JSON;
	e = agent_rows_parse(data + 1, size - 1, f, CELLS, &r);
	if (e != 0) {
		if (r.v != NULL || r.rows != 0 ||
		    (e != -WARD_EFORMAT && e != -WARD_ELIMIT &&
		        e != -WARD_ENOMEM))
			abort();
		if (ward_errmsg()[0] == '\0')
			abort();
		return 0;
	}
	if (r.rows == 0 || r.cols == 0 || r.n != r.rows * r.cols || r.n > CELLS)
		abort();
	for (size_t i = 0; i < r.n; i++)
		if (isinf(r.v[i]))
			abort();
	agent_rows_free(&r);
	return 0;
}
