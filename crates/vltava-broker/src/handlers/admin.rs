//! CreateTopics, DeleteTopics and CreatePartitions, with Kafka's validation and error codes.

use std::collections::HashSet;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};
use uuid::Uuid;

use super::{code, s};
use crate::state::BrokerState;
use crate::topic_config::{TopicConfig, CONFIG_DEFS};
use crate::topics::{validate_topic_name, MAX_PARTITIONS_PER_TOPIC};

/// Kafka's DescribeConfigs/CreateTopics config sources.
pub const SOURCE_DYNAMIC_TOPIC: i8 = 1;
pub const SOURCE_DEFAULT: i8 = 5;

fn validate_partitions(n: i32) -> Result<(), String> {
    if n < 1 {
        return Err("Number of partitions must be larger than 0.".into());
    }
    if n > MAX_PARTITIONS_PER_TOPIC {
        return Err(format!(
            "Number of partitions {n} exceeds this broker's limit of {MAX_PARTITIONS_PER_TOPIC}."
        ));
    }
    Ok(())
}

fn replica_check(
    state: &BrokerState,
    brokers: &[kafka_protocol::messages::BrokerId],
) -> Result<(), String> {
    if brokers.len() != 1 || brokers[0].0 != state.config.node_id {
        return Err(format!(
            "Replica assignment {:?} names brokers other than the single broker {}",
            brokers.iter().map(|b| b.0).collect::<Vec<_>>(),
            state.config.node_id
        ));
    }
    Ok(())
}

pub fn create_topics(
    state: &BrokerState,
    req: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let mut seen = HashSet::new();
    let duplicates: HashSet<String> = req
        .topics
        .iter()
        .filter(|t| !seen.insert(t.name.0.to_string()))
        .map(|t| t.name.0.to_string())
        .collect();
    let results = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let fail = |err: E, msg: String| {
                CreatableTopicResult::default()
                    .with_name(t.name.clone())
                    .with_error_code(code(err))
                    .with_error_message(Some(s(&msg)))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1)
            };
            if duplicates.contains(&name) {
                return fail(E::InvalidRequest, format!("Create topics request from client contains multiple entries for topic {name}"));
            }
            if let Err(msg) = validate_topic_name(&name) {
                return fail(E::InvalidTopicException, msg);
            }
            if state.topics.get(&name).is_some() {
                return fail(E::TopicAlreadyExists, format!("Topic '{name}' already exists."));
            }
            let partitions = if !t.assignments.is_empty() {
                if t.num_partitions != -1 || t.replication_factor != -1 {
                    return fail(E::InvalidRequest, "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.".into());
                }
                for a in &t.assignments {
                    if let Err(msg) = replica_check(state, &a.broker_ids) {
                        return fail(E::InvalidReplicaAssignment, msg);
                    }
                }
                t.assignments.len() as i32
            } else if t.num_partitions == -1 {
                state.config.default_partitions
            } else {
                t.num_partitions
            };
            if let Err(msg) = validate_partitions(partitions) {
                return fail(E::InvalidPartitions, msg);
            }
            if t.replication_factor != -1 && t.replication_factor != 1 {
                let msg = if t.replication_factor < 1 {
                    "Replication factor must be larger than 0.".to_string()
                } else {
                    format!("Unable to replicate the partition {} time(s): The target replication factor of {} cannot be reached because only 1 broker(s) are registered.", t.replication_factor, t.replication_factor)
                };
                return fail(E::InvalidReplicationFactor, msg);
            }
            let config = match TopicConfig::from_pairs(
                t.configs.iter().map(|c| (c.name.as_str(), c.value.as_deref())),
            ) {
                Ok(c) => c,
                Err(msg) => return fail(E::InvalidConfig, msg),
            };
            let mut id = Uuid::nil();
            if !req.validate_only {
                match state.topics.create(&name, partitions, config.clone()) {
                    Ok(Some(topic)) => {
                        tracing::info!(topic = %name, partitions, "created topic");
                        id = topic.id;
                    }
                    Ok(None) => return fail(E::TopicAlreadyExists, format!("Topic '{name}' already exists.")),
                    Err(e) => {
                        tracing::error!(topic = %name, error = %e, "create topic failed");
                        return fail(E::KafkaStorageError, format!("cannot create topic: {e}"));
                    }
                }
            }
            // Kafka answers success with a null error message (ApiError.NONE), not "".
            let mut r = CreatableTopicResult::default()
                .with_name(t.name.clone())
                .with_error_message(None)
                .with_num_partitions(partitions)
                .with_replication_factor(1);
            if version >= 7 {
                r.topic_id = id;
            }
            if version >= 5 {
                r.configs = Some(
                    CONFIG_DEFS
                        .iter()
                        .map(|d| {
                            CreatableTopicConfigs::default()
                                .with_name(s(d.name))
                                .with_value(Some(s(config.get(d.name))))
                                .with_config_source(if config.is_default(d.name) { SOURCE_DEFAULT } else { SOURCE_DYNAMIC_TOPIC })
                        })
                        .collect(),
                );
            }
            r
        })
        .collect();
    CreateTopicsResponse::default().with_topics(results)
}

