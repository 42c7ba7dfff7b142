//! Topic configuration: the Kafka topic configs Vltava supports, with Kafka's names, types,
//! defaults and validation. Unknown names are refused (INVALID_CONFIG), as Kafka does, so that no
//! setting is silently ignored.

use std::collections::BTreeMap;

use vltava_storage::LogConfig;

/// Kafka's ConfigEntry.ConfigType codes, as DescribeConfigs v3+ reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    Int = 3,
    Long = 5,
    String = 2,
    Double = 6,
    List = 7,
}

pub struct ConfigDef {
    pub name: &'static str,
    pub default: &'static str,
    pub config_type: ConfigType,
    /// The broker-level config whose value is the default (DescribeConfigs synonyms).
    pub broker_synonym: &'static str,
    pub doc: &'static str,
    pub(crate) validate: fn(&str) -> Result<(), String>,
}

pub(crate) fn long_at_least(v: &str, min: i64) -> Result<(), String> {
    match v.trim().parse::<i64>() {
        Ok(n) if n >= min => Ok(()),
        Ok(n) => Err(format!("value {n} must be at least {min}")),
        Err(_) => Err(format!("value '{v}' is not a valid long")),
    }
}
/// An int within `min..=max`; `max` = `None` for no upper bound (and Kafka's "at least" wording).
fn int_bounded(v: &str, min: i64, max: Option<i64>) -> Result<(), String> {
    let n = v
        .trim()
        .parse::<i32>()
        .map_err(|_| format!("value '{v}' is not a valid int"))?;
    let n = i64::from(n);
    match max {
        Some(max) if !(min..=max).contains(&n) => {
            Err(format!("value {n} must be between {min} and {max}"))
        }
        None if n < min => Err(format!("value {n} must be at least {min}")),
        _ => Ok(()),
    }
}
pub(crate) fn int_at_least(v: &str, min: i64) -> Result<(), String> {
    int_bounded(v, min, None)
}
fn int_in(v: &str, min: i64, max: i64) -> Result<(), String> {
    int_bounded(v, min, Some(max))
}
fn only_false(v: &str, why: &str) -> Result<(), String> {
    boolean(v)?;
    if v.trim().eq_ignore_ascii_case("true") {
        return Err(why.to_string());
    }
    Ok(())
}
/// Kafka's throttled-replicas lists: `*`, or `partition:broker` pairs.
fn throttled_replicas(v: &str) -> Result<(), String> {
    let v = v.trim();
    if v.is_empty() || v == "*" {
        return Ok(());
    }
    for item in v.split(',') {
        let ok = item.trim().split_once(':').is_some_and(|(p, b)| {
            p.trim().parse::<i32>().is_ok() && b.trim().parse::<i32>().is_ok()
        });
        if !ok {
            return Err(format!(
                "value '{v}' must be '*' or a list of [partitionId]:[brokerId]"
            ));
        }
    }
    Ok(())
}
fn one_of(v: &str, allowed: &[&str]) -> Result<(), String> {
    if allowed.contains(&v.trim()) {
        Ok(())
    } else {
        Err(format!("value '{v}' must be one of {allowed:?}"))
    }
}
fn ratio(v: &str) -> Result<(), String> {
    match v.trim().parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(()),
        Ok(r) => Err(format!("value {r} must be between 0 and 1")),
        Err(_) => Err(format!("value '{v}' is not a valid double")),
    }
}
pub(crate) fn boolean(v: &str) -> Result<(), String> {
    one_of(&v.trim().to_ascii_lowercase(), &["true", "false"])
}
fn cleanup_policy(v: &str) -> Result<(), String> {
    let items: Vec<&str> = v.split(',').map(str::trim).collect();
    if items.is_empty() || items.iter().any(|i| !["delete", "compact"].contains(i)) {
        return Err(format!(
            "value '{v}' must be a list of 'delete' and/or 'compact'"
        ));
    }
    Ok(())
}

