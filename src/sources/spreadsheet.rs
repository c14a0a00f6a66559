//! Spreadsheets: Excel (`.xlsx`, `.xlsm`, `.xlsb`, `.xls`) and OpenDocument (`.ods`), read with
//! [`calamine`] — the marketer's list of event attendees, the store managers' sign-ups.
//!
//! One sheet per source (`sheet`, default the first), its header on `header_row` (default the
//! first non-empty row; rows above it — titles, notes — are skipped). Cell types are kept:
//! a column of numbers is `Int64` (all whole) or `Float64`, a column of dates `Date32` (no
//! time of day anywhere) or a timestamp, a column of booleans `Boolean`; a column mixing kinds,
//! or declared `string` in `types`, is text, each cell written as it shows (`1234`, not
//! `1234.0`; dates as `YYYY-MM-DD`). A merged cell's value fills every cell it covers (xlsx,
//! xls). Blank rows are skipped. An error cell (`#N/A`, `#DIV/0!`) rejects its row with the
//! sheet, the cell reference and the column.
//!
//! `.xlsx`/`.xlsm` sheets are streamed (calamine's cell reader, twice: kinds, then rows), so
//! memory holds one chunk of rows; `.xls`, `.xlsb` and `.ods` are read whole by calamine.

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, RecordBatch,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use bytes::Bytes;
use calamine::{Data, Range, Reader, Sheets};
use chrono::{NaiveDate, NaiveDateTime};

use super::csv::CHUNK_ROWS;
use super::rejects::Reject;
use super::RawChunk;
use crate::error::{Error, Result};

/// Which sheet and where its header is.
#[derive(Debug, Clone, Default)]
pub struct SheetOptions<'a> {
    /// A sheet name; none: the first sheet.
    pub sheet: Option<&'a str>,
    /// The 1-based row holding the column names; none: the first non-empty row.
    pub header_row: Option<u32>,
}

/// A cell's value, as far as typing a column goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Float,
    Date,
    Timestamp,
    Bool,
    Text,
}

/// Read one workbook's sheet. `text_columns` are columns declared `string`: kept as the text a
/// cell shows. `expected` is the header of the source's first file. Returns this file's header.
#[allow(clippy::too_many_arguments)]
pub fn read_spreadsheet(
    source: &str,
    file: &str,
    data: Bytes,
    opts: &SheetOptions,
    text_columns: &dyn Fn(&str) -> bool,
    expected: Option<&[String]>,
    rejects: &mut Vec<Reject>,
    emit: &mut dyn FnMut(RawChunk) -> Result<()>,
) -> Result<Vec<String>> {
    let fail = |m: String| Error::source(source, file, m);
    let mut sheet = OpenSheet::open(data, opts, &fail)?;
    let shown: Arc<str> = Arc::from(format!("{file} [{}]", sheet.name).as_str());
    let survey = sheet.survey(opts.header_row, &fail)?;
    let (header_at, header) = survey.header(&sheet.name, &fail)?;
    if let Some(exp) = expected {
        if exp != header.as_slice() {
            return Err(fail(format!(
                "schema mismatch: columns [{}] differ from [{}] in the source's first file",
                header.join(", "),
                exp.join(", ")
            )));
        }
    }
    // Rows with an error cell are rejects, with the cell's reference.
    for (row, col, e) in &survey.errors {
        rejects.push(Reject {
            source: source.to_string(),
            file: shown.to_string(),
            row: u64::from(*row) + 1,
            column: header
                .get(col.saturating_sub(survey.left) as usize)
                .cloned(),
            raw_value: Some(e.clone()),
            reason: format!("cell {} holds the error {e}", cell_reference(*row, *col)),
        });
    }
    let error_rows: std::collections::HashSet<u32> =
        survey.errors.iter().map(|(r, _, _)| *r).collect();
    let kinds = survey.column_kinds(&header, text_columns);
    let schema = Arc::new(Schema::new(
        header
            .iter()
            .zip(&kinds)
            .map(|(h, k)| Field::new(h, data_type(*k), true))
            .collect::<Vec<_>>(),
    ));
    let table = SheetTable {
        header_at,
        left: survey.left,
        right: survey.right,
        kinds,
        schema,
    };
    sheet.emit_rows(&table, &error_rows, &shown, &fail, emit)?;
    Ok(header)
}

