//! One writer at a time: an OS file lock on `<workspace>/lock`, held by every operation that
//! writes the workspace (run, refresh, erasure, rectification, exports, journeys, a schedule's
//! job, the HTTP admin endpoints).
//!
//! Without it, two writers prune each other's run directories: a run deletes runs older than
//! its `keep_runs` newest successes, and an erasure deletes every run but its own, so a run
//! still being written by another process could disappear under it (seen while testing
//! erasure at 1M persons).
//!
//! The lock is `flock(2)` (through `std::fs::File::try_lock`): advisory, released by the OS
//! when the holder exits for any reason, `kill -9` included, so a crashed writer never leaves
//! a stale lock. Readers (`query`, `sql`, `serve`) never take it: they read the current run,
//! which is only ever replaced by an atomic pointer switch. The holder writes who it is into
//! the lock file so a writer that finds it taken can say whom it waits for.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Who holds a workspace's write lock; the lock file's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    pub host: String,
    /// The operation, e.g. `run`, `erase`, `export newsletter`.
    pub operation: String,
    /// The holder's command line, e.g. `panorama schedule -p shop`.
    pub command: String,
    /// When the lock was taken (RFC 3339, UTC).
    pub since: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let since = chrono::DateTime::parse_from_rfc3339(&self.since)
            .map(|t| {
                let secs = (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
                    .num_seconds()
                    .max(0);
                format!("since {} ({secs} s ago)", t.format("%Y-%m-%d %H:%M:%S UTC"))
            })
            .unwrap_or_else(|_| format!("since {}", self.since));
        write!(
            f,
            "{} (pid {} on {}, `{}`) {since}",
            self.operation, self.pid, self.host, self.command
        )
    }
}

/// Holding a workspace's write lock; released when the last clone is dropped, or by the OS
/// when the process ends.
#[derive(Debug)]
pub struct WriteLock {
    file: File,
    workspace: PathBuf,
}

