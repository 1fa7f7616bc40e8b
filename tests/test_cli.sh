#!/usr/bin/env bash
# tests/test_cli.sh — the `nagare` tool end to end, through pipes, against the
# real nagared on an ephemeral port with a temporary data directory.
#
#   NAGARED=build/broker/nagared NAGARE=build/client/cli/nagare bash tests/test_cli.sh
#
# Every check prints "ok - ..." or stops the script with "FAIL: ..." (and the
# broker's log tail). Whatever it started is killed and its files removed on
# exit, passed or failed.
set -euo pipefail

SUITE=cli
RUN_SECONDS=20
# shellcheck source=tests/cli_support.sh
. "$(dirname "$0")/cli_support.sh"

# ---- usage errors and help: exit 2 with one line, no broker needed ----

usage_errors() {
    local cases=(
        ""
        "bogus"
        "topic"
        "topic frob"
        "topic create t"
        "topic create t --partitions 0"
        "topic create t --partitions 2 --retention-ms soon"
        "topic create t --partitions 2 --replication-factor 0"
        "topic create t --partitions 2 --replication-factor 8"
        "topic list --replication-factor 1"
        "topic list --unclean-leader-election"
        "topic reassign t --replicas 1,2"
        "topic reassign t --partition 0"
        "topic reassign t --partition 0 --all-partitions --replicas 1"
        "topic reassign t --partition -1 --replicas 1"
        "topic reassign t --partition 0 --replicas 1,1"
        "topic reassign t --partition 0 --replicas 1,x"
        "topic reassign t --partition 0 --replicas 1,2,3,4,5,6,7,8"
        "topic create t --partitions 1 --replicas 1"
        "cluster"
        "cluster frob"
        "cluster describe extra"
        "cluster describe --broker 127.0.0.1:1,nohost"
        "topic list extra"
        "produce"
        "produce t --acks 2"
        "produce t --compression lz4"
        "produce t --key-separator ab"
        "produce t --header novalue"
        "produce t --partition -1"
        "produce t --nonsense"
        "consume"
        "consume t --from yesterday"
        "consume t --from 2026-11-28T12:00:00"
        "consume t --from 2026-02-30T12:00:00Z"
        "consume t --count 0"
        "consume t --format %x"
        "consume t --json --format %v"
        "consume t --broker nohost"
        "consume t --partition"
    )
    for c in "${cases[@]}"; do
        # shellcheck disable=SC2086
        run 2 $c
        expect_one_error_line "nagare" "nagare $c"
    done
    ok "usage errors exit 2 with one line on stderr (${#cases[@]} cases)"
    for c in "--help" "topic --help" "topic create --help" "topic reassign --help" \
        "produce --help" "consume --help" \
        "cluster --help" "cluster describe --help"; do
        # shellcheck disable=SC2086
        run 0 $c
        grep -q "usage: nagare" "$TMP/out" || fail "nagare $c prints no usage"
    done
    run 0 --version
    ok "--help and --version exit 0 with text on stdout"
}

# ---- a broker that is not there: exit 1, one line, fast ----

unreachable() {
    local t0 t1
    for c in "topic list" "topic create t --partitions 1" "consume t" "produce t"; do
        t0=$(date +%s%N)
        # shellcheck disable=SC2086
        IN=/dev/null run 1 $c --broker 127.0.0.1:1
        t1=$(date +%s%N)
        expect_one_error_line "127.0.0.1:1" "nagare $c against a closed port"
        [ $(((t1 - t0) / 1000000)) -lt 5000 ] || fail "nagare $c took $(((t1 - t0) / 1000000)) ms"
    done
    ok "an unreachable broker fails with exit 1 and one line within 5 s"
}

# ---- the common options before the command, and NAGARE_BROKER ----

