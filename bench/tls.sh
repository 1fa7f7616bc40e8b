#!/bin/bash
# bench/tls.sh — issue 15's figures: nagare's own protocol in plaintext
# against the same over TLS, in one run, on one build: bench/ab.sh with the
# plaintext broker as A and a broker whose nagare listener is TLS
# (listen_tls = true, a fresh test CA's certificate from tests/tls_certs.sh,
# the client verifying it) as B. So the figures are ab.sh's (produce 1 KiB
# acks=1 and acks=all, consume, e2e at 10,000 records/s), each side's
# median over ROUNDS alternating rounds, and B/A is what TLS costs.
#
# Usage: bench/tls.sh [BUILD]   (a release build: meson setup DIR
#                                -Dbuildtype=release -Dtests=disabled;
#                                build-perf by default)
# Knobs: ROUNDS [4], OUT, as bench/ab.sh's.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build-perf}
CERTS=$(mktemp -d /tmp/nagare-tls-bench.XXXXXX)
trap 'rm -rf "$CERTS"' EXIT
sh tests/tls_certs.sh "$CERTS"
export ROUNDS=${ROUNDS:-4}
export A_ARGS=""
export B_ARGS="--broker-set listen_tls=true --broker-set tls_cert_file=$CERTS/server.pem
    --broker-set tls_key_file=$CERTS/server.key --tls-ca $CERTS/ca.pem"
bench/ab.sh "$BUILD" "$BUILD"
