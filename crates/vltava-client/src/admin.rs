//! Typed control-plane operations: what `kafka-topics`, `kafka-configs`, `kafka-consumer-groups`,
//! `kafka-delete-records` and `GetOffsetShell` do, as calls on [`Client`].

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerProtocolAssignment, CreatePartitionsRequest,
    CreateTopicsRequest, DeleteGroupsRequest, DeleteRecordsRequest, DeleteTopicsRequest,
    DescribeClusterRequest, DescribeConfigsRequest, DescribeGroupsRequest, FindCoordinatorRequest,
    GroupId, IncrementalAlterConfigsRequest, ListGroupsRequest, ListOffsetsRequest,
    MetadataRequest, OffsetCommitRequest, OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};

use crate::client::{Client, Node};
use crate::error::{ClientError, Result};

/// ListOffsets timestamp for the log start offset.
pub const EARLIEST: i64 = -2;
/// ListOffsets timestamp for the end offset (high watermark).
pub const LATEST: i64 = -1;

/// A topic-partition.
pub type Tp = (String, i32);

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn tn(v: &str) -> TopicName {
    TopicName(s(v))
}

fn topic_ctx(t: &str) -> String {
    format!("topic '{t}'")
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerInfo {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

#[derive(Clone, Debug)]
pub struct PartitionMetadata {
    pub partition: i32,
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub error_code: i16,
}

#[derive(Clone, Debug)]
pub struct TopicMetadata {
    pub name: String,
    pub id: String,
    pub internal: bool,
    pub error_code: i16,
    pub partitions: Vec<PartitionMetadata>,
}

impl TopicMetadata {
    /// Fails with "topic 't' has no partition p" unless every partition in `partitions` exists.
    pub fn check_partitions(&self, partitions: &[i32]) -> Result<()> {
        match partitions
            .iter()
            .find(|p| !self.partitions.iter().any(|m| m.partition == **p))
        {
            Some(p) => Err(ClientError::Other(format!(
                "topic '{}' has no partition {p}",
                self.name
            ))),
            None => Ok(()),
        }
    }

    /// The partition ids, in order.
    pub fn partition_ids(&self) -> Vec<i32> {
        self.partitions.iter().map(|p| p.partition).collect()
    }
}

#[derive(Clone, Debug)]
pub struct ClusterMetadata {
    pub cluster_id: Option<String>,
    pub controller_id: i32,
    pub brokers: Vec<BrokerInfo>,
    pub topics: Vec<TopicMetadata>,
}

/// Earliest and latest offsets of one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Watermarks {
    pub topic: String,
    pub partition: i32,
    pub earliest: i64,
    pub latest: i64,
}

/// An offset found by ListOffsets: `offset` -1 when no record is at or after the timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffsetAt {
    pub offset: i64,
    pub timestamp: i64,
}

#[derive(Clone, Debug)]
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    pub source: &'static str,
    pub read_only: bool,
    pub sensitive: bool,
}

impl ConfigEntry {
    /// True when the value was set on the topic itself.
    pub fn is_topic_override(&self) -> bool {
        self.source == "DYNAMIC_TOPIC_CONFIG"
    }
}

fn config_source(code: i8) -> &'static str {
    match code {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        7 => "CLIENT_METRICS_CONFIG",
        8 => "GROUP_CONFIG",
        _ => "UNKNOWN",
    }
}

/// A new topic.
#[derive(Clone, Debug)]
pub struct NewTopic {
    pub name: String,
    /// -1 for the broker default.
    pub partitions: i32,
    /// -1 for the broker default.
    pub replication_factor: i16,
    pub configs: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub state: String,
    pub protocol_type: String,
    /// "classic" or "consumer" (KIP-848); empty when the broker does not say.
    pub group_type: String,
}

#[derive(Clone, Debug, Default)]
pub struct GroupMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub host: String,
    pub assignment: Vec<Tp>,
}

#[derive(Clone, Debug, Default)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: String,
    pub protocol_type: String,
    /// The assignor / protocol name.
    pub protocol: String,
    /// "classic" or "consumer".
    pub group_type: String,
    pub members: Vec<GroupMember>,
}