global_options() {
    local port=${B[1]##*:} closed=127.0.0.1:1
    run 0 topic list "${B[@]}"
    cp "$TMP/out" "$TMP/want"
    run 0 --broker "127.0.0.1:$port" topic list
    expect_same "--broker before the command" "$TMP/out" "$TMP/want"
    run 0 --broker="127.0.0.1:$port" topic list
    expect_same "--broker=HOST:PORT before the command" "$TMP/out" "$TMP/want"
    NAGARE_BROKER="127.0.0.1:$port" run 0 topic list
    expect_same "NAGARE_BROKER when no --broker is given" "$TMP/out" "$TMP/want"
    NAGARE_BROKER=$closed run 0 --broker "127.0.0.1:$port" topic list
    expect_same "--broker before the command wins over NAGARE_BROKER" "$TMP/out" "$TMP/want"
    NAGARE_BROKER=$closed run 0 --broker $closed topic list "${B[@]}"
    expect_same "--broker after the command wins over the one before" "$TMP/out" "$TMP/want"
    run 0 topic list --broker "$closed,127.0.0.1:$port"
    expect_same "--broker HOST:PORT,HOST:PORT tries each in turn" "$TMP/out" "$TMP/want"
    NAGARE_BROKER="$closed,127.0.0.1:$port" run 0 topic list
    expect_same "NAGARE_BROKER takes a list too" "$TMP/out" "$TMP/want"
    for c in "--broker" "--broker nohost topic list" "--bogus topic list"; do
        # shellcheck disable=SC2086
        run 2 $c
        expect_one_error_line "nagare" "nagare $c"
    done
    NAGARE_BROKER=nohost run 2 topic list
    expect_one_error_line "NAGARE_BROKER" "a NAGARE_BROKER that is not HOST:PORT"
    ok "bad options before the command and a bad NAGARE_BROKER exit 2 with one line"
    for c in "--help topic" "--broker $closed --help produce" "help consume"; do
        # shellcheck disable=SC2086
        run 0 $c
        grep -q "usage: nagare ${c##* }" "$TMP/out" || fail "nagare $c prints no usage of ${c##* }"
        grep -q "NAGARE_BROKER" "$TMP/out" || fail "nagare $c does not name NAGARE_BROKER"
    done
    run 0 --help
    grep -q "NAGARE_BROKER" "$TMP/out" || fail "nagare --help does not name NAGARE_BROKER"
    ok "--help before the command gives the command's help; both name NAGARE_BROKER"
}

# ---- topics ----

topics() {
    run 0 topic create orders --partitions 1 --retention-ms forever "${B[@]}"
    grep -q "created topic orders" "$TMP/out" || fail "no confirmation of create"
    run 1 topic create orders --partitions 1 "${B[@]}"
    expect_one_error_line "orders" "creating an existing topic"
    run 0 topic create multi --partitions 4 "${B[@]}"
    run 0 topic create misc --partitions 1 "${B[@]}"
    run 0 topic list "${B[@]}"
    printf 'misc\nmulti\norders\n' >"$TMP/want"
    expect_same "topic list prints the names sorted" "$TMP/out" "$TMP/want"
    run 0 topic describe multi "${B[@]}"
    grep -q "^partitions *4$" "$TMP/out" || fail "describe: no partition count: $(cat "$TMP/out")"
    [ "$(grep -c -E '^[0-3] +0 +0 +0$' "$TMP/out")" -eq 4 ] ||
        fail "describe: wanted 4 empty partitions: $(cat "$TMP/out")"
    ok "topic describe shows the partitions and their offsets"
    run 1 topic describe nosuch "${B[@]}"
    expect_one_error_line "nosuch" "describing a missing topic"
    ok "topic create, list, describe"
}

# ---- a dead-letter topic before its first dead letter ----

dead_letters_not_yet() {
    run 0 consume orders.dlq "${B[@]}"
    [ ! -s "$TMP/out" ] || fail "consume orders.dlq printed: $(cat "$TMP/out")"
    expect_one_error_line "orders.dlq: no dead letters yet" "consume orders.dlq, not made yet"
    run 0 dlq redrive orders.dlq "${B[@]}"
    [ ! -s "$TMP/err" ] || fail "dlq redrive orders.dlq: $(cat "$TMP/err")"
    printf 'redrove 0 records from orders.dlq: no dead letters yet\n' >"$TMP/want"
    expect_same "dlq redrive of a dead-letter topic not made yet redrives 0" "$TMP/out" \
        "$TMP/want"
    run 1 consume orders.dlq --follow "${B[@]}"
    expect_one_error_line "no dead letters yet" "consume --follow of orders.dlq, not made yet"
    run 1 consume nosuch.dlq "${B[@]}"
    expect_one_error_line "unknown topic" "consume of the dead-letter topic of no topic"
    run 1 dlq redrive nosuch.dlq "${B[@]}"
    expect_one_error_line "unknown topic" "redrive of the dead-letter topic of no topic"
    run 0 topic list "${B[@]}"
    grep -q "orders.dlq" "$TMP/out" && fail "reading orders.dlq made the topic"
    ok "a dead-letter topic not made yet reads as empty; one without a source is unknown"
}

# ---- produce and consume ----

produce_consume() {
    for i in $(seq 0 99); do printf 'key-%d:value %d with spaces\n' "$i" "$i"; done >"$TMP/in"
    IN="$TMP/in" run 0 produce orders --key-separator : --header src=cli --header n=1 \
        --acks all "${B[@]}"
    expect_one_error_line "100 records" "produce summary"
    grep -q "0 failed" "$TMP/err" || fail "produce summary: $(cat "$TMP/err")"
    ok "produce sends 100 keyed lines with headers and prints a summary"

    cut -d: -f2- "$TMP/in" >"$TMP/want"
    run 0 consume orders --count 100 --from beginning "${B[@]}"
    expect_same "consume --count 100 --from beginning gives the values back" "$TMP/out" \
        "$TMP/want"
    run 0 consume orders "${B[@]}"
    expect_same "consume without --count stops at the end" "$TMP/out" "$TMP/want"

    sed 's/:/=/; s/$/ [src=cli,n=1]/' "$TMP/in" >"$TMP/want"
    run 0 consume orders --format '%k=%v [%h]\n' "${B[@]}"
    expect_same "--format with key, value and headers" "$TMP/out" "$TMP/want"
    for i in $(seq 0 99); do printf 'orders\t0\t%d\n' "$i"; done >"$TMP/want"
    run 0 consume orders --format '%t\t%p\t%o\n' "${B[@]}"
    expect_same "--format with topic, partition, offset and escapes" "$TMP/out" "$TMP/want"
    # shellcheck disable=SC1003 # a literal backslash, the \\ escape
    run 0 consume orders --format '100%% %v\\' --count 1 "${B[@]}"
    # shellcheck disable=SC1003
    printf '100%% value 0 with spaces\\' >"$TMP/want"
    expect_same "--format %% and \\\\" "$TMP/out" "$TMP/want"

    run 0 consume orders --count 1 --format '%T' "${B[@]}"
    local ts
    ts=$(cat "$TMP/out")
    run 0 consume orders --count 1 --json "${B[@]}"
    printf '{"topic":"orders","partition":0,"offset":0,"timestamp_ms":%s,"key":"key-0","value":"value 0 with spaces","headers":[{"key":"src","value":"cli"},{"key":"n","value":"1"}]}\n' \
        "$ts" >"$TMP/want"
    expect_same "--json prints one object per record" "$TMP/out" "$TMP/want"
}

json_escaping() {
    printf 'k\x01"\\:tab\there "quoted" back\\slash \x7f \xff caf\xc3\xa9\n' >"$TMP/in"
    printf 'no separator here\n' >>"$TMP/in"
    IN="$TMP/in" run 0 produce misc --key-separator : --header 'h"1=v\1' "${B[@]}"
    run 0 consume misc --json "${B[@]}"
    sed 's/"timestamp_ms":[0-9]*,//' "$TMP/out" >"$TMP/got"
    cat >"$TMP/want" <<'JSON'
{"topic":"misc","partition":0,"offset":0,"key":"k\u0001\"\\","value":"tab\there \"quoted\" back\\slash \u007f \u00ff café","headers":[{"key":"h\"1","value":"v\\1"}]}
{"topic":"misc","partition":0,"offset":1,"key":null,"value":"no separator here","headers":[{"key":"h\"1","value":"v\\1"}]}
JSON
    expect_same "--json escapes quotes, backslashes, control and non-UTF-8 bytes" "$TMP/got" \
        "$TMP/want"
}

replay() {
    run 0 consume orders --from 40 --count 5 "${B[@]}"
    for i in $(seq 40 44); do printf 'value %d with spaces\n' "$i"; done >"$TMP/want"
    expect_same "--from OFFSET --count replays from the middle" "$TMP/out" "$TMP/want"
    run 0 consume orders --from 95 "${B[@]}"
    for i in $(seq 95 99); do printf 'value %d with spaces\n' "$i"; done >"$TMP/want"
    expect_same "--from OFFSET reads to the end" "$TMP/out" "$TMP/want"
    run 0 consume orders --from 100000 "${B[@]}"
    [ ! -s "$TMP/out" ] || fail "--from past the end printed records"
    run 0 consume orders --from end "${B[@]}"
    [ ! -s "$TMP/out" ] || fail "--from end printed records"
    ok "--from past the end and --from end print nothing and exit 0"

    sleep 0.05
    local iso epoch
    iso=$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)
    epoch=$(date +%s%3N)
    sleep 0.05
    for i in $(seq 0 9); do printf 'late %d\n' "$i"; done >"$TMP/in"
    IN="$TMP/in" run 0 produce orders "${B[@]}"
    run 0 consume orders --from "$iso" "${B[@]}"
    expect_same "--from ISO-8601 TIME replays from a timestamp" "$TMP/out" "$TMP/in"
    run 0 consume orders --from "@$epoch" --count 10 "${B[@]}"
    expect_same "--from @EPOCH-MS replays from a timestamp" "$TMP/out" "$TMP/in"
    local offset_iso
    offset_iso=$(date -u -d "@$((epoch / 1000 - 3600))" +%Y-%m-%dT%H:%M:%S)
    offset_iso="$offset_iso.$(printf '%03d' $((epoch % 1000)))-01:00"
    run 0 consume orders --from "$offset_iso" "${B[@]}"
    expect_same "--from TIME with a zone offset" "$TMP/out" "$TMP/in"
    run 0 consume orders --from 2099-01-01T00:00:00Z "${B[@]}"
    [ ! -s "$TMP/out" ] || fail "--from a future TIME printed records"
    ok "--from a TIME after every record prints nothing"
}

