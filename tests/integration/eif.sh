#!/usr/bin/env bash
# ward describe-eif and ward pcr through the real binary: the nitro.md
# Appendix C known answers (pcr of "hello", PCR8 of the AWS root), the
# synthetic EIF fixture (PCRs, CheckCRC, metadata), a corrupted and a
# truncated copy, help texts and usage errors.
# usage: eif.sh WARD_BIN WORKDIR
set -uo pipefail
WARD=$(realpath "$1")
WORK=$2
HERE=$(cd "$(dirname "$0")" && pwd)
FIXTURES=${WARD_FIXTURES_DIR:-$HERE/../../../shared/fixtures}
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK" || exit 1
EIF=$FIXTURES/eif/synthetic-v4.eif
PCR0=46157d09a427ebd1a54efc5630e3f089bf6e95041f8f592f3108c56699451b8ac69c6caac4faa71fca37d9e3757b232e
PCR1=5ea395796f0d045aed0d73c4d613adc383fb47ee7d3919d7bf5bc61f953b7eb02354332c0c7bdb1c663638fb2cb1065b
PCR2=57c908f2faaef8a69f9318beb295f1ee46f58603c808c3b1ef4609e003f82e7f815c0ab813a477fac470e9abb4ac8a4d
HELLO=1d9b87caf048435fc39a4a0a8e4e864af9c9a584b3a3b436193bb8b60125698089f57479f370637f16fcce8a1852d1bc
ROOT_PCR8=df3a0511a411c6a5628d91a189a052d281dec8153ffecde6bdc1a059825c32e4bfb7fc95b367564a64812a8795af8f8a


# help and usage
expect 0 "describe-eif --help" "$WARD" describe-eif --help
has 'Exit status' "describe-eif --help gives exit codes"
has 'CheckCRC' "describe-eif --help names CheckCRC"
expect 0 "pcr --help" "$WARD" pcr --help
has 'signing-certificate' "pcr --help names --signing-certificate"
has 'Exit status' "pcr --help gives exit codes"
expect 0 "ward help pcr" "$WARD" help pcr
expect 0 "ward --help lists describe-eif" "$WARD" --help
has 'describe-eif' "describe-eif in the command list"
has 'pcr' "pcr in the command list"
expect 2 "describe-eif without --eif-path" "$WARD" describe-eif
has 'eif-path' "the missing option is named" err.log
expect 2 "describe-eif with a stray argument" "$WARD" describe-eif x.eif
expect 2 "describe-eif --eif-path without a value" "$WARD" describe-eif --eif-path
expect 2 "describe-eif unknown option" "$WARD" describe-eif --bogus
expect 2 "pcr without input" "$WARD" pcr
expect 2 "pcr with both inputs" "$WARD" pcr --input a --signing-certificate b
expect 2 "pcr unknown option" "$WARD" pcr --nope
expect 3 "pcr of a missing file" "$WARD" pcr --input nosuchfile
expect 3 "describe-eif of a missing file" "$WARD" describe-eif --eif-path nosuchfile
empty "nothing on stdout for a missing file"

# nitro-cli pcr known answers (nitro.md Appendix C)
printf hello >hello
expect 0 "pcr --input hello" "$WARD" pcr --input hello
has "\"PCR\": \"$HELLO\"" "PCR of hello"
json "pcr JSON is {PCR}" "Object.keys(j).length===1 && j.PCR==='$HELLO'"
cat >aws-root.pem <<'EOF'
-----BEGIN CERTIFICATE-----
MIICETCCAZagAwIBAgIRAPkxdWgbkK/hHUbMtOTn+FYwCgYIKoZIzj0EAwMwSTEL
MAkGA1UEBhMCVVMxDzANBgNVBAoMBkFtYXpvbjEMMAoGA1UECwwDQVdTMRswGQYD
VQQDDBJhd3Mubml0cm8tZW5jbGF2ZXMwHhcNMTkxMDI4MTMyODA1WhcNNDkxMDI4
MTQyODA1WjBJMQswCQYDVQQGEwJVUzEPMA0GA1UECgwGQW1hem9uMQwwCgYDVQQL
DANBV1MxGzAZBgNVBAMMEmF3cy5uaXRyby1lbmNsYXZlczB2MBAGByqGSM49AgEG
BSuBBAAiA2IABPwCVOumCMHzaHDimtqQvkY4MpJzbolL//Zy2YlES1BR5TSksfbb
48C8WBoyt7F2Bw7eEtaaP+ohG2bnUs990d0JX28TcPQXCEPZ3BABIeTPYwEoCWZE
h8l5YoQwTcU/9KNCMEAwDwYDVR0TAQH/BAUwAwEB/zAdBgNVHQ4EFgQUkCW1DdkF
R+eWw5b6cp3PmanfS5YwDgYDVR0PAQH/BAQDAgGGMAoGCCqGSM49BAMDA2kAMGYC
MQCjfy+Rocm9Xue4YnwWmNJVA44fA0P5W2OpYow9OYCVRaEevL8uO1XYru5xtMPW
rfMCMQCi85sWBbJwKKXdS6BptQFuZbT73o/gBh1qUxl/nNr12UO8Yfwr6wPLb+6N
IwLz3/Y=
-----END CERTIFICATE-----
EOF
expect 0 "pcr --signing-certificate (AWS root)" "$WARD" pcr --signing-certificate aws-root.pem
has "\"PCR8\": \"$ROOT_PCR8\"" "PCR8 of the AWS root"
json "pcr JSON is {PCR8}" "Object.keys(j).length===1 && j.PCR8==='$ROOT_PCR8'"
if command -v openssl >/dev/null; then
	openssl x509 -in aws-root.pem -outform DER -out aws-root.der 2>/dev/null
	expect 0 "pcr --signing-certificate of DER" "$WARD" pcr --signing-certificate aws-root.der
	has "$ROOT_PCR8" "the same PCR8 from DER"
