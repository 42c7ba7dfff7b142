//! The client subcommands of `vltava`: each is a Kafka client of the cluster at `--bootstrap`.

pub mod cluster;
pub mod consume;
pub mod groups;
pub mod offsets;
pub mod produce;
pub mod topics;

use std::io::Write;

use anyhow::{anyhow, bail, Context};
use clap::{Args, ValueEnum};
use vltava_client::{Client, ClientOptions};

/// How results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Default)]
pub enum Output {
    /// Aligned columns for people.
    #[default]
    Table,
    /// JSON for scripts (one document; `consume` prints one object per line).
    Json,
}

/// Options every client subcommand takes.
#[derive(Args, Clone, Debug)]
pub struct ClientArgs {
    /// Bootstrap servers, HOST:PORT[,HOST:PORT...] (Vltava or any Kafka-compatible cluster).
    #[arg(
        long,
        short = 'b',
        env = "VLTAVA_BOOTSTRAP",
        default_value = "localhost:9092",
        global = true
    )]
    pub bootstrap: String,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table, global = true)]
    pub output: Output,
    /// Connect and request timeout.
    #[arg(long, default_value_t = 10_000, global = true)]
    pub timeout_ms: u64,
}

impl ClientArgs {
    pub async fn connect(&self) -> anyhow::Result<Client> {
        let mut o = ClientOptions::new(&self.bootstrap);
        o.client_id = "vltava-cli".into();
        o.timeout_ms = self.timeout_ms;
        Ok(Client::connect(o).await?)
    }

    pub fn json(&self) -> bool {
        self.output == Output::Json
    }
}

/// An aligned table without borders, as the Kafka tools print them.
pub struct Table(comfy_table::Table);

impl Table {
    pub fn new(header: &[&str]) -> Table {
        let mut t = comfy_table::Table::new();
        t.load_style(comfy_table::presets::NOTHING);
        t.set_header(header.to_vec());
        for c in t.column_iter_mut() {
            c.set_padding((0, 2));
        }
        Table(t)
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.0.add_row(cells);
    }

    pub fn print(&mut self) {
        for c in self.0.column_iter_mut() {
            c.set_padding((0, 2));
        }
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", self.0.trim_fmt());
    }
}

/// Prints a JSON document on stdout.
pub fn print_json(v: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer_pretty(&mut out, v);
    let _ = writeln!(out);
}

/// Parses `KEY=VALUE`.
pub fn key_value(s: &str) -> anyhow::Result<(String, String)> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| anyhow!("'{s}' is not KEY=VALUE"))?;
    if k.is_empty() {
        bail!("'{s}' has an empty key");
    }
    Ok((k.to_string(), v.to_string()))
}

/// A point in time, in milliseconds since the epoch: an RFC 3339 date-time
/// (`2026-11-22T10:00:00Z`), a date-time in UTC without zone (`2026-11-22T10:00:00[.000]`,
/// `2026-11-22 10:00:00`), a date (`2026-11-22`), epoch milliseconds, or a duration ago
/// (`15m`, `-2h`, `1h 30m`).
pub fn parse_time_ms(s: &str, now_ms: i64) -> anyhow::Result<i64> {
    let t = s.trim();
    if let Ok(ms) = t.parse::<i64>() {
        return Ok(ms);
    }
    if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(t) {
        return Ok(dt.timestamp_millis());
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(dt) = chrono::NaiveDateTime::parse_from_str(t, f) {
            return Ok(dt.and_utc().timestamp_millis());
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        if let Some(dt) = d.and_hms_opt(0, 0, 0) {
            return Ok(dt.and_utc().timestamp_millis());
        }
    }
    let ago = t.trim_start_matches('-').trim_end_matches(" ago");
    if let Ok(d) = humantime::parse_duration(ago) {
        return Ok(now_ms - d.as_millis() as i64);
    }
    bail!("'{s}' is not a time: use 2026-11-22T10:00:00Z, epoch milliseconds or a duration ago such as 15m")
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Formats epoch milliseconds as RFC 3339 UTC.
pub fn fmt_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

/// Parses `TOPIC` or `TOPIC:P,P,...`.
pub fn topic_partitions(s: &str) -> anyhow::Result<(String, Option<Vec<i32>>)> {
    match s.split_once(':') {
        None => Ok((s.to_string(), None)),
        Some((t, ps)) => {
            let parts = ps
                .split(',')
                .map(|p| p.trim().parse::<i32>())
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("'{s}': partitions must be numbers, as in topic:0,1"))?;
            Ok((t.to_string(), Some(parts)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        let now = 1_000_000_000_000;
        assert_eq!(
            parse_time_ms("1700000000000", now).unwrap(),
            1_700_000_000_000
        );
        assert_eq!(
            parse_time_ms("2023-11-14T22:13:20Z", now).unwrap(),
            1_700_000_000_000
        );
        assert_eq!(
            parse_time_ms("2023-11-14T22:13:20.000", now).unwrap(),
            1_700_000_000_000
        );
        assert_eq!(parse_time_ms("15m", now).unwrap(), now - 900_000);
        assert_eq!(parse_time_ms("-1h", now).unwrap(), now - 3_600_000);
        assert!(parse_time_ms("yesterday-ish", now).is_err());
        assert_eq!(fmt_time(1_700_000_000_000), "2023-11-14T22:13:20.000Z");
    }

    #[test]
    fn topic_partition_specs() {
        assert_eq!(topic_partitions("a").unwrap(), ("a".into(), None));
        assert_eq!(
            topic_partitions("a:0,2").unwrap(),
            ("a".into(), Some(vec![0, 2]))
        );
        assert!(topic_partitions("a:x").is_err());
        assert!(key_value("=x").is_err());
        assert_eq!(key_value("a=b=c").unwrap(), ("a".into(), "b=c".into()));
    }
}
