//! `[[expectations]]`: checks on the loaded sources, in the vocabulary of dbt tests and Great
//! Expectations. Each run evaluates them after loading and before unification; a failed
//! check of severity `error` stops the run there (the previous run stays current), one of
//! severity `warn` is reported. Results are kept in `data_quality`.
//!
//! ```toml
//! [[expectations]]
//! source = "crm_contacts"
//! column = "email"
//! matches = '^[^@\s]+@[^@\s]+\.[a-z]+$'
//! mostly = 0.95          # at least 95% of the non-NULL values
//! severity = "warn"      # default "error", as in dbt
//! ```

use crate::config::Problem;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

/// What happens when an expectation fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Reported in the run summary, `data_quality`, the console and `/metrics`.
    Warn,
    /// Stops the run before unification; the previous run stays current.
    #[default]
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warn => "warn",
            Severity::Error => "error",
        }
    }
}

/// One `[[expectations]]` table as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectationDef {
    /// Name in `data_quality`; default `<source>.<column or field>.<check>`.
    #[serde(default)]
    pub name: Option<String>,
    pub source: String,
    /// The source column checked (after `select`, `rename` and computed columns).
    #[serde(default)]
    pub column: Option<String>,
    /// `mapped_parse_rate`: the match field (`email`, `phone`, `birth_date`, `updated_at` or a
    /// custom field) whose mapped values are parsed.
    #[serde(default)]
    pub field: Option<String>,
    #[serde(default)]
    pub not_null: Option<bool>,
    #[serde(default)]
    pub unique: Option<bool>,
    /// Values allowed, compared as text; NULL is not judged (use `not_null`).
    #[serde(default)]
    pub accepted_values: Option<Vec<toml::Value>>,
    /// A regular expression (Rust syntax, unanchored: add `^`/`$`) every value must match.
    #[serde(default)]
    pub matches: Option<String>,
    /// `[low, high]`, inclusive: numbers, or dates/timestamps as text.
    #[serde(default)]
    pub between: Option<Vec<toml::Value>>,
    /// The source's rows may differ from the previous run's by at most this fraction
    /// (`0.2`: ±20%).
    #[serde(default)]
    pub row_count_change: Option<f64>,
    /// The newest value of `column` (a date or timestamp) is at most this old at the run's
    /// as-of time: `36h`, `2d`.
    #[serde(default)]
    pub freshness: Option<String>,
    /// At least this share of the non-empty values mapped to `field` parse (e-mails valid,
    /// phones to E.164, dates real dates).
    #[serde(default)]
    pub mapped_parse_rate: Option<f64>,
    /// Row-level checks (`not_null`, `unique`, `accepted_values`, `matches`, `between`): the
    /// share of rows that must pass (of all rows for `not_null`, of non-NULL values for the
    /// others). Default 1: every row.
    #[serde(default)]
    pub mostly: Option<f64>,
    #[serde(default)]
    pub severity: Severity,
    #[serde(default)]
    pub description: Option<String>,
}

/// What an expectation checks.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    NotNull,
    Unique,
    /// The accepted values, as text.
    AcceptedValues(Vec<String>),
    Matches(String),
    /// Low and high bound, each as a SQL literal.
    Between(String, String),
    RowCountChange(f64),
    Freshness(Duration),
    MappedParseRate(f64),
}

impl Check {
    /// The config key that names this check.
    pub fn key(&self) -> &'static str {
        match self {
            Check::NotNull => "not_null",
            Check::Unique => "unique",
            Check::AcceptedValues(_) => "accepted_values",
            Check::Matches(_) => "matches",
            Check::Between(..) => "between",
            Check::RowCountChange(_) => "row_count_change",
            Check::Freshness(_) => "freshness",
            Check::MappedParseRate(_) => "mapped_parse_rate",
        }
    }

    /// Whether the check judges rows one by one (and so takes `mostly`).
    pub fn is_row_level(&self) -> bool {
        matches!(
            self,
            Check::NotNull
                | Check::Unique
                | Check::AcceptedValues(_)
                | Check::Matches(_)
                | Check::Between(..)
        )
    }
}

