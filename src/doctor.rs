//! `panorama doctor`: what is wrong with a project, found before a run.
//!
//! Each source is read with the run's loader (the first `sample_rows` rows): locations and
//! credentials are tried, broken rows and repeated or empty keys counted. Then every column
//! the config names is looked up in what was read (with the closest name when it is not
//! there), every SQL expression of the unify map is planned against it, the values of mapped
//! fields are parsed as a run would (e-mails, phones, dates, times) with the worst examples,
//! references from activities to customer records are looked up, the blocking plan is made
//! from the sampled rows, and names in measures and segments are checked. Every problem names
//! the config key and its line and says what to do. Nothing is written.

use std::collections::{BTreeMap, HashSet};

use arrow::array::{Array, RecordBatch, StringArray};
use arrow::datatypes::SchemaRef;
use datafusion::prelude::SessionContext;

use crate::config::ProjectConfig;
use crate::error::{Error, Result};
use crate::sources::rejects::Reject;
use crate::sources::BatchSink;
use crate::table_catalog::names;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// A run would fail, or a mapping does nothing.
    Error,
    /// A run would go on, with less than it could.
    Warning,
}

/// One finding, located in the config.
#[derive(Debug, Clone)]
pub struct Problem {
    pub severity: Severity,
    pub line: usize,
    /// The config key, e.g. `unify.sources.crm.birth_date`.
    pub key: String,
    pub message: String,
    /// What to do about it.
    pub fix: String,
}

/// Everything `doctor` found.
#[derive(Debug, Default)]
pub struct Diagnosis {
    pub problems: Vec<Problem>,
    /// Checks that passed, one line each, for the report.
    pub passed: Vec<String>,
    /// The blocking plan's headline lines, when one could be made.
    pub blocking: Vec<String>,
}

impl Diagnosis {
    pub fn errors(&self) -> usize {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .count()
    }

    /// The report as printed: checks passed, then problems with file:line, then a count.
    pub fn report(&self, cfg: &ProjectConfig) -> String {
        let mut out = String::new();
        for p in &self.passed {
            out.push_str(&format!("ok    {p}\n"));
        }
        if !self.blocking.is_empty() {
            out.push_str("blocking plan (from the sampled rows):\n");
            for b in &self.blocking {
                out.push_str(&format!("      {b}\n"));
            }
        }
        let mut problems = self.problems.clone();
        problems.sort_by_key(|p| (p.line, p.severity));
        for p in &problems {
            let tag = match p.severity {
                Severity::Error => "error",
                Severity::Warning => "warn ",
            };
            out.push_str(&format!(
                "{tag} {}:{}: {}: {}\n      fix: {}\n",
                cfg.path.display(),
                p.line,
                p.key,
                p.message,
                p.fix
            ));
        }
        let warnings = self.problems.len() - self.errors();
        out.push_str(&format!(
            "{} error(s), {} warning(s)\n",
            self.errors(),
            warnings
        ));
        out
    }
}

/// The line of `key` inside the table `[section]` of the config text (the section's line when
/// the key is not written on a line of its own; 1 when the section is not there).
pub fn key_line(text: &str, section: &str, key: Option<&str>) -> usize {
    let header = format!("[{section}]");
    let lines: Vec<&str> = text.lines().collect();
    let Some(start) = lines.iter().position(|l| l.trim() == header) else {
        // Inline tables and dotted keys: the first line naming the section.
        let last = section.rsplit('.').next().unwrap_or(section);
        return lines
            .iter()
            .position(|l| l.contains(last))
            .map_or(1, |i| i + 1);
    };
    if let Some(key) = key {
        for (i, l) in lines.iter().enumerate().skip(start + 1) {
            let t = l.trim_start();
            if t.starts_with('[') {
                break;
            }
            let k = t.split('=').next().unwrap_or("").trim().trim_matches('"');
            if k == key {
                return i + 1;
            }
        }
    }
    start + 1
}

