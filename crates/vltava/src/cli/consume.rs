//! `vltava consume`: read records through librdkafka, alone or in a consumer group.

use std::collections::HashSet;
use std::io::{BufWriter, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use base64::Engine;
use clap::Args;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde_json::json;

use super::{now_ms, parse_time_ms, ClientArgs};

#[derive(Args)]
#[command(
    after_help = "Without --follow, consume stops at the end of the partitions.
Without --group it starts at the beginning; with a group it starts at the group's committed
offsets (partitions without one start at the beginning, or the end with --from-end) and commits
what it printed.

Format placeholders: {topic} {partition} {offset} {timestamp} (epoch ms) {time} (RFC 3339)
{key} {value} {headers} (k=v,k=v); escapes \\n \\t \\\\; {{ and }} for braces. A newline ends
every record.

Examples:
  vltava consume orders
  vltava consume orders --max-messages 10 --format '{partition}/{offset} {key}={value}'
  vltava consume orders --from-time 2026-11-22T10:00:00Z --partition 0
  vltava consume orders --offset -5            # the last five records of each partition
  vltava consume orders --group audit --follow
  vltava consume orders --output json | jq .value"
)]
pub struct ConsumeArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    pub topic: String,
    /// Consume as a member of this consumer group (and commit offsets).
    #[arg(long, short = 'g')]
    pub group: Option<String>,
    /// Start at the earliest offset (the default without a group).
    #[arg(long, conflicts_with_all = ["from_end", "offset", "from_time"])]
    pub from_beginning: bool,
    /// Start at the end: only records produced from now on.
    #[arg(long, conflicts_with_all = ["offset", "from_time"])]
    pub from_end: bool,
    /// Start at this offset; a negative number counts back from the end.
    #[arg(long, allow_negative_numbers = true, conflicts_with_all = ["group", "from_time"])]
    pub offset: Option<i64>,
    /// Start at the first record at or after this time (RFC 3339, epoch ms, or a duration ago like 1h).
    #[arg(long, conflicts_with = "group")]
    pub from_time: Option<String>,
    /// Read only these partitions; repeat for several.
    #[arg(long = "partition", short = 'p', conflicts_with = "group")]
    pub partitions: Vec<i32>,
    /// Stop after this many records.
    #[arg(long, short = 'n')]
    pub max_messages: Option<u64>,
    /// Keep waiting for new records instead of stopping at the end.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Output template for each record (table output only).
    #[arg(long, default_value = "{value}")]
    pub format: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Lit(Vec<u8>),
    Topic,
    Partition,
    Offset,
    Timestamp,
    Time,
    Key,
    Value,
    Headers,
}

fn parse_template(s: &str) -> anyhow::Result<Vec<Piece>> {
    let mut out = Vec::new();
    let mut lit = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' if i + 1 < b.len() => {
                lit.push(match b[i + 1] {
                    b'n' => b'\n',
                    b't' => b'\t',
                    b'r' => b'\r',
                    b'0' => 0,
                    b'\\' => b'\\',
                    c => bail!("unknown escape '\\{}' in --format", c as char),
                });
                i += 2;
            }
            b'{' if b.get(i + 1) == Some(&b'{') => {
                lit.push(b'{');
                i += 2;
            }
            b'}' if b.get(i + 1) == Some(&b'}') => {
                lit.push(b'}');
                i += 2;
            }
            b'{' => {
                let end = s[i..]
                    .find('}')
                    .ok_or_else(|| anyhow!("unclosed '{{' in --format"))?;
                let name = &s[i + 1..i + end];
                let piece = match name {
                    "topic" => Piece::Topic,
                    "partition" => Piece::Partition,
                    "offset" => Piece::Offset,
                    "timestamp" => Piece::Timestamp,
                    "time" => Piece::Time,
                    "key" => Piece::Key,
                    "value" => Piece::Value,
                    "headers" => Piece::Headers,
                    _ => bail!("unknown placeholder {{{name}}} in --format"),
                };
                if !lit.is_empty() {
                    out.push(Piece::Lit(std::mem::take(&mut lit)));
                }
                out.push(piece);
                i += end + 1;
            }
            c => {
                lit.push(c);
                i += 1;
            }
        }
    }
    if !lit.is_empty() {
        out.push(Piece::Lit(lit));
    }
    Ok(out)
}

/// Tracks the group's assignment as librdkafka reports it.
#[derive(Default)]
struct Assignment {
    /// None until the first assignment.
    partitions: Option<HashSet<i32>>,
}

struct Ctx {
    assignment: Arc<Mutex<Assignment>>,
}

impl ClientContext for Ctx {}

