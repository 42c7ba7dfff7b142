//! The classic consumer-group APIs: translation between Kafka requests and the coordinator.

use bytes::Bytes;
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse,
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest, SyncGroupResponse, TopicName,
};

use std::collections::BTreeMap;

use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment as DescribeAssignment, DescribedGroup as CgDescribedGroup, Member as CgMember,
    TopicPartitions as DescribeTopicPartitions,
};
use kafka_protocol::messages::consumer_group_heartbeat_response::{
    Assignment, TopicPartitions as HbTopicPartitions,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::{authorized_operations, code, now_ms, s, topic_name};
use crate::group::consumer::{HeartbeatReq, Parts, TopicInfo};
use crate::group::coordinator::{CommitRequest, CommittedOffset, GroupState, JoinRequest};
use crate::state::BrokerState;

/// Who sent a request: the client id from its header and the peer's address.
pub struct Caller<'a> {
    pub client_id: &'a str,
    pub client_host: &'a str,
}

fn opt(s: &Option<kafka_protocol::protocol::StrBytes>) -> Option<&str> {
    s.as_ref().map(|x| x.as_str())
}

pub async fn join(
    state: &BrokerState,
    caller: &Caller<'_>,
    req: JoinGroupRequest,
    version: i16,
) -> JoinGroupResponse {
    let consumer_group = state
        .groups
        .with(|i| {
            let id = req.group_id.0.as_str();
            i.cgroups.is_active(id) || i.sgroups.is_active(id)
        })
        .await;
    if consumer_group.unwrap_or(false) {
        return JoinGroupResponse::default()
            .with_error_code(code(E::InconsistentGroupProtocol))
            .with_generation_id(-1)
            .with_member_id(req.member_id.clone());
    }
    let session = req.session_timeout_ms;
    let j = JoinRequest {
        group_id: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.as_ref().map(|x| x.to_string()),
        client_id: caller.client_id.to_string(),
        client_host: format!("/{}", caller.client_host),
        session_timeout_ms: session,
        rebalance_timeout_ms: if version >= 1 {
            req.rebalance_timeout_ms
        } else {
            session
        },
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
        require_known_member_id: version >= 4,
        supports_skip_assignment: version >= 9,
    };
    let r = state.groups.join(j, now_ms()).await;
    let mut resp = JoinGroupResponse::default()
        .with_error_code(r.error)
        .with_generation_id(r.generation_id)
        .with_protocol_name(r.protocol_name.as_deref().map(s).or(if version >= 7 {
            None
        } else {
            Some(s(""))
        }))
        .with_leader(s(&r.leader))
        .with_skip_assignment(r.skip_assignment)
        .with_member_id(s(&r.member_id))
        .with_members(
            r.members
                .into_iter()
                .map(|(id, instance, metadata)| {
                    let mut m = JoinGroupResponseMember::default()
                        .with_member_id(s(&id))
                        .with_metadata(metadata);
                    if version >= 5 {
                        m.group_instance_id = instance.as_deref().map(s);
                    }
                    m
                })
                .collect(),
        );
    if version >= 7 {
        resp.protocol_type = r.protocol_type.as_deref().map(s);
    }
    resp
}

pub async fn sync(state: &BrokerState, req: SyncGroupRequest, version: i16) -> SyncGroupResponse {
    let assignments = req
        .assignments
        .iter()
        .map(|a| (a.member_id.to_string(), a.assignment.clone()))
        .collect();
    let r = state
        .groups
        .sync(
            req.group_id.0.as_str(),
            req.generation_id,
            req.member_id.as_str(),
            opt(&req.group_instance_id),
            if version >= 5 {
                opt(&req.protocol_type)
            } else {
                None
            },
            if version >= 5 {
                opt(&req.protocol_name)
            } else {
                None
            },
            assignments,
            now_ms(),
        )
        .await;
    let mut resp = SyncGroupResponse::default()
        .with_error_code(r.error)
        .with_assignment(r.assignment);
    if version >= 5 {
        resp.protocol_type = r.protocol_type.as_deref().map(s);
        resp.protocol_name = r.protocol_name.as_deref().map(s);
    }
    resp
}

