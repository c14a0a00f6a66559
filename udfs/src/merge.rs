//! Merge precedence as aggregate functions: which of a cluster's values becomes the unified
//! profile's value.
//!
//! - `most_recent(value, ts)`: the non-null value with the latest `ts`;
//! - `least_recent(value, ts)`: the non-null value with the earliest `ts`;
//! - `by_priority(value, priority)`: the non-null value with the lowest priority number
//!   (1 = most trusted source);
//! - `most_filled(value)`: the longest non-null value (most characters of a string, most
//!   elements of a list; for other types the largest).
//!
//! Ties are broken by the value itself, so the result never depends on row order.

use std::cmp::Ordering;
use std::sync::Arc;

use datafusion::arrow::array::BooleanArray;
use std::collections::HashMap;

use datafusion::arrow::array::{
    make_comparator, new_null_array, Array, ArrayRef, DynComparator, UInt64Array,
};
use datafusion::arrow::compute::interleave;
use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{exec_err, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};

/// Which end of the key wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    MostRecent,
    LeastRecent,
    ByPriority,
    MostFilled,
}

impl Policy {
    fn name(&self) -> &'static str {
        match self {
            Policy::MostRecent => "most_recent",
            Policy::LeastRecent => "least_recent",
            Policy::ByPriority => "by_priority",
            Policy::MostFilled => "most_filled",
        }
    }

    /// Larger keys win for these; smaller for the others.
    fn prefers_larger(&self) -> bool {
        matches!(self, Policy::MostRecent | Policy::MostFilled)
    }

    fn takes_key(&self) -> bool {
        !matches!(self, Policy::MostFilled)
    }
}

/// A merge-precedence aggregate.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MergePrecedence {
    policy: Policy,
    signature: Signature,
}

impl MergePrecedence {
    pub fn new(policy: Policy) -> Self {
        let arity = if policy.takes_key() { 2 } else { 1 };
        MergePrecedence {
            policy,
            signature: Signature::any(arity, Volatility::Immutable),
        }
    }
}

/// The key `most_filled` ranks values by.
fn fill_key(values: &ArrayRef) -> Result<ArrayRef> {
    use datafusion::arrow::array::AsArray;
    let n = values.len();
    let lens: UInt64Array = match values.data_type() {
        DataType::Utf8 => values
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(|s| s.chars().count() as u64))
            .collect(),
        DataType::LargeUtf8 => values
            .as_string::<i64>()
            .iter()
            .map(|v| v.map(|s| s.chars().count() as u64))
            .collect(),
        DataType::Utf8View => values
            .as_string_view()
            .iter()
            .map(|v| v.map(|s| s.chars().count() as u64))
            .collect(),
        DataType::List(_) => {
            let l = values.as_list::<i32>();
            (0..n)
                .map(|i| l.is_valid(i).then(|| l.value_length(i) as u64))
                .collect()
        }
        // Other types: rank by the value itself (the largest wins).
        _ => return Ok(values.clone()),
    };
    Ok(Arc::new(lens))
}

/// The key `most_filled` ranks by: a length for strings and lists, else the value itself.
fn fill_key_type(value: &DataType) -> DataType {
    match value {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::List(_) => {
            DataType::UInt64
        }
        other => other.clone(),
    }
}

impl MergePrecedence {
    fn types(&self, acc_args: &AccumulatorArgs) -> Result<(DataType, DataType)> {
        let value_type = acc_args.exprs[0].data_type(acc_args.schema)?;
        let key_type = if self.policy.takes_key() {
            acc_args.exprs[1].data_type(acc_args.schema)?
        } else {
            fill_key_type(&value_type)
        };
        Ok((value_type, key_type))
    }
}

impl AggregateUDFImpl for MergePrecedence {
    fn name(&self) -> &str {
        self.policy.name()
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[0].clone())
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let value = args.input_fields[0].data_type().clone();
        let key = if self.policy.takes_key() {
            args.input_fields[1].data_type().clone()
        } else {
            fill_key_type(&value)
        };
        Ok(vec![
            Arc::new(Field::new(format!("{}_value", args.name), value, true)),
            Arc::new(Field::new(format!("{}_key", args.name), key, true)),
        ])
    }
    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        acc_args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        let (value_type, key_type) = self.types(&acc_args)?;
        Ok(Box::new(BestGroups::new(self.policy, value_type, key_type)))
    }

    fn accumulator(&self, acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let (value_type, key_type) = self.types(&acc_args)?;
        Ok(Box::new(BestAccumulator {
            policy: self.policy,
            value: ScalarValue::try_from(&value_type)?,
            key: ScalarValue::try_from(&key_type)?,
        }))
    }
}

#[derive(Debug)]
struct BestAccumulator {
    policy: Policy,
    value: ScalarValue,
    key: ScalarValue,
}

