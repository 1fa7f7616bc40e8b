#!/usr/bin/env bash
# tests/test_security.sh — issue 15's own scenario, end to end through the
# nagare tool: a broker that requires logins (SASL/SCRAM) and checks ACLs,
# an admin among its super users, and alice allowed to write topics
# orders*: alice produces to orders-eu; she cannot read payroll, cannot
# delete a topic (it still exists afterwards), and cannot give herself more
# rights; nobody gets anything without logging in; the admin can do all of
# it. Then the same over TLS, with the broker's certificate verified.
#
#   NAGARED=build/broker/nagared NAGARE=build/client/cli/nagare \
#   TLS_CERTS=tests/tls_certs.sh bash tests/test_security.sh
set -euo pipefail

SUITE=security
RUN_SECONDS=60
# shellcheck source=tests/cli_support.sh
. "$(dirname "$0")/cli_support.sh"
: "${TLS_CERTS:?set TLS_CERTS to tests/tls_certs.sh}"

# The users exist before the broker requires logins (offline, as an
# operator starts one).
for u in admin alice; do
    NAGARE_PASSWORD="pw-$u" "$NAGARED" --add-user "$u" "$TMP/data" >/dev/null 2>&1 ||
        fail "nagared --add-user $u"
done
BROKER_ARGS=(--set authentication=required --set authorizer=true --set super_users=User:admin)
start_broker

as() { # as USER: the next run() logs in as USER
    export NAGARE_USER="$1" NAGARE_PASSWORD="pw-$1"
}
anonymous() { unset NAGARE_USER NAGARE_PASSWORD; }

anonymous
run 1 topic list "${B[@]}"
grep -q -i "log in" "$TMP/err" || fail "no login: $(cat "$TMP/err")"
ok "without logging in, nothing is served"

as admin
run 0 topic create payroll --partitions 1 "${B[@]}"
run 0 topic create orders-eu --partitions 1 "${B[@]}"
printf 'salary\n' >"$TMP/in"
IN="$TMP/in" run 0 produce payroll "${B[@]}"
run 0 acl add --allow --principal User:alice --topic-prefix orders --operation write,describe "${B[@]}"
ok "the admin (a super user) creates topics, writes payroll and lets alice write orders*"

as alice
printf 'a book\na lamp\n' >"$TMP/in"
IN="$TMP/in" run 0 produce orders-eu "${B[@]}"
ok "alice writes to orders-eu"
run 1 consume payroll "${B[@]}"
grep -q -i "not authorized" "$TMP/err" || fail "alice reading payroll: $(cat "$TMP/err")"
ok "alice cannot read payroll"
run 1 topic delete orders-eu "${B[@]}"
grep -q -i "not authorized" "$TMP/err" || fail "alice deleting: $(cat "$TMP/err")"
run 1 acl add --allow --principal User:alice --topic payroll --operation read "${B[@]}"
grep -q -i "not authorized" "$TMP/err" || fail "alice granting herself: $(cat "$TMP/err")"
ok "alice can neither delete a topic nor give herself more rights"

as admin
run 0 topic list "${B[@]}"
printf 'orders-eu\npayroll\n' >"$TMP/want"
expect_same "both topics still exist" "$TMP/out" "$TMP/want"
run 0 consume orders-eu "${B[@]}"
printf 'a book\na lamp\n' >"$TMP/want"
expect_same "the admin reads what alice wrote" "$TMP/out" "$TMP/want"
run 0 topic delete orders-eu "${B[@]}"
ok "the admin deletes a topic"
stop_broker

# ---- the same over TLS ----
mkdir -p "$TMP/certs"
bash "$TLS_CERTS" "$TMP/certs" >/dev/null 2>&1 || fail "making certificates"
BROKER_ARGS+=(--set listen_tls=true --set "tls_cert_file=$TMP/certs/server.pem"
    --set "tls_key_file=$TMP/certs/server.key")
start_broker
as alice
printf 'over tls\n' >"$TMP/in"
IN="$TMP/in" run 1 produce orders-us "${B[@]}"
ok "a plaintext client gets nothing from the TLS listener"
export NAGARE_TLS=1 NAGARE_TLS_CA="$TMP/certs/ca.pem"
as admin
run 0 topic create orders-us --partitions 1 "${B[@]}"
as alice
IN="$TMP/in" run 0 produce orders-us "${B[@]}"
run 1 consume payroll "${B[@]}"
grep -q -i "not authorized" "$TMP/err" || fail "alice reading payroll over TLS: $(cat "$TMP/err")"
as admin
run 0 consume orders-us "${B[@]}"
printf 'over tls\n' >"$TMP/want"
expect_same "over TLS: alice writes orders*, not payroll's reads; the admin reads" \
    "$TMP/out" "$TMP/want"
stop_broker
echo "1..$CHECKS"
