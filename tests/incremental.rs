//! Incremental unification, run as a user would: a sequence of increments (inserts, updates
//! that split a customer and merge it back, deletes, in an incremental source and in a plain
//! one) unified run by run gives the same customers and profiles as one full run over the
//! final data.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::*;

fn demo_project(persons: &str) -> tempfile::TempDir {
    demo(persons, "5")
}

/// Every customer as its sorted record uids and its profile (all but the id), one per line.
fn customers(dir: &Path) -> String {
    query(
        dir,
        "WITH m AS (SELECT customer_id, string_agg(uid, ' ' ORDER BY uid) AS members \
                    FROM customer_links GROUP BY customer_id) \
         SELECT m.members, u.* EXCLUDE (customer_id) \
         FROM m JOIN unified_customers u ON u.customer_id = m.customer_id ORDER BY m.members",
    )
}

fn stat(dir: &Path, metric: &str) -> u64 {
    let out = query(
        dir,
        &format!("SELECT value FROM unify_stats WHERE metric = '{metric}'"),
    );
    out.lines().nth(1).unwrap().parse().unwrap()
}

fn lines(out: &str) -> Vec<String> {
    out.lines().skip(1).map(String::from).collect()
}

/// A stranger's identity for a CRM row: nobody else's name, e-mail, phone or address.
fn stranger(row: &[String], header: &[String], i: usize) -> Vec<String> {
    let mut row = row.to_vec();
    for (c, name) in header.iter().enumerate() {
        row[c] = match name.as_str() {
            "full_name" => format!("Quintus Zebedee{}", "x".repeat(i + 1)),
            "email" => format!("qz{i}@nowhere.example"),
            "phone" => format!("+1 555 013 00{i:02}"),
            "street" => format!("{} Lonely Lane", 900 + i),
            "postcode" => format!("0990{i}"),
            "birth_date" => format!("1901-01-0{}", i + 1),
            _ => continue,
        };
    }
    row
}