fi
expect 4 "pcr --signing-certificate of a non-certificate" "$WARD" pcr --signing-certificate hello
empty "nothing on stdout for a bad certificate"

if [ ! -f "$EIF" ]; then
	echo "SKIP: $EIF not found (the shared/ folder is absent, as in a user's clone): the fixture checks did not run"
	echo "eif: $pass passed, $fail failed"
	[ "$fail" -eq 0 ] && exit 77 || exit 1
fi

# the fixture
expect 0 "describe-eif of the fixture" "$WARD" describe-eif --eif-path "$EIF"
has '"CheckCRC": true' "CheckCRC true"
has '"IsSigned": false' "not signed"
has '"HashAlgorithm": "Sha384 { ... }"' "HashAlgorithm as nitro-cli prints it"
has '^  "EifVersion": 4,$' "2-space indented"
json "PCR0/1/2 as Appendix C" "j.EifVersion===4 && j.Measurements.PCR0==='$PCR0' && j.Measurements.PCR1==='$PCR1' && j.Measurements.PCR2==='$PCR2' && !('PCR8' in j.Measurements)"
json "CheckCRC, no signature fields" "j.CheckCRC===true && j.IsSigned===false && !('SignatureCheck' in j) && !('SigningCertificate' in j)"
json "ImageName, ImageVersion, Metadata" "j.ImageName==='test' && j.ImageVersion==='1.0' && j.Metadata.BuildTool==='eif_build' && j.Metadata.BuildToolVersion==='0.2.0' && j.Metadata.KernelVersion==='kernel' && j.Metadata.OperatingSystem==='OS' && j.Metadata.BuildTime==='2024-01-01T00:00:00+00:00' && j.Metadata.DockerInfo===null && !('CustomMetadata' in j.Metadata)"
json "keys in nitro-cli's order" "Object.keys(j).join()==='EifVersion,Measurements,IsSigned,CheckCRC,ImageName,ImageVersion,Metadata' && Object.keys(j.Measurements).join()==='HashAlgorithm,PCR0,PCR1,PCR2'"
expect 0 "pcr --input of the fixture" "$WARD" pcr --input "$EIF"

# a byte flipped in the customer ramdisk (offset 897 + 12 + 3): the CRC
# and PCR0/PCR2 change, the JSON is still printed
cp "$EIF" flipped.eif && chmod u+w flipped.eif
printf 'X' | dd of=flipped.eif bs=1 seek=912 conv=notrunc status=none
expect 5 "a flipped ramdisk byte" "$WARD" describe-eif --eif-path flipped.eif
has '"CheckCRC": false' "CheckCRC false"
has 'CRC mismatch' "the mismatch explained" err.log
json "PCR0 and PCR2 changed, PCR1 not" "j.Measurements.PCR0!=='$PCR0' && j.Measurements.PCR2!=='$PCR2' && j.Measurements.PCR1==='$PCR1'"
# a flipped CRC byte: the measurements are those of the fixture
cp "$EIF" crc.eif && chmod u+w crc.eif
printf '\x00' | dd of=crc.eif bs=1 seek=544 conv=notrunc status=none
expect 5 "a changed header CRC" "$WARD" describe-eif --eif-path crc.eif
json "the same PCRs, CheckCRC false" "j.CheckCRC===false && j.Measurements.PCR0==='$PCR0'"

# structurally broken: exit 4, the reason on stderr, no JSON
head -c 900 "$EIF" >trunc.eif
expect 4 "truncated" "$WARD" describe-eif --eif-path trunc.eif
empty "no JSON for a truncated image"
has 'past the end' "the reason" err.log
head -c 100 "$EIF" >short.eif
expect 4 "shorter than a header" "$WARD" describe-eif --eif-path short.eif
cp "$EIF" trailing.eif && chmod u+w trailing.eif && printf 'x' >>trailing.eif
expect 4 "a trailing byte" "$WARD" describe-eif --eif-path trailing.eif
has 'after the last section' "trailing data named" err.log
cp "$EIF" magic.eif && chmod u+w magic.eif
printf 'E' | dd of=magic.eif bs=1 seek=1 conv=notrunc status=none
expect 4 "wrong magic" "$WARD" describe-eif --eif-path magic.eif
cp "$EIF" v3.eif && chmod u+w v3.eif
printf '\x03' | dd of=v3.eif bs=1 seek=5 conv=notrunc status=none
expect 8 "version 3" "$WARD" describe-eif --eif-path v3.eif
has 'version 3' "the version named" err.log
cp "$EIF" type6.eif && chmod u+w type6.eif
printf '\x06' | dd of=type6.eif bs=1 seek=585 conv=notrunc status=none
expect 4 "section type 6" "$WARD" describe-eif --eif-path type6.eif
expect 3 "a directory" "$WARD" describe-eif --eif-path .

echo "eif: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
