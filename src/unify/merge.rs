//! Merge policies: which record's value each unified field takes (`[unify.merge]`), compiled
//! into the merge aggregates of `sql/unify/unified_customers.sql`.

pub use crate::config::unify::merge::{check, Field, MergeSection, Policy, FIELDS};
use crate::table_catalog::names;

const TEMPLATE: &str = include_str!("../../sql/unify/unified_customers.sql");

/// Which customers a merge query merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    All,
    /// Those whose id number is k modulo n.
    Chunk(usize, usize),
    /// Those listed in `unify_remerge`.
    Listed,
}

/// The columns of `unified_customers_provenance` beside `customer_id`: per field, the source
/// and record its value came from.
pub fn provenance_columns() -> Vec<String> {
    FIELDS
        .iter()
        .flat_map(|f| {
            [
                format!("{}_source", f.name),
                format!("{}_record_id", f.name),
            ]
        })
        .collect()
}

/// The aggregate choosing one of a customer's `candidate` values: a struct of the value (`v`),
/// its twin (`n`), and the record it came from (`s`, `id`), NULL where the record has no value.
/// Ties break on the whole struct, so on the value first.
fn aggregate(policy: Policy, field: &Field, candidate: &str, vote: &str) -> String {
    match (policy, field.name) {
        (Policy::MostCommon, _) => {
            format!("most_common({candidate}, {vote}, r.source_priority)")
        }
        (Policy::Priority, _) => format!("by_priority({candidate}, r.source_priority)"),
        (Policy::MostRecent, _) => format!("most_recent({candidate}, r.updated_at)"),
        (Policy::LeastRecent, _) => format!("least_recent({candidate}, r.updated_at)"),
        // A whole address: the record with the most parts filled in.
        (Policy::MostFilled, "address") => format!(
            "by_priority({candidate}, 3 - (CASE WHEN r.raw_street IS NULL THEN 0 ELSE 1 END \
             + CASE WHEN r.raw_postcode IS NULL THEN 0 ELSE 1 END + CASE WHEN r.raw_city IS NULL THEN 0 ELSE 1 END))"
        ),
        // The longest value.
        (Policy::MostFilled, _) => format!(
            "by_priority({candidate}, -character_length(CAST({} AS VARCHAR)))",
            field.value
        ),
    }
}

/// The `unified_customers` SQL for these policies.
///
/// With `dedup_winners`, only records with `customer_links.source_winner` feed the merged
/// fields (the others' values are masked to NULL, which every aggregate skips); counts and
/// first/last seen still cover all records.
///
/// `Part::Chunk(k, n)` merges only the customers whose id number is k modulo n, reading
/// `unify_linked` (records with their customer, written once for all chunks);
/// `Part::Listed` only those in the table `unify_remerge` (an incremental run).
pub fn unified_customers_sql(
    section: Option<&MergeSection>,
    dedup_winners: bool,
    part: Part,
) -> String {
    let subset = |table: &str| {
        match part {
        Part::All => table.to_string(),
        Part::Chunk(k, n) => format!(
            "(SELECT * FROM {table} WHERE CAST(substr(customer_id, 5) AS BIGINT) % {n} = {k})"
        ),
        Part::Listed => format!(
            "(SELECT t.* FROM {table} t LEFT SEMI JOIN unify_remerge m ON t.customer_id = m.customer_id)"
        ),
    }
    };
    let sql = TEMPLATE
        .replace("{links}", &subset(names::CUSTOMER_LINKS))
        .replace(
            "{records}",
            &match part {
                Part::Chunk(..) => subset("unify_linked"),
                // One pass: join inside the merge query.
                _ => format!(
                    "(SELECT r.*, l.customer_id, l.source_winner FROM {} l \
                 JOIN unify_records r ON r.uid = l.uid)",
                    subset(names::CUSTOMER_LINKS)
                ),
            },
        );
    let winner = |col: &str| {
        if dedup_winners {
            format!("CASE WHEN r.source_winner THEN {col} END")
        } else {
            col.to_string()
        }
    };
    let mut merged = Vec::new();
    let mut profile = Vec::new();
    let mut provenance = Vec::new();
    for field in FIELDS {
        let policy = section
            .and_then(|s| s.fields.get(field.name).copied().or(s.default))
            .unwrap_or(field.default);
        let twin = field
            .twin
            .map(|(_, col)| format!("'n', {col}, "))
            .unwrap_or_default();
        // A record without the value offers no candidate (NULL), so it neither wins nor votes.
        let present = match field.name {
            "address" => "r.raw_street IS NOT NULL OR r.raw_postcode IS NOT NULL".to_string(),
            _ => format!("{} IS NOT NULL", field.value),
        };
        let candidate = winner(&format!(
            "CASE WHEN {present} THEN named_struct('v', {}, {twin}'s', r.source, 'id', r.record_id) END",
            field.value
        ));
        let name = field.name;
        merged.push(format!(
            "{} AS {name}",
            aggregate(policy, field, &candidate, field.vote)
        ));
        match name {
            "address" => profile.extend(
                ["street", "postcode", "city"].map(|p| format!("m.address['v']['{p}'] AS {p}")),
            ),
            _ => profile.push(format!("m.{name}['v'] AS {name}")),
        }
        if let Some((twin, _)) = field.twin {
            profile.push(format!("m.{name}['n'] AS {twin}"));
        }
        provenance.push(format!(
            "m.{name}['s'] AS {name}_source, m.{name}['id'] AS {name}_record_id"
        ));
    }
    sql.replace("{merged}", &merged.join(",\n         "))
        .replace("{profile}", &profile.join(", "))
        .replace("{provenance}", &provenance.join(",\n       "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let sql = unified_customers_sql(None, false, Part::All);
        let body: String = sql.lines().filter(|l| !l.starts_with("--")).collect();
        assert!(!body.contains('{'), "every placeholder is filled: {sql}");
        assert!(sql.contains(
            "most_common(CASE WHEN r.raw_first_name IS NOT NULL THEN named_struct('v', r.raw_first_name, 's', r.source, 'id', r.record_id) END, normalize_name(r.raw_first_name), r.source_priority) AS first_name"
        ), "{sql}");
        assert!(sql.contains("most_recent(CASE WHEN r.raw_email IS NOT NULL THEN named_struct('v', r.raw_email, 'n', r.email, 's'"));
        assert!(sql.contains("m.email['n'] AS email_normalized"));
        assert!(sql.contains("m.address['v']['street'] AS street"));
        assert!(sql.contains(
            "m.birth_date['s'] AS birth_date_source, m.birth_date['id'] AS birth_date_record_id"
        ));
        let section = MergeSection {
            default: Some(Policy::MostRecent),
            fields: [
                ("email".to_string(), Policy::LeastRecent),
                ("address".to_string(), Policy::MostFilled),
            ]
            .into_iter()
            .collect(),
        };
        let sql = unified_customers_sql(Some(&section), false, Part::All);
        assert!(sql.contains("most_recent(CASE WHEN r.raw_first_name IS NOT NULL"));
        assert!(sql.contains("least_recent(CASE WHEN r.raw_email IS NOT NULL"));
        assert!(sql.contains("END, 3 - (CASE WHEN r.raw_street IS NULL"));
        assert_eq!(provenance_columns().len(), 2 * FIELDS.len());
        assert!(check(&MergeSection {
            default: None,
            fields: [("shoe_size".to_string(), Policy::Priority)]
                .into_iter()
                .collect()
        })
        .is_err());
    }
}
