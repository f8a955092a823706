#!/usr/bin/env bash
# The host client with real parts: ward cp against a real `ward agent`
# (both ways, checksums, stdin/stdout, directories, failures that leave
# nothing, the agent's errors and their exit codes), ward exec and the
# protocol's corners against a scripted agent (client_agent.c: output seen
# live, exit status and signals, AccessDenied, cancel on SIGINT, an upload
# refused half way, a download cut short, an agent that stalls or speaks
# another version), and ward attest / cp against the agent in a sandbox
# enclave (PCRs, nonce, roots, debug mode).
# usage: client.sh WARD_BIN CLIENT_AGENT_BIN WORKDIR
set -uo pipefail
WARD=$(realpath "$1")
FAKE=$(realpath "$2")
WORK=$3
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK" || exit 1
WORK=$(pwd)

# socket paths must fit in 108 bytes: a short directory for them
SOCK=$(mktemp -d /tmp/ward-cl.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	if [ -n "${RUN:-}" ]; then
		"$WARD" terminate-enclave --all >/dev/null 2>&1
		rm -rf "$RUN"
	fi
	rm -rf "$SOCK"
}
trap cleanup EXIT

sha() { sha256sum "$1" | cut -d' ' -f1; }
# start_agent NAME [FLAGS...]: a real agent on $SOCK/NAME.sock, workspace ws-NAME
start_agent() {
	local name=$1
	shift
	mkdir -p "ws-$name"
	rm -f "agent-$name.ready"
	"$WARD" agent --listen "unix:$SOCK/$name.sock" --workspace "$WORK/ws-$name" \
		--ready-fd 3 "$@" 3>"agent-$name.ready" 2>"agent-$name.log" &
	PIDS+=($!)
	for _ in $(seq 100); do grep -q ready "agent-$name.ready" 2>/dev/null && return 0; sleep 0.1; done
	bad "agent $name did not start"
	cat "agent-$name.log"
	return 1
}
start_fake() { # MODE NAME
	mkdir -p "fake-$2"
	"$FAKE" "$1" "$SOCK/$2.sock" "$WORK/fake-$2" 2>"fake-$2.log" &
	PIDS+=($!)
	for _ in $(seq 100); do [ -S "$SOCK/$2.sock" ] && return 0; sleep 0.1; done
	bad "fake agent $2 did not start"
}

# ---- help and usage -----------------------------------------------------------
expect 0 "cp --help" "$WARD" cp --help
has 'enclave:PATH' "cp --help explains enclave:PATH"
has 'leaves nothing' "cp --help says a failed copy leaves nothing"
expect 0 "exec --help" "$WARD" exec --help
has 'AccessDenied' "exec --help names AccessDenied"
has 'as the ENCLAVE reaches it' "exec --help says whose view the endpoint is"
expect 0 "sync --help" "$WARD" sync --help
has 'fusermount3 -u DIR' "sync --help says how to unmount"
expect 0 "attest --help" "$WARD" attest --help
has 'enclave-cid' "attest --help shows --enclave-cid"
has 'attest verify FILE' "attest --help still shows attest verify"
expect 2 "cp with no enclave side" "$WARD" cp --agent unix:/x a b
has 'exactly one' "the reason is given" err.log
expect 2 "cp with two enclave sides" "$WARD" cp --agent unix:/x enclave:a enclave:b
expect 2 "cp without --enclave-cid or --agent" "$WARD" cp a enclave:b
has 'enclave-cid' "it asks which enclave" err.log
expect 2 "cp --enclave-cid abc" "$WARD" cp --enclave-cid abc a enclave:b
expect 2 "cp with both --enclave-cid and --agent" "$WARD" cp --enclave-cid 16 --agent unix:/x a enclave:b
expect 2 "exec without --app" "$WARD" exec --agent unix:/x -- true
expect 2 "exec without a command" "$WARD" exec --agent unix:/x --app enclave:a
expect 2 "exec --context without =" "$WARD" exec --agent unix:/x --app enclave:a --context nope -- true
expect 2 "attest --enclave-cid with a bad CID" "$WARD" attest --enclave-cid 2
expect 2 "attest with a bad nonce" "$WARD" attest --enclave-cid 16 --nonce xyz
expect 2 "sync without -d" "$WARD" sync --agent unix:/x
expect 3 "cp to an agent that is not there" "$WARD" cp --agent "unix:$SOCK/none.sock" /etc/hostname enclave:x
expect 3 "attest of a CID nobody listens on" env WARD_RUN_DIR="$SOCK" "$WARD" attest --enclave-cid 77
has 'nothing listens on vsock 77:5000' "it says nothing listens" err.log

