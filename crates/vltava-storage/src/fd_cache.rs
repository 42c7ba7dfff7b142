//! A bounded cache of open segment files, so that descriptors do not grow with the number of
//! partitions and segments (they are shared with client sockets under one `RLIMIT_NOFILE`).
//!
//! A segment names its file by path and opens it through the cache when it is read or written;
//! the least recently used descriptors beyond [`max_open`] are closed. A descriptor in use is
//! an `Arc<File>` held by its user and stays open until that user drops it, so the descriptors
//! open at once are at most `max_open` plus those in use: the files written since the last
//! fsync (each log keeps the one it wrote, so the fsync is on the descriptor that wrote), file
//! ranges of fetch responses being sent, and a cleaner's copies.
//!
//! Invariant: the cache never holds more than `max_open` descriptors (asserted on insert).

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// The default bound before start-up sets one from the descriptor limit.
pub const DEFAULT_MAX_OPEN_SEGMENT_FILES: usize = 4096;
/// The smallest bound that may be set.
pub const MIN_MAX_OPEN_SEGMENT_FILES: usize = 16;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

struct Entry {
    file: Arc<File>,
    stamp: u64,
}

#[derive(Default)]
struct Lru {
    entries: HashMap<u64, Entry>,
    /// Use stamp → id, oldest first.
    order: BTreeMap<u64, u64>,
    clock: u64,
}

impl Lru {
    fn touch(&mut self, id: u64) -> Option<Arc<File>> {
        let e = self.entries.get_mut(&id)?;
        self.order.remove(&e.stamp);
        self.clock += 1;
        e.stamp = self.clock;
        self.order.insert(self.clock, id);
        Some(Arc::clone(&e.file))
    }

    fn remove(&mut self, id: u64) {
        if let Some(e) = self.entries.remove(&id) {
            self.order.remove(&e.stamp);
        }
    }

    /// Inserts `file` as the most recently used, closing the oldest beyond `max_open`.
    fn insert(&mut self, id: u64, file: Arc<File>, max_open: usize) {
        self.remove(id);
        self.clock += 1;
        self.entries.insert(
            id,
            Entry {
                file,
                stamp: self.clock,
            },
        );
        self.order.insert(self.clock, id);
        while self.entries.len() > max_open {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.entries.remove(&oldest);
        }
        assert!(self.entries.len() <= max_open.max(1));
        debug_assert_eq!(self.entries.len(), self.order.len());
    }
}

/// The process's cache of open segment files.
pub struct FdCache {
    max_open: AtomicUsize,
    lru: Mutex<Lru>,
    opened_total: AtomicU64,
}

fn cache() -> &'static FdCache {
    static CACHE: OnceLock<FdCache> = OnceLock::new();
    CACHE.get_or_init(|| FdCache {
        max_open: AtomicUsize::new(DEFAULT_MAX_OPEN_SEGMENT_FILES),
        lru: Mutex::new(Lru::default()),
        opened_total: AtomicU64::new(0),
    })
}

impl FdCache {
    fn lru(&self) -> std::sync::MutexGuard<'_, Lru> {
        self.lru.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn max(&self) -> usize {
        self.max_open.load(Ordering::Relaxed)
    }
}

/// Sets how many segment files may stay open (at least [`MIN_MAX_OPEN_SEGMENT_FILES`]).
pub fn set_max_open(n: usize) {
    let c = cache();
    let n = n.max(MIN_MAX_OPEN_SEGMENT_FILES);
    c.max_open.store(n, Ordering::Relaxed);
    let mut lru = c.lru();
    while lru.entries.len() > n {
        let Some((_, oldest)) = lru.order.pop_first() else {
            break;
        };
        lru.entries.remove(&oldest);
    }
}

/// The bound on cached descriptors.
pub fn max_open() -> usize {
    cache().max()
}

