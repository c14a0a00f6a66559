//! `panorama unify plan`: what a unification of the current config would do, without a run.
//!
//! It stages the current run's sources with the config as it is now, then blocks, trains and
//! learns vetoes exactly as a run does (`probabilistic::plan`), and reports: how filled and
//! how varied each field is per source, the blocking rules (chosen from the data, with their
//! estimated pairs and recall, and what the budget left out), which rules can find pairs
//! between each pair of sources, the vetoes and the evidence each field carries. Nothing is
//! written to the run; the scratch files go when it ends.

use std::sync::Arc;

use arrow::array::{Float64Builder, Int64Builder, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema};

use super::config::MatchMode;
use super::probabilistic::{self, block_name};
use super::staging::literal;
use crate::config::ProjectConfig;
use crate::error::{Error, Result};
use crate::table_catalog::names;

/// The plan: a headline and titled tables.
pub struct UnifyPlan {
    pub summary: Vec<String>,
    pub tables: Vec<(String, RecordBatch)>,
}

/// Plan the unification of `cfg` over the sources of the current run.
pub async fn plan(cfg: &ProjectConfig) -> Result<UnifyPlan> {
    let unify_cfg = cfg
        .unify
        .clone()
        .ok_or_else(|| Error::NotFound("the config has no [unify] section".into()))?;
    let ws = crate::workspace::Workspace::new(cfg.workspace_dir());
    let run_id = ws
        .current_run()?
        .ok_or_else(|| Error::NoRun(cfg.root.clone()))?;
    let manifest = ws.read_manifest(&run_id)?;
    let ctx = crate::run_context::new_context();
    crate::run_context::register_sources(&ctx, &ws.run_dir(&run_id), &manifest.sources).await?;
    let scratch = cfg
        .workspace_dir()
        .join("tmp")
        .join(format!("unify-plan-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(|e| Error::io("cannot create", &scratch, e))?;
    let result = plan_in(cfg, &unify_cfg, &ctx, &run_id, &scratch).await;
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

pub(crate) async fn plan_in(
    cfg: &ProjectConfig,
    unify_cfg: &super::config::UnifySection,
    ctx: &datafusion::prelude::SessionContext,
    run_id: &str,
    scratch: &std::path::Path,
) -> Result<UnifyPlan> {
    let _ = ctx.deregister_table(names::UNIFY_RECORDS);
    let records = super::write_query(
        ctx,
        &super::staging_sql(cfg)?,
        scratch,
        names::UNIFY_RECORDS,
    )
    .await?;
    super::register_written(ctx, scratch, names::UNIFY_RECORDS).await?;
    let mut summary = vec![format!(
        "{records} records staged from the sources of run {run_id}, with the config as it is now"
    )];
    let mut tables = Vec::new();

    let mode = unify_cfg.match_mode();
    let section = unify_cfg.probabilistic_section();
    let fields: Vec<String> = match mode {
        MatchMode::Probabilistic => section.comparisons().into_iter().map(|c| c.field).collect(),
        MatchMode::Rules => {
            let mut f: Vec<String> = super::rules(cfg)
                .iter()
                .flat_map(|r| r.conditions.iter().map(|c| c.field.clone()))
                .collect();
            f.sort();
            f.dedup();
            f
        }
    };
    tables.push((
        "Fields by source: share of records with a value, distinct values".to_string(),
        field_stats(ctx, &fields).await?,
    ));
    if mode == MatchMode::Rules {
        summary.push(
            "rules mode: each rule compares the records that agree exactly on its exact fields"
                .into(),
        );
        return Ok(UnifyPlan { summary, tables });
    }

    let mut report = super::UnifyReport::default();
    let planned = probabilistic::plan(
        ctx,
        scratch,
        &section,
        unify_cfg.max_block_size,
        &mut report,
    )
    .await?;
    summary.push(format!(
        "blocking {}: {} rule(s), {} candidate pairs ({:.1} per record){}",
        if planned.blocking.is_some() {
            "chosen from the data"
        } else {
            "as configured"
        },
        planned.section.blocking.len(),
        report.candidate_pairs,
        report.candidate_pairs as f64 / records.max(1) as f64,
        planned
            .blocking
            .as_ref()
            .and_then(|p| p.estimated_recall)
            .map(|r| format!(", estimated recall {r:.4}"))
            .unwrap_or_default()
    ));
    summary.push(format!(
        "model: EM {} after {} iterations",
        if planned.model.converged {
            "converged"
        } else {
            "did not converge"
        },
        planned.model.iterations
    ));
    tables.push((
        "Blocking rules".to_string(),
        blocking_table(&planned, &report)?,
    ));
    tables.push((
        "Which rules can find pairs between sources (fields filled on both sides)".to_string(),
        coverage(ctx, &planned.section.blocking).await?,
    ));
    tables.push(("Vetoes".to_string(), vetoes_table(&planned)?));
    if !planned.variants.is_empty() {
        tables.push((
            "Given-name variants learned from the data (persons seen under both names, and how many chance explains)"
                .to_string(),
            variants_table(&planned.variants)?,
        ));
    }
    if !planned.dependence.is_empty() {
        tables.push((
            "Address parts: for rules on one part, the share of their non-matching pairs that agree on another (below a half, that part is compared; else the rule's prior stands in for it)"
                .to_string(),
            dependence_table(&planned.dependence)?,
        ));
    }
    tables.push((
        "Evidence per field: match weight (bits) of agreeing exactly and of disagreeing"
            .to_string(),
        evidence_table(&planned)?,
    ));
    Ok(UnifyPlan { summary, tables })
}

/// Per source and field: share filled and distinct values.
async fn field_stats(
    ctx: &datafusion::prelude::SessionContext,
    fields: &[String],
) -> Result<RecordBatch> {
    let parts: Vec<String> = fields
        .iter()
        .map(|f| {
            format!(
                "SELECT source, {lit} AS field, round(CAST(count({f}) AS DOUBLE) / count(*), 4) AS filled, \
                 count(DISTINCT {f}) AS distinct_values FROM unify_records GROUP BY source",
                lit = literal(f)
            )
        })
        .collect();
    let sql = format!(
        "SELECT * FROM ({}) ORDER BY source, field",
        parts.join(" UNION ALL ")
    );
    super::one_batch(ctx, &sql, "fields by source").await
}

/// Per pair of sources (each with itself too): the blocking rules whose fields both sides
/// fill, and the pairs those rules would give between them.
async fn coverage(
    ctx: &datafusion::prelude::SessionContext,
    blocking: &[Vec<String>],
) -> Result<RecordBatch> {
    let batches = ctx
        .sql("SELECT DISTINCT CAST(source AS VARCHAR) FROM unify_records ORDER BY 1")
        .await?
        .collect()
        .await?;
    let mut sources = Vec::new();
    for b in &batches {
        let col = arrow::compute::cast(b.column(0), &DataType::Utf8)?;
        let col = arrow::array::AsArray::as_string::<i32>(&col);
        sources.extend(col.iter().flatten().map(str::to_string));
    }
    let (mut left, mut right, mut rules, mut missing) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    let mut fill = std::collections::BTreeMap::new();
    for key in blocking {
        for s in &sources {
            let cond = key
                .iter()
                .map(|f| format!("{f} IS NOT NULL"))
                .collect::<Vec<_>>()
                .join(" AND ");
            let n = super::count(
                ctx,
                &format!(
                    "SELECT count(*) FROM unify_records WHERE source = {} AND {cond}",
                    literal(s)
                ),
                "coverage",
            )
            .await?;
            fill.insert((block_name(key), s.clone()), n);
        }
    }
    for (i, a) in sources.iter().enumerate() {
        for b in &sources[i..] {
            let (mut able, mut unable) = (Vec::new(), Vec::new());
            for key in blocking {
                let name = block_name(key);
                let both = fill.get(&(name.clone(), a.clone())).copied().unwrap_or(0) > 0
                    && fill.get(&(name.clone(), b.clone())).copied().unwrap_or(0) > 0;
                if both {
                    able.push(name);
                } else {
                    unable.push(name);
                }
            }
            left.append_value(a);
            right.append_value(b);
            rules.append_value(if able.is_empty() {
                "none: no pair of these sources is compared".to_string()
            } else {
                able.join(", ")
            });
            missing.append_value(unable.join(", "));
        }
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("source", DataType::Utf8, false),
            Field::new("with_source", DataType::Utf8, false),
            Field::new("rules_that_apply", DataType::Utf8, false),
            Field::new("rules_that_cannot", DataType::Utf8, false),
        ])),
        vec![
            Arc::new(left.finish()),
            Arc::new(right.finish()),
            Arc::new(rules.finish()),
            Arc::new(missing.finish()),
        ],
    )?)
}

