#!/usr/bin/env bash
# ward kms serve driven end to end by real clients: Debian's AWS CLI
# (/usr/bin/aws, awscli 2.9.19) for every KMS operation the server
# implements, key policies, grants, cross-account access, key states
# (kms-and-esdk.md §1.5) and the SigV4 errors; curl for raw-HTTP abuse
# (unsigned, malformed, oversized and slow requests), with a small SigV4
# signer written here in bash + openssl (independent of the library's);
# then the audit log (verify, no secrets, tamper detection), a kill -9 in
# the middle of a request stream (durability, sqlite integrity) and a
# graceful SIGTERM shutdown.
# usage: awscli-kms.sh WARD_BIN WORKDIR
set -uo pipefail
WARD=$(realpath "$1")
WORK=$2
. "$(cd "$(dirname "$0")" && pwd)/../integration/lib.sh"
AWS=/usr/bin/aws
if [ ! -x "$AWS" ]; then
	echo "SKIP: Debian's awscli is not installed (scripts/install-deps installs it)"
	exit 77
fi
for tool in curl openssl node sqlite3 base64 sha256sum; do
	if ! command -v "$tool" >/dev/null; then
		echo "SKIP: $tool is not installed (scripts/install-deps installs it)"
		exit 77
	fi
done
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK" || exit 1
: >aws-config
: >aws-credentials
export AWS_CONFIG_FILE=$PWD/aws-config
export AWS_SHARED_CREDENTIALS_FILE=$PWD/aws-credentials
export AWS_PAGER="" AWS_EC2_METADATA_DISABLED=true
export AWS_RETRY_MODE=standard AWS_MAX_ATTEMPTS=1
unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_ENDPOINT_URL AWS_ENDPOINT_URL_KMS \
	AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_CA_BUNDLE

REQS=0     # requests this script sent to the server (a lower bound)
SPID=""    # the servers this script started
SPID2=""
LOOPS=""   # the crash test's client loops
cleanup() {
	local p
	for p in $LOOPS $SPID $SPID2; do
		kill "$p" 2>/dev/null
	done
	wait 2>/dev/null
}
trap cleanup EXIT
trap 'exit 143' TERM INT

# start_server STATE OUTPREFIX: run ward kms serve in the background, wait
# for its ready line; sets PID_OUT and PORT_OUT.
start_server() {
	local state=$1 o=$2 i
	"$WARD" kms serve --state "$state" --listen 127.0.0.1:0 \
		>"$o.out" 2>"$o.err" &
	PID_OUT=$!
	PORT_OUT=""
	for i in $(seq 150); do
		PORT_OUT=$(sed -n 's/.*"Listen": *"tcp:127\.0\.0\.1:\([0-9]*\)".*/\1/p' "$o.out")
		[ -n "$PORT_OUT" ] && return 0
		kill -0 "$PID_OUT" 2>/dev/null || break
		sleep 0.1
	done
	return 1
}

# wait_exit PID SECONDS: wait for PID (a child) to exit; its status in EXIT_OUT
wait_exit() {
	local pid=$1 i
	for i in $(seq $(($2 * 10))); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		EXIT_OUT=timeout
		kill -9 "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		return 1
	fi
	wait "$pid"
	EXIT_OUT=$?
}

# --- clients ---------------------------------------------------------------
# kms ARGS...: the AWS CLI as $AK/$SK (and $TOK when set)
kms() {
	if [ -n "${TOK:-}" ]; then
		AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY=$SK AWS_SESSION_TOKEN=$TOK \
			"$AWS" --endpoint-url "http://127.0.0.1:$PORT" --region "$REGION" \
			--output json kms "$@"
	else
		AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY=$SK \
			"$AWS" --endpoint-url "http://127.0.0.1:$PORT" --region "$REGION" \
			--output json kms "$@"
	fi
}
as_bob() { AK=$BOB_AK SK=$BOB_SK TOK="" "$@"; }
as_carol() { AK=$CAROL_AK SK=$CAROL_SK TOK="" "$@"; }

# run NAME CMD...: a call that must succeed (stdout in out.log)
run() {
	local name=$1
	shift
	REQS=$((REQS + 1))
	expect 0 "$name" "$@"
}
# awserr NAME EXCEPTION CMD...: the CLI exits 254 and prints
# "An error occurred (EXCEPTION)"; EXCEPTION may be A|B where AWS
# documents either
awserr() {
	local name=$1 exc=$2 got
	shift 2
	REQS=$((REQS + 1))
	"$@" >out.log 2>err.log
	got=$?
	if [ "$got" -eq 254 ] && grep -qE "An error occurred \(($exc)\)" err.log; then
		ok "$name: $exc (exit 254)"
	else
		bad "$name: exit $got, expected 254 with $exc"
		sed 's/^/      /' err.log | head -5
	fi
}

