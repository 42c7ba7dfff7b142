//! `vltava bench`: throughput, end-to-end latency and footprint of a broker, measured with
//! librdkafka, next to this machine's ceilings for the same workload measured in the same run
//! (see `baseline.rs`). Figures are printed, and written as JSON with `--json`; nothing here
//! asserts a speed.

mod baseline;
mod batch_queue;
mod commits;
mod disk;
mod lifecycle;
mod proc;
mod workload;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::cli::produce::Compression;
use proc::{DataDir, MachineCpu, Metrics, ProcStats, Target};
use workload::{ConsumerGroup, Workload};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Produce, consume from page cache, end-to-end latency, with their baselines.
    Workload,
    /// Restart time with many partitions on disk.
    Startup,
    /// Restart time after SIGKILL with a large log.
    Recovery,
    /// Offset commits from many groups at once, and a producer's acknowledgements meanwhile.
    Commits,
    /// The end-to-end floor (minimal sink) with 0, 1, … every core kept busy: how this
    /// machine's disk answers while its cores are busy.
    BusyCores,
    /// All of the above.
    All,
}

#[derive(Args)]
#[command(
    after_help = "Unless --bootstrap is given, the bench starts its own `vltava serve` on free
loopback ports and a temporary data directory (--data-dir to choose the disk), and reads the
broker's CPU time and memory from /proc.

Examples:
  vltava bench                                    # 1 producer, 1 consumer, 6 partitions, 1 KiB
  vltava bench --producers 4 --consumers 2 --partitions 12 --compression lz4
  vltava bench --records 200000 --acks 1 --linger-ms 0 --json result.json
  vltava bench --scenario startup --startup-partitions 10000
  vltava bench --scenario recovery --recovery-mib 10240
  vltava bench --scenario commits --committers 16
  vltava bench --scenario busy-cores --e2e-rate 120000
  vltava bench --bootstrap kafka:9092 --broker-pid 4242   # any Kafka-compatible broker"
)]
pub struct BenchArgs {
    /// What to measure.
    #[arg(long, value_enum, default_value_t = Scenario::Workload)]
    pub scenario: Scenario,
    /// Measure this cluster instead of a broker started by the bench.
    #[arg(long)]
    pub bootstrap: Option<String>,
    /// With --bootstrap: the broker's pid, to report its CPU time and memory.
    #[arg(long, requires = "bootstrap")]
    pub broker_pid: Option<u32>,
    /// With --bootstrap: HOST:PORT of Vltava's HTTP API, to read request and fsync counts.
    #[arg(long, requires = "bootstrap")]
    pub http: Option<String>,
    /// The `vltava` executable to start as the broker [default: this one], e.g. an older build
    /// to compare against.
    #[arg(long, conflicts_with = "bootstrap")]
    pub broker_bin: Option<PathBuf>,
    /// Where spawned brokers and the sink baseline write [default: a temporary directory].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Producer clients (each its own librdkafka instance and thread).
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// Consumers, all in one group.
    #[arg(long, default_value_t = 1)]
    pub consumers: usize,
    /// Partitions of the bench topics.
    #[arg(long, default_value_t = 6)]
    pub partitions: i32,
    /// Bytes per record value (at least 8: the send time is in the first 8).
    #[arg(long, default_value_t = 1024)]
    pub record_size: usize,
    /// Records for the produce and consume measurements.
    #[arg(long, default_value_t = 1_000_000)]
    pub records: u64,
    /// Producer batch.size in bytes.
    #[arg(long, default_value_t = 1_000_000)]
    pub batch_size: usize,
    /// Producer linger.ms.
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
    /// Producer compression.
    #[arg(long, value_enum, default_value_t = Compression::None)]
    pub compression: Compression,
    /// Producer acks: all, 1 or 0.
    #[arg(long, default_value = "all", value_parser = ["all", "-1", "1", "0"])]
    pub acks: String,
    /// Idempotent producers.
    #[arg(long)]
    pub idempotence: bool,
    /// Producer linger.ms for the end-to-end latency measurement (a latency-minded setting).
    #[arg(long, default_value_t = 1)]
    pub e2e_linger_ms: u64,
    /// Warm-up before the end-to-end measurement (sent at the same rate, latency not recorded).
    #[arg(long, default_value_t = 2)]
    pub e2e_warmup_secs: u64,
    /// Length of the end-to-end latency measurement.
    #[arg(long, default_value_t = 10)]
    pub e2e_secs: u64,
    /// End-to-end rate as a fraction of the maximum end-to-end throughput, measured first with
    /// the same settings (producers unpaced at --e2e-linger-ms, the group consuming meanwhile),
    /// as the OpenMessaging Benchmark finds its maximum rate.
    #[arg(long, default_value_t = 0.5)]
    pub e2e_rate_fraction: f64,
    /// End-to-end rate in records/s (instead of --e2e-rate-fraction).
    #[arg(long)]
    pub e2e_rate: Option<f64>,
    /// Consumers that long-poll a topic nobody writes to during the end-to-end phase (each its
    /// own librdkafka instance, assigned every partition, no group): what waiting fetches cost
    /// the broker while others' records arrive.
    #[arg(long, default_value_t = 0)]
    pub idle_consumers: usize,
    /// Skip the sink and loopback baselines.
    #[arg(long)]
    pub no_baselines: bool,
    /// Extra librdkafka producer property, `key=value` (repeatable; applied last, as
    /// kafka-producer-perf-test's --producer-props).
    #[arg(long = "producer-prop", value_parser = parse_prop)]
    pub producer_props: Vec<(String, String)>,
    /// Extra librdkafka consumer property, `key=value` (repeatable; applied last).
    #[arg(long = "consumer-prop", value_parser = parse_prop)]
    pub consumer_props: Vec<(String, String)>,
    /// Partitions on disk for the start-up scenario (topics of 100).
    #[arg(long, default_value_t = 10_000)]
    pub startup_partitions: u32,
    /// Restarts timed in the start-up scenario.
    #[arg(long, default_value_t = 3)]
    pub startup_restarts: usize,
    /// MiB written into the active segments of a two-partition topic before the start-up
    /// scenario's restarts (a clean restart with large active segments).
    #[arg(long, default_value_t = 0)]
    pub startup_active_mib: u64,
    /// Log size for the recovery scenario, in MiB.
    #[arg(long, default_value_t = 1024)]
    pub recovery_mib: u64,
    /// Committers in the commits scenario (each a consumer in a group of its own).
    #[arg(long, default_value_t = 8)]
    pub committers: usize,
    /// Length of each phase of the commits scenario, in seconds.
    #[arg(long, default_value_t = 5)]
    pub commit_secs: u64,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

fn parse_prop(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected key=value, got {s:?}")),
    }
}

