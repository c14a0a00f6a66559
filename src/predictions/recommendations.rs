//! Product recommendations: item-to-item collaborative filtering from co-purchases, in SQL.
//!
//! Two items are similar when the same customers bought both (cosine of their buyer sets:
//! co-buyers / sqrt(buyers of one × buyers of the other), the 2k nearest (at least 10) kept per
//! item). A
//! customer's candidates are the neighbours of what they bought, scored by summed similarity;
//! customers with fewer than `k` candidates, and those who never bought, are filled up with the
//! most popular items. Evaluated by holding out each customer's last purchase: hit rate and
//! precision@k against recommending the most popular items.

use datafusion::prelude::SessionContext;

use super::config::RecommendationsConfig;
use super::Grade;
use crate::config::ProjectConfig;
use crate::error::{Error, Result};
use crate::sql_text::{fill, ident, Param};
use crate::table_catalog::names;

/// The similar-item candidates (`customer_id, item, score, reason, r`, top `k` per customer)
/// from the purchases in `purchases` (`customer_id, item`), as SQL. Scores are sums of
/// floats whose last bits depend on the order they are added in (partitions, a cluster):
/// ranked to 9 decimals, equal scores are ordered by item wherever the query runs.
fn similar_sql(purchases: &str, k: u32, exclude_bought: bool) -> String {
    fill(
        SIMILAR_ITEMS_SQL,
        &[
            ("purchases", Param::Sql(purchases)),
            ("neighbours", Param::Sql(&neighbours(k).to_string())),
            (
                "not_bought",
                Param::Sql(&not_bought(purchases, "s", exclude_bought)),
            ),
            ("k", Param::Sql(&k.to_string())),
        ],
    )
}

const SIMILAR_ITEMS_SQL: &str = include_str!("../../sql/predictions/similar_items.sql");
const RECOMMEND_SQL: &str = include_str!("../../sql/predictions/recommend.sql");

/// Condition on the rows of `alias`: the customer did not buy the item (an anti-join), when
/// asked to; TRUE otherwise.
fn not_bought(purchases: &str, alias: &str, exclude_bought: bool) -> String {
    if exclude_bought {
        format!(
            "NOT EXISTS (SELECT 1 FROM {purchases} bought \
             WHERE bought.customer_id = {alias}.customer_id AND bought.item = {alias}.item)"
        )
    } else {
        "TRUE".to_string()
    }
}

/// Recommendations for the customers of `customers` (a table with `customer_id`): the
/// similar items of `similar` (a table of [`similar_sql`]'s rows), filled up with popular
/// items, as SQL.
fn recommend_sql(
    purchases: &str,
    similar: &str,
    customers: &str,
    k: u32,
    exclude_bought: bool,
) -> String {
    // Popular items a customer may have to skip: those they bought (bounded by a join on how
    // many they bought) and those already recommended as similar.
    let bought_slack = if exclude_bought {
        "coalesce(b.n, 0)"
    } else {
        "0"
    };
    fill(
        RECOMMEND_SQL,
        &[
            ("purchases", Param::Sql(purchases)),
            ("similar", Param::Sql(similar)),
            ("customers", Param::Sql(customers)),
            ("k", Param::Sql(&k.to_string())),
            ("bought_slack", Param::Sql(bought_slack)),
            (
                "not_bought_f",
                Param::Sql(&not_bought(purchases, "f", exclude_bought)),
            ),
        ],
    )
}

/// Neighbours kept per item: every purchase of a customer joins this many candidates, so it
/// bounds the biggest intermediate result (50 made 110 million rows at 1M demo people).
fn neighbours(k: u32) -> u32 {
    (2 * k).max(10)
}

/// The scratch tables `build` makes, dropped when it is done.
const SCRATCH_TABLES: [&str; 8] = [
    "reco_rows",
    "reco_purchases",
    "reco_heldout",
    "reco_train",
    "reco_eval_customers",
    "reco_customers",
    "reco_similar",
    "reco_train_similar",
];

