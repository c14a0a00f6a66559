#!/usr/bin/env python3
"""Change about 1% of a CSV export's records in place, as a day's edits would: a third of the
changed share gets another e-mail, a third are copied under new ids (duplicates), a third are
deleted. Deterministic for a given seed; bytes that are not UTF-8 (the demo writes some Latin-1
rows on purpose) pass through unchanged.

    python3 benches/incremental/change.py DIR/data/crm_contacts.csv [--share 0.01] [--seed 1]
"""
import argparse
import csv
import random

ap = argparse.ArgumentParser()
ap.add_argument("csv")
ap.add_argument("--share", type=float, default=0.01)
ap.add_argument("--seed", type=int, default=1)
a = ap.parse_args()
rng = random.Random(a.seed)
with open(a.csv, newline="", encoding="utf-8", errors="surrogateescape") as f:
    rows = list(csv.reader(f))
header, body = rows[0], rows[1:]
email = header.index("email")
n = max(1, int(len(body) * a.share / 3))
picked = rng.sample(range(len(body)), 3 * n)
changed, copied, deleted = picked[:n], picked[n : 2 * n], set(picked[2 * n :])
for i in changed:
    body[i][email] = f"changed{i}@example.org"
copies = []
for j, i in enumerate(copied):
    r = list(body[i])
    r[0] = f"{r[0]}-copy{j}"
    copies.append(r)
kept = [r for i, r in enumerate(body) if i not in deleted]
with open(a.csv, "w", newline="", encoding="utf-8", errors="surrogateescape") as f:
    w = csv.writer(f)
    w.writerow(header)
    w.writerows(kept + copies)
print(f"{n} e-mails changed, {n} duplicates added, {len(deleted)} deleted")
