//! JSON sources: newline-delimited objects (NDJSON) or one top-level array of objects.
//! A line that is not valid JSON, not an object, or does not fit the inferred schema is a reject.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::json::reader::infer_json_schema_from_iterator;
use arrow::json::ReaderBuilder;
use bytes::Bytes;
use serde_json::Value;

use super::rejects::Reject;
use super::RawChunk;
use crate::error::{Error, Result};

/// Objects of one file with their line (NDJSON) or element (array) numbers.
pub struct JsonFile {
    pub file: Arc<str>,
    pub rows: Vec<u64>,
    pub values: Vec<Value>,
}

/// Parse one file into objects, rejecting what is not an object.
pub fn parse_json(
    source: &str,
    file: &str,
    data: &Bytes,
    rejects: &mut Vec<Reject>,
) -> Result<JsonFile> {
    let data = data
        .strip_prefix(b"\xEF\xBB\xBF".as_slice())
        .unwrap_or(data);
    let mut out = JsonFile {
        file: Arc::from(file),
        rows: Vec::new(),
        values: Vec::new(),
    };
    let mut reject = |row: u64, raw: String, reason: String| {
        rejects.push(Reject {
            source: source.to_string(),
            file: file.to_string(),
            row,
            column: None,
            raw_value: Some(raw),
            reason,
        })
    };
    let first = data.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        let all: Vec<Value> = serde_json::from_slice(data).map_err(|e| {
            Error::source(
                source,
                file,
                format!(
                    "invalid JSON array at line {}, column {}: {e}",
                    e.line(),
                    e.column()
                ),
            )
        })?;
        for (i, v) in all.into_iter().enumerate() {
            if v.is_object() {
                out.rows.push(i as u64 + 1);
                out.values.push(v);
            } else {
                reject(
                    i as u64 + 1,
                    v.to_string(),
                    "array element is not a JSON object".into(),
                );
            }
        }
        return Ok(out);
    }
    for (i, line) in data.split(|b| *b == b'\n').enumerate() {
        let line_no = i as u64 + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        let text = match std::str::from_utf8(line) {
            Ok(t) => t,
            Err(e) => {
                reject(
                    line_no,
                    String::from_utf8_lossy(line).into_owned(),
                    format!("invalid UTF-8 at byte {}", e.valid_up_to()),
                );
                continue;
            }
        };
        match serde_json::from_str::<Value>(text) {
            Ok(v) if v.is_object() => {
                out.rows.push(line_no);
                out.values.push(v);
            }
            Ok(_) => reject(
                line_no,
                text.to_string(),
                "line is not a JSON object".into(),
            ),
            Err(e) => reject(line_no, text.to_string(), format!("invalid JSON: {e}")),
        }
    }
    Ok(out)
}

/// Infer one schema over all files; conflicting types across files are an error.
pub fn infer_schema(source: &str, files: &[JsonFile]) -> Result<SchemaRef> {
    let mut merged: Option<Schema> = None;
    for f in files {
        if f.values.is_empty() {
            continue;
        }
        let schema = infer_json_schema_from_iterator(f.values.iter().map(|v| Ok(v.clone())))
            .map_err(|e| {
                Error::source(
                    source,
                    f.file.as_ref(),
                    format!("cannot infer a schema: {e}"),
                )
            })?;
        merged = Some(match merged {
            None => schema,
            Some(m) => Schema::try_merge([m, schema]).map_err(|e| {
                Error::source(
                    source,
                    f.file.as_ref(),
                    format!("schema mismatch with earlier files: {e}"),
                )
            })?,
        });
    }
    Ok(Arc::new(merged.unwrap_or_else(Schema::empty)))
}