impl ConsumerContext for Ctx {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, r: &Rebalance<'_>) {
        if let Ok(mut a) = self.assignment.lock() {
            match r {
                Rebalance::Assign(tpl) => {
                    a.partitions = Some(tpl.elements().iter().map(|e| e.partition()).collect())
                }
                Rebalance::Revoke(_) => {
                    if a.partitions.is_some() {
                        a.partitions = Some(HashSet::new());
                    }
                }
                Rebalance::Error(_) => {}
            }
        }
    }
}

pub async fn run(a: ConsumeArgs) -> anyhow::Result<()> {
    let template = parse_template(&a.format)?;
    let mut c = a.client.connect().await?;
    let meta = c.topic(&a.topic).await?;
    meta.check_partitions(&a.partitions)?;
    let all = meta.partition_ids();
    let partitions = if a.partitions.is_empty() {
        all
    } else {
        a.partitions.clone()
    };
    // Start positions when not in a group.
    let mut start: Vec<(i32, Offset)> = Vec::new();
    if a.group.is_none() {
        if let Some(t) = &a.from_time {
            let ts = parse_time_ms(t, now_ms())?;
            let q: Vec<_> = partitions
                .iter()
                .map(|p| (a.topic.clone(), *p, ts))
                .collect();
            let found = c.list_offsets(&q).await?;
            for p in &partitions {
                let o = found
                    .get(&(a.topic.clone(), *p))
                    .map(|o| o.offset)
                    .unwrap_or(-1);
                start.push((
                    *p,
                    if o < 0 {
                        Offset::End
                    } else {
                        Offset::Offset(o)
                    },
                ));
            }
        } else {
            let o = match a.offset {
                Some(n) if n < 0 => Offset::OffsetTail(-n),
                Some(n) => Offset::Offset(n),
                None if a.from_end => Offset::End,
                None => Offset::Beginning,
            };
            start = partitions.iter().map(|p| (*p, o)).collect();
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(t) => t,
                    Err(_) => return,
                };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            stop.store(true, Ordering::SeqCst);
        });
    }
    tokio::task::spawn_blocking(move || consume_blocking(a, template, start, stop))
        .await
        .map_err(|e| anyhow!("consumer thread failed: {e}"))?
}

fn consume_blocking(
    a: ConsumeArgs,
    template: Vec<Piece>,
    start: Vec<(i32, Offset)>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &a.client.bootstrap)
        .set("client.id", "vltava-cli")
        .set("enable.partition.eof", "true")
        .set("enable.auto.offset.store", "false")
        .set(
            "auto.offset.reset",
            if a.from_end { "latest" } else { "earliest" },
        );
    match &a.group {
        Some(g) => {
            cfg.set("group.id", g).set("enable.auto.commit", "true");
        }
        None => {
            // librdkafka's assign() needs a group id even when the group is never joined nor
            // committed to.
            cfg.set("group.id", format!("vltava-cli-{}", std::process::id()))
                .set("enable.auto.commit", "false");
        }
    }
    let assignment = Arc::new(Mutex::new(Assignment::default()));
    let consumer: BaseConsumer<Ctx> = cfg
        .create_with_context(Ctx {
            assignment: assignment.clone(),
        })
        .context("cannot create the consumer")?;
    if a.group.is_some() {
        consumer
            .subscribe(&[&a.topic])
            .with_context(|| format!("cannot subscribe to '{}'", a.topic))?;
    } else {
        let mut tpl = TopicPartitionList::new();
        for (p, o) in &start {
            tpl.add_partition_offset(&a.topic, *p, *o)?;
        }
        consumer.assign(&tpl)?;
        if let Ok(mut asg) = assignment.lock() {
            asg.partitions = Some(start.iter().map(|(p, _)| *p).collect());
        }
    }
    let json = a.client.json();
    let mut out = BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let mut at_end: HashSet<i32> = HashSet::new();
    let mut printed: u64 = 0;
    let idle_limit = Duration::from_millis(a.client.timeout_ms.max(1000));
    let mut last_progress = Instant::now();
    let result = loop {
        if stop.load(Ordering::SeqCst) {
            break Ok(());
        }
        if a.max_messages.is_some_and(|m| printed >= m) {
            break Ok(());
        }
        if !a.follow {
            let assigned = assignment.lock().ok().and_then(|g| g.partitions.clone());
            if let Some(asg) = assigned {
                if asg.is_subset(&at_end) {
                    break Ok(());
                }
            }
            if last_progress.elapsed() > idle_limit {
                break Err(anyhow!(
                    "no progress for {} ms reading '{}' (use --follow to wait for records)",
                    idle_limit.as_millis(),
                    a.topic
                ));
            }
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {
                if let Err(e) = out.flush() {
                    break pipe_closed(e);
                }
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
                last_progress = Instant::now();
            }
            Some(Err(e)) => {
                if let KafkaError::MessageConsumption(RDKafkaErrorCode::UnknownTopicOrPartition) = e
                {
                    break Err(anyhow!("topic '{}' does not exist", a.topic));
                }
                break Err(anyhow!("cannot consume from '{}': {e}", a.topic));
            }
            Some(Ok(m)) => {
                last_progress = Instant::now();
                at_end.remove(&m.partition());
                let w = if json {
                    write_json(&mut out, &m)
                } else {
                    write_template(&mut out, &template, &m)
                };
                if let Err(e) = w {
                    break pipe_closed(e);
                }
                if a.follow {
                    if let Err(e) = out.flush() {
                        break pipe_closed(e);
                    }
                }
                printed += 1;
                if a.group.is_some() {
                    let _ = consumer.store_offset_from_message(&m);
                }
            }
        }
    };
    let _ = out.flush();
    if a.group.is_some() {
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => eprintln!("warning: cannot commit offsets: {e}"),
        }
    }
    result
}

