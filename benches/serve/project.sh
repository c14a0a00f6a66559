# Sourced by the serving benchmarks: build the release CLI, make the demo project DIR of
# PERSONS persons and run it unless it has a run, and write 100,000 of its e-mails
# (URL-encoded, in random order) to /tmp/panorama-bench-emails.txt for wrk.
BIN=target/release/panorama
# PANORAMA_BENCH_NO_BUILD=1 measures the binary already built.
[ -n "${PANORAMA_BENCH_NO_BUILD:-}" ] || cargo build --release -q
if [ ! -f "$DIR/panorama.toml" ]; then
  $BIN demo --persons "$PERSONS" --out "$DIR" -q
fi
if [ ! -f "$DIR/.panorama/current.json" ]; then
  /usr/bin/time -f "run: %e s, peak %M KiB" $BIN run -p "$DIR" -q
fi
emails() {
  $BIN query -p "$DIR" --format csv "SELECT email FROM unified_customers WHERE email IS NOT NULL ORDER BY md5(customer_id) LIMIT 100000" \
    | tail -n +2 | python3 -c "import sys, urllib.parse; [print(urllib.parse.quote(l.strip())) for l in sys.stdin]" > /tmp/panorama-bench-emails.txt
}
