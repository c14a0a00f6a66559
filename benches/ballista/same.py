"""Compare two CSV outputs as sorted rows, numbers to 9 significant digits (a cluster sums
floats in another order). Prints `same`, or how many rows differ and the largest relative
difference between numbers of rows that differ only in numbers."""
import sys

def canon(path, digits):
    rows = []
    for line in open(path, encoding="utf-8", errors="replace"):
        out = []
        for f in line.rstrip("\n").split(","):
            try:
                x = float(f)
                out.append(f"{x:.{digits}e}" if ("." in f or "e" in f) else f)
            except ValueError:
                out.append(f)
        rows.append(",".join(out))
    return sorted(rows)

a, b = canon(sys.argv[1], 8), canon(sys.argv[2], 8)
if a == b:
    print("same")
    sys.exit(0)
diff = sum(x != y for x, y in zip(a, b)) + abs(len(a) - len(b))
worst = 0.0
for x, y in zip(sorted(open(sys.argv[1])), sorted(open(sys.argv[2]))):
    for u, v in zip(x.strip().split(","), y.strip().split(",")):
        try:
            fu, fv = float(u), float(v)
            if fu != fv:
                worst = max(worst, abs(fu - fv) / max(abs(fu), abs(fv)))
        except ValueError:
            pass
print(f"{diff} of {len(a)} rows differ beyond 9 digits; largest relative difference {worst:.2e}")
