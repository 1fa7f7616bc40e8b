#!/usr/bin/env bash
# tests/test_cli_groups.sh — the `nagare` tool's group commands end to end:
# consume --group / --share / --reject, group list|describe|reset-offsets|
# delete and dlq redrive, through pipes, against the real nagared on an
# ephemeral port with a temporary data directory.
#
#   NAGARED=build/broker/nagared NAGARE=build/client/cli/nagare bash tests/test_cli_groups.sh
#
# Every check prints "ok - ..." or stops the script with "FAIL: ..." (and the
# broker's log tail). Whatever it started is killed and its files removed on
# exit, passed or failed.
set -euo pipefail

SUITE=cli-groups
RUN_SECONDS=30
# shellcheck source=tests/cli_support.sh
. "$(dirname "$0")/cli_support.sh"

# wait_lines FILE N: waits up to 20 s until FILE has at least N lines.
wait_lines() {
    for _ in $(seq 1 400); do
        [ "$(wc -l <"$1" 2>/dev/null || echo 0)" -ge "$2" ] && return 0
        sleep 0.05
    done
    fail "$1 has $(wc -l <"$1") lines, wanted $2"
}

# wait_total FILE1 FILE2 N: waits up to 20 s until the two files have N
# lines between them.
wait_total() {
    for _ in $(seq 1 400); do
        [ $(($(wc -l <"$1") + $(wc -l <"$2"))) -ge "$3" ] && return 0
        sleep 0.05
    done
    fail "$1 and $2 have $(($(wc -l <"$1") + $(wc -l <"$2"))) lines, wanted $3"
}

# wait_committed GROUP TOPIC N: waits up to 20 s until `group describe`
# shows N partitions of TOPIC committed at their end.
wait_committed() {
    for _ in $(seq 1 200); do
        if timeout 10 "$NAGARE" group describe "$1" "${B[@]}" >"$TMP/desc" 2>/dev/null &&
            [ "$(awk -v t="$2" '$1 == t && $3 == $4' "$TMP/desc" | wc -l)" -eq "$3" ]; then
            return 0
        fi
        sleep 0.1
    done
    fail "group $1 never committed $2 to the end of $3 partitions: $(cat "$TMP/desc")"
}

# wait_describe GROUP PATTERN: waits up to 20 s until `group describe`
# prints a line matching PATTERN.
wait_describe() {
    for _ in $(seq 1 200); do
        if timeout 10 "$NAGARE" group describe "$1" "${B[@]}" >"$TMP/desc" 2>/dev/null &&
            grep -E -q "$2" "$TMP/desc"; then
            return 0
        fi
        sleep 0.1
    done
    fail "group describe $1 never showed '$2': $(cat "$TMP/desc")"
}

# stop_bg PID: SIGTERM (a clean stop: commits, leaves), then waits.
stop_bg() {
    kill -TERM "$1"
    local rc=0
    wait "$1" || rc=$?
    [ "$rc" -eq 0 ] || fail "a background consumer ended with status $rc"
}

# produce_lines TOPIC FROM TO: lines "key-i,value i" for i in FROM..TO.
produce_lines() {
    for i in $(seq "$2" "$3"); do printf 'key-%d,value %d\n' "$i" "$i"; done >"$TMP/in"
    IN="$TMP/in" run 0 produce "$1" --key-separator , "${B[@]}"
}

# ---- usage errors and help: exit 2 with one line, no broker needed ----

