//! Every collected event as Arrow batches: the Parquet files of compacted segments, then the
//! segments not compacted yet. A compaction finishing while this reads is noticed (a segment
//! or file gone) and the listing is taken again, so each event is read exactly once.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringBuilder, TimestampMicrosecondBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::arrow::ProjectionMask;

use super::spec::Event;
use crate::error::{Error, Result};

/// Rows per batch built from segment lines.
const BATCH_ROWS: usize = 8192;

/// The events table's columns.
pub fn schema() -> SchemaRef {
    let text = |n: &str| Field::new(n, DataType::Utf8, true);
    let time = |n: &str| Field::new(n, DataType::Timestamp(TimeUnit::Microsecond, None), false);
    Arc::new(Schema::new(vec![
        Field::new("message_id", DataType::Utf8, false),
        Field::new("type", DataType::Utf8, false),
        Field::new("event", DataType::Utf8, false),
        text("name"),
        text("anonymous_id"),
        text("user_id"),
        text("previous_id"),
        text("email"),
        text("phone"),
        text("url"),
        time("ts"),
        time("received_at"),
        text("properties"),
        text("traits"),
        text("context"),
    ]))
}

/// Events as one batch of [`schema`].
pub fn batch(events: &[Event]) -> Result<RecordBatch> {
    let n = events.len();
    let mut cols: Vec<StringBuilder> = (0..13)
        .map(|_| StringBuilder::with_capacity(n, n * 16))
        .collect();
    let mut ts = TimestampMicrosecondBuilder::with_capacity(n);
    let mut received = TimestampMicrosecondBuilder::with_capacity(n);
    fn json(m: &Option<Box<serde_json::value::RawValue>>) -> Option<&str> {
        m.as_deref().map(|r| r.get())
    }
    for e in events {
        cols[0].append_value(&e.message_id);
        cols[1].append_value(&e.kind);
        cols[2].append_value(&e.event);
        cols[3].append_option(e.name.as_deref());
        cols[4].append_option(e.anonymous_id.as_deref());
        cols[5].append_option(e.user_id.as_deref());
        cols[6].append_option(e.previous_id.as_deref());
        cols[7].append_option(e.email.as_deref());
        cols[8].append_option(e.phone.as_deref());
        cols[9].append_option(e.url.as_deref());
        cols[10].append_option(json(&e.properties));
        cols[11].append_option(json(&e.traits));
        cols[12].append_option(json(&e.context));
        ts.append_value(e.ts);
        received.append_value(e.received_at);
    }
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(14);
    let mut text = cols
        .into_iter()
        .map(|mut b| Arc::new(b.finish()) as ArrayRef);
    for _ in 0..10 {
        arrays.push(text.next().expect("13 text columns"));
    }
    arrays.push(Arc::new(ts.finish()));
    arrays.push(Arc::new(received.finish()));
    arrays.extend(text);
    Ok(RecordBatch::try_new(schema(), arrays)?)
}

/// A stored line that is not an event (a damaged file): where, and why.
#[derive(Debug, Clone)]
pub struct BadLine {
    pub file: String,
    pub line: u64,
    pub reason: String,
}

/// Events of one segment file, in batches; `None` when the file is gone (compacted meanwhile).
/// A torn last line (being written, or cut by a crash) is not an event yet and is skipped.
pub fn segment(path: &Path, bad: &mut Vec<BadLine>) -> Result<Option<Vec<RecordBatch>>> {
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("cannot read", path, e)),
    };
    // Compaction renames a segment away before shrinking it (`compact::remove_gradually`):
    // gone now means it may have shrunk while read, and its events are in a Parquet file.
    if !path.exists() {
        return Ok(None);
    }
    let complete = data.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let mut out = Vec::new();
    let mut events = Vec::new();
    for (i, line) in data[..complete].split(|b| *b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<Event>(line) {
            Ok(e) => events.push(e),
            Err(e) => bad.push(BadLine {
                file: path.display().to_string(),
                line: i as u64 + 1,
                reason: format!("not a stored event: {e}"),
            }),
        }
        if events.len() == BATCH_ROWS {
            out.push(batch(&std::mem::take(&mut events))?);
        }
    }
    if !events.is_empty() {
        out.push(batch(&events)?);
    }
    Ok(Some(out))
}