pub fn delete_topics(
    state: &BrokerState,
    req: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    // v0–5 name topics in `topic_names`; v6 in `topics`, by name or by id.
    let targets: Vec<(Option<TopicName>, Uuid)> = if version >= 6 {
        req.topics
            .into_iter()
            .map(|t| (t.name, t.topic_id))
            .collect()
    } else {
        req.topic_names
            .into_iter()
            .map(|n| (Some(n), Uuid::nil()))
            .collect()
    };
    let responses = targets
        .into_iter()
        .map(|(name, id)| {
            let topic = match &name {
                Some(n) => state.topics.get(n.0.as_str()),
                None => state.topics.get_by_id(id),
            };
            let mut r = DeletableTopicResult::default().with_name(name.clone());
            if version >= 6 {
                r.topic_id = topic.as_ref().map_or(id, |t| t.id);
            }
            let Some(topic) = topic else {
                let err = if name.is_none() {
                    E::UnknownTopicId
                } else {
                    E::UnknownTopicOrPartition
                };
                r.error_code = code(err);
                if version >= 5 {
                    r.error_message = Some(s("This server does not host this topic."));
                }
                return r;
            };
            if topic.name == crate::group::offsets_topic::TOPIC {
                // The group coordinator writes its view there for as long as the broker runs
                // (Kafka's own tools refuse to delete an internal topic too).
                r.error_code = code(E::InvalidRequest);
                if version >= 5 {
                    r.error_message = Some(s(
                        "Topic __consumer_offsets is an internal topic and cannot be deleted",
                    ));
                }
                return r;
            }
            match state.topics.delete(&topic.name) {
                Ok(_) => tracing::info!(topic = %topic.name, "deleted topic"),
                Err(e) => {
                    tracing::error!(topic = %topic.name, error = %e, "delete topic failed");
                    r.error_code = code(E::KafkaStorageError);
                }
            }
            if version >= 6 && r.name.is_none() {
                r.name = Some(super::topic_name(&topic.name));
            }
            r
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

pub fn create_partitions(
    state: &BrokerState,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let results = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let r = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            let fail = |err: E, msg: String| r.clone().with_error_code(code(err)).with_error_message(Some(s(&msg)));
            let Some(topic) = state.topics.get(&name) else {
                return fail(E::UnknownTopicOrPartition, format!("The topic '{name}' does not exist."));
            };
            let current = topic.partitions.len() as i32;
            if t.count <= current {
                return fail(E::InvalidPartitions, format!("Topic currently has {current} partitions, which is higher than the requested {}.", t.count));
            }
            if let Err(msg) = validate_partitions(t.count) {
                return fail(E::InvalidPartitions, msg);
            }
            if let Some(assignments) = &t.assignments {
                if assignments.len() as i32 != t.count - current {
                    return fail(E::InvalidReplicaAssignment, format!("Increasing the number of partitions by {} but {} assignments provided.", t.count - current, assignments.len()));
                }
                for a in assignments {
                    if let Err(msg) = replica_check(state, &a.broker_ids) {
                        return fail(E::InvalidReplicaAssignment, msg);
                    }
                }
            }
            if req.validate_only {
                return r;
            }
            match state.topics.add_partitions(&name, t.count) {
                Ok(true) => {
                    tracing::info!(topic = %name, partitions = t.count, "added partitions");
                    r
                }
                Ok(false) => fail(E::UnknownTopicOrPartition, format!("The topic '{name}' does not exist.")),
                Err(e) => fail(E::KafkaStorageError, format!("cannot add partitions: {e}")),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}
