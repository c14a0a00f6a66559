#!/usr/bin/env python3
"""Rewrite a `panorama demo` project's data into a layout the demo never writes, for testing
`panorama init --from` on files it has not seen the shape of.

    python3 benches/generators/relayout.py DEMO_DIR OUT_DIR

The people and their records stay the demo's (so the ground truth carries over); the files,
formats, column names, languages and column splits change:

  OUT_DIR/data/clients.csv          the CRM in French, `;`-separated: civilite, prenom and nom
                                    split from the full name, courriel, telephone, one-string
                                    adresse "217 Maple Street, 10036 New York",
                                    date_naissance as dd/mm/yyyy
  OUT_DIR/data/kunden.parquet       the webshop accounts in German: Kundennummer, Vorname,
                                    Nachname, E-Mail, Telefon, Strasse, PLZ, Ort, Land
  OUT_DIR/data/bestellungen/        the orders (Parquet parts) keyed by Kundennummer: Bestellnummer,
                                    Bestelldatum, Betrag, Kanal
  OUT_DIR/data/leden.csv            the loyalty members in Dutch, tab-separated: lidnummer,
                                    kaartnummer, naam ("Achternaam, Voornaam"), email, mobiel,
                                    geboortedatum YYYYMMDD, geslacht M/V
  OUT_DIR/data/evenementen.jsonl    the web events as JSON lines: cookie, horodatage,
                                    type_evenement, courriel (on logins)
  OUT_DIR/truth.csv                 source,record_id,person_id with the new source names
  OUT_DIR/hand.toml                 a config written by hand for this layout, to compare with
                                    what `init --from` writes

Standard library plus pyarrow (for Parquet).
"""

import csv
import glob
import json
import os
import sys

import pyarrow as pa
import pyarrow.parquet as pq

HAND = """# Written by hand for the layout of benches/generators/relayout.py.
[project]
name = "relayout"

[sources.clients]
location = "data/clients.csv"
primary_key = "id_client"
csv = { delimiter = ";" }
types = { id_client = "string", telephone = "string", date_naissance = "string" }

[sources.kunden]
location = "data/kunden.parquet"
primary_key = "Kundennummer"

[sources.bestellungen]
location = "data/bestellungen/"
format = "parquet"
primary_key = "Bestellnummer"

[sources.leden]
location = "data/leden.csv"
primary_key = "lidnummer"
csv = { delimiter = "\\t" }
types = { kaartnummer = "string", mobiel = "string", geboortedatum = "string" }

[sources.evenementen]
location = "data/evenementen.jsonl"
primary_key = "id"

[unify.fields.kaartnummer]
kind = "identifier"

[unify.sources.clients]
first_name = "prenom"
last_name = "nom"
email = "courriel"
phone = "telephone"
street = { sql = "split_part(adresse, ', ', 1)" }
postcode = { sql = "split_part(split_part(adresse, ', ', 2), ' ', 1)" }
birth_date = "date_naissance"

[unify.sources.kunden]
first_name = "Vorname"
last_name = "Nachname"
email = "E-Mail"
phone = "Telefon"
street = "Strasse"
postcode = "PLZ"
city = "Ort"
country = "Land"

[unify.sources.leden]
full_name = "naam"
email = "email"
phone = "mobiel"
birth_date = "geboortedatum"
gender = { sql = "CASE geslacht WHEN 'M' THEN 'M' WHEN 'V' THEN 'F' END" }
kaartnummer = "kaartnummer"

[unify.identities.evenementen]
anonymous_id = "cookie"
id_type = "cookie"
email = "courriel"
timestamp = "horodatage"

[activities.bestellungen]
source = "bestellungen"
customer = "Kundennummer"
customer_source = "kunden"
timestamp = "Bestelldatum"
type = "order"
amount = "Betrag"

[activities.evenementen]
source = "evenementen"
anonymous_id = "cookie"
timestamp = "horodatage"
type_column = "type_evenement"
"""