/// An expectation ready to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct Expectation {
    pub name: String,
    pub source: String,
    pub column: Option<String>,
    pub field: Option<String>,
    pub check: Check,
    /// Share of rows that must pass (row-level checks); 1.0 otherwise.
    pub mostly: f64,
    pub severity: Severity,
    /// Where it is written, `expectations[2] (panorama.toml:40)`, for messages.
    pub at: String,
}

/// Match fields whose mapped values are parsed when staged, so have a parse rate.
pub const PARSED_FIELDS: &[&str] = &["email", "phone", "birth_date", "updated_at"];

/// A TOML scalar as a SQL literal and as text.
fn scalar(v: &toml::Value) -> Option<(String, String)> {
    match v {
        toml::Value::String(s) => Some((crate::sql_text::literal(s), s.clone())),
        toml::Value::Integer(i) => Some((i.to_string(), i.to_string())),
        toml::Value::Float(f) if f.is_finite() => Some((format!("{f:?}"), f.to_string())),
        toml::Value::Boolean(b) => Some((b.to_string(), b.to_string())),
        toml::Value::Datetime(d) => Some((crate::sql_text::literal(&d.to_string()), d.to_string())),
        _ => None,
    }
}

impl ExpectationDef {
    /// The expectation this table describes, or why it cannot be evaluated.
    pub fn resolve(&self) -> Result<Expectation, super::Problem> {
        let mut checks = self.declared_checks()?;
        let check = match checks.len() {
            1 => checks.pop().expect("one check"),
            0 => return Err("no check: give one of not_null, unique, accepted_values, matches, between, row_count_change, freshness, mapped_parse_rate".into()),
            _ => {
                return Err(Problem(format!(
                    "one check per [[expectations]] table, found {}: split it into one table each",
                    checks.iter().map(|c| c.key()).collect::<Vec<_>>().join(", ")
                )))
            }
        };
        self.check_target(&check)?;
        let mostly = self.passing_share(&check)?;
        let target = self.column.as_deref().or(self.field.as_deref());
        let name = self.name.clone().unwrap_or_else(|| match target {
            Some(t) => format!("{}.{t}.{}", self.source, check.key()),
            None => format!("{}.{}", self.source, check.key()),
        });
        Ok(Expectation {
            name,
            source: self.source.clone(),
            column: self.column.clone(),
            field: self.field.clone(),
            check,
            mostly,
            severity: self.severity,
            at: String::new(),
        })
    }