/// Decode objects into Arrow; objects that do not fit the schema are rejected one by one.
pub fn decode(
    source: &str,
    schema: &SchemaRef,
    file: JsonFile,
    rejects: &mut Vec<Reject>,
    emit: &mut dyn FnMut(RawChunk) -> Result<()>,
) -> Result<()> {
    const CHUNK: usize = 65_536;
    let mut start = 0;
    loop {
        let end = (start + CHUNK).min(file.values.len());
        let values = &file.values[start..end];
        let rows = &file.rows[start..end];
        let (batch, kept) = match decode_all(schema, values) {
            Ok(b) => (b, rows.to_vec()),
            Err(_) => {
                let mut good = Vec::new();
                let mut kept = Vec::new();
                for (v, &row) in values.iter().zip(rows) {
                    match decode_all(schema, std::slice::from_ref(v)) {
                        Ok(b) => {
                            good.push(b);
                            kept.push(row);
                        }
                        Err(e) => rejects.push(Reject {
                            source: source.to_string(),
                            file: file.file.to_string(),
                            row,
                            column: None,
                            raw_value: Some(v.to_string()),
                            reason: format!("does not fit the inferred schema: {e}"),
                        }),
                    }
                }
                (arrow::compute::concat_batches(schema, &good)?, kept)
            }
        };
        emit(RawChunk {
            file: file.file.clone(),
            rows: kept,
            batch,
        })?;
        start = end;
        if start >= file.values.len() {
            return Ok(());
        }
    }
}

fn decode_all(
    schema: &SchemaRef,
    values: &[Value],
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let mut decoder = ReaderBuilder::new(schema.clone())
        .with_batch_size(values.len().max(1))
        .build_decoder()?;
    decoder.serialize(values)?;
    Ok(decoder
        .flush()?
        .unwrap_or_else(|| RecordBatch::new_empty(schema.clone())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A seeded, bounded fuzz of NDJSON files: every non-blank line is one row or one reject.
    #[test]
    fn every_line_is_a_row_or_a_reject() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(22);
        let pieces: &[&[u8]] = &[
            b"{",
            b"}",
            b"\"a\"",
            b":",
            b"1",
            b",",
            b"[",
            b"]",
            b"\"",
            b"\\",
            b" ",
            b"\r",
            b"{\"id\": 1}",
            b"\xff",
            b"null",
            b"{\"x\": \"y\n",
            b"\xEF\xBB\xBF",
        ];
        for case in 0..3000 {
            let mut data = Vec::new();
            // Not an array file: those are one document, refused whole when broken.
            data.extend_from_slice(b"{\"first\": true}\n");
            for _ in 0..rng.random_range(0..30) {
                for _ in 0..rng.random_range(0..6) {
                    data.extend_from_slice(pieces[rng.random_range(0..pieces.len())]);
                }
                data.push(b'\n');
            }
            let mut rejects = Vec::new();
            let parsed =
                parse_json("s", "f.json", &Bytes::from(data.clone()), &mut rejects).unwrap();
            let mut seen: Vec<u64> = parsed.rows.clone();
            seen.extend(rejects.iter().map(|r| r.row));
            seen.sort();
            let expected: Vec<u64> = data
                .split(|b| *b == b'\n')
                .enumerate()
                .filter(|(_, l)| {
                    !l.strip_suffix(b"\r")
                        .unwrap_or(l)
                        .iter()
                        .all(|b| b.is_ascii_whitespace())
                })
                .map(|(i, _)| i as u64 + 1)
                .collect();
            assert_eq!(
                seen,
                expected,
                "case {case}: {:?}",
                String::from_utf8_lossy(&data)
            );
        }
    }

    #[test]
    fn array_files_and_element_numbers() {
        let mut rejects = Vec::new();
        let data = Bytes::from_static(b"[{\"id\": 1, \"n\": \"a\"}, 7, {\"id\": 2}]");
        let f = parse_json("s", "f.json", &data, &mut rejects).unwrap();
        assert_eq!(f.rows, vec![1, 3]);
        assert_eq!(rejects.len(), 1);
        assert_eq!(rejects[0].row, 2);
        assert_eq!(rejects[0].reason, "array element is not a JSON object");
        let schema = infer_schema("s", std::slice::from_ref(&f)).unwrap();
        let mut chunks = Vec::new();
        decode("s", &schema, f, &mut rejects, &mut |c| {
            chunks.push(c);
            Ok(())
        })
        .unwrap();
        assert_eq!(chunks[0].batch.num_rows(), 2);
    }

    #[test]
    fn broken_array_is_a_file_error_with_position() {
        let mut rejects = Vec::new();
        let data = Bytes::from_static(b"[{\"id\": 1},\n {\"id\": }]");
        let err = parse_json("s", "f.json", &data, &mut rejects)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("f.json") && err.contains("line 2"), "{err}");
    }
}