/// Collects up to `limit` shaped rows of a source; then stops the reader.
struct SampleSink {
    limit: usize,
    rows: usize,
    schema: Option<SchemaRef>,
    batches: Vec<RecordBatch>,
}

impl BatchSink for SampleSink {
    fn start(&mut self, schema: SchemaRef) -> Result<()> {
        self.schema = Some(schema);
        Ok(())
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let take = batch.num_rows().min(self.limit - self.rows);
        self.batches.push(batch.slice(0, take));
        self.rows += take;
        if self.rows >= self.limit {
            return Err(Error::StopReading);
        }
        Ok(())
    }
}

fn closest<'a>(name: &str, columns: &'a [String]) -> Option<&'a str> {
    columns
        .iter()
        .map(|c| {
            (
                strsim::levenshtein(&name.to_lowercase(), &c.to_lowercase()),
                c.as_str(),
            )
        })
        .filter(|(d, c)| *d <= 3.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Check `cfg` against the first `sample_rows` rows of each source.
pub async fn diagnose(cfg: &ProjectConfig, sample_rows: usize) -> Result<Diagnosis> {
    let mut d = Diagnosis::default();
    let ctx = crate::session::new_context();
    let mut schemas: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // 1. Sources: readable, rows well-formed, keys unique.
    for name in cfg.sources.keys() {
        check_source(&mut d, cfg, &ctx, name, sample_rows, &mut schemas).await?;
    }
    // 2. Columns the config names, and the unify map's SQL, against what was read.
    if let Some(unify) = &cfg.unify {
        check_unify_map(&mut d, cfg, &ctx, unify, &schemas).await;
        check_identities(&mut d, cfg, unify, &schemas);
        if unify.match_mode() == crate::unify::config::MatchMode::Probabilistic && d.errors() == 0 {
            blocking_plan(&mut d, cfg, unify, &ctx).await;
        }
    }
    // 3. Activities: columns, and references to customer records.
    check_activities(&mut d, cfg, &ctx, &schemas).await;
    // 4. Names in measure and segment conditions: profile fields (the current run's
    // `customer_profiles` when there is one), measures, segments, source columns.
    let profile_columns = profile_columns(cfg).await;
    names_in_analytics(&mut d, cfg, &schemas, &profile_columns);
    Ok(d)
}

/// One source: read its first rows (columns the config uses but the data lacks loaded as
/// NULL, so each key gets its own problem later), register them in `ctx`, and note their
/// columns in `schemas`.
async fn check_source(
    d: &mut Diagnosis,
    cfg: &ProjectConfig,
    ctx: &SessionContext,
    name: &str,
    sample_rows: usize,
    schemas: &mut BTreeMap<String, Vec<String>>,
) -> Result<()> {
    let source = &cfg.sources[name];
    let line_of = |span: std::ops::Range<usize>| crate::config::line_col(&cfg.text, span.start).0;
    // Columns the config uses that the data lacks are loaded as NULL here, so the sample
    // is read and each key gets its own problem below, with the closest column name.
    let mut cfg2 = cfg.clone();
    if let Some(s) = cfg2.sources.get_mut(name) {
        s.on_missing_column = Some(toml::Spanned::new(
            0..0,
            crate::config::OnMissingColumn::Null,
        ));
    }
    let name2 = name.to_string();
    let handle = tokio::runtime::Handle::current();
    let loaded = tokio::task::spawn_blocking(move || {
        let mut sink = SampleSink {
            limit: sample_rows.max(1),
            rows: 0,
            schema: None,
            batches: Vec::new(),
        };
        let result = crate::sources::load_source(&cfg2, &name2, &handle, &mut sink, &|_| {}, None);
        (result, sink)
    })
    .await
    .map_err(|e| Error::Internal(format!("doctor stopped: {e}")))?;
    let (result, sink) = loaded;
    let (report, rejects) = match result {
        Ok(r) => r,
        Err(e) => {
            d.problems.push(Problem {
                severity: Severity::Error,
                line: line_of(source.location.span()),
                key: format!("sources.{name}.location"),
                message: e.to_string(),
                fix: "check the path, the URL and its credentials (environment variables), \
                      and the format; docs/config.md#locations"
                    .into(),
            });
            return Ok(());
        }
    };
    let Some(schema) = sink.schema.clone() else {
        return Ok(());
    };
    schemas.insert(
        name.to_string(),
        schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|c| !report.missing_columns.contains(c))
            .collect(),
    );
    // The columns loaded as NULL are left out again: a mapped expression that uses one
    // then fails to plan here, naming the columns the source has.
    let (schema, batches) = if report.missing_columns.is_empty() {
        (schema, sink.batches)
    } else {
        let keep: Vec<usize> = schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| !report.missing_columns.contains(f.name()))
            .map(|(i, _)| i)
            .collect();
        let batches = sink
            .batches
            .iter()
            .map(|b| b.project(&keep))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        (std::sync::Arc::new(schema.project(&keep)?), batches)
    };
    crate::session::register_batches(ctx, name, schema, batches)?;
    let scope = if sink.rows >= sample_rows {
        format!("the first {} rows", sink.rows)
    } else {
        format!("all {} rows", report.rows_read)
    };
    source_rejects(d, cfg, name, &rejects, &scope, &line_of);
    if rejects.is_empty() {
        d.passed.push(format!(
            "sources.{name}: {scope} read, keys filled and unique"
        ));
    }
    Ok(())
}