# SigV4 (kms-and-esdk.md §2.1) in bash + openssl, to send bodies the CLI
# cannot produce. hmac KEYHEX DATA -> hex
hmac() { printf '%s' "$2" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$1" -r | cut -d' ' -f1; }
sha256hex() { sha256sum | cut -d' ' -f1; }
# raw TARGET BODYFILE [CURL ARGS...]: POST signed as $AK/$SK/$TOK (dated
# $AMZDATE when set; X-Amz-Target left out of the signature when
# $UNSIGNED_TARGET is set); the response body in ${RAWOUT:-out.log}, the
# status in HTTP. Headers in CURL ARGS are sent unsigned.
raw() {
	local target=$1 body=$2 amz d ph creq sts k tokh="" signed tgth th=()
	shift 2
	amz=${AMZDATE:-$(date -u +%Y%m%dT%H%M%SZ)}
	d=${amz:0:8}
	ph=$(sha256hex <"$body")
	signed="content-type;host;x-amz-date"
	if [ -n "${TOK:-}" ]; then
		tokh=$'\n'"x-amz-security-token:$TOK"
		signed="$signed;x-amz-security-token"
		th=(-H "X-Amz-Security-Token: $TOK")
	fi
	tgth=$'\n'"x-amz-target:$target"
	if [ -n "${UNSIGNED_TARGET:-}" ]; then tgth=""; else signed="$signed;x-amz-target"; fi
	creq="POST
/

content-type:application/x-amz-json-1.1
host:127.0.0.1:$PORT
x-amz-date:$amz$tokh$tgth

$signed
$ph"
	sts="AWS4-HMAC-SHA256
$amz
$d/$REGION/kms/aws4_request
$(printf '%s' "$creq" | sha256hex)"
	k=$(printf 'AWS4%s' "$SK" | od -An -v -tx1 | tr -d ' \n')
	k=$(hmac "$k" "$d")
	k=$(hmac "$k" "$REGION")
	k=$(hmac "$k" kms)
	k=$(hmac "$k" aws4_request)
	HTTP=$(curl -sS -o "${RAWOUT:-out.log}" -w '%{http_code}' --max-time 20 \
		-H "Content-Type: application/x-amz-json-1.1" \
		-H "X-Amz-Date: $amz" -H "X-Amz-Target: $target" \
		"${th[@]}" \
		-H "Authorization: AWS4-HMAC-SHA256 Credential=$AK/$d/$REGION/kms/aws4_request, SignedHeaders=$signed, Signature=$(hmac "$k" "$sts")" \
		--data-binary @"$body" "$@" "http://127.0.0.1:$PORT/" 2>curl.err)
	echo >>"${RAWOUT:-out.log}"
}
# rawjson NAME TARGET JSON STATUS TYPE: a signed request whose answer is
# STATUS with {"__type": TYPE} (TYPE "" for a success)
rawjson() {
	local name=$1 target=$2 status=$4 type=$5
	printf '%s' "$3" >body.json
	REQS=$((REQS + 1))
	raw "$target" body.json
	if [ "$HTTP" = "$status" ]; then ok "$name: HTTP $HTTP"; else
		bad "$name: HTTP $HTTP, expected $status"
		sed 's/^/      /' out.log curl.err | head -5
	fi
	[ -n "$type" ] && json "$name: __type $type" "j.__type==='$type' && typeof j.message==='string'"
}
# alive NAME: the server still answers a good (signed) request
alive() {
	printf '{}' >alive.json
	REQS=$((REQS + 1))
	RAWOUT=alive.out raw TrentService.ListKeys alive.json
	if [ "$HTTP" = 200 ] && grep -q '"Keys"' alive.out; then ok "server answers after $1"; else
		bad "server does not answer after $1 (HTTP $HTTP)"
	fi
}
b64() { base64 -w0 "$@"; }
# blob FILE: the CiphertextBlob of out.log, decoded into FILE
blob() { jget out.log 'j.CiphertextBlob' | base64 -d >"$1"; }

# --- state and principals --------------------------------------------------
START=$SECONDS
expect 0 "kms init" "$WARD" kms init --state st
cp out.log init.json
json "init prints the admin's credentials" \
	"/^\d{12}$/.test(j.AccountId) && /^AKIA/.test(j.AccessKeyId) && j.SecretAccessKey.length>=40 && j.Arn==='arn:aws:iam::'+j.AccountId+':user/admin'"
ACCT=$(jget init.json j.AccountId)
ADMIN_ARN=$(jget init.json j.Arn)
REGION=$(jget init.json j.Region)
AK=$(jget init.json j.AccessKeyId)
SK=$(jget init.json j.SecretAccessKey)
TOK=""
expect 0 "add-principal bob (same account)" "$WARD" kms add-principal --state st --account "$ACCT" --name bob
cp out.log bob.json
json "bob is in the admin's account" "j.AccountId==='$ACCT' && j.Arn==='arn:aws:iam::$ACCT:user/bob'"
BOB_AK=$(jget bob.json j.AccessKeyId)
BOB_SK=$(jget bob.json j.SecretAccessKey)
BOB_ARN=$(jget bob.json j.Arn)
expect 0 "add-principal carol (a new account)" "$WARD" kms add-principal --state st --name carol
cp out.log carol.json
json "carol has an account of her own" "j.AccountId!=='$ACCT' && /^\d{12}$/.test(j.AccountId)"
CAROL_AK=$(jget carol.json j.AccessKeyId)
CAROL_SK=$(jget carol.json j.SecretAccessKey)
CAROL_ARN=$(jget carol.json j.Arn)
CAROL_ACCT=$(jget carol.json j.AccountId)
expect 0 "add-principal --session" "$WARD" kms add-principal --state st --account "$ACCT" --name temp --session
cp out.log temp.json
json "--session prints a SessionToken" "/^ASIA/.test(j.AccessKeyId) && typeof j.SessionToken==='string' && j.SessionToken.length>=16"
TMP_AK=$(jget temp.json j.AccessKeyId)
TMP_SK=$(jget temp.json j.SecretAccessKey)
TMP_TOK=$(jget temp.json j.SessionToken)

if ! start_server st serve; then
	bad "kms serve did not print its ready line"
	sed 's/^/      /' serve.err | head
	finish awscli-kms
	exit 1
fi
SPID=$PID_OUT
PORT=$PORT_OUT
ok "kms serve is listening on 127.0.0.1:$PORT"
MODEL=/usr/lib/python3/dist-packages/awscli/botocore/data/kms/2014-11-01/service-2.json
"$AWS" --version 2>&1 | sed 's/^/      /'

# --- keys ------------------------------------------------------------------
run "create-key with description and tags" kms create-key \
	--description "awscli interop key" \
	--tags TagKey=team,TagValue=blue TagKey=env,TagValue=test
json "CreateKey KeyMetadata" "(m=>m.KeyState==='Enabled' && m.Enabled===true && m.Description==='awscli interop key' && m.AWSAccountId==='$ACCT' && m.Arn==='arn:aws:kms:$REGION:$ACCT:key/'+m.KeyId && m.KeySpec==='SYMMETRIC_DEFAULT' && m.KeyUsage==='ENCRYPT_DECRYPT' && m.KeyManager==='CUSTOMER')(j.KeyMetadata)"
K1=$(jget out.log j.KeyMetadata.KeyId)
K1ARN=$(jget out.log j.KeyMetadata.Arn)
run "create-key (a second key)" kms create-key
K2=$(jget out.log j.KeyMetadata.KeyId)
K2ARN=$(jget out.log j.KeyMetadata.Arn)
cat >admin-only.json <<EOF
{"Version":"2012-10-17","Statement":[{"Sid":"admin only","Effect":"Allow",
 "Principal":{"AWS":"$ADMIN_ARN"},"Action":"kms:*","Resource":"*"}]}
EOF
run "create-key with a custom policy" kms create-key --policy file://admin-only.json --description "admin only"
K3=$(jget out.log j.KeyMetadata.KeyId)
cat >bob-only.json <<EOF
{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
 "Principal":{"AWS":"$BOB_ARN"},"Action":"kms:*","Resource":"*"}]}
EOF
awserr "create-key with a policy that locks the caller out" MalformedPolicyDocumentException \
	kms create-key --policy file://bob-only.json
run "create-key (for the lockout check)" kms create-key
K4=$(jget out.log j.KeyMetadata.KeyId)

run "describe-key by key id" kms describe-key --key-id "$K1"
json "describe-key by id: the key" "j.KeyMetadata.Arn==='$K1ARN' && j.KeyMetadata.Description==='awscli interop key'"
run "describe-key by key ARN" kms describe-key --key-id "$K1ARN"
json "describe-key by ARN: the key" "j.KeyMetadata.KeyId==='$K1'"

# list-keys: the CLI's paginator (--max-items/--starting-token) and the raw
# Limit/Marker (--no-paginate)
run "list-keys" kms list-keys
json "list-keys: the 4 keys of this account, no other" "j.Keys.length===4 && ['$K1','$K2','$K3','$K4'].every(k=>j.Keys.some(x=>x.KeyId===k && x.KeyArn.endsWith(':key/'+k)))"
run "list-keys --limit 1 --no-paginate" kms list-keys --limit 1 --no-paginate
json "list-keys --limit 1: one key, Truncated, NextMarker" "j.Keys.length===1 && j.Truncated===true && typeof j.NextMarker==='string'"
FIRST=$(jget out.log 'j.Keys[0].KeyId')
MARKER=$(jget out.log j.NextMarker)
run "list-keys --marker" kms list-keys --limit 3 --no-paginate --marker "$MARKER"
json "list-keys --marker: the other 3, not truncated" "j.Keys.length===3 && !j.Keys.some(x=>x.KeyId==='$FIRST') && j.Truncated===false"
run "list-keys --max-items 1" kms list-keys --max-items 1 --page-size 1
json "list-keys --max-items 1: NextToken" "j.Keys.length===1 && typeof j.NextToken==='string'"
NT=$(jget out.log j.NextToken)
FIRST=$(jget out.log 'j.Keys[0].KeyId')
run "list-keys --starting-token" kms list-keys --starting-token "$NT" --page-size 2
json "list-keys --starting-token: the rest (paged by 2)" "j.Keys.length===3 && !j.Keys.some(x=>x.KeyId==='$FIRST')"

# --- aliases ---------------------------------------------------------------
run "create-alias alias/awscli-a -> K1" kms create-alias --alias-name alias/awscli-a --target-key-id "$K1"
run "create-alias alias/awscli-b -> K1 (by ARN)" kms create-alias --alias-name alias/awscli-b --target-key-id "$K1ARN"
awserr "create-alias of an existing name" AlreadyExistsException kms create-alias --alias-name alias/awscli-a --target-key-id "$K2"
awserr "create-alias alias/aws/... (reserved)" NotAuthorizedException kms create-alias --alias-name alias/aws/mine --target-key-id "$K2"
run "describe-key by alias name" kms describe-key --key-id alias/awscli-a
json "describe-key by alias: the key" "j.KeyMetadata.KeyId==='$K1'"
run "describe-key by alias ARN" kms describe-key --key-id "arn:aws:kms:$REGION:$ACCT:alias/awscli-a"
json "describe-key by alias ARN: the key" "j.KeyMetadata.KeyId==='$K1'"
run "update-alias alias/awscli-b -> K2" kms update-alias --alias-name alias/awscli-b --target-key-id "$K2"
run "list-aliases --key-id K2" kms list-aliases --key-id "$K2"
json "list-aliases --key-id: only K2's alias" "j.Aliases.length===1 && j.Aliases[0].AliasName==='alias/awscli-b' && j.Aliases[0].TargetKeyId==='$K2' && j.Aliases[0].AliasArn==='arn:aws:kms:$REGION:$ACCT:alias/awscli-b'"
run "list-aliases" kms list-aliases
json "list-aliases: both aliases" "['alias/awscli-a','alias/awscli-b'].every(n=>j.Aliases.some(a=>a.AliasName===n))"
run "delete-alias alias/awscli-b" kms delete-alias --alias-name alias/awscli-b
awserr "describe-key of the deleted alias" NotFoundException kms describe-key --key-id alias/awscli-b
awserr "describe-key alias/none" NotFoundException kms describe-key --key-id alias/none
awserr "describe-key of a random UUID" NotFoundException kms describe-key --key-id "$(cat /proc/sys/kernel/random/uuid)"
awserr "delete-alias of a missing alias" NotFoundException kms delete-alias --alias-name alias/none
run "update-key-description" kms update-key-description --key-id "$K4" --description "renamed"
run "describe-key after update-key-description" kms describe-key --key-id "$K4"
json "the new description" "j.KeyMetadata.Description==='renamed'"

