//! Sealed segments into Parquet. Each step leaves every event in exactly one place that
//! [`super::read`] counts, whatever moment a crash hits:
//!
//! 1. write `events-<first>-<last>.parquet.tmp`, fsync (a crash: the `.tmp` is removed when
//!    the log opens; the segments still hold everything);
//! 2. rename it to `.parquet`, fsync the directory (from now on the file is read and the
//!    segments it names are skipped);
//! 3. delete the segments (a crash before: they are deleted when the log opens).
//!
//! Merging small files works the same way: the merged file's range covers its inputs, which
//! are read no more and deleted after.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;

use super::Compacted;
use crate::error::{Error, Result};

/// Small Parquet files kept before they are merged into one ...
const MERGE_AT: usize = 16;
/// ... where small is below this: a merged file grows to about this size and is then left
/// alone, so a long-running server does not rewrite everything it ever collected.
const LARGE_FILE: u64 = 64 << 20;

/// What one compaction did.
#[derive(Debug, Default, Clone)]
pub struct CompactReport {
    pub segments: usize,
    pub events: usize,
    pub merged_files: usize,
    pub bad_lines: usize,
}

/// Compact every segment numbered below `active` into one file, then merge files when there
/// are more than [`MERGE_AT`]. Only the process holding the log's lock may call this.
pub fn compact(dir: &Path, active: u64) -> Result<CompactReport> {
    let mut report = CompactReport::default();
    let listed = |e: std::io::Error| Error::io("cannot list", dir, e);
    let files = super::covering(super::compacted(dir).map_err(listed)?);
    let sealed: Vec<(u64, PathBuf)> = super::segments(dir)
        .map_err(listed)?
        .into_iter()
        .filter(|(n, _)| *n < active && !super::is_covered(&files, *n))
        .collect();
    if let (Some(first), Some(last)) = (sealed.first(), sealed.last()) {
        let (first, last) = (first.0, last.0);
        // One segment in memory at a time: each is written as soon as it is read.
        let mut out = AtomicParquet::create(&super::compacted_path(dir, first, last))?;
        let mut bad = Vec::new();
        for (_, path) in &sealed {
            for b in super::read::segment(path, &mut bad)?.unwrap_or_default() {
                report.events += b.num_rows();
                out.write(&b)?;
            }
        }
        for b in &bad {
            tracing::error!(file = %b.file, line = b.line, "{}; the line is kept in the segment's copy under bad/", b.reason);
        }
        if !bad.is_empty() {
            // Keep damaged segments whole for inspection: nothing is deleted unread.
            let keep = dir.join("bad");
            std::fs::create_dir_all(&keep).map_err(|e| Error::io("cannot create", &keep, e))?;
            for (_, path) in &sealed {
                if let Some(name) = path.file_name() {
                    let _ = std::fs::copy(path, keep.join(name));
                }
            }
        }
        report.bad_lines = bad.len();
        report.segments = sealed.len();
        out.finish()?;
        for (_, path) in &sealed {
            remove_gradually(path).map_err(|e| Error::io("cannot remove", path, e))?;
        }
        super::sync_dir(&dir.join("segments")).map_err(|e| Error::io("cannot sync", dir, e))?;
    }
    let files = super::covering(super::compacted(dir).map_err(listed)?);
    // The newest run of small files (contiguous, as a merged file's name needs).
    let small = files
        .iter()
        .rev()
        .take_while(|f| std::fs::metadata(&f.path).is_ok_and(|m| m.len() < LARGE_FILE))
        .count();
    if small > MERGE_AT {
        let tail = &files[files.len() - small..];
        report.merged_files = tail.len();
        merge(dir, tail)?;
    }
    Ok(report)
}

/// A Parquet file written through a `.tmp` beside it, its data pushed to disk as it goes
/// ([`PacedFile`]), fsync'd and renamed into place by [`AtomicParquet::finish`].
struct AtomicParquet {
    path: PathBuf,
    tmp: PathBuf,
    writer: ArrowWriter<PacedFile>,
}

