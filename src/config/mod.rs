//! The project configuration, `panorama.toml`.
//!
//! Parsing is strict: unknown keys, wrong types and references to things that do not exist are
//! errors that name the key and its line, because a config kept in git is read by people who did
//! not write it. Every key is documented in `docs/config.md`.

pub mod activities;
pub mod analytics;
pub mod attribution;
mod column_uses;
pub mod consent;
pub mod expectations;
pub mod exports;
pub mod funnels;
pub mod journeys;
pub mod messages;
pub mod predictions;
pub mod schedule;
pub mod serve;
mod types;
pub mod unify;

pub use column_uses::ColumnUse;

pub use types::ColumnType;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::error::{Error, Result};

crate::error::message_error!(
    /// What is wrong with one config value or section, from the function that checks it; the
    /// caller says where: the file and line ([`ProjectConfig::error_at`]) or the key.
    Problem
);

impl From<Problem> for String {
    fn from(p: Problem) -> Self {
        p.0
    }
}

/// File name of a project's configuration inside the project directory.
pub const CONFIG_FILE: &str = "panorama.toml";

/// Names of tables Panorama makes that the catalog does not describe (internal, or kept for
/// one command): with every table of the catalog, a source may not take them.
pub const RESERVED_TABLE_NAMES: &[&str] = &["truth", "export_watermarks"];

/// Whether a source may not be called `name`: Panorama writes a table of that name itself.
pub fn is_reserved_table(name: &str) -> bool {
    RESERVED_TABLE_NAMES.contains(&name) || crate::table_catalog::is_own_table(name)
}

