//! Custom match fields (`[unify.fields]`), mapped SQL expressions, values that do not convert,
//! automatic blocking and learned vetoes, through the CLI: on a small hand-written fixture
//! (rules mode, exact expectations), on the independent generator
//! `benches/generators/people.py` (probabilistic, defaults), and config errors that name the key.

mod common;

use std::path::Path;

use common::{append, edit, fails, ok, p, query, write};

/// Two sources of four people: a registry with split columns and a text birth date (one
/// impossible), a CRM with one-string addresses and national ids written with separators and
/// one typo.
fn fixture(dir: &Path, unify: &str) {
    write(
        &dir.join("registry.csv"),
        "reg_id,voornaam,achternaam,geboren,bsn,straat,huisnummer,postcode\n\
         1,Jan,de Vries,19800409,123456782,Dorpsstraat,12,1234AB\n\
         2,Anna,de Vries,19820517,234567891,Dorpsstraat,12,1234AB\n\
         3,Piet,Jansen,19310472,345678912,Kerkweg,3,5678CD\n\
         4,Els,Bakker,19751130,456789123,Markt,1,9012EF\n",
    );
    write(
        &dir.join("crm.csv"),
        "contact_id,name,dob,id_number,address\n\
         C1,\"DE VRIES, Jan\",09.04.1980,123-456-782,\"Dorpsstraat 12, 1234 AB Utrecht\"\n\
         C2,Anna de Vries,1982-05-17,234 567 891,\"Dorpsstraat 12, 1234 AB Utrecht\"\n\
         C3,P. Jansen,,345-678-921,\"Kerkweg 3, 5678 CD Zwolle\"\n\
         C4,Karel Bakker,1950-01-01,999999999,\"Markt 1, 9012 EF Delft\"\n",
    );
    write(
        &dir.join("panorama.toml"),
        &format!(
            r#"
[sources.registry]
location = "registry.csv"
primary_key = "reg_id"
types = {{ geboren = "string", bsn = "string", postcode = "string" }}

[sources.crm]
location = "crm.csv"
primary_key = "contact_id"
types = {{ dob = "string", id_number = "string" }}

[unify.fields.national_id]
kind = "identifier"
description = "BSN"

[unify.sources.registry]
first_name = "voornaam"
last_name = "achternaam"
birth_date = "geboren"
national_id = "bsn"
street = {{ sql = "concat_ws(' ', straat, huisnummer)" }}
postcode = "postcode"

[unify.sources.crm]
full_name = "name"
birth_date = "dob"
national_id = "id_number"
street = {{ sql = "split_part(address, ', ', 1)" }}
postcode = {{ sql = "substr(split_part(address, ', ', 2), 1, 7)" }}
{unify}"#
        ),
    );
}

