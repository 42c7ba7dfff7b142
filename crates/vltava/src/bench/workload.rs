//! The measured workload, driven by librdkafka (the `rdkafka` crate) so the figures compare with
//! other brokers': producers send fixed-size records whose first 8 bytes are the send time (µs
//! since the epoch); consumers in one group read them and record end-to-end latency.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use hdrhistogram::Histogram;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::ClientContext;

use super::batch_queue::BatchQueue;
use super::proc;

/// Latency histograms hold microseconds up to one minute, 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    // Constant bounds that hdrhistogram accepts: this cannot fail.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// What every producer and consumer of a run is configured with.
#[derive(Clone, Debug)]
pub struct Workload {
    pub bootstrap: String,
    pub producers: usize,
    pub consumers: usize,
    pub partitions: i32,
    pub record_size_bytes: usize,
    pub batch_size_bytes: usize,
    pub linger_ms: u64,
    pub compression: String,
    pub acks: String,
    pub idempotence: bool,
    /// Extra librdkafka properties, applied after the ones above.
    pub producer_props: Vec<(String, String)>,
    pub consumer_props: Vec<(String, String)>,
}

#[derive(Debug)]
pub struct ProduceResult {
    pub records: u64,
    pub failed: u64,
    pub elapsed: Duration,
    /// Send → delivery report, µs.
    pub ack_latency: Histogram<u64>,
}

impl ProduceResult {
    pub fn records_per_s(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

struct Delivery {
    ok: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
    ack_latency: Mutex<Histogram<u64>>,
    /// Records sent earlier (warm-up) are not in `ack_latency`.
    measure_from_us: u64,
}

impl ClientContext for Delivery {}

impl ProducerContext for Delivery {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        match r {
            Ok(m) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
                let sent = m.payload().and_then(sent_us);
                if let Some(sent) = sent.filter(|s| *s >= self.measure_from_us) {
                    if let Ok(mut h) = self.ack_latency.lock() {
                        let _ = h.record(now_us().saturating_sub(sent).max(1));
                    }
                }
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut first) = self.first_error.lock() {
                    first.get_or_insert_with(|| e.to_string());
                }
            }
        }
    }
}

fn sent_us(payload: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(payload.get(..8)?.try_into().ok()?))
}

/// Random upper-case letters, as kafka-producer-perf-test sends. Each record is a window of a
/// pool this large at a random offset, so records in one batch do not repeat each other and
/// compressed figures reflect the letters' entropy, not a repeated record.
const PAYLOAD_POOL_BYTES: usize = 16 * 1024 * 1024;

fn random_letters(size: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b'A' + (x % 26) as u8
        })
        .collect()
}

/// Sends `records` records to `topic` from `w.producers` threads (sticky partitioning, no keys),
/// at most `rate_per_s` records/s in all when given. Returns when every record is acknowledged.
/// Acknowledgement latency is recorded for records sent from `measure_from_us` on.
pub fn produce(
    w: &Workload,
    topic: &str,
    records: u64,
    rate_per_s: Option<f64>,
    measure_from_us: u64,
) -> anyhow::Result<ProduceResult> {
    let n = w.producers.max(1) as u64;
    let mut producers = Vec::new();
    for i in 0..n {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &w.bootstrap)
            .set("client.id", format!("vltava-bench-producer-{i}"))
            .set("acks", &w.acks)
            .set("linger.ms", w.linger_ms.to_string())
            .set("batch.size", w.batch_size_bytes.to_string())
            .set("compression.type", &w.compression)
            .set("enable.idempotence", w.idempotence.to_string())
            .set("queue.buffering.max.kbytes", "1048576")
            .set("message.timeout.ms", "120000");
        for (k, v) in &w.producer_props {
            cfg.set(k, v);
        }
        let ctx = Delivery {
            ok: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            first_error: Mutex::new(None),
            ack_latency: Mutex::new(latency_histogram()),
            measure_from_us,
        };
        let p: BaseProducer<Delivery> = cfg
            .create_with_context(ctx)
            .context("cannot create a producer")?;
        // Connect and learn the topic before the clock starts.
        p.client()
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .context("producer metadata")?;
        producers.push(p);
    }
    let started = Instant::now();
    let results: Vec<anyhow::Result<()>> = std::thread::scope(|s| {
        let handles: Vec<_> = producers
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let share = records / n + u64::from((i as u64) < records % n);
                let rate = rate_per_s.map(|r| r / n as f64);
                let size = w.record_size_bytes;
                let pool = random_letters(PAYLOAD_POOL_BYTES.max(2 * size), 0x9e37_79b9 + i as u64);
                s.spawn(move || produce_one(p, topic, share, rate, (pool, size), started))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("a producer thread panicked")))
            })
            .collect()
    });
    let elapsed = started.elapsed();
    for r in results {
        r?;
    }
    let mut out = ProduceResult {
        records: 0,
        failed: 0,
        elapsed,
        ack_latency: latency_histogram(),
    };
    for p in &producers {
        let ctx = p.context();
        out.records += ctx.ok.load(Ordering::Relaxed);
        out.failed += ctx.failed.load(Ordering::Relaxed);
        if let Ok(h) = ctx.ack_latency.lock() {
            let _ = out.ack_latency.add(&*h);
        }
        if let Ok(e) = ctx.first_error.lock() {
            if let Some(e) = e.as_ref() {
                bail!("a record was not delivered: {e}");
            }
        }
    }
    Ok(out)
}

