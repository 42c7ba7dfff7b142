//! The KIP-848 consumer group protocol as a state machine (no I/O, time as input): members
//! heartbeat with their epoch and subscription, the coordinator computes a target assignment
//! (uniform or range assignor) and reconciles each member towards it, never giving a partition
//! to one member before the previous owner has revoked it. Semantics follow Kafka's
//! `GroupMetadataManager` / `CurrentAssignmentBuilder`. Every change of a group's epochs,
//! members or assignments is emitted as a [`ConsumerGroupSnapshot`] to persist, so members keep
//! their epochs and partitions across a broker restart.
//!
//! A group exists here while it has members (its committed offsets live in the classic
//! coordinator, which removes them as Kafka's cleanup does), so the tick visits only groups
//! with sessions to time, and a heartbeat that joins nothing leaves nothing behind.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use kafka_protocol::error::ResponseError as E;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Partitions by topic id.
pub type Parts = BTreeMap<Uuid, BTreeSet<i32>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicInfo {
    pub id: Uuid,
    pub partitions: i32,
}

#[derive(Debug, Clone)]
pub struct ConsumerGroupsConfig {
    /// group.consumer.session.timeout.ms
    pub session_timeout_ms: i64,
    /// group.consumer.heartbeat.interval.ms
    pub heartbeat_interval_ms: i32,
    /// group.consumer.max.size
    pub max_group_size: usize,
    /// Groups with members held at once (Vltava's own bound, as the classic coordinator's
    /// `max_groups`): a join that would create one more gets COORDINATOR_NOT_AVAILABLE.
    pub max_groups: usize,
}

impl Default for ConsumerGroupsConfig {
    fn default() -> Self {
        ConsumerGroupsConfig {
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 2_000,
            max_group_size: 1_000,
            max_groups: super::coordinator::DEFAULT_MAX_GROUPS,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub member_epoch: i32,
    previous_epoch: i32,
    rebalance_timeout_ms: i64,
    pub subscribed: BTreeSet<String>,
    assignor: Option<String>,
    /// What the member has been told it owns.
    pub assigned: Parts,
    /// Partitions it must give up; still counted as its own until it reports them gone.
    revoking: Parts,
    revoke_deadline_ms: i64,
    #[serde(skip)]
    last_heartbeat_ms: i64,
    #[serde(skip)]
    last_sent: Option<Parts>,
}

/// The durable state of one consumer-protocol group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerGroupSnapshot {
    pub group_id: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: Vec<CMember>,
    pub target: BTreeMap<String, Parts>,
    /// The subscribed topics' ids and sizes the target was computed from.
    #[serde(default)]
    pub topics: BTreeMap<String, TopicInfo>,
}

#[derive(Debug, Clone, Default)]
pub struct CGroup {
    pub group_id: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, CMember>,
    pub target: BTreeMap<String, Parts>,
    topics: BTreeMap<String, TopicInfo>,
}

impl CGroup {
    /// The server-side assignor the group uses: the first one a member asked for, else uniform
    /// (Kafka's default, `group.consumer.assignors`).
    pub fn assignor_name(&self) -> String {
        self.members
            .values()
            .find_map(|m| m.assignor.clone())
            .unwrap_or_else(|| "uniform".to_string())
    }