partitions() {
    for i in $(seq 0 399); do printf 'user-%d,event %d\n' $((i % 23)) "$i"; done >"$TMP/in"
    IN="$TMP/in" run 0 produce multi --key-separator , --compression zstd --acks 1 "${B[@]}"
    run 0 consume multi --format '%k,%v\n' "${B[@]}"
    sort "$TMP/out" >"$TMP/got"
    sort "$TMP/in" >"$TMP/want"
    expect_same "all 4 partitions read back (zstd, acks 1)" "$TMP/got" "$TMP/want"
    run 0 consume multi --format '%k %p\n' "${B[@]}"
    [ "$(sort -u "$TMP/out" | wc -l)" -eq 23 ] || fail "a key landed in two partitions"
    [ "$(cut -d' ' -f2 "$TMP/out" | sort -u | wc -l)" -gt 1 ] || fail "all keys in one partition"
    ok "the same key always lands in the same partition"
    run 0 consume multi --format '%p %v\n' "${B[@]}"
    # Per partition, events appear in the order they were sent.
    for p in 0 1 2 3; do
        grep "^$p " "$TMP/out" | sed 's/.*event //' >"$TMP/got"
        sort -n "$TMP/got" >"$TMP/want"
        expect_same "partition $p keeps its order" "$TMP/got" "$TMP/want"
    done
    run 0 consume multi --partition 2 --format '%p\n' "${B[@]}"
    if [ ! -s "$TMP/out" ] || [ "$(sort -u "$TMP/out")" != "2" ]; then
        fail "--partition 2 read other partitions or none"
    fi
    ok "--partition reads one partition"
    run 1 consume multi --partition 9 "${B[@]}"
    expect_one_error_line "partition 9" "consuming a missing partition"
    IN="$TMP/in" run 1 produce orders --partition 7 "${B[@]}"
    grep -q "orders" "$TMP/err" || fail "producing to a missing partition: $(cat "$TMP/err")"
    ok "a missing partition fails with exit 1"
}

