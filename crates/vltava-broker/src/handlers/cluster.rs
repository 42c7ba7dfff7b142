//! The cluster-management APIs, answered as a single node truthfully would: one log directory
//! (DescribeLogDirs, AlterReplicaLogDirs), one replica per partition that is always its preferred
//! leader (ElectLeaders), no reassignment ever in progress (List/AlterPartitionReassignments), a
//! one-voter metadata quorum led by this node (DescribeQuorum, as a combined KRaft node reports
//! it), the idempotent producers each partition remembers (DescribeProducers) and the resources
//! that have configs (ListConfigResources).

use std::collections::HashSet;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::alter_replica_log_dirs_response::{
    AlterReplicaLogDirPartitionResult, AlterReplicaLogDirTopicResult,
};
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::describe_quorum_response::{self, Listener, ReplicaState};
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::list_config_resources_response::ConfigResource;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
    AlterReplicaLogDirsRequest, AlterReplicaLogDirsResponse, BrokerId, DescribeLogDirsRequest,
    DescribeLogDirsResponse, DescribeProducersRequest, DescribeProducersResponse,
    DescribeQuorumRequest, DescribeQuorumResponse, ElectLeadersRequest, ElectLeadersResponse,
    ListConfigResourcesRequest, ListConfigResourcesResponse, ListPartitionReassignmentsRequest,
    ListPartitionReassignmentsResponse, ProducerId,
};

use super::{code, now_ms, s, topic_name};
use crate::state::BrokerState;

/// The quorum's epoch: a single voter wins one election, at its first start (a fresh combined
/// KRaft node reports epoch 1), and never loses it.
const QUORUM_EPOCH: i32 = 1;

/// The metadata log's name, the one partition a DescribeQuorum may ask about.
const CLUSTER_METADATA_TOPIC: &str = "__cluster_metadata";

/// ConfigResource types (KIP-1142's ListConfigResources, DescribeConfigs).
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const RESOURCE_BROKER_LOGGER: i8 = 8;
const RESOURCE_CLIENT_METRICS: i8 = 16;
const RESOURCE_GROUP: i8 = 32;

/// The data directory as clients see it: absolute, as Kafka reports `log.dirs`.
fn log_dir(state: &BrokerState) -> String {
    let dir = &state.config.data_dir;
    std::fs::canonicalize(dir)
        .unwrap_or_else(|_| dir.clone())
        .to_string_lossy()
        .into_owned()
}

/// (total, usable) bytes of the file system holding `dir`, or (-1, -1) when unknown.
fn disk_space_bytes(dir: &std::path::Path) -> (i64, i64) {
    match rustix::fs::statvfs(dir) {
        Ok(st) => {
            let frag = st.f_frsize.max(1);
            let total = st.f_blocks.saturating_mul(frag);
            let usable = st.f_bavail.saturating_mul(frag);
            (
                i64::try_from(total).unwrap_or(i64::MAX),
                i64::try_from(usable).unwrap_or(i64::MAX),
            )
        }
        Err(_) => (-1, -1),
    }
}