# ---- ward cp against a real agent ----------------------------------------------
start_agent main || exit 1
A=(--agent "unix:$SOCK/main.sock")
head -c $((5 * 1024 * 1024 + 123)) /dev/urandom >src.bin
chmod 640 src.bin
expect 0 "upload 5 MiB" "$WARD" cp "${A[@]}" src.bin enclave:data.bin
[ "$(sha ws-main/data.bin)" = "$(sha src.bin)" ] && ok "the workspace holds the same bytes" || bad "the workspace copy differs"
[ "$(stat -c %a ws-main/data.bin)" = 640 ] && ok "the mode travels (640)" || bad "mode $(stat -c %a ws-main/data.bin), not 640"
expect 0 "download it" "$WARD" cp "${A[@]}" enclave:data.bin back.bin
[ "$(sha back.bin)" = "$(sha src.bin)" ] && ok "the download has the same checksum" || bad "the download differs"
expect 0 "download with a leading slash" "$WARD" cp "${A[@]}" enclave:/data.bin back2.bin
same back2.bin src.bin "enclave:/PATH means the same file"
: >empty.bin
expect 0 "upload an empty file" "$WARD" cp "${A[@]}" empty.bin enclave:empty.bin
[ -f ws-main/empty.bin ] && [ ! -s ws-main/empty.bin ] && ok "it arrives empty" || bad "no empty file in the workspace"
expect 0 "download an empty file" "$WARD" cp "${A[@]}" enclave:empty.bin empty-back.bin
[ -f empty-back.bin ] && [ ! -s empty-back.bin ] && ok "an empty file comes back" || bad "empty download"
printf 'from stdin\n' >stdin.txt
expect 0 "upload from standard input" bash -c "'$WARD' cp ${A[*]} - enclave:stdin.txt <stdin.txt"
same ws-main/stdin.txt stdin.txt "standard input arrives"
expect 0 "download to standard output" "$WARD" cp "${A[@]}" enclave:stdin.txt -
same out.log stdin.txt "standard output gets the file"
mkdir -p ws-main/sub outdir
expect 0 "upload into a workspace directory" "$WARD" cp "${A[@]}" src.bin enclave:sub
same ws-main/sub/src.bin src.bin "enclave:DIR takes the source's name"
expect 0 "upload into enclave:sub/ with another name" "$WARD" cp "${A[@]}" stdin.txt enclave:sub/
same ws-main/sub/stdin.txt stdin.txt "enclave:DIR/ takes the source's name"
expect 0 "download into a local directory" "$WARD" cp "${A[@]}" enclave:sub/src.bin outdir
same outdir/src.bin src.bin "a local DIR takes the file's name"
echo old >keep.bin
expect 0 "download over an existing file" "$WARD" cp "${A[@]}" enclave:stdin.txt keep.bin
same keep.bin stdin.txt "an existing file is replaced, like cp"
expect 2 "upload a directory" "$WARD" cp "${A[@]}" outdir enclave:x
expect 2 "download a directory" "$WARD" cp "${A[@]}" enclave:sub y
has 'is a directory' "the reason is given" err.log

# failures leave nothing, and keep what was there
before=$(ls -A . | wc -l)
expect 3 "download of a missing file" "$WARD" cp "${A[@]}" enclave:missing.bin out.bin
has 'enclave: ENOENT' "the agent's error is shown as it is" err.log
absent out.bin "a failed download"
[ "$(ls -A . | wc -l)" -eq "$before" ] && ok "no temporary file is left" || bad "files appeared: $(ls -A)"
echo old >keep2.bin
expect 3 "a failed download over an existing file" "$WARD" cp "${A[@]}" enclave:missing.bin keep2.bin
[ "$(cat keep2.bin)" = old ] && ok "the existing file is untouched" || bad "keep2.bin changed"
expect 3 "upload below a file (ENOTDIR)" "$WARD" cp "${A[@]}" src.bin enclave:data.bin/x
has 'ENOTDIR' "ENOTDIR is named" err.log
expect 3 "upload into a missing directory" "$WARD" cp "${A[@]}" src.bin enclave:no/such/x
absent ws-main/no "a failed upload's directory"

