/*
 * agent.sh's key set-up, without the AWS CLI: create a KMS key on a
 * `ward kms serve` whose policy lets the account do everything except
 * kms:Decrypt, which only an enclave pinned later with `ward kms pin`
 * may do (the pin appends that statement). Credentials and region come
 * from the environment, as for any ward command.
 *
 *   agent_kms ENDPOINT ACCOUNT      prints the key ARN
 */
#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

#include "ward/kms.h"

int
main(int argc, char **argv)
{
	struct ward_kms_client_opts o = {0};
	struct ward_kms_client *kc = NULL;
	struct ward_kms_error e;
	json_t *req, *rs = NULL, *arn;
	char *policy = NULL;
	int r;

	if (argc != 3) {
		fprintf(stderr, "usage: agent_kms ENDPOINT ACCOUNT\n");
		return 2;
	}
	if (asprintf(&policy,
	        "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Sid\":\"Admin\","
	        "\"Effect\":\"Allow\",\"Principal\":{\"AWS\":"
	        "\"arn:aws:iam::%s:root\"},\"NotAction\":\"kms:Decrypt\","
	        "\"Resource\":\"*\"}]}",
	        argv[2]) < 0)
		return 1;
	o.endpoint_url = argv[1];
	if (ward_kms_client_new(&kc, &o) != 0) {
		fprintf(stderr, "agent_kms: %s\n", ward_errmsg());
		return 1;
	}
	req = json_pack("{s:s}", "Policy", policy);
	r = ward_kms_call(kc, "CreateKey", req, &rs, &e);
	json_decref(req);
	free(policy);
	if (r != 0) {
		fprintf(stderr, "agent_kms: %s\n", ward_errmsg());
		ward_kms_client_free(kc);
		return 1;
	}
	arn = json_object_get(json_object_get(rs, "KeyMetadata"), "Arn");
	if (!json_is_string(arn)) {
		fprintf(stderr, "agent_kms: CreateKey gave no ARN\n");
		r = 1;
	} else
		printf("%s\n", json_string_value(arn));
	json_decref(rs);
	ward_kms_client_free(kc);
	return r != 0;
}