usage_errors() {
    local cases=(
        "group"
        "group frob"
        "group list extra"
        "group describe"
        "group describe a b"
        "group delete"
        "group reset-offsets g"
        "group reset-offsets g --to yesterday"
        "group reset-offsets g --to 2026-02-30T12:00:00Z"
        "group describe g --to earliest"
        "group list --topic t"
        "dlq"
        "dlq frob"
        "dlq redrive"
        "dlq redrive a.dlq b.dlq"
        "dlq redrive a.dlq --broker nohost"
        "consume t --group g --share h"
        "consume t --reject"
        "consume t --group g --reject"
        "consume t --group g --partition 1"
        "consume t --share g --partition 0"
        "consume t --share g --from end"
        "consume t --group g --from 5"
        "consume t --group g --from 2026-11-28T12:00:00Z"
        "consume t --group"
    )
    for c in "${cases[@]}"; do
        # shellcheck disable=SC2086
        run 2 $c
        expect_one_error_line "nagare" "nagare $c"
    done
    run 2 consume t --group ""
    expect_one_error_line "group id" "an empty group id"
    ok "usage errors exit 2 with one line on stderr ($((${#cases[@]} + 1)) cases)"
    for c in "--help" "group --help" "group describe --help" "group reset-offsets --help" \
        "dlq --help" "dlq redrive --help" "consume --help"; do
        # shellcheck disable=SC2086
        run 0 $c
        grep -q "usage: nagare" "$TMP/out" || fail "nagare $c prints no usage"
    done
    grep -q -- "--share G" "$TMP/out" || fail "consume --help does not document --share"
    run 0 --help
    grep -q "group" "$TMP/out" && grep -q "dlq" "$TMP/out" || fail "--help lists no group or dlq"
    ok "--help documents the group commands"
}

# ---- a broker that is not there: exit 1, one line, fast ----

unreachable() {
    local t0 t1
    for c in "group list" "group describe g" "group delete g" \
        "group reset-offsets g --to earliest" "dlq redrive t.dlq" "consume t --group g" \
        "consume t --share g"; do
        t0=$(date +%s%N)
        # shellcheck disable=SC2086
        run 1 $c --broker 127.0.0.1:1
        t1=$(date +%s%N)
        expect_one_error_line "127.0.0.1:1" "nagare $c against a closed port"
        [ $(((t1 - t0) / 1000000)) -lt 5000 ] || fail "nagare $c took $(((t1 - t0) / 1000000)) ms"
    done
    ok "an unreachable broker fails the group commands with exit 1 and one line within 5 s"
}

# ---- consume --group ----

group_consume() {
    run 0 topic create gt --partitions 3 "${B[@]}"
    produce_lines gt 0 29
    cut -d, -f2 "$TMP/in" | sort >"$TMP/want"
    run 0 consume gt --group g1 "${B[@]}"
    sort "$TMP/out" >"$TMP/got"
    expect_same "consume --group reads every partition of a new group" "$TMP/got" "$TMP/want"
    run 0 consume gt --group g1 "${B[@]}"
    [ ! -s "$TMP/out" ] || fail "a second consume --group printed again: $(head -3 "$TMP/out")"
    ok "what consume --group printed is committed: the next run prints nothing"

    produce_lines gt 30 39
    run 0 consume gt --group g1 --count 4 "${B[@]}"
    sort "$TMP/out" >"$TMP/got1"
    [ "$(wc -l <"$TMP/got1")" -eq 4 ] || fail "--count 4 printed $(wc -l <"$TMP/got1")"
    run 0 consume gt --group g1 "${B[@]}"
    sort "$TMP/out" "$TMP/got1" >"$TMP/got"
    cut -d, -f2 "$TMP/in" | sort >"$TMP/want"
    expect_same "--count N commits exactly the N printed; the rest come next" "$TMP/got" \
        "$TMP/want"

    run 0 consume gt --group fresh --from end "${B[@]}"
    [ ! -s "$TMP/out" ] || fail "--from end printed old records"
    produce_lines gt 40 44
    run 0 consume gt --group fresh "${B[@]}"
    sort "$TMP/out" >"$TMP/got"
    cut -d, -f2 "$TMP/in" | sort >"$TMP/want"
    expect_same "--group --from end starts a new group at the end" "$TMP/got" "$TMP/want"
    run 0 consume gt --group g1 --json "${B[@]}"
    [ "$(wc -l <"$TMP/out")" -eq 5 ] && grep -q '"topic":"gt"' "$TMP/out" ||
        fail "--group --json: $(cat "$TMP/out")"
    ok "--group with --json"
}

