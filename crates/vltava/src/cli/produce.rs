//! `vltava produce`: records from stdin, a file or the command line, through librdkafka.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use clap::{Args, ValueEnum};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::ClientContext;
use serde_json::json;

use super::{key_value, print_json, ClientArgs};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

#[derive(Args)]
#[command(
    after_help = "Each line of the input is one record (the delimiter is not part of it).

Examples:
  echo hello | vltava produce greetings
  vltava produce orders --file orders.txt --key-separator : --header source=import
  vltava produce orders --key order-1 --value '{\"total\": 12}'
  seq 1000000 | vltava produce numbers --acks 1 --compression lz4"
)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    pub topic: String,
    /// Read records from this file instead of stdin.
    #[arg(long, short = 'f')]
    pub file: Option<PathBuf>,
    /// Produce one record with this value instead of reading input.
    #[arg(long, conflicts_with = "file")]
    pub value: Option<String>,
    /// The key of the record given with --value.
    #[arg(long, requires = "value")]
    pub key: Option<String>,
    /// Split each line into KEY<SEP>VALUE at the first SEP; lines without it have no key.
    #[arg(long, short = 'K')]
    pub key_separator: Option<String>,
    /// Header KEY=VALUE added to every record; repeat for several.
    #[arg(long = "header", short = 'H', value_parser = key_value)]
    pub headers: Vec<(String, String)>,
    /// Acknowledgements: all (-1), 1 or 0.
    #[arg(long, default_value = "all", value_parser = ["all", "-1", "1", "0"])]
    pub acks: String,
    /// Compression of record batches.
    #[arg(long, value_enum, default_value_t = Compression::None)]
    pub compression: Compression,
    /// Send every record to this partition (default: by key, as the Java client does).
    #[arg(long, short = 'p')]
    pub partition: Option<i32>,
    /// Record delimiter in the input; escapes \n, \t, \0 and \r are understood.
    #[arg(long, default_value = "\\n")]
    pub delimiter: String,
    /// How long to wait to fill batches (linger.ms).
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
    /// Print nothing but errors.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

struct Delivery {
    ok: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for Delivery {}

impl ProducerContext for Delivery {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        match r {
            Ok(_) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
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

fn unescape(s: &str) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut b = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            continue;
        }
        match chars.next() {
            Some('n') => out.push(b'\n'),
            Some('t') => out.push(b'\t'),
            Some('r') => out.push(b'\r'),
            Some('0') => out.push(0),
            Some('\\') => out.push(b'\\'),
            other => bail!(
                "unknown escape '\\{}'",
                other.map(String::from).unwrap_or_default()
            ),
        }
    }
    Ok(out)
}

pub async fn run(a: ProduceArgs) -> anyhow::Result<()> {
    // Reach the cluster and find the topic first: clear one-line errors, before librdkafka's
    // retries would hide them.
    let mut c = a.client.connect().await?;
    let meta = c.topic_with(&a.topic, true).await?;
    if let Some(p) = a.partition {
        meta.check_partitions(&[p])?;
    }
    let delimiter = unescape(&a.delimiter)?;
    if delimiter.len() != 1 {
        bail!("--delimiter must be one byte");
    }
    let key_sep = a.key_separator.as_deref().map(unescape).transpose()?;
    if key_sep.as_ref().is_some_and(|k| k.is_empty()) {
        bail!("--key-separator must not be empty");
    }
    tokio::task::spawn_blocking(move || produce_blocking(a, delimiter[0], key_sep))
        .await
        .map_err(|e| anyhow!("producer thread failed: {e}"))?
}