fn mb_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64().max(1e-9)
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn latency(h: &Histogram<u64>) -> Value {
    json!({
        "samples": h.len(),
        "p50_ms": ms(h.value_at_quantile(0.50)),
        "p99_ms": ms(h.value_at_quantile(0.99)),
        "p999_ms": ms(h.value_at_quantile(0.999)),
        "max_ms": ms(h.max()),
    })
}

fn latency_line(h: &Histogram<u64>) -> String {
    format!(
        "p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms ({} samples)",
        ms(h.value_at_quantile(0.50)),
        ms(h.value_at_quantile(0.99)),
        ms(h.value_at_quantile(0.999)),
        ms(h.max()),
        h.len()
    )
}

/// What a histogram of the broker's `/metrics` counted over a phase: how many samples, and the
/// bucket bounds that p50 / p99 / p99.9 and the largest sample are at most.
struct PhaseHistogram {
    count: f64,
    /// p50, p99, p99.9 and the largest sample (q = 1).
    bounds_s: [f64; 4],
    largest_finite_s: f64,
}

/// None without the broker's metrics (another broker, or no `--http`) or without a sample.
fn phase_histogram(
    before: &Option<Metrics>,
    after: &Option<Metrics>,
    name: &str,
    label: &str,
) -> Option<PhaseHistogram> {
    let (b, a) = (before.as_ref()?, after.as_ref()?);
    let grown = proc::bucket_growth(&b.buckets(name, label), &a.buckets(name, label));
    let bound = |q| proc::quantile_bound(&grown, q);
    Some(PhaseHistogram {
        count: grown.last()?.1,
        bounds_s: [bound(0.5)?, bound(0.99)?, bound(0.999)?, bound(1.0)?],
        largest_finite_s: grown
            .iter()
            .map(|(le, _)| *le)
            .filter(|le| le.is_finite())
            .fold(0.0, f64::max),
    })
}

/// Seconds as milliseconds, rounded to the microsecond (bucket bounds print as written).
fn bound_ms(s: f64) -> f64 {
    (s * 1e6).round() / 1e3
}

impl PhaseHistogram {
    fn text(&self, what: &str) -> String {
        let b = |s: f64| {
            if s.is_finite() {
                format!("≤ {} ms", bound_ms(s))
            } else {
                format!("> {} ms", bound_ms(self.largest_finite_s))
            }
        };
        format!(
            "{:.0} {what}: p50 {}, p99 {}, p99.9 {}, max {}",
            self.count,
            b(self.bounds_s[0]),
            b(self.bounds_s[1]),
            b(self.bounds_s[2]),
            b(self.bounds_s[3])
        )
    }

    /// Bounds in ms; null for a quantile above the largest finite bound.
    fn json(&self) -> Value {
        let ms = |s: f64| s.is_finite().then(|| bound_ms(s));
        json!({
            "count": self.count,
            "p50_ms_at_most": ms(self.bounds_s[0]),
            "p99_ms_at_most": ms(self.bounds_s[1]),
            "p999_ms_at_most": ms(self.bounds_s[2]),
            "max_ms_at_most": ms(self.bounds_s[3]),
        })
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Runs blocking bench work off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| anyhow!("bench thread failed: {e}"))?
}

