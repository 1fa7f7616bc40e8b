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

# ---- DlqRedrive writes only where its asker may write ----
as admin
run 0 topic create jobs --partitions 1 "${B[@]}"
printf 'job-1,poison\n' >"$TMP/in"
IN="$TMP/in" run 0 produce jobs --key-separator , "${B[@]}"
run 0 consume jobs --share w --reject "${B[@]}"
for _ in $(seq 1 200); do
    timeout 10 "$NAGARE" consume jobs.dlq "${B[@]}" >"$TMP/out" 2>/dev/null && [ -s "$TMP/out" ] &&
        break
    sleep 0.1
done
[ -s "$TMP/out" ] || fail "no dead letter in jobs.dlq"
run 0 acl add --allow --principal User:alice --topic jobs.dlq --operation read,write "${B[@]}"
as alice
run 1 dlq redrive jobs.dlq "${B[@]}"
grep -q -i "not authorized" "$TMP/err" || fail "alice redriving into jobs: $(cat "$TMP/err")"
grep -q "User:alice from 127.0.0.1 may not write jobs" "$TMP/nagared.log" ||
    fail "the refused target is not in the log"
as admin
run 0 consume jobs "${B[@]}"
printf 'poison\n' >"$TMP/want"
expect_same "alice, with READ and WRITE on jobs.dlq but not WRITE on jobs, redrives nothing" \
    "$TMP/out" "$TMP/want"
run 0 acl add --allow --principal User:alice --topic jobs --operation write "${B[@]}"
as alice
run 0 dlq redrive jobs.dlq "${B[@]}"
grep -q "redrove 1 record from jobs.dlq" "$TMP/out" || fail "redrive: $(cat "$TMP/out")"
as admin
run 0 consume jobs "${B[@]}"
printf 'poison\npoison\n' >"$TMP/want"
expect_same "with WRITE on jobs too, alice redrives the record back" "$TMP/out" "$TMP/want"

# ---- the HTTP admin listener behind the same logins and ACLs ----
ADMIN=$(sed -n 's/.*HTTP admin (metrics, health) served on 127\.0\.0\.1:\([0-9]*\).*/\1/p' \
    "$TMP/nagared.log")
[ -n "$ADMIN" ] || fail "no admin listener in the log"
URL="http://127.0.0.1:$ADMIN"
# get PATH [CURL ARGS...]: the status code; headers in $TMP/hdr, body in $TMP/body
get() {
    local path=$1
    shift
    curl -s -o "$TMP/body" -D "$TMP/hdr" -w '%{http_code}' --max-time "$RUN_SECONDS" "$@" \
        "${URL}$path" || echo "curl failed"
}
# expect_http WANT WHAT PATH [CURL ARGS...]
expect_http() {
    local want=$1 what=$2
    shift 2
    local got
    got=$(get "$@")
    [ "$got" = "$want" ] || fail "$what: HTTP $got, wanted $want: $(cat "$TMP/body" 2>/dev/null)"
    ok "$what"
}
expect_http 200 "/healthz answers without credentials (probes)" /healthz
expect_http 200 "/readyz answers without credentials (probes)" /readyz
for path in /metrics /api/topics / /console.js /nothing; do
    expect_http 401 "$path without credentials is 401" "$path"
    grep -q -i '^WWW-Authenticate: Basic realm="nagare"' "$TMP/hdr" ||
        fail "$path: no Basic challenge: $(cat "$TMP/hdr")"
done
expect_http 401 "a wrong password is 401" /metrics -u admin:wrong
cp "$TMP/body" "$TMP/wrong-password"
expect_http 401 "an unknown user is 401" /metrics -u nobody:pw-admin
expect_same "an unknown user gets what a wrong password gets" "$TMP/body" "$TMP/wrong-password"
expect_http 200 "the admin scrapes /metrics" /metrics -u admin:pw-admin
grep -q '^nagare_' "$TMP/body" || fail "no metrics: $(head -c 300 "$TMP/body")"
expect_http 200 "the admin reads a record of payroll through the console's API" \
    "/api/records?topic=payroll" -u admin:pw-admin
grep -q 'salary' "$TMP/body" || fail "no record: $(cat "$TMP/body")"
expect_http 200 "a logged-in user gets the console's page" / -u alice:pw-alice
expect_http 403 "alice, without DESCRIBE on the cluster, may not scrape" /metrics -u alice:pw-alice
expect_http 403 "nor list topics" /api/topics -u alice:pw-alice
as admin
run 0 acl add --allow --principal User:alice --cluster --operation describe "${B[@]}"
expect_http 200 "with DESCRIBE on the cluster alice scrapes" /metrics -u alice:pw-alice
expect_http 403 "but cannot read payroll's records (no READ)" "/api/records?topic=payroll" \
    -u alice:pw-alice

# One kept-alive connection: logins it verified are remembered, and
# forgotten once the user's password changes.
PYTHON=${PYTHON:-/usr/bin/python3}
NEW_PASSWORD=pw-alice-2 "$PYTHON" - "$ADMIN" "$NAGARE" "${B[1]}" <<'PY' >"$TMP/keepalive" 2>&1 ||
import base64, http.client, os, subprocess, sys
port, nagare, broker = int(sys.argv[1]), sys.argv[2], sys.argv[3]
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
def status(user, pw):
    tok = base64.b64encode(("%s:%s" % (user, pw)).encode()).decode()
    conn.request("GET", "/metrics", headers={"Authorization": "Basic " + tok})
    r = conn.getresponse()
    r.read()
    return r.status