#[test]
fn custom_identifier_and_derived_columns_match_in_rules_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // A national id within one typo confirmed by the surname; or street + postcode + name.
    fixture(
        dir,
        r#"
[[unify.rules]]
name = "national_id+last_name"
conditions = [{ field = "national_id" }, { field = "last_name", precision = "high" }]

[[unify.rules]]
name = "national_id_typo+name+address"
conditions = [{ field = "postcode" }, { field = "street" }, { field = "last_name" }, { field = "first_initial" }, { field = "national_id", precision = 0.7 }]
"#,
    );
    let out = ok(&["run", "-p", p(dir)]);
    // "19310472" is no date: NULL for matching, counted per source and field, the run goes on.
    assert!(
        out.contains("unify.sources.registry.birth_date: 1 value(s) do not convert"),
        "{out}"
    );
    assert_eq!(
        query(
            dir,
            "SELECT metric, value FROM unify_stats WHERE metric LIKE 'unconverted:%' ORDER BY metric"
        ),
        "metric,value\nunconverted:crm.birth_date,0\nunconverted:crm.national_id,0\n\
         unconverted:registry.birth_date,1\nunconverted:registry.national_id,0\n"
    );
    // Staged values: separators dropped from ids, text dates in three spellings parsed, the
    // one-string address split by the mapped expressions.
    assert_eq!(
        query(
            dir,
            "SELECT uid, national_id, CAST(birth_date AS VARCHAR) AS birth_date, street, postcode \
             FROM unify_records WHERE record_id IN ('1', '3', 'C1', 'C3') ORDER BY uid"
        ),
        "uid,national_id,birth_date,street,postcode\n\
         crm:C1,123456782,1980-04-09,dorpsstr 12,1234AB\n\
         crm:C3,345678921,,kerkwg 3,5678CD\n\
         registry:1,123456782,1980-04-09,dorpsstr 12,1234AB\n\
         registry:3,345678912,,kerkwg 3,5678CD\n"
    );
    // Jan and Anna by their ids (same surname and address: the id tells them apart), Piet by
    // address and name with a two-digit id typo; Bakker's CRM id is another person's.
    assert_eq!(
        query(
            dir,
            "SELECT left_uid, right_uid, rule FROM match_pairs ORDER BY left_uid"
        ),
        "left_uid,right_uid,rule\n\
         crm:C1,registry:1,national_id+last_name\n\
         crm:C2,registry:2,national_id+last_name\n\
         crm:C3,registry:3,national_id_typo+name+address\n"
    );
    // Rules mode has no model to estimate from: `unify report` counts links per rule and
    // still checks the strong fields of each customer (no two different ids or birth dates).
    let report = ok(&["unify", "-p", p(dir), "report"]);
    assert!(report.contains("rules mode: no model"), "{report}");
    assert!(
        report.contains("| national_id+last_name         | 2     |"),
        "{report}"
    );
    assert!(
        report.contains("0 customer(s) hold two values of a strong field"),
        "{report}"
    );
}

/// `[sources.X.columns]`: columns computed at load from the source's own, usable as primary
/// key, in the unify map and in SQL; an expression that fails on a row gives NULL there,
/// counted in the run summary, and the row is loaded.
#[test]
fn computed_source_columns() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fixture(
        dir,
        r#"
[sources.crm.columns]
crm_key = "lower(contact_id)"
street = "split_part(address, ', ', 1)"
postcode = "substr(split_part(address, ', ', 2), 1, 7)"
born = "to_date(dob)"
"#,
    );
    let toml = dir.join("panorama.toml");
    common::edit(
        &toml,
        "primary_key = \"contact_id\"",
        "primary_key = \"crm_key\"",
    );
    common::edit(
        &toml,
        "street = { sql = \"split_part(address, ', ', 1)\" }",
        "street = \"street\"",
    );
    common::edit(
        &toml,
        "postcode = { sql = \"substr(split_part(address, ', ', 2), 1, 7)\" }",
        "postcode = \"postcode\"",
    );
    let out = ok(&["run", "-p", p(dir)]);
    // "09.04.1980" is not an ISO date: `to_date` fails on it, that row's `born` is NULL.
    assert!(
        out.contains("crm.born: 1 value(s) NULL, the computed column's expression failed on them (first: crm.csv row 2:"),
        "{out}"
    );
    assert_eq!(
        query(
            dir,
            "SELECT crm_key, street, postcode, CAST(born AS VARCHAR) AS born FROM crm ORDER BY crm_key"
        ),
        "crm_key,street,postcode,born\n\
         c1,Dorpsstraat 12,1234 AB,\n\
         c2,Dorpsstraat 12,1234 AB,1982-05-17\n\
         c3,Kerkweg 3,5678 CD,\n\
         c4,Markt 1,9012 EF,1950-01-01\n"
    );
    // The record ids are the computed key; street and postcode staged from the computed columns.
    assert_eq!(
        query(
            dir,
            "SELECT uid, street, postcode FROM unify_records WHERE source = 'crm' ORDER BY uid"
        ),
        "uid,street,postcode\n\
         crm:c1,dorpsstr 12,1234AB\n\
         crm:c2,dorpsstr 12,1234AB\n\
         crm:c3,kerkwg 3,5678CD\n\
         crm:c4,markt 1,9012EF\n"
    );

    // Errors name the key and its line.
    let line_of = |needle: &str| {
        std::fs::read_to_string(&toml)
            .unwrap()
            .lines()
            .position(|l| l.contains(needle))
            .unwrap()
            + 1
    };
    common::edit(
        &toml,
        "split_part(address, ', ', 1)",
        "split_part(adress, ', ', 1)",
    );
    let err = fails(&["run", "-p", p(dir)]);
    let line = line_of("split_part(adress");
    assert!(
        err.contains(&format!("panorama.toml:{line}:"))
            && err.contains("sources.crm.columns.street:")
            && err.contains("adress"),
        "{err}"
    );
    common::edit(
        &toml,
        "split_part(adress, ', ', 1)",
        "split_part(address, ', ' 1)",
    );
    let err = fails(&["run", "-p", p(dir)]);
    assert!(
        err.contains("sources.crm.columns.street: SQL expression does not parse"),
        "{err}"
    );
    common::edit(
        &toml,
        "split_part(address, ', ' 1)",
        "split_part(address, ', ', 1)",
    );
    common::edit(&toml, "born = \"to_date(dob)\"", "dob = \"to_date(dob)\"");
    let err = fails(&["run", "-p", p(dir)]);
    assert!(
        err.contains("sources.crm.columns.dob: the source already has a column `dob`"),
        "{err}"
    );
}

