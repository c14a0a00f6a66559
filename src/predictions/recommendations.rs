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
use crate::unify::staging::ident;

/// Recommendations for the customers of `customers` (a table with `customer_id`) from the
/// purchases in `purchases` (`customer_id, item`), as SQL.
fn recommend_sql(purchases: &str, customers: &str, k: u32, exclude_bought: bool) -> String {
    // Anti-joins with what the customer bought, when asked to.
    let not_bought = |alias: &str| {
        if exclude_bought {
            format!(
                "LEFT JOIN {purchases} bought ON bought.customer_id = {alias}.customer_id AND bought.item = {alias}.item \
                 WHERE bought.item IS NULL"
            )
        } else {
            "WHERE TRUE".to_string()
        }
    };
    format!(
        "WITH ic AS (SELECT item, count(*) AS n FROM {purchases} GROUP BY item), \
         pairs AS (SELECT a.item AS i, b.item AS j, count(*) AS co FROM {purchases} a \
                   JOIN {purchases} b ON a.customer_id = b.customer_id AND a.item <> b.item GROUP BY a.item, b.item), \
         sim AS (SELECT p.i, p.j, CAST(p.co AS DOUBLE) / sqrt(CAST(ci.n AS DOUBLE) * CAST(cj.n AS DOUBLE)) AS s \
                 FROM pairs p JOIN ic ci ON ci.item = p.i JOIN ic cj ON cj.item = p.j), \
         nb AS (SELECT i, j, s FROM (SELECT *, row_number() OVER (PARTITION BY i ORDER BY s DESC, j) AS r FROM sim) WHERE r <= {neighbours}), \
         similar AS (SELECT u.customer_id, nb.j AS item, sum(nb.s) AS score \
                     FROM {purchases} u JOIN nb ON nb.i = u.item GROUP BY u.customer_id, nb.j), \
         similar_kept AS (SELECT s.* FROM similar s {not_bought_s}), \
         sim_k AS (SELECT customer_id, item, score, 'similar' AS reason FROM (\
                     SELECT *, row_number() OVER (PARTITION BY customer_id ORDER BY score DESC, item) AS r FROM similar_kept) \
                   WHERE r <= {k}), \
         sim_n AS (SELECT customer_id, count(*) AS n FROM sim_k GROUP BY customer_id), \
         bought_n AS (SELECT customer_id, count(*) AS n FROM {purchases} GROUP BY customer_id), \
         needy AS (SELECT c.customer_id, {k} - coalesce(s.n, 0) AS need, \
                          {k} + coalesce(s.n, 0) + {bought_slack} AS reach \
                   FROM {customers} c LEFT JOIN sim_n s ON s.customer_id = c.customer_id \
                   LEFT JOIN bought_n b ON b.customer_id = c.customer_id WHERE coalesce(s.n, 0) < {k}), \
         popular_items AS (SELECT item, n, row_number() OVER (ORDER BY n DESC, item) AS pr FROM ic), \
         fill_cand AS (SELECT d.customer_id, d.need, p.item, p.n FROM needy d JOIN popular_items p ON p.pr <= d.reach), \
         fill_kept AS (SELECT f.* FROM fill_cand f LEFT JOIN sim_k already ON already.customer_id = f.customer_id AND already.item = f.item \
                       {not_bought_f} AND already.item IS NULL), \
         fill AS (SELECT customer_id, item, CAST(n AS DOUBLE) / (SELECT CAST(max(n) AS DOUBLE) FROM ic) * 1e-6 AS score, 'popular' AS reason \
                  FROM (SELECT *, row_number() OVER (PARTITION BY customer_id ORDER BY n DESC, item) AS r FROM fill_kept) WHERE r <= need) \
         SELECT customer_id, CAST(row_number() OVER (PARTITION BY customer_id ORDER BY score DESC, item) AS INT) AS rank, item, score, reason \
         FROM (SELECT * FROM sim_k UNION ALL SELECT * FROM fill)",
        neighbours = neighbours(k),
        not_bought_s = not_bought("s"),
        not_bought_f = not_bought("f"),
        // Popular items a customer may have to skip: those they bought (bounded by a join on
        // how many they bought) and those already recommended as similar.
        bought_slack = if exclude_bought { "coalesce(b.n, 0)" } else { "0" },
    )
}

/// Neighbours kept per item: every purchase of a customer joins this many candidates, so it
/// bounds the biggest intermediate result (50 made 110 million rows at 1M demo people).
fn neighbours(k: u32) -> u32 {
    (2 * k).max(10)
}

