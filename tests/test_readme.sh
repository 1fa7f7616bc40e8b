#!/usr/bin/env bash
# tests/test_readme.sh — the README's commands, run as pasted: the Quick start
# section's command blocks (quick start, groups, queue) in order, in a
# temporary directory, against the real nagared on an ephemeral port reached
# through NAGARE_BROKER, with the built nagare and nagared first on the
# PATH; then the
# "A three-broker cluster" section: its etcd member and three brokers
# started as written, but each fixed port it names moved to a free one
# (the same substitution in every command), a replicated topic produced to
# and consumed, a broker killed; skipped, saying so, without etcd; then the
# "Building a program against libnagare" section: meson install into a
# scratch directory, its hello.c compiled with the README's pkg-config line
# and run.
#
#   NAGARED=build/broker/nagared NAGARE=build/client/cli/nagare \
#   BUILD_ROOT=build NAGARE_SANITIZE=none bash tests/test_readme.sh
#
# Each README command must be the one step() names here, in the same order,
# so a change to the README fails this test until the expectation below is
# changed with it. Where a person pasting would wait a moment (for group
# members to join, for a dead letter to be copied), the test waits for that
# state, never for a time.
set -euo pipefail

SUITE=readme
RUN_SECONDS=60
# shellcheck source=tests/cli_support.sh
. "$(dirname "$0")/cli_support.sh"
: "${BUILD_ROOT:?set BUILD_ROOT to the meson build directory}"
BUILD_ROOT=$(cd "$BUILD_ROOT" && pwd)
README="$(cd "$(dirname "$0")/.." && pwd)/README.md"

# section TITLE LANG: the fenced LANG blocks of README section "## TITLE",
# each line as written, a line "```" after each block.
section() {
    awk -v title="## $1" -v lang="$2" '
        /^## / { inside = ($0 == title) }
        inside && $0 == "```" lang { block = 1; next }
        inside && block && $0 == "```" { block = 0; print "```"; next }
        inside && block { print }' "$README"
}

