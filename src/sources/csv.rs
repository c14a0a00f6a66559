//! CSV reading that keeps every row accounted for: rows with the wrong number of fields or
//! invalid UTF-8 become rejects with their line number, instead of failing the file or vanishing.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema};
use bytes::Bytes;

use super::rejects::Reject;
use super::RawChunk;
use crate::config::CsvOptions;
use crate::error::{Error, Result};

/// Rows per chunk handed to the shaper.
pub const CHUNK_ROWS: usize = 65_536;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Read one CSV file. `data` is UTF-8 transcoded from `encoding` (see
/// [`super::encoding`]): a value with bytes that were not valid in it is a reject naming it.
/// `expected` is the header of the source's first file; later files must have the same
/// columns. Returns this file's header.
#[allow(clippy::too_many_arguments)]
pub fn read_csv(
    source: &str,
    file: &str,
    data: Bytes,
    encoding: &'static encoding_rs::Encoding,
    opts: &CsvOptions,
    expected: Option<&[String]>,
    rejects: &mut Vec<Reject>,
    emit: &mut dyn FnMut(RawChunk) -> Result<()>,
) -> Result<Vec<String>> {
    let data = data.strip_prefix(UTF8_BOM).unwrap_or(&data);
    let builder = reader_builder(opts);
    let mut reader_data: &[u8] = data;
    let mut reader = builder.from_reader(reader_data);
    let mut record = csv::ByteRecord::new();
    let file_arc: Arc<str> = Arc::from(file);

    let read = |reader: &mut csv::Reader<&[u8]>, record: &mut csv::ByteRecord| {
        reader
            .read_byte_record(record)
            .map_err(|e| Error::source(source, file, format!("CSV error: {e}")))
    };

    // Header: from the first record, or generated names.
    let Some((header, mut pending_first)) =
        read_header(&mut reader, &mut record, opts.header, (source, file), &read)?
    else {
        return Ok(expected.map(|e| e.to_vec()).unwrap_or_default());
    };
    check_header(source, file, &header, expected)?;
    let schema = Arc::new(Schema::new(
        header
            .iter()
            .map(|h| Field::new(h, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    let width = header.len();
    let new_builders = || (0..width).map(|_| StringBuilder::new()).collect::<Vec<_>>();
    let mut builders = new_builders();
    let mut rows: Vec<u64> = Vec::with_capacity(CHUNK_ROWS);
    let mut emitted_any = false;

    let mut flush = |builders: &mut Vec<StringBuilder>, rows: &mut Vec<u64>| -> Result<()> {
        let cols: Vec<ArrayRef> = builders
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        let batch = RecordBatch::try_new(schema.clone(), cols)?;
        emit(RawChunk {
            file: file_arc.clone(),
            rows: std::mem::take(rows),
            batch,
        })
    };

    // The reader reads `reader_data` (the file from some line on) with `base_line` lines
    // before it: a broken quote restarts it on the line after the one that opened the quote.
    let mut base_line = 0u64;
    loop {
        if pending_first {
            pending_first = false;
        } else if !read(&mut reader, &mut record)? {
            break;
        }
        let at = record_start(&record, reader_data, base_line);
        if let Some((reject, first_end)) = unclosed_quote_reject(
            &reader,
            &record,
            reader_data,
            &at,
            width,
            opts,
            (source, file),
        ) {
            rejects.push(reject);
            reader_data = &reader_data[at.byte + first_end..];
            base_line = at.line;
            reader = builder.from_reader(reader_data);
            continue;
        }
        if let Some(reject) =
            record_reject(&record, &header, encoding, opts, (source, file), at.line)
        {
            rejects.push(reject);
            continue;
        }
        append_record(&mut builders, &record, opts);
        rows.push(at.line);
        if rows.len() == CHUNK_ROWS {
            flush(&mut builders, &mut rows)?;
            emitted_any = true;
        }
    }
    if !rows.is_empty() || !emitted_any {
        flush(&mut builders, &mut rows)?;
    }
    Ok(header)
}

/// A CSV reader of the source's dialect; the header is read as a record.
fn reader_builder(opts: &CsvOptions) -> csv::ReaderBuilder {
    let mut builder = csv::ReaderBuilder::new();
    builder
        .has_headers(false)
        .flexible(true)
        .delimiter(opts.delimiter.get_ref().as_bytes()[0])
        .quote(opts.quote.get_ref().as_bytes()[0]);
    if let Some(esc) = &opts.escape {
        builder.escape(Some(esc.get_ref().as_bytes()[0]));
    }
    builder
}

/// Where a record starts in the data the reader reads.
struct RecordStart {
    /// Byte offset of its first line.
    byte: usize,
    /// Its line number in the file.
    line: u64,
    /// Blank lines skipped before it.
    blank: u64,
}

/// A record's position is where the reader started looking for it: skip the blank lines
/// before it (the reader skips them too).
fn record_start(record: &csv::ByteRecord, data: &[u8], base_line: u64) -> RecordStart {
    let mut start = record.position().map_or(0, |p| p.byte() as usize);
    let line = base_line + record.position().map_or(0, |p| p.line());
    let mut blank = 0;
    while let Some(b @ (b'\n' | b'\r')) = data.get(start) {
        if *b == b'\n' {
            blank += 1;
        }
        start += 1;
    }
    RecordStart {
        byte: start,
        line: line + blank,
        blank,
    }
}

/// A quoted value that does not close (a stray quote) swallows the lines after it into one
/// record: 423 rows of one file once vanished into a single reject. Such a record — a quote
/// closing inside another value, its field count wrong, its lines past `max_lines_per_row`, or
/// still open at the end of the file — is the opening line's reject alone, and reading resumes
/// on the next line, so every line is a row or a reject. Returns that reject and the opening
/// line's length in bytes.
fn unclosed_quote_reject(
    reader: &csv::Reader<&[u8]>,
    record: &csv::ByteRecord,
    data: &[u8],
    at: &RecordStart,
    width: usize,
    opts: &CsvOptions,
    source_file: (&str, &str),
) -> Option<(Reject, usize)> {
    let (source, file) = source_file;
    let max_lines = opts.max_lines_per_row.max(1);
    let end = reader.position().byte() as usize;
    let lines = reader.position().line() - record.position().map_or(1, |p| p.line()) - at.blank;
    let at_end = end >= data.len();
    let (misplaced, open) = match lines > 1 || at_end {
        true => quoting(&data[at.byte..end.min(data.len())], opts),
        false => (false, false),
    };
    let open_at_end = at_end && open;
    if !((lines > 1 || open_at_end)
        && (misplaced || record.len() != width || lines > max_lines || open_at_end))
    {
        return None;
    }
    let rest = &data[at.byte..];
    let first_end = rest
        .iter()
        .position(|&b| b == b'\n')
        .map_or(rest.len(), |i| i + 1);
    let raw = String::from_utf8_lossy(&rest[..first_end])
        .trim_end_matches(['\r', '\n'])
        .to_string();
    let reject = Reject {
        source: source.to_string(),
        file: file.to_string(),
        row: at.line,
        column: None,
        raw_value: Some(raw),
        reason: unclosed_quote_reason(open_at_end, at.line + lines - 1),
    };
    Some((reject, first_end))
}

/// The reject of a record that is not a row: its field count is not the header's, or a
/// value has bytes not valid in the file's encoding.
fn record_reject(
    record: &csv::ByteRecord,
    header: &[String],
    encoding: &'static encoding_rs::Encoding,
    opts: &CsvOptions,
    source_file: (&str, &str),
    line: u64,
) -> Option<Reject> {
    let (source, file) = source_file;
    let width = header.len();
    if record.len() != width {
        let raw = record
            .iter()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect::<Vec<_>>()
            .join(opts.delimiter.get_ref());
        return Some(Reject {
            source: source.to_string(),
            file: file.to_string(),
            row: line,
            column: None,
            raw_value: Some(raw),
            reason: format!("expected {width} fields, found {}", record.len()),
        });
    }
    let (i, raw, reason) = invalid_utf8(record, encoding)?;
    Some(Reject {
        source: source.to_string(),
        file: file.to_string(),
        row: line,
        column: Some(header[i].clone()),
        raw_value: Some(raw),
        reason,
    })
}

/// Append a record's values to the column builders: a value among `null_values` is NULL.
fn append_record(builders: &mut [StringBuilder], record: &csv::ByteRecord, opts: &CsvOptions) {
    for (b, f) in builders.iter_mut().zip(record.iter()) {
        // Checked above: every field is valid UTF-8.
        let s = std::str::from_utf8(f).unwrap_or_default();
        if opts.null_values.iter().any(|n| n == s) {
            b.append_null();
        } else {
            b.append_value(s);
        }
    }
}

type ReadRecord<'a> = dyn Fn(&mut csv::Reader<&[u8]>, &mut csv::ByteRecord) -> Result<bool> + 'a;

/// The header, and whether the first record is a data row still to be read (no header line:
/// names `column_1`, `column_2` …). `None`: a file without a header line and no rows.
fn read_header(
    reader: &mut csv::Reader<&[u8]>,
    record: &mut csv::ByteRecord,
    has_header: bool,
    source_file: (&str, &str),
    read: &ReadRecord<'_>,
) -> Result<Option<(Vec<String>, bool)>> {
    let (source, file) = source_file;
    if has_header {
        if !read(reader, record)? {
            return Err(Error::source(source, file, "file is empty: no header line"));
        }
        let header = record
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let name = String::from_utf8_lossy(f).trim().to_string();
                if name.is_empty() {
                    format!("column_{}", i + 1)
                } else {
                    name
                }
            })
            .collect();
        Ok(Some((header, false)))
    } else {
        if !read(reader, record)? {
            return Ok(None);
        }
        Ok(Some((
            (1..=record.len()).map(|i| format!("column_{i}")).collect(),
            true,
        )))
    }
}

/// No column named twice, and the same columns as the source's first file.
fn check_header(
    source: &str,
    file: &str,
    header: &[String],
    expected: Option<&[String]>,
) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = header.iter().find(|h| !seen.insert(h.as_str())) {
        return Err(Error::source(
            source,
            file,
            format!("header names column `{dup}` twice"),
        ));
    }
    if let Some(exp) = expected {
        if exp != header {
            return Err(Error::source(
                source,
                file,
                format!(
                    "schema mismatch: columns [{}] differ from [{}] in the source's first file",
                    header.join(", "),
                    exp.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// The first field of `record` that is not valid UTF-8: (field, its text, why).
fn invalid_utf8(
    record: &csv::ByteRecord,
    encoding: &'static encoding_rs::Encoding,
) -> Option<(usize, String, String)> {
    let (i, f, e) = record
        .iter()
        .enumerate()
        .find_map(|(i, f)| std::str::from_utf8(f).err().map(|e| (i, f, e)))?;
    let at = e.valid_up_to();
    // Valid up to `at`: the characters before the bad bytes.
    let before = std::str::from_utf8(&f[..at]).map_or(0, |t| t.chars().count());
    let reason = match encoding == encoding_rs::UTF_8 {
        true => format!("invalid UTF-8 at byte {at} of the value"),
        // The transcoded value holds 0xFF where the input's bytes were malformed.
        false => format!(
            "bytes not valid in {} at character {} of the value",
            encoding.name().to_ascii_lowercase(),
            before + 1
        ),
    };
    Some((i, String::from_utf8_lossy(f).into_owned(), reason))
}

/// Why a line whose quoted value does not close is rejected.
fn unclosed_quote_reason(open_at_end: bool, runs_into: u64) -> String {
    if open_at_end {
        "unclosed quote: the quoted value opened on this line is still open at the end \
         of the file; this line is rejected and reading goes on with the next"
            .to_string()
    } else {
        format!(
            "unclosed quote: the quoted value opened on this line runs into line {runs_into}; \
             this line is rejected and reading goes on with the next"
        )
    }
}

/// How one record's raw bytes use quotes: `(misplaced, open)`. A closing quote followed by
/// anything but a delimiter or the line's end is misplaced — what a stray quote that closes on
/// a later line's quote looks like; `open` is a quoted value still open at the end.
fn quoting(raw: &[u8], opts: &CsvOptions) -> (bool, bool) {
    #[derive(PartialEq)]
    enum State {
        FieldStart,
        Unquoted,
        Quoted,
        Escaped,
        AfterQuote,
    }
    let quote = opts.quote.get_ref().as_bytes()[0];
    let delimiter = opts.delimiter.get_ref().as_bytes()[0];
    let escape = opts.escape.as_ref().map(|e| e.get_ref().as_bytes()[0]);
    let mut state = State::FieldStart;
    let mut misplaced = false;
    for &b in raw {
        state = match state {
            State::FieldStart if b == quote => State::Quoted,
            State::FieldStart | State::Unquoted => {
                if b == delimiter || b == b'\n' || b == b'\r' {
                    State::FieldStart
                } else {
                    State::Unquoted
                }
            }
            State::Quoted if Some(b) == escape => State::Escaped,
            State::Quoted if b == quote => State::AfterQuote,
            State::Quoted => State::Quoted,
            State::Escaped => State::Quoted,
            // A doubled quote is an escaped quote (unless an escape character is set).
            State::AfterQuote if b == quote && escape.is_none() => State::Quoted,
            State::AfterQuote if b == delimiter || b == b'\n' || b == b'\r' => State::FieldStart,
            // The reader goes on with the field as unquoted text.
            State::AfterQuote => {
                misplaced = true;
                State::Unquoted
            }
        }
    }
    (misplaced, matches!(state, State::Quoted | State::Escaped))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &[u8], opts: CsvOptions) -> (Vec<RawChunk>, Vec<Reject>) {
        let mut chunks = Vec::new();
        let mut rejects = Vec::new();
        read_csv(
            "s",
            "f.csv",
            Bytes::copy_from_slice(text),
            encoding_rs::UTF_8,
            &opts,
            None,
            &mut rejects,
            &mut |c| {
                chunks.push(c);
                Ok(())
            },
        )
        .unwrap();
        (chunks, rejects)
    }

    #[test]
    fn bom_quotes_nulls_and_bad_rows() {
        let text = b"\xEF\xBB\xBFid,name\n1,\"Smith, Jon\"\n2\n3,\xFFbad\n4,\n";
        let (chunks, rejects) = run(text, CsvOptions::default());
        let batch = &chunks[0].batch;
        assert_eq!(batch.schema().field(0).name(), "id");
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(chunks[0].rows, vec![2, 5]);
        assert!(batch.column(1).is_null(1));
        assert_eq!(rejects.len(), 2);
        assert_eq!(rejects[0].row, 3);
        assert_eq!(rejects[0].reason, "expected 2 fields, found 1");
        assert_eq!(rejects[1].row, 4);
        assert_eq!(rejects[1].column.as_deref(), Some("name"));
        assert!(rejects[1].reason.contains("invalid UTF-8"));
    }

    #[test]
    fn a_stray_quote_swallows_no_lines() {
        // Line 3 opens a quote that never closes; with no other quote in the file the reader
        // would take lines 3–7 as one record. Line 8's quoted value spans two lines: kept.
        let text = b"id,name\n1,Ann\n2,\"Bob\n3,Cy\n4,Di\n5,Ed\n6,Flo\n7,\"Gus\nvan Dijk\"\n8,Hal";
        let (chunks, rejects) = run(text, CsvOptions::default());
        assert_eq!(rejects.len(), 1, "{rejects:?}");
        assert_eq!(rejects[0].row, 3);
        assert_eq!(rejects[0].raw_value.as_deref(), Some("2,\"Bob"));
        assert!(
            rejects[0].reason.contains("unclosed quote"),
            "{}",
            rejects[0].reason
        );
        let rows: Vec<u64> = chunks.iter().flat_map(|c| c.rows.clone()).collect();
        assert_eq!(rows, vec![2, 4, 5, 6, 7, 8, 10]);
        let names = chunks[0]
            .batch
            .column(1)
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .unwrap();
        assert_eq!(names.value(5), "Gus\nvan Dijk");

        // Open to the end of the file.
        let text = b"id,name\n1,\"Ann\n2,Bob\n3,Cy\n";
        let (chunks, rejects) = run(text, CsvOptions::default());
        assert_eq!(rejects.len(), 1, "{rejects:?}");
        assert!(
            rejects[0].reason.contains("end of the file"),
            "{}",
            rejects[0].reason
        );
        assert_eq!(chunks[0].rows, vec![3, 4]);

        // A quoted value longer than max_lines_per_row, field count right: its first line
        // is rejected, the rest read.
        let opts = CsvOptions {
            max_lines_per_row: 3,
            ..Default::default()
        };
        let text = b"id,name\n1,\"a\nb\nc\nd\",x\n2,ok\n";
        let (chunks, rejects) = run(text, opts);
        assert_eq!(
            rejects.iter().map(|r| r.row).collect::<Vec<_>>(),
            vec![2, 3, 4]
        );
        assert_eq!(chunks[0].rows, vec![5, 6]);
    }

    /// Random files of short lines with stray quotes, delimiters and blanks (a seeded, bounded
    /// fuzz): every line is accounted for exactly once — a reject covers its one line, a row
    /// covers its line and the line breaks inside its values, up to the next row or reject.
    #[test]
    fn every_line_is_a_row_or_a_reject() {
        use arrow::array::Array;
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(22);
        let alphabet: &[&str] = &["a", "b", "1", ",", ",", "\"", "\"\"", " ", "x,y", "\",\""];
        for case in 0..3000 {
            let lines = rng.random_range(1..40);
            let mut text = String::from("id,name,city\n");
            for _ in 0..lines {
                for _ in 0..rng.random_range(0..8) {
                    text.push_str(alphabet[rng.random_range(0..alphabet.len())]);
                }
                text.push('\n');
            }
            let opts = CsvOptions {
                max_lines_per_row: rng.random_range(1..6),
                ..Default::default()
            };
            let (chunks, rejects) = run(text.as_bytes(), opts);
            let mut starts: Vec<(u64, Option<usize>)> =
                rejects.iter().map(|r| (r.row, None)).collect();
            for c in &chunks {
                let b = &c.batch;
                for (i, &row) in c.rows.iter().enumerate() {
                    let breaks: usize = (0..b.num_columns())
                        .map(|j| {
                            let col = b
                                .column(j)
                                .as_any()
                                .downcast_ref::<arrow::array::StringArray>()
                                .unwrap();
                            if col.is_null(i) {
                                0
                            } else {
                                col.value(i).matches('\n').count()
                            }
                        })
                        .sum();
                    starts.push((row, Some(breaks)));
                }
            }
            starts.sort();
            // Blank lines hold nothing: the reader skips them.
            let physical: Vec<&str> = text.split('\n').collect();
            let blank = |l: u64| physical.get(l as usize - 1).is_none_or(|t| t.is_empty());
            let total = lines as u64 + 1;
            let mut expected_next = 2;
            for (k, (line, breaks)) in starts.iter().enumerate() {
                assert!(
                    (expected_next..*line).all(blank),
                    "case {case}: lines {expected_next}..{line} lost: {text:?} {starts:?}"
                );
                let next = starts.get(k + 1).map_or(total + 1, |s| s.0);
                let end = line + breaks.map_or(0, |b| b as u64);
                assert!(
                    end < next,
                    "case {case}: {line} overlaps: {text:?} {starts:?}"
                );
                expected_next = end + 1;
            }
            assert!(
                (expected_next..=total).all(blank),
                "case {case}: lines from {expected_next} lost: {text:?} {starts:?}"
            );
        }
    }

    #[test]
    fn escape_character_and_delimiter() {
        let opts: CsvOptions = toml::from_str("delimiter = \"|\"\nescape = \"\\\\\"").unwrap();
        let (chunks, rejects) = run(b"a|b\n\"x \\\"q\\\" y\"|2\n", opts);
        assert!(rejects.is_empty());
        let b = &chunks[0].batch;
        let col = b
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .unwrap();
        assert_eq!(col.value(0), "x \"q\" y");
    }
}
