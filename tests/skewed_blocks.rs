//! Skewed blocking keys: an address shared by far more records than `unify.max_block_size`
//! (a company's head office, a parcel locker, a default value) is skipped with a warning
//! naming it, instead of comparing every pair of its records; everyone else still matches.

mod common;

use common::*;

fn skewed_project(dir: &std::path::Path, mode: &str) {
    let mut csv = String::from("id,first_name,last_name,email,phone,street,postcode,city\n");
    // 1,200 people registered at one address.
    for i in 0..1200 {
        csv.push_str(&format!(
            "S{i},Name{i},Family{},p{i}@mail.example,,1 Locker Street,1000AA,Utrecht\n",
            i % 7
        ));
    }
    // Ten people with two records each, at addresses of their own.
    for i in 0..10 {
        for copy in 0..2 {
            csv.push_str(&format!(
                "D{i}-{copy},Ann{i},Smith,ann{i}@mail.example,+31 6 1234 56{i:02},{} Canal Road,20{i:02}BB,Leiden\n",
                10 + i
            ));
        }
    }
    write(&dir.join("data/people.csv"), &csv);
    let blocking = match mode {
        "probabilistic" => "[unify.probabilistic]\nblocking = [[\"email\"], [\"phone_digits\"], [\"postcode\", \"street\"]]\n\n",
        _ => "",
    };
    write(
        &dir.join("panorama.toml"),
        &format!(
            "[sources.people]\nlocation = \"data/people.csv\"\nformat = \"csv\"\nprimary_key = \"id\"\n\n\
             [unify]\nmode = \"{mode}\"\n\n{blocking}\
             [unify.sources.people]\nfirst_name = \"first_name\"\nlast_name = \"last_name\"\nemail = \"email\"\n\
             phone = \"phone\"\nstreet = \"street\"\npostcode = \"postcode\"\ncity = \"city\"\ndefault_region = \"NL\"\n"
        ),
    );
}

/// `blocks`: how many blocking rules key on the address (each skips the block).
fn check(mode: &str, blocks: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    skewed_project(dir, mode);
    let out = ok(&["run", "-p", p(dir)]);
    assert!(
        out.contains("shared by more than 1000 records were skipped"),
        "the skipped block is reported: {out}"
    );
    assert!(out.contains("1000AA"), "the warning names the key: {out}");
    let stats = query(
        dir,
        "SELECT metric, value FROM unify_stats WHERE metric IN ('records', 'customers', 'skipped_blocks') ORDER BY metric",
    );
    assert_eq!(
        stats,
        format!("metric,value\ncustomers,1210\nrecords,1220\nskipped_blocks,{blocks}\n"),
        "the ten duplicates merged, nobody at the locker did"
    );
}

#[test]
fn skewed_blocks_are_skipped_with_a_warning_in_rules_mode() {
    // Two default rules block on address and surname sound (all "Family<n>" sound alike).
    check("rules", 2);
}

#[test]
fn skewed_blocks_are_skipped_with_a_warning_in_probabilistic_mode() {
    // Blocking given with a rule on the address: the automatic choice (which counts no pairs
    // for blocks it would skip) found its recall without the address and never met the block.
    check("probabilistic", 1);
}
