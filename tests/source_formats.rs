//! The files a real company has, through `panorama run`: exports in legacy encodings written by
//! Python's codecs (not by us), and schema drift — a column dropped, added or retyped between
//! runs — said plainly, with the file, the column and every config key that needs it.

mod common;

use std::path::Path;
use std::process::Command;

use common::{demo, edit, fails, ok, p, query, required, shop_project, write};

/// Run a Python 3 script (stdlib only); false skips the test outside CI.
fn python(script: &str, dir: &Path) -> bool {
    let out = Command::new("python3")
        .args(["-c", script])
        .current_dir(dir)
        .output();
    match out {
        Ok(o) if o.status.success() => true,
        Ok(o) => panic!("python3 failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => {
            assert!(!required(), "python3 is needed: {e}");
            eprintln!("SKIPPED: no python3");
            false
        }
    }
}

/// Whether python3 imports `modules` (comma-separated); false skips the test outside CI.
fn python_has(modules: &str) -> bool {
    let has = Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has {
        assert!(!required(), "python3 with {modules} is needed");
        eprintln!("SKIPPED: python3 with {modules} is not installed");
    }
    has
}

/// The line of `key = ` after the line `[table]` in `config` (1-based).
fn key_line(config: &str, table: &str, key: &str) -> usize {
    let lines: Vec<&str> = config.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim() == format!("[{table}]"))
        .unwrap_or_else(|| panic!("no [{table}]"));
    start
        + 1
        + lines[start..]
            .iter()
            .position(|l| l.trim_start().starts_with(&format!("{key} =")))
            .unwrap_or_else(|| panic!("no {key} in [{table}]"))
}

const MEMBERS: &str = "id;name;city\n\
    1;Zoë Müller;Köln\n\
    2;François Lefèvre;Besançon\n\
    3;Ann Smith;York\n\
    4;Søren Ærø;Århus — 5 €\n";

#[test]
fn legacy_encodings_are_read_as_declared_or_detected() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    // Written by Python's codecs: Windows-1252 (twice: one declared, one left to `auto`),
    // UTF-16 with its byte-order mark (JSON lines), and UTF-16LE holding an unpaired
    // surrogate on line 3 (bytes no UTF-16 decoder accepts).
    let script = format!(
        r#"
import codecs, json
members = {MEMBERS:?}
open("data/members_1252.csv", "wb").write(codecs.encode(members, "cp1252"))
open("data/members_auto.csv", "wb").write(codecs.encode(members, "cp1252"))
events = "".join(json.dumps({{"id": i, "who": w}}, ensure_ascii=False) + "\n"
                 for i, w in [(1, "Zoë"), (2, "Łukasz"), (3, "東京")])
open("data/events.jsonl", "wb").write(codecs.encode(events, "utf-16"))
bad = "id,name\n1,Ann\n2,B\ud800b\n3,Cy\n"
open("data/bad_utf16.csv", "wb").write(bad.encode("utf-16-le", "surrogatepass"))
"#
    );
    if !python(&script, dir) {
        return;
    }
    let config = "[project]\nname = \"encodings\"\n\n\
        [sources.members]\nlocation = \"data/members_1252.csv\"\nprimary_key = \"id\"\n\
        encoding = \"windows-1252\"\ncsv = { delimiter = \";\" }\n\n\
        [sources.members_auto]\nlocation = \"data/members_auto.csv\"\nprimary_key = \"id\"\n\
        encoding = \"auto\"\ncsv = { delimiter = \";\" }\n\n\
        [sources.events]\nlocation = \"data/events.jsonl\"\nprimary_key = \"id\"\n\
        encoding = \"auto\"\n\n\
        [sources.bad]\nlocation = \"data/bad_utf16.csv\"\nprimary_key = \"id\"\n\
        encoding = \"utf-16le\"\nmax_reject_ratio = 0.5\n";
    write(&dir.join("panorama.toml"), config);
    let summary = ok(&["run", "-p", p(dir)]);
    assert!(
        summary.contains("members_auto: read as windows-1252 (detected)"),
        "{summary}"
    );

    let names = "name,city\nZoë Müller,Köln\nFrançois Lefèvre,Besançon\nAnn Smith,York\nSøren Ærø,Århus — 5 €\n";
    assert_eq!(
        query(dir, "SELECT name, city FROM members ORDER BY id"),
        names
    );
    assert_eq!(
        query(dir, "SELECT name, city FROM members_auto ORDER BY id"),
        names
    );
    assert_eq!(
        query(dir, "SELECT who FROM events ORDER BY id"),
        "who\nZoë\nŁukasz\n東京\n"
    );
    assert_eq!(
        query(
            dir,
            "SELECT source, encoding, rows_loaded, rows_rejected FROM source_stats ORDER BY source"
        ),
        "source,encoding,rows_loaded,rows_rejected\n\
         bad,utf-16le,2,1\n\
         events,utf-16le (byte-order mark),3,0\n\
         members,windows-1252,4,0\n\
         members_auto,windows-1252 (detected),4,0\n"
    );
    // The malformed bytes reject their own line, named with the encoding; the rest loads.
    assert_eq!(query(dir, "SELECT id FROM bad ORDER BY id"), "id\n1\n3\n");
    assert_eq!(
        query(dir, "SELECT source, row, \"column\", reason FROM rejects"),
        "source,row,column,reason\nbad,3,name,bytes not valid in utf-16le at character 2 of the value\n"
    );

    // Read as UTF-8 (no `encoding`), each row with an accented letter is a reject, as before.
    edit(
        &dir.join("panorama.toml"),
        "encoding = \"windows-1252\"\n",
        "max_reject_ratio = 1.0\n",
    );
    ok(&["run", "-p", p(dir), "-q"]);
    assert_eq!(query(dir, "SELECT id FROM members"), "id\n3\n");

    // An unknown encoding is a config error at its line and column.
    edit(
        &dir.join("panorama.toml"),
        "encoding = \"utf-16le\"",
        "encoding = \"klingon\"",
    );
    let err = fails(&["run", "-p", p(dir), "-q"]);
    let line = key_line(config, "sources.bad", "encoding");
    assert!(
        err.contains(&format!(
            "panorama.toml:{line}:12: sources.bad.encoding: unknown encoding \"klingon\""
        )),
        "{err}"
    );

    // `init --from` finds the encoding and writes it into the config it proposes.
    let project = dir.join("from");
    ok(&[
        "init",
        p(&project),
        "--from",
        p(&dir.join("data/members_auto.csv")),
    ]);
    let written = std::fs::read_to_string(project.join("panorama.toml")).unwrap();
    assert!(written.contains("encoding = \"windows-1252\""), "{written}");
    // The delimiter is sniffed from the transcoded text.
    assert!(written.contains("delimiter = \";\""), "{written}");
}

