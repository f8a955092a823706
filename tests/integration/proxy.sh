#!/usr/bin/env bash
# ward proxy through the real binary, on the sandbox's vsock emulation
# (WARD_VSOCK=emulated: the proxy listens on $WARD_RUN_DIR/vsock/3/PORT,
# where a sandbox enclave's connections to CID 3 land):
#   usage and the allowlist: refusals by port, by a name that resolves
#     elsewhere, by IP, unresolvable names, -4/-6; malformed files;
#     admitted by name and by IP; -s kms from AWS_REGION and from
#     AWS_ENDPOINT_URL_KMS (a real ward kms serve behind it)
#   load: 1,000 concurrent connections, each with its own payload and
#     answer, every byte checked (proxy_load.c), echoes among them
#   bad input: peers that vanish, servers that reset, half-closed
#     connections, an unreachable remote; the proxy keeps serving
#   limits: max connections, idle timeout; TLS end to end through it;
#     one log line per connection and never payload; SIGTERM: socket
#     removed, in-flight finished, exit 0; the grace period's end
# usage: proxy.sh WARD_BIN PROXY_LOAD_BIN WORKDIR
set -uo pipefail
WARD=$(realpath "$1")
LOAD=$(realpath "$2")
WORK=$3
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK" || exit 1
WORK=$(pwd)

# socket paths must fit in 108 bytes: a short run directory
RUN=$(mktemp -d /tmp/ward-px.XXXXXX) && chmod 755 "$RUN" || exit 1
export WARD_RUN_DIR=$RUN WARD_VSOCK=emulated
unset AWS_ENDPOINT_URL_KMS WARD_KMS_ENDPOINT AWS_REGION AWS_DEFAULT_REGION
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$RUN"
}
trap cleanup EXIT

