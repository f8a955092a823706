# Helpers shared by the integration scripts (sourced). Each check prints
# "ok" or "FAIL"; the script ends with `finish NAME`.
pass=0 fail=0
ok() { echo "ok    $1"; pass=$((pass + 1)); }
bad() { echo "FAIL  $1"; fail=$((fail + 1)); }
# expect CODE NAME CMD...: run CMD (stdout to out.log, stderr to err.log),
# check its exit status
expect() {
	local want=$1 name=$2 got
	shift 2
	"$@" >out.log 2>err.log
	got=$?
	if [ "$got" -eq "$want" ]; then ok "$name (exit $got)"; else
		bad "$name: exit $got, expected $want"; sed 's/^/      /' err.log; fi
}
# has TEXT NAME [FILE]: FILE (default out.log) contains TEXT
has() { if grep -q -- "$1" "${3:-out.log}"; then ok "$2"; else bad "$2: no '$1'"; sed 's/^/      /' "${3:-out.log}" | head -20; fi; }
empty() { if [ -s "${2:-out.log}" ]; then bad "$1"; sed 's/^/      /' "${2:-out.log}" | head -5; else ok "$1"; fi; }
absent() { if [ -e "$1" ]; then bad "$2: $1 exists"; else ok "$2: no $1"; fi; }
same() { if cmp -s "$1" "$2"; then ok "$3"; else bad "$3: $1 != $2"; fi; }
# json NAME EXPR: out.log parses as JSON and EXPR (JavaScript, over j) holds.
# node comes with scripts/install-deps; without it this is a failure.
json() {
	if ! command -v node >/dev/null; then bad "$1: node is missing (scripts/install-deps installs it)"; return; fi
	if node -e "const j=JSON.parse(require('fs').readFileSync('out.log','utf8'));
		if (!($2)) process.exit(1)"; then ok "$1"; else
		bad "$1"; sed 's/^/      /' out.log | head -30; fi
}
# jget FILE EXPR: print EXPR (JavaScript, over j) of FILE's JSON
jget() { node -e "const j=JSON.parse(require('fs').readFileSync('$1','utf8'));console.log($2)"; }
# flip FILE OFFSET: invert every bit of the byte at OFFSET, so the file
# always changes (writing a fixed byte leaves it as it was when the byte
# already had that value: 1 time in 256 for ciphertext)
flip() {
	local b
	b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
	[ -n "$b" ] || { echo "flip: $1 has no byte $2" >&2; return 1; }
	printf "\\$(printf %03o $((b ^ 255)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
finish() {
	echo "$1: $pass passed, $fail failed"
	[ "$fail" -eq 0 ]
}
