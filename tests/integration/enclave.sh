#!/usr/bin/env bash
# Sandbox enclaves with real parts: images from ward build-enclave, ward
# run-enclave / describe-enclaves / terminate-enclave / console, and the
# probe (tests/integration/enclave_probe.c) inside, trying to get out.
#   isolation: host loopback, host files, host processes, ptrace, mount,
#     modules (and kexec, bpf, perf, keyctl, namespaces), writes outside
#     the tmpfs, memory exhaustion, a fork bomb
#   lifecycle: start, describe, terminate; init crashing; SIGKILL of the
#     monitor; two enclaves at once; the allocator's bounds
#   attestation from inside: PCR0 of the image, verified to the local
#     root; all zero in debug mode
# usage: enclave.sh WARD_BIN PROBE_BIN WORKDIR
set -uo pipefail
WARD=$(realpath "$1")
PROBE=$(realpath "$2")
WORK=$3
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK" || exit 1
WORK=$(pwd)

if ! unshare -U -r -p -n -m --fork true 2>/dev/null; then
	echo "SKIP: this machine does not allow user namespaces (unshare -U fails)"
	exit 77
fi
# socket paths must fit in 108 bytes: a short run directory
RUN=$(mktemp -d /tmp/ward-enc.XXXXXX)
export WARD_RUN_DIR=$RUN WARD_CA_DIR=$WORK/ca WARD_ENCLAVE_BACKEND=sandbox
NCPU=$(nproc)
printf 'memory_mib: 1024\ncpu_pool: 0-%d\n' $((NCPU - 1)) >allocator.yaml
export WARD_ALLOCATOR=$WORK/allocator.yaml
cleanup() {
	"$WARD" terminate-enclave --all >/dev/null 2>&1
	[ -n "${TCP_PID:-}" ] && kill "$TCP_PID" 2>/dev/null
	rm -rf "$RUN"
}
trap cleanup EXIT

# images: the probe alone (static), and with ward for attestation
mkdir -p rootfs/bin && cp "$PROBE" rootfs/bin/probe
image() { # NAME CMD-JSON [more build-enclave flags]
	local name=$1 cmd=$2
	shift 2
	"$WARD" build-enclave --rootfs rootfs --cmd "$cmd" "$@" \
		--output-file "$name.eif" >"$name.json" 2>"$name.err" ||
		{ bad "build $name.eif"; cat "$name.err"; }
}
image serve '["/bin/probe","serve","5000"]' --no-ward
image crash '["/bin/probe"]' --no-ward
image nocmd '["/bin/not-there"]' --no-ward
image memhog '["/bin/probe","memhog"]' --no-ward
image forkbomb '["/bin/probe","forkbomb"]' --no-ward
LD=$(basename "$(readelf -l "$WARD" | sed -n 's/.*interpreter: \(.*\)]/\1/p')")
image attest "[\"/bin/probe\",\"relay\",\"7000\",\"/ward/lib/$LD\",\"--library-path\",\"/ward/lib\",\"/ward/bin/ward\",\"attest\",\"nsm\",\"--nonce\",\"0102\"]"

# a TCP listener on the host's loopback, and a host file, to reach for
node -e "const s=require('net').createServer(c=>c.end('host\n'));
s.listen(0,'127.0.0.1',()=>{require('fs').writeFileSync('tcp.port',String(s.address().port))})" &
TCP_PID=$!
for _ in $(seq 50); do [ -s tcp.port ] && break; sleep 0.1; done
TCP_PORT=$(cat tcp.port)
echo "host secret" >"$WORK/secret"
image isolate "[\"/bin/probe\",\"isolate\",\"$TCP_PORT\",\"$WORK/secret\"]" --no-ward
if node -e "require('net').connect($TCP_PORT,'127.0.0.1').on('data',()=>process.exit(0)).on('error',()=>process.exit(1))"; then
	ok "the host's loopback listener answers the host"
else bad "the host's loopback listener does not answer the host"; fi

