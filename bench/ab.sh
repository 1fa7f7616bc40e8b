#!/bin/bash
# bench/ab.sh — one single-node nagare build against another, interleaved
# on this machine: produce 1 KiB acks=1, produce 1 KiB acks=all, consume,
# e2e at 10,000 records/s; ROUNDS rounds, the order of the two builds
# alternating each round, 1 GiB written and deleted before every run (the
# VM's latency settles after it). Prints each figure's median for both and
# their ratio (B / A), with every run's value: on a shared VM the spread
# between runs is the first thing to read.
#
# Usage: bench/ab.sh BUILD_A BUILD_B    (release builds: meson setup DIR
#                                        -Dbuildtype=release -Dtests=disabled)
# Knobs: ROUNDS [8], OUT [a temporary directory: the raw JSON of each run],
#   A_ARGS, B_ARGS [none]: more nagare-bench options for every run of that
#   side (word-split), so one build can be set against itself: bench/tls.sh
#   runs plaintext as A and TLS as B this way.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: bench/ab.sh BUILD_A BUILD_B" >&2; exit 2; }
A=$(cd "$1" && pwd)
B=$(cd "$2" && pwd)
ROUNDS=${ROUNDS:-8}
OUT=${OUT:-$(mktemp -d /tmp/nagare-ab.XXXXXX)}
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/nagare-ab-data.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
A_ARGS=${A_ARGS:-}
B_ARGS=${B_ARGS:-}
# nb BUILD SIDE_ARGS COMMAND...: one run of nagare-bench on a broker of its own
nb() {
    local b=$1 side=$2
    shift 2
    # shellcheck disable=SC2086 # the side's options are word-split on purpose
    "$b/bench/nagare-bench" "$@" --spawn-broker "$b/broker/nagared" --broker-dir "$WORK" --json --quiet $side
}
warm() { dd if=/dev/zero of="$WORK/warm" bs=1M count=1024 conv=fsync status=none; rm -f "$WORK/warm"; sync; sleep 3; }
for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) = 1 ]; then order="a b"; else order="b a"; fi
    for v in $order; do
        if [ "$v" = a ]; then b=$A side=$A_ARGS; else b=$B side=$B_ARGS; fi
        echo "round $round/$ROUNDS: $v ($(cut -d' ' -f1 /proc/loadavg) load)" >&2
        warm; nb "$b" "$side" produce --records 2000000 --record-bytes 1024 --batch-bytes 65536 --acks 1 >"$OUT/prod1k.$v.$round.json"
        warm; nb "$b" "$side" produce --records 1000000 --record-bytes 1024 --batch-bytes 65536 --acks all >"$OUT/prodall.$v.$round.json"
        warm; nb "$b" "$side" consume --records 2000000 --record-bytes 1024 --batch-bytes 65536 --acks 1 >"$OUT/consume.$v.$round.json"
        warm; nb "$b" "$side" e2e --rate 10000 --seconds 10 --record-bytes 1024 --acks 1 >"$OUT/e2e.$v.$round.json"
    done
done
echo "A: $A $A_ARGS"; echo "B: $B $B_ARGS"; echo "$ROUNDS rounds, raw JSON in $OUT"
python3 - "$OUT" <<'PY'
import glob, json, re, statistics, sys
runs = {}
for f in glob.glob(sys.argv[1] + "/*.json"):
    m = re.match(r".*/(\w+)\.([ab])\.(\d+)\.json$", f)
    runs.setdefault((m[1], m[2]), []).append(json.load(open(f))["phases"][-1])
def figures(kind, ph):
    if kind == "e2e":
        l = ph["consume"]["latency_ms"]
        return {"e2e p50 ms": l["p50"], "e2e p99 ms": l["p99"]}
    x = ph["consume" if kind == "consume" else "produce"]
    return {kind + " MB/s": x["mb_per_s"]}
for kind in ["prod1k", "prodall", "consume", "e2e"]:
    a = [figures(kind, p) for p in runs[(kind, "a")]]
    b = [figures(kind, p) for p in runs[(kind, "b")]]
    for k in a[0]:
        ma = statistics.median(x[k] for x in a)
        mb = statistics.median(x[k] for x in b)
        print(f"{k:14} A {ma:9.2f}  B {mb:9.2f}  B/A {mb / ma:5.3f}   "
              f"A runs {[round(x[k], 1) for x in a]}  B runs {[round(x[k], 1) for x in b]}")
PY
