#!/usr/bin/env python3
"""What any classifier could reach on a run's records, and where the run falls short of it.

Reads a project's last run (`unify_records`, `customer_links`) and the generator's
`truth.csv`. Pairs whose records share their surname and nothing else both records hold
(no field the run compared — but the names and gender — filled on both sides) can be told
apart only by the names themselves:

- C1: first and last name equal. Grouped by how many records hold that full name, with the
  share of true matches among all such pairs (true and not) and how many the run linked.
- C2: surname equal, first names different (call names, nicknames).

The ceiling links every other true pair and no false one (optimistic: a bound, not an
estimate), then adds the C1 pairs whose full name is held by at most k records, with
transitive closure, scored pairwise as `panorama eval` does.

    python3 benches/generators/ceiling.py /tmp/pp100k
"""
import collections
import itertools
import json
import sys

import pandas as pd
import pyarrow.parquet as pq



def main(proj):
    run = json.load(open(f"{proj}/.panorama/current.json"))["run_id"]
    tables = f"{proj}/.panorama/runs/{run}/tables"
    r = pq.read_table(f"{tables}/unify_records.parquet").to_pandas()
    truth = pd.read_csv(f"{proj}/truth.csv", dtype=str)
    truth["uid"] = truth.source + ":" + truth.record_id
    r = r.merge(truth[["uid", "person_id"]], on="uid")
    # Every field the run compared, but the names and gender.
    compared = set(pq.read_table(f"{tables}/match_weights.parquet").column("comparison").to_pylist())
    other = sorted(c for c in compared if c in r.columns and c not in ("first_name", "last_name", "gender"))
    for c in other + ["first_name", "last_name"]:
        r[c] = r[c].where(r[c].notna() & (r[c].astype(str) != ""), None)
    mask = sum(r[c].notna().astype(int) * (1 << i) for i, c in enumerate(other)).values
    links = pq.read_table(f"{tables}/customer_links.parquet").to_pandas()
    customer = dict(zip(links.source + ":" + links.record_id, links.customer_id))
    n = len(r)
    first, last, person, uid = (r[c].values for c in ["first_name", "last_name", "person_id", "uid"])

    true_pairs = [p for _, g in r.groupby("person_id") for p in itertools.combinations(g.index, 2)]
    total = len(true_pairs)

    def weak(a, b):
        if mask[a] & mask[b] or last[a] is None or last[a] != last[b]:
            return None
        return "C1" if first[a] is not None and first[a] == first[b] else "C2"

    weak_true = {p: weak(*p) for p in true_pairs if weak(*p)}
    # C1 pairs, true and not, with the number of records holding the full name.
    c1 = []
    named = r[r.first_name.notna() & r.last_name.notna()]
    for _, g in named.groupby(["first_name", "last_name"]):
        for a, b in itertools.combinations(g.index, 2):
            if not mask[a] & mask[b]:
                c1.append((a, b, len(g)))
    rows = pd.DataFrame(
        [(min(s, 6), person[a] == person[b], customer[uid[a]] == customer[uid[b]]) for a, b, s in c1],
        columns=["holders", "true", "linked"],
    )
    by = rows.groupby("holders").agg(pairs=("true", "size"), true=("true", "sum"))
    by["share_true"] = (by.true / by.pairs).round(3)
    by["true_linked_by_run"] = rows[rows.true & rows.linked].groupby("holders").size()
    print(f"records {n}, true pairs {total}")
    print("C1 (first and last name equal, nothing else both hold), by records holding the full name (6 = 6 or more):")
    print(by.to_string())
    c2 = sum(1 for v in weak_true.values() if v == "C2")
    print(f"C2 (surname equal, first names differ, nothing else both hold): {c2} true pairs")

    parent = list(range(n))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def score(extra):
        parent[:] = range(n)
        for a, b in itertools.chain((p for p in true_pairs if p not in weak_true), extra):
            parent[find(a)] = find(b)
        groups = collections.defaultdict(list)
        for i in range(n):
            groups[find(i)].append(person[i])
        predicted = sum(len(v) * (len(v) - 1) // 2 for v in groups.values())
        found = sum(k * (k - 1) // 2 for v in groups.values() for k in collections.Counter(v).values())
        p, rec = found / max(predicted, 1), found / total
        return p, rec, 2 * p * rec / (p + rec)

    print("ceiling: every true pair outside C1/C2 linked, no false link, plus C1 pairs of full names held by <= k records")
    for k in [0, 2, 3, 4, 6, n]:
        p, rec, f1 = score([(a, b) for a, b, s in c1 if s <= k])
        print(f"  k = {k if k < n else 'any'}: precision {p:.4f} recall {rec:.4f} F1 {f1:.4f}")


if __name__ == "__main__":
    main(sys.argv[1])