# ---- help and usage -------------------------------------------------------
expect 0 "run-enclave --help" "$WARD" run-enclave --help
has 'debug-mode' "run-enclave --help names --debug-mode"
has 'threat-model' "run-enclave --help points at the threat model"
expect 0 "describe-enclaves --help" "$WARD" describe-enclaves --help
expect 0 "terminate-enclave --help" "$WARD" terminate-enclave --help
expect 0 "console --help" "$WARD" console --help
expect 2 "run-enclave without --eif-path" "$WARD" run-enclave --memory 128 --cpu-count 1
expect 2 "run-enclave with both cpu options" "$WARD" run-enclave --eif-path serve.eif --memory 128 --cpu-count 1 --cpu-ids 0
expect 2 "run-enclave --memory 32 (below 64 MiB)" "$WARD" run-enclave --eif-path serve.eif --memory 32 --cpu-count 1
has '64 MiB' "the minimum is named" err.log
expect 2 "run-enclave --enclave-cid 3 (the parent)" "$WARD" run-enclave --eif-path serve.eif --memory 128 --cpu-count 1 --enclave-cid 3
expect 2 "terminate-enclave with no target" "$WARD" terminate-enclave
expect 2 "terminate-enclave of an unknown enclave" "$WARD" terminate-enclave --enclave-id i-nope
expect 0 "describe-enclaves with nothing running" "$WARD" describe-enclaves
json "describe-enclaves prints []" 'Array.isArray(j) && j.length === 0'

# ---- a run directory others could change (as root) ------------------------------
if [ "$(id -u)" = 0 ]; then
	UNSAFE=$(mktemp -d /tmp/ward-unsafe.XXXXXX)
	chown 65534 "$UNSAFE"
	expect 10 "a run directory owned by another user is refused" env WARD_RUN_DIR="$UNSAFE" "$WARD" run-enclave --eif-path serve.eif --memory 128 --cpu-count 1
	has "root's" "the reason is given" err.log
	chown 0 "$UNSAFE" && chmod 777 "$UNSAFE"
	expect 10 "a world-writable run directory is refused" env WARD_RUN_DIR="$UNSAFE" "$WARD" describe-enclaves
	rm -rf "$UNSAFE"
	mkdir -p userca && cp -r ca/. userca/ 2>/dev/null || "$WARD" ca init --dir userca >/dev/null
	chown -R 65534 userca
	expect 10 "an attestation root someone else owns is refused" env WARD_CA_DIR="$WORK/userca" "$WARD" run-enclave --eif-path serve.eif --memory 128 --cpu-count 1
	has "root's" "the reason is given" err.log
	expect 0 "and nothing is left running" "$WARD" describe-enclaves
	json "describe-enclaves is empty" 'j.length===0'
	rm -rf userca
fi

# ---- bad images -----------------------------------------------------------
cp serve.eif corrupt.eif
flip corrupt.eif $(($(stat -c %s serve.eif) - 100))
expect 5 "an image with a flipped byte is refused (CRC)" "$WARD" run-enclave --eif-path corrupt.eif --memory 128 --cpu-count 1
has 'CRC' "the CRC is named" err.log
head -c 4000 serve.eif >short.eif
expect 4 "a truncated image is refused" "$WARD" run-enclave --eif-path short.eif --memory 128 --cpu-count 1
head -c 100 /dev/zero >zero.eif
expect 4 "a file of zeros is refused" "$WARD" run-enclave --eif-path zero.eif --memory 128 --cpu-count 1
expect 2 "too little memory for the image (nitro-cli's 4x rule)" "$WARD" run-enclave --eif-path attest.eif --memory 64 --cpu-count 1
has 'at least' "the needed memory is said" err.log
expect 3 "an image whose command is missing fails to start" "$WARD" run-enclave --eif-path nocmd.eif --memory 128 --cpu-count 1
has 'not-there' "the missing command is named" err.log
expect 0 "nothing is left after a failed start" "$WARD" describe-enclaves
json "describe-enclaves is empty again" 'j.length === 0'
left=$(ls "$RUN/enclaves" 2>/dev/null | wc -l)
[ "$left" -eq 0 ] && ok "no enclave directory left" || bad "$left enclave directories left"