#[test]
fn config_errors_name_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let cfg = |unify: &str| fixture(dir, unify);
    // A key that is neither a built-in field nor a declared one.
    cfg("");
    common::edit(
        &dir.join("panorama.toml"),
        "national_id = \"id_number\"",
        "nationl_id = \"id_number\"",
    );
    let err = fails(&["run", "-p", p(dir)]);
    assert!(
        err.contains("unify.sources.crm: unknown field `nationl_id`: declare it as [unify.fields.nationl_id]"),
        "{err}"
    );
    assert!(err.contains("panorama.toml:"), "{err}");
    // A mapped expression that does not parse.
    cfg("");
    common::edit(
        &dir.join("panorama.toml"),
        "split_part(address, ', ', 1)",
        "split_part(address, ', ' 1)",
    );
    let err = fails(&["run", "-p", p(dir)]);
    assert!(
        err.contains("unify.sources.crm.street: SQL expression does not parse"),
        "{err}"
    );
    // An unknown kind, a tolerance on a kind without one, a built-in name.
    cfg("");
    common::edit(
        &dir.join("panorama.toml"),
        "kind = \"identifier\"",
        "kind = \"passport\"",
    );
    let err = fails(&["run", "-p", p(dir)]);
    assert!(err.contains("unknown variant `passport`"), "{err}");
    cfg("");
    common::edit(
        &dir.join("panorama.toml"),
        "kind = \"identifier\"",
        "kind = \"identifier\"\ntolerance = [1]",
    );
    let err = fails(&["run", "-p", p(dir)]);
    assert!(
        err.contains("unify.fields.national_id.tolerance: only `number` fields have tolerances"),
        "{err}"
    );
    cfg("[unify.fields.email]\nkind = \"email\"\n");
    let err = fails(&["run", "-p", p(dir)]);
    assert!(err.contains("`email` is a built-in field"), "{err}");
    // Blocking and rules may name custom fields, and only known ones.
    cfg("[unify.probabilistic]\nblocking = [[\"passport\"]]\n");
    let err = fails(&["run", "-p", p(dir)]);
    assert!(
        err.contains("blocking: unknown field `passport`") && err.contains("national_id"),
        "{err}"
    );
}

/// The independent generator (three sources with other column names, no e-mail or phone in
/// one, full names in one field, one-string addresses, dates in mixed formats with impossible
/// values, national ids with typos, households and namesakes), with the config it writes:
/// only the map and one custom field.
/// The generator's truth file: the person behind each record, by uid (`source:record_id`).
fn person_of_record(dir: &Path) -> std::collections::HashMap<String, String> {
    std::fs::read_to_string(dir.join("truth.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (format!("{}:{}", f[0], f[1]), f[2].to_string())
        })
        .collect()
}

