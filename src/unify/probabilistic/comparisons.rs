//! Comparison levels per field: how alike two staged values are, as a small integer (the
//! highest is the closest agreement, 0 is disagreement, NULL when either side is missing).
//! Each level has an m (how often true matches land there) and a u (how often random pairs
//! do); its weight is `log2(m / u)`.

use super::super::fields::CustomFields;

/// One level of a comparison: a SQL condition over `{l}` and `{r}` (the two values).
#[derive(Debug, Clone)]
pub struct Level {
    pub label: String,
    /// SQL boolean; `{l}` / `{r}` stand for the two sides' column.
    pub condition: String,
}

/// A field's comparison: its levels from closest to farthest (disagreement, level 0, is
/// implicit).
#[derive(Debug, Clone)]
pub struct Comparison {
    pub field: String,
    pub levels: Vec<Level>,
    /// Where this field is not compared (its level is NULL, as when a side is missing)
    /// because another comparison already says what it would: a street or city where the
    /// postcodes are different.
    pub unless: Option<Unless>,
}

/// When a comparison is left out, and why (as `explain_pair` shows it).
#[derive(Debug, Clone)]
pub struct Unless {
    /// SQL boolean over the sides `{L}` and `{R}`.
    pub condition: String,
    pub reason: String,
}

impl Comparison {
    /// Number of levels including disagreement (0).
    pub fn level_count(&self) -> usize {
        self.levels.len() + 1
    }

    /// The label of level `g` (0 = disagreement).
    pub fn label(&self, g: usize) -> &str {
        if g == 0 {
            "different"
        } else {
            &self.levels[self.levels.len() - g].label
        }
    }

    /// The columns of `unify_records` its levels read: its field, and what a level reads of
    /// the whole records (`{L}.last_name`, `{R}.raw_first_name`).
    pub fn columns(&self) -> Vec<String> {
        let mut cols = vec![self.field.clone()];
        let conditions = self.levels.iter().map(|l| &l.condition);
        for condition in conditions.chain(self.unless.iter().map(|u| &u.condition)) {
            for side in ["{L}.", "{R}."] {
                for (at, _) in condition.match_indices(side) {
                    let rest = &condition[at + side.len()..];
                    let end = rest
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(rest.len());
                    cols.push(rest[..end].to_string());
                }
            }
        }
        cols.sort_unstable();
        cols.dedup();
        cols
    }

    /// The column holding this comparison's level.
    pub fn column(&self) -> String {
        format!("g_{}", self.field)
    }

    /// SQL of the level of two records aliased `l` and `r`.
    pub fn level_sql(&self, l: &str, r: &str) -> String {
        let lc = format!("{l}.{}", self.field);
        let rc = format!("{r}.{}", self.field);
        // `{l}`/`{r}`: this field of each side; `{L}`/`{R}`: the sides, for a level that
        // looks at another field too (a first name swapped with the surname).
        let bind = |condition: &str| {
            condition
                .replace("{l}", &lc)
                .replace("{r}", &rc)
                .replace("{L}", l)
                .replace("{R}", r)
        };
        let unless = match &self.unless {
            Some(u) => format!(" OR ({}) IS TRUE", bind(&u.condition)),
            None => String::new(),
        };
        let mut sql =
            format!("CASE WHEN {lc} IS NULL OR {rc} IS NULL{unless} THEN CAST(NULL AS TINYINT)");
        for (i, level) in self.levels.iter().enumerate() {
            let g = self.levels.len() - i;
            let cond = bind(&level.condition);
            sql.push_str(&format!(" WHEN {cond} THEN CAST({g} AS TINYINT)"));
        }
        sql.push_str(" ELSE CAST(0 AS TINYINT) END");
        sql
    }
}

/// The comparison of a staged field (built-in or `[unify.fields]`), or None if it has none.
pub fn comparison(field: &str, custom: &CustomFields) -> Option<Comparison> {
    super::super::fields::comparison(field, custom)
}

pub use crate::config::unify::fields::comparable_fields;
pub use crate::config::unify::probabilistic::DEFAULT_COMPARISONS;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_count_down_to_disagreement() {
        let none = CustomFields::new();
        let c = comparison("first_name", &none).unwrap();
        assert_eq!(c.level_count(), 8);
        assert_eq!(c.label(7), "exact");
        assert_eq!(c.label(6), "one edit");
        assert_eq!(c.label(3), "initial");
        assert_eq!(c.label(0), "different");
        let sql = c.level_sql("l", "r");
        assert!(sql.starts_with("CASE WHEN l.first_name IS NULL OR r.first_name IS NULL"));
        assert!(sql.contains("WHEN l.first_name = r.first_name THEN CAST(7 AS TINYINT)"));
        assert_eq!(c.columns(), ["first_name", "last_name", "raw_first_name"]);
        assert_eq!(comparison("email", &none).unwrap().columns(), ["email"]);
        assert!(comparison("first_initial", &none).is_none());
        assert!(comparable_fields(&none).contains(&"company".to_string()));
    }
}
