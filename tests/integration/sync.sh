#!/usr/bin/env bash
# ward sync with real parts: a real `ward agent` (workspace on disk here,
# in enclave memory in an enclave) and a real FUSE mount.
#   both ways: files, directories, renames, removals, modes, times, sizes
#     written on either side are seen on the other at once
#   a 1 GiB file keeps its checksum through the mount, both ways (MB/s
#     printed)
#   unmount (fusermount3 -u, SIGTERM, SIGINT) leaves nothing: no process,
#     no mount in /proc/mounts, DIR empty
#   refusals before mounting (no agent, a non-empty DIR) mount nothing
#   an agent that dies or stalls gives EIO, not a hang, and the mount can
#     still be unmounted; an agent that comes back is used again
# usage: sync.sh WARD_BIN WORKDIR
set -uo pipefail
WARD=$(realpath "$1")
WORK=$2
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK" || exit 1
WORK=$(pwd)

if [ ! -c /dev/fuse ]; then
	echo "SKIP: /dev/fuse is missing (no FUSE in this kernel or container)"
	exit 77
fi
if ! command -v fusermount3 >/dev/null; then
	echo "SKIP: fusermount3 is missing (install fuse3)"
	exit 77
fi

SOCK=$(mktemp -d /tmp/ward-sy.XXXXXX)
MNT=$WORK/mnt
WS=$WORK/ws
AGENT=
cleanup() {
	grep -q " $MNT " /proc/mounts && fusermount3 -u -z "$MNT" 2>/dev/null
	for p in $(sync_pids); do kill "$p" 2>/dev/null; done
	[ -n "$AGENT" ] && kill -CONT "$AGENT" 2>/dev/null && kill "$AGENT" 2>/dev/null
	rm -rf "$SOCK"
}
trap cleanup EXIT
start_agent() {
	rm -f agent.ready
	"$WARD" agent --listen "unix:$SOCK/a.sock" --workspace "$WS" --ready-fd 3 3>agent.ready 2>>agent.log &
	AGENT=$!
	for _ in $(seq 100); do grep -q ready agent.ready 2>/dev/null && return 0; sleep 0.1; done
	bad "the agent did not start"
	cat agent.log
	exit 1
}
mounted() { grep -q " $MNT fuse" /proc/mounts; }
sync_pids() { pgrep -f "ward sync -d $MNT" | tr '\n' ' '; }
# wait_gone: no mount, no ward sync process (within 10 s)
wait_gone() {
	for _ in $(seq 100); do
		mounted || [ -n "$(sync_pids)" ] || return 0
		sleep 0.1
	done
	return 1
}
check_clean() { # NAME
	if wait_gone; then ok "$1: no mount and no ward sync process left"; else
		bad "$1: left behind: mount=$(grep -c " $MNT " /proc/mounts) pids=$(sync_pids)"; fi
	[ -z "$(ls -A "$MNT" 2>&1)" ] && ok "$1: $MNT is empty" || bad "$1: $MNT holds $(ls -A "$MNT" 2>&1)"
}
sha() { sha256sum "$1" | cut -d' ' -f1; }

mkdir -p "$MNT" "$WS"
start_agent
S=(--agent "unix:$SOCK/a.sock")

# ---- refusals before anything is mounted --------------------------------------
expect 3 "no agent: nothing is mounted (exit 3)" "$WARD" sync -d "$MNT" --agent "unix:$SOCK/none.sock"
mounted && bad "a mount appeared" || ok "no mount appeared"
touch "$MNT/stray"
expect 11 "a non-empty DIR is refused (exit 11)" "$WARD" sync -d "$MNT" "${S[@]}"
has 'not empty' "the reason is given" err.log
rm -f "$MNT/stray"
expect 2 "a DIR that does not exist" "$WARD" sync -d "$WORK/nope" "${S[@]}"

