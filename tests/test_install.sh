#!/usr/bin/env bash
# tests/test_install.sh — what `meson install` puts in place for running
# nagared as a service (issue 16, section 5), installed into a scratch
# directory:
# - the manual pages nagared(8), nagare(1), nagare-bench(1) (when help2man
#   made them: MAN_PAGES=true), each rendering without a groff warning and
#   naming every flag, config key and command its program's --help names;
# - the systemd unit: systemd-analyze verify passes on it (its ExecStart
#   pointed at the scratch copy of nagared, the only thing outside the
#   scratch directory it names), it runs as the user nagare with its data
#   in /var/lib/nagare, restarts on failure and raises the descriptor limit;
#   the sysusers.d entry makes that user;
# - the installed nagared started as the unit starts it (the installed
#   settings file, on an ephemeral port and a scratch data directory)
#   serves the installed nagare and stops cleanly on SIGTERM.
#
#   NAGARED=build/broker/nagared NAGARE=build/client/cli/nagare BUILD_ROOT=build \
#   PREFIX=/usr/local BINDIR=bin MANDIR=share/man SYSCONFDIR=etc MAN_PAGES=true \
#   bash tests/test_install.sh
set -euo pipefail

SUITE=install
RUN_SECONDS=60
# shellcheck source=tests/cli_support.sh
. "$(dirname "$0")/cli_support.sh"
: "${BUILD_ROOT:?}" "${PREFIX:?}" "${BINDIR:?}" "${MANDIR:?}" "${SYSCONFDIR:?}" "${MAN_PAGES:?}"

