#!/usr/bin/env bash
# ward infer end to end, with real parts only: ward kms serve (trusting the
# sandbox's attestation root), ward proxy (vsock 3:8000 to it), sandbox
# enclaves of images from ward build-enclave --model-runtime xgboost
# running the agent, and XGBoost models trained here (infer_tool, on
# XGBoost's C API) and encrypted with ward encrypt under a key pinned with
# ward kms pin to the image's PCR0.
#   answers: predictions equal XGBoost's own on the host (within 1e-6) for
#     CSV, JSON, missing values and a 3-class model; 4 requests at once
#   decrypted once: 100 requests add no KMS Decrypt of the model's key
#     (audit log); the plaintext model is nowhere in the enclave's
#     filesystem after serving (a control copy of it is found); a model
#     file replaced in place is served as the new model
#   encrypted input: rows under the data owner's key (also pinned) give
#     the same answer, and its Decrypt is in the audit log
#   receipts: verify with ward attest verify --receipt; a changed input,
#     output, model or receipt does not; the agent's attest refuses user
#     data that would forge one
#   errors: no model, wrong feature count, rows that do not parse, a
#     corrupt model, a modified ciphertext, an input over the limit, an
#     image without the runtime, a debug-mode enclave and a modified image
#     (AccessDenied naming the PCR0 and KMS's reason)
# usage: infer.sh WARD_BIN INFER_TOOL AGENT_KMS_BIN WORKDIR
set -uo pipefail
WARD=$(realpath "$1")
TOOL=$(realpath "$2")
KMSH=$(realpath "$3")
WORK=$4
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK" || exit 1
WORK=$(pwd)

if ! unshare -U -r -p -n -m --fork true 2>/dev/null; then
	echo "SKIP: this machine does not allow user namespaces (unshare -U fails)"
	exit 77
