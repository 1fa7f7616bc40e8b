#!/bin/sh
# Long fault runs, by hand, for docs/reliability.md: RUNS runs of the
# mixed fault test (tests/test_cluster_faults.c, every fault kind drawn by
# the seed) with seeds SEED, SEED+1, ..., each with SECONDS of faults (up
# to 1200: the test's own time limit is 1800 s). Each run's whole output
# goes to OUT/seed-<seed>.log and one line per run to OUT/summary.txt:
# the checker's verdict, the records acknowledged, the faults and the
# longest time without an acknowledged write; at the end, per fault kind
# over every run, how many and the median and longest of those times.
#
# usage: tests/cluster_faults_long.sh SEED SECONDS [RUNS [BUILD [OUT]]]
#   BUILD defaults to ./build (built first), OUT to a new directory in /tmp.
#   NAGARE_CLUSTER_KEEP=1 keeps every run's data directories and broker
#   logs (each log names where), not only a failed run's.
# Runs one cluster at a time; Ctrl-C stops the run in progress, which
# removes its processes, directories and nftables table itself (and a
# later run removes a table left by a test killed outright).
set -eu
cd "$(dirname "$0")/.."

[ $# -ge 2 ] || { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
seed=$1
seconds=$2
runs=${3:-1}
build=${4:-build}
out=${5:-$(mktemp -d "${TMPDIR:-/tmp}/nagare-faults.XXXXXX")}
mkdir -p "$out"

ninja --quiet -C "$build" tests/test_cluster_faults broker/nagared broker/nagared_sim

child=""
trap '[ -n "$child" ] && kill "$child" 2>/dev/null; wait; exit 130' INT TERM

failed=0
skipped=0
i=0
while [ "$i" -lt "$runs" ]; do
    s=$((seed + i))
    log="$out/seed-$s.log"
    NAGARE_FAULT_SEED=$s NAGARE_FAULT_SECONDS=$seconds NAGARED="$build/broker/nagared" \
        NAGARED_SIM="$build/broker/nagared_sim" "$build/tests/test_cluster_faults" \
        --jobs 1 --verbose --filter 'cluster_faults/mixed' >"$log" 2>&1 &
    child=$!
    rc=0
    wait "$child" || rc=$?
    child=""
    # The checker's summary: verdict, counts, one line per fault.
    line=$(awk -v s="$s" -v rc="$rc" '
        /^checker:/ { verdict = $NF == "FOUND" ? "PROBLEMS" : $NF }
        /^  sent / { gsub(",", ""); acked = $4 }
        /^  lost / { lost = $2 }
        /^  fault / { faults++; sub(/.*without an ack +/, ""); n = $1 + 0; if (n > worst) worst = n }
        /\[SKIP\] cluster_faults::mixed/ { skip = $0 }
        END {
            if (skip != "") { printf "seed %s: skipped (%s)\n", s, skip; exit }
            if (verdict == "") verdict = "NO VERDICT (exit " rc ")"
            else if (rc != 0 && verdict == "OK") verdict = "FAILED (exit " rc "; the checker: OK)"
            printf "seed %s: %s, acknowledged %s, lost %s, %d faults, longest without an ack %s ms\n",
                   s, verdict, acked, lost, faults, worst
        }' "$log")
    echo "$line" | tee -a "$out/summary.txt"
    case "$line" in
    *skipped*) skipped=$((skipped + 1)) ;;
    *": OK,"*) [ "$rc" -eq 0 ] || failed=$((failed + 1)) ;;
    *) failed=$((failed + 1)) ;;
    esac
    i=$((i + 1))
done
# Availability per fault kind over every run: how many, and the median and
# longest stretch one partition went without an acknowledged write.
cat "$out"/seed-*.log | awk '
    /^  fault / {
        kind = $0; sub(/^  fault /, "", kind); sub(/ +lasted.*/, "", kind)
        ms = $0; sub(/.*without an ack +/, "", ms); ms += 0
        n[kind]++; v[kind, n[kind]] = ms
    }
    END {
        printf "%-34s %6s %10s %10s\n", "fault kind", "times", "median ms", "max ms"
        for (k in n) {
            for (i = 1; i <= n[k]; i++) a[i] = v[k, i]
            for (i = 2; i <= n[k]; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) {
                t = a[j]; a[j] = a[j - 1]; a[j - 1] = t
            }
            m = n[k] % 2 ? a[(n[k] + 1) / 2] : (a[n[k] / 2] + a[n[k] / 2 + 1]) / 2
            printf "%-34s %6d %10d %10d\n", k, n[k], m, a[n[k]]
        }
    }' | tee -a "$out/summary.txt"
echo "$((runs - failed - skipped)) passed, $failed failed, $skipped skipped; logs in $out"
[ "$failed" -eq 0 ]
