//! The durable append log. One thread owns the open segment: requests queue to it, it writes
//! every queued request's lines at once, calls `fdatasync` once, and only then answers them
//! all (group commit: 32 senders share one disk flush instead of waiting for 32). A request
//! that finds the queue full is refused at once (the sender retries) rather than waiting
//! unboundedly.
//!
//! Duplicates: the ids of events written within the dedup window are kept (as 64-bit
//! hashes); an event whose `messageId` is among them — or earlier in the same group — is
//! acknowledged and not written. The set is rebuilt from the files when the log opens, so a
//! retry after a crash is recognised too.

use std::collections::{HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::hash::{Hash, Hasher};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How the log behaves; `[collect]` in the config may change each.
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// A segment is sealed (and may be compacted) past this size ...
    pub segment_bytes: u64,
    /// ... or when its first event is this old.
    pub segment_age: Duration,
    /// A `messageId` is recognised as a retry for this long after it was written ...
    pub dedup_window: Duration,
    /// ... and at most this many ids are kept (the oldest go first).
    pub dedup_ids: usize,
    /// Requests waiting for the writer at most; more are refused as busy.
    pub queue: usize,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            // 16 MB ≈ 40,000 events of 400 bytes: a Parquet file a minute at 700 events/s.
            segment_bytes: 16 << 20,
            segment_age: Duration::from_secs(60),
            // Segment recognises a retried messageId within a day; so do we.
            dedup_window: Duration::from_secs(24 * 3600),
            // 5M ids ≈ 120 MB of hashes at most.
            dedup_ids: 5_000_000,
            queue: 4096,
        }
    }
}

/// One event to append: its id's hash, its line, when it was received (µs).
pub struct Pending {
    pub id_hash: u64,
    pub line: Vec<u8>,
    pub received_at: i64,
}

/// What became of each event of a request, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Written,
    /// Seen before: acknowledged, not written again.
    Duplicate,
}

struct Request {
    events: Vec<Pending>,
    reply: tokio::sync::oneshot::Sender<std::result::Result<Vec<Outcome>, AppendError>>,
}

/// Counters the server's metrics show.
#[derive(Debug, Default)]
pub struct LogStats {
    pub written: AtomicU64,
    pub duplicates: AtomicU64,
    pub flushes: AtomicU64,
    pub bytes: AtomicU64,
    pub segment: AtomicU64,
}

/// Why an append was not acknowledged.
#[derive(Debug)]
pub enum AppendError {
    /// Too many requests are waiting: retry shortly.
    Busy,
    /// Writing or flushing failed; nothing of the request is acknowledged.
    Failed(String),
}

/// The log of one directory, open for appending.
pub struct EventLog {
    tx: mpsc::SyncSender<Request>,
    pub stats: Arc<LogStats>,
    pub dir: PathBuf,
    /// Held while the log is open: a second server on the same directory is refused.
    _lock: File,
}

/// The hash an id is remembered by (SipHash with fixed keys: the same in every process).
pub fn id_hash(message_id: &str) -> u64 {
    #[allow(deprecated)]
    let mut h = std::hash::SipHasher::new();
    message_id.hash(&mut h);
    h.finish()
}

/// Ids written recently.
struct Seen {
    set: HashSet<u64>,
    order: VecDeque<(i64, u64)>,
    window_micros: i64,
    cap: usize,
}

impl Seen {
    fn insert(&mut self, received_at: i64, h: u64) {
        if self.set.insert(h) {
            self.order.push_back((received_at, h));
        }
    }

