//! `most_common(value[, vote], priority)`: consensus survivorship. The value most of a group's
//! records agree on; ties go to the most trusted record (lowest `priority`), then to the
//! smallest vote, so the result never depends on row order.
//!
//! Records vote with `vote` (default: the value itself): `most_common(name, lower(name), prio)`
//! counts "CINDY" and "Cindy" as one vote. The value returned is that of the most trusted
//! record among the winning vote's records (ties: the smallest value). NULL values and NULL
//! votes do not vote; a NULL priority ranks after every other.
//!
//! Example: a CRM record (priority 1) says "iCndy", two shop records (priority 2, 3) say
//! "Cindy": `most_common` gives "Cindy" where `by_priority` gives "iCndy". With three records
//! that all differ, `most_common` is `by_priority`.
//!
//! Any value, vote and priority types work (structs included): they are kept in Arrow's row
//! format, whose bytes compare like the values, so a group's candidates are a short list of
//! byte ranges in one arena per accumulator — no per-record allocation. A customer has few
//! records, so the linear scan per record is cheaper than a hash map.

use std::sync::Arc;

use datafusion::arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, BinaryBuilder, BooleanArray, ListBuilder,
    UInt64Builder,
};
use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, UInt64Type};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::{exec_err, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, TypeSignature, Volatility,
};

/// The `most_common` aggregate.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MostCommon {
    signature: Signature,
}

impl Default for MostCommon {
    fn default() -> Self {
        Self::new()
    }
}

impl MostCommon {
    pub fn new() -> Self {
        MostCommon {
            signature: Signature::one_of(
                vec![TypeSignature::Any(2), TypeSignature::Any(3)],
                Volatility::Immutable,
            ),
        }
    }
}

/// (value, vote, priority) types of a call.
fn arg_types(args: &AccumulatorArgs) -> Result<(DataType, DataType, DataType)> {
    let types: Vec<DataType> = args
        .exprs
        .iter()
        .map(|e| e.data_type(args.schema))
        .collect::<Result<_>>()?;
    match types.as_slice() {
        [v, p] => Ok((v.clone(), v.clone(), p.clone())),
        [v, k, p] => Ok((v.clone(), k.clone(), p.clone())),
        _ => exec_err!("most_common takes (value, priority) or (value, vote, priority)"),
    }
}

impl AggregateUDFImpl for MostCommon {
    fn name(&self) -> &str {
        "most_common"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[0].clone())
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let list = |suffix: &str, t: DataType| {
            Arc::new(Field::new(
                format!("{}_{suffix}", args.name),
                DataType::List(Arc::new(Field::new_list_field(t, true))),
                true,
            ))
        };
        // Row-format bytes of each candidate's vote, value and priority, and its count.
        Ok(vec![
            list("votes", DataType::Binary),
            list("values", DataType::Binary),
            list("priorities", DataType::Binary),
            list("counts", DataType::UInt64),
        ])
    }
    fn accumulator(&self, acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let (v, k, p) = arg_types(&acc_args)?;
        Ok(Box::new(Single(Votes::new(v, k, p)?)))
    }
    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }
    fn create_groups_accumulator(
        &self,
        acc_args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        let (v, k, p) = arg_types(&acc_args)?;
        Ok(Box::new(Votes::new(v, k, p)?))
    }
}

/// A byte range of the arena.
type Span = (u32, u32);

/// One distinct vote of a group.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    vote: Span,
    /// The value and priority of the most trusted record with this vote.
    value: Span,
    priority: Span,
    count: u64,
    /// The group's next candidate, or `NONE`.
    next: u32,
}

const NONE: u32 = u32::MAX;

/// One batch of arguments, with row-format bytes of each.
struct Input<'a> {
    value: &'a ArrayRef,
    vote: &'a ArrayRef,
    value_rows: datafusion::arrow::row::Rows,
    vote_rows: datafusion::arrow::row::Rows,
    priority_rows: datafusion::arrow::row::Rows,
}

/// Whether row `i` votes: a value and a vote, and not filtered out.
fn votes_at(value: &ArrayRef, vote: &ArrayRef, filter: Option<&BooleanArray>, i: usize) -> bool {
    !(value.is_null(i) || vote.is_null(i) || filter.is_some_and(|f| f.is_null(i) || !f.value(i)))
}

