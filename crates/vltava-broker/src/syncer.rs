//! Group commit. Appends write to the page cache and queue their partition here; one thread
//! takes everything queued, fsyncs it without holding any partition's lock, then publishes the new
//! high watermarks. Producers that arrived while a round was running share the next round's
//! fsync, so the fsync rate stays bounded however many producers there are.

use std::sync::atomic::Ordering;
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
    /// The syncer thread, and its helpers.
    threads: Mutex<Threads>,
    /// A round's partitions, shared with the helper threads.
    round: Mutex<Round>,
    /// Wakes a helper: the round has a partition for it (or the syncer is stopping).
    work_ready: Condvar,
    /// Wakes the syncer thread: a helper finished the round's last partition.
    round_done: Condvar,
    metrics: Arc<Metrics>,
}

#[derive(Default)]
struct Threads {
    syncer: Option<JoinHandle<()>>,
    helpers: Vec<JoinHandle<()>>,
}

/// The partitions of the round in progress. Helpers are long-lived threads: spawning threads
/// per round cost a clone, a stack and TLB shoot-downs on exit, a thousand times a second.
#[derive(Default)]
struct Round {
    todo: Vec<Arc<Partition>>,
    /// Partitions taken but not yet synced.
    running: usize,
    moved: bool,
    stopping: bool,
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
            threads: Mutex::new(Threads::default()),
            round: Mutex::new(Round::default()),
            work_ready: Condvar::new(),
            round_done: Condvar::new(),
            metrics,
        });
        let (mut syncer, mut helpers) = (None, Vec::new());
        let worker = s.clone();
        match std::thread::Builder::new()
            .name("vltava-syncer".into())
            .spawn(move || worker.run())
        {
            Ok(h) => syncer = Some(h),
            Err(e) => tracing::error!(error = %e, "cannot start the syncer thread"),
        }
        // Without helpers a round still completes: the syncer thread takes every partition.
        for i in 1..SYNC_THREADS {
            let helper = s.clone();
            match std::thread::Builder::new()
                .name(format!("vltava-sync-{i}"))
                .spawn(move || helper.help())
            {
                Ok(h) => helpers.push(h),
                Err(e) => tracing::warn!(error = %e, "cannot start a sync helper thread"),
            }
        }
        *s.threads.lock().unwrap_or_else(|p| p.into_inner()) = Threads { syncer, helpers };
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
            let moved = self.sync_all(batch);
            if moved {
                self.data_version.send_modify(|v| *v = v.wrapping_add(1));
            }
        }
    }

    /// fsyncs a round's partitions, several at once when there are several: the file system
    /// batches concurrent fsyncs into one journal commit, so a round costs about one fsync
    /// rather than one per partition. The syncer thread works through the round too and returns
    /// when every partition of it is synced.
    fn sync_all(&self, batch: Vec<Arc<Partition>>) -> bool {
        if batch.len() == 1 {
            return sync_partition(&batch[0], &self.metrics);
        }
        let mut r = self.round.lock().unwrap_or_else(|p| p.into_inner());
        // Wake only the helpers the round can use; the syncer thread takes a partition too.
        let helpers = batch.len().min(SYNC_THREADS) - 1;
        r.todo = batch;
        r.moved = false;
        for _ in 0..helpers {
            self.work_ready.notify_one();
        }
        loop {
            if let Some(p) = r.todo.pop() {
                r = self.sync_taken(r, &p);
            } else if r.running > 0 {
                r = self.round_done.wait(r).unwrap_or_else(|p| p.into_inner());
            } else {
                return r.moved;
            }
        }
    }

    /// Syncs `p`, just taken from the round, without holding the round's lock; counts it as
    /// running meanwhile.
    fn sync_taken<'a>(
        &'a self,
        mut r: std::sync::MutexGuard<'a, Round>,
        p: &Partition,
    ) -> std::sync::MutexGuard<'a, Round> {
        r.running += 1;
        drop(r);
        let moved = sync_partition(p, &self.metrics);
        let mut r = self.round.lock().unwrap_or_else(|p| p.into_inner());
        r.running -= 1;
        r.moved |= moved;
        r
    }

    /// A helper thread: takes partitions of the current round until the syncer stops.
    fn help(&self) {
        let mut r = self.round.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(p) = r.todo.pop() {
                r = self.sync_taken(r, &p);
                if r.running == 0 && r.todo.is_empty() {
                    // The syncer thread may be waiting for this last partition.
                    self.round_done.notify_one();
                }
            } else if r.stopping {
                return;
            } else {
                r = self.work_ready.wait(r).unwrap_or_else(|p| p.into_inner());
            }
        }
    }

    /// Syncs everything queued, then stops the thread.
    pub fn stop(&self) {
        {
            let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            q.stopping = true;
        }
        self.wake.notify_all();
        let Threads { syncer, helpers } =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        // The syncer thread first: it finishes the queued rounds, which may use the helpers.
        if let Some(h) = syncer {
            let _ = h.join();
        }
        self.round
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stopping = true;
        self.work_ready.notify_all();
        for h in helpers {
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

    /// Rounds of many partitions, queued from several threads, are all synced by the syncer
    /// and its helpers, and every high watermark reaches its log end; stop joins every thread.
    #[test]
    fn every_queued_partition_is_synced_and_published() {
        let dir = tempfile::tempdir().expect("tempdir");
        let reg = TopicRegistry::open(dir.path()).expect("open");
        let topic = reg
            .create("t", 8, TopicConfig::default())
            .expect("create")
            .expect("new topic");
        let cfg = topic.config.log_config();
        let syncer = Syncer::start(Arc::new(Metrics::new()));
        // One round of all eight, queued at once: the helpers share it.
        {
            let mut q = syncer.queue.lock().expect("queue");
            for p in &topic.partitions {
                p.log().append(&mut batch(3), &cfg, 0).expect("append");
                p.sync_queued.store(true, Ordering::Release);
                q.partitions.push(p.clone());
            }
        }
        syncer.wake.notify_one();
        std::thread::scope(|s| {
            for t in 0..4 {
                let (topic, syncer, cfg) = (&topic, &syncer, &cfg);
                s.spawn(move || {
                    for j in 0..50 {
                        let p = &topic.partitions[(t + j) % topic.partitions.len()];
                        let mut b = batch(3);
                        p.log().append(&mut b, cfg, 0).expect("append");
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