    fn expire(&mut self, now: i64) {
        while let Some(&(at, h)) = self.order.front() {
            if self.order.len() > self.cap || at < now - self.window_micros {
                self.order.pop_front();
                self.set.remove(&h);
            } else {
                break;
            }
        }
    }
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

impl EventLog {
    /// Open the log in `dir` (created if missing): finish what a crash interrupted, start a
    /// new segment, and start the writer thread.
    pub fn open(dir: &Path, options: LogOptions) -> Result<EventLog> {
        let io = |what: &'static str, p: &Path, e: std::io::Error| Error::io(what, p, e);
        for sub in ["segments", "parquet"] {
            let d = dir.join(sub);
            std::fs::create_dir_all(&d).map_err(|e| io("cannot create", &d, e))?;
        }
        let lock_path = dir.join("writer.lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| io("cannot open", &lock_path, e))?;
        if lock.try_lock().is_err() {
            return Err(Error::Conflict(format!(
                "{}: another server is collecting events into this directory",
                dir.display()
            )));
        }
        let recovered = recover(dir, options.dedup_window, options.dedup_ids)?;
        let mut seen = Seen {
            set: HashSet::new(),
            order: VecDeque::new(),
            window_micros: options.dedup_window.as_micros() as i64,
            cap: options.dedup_ids,
        };
        let mut known = recovered.known;
        known.sort_unstable();
        for (at, h) in known {
            seen.insert(at, h);
        }
        seen.expire(now_micros());
        let stats = Arc::new(LogStats::default());
        let next = recovered.last_segment + 1;
        let (file, path) = create_segment(dir, next)?;
        stats.segment.store(next, Ordering::Relaxed);
        let (tx, rx) = mpsc::sync_channel(options.queue);
        let mut writer = Writer {
            dir: dir.to_path_buf(),
            file,
            path,
            number: next,
            len: 0,
            opened: None,
            options,
            seen,
            stats: stats.clone(),
            broken: None,
        };
        std::thread::Builder::new()
            .name("event-log".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| Error::Internal(format!("cannot start the event log writer: {e}")))?;
        tracing::info!(
            dir = %dir.display(),
            segment = next,
            ids = recovered.count,
            truncated = recovered.truncated_bytes,
            "event log open"
        );
        Ok(EventLog {
            tx,
            stats,
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }

    /// Append `events`; resolves once they are on disk (or were seen before).
    pub async fn append(
        &self,
        events: Vec<Pending>,
    ) -> std::result::Result<Vec<Outcome>, AppendError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, rx) = tokio::sync::oneshot::channel();
        match self.tx.try_send(Request { events, reply }) {
            Ok(()) => {}
            Err(mpsc::TrySendError::Full(_)) => return Err(AppendError::Busy),
            Err(mpsc::TrySendError::Disconnected(_)) => {
                return Err(AppendError::Failed("the event log writer stopped".into()))
            }
        }
        match rx.await {
            Ok(Ok(outcomes)) => Ok(outcomes),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(AppendError::Failed("the event log writer stopped".into())),
        }
    }

    /// Segments below this number are sealed (compaction may take them).
    pub fn active_segment(&self) -> u64 {
        self.stats.segment.load(Ordering::Relaxed)
    }
}

struct Writer {
    dir: PathBuf,
    file: File,
    path: PathBuf,
    number: u64,
    len: u64,
    /// When the segment's first event was written.
    opened: Option<Instant>,
    options: LogOptions,
    seen: Seen,
    stats: Arc<LogStats>,
    /// Set when a failed write could not be undone: nothing more is acknowledged.
    broken: Option<String>,
}

/// Bytes written per group at most (a flood of queued requests is taken in slices).
const GROUP_BYTES: usize = 8 << 20;

impl Writer {
    fn run(&mut self, rx: mpsc::Receiver<Request>) {
        loop {
            let first = match rx.recv_timeout(Duration::from_millis(500)) {
                Ok(r) => r,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.rotate_if_due();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            };
            let mut group = vec![first];
            let mut bytes: usize = group[0].events.iter().map(|e| e.line.len()).sum();
            while bytes < GROUP_BYTES {
                match rx.try_recv() {
                    Ok(r) => {
                        bytes += r.events.iter().map(|e| e.line.len()).sum::<usize>();
                        group.push(r);
                    }
                    Err(_) => break,
                }
            }
            self.commit(group);
        }
    }

