//! Applying a per-value string function to any Arrow string array, keeping its type.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, GenericStringBuilder, LargeStringArray, StringArray, StringViewArray,
    StringViewBuilder,
};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{exec_err, Result, ScalarValue};
use datafusion::logical_expr::ColumnarValue;

/// Map `f` over a string column or scalar. `f` returns `None` for "no usable value".
pub fn map_strings(
    name: &str,
    input: &ColumnarValue,
    mut f: impl FnMut(&str, &mut String) -> bool,
) -> Result<ColumnarValue> {
    match input {
        ColumnarValue::Scalar(s) => {
            let mut buf = String::new();
            let mut apply = |s: &str| -> Option<String> {
                buf.clear();
                f(s, &mut buf).then(|| buf.clone())
            };
            let out = match s {
                ScalarValue::Utf8(v) => ScalarValue::Utf8(v.as_deref().and_then(&mut apply)),
                ScalarValue::LargeUtf8(v) => {
                    ScalarValue::LargeUtf8(v.as_deref().and_then(&mut apply))
                }
                ScalarValue::Utf8View(v) => {
                    ScalarValue::Utf8View(v.as_deref().and_then(&mut apply))
                }
                ScalarValue::Null => ScalarValue::Utf8(None),
                other => return exec_err!("{name} expects a string, got {}", other.data_type()),
            };
            Ok(ColumnarValue::Scalar(out))
        }
        ColumnarValue::Array(a) => {
            let mut buf = String::new();
            macro_rules! fill {
                ($arr:expr, $b:expr) => {{
                    for v in $arr.iter() {
                        match v {
                            Some(s) => {
                                buf.clear();
                                if f(s, &mut buf) {
                                    $b.append_value(&buf)
                                } else {
                                    $b.append_null()
                                }
                            }
                            None => $b.append_null(),
                        }
                    }
                }};
            }
            let out: ArrayRef = match a.data_type() {
                DataType::Utf8 => {
                    let arr = a.as_any().downcast_ref::<StringArray>().expect("Utf8");
                    let mut b = GenericStringBuilder::<i32>::with_capacity(
                        arr.len(),
                        arr.value_data().len(),
                    );
                    fill!(arr, b);
                    Arc::new(b.finish())
                }
                DataType::LargeUtf8 => {
                    let arr = a
                        .as_any()
                        .downcast_ref::<LargeStringArray>()
                        .expect("LargeUtf8");
                    let mut b = GenericStringBuilder::<i64>::with_capacity(
                        arr.len(),
                        arr.value_data().len(),
                    );
                    fill!(arr, b);
                    Arc::new(b.finish())
                }
                DataType::Utf8View => {
                    let arr = a
                        .as_any()
                        .downcast_ref::<StringViewArray>()
                        .expect("Utf8View");
                    let mut b = StringViewBuilder::with_capacity(arr.len());
                    fill!(arr, b);
                    Arc::new(b.finish())
                }
                DataType::Null => Arc::new(StringArray::new_null(a.len())),
                other => return exec_err!("{name} expects a string, got {other}"),
            };
            Ok(ColumnarValue::Array(out))
        }
    }
}

/// The return type for a string function: same as the input, `Utf8` for NULL literals.
pub fn string_return_type(name: &str, arg: &DataType) -> Result<DataType> {
    match arg {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Ok(arg.clone()),
        DataType::Null => Ok(DataType::Utf8),
        other => exec_err!("{name} expects a string, got {other}"),
    }
}
