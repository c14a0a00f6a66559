//! Real-time match: one record in a source's shape → the customer it belongs to (or none),
//! with score and explanation, by the same staging, blocking, rules and weights as the
//! batch run that produced the current tables — no separate model.
//!
//! Planning SQL per request would cost milliseconds, so the batch SQL is planned once, when
//! the matcher is built, and its physical expressions are evaluated per request: the
//! staging projection of each source (over a one-row batch made from the JSON record), and
//! the pair comparisons (over the record beside its candidates). Candidates come from an
//! in-memory index of every staged record by each blocking key; a block larger than
//! `unify.max_block_size` is skipped, as in batch.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::path::Path;
use std::sync::{Arc, RwLock};

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt32Array};
use arrow::datatypes::{DataType, Field, Int8Type, Schema, SchemaRef};
use datafusion::common::hash_utils::RandomState;
use datafusion::datasource::MemTable;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::{ExecutionPlan, PhysicalExpr};
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use serde::Serialize;

use super::config::{MatchMode, MatchRule, UnifySection};
use super::probabilistic::em::{cell, cell_label, size_bin};
use super::probabilistic::{self, ProbabilisticSection, Scoring};
use crate::config::ProjectConfig;
use crate::error::{Error, Result};
use crate::table_catalog::names;

/// A projection planned once and evaluated per batch: the projections of a physical plan
/// from its leaves up (DataFusion may split one SELECT in two, computing shared
/// subexpressions first).
struct Compiled {
    /// The columns the expressions read, in order (for a pair: the record's, then the
    /// candidate's).
    inputs: Vec<SchemaRef>,
    /// Each projection's expressions and output schema, innermost first.
    stages: Vec<(Vec<Arc<dyn PhysicalExpr>>, SchemaRef)>,
    names: Vec<String>,
}

impl Compiled {
    /// Plan `sql` (a SELECT of expressions over one table, or over a cross join of two) and
    /// keep its projections.
    async fn plan(ctx: &SessionContext, sql: &str) -> Result<Compiled> {
        let plan = ctx.sql(sql).await?.create_physical_plan().await?;
        let mut stages = Vec::new();
        let mut node = plan;
        let inputs = loop {
            if let Some(p) = node.downcast_ref::<ProjectionExec>() {
                stages.push((
                    p.expr().iter().map(|e| e.expr.clone()).collect(),
                    p.schema(),
                ));
                let next = p.input().clone();
                node = next;
                continue;
            }
            let children: Vec<Arc<dyn ExecutionPlan>> =
                node.children().into_iter().cloned().collect();
            match children.as_slice() {
                // Batching and repartitioning keep the schema.
                [one] if one.schema() == node.schema() => node = one.clone(),
                [l, r] => break vec![l.schema(), r.schema()],
                [] => break vec![node.schema()],
                _ => {
                    return Err(Error::Internal(format!(
                        "real-time match: unexpected plan for {sql}"
                    )))
                }
            }
        };
        stages.reverse();
        let names = stages
            .last()
            .map(|(_, s)| s.fields().iter().map(|f| f.name().clone()).collect())
            .ok_or_else(|| Error::Internal(format!("real-time match: no projection in {sql}")))?;
        Ok(Compiled {
            inputs,
            stages,
            names,
        })
    }

    /// Evaluate over `sides` (one batch per input; columns found by name), `rows` rows.
    fn eval(&self, sides: &[&RecordBatch], rows: usize) -> Result<Vec<ArrayRef>> {
        let mut fields = Vec::new();
        let mut columns = Vec::new();
        for (schema, batch) in self.inputs.iter().zip(sides) {
            for f in schema.fields() {
                let c = batch.column_by_name(f.name()).ok_or_else(|| {
                    Error::Internal(format!("real-time match: no column {}", f.name()))
                })?;
                let c = if c.data_type() == f.data_type() {
                    c.clone()
                } else {
                    arrow::compute::cast(c, f.data_type())?
                };
                fields.push(Field::new(f.name(), f.data_type().clone(), true));
                columns.push(c);
            }
        }
        let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(rows));
        let mut batch =
            RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), columns, &options)?;
        let mut out = Vec::new();
        for (exprs, schema) in &self.stages {
            out = exprs
                .iter()
                .map(|e| Ok(e.evaluate(&batch)?.into_array(rows)?))
                .collect::<Result<Vec<_>>>()?;
            let relaxed = Arc::new(Schema::new(
                schema
                    .fields()
                    .iter()
                    .zip(&out)
                    .map(|(f, c)| Field::new(f.name(), c.data_type().clone(), true))
                    .collect::<Vec<_>>(),
            ));
            batch = RecordBatch::try_new_with_options(relaxed, out.clone(), &options)?;
        }
        Ok(out)
    }
}

