//! `panorama doctor` through the CLI: a clean project passes; each check finds its broken
//! fixture and names the config key, its line and a fix.

mod common;

use std::path::Path;

use common::{edit, fails, p, panorama, write};

const CONFIG: &str = r#"[project]
name = "doctor"

[sources.people]
location = "people.csv"
primary_key = "id"
types = { phone = "string", dob = "string" }

[sources.orders]
location = "orders.csv"
primary_key = "order_id"

[unify.sources.people]
first_name = "first"
last_name = "last"
email = "email"
phone = "phone"
birth_date = "dob"
city = { sql = "upper(city)" }
default_region = "NL"

[activities.orders]
source = "orders"
customer = "person"
customer_source = "people"
timestamp = "ts"
type = "order"
amount = "amount"

[measures.spend]
aggregate = "sum(amount)"

[segments.big_spenders]
where = "spend > 100"
"#;

fn project() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let mut people = String::from("id,first,last,email,phone,dob,city\n");
    let firsts = [
        "Anna", "Jan", "Piet", "Marie", "Kees", "Sanne", "Bram", "Fleur",
    ];
    let lasts = [
        "Jansen", "de Vries", "Bakker", "Visser", "Smit", "Meijer", "de Boer", "Mulder",
    ];
    for i in 0..64 {
        people.push_str(&format!(
            "P{i:03},{},{},{}.{}@example.org,06-{:08},19{}-{:02}-{:02},Utrecht\n",
            firsts[i % 8],
            lasts[i / 8],
            firsts[i % 8].to_lowercase(),
            i,
            12_340_000 + i,
            50 + i % 40,
            1 + i % 12,
            1 + i % 28
        ));
    }
    write(&tmp.path().join("people.csv"), &people);
    let mut orders = String::from("order_id,person,ts,amount\n");
    for i in 0..100 {
        orders.push_str(&format!(
            "O{i:04},P{:03},2026-0{}-1{} 10:00:00,{}.50\n",
            i % 64,
            1 + i % 9,
            i % 10,
            10 + i
        ));
    }
    write(&tmp.path().join("orders.csv"), &orders);
    write(&tmp.path().join("panorama.toml"), CONFIG);
    tmp
}

