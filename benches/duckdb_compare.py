#!/usr/bin/env python3
"""Run a Panorama run's measures-and-segments SQL on DuckDB, over the same Parquet files.

Every run writes the statements it executed to `<run>/analytics.sql`, with a header naming
its inputs (Parquet files) and its `as_of`. This script replays that file on DuckDB in one
process: inputs become views over the same files, `as_of()` and Panorama's merge aggregates
become macros, temporary steps become temp tables, and outputs are written to Parquet and
read back (as Panorama does). It prints the time of the statements and the process's peak
memory, and checks that DuckDB's outputs agree with Panorama's (row counts, segment sizes,
business measures).

    python3 -m venv /tmp/duckenv && /tmp/duckenv/bin/pip install duckdb
    /tmp/duckenv/bin/python benches/duckdb_compare.py PROJECT_DIR [--threads 2]
"""

import argparse
import json
import math
import os
import re
import resource
import sys
import tempfile
import time

import duckdb


def parse(script):
    """Header (as_of, inputs) and steps [(kind, name, sql)] of an analytics.sql."""
    as_of = re.search(r"^-- as_of: (\S+)$", script, re.M).group(1)
    inputs = re.findall(r"^-- input: (\S+) (.+)$", script, re.M)
    steps = []
    for m in re.finditer(r"^-- (output|temp): (\S+)\n(.*?);\n(?=\n-- |\Z)", script, re.M | re.S):
        steps.append((m.group(1), m.group(2), m.group(3)))
    return as_of, inputs, steps


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("project")
    ap.add_argument("--run", help="run id (default: the current run)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()

    ws = os.path.join(args.project, ".panorama")
    run = args.run or json.load(open(os.path.join(ws, "current.json")))["run_id"]
    run_dir = os.path.join(ws, "runs", run)
    manifest = json.load(open(os.path.join(run_dir, "manifest.json")))
    as_of, inputs, steps = parse(open(os.path.join(run_dir, "analytics.sql")).read())

    out = tempfile.mkdtemp(prefix="duckdb-analytics-")
    con = duckdb.connect()
    con.execute(f"SET threads = {args.threads}")
    con.execute("SET preserve_insertion_order = false")
    for name, path in inputs:
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{path}')")
    con.execute(f"CREATE MACRO as_of() AS TIMESTAMP '{as_of.replace('T', ' ')}'")
    # Panorama's merge-precedence aggregates in DuckDB's words.
    con.execute("CREATE MACRO most_recent(v, t) AS arg_max(v, t)")
    con.execute("CREATE MACRO least_recent(v, t) AS arg_min(v, t)")
    con.execute("CREATE MACRO by_priority(v, p) AS arg_min(v, p)")

    timings = []
    started = time.perf_counter()
    for kind, name, sql in steps:
        t = time.perf_counter()
        if kind == "temp":
            con.execute(f"CREATE TEMP TABLE {name} AS {sql}")
        else:
            path = os.path.join(out, f"{name}.parquet")
            con.execute(f"COPY ({sql}) TO '{path}' (FORMAT parquet, COMPRESSION snappy)")
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{path}')")
        timings.append((name, time.perf_counter() - t))
    total = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024

    ours = manifest.get("analytics") or {}
    print(f"run {run}, as_of {as_of}, DuckDB {duckdb.__version__}, {args.threads} threads")
    for name, s in timings:
        if s >= 0.05:
            print(f"  {name:<40} {s:7.2f} s")
    print(f"DuckDB:   {total:.2f} s for {len(steps)} statements, peak RSS {peak:.2f} GiB")
    if "seconds" in ours:
        print(f"Panorama: {ours['seconds']:.2f} s (the run's measures-and-segments stage)")
        print(f"ratio Panorama / DuckDB: {ours['seconds'] / total:.2f}")

    # The two engines must agree.
    tables = os.path.join(run_dir, "tables")
    problems = []
    for kind, name, _ in steps:
        if kind != "output":
            continue
        a = con.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
        b = con.execute(f"SELECT count(*) FROM read_parquet('{tables}/{name}.parquet')").fetchone()[0]
        if a != b:
            problems.append(f"{name}: DuckDB {a} rows, Panorama {b}")
    diff = con.execute(f"""
        SELECT count(*) FROM (
          (SELECT segment, members FROM segment_sizes WHERE run_id = '{run}'
           EXCEPT SELECT segment, members FROM read_parquet('{tables}/segment_sizes.parquet') WHERE run_id = '{run}')
          UNION ALL
          (SELECT segment, members FROM read_parquet('{tables}/segment_sizes.parquet') WHERE run_id = '{run}'
           EXCEPT SELECT segment, members FROM segment_sizes WHERE run_id = '{run}'))""").fetchone()[0]
    if diff:
        problems.append(f"segment_sizes: {diff} rows differ")
    theirs = dict(((m, b), v) for m, b, v in con.execute(
        "SELECT measure, by_value, value FROM business_measures").fetchall())
    mine = dict(((m, b), v) for m, b, v in con.execute(
        f"SELECT measure, by_value, value FROM read_parquet('{tables}/business_measures.parquet')").fetchall())
    for k in sorted(set(theirs) | set(mine), key=str):
        a, b = theirs.get(k), mine.get(k)
        if a is None or b is None or not math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6):
            problems.append(f"business measure {k}: DuckDB {a}, Panorama {b}")
    if problems:
        print("DIFFERENCES:\n  " + "\n  ".join(problems))
        sys.exit(1)
    print("outputs agree: row counts, segment sizes, business measures")


if __name__ == "__main__":
    main()