/// One blocking key's index: hash of the key values → staged record rows.
struct Block {
    columns: Vec<usize>,
    rows: HashMap<u64, Vec<u32>>,
}

/// Records committed through the matcher since it was built (visible to later matches).
#[derive(Default)]
struct Committed {
    records: Vec<RecordBatch>,
    customers: Vec<Option<String>>,
    blocks: Vec<HashMap<u64, Vec<u32>>>,
}

/// The matcher of one run.
pub struct Matcher {
    mode: MatchMode,
    section: ProbabilisticSection,
    scoring: Option<Scoring>,
    rules: Vec<MatchRule>,
    /// Exact name agreement weighed by rarity: field → value → tf.
    term_frequencies: HashMap<String, HashMap<String, f64>>,
    threshold_weight: f64,
    max_block_size: usize,
    staging: HashMap<String, Compiled>,
    /// The source columns a record may give, per source.
    source_schemas: HashMap<String, SchemaRef>,
    /// Staged records: uid, source, record_id and the matching fields.
    records: RecordBatch,
    customers: Vec<String>,
    blocks: Vec<Block>,
    pairs: Compiled,
    hasher: RandomState,
    committed: RwLock<Committed>,
    /// Where committed records are kept for the next run (`state/committed_<source>/`).
    workspace: std::path::PathBuf,
    /// Identifiers of committed records → their customer (`kind`, normalized value).
    identifiers: RwLock<HashMap<(String, String), String>>,
}

/// One candidate's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    pub uid: String,
    pub customer_id: Option<String>,
    /// Match probability (probabilistic) or the rule's score.
    pub score: f64,
    /// Match weight in bits (probabilistic).
    pub match_weight: Option<f64>,
    pub matched: bool,
    /// The rule that matched, or `probabilistic`.
    pub rule: Option<String>,
    /// Per comparison: field, level label and weight (probabilistic), or the rule checks.
    pub explanation: Vec<Explained>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Explained {
    pub field: String,
    pub level: String,
    pub weight: f64,
}

/// Candidate records of one kind (stored by the run, or committed since) and their customers.
type Side = (RecordBatch, Vec<Option<String>>);

/// Per blocking rule, for one record: whether its key's block is over `max_block_size`
/// (skipped, as the batch run skips it) and the size bin of its key, the record counted in.
struct KeySizes {
    oversized: Vec<bool>,
    bins: Vec<usize>,
}

/// Whether one of rows `rows` of `batch` (staged records, uid first) is record `uid`.
fn holds_uid(batch: &RecordBatch, rows: &[u32], uid: &str) -> Result<bool> {
    if rows.is_empty() {
        return Ok(false);
    }
    let taken = arrow::compute::take(batch.column(0), &UInt32Array::from(rows.to_vec()), None)?;
    let uids = arrow::compute::cast(&taken, &DataType::Utf8)?;
    let uids = uids.as_string::<i32>();
    Ok(uids.iter().any(|u| u == Some(uid)))
}

/// The answer for one record.
#[derive(Debug, Clone, Serialize)]
pub struct MatchResult {
    /// `matched` or `new`.
    pub status: &'static str,
    pub customer_id: Option<String>,
    pub score: Option<f64>,
    /// Other customers the record also matches: a batch run would merge them.
    pub also_matches: Vec<String>,
    /// The staged (normalized) record.
    pub staged: serde_json::Map<String, serde_json::Value>,
    /// Candidates by score, best first (at most 10).
    pub candidates: Vec<Candidate>,
    /// Whether the record was committed.
    pub committed: bool,
}

const KEEP: &[&str] = &["uid", "source", "record_id"];