impl GroupDescription {
    /// Groups with no live members may have their offsets reset.
    pub fn is_inactive(&self) -> bool {
        matches!(self.state.as_str(), "Empty" | "Dead")
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub metadata: Option<String>,
}

/// Lag of one partition a group has committed or is assigned.
#[derive(Clone, Debug)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    /// The committed offset, if any.
    pub current_offset: Option<i64>,
    /// The high watermark.
    pub log_end_offset: i64,
    /// `log_end_offset - current_offset`, when there is a committed offset.
    pub lag: Option<i64>,
    /// The member the partition is assigned to, if any.
    pub member: Option<GroupMember>,
}

/// A group with its lag per partition, as `kafka-consumer-groups --describe` shows it.
#[derive(Clone, Debug)]
pub struct GroupLag {
    pub group: GroupDescription,
    pub partitions: Vec<PartitionLag>,
}

impl GroupLag {
    pub fn total_lag(&self) -> i64 {
        self.partitions.iter().filter_map(|p| p.lag).sum()
    }
}

#[derive(Clone, Debug)]
pub struct ClusterInfo {
    pub cluster_id: Option<String>,
    pub controller_id: i32,
    pub brokers: Vec<BrokerInfo>,
}

fn opt_str(v: &Option<StrBytes>) -> Option<String> {
    v.as_ref().map(|x| x.to_string())
}

impl Client {
    /// Metadata for `topics` (`None`: all topics). Learns broker addresses on the way.
    pub async fn metadata(
        &mut self,
        topics: Option<&[String]>,
        auto_create: bool,
    ) -> Result<ClusterMetadata> {
        let (resp, _) = self
            .call(Node::Any, 12, |v| {
                let mut r = MetadataRequest::default().with_topics(topics.map(|ts| {
                    ts.iter()
                        .map(|t| MetadataRequestTopic::default().with_name(Some(tn(t))))
                        .collect()
                }));
                if v >= 4 {
                    r = r.with_allow_auto_topic_creation(auto_create);
                }
                r
            })
            .await?;
        let brokers: Vec<BrokerInfo> = resp
            .brokers
            .iter()
            .map(|b| BrokerInfo {
                id: b.node_id.0,
                host: b.host.to_string(),
                port: b.port,
                rack: opt_str(&b.rack),
            })
            .collect();
        for b in &brokers {
            self.brokers.insert(b.id, format!("{}:{}", b.host, b.port));
        }
        let mut topics: Vec<TopicMetadata> = resp
            .topics
            .iter()
            .map(|t| {
                let mut partitions: Vec<PartitionMetadata> = t
                    .partitions
                    .iter()
                    .map(|p| PartitionMetadata {
                        partition: p.partition_index,
                        leader: p.leader_id.0,
                        leader_epoch: p.leader_epoch,
                        replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                        isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                        error_code: p.error_code,
                    })
                    .collect();
                partitions.sort_by_key(|p| p.partition);
                TopicMetadata {
                    name: t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(),
                    id: t.topic_id.to_string(),
                    internal: t.is_internal,
                    error_code: t.error_code,
                    partitions,
                }
            })
            .collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(ClusterMetadata {
            cluster_id: opt_str(&resp.cluster_id),
            controller_id: resp.controller_id.0,
            brokers,
            topics,
        })
    }

    /// The names of every topic.
    pub async fn topic_names(&mut self) -> Result<Vec<String>> {
        Ok(self
            .metadata(None, false)
            .await?
            .topics
            .into_iter()
            .map(|t| t.name)
            .collect())
    }

    /// One topic's metadata; "topic 'x' does not exist" when it does not.
    pub async fn topic(&mut self, name: &str) -> Result<TopicMetadata> {
        self.topic_with(name, false).await
    }

    /// One topic's metadata, asking the broker to create it when it auto-creates topics.
    pub async fn topic_with(&mut self, name: &str, auto_create: bool) -> Result<TopicMetadata> {
        let md = self
            .metadata(Some(&[name.to_string()]), auto_create)
            .await?;
        let t = md
            .topics
            .into_iter()
            .find(|t| t.name == name)
            .ok_or_else(|| {
                ClientError::from_code(3, &topic_ctx(name), None)
                    .unwrap_or_else(|| ClientError::Other(String::new()))
            })?;
        if let Some(e) = ClientError::from_code(t.error_code, &topic_ctx(name), None) {
            return Err(e);
        }
        Ok(t)
    }