/// Every mapped field of the unify map: its column exists, its SQL plans and runs on the
/// sample, and how many values parse.
async fn check_unify_map(
    d: &mut Diagnosis,
    cfg: &ProjectConfig,
    ctx: &SessionContext,
    unify: &crate::unify::config::UnifySection,
    schemas: &BTreeMap<String, Vec<String>>,
) {
    let custom = unify.custom_fields();
    for (source, map) in &unify.sources {
        let Some(columns) = schemas.get(source) else {
            continue;
        };
        let section = format!("unify.sources.{source}");
        let mut mapped: Vec<(String, crate::unify::config::Mapped)> = map
            .get_ref()
            .builtin()
            .into_iter()
            .map(|(k, m)| (k.to_string(), m.clone()))
            .collect();
        if let Ok(c) = map.get_ref().custom_fields(&custom) {
            mapped.extend(c);
        }
        let mut usable = 0;
        for (field, m) in &mapped {
            let line = key_line(&cfg.text, &section, Some(field));
            if let Some(col) = m.column() {
                if !columns.iter().any(|c| c == col) {
                    d.problems
                        .push(missing_column(&section, field, col, columns, line));
                    continue;
                }
            }
            let sql = format!(
                "SELECT CAST({} AS VARCHAR) AS v FROM {}",
                m.sql(),
                crate::sql_text::ident(source)
            );
            match ctx.sql(&sql).await {
                Ok(df) => match df.collect().await {
                    Ok(batches) => {
                        usable += 1;
                        let values = strings(&batches);
                        parse_rate(d, cfg, source, field, &values, &custom, line);
                    }
                    Err(e) => d.problems.push(Problem {
                        severity: Severity::Error,
                        line,
                        key: format!("{section}.{field}"),
                        message: format!("the mapped value fails on the data: {e}"),
                        fix: "fix the expression (or cast the column) so it works on every row"
                            .into(),
                    }),
                },
                Err(e) => d.problems.push(Problem {
                    severity: Severity::Error,
                    line,
                    key: format!("{section}.{field}"),
                    message: format!("the mapped value does not plan: {e}"),
                    fix: format!(
                        "use columns of `{source}` ({}); quote mixed-case names with \"…\"",
                        columns.join(", ")
                    ),
                }),
            }
        }
        if usable > 0 {
            d.passed
                .push(format!("{section}: {usable} mapped field(s) read"));
        }
    }
}

