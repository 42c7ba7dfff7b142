//! Group configs (KIP-848's dynamic group configs, `kafka-configs --entity-type groups`): Kafka
//! 4.4's names, types and defaults, the overrides set per group, kept in
//! `<data-dir>/__groups/configs.json` (written atomically and fsynced before the change is
//! acknowledged).
//!
//! `consumer.session.timeout.ms` and `consumer.heartbeat.interval.ms` are honoured by the
//! consumer-protocol coordinator (`group::consumer`); `streams.session.timeout.ms`,
//! `streams.heartbeat.interval.ms` and `streams.num.standby.replicas` by the streams-group
//! coordinator (`group::streams`). The share-group configs and the other streams-group ones are
//! accepted, stored and reported with Kafka's validation; nothing reads them.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::topic_config::{boolean, int_at_least, long_at_least, ConfigDef, ConfigType};

/// A group config's definition: the same shape as a topic config's.
pub type GroupConfigDef = ConfigDef;

fn anything(_: &str) -> Result<(), String> {
    Ok(())
}
fn auto_offset_reset(v: &str) -> Result<(), String> {
    let v = v.trim();
    if v == "latest" || v == "earliest" || v.starts_with("by_duration:P") {
        Ok(())
    } else {
        Err(format!(
            "value '{v}' must be latest, earliest or by_duration:PnDTnHnMn.nS"
        ))
    }
}
fn isolation_level(v: &str) -> Result<(), String> {
    match v.trim() {
        "read_committed" | "read_uncommitted" => Ok(()),
        _ => Err(format!(
            "value '{v}' must be read_committed or read_uncommitted"
        )),
    }
}

const UNUSED: &str = "Stored and reported; Vltava has no share groups yet.";
const STREAMS_UNUSED: &str = "Stored and reported; Vltava's streams groups do not use it (no offloaded assignor, no warm-up tasks, no rack-aware assignment).";

macro_rules! def {
    ($name:literal, $default:literal, $ty:ident, $syn:literal, $doc:expr, $v:expr) => {
        GroupConfigDef {
            name: $name,
            default: $default,
            config_type: ConfigType::$ty,
            broker_synonym: $syn,
            doc: $doc,
            validate: $v,
        }
    };
}

