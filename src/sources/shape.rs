//! Turns what a reader produced into the table the user declared: column selection, renames,
//! type conversion and primary-key checks. Every row that fails a check becomes a [`Reject`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow::compute::{cast_with_options, filter_record_batch, CastOptions};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::util::display::{ArrayFormatter, FormatOptions};

use super::rejects::Reject;
use super::RawChunk;
use crate::config::{ColumnType, ProjectConfig, SourceConfig};
use crate::error::Result;

/// Where an output column's type came from; it changes the advice a reject gives.
#[derive(Debug, Clone, Copy)]
enum TypeOrigin {
    Declared,
    Inferred,
}

#[derive(Debug)]
struct ColumnPlan {
    input: usize,
    name: String,
    cast_to: Option<(DataType, &'static str, TypeOrigin)>,
}

/// Shapes the chunks of one source; keeps the state that spans chunks (seen primary keys).
pub struct Shaper {
    source: String,
    columns: Vec<ColumnPlan>,
    pk: Vec<usize>,
    pk_names: Vec<String>,
    seen: HashMap<String, (Arc<str>, u64)>,
    schema: SchemaRef,
    pub rejects: Vec<Reject>,
    pub rows_in: u64,
    pub rows_out: u64,
    pub rows_rejected: u64,
}

impl Shaper {
    /// Plan the shaping of `input`. `inferred` holds types guessed for text columns.
    pub fn new(
        cfg: &ProjectConfig,
        name: &str,
        source: &SourceConfig,
        input: &Schema,
        inferred: &BTreeMap<String, ColumnType>,
    ) -> Result<Self> {
        let available = || {
            input
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let selected: Vec<usize> = match &source.select {
            Some(list) => {
                let mut idx = Vec::new();
                for col in list.get_ref() {
                    match input.index_of(col.get_ref()) {
                        Ok(i) => idx.push(i),
                        Err(_) => {
                            return Err(cfg.error_at(
                                col.span(),
                                format!(
                                    "sources.{name}.select: column `{}` is not in the source (it has: {})",
                                    col.get_ref(),
                                    available()
                                ),
                            ))
                        }
                    }
                }
                idx
            }
            None => (0..input.fields().len()).collect(),
        };
        for (from, to) in &source.rename {
            let present = selected.iter().any(|&i| input.field(i).name() == from);
            if !present {
                return Err(cfg.error_at(
                    to.span(),
                    format!(
                        "sources.{name}.rename: column `{from}` is not in the source (it has: {})",
                        available()
                    ),
                ));
            }
        }
        let mut columns = Vec::new();
        let mut fields = Vec::new();
        for i in selected {
            let field = input.field(i);
            let out_name = source
                .rename
                .get(field.name())
                .map(|s| s.get_ref().clone())
                .unwrap_or_else(|| field.name().clone());
            let cast_to = match source.types.get(&out_name) {
                Some(t) => Some((*t.get_ref(), TypeOrigin::Declared)),
                None => inferred
                    .get(field.name())
                    .map(|t| (*t, TypeOrigin::Inferred)),
            }
            .map(|(t, origin)| (t.data_type(), t.name(), origin))
            .filter(|(dt, _, _)| dt != field.data_type());
            let out_type = cast_to
                .as_ref()
                .map(|(dt, _, _)| dt.clone())
                .unwrap_or_else(|| field.data_type().clone());
            fields.push(Field::new(&out_name, out_type, true));
            columns.push(ColumnPlan {
                input: i,
                name: out_name,
                cast_to,
            });
        }
        if let Some(dup) = duplicate_name(&columns) {
            return Err(cfg.error_at(
                source.location.span(),
                format!("sources.{name}: two output columns are both named `{dup}`; rename one"),
            ));
        }
        for (col, t) in &source.types {
            if !columns.iter().any(|c| &c.name == col) {
                return Err(cfg.error_at(
                    t.span(),
                    format!("sources.{name}.types: column `{col}` is not an output column of the source"),
                ));
            }
        }
        let mut pk = Vec::new();
        let pk_names = source.primary_key.get_ref().columns();
        for col in &pk_names {
            match columns.iter().position(|c| &c.name == col) {
                Some(i) => pk.push(i),
                None => {
                    return Err(cfg.error_at(
                        source.primary_key.span(),
                        format!(
                            "sources.{name}.primary_key: column `{col}` is not an output column (columns: {})",
                            columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
                        ),
                    ))
                }
            }
        }
        Ok(Shaper {
            source: name.to_string(),
            columns,
            pk,
            pk_names,
            seen: HashMap::new(),
            schema: Arc::new(Schema::new(fields)),
            rejects: Vec::new(),
            rows_in: 0,
            rows_out: 0,
            rows_rejected: 0,
        })
    }

    /// Schema of the shaped table.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Shape one chunk; rejected rows are recorded and filtered out.
    pub fn shape(&mut self, chunk: &RawChunk) -> Result<RecordBatch> {
        let n = chunk.batch.num_rows();
        self.rows_in += n as u64;
        let mut keep = vec![true; n];
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.columns.len());
        let cast_options = CastOptions {
            safe: true,
            ..Default::default()
        };
        for plan in &self.columns {
            let input = chunk.batch.column(plan.input);
            let Some((dt, type_name, origin)) = &plan.cast_to else {
                arrays.push(input.clone());
                continue;
            };
            let out = cast_with_options(input, dt, &cast_options)?;
            if out.null_count() != input.null_count() {
                let fmt = ArrayFormatter::try_new(input.as_ref(), &FormatOptions::default())?;
                for (row, k) in keep.iter_mut().enumerate() {
                    if input.is_valid(row) && out.is_null(row) {
                        *k = false;
                        let advice = match origin {
                            TypeOrigin::Declared => String::new(),
                            TypeOrigin::Inferred => format!(
                                " (type inferred from the first rows; declare `types.{} = \"string\"` to keep it as text)",
                                plan.name
                            ),
                        };
                        self.rejects.push(Reject {
                            source: self.source.clone(),
                            file: chunk.file.to_string(),
                            row: chunk.rows[row],
                            column: Some(plan.name.clone()),
                            raw_value: Some(fmt.value(row).to_string()),
                            reason: format!("not a valid {type_name}{advice}"),
                        });
                    }
                }
            }
            arrays.push(out);
        }
        self.check_primary_key(chunk, &arrays, &mut keep)?;
        let batch = RecordBatch::try_new(self.schema.clone(), arrays)?;
        let rejected = keep.iter().filter(|k| !**k).count();
        self.rows_rejected += rejected as u64;
        let batch = if rejected == 0 {
            batch
        } else {
            filter_record_batch(&batch, &BooleanArray::from(keep))?
        };
        self.rows_out += batch.num_rows() as u64;
        Ok(batch)
    }