/// The state columns being built: per group, lists of its candidates' row-format vote, value
/// and priority bytes, and their counts.
struct StateLists {
    votes: ListBuilder<BinaryBuilder>,
    values: ListBuilder<BinaryBuilder>,
    priorities: ListBuilder<BinaryBuilder>,
    counts: ListBuilder<UInt64Builder>,
}

impl Default for StateLists {
    fn default() -> Self {
        StateLists {
            votes: ListBuilder::new(BinaryBuilder::new()),
            values: ListBuilder::new(BinaryBuilder::new()),
            priorities: ListBuilder::new(BinaryBuilder::new()),
            counts: ListBuilder::new(UInt64Builder::new()),
        }
    }
}

impl StateLists {
    fn candidate(&mut self, vote: &[u8], value: &[u8], priority: &[u8], count: u64) {
        self.votes.values().append_value(vote);
        self.values.values().append_value(value);
        self.priorities.values().append_value(priority);
        self.counts.values().append_value(count);
    }

    fn end_group(&mut self) {
        self.votes.append(true);
        self.values.append(true);
        self.priorities.append(true);
        self.counts.append(true);
    }

    fn finish(mut self) -> Vec<ArrayRef> {
        vec![
            Arc::new(self.votes.finish()),
            Arc::new(self.values.finish()),
            Arc::new(self.priorities.finish()),
            Arc::new(self.counts.finish()),
        ]
    }
}

#[derive(Debug)]
struct Votes {
    value_type: DataType,
    values: RowConverter,
    votes: RowConverter,
    priorities: RowConverter,
    arena: Vec<u8>,
    candidates: Vec<Candidate>,
    /// Per group: its first candidate, or `NONE`.
    heads: Vec<u32>,
}

impl Votes {
    fn new(value: DataType, vote: DataType, priority: DataType) -> Result<Self> {
        Ok(Votes {
            values: RowConverter::new(vec![SortField::new(value.clone())])?,
            votes: RowConverter::new(vec![SortField::new(vote)])?,
            priorities: RowConverter::new(vec![SortField::new_with_options(
                priority,
                SortOptions {
                    descending: false,
                    nulls_first: false,
                },
            )])?,
            value_type: value,
            arena: Vec::new(),
            candidates: Vec::new(),
            heads: Vec::new(),
        })
    }

    fn bytes(&self, s: Span) -> &[u8] {
        &self.arena[s.0 as usize..(s.0 + s.1) as usize]
    }

    fn keep(&mut self, bytes: &[u8]) -> Result<Span> {
        let start = self.arena.len();
        if start + bytes.len() > u32::MAX as usize {
            return exec_err!("most_common: over 4 GiB of distinct values in one partition");
        }
        self.arena.extend_from_slice(bytes);
        Ok((start as u32, bytes.len() as u32))
    }

    /// `count` more records of `group` vote `vote`, the best of them with this value and
    /// priority.
    fn add(
        &mut self,
        group: usize,
        vote: &[u8],
        value: &[u8],
        priority: &[u8],
        count: u64,
    ) -> Result<()> {
        let mut c = self.heads[group];
        while c != NONE {
            let cand = self.candidates[c as usize];
            if self.bytes(cand.vote) == vote {
                let better =
                    (priority, value) < (self.bytes(cand.priority), self.bytes(cand.value));
                let mut cand = cand;
                cand.count += count;
                if better {
                    cand.value = self.keep(value)?;
                    cand.priority = self.keep(priority)?;
                }
                self.candidates[c as usize] = cand;
                return Ok(());
            }
            c = cand.next;
        }
        if self.candidates.len() >= NONE as usize {
            return exec_err!("most_common: too many distinct votes in one partition");
        }
        let cand = Candidate {
            vote: self.keep(vote)?,
            value: self.keep(value)?,
            priority: self.keep(priority)?,
            count,
            next: self.heads[group],
        };
        self.heads[group] = self.candidates.len() as u32;
        self.candidates.push(cand);
        Ok(())
    }

