//! `mode(value)`: the most frequent non-null value of a group, as text (a customer's favourite
//! channel, store or product category). Ties go to the smallest value, so the result never
//! depends on row order. The name and meaning follow DuckDB's `mode`, so measure SQL runs on
//! both engines.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::BooleanArray;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, ListArray, StringArray, UInt64Array};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{exec_err, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};

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
    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }
    fn create_groups_accumulator(
        &self,
        _args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::<ModeGroups>::default())
    }
}

/// The counts of many groups at once: values are interned once, and each group keeps a short
/// list of (value id, count) — a customer has few distinct channels.
#[derive(Debug, Default)]
struct ModeGroups {
    ids: HashMap<String, u32>,
    names: Vec<String>,
    groups: Vec<Vec<(u32, u64)>>,
}

impl ModeGroups {
    fn add(&mut self, group: usize, value: &str, n: u64) {
        let id = match self.ids.get(value) {
            Some(id) => *id,
            None => {
                let id = self.names.len() as u32;
                self.names.push(value.to_string());
                self.ids.insert(value.to_string(), id);
                id
            }
        };
        let counts = &mut self.groups[group];
        match counts.iter_mut().find(|(v, _)| *v == id) {
            Some((_, c)) => *c += n,
            None => counts.push((id, n)),
        }
    }

    fn best(&self, counts: &[(u32, u64)]) -> Option<&str> {
        counts
            .iter()
            .max_by(|a, b| {
                a.1.cmp(&b.1)
                    .then_with(|| self.names[b.0 as usize].cmp(&self.names[a.0 as usize]))
            })
            .map(|(v, _)| self.names[*v as usize].as_str())
    }
}

/// The state columns: per group a list of values and a list of their counts.
fn state_lists(
    offsets: OffsetBuffer<i32>,
    values: StringArray,
    counts: UInt64Array,
) -> Vec<ArrayRef> {
    vec![
        Arc::new(ListArray::new(
            Arc::new(Field::new_list_field(DataType::Utf8, true)),
            offsets.clone(),
            Arc::new(values),
            None,
        )),
        Arc::new(ListArray::new(
            Arc::new(Field::new_list_field(DataType::UInt64, true)),
            offsets,
            Arc::new(counts),
            None,
        )),
    ]
}

impl GroupsAccumulator for ModeGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.groups.resize_with(total_num_groups, Vec::new);
        let text = cast(&values[0], &DataType::Utf8)?;
        let text = text.as_string::<i32>();
        for (row, &group) in group_indices.iter().enumerate() {
            if opt_filter.is_some_and(|f| !f.is_valid(row) || !f.value(row)) || text.is_null(row) {
                continue;
            }
            self.add(group, text.value(row), 1);
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let taken = emit_to.take_needed(&mut self.groups);
        Ok(Arc::new(StringArray::from_iter(
            taken.iter().map(|c| self.best(c)),
        )))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let taken = emit_to.take_needed(&mut self.groups);
        let lengths = taken.iter().map(Vec::len);
        let offsets = OffsetBuffer::from_lengths(lengths);
        let values: Vec<&str> = taken
            .iter()
            .flatten()
            .map(|(v, _)| self.names[*v as usize].as_str())
            .collect();
        let values = StringArray::from(values);
        let counts: Vec<u64> = taken.iter().flatten().map(|(_, c)| *c).collect();
        Ok(state_lists(offsets, values, UInt64Array::from(counts)))
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        if values.len() != 2 {
            return exec_err!("mode: bad state");
        }
        self.groups.resize_with(total_num_groups, Vec::new);
        let (names, counts) = (values[0].as_list::<i32>(), values[1].as_list::<i32>());
        let text = cast(names.values(), &DataType::Utf8)?;
        let text = text.as_string::<i32>();
        let n = counts
            .values()
            .as_primitive_opt::<datafusion::arrow::datatypes::UInt64Type>()
            .ok_or_else(|| {
                datafusion::error::DataFusionError::Execution("mode: bad counts".into())
            })?;
        let offsets = names.value_offsets();
        for (row, &group) in group_indices.iter().enumerate() {
            if names.is_null(row) {
                continue;
            }
            for i in offsets[row] as usize..offsets[row + 1] as usize {
                if !text.is_null(i) {
                    self.add(group, text.value(i), n.value(i));
                }
            }
        }
        Ok(())
    }

    /// Each row as a state of its own: its value counted once (nothing for NULL or filtered).
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let text = cast(&values[0], &DataType::Utf8)?;
        let text = text.as_string::<i32>();
        let keep: Vec<bool> = (0..text.len())
            .map(|i| !text.is_null(i) && opt_filter.is_none_or(|f| f.is_valid(i) && f.value(i)))
            .collect();
        let offsets = OffsetBuffer::from_lengths(keep.iter().map(|k| usize::from(*k)));
        let kept: Vec<&str> = keep
            .iter()
            .enumerate()
            .filter(|(_, k)| **k)
            .map(|(i, _)| text.value(i))
            .collect();
        let ones = UInt64Array::from(vec![1u64; kept.len()]);
        Ok(state_lists(offsets, StringArray::from(kept), ones))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self
                .names
                .iter()
                .map(|n| 2 * n.capacity() + 48)
                .sum::<usize>()
            + self
                .groups
                .iter()
                .map(|g| g.capacity() * 16 + 24)
                .sum::<usize>()
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