/// The independent generator's files, truth and config for `persons` people into `dir`.
fn generate_people(dir: &Path, persons: usize, seed: u64) {
    let gen = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/generators/people.py");
    let status = std::process::Command::new("python3")
        .args([
            p(&gen),
            "--persons",
            &persons.to_string(),
            "--out",
            p(dir),
            "--seed",
            &seed.to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("python3 runs");
    assert!(status.success());
}

#[test]
fn independent_generator_unifies_with_defaults() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    generate_people(dir, 2000, 11);
    let cfg = std::fs::read_to_string(dir.join("panorama.toml")).unwrap();
    assert!(!cfg.contains("[unify.probabilistic]") && !cfg.contains("[[unify.rules]]"));
    let out = ok(&["run", "-p", p(dir)]);
    assert!(out.contains("unify.sources.crm.birth_date"), "{out}");
    let (precision, recall, f1) = common::eval_scores(dir);
    assert!(f1 > 0.9, "F1 {f1} (precision {precision}, recall {recall})");
    // The custom identifier is compared, blocks, and (ids being lifelong) vetoes.
    let model = query(
        dir,
        "SELECT count(*) FILTER (WHERE comparison = 'national_id') AS levels, \
                bool_or(comparison = 'prior' AND label LIKE '%national_id%') AS blocks, \
                bool_or(comparison = 'veto' AND label = 'national_id') AS vetoes \
         FROM match_weights",
    );
    assert_eq!(model, "levels,blocks,vetoes\n4,true,true\n");
    // Households: learned group vetoes include the first name with another field.
    let households = query(
        dir,
        "SELECT bool_or(label LIKE 'first_name+%' OR label LIKE '%+first_name') AS first_name \
         FROM match_weights WHERE comparison = 'veto'",
    );
    assert_eq!(households, "first_name\ntrue\n");
    // A full re-run over the same data chooses the same blocking and vetoes (deterministic
    // sample, counts and EM).
    let before = query(
        dir,
        "SELECT comparison, level, label FROM match_weights ORDER BY 1, 2, 3",
    );
    ok(&["run", "-p", p(dir), "-q", "--full"]);
    assert_eq!(
        query(
            dir,
            "SELECT comparison, level, label FROM match_weights ORDER BY 1, 2, 3"
        ),
        before
    );

    // `panorama unify plan` plans what the run did, without a run: the same rules, in the
    // same order, as the run's blocking_plan table; fields per source; coverage; vetoes.
    let runs_before = std::fs::read_dir(dir.join(".panorama/runs"))
        .unwrap()
        .count();
    let plan = ok(&["unify", "-p", p(dir), "plan"]);
    assert_eq!(
        std::fs::read_dir(dir.join(".panorama/runs"))
            .unwrap()
            .count(),
        runs_before,
        "a plan makes no run"
    );
    assert!(plan.contains("blocking chosen from the data"), "{plan}");
    assert!(plan.contains("estimated recall"), "{plan}");
    let chosen = query(
        dir,
        "SELECT rule FROM blocking_plan WHERE chosen ORDER BY rule_order",
    );
    let mut at = 0;
    for rule in chosen.lines().skip(1) {
        let found = plan[at..]
            .find(&format!("| {rule} "))
            .unwrap_or_else(|| panic!("rule {rule} not in the plan, in order:\n{plan}"));
        at += found + 1;
    }
    for section in [
        "Fields by source",
        "Which rules can find pairs between sources",
        "Vetoes",
        "Evidence per field",
    ] {
        assert!(plan.contains(section), "{section}: {plan}");
    }
    assert!(plan.contains("national_id"), "{plan}");
    assert!(plan.contains("| learned "), "{plan}");

    // `panorama unify report`: the model's own view of the run, checked against the truth
    // file it never reads.
    let truth = person_of_record(dir);
    let report = common::unify_report(dir, 250_000, 1000);
    let est = &report["estimates"];
    // Precision of the links: the mean match probability, against the share of links that
    // join records of one person.
    let links = query(dir, "SELECT left_uid, right_uid FROM match_pairs");
    let (mut n, mut right) = (0, 0);
    for l in links.lines().skip(1) {
        let (a, b) = l.split_once(',').unwrap();
        n += 1;
        right += usize::from(truth[a] == truth[b]);
    }
    let true_precision = right as f64 / n as f64;
    assert_eq!(est["links"].as_u64().unwrap(), n as u64);
    let estimated = est["precision"].as_f64().unwrap();
    assert!(
        (estimated - true_precision).abs() < 0.02,
        "estimated link precision {estimated}, true {true_precision}"
    );
    assert!(est["recall"].as_f64().unwrap() > 0.5, "{est}");
    assert!(est["random_pairs"].as_u64().unwrap() > 200_000, "{est}");
    // Over-merged customers: each one flagged really holds records of two or more people.
    let check_flagged = |report: &serde_json::Value| -> usize {
        let members = query(dir, "SELECT customer_id, uid FROM customer_links");
        let mut persons: std::collections::HashMap<&str, std::collections::HashSet<&str>> =
            Default::default();
        for l in members.lines().skip(1) {
            let (c, u) = l.split_once(',').unwrap();
            persons.entry(c).or_default().insert(truth[u].as_str());
        }
        let flagged = report["tables"]
            ["Customers that look over-merged (most records on the second value first)"]
            .as_array()
            .unwrap();
        assert_eq!(
            report["estimates"]["over_merged_customers"]
                .as_u64()
                .unwrap() as usize,
            flagged
                .iter()
                .map(|r| r["customer_id"].as_str().unwrap())
                .collect::<std::collections::HashSet<_>>()
                .len()
        );
        for r in flagged {
            let c = r["customer_id"].as_str().unwrap();
            assert!(persons[c].len() > 1, "{c} is one person: {r}");
        }
        flagged.len()
    };
    // The run split the customers a learned veto (birth date, national id) saw over-merged.
    let splits = query(
        dir,
        "SELECT value > 0 AS split FROM unify_stats WHERE metric = 'vetoed_splits'",
    );
    assert_eq!(splits, "split\ntrue\n");
    check_flagged(&report);
    // Drivers: every compared field, the national id among them.
    let drivers = report["tables"]["What drives the decisions: evidence per field in the links (bits), links that would fall below the threshold without it"]
        .as_array()
        .unwrap();
    assert!(drivers
        .iter()
        .any(|r| r["field"] == "national_id" && r["links_compared"].as_i64().unwrap() > 0));
    // Without vetoes nothing splits them: the report finds the over-merged customers.
    append(
        &dir.join("panorama.toml"),
        "\n[unify.probabilistic]\ncontradictions = []\n",
    );
    ok(&["run", "-q", "-p", p(dir)]);
    let report = common::unify_report(dir, 250_000, 1000);
    assert!(check_flagged(&report) > 0);
}

/// Three sources describe Cindy Smith; the most trusted has a typo in her first name and
/// another birth date. Three records of Ben Jones share no majority.
/// Given-name variants are learned from persons the surname and a personal field (birth
/// date, national id) vouch for, counted once per person: the independent generator's call
/// names ("Cornelia Petronella" goes by "Petronella" in one source) are learned, its twins
/// (same surname, birth date and address, different names, two records each) are not.
#[test]
fn given_name_variants_are_learned_from_persons_not_twins() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    generate_people(dir, 5000, 7);
    ok(&["run", "-p", p(dir), "-q"]);
    let variants = query(
        dir,
        "SELECT label FROM match_weights WHERE comparison = 'variant' ORDER BY label",
    );
    assert!(
        variants.lines().count() > 1,
        "no variant learned: {variants}"
    );
    // Every record pair behind a learned variant is one person by the truth file.
    let pairs = query(
        dir,
        "SELECT l.uid AS l, r.uid AS r FROM unify_records l JOIN unify_records r \
           ON l.last_name = r.last_name AND l.birth_date = r.birth_date AND l.uid < r.uid \
         JOIN (SELECT label FROM match_weights WHERE comparison = 'variant') v \
           ON v.label = concat(least(l.first_name, r.first_name), '|', greatest(l.first_name, r.first_name))",
    );
    let truth = person_of_record(dir);
    assert!(pairs.lines().count() > 2, "{pairs}");
    for pair in pairs.lines().skip(1) {
        let (l, r) = pair.split_once(',').unwrap();
        assert_eq!(
            truth[l], truth[r],
            "{pair} behind a learned variant: {variants}"
        );
    }
    // The level is in the model, between the spellings and "different".
    let level = query(
        dir,
        "SELECT level FROM match_weights WHERE comparison = 'first_name' AND label = 'learned variant'",
    );
    assert_eq!(level, "level\n1\n");
    // A call name that is a later given name of the registry's ("Petronella" for "Cornelia
    // Petronella", the registry's `voornaam` mapped whole) is a level of its own, learned
    // as evidence for a match, and joins records of one person.
    let given = query(
        dir,
        "SELECT weight > 0 AS evidence FROM match_weights WHERE comparison = 'first_name' AND label = 'another of the given names'",
    );
    assert_eq!(given, "evidence\ntrue\n");
    let joined = query(
        dir,
        "SELECT l.uid AS l, r.uid AS r FROM unify_records l JOIN unify_records r \
           ON l.last_name = r.last_name AND l.uid < r.uid \
         JOIN customer_links cl ON cl.uid = l.uid JOIN customer_links cr ON cr.uid = r.uid \
         WHERE cl.customer_id = cr.customer_id AND l.first_name <> r.first_name \
           AND (is_given_name_of(l.first_name, r.raw_first_name) OR is_given_name_of(r.first_name, l.raw_first_name))",
    );
    let pairs: Vec<(&str, &str)> = joined
        .lines()
        .skip(1)
        .map(|l| l.split_once(',').unwrap())
        .collect();
    let one_person = pairs.iter().filter(|(l, r)| truth[*l] == truth[*r]).count();
    assert!(
        pairs.len() > 10 && one_person * 100 >= pairs.len() * 95,
        "{one_person} of {} pairs joined by another given name are one person",
        pairs.len()
    );
    // `panorama unify plan` lists them with their counts.
    let plan = ok(&["unify", "-p", p(dir), "plan"]);
    assert!(
        plan.contains("Given-name variants learned from the data"),
        "{plan}"
    );
    let first = variants.lines().nth(1).unwrap();
    let (a, b) = first.split_once('|').unwrap();
    assert!(
        plan.contains(&format!("| {a} ")) && plan.contains(&format!("| {b} ")),
        "{plan}"
    );
}