    /// ListOffsets for (topic, partition, timestamp) queries, each sent to its partition's leader.
    pub async fn list_offsets(
        &mut self,
        queries: &[(String, i32, i64)],
    ) -> Result<HashMap<Tp, OffsetAt>> {
        let mut topics: Vec<String> = queries.iter().map(|q| q.0.clone()).collect();
        topics.sort();
        topics.dedup();
        let md = self.metadata(Some(&topics), false).await?;
        let mut leaders: HashMap<Tp, i32> = HashMap::new();
        for t in &md.topics {
            if let Some(e) = ClientError::from_code(t.error_code, &topic_ctx(&t.name), None) {
                return Err(e);
            }
            for p in &t.partitions {
                leaders.insert((t.name.clone(), p.partition), p.leader);
            }
        }
        let mut by_leader: BTreeMap<i32, BTreeMap<String, Vec<(i32, i64)>>> = BTreeMap::new();
        for (t, p, ts) in queries {
            let leader = *leaders
                .get(&(t.clone(), *p))
                .ok_or_else(|| ClientError::Other(format!("topic '{t}' has no partition {p}")))?;
            by_leader
                .entry(leader)
                .or_default()
                .entry(t.clone())
                .or_default()
                .push((*p, *ts));
        }
        let mut out = HashMap::new();
        for (leader, topics) in by_leader {
            let (resp, _) = self
                .call(Node::Id(leader), 7, |_| {
                    ListOffsetsRequest::default()
                        .with_replica_id((-1).into())
                        .with_topics(
                            topics
                                .iter()
                                .map(|(t, ps)| {
                                    ListOffsetsTopic::default()
                                        .with_name(tn(t))
                                        .with_partitions(
                                            ps.iter()
                                                .map(|(p, ts)| {
                                                    ListOffsetsPartition::default()
                                                        .with_partition_index(*p)
                                                        .with_timestamp(*ts)
                                                })
                                                .collect(),
                                        )
                                })
                                .collect(),
                        )
                })
                .await?;
            for t in resp.topics {
                for p in t.partitions {
                    let ctx = format!("topic '{}' partition {}", t.name.0, p.partition_index);
                    if let Some(e) = ClientError::from_code(p.error_code, &ctx, None) {
                        return Err(e);
                    }
                    out.insert(
                        (t.name.0.to_string(), p.partition_index),
                        OffsetAt {
                            offset: p.offset,
                            timestamp: p.timestamp,
                        },
                    );
                }
            }
        }
        Ok(out)
    }

    /// Earliest and latest offsets of every partition of `topics`, in topic and partition order.
    pub async fn watermarks(&mut self, topics: &[String]) -> Result<Vec<Watermarks>> {
        let md = self.metadata(Some(topics), false).await?;
        let mut tps = Vec::new();
        for t in &md.topics {
            if let Some(e) = ClientError::from_code(t.error_code, &topic_ctx(&t.name), None) {
                return Err(e);
            }
            for p in &t.partitions {
                tps.push((t.name.clone(), p.partition));
            }
        }
        self.watermarks_of(&tps).await
    }

    /// Earliest and latest offsets of the given partitions.
    pub async fn watermarks_of(&mut self, tps: &[Tp]) -> Result<Vec<Watermarks>> {
        if tps.is_empty() {
            return Ok(Vec::new());
        }
        let q = |ts: i64| {
            tps.iter()
                .map(|(t, p)| (t.clone(), *p, ts))
                .collect::<Vec<_>>()
        };
        let earliest = self.list_offsets(&q(EARLIEST)).await?;
        let latest = self.list_offsets(&q(LATEST)).await?;
        let mut out: Vec<Watermarks> = tps
            .iter()
            .map(|tp| Watermarks {
                topic: tp.0.clone(),
                partition: tp.1,
                earliest: earliest.get(tp).map(|o| o.offset).unwrap_or(-1),
                latest: latest.get(tp).map(|o| o.offset).unwrap_or(-1),
            })
            .collect();
        out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(out)
    }