/// Every group config Kafka 4.4 defines (`GroupConfig`).
pub static GROUP_CONFIG_DEFS: &[GroupConfigDef] = &[
    def!("consumer.assignment.interval.ms", "1000", Int, "group.consumer.assignment.interval.ms", "How often Kafka's offloaded assignor runs. Vltava assigns at once, on the heartbeat that changes the group: stored and reported.", |v| int_at_least(v, 0)),
    def!("consumer.assignor.offload.enable", "true", Boolean, "group.consumer.assignor.offload.enable", "Whether Kafka runs the assignor off the coordinator thread. Vltava's assignors are cheap and run inline: stored and reported.", boolean),
    def!("consumer.heartbeat.interval.ms", "2000", Int, "group.consumer.heartbeat.interval.ms", "The heartbeat interval the coordinator gives the group's consumer-protocol members.", |v| int_at_least(v, 1)),
    def!("consumer.session.timeout.ms", "45000", Int, "group.consumer.session.timeout.ms", "How long a consumer-protocol member may go without a heartbeat before it is removed from the group.", |v| int_at_least(v, 1)),
    def!("errors.deadletterqueue.copy.record.enable", "false", Boolean, "errors.deadletterqueue.copy.record.enable", UNUSED, boolean),
    def!("errors.deadletterqueue.topic.name", "", String, "errors.deadletterqueue.topic.name", UNUSED, anything),
    def!("share.assignment.interval.ms", "1000", Int, "group.share.assignment.interval.ms", UNUSED, |v| int_at_least(v, 0)),
    def!("share.assignor.offload.enable", "true", Boolean, "group.share.assignor.offload.enable", UNUSED, boolean),
    def!("share.auto.offset.reset", "latest", String, "share.auto.offset.reset", UNUSED, auto_offset_reset),
    def!("share.delivery.count.limit", "5", Int, "group.share.delivery.count.limit", UNUSED, |v| int_at_least(v, 2)),
    def!("share.heartbeat.interval.ms", "5000", Int, "group.share.heartbeat.interval.ms", UNUSED, |v| int_at_least(v, 1)),
    def!("share.isolation.level", "read_uncommitted", String, "share.isolation.level", UNUSED, isolation_level),
    def!("share.partition.max.record.locks", "2000", Int, "group.share.partition.max.record.locks", UNUSED, |v| int_at_least(v, 100)),
    def!("share.record.lock.duration.ms", "30000", Int, "group.share.record.lock.duration.ms", UNUSED, |v| int_at_least(v, 1000)),
    def!("share.renew.acknowledge.enable", "true", Boolean, "group.share.renew.acknowledge.enable", UNUSED, boolean),
    def!("share.session.timeout.ms", "45000", Int, "group.share.session.timeout.ms", UNUSED, |v| int_at_least(v, 1)),
    def!("streams.acceptable.recovery.lag", "10000", Long, "group.streams.acceptable.recovery.lag", STREAMS_UNUSED, |v| long_at_least(v, 0)),
    def!("streams.assignment.interval.ms", "1000", Int, "group.streams.assignment.interval.ms", STREAMS_UNUSED, |v| int_at_least(v, 0)),
    def!("streams.assignor.offload.enable", "true", Boolean, "group.streams.assignor.offload.enable", STREAMS_UNUSED, boolean),
    def!("streams.heartbeat.interval.ms", "5000", Int, "group.streams.heartbeat.interval.ms", "The heartbeat interval the coordinator gives the group's streams members.", |v| int_at_least(v, 1)),
    def!("streams.initial.rebalance.delay.ms", "3000", Int, "group.streams.initial.rebalance.delay.ms", STREAMS_UNUSED, |v| int_at_least(v, 0)),
    def!("streams.num.standby.replicas", "0", Int, "group.streams.num.standby.replicas", "The standby replicas of each task the streams group's assignment places, each in a process other than the active task's.", |v| int_at_least(v, 0)),
    def!("streams.num.warmup.replicas", "2", Int, "group.streams.num.warmup.replicas", STREAMS_UNUSED, |v| int_at_least(v, 0)),
    def!("streams.rack.aware.assignment.tags", "", List, "group.streams.rack.aware.assignment.tags", STREAMS_UNUSED, anything),
    def!("streams.session.timeout.ms", "45000", Int, "group.streams.session.timeout.ms", "How long a streams member may go without a heartbeat before it is removed from the group.", |v| int_at_least(v, 1)),
    def!("streams.task.offset.interval.ms", "60000", Int, "group.streams.task.offset.interval.ms", STREAMS_UNUSED, |v| int_at_least(v, 1)),
];

pub fn def(name: &str) -> Option<&'static GroupConfigDef> {
    GROUP_CONFIG_DEFS.iter().find(|d| d.name == name)
}

/// Most groups with configs kept at once (a bound on the file and the map; Kafka has none).
pub const MAX_CONFIGURED_GROUPS: usize = 100_000;

/// The session timeout and heartbeat interval a consumer-protocol group's overrides ask for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupTimeouts {
    pub session_timeout_ms: Option<i64>,
    pub heartbeat_interval_ms: Option<i32>,
}

/// The bounds a group's consumer session timeout must stay within: the broker's classic
/// `group.min.session.timeout.ms` / `group.max.session.timeout.ms` (Kafka bounds it by
/// `group.consumer.min/max.session.timeout.ms`; Vltava has one pair for both protocols).
#[derive(Debug, Clone, Copy)]
pub struct SessionBounds {
    pub min_ms: i64,
    pub max_ms: i64,
}

