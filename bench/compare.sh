#!/bin/bash
# bench/compare.sh — nagare side by side with the machine's limits and with
# NATS JetStream, in one run on one machine:
#   (a) limits: sequential disk writes with fio (buffered with a final fsync;
#       fdatasync after every 1 MiB) and loopback TCP with iperf3;
#   (b) nagare: produce (1 KiB records acks=1 in 64 KiB batches; 100-byte
#       records acks=1; 1 KiB acks=all), consume (replay of 1 KiB records),
#       e2e (10,000 records/s of 1 KiB, acks=1), and produce again with
#       1,000 partitions while 1,000 idle connections are open;
#   (c) NATS JetStream (Debian's nats-server -js, file storage in a temporary
#       directory, loopback) with bench/nats_bench.c: async publish of the
#       same records, and a replay (ordered push or pull consumers).
# Then it prints every figure with its ratios nagare/NATS and nagare/limit,
# each target (docs/benchmarks.md, Targets) with whether this run met it, and the CPU of
# each side (from /proc) so each figure says what limited it.
#
# Usage: bench/compare.sh           (as root on Debian 12: installs what is
#                                    missing with apt-get)
# Knobs (environment), defaults in brackets:
#   BUILD [build-compare]    a release build directory of its own
#   REPEAT [3]               runs of each figure; the median run is kept
#   WARM_MIB [1024]          written and deleted before every measured run,
#   WARM_SETTLE [5]          then this many seconds of rest (right after the
#                            delete, this VM's latency tails are 5x longer)
#   QUIET_WAIT [15]          then wait up to this long for the other sessions
#                            on the machine to leave it under 15% busy; a
#                            figure whose run began busier is marked "*"
#   RECORDS_1K [2000000], RECORDS_100 [15000000], RECORDS_ALL [1000000]
#   NATS_RECORDS_1K [1000000], NATS_RECORDS_100 [1000000]
#   NATS_PUBLISHERS [4]      the best of 1, 2 and 4 on this machine
#   NATS_CONSUME [ordered]   ordered push consumer: faster here than pull
#   E2E_SECONDS [10]
#   TMPDIR [/tmp]            where every side keeps its data
#   KEEP=1                   keep the raw JSON of every run
# nagare runs one producer and one consumer (its defaults otherwise: 5
# requests in flight, 64 MiB buffer); NATS gets its best configuration here.
#
# Every process it starts (nats-server, iperf3; nagared is started and
# stopped by nagare-bench itself) is stopped on exit, and the temporary
# directory is removed.
set -euo pipefail
cd "$(dirname "$0")/.."
ME=compare.sh

BUILD=${BUILD:-build-compare}
REPEAT=${REPEAT:-3}
WARM_MIB=${WARM_MIB:-1024}
WARM_SETTLE=${WARM_SETTLE:-5}
QUIET_WAIT=${QUIET_WAIT:-15}
RECORDS_1K=${RECORDS_1K:-2000000}
RECORDS_100=${RECORDS_100:-15000000}
RECORDS_ALL=${RECORDS_ALL:-1000000}
NATS_RECORDS_1K=${NATS_RECORDS_1K:-1000000}
NATS_PUBLISHERS=${NATS_PUBLISHERS:-4}
NATS_CONSUME=${NATS_CONSUME:-ordered}
NATS_RECORDS_100=${NATS_RECORDS_100:-1000000}
E2E_SECONDS=${E2E_SECONDS:-10}
FIO_MIB=${FIO_MIB:-2048}
FIO_SYNC_MIB=${FIO_SYNC_MIB:-1024}
IPERF_SECONDS=${IPERF_SECONDS:-5}
TMP_PARENT=${TMPDIR:-/tmp}

PACKAGES="fio iperf3 nats-server libnats-dev jq"
. bench/lib.sh

build() {
    release_build "$BUILD" bench/nagare-bench bench/nats-bench broker/nagared
}

# ---- warming and the machine's load ----

# Writes and deletes WARM_MIB on the data filesystem: this VM hands freed
# memory back to the host and the first touch of it afterwards is slow, so
# every side starts from the same warmed page cache.
warm() {
    dd if=/dev/zero of="$WORK/warm" bs=1M count="$WARM_MIB" conv=fsync status=none
    rm -f "$WORK/warm"
    sync
    sleep "$WARM_SETTLE"
}