pub async fn run(a: BenchArgs) -> anyhow::Result<()> {
    if a.record_size < 8 {
        bail!("--record-size must be at least 8 (the send time is in the first 8 bytes)");
    }
    if a.partitions < 1 || a.producers < 1 || a.consumers < 1 || a.records < 1 {
        bail!("--partitions, --producers, --consumers and --records must be at least 1");
    }
    if !(a.e2e_rate_fraction > 0.0 && a.e2e_rate_fraction <= 1.0) {
        bail!("--e2e-rate-fraction must be in (0, 1]");
    }
    if a.bootstrap.is_some()
        && matches!(
            a.scenario,
            Scenario::Startup | Scenario::Recovery | Scenario::All
        )
    {
        bail!("the startup and recovery scenarios restart the broker, so they need a broker the bench starts (no --bootstrap)");
    }
    let dir = DataDir::new(a.data_dir.as_deref())?;
    let mut report = serde_json::Map::new();
    if matches!(a.scenario, Scenario::Workload | Scenario::All) {
        run_workload(&a, &dir, &mut report).await?;
    }
    if matches!(a.scenario, Scenario::Startup | Scenario::All) {
        let r = lifecycle::startup(
            &dir.sub("startup")?,
            a.startup_partitions,
            a.startup_active_mib * 1024 * 1024,
            a.startup_restarts,
            a.broker_bin.as_deref(),
        )
        .await?;
        let median_of = |d: &[Duration]| {
            let mut sorted = d.to_vec();
            sorted.sort();
            sorted[sorted.len() / 2]
        };
        let all_ms = |d: &[Duration]| {
            d.iter()
                .map(|d| format!("{:.0} ms", d.as_secs_f64() * 1000.0))
                .collect::<Vec<_>>()
        };
        let median = median_of(&r.restarts);
        println!(
            "startup   {} partitions on disk ({:.0} MiB in active segments): first request answered {:.0} ms after start (median of {}; all: {:?}), idle RSS {:.1} MiB; SIGTERM to exit {:.0} ms (median; all: {:?})",
            r.partitions,
            mib(r.active_bytes),
            median.as_secs_f64() * 1000.0,
            r.restarts.len(),
            all_ms(&r.restarts),
            mib(r.idle_rss_bytes),
            median_of(&r.shutdowns).as_secs_f64() * 1000.0,
            all_ms(&r.shutdowns),
        );
        report.insert(
            "startup".into(),
            json!({
                "partitions": r.partitions,
                "median_ms": median.as_secs_f64() * 1000.0,
                "restarts_ms": r.restarts.iter().map(|d| d.as_secs_f64() * 1000.0).collect::<Vec<_>>(),
                "shutdowns_ms": r.shutdowns.iter().map(|d| d.as_secs_f64() * 1000.0).collect::<Vec<_>>(),
                "active_bytes": r.active_bytes,
                "idle_rss_bytes": r.idle_rss_bytes,
            }),
        );
    }
    if matches!(a.scenario, Scenario::Recovery | Scenario::All) {
        let r = lifecycle::recovery(
            &dir.sub("recovery")?,
            a.recovery_mib * 1024 * 1024,
            a.broker_bin.as_deref(),
        )
        .await?;
        println!(
            "recovery  {:.0} MiB log ({} records), SIGKILL: first request answered {:.0} ms after restart, every acknowledged record present",
            mib(r.log_bytes),
            r.records,
            r.recovery.as_secs_f64() * 1000.0
        );
        report.insert(
            "recovery".into(),
            json!({
                "log_bytes": r.log_bytes,
                "records": r.records,
                "recovery_ms": r.recovery.as_secs_f64() * 1000.0,
            }),
        );
    }
    if matches!(a.scenario, Scenario::Commits | Scenario::All) {
        run_commits(&a, &dir, &mut report).await?;
    }
    if matches!(a.scenario, Scenario::BusyCores | Scenario::All) {
        run_busy_cores(&a, &dir, &mut report).await?;
    }
    if let Some(path) = &a.json {
        let text = serde_json::to_string_pretty(&Value::Object(report))?;
        std::fs::write(path, text + "\n")
            .map_err(|e| anyhow!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

/// The broker to measure: `--bootstrap`'s, or one the bench starts on `dir/sub`; and how long
/// after the start it answered.
async fn start_target(
    a: &BenchArgs,
    dir: &DataDir,
    sub: &str,
) -> anyhow::Result<(Target, Duration)> {
    let mut target = match &a.bootstrap {
        Some(b) => Target::external(b, a.http.clone(), a.broker_pid),
        None => Target::spawn(&dir.sub(sub)?, a.broker_bin.as_deref())?,
    };
    let answer_within = if a.bootstrap.is_some() { 10 } else { 60 };
    let start = target
        .wait_answering(Duration::from_secs(answer_within))
        .await?;
    Ok((target, start))
}

/// Names this run's topics and groups apart from earlier runs' on the same broker.
fn run_id() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        workload::now_us() % 1_000_000_000
    )
}

/// Counter deltas of the broker between two scrapes (zero when its metrics are unknown).
fn delta(before: &Option<Metrics>, after: &Option<Metrics>, f: impl Fn(&Metrics) -> f64) -> f64 {
    match (before, after) {
        (Some(b), Some(a)) => f(a) - f(b),
        _ => 0.0,
    }
}

fn cpu_delta(before: Option<ProcStats>, after: Option<ProcStats>) -> Option<f64> {
    Some(after?.cpu_s - before?.cpu_s)
}

async fn run_workload(
    a: &BenchArgs,
    dir: &DataDir,
    report: &mut serde_json::Map<String, Value>,
) -> anyhow::Result<()> {
    let (mut target, start) = start_target(a, dir, "broker").await?;
    let acks = if a.acks == "-1" {
        "all"
    } else {
        a.acks.as_str()
    }
    .to_string();
    let w = Workload {
        bootstrap: target.bootstrap.clone(),
        producers: a.producers,
        consumers: a.consumers,
        partitions: a.partitions,
        record_size_bytes: a.record_size,
        batch_size_bytes: a.batch_size,
        linger_ms: a.linger_ms,
        compression: format!("{:?}", a.compression).to_lowercase(),
        acks,
        idempotence: a.idempotence,
        producer_props: a.producer_props.clone(),
        consumer_props: a.consumer_props.clone(),
    };
    println!(
        "vltava bench: {} producer(s), {} consumer(s), {} partitions, {}-byte records, batch.size {}, linger.ms {}, compression {}, acks {}{}; broker {}",
        w.producers, w.consumers, w.partitions, w.record_size_bytes, w.batch_size_bytes, w.linger_ms,
        w.compression, w.acks, if w.idempotence { ", idempotent" } else { "" },
        if a.bootstrap.is_some() { format!("at {}", w.bootstrap) } else { format!("started by the bench, answering {:.0} ms after start", start.as_secs_f64() * 1000.0) }
    );
    // Idle footprint: the broker up, no client but our probe, for a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = target.stats();
    let run_id = run_id();
    let topic = format!("bench-{run_id}");
    let mut admin = lifecycle::admin(&w.bootstrap).await?;
    lifecycle::create_topic(&mut admin, &topic, w.partitions, &[]).await?;

    // 1. Produce at full speed, after freeing as much memory as it will write (see
    // `baseline::recycle_memory`; the sink gets the same).
    let estimate_bytes = a.records * (w.record_size_bytes as u64 + 16);
    blocking(move || {
        baseline::recycle_memory(estimate_bytes);
        Ok(())
    })
    .await?;
    let (m0, s0, c0) = (target.metrics(), target.stats(), own_stats());
    let prod = {
        let (w, topic, n) = (w.clone(), topic.clone(), a.records);
        blocking(move || workload::produce(&w, &topic, n, None, 0)).await?
    };
    let (m1, s1, c1) = (target.metrics(), target.stats(), own_stats());
    let payload_bytes = prod.records * w.record_size_bytes as u64;
    let log_bytes = delta(&m0, &m1, |m| m.sum("vltava_topic_bytes_in_total")) as u64;
    let requests = delta(&m0, &m1, |m| {
        m.sum_where("vltava_requests_total", "api=\"Produce\"")
    });
    let fsyncs = delta(&m0, &m1, |m| m.sum("vltava_fsync_total"));
    let wire_bytes = if log_bytes > 0 {
        log_bytes
    } else {
        payload_bytes
    };
    let request_bytes = if requests > 0.0 {
        (wire_bytes as f64 / requests) as usize
    } else {
        w.batch_size_bytes
    };
    let produce_cpu = cpu_delta(s0, s1);
    println!(
        "produce   {} records in {:.2} s: {:.0} records/s, {:.1} MB/s of values ({:.1} MB/s of batches); {:.0} requests of {:.0} KB on average, {:.0} fsyncs; ack latency {}",
        prod.records,
        prod.elapsed.as_secs_f64(),
        prod.records_per_s(),
        mb_per_s(payload_bytes, prod.elapsed),
        mb_per_s(wire_bytes, prod.elapsed),
        requests,
        request_bytes as f64 / 1000.0,
        fsyncs,
        latency_line(&prod.ack_latency)
    );
    let mut produce = json!({
        "records": prod.records,
        "seconds": prod.elapsed.as_secs_f64(),
        "records_per_s": prod.records_per_s(),
        "value_mb_per_s": mb_per_s(payload_bytes, prod.elapsed),
        "batch_bytes": wire_bytes,
        "batch_mb_per_s": mb_per_s(wire_bytes, prod.elapsed),
        "requests": requests,
        "fsyncs": fsyncs,
        "broker_cpu_s": produce_cpu,
        "ack_latency": latency(&prod.ack_latency),
    });
    if !a.no_baselines {
        let sink_dir = dir.sub("sink")?;
        let conns = w.producers;
        // The window librdkafka keeps per connection: 5 requests with idempotence, else as
        // many as TCP buffers allow (max.in.flight 1000000).
        let in_flight = if w.idempotence { 5 } else { 64 };
        let sink = blocking(move || {
            baseline::recycle_memory(wire_bytes);
            baseline::sink(&sink_dir, conns, wire_bytes, request_bytes, in_flight)
        })
        .await?;
        let ratio = sink.elapsed.as_secs_f64() / prod.elapsed.as_secs_f64().max(1e-9);
        println!(
            "  minimal sink, same {:.1} MB in {}-KB requests over {} connection(s), group-committed ({} fdatasyncs): {:.1} MB/s → Vltava reaches {:.0}% of it",
            wire_bytes as f64 / 1e6,
            request_bytes / 1000,
            conns,
            sink.fsyncs,
            mb_per_s(sink.bytes, sink.elapsed),
            ratio * 100.0
        );
        produce["sink"] = json!({
            "bytes": sink.bytes,
            "seconds": sink.elapsed.as_secs_f64(),
            "mb_per_s": mb_per_s(sink.bytes, sink.elapsed),
            "fsyncs": sink.fsyncs,
            "request_bytes": request_bytes,
        });
        produce["fraction_of_sink"] = json!(ratio);
    }
    report.insert("produce".into(), produce);

    // 2. Consume everything from the page cache with a new group.
    let (s2, c2) = (target.stats(), own_stats());
    let m2 = target.metrics();
    let cons = {
        let (w, topic, n) = (w.clone(), topic.clone(), prod.records);
        let group = format!("bench-{run_id}-catch-up");
        blocking(move || {
            let g = ConsumerGroup::start(&w, &topic, &group)?;
            // Old records' latency says nothing about the broker: it is not recorded.
            g.measure_from(u64::MAX);
            g.finish(n, Duration::from_secs(600))
        })
        .await?
    };
    let (m3, s3, c3) = (target.metrics(), target.stats(), own_stats());
    let read_bytes = match delta(&m2, &m3, |m| m.sum("vltava_topic_bytes_out_total")) as u64 {
        0 => cons.bytes,
        n => n,
    };
    println!(
        "consume   {} records in {:.2} s (first record {:.0} ms after subscribing): {:.0} records/s, {:.1} MB/s of values ({:.1} MB/s of batches)",
        cons.records,
        cons.elapsed.as_secs_f64(),
        cons.first_record_after.as_secs_f64() * 1000.0,
        cons.records as f64 / cons.elapsed.as_secs_f64().max(1e-9),
        mb_per_s(cons.bytes, cons.elapsed),
        mb_per_s(read_bytes, cons.elapsed),
    );
    if let Some((cpu_s, wall_s)) = cons.fetch_thread_cpu {
        println!(
            "  the consumers' busiest librdkafka broker thread (receives and parses fetch responses): {:.2} CPU-s in {:.2} s, {:.0}% of a core",
            cpu_s,
            wall_s,
            100.0 * cpu_s / wall_s.max(1e-9)
        );
    }
    let mut consume = json!({
        "fetch_thread_cpu": cons.fetch_thread_cpu.map(|(cpu_s, wall_s)| json!({"cpu_s": cpu_s, "wall_s": wall_s})),
        "records": cons.records,
        "seconds": cons.elapsed.as_secs_f64(),
        "first_record_ms": cons.first_record_after.as_secs_f64() * 1000.0,
        "records_per_s": cons.records as f64 / cons.elapsed.as_secs_f64().max(1e-9),
        "value_mb_per_s": mb_per_s(cons.bytes, cons.elapsed),
        "batch_bytes": read_bytes,
        "batch_mb_per_s": mb_per_s(read_bytes, cons.elapsed),
        "broker_cpu_s": cpu_delta(s2, s3),
    });
    if !a.no_baselines {
        let conns = w.consumers;
        let raw = blocking(move || baseline::loopback(conns, read_bytes)).await?;
        let ratio = raw.elapsed.as_secs_f64() / cons.elapsed.as_secs_f64().max(1e-9);
        let raw_mb_s = mb_per_s(read_bytes, raw.elapsed);
        println!(
            "  raw loopback TCP, same {:.1} MB over {} connection(s): {:.1} MB/s → Vltava reaches {:.0}% of it",
            read_bytes as f64 / 1e6,
            conns,
            raw_mb_s,
            ratio * 100.0
        );
        // However cheap the broker, the clients' CPU bounds consumption: a broker pays at least
        // what loopback's sender paid to put the bytes on the socket, and the cores are shared.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let gb = read_bytes as f64 / 1e9;
        let client_cpu_s = cpu_delta(c2, c3).filter(|cpu_s| *cpu_s > 0.0);
        let client_bound = client_cpu_s.map(|cpu_s| cores * gb * 1e3 / (cpu_s + raw.sender_cpu_s));
        if let (Some(cpu_s), Some(bound_mb_s)) = (client_cpu_s, client_bound) {
            println!(
                "  CPU per GB: consumer clients {:.2} s, loopback sender {:.2} s; on {} cores no broker could serve these clients over {:.1} MB/s, {:.0}% of raw loopback",
                cpu_s / gb,
                raw.sender_cpu_s / gb,
                cores,
                bound_mb_s,
                100.0 * bound_mb_s / raw_mb_s.max(1e-9)
            );
        }
        consume["loopback"] = json!({
            "seconds": raw.elapsed.as_secs_f64(),
            "mb_per_s": raw_mb_s,
            "sender_cpu_s": raw.sender_cpu_s,
        });
        consume["client_bound_mb_per_s"] = json!(client_bound);
        consume["fraction_of_loopback"] = json!(ratio);
    }
    report.insert("consume".into(), consume);

    // 3. End to end at a fraction of the maximum end-to-end throughput, consumers in place.
    let rate = match a.e2e_rate {
        Some(r) => r,
        None => {
            let max = e2e_max_rate(&w, &mut admin, a, &format!("bench-{run_id}-e2e-max")).await?;
            println!(
                "e2e max   {max:.0} records/s with producers and consumers together (linger.ms {}, {} records unpaced)",
                a.e2e_linger_ms,
                e2e_max_records(a)
            );
            report.insert(
                "e2e_max".into(),
                json!({"records_per_s": max, "records": e2e_max_records(a), "linger_ms": a.e2e_linger_ms}),
            );
            max * a.e2e_rate_fraction
        }
    }
    .max(1.0);
    let e2e_topic = format!("bench-{run_id}-e2e");
    lifecycle::create_topic(&mut admin, &e2e_topic, w.partitions, &[]).await?;
    let warmup = (rate * a.e2e_warmup_secs as f64) as u64;
    let n = ((rate * a.e2e_secs as f64) as u64).max(1) + warmup;
    // The disk under a broker the bench started (an external one may be anywhere).
    let disk_sampler = a
        .bootstrap
        .is_none()
        .then(|| disk::Sampler::start(dir.path()))
        .flatten();
    let idle_consumers = if a.idle_consumers > 0 {
        let idle_topic = format!("bench-{run_id}-idle");
        lifecycle::create_topic(&mut admin, &idle_topic, w.partitions, &[]).await?;
        let (w, n) = (w.clone(), a.idle_consumers);
        Some(blocking(move || workload::IdleConsumers::start(&w, &idle_topic, n)).await?)
    } else {
        None
    };
    let (s4, c4, m4) = (target.stats(), own_stats(), target.metrics());
    let machine_before = MachineCpu::read();
    let e2e_started = Instant::now();
    let (eprod, econs) = {
        let (mut w, topic) = (w.clone(), e2e_topic.clone());
        let warmup_us = a.e2e_warmup_secs * 1_000_000;
        w.linger_ms = a.e2e_linger_ms;
        let group = format!("bench-{run_id}-e2e");
        blocking(move || {
            let group = ConsumerGroup::start(&w, &topic, &group)?;
            group.wait_assigned(w.partitions as usize, Duration::from_secs(60))?;
            let from = workload::now_us() + warmup_us;
            group.measure_from(from);
            let p = workload::produce(&w, &topic, n, Some(rate), from)?;
            let c = group.finish(n, Duration::from_secs(120))?;
            Ok((p, c))
        })
        .await?
    };
    let (s5, c5, m5) = (target.stats(), own_stats(), target.metrics());
    let steal = MachineCpu::steal_fraction(machine_before, MachineCpu::read());
    drop(idle_consumers);
    // The phase's wall time: the group's join, warm-up, measurement and the last records read.
    let e2e_wall_s = e2e_started.elapsed().as_secs_f64();
    let e2e_disk = disk_sampler.and_then(disk::Sampler::finish);
    println!(
        "e2e       {} records at {:.0} records/s ({:.0}% of the produce-only throughput; achieved {:.0}/s), linger.ms {}, after {} s of warm-up: latency {}",
        eprod.records,
        rate,
        rate / prod.records_per_s().max(1e-9) * 100.0,
        eprod.records_per_s(),
        a.e2e_linger_ms,
        a.e2e_warmup_secs,
        latency_line(&econs.e2e_latency)
    );
    println!("          ack latency {}", latency_line(&eprod.ack_latency));
    // Where the tail comes from: the broker's own fsyncs and produce requests over the phase.
    let fsync_h = phase_histogram(&m4, &m5, "vltava_fsync_duration_seconds", "");
    let produce_h = phase_histogram(
        &m4,
        &m5,
        "vltava_request_duration_seconds",
        "api=\"Produce\"",
    );
    if let (Some(f), Some(p)) = (&fsync_h, &produce_h) {
        println!(
            "  the broker, warm-up included (bounds of its /metrics buckets): {}; {}",
            f.text("fsyncs"),
            p.text("produce requests (arrival to response)")
        );
    }
    let fetches = delta(&m4, &m5, |m| {
        m.sum_where("vltava_requests_total", "api=\"Fetch\"")
    }) as u64;
    if a.idle_consumers > 0 {
        println!(
            "  {} idle consumers long-polled an empty topic meanwhile; the broker answered {fetches} fetches in the phase",
            a.idle_consumers
        );
    }
    if let Some(d) = &e2e_disk {
        println!("  {}", d.text());
    }
    // How busy the cores were: the broker's and the clients' CPU over the phase's wall time.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let busy = match (cpu_delta(s4, s5), cpu_delta(c4, c5)) {
        (Some(b), Some(c)) => Some((b + c) / (cores as f64 * e2e_wall_s)),
        _ => None,
    };
    if let Some(busy) = busy {
        println!(
            "  the cores: broker and clients used {:.0}% of {} cores over the phase's {:.1} s{}",
            busy * 100.0,
            cores,
            e2e_wall_s,
            steal.map_or(String::new(), |f| format!("; {}", steal_text(f)))
        );
    }
    let floor = if a.no_baselines {
        None
    } else {
        let record_bytes = (wire_bytes / prod.records.max(1)).max(1) as usize;
        Some(sink_floor(dir, a, rate, record_bytes, 0).await?)
    };
    report.insert(
        "e2e".into(),
        json!({
            "sink_ack_latency": floor.as_ref().map(|f| latency(&f.ack)),
            "sink_record_latency": floor.as_ref().map(|f| latency(&f.record)),
            "sink_disk": floor.as_ref().and_then(|f| f.disk.as_ref()).map(disk::Phase::json),
            "target_records_per_s": rate,
            "cores_busy_fraction": busy,
            "steal_fraction": steal,
            "idle_consumers": a.idle_consumers,
            "broker_fetches": fetches,
            "sink_steal_fraction": floor.as_ref().map(|f| f.steal_fraction),
            "linger_ms": a.e2e_linger_ms,
            "warmup_s": a.e2e_warmup_secs,
            "records_per_s": eprod.records_per_s(),
            "records": eprod.records,
            "latency": latency(&econs.e2e_latency),
            "ack_latency": latency(&eprod.ack_latency),
            "broker_cpu_s": cpu_delta(s4, s5),
            "broker_fsync": fsync_h.as_ref().map(PhaseHistogram::json),
            "broker_produce_request": produce_h.as_ref().map(PhaseHistogram::json),
            "disk": e2e_disk.as_ref().map(disk::Phase::json),
        }),
    );

    let last = target.stats();
    if let Some(l) = last {
        println!(
            "broker    idle RSS {:.1} MiB, peak RSS {:.1} MiB, CPU {:.2} s in all (produce {:.2} s, consume {:.2} s, e2e {:.2} s)",
            mib(idle.map_or(0, |s| s.rss_bytes)),
            mib(l.peak_rss_bytes),
            l.cpu_s,
            produce_cpu.unwrap_or(0.0),
            cpu_delta(s2, s3).unwrap_or(0.0),
            cpu_delta(s4, s5).unwrap_or(0.0),
        );
    }
    let clients = [cpu_delta(c0, c1), cpu_delta(c2, c3), cpu_delta(c4, c5)];
    println!(
        "clients   CPU of this process (producers, consumers, librdkafka threads): produce {:.2} s, consume {:.2} s, e2e {:.2} s",
        clients[0].unwrap_or(0.0),
        clients[1].unwrap_or(0.0),
        clients[2].unwrap_or(0.0),
    );
    report.insert(
        "clients".into(),
        json!({"produce_cpu_s": clients[0], "consume_cpu_s": clients[1], "e2e_cpu_s": clients[2]}),
    );
    report.insert(
        "broker".into(),
        json!({
            "bootstrap": w.bootstrap,
            "spawned": a.bootstrap.is_none(),
            "start_ms": start.as_secs_f64() * 1000.0,
            "idle_rss_bytes": idle.map(|s| s.rss_bytes),
            "peak_rss_bytes": last.map(|s| s.peak_rss_bytes),
            "cpu_s": last.map(|s| s.cpu_s),
        }),
    );
    report.insert(
        "workload".into(),
        json!({
            "producers": w.producers, "consumers": w.consumers, "partitions": w.partitions,
            "record_size_bytes": w.record_size_bytes, "batch_size_bytes": w.batch_size_bytes,
            "linger_ms": w.linger_ms, "compression": w.compression, "acks": w.acks,
            "idempotence": w.idempotence, "records": a.records, "e2e_secs": a.e2e_secs,
        }),
    );
    if a.bootstrap.is_none() {
        target.stop(Duration::from_secs(60))?;
    }
    Ok(())
}