#[test]
fn a_dropped_column_names_the_file_and_every_key_that_uses_it() {
    let tmp = demo("300", "5");
    let dir = tmp.path();
    ok(&["run", "-p", p(dir), "-q"]);
    let before = query(dir, "SELECT count(*) AS n FROM unified_customers");

    // The CRM export drops `phone`; the loyalty export gains `home_store`.
    let drop_column = |file: &str, column: &str| {
        let path = dir.join(file);
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_path(&path)
            .unwrap();
        let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
        let at = rows[0].iter().position(|h| h == column).unwrap();
        let mut writer = csv::Writer::from_path(&path).unwrap();
        for r in rows {
            let kept: Vec<&str> = r
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != at)
                .map(|(_, v)| v)
                .collect();
            writer.write_record(kept).unwrap();
        }
        writer.flush().unwrap();
    };
    drop_column("data/crm_contacts.csv", "phone");
    let loyalty = dir.join("data/loyalty_members.csv");
    let text = std::fs::read(&loyalty).unwrap();
    let mut out = Vec::new();
    for (i, line) in text.split_inclusive(|b| *b == b'\n').enumerate() {
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        out.extend_from_slice(body);
        out.extend_from_slice(if i == 0 { b";home_store\n" } else { b";S12\n" });
    }
    std::fs::write(&loyalty, out).unwrap();

    let config = std::fs::read_to_string(dir.join("panorama.toml")).unwrap();
    let err = fails(&["run", "-p", p(dir), "-q"]);
    let line = key_line(&config, "unify.sources.crm_contacts", "phone");
    assert!(
        err.contains("source `crm_contacts` (data/crm_contacts.csv): column `phone` is not in the data, but the config uses it"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "unify.sources.crm_contacts.phone (panorama.toml:{line})"
        )),
        "{err}"
    );
    assert!(err.contains("on_missing_column = \"null\""), "{err}");
    assert!(!err.contains("No field named"), "{err}");
    // The failed run left the previous one current.
    assert_eq!(
        query(dir, "SELECT count(*) AS n FROM unified_customers"),
        before
    );

    // Loading it as NULL instead: counted, warned about, and the new column listed.
    edit(
        &dir.join("panorama.toml"),
        "[sources.crm_contacts]\n",
        "[sources.crm_contacts]\non_missing_column = \"null\"\n",
    );
    let summary = ok(&["run", "-p", p(dir)]);
    assert!(
        summary.contains(
            "warning: crm_contacts: column(s) phone missing from the data, loaded as NULL"
        ),
        "{summary}"
    );
    assert!(
        summary.contains("loyalty_members: new column(s) since the previous run: home_store"),
        "{summary}"
    );
    assert_eq!(
        query(
            dir,
            "SELECT source, new_columns, missing_columns FROM source_stats \
             WHERE new_columns IS NOT NULL OR missing_columns IS NOT NULL ORDER BY source"
        ),
        "source,new_columns,missing_columns\ncrm_contacts,,phone\nloyalty_members,home_store,\n"
    );
    assert_eq!(
        query(
            dir,
            "SELECT count(*) AS n, count(phone) AS phones FROM crm_contacts"
        )
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .nth(1),
        Some("0")
    );
    assert_eq!(
        query(dir, "SELECT DISTINCT home_store FROM loyalty_members"),
        "home_store\nS12\n"
    );
}