    /// A batch's arguments and their row-format bytes.
    fn input<'a>(&self, values: &'a [ArrayRef]) -> Result<Input<'a>> {
        let (value, vote, priority) = match values {
            [v, p] => (v, v, p),
            [v, k, p] => (v, k, p),
            _ => return exec_err!("most_common: bad arguments"),
        };
        Ok(Input {
            value,
            vote,
            value_rows: self.values.convert_columns(std::slice::from_ref(value))?,
            vote_rows: self.votes.convert_columns(std::slice::from_ref(vote))?,
            priority_rows: self
                .priorities
                .convert_columns(std::slice::from_ref(priority))?,
        })
    }

    fn grow(&mut self, total_num_groups: usize) {
        if self.heads.len() < total_num_groups {
            self.heads.resize(total_num_groups, NONE);
        }
    }

    /// The winning candidate of a group: most votes, then most trusted, then smallest vote.
    fn winner(&self, head: u32) -> Option<Candidate> {
        let mut best: Option<Candidate> = None;
        let mut c = head;
        while c != NONE {
            let cand = self.candidates[c as usize];
            let wins = match best {
                None => true,
                Some(b) => {
                    cand.count > b.count
                        || (cand.count == b.count
                            && (self.bytes(cand.priority), self.bytes(cand.vote))
                                < (self.bytes(b.priority), self.bytes(b.vote)))
                }
            };
            if wins {
                best = Some(cand);
            }
            c = cand.next;
        }
        best
    }

    /// The chosen values of these groups (NULL where a group had no vote).
    fn values_of(&self, heads: &[u32]) -> Result<ArrayRef> {
        let null = self
            .values
            .convert_columns(&[new_null_array(&self.value_type, 1)])?;
        let parser = self.values.parser();
        let winners: Vec<Option<Candidate>> = heads.iter().map(|h| self.winner(*h)).collect();
        let rows = winners.iter().map(|w| match w {
            Some(c) => parser.parse(self.bytes(c.value)),
            None => null.row(0),
        });
        let mut out = self.values.convert_rows(rows)?;
        Ok(out.remove(0))
    }

    /// The state of these groups: their candidates as lists.
    fn state_of(&self, heads: &[u32]) -> Vec<ArrayRef> {
        let mut state = StateLists::default();
        for &head in heads {
            let mut c = head;
            while c != NONE {
                let cand = self.candidates[c as usize];
                state.candidate(
                    self.bytes(cand.vote),
                    self.bytes(cand.value),
                    self.bytes(cand.priority),
                    cand.count,
                );
                c = cand.next;
            }
            state.end_group();
        }
        state.finish()
    }

    fn take(&mut self, emit_to: EmitTo) -> Vec<u32> {
        let taken = emit_to.take_needed(&mut self.heads);
        if self.heads.is_empty() {
            self.arena = Vec::new();
            self.candidates = Vec::new();
        }
        taken
    }
}

impl GroupsAccumulator for Votes {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.grow(total_num_groups);
        let Input {
            value,
            vote,
            value_rows,
            vote_rows,
            priority_rows,
        } = self.input(values)?;
        for (i, &g) in group_indices.iter().enumerate() {
            if !votes_at(value, vote, opt_filter, i) {
                continue;
            }
            self.add(
                g,
                vote_rows.row(i).as_ref(),
                value_rows.row(i).as_ref(),
                priority_rows.row(i).as_ref(),
                1,
            )?;
        }
        Ok(())
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.grow(total_num_groups);
        let [votes, vals, priorities, counts] = values else {
            return exec_err!("most_common: bad state");
        };
        let (votes, vals, priorities, counts) = (
            votes.as_list::<i32>(),
            vals.as_list::<i32>(),
            priorities.as_list::<i32>(),
            counts.as_list::<i32>(),
        );
        let (vote_bytes, value_bytes, priority_bytes, count_values) = (
            votes.values().as_binary::<i32>(),
            vals.values().as_binary::<i32>(),
            priorities.values().as_binary::<i32>(),
            counts.values().as_primitive::<UInt64Type>(),
        );
        for (i, &g) in group_indices.iter().enumerate() {
            if votes.is_null(i) {
                continue;
            }
            let offsets = votes.value_offsets();
            for j in offsets[i] as usize..offsets[i + 1] as usize {
                self.add(
                    g,
                    vote_bytes.value(j),
                    value_bytes.value(j),
                    priority_bytes.value(j),
                    count_values.value(j),
                )?;
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let heads = emit_to.take_needed(&mut self.heads);
        let out = self.values_of(&heads);
        if self.heads.is_empty() {
            self.take(EmitTo::All);
        }
        out
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let heads = emit_to.take_needed(&mut self.heads);
        let out = self.state_of(&heads);
        if self.heads.is_empty() {
            self.take(EmitTo::All);
        }
        Ok(out)
    }

    /// Each row as a state of its own: one candidate with one vote (none for a NULL).
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let Input {
            value,
            vote,
            value_rows,
            vote_rows,
            priority_rows,
        } = self.input(values)?;
        let mut state = StateLists::default();
        for i in 0..value.len() {
            if votes_at(value, vote, opt_filter, i) {
                state.candidate(
                    vote_rows.row(i).as_ref(),
                    value_rows.row(i).as_ref(),
                    priority_rows.row(i).as_ref(),
                    1,
                );
            }
            state.end_group();
        }
        Ok(state.finish())
    }

