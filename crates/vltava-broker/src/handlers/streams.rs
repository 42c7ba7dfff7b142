//! The KIP-1071 streams group APIs (StreamsGroupHeartbeat, StreamsGroupDescribe) ↔ the
//! streams coordinator (`group::streams`). The heartbeat also creates the group's missing
//! internal topics (changelogs, repartition topics) with the configs the topology gives, as
//! Kafka's `KafkaApis` does with the topics the coordinator asks for; here before the
//! coordinator runs, so the answer already counts them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::streams_group_describe_response::{
    self as dr, DescribedGroup, Member as DescribeMember,
};
use kafka_protocol::messages::streams_group_heartbeat_request::{
    self as hq, TaskIds as ReqTaskIds,
};
use kafka_protocol::messages::streams_group_heartbeat_response::{
    self as hr, EndpointToPartitions, Status,
};
use kafka_protocol::messages::{
    GroupId, StreamsGroupDescribeRequest, StreamsGroupDescribeResponse,
    StreamsGroupHeartbeatRequest, StreamsGroupHeartbeatResponse,
};

use super::groups::Caller;
use super::{authorized_operations, code, now_ms, s, topic_name};
use crate::group::streams::{Endpoint, HeartbeatReq, Tasks};
use crate::group::streams_topology::{CopartitionGroup, NewTopic, Subtopology, TopicDef, Topology};
use crate::state::BrokerState;
use crate::topic_config::TopicConfig;

fn tasks(t: &[ReqTaskIds]) -> Tasks {
    let mut out = Tasks::new();
    for x in t {
        out.entry(x.subtopology_id.to_string())
            .or_default()
            .extend(x.partitions.iter().copied());
    }
    out
}

fn topic_def(t: &hq::TopicInfo) -> TopicDef {
    TopicDef {
        name: t.name.0.to_string(),
        partitions: t.partitions,
        replication_factor: t.replication_factor,
        configs: t
            .topic_configs
            .iter()
            .map(|kv| (kv.key.to_string(), kv.value.to_string()))
            .collect(),
    }
}

fn topology(t: &hq::Topology) -> Result<Topology, String> {
    let mut subtopologies = Vec::with_capacity(t.subtopologies.len());
    for st in &t.subtopologies {
        if !st.source_topic_regex.is_empty() {
            // Refused rather than ignored: the subtopology would read nothing.
            return Err(format!(
                "Subtopology {}: source topic regular expressions are not supported by this broker yet.",
                st.subtopology_id.as_str()
            ));
        }
        let regex_groups = st
            .copartition_groups
            .iter()
            .any(|g| !g.source_topic_regex.is_empty());
        if regex_groups {
            return Err("copartition groups of regular expressions are not supported".into());
        }
        subtopologies.push(Subtopology {
            id: st.subtopology_id.to_string(),
            source_topics: st.source_topics.iter().map(|n| n.0.to_string()).collect(),
            repartition_sink_topics: st
                .repartition_sink_topics
                .iter()
                .map(|n| n.0.to_string())
                .collect(),
            state_changelog_topics: st.state_changelog_topics.iter().map(topic_def).collect(),
            repartition_source_topics: st.repartition_source_topics.iter().map(topic_def).collect(),
            copartition_groups: st
                .copartition_groups
                .iter()
                .map(|g| CopartitionGroup {
                    source_topics: g.source_topics.clone(),
                    repartition_source_topics: g.repartition_source_topics.clone(),
                })
                .collect(),
        });
    }
    Ok(Topology {
        epoch: t.epoch,
        subtopologies,
    })
}

fn partition_counts(state: &BrokerState) -> BTreeMap<String, i32> {
    state
        .topics
        .all()
        .iter()
        .map(|t| (t.name.clone(), t.partitions.len() as i32))
        .collect()
}

