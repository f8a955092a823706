/* ward describe-eif, ward pcr: nitro-cli's commands of the same names
 * (nitro.md §7.3), with the same JSON on stdout; the work is in
 * src/eif. */
#include <getopt.h>
#include <jansson.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "ward/eif.h"

static const char describe_help[] =
    "usage: ward describe-eif --eif-path FILE\n"
    "\n"
    "Read an enclave image file (EIF v4, as nitro-cli build-enclave or ward\n"
    "build-enclave writes it), check its structure and CRC, measure it and\n"
    "print what nitro-cli describe-eif prints, as JSON on standard output:\n"
    "EifVersion; Measurements (HashAlgorithm, PCR0 of the whole image, PCR1\n"
    "of kernel, cmdline and bootstrap ramdisk, PCR2 of the application\n"
    "ramdisks, PCR8 of the signing certificate when signed); IsSigned; for\n"
    "signed images SigningCertificate (IssuerName as an object of the issuer's\n"
    "name parts, Algorithm, NotBefore, NotAfter, Signature); CheckCRC;\n"
    "SignatureCheck when signed; ImageName, ImageVersion and Metadata from\n"
    "the image's metadata section.\n"
    "\n"
    "  --eif-path FILE   the image\n"
    "  -h, --help\n"
    "\n"
    "SignatureCheck is true when the COSE signature verifies with the\n"
    "certificate's P-384 key, the certificate is valid now and the signed\n"
    "payload names this image's PCR0.\n"
    "\n"
    "Exit status 0: well formed, CRC correct and, if signed, the signature\n"
    "checks. 5: the CRC or the signature check failed (the JSON is still\n"
    "printed, with CheckCRC or SignatureCheck false). 4: not a well-formed\n"
    "EIF (nothing is printed on stdout; the reason goes to stderr). 8: an\n"
    "EIF version other than 4 or a signature other than ES384. 9: a section\n"
    "over its size limit. 3: the file cannot be read. 2: bad usage.\n";

static const char pcr_help[] =
    "usage: ward pcr --input FILE\n"
    "       ward pcr --signing-certificate PEM\n"
    "\n"
    "Print a measurement as nitro-cli pcr does: SHA-384 over 48 zero bytes\n"
    "and the SHA-384 of the input, in hex, as JSON on standard output.\n"
    "\n"
    "  --input FILE                the PCR of the file's bytes: {\"PCR\": hex}\n"
    "  --signing-certificate PEM   the PCR of the certificate's DER, i.e.\n"
    "                              PCR8 of an image signed with it:\n"
    "                              {\"PCR8\": hex} (PEM or DER input)\n"
    "  -h, --help\n"
    "\n"
    "Exit status 0 on success; 3: the file cannot be read; 4: not a\n"
    "certificate; 2: bad usage.\n";

/* nitro-cli prints format!("{:?}", Sha384::new()). */
#define HASH_ALGORITHM "Sha384 { ... }"
#define NAME_PARTS_MAX 32

static int
set_pcr(json_t *o, const char *key, const uint8_t v[WARD_PCR_LEN])
{
	char hex[ward_hex_len(WARD_PCR_LEN) + 1];

	ward_hex_encode(v, WARD_PCR_LEN, hex);
	return json_object_set_new(o, key, json_string(hex));
}

static json_t *
measurements_json(const struct ward_eif_image *img)
{
	json_t *m = json_object();

	if (m == NULL ||
	    json_object_set_new(
	        m, "HashAlgorithm", json_string(HASH_ALGORITHM)) != 0 ||
	    set_pcr(m, "PCR0", img->pcr0) != 0 ||
	    set_pcr(m, "PCR1", img->pcr1) != 0 ||
	    set_pcr(m, "PCR2", img->pcr2) != 0 ||
	    (img->is_signed && set_pcr(m, "PCR8", img->pcr8) != 0)) {
		json_decref(m);
		return NULL;
	}
	return m;
}

struct name_part {
	char key[80];
	char *value;
};

static int
cmp_part(const void *a, const void *b)
{
	return strcmp(((const struct name_part *)a)->key,
	    ((const struct name_part *)b)->key);
}

/* The issuer as nitro-cli shows it: a map (sorted, as a BTreeMap) from
 * each name entry's long OID name ("commonName") to its value. */
static json_t *
issuer_json(const X509_NAME *nm)
{
	struct name_part parts[NAME_PARTS_MAX] = {0};
	int n = X509_NAME_entry_count(nm);
	size_t np = 0;
	json_t *o = json_object();

	for (int i = 0; i < n && np < NAME_PARTS_MAX; i++) {
		const X509_NAME_ENTRY *e = X509_NAME_get_entry(nm, i);
		unsigned char *u = NULL;

		if (OBJ_obj2txt(parts[np].key, sizeof(parts[np].key),
		        X509_NAME_ENTRY_get_object(e), 0) <= 0 ||
		    ASN1_STRING_to_UTF8(&u, X509_NAME_ENTRY_get_data(e)) < 0)
			continue;
		parts[np++].value = (char *)u;
	}
	qsort(parts, np, sizeof(parts[0]), cmp_part);
	for (size_t i = 0; i < np; i++) {
		if (o != NULL)
			json_object_set_new(
			    o, parts[i].key, json_string(parts[i].value));
		OPENSSL_free(parts[i].value);
	}
	return o;
}

