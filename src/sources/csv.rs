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

/// Read one CSV file. `expected` is the header of the source's first file; later files must
/// have the same columns. Returns this file's header.
#[allow(clippy::too_many_arguments)]
pub fn read_csv(
    source: &str,
    file: &str,
    data: Bytes,
    opts: &CsvOptions,
    expected: Option<&[String]>,
    rejects: &mut Vec<Reject>,
    emit: &mut dyn FnMut(RawChunk) -> Result<()>,
) -> Result<Vec<String>> {
    let data = data.strip_prefix(UTF8_BOM).unwrap_or(&data);
    let mut builder = csv::ReaderBuilder::new();
    builder
        .has_headers(false)
        .flexible(true)
        .delimiter(opts.delimiter.get_ref().as_bytes()[0])
        .quote(opts.quote.get_ref().as_bytes()[0]);
    if let Some(esc) = &opts.escape {
        builder.escape(Some(esc.get_ref().as_bytes()[0]));
    }
    let mut reader = builder.from_reader(data);
    let mut record = csv::ByteRecord::new();
    let file_arc: Arc<str> = Arc::from(file);

    let read = |reader: &mut csv::Reader<&[u8]>, record: &mut csv::ByteRecord| {
        reader
            .read_byte_record(record)
            .map_err(|e| Error::source(source, file, format!("CSV error: {e}")))
    };

    // Header: from the first record, or generated names.
    let mut pending_first = false;
    let header: Vec<String> = if opts.header {
        if !read(&mut reader, &mut record)? {
            return Err(Error::source(source, file, "file is empty: no header line"));
        }
        record
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
            .collect()
    } else {
        if !read(&mut reader, &mut record)? {
            return Ok(expected.map(|e| e.to_vec()).unwrap_or_default());
        }
        pending_first = true;
        (1..=record.len()).map(|i| format!("column_{i}")).collect()
    };
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = header.iter().find(|h| !seen.insert(h.as_str())) {
        return Err(Error::source(
            source,
            file,
            format!("header names column `{dup}` twice"),
        ));
    }
    if let Some(exp) = expected {
        if exp != header.as_slice() {
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

    loop {
        if pending_first {
            pending_first = false;
        } else if !read(&mut reader, &mut record)? {
            break;
        }
        let line = record.position().map_or(0, |p| p.line());
        if record.len() != width {
            let raw = record
                .iter()
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .collect::<Vec<_>>()
                .join(opts.delimiter.get_ref());
            rejects.push(Reject {
                source: source.to_string(),
                file: file.to_string(),
                row: line,
                column: None,
                raw_value: Some(raw),
                reason: format!("expected {width} fields, found {}", record.len()),
            });
            continue;
        }
        let mut bad = None;
        for (i, f) in record.iter().enumerate() {
            if let Err(e) = std::str::from_utf8(f) {
                bad = Some((i, e.valid_up_to(), String::from_utf8_lossy(f).into_owned()));
                break;
            }
        }
        if let Some((i, at, raw)) = bad {
            rejects.push(Reject {
                source: source.to_string(),
                file: file.to_string(),
                row: line,
                column: Some(header[i].clone()),
                raw_value: Some(raw),
                reason: format!("invalid UTF-8 at byte {at} of the value"),
            });
            continue;
        }
        for (b, f) in builders.iter_mut().zip(record.iter()) {
            // Checked above: every field is valid UTF-8.
            let s = std::str::from_utf8(f).unwrap_or_default();
            if opts.null_values.iter().any(|n| n == s) {
                b.append_null();
            } else {
                b.append_value(s);
            }
        }
        rows.push(line);
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