/// The sheet being read, with what reading its rows needs.
struct OpenSheet {
    book: Sheets<Cursor<Bytes>>,
    name: String,
    /// Calamine's range of the sheet; none when the sheet is streamed.
    range: Option<Range<Data>>,
    merges: Merges,
}

/// The table a sheet holds: its header row, the columns it spans (absolute) and their kinds.
struct SheetTable {
    header_at: u32,
    left: u32,
    right: u32,
    kinds: Vec<Kind>,
    schema: SchemaRef,
}

impl OpenSheet {
    /// Open the workbook and find the sheet `opts` names (the first one by default).
    fn open(data: Bytes, opts: &SheetOptions, fail: &dyn Fn(String) -> Error) -> Result<OpenSheet> {
        let mut book = calamine::open_workbook_auto_from_rs(Cursor::new(data)).map_err(|e| {
            fail(format!(
                "not a spreadsheet calamine can read (xlsx, xlsm, xlsb, xls, ods): {e}"
            ))
        })?;
        let names = book.sheet_names();
        let sheet = match opts.sheet {
            Some(s) if names.iter().any(|n| n == s) => s.to_string(),
            Some(s) => {
                return Err(fail(format!(
                    "no sheet named `{s}` (sheets: {})",
                    names.join(", ")
                )))
            }
            None => names
                .first()
                .cloned()
                .ok_or_else(|| fail("the workbook has no sheets".into()))?,
        };
        let merges = Merges::new(merged_cells(&mut book, &sheet));
        // An .xlsx sheet is streamed from its XML twice (types, then rows), so memory holds one
        // chunk of rows, not the sheet: 1,000,000 rows of 7 columns peaked at 296 MB instead of
        // 692 MB, for 1.3x the time (benches/README.md). Other formats come as calamine's range.
        let range = match &book {
            Sheets::Xlsx(_) => None,
            _ => Some(
                book.worksheet_range(&sheet)
                    .map_err(|e| fail(format!("cannot read sheet `{sheet}`: {e}")))?,
            ),
        };
        Ok(OpenSheet {
            book,
            name: sheet,
            range,
            merges,
        })
    }

    fn for_each_row(
        &mut self,
        fail: &dyn Fn(String) -> Error,
        f: &mut dyn FnMut(u32, &[RowCell]) -> Result<()>,
    ) -> Result<()> {
        for_each_row(
            &mut self.book,
            &self.name,
            self.range.as_ref(),
            &self.merges,
            fail,
            f,
        )
    }

    /// Pass 1: the bounds of the cells, the header row, each column's kind, the rows with an
    /// error cell. `header_row` is 1-based.
    fn survey(
        &mut self,
        header_row: Option<u32>,
        fail: &dyn Fn(String) -> Error,
    ) -> Result<Survey> {
        let mut survey = Survey {
            top: None,
            bottom: 0,
            left: u32::MAX,
            right: 0,
            header_at: header_row.map(|n| n.saturating_sub(1)),
            header_cells: Vec::new(),
            kinds_by_col: HashMap::new(),
            errors: Vec::new(),
        };
        self.for_each_row(fail, &mut |row, cells| {
            survey.add_row(row, cells);
            Ok(())
        })?;
        Ok(survey)
    }

    /// Pass 2: the rows after the header that hold something, in chunks.
    fn emit_rows(
        &mut self,
        table: &SheetTable,
        error_rows: &std::collections::HashSet<u32>,
        shown: &Arc<str>,
        fail: &dyn Fn(String) -> Error,
        emit: &mut dyn FnMut(RawChunk) -> Result<()>,
    ) -> Result<()> {
        let (header_at, left, right) = (table.header_at, table.left, table.right);
        let width = table.kinds.len();
        let mut chunk: Vec<Vec<Data>> = Vec::new();
        let mut numbers: Vec<u64> = Vec::new();
        let mut emitted = false;
        let mut flush = |chunk: &mut Vec<Vec<Data>>, numbers: &mut Vec<u64>| -> Result<()> {
            let columns: Vec<ArrayRef> = (0..width)
                .map(|c| build(table.kinds[c], chunk.iter().map(|r| &r[c])))
                .collect();
            let batch = RecordBatch::try_new(table.schema.clone(), columns)?;
            chunk.clear();
            emit(RawChunk {
                file: shown.clone(),
                rows: std::mem::take(numbers),
                batch,
            })
        };
        self.for_each_row(fail, &mut |row, cells| {
            if row <= header_at || error_rows.contains(&row) {
                return Ok(());
            }
            let row_cells = dense(cells, left, right);
            if row_cells.iter().all(|d| matches!(d, Data::Empty)) {
                return Ok(());
            }
            chunk.push(row_cells);
            numbers.push(u64::from(row) + 1);
            if chunk.len() == CHUNK_ROWS {
                flush(&mut chunk, &mut numbers)?;
                emitted = true;
            }
            Ok(())
        })?;
        if !chunk.is_empty() || !emitted {
            flush(&mut chunk, &mut numbers)?;
        }
        Ok(())
    }
}

