#!/usr/bin/env bash
# ward exec end to end, with real parts only: ward kms serve (trusting the
# sandbox's attestation root), ward proxy (vsock 3:8000 to it), sandbox
# enclaves from ward build-enclave running their default command, the
# agent, and an application (agent_app.c) encrypted with ward encrypt
# under a key pinned with ward kms pin to the image's PCR0.
#   runs: output and exit codes come back; stdout and stderr apart; a
#     bare argv[0] is found in the app's bin/ or the app directory; the
#     environment; the workspace read and written; a line arrives before
#     the app exits (timestamped); a crash is a signal and the agent keeps
#     serving; 3 MB of output; a child left behind does not hold the exec;
#     Busy beyond 8 apps; SIGTERM cancels; KMS over TLS through the proxy
#     (SNI and the certificate checked against the URL's name)
#   the host cannot run code of its own beside the plaintext: argv[0] of
#     a program it uploaded (/workspace/evil, ../../../workspace/evil) or
#     of the image (/bin/sh) is BadRequest and nothing ran (a control
#     shows the uploaded program does run when the app itself runs it);
#     --env LD_PRELOAD, PATH, WARD_APP, PYTHONPATH, BASH_FUNC_x%%, a bad
#     name are BadRequest naming the variable, --env FOO=bar works; an
#     app's setsid()'d child is killed when its exec ends (it would write
#     a marker 3 s later) and a later app sees no stray process in /proc
#     (a control with a child of its own counts 1); a FIFO as the bundle
#     is EINVAL at once and the agent keeps serving
#   an image whose command is the agent with --app-key KEY (and a small
#     --workspace-size): the vendor's bundle runs; a bundle under a second
#     key the host controls (pinned to the image, so it would open) is
#     BadRequest before KMS is asked (the audit log has no Decrypt of
#     it), and so is a request naming that key; two apps whose unpacked
#     bytes exceed the workspace size: the second is ENOSPC, and runs once
#     the first has ended
#   refusals: a debug-mode enclave, an image with one changed byte and a
#     revoked pin get AccessDenied naming the enclave's PCR0; a modified
#     bundle, a wrong context and a missing credential are told apart
#   wiping: after every exec, successful or not, the apps directory is
#     empty (seen by a probe app in a later exec)
# usage: agent.sh WARD_BIN AGENT_APP_BIN AGENT_KMS_BIN WORKDIR
set -uo pipefail
WARD=$(realpath "$1")
APP=$(realpath "$2")
KMSH=$(realpath "$3")
WORK=$4
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK" || exit 1
WORK=$(pwd)

if ! unshare -U -r -p -n -m --fork true 2>/dev/null; then
	echo "SKIP: this machine does not allow user namespaces (unshare -U fails)"
	exit 77
fi
for t in node openssl; do
	command -v $t >/dev/null || { echo "SKIP: $t is missing (scripts/install-deps installs it)"; exit 77; }
done
# socket paths must fit in 108 bytes: a short run directory
RUN=$(mktemp -d /tmp/ward-ag.XXXXXX) && chmod 755 "$RUN" || exit 1
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
die() { bad "$1"; [ -n "${2:-}" ] && sed 's/^/      /' "$2" | head -20; finish agent; exit 1; }

# ---- the key service, its key, the TLS front ----------------------------------
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
KEY=$("$KMSH" "$URL" "$ACCOUNT") || die "creating the key"
ok "key $KEY: the account may do all but kms:Decrypt"

# KMS over TLS: a TLS front for kms.test in front of ward kms serve
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=kms.test \
	-addext subjectAltName=DNS:kms.test -days 1 -keyout tls.key -out tls.pem 2>/dev/null ||
	die "openssl could not make a test certificate"