    fn commit(&mut self, group: Vec<Request>) {
        if let Some(why) = &self.broken {
            for r in group {
                let _ = r.reply.send(Err(AppendError::Failed(why.clone())));
            }
            return;
        }
        let mut buf = Vec::new();
        let mut fresh: HashSet<u64> = HashSet::new();
        let mut outcomes = Vec::with_capacity(group.len());
        let mut written = Vec::new();
        for r in &group {
            let mut out = Vec::with_capacity(r.events.len());
            for e in &r.events {
                if self.seen.set.contains(&e.id_hash) || !fresh.insert(e.id_hash) {
                    out.push(Outcome::Duplicate);
                } else {
                    buf.extend_from_slice(&e.line);
                    written.push((e.received_at, e.id_hash));
                    out.push(Outcome::Written);
                }
            }
            outcomes.push(out);
        }
        let result = if buf.is_empty() {
            Ok(())
        } else {
            self.file
                .write_all(&buf)
                .and_then(|()| self.file.sync_data())
        };
        match result {
            Ok(()) => {
                if !buf.is_empty() && self.opened.is_none() {
                    self.opened = Some(Instant::now());
                }
                self.len += buf.len() as u64;
                let n = written.len() as u64;
                for (at, h) in written {
                    self.seen.insert(at, h);
                }
                self.seen.expire(now_micros());
                let dups: usize = outcomes
                    .iter()
                    .flatten()
                    .filter(|o| **o == Outcome::Duplicate)
                    .count();
                self.stats.written.fetch_add(n, Ordering::Relaxed);
                self.stats
                    .duplicates
                    .fetch_add(dups as u64, Ordering::Relaxed);
                self.stats.flushes.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .bytes
                    .fetch_add(buf.len() as u64, Ordering::Relaxed);
                // Sealed before the answer, so a sender that then compacts finds it sealed.
                self.rotate_if_due();
                for (r, out) in group.into_iter().zip(outcomes) {
                    let _ = r.reply.send(Ok(out));
                }
            }
            Err(e) => {
                let why = format!("cannot write {}: {e}", self.path.display());
                tracing::error!("{why}");
                // Take back the partly written group, so that no unacknowledged event is read
                // later; if even that fails, stop acknowledging anything.
                let undone = self
                    .file
                    .set_len(self.len)
                    .and_then(|()| self.file.seek(SeekFrom::Start(self.len)).map(|_| ()))
                    .and_then(|()| self.file.sync_data());
                if let Err(e2) = undone {
                    self.broken = Some(format!("{why}; the log could not be repaired: {e2}"));
                }
                for r in group {
                    let _ = r.reply.send(Err(AppendError::Failed(why.clone())));
                }
            }
        }
    }

    fn rotate_if_due(&mut self) {
        let due = self.len >= self.options.segment_bytes
            || self
                .opened
                .is_some_and(|t| t.elapsed() >= self.options.segment_age);
        if !due || self.broken.is_some() {
            return;
        }
        match create_segment(&self.dir, self.number + 1) {
            Ok((file, path)) => {
                self.number += 1;
                self.file = file;
                self.path = path;
                self.len = 0;
                self.opened = None;
                self.stats.segment.store(self.number, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::warn!("cannot start a new event segment (kept writing the old one): {e}")
            }
        }
    }
}

fn create_segment(dir: &Path, n: u64) -> Result<(File, PathBuf)> {
    let path = super::segment_path(dir, n);
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| Error::io("cannot create", &path, e))?;
    super::sync_dir(&dir.join("segments")).map_err(|e| Error::io("cannot sync", dir, e))?;
    Ok((file, path))
}

/// What opening found.
struct Recovered {
    last_segment: u64,
    /// (received_at, id hash) of every event still within reach.
    known: Vec<(i64, u64)>,
    count: usize,
    truncated_bytes: u64,
}

/// Remove the files of `dir` ending in `.<extension>`: work a crash left unfinished.
fn remove_unfinished(dir: &Path, extension: &str) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io("cannot list", dir, e))? {
        let p = entry.map_err(|e| Error::io("cannot list", dir, e))?.path();
        if p.extension().is_some_and(|x| x == extension) {
            std::fs::remove_file(&p).map_err(|e| Error::io("cannot remove", &p, e))?;
        }
    }
    Ok(())
}

