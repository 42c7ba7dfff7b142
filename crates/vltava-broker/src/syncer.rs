//! Group commit. Appends write to the page cache and queue their partition here; one thread
//! takes everything queued, fsyncs it without holding any partition's lock, then publishes the new
//! high watermarks. Producers that arrived while a round was running share the next round's
//! fsync, so the fsync rate stays bounded however many producers there are.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::topics::Partition;

/// Most fsyncs one round runs at once.
const SYNC_THREADS: usize = 4;

#[derive(Default)]
struct Queue {
    partitions: Vec<Arc<Partition>>,
    stopping: bool,
}

pub struct Syncer {
    queue: Mutex<Queue>,
    wake: Condvar,
    /// Bumped after every round that moved a high watermark: fetch long-polls wait on it.
    data_version: watch::Sender<u64>,
    thread: Mutex<Option<JoinHandle<()>>>,
    metrics: Arc<Metrics>,
}

/// Counters for the metrics endpoint and tests.
pub struct SyncStats {
    pub rounds: u64,
}

impl Syncer {
    pub fn start(metrics: Arc<Metrics>) -> Arc<Syncer> {
        let (data_version, _) = watch::channel(0);
        let s = Arc::new(Syncer {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            data_version,
            thread: Mutex::new(None),
            metrics,
        });
        let worker = s.clone();
        let handle = std::thread::Builder::new()
            .name("vltava-syncer".into())
            .spawn(move || worker.run());
        match handle {
            Ok(h) => *s.thread.lock().unwrap_or_else(|p| p.into_inner()) = Some(h),
            Err(e) => tracing::error!(error = %e, "cannot start the syncer thread"),
        }
        s
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.data_version.subscribe()
    }

    /// Queues `p` for the next fsync round (once, however many appends it had).
    pub fn request(&self, p: &Arc<Partition>) {
        if p.sync_queued.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.partitions.push(p.clone());
        drop(q);
        self.wake.notify_one();
    }

    fn run(&self) {
        loop {
            let batch = {
                let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
                while q.partitions.is_empty() && !q.stopping {
                    q = self.wake.wait(q).unwrap_or_else(|p| p.into_inner());
                }
                if q.partitions.is_empty() && q.stopping {
                    return;
                }
                std::mem::take(&mut q.partitions)
            };
            for p in &batch {
                // Cleared before taking the work: an append after this point queues again.
                p.sync_queued.store(false, Ordering::Release);
            }
            let moved = self.sync_all(&batch);
            if moved {
                self.data_version.send_modify(|v| *v = v.wrapping_add(1));
            }
        }
    }

    /// fsyncs a round's partitions, several at once when there are several: the file system
    /// batches concurrent fsyncs into one journal commit, so a round costs about one fsync
    /// rather than one per partition.
    fn sync_all(&self, batch: &[Arc<Partition>]) -> bool {
        if batch.len() == 1 {
            return sync_partition(&batch[0], &self.metrics);
        }
        let next = AtomicUsize::new(0);
        let moved = AtomicBool::new(false);
        std::thread::scope(|s| {
            let work = || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(p) = batch.get(i) else { return };
                if sync_partition(p, &self.metrics) {
                    moved.store(true, Ordering::Relaxed);
                }
            };
            for _ in 1..batch.len().min(SYNC_THREADS) {
                s.spawn(work);
            }
            work();
        });
        moved.into_inner()
    }

    /// Syncs everything queued, then stops the thread.
    pub fn stop(&self) {
        {
            let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            q.stopping = true;
        }
        self.wake.notify_all();
        let handle = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

/// Makes `p`'s appended data durable and publishes its new high watermark.
pub fn sync_partition(p: &Partition, metrics: &Metrics) -> bool {
    let Some(work) = p.log().sync_work() else {
        return false;
    };
    let started = std::time::Instant::now();
    let synced = work.run();
    metrics.fsyncs.inc();
    metrics
        .fsync_seconds
        .observe(started.elapsed().as_secs_f64());
    if let Err(e) = synced {
        // The data stays unacknowledged; producers time out and retry. Kafka would take the
        // log directory offline here.
        tracing::error!(topic = %p.topic, partition = p.index, error = %e, "fsync failed");
        return false;
    }
    let hw = {
        let mut log = p.log();
        log.mark_durable(work.point);
        log.high_watermark()
    };
    p.publish_hw(hw);
    true
}
