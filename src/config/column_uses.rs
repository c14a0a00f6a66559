//! Where the config names a column of a source: the mappings of `[unify.sources]`,
//! `[unify.identities]` and `[unify.accounts.sources]`, the columns of `[activities]`,
//! `[[consent.sources]]` and `[[expectations]]`. A run checks them against the columns a
//! source really has, so a column dropped from an export fails with every key that needs it,
//! with its line — not with a SQL planner's "No field named" deep in unification.
//!
//! Mapped SQL expressions (`street = { sql = "split_part(address, ', ', 1)" }`) name the
//! plain identifiers they use (`address`); an expression holding a subquery, or one that
//! does not parse, is left to the SQL planner, and so are dotted names (`t.col` may be a
//! table qualifier or a struct field).

use std::ops::{ControlFlow, Range};

use datafusion::sql::sqlparser::ast::{visit_expressions, Expr};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

use super::ProjectConfig;

/// One config key naming a column of a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnUse {
    /// The column as the source's table has it (after `select`, `rename`, computed columns).
    pub column: String,
    /// The dotted key, `unify.sources.crm_contacts.phone`.
    pub key: String,
    /// Where the key is in the config text (its table when the key itself is not found).
    pub span: Range<usize>,
    /// An unquoted identifier in a SQL expression: it names the column in any case (the
    /// planner folds it to lower case; a column spelt otherwise fails there, with its name).
    pub any_case: bool,
}

impl ColumnUse {
    /// Whether this use names `column`.
    pub fn names(&self, column: &str) -> bool {
        if self.any_case {
            self.column.eq_ignore_ascii_case(column)
        } else {
            self.column == column
        }
    }
}

/// The plain column identifiers of a SQL expression, with whether each was quoted; nothing
/// when it does not parse or holds a subquery (its names may be another table's).
pub fn expression_columns(sql: &str) -> Vec<(String, bool)> {
    let dialect = GenericDialect {};
    let Ok(expr) = Parser::new(&dialect)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
    else {
        return Vec::new();
    };
    let mut names: Vec<(String, bool)> = Vec::new();
    let outcome = visit_expressions(&expr, |e| match e {
        Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => ControlFlow::Break(()),
        Expr::Identifier(id) => {
            let name = (id.value.clone(), id.quote_style.is_some());
            if !names.contains(&name) {
                names.push(name);
            }
            ControlFlow::Continue(())
        }
        _ => ControlFlow::Continue(()),
    });
    if outcome.is_break() {
        return Vec::new();
    }
    names
}