fi
command -v node >/dev/null || { echo "SKIP: node is missing (scripts/install-deps installs it)"; exit 77; }
RUN=$(mktemp -d /tmp/ward-in.XXXXXX) && chmod 755 "$RUN" || exit 1
export WARD_RUN_DIR=$RUN WARD_CA_DIR=$WORK/ca WARD_ENCLAVE_BACKEND=sandbox
NCPU=$(nproc)
printf 'memory_mib: 4096\ncpu_pool: 0-%d\n' $((NCPU - 1)) >allocator.yaml
export WARD_ALLOCATOR=$WORK/allocator.yaml
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
export AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_ENDPOINT_URL AWS_SESSION_TOKEN AWS_DEFAULT_REGION
PIDS=()
cleanup() {
	"$WARD" terminate-enclave --all >/dev/null 2>&1
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$RUN"
}
trap cleanup EXIT
wait_for() { # FILE PATTERN [TENTHS]
	local i
	for ((i = 0; i < ${3:-100}; i++)); do
		grep -q -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
die() { bad "$1"; [ -n "${2:-}" ] && sed 's/^/      /' "$2" | head -20; finish infer; exit 1; }

# ---- the key service, the vendor's key and the data owner's ---------------------
"$WARD" ca init --dir ca >/dev/null 2>&1 || die "ward ca init"
"$WARD" kms init --state st >admin.json || die "ward kms init"
"$WARD" kms serve --state st --listen 127.0.0.1:0 --trust-root ca/root.pem >serve.ready 2>serve.log &
PIDS+=($!)
wait_for serve.ready tcp: || die "ward kms serve did not start" serve.log
KPORT=$(sed -n 's/.*"tcp:127\.0\.0\.1:\([0-9]*\)".*/\1/p' serve.ready)
URL=http://127.0.0.1:$KPORT
AWS_ACCESS_KEY_ID=$(jget admin.json j.AccessKeyId)
AWS_SECRET_ACCESS_KEY=$(jget admin.json j.SecretAccessKey)
AWS_REGION=$(jget admin.json j.Region)
ACCOUNT=$(jget admin.json j.AccountId)
export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION
export AWS_ENDPOINT_URL_KMS=$URL
KEY=$("$KMSH" "$URL" "$ACCOUNT") || die "creating the vendor's key"
KEY2=$("$KMSH" "$URL" "$ACCOUNT") || die "creating the data owner's key"
ok "keys: the vendor's ${KEY##*/}, the data owner's ${KEY2##*/}"
decrypts() { grep -c "\"operation\":\"Decrypt\".*${1##*/}" st/audit.log 2>/dev/null; }

# ---- models and rows ------------------------------------------------------------
"$TOOL" train model.json --features 30 --rows 600 --rounds 20 || die "training"
"$TOOL" train model3.json --features 8 --rows 400 --rounds 10 --classes 3 --seed 5 || die "training 3 classes"
"$TOOL" rows rows.csv 200 30 1 || die "rows"
"$TOOL" rows rows.json 50 30 2 --json || die "rows json"
"$TOOL" rows rows-missing.csv 50 30 3 --missing || die "rows missing"
"$TOOL" rows rows3.csv 40 8 4 || die "rows 3"
"$TOOL" rows rows29.csv 5 29 5 || die "rows 29"
# the JSON rows as CSV, for the native reference
node -e "const j=JSON.parse(require('fs').readFileSync('rows.json','utf8'));
	console.log(j[0].map((_,i)=>'f'+i).join(','));
	for (const r of j) console.log(r.map(v=>v===null?'':v).join(','))" >rows-json.csv
printf 'not a model, but encrypted as one\n' >junk.model
head -c 300000 /dev/urandom >>junk.model
for m in model model3; do
	expect 0 "ward encrypt $m.json under the vendor's key" \
		"$WARD" encrypt --key-id "$KEY" -o $m.enc $m.json
done
expect 0 "ward encrypt a file XGBoost cannot load" "$WARD" encrypt --key-id "$KEY" -o junk.enc junk.model
expect 0 "ward encrypt the rows under the data owner's key" \
	"$WARD" encrypt --key-id "$KEY2" -o rows.csv.enc rows.csv
cp model.enc bad.enc
SZ=$(stat -c %s model.enc)
flip bad.enc $((SZ / 2))
cmp -s model.enc bad.enc && die "bad.enc is not changed"

# ---- images ---------------------------------------------------------------------
mkdir -p rootfs/etc
image() { # NAME [more build-enclave flags]
	local name=$1
	shift
	"$WARD" build-enclave --rootfs rootfs "$@" --output-file "$name.eif" >"$name.json" 2>"$name.err" ||
		die "build $name.eif" "$name.err"
}
image infer --model-runtime xgboost
image changed --model-runtime xgboost --env X=1
image plain
PCR0=$(jget infer.json j.Measurements.PCR0)
PCR0X=$(jget changed.json j.Measurements.PCR0)
PCR0P=$(jget plain.json j.Measurements.PCR0)
[ "$PCR0" != "$PCR0X" ] && [ "$PCR0" != "$PCR0P" ] && ok "--model-runtime and --env change PCR0" ||
	bad "PCR0s $PCR0 $PCR0X $PCR0P"
expect 2 "build-enclave --model-runtime nosuch fails" "$WARD" build-enclave --rootfs rootfs \
	--model-runtime nosuch --output-file x.eif
has 'unknown' "and says the runtime is unknown" err.log
for k in "$KEY" "$KEY2"; do
	expect 0 "ward kms pin ${k##*/} to the image's PCR0" "$WARD" kms pin "$k" --pcr0 "$PCR0" --endpoint-url "$URL"
done

# ---- the proxy and the enclave -------------------------------------------------
printf 'allowlist:\n- {address: 127.0.0.1, port: %s}\n' "$KPORT" >kms.yaml
"$WARD" proxy --config kms.yaml 8000 127.0.0.1 "$KPORT" >proxy.out 2>proxy.err &
PIDS+=($!)
wait_for proxy.out '"Listen"' || die "the proxy did not start" proxy.err
MEM=$((($(stat -c %s infer.eif) * 4 >> 20) + 128))
run_enclave() { # NAME EIF [flags]; sets CID
	local name=$1 eif=$2 i
	shift 2
	"$WARD" run-enclave --eif-path "$eif" --memory "$MEM" --cpu-count 1 \
		--enclave-name "$name" "$@" >"run-$name.json" 2>"run-$name.err" ||
		die "run-enclave $name" "run-$name.err"
	CID=$(jget "run-$name.json" j.EnclaveCID)
	for ((i = 0; i < 100; i++)); do
		[ -S "$RUN/vsock/$CID/5000" ] && return 0
		sleep 0.1
	done
	die "the agent in $name does not answer" "run-$name.err"
}
terminate() { "$WARD" terminate-enclave --enclave-id "$(jget "run-$1.json" j.EnclaveID)" >/dev/null; }
run_enclave main infer.eif
MAIN=$CID
for f in model.enc model3.enc junk.enc bad.enc; do
	expect 0 "ward cp $f into the enclave" "$WARD" cp --enclave-cid "$MAIN" $f enclave:$f
done
inf() { # CID MODEL INPUT [flags]: ward infer
	local cid=$1 model=$2 input=$3
	shift 3
	"$WARD" infer --enclave-cid "$cid" --model "enclave:$model" --input "$input" "$@"
}
# same OUT NATIVE NAME: every probability of ward infer's answer (OUT)
# equals the native one (NATIVE: lines of probabilities) within 1e-6
same_preds() {
	if node -e "
		const fs=require('fs'), j=JSON.parse(fs.readFileSync('$1','utf8'));
		const n=fs.readFileSync('$2','utf8').trim().split('\n').map(l=>l.split(' ').map(Number));
		if (j.predictions.length!==n.length||j.rows!==n.length) { console.error('rows',j.predictions.length,n.length); process.exit(1); }
		let worst=0;
		j.predictions.forEach((p,i)=>{ if (p.probabilities.length!==n[i].length) process.exit(1);
			p.probabilities.forEach((v,k)=>{ worst=Math.max(worst,Math.abs(v-n[i][k])); });
			const best=n[i].indexOf(Math.max(...n[i])); if (p.label!==best) { console.error('label',i); process.exit(1); } });
		if (worst>1e-6) { console.error('worst',worst); process.exit(1); }
		console.error('worst difference', worst)" 2>same.err; then
		ok "$3 ($(cat same.err))"
	else
		bad "$3"; sed 's/^/      /' same.err | head -5
	fi
}

# ---- answers equal XGBoost's own ---------------------------------------------------
before=$(decrypts "$KEY")
expect 0 "ward infer: 200 CSV rows" inf "$MAIN" model.enc rows.csv --output out.json
"$TOOL" predict model.json rows.csv >native.txt || die "native predictions"
same_preds out.json native.txt "the enclave's predictions equal XGBoost's on the host"
json_of() { node -e "const j=JSON.parse(require('fs').readFileSync('$1','utf8')); if(!($2)) process.exit(1)"; }
json_of out.json "j.pcr0==='$PCR0' && j.model_sha384.length===96 && j.objective==='binary:logistic'" &&
	ok "the answer names the image's PCR0, the model's hash and its objective" || bad "pcr0/model/objective in out.json"
[ "$(decrypts "$KEY")" = $((before + 1)) ] && ok "one KMS Decrypt of the model's key for the first request" ||
	bad "Decrypts of the model's key: $before -> $(decrypts "$KEY")"
expect 0 "ward infer: JSON rows" inf "$MAIN" model.enc rows.json --output out-json.json
"$TOOL" predict model.json rows-json.csv >native-json.txt
same_preds out-json.json native-json.txt "JSON rows: the same as XGBoost's"
expect 0 "ward infer: rows with missing values" inf "$MAIN" model.enc rows-missing.csv --output out-miss.json
"$TOOL" predict model.json rows-missing.csv >native-miss.txt
same_preds out-miss.json native-miss.txt "missing values: the same as XGBoost's"
expect 0 "ward infer: a 3-class model" inf "$MAIN" model3.enc rows3.csv --format csv --output out3.json
"$TOOL" predict model3.json rows3.csv >native3.txt
same_preds out3.json native3.txt "3 classes: the same as XGBoost's"
expect 0 "ward infer: rows on standard input, answer on standard output" \
	bash -c "'$WARD' infer --enclave-cid $MAIN --model enclave:model.enc --input - <rows.csv"
same out.log out.json "the answer is the same, byte for byte"

# ---- decrypted once ----------------------------------------------------------------
before=$(decrypts "$KEY")
fails=0
for ((i = 0; i < 100; i++)); do
	inf "$MAIN" model.enc rows.csv >o.json 2>o.err || fails=$((fails + 1))
done
cmp -s o.json out.json && [ $fails = 0 ] && ok "100 more requests answered, the last as the first" ||
	bad "100 requests: $fails failed"
after=$(decrypts "$KEY")
[ "$after" = "$before" ] && ok "100 requests: no KMS Decrypt of the model's key (audit log: $before before, $after after)" ||
	bad "100 requests made $((after - before)) Decrypts of the model's key"
pids=()
for i in 1 2 3 4; do
	inf "$MAIN" model.enc rows.csv >conc$i.json 2>conc$i.err &
	pids+=($!)
done
cfail=0
for i in 1 2 3 4; do wait "${pids[$((i - 1))]}" || cfail=$((cfail + 1)); cmp -s conc$i.json out.json || cfail=$((cfail + 1)); done
[ $cfail = 0 ] && ok "4 requests at once: the same answer each" || bad "4 at once: $cfail failures"

# the plaintext model is nowhere in the enclave's filesystem
ROOTFS=""
for p in $(pgrep -f '/ward/bin/ward agent'); do
	if [ -f "/proc/$p/root/workspace/model.enc" ] && cmp -s "/proc/$p/root/workspace/model.enc" model.enc &&
		[ -f "/proc/$p/root/workspace/bad.enc" ]; then ROOTFS=/proc/$p/root; break; fi
done
if [ -z "$ROOTFS" ]; then
	bad "cannot find the agent's root to search (pgrep '/ward/bin/ward agent')"
else
	CHUNK=$(node -e "const s=require('fs').readFileSync('model.json','latin1');const i=Math.floor(s.length*0.45);process.stdout.write(s.slice(i,i+64))")
	search() { grep -rlF --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev -e "$CHUNK" "$ROOTFS/" 2>/dev/null; }
	found=$(search)
	[ -z "$found" ] && ok "the plaintext model is not in the enclave's filesystem (64 bytes of it searched for)" ||
		bad "the plaintext model is in the enclave: $found"
	expect 0 "control: ward cp the plaintext model into the workspace" "$WARD" cp --enclave-cid "$MAIN" model.json enclave:control.json
	found=$(search)
	[ -n "$found" ] && ok "control: the search finds it there ($found)" || bad "control: the search does not find a copy"
	"$WARD" cp --enclave-cid "$MAIN" /dev/null enclave:control.json >/dev/null 2>&1
fi

# ---- encrypted input ------------------------------------------------------------------
before=$(decrypts "$KEY2")
expect 0 "ward infer: rows encrypted under the data owner's key" inf "$MAIN" model.enc rows.csv.enc --output out-enc.json
json_of out-enc.json "true" && node -e "
	const a=JSON.parse(require('fs').readFileSync('out-enc.json')).predictions, b=JSON.parse(require('fs').readFileSync('out.json')).predictions;
	if (JSON.stringify(a)!==JSON.stringify(b)) process.exit(1)" &&
	ok "the same predictions as for the plaintext rows" || bad "encrypted rows: other predictions"
[ "$(decrypts "$KEY2")" -gt "$before" ] && ok "the data owner's key was asked (audit log)" ||
	bad "no Decrypt of the data owner's key"

# ---- receipts -----------------------------------------------------------------------
NONCE=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
expect 0 "ward infer --receipt" inf "$MAIN" model.enc rows.csv --output r-out.json --receipt r.json --nonce "$NONCE"
vr() { "$WARD" attest verify --no-aws-root --root ca/root.pem "$@"; }
expect 0 "ward attest verify --receipt: it verifies" vr --receipt r.json --input rows.csv --output r-out.json \
	--model model.enc --expect-pcr "0=$PCR0" --nonce "$NONCE"
json "the verification names PCR0 and the hashes" "j.Verified===true && j.Receipt && j.PCRs"
sed 's/^\([^,]*\),/\1X,/;3s/[0-9]/7/' rows.csv >rows-changed.csv
cmp -s rows.csv rows-changed.csv && die "rows-changed.csv is not changed"
expect 5 "a changed input does not verify" vr --receipt r.json --input rows-changed.csv --output r-out.json
has 'input' "the message names the input" err.log
sed '3s/[0-9]/3/' r-out.json >out-changed.json
cmp -s out-changed.json r-out.json && sed -i '3s/0/1/' out-changed.json
expect 5 "a changed output does not verify" vr --receipt r.json --input rows.csv --output out-changed.json
has 'output' "the message names the output" err.log
expect 5 "another model does not verify" vr --receipt r.json --input rows.csv --output r-out.json --model model3.enc
has 'model' "the message names the model" err.log
# a forger edits the receipt to name the changed output's hash
OUTX=$(sha384sum out-changed.json | cut -d' ' -f1)
node -e "const fs=require('fs'),r=JSON.parse(fs.readFileSync('r.json'));r.output_sha384='$OUTX';fs.writeFileSync('r-forged.json',JSON.stringify(r))"
expect 5 "an edited receipt does not verify" vr --receipt r-forged.json --input rows.csv --output out-changed.json
has 'altered' "the message says the receipt was altered" err.log
UD=$(printf 'ward-receipt-v1:' | od -An -tx1 | tr -d ' \n')$(sha384sum out-changed.json | cut -d' ' -f1)
expect 4 "the agent's attest refuses user data shaped as a receipt's" \
	"$WARD" attest --enclave-cid "$MAIN" --user-data "$UD" --no-aws-root --root ca/root.pem
has 'reserved for receipts' "and says why" err.log

# ---- errors -------------------------------------------------------------------------
expect 3 "no such model: ENOENT" inf "$MAIN" nosuch.enc rows.csv
has 'no model at' "the message says there is no model there" err.log
expect 4 "29 features for a 30-feature model" inf "$MAIN" model.enc rows29.csv
has 'wrong feature count: the model takes 30 features' "the message gives both counts" err.log
printf 'a,b\n1,2\nx,y,z\n' >garbage.csv
expect 4 "rows that do not parse" inf "$MAIN" model.enc garbage.csv
has 'line 3' "the message names the line" err.log
expect 4 "a corrupt model: BadModel" inf "$MAIN" junk.enc rows.csv
has 'BadModel' "the code is BadModel" err.log
has 'not an XGBoost JSON model' "the message says what a model must be" err.log
printf '{"learner": {"attributes": {}, "gradient_booster": [1, 2' >trunc.model
expect 0 "ward encrypt a truncated JSON model" "$WARD" encrypt --key-id "$KEY" -o trunc.enc trunc.model
expect 0 "ward cp it in" "$WARD" cp --enclave-cid "$MAIN" trunc.enc enclave:trunc.enc
expect 4 "a truncated JSON model: BadModel from XGBoost" inf "$MAIN" trunc.enc rows.csv
has 'BadModel' "the code is BadModel" err.log
expect 6 "a modified model ciphertext: DecryptFailed" inf "$MAIN" bad.enc rows.csv
has 'DecryptFailed' "the code is DecryptFailed" err.log
head -c $((65 << 20)) /dev/zero >huge.csv
expect 9 "an input over 64 MiB: LimitExceeded" inf "$MAIN" model.enc huge.csv
has 'LimitExceeded' "the code is LimitExceeded" err.log
expect 0 "the agent serves on after the errors" inf "$MAIN" model.enc rows.csv --output after.json
same after.json out.json "the same answer as before"
rm -f huge.csv
# a model file replaced in place is a new model (not the one still open)
expect 0 "ward cp the 3-class model over enclave:model.enc" "$WARD" cp --enclave-cid "$MAIN" model3.enc enclave:model.enc
expect 0 "ward infer: the replaced file" inf "$MAIN" model.enc rows3.csv --output repl.json
same_preds repl.json native3.txt "the replaced file's model answers, not the one opened before"
expect 0 "ward cp the first model back" "$WARD" cp --enclave-cid "$MAIN" model.enc enclave:model.enc
expect 0 "ward infer: the first model again" inf "$MAIN" model.enc rows.csv --output again.json
same again.json out.json "its answer is the first one again"

terminate main
"$WARD" kms pin "$KEY" --pcr0 "$PCR0P" --endpoint-url "$URL" >/dev/null 2>&1 || bad "pin to the plain image"
run_enclave plain plain.eif
expect 0 "ward cp the model into an image without the runtime" "$WARD" cp --enclave-cid "$CID" model.enc enclave:model.enc
expect 8 "an image without --model-runtime: Unsupported" inf "$CID" model.enc rows.csv
has 'model-runtime xgboost' "the message says how to add it" err.log
terminate plain
"$WARD" kms pin "$KEY" --pcr0 "$PCR0" --endpoint-url "$URL" >/dev/null 2>&1 || bad "pin back"

refused() { # NAME CID PCR0
	local before
	before=$(decrypts "$KEY")
	expect 5 "$1: AccessDenied" inf "$2" model.enc rows.csv --output denied.json
	has 'AccessDenied' "$1: the code is AccessDenied" err.log
	has "PCR0 $3" "$1: the message names the enclave's PCR0" err.log
	has 'denied by statement "ward-pin-' "$1: and KMS's reason (the pin statement)" err.log
	absent denied.json "$1: no answer written"
	[ "$(decrypts "$KEY")" -gt "$before" ] && ok "$1: KMS was asked and said no" || bad "$1: KMS was not asked"
}
run_enclave debug infer.eif --debug-mode
"$WARD" cp --enclave-cid "$CID" model.enc enclave:model.enc >/dev/null 2>&1
refused "debug mode" "$CID" "$(printf '0%.0s' $(seq 96))"
terminate debug
run_enclave changed changed.eif
"$WARD" cp --enclave-cid "$CID" model.enc enclave:model.enc >/dev/null 2>&1
refused "a modified image" "$CID" "$PCR0X"
terminate changed

finish infer
