#!/bin/bash
# bench/cluster.sh — a three-broker cluster's figures, side by side in one
# run on one machine (issue 13, section 3; docs/benchmarks.md):
#   (a) acks=all produce of 1 KiB records to a topic of replication factor
#       3 against one of factor 1, on the same three brokers: ROUNDS
#       interleaved rounds (the order alternating), the median run of each
#       kept, with its MB/s, records/s and p50/p99 send-to-ack latency;
#   (b) failover: a steady acks=all producer while the leader of its
#       partition is killed with SIGKILL, FAILOVER_ROUNDS times (the killed
#       broker started again, back in the in-sync set, between rounds): the
#       time from the kill to the first acknowledged write on the successor,
#       for the running producer and for a fresh one made once the metadata
#       names the new leader, median and maximum (nagare-bench failover).
# It starts 3 etcd members and 3 nagared brokers on loopback (free ports, a
# temporary directory), prints a table with the targets and the machine's
# load, and stops everything it started on exit.
#
# Usage: bench/cluster.sh         (as root on Debian 12: installs what is
#                                  missing with apt-get)
# Knobs (environment), defaults in brackets:
#   BUILD [build-cluster]     a release build directory of its own
#   ROUNDS [3]                produce runs of each replication factor
#   RECORDS [1000000]         1 KiB records per produce run
#   PARTITIONS [3]            of each produce topic (one led by each broker)
#   WARMUP_MIB [64]           untimed writes before each produce run
#   FAILOVER_ROUNDS [5]       kills of a leader
#   FAILOVER_RATE [1000]      records/s of the failover producer
#   FAILOVER_MAX_S [20]       how long a kill's acknowledgements are waited for
#   LEASE_TTL_S [6]           the brokers' etcd lease (lease_ttl_s)
#   QUIET_WAIT [15]           before each produce run, wait up to this long
#                             for the machine to be under 15% busy
#   TMPDIR [/tmp]             where etcd and the brokers keep their data
#   KEEP=1                    keep the directory: logs and raw JSON
set -euo pipefail
cd "$(dirname "$0")/.."
ME=cluster.sh

BUILD=${BUILD:-build-cluster}
ROUNDS=${ROUNDS:-3}
RECORDS=${RECORDS:-1000000}
PARTITIONS=${PARTITIONS:-3}
WARMUP_MIB=${WARMUP_MIB:-64}
FAILOVER_ROUNDS=${FAILOVER_ROUNDS:-5}
FAILOVER_RATE=${FAILOVER_RATE:-1000}
FAILOVER_MAX_S=${FAILOVER_MAX_S:-20}
LEASE_TTL_S=${LEASE_TTL_S:-6}
QUIET_WAIT=${QUIET_WAIT:-15}
TMP_PARENT=${TMPDIR:-/tmp}
BROKERS=3
MEMBERS=3

PACKAGES="jq"
. bench/lib.sh

build() {
    release_build "$BUILD" bench/nagare-bench broker/nagared client/cli/nagare
}

