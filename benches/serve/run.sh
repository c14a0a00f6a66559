#!/usr/bin/env bash
# Serving benchmark: HTTP lookups by e-mail with 32 concurrent clients (wrk), and one
# analytical query through PostgreSQL wire (psql), Flight SQL (ADBC) and `panorama query`.
#
#   benches/serve/run.sh [PROJECT_DIR] [PERSONS]
#
# Builds the demo project (default 1,000,000 persons) and runs it when PROJECT_DIR has no
# run yet. Needs wrk, psql and python3 with adbc_driver_flightsql (see .ci/run).
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR=${1:-/tmp/panorama-serve-bench}
PERSONS=${2:-1000000}
source benches/serve/project.sh
emails

LOG=/tmp/panorama-serve-bench.log
$BIN serve -p "$DIR" --pg-port 55433 --flight-port 55051 --http-port 58080 > "$LOG" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
STARTED=$(date +%s.%N)
until grep -q '^ready' "$LOG"; do sleep 0.2; kill -0 $SERVER; done
echo "startup (load index): $(echo "$(date +%s.%N) - $STARTED" | bc) s"
head -1 "$LOG"

echo "--- HTTP lookup by e-mail, 32 connections, 2 wrk threads, 30 s (after a 5 s warm-up)"
wrk -t2 -c32 -d5s -s benches/serve/lookup.lua http://127.0.0.1:58080 -- /tmp/panorama-bench-emails.txt >/dev/null
wrk -t2 -c32 -d30s --latency -s benches/serve/lookup.lua http://127.0.0.1:58080 -- /tmp/panorama-bench-emails.txt \
  | grep -E "Requests/sec|requests=|Latency  "

SQL="SELECT m.segment, count(*) AS members, round(avg(p.lifetime_spend), 2) AS avg_spend FROM segment_members m JOIN customer_profiles p ON p.customer_id = m.customer_id GROUP BY m.segment ORDER BY m.segment"
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
timeit() { for _ in 1 2 3 4 5; do /usr/bin/time -f "%e" "$@" >/dev/null 2>>/tmp/panorama-t.txt; tail -1 /tmp/panorama-t.txt; done | median; }
echo "--- one analytical query (segment sizes and mean spend), median of 5, wall seconds"
echo "panorama query: $(timeit $BIN query -p "$DIR" "$SQL")"
echo "psql (pgwire):  $(timeit psql -X -At -h 127.0.0.1 -p 55433 -d panorama -c "$SQL")"
echo "ADBC (Flight):  $(timeit python3 tests/clients/sql_client.py adbc grpc://127.0.0.1:55051 "$SQL")"
echo "python3 start + ADBC import alone: $(timeit python3 -c 'import adbc_driver_flightsql.dbapi')"
echo "server memory: $(grep -E 'VmHWM|VmRSS' /proc/$SERVER/status | tr -s ' ' | tr '\n' ' ')"
kill $SERVER; wait $SERVER 2>/dev/null || true