node -e "
const tls=require('tls'),net=require('net'),fs=require('fs');
const s=tls.createServer({key:fs.readFileSync('tls.key'),cert:fs.readFileSync('tls.pem')},c=>{
	const k=net.connect($KPORT,'127.0.0.1');c.pipe(k);k.pipe(c);
	c.on('error',()=>k.destroy());k.on('error',()=>c.destroy());});
s.listen(0,'127.0.0.1',()=>fs.writeFileSync('tls.port',String(s.address().port)));" &
PIDS+=($!)
wait_for tls.port '[0-9]' || die "the TLS front did not start"
TPORT=$(cat tls.port)

# ---- the application, encrypted ----------------------------------------------
mkdir -p app/bin
cp "$APP" app/run && cp "$APP" app/bin/apptool
printf 'data that ships with the app\n' >app/data.txt
expect 0 "ward encrypt the app directory under the key" \
	"$WARD" encrypt --key-id "$KEY" --context purpose=agent-test -o app.enc app
# one byte of the ciphertext body changed (past the header)
cp app.enc bad.enc
SZ=$(stat -c %s app.enc)
flip bad.enc $((SZ / 2))
cmp -s app.enc bad.enc && die "bad.enc is not changed"

# ---- images: the default command (ward agent), and one byte changed -----------
mkdir -p rootfs/etc && cp tls.pem rootfs/etc/kms-test.pem
image() { # NAME [more build-enclave flags]
	local name=$1
	shift
	"$WARD" build-enclave --rootfs rootfs --env AWS_CA_BUNDLE=/etc/kms-test.pem "$@" \
		--output-file "$name.eif" >"$name.json" 2>"$name.err" || die "build $name.eif" "$name.err"
}
image agent
image changed --env X=1
PCR0=$(jget agent.json j.Measurements.PCR0)
PCR0X=$(jget changed.json j.Measurements.PCR0)
[ -n "$PCR0" ] && [ "$PCR0" != "$PCR0X" ] && ok "--env X=1 changes PCR0 ($PCR0X)" ||
	bad "PCR0 $PCR0 / $PCR0X"
expect 0 "ward kms pin the key to the image's PCR0" \
	"$WARD" kms pin "$KEY" --pcr0 "$PCR0" --endpoint-url "$URL"

# ---- the proxy ------------------------------------------------------------------
start_proxy() { # NAME PORT: vsock 3:8000 to 127.0.0.1:PORT
	printf 'allowlist:\n- {address: 127.0.0.1, port: %s}\n' "$2" >"$1.yaml"
	"$WARD" proxy --config "$1.yaml" 8000 127.0.0.1 "$2" >"$1.out" 2>"$1.err" &
	PROXY=$!
	PIDS+=($PROXY)
	wait_for "$1.out" '"Listen"' || die "proxy $1 did not start" "$1.err"
}
stop_proxy() { kill "$PROXY" 2>/dev/null; wait "$PROXY" 2>/dev/null; }
start_proxy kms "$KPORT"
ok "ward proxy: vsock 3:8000 -> ward kms serve"

# ---- enclaves ---------------------------------------------------------------
MEM=$((($(stat -c %s agent.eif) * 4 >> 20) + 64))
[ "$MEM" -lt 256 ] && MEM=256
run_enclave() { # NAME EIF [flags]; sets CID
	local name=$1 eif=$2
	shift 2
	"$WARD" run-enclave --eif-path "$eif" --memory "$MEM" --cpu-count 1 \
		--enclave-name "$name" "$@" >"run-$name.json" 2>"run-$name.err" ||
		die "run-enclave $name" "run-$name.err"
	CID=$(jget "run-$name.json" j.EnclaveCID)
	wait_for_agent "$CID" || die "the agent in $name does not answer" "run-$name.err"
}
wait_for_agent() {
	local i
	for ((i = 0; i < 100; i++)); do
		[ -S "$RUN/vsock/$1/5000" ] && return 0
		sleep 0.1
	done
	return 1
}
run_enclave main agent.eif
MAIN=$CID
ok "the enclave runs the agent (CID $MAIN)"
expect 0 "ward cp app.enc enclave:app.enc" "$WARD" cp --enclave-cid "$MAIN" app.enc enclave:app.enc
expect 0 "ward cp bad.enc enclave:bad.enc" "$WARD" cp --enclave-cid "$MAIN" bad.enc enclave:bad.enc