/* SigningCertificate as nitro-cli's get_certificate_info fills it: times
 * as OpenSSL prints them ("Oct 28 13:28:05 2019 GMT"), the signature
 * algorithm's long name, the signature bytes as XX:XX:... */
static json_t *
certificate_json(const struct ward_buf *pem)
{
	const ASN1_BIT_STRING *sig;
	const X509_ALGOR *alg;
	const ASN1_OBJECT *oid;
	BIO *bio = NULL, *mem = NULL;
	X509 *x = NULL;
	json_t *o = NULL;
	char algname[80], nb[64] = "", na[64] = "", *hex = NULL, *p;
	long len;
	int siglen;

	if ((bio = BIO_new_mem_buf(pem->p, (int)pem->len)) == NULL ||
	    (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) == NULL ||
	    (mem = BIO_new(BIO_s_mem())) == NULL)
		goto out;
	X509_get0_signature(&sig, &alg, x);
	X509_ALGOR_get0(&oid, NULL, NULL, alg);
	OBJ_obj2txt(algname, sizeof(algname), oid, 0);
	if (ASN1_TIME_print(mem, X509_get0_notBefore(x)) == 1 &&
	    (len = BIO_get_mem_data(mem, &p)) > 0 && len < (long)sizeof(nb))
		memcpy(nb, p, (size_t)len);
	(void)BIO_reset(mem);
	if (ASN1_TIME_print(mem, X509_get0_notAfter(x)) == 1 &&
	    (len = BIO_get_mem_data(mem, &p)) > 0 && len < (long)sizeof(na))
		memcpy(na, p, (size_t)len);
	siglen = ASN1_STRING_length(sig);
	if ((hex = malloc((size_t)siglen * 3 + 1)) == NULL)
		goto out;
	hex[0] = '\0';
	for (int i = 0; i < siglen; i++)
		snprintf(hex + 3 * i, 4, i + 1 < siglen ? "%02X:" : "%02X",
		    ASN1_STRING_get0_data(sig)[i]);
	o = json_object();
	if (o != NULL) {
		json_object_set_new(
		    o, "IssuerName", issuer_json(X509_get_issuer_name(x)));
		json_object_set_new(o, "Algorithm", json_string(algname));
		json_object_set_new(o, "NotBefore", json_string(nb));
		json_object_set_new(o, "NotAfter", json_string(na));
		json_object_set_new(o, "Signature", json_string(hex));
	}
out:
	ERR_clear_error();
	free(hex);
	X509_free(x);
	BIO_free(bio);
	BIO_free(mem);
	return o;
}

static void
copy_field(json_t *to, const char *key, json_t *from, const char *from_key)
{
	json_t *v = json_object_get(from, from_key);

	if (v != NULL)
		json_object_set(to, key, v);
}

/* ImageName, ImageVersion and Metadata from EifIdentityInfo, laid out as
 * nitro-cli's MetadataDescribeInfo: the build fields, DockerInfo, then
 * the custom metadata's keys flattened in. */
static void
metadata_json(json_t *o, const struct ward_eif_image *img)
{
	json_t *meta, *md, *build, *custom;

	meta = json_loadb((const char *)img->metadata.p, img->metadata.len,
	    JSON_REJECT_DUPLICATES, NULL);
	if (meta == NULL || !json_is_object(meta) ||
	    (md = json_object()) == NULL) {
		json_decref(meta);
		return;
	}
	copy_field(o, "ImageName", meta, "ImageName");
	copy_field(o, "ImageVersion", meta, "ImageVersion");
	build = json_object_get(meta, "BuildMetadata");
	copy_field(md, "BuildTime", build, "BuildTime");
	copy_field(md, "BuildTool", build, "BuildTool");
	copy_field(md, "BuildToolVersion", build, "BuildToolVersion");
	copy_field(md, "OperatingSystem", build, "OperatingSystem");
	copy_field(md, "KernelVersion", build, "KernelVersion");
	copy_field(md, "DockerInfo", meta, "DockerInfo");
	custom = json_object_get(meta, "CustomMetadata");
	if (json_is_object(custom))
		json_object_update(md, custom);
	else if (custom != NULL && !json_is_null(custom))
		json_object_set(md, "CustomMetadata", custom);
	json_object_set_new(o, "Metadata", md);
	json_decref(meta);
}