# The commands of section TITLE's sh blocks, each ended by a NUL: a line
# ending in "|" or "\" joined with the next, blank and comment lines left
# out, a trailing "  # comment" cut off.
commands() {
    local line cmd="" continued='[|\\]$'
    while IFS= read -r line; do
        if [ -z "$cmd" ] && [[ "$line" == '```' || "$line" =~ ^[[:space:]]*(#|$) ]]; then
            continue
        fi
        cmd+=$(sed -E 's/[[:space:]]+# .*$//' <<<"$line")
        if [[ "$line" =~ $continued ]]; then
            cmd+=$'\n'
            continue
        fi
        printf '%s\0' "$cmd"
        cmd=""
    done < <(section "$1" sh)
}

CMDS=()
AT=0

# next_command WANT: the README's next command must be WANT.
next_command() {
    [ "$AT" -lt "${#CMDS[@]}" ] ||
        fail "README.md has no command $((AT + 1)); tests/test_readme.sh expects: $1"
    [ "${CMDS[$AT]}" == "$1" ] ||
        fail "README.md command $((AT + 1)) is: ${CMDS[$AT]}
tests/test_readme.sh expects: $1
(change the README and this test together)"
    AT=$((AT + 1))
}

# The sed script moving the README's fixed ports to free ones (the
# cluster section); empty: commands run as written.
PORT_SED=""

# as_run CMD: CMD with PORT_SED applied.
as_run() {
    if [ -z "$PORT_SED" ]; then
        printf '%s' "$1"
    else
        sed -E "$PORT_SED" <<<"$1"
    fi
}

# step CMD: CMD is the README's next command; runs it as pasted (through
# bash, pipefail on, within RUN_SECONDS), stdout to $TMP/out, stderr to
# $TMP/err; it must exit 0.
step() {
    next_command "$1"
    local rc=0 cmd
    cmd=$(as_run "$1")
    timeout "$RUN_SECONDS" bash -o pipefail -c "$cmd" >"$TMP/out" 2>"$TMP/err" || rc=$?
    [ "$rc" -eq 0 ] || fail "README: '$cmd' exited with $rc: $(cat "$TMP/err")"
}

# here CMD: as step, but in this shell (a command that starts or kills jobs).
here() {
    next_command "$1"
    local cmd
    cmd=$(as_run "$1")
    eval "$cmd" >"$TMP/out" 2>"$TMP/err" || fail "README: '$cmd' failed: $(cat "$TMP/err")"
}

# out_is WHAT TEXT: stdout is TEXT and a newline.
out_is() {
    printf '%s\n' "$2" >"$TMP/want"
    expect_same "$1" "$TMP/out" "$TMP/want"
}

# wait_for WHAT CMD: runs CMD (in this shell) until it succeeds, for up to
# 30 s.
wait_for() {
    for _ in $(seq 1 300); do
        eval "$2" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    fail "never: $1"
}

# ---- Quick start ----

quick_start() {
    trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
    local blocks
    blocks=$(section "Quick start" sh)
    grep -q -x "./dev.sh run" <<<"$blocks" || fail "README: the quick start starts no broker"
    grep -q -x 'export PATH="$PWD/build/client/cli:$PATH"' <<<"$blocks" ||
        fail "README: the quick start puts no nagare on the PATH"
    local all c
    mapfile -d '' -t all < <(commands "Quick start")
    CMDS=()
    for c in "${all[@]}"; do
        [[ "$c" == "./dev.sh run" || "$c" == "export PATH="* ]] || CMDS+=("$c")
    done
    local books=$'ordered a book\nordered a lamp\npaid'

    step "nagare topic create orders --partitions 1"
    out_is "create orders" "created topic orders with 1 partition"
    step "printf 'alice:ordered a book\\nbob:ordered a lamp\\nalice:paid\\n' |
    nagare produce orders --key-separator :"
    expect_one_error_line "3 records" "produce's summary"
    step "nagare consume orders"
    out_is "consume orders" "$books"
    step "nagare consume orders --format '%o %k: %v\\n'"
    out_is "consume --format" $'0 alice: ordered a book\n1 bob: ordered a lamp\n2 alice: paid'
    step "nagare consume orders --from 1"
    out_is "consume --from 1" $'ordered a lamp\npaid'
    step "nagare consume orders --from \"\$(date -u -d '1 min ago' +%Y-%m-%dT%H:%M:%SZ)\""
    out_is "consume --from a minute ago" "$books"
    step "nagare topic describe orders"
    grep -q -E "^0 +0 +3 +3$" "$TMP/out" || fail "topic describe orders: $(cat "$TMP/out")"
    ok "topic describe orders: earliest 0, latest 3"

    # --follow runs until Ctrl-C: SIGINT once it printed the three records.
    next_command "nagare consume orders --json --follow"
    nagare consume orders --json --follow >"$TMP/follow" 2>"$TMP/err" &
    local pid=$!
    wait_for "--follow printed 3 records" '[ "$(wc -l <"$TMP/follow")" -ge 3 ]'
    kill -INT "$pid"
    local rc=0
    wait "$pid" || rc=$?
    [ "$rc" -eq 0 ] || fail "consume --follow after Ctrl-C: status $rc: $(cat "$TMP/err")"
    [ "$(grep -c '^{"topic":"orders","partition":0,"offset":[0-2],' "$TMP/follow")" -eq 3 ] ||
        fail "consume --json --follow: $(cat "$TMP/follow")"
    ok "consume --json --follow prints the three records and stops on Ctrl-C"

    group_example
    queue_example
    [ "$AT" -eq "${#CMDS[@]}" ] || fail "README command $((AT + 1)) is not tested: ${CMDS[$AT]}"
    ok "every command of the README's quick start ran as pasted"
}

# Two members split four partitions; between them they print each record once.
group_example() {
    step "nagare topic create clicks --partitions 4"
    out_is "create clicks" "created topic clicks with 4 partitions"
    here "nagare consume clicks --group billing --follow --format '%p %k:%v\\n' >member-1.txt &"
    here "nagare consume clicks --group billing --follow --format '%p %k:%v\\n' >member-2.txt &"
    local split='[ "$(nagare group describe billing | grep -c -E "^member-[^ ]+ +clicks:[0-3],[0-3]$")" -eq 2 ]'
    wait_for "both members joined, two partitions each" "$split"
    step "nagare group describe billing"
    grep -q -E "^members +2$" "$TMP/out" || fail "group describe: $(cat "$TMP/out")"
    ok "two members of billing hold two of the four partitions each"
    step "printf 'ann:home\\nbob:cart\\ncid:home\\ndan:pay\\neve:cart\\nfay:home\\n' |
    nagare produce clicks --key-separator :"
    wait_for "the members printed the six records" \
        '[ "$(cat member-1.txt member-2.txt | wc -l)" -ge 6 ]'
    here "kill %1 %2"
    local rc=0
    wait %1 || rc=$?
    wait %2 || rc=$?
    [ "$rc" -eq 0 ] || fail "a member ended with status $rc after SIGTERM"
    local p1 p2
    p1=$(cut -d' ' -f1 member-1.txt | sort -u | tr '\n' ' ')
    p2=$(cut -d' ' -f1 member-2.txt | sort -u | tr '\n' ' ')
    [ -z "$(comm -12 <(tr ' ' '\n' <<<"$p1" | grep .) <(tr ' ' '\n' <<<"$p2" | grep .))" ] ||
        fail "both members printed partitions $p1/$p2"
    ok "each member printed only its own partitions"
    step "sort member-1.txt member-2.txt"
    cut -d' ' -f2 "$TMP/out" | sort >"$TMP/got"
    printf '%s\n' ann:home bob:cart cid:home dan:pay eve:cart fay:home >"$TMP/want"
    expect_same "the two members printed each record once" "$TMP/got" "$TMP/want"
    step "nagare group describe billing"
    grep -q -E "^members +0$" "$TMP/out" || fail "group describe: $(cat "$TMP/out")"
    [ "$(awk '$1 == "clicks" && $3 == $4 && $5 == 0' "$TMP/out" | wc -l)" -eq 4 ] ||
        fail "group describe after the members left: $(cat "$TMP/out")"
    ok "the members committed what they printed: no lag"
    step "nagare group reset-offsets billing --to earliest"
    [ "$(grep -c -E "^clicks +[0-3] +0$" "$TMP/out")" -eq 4 ] ||
        fail "reset-offsets: $(cat "$TMP/out")"
    ok "reset-offsets --to earliest puts the four partitions back to 0"
}

# One record rejected to orders.dlq, the others accepted, the dead letter
# redriven and handed out again.
queue_example() {
    step "nagare consume orders --share workers --reject --count 1"
    out_is "--share --reject --count 1 takes the first record" "ordered a book"
    step "nagare consume orders --share workers"
    out_is "--share accepts the other two" $'ordered a lamp\npaid'
    # The broker copies a dead letter a moment after the reject was
    # acknowledged (broker/dlq.c).
    wait_for "the rejected record reached orders.dlq" \
        'nagare topic describe orders.dlq | grep -q -E "^0 +0 +1 +1$"'
    step "nagare consume orders.dlq --format '%v [%h]\\n'"
    out_is "the dead letter and its headers" "ordered a book [nagare.dlq.topic=orders,nagare.dlq.partition=0,nagare.dlq.offset=0,nagare.dlq.delivery-count=1,nagare.dlq.reason=rejected]"
    step "nagare dlq redrive orders.dlq"
    out_is "redrive" "redrove 1 record from orders.dlq"
    step "nagare consume orders --share workers"
    out_is "the share group gets the redriven record" "ordered a book"
}

# ---- A three-broker cluster ----

# A TCP port free on 127.0.0.1 now (the kernel's pick of an ephemeral one).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Partitions of payments in `nagare cluster describe` ($TMP/out) that have
# a leader: lines "payments <partition> <leader> ...".
led_partitions() {
    awk '$1 == "payments" && $3 != "none"' "$TMP/out" | wc -l
}

# On leaving the cluster's subshell: its logs' tails when it failed, then
# every process it started stopped.
cluster_end() {
    local f
    if [ "$1" -ne 0 ]; then
        for f in etcd.log broker-1.log broker-2.log broker-3.log; do
            [ -f "$f" ] && { echo "---- $f ----"; tail -n 15 "$f"; } >&2
        done
    fi
    kill $(jobs -p) 2>/dev/null || true
    wait
}

# The cluster commands, run in this shell (a subshell of the script): the
# etcd member and the brokers are its jobs %1..%4, as in the README.
cluster_example() {
    trap 'cluster_end $?' EXIT
    local title="A three-broker cluster" blocks all c
    blocks=$(section "$title" sh)
    grep -q -x 'export PATH="$PWD/build/client/cli:$PWD/build/broker:$PATH"   # in the repository' \
        <<<"$blocks" || fail "README: the cluster section puts no nagared on the PATH"
    grep -q -x 'cd "$(mktemp -d)"                                             # a scratch directory' \
        <<<"$blocks" || fail "README: the cluster section does not move to a scratch directory"
    mapfile -d '' -t all < <(commands "$title")
    CMDS=()
    AT=0
    for c in "${all[@]}"; do
        [[ "$c" == "export PATH="* || "$c" == "cd "* ]] || CMDS+=("$c")
    done
    local p
    PORT_SED=""
    for p in 2379 2380 7421 7422 7423 9092 9093 9094 9641 9642 9643; do
        PORT_SED+="s/127\.0\.0\.1:$p([^0-9]|\$)/127.0.0.1:$(free_port)\1/g;"
    done
    export NAGARE_BROKER="" # the section sets its own

    here 'etcd --name e1 --data-dir etcd-data \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster e1=http://127.0.0.1:2380 >etcd.log 2>&1 &'
    step 'until etcdctl --endpoints=http://127.0.0.1:2379 endpoint health; do sleep 1; done'
    cat "$TMP/out" "$TMP/err" | grep -q "is healthy" || fail "etcd: $(cat "$TMP/out" "$TMP/err")"
    local i
    for i in 1 2 3; do
        here "nagared --broker-id $i --etcd http://127.0.0.1:2379 --listen 127.0.0.1:742$i --kafka-listen 127.0.0.1:909$((i + 1)) \\
    --admin-listen 127.0.0.1:964$i --data-dir data-$i >broker-$i.log 2>&1 &"
    done
    here "export NAGARE_BROKER=127.0.0.1:7421,127.0.0.1:7422,127.0.0.1:7423"
    # A person waits until the brokers are up; the test until each is live.
    wait_for "three brokers live" \
        '[ "$(nagare cluster describe 2>/dev/null | grep -c -E "^  [123] +127\.0\.0\.1:")" -eq 3 ]'
    step "nagare cluster describe"
    grep -q -E "^controller [123]$" "$TMP/out" || fail "cluster describe: $(cat "$TMP/out")"
    ok "three brokers joined through etcd, one of them the controller"
    step "nagare topic create payments --partitions 3 --replication-factor 3"
    out_is "create payments" "created topic payments with 3 partitions"
    # The partitions' leaders take them up once their brokers apply the view.
    step "printf 'p1\\np2\\np3\\n' | nagare produce payments"
    expect_one_error_line "3 records" "produce's summary"
    step "nagare consume payments"
    sort "$TMP/out" >"$TMP/got"
    printf 'p1\np2\np3\n' >"$TMP/want"
    expect_same "the three records, from the replicated topic" "$TMP/got" "$TMP/want"
    step "nagare cluster describe"
    [ "$(grep -c -E '^payments +[0-2] +[123] +[0-9]+ +[123],[123],[123] +[123],[123],[123] *$' \
        "$TMP/out")" -eq 3 ] || fail "cluster describe: $(cat "$TMP/out")"
    ok "each partition has a leader and three replicas, all in sync"
    here "kill %3"
    # After broker 2's lease ends the controller moves what it led.
    wait_for "no partition led by broker 2" \
        'nagare cluster describe >"$TMP/out" 2>/dev/null && [ "$(led_partitions)" -eq 3 ] &&
         ! grep -q -E "^payments +[0-2] +2 " "$TMP/out" && ! grep -q -E "^  2 " "$TMP/out"'
    step "nagare cluster describe"
    ! grep -q -E "^payments +[0-2] +(2|none) " "$TMP/out" ||
        fail "cluster describe after broker 2 died: $(cat "$TMP/out")"
    ok "the partitions broker 2 led have new leaders"
    step "nagare consume payments"
    sort "$TMP/out" >"$TMP/got"
    expect_same "every record, with broker 2 gone" "$TMP/got" "$TMP/want"
    here "kill %1 %2 %4"
    [ "$AT" -eq "${#CMDS[@]}" ] || fail "README command $((AT + 1)) is not tested: ${CMDS[$AT]}"
    ok "every command of the README's cluster section ran as pasted"
}

cluster_section() {
    if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null; then
        echo "ok - skipped the README's cluster section: no etcd or etcdctl (Debian's" \
            "etcd-server and etcd-client; ./dev.sh installs them)"
        return 0
    fi
    mkdir "$TMP/cluster"
    (cd "$TMP/cluster" && cluster_example) || exit 1
}

# ---- Building a program against libnagare ----

# meson install into a scratch directory; the README's hello.c compiled
# with its pkg-config line (the scratch root as pkg-config's sysroot) and
# run with the installed library directory as LD_LIBRARY_PATH.
build_against() {
    local title="Building a program against libnagare" dest="$TMP/dest"
    meson install -C "$BUILD_ROOT" --no-rebuild --destdir "$dest" >"$TMP/install.log" 2>&1 ||
        fail "meson install: $(tail -n 5 "$TMP/install.log")"
    local pc
    pc=$(find "$dest" -name nagare.pc)
    [ -n "$pc" ] || fail "meson install installed no nagare.pc"
    [ -f "$(dirname "$pc")/../libnagare.so.0" ] || fail "no libnagare.so.0 beside $pc"
    section "$title" c | grep -v -x '```' >hello.c
    grep -q "nagare_version" hello.c || fail "README: no hello.c in '$title'"
    mapfile -d '' -t CMDS < <(commands "$title")
    AT=0
    local cc_line="cc hello.c \$(pkg-config --cflags --libs nagare) -o hello"
    next_command "$cc_line"
    local sanitize=()
    [ "${NAGARE_SANITIZE:-none}" == "none" ] || sanitize=("-fsanitize=$NAGARE_SANITIZE")
    PKG_CONFIG_SYSROOT_DIR="$dest" PKG_CONFIG_PATH="$(dirname "$pc")" \
        bash -c "${cc_line/ -o / ${sanitize[*]} -o }" 2>"$TMP/err" ||
        fail "compiling hello.c: $(cat "$TMP/err")"
    ok "hello.c compiles against the installed libnagare through pkg-config"
    next_command "./hello"
    LD_LIBRARY_PATH="$(dirname "$(dirname "$pc")")" ./hello >"$TMP/out" 2>"$TMP/err" ||
        fail "./hello: $(cat "$TMP/err")"
    grep -q -E "^libnagare [0-9]+\.[0-9]+\.[0-9]+$" "$TMP/out" || fail "./hello: $(cat "$TMP/out")"
    ok "hello runs with the installed shared library"
    [ "$AT" -eq "${#CMDS[@]}" ] || fail "README command $((AT + 1)) is not tested: ${CMDS[$AT]}"
}

start_broker
export NAGARE_BROKER="${B[1]}"
PATH="$(cd "$(dirname "$NAGARE")" && pwd):$(cd "$(dirname "$NAGARED")" && pwd):$PATH"
export PATH
mkdir "$TMP/work"
cd "$TMP/work"
# The README's commands run in a subshell: its jobs are its own (%1 and %2
# are the group members, not the broker).
(quick_start) || exit 1
cluster_section
(build_against) || exit 1
stop_broker
echo "test_readme: all checks passed"