# --- encrypt / decrypt / re-encrypt ----------------------------------------
PT="ward-awscli-secret-$$-Zebra-Quokka-7431"
printf '%s' "$PT" >pt.bin
PTB64=$(b64 pt.bin)
run "encrypt with an encryption context (alias)" kms encrypt --key-id alias/awscli-a \
	--plaintext fileb://pt.bin --encryption-context purpose=test,tenant=acme
json "encrypt answers the key ARN" "j.KeyId==='$K1ARN' && j.EncryptionAlgorithm==='SYMMETRIC_DEFAULT' && j.CiphertextBlob.length>0"
blob ct1.bin
run "decrypt without --key-id" kms decrypt --ciphertext-blob fileb://ct1.bin \
	--encryption-context tenant=acme,purpose=test
json "decrypt: the plaintext and the key ARN" "j.Plaintext==='$PTB64' && j.KeyId==='$K1ARN'"
run "decrypt with --key-id (alias)" kms decrypt --ciphertext-blob fileb://ct1.bin \
	--encryption-context purpose=test,tenant=acme --key-id alias/awscli-a
json "decrypt --key-id: the plaintext" "j.Plaintext==='$PTB64'"
awserr "decrypt with a wrong encryption context" InvalidCiphertextException kms decrypt \
	--ciphertext-blob fileb://ct1.bin --encryption-context purpose=test,tenant=evil
awserr "decrypt without the encryption context" InvalidCiphertextException kms decrypt \
	--ciphertext-blob fileb://ct1.bin
awserr "decrypt with the wrong --key-id" IncorrectKeyException kms decrypt \
	--ciphertext-blob fileb://ct1.bin --encryption-context purpose=test,tenant=acme --key-id "$K2"
head -c 120 /dev/urandom >garbage.bin
awserr "decrypt of a garbage blob" InvalidCiphertextException kms decrypt --ciphertext-blob fileb://garbage.bin
cp ct1.bin ct1-flipped.bin
off=$(($(stat -c %s ct1.bin) - 3))
b=$(od -An -tu1 -j "$off" -N1 ct1.bin | tr -d ' ')
printf "\\x$(printf %02x $((b ^ 1)))" | dd of=ct1-flipped.bin bs=1 seek="$off" conv=notrunc 2>/dev/null
awserr "decrypt of a blob with a flipped byte" InvalidCiphertextException kms decrypt \
	--ciphertext-blob fileb://ct1-flipped.bin --encryption-context purpose=test,tenant=acme
run "re-encrypt to a second key" kms re-encrypt --ciphertext-blob fileb://ct1.bin \
	--source-encryption-context purpose=test,tenant=acme \
	--destination-key-id "$K2" --destination-encryption-context stage=two
json "re-encrypt: SourceKeyId K1, KeyId K2" "j.SourceKeyId==='$K1ARN' && j.KeyId==='$K2ARN' && j.CiphertextBlob.length>0"
blob ct2.bin
run "decrypt the re-encrypted blob" kms decrypt --ciphertext-blob fileb://ct2.bin --encryption-context stage=two
json "re-encrypted blob: the plaintext under K2" "j.Plaintext==='$PTB64' && j.KeyId==='$K2ARN'"
head -c 5000 /dev/zero | tr '\0' x >big.bin
awserr "encrypt of 5000 bytes (over 4096)" ValidationException kms encrypt --key-id "$K1" --plaintext fileb://big.bin
awserr "encrypt with RSAES_OAEP_SHA_256 under a symmetric key" InvalidKeyUsageException kms encrypt \
	--key-id "$K1" --plaintext fileb://pt.bin --encryption-algorithm RSAES_OAEP_SHA_256

# --- data keys, random -----------------------------------------------------
run "generate-data-key --key-spec AES_256" kms generate-data-key --key-id "$K1" --key-spec AES_256 --encryption-context dk=1
json "generate-data-key AES_256: 32 bytes" "Buffer.from(j.Plaintext,'base64').length===32 && j.KeyId==='$K1ARN'"
DK1=$(jget out.log j.Plaintext)
blob dk1.bin
run "decrypt the data key" kms decrypt --ciphertext-blob fileb://dk1.bin --encryption-context dk=1
json "the data key decrypts to its plaintext" "j.Plaintext==='$DK1'"
run "generate-data-key --number-of-bytes 64" kms generate-data-key --key-id alias/awscli-a --number-of-bytes 64
json "generate-data-key 64: 64 bytes" "Buffer.from(j.Plaintext,'base64').length===64"
DK2=$(jget out.log j.Plaintext)
awserr "generate-data-key with both KeySpec and NumberOfBytes" ValidationException kms generate-data-key \
	--key-id "$K1" --key-spec AES_256 --number-of-bytes 32
awserr "generate-data-key with neither" ValidationException kms generate-data-key --key-id "$K1"
run "generate-data-key-without-plaintext" kms generate-data-key-without-plaintext --key-id "$K1" --key-spec AES_128
json "without plaintext: no Plaintext" "j.Plaintext===undefined && j.CiphertextBlob.length>0 && j.KeyId==='$K1ARN'"
blob dk3.bin
run "decrypt the blob of generate-data-key-without-plaintext" kms decrypt --ciphertext-blob fileb://dk3.bin
json "its plaintext is 16 bytes" "Buffer.from(j.Plaintext,'base64').length===16"
run "generate-random 32" kms generate-random --number-of-bytes 32
json "generate-random: 32 bytes" "Buffer.from(j.Plaintext,'base64').length===32"
awserr "generate-random 2000" ValidationException kms generate-random --number-of-bytes 2000
# 0 the CLI refuses itself (valid min value: 1): sent raw below.

# --- key policies ----------------------------------------------------------
run "get-key-policy (default)" kms get-key-policy --key-id "$K1" --policy-name default
json "the default policy lets the account root do kms:*" "JSON.parse(j.Policy).Statement.some(s=>s.Effect==='Allow' && JSON.stringify(s.Principal).includes('arn:aws:iam::$ACCT:root') && s.Action==='kms:*')"
run "get-key-policy of the custom-policy key" kms get-key-policy --key-id "$K3" --policy-name default
json "the custom policy is kept" "j.Policy.includes('$ADMIN_ARN') && j.Policy.includes('admin only')"
run "list-key-policies" kms list-key-policies --key-id "$K1"
json "list-key-policies: [default]" "JSON.stringify(j.PolicyNames)==='[\"default\"]'"
printf '{"Version":"2012-10-17","Statement":[{"Effect":"Allow",' >malformed.json
awserr "put-key-policy: malformed JSON" MalformedPolicyDocumentException kms put-key-policy \
	--key-id "$K4" --policy-name default --policy file://malformed.json
cat >lockout.json <<EOF
{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"$ADMIN_ARN"},
 "Action":["kms:Encrypt","kms:Decrypt","kms:DescribeKey"],"Resource":"*"}]}
EOF
awserr "put-key-policy that locks the caller out" MalformedPolicyDocumentException kms put-key-policy \
	--key-id "$K4" --policy-name default --policy file://lockout.json
run "the same with --bypass-policy-lockout-safety-check" kms put-key-policy --key-id "$K4" \
	--policy-name default --policy file://lockout.json --bypass-policy-lockout-safety-check
awserr "the locked-out caller cannot read the policy now" AccessDeniedException kms get-key-policy \
	--key-id "$K4" --policy-name default

# --- cross-account (carol) -------------------------------------------------
awserr "carol: describe-key of another account's key by ARN" AccessDeniedException as_carol kms describe-key --key-id "$K1ARN"
awserr "carol: encrypt by bare key id looks in her own account" NotFoundException as_carol kms encrypt \
	--key-id "$K1" --plaintext fileb://pt.bin
cat >cross.json <<EOF
{"Version":"2012-10-17","Statement":[
 {"Sid":"owner","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::$ACCT:root"},"Action":"kms:*","Resource":"*"},
 {"Sid":"carol's account","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::$CAROL_ACCT:root"},
  "Action":["kms:Encrypt","kms:DescribeKey"],"Resource":"*"}]}
EOF
run "put-key-policy allowing carol's account" kms put-key-policy --key-id "$K1" --policy-name default --policy file://cross.json
run "carol: encrypt with the key ARN (cross-account)" as_carol kms encrypt --key-id "$K1ARN" --plaintext fileb://pt.bin
json "carol's ciphertext is under K1" "j.KeyId==='$K1ARN'"
cat >cross-deny.json <<EOF
{"Version":"2012-10-17","Statement":[
 {"Sid":"owner","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::$ACCT:root"},"Action":"kms:*","Resource":"*"},
 {"Sid":"carol's account","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::$CAROL_ACCT:root"},
  "Action":["kms:Encrypt","kms:DescribeKey"],"Resource":"*"},
 {"Sid":"not carol","Effect":"Deny","Principal":{"AWS":"$CAROL_ARN"},"Action":"kms:Encrypt","Resource":"*"}]}
