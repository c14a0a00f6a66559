//! What each table of a run is: its description, its key and the tables its columns refer
//! to. BI tools read this through `pg_catalog` (`pg_description`, `pg_constraint`,
//! `pg_index`) to show what a table means and to suggest joins; keys are declared only where
//! the stage that writes the table guarantees them.
//!
//! Sources come from the project's config (their `primary_key` and `description`); measures
//! describe their own columns of `customer_measures` and `customer_profiles`.

/// Panorama's own table names: code names a table through these constants, so a rename is one
/// edit and a typo does not compile.
pub mod names {
    pub const UNIFIED_CUSTOMERS: &str = "unified_customers";
    pub const UNIFIED_CUSTOMERS_PROVENANCE: &str = "unified_customers_provenance";
    pub const CUSTOMER_LINKS: &str = "customer_links";
    pub const CUSTOMER_MEASURES: &str = "customer_measures";
    pub const CUSTOMER_PROFILES: &str = "customer_profiles";
    pub const SEGMENT_MEMBERS: &str = "segment_members";
    pub const SEGMENT_HISTORY: &str = "segment_history";
    pub const SEGMENT_SIZES: &str = "segment_sizes";
    pub const BUSINESS_MEASURES: &str = "business_measures";
    pub const MEASURE_HISTORY: &str = "measure_history";
    pub const UNIFY_RECORDS: &str = "unify_records";
    pub const MATCH_PAIRS: &str = "match_pairs";
    pub const VETOED_PAIRS: &str = "vetoed_pairs";
    pub const MATCH_WEIGHTS: &str = "match_weights";
    pub const MATCH_SCORE_HISTOGRAM: &str = "match_score_histogram";
    pub const MATCH_TERM_FREQUENCIES: &str = "match_term_frequencies";
    pub const BLOCKING_PLAN: &str = "blocking_plan";
    pub const ID_CHANGES: &str = "id_changes";
    pub const ACCOUNT_LINKS: &str = "account_links";
    pub const UNIFIED_ACCOUNTS: &str = "unified_accounts";
    pub const IDENTITY_GRAPH: &str = "identity_graph";
    pub const UNIFY_STATS: &str = "unify_stats";
    pub const ACTIVITIES: &str = "activities";
    pub const ATTRIBUTION_PATHS: &str = "attribution_paths";
    pub const ATTRIBUTION_RESULTS: &str = "attribution_results";
    pub const ATTRIBUTION_HISTORY: &str = "attribution_history";
    pub const ACTIVITY_STATS: &str = "activity_stats";
    pub const PREDICTIONS_CLV: &str = "predictions_clv";
    pub const PREDICTIONS_CHURN: &str = "predictions_churn";
    pub const RECOMMENDATIONS: &str = "recommendations";
    pub const PREDICTION_GRADES: &str = "prediction_grades";
    pub const CUSTOMER_CONSENT: &str = "customer_consent";
    pub const REJECTS: &str = "rejects";
    pub const SOURCE_STATS: &str = "source_stats";
    pub const RUNS: &str = "runs";
    pub const SOURCE_PROFILES: &str = "source_profiles";
    pub const DATA_QUALITY: &str = "data_quality";
    pub const EXPORT_LOG: &str = "export_log";
    pub const AUDIT_LOG: &str = "audit_log";
    pub const CONSENT_STATEMENTS: &str = "consent_statements";
    pub const SUPPRESSION_LIST: &str = "suppression_list";
    pub const RECTIFICATIONS: &str = "rectifications";
    pub const JOURNEY_STATE: &str = "journey_state";
    pub const OUTBOX: &str = "outbox";
    pub const SCHEDULE_LOG: &str = "schedule_log";
}

/// Append-only tables in `state/`, registered under these names when a run is opened.
pub const LOG_TABLES: &[&str] = &[
    names::EXPORT_LOG,
    names::AUDIT_LOG,
    names::CONSENT_STATEMENTS,
    names::SUPPRESSION_LIST,
    names::RECTIFICATIONS,
    names::JOURNEY_STATE,
    names::OUTBOX,
    names::SCHEDULE_LOG,
    names::SOURCE_PROFILES,
    names::DATA_QUALITY,
    names::ATTRIBUTION_HISTORY,
];

