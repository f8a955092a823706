/*
 * The XGBoost model runtime (internal.h "agent_runtime"), over XGBoost's C
 * API, loaded with dlopen on first use: an image carries XGBoost (8 MB with
 * its libraries) only when it serves models (ward build-enclave
 * --model-runtime xgboost), and ward itself needs none of it to run.
 * The types come from <xgboost/c_api.h>; each entry point is looked up
 * by name and checked.
 */
#include <dlfcn.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xgboost/c_api.h>

#include "internal.h"

#define XGB_LIB "libxgboost.so.0"

static struct {
	const char *(*last_error)(void);
	int (*create)(const DMatrixHandle[], bst_ulong, BoosterHandle *);
	int (*free)(BoosterHandle);
	int (*load)(BoosterHandle, const void *, bst_ulong);
	int (*features)(BoosterHandle, bst_ulong *);
	int (*config)(BoosterHandle, bst_ulong *, const char **);
	int (*set_param)(BoosterHandle, const char *, const char *);
	int (*predict)(BoosterHandle, const char *, const char *, DMatrixHandle,
	    const bst_ulong **, bst_ulong *, const float **);
} xgb;
static pthread_once_t xgb_once = PTHREAD_ONCE_INIT;
static char xgb_error[512]; /* empty once loaded */

static void
xgb_open(void)
{
	void *h = dlopen(XGB_LIB, RTLD_NOW | RTLD_LOCAL);
	struct {
		const char *name;
		void **slot;
	} syms[] = {
	    {"XGBGetLastError", (void **)&xgb.last_error},
	    {"XGBoosterCreate", (void **)&xgb.create},
	    {"XGBoosterFree", (void **)&xgb.free},
	    {"XGBoosterLoadModelFromBuffer", (void **)&xgb.load},
	    {"XGBoosterGetNumFeature", (void **)&xgb.features},
	    {"XGBoosterSaveJsonConfig", (void **)&xgb.config},
	    {"XGBoosterSetParam", (void **)&xgb.set_param},
	    {"XGBoosterPredictFromDense", (void **)&xgb.predict},
	};

	if (h == NULL) {
		const char *why = dlerror();

		snprintf(xgb_error, sizeof(xgb_error),
		    "this enclave image has no XGBoost runtime (%s): build it "
		    "with ward build-enclave --model-runtime xgboost",
		    why != NULL ? why : XGB_LIB);
		return;
	}
	for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++)
		if ((*syms[i].slot = dlsym(h, syms[i].name)) == NULL) {
			snprintf(xgb_error, sizeof(xgb_error),
			    "%s has no %s: XGBoost 1.4 or later is needed",
			    XGB_LIB, syms[i].name);
			return; /* h stays open: harmless */
		}
}

static int
xgb_ready(void)
{
	pthread_once(&xgb_once, xgb_open);
	if (xgb_error[0] != '\0')
		return ward_errf(WARD_EUNSUPPORTED, "%s", xgb_error);
	return 0;
}

static const char *
xgb_why(void)
{
	const char *e = xgb.last_error();

	return e != NULL && e[0] != '\0' ? e : "no reason given";
}

struct xgb_model {
	BoosterHandle h;
	pthread_mutex_t lock; /* one prediction at a time per model */
};

static unsigned
cpus(void)
{
	cpu_set_t s;

	if (sched_getaffinity(0, sizeof(s), &s) != 0 || CPU_COUNT(&s) < 1)
		return 1;
	return (unsigned)CPU_COUNT(&s);
}

/* What the model predicts, from its JSON configuration. */
static int
xgb_objective(BoosterHandle h, struct agent_model_info *info)
{
	const char *cfg = NULL, *name;
	bst_ulong len = 0;
	json_t *root;
	json_error_t je;

	if (xgb.config(h, &len, &cfg) != 0 || cfg == NULL)
		return ward_errf(WARD_EFORMAT,
		    "the model has no configuration XGBoost can give: %s",
		    xgb_why());
	if ((root = json_loadb(cfg, len, 0, &je)) == NULL)
		return ward_errf(WARD_EFORMAT,
		    "XGBoost's configuration of the model does not parse: %s",
		    je.text);
	name = json_string_value(json_object_get(
	    json_object_get(json_object_get(root, "learner"), "objective"),
	    "name"));
	snprintf(info->objective, sizeof(info->objective), "%s",
	    name != NULL ? name : "unknown");
	json_decref(root);
	if (strcmp(info->objective, "binary:logistic") == 0)
		info->task = AGENT_TASK_BINARY;
	else if (strcmp(info->objective, "multi:softprob") == 0)
		info->task = AGENT_TASK_MULTI;
	else if (strcmp(info->objective, "multi:softmax") == 0 ||
	    strcmp(info->objective, "binary:hinge") == 0)
		info->task = AGENT_TASK_CLASS;
	else
		info->task = AGENT_TASK_VALUE;
	return 0;
}

static void xgb_free(void *model);