# The codec of the first batch in partition 0 of TOPIC: bits 0-2 of the
# attributes' low byte, byte 22 (docs/storage-format.md).
first_codec() {
    echo $(($(od -An -tu1 -j 22 -N1 "$TMP/data/topics/$1/0/00000000000000000000.log") & 7))
}

compression() {
    for i in $(seq 0 199); do printf 'the same words again and again, %d\n' "$i"; done >"$TMP/in"
    run 0 topic create packed --partitions 1 "${B[@]}"
    run 0 topic create plain --partitions 1 "${B[@]}"
    IN="$TMP/in" run 0 produce packed "${B[@]}"
    IN="$TMP/in" run 0 produce plain --compression none "${B[@]}"
    for t in packed plain; do
        run 0 consume "$t" "${B[@]}"
        expect_same "$t reads back" "$TMP/out" "$TMP/in"
    done
    [ "$(first_codec packed)" = 4 ] || fail "produce wrote codec $(first_codec packed), not zstd (4), by default"
    [ "$(first_codec plain)" = 0 ] || fail "produce --compression none wrote codec $(first_codec plain)"
    ok "produce writes zstd by default, the records as they are with --compression none"
}

limits_and_pipes() {
    run 0 topic create limits --partitions 1 "${B[@]}"
    {
        printf 'before\n'
        head -c 1048577 /dev/zero | tr '\0' x
        printf '\nafter\n'
    } >"$TMP/in"
    IN="$TMP/in" run 1 produce limits "${B[@]}"
    grep -q "line 2" "$TMP/err" || fail "the long line is not named: $(cat "$TMP/err")"
    grep -q "2 records.*1 failed" "$TMP/err" || fail "long line summary: $(cat "$TMP/err")"
    run 0 consume limits "${B[@]}"
    printf 'before\nafter\n' >"$TMP/want"
    expect_same "a line past 1 MiB is refused, the others go" "$TMP/out" "$TMP/want"
    head -c 1048576 /dev/zero | tr '\0' y >"$TMP/in"
    IN="$TMP/in" run 0 produce limits "${B[@]}"
    run 0 consume limits --from 2 "${B[@]}"
    [ "$(wc -c <"$TMP/out")" -eq 1048577 ] || fail "a 1 MiB line did not come back whole"
    ok "a line of exactly 1 MiB goes through"

    for i in $(seq 1 3000); do printf '%0100d\n' "$i"; done >"$TMP/in"
    IN="$TMP/in" run 0 produce limits "${B[@]}"
    local rc
    set +o pipefail
    timeout 20 "$NAGARE" consume limits --from beginning --follow "${B[@]}" 2>"$TMP/err" |
        head -n 1 >/dev/null
    rc=${PIPESTATUS[0]}
    set -o pipefail
    [ "$rc" -eq 0 ] || fail "consume | head -1 ended with status $rc: $(cat "$TMP/err")"
    [ ! -s "$TMP/err" ] || fail "consume | head -1 wrote to stderr: $(cat "$TMP/err")"
    ok "a closed stdout ends consume --follow quietly with status 0"
}

