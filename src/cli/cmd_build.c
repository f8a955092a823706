/* ward build-enclave: flags to ward_build_enclave (src/eif/build.c). */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "ward/eif.h"

static const char build_help[] =
    "usage: ward build-enclave (--rootfs DIR | --oci-archive TAR) [--app DIR]\n"
    "                          [--cmd CMD] [--env K=V]... [--no-ward]\n"
    "                          [--model-runtime xgboost]\n"
    "                          [--kernel F [--cmdline S] [--nsm-module F] |\n"
    "                           --blobs DIR] [--name N] [--version V]\n"
    "                          [--signing-certificate PEM --private-key PEM]\n"
    "                          --output-file F.eif [-f] [--progress]\n"
    "\n"
    "Build an enclave image file (EIF v4) the way nitro-cli lays it out, without\n"
    "Docker, and print its measurements as nitro-cli's build-enclave does. PCR0\n"
    "is what a key policy pins. The same inputs give a byte-identical image on\n"
    "any machine at any time (BuildTime comes from SOURCE_DATE_EPOCH, else the\n"
    "epoch).\n"
    "\n"
    "The root filesystem (one of):\n"
    "  --rootfs DIR            a directory\n"
    "  --oci-archive TAR       a 'docker save' tarball or an OCI image layout in\n"
    "                          a tar (skopeo, umoci, buildah); layers applied\n"
    "                          with whiteouts, blob digests checked\n"
    "  --app DIR               also copy DIR to /app in the image\n"
    "  --no-ward               leave out ward itself; by default ward and the\n"
    "                          shared libraries it needs go to /ward, so any\n"
    "                          image can run the agent\n"
    "  --model-runtime NAME    also bring a model runtime's libraries, so the\n"
    "                          agent can serve models (ward infer): xgboost\n"
    "                          (libxgboost and what it needs, about 8 MB)\n"
    "\n"
    "What runs (/cmd and /env in the image):\n"
    "  --cmd CMD               the command: a JSON array ('[\"/app/run\",\"-v\"]')\n"
    "                          or words split at spaces. Default: the OCI image's\n"
    "                          Entrypoint and Cmd, else the ward agent\n"
    "  --env K=V               environment (repeatable; after the image's own)\n"
    "\n"
    "Booting on Nitro hardware (without a kernel the image is sandbox-only):\n"
    "  --kernel F              the enclave kernel (bzImage, or Image for arm64)\n"
    "  --cmdline S             its command line\n"
    "  --nsm-module F          nsm.ko, loaded by ward's init before the command\n"
    "  --blobs DIR             nitro-cli's blobs layout: bzImage or Image,\n"
    "                          cmdline, nsm.ko (ward brings its own init)\n"
    "\n"
    "Other options:\n"
    "  --name N, --version V   image name and version in the metadata (default:\n"
    "                          the output's name, 1.0)\n"
    "  --signing-certificate PEM --private-key PEM\n"
    "                          sign the image (P-384 key); adds PCR8\n"
    "  --output-file F         where to write the image (appears only when\n"
    "                          complete)\n"
    "  -f, --force             replace F if it exists\n"
    "  --progress              progress bar even when stderr is not a terminal\n"
    "  -h, --help\n";

enum {
	OPT_ROOTFS = 256,
	OPT_OCI,
	OPT_APP,
	OPT_CMD,
	OPT_ENV,
	OPT_NO_WARD,
	OPT_RUNTIME,
	OPT_KERNEL,
	OPT_CMDLINE,
	OPT_NSM,
	OPT_BLOBS,
	OPT_NAME,
	OPT_VERSION,
	OPT_CERT,
	OPT_KEY,
	OPT_OUTPUT,
	OPT_PROGRESS,
};

#define MAX_ARGS 256
#define MAX_RUNTIMES 4

struct args {
	struct ward_enclave_spec spec;
	const char *cmd[MAX_ARGS];
	const char *env[MAX_ARGS];
	const char *runtimes[MAX_RUNTIMES];
	char *cmd_storage; /* words split from --cmd */
	json_t *cmd_json;
	const char *cert, *key, *blobs, *output;
	char kernel_path[4096], nsm_path[4096];
	struct ward_buf cmdline;
	bool progress;
};

static int
parse_cmd(struct args *a, const char *s)
{
	if (a->spec.cmd_len > 0)
		return ward_errf(WARD_EUSAGE, "--cmd given twice");
	if (s[0] == '[') {
		json_error_t err;
		size_t i;
		json_t *v;

		if ((a->cmd_json = json_loads(s, 0, &err)) == NULL ||
		    !json_is_array(a->cmd_json) ||
		    json_array_size(a->cmd_json) == 0 ||
		    json_array_size(a->cmd_json) > MAX_ARGS)
			return ward_errf(WARD_EUSAGE,
			    "--cmd: not a JSON array of 1 to %d strings",
			    MAX_ARGS);
		json_array_foreach(a->cmd_json, i, v)
		{
			if (!json_is_string(v))
				return ward_errf(WARD_EUSAGE,
				    "--cmd: element %zu is not a string", i);
			a->cmd[i] = json_string_value(v);
		}
		a->spec.cmd_len = json_array_size(a->cmd_json);
	} else {
		char *save = NULL, *w;

		if ((a->cmd_storage = strdup(s)) == NULL)
			return ward_enomem();
		for (w = strtok_r(a->cmd_storage, " \t", &save); w != NULL;
		     w = strtok_r(NULL, " \t", &save)) {
			if (a->spec.cmd_len == MAX_ARGS)
				return ward_errf(WARD_EUSAGE,
				    "--cmd: more than %d words", MAX_ARGS);
			a->cmd[a->spec.cmd_len++] = w;
		}
		if (a->spec.cmd_len == 0)
			return ward_errf(WARD_EUSAGE, "--cmd is empty");
	}
	a->spec.cmd = a->cmd;
	return 0;
}

