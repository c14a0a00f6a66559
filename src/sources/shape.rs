//! Turns what a reader produced into the table the user declared: column selection, renames,
//! type conversion, computed columns and primary-key checks. Every row that fails a type or key
//! check becomes a [`Reject`]; a computed column that fails on a row is NULL there (counted).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow::compute::{cast_with_options, filter_record_batch, CastOptions};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::DFSchema;
use datafusion::physical_expr::PhysicalExpr;

use super::rejects::Reject;
use super::{NulledValues, RawChunk};
use crate::config::{ColumnType, OnMissingColumn, ProjectConfig, SourceConfig};
use crate::error::Result;

/// Where an output column's type came from; it changes the advice a reject gives.
#[derive(Debug, Clone, Copy)]
enum TypeOrigin {
    Declared,
    Inferred,
}

#[derive(Debug)]
struct ColumnPlan {
    /// The input column; none for a column missing from the data, loaded as NULL
    /// (`on_missing_column = "null"`).
    input: Option<usize>,
    name: String,
    cast_to: Option<(DataType, &'static str, TypeOrigin)>,
}

/// A `[sources.X.columns]` entry, planned against the shaped columns.
#[derive(Debug)]
struct ComputedColumn {
    name: String,
    expr: Arc<dyn PhysicalExpr>,
    /// The expression's type, and a declared `types.<name>` to convert it to.
    data_type: DataType,
    cast_to: Option<DataType>,
}

/// Shapes the chunks of one source; keeps the state that spans chunks (seen primary keys).
pub struct Shaper {
    source: String,
    columns: Vec<ColumnPlan>,
    computed: Vec<ComputedColumn>,
    pk: Vec<usize>,
    pk_names: Vec<String>,
    seen: HashMap<String, (Arc<str>, u64)>,
    schema: SchemaRef,
    pub rejects: Vec<Reject>,
    pub rows_in: u64,
    pub rows_out: u64,
    pub rows_rejected: u64,
    pub values_nulled: BTreeMap<String, NulledValues>,
    /// Columns the config uses that the data lacks, loaded as NULL (`on_missing_column`).
    pub missing_columns: Vec<String>,
}

impl Shaper {
    /// Plan the shaping of `input`, the columns of `file` (the source's first). `inferred`
    /// holds types guessed for text columns.
    pub fn new(
        cfg: &ProjectConfig,
        name: &str,
        source: &SourceConfig,
        file: &str,
        input: &Schema,
        inferred: &BTreeMap<String, ColumnType>,
    ) -> Result<Self> {
        let load_missing_as_null =
            source.on_missing_column.as_ref().map(|o| *o.get_ref()) == Some(OnMissingColumn::Null);
        // Output columns the config names that the data lacks: (column, keys that use it).
        let mut missing: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let selected =
            select_input_columns(cfg, name, source, input, load_missing_as_null, &mut missing)?;
        check_renamed_columns(
            cfg,
            name,
            source,
            input,
            &selected,
            load_missing_as_null,
            &mut missing,
        )?;
        let (mut columns, mut fields) = plan_input_columns(source, input, selected, inferred);
        // Columns other sections use (unify mappings, activities, consent) that the data lacks:
        // the run stops naming each key with its line, or loads them as NULL.
        for u in cfg.column_uses(name) {
            let present = fields.iter().any(|f| u.names(f.name()))
                || source.columns.keys().any(|c| u.names(c));
            if !present {
                missing
                    .entry(u.column)
                    .or_default()
                    .push(cfg.key_with_line(u.span, &u.key));
            }
        }
        if !missing.is_empty() && !load_missing_as_null {
            return Err(crate::error::Error::MissingColumns {
                source_name: name.to_string(),
                file: file.to_string(),
                missing: missing.into_iter().collect(),
                available: input.fields().iter().map(|f| f.name().clone()).collect(),
            });
        }
        plan_null_columns(name, source, file, &missing, &mut columns, &mut fields);
        if let Some(dup) = duplicate_name(&columns) {
            return Err(cfg.error_at(
                source.location.span(),
                format!("sources.{name}: two output columns are both named `{dup}`; rename one"),
            ));
        }
        let computed = plan_computed(cfg, name, source, &mut fields)?;
        for (col, t) in &source.types {
            if !fields.iter().any(|f| f.name() == col) {
                return Err(cfg.error_at(
                    t.span(),
                    format!("sources.{name}.types: column `{col}` is not an output column of the source"),
                ));
            }
        }
        let pk_names = source.primary_key.get_ref().columns();
        let pk = primary_key_positions(cfg, name, source, &pk_names, &fields)?;
        Ok(Shaper {
            source: name.to_string(),
            columns,
            computed,
            pk,
            pk_names,
            seen: HashMap::new(),
            schema: Arc::new(Schema::new(fields)),
            rejects: Vec::new(),
            rows_in: 0,
            rows_out: 0,
            rows_rejected: 0,
            values_nulled: BTreeMap::new(),
            missing_columns: missing.into_keys().collect(),
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
        for (i, plan) in self.columns.iter().enumerate() {
            let Some(input) = plan.input.map(|c| chunk.batch.column(c)) else {
                let data_type = self.schema.field(i).data_type();
                arrays.push(arrow::array::new_null_array(data_type, n));
                continue;
            };
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
        // Rows a type check rejected leave before computed columns and keys see them.
        let type_rejected = keep.iter().filter(|k| !**k).count();
        let (mut arrays, lines) = if type_rejected == 0 {
            (arrays, chunk.rows.clone())
        } else {
            let mask = BooleanArray::from(keep.clone());
            let arrays = arrays
                .iter()
                .map(|a| arrow::compute::filter(a, &mask))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let lines = chunk
                .rows
                .iter()
                .zip(&keep)
                .filter(|(_, k)| **k)
                .map(|(l, _)| *l)
                .collect();
            (arrays, lines)
        };
        self.compute(&chunk.file, &lines, &mut arrays)?;
        let mut keep = vec![true; lines.len()];
        self.check_primary_key(&chunk.file, &lines, &arrays, &mut keep)?;
        let batch = RecordBatch::try_new_with_options(
            self.schema.clone(),
            arrays,
            &arrow::array::RecordBatchOptions::new().with_row_count(Some(lines.len())),
        )?;
        let rejected = keep.iter().filter(|k| !**k).count();
        self.rows_rejected += (type_rejected + rejected) as u64;
        let batch = if rejected == 0 {
            batch
        } else {
            filter_record_batch(&batch, &BooleanArray::from(keep))?
        };
        self.rows_out += batch.num_rows() as u64;
        Ok(batch)
    }

    /// Append the computed columns to `arrays` (the shaped columns of rows at `lines`). An
    /// expression that fails on the batch is evaluated row by row: the rows it fails on get
    /// NULL, counted in `values_nulled` with the first failure.
    fn compute(&mut self, file: &str, lines: &[u64], arrays: &mut Vec<ArrayRef>) -> Result<()> {
        if self.computed.is_empty() {
            return Ok(());
        }
        let n = lines.len();
        let base_fields = self.schema.fields()[..arrays.len()].to_vec();
        let base = RecordBatch::try_new_with_options(
            Arc::new(Schema::new(base_fields)),
            arrays.clone(),
            &arrow::array::RecordBatchOptions::new().with_row_count(Some(n)),
        )?;
        let cast_options = CastOptions {
            safe: true,
            ..Default::default()
        };
        for c in &self.computed {
            let mut failures: Vec<(usize, String)> = Vec::new();
            let value = match c.expr.evaluate(&base).and_then(|v| v.into_array(n)) {
                Ok(a) => a,
                Err(_) => {
                    let mut parts = Vec::with_capacity(n);
                    for row in 0..n {
                        let one = base.slice(row, 1);
                        match c.expr.evaluate(&one).and_then(|v| v.into_array(1)) {
                            Ok(a) => parts.push(a),
                            Err(e) => {
                                failures.push((row, e.to_string()));
                                parts.push(arrow::array::new_null_array(&c.data_type, 1));
                            }
                        }
                    }
                    let refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
                    if refs.is_empty() {
                        arrow::array::new_empty_array(&c.data_type)
                    } else {
                        arrow::compute::concat(&refs)?
                    }
                }
            };
            let value = match &c.cast_to {
                Some(dt) => {
                    let out = cast_with_options(&value, dt, &cast_options)?;
                    if out.null_count() != value.null_count() {
                        let fmt =
                            ArrayFormatter::try_new(value.as_ref(), &FormatOptions::default())?;
                        for row in 0..n {
                            if value.is_valid(row) && out.is_null(row) {
                                failures.push((
                                    row,
                                    format!("`{}` is not a valid {dt}", fmt.value(row)),
                                ));
                            }
                        }
                    }
                    out
                }
                None => value,
            };
            if let Some((row, message)) = failures.iter().min_by_key(|(row, _)| *row) {
                let e = self
                    .values_nulled
                    .entry(c.name.clone())
                    .or_insert_with(|| NulledValues {
                        count: 0,
                        first: format!("{file} row {}: {message}", lines[*row]),
                    });
                e.count += failures.len() as u64;
            }
            arrays.push(value);
        }
        Ok(())
    }

    fn check_primary_key(
        &mut self,
        file: &Arc<str>,
        lines: &[u64],
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
            let line = lines[row];
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

/// Plan `[sources.X.columns]` against the shaped `fields` and append their fields. Errors name
/// the config key and line: a name the source already has, an unknown column or function.
fn plan_computed(
    cfg: &ProjectConfig,
    name: &str,
    source: &SourceConfig,
    fields: &mut Vec<Field>,
) -> Result<Vec<ComputedColumn>> {
    if source.columns.is_empty() {
        return Ok(Vec::new());
    }
    let ctx = crate::engine::base_context();
    let base = Schema::new(fields.clone());
    let df_schema = DFSchema::try_from(base.clone())?;
    let mut computed = Vec::new();
    for (column, sql) in &source.columns {
        let at =
            |m: String| cfg.error_at(sql.span(), format!("sources.{name}.columns.{column}: {m}"));
        if base.index_of(column).is_ok() {
            return Err(at(format!(
                "the source already has a column `{column}`; name the computed column otherwise, or rename the source's"
            )));
        }
        let expr = ctx
            .parse_sql_expr(sql.get_ref(), &df_schema)
            .map_err(|e| at(format!("{e}")))?;
        let expr = ctx
            .create_physical_expr(expr, &df_schema)
            .map_err(|e| at(format!("{e}")))?;
        let data_type = expr.data_type(&base).map_err(|e| at(format!("{e}")))?;
        let cast_to = source
            .types
            .get(column)
            .map(|t| t.get_ref().data_type())
            .filter(|dt| *dt != data_type);
        let out_type = cast_to.clone().unwrap_or_else(|| data_type.clone());
        fields.push(Field::new(column, out_type, true));
        computed.push(ComputedColumn {
            name: column.clone(),
            expr,
            data_type,
            cast_to,
        });
    }
    Ok(computed)
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

/// The input's column names, for an error naming what the source has.
fn available_columns(input: &Schema) -> String {
    input
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The input columns `select` keeps (all without it). A selected column the data lacks is an
/// error, or goes to `missing` when loaded as NULL.
fn select_input_columns(
    cfg: &ProjectConfig,
    name: &str,
    source: &SourceConfig,
    input: &Schema,
    load_missing_as_null: bool,
    missing: &mut BTreeMap<String, Vec<String>>,
) -> Result<Vec<usize>> {
    let Some(list) = &source.select else {
        return Ok((0..input.fields().len()).collect());
    };
    let mut idx = Vec::new();
    for col in list.get_ref() {
        match input.index_of(col.get_ref()) {
            Ok(i) => idx.push(i),
            Err(_) if load_missing_as_null => {
                let out = source
                    .rename
                    .get(col.get_ref())
                    .map_or(col.get_ref(), |r| r.get_ref());
                missing
                    .entry(out.clone())
                    .or_default()
                    .push(cfg.key_with_line(col.span(), &format!("sources.{name}.select")));
            }
            Err(_) => {
                return Err(cfg.error_at(
                    col.span(),
                    format!(
                        "sources.{name}.select: column `{}` is not in the source (it has: {})",
                        col.get_ref(),
                        available_columns(input)
                    ),
                ))
            }
        }
    }
    Ok(idx)
}

/// Every `rename` must name a selected column: else an error, or its new name goes to
/// `missing` when loaded as NULL.
fn check_renamed_columns(
    cfg: &ProjectConfig,
    name: &str,
    source: &SourceConfig,
    input: &Schema,
    selected: &[usize],
    load_missing_as_null: bool,
    missing: &mut BTreeMap<String, Vec<String>>,
) -> Result<()> {
    for (from, to) in &source.rename {
        let present = selected.iter().any(|&i| input.field(i).name() == from);
        if !present && load_missing_as_null {
            missing
                .entry(to.get_ref().clone())
                .or_default()
                .push(cfg.key_with_line(to.span(), &format!("sources.{name}.rename.{from}")));
        } else if !present {
            return Err(cfg.error_at(
                to.span(),
                format!(
                    "sources.{name}.rename: column `{from}` is not in the source (it has: {})",
                    available_columns(input)
                ),
            ));
        }
    }
    Ok(())
}

/// The output columns read from the input: renamed, and converted to the declared type (else
/// the inferred one) when it differs.
fn plan_input_columns(
    source: &SourceConfig,
    input: &Schema,
    selected: Vec<usize>,
    inferred: &BTreeMap<String, ColumnType>,
) -> (Vec<ColumnPlan>, Vec<Field>) {
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
            input: Some(i),
            name: out_name,
            cast_to,
        });
    }
    (columns, fields)
}

/// The missing columns not already output, loaded as NULL (`on_missing_column = "null"`), of
/// their declared type or text.
fn plan_null_columns(
    name: &str,
    source: &SourceConfig,
    file: &str,
    missing: &BTreeMap<String, Vec<String>>,
    columns: &mut Vec<ColumnPlan>,
    fields: &mut Vec<Field>,
) {
    for column in missing.keys() {
        if fields.iter().any(|f| f.name() == column) {
            continue;
        }
        let data_type = source
            .types
            .get(column)
            .map_or(DataType::Utf8, |t| t.get_ref().data_type());
        tracing::warn!(
            source = name,
            file,
            column = column.as_str(),
            "column missing from the data: loaded as NULL (on_missing_column = \"null\")"
        );
        fields.push(Field::new(column, data_type, true));
        columns.push(ColumnPlan {
            input: None,
            name: column.clone(),
            cast_to: None,
        });
    }
}

/// The positions of the primary key columns among the output columns.
fn primary_key_positions(
    cfg: &ProjectConfig,
    name: &str,
    source: &SourceConfig,
    pk_names: &[String],
    fields: &[Field],
) -> Result<Vec<usize>> {
    let mut pk = Vec::new();
    for col in pk_names {
        match fields.iter().position(|f| f.name() == col) {
            Some(i) => pk.push(i),
            None => {
                return Err(cfg.error_at(
                    source.primary_key.span(),
                    format!(
                        "sources.{name}.primary_key: column `{col}` is not an output column (columns: {})",
                        fields.iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
                    ),
                ))
            }
        }
    }
    Ok(pk)
}
