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

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, RecordBatch,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use bytes::Bytes;
use calamine::{Data, Reader, Sheets};
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
    let range = book
        .worksheet_range(&sheet)
        .map_err(|e| fail(format!("cannot read sheet `{sheet}`: {e}")))?;
    let merges = merged_cells(&mut book, &sheet);
    let shown: Arc<str> = Arc::from(format!("{file} [{sheet}]").as_str());

    // Absolute (0-based) sheet coordinates of the range's first cell.
    let (top, left) = range.start().unwrap_or((0, 0));
    let (height, width) = range.get_size();
    // A merged cell's value is on its first cell only: the others read it from there.
    let cell = |r: usize, c: usize| -> &Data {
        let own = range.get((r, c)).unwrap_or(&Data::Empty);
        if !matches!(own, Data::Empty) {
            return own;
        }
        let at = (top + r as u32, left + c as u32);
        match merges.get(&at) {
            Some(&(mr, mc)) if mr >= top && mc >= left => range
                .get(((mr - top) as usize, (mc - left) as usize))
                .unwrap_or(&Data::Empty),
            _ => own,
        }
    };
    let blank = |r: usize| (0..width).all(|c| matches!(cell(r, c), Data::Empty));

    let header_at = match opts.header_row {
        Some(n) => {
            let r = (n as i64 - 1) - top as i64;
            if r < 0 || r as usize >= height {
                return Err(fail(format!(
                    "header_row {n} is outside sheet `{sheet}`, whose cells span rows {} to {}",
                    top + 1,
                    top as usize + height
                )));
            }
            r as usize
        }
        None => match (0..height).find(|&r| !blank(r)) {
            Some(r) => r,
            None => return Err(fail(format!("sheet `{sheet}` is empty: no header row"))),
        },
    };
    let header: Vec<String> = (0..width)
        .map(|c| match display(cell(header_at, c)).trim() {
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
    if let Some(exp) = expected {
        if exp != header.as_slice() {
            return Err(fail(format!(
                "schema mismatch: columns [{}] differ from [{}] in the source's first file",
                header.join(", "),
                exp.join(", ")
            )));
        }
    }

    // Rows after the header that hold something; rows with an error cell are rejects.
    let mut rows: Vec<usize> = Vec::new();
    for r in header_at + 1..height {
        if blank(r) {
            continue;
        }
        let error = (0..width).find_map(|c| match cell(r, c) {
            Data::Error(e) => Some((c, e.to_string())),
            _ => None,
        });
        match error {
            Some((c, e)) => rejects.push(Reject {
                source: source.to_string(),
                file: shown.to_string(),
                row: u64::from(top) + r as u64 + 1,
                column: Some(header[c].clone()),
                raw_value: Some(e.clone()),
                reason: format!(
                    "cell {} holds the error {e}",
                    cell_reference(top + r as u32, left + c as u32)
                ),
            }),
            None => rows.push(r),
        }
    }

    let kinds: Vec<Kind> = (0..width)
        .map(|c| match text_columns(&header[c]) {
            true => Kind::Text,
            false => column_kind(rows.iter().map(|&r| cell(r, c))),
        })
        .collect();
    let schema = Arc::new(Schema::new(
        header
            .iter()
            .zip(&kinds)
            .map(|(h, k)| Field::new(h, data_type(*k), true))
            .collect::<Vec<_>>(),
    ));
    let chunks: Vec<&[usize]> = match rows.is_empty() {
        true => vec![&[]],
        false => rows.chunks(CHUNK_ROWS).collect(),
    };
    for chunk in chunks {
        let columns: Vec<ArrayRef> = (0..width)
            .map(|c| build(kinds[c], chunk.iter().map(|&r| cell(r, c))))
            .collect();
        let batch = RecordBatch::try_new(schema.clone(), columns)?;
        emit(RawChunk {
            file: shown.clone(),
            rows: chunk
                .iter()
                .map(|&r| u64::from(top) + r as u64 + 1)
                .collect(),
            batch,
        })?;
    }
    Ok(header)
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

/// The type of a column from its cells: one kind, or numbers (whole numbers and fractions
/// make `Float`), or dates with and without times (`Timestamp`); anything else mixed is text.
fn column_kind<'a>(cells: impl Iterator<Item = &'a Data>) -> Kind {
    let mut found: Option<Kind> = None;
    for k in cells.filter_map(kind) {
        found = Some(match (found, k) {
            (None, k) => k,
            (Some(a), b) if a == b => a,
            (Some(Kind::Int | Kind::Float), Kind::Int | Kind::Float) => Kind::Float,
            (Some(Kind::Date | Kind::Timestamp), Kind::Date | Kind::Timestamp) => Kind::Timestamp,
            _ => return Kind::Text,
        });
    }
    // A column with no values at all is text, as an empty CSV column is.
    found.unwrap_or(Kind::Text)
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