impl BestAccumulator {
    /// Does (key_a, value_a) beat (key_b, value_b)? A missing key loses to any key.
    fn beats(&self, a_null: bool, b_null: bool, ka: Ordering, va: Ordering) -> bool {
        if a_null != b_null {
            return b_null;
        }
        let k = if self.policy.prefers_larger() {
            ka
        } else {
            ka.reverse()
        };
        match k {
            Ordering::Greater => true,
            Ordering::Less => false,
            Ordering::Equal => va == Ordering::Greater,
        }
    }

    /// Fold rows `(values[i], keys[i])` into the current best.
    fn fold(&mut self, values: &ArrayRef, keys: &ArrayRef) -> Result<()> {
        let opts = SortOptions {
            descending: false,
            nulls_first: true,
        };
        let key_cmp = make_comparator(keys.as_ref(), keys.as_ref(), opts)?;
        let val_cmp = make_comparator(values.as_ref(), values.as_ref(), opts)?;
        let mut best: Option<usize> = None;
        for i in 0..values.len() {
            if values.is_null(i) {
                continue;
            }
            best = match best {
                None => Some(i),
                Some(b)
                    if self.beats(
                        keys.is_null(i),
                        keys.is_null(b),
                        key_cmp(i, b),
                        val_cmp(i, b),
                    ) =>
                {
                    Some(i)
                }
                keep => keep,
            };
        }
        let Some(i) = best else {
            return Ok(());
        };
        // Nested scalars (structs, lists) hold slices of the input's buffers; with string views
        // those buffers are whole batches. Compact them so each group keeps only its value.
        let value = ScalarValue::try_from_array(values, i)?.compacted();
        let key = ScalarValue::try_from_array(keys, i)?.compacted();
        if self.value.is_null() {
            self.value = value;
            self.key = key;
            return Ok(());
        }
        let ka = key.partial_cmp(&self.key).unwrap_or(Ordering::Equal);
        let va = value.partial_cmp(&self.value).unwrap_or(Ordering::Equal);
        if self.beats(key.is_null(), self.key.is_null(), ka, va) {
            self.value = value;
            self.key = key;
        }
        Ok(())
    }
}

impl Accumulator for BestAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let keys = if self.policy.takes_key() {
            values.get(1).cloned().ok_or_else(|| {
                datafusion::error::DataFusionError::Execution(format!(
                    "{} needs two arguments",
                    self.policy.name()
                ))
            })?
        } else {
            fill_key(&values[0])?
        };
        self.fold(&values[0], &keys)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        if states.len() != 2 {
            return exec_err!("{}: bad state", self.policy.name());
        }
        self.fold(&states[0], &states[1])
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.value.clone(), self.key.clone()])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(self.value.clone())
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.value.size() + self.key.size()
            - std::mem::size_of_val(&self.value)
            - std::mem::size_of_val(&self.key)
    }
}

/// The same choice for many groups at once. Input arrays are kept, and each group remembers
/// only where its best row is (array, row): comparisons use Arrow comparators and the result
/// is assembled with `interleave`, so no per-group scalars are built.
#[derive(Debug)]
struct BestGroups {
    policy: Policy,
    value_type: DataType,
    key_type: DataType,
    values: Vec<ArrayRef>,
    keys: Vec<ArrayRef>,
    /// Per group: (array index, row) of the best row so far.
    best: Vec<Option<(u32, u32)>>,
    /// Per group: the best row of the current batch (reused between batches).
    scratch: Vec<Option<u32>>,
    /// Bytes of the kept arrays, each underlying buffer counted once: batches are often
    /// slices of one allocation, and counting the allocation per slice made DataFusion's
    /// memory pool believe the merge held many times the memory it did.
    kept_bytes: usize,
    kept_buffers: std::collections::HashSet<usize>,
}

/// Bytes of `data`'s buffers not yet in `seen` (by allocation address), children included.
fn unseen_bytes(
    data: &datafusion::arrow::array::ArrayData,
    seen: &mut std::collections::HashSet<usize>,
) -> usize {
    let mut n = 0;
    let buffers = data
        .buffers()
        .iter()
        .chain(data.nulls().map(|b| b.buffer()));
    for b in buffers {
        if seen.insert(b.data_ptr().as_ptr() as usize) {
            n += b.capacity();
        }
    }
    for child in data.child_data() {
        n += unseen_bytes(child, seen);
    }
    n
}

impl BestGroups {
    fn new(policy: Policy, value_type: DataType, key_type: DataType) -> Self {
        BestGroups {
            policy,
            value_type,
            key_type,
            values: Vec::new(),
            keys: Vec::new(),
            best: Vec::new(),
            scratch: Vec::new(),
            kept_bytes: 0,
            kept_buffers: std::collections::HashSet::new(),
        }
    }

    fn judge(&self) -> BestAccumulator {
        BestAccumulator {
            policy: self.policy,
            value: ScalarValue::Null,
            key: ScalarValue::Null,
        }
    }

