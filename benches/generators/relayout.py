#!/usr/bin/env python3
"""Rewrite a `panorama demo` project's data into a layout the demo never writes, for testing
`panorama init --from` on files it has not seen the shape of.

    python3 benches/generators/relayout.py DEMO_DIR OUT_DIR [--variant a|b]

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

Variant b (Spanish and Italian, `|`-separated CSV, split birth dates and house numbers,
orders keyed by the loyalty member number, device ids):

  OUT_DIR/data/contactos.csv        the CRM: codigo, nombre, apellidos, correo, movil, calle,
                                    numero, cp, ciudad, anio/mes/dia_nacimiento
  OUT_DIR/data/clienti.parquet      the webshop accounts in Italian: id_cliente, nome, cognome,
                                    email, telefono, via, cap, citta, paese
  OUT_DIR/data/socios.csv           the loyalty members: num_socio, tarjeta, nombre_completo,
                                    correo, telefono, fecha_nacimiento, sexo (hombre/mujer)
  OUT_DIR/data/pedidos/             the orders of loyalty members, keyed by num_socio: num_pedido,
                                    socio, fecha, importe, canal
  OUT_DIR/data/eventos.csv          web events: id_evento, dispositivo, momento, tipo, correo

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


HAND_B = """# Written by hand for variant b of benches/generators/relayout.py.
[project]
name = "relayout-b"

[sources.contactos]
location = "data/contactos.csv"
primary_key = "codigo"
csv = { delimiter = "|" }
types = { codigo = "string", movil = "string", numero = "string", cp = "string" }

[sources.clienti]
location = "data/clienti.parquet"
primary_key = "id_cliente"

[sources.socios]
location = "data/socios.csv"
primary_key = "num_socio"
types = { tarjeta = "string", telefono = "string" }

[sources.pedidos]
location = "data/pedidos/"
format = "parquet"
primary_key = "num_pedido"

[sources.eventos]
location = "data/eventos.csv"
primary_key = "id_evento"

[unify.fields.tarjeta]
kind = "identifier"

[unify.sources.contactos]
first_name = "nombre"
last_name = "apellidos"
email = "correo"
phone = "movil"
street = { sql = "concat_ws(' ', numero, calle)" }
postcode = "cp"
city = "ciudad"
birth_date = { sql = "concat_ws('-', anio_nacimiento, lpad(CAST(mes_nacimiento AS VARCHAR), 2, '0'), lpad(CAST(dia_nacimiento AS VARCHAR), 2, '0'))" }

[unify.sources.clienti]
first_name = "nome"
last_name = "cognome"
email = "email"
phone = "telefono"
street = "via"
postcode = "cap"
city = "citta"
country = "paese"

[unify.sources.socios]
full_name = "nombre_completo"
email = "correo"
phone = "telefono"
birth_date = "fecha_nacimiento"
gender = { sql = "CASE sexo WHEN 'hombre' THEN 'M' WHEN 'mujer' THEN 'F' END" }
tarjeta = "tarjeta"

[unify.identities.eventos]
anonymous_id = "dispositivo"
id_type = "device"
email = "correo"
timestamp = "momento"

[activities.pedidos]
source = "pedidos"
customer = "socio"
customer_source = "socios"
timestamp = "fecha"
type = "order"
amount = "importe"

