//! Comparison levels per field: how alike two staged values are, as a small integer (the
//! highest is the closest agreement, 0 is disagreement, NULL when either side is missing).
//! Each level has an m (how often true matches land there) and a u (how often random pairs
//! do); its weight is `log2(m / u)`.

/// One level of a comparison: a SQL condition over `{l}` and `{r}` (the two values).
#[derive(Debug, Clone)]
pub struct Level {
    pub label: &'static str,
    /// SQL boolean; `{l}` / `{r}` stand for the two sides' column.
    pub condition: &'static str,
}

/// A field's comparison: its levels from closest to farthest (disagreement, level 0, is
/// implicit).
#[derive(Debug, Clone)]
pub struct Comparison {
    pub field: &'static str,
    pub levels: Vec<Level>,
}

impl Comparison {
    /// Number of levels including disagreement (0).
    pub fn level_count(&self) -> usize {
        self.levels.len() + 1
    }

    /// The label of level `g` (0 = disagreement).
    pub fn label(&self, g: usize) -> &'static str {
        if g == 0 {
            "different"
        } else {
            self.levels[self.levels.len() - g].label
        }
    }

    /// The column holding this comparison's level.
    pub fn column(&self) -> String {
        format!("g_{}", self.field)
    }

    /// SQL of the level of two records aliased `l` and `r`.
    pub fn level_sql(&self, l: &str, r: &str) -> String {
        let lc = format!("{l}.{}", self.field);
        let rc = format!("{r}.{}", self.field);
        let mut sql = format!("CASE WHEN {lc} IS NULL OR {rc} IS NULL THEN CAST(NULL AS TINYINT)");
        for (i, level) in self.levels.iter().enumerate() {
            let g = self.levels.len() - i;
            let cond = level.condition.replace("{l}", &lc).replace("{r}", &rc);
            sql.push_str(&format!(" WHEN {cond} THEN CAST({g} AS TINYINT)"));
        }
        sql.push_str(" ELSE CAST(0 AS TINYINT) END");
        sql
    }
}

const EXACT: Level = Level {
    label: "exact",
    condition: "{l} = {r}",
};

const JW_92: Level = Level {
    label: "jaro_winkler >= 0.92",
    condition: "jaro_winkler({l}, {r}) >= 0.92",
};

const JW_80: Level = Level {
    label: "jaro_winkler >= 0.8",
    condition: "jaro_winkler({l}, {r}) >= 0.8",
};

/// The built-in comparison of a staged field, or None if the field has none.
pub fn comparison(field: &str) -> Option<Comparison> {
    let levels = match field {
        "first_name" => vec![
            EXACT,
            JW_92,
            JW_80,
            Level {
                label: "initial",
                condition: "((length({l}) = 1 OR length({r}) = 1) AND substr({l}, 1, 1) = substr({r}, 1, 1))",
            },
        ],
        "last_name" | "company" => vec![
            EXACT,
            JW_92,
            JW_80,
        ],
        "email" => vec![
            EXACT,
            Level {
                label: "same mailbox name",
                condition: "split_part({l}, '@', 1) = split_part({r}, '@', 1)",
            },
            Level {
                label: "levenshtein <= 2",
                condition: "levenshtein_distance({l}, {r}) <= 2",
            },
        ],
        "birth_date" => vec![
            EXACT,
            Level {
                label: "one digit differs",
                condition: "levenshtein_distance(CAST({l} AS VARCHAR), CAST({r} AS VARCHAR)) <= 1",
            },
            Level {
                label: "same year",
                condition: "date_part('year', {l}) = date_part('year', {r})",
            },
        ],
        "street" => vec![
            EXACT,
            Level {
                label: "levenshtein_sim >= 0.8",
                condition: "levenshtein_sim({l}, {r}) >= 0.8",
            },
        ],
        "phone_digits" | "postcode" | "city" | "gender" | "country" => vec![EXACT],
        _ => return None,
    };
    let field = super::super::config::FIELDS
        .iter()
        .find(|f| **f == field)
        .copied()?;
    Some(Comparison { field, levels })
}

/// Fields compared by default.
pub const DEFAULT_COMPARISONS: &[&str] = &[
    "first_name",
    "last_name",
    "email",
    "phone_digits",
    "birth_date",
    "postcode",
    "street",
    "city",
    "gender",
];

/// Fields with a built-in comparison.
pub fn comparable_fields() -> Vec<&'static str> {
    super::super::config::FIELDS
        .iter()
        .copied()
        .filter(|f| comparison(f).is_some())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_count_down_to_disagreement() {
        let c = comparison("first_name").unwrap();
        assert_eq!(c.level_count(), 5);
        assert_eq!(c.label(4), "exact");
        assert_eq!(c.label(1), "initial");
        assert_eq!(c.label(0), "different");
        let sql = c.level_sql("l", "r");
        assert!(sql.starts_with("CASE WHEN l.first_name IS NULL OR r.first_name IS NULL"));
        assert!(sql.contains("WHEN l.first_name = r.first_name THEN CAST(4 AS TINYINT)"));
        assert!(comparison("first_initial").is_none());
        assert!(comparable_fields().contains(&"company"));
    }
}
