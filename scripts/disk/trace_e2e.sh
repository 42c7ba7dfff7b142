#!/bin/bash
# One end-to-end bench run at 120,000 records/s with the broker's fdatasyncs traced
# (perf trace), as in BENCHMARKS.md's eighth pass. Needs perf and target/release/vltava.
# Usage: scripts/disk/trace_e2e.sh OUTDIR [extra bench args]
out=$1; shift
data=$out/data
mkdir -p "$out"; rm -rf "$data"
"$(dirname "$0")"/../../target/release/vltava bench --data-dir "$data" --records 200000 --partitions 6 --e2e-rate 120000 --e2e-secs 8 --json "$out/bench.json" "$@" > "$out/bench.log" 2>&1 &
BP=$!
for i in $(seq 1 50); do BR=$(pgrep -P $BP -f " serve"); [ -n "$BR" ] && break; sleep 0.1; done
echo "bench=$BP broker=$BR" > "$out/pids"
perf trace -p $BR -e fdatasync -o "$out/trace-broker.txt" > /dev/null 2>&1 & T2=$!
wait $BP
kill -INT $T2 2>/dev/null; wait $T2 2>/dev/null
rm -rf "$data"