pub async fn heartbeat(state: &BrokerState, req: HeartbeatRequest) -> HeartbeatResponse {
    let now = now_ms();
    let r = state
        .groups
        .with(|i| {
            i.coord.heartbeat(
                req.group_id.0.as_str(),
                req.generation_id,
                req.member_id.as_str(),
                opt(&req.group_instance_id),
                now,
            )
        })
        .await;
    HeartbeatResponse::default().with_error_code(r.unwrap_or(code(E::CoordinatorNotAvailable)))
}

pub async fn leave(
    state: &BrokerState,
    req: LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    let members: Vec<(String, Option<String>)> = if version >= 3 {
        req.members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|x| x.to_string()),
                )
            })
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    let now = now_ms();
    let r = state
        .groups
        .with(|i| i.coord.leave(req.group_id.0.as_str(), &members, now))
        .await;
    match r {
        Ok(Ok(codes)) if version >= 3 => LeaveGroupResponse::default().with_members(
            members
                .iter()
                .zip(codes)
                .map(|((id, instance), c)| {
                    MemberResponse::default()
                        .with_member_id(s(id))
                        .with_group_instance_id(instance.as_deref().map(s))
                        .with_error_code(c)
                })
                .collect(),
        ),
        Ok(Ok(codes)) => {
            LeaveGroupResponse::default().with_error_code(codes.first().copied().unwrap_or(0))
        }
        Ok(Err(c)) => LeaveGroupResponse::default().with_error_code(c),
        Err(_) => LeaveGroupResponse::default().with_error_code(code(E::CoordinatorNotAvailable)),
    }
}

fn partition_exists(state: &BrokerState, topic: &str, partition: i32) -> bool {
    state
        .topics
        .get(topic)
        .is_some_and(|t| partition >= 0 && (partition as usize) < t.partitions.len())
}