/*
 * Only XGBoost's JSON model format reaches XGBoost. Its legacy binary and
 * UBJSON readers size vectors from counts in the input, so a corrupt file
 * can make them allocate without bound: a bad_alloc at best, the agent
 * killed by the enclave's memory limit (or a sanitizer) at worst. JSON's
 * allocations follow the text. A JSON model is an object whose first
 * member is a string key.
 */
static int
json_model(const uint8_t *p, size_t n)
{
	size_t i = 0;

	while (i < n &&
	    (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
		i++;
	if (i < n && p[i] == '{') {
		i++;
		while (i < n &&
		    (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' ||
		        p[i] == '\n'))
			i++;
		if (i < n && p[i] == '"')
			return 0;
	}
	return ward_errf(WARD_EFORMAT,
	    "the model (%zu bytes) is not an XGBoost JSON model; save it "
	    "with XGBoosterSaveModel to a .json file (the legacy binary and "
	    "UBJSON formats are not loaded: their readers trust counts in "
	    "the file)",
	    n);
}

static int
xgb_load(
    const uint8_t *p, size_t n, void **model, struct agent_model_info *info)
{
	struct xgb_model *m = NULL;
	bst_ulong nf = 0;
	char threads[16];
	int r;

	*model = NULL;
	memset(info, 0, sizeof(*info));
	if ((r = xgb_ready()) != 0)
		return r;
	if ((r = json_model(p, n)) != 0)
		return r;
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return ward_enomem();
	pthread_mutex_init(&m->lock, NULL);
	if (xgb.create(NULL, 0, &m->h) != 0) {
		r = ward_errf(WARD_EINTERNAL, "XGBoosterCreate: %s", xgb_why());
		goto out;
	}
	if (xgb.load(m->h, p, (bst_ulong)n) != 0) {
		r = ward_errf(WARD_EFORMAT,
		    "XGBoost cannot load the model (%zu bytes): %s", n,
		    xgb_why());
		goto out;
	}
	if (xgb.features(m->h, &nf) != 0 || nf == 0) {
		r = ward_errf(WARD_EFORMAT,
		    "the model does not say how many features it takes: %s",
		    xgb_why());
		goto out;
	}
	info->features = (size_t)nf;
	snprintf(threads, sizeof(threads), "%u", cpus());
	if (xgb.set_param(m->h, "nthread", threads) != 0) {
		r = ward_errf(WARD_EINTERNAL, "XGBoost nthread: %s", xgb_why());
		goto out;
	}
	r = xgb_objective(m->h, info);
out:
	if (r != 0)
		xgb_free(m);
	else
		*model = m;
	return r;
}

static int
xgb_predict(void *model, const float *x, size_t rows, size_t cols, float **out,
    size_t *per_row)
{
	static const char config[] =
	    "{\"type\": 0, \"training\": false, \"iteration_begin\": 0, \"cache_id\": 0, "
	    "\"iteration_end\": 0, \"strict_shape\": false, "
	    "\"missing\": NaN}";
	struct xgb_model *m = model;
	char values[256];
	const bst_ulong *shape = NULL;
	bst_ulong dim = 0;
	const float *res = NULL;
	size_t k, total;
	int r = 0;

	*out = NULL;
	*per_row = 0;
	snprintf(values, sizeof(values),
	    "{\"data\": [%llu, true], \"shape\": [%zu, %zu], "
	    "\"typestr\": \"<f4\", \"version\": 3}",
	    (unsigned long long)(uintptr_t)x, rows, cols);
	pthread_mutex_lock(&m->lock);
	if (xgb.predict(m->h, values, config, NULL, &shape, &dim, &res) != 0) {
		r = ward_errf(
		    WARD_EFORMAT, "XGBoost cannot predict: %s", xgb_why());
		goto out;
	}
	if (dim < 1 || dim > 2 || shape == NULL || res == NULL ||
	    shape[0] != rows || (dim == 2 && shape[1] == 0)) {
		r = ward_errf(WARD_EINTERNAL,
		    "XGBoost answered %llu dimensions for %zu rows",
		    (unsigned long long)dim, rows);
		goto out;
	}
	k = dim == 2 ? (size_t)shape[1] : 1;
	if (k > SIZE_MAX / sizeof(float) / (rows == 0 ? 1 : rows)) {
		r = ward_enomem();
		goto out;
	}
	total = rows * k;
	/* copied under the lock: XGBoost reuses its buffer */
	if ((*out = malloc(total * sizeof(float) + 1)) == NULL) {
		r = ward_enomem();
		goto out;
	}
	memcpy(*out, res, total * sizeof(float));
	*per_row = k;
out:
	pthread_mutex_unlock(&m->lock);
	return r;
}

static void
xgb_free(void *model)
{
	struct xgb_model *m = model;

	if (m == NULL)
		return;
	if (m->h != NULL)
		xgb.free(m->h);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

const struct agent_runtime agent_runtime_xgboost = {
    .name = "xgboost",
    .load = xgb_load,
    .predict = xgb_predict,
    .free = xgb_free,
};
