//! `[unify.merge]`: which record's value each unified field takes. The unify stage compiles
//! these into the merge aggregates (`crate::unify::merge`).

use crate::config::Problem;
use std::collections::BTreeMap;

use serde::Deserialize;

/// How a field's value is chosen among a customer's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// The value most of the customer's records agree on (compared normalized: "CINDY" and
    /// "Cindy" are one vote); ties go to the most trusted source, so with no majority this is
    /// `priority`.
    MostCommon,
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

/// A unified field: where its value comes from and how records vote on it.
pub struct Field {
    pub name: &'static str,
    /// The staged value the profile shows.
    pub(crate) value: &'static str,
    /// What records compare to agree (`most_common`): the normalized value.
    pub(crate) vote: &'static str,
    /// A normalized twin column taken from the same record (e-mail, phone).
    pub(crate) twin: Option<(&'static str, &'static str)>,
    pub(crate) default: Policy,
}

/// Unified fields and their default policies. Names and the birth date are taken by
/// consensus: a typo in the most trusted source no longer outvotes two records that agree
/// (with no majority, the most trusted source still wins). Contact points change over time, so
/// the most recent one is kept.
pub const FIELDS: &[Field] = &[
    Field {
        name: "first_name",
        value: "r.raw_first_name",
        vote: "normalize_name(r.raw_first_name)",
        twin: None,
        default: Policy::MostCommon,
    },
    Field {
        name: "last_name",
        value: "r.raw_last_name",
        vote: "r.last_name",
        twin: None,
        default: Policy::MostCommon,
    },
    Field {
        name: "email",
        value: "r.raw_email",
        vote: "coalesce(r.email, lower(r.raw_email))",
        twin: Some(("email_normalized", "r.email")),
        default: Policy::MostRecent,
    },
    Field {
        name: "phone",
        value: "r.raw_phone",
        vote: "coalesce(r.phone, r.raw_phone)",
        twin: Some(("phone_e164", "r.phone")),
        default: Policy::MostRecent,
    },
    Field {
        name: "address",
        value: "named_struct('street', r.raw_street, 'postcode', r.raw_postcode, 'city', r.raw_city)",
        vote: "named_struct('street', normalize_address(r.raw_street), 'postcode', upper(replace(r.raw_postcode, ' ', '')))",
        twin: None,
        default: Policy::Priority,
    },
    Field {
        name: "country",
        value: "r.country",
        vote: "r.country",
        twin: None,
        default: Policy::Priority,
    },
    Field {
        name: "birth_date",
        value: "r.birth_date",
        vote: "r.birth_date",
        twin: None,
        default: Policy::MostCommon,
    },
    Field {
        name: "gender",
        value: "r.gender",
        vote: "r.gender",
        twin: None,
        default: Policy::Priority,
    },
    Field {
        name: "company",
        value: "r.raw_company",
        vote: "r.company",
        twin: None,
        default: Policy::MostFilled,
    },
];

/// Check the field names of a merge section.
pub fn check(section: &MergeSection) -> Result<(), crate::config::Problem> {
    for field in section.fields.keys() {
        if !FIELDS.iter().any(|f| f.name == field) {
            return Err(Problem(format!(
                "unify.merge.fields: unknown field `{field}` (fields: {})",
                FIELDS.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
            )));
        }
    }
    Ok(())
}