pub async fn offset_commit(state: &BrokerState, req: OffsetCommitRequest) -> OffsetCommitResponse {
    let now = now_ms();
    let group = req.group_id.0.to_string();
    let max_meta = state
        .groups
        .with(|i| i.coord.config().max_offset_metadata_bytes)
        .await
        .unwrap_or(4096);
    let result = state
        .groups
        .with(|i| {
            let cr = CommitRequest {
                group_id: &group,
                generation_id: req.generation_id_or_member_epoch,
                member_id: req.member_id.as_str(),
                group_instance_id: opt(&req.group_instance_id),
            };
            // A KIP-848 group validates the member epoch; its offsets live with the classic ones.
            let valid = match i
                .cgroups
                .validate_commit(&group, cr.member_id, cr.generation_id)
                .or_else(|| {
                    i.sgroups
                        .validate_commit(&group, cr.member_id, cr.generation_id)
                }) {
                Some(v) => v.and_then(|()| i.coord.ensure_group(&group, now)),
                None => i.coord.validate_commit(&cr, now),
            };
            if let Err(e) = valid {
                return req
                    .topics
                    .iter()
                    .map(|t| t.partitions.iter().map(|_| code(e)).collect::<Vec<_>>())
                    .collect::<Vec<_>>();
            }
            req.topics
                .iter()
                .map(|t| {
                    t.partitions
                        .iter()
                        .map(|p| {
                            if !partition_exists(state, t.name.0.as_str(), p.partition_index) {
                                return code(E::UnknownTopicOrPartition);
                            }
                            if p.committed_metadata
                                .as_ref()
                                .is_some_and(|m| m.len() > max_meta)
                            {
                                return code(E::OffsetMetadataTooLarge);
                            }
                            i.coord.commit_offset(
                                &group,
                                t.name.0.as_str(),
                                p.partition_index,
                                CommittedOffset {
                                    offset: p.committed_offset,
                                    leader_epoch: p.committed_leader_epoch,
                                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                                    commit_ms: now,
                                },
                            );
                            0
                        })
                        .collect()
                })
                .collect()
        })
        .await;
    let codes: Vec<Vec<i16>> = match result {
        Ok(c) => c,
        Err(e) => {
            // A storage failure is answered as Kafka's coordinator answers a failed append to
            // __consumer_offsets (KAFKA_STORAGE_ERROR becomes NOT_COORDINATOR): the client looks
            // for the coordinator again and FindCoordinator says it is not available.
            let err = if state.health.is_offline() {
                E::NotCoordinator
            } else {
                tracing::error!(error = %e, "cannot persist offsets");
                E::CoordinatorNotAvailable
            };
            req.topics
                .iter()
                .map(|t| t.partitions.iter().map(|_| code(err)).collect())
                .collect()
        }
    };
    OffsetCommitResponse::default().with_topics(
        req.topics
            .iter()
            .zip(codes)
            .map(|(t, cs)| {
                OffsetCommitResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(
                        t.partitions
                            .iter()
                            .zip(cs)
                            .map(|(p, c)| {
                                OffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(c)
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}

/// A topic's committed offsets per partition (None: nothing committed).
type TopicOffsets = (TopicName, Vec<(i32, Option<CommittedOffset>)>);

/// (topic, partitions) requested, or every committed partition of the group when `None`.
async fn fetch_group(
    state: &BrokerState,
    group: &str,
    topics: Option<Vec<(TopicName, Vec<i32>)>>,
) -> Vec<TopicOffsets> {
    state
        .groups
        .with(|i| {
            let wanted: Vec<(TopicName, Vec<i32>)> = match topics {
                Some(t) => t,
                None => {
                    let mut by_topic: std::collections::BTreeMap<String, Vec<i32>> =
                        Default::default();
                    if let Some(g) = i.coord.group(group) {
                        for (t, p) in g.offsets.keys() {
                            by_topic.entry(t.clone()).or_default().push(*p);
                        }
                    }
                    by_topic
                        .into_iter()
                        .map(|(t, ps)| (topic_name(&t), ps))
                        .collect()
                }
            };
            wanted
                .into_iter()
                .map(|(t, ps)| {
                    let offsets = ps
                        .iter()
                        .map(|p| (*p, i.coord.fetch_offset(group, t.0.as_str(), *p).cloned()))
                        .collect();
                    (t, offsets)
                })
                .collect()
        })
        .await
        .unwrap_or_default()
}

/// What OffsetFetch reports for a partition: offset, leader epoch (v5+) and metadata, with
/// Kafka's -1 / "" when nothing is committed.
fn committed_view(o: &Option<CommittedOffset>, version: i16) -> (i64, i32, Option<StrBytes>) {
    let epoch = match o {
        Some(o) if version >= 5 => o.leader_epoch,
        _ => -1,
    };
    let metadata = o.as_ref().and_then(|o| o.metadata.as_deref()).unwrap_or("");
    (
        o.as_ref().map_or(-1, |o| o.offset),
        epoch,
        Some(s(metadata)),
    )
}

pub async fn offset_fetch(
    state: &BrokerState,
    req: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    if version >= 8 {
        let mut groups = Vec::with_capacity(req.groups.len());
        for g in req.groups.iter() {
            let topics = g.topics.as_ref().map(|ts| {
                ts.iter()
                    .map(|t| (t.name.clone(), t.partition_indexes.clone()))
                    .collect()
            });
            let result = fetch_group(state, g.group_id.0.as_str(), topics).await;
            let group = OffsetFetchResponseGroup::default()
                .with_group_id(g.group_id.clone())
                .with_topics(
                    result
                        .into_iter()
                        .map(|(t, ps)| {
                            OffsetFetchResponseTopics::default()
                                .with_name(t)
                                .with_partitions(
                                    ps.into_iter()
                                        .map(|(p, o)| {
                                            let (offset, epoch, metadata) =
                                                committed_view(&o, version);
                                            OffsetFetchResponsePartitions::default()
                                                .with_partition_index(p)
                                                .with_committed_offset(offset)
                                                .with_committed_leader_epoch(epoch)
                                                .with_metadata(metadata)
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                );
            groups.push(group);
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let topics = req.topics.as_ref().map(|ts| {
        ts.iter()
            .map(|t| (t.name.clone(), t.partition_indexes.clone()))
            .collect()
    });
    let result = fetch_group(state, req.group_id.0.as_str(), topics).await;
    OffsetFetchResponse::default().with_topics(
        result
            .into_iter()
            .map(|(t, ps)| {
                OffsetFetchResponseTopic::default()
                    .with_name(t)
                    .with_partitions(
                        ps.into_iter()
                            .map(|(p, o)| {
                                let (offset, epoch, metadata) = committed_view(&o, version);
                                OffsetFetchResponsePartition::default()
                                    .with_partition_index(p)
                                    .with_committed_offset(offset)
                                    .with_committed_leader_epoch(epoch)
                                    .with_metadata(metadata)
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}

pub async fn list_groups(
    state: &BrokerState,
    req: ListGroupsRequest,
    version: i16,
) -> ListGroupsResponse {
    let states: Vec<String> = req.states_filter.iter().map(|x| x.to_lowercase()).collect();
    let types: Vec<String> = req.types_filter.iter().map(|x| x.to_lowercase()).collect();
    let groups = state
        .groups
        .with(|i| {
            let consumer: Vec<ListedGroup> = i
                .cgroups
                .groups()
                .filter(|g| !g.members.is_empty())
                .filter(|g| states.is_empty() || states.contains(&g.state_name().to_lowercase()))
                .filter(|_| types.is_empty() || types.iter().any(|t| t == "consumer"))
                .map(|g| {
                    let mut l = ListedGroup::default()
                        .with_group_id(GroupId(s(&g.group_id)))
                        .with_protocol_type(s("consumer"));
                    if version >= 4 {
                        l.group_state = s(g.state_name());
                    }
                    if version >= 5 {
                        l.group_type = s("consumer");
                    }
                    l
                })
                .collect();
            let streams: Vec<ListedGroup> = i
                .sgroups
                .groups()
                .filter(|g| states.is_empty() || states.contains(&g.state_name().to_lowercase()))
                .filter(|_| types.is_empty() || types.iter().any(|t| t == "streams"))
                .map(|g| {
                    // Kafka lists a streams group with protocol type "streams".
                    let mut l = ListedGroup::default()
                        .with_group_id(GroupId(s(&g.group_id)))
                        .with_protocol_type(s("streams"));
                    if version >= 4 {
                        l.group_state = s(g.state_name());
                    }
                    if version >= 5 {
                        l.group_type = s("streams");
                    }
                    l
                })
                .collect();
            let classic: Vec<ListedGroup> = i
                .coord
                .groups()
                .filter(|g| {
                    !i.cgroups.is_active(&g.group_id) && i.sgroups.group(&g.group_id).is_none()
                })
                .filter(|g| states.is_empty() || states.contains(&g.state.name().to_lowercase()))
                .filter(|_| types.is_empty() || types.iter().any(|t| t == "classic"))
                .map(|g| {
                    let mut l = ListedGroup::default()
                        .with_group_id(GroupId(s(&g.group_id)))
                        .with_protocol_type(s(g.protocol_type.as_deref().unwrap_or("")));
                    if version >= 4 {
                        l.group_state = s(g.state.name());
                    }
                    if version >= 5 {
                        l.group_type = s("classic");
                    }
                    l
                })
                .collect();
            classic.into_iter().chain(consumer).chain(streams).collect()
        })
        .await
        .unwrap_or_default();
    ListGroupsResponse::default().with_groups(groups)
}

/// Every group this node coordinates (ListConfigResources' group resources), sorted.
pub async fn group_ids(state: &BrokerState) -> Vec<String> {
    let mut ids: Vec<String> = state
        .groups
        .with(|i| {
            let consumer = i
                .cgroups
                .groups()
                .filter(|g| !g.members.is_empty())
                .map(|g| g.group_id.clone());
            let streams = i.sgroups.groups().map(|g| g.group_id.clone());
            let classic = i
                .coord
                .groups()
                .filter(|g| {
                    !i.cgroups.is_active(&g.group_id) && i.sgroups.group(&g.group_id).is_none()
                })
                .map(|g| g.group_id.clone());
            classic.chain(consumer).chain(streams).collect()
        })
        .await
        .unwrap_or_default();
    ids.sort();
    ids.dedup();
    ids
}

/// A DescribeGroups row for a group this call does not describe: state Dead, and from v6 on
/// GROUP_ID_NOT_FOUND with `message`, as Kafka 4.x answers.
fn dead_group(id: &GroupId, version: i16, message: String) -> DescribedGroup {
    let d = DescribedGroup::default()
        .with_group_id(id.clone())
        .with_group_state(s("Dead"));
    if version >= 6 {
        d.with_error_code(code(E::GroupIdNotFound))
            .with_error_message(Some(s(&message)))
    } else {
        d
    }
}

pub async fn describe_groups(
    state: &BrokerState,
    req: DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    let mut groups = Vec::with_capacity(req.groups.len());
    // Each group once, however often it is named.
    let mut seen = std::collections::HashSet::new();
    for id in req.groups.iter().filter(|g| seen.insert(*g)) {
        let d = state
            .groups
            .with(|i| match i.coord.group(id.0.as_str()) {
                // A consumer-protocol group is not described by DescribeGroups (Kafka 4.x's
                // GroupMetadataManager: "Group X is not a classic group.").
                _ if i.cgroups.is_active(id.0.as_str())
                    || i.sgroups.group(id.0.as_str()).is_some() =>
                {
                    dead_group(
                        id,
                        version,
                        format!("Group {} is not a classic group.", id.0.as_str()),
                    )
                }
                None => dead_group(id, version, format!("Group {} not found.", id.0.as_str())),
                Some(g) => {
                    let protocol = g.protocol_name.clone().unwrap_or_default();
                    let stable = matches!(g.state, GroupState::Stable);
                    DescribedGroup::default()
                        .with_group_id(id.clone())
                        .with_authorized_operations(authorized_operations::answer(
                            version >= 3 && req.include_authorized_operations,
                            authorized_operations::GROUP,
                        ))
                        .with_group_state(s(g.state.name()))
                        .with_protocol_type(s(g.protocol_type.as_deref().unwrap_or("")))
                        .with_protocol_data(s(&protocol))
                        .with_members(
                            g.members
                                .values()
                                .map(|m| {
                                    let mut d = DescribedGroupMember::default()
                                        .with_member_id(s(&m.member_id))
                                        .with_client_id(s(&m.client_id))
                                        .with_client_host(s(&m.client_host))
                                        .with_member_metadata(
                                            m.protocols
                                                .iter()
                                                .find(|(n, _)| *n == protocol)
                                                .map(|(_, b)| b.clone())
                                                .unwrap_or_default(),
                                        )
                                        .with_member_assignment(if stable {
                                            m.assignment.clone()
                                        } else {
                                            Bytes::new()
                                        });
                                    if version >= 4 {
                                        d.group_instance_id = m.group_instance_id.as_deref().map(s);
                                    }
                                    d
                                })
                                .collect(),
                        )
                }
            })
            .await
            .unwrap_or_else(|_| {
                DescribedGroup::default()
                    .with_group_id(id.clone())
                    .with_error_code(code(E::CoordinatorNotAvailable))
            });
        groups.push(d);
    }
    DescribeGroupsResponse::default().with_groups(groups)
}

pub async fn delete_groups(state: &BrokerState, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(req.groups_names.len());
    for g in req.groups_names.iter() {
        let c = state
            .groups
            .with(|i| {
                // A streams group with members is not deleted (Kafka: NON_EMPTY_GROUP); an
                // empty one goes with its offsets.
                match i.sgroups.delete(g.0.as_str()) {
                    Some(Err(e)) => code(e),
                    Some(Ok(())) => match i.coord.delete_group(g.0.as_str()) {
                        c if c == code(E::GroupIdNotFound) => 0,
                        c => c,
                    },
                    None => i.coord.delete_group(g.0.as_str()),
                }
            })
            .await
            .unwrap_or(code(E::CoordinatorNotAvailable));
        results.push(
            DeletableGroupResult::default()
                .with_group_id(g.clone())
                .with_error_code(c),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}

pub async fn offset_delete(state: &BrokerState, req: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let partitions: Vec<(String, i32)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.0.to_string(), p.partition_index))
        })
        .collect();
    let r = state
        .groups
        .with(|i| {
            let group = req.group_id.0.as_str();
            // The source topics of a streams group with members keep their offsets (Kafka's
            // GROUP_SUBSCRIBED_TO_TOPIC); the others are deleted as for any group.
            let subscribed = i.sgroups.subscribed_topics(group).unwrap_or_default();
            let free: Vec<(String, i32)> = partitions
                .iter()
                .filter(|(t, _)| !subscribed.contains(t))
                .cloned()
                .collect();
            let mut deleted = i.coord.delete_offsets(group, &free)?.into_iter();
            Ok(partitions
                .iter()
                .map(|(t, _)| {
                    if subscribed.contains(t) {
                        code(E::GroupSubscribedToTopic)
                    } else {
                        deleted.next().unwrap_or(0)
                    }
                })
                .collect::<Vec<i16>>())
        })
        .await;
    match r {
        Ok(Ok(codes)) => {
            let mut codes = codes.into_iter();
            OffsetDeleteResponse::default().with_topics(
                req.topics
                    .iter()
                    .map(|t| {
                        OffsetDeleteResponseTopic::default()
                            .with_name(t.name.clone())
                            .with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        OffsetDeleteResponsePartition::default()
                                            .with_partition_index(p.partition_index)
                                            .with_error_code(codes.next().unwrap_or(0))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            )
        }
        Ok(Err(c)) => OffsetDeleteResponse::default().with_error_code(c),
        Err(_) => OffsetDeleteResponse::default().with_error_code(code(E::CoordinatorNotAvailable)),
    }
}

fn to_parts(
    tps: &[kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions],
) -> Parts {
    tps.iter()
        .map(|t| (t.topic_id, t.partitions.iter().copied().collect()))
        .collect()
}

/// ConsumerGroupHeartbeat (KIP-848).
pub async fn consumer_heartbeat(
    state: &BrokerState,
    caller: &Caller<'_>,
    req: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    let topics: BTreeMap<String, TopicInfo> = state
        .topics
        .all()
        .iter()
        .map(|t| {
            let info = TopicInfo {
                id: t.id,
                partitions: t.partitions.len() as i32,
            };
            (t.name.clone(), info)
        })
        .collect();
    let group = req.group_id.0.to_string();
    if req
        .subscribed_topic_regex
        .as_ref()
        .is_some_and(|r| !r.is_empty())
    {
        // Refused rather than ignored: the member would otherwise be subscribed to nothing.
        return ConsumerGroupHeartbeatResponse::default()
            .with_error_code(code(E::InvalidRequest))
            .with_error_message(Some(s(
                "regular-expression subscriptions are not supported by this broker yet",
            )))
            .with_member_epoch(-1);
    }
    let hb = HeartbeatReq {
        group_id: group.clone(),
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.as_ref().map(|x| x.to_string()),
        rack_id: req.rack_id.as_ref().map(|x| x.to_string()),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        subscribed: req
            .subscribed_topic_names
            .as_ref()
            .map(|v| v.iter().map(|t| t.0.to_string()).collect()),
        assignor: req.server_assignor.as_ref().map(|x| x.to_string()),
        owned: req.topic_partitions.as_deref().map(to_parts),
        client_id: caller.client_id.to_string(),
        client_host: format!("/{}", caller.client_host),
    };
    let now = now_ms();
    let r = state
        .groups
        .with(|i| {
            if i.coord.group(&group).is_some_and(|g| !g.members.is_empty())
                || i.sgroups.is_active(&group)
            {
                return None;
            }
            Some(i.cgroups.heartbeat(hb, &topics, now))
        })
        .await;
    let r = match r {
        Ok(Some(r)) => r,
        Ok(None) => {
            let msg = format!("Group {group} is not a consumer group.");
            return ConsumerGroupHeartbeatResponse::default()
                .with_error_code(code(E::GroupIdNotFound))
                .with_error_message(Some(s(&msg)))
                .with_member_epoch(-1);
        }
        Err(_) => {
            return ConsumerGroupHeartbeatResponse::default()
                .with_error_code(code(E::CoordinatorNotAvailable))
                .with_member_epoch(-1)
        }
    };
    let assignment = r.assignment.map(|a| {
        Assignment::default().with_topic_partitions(
            a.into_iter()
                .map(|(id, ps)| {
                    HbTopicPartitions::default()
                        .with_topic_id(id)
                        .with_partitions(ps.into_iter().collect())
                })
                .collect(),
        )
    });
    ConsumerGroupHeartbeatResponse::default()
        .with_error_code(r.error)
        .with_error_message(r.message.as_deref().map(s))
        .with_member_id(Some(s(&r.member_id)))
        .with_member_epoch(r.member_epoch)
        .with_heartbeat_interval_ms(r.heartbeat_interval_ms)
        .with_assignment(assignment)
}

/// ConsumerGroupDescribe (KIP-848).
pub async fn consumer_describe(
    state: &BrokerState,
    req: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let names: BTreeMap<uuid::Uuid, String> = state
        .topics
        .all()
        .iter()
        .map(|t| (t.id, t.name.clone()))
        .collect();
    let describe_parts = |p: &Parts| {
        DescribeAssignment::default().with_topic_partitions(
            p.iter()
                .map(|(id, ps)| {
                    DescribeTopicPartitions::default()
                        .with_topic_id(*id)
                        .with_topic_name(topic_name(names.get(id).map_or("", String::as_str)))
                        .with_partitions(ps.iter().copied().collect())
                })
                .collect(),
        )
    };
    let empty = Parts::new();
    let mut groups = Vec::with_capacity(req.group_ids.len());
    for id in req.group_ids.iter() {
        let described = state
            .groups
            .with(|i| {
                match i
                    .cgroups
                    .group(id.0.as_str())
                    .filter(|g| !g.members.is_empty())
                {
                    None => CgDescribedGroup::default()
                        .with_group_id(id.clone())
                        .with_error_code(code(E::GroupIdNotFound))
                        .with_error_message(Some(s(&format!(
                            "Group {} not found.",
                            id.0.as_str()
                        )))),
                    Some(g) => CgDescribedGroup::default()
                        .with_group_id(id.clone())
                        .with_authorized_operations(authorized_operations::answer(
                            req.include_authorized_operations,
                            authorized_operations::GROUP,
                        ))
                        .with_group_state(s(g.state_name()))
                        .with_group_epoch(g.group_epoch)
                        .with_assignment_epoch(g.assignment_epoch)
                        .with_assignor_name(s(&g.assignor_name()))
                        .with_members(
                            g.members
                                .values()
                                .map(|m| {
                                    CgMember::default()
                                        .with_member_id(s(&m.member_id))
                                        .with_instance_id(m.instance_id.as_deref().map(s))
                                        .with_rack_id(m.rack_id.as_deref().map(s))
                                        .with_member_epoch(m.member_epoch)
                                        .with_client_id(s(&m.client_id))
                                        .with_client_host(s(&m.client_host))
                                        .with_subscribed_topic_names(
                                            m.subscribed.iter().map(|t| topic_name(t)).collect(),
                                        )
                                        .with_assignment(describe_parts(&m.assigned))
                                        .with_target_assignment(describe_parts(
                                            g.target.get(&m.member_id).unwrap_or(&empty),
                                        ))
                                })
                                .collect(),
                        ),
                }
            })
            .await;
        groups.push(described.unwrap_or_else(|_| {
            CgDescribedGroup::default()
                .with_group_id(id.clone())
                .with_error_code(code(E::CoordinatorNotAvailable))
        }));
    }
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