impl Matcher {
    /// Build the matcher of the run in `run_dir` for `cfg`.
    pub async fn build(cfg: &ProjectConfig, run_dir: &Path) -> Result<Matcher> {
        let started = std::time::Instant::now();
        let unify = cfg
            .unify
            .clone()
            .ok_or_else(|| Error::NotFound("real-time match needs a [unify] section".into()))?;
        let tables = run_dir.join("tables");
        let read = |t: &str| tables.join(format!("{t}.parquet"));
        if !read(names::UNIFY_RECORDS).is_file() {
            return Err(Error::NotFound(format!(
                "run {} has no unify_records table: run `panorama run` first",
                run_dir.display()
            )));
        }
        let ctx = crate::engine::base_context();
        ctx.sql("SET datafusion.execution.parquet.schema_force_view_types = false")
            .await?
            .collect()
            .await?;
        for t in [names::UNIFY_RECORDS, names::CUSTOMER_LINKS] {
            ctx.register_parquet(
                t,
                read(t).to_string_lossy().as_ref(),
                ParquetReadOptions::default(),
            )
            .await?;
        }
        let (records, customers) = load_records(&ctx, &unify).await?;

        let mode = unify.match_mode();
        let mut section = unify.probabilistic_section();
        let weights = match mode {
            MatchMode::Probabilistic => {
                let w = crate::workspace::read_parquet_file(&read(names::MATCH_WEIGHTS))?;
                probabilistic::adopt_plan(&mut section, &w)?;
                w
            }
            MatchMode::Rules => Vec::new(),
        };
        let rules = super::rules(cfg);
        let keys: Vec<Vec<String>> = match mode {
            MatchMode::Rules => rules
                .iter()
                .map(|r| {
                    super::matching::blocking_key(r)
                        .iter()
                        .map(|k| k.to_string())
                        .collect()
                })
                .collect(),
            MatchMode::Probabilistic => section.blocking.clone(),
        };
        let hasher = RandomState::with_seed(7);
        let blocks = index_blocks(&records, &keys, &hasher)?;

        let (scoring, term_frequencies) = match mode {
            MatchMode::Probabilistic => {
                let scoring = Scoring::from_weights(&section, &weights)?;
                let tf = term_frequencies(&ctx, &read(names::MATCH_TERM_FREQUENCIES)).await?;
                (Some(scoring), tf)
            }
            MatchMode::Rules => (None, HashMap::new()),
        };

        let pairs = plan_pairs(&records.schema(), &keys, scoring.as_ref(), &rules).await?;

        let (staging, source_schemas) = plan_staging(cfg, &unify, run_dir).await?;
        let threshold_weight = probabilistic::threshold_weight(&section);
        tracing::info!(
            records = records.num_rows(),
            seconds = started.elapsed().as_secs_f64(),
            "real-time matcher built"
        );
        Ok(Matcher {
            mode,
            section,
            scoring,
            rules,
            term_frequencies,
            threshold_weight,
            max_block_size: unify.max_block_size,
            staging,
            source_schemas,
            records,
            customers,
            blocks,
            pairs,
            hasher,
            committed: RwLock::new(Committed::default()),
            workspace: cfg.workspace_dir(),
            identifiers: RwLock::new(HashMap::new()),
        })
    }

    /// The sources a record can be matched from.
    pub fn sources(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.staging.keys().map(|s| s.as_str()).collect();
        v.sort();
        v
    }