# Producing a file from a terminal draws a progress line on stderr, and
# erases it before the summary; through pipes, as everywhere above, stderr
# holds the summary alone (expect_one_error_line).
progress_on_a_terminal() {
    seq 1 20000 >"$TMP/in"
    local size
    size=$(wc -c <"$TMP/in")
    timeout "$RUN_SECONDS" script -qec "$NAGARE produce progress ${B[*]} <$TMP/in" /dev/null \
        >"$TMP/tty" 2>&1 || fail "produce on a terminal: $(tail -c 300 "$TMP/tty" | cat -A)"
    grep -q -a -F $'\r\033[Kproducing: ' "$TMP/tty" ||
        fail "no progress line on a terminal: $(head -c 300 "$TMP/tty" | cat -A)"
    grep -q -a -F " of $(awk -v b="$size" 'BEGIN { printf "%.1f KiB", b / 1024 }') (" "$TMP/tty" ||
        fail "the progress line does not give the file's size: $(head -c 300 "$TMP/tty" | cat -A)"
    local after
    after=$(awk 'BEGIN { RS = "\033\\[K" } { last = $0 } END { printf "%s", last }' "$TMP/tty")
    [[ "$after" == "nagare: produce progress: 20000 records"* ]] ||
        fail "the line is not erased before the summary: $(printf '%s' "$after" | cat -A)"
    run 0 topic describe progress "${B[@]}"
    grep -q -E '^0 +0 +20000' "$TMP/out" || fail "not 20000 records: $(cat "$TMP/out")"
    ok "produce from a terminal shows its progress, erased before the summary"
}