# xe CID APP ARGS...: ward exec, stdout to out.log, stderr to err.log
xe() {
	local cid=$1 app=$2
	shift 2
	"$WARD" exec --enclave-cid "$cid" --app "enclave:$app" --context purpose=agent-test "$@"
}
# probe_apps CID NAME: a later exec sees only its own directory
probe_apps() {
	xe "$1" app.enc -- ./run ls-apps >apps.log 2>apps.err
	local n
	n=$(grep -c '^entry ' apps.log)
	if [ "$n" = 1 ] && grep -q "^entry $(sed -n 's/^self //p' apps.log)\$" apps.log; then
		ok "$2: the apps directory holds only the probe's own"
	else
		bad "$2: the apps directory holds $n entries"
		sed 's/^/      /' apps.log apps.err | head
	fi
}

# ---- runs ------------------------------------------------------------------------
t0=$(date +%s.%N)
expect 0 "ward exec ./run echo hello world" xe "$MAIN" app.enc -- ./run echo hello world
t1=$(date +%s.%N)
has '^app: hello world$' "stdout comes back"
has '^app-err: hello world$' "stderr comes back, apart" err.log
grep -q app-err out.log && bad "stderr leaked into stdout" || ok "stdout holds no stderr"
FIRST=$(awk "BEGIN{printf \"%.3f\", $t1 - $t0}")
t0=$(date +%s.%N)
xe "$MAIN" app.enc -- ./run echo again >/dev/null 2>&1
t1=$(date +%s.%N)
AGAIN=$(awk "BEGIN{printf \"%.3f\", $t1 - $t0}")
echo "      (a whole ward exec of a trivial app: key release, decrypt, run, wipe: ${FIRST}s the first time, ${AGAIN}s the next)"
expect 7 "an exit code passes through (7)" xe "$MAIN" app.enc -- ./run exit 7
expect 0 "argv[0] without a slash is found in the app's bin/" xe "$MAIN" app.enc -- apptool echo via PATH
has '^app: via PATH$' "the bin/ program ran"
expect 0 "argv[0] without a slash is found in the app directory too" xe "$MAIN" app.enc -- run echo bare
has '^app: bare$' "the app directory's program ran"
expect 0 "the environment" xe "$MAIN" app.enc --env FOO=bar --env FOO_2=x --env FOO_2=y -- ./run env
APPDIR=$(sed -n 's/^WARD_APP=//p' out.log)
case "$APPDIR" in /run/ward-apps/[0-9]*) ok "WARD_APP is a fresh directory ($APPDIR)" ;; *) bad "WARD_APP=$APPDIR" ;; esac
has "^PATH=$APPDIR/bin:/usr/local/bin:/usr/bin:/bin\$" "PATH is the app's bin/ then the system's"
has '^WARD_WORKSPACE=/workspace$' "WARD_WORKSPACE names the workspace"
has '^FOO=bar$' "--env reaches the app"
has '^FOO_2=y$' "a later --env of the same name replaces an earlier one"
has "^HOME=$APPDIR\$" "HOME is the app directory"
n=$(grep -c . out.log)
[ "$n" -eq 6 ] && ok "nothing else is in the environment ($n entries)" || { bad "$n environment entries"; sed 's/^/      /' out.log; }
grep -q AWS_ out.log && bad "AWS credentials reached the app" || ok "no AWS_* variable reaches the app"
expect 0 "cwd is the app directory" xe "$MAIN" app.enc -- ./run self
has "^cwd $APPDIR\\|^cwd /run/ward-apps/[0-9]*\$" "the app runs in its directory"

