//! `detail(details, 'key')`: one value of an activity's details. Panorama keeps the columns an
//! activity source lists in `details` as one JSON text per activity (`{"channel":"email",
//! "quantity":"2"}`); this reads a key back as text — a string as it is, a number or boolean
//! as written, anything else as its JSON — NULL when the text is NULL, not a JSON object, or
//! has no such key (or it is `null`).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{exec_err, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};

use crate::strings::{all_scalars, arg_arrays, Strs};

/// The value of `key` in the JSON object `text`, as text.
pub fn detail_of(text: &str, key: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    match v.as_object()?.get(key)? {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// `detail(details, key)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Detail {
    signature: Signature,
}

impl Default for Detail {
    fn default() -> Self {
        Self::new()
    }
}

impl Detail {
    pub fn new() -> Self {
        let text = [DataType::Utf8, DataType::LargeUtf8, DataType::Utf8View];
        let mut sigs = Vec::new();
        for a in &text {
            for b in &text {
                sigs.push(TypeSignature::Exact(vec![a.clone(), b.clone()]));
            }
        }
        Detail {
            signature: Signature::one_of(sigs, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for Detail {
    fn name(&self) -> &str {
        "detail"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if args.args.len() != 2 {
            return exec_err!("detail(details, 'key') takes two arguments");
        }
        let scalar = all_scalars(&args.args);
        let arrays = arg_arrays(&args.args, args.number_rows)?;
        let (texts, keys) = (
            Strs::new("detail", &arrays[0])?,
            Strs::new("detail", &arrays[1])?,
        );
        let mut out = StringBuilder::new();
        for i in 0..args.number_rows {
            match (texts.get(i), keys.get(i)) {
                (Some(t), Some(k)) => out.append_option(detail_of(t, k)),
                _ => out.append_null(),
            }
        }
        let array: ArrayRef = Arc::new(out.finish());
        Ok(if scalar {
            ColumnarValue::Scalar(ScalarValue::try_from_array(&array, 0)?)
        } else {
            ColumnarValue::Array(array)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::detail_of;

    #[test]
    fn keys_read_back_as_text() {
        let d = r#"{"channel":"e\"mail","quantity":"2","n":3,"ok":true,"none":null}"#;
        assert_eq!(detail_of(d, "channel").as_deref(), Some("e\"mail"));
        assert_eq!(detail_of(d, "quantity").as_deref(), Some("2"));
        assert_eq!(detail_of(d, "n").as_deref(), Some("3"));
        assert_eq!(detail_of(d, "ok").as_deref(), Some("true"));
        assert_eq!(detail_of(d, "none"), None);
        assert_eq!(detail_of(d, "missing"), None);
        assert_eq!(detail_of("not json", "channel"), None);
        assert_eq!(detail_of("[1]", "channel"), None);
    }
}