fn survivorship_fixture(dir: &Path, merge: &str) {
    write(
        &dir.join("crm.csv"),
        "id,first,last,email,born\n\
         C1,iCndy,Smith,cindy@example.com,1980-02-01\n\
         C2,Ben,Jones,ben@example.com,1975-05-05\n",
    );
    write(
        &dir.join("shop.csv"),
        "id,first,last,email,born\n\
         S1,Cindy,Smith,CINDY@example.com,1980-01-02\n\
         S2,Benjamin,Jones,ben@example.com,\n",
    );
    write(
        &dir.join("loyalty.csv"),
        "id,first,last,email,born\n\
         L1,CINDY,SMITH,cindy@example.com,1980-01-02\n\
         L2,Benny,Jones,ben@example.com,\n",
    );
    let mut toml = String::new();
    for (i, s) in ["crm", "shop", "loyalty"].iter().enumerate() {
        toml += &format!(
            "[sources.{s}]\nlocation = \"{s}.csv\"\nprimary_key = \"id\"\ntypes = {{ born = \"string\" }}\n\n\
             [unify.sources.{s}]\nfirst_name = \"first\"\nlast_name = \"last\"\nemail = \"email\"\n\
             birth_date = \"born\"\npriority = {}\n\n",
            i + 1
        );
    }
    toml += "[[unify.rules]]\nname = \"email\"\nconditions = [{ field = \"email\" }]\n";
    toml += merge;
    write(&dir.join("panorama.toml"), &toml);
}