/// A parsed and validated `panorama.toml`.
#[derive(Debug, Clone)]
pub struct ProjectConfig {
    /// Directory holding `panorama.toml`; relative paths resolve against it.
    pub root: PathBuf,
    /// Path of the config file itself, for error messages.
    pub path: PathBuf,
    /// Raw text, kept to turn byte spans into line numbers and to hash the config into runs.
    pub text: String,
    pub project: ProjectSection,
    pub workspace: WorkspaceSection,
    pub sources: BTreeMap<String, SourceConfig>,
    /// `[unify]`: map, match and merge; absent means sources are loaded only.
    pub unify: Option<unify::UnifySection>,
    /// `[activities.<name>]`: what customers did, resolved to customers after unification.
    pub activities: BTreeMap<String, Spanned<activities::ActivitySource>>,
    /// `[measures.<name>]`: customer-level measures, as written.
    pub measures: BTreeMap<String, Spanned<analytics::MeasureDef>>,
    /// `[business_measures.<name>]`, as written.
    pub business_measures: BTreeMap<String, Spanned<analytics::MeasureDef>>,
    /// `[segments.<name>]`, as written.
    pub segments: BTreeMap<String, Spanned<analytics::SegmentDef>>,
    /// Measures, business measures and segments with templates expanded, in dependency order.
    pub analytics: analytics::Analytics,
    /// `[exports.<name>]`: what to send where.
    pub exports: BTreeMap<String, Spanned<exports::ExportDef>>,
    /// `[consent]`: where consent statements come from, and the default without one.
    pub consent: Option<consent::ConsentSection>,
    /// `[messages.<name>]`: templated messages.
    pub messages: BTreeMap<String, Spanned<messages::MessageDef>>,
    /// `[journeys.<name>]`: a segment triggers a message.
    pub journeys: BTreeMap<String, Spanned<journeys::JourneyDef>>,
    /// `[schedules.<name>]`: cron expressions for `panorama schedule`.
    pub schedules: BTreeMap<String, Spanned<schedule::ScheduleDef>>,
    /// `[predictions.*]`: CLV, churn, recommendations.
    pub predictions: Option<predictions::PredictionsSection>,
    /// `[serve]`: listeners and per-query limits of `panorama serve`.
    pub serve: Option<serve::ServeSection>,
    /// `[[expectations]]`: data quality checks on the loaded sources.
    pub expectations: Vec<Spanned<expectations::ExpectationDef>>,
    /// `[funnels.<name>]`: funnels the console and the report draw.
    pub funnels: std::collections::BTreeMap<String, Spanned<funnels::FunnelDef>>,
    /// `[attribution.<name>]`: which channels earn the conversions.
    pub attribution: std::collections::BTreeMap<String, Spanned<attribution::AttributionDef>>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ProjectSection {
    /// Human-readable project name, shown in run summaries.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Reference time of measures and segments ("days since the last order"), e.g.
    /// "2026-11-01" or "2026-11-01T12:00:00". Default: when the run starts.
    #[serde(default)]
    pub as_of: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceSection {
    /// Where runs are written, relative to the project directory.
    #[serde(default = "default_workspace_dir")]
    pub dir: PathBuf,
    /// How many completed runs to keep; older ones are deleted after a successful run.
    #[serde(default = "default_keep_runs")]
    pub keep_runs: Spanned<usize>,
    /// An Apache Ballista scheduler (`df://host:port`) to run unification, activities,
    /// predictions, measures and segments on. Its executors are `panorama-cluster executor`s
    /// that read the project's files at the same paths. Needs `--features ballista`.
    #[serde(default)]
    pub ballista: Option<Spanned<String>>,
}

impl Default for WorkspaceSection {
    fn default() -> Self {
        WorkspaceSection {
            dir: default_workspace_dir(),
            keep_runs: Spanned::new(0..0, default_keep_runs_value()),
            ballista: None,
        }
    }
}

fn default_workspace_dir() -> PathBuf {
    PathBuf::from(".panorama")
}
fn default_keep_runs_value() -> usize {
    5
}
fn default_keep_runs() -> Spanned<usize> {
    Spanned::new(0..0, default_keep_runs_value())
}

/// Where a source's data lives and how it is shaped.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// File format or system. When absent, taken from the location's file extension.
    #[serde(default)]
    pub format: Option<Spanned<SourceFormat>>,
    /// Path, glob, directory, object-store URL or `postgres://` URL. `${VAR}` reads the environment.
    pub location: Spanned<String>,
    /// For `postgres`: the table, optionally schema-qualified (`loyalty.members`).
    #[serde(default)]
    pub table: Option<Spanned<String>>,
    /// Column or columns that identify a record within the source.
    pub primary_key: Spanned<PrimaryKey>,
    /// `full` (default): every run re-reads the source completely. `incremental`: a folder of
    /// `full/` plus `incremental/YYYY/MM/DD/HH/{upserts,deletes}` (CSV, Parquet, JSON), or a
    /// PostgreSQL table read by `updated_at_column`.
    #[serde(default = "default_refresh")]
    pub refresh: Spanned<Refresh>,
    /// For `postgres` with `refresh = "incremental"`: a timestamp column every insert and
    /// update sets. A run reads only the rows changed since the previous run's latest value
    /// and keeps the previous run's other rows (deleted rows stay until `panorama run --full`).
    #[serde(default)]
    pub updated_at_column: Option<Spanned<String>>,
    /// Columns to keep, by their names in the source. Default: all.
    #[serde(default)]
    pub select: Option<Spanned<Vec<Spanned<String>>>>,
    /// Renames, `source name = "new name"`.
    #[serde(default)]
    pub rename: BTreeMap<String, Spanned<String>>,
    /// Type overrides by output column name; other columns are inferred.
    #[serde(default)]
    pub types: BTreeMap<String, Spanned<ColumnType>>,
    /// Computed columns, `name = "SQL expression"` over the source's columns (after `select`,
    /// `rename` and `types`), added to every row at load: split a one-string address, build a
    /// date from parts, join a composite key. Panorama's functions (`split_full_name`,
    /// `parse_date`, ...) can be used. An expression that fails on a row gives NULL in that row,
    /// counted in the run summary (`values_nulled`); it never rejects the row. `types.<name>`
    /// converts the result; `primary_key` may name a computed column.
    #[serde(default)]
    pub columns: BTreeMap<String, Spanned<String>>,
    /// Fail the run when more than this fraction of rows is rejected (0.0 to 1.0).
    #[serde(default = "default_max_reject_ratio")]
    pub max_reject_ratio: Spanned<f64>,
    /// CSV reading options.
    #[serde(default)]
    pub csv: CsvOptions,
    /// Character encoding of a CSV or JSON source: `utf-8` (default), a WHATWG label
    /// (`windows-1252`, `iso-8859-1`, `utf-16`, `utf-16be`, `shift_jis`, `gbk`, ...) or `auto`
    /// (a byte-order mark, else valid UTF-8, else detected; the choice is in `source_stats`).
    #[serde(default)]
    pub encoding: Option<Spanned<String>>,
    /// For `excel`: the sheet to read, by name. Default: the first sheet.
    #[serde(default)]
    pub sheet: Option<Spanned<String>>,
    /// For `excel`: the 1-based row holding the column names; rows above it (titles, notes)
    /// are skipped. Default: the first non-empty row.
    #[serde(default)]
    pub header_row: Option<Spanned<u32>>,
    /// When a column the config uses is missing from the source: `fail` (default) stops the
    /// run naming the column and every config key that uses it; `null` loads the source with
    /// the column all NULL, counted and warned about.
    #[serde(default)]
    pub on_missing_column: Option<Spanned<OnMissingColumn>>,
    #[serde(default)]
    pub description: Option<String>,
}

impl SourceConfig {
    /// The `encoding` setting; UTF-8 when absent.
    pub fn declared_encoding(&self) -> crate::text_encoding::Declared {
        crate::text_encoding::Declared::of(self.encoding.as_ref().map(|e| e.get_ref().as_str()))
    }
}

/// `on_missing_column`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnMissingColumn {
    #[default]
    Fail,
    Null,
}

fn default_refresh() -> Spanned<Refresh> {
    Spanned::new(0..0, Refresh::Full)
}