fn increments_equal_a_full_run(rules: bool) {
    let tmp = demo_project("1200");
    let dir = tmp.path();
    let cfg = dir.join("panorama.toml");
    // The CRM export becomes a snapshot plus hourly increments.
    let (header, crm) = read_csv(&dir.join("data/crm_contacts.csv"));
    std::fs::remove_file(dir.join("data/crm_contacts.csv")).unwrap();
    write_csv(&dir.join("data/crm/full/part-1.csv"), &header, &crm);
    edit(
        &cfg,
        "location = \"data/crm_contacts.csv\"",
        "location = \"data/crm\"\nrefresh = \"incremental\"",
    );
    if rules {
        append(&cfg, "\n[unify]\nmode = \"rules\"\n");
    } else {
        // Blocking rules given (the demo states its vetoes): by default a full run chooses
        // them from its data, and increments keep the first run's choice, so a full run over
        // the final data could block otherwise. The model's weights are relearned either way.
        edit(
            &cfg,
            "contradictions = [",
            "blocking = [[\"email\"], [\"phone_digits\"], [\"last_name_phonetic\", \"birth_date\"], [\"postcode\", \"street\"]]\ncontradictions = [",
        );
    }
    ok(&["run", "-p", p(dir), "-q"]);
    assert_eq!(stat(dir, "incremental"), 0, "the first run is full");
    let full_checked = stat(dir, "veto_checked_customers");

    // CRM records of customers with at least three records: made strangers, each leaves
    // its customer (a split), and coming back joins it again (a merge).
    let movers = lines(&query(
        dir,
        "SELECT l.record_id FROM customer_links l \
         JOIN (SELECT customer_id FROM customer_links GROUP BY customer_id HAVING count(*) >= 3) c \
           ON c.customer_id = l.customer_id \
         WHERE l.source = 'crm_contacts' ORDER BY l.record_id LIMIT 4",
    ));
    assert_eq!(movers.len(), 4, "the demo has customers of three records");
    let uids = movers
        .iter()
        .map(|m| format!("'crm_contacts:{m}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let movers_customers =
        format!("SELECT customer_id FROM customer_links WHERE uid IN ({uids}) ORDER BY uid");
    let original = query(dir, &movers_customers);
    let id = |r: &Vec<String>| r[0].clone();
    let rest: Vec<&Vec<String>> = crm.iter().filter(|r| !movers.contains(&id(r))).collect();
    let email = header.iter().position(|h| h == "email").unwrap();

    // Increment 1: the movers leave, 25 duplicates of other contacts arrive under new ids,
    // 10 contacts get a new e-mail address, 16 are deleted.
    let mut upserts: Rows = Vec::new();
    for (i, m) in movers.iter().enumerate() {
        let row = crm.iter().find(|r| &id(r) == m).unwrap();
        upserts.push(stranger(row, &header, i));
    }
    for (i, r) in rest[100..125].iter().enumerate() {
        let mut r = (*r).clone();
        r[0] = format!("C8{i:06}");
        upserts.push(r);
    }
    for (i, r) in rest[200..210].iter().enumerate() {
        let mut r = (*r).clone();
        r[email] = format!("moved{i}@elsewhere.example");
        upserts.push(r);
    }
    let deletes: Rows = rest[300..316].iter().map(|r| vec![id(r)]).collect();
    let inc = dir.join("data/crm/incremental/2026/11/20/10");
    write_csv(&inc.join("upserts/u.csv"), &header, &upserts);
    write_csv(&inc.join("deletes/d.csv"), &header[..1], &deletes);
    let out = ok(&["run", "-p", p(dir)]);
    assert!(out.contains("Incremental: 55 records"), "{out}");
    assert_eq!(stat(dir, "incremental"), 1, "{out}");
    assert_eq!(stat(dir, "touched_records"), 4 + 25 + 10 + 16);
    if !rules {
        // Duplicates grow their blocks (a key of 2 records now held by 3): a pair's prior
        // depends on its key's size, so the unchanged records there are compared again, and
        // the result below still equals a full run.
        assert!(stat(dir, "resized_records") > 0, "{out}");
        // Only the customers holding a record compared again are checked against the
        // vetoes; the others' vetoed pairs are the previous run's.
        let checked = stat(dir, "veto_checked_customers");
        assert!(
            checked > 0 && checked < full_checked,
            "{checked} of {full_checked}"
        );
    } else {
        assert_eq!(stat(dir, "resized_records"), 0, "{out}");
    }
    let split = query(
        dir,
        &format!(
            "SELECT count(*) AS n FROM customer_links l JOIN id_changes c \
               ON c.customer_id = l.customer_id AND c.change = 'split' WHERE l.uid IN ({uids})"
        ),
    );
    assert_eq!(split, "n\n4\n", "each mover split off its customer");

    // Increment 2: the movers come back (merges), five duplicates go again, and the loyalty
    // export (a plain CSV, replaced whole) loses ten members and changes five e-mails.
    let back: Rows = movers
        .iter()
        .map(|m| crm.iter().find(|r| &id(r) == m).unwrap().clone())
        .collect();
    let inc = dir.join("data/crm/incremental/2026/11/21/10");
    write_csv(&inc.join("upserts/u.csv"), &header, &back);
    let gone: Rows = (0..5).map(|i| vec![format!("C8{i:06}")]).collect();
    write_csv(&inc.join("deletes/d.csv"), &header[..1], &gone);
    let loyalty = dir.join("data/loyalty_members.csv");
    let (lh, mut lrows) = read_csv(&loyalty);
    let le = lh.iter().position(|h| h == "email").unwrap();
    lrows.drain(50..60);
    for (i, r) in lrows[100..105].iter_mut().enumerate() {
        r[le] = format!("loyal{i}@changed.example");
    }
    write_csv(&loyalty, &lh, &lrows);
    let out = ok(&["run", "-p", p(dir)]);
    assert_eq!(stat(dir, "incremental"), 1, "{out}");
    assert_eq!(stat(dir, "touched_records"), 4 + 5 + 10 + 5);
    assert_eq!(
        query(dir, &movers_customers),
        original,
        "each mover is back with its customer"
    );
    let merged = query(
        dir,
        &format!(
            "SELECT count(*) AS n FROM id_changes c JOIN customer_links l \
               ON l.customer_id = c.customer_id AND c.change = 'merged' WHERE l.uid IN ({uids})"
        ),
    );
    assert_eq!(
        merged, "n\n4\n",
        "each mover's interim id merged into its customer"
    );
    assert!(
        stat(dir, "remerged_customers") < stat(dir, "customers") / 10,
        "only affected customers are merged again"
    );

    // Increment 3: an upsert and a delete of one key in the same increment (the delete
    // wins), and a plain update.
    let inc = dir.join("data/crm/incremental/2026/11/22/10");
    let (a, b) = (rest[400], rest[401]);
    let mut a2 = a.clone();
    a2[email] = "third@change.example".into();
    write_csv(&inc.join("upserts/u.csv"), &header, &[a2, b.clone()]);
    write_csv(&inc.join("deletes/d.csv"), &header[..1], &[vec![id(b)]]);
    ok(&["run", "-p", p(dir), "-q"]);
    assert_eq!(stat(dir, "incremental"), 1);
    assert_eq!(stat(dir, "touched_records"), 2);
    assert_equals_a_full_run(dir, &["data"]);
}

/// The customers (members and profiles) of the project's current run equal those of one full
/// run over the same data (the folders `data`), without history.
fn assert_equals_a_full_run(dir: &Path, data: &[&str]) {
    let incremental = customers(dir);
    let fresh = tempfile::tempdir().unwrap();
    std::fs::copy(
        dir.join("panorama.toml"),
        fresh.path().join("panorama.toml"),
    )
    .unwrap();
    for d in data {
        copy_dir(&dir.join(d), &fresh.path().join(d));
    }
    ok(&["run", "-p", p(fresh.path()), "-q", "--full"]);
    assert_eq!(stat(fresh.path(), "incremental"), 0);
    let full = customers(fresh.path());
    if incremental != full {
        let (i, f): (BTreeSet<&str>, BTreeSet<&str>) =
            (incremental.lines().collect(), full.lines().collect());
        let only_inc: Vec<_> = i.difference(&f).take(5).collect();
        let only_full: Vec<_> = f.difference(&i).take(5).collect();
        panic!("incremental and full runs differ:\nincremental only: {only_inc:#?}\nfull only: {only_full:#?}");
    }
    assert!(full.lines().count() > 500, "{}", full.lines().count());
}

/// A Delta table's new versions (an update, a delete, an append of duplicates) are an
/// increment like any other: only their records are matched again, and the result equals a
/// full run.
#[test]
fn delta_versions_unify_incrementally() {
    let Some(python) = python_with_deltalake() else {
        return;
    };
    let python_ok = |script: &str| python_ok(&python, script);
    let tmp = demo_project("600");
    let dir = tmp.path();
    let lake = dir.join("lake/webshop_customers");
    // The webshop's customers move into a Delta table.
    python_ok(&format!(
        "import pyarrow.parquet as pq\nfrom deltalake import write_deltalake\n\
         write_deltalake({lake:?}, pq.read_table({file:?}))",
        lake = lake.to_str().unwrap(),
        file = dir.join("data/webshop/customers.parquet").to_str().unwrap(),
    ));
    std::fs::remove_file(dir.join("data/webshop/customers.parquet")).unwrap();
    edit(
        &dir.join("panorama.toml"),
        "location = \"data/webshop/customers.parquet\"",
        "format = \"delta\"\nlocation = \"lake/webshop_customers\"",
    );
    ok(&["run", "-p", p(dir), "-q"]);
    assert_eq!(stat(dir, "incremental"), 0);

    // Three new versions: two customers change e-mail, three are deleted, and duplicates of
    // four others arrive under new ids.
    let ids = lines(&query(
        dir,
        "SELECT customer_id FROM webshop_customers ORDER BY customer_id LIMIT 9",
    ));
    let list = |ids: &[String]| {
        ids.iter()
            .map(|i| format!("'{i}'"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let version = python_ok(&format!(
        "import pyarrow.compute as pc\nfrom deltalake import DeltaTable, write_deltalake\n\
         path = {lake:?}\n\
         dt = DeltaTable(path)\n\
         dt.update(predicate=\"customer_id IN ({moved})\", updates={{'email': \"concat('new.', email)\"}})\n\
         DeltaTable(path).delete(\"customer_id IN ({gone})\")\n\
         t = DeltaTable(path).to_pyarrow_table()\n\
         dups = t.filter(pc.is_in(t['customer_id'], value_set=__import__('pyarrow').array([{dup}])))\n\
         dups = dups.set_column(0, 'customer_id', pc.binary_join_element_wise('dup-', dups['customer_id'], ''))\n\
         write_deltalake(path, dups, mode='append')\n\
         print(DeltaTable(path).version())",
        lake = lake.to_str().unwrap(),
        moved = list(&ids[0..2]),
        gone = list(&ids[2..5]),
        dup = list(&ids[5..9]),
    ));
    assert_eq!(version, "3");
    let out = ok(&["run", "-p", p(dir), "-v"]);
    assert_eq!(stat(dir, "incremental"), 1, "{out}");
    assert_eq!(stat(dir, "touched_records"), 2 + 3 + 4);
    let dups = query(
        dir,
        "SELECT count(*) AS n FROM customer_links d JOIN customer_links o \
           ON o.customer_id = d.customer_id AND o.record_id = substr(d.record_id, 5) \
         WHERE d.record_id LIKE 'dup-%'",
    );
    assert_eq!(
        dups, "n\n4\n",
        "each duplicate joined its original's customer"
    );
    assert_equals_a_full_run(dir, &["data", "lake"]);
}

#[test]
fn probabilistic_increments_equal_a_full_run() {
    increments_equal_a_full_run(false);
}

#[test]
fn rule_increments_equal_a_full_run() {
    increments_equal_a_full_run(true);
}

#[test]
fn changed_unify_config_and_full_flag_unify_in_full() {
    let tmp = demo_project("300");
    let dir = tmp.path();
    ok(&["run", "-p", p(dir), "-q"]);
    let loyalty = dir.join("data/loyalty_members.csv");
    let (h, mut rows) = read_csv(&loyalty);
    rows.truncate(rows.len() - 3);
    write_csv(&loyalty, &h, &rows);
    ok(&["run", "-p", p(dir), "-q"]);
    assert_eq!(stat(dir, "incremental"), 1);
    assert_eq!(stat(dir, "touched_records"), 3);
    // --full re-matches everything.
    ok(&["run", "-p", p(dir), "-q", "--full"]);
    assert_eq!(stat(dir, "incremental"), 0);
    // So does a run after the way records are unified changed (here the block size cap).
    rows.truncate(rows.len() - 1);
    write_csv(&loyalty, &h, &rows);
    append(
        &dir.join("panorama.toml"),
        "\n[unify]\nmax_block_size = 900\n",
    );
    let out = ok(&["run", "-p", p(dir), "-v"]);
    assert_eq!(stat(dir, "incremental"), 0, "{out}");
    // More changed records than unify.incremental_max_change: full.
    edit(
        &dir.join("panorama.toml"),
        "max_block_size = 900",
        "max_block_size = 900\nincremental_max_change = 0.001",
    );
    ok(&["run", "-p", p(dir), "-q"]);
    rows.truncate(rows.len() - 20);
    write_csv(&loyalty, &h, &rows);
    ok(&["run", "-p", p(dir), "-q"]);
    assert_eq!(stat(dir, "incremental"), 0);
}