# ---- start, describe, answer ------------------------------------------------
expect 0 "run-enclave serve.eif" "$WARD" run-enclave --eif-path serve.eif --memory 128 --cpu-count 1
cp out.log run1.json
json "run-enclave prints nitro-cli's fields" 'j.EnclaveName==="serve" && /^i-[0-9a-f]{16}-enc[0-9a-f]{16}$/.test(j.EnclaveID) && j.ProcessID>1 && j.EnclaveCID===16 && j.NumberOfCPUs===1 && j.CPUIDs.length===1 && j.MemoryMiB===128'
has 'Started enclave with enclave-cid: 16' "stderr says what started" err.log
has 'cgroup v' "stderr says which limits are in force" err.log
ID1=$(jget run1.json j.EnclaveID)
CPU1=$(jget run1.json j.CPUIDs[0])
expect 0 "the enclave answers on its vsock port" "$PROBE" connect 16 5000
has 'ready' "the answer arrives"
PCR0=$(jget serve.json j.Measurements.PCR0)
expect 0 "describe-enclaves" "$WARD" describe-enclaves
json "describe shows it RUNNING with the image's PCR0" "j.length===1 && j[0].EnclaveID==='$ID1' && j[0].State==='RUNNING' && j[0].Flags==='NONE' && j[0].Measurements.PCR0==='$PCR0'"
MON1=$(jget out.log j[0].ProcessID)
[ -d /proc/"$MON1" ] && ok "the monitor process exists" || bad "no monitor process $MON1"
# the enclave is born in every one of its cgroups (the monitor joins them
# with its cloning thread alone, then leaves): its init is listed in each,
# the monitor in none
INIT1=$(jget "$RUN/enclaves/$ID1/state.json" j.InitPID)
ncg=0 cgbad=
for cg in $(jget "$RUN/enclaves/$ID1/state.json" "j.Cgroups.join(' ')"); do
	ncg=$((ncg + 1))
	grep -qx "$INIT1" "$cg/cgroup.procs" || cgbad="$cgbad init-not-in:$cg"
	grep -qx "$MON1" "$cg/cgroup.procs" && cgbad="$cgbad monitor-in:$cg"
done
if [ "$ncg" -eq 0 ]; then
	if [ "$(id -u)" -eq 0 ]; then bad "root's enclave has no cgroups"
	else echo "SKIP  cgroup membership: no cgroup is delegated to this user (rlimits are in force)"; fi
elif [ -z "$cgbad" ]; then ok "the init ($INIT1) is in its $ncg cgroups, the monitor in none"
else bad "cgroups:$cgbad"; fi
expect 2 "the same CID twice is refused" "$WARD" run-enclave --eif-path serve.eif --memory 128 --cpu-count 1 --enclave-cid 16
expect 2 "the same name twice is refused" "$WARD" run-enclave --eif-path serve.eif --memory 128 --cpu-count 1 --enclave-name serve
expect 2 "a debug-less enclave has no console" "$WARD" console --enclave-id "$ID1"
has 'debug-mode' "the reason is given" err.log

# a second enclave at once: its own CID and CPU, both answer
if [ "$NCPU" -ge 2 ]; then
	expect 0 "a second enclave at once" "$WARD" run-enclave --eif-path serve.eif --memory 128 --cpu-count 1
	cp out.log run2.json
	json "it gets CID 17, another name and another CPU" "j.EnclaveCID===17 && j.EnclaveName==='serve_1' && j.CPUIDs[0]!==$CPU1"
	ID2=$(jget run2.json j.EnclaveID)
	u1=$(grep -o '"HostUID": [0-9]*' "$RUN/enclaves/$(jget run1.json j.EnclaveID)/state.json")
	u2=$(grep -o '"HostUID": [0-9]*' "$RUN/enclaves/$ID2/state.json")
	[ -n "$u1" ] && [ "$u1" != "$u2" ] && ok "the two run as different host uids ($u1, $u2)" || bad "host uids $u1 / $u2"
	expect 0 "the second answers" "$PROBE" connect 17 5000
	expect 0 "the first still answers" "$PROBE" connect 16 5000
	expect 9 "a third is beyond the allocator's CPUs" "$WARD" run-enclave --eif-path serve.eif --memory 128 --cpu-count 1
	has 'allocator' "the allocator is named" err.log
