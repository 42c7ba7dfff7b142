//! A streams group's topology (KIP-1071) and its configuration against the topics that exist:
//! partition counts of repartition topics, copartitioning, the number of tasks per
//! subtopology, the internal topics to create, and the statuses the heartbeat reports. Pure:
//! Kafka's `InternalTopicManager.configureTopics`, `RepartitionTopics`,
//! `CopartitionedTopicsEnforcer` and `ChangelogTopics`, with time and I/O left to the caller.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Bounds on what one member may send as a topology (Kafka has none; a topology is sent by a
/// peer and kept in memory and in the group store).
pub const MAX_SUBTOPOLOGIES: usize = 1_000;
/// Topics named by all subtopologies together (source, sink, changelog and repartition).
pub const MAX_TOPOLOGY_TOPICS: usize = 10_000;
/// Configs of one internal topic.
pub const MAX_TOPIC_CONFIGS: usize = 100;
/// Copartition groups of one subtopology.
pub const MAX_COPARTITION_GROUPS: usize = 1_000;

/// The status codes of StreamsGroupHeartbeatResponse.Status.
pub mod status {
    pub const STALE_TOPOLOGY: i8 = 0;
    pub const MISSING_SOURCE_TOPICS: i8 = 1;
    pub const INCORRECTLY_PARTITIONED_TOPICS: i8 = 2;
    pub const MISSING_INTERNAL_TOPICS: i8 = 3;
    pub const SHUTDOWN_APPLICATION: i8 = 4;
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicDef {
    pub name: String,
    /// 0: not fixed by the topology (derived).
    pub partitions: i32,
    /// 0: the broker's default.
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopartitionGroup {
    /// Indexes into the subtopology's `source_topics`.
    pub source_topics: Vec<i16>,
    /// Indexes into the subtopology's `repartition_source_topics`.
    pub repartition_source_topics: Vec<i16>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subtopology {
    pub id: String,
    pub source_topics: Vec<String>,
    pub repartition_sink_topics: Vec<String>,
    pub state_changelog_topics: Vec<TopicDef>,
    pub repartition_source_topics: Vec<TopicDef>,
    pub copartition_groups: Vec<CopartitionGroup>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    pub epoch: i32,
    pub subtopologies: Vec<Subtopology>,
}

/// An internal topic the coordinator asks the broker to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
}

/// The topology against the topics that exist now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Configured {
    /// Tasks per subtopology; empty unless every topic exists with the right partitions.
    pub tasks: BTreeMap<String, i32>,
    /// Partitions of every source and repartition source topic, for IQ's endpoint map.
    pub input_partitions: BTreeMap<String, i32>,
    /// `(code, detail)` for the heartbeat response.
    pub statuses: Vec<(i8, String)>,
    /// Internal topics that are missing, with the partitions they need.
    pub to_create: Vec<NewTopic>,
}

impl Topology {
    /// Kafka's validation of a topology sent with a join (`StreamsGroupHeartbeatRequest` and
    /// `TopologyValidator`), plus Vltava's bounds. `Err` is the STREAMS_INVALID_TOPOLOGY message.
    pub fn validate(&self) -> Result<(), String> {
        if self.subtopologies.len() > MAX_SUBTOPOLOGIES {
            return Err(format!(
                "the topology has {} subtopologies; this broker accepts at most {MAX_SUBTOPOLOGIES}",
                self.subtopologies.len()
            ));
        }
        let mut ids = BTreeSet::new();
        let mut topics = 0usize;
        for s in &self.subtopologies {
            if s.id.is_empty() {
                return Err("Subtopology IDs must be non-empty.".into());
            }
            if !ids.insert(s.id.as_str()) {
                return Err(format!("Duplicate subtopology ID {}.", s.id));
            }
            if s.source_topics.is_empty() && s.repartition_source_topics.is_empty() {
                return Err(format!("Subtopology {} has no source topics.", s.id));
            }
            topics += s.source_topics.len()
                + s.repartition_sink_topics.len()
                + s.state_changelog_topics.len()
                + s.repartition_source_topics.len();
            if topics > MAX_TOPOLOGY_TOPICS {
                return Err(format!(
                    "the topology names more than {MAX_TOPOLOGY_TOPICS} topics, this broker's limit"
                ));
            }
            if s.copartition_groups.len() > MAX_COPARTITION_GROUPS {
                return Err(format!(
                    "subtopology {} has more than {MAX_COPARTITION_GROUPS} copartition groups",
                    s.id
                ));
            }
            let names = s
                .source_topics
                .iter()
                .chain(s.repartition_sink_topics.iter())
                .chain(s.state_changelog_topics.iter().map(|t| &t.name))
                .chain(s.repartition_source_topics.iter().map(|t| &t.name));
            for n in names {
                crate::topics::validate_topic_name(n)
                    .map_err(|m| format!("Subtopology {}: {m}", s.id))?;
            }
            for t in s
                .state_changelog_topics
                .iter()
                .chain(&s.repartition_source_topics)
            {
                if t.configs.len() > MAX_TOPIC_CONFIGS {
                    return Err(format!(
                        "topic {} has more than {MAX_TOPIC_CONFIGS} configs",
                        t.name
                    ));
                }
                if t.partitions < 0 {
                    return Err(format!("topic {} has a negative partition count", t.name));
                }
            }
            for g in &s.copartition_groups {
                let bad_source = g
                    .source_topics
                    .iter()
                    .any(|&i| i < 0 || i as usize >= s.source_topics.len());
                let bad_repartition = g
                    .repartition_source_topics
                    .iter()
                    .any(|&i| i < 0 || i as usize >= s.repartition_source_topics.len());
                if bad_source || bad_repartition {
                    return Err(format!(
                        "Copartition group of subtopology {} refers to a topic index out of range.",
                        s.id
                    ));
                }
            }
        }
        // Every repartition source topic must be written by some subtopology (Kafka's
        // TopologyValidator), so that its partition count can be derived.
        let sinks: BTreeSet<&String> = self
            .subtopologies
            .iter()
            .flat_map(|s| s.repartition_sink_topics.iter())
            .collect();
        for s in &self.subtopologies {
            for t in &s.repartition_source_topics {
                if t.partitions == 0 && !sinks.contains(&t.name) {
                    return Err(format!(
                        "Repartition source topic {} of subtopology {} is not a repartition sink topic of any subtopology and has no partition count.",
                        t.name, s.id
                    ));
                }
            }
        }
        Ok(())
    }