# ---- mount (daemon) --------------------------------------------------------------
"$WARD" sync -d "$MNT" "${S[@]}" >out.log 2>err.log
st=$?
if [ $st -ne 0 ] && grep -q 'cannot mount' err.log; then
	echo "SKIP: mounting is not permitted here: $(cat err.log)"
	exit 77
fi
[ $st -eq 0 ] && ok "ward sync mounts and returns (exit 0)" || { bad "ward sync: exit $st"; cat err.log; }
has "is mounted at $MNT; unmount with fusermount3 -u $MNT" "a status line on standard error" err.log
mounted && ok "the mount is in /proc/mounts" || bad "no mount in /proc/mounts"
[ -n "$(sync_pids)" ] && ok "a ward sync process serves it in the background" || bad "no ward sync process"
grep " $MNT " /proc/mounts | grep -q 'fuse.ward' && ok "its type is fuse.ward" || bad "type: $(grep " $MNT " /proc/mounts)"

# ---- both sides see the same files ------------------------------------------------
echo "from the host" >"$MNT/host.txt"
[ "$(cat "$WS/host.txt" 2>/dev/null)" = "from the host" ] && ok "a file written on the host is in the workspace" || bad "host.txt not in the workspace"
echo "from the enclave" >"$WS/enclave.txt"
[ "$(cat "$MNT/enclave.txt" 2>/dev/null)" = "from the enclave" ] && ok "a file written in the workspace appears on the host" || bad "enclave.txt not seen on the host"
echo "more" >>"$WS/enclave.txt"
[ "$(wc -l <"$MNT/enclave.txt")" -eq 2 ] && ok "a change in the workspace is seen at once" || bad "stale: $(cat "$MNT/enclave.txt")"
echo "appended" >>"$MNT/host.txt"
[ "$(tail -1 "$WS/host.txt")" = appended ] && ok "appending on the host" || bad "append lost"
rm "$WS/enclave.txt"
[ ! -e "$MNT/enclave.txt" ] && ok "a file removed in the workspace is gone on the host" || bad "enclave.txt still seen"
mkdir -p "$MNT/dataset/a" "$WS/output"
[ -d "$WS/dataset/a" ] && ok "mkdir -p on the host" || bad "no dataset/a in the workspace"
[ -d "$MNT/output" ] && ok "a directory made in the workspace appears" || bad "no output/ on the host"
printf 'x,y\n1,2\n' >"$MNT/dataset/a/data.csv"
mv "$MNT/dataset/a/data.csv" "$MNT/dataset/data.csv"
[ -f "$WS/dataset/data.csv" ] && [ ! -e "$WS/dataset/a/data.csv" ] && ok "rename on the host" || bad "rename"
mv "$WS/dataset/data.csv" "$WS/output/moved.csv"
[ -f "$MNT/output/moved.csv" ] && [ ! -e "$MNT/dataset/data.csv" ] && ok "rename in the workspace is seen" || bad "rename in the workspace"
chmod 600 "$MNT/host.txt"
[ "$(stat -c %a "$WS/host.txt")" = 600 ] && ok "chmod on the host" || bad "chmod: $(stat -c %a "$WS/host.txt")"
chmod 751 "$WS/output"
[ "$(stat -c %a "$MNT/output")" = 751 ] && ok "modes from the workspace are shown" || bad "mode $(stat -c %a "$MNT/output")"
touch -d '2001-02-03 04:05:06 UTC' "$MNT/host.txt"
[ "$(stat -c %Y "$WS/host.txt")" = 981173106 ] && ok "utimens on the host" || bad "mtime $(stat -c %Y "$WS/host.txt")"
truncate -s 3 "$MNT/host.txt"
[ "$(stat -c %s "$WS/host.txt")" = 3 ] && ok "truncate on the host" || bad "size $(stat -c %s "$WS/host.txt")"
truncate -s 100000 "$WS/host.txt"
[ "$(stat -c %s "$MNT/host.txt")" = 100000 ] && ok "a size change in the workspace is seen" || bad "size $(stat -c %s "$MNT/host.txt")"
echo new >"$MNT/host.txt"
[ "$(cat "$WS/host.txt")" = new ] && ok "overwriting (O_TRUNC) on the host" || bad "O_TRUNC: $(head -c 20 "$WS/host.txt")"
rmdir "$MNT/dataset/a"
[ ! -e "$WS/dataset/a" ] && ok "rmdir on the host" || bad "rmdir"
rmdir "$MNT/output" 2>err.log && bad "rmdir of a non-empty directory succeeded" || has 'not empty' "rmdir of a non-empty directory: ENOTEMPTY" err.log
cat "$MNT/nothing" 2>err.log && bad "reading a missing file succeeded" || has 'No such file' "a missing file: ENOENT" err.log
for i in $(seq 1 300); do echo "$i" >"$WS/output/f$i"; done
[ "$(ls "$MNT/output" | wc -l)" -eq 301 ] && ok "a directory of 301 entries lists fully" || bad "listed $(ls "$MNT/output" | wc -l) of 301"
ls -la "$MNT" >ls.log 2>&1 && has 'host.txt' "ls -la works" ls.log
df "$MNT" >df.log 2>&1 && ok "statfs (df) works" || { bad "df fails"; cat df.log; }
chown "$(id -u):$(id -g)" "$MNT/host.txt" && ok "chown to the owner shown is allowed" || bad "chown to self fails"
chown 12345 "$MNT/host.txt" 2>/dev/null && bad "chown to another user succeeded" || ok "chown to another user fails"
rm -rf "$MNT/output" "$MNT/dataset"
[ ! -e "$WS/output" ] && ok "rm -rf through the mount" || bad "rm -rf left $(ls "$WS")"

