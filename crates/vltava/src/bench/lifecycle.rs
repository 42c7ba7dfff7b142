//! Start-up and crash recovery: how long a restarted broker takes to answer its first request
//! with many partitions on disk, and after SIGKILL with a large log.

use std::time::Duration;

use anyhow::{bail, Context};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use vltava_client::admin::NewTopic;
use vltava_client::{Client, ClientOptions};

use super::proc::Target;

/// Partitions per topic when creating the start-up scenario's partitions.
const PARTITIONS_PER_TOPIC: u32 = 100;
/// How long a broker may take to answer after a restart before the bench gives up.
const RESTART_TIMEOUT: Duration = Duration::from_secs(300);

pub async fn admin(bootstrap: &str) -> anyhow::Result<Client> {
    let mut opts = ClientOptions::new(bootstrap);
    opts.timeout_ms = 60_000;
    Ok(Client::connect(opts).await?)
}

pub async fn create_topic(
    c: &mut Client,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> anyhow::Result<()> {
    c.create_topic(
        &NewTopic {
            name: name.to_string(),
            partitions,
            replication_factor: -1,
            configs: configs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        },
        false,
    )
    .await
    .with_context(|| format!("cannot create topic {name}"))?;
    Ok(())
}

#[derive(Debug)]
pub struct StartupResult {
    pub partitions: u32,
    /// Process start → first answered request, one per restart.
    pub restarts: Vec<Duration>,
    /// SIGTERM → exit (a clean shutdown), one per restart.
    pub shutdowns: Vec<Duration>,
    pub idle_rss_bytes: u64,
    /// Bytes written into the active segments of a two-partition topic before the restarts.
    pub active_bytes: u64,
}

/// Creates `partitions` partitions (topics of 100) with one record each, and writes
/// `active_bytes` into the active segments of a topic of two more, then restarts the broker
/// `restarts` times (SIGTERM) and times each start and each stop.
pub async fn startup(
    data_dir: &std::path::Path,
    partitions: u32,
    active_bytes: u64,
    restarts: usize,
    bin: Option<&std::path::Path>,
) -> anyhow::Result<StartupResult> {
    let mut t = Target::spawn(data_dir, bin)?;
    t.wait_answering(RESTART_TIMEOUT).await?;
    let mut c = admin(&t.bootstrap).await?;
    let topics = partitions.div_ceil(PARTITIONS_PER_TOPIC);
    let mut names = Vec::new();
    for i in 0..topics {
        let n = (partitions - i * PARTITIONS_PER_TOPIC).min(PARTITIONS_PER_TOPIC);
        let name = format!("bench-startup-{i}");
        create_topic(&mut c, &name, n as i32, &[]).await?;
        names.push((name, n));
    }
    let bootstrap = t.bootstrap.clone();
    tokio::task::spawn_blocking(move || one_record_each(&bootstrap, &names)).await??;
    let mut written_bytes = 0;
    if active_bytes > 0 {
        create_topic(&mut c, "bench-active", 2, &[]).await?;
        let bootstrap = t.bootstrap.clone();
        let records =
            tokio::task::spawn_blocking(move || fill(&bootstrap, "bench-active", 2, active_bytes))
                .await??;
        written_bytes = records * FILL_RECORD_BYTES as u64;
    }
    t.stop(Duration::from_secs(60))?;
    let mut out = StartupResult {
        partitions,
        restarts: Vec::new(),
        shutdowns: Vec::new(),
        idle_rss_bytes: 0,
        active_bytes: written_bytes,
    };
    for _ in 0..restarts.max(1) {
        // The previous run's shutdown leaves dirty pages (indexes of 10,000 partitions); flush
        // them first so that the kernel's writeback is not timed as this start's.
        flush_page_cache_writes();
        let mut t = Target::spawn(data_dir, bin)?;
        out.restarts.push(t.wait_answering(RESTART_TIMEOUT).await?);
        out.idle_rss_bytes = t.stats().map_or(0, |s| s.rss_bytes);
        let stopping = std::time::Instant::now();
        t.stop(Duration::from_secs(60))?;
        out.shutdowns.push(stopping.elapsed());
    }
    Ok(out)
}

fn flush_page_cache_writes() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
}

fn one_record_each(bootstrap: &str, topics: &[(String, u32)]) -> anyhow::Result<()> {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "20")
        .set("acks", "all")
        .create()?;
    for (name, n) in topics {
        for partition in 0..*n {
            let rec: BaseRecord<'_, (), [u8]> = BaseRecord::to(name)
                .partition(partition as i32)
                .payload(&b"startup"[..]);
            if let Err((e, _)) = p.send(rec) {
                bail!("cannot send: {e}");
            }
            p.poll(Duration::ZERO);
        }
    }
    p.flush(Duration::from_secs(120))
        .map_err(|e| anyhow::anyhow!("flush: {e}"))?;
    Ok(())
}

/// Record size for filling logs.
const FILL_RECORD_BYTES: usize = 16 * 1024;

/// Writes `bytes` (rounded up to whole records) into `partitions` partitions of `topic` with
/// acks=all; returns the records acknowledged.
fn fill(bootstrap: &str, topic: &str, partitions: i32, bytes: u64) -> anyhow::Result<u64> {
    let w = super::workload::Workload {
        bootstrap: bootstrap.to_string(),
        producers: 1,
        consumers: 0,
        partitions,
        record_size_bytes: FILL_RECORD_BYTES,
        batch_size_bytes: 1_000_000,
        linger_ms: 5,
        compression: "none".into(),
        acks: "all".into(),
        idempotence: false,
        producer_props: Vec::new(),
        consumer_props: Vec::new(),
    };
    let records = bytes.div_ceil(FILL_RECORD_BYTES as u64);
    Ok(super::workload::produce(&w, topic, records, None, 0)?.records)
}

#[derive(Debug)]
pub struct RecoveryResult {
    pub log_bytes: u64,
    pub records: u64,
    /// Restart after SIGKILL → first answered request.
    pub recovery: Duration,
}

/// Writes `log_bytes` into one partition, SIGKILLs the broker, restarts it and times the start;
/// then checks that every acknowledged record is still there.
pub async fn recovery(
    data_dir: &std::path::Path,
    log_bytes: u64,
    bin: Option<&std::path::Path>,
) -> anyhow::Result<RecoveryResult> {
    let mut t = Target::spawn(data_dir, bin)?;
    t.wait_answering(RESTART_TIMEOUT).await?;
    let mut c = admin(&t.bootstrap).await?;
    create_topic(&mut c, "bench-recovery", 1, &[]).await?;
    let records = log_bytes.div_ceil(FILL_RECORD_BYTES as u64);
    let bootstrap = t.bootstrap.clone();
    let acked =
        tokio::task::spawn_blocking(move || fill(&bootstrap, "bench-recovery", 1, log_bytes))
            .await??;
    t.kill();
    let mut t = Target::spawn(data_dir, bin)?;
    let recovery = t.wait_answering(RESTART_TIMEOUT).await?;
    let mut c = admin(&t.bootstrap).await?;
    let wm = c.watermarks(&["bench-recovery".to_string()]).await?;
    let end = wm.first().map_or(0, |w| w.latest);
    if (end as u64) < acked {
        bail!("after SIGKILL the log ends at offset {end}, but {acked} records were acknowledged");
    }
    t.stop(Duration::from_secs(60))?;
    Ok(RecoveryResult {
        log_bytes: records * FILL_RECORD_BYTES as u64,
        records: acked,
        recovery,
    })
}