/// Build `recommendations` and grade them; `ctx` has the run's sources, links and activities.
pub async fn build(
    cfg: &ProjectConfig,
    ctx: &SessionContext,
    rc: &RecommendationsConfig,
    tables_dir: &std::path::Path,
) -> Result<(u64, Vec<Grade>)> {
    let rows = purchase_rows_sql(cfg, rc)?;
    let scratch = tables_dir.join("recommendations-scratch");
    materialize_holdout(ctx, &scratch, rc, &rows).await?;
    let grades = evaluate(ctx, rc).await?;
    let n = write_recommendations(ctx, &scratch, rc, tables_dir).await?;
    for t in SCRATCH_TABLES {
        let _ = ctx.deregister_table(t);
    }
    std::fs::remove_dir_all(&scratch).map_err(|e| Error::io("cannot delete", &scratch, e))?;
    Ok((n, grades))
}

/// The purchases of the configured activity (`customer_id, item, ts`), as SQL.
fn purchase_rows_sql(cfg: &ProjectConfig, rc: &RecommendationsConfig) -> Result<String> {
    let a = cfg.activities.get(&rc.activity).ok_or_else(|| {
        Error::invalid(
            "predictions.recommendations.activity",
            format!("no [activities.{}]", rc.activity),
        )
    })?;
    let a = a.get_ref();
    let (join, customer) = crate::activities::customer_resolution(a);
    let item = ident(&rc.item);
    Ok(format!(
        "SELECT {customer} AS customer_id, CAST(a.{item} AS VARCHAR) AS item, CAST(a.{ts} AS TIMESTAMP) AS ts \
         FROM {src} a {join} WHERE {customer} IS NOT NULL AND a.{item} IS NOT NULL",
        ts = ident(&a.timestamp),
        src = ident(&a.source),
    ))
}

/// The purchases (`reco_rows`, `reco_purchases`), split into each customer's held-out last
/// purchase and the rest to train on, with the similar items of the training purchases.
async fn materialize_holdout(
    ctx: &SessionContext,
    scratch: &std::path::Path,
    rc: &RecommendationsConfig,
    rows: &str,
) -> Result<()> {
    // Each of these is read several times by the statements below: computed once and kept
    // in memory (as views, every reference recomputed them, window sorts and all, in
    // parallel, and at 1M people the sorts ran out of their share of memory).
    materialize(ctx, scratch, "reco_rows", rows).await?;
    materialize(
        ctx,
        scratch,
        "reco_purchases",
        "SELECT DISTINCT customer_id, item FROM reco_rows",
    )
    .await?;
    // Holdout: each customer's last purchased item, when they bought at least two items.
    materialize(
        ctx,
        scratch,
        "reco_heldout",
        "SELECT customer_id, item FROM (\
           SELECT customer_id, item, row_number() OVER (PARTITION BY customer_id ORDER BY ts DESC, item) AS r \
           FROM reco_rows) \
         WHERE r = 1 AND customer_id IN (SELECT customer_id FROM reco_purchases GROUP BY customer_id HAVING count(*) >= 2)",
    )
    .await?;
    materialize(
        ctx,
        scratch,
        "reco_train",
        "SELECT p.customer_id, p.item FROM reco_purchases p \
         LEFT JOIN reco_heldout h ON h.customer_id = p.customer_id AND h.item = p.item WHERE h.item IS NULL",
    )
    .await?;
    materialize(
        ctx,
        scratch,
        "reco_eval_customers",
        "SELECT DISTINCT customer_id FROM reco_heldout",
    )
    .await?;
    // The similar items are read three times by what follows: computed once.
    materialize(
        ctx,
        scratch,
        "reco_train_similar",
        &similar_sql("reco_train", rc.k, rc.exclude_bought),
    )
    .await
}

/// Hit rate and precision@k on the held-out purchases, against the popularity baseline.
async fn evaluate(ctx: &SessionContext, rc: &RecommendationsConfig) -> Result<Vec<Grade>> {
    let eval = format!(
        "WITH recs AS ({}) SELECT CAST(count(*) AS DOUBLE) AS customers, CAST(count(r.item) AS DOUBLE) AS hits \
         FROM reco_heldout h LEFT JOIN recs r ON r.customer_id = h.customer_id AND r.item = h.item",
        recommend_sql("reco_train", "reco_train_similar", "reco_eval_customers", rc.k, rc.exclude_bought)
    );
    let started = std::time::Instant::now();
    let model = hit_counts(ctx, &eval).await.map_err(|e| Error::Model {
        model: "predictions.recommendations".into(),
        message: format!("evaluating: {e}"),
    })?;
    tracing::info!(
        seconds = started.elapsed().as_secs_f64(),
        "recommendations evaluated"
    );
    let base = hit_counts(ctx, &baseline_sql(rc))
        .await
        .map_err(|e| Error::Model {
            model: "predictions.recommendations".into(),
            message: format!("popularity baseline: {e}"),
        })?;
    Ok(grades(rc, model, base))
}

