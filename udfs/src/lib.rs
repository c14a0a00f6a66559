//! DataFusion functions for customer data: normalizers today; similarity and merge precedence
//! join them as unification grows.
//!
//! Every function is vectorized over Arrow string arrays (`Utf8`, `LargeUtf8`, `Utf8View`),
//! keeps the input's string type, and maps NULL to NULL.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> datafusion::error::Result<()> {
//! let ctx = datafusion::prelude::SessionContext::new();
//! panorama_udfs::register_all(&ctx);
//! let df = ctx.sql("SELECT normalize_email(' Jon.Smith@X.com ') AS e").await?;
//! let batches = df.collect().await?;
//! assert_eq!(batches[0].num_rows(), 1);
//! # Ok(()) }
//! ```

pub mod normalize;
mod string_map;

use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::SessionContext;

/// All scalar functions of this crate.
pub fn scalar_functions() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::from(normalize::NormalizeEmail::new()),
        ScalarUDF::from(normalize::NormalizeName::new()),
    ]
}

/// Register every function of this crate on a context.
pub fn register_all(ctx: &SessionContext) {
    for f in scalar_functions() {
        ctx.register_udf(f);
    }
}
