#!/usr/bin/env bash
# Data quality at scale: a full run of the demo project (default 1,000,000 people) with the
# release CLI, and how much of it profiling every source column and checking the demo's
# [[expectations]] take (the run's own log: "source profiled", "data quality checked").
# The same run's attribution (every [attribution.<name>], all models; the log's "attributed").
# Then the same Parquet files the run loaded, profiled by DuckDB's SUMMARIZE (min, max,
# approx_unique, avg, std, quartiles, null share per column) in the same session, as a peer.
#
#   benches/quality/profile.sh [PERSONS] [PROJECT_DIR]
#
# Needs python3 with duckdb. Prints one block of figures for benches/README.md.
set -euo pipefail
PERSONS=${1:-1000000}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${PANORAMA_BIN:-$ROOT/target/release/panorama}
DIR=${2:-/tmp/panorama-quality-$PERSONS}
if [ ! -f "$DIR/panorama.toml" ]; then
  "$BIN" demo --persons "$PERSONS" --out "$DIR" -q
fi
LOG=$(mktemp)
/usr/bin/time -v "$BIN" run -p "$DIR" --full -v 2> "$LOG" > /dev/null
RUN=$(python3 -c "import json;print(json.load(open('$DIR/.panorama/current.json'))['run_id'])")
python3 - "$LOG" "$DIR/.panorama/runs/$RUN" <<'PY'
import json, os, re, sys, time
log, run = re.sub(r"\x1b\[[0-9;]*m", "", open(sys.argv[1]).read()), sys.argv[2]
def num(pattern):
    m = re.findall(pattern, log)
    return [float(x) for x in m]
wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", log).group(1)
parts = [float(p) for p in wall.split(":")]
wall_s = parts[-1] + 60 * parts[-2] + (3600 * parts[-3] if len(parts) > 2 else 0)
peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", log).group(1)) / 1024 / 1024
profiled = re.findall(r'source profiled source=(\S+) seconds=([0-9.]+)', log)
checked = num(r'data quality checked .*?seconds=([0-9.]+)')
m = json.load(open(os.path.join(run, "manifest.json")))
q = m.get("quality") or {}
rows = sum(s["rows_loaded"] for s in m["sources"])
print(f"run {os.path.basename(run)}: {len(m['sources'])} sources, {rows:,} rows, whole run {wall_s:.1f} s, peak {peak:.2f} GiB")
print(f"data quality step (profiles + expectations): {q.get('seconds', float('nan')):.2f} s "
      f"= {100 * q.get('seconds', 0) / wall_s:.1f}% of the run; {q.get('columns_profiled')} columns, "
      f"{q.get('passed')}/{q.get('checks')} expectations passed")
prof_total = sum(float(s) for _, s in profiled)
print(f"profiling alone: {prof_total:.2f} s = {100 * prof_total / wall_s:.1f}% of the run; "
      f"expectations {q.get('seconds', 0) - prof_total:.2f} s")
for name, s in profiled:
    print(f"  {name:<20} {float(s):6.2f} s")
# Attribution (issue 23's other "each <= 15% of a full run"), from the same run's log.
for name, paths, conv, secs in re.findall(r'attributed attribution=(\S+) paths=(\d+) conversions=(\d+) seconds=([0-9.]+)', log):
    print(f"attribution {name}: {int(paths):,} paths, {int(conv):,} conversions, all models {float(secs):.2f} s "
          f"= {100 * float(secs) / wall_s:.1f}% of the run")
import duckdb
con = duckdb.connect()
con.execute("SET threads = 2")
total = 0.0
for s in m["sources"]:
    path = os.path.join(run, "sources", s["name"], "*.parquet")
    t = time.perf_counter()
    con.execute(f"SUMMARIZE SELECT * FROM read_parquet('{path}')").fetchall()
    d = time.perf_counter() - t
    total += d
    print(f"  duckdb SUMMARIZE {s['name']:<20} {d:6.2f} s")
print(f"DuckDB {duckdb.__version__} SUMMARIZE of the same files: {total:.2f} s; Panorama's profile / DuckDB = {prof_total / total:.2f}")
PY
rm -f "$LOG"