    /// Configures the topology against `topics` (every existing topic's partition count).
    pub fn configure(&self, topics: &BTreeMap<String, i32>) -> Configured {
        let mut out = Configured::default();
        let missing: BTreeSet<&String> = self
            .subtopologies
            .iter()
            .flat_map(|s| s.source_topics.iter())
            .filter(|t| !topics.contains_key(*t))
            .collect();
        if !missing.is_empty() {
            let list: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
            out.statuses.push((
                status::MISSING_SOURCE_TOPICS,
                format!("Source topics {} are missing.", list.join(", ")),
            ));
            return out;
        }
        // Repartition topics: the fixed counts, then the derived ones (the largest input of a
        // subtopology writing to it), to a fixpoint; copartition groups then even them out.
        let mut repartition: BTreeMap<String, i32> = BTreeMap::new();
        for s in &self.subtopologies {
            for t in &s.repartition_source_topics {
                if t.partitions > 0 {
                    repartition.insert(t.name.clone(), t.partitions);
                }
            }
        }
        let inputs = |s: &Subtopology, rep: &BTreeMap<String, i32>| -> Option<i32> {
            let mut max = 0;
            for t in &s.source_topics {
                max = max.max(*topics.get(t)?);
            }
            for t in &s.repartition_source_topics {
                max = max.max(*rep.get(&t.name)?);
            }
            Some(max)
        };
        for _ in 0..=self.subtopologies.len() {
            let mut changed = false;
            for s in &self.subtopologies {
                let Some(n) = inputs(s, &repartition) else {
                    continue;
                };
                for sink in &s.repartition_sink_topics {
                    let is_internal = self
                        .subtopologies
                        .iter()
                        .any(|o| o.repartition_source_topics.iter().any(|t| &t.name == sink));
                    if !is_internal {
                        continue;
                    }
                    let e = repartition.entry(sink.clone()).or_insert(0);
                    if *e < n && !self.fixed(sink) {
                        *e = n;
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }
        let mut wrong: BTreeSet<String> = BTreeSet::new();
        for s in &self.subtopologies {
            for g in &s.copartition_groups {
                let sources: Vec<(&String, i32)> = g
                    .source_topics
                    .iter()
                    .filter_map(|&i| s.source_topics.get(i as usize))
                    .map(|t| (t, topics.get(t).copied().unwrap_or(0)))
                    .collect();
                let reps: Vec<&String> = g
                    .repartition_source_topics
                    .iter()
                    .filter_map(|&i| s.repartition_source_topics.get(i as usize))
                    .map(|t| &t.name)
                    .collect();
                let counts: BTreeSet<i32> = sources.iter().map(|(_, n)| *n).collect();
                if counts.len() > 1 {
                    wrong.extend(sources.iter().map(|(t, _)| (*t).clone()));
                    continue;
                }
                let n = match counts.first() {
                    Some(&n) => n,
                    None => reps
                        .iter()
                        .filter_map(|t| repartition.get(*t))
                        .copied()
                        .max()
                        .unwrap_or(0),
                };
                for t in reps {
                    if self.fixed(t) && repartition.get(t) != Some(&n) {
                        wrong.insert(t.clone());
                    } else if !self.fixed(t) {
                        repartition.insert(t.clone(), n);
                    }
                }
            }
        }
        let mut tasks = BTreeMap::new();
        for s in &self.subtopologies {
            match inputs(s, &repartition) {
                Some(n) if n > 0 => {
                    tasks.insert(s.id.clone(), n);
                }
                _ => {
                    wrong.extend(s.repartition_source_topics.iter().map(|t| t.name.clone()));
                }
            }
        }
        // Internal topics: created when missing, wrong when their partitions differ.
        let mut missing_internal = Vec::new();
        for s in &self.subtopologies {
            let Some(&n) = tasks.get(&s.id) else {
                continue;
            };
            let needs = s
                .repartition_source_topics
                .iter()
                .map(|t| (t, repartition.get(&t.name).copied().unwrap_or(0)))
                .chain(s.state_changelog_topics.iter().map(|t| (t, n)));
            for (t, partitions) in needs {
                match topics.get(&t.name) {
                    Some(&have) if have != partitions => {
                        wrong.insert(t.name.clone());
                    }
                    Some(_) => {}
                    None => {
                        if !out.to_create.iter().any(|c| c.name == t.name) {
                            missing_internal.push(t.name.clone());
                            out.to_create.push(NewTopic {
                                name: t.name.clone(),
                                partitions,
                                replication_factor: t.replication_factor,
                                configs: t.configs.clone(),
                            });
                        }
                    }
                }
            }
        }
        if !wrong.is_empty() {
            let list: Vec<&str> = wrong.iter().map(String::as_str).collect();
            out.statuses.push((
                status::INCORRECTLY_PARTITIONED_TOPICS,
                format!(
                    "Following topics are not copartitioned or have the wrong number of partitions: {}",
                    list.join(", ")
                ),
            ));
            out.to_create.clear();
            return out;
        }
        if !missing_internal.is_empty() {
            out.statuses.push((
                status::MISSING_INTERNAL_TOPICS,
                format!(
                    "Internal topics are missing: [{}]",
                    missing_internal.join(", ")
                ),
            ));
            return out;
        }
        for s in &self.subtopologies {
            for t in &s.source_topics {
                out.input_partitions
                    .insert(t.clone(), topics.get(t).copied().unwrap_or(0));
            }
            for t in &s.repartition_source_topics {
                out.input_partitions.insert(
                    t.name.clone(),
                    repartition.get(&t.name).copied().unwrap_or(0),
                );
            }
        }
        out.tasks = tasks;
        out
    }

    fn fixed(&self, topic: &str) -> bool {
        self.subtopologies.iter().any(|s| {
            s.repartition_source_topics
                .iter()
                .any(|t| t.name == topic && t.partitions > 0)
        })
    }

    /// The source and repartition source topics of subtopology `id`.
    pub fn inputs_of(&self, id: &str) -> Vec<&str> {
        self.subtopologies
            .iter()
            .filter(|s| s.id == id)
            .flat_map(|s| {
                s.source_topics
                    .iter()
                    .map(String::as_str)
                    .chain(s.repartition_source_topics.iter().map(|t| t.name.as_str()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of StreamsTest's application: 0 reads events and promos (copartitioned) and
    /// writes the repartition topic; 1 reads it. Both have stores.
    pub fn app() -> Topology {
        let changelog = |n: &str| TopicDef {
            name: n.into(),
            configs: [("cleanup.policy".to_string(), "compact".to_string())].into(),
            ..Default::default()
        };
        Topology {
            epoch: 0,
            subtopologies: vec![
                Subtopology {
                    id: "0".into(),
                    source_topics: vec!["events".into(), "promos".into()],
                    repartition_sink_topics: vec!["app-r-repartition".into()],
                    state_changelog_topics: vec![changelog("app-s-changelog")],
                    copartition_groups: vec![CopartitionGroup {
                        source_topics: vec![0, 1],
                        repartition_source_topics: vec![],
                    }],
                    ..Default::default()
                },
                Subtopology {
                    id: "1".into(),
                    repartition_source_topics: vec![TopicDef {
                        name: "app-r-repartition".into(),
                        ..Default::default()
                    }],
                    state_changelog_topics: vec![changelog("app-t-changelog")],
                    ..Default::default()
                },
            ],
        }
    }

    #[test]
    fn missing_sources_then_internal_topics_then_ready() {
        let t = app();
        t.validate().unwrap();
        let mut topics: BTreeMap<String, i32> = [("events".to_string(), 3)].into();
        let c = t.configure(&topics);
        assert_eq!(c.statuses[0].0, status::MISSING_SOURCE_TOPICS);
        assert!(c.tasks.is_empty() && c.to_create.is_empty());
        topics.insert("promos".into(), 3);
        let c = t.configure(&topics);
        assert_eq!(c.statuses[0].0, status::MISSING_INTERNAL_TOPICS);
        let mut created: Vec<(&str, i32)> = c
            .to_create
            .iter()
            .map(|n| (n.name.as_str(), n.partitions))
            .collect();
        created.sort();
        assert_eq!(
            created,
            [
                ("app-r-repartition", 3),
                ("app-s-changelog", 3),
                ("app-t-changelog", 3)
            ]
        );
        assert_eq!(
            c.to_create[0].configs.len(),
            1,
            "configs as the topology gives them"
        );
        for n in &c.to_create {
            topics.insert(n.name.clone(), n.partitions);
        }
        let c = t.configure(&topics);
        assert!(c.statuses.is_empty(), "{:?}", c.statuses);
        assert_eq!(c.tasks, [("0".to_string(), 3), ("1".to_string(), 3)].into());
        assert_eq!(c.input_partitions["app-r-repartition"], 3);
    }

    #[test]
    fn copartitioned_sources_must_agree() {
        let t = app();
        let topics = [("events".to_string(), 3), ("promos".to_string(), 2)].into();
        let c = t.configure(&topics);
        assert_eq!(c.statuses[0].0, status::INCORRECTLY_PARTITIONED_TOPICS);
        assert!(c.statuses[0].1.contains("promos"));
        assert!(c.tasks.is_empty() && c.to_create.is_empty());
    }

    #[test]
    fn an_internal_topic_with_other_partitions_is_reported() {
        let t = app();
        let topics = [
            ("events".to_string(), 3),
            ("promos".to_string(), 3),
            ("app-s-changelog".to_string(), 1),
        ]
        .into();
        let c = t.configure(&topics);
        assert_eq!(c.statuses[0].0, status::INCORRECTLY_PARTITIONED_TOPICS);
        assert!(c.statuses[0].1.contains("app-s-changelog"));
    }

    #[test]
    fn invalid_topologies_are_refused() {
        let mut t = app();
        t.subtopologies[1].id = "0".into();
        assert!(t.validate().unwrap_err().contains("Duplicate"));
        let mut t = app();
        t.subtopologies[0].copartition_groups[0].source_topics = vec![5];
        assert!(t.validate().is_err());
        let mut t = app();
        t.subtopologies[0].repartition_sink_topics.clear();
        assert!(t.validate().unwrap_err().contains("repartition sink"));
        let mut t = app();
        t.subtopologies[0].source_topics[0] = "bad name!".into();
        assert!(t.validate().is_err());
    }
}
