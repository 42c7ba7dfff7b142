//! Group commit. Appends write to the page cache and queue their partition here; a few sync
//! threads take queued partitions one at a time, fsync each without holding its lock, and
//! publish its new high watermark. A partition has at most one fsync in flight: appends that
//! arrive during it are covered by the partition's next fsync, started as soon as this one ends
//! (the thread re-queues the partition). Partitions do not wait for each other, and concurrent
//! fsyncs of different partitions share the file system's journal commits, so the fsync rate
//! stays bounded by partitions x disk latency however many producers there are.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use vltava_storage::durable::StorageHealth;

use crate::metrics::Metrics;
use crate::topics::Partition;

/// Sync threads: most fsyncs in flight at once.
const SYNC_THREADS: usize = 4;

#[derive(Default)]
struct Queue {
    /// Each partition at most once: its `sync_queued` flag is set while it is here or syncing.
    partitions: VecDeque<Arc<Partition>>,
    stopping: bool,
}

pub struct Syncer {
    queue: Mutex<Queue>,
    wake: Condvar,
    threads: Mutex<Vec<JoinHandle<()>>>,
    metrics: Arc<Metrics>,
    health: StorageHealth,
    /// `VLTAVA_UNSAFE_ACK_BEFORE_FSYNC`, for the power-loss test only: the high watermark moves
    /// without an fsync, so that the test can prove it detects acknowledgements a power loss
    /// takes back.
    skip_fsync: bool,
}

impl Syncer {
    pub fn start(metrics: Arc<Metrics>, health: StorageHealth) -> Arc<Syncer> {
        let skip_fsync =
            std::env::var_os("VLTAVA_UNSAFE_ACK_BEFORE_FSYNC").is_some_and(|v| v == "1");
        if skip_fsync {
            tracing::error!("VLTAVA_UNSAFE_ACK_BEFORE_FSYNC=1: acknowledging without fsync; a power loss loses acknowledged records (for tests only)");
        }
        let s = Arc::new(Syncer {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            threads: Mutex::new(Vec::new()),
            metrics,
            health,
            skip_fsync,
        });
        let mut threads = Vec::new();
        for i in 0..SYNC_THREADS {
            let worker = s.clone();
            match std::thread::Builder::new()
                .name(format!("vltava-sync-{i}"))
                .spawn(move || worker.run())
            {
                Ok(h) => threads.push(h),
                Err(e) => tracing::error!(error = %e, "cannot start a sync thread"),
            }
        }
        *s.threads.lock().unwrap_or_else(|p| p.into_inner()) = threads;
        s
    }

    /// Queues `p` for an fsync (once, however many appends it had; not while one is running,
    /// whose thread queues it again if needed).
    pub fn request(&self, p: &Arc<Partition>) {
        if p.sync_queued.swap(true, Ordering::AcqRel) {
            return;
        }
        self.push(p.clone());
    }

    fn push(&self, p: Arc<Partition>) {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.partitions.push_back(p);
        drop(q);
        self.wake.notify_one();
    }

    fn run(&self) {
        loop {
            let p = {
                let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
                loop {
                    if let Some(p) = q.partitions.pop_front() {
                        break p;
                    }
                    if q.stopping {
                        return;
                    }
                    q = self.wake.wait(q).unwrap_or_else(|p| p.into_inner());
                }
            };
            sync_partition(&p, &self.metrics, &self.health, self.skip_fsync);
            // Appends during the fsync left the flag set and did not queue: queue them now.
            // Decided under the log's lock, which appends hold while writing, so an append
            // either is seen here or finds the flag clear and queues the partition itself.
            let again = {
                let log = p.log();
                // Offline, nothing becomes durable again: the partition is not requeued.
                let again = log.needs_sync() && !self.health.is_offline();
                if !again {
                    p.sync_queued.store(false, Ordering::Release);
                }
                again
            };
            if again {
                self.push(p);
            }
        }
    }

    /// Syncs everything queued (and what those fsyncs leave to sync), then stops the threads.
    pub fn stop(&self) {
        {
            let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            q.stopping = true;
        }
        self.wake.notify_all();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for h in threads {
            let _ = h.join();
        }
    }
}

