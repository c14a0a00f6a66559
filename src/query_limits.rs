//! Limits a query's text is checked against before anything parses or plans it, and the
//! memory budget queries run within.
//!
//! A flat chain such as `1+1+…+1` or `a OR b OR …` parses into a tree as deep as the chain is
//! long, and the planner, optimizer, physical planner, expression evaluation and finally the
//! tree's drop all recurse over it: a 4 KB query of 2,000 `+` overflowed a server thread's
//! stack and aborted the whole process. sqlparser's recursion limit only counts parentheses.
//! So the text is tokenized (a loop, no recursion) and the depth the tree would have is bounded
//! from the tokens: operators chained within one expression, set operations and joins chained
//! within one query, plus the parentheses around them.

use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

static MEMORY_LIMIT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// Set the memory budget of every context made afterwards (the CLI's `--memory-limit`).
pub fn set_memory_limit(bytes: usize) {
    let _ = MEMORY_LIMIT.set(bytes);
}

/// The query memory budget in bytes: `PANORAMA_MEMORY_LIMIT` (`8G`, `512M`, `1.5G`, bytes),
/// else 70% of the machine's memory (what DataFusion operators may hold; Panorama's own
/// buffers, e.g. the union-find, come on top).
pub fn memory_limit() -> Option<usize> {
    if let Some(bytes) = MEMORY_LIMIT.get() {
        return Some(*bytes);
    }
    if let Ok(v) = std::env::var("PANORAMA_MEMORY_LIMIT") {
        return parse_size(&v);
    }
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: usize = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb * 1024 / 10 * 7)
}

/// `8G`, `512M`, `64K`, `1.5G` or plain bytes.
pub fn parse_size(s: &str) -> Option<usize> {
    let s = s.trim().to_ascii_uppercase();
    let s = s.strip_suffix('B').unwrap_or(&s);
    let (num, unit) = match s.chars().last()? {
        'K' => (&s[..s.len() - 1], 1usize << 10),
        'M' => (&s[..s.len() - 1], 1 << 20),
        'G' => (&s[..s.len() - 1], 1 << 30),
        'T' => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    let n: f64 = num.trim().parse().ok()?;
    (n > 0.0).then_some((n * unit as f64) as usize)
}

/// The deepest expression or query tree accepted. Measured in a debug build on 2 MiB thread
/// stacks (tokio's default): 1,000 chained operators plan, run and drop; the CLI and server
/// also give their threads 16 MiB stacks, so the margin is wide. Real queries are far below:
/// the deepest in the test suite chains 12 operators.
pub const MAX_DEPTH: usize = 1_000;

/// Longest query text accepted (bytes).
pub const MAX_QUERY_BYTES: usize = 1 << 20;

/// Refuse a query whose tree would be deeper than [`MAX_DEPTH`] (or text longer than
/// [`MAX_QUERY_BYTES`]), with an error saying why and what to do instead.
pub fn check(sql: &str) -> crate::error::Result<()> {
    use crate::error::Error;
    if sql.len() > MAX_QUERY_BYTES {
        return Err(Error::ResourceLimit(format!(
            "query too long: {} bytes (the limit is {MAX_QUERY_BYTES}); load large value lists as a table and join it",
            sql.len()
        )));
    }
    let depth = estimated_depth(sql);
    if depth > MAX_DEPTH {
        return Err(Error::ResourceLimit(format!(
            "query too complex: an expression or query chains about {depth} operators, joins or \
             set operations (the limit is {MAX_DEPTH}); use IN (...) instead of long OR chains, \
             or sum()/string_agg() over rows instead of long + or || chains"
        )));
    }
    Ok(())
}

/// An upper bound of the depth of the statement's tree, from its tokens. Text that does not
/// tokenize gets 0: the parser reports its error.
pub fn estimated_depth(sql: &str) -> usize {
    let dialect = PostgreSqlDialect {};
    let Ok(tokens) = Tokenizer::new(&dialect, sql).tokenize() else {
        return 0;
    };
    // Per open parenthesis: operators chained in the current list item, and set operations and
    // joins chained in the current query (a new SELECT list item does not reset those).
    let mut levels: Vec<(usize, usize)> = vec![(0, 0)];
    let mut deepest = 0;
    for token in &tokens {
        let top = levels.last_mut().expect("one level stays");
        match token {
            Token::LParen => levels.push((0, 0)),
            Token::RParen => {
                if levels.len() > 1 {
                    levels.pop();
                }
            }
            Token::Comma | Token::SemiColon => top.0 = 0,
            Token::Word(w) => match w.keyword {
                Keyword::AND
                | Keyword::OR
                | Keyword::NOT
                | Keyword::IS
                | Keyword::LIKE
                | Keyword::ILIKE
                | Keyword::SIMILAR
                | Keyword::BETWEEN
                | Keyword::IN
                | Keyword::AT
                | Keyword::COLLATE => top.0 += 1,
                Keyword::UNION | Keyword::INTERSECT | Keyword::EXCEPT | Keyword::JOIN => top.1 += 1,
                // Items of flat lists: CASE branches, clauses.
                Keyword::SELECT
                | Keyword::FROM
                | Keyword::WHERE
                | Keyword::GROUP
                | Keyword::HAVING
                | Keyword::ORDER
                | Keyword::LIMIT
                | Keyword::ON
                | Keyword::CASE
                | Keyword::WHEN
                | Keyword::THEN
                | Keyword::ELSE
                | Keyword::END => top.0 = 0,
                _ => {}
            },
            Token::Whitespace(_)
            | Token::Number(..)
            | Token::Char(_)
            | Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::NationalStringLiteral(_)
            | Token::EscapedStringLiteral(_)
            | Token::HexStringLiteral(_)
            | Token::Period
            | Token::Colon
            | Token::DoubleColon
            | Token::Placeholder(_)
            | Token::LBracket
            | Token::RBracket
            | Token::LBrace
            | Token::RBrace
            | Token::EOF => {}
            // Every other token is an operator: +, -, *, /, ||, =, <, ->, …
            _ => top.0 += 1,
        }
        let depth: usize = levels.iter().map(|(ops, chain)| ops + chain + 1).sum();
        deepest = deepest.max(depth);
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(op: &str, n: usize) -> String {
        format!("SELECT {}", vec!["1"; n].join(op))
    }

    #[test]
    fn long_chains_are_refused_and_real_queries_pass() {
        for op in ["+", " OR ", " AND ", " || ", " * "] {
            assert!(check(&chain(op, 900)).is_ok(), "{op}");
            for n in [2_000, 10_000, 100_000] {
                let err = check(&chain(op, n)).unwrap_err().to_string();
                assert!(err.contains("query too complex"), "{err}");
            }
        }
        // Many short items, long IN lists and CASE branches are flat, not deep.
        let wide = format!(
            "SELECT {} FROM t WHERE x IN ({}) AND y = CASE {} END",
            (0..3000)
                .map(|i| format!("a{i} + b{i} AS c{i}"))
                .collect::<Vec<_>>()
                .join(", "),
            (0..10_000)
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            (0..2000)
                .map(|i| format!("WHEN z = {i} THEN {i}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        assert!(estimated_depth(&wide) < 20, "{}", estimated_depth(&wide));
        // Set operations and joins chain across SELECTs.
        let unions = vec!["SELECT 1"; 2000].join(" UNION ALL ");
        assert!(check(&unions).is_err());
        assert!(check(&"x".repeat(MAX_QUERY_BYTES + 1)).is_err());
    }
}
