#!/usr/bin/env bash
# Load the same N rows (default 1,000,000) as UTF-8 CSV, Windows-1252 CSV (read with
# encoding = "auto"), an .xlsx workbook (written by openpyxl), an Iceberg table (written by
# pyiceberg in 4 appends, then 10% of its rows deleted by a position delete file, read through
# its SQLite catalog) and a MariaDB table, each as the only source of a project, with the release CLI: `panorama run --full`, whole-process wall time
# and peak RSS (/usr/bin/time), and the source's own load seconds (source_stats).
#
#   benches/sources/load_formats.sh [ROWS] [MYSQL_URL]
#
# Needs python3 with openpyxl and pyiceberg; the MariaDB row needs MYSQL_URL (a database the user may create
# tables in, e.g. the PANORAMA_TEST_MYSQL_URL that .ci/run starts) and the `mariadb` client.
set -euo pipefail
ROWS=${1:-1000000}
MYSQL_URL=${2:-${PANORAMA_TEST_MYSQL_URL:-}}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${PANORAMA_BIN:-$ROOT/target/release/panorama}
export PANORAMA_TESTS_CLIENTS="$ROOT/tests/clients"   # iceberg_deletes.py
WORK=${WORK:-/tmp/panorama-load-formats}
rm -rf "$WORK" && mkdir -p "$WORK/data"
cd "$WORK"

python3 - "$ROWS" <<'PY'
import csv, datetime, random, sys
n = int(sys.argv[1])
rnd = random.Random(7)
first = ["Zoë", "François", "Jürgen", "Ana", "Søren", "Émile", "Inês", "Ann", "Bob", "Chloé", "José", "Mette"]
last = ["Müller", "Lefèvre", "García", "Ørsted", "Smith", "Dubois", "Nuñez", "Kowalczyk", "de Vries", "Åberg"]
city = ["Köln", "Besançon", "Málaga", "Århus", "York", "Zürich", "Linköping", "Gdansk", "Nîmes"]
day0 = datetime.date(1940, 1, 1)
rows = []
for i in range(1, n + 1):
    f, l = rnd.choice(first), rnd.choice(last)
    rows.append([i, f, l, f"{f.lower()}.{l.lower().replace(' ', '')}{i}@example.org",
                 rnd.choice(city), (day0 + datetime.timedelta(days=rnd.randrange(25000))).isoformat(),
                 round(rnd.uniform(0, 500), 2)])
header = ["id", "first_name", "last_name", "email", "city", "born", "spend"]
for name, enc in [("people_utf8.csv", "utf-8"), ("people_1252.csv", "cp1252")]:
    with open("data/" + name, "w", newline="", encoding=enc) as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
import openpyxl
wb = openpyxl.Workbook(write_only=True)
ws = wb.create_sheet("People")
ws.append(header)
for r in rows:
    ws.append(r[:5] + [datetime.date.fromisoformat(r[5]), r[6]])
wb.save("data/people.xlsx")

import os, pyarrow as pa
from pyiceberg.catalog.sql import SqlCatalog
sys.path.insert(0, os.environ["PANORAMA_TESTS_CLIENTS"])
from iceberg_deletes import POSITION, commit_delete, positions
wh = os.path.abspath("data/lake"); os.makedirs(wh)
cat = SqlCatalog("bench", uri=f"sqlite:///{wh}/catalog.db", warehouse=f"file://{wh}")
cat.create_namespace("crm")
cols = list(zip(*rows))
table = pa.table({"id": pa.array(cols[0], pa.int64()), "first_name": list(cols[1]),
                  "last_name": list(cols[2]), "email": list(cols[3]), "city": list(cols[4]),
                  "born": pa.array([datetime.date.fromisoformat(d) for d in cols[5]], pa.date32()),
                  "spend": pa.array(cols[6], pa.float64())})
t = cat.create_table("crm.people", schema=table.schema)
step = (n + 3) // 4
for k in range(0, n, step):
    t.append(table.slice(k, step))
# Merge-on-read: every 10th row of each data file deleted by one position delete file.
paths, at = [], []
for task in t.scan().plan_files():
    for pos in range(0, task.file.record_count, 10):
        paths.append(task.file.file_path); at.append(pos)
commit_delete(t, POSITION, positions(paths, at))
PY

project() { # name, source toml
  mkdir -p "$WORK/$1"
  ln -sf "$WORK/data" "$WORK/$1/data"
  printf '[project]\nname = "%s"\n\n[sources.people]\n%s\nprimary_key = "id"\n' "$1" "$2" > "$WORK/$1/panorama.toml"
}
project csv_utf8 'location = "data/people_utf8.csv"'
project csv_1252 'location = "data/people_1252.csv"
encoding = "auto"'
project xlsx 'location = "data/people.xlsx"'
project iceberg 'location = "sqlite:data/lake/catalog.db"
format = "iceberg"
table = "crm.people"'
if [ -n "$MYSQL_URL" ]; then
  table=people_load_bench
  python3 - "$MYSQL_URL" "$WORK/data/people_utf8.csv" "$table" <<'PY'
import subprocess, sys, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
sql = f"""DROP TABLE IF EXISTS {sys.argv[3]};
CREATE TABLE {sys.argv[3]} (id INT PRIMARY KEY, first_name VARCHAR(40), last_name VARCHAR(40),
  email VARCHAR(120), city VARCHAR(40), born DATE, spend DECIMAL(10,2)) CHARACTER SET utf8mb4;
LOAD DATA LOCAL INFILE '{sys.argv[2]}' INTO TABLE {sys.argv[3]} CHARACTER SET utf8mb4
  FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '"' IGNORE 1 LINES;"""
subprocess.run(["mariadb", "--local-infile=1", "-h", u.hostname, "-P", str(u.port), "-u", u.username,
                f"-p{u.password}", u.path.lstrip("/"), "-e", sql], check=True)
PY
  project mariadb "location = \"$MYSQL_URL\"
table = \"$table\""
fi

printf '%-10s %12s %12s %14s %12s\n' format rows_loaded load_s run_wall_s peak_rss_MB
for p in csv_utf8 csv_1252 xlsx iceberg mariadb; do
  [ -d "$WORK/$p" ] || continue
  /usr/bin/time -f "%e %M" -o "$WORK/$p.time" "$BIN" run --full -q -p "$WORK/$p"
  read -r wall rss < "$WORK/$p.time"
  stats=$("$BIN" query -p "$WORK/$p" --format csv "SELECT rows_loaded, round(seconds, 2) AS s, encoding FROM source_stats" | tail -1)
  IFS=, read -r loaded secs enc <<< "$stats"
  printf '%-10s %12s %12s %14s %12s %s\n' "$p" "$loaded" "$secs" "$wall" "$((rss / 1024))" "$enc"
done
