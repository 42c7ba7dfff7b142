//! Metadata, DescribeCluster and FindCoordinator: where things are. A single node leads every
//! partition in epoch 0 and answers for the listener the request arrived on.

use std::sync::Arc;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::describe_topic_partitions_response::{
    self, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, DescribeTopicPartitionsRequest,
    DescribeTopicPartitionsResponse, FindCoordinatorRequest, FindCoordinatorResponse,
    MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::{authorized_operations, code, s, topic_name, LEADER_EPOCH};
use crate::state::{BrokerState, ListenerInfo};
use crate::topics::{validate_topic_name, Topic};

/// The most partitions one DescribeTopicPartitions answer holds (Kafka's
/// `max.request.partition.size.limit` default).
pub const MAX_DESCRIBE_TOPIC_PARTITIONS: i32 = 2000;

fn topic_metadata(t: &Topic, node: i32, authorized_ops: i32) -> MetadataResponseTopic {
    let partitions = (0..t.partitions.len() as i32)
        .map(|p| {
            MetadataResponsePartition::default()
                .with_partition_index(p)
                .with_leader_id(BrokerId(node))
                .with_leader_epoch(LEADER_EPOCH)
                .with_replica_nodes(vec![BrokerId(node)])
                .with_isr_nodes(vec![BrokerId(node)])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(&t.name)))
        .with_topic_id(t.id)
        .with_is_internal(is_internal(&t.name))
        .with_partitions(partitions)
        .with_topic_authorized_operations(authorized_ops)
}

/// Kafka's internal topics (`Topic.isInternal`): the group and transaction coordinators' logs and
/// the share-group state. Other names starting with `__` are ordinary topics.
pub fn is_internal(name: &str) -> bool {
    matches!(
        name,
        "__consumer_offsets" | "__transaction_state" | "__share_group_state"
    )
}

fn topic_error(name: Option<&str>, id: Uuid, err: E) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(name.map(topic_name))
        .with_topic_id(id)
        .with_error_code(code(err))
}

pub fn handle(
    state: &BrokerState,
    listener: &ListenerInfo,
    req: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    let node = state.config.node_id;
    // v0: an empty list means all topics; v1+: null means all, empty means none.
    let requested = match req.topics {
        None => None,
        Some(t) if t.is_empty() && version == 0 => None,
        Some(t) => Some(t),
    };
    let auto_create = version < 4 || req.allow_auto_topic_creation;
    let topic_ops = authorized_operations::answer(
        version >= 8 && req.include_topic_authorized_operations,
        authorized_operations::TOPIC,
    );
    let topics =
        match requested {
            None => state
                .topics
                .all()
                .iter()
                .map(|t| topic_metadata(t, node, topic_ops))
                .collect(),
            Some(mut list) => {
                // Each topic once, however often it is named (Kafka answers from a set too).
                let mut seen = std::collections::HashSet::new();
                list.retain(|rt| seen.insert((rt.name.clone(), rt.topic_id)));
                list
            .into_iter()
            .map(|rt| match rt.name {
                // By id (v10+): a non-zero topic id wins, whatever name (Admin sends "") comes
                // with it, as in Kafka's handleTopicMetadataRequest.
                _ if !rt.topic_id.is_nil() => match state.topics.get_by_id(rt.topic_id) {
                    Some(t) => topic_metadata(&t, node, topic_ops),
                    None => topic_error(None, rt.topic_id, E::UnknownTopicId),
                },
                Some(name) => {
                    let name = name.0.as_str();
                    if let Err(msg) = validate_topic_name(name) {
                        tracing::debug!(%msg, "metadata for an invalid topic name");
                        return topic_error(Some(name), Uuid::nil(), E::InvalidTopicException);
                    }
                    let found: Option<Arc<Topic>> = match state.topics.get(name) {
                        Some(t) => Some(t),
                        None if auto_create => match state.auto_create(name) {
                            Ok(t) => t,
                            Err(e) => {
                                tracing::error!(topic = name, error = %e, "auto-create failed");
                                return topic_error(Some(name), Uuid::nil(), E::KafkaStorageError);
                            }
                        },
                        None => None,
                    };
                    match found {
                        Some(t) => topic_metadata(&t, node, topic_ops),
                        None => topic_error(Some(name), Uuid::nil(), E::UnknownTopicOrPartition),
                    }
                }
                None => match state.topics.get_by_id(rt.topic_id) {
                    Some(t) => topic_metadata(&t, node, topic_ops),
                    None => topic_error(None, rt.topic_id, E::UnknownTopicId),
                },
            })
            .collect()
            }
        };
    let mut resp = MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(node))
            .with_host(s(&listener.host))
            .with_port(listener.port)])
        .with_cluster_id(Some(s(&state.topics.cluster_id)))
        .with_controller_id(BrokerId(node))
        .with_topics(topics);
    resp.cluster_authorized_operations = authorized_operations::answer(
        (8..=10).contains(&version) && req.include_cluster_authorized_operations,
        authorized_operations::CLUSTER,
    );
    resp
}