/// Makes `p`'s appended data durable and publishes its new high watermark. A failed fsync
/// takes the data directory offline (`health`): what the kernel kept of the dirty pages is
/// unknown, and a later fsync could succeed over lost bytes, so the high watermark of every
/// partition stops where it is.
pub fn sync_partition(
    p: &Partition,
    metrics: &Metrics,
    health: &StorageHealth,
    skip_fsync: bool,
) -> bool {
    if health.is_offline() {
        return false;
    }
    let Some(work) = p.log().sync_work() else {
        return false;
    };
    // Invariant: a partition has at most one fsync in flight (the queue holds it once, and
    // shutdown syncs only after the sync threads stopped).
    assert!(
        !p.syncing.swap(true, Ordering::AcqRel),
        "two fsyncs of partition {}-{} at once",
        p.topic,
        p.index
    );
    let started = std::time::Instant::now();
    let synced = if skip_fsync { Ok(()) } else { work.run() };
    p.syncing.store(false, Ordering::Release);
    metrics.fsyncs.inc();
    metrics
        .fsync_seconds
        .observe(started.elapsed().as_secs_f64());
    if let Err(e) = synced {
        // Its topic was deleted meanwhile (the directory renamed away): not a storage failure.
        if p.log().is_deleted() {
            return false;
        }
        health.fail(&format!("fsync of partition {}-{}", p.topic, p.index), &e);
        return false;
    }
    // Another writer failed meanwhile: nothing is acknowledged after the directory went offline.
    if health.is_offline() {
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use bytes::BytesMut;
    use indexmap::IndexMap;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    use super::*;
    use crate::topic_config::TopicConfig;
    use crate::topics::TopicRegistry;

    fn batch(records: usize) -> Vec<u8> {
        let records: Vec<Record> = (0..records)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: i as i32 - 1,
                timestamp: 1_700_000_000_000,
                key: None,
                value: Some(bytes::Bytes::from(vec![b'x'; 100])),
                headers: IndexMap::new(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .expect("encode");
        buf.to_vec()
    }

    /// Partitions queued at once and appends from several threads (some during a partition's
    /// fsync, which then queues it again) are all synced, and every high watermark reaches its
    /// log end; stop joins every thread.
    #[test]
    fn every_queued_partition_is_synced_and_published() {
        let dir = tempfile::tempdir().expect("tempdir");
        let reg = TopicRegistry::open(dir.path(), StorageHealth::new()).expect("open");
        let topic = reg
            .create("t", 8, TopicConfig::default())
            .expect("create")
            .expect("new topic");
        let cfg = topic.config.log_config();
        let syncer = Syncer::start(Arc::new(Metrics::new()), StorageHealth::new());
        // All eight queued at once: the sync threads share them.
        {
            let mut q = syncer.queue.lock().expect("queue");
            for p in &topic.partitions {
                p.log().append(&batch(3), &cfg, 0).expect("append");
                p.sync_queued.store(true, Ordering::Release);
                q.partitions.push_back(p.clone());
            }
        }
        syncer.wake.notify_all();
        std::thread::scope(|s| {
            for t in 0..4 {
                let (topic, syncer, cfg) = (&topic, &syncer, &cfg);
                s.spawn(move || {
                    for j in 0..50 {
                        let p = &topic.partitions[(t + j) % topic.partitions.len()];
                        let b = batch(3);
                        p.log().append(&b, cfg, 0).expect("append");
                        syncer.request(p);
                    }
                });
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let ends: Vec<i64> = topic
            .partitions
            .iter()
            .map(|p| p.log().log_end_offset())
            .collect();
        assert_eq!(ends.iter().sum::<i64>(), (8 + 4 * 50) * 3, "{ends:?}");
        for (p, &end) in topic.partitions.iter().zip(&ends) {
            assert!(end > 0, "partition {} had appends", p.index);
            while p.high_watermark() < end {
                assert!(
                    Instant::now() < deadline,
                    "partition {} not published",
                    p.index
                );
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        syncer.stop();
        let fsyncs = syncer.metrics.fsyncs.get();
        assert!(
            fsyncs >= 8,
            "at least one fsync per partition, got {fsyncs}"
        );
    }
}