/* nitro-cli's blobs layout (nitro.md §7.1): bzImage or Image, cmdline,
 * nsm.ko. Explicit flags win over the blobs. */
static int
apply_blobs(struct args *a)
{
	struct ward_buf line = {0};
	char path[4200];
	struct stat st;
	int r = 0;

	if (a->blobs == NULL)
		return 0;
	if (a->spec.kernel == NULL) {
		snprintf(a->kernel_path, sizeof(a->kernel_path), "%s/bzImage",
		    a->blobs);
		if (stat(a->kernel_path, &st) != 0) {
			snprintf(a->kernel_path, sizeof(a->kernel_path),
			    "%s/Image", a->blobs);
			if (stat(a->kernel_path, &st) != 0)
				return ward_errf(WARD_EUSAGE,
				    "--blobs %s: no bzImage or Image in it",
				    a->blobs);
			a->spec.arm64 = true;
		}
		a->spec.kernel = a->kernel_path;
	}
	if (a->spec.cmdline == NULL) {
		snprintf(path, sizeof(path), "%s/cmdline", a->blobs);
		if (stat(path, &st) == 0) {
			if ((r = ward_read_file(
			         path, WARD_EIF_CMDLINE_MAX, &line)) != 0)
				return r;
			/* nitro-cli trims it */
			while (line.len > 0 &&
			    (line.p[line.len - 1] == '\n' ||
			        line.p[line.len - 1] == ' ' ||
			        line.p[line.len - 1] == '\r' ||
			        line.p[line.len - 1] == '\t'))
				line.len--;
			size_t skip = 0;
			while (skip < line.len &&
			    (line.p[skip] == ' ' || line.p[skip] == '\t'))
				skip++;
			if ((r = ward_buf_append(&a->cmdline, line.p + skip,
			         line.len - skip)) == 0 &&
			    (r = ward_buf_put_u8(&a->cmdline, 0)) == 0)
				a->spec.cmdline = (const char *)a->cmdline.p;
			ward_buf_free(&line);
			if (r != 0)
				return r;
		}
	}
	if (a->spec.nsm_module == NULL) {
		snprintf(
		    a->nsm_path, sizeof(a->nsm_path), "%s/nsm.ko", a->blobs);
		if (stat(a->nsm_path, &st) == 0)
			a->spec.nsm_module = a->nsm_path;
	}
	return 0;
}

