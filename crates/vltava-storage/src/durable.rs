//! Durable writes and the storage-failure latch: the one place that decides how bytes reach the
//! disk and what happens when the disk says no.
//!
//! * [`write_atomically`] replaces a small file so that a crash leaves either the old or the new
//!   contents: write a temporary file, fsync it, rename it over the target, fsync the directory.
//!   Every metadata file of the broker (topic metadata, partition metadata, the producer-id block,
//!   the group store's snapshot) goes through it.
//! * [`StorageHealth`] is Kafka's `LogDirFailureChannel` for our single data directory: the first
//!   storage I/O error of any writer (a partition's fsync, an append, the group store, a metadata
//!   file) takes the directory offline until restart. After a failed fsync the kernel may have
//!   dropped the dirty pages and a later fsync can "succeed" over the hole (Linux clears the
//!   error once reported), so nothing may ever be acknowledged again: produce and fetch answer
//!   KAFKA_STORAGE_ERROR, high watermarks stop, readiness fails, and the log says why.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// Writes `bytes` to `path` so that a crash leaves the old file or the new one, never a mix:
/// `<path>.tmp` is written and fsynced, renamed over `path`, then the directory is fsynced.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp_name);
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    sync_parent(path)
}

/// Fsyncs the directory holding `path`, so that a create, rename or unlink in it is durable.
pub fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => sync_dir(dir),
        _ => sync_dir(Path::new(".")),
    }
}

/// Fsyncs a directory (its entries: creates, renames and unlinks of files in it).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Logs running out of descriptors at most once per 10 s (a peer can cause it).
fn warn_descriptor_exhaustion(what: &str, err: &io::Error) {
    static LAST_WARN_S: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let last = LAST_WARN_S.load(Ordering::Relaxed);
    if now_s >= last + 10
        && LAST_WARN_S
            .compare_exchange(last, now_s, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!(%what, error = %err, "out of file descriptors: the request failed, the data directory stays online (raise the open-files limit or lower --max-open-segment-files)");
    }
}

/// Whether the data directory is still usable, shared by every writer of it.
#[derive(Clone)]
pub struct StorageHealth {
    inner: Arc<Inner>,
}

struct Inner {
    offline: AtomicBool,
    /// The first failure, for the log, `/status` and readiness.
    reason: Mutex<Option<String>>,
    /// Flips to true once, so that waiters (a produce waiting for its fsync) answer at once.
    offline_tx: watch::Sender<bool>,
}

impl Default for StorageHealth {
    fn default() -> Self {
        StorageHealth::new()
    }
}

impl StorageHealth {
    pub fn new() -> StorageHealth {
        StorageHealth {
            inner: Arc::new(Inner {
                offline: AtomicBool::new(false),
                reason: Mutex::new(None),
                offline_tx: watch::channel(false).0,
            }),
        }
    }

    /// Takes the data directory offline because `what` failed with `err`. Only the first
    /// failure is logged (as an error); later ones are consequences of it.
    pub fn fail(&self, what: &str, err: &io::Error) {
        // Out of descriptors, an open failed and nothing was written: the request fails alone.
        if crate::fd_cache::is_descriptor_exhaustion(err) {
            warn_descriptor_exhaustion(what, err);
            return;
        }
        if self.inner.offline.swap(true, Ordering::AcqRel) {
            return;
        }
        let reason = format!("{what}: {err}");
        tracing::error!(
            reason = %reason,
            "storage failure: the data directory is offline until restart (produce and fetch answer KAFKA_STORAGE_ERROR; nothing more is acknowledged)"
        );
        *self.inner.reason.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
        self.inner.offline_tx.send_replace(true);
    }

    /// Runs `op` and takes the directory offline if it fails. The error is returned either way.
    pub fn guard<T>(&self, what: &str, op: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
        op().inspect_err(|e| self.fail(what, e))
    }

    pub fn is_offline(&self) -> bool {
        self.inner.offline.load(Ordering::Acquire)
    }

    /// Why the directory went offline, if it did.
    pub fn reason(&self) -> Option<String> {
        self.inner
            .reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Resolves once the directory is offline (at once if it already is).
    pub async fn offline(&self) {
        let mut rx = self.inner.offline_tx.subscribe();
        // The sender lives as long as `self`, so the wait ends only by going offline.
        let _ = rx.wait_for(|o| *o).await;
    }

    /// An error for callers that must refuse because the directory is offline.
    pub fn offline_error(&self) -> io::Error {
        io::Error::other(format!(
            "the data directory is offline after a storage failure ({})",
            self.reason().unwrap_or_default()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("meta.json");
        write_atomically(&p, b"one").unwrap();
        write_atomically(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert!(!dir.path().join("meta.json.tmp").exists());
    }

    #[test]
    fn the_first_failure_latches_and_is_kept() {
        let h = StorageHealth::new();
        assert!(!h.is_offline());
        let r: io::Result<()> = h.guard("fsync of a-0", || Err(io::Error::other("EIO")));
        assert!(r.is_err());
        h.fail("later", &io::Error::other("ENOSPC"));
        assert!(h.is_offline());
        assert_eq!(h.reason().unwrap(), "fsync of a-0: EIO");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(h.offline());
    }
}
