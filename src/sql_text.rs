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
pub fn check_expression(sql: &str) -> std::result::Result<(), String> {
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
        .map_err(|e| e.to_string())
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
}
