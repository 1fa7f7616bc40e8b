#!/bin/sh
# nagare's one entry point for people and CI.
#   ./dev.sh run    install what is missing, build, start the broker (nagared)
#   ./dev.sh test   install what is missing, build, run the whole test suite
#   ./dev.sh release the test suite again, in a release build (build-release)
#   ./dev.sh asan   the test suite again, built with ASan + UBSan (but the
#                   cluster fault runs: whole clusters, slow under ASan)
#   ./dev.sh fuzz   every libFuzzer target for FUZZ_SECONDS (default 30) each;
#                   fails on any crash, leak, timeout or out-of-memory
#   ./dev.sh tsan   the event loop's cross-thread paths under ThreadSanitizer
#   ./dev.sh format check that every C file is as .clang-format lays it out
#                   (fails naming each line that is not); `format fix` rewrites them
# Idempotent: packages are installed only when missing, builds are incremental.
set -eu
cd "$(dirname "$0")"

PACKAGES="gcc pkg-config meson ninja-build liburing-dev libzstd-dev libxxhash-dev libcriterion-dev libisal-dev
    zlib1g-dev libsnappy-dev liblz4-dev python3-kafka python3-snappy python3-lz4 python3-zstandard
    kcat python3-confluent-kafka librdkafka-dev
    etcd-server etcd-client libcurl4-openssl-dev libjansson-dev nftables libssl-dev openssl"

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

# KafkaJS for the Kafka client tests (tests/kafkajs_client.mjs): node and
# npm from Debian when the machine has none (nodesource's nodejs brings its
# own npm, which Debian's would conflict with), then the packages that
# tests/kafkajs/package-lock.json pins, with npm ci into
# tests/kafkajs/node_modules (git-ignored), unless that install is already
# this lock's (a copy of the lock marks it): offline from then on.
ensure_kafkajs() {
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        ensure_packages nodejs npm
    fi
    cmp -s tests/kafkajs/package-lock.json tests/kafkajs/node_modules/.nagare-lock && return 0
    echo "dev.sh: installing KafkaJS (npm ci in tests/kafkajs)" >&2
    (cd tests/kafkajs && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    cp tests/kafkajs/package-lock.json tests/kafkajs/node_modules/.nagare-lock
}

# build DIR [meson options...]
build() {
    dir=$1
    shift
    [ -f "$dir/build.ninja" ] || meson setup "$dir" "$@" >/dev/null
    ninja --quiet -C "$dir"
}

# run_tests DIR [meson test options...]: the whole suite, then one closing
# line of counts.
run_tests() {
    status=0
    dir=$1
    shift
    meson test -C "$dir" --print-errorlogs --num-processes 2 "$@" || status=$?
    awk '/^Ok:/ {ok=$2} /^Fail:/ {f=$2} /^Timeout:/ {t=$2}
         END {printf "%s: %d passed, %d failed\n", "'"$dir"'", ok, f + t}' "$dir/meson-logs/testlog.txt" 2>/dev/null ||
        true
    return $status
}

# fuzz_target NAME DIR: NAME's libFuzzer target for FUZZ_SECONDS on a copy
# of its seed corpus, in DIR (log, corpus, artifacts). Fails when libFuzzer
# exits non-zero, as it does on a crash (an ASan or UBSan report, an
# ASSERT), a leak, one input running past FUZZ_TIMEOUT_S (generous: the
# decoders take microseconds, the margin is for a busy machine) or needing
# more than FUZZ_RSS_MB; the input that did it is written into DIR.
fuzz_target() {
    mkdir -p "$2/corpus"
    cp -r "fuzz/corpus/${1#fuzz_}/." "$2/corpus/" 2>/dev/null || true
    echo "fuzz: $1 for ${FUZZ_SECONDS:-30} s"
    rc=0
    ./build-fuzz/fuzz/"$1" -max_total_time="${FUZZ_SECONDS:-30}" -timeout="${FUZZ_TIMEOUT_S:-25}" \
        -rss_limit_mb="${FUZZ_RSS_MB:-2048}" -detect_leaks=1 -error_exitcode=77 \
        -timeout_exitcode=77 -artifact_prefix="$2/" -print_final_stats=1 "$2/corpus" \
        >"$2/log" 2>&1 || rc=$?
    rm -rf "$2/corpus"
    grep -E "^stat::number_of_executed_units" "$2/log" || true
    [ "$rc" -eq 0 ] && return 0
    echo "fuzz: $1 failed (exit $rc), log $2/log:" >&2
    grep -E "ERROR|SUMMARY|Test unit written|artifact" "$2/log" >&2 || tail -n 20 "$2/log" >&2
    return 1
}

case "${1:-}" in
deps)
    # What building and testing need (bench scripts run it first).
    ensure_packages
    ;;