else
	echo "SKIP: one CPU: the two-enclave checks need two"
fi
expect 9 "more memory than the allocator allows" "$WARD" run-enclave --eif-path serve.eif --memory 4096 --cpu-count 1 --enclave-cid 30

# ---- SIGKILL of a monitor ---------------------------------------------------
if [ -n "${ID2:-}" ]; then
	MON2=$(jget run2.json j.ProcessID)
	CG=$(grep -o '"/sys/fs/cgroup[^"]*"' "$RUN/enclaves/$ID2/state.json" | tr -d '"' | head -1)
	kill -9 "$MON2"
	sleep 0.3
	expect 0 "describe-enclaves after SIGKILL of a monitor" "$WARD" describe-enclaves
	json "only the first enclave is listed" "j.length===1 && j[0].EnclaveID==='$ID1'"
	absent "$RUN/enclaves/$ID2" "the killed monitor's directory is removed"
	absent "$RUN/vsock/17" "its vsock directory is removed"
	[ -n "$CG" ] && absent "$CG" "its cgroup is removed"
	grep -q "$RUN/vsock/17" /proc/mounts && bad "its vsock mount is left" || ok "no vsock mount left"
	expect 1 "its port no longer answers" "$PROBE" connect 17 5000
fi

# ---- terminate ----------------------------------------------------------------
CG1=$(grep -o '"/sys/fs/cgroup[^"]*"' "$RUN/enclaves/$ID1/state.json" | tr -d '"' | head -1)
expect 0 "terminate-enclave --enclave-id" "$WARD" terminate-enclave --enclave-id "$ID1"
json "terminate prints nitro-cli's object" "j.EnclaveID==='$ID1' && j.Terminated===true"
absent "$RUN/enclaves/$ID1" "its directory is removed"
absent "$RUN/vsock/16" "its vsock directory is removed"
[ -n "$CG1" ] && absent "$CG1" "its cgroup is removed"
[ -d /proc/"$MON1" ] && [ "$(cut -d' ' -f3 /proc/"$MON1"/stat 2>/dev/null)" != Z ] && bad "the monitor still runs" || ok "the monitor has exited"
expect 0 "describe-enclaves after terminate" "$WARD" describe-enclaves
json "nothing is listed" 'j.length===0'

# ---- init crashing ------------------------------------------------------------
expect 0 "an enclave whose command exits at once" "$WARD" run-enclave --eif-path crash.eif --memory 128 --cpu-count 1
CID=$(jget out.log j.EnclaveCID)
for _ in $(seq 50); do [ -d "$RUN/vsock/$CID" ] || break; sleep 0.1; done
expect 0 "describe-enclaves after its init ended" "$WARD" describe-enclaves
json "the ended enclave is not listed" 'j.length===0'
absent "$RUN/vsock/$CID" "its vsock directory is removed"

# ---- isolation ----------------------------------------------------------------
expect 0 "the isolation probe runs to its end (debug mode, console attached)" \
	"$WARD" run-enclave --eif-path isolate.eif --memory 128 --cpu-count 1 --attach-console
cp out.log isolate.log
for t in tcp host-file processes ptrace mount module kexec bpf perf keyctl unshare write vsock capabilities groups; do
	has "held $t" "from inside: $t is held" isolate.log
done
if grep -q ESCAPED isolate.log; then bad "something escaped"; grep ESCAPED isolate.log; else ok "nothing escaped"; fi
has 'ALL HELD' "the probe finished" isolate.log

# memory exhaustion and a fork bomb while another enclave runs
expect 0 "a bystander enclave" "$WARD" run-enclave --eif-path serve.eif --memory 128 --cpu-count 1 --enclave-name bystander
BY_CID=$(jget out.log j.EnclaveCID)
expect 0 "an enclave that eats memory (128 MiB bound)" timeout 60 \
	"$WARD" run-enclave --eif-path memhog.eif --memory 128 --cpu-count 1 --attach-console