# Two members share the partitions: together they print each record once.
group_members() {
    timeout 60 "$NAGARE" consume gt --group g2 --follow "${B[@]}" >"$TMP/a" 2>"$TMP/a.err" &
    local a=$!
    BG_PIDS+=("$a")
    wait_lines "$TMP/a" 45
    wait_committed g2 gt 3 # it commits within a second of going idle
    timeout 60 "$NAGARE" consume gt --group g2 --follow "${B[@]}" >"$TMP/b" 2>"$TMP/b.err" &
    local b=$!
    BG_PIDS+=("$b")
    wait_describe g2 "^members +2$"
    # both hold partitions: one member lists two, the other one
    wait_describe g2 "^member-[^ ]+ +gt:[0-9]+$"
    run 0 group describe g2 "${B[@]}"
    [ "$(grep -c -E '^member-' "$TMP/out")" -eq 2 ] || fail "describe: $(cat "$TMP/out")"
    run 1 group reset-offsets g2 --to earliest "${B[@]}"
    expect_one_error_line "g2" "resetting a group with members"
    run 1 group delete g2 "${B[@]}"
    expect_one_error_line "g2" "deleting a group with members"
    local before_a before_b
    before_a=$(wc -l <"$TMP/a")
    before_b=$(wc -l <"$TMP/b")
    [ "$before_b" -eq 0 ] || fail "the second member read again what the first committed"
    produce_lines gt 100 159
    wait_total "$TMP/a" "$TMP/b" $((before_a + 60))
    sleep 0.5
    { tail -n +$((before_a + 1)) "$TMP/a"; cat "$TMP/b"; } | sort >"$TMP/got"
    cut -d, -f2 "$TMP/in" | sort >"$TMP/want"
    expect_same "two members of a group print each new record once between them" "$TMP/got" \
        "$TMP/want"
    [ -s "$TMP/b" ] || fail "the second member got nothing"
    stop_bg "$a"
    stop_bg "$b"
    BG_PIDS=()
    run 0 group describe g2 "${B[@]}"
    grep -q -E "^members +0$" "$TMP/out" || fail "members left: $(cat "$TMP/out")"
    [ "$(awk '$1 == "gt" && $5 == 0' "$TMP/out" | wc -l)" -eq 3 ] ||
        fail "lag after SIGTERM: $(cat "$TMP/out")"
    ok "SIGTERM commits and leaves; describe shows no lag"
}

# ---- group list, describe, reset-offsets, delete ----

group_admin() {
    run 0 group list "${B[@]}"
    grep -q -E "^g1 +consumer +0$" "$TMP/out" || fail "group list: $(cat "$TMP/out")"
    grep -q -E "^fresh +consumer +0$" "$TMP/out" || fail "group list: $(cat "$TMP/out")"
    [ "$(head -1 "$TMP/out" | awk '{print $1}')" = "group" ] || fail "no header: $(cat "$TMP/out")"
    ok "group list shows the groups, their kind and members"
    run 0 consume gt --group g1 "${B[@]}" # catch up with what g2's test produced
    run 0 group describe g1 "${B[@]}"
    grep -q -E "^kind +consumer$" "$TMP/out" || fail "describe: $(cat "$TMP/out")"
    [ "$(awk '$1 == "gt"' "$TMP/out" | wc -l)" -eq 3 ] || fail "describe: $(cat "$TMP/out")"
    awk '$1 == "gt" && ($3 != $4 || $5 != 0 || $6 != 0) {bad=1} END {exit bad}' "$TMP/out" ||
        fail "g1 should have no lag: $(cat "$TMP/out")"
    ok "group describe shows committed = end and no lag"

    run 0 group reset-offsets g1 --to earliest "${B[@]}"
    [ "$(awk '$1 == "gt" && $3 == 0' "$TMP/out" | wc -l)" -eq 3 ] ||
        fail "reset to earliest: $(cat "$TMP/out")"
    run 0 group describe g1 "${B[@]}"
    awk '$1 == "gt" && ($3 != 0 || $5 != $4 || $6 <= 0) {bad=1} END {exit bad}' "$TMP/out" ||
        fail "after the reset, lag should be the whole log: $(cat "$TMP/out")"
    run 0 consume gt --group g1 "${B[@]}"
    [ "$(wc -l <"$TMP/out")" -eq 105 ] || fail "after reset to earliest: $(wc -l <"$TMP/out")"
    ok "reset-offsets --to earliest: describe shows the lag, the group reads everything again"

    run 0 group reset-offsets g1 --to 3 --topic gt "${B[@]}"
    [ "$(awk '$1 == "gt" && $3 == 3' "$TMP/out" | wc -l)" -eq 3 ] ||
        fail "reset to 3: $(cat "$TMP/out")"
    run 0 group reset-offsets g1 --to latest --topic gt "${B[@]}"
    run 0 consume gt --group g1 "${B[@]}"
    [ ! -s "$TMP/out" ] || fail "after reset to latest the group read records"
    sleep 0.05
    local t
    t=$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)
    sleep 0.05
    produce_lines gt 200 205
    run 0 group reset-offsets g1 --to "$t" "${B[@]}"
    run 0 consume gt --group g1 "${B[@]}"
    sort "$TMP/out" >"$TMP/got"
    cut -d, -f2 "$TMP/in" | sort >"$TMP/want"
    expect_same "reset-offsets --to TIME: the group reads from that time" "$TMP/got" "$TMP/want"
    run 1 group reset-offsets g1 --to earliest --topic nosuch "${B[@]}"
    expect_one_error_line "nosuch" "resetting on a missing topic"

    run 0 group delete g1 "${B[@]}"
    grep -q "deleted group g1" "$TMP/out" || fail "delete: $(cat "$TMP/out")"
    run 1 group describe g1 "${B[@]}"
    expect_one_error_line "g1" "describing a deleted group"
    run 1 group delete g1 "${B[@]}"
    expect_one_error_line "g1" "deleting a deleted group"
    run 1 group reset-offsets g1 --to earliest "${B[@]}"
    expect_one_error_line "g1" "resetting a group without offsets and without --topic"
    run 1 consume nosuch --group g1 "${B[@]}"
    expect_one_error_line "nosuch" "consume --group of a missing topic"
    ok "group delete, and errors for missing groups and topics"
}