[activities.eventos]
source = "eventos"
anonymous_id = "dispositivo"
timestamp = "momento"
type_column = "tipo"
"""


def split_street(street):
    """("217", "Maple Street") from "217 Maple Street"; ("5", "Hauptstraße") from "Hauptstraße 5"."""
    parts = street.split()
    if len(parts) > 1 and parts[0][:1].isdigit():
        return parts[0], " ".join(parts[1:])
    if len(parts) > 1 and parts[-1][:1].isdigit():
        return parts[-1], " ".join(parts[:-1])
    return "", street


def variant_b(demo, out):
    data = os.path.join(out, "data")
    os.makedirs(os.path.join(data, "pedidos"), exist_ok=True)
    src = os.path.join(demo, "data")
    names = {"crm_contacts": "contactos", "webshop_customers": "clienti", "loyalty_members": "socios"}
    with open(os.path.join(src, "crm_contacts.csv"), newline="", encoding="utf-8") as f:
        crm = list(csv.DictReader(f))
    with open(os.path.join(data, "contactos.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="|")
        w.writerow(["codigo", "nombre", "apellidos", "correo", "movil", "calle", "numero", "cp", "ciudad",
                    "anio_nacimiento", "mes_nacimiento", "dia_nacimiento"])
        for r in crm:
            parts = r["full_name"].split()
            first, last = (parts[0], " ".join(parts[1:])) if len(parts) > 1 else ("", r["full_name"])
            number, street = split_street(r["street"])
            y, m, d = (r["birth_date"].split("-") if r["birth_date"] else ("", "", ""))
            w.writerow([r["contact_id"], first, last, r["email"], r["phone"], street, number, r["postcode"],
                        r["city"], y, m.lstrip("0"), d.lstrip("0")])
    clienti = pq.read_table(os.path.join(src, "webshop", "customers.parquet"))
    clienti = clienti.select(["customer_id", "first_name", "last_name", "email", "phone", "street", "postcode", "city", "country"])
    clienti = clienti.rename_columns(["id_cliente", "nome", "cognome", "email", "telefono", "via", "cap", "citta", "paese"])
    pq.write_table(clienti, os.path.join(data, "clienti.parquet"))
    with open(os.path.join(src, "loyalty_members.csv"), newline="", encoding="cp1252") as f:
        socios = list(csv.DictReader(f, delimiter=";"))
    with open(os.path.join(data, "socios.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["num_socio", "tarjeta", "nombre_completo", "correo", "telefono", "fecha_nacimiento", "sexo"])
        for r in socios:
            w.writerow([r["member_id"], r["card_number"], f"{r['first_name']} {r['last_name']}".strip(), r["email"],
                        r["phone"], r["birth_date"], {"M": "hombre", "F": "mujer"}.get(r["gender"], "")])
    # Orders of people who are loyalty members, keyed by their member number.
    person_of, member_of = {}, {}
    with open(os.path.join(demo, "truth.csv"), newline="", encoding="utf-8") as f:
        for r in csv.reader(f):
            if r[0] == "webshop_customers":
                person_of[r[1]] = r[2]
            elif r[0] == "loyalty_members":
                member_of.setdefault(r[2], r[1])
    n = 0
    for i, part in enumerate(sorted(glob.glob(os.path.join(src, "webshop", "orders", "*.parquet")))):
        rows = []
        for o in pq.read_table(part).to_pylist():
            member = member_of.get(person_of.get(o["customer_id"], ""))
            if member:
                rows.append({"num_pedido": o["order_id"], "socio": member, "fecha": o["order_ts"],
                             "importe": o["amount"], "canal": o["channel"]})
        if rows:
            pq.write_table(pa.Table.from_pylist(rows), os.path.join(data, "pedidos", f"parte-{i:05d}.parquet"))
            n += len(rows)
    if n == 0:
        sys.exit("no order belongs to a loyalty member: use more persons")
    events = pa.concat_tables([pq.read_table(p) for p in sorted(glob.glob(os.path.join(src, "web_events", "*.parquet")))])
    with open(os.path.join(data, "eventos.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id_evento", "dispositivo", "momento", "tipo", "correo"])
        for e in events.to_pylist():
            w.writerow([e["event_id"], e["cookie_id"], e["ts"].isoformat(sep=" "), e["event_type"], e.get("email") or ""])
    write_truth(demo, out, names)
    with open(os.path.join(out, "hand.toml"), "w", encoding="utf-8") as f:
        f.write(HAND_B)


def write_truth(demo, out, names):
    with open(os.path.join(demo, "truth.csv"), newline="", encoding="utf-8") as f, \
            open(os.path.join(out, "truth.csv"), "w", newline="", encoding="utf-8") as g:
        w = csv.writer(g)
        for i, r in enumerate(csv.reader(f)):
            if i == 0:
                w.writerow(r)
            elif r[0] in names:
                w.writerow([names[r[0]]] + r[1:])


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--variant")]
    variant = "a"
    for i, a in enumerate(sys.argv):
        if a == "--variant" and i + 1 < len(sys.argv):
            variant = sys.argv[i + 1]
            args.remove(variant)
    demo, out = args[0], args[1]
    if variant == "b":
        return variant_b(demo, out)
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

    with open(os.path.join(src, "loyalty_members.csv"), newline="", encoding="cp1252") as f:
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

    write_truth(demo, out, names)
    with open(os.path.join(out, "hand.toml"), "w", encoding="utf-8") as f:
        f.write(HAND)


if __name__ == "__main__":
    main()