head -c 20000 /dev/urandom | base64 >input.txt
expect 0 "ward cp input.txt into the workspace" "$WARD" cp --enclave-cid "$MAIN" input.txt enclave:input.txt
expect 0 "the app reads and writes the workspace" xe "$MAIN" app.enc -- ./run ws input.txt output.txt
has "read $(stat -c %s input.txt) bytes, app data 29 bytes" "it read the input and its own data file"
expect 0 "ward cp the result out" "$WARD" cp --enclave-cid "$MAIN" enclave:output.txt output.txt
tr a-z A-Z <input.txt >want.txt
same want.txt output.txt "the result is the input upper-cased"
probe_apps "$MAIN" "after successful runs"

# streaming: a line printed before a sleep arrives before the app ends
xe "$MAIN" app.enc -- ./run slow 2 2>slow.err |
	while IFS= read -r l; do printf '%s %s\n' "$(date +%s.%N)" "$l"; done >slow.log
tick=$(awk '$2=="tick"{print $1}' slow.log)
tock=$(awk '$2=="tock"{print $1}' slow.log)
if [ -n "$tick" ] && [ -n "$tock" ]; then
	gap=$(awk "BEGIN{printf \"%.3f\", $tock - $tick}")
	if awk "BEGIN{exit !($gap >= 1.5)}"; then
		ok "streamed: 'tick' arrived ${gap}s before 'tock' (the app sleeps 2 s between them)"
	else bad "'tick' arrived only ${gap}s before 'tock': buffered"; fi
else bad "slow: no tick/tock"; cat slow.log slow.err; fi

expect 0 "3 MB of output" xe "$MAIN" app.enc -- ./run big 3000000
n=$(stat -c %s out.log)
[ "$n" -eq 3000000 ] && ok "all 3000000 bytes arrived" || bad "$n bytes arrived"
[ "$(tr -d x <out.log | wc -c)" -eq 0 ] && ok "and they are the app's" || bad "other bytes in the output"

expect 139 "a crashing app (SIGSEGV) is 128+11" xe "$MAIN" app.enc -- ./run crash
has '^crashing$' "its output before the crash arrived"
expect 0 "the agent keeps serving after the crash" xe "$MAIN" app.enc -- ./run echo still here
has '^app: still here$' "and answers"
probe_apps "$MAIN" "after a crash"

s=$(date +%s)
expect 0 "a child left behind holding stdout does not hold the exec" xe "$MAIN" app.enc -- ./run straggler
d=$(($(date +%s) - s))
[ "$d" -lt 15 ] && ok "the exec ended in ${d}s (the child sleeps 60 s)" || bad "the exec took ${d}s"
probe_apps "$MAIN" "after a straggler"

# ---- refusals the agent tells apart --------------------------------------------------
expect 6 "a bundle with one changed byte: DecryptFailed" xe "$MAIN" bad.enc -- ./run echo no
has 'DecryptFailed' "the code is DecryptFailed" err.log
grep -q '^app:' out.log && bad "the modified app ran" || ok "the modified app did not run"
expect 6 "a wrong --context: DecryptFailed" "$WARD" exec --enclave-cid "$MAIN" --app enclave:app.enc --context purpose=other -- ./run echo no
expect 4 "no credentials: BadRequest" xe "$MAIN" app.enc --no-credentials -- ./run echo no
has 'credentials' "the message says what is missing" err.log
expect 3 "an app path that is not there" xe "$MAIN" nothere.enc -- ./run echo no
has 'ENOENT\|nothere' "the missing path is named" err.log
expect 3 "a command not in the app" xe "$MAIN" app.enc -- ./nothere
has 'nothere' "the missing command is named" err.log
expect 4 "a directory of the app as the command: BadRequest" xe "$MAIN" app.enc -- bin
expect 4 "a file of the app that is not executable: BadRequest" xe "$MAIN" app.enc -- ./data.txt
probe_apps "$MAIN" "after the refusals"