#[test]
fn most_common_survivorship_with_provenance() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    survivorship_fixture(dir, "");
    ok(&["run", "-q", "-p", p(dir)]);
    let profile = "SELECT u.first_name, u.last_name, CAST(u.birth_date AS VARCHAR) AS born, \
                   p.first_name_source, p.first_name_record_id, p.last_name_source, \
                   p.birth_date_source, p.birth_date_record_id, p.email_source \
                   FROM unified_customers u JOIN unified_customers_provenance p USING (customer_id) \
                   ORDER BY u.last_name";
    // Cindy: two records agree on "Cindy" (compared normalized, so "CINDY" votes with it) and
    // on the birth date; the spelling of the most trusted of them (shop) is kept. Her surname
    // has one vote (all say smith): the most trusted record's. Ben: no majority, so the most
    // trusted source's values, as `priority` would. E-mails without `updated_at` tie: the
    // largest value wins, then the largest source name (any fixed order would do).
    assert_eq!(
        query(dir, profile),
        "first_name,last_name,born,first_name_source,first_name_record_id,last_name_source,\
         birth_date_source,birth_date_record_id,email_source\n\
         Ben,Jones,1975-05-05,crm,C2,crm,crm,C2,shop\n\
         Cindy,Smith,1980-01-02,shop,S1,crm,shop,S1,loyalty\n"
    );

    // The most trusted source wins with `priority`, and provenance says so.
    survivorship_fixture(
        dir,
        "\n[unify.merge]\nfields = { first_name = \"priority\", birth_date = \"priority\" }\n",
    );
    ok(&["run", "-q", "-p", p(dir)]);
    assert_eq!(
        query(
            dir,
            "SELECT u.first_name, CAST(u.birth_date AS VARCHAR) AS born, p.first_name_record_id \
             FROM unified_customers u JOIN unified_customers_provenance p USING (customer_id) \
             WHERE u.last_name = 'Smith'"
        ),
        "first_name,born,first_name_record_id\niCndy,1980-02-01,C1\n"
    );

    // A correction shows as one in provenance, in this and later runs.
    survivorship_fixture(dir, "");
    ok(&["run", "-q", "-p", p(dir)]);
    ok(&[
        "privacy",
        "-q",
        "-p",
        p(dir),
        "rectify",
        "--email",
        "ben@example.com",
        "--set",
        "first_name=Benjamin",
    ]);
    let ben =
        "SELECT u.first_name, p.first_name_source, p.first_name_record_id, p.last_name_source \
               FROM unified_customers u JOIN unified_customers_provenance p USING (customer_id) \
               WHERE u.last_name = 'Jones'";
    let corrected = "first_name,first_name_source,first_name_record_id,last_name_source\n\
                     Benjamin,rectification,,crm\n";
    assert_eq!(query(dir, ben), corrected);
    ok(&["run", "-q", "-p", p(dir), "--full"]);
    assert_eq!(query(dir, ben), corrected);

    // Unknown policies and fields are config errors naming the key.
    survivorship_fixture(
        dir,
        "\n[unify.merge]\nfields = { first_name = \"majority\" }\n",
    );
    let err = fails(&["run", "-p", p(dir)]);
    assert!(
        err.contains("panorama.toml") && err.contains("most_common"),
        "{err}"
    );
}