/// Creates the internal topics a configured topology lacks (on a blocking thread: a create
/// fsyncs). Failures are logged; the heartbeat then reports MISSING_INTERNAL_TOPICS and the
/// next one tries again.
async fn create_internal_topics(state: &Arc<BrokerState>, topics: Vec<NewTopic>) {
    if topics.is_empty() {
        return;
    }
    let state = Arc::clone(state);
    let done = tokio::task::spawn_blocking(move || {
        for t in topics {
            if t.replication_factor > 1 {
                tracing::warn!(topic = %t.name, rf = t.replication_factor, "internal topic asks for a replication factor this single node cannot give");
                continue;
            }
            let config = match TopicConfig::from_pairs(
                t.configs.iter().map(|(k, v)| (k.as_str(), Some(v.as_str()))),
            ) {
                Ok(c) => c,
                Err(msg) => {
                    tracing::warn!(topic = %t.name, %msg, "internal topic has invalid configs");
                    continue;
                }
            };
            if let Err(msg) = crate::topics::validate_topic_name(&t.name) {
                tracing::warn!(topic = %t.name, %msg, "invalid internal topic name");
                continue;
            }
            if t.partitions < 1 || t.partitions > crate::topics::MAX_PARTITIONS_PER_TOPIC {
                continue;
            }
            match state.topics.create(&t.name, t.partitions, config) {
                Ok(Some(_)) => {
                    tracing::info!(topic = %t.name, partitions = t.partitions, "created streams internal topic")
                }
                Ok(None) => {}
                Err(e) => tracing::error!(topic = %t.name, error = %e, "create internal topic failed"),
            }
        }
    })
    .await;
    if let Err(e) = done {
        tracing::warn!(error = %e, "internal topic creation did not finish");
    }
}

fn error_response(e: E, msg: &str) -> StreamsGroupHeartbeatResponse {
    StreamsGroupHeartbeatResponse::default()
        .with_error_code(code(e))
        .with_error_message(Some(s(msg)))
        .with_member_epoch(-1)
}

fn task_ids(t: &Tasks) -> Vec<hr::TaskIds> {
    t.iter()
        .map(|(sub, ps)| {
            hr::TaskIds::default()
                .with_subtopology_id(s(sub))
                .with_partitions(ps.iter().copied().collect())
        })
        .collect()
}

fn offsets(o: &Option<Vec<hq::TaskOffset>>) -> Option<Vec<(String, i32, i64)>> {
    o.as_ref().map(|v| {
        v.iter()
            .map(|t| (t.subtopology_id.to_string(), t.partition, t.offset))
            .collect()
    })
}

