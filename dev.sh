#!/bin/sh
# nagare's one entry point for people and CI.
#   ./dev.sh run    install what is missing, build, start the broker (nagared)
#   ./dev.sh test   install what is missing, build, run the whole test suite
#   ./dev.sh asan   the test suite again, built with ASan + UBSan
#   ./dev.sh fuzz   every libFuzzer target for FUZZ_SECONDS (default 30) each
#   ./dev.sh tsan   the event loop's cross-thread paths under ThreadSanitizer
# Idempotent: packages are installed only when missing, builds are incremental.
set -eu
cd "$(dirname "$0")"

PACKAGES="gcc pkg-config meson ninja-build liburing-dev libzstd-dev libxxhash-dev libcriterion-dev libisal-dev
    zlib1g-dev libsnappy-dev liblz4-dev python3-kafka python3-snappy python3-lz4 python3-zstandard"

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
    exec ./build/broker/nagared "$@"
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
        LSAN_OPTIONS=suppressions="$PWD/tests/lsan.supp" run_tests build-asan
    ;;
fuzz)
    ensure_packages clang
    [ -f build-fuzz/build.ninja ] ||
        CC=clang meson setup build-fuzz -Dfuzz=true -Db_lundef=false -Dtests=disabled >/dev/null
    targets=$(cd fuzz && ls fuzz_*.c | sed 's/\.c$//')
    ninja -C build-fuzz $(for t in $targets; do echo "fuzz/$t"; done) >/dev/null
    for t in $targets; do
        corpus=$(mktemp -d)
        cp -r "fuzz/corpus/${t#fuzz_}/." "$corpus/" 2>/dev/null || true
        echo "fuzz: $t for ${FUZZ_SECONDS:-30} s"
        ./build-fuzz/fuzz/$t -max_total_time="${FUZZ_SECONDS:-30}" -print_final_stats=1 \
            "$corpus" 2>&1 | grep -E "^stat::number_of_executed_units|ERROR|SUMMARY" || true
        status=$(./build-fuzz/fuzz/$t -runs=0 "$corpus" >/dev/null 2>&1; echo $?)
        rm -rf "$corpus"
        if [ "$status" -ne 0 ]; then
            echo "fuzz: $t found a crash" >&2
            exit 1
        fi
    done
    ;;
tsan)
    # Criterion cannot start under TSan, so the threads get a plain program.
    ensure_packages clang
    [ -f build-tsan/build.ninja ] ||
        CC=clang meson setup build-tsan -Db_sanitize=thread -Db_lundef=false -Dbuildtype=debug \
            -Dtests=enabled >/dev/null
    ninja -C build-tsan tests/tsan_loop >/dev/null
    TSAN_OPTIONS=halt_on_error=1 ./build-tsan/tests/tsan_loop
    ;;
*)
    echo "usage: ./dev.sh run|test|asan|fuzz|tsan" >&2
    exit 2
    ;;
esac