/// The chosen (or configured) rules with their pairs, then what was left out and why.
fn blocking_table(
    planned: &probabilistic::Planned,
    report: &super::UnifyReport,
) -> Result<RecordBatch> {
    let (mut rule, mut chosen, mut reason) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    let (mut estimated, mut counted) = (Float64Builder::new(), Int64Builder::new());
    let (mut recall, mut likely) = (Float64Builder::new(), Float64Builder::new());
    let counted_of = |name: &str| {
        report
            .pairs_per_rule
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| *c as i64)
    };
    match &planned.blocking {
        Some(plan) => {
            let mut idx: Vec<usize> = (0..plan.candidates.len()).collect();
            idx.sort_by_key(|&i| (plan.candidates[i].chosen.unwrap_or(usize::MAX), i));
            for i in idx {
                let c = &plan.candidates[i];
                let name = block_name(&c.key);
                rule.append_value(&name);
                chosen.append_value(match (c.chosen, c.seed) {
                    (Some(_), true) => "yes (seed)",
                    (Some(_), false) => "yes",
                    (None, _) => "no",
                });
                estimated.append_value(c.pairs.round());
                counted.append_option(c.chosen.and(counted_of(&name)));
                recall.append_option(c.recall_after.map(|r| (r * 1e4).round() / 1e4));
                likely.append_option(c.sampled.map(|s| s.matches.round()));
                reason.append_value(&c.reason);
            }
        }
        None => {
            for key in &planned.section.blocking {
                let name = block_name(key);
                rule.append_value(&name);
                chosen.append_value("configured");
                estimated.append_null();
                counted.append_option(counted_of(&name));
                recall.append_null();
                likely.append_null();
                reason.append_value("unify.probabilistic.blocking");
            }
        }
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("rule", DataType::Utf8, false),
            Field::new("chosen", DataType::Utf8, false),
            Field::new("estimated_pairs", DataType::Float64, true),
            Field::new("new_pairs", DataType::Int64, true),
            Field::new("estimated_recall_after", DataType::Float64, true),
            Field::new("likely_new_matches", DataType::Float64, true),
            Field::new("why", DataType::Utf8, false),
        ])),
        vec![
            Arc::new(rule.finish()),
            Arc::new(chosen.finish()),
            Arc::new(estimated.finish()),
            Arc::new(counted.finish()),
            Arc::new(recall.finish()),
            Arc::new(likely.finish()),
            Arc::new(reason.finish()),
        ],
    )?)
}

