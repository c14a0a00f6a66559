//! Merge policies: which record's value each unified field takes (`[unify.merge]`), compiled
//! into the merge aggregates of `sql/unify/unified_customers.sql`.

use std::collections::BTreeMap;

use serde::Deserialize;

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

/// How a field's value is chosen among a customer's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// The most trusted source (lowest `priority`) that has a value.
    Priority,
    /// The most recently updated record that has a value.
    MostRecent,
    /// The least recently updated record that has a value.
    LeastRecent,
    /// The longest value (for `address`: the record with most address parts).
    MostFilled,
}

/// `[unify.merge]`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MergeSection {
    /// Policy for fields not listed in `fields`. Default: per-field defaults below.
    pub default: Option<Policy>,
    /// Per unified field: first_name, last_name, email, phone, address, country, birth_date,
    /// gender, company.
    #[serde(default)]
    pub fields: BTreeMap<String, Policy>,
}

/// Unified fields, the staged column each is taken from, and its default policy.
pub const FIELDS: &[(&str, &str, Policy)] = &[
    ("first_name", "r.raw_first_name", Policy::Priority),
    ("last_name", "r.raw_last_name", Policy::Priority),
    ("email", "r.raw_email", Policy::MostRecent),
    ("phone", "r.raw_phone", Policy::MostRecent),
    (
        "address",
        "named_struct('street', r.raw_street, 'postcode', r.raw_postcode, 'city', r.raw_city)",
        Policy::Priority,
    ),
    ("country", "r.country", Policy::Priority),
    ("birth_date", "r.birth_date", Policy::Priority),
    ("gender", "r.gender", Policy::Priority),
    ("company", "r.raw_company", Policy::MostFilled),
];

fn aggregate(policy: Policy, column: &str, field: &str) -> String {
    match (policy, field) {
        (Policy::Priority, _) => format!("by_priority({column}, r.source_priority)"),
        (Policy::MostRecent, _) => format!("most_recent({column}, r.updated_at)"),
        (Policy::LeastRecent, _) => format!("least_recent({column}, r.updated_at)"),
        // A whole address: the record with the most parts filled in.
        (Policy::MostFilled, "address") => format!(
            "by_priority({column}, 3 - (CASE WHEN r.raw_street IS NULL THEN 0 ELSE 1 END \
             + CASE WHEN r.raw_postcode IS NULL THEN 0 ELSE 1 END + CASE WHEN r.raw_city IS NULL THEN 0 ELSE 1 END))"
        ),
        (Policy::MostFilled, _) => format!("most_filled({column})"),
    }
}

/// Check the field names of a merge section.
pub fn check(section: &MergeSection) -> Result<(), String> {
    for field in section.fields.keys() {
        if !FIELDS.iter().any(|(f, _, _)| f == field) {
            return Err(format!(
                "unify.merge.fields: unknown field `{field}` (fields: {})",
                FIELDS
                    .iter()
                    .map(|(f, _, _)| *f)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    Ok(())
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
    let mut sql = TEMPLATE
        .replace("{links}", &subset("customer_links"))
        .replace(
            "{records}",
            &match part {
                Part::Chunk(..) => subset("unify_linked"),
                // One pass: join inside the merge query.
                _ => format!(
                    "(SELECT r.*, l.customer_id, l.source_winner FROM {} l \
                 JOIN unify_records r ON r.uid = l.uid)",
                    subset("customer_links")
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
    for (field, column, default) in FIELDS {
        let column = &winner(column);
        let policy = section
            .and_then(|s| s.fields.get(*field).copied().or(s.default))
            .unwrap_or(*default);
        sql = sql.replace(&format!("{{{field}}}"), &aggregate(policy, column, field));
        // The normalized twins follow the same policy, so they describe the same record.
        let twin = match *field {
            "email" => Some(("email_normalized", "r.email")),
            "phone" => Some(("phone_e164", "r.phone")),
            _ => None,
        };
        if let Some((name, col)) = twin {
            sql = sql.replace(
                &format!("{{{name}}}"),
                &aggregate(policy, &winner(col), name),
            );
        }
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let sql = unified_customers_sql(None, false, Part::All);
        let body: String = sql.lines().filter(|l| !l.starts_with("--")).collect();
        assert!(!body.contains('{'), "every placeholder is filled: {sql}");
        assert!(sql.contains("by_priority(r.raw_first_name, r.source_priority) AS first_name"));
        assert!(sql.contains("most_recent(r.raw_email, r.updated_at) AS email"));
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
        assert!(sql.contains("most_recent(r.raw_first_name, r.updated_at) AS first_name"));
        assert!(sql.contains("least_recent(r.email, r.updated_at) AS email_normalized"));
        assert!(sql.contains("by_priority(named_struct('street', r.raw_street, 'postcode', r.raw_postcode, 'city', r.raw_city), 3 - (CASE"));
        assert!(check(&MergeSection {
            default: None,
            fields: [("shoe_size".to_string(), Policy::Priority)]
                .into_iter()
                .collect()
        })
        .is_err());
    }
}