EOF
run "put-key-policy adding a Deny for carol" kms put-key-policy --key-id "$K1" --policy-name default --policy file://cross-deny.json
awserr "carol: the Deny beats the Allow" AccessDeniedException as_carol kms encrypt --key-id "$K1ARN" --plaintext fileb://pt.bin
run "carol: DescribeKey is still allowed" as_carol kms describe-key --key-id "$K1ARN"

# --- grants (bob, same account; K3's policy allows only the admin) ---------
run "admin: encrypt under K3" kms encrypt --key-id "$K3" --plaintext fileb://pt.bin
blob ct3.bin
run "admin: encrypt under K3 with dept=eng" kms encrypt --key-id "$K3" --plaintext fileb://pt.bin --encryption-context dept=eng,x=1
blob ct3eng.bin
run "admin: encrypt under K3 with dept=hr" kms encrypt --key-id "$K3" --plaintext fileb://pt.bin --encryption-context dept=hr
blob ct3hr.bin
awserr "bob: decrypt without a grant" AccessDeniedException as_bob kms decrypt --ciphertext-blob fileb://ct3.bin
run "create-grant Decrypt for bob" kms create-grant --key-id "$K3" --grantee-principal "$BOB_ARN" \
	--operations Decrypt --name bob-decrypt
json "create-grant: GrantId and GrantToken" "typeof j.GrantId==='string' && typeof j.GrantToken==='string'"
G1=$(jget out.log j.GrantId)
run "bob: decrypt through the grant" as_bob kms decrypt --ciphertext-blob fileb://ct3.bin
json "bob gets the plaintext" "j.Plaintext==='$PTB64'"
run "list-grants" kms list-grants --key-id "$K3"
json "list-grants: bob's grant" "j.Grants.length===1 && j.Grants[0].GrantId==='$G1' && j.Grants[0].GranteePrincipal==='$BOB_ARN' && JSON.stringify(j.Grants[0].Operations)==='[\"Decrypt\"]' && j.Grants[0].Name==='bob-decrypt' && j.Grants[0].KeyId==='arn:aws:kms:$REGION:$ACCT:key/$K3'"
run "revoke-grant" kms revoke-grant --key-id "$K3" --grant-id "$G1"
awserr "bob: decrypt after the revoke" AccessDeniedException as_bob kms decrypt --ciphertext-blob fileb://ct3.bin
run "create-grant Decrypt+RetireGrant for bob" kms create-grant --key-id "$K3" --grantee-principal "$BOB_ARN" \
	--operations Decrypt RetireGrant
GT2=$(jget out.log j.GrantToken)
run "bob: retire-grant by token" as_bob kms retire-grant --grant-token "$GT2"
run "list-grants after the retire" kms list-grants --key-id "$K3"
json "no grants left" "j.Grants.length===0"
run "create-grant with EncryptionContextSubset dept=eng" kms create-grant --key-id "$K3" \
	--grantee-principal "$BOB_ARN" --operations Decrypt \
	--constraints '{"EncryptionContextSubset":{"dept":"eng"}}'
cp out.log create-grant.json
run "bob: decrypt with a matching context" as_bob kms decrypt --ciphertext-blob fileb://ct3eng.bin --encryption-context dept=eng,x=1
json "bob gets the plaintext (constrained grant)" "j.Plaintext==='$PTB64'"
awserr "bob: decrypt with a context outside the constraint" AccessDeniedException as_bob kms decrypt \
	--ciphertext-blob fileb://ct3hr.bin --encryption-context dept=hr
G3=$(jget create-grant.json j.GrantId)
awserr "bob: retire a grant without RetireGrant" AccessDeniedException as_bob kms retire-grant --key-id "$K3" --grant-id "$G3"
run "admin: retire-grant by key and grant id" kms retire-grant --key-id "$K3" --grant-id "$G3"
awserr "revoke-grant of a missing grant" NotFoundException kms revoke-grant --key-id "$K3" --grant-id "$G3"
# A grantee holding CreateGrant may pass on only the operations it has
# (AWS: "the same or fewer operations").
run "create-grant CreateGrant only, for bob" kms create-grant --key-id "$K3" --grantee-principal "$BOB_ARN" --operations CreateGrant
run "bob: create-grant CreateGrant (no more than his own) for temp" as_bob kms create-grant --key-id "$K3" \
	--grantee-principal "arn:aws:iam::$ACCT:user/temp" --operations CreateGrant
awserr "bob: create-grant Decrypt for himself (more than his own)" AccessDeniedException as_bob kms create-grant \
	--key-id "$K3" --grantee-principal "$BOB_ARN" --operations Decrypt
awserr "bob: still no Decrypt after that" AccessDeniedException as_bob kms decrypt --ciphertext-blob fileb://ct3.bin

# --- tags ------------------------------------------------------------------
run "tag-resource" kms tag-resource --key-id "$K1" --tags TagKey=owner,TagValue=ops TagKey=team,TagValue=red
run "untag-resource" kms untag-resource --key-id "$K1" --tag-keys env
awserr "tag-resource with an aws: key" TagException kms tag-resource --key-id "$K1" --tags TagKey=aws:x,TagValue=y
run "list-resource-tags" kms list-resource-tags --key-id "$K1"
json "tags: owner=ops, team=red (updated), env gone" "(t=>Object.keys(t).length===2 && t.owner==='ops' && t.team==='red')(Object.fromEntries(j.Tags.map(x=>[x.TagKey,x.TagValue])))"
# Responses are written by ward's own JSON writer (ASCII, \u escapes):
# quotes, backslashes, controls and characters beyond U+FFFF come back
# as they went in.
run "tag-resource with a non-ASCII value" kms tag-resource --key-id "$K1" \
	--tags '[{"TagKey":"note","TagValue":"na\u00efve \u2603 \ud834\udd1e \"q\" \\ / \t"}]'
run "list-resource-tags (non-ASCII)" kms list-resource-tags --key-id "$K1"
json "tag note comes back unchanged" "j.Tags.find(x=>x.TagKey==='note').TagValue==='na\u00efve \u2603 \ud834\udd1e \"q\" \\\\ / \t'"
rawjson "ListResourceTags by curl (non-ASCII)" TrentService.ListResourceTags "{\"KeyId\":\"$K1\"}" 200 ""
if LC_ALL=C grep -q '[^ -~]' out.log; then bad "the response body is not all printable ASCII"; else ok "the response body is printable ASCII (\\u escapes)"; fi
run "untag note" kms untag-resource --key-id "$K1" --tag-keys note

# --- rotation --------------------------------------------------------------
run "get-key-rotation-status (off)" kms get-key-rotation-status --key-id "$K1"
json "rotation is off" "j.KeyRotationEnabled===false"
run "enable-key-rotation" kms enable-key-rotation --key-id "$K1"
run "get-key-rotation-status (on)" kms get-key-rotation-status --key-id "$K1"
json "rotation is on" "j.KeyRotationEnabled===true"
run "disable-key-rotation" kms disable-key-rotation --key-id "$K1"
run "get-key-rotation-status (off again)" kms get-key-rotation-status --key-id "$K1"
json "rotation is off again" "j.KeyRotationEnabled===false"
if grep -q '"RotateKeyOnDemand"' "$MODEL" 2>/dev/null; then
	run "rotate-key-on-demand" kms rotate-key-on-demand --key-id "$K1"
else
	echo "note  awscli $("$AWS" --version 2>&1 | cut -d' ' -f1) has no rotate-key-on-demand: RotateKeyOnDemand sent signed by curl"
	rawjson "RotateKeyOnDemand (raw)" TrentService.RotateKeyOnDemand "{\"KeyId\":\"$K1\"}" 200 ""
fi
json "RotateKeyOnDemand answers the key" "j.KeyId==='$K1ARN'"
run "decrypt a blob made before the rotation" kms decrypt --ciphertext-blob fileb://ct1.bin \
	--encryption-context purpose=test,tenant=acme
json "the old blob still decrypts" "j.Plaintext==='$PTB64'"
run "encrypt after the rotation" kms encrypt --key-id "$K1" --plaintext fileb://pt.bin
blob ct1new.bin
run "decrypt a blob made after the rotation" kms decrypt --ciphertext-blob fileb://ct1new.bin
json "the new blob decrypts" "j.Plaintext==='$PTB64'"

