//! What each table of a run is: its description, its key and the tables its columns refer
//! to. BI tools read this through `pg_catalog` (`pg_description`, `pg_constraint`,
//! `pg_index`) to show what a table means and to suggest joins; keys are declared only where
//! the stage that writes the table guarantees them.
//!
//! Sources come from the project's config (their `primary_key` and `description`); measures
//! describe their own columns of `customer_measures` and `customer_profiles`.

/// Append-only tables in `state/`, registered under these names when a run is opened.
pub const LOG_TABLES: &[&str] = &[
    "export_log",
    "audit_log",
    "consent_statements",
    "suppression_list",
    "rectifications",
    "journey_state",
    "outbox",
    "schedule_log",
    "source_profiles",
    "data_quality",
    "attribution_history",
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
    ("unified_customers", "One row per customer: the merged profile (each field chosen by its merge policy), how many sources and records make the customer, and when they were first and last seen.", &["customer_id"], &[]),
    ("unified_customers_provenance", "Per customer and merged field, the source and record id the value came from (`rectification` when corrected by a privacy request).", &["customer_id"], &["customer_id"]),
    ("customer_links", "Lineage: which source records make each customer, how they matched, and whether a dedup policy let the record feed the profile.", &["source", "record_id"], &["customer_id"]),
    ("customer_measures", "One row per customer, one column per configured measure.", &["customer_id"], &["customer_id"]),
    ("customer_profiles", "View: unified_customers with the run's measures, one row per customer.", &[], &[]),
    ("segment_members", "Who is in each segment in this run.", &["segment", "customer_id"], &["customer_id"]),
    ("segment_history", "Segment entries and exits over all runs.", &[], &[]),
    ("segment_sizes", "Segment sizes, entries and exits per run, with each segment's definition.", &["run_id", "segment"], &[]),
    ("business_measures", "Business-level measures of this run, per grouping value.", &[], &[]),
    ("measure_history", "Business measures over all runs.", &[], &[]),
    ("unify_records", "The staged, normalized records fed to matching: one per source record, uid = source:record_id.", &["uid"], &[]),
    ("match_pairs", "Record pairs judged to be the same person: the rule or probabilistic score that matched them.", &["left_uid", "right_uid"], &[]),
    ("match_weights", "The learned match model: m and u probabilities and weights per comparison level, blocking rules and vetoes.", &[], &[]),
    ("match_score_histogram", "How many candidate pairs fell in each match-weight bin, and the threshold.", &["weight_bin"], &[]),
    ("match_term_frequencies", "How common each value is per field, for term-frequency adjustments.", &["field", "value"], &[]),
    ("blocking_plan", "Every candidate blocking key, its estimated pairs and recall, and why it was chosen or left out.", &["rule"], &[]),
    ("id_changes", "Customers that merged or split since the previous run, with the previous id.", &[], &[]),
    ("identity_graph", "Anonymous ids (cookies, devices) and the customer each resolves to, NULL while unknown.", &[], &[]),
    ("unify_stats", "Unification metrics of this run: records, pairs, customers, cluster sizes.", &["metric"], &[]),
    ("activities", "Every activity (orders, visits, events) with its resolved customer.", &[], &[]),
    ("attribution_paths", "Per [attribution.<name>]: every conversion's path of touchpoint channels in its lookback window, and every person's touchpoints after their last conversion (not converted).", &[], &["customer_id"]),
    ("attribution_results", "Per [attribution.<name>], model and channel (and campaign): conversions and value credited, and the share of all conversions. Models: first_touch, last_touch, last_non_direct, linear, time_decay, position_based, markov (removal effects).", &[], &[]),
    ("attribution_history", "attribution_results of every run, with its run_id: trends of each channel's credit.", &[], &[]),
    ("activity_stats", "Per activity source: how many activities resolved to a customer.", &[], &[]),
    ("predictions_clv", "Customer lifetime value from the BG/NBD and Gamma-Gamma models, per customer.", &["customer_id"], &["customer_id"]),
    ("predictions_churn", "Churn probability and risk per customer, with the features that drove it.", &["customer_id"], &["customer_id"]),
    ("recommendations", "Product recommendations per customer, best first.", &["customer_id", "rank"], &["customer_id"]),
    ("prediction_grades", "Each model graded against a baseline.", &["model", "metric"], &[]),
    ("customer_consent", "View: the latest consent statement per customer, purpose and channel.", &[], &[]),
    ("rejects", "Rows and values that could not be loaded, with file, row, column and reason.", &[], &[]),
    ("source_stats", "Per source: rows read, loaded, rejected and suppressed, the time it took, the encoding text files were read as, and columns new since the previous run or missing (loaded as NULL).", &["source"], &[]),
    ("runs", "Every run in the workspace: status, times, rows and error.", &["run_id"], &[]),
    ("source_profiles", "Every run's profile of every source column: rows, NULLs, distinct values, min/max, lengths, most common values, parse rates of mapped fields.", &[], &[]),
    ("data_quality", "Every run's [[expectations]] results: observed, expected, passed, failing rows; failed runs included.", &["run_id", "expectation"], &[]),
];

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
