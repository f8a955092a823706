#!/bin/bash
# ward encrypt/decrypt with the KMS keyring against a real `ward kms
# serve`, with AWS's credential and endpoint conventions: strict and
# discovery decryption, two keys in two accounts, refusals reported with
# KMS's error and no output left behind.
#   kms-envelope.sh WARD WORKDIR
set -u
WARD=$1 WORK=$2
LIB=$(cd "$(dirname "$0")" && pwd)/lib.sh
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK" || exit 1
. "$LIB"
if [ ! -x /usr/bin/aws ]; then
	echo "SKIP: Debian's awscli is not installed (scripts/install-deps installs it)"
	exit 77
fi
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; }
trap cleanup EXIT
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
export AWS_EC2_METADATA_DISABLED=true AWS_PAGER= AWS_MAX_ATTEMPTS=1
unset AWS_PROFILE AWS_ENDPOINT_URL AWS_ENDPOINT_URL_KMS AWS_SESSION_TOKEN

"$WARD" kms init --state st >vendor.json || exit 1
"$WARD" kms add-principal --state st --name hospital >hospital.json || exit 1
"$WARD" kms serve --state st --listen 127.0.0.1:0 >ready 2>serve.log &
pid=$!
for _ in $(seq 100); do [ -s ready ] && break; sleep 0.05; done
port=$(sed -n 's/.*"tcp:127\.0\.0\.1:\([0-9]*\)".*/\1/p' ready)
[ -n "$port" ] || { echo "FAIL  server did not start"; cat serve.log; exit 1; }
URL=http://127.0.0.1:$port
creds() { # creds WHO: export WHO's credentials
	AWS_ACCESS_KEY_ID=$(jget "$1.json" j.AccessKeyId)
	AWS_SECRET_ACCESS_KEY=$(jget "$1.json" j.SecretAccessKey)
	AWS_REGION=$(jget "$1.json" j.Region)
	export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION
}
AWS="/usr/bin/aws --endpoint-url $URL --output text"
VACCT=$(jget vendor.json j.AccountId)
HACCT=$(jget hospital.json j.AccountId)

creds vendor
vkey=$($AWS kms create-key --query KeyMetadata.Arn) || exit 1
$AWS kms create-alias --alias-name alias/model --target-key-id "$vkey" || exit 1
creds hospital
cat >hpolicy.json <<JSON
{"Version":"2012-10-17","Statement":[
 {"Sid":"own","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::$HACCT:root"},"Action":"kms:*","Resource":"*"},
 {"Sid":"vendor may encrypt","Effect":"Allow","Principal":{"AWS":"$VACCT"},"Action":["kms:Encrypt","kms:GenerateDataKey"],"Resource":"*"}]}
JSON
hkey=$($AWS kms create-key --policy file://hpolicy.json --query KeyMetadata.Arn) || exit 1

head -c 100000 /dev/urandom >model.bin
creds vendor
expect 0 "encrypt under an alias (--endpoint-url)" \
	"$WARD" encrypt --key-id alias/model --endpoint-url "$URL" -o m.ward model.bin
if grep -q "$vkey" m.ward; then ok "the data key names the key ARN (ESDK aws-kms keyring)"; else bad "no key ARN in the message"; fi
expect 0 "decrypt by discovery (AWS_ENDPOINT_URL_KMS)" \
	env AWS_ENDPOINT_URL_KMS="$URL" "$WARD" decrypt -o m.out m.ward
same model.bin m.out "discovery decrypt gives the plaintext back"
expect 0 "decrypt strict with the key ARN" \
	"$WARD" decrypt --key-id "$vkey" --endpoint-url "$URL" -o m2.out m.ward
same model.bin m2.out "strict decrypt gives the plaintext back"
expect 6 "decrypt strict naming another key: no given key opens it" \
	"$WARD" decrypt --key-id "$hkey" --endpoint-url "$URL" -o m3.out m.ward
absent m3.out "nothing written"
expect 5 "a wrong secret key: refused" \
	env AWS_SECRET_ACCESS_KEY=wrong "$WARD" decrypt --endpoint-url "$URL" -o m5.out m.ward
has InvalidSignatureException "it says InvalidSignatureException" err.log
absent m5.out "nothing written"

creds hospital
expect 5 "another account without a policy statement: refused" \
	"$WARD" decrypt --endpoint-url "$URL" -o m4.out m.ward
has AccessDeniedException "it says AccessDeniedException" err.log
absent m4.out "nothing written after a refusal"

# Two keys in two accounts (the vendor may encrypt under the hospital's
# key, its policy says); each opens it with its own.
creds vendor
expect 0 "encrypt under the vendor's and the hospital's key" \
	"$WARD" encrypt --key-id "$vkey" --key-id "$hkey" --endpoint-url "$URL" -o two.ward model.bin
creds hospital
expect 0 "the hospital decrypts with its own key (strict)" \
	"$WARD" decrypt --key-id "$hkey" --endpoint-url "$URL" -o two.h two.ward
same model.bin two.h "the hospital gets the plaintext"
creds vendor
expect 5 "the vendor may not decrypt under the hospital's key" \
	"$WARD" decrypt --key-id "$hkey" --endpoint-url "$URL" -o two.v two.ward
absent two.v "nothing written"

kill "$pid" && wait "$pid"
pid=
expect 3 "the key service is down: an I/O error" \
	"$WARD" decrypt --endpoint-url "$URL" -o m6.out m.ward
absent m6.out "nothing written"
finish kms-envelope