/// The identity sources' columns exist.
fn check_identities(
    d: &mut Diagnosis,
    cfg: &ProjectConfig,
    unify: &crate::unify::config::UnifySection,
    schemas: &BTreeMap<String, Vec<String>>,
) {
    for (source, id) in &unify.identities {
        let Some(columns) = schemas.get(source) else {
            continue;
        };
        let section = format!("unify.identities.{source}");
        let id = id.get_ref();
        for (key, col) in [
            ("anonymous_id", Some(&id.anonymous_id)),
            ("email", id.email.as_ref()),
            ("phone", id.phone.as_ref()),
            ("timestamp", id.timestamp.as_ref()),
        ] {
            if let Some(col) = col {
                if !columns.contains(col) {
                    let line = key_line(&cfg.text, &section, Some(key));
                    d.problems
                        .push(missing_column(&section, key, col, columns, line));
                }
            }
        }
    }
}

/// Activities: columns, and references to customer records.
async fn check_activities(
    d: &mut Diagnosis,
    cfg: &ProjectConfig,
    ctx: &SessionContext,
    schemas: &BTreeMap<String, Vec<String>>,
) {
    for (name, a) in &cfg.activities {
        let a = a.get_ref();
        let Some(columns) = schemas.get(&a.source) else {
            continue;
        };
        let section = format!("activities.{name}");
        let named = [
            ("customer", a.customer.as_ref()),
            ("anonymous_id", a.anonymous_id.as_ref()),
            ("timestamp", Some(&a.timestamp)),
            ("type_column", a.type_column.as_ref()),
            ("amount", a.amount.as_ref()),
        ];
        let mut ok = true;
        for (key, col) in named {
            if let Some(col) = col {
                if !columns.contains(col) {
                    ok = false;
                    let line = key_line(&cfg.text, &section, Some(key));
                    d.problems
                        .push(missing_column(&section, key, col, columns, line));
                }
            }
        }
        for col in &a.details {
            if !columns.contains(col) {
                ok = false;
                let line = key_line(&cfg.text, &section, Some("details"));
                d.problems
                    .push(missing_column(&section, "details", col, columns, line));
            }
        }
        if let (true, Some(col), Some(target)) = (ok, &a.customer, &a.customer_source) {
            customer_references(d, cfg, ctx, &section, col, &a.source, target).await;
        }
        if ok {
            d.passed
                .push(format!("{section}: columns found in `{}`", a.source));
        }
    }
}

/// The current run's profile columns (`customer_profiles`, else `unified_customers`); none
/// without a run.
async fn profile_columns(cfg: &ProjectConfig) -> Vec<String> {
    match crate::session::open_project(cfg, None).await {
        Ok((run_ctx, _)) => match run_ctx.table(names::CUSTOMER_PROFILES).await {
            Ok(t) => t
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect(),
            Err(_) => match run_ctx.table(names::UNIFIED_CUSTOMERS).await {
                Ok(t) => t
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect(),
                Err(_) => Vec::new(),
            },
        },
        Err(_) => Vec::new(),
    }
}

fn missing_column(section: &str, key: &str, col: &str, columns: &[String], line: usize) -> Problem {
    let hint = match closest(col, columns) {
        Some(c) => format!("did you mean `{c}`? "),
        None => String::new(),
    };
    Problem {
        severity: Severity::Error,
        line,
        key: format!("{section}.{key}"),
        message: format!("no column `{col}` in the source"),
        fix: format!("{hint}its columns: {}", columns.join(", ")),
    }
}