    /// Kafka's consumer group states.
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.assignment_epoch < self.group_epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.member_epoch != self.assignment_epoch || !m.revoking.is_empty())
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct HeartbeatReq {
    pub group_id: String,
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub subscribed: Option<Vec<String>>,
    pub assignor: Option<String>,
    pub owned: Option<Parts>,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeartbeatResp {
    pub error: i16,
    pub message: Option<String>,
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    pub assignment: Option<Parts>,
}

#[derive(Default)]
pub struct ConsumerGroups {
    cfg: ConsumerGroupsConfig,
    /// Per-group consumer.session.timeout.ms / consumer.heartbeat.interval.ms (group configs).
    timeouts: BTreeMap<String, crate::group_config::GroupTimeouts>,
    /// Only groups with members.
    groups: BTreeMap<String, CGroup>,
    records: Vec<ConsumerGroupSnapshot>,
    /// Joins refused because `max_groups` groups exist, since the last
    /// [`ConsumerGroups::take_groups_refused`].
    groups_refused: u64,
}

fn count(p: &Parts) -> usize {
    p.values().map(BTreeSet::len).sum()
}

fn minus(a: &Parts, b: &Parts) -> Parts {
    let mut out = Parts::new();
    for (t, ps) in a {
        let rest: BTreeSet<i32> = ps
            .iter()
            .filter(|p| !b.get(t).is_some_and(|s| s.contains(p)))
            .copied()
            .collect();
        if !rest.is_empty() {
            out.insert(*t, rest);
        }
    }
    out
}

fn intersect(a: &Parts, b: &Parts) -> Parts {
    let mut out = Parts::new();
    for (t, ps) in a {
        if let Some(bs) = b.get(t) {
            let both: BTreeSet<i32> = ps.intersection(bs).copied().collect();
            if !both.is_empty() {
                out.insert(*t, both);
            }
        }
    }
    out
}

fn union_into(a: &mut Parts, b: &Parts) {
    for (t, ps) in b {
        a.entry(*t).or_default().extend(ps.iter().copied());
    }
}

/// The target assignment. `uniform` balances partition counts across members subscribed to each
/// partition's topic, keeping a partition with its current owner when that keeps the balance;
/// `range` gives each member a contiguous range of every topic it subscribes to.
fn assign(group: &CGroup, assignor: &str) -> BTreeMap<String, Parts> {
    let mut target: BTreeMap<String, Parts> = group
        .members
        .keys()
        .map(|m| (m.clone(), Parts::new()))
        .collect();
    for (name, info) in &group.topics {
        let subscribers: Vec<&String> = group
            .members
            .values()
            .filter(|m| m.subscribed.contains(name))
            .map(|m| &m.member_id)
            .collect();
        if subscribers.is_empty() || info.partitions <= 0 {
            continue;
        }
        if assignor == "range" {
            let n = subscribers.len() as i32;
            let (per, extra) = (info.partitions / n, info.partitions % n);
            let mut next = 0;
            for (i, m) in subscribers.iter().enumerate() {
                let take = per + i32::from((i as i32) < extra);
                let set: BTreeSet<i32> = (next..next + take).collect();
                next += take;
                if !set.is_empty() {
                    target.entry((*m).clone()).or_default().insert(info.id, set);
                }
            }
            continue;
        }
        let quota = (info.partitions as usize).div_ceil(subscribers.len());
        let mut counts: BTreeMap<&String, usize> = subscribers.iter().map(|m| (*m, 0)).collect();
        let mut unassigned = Vec::new();
        for p in 0..info.partitions {
            let owner = subscribers.iter().find(|m| {
                group.members[**m]
                    .assigned
                    .get(&info.id)
                    .is_some_and(|s| s.contains(&p))
            });
            match owner {
                Some(m) if counts[*m] < quota => {
                    *counts.get_mut(*m).expect("subscriber") += 1;
                    target
                        .entry((*m).clone())
                        .or_default()
                        .entry(info.id)
                        .or_default()
                        .insert(p);
                }
                _ => unassigned.push(p),
            }
        }
        for p in unassigned {
            let m = *counts
                .iter()
                .min_by(|x, y| x.1.cmp(y.1).then(x.0.cmp(y.0)))
                .map(|(id, _)| id)
                .expect("at least one subscriber");
            *counts.get_mut(m).expect("subscriber") += 1;
            target
                .entry(m.clone())
                .or_default()
                .entry(info.id)
                .or_default()
                .insert(p);
        }
    }
    target
}

impl ConsumerGroups {
    pub fn new(cfg: ConsumerGroupsConfig) -> Self {
        ConsumerGroups {
            cfg,
            timeouts: BTreeMap::new(),
            groups: BTreeMap::new(),
            records: Vec::new(),
            groups_refused: 0,
        }
    }
    /// How many joins were refused a new group (`max_groups`) since the last call.
    pub fn take_groups_refused(&mut self) -> u64 {
        std::mem::take(&mut self.groups_refused)
    }
    /// Snapshots of groups whose durable state changed since the last call.
    pub fn take_records(&mut self) -> Vec<ConsumerGroupSnapshot> {
        std::mem::take(&mut self.records)
    }

    fn snapshot(g: &CGroup) -> ConsumerGroupSnapshot {
        ConsumerGroupSnapshot {
            group_id: g.group_id.clone(),
            group_epoch: g.group_epoch,
            assignment_epoch: g.assignment_epoch,
            // Without the volatile fields, so that a plain heartbeat changes nothing durable.
            members: g
                .members
                .values()
                .map(|m| CMember {
                    last_heartbeat_ms: 0,
                    last_sent: None,
                    ..m.clone()
                })
                .collect(),
            target: g.target.clone(),
            topics: g.topics.clone(),
        }
    }

    /// All groups' durable state (for store compaction).
    pub fn snapshots(&self) -> Vec<ConsumerGroupSnapshot> {
        self.groups.values().map(Self::snapshot).collect()
    }

    /// Restores a group at start-up; its members get a fresh session from `now_ms`. A snapshot
    /// without members is the group's end.
    pub fn replay(&mut self, s: ConsumerGroupSnapshot, now_ms: i64) {
        if s.members.is_empty() {
            self.groups.remove(&s.group_id);
            return;
        }
        let members = s
            .members
            .into_iter()
            .map(|mut m| {
                m.last_heartbeat_ms = now_ms;
                m.revoke_deadline_ms = now_ms + m.rebalance_timeout_ms;
                // The member may have missed the last answer: send its assignment again.
                m.last_sent = None;
                (m.member_id.clone(), m)
            })
            .collect();
        self.groups.insert(
            s.group_id.clone(),
            CGroup {
                group_id: s.group_id,
                group_epoch: s.group_epoch,
                assignment_epoch: s.assignment_epoch,
                members,
                target: s.target,
                topics: s.topics,
            },
        );
    }

    pub fn group(&self, id: &str) -> Option<&CGroup> {
        self.groups.get(id)
    }
    pub fn groups(&self) -> impl Iterator<Item = &CGroup> {
        self.groups.values()
    }
    /// Whether `id` is a consumer-protocol group with members.
    pub fn is_active(&self, id: &str) -> bool {
        self.groups.get(id).is_some_and(|g| !g.members.is_empty())
    }
    /// The topics the members of group `id` subscribe to; `None` without members.
    pub fn subscribed_topics(&self, id: &str) -> Option<HashSet<String>> {
        let g = self.groups.get(id).filter(|g| !g.members.is_empty())?;
        Some(
            g.members
                .values()
                .flat_map(|m| m.subscribed.iter().cloned())
                .collect(),
        )
    }

    fn error(e: E, msg: &str, member_id: &str) -> HeartbeatResp {
        HeartbeatResp {
            error: e.code(),
            message: Some(msg.to_string()),
            member_id: member_id.to_string(),
            member_epoch: -1,
            ..Default::default()
        }
    }

    /// ConsumerGroupHeartbeat. `topics` maps every existing topic name to its id and size.
    pub fn heartbeat(
        &mut self,
        req: HeartbeatReq,
        topics: &BTreeMap<String, TopicInfo>,
        now_ms: i64,
    ) -> HeartbeatResp {
        if req.group_id.is_empty() {
            return Self::error(E::InvalidGroupId, "the group id is empty", &req.member_id);
        }
        let interval = self.heartbeat_interval_ms(&req.group_id);
        let max = self.cfg.max_group_size;
        let group_id = req.group_id.clone();
        let before = self.groups.get(&group_id).map(Self::snapshot);
        let is_new = before.is_none();
        let joins = req.member_epoch == 0 && req.subscribed.is_some();
        if is_new && joins && self.groups.len() >= self.cfg.max_groups {
            self.groups_refused += 1;
            return Self::error(
                E::CoordinatorNotAvailable,
                "the broker holds its maximum number of groups",
                &req.member_id,
            );
        }
        let resp = self.heartbeat_inner(req, topics, now_ms, interval, max);
        match self.groups.get(&group_id) {
            Some(g) if g.members.is_empty() => {
                // Its last member left (or a heartbeat that joined nothing made it): the group
                // goes, and only a group the store knows needs the record of its end.
                if !is_new {
                    self.records.push(Self::snapshot(g));
                }
                self.groups.remove(&group_id);
            }
            Some(g) => {
                let after = Self::snapshot(g);
                if before.as_ref() != Some(&after) {
                    self.records.push(after);
                }
            }
            None => {}
        }
        resp
    }

    fn heartbeat_inner(
        &mut self,
        req: HeartbeatReq,
        topics: &BTreeMap<String, TopicInfo>,
        now_ms: i64,
        interval: i32,
        max: usize,
    ) -> HeartbeatResp {
        let g = self
            .groups
            .entry(req.group_id.clone())
            .or_insert_with(|| CGroup {
                group_id: req.group_id.clone(),
                ..Default::default()
            });
        let mut member_id = req.member_id.clone();
        match req.member_epoch {
            0 => {
                let Some(subscribed) = &req.subscribed else {
                    return Self::error(
                        E::InvalidRequest,
                        "SubscribedTopicNames must be set when joining",
                        &member_id,
                    );
                };
                if member_id.is_empty() {
                    member_id = Uuid::new_v4().to_string();
                }
                if !g.members.contains_key(&member_id) && g.members.len() >= max {
                    return Self::error(E::GroupMaxSizeReached, "the group is full", &member_id);
                }
                if let Some(instance) = &req.instance_id {
                    g.members.retain(|id, m| {
                        id == &member_id || m.instance_id.as_ref() != Some(instance)
                    });
                }
                let old = g.members.remove(&member_id);
                g.members.insert(
                    member_id.clone(),
                    CMember {
                        member_id: member_id.clone(),
                        instance_id: req.instance_id.clone(),
                        rack_id: req.rack_id.clone(),
                        client_id: req.client_id.clone(),
                        client_host: req.client_host.clone(),
                        member_epoch: 0,
                        previous_epoch: -1,
                        rebalance_timeout_ms: req.rebalance_timeout_ms.max(0) as i64,
                        subscribed: subscribed.iter().cloned().collect(),
                        assignor: req.assignor.clone(),
                        assigned: Parts::new(),
                        // Whatever a rejoining member still held must be released first.
                        revoking: old.map(|m| m.assigned).unwrap_or_default(),
                        revoke_deadline_ms: now_ms + req.rebalance_timeout_ms.max(0) as i64,
                        last_heartbeat_ms: now_ms,
                        last_sent: None,
                    },
                );
                g.group_epoch += 1;
            }
            -1 | -2 => {
                if g.members.remove(&member_id).is_some() {
                    g.target.remove(&member_id);
                    g.group_epoch += 1;
                }
                return HeartbeatResp {
                    member_id,
                    member_epoch: req.member_epoch,
                    heartbeat_interval_ms: 0,
                    ..Default::default()
                };
            }
            epoch => {
                let Some(m) = g.members.get_mut(&member_id) else {
                    return Self::error(E::UnknownMemberId, "unknown member", &member_id);
                };
                if epoch != m.member_epoch && epoch != m.previous_epoch {
                    return Self::error(
                        E::FencedMemberEpoch,
                        "the member epoch is fenced",
                        &member_id,
                    );
                }
                m.last_heartbeat_ms = now_ms;
                if req.rebalance_timeout_ms > 0 {
                    m.rebalance_timeout_ms = req.rebalance_timeout_ms as i64;
                }
                if let Some(s) = &req.subscribed {
                    let s: BTreeSet<String> = s.iter().cloned().collect();
                    if s != m.subscribed {
                        m.subscribed = s;
                        g.group_epoch += 1;
                    }
                }
                if req.assignor.is_some() {
                    m.assignor = req.assignor.clone();
                }
            }
        }
        // Subscription metadata: the subscribed topics as they exist now.
        let subscribed: BTreeSet<&String> = g
            .members
            .values()
            .flat_map(|m| m.subscribed.iter())
            .collect();
        let metadata: BTreeMap<String, TopicInfo> = subscribed
            .into_iter()
            .filter_map(|t| topics.get(t).map(|i| (t.clone(), *i)))
            .collect();
        if metadata != g.topics {
            g.topics = metadata;
            g.group_epoch += 1;
        }
        if g.assignment_epoch < g.group_epoch {
            let assignor = g.assignor_name();
            g.target = assign(g, &assignor);
            g.assignment_epoch = g.group_epoch;
        }
        Self::reconcile(g, &member_id, req.owned.as_ref(), now_ms);
        let m = g.members.get_mut(&member_id).expect("member exists");
        let changed = m.last_sent.as_ref() != Some(&m.assigned);
        if changed {
            m.last_sent = Some(m.assigned.clone());
        }
        HeartbeatResp {
            error: 0,
            message: None,
            member_id,
            member_epoch: m.member_epoch,
            heartbeat_interval_ms: interval,
            assignment: changed.then(|| m.assigned.clone()),
        }
    }

    fn reconcile(g: &mut CGroup, member_id: &str, owned: Option<&Parts>, now_ms: i64) {
        let target = g.target.get(member_id).cloned().unwrap_or_default();
        // Partitions held (assigned or still revoking) by everyone else.
        let mut others = Parts::new();
        for (id, m) in &g.members {
            if id != member_id {
                union_into(&mut others, &m.assigned);
                union_into(&mut others, &m.revoking);
            }
        }
        let epoch = g.assignment_epoch;
        let m = g.members.get_mut(member_id).expect("member exists");
        if let Some(owned) = owned {
            // The member reports what it still owns: revoked partitions it no longer holds are free.
            m.revoking = intersect(&m.revoking, owned);
        }
        let revoke = minus(&m.assigned, &target);
        if count(&revoke) > 0 {
            union_into(&mut m.revoking, &revoke);
            m.assigned = intersect(&m.assigned, &target);
            m.revoke_deadline_ms = now_ms + m.rebalance_timeout_ms;
        }
        if count(&m.revoking) > 0 {
            // Stay in the current epoch until the revocation is acknowledged.
            return;
        }
        let new = minus(&minus(&target, &m.assigned), &others);
        union_into(&mut m.assigned, &new);
        if m.member_epoch != epoch {
            m.previous_epoch = m.member_epoch;
            m.member_epoch = epoch;
        }
    }

    /// Sets a group's consumer timeouts (its group configs); the defaults where `None`.
    pub fn set_timeouts(&mut self, group_id: &str, t: crate::group_config::GroupTimeouts) {
        if t == Default::default() {
            self.timeouts.remove(group_id);
        } else {
            self.timeouts.insert(group_id.to_string(), t);
        }
    }

    fn heartbeat_interval_ms(&self, group_id: &str) -> i32 {
        self.timeouts
            .get(group_id)
            .and_then(|t| t.heartbeat_interval_ms)
            .unwrap_or(self.cfg.heartbeat_interval_ms)
    }

    /// Expires silent members and members that do not revoke within their rebalance timeout.
    pub fn tick(&mut self, now_ms: i64) {
        let (timeouts, default_session_ms) = (&self.timeouts, self.cfg.session_timeout_ms);
        let mut emptied = Vec::new();
        for g in self.groups.values_mut() {
            let session = timeouts
                .get(&g.group_id)
                .and_then(|t| t.session_timeout_ms)
                .unwrap_or(default_session_ms);
            let before = g.members.len();
            g.members.retain(|_, m| {
                now_ms - m.last_heartbeat_ms < session
                    && (m.revoking.is_empty() || now_ms < m.revoke_deadline_ms)
            });
            if g.members.len() != before {
                g.target.retain(|id, _| g.members.contains_key(id));
                g.group_epoch += 1;
                self.records.push(Self::snapshot(g));
                if g.members.is_empty() {
                    emptied.push(g.group_id.clone());
                }
            }
        }
        for id in emptied {
            self.groups.remove(&id);
        }
    }

    /// OffsetCommit v9+ from a consumer-protocol member: the epoch must be current.
    pub fn validate_commit(
        &self,
        group_id: &str,
        member_id: &str,
        epoch: i32,
    ) -> Option<Result<(), E>> {
        let g = self
            .groups
            .get(group_id)
            .filter(|g| !g.members.is_empty())?;
        if epoch < 0 && member_id.is_empty() {
            return Some(Err(E::UnknownMemberId));
        }
        Some(match g.members.get(member_id) {
            None => Err(E::UnknownMemberId),
            Some(m) if epoch != m.member_epoch && epoch != m.previous_epoch => {
                Err(E::StaleMemberEpoch)
            }
            Some(_) => Ok(()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics(n: i32) -> (Uuid, BTreeMap<String, TopicInfo>) {
        let id = Uuid::new_v4();
        (
            id,
            [("t".to_string(), TopicInfo { id, partitions: n })].into(),
        )
    }

    fn hb(member: &str, epoch: i32, owned: Option<Parts>) -> HeartbeatReq {
        HeartbeatReq {
            group_id: "g".into(),
            member_id: member.into(),
            member_epoch: epoch,
            rebalance_timeout_ms: 10_000,
            subscribed: (epoch == 0).then(|| vec!["t".to_string()]),
            owned,
            ..Default::default()
        }
    }

    fn parts(r: &HeartbeatResp, id: Uuid) -> BTreeSet<i32> {
        r.assignment
            .as_ref()
            .and_then(|a| a.get(&id).cloned())
            .unwrap_or_default()
    }

    #[test]
    fn second_member_gets_partitions_only_after_the_first_revokes() {
        let (id, t) = topics(4);
        let mut c = ConsumerGroups::new(ConsumerGroupsConfig::default());
        let a = c.heartbeat(hb("a", 0, None), &t, 0);
        assert_eq!((a.error, a.member_epoch), (0, 2));
        assert_eq!(parts(&a, id), (0..4).collect());
        let b = c.heartbeat(hb("b", 0, None), &t, 10);
        assert_eq!(
            b.member_epoch, 3,
            "b moves to the new epoch but waits for a's partitions"
        );
        assert!(parts(&b, id).is_empty());
        let a2 = c.heartbeat(hb("a", 2, None), &t, 20);
        assert_eq!(parts(&a2, id).len(), 2, "a is told to keep two");
        assert_eq!(a2.member_epoch, 2, "a stays in its epoch until it revokes");
        let kept: Parts = [(id, parts(&a2, id))].into();
        let a3 = c.heartbeat(hb("a", 2, Some(kept)), &t, 30);
        assert_eq!(a3.member_epoch, 3);
        let b2 = c.heartbeat(hb("b", 3, None), &t, 40);
        assert_eq!(b2.member_epoch, 3);
        let (pa, pb) = (parts(&a2, id), parts(&b2, id));
        assert_eq!(pa.len() + pb.len(), 4);
        assert!(pa.is_disjoint(&pb));
        assert_eq!(c.group("g").unwrap().state_name(), "Stable");
        assert_eq!(
            c.heartbeat(hb("a", 7, None), &t, 50).error,
            E::FencedMemberEpoch.code()
        );
        assert_eq!(
            c.validate_commit("g", "a", 1),
            Some(Err(E::StaleMemberEpoch))
        );
        assert_eq!(c.validate_commit("g", "a", 3), Some(Ok(())));
    }

    #[test]
    fn leaving_and_expiring_members_free_their_partitions() {
        let (id, t) = topics(2);
        let mut c = ConsumerGroups::new(ConsumerGroupsConfig::default());
        c.heartbeat(hb("a", 0, None), &t, 0);
        let b = c.heartbeat(hb("b", 0, None), &t, 0);
        let a = c.heartbeat(hb("a", 2, Some(Parts::new())), &t, 0);
        let _ = (a, b);
        let left = c.heartbeat(hb("a", -1, None), &t, 100);
        assert_eq!(left.member_epoch, -1);
        let b = c.heartbeat(hb("b", 3, None), &t, 200);
        assert_eq!(parts(&b, id), [0, 1].into());
        // b goes silent past the session timeout.
        c.tick(200 + 45_000);
        assert!(c.group("g").is_none_or(|g| g.members.is_empty()));
        assert_eq!(
            c.heartbeat(hb("b", 4, None), &t, 46_000).error,
            E::UnknownMemberId.code()
        );
    }

    #[test]
    fn snapshots_restore_members_epochs_and_assignments() {
        let (id, t) = topics(3);
        let mut c = ConsumerGroups::new(ConsumerGroupsConfig::default());
        let a = c.heartbeat(hb("a", 0, None), &t, 0);
        let records = c.take_records();
        assert!(!records.is_empty(), "a join is persisted");
        let mut d = ConsumerGroups::new(ConsumerGroupsConfig::default());
        for r in records {
            d.replay(r, 1_000);
        }
        let again = d.heartbeat(hb("a", a.member_epoch, None), &t, 1_100);
        assert_eq!((again.error, again.member_epoch), (0, a.member_epoch));
        assert_eq!(
            parts(&again, id),
            [0, 1, 2].into(),
            "the assignment is resent after a restart"
        );
        // A heartbeat that changes nothing durable writes nothing.
        d.take_records();
        d.heartbeat(hb("a", a.member_epoch, None), &t, 1_200);
        assert!(d.take_records().is_empty());
    }

    #[test]
    fn range_assignor_gives_contiguous_ranges() {
        let (id, t) = topics(5);
        let mut c = ConsumerGroups::new(ConsumerGroupsConfig::default());
        let mut r = hb("a", 0, None);
        r.assignor = Some("range".into());
        c.heartbeat(r, &t, 0);
        let mut r = hb("b", 0, None);
        r.assignor = Some("range".into());
        c.heartbeat(r, &t, 0);
        let g = c.group("g").unwrap();
        assert_eq!(g.target["a"][&id], [0, 1, 2].into());
        assert_eq!(g.target["b"][&id], [3, 4].into());
    }

    #[test]
    fn heartbeats_that_join_nothing_leave_no_group() {
        let (_, t) = topics(1);
        let mut c = ConsumerGroups::new(ConsumerGroupsConfig::default());
        for i in 0..1_000 {
            let group_id = format!("g{i}");
            let stale = HeartbeatReq {
                group_id: group_id.clone(),
                ..hb("m", 5, None)
            };
            assert_eq!(c.heartbeat(stale, &t, 0).error, E::UnknownMemberId.code());
            let leave = HeartbeatReq {
                group_id: group_id.clone(),
                ..hb("m", -1, None)
            };
            assert_eq!(c.heartbeat(leave, &t, 0).error, 0);
            let no_subscription = HeartbeatReq {
                group_id,
                subscribed: None,
                ..hb("", 0, None)
            };
            assert_eq!(
                c.heartbeat(no_subscription, &t, 0).error,
                E::InvalidRequest.code()
            );
        }
        c.tick(0);
        assert_eq!(c.groups().count(), 0);
        assert!(c.take_records().is_empty(), "nothing to persist");
    }

    #[test]
    fn a_group_goes_with_its_last_member() {
        let (_, t) = topics(2);
        let mut c = ConsumerGroups::new(ConsumerGroupsConfig::default());
        c.heartbeat(hb("a", 0, None), &t, 0);
        let other = HeartbeatReq {
            group_id: "other".into(),
            ..hb("b", 0, None)
        };
        c.heartbeat(other, &t, 0);
        assert_eq!(
            c.subscribed_topics("g"),
            Some(HashSet::from(["t".to_string()]))
        );
        c.heartbeat(hb("a", -1, None), &t, 100);
        assert!(c.group("g").is_none(), "left by its last member");
        assert_eq!(c.subscribed_topics("g"), None);
        c.tick(45_000);
        assert!(
            c.group("other").is_none(),
            "its last member's session ended"
        );
        assert_eq!(c.groups().count(), 0);
        // A restart does not bring either back.
        let mut d = ConsumerGroups::new(ConsumerGroupsConfig::default());
        for r in c.take_records() {
            d.replay(r, 50_000);
        }
        assert_eq!(d.groups().count(), 0);
    }

    #[test]
    fn joins_past_max_groups_are_refused_retriably() {
        let (_, t) = topics(2);
        let mut c = ConsumerGroups::new(ConsumerGroupsConfig {
            max_groups: 1,
            ..ConsumerGroupsConfig::default()
        });
        assert_eq!(c.heartbeat(hb("a", 0, None), &t, 0).error, 0);
        let full = HeartbeatReq {
            group_id: "second".into(),
            ..hb("b", 0, None)
        };
        let r = c.heartbeat(full.clone(), &t, 0);
        assert_eq!(r.error, E::CoordinatorNotAvailable.code());
        assert_eq!(c.take_groups_refused(), 1);
        assert!(c.group("second").is_none());
        assert_eq!(
            c.heartbeat(hb("b", 0, None), &t, 0).error,
            0,
            "an existing group takes members"
        );
        c.heartbeat(hb("a", -1, None), &t, 10);
        c.heartbeat(hb("b", -1, None), &t, 10);
        assert_eq!(c.heartbeat(full, &t, 20).error, 0, "room again");
    }
}
