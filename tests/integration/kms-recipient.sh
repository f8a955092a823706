#!/bin/bash
# Recipient end to end against a real `ward kms serve`: attested Decrypt,
# GenerateDataKey and GenerateRandom under key policies pinned to PCRs
# (tests/integration/kms_recipient.c makes the documents and checks the
# answers). The server trusts sandbox CA A's root and not CA B's.
#   kms-recipient.sh WARD KMS_RECIPIENT WORKDIR
set -u
WARD=$1 PROG=$2 WORK=$3
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK" || exit 1
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; }
trap cleanup EXIT

"$WARD" kms init --state st >admin.json || exit 1
"$WARD" ca init --dir caA >/dev/null || exit 1
"$WARD" ca init --dir caB >/dev/null || exit 1
"$WARD" kms serve --state st --listen 127.0.0.1:0 --trust-root caA/root.pem \
	>ready 2>serve.log &
pid=$!
for _ in $(seq 100); do [ -s ready ] && break; sleep 0.05; done
port=$(sed -n 's/.*"tcp:127\.0\.0\.1:\([0-9]*\)".*/\1/p' ready)
if [ -z "$port" ]; then echo "FAIL  server did not start"; cat serve.log; exit 1; fi
field() { sed -n "s/.*\"$1\": *\"\([^\"]*\)\".*/\1/p" admin.json; }
export AWS_ACCESS_KEY_ID=$(field AccessKeyId)
export AWS_SECRET_ACCESS_KEY=$(field SecretAccessKey)
export AWS_REGION=$(field Region) WARD_TEST_ACCOUNT=$(field AccountId)
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
export AWS_EC2_METADATA_DISABLED=true
"$PROG" "http://127.0.0.1:$port" caA caB
rc=$?
# Every request above is in the audit log, and the chain verifies.
kill "$pid" && wait "$pid"; st=$?
pid=
if [ "$st" -ne 0 ]; then echo "FAIL  serve exited $st on SIGTERM"; rc=1; fi
if "$WARD" kms audit verify --state st >verify.json; then
	echo "ok    audit log verifies"
else
	echo "FAIL  audit log does not verify"; cat verify.json; rc=1
fi
if grep -q '"attestation":{"module_id":"i-0000000000000000-enc0000000000000000","pcr0":"5858' st/audit.log; then
	echo "ok    audit lines carry the attestation's module id and PCR0"
else
	echo "FAIL  no attestation in the audit log"; rc=1
fi
exit $rc