cp out.log memhog.log
has 'memhog: 64 MiB' "it got some memory" memhog.log
if grep -q 'memhog: 256 MiB' memhog.log; then bad "it went past its bound"; else ok "it never got past its bound"; fi
has 'killed by signal 9' "it was killed" memhog.log
expect 0 "the bystander still answers" "$PROBE" connect "$BY_CID" 5000
expect 0 "a fork bomb" timeout 60 \
	"$WARD" run-enclave --eif-path forkbomb.eif --memory 128 --cpu-count 1 --attach-console
cp out.log forkbomb.log
has 'forkbomb: refused after' "the fork bomb is held" forkbomb.log
n=$(sed -n 's/.*refused after \([0-9]*\).*/\1/p' forkbomb.log)
[ -n "$n" ] && [ "$n" -lt 1024 ] && ok "held below the pids limit ($n)" || bad "fork count $n"
expect 0 "the bystander still answers after the fork bomb" "$PROBE" connect "$BY_CID" 5000
expect 0 "terminate --all" "$WARD" terminate-enclave --all

# ---- attestation from inside --------------------------------------------------
attest_run() { # FLAGS... ; leaves doc.cbor
	rm -f doc.cbor
	"$PROBE" sink 7000 doc.cbor >sink.log 2>&1 &
	local sink=$!
	for _ in $(seq 50); do grep -q listening sink.log && break; sleep 0.1; done
	expect 0 "run-enclave attest.eif $*" "$WARD" run-enclave --eif-path attest.eif --memory "$AMEM" --cpu-count 1 "$@"
	for _ in $(seq 100); do kill -0 $sink 2>/dev/null || break; sleep 0.1; done
	kill $sink 2>/dev/null
	[ -s doc.cbor ] && ok "a document came out" || bad "no document came out"
}
mkdir -p "$RUN/vsock/3"
APCR0=$(jget attest.json j.Measurements.PCR0)
# 4 times the image (ward and its libraries; bigger in a sanitizer build)
AMEM=$(( ($(stat -c %s attest.eif) * 4 >> 20) + 64 ))
[ "$AMEM" -lt 256 ] && AMEM=256
attest_run
expect 0 "it verifies to the local root with the image's PCR0 and nonce" \
	"$WARD" attest verify doc.cbor --no-aws-root --root ca/root.pem --expect-pcr "0=$APCR0" --nonce 0102 --no-debug
expect 5 "it does not verify against the AWS root alone" "$WARD" attest verify doc.cbor
Z=$(printf '0%.0s' $(seq 96))
attest_run --debug-mode
expect 0 "in debug mode it verifies with PCR0 all zero" \
	"$WARD" attest verify doc.cbor --no-aws-root --root ca/root.pem --expect-pcr "0=$Z" --expect-pcr "1=$Z" --expect-pcr "2=$Z"
expect 5 "and --no-debug refuses it" "$WARD" attest verify doc.cbor --no-aws-root --root ca/root.pem --no-debug
"$WARD" terminate-enclave --all >/dev/null 2>&1