static int
parse(int argc, char **argv, struct args *a)
{
	static const struct option opts[] = {
	    {"rootfs", required_argument, NULL, OPT_ROOTFS},
	    {"oci-archive", required_argument, NULL, OPT_OCI},
	    {"app", required_argument, NULL, OPT_APP},
	    {"cmd", required_argument, NULL, OPT_CMD},
	    {"env", required_argument, NULL, OPT_ENV},
	    {"no-ward", no_argument, NULL, OPT_NO_WARD},
	    {"model-runtime", required_argument, NULL, OPT_RUNTIME},
	    {"kernel", required_argument, NULL, OPT_KERNEL},
	    {"cmdline", required_argument, NULL, OPT_CMDLINE},
	    {"nsm-module", required_argument, NULL, OPT_NSM},
	    {"blobs", required_argument, NULL, OPT_BLOBS},
	    {"name", required_argument, NULL, OPT_NAME},
	    {"version", required_argument, NULL, OPT_VERSION},
	    {"signing-certificate", required_argument, NULL, OPT_CERT},
	    {"private-key", required_argument, NULL, OPT_KEY},
	    {"output-file", required_argument, NULL, OPT_OUTPUT},
	    {"force", no_argument, NULL, 'f'},
	    {"progress", no_argument, NULL, OPT_PROGRESS},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int c, r;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":fh", opts, NULL)) != -1) {
		switch (c) {
		case OPT_ROOTFS:
			a->spec.rootfs = optarg;
			break;
		case OPT_OCI:
			a->spec.oci_archive = optarg;
			break;
		case OPT_APP:
			a->spec.app = optarg;
			break;
		case OPT_CMD:
			if ((r = parse_cmd(a, optarg)) != 0)
				return r;
			break;
		case OPT_ENV:
			if (a->spec.env_len == MAX_ARGS)
				return ward_errf(
				    WARD_EUSAGE, "at most %d --env", MAX_ARGS);
			a->env[a->spec.env_len++] = optarg;
			a->spec.env = a->env;
			break;
		case OPT_NO_WARD:
			a->spec.no_ward = true;
			break;
		case OPT_RUNTIME:
			if (a->spec.runtime_len == MAX_RUNTIMES)
				return ward_errf(WARD_EUSAGE,
				    "at most %d --model-runtime", MAX_RUNTIMES);
			a->runtimes[a->spec.runtime_len++] = optarg;
			a->spec.runtimes = a->runtimes;
			break;
		case OPT_KERNEL:
			a->spec.kernel = optarg;
			break;
		case OPT_CMDLINE:
			a->spec.cmdline = optarg;
			break;
		case OPT_NSM:
			a->spec.nsm_module = optarg;
			break;
		case OPT_BLOBS:
			a->blobs = optarg;
			break;
		case OPT_NAME:
			a->spec.name = optarg;
			break;
		case OPT_VERSION:
			a->spec.version = optarg;
			break;
		case OPT_CERT:
			a->cert = optarg;
			break;
		case OPT_KEY:
			a->key = optarg;
			break;
		case OPT_OUTPUT:
			a->output = optarg;
			break;
		case 'f':
			a->spec.overwrite = true;
			break;
		case OPT_PROGRESS:
			a->progress = true;
			break;
		case 'h':
			fputs(build_help, stdout);
			return 1;
		case ':':
			return ward_errf(
			    WARD_EUSAGE, "%s needs a value", argv[optind - 1]);
		default:
			return ward_errf(WARD_EUSAGE,
			    "unknown option %s (see ward build-enclave --help)",
			    argv[optind - 1]);
		}
	}
	if (optind != argc)
		return ward_errf(WARD_EUSAGE, "unexpected argument %s",
		    ward_quotes(argv[optind]));
	if (a->output == NULL)
		return ward_errf(WARD_EUSAGE, "--output-file is required");
	if ((a->cert == NULL) != (a->key == NULL))
		return ward_errf(WARD_EUSAGE,
		    "--signing-certificate and --private-key go together");
	return apply_blobs(a);
}

static int
measurements(const struct ward_eif_image *img, bool sandbox_only)
{
	char hex[WARD_PCR_LEN * 2 + 1];
	json_t *m = json_object(), *j = json_object();

	if (m == NULL || j == NULL) {
		json_decref(m);
		json_decref(j);
		return ward_enomem();
	}
	json_object_set_new(m, "HashAlgorithm", json_string("Sha384 { ... }"));
	ward_hex_encode(img->pcr0, WARD_PCR_LEN, hex);
	json_object_set_new(m, "PCR0", json_string(hex));
	ward_hex_encode(img->pcr1, WARD_PCR_LEN, hex);
	json_object_set_new(m, "PCR1", json_string(hex));
	ward_hex_encode(img->pcr2, WARD_PCR_LEN, hex);
	json_object_set_new(m, "PCR2", json_string(hex));
	if (img->is_signed) {
		ward_hex_encode(img->pcr8, WARD_PCR_LEN, hex);
		json_object_set_new(m, "PCR8", json_string(hex));
	}
	json_object_set_new(j, "Measurements", m);
	if (sandbox_only)
		json_object_set_new(j, "SandboxOnly", json_true());
	json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', stdout);
	json_decref(j);
	return 0;
}

int
cmd_build_enclave_main(int argc, char **argv)
{
	struct args a;
	struct ward_eif_image img;
	struct ward_buf cert = {0};
	struct ward_progress prog;
	int r;

	memset(&a, 0, sizeof(a));
	memset(&img, 0, sizeof(img));
	if ((r = parse(argc, argv, &a)) != 0) {
		if (r == 1)
			r = 0;
		goto out;
	}
	if (a.cert != NULL) {
		if ((r = ward_read_file(a.cert, 1 << 20, &cert)) != 0 ||
		    (r = ward_ec_load_private(
		         a.key, WARD_CURVE_P384, &a.spec.sign_key)) != 0)
			goto out;
		a.spec.sign_cert_pem = cert.p;
		a.spec.sign_cert_pem_len = cert.len;
	}
	fprintf(stderr, "Start building the Enclave Image...\n");
	if (a.spec.kernel == NULL)
		fprintf(stderr,
		    "ward build-enclave: no kernel given: this image runs only "
		    "in ward's sandbox runtime, not on Nitro hardware\n");
	ward_progress_init(&prog, "build-enclave", 0, a.progress);
	r = ward_build_enclave(&a.spec, a.output, &img, &prog);
	ward_progress_end(&prog);
	if (r != 0)
		goto out;
	fprintf(stderr, "Enclave Image successfully created.\n");
	r = measurements(&img, a.spec.kernel == NULL);
out:
	ward_eif_image_free(&img);
	ward_pkey_free(a.spec.sign_key);
	ward_buf_free(&cert);
	ward_buf_free(&a.cmdline);
	free(a.cmd_storage);
	json_decref(a.cmd_json);
	if (r != 0)
		return cli_fail("build-enclave", r);
	return 0;
}