/// What pass 1 found in a sheet. Columns are absolute until the bounds are known.
struct Survey {
    top: Option<u32>,
    bottom: u32,
    left: u32,
    right: u32,
    /// The 0-based header row: declared, else the first row seen.
    header_at: Option<u32>,
    header_cells: Vec<RowCell>,
    kinds_by_col: HashMap<u32, Option<Kind>>,
    /// (row, column, the error) of the first error cell of each row with one.
    errors: Vec<(u32, u32, String)>,
}

impl Survey {
    fn add_row(&mut self, row: u32, cells: &[RowCell]) {
        for (col, _, own) in cells {
            if *own {
                self.top.get_or_insert(row);
                self.bottom = row;
                self.left = self.left.min(*col);
                self.right = self.right.max(*col);
            }
        }
        let header = *self.header_at.get_or_insert(row);
        if row == header {
            self.header_cells = cells.to_vec();
            return;
        }
        if row < header {
            return;
        }
        if let Some((col, d, _)) = cells.iter().find(|(_, d, _)| matches!(d, Data::Error(_))) {
            self.errors.push((row, *col, d.to_string()));
            return;
        }
        for (col, d, _) in cells {
            if let Some(k) = kind(d) {
                let acc = self.kinds_by_col.entry(*col).or_default();
                *acc = Some(fold_kind(*acc, k));
            }
        }
    }

    /// The 0-based header row and the column names it holds (`column_N` for a blank cell),
    /// checked: inside the sheet's cells, no name twice.
    fn header(&self, sheet: &str, fail: &dyn Fn(String) -> Error) -> Result<(u32, Vec<String>)> {
        let Some(top) = self.top else {
            return Err(fail(format!("sheet `{sheet}` is empty: no header row")));
        };
        let header_at = self.header_at.unwrap_or(top);
        if header_at < top || header_at > self.bottom {
            return Err(fail(format!(
                "header_row {} is outside sheet `{sheet}`, whose cells span rows {} to {}",
                header_at + 1,
                top + 1,
                self.bottom + 1
            )));
        }
        let header: Vec<String> = dense(&self.header_cells, self.left, self.right)
            .iter()
            .enumerate()
            .map(|(c, d)| match display(d).trim() {
                "" => format!("column_{}", c + 1),
                name => name.to_string(),
            })
            .collect();
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = header.iter().find(|h| !seen.insert(h.as_str())) {
            return Err(fail(format!(
                "sheet `{sheet}`: the header names column `{dup}` twice"
            )));
        }
        Ok((header_at, header))
    }

    /// Each column's kind: text when declared `string`, else what its cells hold.
    fn column_kinds(&self, header: &[String], text_columns: &dyn Fn(&str) -> bool) -> Vec<Kind> {
        let width = (self.right - self.left + 1) as usize;
        (0..width)
            .map(|c| match text_columns(&header[c]) {
                true => Kind::Text,
                // A column with no values at all is text, as an empty CSV column is.
                false => self
                    .kinds_by_col
                    .get(&(self.left + c as u32))
                    .copied()
                    .flatten()
                    .unwrap_or(Kind::Text),
            })
            .collect()
    }
}

/// A row's cells between columns `left` and `right` (absolute), by position.
fn dense(cells: &[RowCell], left: u32, right: u32) -> Vec<Data> {
    let mut row = vec![Data::Empty; (right - left + 1) as usize];
    for (col, d, _) in cells.iter().filter(|(c, _, _)| (left..=right).contains(c)) {
        row[(col - left) as usize] = d.clone();
    }
    row
}