follow() {
    # From the end offset as it is now, named: whenever the consumer gets
    # there, before or after the produce, the two new records are what it
    # must print (--from end would race the produce).
    run 0 topic describe misc "${B[@]}"
    local end pid
    end=$(awk '$1 == "0" && NF == 4 {print $3}' "$TMP/out")
    [ -n "$end" ] || fail "topic describe misc: $(cat "$TMP/out")"
    timeout 20 "$NAGARE" consume misc --from "$end" --follow --count 2 "${B[@]}" \
        >"$TMP/follow" 2>"$TMP/follow.err" &
    pid=$!
    printf 'new 1\nnew 2\n' >"$TMP/in"
    IN="$TMP/in" run 0 produce misc "${B[@]}"
    local rc=0
    wait "$pid" || rc=$?
    [ "$rc" -eq 0 ] || fail "consume --follow --count 2 ended with $rc: $(cat "$TMP/follow.err")"
    expect_same "--follow waits for the records produced after it started" "$TMP/follow" \
        "$TMP/in"
}

# ---- a single broker's cluster view and replication factor ----

cluster() {
    run 1 topic create copies --partitions 1 --replication-factor 3 "${B[@]}"
    expect_one_error_line "replication factor 3 needs a cluster" "a replicated topic on one broker"
    run 1 topic describe copies "${B[@]}"
    run 0 topic create single --partitions 2 --replication-factor 1 "${B[@]}"
    run 0 topic describe single "${B[@]}"
    grep -q "^replication *1$" "$TMP/out" || fail "describe: no replication: $(cat "$TMP/out")"
    ok "topic create --replication-factor: 1 on a single broker, more needs a cluster"
    run 0 cluster describe "${B[@]}"
    local port=${B[1]##*:}
    grep -q "^  0 *127.0.0.1:$port  (controller)$" "$TMP/out" ||
        fail "cluster describe: no broker 0: $(cat "$TMP/out")"
    grep -q "^controller 0$" "$TMP/out" || fail "cluster describe: no controller: $(cat "$TMP/out")"
    [ "$(grep -c -E '^single +[01] +0 +0 0 +0 *$' "$TMP/out")" -eq 2 ] ||
        fail "cluster describe: wanted single's 2 partitions led by 0: $(cat "$TMP/out")"
    grep -q "UNDER-REPLICATED" "$TMP/out" && fail "cluster describe flags a full ISR"
    grep -q "^[0-9]* partitions, 0 under-replicated, 0 being reassigned$" "$TMP/out" ||
        fail "cluster describe: no summary: $(cat "$TMP/out")"
    ok "cluster describe shows a single broker as broker 0, leader of everything"
    run 1 topic create unclean --partitions 1 --unclean-leader-election "${B[@]}"
    expect_one_error_line "unclean-leader-election needs a cluster" "unclean election on one broker"
    run 1 topic describe unclean "${B[@]}"
    ok "topic create --unclean-leader-election is refused by a single broker"
    run 1 topic reassign single --partition 0 --replicas 0 "${B[@]}"
    expect_one_error_line "reassignment needs a cluster" "a reassignment on one broker"
    run 1 topic reassign single --all-partitions --replicas 0 "${B[@]}"
    expect_one_error_line "reassignment needs a cluster" "every partition reassigned on one broker"
    run 1 topic reassign nosuch --all-partitions --replicas 0 "${B[@]}"
    expect_one_error_line "nosuch" "reassigning a topic that does not exist"
    ok "topic reassign is refused by a single broker"
    run 0 topic delete single "${B[@]}"
}

delete() {
    run 0 topic delete misc "${B[@]}"
    run 1 topic describe misc "${B[@]}"
    run 1 consume misc "${B[@]}"
    expect_one_error_line "misc" "consuming a deleted topic"
    ok "topic delete"
}

usage_errors
unreachable
start_broker
topics
global_options
dead_letters_not_yet
produce_consume
json_escaping
replay
partitions
compression
limits_and_pipes
progress_on_a_terminal
follow
cluster
delete
stop_broker
echo "test_cli: all $CHECKS checks passed"