pub fn describe_log_dirs(
    state: &BrokerState,
    req: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    let dir = log_dir(state);
    if state.health.is_offline() {
        let result = DescribeLogDirsResult::default()
            .with_error_code(code(E::KafkaStorageError))
            .with_log_dir(s(&dir))
            .with_total_bytes(-1)
            .with_usable_bytes(-1);
        return DescribeLogDirsResponse::default().with_results(vec![result]);
    }
    // None: every partition; otherwise those named (unknown ones are left out, as Kafka does).
    let wanted: Option<Vec<(String, Vec<i32>)>> = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.topic.0.to_string(), t.partitions))
            .collect()
    });
    let mut topics = Vec::new();
    let mut add = |t: &crate::topics::Topic, indexes: &mut dyn Iterator<Item = i32>| {
        let mut seen = HashSet::new();
        let partitions: Vec<DescribeLogDirsPartition> = indexes
            .filter(|i| seen.insert(*i))
            .filter_map(|i| t.partition(i).map(|p| (i, p)))
            .map(|(i, p)| {
                let size = p.log().size_bytes();
                DescribeLogDirsPartition::default()
                    .with_partition_index(i)
                    .with_partition_size(i64::try_from(size).unwrap_or(i64::MAX))
                    .with_offset_lag(0)
                    .with_is_future_key(false)
            })
            .collect();
        if !partitions.is_empty() {
            topics.push(
                DescribeLogDirsTopic::default()
                    .with_name(topic_name(&t.name))
                    .with_partitions(partitions),
            );
        }
    };
    match wanted {
        None => {
            for t in state.topics.all() {
                add(&t, &mut (0..t.partitions.len() as i32));
            }
        }
        Some(list) => {
            for (name, parts) in list {
                if let Some(t) = state.topics.get(&name) {
                    add(&t, &mut parts.into_iter());
                }
            }
        }
    }
    let (total, usable) = disk_space_bytes(&state.config.data_dir);
    let result = DescribeLogDirsResult::default()
        .with_log_dir(s(&dir))
        .with_topics(topics)
        .with_total_bytes(total)
        .with_usable_bytes(usable);
    DescribeLogDirsResponse::default().with_results(vec![result])
}

/// Moving a partition to the directory it is in is done at once; there is no other directory.
pub fn alter_replica_log_dirs(
    state: &BrokerState,
    req: AlterReplicaLogDirsRequest,
) -> AlterReplicaLogDirsResponse {
    let ours = log_dir(state);
    let mut results: Vec<AlterReplicaLogDirTopicResult> = Vec::new();
    for d in req.dirs {
        let same = std::fs::canonicalize(d.path.as_str())
            .map(|p| p.to_string_lossy() == ours.as_str())
            .unwrap_or(false);
        // None: done (the replica is already there).
        let dir_error = if !same {
            Some(E::LogDirNotFound)
        } else if state.health.is_offline() {
            Some(E::KafkaStorageError)
        } else {
            None
        };
        for t in d.topics {
            let topic = state.topics.get(t.name.0.as_str());
            let partitions = t
                .partitions
                .iter()
                .map(|&i| {
                    let hosted = topic.as_ref().is_some_and(|t| t.partition(i).is_some());
                    let err = match dir_error {
                        Some(e) => code(e),
                        None if hosted => 0,
                        None => code(E::ReplicaNotAvailable),
                    };
                    AlterReplicaLogDirPartitionResult::default()
                        .with_partition_index(i)
                        .with_error_code(err)
                })
                .collect();
            results.push(
                AlterReplicaLogDirTopicResult::default()
                    .with_topic_name(t.name)
                    .with_partitions(partitions),
            );
        }
    }
    AlterReplicaLogDirsResponse::default().with_results(results)
}

/// Every partition's only replica is its preferred leader and is alive: no election is ever
/// needed. As Kafka's controller, a request for all partitions lists none of them.
pub fn elect_leaders(
    state: &BrokerState,
    req: ElectLeadersRequest,
    version: i16,
) -> ElectLeadersResponse {
    let Some(list) = req.topic_partitions else {
        return ElectLeadersResponse::default();
    };
    if version >= 1 && !matches!(req.election_type, 0 | 1) {
        return ElectLeadersResponse::default().with_error_code(code(E::InvalidRequest));
    }
    let results = list
        .into_iter()
        .map(|tp| {
            let topic = state.topics.get(tp.topic.0.as_str());
            let partition_result = tp
                .partitions
                .iter()
                .map(|&i| {
                    let (err, msg) = match &topic {
                        Some(t) if t.partition(i).is_some() => (
                            E::ElectionNotNeeded,
                            "Leader election not needed for topic partition.".to_string(),
                        ),
                        _ => (
                            E::UnknownTopicOrPartition,
                            format!("The partition {}-{i} does not exist.", tp.topic.0),
                        ),
                    };
                    PartitionResult::default()
                        .with_partition_id(i)
                        .with_error_code(code(err))
                        .with_error_message(Some(s(&msg)))
                })
                .collect();
            ReplicaElectionResult::default()
                .with_topic(tp.topic)
                .with_partition_result(partition_result)
        })
        .collect();
    ElectLeadersResponse::default().with_replica_election_results(results)
}