/// One config change: `Some(value)` sets, `None` deletes (back to the default).
pub type Change<'a> = (&'a str, Option<&'a str>);

pub struct GroupConfigs {
    path: PathBuf,
    by_group: BTreeMap<String, BTreeMap<String, String>>,
}

impl GroupConfigs {
    /// Loads `<dir>/configs.json` (absent: no overrides). `dir` exists (the group store's).
    pub fn open(dir: &Path) -> io::Result<GroupConfigs> {
        let path = dir.join("configs.json");
        let by_group = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} is not a group config file: {e}", path.display()),
                )
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        Ok(GroupConfigs { path, by_group })
    }

    /// The groups that have overrides.
    pub fn groups(&self) -> impl Iterator<Item = &String> {
        self.by_group.keys()
    }

    /// The overrides of `group`.
    pub fn overrides(&self, group: &str) -> Option<&BTreeMap<String, String>> {
        self.by_group.get(group)
    }

    pub fn timeouts(&self, group: &str) -> GroupTimeouts {
        let o = self.by_group.get(group);
        let get = |n: &str| {
            o.and_then(|o| o.get(n))
                .and_then(|v| v.trim().parse::<i64>().ok())
        };
        GroupTimeouts {
            session_timeout_ms: get("consumer.session.timeout.ms"),
            heartbeat_interval_ms: get("consumer.heartbeat.interval.ms")
                .and_then(|v| i32::try_from(v).ok()),
        }
    }

    /// The `streams.*` overrides of `group` the streams coordinator honours.
    pub fn streams_overrides(&self, group: &str) -> crate::group::streams::StreamsGroupOverrides {
        let o = self.by_group.get(group);
        let get = |n: &str| {
            o.and_then(|o| o.get(n))
                .and_then(|v| v.trim().parse::<i64>().ok())
        };
        crate::group::streams::StreamsGroupOverrides {
            session_timeout_ms: get("streams.session.timeout.ms"),
            heartbeat_interval_ms: get("streams.heartbeat.interval.ms")
                .and_then(|v| i32::try_from(v).ok()),
            num_standby_replicas: get("streams.num.standby.replicas")
                .and_then(|v| i32::try_from(v).ok()),
        }
    }

    /// Every group with overrides and its consumer timeouts (start-up).
    pub fn all_timeouts(&self) -> Vec<(String, GroupTimeouts)> {
        self.by_group
            .keys()
            .map(|g| (g.clone(), self.timeouts(g)))
            .collect()
    }

    /// Validates `changes` against Kafka's rules for group configs and, unless `validate_only`,
    /// applies them and makes them durable. The group need not exist (as in Kafka).
    pub fn apply(
        &mut self,
        group: &str,
        changes: &[Change<'_>],
        bounds: SessionBounds,
        validate_only: bool,
    ) -> Result<GroupTimeouts, ConfigError> {
        if group.is_empty() {
            return Err(ConfigError::InvalidRequest("the group id is empty".into()));
        }
        let mut next = self.by_group.get(group).cloned().unwrap_or_default();
        for &(name, value) in changes {
            let d = def(name).ok_or_else(|| {
                ConfigError::InvalidConfig(format!("Unknown group config name: {name}"))
            })?;
            match value {
                Some(v) => {
                    (d.validate)(v).map_err(|e| {
                        ConfigError::InvalidConfig(format!(
                            "Invalid value {v} for configuration {name}: {e}"
                        ))
                    })?;
                    next.insert(name.to_string(), v.trim().to_string());
                }
                None => {
                    next.remove(name);
                }
            }
        }
        let num = |n: &str| {
            next.get(n)
                .map(String::as_str)
                .or_else(|| def(n).map(|d| d.default))
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0)
        };
        let session = num("consumer.session.timeout.ms");
        let heartbeat = num("consumer.heartbeat.interval.ms");
        if session < bounds.min_ms || session > bounds.max_ms {
            return Err(ConfigError::InvalidConfig(format!(
                "consumer.session.timeout.ms must be between group.min.session.timeout.ms ({}) and group.max.session.timeout.ms ({}), got {session}",
                bounds.min_ms, bounds.max_ms
            )));
        }
        if heartbeat >= session {
            return Err(ConfigError::InvalidConfig(format!(
                "consumer.heartbeat.interval.ms ({heartbeat}) must be less than consumer.session.timeout.ms ({session})"
            )));
        }
        let streams_session = num("streams.session.timeout.ms");
        let streams_heartbeat = num("streams.heartbeat.interval.ms");
        if streams_heartbeat >= streams_session {
            return Err(ConfigError::InvalidConfig(format!(
                "streams.heartbeat.interval.ms ({streams_heartbeat}) must be less than streams.session.timeout.ms ({streams_session})"
            )));
        }
        if !self.by_group.contains_key(group)
            && !next.is_empty()
            && self.by_group.len() >= MAX_CONFIGURED_GROUPS
        {
            return Err(ConfigError::InvalidRequest(format!(
                "{MAX_CONFIGURED_GROUPS} groups have configs already (Vltava's bound)"
            )));
        }
        if validate_only {
            return Ok(self.timeouts(group));
        }
        let before = self.by_group.get(group).cloned();
        if next.is_empty() {
            self.by_group.remove(group);
        } else {
            self.by_group.insert(group.to_string(), next);
        }
        if let Err(e) = self.persist() {
            // Not acknowledged, not applied.
            match before {
                Some(b) => self.by_group.insert(group.to_string(), b),
                None => self.by_group.remove(group),
            };
            return Err(ConfigError::Storage(e));
        }
        Ok(self.timeouts(group))
    }

    fn persist(&self) -> io::Result<()> {
        let bytes = serde_json::to_vec(&self.by_group).map_err(io::Error::other)?;
        vltava_storage::durable::write_atomically(&self.path, &bytes)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    InvalidConfig(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("cannot persist the group config: {0}")]
    Storage(io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: SessionBounds = SessionBounds {
        min_ms: 1_000,
        max_ms: 1_800_000,
    };

    #[test]
    fn overrides_are_validated_persisted_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = GroupConfigs::open(dir.path()).unwrap();
        let t = c
            .apply(
                "g",
                &[
                    ("consumer.session.timeout.ms", Some("20000")),
                    ("consumer.heartbeat.interval.ms", Some("500")),
                ],
                BOUNDS,
                false,
            )
            .unwrap();
        assert_eq!(t.session_timeout_ms, Some(20_000));
        assert_eq!(t.heartbeat_interval_ms, Some(500));
        // Survives a reopen.
        let mut c = GroupConfigs::open(dir.path()).unwrap();
        assert_eq!(c.timeouts("g").session_timeout_ms, Some(20_000));
        for bad in [
            vec![("no.such.config", Some("1"))],
            vec![("consumer.session.timeout.ms", Some("500"))],
            vec![("consumer.heartbeat.interval.ms", Some("20000"))],
            vec![("share.isolation.level", Some("dirty"))],
            vec![("share.delivery.count.limit", Some("1"))],
        ] {
            assert!(c.apply("g", &bad, BOUNDS, false).is_err(), "{bad:?}");
        }
        assert_eq!(c.timeouts("g").session_timeout_ms, Some(20_000));
        c.apply(
            "g",
            &[
                ("consumer.session.timeout.ms", None),
                ("consumer.heartbeat.interval.ms", None),
            ],
            BOUNDS,
            false,
        )
        .unwrap();
        assert!(c.overrides("g").is_none());
        assert!(GroupConfigs::open(dir.path())
            .unwrap()
            .overrides("g")
            .is_none());
        // validate_only changes nothing.
        c.apply(
            "h",
            &[("share.record.lock.duration.ms", Some("5000"))],
            BOUNDS,
            true,
        )
        .unwrap();
        assert!(c.overrides("h").is_none());
    }
}