fn default_max_reject_ratio() -> Spanned<f64> {
    Spanned::new(0..0, 0.01)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceFormat {
    Csv,
    Parquet,
    Json,
    Delta,
    Postgres,
    /// Apache Iceberg tables: a table root or its `*.metadata.json`.
    Iceberg,
    /// MySQL and MariaDB tables (`mysql://` or `mariadb://` URLs).
    #[serde(alias = "mariadb")]
    Mysql,
    /// Excel and OpenDocument spreadsheets (`.xlsx`, `.xlsm`, `.xlsb`, `.xls`, `.ods`).
    #[serde(alias = "xlsx", alias = "xls", alias = "ods", alias = "spreadsheet")]
    Excel,
    /// Events collected by `panorama serve` at `POST /api/events`; `location` is the
    /// directory the server keeps them in.
    Events,
}

impl SourceFormat {
    /// A database table (`table`, `updated_at_column`), not files.
    pub fn is_database(&self) -> bool {
        matches!(self, SourceFormat::Postgres | SourceFormat::Mysql)
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            SourceFormat::Csv => "csv",
            SourceFormat::Parquet => "parquet",
            SourceFormat::Json => "json",
            SourceFormat::Delta => "delta",
            SourceFormat::Postgres => "postgres",
            SourceFormat::Excel => "excel",
            SourceFormat::Mysql => "mysql",
            SourceFormat::Iceberg => "iceberg",
            SourceFormat::Events => "events",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Refresh {
    #[default]
    Full,
    Incremental,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum PrimaryKey {
    One(String),
    Many(Vec<String>),
}

impl PrimaryKey {
    pub fn columns(&self) -> Vec<String> {
        match self {
            PrimaryKey::One(c) => vec![c.clone()],
            PrimaryKey::Many(cs) => cs.clone(),
        }
    }
}

/// Options of the CSV reader.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvOptions {
    /// Whether the first line holds column names.
    #[serde(default = "yes")]
    pub header: bool,
    /// Field separator, one ASCII character.
    #[serde(default = "default_delimiter")]
    pub delimiter: Spanned<String>,
    /// Quote character, one ASCII character.
    #[serde(default = "default_quote")]
    pub quote: Spanned<String>,
    /// Escape character inside quoted fields; default is doubled quotes (`""`).
    #[serde(default)]
    pub escape: Option<Spanned<String>>,
    /// Values read as NULL (compared after trimming nothing: exact match).
    #[serde(default = "default_null_values")]
    pub null_values: Vec<String>,
    /// Rows sampled to infer column types that are not declared in `types`.
    #[serde(default = "default_infer_rows")]
    pub infer_rows: usize,
    /// Most lines one row may span (quoted values with line breaks). A row past it is taken
    /// for a stray quote that swallowed the lines after it: its first line is rejected and
    /// reading resumes on the next line.
    #[serde(default = "default_max_lines_per_row")]
    pub max_lines_per_row: u64,
}

fn default_max_lines_per_row() -> u64 {
    100
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            header: true,
            delimiter: default_delimiter(),
            quote: default_quote(),
            escape: None,
            null_values: default_null_values(),
            infer_rows: default_infer_rows(),
            max_lines_per_row: default_max_lines_per_row(),
        }
    }
}

fn yes() -> bool {
    true
}
fn default_delimiter() -> Spanned<String> {
    Spanned::new(0..0, ",".into())
}
fn default_quote() -> Spanned<String> {
    Spanned::new(0..0, "\"".into())
}
fn default_null_values() -> Vec<String> {
    vec![String::new()]
}
fn default_infer_rows() -> usize {
    10_000
}

/// The file's top level, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    project: ProjectSection,
    #[serde(default)]
    workspace: WorkspaceSection,
    #[serde(default)]
    sources: BTreeMap<Spanned<String>, SourceConfig>,
    #[serde(default)]
    unify: Option<unify::UnifySection>,
    #[serde(default)]
    activities: BTreeMap<String, Spanned<activities::ActivitySource>>,
    #[serde(default)]
    measures: BTreeMap<String, Spanned<analytics::MeasureDef>>,
    #[serde(default)]
    business_measures: BTreeMap<String, Spanned<analytics::MeasureDef>>,
    #[serde(default)]
    segments: BTreeMap<String, Spanned<analytics::SegmentDef>>,
    #[serde(default)]
    exports: BTreeMap<String, Spanned<exports::ExportDef>>,
    #[serde(default)]
    consent: Option<consent::ConsentSection>,
    #[serde(default)]
    messages: BTreeMap<String, Spanned<messages::MessageDef>>,
    #[serde(default)]
    journeys: BTreeMap<String, Spanned<journeys::JourneyDef>>,
    #[serde(default)]
    schedules: BTreeMap<String, Spanned<schedule::ScheduleDef>>,
    #[serde(default)]
    predictions: Option<predictions::PredictionsSection>,
    #[serde(default)]
    serve: Option<serve::ServeSection>,
    #[serde(default)]
    expectations: Vec<Spanned<expectations::ExpectationDef>>,
    #[serde(default)]
    funnels: BTreeMap<String, Spanned<funnels::FunnelDef>>,
    #[serde(default)]
    attribution: BTreeMap<String, Spanned<attribution::AttributionDef>>,
}

impl ProjectConfig {
    /// Load `panorama.toml` from a project directory.
    pub fn load(project_dir: &Path) -> Result<Self> {
        let path = project_dir.join(CONFIG_FILE);
        if !path.exists() {
            return Err(Error::NoProject(project_dir.to_path_buf()));
        }
        let text =
            std::fs::read_to_string(&path).map_err(|e| Error::io("cannot read", &path, e))?;
        Self::parse(project_dir, &path, text)
    }