/// The state table holding records committed to `source` through real-time match.
pub fn committed_table(source: &str) -> String {
    format!("committed_{source}")
}

/// One table's documentation and constraints.
#[derive(Debug, Clone, PartialEq)]
pub struct TableDoc {
    pub name: String,
    pub description: String,
    /// Columns that identify a row (empty: no key is guaranteed).
    pub key: Vec<String>,
    /// `(column, table, column)`: the column's values are keys of that table.
    pub references: Vec<(String, String, String)>,
    /// `(column, description)`.
    pub columns: Vec<(String, String)>,
}

/// Panorama's own tables: name, description, key columns, columns referring to a customer.
const OUTPUTS: &[(&str, &str, &[&str], &[&str])] = &[
    (names::UNIFIED_CUSTOMERS, "One row per customer: the merged profile (each field chosen by its merge policy), how many sources and records make the customer, and when they were first and last seen.", &["customer_id"], &[]),
    (names::UNIFIED_CUSTOMERS_PROVENANCE, "Per customer and merged field, the source and record id the value came from (`rectification` when corrected by a privacy request).", &["customer_id"], &["customer_id"]),
    (names::CUSTOMER_LINKS, "Lineage: which source records make each customer, how they matched, and whether a dedup policy let the record feed the profile.", &["source", "record_id"], &["customer_id"]),
    (names::CUSTOMER_MEASURES, "One row per customer, one column per configured measure.", &["customer_id"], &["customer_id"]),
    (names::CUSTOMER_PROFILES, "View: unified_customers with the run's measures, one row per customer.", &[], &[]),
    (names::SEGMENT_MEMBERS, "Who is in each segment in this run.", &["segment", "customer_id"], &["customer_id"]),
    (names::SEGMENT_HISTORY, "Segment entries and exits over all runs.", &[], &[]),
    (names::SEGMENT_SIZES, "Segment sizes, entries and exits per run, with each segment's definition.", &["run_id", "segment"], &[]),
    (names::BUSINESS_MEASURES, "Business-level measures of this run, per grouping value.", &[], &[]),
    (names::MEASURE_HISTORY, "Business measures over all runs.", &[], &[]),
    (names::UNIFY_RECORDS, "The staged, normalized records fed to matching: one per source record, uid = source:record_id.", &["uid"], &[]),
    (names::MATCH_PAIRS, "Record pairs judged to be the same person: the rule or probabilistic score that matched them.", &["left_uid", "right_uid"], &[]),
    (names::VETOED_PAIRS, "Record pairs a veto rules apart that matching had put in one customer of 3 or more records, before the customer was split (an incremental run reuses them for the customers it does not touch).", &["left_uid", "right_uid"], &[]),
    (names::MATCH_WEIGHTS, "The learned match model: m and u probabilities and weights per comparison level, blocking rules with their priors (per key size), and vetoes.", &[], &[]),
    (names::MATCH_SCORE_HISTOGRAM, "How many candidate pairs fell in each match-weight bin, and the threshold.", &["weight_bin"], &[]),
    (names::MATCH_TERM_FREQUENCIES, "How common each value is per field, for term-frequency adjustments.", &["field", "value"], &[]),
    (names::BLOCKING_PLAN, "Every candidate blocking key, its estimated pairs and recall, and why it was chosen or left out.", &["rule"], &[]),
    (names::ID_CHANGES, "Customers that merged or split since the previous run, with the previous id.", &[], &[]),
    (names::ACCOUNT_LINKS, "B2B accounts ([unify.accounts]): which account each account or contact record belongs to, and the contact's customer.", &["uid"], &["customer_id"]),
    (names::UNIFIED_ACCOUNTS, "One row per B2B account: name, domain and place from account sources first, and how many customers and records it links.", &["account_id"], &[]),
    (names::IDENTITY_GRAPH, "Anonymous ids (cookies, devices) and the customer each resolves to, NULL while unknown.", &[], &[]),
    (names::UNIFY_STATS, "Unification metrics of this run: records, pairs, customers, cluster sizes.", &["metric"], &[]),
    (names::ACTIVITIES, "Every activity (orders, visits, events) with its resolved customer.", &[], &[]),
    (names::ATTRIBUTION_PATHS, "Per [attribution.<name>]: every conversion's path of touchpoint channels in its lookback window, and every person's touchpoints after their last conversion (not converted).", &[], &["customer_id"]),
    (names::ATTRIBUTION_RESULTS, "Per [attribution.<name>], model and channel (and campaign): conversions and value credited, and the share of all conversions. Models: first_touch, last_touch, last_non_direct, linear, time_decay, position_based, markov (removal effects).", &[], &[]),
    (names::ATTRIBUTION_HISTORY, "attribution_results of every run, with its run_id: trends of each channel's credit.", &[], &[]),
    (names::ACTIVITY_STATS, "Per activity source: how many activities resolved to a customer.", &[], &[]),
    (names::PREDICTIONS_CLV, "Customer lifetime value from the BG/NBD and Gamma-Gamma models, per customer.", &["customer_id"], &["customer_id"]),
    (names::PREDICTIONS_CHURN, "Churn probability and risk per customer, with the features that drove it.", &["customer_id"], &["customer_id"]),
    (names::RECOMMENDATIONS, "Product recommendations per customer, best first.", &["customer_id", "rank"], &["customer_id"]),
    (names::PREDICTION_GRADES, "Each model graded against a baseline.", &["model", "metric"], &[]),
    (names::CUSTOMER_CONSENT, "View: the latest consent statement per customer, purpose and channel.", &[], &[]),
    (names::REJECTS, "Rows and values that could not be loaded, with file, row, column and reason.", &[], &[]),
    (names::SOURCE_STATS, "Per source: rows read, loaded, rejected and suppressed, the time it took, the encoding text files were read as, and columns new since the previous run or missing (loaded as NULL).", &["source"], &[]),
    (names::RUNS, "Every run in the workspace: status, times, rows and error.", &["run_id"], &[]),
    (names::SOURCE_PROFILES, "Every run's profile of every source column: rows, NULLs, distinct values, min/max, lengths, most common values, parse rates of mapped fields.", &[], &[]),
    (names::DATA_QUALITY, "Every run's [[expectations]] results: observed, expected, passed, failing rows; failed runs included.", &["run_id", "expectation"], &[]),
];