/// StreamsGroupHeartbeat (KIP-1071).
pub async fn heartbeat(
    state: &Arc<BrokerState>,
    caller: &Caller<'_>,
    req: StreamsGroupHeartbeatRequest,
) -> StreamsGroupHeartbeatResponse {
    let group = req.group_id.0.to_string();
    let topology = match req.topology.as_ref().map(topology).transpose() {
        Ok(t) => t,
        Err(msg) => return error_response(E::StreamsInvalidTopology, &msg),
    };
    // The internal topics the group's topology needs that do not exist yet. A joining member's
    // topology counts only where the coordinator will make it the group's: no other member
    // runs the group's one, or it is newer (see `StreamsGroups::heartbeat`).
    let member_id = req.member_id.to_string();
    let (current, others) = state
        .groups
        .with(|i| {
            let others = i
                .sgroups
                .group(&group)
                .map_or(0, |g| g.members.keys().filter(|m| **m != member_id).count());
            (i.sgroups.topology(&group).cloned(), others)
        })
        .await
        .unwrap_or((None, 0));
    let known = match (&topology, current) {
        (Some(t), Some(g)) if others > 0 && t.epoch <= g.epoch => Some(g),
        (Some(t), _) => Some(t.clone()),
        (None, g) => g,
    };
    let mut topics = partition_counts(state);
    if let Some(t) = known.filter(|t| t.validate().is_ok()) {
        let missing = t.configure(&topics).to_create;
        if !missing.is_empty() {
            create_internal_topics(state, missing).await;
            topics = partition_counts(state);
        }
    }
    let hb = HeartbeatReq {
        group_id: group.clone(),
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        endpoint_information_epoch: req.endpoint_information_epoch,
        instance_id: req.instance_id.as_ref().map(|x| x.to_string()),
        rack_id: req.rack_id.as_ref().map(|x| x.to_string()),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        topology,
        active_tasks: req.active_tasks.as_deref().map(tasks),
        standby_tasks: req.standby_tasks.as_deref().map(tasks),
        warmup_tasks: req.warmup_tasks.as_deref().map(tasks),
        process_id: req.process_id.as_ref().map(|x| x.to_string()),
        user_endpoint: req.user_endpoint.as_ref().map(|e| Endpoint {
            host: e.host.to_string(),
            port: e.port,
        }),
        client_tags: req.client_tags.as_ref().map(|t| {
            t.iter()
                .map(|kv| (kv.key.to_string(), kv.value.to_string()))
                .collect()
        }),
        task_offsets: offsets(&req.task_offsets),
        task_end_offsets: offsets(&req.task_end_offsets),
        shutdown_application: req.shutdown_application,
        client_id: caller.client_id.to_string(),
        client_host: format!("/{}", caller.client_host),
    };
    let now = now_ms();
    let r = state
        .groups
        .with(|i| {
            let classic = i.coord.group(&group).is_some_and(|g| !g.members.is_empty());
            if classic || i.cgroups.is_active(&group) {
                return None;
            }
            Some(i.sgroups.heartbeat(hb, &topics, now))
        })
        .await;
    let r = match r {
        Ok(Some(r)) => r,
        Ok(None) => {
            return error_response(
                E::GroupIdNotFound,
                &format!("Group {group} is not a streams group."),
            )
        }
        Err(_) => return error_response(E::CoordinatorNotAvailable, "the group store failed"),
    };
    let mut resp = StreamsGroupHeartbeatResponse::default()
        .with_error_code(r.error)
        .with_error_message(r.message.as_deref().map(s))
        .with_member_id(s(&r.member_id))
        .with_member_epoch(r.member_epoch)
        .with_heartbeat_interval_ms(r.heartbeat_interval_ms)
        .with_acceptable_recovery_lag(r.acceptable_recovery_lag)
        .with_task_offset_interval_ms(r.task_offset_interval_ms)
        .with_endpoint_information_epoch(r.endpoint_information_epoch);
    if r.error != 0 {
        return resp;
    }
    resp.status = Some(
        r.statuses
            .iter()
            .map(|(c, d)| {
                Status::default()
                    .with_status_code(*c)
                    .with_status_detail(s(d))
            })
            .collect(),
    );
    if let Some(a) = &r.assignment {
        resp.active_tasks = Some(task_ids(&a.active));
        resp.standby_tasks = Some(task_ids(&a.standby));
        resp.warmup_tasks = Some(task_ids(&a.warmup));
    }
    resp.partitions_by_user_endpoint = r.partitions_by_endpoint.map(|list| {
        let tps = |m: &BTreeMap<String, BTreeSet<i32>>| {
            m.iter()
                .map(|(t, ps)| {
                    hr::TopicPartition::default()
                        .with_topic(s(t))
                        .with_partitions(ps.iter().copied().collect())
                })
                .collect()
        };
        list.iter()
            .map(|e| {
                EndpointToPartitions::default()
                    .with_user_endpoint(
                        hr::Endpoint::default()
                            .with_host(s(&e.endpoint.host))
                            .with_port(e.endpoint.port),
                    )
                    .with_active_partitions(tps(&e.active))
                    .with_standby_partitions(tps(&e.standby))
            })
            .collect()
    });
    resp
}

fn describe_tasks(t: &Tasks) -> Vec<dr::TaskIds> {
    t.iter()
        .map(|(sub, ps)| {
            dr::TaskIds::default()
                .with_subtopology_id(s(sub))
                .with_partitions(ps.iter().copied().collect())
        })
        .collect()
}

fn describe_assignment(t: &crate::group::streams::TaskSet) -> dr::Assignment {
    dr::Assignment::default()
        .with_active_tasks(describe_tasks(&t.active))
        .with_standby_tasks(describe_tasks(&t.standby))
        .with_warmup_tasks(describe_tasks(&t.warmup))
}

fn describe_topic(t: &TopicDef, partitions: i32) -> dr::TopicInfo {
    dr::TopicInfo::default()
        .with_name(topic_name(&t.name))
        .with_partitions(partitions)
        .with_replication_factor(t.replication_factor)
        .with_topic_configs(
            t.configs
                .iter()
                .map(|(k, v)| dr::KeyValue::default().with_key(s(k)).with_value(s(v)))
                .collect(),
        )
}