/// Baseline: only the popular items (no similar ones), same exclusions; its hit counts, as
/// SQL.
fn baseline_sql(rc: &RecommendationsConfig) -> String {
    fill(
        include_str!("../../sql/predictions/popularity_baseline.sql"),
        &[
            ("pop", Param::Sql(&(rc.k + 20).to_string())),
            ("k", Param::Sql(&rc.k.to_string())),
            (
                "not_bought",
                Param::Sql(&not_bought("reco_train", "c", rc.exclude_bought)),
            ),
        ],
    )
}

/// The grades of the model's `(customers, hits)` against the baseline's: none without
/// held-out customers.
fn grades(rc: &RecommendationsConfig, model: (f64, f64), base: (f64, f64)) -> Vec<Grade> {
    let mut grades = Vec::new();
    if model.0 > 0.0 {
        let k = rc.k as f64;
        let (hit, hit_base) = (model.1 / model.0, base.1 / base.0.max(1.0));
        let grade = if hit >= 1.5 * hit_base && hit > 0.0 {
            "A"
        } else if hit >= hit_base {
            "B"
        } else {
            "C"
        };
        grades.push(Grade::metric(
            "recommendations",
            "holdout_customers",
            model.0,
            None,
            grade,
        ));
        grades.push(Grade::metric(
            "recommendations",
            "hit_rate",
            hit,
            Some(hit_base),
            grade,
        ));
        grades.push(Grade::metric(
            "recommendations",
            &format!("precision_at_{}", rc.k),
            hit / k,
            Some(hit_base / k),
            grade,
        ));
    }
    grades
}

/// The recommendations themselves, for every unified customer, written to `recommendations`;
/// returns its rows.
async fn write_recommendations(
    ctx: &SessionContext,
    scratch: &std::path::Path,
    rc: &RecommendationsConfig,
    tables_dir: &std::path::Path,
) -> Result<u64> {
    ctx.sql("CREATE OR REPLACE VIEW reco_customers AS SELECT customer_id FROM unified_customers")
        .await?
        .collect()
        .await?;
    materialize(
        ctx,
        scratch,
        "reco_similar",
        &similar_sql("reco_purchases", rc.k, rc.exclude_bought),
    )
    .await?;
    let sql = format!(
        "SELECT customer_id, rank, item AS {item}, score, reason FROM ({})",
        recommend_sql(
            "reco_purchases",
            "reco_similar",
            "reco_customers",
            rc.k,
            rc.exclude_bought
        ),
        item = ident(&rc.item),
    );
    crate::table_io::write_query(ctx, &sql, tables_dir, names::RECOMMENDATIONS)
        .await
        .map_err(|e| Error::invalid("predictions.recommendations", e))
}

/// Run `sql`, write its result to a scratch Parquet file and register that as `name` (read
/// back from Parquet, DataFusion scans it in parallel; an in-memory copy made the statements
/// reading it twice as slow).
async fn materialize(
    ctx: &SessionContext,
    dir: &std::path::Path,
    name: &str,
    sql: &str,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))?;
    crate::table_io::write_query(ctx, sql, dir, name)
        .await
        .map_err(|e| Error::invalid("predictions.recommendations", e))?;
    crate::table_io::register_written(ctx, dir, name).await
}

async fn hit_counts(ctx: &SessionContext, sql: &str) -> Result<(f64, f64)> {
    let b = ctx.sql(sql).await?.collect().await?;
    let get = |i: usize| {
        b.first()
            .and_then(|b| {
                arrow::compute::cast(b.column(i), &arrow::datatypes::DataType::Float64).ok()
            })
            .and_then(|c| {
                c.as_any()
                    .downcast_ref::<arrow::array::Float64Array>()
                    .map(|a| a.value(0))
            })
            .unwrap_or(0.0)
    };
    Ok((get(0), get(1)))
}
