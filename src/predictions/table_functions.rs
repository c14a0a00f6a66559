//! `bgnbd_fit('table', 'x', 't_x', 'T')` and `gamma_gamma_fit('table', 'x', 'm')`: fit the
//! models on any table of per-customer summaries, in SQL. One row: the parameters, the
//! log-likelihood and the number of customers used.

use std::sync::Arc;

use arrow::array::{Array, Float64Array, RecordBatch, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::prelude::SessionContext;

use super::bgnbd::{BgNbd, GammaGamma, Summary};
use crate::sql_text::ident;
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

/// A fitted model as a row: its parameters, log-likelihood and customers used.
type FitRow = (Vec<f64>, f64, usize);

/// A table function that reads `args[1..]` of table `args[0]` as columns of doubles and fits
/// a model on them with `fit`.
fn fit_function(
    name: &'static str,
    args: Vec<String>,
    params: &[&str],
    fit: fn(&[Vec<f64>]) -> Result<FitRow, super::bgnbd::FitError>,
) -> Arc<dyn TableProvider> {
    let schema = fit_schema(params);
    let out = schema.clone();
    Arc::new(ComputedTable {
        schema,
        compute: Box::new(move |ctx| {
            let (a, out) = (args.clone(), out.clone());
            Box::pin(async move {
                let c = columns(&ctx, &a[0], &a[1..]).await?;
                let (params, ll, n) = fit(&c).map_err(|e| crate::error::Error::Model {
                    model: name.to_string(),
                    message: e.to_string(),
                })?;
                let mut cols: Vec<arrow::array::ArrayRef> = params
                    .into_iter()
                    .map(|p| Arc::new(Float64Array::from(vec![p])) as _)
                    .collect();
                cols.push(Arc::new(Float64Array::from(vec![ll])));
                cols.push(Arc::new(UInt64Array::from(vec![n as u64])));
                Ok(RecordBatch::try_new(out, cols)?)
            })
        }),
    })
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
        Ok(fit_function(
            "bgnbd_fit",
            a,
            &["r", "alpha", "a", "b"],
            |c| {
                let data: Vec<Summary> = (0..c[0].len())
                    .map(|i| Summary {
                        x: c[0][i],
                        t_x: c[1][i],
                        t: c[2][i],
                    })
                    .collect();
                let fit = BgNbd::fit(&data)?;
                let p = fit.params;
                Ok((vec![p.r, p.alpha, p.a, p.b], fit.log_likelihood, data.len()))
            },
        ))
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
        Ok(fit_function("gamma_gamma_fit", a, &["p", "q", "v"], |c| {
            let data: Vec<(f64, f64)> = (0..c[0].len())
                .map(|i| (c[0][i], c[1][i]))
                .filter(|(x, m)| *x > 0.0 && *m > 0.0)
                .collect();
            let fit = GammaGamma::fit(&data)?;
            let p = fit.params;
            Ok((vec![p.p, p.q, p.v], fit.log_likelihood, data.len()))
        }))
    }
}
