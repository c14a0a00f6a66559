//! Match fields and their kinds. Every staged field — the built-in ones (`first_name`,
//! `email`, `birth_date`, ...) and those a project declares in `[unify.fields.<name>]`
//! (a national id, a customer number, a contract date) — has a kind, and the kind decides how
//! a value is normalized when staged, which comparison levels it has in probabilistic
//! matching, whether exact agreement is weighed by how rare the value is, and whether it can
//! be a blocking key. One mechanism for both: a custom `name` field is compared exactly like
//! `last_name`.

pub use crate::config::unify::fields::{
    builtin_kind, comparable_fields, has_comparison, kind_of, staged_fields, CustomFields,
    FieldDef, FieldKind, RESERVED,
};

use super::probabilistic::comparisons::{Comparison, Level};
use super::staging::literal;

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
        // One edit — a letter changed, dropped, added, or two neighbours swapped — is how
        // a name is mistyped; it says more than a Jaro-Winkler band, which also holds
        // different names of one stem. On the independent generator's registry and shop
        // records with one surname and postcode, first names one edit apart were one person
        // for 2,297 pairs and two people for 51 (Jaro-Winkler >= 0.8 alone: 1.9 bits).
        FieldKind::Name => vec![
            exact(),
            level("one edit", "within_one_edit({l}, {r})"),
            jw("0.92"),
            jw("0.8"),
        ],
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
        // Postcodes are hierarchical (NL 1234AB, DE 12345, BE 1234, UK SW1A 1AA, US ZIP+3):
        // their leading characters name a district and an area, so a move within a town
        // keeps them, as Splink's postcode comparison has sector, district and area levels.
        // Generator: true pairs whose postcodes differ share the first two characters 63%
        // of the time, random pairs 2.7%; EM learns what each level says in the data.
        FieldKind::Postcode => vec![
            exact(),
            lev(1),
            level("same district", "substr({l}, 1, 3) = substr({r}, 1, 3)"),
            level("same area", "substr({l}, 1, 2) = substr({r}, 1, 2)"),
        ],
        // No "same mailbox name" level: mailbox names are made of the person's name, so two
        // namesakes share one far more often than random pairs (whose rate is u) do — on the
        // demo, namesakes at different providers were its main false matches.
        FieldKind::Email => vec![exact(), lev(2)],
        FieldKind::Phone | FieldKind::Category => vec![exact()],
        FieldKind::Address => vec![exact(), lev_sim("0.8")],
    }
}

/// The columns of `unify_records` matching reads of a record: `uid`, `source` (a pair of
/// records of one source has priors of its own), every staged field, then what a comparison
/// level reads of the whole records (`raw_first_name`, for a first name among the other's
/// given names). Increments and real-time match hold these in memory.
pub fn matching_columns(unify: &super::config::UnifySection) -> Vec<String> {
    let mut cols = vec!["uid".to_string(), "source".to_string()];
    cols.extend(staged_fields(&unify.custom_fields()));
    let comparisons = unify.probabilistic_section().comparisons();
    cols.extend(comparisons.iter().flat_map(|c| c.columns()));
    let mut seen = std::collections::HashSet::new();
    cols.retain(|c| seen.insert(c.clone()));
    cols
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
            // One's first name is another of the other's given names: a registry keeps
            // "Anna Maria", the shop the call name "Maria", and only the first given name is
            // staged. Last, so every closer level wins; EM learns how much it says.
            v.push(level(
                "another of the given names",
                "(is_given_name_of({l}, {R}.raw_first_name) OR is_given_name_of({r}, {L}.raw_first_name))",
            ));
            v
        }
        // A surname also agrees without its particles: one source writes "van der Wal",
        // another "Wal" with "Anna van der" as given names, or drops "El" (`surname_core`).
        // On the independent generator, of 1,378 missed true pairs with one first name and
        // two surnames, 425 had one surname inside the other and 270 shared a word.
        "last_name" => {
            let mut v = levels(FieldKind::Name, &[]);
            v.insert(
                1,
                level(
                    "same without particles",
                    "surname_core({l}) = surname_core({r})",
                ),
            );
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
        unless: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The config layer says which fields have a comparison without building one: it must
    /// agree with the levels built here, for every built-in field and a custom one.
    #[test]
    fn config_knows_which_fields_compare() {
        let mut custom = CustomFields::new();
        custom.insert(
            "national_id".into(),
            FieldDef {
                kind: FieldKind::Identifier,
                tolerance: vec![],
                date_order: None,
                description: None,
            },
        );
        for f in staged_fields(&custom) {
            assert_eq!(
                comparison(&f, &custom).is_some(),
                has_comparison(&f, &custom),
                "{f}"
            );
        }
        assert!(!has_comparison("first_initial", &custom));
    }

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
            .0
            .contains("built-in"));
        assert!(def(FieldKind::Identifier).check("Bad-Name").is_err());
        let mut n = def(FieldKind::Number);
        n.tolerance = vec![5.0, 1.0];
        assert!(n.check("income").unwrap_err().0.contains("increasing"));
        let mut t = def(FieldKind::Text);
        t.tolerance = vec![1.0];
        assert!(t.check("district").unwrap_err().0.contains("only `number`"));
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
        assert_eq!(first.label(3), "initial");
        assert_eq!(first.label(2), "swapped with the surname");
        assert_eq!(first.label(1), "another of the given names");
        assert!(comparison("first_initial", &custom).is_none());
        assert!(comparison("nope", &custom).is_none());
    }
}
