//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics and groups (and a
//! read-only view of the broker's own settings).

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest,
    AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::admin::{SOURCE_DEFAULT, SOURCE_DYNAMIC_TOPIC};
use super::{code, s};
use crate::group_config::{self, GROUP_CONFIG_DEFS};
use crate::state::BrokerState;
use crate::topic_config::{self, ConfigDef, ConfigType, TopicConfig, CONFIG_DEFS};

pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;
pub const RESOURCE_GROUP: i8 = 32;
const SOURCE_STATIC_BROKER: i8 = 4;
/// DescribeConfigs' GROUP_CONFIG source: a group's own override.
const SOURCE_GROUP: i8 = 8;

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

fn wanted(keys: &Option<Vec<StrBytes>>, name: &str) -> bool {
    keys.as_ref()
        .is_none_or(|k| k.is_empty() || k.iter().any(|x| x.as_str() == name))
}

fn broker_entries(state: &BrokerState) -> Vec<(String, String, ConfigType)> {
    let c = &state.config;
    let listeners = c
        .listeners
        .iter()
        .map(|l| format!("{}://{}", l.name, l.bind))
        .collect::<Vec<_>>()
        .join(",");
    let advertised = state
        .listeners
        .iter()
        .map(|l| format!("{}://{}:{}", l.name, l.host, l.port))
        .collect::<Vec<_>>()
        .join(",");
    let mut v = vec![
        (
            "node.id".to_string(),
            c.node_id.to_string(),
            ConfigType::Int,
        ),
        (
            "broker.id".to_string(),
            c.node_id.to_string(),
            ConfigType::Int,
        ),
        ("listeners".to_string(), listeners, ConfigType::String),
        (
            "advertised.listeners".to_string(),
            advertised,
            ConfigType::String,
        ),
        (
            "log.dirs".to_string(),
            c.data_dir.display().to_string(),
            ConfigType::String,
        ),
        (
            "num.partitions".to_string(),
            c.default_partitions.to_string(),
            ConfigType::Int,
        ),
        (
            "auto.create.topics.enable".to_string(),
            c.auto_create_topics.to_string(),
            ConfigType::String,
        ),
        (
            "socket.request.max.bytes".to_string(),
            c.max_request_bytes.to_string(),
            ConfigType::Int,
        ),
        (
            "log.retention.check.interval.ms".to_string(),
            c.retention_check_interval_ms.to_string(),
            ConfigType::Long,
        ),
        // Kafka lists retention in hours too (log.retention.ms, when set, takes precedence).
        (
            "log.retention.hours".to_string(),
            "168".to_string(),
            ConfigType::Int,
        ),
        (
            "default.replication.factor".to_string(),
            "1".to_string(),
            ConfigType::Int,
        ),
    ];
    for d in CONFIG_DEFS.iter().filter(|d| !d.broker_synonym.is_empty()) {
        v.push((
            d.broker_synonym.to_string(),
            d.default.to_string(),
            d.config_type,
        ));
    }
    v
}

/// One described topic or group config: its value, where it came from (`set_by`: the source of
/// an override, `None` for the default), its synonyms (the override, then the broker-level
/// default; configs without a broker-level counterpart, such as the throttled-replica lists, have
/// no default synonym, as in Kafka), its type and documentation.
fn entry(
    d: &ConfigDef,
    value: &str,
    set_by: Option<i8>,
    detail: Detail,
) -> DescribeConfigsResourceResult {
    let mut e = DescribeConfigsResourceResult::default()
        .with_name(s(d.name))
        .with_value(Some(s(value)))
        .with_config_source(set_by.unwrap_or(SOURCE_DEFAULT));
    if detail.synonyms {
        let mut syn = Vec::new();
        if let Some(source) = set_by {
            syn.push(
                DescribeConfigsSynonym::default()
                    .with_name(s(d.name))
                    .with_value(Some(s(value)))
                    .with_source(source),
            );
        }
        if !d.broker_synonym.is_empty() {
            syn.push(
                DescribeConfigsSynonym::default()
                    .with_name(s(d.broker_synonym))
                    .with_value(Some(s(d.default)))
                    .with_source(SOURCE_DEFAULT),
            );
        }
        e.synonyms = syn;
    }
    if detail.version >= 3 {
        e.config_type = d.config_type as i8;
        if detail.documentation {
            e.documentation = Some(s(d.doc));
        }
    }
    e
}