    /// Stage one record given as a JSON object of the source's columns.
    pub fn stage(
        &self,
        source: &str,
        record: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<RecordBatch> {
        // A source named in the request body: the request is wrong (400), not a resource
        // missing from the URL.
        let compiled = self.staging.get(source).ok_or_else(|| {
            Error::InvalidRequest(format!(
                "no mapped source `{source}` (sources: {})",
                self.sources().join(", ")
            ))
        })?;
        let schema = &self.source_schemas[source];
        if let Some(unknown) = record.keys().find(|k| schema.field_with_name(k).is_err()) {
            return Err(Error::InvalidRequest(format!(
                "source `{source}` has no column `{unknown}` (columns: {})",
                schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        // Only the columns staging reads, typed as the source loads them.
        let typed = typed_row(&compiled.inputs[0], record)?;
        let staged = compiled.eval(&[&typed], 1)?;
        let fields: Vec<Field> = compiled
            .names
            .iter()
            .zip(&staged)
            .map(|(n, c)| Field::new(n, c.data_type().clone(), true))
            .collect();
        Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), staged)?)
    }

    /// The stored and committed records that share a blocking key with `one` (per side: the
    /// records and their customers), and which blocks were over `max_block_size`.
    fn candidate_sides(&self, one: &RecordBatch, uid: &str) -> Result<(Vec<Side>, KeySizes)> {
        let committed = self.committed.read().expect("not poisoned");
        // Candidates by every blocking key; the record itself (an update) is not one.
        let mut base: Vec<u32> = Vec::new();
        let mut extra: Vec<u32> = Vec::new();
        let mut sizes = KeySizes {
            oversized: vec![false; self.blocks.len()],
            bins: vec![0; self.blocks.len()],
        };
        for (b, block) in self.blocks.iter().enumerate() {
            let Some(h) = key_hash(&self.hasher, one, &block.columns, 0) else {
                continue;
            };
            let found = block.rows.get(&h).map(|v| v.as_slice()).unwrap_or(&[]);
            let more = committed
                .blocks
                .get(b)
                .and_then(|m| m.get(&h))
                .map(|v| v.as_slice())
                .unwrap_or(&[]);
            // The batch run would see this block with the record in it.
            if found.len() + more.len() + 1 > self.max_block_size {
                sizes.oversized[b] = true;
                continue;
            }
            // ... once: an update's previous version is in the block already.
            let mut own = holds_uid(&self.records, found, uid)?;
            for i in more {
                own |= holds_uid(&committed.records[*i as usize], &[0], uid)?;
            }
            sizes.bins[b] = size_bin((found.len() + more.len() + usize::from(!own)) as u64);
            base.extend_from_slice(found);
            extra.extend_from_slice(more);
        }
        base.sort_unstable();
        base.dedup();
        extra.sort_unstable();
        extra.dedup();
        let mut sides: Vec<Side> = Vec::new();
        if !base.is_empty() {
            let idx = UInt32Array::from(base.clone());
            let taken = arrow::compute::take_record_batch(&self.records, &idx)?;
            let cust = base
                .iter()
                .map(|i| Some(self.customers[*i as usize].clone()))
                .collect();
            sides.push((taken, cust));
        }
        if !extra.is_empty() {
            // Each committed record is a one-row batch: take just the candidates' rows, not
            // every commit on every request.
            let rows = extra.iter().map(|i| &committed.records[*i as usize]);
            sides.push((
                arrow::compute::concat_batches(&self.records.schema(), rows)?,
                extra
                    .iter()
                    .map(|i| committed.customers[*i as usize].clone())
                    .collect(),
            ));
        }
        Ok((sides, sizes))
    }

    /// Keep a matched record for the next run, learn its identifiers, and let later matches
    /// see it.
    fn commit_matched(
        &self,
        source: &str,
        record: &serde_json::Map<String, serde_json::Value>,
        uid: &str,
        one: &RecordBatch,
        result: &MatchResult,
    ) -> Result<()> {
        // Kept for the next run first: a record the server took must not be lost.
        let row = typed_row(&self.source_schemas[source], record)?;
        crate::state::append(&self.workspace, &committed_table(source), &row)?;
        let customer = result.customer_id.clone().unwrap_or(format!("new:{uid}"));
        if result.customer_id.is_some() {
            let mut ids = self.identifiers.write().expect("not poisoned");
            for kind in ["email", "phone"] {
                if let Some(v) = result.staged.get(kind).and_then(|v| v.as_str()) {
                    ids.insert((kind.to_string(), v.to_string()), customer.clone());
                }
            }
            ids.insert(("record".into(), uid.to_string()), customer.clone());
        }
        self.commit(one, Some(customer))
    }

    /// Match one record; with `commit`, later matches see it.
    pub fn match_record(
        &self,
        source: &str,
        record: &serde_json::Map<String, serde_json::Value>,
        commit: bool,
    ) -> Result<MatchResult> {
        let staged = self.stage(source, record)?;
        let uid = staged
            .column_by_name("uid")
            .map(|c| arrow::compute::cast(c, &DataType::Utf8))
            .transpose()?
            .filter(|c| c.is_valid(0))
            .map(|c| c.as_string::<i32>().value(0).to_string())
            .ok_or_else(|| Error::InvalidRequest("the record has no record id".into()))?;
        // The staged record in the stored records' shape.
        let one = RecordBatch::try_new(
            self.records.schema(),
            self.records
                .schema()
                .fields()
                .iter()
                .map(|f| {
                    let c = staged
                        .column_by_name(f.name())
                        .ok_or_else(|| Error::Internal(format!("staging gave no {}", f.name())))?;
                    Ok(arrow::compute::cast(c, f.data_type())?)
                })
                .collect::<Result<Vec<_>>>()?,
        )?;
        let (sides, sizes) = self.candidate_sides(&one, &uid)?;
        let mut candidates = Vec::new();
        for (right, custs) in &sides {
            let n = right.num_rows();
            let left_idx = UInt32Array::from(vec![0u32; n]);
            let left = arrow::compute::take_record_batch(&one, &left_idx)?;
            let out = self.pairs.eval(&[&left, right], n)?;
            let uids = arrow::compute::cast(right.column(0), &DataType::Utf8)?;
            let uids = uids.as_string::<i32>();
            let sources = arrow::compute::cast(right.column(1), &DataType::Utf8)?;
            let sources = sources.as_string::<i32>();
            for (i, cust) in custs.iter().enumerate() {
                if uids.value(i) == uid {
                    continue;
                }
                let one_source = sources.value(i) == source;
                if let Some(c) = self.verdict(&out, i, &sizes, one_source) {
                    candidates.push(Candidate {
                        uid: uids.value(i).to_string(),
                        customer_id: cust.clone(),
                        ..c
                    });
                }
            }
        }
        candidates.sort_by(|a, b| {
            b.matched
                .cmp(&a.matched)
                .then(b.score.total_cmp(&a.score))
                .then(a.uid.cmp(&b.uid))
        });
        let mut matched: Vec<String> = Vec::new();
        for c in candidates.iter().filter(|c| c.matched) {
            if let Some(id) = &c.customer_id {
                if !matched.contains(id) {
                    matched.push(id.clone());
                }
            }
        }
        let best = candidates.first().filter(|c| c.matched);
        let result = MatchResult {
            status: if best.is_some() { "matched" } else { "new" },
            customer_id: best.and_then(|c| c.customer_id.clone()),
            score: best.map(|c| c.score),
            also_matches: matched.iter().skip(1).cloned().collect(),
            staged: crate::output::row_object(&staged, 0),
            candidates: candidates.into_iter().take(10).collect(),
            committed: commit,
        };
        if commit {
            self.commit_matched(source, record, &uid, &one, &result)?;
        }
        Ok(result)
    }

    /// The customer a committed record with this identifier (`email`, `phone` or `record`
    /// as `source:id`, normalized) was matched to.
    pub fn committed_customer(&self, kind: &str, value: &str) -> Option<String> {
        self.identifiers
            .read()
            .expect("not poisoned")
            .get(&(kind.to_string(), value.to_string()))
            .cloned()
    }

    fn commit(&self, one: &RecordBatch, customer: Option<String>) -> Result<()> {
        let mut c = self.committed.write().expect("not poisoned");
        let row = c.customers.len() as u32;
        if c.blocks.len() < self.blocks.len() {
            c.blocks.resize_with(self.blocks.len(), HashMap::new);
        }
        for (b, block) in self.blocks.iter().enumerate() {
            if let Some(h) = key_hash(&self.hasher, one, &block.columns, 0) {
                c.blocks[b].entry(h).or_default().push(row);
            }
        }
        c.records.push(one.clone());
        c.customers.push(customer);
        Ok(())
    }

    /// The verdict on pair row `i` of the pair projection's output.
    /// `one_source`: the two records are of one source (a prior cell of its own, [`cell`]).
    fn verdict(
        &self,
        out: &[ArrayRef],
        i: usize,
        sizes: &KeySizes,
        one_source: bool,
    ) -> Option<Candidate> {
        let oversized = &sizes.oversized;
        let nblocks = self.blocks.len();
        let agree = |b: usize| out[b].as_boolean().value(i);
        match (&self.scoring, self.mode) {
            (Some(s), MatchMode::Probabilistic) => {
                // Scored by the first rule that finds the pair; not at all if its block is skipped.
                let first = (0..nblocks).find(|b| agree(*b))?;
                if oversized[first] {
                    return None;
                }
                let c = cell(sizes.bins[first], one_source);
                let mut w = s.model.prior_at(first, c);
                let mut explanation = vec![Explained {
                    field: "prior".into(),
                    level: format!(
                        "{}, {}",
                        probabilistic::block_name(&self.section.blocking[first]),
                        cell_label(c)
                    ),
                    weight: w,
                }];
                let mut levels: HashMap<&str, Option<usize>> = HashMap::new();
                let ncomp = s.comparisons.len();
                for (c, comp) in s.comparisons.iter().enumerate() {
                    let g = out[nblocks + c].as_primitive::<Int8Type>();
                    let level = g.is_valid(i).then(|| g.value(i) as usize);
                    levels.insert(comp.field.as_str(), level);
                    let Some(level) = level else {
                        // The pair projection holds levels, not values: a city may be
                        // missing on a side or left out where the postcodes differ.
                        let level = match &comp.unless {
                            Some(unless) => format!("missing, or {}", unless.reason),
                            None => "missing".into(),
                        };
                        explanation.push(Explained {
                            field: comp.field.clone(),
                            level,
                            weight: 0.0,
                        });
                        continue;
                    };
                    let top = comp.level_count() - 1;
                    let tf = s
                        .term_frequency
                        .iter()
                        .position(|f| *f == comp.field)
                        .and_then(|t| {
                            let v = out[nblocks + ncomp + t].as_string::<i32>();
                            v.is_valid(i).then(|| v.value(i))
                        })
                        .and_then(|v| self.term_frequencies.get(&comp.field)?.get(v).copied())
                        .filter(|tf| *tf > 0.0);
                    let weight = if s.skip[first][c] {
                        0.0
                    } else if let (true, Some(tf)) = (level == top, tf) {
                        (s.model.m[c][top] / tf).log2()
                    } else {
                        s.model.weight(c, level)
                    };
                    w += weight;
                    explanation.push(Explained {
                        field: comp.field.clone(),
                        level: comp.label(level).into(),
                        weight,
                    });
                }
                let vetoed = self
                    .section
                    .vetoes()
                    .iter()
                    .any(|c| c.holds(|f| levels.get(f).copied().flatten()));
                Some(Candidate {
                    uid: String::new(),
                    customer_id: None,
                    score: probabilistic::probability(w),
                    match_weight: Some(w),
                    matched: !vetoed && w >= self.threshold_weight,
                    rule: Some(if vetoed { "vetoed" } else { "probabilistic" }.into()),
                    explanation,
                })
            }
            _ => {
                // The first rule (in order) that holds, if its block is not skipped.
                let hit = (0..self.rules.len()).find_map(|r| {
                    let s = out[nblocks + r].as_primitive::<arrow::datatypes::Float64Type>();
                    (s.is_valid(i) && !oversized[r]).then(|| (r, s.value(i)))
                });
                let any = (0..nblocks).any(agree);
                if hit.is_none() && !any {
                    return None;
                }
                Some(Candidate {
                    uid: String::new(),
                    customer_id: None,
                    score: hit.map_or(0.0, |(_, s)| s),
                    match_weight: None,
                    matched: hit.is_some(),
                    rule: hit.map(|(r, _)| self.rules[r].name.clone()),
                    explanation: self
                        .rules
                        .iter()
                        .enumerate()
                        .map(|(r, rule)| {
                            let s =
                                out[nblocks + r].as_primitive::<arrow::datatypes::Float64Type>();
                            Explained {
                                field: rule.name.clone(),
                                level: if s.is_valid(i) { "holds" } else { "fails" }.into(),
                                weight: if s.is_valid(i) { s.value(i) } else { 0.0 },
                            }
                        })
                        .collect(),
                })
            }
        }
    }
}

/// One row of `schema` from a JSON object: values as text, cast to the column types (a value
/// that does not cast is an error naming the column); missing columns are NULL.
fn typed_row(
    schema: &SchemaRef,
    record: &serde_json::Map<String, serde_json::Value>,
) -> Result<RecordBatch> {
    let typed: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| {
            let v = match record.get(f.name()) {
                None | Some(serde_json::Value::Null) => None,
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(other) => Some(other.to_string()),
            };
            let text: ArrayRef = Arc::new(arrow::array::StringArray::from(vec![v]));
            arrow::compute::cast_with_options(
                &text,
                f.data_type(),
                &arrow::compute::CastOptions {
                    safe: false,
                    ..Default::default()
                },
            )
            .map_err(|e| Error::InvalidRequest(format!("column `{}`: {e}", f.name())))
        })
        .collect::<Result<_>>()?;
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| Field::new(f.name(), f.data_type().clone(), true))
        .collect();
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), typed)?)
}

