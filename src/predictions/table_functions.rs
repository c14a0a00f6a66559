//! `bgnbd_fit('table', 'x', 't_x', 'T')` and `gamma_gamma_fit('table', 'x', 'm')`: fit the
//! models on any table of per-customer summaries, in SQL. One row: the parameters, the
//! log-likelihood and the number of customers used.

use std::sync::Arc;

use arrow::array::{Array, Float64Array, RecordBatch, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::prelude::SessionContext;

use super::bgnbd::{BgNbd, GammaGamma, Summary};
use crate::unify::staging::ident;
use crate::unify::table_functions::{string_args, ComputedTable};

async fn columns(
    ctx: &SessionContext,
    table: &str,
    cols: &[String],
) -> crate::error::Result<Vec<Vec<f64>>> {
    let sql = format!(
        "SELECT {} FROM {} WHERE {}",
        cols.iter()
            .map(|c| format!("CAST({} AS DOUBLE)", ident(c)))
            .collect::<Vec<_>>()
            .join(", "),
        ident(table),
        cols.iter()
            .map(|c| format!("{} IS NOT NULL", ident(c)))
            .collect::<Vec<_>>()
            .join(" AND ")
    );
    let batches = ctx.sql(&sql).await?.collect().await?;
    let mut out = vec![Vec::new(); cols.len()];
    for b in &batches {
        for (j, o) in out.iter_mut().enumerate() {
            let c = b
                .column(j)
                .as_any()
                .downcast_ref::<Float64Array>()
                .expect("cast to double");
            o.extend((0..c.len()).map(|i| c.value(i)));
        }
    }
    Ok(out)
}

fn fit_schema(params: &[&str]) -> Arc<Schema> {
    let mut fields: Vec<Field> = params
        .iter()
        .map(|p| Field::new(*p, DataType::Float64, false))
        .collect();
    fields.push(Field::new("log_likelihood", DataType::Float64, false));
    fields.push(Field::new("customers", DataType::UInt64, false));
    Arc::new(Schema::new(fields))
}

/// `bgnbd_fit(table, x, t_x, T)`.
#[derive(Debug)]
pub struct BgNbdFit;

impl TableFunctionImpl for BgNbdFit {
    fn call_with_args(
        &self,
        args: TableFunctionArgs,
    ) -> datafusion::common::Result<Arc<dyn TableProvider>> {
        let a = string_args("bgnbd_fit", args.exprs(), 4, "'cdnow', 'x', 't_x', 'T'")?;
        let schema = fit_schema(&["r", "alpha", "a", "b"]);
        let out = schema.clone();
        Ok(Arc::new(ComputedTable {
            schema,
            compute: Box::new(move |ctx| {
                let (a, out) = (a.clone(), out.clone());
                Box::pin(async move {
                    let c = columns(&ctx, &a[0], &a[1..]).await?;
                    let data: Vec<Summary> = (0..c[0].len())
                        .map(|i| Summary {
                            x: c[0][i],
                            t_x: c[1][i],
                            t: c[2][i],
                        })
                        .collect();
                    let fit = BgNbd::fit(&data)
                        .map_err(|e| crate::error::Error::Other(format!("bgnbd_fit: {e}")))?;
                    let p = fit.params;
                    Ok(RecordBatch::try_new(
                        out,
                        vec![
                            Arc::new(Float64Array::from(vec![p.r])),
                            Arc::new(Float64Array::from(vec![p.alpha])),
                            Arc::new(Float64Array::from(vec![p.a])),
                            Arc::new(Float64Array::from(vec![p.b])),
                            Arc::new(Float64Array::from(vec![fit.log_likelihood])),
                            Arc::new(UInt64Array::from(vec![data.len() as u64])),
                        ],
                    )?)
                })
            }),
        }))
    }
}

/// `gamma_gamma_fit(table, x, m)`: customers with `x > 0` and `m > 0` count.
#[derive(Debug)]
pub struct GammaGammaFit;

impl TableFunctionImpl for GammaGammaFit {
    fn call_with_args(
        &self,
        args: TableFunctionArgs,
    ) -> datafusion::common::Result<Arc<dyn TableProvider>> {
        let a = string_args("gamma_gamma_fit", args.exprs(), 3, "'cdnow', 'x', 'zbar'")?;
        let schema = fit_schema(&["p", "q", "v"]);
        let out = schema.clone();
        Ok(Arc::new(ComputedTable {
            schema,
            compute: Box::new(move |ctx| {
                let (a, out) = (a.clone(), out.clone());
                Box::pin(async move {
                    let c = columns(&ctx, &a[0], &a[1..]).await?;
                    let data: Vec<(f64, f64)> = (0..c[0].len())
                        .map(|i| (c[0][i], c[1][i]))
                        .filter(|(x, m)| *x > 0.0 && *m > 0.0)
                        .collect();
                    let fit = GammaGamma::fit(&data)
                        .map_err(|e| crate::error::Error::Other(format!("gamma_gamma_fit: {e}")))?;
                    let p = fit.params;
                    Ok(RecordBatch::try_new(
                        out,
                        vec![
                            Arc::new(Float64Array::from(vec![p.p])),
                            Arc::new(Float64Array::from(vec![p.q])),
                            Arc::new(Float64Array::from(vec![p.v])),
                            Arc::new(Float64Array::from(vec![fit.log_likelihood])),
                            Arc::new(UInt64Array::from(vec![data.len() as u64])),
                        ],
                    )?)
                })
            }),
        }))
    }
}