/// What a DescribeConfigs request asks to be shown of each config.
#[derive(Clone, Copy)]
struct Detail {
    synonyms: bool,
    documentation: bool,
    version: i16,
}

pub fn describe(
    state: &BrokerState,
    req: DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let detail = Detail {
        synonyms: req.include_synonyms,
        documentation: req.include_documentation,
        version,
    };
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let base = DescribeConfigsResult::default()
                .with_error_message(None)
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            match r.resource_type {
                RESOURCE_TOPIC => {
                    let Some(topic) = state.topics.get(r.resource_name.as_str()) else {
                        return base
                            .with_error_code(code(E::UnknownTopicOrPartition))
                            .with_error_message(Some(s(&format!(
                                "Topic '{}' does not exist.",
                                r.resource_name.as_str()
                            ))));
                    };
                    let cfg = &topic.config;
                    let configs = CONFIG_DEFS
                        .iter()
                        .filter(|d| wanted(&r.configuration_keys, d.name))
                        .map(|d| {
                            let dynamic = !cfg.is_default(d.name);
                            let set_by = dynamic.then_some(SOURCE_DYNAMIC_TOPIC);
                            entry(d, cfg.get(d.name), set_by, detail)
                        })
                        .collect();
                    base.with_configs(configs)
                }
                RESOURCE_BROKER => {
                    let name = r.resource_name.as_str();
                    if !name.is_empty() && name != state.config.node_id.to_string() {
                        return base
                            .with_error_code(code(E::InvalidRequest))
                            .with_error_message(Some(s(&format!(
                                "Broker id {name} is not this broker ({})",
                                state.config.node_id
                            ))));
                    }
                    let configs = broker_entries(state)
                        .into_iter()
                        .filter(|(k, _, _)| wanted(&r.configuration_keys, k))
                        .map(|(k, v, t)| {
                            let mut e = DescribeConfigsResourceResult::default()
                                .with_name(s(&k))
                                .with_value(Some(s(&v)))
                                .with_read_only(true)
                                .with_config_source(SOURCE_STATIC_BROKER);
                            if version >= 3 {
                                e.config_type = t as i8;
                            }
                            e
                        })
                        .collect();
                    base.with_configs(configs)
                }
                RESOURCE_GROUP => {
                    let group = r.resource_name.as_str();
                    if group.is_empty() {
                        return base
                            .with_error_code(code(E::InvalidGroupId))
                            .with_error_message(Some(s("the group id is empty")));
                    }
                    let configs = state
                        .group_configs
                        .lock()
                        .unwrap_or_else(|e| e.into_inner());
                    let overrides = configs.overrides(group);
                    let entries = GROUP_CONFIG_DEFS
                        .iter()
                        .filter(|d| wanted(&r.configuration_keys, d.name))
                        .map(|d| {
                            let set = overrides.and_then(|o| o.get(d.name));
                            let value = set.map_or(d.default, String::as_str);
                            entry(d, value, set.map(|_| SOURCE_GROUP), detail)
                        })
                        .collect();
                    base.with_configs(entries)
                }
                other => base
                    .with_error_code(code(E::InvalidRequest))
                    .with_error_message(Some(s(&format!(
                        "Resource type {other} is not supported"
                    )))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// IncrementalAlterConfigs' APPEND (`append`: each item of `value` not yet in the list is added
/// at its end) or SUBTRACT (each is removed) on a comma-separated list config.
fn append_or_subtract(current: &str, value: &str, append: bool) -> String {
    let mut items: Vec<&str> = current
        .split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .collect();
    for v in value.split(',').map(str::trim).filter(|x| !x.is_empty()) {
        if !append {
            items.retain(|i| *i != v);
        } else if !items.contains(&v) {
            items.push(v);
        }
    }
    items.join(",")
}

/// IncrementalAlterConfigs on a group: its overrides validated as Kafka validates them, made
/// durable, then handed to the consumer-protocol coordinator.
fn alter_group(
    state: &BrokerState,
    group: &str,
    configs: &[kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig],
    validate_only: bool,
) -> Result<(), (E, String)> {
    let mut store = state
        .group_configs
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let mut values: Vec<(String, Option<String>)> = Vec::with_capacity(configs.len());
    for c in configs {
        let name = c.name.as_str();
        let value = c.value.as_deref().unwrap_or_default().trim();
        let change = match c.config_operation {
            OP_SET => Some(value.to_string()),
            OP_DELETE => None,
            OP_APPEND | OP_SUBTRACT => {
                let d = group_config::def(name).ok_or_else(|| {
                    (
                        E::InvalidConfig,
                        format!("Unknown group config name: {name}"),
                    )
                })?;
                if d.config_type != ConfigType::List {
                    return Err((
                        E::InvalidConfig,
                        format!(
                            "Config value append/subtract is not allowed for config key: {name}"
                        ),
                    ));
                }
                let current = store
                    .overrides(group)
                    .and_then(|o| o.get(name).cloned())
                    .unwrap_or_else(|| d.default.to_string());
                Some(append_or_subtract(
                    &current,
                    value,
                    c.config_operation == OP_APPEND,
                ))
            }
            op => return Err((E::InvalidRequest, format!("Unknown config operation {op}"))),
        };
        values.push((name.to_string(), change));
    }
    let changes: Vec<group_config::Change<'_>> = values
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_deref()))
        .collect();
    let bounds = group_config::SessionBounds {
        min_ms: i64::from(state.config.group_min_session_timeout_ms),
        max_ms: i64::from(
            crate::group::coordinator::CoordinatorConfig::default().max_session_timeout_ms,
        ),
    };
    let timeouts = store
        .apply(group, &changes, bounds, validate_only)
        .map_err(|e| match e {
            group_config::ConfigError::InvalidConfig(m) => (E::InvalidConfig, m),
            group_config::ConfigError::InvalidRequest(m) => (E::InvalidRequest, m),
            group_config::ConfigError::Storage(io) => {
                state.health.fail("write the group configs", &io);
                (
                    E::KafkaStorageError,
                    format!("cannot persist the group config: {io}"),
                )
            }
        })?;
    if !validate_only {
        tracing::info!(group, "altered group config");
        state
            .groups
            .set_group_timeouts(group, timeouts)
            .and_then(|()| {
                state
                    .groups
                    .set_streams_overrides(group, store.streams_overrides(group))
            })
            .map_err(|e| (E::CoordinatorNotAvailable, e.to_string()))?;
    }
    Ok(())
}

/// Applies `change` to a topic's config after validating the result; `Err((code, message))`.
fn alter_topic(
    state: &BrokerState,
    name: &str,
    validate_only: bool,
    change: impl FnOnce(&TopicConfig) -> Result<TopicConfig, String>,
) -> Result<(), (E, String)> {
    let topic = state.topics.get(name).ok_or_else(|| {
        (
            E::UnknownTopicOrPartition,
            format!("Topic '{name}' does not exist."),
        )
    })?;
    let new = change(&topic.config).map_err(|m| (E::InvalidConfig, m))?;
    if validate_only {
        return Ok(());
    }
    match state.topics.set_config(name, new) {
        Ok(true) => {
            tracing::info!(topic = name, "altered topic config");
            Ok(())
        }
        Ok(false) => Err((
            E::UnknownTopicOrPartition,
            format!("Topic '{name}' does not exist."),
        )),
        Err(e) => Err((E::KafkaStorageError, format!("cannot persist config: {e}"))),
    }
}

/// A broker resource names this broker, or is empty (the cluster-wide default).
fn broker_name_check(state: &BrokerState, name: &str) -> Result<(), (E, String)> {
    if name.is_empty() || name == state.config.node_id.to_string() {
        Ok(())
    } else {
        Err((
            E::InvalidRequest,
            format!(
                "Broker id {name} is not this broker ({})",
                state.config.node_id
            ),
        ))
    }
}

fn not_topic(resource_type: i8) -> (E, String) {
    if resource_type == RESOURCE_BROKER {
        (
            E::InvalidRequest,
            "broker configs are set when Vltava starts (vltava serve flags) and cannot be altered"
                .into(),
        )
    } else {
        (
            E::InvalidRequest,
            format!("Resource type {resource_type} is not supported"),
        )
    }
}

pub fn alter(state: &BrokerState, req: AlterConfigsRequest) -> AlterConfigsResponse {
    let responses = req
        .resources
        .into_iter()
        .map(|r| {
            let result = if r.resource_type == RESOURCE_TOPIC {
                alter_topic(state, r.resource_name.as_str(), req.validate_only, |_| {
                    // Legacy AlterConfigs replaces the whole set of overrides.
                    TopicConfig::from_pairs(
                        r.configs
                            .iter()
                            .map(|c| (c.name.as_str(), c.value.as_deref())),
                    )
                })
            } else {
                Err(not_topic(r.resource_type))
            };
            let mut resp = alter_configs_response::AlterConfigsResourceResponse::default()
                .with_error_message(None)
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name);
            if let Err((e, m)) = result {
                resp.error_code = code(e);
                resp.error_message = Some(s(&m));
            }
            resp
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

pub fn incremental_alter(
    state: &BrokerState,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let responses = req
        .resources
        .into_iter()
        .map(|r| {
            let result = if r.resource_type == RESOURCE_TOPIC {
                alter_topic(state, r.resource_name.as_str(), req.validate_only, |old| {
                    let mut overrides = old.overrides.clone();
                    for c in &r.configs {
                        let name = c.name.as_str();
                        let d = topic_config::def(name).ok_or_else(|| format!("Unknown topic config name: {name}"))?;
                        let value = c.value.as_deref().unwrap_or_default().trim();
                        match c.config_operation {
                            OP_SET => {
                                topic_config::validate(name, Some(value))?;
                                overrides.insert(name.to_string(), value.to_string());
                            }
                            OP_DELETE => {
                                overrides.remove(name);
                            }
                            OP_APPEND | OP_SUBTRACT => {
                                if d.config_type != ConfigType::List {
                                    return Err(format!("Config value append/subtract is not allowed for config key: {name}"));
                                }
                                let current = old.get(name).to_string();
                                let joined = append_or_subtract(&current, value, c.config_operation == OP_APPEND);
                                topic_config::validate(name, Some(&joined))?;
                                overrides.insert(name.to_string(), joined);
                            }
                            op => return Err(format!("Unknown config operation {op}")),
                        }
                    }
                    Ok(TopicConfig { overrides })
                })
            } else if r.resource_type == RESOURCE_GROUP {
                alter_group(state, r.resource_name.as_str(), &r.configs, req.validate_only)
            } else if r.resource_type == RESOURCE_BROKER
                && r.configs.iter().all(|c| c.config_operation == OP_DELETE)
            {
                // Vltava's broker configs are all static: there is no dynamic override to delete,
                // which Kafka answers with success (kafka-reassign-partitions --verify deletes
                // its throttles this way).
                broker_name_check(state, r.resource_name.as_str())
            } else {
                Err(not_topic(r.resource_type))
            };
            let mut resp = incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_error_message(None)
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name);
            if let Err((e, m)) = result {
                resp.error_code = code(e);
                resp.error_message = Some(s(&m));
            }
            resp
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