/// Finish what a crash interrupted: remove unfinished compactions (`.tmp`), merge inputs a
/// merge did not delete, segments a compaction did not delete; cut a torn last line (it was
/// never acknowledged: acknowledgement follows the flush of the whole line). Collect the ids
/// written, for duplicate detection.
fn recover(dir: &Path, window: Duration, cap: usize) -> Result<Recovered> {
    let io = |what: &'static str, p: &Path, e: std::io::Error| Error::io(what, p, e);
    let pq = dir.join("parquet");
    remove_unfinished(&pq, "tmp")?;
    let all = super::compacted(dir).map_err(|e| io("cannot list", &pq, e))?;
    let files = super::covering(all.clone());
    for f in &all {
        if !files.contains(f) {
            std::fs::remove_file(&f.path).map_err(|e| io("cannot remove", &f.path, e))?;
        }
    }
    let seg_dir = dir.join("segments");
    // Compacted segments a crash left half removed (`compact::remove_gradually`).
    remove_unfinished(&seg_dir, "gone")?;
    let segs = super::segments(dir).map_err(|e| io("cannot list", &seg_dir, e))?;
    let mut last_segment = files.iter().map(|f| f.last).max().unwrap_or(0);
    let mut known = Vec::new();
    let mut truncated_bytes = 0;
    let window_start = now_micros() - window.as_micros() as i64;
    for (n, path) in &segs {
        last_segment = last_segment.max(*n);
        if super::is_covered(&files, *n) {
            std::fs::remove_file(path).map_err(|e| io("cannot remove", path, e))?;
            continue;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| io("cannot open", path, e))?;
        let mut data = Vec::new();
        file.read_to_end(&mut data)
            .map_err(|e| io("cannot read", path, e))?;
        let keep = data.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        if keep < data.len() {
            truncated_bytes += (data.len() - keep) as u64;
            file.set_len(keep as u64)
                .and_then(|()| file.sync_data())
                .map_err(|e| io("cannot repair", path, e))?;
        }
        for line in data[..keep].split(|b| *b == b'\n') {
            if let Some((id, at)) = id_of_line(line) {
                known.push((at, id_hash(&id)));
            }
        }
    }
    // Ids in Parquet files compacted within the dedup window, newest first, as many as are
    // kept.
    for f in files.iter().rev() {
        if known.len() >= cap {
            break;
        }
        let recent = std::fs::metadata(&f.path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .is_some_and(|d| d.as_micros() as i64 >= window_start);
        if recent {
            for (id, at) in super::read::ids(&f.path)? {
                known.push((at, id_hash(&id)));
            }
        }
    }
    let count = known.len();
    Ok(Recovered {
        last_segment,
        known,
        count,
        truncated_bytes,
    })
}

/// The `message_id` and `received_at` of a stored line, without parsing the rest.
fn id_of_line(line: &[u8]) -> Option<(String, i64)> {
    #[derive(serde::Deserialize)]
    struct Ids {
        message_id: String,
        received_at: i64,
    }
    let ids: Ids = serde_json::from_slice(line).ok()?;
    Some((ids.message_id, ids.received_at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(id: &str) -> Pending {
        Pending {
            id_hash: id_hash(id),
            line: format!(
                "{{\"message_id\":\"{id}\",\"received_at\":{}}}\n",
                now_micros()
            )
            .into_bytes(),
            received_at: now_micros(),
        }
    }

    #[tokio::test]
    async fn retries_are_written_once_even_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = EventLog::open(dir.path(), LogOptions::default()).unwrap();
            let out = log
                .append(vec![pending("a"), pending("b"), pending("a")])
                .await
                .unwrap();
            assert_eq!(
                out,
                vec![Outcome::Written, Outcome::Written, Outcome::Duplicate]
            );
            assert!(EventLog::open(dir.path(), LogOptions::default()).is_err());
        }
        // A torn line at the end (a crash mid-write) is cut; the ids written stay known.
        let segs = crate::event_log::segments(dir.path()).unwrap();
        let mut f = OpenOptions::new().append(true).open(&segs[0].1).unwrap();
        f.write_all(b"{\"message_id\":\"c\",\"rec").unwrap();
        let log = EventLog::open(dir.path(), LogOptions::default()).unwrap();
        let out = log.append(vec![pending("b"), pending("c")]).await.unwrap();
        assert_eq!(out, vec![Outcome::Duplicate, Outcome::Written]);
        let text = std::fs::read_to_string(&segs[0].1).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
    }
}