    /// Parse and validate config text; `root` anchors relative paths.
    pub fn parse(root: &Path, path: &Path, text: String) -> Result<Self> {
        let raw: RawConfig = toml::from_str(&text).map_err(|e| {
            let (line, column) = e.span().map(|s| line_col(&text, s.start)).unwrap_or((1, 1));
            Error::Config {
                path: path.to_path_buf(),
                line,
                column,
                message: e.message().trim().to_string(),
            }
        })?;
        let mut sources = BTreeMap::new();
        let mut cfg = ProjectConfig {
            root: root.to_path_buf(),
            path: path.to_path_buf(),
            text,
            project: raw.project,
            workspace: raw.workspace,
            sources: BTreeMap::new(),
            unify: raw.unify,
            activities: raw.activities,
            measures: raw.measures,
            business_measures: raw.business_measures,
            segments: raw.segments,
            analytics: Default::default(),
            exports: raw.exports,
            consent: raw.consent,
            messages: raw.messages,
            journeys: raw.journeys,
            schedules: raw.schedules,
            predictions: raw.predictions,
            serve: raw.serve,
            expectations: Vec::new(),
            funnels: raw.funnels,
            attribution: raw.attribution,
        };
        for (name, source) in raw.sources {
            cfg.validate_source(&name, &source)?;
            sources.insert(name.into_inner(), source);
        }
        cfg.sources = sources;
        // Durations and sizes of `[serve]` are checked with the rest, not when serving starts.
        serve::ServeSettings::from_section(cfg.serve.as_ref(), root).map_err(|e| Error::File {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        if let Some(u) = &cfg.unify {
            cfg.check_unify(u)?;
        }
        for (name, a) in &cfg.activities {
            a.get_ref()
                .check(name, &cfg)
                .map_err(|m| cfg.error_at(a.span(), m))?;
        }
        if let Some(a) = &cfg.project.as_of {
            parse_as_of(a.get_ref())
                .map_err(|m| cfg.error_at(a.span(), format!("project.as_of: {m}")))?;
        }
        if let Some(p) = &cfg.predictions {
            cfg.check_predictions(p)?;
        }
        cfg.analytics = analytics::resolve(&cfg)?;
        journeys::check(&cfg).map_err(|(span, m)| cfg.error_at(span, m))?;
        for (name, s) in &cfg.schedules {
            s.get_ref()
                .check(name, &cfg)
                .map_err(|m| cfg.error_at(s.span(), m))?;
        }
        if let Some(c) = &cfg.consent {
            consent::check(&cfg, c).map_err(|(span, m)| cfg.error_at(span, m))?;
        }
        cfg.check_exports()?;
        cfg.check_expectations(&raw.expectations)?;
        for (name, f) in &cfg.funnels {
            f.get_ref()
                .check(name)
                .map_err(|m| cfg.error_at(f.span(), m))?;
        }
        cfg.check_attribution()?;
        cfg.expectations = raw.expectations;
        cfg.check_one_events_source()?;
        if *cfg.workspace.keep_runs.get_ref() == 0 {
            return Err(cfg.error_at(
                cfg.workspace.keep_runs.span(),
                "workspace.keep_runs must be at least 1",
            ));
        }
        Ok(cfg)
    }

    /// `[unify]`: every section names a configured source, the identity ties are complete,
    /// fields, expressions, rules and the probabilistic settings are valid.
    fn check_unify(&self, u: &unify::UnifySection) -> Result<()> {
        for (name, map) in &u.sources {
            if !self.sources.contains_key(name) {
                return Err(self.error_at(
                    map.span(),
                    format!(
                        "unify.sources.{name}: no source named `{name}` (sources: {})",
                        self.sources.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
        for (name, map) in u.accounts.iter().flat_map(|a| &a.sources) {
            if !self.sources.contains_key(name) {
                return Err(self.error_at(
                    map.span(),
                    format!("unify.accounts.sources.{name}: no source named `{name}`"),
                ));
            }
        }
        for (name, map) in &u.identities {
            if !self.sources.contains_key(name) {
                return Err(self.error_at(
                    map.span(),
                    format!("unify.identities.{name}: no source named `{name}`"),
                ));
            }
            let m = map.get_ref();
            match (&m.user_id, &m.user_source) {
                (Some(_), Some(src)) if !u.sources.contains_key(src) => {
                    return Err(self.error_at(
                        map.span(),
                        format!("unify.identities.{name}.user_source: `{src}` is not mapped in [unify.sources]"),
                    ));
                }
                (Some(_), None) | (None, Some(_)) => {
                    return Err(self.error_at(
                        map.span(),
                        format!("unify.identities.{name}: set both user_id (the column of a customer's id) and user_source (the unified source whose record ids it holds), or neither"),
                    ));
                }
                _ => {}
            }
        }
        if let Some(m) = &u.merge {
            unify::merge::check(m).map_err(|msg| self.error_at_section("[unify.merge", msg.0))?;
        }
        for (name, def) in &u.fields {
            def.get_ref()
                .check(name)
                .map_err(|m| self.error_at(def.span(), m))?;
        }
        let custom = u.custom_fields();
        for (name, map) in &u.sources {
            map.get_ref()
                .custom_fields(&custom)
                .map_err(|m| self.error_at(map.span(), format!("unify.sources.{name}: {m}")))?;
            for (key, sql) in map.get_ref().expressions() {
                crate::sql_text::check_expression(&sql).map_err(|m| {
                    self.error_at(
                        map.span(),
                        format!("unify.sources.{name}.{key}: SQL expression does not parse: {m}"),
                    )
                })?;
            }
        }
        let staged = unify::fields::staged_fields(&custom);
        for rule in &u.rules {
            unify::check_rule(rule.get_ref(), &staged)
                .map_err(|m| self.error_at(rule.span(), format!("unify.rules: {m}")))?;
        }
        if u.mode == Some(unify::MatchMode::Probabilistic) {
            if let Some(rule) = u.rules.first() {
                return Err(self.error_at(
                    rule.span(),
                    "unify.mode is \"probabilistic\" but match rules are given: remove the rules or set mode = \"rules\"",
                ));
            }
        }
        if u.probabilistic.is_some() {
            u.probabilistic_section()
                .check()
                .map_err(|msg| self.error_at_section("[unify.probabilistic", msg.0))?;
        }
        Ok(())
    }

    /// `[predictions]` need unified activities; recommendations name an activity.
    fn check_predictions(&self, p: &predictions::PredictionsSection) -> Result<()> {
        if !p.is_empty() && (self.unify.is_none() || self.activities.is_empty()) {
            return Err(self.error_at_section(
                "[predictions",
                "predictions learn from activities: add [unify] and [activities.<name>]".into(),
            ));
        }
        if let Some(c) = &p.clv {
            c.get_ref()
                .check()
                .map_err(|m| self.error_at(c.span(), m))?;
        }
        if let Some(r) = &p.recommendations {
            if !self.activities.contains_key(&r.get_ref().activity) {
                return Err(self.error_at(
                    r.span(),
                    format!(
                        "predictions.recommendations.activity: no [activities.{}] (activities: {})",
                        r.get_ref().activity,
                        self.activities
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Each export's settings, and the segment it sends exists.
    fn check_exports(&self) -> Result<()> {
        for (name, e) in &self.exports {
            e.get_ref().check(name).map_err(|(span, m)| {
                if span == (0..0) {
                    self.error_at(e.span(), m)
                } else {
                    self.error_at(span, m)
                }
            })?;
            if let Some(seg) = &e.get_ref().segment {
                if !self.analytics.has_segment(seg.get_ref()) {
                    return Err(self.error_at(
                        seg.span(),
                        format!(
                            "exports.{name}.segment: no segment named `{}`",
                            seg.get_ref()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Each attribution's settings; attribution reads activities.
    fn check_attribution(&self) -> Result<()> {
        for (name, a) in &self.attribution {
            a.get_ref()
                .check(name)
                .map_err(|m| self.error_at(a.span(), m))?;
            if self.activities.is_empty() {
                return Err(self.error_at(
                    a.span(),
                    format!("attribution.{name}: conversions and touchpoints are activities; add [activities.<name>]"),
                ));
            }
        }
        Ok(())
    }

    /// `panorama serve` collects events into one source: at most one has `format = "events"`.
    fn check_one_events_source(&self) -> Result<()> {
        let collected: Vec<&String> = self
            .sources
            .iter()
            .filter(|(n, s)| self.source_format(n, s).ok() == Some(SourceFormat::Events))
            .map(|(n, _)| n)
            .collect();
        if let [_, second, ..] = collected.as_slice() {
            let span = self.sources[*second].location.span();
            return Err(self.error_at(
                span,
                format!(
                    "sources.{second}: only one source may have format = \"events\" ({} has it too): `panorama serve` collects into one",
                    collected[0]
                ),
            ));
        }
        Ok(())
    }

    fn validate_source(&self, name: &Spanned<String>, s: &SourceConfig) -> Result<()> {
        self.check_source_name(name)?;
        let n = name.get_ref();
        let format = self.source_format(n, s)?;
        self.check_source_table(n, s, format)?;
        self.check_source_refresh(n, s, format)?;
        self.check_computed_columns(n, s)?;
        let ratio = *s.max_reject_ratio.get_ref();
        if !(0.0..=1.0).contains(&ratio) {
            return Err(self.error_at(
                s.max_reject_ratio.span(),
                format!("sources.{n}.max_reject_ratio must be between 0.0 and 1.0, got {ratio}"),
            ));
        }
        if s.primary_key.get_ref().columns().is_empty() {
            return Err(self.error_at(
                s.primary_key.span(),
                format!("sources.{n}.primary_key names no column"),
            ));
        }
        self.check_format_options(n, s, format)?;
        self.check_renames(n, s)
    }

    /// A source's name is a lowercase SQL identifier, not one of the tables Panorama writes.
    fn check_source_name(&self, name: &Spanned<String>) -> Result<()> {
        let n = name.get_ref();
        if !is_identifier(n) {
            return Err(self.error_at(
                name.span(),
                format!(
                    "source name `{n}` must be a lowercase SQL identifier (letters, digits, `_`, not starting with a digit)"
                ),
            ));
        }
        if is_reserved_table(n) {
            return Err(self.error_at(
                name.span(),
                format!("source name `{n}` is reserved for a table Panorama writes itself"),
            ));
        }
        Ok(())
    }

    /// `table` is required by the database formats and an Iceberg catalog location, and only
    /// allowed there.
    fn check_source_table(&self, n: &str, s: &SourceConfig, format: SourceFormat) -> Result<()> {
        let database = format.is_database();
        if database && s.table.is_none() {
            return Err(self.error_at(
                s.location.span(),
                format!(
                    "sources.{n}: format \"{}\" needs `table = \"schema.table\"`",
                    format.as_str()
                ),
            ));
        }
        let iceberg = format.as_str() == "iceberg";
        let catalog = names_sql_catalog(s.location.get_ref());
        if iceberg && catalog && s.table.is_none() {
            return Err(self.error_at(
                s.location.span(),
                format!(
                    "sources.{n}: an Iceberg catalog location needs `table = \"namespace.table\"`"
                ),
            ));
        }
        if !database {
            if let Some(t) = &s.table {
                if !(iceberg && catalog) {
                    return Err(self.error_at(
                        t.span(),
                        format!("sources.{n}.table is only for the database formats \"postgres\" and \"mysql\", and for an Iceberg table named in a SQL catalog (location = \"postgres://…\", \"mysql://…\" or \"sqlite:…\")"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// `refresh = "incremental"` and `updated_at_column` fit the format.
    fn check_source_refresh(&self, n: &str, s: &SourceConfig, format: SourceFormat) -> Result<()> {
        let database = format.is_database();
        if let Some(c) = &s.updated_at_column {
            if !database || *s.refresh.get_ref() != Refresh::Incremental {
                return Err(self.error_at(
                    c.span(),
                    format!("sources.{n}.updated_at_column is for formats \"postgres\" and \"mysql\" with refresh = \"incremental\""),
                ));
            }
        }
        if *s.refresh.get_ref() == Refresh::Incremental && database && s.updated_at_column.is_none()
        {
            return Err(self.error_at(
                s.refresh.span(),
                format!("sources.{n}: an incremental database source needs updated_at_column (a timestamp column every insert and update sets)"),
            ));
        }
        if *s.refresh.get_ref() == Refresh::Incremental
            && !database
            && !matches!(
                format,
                SourceFormat::Csv | SourceFormat::Parquet | SourceFormat::Json
            )
        {
            return Err(self.error_at(
                s.refresh.span(),
                format!(
                    "sources.{n}.refresh = \"incremental\" is for CSV, Parquet and JSON folders (full/ and incremental/YYYY/MM/DD/HH/) and PostgreSQL and MySQL tables with an updated_at_column; {} sources are read in full",
                    format.as_str()
                ),
            ));
        }
        Ok(())
    }

    /// Computed columns (`[sources.X.columns]`) are named as identifiers and parse; an
    /// incremental source's key is none of them.
    fn check_computed_columns(&self, n: &str, s: &SourceConfig) -> Result<()> {
        for (column, sql) in &s.columns {
            if !is_identifier(column) {
                return Err(self.error_at(
                    sql.span(),
                    format!("sources.{n}.columns.{column}: a computed column's name must be a lowercase SQL identifier (letters, digits, `_`, not starting with a digit)"),
                ));
            }
            crate::sql_text::check_expression(sql.get_ref()).map_err(|m| {
                self.error_at(
                    sql.span(),
                    format!("sources.{n}.columns.{column}: SQL expression does not parse: {m}"),
                )
            })?;
        }
        if *s.refresh.get_ref() == Refresh::Incremental {
            if let Some(k) = s
                .primary_key
                .get_ref()
                .columns()
                .into_iter()
                .find(|k| s.columns.contains_key(k))
            {
                return Err(self.error_at(
                    s.primary_key.span(),
                    format!("sources.{n}.primary_key: `{k}` is a computed column, but an incremental source's deletes are matched by key columns of the files; use the files' columns"),
                ));
            }
        }
        Ok(())
    }

    /// Options of one format (sheet, header_row, encoding, CSV dialect) are valid, and only
    /// given for that format.
    fn check_format_options(&self, n: &str, s: &SourceConfig, format: SourceFormat) -> Result<()> {
        for (key, span) in [
            ("sheet", s.sheet.as_ref().map(|v| v.span())),
            ("header_row", s.header_row.as_ref().map(|v| v.span())),
        ] {
            if let Some(span) = span.filter(|_| format != SourceFormat::Excel) {
                return Err(self.error_at(
                    span,
                    format!("sources.{n}.{key} is for format \"excel\" (xlsx, xls, ods)"),
                ));
            }
        }
        if let Some(h) = s.header_row.as_ref().filter(|h| *h.get_ref() == 0) {
            return Err(self.error_at(
                h.span(),
                format!("sources.{n}.header_row counts from 1, as the spreadsheet does"),
            ));
        }
        if let Some(e) = &s.encoding {
            if !matches!(format, SourceFormat::Csv | SourceFormat::Json) {
                return Err(self.error_at(
                    e.span(),
                    format!(
                        "sources.{n}.encoding is for CSV and JSON sources; {} sources carry their own",
                        format.as_str()
                    ),
                ));
            }
            if crate::text_encoding::Declared::parse(e.get_ref()).is_none() {
                return Err(self.error_at(
                    e.span(),
                    format!(
                        "sources.{n}.encoding: unknown encoding {:?}; use \"auto\", \"utf-8\", \"windows-1252\", \"iso-8859-1\", \"utf-16\", \"utf-16be\" or another WHATWG label (https://encoding.spec.whatwg.org/#names-and-labels)",
                        e.get_ref()
                    ),
                ));
            }
        }
        for (key, value) in [("delimiter", &s.csv.delimiter), ("quote", &s.csv.quote)]
            .into_iter()
            .chain(s.csv.escape.as_ref().map(|e| ("escape", e)))
        {
            if value.get_ref().len() != 1 || !value.get_ref().is_ascii() {
                return Err(self.error_at(
                    value.span(),
                    format!(
                        "sources.{n}.csv.{key} must be one ASCII character, got {:?}",
                        value.get_ref()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Renames must not collide with each other or with kept columns of the same name.
    fn check_renames(&self, n: &str, s: &SourceConfig) -> Result<()> {
        let mut targets: BTreeMap<&str, &str> = BTreeMap::new();
        for (from, to) in &s.rename {
            if let Some(prev) = targets.insert(to.get_ref(), from) {
                return Err(self.error_at(
                    to.span(),
                    format!(
                        "sources.{n}.rename: both `{prev}` and `{from}` are renamed to `{}`",
                        to.get_ref()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The declared format, or the one implied by the location's extension.
    /// The source `panorama serve` collects events into (`format = "events"`), and the
    /// directory it keeps them in.
    pub fn events_source(&self) -> Option<(&str, std::path::PathBuf)> {
        self.sources.iter().find_map(|(n, s)| {
            (self.source_format(n, s).ok()? == SourceFormat::Events)
                .then(|| (n.as_str(), self.root.join(s.location.get_ref())))
        })
    }

    pub fn source_format(&self, name: &str, s: &SourceConfig) -> Result<SourceFormat> {
        if let Some(f) = &s.format {
            return Ok(*f.get_ref());
        }
        let loc = s.location.get_ref().to_ascii_lowercase();
        let loc = loc.trim_end_matches('/');
        let guess = if loc.starts_with("postgres://") || loc.starts_with("postgresql://") {
            Some(SourceFormat::Postgres)
        } else if loc.starts_with("mysql://") || loc.starts_with("mariadb://") {
            Some(SourceFormat::Mysql)
        } else if loc.ends_with(".metadata.json") || loc.starts_with("sqlite:") {
            Some(SourceFormat::Iceberg)
        } else if loc.ends_with(".csv") || loc.ends_with(".tsv") {
            Some(SourceFormat::Csv)
        } else if loc.ends_with(".parquet") {
            Some(SourceFormat::Parquet)
        } else if loc.ends_with(".json") || loc.ends_with(".ndjson") || loc.ends_with(".jsonl") {
            Some(SourceFormat::Json)
        } else if [".xlsx", ".xlsm", ".xlsb", ".xls", ".ods"]
            .iter()
            .any(|e| loc.ends_with(e))
        {
            Some(SourceFormat::Excel)
        } else {
            None
        };
        guess.ok_or_else(|| {
            self.error_at(
                s.location.span(),
                format!(
                    "sources.{name}: cannot tell the format from the location; add format = \"csv\" | \"parquet\" | \"json\" | \"delta\" | \"postgres\""
                ),
            )
        })
    }

    /// An error pointing at a byte span of the config text.
    pub fn error_at(&self, span: std::ops::Range<usize>, message: impl Into<String>) -> Error {
        let (line, column) = line_col(&self.text, span.start);
        Error::Config {
            path: self.path.clone(),
            line,
            column,
            message: message.into(),
        }
    }

    /// `key (panorama.toml:LINE)`: a config key with where it is, for messages that list
    /// several.
    pub fn key_with_line(&self, span: std::ops::Range<usize>, key: &str) -> String {
        let (line, _) = line_col(&self.text, span.start);
        let file = self.path.file_name().map_or_else(
            || self.path.display().to_string(),
            |f| f.to_string_lossy().into_owned(),
        );
        format!("{key} ({file}:{line})")
    }

    /// An error located at the line that opens a table (`[unify.merge`), or line 1.
    fn error_at_section(&self, header: &str, message: String) -> Error {
        Error::Config {
            path: self.path.clone(),
            line: self
                .text
                .lines()
                .position(|l| l.trim_start().starts_with(header))
                .map_or(1, |i| i + 1),
            column: 1,
            message,
        }
    }

    /// Absolute directory where runs are written.
    pub fn workspace_dir(&self) -> PathBuf {
        self.root.join(&self.workspace.dir)
    }

    /// Stable hash of the config text, stored in every run manifest.
    pub fn hash(&self) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(self.text.as_bytes());
        digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }
}

/// Config text of a project at `/p`, for unit tests.
#[cfg(test)]
pub(crate) fn parse_for_tests(text: &str) -> Result<ProjectConfig> {
    ProjectConfig::parse(
        Path::new("/p"),
        Path::new("/p/panorama.toml"),
        text.to_string(),
    )
}

/// The location with any password replaced (a database URL's), safe to print and store in
/// manifests.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

impl ProjectConfig {
    /// Documentation of the run's `tables` ([`crate::table_catalog::describe`]): the
    /// sources' `description` and `primary_key`, the measures' descriptions.
    pub fn table_docs(&self, tables: &[String]) -> Vec<crate::table_catalog::TableDoc> {
        let measure_columns: Vec<(String, String)> = self
            .measures
            .iter()
            .map(|(name, m)| {
                let d = m
                    .get_ref()
                    .description
                    .clone()
                    .unwrap_or_else(|| format!("Measure `{name}`."));
                (name.clone(), d)
            })
            .collect();
        let source = |table: &str| {
            self.sources.get(table).map(|s| {
                let description = s.description.clone().unwrap_or_else(|| {
                    format!("Source `{table}`: [sources.{table}] in the project's config.")
                });
                (description, s.primary_key.get_ref().columns())
            })
        };
        crate::table_catalog::describe(tables, source, &measure_columns)
    }
}

/// `30s`, `500ms`, `90m`, `36h`, `2d` or plain seconds.
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let t = text.trim();
    let (num, unit) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else if let Some(n) = t.strip_suffix('d') {
        (n, 86_400.0)
    } else {
        (t, 1.0)
    };
    let n: f64 = num.trim().parse().ok()?;
    (n > 0.0 && n.is_finite()).then(|| std::time::Duration::from_secs_f64(n * unit))
}

/// A reference time: `2026-11-01`, `2026-11-01 12:00:00` or `2026-11-01T12:00:00` (UTC).
pub fn parse_as_of(s: &str) -> std::result::Result<chrono::NaiveDateTime, Problem> {
    let s = s.trim();
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S"))
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight exists"))
        })
        .map_err(|_| {
            Problem(format!(
                "`{s}` is not a date or time; write e.g. \"2026-11-01\" or \"2026-11-01T12:00:00\""
            ))
        })
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(offset, |p| offset - p - 1) + 1;
    (line, column)
}

/// Lowercase SQL identifier: usable unquoted as a table name.
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Whether a source location names a SQL catalog database (an Iceberg table's `location` when
/// it has `table = "namespace.table"`) rather than files.
pub fn names_sql_catalog(location: &str) -> bool {
    [
        "postgres://",
        "postgresql://",
        "mysql://",
        "mariadb://",
        "sqlite:",
    ]
    .iter()
    .any(|p| location.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ProjectConfig> {
        super::parse_for_tests(text)
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let err = parse("[sources.crm]\nlocation = \"a.csv\"\nprimary_key = \"id\"\nprimery = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("/p/panorama.toml:4:"), "{err}");
        assert!(err.contains("unknown field `primery`"), "{err}");
    }

    #[test]
    fn wrong_type_names_line() {
        let err = parse("[workspace]\nkeep_runs = \"many\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("/p/panorama.toml:2:"), "{err}");
    }

    #[test]
    fn format_from_extension_and_missing() {
        let cfg = parse("[sources.a]\nlocation = \"x/a.parquet\"\nprimary_key = [\"id\", \"k\"]\n")
            .unwrap();
        let s = &cfg.sources["a"];
        assert_eq!(cfg.source_format("a", s).unwrap(), SourceFormat::Parquet);
        assert_eq!(s.primary_key.get_ref().columns(), vec!["id", "k"]);
        let err = parse("[sources.a]\nlocation = \"x/a.bin\"\nprimary_key = \"id\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(":2:") && err.contains("cannot tell the format"),
            "{err}"
        );
    }

    #[test]
    fn reserved_and_bad_names() {
        let err = parse("[sources.rejects]\nlocation = \"a.csv\"\nprimary_key = \"id\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("reserved"), "{err}");
        let err = parse("[sources.segment_members]\nlocation = \"a.csv\"\nprimary_key = \"id\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("reserved"), "{err}");
        let err = parse("[sources.Crm]\nlocation = \"a.csv\"\nprimary_key = \"id\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("lowercase SQL identifier"), "{err}");
        // Every catalog table (unification's, a state log's) and the internal names.
        for name in [
            "customer_links",
            "match_weights",
            "audit_log",
            "unified_accounts",
            "truth",
        ] {
            let err = parse(&format!(
                "[sources.{name}]\nlocation = \"a.csv\"\nprimary_key = \"id\"\n"
            ))
            .unwrap_err()
            .to_string();
            assert!(err.contains("reserved"), "{name}: {err}");
        }
        assert!(parse("[sources.crm]\nlocation = \"a.csv\"\nprimary_key = \"id\"\n").is_ok());
    }

    #[test]
    fn documented_example_parses() {
        let doc = include_str!("../../docs/config.md");
        let example = doc
            .find("## Example")
            .expect("docs/config.md has an example section");
        let start = example + doc[example..].find("```toml\n").expect("a toml example") + 8;
        let end = start + doc[start..].find("```").unwrap();
        let cfg = parse(&doc[start..end]).unwrap();
        assert_eq!(cfg.sources.len(), 5);
        assert_eq!(*cfg.workspace.keep_runs.get_ref(), 3);
        let unify = cfg.unify.as_ref().expect("the example maps sources");
        assert_eq!(unify.sources.len(), 2);
        assert_eq!(unify.rules.len(), 2);
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }
}