    /// The checks the table declares, each validated.
    fn declared_checks(&self) -> Result<Vec<Check>, super::Problem> {
        let mut checks = Vec::new();
        match self.not_null {
            Some(true) => checks.push(Check::NotNull),
            Some(false) => return Err("not_null = false checks nothing; remove it".into()),
            None => {}
        }
        match self.unique {
            Some(true) => checks.push(Check::Unique),
            Some(false) => return Err("unique = false checks nothing; remove it".into()),
            None => {}
        }
        if let Some(values) = &self.accepted_values {
            if values.is_empty() {
                return Err("accepted_values is empty: list the values a column may hold".into());
            }
            let texts = values
                .iter()
                .map(|v| scalar(v).map(|(_, text)| text))
                .collect::<Option<Vec<_>>>()
                .ok_or("accepted_values: strings or numbers, e.g. [\"NL\", \"DE\"]")?;
            checks.push(Check::AcceptedValues(texts));
        }
        if let Some(pattern) = &self.matches {
            regex::Regex::new(pattern)
                .map_err(|e| format!("matches: not a regular expression: {e}"))?;
            checks.push(Check::Matches(pattern.clone()));
        }
        if let Some(bounds) = &self.between {
            let literals = bounds.iter().map(scalar).collect::<Option<Vec<_>>>();
            match literals.as_deref() {
                Some([(lo, _), (hi, _)]) => checks.push(Check::Between(lo.clone(), hi.clone())),
                _ => return Err(
                    "between: two bounds, [low, high], numbers or dates as text (\"2000-01-01\")"
                        .into(),
                ),
            }
        }
        if let Some(change) = self.row_count_change {
            if !(change.is_finite() && change >= 0.0) {
                return Err("row_count_change: a fraction ≥ 0, e.g. 0.2 for ±20%".into());
            }
            checks.push(Check::RowCountChange(change));
        }
        if let Some(age) = &self.freshness {
            let d = super::parse_duration(age).ok_or_else(|| {
                format!("freshness: `{age}` is not a duration (`36h`, `2d`, `90m`)")
            })?;
            checks.push(Check::Freshness(d));
        }
        if let Some(rate) = self.mapped_parse_rate {
            if !(0.0..=1.0).contains(&rate) {
                return Err("mapped_parse_rate: a share from 0 to 1, e.g. 0.95".into());
            }
            checks.push(Check::MappedParseRate(rate));
        }
        Ok(checks)
    }

    /// `column` for the checks on a column, `field` for `mapped_parse_rate`, nothing else.
    fn check_target(&self, check: &Check) -> Result<(), super::Problem> {
        let needs_column = !matches!(check, Check::RowCountChange(_) | Check::MappedParseRate(_));
        match (&self.column, needs_column) {
            (None, true) => return Err(Problem(format!("{} needs `column`", check.key()))),
            (Some(_), false) => {
                return Err(Problem(format!(
                    "{} takes no `column`{}",
                    check.key(),
                    if matches!(check, Check::MappedParseRate(_)) {
                        " (name the match field with `field`)"
                    } else {
                        ""
                    }
                )))
            }
            _ => {}
        }
        match (&self.field, check) {
            (None, Check::MappedParseRate(_)) => {
                return Err(Problem(format!(
                    "mapped_parse_rate needs `field`: {} or a custom field",
                    PARSED_FIELDS.join(", ")
                )))
            }
            (Some(_), c) if !matches!(c, Check::MappedParseRate(_)) => {
                return Err(Problem(format!("{} takes `column`, not `field`", c.key())))
            }
            _ => {}
        }
        Ok(())
    }

    /// The share of rows that must pass (`mostly`, for row checks only; 1 by default).
    fn passing_share(&self, check: &Check) -> Result<f64, super::Problem> {
        Ok(match (self.mostly, check.is_row_level()) {
            (None, _) => 1.0,
            (Some(m), true) if (0.0..=1.0).contains(&m) => m,
            (Some(_), true) => return Err("mostly: a share from 0 to 1, e.g. 0.95".into()),
            (Some(_), false) => {
                return Err(Problem(format!(
                    "mostly applies to row checks (not_null, unique, accepted_values, matches, between), not {}",
                    check.key()
                )))
            }
        })
    }
}

impl super::ProjectConfig {
    /// The project's expectations, resolved (validated when the config was loaded).
    pub fn expectations(&self) -> Vec<Expectation> {
        self.expectations
            .iter()
            .enumerate()
            .filter_map(|(i, e)| {
                let mut x = e.get_ref().resolve().ok()?;
                x.at = self.key_with_line(e.span(), &format!("expectations[{i}]"));
                Some(x)
            })
            .collect()
    }