fn source_rejects(
    d: &mut Diagnosis,
    cfg: &ProjectConfig,
    name: &str,
    rejects: &[Reject],
    scope: &str,
    line_of: &dyn Fn(std::ops::Range<usize>) -> usize,
) {
    if rejects.is_empty() {
        return;
    }
    let source = &cfg.sources[name];
    // Empty and repeated keys are the key's problem; anything else, the file's or a type's.
    let (keyed, other): (Vec<&Reject>, Vec<&Reject>) = rejects
        .iter()
        .partition(|r| r.reason.to_lowercase().contains("key"));
    let examples = |rs: &[&Reject]| {
        rs.iter()
            .take(3)
            .map(|r| format!("{} row {}: {}", r.file, r.row, r.reason))
            .collect::<Vec<_>>()
            .join("; ")
    };
    if !keyed.is_empty() {
        d.problems.push(Problem {
            severity: Severity::Error,
            line: line_of(source.primary_key.span()),
            key: format!("sources.{name}.primary_key"),
            message: format!(
                "{} row(s) in {scope} have an empty or repeated key, e.g. {}",
                keyed.len(),
                examples(&keyed)
            ),
            fix: "choose a column (or a list of columns) that is filled and unique; a run \
                  rejects these rows"
                .into(),
        });
    }
    if !other.is_empty() {
        d.problems.push(Problem {
            severity: Severity::Warning,
            line: line_of(source.location.span()),
            key: format!("sources.{name}"),
            message: format!(
                "{} row(s) in {scope} would be rejected, e.g. {}",
                other.len(),
                examples(&other)
            ),
            fix: "declare the column's type in `types` (or \"string\"), or fix the file; \
                  `max_reject_ratio` decides whether a run fails"
                .into(),
        });
    }
}

/// Non-null values of the first column, as text.
fn strings(batches: &[RecordBatch]) -> Vec<String> {
    let mut out = Vec::new();
    for b in batches {
        if let Some(a) = b.column(0).as_any().downcast_ref::<StringArray>() {
            out.extend(a.iter().flatten().map(str::to_string));
        }
    }
    out
}

/// Whether one value is usable as its field.
type ValueCheck = Box<dyn Fn(&str) -> bool>;

