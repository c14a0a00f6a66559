#!/usr/bin/env bash
# Event collection benchmark: first on an open loop at fixed rates (benches/openloop.py:
# batches of 100 at 50,000 events/s, single events at 5,000/s, each beside 1,000 lookups by
# e-mail a second), then flat out with wrk (batches of 100 on 8 connections, single events on
# 32, lookups beside them); then a run over everything collected.
#
#   benches/events/ingest.sh [PROJECT_DIR] [PERSONS]
#
# Builds the demo project (default 100,000 persons), adds an events source, runs it when it
# has no run yet. Needs wrk and python3 (as the serving benchmark).
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR=${1:-/tmp/panorama-events-bench}
PERSONS=${2:-100000}
source benches/serve/project.sh
if ! grep -q 'format = "events"' "$DIR/panorama.toml"; then
  cat >> "$DIR/panorama.toml" <<'TOML'

[sources.tracked]
location = "collected"
format = "events"
primary_key = "message_id"

[unify.identities.tracked]
anonymous_id = "anonymous_id"
id_type = "cookie"
email = "email"
timestamp = "ts"

[activities.tracked]
source = "tracked"
anonymous_id = "anonymous_id"
timestamp = "ts"
type_column = "event"
TOML
  $BIN run -p "$DIR" -q
fi
emails
KEY=$($BIN write-keys create "bench$(date +%s)" -p "$DIR" -q)
LOG=/tmp/panorama-events-bench.log
$BIN serve -p "$DIR" --pg-port 55434 --flight-port 55052 --http-port 58081 > "$LOG" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
until grep -q '^ready' "$LOG"; do sleep 0.2; kill -0 $SERVER; done
URL=http://127.0.0.1:58081
du_events() { du -sh "$DIR/collected" | cut -f1; }
written() { curl -s "$URL/metrics" | awk '/^panorama_events_written_total/ {print $2}'; }

# Open loop (benches/openloop.py): requests sent on a timetable, latency counted from when
# each was due, so a stall counts for every request it delays. The issue's targets are read
# here: batches at 50,000 events/s, single events at a fixed rate, lookups beside them.
OPEN="python3 benches/openloop.py --url $URL"
echo "--- open loop: batches of 100 at 50,000 events/s (8 connections) with 1,000 lookups/s (32), 60 s"
$OPEN --rate 500 --connections 8 --seconds 60 --processes 1 events --batch 100 --key "$KEY" | sed 's/^/batches: /' &
BATCHES=$!
$OPEN --rate 1000 --connections 32 --seconds 60 lookup --emails /tmp/panorama-bench-emails.txt | sed 's/^/lookups: /'
wait $BATCHES
echo "--- open loop: single events at 5,000/s (32 connections) with 1,000 lookups/s (32), 60 s"
$OPEN --rate 5000 --connections 32 --seconds 60 events --batch 1 --key "$KEY" | sed 's/^/single: /' &
SINGLE=$!
$OPEN --rate 1000 --connections 32 --seconds 60 lookup --emails /tmp/panorama-bench-emails.txt | sed 's/^/lookups: /'
wait $SINGLE
echo "server memory: $(grep -E 'VmHWM|VmRSS' /proc/$SERVER/status | tr -s ' ' | tr '\n' ' ')"

echo "--- closed loop (wrk, flat out) from here"
echo "--- lookups alone (32 connections, 20 s)"
wrk -t1 -c32 -d20s --latency -s benches/serve/lookup.lua $URL -- /tmp/panorama-bench-emails.txt | grep requests=

echo "--- batches of 100 events alone, 8 connections, 30 s (after a 5 s warm-up)"
wrk -t1 -c8 -d5s -s benches/events/events.lua $URL -- 100 "$KEY" >/dev/null
BEFORE=$(written)
wrk -t1 -c8 -d30s --latency -s benches/events/events.lua $URL -- 100 "$KEY" | grep requests=
echo "events written in 30 s: $(( $(written) - BEFORE ))"

echo "--- batches of 100 events with lookups at the same time (both as fast as they can), 30 s"
BEFORE=$(written)
wrk -t1 -c32 -d30s --latency -s benches/serve/lookup.lua $URL -- /tmp/panorama-bench-emails.txt | sed 's/^/lookups: /' | grep requests= &
LOOKUPS=$!
wrk -t1 -c8 -d30s --latency -s benches/events/events.lua $URL -- 100 "$KEY" | sed 's/^/batches: /' | grep requests=
wait $LOOKUPS
echo "events written in 30 s: $(( $(written) - BEFORE ))"

echo "--- single events, 32 connections, 30 s"
BEFORE=$(written)
wrk -t1 -c32 -d30s --latency -s benches/events/events.lua $URL -- 1 "$KEY" | grep requests=
echo "events written in 30 s: $(( $(written) - BEFORE ))"
curl -s "$URL/metrics" | grep -E '^panorama_events_(flushes|duplicates|rejected)'
echo "collected on disk: $(du_events)"
echo "server memory: $(grep -E 'VmHWM|VmRSS' /proc/$SERVER/status | tr -s ' ' | tr '\n' ' ')"
sleep 12  # let the last segment seal and compact
kill $SERVER; wait $SERVER 2>/dev/null || true
echo "--- a run over everything collected"
/usr/bin/time -f "run: %e s, peak %M KiB" $BIN run -p "$DIR" -q
$BIN query -p "$DIR" "SELECT count(*) AS events, count(DISTINCT message_id) AS ids FROM tracked"
