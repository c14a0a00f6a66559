//! Writers for the demo files: CSV rows and Parquet columns, plus loading into PostgreSQL.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Builder, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::parquet::arrow::ArrowWriter;

use crate::error::{Error, Result};

/// A CSV file written row by row (RFC 4180 quoting).
pub struct CsvOut {
    path: PathBuf,
    writer: BufWriter<File>,
    delimiter: u8,
    rows: u64,
    /// What the file is written in: UTF-8, or Windows-1252 as Excel and many European CRMs
    /// still write their exports.
    encoding: &'static encoding_rs::Encoding,
}

/// `text` in `encoding`, `?` for each character it cannot hold.
fn encode_or_question_mark(text: &str, encoding: &'static encoding_rs::Encoding) -> Vec<u8> {
    let mut encoder = encoding.new_encoder();
    let mut out = Vec::with_capacity(text.len());
    let mut buf = [0u8; 4096];
    let mut rest = text;
    loop {
        let (result, read, written) =
            encoder.encode_from_utf8_without_replacement(rest, &mut buf, true);
        out.extend_from_slice(&buf[..written]);
        rest = &rest[read..];
        match result {
            encoding_rs::EncoderResult::InputEmpty => return out,
            encoding_rs::EncoderResult::OutputFull => {}
            encoding_rs::EncoderResult::Unmappable(_) => out.push(b'?'),
        }
    }
}

impl CsvOut {
    pub fn create(path: &Path, delimiter: u8, header: &[&str]) -> Result<Self> {
        Self::create_in(path, delimiter, header, encoding_rs::UTF_8)
    }

    /// A CSV file in `encoding`; a character it cannot hold is written as `?`, as Excel does.
    pub fn create_in(
        path: &Path,
        delimiter: u8,
        header: &[&str],
        encoding: &'static encoding_rs::Encoding,
    ) -> Result<Self> {
        let file = File::create(path).map_err(|e| Error::io("cannot create", path, e))?;
        let mut out = CsvOut {
            path: path.to_path_buf(),
            writer: BufWriter::with_capacity(1 << 20, file),
            delimiter,
            rows: 0,
            encoding,
        };
        out.write_fields(header.iter().map(|h| Some(*h)))?;
        Ok(out)
    }

    fn write_fields<'a>(&mut self, fields: impl Iterator<Item = Option<&'a str>>) -> Result<()> {
        let mut line = Vec::with_capacity(256);
        for (i, f) in fields.enumerate() {
            if i > 0 {
                line.push(self.delimiter);
            }
            let f = f.unwrap_or("");
            let needs_quotes = f
                .bytes()
                .any(|b| b == self.delimiter || b == b'"' || b == b'\n' || b == b'\r');
            if needs_quotes {
                line.push(b'"');
                line.extend_from_slice(f.replace('"', "\"\"").as_bytes());
                line.push(b'"');
            } else {
                line.extend_from_slice(f.as_bytes());
            }
        }
        line.push(b'\n');
        self.write_line(&line)
    }

    /// One line of UTF-8 in the file's encoding.
    fn write_line(&mut self, line: &[u8]) -> Result<()> {
        let encoded;
        let bytes = match self.encoding == encoding_rs::UTF_8 {
            true => line,
            false => {
                let text = String::from_utf8_lossy(line);
                encoded = encode_or_question_mark(&text, self.encoding);
                &encoded
            }
        };
        self.writer
            .write_all(bytes)
            .map_err(|e| Error::io("cannot write", &self.path, e))
    }

    pub fn row(&mut self, fields: &[Option<String>]) -> Result<()> {
        self.rows += 1;
        self.write_fields(fields.iter().map(|f| f.as_deref()))
    }

    /// A line written as-is, bypassing quoting: how broken exports come about.
    pub fn raw_line(&mut self, bytes: &[u8]) -> Result<()> {
        self.rows += 1;
        let mut line = bytes.to_vec();
        line.push(b'\n');
        self.write_line(&line)
    }

    pub fn finish(mut self) -> Result<u64> {
        self.writer
            .flush()
            .map_err(|e| Error::io("cannot write", &self.path, e))?;
        Ok(self.rows)
    }
}

#[derive(Clone, Copy)]
pub enum PqType {
    Str,
    Int,
    Float,
    Ts,
}

enum Col {
    Str(StringBuilder),
    Int(Int64Builder),
    Float(Float64Builder),
    Ts(TimestampMicrosecondBuilder),
}

/// A Parquet table written column by column; optionally split into files of `rows_per_file`.
pub struct ParquetOut {
    target: PathBuf,
    rows_per_file: Option<u64>,
    schema: SchemaRef,
    cols: Vec<Col>,
    next: usize,
    buffered: usize,
    rows: u64,
    file_rows: u64,
    file_index: usize,
    writer: Option<ArrowWriter<File>>,
}

const BATCH: usize = 65_536;

impl ParquetOut {
    /// `target` is a file, or a directory when `rows_per_file` is set.
    pub fn create(
        target: PathBuf,
        columns: &[(&str, PqType)],
        rows_per_file: Option<u64>,
    ) -> Result<Self> {
        let fields: Vec<Field> = columns
            .iter()
            .map(|(n, t)| {
                let dt = match t {
                    PqType::Str => DataType::Utf8,
                    PqType::Int => DataType::Int64,
                    PqType::Float => DataType::Float64,
                    PqType::Ts => DataType::Timestamp(TimeUnit::Microsecond, None),
                };
                Field::new(*n, dt, true)
            })
            .collect();
        let mut out = ParquetOut {
            target,
            rows_per_file,
            schema: Arc::new(Schema::new(fields)),
            cols: Vec::new(),
            next: 0,
            buffered: 0,
            rows: 0,
            file_rows: 0,
            file_index: 0,
            writer: None,
        };
        out.cols = out.new_cols(columns);
        Ok(out)
    }

