#!/bin/sh
# nagare's one entry point for people and CI.
#   ./dev.sh run    install what is missing, build, start the broker
#   ./dev.sh test   install what is missing, build, run the whole test suite
#   ./dev.sh asan   the test suite again, built with ASan + UBSan
# Idempotent: packages are installed only when missing, builds are incremental.
set -eu
cd "$(dirname "$0")"

PACKAGES="gcc pkg-config meson ninja-build liburing-dev libzstd-dev libxxhash-dev libcriterion-dev"

ensure_packages() {
    missing=""
    for p in $PACKAGES $*; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    echo "dev.sh: installing$missing" >&2
    if [ "$(id -u)" -ne 0 ]; then
        echo "dev.sh: need root to install:$missing" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

# build DIR [meson options...]
build() {
    dir=$1
    shift
    [ -f "$dir/build.ninja" ] || meson setup "$dir" "$@" >/dev/null
    ninja -C "$dir" >/dev/null
}

# run_tests DIR: the whole suite, then one closing line of counts.
run_tests() {
    status=0
    meson test -C "$1" --print-errorlogs --num-processes 2 || status=$?
    awk '/^Ok:/ {ok=$2} /^Fail:/ {f=$2} /^Timeout:/ {t=$2}
         END {printf "%s: %d passed, %d failed\n", "'"$1"'", ok, f + t}' "$1/meson-logs/testlog.txt" 2>/dev/null ||
        true
    return $status
}

case "${1:-}" in
run)
    ensure_packages
    build build
    shift
    exec ./build/bench/nagare-bench storage --mib 256 "$@"
    ;;
test)
    ensure_packages
    build build
    run_tests build
    ;;
asan)
    ensure_packages
    build build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        run_tests build-asan
    ;;
*)
    echo "usage: ./dev.sh run|test|asan" >&2
    exit 2
    ;;
esac