fn produce_blocking(a: ProduceArgs, delimiter: u8, key_sep: Option<Vec<u8>>) -> anyhow::Result<()> {
    let acks = if a.acks == "-1" {
        "all"
    } else {
        a.acks.as_str()
    };
    let compression = format!("{:?}", a.compression).to_lowercase();
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &a.client.bootstrap)
        .set("client.id", "vltava-cli")
        .set("acks", acks)
        .set("compression.type", &compression)
        .set("linger.ms", a.linger_ms.to_string())
        .set("partitioner", "murmur2_random")
        .set(
            "message.timeout.ms",
            a.client.timeout_ms.max(1000).to_string(),
        )
        .set(
            "enable.idempotence",
            if acks == "all" { "true" } else { "false" },
        );
    let ctx = Delivery {
        ok: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        first_error: Mutex::new(None),
    };
    let producer: BaseProducer<Delivery> = cfg
        .create_with_context(ctx)
        .context("cannot create the producer")?;
    let mut headers = OwnedHeaders::new();
    for (k, v) in &a.headers {
        headers = headers.insert(Header {
            key: k,
            value: Some(v.as_bytes()),
        });
    }
    let started = Instant::now();
    let mut last_report = started;
    let mut sent: u64 = 0;
    let mut bytes: u64 = 0;
    let mut send = |key: Option<&[u8]>, value: &[u8]| -> anyhow::Result<()> {
        let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&a.topic).payload(value);
        if let Some(k) = key {
            rec = rec.key(k);
        }
        if !a.headers.is_empty() {
            rec = rec.headers(headers.clone());
        }
        if let Some(p) = a.partition {
            rec = rec.partition(p);
        }
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    producer.poll(Duration::from_millis(50));
                    rec = r;
                }
                Err((e, _)) => bail!("cannot produce to '{}': {e}", a.topic),
            }
        }
        producer.poll(Duration::ZERO);
        sent += 1;
        bytes += (value.len() + key.map(|k| k.len()).unwrap_or(0)) as u64;
        if !a.quiet && last_report.elapsed() >= Duration::from_secs(1) {
            last_report = Instant::now();
            eprintln!("{}", rate_line("sent", sent, bytes, started.elapsed()));
        }
        Ok(())
    };
    if let Some(v) = &a.value {
        send(a.key.as_deref().map(str::as_bytes), v.as_bytes())?;
    } else {
        let input: Box<dyn Read> = match &a.file {
            Some(p) => Box::new(
                std::fs::File::open(p).with_context(|| format!("cannot open {}", p.display()))?,
            ),
            None => Box::new(std::io::stdin()),
        };
        let mut reader = BufReader::with_capacity(1 << 20, input);
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = reader
                .read_until(delimiter, &mut line)
                .context("cannot read input")?;
            if n == 0 {
                break;
            }
            if line.last() == Some(&delimiter) {
                line.pop();
            }
            let (key, value) = match &key_sep {
                Some(sep) => match find(&line, sep) {
                    Some(i) => (Some(&line[..i]), &line[i + sep.len()..]),
                    None => (None, &line[..]),
                },
                None => (None, &line[..]),
            };
            send(key, value)?;
        }
    }
    // Wait for every delivery report.
    let deadline = Instant::now() + Duration::from_millis(a.client.timeout_ms.max(1000) + 5000);
    while producer.in_flight_count() > 0 && Instant::now() < deadline {
        producer.poll(Duration::from_millis(100));
    }
    let _ = producer.flush(Duration::from_secs(1));
    let ctx = producer.context();
    let ok = ctx.ok.load(Ordering::Relaxed);
    let failed = ctx.failed.load(Ordering::Relaxed);
    let lost = sent.saturating_sub(ok + failed);
    let elapsed = started.elapsed();
    if a.client.json() {
        print_json(&json!({
            "topic": a.topic,
            "records": ok,
            "failed": failed + lost,
            "bytes": bytes,
            "elapsed_ms": elapsed.as_millis() as u64,
        }));
    } else if !a.quiet {
        eprintln!(
            "{}",
            rate_line(&format!("produced to '{}':", a.topic), ok, bytes, elapsed)
        );
    }
    let _ = std::io::stderr().flush();
    if failed + lost > 0 {
        let first = ctx.first_error.lock().ok().and_then(|f| f.clone());
        bail!(
            "{} of {sent} records were not acknowledged: {}",
            failed + lost,
            first.unwrap_or_else(|| "no delivery report in time".into())
        );
    }
    Ok(())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn rate_line(what: &str, records: u64, bytes: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-6);
    format!(
        "{what} {records} records, {:.2} MB in {:.2} s: {:.0} records/s, {:.2} MB/s",
        bytes as f64 / 1e6,
        secs,
        records as f64 / secs,
        bytes as f64 / 1e6 / secs
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(unescape("\\n").unwrap(), b"\n");
        assert_eq!(unescape("\\0").unwrap(), b"\0");
        assert_eq!(unescape("::").unwrap(), b"::");
        assert!(unescape("\\q").is_err());
        assert_eq!(find(b"a::b", b"::"), Some(1));
    }
}
