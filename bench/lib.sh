# bench/lib.sh — what bench/compare.sh and bench/cluster.sh share: messages,
# packages, the processes they start (stopped on exit), free ports, the
# machine's load, and arithmetic. Sourced, not run. The sourcing script sets
# ME (its name, for messages) and PACKAGES (what it needs besides the
# build's: ./dev.sh deps installs those) first; it may define
# cleanup_hook, run first on exit; WORK, when set, is removed on exit unless
# KEEP=1.

say() { printf '%s\n' "$*" >&2; }

ensure_packages() {
    ./dev.sh deps
    local missing=""
    for p in $PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        say "$ME: need root to install:$missing"
        exit 1
    fi
    say "$ME: installing$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

# release_build DIR TARGETS...: a release build of its own in DIR (set up
# once), then the targets.
release_build() {
    local dir=$1
    shift
    [ -f "$dir/build.ninja" ] || meson setup "$dir" -Dbuildtype=release -Dtests=disabled >/dev/null
    ninja -C "$dir" "$@" >/dev/null
}

# ---- processes and files: everything started here is stopped on exit ----

WORK=""
PIDS=""
cleanup() {
    local rc=$?
    if declare -F cleanup_hook >/dev/null; then
        cleanup_hook || true
    fi
    for pid in $PIDS; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in $PIDS; do
        wait "$pid" 2>/dev/null || true
    done
    if [ -n "$WORK" ] && [ "${KEEP:-0}" != 1 ]; then
        rm -rf "$WORK"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

forget_pid() {
    local keep=""
    for p in $PIDS; do
        [ "$p" = "$1" ] || keep="$keep $p"
    done
    PIDS=$keep
}

stop_pid() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    forget_pid "$1"
}

# A free TCP port on 127.0.0.1 (bound then released by the kernel's choice).
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
        echo $((20000 + RANDOM % 20000))
}

# Waits until something listens on 127.0.0.1:PORT, without connecting (an
# iperf3 server would take the probe for its client).
wait_port() {
    for _ in $(seq 1 200); do
        ss -Hltn "sport = :$1" 2>/dev/null | grep -q LISTEN && return 0
        sleep 0.05
    done
    return 1
}

# ---- the machine's load ----

# Percent of all CPUs busy over the next second (other sessions' work).
box_busy() {
    local a b
    a=$(head -1 /proc/stat)
    sleep 1
    b=$(head -1 /proc/stat)
    printf '%s\n%s\n' "$a" "$b" | awk '{busy=$2+$3+$4+$7+$8; tot=busy+$5+$6+$9;
        if (NR==1) {b0=busy; t0=tot} else {printf "%.0f", 100*(busy-b0)/(tot-t0)}}'
}

# Waits up to QUIET_WAIT seconds for the machine to be under 15% busy;
# prints the last reading.
wait_quiet() {
    local busy waited=0
    while :; do
        busy=$(box_busy)
        if [ "$busy" -le 15 ] || [ "$waited" -ge "$QUIET_WAIT" ]; then
            echo "$busy"
            return 0
        fi
        waited=$((waited + 1))
    done
}

# ---- arithmetic ----

# calc EXPR: a floating-point expression through awk ("" when an operand is).
calc() {
    awk "BEGIN { printf \"%.2f\", $1 }" 2>/dev/null || echo ""
}

ratio() {
    if [ -z "$1" ] || [ -z "$2" ] || [ "$(calc "$2 == 0")" = "1.00" ]; then
        echo "-"
    else
        calc "$1 / $2"
    fi
}

ge() { [ -n "$1" ] && [ -n "$2" ] && [ "$(awk "BEGIN { print ($1 >= $2) }")" = "1" ]; }
yes_no() { if "$@"; then echo 1; else echo 0; fi; }

TARGETS_MET=0
TARGETS_MISSED=0
target() { # met(1/0) text
    if [ "$1" = "1" ]; then
        TARGETS_MET=$((TARGETS_MET + 1))
        printf '  [met]     %s\n' "$2"
    else
        TARGETS_MISSED=$((TARGETS_MISSED + 1))
        printf '  [MISSED]  %s\n' "$2"
    fi
}
