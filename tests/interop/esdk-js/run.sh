#!/usr/bin/env bash
# Interop test: ward encrypt/decrypt <-> AWS Encryption SDK for JavaScript.
#
#   run.sh WARD_BIN WORKDIR
#
# Installs @aws-crypto/client-node (pinned in package.json + package-lock.json
# beside this script) into WORKDIR/node with `npm ci`, then for raw AES, raw RSA
# (OAEP-SHA256 and OAEP-SHA1) and multi keyrings, suites 0478/0578, frame
# sizes 4096 and 1000, and plaintexts of 0, 1, frame-1, frame, frame+1 bytes and
# 10 MiB, checks both directions:
#   ward encrypts -> JS decrypts -> cmp with the plaintext
#   JS encrypts   -> ward decrypts -> cmp with the plaintext
# plus negative cases (wrong keys, wrong context, tampered messages).
#
# Exit status: 0 all passed, 1 a case failed (or bad usage), 77 skipped
# (no node/npm, or npm could not install the SDK).
set -euo pipefail

SKIP=77
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [ $# -ne 2 ]; then
    echo "usage: $0 WARD_BIN WORKDIR" >&2
    exit 1
fi
WARD="$1"
WORKDIR="$2"

skip() {
    echo "SKIP: $*"
    exit "$SKIP"
}

# ---------------------------------------------------------------- prerequisites
command -v node >/dev/null 2>&1 || skip "node is not on PATH (install nodejs to run the JS Encryption SDK interop test)"
command -v npm >/dev/null 2>&1 || skip "npm is not on PATH (install npm to run the JS Encryption SDK interop test)"
command -v openssl >/dev/null 2>&1 || skip "openssl is not on PATH (needed to make test keys)"
command -v cmp >/dev/null 2>&1 || skip "cmp is not on PATH (diffutils)"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 18 ]; then
    skip "node $(node --version) is too old for @aws-crypto/client-node (want >= 18)"