/// No reassignment is ever in progress on one node.
pub fn list_partition_reassignments(
    _state: &BrokerState,
    _req: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    ListPartitionReassignmentsResponse::default().with_error_message(None)
}

/// A reassignment to this node alone completes at once; any other broker id does not exist.
pub fn alter_partition_reassignments(
    state: &BrokerState,
    req: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let node = state.config.node_id;
    let responses = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = state.topics.get(t.name.0.as_str());
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let i = p.partition_index;
                    let outcome: Result<(), (E, String)> = match (&topic, p.replicas) {
                        (Some(topic), _) if topic.partition(i).is_none() => Err((
                            E::UnknownTopicOrPartition,
                            format!("Unable to find partition {}-{i}.", t.name.0),
                        )),
                        (None, _) => Err((
                            E::UnknownTopicOrPartition,
                            format!("Unable to find partition {}-{i}.", t.name.0),
                        )),
                        (Some(_), None) => Err((
                            E::NoReassignmentInProgress,
                            format!("Partition {}-{i} is not being reassigned.", t.name.0),
                        )),
                        (Some(_), Some(r)) if r.is_empty() => Err((
                            E::InvalidReplicaAssignment,
                            "The manual partition assignment includes an empty replica list."
                                .to_string(),
                        )),
                        (Some(_), Some(r)) => match r.iter().find(|b| b.0 != node) {
                            Some(b) => Err((
                                E::InvalidReplicaAssignment,
                                format!(
                                    "The manual partition assignment includes broker {}, but no such broker is registered.",
                                    b.0
                                ),
                            )),
                            None if r.len() > 1 => Err((
                                E::InvalidReplicaAssignment,
                                "The manual partition assignment includes the broker more than once."
                                    .to_string(),
                            )),
                            None => Ok(()),
                        },
                    };
                    let (err, msg) = match outcome {
                        Ok(()) => (0, None),
                        Err((e, m)) => (code(e), Some(s(&m))),
                    };
                    ReassignablePartitionResponse::default()
                        .with_partition_index(i)
                        .with_error_code(err)
                        .with_error_message(msg)
                })
                .collect();
            ReassignableTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    AlterPartitionReassignmentsResponse::default()
        .with_error_message(None)
        .with_responses(responses)
}

/// A one-voter quorum led by this node, as a combined broker+controller reports it. Vltava keeps
/// no metadata log, so its offsets are 0; the leader is always caught up.
pub fn describe_quorum(state: &BrokerState, req: DescribeQuorumRequest) -> DescribeQuorumResponse {
    let node = state.config.node_id;
    let now = now_ms();
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let ours = t.topic_name.0.as_str() == CLUSTER_METADATA_TOPIC;
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    if !ours || p.partition_index != 0 {
                        return describe_quorum_response::PartitionData::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(code(E::UnknownTopicOrPartition))
                            .with_leader_id(BrokerId(-1));
                    }
                    let voter = ReplicaState::default()
                        .with_replica_id(BrokerId(node))
                        .with_log_end_offset(0)
                        .with_last_fetch_timestamp(now)
                        .with_last_caught_up_timestamp(now);
                    describe_quorum_response::PartitionData::default()
                        .with_error_message(None)
                        .with_partition_index(0)
                        .with_leader_id(BrokerId(node))
                        .with_leader_epoch(QUORUM_EPOCH)
                        .with_high_watermark(0)
                        .with_current_voters(vec![voter])
                })
                .collect();
            describe_quorum_response::TopicData::default()
                .with_topic_name(t.topic_name)
                .with_partitions(partitions)
        })
        .collect();
    let listeners = state
        .listeners
        .iter()
        .map(|l| {
            Listener::default()
                .with_name(s(&l.name))
                .with_host(s(&l.host))
                .with_port(u16::try_from(l.port).unwrap_or(0))
        })
        .collect();
    DescribeQuorumResponse::default()
        .with_error_message(None)
        .with_topics(topics)
        .with_nodes(vec![describe_quorum_response::Node::default()
            .with_node_id(BrokerId(node))
            .with_listeners(listeners)])
}