def main():
    demo, out = sys.argv[1], sys.argv[2]
    data = os.path.join(out, "data")
    os.makedirs(os.path.join(data, "bestellungen"), exist_ok=True)
    src = os.path.join(demo, "data")
    names = {"crm_contacts": "clients", "webshop_customers": "kunden", "loyalty_members": "leden"}

    with open(os.path.join(src, "crm_contacts.csv"), newline="", encoding="utf-8") as f:
        crm = list(csv.DictReader(f))
    with open(os.path.join(data, "clients.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter=";")
        w.writerow(["id_client", "prenom", "nom", "courriel", "telephone", "adresse", "date_naissance", "societe"])
        for r in crm:
            parts = r["full_name"].split()
            first, last = (parts[0], " ".join(parts[1:])) if len(parts) > 1 else ("", r["full_name"])
            addr = ""
            if r["street"]:
                addr = r["street"] + (f", {r['postcode']} {r['city']}".rstrip() if r["postcode"] or r["city"] else "")
            dob = ""
            if r["birth_date"]:
                y, m, d = r["birth_date"].split("-")
                dob = f"{d}/{m}/{y}"
            w.writerow([r["contact_id"], first, last, r["email"], r["phone"], addr, dob, r["company"]])

    kunden = pq.read_table(os.path.join(src, "webshop", "customers.parquet"))
    kunden = kunden.select(["customer_id", "first_name", "last_name", "email", "phone", "street", "postcode", "city", "country"])
    kunden = kunden.rename_columns(["Kundennummer", "Vorname", "Nachname", "E-Mail", "Telefon", "Strasse", "PLZ", "Ort", "Land"])
    pq.write_table(kunden, os.path.join(data, "kunden.parquet"))

    for i, part in enumerate(sorted(glob.glob(os.path.join(src, "webshop", "orders", "*.parquet")))):
        t = pq.read_table(part).select(["order_id", "customer_id", "order_ts", "amount", "channel"])
        t = t.rename_columns(["Bestellnummer", "Kundennummer", "Bestelldatum", "Betrag", "Kanal"])
        pq.write_table(t, os.path.join(data, "bestellungen", f"teil-{i:05d}.parquet"))

    with open(os.path.join(src, "loyalty_members.csv"), newline="", encoding="utf-8") as f:
        leden = list(csv.DictReader(f, delimiter=";"))
    with open(os.path.join(data, "leden.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="\t")
        w.writerow(["lidnummer", "kaartnummer", "naam", "email", "mobiel", "geboortedatum", "geslacht", "niveau"])
        for r in leden:
            naam = f"{r['last_name']}, {r['first_name']}" if r["last_name"] else r["first_name"]
            gender = {"M": "M", "F": "V"}.get(r["gender"], "")
            w.writerow([r["member_id"], r["card_number"], naam, r["email"], r["phone"],
                        r["birth_date"].replace("-", ""), gender, r["tier"]])

    events = pa.concat_tables([pq.read_table(p) for p in sorted(glob.glob(os.path.join(src, "web_events", "*.parquet")))])
    with open(os.path.join(data, "evenementen.jsonl"), "w", encoding="utf-8") as f:
        for e in events.to_pylist():
            row = {"id": e["event_id"], "cookie": e["cookie_id"], "horodatage": e["ts"].isoformat(sep=" "),
                   "type_evenement": e["event_type"], "page": e["page"]}
            if e.get("email"):
                row["courriel"] = e["email"]
            f.write(json.dumps(row, ensure_ascii=False) + "\n")

    with open(os.path.join(demo, "truth.csv"), newline="", encoding="utf-8") as f, \
            open(os.path.join(out, "truth.csv"), "w", newline="", encoding="utf-8") as g:
        w = csv.writer(g)
        for i, r in enumerate(csv.reader(f)):
            if i == 0:
                w.writerow(r)
            elif r[0] in names:
                w.writerow([names[r[0]]] + r[1:])
    with open(os.path.join(out, "hand.toml"), "w", encoding="utf-8") as f:
        f.write(HAND)


if __name__ == "__main__":
    main()
