#!/usr/bin/env bash
# ward build-enclave through the real binary: nitro-cli's JSON, agreement
# with describe-eif and pcr, reproducibility across directories and times,
# kernels and blobs, signing with a key made by openssl, exit codes.
# usage: build.sh WARD_BIN WORKDIR
set -uo pipefail
WARD=$(realpath "$1")
WORK=$2
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK" || exit 1


mkdir -p root/usr/bin root/etc
printf '#!/bin/sh\necho hi\n' >root/usr/bin/hello && chmod 755 root/usr/bin/hello
echo "x=1" >root/etc/app.conf
ln -s ../usr/bin/hello root/etc/link

expect 0 "build-enclave --help" "$WARD" build-enclave --help
has '--oci-archive TAR' "help names the inputs"
has 'SOURCE_DATE_EPOCH' "help explains reproducibility"
expect 2 "no output" "$WARD" build-enclave --rootfs root
expect 2 "rootfs and oci together" "$WARD" build-enclave --rootfs root --oci-archive x.tar --output-file x.eif
expect 2 "cmdline without kernel" "$WARD" build-enclave --rootfs root --cmdline x --output-file x.eif
expect 2 "bad --cmd JSON" "$WARD" build-enclave --rootfs root --cmd '[1,2]' --output-file x.eif
expect 3 "missing rootfs" "$WARD" build-enclave --rootfs nonesuch --output-file x.eif
[ -e x.eif ] && bad "failed build left x.eif" || ok "failed builds leave no image"

expect 0 "build a sandbox image" "$WARD" build-enclave --rootfs root --cmd '["/usr/bin/hello","-v"]' \
	--env A=1 --output-file a.eif
cp out.log a.json
has '"SandboxOnly": true' "sandbox-only says so"
has 'runs only' "stderr says so too" err.log
pcr0=$(jget a.json 'j.Measurements.PCR0')
[ ${#pcr0} -eq 96 ] && ok "PCR0 is 96 hex digits" || bad "PCR0 '$pcr0'"
expect 0 "describe-eif of it" "$WARD" describe-eif --eif-path a.eif
[ "$(jget out.log 'j.Measurements.PCR0')" = "$pcr0" ] && ok "describe-eif agrees on PCR0" || bad "describe-eif PCR0"
[ "$(jget out.log 'j.CheckCRC')" = true ] && ok "CRC checks" || bad "CheckCRC"
[ "$(jget out.log 'j.Metadata.ward.SandboxOnly')" = true ] && ok "metadata says sandbox-only" || bad "metadata"
expect 11 "refuses to overwrite" "$WARD" build-enclave --rootfs root --output-file a.eif
expect 0 "--force overwrites" "$WARD" build-enclave --rootfs root --cmd '["/usr/bin/hello","-v"]' \
	--env A=1 --output-file a.eif -f

# reproducible: another directory, later, new file times, same bytes
mkdir -p elsewhere/deeper && sleep 1 && find root -exec touch -h {} +
(cd elsewhere/deeper && "$WARD" build-enclave --rootfs ../../root --cmd '["/usr/bin/hello","-v"]' \
	--env A=1 --output-file a.eif >/dev/null 2>&1)
cmp -s a.eif elsewhere/deeper/a.eif && ok "byte-identical from another directory and time" ||
	bad "rebuild differs"
SOURCE_DATE_EPOCH=1700000000 "$WARD" build-enclave --rootfs root --cmd '["/usr/bin/hello","-v"]' \
	--env A=1 --output-file b.eif >b.json 2>/dev/null
[ "$(jget b.json 'j.Measurements.PCR0')" = "$pcr0" ] && ok "BuildTime changes no PCR" || bad "PCR0 moved with BuildTime"
cmp -s a.eif b.eif && bad "SOURCE_DATE_EPOCH ignored" || ok "SOURCE_DATE_EPOCH reaches the metadata"

# a kernel and command line (any bytes here: the layout is what counts)
head -c 4096 /dev/urandom >bzImage
expect 0 "with a kernel" "$WARD" build-enclave --rootfs root --kernel bzImage --cmdline "console=ttyS0" \
	--output-file k.eif
grep -q SandboxOnly out.log && bad "kernel image still sandbox-only" || ok "kernel image is not sandbox-only"
k_pcr1=$(jget out.log 'j.Measurements.PCR1')
mkdir -p blobs && cp bzImage blobs/ && echo "  console=ttyS0 " >blobs/cmdline && head -c 100 /dev/urandom >blobs/nsm.ko
expect 0 "with --blobs" "$WARD" build-enclave --rootfs root --blobs blobs --output-file bl.eif
bl_pcr1=$(jget out.log 'j.Measurements.PCR1')
[ "$bl_pcr1" != "$k_pcr1" ] && ok "nsm.ko from blobs is measured in PCR1" || bad "blobs nsm.ko not in PCR1"
expect 0 "with --blobs and no nsm.ko" sh -c "rm blobs/nsm.ko && \"$WARD\" build-enclave --rootfs root --blobs blobs --output-file bl2.eif"
[ "$(jget out.log 'j.Measurements.PCR1')" = "$k_pcr1" ] && ok "blobs cmdline trimmed as nitro-cli does" || bad "blobs PCR1 differs from --kernel/--cmdline"

# signing with a P-384 key and certificate made by openssl
openssl ecparam -name secp384r1 -genkey -noout -out key.pem 2>/dev/null
openssl req -new -x509 -key key.pem -subj /CN=vendor -days 30 -out cert.pem 2>/dev/null
expect 0 "signed build" "$WARD" build-enclave --rootfs root --signing-certificate cert.pem \
	--private-key key.pem --output-file s.eif
s_pcr8=$(jget out.log 'j.Measurements.PCR8')
expect 0 "ward pcr --signing-certificate" "$WARD" pcr --signing-certificate cert.pem
[ "$(jget out.log 'j.PCR8')" = "$s_pcr8" ] && ok "PCR8 = pcr of the certificate" || bad "PCR8 mismatch"
expect 0 "describe-eif of the signed image" "$WARD" describe-eif --eif-path s.eif
[ "$(jget out.log 'j.IsSigned')" = true ] && [ "$(jget out.log 'j.SignatureCheck')" = true ] &&
	ok "signed and the signature checks" || bad "signature check"
expect 2 "certificate without key" "$WARD" build-enclave --rootfs root --signing-certificate cert.pem --output-file t.eif
openssl genrsa -out rsa.pem 2048 2>/dev/null
expect 4 "RSA signing key refused" "$WARD" build-enclave --rootfs root --signing-certificate cert.pem \
	--private-key rsa.pem --output-file t.eif

echo "build: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