/// An absolute (row, column) position in a sheet.
type Position = (u32, u32);

/// A covered cell's column and its merged region's first cell.
type Covered = (u32, Position);

/// One cell of a row: absolute column, value, and whether it is the cell's own value (not a
/// merged region's).
type RowCell = (u32, Data, bool);

/// Merged regions: covered cell → the region's first cell, and the covered cells by row.
struct Merges {
    starts: std::collections::HashSet<Position>,
    by_row: std::collections::BTreeMap<u32, Vec<Covered>>,
}

impl Merges {
    fn new(covered: HashMap<(u32, u32), (u32, u32)>) -> Merges {
        let mut by_row: std::collections::BTreeMap<u32, Vec<Covered>> =
            std::collections::BTreeMap::new();
        let starts = covered.values().copied().collect();
        for ((r, c), start) in covered {
            by_row.entry(r).or_default().push((c, start));
        }
        Merges { starts, by_row }
    }
}

/// Call `f` with each row that holds a cell, in order: its absolute number and its cells as
/// (absolute column, value, whether the cell is its own rather than a merged region's), sorted
/// by column. A merged region's value fills every cell it covers (rows with no cells of their
/// own included). An .xlsx sheet is streamed from its XML; other formats read `range`. Stops
/// at the first error of `f`; a sheet that cannot be read is `fail`'s error.
fn for_each_row(
    book: &mut Sheets<Cursor<Bytes>>,
    sheet: &str,
    range: Option<&Range<Data>>,
    merges: &Merges,
    fail: &dyn Fn(String) -> Error,
    f: &mut dyn FnMut(u32, &[RowCell]) -> Result<()>,
) -> Result<()> {
    let unreadable = |e: String| fail(format!("cannot read sheet `{sheet}`: {e}"));
    let mut rows = RowAssembler {
        merges,
        starts: HashMap::new(),
        current: None,
        cells: Vec::new(),
    };
    match range {
        Some(range) => {
            let (top, left) = range.start().unwrap_or((0, 0));
            for (r, c, v) in range.used_cells() {
                rows.push(top + r as u32, left + c as u32, v.clone(), f)?;
            }
        }
        None => {
            let Sheets::Xlsx(x) = book else {
                return Err(unreadable("not an xlsx workbook".into()));
            };
            let mut reader = x
                .worksheet_cells_reader(sheet)
                .map_err(|e| unreadable(e.to_string()))?;
            while let Some(c) = reader.next_cell().map_err(|e| unreadable(e.to_string()))? {
                let (r, col) = c.get_position();
                rows.push(r, col, c.get_value().clone().into(), f)?;
            }
        }
    }
    rows.end(f)
}

/// Cells, in sheet order, gathered into rows with merged regions filled in.
struct RowAssembler<'a> {
    merges: &'a Merges,
    /// The values of merged regions' first cells seen so far.
    starts: HashMap<Position, Data>,
    /// The row being gathered.
    current: Option<u32>,
    cells: Vec<RowCell>,
}

impl RowAssembler<'_> {
    fn push(
        &mut self,
        r: u32,
        c: u32,
        v: Data,
        f: &mut dyn FnMut(u32, &[RowCell]) -> Result<()>,
    ) -> Result<()> {
        if matches!(v, Data::Empty) {
            return Ok(());
        }
        if self.merges.starts.contains(&(r, c)) {
            self.starts.insert((r, c), v.clone());
        }
        if self.current != Some(r) {
            if let Some(p) = self.current {
                self.finish(p, f)?;
                // Rows between with only merged cells.
                for &q in self.merges.by_row.range(p + 1..r).map(|(q, _)| q) {
                    self.finish(q, f)?;
                }
            }
            self.current = Some(r);
        }
        self.cells.push((c, v, true));
        Ok(())
    }

    /// The last row, then rows after it with only merged cells.
    fn end(&mut self, f: &mut dyn FnMut(u32, &[RowCell]) -> Result<()>) -> Result<()> {
        let Some(p) = self.current else {
            return Ok(());
        };
        self.finish(p, f)?;
        for &q in self.merges.by_row.range(p + 1..).map(|(q, _)| q) {
            self.finish(q, f)?;
        }
        Ok(())
    }

    /// Row `row` with the merged cells it covers, to `f` if it holds anything.
    fn finish(&mut self, row: u32, f: &mut dyn FnMut(u32, &[RowCell]) -> Result<()>) -> Result<()> {
        if let Some(covered) = self.merges.by_row.get(&row) {
            for (col, start) in covered {
                if self.cells.iter().any(|(c, _, _)| c == col) {
                    continue;
                }
                if let Some(v) = self.starts.get(start) {
                    self.cells.push((*col, v.clone(), false));
                }
            }
            self.cells.sort_by_key(|(c, _, _)| *c);
        }
        let result = if self.cells.is_empty() {
            Ok(())
        } else {
            f(row, &self.cells)
        };
        self.cells.clear();
        result
    }
}

