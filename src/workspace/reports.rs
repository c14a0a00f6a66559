//! What each stage of a run reports, as the run's manifest keeps it (`manifest.json`). The
//! stages fill these; the workspace stores and reads them, so they live here, below the
//! stages.

use std::collections::BTreeMap;

/// What loading one source produced, for the run summary and manifest.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct SourceReport {
    pub name: String,
    pub format: String,
    /// Location with credentials removed.
    pub location: String,
    pub files: usize,
    pub rows_read: u64,
    pub rows_loaded: u64,
    pub rows_rejected: u64,
    /// Rows of erased people dropped at ingest (`panorama privacy erase`).
    #[serde(default)]
    pub rows_suppressed: u64,
    /// An incremental PostgreSQL read: only rows whose `updated_at_column` is after this
    /// (microseconds since the epoch); the previous run's other rows are kept.
    #[serde(default)]
    pub changed_since: Option<i64>,
    /// Computed columns (`[sources.X.columns]`) whose expression failed on some rows: those
    /// rows hold NULL there (they are loaded, not rejected).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub values_nulled: BTreeMap<String, NulledValues>,
    /// The source's table as loaded: its columns and their types. The next run compares its
    /// own with these (schema drift).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<SourceColumn>,
    /// Columns the previous run's table did not have.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub new_columns: Vec<String>,
    /// Columns the config uses that the data lacks, loaded as NULL
    /// (`on_missing_column = "null"`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_columns: Vec<String>,
    /// Text sources (CSV, JSON): the encodings the files were read as, distinct, each with how
    /// it was found (`windows-1252 (detected)`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub encodings: Vec<String>,
    pub seconds: f64,
}

/// A column of a loaded source.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SourceColumn {
    pub name: String,
    /// Arrow's name of the type (`Utf8`, `Int64`, `Timestamp(µs)`).
    #[serde(rename = "type")]
    pub data_type: String,
}

impl SourceColumn {
    /// The columns of a loaded table.
    pub fn list(schema: &arrow::datatypes::Schema) -> Vec<SourceColumn> {
        schema
            .fields()
            .iter()
            .map(|f| SourceColumn {
                name: f.name().clone(),
                data_type: f.data_type().to_string(),
            })
            .collect()
    }
}

/// How many values of one computed column are NULL because its expression failed, and where
/// the first one was.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NulledValues {
    pub count: u64,
    /// `file row N: error` of the first failure.
    pub first: String,
}

impl NulledValues {
    /// Add another load's counts (an incremental source's generations).
    pub fn merge_into(
        into: &mut BTreeMap<String, NulledValues>,
        from: BTreeMap<String, NulledValues>,
    ) {
        for (column, n) in from {
            let e = into.entry(column).or_insert_with(|| NulledValues {
                count: 0,
                first: n.first.clone(),
            });
            e.count += n.count;
        }
    }
}

/// Figures of one unify stage, also written as the `unify_stats` table.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct UnifyReport {
    pub records: u64,
    pub candidate_pairs: u64,
    pub matched_pairs: u64,
    pub customers: u64,
    pub largest_cluster: u64,
    pub singletons: u64,
    /// Customers with more records than `unify.large_cluster`.
    #[serde(default)]
    pub large_clusters: u64,
    pub id_changes: u64,
    pub skipped_blocks: u64,
    /// Anonymous ids seen in `[unify.identities]` sources, and how many are tied to a customer.
    #[serde(default)]
    pub anonymous_ids: u64,
    #[serde(default)]
    pub stitched_ids: u64,
    /// Rows of `activities`, and how many have no customer.
    #[serde(default)]
    pub activities: u64,
    #[serde(default)]
    pub unresolved_activities: u64,
    /// Conversions credited to channels by `[attribution.<name>]` (all attributions).
    #[serde(default)]
    pub attributed_conversions: u64,
    /// Accounts (companies) unified by `[unify.accounts]`.
    #[serde(default)]
    pub accounts: u64,
    /// Never-match decisions that other matches override (the records stay one customer).
    #[serde(default)]
    pub override_conflicts: u64,
    /// Whether only what changed since the previous run was staged and compared; then
    /// `candidate_pairs` and `pairs_per_rule` count the pairs compared in this run.
    #[serde(default)]
    pub incremental: bool,
    /// Customers split because a veto rules two of their records apart (probabilistic).
    #[serde(default)]
    pub vetoed_splits: u64,
    /// Links dropped doing so (their pairs stay in `match_pairs`).
    #[serde(default)]
    pub vetoed_links: u64,
    /// Customers whose record pairs were checked against the vetoes in this run (an
    /// incremental run checks only those holding a record it compared again).
    #[serde(default)]
    pub veto_checked_customers: u64,
    /// Records new, changed or deleted since the previous run (incremental runs).
    #[serde(default)]
    pub touched_records: u64,
    /// Unchanged records compared again because a touched record changed how many records
    /// hold one of their blocking keys (probabilistic incremental runs).
    #[serde(default)]
    pub resized_records: u64,
    /// Customers merged again (incremental runs; the others kept their profile row).
    #[serde(default)]
    pub remerged_customers: u64,
    /// What the unification depended on besides the records (see `incremental::unify_hash`).
    #[serde(default)]
    pub unify_hash: Option<String>,
    pub pairs_per_rule: Vec<(String, u64)>,
    /// Mapped values present in a source that did not convert to their field's type (a
    /// birth date "1931-04-72"): `(source, field, values)`. They are NULL for matching.
    #[serde(default)]
    pub unconverted: Vec<(String, String, u64)>,
    pub warnings: Vec<String>,
    pub seconds: f64,
}

/// What the analytics stage produced; kept in the run manifest.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct AnalyticsReport {
    pub as_of: String,
    pub measures: usize,
    pub business_measures: usize,
    /// Segments with their per-value segments counted one by one.
    pub segments: u64,
    pub segment_members: u64,
    pub seconds: f64,
}

/// What the predictions stage did, for the manifest and the run summary.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct PredictionsReport {
    pub clv_customers: u64,
    pub churn_customers: u64,
    pub recommendations: u64,
    /// Model → grade (A, B or C).
    pub grades: Vec<(String, String)>,
    pub seconds: f64,
}

/// One stage of a run: what it did.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StageOutcome {
    /// The stage's name (`activities`, `predictions`, ...).
    pub stage: String,
    pub status: StageStatus,
    /// Why an idle stage had nothing to do; empty when it ran.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    pub seconds: f64,
}

/// Whether a stage ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageStatus {
    Ran,
    /// Nothing to do in this project (no such section, no such table).
    Idle,
    /// Made from the same inputs as in the previous run: that run's tables linked.
    Reused,
}