# ---- the host cannot run code of its own beside the plaintext ----------------------
# evil: a program of the host's (a static binary it uploads); run, it
# writes a marker into the workspace
cp "$APP" evil && chmod 755 evil
expect 0 "ward cp a program of the host's into the workspace" "$WARD" cp --enclave-cid "$MAIN" evil enclave:evil
expect 0 "control: the app itself can run the uploaded program" xe "$MAIN" app.enc -- ./run exec-ws evil evil control-ran
if "$WARD" cp --enclave-cid "$MAIN" enclave:control-ran control-ran.txt >/dev/null 2>&1 && [ -s control-ran.txt ]; then
	ok "control: it ran and wrote its marker (so a marker would tell)"
else bad "control: the uploaded program did not run"; fi
for cmd in /workspace/evil ../../../workspace/evil ../../workspace/evil bin/../../../../workspace/evil /bin/sh; do
	expect 4 "argv[0] $cmd: BadRequest" xe "$MAIN" app.enc -- "$cmd" evil
	has 'BadRequest' "$cmd: the code is BadRequest" err.log
	has 'must be a program of the application bundle' "$cmd: the message says the command must be the bundle's" err.log
	grep -q '^evil ran' out.log && bad "$cmd: the host's program ran" || ok "$cmd: nothing ran"
done
if "$WARD" cp --enclave-cid "$MAIN" enclave:evil-ran evil-ran.txt >/dev/null 2>&1; then
	bad "the host's program ran: its marker is in the workspace"
else ok "no marker of the host's program in the workspace"; fi

for kv in LD_PRELOAD=/workspace/evil PATH=/workspace WARD_APP=x PYTHONPATH=/workspace 'BASH_FUNC_x%%=() { :; }' 1X=y; do
	name=${kv%%=*}
	expect 4 "--env $name=...: BadRequest" xe "$MAIN" app.enc --env "$kv" -- ./run env
	has "$name" "--env $name: the message names it" err.log
	empty "--env $name: the app did not run"
done
expect 0 "--env FOO=bar still works" xe "$MAIN" app.enc --env FOO=bar -- ./run env
has '^FOO=bar$' "FOO reached the app"

# an app whose child leaves its session (setsid) and would write a
# marker 3 s later: the agent kills it when the exec ends
expect 0 "control: an app with a child of its own sees it in /proc" xe "$MAIN" app.enc -- ./run procs 1
has '^procs 1$' "control: procs counts the child"
expect 0 "an app leaves a setsid()'d child behind" xe "$MAIN" app.enc -- ./run escape
has '^escaped child [0-9]' "it forked the child, which called setsid()"
sleep 4
if "$WARD" cp --enclave-cid "$MAIN" enclave:escaped escaped.txt >/dev/null 2>&1; then
	bad "the setsid()'d child outlived its exec and wrote to the workspace"
else ok "the setsid()'d child did not outlive its exec (no marker after 4 s)"; fi
expect 0 "a later app lists the processes" xe "$MAIN" app.enc -- ./run procs
has '^procs 0$' "no stray process is left (only PID 1, the agent and the app)"

# a FIFO as the bundle cannot block the exec thread
expect 0 "an app makes a FIFO in the workspace" xe "$MAIN" app.enc -- ./run mkfifo fifo
s=$(date +%s)
expect 3 "a FIFO as the bundle: EINVAL" timeout 30 "$WARD" exec --enclave-cid "$MAIN" --app enclave:fifo \
	--context purpose=agent-test -- ./run echo no
d=$(($(date +%s) - s))
has 'EINVAL' "the code is EINVAL" err.log
[ "$d" -lt 10 ] && ok "at once (${d}s)" || bad "the FIFO took ${d}s"
expect 0 "the agent keeps serving after the FIFO" xe "$MAIN" app.enc -- ./run echo after fifo
has '^app: after fifo$' "and answers"
probe_apps "$MAIN" "after the host's attempts"