/// The idempotent producers each partition remembers (their last five batches' state).
pub fn describe_producers(
    state: &BrokerState,
    req: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = state.topics.get(t.name.0.as_str());
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&i| {
                    let Some(p) = topic.as_ref().and_then(|t| t.partition(i)) else {
                        return PartitionResponse::default()
                            .with_partition_index(i)
                            .with_error_code(code(E::UnknownTopicOrPartition));
                    };
                    let log = p.log();
                    let active = log
                        .producers()
                        .iter()
                        .filter_map(|(id, entry)| {
                            let last = entry.batches.back()?;
                            // The open transaction's first offset here (kafka-transactions
                            // find-hanging reads it), -1 when none is open.
                            Some(
                                ProducerState::default()
                                    .with_producer_id(ProducerId(*id))
                                    .with_producer_epoch(i32::from(entry.epoch))
                                    .with_last_sequence(last.last_seq)
                                    .with_last_timestamp(last.timestamp_ms)
                                    .with_coordinator_epoch(entry.coordinator_epoch)
                                    .with_current_txn_start_offset(
                                        entry.txn_first_offset.unwrap_or(-1),
                                    ),
                            )
                        })
                        .collect();
                    PartitionResponse::default()
                        .with_partition_index(i)
                        .with_active_producers(active)
                })
                .collect();
            TopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}

/// The resources that have configs, of the types asked for (v1: none asked = all; v0 asks only
/// for client-metrics resources, of which Vltava has none).
pub async fn list_config_resources(
    state: &BrokerState,
    req: ListConfigResourcesRequest,
    version: i16,
) -> ListConfigResourcesResponse {
    let known = [
        RESOURCE_TOPIC,
        RESOURCE_BROKER,
        RESOURCE_BROKER_LOGGER,
        RESOURCE_CLIENT_METRICS,
        RESOURCE_GROUP,
    ];
    let types: Vec<i8> = if version == 0 {
        vec![RESOURCE_CLIENT_METRICS]
    } else if req.resource_types.is_empty() {
        known.to_vec()
    } else {
        req.resource_types.clone()
    };
    if types.iter().any(|t| !known.contains(t)) {
        return ListConfigResourcesResponse::default().with_error_code(code(E::UnsupportedVersion));
    }
    let mut out = Vec::new();
    let mut push = |name: String, ty: i8| {
        out.push(
            ConfigResource::default()
                .with_resource_name(s(&name))
                .with_resource_type(ty),
        )
    };
    for ty in types {
        match ty {
            RESOURCE_TOPIC => {
                for t in state.topics.all() {
                    push(t.name.clone(), ty);
                }
            }
            RESOURCE_BROKER | RESOURCE_BROKER_LOGGER => push(state.config.node_id.to_string(), ty),
            RESOURCE_GROUP => {
                // The groups the coordinator knows and those with configs (which need not exist).
                let mut ids = super::groups::group_ids(state).await;
                ids.extend(
                    state
                        .group_configs
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .groups()
                        .cloned(),
                );
                ids.sort();
                ids.dedup();
                for g in ids {
                    push(g, ty);
                }
            }
            _ => {}
        }
    }
    ListConfigResourcesResponse::default().with_config_resources(out)
}
