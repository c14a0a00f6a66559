//! Writing SQL text: quoted identifiers and string literals. Every stage that builds SQL
//! quotes through here, so a name with a quote or a space in it is one name everywhere.

/// A SQL identifier, always quoted.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A SQL identifier quoted only when PostgreSQL would need it (`quote_ident`): lower-case
/// letters, digits, `_` and `$`, not starting with a digit, stay bare.
pub fn ident_if_needed(name: &str) -> String {
    let bare = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
    if bare {
        name.to_string()
    } else {
        ident(name)
    }
}

/// `schema.table` or `table`, each part quoted.
pub fn table_name(name: &str) -> String {
    name.split('.').map(ident).collect::<Vec<_>>().join(".")
}

/// A SQL string literal.
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Why a SQL expression written in the config (a mapped value, a computed column) cannot be
/// used: it must parse as exactly one expression. Checked at config load; the columns it names
/// are checked when a run plans it.
pub fn check_expression(
    sql: &str,
) -> std::result::Result<(), datafusion::sql::sqlparser::parser::ParserError> {
    use datafusion::sql::sqlparser::{dialect::GenericDialect, parser::Parser};
    Parser::new(&GenericDialect {})
        .try_with_sql(sql)
        .and_then(|mut p| {
            let e = p.parse_expr()?;
            match p.peek_token().token {
                datafusion::sql::sqlparser::tokenizer::Token::EOF => Ok(e),
                t => Err(
                    datafusion::sql::sqlparser::parser::ParserError::ParserError(format!(
                        "unexpected `{t}` after the expression"
                    )),
                ),
            }
        })
        .map(|_| ())
}

/// A value for a `{name}` placeholder of a SQL template (the files under `sql/`).
#[derive(Debug, Clone, Copy)]
pub enum Param<'a> {
    /// A string literal, quoted here (`'O''Brien'`).
    Literal(&'a str),
    /// An identifier, always quoted here.
    Ident(&'a str),
    /// SQL text the caller built through this module (an IN list, a generated clause),
    /// inserted as it is.
    Sql(&'a str),
}

/// `template` with each `{name}` replaced by its parameter, in one pass: a value that itself
/// holds `{name}` (a customer id, a segment name) is never substituted again. Panics on a
/// placeholder without a parameter or a parameter without a placeholder: both are a template
/// and its caller disagreeing, which every template's test catches.
pub fn fill(template: &str, params: &[(&str, Param<'_>)]) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut used = vec![false; params.len()];
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let name_end = rest[start + 1..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map(|i| start + 1 + i);
        let Some(end) = name_end.filter(|&e| e > start + 1 && rest[e..].starts_with('}')) else {
            out.push_str(&rest[..=start]);
            rest = &rest[start + 1..];
            continue;
        };
        let name = &rest[start + 1..end];
        let Some(i) = params.iter().position(|(n, _)| *n == name) else {
            panic!("SQL template placeholder {{{name}}} has no parameter");
        };
        used[i] = true;
        out.push_str(&rest[..start]);
        match params[i].1 {
            Param::Literal(v) => out.push_str(&literal(v)),
            Param::Ident(v) => out.push_str(&ident(v)),
            Param::Sql(v) => out.push_str(v),
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    if let Some(i) = used.iter().position(|u| !u) {
        panic!("SQL template has no placeholder {{{}}}", params[i].0);
    }
    out
}

/// `'a', 'b'` for an IN list.
pub fn in_list(values: &[String]) -> String {
    if values.is_empty() {
        return "NULL".into();
    }
    values
        .iter()
        .map(|v| literal(v))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(ident_if_needed("customer_id"), "customer_id");
        assert_eq!(ident_if_needed("Customer"), "\"Customer\"");
        assert_eq!(ident_if_needed("1x"), "\"1x\"");
        assert_eq!(table_name("loyalty.members"), "\"loyalty\".\"members\"");
        assert_eq!(literal("O'Brien"), "'O''Brien'");
    }

    #[test]
    fn fill_quotes_each_parameter_once() {
        let sql = fill(
            "SELECT {col} FROM t WHERE a = {a} AND b IN ({list}) -- {not a placeholder}",
            &[
                ("col", Param::Ident("we\"ird")),
                ("a", Param::Literal("{list}'s")),
                ("list", Param::Sql("1, 2")),
            ],
        );
        assert_eq!(
            sql,
            "SELECT \"we\"\"ird\" FROM t WHERE a = '{list}''s' AND b IN (1, 2) -- {not a placeholder}"
        );
    }

    #[test]
    #[should_panic(expected = "placeholder {b} has no parameter")]
    fn fill_refuses_a_missing_parameter() {
        fill("{a} {b}", &[("a", Param::Sql("1"))]);
    }
}