assert status("alice", "pw-alice") == 200, "first login"
assert status("alice", "pw-alice") == 200, "the same login again"
assert status("alice", "pw-alice-wrong") == 401, "another password on the same connection"
assert status("alice", "pw-alice") == 200, "the right one after a wrong one"
env = dict(os.environ, NAGARE_USER="admin", NAGARE_PASSWORD="pw-admin",
           NAGARE_USER_PASSWORD=os.environ["NEW_PASSWORD"])
subprocess.run([nagare, "user", "add", "alice", "--broker", broker], env=env, check=True,
               capture_output=True, timeout=60)
assert status("alice", "pw-alice") == 401, "the old password after the change"
assert status("alice", os.environ["NEW_PASSWORD"]) == 200, "the new password"
print("done")
PY
    fail "logins on a kept-alive connection: $(cat "$TMP/keepalive")"
ok "a kept-alive connection's remembered login ends with a password change"
as admin
NAGARE_USER_PASSWORD=pw-alice run 0 user add alice "${B[@]}" # as it was, for the TLS part

# Failed logins over HTTP count with SASL's (login_failures_max, 5): past
# them the address is refused, even with the right password.
for i in 1 2 3 4 5; do
    get /metrics -u alice:wrong-$i >/dev/null
done
expect_http 429 "after 5 failed logins the address is refused" /metrics -u admin:pw-admin
expect_http 200 "and /healthz still answers" /healthz
stop_broker

# ---- the same over TLS ----
mkdir -p "$TMP/certs"
bash "$TLS_CERTS" "$TMP/certs" >/dev/null 2>&1 || fail "making certificates"
BROKER_ARGS+=(--set listen_tls=true --set "tls_cert_file=$TMP/certs/server.pem"
    --set "tls_key_file=$TMP/certs/server.key" --set admin_listen_tls=true)
start_broker
ADMIN=$(sed -n 's/.*HTTP admin (metrics, health) served on 127\.0\.0\.1:\([0-9]*\) over TLS.*/\1/p' \
    "$TMP/nagared.log")
[ -n "$ADMIN" ] || fail "no admin listener over TLS in the log"
URL="https://127.0.0.1:$ADMIN"
expect_http 200 "HTTPS: the admin scrapes, the certificate verified against the CA" /metrics \
    --cacert "$TMP/certs/ca.pem" -u admin:pw-admin
expect_http 401 "HTTPS: without credentials, 401" /metrics --cacert "$TMP/certs/ca.pem"
[ "$(get /metrics -u admin:pw-admin)" != 200 ] || fail "HTTPS without the CA verified"
ok "HTTPS: a client that does not trust the CA is refused"
URL="http://127.0.0.1:$ADMIN"
[ "$(get /healthz)" != 200 ] || fail "plain HTTP answered on the HTTPS port"
ok "HTTPS: plain HTTP gets nothing"
URL="https://127.0.0.1:$ADMIN"
[ "$(get /healthz --cacert "$TMP/certs/ca.pem" --tls-max 1.1)" != 200 ] || fail "TLS 1.1 answered"
ok "HTTPS: TLS 1.1 is refused"
# SIGHUP: the admin listener takes the new certificate, on the same port.
server_cn() {
    curl -sv -o /dev/null --max-time "$RUN_SECONDS" --cacert "$TMP/certs/ca.pem" \
        "$URL/healthz" 2>&1 | sed -n 's/.*subject: CN=\([^;,]*\).*/\1/p'
}
[ "$(server_cn)" = nagare-test-server ] || fail "HTTPS: the first certificate: '$(server_cn)'"
cp "$TMP/certs/server2.key" "$TMP/certs/server.key" # a key of another certificate
kill -HUP "$BROKER_PID"
for _ in $(seq 1 600); do
    grep -q "admin listener TLS: .*keeps its certificate" "$TMP/nagared.log" && break
    sleep 0.1
done
grep -q "admin listener TLS: .*keeps its certificate" "$TMP/nagared.log" ||
    fail "HTTPS: a mismatched key was not refused at SIGHUP"
[ "$(server_cn)" = nagare-test-server ] || fail "HTTPS: after a bad reload: '$(server_cn)'"
ok "HTTPS: SIGHUP with a key that does not match keeps the certificate it had"
cp "$TMP/certs/server2.pem" "$TMP/certs/server.pem"
kill -HUP "$BROKER_PID"
for _ in $(seq 1 600); do
    [ "$(server_cn)" = nagare-test-server-2 ] && break
    sleep 0.1
done
[ "$(server_cn)" = nagare-test-server-2 ] || fail "HTTPS: no new certificate after SIGHUP"
expect_http 200 "HTTPS: after SIGHUP the new certificate is served and scrapes go on" /metrics \
    --cacert "$TMP/certs/ca.pem" -u admin:pw-admin
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
