//! `vltava offsets` (earliest / latest / at a time, per partition) and `vltava delete-records`.

use anyhow::bail;
use clap::Args;
use serde_json::json;

use super::{fmt_time, now_ms, parse_time_ms, print_json, ClientArgs, Table};

#[derive(Args)]
#[command(after_help = "Examples:
  vltava offsets orders                       # earliest, latest and record count per partition
  vltava offsets orders --time 2026-11-22T09:00:00Z
  vltava offsets orders --time 1h             # the first offset of the last hour
  vltava offsets                              # every topic")]
pub struct OffsetsArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Topics; all when none is given.
    pub topics: Vec<String>,
    /// Only these partitions; repeat for several.
    #[arg(long = "partition", short = 'p')]
    pub partitions: Vec<i32>,
    /// The first offset whose timestamp is at or after this time (RFC 3339, epoch ms or a
    /// duration ago); -1 when there is none.
    #[arg(long)]
    pub time: Option<String>,
}

pub async fn offsets(a: OffsetsArgs) -> anyhow::Result<()> {
    let json = a.client.json();
    let mut c = a.client.connect().await?;
    let topics = if a.topics.is_empty() {
        c.topic_names().await?
    } else {
        a.topics.clone()
    };
    let mut tps = Vec::new();
    for t in &topics {
        let meta = c.topic(t).await?;
        meta.check_partitions(&a.partitions)?;
        for m in &meta.partitions {
            if a.partitions.is_empty() || a.partitions.contains(&m.partition) {
                tps.push((t.clone(), m.partition));
            }
        }
    }
    if let Some(time) = &a.time {
        let ts = parse_time_ms(time, now_ms())?;
        let q: Vec<_> = tps.iter().map(|(t, p)| (t.clone(), *p, ts)).collect();
        let found = c.list_offsets(&q).await?;
        if json {
            print_json(&json!(tps.iter().map(|tp| {
                let o = found.get(tp);
                json!({"topic": tp.0, "partition": tp.1, "offset": o.map(|o| o.offset), "timestamp": o.map(|o| o.timestamp)})
            }).collect::<Vec<_>>()));
            return Ok(());
        }
        let mut t = Table::new(&["TOPIC", "PARTITION", "OFFSET", "TIMESTAMP"]);
        for tp in &tps {
            let o = found.get(tp);
            t.row(vec![
                tp.0.clone(),
                tp.1.to_string(),
                o.map(|o| o.offset.to_string())
                    .unwrap_or_else(|| "-1".into()),
                o.filter(|o| o.timestamp >= 0)
                    .map(|o| fmt_time(o.timestamp))
                    .unwrap_or_else(|| "-".into()),
            ]);
        }
        t.print();
        return Ok(());
    }
    let wms = c.watermarks_of(&tps).await?;
    if json {
        print_json(&json!(wms.iter().map(|w| json!({
            "topic": w.topic, "partition": w.partition, "earliest": w.earliest, "latest": w.latest,
            "records": (w.latest - w.earliest).max(0),
        })).collect::<Vec<_>>()));
        return Ok(());
    }
    let mut t = Table::new(&["TOPIC", "PARTITION", "EARLIEST", "LATEST", "RECORDS"]);
    for w in &wms {
        t.row(vec![
            w.topic.clone(),
            w.partition.to_string(),
            w.earliest.to_string(),
            w.latest.to_string(),
            (w.latest - w.earliest).max(0).to_string(),
        ]);
    }
    t.print();
    Ok(())
}

#[derive(Args)]
#[command(
    after_help = "Records before the offset are deleted; the partition's earliest offset becomes it.

Examples:
  vltava delete-records orders --before 1000 --partition 0
  vltava delete-records orders --before end      # empty every partition"
)]
pub struct DeleteRecordsArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    pub topic: String,
    /// Offset to delete up to (exclusive), or `end` for the latest offset.
    #[arg(long, allow_hyphen_values = true)]
    pub before: String,
    /// Only these partitions (default: all); repeat for several.
    #[arg(long = "partition", short = 'p')]
    pub partitions: Vec<i32>,
}

pub async fn delete_records(a: DeleteRecordsArgs) -> anyhow::Result<()> {
    let json = a.client.json();
    let before = match a.before.as_str() {
        "end" | "latest" => -1,
        s => match s.parse::<i64>() {
            Ok(n) if n >= 0 => n,
            _ => bail!("--before must be an offset (0 or more) or 'end'"),
        },
    };
    let mut c = a.client.connect().await?;
    let meta = c.topic(&a.topic).await?;
    meta.check_partitions(&a.partitions)?;
    let parts: Vec<(i32, i64)> = meta
        .partitions
        .iter()
        .filter(|m| a.partitions.is_empty() || a.partitions.contains(&m.partition))
        .map(|m| (m.partition, before))
        .collect();
    let res = c.delete_records(&a.topic, &parts).await?;
    if json {
        print_json(&json!(res
            .iter()
            .map(|(p, lw)| json!({"topic": a.topic, "partition": p, "low_watermark": lw}))
            .collect::<Vec<_>>()));
        return Ok(());
    }
    let mut t = Table::new(&["TOPIC", "PARTITION", "LOW-WATERMARK"]);
    for (p, lw) in res {
        t.row(vec![a.topic.clone(), p.to_string(), lw.to_string()]);
    }
    t.print();
    Ok(())
}
