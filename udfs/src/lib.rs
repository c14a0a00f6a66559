//! DataFusion functions for customer data: normalizers, string similarity, and merge
//! precedence aggregates.
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
//! let e = datafusion::arrow::util::display::array_value_to_string(batches[0].column(0), 0)?;
//! assert_eq!(e, "jon.smith@x.com");
//! # Ok(()) }
//! ```

pub mod block_key;
pub mod dates;
pub mod details;
pub mod merge;
pub mod mode;
pub mod most_common;
pub mod nicknames;
pub mod normalize;
pub mod similarity;
pub mod size_cap;
mod string_map;
mod strings;

use datafusion::logical_expr::{AggregateUDF, ScalarUDF};
use datafusion::prelude::SessionContext;

/// All scalar functions of this crate.
pub fn scalar_functions() -> Vec<ScalarUDF> {
    use similarity::{Measure, Similarity};
    vec![
        ScalarUDF::from(normalize::NormalizeEmail::new()),
        ScalarUDF::from(normalize::NormalizeName::new()),
        ScalarUDF::from(normalize::NormalizeSurname::new()),
        ScalarUDF::from(normalize::SurnameCore::new()),
        ScalarUDF::from(normalize::NormalizePhone::new()),
        ScalarUDF::from(normalize::PhoneDigits::new()),
        ScalarUDF::from(normalize::NormalizeIdentifier::new()),
        ScalarUDF::from(dates::ParseDate::new()),
        ScalarUDF::from(normalize::CanonicalFirstName::new()),
        ScalarUDF::from(strings::StringPairTest::new(
            "is_given_name_of",
            normalize::is_given_name_of,
        )),
        ScalarUDF::from(strings::StringPairTest::new(
            "within_one_edit",
            similarity::within_one_edit,
        )),
        ScalarUDF::from(normalize::SplitFullName::new()),
        ScalarUDF::from(normalize::NormalizeAddress::new()),
        ScalarUDF::from(normalize::NormalizeCompany::new()),
        ScalarUDF::from(Similarity::new(Measure::JaroWinkler)),
        ScalarUDF::from(Similarity::new(Measure::Levenshtein)),
        ScalarUDF::from(Similarity::new(Measure::LevenshteinSim)),
        ScalarUDF::from(Similarity::new(Measure::DamerauLevenshtein)),
        ScalarUDF::from(Similarity::new(Measure::DamerauLevenshteinSim)),
        ScalarUDF::from(Similarity::new(Measure::TokenJaccard)),
        ScalarUDF::from(Similarity::new(Measure::QgramSim)),
        ScalarUDF::from(similarity::DoubleMetaphone::new()),
        ScalarUDF::from(details::Detail::new()),
        ScalarUDF::from(block_key::BlockKeyHash::new()),
    ]
}

/// All aggregate functions of this crate (merge precedence, `most_common`, `mode`).
pub fn aggregate_functions() -> Vec<AggregateUDF> {
    use merge::{MergePrecedence, Policy};
    [
        Policy::MostRecent,
        Policy::LeastRecent,
        Policy::ByPriority,
        Policy::MostFilled,
    ]
    .into_iter()
    .map(|p| AggregateUDF::from(MergePrecedence::new(p)))
    .chain([
        AggregateUDF::from(mode::Mode::new()),
        AggregateUDF::from(most_common::MostCommon::new()),
    ])
    .collect()
}

/// Register every function of this crate on a context.
pub fn register_all(ctx: &SessionContext) {
    for f in scalar_functions() {
        ctx.register_udf(f);
    }
    for f in aggregate_functions() {
        ctx.register_udaf(f);
    }
}