    fn new_cols(&self, columns: &[(&str, PqType)]) -> Vec<Col> {
        columns
            .iter()
            .map(|(_, t)| match t {
                PqType::Str => Col::Str(StringBuilder::with_capacity(BATCH, BATCH * 16)),
                PqType::Int => Col::Int(Int64Builder::with_capacity(BATCH)),
                PqType::Float => Col::Float(Float64Builder::with_capacity(BATCH)),
                PqType::Ts => Col::Ts(TimestampMicrosecondBuilder::with_capacity(BATCH)),
            })
            .collect()
    }

    fn col(&mut self) -> &mut Col {
        let i = self.next;
        self.next += 1;
        &mut self.cols[i]
    }

    pub fn str(&mut self, v: Option<&str>) {
        match self.col() {
            Col::Str(b) => b.append_option(v),
            _ => panic!("demo writer: column is not a string"),
        }
    }
    pub fn int(&mut self, v: Option<i64>) {
        match self.col() {
            Col::Int(b) => b.append_option(v),
            _ => panic!("demo writer: column is not an int"),
        }
    }
    pub fn float(&mut self, v: Option<f64>) {
        match self.col() {
            Col::Float(b) => b.append_option(v),
            _ => panic!("demo writer: column is not a float"),
        }
    }
    pub fn ts(&mut self, v: Option<i64>) {
        match self.col() {
            Col::Ts(b) => b.append_option(v),
            _ => panic!("demo writer: column is not a timestamp"),
        }
    }

    pub fn end_row(&mut self) -> Result<()> {
        debug_assert_eq!(self.next, self.cols.len(), "every column gets a value");
        self.next = 0;
        self.buffered += 1;
        self.rows += 1;
        if self.buffered == BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.buffered == 0 && self.writer.is_some() {
            return Ok(());
        }
        let arrays: Vec<ArrayRef> = self
            .cols
            .iter_mut()
            .map(|c| -> ArrayRef {
                match c {
                    Col::Str(b) => Arc::new(b.finish()),
                    Col::Int(b) => Arc::new(b.finish()),
                    Col::Float(b) => Arc::new(b.finish()),
                    Col::Ts(b) => Arc::new(b.finish()),
                }
            })
            .collect();
        let batch = RecordBatch::try_new(self.schema.clone(), arrays)?;
        self.buffered = 0;
        if let Some(limit) = self.rows_per_file {
            if self.file_rows >= limit {
                if let Some(w) = self.writer.take() {
                    w.close()?;
                }
                self.file_rows = 0;
                self.file_index += 1;
            }
        }
        if self.writer.is_none() {
            let path = match self.rows_per_file {
                Some(_) => self
                    .target
                    .join(format!("part-{:05}.parquet", self.file_index)),
                None => self.target.clone(),
            };
            let file = File::create(&path).map_err(|e| Error::io("cannot create", &path, e))?;
            self.writer = Some(ArrowWriter::try_new(
                file,
                self.schema.clone(),
                Some(crate::workspace::writer_properties()),
            )?);
        }
        self.file_rows += batch.num_rows() as u64;
        self.writer
            .as_mut()
            .expect("writer just opened")
            .write(&batch)?;
        Ok(())
    }

    pub fn finish(mut self) -> Result<u64> {
        self.flush()?;
        if let Some(w) = self.writer.take() {
            w.close()?;
        }
        Ok(self.rows)
    }
}

/// Create `loyalty.members` (replacing it) and COPY the CSV into it.
pub async fn load_loyalty_into_postgres(url: &str, csv_path: &Path) -> Result<u64> {
    use futures::SinkExt;
    let shown = crate::sources::location::redact(url);
    let err = |m: String| Error::Network {
        what: format!("PostgreSQL {shown}"),
        source: m.into(),
    };
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| err(format!("cannot connect: {e}")))?;
    let conn = tokio::spawn(connection);
    client
        .batch_execute(
            "CREATE SCHEMA IF NOT EXISTS loyalty;
             DROP TABLE IF EXISTS loyalty.members;
             CREATE TABLE loyalty.members (
               member_id text PRIMARY KEY, card_number text, first_name text, last_name text,
               email text, phone text, birth_date date, gender text, tier text, points integer,
               consent_email boolean, joined_at timestamp, updated_at timestamp)",
        )
        .await
        .map_err(|e| err(format!("cannot create loyalty.members: {e}")))?;
    let sink = client
        .copy_in("COPY loyalty.members FROM STDIN WITH (FORMAT csv, HEADER true, DELIMITER ';', ENCODING 'WIN1252')")
        .await
        .map_err(|e| err(format!("cannot start COPY: {e}")))?;
    let data = tokio::fs::read(csv_path)
        .await
        .map_err(|e| Error::io("cannot read", csv_path, e))?;
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from(data))
        .await
        .map_err(|e| err(format!("COPY failed: {e}")))?;
    let rows = sink
        .finish()
        .await
        .map_err(|e| err(format!("COPY failed: {e}")))?;
    drop(client);
    let _ = conn.await;
    Ok(rows)
}