/// A mapped SQL expression's columns are checked like mapped columns: the run fails naming
/// the one the data lacks and the key holding the expression, before any SQL is planned. An
/// unquoted name matches in any case (`City` is the data's `city`, as the planner folds it).
#[test]
fn a_column_missing_under_a_mapped_expression_names_its_key() {
    let tmp = demo("300", "5");
    let dir = tmp.path();
    edit(
        &dir.join("panorama.toml"),
        "city = \"city\"\ncountry = \"country\"\nbirth_date = \"birth_date\"\ncompany",
        "city = { sql = \"coalesce(town, City)\" }\ncountry = \"country\"\nbirth_date = \"birth_date\"\ncompany",
    );
    let config = std::fs::read_to_string(dir.join("panorama.toml")).unwrap();
    let line = key_line(&config, "unify.sources.crm_contacts", "city");
    let err = fails(&["run", "-p", p(dir), "-q"]);
    assert!(
        err.contains(&format!(
            "source `crm_contacts` (data/crm_contacts.csv): column `town` is not in the data, but the config uses it: unify.sources.crm_contacts.city (panorama.toml:{line})"
        )),
        "{err}"
    );
    assert!(!err.contains("`city`"), "{err}");
    assert!(!err.contains("No field named"), "{err}");
    // Loaded as NULL instead, the expression falls back to the city column.
    edit(
        &dir.join("panorama.toml"),
        "[sources.crm_contacts]\n",
        "[sources.crm_contacts]\non_missing_column = \"null\"\n",
    );
    ok(&["run", "-p", p(dir), "-q"]);
    let counts = query(
        dir,
        "SELECT count(town) AS towns, count(city) > 0 AS cities FROM crm_contacts",
    );
    assert_eq!(counts, "towns,cities\n0,true\n");
    assert_eq!(
        query(
            dir,
            "SELECT source, missing_columns FROM source_stats WHERE missing_columns IS NOT NULL"
        ),
        "source,missing_columns\ncrm_contacts,town\n"
    );
}

#[test]
fn a_retyped_column_the_config_uses_fails_the_run() {
    let tmp = shop_project();
    let dir = tmp.path();
    ok(&["run", "-p", p(dir), "-q"]);
    // The order export switches to decimal commas: `amount` is no longer read as a number.
    let orders = dir.join("data/orders.csv");
    let text = std::fs::read_to_string(&orders).unwrap();
    let mut lines = text.lines();
    let mut out = format!("{}\n", lines.next().unwrap());
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        out.push_str(&format!(
            "{},{},{},\"{}\",{}\n",
            f[0],
            f[1],
            f[2],
            f[3].replace('.', ","),
            f[4]
        ));
    }
    std::fs::write(&orders, out).unwrap();
    let config = std::fs::read_to_string(dir.join("panorama.toml")).unwrap();
    let err = fails(&["run", "-p", p(dir), "-q"]);
    let line = key_line(&config, "activities.orders", "amount");
    assert!(
        err.contains("source `orders` (data/orders.csv): column `amount` was Float64 in run"),
        "{err}"
    );
    assert!(err.contains("and is Utf8 now"), "{err}");
    assert!(
        err.contains(&format!("activities.orders.amount (panorama.toml:{line})")),
        "{err}"
    );
    // Declaring the type makes it a number again; the values that do not convert are rejects.
    edit(
        &dir.join("panorama.toml"),
        "types = { ordered_at = \"timestamp\" }",
        "types = { ordered_at = \"timestamp\", amount = \"float\" }\nmax_reject_ratio = 1.0",
    );
    ok(&["run", "-p", p(dir), "-q"]);
    assert_eq!(
        query(
            dir,
            "SELECT count(*) AS n FROM rejects WHERE source = 'orders' AND \"column\" = 'amount'"
        ),
        format!("n\n{}\n", text.lines().count() - 1)
    );
}

/// A Python 3 with openpyxl, xlwt and pandas (with odfpy) to write workbooks; None skips
/// (CI has them).
fn python_with_spreadsheet_writers() -> bool {
    python_has("openpyxl, xlwt, odf, pandas")
}

