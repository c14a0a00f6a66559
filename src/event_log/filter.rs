//! SQL over one collected event: `where` conditions and `value` expressions of event
//! triggers and live measures, planned once against the events table's columns and evaluated
//! per event (planning per event would cost milliseconds).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::DataType;
use datafusion::common::DFSchema;
use datafusion::physical_plan::PhysicalExpr;
use datafusion::prelude::SessionContext;

use super::Event;

/// Why an expression over collected events does not plan.
#[derive(Debug, thiserror::Error)]
pub enum ExprError {
    /// The events table's schema does not convert (cannot happen with a correct schema).
    #[error(transparent)]
    Schema(datafusion::error::DataFusionError),
    /// `sql` does not parse or plan.
    #[error("{sql:?}: {source}")]
    Sql {
        sql: String,
        source: datafusion::error::DataFusionError,
    },
    /// The problem is in an event filter's `where` condition.
    #[error("where {0}")]
    Where(Box<ExprError>),
}

/// One SQL expression over the events table's columns.
pub struct EventExpr {
    expr: Arc<dyn PhysicalExpr>,
}

impl EventExpr {
    /// Plan `sql`; `ctx` supplies the functions it may call (`detail`, ...).
    pub fn new(ctx: &SessionContext, sql: &str) -> Result<EventExpr, ExprError> {
        let schema = DFSchema::try_from(super::read::schema().as_ref().clone())
            .map_err(ExprError::Schema)?;
        let at = |source| ExprError::Sql {
            sql: sql.to_string(),
            source,
        };
        let expr = ctx.parse_sql_expr(sql, &schema).map_err(at)?;
        let expr = ctx.create_physical_expr(expr, &schema).map_err(at)?;
        Ok(EventExpr { expr })
    }

    /// The value for row `row` of `batch` (a batch of [`super::read::batch`]).
    pub fn eval(&self, batch: &RecordBatch, row: usize) -> Option<ArrayRef> {
        let one = batch.slice(row, 1);
        match self.expr.evaluate(&one).and_then(|v| v.into_array(1)) {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::warn!("expression over a collected event: {e}");
                None
            }
        }
    }

    /// The value as a number (NULL, or text that is no number: none).
    pub fn number(&self, batch: &RecordBatch, row: usize) -> Option<f64> {
        let a = self.eval(batch, row)?;
        let a = arrow::compute::cast(&a, &DataType::Float64).ok()?;
        let f = a.as_primitive::<arrow::datatypes::Float64Type>();
        f.is_valid(0).then(|| f.value(0))
    }

    /// The value as text.
    pub fn text(&self, batch: &RecordBatch, row: usize) -> Option<String> {
        let a = self.eval(batch, row)?;
        let a = arrow::compute::cast(&a, &DataType::Utf8).ok()?;
        let s = a.as_string::<i32>();
        s.is_valid(0).then(|| s.value(0).to_string())
    }
}

/// An event name and an optional condition.
pub struct EventFilter {
    pub event: String,
    condition: Option<EventExpr>,
}

impl EventFilter {
    pub fn new(
        ctx: &SessionContext,
        event: &str,
        condition: Option<&str>,
    ) -> Result<Self, ExprError> {
        Ok(EventFilter {
            event: event.to_string(),
            condition: condition
                .map(|c| EventExpr::new(ctx, c).map_err(|e| ExprError::Where(Box::new(e))))
                .transpose()?,
        })
    }

    /// Does `e`, row `row` of `batch`, match?
    pub fn matches(&self, e: &Event, batch: &RecordBatch, row: usize) -> bool {
        if e.event != self.event {
            return false;
        }
        let Some(c) = &self.condition else {
            return true;
        };
        c.eval(batch, row)
            .and_then(|a| {
                let b = a.as_boolean_opt()?;
                Some(b.is_valid(0) && b.value(0))
            })
            .unwrap_or(false)
    }
}