# meson's directory options are relative to the prefix unless absolute.
under_prefix() { case "$1" in /*) echo "$1" ;; *) echo "$PREFIX/$1" ;; esac; }
DEST="$TMP/dest"
BIN="$DEST$(under_prefix "$BINDIR")"
MAN="$DEST$(under_prefix "$MANDIR")"
ETC="$DEST$(under_prefix "$SYSCONFDIR")"
UNIT="$DEST$PREFIX/lib/systemd/system/nagared.service"
SYSUSERS="$DEST$PREFIX/lib/sysusers.d/nagare.conf"

meson install -C "$BUILD_ROOT" --no-rebuild --destdir "$DEST" >"$TMP/install.log" 2>&1 ||
    fail "meson install: $(tail -n 5 "$TMP/install.log")"
for p in nagared nagare nagare-bench; do
    [ -x "$BIN/$p" ] || fail "meson install put no $p in $BIN"
done
ok "meson install puts nagared, nagare and nagare-bench in the bindir"

# ---- manual pages ----

# page_names PAGE WORD...: every WORD appears in PAGE's rendered text.
page_names() {
    local page=$1 text
    shift
    text=$(MANWIDTH=200 man -l "$page" 2>/dev/null | col -b)
    for w in "$@"; do
        grep -q -F -- "$w" <<<"$text" || fail "$(basename "$page") does not mention $w"
    done
}

# The flags (--word) and config keys ("  key = default") a --help names.
help_flags() { grep -o -E -- '--[a-z][a-z-]+' | sort -u; }
help_keys() { sed -n 's/^  \([a-z_][a-z0-9_]*\) = .*/\1/p'; }
help_commands() { awk '/^commands:/ { on = 1; next } on && /^  [a-z]/ { print $1; next } on { exit }'; }

if [ "$MAN_PAGES" = true ]; then
    for page in man8/nagared.8 man1/nagare.1 man1/nagare-bench.1; do
        [ -f "$MAN/$page" ] || fail "meson install put no $page in $MAN"
        groff -man -Tutf8 -ww -z "$MAN/$page" 2>"$TMP/groff.err" ||
            fail "groff fails on $page: $(cat "$TMP/groff.err")"
        [ ! -s "$TMP/groff.err" ] || fail "groff warns on $page: $(head -n 3 "$TMP/groff.err")"
    done
    ok "the three manual pages are installed and render without a warning"

    mapfile -t words < <("$BIN/nagared" --help | help_flags)
    mapfile -t -O "${#words[@]}" words < <("$BIN/nagared" --help | help_keys)
    [ "${#words[@]}" -gt 40 ] || fail "nagared --help names only ${#words[@]} flags and keys"
    page_names "$MAN/man8/nagared.8" "${words[@]}"
    ok "nagared(8) names all ${#words[@]} flags and keys of nagared --help"

    for prog in nagare nagare-bench; do
        mapfile -t cmds < <("$BIN/$prog" --help | help_commands)
        [ "${#cmds[@]}" -ge 5 ] || fail "$prog --help lists only ${#cmds[@]} commands"
        words=()
        for c in "${cmds[@]}"; do
            words+=("$prog $c")
            mapfile -t -O "${#words[@]}" words < <("$BIN/$prog" "$c" --help | help_flags)
        done
        page_names "$MAN/man1/$prog.1" "${words[@]}"
        ok "$prog(1) has a section for each of its ${#cmds[@]} commands, naming their flags"
    done
else
    echo "ok - # SKIP manual pages: help2man was not found when the build was set up"
fi

# ---- the systemd unit ----

[ -f "$UNIT" ] || fail "meson install put no nagared.service in $(dirname "$UNIT")"
exec_start=$(sed -n 's/^ExecStart=//p' "$UNIT")
read -r -a argv <<<"$exec_start"
[ "${argv[0]}" = "$(under_prefix "$BINDIR")/nagared" ] ||
    fail "ExecStart runs ${argv[0]}, not the installed $(under_prefix "$BINDIR")/nagared"
unit_field() { sed -n "s/^$1=//p" "$UNIT"; }
[ "$(unit_field User)" = nagare ] || fail "the unit does not run as the user nagare"
[ "$(unit_field StateDirectory)" = nagare ] || fail "the unit has no StateDirectory=nagare"
[[ "$exec_start" == *"--data-dir /var/lib/nagare"* ]] || fail "ExecStart does not use /var/lib/nagare"
[ "$(unit_field Restart)" = on-failure ] || fail "the unit does not restart on failure"
[ "$(unit_field LimitNOFILE)" -ge 65536 ] || fail "the unit does not raise the descriptor limit"
ok "the unit runs the installed nagared as nagare on /var/lib/nagare, restarts on failure"

if command -v systemd-analyze >/dev/null; then
    sed "s|^ExecStart=${argv[0]}|ExecStart=$BIN/nagared|" "$UNIT" >"$TMP/nagared.service"
    systemd-analyze verify --man=no "$TMP/nagared.service" >"$TMP/verify.log" 2>&1 ||
        fail "systemd-analyze verify: $(cat "$TMP/verify.log")"
    # It exits 0 on an unknown key or a bad value, with a warning.
    [ ! -s "$TMP/verify.log" ] || fail "systemd-analyze verify warns: $(cat "$TMP/verify.log")"
    ok "systemd-analyze verify passes on the unit, without a warning"
else
    echo "ok - # SKIP systemd-analyze verify: no systemd-analyze here"
fi

[ -f "$SYSUSERS" ] || fail "meson install put no sysusers.d entry in $(dirname "$SYSUSERS")"
grep -q -E '^u nagare ' "$SYSUSERS" || fail "the sysusers.d entry does not make the user nagare"
ok "the sysusers.d entry makes the user nagare"

# ---- the installed broker, started as the unit starts it ----

config="${argv[2]}"
[ "${argv[1]}" = --config ] && [ -f "$DEST$config" ] ||
    fail "ExecStart's settings file $config is not installed"
NAGARED="$BIN/nagared" start_broker --config "$DEST$config"
NAGARE="$BIN/nagare"
printf 'one\ntwo\n' >"$TMP/in"
IN="$TMP/in" run 0 "${B[@]}" produce installed
run 0 "${B[@]}" consume installed
printf 'one\ntwo\n' >"$TMP/want"
expect_same "the installed nagared, on its installed settings, serves the installed nagare" \
    "$TMP/out" "$TMP/want"
stop_broker
echo "1..$CHECKS"