# ---- one figure: REPEAT runs, each after a warm-up; the median is kept ----

# measure NAME JQ_PATH COMMAND...: runs COMMAND (printing one JSON object)
# REPEAT times and keeps, as $WORK/NAME.json, the run whose JQ_PATH value
# is the median; $WORK/NAME.busy holds the box's load just before it.
measure() {
    local name=$1 path=$2
    shift 2
    local i
    for i in $(seq 1 "$REPEAT"); do
        warm
        wait_quiet >"$WORK/$name.$i.busy"
        say "  $name ($i/$REPEAT)..."
        if ! "$@" >"$WORK/$name.$i.json" 2>"$WORK/$name.$i.err"; then
            say "compare.sh: $name failed:"
            tail -20 "$WORK/$name.$i.err" >&2
            echo '{}' >"$WORK/$name.$i.json"
        fi
    done
    local pick
    pick=$(for i in $(seq 1 "$REPEAT"); do
        printf '%s %s\n' "$(jq -r "$path // 0" "$WORK/$name.$i.json" 2>/dev/null || echo 0)" "$i"
    done | sort -g | awk '{v[NR]=$2} END {print v[int((NR+1)/2)]}')
    cp "$WORK/$name.$pick.json" "$WORK/$name.json"
    cp "$WORK/$name.$pick.busy" "$WORK/$name.busy"
}

# get NAME JQ_PATH: a field of a kept run ("" when absent).
get() {
    jq -r "$2 // empty" "$WORK/$1.json" 2>/dev/null || true
}

# ---- (a) the machine's limits ----

fio_json() {
    mkdir -p "$WORK/fio"
    fio --name="$1" --directory="$WORK/fio" --rw=write --bs=1M --size="$2M" --ioengine=psync \
        "${@:3}" --output-format=json
    rm -rf "$WORK/fio"
}

iperf_json() {
    local port pid
    port=$(free_port)
    iperf3 -s -p "$port" -B 127.0.0.1 >/dev/null 2>&1 &
    pid=$!
    PIDS="$PIDS $pid"
    wait_port "$port"
    iperf3 -c 127.0.0.1 -p "$port" -t "$IPERF_SECONDS" -J
    stop_pid "$pid"
}

limits() {
    say "(a) the machine's limits"
    measure fio_buffered '.jobs[0].write.bw_bytes' fio_json buffered "$FIO_MIB" --end_fsync=1
    measure fio_dsync '.jobs[0].write.bw_bytes' fio_json dsync "$FIO_SYNC_MIB" --fdatasync=1
    measure iperf '.end.sum_received.bits_per_second' iperf_json
}

# ---- (b) nagare ----

NB=""
nagare() {
    "$NB" "$@" --spawn-broker "$BUILD/broker/nagared" --broker-dir "$WORK" --json --quiet
}

nagare_runs() {
    say "(b) nagare"
    measure n_prod_1k '.phases[0].produce.mb_per_s' \
        nagare produce --records "$RECORDS_1K" --record-bytes 1024 --batch-bytes 65536 --acks 1
    measure n_prod_100 '.phases[0].produce.records_per_s' \
        nagare produce --records "$RECORDS_100" --record-bytes 100 --batch-bytes 65536 --acks 1
    measure n_prod_all '.phases[0].produce.mb_per_s' \
        nagare produce --records "$RECORDS_ALL" --record-bytes 1024 --batch-bytes 65536 --acks all
    # the same with 1 MiB batches: the amount fio's reference syncs at once
    measure n_prod_all_1m '.phases[0].produce.mb_per_s' \
        nagare produce --records "$RECORDS_ALL" --record-bytes 1024 --batch-bytes 1048576 --acks all
    measure n_consume '.phases[-1].consume.mb_per_s' \
        nagare consume --records "$RECORDS_1K" --record-bytes 1024 --batch-bytes 65536 --acks 1
    measure n_e2e '.phases[0].consume.latency_ms.p99' \
        nagare e2e --rate 10000 --seconds "$E2E_SECONDS" --record-bytes 1024 --acks 1
    measure n_prod_1000 '.phases[0].produce.mb_per_s' \
        nagare produce --records "$RECORDS_1K" --record-bytes 1024 --batch-bytes 65536 --acks 1 \
        --partitions 1000 --idle-connections 1000
}

