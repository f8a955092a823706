#!/usr/bin/env bash
# ward encrypt/decrypt through the real binary: help, exit codes, default
# names, pipes, directories, failure leaving no output, and memory that
# does not grow with the input.
# usage: cli.sh WARD_BIN WORKDIR
set -uo pipefail
WARD=$(realpath "$1")
WORK=$2
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK" || exit 1
FIXTURES=${WARD_FIXTURES_DIR:-$(dirname "$0")/../../../shared/fixtures}


head -c 32 /dev/urandom >key
head -c 32 /dev/urandom >other.key
head -c 100000 /dev/urandom >model.bin

# help and usage
expect 0 "ward --help" "$WARD" --help
grep -q encrypt out.log && ok "--help lists encrypt" || bad "--help lists encrypt"
expect 0 "ward --version" "$WARD" --version
grep -Eq '^ward [0-9]+\.[0-9]+' out.log && ok "version printed" || bad "version printed"
expect 0 "encrypt --help" "$WARD" encrypt --help
grep -q -- '--raw-key FILE' out.log && grep -q 'Examples' out.log &&
	ok "encrypt --help explains keys and examples" || bad "encrypt --help content"
expect 0 "decrypt --help" "$WARD" decrypt --help
grep -q 'Exit status' out.log && ok "decrypt --help gives exit codes" || bad "decrypt --help content"
expect 2 "unknown command" "$WARD" frobnicate
expect 2 "no key" "$WARD" encrypt model.bin
grep -q 'no key given' err.log && ok "no-key message" || bad "no-key message"
expect 2 "modifier before key" "$WARD" encrypt --key-name x --raw-key key model.bin
expect 2 "bad frame size" "$WARD" encrypt --raw-key key --frame-size 0 model.bin
expect 8 "non-committing suite for encryption" "$WARD" encrypt --raw-key key --suite 0178 -o x.ward model.bin
absent x.ward "refused encryption"
head -c 20 /dev/urandom >short.key
expect 2 "AES key file of 20 bytes" "$WARD" encrypt --raw-key short.key -o x.ward model.bin
grep -q '16, 24 or' err.log && ok "key-size message" || bad "key-size message"
absent x.ward "bad key"

# default names and overwrite protection
expect 0 "encrypt FILE -> FILE.ward" "$WARD" encrypt --raw-key key model.bin
[ -s model.bin.ward ] && ok "model.bin.ward written" || bad "model.bin.ward written"
mv model.bin model.orig
expect 0 "decrypt FILE.ward -> FILE" "$WARD" decrypt --raw-key key model.bin.ward
same model.bin model.orig "default-named round trip"
[ "$(stat -c %a model.bin)" = 600 ] && ok "plaintext output is mode 600" || bad "plaintext mode $(stat -c %a model.bin)"
expect 11 "refuse to overwrite" "$WARD" decrypt --raw-key key model.bin.ward
same model.bin model.orig "existing file untouched"
expect 0 "--force overwrites" "$WARD" decrypt -f --raw-key key model.bin.ward
expect 2 "no .ward suffix and no -o" "$WARD" decrypt --raw-key key model.orig

# pipes
"$WARD" encrypt --raw-key key --suite 0578 --context tenant=a <model.orig |
	"$WARD" decrypt --raw-key key --context tenant=a >piped.out
[ $? -eq 0 ] && same piped.out model.orig "stdin -> stdout round trip (0578)" || bad "pipe round trip"