/// Build `recommendations` and grade them; `ctx` has the run's sources, links and activities.
pub async fn build(
    cfg: &ProjectConfig,
    ctx: &SessionContext,
    rc: &RecommendationsConfig,
    tables_dir: &std::path::Path,
) -> Result<(u64, Vec<Grade>)> {
    let a = cfg.activities.get(&rc.activity).ok_or_else(|| {
        Error::Other(format!(
            "predictions.recommendations.activity: no [activities.{}]",
            rc.activity
        ))
    })?;
    let a = a.get_ref();
    let (join, customer) = crate::activities::customer_resolution(a);
    let item = ident(&rc.item);
    let rows = format!(
        "SELECT {customer} AS customer_id, CAST(a.{item} AS VARCHAR) AS item, CAST(a.{ts} AS TIMESTAMP) AS ts \
         FROM {src} a {join} WHERE {customer} IS NOT NULL AND a.{item} IS NOT NULL",
        ts = ident(&a.timestamp),
        src = ident(&a.source),
    );
    let err = |e: datafusion::error::DataFusionError| {
        Error::Other(format!("predictions.recommendations: {e}"))
    };
    ctx.sql(&format!("CREATE OR REPLACE VIEW reco_rows AS {rows}"))
        .await
        .map_err(err)?
        .collect()
        .await?;
    ctx.sql(
        "CREATE OR REPLACE VIEW reco_purchases AS SELECT DISTINCT customer_id, item FROM reco_rows",
    )
    .await?
    .collect()
    .await?;
    // Holdout: each customer's last purchased item, when they bought at least two items.
    ctx.sql(
        "CREATE OR REPLACE VIEW reco_heldout AS SELECT customer_id, item FROM (\
           SELECT customer_id, item, row_number() OVER (PARTITION BY customer_id ORDER BY ts DESC, item) AS r, \
                  count(DISTINCT item) OVER (PARTITION BY customer_id) AS items FROM reco_rows) \
         WHERE r = 1 AND items >= 2",
    )
    .await?
    .collect()
    .await?;
    ctx.sql(
        "CREATE OR REPLACE VIEW reco_train AS SELECT p.customer_id, p.item FROM reco_purchases p \
         LEFT JOIN reco_heldout h ON h.customer_id = p.customer_id AND h.item = p.item WHERE h.item IS NULL",
    )
    .await?
    .collect()
    .await?;
    ctx.sql("CREATE OR REPLACE VIEW reco_eval_customers AS SELECT DISTINCT customer_id FROM reco_heldout")
        .await?
        .collect()
        .await?;
    let eval = format!(
        "WITH recs AS ({}) SELECT CAST(count(*) AS DOUBLE) AS customers, CAST(count(r.item) AS DOUBLE) AS hits \
         FROM reco_heldout h LEFT JOIN recs r ON r.customer_id = h.customer_id AND r.item = h.item",
        recommend_sql("reco_train", "reco_eval_customers", rc.k, rc.exclude_bought)
    );
    let model = hit_counts(ctx, &eval).await?;
    // Baseline: only the popular items (no similar ones), same exclusions.
    let baseline_sql = format!(
        "WITH ic AS (SELECT item, count(*) AS n FROM reco_train GROUP BY item), \
         cand AS (SELECT c.customer_id, p.item, p.n FROM reco_eval_customers c CROSS JOIN \
                  (SELECT item, n FROM ic ORDER BY n DESC, item LIMIT {pop}) p), \
         kept AS (SELECT c.* FROM cand c {exclude}), \
         recs AS (SELECT customer_id, item FROM (SELECT *, row_number() OVER (PARTITION BY customer_id ORDER BY n DESC, item) AS r FROM kept) WHERE r <= {k}) \
         SELECT CAST(count(*) AS DOUBLE) AS customers, CAST(count(r.item) AS DOUBLE) AS hits \
         FROM reco_heldout h LEFT JOIN recs r ON r.customer_id = h.customer_id AND r.item = h.item",
        pop = rc.k + 20,
        k = rc.k,
        exclude = if rc.exclude_bought {
            "LEFT JOIN reco_train b ON b.customer_id = c.customer_id AND b.item = c.item WHERE b.item IS NULL"
        } else {
            ""
        },
    );
    let base = hit_counts(ctx, &baseline_sql).await?;
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
    // The recommendations themselves: every unified customer.
    ctx.sql("CREATE OR REPLACE VIEW reco_customers AS SELECT customer_id FROM unified_customers")
        .await?
        .collect()
        .await?;
    let sql = format!(
        "SELECT customer_id, rank, item AS {item}, score, reason FROM ({})",
        recommend_sql("reco_purchases", "reco_customers", rc.k, rc.exclude_bought)
    );
    let n = crate::unify::write_query(ctx, &sql, tables_dir, "recommendations").await?;
    Ok((n, grades))
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