fn vetoes_table(planned: &probabilistic::Planned) -> Result<RecordBatch> {
    let (mut veto, mut origin) = (StringBuilder::new(), StringBuilder::new());
    let (mut m, mut u) = (Float64Builder::new(), Float64Builder::new());
    for v in planned.section.vetoes() {
        veto.append_value(v.fields().join(" and "));
        match planned.learned.iter().find(|l| &l.veto == v) {
            Some(l) => {
                origin.append_value("learned");
                m.append_value(l.m);
                u.append_value(l.u);
            }
            None => {
                origin.append_value("configured");
                m.append_null();
                u.append_null();
            }
        }
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("different", DataType::Utf8, false),
            Field::new("origin", DataType::Utf8, false),
            Field::new("share_of_matches_ruled_out", DataType::Float64, true),
            Field::new("share_of_non_matches", DataType::Float64, true),
        ])),
        vec![
            Arc::new(veto.finish()),
            Arc::new(origin.finish()),
            Arc::new(m.finish()),
            Arc::new(u.finish()),
        ],
    )?)
}

fn variants_table(variants: &[probabilistic::variants::Variant]) -> Result<RecordBatch> {
    let (mut a, mut b) = (StringBuilder::new(), StringBuilder::new());
    let (mut seen, mut expected) = (Int64Builder::new(), Float64Builder::new());
    for v in variants {
        a.append_value(&v.a);
        b.append_value(&v.b);
        seen.append_value(v.pairs as i64);
        expected.append_value((v.expected * 1e4).round() / 1e4);
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("variant", DataType::Utf8, false),
            Field::new("persons", DataType::Int64, false),
            Field::new("expected", DataType::Float64, false),
        ])),
        vec![
            Arc::new(a.finish()),
            Arc::new(b.finish()),
            Arc::new(seen.finish()),
            Arc::new(expected.finish()),
        ],
    )?)
}

fn dependence_table(dependence: &[(String, String, f64)]) -> Result<RecordBatch> {
    let (mut key, mut field) = (StringBuilder::new(), StringBuilder::new());
    let mut share = Float64Builder::new();
    let mut compared = arrow::array::BooleanBuilder::new();
    for (k, f, s) in dependence {
        key.append_value(k);
        field.append_value(f);
        share.append_value((s * 1e4).round() / 1e4);
        compared.append_value(*s < 0.5);
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("rule", DataType::Utf8, false),
            Field::new("part", DataType::Utf8, false),
            Field::new("share", DataType::Float64, false),
            Field::new("compared", DataType::Boolean, false),
        ])),
        vec![
            Arc::new(key.finish()),
            Arc::new(field.finish()),
            Arc::new(share.finish()),
            Arc::new(compared.finish()),
        ],
    )?)
}

fn evidence_table(planned: &probabilistic::Planned) -> Result<RecordBatch> {
    let (mut field, mut top) = (StringBuilder::new(), StringBuilder::new());
    let (mut agree, mut differ) = (Float64Builder::new(), Float64Builder::new());
    let bits = |m: f64, u: f64| ((m / u).log2() * 100.0).round() / 100.0;
    let mut rows: Vec<(f64, usize)> = planned
        .comparisons
        .iter()
        .enumerate()
        .map(|(c, comp)| {
            let g = comp.level_count() - 1;
            (bits(planned.model.m[c][g], planned.model.u[c][g]), c)
        })
        .collect();
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (w, c) in rows {
        let comp = &planned.comparisons[c];
        field.append_value(&comp.field);
        top.append_value(comp.label(comp.level_count() - 1));
        agree.append_value(w);
        differ.append_value(bits(planned.model.m[c][0], planned.model.u[c][0]));
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("field", DataType::Utf8, false),
            Field::new("closest_level", DataType::Utf8, false),
            Field::new("bits_if_closest", DataType::Float64, false),
            Field::new("bits_if_different", DataType::Float64, false),
        ])),
        vec![
            Arc::new(field.finish()),
            Arc::new(top.finish()),
            Arc::new(agree.finish()),
            Arc::new(differ.finish()),
        ],
    )?)
}