/// The batches of one compacted file; `None` when it is gone (merged meanwhile).
pub(crate) fn parquet_file(path: &Path) -> Result<Option<Vec<RecordBatch>>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("cannot open", path, e)),
    };
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| Error::File {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| Error::File {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    let batches = reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::File {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    Ok(Some(batches))
}

/// `message_id` and `received_at` of each event in a compacted file.
pub fn ids(path: &Path) -> Result<Vec<(String, i64)>> {
    use arrow::array::AsArray;
    let file = std::fs::File::open(path).map_err(|e| Error::io("cannot open", path, e))?;
    let err = |e: datafusion::parquet::errors::ParquetError| Error::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(err)?;
    let mask = ProjectionMask::columns(builder.parquet_schema(), ["message_id", "received_at"]);
    let mut out = Vec::new();
    for b in builder.with_projection(mask).build().map_err(err)? {
        let b = b.map_err(|e| Error::File {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let ids = b.column(0).as_string::<i32>();
        let at = b
            .column(1)
            .as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        for i in 0..b.num_rows() {
            out.push((ids.value(i).to_string(), at.value(i)));
        }
    }
    Ok(out)
}

/// Every event in `dir`, each once, with the lines that are not events.
pub struct Collected {
    pub batches: Vec<RecordBatch>,
    pub bad: Vec<BadLine>,
    /// Files read (Parquet and segments).
    pub files: usize,
}

/// Read everything collected in `dir`: nothing when the directory does not exist yet (the
/// server makes it when it starts collecting; a run before that has no events, and says so).
pub fn read(dir: &Path) -> Result<Collected> {
    if !dir.exists() {
        tracing::warn!(
            "{}: no events collected yet (`panorama serve` makes it when it starts)",
            dir.display()
        );
        return Ok(Collected {
            batches: Vec::new(),
            bad: Vec::new(),
            files: 0,
        });
    }
    read_files(dir, &|_| false)
}

/// Every event in `dir`, leaving out the Parquet files `skip` names. A compaction or merge
/// may finish between listing and reading; then the listing is taken again. Each attempt
/// reads nothing twice: files first, then the segments no file holds.
fn read_files(dir: &Path, skip: &dyn Fn(&Path) -> bool) -> Result<Collected> {
    'attempt: for _ in 0..20 {
        let listed = |e: std::io::Error| Error::io("cannot list", dir, e);
        let segs = super::segments(dir).map_err(listed)?;
        let files = super::covering(super::compacted(dir).map_err(listed)?);
        let mut batches = Vec::new();
        let mut bad = Vec::new();
        let mut count = 0;
        for f in &files {
            if skip(&f.path) {
                continue;
            }
            match parquet_file(&f.path)? {
                Some(b) => batches.extend(b),
                None => continue 'attempt,
            }
            count += 1;
        }
        for (n, path) in &segs {
            if super::is_covered(&files, *n) {
                continue;
            }
            match segment(path, &mut bad)? {
                Some(b) => batches.extend(b),
                // Compacted after the listing: its events are in a file not read here.
                None => continue 'attempt,
            }
            count += 1;
        }
        return Ok(Collected {
            batches,
            bad,
            files: count,
        });
    }
    Err(Error::File {
        path: dir.to_path_buf(),
        message: "the collected events kept changing while being read (20 attempts)".into(),
    })
}

/// The events of a batch of [`schema`] received at or after `since` (µs), back as [`Event`]s.
pub fn events(b: &RecordBatch, since: i64) -> Result<Vec<Event>> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::TimestampMicrosecondType;
    let text = |name: &str| -> Result<&arrow::array::StringArray> {
        b.column_by_name(name)
            .and_then(|c| c.as_string_opt::<i32>())
            .ok_or_else(|| Error::Internal(format!("collected events: no text column {name}")))
    };
    let time = |name: &str| {
        b.column_by_name(name)
            .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
            .ok_or_else(|| Error::Internal(format!("collected events: no time column {name}")))
    };
    let (id, kind, event, name, anon, user, previous) = (
        text("message_id")?,
        text("type")?,
        text("event")?,
        text("name")?,
        text("anonymous_id")?,
        text("user_id")?,
        text("previous_id")?,
    );
    let (email, phone, url, props, traits, context) = (
        text("email")?,
        text("phone")?,
        text("url")?,
        text("properties")?,
        text("traits")?,
        text("context")?,
    );
    let (ts, received) = (time("ts")?, time("received_at")?);
    let opt =
        |a: &arrow::array::StringArray, i: usize| (!a.is_null(i)).then(|| a.value(i).to_string());
    let obj = |a: &arrow::array::StringArray, i: usize| {
        (!a.is_null(i))
            .then(|| serde_json::value::RawValue::from_string(a.value(i).to_string()).ok())
            .flatten()
    };
    let mut out = Vec::new();
    for i in 0..b.num_rows() {
        if received.value(i) < since {
            continue;
        }
        out.push(Event {
            message_id: id.value(i).to_string(),
            kind: kind.value(i).to_string(),
            event: event.value(i).to_string(),
            name: opt(name, i),
            anonymous_id: opt(anon, i),
            user_id: opt(user, i),
            previous_id: opt(previous, i),
            email: opt(email, i),
            phone: opt(phone, i),
            url: opt(url, i),
            ts: ts.value(i),
            received_at: received.value(i),
            properties: obj(props, i),
            traits: obj(traits, i),
            context: obj(context, i),
        });
    }
    Ok(out)
}

/// Collected events received at or after `since` (µs), in the order received. Parquet files
/// last written before `since` hold none and are not read.
pub fn recent(dir: &Path, since: i64) -> Result<Vec<Event>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let old = |p: &Path| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .is_some_and(|d| (d.as_micros() as i64) < since)
    };
    let mut out = Vec::new();
    for b in &read_files(dir, &old)?.batches {
        out.extend(events(b, since)?);
    }
    out.sort_by_key(|e| e.received_at);
    Ok(out)
}