fn produce_one(
    p: &BaseProducer<Delivery>,
    topic: &str,
    records: u64,
    rate_per_s: Option<f64>,
    (pool, size): (Vec<u8>, usize),
    started: Instant,
) -> anyhow::Result<()> {
    let mut payload = vec![0u8; size];
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for i in 0..records {
        if let Some(rate) = rate_per_s {
            let due = started + Duration::from_secs_f64(i as f64 / rate);
            loop {
                let now = Instant::now();
                if now >= due {
                    break;
                }
                // librdkafka's poll rounds its timeout down to whole milliseconds, so a shorter
                // wait through it would spin and take a core from the broker being measured.
                // Sleep instead: records that fall due meanwhile go out back to back, as a
                // rate limiter's permits would.
                let wait = due - now;
                if wait >= Duration::from_millis(1) {
                    p.poll(wait);
                } else {
                    p.poll(Duration::ZERO);
                    std::thread::sleep(wait);
                }
            }
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let at = (x % (pool.len() - size + 1) as u64) as usize;
        payload.copy_from_slice(&pool[at..at + size]);
        if payload.len() >= 8 {
            payload[..8].copy_from_slice(&now_us().to_le_bytes());
        }
        let mut rec: BaseRecord<'_, (), [u8]> = BaseRecord::to(topic).payload(&payload[..]);
        loop {
            match p.send(rec) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    rec = r;
                    p.poll(Duration::from_millis(1));
                }
                Err((e, _)) => bail!("cannot send: {e}"),
            }
        }
        // Delivery reports (the acknowledgement latency) are taken only in poll: often enough
        // that a paced producer catching up does not leave them waiting, rarely enough that an
        // unpaced one does not pay for it per record.
        let poll_every = if rate_per_s.is_some() { 32 } else { 1024 };
        if i % poll_every == 0 {
            p.poll(Duration::ZERO);
        }
    }
    p.flush(Duration::from_secs(120))
        .map_err(|e| anyhow!("flush: {e}"))?;
    Ok(())
}

#[derive(Debug)]
pub struct ConsumeResult {
    pub records: u64,
    /// Key + value bytes.
    pub bytes: u64,
    /// First record to last.
    pub elapsed: Duration,
    /// Subscribe to first record (group join, assignment, first fetch).
    pub first_record_after: Duration,
    /// The busiest librdkafka broker thread of the consumers (the one that receives and parses
    /// fetch responses): its CPU seconds and the wall seconds they were measured over, from the
    /// first record counted to the last.
    pub fetch_thread_cpu: Option<(f64, f64)>,
    /// Send (the timestamp in the payload) → received, µs.
    pub e2e_latency: Histogram<u64>,
}

/// Consumers of one group, polling on their own threads until told to stop.
pub struct ConsumerGroup {
    stop: Arc<AtomicBool>,
    /// Latency is recorded only for records sent at or after this time (µs since the epoch):
    /// the warm-up before it is not measured.
    measure_from_us: Arc<AtomicU64>,
    consumed: Arc<AtomicU64>,
    assigned: Arc<AtomicUsize>,
    started: Instant,
    threads: Vec<std::thread::JoinHandle<anyhow::Result<Part>>>,
}

struct Part {
    records: u64,
    bytes: u64,
    first: Option<Instant>,
    last: Option<Instant>,
    e2e: Histogram<u64>,
}

