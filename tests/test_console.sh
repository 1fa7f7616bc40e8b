#!/usr/bin/env bash
# tests/test_console.sh — the web console (issue 16, section 4) in a real
# browser: headless Chromium (Debian's chromium) loads the admin listener's
# page against a broker with data this test produced, and the page it drew
# (--dump-dom, after its scripts ran and its fetches came back: Chromium's
# virtual time waits for them) must show the topic, the consumer group and
# its lag, the share group, and the records from the offset the link
# names, with their keys, values and headers. A screenshot is kept as the
# test's artifact (ARTIFACT_DIR/console.png).
#
#   NAGARED=build/broker/nagared NAGARE=build/client/cli/nagare \
#   ARTIFACT_DIR=build/meson-logs bash tests/test_console.sh
set -euo pipefail

SUITE=console
RUN_SECONDS=60
# shellcheck source=tests/cli_support.sh
. "$(dirname "$0")/cli_support.sh"
: "${ARTIFACT_DIR:?set ARTIFACT_DIR to where the screenshot goes}"

CHROMIUM=$(command -v chromium || true)
[ -n "$CHROMIUM" ] || fail "no chromium (./dev.sh installs Debian's chromium)"

start_broker
admin=$(sed -n 's/.*HTTP admin (metrics, health) served on 127\.0\.0\.1:\([0-9]*\).*/\1/p' \
    "$TMP/nagared.log")
[ -n "$admin" ] || fail "the broker logged no admin listener"
URL="http://127.0.0.1:$admin"

run 0 topic create orders --partitions 1 "${B[@]}"
printf 'alice:ordered a book\nbob:ordered a lamp\ncarol:paid\n' >"$TMP/in"
IN="$TMP/in" run 0 produce orders --key-separator : --header src=console-test "${B[@]}"
run 0 consume orders --group billing "${B[@]}"
printf 'dave:ordered a desk\n' >"$TMP/in"
IN="$TMP/in" run 0 produce orders --key-separator : --header src=console-test "${B[@]}"
run 0 consume orders --share workers "${B[@]}"
ok "orders has 4 records; billing committed 3 of them; workers took all 4"

# browser ARGS...: headless Chromium on the console, its output on stdout.
browser() {
    # HOME: Chromium writes its profile there; a scratch one per run.
    HOME="$TMP/home" timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu \
        --no-first-run --hide-scrollbars --user-data-dir="$TMP/profile" \
        --virtual-time-budget=5000 "$@" 2>>"$TMP/chromium.log"
}

page="$URL/#records?topic=orders&partition=0&offset=1"
browser --dump-dom "$page" >"$TMP/dom.html" ||
    fail "chromium --dump-dom: $(tail -n 5 "$TMP/chromium.log")"
has() {
    grep -q -F -- "$1" "$TMP/dom.html" || fail "the console does not show $2 (looked for '$1')"
}
has 'version 0.1' "the broker's version"
has '<tr class="pick" data-topic="orders"><td>orders</td><td>1</td><td class="num">4</td>' \
    "topic orders with 1 partition and 4 records"
has '<tr class="pick" data-group="billing"><td>billing</td>' "group billing"
grep -q -E 'data-group="billing">.*<td class="num">1</td><td class="num">[0-9.]+ (ms|s|min)</td><td><svg class="spark"' \
    "$TMP/dom.html" || fail "group billing's lag of 1 record, its age and its chart are not shown"
has '<td>workers</td><td>orders</td><td class="num">0</td>' "share group workers on orders/0"
has '<tr data-offset="1">' "the record at offset 1"
has '<tr data-offset="3">' "the record at offset 3"
grep -q -F '<tr data-offset="0">' "$TMP/dom.html" && fail "the browser shows offset 0, before the link's offset 1"
has '>bob</td><td class="data">ordered a lamp</td><td class="data">src=console-test</td>' \
    "bob's record: key, value, header"
has '>dave</td><td class="data">ordered a desk</td>' "dave's record, produced after the group's commit"
ok "the console shows the topic, the group's lag, the share group and the records from offset 1"

# A Kafka consumer group (kcat's balanced consumer): its member and the
# partitions its leader assigned it, from the assignment bytes, on a page
# opened at the group ("#group=NAME").
kafka=$(sed -n 's/.*Kafka clients served on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$TMP/nagared.log")
[ -n "$kafka" ] || fail "the broker logged no Kafka listener"
command -v kcat >/dev/null || fail "no kcat (./dev.sh installs it)"
timeout 120 kcat -b "127.0.0.1:$kafka" -G kreaders orders >/dev/null 2>"$TMP/kcat.err" &
BG_PIDS+=("$!")
for _ in $(seq 1 600); do
    curl -s "$URL/api/groups" >"$TMP/groups.json" || true
    grep -q '"partitions": *\[{"topic": *"orders", *"partition": *0}\]' "$TMP/groups.json" && break
    sleep 0.1
done
grep -q '"partitions": *\[{"topic": *"orders", *"partition": *0}\]' "$TMP/groups.json" ||
    fail "kcat's member never showed orders/0 in /api/groups: $(head -c 600 "$TMP/groups.json")"
browser --dump-dom "$URL/#group=kreaders" >"$TMP/dom.html" ||
    fail "chromium --dump-dom: $(tail -n 5 "$TMP/chromium.log")"
grep -q -E 'id="group-members"[^>]*>[^<]*\(Kafka client rdkafka on [^)]*\): orders/0<' "$TMP/dom.html" ||
    fail "the console does not show kcat's member holding orders/0: $(grep -o 'id="group-members"[^<]*' "$TMP/dom.html")"
ok "the console shows a Kafka group member with the partitions assigned to it"

mkdir -p "$ARTIFACT_DIR"
browser --window-size=1280,1300 --screenshot="$ARTIFACT_DIR/console.png" "$page" >/dev/null ||
    fail "chromium --screenshot: $(tail -n 5 "$TMP/chromium.log")"
[ -s "$ARTIFACT_DIR/console.png" ] || fail "no screenshot"
ok "a screenshot of the console is in $ARTIFACT_DIR/console.png"
stop_broker
echo "1..$CHECKS"