# ---- Busy beyond 8 apps, and SIGTERM cancels ----------------------------------------
BG=()
for i in 1 2 3 4 5 6 7 8; do
	# ward itself in the background (not a subshell), for the signal
	"$WARD" exec --enclave-cid "$MAIN" --app enclave:app.enc --context purpose=agent-test \
		-- ./run sleep 6 >"bg$i.out" 2>"bg$i.err" &
	BG+=($!)
done
up=0
for i in 1 2 3 4 5 6 7 8; do wait_for "bg$i.out" '^sleeping in' 200 && up=$((up + 1)); done
[ "$up" -eq 8 ] && ok "8 apps run at once" || bad "only $up of 8 apps started"
expect 9 "a 9th is refused: Busy" xe "$MAIN" app.enc -- ./run echo ninth
has 'Busy' "the code is Busy" err.log
s=$(date +%s.%N)
kill -TERM "${BG[0]}"
wait "${BG[0]}"
st=$?
d=$(awk "BEGIN{printf \"%.3f\", $(date +%s.%N) - $s}")
[ "$st" -ne 0 ] && ok "SIGTERM cancels an app (ward exec exit $st after ${d}s)" || bad "the cancelled exec exited 0"
grep -q slept bg1.out && bad "the cancelled app ran to its end" || ok "the cancelled app did not finish"
# at once, while the other 7 still sleep: the cancelled app's directory
# is gone (it would be there while the app ran)
C1=$(sed -n 's/^sleeping in //p' bg1.out)
xe "$MAIN" app.enc -- ./run ls-apps >apps.log 2>apps.err
if [ -n "$C1" ] && grep -q '^self ' apps.log && ! grep -q "^entry $C1\$" apps.log; then
	ok "the cancelled app's directory ($C1) is gone while $(($(grep -c '^entry ' apps.log) - 1)) others run"
else bad "the cancelled app's directory $C1 is still there"; sed 's/^/      /' apps.log apps.err; fi
fails=0
for i in 2 3 4 5 6 7 8; do
	wait "${BG[$((i - 1))]}" || fails=$((fails + 1))
	grep -q slept "bg$i.out" || fails=$((fails + 1))
done
[ "$fails" -eq 0 ] && ok "the other 7 ran to their end" || bad "$fails of the other 7 failed"
probe_apps "$MAIN" "after 8 at once and a cancel"

# a host that vanishes mid-run (SIGKILL: no CANCEL sent): the agent kills
# the app and wipes its directory when the connection drops
"$WARD" exec --enclave-cid "$MAIN" --app enclave:app.enc --context purpose=agent-test \
	-- ./run sleep 30 >gone.out 2>gone.err &
GP=$!
wait_for gone.out '^sleeping in' 100 || bad "the app did not start"
G1=$(sed -n 's/^sleeping in //p' gone.out)
kill -9 "$GP"
wait "$GP" 2>/dev/null
for _ in $(seq 20); do
	xe "$MAIN" app.enc -- ./run ls-apps >apps.log 2>apps.err
	grep -q "^entry $G1\$" apps.log || break
	sleep 0.2
done
if [ -n "$G1" ] && grep -q '^self ' apps.log && ! grep -q "^entry $G1\$" apps.log; then
	ok "the vanished host's app ($G1) is killed and wiped"
else bad "the vanished host's app $G1 is still there"; sed 's/^/      /' apps.log apps.err; fi

# ---- KMS over TLS through the same proxy port ---------------------------------------------
stop_proxy
start_proxy tls "$TPORT"
expect 0 "KMS over https through the proxy: the certificate of kms.test verifies" \
	xe "$MAIN" app.enc --endpoint-url https://kms.test -- ./run echo over tls
