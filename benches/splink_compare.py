#!/usr/bin/env python3
"""Panorama vs Splink on the same generated customers, in one run.

    python3 -m venv /tmp/splinkenv && /tmp/splinkenv/bin/pip install splink pyarrow
    cargo build --release
    /tmp/splinkenv/bin/python benches/splink_compare.py --persons 100000
    /tmp/splinkenv/bin/python benches/splink_compare.py --generator people --persons 3000 --seed 7

1. `panorama demo` (or, with `--generator people`, the independent generator
   benches/generators/people.py) writes N people's records (CRM, webshop, loyalty) and the ground truth.
2. `panorama run` loads and unifies them (default probabilistic matching); its unify-stage
   time comes from the run manifest, its peak RSS from wait4.
3. Splink (DuckDB backend) deduplicates Panorama's staged records (`unify_records`: the same
   normalized names, e-mails, phone digits, dates and addresses, so only the matching
   differs; Splink gets our normalizers for free). Its settings are what Splink's docs
   recommend: NameComparison (Jaro-Winkler) with term frequencies on names, EmailComparison,
   exact phone, DateOfBirthComparison, exact postcode and city, Levenshtein street; the same
   four blocking rules as Panorama; lambda from deterministic rules, u by random sampling
   (1M pairs), m by EM over three blocking rules; clusters at match probability 0.95. It runs
   in its own process so its time and peak memory are its own.
4. Both are scored against the truth: pairwise precision, recall and F1 over the same records.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path


def run_measured(cmd):
    """Run cmd; return (wall seconds, peak RSS in MiB, stdout)."""
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(map(str, cmd))}")
    return wall, usage.ru_maxrss / 1024, out


def pairwise(assignments, truth):
    """Pairwise precision/recall/F1 of {uid: cluster} against {uid: person}."""
    uids = [u for u in assignments if u in truth]
    c2 = lambda n: n * (n - 1) // 2
    tp = sum(c2(n) for n in Counter((assignments[u], truth[u]) for u in uids).values())
    pred = sum(c2(n) for n in Counter(assignments[u] for u in uids).values())
    act = sum(c2(n) for n in Counter(truth[u] for u in uids).values())
    p, r = tp / pred, tp / act
    return p, r, 2 * p * r / (p + r), len(uids)


def splink_child(records_parquet, out_csv):
    """Runs in its own process: Splink dedupe of the staged records."""
    import duckdb
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    started = time.monotonic()
    con = duckdb.connect()
    columns = set(con.sql(f"SELECT * FROM read_parquet('{records_parquet}') LIMIT 0").columns)
    # The independent generator (benches/generators/people.py) maps a national id as an
    # `identifier` field; Splink gets it as an exact comparison and a blocking rule.
    national_id = "national_id" in columns
    table = con.sql(
        f"""SELECT uid, first_name, last_name, last_name_phonetic, email, phone_digits,
                   birth_date, postcode, street, city{", national_id" if national_id else ""}
            FROM read_parquet('{records_parquet}')"""
    ).arrow()
    if hasattr(table, "read_all"):  # duckdb 2 returns a RecordBatchReader
        table = table.read_all()
    db_api = DuckDBAPI(connection=con)
    df = db_api.register(table, table_name="records")
    blocking = [
        block_on("email"),
        block_on("phone_digits"),
        block_on("last_name_phonetic", "birth_date"),
        block_on("postcode", "street"),
    ] + ([block_on("national_id")] if national_id else [])
    settings = SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="uid",
        comparisons=[
            cl.NameComparison("first_name").configure(term_frequency_adjustments=True),
            cl.NameComparison("last_name").configure(term_frequency_adjustments=True),
            cl.EmailComparison("email"),
            cl.ExactMatch("phone_digits"),
            cl.DateOfBirthComparison("birth_date", input_is_string=False),
            cl.ExactMatch("postcode"),
            cl.LevenshteinAtThresholds("street", 2),
            cl.ExactMatch("city"),
        ] + ([cl.ExactMatch("national_id")] if national_id else []),
        blocking_rules_to_generate_predictions=blocking,
        retain_intermediate_calculation_columns=False,
        retain_matching_columns=False,
    )
    linker = Linker(df, settings, log_level="WARNING")
    linker.training.estimate_probability_two_random_records_match(
        [block_on("email", "first_name"), block_on("phone_digits", "last_name")], recall=0.7
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6)
    for rule in blocking[:3]:
        linker.training.estimate_parameters_using_expectation_maximisation(rule)
    predictions = linker.inference.predict(threshold_match_probability=0.5)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_probability=0.95
    )
    clusters.as_duckdbpyrelation().select("uid, cluster_id").write_csv(out_csv)
    print(json.dumps({"seconds": time.monotonic() - started}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--persons", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--panorama", default=str(Path(__file__).resolve().parent.parent / "target/release/panorama"))
    ap.add_argument("--workdir", default=None, help="default: a new temporary directory")
    ap.add_argument(
        "--generator",
        choices=["demo", "people"],
        default="demo",
        help="demo: `panorama demo`; people: the independent generator benches/generators/people.py",
    )
    ap.add_argument("--splink-child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.splink_child:
        splink_child(*args.splink_child)
        return

    work = Path(args.workdir or tempfile.mkdtemp(prefix="panorama-vs-splink-"))
    project = work / "demo"
    pano = args.panorama
    if args.generator == "demo":
        subprocess.run([pano, "demo", "--persons", str(args.persons), "--seed", str(args.seed), "--out", str(project), "-q"], check=True)
    else:
        people = Path(__file__).resolve().parent / "generators" / "people.py"
        subprocess.run([sys.executable, str(people), "--persons", str(args.persons), "--seed", str(args.seed), "--out", str(project), "--quiet"], check=True)

    wall, rss, _ = run_measured([pano, "run", "-p", str(project), "-q"])
    ws = project / ".panorama"
    run_id = json.loads((ws / "current.json").read_text())["run_id"]
    manifest = json.loads((ws / "runs" / run_id / "manifest.json").read_text())
    unify_seconds = manifest["unify"]["seconds"]
    records_parquet = ws / "runs" / run_id / "tables" / "unify_records.parquet"

    def csv_query(sql):
        out = subprocess.run([pano, "query", "-p", str(project), "--format", "csv", sql], check=True, capture_output=True, text=True).stdout
        return [line.split(",") for line in out.strip().splitlines()[1:]]

    truth = {}
    for line in (project / "truth.csv").read_text().splitlines()[1:]:
        s, r, p = line.split(",")[:3]
        truth[f"{s}:{r}"] = p
    panorama_clusters = dict(csv_query("SELECT uid, customer_id FROM customer_links"))
    pp, pr, pf, n = pairwise(panorama_clusters, truth)

    out_csv = work / "splink_clusters.csv"
    s_wall, s_rss, s_out = run_measured([sys.executable, __file__, "--splink-child", str(records_parquet), str(out_csv)])
    s_seconds = json.loads(s_out.strip().splitlines()[-1])["seconds"]
    splink_clusters = {}
    for line in out_csv.read_text().splitlines()[1:]:
        uid, cluster = line.rsplit(",", 1)
        splink_clusters[uid.strip('"')] = cluster
    sp, sr, sf, sn = pairwise(splink_clusters, truth)

    print(f"\n{args.generator}: {args.persons:,} persons, {n:,} records (Splink scored {sn:,})\n")
    print("| tool | matching time | process wall | peak RSS | precision | recall | F1 |")
    print("|---|---|---|---|---|---|---|")
    print(f"| Panorama (unify stage; run also loads 5 sources) | {unify_seconds:.1f} s | {wall:.1f} s | {rss / 1024:.2f} GiB | {pp:.3f} | {pr:.3f} | **{pf:.3f}** |")
    print(f"| Splink {__import__('importlib.metadata').metadata.version('splink')} (DuckDB) | {s_seconds:.1f} s | {s_wall:.1f} s | {s_rss / 1024:.2f} GiB | {sp:.3f} | {sr:.3f} | **{sf:.3f}** |")


if __name__ == "__main__":
    main()