impl AtomicParquet {
    fn create(path: &Path) -> Result<Self> {
        let tmp = path.with_extension("parquet.tmp");
        let file = std::fs::File::create(&tmp).map_err(|e| Error::io("cannot create", &tmp, e))?;
        let props = WriterProperties::builder()
            // Level 1: collected JSON compresses ~8× either way; the default level cost a
            // third more CPU for a few percent of size.
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap_or_default()))
            .build();
        let writer = ArrowWriter::try_new(PacedFile::new(file), super::read::schema(), Some(props))
            .map_err(|e| Error::File {
                path: tmp.clone(),
                message: e.to_string(),
            })?;
        Ok(AtomicParquet {
            path: path.to_path_buf(),
            tmp,
            writer,
        })
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer.write(batch).map_err(|e| Error::File {
            path: self.tmp.clone(),
            message: e.to_string(),
        })
    }

    fn finish(self) -> Result<()> {
        let AtomicParquet { path, tmp, writer } = self;
        let file = writer
            .into_inner()
            .map_err(|e| Error::File {
                path: tmp.clone(),
                message: e.to_string(),
            })?
            .file;
        file.sync_all()
            .map_err(|e| Error::io("cannot sync", &tmp, e))?;
        drop(file);
        std::fs::rename(&tmp, &path).map_err(|e| Error::io("cannot rename", &tmp, e))?;
        if let Some(parent) = path.parent() {
            super::sync_dir(parent).map_err(|e| Error::io("cannot sync", parent, e))?;
        }
        Ok(())
    }
}

/// Bytes a compacted file may hold in the page cache before they are written out.
const PUSH_EVERY: u64 = 1 << 20;

/// A file whose data goes to disk every [`PUSH_EVERY`] bytes (`sync_file_range`: data only,
/// no journal commit), so the final fsync has little left to write: a compacted file never
/// leaves megabytes dirty for one flush to write while the log waits on the same disk.
struct PacedFile {
    file: std::fs::File,
    written: u64,
    pushed: u64,
}

impl PacedFile {
    fn new(file: std::fs::File) -> Self {
        PacedFile {
            file,
            written: 0,
            pushed: 0,
        }
    }

    /// Writes out and waits for every byte written since the last push.
    fn push(&mut self) -> std::io::Result<()> {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
                | libc::SYNC_FILE_RANGE_WRITE
                | libc::SYNC_FILE_RANGE_WAIT_AFTER;
            let len = (self.written - self.pushed) as libc::off64_t;
            // SAFETY: the descriptor is ours and open; the call reads no memory of ours.
            let rc = unsafe {
                libc::sync_file_range(
                    self.file.as_raw_fd(),
                    self.pushed as libc::off64_t,
                    len,
                    flags,
                )
            };
            if rc != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        self.pushed = self.written;
        Ok(())
    }
}