# the workspace bound: an upload over it is refused and leaves nothing
start_agent small --workspace-size 1M || exit 1
head -c $((8 * 1024 * 1024)) /dev/urandom >big8.bin
expect 9 "an upload over the workspace bound (exit 9)" "$WARD" cp --agent "unix:$SOCK/small.sock" big8.bin enclave:big8.bin
has 'enclave: ' "the agent's message is shown" err.log
absent ws-small/big8.bin "the refused upload"
[ "$(ls -A ws-small | wc -l)" -eq 0 ] && ok "the workspace holds nothing of it" || bad "left in the workspace: $(ls -A ws-small)"

# a device or FIFO as the destination is written to, never replaced by a
# file (ward cp enclave:x /dev/null once turned /dev/null into a file)
mknod nulldev c 1 3 && mkfifo fifo.out || bad "mknod/mkfifo"
expect 0 "ward cp into a character device" "$WARD" cp "${A[@]}" enclave:data.bin nulldev
[ -c nulldev ] && ok "the device is still a device" || bad "the device was replaced: $(ls -l nulldev)"
cat fifo.out >fifo.got &
catpid=$!
expect 0 "ward cp into a FIFO" "$WARD" cp "${A[@]}" enclave:data.bin fifo.out
wait "$catpid"
[ -p fifo.out ] && cmp -s fifo.got ws-main/data.bin && ok "the FIFO is still a FIFO and carried the file" ||
	bad "FIFO: $(ls -l fifo.out)"
rm -f nulldev fifo.out fifo.got

# throughput, for the record (the benchmark is bench/agent)
head -c $((256 * 1024 * 1024)) /dev/zero >zero.bin
t0=$(date +%s.%N)
"$WARD" cp "${A[@]}" zero.bin enclave:zero.bin 2>/dev/null
t1=$(date +%s.%N)
"$WARD" cp "${A[@]}" enclave:zero.bin zero-back.bin 2>/dev/null
t2=$(date +%s.%N)
same zero-back.bin zero.bin "256 MiB both ways"
echo "info  ward cp 256 MiB: up $(echo "256 / ($t1 - $t0)" | bc -l | cut -c1-6) MiB/s, down $(echo "256 / ($t2 - $t1)" | bc -l | cut -c1-6) MiB/s"
rm -f zero.bin zero-back.bin ws-main/zero.bin big8.bin

# exec against the real agent: its errors come back as they are
expect 3 "exec of a missing app" env AWS_ACCESS_KEY_ID=AKIDTEST AWS_SECRET_ACCESS_KEY=s AWS_REGION=eu-west-3 \
	"$WARD" exec "${A[@]}" --app enclave:nothere -- /bin/true
has 'enclave: ' "the agent's error is shown" err.log
expect 6 "exec of a file that is not an encrypted app (DecryptFailed, exit 6)" env AWS_ACCESS_KEY_ID=AKIDTEST \
	AWS_SECRET_ACCESS_KEY=s AWS_REGION=eu-west-3 "$WARD" exec "${A[@]}" --app enclave:data.bin -- /bin/true
has 'DecryptFailed' "DecryptFailed is named" err.log
expect 2 "exec with no region" env -u AWS_REGION -u AWS_DEFAULT_REGION AWS_CONFIG_FILE=/nonexistent \
	AWS_ACCESS_KEY_ID=AKIDTEST AWS_SECRET_ACCESS_KEY=s "$WARD" exec "${A[@]}" --app enclave:data.bin -- /bin/true
has 'region' "it asks for a region" err.log

# ---- exec and protocol corners against the scripted agent ----------------------
start_fake normal fake || exit 1
F=(--agent "unix:$SOCK/fake.sock")
export AWS_ACCESS_KEY_ID=AKIDTEST AWS_SECRET_ACCESS_KEY=secret-not-logged AWS_SESSION_TOKEN=tok AWS_REGION=eu-west-3
"$WARD" exec "${F[@]}" --app enclave:app.enc --key-id k1 --key-id k2 --context purpose=test \
	--env A=1 --endpoint-url http://kms.example:8000 -- lines arg >exec.out 2>exec.err &
EP=$!
sleep 1.2
if grep -q 'line 1' exec.out && kill -0 $EP 2>/dev/null; then
	ok "exec output is seen while the app still runs"
else bad "no live output (out: $(cat exec.out))"; fi
wait $EP
st=$?
[ $st -eq 7 ] && ok "the app's exit status comes through (7)" || bad "exit $st, expected 7"
has 'to stderr' "the app's standard error goes to standard error" exec.err
grep -q 'to stderr' exec.out && bad "stderr output went to stdout" || ok "and not to standard output"
has 'akid=AKIDTEST secret=yes token=yes region=eu-west-3 endpoint=http://kms.example:8000' \
	"credentials, region and endpoint are sent" fake-fake/exec.req