# Brokers are started by their start.sh (also run by nagare-bench failover
# to restart a killed one), so they are not this shell's children: their
# pid files name them.
cleanup_hook() {
    local f pid
    for f in "$WORK"/pids/*.pid; do
        [ -f "$f" ] || continue
        pid=$(cat "$f")
        kill "$pid" 2>/dev/null || true
    done
    for f in "$WORK"/pids/*.pid; do
        [ -f "$f" ] || continue
        pid=$(cat "$f")
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    done
}

# ---- etcd ----

ENDPOINTS=""
etcd_start() {
    local i cluster="" token
    token="nagare-bench-$$"
    declare -ga EPORT PPORT
    for i in $(seq 1 $MEMBERS); do
        EPORT[$i]=$(free_port)
        PPORT[$i]=$(free_port)
        cluster="$cluster${cluster:+,}e$i=http://127.0.0.1:${PPORT[$i]}"
        ENDPOINTS="$ENDPOINTS${ENDPOINTS:+,}http://127.0.0.1:${EPORT[$i]}"
    done
    for i in $(seq 1 $MEMBERS); do
        etcd --name "e$i" --data-dir "$WORK/etcd$i" \
            --listen-client-urls "http://127.0.0.1:${EPORT[$i]}" \
            --advertise-client-urls "http://127.0.0.1:${EPORT[$i]}" \
            --listen-peer-urls "http://127.0.0.1:${PPORT[$i]}" \
            --initial-advertise-peer-urls "http://127.0.0.1:${PPORT[$i]}" \
            --initial-cluster "$cluster" --initial-cluster-state new \
            --initial-cluster-token "$token" >"$WORK/etcd$i.log" 2>&1 &
        PIDS="$PIDS $!"
    done
    for _ in $(seq 1 300); do
        if ETCDCTL_API=3 etcdctl --endpoints "$ENDPOINTS" endpoint health >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    say "$ME: etcd did not become healthy:"
    tail -5 "$WORK/etcd1.log" >&2
    return 1
}

# ---- brokers ----

BOOTSTRAP=""
# Writes $WORK/b<id>/start.sh: starts broker <id> in the background on its
# port and data directory (kept across restarts), writes its pid file, and
# returns once it listens (1 when it exited instead).
broker_script() {
    local id=$1 port=$2 dir="$WORK/b$1"
    mkdir -p "$dir/data" "$WORK/pids"
    cat >"$dir/start.sh" <<EOF
#!/bin/sh
"$PWD/$BUILD/broker/nagared" --broker-id $id --etcd "$ENDPOINTS" \\
    --listen 127.0.0.1:$port --kafka-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --data-dir "$dir/data" \\
    --set lease_ttl_s=$LEASE_TTL_S \\
    </dev/null >>"$dir/nagared.log" 2>&1 &
pid=\$!
echo \$pid >"$WORK/pids/$id.pid"
for _ in \$(seq 1 300); do
    ss -Hltn "sport = :$port" 2>/dev/null | grep -q LISTEN && exit 0
    kill -0 \$pid 2>/dev/null || exit 1
    sleep 0.05
done
exit 1
EOF
}

brokers_start() {
    local id port
    for id in $(seq 1 $BROKERS); do
        port=$(free_port)
        BOOTSTRAP="$BOOTSTRAP${BOOTSTRAP:+,}127.0.0.1:$port"
        broker_script "$id" "$port"
        if ! sh "$WORK/b$id/start.sh"; then
            say "$ME: broker $id did not start:"
            tail -5 "$WORK/b$id/nagared.log" >&2
            return 1
        fi
    done
    # every broker registered and a controller elected
    local n
    for _ in $(seq 1 300); do
        n=$("$BUILD/client/cli/nagare" cluster describe --broker "$BOOTSTRAP" 2>/dev/null |
            awk '/^controller/ && $2 != "none" {c=1} /^  [0-9]/ {n++} END {print (c ? n : 0)}')
        [ "${n:-0}" -ge $BROKERS ] && return 0
        sleep 0.1
    done
    say "$ME: the cluster did not form ($n brokers with a controller)"
    return 1
}

# ---- (a) produce, RF 3 against RF 1 ----

# "id cpu_seconds" of every running broker, one a line (from /proc).
brokers_cpu() {
    local f pid hz
    hz=$(getconf CLK_TCK)
    for f in "$WORK"/pids/*.pid; do
        pid=$(cat "$f")
        awk -v id="$(basename "$f" .pid)" -v hz="$hz" '{print id, ($14 + $15) / hz}' \
            "/proc/$pid/stat" 2>/dev/null || true
    done
}

# cpu_share BEFORE AFTER SECONDS: "b1 45%, b2 ..." (100% = one core).
cpu_share() {
    awk -v wall="$3" 'NR == FNR {c0[$1] = $2; next}
        ($1 in c0) {printf "%sb%s %.0f%%", sep, $1, 100 * ($2 - c0[$1]) / wall; sep = ", "}' "$1" "$2"
}

NB=""
# produce_run NAME RF: one nagare-bench produce into a fresh topic (deleted
# after), JSON to $WORK/NAME.json, the machine's load before it to NAME.busy.
produce_run() {
    local name=$1 rf=$2
    wait_quiet >"$WORK/$name.busy"
    awk '{print $1}' /proc/loadavg >"$WORK/$name.load"
    say "  $name: replication factor $rf..."
    brokers_cpu >"$WORK/$name.cpu0"
    local t0 t1
    t0=$(date +%s.%N)
    if ! "$NB" produce --broker "$BOOTSTRAP" --topic "bench-$name" --partitions "$PARTITIONS" \
        --replication-factor "$rf" --records "$RECORDS" --record-bytes 1024 --batch-bytes 65536 \
        --acks all --warmup-mib "$WARMUP_MIB" --json --quiet >"$WORK/$name.json" 2>"$WORK/$name.err"; then
        say "$ME: $name failed:"
        tail -20 "$WORK/$name.err" >&2
        echo '{}' >"$WORK/$name.json"
    fi
    t1=$(date +%s.%N)
    brokers_cpu >"$WORK/$name.cpu1"
    cpu_share "$WORK/$name.cpu0" "$WORK/$name.cpu1" "$(calc "$t1 - $t0")" >"$WORK/$name.cpu"
}

produce_rounds() {
    say "(a) acks=all produce, replication factor 3 against 1, $ROUNDS interleaved rounds"
    local r
    for r in $(seq 1 "$ROUNDS"); do
        if [ $((r % 2)) = 1 ]; then
            produce_run "rf1-$r" 1
            produce_run "rf3-$r" 3
        else
            produce_run "rf3-$r" 3
            produce_run "rf1-$r" 1
        fi
    done
}

# pick RF: the name of the run of that factor with the median MB/s.
pick() {
    local r
    for r in $(seq 1 "$ROUNDS"); do
        printf '%s %s\n' "$(jq -r '.phases[0].produce.mb_per_s // 0' "$WORK/rf$1-$r.json" 2>/dev/null || echo 0)" "rf$1-$r"
    done | sort -g | awk '{v[NR]=$2} END {print v[int((NR+1)/2)]}'
}

# get NAME JQ_PATH: a field of a run ("" when absent).
get() {
    jq -r "$2 // empty" "$WORK/$1.json" 2>/dev/null || true
}

# ---- (b) failover ----

failover_run() {
    say "(b) failover: $FAILOVER_ROUNDS kills of the leader under acks=all at $FAILOVER_RATE records/s"
    wait_quiet >"$WORK/failover.busy"
    awk '{print $1}' /proc/loadavg >"$WORK/failover.load"
    if ! "$NB" failover --broker "$BOOTSTRAP" --pid-dir "$WORK/pids" \
        --restart-cmd "sh '$WORK'/b\$NAGARE_BENCH_BROKER_ID/start.sh" \
        --rounds "$FAILOVER_ROUNDS" --rate "$FAILOVER_RATE" --record-bytes 1024 \
        --failover-max "$FAILOVER_MAX_S" \
        --replication-factor 3 --json >"$WORK/failover.json" 2>"$WORK/failover.err"; then
        say "$ME: nagare-bench failover exited non-zero (a round failed, or the running"
        say "  producer got no acknowledgement within $FAILOVER_MAX_S s of a kill):"
    fi
    tail -30 "$WORK/failover.err" >&2
}

# ---- the report ----

num0() { if [ -n "$1" ]; then printf '%.0f' "$1"; else echo -; fi; }
num1() { if [ -n "$1" ]; then printf '%.1f' "$1"; else echo -; fi; }

runs_line() { # RF: each run's MB/s, busy% and load before it
    local r out=""
    for r in $(seq 1 "$ROUNDS"); do
        out="$out $(get "rf$1-$r" '.phases[0].produce.mb_per_s' | sed 's/^$/-/') MB/s"
        out="$out (box $(cat "$WORK/rf$1-$r.busy")% busy, load $(cat "$WORK/rf$1-$r.load"));"
    done
    echo "${out%;}"
}

report() {
    local p1 p3
    p1=$(pick 1)
    p3=$(pick 3)
    local mb1 mb3 rps1 rps3 l50_1 l50_3 l99_1 l99_3
    mb1=$(get "$p1" '.phases[0].produce.mb_per_s')
    mb3=$(get "$p3" '.phases[0].produce.mb_per_s')
    rps1=$(get "$p1" '.phases[0].produce.records_per_s')
    rps3=$(get "$p3" '.phases[0].produce.records_per_s')
    l50_1=$(get "$p1" '.phases[0].produce.latency_ms.p50')
    l50_3=$(get "$p3" '.phases[0].produce.latency_ms.p50')
    l99_1=$(get "$p1" '.phases[0].produce.latency_ms.p99')
    l99_3=$(get "$p3" '.phases[0].produce.latency_ms.p99')
    local fmed fmax fn pmed pmax pn lmed lmax ln rounds sent acked failed
    rounds=$(jq -r '.rounds | length' "$WORK/failover.json" 2>/dev/null || echo 0)
    fn=$(get failover '.ack_ms.count')
    pn=$(get failover '.probe_ms.count')
    ln=$(get failover '.leader_ms.count')
    if [ "${fn:-0}" -gt 0 ]; then
        fmed=$(num0 "$(get failover '.ack_ms.median')")
        fmax=$(num0 "$(get failover '.ack_ms.max')")
    fi
    if [ "${pn:-0}" -gt 0 ]; then
        pmed=$(num0 "$(get failover '.probe_ms.median')")
        pmax=$(num0 "$(get failover '.probe_ms.max')")
    fi
    if [ "${ln:-0}" -gt 0 ]; then
        lmed=$(num0 "$(get failover '.leader_ms.median')")
        lmax=$(num0 "$(get failover '.leader_ms.max')")
    fi
    sent=$(get failover '.records.sent')
    acked=$(get failover '.records.acked')
    failed=$(get failover '.records.failed')

    echo
    echo "nagare cluster: $BROKERS brokers + $MEMBERS etcd members on loopback, one machine: $(nproc) CPUs, $(uname -r), $(date -u +%FT%TZ)"
    echo "etcd $(etcd --version 2>/dev/null | awk '/etcd Version/ {print $3}'); brokers' lease_ttl_s = $LEASE_TTL_S"
    echo
    echo "(a) acks=all produce, 1 KiB records, 1 producer, 64 KiB batches, $PARTITIONS partitions,"
    echo "    $RECORDS records per run; median of $ROUNDS interleaved runs per factor"
    printf '  %-28s %10s %12s %10s %10s\n' "" "MB/s" "records/s" "p50 ms" "p99 ms"
    printf '  %-28s %10s %12s %10s %10s\n' "replication factor 1" "${mb1:--}" "$(num0 "$rps1")" "$(num1 "$l50_1")" "$(num1 "$l99_1")"
    printf '  %-28s %10s %12s %10s %10s\n' "replication factor 3" "${mb3:--}" "$(num0 "$rps3")" "$(num1 "$l50_3")" "$(num1 "$l99_3")"
    printf '  %-28s %10s\n' "RF3 / RF1" "$(ratio "$mb3" "$mb1")"
    echo "  runs, RF1:$(runs_line 1)"
    echo "  runs, RF3:$(runs_line 3)"
    echo "  brokers' CPU over the kept runs (warm-up and topic set-up included; 100% = one core):"
    echo "    RF1: $(cat "$WORK/$p1.cpu" 2>/dev/null); RF3: $(cat "$WORK/$p3.cpu" 2>/dev/null)"
    echo
    echo "(b) failover: kill -9 of the partition's leader under acks=all at $FAILOVER_RATE records/s of 1 KiB, RF 3"
    echo "  (rounds run: ${rounds:-0} of $FAILOVER_ROUNDS; a figure counts the rounds where it came within $FAILOVER_MAX_S s)"
    printf '  %-64s %8s %8s %7s\n' "kill to ..., ms" "median" "max" "rounds"
    printf '  %-64s %8s %8s %7s\n' "the running producer's first write acknowledged by the successor" "${fmed:-none}" "${fmax:-none}" "${fn:-0}"
    printf '  %-64s %8s %8s %7s\n' "a fresh producer's first write acknowledged by the successor" "${pmed:-none}" "${pmax:-none}" "${pn:-0}"
    printf '  %-64s %8s %8s %7s\n' "a new leader in the metadata" "${lmed:-none}" "${lmax:-none}" "${ln:-0}"
    echo "  records of the running producer: ${sent:-?} sent, ${acked:-?} acknowledged, ${failed:-?} failed;" \
        "box $(cat "$WORK/failover.busy")% busy before, load $(cat "$WORK/failover.load")"
    jq -r '.rounds[]? | "    killed broker \(.killed): successor \(.successor); new leader \(.leader_ms|round) ms, running producer \(.ack_ms|round) ms, fresh producer \(.probe_ms|round) ms (-1: none); back in sync \(.rejoin_s) s after its restart"' \
        "$WORK/failover.json" 2>/dev/null || true
    echo
    echo "targets (issue 13, section 3)"
    local want
    want=$(calc "$mb1 * 0.3")
    target "$(yes_no ge "$mb3" "$want")" "RF3 acks=all >= 30% of RF1 ($mb1 MB/s): ${mb3:-none} MB/s ($(ratio "$mb3" "$mb1"))"
    local limit_ms=$((LEASE_TTL_S * 1000 + 1000))
    target "$(yes_no ge "$limit_ms" "${fmax:-999999}")" \
        "failover < lease TTL + 1 s = $limit_ms ms, running producer, every round: max ${fmax:-none} ms (median ${fmed:-none}, ${fn:-0} of ${rounds:-0} rounds)"
    target "$(yes_no ge "$limit_ms" "${pmax:-999999}")" \
        "failover < lease TTL + 1 s = $limit_ms ms, fresh producer, every round: max ${pmax:-none} ms (median ${pmed:-none}, ${pn:-0} of ${rounds:-0} rounds)"
    echo "  $TARGETS_MET met, $TARGETS_MISSED missed"
    echo "  (load: 'box' is the share of both CPUs busy over the second before a run, other sessions' work;"
    echo "   figures from runs that began over 20% busy do not show what the code can do)"
}

main() {
    ensure_packages
    build
    NB="$PWD/$BUILD/bench/nagare-bench"
    WORK=$(mktemp -d "$TMP_PARENT/nagare-cluster.XXXXXX")
    local t0=$SECONDS
    say "$ME: etcd x$MEMBERS, nagared x$BROKERS in $WORK"
    etcd_start
    brokers_start
    produce_rounds
    failover_run
    report
    echo
    if [ "${KEEP:-0}" = 1 ]; then
        echo "$ME: $((SECONDS - t0)) s; logs and raw JSON kept in $WORK"
    else
        echo "$ME: $((SECONDS - t0)) s"
    fi
}

main "$@"