/// Covered cell → the merged region's first cell, both absolute (row, column). Only xlsx and
/// xls files record merges in a way calamine reads.
fn merged_cells(book: &mut Sheets<Cursor<Bytes>>, sheet: &str) -> HashMap<(u32, u32), (u32, u32)> {
    let regions = match book {
        Sheets::Xlsx(x) => x.merge_cells_by_sheet_name(sheet).unwrap_or_default(),
        Sheets::Xls(x) => x.merge_cells_by_sheet_name(sheet).unwrap_or_default(),
        _ => Vec::new(),
    };
    let mut out = HashMap::new();
    for d in regions {
        for r in d.start.0..=d.end.0 {
            for c in d.start.1..=d.end.1 {
                if (r, c) != d.start {
                    out.insert((r, c), d.start);
                }
            }
        }
    }
    out
}

/// `C7` for row 6, column 2 (0-based).
fn cell_reference(row: u32, col: u32) -> String {
    let mut letters = Vec::new();
    let mut n = col + 1;
    while n > 0 {
        let rem = (n - 1) % 26;
        letters.push(b'A' + rem as u8);
        n = (n - 1) / 26;
    }
    letters.reverse();
    format!("{}{}", String::from_utf8_lossy(&letters), row + 1)
}

/// What one cell holds.
fn kind(d: &Data) -> Option<Kind> {
    match d {
        Data::Empty | Data::Error(_) => None,
        Data::Int(_) => Some(Kind::Int),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(Kind::Int),
        Data::Float(_) => Some(Kind::Float),
        Data::Bool(_) => Some(Kind::Bool),
        Data::DateTime(dt) if dt.is_duration() => Some(Kind::Text),
        Data::DateTime(dt) => Some(match dt.as_f64().fract() == 0.0 {
            true => Kind::Date,
            false => Kind::Timestamp,
        }),
        Data::DateTimeIso(s) => match iso_datetime(s) {
            // Midnight is a date, as with Excel's serial numbers: a column whose every value
            // is at midnight is a column of dates (pandas writes dates as `...T00:00:00`).
            Some(dt) if dt.time() == chrono::NaiveTime::MIN => Some(Kind::Date),
            Some(_) => Some(Kind::Timestamp),
            None => Some(Kind::Text),
        },
        Data::String(_) | Data::DurationIso(_) => Some(Kind::Text),
    }
}

/// The kind of a column so far (`found`) with one more cell of kind `k`: one kind, or numbers
/// (whole numbers and fractions make `Float`), or dates with and without times (`Timestamp`);
/// anything else mixed is text.
fn fold_kind(found: Option<Kind>, k: Kind) -> Kind {
    match (found, k) {
        (None, k) => k,
        (Some(a), b) if a == b => a,
        (Some(Kind::Int | Kind::Float), Kind::Int | Kind::Float) => Kind::Float,
        (Some(Kind::Date | Kind::Timestamp), Kind::Date | Kind::Timestamp) => Kind::Timestamp,
        _ => Kind::Text,
    }
}

/// The type of a column from its cells (see [`fold_kind`]); no values at all: text.
#[cfg(test)]
fn column_kind<'a>(cells: impl Iterator<Item = &'a Data>) -> Kind {
    cells
        .filter_map(kind)
        .fold(None, |acc, k| Some(fold_kind(acc, k)))
        .unwrap_or(Kind::Text)
}

fn data_type(k: Kind) -> DataType {
    match k {
        Kind::Int => DataType::Int64,
        Kind::Float => DataType::Float64,
        Kind::Date => DataType::Date32,
        Kind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
        Kind::Bool => DataType::Boolean,
        Kind::Text => DataType::Utf8,
    }
}

