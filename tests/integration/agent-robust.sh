#!/bin/bash
# Bad input against a real `ward agent` listening on a Unix socket (no
# enclave needed for the workspace): malformed, oversized and truncated
# frames, a slow peer, vanishing peers, too many connections, concurrent
# clients, 10,000 requests with flat memory (agent_abuse.c), then SIGTERM.
#   agent-robust.sh WARD AGENT_ABUSE WORKDIR
set -u
WARD=$1 PROG=$2 WORK=$3
rm -rf "$WORK" && mkdir -p "$WORK" || exit 1
W=$(mktemp -d /tmp/ward-agent.XXXXXX) || exit 1
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT
rc=0

# ASan's quarantine would hide (or fake) growth: keep it small here.
ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=1 \
	"$WARD" agent --listen "unix:$W/a.sock" --workspace "$W/ws" \
	--apps-dir "$W/apps" --max-connections 24 --io-timeout 2 --ready-fd 3 \
	3>"$W/ready" 2>"$WORK/agent.log" &
pid=$!
for _ in $(seq 100); do [ -s "$W/ready" ] && break; sleep 0.05; done
if [ ! -s "$W/ready" ]; then
	echo "FAIL  the agent did not start"; cat "$WORK/agent.log"; exit 1
fi
echo "ok    ward agent is listening on unix:$W/a.sock"

"$PROG" "unix:$W/a.sock" "$pid" 24 2 || rc=1

if kill -0 "$pid" 2>/dev/null; then
	echo "ok    the agent is still running"
else
	echo "FAIL  the agent died"; rc=1
fi
kill -TERM "$pid"
wait "$pid"; st=$?
pid=
if [ "$st" -eq 0 ]; then echo "ok    SIGTERM: exit 0"; else
	echo "FAIL  SIGTERM: exit $st"; rc=1; fi
left=$(find "$W/ws" -name '.*' -o -name '*.tmp*' | wc -l)
if [ "$left" -eq 0 ]; then echo "ok    no temporary files left in the workspace"; else
	echo "FAIL  $left temporary files left"; find "$W/ws"; rc=1; fi
if grep -q 'secret\|AKID' "$WORK/agent.log"; then
	echo "FAIL  the agent's log mentions credentials"; rc=1; fi
[ $rc -ne 0 ] && { echo "--- agent log"; tail -30 "$WORK/agent.log"; }
exit $rc