# ---- (c) NATS JetStream ----

NATSB=""
# nats_run ARGS...: a fresh nats-server -js (file storage in a fresh
# directory, loopback, ephemeral port) for one nats-bench run, then gone.
nats_run() {
    local port dir pid rc=0
    port=$(free_port)
    dir=$(mktemp -d "$WORK/nats.XXXXXX")
    nats-server -js -sd "$dir" -a 127.0.0.1 -p "$port" >"$dir.log" 2>&1 &
    pid=$!
    PIDS="$PIDS $pid"
    if ! wait_port "$port"; then
        say "compare.sh: nats-server did not start:"
        tail -5 "$dir.log" >&2
        stop_pid "$pid"
        return 1
    fi
    "$NATSB" "$@" --url "nats://127.0.0.1:$port" --server-pid "$pid" --json --quiet || rc=$?
    stop_pid "$pid"
    rm -rf "$dir" "$dir.log"
    return $rc
}

nats_runs() {
    say "(c) NATS JetStream $(nats-server --version 2>/dev/null | awk '{print $NF}')"
    measure s_prod_1k '.phases[0].produce.mb_per_s' \
        nats_run produce --records "$NATS_RECORDS_1K" --record-bytes 1024 --threads "$NATS_PUBLISHERS"
    measure s_prod_100 '.phases[0].produce.records_per_s' \
        nats_run produce --records "$NATS_RECORDS_100" --record-bytes 100 --threads "$NATS_PUBLISHERS"
    measure s_consume '.phases[-1].consume.mb_per_s' \
        nats_run consume --records "$NATS_RECORDS_1K" --record-bytes 1024 --mode "$NATS_CONSUME"
}

# ---- the report ----

# "*" when the kept run of a figure began on a machine over 20% busy.
mark() {
    local b
    b=$(cat "$WORK/$1.busy" 2>/dev/null || echo 0)
    if [ "${b:-0}" -gt 20 ]; then echo "*"; fi
}

row() { # label nagare nats limit [names...]
    local label=$1 n=$2 s=$3 l=$4 m=""
    shift 4
    for name in "$@"; do
        m="$m$(mark "$name")"
    done
    printf '%-42s %10s %10s %10s %10s %12s\n' "$label${m:+ $m}" "${n:--}" "${s:--}" \
        "$(ratio "$n" "$s")" "${l:--}" "$(ratio "$n" "$l")"
}