#[test]
fn spreadsheets_from_openpyxl_xlwt_and_pandas_load_with_their_cell_types() {
    if !python_with_spreadsheet_writers() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    // The marketer's attendee list (xlsx, openpyxl): a notes sheet first, a title and a blank
    // row above the header, a postcode typed as a number in one row and as text in another, a
    // store name merged over two rows, a blank row, and an #N/A cell.
    let script = r##"
import datetime, openpyxl, xlwt, pandas as pd
wb = openpyxl.Workbook()
wb.active.title = "Notes"
wb.active["A1"] = "ask Kim before sending anything"
ws = wb.create_sheet("Attendees")
ws["A1"] = "Spring event attendees"
rows = {
    3: ["id", "name", "email", "postcode", "born", "registered_at", "vip", "store", "spend"],
    4: [1, "Zoë Müller", "zoe@example.org", 1234, datetime.date(1990, 5, 17),
        datetime.datetime(2024, 3, 1, 10, 30), True, "Amsterdam", 12.5],
    5: [2, "Ann Smith", "ann@example.org", "AB12 3CD", datetime.date(1985, 1, 2),
        datetime.datetime(2024, 3, 1, 11, 0), False, None, 20],
    7: [3, "Bob Jones", "bob@example.org", 4321, datetime.date(1970, 7, 7),
        datetime.datetime(2024, 3, 2, 9, 0), False, "Utrecht", "#N/A"],
    8: [4, "Cy Twombly", "cy@example.org", 5678, datetime.date(2001, 12, 31),
        datetime.datetime(2024, 3, 2, 9, 15), True, "Utrecht", 7],
}
for r, values in rows.items():
    for c, v in enumerate(values, start=1):
        ws.cell(row=r, column=c, value=v)
ws.merge_cells("H4:H5")
wb.save("data/attendees.xlsx")

# The store managers' sign-ups (xls, xlwt): store merged over its managers' rows.
book = xlwt.Workbook()
sheet = book.add_sheet("Signups")
date = xlwt.easyxf(num_format_str="YYYY-MM-DD")
for c, h in enumerate(["store", "manager", "signed_up", "cards"]):
    sheet.write(0, c, h)
sheet.write_merge(1, 2, 0, 0, "Haarlem")
sheet.write(1, 1, "Els")
sheet.write(1, 2, datetime.date(2024, 2, 1), date)
sheet.write(1, 3, 12)
sheet.write(2, 1, "Piet")
sheet.write(2, 2, datetime.date(2024, 2, 3), date)
sheet.write(2, 3, 3)
sheet.write(3, 0, "Leiden")
sheet.write(3, 1, "Mo")
sheet.write(3, 2, datetime.date(2024, 2, 9), date)
sheet.write(3, 3, 5)
book.save("data/signups.xls")

# An OpenDocument export (pandas with odfpy).
pd.DataFrame({
    "id": [1, 2],
    "name": ["Łukasz", "Ann"],
    "score": [0.5, 1.25],
    "joined": pd.to_datetime(["2023-01-05", "2023-06-30"]),
}).to_excel("data/panel.ods", engine="odf", index=False, sheet_name="Panel")
"##;
    if !python(script, dir) {
        return;
    }
    let config = "[project]\nname = \"sheets\"\n\n\
        [sources.attendees]\nlocation = \"data/attendees.xlsx\"\nprimary_key = \"id\"\n\
        sheet = \"Attendees\"\nheader_row = 3\ntypes = { postcode = \"string\" }\n\
        max_reject_ratio = 0.5\n\n\
        [sources.signups]\nlocation = \"data/signups.xls\"\nprimary_key = \"manager\"\n\n\
        [sources.panel]\nlocation = \"data/panel.ods\"\nprimary_key = \"id\"\n";
    write(&dir.join("panorama.toml"), config);
    ok(&["run", "-p", p(dir), "-q"]);

    assert_eq!(
        query(
            dir,
            "SELECT id, name, postcode, born, registered_at, vip, store, spend \
             FROM attendees ORDER BY id"
        ),
        "id,name,postcode,born,registered_at,vip,store,spend\n\
         1,Zoë Müller,1234,1990-05-17,2024-03-01T10:30:00,true,Amsterdam,12.5\n\
         2,Ann Smith,AB12 3CD,1985-01-02,2024-03-01T11:00:00,false,Amsterdam,20.0\n\
         4,Cy Twombly,5678,2001-12-31,2024-03-02T09:15:00,true,Utrecht,7.0\n"
    );
    assert_eq!(
        query(
            dir,
            "SELECT arrow_typeof(id) AS id, arrow_typeof(born) AS born, \
             arrow_typeof(registered_at) AS registered_at, arrow_typeof(vip) AS vip, \
             arrow_typeof(spend) AS spend FROM attendees LIMIT 1"
        ),
        "id,born,registered_at,vip,spend\nInt64,Date32,Timestamp(µs),Boolean,Float64\n"
    );
    assert_eq!(
        query(
            dir,
            "SELECT file, row, \"column\", raw_value, reason FROM rejects"
        ),
        "file,row,column,raw_value,reason\n\
         data/attendees.xlsx [Attendees],7,spend,#N/A,cell I7 holds the error #N/A\n"
    );
    assert_eq!(
        query(
            dir,
            "SELECT store, manager, signed_up, cards FROM signups ORDER BY signed_up"
        ),
        "store,manager,signed_up,cards\n\
         Haarlem,Els,2024-02-01,12\n\
         Haarlem,Piet,2024-02-03,3\n\
         Leiden,Mo,2024-02-09,5\n"
    );
    assert_eq!(
        query(
            dir,
            "SELECT id, name, score, joined, arrow_typeof(joined) AS t FROM panel ORDER BY id"
        ),
        "id,name,score,joined,t\n1,Łukasz,0.5,2023-01-05,Date32\n2,Ann,1.25,2023-06-30,Date32\n"
    );
    assert_eq!(
        query(
            dir,
            "SELECT source, format, rows_read, rows_loaded, rows_rejected FROM source_stats ORDER BY source"
        ),
        "source,format,rows_read,rows_loaded,rows_rejected\n\
         attendees,excel,4,3,1\n\
         panel,excel,2,2,0\n\
         signups,excel,3,3,0\n"
    );

    // A sheet that is not there names the ones that are; sheet options on a CSV are an error.
    edit(
        &dir.join("panorama.toml"),
        "sheet = \"Attendees\"",
        "sheet = \"Attendes\"",
    );
    let err = fails(&["run", "-p", p(dir), "-q"]);
    assert!(
        err.contains("source `attendees` (data/attendees.xlsx): no sheet named `Attendes` (sheets: Notes, Attendees)"),
        "{err}"
    );
    write(&dir.join("data/a.csv"), "id\n1\n");
    write(
        &dir.join("panorama.toml"),
        "[sources.a]\nlocation = \"data/a.csv\"\nprimary_key = \"id\"\nsheet = \"x\"\n",
    );
    let err = fails(&["run", "-p", p(dir), "-q"]);
    assert!(
        err.contains("panorama.toml:4:9: sources.a.sheet is for format \"excel\""),
        "{err}"
    );
}

/// The MariaDB/MySQL test database (`PANORAMA_TEST_MYSQL_URL`, started by `.ci/run`), or None
/// (the test skips) unless `PANORAMA_REQUIRE_SERVICES=1`.
fn mysql_url() -> Option<String> {
    match std::env::var("PANORAMA_TEST_MYSQL_URL") {
        Ok(u) => Some(u),
        Err(_) => {
            assert!(!required(), "PANORAMA_TEST_MYSQL_URL is needed");
            eprintln!("SKIPPED: PANORAMA_TEST_MYSQL_URL is not set");
            None
        }
    }
}