/// How many of a mapped field's values a run can use, with the worst examples.
fn parse_rate(
    d: &mut Diagnosis,
    cfg: &ProjectConfig,
    source: &str,
    field: &str,
    values: &[String],
    custom: &crate::unify::fields::CustomFields,
    line: usize,
) {
    use crate::unify::fields::FieldKind;
    let kind = crate::unify::fields::kind_of(field, custom);
    let region = cfg
        .unify
        .as_ref()
        .and_then(|u| u.sources.get(source))
        .and_then(|m| m.get_ref().default_region.clone());
    let check: Option<(&str, ValueCheck)> = match (field, kind) {
        ("updated_at", _) => Some((
            "timestamps",
            Box::new(|v: &str| {
                chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%d %H:%M:%S%.f").is_ok()
                    || chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S%.f").is_ok()
                    || chrono::DateTime::parse_from_rfc3339(v).is_ok()
                    || chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").is_ok()
            }),
        )),
        (_, Some(FieldKind::Email)) => Some((
            "e-mail addresses",
            Box::new(|v: &str| {
                let mut out = String::new();
                v.contains('@') && panorama_udfs::normalize::canonical_email(v, false, &mut out)
            }),
        )),
        (_, Some(FieldKind::Phone)) => Some((
            "phone numbers",
            Box::new(move |v: &str| {
                let mut out = String::new();
                panorama_udfs::normalize::phone_digits_into(v, &mut out)
                    && (region.is_none()
                        || panorama_udfs::normalize::e164(v, region.as_deref()).is_some())
            }),
        )),
        (_, Some(FieldKind::Date)) => Some((
            "dates",
            Box::new(|v: &str| {
                let date = v.split(['T', ' ']).next().unwrap_or(v);
                panorama_udfs::dates::parse_date_days(date, panorama_udfs::dates::Order::DayMonth)
                    .is_some()
            }),
        )),
        _ => None,
    };
    let key = format!("unify.sources.{source}.{field}");
    if values.is_empty() {
        d.problems.push(Problem {
            severity: Severity::Warning,
            line,
            key,
            message: "every sampled value is empty".into(),
            fix: "map a column that holds the field, or remove the key".into(),
        });
        return;
    }
    let Some((what, ok)) = check else {
        return;
    };
    let bad: Vec<&String> = values.iter().filter(|v| !ok(v)).collect();
    let share = bad.len() as f64 / values.len() as f64;
    if share == 0.0 {
        return;
    }
    let mut examples: Vec<&str> = Vec::new();
    for v in &bad {
        if !examples.contains(&v.as_str()) {
            examples.push(v);
        }
        if examples.len() == 3 {
            break;
        }
    }
    let severity = if share >= 0.5 {
        Severity::Error
    } else if share >= 0.02 {
        Severity::Warning
    } else {
        return;
    };
    d.problems.push(Problem {
        severity,
        line,
        key,
        message: format!(
            "{:.1}% of {} values are not {what}, e.g. {}",
            share * 100.0,
            values.len(),
            examples
                .iter()
                .map(|e| format!("{e:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        fix: if severity == Severity::Error {
            "map the column that holds them, or a { sql = \"…\" } that converts them".into()
        } else {
            "they are NULL for matching (and counted in unify_stats); clean them with a \
             { sql = \"…\" } mapping if they matter"
                .into()
        },
    });
}

async fn blocking_plan(
    d: &mut Diagnosis,
    cfg: &ProjectConfig,
    unify: &crate::unify::config::UnifySection,
    ctx: &SessionContext,
) {
    let scratch = cfg
        .workspace_dir()
        .join("tmp")
        .join(format!("doctor-{}", std::process::id()));
    if std::fs::create_dir_all(&scratch).is_err() {
        return;
    }
    let result = crate::unify::plan::plan_in(cfg, unify, ctx, "(doctor's sample)", &scratch).await;
    let _ = std::fs::remove_dir_all(&scratch);
    match result {
        Ok(plan) => d.blocking = plan.summary,
        Err(e) => d.problems.push(Problem {
            severity: Severity::Error,
            line: key_line(&cfg.text, "unify", None),
            key: "unify".into(),
            message: format!("unification cannot be planned on the sampled rows: {e}"),
            fix: "fix the unify map (the message names the field), then `panorama doctor` again"
                .into(),
        }),
    }
}

async fn customer_references(
    d: &mut Diagnosis,
    cfg: &ProjectConfig,
    ctx: &SessionContext,
    section: &str,
    column: &str,
    source: &str,
    target: &str,
) {
    let Some(unify) = &cfg.unify else { return };
    let Some(map) = unify.sources.get(target) else {
        return;
    };
    let record_id = match &map.get_ref().record_id {
        Some(c) => c.clone(),
        None => match cfg
            .sources
            .get(target)
            .map(|s| s.primary_key.get_ref().columns())
        {
            Some(cols) if cols.len() == 1 => cols[0].clone(),
            _ => return,
        },
    };
    let id = crate::sql_text::ident;
    let sql = format!(
        "SELECT count(*) AS n, count(t.k) AS found FROM \
         (SELECT DISTINCT CAST({} AS VARCHAR) AS v FROM {} WHERE {} IS NOT NULL) a \
         LEFT JOIN (SELECT DISTINCT CAST({} AS VARCHAR) AS k FROM {}) t ON a.v = t.k",
        id(column),
        id(source),
        id(column),
        id(&record_id),
        id(target)
    );
    let Ok(df) = ctx.sql(&sql).await else { return };
    let Ok(batches) = df.collect().await else {
        return;
    };
    let Some(b) = batches.first() else { return };
    let n =
        arrow::array::cast::as_primitive_array::<arrow::datatypes::Int64Type>(b.column(0)).value(0);
    let found =
        arrow::array::cast::as_primitive_array::<arrow::datatypes::Int64Type>(b.column(1)).value(0);
    if n > 0 && (found as f64) < 0.5 * n as f64 {
        d.problems.push(Problem {
            severity: Severity::Warning,
            line: key_line(&cfg.text, section, Some("customer")),
            key: format!("{section}.customer"),
            message: format!(
                "only {found} of {n} distinct values of `{column}` are record ids (`{record_id}`) of `{target}` in the sampled rows"
            ),
            fix: format!(
                "check that `{column}` holds `{target}`'s ids, or set `customer_source` to the source whose ids it holds (unresolved activities are kept with no customer)"
            ),
        });
    }
}

/// Names in segment conditions and measure expressions that are none of the profile fields,
/// measures, segments or source columns.
fn names_in_analytics(
    d: &mut Diagnosis,
    cfg: &ProjectConfig,
    schemas: &BTreeMap<String, Vec<String>>,
    profile_columns: &[String],
) {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::keywords::Keyword;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    let mut known: HashSet<String> = HashSet::new();
    for m in &cfg.analytics.measures {
        known.insert(m.name.to_lowercase());
    }
    for s in &cfg.analytics.segments {
        known.insert(s.name.to_lowercase());
    }
    for cols in schemas.values() {
        known.extend(cols.iter().map(|c| c.to_lowercase()));
    }
    if let Some(u) = &cfg.unify {
        known.extend(crate::unify::fields::staged_fields(&u.custom_fields()));
    }
    known.extend(crate::table_catalog::common_column_names().map(str::to_string));
    known.extend(profile_columns.iter().map(|c| c.to_lowercase()));
    let check = |text: &str| -> Vec<String> {
        let Ok(tokens) = Tokenizer::new(&GenericDialect {}, text).tokenize() else {
            return Vec::new();
        };
        let mut unknown = Vec::new();
        let significant: Vec<&Token> = tokens
            .iter()
            .filter(|t| !matches!(t, Token::Whitespace(_)))
            .collect();
        for (i, t) in significant.iter().enumerate() {
            let Token::Word(w) = t else { continue };
            if w.quote_style.is_none() && w.keyword != Keyword::NoKeyword {
                continue;
            }
            let called = matches!(significant.get(i + 1), Some(Token::LParen));
            let qualified = matches!(significant.get(i + 1), Some(Token::Period))
                || (i > 0 && matches!(significant[i - 1], Token::Period));
            if called || qualified {
                continue;
            }
            let name = if w.quote_style.is_some() {
                w.value.clone()
            } else {
                w.value.to_lowercase()
            };
            if !known.contains(&name.to_lowercase()) && !unknown.contains(&name) {
                unknown.push(name);
            }
        }
        unknown
    };
    for (name, s) in &cfg.segments {
        let Some(cond) = &s.get_ref().condition else {
            continue;
        };
        let unknown = check(cond);
        if !unknown.is_empty() {
            d.problems.push(Problem {
                severity: Severity::Error,
                line: key_line(&cfg.text, &format!("segments.{name}"), Some("where")),
                key: format!("segments.{name}.where"),
                message: format!("unknown name(s): {}", unknown.join(", ")),
                fix: "use profile fields (unified_customers), measures or segments; \
                      `panorama segments` lists them after a run"
                    .into(),
            });
        }
    }
    for (name, m) in &cfg.measures {
        let m = m.get_ref();
        let Some(expr) = &m.expression else { continue };
        let unknown = check(expr);
        if !unknown.is_empty() {
            d.problems.push(Problem {
                severity: Severity::Error,
                line: key_line(&cfg.text, &format!("measures.{name}"), Some("expression")),
                key: format!("measures.{name}.expression"),
                message: format!("unknown name(s): {}", unknown.join(", ")),
                fix: "an expression combines profile fields and other measures by name".into(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_lines() {
        let text = "[project]\nname = \"x\"\n\n[unify.sources.crm]\nfirst_name = \"a\"\nemail = \"b\"\n\n[unify.sources.shop]\nemail = \"c\"\n";
        assert_eq!(key_line(text, "unify.sources.crm", Some("email")), 6);
        assert_eq!(key_line(text, "unify.sources.shop", Some("email")), 9);
        assert_eq!(key_line(text, "unify.sources.shop", Some("phone")), 8);
        assert_eq!(key_line(text, "unify.sources.none", None), 1);
    }

    #[test]
    fn closest_names() {
        let cols = vec![
            "first_name".to_string(),
            "email".to_string(),
            "E-Mail".to_string(),
        ];
        assert_eq!(closest("frist_name", &cols), Some("first_name"));
        assert_eq!(closest("emial", &cols), Some("email"));
        assert_eq!(closest("postcode", &cols), None);
    }
}