    fn check_primary_key(
        &mut self,
        chunk: &RawChunk,
        arrays: &[ArrayRef],
        keep: &mut [bool],
    ) -> Result<()> {
        let formatters = self
            .pk
            .iter()
            .map(|&i| ArrayFormatter::try_new(arrays[i].as_ref(), &FormatOptions::default()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut key = String::new();
        for (row, k) in keep.iter_mut().enumerate() {
            if !*k {
                continue;
            }
            key.clear();
            let mut null_col = None;
            for (j, &i) in self.pk.iter().enumerate() {
                if arrays[i].is_null(row) {
                    null_col = Some(j);
                    break;
                }
                if j > 0 {
                    key.push('\u{1f}');
                }
                use std::fmt::Write;
                let _ = write!(key, "{}", formatters[j].value(row));
            }
            let file = &chunk.file;
            let line = chunk.rows[row];
            if let Some(j) = null_col {
                *k = false;
                self.rejects.push(Reject {
                    source: self.source.clone(),
                    file: file.to_string(),
                    row: line,
                    column: Some(self.pk_names[j].clone()),
                    raw_value: None,
                    reason: "primary key is empty".into(),
                });
                continue;
            }
            if let Some((first_file, first_row)) = self.seen.get(&key) {
                *k = false;
                self.rejects.push(Reject {
                    source: self.source.clone(),
                    file: file.to_string(),
                    row: line,
                    column: Some(self.pk_names.join(", ")),
                    raw_value: Some(key.replace('\u{1f}', ", ")),
                    reason: format!(
                        "duplicate primary key (first seen in {first_file} row {first_row})"
                    ),
                });
                continue;
            }
            self.seen.insert(key.clone(), (file.clone(), line));
        }
        Ok(())
    }
}

fn duplicate_name(columns: &[ColumnPlan]) -> Option<&str> {
    let mut seen = std::collections::HashSet::new();
    columns
        .iter()
        .find(|c| !seen.insert(c.name.as_str()))
        .map(|c| c.name.as_str())
}

/// Guess a type for each text column from its first values: the narrowest type every non-null
/// sample value parses as. Values with a leading zero or `+` stay text, so postcodes and phone
/// numbers keep their digits.
pub fn infer_text_types(batch: &RecordBatch, sample_rows: usize) -> BTreeMap<String, ColumnType> {
    let rows = batch.num_rows().min(sample_rows);
    let mut out = BTreeMap::new();
    for (i, field) in batch.schema().fields().iter().enumerate() {
        if field.data_type() != &DataType::Utf8 {
            continue;
        }
        let col = batch.column(i).slice(0, rows);
        let strings = col
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .expect("Utf8 column is a StringArray");
        if strings.null_count() == strings.len() {
            continue;
        }
        let looks_like_code = strings.iter().flatten().any(|s| {
            let s = s.trim();
            s.starts_with('+')
                || (s.len() > 1 && s.starts_with('0') && !s.starts_with("0."))
                // Card and account numbers: too long to be a quantity.
                || (s.len() > 15 && s.bytes().all(|b| b.is_ascii_digit()))
        });
        if looks_like_code {
            continue;
        }
        let candidates = [
            ColumnType::Int,
            ColumnType::Float,
            ColumnType::Bool,
            ColumnType::Date,
            ColumnType::Timestamp,
        ];
        for t in candidates {
            if t == ColumnType::Bool
                && !strings
                    .iter()
                    .flatten()
                    .all(|s| matches!(s.to_ascii_lowercase().as_str(), "true" | "false"))
            {
                continue;
            }
            if t == ColumnType::Date && !strings.iter().flatten().all(|s| s.len() == 10) {
                continue;
            }
            if let Ok(cast) = cast_with_options(&col, &t.data_type(), &CastOptions::default()) {
                if cast.null_count() == col.null_count() {
                    out.insert(field.name().clone(), t);
                    break;
                }
            }
        }
    }
    out
}