/// Hash of a record's key values, None when any is missing (NULL keys never block).
fn key_hash(
    hasher: &RandomState,
    batch: &RecordBatch,
    columns: &[usize],
    row: usize,
) -> Option<u64> {
    let mut h = hasher.build_hasher();
    for c in columns {
        let col = batch.column(*c);
        if col.is_null(row) {
            return None;
        }
        match col.data_type() {
            DataType::Utf8 => col.as_string::<i32>().value(row).hash(&mut h),
            DataType::LargeUtf8 => col.as_string::<i64>().value(row).hash(&mut h),
            DataType::Date32 => col
                .as_primitive::<arrow::datatypes::Date32Type>()
                .value(row)
                .hash(&mut h),
            _ => {
                let s = arrow::compute::cast(&col.slice(row, 1), &DataType::Utf8).ok()?;
                s.as_string::<i32>().value(0).hash(&mut h);
            }
        }
    }
    Some(h.finish())
}

pub use crate::table_catalog::committed_table;

/// A run's matcher, built on first use (reading a million staged records takes seconds, and
/// most sessions never match).
pub struct MatcherCell {
    cfg: Arc<ProjectConfig>,
    run_dir: std::path::PathBuf,
    cell: tokio::sync::OnceCell<Arc<Matcher>>,
}