/// Offset commits from `--committers` groups at once for `--commit-secs`, a probe producer's
/// acknowledgement latency alone and during them, and this disk's serial fdatasync rate.
async fn run_commits(
    a: &BenchArgs,
    dir: &DataDir,
    report: &mut serde_json::Map<String, Value>,
) -> anyhow::Result<()> {
    if a.committers < 1 || a.commit_secs < 1 {
        bail!("--committers and --commit-secs must be at least 1");
    }
    let (mut target, _) = start_target(a, dir, "commits").await?;
    let run_id = run_id();
    let (topic, probe_topic) = (
        format!("bench-{run_id}-commits"),
        format!("bench-{run_id}-probe"),
    );
    let mut admin = lifecycle::admin(&target.bootstrap).await?;
    lifecycle::create_topic(&mut admin, &topic, a.partitions, &[]).await?;
    lifecycle::create_topic(&mut admin, &probe_topic, 1, &[]).await?;
    let phase = Duration::from_secs(a.commit_secs);
    let probe_every = Duration::from_millis(5);
    let probe_phase = |during_commits: bool| {
        let (bootstrap, topic, probe_topic) =
            (target.bootstrap.clone(), topic.clone(), probe_topic.clone());
        let (partitions, committers) = (a.partitions, a.committers);
        let groups = format!("bench-{run_id}-commit");
        blocking(move || {
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let stopping = stop.clone();
            let b = bootstrap.clone();
            let probe =
                std::thread::spawn(move || commits::probe(&b, &probe_topic, probe_every, stopping));
            let committed = if during_commits {
                commits::commit_loop(&bootstrap, &topic, partitions, &groups, committers, phase)
            } else {
                std::thread::sleep(phase);
                Ok(commits::Timed::default())
            };
            stop.store(true, std::sync::atomic::Ordering::Release);
            let probed = probe
                .join()
                .unwrap_or_else(|_| Err(anyhow!("the probe thread panicked")))?;
            Ok((committed?, probed))
        })
    };
    let (_, alone) = probe_phase(false).await?;
    let (m0, s0, c0) = (target.metrics(), target.stats(), own_stats());
    let (committed, beside) = probe_phase(true).await?;
    let (m1, s1, c1) = (target.metrics(), target.stats(), own_stats());
    let fsyncs = delta(&m0, &m1, |m| m.sum("vltava_fsync_total"));
    let (broker_cpu, client_cpu) = (cpu_delta(s0, s1), cpu_delta(c0, c1));
    println!(
        "commits   {} committers, each a group of its own, committing one offset and waiting for the answer: {} commits in {:.2} s, {:.0} commits/s; latency {}; CPU of the broker {:.2} s, of the clients {:.2} s",
        a.committers,
        committed.count,
        committed.elapsed.as_secs_f64(),
        committed.per_s(),
        latency_line(&committed.latency),
        broker_cpu.unwrap_or(0.0),
        client_cpu.unwrap_or(0.0),
    );
    // The broker's own time per commit (arrival to response), apart from the clients' and the
    // scheduler's.
    let commit_h = phase_histogram(
        &m0,
        &m1,
        "vltava_request_duration_seconds",
        "api=\"OffsetCommit\"",
    );
    if let Some(h) = &commit_h {
        println!(
            "  the broker (bounds of its /metrics buckets): {}",
            h.text("OffsetCommit requests (arrival to response)")
        );
    }
    println!(
        "  a producer sending one record per {} ms (acks=all): ack latency alone {}",
        probe_every.as_millis(),
        latency_line(&alone.latency)
    );
    println!(
        "          during the commits {}",
        latency_line(&beside.latency)
    );
    let mut out = json!({
        "committers": a.committers,
        "commits": committed.count,
        "seconds": committed.elapsed.as_secs_f64(),
        "commits_per_s": committed.per_s(),
        "latency": latency(&committed.latency),
        "broker_cpu_s": broker_cpu,
        "clients_cpu_s": client_cpu,
        "broker_fsyncs": fsyncs,
        "broker_offset_commit_request": commit_h.as_ref().map(PhaseHistogram::json),
        "probe_alone": latency(&alone.latency),
        "probe_during_commits": latency(&beside.latency),
    });
    if !a.no_baselines {
        let floor_dir = dir.sub("fsync-floor")?;
        let floor = blocking(move || commits::fsync_floor(&floor_dir, phase)).await?;
        let ratio = committed.per_s() / floor.per_s().max(1e-9);
        println!(
            "  this disk, one 100-byte write + fdatasync after another: {:.0}/s, latency {} → Vltava commits {:.2}× that rate",
            floor.per_s(),
            latency_line(&floor.latency),
            ratio
        );
        out["fsync_floor"] = json!({
            "fsyncs_per_s": floor.per_s(),
            "latency": latency(&floor.latency),
        });
        out["ratio_to_fsync_floor"] = json!(ratio);
    }
    report.insert("commits".into(), out);
    if a.bootstrap.is_none() {
        target.stop(Duration::from_secs(60))?;
    }
    Ok(())
}

