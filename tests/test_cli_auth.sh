#!/usr/bin/env bash
# tests/test_cli_auth.sh — `nagare user add|delete|list` and logging in with
# --user, end to end through pipes, against the real nagared on an ephemeral
# port: users made while the broker does not require logins, then the same
# broker restarted with `authentication = required`.
#
#   NAGARED=build/broker/nagared NAGARE=build/client/cli/nagare bash tests/test_cli_auth.sh
set -euo pipefail

SUITE=cli-auth
RUN_SECONDS=20
# shellcheck source=tests/cli_support.sh
. "$(dirname "$0")/cli_support.sh"
unset NAGARE_USER NAGARE_PASSWORD NAGARE_USER_PASSWORD

usage_errors() {
    local cases=(
        "user"
        "user frob"
        "user add"
        "user add a b"
        "user delete"
        "user list extra"
        "user list --mechanism SCRAM-SHA-256"
        "user add a --mechanism MD5"
        "user add a --iterations 100"
        "user add a --iterations 20000"
        "--user"
    )
    for c in "${cases[@]}"; do
        # shellcheck disable=SC2086
        run 2 $c
        expect_one_error_line "nagare" "nagare $c"
    done
    run 0 user --help
    grep -q "usage: nagare user add" "$TMP/out" || fail "nagare user --help prints no usage"
    ok "user: usage errors exit 2 with one line (${#cases[@]} cases); --help"
}

manage_users() {
    printf 'pw-alice\n' >"$TMP/pw"
    IN="$TMP/pw" run 0 user add alice "${B[@]}"
    grep -q "set user alice" "$TMP/out" || fail "user add: $(cat "$TMP/out")"
    NAGARE_USER_PASSWORD=pw-bob run 0 user add bob --mechanism SCRAM-SHA-512 \
        --iterations 8192 "${B[@]}"
    NAGARE_USER_PASSWORD=pw-carol run 0 user add carol "${B[@]}"
    run 0 user list "${B[@]}"
    printf 'alice\tSCRAM-SHA-256,SCRAM-SHA-512\nbob\tSCRAM-SHA-512\ncarol\tSCRAM-SHA-256,SCRAM-SHA-512\n' \
        >"$TMP/want"
    expect_same "user add, then list: each user and its mechanisms, no keys" "$TMP/out" "$TMP/want"
    run 0 user delete carol "${B[@]}"
    run 1 user delete carol "${B[@]}"
    expect_one_error_line "not found" "deleting a user twice"
    run 0 user delete alice --mechanism SCRAM-SHA-512 "${B[@]}"
    run 0 user list "${B[@]}"
    printf 'alice\tSCRAM-SHA-256\nbob\tSCRAM-SHA-512\n' >"$TMP/want"
    expect_same "user delete of a user, and of one mechanism" "$TMP/out" "$TMP/want"
    IN=/dev/null run 1 user add dave "${B[@]}"
    expect_one_error_line "no password" "user add without a password"
    ! grep -q "pw-" "$TMP/data/users" || fail "a password is in the users file"
    ok "the users file holds no password"
}

logins_required() {
    run 1 topic list "${B[@]}"
    expect_one_error_line "requires authentication" "a command without --user"
    NAGARE_PASSWORD=nope run 1 --user alice topic list "${B[@]}"
    expect_one_error_line "authentication failed" "a wrong password"
    NAGARE_PASSWORD=nope run 1 --user nobody topic list "${B[@]}"
    expect_one_error_line "authentication failed" "an unknown user: the same words"
    printf 'one\ntwo\n' >"$TMP/in"
    NAGARE_PASSWORD=pw-alice IN="$TMP/in" run 0 --user alice produce t "${B[@]}"
    NAGARE_PASSWORD=pw-bob run 0 --user bob --sasl-mechanism SCRAM-SHA-512 consume t \
        --count 2 "${B[@]}"
    printf 'one\ntwo\n' >"$TMP/want"
    expect_same "produce and consume logged in, either mechanism" "$TMP/out" "$TMP/want"
    NAGARE_USER=alice NAGARE_PASSWORD=pw-alice run 0 user list "${B[@]}"
    grep -q "^bob" "$TMP/out" || fail "user list as \$NAGARE_USER: $(cat "$TMP/out")"
    ok "\$NAGARE_USER and \$NAGARE_PASSWORD log in too"
}

usage_errors
start_broker
manage_users
stop_broker
BROKER_ARGS=(--set authentication=required)
start_broker
logins_required
stop_broker
echo "test_cli_auth: all $CHECKS checks passed"