/// Run statements against the test database with the mysql_async client.
fn mysql_exec(url: &str, statements: &[&str]) {
    use mysql_async::prelude::Queryable;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut conn = mysql_async::Conn::from_url(url).await.unwrap();
        for s in statements {
            conn.query_drop(*s)
                .await
                .unwrap_or_else(|e| panic!("{s}: {e}"));
        }
        conn.disconnect().await.unwrap();
    });
}

#[test]
fn a_mariadb_table_loads_typed_redacted_and_incrementally() {
    let Some(url) = mysql_url() else { return };
    let table = format!("shop_customers_{}", std::process::id());
    let create = format!(
        "CREATE TABLE {table} (
           id INT PRIMARY KEY, first_name VARCHAR(40) CHARACTER SET latin1, email VARCHAR(80),
           vip TINYINT(1), balance DECIMAL(10,2), born DATE, visits BIGINT UNSIGNED,
           tags JSON, updated_at DATETIME(6)) CHARACTER SET utf8mb4"
    );
    let insert = format!(
        "INSERT INTO {table} VALUES
           (1, 'Zoë', 'zoe@example.org', 1, 12.50, '1990-05-17', 18446744073709551615,
            '[\"gold\"]', '2026-11-01 10:00:00'),
           (2, 'François', 'francois@example.org', 0, 0.00, '0000-00-00', 3, NULL,
            '2026-11-01 11:00:00.250000'),
           (3, NULL, 'x@example.org', NULL, NULL, NULL, NULL, NULL, '2026-11-02 09:00:00')"
    );
    mysql_exec(
        &url,
        &[
            "SET SESSION sql_mode = ''",
            &format!("DROP TABLE IF EXISTS {table}"),
            &create,
            &insert,
        ],
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let config = format!(
        "[project]\nname = \"shopdb\"\n\n\
         [sources.shop]\nlocation = \"{url}\"\ntable = \"{table}\"\nprimary_key = \"id\"\n\
         refresh = \"incremental\"\nupdated_at_column = \"updated_at\"\n"
    );
    write(&dir.join("panorama.toml"), &config);
    ok(&["run", "-p", p(dir), "-q"]);
    assert_eq!(
        query(
            dir,
            "SELECT id, first_name, vip, balance, born, visits, tags, updated_at FROM shop ORDER BY id"
        ),
        "id,first_name,vip,balance,born,visits,tags,updated_at\n\
         1,Zoë,true,12.5,1990-05-17,18446744073709551615,\"[\"\"gold\"\"]\",2026-11-01T10:00:00\n\
         2,François,false,0.0,,3,,2026-11-01T11:00:00.250\n\
         3,,,,,,,2026-11-02T09:00:00\n"
    );
    assert_eq!(
        query(
            dir,
            "SELECT arrow_typeof(id) AS id, arrow_typeof(vip) AS vip, arrow_typeof(balance) AS balance, \
             arrow_typeof(born) AS born, arrow_typeof(visits) AS visits, \
             arrow_typeof(updated_at) AS updated_at FROM shop LIMIT 1"
        ),
        "id,vip,balance,born,visits,updated_at\nInt64,Boolean,Float64,Date32,Utf8,Timestamp(µs)\n"
    );
    let stats = query(dir, "SELECT format, location, rows_read FROM source_stats");
    assert!(stats.contains("mysql,mysql://panorama:***@"), "{stats}");
    assert!(!stats.contains(":panorama@"), "{stats}");

    // A changed and a new row: the next run reads those two and keeps the others.
    mysql_exec(
        &url,
        &[
            &format!("UPDATE {table} SET email = 'zoe@new.example', updated_at = '2026-11-03 08:00:00' WHERE id = 1"),
            &format!("INSERT INTO {table} (id, first_name, email, updated_at) VALUES (4, 'Ann', 'ann@example.org', '2026-11-03 08:30:00')"),
        ],
    );
    ok(&["run", "-p", p(dir), "-q"]);
    assert_eq!(
        query(dir, "SELECT rows_read, rows_loaded FROM source_stats"),
        "rows_read,rows_loaded\n2,4\n"
    );
    assert_eq!(
        query(dir, "SELECT id, email FROM shop ORDER BY id"),
        "id,email\n1,zoe@new.example\n2,francois@example.org\n3,x@example.org\n4,ann@example.org\n"
    );

    // A table that is not there: named, with the password hidden.
    edit(
        &dir.join("panorama.toml"),
        &format!("table = \"{table}\""),
        "table = \"no_such_table\"",
    );
    let err = fails(&["run", "-p", p(dir), "-q", "--full"]);
    assert!(
        err.contains("table panorama_test.no_such_table does not exist"),
        "{err}"
    );
    assert!(err.contains("mysql://panorama:***@"), "{err}");
    mysql_exec(&url, &[&format!("DROP TABLE {table}")]);
}