impl std::io::Write for PacedFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let room = (PUSH_EVERY - (self.written - self.pushed)) as usize;
        let n = self.file.write(&buf[..buf.len().min(room)])?;
        self.written += n as u64;
        if self.written - self.pushed >= PUSH_EVERY {
            self.push()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Bytes a segment shrinks by at a time before it is removed ...
const SHRINK_STEP: u64 = 4 << 20;
/// ... with this pause between steps.
const SHRINK_PAUSE: std::time::Duration = std::time::Duration::from_millis(20);

/// Remove a compacted segment (its events are in a Parquet file now, and readers skip it)
/// a few megabytes at a time. Deleting files frees their blocks in the file system's next
/// journal commit, with a discard of each freed range where the disk is mounted with
/// `discard`; the log's `fdatasync` waits for that commit. Removing 160 MB at once took 118 ms
/// on the benchmark machine and held a concurrent `fdatasync` for 106 ms (an acknowledgement
/// stall of 285 ms lined up with a compaction); in 4 MB steps the longest wait was 38 ms.
///
/// The segment is first renamed to `.gone`: a reader that read it meanwhile finds it gone
/// when it checks after reading (`read::segment`) and reads the Parquet file instead, so no
/// reader sees it shrink. A crash midway leaves a `.gone` file, removed at start.
fn remove_gradually(path: &Path) -> std::io::Result<()> {
    let gone = path.with_extension("jsonl.gone");
    match std::fs::rename(path, &gone) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    let path = gone.as_path();
    match std::fs::OpenOptions::new().write(true).open(path) {
        Ok(file) => {
            let mut size = file.metadata()?.len();
            while size > SHRINK_STEP {
                size -= SHRINK_STEP;
                file.set_len(size)?;
                file.sync_data()?;
                std::thread::sleep(SHRINK_PAUSE);
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    std::fs::remove_file(path)
}

/// Merge `files` (contiguous ranges, ascending) into one.
fn merge(dir: &Path, files: &[Compacted]) -> Result<()> {
    let (Some(first), Some(last)) = (files.first(), files.last()) else {
        return Ok(());
    };
    let mut out = AtomicParquet::create(&super::compacted_path(dir, first.first, last.last))?;
    for f in files {
        // Only this process merges or deletes files, so an input cannot vanish meanwhile.
        let read = super::read::parquet_file(&f.path)?.ok_or_else(|| Error::File {
            path: f.path.clone(),
            message: "gone while being merged".into(),
        })?;
        for b in &read {
            out.write(b)?;
        }
    }
    out.finish()?;
    for f in files {
        std::fs::remove_file(&f.path).map_err(|e| Error::io("cannot remove", &f.path, e))?;
    }
    Ok(())
}

/// Nice value of the compaction thread. Compacting costs about as much CPU as collecting
/// (parsing every line again, encoding Parquet): at normal priority each compaction of a
/// busy log showed as a 40–100 ms tail in the acknowledgements on 2 cores. Niced, it takes
/// what the collector leaves, and sealed segments wait meanwhile (runs read them anyway).
pub const COMPACTION_NICE: i32 = 10;

/// Compact every `every` on a thread of its own at [`COMPACTION_NICE`], for as long as the
/// process runs; errors are logged and retried next time.
pub fn spawn(log: Arc<super::log::EventLog>, every: std::time::Duration) {
    let started = std::thread::Builder::new()
        .name("event-compaction".into())
        .spawn(move || {
            crate::background_priority::lower_this_thread(COMPACTION_NICE);
            loop {
                std::thread::sleep(every);
                match compact(&log.dir, log.active_segment()) {
                    Ok(r) if r.segments > 0 => tracing::info!(
                        segments = r.segments,
                        events = r.events,
                        merged = r.merged_files,
                        "events compacted"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::error!("event compaction: {e}"),
                }
            }
        });
    if let Err(e) = started {
        tracing::error!("cannot start event compaction: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event_log::log::{id_hash, EventLog, LogOptions, Pending};

    /// A compacted segment is renamed away before it shrinks, so a reader never reads it
    /// half gone: it finds it missing and reads the Parquet file instead.
    #[test]
    fn a_segment_is_renamed_away_then_shrunk_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("segments")).unwrap();
        let path = crate::event_log::segment_path(dir.path(), 7);
        let line = b"{\"message_id\":\"m\",\"type\":\"track\",\"event\":\"x\",\"ts\":1,\"received_at\":1}\n";
        let mut data = Vec::new();
        while data.len() < 9 << 20 {
            data.extend_from_slice(line);
        }
        std::fs::write(&path, &data).unwrap();
        let mut bad = Vec::new();
        assert!(crate::event_log::read::segment(&path, &mut bad)
            .unwrap()
            .is_some());
        remove_gradually(&path).unwrap();
        assert!(!path.exists());
        assert!(!path.with_extension("jsonl.gone").exists());
        assert_eq!(
            crate::event_log::read::segment(&path, &mut bad).unwrap(),
            None
        );
        assert_eq!(bad.len(), 0, "lines not read as events");
        // Already gone: nothing to do.
        remove_gradually(&path).unwrap();
    }

    #[tokio::test]
    async fn compacted_events_are_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let opts = LogOptions {
            segment_bytes: 1, // every group seals its segment
            ..Default::default()
        };
        let log = EventLog::open(dir.path(), opts).unwrap();
        for i in 0..5 {
            let e = crate::event_log::spec::received(
                serde_json::json!({"type": "track", "event": "x", "userId": "u", "messageId": format!("m{i}")}),
                1,
            );
            let line = crate::event_log::spec::line(&e).unwrap();
            log.append(vec![Pending {
                id_hash: id_hash(&e.message_id),
                line,
                received_at: 1,
            }])
            .await
            .unwrap();
        }
        let count = |d: &Path| -> usize {
            crate::event_log::read::read(d)
                .unwrap()
                .batches
                .iter()
                .map(|b| b.num_rows())
                .sum()
        };
        assert_eq!(count(dir.path()), 5);
        let r = compact(dir.path(), log.active_segment()).unwrap();
        assert_eq!((r.segments, r.events), (5, 5));
        assert_eq!(count(dir.path()), 5);
        // A crash after the rename left the segments: they are skipped, and removed on open.
        let again = crate::event_log::segment_path(dir.path(), 2);
        std::fs::write(&again, b"{\"not\": \"read\"}\n").unwrap();
        assert_eq!(count(dir.path()), 5);
    }
}