static json_t *
describe_json(const struct ward_eif_image *img)
{
	json_t *o = json_object(), *m = measurements_json(img);

	if (o == NULL || m == NULL) {
		json_decref(o);
		json_decref(m);
		return NULL;
	}
	json_object_set_new(o, "EifVersion", json_integer(img->version));
	json_object_set_new(o, "Measurements", m);
	json_object_set_new(o, "IsSigned", json_boolean(img->is_signed));
	if (img->is_signed)
		json_object_set_new(o, "SigningCertificate",
		    certificate_json(&img->signing_cert_pem));
	json_object_set_new(
	    o, "CheckCRC", json_boolean(img->crc_header == img->crc_computed));
	if (img->is_signed)
		json_object_set_new(
		    o, "SignatureCheck", json_boolean(img->signature_ok));
	metadata_json(o, img);
	return o;
}

static int
print_json(json_t *j)
{
	if (j == NULL)
		return ward_enomem();
	if (json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0 ||
	    fputc('\n', stdout) == EOF || fflush(stdout) != 0)
		return ward_errf(WARD_EIO, "writing standard output failed");
	return 0;
}

enum {
	OPT_EIF_PATH = 256,
	OPT_INPUT,
	OPT_SIGNING_CERT,
};

int
cmd_describe_eif_main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"eif-path", required_argument, NULL, OPT_EIF_PATH},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *path = NULL;
	struct ward_eif_image img = {0};
	struct ward_progress prog;
	struct stat st;
	json_t *j = NULL;
	int c, r;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_EIF_PATH:
			path = optarg;
			break;
		case 'h':
			fputs(describe_help, stdout);
			return 0;
		case ':':
			return cli_fail("describe-eif",
			    ward_errf(WARD_EUSAGE, "%s needs a value",
			        argv[optind - 1]));
		default:
			return cli_fail("describe-eif",
			    ward_errf(WARD_EUSAGE,
			        "unknown option %s (see ward describe-eif "
			        "--help)",
			        argv[optind - 1]));
		}
	}
	if (optind != argc)
		return cli_fail("describe-eif",
		    ward_errf(WARD_EUSAGE, "unexpected argument %s",
		        ward_quotes(argv[optind])));
	if (path == NULL)
		return cli_fail("describe-eif",
		    ward_errf(WARD_EUSAGE,
		        "--eif-path FILE is required (see ward describe-eif "
		        "--help)"));
	ward_progress_init(&prog, "reading",
	    stat(path, &st) == 0 ? (uint64_t)st.st_size : 0, false);
	r = ward_eif_read(path, &img, &prog);
	ward_progress_end(&prog);
	if (r != 0)
		goto out;
	if ((r = print_json(j = describe_json(&img))) != 0)
		goto out;
	if (img.crc_header != img.crc_computed)
		r = ward_errf(WARD_EAUTH,
		    "%s: CRC mismatch: the header says %08x, the image's CRC is "
		    "%08x (corrupted or altered)",
		    path, img.crc_header, img.crc_computed);
	else if (img.is_signed && !img.signature_ok)
		r = ward_errf(WARD_EAUTH,
		    "%s: the signature check failed (the COSE signature, the "
		    "certificate's validity or the signed PCR0)",
		    path);
out:
	json_decref(j);
	ward_eif_image_free(&img);
	if (r != 0)
		return cli_fail("describe-eif", r);
	return 0;
}

int
cmd_pcr_main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"input", required_argument, NULL, OPT_INPUT},
	    {"signing-certificate", required_argument, NULL, OPT_SIGNING_CERT},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *input = NULL, *cert = NULL;
	uint8_t v[WARD_PCR_LEN];
	json_t *j = NULL;
	int c, r;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_INPUT:
			input = optarg;
			break;
		case OPT_SIGNING_CERT:
			cert = optarg;
			break;
		case 'h':
			fputs(pcr_help, stdout);
			return 0;
		case ':':
			return cli_fail("pcr",
			    ward_errf(WARD_EUSAGE, "%s needs a value",
			        argv[optind - 1]));
		default:
			return cli_fail("pcr",
			    ward_errf(WARD_EUSAGE,
			        "unknown option %s (see ward pcr --help)",
			        argv[optind - 1]));
		}
	}
	if (optind != argc)
		return cli_fail("pcr",
		    ward_errf(WARD_EUSAGE, "unexpected argument %s",
		        ward_quotes(argv[optind])));
	if ((input == NULL) == (cert == NULL))
		return cli_fail("pcr",
		    ward_errf(WARD_EUSAGE,
		        "give exactly one of --input and --signing-certificate "
		        "(see ward pcr --help)"));
	if (input != NULL)
		r = ward_pcr_file(input, v);
	else
		r = ward_pcr_certificate(cert, v);
	if (r != 0)
		goto out;
	if ((j = json_object()) == NULL) {
		r = ward_enomem();
		goto out;
	}
	set_pcr(j, input != NULL ? "PCR" : "PCR8", v);
	r = print_json(j);
out:
	json_decref(j);
	if (r != 0)
		return cli_fail("pcr", r);
	return 0;
}
