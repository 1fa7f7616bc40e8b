#!/usr/bin/env bash
# tests/test_format1_dir.sh — a data directory written in batch format 1 (by
# nagared before format 2: tests/fixtures/format1, made by the code of that
# time) opens, is upgraded to format 2 (storage/format1.h), and serves every
# record it held, with the group offsets it had; new records go on from it.
#
#   NAGARED=build/broker/nagared NAGARE=build/client/cli/nagare bash tests/test_format1_dir.sh
set -euo pipefail

SUITE=format1_dir
RUN_SECONDS=20
FIXTURE="$(cd "$(dirname "$0")" && pwd)/fixtures/format1"
# shellcheck source=tests/cli_support.sh
. "$(dirname "$0")/cli_support.sh"

FMT='%p %o %T %k %v %h\n'

# The byte at OFFSET of FILE, as a decimal number.
byte_at() {
    od -An -tu1 -j "$2" -N1 "$1" | tr -d ' '
}

cp -r "$FIXTURE/data" "$TMP/data"
segments=$(find "$TMP/data" -name '*.log' -size +0 | sort)
[ -n "$segments" ] || fail "the fixture has no segments"
for s in $segments; do
    [ "$(byte_at "$s" 20)" = 1 ] || fail "$s: the fixture's first batch is not format 1"
done
nsegments=$(echo "$segments" | wc -l)
ok "fixture: $nsegments segments, every first batch format 1"

# Before any broker start, --verify finds the format-1 directory sound (not
# damaged), says each segment is format 1 and will be upgraded, and still
# finds damage in one: as a range, named as format 1.
"$NAGARED" --verify "$TMP/data" >"$TMP/verify1.out" 2>&1 || fail "nagared --verify on format 1: $(cat "$TMP/verify1.out")"
grep -q '; 0 problems$' "$TMP/verify1.out" || fail "--verify on format 1: $(cat "$TMP/verify1.out")"
[ "$(grep -c '^FORMAT1 .*the next broker start upgrades it$' "$TMP/verify1.out")" = "$nsegments" ] ||
    fail "--verify did not name every format-1 segment: $(cat "$TMP/verify1.out")"
grep -q "^$nsegments segments in batch format 1" "$TMP/verify1.out" || fail "no format-1 summary: $(cat "$TMP/verify1.out")"
ok "nagared --verify: the format-1 directory is sound, every segment to be upgraded"
cp -r "$TMP/data" "$TMP/damaged"
damaged="$TMP/damaged/topics/f1/0/00000000000000000000.log"
printf '\xff' | dd of="$damaged" bs=1 seek=100 conv=notrunc status=none
rc=0
"$NAGARED" --verify "$TMP/damaged" >"$TMP/verify2.out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "--verify on a damaged format-1 segment exited $rc: $(cat "$TMP/verify2.out")"
grep -q '^BAD .*/topics/f1/0/00000000000000000000.log (format 1, as its upgrade will hold it) at bytes \[0, [1-9][0-9]*) (offsets \[0, [1-9][0-9]*)).*a damaged range' "$TMP/verify2.out" ||
    fail "--verify did not report the damaged range: $(cat "$TMP/verify2.out")"
grep -q '; 1 problem$' "$TMP/verify2.out" || fail "--verify on damage: $(cat "$TMP/verify2.out")"
cmp -s "$damaged" "$TMP/data/topics/f1/0/00000000000000000000.log" && fail "the damage did not take"
[ "$(byte_at "$damaged" 20)" = 1 ] && [ ! -e "$damaged.format2" ] || fail "--verify wrote the data directory"
ok "nagared --verify: damage in a format-1 segment is one damaged range, the directory untouched"

# A copy a crash left mid-upgrade is thrown away, the segment kept.
first_segment=$(echo "$segments" | head -n 1)
head -c 100 /dev/urandom >"$first_segment.format2"

start_broker
run 0 consume f1 --format "$FMT" "${B[@]}"
expect_same "every record of the format-1 directory, as it held them" "$TMP/out" "$FIXTURE/records.txt"
grep -q "upgraded" "$TMP/nagared.log" || fail "the broker logged no upgrade"
[ ! -e "$first_segment.format2" ] || fail "the copy left by a crash is still there"
ok "the copy left by a crash was removed"