# ---- 1 GiB keeps its checksum, both ways ------------------------------------------
head -c $((1024 * 1024 * 1024)) /dev/urandom >big.bin
SUM=$(sha big.bin)
t0=$(date +%s.%N)
cp big.bin "$MNT/big.bin" && ok "copy 1 GiB into the mount" || bad "copy 1 GiB failed"
t1=$(date +%s.%N)
[ "$(sha "$WS/big.bin")" = "$SUM" ] && ok "the workspace holds the same 1 GiB (sha256)" || bad "the workspace copy differs"
t2=$(date +%s.%N)
cat "$MNT/big.bin" >/dev/null
t3=$(date +%s.%N)
[ "$(sha "$MNT/big.bin")" = "$SUM" ] && ok "read back through the mount: the same sha256" || bad "the read-back differs"
cp "$MNT/big.bin" back.bin
[ "$(sha back.bin)" = "$SUM" ] && ok "copied out of the mount: the same sha256" || bad "the copy out differs"
echo "info  1 GiB through FUSE: write $(echo "1024 / ($t1 - $t0)" | bc -l | cut -c1-6) MiB/s, read $(echo "1024 / ($t3 - $t2)" | bc -l | cut -c1-6) MiB/s"
rm -f big.bin back.bin "$MNT/big.bin"
[ ! -e "$WS/big.bin" ] && ok "and removed" || bad "big.bin still in the workspace"

# ---- unmount with fusermount3 -u ---------------------------------------------------
rm -f "$MNT/host.txt"
fusermount3 -u "$MNT" && ok "fusermount3 -u" || bad "fusermount3 -u failed"
check_clean "fusermount3 -u"
[ -z "$(ls -A "$WS")" ] && ok "the workspace is as the test left it (empty)" || bad "the workspace holds $(ls -A "$WS")"