/// The same server over TLS (a user that MariaDB lets in only over TLS, its certificate from
/// a CA of our own named by `ssl_ca`) and over its Unix socket; and `init --from mysql://…`
/// writing a config that runs, with the password left to `${MYSQL_PWD}`.
#[test]
fn mariadb_over_tls_over_its_socket_and_from_init() {
    let Some(url) = mysql_url() else { return };
    let (Ok(socket), Ok(ca)) = (
        std::env::var("PANORAMA_TEST_MYSQL_SOCKET"),
        std::env::var("PANORAMA_TEST_MYSQL_TLS_CA"),
    ) else {
        assert!(
            !required(),
            "PANORAMA_TEST_MYSQL_SOCKET and PANORAMA_TEST_MYSQL_TLS_CA are needed"
        );
        eprintln!("SKIPPED: no MariaDB socket or TLS CA");
        return;
    };
    let table = format!("members_{}", std::process::id());
    mysql_exec(
        &url,
        &[
            &format!("DROP TABLE IF EXISTS {table}"),
            &format!(
                "CREATE TABLE {table} (member_id INT PRIMARY KEY, email VARCHAR(80), \
                 first_name VARCHAR(40), last_name VARCHAR(40), phone VARCHAR(30))"
            ),
            &format!(
                "INSERT INTO {table} VALUES (1, 'zoe@example.org', 'Zoë', 'Smit', '+31 6 12345678'), \
                 (2, 'ann@example.org', 'Ann', 'Lee', '+31 6 87654321'), \
                 (3, 'zoe@example.org', 'Zoe', 'Smit', '+31612345678')"
            ),
        ],
    );
    let host_port = url
        .trim_start_matches("mysql://")
        .split_once('@')
        .and_then(|(_, rest)| rest.split_once('/'))
        .map(|(hp, _)| hp.to_string())
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("certs")).unwrap();
    std::fs::copy(&ca, dir.join("certs/ca.pem")).unwrap();
    let source = |location: &str| {
        format!(
            "[project]\nname = \"members\"\n\n[sources.members]\nlocation = \"{location}\"\n\
             table = \"{table}\"\nprimary_key = \"member_id\"\n"
        )
    };
    let tls_user = format!("mysql://panorama_tls:panorama@{host_port}/panorama_test");
    // TLS, trusting our CA (a path relative to the project).
    write(
        &dir.join("panorama.toml"),
        &source(&format!("{tls_user}?ssl_ca=certs/ca.pem")),
    );
    ok(&["run", "-p", p(dir), "-q"]);
    assert_eq!(
        query(
            dir,
            "SELECT member_id, first_name FROM members ORDER BY member_id"
        ),
        "member_id,first_name\n1,Zoë\n2,Ann\n3,Zoe\n"
    );
    // The same user without TLS is refused by the server; with TLS but not trusting the CA,
    // the certificate is refused by us.
    write(&dir.join("panorama.toml"), &source(&tls_user));
    let err = fails(&["run", "-p", p(dir), "-q"]);
    assert!(err.contains("cannot connect"), "{err}");
    assert!(err.contains("panorama_tls:***@"), "{err}");
    write(
        &dir.join("panorama.toml"),
        &source(&format!("{tls_user}?require_ssl=true")),
    );
    let err = fails(&["run", "-p", p(dir), "-q"]);
    assert!(err.contains("cannot connect"), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    // A CA file that is not there is named.
    write(
        &dir.join("panorama.toml"),
        &source(&format!("{tls_user}?ssl_ca=certs/missing.pem")),
    );
    let err = fails(&["run", "-p", p(dir), "-q"]);
    assert!(err.contains("ssl_ca: no such file"), "{err}");
    assert!(err.contains("missing.pem"), "{err}");

    // The Unix socket: the host is not used (a name that does not resolve).
    let encoded: String = url::form_urlencoded::byte_serialize(socket.as_bytes()).collect();
    write(
        &dir.join("panorama.toml"),
        &source(&format!(
            "mysql://panorama:panorama@no-such-host.invalid/panorama_test?socket={encoded}"
        )),
    );
    ok(&["run", "-p", p(dir), "-q"]);
    assert_eq!(query(dir, "SELECT count(*) AS n FROM members"), "n\n3\n");

    // init --from: the table becomes a source, its columns the unify map; the password is
    // left to the environment. Zoë signed up twice: one customer.
    let project = dir.join("from_init");
    let out = ok(&["init", p(&project), "--from", &format!("{url}#{table}")]);
    let config = std::fs::read_to_string(project.join("panorama.toml")).unwrap();
    assert!(config.contains("format = \"mysql\""), "{config}\n{out}");
    assert!(config.contains(&format!("table = \"{table}\"")), "{config}");
    assert!(config.contains(":${MYSQL_PWD}@"), "{config}");
    assert!(config.contains("export MYSQL_PWD="), "{config}");
    assert!(!config.contains(":panorama@"), "{config}");
    assert!(config.contains("primary_key = \"member_id\""), "{config}");
    assert!(config.contains("email = \"email\""), "{config}");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_panorama"))
        .args(["run", "-p", p(&project), "-q"])
        .env("MYSQL_PWD", "panorama")
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(
        query(&project, "SELECT count(*) AS n FROM unified_customers"),
        "n\n2\n"
    );
    mysql_exec(&url, &[&format!("DROP TABLE {table}")]);
}

/// A run of the project in `dir`, then the Iceberg test's contacts as `expected`.
fn run_reads(dir: &Path, expected: &str) {
    ok(&["run", "-p", p(dir), "-q"]);
    assert_eq!(
        query(
            dir,
            "SELECT id, full_name, born, tier FROM contacts ORDER BY id"
        ),
        expected
    );
}