# --- key states (kms-and-esdk.md §1.5) -------------------------------------
awserr "cancel-key-deletion of an Enabled key" KMSInvalidStateException kms cancel-key-deletion --key-id "$K2"
run "disable-key" kms disable-key --key-id "$K2"
run "describe-key (Disabled)" kms describe-key --key-id "$K2"
json "the key is Disabled" "j.KeyMetadata.KeyState==='Disabled' && j.KeyMetadata.Enabled===false"
awserr "Disabled: encrypt" DisabledException kms encrypt --key-id "$K2" --plaintext fileb://pt.bin
awserr "Disabled: decrypt" DisabledException kms decrypt --ciphertext-blob fileb://ct2.bin --encryption-context stage=two
awserr "Disabled: generate-data-key" DisabledException kms generate-data-key --key-id "$K2" --key-spec AES_256
awserr "Disabled: create-grant" DisabledException kms create-grant --key-id "$K2" --grantee-principal "$BOB_ARN" --operations Decrypt
run "Disabled: tag-resource is allowed" kms tag-resource --key-id "$K2" --tags TagKey=state,TagValue=off
run "enable-key" kms enable-key --key-id "$K2"
awserr "schedule-key-deletion --pending-window-in-days 6" ValidationException kms schedule-key-deletion --key-id "$K2" --pending-window-in-days 6
run "schedule-key-deletion --pending-window-in-days 7" kms schedule-key-deletion --key-id "$K2" --pending-window-in-days 7
json "PendingDeletion with a DeletionDate 7 days on" "j.KeyState==='PendingDeletion' && j.KeyId==='$K2ARN' && j.PendingWindowInDays===7 && Math.abs(Date.parse(j.DeletionDate)/1000 - Date.now()/1000 - 7*86400) < 86400"
run "PendingDeletion: describe-key" kms describe-key --key-id "$K2"
json "describe-key shows PendingDeletion" "j.KeyMetadata.KeyState==='PendingDeletion' && j.KeyMetadata.Enabled===false && j.KeyMetadata.DeletionDate!==undefined"
awserr "PendingDeletion: encrypt" KMSInvalidStateException kms encrypt --key-id "$K2" --plaintext fileb://pt.bin
awserr "PendingDeletion: decrypt" KMSInvalidStateException kms decrypt --ciphertext-blob fileb://ct2.bin --encryption-context stage=two
awserr "PendingDeletion: enable-key" KMSInvalidStateException kms enable-key --key-id "$K2"
awserr "PendingDeletion: schedule-key-deletion again" KMSInvalidStateException kms schedule-key-deletion --key-id "$K2"
awserr "PendingDeletion: create-alias" KMSInvalidStateException kms create-alias --alias-name alias/awscli-c --target-key-id "$K2"
awserr "PendingDeletion: tag-resource" KMSInvalidStateException kms tag-resource --key-id "$K2" --tags TagKey=a,TagValue=b
awserr "PendingDeletion: disable-key" KMSInvalidStateException kms disable-key --key-id "$K2"
awserr "PendingDeletion: update-key-description" KMSInvalidStateException kms update-key-description --key-id "$K2" --description x
awserr "PendingDeletion: create-grant" "KMSInvalidStateException|DisabledException" kms create-grant --key-id "$K2" --grantee-principal "$BOB_ARN" --operations Decrypt
run "PendingDeletion: get-key-policy is allowed" kms get-key-policy --key-id "$K2" --policy-name default
run "cancel-key-deletion" kms cancel-key-deletion --key-id "$K2"
json "cancel-key-deletion answers the key" "j.KeyId==='$K2ARN'"
run "describe-key after the cancel" kms describe-key --key-id "$K2"
json "after the cancel the key is Disabled (as AWS)" "j.KeyMetadata.KeyState==='Disabled' && j.KeyMetadata.DeletionDate===undefined"

# --- credentials and signatures --------------------------------------------
SK="${SK%????}AAAA" awserr "a wrong secret" InvalidSignatureException kms describe-key --key-id "$K1"
AK=AKIAAAAAAAAAAAAAAAAA awserr "an unknown access key" UnrecognizedClientException kms describe-key --key-id "$K1"
REGION=eu-west-3 awserr "a request signed for another region" InvalidSignatureException kms describe-key --key-id "$K1"
AK=$TMP_AK SK=$TMP_SK TOK=$TMP_TOK run "temporary credentials with AWS_SESSION_TOKEN" kms describe-key --key-id "$K1"
json "the session principal sees the key" "j.KeyMetadata.KeyId==='$K1'"
AK=$TMP_AK SK=$TMP_SK TOK="" awserr "temporary credentials without the token" UnrecognizedClientException kms describe-key --key-id "$K1"
AK=$TMP_AK SK=$TMP_SK TOK="${TMP_TOK%????}AAAA" awserr "temporary credentials with a wrong token" UnrecognizedClientException kms describe-key --key-id "$K1"

# --- raw HTTP (curl) -------------------------------------------------------
EP="http://127.0.0.1:$PORT/"
CT="Content-Type: application/x-amz-json-1.1"
# curlerr NAME STATUSES TYPE CURL-ARGS...: an unsigned request answered with
# one of STATUSES (a regex) and an AWS JSON error of TYPE ("" = any)
curlerr() {
	local name=$1 want=$2 type=$3
	shift 3
	REQS=$((REQS + 1))
	HTTP=$(curl -sS -o out.log -w '%{http_code}' --max-time 20 "$@" 2>curl.err)
	if [[ "$HTTP" =~ ^($want)$ ]]; then ok "$name: HTTP $HTTP"; else
		bad "$name: HTTP $HTTP, expected $want"
		sed 's/^/      /' out.log curl.err | head -5
	fi
	if [ -n "$type" ]; then
		json "$name: __type $type" "j.__type==='$type' && typeof j.message==='string'"
	else
		json "$name: an AWS JSON error" "typeof j.__type==='string' && j.__type.length>0"
	fi
	alive "$name"
}
curlerr "unsigned request" '400|403' MissingAuthenticationTokenException -H "$CT" \
	-H "X-Amz-Target: TrentService.ListKeys" -d '{}' "$EP"
curlerr "no X-Amz-Target" '400|404' "" -H "$CT" -d '{}' "$EP"
curlerr "X-Amz-Target twice" '400' "" -H "$CT" -H "X-Amz-Target: TrentService.ListKeys" \
	-H "X-Amz-Target: TrentService.CreateKey" -d '{}' "$EP"
curlerr "GET /" '400|404|405' "" "$EP"
head -c $((2 * 1024 * 1024)) /dev/zero | tr '\0' ' ' >2mib.json
curlerr "a 2 MiB body" '400|413' "" -H "$CT" -H "X-Amz-Target: TrentService.Encrypt" \
	--data-binary @2mib.json "$EP"

rawjson "signed: unknown operation TrentService.Nope" TrentService.Nope '{}' 400 UnknownOperationException
alive "an unknown operation"
rawjson "signed: malformed JSON" TrentService.ListKeys '{"Limit": 1,' 400 SerializationException
alive "malformed JSON"
rawjson "signed: a JSON array body" TrentService.ListKeys '[1,2]' 400 SerializationException
alive "a JSON array body"
rawjson "signed: \"KeyId\": 5" TrentService.DescribeKey '{"KeyId": 5}' 400 SerializationException
alive "a wrong member type"
rawjson "signed: bad base64 in Plaintext" TrentService.Encrypt "{\"KeyId\":\"$K1\",\"Plaintext\":\"@@not*base64@@\"}" 400 SerializationException
alive "bad base64"
rawjson "signed: GenerateRandom NumberOfBytes 0" TrentService.GenerateRandom '{"NumberOfBytes":0}' 400 ValidationException
rawjson "signed: an empty body is {}" TrentService.ListKeys '' 200 ""
json "an empty body lists the keys" "Array.isArray(j.Keys)"
rawjson "signed: a good Encrypt through the bash signer" TrentService.Encrypt "{\"KeyId\":\"$K1\",\"Plaintext\":\"$PTB64\"}" 200 ""
json "raw Encrypt answers the key ARN" "j.KeyId==='$K1ARN'"
# The same signed request with the body changed after signing
printf '%s' "{\"KeyId\":\"$K1\",\"Plaintext\":\"$PTB64\"}" >body.json
REQS=$((REQS + 1))
raw TrentService.Encrypt body.json --data-binary ' '
json "a body changed after signing: InvalidSignatureException" "j.__type==='InvalidSignatureException'"