impl ProjectConfig {
    /// Every key of the config that names a column of source `source`.
    pub fn column_uses(&self, source: &str) -> Vec<ColumnUse> {
        let mut uses = Vec::new();
        let mut add = |table: &str, span: Range<usize>, key: &str, column: Option<&str>| {
            if let Some(column) = column {
                uses.push(ColumnUse {
                    column: column.to_string(),
                    key: format!("{table}.{key}"),
                    span: self.key_span(span, key),
                    any_case: false,
                });
            }
        };
        // Kept apart while `add` holds `uses`; appended at the end.
        let mut in_sql = Vec::new();
        let mut add_expression = |table: &str, span: Range<usize>, key: &str, sql: &str| {
            let span = self.key_span(span, key);
            for (column, quoted) in expression_columns(sql) {
                in_sql.push(ColumnUse {
                    // What the planner looks up: an unquoted name folded to lower case.
                    column: if quoted {
                        column
                    } else {
                        column.to_lowercase()
                    },
                    key: format!("{table}.{key}"),
                    span: span.clone(),
                    any_case: !quoted,
                });
            }
        };
        if let Some(u) = &self.unify {
            if let Some(m) = u.sources.get(source) {
                let table = format!("unify.sources.{source}");
                let map = m.get_ref();
                add(&table, m.span(), "record_id", map.record_id.as_deref());
                for (key, mapped) in map.builtin() {
                    match mapped.expression() {
                        Some(sql) => add_expression(&table, m.span(), key, sql),
                        None => add(&table, m.span(), key, mapped.column()),
                    }
                }
                for (key, value) in &map.custom {
                    match value.get("sql").and_then(|v| v.as_str()) {
                        Some(sql) => add_expression(&table, m.span(), key, sql),
                        None => add(&table, m.span(), key, value.as_str()),
                    }
                }
            }
            if let Some(m) = u.identities.get(source) {
                let table = format!("unify.identities.{source}");
                let map = m.get_ref();
                add(&table, m.span(), "anonymous_id", Some(&map.anonymous_id));
                add(&table, m.span(), "email", map.email.as_deref());
                add(&table, m.span(), "phone", map.phone.as_deref());
                add(&table, m.span(), "timestamp", map.timestamp.as_deref());
            }
            if let Some(m) = u.accounts.as_ref().and_then(|a| a.sources.get(source)) {
                let table = format!("unify.accounts.sources.{source}");
                let map = m.get_ref();
                add(&table, m.span(), "record_id", map.record_id.as_deref());
                add(&table, m.span(), "company", Some(&map.company));
                for (key, column) in [
                    ("domain", &map.domain),
                    ("street", &map.street),
                    ("postcode", &map.postcode),
                    ("city", &map.city),
                    ("country", &map.country),
                ] {
                    add(&table, m.span(), key, column.as_deref());
                }
            }
        }
        for (name, a) in &self.activities {
            let act = a.get_ref();
            if act.source != source {
                continue;
            }
            let table = format!("activities.{name}");
            add(&table, a.span(), "customer", act.customer.as_deref());
            add(
                &table,
                a.span(),
                "anonymous_id",
                act.anonymous_id.as_deref(),
            );
            add(&table, a.span(), "timestamp", Some(&act.timestamp));
            add(&table, a.span(), "type_column", act.type_column.as_deref());
            add(&table, a.span(), "amount", act.amount.as_deref());
            for d in &act.details {
                add(&table, a.span(), "details", Some(d));
            }
        }
        if let Some(c) = &self.consent {
            for s in c.sources.iter().filter(|s| s.get_ref().source == source) {
                let col = s.get_ref();
                add("consent.sources", s.span(), "column", Some(&col.column));
                add(
                    "consent.sources",
                    s.span(),
                    "timestamp",
                    col.timestamp.as_deref(),
                );
            }
        }
        for (i, e) in self.expectations.iter().enumerate() {
            let def = e.get_ref();
            if def.source == source {
                add(
                    &format!("expectations[{i}]"),
                    e.span(),
                    "column",
                    def.column.as_deref(),
                );
            }
        }
        uses.extend(in_sql);
        uses
    }

    /// The span of `key = ...` in the table at `within`, else `within`. A table opened by a
    /// header has the header as its span in some cases, so the search runs from the span's
    /// start to the next header.
    fn key_span(&self, within: Range<usize>, key: &str) -> Range<usize> {
        let Some(rest) = self.text.get(within.start..) else {
            return within;
        };
        let first_line = rest.find('\n').map_or(rest.len(), |i| i + 1);
        let end = rest[first_line..]
            .find("\n[")
            .map_or(rest.len(), |i| first_line + i + 1)
            .max(within.len())
            .min(rest.len());
        let text = &rest[..end];
        let mut from = 0;
        while let Some(i) = text[from..].find(key) {
            let at = from + i;
            let before = text[..at].chars().next_back();
            let after = text[at + key.len()..].trim_start_matches([' ', '\t']);
            let starts_key = before.is_none_or(|c| c.is_whitespace() || c == '{' || c == ',');
            if starts_key && after.starts_with('=') {
                return within.start + at..within.start + at + key.len();
            }
            from = at + key.len();
        }
        within
    }
}

#[cfg(test)]
mod tests {
    use super::expression_columns;

    fn names(sql: &str) -> Vec<String> {
        expression_columns(sql)
            .into_iter()
            .map(|(n, quoted)| if quoted { format!("\"{n}\"") } else { n })
            .collect()
    }

    #[test]
    fn an_expression_names_its_plain_identifiers_once() {
        assert_eq!(names("split_part(address, ', ', 1)"), ["address"]);
        assert_eq!(
            names("coalesce(\"Mobile\", landline, landline)"),
            ["\"Mobile\"", "landline"]
        );
        assert_eq!(
            names("CASE WHEN extract(year FROM born) > 1990 THEN a ELSE NULL END"),
            ["born", "a"]
        );
        assert_eq!(
            names("cast(zip AS varchar) || '-' || current_date"),
            ["zip"]
        );
    }

    #[test]
    fn subqueries_dotted_names_and_bad_sql_are_left_to_the_planner() {
        assert!(names("(SELECT max(x) FROM other)").is_empty());
        assert!(names("a IN (SELECT b FROM t)").is_empty());
        assert!(names("t.street").is_empty());
        assert!(names("split_part(address,").is_empty());
    }
}