/// A blocking rule on the street stands in for the postcode only where its non-matching pairs
/// share the postcode: the demo's streets ("170 church ln") recur across towns, so
/// `first_name+street` finds namesakes elsewhere, and its pairs are scored on the postcode
/// and city too (measured per rule, kept in `match_weights`, shown by `explain` and `unify
/// plan`).
#[test]
fn a_street_rule_compares_the_postcode_where_streets_recur_across_towns() {
    let tmp = common::demo("5000", "42");
    let dir = tmp.path();
    edit(
        &dir.join("panorama.toml"),
        "[unify.probabilistic]\n",
        "[unify.probabilistic]\nblocking = [[\"email\"], [\"phone_digits\"], [\"birth_date\", \"postcode\"], [\"first_name\", \"street\"]]\n",
    );
    street_rule_compares_the_postcode(dir, "street");
}

/// Run the project blocking on `first_name+<street>` and check that the rule's pairs are
/// scored on the postcode (measured per rule, kept in `match_weights`, shown by `explain`
/// and `unify plan`) while the street itself stays in the rule's prior.
fn street_rule_compares_the_postcode(dir: &std::path::Path, street: &str) {
    ok(&["run", "-q", "-p", p(dir)]);
    let rule = format!("block:first_name+{street}");
    let compared = query(
        dir,
        "SELECT label, m < 0.5 AS seldom FROM match_weights WHERE comparison = 'rule_compares' ORDER BY label",
    );
    assert!(
        compared.contains(&format!("{rule}>postcode,true")),
        "{compared}"
    );
    // A pair only the street rule finds, agreeing on name and address: the postcode is
    // compared (its weight counted), not left to the rule's prior.
    let pairs = query(
        dir,
        &format!(
            "SELECT concat(l.source, ':', l.record_id) AS l, concat(r.source, ':', r.record_id) AS r \
             FROM unify_records l JOIN unify_records r \
               ON l.first_name = r.first_name AND l.{street} = r.{street} AND l.postcode = r.postcode \
                  AND l.last_name = r.last_name AND l.uid < r.uid \
             WHERE NOT coalesce(l.email = r.email, false) AND NOT coalesce(l.phone_digits = r.phone_digits, false) \
               AND NOT coalesce(l.birth_date = r.birth_date, false) \
             ORDER BY l.uid, r.uid LIMIT 5"
        ),
    );
    let (l, r) = pairs
        .lines()
        .nth(1)
        .expect("such a pair")
        .split_once(',')
        .unwrap();
    let explained = ok(&["explain", "-p", p(dir), l, r]);
    assert!(
        explained.contains(&format!("compared by {rule}")),
        "{explained}"
    );
    let line = |field: &str| {
        explained
            .lines()
            .find(|line| line.starts_with(&format!("| {field} ")))
            .unwrap_or_else(|| panic!("{field}: {explained}"))
            .to_string()
    };
    assert!(
        line("postcode").contains("exact") && !line("postcode").contains("in its prior"),
        "{explained}"
    );
    // The street itself is the rule's: its prior stands in for it.
    assert!(line(street).contains("in its prior"), "{explained}");
    // `unify plan` shows the measured shares of the rule.
    let plan = ok(&["unify", "-p", p(dir), "plan"]);
    assert!(plan.contains("Address parts"), "{plan}");
    for part in ["postcode", "city"] {
        assert!(
            plan.lines()
                .any(|l| l.contains(&format!("| {rule} ")) && l.contains(&format!("| {part} "))),
            "{plan}"
        );
    }
}