run 0 group describe g1 "${B[@]}"
awk '$1 == "f1" {print $2, $3}' "$TMP/out" >"$TMP/got_offsets"
awk '$1 == "f1" {print $2, $3}' "$FIXTURE/group-g1.txt" >"$TMP/want_offsets"
expect_same "group g1's committed offsets" "$TMP/got_offsets" "$TMP/want_offsets"

for s in $segments; do
    [ "$(byte_at "$s" 16)" = 2 ] || fail "$s: not upgraded to format 2 (magic at 16)"
done
ok "every segment's first batch is format 2"

IN="$TMP/new" && printf 'after-1\nafter-2\n' >"$IN"
run 0 produce f1 --partition 0 "${B[@]}"
IN=""
run 0 consume f1 --partition 0 --from 357 --format '%o %v\n' "${B[@]}"
printf '357 after-1\n358 after-2\n' >"$TMP/want_new"
expect_same "new records go on from the upgraded log" "$TMP/out" "$TMP/want_new"
stop_broker

# A second start upgrades nothing and serves the same records.
start_broker
run 0 consume f1 --partition 1 --format "$FMT" "${B[@]}"
grep '^1 ' "$FIXTURE/records.txt" >"$TMP/want_p1"
expect_same "partition 1 again after a restart" "$TMP/out" "$TMP/want_p1"
if grep -q "upgrading" "$TMP/nagared.log"; then
    fail "the second start upgraded again"
fi
ok "the second start upgraded nothing"
stop_broker

"$NAGARED" --verify "$TMP/data" >"$TMP/verify.out" 2>&1 || fail "nagared --verify: $(cat "$TMP/verify.out")"
ok "nagared --verify finds the upgraded directory sound"
# On a terminal (script(1)'s), the broker shows the upgrade's progress on
# stderr and erases it before its log goes on; the logs above, through a
# file, hold none (no carriage return).
grep -q $'\r' "$TMP/nagared.log" && fail "a progress line in the broker's log file"
cp -r "$FIXTURE/data" "$TMP/tty-data"
: >"$TMP/tty"
script -qec "'$NAGARED' --listen 127.0.0.1:0 --kafka-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
    --data-dir '$TMP/tty-data' & echo \$! >'$TMP/tty.pid'; wait" /dev/null >"$TMP/tty" 2>&1 &
BG_PIDS+=("$!")
for _ in $(seq 1 200); do
    grep -q -a "nagared listening on" "$TMP/tty" && break
    sleep 0.05
done
grep -q -a "nagared listening on" "$TMP/tty" || fail "no listening line on a terminal: $(tail -c 300 "$TMP/tty" | cat -A)"
kill -TERM "$(cat "$TMP/tty.pid")"
wait "${BG_PIDS[-1]}" || true
grep -q -a -F $'\r\033[Kupgrading to batch format 2: ' "$TMP/tty" ||
    fail "no progress line on a terminal: $(head -c 400 "$TMP/tty" | cat -A)"
grep -q -a -E $'upgrading to batch format 2: [^\r]*, [1-9][0-9]* segments' "$TMP/tty" ||
    fail "the line counts no segments: $(head -c 400 "$TMP/tty" | cat -A)"
after=$(awk 'BEGIN { RS = "\033\\[K" } { last = $0 } END { printf "%s", last }' "$TMP/tty")
[[ "$after" != upgrading* ]] && [[ "$after" == *"nagared listening on"* ]] ||
    fail "the line is not erased before the log goes on: $(printf '%s' "$after" | head -c 300 | cat -A)"
grep -q -a -E $'upgrading to batch format 2: [^\r\033]*[0-9]{4}-[0-9]{2}-[0-9]{2}T' "$TMP/tty" &&
    fail "a log line written over the progress line: $(head -c 400 "$TMP/tty" | cat -A)"
ok "on a terminal the upgrade shows its progress, erased before each log line"

echo "test_format1_dir: all $CHECKS checks passed"