/// The end-to-end floor: the minimal sink at `rate` records/s of `record_bytes`, one request
/// per `--e2e-linger-ms`, with `spinners` cores kept busy meanwhile (`baseline::Spinners`).
/// Prints its acknowledgement and per-record latency and what the disk did.
async fn sink_floor(
    dir: &DataDir,
    a: &BenchArgs,
    rate: f64,
    record_bytes: usize,
    spinners: usize,
) -> anyhow::Result<baseline::SinkLatency> {
    let sink_dir = dir.sub("sink-latency")?;
    let linger_ms = a.e2e_linger_ms;
    let phases = (
        Duration::from_secs(a.e2e_warmup_secs),
        Duration::from_secs(a.e2e_secs),
    );
    let h = blocking(move || {
        baseline::sink_latency(&sink_dir, rate, record_bytes, linger_ms, phases, spinners)
    })
    .await?;
    let busy = if spinners == 0 {
        String::new()
    } else {
        format!(", {spinners} core(s) kept busy by threads spinning at nice 19")
    };
    println!(
        "  minimal sink at {rate:.0} records/s, one request per {linger_ms} ms{busy}: ack latency {}",
        latency_line(&h.ack)
    );
    println!(
        "          per record, with its wait for the request: {}",
        latency_line(&h.record)
    );
    if let Some(d) = &h.disk {
        println!("          {}", d.text());
    }
    if let Some(f) = h.steal_fraction {
        println!("          {}", steal_text(f));
    }
    Ok(h)
}