impl std::fmt::Debug for MatcherCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MatcherCell")
            .field("run_dir", &self.run_dir)
            .field("built", &self.cell.initialized())
            .finish()
    }
}

impl MatcherCell {
    pub fn new(cfg: Arc<ProjectConfig>, run_dir: std::path::PathBuf) -> Self {
        MatcherCell {
            cfg,
            run_dir,
            cell: tokio::sync::OnceCell::new(),
        }
    }

    /// The matcher if it is built (never builds it).
    pub fn built(&self) -> Option<Arc<Matcher>> {
        self.cell.get().cloned()
    }

    pub async fn get(&self) -> Result<Arc<Matcher>> {
        self.cell
            .get_or_try_init(|| async {
                Matcher::build(&self.cfg, &self.run_dir).await.map(Arc::new)
            })
            .await
            .cloned()
    }
}

/// The rows of `match_record(...)`: one per candidate, best first (one row with no candidate
/// when there is none).
pub fn result_batch(r: &MatchResult) -> Result<RecordBatch> {
    use arrow::array::{BooleanArray, Float64Array, StringArray, UInt32Array};
    let schema = result_schema();
    let n = r.candidates.len().max(1);
    let c = |f: &dyn Fn(&Candidate) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from(
            (0..n)
                .map(|i| r.candidates.get(i).and_then(f))
                .collect::<Vec<_>>(),
        ))
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![Some(r.status); n])),
        Arc::new(StringArray::from(vec![r.customer_id.clone(); n])),
        Arc::new(Float64Array::from(vec![r.score; n])),
        Arc::new(UInt32Array::from(
            (0..n)
                .map(|i| (i < r.candidates.len()).then_some(i as u32 + 1))
                .collect::<Vec<_>>(),
        )),
        c(&|c| Some(c.uid.clone())),
        c(&|c| c.customer_id.clone()),
        Arc::new(Float64Array::from(
            (0..n)
                .map(|i| r.candidates.get(i).map(|c| c.score))
                .collect::<Vec<_>>(),
        )),
        Arc::new(Float64Array::from(
            (0..n)
                .map(|i| r.candidates.get(i).and_then(|c| c.match_weight))
                .collect::<Vec<_>>(),
        )),
        Arc::new(BooleanArray::from(
            (0..n)
                .map(|i| r.candidates.get(i).map(|c| c.matched))
                .collect::<Vec<_>>(),
        )),
        c(&|c| c.rule.clone()),
        c(&|c| {
            Some(
                c.explanation
                    .iter()
                    .map(|e| format!("{} {} ({:+.2})", e.field, e.level, e.weight))
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        }),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}