impl WriteLock {
    pub fn workspace(&self) -> &Path {
        &self.workspace
    }
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        // Clear the holder first, so a reader of the file never names a process that let go.
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

/// How an operation that writes gets the lock.
#[derive(Debug, Clone, Default)]
pub enum Locking {
    /// Take it, or fail at once naming the holder (the CLI's default).
    #[default]
    FailFast,
    /// Wait for the holder to finish (`--wait`; schedules).
    Wait,
    /// The caller holds it already (an erasure's run, a schedule's steps, a journey's export).
    Held(Arc<WriteLock>),
}

impl Locking {
    pub fn wait(wait: bool) -> Locking {
        if wait {
            Locking::Wait
        } else {
            Locking::FailFast
        }
    }
}

/// How often a refused writer looks again for a holder that has not written its name yet
/// (5 ms apart).
const NAMELESS_RETRIES: u32 = 10;

/// The lock file of a workspace.
pub fn lock_path(workspace: &Path) -> PathBuf {
    workspace.join("lock")
}

/// Who holds the workspace's lock now, as far as the lock file tells (`None` when it is free
/// or the holder wrote nothing, e.g. `flock(1)` from a shell).
pub fn holder(workspace: &Path) -> Option<Holder> {
    let text = std::fs::read_to_string(lock_path(workspace)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Take the write lock of `workspace` for `operation`, as `locking` says.
pub async fn acquire(
    workspace: &Path,
    operation: &str,
    locking: &Locking,
) -> Result<Arc<WriteLock>> {
    match locking {
        Locking::Held(lock) => {
            if !same_dir(lock.workspace(), workspace) {
                return Err(Error::Internal(format!(
                    "internal: the lock held is for {}, not {}",
                    lock.workspace().display(),
                    workspace.display()
                )));
            }
            Ok(lock.clone())
        }
        Locking::FailFast => {
            let file = open(workspace)?;
            // A holder writes its name just after it locks and clears it just before it
            // unlocks, so a refusal can land in either window and find the lock taken but
            // nameless. A refusal then looks again for up to 50 ms: the lock is free, or the
            // holder has a name, or it never writes one (`flock(1)` from a shell). Seen in CI:
            // an admin run refused as "another process" while a schedule switched jobs.
            for attempt in 0..=NAMELESS_RETRIES {
                match file.try_lock() {
                    Ok(()) => return Ok(Arc::new(held(file, workspace, operation)?)),
                    Err(TryLockError::WouldBlock) => {}
                    Err(TryLockError::Error(e)) => {
                        return Err(Error::io("cannot lock", lock_path(workspace), e))
                    }
                }
                let named = holder(workspace);
                if named.is_some() || attempt == NAMELESS_RETRIES {
                    return Err(Error::Busy {
                        workspace: workspace.to_path_buf(),
                        operation: operation.to_string(),
                        holder: named.map(Box::new),
                    });
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            unreachable!("the last attempt returns")
        }
        Locking::Wait => {
            let file = open(workspace)?;
            match file.try_lock() {
                Ok(()) => return Ok(Arc::new(held(file, workspace, operation)?)),
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(e)) => {
                    return Err(Error::io("cannot lock", lock_path(workspace), e))
                }
            }
            match holder(workspace) {
                Some(h) => tracing::warn!("{operation}: waiting for the workspace's writer: {h}"),
                None => tracing::warn!("{operation}: waiting for the workspace's writer"),
            }
            let path = lock_path(workspace);
            let file = tokio::task::spawn_blocking(move || file.lock().map(|()| file))
                .await
                .map_err(|e| Error::Internal(format!("waiting for the workspace lock: {e}")))?
                .map_err(|e| Error::io("cannot lock", &path, e))?;
            Ok(Arc::new(held(file, workspace, operation)?))
        }
    }
}

fn open(workspace: &Path) -> Result<File> {
    std::fs::create_dir_all(workspace).map_err(|e| Error::io("cannot create", workspace, e))?;
    let path = lock_path(workspace);
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io("cannot open", &path, e))
}

/// Record who holds the lock just taken.
fn held(mut file: File, workspace: &Path, operation: &str) -> Result<WriteLock> {
    let me = Holder {
        pid: std::process::id(),
        host: super::host_name(),
        operation: operation.to_string(),
        command: command_line(),
        since: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    let text = serde_json::to_string(&me)?;
    let path = lock_path(workspace);
    let write = |file: &mut File| -> std::io::Result<()> {
        file.set_len(0)?;
        file.rewind()?;
        file.write_all(text.as_bytes())?;
        file.flush()
    };
    write(&mut file).map_err(|e| Error::io("cannot write", &path, e))?;
    Ok(WriteLock {
        file,
        workspace: workspace.to_path_buf(),
    })
}

/// The process's command line, program name shortened to its file name.
fn command_line() -> String {
    let mut args = std::env::args();
    let program = args
        .next()
        .map(|p| {
            Path::new(&p)
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or(p)
        })
        .unwrap_or_default();
    std::iter::once(program)
        .chain(args)
        .collect::<Vec<_>>()
        .join(" ")
}

fn same_dir(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn second_writer_fails_naming_the_holder_then_takes_it_after_release() {
        let tmp = tempfile::tempdir().unwrap();
        let ws = tmp.path().join(".panorama");
        let first = acquire(&ws, "run", &Locking::FailFast).await.unwrap();
        let h = holder(&ws).expect("holder recorded");
        assert_eq!(h.pid, std::process::id());
        assert_eq!(h.operation, "run");
        // Another open file description conflicts even in the same process (flock semantics).
        let err = acquire(&ws, "erase", &Locking::FailFast).await.unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::Busy { .. }), "{text}");
        assert!(text.contains("run (pid"), "{text}");
        assert!(text.contains("--wait"), "{text}");
        // A caller holding it passes it down.
        let again = acquire(&ws, "run", &Locking::Held(first.clone()))
            .await
            .unwrap();
        drop(again);
        drop(first);
        assert_eq!(holder(&ws), None, "the holder is cleared on release");
        let second = acquire(&ws, "erase", &Locking::FailFast).await.unwrap();
        assert_eq!(holder(&ws).unwrap().operation, "erase");
        drop(second);
    }

    #[tokio::test]
    async fn a_refusal_waits_briefly_for_the_holders_name() {
        let tmp = tempfile::tempdir().unwrap();
        let ws = tmp.path().to_path_buf();
        // Locked by someone who writes their name 20 ms later (a holder between its lock and
        // its write).
        let raw = open(&ws).unwrap();
        raw.try_lock().unwrap();
        let ws2 = ws.clone();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            held(raw, &ws2, "schedule often").unwrap()
        });
        let err = acquire(&ws, "run", &Locking::FailFast).await.unwrap_err();
        assert!(err.to_string().contains("schedule often (pid"), "{err}");
        drop(writer.join().unwrap());
        // Locked by someone who never writes a name (`flock(1)`): refused without one.
        let raw = open(&ws).unwrap();
        raw.try_lock().unwrap();
        let err = acquire(&ws, "run", &Locking::FailFast).await.unwrap_err();
        assert!(matches!(&err, Error::Busy { holder: None, .. }), "{err}");
    }

    #[tokio::test]
    async fn waiting_writer_gets_the_lock_when_the_holder_lets_go() {
        let tmp = tempfile::tempdir().unwrap();
        let ws = tmp.path().to_path_buf();
        let first = acquire(&ws, "run", &Locking::FailFast).await.unwrap();
        let ws2 = ws.clone();
        let waiter = tokio::spawn(async move {
            acquire(&ws2, "refresh", &Locking::Wait)
                .await
                .map(|l| l.workspace().to_path_buf())
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(first);
        assert_eq!(waiter.await.unwrap().unwrap(), ws);
    }
}