fn pipe_closed(e: std::io::Error) -> anyhow::Result<()> {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Ok(())
    } else {
        Err(anyhow!("cannot write output: {e}"))
    }
}

fn timestamp(m: &BorrowedMessage<'_>) -> i64 {
    m.timestamp().to_millis().unwrap_or(-1)
}

fn write_template(
    out: &mut impl Write,
    t: &[Piece],
    m: &BorrowedMessage<'_>,
) -> std::io::Result<()> {
    for p in t {
        match p {
            Piece::Lit(b) => out.write_all(b)?,
            Piece::Topic => out.write_all(m.topic().as_bytes())?,
            Piece::Partition => write!(out, "{}", m.partition())?,
            Piece::Offset => write!(out, "{}", m.offset())?,
            Piece::Timestamp => write!(out, "{}", timestamp(m))?,
            Piece::Time => out.write_all(super::fmt_time(timestamp(m)).as_bytes())?,
            Piece::Key => out.write_all(m.key().unwrap_or_default())?,
            Piece::Value => out.write_all(m.payload().unwrap_or_default())?,
            Piece::Headers => {
                if let Some(h) = m.headers() {
                    for (i, hdr) in h.iter().enumerate() {
                        if i > 0 {
                            out.write_all(b",")?;
                        }
                        out.write_all(hdr.key.as_bytes())?;
                        out.write_all(b"=")?;
                        out.write_all(hdr.value.unwrap_or_default())?;
                    }
                }
            }
        }
    }
    out.write_all(b"\n")
}

/// `"text"` for UTF-8 bytes; otherwise null, with the bytes under `<name>_base64`.
fn bytes_field(obj: &mut serde_json::Map<String, serde_json::Value>, name: &str, b: Option<&[u8]>) {
    match b {
        None => {
            obj.insert(name.into(), serde_json::Value::Null);
        }
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => {
                obj.insert(name.into(), json!(s));
            }
            Err(_) => {
                obj.insert(name.into(), serde_json::Value::Null);
                obj.insert(
                    format!("{name}_base64"),
                    json!(base64::engine::general_purpose::STANDARD.encode(b)),
                );
            }
        },
    }
}

fn write_json(out: &mut impl Write, m: &BorrowedMessage<'_>) -> std::io::Result<()> {
    let mut obj = serde_json::Map::new();
    obj.insert("topic".into(), json!(m.topic()));
    obj.insert("partition".into(), json!(m.partition()));
    obj.insert("offset".into(), json!(m.offset()));
    obj.insert("timestamp".into(), json!(timestamp(m)));
    bytes_field(&mut obj, "key", m.key());
    bytes_field(&mut obj, "value", m.payload());
    let headers: Vec<serde_json::Value> = m
        .headers()
        .map(|h| {
            h.iter()
                .map(|hdr| {
                    let mut o = serde_json::Map::new();
                    o.insert("key".into(), json!(hdr.key));
                    bytes_field(&mut o, "value", hdr.value);
                    serde_json::Value::Object(o)
                })
                .collect()
        })
        .unwrap_or_default();
    obj.insert("headers".into(), json!(headers));
    serde_json::to_writer(&mut *out, &serde_json::Value::Object(obj))?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        let t = parse_template("{partition}:{offset}\\t{key}={{x}}").unwrap();
        assert_eq!(
            t,
            vec![
                Piece::Partition,
                Piece::Lit(b":".to_vec()),
                Piece::Offset,
                Piece::Lit(b"\t".to_vec()),
                Piece::Key,
                Piece::Lit(b"={x}".to_vec()),
            ]
        );
        assert!(parse_template("{nope}").is_err());
        assert!(parse_template("{value").is_err());
    }
}
