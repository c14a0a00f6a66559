//! Match fields and their kinds. Every staged field — the built-in ones (`first_name`,
//! `email`, `birth_date`, ...) and those a project declares in `[unify.fields.<name>]`
//! (a national id, a customer number, a contract date) — has a kind, and the kind decides how
//! a value is normalized when staged, which comparison levels it has in probabilistic
//! matching, whether exact agreement is weighed by how rare the value is, and whether it can
//! be a blocking key. One mechanism for both: a custom `name` field is compared exactly like
//! `last_name`.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::probabilistic::comparisons::{Comparison, Level};
use super::staging::literal;

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
    pub fn check(&self, name: &str) -> Result<(), String> {
        let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(format!(
                "unify.fields.{name}: a field name is lowercase letters, digits and `_`, starting with a letter"
            ));
        }
        if RESERVED.contains(&name) || super::config::FIELDS.contains(&name) {
            return Err(format!(
                "unify.fields.{name}: `{name}` is a built-in field or staging column; map it in [unify.sources.<source>] instead, or pick another name"
            ));
        }
        if !self.tolerance.is_empty() && self.kind != FieldKind::Number {
            return Err(format!(
                "unify.fields.{name}.tolerance: only `number` fields have tolerances (this one is `{}`)",
                self.kind.name()
            ));
        }
        if self.tolerance.iter().any(|t| !(t.is_finite() && *t > 0.0))
            || self.tolerance.windows(2).any(|w| w[0] >= w[1])
        {
            return Err(format!(
                "unify.fields.{name}.tolerance: positive numbers in increasing order, e.g. [1, 5]"
            ));
        }
        match (&self.date_order, self.kind) {
            (None, _) => {}
            (Some(o), FieldKind::Date) if o == "dmy" || o == "mdy" => {}
            (Some(_), FieldKind::Date) => {
                return Err(format!(
                    "unify.fields.{name}.date_order: \"dmy\" or \"mdy\""
                ))
            }
            (Some(_), k) => {
                return Err(format!(
                "unify.fields.{name}.date_order: only `date` fields have one (this one is `{}`)",
                k.name()
            ))
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
    super::config::FIELDS
        .iter()
        .map(|f| f.to_string())
        .chain(custom.keys().cloned())
        .collect()
}

/// The staged value of a custom field from a raw SQL expression over the source's columns.
pub fn stage_sql(def: &FieldDef, raw: &str) -> String {
    let text = format!("CAST({raw} AS VARCHAR)");
    match def.kind {
        FieldKind::Identifier => format!("normalize_identifier({text})"),
        FieldKind::Name => format!("normalize_name({text})"),
        FieldKind::Text => format!("nullif(lower(trim({text})), '')"),
        FieldKind::Date => match &def.date_order {
            Some(o) => format!("parse_date({raw}, {})", literal(o)),
            None => format!("parse_date({raw})"),
        },
        FieldKind::Number => format!("TRY_CAST({raw} AS DOUBLE)"),
        FieldKind::Postcode => format!("nullif(upper(replace(trim({text}), ' ', '')), '')"),
        FieldKind::Email => format!("normalize_email({text}, true)"),
        FieldKind::Phone => format!("phone_digits({text})"),
        FieldKind::Address => format!("normalize_address({text})"),
        FieldKind::Category => format!("nullif(upper(trim({text})), '')"),
    }
}

fn level(label: impl Into<String>, condition: impl Into<String>) -> Level {
    Level {
        label: label.into(),
        condition: condition.into(),
    }
}

/// The comparison levels of a kind, closest first (disagreement, level 0, is implicit).
pub fn levels(kind: FieldKind, tolerance: &[f64]) -> Vec<Level> {
    let exact = || level("exact", "{l} = {r}");
    let jw = |t: &str| {
        level(
            format!("jaro_winkler >= {t}"),
            format!("jaro_winkler({{l}}, {{r}}) >= {t}"),
        )
    };
    let lev = |n: u32| {
        level(
            format!("levenshtein <= {n}"),
            format!("levenshtein_distance({{l}}, {{r}}) <= {n}"),
        )
    };
    let lev_sim = |t: &str| {
        level(
            format!("levenshtein_sim >= {t}"),
            format!("levenshtein_sim({{l}}, {{r}}) >= {t}"),
        )
    };
    match kind {
        FieldKind::Identifier => vec![exact(), lev(1), lev(2)],
        FieldKind::Name => vec![exact(), jw("0.92"), jw("0.8")],
        FieldKind::Text => vec![exact(), lev_sim("0.8"), lev_sim("0.6")],
        FieldKind::Date => vec![
            exact(),
            // A typo in one digit of the day, month or year.
            level(
                "one digit differs",
                "levenshtein_distance(CAST({l} AS VARCHAR), CAST({r} AS VARCHAR)) <= 1",
            ),
            // Day and month read in the other order (an American file beside a European one).
            level(
                "day and month swapped",
                "(date_part('year', {l}) = date_part('year', {r}) AND date_part('month', {l}) = date_part('day', {r}) AND date_part('day', {l}) = date_part('month', {r}))",
            ),
            level("same year", "date_part('year', {l}) = date_part('year', {r})"),
        ],
        FieldKind::Number => std::iter::once(exact())
            .chain(tolerance.iter().map(|t| {
                level(format!("within {t}"), format!("abs({{l}} - {{r}}) <= {t:?}"))
            }))
            .collect(),
        FieldKind::Postcode => vec![exact(), lev(1)],
        // No "same mailbox name" level: mailbox names are made of the person's name, so two
        // namesakes share one far more often than random pairs (whose rate is u) do — on the
        // demo, namesakes at different providers were its main false matches.
        FieldKind::Email => vec![exact(), lev(2)],
        FieldKind::Phone | FieldKind::Category => vec![exact()],
        FieldKind::Address => vec![exact(), lev_sim("0.8")],
    }
}

/// The comparison of a field, built-in or custom; None for fields without one.
pub fn comparison(field: &str, custom: &CustomFields) -> Option<Comparison> {
    let levels = match field {
        // A first name also agrees when one side is only an initial ("J" and "jurgen").
        "first_name" => {
            let mut v = levels(FieldKind::Name, &[]);
            v.push(level(
                "initial",
                "((length({l}) = 1 OR length({r}) = 1) AND substr({l}, 1, 1) = substr({r}, 1, 1))",
            ));
            // Given name and surname in each other's place (FEBRL swaps 1 in 75 duplicates):
            // a typo-like error, not two people.
            v.push(level(
                "swapped with the surname",
                "(jaro_winkler({l}, {R}.last_name) >= 0.92 AND jaro_winkler({L}.last_name, {r}) >= 0.92)",
            ));
            v
        }
        // Cities are compared as written: a fuzzy city says little once postcodes are compared.
        "city" => vec![level("exact", "{l} = {r}")],
        f => match (builtin_kind(f), custom.get(f)) {
            (Some(k), _) => levels(k, &[]),
            (None, Some(def)) => levels(def.kind, &def.tolerance),
            (None, None) => return None,
        },
    };
    Some(Comparison {
        field: field.to_string(),
        levels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_fields_are_checked() {
        let def = |kind| FieldDef {
            kind,
            tolerance: vec![],
            date_order: None,
            description: None,
        };
        assert!(def(FieldKind::Identifier).check("national_id").is_ok());
        assert!(def(FieldKind::Identifier)
            .check("email")
            .unwrap_err()
            .contains("built-in"));
        assert!(def(FieldKind::Identifier).check("Bad-Name").is_err());
        let mut n = def(FieldKind::Number);
        n.tolerance = vec![5.0, 1.0];
        assert!(n.check("income").unwrap_err().contains("increasing"));
        let mut t = def(FieldKind::Text);
        t.tolerance = vec![1.0];
        assert!(t.check("district").unwrap_err().contains("only `number`"));
    }

    #[test]
    fn kinds_give_levels() {
        let mut custom = CustomFields::new();
        custom.insert(
            "income".into(),
            FieldDef {
                kind: FieldKind::Number,
                tolerance: vec![100.0, 1000.0],
                date_order: None,
                description: None,
            },
        );
        let c = comparison("income", &custom).unwrap();
        assert_eq!(c.level_count(), 4);
        assert_eq!(c.label(2), "within 100");
        let d = comparison("birth_date", &custom).unwrap();
        assert_eq!(d.label(2), "day and month swapped");
        let first = comparison("first_name", &custom).unwrap();
        assert_eq!(first.label(2), "initial");
        assert_eq!(first.label(1), "swapped with the surname");
        assert!(comparison("first_initial", &custom).is_none());
        assert!(comparison("nope", &custom).is_none());
    }
}
