//! The broker's own metrics, kept in a Prometheus registry: requests and their latency per API,
//! connections, bytes and records in and out per topic, produce errors, fsyncs and their
//! latency, and (refreshed when scraped) each partition's log size and offsets. The HTTP layer
//! renders the registry; consumer lag is added there, computed as a Kafka client would.

use std::collections::HashMap;

use kafka_protocol::messages::ApiKey;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

use crate::topics::TopicRegistry;

/// Latency buckets in seconds: 50 µs to 10 s.
const LATENCY_BUCKETS_S: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
];

pub struct Metrics {
    pub registry: Registry,
    pub requests: IntCounterVec,
    pub request_seconds: HistogramVec,
    pub connections_active: IntGauge,
    pub connections_accepted: IntCounter,
    /// 1 once the data directory went offline after a storage error (Kafka's
    /// `OfflineLogDirectoryCount`).
    pub log_dir_offline: IntGauge,
    pub corrupt_batches_found: IntGauge,
    pub open_segment_files: IntGauge,
    pub bytes_in: IntCounterVec,
    pub records_in: IntCounterVec,
    pub bytes_out: IntCounterVec,
    pub records_out: IntCounterVec,
    pub produce_errors: IntCounterVec,
    pub fsyncs: IntCounter,
    pub fsync_seconds: Histogram,
    pub log_size_bytes: IntGaugeVec,
    pub log_start_offset: IntGaugeVec,
    pub log_end_offset: IntGaugeVec,
    pub cleaner_runs: IntCounter,
    /// Fetched record batch bytes that went from segment files to sockets (`sendfile`).
    pub fetch_file_bytes: IntCounter,
    pub cleaner_records_removed: IntCounter,
    pub cleaner_bytes_reclaimed: IntCounter,
    /// Request counter and latency histogram of every API key, made once.
    per_api: HashMap<i16, (IntCounter, Histogram)>,
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    register(r, Box::new(c.clone()));
    c
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    register(r, Box::new(g.clone()));
    g
}

fn register(r: &Registry, c: Box<dyn prometheus::core::Collector>) {
    if let Err(e) = r.register(c) {
        tracing::error!(error = %e, "cannot register a metric");
    }
}

