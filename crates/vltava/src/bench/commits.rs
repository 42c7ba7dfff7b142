//! The offset-commit scenario, driven by librdkafka: committers, each a consumer in a group of
//! its own, commit an offset and wait for the answer (`CommitMode::Sync`) in a loop, as
//! consumers committing after every record do. Meanwhile a probe producer sends one record at a
//! time (acks=all) and times each acknowledgement: commits must not hold up the produce path.
//! The floor is this disk's rate of one fdatasync after another (`fsync_floor`).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use hdrhistogram::Histogram;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::workload::latency_histogram;

/// Operations of a phase and the latency of each, µs.
#[derive(Debug)]
pub struct Timed {
    pub count: u64,
    pub elapsed: Duration,
    pub latency: Histogram<u64>,
}

impl Default for Timed {
    fn default() -> Timed {
        Timed {
            count: 0,
            elapsed: Duration::ZERO,
            latency: latency_histogram(),
        }
    }
}

impl Timed {
    pub fn per_s(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn record(&mut self, took: Duration) {
        self.count += 1;
        let _ = self.latency.record((took.as_micros() as u64).max(1));
    }

    fn add(&mut self, other: &Timed) {
        self.count += other.count;
        let _ = self.latency.add(&other.latency);
    }
}

/// `committers` consumers, consumer `i` in group `{group_prefix}-{i}`, each committing offsets
/// 1, 2, 3 … of partition `i % partitions` of `topic` until `duration` has passed.
pub fn commit_loop(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    group_prefix: &str,
    committers: usize,
    duration: Duration,
) -> anyhow::Result<Timed> {
    let mut consumers = Vec::new();
    for i in 0..committers {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", format!("{group_prefix}-{i}"))
            .set("client.id", format!("vltava-bench-committer-{i}"))
            .set("enable.auto.commit", "false")
            .create()
            .context("cannot create a committer")?;
        let partition = i as i32 % partitions.max(1);
        // Finds the coordinator and connects before the clock starts.
        commit(&c, topic, partition, 0)?;
        consumers.push((c, partition));
    }
    let started = Instant::now();
    let deadline = started + duration;
    let results: Vec<anyhow::Result<Timed>> = std::thread::scope(|s| {
        let handles: Vec<_> = consumers
            .iter()
            .map(|(c, partition)| {
                s.spawn(move || {
                    let mut t = Timed::default();
                    let mut offset = 1;
                    while Instant::now() < deadline {
                        let sent = Instant::now();
                        commit(c, topic, *partition, offset)?;
                        t.record(sent.elapsed());
                        offset += 1;
                    }
                    Ok(t)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("a committer thread panicked")))
            })
            .collect()
    });
    let mut out = Timed {
        elapsed: started.elapsed(),
        ..Timed::default()
    };
    for r in results {
        out.add(&r?);
    }
    Ok(out)
}

fn commit(c: &BaseConsumer, topic: &str, partition: i32, offset: i64) -> anyhow::Result<()> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(offset))
        .context("offset list")?;
    c.commit(&tpl, CommitMode::Sync)
        .map_err(|e| anyhow!("commit of offset {offset} failed: {e}"))
}

/// Sends each delivery report's outcome and time to the probe's thread.
struct Acked(Mutex<mpsc::Sender<(bool, Instant)>>);

impl ClientContext for Acked {}

impl ProducerContext for Acked {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        if let Ok(tx) = self.0.lock() {
            let _ = tx.send((r.is_ok(), Instant::now()));
        }
    }
}

/// One producer sending a 100-byte record to `topic` every `interval` (acks=all, linger.ms 0),
/// waiting for each acknowledgement before the next, until `stop` is set. librdkafka's own
/// thread serves the delivery reports, so each is timed when it arrives.
pub fn probe(
    bootstrap: &str,
    topic: &str,
    interval: Duration,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Timed> {
    let (tx, rx) = mpsc::channel();
    let p: ThreadedProducer<Acked> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("client.id", "vltava-bench-probe")
        .set("acks", "all")
        .set("linger.ms", "0")
        .set("message.timeout.ms", "30000")
        .create_with_context(Acked(Mutex::new(tx)))
        .context("cannot create the probe producer")?;
    p.client()
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .context("probe metadata")?;
    let payload = [b'p'; 100];
    let mut t = Timed::default();
    let started = Instant::now();
    let mut next = started;
    while !stop.load(Ordering::Acquire) {
        let now = Instant::now();
        if now < next {
            std::thread::sleep(next - now);
        }
        next += interval;
        let sent = Instant::now();
        p.send(BaseRecord::<(), [u8]>::to(topic).payload(&payload[..]))
            .map_err(|(e, _)| anyhow!("probe send: {e}"))?;
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok((true, acked)) => t.record(acked.saturating_duration_since(sent)),
            Ok((false, _)) => bail!("the probe's record was not delivered"),
            Err(_) => bail!("the probe's record was not acknowledged within 30 s"),
        }
    }
    t.elapsed = started.elapsed();
    Ok(t)
}

/// Writes a 100-byte record and fdatasyncs it, one after another, for `duration`, in a file
/// under `dir` (removed after): the rate of a store that makes every commit durable alone.
pub fn fsync_floor(dir: &Path, duration: Duration) -> anyhow::Result<Timed> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("fsync-floor.log");
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let record = [b'c'; 100];
    let mut t = Timed::default();
    let started = Instant::now();
    while started.elapsed() < duration {
        let at = Instant::now();
        f.write_all(&record)?;
        f.sync_data()?;
        t.record(at.elapsed());
    }
    t.elapsed = started.elapsed();
    drop(f);
    std::fs::remove_file(&path)?;
    Ok(t)
}