has '^app: over tls$' "the app ran"
expect 3 "a URL the certificate does not name is refused (KMSError)" \
	xe "$MAIN" app.enc --endpoint-url https://kms.other -- ./run echo no
has 'KMSError' "the code is KMSError" err.log
stop_proxy
start_proxy kms "$KPORT"

# ---- AccessDenied: debug mode, a changed image, a revoked pin ---------------------
Z=$(printf '0%.0s' $(seq 96))
denied() { # NAME CID WANT_PCR0
	expect 5 "$1: AccessDenied" xe "$2" app.enc -- ./run echo no
	has 'AccessDenied' "$1: the code is AccessDenied" err.log
	has "PCR0 $3" "$1: the message names the enclave's PCR0" err.log
	sed 's/^/      | /' err.log
	grep -q '^app:' out.log && bad "$1: the app ran" || ok "$1: the app did not run"
}
terminate() { "$WARD" terminate-enclave --enclave-id "$(jget "run-$1.json" j.EnclaveID)" >/dev/null; }
# each enclave takes a CPU of its own: with one, main makes way
[ "$NCPU" -ge 2 ] || terminate main
run_enclave debug agent.eif --debug-mode
DBG=$CID
expect 0 "ward cp app.enc into the debug-mode enclave" "$WARD" cp --enclave-cid "$DBG" app.enc enclave:app.enc
denied "debug mode" "$DBG" "$Z"
has '(all zeros: debug mode)' "debug mode is named" err.log
terminate debug

run_enclave changed changed.eif
CHG=$CID
expect 0 "ward cp app.enc into the changed image's enclave" "$WARD" cp --enclave-cid "$CHG" app.enc enclave:app.enc
denied "an image with one changed byte (--env X=1)" "$CHG" "$PCR0X"
has 'not debug mode' "not debug mode, says the message" err.log
terminate changed

[ "$NCPU" -ge 2 ] || { run_enclave main agent.eif; MAIN=$CID; "$WARD" cp --enclave-cid "$MAIN" app.enc enclave:app.enc >/dev/null; }
expect 0 "ward kms pin the key to the other image (revoking this one)" \
	"$WARD" kms pin "$KEY" --pcr0 "$PCR0X" --endpoint-url "$URL"
denied "a revoked pin" "$MAIN" "$PCR0"
expect 0 "ward kms pin it back" "$WARD" kms pin "$KEY" --pcr0 "$PCR0" --endpoint-url "$URL"
expect 0 "runs again once pinned back" xe "$MAIN" app.enc -- ./run echo back
has '^app: back$' "the app ran"
probe_apps "$MAIN" "at the end"

expect 0 "describe-enclaves" "$WARD" describe-enclaves
json "the agent's enclave still runs" "j.some(e=>e.EnclaveCID===$MAIN && e.State==='RUNNING')"

# ---- an image that names its keys: ward agent --app-key ------------------------------
# The host holds a key of its own (KEY2), pins it to the image (so KMS
# would release it there) and encrypts a bundle under it: the agent must
# not open it. The image's command is build-enclave's default (the agent
# through the loader ward brings) with --app-key and a workspace small
# enough that two unpacked apps do not fit.
KEY2=$("$KMSH" "$URL" "$ACCOUNT") || die "creating the host's key"
mkdir -p other && cp "$APP" other/run
expect 0 "ward encrypt a bundle of the host's under its own key" \
	"$WARD" encrypt --key-id "$KEY2" --context purpose=agent-test -o other.enc other