pub fn result_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("status", DataType::Utf8, false),
        Field::new("customer_id", DataType::Utf8, true),
        Field::new("score", DataType::Float64, true),
        Field::new("rank", DataType::UInt32, true),
        Field::new("candidate_uid", DataType::Utf8, true),
        Field::new("candidate_customer_id", DataType::Utf8, true),
        Field::new("candidate_score", DataType::Float64, true),
        Field::new("match_weight", DataType::Float64, true),
        Field::new("matched", DataType::Boolean, true),
        Field::new("rule", DataType::Utf8, true),
        Field::new("explanation", DataType::Utf8, true),
    ]))
}

/// Every staged record of the run with its customer id (`""` when unlinked).
async fn load_records(
    ctx: &SessionContext,
    unify: &UnifySection,
) -> Result<(RecordBatch, Vec<String>)> {
    let mut cols: Vec<String> = KEEP.iter().map(|c| format!("r.{c}")).collect();
    cols.extend(
        super::fields::matching_columns(unify)
            .iter()
            .filter(|c| !KEEP.contains(&c.as_str()))
            .map(|f| format!("r.{f}")),
    );
    let batches = ctx
        .sql(&format!(
            "SELECT {}, l.customer_id FROM unify_records r LEFT JOIN customer_links l ON l.uid = r.uid",
            cols.join(", ")
        ))
        .await?
        .collect()
        .await?;
    let schema = batches
        .first()
        .map(|b| b.schema())
        .unwrap_or_else(|| Arc::new(Schema::empty()));
    let all = arrow::compute::concat_batches(&schema, &batches)?;
    drop(batches);
    let customer = all.column(all.num_columns() - 1).clone();
    let customer = arrow::compute::cast(&customer, &DataType::Utf8)?;
    let customers: Vec<String> = customer
        .as_string::<i32>()
        .iter()
        .map(|c| c.unwrap_or_default().to_string())
        .collect();
    let records = all.project(&(0..all.num_columns() - 1).collect::<Vec<_>>())?;
    Ok((records, customers))
}

/// Each blocking key's index: the records by the hash of their key values.
fn index_blocks(
    records: &RecordBatch,
    keys: &[Vec<String>],
    hasher: &RandomState,
) -> Result<Vec<Block>> {
    let mut blocks = Vec::new();
    for key in keys {
        let columns =
            key.iter()
                .map(|k| {
                    records.schema().index_of(k).map_err(|_| {
                        Error::Internal(format!("real-time match: no staged field {k}"))
                    })
                })
                .collect::<Result<Vec<_>>>()?;
        let mut rows: HashMap<u64, Vec<u32>> = HashMap::new();
        for i in 0..records.num_rows() {
            if let Some(h) = key_hash(hasher, records, &columns, i) {
                rows.entry(h).or_default().push(i as u32);
            }
        }
        blocks.push(Block { columns, rows });
    }
    Ok(blocks)
}