# ---- nothing of an image runs before its measurement stands --------------------
# The enclave sets itself up while the monitor measures the image; only its
# command waits for the result. tell.eif's command calls the host's vsock
# port 7001 as its first act, so a call means it ran.
told() { # EIF EXIT NAME: run it with a sink on port 7001; told.out if called
	rm -f told.out
	"$PROBE" sink 7001 told.out >sink.log 2>&1 &
	local sink=$!
	for _ in $(seq 50); do grep -q listening sink.log && break; sleep 0.1; done
	expect "$2" "$3" "$WARD" run-enclave --eif-path "$1" --memory 128 --cpu-count 1
	for _ in $(seq 20); do [ -e told.out ] && break; sleep 0.1; done
	kill $sink 2>/dev/null
	wait $sink 2>/dev/null
	"$WARD" terminate-enclave --all >/dev/null 2>&1
}
# A 16 MiB kernel, which the sandbox measures but does not boot: the
# hashing then takes several times the enclave's set-up, so a command that
# did not wait for the measurement would call long before the refusal.
head -c 16777216 /dev/zero >big.kernel
image tell '["/bin/probe","relay","7001","/bin/probe"]' --no-ward --kernel big.kernel
told tell.eif 0 "run-enclave tell.eif"
[ -e told.out ] && ok "control: its command ran and called the host" || bad "tell.eif's command did not call the host"
# one metadata byte changed: the command line and the ramdisk are intact, so
# the enclave's set-up succeeds; only the measurement (the CRC) can stop it
cp tell.eif tell-bad.eif
off=$(grep -boa '"ImageName":"tell"' tell.eif | cut -d: -f1)
printf 'T' | dd of=tell-bad.eif bs=1 seek=$((off + 13)) conv=notrunc status=none
cmp -s tell.eif tell-bad.eif && bad "tell-bad.eif is unchanged"
told tell-bad.eif 5 "the same image with a metadata byte changed is refused"
has 'CRC' "the CRC is named" err.log
absent told.out "its command never ran"
left=$(ls "$RUN/enclaves" 2>/dev/null | wc -l)
[ "$left" -eq 0 ] && ok "no enclave directory left after the refusal" || bad "$left enclave directories left"
# damage that also breaks what is read before the measurement ends (the
# first cpio header of the customer ramdisk: /cmd cannot be found) is
# still reported as what it is, a damaged image
cp tell.eif tell-cpio.eif
t1=$(grep -boa 'TRAILER!!!' tell.eif | head -n 1 | cut -d: -f1)
m1=$(grep -boa '070701' tell.eif | awk -F: -v t="$t1" '$1 > t { print $1; exit }')
flip tell-cpio.eif "$m1"
told tell-cpio.eif 5 "an image with its customer ramdisk's first header damaged is refused"
has 'CRC' "the CRC is named, not the broken archive" err.log
absent told.out "its command never ran"

# ---- as an ordinary user ------------------------------------------------------
NB=$(mktemp -d /tmp/ward-nb.XXXXXX)
chmod 755 "$NB"
cp serve.eif isolate.eif "$NB/" && cp "$WARD" "$PROBE" "$NB/" && chmod -R a+rX "$NB"
as_nobody() {
	setpriv --reuid=65534 --regid=65534 --clear-groups env -i PATH=/usr/bin:/bin \
		HOME="$NB/home" WARD_RUN_DIR="$NB/home/run" WARD_ALLOCATOR="$WORK/allocator.yaml" "$@"
}
mkdir -p "$NB/home" && chown 65534:65534 "$NB/home"
if ! command -v setpriv >/dev/null || ! as_nobody unshare -U -r -p -n -m --fork true 2>/dev/null; then
	echo "SKIP: ordinary users may not make user namespaces here; the non-root checks need it"
else
	chmod a+r allocator.yaml
	cd "$NB" || exit 1
	expect 0 "run-enclave as nobody" as_nobody "$NB/ward" run-enclave --eif-path serve.eif --memory 64 --cpu-count 1
	has 'rlimits\|cgroup' "stderr says which limits are in force" err.log
	expect 0 "its enclave answers" as_nobody "$NB/enclave_probe" connect 16 5000
	has 'ready' "the answer arrives"
	expect 0 "the isolation probe as nobody" as_nobody "$NB/ward" run-enclave --eif-path isolate.eif --memory 64 --cpu-count 1 --attach-console
	if grep -q ESCAPED out.log || ! grep -q 'ALL HELD' out.log; then bad "something escaped as nobody"; grep -E 'ESCAPED|held' out.log; else ok "nothing escaped as nobody"; fi
	expect 0 "terminate as nobody" as_nobody "$NB/ward" terminate-enclave --all
	left=$(ls "$NB/home/run/enclaves" | wc -l)
	[ "$left" -eq 0 ] && ok "nothing left in the user's run directory" || bad "$left left"
	cd "$WORK" || exit 1
fi
rm -rf "$NB"

finish enclave