pub fn describe_cluster(
    state: &BrokerState,
    listener: &ListenerInfo,
    req: DescribeClusterRequest,
    version: i16,
) -> DescribeClusterResponse {
    let node = state.config.node_id;
    // endpoint_type 1 = brokers; 2 = controllers (KIP-919), which a single node also is.
    if version >= 1 && req.endpoint_type != 1 && req.endpoint_type != 2 {
        return DescribeClusterResponse::default()
            .with_error_code(code(E::UnsupportedEndpointType))
            .with_error_message(Some(s(
                "endpoint type must be 1 (brokers) or 2 (controllers)",
            )))
            .with_endpoint_type(req.endpoint_type)
            .with_cluster_id(s(&state.topics.cluster_id));
    }
    DescribeClusterResponse::default()
        .with_endpoint_type(if version >= 1 { req.endpoint_type } else { 1 })
        .with_cluster_id(s(&state.topics.cluster_id))
        .with_controller_id(BrokerId(node))
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(BrokerId(node))
            .with_host(s(&listener.host))
            .with_port(listener.port)])
        .with_cluster_authorized_operations(authorized_operations::answer(
            req.include_cluster_authorized_operations,
            authorized_operations::CLUSTER,
        ))
}

/// Kafka's answer to a DescribeTopicPartitions it refuses: INVALID_REQUEST on every topic named.
pub fn describe_topic_partitions_error(names: Vec<TopicName>) -> DescribeTopicPartitionsResponse {
    let topics = names
        .into_iter()
        .map(|n| {
            DescribeTopicPartitionsResponseTopic::default()
                .with_error_code(code(E::InvalidRequest))
                .with_name(Some(n))
                .with_topic_authorized_operations(authorized_operations::NOT_REQUESTED)
        })
        .collect();
    DescribeTopicPartitionsResponse::default().with_topics(topics)
}