has 'app=app.enc argc=2 argv0=lines' "app and argv are sent" fake-fake/exec.req
has 'envc=1 keys=2 ctx=1' "env, key ids and context are sent" fake-fake/exec.req
grep -rq secret-not-logged exec.out exec.err && bad "the secret key appears in the output" || ok "the secret key is not printed"
expect 0 "AWS_ENDPOINT_URL_KMS is the default endpoint" env AWS_ENDPOINT_URL_KMS=http://from-env:1 \
	"$WARD" exec "${F[@]}" --app enclave:app.enc -- other
has 'endpoint=http://from-env:1' "it is sent" fake-fake/exec.req
expect 0 "--no-credentials" "$WARD" exec "${F[@]}" --app enclave:app.enc --no-credentials -- other
has 'akid=- ' "no credentials are sent" fake-fake/exec.req
expect 137 "an app killed by signal 9 exits 128+9" "$WARD" exec "${F[@]}" --app enclave:app.enc -- signal
has 'signal 9' "the signal is named" err.log
expect 5 "AccessDenied exits 5" "$WARD" exec "${F[@]}" --app enclave:app.enc -- denied
has 'enclave: AccessDenied: KMS refused' "the agent's reason is shown" err.log
# a background job of a script ignores SIGINT: give it back its default
for sig in INT TERM; do
	rm -f fake-fake/cancelled
	env --default-signal=INT "$WARD" exec "${F[@]}" --app enclave:app.enc -- hang >hang.out 2>hang.err &
	EP=$!
	for _ in $(seq 50); do grep -q started hang.out && break; sleep 0.1; done
	kill -$sig $EP
	wait $EP
	st=$?
	[ -f fake-fake/cancelled ] && ok "SIG$sig sends CANCEL for the app" || bad "SIG$sig: no CANCEL reached the agent"
	want=$((128 + $(kill -l $sig)))
	[ $st -eq $want ] && ok "ward exec then dies of SIG$sig ($want)" || bad "exit $st after SIG$sig, expected $want"
done
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_REGION

head -c $((64 * 1024 * 1024)) /dev/zero >z64.bin
rm -f fake-fake/put.count
expect 9 "an upload the agent refuses half way (ENOSPC, exit 9)" "$WARD" cp "${F[@]}" z64.bin enclave:full.bin
has 'ENOSPC' "the agent's code is shown" err.log
# the fake agent writes its count when the stream ends, which is after
# ward cp has seen the error and closed the connection: wait for it
for _ in $(seq 50); do [ -s fake-fake/put.count ] && break; sleep 0.1; done
n=$(cat fake-fake/put.count 2>/dev/null || echo 999)
[ "$n" -lt 64 ] && ok "sending stopped at the error ($n of 256 chunks sent)" || bad "$n chunks sent after the error"
expect 3 "a download cut short" "$WARD" cp "${F[@]}" enclave:trunc cut.bin
absent cut.bin "a download cut short"
rm -f z64.bin

start_fake old old || exit 1
expect 8 "an agent of another protocol version (exit 8)" "$WARD" cp --agent "unix:$SOCK/old.sock" src.bin enclave:x
has 'protocol' "it says the protocol differs" err.log
start_fake stall stall || exit 1
t0=$(date +%s)
expect 3 "an agent that stops answering (--timeout 2)" "$WARD" cp --agent "unix:$SOCK/stall.sock" --timeout 2 enclave:x y.bin
t1=$(date +%s)
[ $((t1 - t0)) -lt 10 ] && ok "it gives up in time ($((t1 - t0)) s)" || bad "it took $((t1 - t0)) s"
has 'did not answer within 2 s' "it says why" err.log
absent y.bin "the stalled download"

# ---- attest and cp against the agent in a sandbox enclave -----------------------
if ! unshare -U -r -p -n -m --fork true 2>/dev/null; then
	echo "skip  attestation in a sandbox enclave: this machine does not allow user namespaces"
	finish client
	exit