    /// A topic's configuration, every entry with its source.
    pub async fn topic_configs(&mut self, topic: &str) -> Result<Vec<ConfigEntry>> {
        let (resp, _) = self
            .call(Node::Any, 4, |_| {
                DescribeConfigsRequest::default().with_resources(vec![
                    DescribeConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(s(topic)),
                ])
            })
            .await?;
        let mut out = Vec::new();
        for r in resp.results {
            if let Some(e) =
                ClientError::from_code(r.error_code, &topic_ctx(topic), r.error_message.as_deref())
            {
                return Err(e);
            }
            for c in r.configs {
                out.push(ConfigEntry {
                    name: c.name.to_string(),
                    value: opt_str(&c.value),
                    source: config_source(c.config_source),
                    read_only: c.read_only,
                    sensitive: c.is_sensitive,
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Creates a topic (or only validates the request).
    pub async fn create_topic(&mut self, t: &NewTopic, validate_only: bool) -> Result<()> {
        let timeout_ms = self.options().timeout_ms as i32;
        let (resp, _) = self
            .call(Node::Any, 7, |_| {
                CreateTopicsRequest::default()
                    .with_timeout_ms(timeout_ms)
                    .with_validate_only(validate_only)
                    .with_topics(vec![CreatableTopic::default()
                        .with_name(tn(&t.name))
                        .with_num_partitions(t.partitions)
                        .with_replication_factor(t.replication_factor)
                        .with_configs(
                            t.configs
                                .iter()
                                .map(|(k, v)| {
                                    CreatableTopicConfig::default()
                                        .with_name(s(k))
                                        .with_value(Some(s(v)))
                                })
                                .collect(),
                        )])
            })
            .await?;
        for r in resp.topics {
            if let Some(e) = ClientError::from_code(
                r.error_code,
                &topic_ctx(&t.name),
                r.error_message.as_deref(),
            ) {
                return Err(match r.error_code {
                    36 => ClientError::Kafka {
                        code: 36,
                        message: format!("topic '{}' already exists", t.name),
                    },
                    _ => e,
                });
            }
        }
        Ok(())
    }

    /// Deletes a topic.
    pub async fn delete_topic(&mut self, name: &str) -> Result<()> {
        let timeout_ms = self.options().timeout_ms as i32;
        let (resp, _) = self
            .call(Node::Any, 6, |v| {
                let r = DeleteTopicsRequest::default().with_timeout_ms(timeout_ms);
                if v >= 6 {
                    r.with_topics(vec![DeleteTopicState::default().with_name(Some(tn(name)))])
                } else {
                    r.with_topic_names(vec![tn(name)])
                }
            })
            .await?;
        for r in resp.responses {
            if let Some(e) =
                ClientError::from_code(r.error_code, &topic_ctx(name), r.error_message.as_deref())
            {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Grows a topic to `total` partitions.
    pub async fn create_partitions(
        &mut self,
        name: &str,
        total: i32,
        validate_only: bool,
    ) -> Result<()> {
        let timeout_ms = self.options().timeout_ms as i32;
        let (resp, _) = self
            .call(Node::Any, 3, |_| {
                CreatePartitionsRequest::default()
                    .with_timeout_ms(timeout_ms)
                    .with_validate_only(validate_only)
                    .with_topics(vec![CreatePartitionsTopic::default()
                        .with_name(tn(name))
                        .with_count(total)
                        .with_assignments(None)])
            })
            .await?;
        for r in resp.results {
            if let Some(e) =
                ClientError::from_code(r.error_code, &topic_ctx(name), r.error_message.as_deref())
            {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Sets and removes topic config overrides (IncrementalAlterConfigs: SET = 0, DELETE = 1).
    pub async fn alter_topic_configs(
        &mut self,
        topic: &str,
        set: &[(String, String)],
        delete: &[String],
        validate_only: bool,
    ) -> Result<()> {
        let mut configs: Vec<AlterableConfig> = set
            .iter()
            .map(|(k, v)| {
                AlterableConfig::default()
                    .with_name(s(k))
                    .with_config_operation(0)
                    .with_value(Some(s(v)))
            })
            .collect();
        configs.extend(delete.iter().map(|k| {
            AlterableConfig::default()
                .with_name(s(k))
                .with_config_operation(1)
        }));
        let (resp, _) = self
            .call(Node::Any, 1, |_| {
                IncrementalAlterConfigsRequest::default()
                    .with_validate_only(validate_only)
                    .with_resources(vec![AlterConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(s(topic))
                        .with_configs(configs)])
            })
            .await?;
        for r in resp.responses {
            if let Some(e) =
                ClientError::from_code(r.error_code, &topic_ctx(topic), r.error_message.as_deref())
            {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Deletes records before the given offsets (-1: the high watermark). Returns the new log start
    /// offset of each partition.
    pub async fn delete_records(
        &mut self,
        topic: &str,
        before: &[(i32, i64)],
    ) -> Result<Vec<(i32, i64)>> {
        let t = self.topic(topic).await?;
        let mut by_leader: BTreeMap<i32, Vec<(i32, i64)>> = BTreeMap::new();
        for (p, off) in before {
            let leader = t
                .partitions
                .iter()
                .find(|m| m.partition == *p)
                .map(|m| m.leader)
                .ok_or_else(|| {
                    ClientError::Other(format!("topic '{topic}' has no partition {p}"))
                })?;
            by_leader.entry(leader).or_default().push((*p, *off));
        }
        let timeout_ms = self.options().timeout_ms as i32;
        let mut out = Vec::new();
        for (leader, parts) in by_leader {
            let (resp, _) = self
                .call(Node::Id(leader), 2, |_| {
                    DeleteRecordsRequest::default()
                        .with_timeout_ms(timeout_ms)
                        .with_topics(vec![DeleteRecordsTopic::default()
                            .with_name(tn(topic))
                            .with_partitions(
                                parts
                                    .iter()
                                    .map(|(p, o)| {
                                        DeleteRecordsPartition::default()
                                            .with_partition_index(*p)
                                            .with_offset(*o)
                                    })
                                    .collect(),
                            )])
                })
                .await?;
            for rt in resp.topics {
                for p in rt.partitions {
                    let ctx = format!("topic '{topic}' partition {}", p.partition_index);
                    if let Some(e) = ClientError::from_code(p.error_code, &ctx, None) {
                        return Err(e);
                    }
                    out.push((p.partition_index, p.low_watermark));
                }
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Cluster id, controller and brokers (DescribeCluster, or Metadata on brokers without it).
    pub async fn describe_cluster(&mut self) -> Result<ClusterInfo> {
        if self.supports(60).await? {
            let (resp, _) = self
                .call(Node::Any, 1, |_| DescribeClusterRequest::default())
                .await?;
            if let Some(e) = ClientError::from_code(
                resp.error_code,
                "DescribeCluster",
                resp.error_message.as_deref(),
            ) {
                return Err(e);
            }
            let mut brokers: Vec<BrokerInfo> = resp
                .brokers
                .iter()
                .map(|b| BrokerInfo {
                    id: b.broker_id.0,
                    host: b.host.to_string(),
                    port: b.port,
                    rack: opt_str(&b.rack),
                })
                .collect();
            brokers.sort_by_key(|b| b.id);
            return Ok(ClusterInfo {
                cluster_id: Some(resp.cluster_id.to_string()),
                controller_id: resp.controller_id.0,
                brokers,
            });
        }
        let md = self.metadata(Some(&[]), false).await?;
        let mut brokers = md.brokers;
        brokers.sort_by_key(|b| b.id);
        Ok(ClusterInfo {
            cluster_id: md.cluster_id,
            controller_id: md.controller_id,
            brokers,
        })
    }

    /// The coordinator of `group` (a node id, its address learnt).
    pub async fn coordinator(&mut self, group: &str) -> Result<i32> {
        let (resp, v) = self
            .call(Node::Any, 4, |v| {
                if v >= 4 {
                    FindCoordinatorRequest::default().with_coordinator_keys(vec![s(group)])
                } else {
                    FindCoordinatorRequest::default().with_key(s(group))
                }
            })
            .await?;
        let (code, msg, node, host, port) = if v >= 4 {
            let c = resp.coordinators.first().ok_or_else(|| {
                ClientError::Other(format!("no coordinator returned for group '{group}'"))
            })?;
            (
                c.error_code,
                c.error_message.clone(),
                c.node_id.0,
                c.host.to_string(),
                c.port,
            )
        } else {
            (
                resp.error_code,
                resp.error_message.clone(),
                resp.node_id.0,
                resp.host.to_string(),
                resp.port,
            )
        };
        if let Some(e) = ClientError::from_code(code, &format!("group '{group}'"), msg.as_deref()) {
            return Err(e);
        }
        self.brokers.insert(node, format!("{host}:{port}"));
        Ok(node)
    }

    /// All groups the cluster knows.
    pub async fn list_groups(&mut self) -> Result<Vec<GroupListing>> {
        let md = self.metadata(Some(&[]), false).await?;
        let mut out = Vec::new();
        for b in md.brokers {
            let (resp, _) = self
                .call(Node::Id(b.id), 5, |_| ListGroupsRequest::default())
                .await?;
            if let Some(e) = ClientError::from_code(resp.error_code, "ListGroups", None) {
                return Err(e);
            }
            for g in resp.groups {
                out.push(GroupListing {
                    group_id: g.group_id.0.to_string(),
                    state: g.group_state.to_string(),
                    protocol_type: g.protocol_type.to_string(),
                    group_type: g.group_type.to_string(),
                });
            }
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out.dedup_by(|a, b| a.group_id == b.group_id);
        Ok(out)
    }

    /// Describes a group: state, protocol and members with their assignments. Classic groups via
    /// DescribeGroups, KIP-848 consumer groups via ConsumerGroupDescribe. "group 'g' does not
    /// exist" when the coordinator knows no such group.
    pub async fn describe_group(&mut self, group: &str) -> Result<GroupDescription> {
        let node = self.coordinator(group).await?;
        let ctx = format!("group '{group}'");
        if self.supports(69).await? {
            let (resp, _) = self
                .call(Node::Id(node), 0, |_| {
                    ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(s(group))])
                })
                .await?;
            if let Some(g) = resp.groups.into_iter().next() {
                if g.error_code == 0 {
                    let mut ids = HashMap::new();
                    let md = self.metadata(None, false).await?;
                    for t in md.topics {
                        ids.insert(t.id.clone(), t.name.clone());
                    }
                    let members = g
                        .members
                        .iter()
                        .map(|m| GroupMember {
                            member_id: m.member_id.to_string(),
                            instance_id: opt_str(&m.instance_id),
                            client_id: m.client_id.to_string(),
                            host: m.client_host.to_string(),
                            assignment: m
                                .assignment
                                .topic_partitions
                                .iter()
                                .flat_map(|tp| {
                                    let name = if tp.topic_name.0.is_empty() {
                                        ids.get(&tp.topic_id.to_string())
                                            .cloned()
                                            .unwrap_or_else(|| tp.topic_id.to_string())
                                    } else {
                                        tp.topic_name.0.to_string()
                                    };
                                    tp.partitions.iter().map(move |p| (name.clone(), *p))
                                })
                                .collect(),
                        })
                        .collect();
                    return Ok(GroupDescription {
                        group_id: group.to_string(),
                        state: g.group_state.to_string(),
                        protocol_type: "consumer".into(),
                        protocol: g.assignor_name.to_string(),
                        group_type: "consumer".into(),
                        members,
                    });
                }
                // GROUP_ID_NOT_FOUND: not a consumer group; it may be a classic one.
                if g.error_code != 69 {
                    if let Some(e) =
                        ClientError::from_code(g.error_code, &ctx, g.error_message.as_deref())
                    {
                        return Err(e);
                    }
                }
            }
        }
        let (resp, _) = self
            .call(Node::Id(node), 5, |_| {
                DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))])
            })
            .await?;
        let g = resp
            .groups
            .into_iter()
            .next()
            .ok_or_else(|| ClientError::Other(format!("{ctx}: empty DescribeGroups answer")))?;
        if g.error_code == 69 || (g.group_state.as_str() == "Dead" && g.protocol_type.is_empty()) {
            return Err(ClientError::Kafka {
                code: 69,
                message: format!("{ctx} does not exist"),
            });
        }
        if let Some(e) = ClientError::from_code(g.error_code, &ctx, g.error_message.as_deref()) {
            return Err(e);
        }
        let consumer = g.protocol_type.as_str() == "consumer";
        let members = g
            .members
            .iter()
            .map(|m| GroupMember {
                member_id: m.member_id.to_string(),
                instance_id: opt_str(&m.group_instance_id),
                client_id: m.client_id.to_string(),
                host: m.client_host.to_string(),
                assignment: if consumer {
                    parse_assignment(&m.member_assignment)
                } else {
                    Vec::new()
                },
            })
            .collect();
        Ok(GroupDescription {
            group_id: group.to_string(),
            state: g.group_state.to_string(),
            protocol_type: g.protocol_type.to_string(),
            protocol: g.protocol_data.to_string(),
            group_type: "classic".into(),
            members,
        })
    }

    /// A group's committed offsets, in topic and partition order.
    pub async fn committed(&mut self, group: &str) -> Result<Vec<Committed>> {
        let node = self.coordinator(group).await?;
        let (resp, _) = self
            .call(Node::Id(node), 7, |_| {
                OffsetFetchRequest::default()
                    .with_group_id(GroupId(s(group)))
                    .with_topics(None)
            })
            .await?;
        let ctx = format!("group '{group}'");
        if let Some(e) = ClientError::from_code(resp.error_code, &ctx, None) {
            return Err(e);
        }
        let mut out = Vec::new();
        for t in resp.topics {
            for p in t.partitions {
                if p.error_code != 0 || p.committed_offset < 0 {
                    continue;
                }
                out.push(Committed {
                    topic: t.name.0.to_string(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    metadata: opt_str(&p.metadata),
                });
            }
        }
        out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(out)
    }

    /// A group's description with lag per partition: every partition it has committed or is
    /// assigned (partitions of deleted topics are left out). Lag is the high watermark minus the
    /// committed offset.
    pub async fn group_lag(&mut self, group: &str) -> Result<GroupLag> {
        let desc = self.describe_group(group).await?;
        let committed = self.committed(group).await?;
        let mut rows: BTreeMap<Tp, (Option<i64>, Option<GroupMember>)> = BTreeMap::new();
        for o in &committed {
            rows.entry((o.topic.clone(), o.partition)).or_default().0 = Some(o.offset);
        }
        for m in &desc.members {
            for tp in &m.assignment {
                rows.entry(tp.clone()).or_default().1 = Some(m.clone());
            }
        }
        let md = self.metadata(None, false).await?;
        let existing: std::collections::HashSet<Tp> = md
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(move |p| (t.name.clone(), p.partition))
            })
            .collect();
        let tps: Vec<Tp> = rows
            .keys()
            .filter(|k| existing.contains(*k))
            .cloned()
            .collect();
        let end: HashMap<Tp, i64> = self
            .watermarks_of(&tps)
            .await?
            .into_iter()
            .map(|w| ((w.topic, w.partition), w.latest))
            .collect();
        let partitions = rows
            .into_iter()
            .filter_map(|(tp, (current, member))| {
                let leo = *end.get(&tp)?;
                Some(PartitionLag {
                    lag: current.map(|c| (leo - c).max(0)),
                    topic: tp.0,
                    partition: tp.1,
                    current_offset: current,
                    log_end_offset: leo,
                    member,
                })
            })
            .collect();
        Ok(GroupLag {
            group: desc,
            partitions,
        })
    }

    /// Commits offsets for a group with no live members (generation -1, as the Kafka tools do).
    pub async fn commit(&mut self, group: &str, offsets: &[(String, i32, i64)]) -> Result<()> {
        let node = self.coordinator(group).await?;
        let mut by_topic: BTreeMap<&str, Vec<(i32, i64)>> = BTreeMap::new();
        for (t, p, o) in offsets {
            by_topic.entry(t.as_str()).or_default().push((*p, *o));
        }
        let (resp, _) = self
            .call(Node::Id(node), 7, |_| {
                OffsetCommitRequest::default()
                    .with_group_id(GroupId(s(group)))
                    .with_generation_id_or_member_epoch(-1)
                    .with_topics(
                        by_topic
                            .iter()
                            .map(|(t, ps)| {
                                OffsetCommitRequestTopic::default()
                                    .with_name(tn(t))
                                    .with_partitions(
                                        ps.iter()
                                            .map(|(p, o)| {
                                                OffsetCommitRequestPartition::default()
                                                    .with_partition_index(*p)
                                                    .with_committed_offset(*o)
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    )
            })
            .await?;
        for t in resp.topics {
            for p in t.partitions {
                let ctx = format!(
                    "group '{group}' topic '{}' partition {}",
                    t.name.0, p.partition_index
                );
                if let Some(e) = ClientError::from_code(p.error_code, &ctx, None) {
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// The new offsets `target` gives `group` on the selected partitions (with `all_committed`,
    /// also every partition it has committed). Offsets outside a log move to its nearest end, as
    /// Kafka's tool does. Refuses groups with live members (they would overwrite the reset).
    /// Nothing is changed: apply the plan with [`Client::commit`].
    pub async fn plan_offset_reset(
        &mut self,
        group: &str,
        topics: &[TopicSelection],
        all_committed: bool,
        target: ResetTarget,
    ) -> Result<Vec<ResetRow>> {
        match self.describe_group(group).await {
            Ok(d) if !d.is_inactive() => {
                return Err(ClientError::Kafka {
                    code: 68,
                    message: format!(
                        "group '{group}' has {} active member(s) (state {}); stop its consumers before resetting offsets",
                        d.members.len(),
                        d.state
                    ),
                })
            }
            Ok(_) => {}
            Err(e) if e.code() == Some(69) => {}
            Err(e) => return Err(e),
        }
        let committed = self.committed(group).await?;
        let current: HashMap<Tp, i64> = committed
            .iter()
            .map(|o| ((o.topic.clone(), o.partition), o.offset))
            .collect();
        let mut tps: Vec<Tp> = Vec::new();
        if all_committed {
            tps.extend(committed.iter().map(|o| (o.topic.clone(), o.partition)));
        }
        for (t, parts) in topics {
            let meta = self.topic(t).await?;
            match parts {
                Some(ps) => {
                    meta.check_partitions(ps)?;
                    tps.extend(ps.iter().map(|p| (t.clone(), *p)));
                }
                None => tps.extend(meta.partitions.iter().map(|m| (t.clone(), m.partition))),
            }
        }
        tps.sort();
        tps.dedup();
        if tps.is_empty() {
            return Err(ClientError::Other(format!(
                "group '{group}' has no committed offsets; name the topics to reset"
            )));
        }
        let range: HashMap<Tp, (i64, i64)> = self
            .watermarks_of(&tps)
            .await?
            .into_iter()
            .map(|w| ((w.topic, w.partition), (w.earliest, w.latest)))
            .collect();
        let by_time = match target {
            ResetTarget::Time(ts) => {
                let q: Vec<_> = tps.iter().map(|(t, p)| (t.clone(), *p, ts)).collect();
                self.list_offsets(&q).await?
            }
            _ => HashMap::new(),
        };
        Ok(tps
            .into_iter()
            .map(|tp| {
                let (lo, hi) = range.get(&tp).copied().unwrap_or((0, 0));
                let cur = current.get(&tp).copied();
                let new = match target {
                    ResetTarget::Earliest => lo,
                    ResetTarget::Latest => hi,
                    ResetTarget::Offset(o) => o,
                    ResetTarget::Shift(n) => cur.unwrap_or(lo).saturating_add(n),
                    ResetTarget::Time(_) => match by_time.get(&tp).map(|o| o.offset) {
                        Some(o) if o >= 0 => o,
                        _ => hi,
                    },
                };
                ResetRow {
                    topic: tp.0,
                    partition: tp.1,
                    current_offset: cur,
                    new_offset: new.clamp(lo, hi),
                }
            })
            .collect())
    }

    /// Deletes a group and its offsets.
    pub async fn delete_group(&mut self, group: &str) -> Result<()> {
        let node = self.coordinator(group).await?;
        let (resp, _) = self
            .call(Node::Id(node), 2, |_| {
                DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(group))])
            })
            .await?;
        let ctx = format!("group '{group}'");
        for r in resp.results {
            match r.error_code {
                69 => {
                    return Err(ClientError::Kafka {
                        code: 69,
                        message: format!("{ctx} does not exist"),
                    })
                }
                68 => {
                    return Err(ClientError::Kafka {
                        code: 68,
                        message: format!("{ctx} still has members; stop its consumers first"),
                    })
                }
                c => {
                    if let Some(e) = ClientError::from_code(c, &ctx, None) {
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
    }
}

/// Where [`Client::plan_offset_reset`] moves a group's offsets (`kafka-consumer-groups
/// --reset-offsets --to-earliest | --to-latest | --to-offset | --to-datetime | --shift-by`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetTarget {
    Earliest,
    Latest,
    Offset(i64),
    /// The first offset at or after this timestamp (epoch ms); the end when there is none.
    Time(i64),
    Shift(i64),
}

/// One partition of an offset-reset plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResetRow {
    pub topic: String,
    pub partition: i32,
    /// The committed offset now, if any.
    pub current_offset: Option<i64>,
    pub new_offset: i64,
}

/// A topic and the partitions to reset (`None`: all of them).
pub type TopicSelection = (String, Option<Vec<i32>>);

/// The partitions in a classic consumer-protocol assignment (empty when it does not parse).
pub fn parse_assignment(bytes: &[u8]) -> Vec<Tp> {
    let mut b = bytes::Bytes::copy_from_slice(bytes);
    if b.len() < 2 {
        return Vec::new();
    }
    let version = i16::from_be_bytes([b[0], b[1]]);
    let _ = bytes::Buf::get_i16(&mut b);
    match ConsumerProtocolAssignment::decode(&mut b, version.clamp(0, 3)) {
        Ok(a) => a
            .assigned_partitions
            .iter()
            .flat_map(|tp| {
                tp.partitions
                    .iter()
                    .map(move |p| (tp.topic.0.to_string(), *p))
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}