/// Descriptors held by the cache now (not counting those only held by their users).
pub fn cached_count() -> usize {
    cache().lru().entries.len()
}

/// How many times a segment file was opened again after its descriptor was closed.
pub fn reopened_total() -> u64 {
    cache().opened_total.load(Ordering::Relaxed)
}

/// Whether an error is the process (or system) running out of descriptors: not a storage
/// failure, and not a reason to take the data directory offline.
pub fn is_descriptor_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(code) if code == rustix::io::Errno::MFILE.raw_os_error()
            || code == rustix::io::Errno::NFILE.raw_os_error()
    )
}

/// A segment's file: opened on demand through the cache (or pinned open, for a cleaner's copy
/// until it is renamed into place).
#[derive(Debug, Clone)]
pub struct SegmentFile {
    id: u64,
    path: PathBuf,
    pinned: Option<Arc<File>>,
}

impl SegmentFile {
    /// A file just opened at `path`, handed to the cache.
    pub fn opened(path: PathBuf, file: File) -> SegmentFile {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let c = cache();
        c.lru().insert(id, Arc::new(file), c.max());
        SegmentFile {
            id,
            path,
            pinned: None,
        }
    }

    /// A file kept open outside the cache: it is not at `path` yet.
    pub fn pinned(path: PathBuf, file: File) -> SegmentFile {
        SegmentFile {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            path,
            pinned: Some(Arc::new(file)),
        }
    }

    /// Identifies the file (a new one after a rewrite), unlike a descriptor, which may change.
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open file: from the cache, or opened again (read and write) if it was closed.
    pub fn get(&self) -> io::Result<Arc<File>> {
        if let Some(f) = &self.pinned {
            return Ok(Arc::clone(f));
        }
        let c = cache();
        if let Some(f) = c.lru().touch(self.id) {
            return Ok(f);
        }
        let file = Arc::new(OpenOptions::new().read(true).write(true).open(&self.path)?);
        c.opened_total.fetch_add(1, Ordering::Relaxed);
        let mut lru = c.lru();
        // Another thread may have opened it meanwhile: keep one.
        if let Some(f) = lru.touch(self.id) {
            return Ok(f);
        }
        lru.insert(self.id, Arc::clone(&file), c.max());
        Ok(file)
    }

    /// The pinned file is now at its path: it joins the cache like any other.
    pub fn unpin(&mut self) {
        if let Some(f) = self.pinned.take() {
            let c = cache();
            c.lru().insert(self.id, f, c.max());
        }
    }

    /// Closes the cached descriptor (the segment is gone or replaced); users keep theirs.
    pub fn forget(&self) {
        cache().lru().remove(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_is_bounded_and_reopens_what_it_closed() {
        let dir = tempfile::tempdir().unwrap();
        let mut lru = Lru::default();
        for id in 0..10u64 {
            let f = File::create(dir.path().join(id.to_string())).unwrap();
            lru.insert(id, Arc::new(f), 4);
            assert!(lru.entries.len() <= 4);
        }
        // The four most recently used are kept; touching one keeps it past later inserts.
        assert!(lru.touch(6).is_some());
        assert!(lru.touch(0).is_none());
        let f = File::create(dir.path().join("x")).unwrap();
        lru.insert(100, Arc::new(f), 4);
        assert!(lru.touch(6).is_some(), "recently used survives");
        assert!(lru.touch(7).is_none(), "least recently used was closed");

        // Through the process cache: a file whose descriptor was closed is opened again.
        let path = dir.path().join("seg.log");
        std::fs::write(&path, b"abc").unwrap();
        let sf = SegmentFile::opened(path, File::open(dir.path().join("seg.log")).unwrap());
        sf.forget();
        let mut buf = [0u8; 3];
        std::os::unix::fs::FileExt::read_exact_at(sf.get().unwrap().as_ref(), &mut buf, 0).unwrap();
        assert_eq!(&buf, b"abc");
        sf.forget();
    }
}
