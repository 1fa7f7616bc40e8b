# tests/cli_support.sh — what the `nagare` CLI suites share, sourced after
# `set -euo pipefail`: a temporary directory, a broker on an ephemeral port,
# checks that print "ok - ..." or stop the script with "FAIL: ...", and a
# cleanup on exit that kills whatever was started and removes its files.
#
# The sourcing script sets, before sourcing: SUITE (names the temporary
# directory) and RUN_SECONDS (run()'s time limit). It may add the pids of
# background processes it starts to BG_PIDS, and set BROKER_ARGS (more
# nagared arguments) before a start_broker.

: "${NAGARED:?set NAGARED to the nagared binary}"
: "${NAGARE:?set NAGARE to the nagare binary}"
: "${SUITE:?set SUITE before sourcing cli_support.sh}"
: "${RUN_SECONDS:?set RUN_SECONDS before sourcing cli_support.sh}"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/nagare-$SUITE-XXXXXX")
BROKER_PID=""
BG_PIDS=()
BROKER_ARGS=()
CHECKS=0

cleanup() {
    for pid in "${BG_PIDS[@]}"; do
        kill -9 "$pid" 2>/dev/null || true
    done
    if [ -n "$BROKER_PID" ] && kill -0 "$BROKER_PID" 2>/dev/null; then
        kill -9 "$BROKER_PID" 2>/dev/null || true
        wait "$BROKER_PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    if [ -f "$TMP/nagared.log" ]; then
        echo "---- tail of the broker's log ----" >&2
        tail -n 20 "$TMP/nagared.log" >&2
    fi
    exit 1
}

ok() {
    CHECKS=$((CHECKS + 1))
    echo "ok - $*"
}

# expect_same WHAT FILE_GOT FILE_WANT
expect_same() {
    if ! cmp -s "$2" "$3"; then
        echo "---- $1: got ----" >&2
        head -c 2000 "$2" | cat -A >&2
        echo "---- $1: wanted ----" >&2
        head -c 2000 "$3" | cat -A >&2
        fail "$1: output differs"
    fi
    ok "$1"
}

# run STATUS_WANTED ARGS... : runs nagare with stdin from $IN (default
# /dev/null), stdout to $TMP/out, stderr to $TMP/err, within RUN_SECONDS.
run() {
    local want=$1
    shift
    local rc=0
    timeout "$RUN_SECONDS" "$NAGARE" "$@" <"${IN:-/dev/null}" >"$TMP/out" 2>"$TMP/err" || rc=$?
    if [ "$rc" -ne "$want" ]; then
        echo "---- stderr of nagare $* ----" >&2
        cat "$TMP/err" >&2
        fail "nagare $*: exit status $rc, wanted $want"
    fi
}

# One line on stderr, containing $1.
expect_one_error_line() {
    local lines
    lines=$(wc -l <"$TMP/err")
    [ "$lines" -eq 1 ] || fail "$2: wanted one line on stderr, got $lines: $(cat "$TMP/err")"
    grep -q -- "$1" "$TMP/err" || fail "$2: stderr lacks '$1': $(cat "$TMP/err")"
}

# Starts nagared on 127.0.0.1:0 with its data in $TMP/data, the flags
# given and those in BROKER_ARGS; sets B to the --broker option that
# reaches it.
start_broker() {
    # The log exists before the broker starts: the redirect below happens in
    # the background child, and the polling below must not race it.
    : >"$TMP/nagared.log"
    "$NAGARED" "$@" --listen 127.0.0.1:0 --kafka-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
        --data-dir "$TMP/data" "${BROKER_ARGS[@]}" >"$TMP/nagared.log" 2>&1 &
    BROKER_PID=$!
    local port=""
    for _ in $(seq 1 200); do
        port=$(sed -n 's/.*nagared listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$TMP/nagared.log")
        [ -n "$port" ] && break
        kill -0 "$BROKER_PID" 2>/dev/null || fail "nagared exited at start"
        sleep 0.05
    done
    [ -n "$port" ] || fail "nagared printed no listening line within 10 s"
    B=(--broker "127.0.0.1:$port")
}

# Stops the broker with SIGTERM: it must exit 0 with no sanitizer report or
# failed assertion in its log.
stop_broker() {
    kill -TERM "$BROKER_PID"
    local rc=0
    wait "$BROKER_PID" || rc=$?
    BROKER_PID=""
    [ "$rc" -eq 0 ] || fail "nagared exited with status $rc after SIGTERM"
    if grep -E -q "AddressSanitizer|LeakSanitizer|runtime error|assertion failed" \
        "$TMP/nagared.log"; then
        fail "the broker's log shows a sanitizer report or a failed assertion"
    fi
    ok "nagared stops on SIGTERM with status 0"
}
