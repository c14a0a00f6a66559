#!/usr/bin/env bash
# Real-time match benchmark: POST /api/match with 16 concurrent clients (wrk) against the
# demo's unified customers.
#
#   benches/match/run.sh [PROJECT_DIR] [PERSONS]
#
# Builds and runs the demo project (default 1,000,000 persons) when PROJECT_DIR has no run.
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR=${1:-/tmp/panorama-serve-bench}
PERSONS=${2:-1000000}
BIN=target/release/panorama
cargo build --release -q
if [ ! -f "$DIR/panorama.toml" ]; then
  $BIN demo --persons "$PERSONS" --out "$DIR" -q
fi
if [ ! -f "$DIR/.panorama/current.json" ]; then
  $BIN run -p "$DIR" -q
fi
python3 benches/match/bodies.py "$DIR/data/crm_contacts.csv" /tmp/panorama-match-bodies.jsonl 20000

LOG=/tmp/panorama-match-bench.log
$BIN serve -p "$DIR" --pg-port 55434 --flight-port 55052 --http-port 58081 > "$LOG" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
until grep -q '^ready' "$LOG"; do sleep 0.2; kill -0 $SERVER; done
STARTED=$(date +%s.%N)
# The first match builds the matcher (reads every staged record, indexes the blocking keys).
curl -s -o /dev/null -X POST -H 'content-type: application/json' \
  --data "$(head -1 /tmp/panorama-match-bodies.jsonl)" http://127.0.0.1:58081/api/match
echo "matcher build (first request): $(echo "$(date +%s.%N) - $STARTED" | bc) s"
echo "--- one answer"
head -1 /tmp/panorama-match-bodies.jsonl | curl -s -X POST -H 'content-type: application/json' \
  --data @- http://127.0.0.1:58081/api/match | python3 -c "import json,sys; r=json.load(sys.stdin); print(r['status'], r['customer_id'], r['score'], len(r['candidates']), 'candidates')"
echo "--- POST /api/match, 16 connections, one wrk thread, 30 s (after a 5 s warm-up)"
wrk -t1 -c16 -d5s -s benches/match/match.lua http://127.0.0.1:58081 -- /tmp/panorama-match-bodies.jsonl >/dev/null 2>&1
wrk -t1 -c16 -d30s --latency -s benches/match/match.lua http://127.0.0.1:58081 -- /tmp/panorama-match-bodies.jsonl \
  2>/tmp/panorama-match-errors.txt | grep -E "Requests/sec|requests=|Latency  "
echo "non-200 answers: $(wc -l < /tmp/panorama-match-errors.txt)"
echo "server memory: $(grep -E 'VmHWM|VmRSS' /proc/$SERVER/status | tr -s ' ' | tr '\n' ' ')"
kill $SERVER; wait $SERVER 2>/dev/null || true