#[test]
fn an_iceberg_table_from_pyiceberg_reads_its_current_snapshot_by_field_id() {
    if !python_has("pyiceberg, pyarrow, sqlalchemy") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Written by pyiceberg with a local SQL catalog: two appends, a delete (pyiceberg rewrites
    // the file: copy-on-write), then a schema change — `name` renamed `full_name`, `tier`
    // added — and an append in the new schema.
    let script = r#"
import os, pyarrow as pa
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.expressions import EqualTo
from pyiceberg.types import StringType
wh = os.path.abspath("lake"); os.makedirs(wh)
cat = SqlCatalog("local", uri=f"sqlite:///{wh}/catalog.db", warehouse=f"file://{wh}")
cat.create_namespace("crm")
rows = lambda ids, names, days: pa.table({
    "id": pa.array(ids, pa.int64()), "name": names,
    "born": pa.array(days, pa.date32())})
t = cat.create_table("crm.contacts", schema=rows([1], ["x"], [0]).schema)
t.append(rows([1, 2, 3, 4], ["Zoë", "Ann", "Bob", "Cy"], [7000, 7001, None, 7003]))
t.append(rows([5], ["Di"], [7005]))
t.delete(EqualTo("id", 2))
with t.update_schema() as u:
    u.rename_column("name", "full_name")
    u.add_column("tier", StringType())
t = cat.load_table("crm.contacts")
t.append(pa.table({"id": pa.array([6], pa.int64()), "full_name": ["Ed"],
                   "born": pa.array([7006], pa.date32()), "tier": ["gold"]}))
open("metadata_location.txt", "w").write(t.metadata_location)
"#;
    if !python(script, dir) {
        return;
    }
    let config = "[project]\nname = \"lake\"\n\n\
        [sources.contacts]\nlocation = \"lake/crm/contacts\"\nformat = \"iceberg\"\nprimary_key = \"id\"\n";
    write(&dir.join("panorama.toml"), config);
    ok(&["run", "-p", p(dir), "-q"]);
    let expected = "id,full_name,born,tier\n\
        1,Zoë,1989-03-02,\n\
        3,Bob,,\n\
        4,Cy,1989-03-05,\n\
        5,Di,1989-03-07,\n\
        6,Ed,1989-03-08,gold\n";
    assert_eq!(
        query(
            dir,
            "SELECT id, full_name, born, tier FROM contacts ORDER BY id"
        ),
        expected
    );
    assert_eq!(
        query(dir, "SELECT format, rows_loaded FROM source_stats"),
        "format,rows_loaded\niceberg,5\n"
    );
    // The metadata file a catalog points at reads the same snapshot.
    let metadata = std::fs::read_to_string(dir.join("metadata_location.txt")).unwrap();
    edit(
        &dir.join("panorama.toml"),
        "location = \"lake/crm/contacts\"\nformat = \"iceberg\"",
        &format!("location = \"{}\"", metadata.trim_start_matches("file://")),
    );
    run_reads(dir, expected);
    // The SQL catalog pyiceberg wrote (SQLite) names the same metadata file.
    write(
        &dir.join("panorama.toml"),
        "[sources.contacts]\nlocation = \"sqlite:lake/catalog.db\"\nformat = \"iceberg\"\n\
         table = \"crm.contacts\"\nprimary_key = \"id\"\n",
    );
    run_reads(dir, expected);
    edit(&dir.join("panorama.toml"), "crm.contacts", "crm.nobody");
    let err = fails(&["run", "-p", p(dir), "-q"]);
    assert!(
        err.contains("the catalog sqlite:lake/catalog.db has no table `crm.nobody`"),
        "{err}"
    );
    // Not a table: said so.
    std::fs::create_dir_all(dir.join("empty")).unwrap();
    write(
        &dir.join("panorama.toml"),
        "[sources.contacts]\nlocation = \"empty\"\nformat = \"iceberg\"\nprimary_key = \"id\"\n",
    );
    let err = fails(&["run", "-p", p(dir), "-q"]);
    assert!(err.contains("not an Iceberg table"), "{err}");
}

/// An Iceberg table whose SQL catalog pyiceberg keeps in PostgreSQL (`iceberg_tables`, as
/// Iceberg's JdbcCatalog does): the source's location is the catalog database; each run reads
/// the metadata file the catalog names now, so an append made after a run is in the next.
#[test]
fn an_iceberg_table_named_by_a_sql_catalog_in_postgresql() {
    let Ok(pg) = std::env::var("PANORAMA_TEST_PG_URL") else {
        assert!(!required(), "PANORAMA_TEST_PG_URL is needed");
        eprintln!("SKIPPED: PANORAMA_TEST_PG_URL is not set");
        return;
    };
    if !python_has("pyiceberg, pyarrow, sqlalchemy, psycopg2") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let namespace = format!("crm_{}", std::process::id());
    let sqlalchemy = pg.replacen("postgres://", "postgresql+psycopg2://", 1);
    let catalog = format!(
        r#"
import os, sys, pyarrow as pa
from pyiceberg.catalog.sql import SqlCatalog
wh = os.path.abspath("lake"); os.makedirs(wh, exist_ok=True)
cat = SqlCatalog("shop", uri="{sqlalchemy}", warehouse=f"file://{{wh}}")
ns, step = "{namespace}", sys.argv[1]
rows = lambda ids, names: pa.table({{"id": pa.array(ids, pa.int64()), "name": names}})
if step == "create":
    cat.create_namespace(ns)
    t = cat.create_table(f"{{ns}}.contacts", schema=rows([1], ["x"]).schema)
    t.append(rows([1, 2], ["Zoë", "Ann"]))
elif step == "append":
    cat.load_table(f"{{ns}}.contacts").append(rows([3], ["Bob"]))
else:
    cat.drop_table(f"{{ns}}.contacts"); cat.drop_namespace(ns)
"#
    );
    write(&dir.join("catalog.py"), &catalog);
    let step = |name: &str| {
        let out = Command::new("python3")
            .args(["catalog.py", name])
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    step("create");
    write(
        &dir.join("panorama.toml"),
        &format!(
            "[project]\nname = \"lake\"\n\n[sources.contacts]\nlocation = \"{pg}\"\n\
             format = \"iceberg\"\ntable = \"{namespace}.contacts\"\nprimary_key = \"id\"\n"
        ),
    );
    ok(&["run", "-p", p(dir), "-q"]);
    assert_eq!(
        query(dir, "SELECT id, name FROM contacts ORDER BY id"),
        "id,name\n1,Zoë\n2,Ann\n"
    );
    step("append");
    ok(&["run", "-p", p(dir), "-q"]);
    assert_eq!(
        query(dir, "SELECT id, name FROM contacts ORDER BY id"),
        "id,name\n1,Zoë\n2,Ann\n3,Bob\n"
    );
    // The password stays out of what a run records.
    let stats = query(dir, "SELECT location FROM source_stats");
    assert!(stats.contains(":***@"), "{stats}");
    // A catalog location without a table is a config error at its line.
    edit(
        &dir.join("panorama.toml"),
        &format!("table = \"{namespace}.contacts\"\n"),
        "",
    );
    let err = fails(&["run", "-p", p(dir), "-q"]);
    assert!(
        err.contains("panorama.toml:5:") && err.contains("needs `table = \"namespace.table\"`"),
        "{err}"
    );
    step("drop");
}

/// Merge-on-read delete files, written into the table by pyiceberg's own snapshot producer and
/// manifest writer (`tests/clients/iceberg_deletes.py`: pyiceberg 0.12 writes only
/// copy-on-write deletes itself, so its producer is pointed at a delete manifest): a position delete file, then an equality delete file, then
/// an append of a deleted key again. pyiceberg's own scan (it applies position deletes) is the
/// reference for the first step.
#[test]
fn iceberg_position_and_equality_delete_files_are_applied() {
    if !python_has("pyiceberg, pyarrow, sqlalchemy") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/iceberg_deletes.py"),
        dir.join("iceberg_deletes.py"),
    )
    .unwrap();
    write(
        &dir.join("deletes.py"),
        r#"
import os, pyarrow as pa
from pyiceberg.catalog.sql import SqlCatalog
from iceberg_deletes import EQUALITY, POSITION, commit_delete, positions

wh = os.path.abspath("lake")
os.makedirs(wh, exist_ok=True)
cat = SqlCatalog("local", uri=f"sqlite:///{wh}/catalog.db", warehouse=f"file://{wh}")
rows = lambda ids, names: pa.table({"id": pa.array(ids, pa.int64()), "name": names})
"#,
    );
    // Two data files, then row positions 1 and 4 (Ann, Di) of the first deleted.
    let step1 = r#"
from deletes import *
cat.create_namespace("crm")
t = cat.create_table("crm.contacts", schema=rows([1], ["x"]).schema,
                     properties={"format-version": "2"})
t.append(rows([1, 2, 3, 4, 5, 6], ["Zoë", "Ann", "Bob", "Cy", "Di", "Ed"]))
t.append(rows([7, 8], ["Flo", "Gus"]))
first = [f.file.file_path for f in t.scan().plan_files() if f.file.record_count == 6][0]
t = commit_delete(t, POSITION, positions([first, first], [1, 4]))
got = t.scan().to_arrow().sort_by("id")
open("pyiceberg_scan.csv", "w").write("id,name\n" + "".join(
    f"{i},{n}\n" for i, n in zip(got["id"].to_pylist(), got["name"].to_pylist())))
"#;
    if !python(step1, dir) {
        return;
    }
    write(
        &dir.join("panorama.toml"),
        "[project]\nname = \"lake\"\n\n\
        [sources.contacts]\nlocation = \"lake/crm/contacts\"\nformat = \"iceberg\"\nprimary_key = \"id\"\n",
    );
    ok(&["run", "-p", p(dir), "-q"]);
    let by_pyiceberg = std::fs::read_to_string(dir.join("pyiceberg_scan.csv")).unwrap();
    assert_eq!(
        by_pyiceberg,
        "id,name\n1,Zoë\n3,Bob\n4,Cy\n6,Ed\n7,Flo\n8,Gus\n"
    );
    assert_eq!(
        query(dir, "SELECT id, name FROM contacts ORDER BY id"),
        by_pyiceberg
    );
    // An equality delete on `id` (3 and 7), then 7 written again: the new row is newer than
    // the delete, so it stays; rows of the older files with those ids go.
    let step2 = r#"
from deletes import *
t = cat.load_table("crm.contacts")
schema = pa.schema([pa.field("id", pa.int64(), nullable=False, metadata={"PARQUET:field_id": "1"})])
t = commit_delete(t, EQUALITY, pa.table({"id": [7, 3]}, schema=schema), equality_ids=[1])
t.append(rows([7], ["Flo again"]))
"#;
    if !python(step2, dir) {
        return;
    }
    ok(&["run", "-p", p(dir), "-q"]);
    assert_eq!(
        query(dir, "SELECT id, name FROM contacts ORDER BY id"),
        "id,name\n1,Zoë\n4,Cy\n6,Ed\n7,Flo again\n8,Gus\n"
    );
    assert_eq!(
        query(dir, "SELECT rows_loaded FROM source_stats"),
        "rows_loaded\n5\n"
    );
}