fn iso_datetime(s: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .or_else(|| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").ok())
        .or_else(|| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .map(|d| d.and_time(chrono::NaiveTime::MIN))
        })
}

fn datetime(d: &Data) -> Option<NaiveDateTime> {
    match d {
        Data::DateTime(dt) => dt.as_datetime(),
        Data::DateTimeIso(s) => iso_datetime(s),
        _ => None,
    }
}

/// A cell as it shows: whole numbers without `.0`, dates as ISO 8601.
fn display(d: &Data) -> String {
    match d {
        Data::Empty | Data::Error(_) => String::new(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => format!("{}", *f as i64),
        Data::Float(f) => f.to_string(),
        Data::Bool(b) => b.to_string(),
        Data::String(s) | Data::DurationIso(s) => s.clone(),
        Data::DateTime(dt) if dt.is_duration() => dt.to_string(),
        Data::DateTime(_) | Data::DateTimeIso(_) => match (datetime(d), kind(d)) {
            (Some(t), Some(Kind::Date)) => t.date().to_string(),
            (Some(t), _) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
            (None, _) => d.to_string(),
        },
    }
}

/// One column of a chunk. Cells of a kind the column does not hold cannot occur: a column
/// mixing kinds is text.
fn build<'a>(k: Kind, cells: impl Iterator<Item = &'a Data>) -> ArrayRef {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
    match k {
        Kind::Int => {
            let mut b = Int64Builder::new();
            for d in cells {
                b.append_option(match d {
                    Data::Int(i) => Some(*i),
                    Data::Float(f) => Some(*f as i64),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
        Kind::Float => {
            let mut b = Float64Builder::new();
            for d in cells {
                b.append_option(match d {
                    Data::Int(i) => Some(*i as f64),
                    Data::Float(f) => Some(*f),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
        Kind::Bool => {
            let mut b = BooleanBuilder::new();
            for d in cells {
                b.append_option(match d {
                    Data::Bool(v) => Some(*v),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
        Kind::Date => {
            let mut b = Date32Builder::new();
            for d in cells {
                b.append_option(datetime(d).map(|t| (t.date() - epoch).num_days() as i32));
            }
            Arc::new(b.finish())
        }
        Kind::Timestamp => {
            let mut b = TimestampMicrosecondBuilder::new();
            for d in cells {
                b.append_option(datetime(d).map(|t| t.and_utc().timestamp_micros()));
            }
            Arc::new(b.finish())
        }
        Kind::Text => {
            let mut b = StringBuilder::new();
            for d in cells {
                match d {
                    Data::Empty | Data::Error(_) => b.append_null(),
                    _ => b.append_value(display(d)),
                }
            }
            Arc::new(b.finish())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_references_count_columns_like_excel() {
        assert_eq!(cell_reference(0, 0), "A1");
        assert_eq!(cell_reference(6, 2), "C7");
        assert_eq!(cell_reference(9, 25), "Z10");
        assert_eq!(cell_reference(0, 26), "AA1");
        assert_eq!(cell_reference(0, 701), "ZZ1");
        assert_eq!(cell_reference(0, 702), "AAA1");
    }

    #[test]
    fn columns_are_typed_by_their_cells() {
        let ints = [Data::Float(1.0), Data::Int(2), Data::Empty];
        assert_eq!(column_kind(ints.iter()), Kind::Int);
        let floats = [Data::Float(1.5), Data::Int(2)];
        assert_eq!(column_kind(floats.iter()), Kind::Float);
        let mixed = [Data::Float(1234.0), Data::String("AB12".into())];
        assert_eq!(column_kind(mixed.iter()), Kind::Text);
        assert_eq!(display(&mixed[0]), "1234");
        let dates = [
            Data::DateTimeIso("2024-03-01".into()),
            Data::DateTimeIso("2024-03-02".into()),
        ];
        assert_eq!(column_kind(dates.iter()), Kind::Date);
        let stamps = [
            Data::DateTimeIso("2024-03-01".into()),
            Data::DateTimeIso("2024-03-02T10:30:00".into()),
        ];
        assert_eq!(column_kind(stamps.iter()), Kind::Timestamp);
        assert_eq!(column_kind([Data::Empty].iter()), Kind::Text);
    }
}