printf '{}' >body.json
REQS=$((REQS + 1))
AMZDATE=$(date -u -d '-10 min' +%Y%m%dT%H%M%SZ) raw TrentService.ListKeys body.json
json "a request dated 10 minutes ago: InvalidSignatureException" "j.__type==='InvalidSignatureException'"
REQS=$((REQS + 1))
AMZDATE=$(date -u -d '+10 min' +%Y%m%dT%H%M%SZ) raw TrentService.ListKeys body.json
json "a request dated 10 minutes ahead: InvalidSignatureException" "j.__type==='InvalidSignatureException'"

# kms-and-esdk.md §2.4 step 5: every x-amz-* header must be signed; an
# unsigned X-Amz-Target would let anyone change a captured request's
# operation.
printf '{"Limit":1}' >body.json
REQS=$((REQS + 1))
UNSIGNED_TARGET=1 raw TrentService.ListKeys body.json
if [ "$HTTP" != 200 ]; then ok "X-Amz-Target outside SignedHeaders: refused (HTTP $HTTP)"; else
	bad "X-Amz-Target outside SignedHeaders: accepted (HTTP 200)"
fi
json "X-Amz-Target outside SignedHeaders: a signature error" "/^(IncompleteSignature|InvalidSignature|AccessDenied)Exception$/.test(j.__type)"
REQS=$((REQS + 1))
raw TrentService.ListKeys body.json -H "X-Amz-Foo: bar"
if [ "$HTTP" != 200 ]; then ok "an unsigned X-Amz-Foo header: refused (HTTP $HTTP)"; else
	bad "an unsigned X-Amz-Foo header: accepted (HTTP 200)"
fi
json "an unsigned X-Amz-Foo header: a signature error" "/^(IncompleteSignature|InvalidSignature|AccessDenied)Exception$/.test(j.__type)"
# Headers beyond the server's memory limit: refused (libmicrohttpd answers
# 431 itself, as HTML), and the server lives on.
head -c 100000 /dev/zero | tr '\0' a >bighdr.txt
REQS=$((REQS + 1))
HTTP=$(curl -sS -o out.log -w '%{http_code}' --max-time 20 -H "$CT" -H "X-Amz-Target: TrentService.ListKeys" \
	-H "X-Big: $(cat bighdr.txt)" -d '{}' "$EP" 2>curl.err)
if [[ "$HTTP" =~ ^4[0-9][0-9]$ ]]; then ok "a 100 KB header: HTTP $HTTP"; else bad "a 100 KB header: HTTP $HTTP"; fi
alive "a 100 KB header"
# Headers within the limit (16 KiB of connection memory holds about 14 KB
# of them): served.
printf '{}' >midhdr.json
head -c 12000 /dev/zero | tr '\0' a >midhdr.txt
REQS=$((REQS + 1))
RAWOUT=midhdr.out raw TrentService.ListKeys midhdr.json -H "X-Big: $(cat midhdr.txt)"
if [ "$HTTP" = 200 ] && grep -q '"Keys"' midhdr.out; then ok "a 12 KB header: served"; else
	bad "a 12 KB header: HTTP $HTTP"
fi

# A claimed access key id that is not UTF-8: refused, and audited all the
# same (checked with the log below; jansson refused such a string, and the
# line used to be lost).
REQS=$((REQS + 1))
HTTP=$(curl -sS -o out.log -w '%{http_code}' --max-time 20 -H "$CT" -H "X-Amz-Target: TrentService.ListKeys" \
	-H $'Authorization: AWS4-HMAC-SHA256 Credential=AKIA\xc3\xa9\xff/20260101/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=00' \
	-d '{}' "$EP" 2>curl.err)
if [ "$HTTP" = 400 ]; then ok "an access key id that is not UTF-8: HTTP 400"; else bad "an access key id that is not UTF-8: HTTP $HTTP"; fi
json "an access key id that is not UTF-8: a signature error" "j.__type==='IncompleteSignatureException'"

# A slow client: half the headers, then 2 s of silence while another
# request is served; then the rest, which is answered.
if exec 3<>"/dev/tcp/127.0.0.1/$PORT"; then
	printf 'POST / HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nX-Amz-Tar' "$PORT" >&3
	t0=$(date +%s%N)
	alive "a slow client connected"
	t1=$(date +%s%N)
	if [ $(((t1 - t0) / 1000000)) -lt 1900 ]; then ok "a request is served while a slow client waits ($(((t1 - t0) / 1000000)) ms)"; else
		bad "a request waited for the slow client ($(((t1 - t0) / 1000000)) ms)"
	fi
	sleep 2
	printf 'get: TrentService.ListKeys\r\n%s\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}' "$CT" >&3
	timeout 10 cat <&3 >slow.out
	exec 3<&-
	REQS=$((REQS + 1))
	has "MissingAuthenticationTokenException" "the slow client gets its answer" slow.out
	alive "the slow client"
else
	bad "cannot connect for the slow-client check"
fi

# --- the key-row cache follows other processes' writes -----------------------
# The server keeps the key rows it read per thread while no commit has begun
# since (src/kmsd/store.c, DIR/generation). `ward kms pin --state` writes
# kms.db from another process while the server runs: the very next Decrypt
# must be judged by the pinned policy.
# gen FILE: "begun done" of a state's generation file
gen() { od -An -tu8 -w16 "$1" | awk '{print $1, $2}'; }
run "create-key for the cache check" kms create-key --description cache-check
KC=$(jget out.log j.KeyMetadata.KeyId)
run "encrypt under it" kms encrypt --key-id "$KC" --plaintext fileb://pt.bin
blob ctc.bin
for i in 1 2 3 4; do
	run "decrypt $i of 4 (every worker reads and keeps the row)" kms decrypt \
		--ciphertext-blob fileb://ctc.bin --key-id "$KC"
done
read -r B0 D0 <<<"$(gen st/generation)"
if [ "$B0" = "$D0" ]; then ok "generation: $B0 commits begun, as many done"; else
	bad "generation: $B0 begun, $D0 done, with no writer running"
fi
PIN0=$(printf 'ab%.0s' $(seq 48))
expect 0 "ward kms pin --state while the server runs" "$WARD" kms pin "$KC" \
	--pcr0 "$PIN0" --state st
read -r B1 D1 <<<"$(gen st/generation)"
if [ "$B1" -gt "$B0" ] && [ "$B1" = "$D1" ]; then ok "the pin's commit counted ($B0 -> $B1)"; else
	bad "generation after the pin: $B1 begun, $D1 done (before: $B0)"
fi
for i in 1 2 3 4; do
	awserr "decrypt $i of 4 after the pin: the pinned policy applies" \
		AccessDeniedException kms decrypt --ciphertext-blob fileb://ctc.bin --key-id "$KC"
done
# A writer that died mid-commit (begun ahead of done): caches stay off and
# answers stay right.
# (written in place: the server has the file mapped, and truncating it
# under the mapping would fault the server)
printf '\x09\0\0\0\0\0\0\0\x07\0\0\0\0\0\0\0' | dd of=st/generation conv=notrunc status=none
# A second server on the same state: it must not even the counters (this
# server has the state open and could be between a commit and its count),
# and it is refused (two servers would fork the audit log's hash chain).
# (bounded: a second server that did start would otherwise serve on)
timeout 20 "$WARD" kms serve --state st --listen 127.0.0.1:0 >serve-2nd.out 2>serve-2nd.err
rc=$?
if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && grep -q "held by another .ward kms serve." serve-2nd.err; then
	ok "a second serve on the same state: refused (exit $rc)"
else
	bad "a second serve on the same state: exit $rc"
	sed 's/^/      /' serve-2nd.err | head -5
fi
has "another ward process has the state open; key caches stay off" \
	"the second server leaves the unfinished commit alone" serve-2nd.err
read -r B3 D3 <<<"$(gen st/generation)"
if [ "$B3 $D3" = "9 7" ]; then ok "generation left at 9 begun, 7 done"; else bad "generation changed to $B3 begun, $D3 done"; fi
alive "the refused second server"
run "disable-key with a writer dead mid-commit" kms disable-key --key-id "$K1"
awserr "decrypt under the disabled key" DisabledException kms decrypt \
	--ciphertext-blob fileb://ct1.bin --encryption-context purpose=test,tenant=acme
run "enable-key" kms enable-key --key-id "$K1"
run "decrypt under the enabled key" kms decrypt --ciphertext-blob fileb://ct1.bin \
	--encryption-context purpose=test,tenant=acme
json "decrypt after enable-key: the plaintext" "j.Plaintext==='$PTB64'"

# --- graceful shutdown, then the audit log ----------------------------------
kill -TERM "$SPID"
wait_exit "$SPID" 20
if [ "$EXIT_OUT" = 0 ]; then ok "SIGTERM: serve exits 0"; else bad "SIGTERM: serve exit $EXIT_OUT"; sed 's/^/      /' serve.err | tail -5; fi
SPID=""
expect 0 "audit verify" "$WARD" kms audit verify --state st
json "audit verify: Verified" "j.Verified===true"
LINES=$(wc -l <st/audit.log)
if [ "$LINES" -ge "$REQS" ]; then ok "audit.log has $LINES lines for the $REQS requests sent"; else
	bad "audit.log has $LINES lines for $REQS requests"