/// The run's term frequencies (`match_term_frequencies`), by field and value; none without
/// the file.
async fn term_frequencies(
    ctx: &SessionContext,
    path: &Path,
) -> Result<HashMap<String, HashMap<String, f64>>> {
    let mut tf: HashMap<String, HashMap<String, f64>> = HashMap::new();
    if !path.is_file() {
        return Ok(tf);
    }
    let rows = ctx
        .read_parquet(
            path.to_string_lossy().to_string(),
            ParquetReadOptions::default(),
        )
        .await?
        .collect()
        .await?;
    for b in &rows {
        let f = arrow::compute::cast(b.column(0), &DataType::Utf8)?;
        let v = arrow::compute::cast(b.column(1), &DataType::Utf8)?;
        let t = b.column(2).as_primitive::<arrow::datatypes::Float64Type>();
        let (f, v) = (f.as_string::<i32>(), v.as_string::<i32>());
        for i in 0..b.num_rows() {
            if v.is_valid(i) {
                tf.entry(f.value(i).to_string())
                    .or_default()
                    .insert(v.value(i).to_string(), t.value(i));
            }
        }
    }
    Ok(tf)
}

/// The pair projection (block agreement, comparison levels or rule scores of a left and a
/// right record), planned over empty tables of the staged shape.
async fn plan_pairs(
    schema: &SchemaRef,
    keys: &[Vec<String>],
    scoring: Option<&Scoring>,
    rules: &[super::config::MatchRule],
) -> Result<Compiled> {
    let pctx = crate::engine::base_context();
    let empty = Arc::new(MemTable::try_new(schema.clone(), vec![vec![]])?);
    pctx.register_table("match_left", empty.clone())?;
    pctx.register_table("match_right", empty)?;
    let mut exprs: Vec<String> = Vec::new();
    for (b, key) in keys.iter().enumerate() {
        let same: Vec<String> = key.iter().map(|k| format!("l.{k} = r.{k}")).collect();
        exprs.push(format!(
            "coalesce({}, false) AS agree_{b}",
            same.join(" AND ")
        ));
    }
    match scoring {
        Some(s) => {
            for c in &s.comparisons {
                exprs.push(format!("{} AS {}", c.level_sql("l", "r"), c.column()));
            }
            for f in &s.term_frequency {
                exprs.push(format!(
                    "CASE WHEN l.{f} = r.{f} THEN CAST(l.{f} AS VARCHAR) END AS tfv_{f}"
                ));
            }
        }
        _ => {
            for (i, rule) in rules.iter().enumerate() {
                let key = super::matching::blocking_key(rule);
                let mut conds: Vec<String> = key.iter().map(|k| format!("l.{k} = r.{k}")).collect();
                let (more, score) = super::matching::rule_conditions(rule);
                conds.extend(more);
                exprs.push(format!(
                    "CASE WHEN coalesce({}, false) THEN CAST({score} AS DOUBLE) END AS rule_{i}",
                    conds.join(" AND ")
                ));
            }
        }
    }
    Compiled::plan(
        &pctx,
        &format!(
            "SELECT {} FROM match_left l CROSS JOIN match_right r",
            exprs.join(", ")
        ),
    )
    .await
}

/// Staging per mapped source, planned over an empty table of the run's source shape: a
/// record posted from a source is staged as a run stages that source's rows.
async fn plan_staging(
    cfg: &ProjectConfig,
    unify: &UnifySection,
    run_dir: &Path,
) -> Result<(HashMap<String, Compiled>, HashMap<String, SchemaRef>)> {
    let mut staging = HashMap::new();
    let mut source_schemas = HashMap::new();
    for (i, (source, map)) in unify.sources.iter().enumerate() {
        let src = cfg
            .sources
            .get(source)
            .ok_or_else(|| Error::invalid(format!("unify.sources.{source}"), "no such source"))?;
        let dir = run_dir.join("sources").join(source);
        let sctx = crate::engine::base_context();
        sctx.register_parquet(
            source,
            dir.to_string_lossy().as_ref(),
            ParquetReadOptions::default(),
        )
        .await?;
        let schema: SchemaRef = Arc::new(
            sctx.table(source.as_str())
                .await?
                .schema()
                .as_arrow()
                .clone(),
        );
        let _ = sctx.deregister_table(source.as_str());
        sctx.register_table(
            source.as_str(),
            Arc::new(MemTable::try_new(schema.clone(), vec![vec![]])?),
        )?;
        let map = map.get_ref();
        let record_id = super::record_id_column(cfg, src, source, &map.record_id, "unify.sources")?;
        let priority = map.priority.unwrap_or(i as i64 + 1);
        let sql = super::staging::source_select(
            source,
            map,
            &record_id,
            priority,
            &unify.custom_fields(),
        )?;
        staging.insert(source.clone(), Compiled::plan(&sctx, &sql).await?);
        source_schemas.insert(source.clone(), schema);
    }
    Ok((staging, source_schemas))
}