/// DescribeTopicPartitions (KIP-966): topics sorted by name, at most `response_partition_limit`
/// partitions an answer (and never more than [`MAX_DESCRIBE_TOPIC_PARTITIONS`]), the rest behind
/// `next_cursor` — the first topic and partition of the next page, as Kafka's
/// `KRaftMetadataCache.getTopicMetadataForDescribeTopicResponse` gives it. An empty topic list
/// means every topic; named topics that do not exist are answered UNKNOWN_TOPIC_OR_PARTITION
/// (INVALID_TOPIC_EXCEPTION for an illegal name). Topics are never created here.
pub fn describe_topic_partitions(
    state: &BrokerState,
    req: DescribeTopicPartitionsRequest,
) -> Result<DescribeTopicPartitionsResponse, String> {
    let node = state.config.node_id;
    let fetch_all = req.topics.is_empty();
    let cursor_topic = req
        .cursor
        .as_ref()
        .map(|c| c.topic_name.0.to_string())
        .unwrap_or_default();
    let cursor_partition = req.cursor.as_ref().map_or(0, |c| c.partition_index.max(0));
    let mut names: Vec<String> = if fetch_all {
        state.topics.all().iter().map(|t| t.name.clone()).collect()
    } else {
        req.topics.iter().map(|t| t.name.0.to_string()).collect()
    };
    names.retain(|n| n.as_str() >= cursor_topic.as_str());
    names.sort();
    names.dedup();
    if !fetch_all && req.cursor.is_some() && names.binary_search(&cursor_topic).is_err() {
        return Err(format!(
            "DescribeTopicPartitionsRequest topic list should contain the cursor topic: {cursor_topic}"
        ));
    }
    let mut remaining = req
        .response_partition_limit
        .clamp(0, MAX_DESCRIBE_TOPIC_PARTITIONS) as usize;
    let mut resp = DescribeTopicPartitionsResponse::default();
    for name in names {
        if remaining == 0 {
            resp.next_cursor = Some(
                describe_topic_partitions_response::Cursor::default()
                    .with_topic_name(topic_name(&name))
                    .with_partition_index(0),
            );
            break;
        }
        let Some(t) = state.topics.get(&name) else {
            if !fetch_all {
                let err = match validate_topic_name(&name) {
                    Ok(()) => E::UnknownTopicOrPartition,
                    Err(_) => E::InvalidTopicException,
                };
                resp.topics.push(
                    DescribeTopicPartitionsResponseTopic::default()
                        .with_error_code(code(err))
                        .with_name(Some(topic_name(&name)))
                        .with_is_internal(is_internal(&name))
                        .with_topic_authorized_operations(authorized_operations::NOT_REQUESTED),
                );
            }
            continue;
        };
        let first = if name == cursor_topic {
            cursor_partition as usize
        } else {
            0
        };
        let count = t.partitions.len();
        let end = count.min(first.saturating_add(remaining));
        let partitions: Vec<_> = (first..end)
            .map(|p| {
                DescribeTopicPartitionsResponsePartition::default()
                    .with_partition_index(p as i32)
                    .with_leader_id(BrokerId(node))
                    .with_leader_epoch(LEADER_EPOCH)
                    .with_replica_nodes(vec![BrokerId(node)])
                    .with_isr_nodes(vec![BrokerId(node)])
                    .with_eligible_leader_replicas(Some(vec![]))
                    .with_last_known_elr(Some(vec![]))
            })
            .collect();
        remaining -= partitions.len();
        resp.topics.push(
            DescribeTopicPartitionsResponseTopic::default()
                .with_name(Some(topic_name(&t.name)))
                .with_topic_id(t.id)
                .with_is_internal(is_internal(&t.name))
                .with_partitions(partitions)
                .with_topic_authorized_operations(authorized_operations::TOPIC),
        );
        if end < count {
            resp.next_cursor = Some(
                describe_topic_partitions_response::Cursor::default()
                    .with_topic_name(topic_name(&t.name))
                    .with_partition_index(end as i32),
            );
            break;
        }
    }
    Ok(resp)
}

/// This node coordinates every group. Transaction coordinators (key type 1) are not available
/// until transactions are supported.
pub fn find_coordinator(
    state: &BrokerState,
    listener: &ListenerInfo,
    req: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let node = state.config.node_id;
    let answer = |key: StrBytes| -> (i16, Option<StrBytes>, i32, StrBytes, i32, StrBytes) {
        if req.key_type != 0 {
            let msg = s("transactions are not supported by this broker yet");
            return (
                code(E::CoordinatorNotAvailable),
                Some(msg),
                -1,
                s(""),
                -1,
                key,
            );
        }
        if state.health.is_offline() {
            return (
                code(E::CoordinatorNotAvailable),
                Some(s("the data directory is offline after a storage error")),
                -1,
                s(""),
                -1,
                key,
            );
        }
        if key.is_empty() {
            return (
                code(E::InvalidGroupId),
                Some(s("the group id is empty")),
                -1,
                s(""),
                -1,
                key,
            );
        }
        // Kafka creates its offsets topic at the first lookup of a group's coordinator.
        if let Err(e) = crate::group::offsets_topic::ensure_topic(
            &state.topics,
            state.config.offsets_topic_num_partitions,
        ) {
            state.health.fail("creating the offsets topic", &e);
            return (
                code(E::CoordinatorNotAvailable),
                Some(s("the offsets topic could not be created")),
                -1,
                s(""),
                -1,
                key,
            );
        }
        (0, None, node, s(&listener.host), listener.port, key)
    };
    if version < 4 {
        let (err, msg, id, host, port, _) = answer(req.key.clone());
        return FindCoordinatorResponse::default()
            .with_error_code(err)
            .with_error_message(if version >= 1 { msg } else { None })
            .with_node_id(BrokerId(id))
            .with_host(host)
            .with_port(port);
    }
    let coordinators = req
        .coordinator_keys
        .iter()
        .map(|key| {
            let (err, msg, id, host, port, key) = answer(key.clone());
            Coordinator::default()
                .with_key(key)
                .with_node_id(BrokerId(id))
                .with_host(host)
                .with_port(port)
                .with_error_code(err)
                .with_error_message(msg)
        })
        .collect();
    FindCoordinatorResponse::default().with_coordinators(coordinators)
}
