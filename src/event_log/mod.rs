//! Collected events: what `POST /api/events` (the tracker, app SDKs, servers) sends, kept so
//! that nothing acknowledged is lost and nothing is counted twice.
//!
//! - [`spec`]: the Segment/RudderStack event spec (`page`, `screen`, `track`, `identify`,
//!   `alias`) checked and flattened into one row shape.
//! - [`log`]: the durable append log. An event is acknowledged only after the segment file
//!   holding it is fsync'd; concurrent requests share one fsync (group commit); a `messageId`
//!   seen before is acknowledged without being written again.
//! - [`compact`]: sealed segments become Parquet files, each named by the segments it holds,
//!   so a crash at any moment of a compaction leaves every event in exactly one place.
//! - [`read`]: every collected event as Arrow batches (Parquet files and the segments not yet
//!   compacted), what a run reads for a source of `format = "events"`.
//!
//! The directory (the source's `location`):
//!
//! ```text
//! segments/000000000007.jsonl      one event per line; the highest number is being written
//! parquet/events-000000000001-000000000006.parquet
//! writer.lock                      held by the one server writing here
//! ```

pub mod compact;
pub mod filter;
pub mod log;
pub mod read;
pub mod spec;

use std::path::{Path, PathBuf};

pub use spec::Event;

/// The segment files of a log directory, by number (ascending).
pub(crate) fn segments(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    let seg_dir = dir.join("segments");
    let entries = match std::fs::read_dir(&seg_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        let Some(n) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".jsonl"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        out.push((n, path));
    }
    out.sort();
    Ok(out)
}

pub(crate) fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join("segments").join(format!("{n:012}.jsonl"))
}

/// A Parquet file of compacted segments `first..=last`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Compacted {
    pub first: u64,
    pub last: u64,
    pub path: PathBuf,
}

pub(crate) fn compacted_path(dir: &Path, first: u64, last: u64) -> PathBuf {
    dir.join("parquet")
        .join(format!("events-{first:012}-{last:012}.parquet"))
}

/// The Parquet files of a log directory (finished ones: a `.tmp` is a compaction that did not
/// finish and holds nothing the segments do not).
pub(crate) fn compacted(dir: &Path) -> std::io::Result<Vec<Compacted>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir.join("parquet")) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        let Some(range) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("events-"))
            .and_then(|n| n.strip_suffix(".parquet"))
        else {
            continue;
        };
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        if let (Ok(first), Ok(last)) = (a.parse(), b.parse()) {
            out.push(Compacted { first, last, path });
        }
    }
    Ok(out)
}

/// The Parquet files that hold each compacted segment once: a file whose range lies inside a
/// wider one is a merge's input the merge had not deleted yet.
pub(crate) fn covering(mut files: Vec<Compacted>) -> Vec<Compacted> {
    files.sort_by(|a, b| a.first.cmp(&b.first).then(b.last.cmp(&a.last)));
    let mut out: Vec<Compacted> = Vec::new();
    for f in files {
        match out.last() {
            Some(prev) if f.first <= prev.last => {} // inside (or overlapping) the wider file
            _ => out.push(f),
        }
    }
    out
}

/// True when segment `n` is held by one of `files`.
pub(crate) fn is_covered(files: &[Compacted], n: u64) -> bool {
    files.iter().any(|f| f.first <= n && n <= f.last)
}

/// Make `path`'s directory entry durable (a created, renamed or removed file).
pub(crate) fn sync_dir(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(path)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(first: u64, last: u64) -> Compacted {
        Compacted {
            first,
            last,
            path: PathBuf::from(format!("{first}-{last}")),
        }
    }

    #[test]
    fn a_merge_and_its_inputs_count_once() {
        let picked = covering(vec![c(1, 3), c(4, 4), c(1, 4), c(5, 9)]);
        assert_eq!(picked, vec![c(1, 4), c(5, 9)]);
        assert!(is_covered(&picked, 4) && !is_covered(&picked, 10));
    }
}