    fn fold(
        &mut self,
        values: &ArrayRef,
        keys: &ArrayRef,
        group_indices: &[usize],
        filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        if self.best.len() < total_num_groups {
            self.best.resize(total_num_groups, None);
        }
        self.scratch.clear();
        self.scratch.resize(total_num_groups, None);
        let opts = SortOptions {
            descending: false,
            nulls_first: true,
        };
        let judge = self.judge();
        let key_cmp = make_comparator(keys.as_ref(), keys.as_ref(), opts)?;
        let val_cmp = make_comparator(values.as_ref(), values.as_ref(), opts)?;
        let mut touched = Vec::new();
        for (i, &g) in group_indices.iter().enumerate() {
            if values.is_null(i) || filter.is_some_and(|f| f.is_null(i) || !f.value(i)) {
                continue;
            }
            match self.scratch[g] {
                None => {
                    self.scratch[g] = Some(i as u32);
                    touched.push(g);
                }
                Some(b) => {
                    let b = b as usize;
                    if judge.beats(
                        keys.is_null(i),
                        keys.is_null(b),
                        key_cmp(i, b),
                        val_cmp(i, b),
                    ) {
                        self.scratch[g] = Some(i as u32);
                    }
                }
            }
        }
        if touched.is_empty() {
            return Ok(());
        }
        let this = self.values.len() as u32;
        self.kept_bytes += unseen_bytes(&values.to_data(), &mut self.kept_buffers)
            + unseen_bytes(&keys.to_data(), &mut self.kept_buffers);
        self.values.push(values.clone());
        self.keys.push(keys.clone());
        // Comparators against earlier arrays, made once per array this batch meets.
        let mut against: HashMap<u32, (DynComparator, DynComparator)> = HashMap::new();
        for g in touched {
            let i = self.scratch[g].expect("touched groups have a row") as usize;
            let replace = match self.best[g] {
                None => true,
                Some((a, r)) => {
                    let (kc, vc) = match against.entry(a) {
                        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::hash_map::Entry::Vacant(e) => e.insert((
                            make_comparator(keys.as_ref(), self.keys[a as usize].as_ref(), opts)?,
                            make_comparator(
                                values.as_ref(),
                                self.values[a as usize].as_ref(),
                                opts,
                            )?,
                        )),
                    };
                    let r = r as usize;
                    judge.beats(
                        keys.is_null(i),
                        self.keys[a as usize].is_null(r),
                        kc(i, r),
                        vc(i, r),
                    )
                }
            };
            if replace {
                self.best[g] = Some((this, i as u32));
            }
        }
        Ok(())
    }

    /// The chosen values (or keys) of `taken` groups, NULL where a group saw no value.
    fn column(&self, taken: &[Option<(u32, u32)>], key: bool) -> Result<ArrayRef> {
        let (store, dt) = if key {
            (&self.keys, &self.key_type)
        } else {
            (&self.values, &self.value_type)
        };
        let null = new_null_array(dt, 1);
        let mut arrays: Vec<&dyn Array> = store.iter().map(|a| a.as_ref()).collect();
        let null_idx = arrays.len();
        arrays.push(null.as_ref());
        let indices: Vec<(usize, usize)> = taken
            .iter()
            .map(|b| b.map_or((null_idx, 0), |(a, r)| (a as usize, r as usize)))
            .collect();
        Ok(interleave(&arrays, &indices)?)
    }

    fn take(&mut self, emit_to: EmitTo) -> Vec<Option<(u32, u32)>> {
        emit_to.take_needed(&mut self.best)
    }

    fn release_if_empty(&mut self) {
        if self.best.is_empty() {
            self.values.clear();
            self.keys.clear();
            self.kept_bytes = 0;
            self.kept_buffers.clear();
        }
    }
}

impl GroupsAccumulator for BestGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        let keys = if self.policy.takes_key() {
            values[1].clone()
        } else {
            fill_key(&values[0])?
        };
        self.fold(
            &values[0],
            &keys,
            group_indices,
            opt_filter,
            total_num_groups,
        )
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        if values.len() != 2 {
            return exec_err!("{}: bad state", self.policy.name());
        }
        self.fold(
            &values[0],
            &values[1],
            group_indices,
            None,
            total_num_groups,
        )
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let taken = self.take(emit_to);
        let out = self.column(&taken, false);
        self.release_if_empty();
        out
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let taken = self.take(emit_to);
        let out = vec![self.column(&taken, false)?, self.column(&taken, true)?];
        self.release_if_empty();
        Ok(out)
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let keys = if self.policy.takes_key() {
            values[1].clone()
        } else {
            fill_key(&values[0])?
        };
        let vals = match opt_filter {
            Some(f) => {
                let drop = datafusion::arrow::compute::not(f)?;
                datafusion::arrow::compute::nullif(&values[0], &drop)?
            }
            None => values[0].clone(),
        };
        Ok(vec![vals, keys])
    }

    fn size(&self) -> usize {
        self.kept_bytes
            + self.kept_buffers.capacity() * std::mem::size_of::<usize>()
            + self.best.capacity() * std::mem::size_of::<Option<(u32, u32)>>()
            + self.scratch.capacity() * std::mem::size_of::<Option<u32>>()
    }
}
