#!/usr/bin/env bash
# tests/test_cli_acl.sh — `nagare acl add|list|delete` end to end against
# the real nagared (docs/security.md, "Authorization"): ACLs set up with
# the authorizer off, then enforced after a restart with it on, for the
# tool's own principal (User:ANONYMOUS: nothing authenticates here).
#
#   NAGARED=build/broker/nagared NAGARE=build/client/cli/nagare bash tests/test_cli_acl.sh
set -euo pipefail

SUITE=cli-acl
RUN_SECONDS=30
# shellcheck source=tests/cli_support.sh
. "$(dirname "$0")/cli_support.sh"

ME=User:ANONYMOUS

start_broker
run 0 topic create orders-1 --partitions 1 "${B[@]}"
run 0 topic create payroll --partitions 1 "${B[@]}"

run 0 acl add --allow --principal "$ME" --cluster --operation alter,describe,create "${B[@]}"
[ "$(grep -c '^added: allow' "$TMP/out")" -eq 3 ] || fail "acl add: $(cat "$TMP/out")"
ok "acl add: one ACL per operation"
run 0 acl add --allow --principal "$ME" --topic-prefix orders --operation write "${B[@]}"
run 0 acl add --deny --principal "$ME" --host 127.0.0.1 --topic payroll --operation all "${B[@]}"
run 0 acl list "${B[@]}"
[ "$(grep -c "$ME" "$TMP/out")" -eq 5 ] || fail "acl list: $(cat "$TMP/out")"
grep -E -q "^allow +$ME +\* +write +topic +prefixed +orders$" "$TMP/out" ||
    fail "acl list: no prefixed write: $(cat "$TMP/out")"
ok "acl list: every ACL, as added"
run 0 acl list --topic payroll "${B[@]}"
[ "$(grep -c "$ME" "$TMP/out")" -eq 1 ] || fail "acl list --topic payroll: $(cat "$TMP/out")"
ok "acl list --topic: the ACLs of that resource"

run 2 acl add --allow --topic x --operation read "${B[@]}"
expect_one_error_line "--principal" "acl add without a principal"
run 2 acl add --allow --principal "$ME" --topic x --operation fly "${B[@]}"
expect_one_error_line "not an operation" "acl add with an unknown operation"
run 2 acl delete "${B[@]}"
expect_one_error_line "--all" "acl delete without a filter"
run 1 acl add --allow --principal alice --topic x --operation read "${B[@]}"
expect_one_error_line "invalid" "a principal without User: is refused by the broker"
stop_broker

BROKER_ARGS=(--set authorizer=true)
start_broker
echo "one" >"$TMP/in"
IN="$TMP/in" run 0 produce orders-1 "${B[@]}"
ok "produce to orders-1: allowed"
IN="$TMP/in" run 1 produce payroll "${B[@]}"
grep -q "not authorized" "$TMP/err" || fail "produce to payroll: $(cat "$TMP/err")"
ok "produce to payroll: not authorized"
run 1 topic delete payroll "${B[@]}"
grep -q "not authorized" "$TMP/err" || fail "topic delete payroll: $(cat "$TMP/err")"
ok "topic delete payroll: not authorized"
run 0 acl delete --topic-prefix orders "${B[@]}"
grep -q "^deleted 1 ACL$" "$TMP/out" || fail "acl delete: $(cat "$TMP/out")"
ok "acl delete: prints what it deleted"
IN="$TMP/in" run 1 produce orders-1 "${B[@]}"
ok "produce to orders-1: refused at once once its ACL is gone"
stop_broker

BROKER_ARGS=()
start_broker
run 0 topic describe payroll "${B[@]}"
ok "payroll still exists"
run 0 acl list "${B[@]}"
[ "$(grep -c "$ME" "$TMP/out")" -eq 4 ] || fail "acl list after restarts: $(cat "$TMP/out")"
ok "the ACLs survive restarts"
stop_broker
echo "all $CHECKS checks passed"