fi
RUN=$(mktemp -d /tmp/ward-clr.XXXXXX)
export WARD_RUN_DIR=$RUN WARD_CA_DIR=$WORK/ca WARD_ENCLAVE_BACKEND=sandbox
printf 'memory_mib: 2048\ncpu_pool: 0-%d\n' $(($(nproc) - 1)) >allocator.yaml
export WARD_ALLOCATOR=$WORK/allocator.yaml
"$WARD" ca init >/dev/null || bad "ca init"
"$WARD" ca init --dir otherca >/dev/null || bad "ca init otherca"
mkdir -p rootfs
expect 0 "build an image whose command is the agent" "$WARD" build-enclave --rootfs rootfs --output-file agent.eif
cp out.log agent.json
PCR0=$(jget agent.json j.Measurements.PCR0)
PCR1=$(jget agent.json j.Measurements.PCR1)
PCR2=$(jget agent.json j.Measurements.PCR2)
MEM=$((($(stat -c %s agent.eif) * 4 >> 20) + 64))
[ "$MEM" -lt 256 ] && MEM=256
expect 0 "run it" "$WARD" run-enclave --eif-path agent.eif --memory "$MEM" --cpu-count 1
CID=$(jget out.log j.EnclaveCID)
for _ in $(seq 100); do [ -S "$RUN/vsock/$CID/5000" ] && break; sleep 0.1; done
NONCE=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
expect 0 "attest: the image's PCR0-2 and our nonce" "$WARD" attest --enclave-cid "$CID" --nonce "$NONCE" \
	--expect-pcr "0=$PCR0" --expect-pcr "1=$PCR1" --expect-pcr "2=$PCR2" --user-data 0a0b
json "JSON: verified to the local root, our nonce, the PCRs" \
	"j.Verified===true && j.RootKind==='local' && j.Nonce==='$NONCE' && j.PCRs['0']==='$PCR0' && j.UserData==='0a0b' && j.Debug===false && j.Enclave==='enclave $CID'"
expect 0 "attest with a nonce of its own" "$WARD" attest --enclave-cid "$CID"
json "a random 32-byte nonce is used" "/^[0-9a-f]{64}$/.test(j.Nonce) && j.Nonce!=='$NONCE'"
expect 5 "a PCR that is not the expected one (exit 5)" "$WARD" attest --enclave-cid "$CID" --expect-pcr "0=${PCR1}"
has "PCR0: expected $PCR1, got $PCR0" "it says which PCR, expected and got" err.log
json "the JSON says it did not verify" "j.Verified===false && /PCR0/.test(j.Error)"
expect 5 "a root that did not sign it (exit 5)" "$WARD" attest --enclave-cid "$CID" --no-aws-root --root otherca/root.pem
expect 5 "the AWS root alone does not vouch for a sandbox" "$WARD" attest --enclave-cid "$CID" --root otherca/root.pem
expect 0 "--root naming the local root" "$WARD" attest --enclave-cid "$CID" --no-aws-root --root ca/root.pem -q
empty "-q prints no JSON"
expect 0 "cp into the enclave" "$WARD" cp --enclave-cid "$CID" src.bin enclave:in.bin
expect 0 "cp out of the enclave" "$WARD" cp --enclave-cid "$CID" enclave:in.bin enc-back.bin
[ "$(sha enc-back.bin)" = "$(sha src.bin)" ] && ok "the enclave's copy has the same checksum" || bad "the enclave's copy differs"
expect 3 "exec of a missing app in the enclave" env AWS_ACCESS_KEY_ID=AKIDTEST AWS_SECRET_ACCESS_KEY=s AWS_REGION=eu-west-3 \
	"$WARD" exec --enclave-cid "$CID" --app enclave:nothere -- /bin/true
"$WARD" terminate-enclave --all >/dev/null 2>&1
expect 0 "run it in debug mode" "$WARD" run-enclave --eif-path agent.eif --memory "$MEM" --cpu-count 1 --debug-mode
CID=$(jget out.log j.EnclaveCID)
for _ in $(seq 100); do [ -S "$RUN/vsock/$CID/5000" ] && break; sleep 0.1; done
expect 5 "attest of a debug-mode enclave with the image's PCR0 (exit 5)" "$WARD" attest --enclave-cid "$CID" --expect-pcr "0=$PCR0"
has 'debug mode' "it says debug mode" err.log
expect 0 "without expectations it verifies, marked Debug" "$WARD" attest --enclave-cid "$CID"
json "Debug is true" "j.Debug===true && j.Verified===true"
expect 5 "--no-debug refuses it" "$WARD" attest --enclave-cid "$CID" --no-debug
"$WARD" terminate-enclave --all >/dev/null 2>&1

finish client