/// The end-to-end floor with 0, 1, … every core kept busy by spinning threads at nice 19:
/// what this machine's disk does for a durable broker while the cores are busy, with no broker
/// and no librdkafka in the way.
async fn run_busy_cores(
    a: &BenchArgs,
    dir: &DataDir,
    report: &mut serde_json::Map<String, Value>,
) -> anyhow::Result<()> {
    let rate = a.e2e_rate.unwrap_or(DEFAULT_BUSY_CORES_RATE);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "busy-cores  the end-to-end floor at {rate:.0} records/s of {} bytes, with 0 to {cores} cores kept busy",
        a.record_size
    );
    let mut runs = Vec::new();
    for spinners in 0..=cores {
        let h = sink_floor(dir, a, rate, a.record_size, spinners).await?;
        runs.push(json!({
            "busy_cores": spinners,
            "ack_latency": latency(&h.ack),
            "record_latency": latency(&h.record),
            "disk": h.disk.as_ref().map(disk::Phase::json),
            "steal_fraction": h.steal_fraction,
        }));
    }
    report.insert(
        "busy_cores".into(),
        json!({"records_per_s": rate, "record_bytes": a.record_size, "linger_ms": a.e2e_linger_ms, "runs": runs}),
    );
    Ok(())
}

/// "the hypervisor took N% of the cores' time": on a virtual machine, the time its virtual CPUs
/// wanted to run and did not (steal).
fn steal_text(steal_fraction: f64) -> String {
    format!(
        "the hypervisor took {:.1}% of the cores' time (steal: virtual CPUs ready to run, not running)",
        steal_fraction * 100.0
    )
}