impl ConsumerGroup {
    /// `w.consumers` members of `group` subscribe to `topic` from the earliest offset.
    pub fn start(w: &Workload, topic: &str, group: &str) -> anyhow::Result<ConsumerGroup> {
        let stop = Arc::new(AtomicBool::new(false));
        let measure_from_us = Arc::new(AtomicU64::new(0));
        let consumed = Arc::new(AtomicU64::new(0));
        let assigned = Arc::new(AtomicUsize::new(0));
        let mut threads = Vec::new();
        let started = Instant::now();
        for i in 0..w.consumers.max(1) {
            let mut cfg = ClientConfig::new();
            cfg.set("bootstrap.servers", &w.bootstrap)
                .set("client.id", format!("vltava-bench-consumer-{i}"))
                .set("group.id", group)
                .set("auto.offset.reset", "earliest")
                .set("enable.auto.commit", "true")
                .set("session.timeout.ms", "10000")
                .set("heartbeat.interval.ms", "1000")
                .set("fetch.wait.max.ms", "100");
            for (k, v) in &w.consumer_props {
                cfg.set(k, v);
            }
            let c: BaseConsumer = cfg.create().context("cannot create a consumer")?;
            c.subscribe(&[topic]).context("subscribe")?;
            let counters = Counters {
                stop: stop.clone(),
                measure_from_us: measure_from_us.clone(),
                consumed: consumed.clone(),
                assigned: assigned.clone(),
            };
            threads.push(std::thread::spawn(move || consume_one(c, counters)));
        }
        Ok(ConsumerGroup {
            stop,
            measure_from_us,
            consumed,
            assigned,
            started,
            threads,
        })
    }