run)
    ensure_packages
    build build
    shift
    exec ./build/broker/nagared "$@"
    ;;
test)
    ensure_packages
    ensure_kafkajs
    build build
    run_tests build
    ;;
release)
    # The suite in the build people benchmark (-O3, no debug info): its
    # timings are not debugoptimized's, and no test may depend on them.
    # RELEASE_ALL=1 runs all of it; by default (and in CI, which must end
    # within 30 minutes) the long fault runs (suite faults) and the real
    # Kafka clients' runs (suite clients) are left to the default build's
    # run, and the clients to ASan's too.
    ensure_packages
    ensure_kafkajs
    build build-release --buildtype=release
    if [ "${RELEASE_ALL:-0}" = 1 ]; then
        run_tests build-release
    else
        run_tests build-release --no-suite faults --no-suite clients
    fi
    ;;
asan)
    ensure_packages
    ensure_kafkajs
    build build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        LSAN_OPTIONS=suppressions="$PWD/tests/lsan.supp" run_tests build-asan --no-suite faults
    ;;
fuzz)
    ensure_packages clang
    [ -f build-fuzz/build.ninja ] ||
        CC=clang meson setup build-fuzz -Dfuzz=true -Db_lundef=false -Dtests=disabled >/dev/null
    targets=$(cd fuzz && ls fuzz_*.c | sed 's/\.c$//')
    ninja --quiet -C build-fuzz $(for t in $targets; do echo "fuzz/$t"; done)
    scratch=$(mktemp -d "${TMPDIR:-/tmp}/nagare-fuzz.XXXXXX")
    echo "fuzz: logs and artifacts go to $scratch"
    failed=""
    for t in $targets; do
        fuzz_target "$t" "$scratch/$t" || failed="$failed $t"
    done
    if [ -n "$failed" ]; then
        echo "fuzz: FAILED:$failed; the inputs that did it (crash-*, leak-*, timeout-*, oom-*)" \
            "and each target's log are in $scratch" >&2
        exit 1
    fi
    if [ -n "$(find "$scratch" -type f ! -name log)" ]; then
        echo "fuzz: passed; slow units kept in $scratch"
    else
        rm -rf "$scratch"
    fi
    ;;
format)
    # Debian 12's clang-format (14): another version may lay out a few
    # constructs differently, so the check names the one it ran.
    ensure_packages clang-format
    files=$(git ls-files '*.c' '*.h')
    if [ "${2:-check}" = fix ]; then
        clang-format -i $files
    else
        echo "format: $(clang-format --version)"
        clang-format --dry-run --Werror $files
        echo "format: $(echo "$files" | wc -l) files as .clang-format lays them out"
    fi
    ;;
tsan)
    # Criterion cannot start under TSan, so the threads get a plain program.
    ensure_packages clang
    [ -f build-tsan/build.ninja ] ||
        CC=clang meson setup build-tsan -Db_sanitize=thread -Db_lundef=false -Dbuildtype=debug \
            -Dtests=enabled >/dev/null
    ninja --quiet -C build-tsan tests/tsan_loop
    TSAN_OPTIONS=halt_on_error=1 ./build-tsan/tests/tsan_loop
    ;;
*)
    echo "usage: ./dev.sh deps|run|test|release|asan|fuzz|tsan|format [fix]" >&2
    exit 2
    ;;
esac