/// Every topic config Vltava accepts.
pub static CONFIG_DEFS: &[ConfigDef] = &[
    ConfigDef {
        name: "cleanup.policy",
        default: "delete",
        config_type: ConfigType::List,
        broker_synonym: "log.cleanup.policy",
        doc: "'delete' removes old segments by retention.ms / retention.bytes; 'compact' keeps the latest record per key.",
        validate: cleanup_policy,
    },
    ConfigDef {
        name: "confluent.key.schema.validation",
        default: "false",
        config_type: ConfigType::Boolean,
        broker_synonym: "confluent.key.schema.validation",
        doc: "When true, every record key must be in the Schema Registry wire format (magic byte 0, schema id) with an id registered under the subject '<topic>-key'; others are refused with INVALID_RECORD.",
        validate: boolean,
    },
    ConfigDef {
        name: "confluent.value.schema.validation",
        default: "false",
        config_type: ConfigType::Boolean,
        broker_synonym: "confluent.value.schema.validation",
        doc: "When true, every record value must be in the Schema Registry wire format (magic byte 0, schema id) with an id registered under the subject '<topic>-value'; others are refused with INVALID_RECORD.",
        validate: boolean,
    },
    ConfigDef {
        name: "compression.type",
        default: "producer",
        config_type: ConfigType::String,
        broker_synonym: "compression.type",
        doc: "'producer' stores batches compressed as the producer sent them; gzip, snappy, lz4, zstd or uncompressed make the broker recompress every batch written in another codec, as Kafka does.",
        validate: |v| one_of(v, &["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"]),
    },
    ConfigDef {
        name: "compression.gzip.level",
        default: "-1",
        config_type: ConfigType::Int,
        broker_synonym: "compression.gzip.level",
        doc: "The gzip level (1-9, -1 for the default) the broker recompresses with when compression.type is gzip.",
        validate: |v| int_in(v, -1, 9).and_then(|()| if v.trim() == "0" { Err("value 0 must be -1 or between 1 and 9".into()) } else { Ok(()) }),
    },
    ConfigDef {
        name: "compression.lz4.level",
        default: "9",
        config_type: ConfigType::Int,
        broker_synonym: "compression.lz4.level",
        doc: "The LZ4 level (1-17) the broker recompresses with when compression.type is lz4.",
        validate: |v| int_in(v, 1, 17),
    },
    ConfigDef {
        name: "compression.zstd.level",
        default: "3",
        config_type: ConfigType::Int,
        broker_synonym: "compression.zstd.level",
        doc: "The zstd level (-131072 to 22) the broker recompresses with when compression.type is zstd.",
        validate: |v| int_in(v, -131072, 22),
    },
    ConfigDef {
        name: "delete.retention.ms",
        default: "86400000",
        config_type: ConfigType::Long,
        broker_synonym: "log.cleaner.delete.retention.ms",
        doc: "On compacted topics, how long a tombstone is kept after its timestamp, so consumers reading from the start see the delete.",
        validate: |v| long_at_least(v, 0),
    },
    ConfigDef {
        name: "max.compaction.lag.ms",
        default: "9223372036854775807",
        config_type: ConfigType::Long,
        broker_synonym: "log.cleaner.max.compaction.lag.ms",
        doc: "Records are compacted at the latest this long after they were written, whatever the dirty ratio.",
        validate: |v| long_at_least(v, 1),
    },
    ConfigDef {
        name: "max.message.bytes",
        default: "1048588",
        config_type: ConfigType::Int,
        broker_synonym: "message.max.bytes",
        doc: "The largest record batch size allowed.",
        validate: |v| int_at_least(v, 0),
    },
    ConfigDef {
        name: "message.timestamp.type",
        default: "CreateTime",
        config_type: ConfigType::String,
        broker_synonym: "log.message.timestamp.type",
        doc: "CreateTime keeps the producer's timestamps; LogAppendTime stamps batches with the broker's clock.",
        validate: |v| one_of(v, &["CreateTime", "LogAppendTime"]),
    },
    ConfigDef {
        name: "min.cleanable.dirty.ratio",
        default: "0.5",
        config_type: ConfigType::Double,
        broker_synonym: "log.cleaner.min.cleanable.ratio",
        doc: "The share of not yet compacted bytes at which the cleaner compacts a partition.",
        validate: ratio,
    },
    ConfigDef {
        name: "min.compaction.lag.ms",
        default: "0",
        config_type: ConfigType::Long,
        broker_synonym: "log.cleaner.min.compaction.lag.ms",
        doc: "Records younger than this are never compacted.",
        validate: |v| long_at_least(v, 0),
    },
    ConfigDef {
        name: "min.insync.replicas",
        default: "1",
        config_type: ConfigType::Int,
        broker_synonym: "min.insync.replicas",
        doc: "With acks=all, produce fails with NOT_ENOUGH_REPLICAS when fewer replicas are in sync (a single node has one).",
        validate: |v| int_at_least(v, 1),
    },
    ConfigDef {
        name: "retention.bytes",
        default: "-1",
        config_type: ConfigType::Long,
        broker_synonym: "log.retention.bytes",
        doc: "Per partition, the size the log may reach before old segments are deleted; -1 for no limit.",
        validate: |v| long_at_least(v, -1),
    },
    ConfigDef {
        name: "retention.ms",
        default: "604800000",
        config_type: ConfigType::Long,
        broker_synonym: "log.retention.ms",
        doc: "How long a segment is kept after its newest record; -1 keeps it forever.",
        validate: |v| long_at_least(v, -1),
    },
    ConfigDef {
        name: "segment.bytes",
        default: "1073741824",
        config_type: ConfigType::Int,
        broker_synonym: "log.segment.bytes",
        doc: "The size at which a segment is rolled.",
        validate: |v| int_at_least(v, 14),
    },
    ConfigDef {
        name: "segment.ms",
        default: "604800000",
        config_type: ConfigType::Long,
        broker_synonym: "log.roll.ms",
        doc: "The age at which a segment is rolled even if not full.",
        validate: |v| long_at_least(v, 1),
    },
    ConfigDef {
        name: "errors.deadletterqueue.group.enable",
        default: "false",
        config_type: ConfigType::Boolean,
        broker_synonym: "errors.deadletterqueue.group.enable",
        doc: "KIP-1191 (share groups' dead-letter topics): whether a share group may write its undeliverable records here. Stored and reported; Vltava has no share groups yet, so nothing writes by it.",
        validate: boolean,
    },
    ConfigDef {
        name: "file.delete.delay.ms",
        default: "60000",
        config_type: ConfigType::Long,
        broker_synonym: "log.segment.delete.delay.ms",
        doc: "Kafka renames a segment to .deleted and removes it this long after retention or compaction drops it, so that readers still holding it finish. Vltava removes such a segment's file at once: a reader keeps its open descriptor and reads on (an unlinked file lives while it is open), so there is no delay to wait out. Stored and reported.",
        validate: |v| long_at_least(v, 0),
    },
    ConfigDef {
        name: "flush.messages",
        default: "9223372036854775807",
        config_type: ConfigType::Long,
        broker_synonym: "log.flush.interval.messages",
        doc: "Kafka fsyncs a partition after this many messages. Vltava fsyncs (group commit) every batch before it acknowledges it, which is what flush.messages=1 asks for, whatever the value. Stored and reported.",
        validate: |v| long_at_least(v, 1),
    },
    ConfigDef {
        name: "flush.ms",
        default: "9223372036854775807",
        config_type: ConfigType::Long,
        broker_synonym: "log.flush.interval.ms",
        doc: "Kafka fsyncs a partition at least this often. Vltava fsyncs every batch before acknowledging it, which is at least as often as any value asks. Stored and reported.",
        validate: |v| long_at_least(v, 0),
    },
    ConfigDef {
        name: "follower.replication.throttled.replicas",
        default: "",
        config_type: ConfigType::List,
        broker_synonym: "",
        doc: "Replicas whose follower replication is throttled ('*' or partition:broker pairs). A single node has no followers: stored and reported (kafka-reassign-partitions sets and clears it).",
        validate: throttled_replicas,
    },
    ConfigDef {
        name: "index.interval.bytes",
        default: "4096",
        config_type: ConfigType::Int,
        broker_synonym: "log.index.interval.bytes",
        doc: "How far apart Kafka's offset-index entries are. Vltava's segment index has an entry per batch, which is at least as dense as any value asks. Stored and reported.",
        validate: |v| int_at_least(v, 0),
    },
    ConfigDef {
        name: "leader.replication.throttled.replicas",
        default: "",
        config_type: ConfigType::List,
        broker_synonym: "",
        doc: "Replicas whose leader-side replication is throttled ('*' or partition:broker pairs). A single node replicates to no one: stored and reported (kafka-reassign-partitions sets and clears it).",
        validate: throttled_replicas,
    },
    ConfigDef {
        name: "local.retention.bytes",
        default: "-2",
        config_type: ConfigType::Long,
        broker_synonym: "log.local.retention.bytes",
        doc: "Tiered storage's local retention (-2: the same as retention.bytes). Vltava has no remote tier, so retention.bytes alone applies. Stored and reported.",
        validate: |v| long_at_least(v, -2),
    },
    ConfigDef {
        name: "local.retention.ms",
        default: "-2",
        config_type: ConfigType::Long,
        broker_synonym: "log.local.retention.ms",
        doc: "Tiered storage's local retention (-2: the same as retention.ms). Vltava has no remote tier, so retention.ms alone applies. Stored and reported.",
        validate: |v| long_at_least(v, -2),
    },
    ConfigDef {
        name: "max.decompressed.message.bytes",
        default: "2147483639",
        config_type: ConfigType::Int,
        broker_synonym: "max.decompressed.message.bytes",
        doc: "The most bytes a compressed batch's records may inflate to; a batch beyond it is refused (CORRUPT_MESSAGE). Vltava also never inflates one beyond 64 MiB.",
        validate: |v| int_in(v, 1, 2147483639),
    },
    ConfigDef {
        name: "message.timestamp.after.max.ms",
        default: "3600000",
        config_type: ConfigType::Long,
        broker_synonym: "log.message.timestamp.after.max.ms",
        doc: "With CreateTime, a record whose timestamp is more than this far ahead of the broker's clock is refused (INVALID_TIMESTAMP).",
        validate: |v| long_at_least(v, 0),
    },
    ConfigDef {
        name: "message.timestamp.before.max.ms",
        default: "9223372036854775807",
        config_type: ConfigType::Long,
        broker_synonym: "log.message.timestamp.before.max.ms",
        doc: "With CreateTime, a record whose timestamp is more than this far behind the broker's clock is refused (INVALID_TIMESTAMP).",
        validate: |v| long_at_least(v, 0),
    },
    ConfigDef {
        name: "preallocate",
        default: "false",
        config_type: ConfigType::Boolean,
        broker_synonym: "log.preallocate",
        doc: "Kafka preallocates a new segment's file. Vltava's segments grow as they are written: stored and reported.",
        validate: boolean,
    },
    ConfigDef {
        name: "remote.copy.lag.bytes",
        default: "-1",
        config_type: ConfigType::Long,
        broker_synonym: "",
        doc: "Tiered storage: Vltava has no remote tier. Stored and reported.",
        validate: |v| long_at_least(v, -1),
    },
    ConfigDef {
        name: "remote.copy.lag.ms",
        default: "0",
        config_type: ConfigType::Long,
        broker_synonym: "",
        doc: "Tiered storage: Vltava has no remote tier. Stored and reported.",
        validate: |v| long_at_least(v, -1),
    },
    ConfigDef {
        name: "remote.log.copy.disable",
        default: "false",
        config_type: ConfigType::Boolean,
        broker_synonym: "",
        doc: "Tiered storage: Vltava has no remote tier. Stored and reported.",
        validate: boolean,
    },
    ConfigDef {
        name: "remote.log.delete.on.disable",
        default: "false",
        config_type: ConfigType::Boolean,
        broker_synonym: "",
        doc: "Tiered storage: Vltava has no remote tier. Stored and reported.",
        validate: boolean,
    },
    ConfigDef {
        name: "remote.storage.enable",
        default: "false",
        config_type: ConfigType::Boolean,
        broker_synonym: "",
        doc: "Tiered storage. Vltava has no remote tier, so true is refused, as Kafka refuses it while remote.log.storage.system.enable is off.",
        validate: |v| only_false(v, "You have to enable remote log storage system (remote.log.storage.system.enable) before enabling remote storage on topics; Vltava has no remote tier"),
    },
    ConfigDef {
        name: "segment.index.bytes",
        default: "10485760",
        config_type: ConfigType::Int,
        broker_synonym: "log.index.size.max.bytes",
        doc: "The size Kafka preallocates for a segment's offset index. Vltava's index grows with its segment: stored and reported.",
        validate: |v| int_at_least(v, 4),
    },
    ConfigDef {
        name: "segment.jitter.ms",
        default: "0",
        config_type: ConfigType::Long,
        broker_synonym: "log.roll.jitter.ms",
        doc: "Up to this much is taken off segment.ms for each new segment, so that partitions do not all roll at once.",
        validate: |v| long_at_least(v, 0),
    },
    ConfigDef {
        name: "unclean.leader.election.enable",
        default: "false",
        config_type: ConfigType::Boolean,
        broker_synonym: "unclean.leader.election.enable",
        doc: "Whether an out-of-sync replica may become leader. A single node's one replica is always in sync: stored and reported.",
        validate: boolean,
    },
];

