#!/usr/bin/env bash
# A whole `panorama run` on a loopback Ballista cluster (one scheduler, two executors) against
# the same run on one machine: wall time, peak memory of each process, and whether the outputs
# agree.
#
#   benches/ballista/run.sh [PERSONS] [WORK_DIR]
#
# Needs `cargo build --release --features ballista` (done here).
set -euo pipefail
cd "$(dirname "$0")/../.."
PERSONS=${1:-100000}
WORK=${2:-/tmp/panorama-ballista-bench}
BIN=$PWD/target/release/panorama
CLUSTER=$PWD/target/release/panorama-cluster
cargo build --release -q --features ballista --bins
rm -rf "$WORK" && mkdir -p "$WORK"
$BIN demo --persons "$PERSONS" --out "$WORK/local" -q
cp -r "$WORK/local" "$WORK/cluster"
# NO_PREDICTIONS=1 leaves the demo's predictions out on both sides.
for p in $([ "${NO_PREDICTIONS:-0}" = 1 ] && echo local cluster); do
  python3 - "$WORK/$p/panorama.toml" <<'PY'
import re, sys
path = sys.argv[1]
text = open(path).read()
text = re.sub(r"(?ms)^\[predictions[^\n]*\n.*?(?=^\[(?!predictions)|\Z)", "", text)
open(path, "w").write(text)
PY
done
sed -i 's|^\[workspace\]$|[workspace]\nballista = "df://127.0.0.1:50350"|' "$WORK/cluster/panorama.toml"
grep -q '^ballista = ' "$WORK/cluster/panorama.toml"

peak() { grep VmHWM "/proc/$1/status" | tr -s ' ' | cut -d' ' -f2; }
$CLUSTER scheduler --port 50350 > "$WORK/scheduler.log" 2>&1 &
PIDS=($!)
trap 'kill "${PIDS[@]}" 2>/dev/null || true' EXIT
sleep 1
for i in 1 2; do
  $CLUSTER executor --scheduler 127.0.0.1:50350 --port $((50350 + 2 * i)) \
    --grpc-port $((50351 + 2 * i)) --concurrency 1 --work-dir "$WORK/executor$i" \
    > "$WORK/executor$i.log" 2>&1 &
  PIDS+=($!)
done
sleep 2

measure() {
  local name=$1; shift
  /usr/bin/time -f "%e s, %M KB peak" "$@" 2> "$WORK/$name.time" > /dev/null
  echo "$name: $(tail -1 "$WORK/$name.time")"
}
measure "one machine, full" $BIN run -p "$WORK/local" -q
measure "cluster, full" $BIN run -p "$WORK/cluster" -q
# An increment: 1% of the CRM contacts get a new e-mail address.
for p in local cluster; do
  python3 - "$WORK/$p/data/crm_contacts.csv" <<'PY'
import sys
path = sys.argv[1]
lines = open(path, "rb").read().split(b"\n")
for i in range(1, len(lines), 100):
    lines[i] = lines[i].replace(b"@", b".new@", 1)
open(path, "wb").write(b"\n".join(lines))
PY
done
measure "one machine, incremental" $BIN run -p "$WORK/local" -q
measure "cluster, incremental" $BIN run -p "$WORK/cluster" -q
for p in local cluster; do
  echo "$p: $($BIN query -p "$WORK/$p" --format csv "SELECT metric, value FROM unify_stats WHERE metric IN ('incremental', 'touched_records') ORDER BY metric" | tail -2 | tr '\n' ' ')"
done
for i in 1 2; do echo "executor $i peak: $(peak "${PIDS[$i]}") KB"; done
echo "scheduler peak: $(peak "${PIDS[0]}") KB"

# Every output but the run's own bookkeeping (unify_stats has timings, histories have run ids).
for table in unify_records match_pairs match_weights customer_links unified_customers \
    identity_graph activities customer_measures segment_members business_measures \
    predictions_churn predictions_clv recommendations prediction_grades; do
  for p in local cluster; do
    $BIN query -p "$WORK/$p" --format csv "SELECT * FROM $table" > "$WORK/$p.$table.csv" 2>&1 || true
  done
  echo "$table: $(python3 benches/ballista/same.py "$WORK/local.$table.csv" "$WORK/cluster.$table.csv")"
done