    /// Waits until every partition is assigned to some member.
    pub fn wait_assigned(&self, partitions: usize, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while self.assigned.load(Ordering::Acquire) < partitions {
            if Instant::now() > deadline {
                bail!("the consumer group was not assigned every partition within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    /// Records sent before `us` (µs since the epoch) are counted but their latency is not.
    pub fn measure_from(&self, us: u64) {
        self.measure_from_us.store(us, Ordering::Release);
    }

    /// Waits until `records` records were consumed (or `timeout` passed), then stops.
    pub fn finish(self, records: u64, timeout: Duration) -> anyhow::Result<ConsumeResult> {
        let deadline = Instant::now() + timeout;
        let mut first_seen: Option<(Instant, Vec<(i32, f64)>)> = None;
        loop {
            let consumed = self.consumed.load(Ordering::Acquire);
            if consumed > 0 && first_seen.is_none() {
                first_seen = Some((Instant::now(), proc::threads_cpu_s(FETCH_THREAD_PREFIX)));
            }
            if consumed >= records || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let fetch_thread_cpu = first_seen.and_then(|(at, before)| {
            let after = proc::threads_cpu_s(FETCH_THREAD_PREFIX);
            let cpu_s = proc::busiest_thread_cpu_s(&before, &after)?;
            Some((cpu_s, at.elapsed().as_secs_f64()))
        });
        self.stop.store(true, Ordering::Release);
        let mut out = ConsumeResult {
            records: 0,
            bytes: 0,
            elapsed: Duration::ZERO,
            first_record_after: Duration::ZERO,
            e2e_latency: latency_histogram(),
            fetch_thread_cpu,
        };
        let (mut first, mut last): (Option<Instant>, Option<Instant>) = (None, None);
        for t in self.threads {
            let part = t
                .join()
                .unwrap_or_else(|_| Err(anyhow!("a consumer thread panicked")))?;
            out.records += part.records;
            out.bytes += part.bytes;
            let _ = out.e2e_latency.add(&part.e2e);
            first = match (first, part.first) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            last = last.max(part.last);
        }
        if out.records < records {
            bail!(
                "consumers read {} of {records} records within {timeout:?}",
                out.records
            );
        }
        if let (Some(f), Some(l)) = (first, last) {
            out.elapsed = l - f;
            out.first_record_after = f - self.started;
        }
        Ok(out)
    }
}

/// librdkafka names a client's thread for each broker connection `rdk:broker<id>`.
const FETCH_THREAD_PREFIX: &str = "rdk:broker";

/// What a consumer thread shares with the group.
struct Counters {
    stop: Arc<AtomicBool>,
    measure_from_us: Arc<AtomicU64>,
    consumed: Arc<AtomicU64>,
    assigned: Arc<AtomicUsize>,
}

fn consume_one(c: BaseConsumer, k: Counters) -> anyhow::Result<Part> {
    let Counters {
        stop,
        measure_from_us,
        consumed,
        assigned,
    } = k;
    let mut part = Part {
        records: 0,
        bytes: 0,
        first: None,
        last: None,
        e2e: latency_histogram(),
    };
    let mut batches = BatchQueue::new(&c)?;
    let mut mine: Vec<(String, i32)> = Vec::new();
    // The assignment is looked up every 50 ms at most (it copies a partition list).
    let mut checked = Instant::now() - Duration::from_secs(1);
    while !stop.load(Ordering::Acquire) {
        if checked.elapsed() >= Duration::from_millis(50) {
            checked = Instant::now();
            let now_assigned: Vec<(String, i32)> = c
                .assignment()
                .map(|a| {
                    a.elements()
                        .iter()
                        .map(|e| (e.topic().to_string(), e.partition()))
                        .collect()
                })
                .unwrap_or_default();
            if now_assigned != mine {
                batches.route(&now_assigned);
                if now_assigned.len() > mine.len() {
                    assigned.fetch_add(now_assigned.len() - mine.len(), Ordering::AcqRel);
                } else {
                    assigned.fetch_sub(mine.len() - now_assigned.len(), Ordering::AcqRel);
                }
                mine = now_assigned;
            }
        }
        // Group events, and records of partitions not (yet) routed to the batch queue.
        let polled = c.poll(if mine.is_empty() {
            Duration::from_millis(20)
        } else {
            Duration::ZERO
        });
        let measure_from = measure_from_us.load(Ordering::Relaxed);
        let mut n = 0u64;
        let mut take = |payload: &[u8], key_len_bytes: usize, now: Instant, part: &mut Part| {
            part.first.get_or_insert(now);
            part.last = Some(now);
            part.records += 1;
            part.bytes += (payload.len() + key_len_bytes) as u64;
            if let Some(sent) = sent_us(payload) {
                if sent >= measure_from {
                    let _ = part.e2e.record(now_us().saturating_sub(sent).max(1));
                }
            }
            n += 1;
        };
        match polled {
            None | Some(Err(KafkaError::PartitionEOF(_))) => {}
            Some(Err(e)) => bail!("consumer error: {e}"),
            Some(Ok(m)) => {
                // A partition whose records come this way is not forwarded: after a rebalance
                // that revoked and gave back the same partitions between two assignment checks,
                // the list above did not change but librdkafka dropped the forwarding.
                if !mine.is_empty() {
                    batches.route(&[(m.topic().to_string(), m.partition())]);
                }
                let payload = m.payload().unwrap_or_default();
                take(
                    payload,
                    m.key().map_or(0, <[u8]>::len),
                    Instant::now(),
                    &mut part,
                );
            }
        }
        if !mine.is_empty() {
            let mut now = None;
            batches.read(20, |r| {
                let at = *now.get_or_insert_with(Instant::now);
                take(r.payload, r.key_len_bytes, at, &mut part);
            })?;
        }
        if n > 0 {
            consumed.fetch_add(n, Ordering::AcqRel);
        }
    }
    drop(batches);
    c.unsubscribe();
    Ok(part)
}

/// Consumers assigned every partition of a topic nobody writes to, from its end, with no group
/// and no application thread: librdkafka's fetcher long-polls it (`fetch.wait.max.ms` 500) in
/// its own threads until they are dropped.
pub struct IdleConsumers {
    _consumers: Vec<BaseConsumer>,
}

impl IdleConsumers {
    pub fn start(w: &Workload, topic: &str, n: usize) -> anyhow::Result<IdleConsumers> {
        let mut tpl = rdkafka::TopicPartitionList::new();
        for p in 0..w.partitions {
            tpl.add_partition_offset(topic, p, rdkafka::Offset::End)
                .context("assignment")?;
        }
        let consumers = (0..n)
            .map(|i| {
                let c: BaseConsumer = ClientConfig::new()
                    .set("bootstrap.servers", &w.bootstrap)
                    .set("client.id", format!("vltava-bench-idle-{i}"))
                    .set("group.id", format!("vltava-bench-idle-{i}"))
                    .set("enable.auto.commit", "false")
                    .set("fetch.wait.max.ms", "500")
                    .create()
                    .context("cannot create an idle consumer")?;
                c.assign(&tpl).context("assign")?;
                Ok(c)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(IdleConsumers {
            _consumers: consumers,
        })
    }
}