fi
case "$WARD" in /*) ;; *) WARD="$(pwd)/$WARD" ;; esac
if [ ! -x "$WARD" ]; then
    echo "FAIL: ward binary '$WARD' does not exist or is not executable" >&2
    exit 1
fi

WORKDIR="$(realpath -m "$WORKDIR")"
case "$WORKDIR/" in
    "$here/"*) echo "FAIL: WORKDIR must be outside the source tree ($here)" >&2; exit 1 ;;
esac
# (Paths here have no spaces: WORKDIR with spaces is not supported.)
case "$WORKDIR" in *[[:space:]]*) echo "FAIL: WORKDIR must not contain spaces" >&2; exit 1 ;; esac
mkdir -p "$WORKDIR"

# ---------------------------------------------------------------- npm install
NODEDIR="$WORKDIR/node"
lock_sum="$(cat "$here/package.json" "$here/package-lock.json" | openssl dgst -sha256 -r | cut -d' ' -f1)"
stamp="$NODEDIR/.ward-installed-lock"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$lock_sum" ] &&
   [ -f "$NODEDIR/node_modules/@aws-crypto/client-node/package.json" ]; then
    echo "npm: @aws-crypto/client-node already installed in $NODEDIR"
else
    echo "npm: installing @aws-crypto/client-node into $NODEDIR (npm ci)"
    rm -rf "$NODEDIR"
    mkdir -p "$NODEDIR"
    cp "$here/package.json" "$here/package-lock.json" "$NODEDIR/"
    npm_log="$WORKDIR/npm-ci.log"
    npm_rc=0
    # Bounded retries and timeouts so an unreachable registry turns into a SKIP
    # in about a minute rather than hanging the test run.
    (cd "$NODEDIR" && timeout 300 npm ci --ignore-scripts --no-audit --no-fund \
        --fetch-retries=1 --fetch-retry-mintimeout=2000 --fetch-retry-maxtimeout=10000 \
        --fetch-timeout=60000) >"$npm_log" 2>&1 || npm_rc=$?
    if [ "$npm_rc" -ne 0 ]; then
        echo "=================================================================="
        echo "SKIP: npm ci failed (exit $npm_rc): cannot install @aws-crypto/client-node"
        echo "      (npm registry unreachable?). The JS Encryption SDK interop test"
        echo "      did NOT run. npm said:"
        grep -v 'Unknown user config' "$npm_log" | tail -n 25 | sed 's/^/      | /'
        echo "=================================================================="
        rm -rf "$NODEDIR"
        exit "$SKIP"
    fi
    echo "$lock_sum" >"$stamp"
fi
# Run esdk.mjs from inside NODEDIR so that it resolves node_modules there.
cp "$here/esdk.mjs" "$NODEDIR/esdk.mjs"
ESDK=(node "$NODEDIR/esdk.mjs")

# ---------------------------------------------------------------- fixtures
RUN="$WORKDIR/run"
rm -rf "$RUN"
mkdir -p "$RUN/keys" "$RUN/pt" "$RUN/case"
K="$RUN/keys"
openssl rand -out "$K/aes.key" 32
openssl rand -out "$K/aes-wrong.key" 32
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$K/rsa.pem" 2>/dev/null
openssl pkey -in "$K/rsa.pem" -pubout -out "$K/rsa.pub"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$K/rsa-wrong.pem" 2>/dev/null

NS="ward-interop"
AES_NAME="aes-256"
RSA_NAME="rsa-2048"
CTX=(purpose=interop tenant=hospital-a)

ward_ctx=()
js_ctx=()
for kv in "${CTX[@]}"; do
    ward_ctx+=(--context "$kv")
    js_ctx+=(--context "$kv")
done

# Plaintexts of random bytes, made once up front and shared by all cases.
MiB10=$((10 * 1024 * 1024))
for size in 0 1 999 1000 1001 4095 4096 4097 10000 "$MiB10"; do
    head -c "$size" /dev/urandom >"$RUN/pt/$size.bin"
done
plaintext() {
    [ -f "$RUN/pt/$1.bin" ] || { echo "internal error: no plaintext of size $1" >&2; exit 1; }
    echo "$RUN/pt/$1.bin"
}

# Keyring arguments. KR is one of: aes, rsa256, rsa1, multi (AES generator + RSA-OAEP-SHA256).
ward_keyring() { # KR encrypt|decrypt [AES_KEYFILE] [RSA_PRIVATE]
    local kr="$1" mode="$2" aes="${3:-$K/aes.key}" rsapriv="${4:-$K/rsa.pem}"
    local rsa
    if [ "$mode" = encrypt ]; then rsa=(--raw-rsa-public "$K/rsa.pub"); else rsa=(--raw-rsa-private "$rsapriv"); fi
    case "$kr" in
        aes)    echo --raw-key "$aes" --key-namespace "$NS" --key-name "$AES_NAME" ;;
        rsa256) echo "${rsa[@]}" --key-namespace "$NS" --key-name "$RSA_NAME" --rsa-padding oaep-sha256 ;;
        rsa1)   echo "${rsa[@]}" --key-namespace "$NS" --key-name "$RSA_NAME" --rsa-padding oaep-sha1 ;;
        multi)  echo --raw-key "$aes" --key-namespace "$NS" --key-name "$AES_NAME" \
                     "${rsa[@]}" --key-namespace "$NS" --key-name "$RSA_NAME" --rsa-padding oaep-sha256 ;;
        *) echo "bad keyring $kr" >&2; exit 1 ;;
    esac
}
js_keyring() { # KR encrypt|decrypt [AES_KEYFILE] [RSA_PRIVATE]
    local kr="$1" mode="$2" aes="${3:-$K/aes.key}" rsapriv="${4:-$K/rsa.pem}"
    local rsa
    if [ "$mode" = encrypt ]; then rsa=(--rsa-public "$K/rsa.pub"); else rsa=(--rsa-private "$rsapriv"); fi
    case "$kr" in
        aes)    echo --aes-key "$aes" --namespace "$NS" --aes-name "$AES_NAME" ;;
        rsa256) echo "${rsa[@]}" --namespace "$NS" --rsa-name "$RSA_NAME" --oaep-hash sha256 ;;
        rsa1)   echo "${rsa[@]}" --namespace "$NS" --rsa-name "$RSA_NAME" --oaep-hash sha1 ;;
        multi)  echo --aes-key "$aes" "${rsa[@]}" --namespace "$NS" --aes-name "$AES_NAME" \
                     --rsa-name "$RSA_NAME" --oaep-hash sha256 ;;
        *) echo "bad keyring $kr" >&2; exit 1 ;;
    esac
}
# Cases run as background jobs, at most JOBS at a time; each appends one line
# "PASS name" or "FAIL name" to RESULTS (short O_APPEND writes do not interleave).
JOBS="${INTEROP_JOBS:-$(nproc 2>/dev/null || echo 2)}"
[ "$JOBS" -ge 1 ] 2>/dev/null || JOBS=2
[ "$JOBS" -le 4 ] || JOBS=4
RESULTS="$RUN/results"
: >"$RESULTS"
T0=$SECONDS
kill_jobs() {
    local job_pid
    for job_pid in $(jobs -p); do kill "$job_pid" 2>/dev/null || true; done
}
trap kill_jobs EXIT

# spawn FUNCTION NAME ARGS...: run a case in the background (NAME names it in reports).
spawn() {
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
    {
        local rc=0
        "$@" || rc=$?
        if [ "$rc" -ne 0 ]; then
            echo "FAIL $2" >>"$RESULTS"
            printf 'FAIL  %s: test job exited with status %d\n' "$2" "$rc"
        fi
    } &
}

ok() {
    echo "PASS $1" >>"$RESULTS"
    printf 'ok    %s\n' "$1"
}
# not_ok NAME LOGFILE MESSAGE: print the reason and the captured command log.
not_ok() {
    echo "FAIL $1" >>"$RESULTS"
    local msg
    msg="$(printf 'FAIL  %s: %s' "$1" "$3")"
    if [ -s "$2" ]; then msg+=$'\n'"$(sed 's/^/      | /' "$2" | head -n 40 || true)"; fi
    printf '%s\n' "$msg"
    return 0
}

# run LOG CMD...: append the command line and its stderr/stdout to LOG, return its status.
run() {
    local log="$1"; shift
    { printf '$'; printf ' %q' "$@"; printf '\n'; } >>"$log"
    local rc=0
    "$@" >>"$log" 2>&1 || rc=$?
    [ "$rc" -eq 0 ] || printf '(exit status %d)\n' "$rc" >>"$log"
    return "$rc"
}

# ward encrypts -> JS decrypts -> cmp.
#   ward_to_js NAME WARD_KR JS_KR SUITE FRAME SIZE [stdio]
# FRAME "default" means: pass no frame size to ward, expect 4096.
ward_to_js() {
    local name="$1" wkr="$2" jkr="$3" suite="$4" frame="$5" size="$6" stdio="${7:-}"
    local d="$RUN/case/$name" pt ct out log wframe=() wsuite=()
    mkdir -p "$d"; log="$d/log"; ct="$d/msg.ward"; out="$d/out.js"
    pt="$(plaintext "$size")"
    [ "$frame" = default ] && frame=4096 || wframe=(--frame-size "$frame")
    [ "$suite" = default ] && suite=0478 || wsuite=(--suite "$suite")
    # shellcheck disable=SC2046
    if [ "$stdio" = stdio ]; then
        run "$log" bash -c '"$@" <"'"$pt"'" >"'"$ct"'"' _ "$WARD" encrypt $(ward_keyring "$wkr" encrypt) \
            "${ward_ctx[@]}" "${wsuite[@]}" "${wframe[@]}" -o - - \
            || { not_ok "$name" "$log" "ward encrypt failed"; return; }
    else
        run "$log" "$WARD" encrypt $(ward_keyring "$wkr" encrypt) "${ward_ctx[@]}" "${wsuite[@]}" \
            "${wframe[@]}" -o "$ct" "$pt" || { not_ok "$name" "$log" "ward encrypt failed"; return; }
    fi
    [ -f "$ct" ] || { not_ok "$name" "$log" "ward encrypt wrote no output"; return; }
    # shellcheck disable=SC2046
    run "$log" "${ESDK[@]}" decrypt $(js_keyring "$jkr" decrypt) "${js_ctx[@]}" --suite "$suite" \
        --frame "$frame" --in "$ct" --out "$out" || { not_ok "$name" "$log" "JS decrypt failed"; return; }
    run "$log" cmp "$pt" "$out" || { not_ok "$name" "$log" "JS plaintext differs from the original"; return; }
    ok "$name"
    rm -rf "$d"
}

# JS encrypts -> ward decrypts -> cmp.
#   js_to_ward NAME JS_KR WARD_KR SUITE FRAME SIZE [stdio]
js_to_ward() {
    local name="$1" jkr="$2" wkr="$3" suite="$4" frame="$5" size="$6" stdio="${7:-}"
    local d="$RUN/case/$name" pt ct out log
    mkdir -p "$d"; log="$d/log"; ct="$d/msg.js"; out="$d/out.ward"
    pt="$(plaintext "$size")"
    # shellcheck disable=SC2046
    run "$log" "${ESDK[@]}" encrypt $(js_keyring "$jkr" encrypt) "${js_ctx[@]}" --suite "$suite" \
        --frame "$frame" --in "$pt" --out "$ct" || { not_ok "$name" "$log" "JS encrypt failed"; return; }
    # shellcheck disable=SC2046
    if [ "$stdio" = stdio ]; then
        run "$log" bash -c '"$@" <"'"$ct"'" >"'"$out"'"' _ "$WARD" decrypt $(ward_keyring "$wkr" decrypt) \
            "${ward_ctx[@]}" -o - || { not_ok "$name" "$log" "ward decrypt failed"; return; }
    else
        run "$log" "$WARD" decrypt $(ward_keyring "$wkr" decrypt) "${ward_ctx[@]}" -o "$out" "$ct" \
            || { not_ok "$name" "$log" "ward decrypt failed"; return; }
    fi
    run "$log" cmp "$pt" "$out" || { not_ok "$name" "$log" "ward plaintext differs from the original"; return; }
    ok "$name"
    rm -rf "$d"
}

# Flip one bit of the byte at OFFSET (negative: from the end) of FILE.
flip_byte() {
    local f="$1" off="$2" size b
    size=$(wc -c <"$f")
    [ "$off" -lt 0 ] && off=$((size + off))
    b=$(od -An -tu1 -j "$off" -N 1 "$f" | tr -d ' ')
    # shellcheck disable=SC2059
    printf "$(printf '\\%03o' $((b ^ 1)))" | dd of="$f" bs=1 seek="$off" conv=notrunc status=none
}

# A ward decrypt that must fail: non-zero exit and no output file.
#   ward_must_reject NAME LOG OUT MESSAGE WARD_DECRYPT_OPTIONS...
ward_must_reject() {
    local name="$1" log="$2" out="$3" msg="$4"; shift 4
    rm -f "$out"
    if run "$log" "$WARD" decrypt "$@" -o "$out" "$msg"; then
        not_ok "$name" "$log" "ward decrypt succeeded but must fail"
    elif [ -e "$out" ]; then
        not_ok "$name" "$log" "ward decrypt failed (good) but left an output file $out ($(wc -c <"$out") bytes)"
    else
        ok "$name"
    fi
}
# A JS decrypt that must fail: non-zero exit and no output file.
js_must_reject() {
    local name="$1" log="$2" out="$3"; shift 3
    rm -f "$out"
    if run "$log" "${ESDK[@]}" decrypt "$@" --out "$out"; then
        not_ok "$name" "$log" "JS decrypt succeeded but must fail"
    elif [ -e "$out" ]; then
        not_ok "$name" "$log" "JS decrypt failed but left an output file"
    else
        ok "$name"
    fi
}

echo "ward: $WARD"
echo "node: $(node --version), @aws-crypto/client-node $(node -p "require('$NODEDIR/node_modules/@aws-crypto/client-node/package.json').version")"

# ---------------------------------------------------------------- positive cases
for kr in aes rsa256; do
    for suite in 0478 0578; do
        for size in 0 1 4095 4096 4097 "$MiB10"; do
            # Frame size 4096 is ward's default: pass it explicitly only on 0578.
            if [ "$suite" = 0478 ]; then wf=default; else wf=4096; fi
            spawn ward_to_js "ward-to-js/$kr/$suite/frame-4096/size-$size" "$kr" "$kr" "$suite" "$wf" "$size"
            spawn js_to_ward "js-to-ward/$kr/$suite/frame-4096/size-$size" "$kr" "$kr" "$suite" 4096 "$size"
        done
    done
done
# Non-default frame size.
for kr in aes rsa256; do
    for suite in 0478 0578; do
        for size in 0 999 1000 1001 "$MiB10"; do
            [ "$kr" = rsa256 ] && [ "$size" = "$MiB10" ] && continue
            spawn ward_to_js "ward-to-js/$kr/$suite/frame-1000/size-$size" "$kr" "$kr" "$suite" 1000 "$size"
            spawn js_to_ward "js-to-ward/$kr/$suite/frame-1000/size-$size" "$kr" "$kr" "$suite" 1000 "$size"
        done
    done
done
# RSA OAEP-SHA1.
for suite in 0478 0578; do
    for size in 1 4097; do
        spawn ward_to_js "ward-to-js/rsa1/$suite/frame-4096/size-$size" rsa1 rsa1 "$suite" 4096 "$size"
        spawn js_to_ward "js-to-ward/rsa1/$suite/frame-4096/size-$size" rsa1 rsa1 "$suite" 4096 "$size"
    done
done
# Multi-keyring (AES generator + RSA child): the other side decrypts with each key alone.
for suite in 0478 0578; do
    spawn ward_to_js "ward-to-js/multi-read-by-aes/$suite/size-4097" multi aes "$suite" 4096 4097
    spawn ward_to_js "ward-to-js/multi-read-by-rsa/$suite/size-4097" multi rsa256 "$suite" 4096 4097
    spawn js_to_ward "js-to-ward/multi-read-by-aes/$suite/size-4097" multi aes "$suite" 4096 4097
    spawn js_to_ward "js-to-ward/multi-read-by-rsa/$suite/size-4097" multi rsa256 "$suite" 4096 4097
done
# stdin/stdout on the ward side, and ward's defaults (suite 0478, frame 4096).
spawn ward_to_js "ward-to-js/aes/default-suite/stdio/size-10000" aes aes default default 10000 stdio
spawn js_to_ward "js-to-ward/aes/0578/stdio/size-10000" aes aes 0578 4096 10000 stdio

# ---------------------------------------------------------------- negative cases
neg="$RUN/case/negative"
mkdir -p "$neg"
pt="$(plaintext 10000)"   # 3 frames of 4096: 4096 + 4096 + 1808

# ward message, JS decrypts with the wrong AES key.
negative_ward_msgs() {
# shellcheck disable=SC2046
if run "$neg/w1.log" "$WARD" encrypt $(ward_keyring aes encrypt) "${ward_ctx[@]}" --suite 0578 -o "$neg/w1.msg" "$pt"; then
    # shellcheck disable=SC2046
    js_must_reject "negative/js-rejects-ward-msg/wrong-aes-key" "$neg/w1.log" "$neg/w1.out" \
        $(js_keyring aes decrypt "$K/aes-wrong.key") --in "$neg/w1.msg"
    # ...and with the right key but a context value the message does not have.
    # shellcheck disable=SC2046
    js_must_reject "negative/js-rejects-ward-msg/wrong-context" "$neg/w1.log" "$neg/w1.out" \
        $(js_keyring aes decrypt) --context purpose=interop --context tenant=hospital-b --in "$neg/w1.msg"
    # ...and a tampered copy (one bit flipped in the middle of the body).
    cp "$neg/w1.msg" "$neg/w1.tampered"
    flip_byte "$neg/w1.tampered" $(( $(wc -c <"$neg/w1.msg") / 2 ))
    # shellcheck disable=SC2046
    js_must_reject "negative/js-rejects-ward-msg/tampered-body" "$neg/w1.log" "$neg/w1.out" \
        $(js_keyring aes decrypt) --in "$neg/w1.tampered"
else
    not_ok "negative/js-rejects-ward-msg" "$neg/w1.log" "ward encrypt failed"
fi
}

# JS messages, ward decrypts with wrong keys / context / tampered bytes.
negative_js_msgs() {
# shellcheck disable=SC2046
if run "$neg/j1.log" "${ESDK[@]}" encrypt $(js_keyring aes encrypt) "${js_ctx[@]}" --suite 0478 --in "$pt" --out "$neg/j1.msg" &&
   run "$neg/j2.log" "${ESDK[@]}" encrypt $(js_keyring rsa256 encrypt) "${js_ctx[@]}" --suite 0578 --in "$pt" --out "$neg/j2.msg"; then
    # shellcheck disable=SC2046
    ward_must_reject "negative/ward-rejects-js-msg/wrong-aes-key" "$neg/j1.log" "$neg/j1.out" \
        "$neg/j1.msg" $(ward_keyring aes decrypt "$K/aes-wrong.key")
    # shellcheck disable=SC2046
    ward_must_reject "negative/ward-rejects-js-msg/wrong-rsa-key" "$neg/j2.log" "$neg/j2.out" \
        "$neg/j2.msg" $(ward_keyring rsa256 decrypt "$K/aes.key" "$K/rsa-wrong.pem")
    # Right RSA key, wrong OAEP hash.
    # shellcheck disable=SC2046
    ward_must_reject "negative/ward-rejects-js-msg/wrong-oaep-hash" "$neg/j2.log" "$neg/j2.out" \
        "$neg/j2.msg" $(ward_keyring rsa1 decrypt)
    # Right key, a context pair the message does not carry.
    # shellcheck disable=SC2046
    ward_must_reject "negative/ward-rejects-js-msg/wrong-context" "$neg/j1.log" "$neg/j1.out" \
        "$neg/j1.msg" $(ward_keyring aes decrypt) --context purpose=interop --context tenant=hospital-b
    # One bit flipped in the last frame's tag (0478): no plaintext may be left behind.
    cp "$neg/j1.msg" "$neg/j1.tampered"
    flip_byte "$neg/j1.tampered" -1
    # shellcheck disable=SC2046
    ward_must_reject "negative/ward-rejects-js-msg/tampered-final-frame" "$neg/j1.log" "$neg/j1.out" \
        "$neg/j1.tampered" $(ward_keyring aes decrypt)
    # One bit flipped in the ECDSA signature (0578): every frame decrypts, the footer does not verify.
    cp "$neg/j2.msg" "$neg/j2.tampered"
    flip_byte "$neg/j2.tampered" -1
    # shellcheck disable=SC2046
    ward_must_reject "negative/ward-rejects-js-msg/tampered-signature" "$neg/j2.log" "$neg/j2.out" \
        "$neg/j2.tampered" $(ward_keyring rsa256 decrypt)
    # Truncated message (last 100 bytes cut off).
    head -c $(( $(wc -c <"$neg/j1.msg") - 100 )) "$neg/j1.msg" >"$neg/j1.truncated"
    # shellcheck disable=SC2046
    ward_must_reject "negative/ward-rejects-js-msg/truncated" "$neg/j1.log" "$neg/j1.out" \
        "$neg/j1.truncated" $(ward_keyring aes decrypt)
else
    not_ok "negative/ward-rejects-js-msg" "$neg/j1.log" "JS encrypt failed"
    if [ -f "$neg/j2.log" ]; then sed 's/^/      | /' "$neg/j2.log"; fi
fi
}
spawn negative_ward_msgs negative/js-rejects-ward-msg
spawn negative_js_msgs negative/ward-rejects-js-msg
wait

# ---------------------------------------------------------------- summary
passed=$(grep -c '^PASS ' "$RESULTS" || true)
failed=$(grep -c '^FAIL ' "$RESULTS" || true)
echo
echo "time: $((SECONDS - T0)) s with $JOBS parallel jobs"
if [ "$failed" -ne 0 ]; then
    echo "failed cases (logs under $RUN/case/):"
    grep '^FAIL ' "$RESULTS" | sed 's/^FAIL /  /'
fi
echo "interop-esdk-js: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
