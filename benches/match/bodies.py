"""Request bodies for the match benchmark: CRM contacts of the demo under new ids, a third
as exact copies, a third with another e-mail, a third with a typo in the name and no phone."""
import csv, json, random, sys

path, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
random.seed(7)
with open(path, encoding="utf-8", errors="replace", newline="") as f:
    # Rows the demo made malformed on purpose (extra fields) are left out.
    rows = [r for r in csv.DictReader(f) if None not in r and r.get("contact_id")]
with open(out, "w") as o:
    for i in range(n):
        r = dict(random.choice(rows))
        r["contact_id"] = f"B{i:07d}"
        if i % 3 == 1:
            r["email"] = f"bench{i}@elsewhere.example"
        elif i % 3 == 2 and r.get("full_name"):
            name = r["full_name"]
            r["full_name"] = name[:-1] + ("x" if name[-1] != "x" else "y")
            r["phone"] = ""
        record = {k: v for k, v in r.items() if v}
        o.write(json.dumps({"source": "crm_contacts", "record": record}) + "\n")