/// Records/s of the busy-cores scenario without --e2e-rate: about half of this machine's
/// end-to-end maximum with the default workload (BENCHMARKS.md).
const DEFAULT_BUSY_CORES_RATE: f64 = 120_000.0;

/// Records the maximum end-to-end rate is measured with: half the run's records, at least 1000.
fn e2e_max_records(a: &BenchArgs) -> u64 {
    (a.records / 2).max(1000)
}

/// The end-to-end throughput with the latency run's settings: the group joined, producers
/// unpaced at `--e2e-linger-ms`, records/s from the first send to the last record consumed.
async fn e2e_max_rate(
    w: &Workload,
    admin: &mut vltava_client::Client,
    a: &BenchArgs,
    topic: &str,
) -> anyhow::Result<f64> {
    lifecycle::create_topic(admin, topic, w.partitions, &[]).await?;
    let n = e2e_max_records(a);
    let (mut w, topic) = (w.clone(), topic.to_string());
    w.linger_ms = a.e2e_linger_ms;
    let group = format!("{topic}-group");
    blocking(move || {
        let group = ConsumerGroup::start(&w, &topic, &group)?;
        group.wait_assigned(w.partitions as usize, Duration::from_secs(60))?;
        let started = Instant::now();
        workload::produce(&w, &topic, n, None, workload::now_us())?;
        group.finish(n, Duration::from_secs(120))?;
        Ok(n as f64 / started.elapsed().as_secs_f64().max(1e-9))
    })
    .await
}

/// This process's CPU time: the bench's clients (and nothing else while a phase runs).
fn own_stats() -> Option<ProcStats> {
    ProcStats::read(std::process::id()).ok()
}