pub fn def(name: &str) -> Option<&'static ConfigDef> {
    CONFIG_DEFS.iter().find(|d| d.name == name)
}

/// Validates one (name, value) pair.
pub fn validate(name: &str, value: Option<&str>) -> Result<(), String> {
    let d = def(name).ok_or_else(|| format!("Unknown topic config name: {name}"))?;
    let Some(v) = value else {
        return Err(format!("Null value not supported for topic config {name}"));
    };
    (d.validate)(v).map_err(|e| format!("Invalid value {v} for configuration {name}: {e}"))
}

/// The configs a topic has set explicitly (everything else takes the default).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TopicConfig {
    pub overrides: BTreeMap<String, String>,
}

impl TopicConfig {
    /// Builds a config from pairs, validating every one.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Result<TopicConfig, String> {
        let mut overrides = BTreeMap::new();
        for (k, v) in pairs {
            validate(k, v)?;
            overrides.insert(k.to_string(), v.unwrap_or_default().trim().to_string());
        }
        Ok(TopicConfig { overrides })
    }

    pub fn get(&self, name: &str) -> &str {
        match self.overrides.get(name) {
            Some(v) => v,
            None => def(name).map_or("", |d| d.default),
        }
    }
    pub fn is_default(&self, name: &str) -> bool {
        !self.overrides.contains_key(name)
    }
    fn num(&self, name: &str) -> i64 {
        // Values were validated on the way in; a default is always a number where read as one.
        self.get(name).parse().unwrap_or(-1)
    }
    pub fn min_insync_replicas(&self) -> i64 {
        self.num("min.insync.replicas")
    }
    pub fn compact(&self) -> bool {
        self.get("cleanup.policy")
            .split(',')
            .any(|p| p.trim() == "compact")
    }
    fn flag(&self, name: &str) -> bool {
        self.get(name).eq_ignore_ascii_case("true")
    }
    /// confluent.key.schema.validation / confluent.value.schema.validation
    pub fn schema_validation(&self) -> (bool, bool) {
        (
            self.flag("confluent.key.schema.validation"),
            self.flag("confluent.value.schema.validation"),
        )
    }

    /// The settings the storage layer enforces.
    pub fn log_config(&self) -> LogConfig {
        LogConfig {
            segment_bytes: self.num("segment.bytes").max(14) as u64,
            segment_ms: self.num("segment.ms").max(1),
            retention_ms: self.num("retention.ms"),
            retention_bytes: self.num("retention.bytes"),
            delete_enabled: self
                .get("cleanup.policy")
                .split(',')
                .any(|p| p.trim() == "delete"),
            max_message_bytes: self.num("max.message.bytes").max(0) as usize,
            log_append_time: self.get("message.timestamp.type") == "LogAppendTime",
            compact_enabled: self.compact(),
            min_cleanable_dirty_ratio: self.get("min.cleanable.dirty.ratio").parse().unwrap_or(0.5),
            delete_retention_ms: self.num("delete.retention.ms").max(0),
            min_compaction_lag_ms: self.num("min.compaction.lag.ms").max(0),
            max_compaction_lag_ms: self.num("max.compaction.lag.ms").max(1),
            index_interval_bytes: self.num("index.interval.bytes").max(0) as u64,
            segment_jitter_ms: self.num("segment.jitter.ms").max(0),
        }
    }

    /// The codec (and level) the broker recompresses batches into, or `None` for `producer`.
    pub fn compression(&self) -> Option<(i16, Option<i32>)> {
        use vltava_storage::codec::*;
        let level = |name: &str| match self.num(name) {
            -1 => None,
            l => i32::try_from(l).ok(),
        };
        match self.get("compression.type") {
            "uncompressed" => Some((CODEC_NONE, None)),
            "gzip" => Some((CODEC_GZIP, level("compression.gzip.level"))),
            "snappy" => Some((CODEC_SNAPPY, None)),
            "lz4" => Some((CODEC_LZ4, level("compression.lz4.level"))),
            "zstd" => Some((CODEC_ZSTD, level("compression.zstd.level"))),
            _ => None,
        }
    }

    /// (message.timestamp.before.max.ms, message.timestamp.after.max.ms) when CreateTime
    /// timestamps are checked; `None` with LogAppendTime (the broker stamps the batch).
    pub fn timestamp_bounds_ms(&self) -> Option<(i64, i64)> {
        if self.get("message.timestamp.type") == "LogAppendTime" {
            return None;
        }
        Some((
            self.num("message.timestamp.before.max.ms").max(0),
            self.num("message.timestamp.after.max.ms").max(0),
        ))
    }

    /// max.decompressed.message.bytes.
    pub fn max_decompressed_bytes(&self) -> usize {
        usize::try_from(self.num("max.decompressed.message.bytes")).unwrap_or(usize::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_matches_kafka_names_and_types() {
        assert!(validate("retention.ms", Some("1000")).is_ok());
        assert!(validate("retention.ms", Some("-1")).is_ok());
        assert!(validate("retention.ms", Some("abc")).is_err());
        assert!(validate("retention.ms", Some("-2")).is_err());
        assert!(validate("cleanup.policy", Some("compact,delete")).is_ok());
        assert!(validate("cleanup.policy", Some("shred")).is_err());
        assert!(validate("no.such.config", Some("1")).is_err());
        assert!(validate("segment.bytes", Some("99999999999")).is_err());
        assert!(validate("message.timestamp.type", Some("LogAppendTime")).is_ok());
        assert!(validate("min.cleanable.dirty.ratio", Some("0.01")).is_ok());
        assert!(validate("min.cleanable.dirty.ratio", Some("1.5")).is_err());
        assert!(validate("confluent.value.schema.validation", Some("TRUE")).is_ok());
        assert!(validate("confluent.value.schema.validation", Some("yes")).is_err());
    }

    #[test]
    fn log_config_reflects_overrides() {
        let c = TopicConfig::from_pairs([
            ("retention.ms", Some("5")),
            ("message.timestamp.type", Some("LogAppendTime")),
            ("cleanup.policy", Some("compact")),
        ])
        .unwrap();
        let l = c.log_config();
        assert_eq!(l.retention_ms, 5);
        assert!(l.log_append_time);
        assert!(!l.delete_enabled);
        assert_eq!(l.segment_bytes, 1 << 30);
        assert!(c.compact());
    }
}