/// Whether `name` is one of Panorama's own tables (an output of a run, or a table kept
/// across runs).
pub fn is_own_table(name: &str) -> bool {
    OUTPUTS.iter().any(|(n, ..)| *n == name) || LOG_TABLES.contains(&name)
}

/// Columns that mean the same in every table.
const COMMON_COLUMNS: &[(&str, &str)] = &[
    (
        "customer_id",
        "The customer's id: stays the same across runs while their records stay together.",
    ),
    ("source", "The configured source a row comes from."),
    ("record_id", "The record's primary key in its source."),
    ("uid", "source:record_id, unique over all sources."),
    ("run_id", "The run that wrote the row."),
    ("segment", "The segment's name, as configured."),
    (
        "source_count",
        "How many sources hold records of this customer.",
    ),
    (
        "record_count",
        "How many source records make this customer.",
    ),
    (
        "first_seen",
        "The earliest time any of the customer's records was seen.",
    ),
    (
        "last_seen",
        "The latest time any of the customer's records was seen.",
    ),
];

/// Columns every customer-level table may have (`customer_id`, `record_count`, `first_seen`, …).
pub fn common_column_names() -> impl Iterator<Item = &'static str> {
    COMMON_COLUMNS.iter().map(|(name, _)| *name)
}

/// Documentation of every table named in `tables` (the run's tables): Panorama's outputs,
/// the sources `source` describes (description and key columns), and `measure_columns` on
/// the customer-level tables. `ProjectConfig::table_docs` fills these from the config.
pub fn describe(
    tables: &[String],
    source: impl Fn(&str) -> Option<(String, Vec<String>)>,
    measure_columns: &[(String, String)],
) -> Vec<TableDoc> {
    let mut docs = Vec::new();
    for table in tables {
        let mut doc =
            if let Some((_, description, key, refs)) = OUTPUTS.iter().find(|(n, ..)| n == table) {
                TableDoc {
                    name: table.clone(),
                    description: description.to_string(),
                    key: key.iter().map(|s| s.to_string()).collect(),
                    references: refs
                        .iter()
                        .map(|c| {
                            (
                                c.to_string(),
                                "unified_customers".into(),
                                "customer_id".into(),
                            )
                        })
                        .collect(),
                    columns: vec![],
                }
            } else if let Some((description, key)) = source(table) {
                TableDoc {
                    name: table.clone(),
                    description,
                    key,
                    references: vec![],
                    columns: vec![],
                }
            } else {
                continue;
            };
        for (c, d) in COMMON_COLUMNS {
            doc.columns.push((c.to_string(), d.to_string()));
        }
        if table == "customer_measures" || table == "customer_profiles" {
            doc.columns.extend(measure_columns.iter().cloned());
        }
        docs.push(doc);
    }
    docs
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::ast::{Query, TableFactor, Visit, Visitor};
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    use std::collections::BTreeSet;
    use std::ops::ControlFlow;
    use std::path::{Path, PathBuf};

    /// Tables unification makes for itself while it runs (scratch, not in the catalog) that
    /// files under `sql/` read (`account_records`: the staged records of account unification),
    /// the segment stage's views of this run's catalogue and changes and of the previous run's
    /// members, the recommendations' holdout split (`reco_*`), and `truth`, the ground truth `panorama eval` registers. Named
    /// one by one: a prefix would let a misspelled catalog table through.
    const INTERNAL_TABLES: &[&str] = &[
        "unify_candidates",
        "unify_candidates_by_rules",
        "unify_overrides",
        "account_records",
        "panorama_segment_catalog",
        "panorama_segment_changes",
        "previous_segment_members",
        "reco_train",
        "reco_heldout",
        "reco_eval_customers",
        "truth",
    ];
    /// What a `{placeholder}` becomes before parsing.
    const PLACEHOLDER: &str = "placeholder_";

    /// The tables a statement reads in FROM and JOIN (not table functions such as
    /// `funnel(...)`, `paths(...)` or `explain_pair(...)`) and the CTEs it defines.
    #[derive(Default)]
    struct Relations {
        read: BTreeSet<String>,
        ctes: BTreeSet<String>,
    }

    impl Visitor for Relations {
        type Break = ();

        fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
            if let Some(with) = &query.with {
                for cte in &with.cte_tables {
                    self.ctes.insert(cte.alias.name.value.to_lowercase());
                }
            }
            ControlFlow::Continue(())
        }

        fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
            if let TableFactor::Table {
                name, args: None, ..
            } = factor
            {
                if let Some(last) = name.0.last() {
                    let last = last.to_string();
                    self.read.insert(last.trim_matches('"').to_lowercase());
                }
            }
            ControlFlow::Continue(())
        }
    }

    fn sql_files(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sql_files(&path, found);
            } else if path.extension().is_some_and(|e| e == "sql") {
                found.push(path);
            }
        }
    }

    /// A table of Panorama's that a query under `sql/` reads is in the catalog: renaming or
    /// misspelling a catalog table there fails here.
    #[test]
    fn sql_files_read_only_known_tables() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql");
        let mut files = Vec::new();
        sql_files(&root, &mut files);
        files.sort();
        assert!(!files.is_empty(), "no .sql files under {}", root.display());
        let placeholder = regex::Regex::new(r"\{([A-Za-z_][A-Za-z0-9_]*)\}").unwrap();
        let known =
            |t: &str| is_own_table(t) || INTERNAL_TABLES.contains(&t) || t.starts_with(PLACEHOLDER);
        let mut unknown = Vec::new();
        let mut parsed = 0;
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap();
            let text = placeholder.replace_all(&text, format!("{PLACEHOLDER}$1").as_str());
            let statements = match Parser::parse_sql(&GenericDialect {}, &text) {
                Ok(s) => s,
                Err(e) => {
                    println!("skipped {} (does not parse: {e})", file.display());
                    continue;
                }
            };
            parsed += 1;
            for statement in &statements {
                let mut relations = Relations::default();
                let _ = statement.visit(&mut relations);
                for t in &relations.read {
                    if !known(t) && !relations.ctes.contains(t) {
                        unknown.push(format!("{}: {t}", file.display()));
                    }
                }
            }
        }
        assert!(parsed > 0, "no .sql file under {} parsed", root.display());
        assert!(
            unknown.is_empty(),
            "tables read under sql/ that the catalog does not know:\n{}",
            unknown.join("\n")
        );
    }
}
