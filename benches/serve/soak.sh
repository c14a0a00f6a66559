#!/usr/bin/env bash
# Soak: lookups stay fast and the server's memory stays bounded while heavy queries and
# connection floods run (issue 22). For SECONDS (default 120) at once, on loopback:
#   - 32 lookup clients by e-mail, as in run.sh: half the time on an open loop at 1,000
#     lookups/s (an app's load; latency counted from when each lookup was due), half flat
#     out with wrk (2 threads; latency at saturation);
#   - heavy SQL without pause from 3 psql loops (a self-join of every customer by postcode, a
#     group-by of every customer, and a value larger than a query's memory that must be
#     refused), more than the server gives turns to;
#   - connection floods every 10 s: 2,000 idle HTTP and 300 idle PostgreSQL sockets held 5 s.
# Reports the lookup latency, what became of the heavy queries, health latency, and the
# server's resident memory (sampled every second, and its peak) against `[serve] memory`.
#
#   benches/serve/soak.sh [PROJECT_DIR] [PERSONS] [SECONDS]
#
# Builds the demo project (default 1,000,000 persons) and runs it when PROJECT_DIR has no run
# yet. The [serve] section is the defaults except `memory`, given so the bound is explicit.
# Needs wrk, psql and python3.
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR=${1:-/tmp/panorama-serve-bench}
PERSONS=${2:-1000000}
SECONDS_TOTAL=${3:-120}
source benches/serve/project.sh
grep -q '^\[serve\]' "$DIR/panorama.toml" || printf '\n[serve]\nmemory = "2G"\n' >> "$DIR/panorama.toml"
echo "[serve] of the project:"; sed -n '/^\[serve\]/,/^\[/p' "$DIR/panorama.toml" | grep -v '^\[' | grep -v '^$' | sed 's/^/  /'
emails

LOG=/tmp/panorama-soak.log
OUT=/tmp/panorama-soak
rm -rf "$OUT"; mkdir -p "$OUT"
$BIN serve -p "$DIR" --pg-port 55433 --flight-port 55051 --http-port 58080 > "$LOG" 2>&1 &
SERVER=$!
PIDS=()
cleanup() { kill "${PIDS[@]}" 2>/dev/null || true; kill $SERVER 2>/dev/null || true; }
trap cleanup EXIT
until grep -q '^ready' "$LOG"; do sleep 0.2; kill -0 $SERVER; done

echo "--- baseline: lookups alone, 32 connections, 20 s (after a 5 s warm-up)"
wrk -t2 -c32 -d5s -s benches/serve/lookup.lua http://127.0.0.1:58080 -- /tmp/panorama-bench-emails.txt >/dev/null
wrk -t2 -c32 -d20s --latency -s benches/serve/lookup.lua http://127.0.0.1:58080 -- /tmp/panorama-bench-emails.txt \
  | grep -E "Requests/sec|requests="
echo "server memory before the soak (run loaded, index in memory): $(grep VmRSS /proc/$SERVER/status | tr -s ' ')"

END=$(( $(date +%s) + SECONDS_TOTAL ))
heavy() { # name sql
  local n=0
  while [ "$(date +%s)" -lt "$END" ]; do
    n=$((n + 1))
    if out=$(psql -X -At -h 127.0.0.1 -p 55433 -d panorama -c "$2" 2>&1); then
      echo ok >> "$OUT/$1"
    elif grep -q "server busy" <<<"$out"; then echo busy >> "$OUT/$1"
    elif grep -q "query_timeout" <<<"$out"; then echo timeout >> "$OUT/$1"
    elif grep -q "over the limit" <<<"$out"; then echo refused_size >> "$OUT/$1"
    elif grep -q "Resources exhausted" <<<"$out"; then echo memory >> "$OUT/$1"
    else echo "other: $out" >> "$OUT/$1"; fi
  done
}
heavy self_join "SELECT count(*) FROM unified_customers a JOIN unified_customers b ON a.postcode = b.postcode AND a.customer_id < b.customer_id" &
PIDS+=($!)
heavy group_by "SELECT last_name, count(*), count(DISTINCT email), max(length(concat(first_name, last_name, street))) FROM unified_customers GROUP BY last_name ORDER BY 2 DESC LIMIT 10" &
PIDS+=($!)
heavy too_big "SELECT length(repeat(customer_id, 200000000)) FROM unified_customers LIMIT 1" &
PIDS+=($!)
python3 - "$END" > "$OUT/floods" 2>&1 <<'PY' &
import socket, sys, time, resource
end = float(sys.argv[1])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 10000), hard))
waves = 0
while time.time() < end - 6:
    socks = []
    for port, n in ((58080, 2000), (55433, 300)):
        for _ in range(n):
            try:
                socks.append(socket.create_connection(("127.0.0.1", port), timeout=2))
            except OSError:
                pass
    waves += 1
    print(f"wave {waves}: {len(socks)} idle sockets open", flush=True)
    time.sleep(5)
    for s in socks:
        s.close()
    time.sleep(5)
PY
PIDS+=($!)
( while [ "$(date +%s)" -lt "$END" ]; do
    grep VmRSS /proc/$SERVER/status | awk '{print $2}' >> "$OUT/rss_kib"
    curl -s -o /dev/null -w '%{time_total}\n' http://127.0.0.1:58080/api/health >> "$OUT/health_s" || echo fail >> "$OUT/health_s"
    sleep 1
  done ) &
PIDS+=($!)

SOAK_LOOKUP=$(( (SECONDS_TOTAL - 10) / 2 ))
echo "--- soak: lookups, 32 connections, while heavy queries and floods run"
sleep 5
echo "first ${SOAK_LOOKUP} s on an open loop at 1,000 lookups/s (benches/openloop.py: latency from when each was due)"
python3 benches/openloop.py --url http://127.0.0.1:58080 --rate 1000 --connections 32 --seconds "$SOAK_LOOKUP" \
  lookup --emails /tmp/panorama-bench-emails.txt
echo "then ${SOAK_LOOKUP} s flat out (wrk, closed loop)"
wrk -t2 -c32 -d${SOAK_LOOKUP}s --latency -s benches/serve/lookup.lua http://127.0.0.1:58080 -- /tmp/panorama-bench-emails.txt \
  | grep -E "Requests/sec|requests=|Socket errors"
wait "${PIDS[@]}" 2>/dev/null || true
PIDS=()
echo "--- heavy queries (outcomes)"
for f in self_join group_by too_big; do echo "$f: $(sort "$OUT/$f" | uniq -c | tr -s ' ' | tr '\n' ';')"; done
echo "--- floods: $(tail -1 "$OUT/floods")"
echo "--- health: $(grep -c fail "$OUT/health_s" || true) failed; seconds p50/max: $(grep -v fail "$OUT/health_s" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)] " / " a[NR]}')"
echo "--- server memory: RSS max $(sort -n "$OUT/rss_kib" | tail -1) KiB over $(wc -l < "$OUT/rss_kib") samples; $(grep -E 'VmHWM' /proc/$SERVER/status | tr -s ' ')"
kill -0 $SERVER && echo "server alive"
