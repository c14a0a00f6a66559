//! Match fields and their kinds, as `panorama.toml` declares them. Every staged field — the
//! built-in ones (`first_name`, `email`, `birth_date`, ...) and those a project declares in
//! `[unify.fields.<name>]` (a national id, a customer number, a contract date) — has a kind;
//! what a kind means when matching (staging SQL, comparison levels) is the unify stage's
//! (`crate::unify::fields`).

use crate::config::Problem;
use std::collections::BTreeMap;

use serde::Deserialize;

/// What a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum FieldKind {
    /// A code that identifies one person or account: national id, customer or card number,
    /// tax id. Staged with separators dropped and letters upper-cased; compared exactly and
    /// by one and two edits (typing errors).
    Identifier,
    /// A person's or company's name: normalized (case, accents), compared exactly and by
    /// Jaro–Winkler ≥ 0.92 / ≥ 0.8; exact agreement is weighed by how common the name is.
    Name,
    /// Free text (a district, a job title): trimmed and lower-cased, compared exactly and by
    /// Levenshtein similarity ≥ 0.8 / ≥ 0.6.
    Text,
    /// A date: text in the usual spellings (`1956-04-09`, `19560409`, `09.04.1956`,
    /// `9/4/1956`), an integer like `19560409`, a date or a timestamp. Impossible values
    /// (`1931-04-72`) become NULL and are counted. Compared exactly, day and month swapped,
    /// one digit different, same year.
    Date,
    /// A number; compared exactly and within the field's `tolerance` levels.
    Number,
    /// A postal code: spaces dropped, upper-cased; compared exactly and by one edit.
    Postcode,
    /// An e-mail address in canonical form; compared exactly, by mailbox name, and by two
    /// edits.
    Email,
    /// A phone number as its last nine digits; compared exactly.
    Phone,
    /// A street address with its tokens normalized (Straße = Str); compared exactly and by
    /// Levenshtein similarity ≥ 0.8.
    Address,
    /// A code from a small set (gender, country, state); compared exactly.
    Category,
}

impl FieldKind {
    pub fn name(self) -> &'static str {
        match self {
            FieldKind::Identifier => "identifier",
            FieldKind::Name => "name",
            FieldKind::Text => "text",
            FieldKind::Date => "date",
            FieldKind::Number => "number",
            FieldKind::Postcode => "postcode",
            FieldKind::Email => "email",
            FieldKind::Phone => "phone",
            FieldKind::Address => "address",
            FieldKind::Category => "category",
        }
    }

    /// The SQL type of the staged value.
    pub fn sql_type(self) -> &'static str {
        match self {
            FieldKind::Date => "DATE",
            FieldKind::Number => "DOUBLE",
            _ => "VARCHAR",
        }
    }

    /// Whether exact agreement is weighed by the value's frequency by default.
    pub fn term_frequency(self) -> bool {
        self == FieldKind::Name
    }
}

/// `[unify.fields.<name>]`: a match field of the project's own.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FieldDef {
    pub kind: FieldKind,
    /// `number` fields: absolute differences compared as their own levels, closest first
    /// (`[1, 5]`: "within 1", "within 5").
    #[serde(default)]
    pub tolerance: Vec<f64>,
    /// `date` fields given as text with both day and month ≤ 12 (`04/09/1956`): `"dmy"` (the
    /// default) or `"mdy"`.
    #[serde(default)]
    pub date_order: Option<String>,
    /// Free text for people reading the config and the `match_weights` table.
    #[serde(default)]
    pub description: Option<String>,
}

impl FieldDef {
    /// Why this definition cannot be used.
    pub fn check(&self, name: &str) -> Result<(), crate::config::Problem> {
        let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(Problem(format!(
                "unify.fields.{name}: a field name is lowercase letters, digits and `_`, starting with a letter"
            )));
        }
        if RESERVED.contains(&name) || super::FIELDS.contains(&name) {
            return Err(Problem(format!(
                "unify.fields.{name}: `{name}` is a built-in field or staging column; map it in [unify.sources.<source>] instead, or pick another name"
            )));
        }
        if !self.tolerance.is_empty() && self.kind != FieldKind::Number {
            return Err(Problem(format!(
                "unify.fields.{name}.tolerance: only `number` fields have tolerances (this one is `{}`)",
                self.kind.name()
            )));
        }
        if self.tolerance.iter().any(|t| !(t.is_finite() && *t > 0.0))
            || self.tolerance.windows(2).any(|w| w[0] >= w[1])
        {
            return Err(Problem(format!(
                "unify.fields.{name}.tolerance: positive numbers in increasing order, e.g. [1, 5]"
            )));
        }
        match (&self.date_order, self.kind) {
            (None, _) => {}
            (Some(o), FieldKind::Date) if o == "dmy" || o == "mdy" => {}
            (Some(_), FieldKind::Date) => {
                return Err(Problem(format!(
                    "unify.fields.{name}.date_order: \"dmy\" or \"mdy\""
                )))
            }
            (Some(_), k) => {
                return Err(Problem(format!(
                "unify.fields.{name}.date_order: only `date` fields have one (this one is `{}`)",
                k.name()
            )))
            }
        }
        Ok(())
    }
}

/// Columns of `unify_records` that are not match fields.
pub const RESERVED: &[&str] = &[
    "uid",
    "source",
    "record_id",
    "source_priority",
    "updated_at",
    "raw_first_name",
    "raw_last_name",
    "raw_email",
    "raw_phone",
    "raw_street",
    "raw_postcode",
    "raw_city",
    "raw_company",
    "customer_id",
    "block",
    "first_block",
    "key_bin",
];

/// The kind of a built-in staged field (None: a helper key such as `first_initial`, which
/// can block but has no comparison of its own).
pub fn builtin_kind(field: &str) -> Option<FieldKind> {
    Some(match field {
        "first_name" | "last_name" | "company" => FieldKind::Name,
        "email" => FieldKind::Email,
        "phone_digits" => FieldKind::Phone,
        "birth_date" => FieldKind::Date,
        "street" => FieldKind::Address,
        "postcode" => FieldKind::Postcode,
        "city" | "gender" | "country" => FieldKind::Category,
        _ => return None,
    })
}

/// The custom fields of a project, `[unify.fields]`.
pub type CustomFields = BTreeMap<String, FieldDef>;

/// The kind of any field, built-in or custom.
pub fn kind_of(field: &str, custom: &CustomFields) -> Option<FieldKind> {
    builtin_kind(field).or_else(|| custom.get(field).map(|d| d.kind))
}

/// Every staged field a rule or a blocking key may name: the built-in ones, then the custom.
pub fn staged_fields(custom: &CustomFields) -> Vec<String> {
    super::FIELDS
        .iter()
        .map(|f| f.to_string())
        .chain(custom.keys().cloned())
        .collect()
}

/// Whether a field has comparison levels: the built-in fields with a kind, `city`, and every
/// custom field (`crate::unify::fields::comparison` gives the levels; a unit test there keeps
/// the two in step).
pub fn has_comparison(field: &str, custom: &CustomFields) -> bool {
    field == "city" || kind_of(field, custom).is_some()
}

/// Fields with a comparison: built-in ones and every custom field.
pub fn comparable_fields(custom: &CustomFields) -> Vec<String> {
    staged_fields(custom)
        .into_iter()
        .filter(|f| has_comparison(f, custom))
        .collect()
}