# ---- foreground; SIGTERM and SIGINT unmount and exit 0 ------------------------------
for sig in TERM INT; do
	env --default-signal=INT "$WARD" sync -d "$MNT" "${S[@]}" -f >fg.out 2>fg.err &
	FP=$!
	for _ in $(seq 100); do mounted && break; sleep 0.1; done
	mounted && ok "-f: mounted in the foreground" || bad "-f: not mounted"
	echo "x" >"$WS/seen.txt"
	[ "$(cat "$MNT/seen.txt" 2>/dev/null)" = x ] && ok "-f: it serves" || bad "-f: not serving"
	rm -f "$WS/seen.txt"
	kill -$sig $FP
	wait $FP
	st=$?
	[ $st -eq 0 ] && ok "SIG$sig: exit 0" || bad "SIG$sig: exit $st"
	check_clean "SIG$sig"
done

# ---- SIGTERM to the background daemon ---------------------------------------------
expect 0 "mount again (daemon)" "$WARD" sync -d "$MNT" "${S[@]}"
for p in $(sync_pids); do kill -TERM "$p"; done
check_clean "SIGTERM to the daemon"

# ---- --log: where a daemon's warnings go -------------------------------------------
expect 2 "--log at a directory: nothing is mounted (exit 2)" "$WARD" sync -d "$MNT" "${S[@]}" --log "$WORK"
has 'is not a regular file' "the log file is named, and why" err.log
mounted && bad "a mount appeared" || ok "no mount appeared"
mkfifo fifo.log
expect 2 "--log at a FIFO is refused (exit 2)" timeout 10 "$WARD" sync -d "$MNT" "${S[@]}" --log fifo.log
mounted && bad "a mount appeared" || ok "no mount appeared"
rm -f fifo.log sync.log

# ---- the agent goes away, stalls, comes back ----------------------------------------
# (--log relative to here: the daemon's chdir to / must not move it)
expect 0 "mount with --timeout 3" "$WARD" sync -d "$MNT" "${S[@]}" --timeout 3 --log sync.log
[ "$(stat -c %a sync.log 2>/dev/null)" = 600 ] && ok "--log: the file is made 0600" || bad "--log: $(stat -c %a sync.log 2>&1)"
echo hello >"$WS/h.txt"
[ "$(cat "$MNT/h.txt")" = hello ] && ok "serving" || bad "not serving"
kill -STOP "$AGENT"
t0=$(date +%s)
cat "$MNT/h.txt" >/dev/null 2>err.log && bad "a read from a stalled agent succeeded" || ok "a stalled agent: the read fails"
t1=$(date +%s)
[ $((t1 - t0)) -le 15 ] && ok "within the timeout ($((t1 - t0)) s)" || bad "took $((t1 - t0)) s"
has 'Input/output error' "with EIO" err.log
kill -CONT "$AGENT"
sleep 0.5
[ "$(cat "$MNT/h.txt" 2>/dev/null)" = hello ] && ok "the agent answers again: serving again" || bad "not serving after SIGCONT"
kill "$AGENT"
wait "$AGENT" 2>/dev/null
t0=$(date +%s)
ls "$MNT" >/dev/null 2>err.log && bad "ls with the agent gone succeeded" || has 'Input/output error' "the agent gone: EIO" err.log
# the daemon's warning is in its log, with its time and pid
if grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z ward\[[0-9]+\]: warning: ward sync: .*operations fail with EIO' sync.log; then
	ok "--log: the daemon's warning about the agent is in the log"
else
	bad "--log: no warning in the log: $(cat sync.log)"
fi
cat "$MNT/h.txt" >/dev/null 2>&1 && bad "a read with the agent gone succeeded" || ok "reads fail too"
t1=$(date +%s)
[ $((t1 - t0)) -le 5 ] && ok "at once ($((t1 - t0)) s), no hang" || bad "took $((t1 - t0)) s"
start_agent
[ "$(cat "$MNT/h.txt" 2>/dev/null)" = hello ] && ok "a restarted agent is used again" || bad "not serving after the restart"
kill "$AGENT"
wait "$AGENT" 2>/dev/null
AGENT=
fusermount3 -u "$MNT" && ok "with the agent gone, fusermount3 -u still works" || bad "cannot unmount with the agent gone"
check_clean "unmount after the agent went away"

finish sync
