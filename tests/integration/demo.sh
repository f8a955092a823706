#!/usr/bin/env bash
# make test runs the demo (scripts/demo, what `make demo` shows) in its
# quiet mode: every claim the story makes is checked (held-out accuracy
# at least 0.95 from the vendor and from the enclave, attestation and
# receipt verified, AccessDenied for the host, a debug-mode enclave, a
# modified image and a revoked pin, the encrypted app's results in the
# synced output folder, nothing left running). Exit 77 (skip) only when
# the machine lacks something (user namespaces, node, the AWS CLI,
# libxgboost-dev).
# usage: demo.sh WARD_BIN
set -u
exec bash "$(cd "$(dirname "$0")/../.." && pwd)/scripts/demo" --check "$1"
