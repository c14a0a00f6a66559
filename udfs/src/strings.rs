//! Reading any Arrow string array (`Utf8`, `LargeUtf8`, `Utf8View`) value by value, so a
//! function of several string arguments does not need a code path per type combination.

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{exec_err, Result, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, TypeSignature};

/// A borrowed string column of any of Arrow's three string types.
pub enum Strs<'a> {
    Utf8(&'a datafusion::arrow::array::StringArray),
    Large(&'a datafusion::arrow::array::LargeStringArray),
    View(&'a datafusion::arrow::array::StringViewArray),
    /// An all-NULL column (`NULL` literals).
    Null,
}

impl<'a> Strs<'a> {
    pub fn new(name: &str, a: &'a ArrayRef) -> Result<Self> {
        Ok(match a.data_type() {
            DataType::Utf8 => Strs::Utf8(a.as_string::<i32>()),
            DataType::LargeUtf8 => Strs::Large(a.as_string::<i64>()),
            DataType::Utf8View => Strs::View(a.as_string_view()),
            DataType::Null => Strs::Null,
            other => return exec_err!("{name} expects strings, got {other}"),
        })
    }

    #[inline]
    pub fn get(&self, i: usize) -> Option<&'a str> {
        match self {
            Strs::Utf8(a) => a.is_valid(i).then(|| a.value(i)),
            Strs::Large(a) => a.is_valid(i).then(|| a.value(i)),
            Strs::View(a) => a.is_valid(i).then(|| a.value(i)),
            Strs::Null => None,
        }
    }
}

/// The arguments as arrays of one length, and that length (scalars are broadcast).
pub fn arg_arrays(args: &[ColumnarValue], rows: usize) -> Result<Vec<ArrayRef>> {
    args.iter().map(|a| a.to_array(rows)).collect()
}

/// True when every argument is a scalar: the result should be a scalar too.
pub fn all_scalars(args: &[ColumnarValue]) -> bool {
    args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)))
}

/// The result column as the function returns it: a scalar when every argument was one.
pub fn columnar(out: ArrayRef, scalar: bool) -> Result<ColumnarValue> {
    Ok(if scalar {
        ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?)
    } else {
        ColumnarValue::Array(out)
    })
}

/// Every pair of Arrow's three string types, `more` appended to each: the signatures of a
/// function of two strings (and of constant arguments after them).
pub fn string_pairs(more: &[DataType]) -> Vec<TypeSignature> {
    let strings = [DataType::Utf8, DataType::LargeUtf8, DataType::Utf8View];
    let mut sigs = Vec::new();
    for a in &strings {
        for b in &strings {
            let mut types = vec![a.clone(), b.clone()];
            types.extend_from_slice(more);
            sigs.push(TypeSignature::Exact(types));
        }
    }
    sigs
}

/// A boolean function of two strings as a UDF (`within_one_edit`, `is_given_name_of`): true
/// or false per row, NULL when either side is NULL. Two are the same function when their
/// names are (function pointers have no stable identity to compare).
#[derive(Debug)]
pub struct StringPairTest {
    name: &'static str,
    test: fn(&str, &str) -> bool,
    signature: datafusion::logical_expr::Signature,
}

impl PartialEq for StringPairTest {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for StringPairTest {}

impl std::hash::Hash for StringPairTest {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl StringPairTest {
    pub fn new(name: &'static str, test: fn(&str, &str) -> bool) -> Self {
        Self {
            name,
            test,
            signature: datafusion::logical_expr::Signature::one_of(
                string_pairs(&[]),
                datafusion::logical_expr::Volatility::Immutable,
            ),
        }
    }
}

impl datafusion::logical_expr::ScalarUDFImpl for StringPairTest {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &datafusion::logical_expr::Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(
        &self,
        args: datafusion::logical_expr::ScalarFunctionArgs,
    ) -> Result<ColumnarValue> {
        let scalar = all_scalars(&args.args);
        let arrays = arg_arrays(&args.args, args.number_rows)?;
        let (a, b) = (
            Strs::new(self.name, &arrays[0])?,
            Strs::new(self.name, &arrays[1])?,
        );
        let out: datafusion::arrow::array::BooleanArray = (0..arrays[0].len())
            .map(|i| Some((self.test)(a.get(i)?, b.get(i)?)))
            .collect();
        columnar(std::sync::Arc::new(out), scalar)
    }
}