fn describe_offsets(o: &[(String, i32, i64)]) -> Vec<dr::TaskOffset> {
    o.iter()
        .map(|(sub, p, off)| {
            dr::TaskOffset::default()
                .with_subtopology_id(s(sub))
                .with_partition(*p)
                .with_offset(*off)
        })
        .collect()
}

/// StreamsGroupDescribe (KIP-1071).
pub async fn describe(
    state: &BrokerState,
    req: StreamsGroupDescribeRequest,
) -> StreamsGroupDescribeResponse {
    let mut groups = Vec::with_capacity(req.group_ids.len());
    for id in req.group_ids.iter() {
        let d = state
            .groups
            .with(|i| describe_one(i, id, req.include_authorized_operations))
            .await;
        groups.push(d.unwrap_or_else(|_| {
            DescribedGroup::default()
                .with_group_id(id.clone())
                .with_error_code(code(E::CoordinatorNotAvailable))
        }));
    }
    StreamsGroupDescribeResponse::default().with_groups(groups)
}

fn describe_one(
    i: &crate::group::service::Inner,
    id: &GroupId,
    include_authorized_operations: bool,
) -> DescribedGroup {
    let not_found = |msg: String| {
        DescribedGroup::default()
            .with_group_id(id.clone())
            .with_error_code(code(E::GroupIdNotFound))
            .with_error_message(Some(s(&msg)))
    };
    let Some(g) = i.sgroups.group(id.0.as_str()) else {
        let known = i.cgroups.is_active(id.0.as_str()) || i.coord.group(id.0.as_str()).is_some();
        return not_found(if known {
            format!("Group {} is not a streams group.", id.0.as_str())
        } else {
            format!("Group {} not found.", id.0.as_str())
        });
    };
    let repartition: BTreeMap<&str, i32> = g
        .configured
        .input_partitions
        .iter()
        .map(|(t, n)| (t.as_str(), *n))
        .collect();
    let topology = g.topology.as_ref().map(|t| {
        dr::Topology::default()
            .with_epoch(t.epoch)
            .with_subtopologies(Some(
                t.subtopologies
                    .iter()
                    .map(|st| {
                        let tasks = g.configured.tasks.get(&st.id).copied().unwrap_or(0);
                        dr::Subtopology::default()
                            .with_subtopology_id(s(&st.id))
                            .with_source_topics(
                                st.source_topics.iter().map(|n| topic_name(n)).collect(),
                            )
                            .with_repartition_sink_topics(
                                st.repartition_sink_topics
                                    .iter()
                                    .map(|n| topic_name(n))
                                    .collect(),
                            )
                            .with_state_changelog_topics(
                                st.state_changelog_topics
                                    .iter()
                                    .map(|c| describe_topic(c, tasks))
                                    .collect(),
                            )
                            .with_repartition_source_topics(
                                st.repartition_source_topics
                                    .iter()
                                    .map(|r| {
                                        let n = repartition.get(r.name.as_str()).copied();
                                        describe_topic(r, n.unwrap_or(r.partitions))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ))
    });
    let empty = crate::group::streams::TaskSet::default();
    DescribedGroup::default()
        .with_group_id(id.clone())
        .with_group_state(s(g.state_name()))
        .with_group_epoch(g.group_epoch)
        .with_assignment_epoch(g.assignment_epoch)
        .with_topology(topology)
        .with_authorized_operations(authorized_operations::answer(
            include_authorized_operations,
            authorized_operations::GROUP,
        ))
        .with_members(
            g.members
                .values()
                .map(|m| {
                    DescribeMember::default()
                        .with_member_id(s(&m.member_id))
                        .with_member_epoch(m.member_epoch)
                        .with_instance_id(m.instance_id.as_deref().map(s))
                        .with_rack_id(m.rack_id.as_deref().map(s))
                        .with_client_id(s(&m.client_id))
                        .with_client_host(s(&m.client_host))
                        .with_topology_epoch(m.topology_epoch)
                        .with_process_id(s(&m.process_id))
                        .with_user_endpoint(m.user_endpoint.as_ref().map(|e| {
                            dr::Endpoint::default()
                                .with_host(s(&e.host))
                                .with_port(e.port)
                        }))
                        .with_client_tags(
                            m.client_tags
                                .iter()
                                .map(|(k, v)| {
                                    dr::KeyValue::default().with_key(s(k)).with_value(s(v))
                                })
                                .collect(),
                        )
                        .with_task_offsets(describe_offsets(&m.task_offsets))
                        .with_task_end_offsets(describe_offsets(&m.task_end_offsets))
                        .with_assignment(describe_assignment(&m.assigned))
                        .with_target_assignment(describe_assignment(
                            g.target.get(&m.member_id).unwrap_or(&empty),
                        ))
                })
                .collect(),
        )
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::messages::{
        streams_group_describe_response as dr, streams_group_heartbeat_request as hq,
        streams_group_heartbeat_response as hr, GroupId, StreamsGroupDescribeRequest,
        StreamsGroupDescribeResponse, StreamsGroupHeartbeatRequest, StreamsGroupHeartbeatResponse,
    };
    use kafka_protocol::protocol::{Decodable, Encodable};

    use super::*;

    fn round_trip<T: Encodable + Decodable + PartialEq + std::fmt::Debug>(m: &T) {
        let mut buf = BytesMut::new();
        m.encode(&mut buf, 0).unwrap();
        assert_eq!(buf.len(), m.compute_size(0).unwrap());
        let mut bytes = buf.freeze();
        let back = T::decode(&mut bytes, 0).unwrap();
        assert!(bytes.is_empty(), "every byte read");
        assert_eq!(&back, m);
        let mut buf = BytesMut::new();
        assert!(m.encode(&mut buf, 1).is_err(), "only version 0");
    }

    fn kv(k: &str, v: &str) -> hq::KeyValue {
        hq::KeyValue::default().with_key(s(k)).with_value(s(v))
    }

    pub fn full_request() -> StreamsGroupHeartbeatRequest {
        let info = |n: &str, p: i32| {
            hq::TopicInfo::default()
                .with_name(topic_name(n))
                .with_partitions(p)
                .with_replication_factor(1)
                .with_topic_configs(vec![kv("cleanup.policy", "compact")])
        };
        let task_ids = |sub: &str| {
            vec![hq::TaskIds::default()
                .with_subtopology_id(s(sub))
                .with_partitions(vec![0, 2])]
        };
        let offset = hq::TaskOffset::default()
            .with_subtopology_id(s("0"))
            .with_partition(1)
            .with_offset(i64::MAX - 1);
        StreamsGroupHeartbeatRequest::default()
            .with_group_id(GroupId(s("app")))
            .with_member_id(s("m-1"))
            .with_member_epoch(7)
            .with_endpoint_information_epoch(3)
            .with_instance_id(Some(s("i")))
            .with_rack_id(None)
            .with_rebalance_timeout_ms(300_000)
            .with_topology(Some(
                hq::Topology::default()
                    .with_epoch(2)
                    .with_subtopologies(vec![hq::Subtopology::default()
                        .with_subtopology_id(s("0"))
                        .with_source_topics(vec![topic_name("in"), topic_name("other")])
                        .with_source_topic_regex(vec![])
                        .with_state_changelog_topics(vec![info("app-s-changelog", 0)])
                        .with_repartition_sink_topics(vec![topic_name("app-r-repartition")])
                        .with_repartition_source_topics(vec![info("app-x-repartition", 4)])
                        .with_copartition_groups(vec![hq::CopartitionGroup::default()
                            .with_source_topics(vec![0, 1])
                            .with_repartition_source_topics(vec![0])])]),
            ))
            .with_active_tasks(Some(task_ids("0")))
            .with_standby_tasks(Some(vec![]))
            .with_warmup_tasks(None)
            .with_process_id(Some(s("p")))
            .with_user_endpoint(Some(
                hq::Endpoint::default().with_host(s("h")).with_port(65_535),
            ))
            .with_client_tags(Some(vec![kv("zone", "a")]))
            .with_task_offsets(Some(vec![offset.clone()]))
            .with_task_end_offsets(Some(vec![offset]))
            .with_shutdown_application(true)
            .with_unknown_tagged_field(9, bytes::Bytes::from_static(b"x"))
    }

    #[test]
    fn messages_round_trip() {
        round_trip(&full_request());
        round_trip(&StreamsGroupHeartbeatRequest::default());
        let tasks = vec![hr::TaskIds::default()
            .with_subtopology_id(s("1"))
            .with_partitions(vec![1])];
        round_trip(
            &StreamsGroupHeartbeatResponse::default()
                .with_error_message(Some(s("e")))
                .with_member_id(s("m"))
                .with_member_epoch(4)
                .with_heartbeat_interval_ms(5_000)
                .with_acceptable_recovery_lag(10_000)
                .with_task_offset_interval_ms(60_000)
                .with_status(Some(vec![hr::Status::default()
                    .with_status_code(3)
                    .with_status_detail(s("missing"))]))
                .with_active_tasks(Some(tasks.clone()))
                .with_standby_tasks(Some(vec![]))
                .with_warmup_tasks(Some(tasks))
                .with_endpoint_information_epoch(2)
                .with_partitions_by_user_endpoint(Some(vec![EndpointToPartitions::default()
                    .with_user_endpoint(hr::Endpoint::default().with_host(s("h")).with_port(1))
                    .with_active_partitions(vec![hr::TopicPartition::default()
                        .with_topic(s("in"))
                        .with_partitions(vec![0, 1])])])),
        );
        round_trip(&StreamsGroupHeartbeatResponse::default());
        round_trip(
            &StreamsGroupDescribeRequest::default()
                .with_group_ids(vec![GroupId(s("a")), GroupId(s("b"))])
                .with_include_authorized_operations(true),
        );
        let member = dr::Member::default()
            .with_member_id(s("m"))
            .with_member_epoch(1)
            .with_instance_id(None)
            .with_rack_id(Some(s("r")))
            .with_client_id(s("c"))
            .with_client_host(s("/127.0.0.1"))
            .with_topology_epoch(0)
            .with_process_id(s("p"))
            .with_user_endpoint(Some(dr::Endpoint::default().with_host(s("h")).with_port(2)))
            .with_client_tags(vec![dr::KeyValue::default()
                .with_key(s("k"))
                .with_value(s("v"))])
            .with_task_offsets(vec![dr::TaskOffset::default().with_offset(5)])
            .with_assignment(dr::Assignment::default().with_active_tasks(
                vec![dr::TaskIds::default()
                    .with_subtopology_id(s("0"))
                    .with_partitions(vec![0])],
            ))
            .with_is_classic(false);
        round_trip(&StreamsGroupDescribeResponse::default().with_groups(vec![
                DescribedGroup::default()
                    .with_group_id(GroupId(s("a")))
                    .with_group_state(s("Stable"))
                    .with_group_epoch(3)
                    .with_assignment_epoch(3)
                    .with_topology(Some(dr::Topology::default().with_epoch(0).with_subtopologies(
                        Some(vec![dr::Subtopology::default()
                            .with_subtopology_id(s("0"))
                            .with_source_topics(vec![topic_name("in")])
                            .with_state_changelog_topics(vec![dr::TopicInfo::default()
                                .with_name(topic_name("c"))
                                .with_partitions(3)])]),
                    )))
                    .with_members(vec![member]),
                DescribedGroup::default()
                    .with_group_id(GroupId(s("b")))
                    .with_error_code(69)
                    .with_error_message(Some(s("Group b not found."))),
            ]));
        assert_eq!(
            DescribedGroup::default().authorized_operations,
            i32::MIN,
            "Kafka's default"
        );
        assert_eq!(
            StreamsGroupHeartbeatRequest::default().rebalance_timeout_ms,
            -1
        );
    }

    #[test]
    fn request_topologies_convert() {
        let t = topology(full_request().topology.as_ref().unwrap()).unwrap();
        assert_eq!(t.epoch, 2);
        let st = &t.subtopologies[0];
        assert_eq!(st.source_topics, ["in", "other"]);
        assert_eq!(st.repartition_source_topics[0].partitions, 4);
        assert_eq!(
            st.state_changelog_topics[0].configs["cleanup.policy"],
            "compact"
        );
        assert_eq!(st.copartition_groups[0].source_topics, [0, 1]);
        let mut regex = full_request();
        regex.topology.as_mut().unwrap().subtopologies[0].source_topic_regex = vec![s("in.*")];
        assert!(topology(regex.topology.as_ref().unwrap()).is_err());
    }
}