    /// Check every `[[expectations]]` table: one check each, a source that exists, a field its
    /// source maps, names used once.
    pub(super) fn check_expectations(
        &self,
        defs: &[Spanned<ExpectationDef>],
    ) -> crate::error::Result<()> {
        let mut names = std::collections::BTreeSet::new();
        for (i, def) in defs.iter().enumerate() {
            let at = |m: String| self.error_at(def.span(), format!("expectations[{i}]: {m}"));
            let e = def.get_ref().resolve().map_err(|m| at(m.0))?;
            if !self.sources.contains_key(&e.source) {
                return Err(at(format!(
                    "no source named `{}` (sources: {})",
                    e.source,
                    self.sources.keys().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
            if let Some(field) = &e.field {
                let custom = self
                    .unify
                    .as_ref()
                    .map(|u| u.custom_fields())
                    .unwrap_or_default();
                let parsed = PARSED_FIELDS.contains(&field.as_str()) || custom.contains_key(field);
                if !parsed {
                    return Err(at(format!(
                        "field `{field}` is not parsed when staged; parse rates are kept for {} and custom fields",
                        PARSED_FIELDS.join(", ")
                    )));
                }
                let mapped = self
                    .unify
                    .as_ref()
                    .and_then(|u| u.sources.get(&e.source))
                    .is_some_and(|m| m.get_ref().maps(field));
                if !mapped {
                    return Err(at(format!(
                        "[unify.sources.{}] does not map `{field}`, so it has no parse rate",
                        e.source
                    )));
                }
            }
            if !names.insert(e.name.clone()) {
                return Err(at(format!(
                    "the name `{}` is used by another expectation; give this one a `name`",
                    e.name
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(text: &str) -> Result<Expectation, Problem> {
        let d: ExpectationDef = toml::from_str(text).map_err(|e| Problem(e.to_string()))?;
        d.resolve()
    }

    #[test]
    fn one_check_with_its_target() {
        let e = def("source = \"crm\"\ncolumn = \"email\"\nmatches = '@'\nmostly = 0.9\nseverity = \"warn\"").unwrap();
        assert_eq!(e.name, "crm.email.matches");
        assert_eq!(e.check, Check::Matches("@".into()));
        assert_eq!(e.mostly, 0.9);
        assert_eq!(e.severity, Severity::Warn);
        let e = def("source = \"crm\"\nrow_count_change = 0.2").unwrap();
        assert_eq!(e.name, "crm.row_count_change");
        assert_eq!(e.severity, Severity::Error);
        let e = def("source = \"crm\"\ncolumn = \"age\"\nbetween = [0, 120]").unwrap();
        assert_eq!(e.check, Check::Between("0".into(), "120".into()));
        let e = def("source = \"crm\"\ncolumn = \"seen\"\nfreshness = \"2d\"").unwrap();
        assert_eq!(e.check, Check::Freshness(Duration::from_secs(2 * 86_400)));
    }

    #[test]
    fn mistakes_are_named() {
        let err = |t: &str| def(t).unwrap_err().0;
        assert!(err("source = \"crm\"").contains("no check"));
        assert!(
            err("source = \"crm\"\ncolumn = \"a\"\nnot_null = true\nunique = true")
                .contains("found not_null, unique")
        );
        assert!(err("source = \"crm\"\nnot_null = true").contains("needs `column`"));
        assert!(err("source = \"crm\"\ncolumn = \"a\"\nmatches = '('")
            .contains("not a regular expression"));
        assert!(
            err("source = \"crm\"\ncolumn = \"a\"\nrow_count_change = 0.1")
                .contains("takes no `column`")
        );
        assert!(
            err("source = \"crm\"\nrow_count_change = 0.1\nmostly = 0.5")
                .contains("mostly applies to row checks")
        );
        assert!(err("source = \"crm\"\ncolumn = \"a\"\nbetween = [1]").contains("two bounds"));
        assert!(
            err("source = \"crm\"\ncolumn = \"a\"\nfreshness = \"soon\"")
                .contains("not a duration")
        );
        assert!(err("source = \"crm\"\nmapped_parse_rate = 0.9").contains("needs `field`"));
        assert!(err("source = \"crm\"\ncolumn = \"a\"\nnot_null = false").contains("remove it"));
    }
}