    fn size(&self) -> usize {
        self.arena.capacity()
            + self.candidates.capacity() * std::mem::size_of::<Candidate>()
            + self.heads.capacity() * std::mem::size_of::<u32>()
            + self.values.size()
            + self.votes.size()
            + self.priorities.size()
    }
}

/// The one-group form (DataFusion asks for it where it does not group, e.g. windows).
#[derive(Debug)]
struct Single(Votes);

impl Accumulator for Single {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let n = values.first().map_or(0, |v| v.len());
        self.0.update_batch(values, &vec![0; n], None, 1)
    }
    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let n = states.first().map_or(0, |v| v.len());
        self.0.merge_batch(states, &vec![0; n], 1)
    }
    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.0.grow(1);
        self.0
            .state_of(&self.0.heads[..1])
            .iter()
            .map(|a| ScalarValue::try_from_array(a, 0))
            .collect()
    }
    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.0.grow(1);
        ScalarValue::try_from_array(&self.0.values_of(&self.0.heads[..1])?, 0)
    }
    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.0.size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};

    fn strings(v: &[Option<&str>]) -> ArrayRef {
        Arc::new(StringArray::from(v.to_vec()))
    }

    #[test]
    fn majority_then_priority_then_vote() -> Result<()> {
        let mut acc = Votes::new(DataType::Utf8, DataType::Utf8, DataType::Int64)?;
        // Group 0: "iCndy" from the most trusted source, "Cindy" twice.
        // Group 1: three different values: the most trusted wins.
        // Group 2: only NULLs. Group 3: a 1–1 tie between two votes of equal priority.
        let values = strings(&[
            Some("iCndy"),
            Some("Cindy"),
            Some("Cindy"),
            Some("Ann"),
            Some("Anne"),
            Some("Anna"),
            None,
            Some("Zoe"),
            Some("Bea"),
        ]);
        let priorities: ArrayRef = Arc::new(Int64Array::from(vec![
            Some(1),
            Some(3),
            Some(2),
            Some(2),
            Some(1),
            None,
            Some(1),
            Some(1),
            Some(1),
        ]));
        acc.update_batch(&[values, priorities], &[0, 0, 0, 1, 1, 1, 2, 3, 3], None, 4)?;
        let out = acc.evaluate(EmitTo::All)?;
        let out = out.as_string::<i32>();
        assert_eq!(out.value(0), "Cindy");
        assert_eq!(out.value(1), "Anne");
        assert!(out.is_null(2));
        assert_eq!(out.value(3), "Bea");
        Ok(())
    }

    #[test]
    fn votes_pick_the_trusted_spelling_and_state_round_trips() -> Result<()> {
        let new = || Votes::new(DataType::Utf8, DataType::Utf8, DataType::Int64);
        let (mut a, mut b, mut fin) = (new()?, new()?, new()?);
        let batch = |v: &[&str], k: &[&str], p: &[i64]| -> Vec<ArrayRef> {
            vec![
                strings(&v.iter().map(|s| Some(*s)).collect::<Vec<_>>()),
                strings(&k.iter().map(|s| Some(*s)).collect::<Vec<_>>()),
                Arc::new(Int64Array::from(p.to_vec())),
            ]
        };
        // Two partitions of one group: "SMITH"(3) and "Smyth"(1) in one, "Smith"(2), "smith"(4)
        // in the other. Votes are lower-cased: smith wins 3–1 and its most trusted spelling
        // is "Smith" (priority 2).
        a.update_batch(
            &batch(&["SMITH", "Smyth"], &["smith", "smyth"], &[3, 1]),
            &[0, 0],
            None,
            1,
        )?;
        b.update_batch(
            &batch(&["Smith", "smith"], &["smith", "smith"], &[2, 4]),
            &[0, 0],
            None,
            1,
        )?;
        for mut part in [a, b] {
            let state = part.state(EmitTo::All)?;
            fin.merge_batch(&state, &[0], 1)?;
        }
        let out = fin.evaluate(EmitTo::All)?;
        assert_eq!(out.as_string::<i32>().value(0), "Smith");
        Ok(())
    }
}
