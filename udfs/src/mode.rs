//! `mode(value)`: the most frequent non-null value of a group, as text (a customer's favourite
//! channel, store or product category). Ties go to the smallest value, so the result never
//! depends on row order. The name and meaning follow DuckDB's `mode`, so measure SQL runs on
//! both engines.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, ListArray, StringArray, UInt64Array};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{exec_err, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Signature, Volatility};

/// The `mode` aggregate.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Mode {
    signature: Signature,
}

impl Default for Mode {
    fn default() -> Self {
        Self::new()
    }
}

impl Mode {
    pub fn new() -> Self {
        Mode {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for Mode {
    fn name(&self) -> &str {
        "mode"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let item = |t| Arc::new(Field::new_list_field(t, true));
        Ok(vec![
            Arc::new(Field::new(
                format!("{}_values", args.name),
                DataType::List(item(DataType::Utf8)),
                true,
            )),
            Arc::new(Field::new(
                format!("{}_counts", args.name),
                DataType::List(item(DataType::UInt64)),
                true,
            )),
        ])
    }
    fn accumulator(&self, _acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::<ModeAccumulator>::default())
    }
}

#[derive(Debug, Default)]
struct ModeAccumulator {
    counts: HashMap<String, u64>,
}

impl ModeAccumulator {
    fn add(&mut self, values: &ArrayRef, counts: Option<&UInt64Array>) -> Result<()> {
        let text = cast(values, &DataType::Utf8)?;
        let text = text.as_string::<i32>();
        for (i, v) in text.iter().enumerate() {
            if let Some(v) = v {
                let n = counts.map_or(1, |c| c.value(i));
                match self.counts.get_mut(v) {
                    Some(c) => *c += n,
                    None => {
                        self.counts.insert(v.to_string(), n);
                    }
                }
            }
        }
        Ok(())
    }
}

impl Accumulator for ModeAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.add(&values[0], None)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        if states.len() != 2 {
            return exec_err!("mode: bad state");
        }
        let (values, counts) = (states[0].as_list::<i32>(), states[1].as_list::<i32>());
        for row in 0..values.len() {
            if values.is_null(row) {
                continue;
            }
            let counts = counts.value(row);
            let counts = counts
                .as_primitive_opt::<datafusion::arrow::datatypes::UInt64Type>()
                .ok_or_else(|| {
                    datafusion::error::DataFusionError::Execution("mode: bad counts".into())
                })?;
            self.add(&values.value(row), Some(counts))?;
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let (values, counts): (Vec<&str>, Vec<u64>) =
            self.counts.iter().map(|(k, v)| (k.as_str(), *v)).unzip();
        let list = |item: ArrayRef, t: DataType| -> ScalarValue {
            let len = item.len();
            ScalarValue::List(Arc::new(ListArray::new(
                Arc::new(Field::new_list_field(t, true)),
                OffsetBuffer::from_lengths([len]),
                item,
                None,
            )))
        };
        Ok(vec![
            list(Arc::new(StringArray::from(values)), DataType::Utf8),
            list(Arc::new(UInt64Array::from(counts)), DataType::UInt64),
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let best = self
            .counts
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
            .map(|(k, _)| k.clone());
        Ok(ScalarValue::Utf8(best))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.counts.keys().map(|k| k.capacity() + 32).sum::<usize>()
    }
}