fi
OPS="CreateKey DescribeKey ListKeys CreateAlias UpdateAlias DeleteAlias ListAliases
 Encrypt Decrypt ReEncrypt GenerateDataKey GenerateDataKeyWithoutPlaintext
 GenerateRandom GetKeyPolicy PutKeyPolicy ListKeyPolicies EnableKey DisableKey
 ScheduleKeyDeletion CancelKeyDeletion EnableKeyRotation DisableKeyRotation
 GetKeyRotationStatus RotateKeyOnDemand TagResource UntagResource
 ListResourceTags CreateGrant ListGrants RevokeGrant RetireGrant
 UpdateKeyDescription"
missing=""
for o in $OPS; do grep -q "\"operation\":\"$o\"" st/audit.log || missing="$missing $o"; done
if [ -z "$missing" ]; then ok "audit.log records every operation used ($(echo $OPS | wc -w))"; else
	bad "audit.log lacks operations:$missing"
fi
if grep -q '"principal":"arn:aws:iam::'"$ACCT"':user/bob"' st/audit.log &&
	grep -q '"decision":"deny"' st/audit.log && grep -q '"decision":"allow"' st/audit.log; then
	ok "audit.log names principals and decisions"
else
	bad "audit.log lacks principal/decision fields"
fi
# every line sent over TCP names its peer as address:port, the port a
# real ephemeral one
if grep -o '"source":"[^"]*"' st/audit.log | sort -u | grep -v '^"source":"unix"$' |
	awk -F'"' '{ if ($4 !~ /^127\.0\.0\.1:[0-9]+$/) bad = 1; split($4, a, ":"); if (a[2] < 1 || a[2] > 65535) bad = 1; n++ }
		END { exit !(n > 0 && !bad) }'; then
	ok "audit.log sources are 127.0.0.1:port"