# wait_for FILE PATTERN [TENTHS]: until a line of FILE matches (a ready
# line the process prints), at most TENTHS tenths of a second
wait_for() {
	local i
	for ((i = 0; i < ${3:-100}; i++)); do
		grep -q -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
# gone_within TENTHS PID: the process ended within the time
gone_within() {
	local i
	for ((i = 0; i < $1; i++)); do
		kill -0 "$2" 2>/dev/null || return 0
		sleep 0.1
	done
	return 1
}
# start_server NAME [ARGS]: proxy_load serve; sets PORT_<NAME>, SPID_<NAME>
start_server() {
	local name=$1
	shift
	"$LOAD" serve "$@" >"srv-$name.out" 2>"srv-$name.err" &
	PIDS+=($!)
	printf -v "SPID_$name" %s $!
	wait_for "srv-$name.out" '"Port"' || { bad "server $name did not start"; cat "srv-$name.err"; exit 1; }
	printf -v "PORT_$name" %s "$(sed -n 's/{"Port":\([0-9]*\)}/\1/p' "srv-$name.out")"
}
# start_proxy NAME ARGS...: ward proxy; sets PID_<NAME>; NAME.out holds
# the ready line, NAME.err the log
start_proxy() {
	local name=$1
	shift
	"$WARD" proxy "$@" >"$name.out" 2>"$name.err" &
	PIDS+=($!)
	printf -v "PID_$name" %s $!
	if wait_for "$name.out" '"Listen"'; then ok "proxy $name is listening"; else
		bad "proxy $name did not start"; sed 's/^/      /' "$name.err"; return 1; fi
}
# stop NAME / stop_server NAME: SIGTERM, then the exit status in STATUS
stop() {
	local pid
	pid=$(eval echo "\$PID_$1")
	kill -TERM "$pid" 2>/dev/null
	wait "$pid"
	STATUS=$?
}
stop_server() {
	local pid
	pid=$(eval echo "\$SPID_$1")
	kill -TERM "$pid" 2>/dev/null
	wait "$pid"
	STATUS=$?
}
fds() { ls "/proc/$1/fd" | wc -l; }
conns() { grep -c ' conn=' "$1"; }
NOT_ALLOWED='The given address and port are not allowed'

# ---- usage ------------------------------------------------------------------
expect 0 "proxy --help" "$WARD" proxy --help
has 'allowlist' "--help describes the allowlist"
has 'num_workers' "--help has vsock-proxy's flags"
expect 0 "ward help proxy" "$WARD" help proxy
expect 2 "no arguments" timeout 20 "$WARD" proxy
expect 2 "-4 and -6 conflict" timeout 20 "$WARD" proxy -4 -6 8000 127.0.0.1 1
has 'conflict' "the conflict is named" err.log
expect 2 "-w 0 is refused (as vsock-proxy does)" timeout 20 "$WARD" proxy -w 0 8000 127.0.0.1 1
expect 2 "REMOTE_PORT 65536" timeout 20 "$WARD" proxy 8000 127.0.0.1 65536
expect 2 "REMOTE_PORT 0" timeout 20 "$WARD" proxy 8000 127.0.0.1 0
expect 2 "LOCAL_PORT not a number" timeout 20 "$WARD" proxy 8x 127.0.0.1 1
expect 2 "an unknown service" timeout 20 "$WARD" proxy -s s3
expect 2 "-s kms with a remote" timeout 20 "$WARD" proxy -s kms 8000 127.0.0.1 443
expect 2 "-s kms without a region or endpoint" timeout 20 "$WARD" proxy -s kms
has 'AWS_REGION' "it asks for AWS_REGION" err.log
# -s kms adds $AWS_ENDPOINT_URL_KMS's HOST:PORT to the allowlist, so the
# URL must say one host plainly: no user info, query, fragment, escapes or
# dot segments that another parser could read differently
for url in 'http://kms.us-east-1.amazonaws.com@127.0.0.1:4599' 'http://127.0.0.1:4599/?x=1' \
	'http://127.0.0.1:4599/#f' 'http://127.0.0.1:4599/a/../b' 'http://127.0.0.1%2e:4599' \
	'http://127.0.0.1:4599\@evil.example' 'https://[127.0.0.1]/' 'http://127.0.0.1:4599/@evil.example'; do
	expect 2 "-s kms refuses AWS_ENDPOINT_URL_KMS=$url" env AWS_ENDPOINT_URL_KMS="$url" timeout 20 "$WARD" proxy -s kms 5099
done
absent "$RUN/vsock/3/5099" "none of them listened"

# ---- the allowlist ------------------------------------------------------------
start_server main
P=$PORT_main
cat >names.yaml <<EOF
# vsock-proxy's form, as nitro.md §6 shows it
allowlist:
- {address: localhost, port: $P}
- {address: kms.us-east-1.amazonaws.com, port: 443}
EOF
printf 'allowlist:\n  - address: 127.0.0.1\n    port: %s\n' "$P" >ip.yaml
printf 'allowlist:\n- {address: 127.0.0.2, port: %s}\n' "$P" >other.yaml
expect 2 "port mismatch: refused" timeout 20 "$WARD" proxy --config names.yaml 5001 localhost $((P + 1))
has "$NOT_ALLOWED" "vsock-proxy's message" err.log
expect 2 "a listed name that resolves elsewhere (localhost vs 127.0.0.2): refused" \
	timeout 20 "$WARD" proxy --config names.yaml 5001 127.0.0.2 "$P"
has "$NOT_ALLOWED" "vsock-proxy's message" err.log
expect 2 "an IP not listed: refused" timeout 20 "$WARD" proxy --config other.yaml 5001 127.0.0.1 "$P"
has "$NOT_ALLOWED" "vsock-proxy's message" err.log
expect 2 "a name not listed that resolves elsewhere: refused" timeout 20 "$WARD" proxy --config other.yaml 5001 localhost "$P"
expect 2 "a name that does not resolve: refused" timeout 20 "$WARD" proxy --config names.yaml 5001 nosuch.invalid "$P"
has "$NOT_ALLOWED" "vsock-proxy's message" err.log
expect 2 "-6 with an IPv4 address" timeout 20 "$WARD" proxy -6 --config ip.yaml 5001 127.0.0.1 "$P"
has 'IPv4 address' "the reason is given" err.log
expect 2 "-6: no IPv6 address of localhost is a listed one" timeout 20 "$WARD" proxy -6 --config ip.yaml 5001 localhost "$P"
absent "$RUN/vsock/3/5001" "nothing listened for a refused destination"
if [ ! -e /etc/ward/vsock-proxy.yaml ]; then
	expect 2 "the built-in allowlist (no /etc/ward/vsock-proxy.yaml) refuses 127.0.0.1" \
		timeout 20 "$WARD" proxy 5001 127.0.0.1 "$P"
	has 'built-in' "the message names the built-in list" err.log
fi
expect 3 "a missing --config file" timeout 20 "$WARD" proxy --config nope.yaml 5001 127.0.0.1 "$P"
printf 'allowlist: [\n' >bad.yaml
expect 4 "malformed YAML" timeout 20 "$WARD" proxy --config bad.yaml 5001 127.0.0.1 "$P"
printf 'services:\n- {address: 127.0.0.1, port: %s}\n' "$P" >nofield.yaml
expect 4 "no allowlist field" timeout 20 "$WARD" proxy --config nofield.yaml 5001 127.0.0.1 "$P"
has 'No allowlist field' "vsock-proxy's words" err.log
printf 'allowlist:\n- {address: 127.0.0.1, port: "%s"}\n' "$P" >quoted.yaml
expect 4 "a quoted port" timeout 20 "$WARD" proxy --config quoted.yaml 5001 127.0.0.1 "$P"
printf 'allowlist:\n- {address: 127.0.0.1}\n' >noport.yaml
expect 4 "an entry without a port" timeout 20 "$WARD" proxy --config noport.yaml 5001 127.0.0.1 "$P"

start_proxy byname --config names.yaml 5002 localhost "$P" &&
	cp byname.out out.log &&
	json "admitted by name: the ready line" "j.Listen==='vsock:3:5002' && j.Remote==='localhost:$P'"
expect 0 "a connection through it" "$LOAD" run --vsock 3:5002 --connections 3
stop byname
[ "$STATUS" -eq 0 ] && ok "SIGTERM: exit 0" || bad "SIGTERM: exit $STATUS"
start_proxy byip1 -4 --config names.yaml 5003 127.0.0.1 "$P" # localhost -> 127.0.0.1
expect 0 "admitted by IP (a listed name resolving to REMOTE_ADDR)" "$LOAD" run --vsock 3:5003 --connections 3
stop byip1
start_proxy byip2 --config ip.yaml 5004 localhost "$P" # REMOTE_ADDR -> a listed IP
expect 0 "admitted by IP (REMOTE_ADDR resolving to a listed IP)" "$LOAD" run --vsock 3:5004 --connections 3
stop byip2

# ---- load: 1,000 concurrent connections, every byte checked ----------------
# this server answers nothing until 1,000 connections are open at once
# (or 10 s have passed): so they provably coexist end to end
start_server load --hold 1000 --hold-timeout 10
printf 'allowlist:\n- {address: 127.0.0.1, port: %s}\n- {address: 127.0.0.1, port: %s}\n' "$P" "$PORT_load" >ip.yaml
start_proxy load --config ip.yaml 5010 127.0.0.1 "$PORT_load" || exit 1
expect 0 "1,000 concurrent connections through the proxy, every answer checked" \
	"$LOAD" run --vsock 3:5010 --connections 1000 --echo-every 10 --seed 1
json "all 1,000 open at once, all checked (FNV-1a and lengths, both ways)" \
	'j.Connections===1000 && j.Ok===1000 && j.Failed===0 && j.MaxOpen===1000 && j.Up>1e8 && j.Down>1e7'
ok "each of them half-closed and still got its whole answer (the sink answers after end of file)"
stop_server load
tail -n 1 srv-load.out >out.log
json "the server saw all 1,000 open at once before it answered any" 'j.Peak===1000 && j.Completed===1000 && j.Errors===0'
stop load
n=$(conns load.err)
[ "$n" -eq 1000 ] && ok "one log line per connection (1000)" || bad "$n log lines for 1000 connections"

# every relay mode carries the same bytes: splice both ways, copy both ways
for mode in always never; do
	start_proxy "splice_$mode" --splice "$mode" --config ip.yaml 5012 127.0.0.1 "$P"
	expect 0 "--splice $mode: 200 connections checked, echoes among them" \
		"$LOAD" run --vsock 3:5012 --connections 200 --concurrency 50 --echo-every 5 --seed 6
	stop "splice_$mode"
done
expect 2 "--splice sometimes" timeout 20 "$WARD" proxy --splice sometimes 5012 127.0.0.1 "$P"

start_proxy main --config ip.yaml 5000 127.0.0.1 "$P" || exit 1
BASE=$(fds "$PID_main")
expect 0 "1,000 more through another proxy, 200 at a time" \
	"$LOAD" run --vsock 3:5000 --connections 1000 --concurrency 200 --echo-every 7 --seed 10
N_MAIN=1000

# ---- bad input: vanishing peers, resets, under load ------------------------------
"$LOAD" vanish --vsock 3:5000 --connections 300 --seed 2 >vanish.log 2>&1 &
V=$!
"$LOAD" resetting --vsock 3:5000 --connections 100 --seed 3 >reset.log 2>&1 &
R=$!
expect 0 "200 checked connections while peers vanish and the server resets others" \
	"$LOAD" run --vsock 3:5000 --connections 200 --concurrency 50 --seed 4
wait "$V" && ok "300 peers vanished (at connect, mid-upload, mid-answer)" || { bad "vanish"; cat vanish.log; }
wait "$R" && ok "100 connections the server reset mid-stream ended promptly for the enclave" || { bad "resetting"; cat reset.log; }
N_MAIN=$((N_MAIN + 600))
expect 0 "half-closed with a pause: the upload resumes and the answer arrives" \
	bash -c "yes | \"$LOAD\" slow --vsock 3:5000 --size 3000000"
N_MAIN=$((N_MAIN + 1))

# ---- an unreachable remote -----------------------------------------------
start_server dead
DEAD=$PORT_dead
stop_server dead # nothing listens on DEAD now
printf 'allowlist:\n- {address: 127.0.0.1, port: %s}\n' "$DEAD" >dead.yaml
start_proxy dead --config dead.yaml 5005 127.0.0.1 "$DEAD"
expect 0 "an unreachable remote: 50 connections each closed promptly, no bytes" \
	"$LOAD" unreachable --vsock 3:5005 --connections 50 --max-size 4096 --timeout-ms 3000
has 'connect-failed (Connection refused)' "the log says why" dead.err
expect 0 "meanwhile the first proxy serves as before" "$LOAD" run --vsock 3:5000 --connections 20 --seed 5
N_MAIN=$((N_MAIN + 20))
start_server back --port "$DEAD"
expect 0 "once the remote is back, the same proxy serves it" "$LOAD" run --vsock 3:5005 --connections 20
stop dead
[ "$STATUS" -eq 0 ] && ok "and stops with exit 0" || bad "exit $STATUS"

# ---- TLS end to end: the proxy carries the handshake untouched ----------------
if openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=kms.test \
	-addext subjectAltName=DNS:kms.test -days 1 -keyout tls.key -out tls.pem 2>/dev/null; then
	node -e "
	const tls=require('tls'),fs=require('fs');
	const s=tls.createServer({key:fs.readFileSync('tls.key'),cert:fs.readFileSync('tls.pem')},c=>{
		c.on('data',d=>c.end('tls:'+d.toString()));});
	s.listen(0,'127.0.0.1',()=>fs.writeFileSync('tls.port',String(s.address().port)));" &
	PIDS+=($!)
	wait_for tls.port '[0-9]' || bad "the TLS server did not start"
	TP=$(cat tls.port)
	printf 'allowlist:\n- {address: 127.0.0.1, port: %s}\n' "$TP" >tls.yaml
	start_proxy tls --config tls.yaml 5006 127.0.0.1 "$TP"
	expect 0 "TLS through the proxy: the server's certificate verifies, the bytes echo" node -e "
	const tls=require('tls'),net=require('net'),fs=require('fs');
	const raw=net.connect('$RUN/vsock/3/5006');
	const c=tls.connect({socket:raw,servername:'kms.test',ca:fs.readFileSync('tls.pem')},()=>{
		if(!c.authorized) process.exit(3); c.write('ping');});
	let got='';c.on('data',d=>got+=d);c.on('end',()=>process.exit(got==='tls:ping'?0:4));
	c.on('error',e=>{console.error(e.message);process.exit(5)});"
	stop tls
else
	bad "openssl could not make a test certificate"
fi

# ---- a server that speaks first (no byte from the enclave yet) ---------------
node -e "
const s=require('net').createServer(c=>c.end('banner\\n'));
s.listen(0,'127.0.0.1',()=>require('fs').writeFileSync('banner.port',String(s.address().port)));" &
PIDS+=($!)
wait_for banner.port '[0-9]' || bad "the banner server did not start"
BP=$(cat banner.port)
printf 'allowlist:\n- {address: 127.0.0.1, port: %s}\n' "$BP" >banner.yaml
start_proxy banner --config banner.yaml 5011 127.0.0.1 "$BP"
expect 0 "a server that speaks first: its greeting reaches the silent enclave" node -e "
const c=require('net').connect('$RUN/vsock/3/5011');let got='';
c.on('data',d=>got+=d);c.on('end',()=>process.exit(got==='banner\\n'?0:1));
c.on('error',()=>process.exit(2));setTimeout(()=>process.exit(3),5000);"
stop banner

# ---- limits ------------------------------------------------------------------
start_proxy limit --config ip.yaml --max-connections 2 --idle-timeout 3 5007 127.0.0.1 "$P"
mkfifo gate1 gate2
"$LOAD" slow --vsock 3:5007 --seed 11 <gate1 >slow1.out 2>&1 &
S1=$!
"$LOAD" slow --vsock 3:5007 --seed 12 <gate2 >slow2.out 2>&1 &
S2=$!
exec 7>gate1 8>gate2
wait_for slow1.out half && wait_for slow2.out half || bad "the slow clients did not start"
expect 0 "a third connection beyond --max-connections 2 is closed at once, unanswered" \
	"$LOAD" unreachable --vsock 3:5007 --connections 1 --timeout-ms 2000
has 'end=limit' "the log says limit" limit.err
echo go >&7
exec 7>&-
wait "$S1" && ok "the first held connection completes" || { bad "slow 1"; cat slow1.out; }
# the second stays paused past --idle-timeout 3
wait_for limit.err 'end=idle-timeout' 80 && ok "an idle connection is closed after --idle-timeout" ||
	bad "no idle timeout in the log"
echo go >&8
exec 8>&-
if wait "$S2"; then bad "the idle connection was not cut"; else ok "its client sees the cut"; fi
stop limit

# ---- -s kms -------------------------------------------------------------------
printf 'allowlist:\n- {address: kms.us-east-1.amazonaws.com, port: 443}\n' >kms.yaml
AWS_REGION=us-east-1 start_proxy kmsregion -s kms --config kms.yaml 5008 &&
	cp kmsregion.out out.log &&
	json "-s kms with AWS_REGION: kms.us-east-1.amazonaws.com:443" "j.Remote==='kms.us-east-1.amazonaws.com:443' && j.Listen==='vsock:3:5008'"
stop kmsregion
[ "$STATUS" -eq 0 ] && ok "stopped" || bad "exit $STATUS"
expect 2 "-s kms with AWS_DEFAULT_REGION eu-west-3: not in this list" \
	env AWS_DEFAULT_REGION=eu-west-3 timeout 20 "$WARD" proxy -s kms --config kms.yaml 5008
has "$NOT_ALLOWED" "vsock-proxy's message" err.log
if "$WARD" kms init --state kms >kms-init.json 2>kms-init.err; then
	"$WARD" kms serve --state kms --listen 127.0.0.1:0 >kms-ready 2>kms-serve.log &
	PIDS+=($!)
	wait_for kms-ready Listen || bad "ward kms serve did not start"
	KP=$(sed -n 's/.*"tcp:127\.0\.0\.1:\([0-9]*\)".*/\1/p' kms-ready)
	if [ -e "$RUN/vsock/3/8000" ] || [ -z "$KP" ]; then
		bad "vsock port 8000 is taken or kms serve gave no port"
	else
		AWS_ENDPOINT_URL_KMS=http://127.0.0.1:$KP start_proxy kmslocal -v -s kms --config kms.yaml
		cp kmslocal.out out.log
		json "-s kms with AWS_ENDPOINT_URL_KMS: the local server, on port 8000" \
			"j.Remote==='127.0.0.1:$KP' && j.Listen==='vsock:3:8000'"
		has "allowlist extended with 127.0.0.1:$KP (from \$AWS_ENDPOINT_URL_KMS=http://127.0.0.1:$KP), which kms.yaml does not list" \
			"stderr says the allowlist was extended, with what and from where" kmslocal.err
		has 'allowed by name in kms.yaml + \$AWS_ENDPOINT_URL_KMS' "the start line names the extension as the allowlist's source" kmslocal.err
		expect 0 "a KMS request through the proxy reaches ward kms serve" node -e "
		const http=require('http');
		const r=http.request({socketPath:'$RUN/vsock/3/8000',method:'POST',path:'/',headers:{
			'Content-Type':'application/x-amz-json-1.1','X-Amz-Target':'TrentService.ListKeys'}},res=>{
			let b='';res.on('data',d=>b+=d);res.on('end',()=>{console.log(res.statusCode,b);
			process.exit(JSON.parse(b).__type?0:1)});});
		r.on('error',e=>{console.error(e.message);process.exit(2)});r.end('{}');"
		has '__type' "an AWS error answer (unsigned request) came back"
		stop kmslocal
	fi
else
	bad "ward kms init failed"; cat kms-init.err
fi

# ---- logging ------------------------------------------------------------------
node -e "
const c=require('net').connect('$RUN/vsock/3/5000',()=>c.end(Buffer.concat([Buffer.from('S\0\0\0\0'),Buffer.from('WARD-PAYLOAD-MARKER')])));
let got=Buffer.alloc(0);c.on('data',d=>got=Buffer.concat([got,d]));
c.on('end',()=>process.exit(got.length===16&&got.readBigUInt64BE(0)===19n?0:1));" &&
	ok "a marker payload went through" || bad "the marker payload"
N_MAIN=$((N_MAIN + 1))
expect 0 "after all that the proxy still serves a normal connection" "$LOAD" run --vsock 3:5000 --connections 1 --seed 9
N_MAIN=$((N_MAIN + 1))
for _ in $(seq 50); do [ "$(fds "$PID_main")" -le "$BASE" ] && break; sleep 0.1; done
now=$(fds "$PID_main")
[ "$now" -le "$BASE" ] && ok "no descriptor leaked ($now open, $BASE at the start)" || bad "descriptors: $now open, $BASE at the start"

# ---- SIGTERM ------------------------------------------------------------------
mkfifo gate3
"$LOAD" slow --vsock 3:5000 --seed 13 <gate3 >slow3.out 2>&1 &
S3=$!
exec 9>gate3
wait_for slow3.out half || bad "the slow client did not start"
N_MAIN=$((N_MAIN + 1))
kill -TERM "$PID_main"
for _ in $(seq 30); do [ -e "$RUN/vsock/3/5000" ] || break; sleep 0.1; done
absent "$RUN/vsock/3/5000" "SIGTERM: the socket file is removed at once"
expect 1 "a new connection is refused" "$LOAD" run --vsock 3:5000 --connections 1
kill -0 "$PID_main" 2>/dev/null && ok "the proxy waits for the connection in flight" || bad "the proxy did not wait"
echo go >&9
exec 9>&-
wait "$S3" && ok "the connection in flight completes after SIGTERM" || { bad "slow 3"; cat slow3.out; }
if gone_within 30 "$PID_main"; then ok "then the proxy exits promptly"; else bad "the proxy is still running"; fi
wait "$PID_main"
st=$?
[ "$st" -eq 0 ] && ok "exit status 0" || bad "exit status $st"
n=$(conns main.err)
[ "$n" -eq "$N_MAIN" ] && ok "one log line per connection ($n)" || bad "$n log lines for $N_MAIN connections"
if grep -q 'WARD-PAYLOAD-MARKER' main.err; then bad "payload in the log"; else ok "no payload in the log"; fi
grep -m1 ' conn=' main.err | grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z ward proxy: conn=[0-9]+ peer=unix:pid=[0-9]+ remote=127\.0\.0\.1:[0-9]+ up=[0-9]+ down=[0-9]+ time=[0-9.]+s end=' &&
	ok "a log line has time, id, peer, remote, bytes both ways, duration, end" || { bad "log format"; head -2 main.err; }

# the grace period's end: a connection that never finishes is cut
start_proxy grace --config ip.yaml --shutdown-grace 1 5009 127.0.0.1 "$P"
mkfifo gate4
"$LOAD" slow --vsock 3:5009 --seed 14 <gate4 >slow4.out 2>&1 &
S4=$!
exec 6>gate4
wait_for slow4.out half || bad "the slow client did not start"
kill -TERM "$PID_grace"
if gone_within 40 "$PID_grace"; then ok "a stalled connection does not hold the proxy past --shutdown-grace"; else bad "still running after the grace period"; fi
wait "$PID_grace"
st=$?
[ "$st" -eq 0 ] && ok "exit status 0" || bad "exit status $st"
has 'end=shutdown' "the cut connection is logged as shutdown" grace.err
exec 6>&-
wait "$S4"

# ---- a second SIGTERM ends the grace period at once -----------------------------
start_proxy twice --config ip.yaml --shutdown-grace 60 5013 127.0.0.1 "$P"
mkfifo gate5
"$LOAD" slow --vsock 3:5013 --seed 15 <gate5 >slow5.out 2>&1 &
S5=$!
exec 5>gate5
wait_for slow5.out half || bad "the slow client did not start"
kill -TERM "$PID_twice"
sleep 0.5
kill -0 "$PID_twice" 2>/dev/null && ok "after one SIGTERM the proxy waits (grace 60 s)" || bad "the proxy did not wait"
kill -TERM "$PID_twice"
if gone_within 30 "$PID_twice"; then ok "a second SIGTERM stops it at once"; else bad "still running 3 s after a second SIGTERM"; fi
wait "$PID_twice"
st=$?
[ "$st" -eq 0 ] && ok "exit status 0" || bad "exit status $st"
has 'end=shutdown' "the cut connection is logged as shutdown" twice.err
has 'again: closing' "the log says why" twice.err
exec 5>&-
wait "$S5"

# ---- a remote that half-closes, then resets ------------------------------------
# it answers, sends its end of file, and resets 0.3 s later; the enclave
# holds its side open. The reset must end the pair at once, logged as a
# reset, not when the idle timeout comes.
node -e "
const s=require('net').createServer({allowHalfOpen:true},c=>{c.once('data',()=>{c.end('answer');
	setTimeout(()=>c.resetAndDestroy(),300);});c.on('error',()=>{});});
s.listen(0,'127.0.0.1',()=>require('fs').writeFileSync('rst.port',String(s.address().port)));" &
PIDS+=($!)
wait_for rst.port '[0-9]' || bad "the resetting server did not start"
RP=$(cat rst.port)
printf 'allowlist:\n- {address: 127.0.0.1, port: %s}\n' "$RP" >rst.yaml
start_proxy rst --config rst.yaml --idle-timeout 60 5014 127.0.0.1 "$RP"
node -e "
const c=require('net').connect({path:'$RUN/vsock/3/5014',allowHalfOpen:true},()=>c.write('request'));
let got='';c.on('data',d=>got+=d);c.on('error',()=>{});
setTimeout(()=>process.exit(got==='answer'?0:1),4000);" >rst-client.out 2>&1 &
RC=$!
if wait_for rst.err ' conn=' 30; then ok "the reset ended the pair within 3 s (idle timeout 60 s)"; else
	bad "no log line 3 s after the remote's reset"; fi
has 'end=remote-reset' "logged as a reset" rst.err
wait "$RC" && ok "the answer sent before the reset was delivered" || bad "the answer was lost"

# ---- a peer that half-closes and vanishes: --half-close-timeout -----------------
# the enclave sends and half-closes; the remote never answers nor closes
node -e "
const s=require('net').createServer({allowHalfOpen:true},c=>{c.resume();c.on('error',()=>{});});
s.listen(0,'127.0.0.1',()=>require('fs').writeFileSync('mute.port',String(s.address().port)));" &
PIDS+=($!)
wait_for mute.port '[0-9]' || bad "the silent server did not start"
MP=$(cat mute.port)
printf 'allowlist:\n- {address: 127.0.0.1, port: %s}\n' "$MP" >mute.yaml
start_proxy mute --config mute.yaml --idle-timeout 60 --half-close-timeout 2 5015 127.0.0.1 "$MP"
expect 0 "a half-closed pair with no answer is closed after --half-close-timeout 2 (idle 60)" node -e "
const t=Date.now(),c=require('net').connect({path:'$RUN/vsock/3/5015',allowHalfOpen:true},()=>c.end('request'));
c.on('error',()=>{});c.on('close',()=>{const s=(Date.now()-t)/1000;console.log(s);process.exit(s>=1.5&&s<5?0:1);});
setTimeout(()=>process.exit(2),8000);"
has 'end=half-close-timeout' "logged as half-close-timeout" mute.err
stop mute

# ---- names that move: a private /etc/hosts (unshare -m, bind mount) -------------
# in_ns NAME HOSTS ARGS...: ward proxy ARGS in a mount namespace whose
# /etc/hosts is HOSTS (rewritten in place from here, it changes there)
in_ns() {
	local name=$1 hosts=$2
	shift 2
	unshare -m sh -c 'mount --bind "$1" /etc/hosts && shift && exec "$@"' sh "$hosts" "$WARD" proxy "$@" >"$name.out" 2>"$name.err" &
	PIDS+=($!)
	printf -v "PID_$name" %s $!
	if wait_for "$name.out" '"Listen"'; then ok "proxy $name is listening (private /etc/hosts)"; else
		bad "proxy $name did not start"; sed 's/^/      /' "$name.err"; return 1; fi
}
if unshare -m sh -c 'mount --bind /dev/null /etc/hosts' 2>/dev/null; then
	# an IP match: REMOTE_ADDR 127.0.0.1 is admitted because the listed
	# name resolves to it; when the name moves elsewhere, 127.0.0.1 is
	# no longer an address of an entry, and connections are refused
	printf '127.0.0.1 svc.ward.test\n' >hosts.rebind
	printf 'allowlist:\n- {address: svc.ward.test, port: %s}\n' "$P" >rebind.yaml
	in_ns rebind hosts.rebind -v --dns-refresh 1 --config rebind.yaml 5016 127.0.0.1 "$P"
	expect 0 "admitted by IP while svc.ward.test resolves to 127.0.0.1" "$LOAD" run --vsock 3:5016 --connections 3 --seed 16
	printf '127.0.0.2 svc.ward.test\n' >hosts.rebind
	wait_for rebind.err 'connections are refused' 50 && ok "the lookup a second later sees the name elsewhere" ||
		bad "no sign of the new lookup"
	expect 0 "a name that resolves elsewhere now: connections are closed, nothing relayed" \
		"$LOAD" unreachable --vsock 3:5016 --connections 3 --timeout-ms 3000
	has 'end=not-allowed' "logged as not-allowed" rebind.err
	printf '127.0.0.1 svc.ward.test\n' >hosts.rebind
	for _ in $(seq 30); do grep -q "127.0.0.1 now: 127.0.0.1:$P" rebind.err && break; sleep 0.1; done
	expect 0 "back at 127.0.0.1: admitted again" "$LOAD" run --vsock 3:5016 --connections 3 --seed 17
	stop rebind

	# a name match follows the name (vsock-proxy's rule): to 127.0.0.2,
	# where nothing listens
	printf 'allowlist:\n- {address: svc.ward.test, port: %s}\n' "$P" >follow.yaml
	in_ns follow hosts.rebind -v --dns-refresh 1 --config follow.yaml 5017 svc.ward.test "$P"
	expect 0 "by name: relayed while svc.ward.test is 127.0.0.1" "$LOAD" run --vsock 3:5017 --connections 2 --seed 18
	printf '127.0.0.2 svc.ward.test\n' >hosts.rebind
	wait_for follow.err "svc.ward.test now: 127.0.0.2:$P" 50 && ok "by name: the next lookup follows the name" || bad "the name was not looked up again"
	expect 0 "by name: now to 127.0.0.2 (refused there)" "$LOAD" unreachable --vsock 3:5017 --connections 1 --timeout-ms 3000
	has "remote=127.0.0.2:$P .*end=connect-failed" "the log names the new address" follow.err
	stop follow

	# --connect-timeout is for the whole connect: a name with 4 addresses
	# that never answer (a full accept queue drops the SYNs)
	"$LOAD" blackhole >bh.out 2>bh.err &
	PIDS+=($!)
	BH_PID=$!
	wait_for bh.out Port || bad "the blackhole did not start"
	BH=$(sed -n 's/{"Port":\([0-9]*\)}/\1/p' bh.out)
	printf '127.0.0.11 slow.ward.test\n127.0.0.12 slow.ward.test\n127.0.0.13 slow.ward.test\n127.0.0.14 slow.ward.test\n' >hosts.slow
	printf 'allowlist:\n- {address: slow.ward.test, port: %s}\n' "$BH" >slow.yaml
	in_ns slowconn hosts.slow --connect-timeout 2 --config slow.yaml 5018 slow.ward.test "$BH"
	expect 0 "4 unreachable addresses, --connect-timeout 2: closed within 3.5 s (not 4 x 2 s)" \
		"$LOAD" unreachable --vsock 3:5018 --connections 2 --timeout-ms 3500
	has 'end=connect-timeout' "logged as connect-timeout" slowconn.err

	# resolution never delays signals: the name is dropped from the hosts
	# file, so the next lookup goes to a name server that never answers
	node -e "
	const d=require('dgram').createSocket('udp4');d.on('message',()=>{});
	d.bind(53,'127.0.0.77',()=>require('fs').writeFileSync('dns.ok','1'));" 2>dns.err &
	PIDS+=($!)
	if wait_for dns.ok 1 30; then
		printf 'nameserver 127.0.0.77\noptions timeout:30 attempts:1\n' >resolv.hang
		printf '127.0.0.1 hang.ward.test\n' >hosts.hang
		printf 'allowlist:\n- {address: hang.ward.test, port: %s}\n' "$P" >hang.yaml
		unshare -m sh -c 'mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/resolv.conf && shift 2 && exec "$@"' \
			sh hosts.hang resolv.hang "$WARD" proxy --dns-refresh 1 --config hang.yaml 5019 hang.ward.test "$P" >hang.out 2>hang.err &
		PIDS+=($!)
		PID_hang=$!
		wait_for hang.out Listen || bad "proxy hang did not start"
		: >hosts.hang
		sleep 2 # a lookup is now waiting on the silent name server
		expect 0 "meanwhile connections are relayed (the last addresses)" "$LOAD" run --vsock 3:5019 --connections 2 --seed 19
		kill -TERM "$PID_hang"
		if gone_within 20 "$PID_hang"; then ok "SIGTERM during a lookup that hangs: stopped within 2 s"; else
			bad "SIGTERM waited for the lookup"; kill -KILL "$PID_hang"; fi
		wait "$PID_hang"
		st=$?
		[ "$st" -eq 0 ] && ok "exit status 0" || bad "exit status $st"
	else
		echo "skip  a name server that never answers (cannot bind 127.0.0.77:53: $(head -c 200 dns.err))"
	fi
else
	echo "skip  rebinding, per-connection connect timeout, hanging lookups: no unshare -m here"
fi

# ---- out of descriptors: the accept pause is 100 ms ---------------------------
# 32 descriptors: about a dozen connections use them up; 16 slow clients
# hold theirs, so the next connect (socket: EMFILE) waits for one and
# accepting pauses; the wait is retried, and the pause ends, every 100 ms
prlimit --nofile=32:32 "$WARD" proxy -w 1 --connect-timeout 30 --config ip.yaml 5020 127.0.0.1 "$P" >emfile.out 2>emfile.err &
PIDS+=($!)
PID_emfile=$!
wait_for emfile.out Listen || bad "proxy emfile did not start"
SL=() GATES=()
for i in $(seq 16); do
	mkfifo "gate-e$i"
	timeout 60 "$LOAD" slow --vsock 3:5020 --seed $((100 + i)) --size 200000 <"gate-e$i" >"slow-e$i.out" 2>&1 &
	SL+=($!)
	exec {fd}>"gate-e$i"
	GATES+=("$fd")
done
for i in $(seq 16); do wait_for "slow-e$i.out" half 50 || bad "slow client $i did not start"; done
sleep 0.5
a=$(grep -c 'pausing for 100 ms' emfile.err)
sleep 2
b=$(grep -c 'pausing for 100 ms' emfile.err)
[ $((b - a)) -ge 8 ] && ok "out of descriptors: tried again every 100 ms ($((b - a)) pauses in 2 s)" ||
	bad "$((b - a)) pauses in 2 s (expected about 20)"
for fd in "${GATES[@]}"; do echo go >&"$fd"; exec {fd}>&-; done
done_ok=0
for pid in "${SL[@]}"; do wait "$pid" && done_ok=$((done_ok + 1)); done
[ "$done_ok" -eq 16 ] && ok "all 16 completed once descriptors were free (none was cut)" ||
	{ bad "$done_ok of 16 slow clients completed"; grep -v ' end=done' emfile.err | head -5; }
expect 0 "then it serves again: 40 connections, 4 at a time" timeout 60 "$LOAD" run --vsock 3:5020 --connections 40 --concurrency 4 --seed 20
stop emfile
[ "$STATUS" -eq 0 ] && ok "and stops with exit 0" || bad "exit $STATUS"

finish proxy