/// Runs doctor; (exit success, stdout).
fn doctor(dir: &Path) -> (bool, String) {
    let out = panorama(&["doctor", "-p", p(dir)]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

fn line_of(dir: &Path, needle: &str) -> usize {
    std::fs::read_to_string(dir.join("panorama.toml"))
        .unwrap()
        .lines()
        .position(|l| l.contains(needle))
        .unwrap()
        + 1
}

/// The problem line for `key` (and the fix line after it).
fn problem<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find(|l| l.contains(&format!(": {key}: ")))
        .unwrap_or_else(|| panic!("no problem for {key} in\n{out}"))
}

#[test]
fn a_clean_project_passes_with_its_blocking_plan() {
    let tmp = project();
    let (success, out) = doctor(tmp.path());
    assert!(success, "{out}");
    assert!(
        out.contains("ok    sources.people: all 64 rows read, keys filled and unique"),
        "{out}"
    );
    assert!(
        out.contains("ok    unify.sources.people: 6 mapped field(s) read"),
        "{out}"
    );
    assert!(
        out.contains("ok    activities.orders: columns found in `orders`"),
        "{out}"
    );
    assert!(out.contains("64 records staged"), "{out}");
    assert!(out.contains("blocking chosen from the data"), "{out}");
    assert!(out.contains("0 error(s), 0 warning(s)"), "{out}");
    // Doctor writes no run.
    assert!(!tmp.path().join(".panorama/current.json").exists());
}

#[test]
fn an_unreadable_location_is_an_error_at_its_line() {
    let tmp = project();
    let cfg = tmp.path().join("panorama.toml");
    edit(
        &cfg,
        "location = \"orders.csv\"",
        "location = \"orderz.csv\"",
    );
    let (success, out) = doctor(tmp.path());
    assert!(!success);
    let line = line_of(tmp.path(), "orderz.csv");
    let pr = problem(&out, "sources.orders.location");
    assert!(
        pr.starts_with(&format!("error {}:{line}:", cfg.display())),
        "{out}"
    );
    assert!(pr.contains("orderz.csv"), "{pr}");
}

#[test]
fn repeated_keys_are_counted_with_examples() {
    let tmp = project();
    let mut people = std::fs::read_to_string(tmp.path().join("people.csv")).unwrap();
    people.push_str("P001,Anna,Jansen,x@example.org,0612345678,1970-01-01,Utrecht\n");
    people.push_str(",Jan,Jansen,y@example.org,0612345679,1971-01-01,Utrecht\n");
    write(&tmp.path().join("people.csv"), &people);
    let (success, out) = doctor(tmp.path());
    assert!(!success, "{out}");
    let pr = problem(&out, "sources.people.primary_key");
    assert!(
        pr.contains(&format!(
            ":{}:",
            line_of(tmp.path(), "primary_key = \"id\"")
        )),
        "{pr}"
    );
    assert!(
        pr.contains("2 row(s) in all 66 rows have an empty or repeated key"),
        "{pr}"
    );
}

#[test]
fn a_missing_column_gets_the_closest_name() {
    let tmp = project();
    edit(
        &tmp.path().join("panorama.toml"),
        "first_name = \"first\"",
        "first_name = \"frist\"",
    );
    edit(
        &tmp.path().join("panorama.toml"),
        "timestamp = \"ts\"",
        "timestamp = \"time\"",
    );
    let (success, out) = doctor(tmp.path());
    assert!(!success);
    let pr = problem(&out, "unify.sources.people.first_name");
    assert!(
        pr.contains(&format!(":{}:", line_of(tmp.path(), "\"frist\""))),
        "{pr}"
    );
    assert!(pr.contains("no column `frist`"), "{pr}");
    assert!(out.contains("fix: did you mean `first`?"), "{out}");
    let pr = problem(&out, "activities.orders.timestamp");
    assert!(pr.contains("no column `time`"), "{pr}");
}

#[test]
fn a_mapped_expression_that_does_not_plan_names_the_columns() {
    let tmp = project();
    edit(
        &tmp.path().join("panorama.toml"),
        "upper(city)",
        "upper(town)",
    );
    let (success, out) = doctor(tmp.path());
    assert!(!success);
    let pr = problem(&out, "unify.sources.people.city");
    assert!(pr.contains("does not plan"), "{pr}");
    assert!(
        out.contains("use columns of `people` (id, first, last, email, phone, dob, city)"),
        "{out}"
    );
}

#[test]
fn parse_rates_of_mapped_fields_with_the_worst_examples() {
    let tmp = project();
    // A birth date mapped to a column of names, and a few broken e-mails.
    edit(
        &tmp.path().join("panorama.toml"),
        "birth_date = \"dob\"",
        "birth_date = \"last\"",
    );
    let people = std::fs::read_to_string(tmp.path().join("people.csv")).unwrap();
    let broken: String = people
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if (1..=5).contains(&i) {
                l.replacen("@example.org", " at example", 1)
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    write(&tmp.path().join("people.csv"), &(broken + "\n"));
    let (success, out) = doctor(tmp.path());
    assert!(!success, "{out}");
    let pr = problem(&out, "unify.sources.people.birth_date");
    assert!(pr.starts_with("error"), "{pr}");
    assert!(
        pr.contains("100.0% of 64 values are not dates, e.g. \"Jansen\""),
        "{pr}"
    );
    let pr = problem(&out, "unify.sources.people.email");
    assert!(pr.starts_with("warn"), "{pr}");
    assert!(
        pr.contains("7.8% of 64 values are not e-mail addresses, e.g. \"anna.0 at example\""),
        "{pr}"
    );
}

#[test]
fn activities_keyed_by_the_wrong_source_and_unknown_names_in_segments() {
    let tmp = project();
    let orders = std::fs::read_to_string(tmp.path().join("orders.csv"))
        .unwrap()
        .replace(",P0", ",C0");
    write(&tmp.path().join("orders.csv"), &orders);
    edit(
        &tmp.path().join("panorama.toml"),
        "spend > 100",
        "spnd > 100 AND city = 'X'",
    );
    let (success, out) = doctor(tmp.path());
    assert!(!success, "{out}");
    let pr = problem(&out, "activities.orders.customer");
    assert!(
        pr.contains("only 0 of 64 distinct values of `person` are record ids (`id`) of `people`"),
        "{pr}"
    );
    let pr = problem(&out, "segments.big_spenders.where");
    assert!(
        pr.contains(&format!(":{}:", line_of(tmp.path(), "spnd > 100"))),
        "{pr}"
    );
    assert!(pr.contains("unknown name(s): spnd"), "{pr}");
    assert!(out.contains("1 error(s), 1 warning(s)"), "{out}");
    // What doctor said is what a run finds.
    let err = fails(&["run", "-p", p(tmp.path()), "-q"]);
    assert!(err.contains("spnd"), "{err}");
}