else
	bad "audit.log has a malformed source: $(grep -o '"source":"[^"]*"' st/audit.log | sort -u | head -3 | tr '\n' ' ')"
fi
if grep -qF '"principal":"AKIA\u00e9\ufffd","key":null' st/audit.log; then
	ok "audit.log records the request whose access key is not UTF-8 (\\u00e9\\ufffd)"
else
	bad "audit.log lacks the request whose access key is not UTF-8"
fi
leak=""
for s in "$PT" "$PTB64" "$DK1" "$DK2" "$SK" "$BOB_SK" "$CAROL_SK" "$TMP_SK" "$TMP_TOK"; do
	grep -qF -- "$s" st/audit.log && leak="$leak ${s:0:8}..."
done
if [ -z "$leak" ]; then ok "audit.log holds no plaintext, data key, secret key or session token"; else
	bad "audit.log leaks:$leak"
fi
MID=$((LINES / 2))
cp -a st t-edit && sed -i "${MID}s/\"time\":\"2/\"time\":\"3/" t-edit/audit.log
if cmp -s st/audit.log t-edit/audit.log; then bad "could not edit line $MID"; fi
expect 5 "audit verify: one byte of line $MID edited" "$WARD" kms audit verify --state t-edit
cp -a st t-del && sed -i "${MID}d" t-del/audit.log
expect 5 "audit verify: line $MID deleted" "$WARD" kms audit verify --state t-del
cp -a st t-swap && awk -v m="$MID" 'NR==m{h=$0;next} NR==m+1{print;print h;next} {print}' st/audit.log >t-swap/audit.log
expect 5 "audit verify: lines $MID and $((MID + 1)) swapped" "$WARD" kms audit verify --state t-swap
# A torn tail, as a server killed mid-append leaves: lines are written at
# offsets taken in order, so a line reserved earlier may be missing (zero
# bytes) before one written later, or the last may be cut short. Reported
# by verify, dropped (and said) by serve; an edited last line is neither.
LASTLINE=$(tail -n 1 st/audit.log)
NL=$(wc -l <st/audit.log)
cp -a st t-cut && printf '%s' "${LASTLINE:0:100}" >>t-cut/audit.log
expect 0 "audit verify: a last line cut short is a torn tail" "$WARD" kms audit verify --state t-cut
json "audit verify: cut tail: Verified, TornTail 100, every line before it" "j.Verified===true && j.TornTail===100 && j.Lines===$NL"
cp -a st t-hole && { head -c ${#LASTLINE} /dev/zero; printf '%s\n' "$LASTLINE"; } >>t-hole/audit.log
expect 0 "audit verify: zero bytes, then a line, at the end" "$WARD" kms audit verify --state t-hole
json "audit verify: hole tail: Verified, TornTail counts both" "j.Verified===true && j.TornTail===$((2 * ${#LASTLINE} + 1)) && j.Lines===$NL"
cp -a st t-last && sed -i "\$s/\"time\":\"2/\"time\":\"3/" t-last/audit.log
expect 5 "audit verify: the last line edited is no torn tail" "$WARD" kms audit verify --state t-last
cp -a st t-dup && printf '%s\n' "$LASTLINE" >>t-dup/audit.log
expect 5 "audit verify: the last line repeated is no torn tail" "$WARD" kms audit verify --state t-dup
# (the server anchored its last line when it stopped: a tail cut at line
# MID would lose it)
cp -a st t-nul && printf '\0' | dd of=t-nul/audit.log bs=1 conv=notrunc status=none \
	seek=$(($(head -n $((MID - 1)) st/audit.log | wc -c) + 10))
expect 5 "audit verify: a zero byte in line $MID, before the anchored line" "$WARD" kms audit verify --state t-nul
has "anchored in the database, is missing or changed" "audit verify: the zero byte cuts the anchored line off" err.log
if start_server t-hole serve-torn; then
	kill -TERM "$PID_OUT"
	wait_exit "$PID_OUT" 20
	has "dropped a torn tail of $((2 * ${#LASTLINE} + 1)) bytes after line $NL" \
		"serve drops the torn tail and says so" serve-torn.err
	expect 0 "audit verify after serve dropped the torn tail" "$WARD" kms audit verify --state t-hole
	json "audit verify: no torn tail left, the lines intact" "j.Verified===true && j.TornTail===undefined && j.Lines===$NL"
else
	bad "serve does not start on a log with a torn tail"
	sed 's/^/      /' serve-torn.err | head -5
fi
if start_server t-last serve-edited; then
	bad "serve starts on a log whose last line was edited"
	kill "$PID_OUT"
else
	has "refusing to append to the audit log" "serve refuses a log whose last line was edited" serve-edited.err
fi

# --- crash safety: kill -9 in the middle of a request stream ---------------
expect 0 "kms init (crash state)" "$WARD" kms init --state crash
cp out.log crash.json
AK=$(jget crash.json j.AccessKeyId)
SK=$(jget crash.json j.SecretAccessKey)
if ! start_server crash serve2; then
	bad "the crash-test server did not start"
	finish awscli-kms
	exit 1
fi
SPID2=$PID_OUT
PORT=$PORT_OUT
mkdir -p loops && rm -f loops/stop && : >loops/keys.txt && : >loops/cts.txt
# The AWS CLI: create-key then encrypt, recorded only after success.
(
	cd loops || exit 1
	n=0
	while [ ! -e stop ]; do
		n=$((n + 1))
		kms create-key >cli-ck.json 2>/dev/null || continue
		id=$(jget cli-ck.json j.KeyMetadata.KeyId)
		echo "$id" >>keys.txt
		printf 'cli-%s-%s' "$n" "$RANDOM" >cli-pt.bin
		kms encrypt --key-id "$id" --plaintext fileb://cli-pt.bin >cli-enc.json 2>/dev/null || continue
		echo "$(b64 cli-pt.bin) $(jget cli-enc.json j.CiphertextBlob)" >>cts.txt
	done
) &
LOOPS="$!"
# curl with the bash signer, much faster: many requests in flight at the kill.
for w in 1 2; do
	(
		cd loops || exit 1
		n=0
		while [ ! -e stop ] && [ $n -lt 400 ]; do
			n=$((n + 1))
			printf '{"Description":"crash %s-%s"}' "$w" "$n" >ck$w.json
			RAWOUT=ck$w.out raw TrentService.CreateKey ck$w.json 2>/dev/null
			[ "$HTTP" = 200 ] || continue
			id=$(sed -n 's/.*"KeyId":"\([0-9a-f-]*\)".*/\1/p' ck$w.out)
			echo "$id" >>keys.txt
			p=$(printf 'raw-%s-%s-%s' "$w" "$n" "$RANDOM" | base64 -w0)
			printf '{"KeyId":"%s","Plaintext":"%s"}' "$id" "$p" >enc$w.json
			RAWOUT=enc$w.out raw TrentService.Encrypt enc$w.json 2>/dev/null
			[ "$HTTP" = 200 ] || continue
			echo "$p $(sed -n 's/.*"CiphertextBlob":"\([^"]*\)".*/\1/p' enc$w.out)" >>cts.txt
		done
	) &
	LOOPS="$LOOPS $!"
done
sleep 3
kill -9 "$SPID2"
wait "$SPID2" 2>/dev/null
SPID2=""
touch loops/stop
for p in $LOOPS; do wait "$p"; done
LOOPS=""
NK=$(wc -l <loops/keys.txt)
NC=$(wc -l <loops/cts.txt)
if [ "$NK" -ge 2 ] && [ "$NC" -ge 1 ]; then ok "before the kill -9: $NK keys and $NC ciphertexts acknowledged"; else
	bad "too few requests before the kill -9 ($NK keys, $NC ciphertexts)"
fi
# As if a writer had died mid-commit: 2 begun, 1 done. The restarted server
# evens them (no other process has the state open) and says so.
printf '\x02\0\0\0\0\0\0\0\x01\0\0\0\0\0\0\0' | dd of=crash/generation conv=notrunc status=none
if ! start_server crash serve3; then
	bad "the server does not restart after kill -9"
	sed 's/^/      /' serve3.err | head
	finish awscli-kms
	exit 1
fi
SPID2=$PID_OUT
PORT=$PORT_OUT
ok "the server restarts on the killed state"
has "a writer stopped mid-commit (2 begun, 1 done)" "the restart reports the unfinished commit" serve3.err
read -r B2 D2 <<<"$(gen crash/generation)"
if [ "$B2" = "$D2" ]; then ok "the restart evened the generation ($B2)"; else bad "generation after the restart: $B2 begun, $D2 done"; fi
lost=0
while read -r id; do
	printf '{"KeyId":"%s"}' "$id" >dk.json
	REQS=$((REQS + 1))
	RAWOUT=dk.out raw TrentService.DescribeKey dk.json
	grep -q '"KeyState":"Enabled"' dk.out || { lost=$((lost + 1)); echo "      key $id: $(head -c 200 dk.out)"; }
done <loops/keys.txt
if [ "$lost" = 0 ]; then ok "all $NK acknowledged keys describe as Enabled"; else bad "$lost of $NK acknowledged keys are lost"; fi
lost=0
while read -r p c; do
	printf '{"CiphertextBlob":"%s"}' "$c" >dc.json
	REQS=$((REQS + 1))
	RAWOUT=dc.out raw TrentService.Decrypt dc.json
	grep -qF "\"Plaintext\":\"$p\"" dc.out || { lost=$((lost + 1)); echo "      $(head -c 200 dc.out)"; }
done <loops/cts.txt
if [ "$lost" = 0 ]; then ok "all $NC acknowledged ciphertexts decrypt to their plaintext"; else bad "$lost of $NC acknowledged ciphertexts do not decrypt"; fi
if read -r p c <loops/cts.txt; then
	printf '%s' "$c" | base64 -d >crash-ct.bin
	run "the AWS CLI decrypts a pre-crash ciphertext" kms decrypt --ciphertext-blob fileb://crash-ct.bin
	json "pre-crash ciphertext: its plaintext" "j.Plaintext==='$p'"
fi
kill -TERM "$SPID2"
wait_exit "$SPID2" 20
if [ "$EXIT_OUT" = 0 ]; then ok "SIGTERM after the restart: serve exits 0"; else bad "SIGTERM after the restart: exit $EXIT_OUT"; fi
SPID2=""
expect 0 "sqlite3 integrity_check" sqlite3 crash/kms.db 'PRAGMA integrity_check'
has '^ok$' "the database is intact"
expect 0 "audit verify after kill -9 and restart" "$WARD" kms audit verify --state crash
# Without its generation file a state is refused by everything but init
# and serve (a new file made by another command would count commits a
# running server never sees).
mv crash/generation crash/generation.saved
expect 3 "add-principal on a state without its generation file" "$WARD" kms add-principal \
	--state crash --account "$(jget crash.json j.AccountId)" --name nogen
has "generation is missing" "the error names the missing file" err.log
absent crash/generation "add-principal made none"
mv crash/generation.saved crash/generation

# --- the audit log cannot be written -----------------------------------------
# A file size limit set on the running server (prlimit) makes its audit
# writes fail with EFBIG, like a full disk. A request whose line cannot be
# written fails with KMSInternalException and releases nothing; so does
# every line reserved after it; the log is cut back to the last written
# line and carries on once writes work again. So: as many new lines as
# requests answered 200, and the log verifies.
expect 0 "kms init (audit-full state)" "$WARD" kms init --state afull
cp out.log afull.json
AK=$(jget afull.json j.AccessKeyId)
SK=$(jget afull.json j.SecretAccessKey)
if ! command -v prlimit >/dev/null; then
	bad "prlimit is missing (util-linux, Debian's base system)"
elif ! start_server afull serve-afull; then
	bad "the audit-full server did not start"
else
	SPID2=$PID_OUT
	PORT=$PORT_OUT
	printf '{"Description":"audit full"}' >af-ck.json
	RAWOUT=af-ck.out raw TrentService.CreateKey af-ck.json
	AFKEY=$(sed -n 's/.*"KeyId":"\([0-9a-f-]*\)".*/\1/p' af-ck.out)
	printf '{"KeyId":"%s","NumberOfBytes":32}' "$AFKEY" >af-gr.json
	L0=$(wc -l <afull/audit.log)
	# room for about four more lines
	prlimit --pid "$SPID2" --fsize=$(($(stat -c %s afull/audit.log) + 4 * $(tail -n 1 afull/audit.log | wc -c))):unlimited
	AFW=""
	for w in 1 2 3; do
		(
			for n in 1 2 3 4 5 6 7 8; do
				RAWOUT=af$w-$n.out raw TrentService.GenerateDataKey af-gr.json 2>/dev/null
				echo "$HTTP" >>af-codes$w.txt
			done
		) &
		AFW="$AFW $!"
	done
	for p in $AFW; do wait "$p"; done
	OK200=$(cat af-codes*.txt | grep -c '^200$')
	E500=$(cat af-codes*.txt | grep -c '^500$')
	if [ "$OK200" -ge 1 ] && [ "$E500" -ge 1 ] && [ $((OK200 + E500)) = 24 ]; then
		ok "audit log at its size limit: $OK200 answered, $E500 refused (500), none other"
	else
		bad "audit log at its size limit: $(sort af-codes*.txt | uniq -c | tr '\n' ' ')"
	fi
	# each response on its own: refused ones name the exception and
	# carry no key; answered ones carry both fields
	refused=0 leaky=0 odd=0
	for f in af[123]-*.out; do
		if grep -q '"__type":"KMSInternalException"' "$f"; then
			refused=$((refused + 1))
			grep -q 'Plaintext\|CiphertextBlob' "$f" && leaky=$((leaky + 1))
		elif ! grep -q '"Plaintext"' "$f" || ! grep -q '"CiphertextBlob"' "$f"; then
			odd=$((odd + 1))
		fi
	done
	if [ "$refused" = "$E500" ] && [ "$leaky" = 0 ] && [ "$odd" = 0 ]; then
		ok "the $refused refused requests say KMSInternalException and carry no key"
	else
		bad "refused responses: $refused of $E500 name KMSInternalException, $leaky carry a key, $odd others lack one"
	fi
	has "audit log:" "serve logs the failed audit writes" serve-afull.err
	L1=$(wc -l <afull/audit.log)
	if [ $((L1 - L0)) = "$OK200" ]; then ok "one new audit line per answered request ($OK200)"; else
		bad "$((L1 - L0)) new audit lines for $OK200 answered requests"
	fi
	prlimit --pid "$SPID2" --fsize=unlimited
	RAWOUT=af-after.out raw TrentService.GenerateDataKey af-gr.json
	if [ "$HTTP" = 200 ]; then ok "with room again, requests are answered"; else bad "after the limit was lifted: HTTP $HTTP"; fi
	kill -TERM "$SPID2"
	wait_exit "$SPID2" 20
	SPID2=""
	expect 0 "audit verify after failed audit writes" "$WARD" kms audit verify --state afull
	json "audit verify: every written line chains, no torn tail" "j.Verified===true && j.TornTail===undefined && j.Lines===$((L1 + 1))"
fi

echo "runtime: $((SECONDS - START)) s, $REQS requests"
finish awscli-kms