# failures: exit code, message, no output
"$WARD" encrypt --raw-key key --context tenant=a -o ctx.ward model.orig
expect 6 "wrong key" "$WARD" decrypt --raw-key other.key -o out1 ctx.ward
grep -q 'wrong key' err.log && ok "wrong-key message" || bad "wrong-key message"
absent out1 "wrong key"
expect 7 "context mismatch" "$WARD" decrypt --raw-key key --context tenant=b -o out2 ctx.ward
absent out2 "context mismatch"
cp ctx.ward tampered.ward
flip tampered.ward 50000
expect 5 "tampered frame" "$WARD" decrypt --raw-key key -o out3 tampered.ward
grep -q 'failed authentication' err.log && ok "tampered-frame message" || bad "tampered-frame message"
absent out3 "tampered frame"
head -c 60000 ctx.ward >truncated.ward
expect 4 "truncated" "$WARD" decrypt --raw-key key -o out4 truncated.ward
grep -q 'truncated' err.log && ok "truncated message" || bad "truncated message"
absent out4 "truncated"
# A fixed non-message (random bytes start with 0x01 or 0x02, a version,
# 1 time in 128, and then fail as an unsupported suite instead).
printf 'this is not an encrypted message\n' >not-a-message.txt
expect 4 "not a message" "$WARD" decrypt --raw-key key -o out5 not-a-message.txt
absent out5 "not a message"
base64 -w0 ctx.ward >b64.ward
expect 4 "base64 input" "$WARD" decrypt --raw-key key -o out6 b64.ward
grep -q 'base64' err.log && ok "base64 hint" || bad "base64 hint"
ls ./*.ward-tmp-* >/dev/null 2>&1 && bad "temporary files left" || ok "no temporary files left"

# a legacy (v1) message needs --allow-legacy-suites
if [ -d "$FIXTURES/esdk-vectors" ]; then
	v1=$FIXTURES/esdk-vectors/ciphertexts/483a430c-0ad0-4a24-8525-9f9b9e6b8ccc
	printf '\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x10\x11\x12\x13\x14\x15' >aes128.key
	expect 8 "v1 suite refused by default" "$WARD" decrypt --raw-key aes128.key \
		--key-namespace aws-raw-vectors-persistent-aes-128 --key-name aes-128 -o v1.out "$v1"
	absent v1.out "legacy refused"
	expect 0 "v1 suite with --allow-legacy-suites" "$WARD" decrypt --allow-legacy-suites \
		--raw-key aes128.key --key-namespace aws-raw-vectors-persistent-aes-128 \
		--key-name aes-128 -o v1.out "$v1"
	same v1.out "$FIXTURES/esdk-vectors/plaintexts/small" "v1 plaintext"
else
	echo "SKIP  legacy-suite checks: $FIXTURES absent"
fi

# directories
mkdir -p app/lib && echo 'print("hi")' >app/main.py && head -c 5000 /dev/urandom >app/lib/w.bin
ln -s main.py app/entry
expect 4 "unreadable PEM key" "$WARD" encrypt --raw-key key --raw-rsa-public /dev/null -o app.ward app
absent app.ward "unreadable PEM key"
expect 0 "encrypt a directory" "$WARD" encrypt --raw-key key -o app.ward app
expect 2 "directory message to stdout refused" "$WARD" decrypt --raw-key key -o - app.ward
expect 0 "restore a directory" "$WARD" decrypt --raw-key key -o restored app.ward
diff -r app restored >/dev/null && ok "restored tree matches" || bad "restored tree differs"
expect 11 "restore over a non-empty directory" "$WARD" decrypt --raw-key key -o restored app.ward
cp app.ward app-bad.ward
size=$(stat -c %s app-bad.ward)
flip app-bad.ward $((size - 20))
cmp -s app.ward app-bad.ward && bad "the tampered copy equals the original"
expect 5 "tampered directory message" "$WARD" decrypt --raw-key key -o restored2 app-bad.ward
absent restored2 "tampered directory"
ls -d ./*.ward-tmp-* >/dev/null 2>&1 && bad "temporary directory left" || ok "no temporary directory left"

# a directory given as a link to it is packed whole; a link that restore
# would refuse is refused when packing
ln -s app app-link
expect 0 "encrypt a directory given as a symlink" "$WARD" encrypt --raw-key key -o link.ward app-link
expect 0 "restore it" "$WARD" decrypt --raw-key key -o restored-link link.ward
diff -r app restored-link >/dev/null && ok "symlinked directory packed whole" || bad "symlinked directory packed empty"
mkdir -p venv && ln -s /usr/bin/python3 venv/python
expect 10 "absolute symlink refused when packing" "$WARD" encrypt --raw-key key -o venv.ward venv
grep -q 'make the link relative' err.log && ok "absolute-link message" || bad "absolute-link message"
absent venv.ward "absolute symlink"

# an existing fifo or device is written in place, never replaced by a file
mkfifo pipe.fifo
timeout 30 cat pipe.fifo >fifo.out &
expect 0 "encrypt -f into a fifo" "$WARD" encrypt -f --raw-key key -o pipe.fifo model.orig
wait
[ -p pipe.fifo ] && ok "fifo is still a fifo" || bad "fifo was replaced by a file"
expect 0 "decrypt what came through the fifo" "$WARD" decrypt --raw-key key -o fifo.plain fifo.out
same fifo.plain model.orig "fifo round trip"
timeout 30 cat pipe.fifo >/dev/null &
expect 0 "decrypt -f into a fifo" "$WARD" decrypt -f --raw-key key -o pipe.fifo fifo.out
wait
[ -p pipe.fifo ] && ok "fifo survives decrypt -f" || bad "fifo replaced by decrypt"
expect 2 "output is a directory" "$WARD" encrypt -f --raw-key key -o app model.orig

# a signal mid-way leaves no output and no temporary file; ward dies of it
head -c 20000000 /dev/urandom >big.bin
"$WARD" encrypt --raw-key key -o big.ward big.bin
killed_midway() { # SIGNAL EXPECTED_STATUS
	rm -f slow.fifo && mkfifo slow.fifo
	"$WARD" decrypt --raw-key key -o sig.out slow.fifo 2>sig.err &
	local pid=$! status
	exec 4>slow.fifo
	head -c 12000000 big.ward >&4
	sleep 0.5 # ward has decrypted what came and waits for more
	kill -"$1" $pid
	wait $pid
	status=$?
	exec 4>&-
	[ "$status" -eq "$2" ] && ok "SIG$1 mid-decrypt: exit $status" || bad "SIG$1 mid-decrypt: exit $status, expected $2"
	absent sig.out "SIG$1 mid-decrypt"
	if ls ./*.ward-tmp-* >/dev/null 2>&1; then bad "SIG$1 left $(ls ./*.ward-tmp-*)"; rm -f ./*.ward-tmp-*; else ok "SIG$1 left no temporary file"; fi
}
killed_midway TERM 143
case $(stat -f -c %T .) in
ext2/ext3|tmpfs|xfs|btrfs) killed_midway KILL 137 ;; # O_TMPFILE: nothing named
*) echo "SKIP  SIGKILL check: $(stat -f -c %T .) may lack O_TMPFILE" ;;
esac

# progress bar: forced
"$WARD" encrypt --raw-key key --progress -o prog.ward model.orig 2>prog.err
grep -q 'encrypting' prog.err && ok "--progress draws on a non-terminal" || bad "--progress"
"$WARD" encrypt --raw-key key -o prog2.ward model.orig 2>prog.err
[ ! -s prog.err ] && ok "no progress output when not a terminal" || bad "unexpected stderr"

# memory does not grow with the input: peak RSS, 1 MiB vs 256 MiB streams
if [ -x /usr/bin/time ]; then
	rss() { # rss MIB: peak KiB of encrypt and of decrypt, streaming
		head -c "$1"M /dev/zero | /usr/bin/time -f %M -o enc.rss \
			"$WARD" encrypt --raw-key key -o - - |
			/usr/bin/time -f %M -o dec.rss "$WARD" decrypt --raw-key key -o - - >/dev/null
		echo "$(cat enc.rss) $(cat dec.rss)"
	}
	read -r e1 d1 < <(rss 1)
	read -r e2 d2 < <(rss 256)
	echo "      peak RSS KiB: encrypt 1 MiB $e1, 256 MiB $e2; decrypt 1 MiB $d1, 256 MiB $d2"
	[ $((e2 - e1)) -lt 8192 ] && ok "encrypt RSS flat (+$((e2 - e1)) KiB)" || bad "encrypt RSS grew by $((e2 - e1)) KiB"
	[ $((d2 - d1)) -lt 8192 ] && ok "decrypt RSS flat (+$((d2 - d1)) KiB)" || bad "decrypt RSS grew by $((d2 - d1)) KiB"
else
	echo "SKIP  RSS check: /usr/bin/time absent (Debian package 'time')"
fi

# ---- libraries loaded on first use (src/util/lazy.c) ---------------------------
# ward does not load libcurl, libarchive, libmicrohttpd or libsqlite3 when
# it starts
if ! command -v readelf >/dev/null; then
	bad "readelf is missing (binutils, which gcc brings)"
elif readelf -d "$WARD" | grep -E 'NEEDED.*(curl|archive|microhttpd|sqlite)' >needed.log; then
	bad "ward still needs at start: $(tr -s ' \n' ' ' <needed.log)"
else
	ok "ward's DT_NEEDED has no libcurl, libarchive, libmicrohttpd or libsqlite3"
fi
# and when one cannot be loaded, the command that needs it says which, and
# leaves nothing behind (the library is hidden behind an empty file in a
# private mount namespace)
if [ "$(id -u)" -eq 0 ] && unshare -m true 2>/dev/null; then
	: >empty.so
	hide() { # SONAME CMD...: run CMD with SONAME unloadable
		local lib
		lib=$({ command -v ldconfig >/dev/null && ldconfig -p || /sbin/ldconfig -p; } |
			awk -v n="$1" '$1 == n { print $NF; exit }')
		[ -n "$lib" ] || { echo "      $1 is not in ld.so's cache" >&2; return 99; }
		shift
		unshare -m sh -c 'mount --bind "$0" "$1" && shift && exec "$@"' \
			"$PWD/empty.so" "$(realpath "$lib")" "$@"
	}
	expect 3 "encrypt a directory without libarchive" hide libarchive.so.13 "$WARD" encrypt --raw-key key -o noarch.ward app
	has 'libarchive.so.13 cannot be loaded' "the library is named" err.log
	absent noarch.ward "encrypt without libarchive"
	expect 3 "decrypt a directory without libarchive" hide libarchive.so.13 "$WARD" decrypt --raw-key key -o noarch app.ward
	absent noarch "decrypt without libarchive"
	ls -d noarch* >/dev/null 2>&1 && bad "a temporary directory is left: $(ls -d noarch*)" || ok "no temporary directory left"
	AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=secret AWS_REGION=us-east-1 \
		expect 3 "encrypt under a KMS key without libcurl" hide libcurl.so.4 \
		"$WARD" encrypt --key-id alias/x --endpoint-url http://127.0.0.1:9 -o nocurl.ward model.orig
	has 'libcurl.so.4 cannot be loaded' "the library is named" err.log
	absent nocurl.ward "encrypt without libcurl"
	"$WARD" kms init --state nomhd >/dev/null 2>&1
	expect 3 "kms serve without libmicrohttpd" hide libmicrohttpd.so.12 "$WARD" kms serve --state nomhd --listen 127.0.0.1:0
	has 'libmicrohttpd.so.12 cannot be loaded' "the library is named" err.log
	expect 3 "kms init without libsqlite3" hide libsqlite3.so.0 "$WARD" kms init --state nosqlite
	has 'libsqlite3.so.0 cannot be loaded' "the library is named" err.log
	absent nosqlite "kms init without libsqlite3"
	expect 3 "kms serve without libsqlite3" hide libsqlite3.so.0 "$WARD" kms serve --state nomhd --listen 127.0.0.1:0
	has 'libsqlite3.so.0 cannot be loaded' "the library is named" err.log
	# a clean-up that closes nothing must not need the library: the real
	# error comes out, not the missing library
	expect 3 "kms audit verify of no state without libsqlite3" hide libsqlite3.so.0 "$WARD" kms audit verify --state nosuchstate
	has 'nosuchstate/root.key' "the missing state is what is reported" err.log
	grep -q sqlite err.log && bad "the library was loaded for nothing: $(cat err.log)" || ok "libsqlite3 is not asked for"
else
	echo "SKIP  missing-library checks: they need root and unshare -m to hide a library"
fi

echo "cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
