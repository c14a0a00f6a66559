//! Product recommendations: item-to-item collaborative filtering from co-purchases.
//!
//! Two items are similar when the same customers bought both (cosine of their buyer sets:
//! co-buyers / sqrt(buyers of one × buyers of the other), the 2k nearest (at least 10) kept per
//! item, in SQL). A customer's candidates are the neighbours of what they bought, scored by
//! summed similarity; customers with fewer than `k` candidates, and those who never bought, are
//! filled up with the most popular items — one pass over the purchases grouped by customer
//! ([`item_to_item`]). Evaluated by holding out each customer's last purchase: hit rate and
//! precision@k against recommending the most popular items.

use std::sync::Arc;

use arrow::array::{Array, ArrayBuilder, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use super::config::RecommendationsConfig;
use super::item_to_item::{Catalogue, Pick, Recommender};
use super::Grade;
use crate::config::ProjectConfig;
use crate::error::{Error, Result};
use crate::output::as_strings;
use crate::sql_text::{fill, ident, Param};
use crate::table_catalog::names;

const ITEM_NEIGHBOURS_SQL: &str = include_str!("../../sql/predictions/item_neighbours.sql");

/// Neighbours kept per item: every purchase of a customer adds this many candidates (50 made
/// 110 million candidate rows at 1M demo people when the sums were SQL).
fn neighbours(k: u32) -> u32 {
    (2 * k).max(10)
}

/// The scratch tables `build` makes, dropped when it is done.
const SCRATCH_TABLES: [&str; 5] = [
    "reco_rows",
    "reco_purchases",
    "reco_heldout",
    "reco_train",
    "reco_eval_customers",
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
    materialize_holdout(ctx, &scratch, &rows).await?;
    let grades = evaluate(ctx, rc).await?;
    let n = write_recommendations(ctx, rc, tables_dir).await?;
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
/// purchase and the rest to train on.
async fn materialize_holdout(
    ctx: &SessionContext,
    scratch: &std::path::Path,
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
    .await
}

/// Hit rate and precision@k on the held-out purchases, against the popularity baseline: the
/// model trained on `reco_train`, each held-out customer's recommendations checked for their
/// held-out item.
async fn evaluate(ctx: &SessionContext, rc: &RecommendationsConfig) -> Result<Vec<Grade>> {
    let started = std::time::Instant::now();
    let err = |what: &str, e: Error| Error::Model {
        model: "predictions.recommendations".into(),
        message: format!("{what}: {e}"),
    };
    let catalogue = catalogue(ctx, "reco_train", rc.k)
        .await
        .map_err(|e| err("evaluating", e))?;
    let mut recommender = Recommender::new(&catalogue, rc.k, rc.exclude_bought);
    let (mut customers, mut hits, mut base_hits) = (0.0, 0.0, 0.0);
    let mut picks = Vec::new();
    let hit =
        |picks: &[Pick], held: Option<u32>| held.is_some_and(|h| picks.iter().any(|p| p.item == h));
    let purchases = "SELECT t.customer_id, t.item, FALSE AS held FROM reco_train t \
         JOIN reco_eval_customers e ON e.customer_id = t.customer_id \
         UNION ALL SELECT customer_id, item, TRUE AS held FROM reco_heldout";
    each_customer(ctx, purchases, &catalogue, |c| {
        recommender.recommend(&c.bought, &mut picks);
        let model: usize = c.held.iter().filter(|&&h| hit(&picks, h)).count();
        recommender.popular_only(&c.bought, &mut picks);
        let base: usize = c.held.iter().filter(|&&h| hit(&picks, h)).count();
        customers += c.held.len() as f64;
        hits += model as f64;
        base_hits += base as f64;
        Ok(())
    })
    .await
    .map_err(|e| err("evaluating", e))?;
    tracing::info!(
        seconds = started.elapsed().as_secs_f64(),
        customers,
        "recommendations evaluated"
    );
    Ok(grades(rc, (customers, hits), (customers, base_hits)))
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
    rc: &RecommendationsConfig,
    tables_dir: &std::path::Path,
) -> Result<u64> {
    let started = std::time::Instant::now();
    let catalogue = catalogue(ctx, "reco_purchases", rc.k).await?;
    let mut recommender = Recommender::new(&catalogue, rc.k, rc.exclude_bought);
    let path = tables_dir.join(format!("{}.parquet", names::RECOMMENDATIONS));
    let mut out = RecommendationsFile::create(&path, &rc.item)?;
    let mut picks = Vec::new();
    // Every unified customer, with what they bought (none: one row without an item).
    let purchases = "SELECT c.customer_id, p.item, FALSE AS held FROM unified_customers c \
         LEFT JOIN reco_purchases p ON p.customer_id = c.customer_id";
    each_customer(ctx, purchases, &catalogue, |c| {
        recommender.recommend(&c.bought, &mut picks);
        out.push(&c.customer_id, &picks, &catalogue)
    })
    .await?;
    let rows = out.close()?;
    tracing::info!(
        what = names::RECOMMENDATIONS,
        rows,
        seconds = started.elapsed().as_secs_f64(),
        "query step done"
    );
    Ok(rows)
}

/// The items of `purchases` (a table of `customer_id, item`): their buyers and nearest
/// neighbours.
async fn catalogue(ctx: &SessionContext, purchases: &str, k: u32) -> Result<Catalogue> {
    let what = "predictions.recommendations";
    let buyers = crate::table_io::collect(
        ctx,
        &format!("SELECT CAST(item AS VARCHAR), count(*) FROM {purchases} GROUP BY item"),
        what,
    )
    .await?;
    let sql = fill(
        ITEM_NEIGHBOURS_SQL,
        &[
            ("purchases", Param::Sql(purchases)),
            ("neighbours", Param::Sql(&neighbours(k).to_string())),
        ],
    );
    let pairs = crate::table_io::collect(ctx, &sql, what).await?;
    let mut items = Vec::new();
    for b in &buyers {
        let (item, n) = (
            as_strings(b.column(0))?,
            b.column(1).as_primitive::<arrow::datatypes::Int64Type>(),
        );
        items.extend(
            (0..b.num_rows())
                .filter(|&i| item.is_valid(i))
                .map(|i| (item.value(i).to_string(), n.value(i))),
        );
    }
    let mut near = Vec::new();
    for b in &pairs {
        let (i, j) = (as_strings(b.column(0))?, as_strings(b.column(1))?);
        let s = b.column(2).as_primitive::<arrow::datatypes::Float64Type>();
        near.extend(
            (0..b.num_rows()).map(|r| (i.value(r).to_string(), j.value(r).to_string(), s.value(r))),
        );
    }
    Ok(Catalogue::new(items, near))
}

/// One customer's rows of a purchases stream: the catalogue ids of what they bought (in item
/// order) and of their held-out items (`None`: an item the catalogue does not have).
struct CustomerPurchases {
    customer_id: String,
    bought: Vec<u32>,
    held: Vec<Option<u32>>,
}

/// Call `each` for every customer of `purchases` (`customer_id, item, held`; a NULL item adds
/// nothing): their rows gathered per customer by the engine, their items then sorted by name
/// so that their sums are added in the same order every run. (A global sort by customer
/// streamed on one machine but lost rows on a Ballista cluster; `array_agg(... ORDER BY item)`
/// took 10.9 s at 1M demo people where the plain one takes 0.3 s.)
async fn each_customer(
    ctx: &SessionContext,
    purchases: &str,
    catalogue: &Catalogue,
    mut each: impl FnMut(&CustomerPurchases) -> Result<()>,
) -> Result<()> {
    let sql = format!(
        "SELECT customer_id, array_agg(named_struct('item', item, 'held', held)) AS rows \
         FROM ({purchases}) GROUP BY customer_id"
    );
    let err = |e| Error::query(names::RECOMMENDATIONS, e);
    let mut stream = ctx
        .sql(&sql)
        .await
        .map_err(err)?
        .execute_stream()
        .await
        .map_err(err)?;
    let mut c = CustomerPurchases {
        customer_id: String::new(),
        bought: Vec::new(),
        held: Vec::new(),
    };
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(err)?;
        let customer = as_strings(batch.column(0))?;
        let rows = batch.column(1).as_list::<i32>();
        let fields = rows.values().as_struct();
        let (items, held) = (as_strings(fields.column(0))?, fields.column(1).as_boolean());
        let offsets = rows.value_offsets();
        let mut bought: Vec<&str> = Vec::new();
        for r in 0..batch.num_rows() {
            c.customer_id.clear();
            c.customer_id.push_str(customer.value(r));
            c.held.clear();
            bought.clear();
            for i in offsets[r] as usize..offsets[r + 1] as usize {
                if items.is_null(i) {
                    continue;
                }
                if held.value(i) {
                    c.held.push(catalogue.id(items.value(i)));
                } else {
                    bought.push(items.value(i));
                }
            }
            bought.sort_unstable();
            c.bought.clear();
            c.bought
                .extend(bought.iter().filter_map(|item| catalogue.id(item)));
            each(&c)?;
        }
    }
    Ok(())
}

/// The `recommendations` table being written: `customer_id, rank, <item>, score, reason`.
struct RecommendationsFile {
    writer: datafusion::parquet::arrow::ArrowWriter<std::fs::File>,
    schema: Arc<Schema>,
    customer: arrow::array::StringBuilder,
    rank: arrow::array::Int32Builder,
    item: arrow::array::StringBuilder,
    score: arrow::array::Float64Builder,
    reason: arrow::array::StringBuilder,
    rows: u64,
}

impl RecommendationsFile {
    /// Rows per written batch.
    const BATCH: usize = 8192;

    fn create(path: &std::path::Path, item: &str) -> Result<Self> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("customer_id", DataType::Utf8, false),
            Field::new("rank", DataType::Int32, false),
            Field::new(item, DataType::Utf8, true),
            Field::new("score", DataType::Float64, true),
            Field::new("reason", DataType::Utf8, false),
        ]));
        let file = std::fs::File::create(path).map_err(|e| Error::io("cannot create", path, e))?;
        let writer = datafusion::parquet::arrow::ArrowWriter::try_new(
            file,
            schema.clone(),
            Some(crate::workspace::writer_properties()),
        )?;
        Ok(RecommendationsFile {
            writer,
            schema,
            customer: Default::default(),
            rank: Default::default(),
            item: Default::default(),
            score: Default::default(),
            reason: Default::default(),
            rows: 0,
        })
    }

    fn push(&mut self, customer_id: &str, picks: &[Pick], catalogue: &Catalogue) -> Result<()> {
        for (rank, p) in picks.iter().enumerate() {
            self.customer.append_value(customer_id);
            self.rank.append_value(rank as i32 + 1);
            self.item.append_value(catalogue.name(p.item));
            self.score.append_value(p.score);
            self.reason.append_value(p.reason.as_str());
        }
        if self.customer.len() >= Self::BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let batch = RecordBatch::try_new(
            self.schema.clone(),
            vec![
                Arc::new(self.customer.finish()),
                Arc::new(self.rank.finish()),
                Arc::new(self.item.finish()),
                Arc::new(self.score.finish()),
                Arc::new(self.reason.finish()),
            ],
        )?;
        self.rows += batch.num_rows() as u64;
        self.writer.write(&batch)?;
        Ok(())
    }

    /// Write what is left and close the file; returns the rows written.
    fn close(mut self) -> Result<u64> {
        self.flush()?;
        self.writer.close()?;
        Ok(self.rows)
    }
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