INTERP=$(readelf -l "$WARD" 2>/dev/null | sed -n 's/.*interpreter: \(.*\)\]$/\1/p')
[ -n "$INTERP" ] || INTERP=$(ldd "$WARD" | awk '$1 ~ /^\// && /ld-/ {print $1; exit}')
[ -n "$INTERP" ] || die "cannot tell the dynamic loader of $WARD (readelf, ldd)"
WSMAX=$(($(stat -c %s app.enc) + $(stat -c %s other.enc) + 262144))
image appkey --cmd "[\"/ward/lib/${INTERP##*/}\",\"--library-path\",\"/ward/lib\",\"/ward/bin/ward\",\"agent\",\"--app-key\",\"$KEY\",\"--workspace-size\",\"$WSMAX\"]"
PCR0K=$(jget appkey.json j.Measurements.PCR0)
expect 0 "ward kms pin the vendor's key to the --app-key image" \
	"$WARD" kms pin "$KEY" --pcr0 "$PCR0K" --endpoint-url "$URL"
expect 0 "ward kms pin the host's key to it too" \
	"$WARD" kms pin "$KEY2" --pcr0 "$PCR0K" --endpoint-url "$URL"
terminate main
run_enclave appkey appkey.eif
AK=$CID
expect 0 "ward cp the vendor's bundle in" "$WARD" cp --enclave-cid "$AK" app.enc enclave:app.enc
expect 0 "ward cp the host's bundle in" "$WARD" cp --enclave-cid "$AK" other.enc enclave:other.enc
# KMS Decrypt calls under a key, from the audit log of ward kms serve
decrypts() { grep -c "\"operation\":\"Decrypt\".*${1##*/}" st/audit.log 2>/dev/null; }
vbefore=$(decrypts "$KEY")
expect 0 "--app-key: the vendor's app runs" xe "$AK" app.enc -- ./run echo vendor
has '^app: vendor$' "it ran"
[ "$(decrypts "$KEY")" -gt "$vbefore" ] && ok "control: the audit log shows its key's Decrypt" ||
	bad "control: no Decrypt of the vendor's key in st/audit.log"
expect 0 "--app-key: a request naming the vendor's key runs" xe "$AK" app.enc --key-id "$KEY" -- ./run echo named
has '^app: named$' "it ran"
KEY2ID=${KEY2##*/}
before=$(decrypts "$KEY2")
expect 4 "--app-key: a bundle under the host's key: BadRequest" xe "$AK" other.enc -- ./run echo host
has 'BadRequest' "the code is BadRequest" err.log
has 'app-key' "the message names --app-key" err.log
has "$KEY2ID" "and the key the bundle is under" err.log
grep -q '^app:' out.log && bad "the host's bundle ran" || ok "the host's bundle did not run"
expect 4 "--app-key: a request naming the host's key: BadRequest" xe "$AK" other.enc --key-id "$KEY2" -- ./run echo host
has 'not one of this image' "the message says the key is not the image's" err.log
grep -q '^app:' out.log && bad "the host's bundle ran" || ok "the host's bundle did not run"
after=$(decrypts "$KEY2")
[ -f st/audit.log ] && [ "$before" = "$after" ] && ok "KMS was not asked to decrypt under the host's key" ||
	bad "KMS Decrypt calls under the host's key: $before before, $after after (or no st/audit.log)"

# two apps, each about half the workspace: the second does not fit
"$WARD" exec --enclave-cid "$AK" --app enclave:app.enc --context purpose=agent-test \
	-- ./run sleep 4 >budget.out 2>budget.err &
BP=$!
wait_for budget.out '^sleeping in' 200 || bad "the first app did not start"
expect 9 "a second app beyond the unpacked budget: ENOSPC" xe "$AK" app.enc -- ./run echo second
has 'ENOSPC' "the code is ENOSPC" err.log
has 'no room to unpack' "the message says why" err.log
wait "$BP" && ok "the first app ran to its end" || bad "the first app failed"
expect 0 "once it has ended, its bytes are free again" xe "$AK" app.enc -- ./run echo second
has '^app: second$' "the second app ran"

if grep -q "$AWS_SECRET_ACCESS_KEY" serve.log kms.err tls.err run-*.err 2>/dev/null; then
	bad "the secret key appears in a log"
else ok "the secret key appears in no log"; fi

finish agent