cpu_line() { # label name phase-index
    local f="$WORK/$2.json"
    [ -s "$f" ] || return 0
    local fields
    fields=$(jq -r ".phases[$3] as \$p | [(\$p.cpu.broker_pct|round), \$p.cpu.broker_thread,
        (\$p.cpu.broker_thread_max_pct|round), (\$p.cpu.bench_pct|round),
        (\$p.cpu.box_pct|round), \$p.broker_rss_max_mib, (\$p.limit // \"\")] | @tsv" \
        "$f" 2>/dev/null) || return 0
    local broker thread thread_pct bench box rss limit
    IFS=$'\t' read -r broker thread thread_pct bench box rss limit <<<"$fields"
    printf '  %s: broker %s%% (busiest thread %s %s%%), bench %s%%, box %s%% before, %s%% during; broker RSS max %s MiB\n' \
        "$1" "$broker" "$thread" "$thread_pct" "$bench" "$(cat "$WORK/$2.busy" 2>/dev/null)" "$box" "$rss"
    [ -z "$limit" ] || printf '      limit: %s\n' "$limit"
}

report() {
    local disk dsync loop limit
    disk=$(calc "$(get fio_buffered '.jobs[0].write.bw_bytes') / 1e6")
    dsync=$(calc "$(get fio_dsync '.jobs[0].write.bw_bytes') / 1e6")
    loop=$(calc "$(get iperf '.end.sum_received.bits_per_second') / 8e6")
    limit=$(awk "BEGIN { printf \"%.2f\", ($disk < $loop ? $disk : $loop) }")
    local p1k p100 pall pall1m cons e50 e99 p1000 s1k s100 scons
    p1k=$(get n_prod_1k '.phases[0].produce.mb_per_s')
    p100=$(get n_prod_100 '.phases[0].produce.records_per_s')
    pall=$(get n_prod_all '.phases[0].produce.mb_per_s')
    pall1m=$(get n_prod_all_1m '.phases[0].produce.mb_per_s')
    cons=$(get n_consume '.phases[-1].consume.mb_per_s')
    e50=$(get n_e2e '.phases[0].consume.latency_ms.p50')
    e99=$(get n_e2e '.phases[0].consume.latency_ms.p99')
    p1000=$(get n_prod_1000 '.phases[0].produce.mb_per_s')
    s1k=$(get s_prod_1k '.phases[0].produce.mb_per_s')
    s100=$(get s_prod_100 '.phases[0].produce.records_per_s')
    scons=$(get s_consume '.phases[-1].consume.mb_per_s')
    local rss rss4 rss1000
    rss=$(cat "$WORK"/n_*.json 2>/dev/null | jq -s '[.[].phases[]?.broker_rss_max_mib] | max // empty')
    rss4=$(cat "$WORK"/n_prod_1k.json "$WORK"/n_prod_100.json "$WORK"/n_prod_all.json "$WORK"/n_prod_all_1m.json \
        "$WORK"/n_consume.json "$WORK"/n_e2e.json 2>/dev/null |
        jq -s '[.[].phases[]?.broker_rss_max_mib] | max // empty')
    rss1000=$(get n_prod_1000 '.phases[0].broker_rss_max_mib')

    echo
    echo "nagare vs the machine's limits and NATS JetStream: $(nproc) CPUs, $(uname -r), $(date -u +%FT%TZ)"
    echo "runs per figure: $REPEAT (median kept); before each: $WARM_MIB MiB written and deleted, $WARM_SETTLE s rest"
    echo "nagare: 1 producer / 1 consumer, 4 partitions; NATS $(nats-server --version 2>/dev/null | awk '{print $NF}'): $NATS_PUBLISHERS publishers, $NATS_CONSUME consumer, 4 streams"
    echo
    echo "(a) limits"
    printf '  %-58s %10s MB/s\n' "disk: fio 1 MiB writes, buffered, one fsync at the end" "$disk"
    printf '  %-58s %10s MB/s\n' "disk: fio 1 MiB writes, fdatasync after each" "$dsync"
    printf '  %-58s %10s MB/s\n' "loopback TCP: iperf3, one stream" "$loop"
    echo
    printf '%-42s %10s %10s %10s %10s %12s\n' "figure" "nagare" "NATS" "nagare/NATS" "limit" "nagare/limit"
    row "produce 1 KiB acks=1, MB/s" "$p1k" "$s1k" "$limit" n_prod_1k s_prod_1k
    row "produce 100 B acks=1, records/s" "$p100" "$s100" "" n_prod_100 s_prod_100
    row "produce 1 KiB acks=all, MB/s (NATS: no sync)" "$pall" "$s1k" "$dsync" n_prod_all
    row "  the same, 1 MiB batches (fio's sync unit)" "$pall1m" "$s1k" "$dsync" n_prod_all_1m
    row "consume (replay) 1 KiB, MB/s" "$cons" "$scons" "$loop" n_consume s_consume
    row "produce 1,000 partitions + 1,000 idle, MB/s" "$p1000" "" "$p1k" n_prod_1000
    printf '%-42s %10s\n' "e2e 10,000/s 1 KiB acks=1: p50 ms$(mark n_e2e)" "${e50:--}"
    printf '%-42s %10s\n' "e2e 10,000/s 1 KiB acks=1: p99 ms$(mark n_e2e)" "${e99:--}"
    printf '%-42s %10s\n' "broker RSS, largest, 4 partitions, MiB" "${rss4:--}"
    printf '%-42s %10s\n' "broker RSS, largest, 1,000 partitions, MiB" "${rss1000:--}"
    echo "(* the kept run began with the machine over 20% busy with other work)"
    echo
    echo "targets (issue 6)"
    local half
    half=$(calc "$limit * 0.5")
    target "$(yes_no ge "$p1k" "$half")" "produce 1 KiB acks=1 >= 50% of min(disk $disk, loopback $loop) = $half MB/s: ${p1k:-none} MB/s"
    target "$(yes_no ge "$p100" 1500000)" "produce 100 B acks=1 >= 1,500,000 records/s: ${p100:-none}"
    target "$(yes_no ge "$pall" "$(calc "$dsync * 0.5")")" "produce acks=all >= 50% of fio fdatasync-per-MiB ($dsync) = $(calc "$dsync * 0.5") MB/s: ${pall:-none} MB/s"
    target "$(yes_no ge "$cons" 1000)" "consume 1 KiB >= 1000 MB/s: ${cons:-none} MB/s"
    target "$(yes_no ge 0.5 "${e50:-99}")" "e2e at 10,000/s p50 <= 0.5 ms: ${e50:-none} ms"
    target "$(yes_no ge 3 "${e99:-99}")" "e2e at 10,000/s p99 <= 3 ms: ${e99:-none} ms"
    target "$(yes_no ge "$p1k" "$(calc "${s1k:-0} * 5")")" "produce 1 KiB >= 5x NATS ($s1k MB/s): $(ratio "$p1k" "$s1k")x"
    target "$(yes_no ge "$p100" "$(calc "${s100:-0} * 5")")" "produce 100 B >= 5x NATS ($s100 records/s): $(ratio "$p100" "$s100")x"
    target "$(yes_no ge "$pall1m" "$(calc "${s1k:-0} * 5")")" "produce acks=all >= 5x NATS (its unsynced $s1k MB/s): $(ratio "$pall1m" "$s1k")x with 1 MiB batches, $(ratio "$pall" "$s1k")x with 64 KiB"
    target "$(yes_no ge "$cons" "$(calc "${scons:-0} * 5")")" "consume >= 5x NATS ($scons MB/s): $(ratio "$cons" "$scons")x"
    target "$(yes_no ge 256 "${rss:-9999}")" "broker RSS under load <= 256 MiB, every run: ${rss:-none} MiB (4 partitions: ${rss4:-none} MiB)"
    target "$(yes_no ge "$p1000" "$(calc "${p1k:-0} * 0.8")")" "1,000 partitions + 1,000 idle connections >= 80% of 4 partitions ($p1k MB/s): ${p1000:-none} MB/s ($(ratio "$p1000" "$p1k"))"
    echo "  $TARGETS_MET met, $TARGETS_MISSED missed"
    echo
    echo "CPU per figure (100% = one core; box: all cores busy, just before and during the run)"
    cpu_line "nagare produce 1 KiB" n_prod_1k 0
    cpu_line "nagare produce 100 B" n_prod_100 0
    cpu_line "nagare produce acks=all" n_prod_all 0
    cpu_line "nagare produce acks=all, 1 MiB batches" n_prod_all_1m 0
    cpu_line "nagare consume" n_consume -1
    cpu_line "nagare e2e" n_e2e 0
    cpu_line "nagare 1,000 partitions" n_prod_1000 0
    cpu_line "NATS produce 1 KiB" s_prod_1k 0
    cpu_line "NATS produce 100 B" s_prod_100 0
    cpu_line "NATS consume" s_consume -1
    printf '  fio buffered: usr %s%% sys %s%%; fio fdatasync: usr %s%% sys %s%%; iperf3 sender %s%%, receiver %s%%\n' \
        "$(get fio_buffered '.jobs[0].usr_cpu|round')" "$(get fio_buffered '.jobs[0].sys_cpu|round')" \
        "$(get fio_dsync '.jobs[0].usr_cpu|round')" "$(get fio_dsync '.jobs[0].sys_cpu|round')" \
        "$(get iperf '.end.cpu_utilization_percent.host_total|round')" \
        "$(get iperf '.end.cpu_utilization_percent.remote_total|round')"
}

main() {
    ensure_packages
    build
    NB="$PWD/$BUILD/bench/nagare-bench"
    NATSB="$PWD/$BUILD/bench/nats-bench"
    WORK=$(mktemp -d "$TMP_PARENT/nagare-compare.XXXXXX")
    local t0=$SECONDS
    limits
    nagare_runs
    nats_runs
    report
    echo
    if [ "${KEEP:-0}" = 1 ]; then
        echo "compare.sh: $((SECONDS - t0)) s; raw JSON of every run kept in $WORK"
    else
        echo "compare.sh: $((SECONDS - t0)) s"
    fi
}

main "$@"