/// The same with the street mapped as a custom field of kind `address`: a custom address part
/// is an address part like the built-in ones. A rule on it first stands in for the postcode and
/// city, and the data then says whether they go with it (here, as with the built-in street,
/// they do not). Before, a custom field stood in only for itself: no share was measured and
/// the postcode was always compared.
#[test]
fn a_custom_address_field_is_an_address_part() {
    let tmp = common::demo("5000", "42");
    let dir = tmp.path();
    let cfg = dir.join("panorama.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert_eq!(text.matches("\nstreet = \"street\"\n").count(), 2, "{text}");
    std::fs::write(
        &cfg,
        text.replace("\nstreet = \"street\"\n", "\nhome_street = \"street\"\n")
            .replacen(
                "[unify.probabilistic]\n",
                "[unify.fields.home_street]\nkind = \"address\"\n\n[unify.probabilistic]\n\
                 blocking = [[\"email\"], [\"phone_digits\"], [\"birth_date\", \"postcode\"], [\"first_name\", \"home_street\"]]\n",
                1,
            ),
    )
    .unwrap();
    street_rule_compares_the_postcode(dir, "home_street");
}

/// A table already free of duplicates — no two records share a value of any key — is not an
/// error under automatic blocking: every record becomes its own customer, and the run says why.
#[test]
fn a_table_without_duplicates_unifies_into_one_customer_per_record() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(
        &dir.join("members.csv"),
        "member_id,email,first_name,last_name,phone\n\
         1,zoe@example.org,Zoë,Smit,+31 6 12345678\n\
         2,ann@example.org,Ann,Lee,+31 6 87654321\n\
         3,bob@example.net,Bob,Jansen,+31 6 11223344\n",
    );
    write(
        &dir.join("panorama.toml"),
        "[project]\nname = \"clean\"\n\n\
         [sources.members]\nlocation = \"members.csv\"\nprimary_key = \"member_id\"\n\n\
         [unify.sources.members]\nemail = \"email\"\nfirst_name = \"first_name\"\n\
         last_name = \"last_name\"\nphone = \"phone\"\n",
    );
    let summary = ok(&["run", "-p", p(dir)]);
    assert!(
        summary.contains("Unified 3 records into 3 customers"),
        "{summary}"
    );
    assert!(
        summary.contains("no two records share a value of any blocking key"),
        "{summary}"
    );
    assert_eq!(
        query(dir, "SELECT count(*) AS pairs FROM match_pairs"),
        "pairs\n0\n"
    );
    assert_eq!(
        query(dir, "SELECT email FROM unified_customers ORDER BY email"),
        "email\nann@example.org\nbob@example.net\nzoe@example.org\n"
    );
}
