//! The producer-id allocator: keeps producer ids unique across restarts by reserving them in
//! durable blocks (InitProducerId hands them out: `handlers/producer_id.rs`).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use vltava_storage::durable::{self, StorageHealth};

/// Ids reserved per write of the block file.
const BLOCK_SIZE: i64 = 1000;
const BLOCK_FILE: &str = "producer-id-block";

struct Range {
    next: i64,
    end: i64,
}

pub struct ProducerIdAllocator {
    path: PathBuf,
    health: StorageHealth,
    /// Ids handed out and reserved; never held across I/O.
    range: Mutex<Range>,
    /// One block reservation at a time (blocks are reserved in order). Held across the block
    /// file's fsync, awaited by the callers that need the next block; nothing else takes it.
    reserving: tokio::sync::Mutex<()>,
}

impl ProducerIdAllocator {
    pub fn open(data_dir: &Path, health: StorageHealth) -> io::Result<ProducerIdAllocator> {
        let path = data_dir.join(BLOCK_FILE);
        let start = match fs::read_to_string(&path) {
            Ok(s) => s.trim().parse::<i64>().map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        let a = ProducerIdAllocator {
            path,
            health,
            range: Mutex::new(Range {
                next: start,
                end: start,
            }),
            reserving: tokio::sync::Mutex::new(()),
        };
        Ok(a)
    }

    fn range(&self) -> std::sync::MutexGuard<'_, Range> {
        self.range.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next id of the reserved block, if any is left.
    fn take(&self) -> Option<i64> {
        let mut r = self.range();
        (r.next < r.end).then(|| {
            r.next += 1;
            r.next - 1
        })
    }

    /// An id no run of this broker handed out before. When the reserved block is used up, the
    /// end of the next one is made durable (on a blocking thread) before any id in it is given.
    pub async fn allocate(&self) -> io::Result<i64> {
        loop {
            if let Some(id) = self.take() {
                return Ok(id);
            }
            let _reserving = self.reserving.lock().await;
            // Another caller may have reserved a block while this one waited.
            if let Some(id) = self.take() {
                return Ok(id);
            }
            let end = self.range().end + BLOCK_SIZE;
            if self.health.is_offline() {
                return Err(self.health.offline_error());
            }
            let (path, health) = (self.path.clone(), self.health.clone());
            tokio::task::spawn_blocking(move || {
                health.guard("writing the producer-id block", || {
                    write_block_end(&path, end)
                })
            })
            .await
            .map_err(io::Error::other)??;
            self.range().end = end;
        }
    }

    /// Whether `id` was handed out by this broker (in any run).
    pub fn issued(&self, id: i64) -> bool {
        id >= 0 && id < self.range().next
    }
}

/// Writes `end` as the end of the reserved ids, durably (file and directory fsynced).
fn write_block_end(path: &Path, end: i64) -> io::Result<()> {
    durable::write_atomically(path, end.to_string().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn ids_are_unique_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let a = ProducerIdAllocator::open(dir.path(), StorageHealth::new()).unwrap();
        let first = run(a.allocate()).unwrap();
        let second = run(a.allocate()).unwrap();
        assert_eq!(second, first + 1);
        drop(a);
        let b = ProducerIdAllocator::open(dir.path(), StorageHealth::new()).unwrap();
        assert!(run(b.allocate()).unwrap() > second);
    }

    /// Callers racing over several blocks each get a distinct id, the ids are exactly the first
    /// ones, and the block file covers them all (so a restart never reuses one).
    #[test]
    fn concurrent_callers_across_blocks_get_distinct_ids() {
        let dir = tempfile::tempdir().unwrap();
        let a = std::sync::Arc::new(
            ProducerIdAllocator::open(dir.path(), StorageHealth::new()).unwrap(),
        );
        let total = 3 * BLOCK_SIZE as usize + 7;
        let ids = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .build()
            .expect("runtime")
            .block_on(async {
                let tasks: Vec<_> = (0..total)
                    .map(|_| {
                        let a = a.clone();
                        tokio::spawn(async move { a.allocate().await })
                    })
                    .collect();
                let mut ids = Vec::new();
                for t in tasks {
                    ids.push(t.await.expect("task").expect("allocate"));
                }
                ids
            });
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..total as i64).collect::<Vec<_>>());
        let end: i64 = fs::read_to_string(dir.path().join(BLOCK_FILE))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(end, 4 * BLOCK_SIZE, "four blocks reserved, no more");
        assert!(a.issued(total as i64 - 1) && !a.issued(total as i64));
    }
}