# ---- consume --share, --reject, dlq redrive ----

share_consume() {
    run 0 topic create q --partitions 1 "${B[@]}"
    produce_lines q 0 19
    run 0 consume q --share s1 --count 5 "${B[@]}"
    cp "$TMP/out" "$TMP/got1"
    [ "$(wc -l <"$TMP/got1")" -eq 5 ] || fail "--share --count 5 printed $(wc -l <"$TMP/got1")"
    run 0 consume q --share s1 "${B[@]}"
    cat "$TMP/got1" "$TMP/out" | sort >"$TMP/got"
    cut -d, -f2 "$TMP/in" | sort >"$TMP/want"
    expect_same "consume --share accepts what it prints; the next member gets the rest" \
        "$TMP/got" "$TMP/want"
    run 0 consume q --share s1 "${B[@]}"
    [ ! -s "$TMP/out" ] || fail "accepted records came again: $(head -3 "$TMP/out")"
    ok "accepted records are not delivered again"

    timeout 60 "$NAGARE" consume q --share s2 --follow "${B[@]}" >"$TMP/a" 2>"$TMP/a.err" &
    local a=$!
    timeout 60 "$NAGARE" consume q --share s2 --follow "${B[@]}" >"$TMP/b" 2>"$TMP/b.err" &
    local b=$!
    BG_PIDS+=("$a" "$b")
    wait_total "$TMP/a" "$TMP/b" 20 # a new group: it starts at the beginning
    produce_lines q 20 419
    wait_total "$TMP/a" "$TMP/b" 420
    sleep 0.3
    stop_bg "$a"
    stop_bg "$b"
    BG_PIDS=()
    sort "$TMP/a" "$TMP/b" >"$TMP/got"
    for i in $(seq 0 419); do printf 'value %d\n' "$i"; done | sort >"$TMP/want"
    expect_same "two share members of a new group print each record once between them" \
        "$TMP/got" "$TMP/want"
}