impl Metrics {
    /// The broker's metrics. Names and labels are constants, so construction cannot fail on
    /// anything a peer sends.
    pub fn new() -> Metrics {
        let r = Registry::new();
        let request_seconds = HistogramVec::new(
            HistogramOpts::new(
                "vltava_request_duration_seconds",
                "Time from a request's arrival to its response, by API",
            )
            .buckets(LATENCY_BUCKETS_S.to_vec()),
            &["api"],
        )
        .unwrap_or_else(|e| panic!("request histogram: {e}"));
        register(&r, Box::new(request_seconds.clone()));
        let fsync_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "vltava_fsync_duration_seconds",
                "Duration of each partition fsync",
            )
            .buckets(LATENCY_BUCKETS_S.to_vec()),
        )
        .unwrap_or_else(|e| panic!("fsync histogram: {e}"));
        register(&r, Box::new(fsync_seconds.clone()));
        let connections_active =
            IntGauge::new("vltava_connections_active", "Open client connections")
                .unwrap_or_else(|e| panic!("connections gauge: {e}"));
        register(&r, Box::new(connections_active.clone()));
        let connections_accepted = IntCounter::new(
            "vltava_connections_accepted_total",
            "Client connections accepted since start",
        )
        .unwrap_or_else(|e| panic!("connections counter: {e}"));
        register(&r, Box::new(connections_accepted.clone()));
        let log_dir_offline = IntGauge::new(
            "vltava_log_dir_offline",
            "1 when the data directory is offline after a storage error (until restart)",
        )
        .unwrap_or_else(|e| panic!("log dir gauge: {e}"));
        register(&r, Box::new(log_dir_offline.clone()));
        let corrupt_batches_found = IntGauge::new(
            "vltava_corrupt_batches_found",
            "Sealed segments in which a read found a batch whose CRC does not match, since start",
        )
        .unwrap_or_else(|e| panic!("corrupt batches gauge: {e}"));
        register(&r, Box::new(corrupt_batches_found.clone()));
        let open_segment_files = IntGauge::new(
            "vltava_open_segment_files",
            "Segment file descriptors held by the descriptor cache",
        )
        .unwrap_or_else(|e| panic!("open segment files gauge: {e}"));
        register(&r, Box::new(open_segment_files.clone()));
        let fsyncs = IntCounter::new("vltava_fsync_total", "Partition fsyncs since start")
            .unwrap_or_else(|e| panic!("fsync counter: {e}"));
        register(&r, Box::new(fsyncs.clone()));
        #[cfg(target_os = "linux")]
        register(
            &r,
            Box::new(prometheus::process_collector::ProcessCollector::for_self()),
        );
        let requests = counter_vec(
            &r,
            "vltava_requests_total",
            "Requests handled, by API",
            &["api"],
        );
        let per_api = (0..=i16::from(u8::MAX))
            .filter_map(|k| ApiKey::try_from(k).ok().map(|a| (k, format!("{a:?}"))))
            .map(|(k, name)| {
                (
                    k,
                    (
                        requests.with_label_values(&[name.as_str()]),
                        request_seconds.with_label_values(&[name.as_str()]),
                    ),
                )
            })
            .collect();
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).unwrap_or_else(|e| panic!("metric {name}: {e}"));
            register(&r, Box::new(c.clone()));
            c
        };
        let cleaner_runs = counter(
            "vltava_log_cleaner_runs_total",
            "Partition cleanings (log compaction) completed",
        );
        let cleaner_records_removed = counter(
            "vltava_log_cleaner_records_removed_total",
            "Records removed by log compaction",
        );
        let cleaner_bytes_reclaimed = counter(
            "vltava_log_cleaner_bytes_reclaimed_total",
            "Bytes of log removed by log compaction",
        );
        let fetch_file_bytes = counter(
            "vltava_fetch_file_bytes_total",
            "Fetched record batch bytes sent from segment files without a copy (sendfile)",
        );
        Metrics {
            requests,
            per_api,
            fetch_file_bytes,
            cleaner_runs,
            cleaner_records_removed,
            cleaner_bytes_reclaimed,
            request_seconds,
            connections_active,
            connections_accepted,
            log_dir_offline,
            corrupt_batches_found,
            open_segment_files,
            bytes_in: counter_vec(
                &r,
                "vltava_topic_bytes_in_total",
                "Record batch bytes appended, by topic",
                &["topic"],
            ),
            records_in: counter_vec(
                &r,
                "vltava_topic_records_in_total",
                "Records appended, by topic",
                &["topic"],
            ),
            bytes_out: counter_vec(
                &r,
                "vltava_topic_bytes_out_total",
                "Record batch bytes sent to consumers, by topic",
                &["topic"],
            ),
            records_out: counter_vec(
                &r,
                "vltava_topic_records_out_total",
                "Records sent to consumers, by topic",
                &["topic"],
            ),
            produce_errors: counter_vec(
                &r,
                "vltava_produce_errors_total",
                "Produce requests refused per partition, by topic and Kafka error",
                &["topic", "error"],
            ),
            fsyncs,
            fsync_seconds,
            log_size_bytes: gauge_vec(
                &r,
                "vltava_log_size_bytes",
                "Bytes on disk of each partition's log",
                &["topic", "partition"],
            ),
            log_start_offset: gauge_vec(
                &r,
                "vltava_log_start_offset",
                "First offset of each partition's log",
                &["topic", "partition"],
            ),
            log_end_offset: gauge_vec(
                &r,
                "vltava_log_end_offset",
                "High watermark (end offset) of each partition",
                &["topic", "partition"],
            ),
            registry: r,
        }
    }

    /// Counts one request of API `key` that took `seconds`.
    pub fn observe_request(&self, key: i16, seconds: f64) {
        if let Some((count, latency)) = self.per_api.get(&key) {
            count.inc();
            latency.observe(seconds);
        }
    }

    /// Counts one completed cleaning.
    pub fn observe_clean(&self, stats: &vltava_storage::cleaner::CleanStats) {
        self.cleaner_runs.inc();
        self.cleaner_records_removed.inc_by(stats.records_removed);
        self.cleaner_bytes_reclaimed
            .inc_by(stats.bytes_before.saturating_sub(stats.bytes_after));
    }

    /// Sets the per-partition log gauges from the current logs (deleted topics disappear).
    pub fn refresh_logs(&self, topics: &TopicRegistry) {
        self.log_size_bytes.reset();
        self.log_start_offset.reset();
        self.log_end_offset.reset();
        for t in topics.all() {
            for p in &t.partitions {
                let (size, start, end) = {
                    let log = p.log();
                    (
                        log.size_bytes(),
                        log.log_start_offset(),
                        log.high_watermark(),
                    )
                };
                let idx = p.index.to_string();
                let labels = [t.name.as_str(), idx.as_str()];
                self.log_size_bytes
                    .with_label_values(&labels)
                    .set(size as i64);
                self.log_start_offset.with_label_values(&labels).set(start);
                self.log_end_offset.with_label_values(&labels).set(end);
            }
        }
    }

    /// Forgets a deleted topic's counters.
    pub fn forget_topic(&self, topic: &str) {
        for c in [
            &self.bytes_in,
            &self.records_in,
            &self.bytes_out,
            &self.records_out,
        ] {
            let _ = c.remove_label_values(&[topic]);
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