dead_letters() {
    run 0 topic create jobs --partitions 1 "${B[@]}"
    printf 'job-1,fine\njob-2,poison\n' >"$TMP/in"
    IN="$TMP/in" run 0 produce jobs --key-separator , --header src=cli "${B[@]}"
    run 0 consume jobs --share w --count 1 "${B[@]}"
    [ "$(cat "$TMP/out")" = "fine" ] || fail "first job: $(cat "$TMP/out")"
    run 0 consume jobs --share w --reject "${B[@]}"
    [ "$(cat "$TMP/out")" = "poison" ] || fail "--reject printed: $(cat "$TMP/out")"
    for _ in $(seq 1 100); do
        timeout 10 "$NAGARE" consume jobs.dlq "${B[@]}" >"$TMP/out" 2>/dev/null && [ -s "$TMP/out" ] &&
            break
        sleep 0.1
    done
    run 0 consume jobs.dlq --format '%k=%v [%h]\n' "${B[@]}"
    printf 'job-2=poison [src=cli,nagare.dlq.topic=jobs,nagare.dlq.partition=0,nagare.dlq.offset=1,nagare.dlq.delivery-count=1,nagare.dlq.reason=rejected]\n' \
        >"$TMP/want"
    expect_same "--reject sends the record to TOPIC.dlq with its headers" "$TMP/out" "$TMP/want"
    run 0 consume jobs --share w "${B[@]}"
    [ ! -s "$TMP/out" ] || fail "a dead letter was delivered again: $(cat "$TMP/out")"

    run 0 dlq redrive jobs.dlq "${B[@]}"
    grep -q "redrove 1 record from jobs.dlq" "$TMP/out" || fail "redrive: $(cat "$TMP/out")"
    run 0 consume jobs --share w --format '%k=%v [%h]\n' "${B[@]}"
    printf 'job-2=poison [src=cli]\n' >"$TMP/want"
    expect_same "dlq redrive brings the record back, without the dead-letter headers" \
        "$TMP/out" "$TMP/want"
    run 0 dlq redrive jobs.dlq "${B[@]}"
    grep -q "redrove 0 records from jobs.dlq" "$TMP/out" || fail "second redrive: $(cat "$TMP/out")"
    run 1 dlq redrive nosuch.dlq "${B[@]}"
    expect_one_error_line "nosuch.dlq" "redriving a missing topic"
    run 1 dlq redrive jobs "${B[@]}"
    expect_one_error_line "jobs" "redriving a topic that is not a dead-letter topic"
    run 1 consume nosuch --share w "${B[@]}"
    expect_one_error_line "nosuch" "consume --share of a missing topic"
    ok "dlq redrive: once, then nothing; errors for bad topics"
}

# A redrive from a terminal goes in steps and shows its progress on
# stderr, erased before the summary; through pipes (above) stderr stays
# empty. The dead letters are written as a share group's copies are (the
# two headers redrive reads), to a dead-letter topic made by hand.
redrive_progress() {
    run 0 topic create bulk --partitions 1 "${B[@]}"
    run 0 topic create bulk.dlq --partitions 1 "${B[@]}"
    seq 1 3000 >"$TMP/in"
    IN="$TMP/in" run 0 produce bulk.dlq --header nagare.dlq.topic=bulk \
        --header nagare.dlq.partition=0 "${B[@]}"
    timeout "$RUN_SECONDS" script -qec \
        "$NAGARE dlq redrive bulk.dlq --step-records 500 ${B[*]}" /dev/null >"$TMP/tty" 2>&1 ||
        fail "redrive on a terminal: $(tail -c 300 "$TMP/tty" | cat -A)"
    grep -q -a -F $'\r\033[Kredriving: 500 of 3000 records (16%)' "$TMP/tty" ||
        fail "no progress line after the first step: $(head -c 300 "$TMP/tty" | cat -A)"
    local after
    after=$(awk 'BEGIN { RS = "\033\\[K" } { last = $0 } END { printf "%s", last }' "$TMP/tty")
    [[ "$after" == "redrove 3000 records from bulk.dlq"* ]] ||
        fail "the line is not erased before the summary: $(printf '%s' "$after" | cat -A)"
    grep -c -a "redrive of bulk.dlq: started" "$TMP/nagared.log" >"$TMP/n"
    [ "$(cat "$TMP/n")" -eq 6 ] || fail "not in 6 steps of 500: $(cat "$TMP/n") requests"
    run 0 topic describe bulk "${B[@]}"
    grep -q -E '^0 +0 +3000' "$TMP/out" || fail "not 3000 records back: $(cat "$TMP/out")"
    run 0 dlq redrive bulk.dlq "${B[@]}"
    grep -q "redrove 0 records from bulk.dlq" "$TMP/out" || fail "again: $(cat "$TMP/out")"
    run 2 dlq redrive bulk.dlq --step-records 0 "${B[@]}"
    expect_one_error_line "--step-records" "a step of no records"
    ok "dlq redrive on a terminal shows its steps' progress, erased before the summary"
}

usage_errors
unreachable
start_broker
redrive_progress
group_consume
group_members
group_admin
share_consume
dead_letters
stop_broker
echo "test_cli_groups: all $CHECKS checks passed"
