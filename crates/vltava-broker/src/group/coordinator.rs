//! The classic consumer-group coordinator as a deterministic state machine: no I/O, no clock.
//! Every call takes `now_ms`; requests that must wait (JoinGroup until the rebalance completes,
//! SyncGroup until the leader assigns) get a [`Ticket`] and are completed later through
//! [`Coordinator::take_completions`]. Changes that must be durable come out of
//! [`Coordinator::take_records`]. Semantics follow Kafka's `ClassicGroup` and
//! `GroupMetadataManager` (states, error codes, member-id-required, static membership).
//!
//! Cost of the clock: the tick visits only *live* groups (members, members told
//! MEMBER_ID_REQUIRED, or a rebalance in progress). Every other group sits in a deadline index
//! (`idle`) keyed by the earliest time the cleanup (offsets.retention.check.interval.ms) could
//! remove it or one of its offsets, as Kafka's `cleanupGroupMetadata` does: an Empty group
//! without offsets goes at the next cleanup, one with offsets when they have all expired.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use bytes::Bytes;
use kafka_protocol::error::ResponseError as E;
use serde::{Deserialize, Serialize};

pub type Ticket = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl GroupState {
    /// The names Kafka's DescribeGroups and ListGroups use.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// group.min.session.timeout.ms
    pub min_session_timeout_ms: i32,
    /// group.max.session.timeout.ms
    pub max_session_timeout_ms: i32,
    /// group.initial.rebalance.delay.ms
    pub initial_rebalance_delay_ms: i64,
    /// group.max.size
    pub max_group_size: usize,
    /// offsets.retention.minutes, in ms: how long an empty group's offsets are kept.
    pub offsets_retention_ms: i64,
    /// offsets.retention.check.interval.ms: how often empty groups and expired offsets are
    /// removed.
    pub offsets_retention_check_interval_ms: i64,
    /// offset.metadata.max.bytes
    pub max_offset_metadata_bytes: usize,
    /// Vltava's own bound (Kafka has none): groups held at once. A JoinGroup or OffsetCommit that
    /// would create one more is answered COORDINATOR_NOT_AVAILABLE, which clients retry.
    pub max_groups: usize,
}

/// Default of [`CoordinatorConfig::max_groups`] (and of the KIP-848 groups' own bound): an idle
/// group with one committed offset takes about a kilobyte, so some 100 MB at the bound.
pub const DEFAULT_MAX_GROUPS: usize = 100_000;

/// The `idle` key of a group that the next cleanup looks at, whenever it runs.
const AT_NEXT_CLEANUP: i64 = i64::MIN;

/// What the cleanup must know of a group's KIP-848 side, whose membership lives in
/// `ConsumerGroups`: the topics its members subscribe to (`None`: no members). Offsets of those
/// topics never expire, as in Kafka.
pub type Kip848Subscriptions<'a> = &'a dyn Fn(&str) -> Option<HashSet<String>>;

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            min_session_timeout_ms: 1_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 0,
            max_group_size: 1_000,
            offsets_retention_ms: 7 * 24 * 3600 * 1000,
            offsets_retention_check_interval_ms: 600_000,
            max_offset_metadata_bytes: 4096,
            max_groups: DEFAULT_MAX_GROUPS,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    /// (protocol name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    #[serde(skip)]
    pub last_heartbeat_ms: i64,
    #[serde(skip)]
    pub(super) join_ticket: Option<Ticket>,
    #[serde(skip)]
    pub(super) sync_ticket: Option<Ticket>,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub commit_ms: i64,
}

#[derive(Debug, Clone)]
pub struct Group {
    pub group_id: String,
    pub state: GroupState,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// Members told MEMBER_ID_REQUIRED, with the deadline to come back (session timeout).
    pending_members: HashMap<String, i64>,
    /// When the current PreparingRebalance ends even if not every member has rejoined.
    rebalance_deadline_ms: i64,
    pub offsets: BTreeMap<(String, i32), CommittedOffset>,
    /// Since when the group has had no members (offset expiration counts from here; Kafka's
    /// `currentStateTimestamp`).
    empty_since_ms: i64,
    /// The group's entry in [`Coordinator`]'s `idle` index, when it is not live.
    idle_due_ms: Option<i64>,
    /// Whether a record of it was ever queued or replayed: only then does its removal need one.
    in_store: bool,
}

impl Group {
    fn new(group_id: &str, now_ms: i64) -> Group {
        Group {
            group_id: group_id.to_string(),
            state: GroupState::Empty,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            pending_members: HashMap::new(),
            rebalance_deadline_ms: 0,
            offsets: BTreeMap::new(),
            empty_since_ms: now_ms,
            idle_due_ms: None,
            in_store: false,
        }
    }

    /// Whether the tick has anything to time in this group: sessions, pending members or a
    /// rebalance. Every other group is idle and waits in the cleanup's index.
    fn is_live(&self) -> bool {
        !self.members.is_empty()
            || !self.pending_members.is_empty()
            || self.state != GroupState::Empty
    }

    /// The record that restores the group's membership and generation.
    pub fn metadata_record(&self) -> StoreRecord {
        StoreRecord::Metadata {
            group: self.group_id.clone(),
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone(),
            members: self.members.values().cloned().collect(),
            empty_since_ms: (self.state == GroupState::Empty).then_some(self.empty_since_ms),
        }
    }

    /// Kafka's `offsetExpirationCondition`: the time each offset's retention counts from, and
    /// the topics whose offsets do not expire; `None` when no offset of the group expires.
    fn expiration(
        &self,
        kip848_subscribed: Option<HashSet<String>>,
    ) -> Option<(ExpireFrom, HashSet<String>)> {
        if let Some(subscribed) = kip848_subscribed {
            return Some((ExpireFrom::Commit, subscribed));
        }
        match (self.protocol_type.as_deref(), self.state) {
            // A standalone consumer's (or an admin's) commits, or a KIP-848 group's with no
            // members left.
            (None, _) => Some((ExpireFrom::Commit, HashSet::new())),
            (Some(_), GroupState::Empty) => {
                Some((ExpireFrom::EmptySince(self.empty_since_ms), HashSet::new()))
            }
            (Some("consumer"), GroupState::Stable) => self
                .subscribed_topics()
                .map(|topics| (ExpireFrom::Commit, topics)),
            _ => None,
        }
    }

    fn static_member(&self, instance_id: &str) -> Option<&Member> {
        self.members
            .values()
            .find(|m| m.group_instance_id.as_deref() == Some(instance_id))
    }

    /// The protocol every member supports that most members prefer (Kafka's vote).
    fn select_protocol(&self) -> Option<String> {
        let mut candidates: Option<HashSet<&str>> = None;
        for m in self.members.values() {
            let names: HashSet<&str> = m.protocols.iter().map(|(n, _)| n.as_str()).collect();
            candidates = Some(match candidates {
                None => names,
                Some(c) => c.intersection(&names).copied().collect(),
            });
        }
        let candidates = candidates?;
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some((n, _)) = m
                .protocols
                .iter()
                .find(|(n, _)| candidates.contains(n.as_str()))
            {
                *votes.entry(n.as_str()).or_default() += 1;
            }
        }
        votes
            .into_iter()
            .max_by_key(|(_, v)| *v)
            .map(|(n, _)| n.to_string())
    }

    fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocols.is_empty();
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        // Some protocol must be supported by every current member as well.
        protocols.iter().any(|(n, _)| {
            self.members
                .values()
                .all(|m| m.protocols.iter().any(|(mn, _)| mn == n))
        })
    }

    pub fn subscribed_topics(&self) -> Option<HashSet<String>> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = HashSet::new();
        for m in self.members.values() {
            topics.extend(super::consumer_protocol::subscribed_topics(
                &m.metadata_for(protocol),
            )?);
        }
        Some(topics)
    }
}

/// Where an offset's retention counts from.
#[derive(Debug, Clone, Copy)]
enum ExpireFrom {
    Commit,
    EmptySince(i64),
}

impl ExpireFrom {
    fn expires_at_ms(self, o: &CommittedOffset, retention_ms: i64) -> i64 {
        let from = match self {
            ExpireFrom::Commit => o.commit_ms,
            ExpireFrom::EmptySince(t) => t,
        };
        from.saturating_add(retention_ms)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: an unknown member must first obtain a member id (KIP-394).
    pub require_known_member_id: bool,
    /// JoinGroup v9+: a rejoining static leader may be told to skip the assignment (KIP-814).
    pub supports_skip_assignment: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JoinResult {
    pub error: i16,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// (member id, group instance id, metadata): only for the leader.
    pub members: Vec<(String, Option<String>, Bytes)>,
    /// The leader must not compute a new assignment: the group is Stable and keeps it (KIP-814).
    pub skip_assignment: bool,
}

impl JoinResult {
    fn error(e: E, member_id: &str) -> JoinResult {
        JoinResult {
            error: e.code(),
            generation_id: -1,
            member_id: member_id.to_string(),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncResult {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    fn error(e: E) -> SyncResult {
        SyncResult {
            error: e.code(),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply<T> {
    Now(T),
    Later(Ticket),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    Join(Ticket, JoinResult),
    Sync(Ticket, SyncResult),
}

/// A change to persist, in order, before answering the request that caused it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoreRecord {
    Offset {
        group: String,
        topic: String,
        partition: i32,
        value: Option<CommittedOffset>,
    },
    Metadata {
        group: String,
        generation_id: i32,
        protocol_type: Option<String>,
        protocol_name: Option<String>,
        leader: Option<String>,
        members: Vec<Member>,
        /// Since when the group has had no members, so that offset retention survives a
        /// restart (absent in records of older versions: the replay's time is taken).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        empty_since_ms: Option<i64>,
    },
    DeleteGroup {
        group: String,
    },
    /// A KIP-848 group's membership, epochs and assignments.
    ConsumerGroup(super::consumer::ConsumerGroupSnapshot),
    /// A KIP-1071 streams group's topology, membership, epochs and assignments.
    StreamsGroup(super::streams::StreamsGroupSnapshot),
}

pub struct Coordinator {
    cfg: CoordinatorConfig,
    groups: BTreeMap<String, Group>,
    /// Groups for which [`Group::is_live`] holds: the only ones the tick visits.
    live: BTreeSet<String>,
    /// Every other group, by the earliest time (ms) the cleanup may remove it or some of its
    /// offsets. An entry may be early (a later commit only delays expiry), never late.
    idle: BTreeSet<(i64, String)>,
    /// When the next cleanup runs (0: at the first tick).
    next_cleanup_ms: i64,
    /// Requests refused because `max_groups` groups exist, since the last
    /// [`Coordinator::take_groups_refused`].
    groups_refused: u64,
    /// Groups looked at by ticks and cleanups (tests count the work with it).
    #[cfg(test)]
    visited: usize,
    next_ticket: Ticket,
    completions: Vec<Completion>,
    records: Vec<StoreRecord>,
}

pub struct CommitRequest<'a> {
    pub group_id: &'a str,
    pub generation_id: i32,
    pub member_id: &'a str,
    pub group_instance_id: Option<&'a str>,
}

impl Coordinator {
    pub fn new(cfg: CoordinatorConfig) -> Coordinator {
        Coordinator {
            cfg,
            groups: BTreeMap::new(),
            live: BTreeSet::new(),
            idle: BTreeSet::new(),
            next_cleanup_ms: 0,
            groups_refused: 0,
            #[cfg(test)]
            visited: 0,
            next_ticket: 1,
            completions: Vec::new(),
            records: Vec::new(),
        }
    }

    pub fn config(&self) -> &CoordinatorConfig {
        &self.cfg
    }
    pub fn group(&self, id: &str) -> Option<&Group> {
        self.groups.get(id)
    }
    pub fn groups(&self) -> impl Iterator<Item = &Group> {
        self.groups.values()
    }
    pub fn take_completions(&mut self) -> Vec<Completion> {
        std::mem::take(&mut self.completions)
    }
    pub fn take_records(&mut self) -> Vec<StoreRecord> {
        std::mem::take(&mut self.records)
    }
    /// How many requests were refused a new group (`max_groups`) since the last call.
    pub fn take_groups_refused(&mut self) -> u64 {
        std::mem::take(&mut self.groups_refused)
    }
    /// Groups the tick visits (members, pending members or a rebalance).
    pub fn live_group_count(&self) -> usize {
        self.live.len()
    }

    /// Whether `group_id` exists or there is room for it; counts the refusal otherwise.
    fn admit(&mut self, group_id: &str) -> bool {
        if self.groups.contains_key(group_id) || self.groups.len() < self.cfg.max_groups {
            return true;
        }
        self.groups_refused += 1;
        false
    }

    /// Puts the group in the index its state calls for: `live`, or `idle` due at the next
    /// cleanup when it just became idle (or lost its last offset).
    fn reindex(&mut self, group_id: &str) {
        let Some(g) = self.groups.get_mut(group_id) else {
            debug_assert!(!self.live.contains(group_id), "a removed group is not live");
            return;
        };
        if g.is_live() {
            if let Some(due) = g.idle_due_ms.take() {
                self.idle.remove(&(due, group_id.to_string()));
            }
            if !self.live.contains(group_id) {
                self.live.insert(group_id.to_string());
            }
            return;
        }
        self.live.remove(group_id);
        let keep = match g.idle_due_ms {
            Some(due) => due == AT_NEXT_CLEANUP || !g.offsets.is_empty(),
            None => false,
        };
        if keep {
            return;
        }
        if let Some(due) = g.idle_due_ms.replace(AT_NEXT_CLEANUP) {
            self.idle.remove(&(due, group_id.to_string()));
        }
        self.idle.insert((AT_NEXT_CLEANUP, group_id.to_string()));
    }

    /// Removes a group and its index entries, with a record if the store knows it.
    fn remove_group(&mut self, group_id: &str) {
        let Some(g) = self.groups.remove(group_id) else {
            return;
        };
        self.live.remove(group_id);
        if let Some(due) = g.idle_due_ms {
            self.idle.remove(&(due, g.group_id.clone()));
        }
        if g.in_store {
            // Its offsets' tombstones first, as Kafka writes them to `__consumer_offsets`
            // (the view shows them; replaying them before the deletion changes nothing).
            for (topic, partition) in g.offsets.into_keys() {
                self.records.push(StoreRecord::Offset {
                    group: g.group_id.clone(),
                    topic,
                    partition,
                    value: None,
                });
            }
            self.records
                .push(StoreRecord::DeleteGroup { group: g.group_id });
        }
    }

    /// Rebuilds state from persisted records (at start-up). Restored members get a fresh
    /// session: they must heartbeat within their session timeout from `now_ms`.
    pub fn replay(&mut self, record: StoreRecord, now_ms: i64) {
        let group = match &record {
            StoreRecord::Offset { group, .. }
            | StoreRecord::Metadata { group, .. }
            | StoreRecord::DeleteGroup { group } => group.clone(),
            // Replayed into the consumer groups by the service.
            StoreRecord::ConsumerGroup(_) | StoreRecord::StreamsGroup(_) => return,
        };
        self.replay_one(record, now_ms);
        if let Some(g) = self.groups.get_mut(&group) {
            g.in_store = true;
        }
        self.reindex(&group);
    }

    fn replay_one(&mut self, record: StoreRecord, now_ms: i64) {
        match record {
            StoreRecord::Offset {
                group,
                topic,
                partition,
                value,
            } => {
                let g = self
                    .groups
                    .entry(group.clone())
                    .or_insert_with(|| Group::new(&group, now_ms));
                match value {
                    Some(v) => g.offsets.insert((topic, partition), v),
                    None => g.offsets.remove(&(topic, partition)),
                };
            }
            StoreRecord::Metadata {
                group,
                generation_id,
                protocol_type,
                protocol_name,
                leader,
                members,
                empty_since_ms,
            } => {
                let g = self
                    .groups
                    .entry(group.clone())
                    .or_insert_with(|| Group::new(&group, now_ms));
                g.generation_id = generation_id;
                g.protocol_type = protocol_type;
                g.protocol_name = protocol_name;
                g.leader = leader;
                g.members = members
                    .into_iter()
                    .map(|mut m| {
                        m.last_heartbeat_ms = now_ms;
                        (m.member_id.clone(), m)
                    })
                    .collect();
                g.state = if g.members.is_empty() {
                    GroupState::Empty
                } else {
                    GroupState::Stable
                };
                g.empty_since_ms = empty_since_ms.unwrap_or(now_ms);
            }
            StoreRecord::DeleteGroup { group } => {
                if let Some(g) = self.groups.get_mut(&group) {
                    // Removed without a record of its own: this one is already in the store.
                    g.in_store = false;
                }
                self.remove_group(&group);
            }
            StoreRecord::ConsumerGroup(_) | StoreRecord::StreamsGroup(_) => {}
        }
    }

    fn ticket(&mut self) -> Ticket {
        let t = self.next_ticket;
        self.next_ticket += 1;
        t
    }

    fn new_member_id(client_id: &str) -> String {
        format!("{client_id}-{}", uuid::Uuid::new_v4())
    }

    pub fn join(&mut self, req: JoinRequest, now_ms: i64) -> Reply<JoinResult> {
        let group_id = req.group_id.clone();
        let r = self.join_group(req, now_ms);
        self.reindex(&group_id);
        r
    }

    fn join_group(&mut self, req: JoinRequest, now_ms: i64) -> Reply<JoinResult> {
        if req.group_id.is_empty() {
            return Reply::Now(JoinResult::error(E::InvalidGroupId, &req.member_id));
        }
        if req.session_timeout_ms < self.cfg.min_session_timeout_ms
            || req.session_timeout_ms > self.cfg.max_session_timeout_ms
        {
            return Reply::Now(JoinResult::error(E::InvalidSessionTimeout, &req.member_id));
        }
        if !self.admit(&req.group_id) {
            return Reply::Now(JoinResult::error(
                E::CoordinatorNotAvailable,
                &req.member_id,
            ));
        }
        let g = self
            .groups
            .entry(req.group_id.clone())
            .or_insert_with(|| Group::new(&req.group_id, now_ms));
        if !g.supports(&req.protocol_type, &req.protocols) {
            return Reply::Now(JoinResult::error(
                E::InconsistentGroupProtocol,
                &req.member_id,
            ));
        }
        if g.members.is_empty() {
            g.protocol_type = Some(req.protocol_type.clone());
        }
        if req.member_id.is_empty() {
            return self.join_unknown_member(req, now_ms);
        }
        let g = self.groups.get_mut(&req.group_id).expect("group exists");
        let pending = g.pending_members.remove(&req.member_id).is_some();
        if !pending && !g.members.contains_key(&req.member_id) {
            return Reply::Now(JoinResult::error(E::UnknownMemberId, &req.member_id));
        }
        if let Some(instance) = &req.group_instance_id {
            if let Some(m) = g.static_member(instance) {
                if m.member_id != req.member_id {
                    return Reply::Now(JoinResult::error(E::FencedInstanceId, &req.member_id));
                }
            }
        }
        if pending {
            let member = self.new_member(&req, req.member_id.clone(), now_ms);
            return self.add_member_and_rebalance(&req.group_id, member, now_ms);
        }
        self.join_known_member(req, now_ms)
    }

    fn new_member(&self, req: &JoinRequest, member_id: String, now_ms: i64) -> Member {
        Member {
            member_id,
            group_instance_id: req.group_instance_id.clone(),
            client_id: req.client_id.clone(),
            client_host: req.client_host.clone(),
            session_timeout_ms: req.session_timeout_ms,
            rebalance_timeout_ms: req.rebalance_timeout_ms.max(req.session_timeout_ms),
            protocols: req.protocols.clone(),
            assignment: Bytes::new(),
            last_heartbeat_ms: now_ms,
            join_ticket: None,
            sync_ticket: None,
        }
    }

    fn join_unknown_member(&mut self, req: JoinRequest, now_ms: i64) -> Reply<JoinResult> {
        let member_id = Self::new_member_id(&req.client_id);
        let max = self.cfg.max_group_size;
        let g = self.groups.get_mut(&req.group_id).expect("group exists");
        if g.members.len() + g.pending_members.len() >= max {
            return Reply::Now(JoinResult::error(E::GroupMaxSizeReached, ""));
        }
        if let Some(instance) = req.group_instance_id.clone() {
            if let Some(old) = g.static_member(&instance).cloned() {
                return self.replace_static_member(req, old, member_id, now_ms);
            }
        } else if req.require_known_member_id {
            g.pending_members
                .insert(member_id.clone(), now_ms + req.session_timeout_ms as i64);
            return Reply::Now(JoinResult::error(E::MemberIdRequired, &member_id));
        }
        let member = self.new_member(&req, member_id, now_ms);
        self.add_member_and_rebalance(&req.group_id, member, now_ms)
    }

    /// A static member came back with a new member id: it takes the old member's place. In a
    /// Stable group whose selected protocol it does not change, nothing is rebalanced (KIP-345),
    /// leader or follower, as Kafka's `updateStaticMemberThenRebalanceOrCompleteJoin`: the member
    /// keeps its assignment; a leader on JoinGroup v9+ gets the members and `skip_assignment`
    /// (KIP-814), an older leader is answered as a follower (the old leader id), so that it syncs
    /// instead of reassigning. Otherwise the group rebalances.
    fn replace_static_member(
        &mut self,
        req: JoinRequest,
        old: Member,
        member_id: String,
        now_ms: i64,
    ) -> Reply<JoinResult> {
        let mut member = self.new_member(&req, member_id.clone(), now_ms);
        member.assignment = old.assignment.clone();
        let g = self.groups.get_mut(&req.group_id).expect("group exists");
        let old_ticket = old.join_ticket;
        g.members.remove(&old.member_id);
        let old_leader = g.leader.clone().unwrap_or_default();
        let was_leader = old_leader == old.member_id;
        if let Some(t) = old_ticket {
            self.completions.push(Completion::Join(
                t,
                JoinResult::error(E::FencedInstanceId, &old.member_id),
            ));
        }
        let g = self.groups.get_mut(&req.group_id).expect("group exists");
        if was_leader {
            g.leader = Some(member_id.clone());
        }
        if g.state == GroupState::Stable {
            g.members.insert(member_id.clone(), member);
            if g.select_protocol() == g.protocol_name {
                self.persist_metadata(&req.group_id);
                let g = &self.groups[&req.group_id];
                let skip = was_leader && req.supports_skip_assignment;
                let protocol = g.protocol_name.clone().unwrap_or_default();
                let members = if skip {
                    g.members
                        .values()
                        .map(|m| {
                            (
                                m.member_id.clone(),
                                m.group_instance_id.clone(),
                                m.metadata_for(&protocol),
                            )
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                return Reply::Now(JoinResult {
                    error: 0,
                    generation_id: g.generation_id,
                    protocol_type: g.protocol_type.clone(),
                    protocol_name: g.protocol_name.clone(),
                    leader: if skip || !was_leader {
                        g.leader.clone().unwrap_or_default()
                    } else {
                        old_leader
                    },
                    member_id,
                    members,
                    skip_assignment: skip,
                });
            }
            // The selected protocol changes: everyone rejoins.
            let member = g.members.remove(&member_id).expect("just inserted");
            return self.add_member_and_rebalance(&req.group_id, member, now_ms);
        }
        self.add_member_and_rebalance(&req.group_id, member, now_ms)
    }

    fn add_member_and_rebalance(
        &mut self,
        group_id: &str,
        mut member: Member,
        now_ms: i64,
    ) -> Reply<JoinResult> {
        let ticket = self.ticket();
        member.join_ticket = Some(ticket);
        let g = self.groups.get_mut(group_id).expect("group exists");
        let member_id = member.member_id.clone();
        g.members.insert(member_id, member);
        self.prepare_rebalance(group_id, now_ms);
        self.maybe_complete_join(group_id, now_ms);
        Reply::Later(ticket)
    }

    fn join_known_member(&mut self, req: JoinRequest, now_ms: i64) -> Reply<JoinResult> {
        let g = self.groups.get_mut(&req.group_id).expect("group exists");
        let state = g.state;
        let is_leader = g.leader.as_deref() == Some(req.member_id.as_str());
        let m = g.members.get_mut(&req.member_id).expect("member exists");
        let same = m.protocols == req.protocols;
        m.last_heartbeat_ms = now_ms;
        m.session_timeout_ms = req.session_timeout_ms;
        m.rebalance_timeout_ms = req.rebalance_timeout_ms.max(req.session_timeout_ms);
        m.protocols = req.protocols.clone();
        match state {
            GroupState::PreparingRebalance => {
                let ticket = self.ticket();
                let g = self.groups.get_mut(&req.group_id).expect("group exists");
                let m = g.members.get_mut(&req.member_id).expect("member exists");
                if let Some(old) = m.join_ticket.replace(ticket) {
                    // A duplicate join from the same member: the older request is answered as
                    // Kafka does, with a retriable error.
                    self.completions.push(Completion::Join(
                        old,
                        JoinResult::error(E::RebalanceInProgress, &req.member_id),
                    ));
                }
                self.maybe_complete_join(&req.group_id, now_ms);
                Reply::Later(ticket)
            }
            GroupState::CompletingRebalance | GroupState::Stable if same && !is_leader => {
                // Nothing changed for a follower: answer with the current generation.
                let g = &self.groups[&req.group_id];
                Reply::Now(JoinResult {
                    error: 0,
                    generation_id: g.generation_id,
                    protocol_type: g.protocol_type.clone(),
                    protocol_name: g.protocol_name.clone(),
                    leader: g.leader.clone().unwrap_or_default(),
                    member_id: req.member_id,
                    members: Vec::new(),
                    skip_assignment: false,
                })
            }
            _ => {
                let ticket = self.ticket();
                let g = self.groups.get_mut(&req.group_id).expect("group exists");
                let m = g.members.get_mut(&req.member_id).expect("member exists");
                m.join_ticket = Some(ticket);
                self.prepare_rebalance(&req.group_id, now_ms);
                self.maybe_complete_join(&req.group_id, now_ms);
                Reply::Later(ticket)
            }
        }
    }

    fn prepare_rebalance(&mut self, group_id: &str, now_ms: i64) {
        let delay = self.cfg.initial_rebalance_delay_ms;
        let g = self.groups.get_mut(group_id).expect("group exists");
        if g.state == GroupState::PreparingRebalance {
            return;
        }
        // Members waiting for their assignment learn that another rebalance started.
        let mut syncs = Vec::new();
        for m in g.members.values_mut() {
            if let Some(t) = m.sync_ticket.take() {
                syncs.push(t);
            }
        }
        let was_empty = g.state == GroupState::Empty;
        let timeout = g
            .members
            .values()
            .map(|m| m.rebalance_timeout_ms as i64)
            .max()
            .unwrap_or(0);
        g.state = GroupState::PreparingRebalance;
        g.rebalance_deadline_ms = now_ms + if was_empty { delay.max(0) } else { timeout };
        for t in syncs {
            self.completions.push(Completion::Sync(
                t,
                SyncResult::error(E::RebalanceInProgress),
            ));
        }
    }

    /// Completes the join phase when every member has rejoined, or (with `force`) at the
    /// rebalance deadline, dropping members that did not rejoin.
    fn maybe_complete_join(&mut self, group_id: &str, now_ms: i64) {
        self.complete_join(group_id, now_ms, false);
    }

    fn complete_join(&mut self, group_id: &str, now_ms: i64, force: bool) {
        let Some(g) = self.groups.get_mut(group_id) else {
            return;
        };
        if g.state != GroupState::PreparingRebalance {
            return;
        }
        let all_joined = g.members.values().all(|m| m.join_ticket.is_some());
        let initial_delay_over = now_ms >= g.rebalance_deadline_ms || g.generation_id > 0;
        if !(force
            || (all_joined && (initial_delay_over || self.cfg.initial_rebalance_delay_ms == 0)))
        {
            return;
        }
        g.members.retain(|_, m| m.join_ticket.is_some());
        g.generation_id += 1;
        if g.members.is_empty() {
            g.state = GroupState::Empty;
            g.protocol_name = None;
            g.leader = None;
            g.empty_since_ms = now_ms;
            self.persist_metadata(group_id);
            return;
        }
        let g = self.groups.get_mut(group_id).expect("group exists");
        g.state = GroupState::CompletingRebalance;
        g.protocol_name = g.select_protocol();
        if !g.leader.as_ref().is_some_and(|l| g.members.contains_key(l)) {
            g.leader = g.members.keys().next().cloned();
        }
        let protocol = g.protocol_name.clone().unwrap_or_default();
        let leader = g.leader.clone().unwrap_or_default();
        let all: Vec<(String, Option<String>, Bytes)> = g
            .members
            .values()
            .map(|m| {
                (
                    m.member_id.clone(),
                    m.group_instance_id.clone(),
                    m.metadata_for(&protocol),
                )
            })
            .collect();
        let mut out = Vec::new();
        for m in g.members.values_mut() {
            m.last_heartbeat_ms = now_ms;
            if let Some(t) = m.join_ticket.take() {
                out.push(Completion::Join(
                    t,
                    JoinResult {
                        error: 0,
                        generation_id: g.generation_id,
                        protocol_type: g.protocol_type.clone(),
                        protocol_name: g.protocol_name.clone(),
                        leader: leader.clone(),
                        member_id: m.member_id.clone(),
                        members: if m.member_id == leader {
                            all.clone()
                        } else {
                            Vec::new()
                        },
                        skip_assignment: false,
                    },
                ));
            }
        }
        self.completions.extend(out);
    }

    fn persist_metadata(&mut self, group_id: &str) {
        if let Some(g) = self.groups.get_mut(group_id) {
            g.in_store = true;
            self.records.push(g.metadata_record());
        }
    }

    fn check_member(
        g: &Group,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
    ) -> Result<(), E> {
        if let Some(instance) = instance_id {
            if let Some(m) = g.static_member(instance) {
                if m.member_id != member_id {
                    return Err(E::FencedInstanceId);
                }
            }
        }
        if !g.members.contains_key(member_id) {
            return Err(E::UnknownMemberId);
        }
        if generation_id != g.generation_id {
            return Err(E::IllegalGeneration);
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &mut self,
        group_id: &str,
        generation_id: i32,
        member_id: &str,
        instance_id: Option<&str>,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
        now_ms: i64,
    ) -> Reply<SyncResult> {
        let Some(g) = self.groups.get_mut(group_id) else {
            return Reply::Now(SyncResult::error(E::UnknownMemberId));
        };
        if let Err(e) = Self::check_member(g, member_id, instance_id, generation_id) {
            return Reply::Now(SyncResult::error(e));
        }
        if protocol_type.is_some_and(|t| Some(t) != g.protocol_type.as_deref())
            || protocol_name.is_some_and(|n| Some(n) != g.protocol_name.as_deref())
        {
            return Reply::Now(SyncResult::error(E::InconsistentGroupProtocol));
        }
        let ok = |g: &Group, assignment: Bytes| SyncResult {
            error: 0,
            protocol_type: g.protocol_type.clone(),
            protocol_name: g.protocol_name.clone(),
            assignment,
        };
        match g.state {
            GroupState::Empty => Reply::Now(SyncResult::error(E::UnknownMemberId)),
            GroupState::PreparingRebalance => Reply::Now(SyncResult::error(E::RebalanceInProgress)),
            GroupState::Stable => {
                let a = g.members[member_id].assignment.clone();
                g.members
                    .get_mut(member_id)
                    .expect("member")
                    .last_heartbeat_ms = now_ms;
                Reply::Now(ok(g, a))
            }
            GroupState::CompletingRebalance => {
                let ticket = self.ticket();
                let g = self.groups.get_mut(group_id).expect("group exists");
                let m = g.members.get_mut(member_id).expect("member");
                m.last_heartbeat_ms = now_ms;
                m.sync_ticket = Some(ticket);
                if g.leader.as_deref() == Some(member_id) {
                    let mut given: HashMap<String, Bytes> = assignments.into_iter().collect();
                    for m in g.members.values_mut() {
                        m.assignment = given.remove(&m.member_id).unwrap_or_default();
                    }
                    g.state = GroupState::Stable;
                    let mut out = Vec::new();
                    for m in g.members.values_mut() {
                        if let Some(t) = m.sync_ticket.take() {
                            out.push((t, m.assignment.clone()));
                        }
                    }
                    let g = &self.groups[group_id];
                    let done: Vec<Completion> = out
                        .into_iter()
                        .map(|(t, a)| Completion::Sync(t, ok(g, a)))
                        .collect();
                    self.completions.extend(done);
                    self.persist_metadata(group_id);
                }
                Reply::Later(ticket)
            }
        }
    }

    pub fn heartbeat(
        &mut self,
        group_id: &str,
        generation_id: i32,
        member_id: &str,
        instance_id: Option<&str>,
        now_ms: i64,
    ) -> i16 {
        let Some(g) = self.groups.get_mut(group_id) else {
            return E::UnknownMemberId.code();
        };
        if let Err(e) = Self::check_member(g, member_id, instance_id, generation_id) {
            return e.code();
        }
        g.members
            .get_mut(member_id)
            .expect("member")
            .last_heartbeat_ms = now_ms;
        match g.state {
            GroupState::PreparingRebalance => E::RebalanceInProgress.code(),
            GroupState::Empty => E::UnknownMemberId.code(),
            _ => 0,
        }
    }

    /// Removes members (LeaveGroup); returns an error code per member.
    pub fn leave(
        &mut self,
        group_id: &str,
        members: &[(String, Option<String>)],
        now_ms: i64,
    ) -> Result<Vec<i16>, i16> {
        let r = self.leave_group(group_id, members, now_ms);
        self.reindex(group_id);
        r
    }

    fn leave_group(
        &mut self,
        group_id: &str,
        members: &[(String, Option<String>)],
        now_ms: i64,
    ) -> Result<Vec<i16>, i16> {
        let Some(g) = self.groups.get_mut(group_id) else {
            return Err(E::UnknownMemberId.code());
        };
        let mut codes = Vec::with_capacity(members.len());
        let mut removed = Vec::new();
        for (member_id, instance) in members {
            let target = match instance {
                Some(i) => match g.static_member(i) {
                    Some(m) if member_id.is_empty() || &m.member_id == member_id => {
                        Some(m.member_id.clone())
                    }
                    Some(_) => {
                        codes.push(E::FencedInstanceId.code());
                        continue;
                    }
                    None => None,
                },
                None => g.members.contains_key(member_id).then(|| member_id.clone()),
            };
            match target {
                Some(id) => {
                    if let Some(m) = g.members.remove(&id) {
                        removed.push(m);
                    }
                    codes.push(0);
                }
                None => {
                    if g.pending_members.remove(member_id).is_some() {
                        codes.push(0);
                    } else {
                        codes.push(E::UnknownMemberId.code());
                    }
                }
            }
        }
        if !removed.is_empty() {
            self.on_members_removed(group_id, removed, now_ms);
        }
        Ok(codes)
    }

    fn on_members_removed(&mut self, group_id: &str, removed: Vec<Member>, now_ms: i64) {
        for m in &removed {
            if let Some(t) = m.join_ticket {
                self.completions.push(Completion::Join(
                    t,
                    JoinResult::error(E::UnknownMemberId, &m.member_id),
                ));
            }
            if let Some(t) = m.sync_ticket {
                self.completions
                    .push(Completion::Sync(t, SyncResult::error(E::UnknownMemberId)));
            }
        }
        let g = self.groups.get_mut(group_id).expect("group exists");
        if g.members.is_empty() && g.state != GroupState::PreparingRebalance {
            g.state = GroupState::Empty;
            g.generation_id += 1;
            g.leader = None;
            g.protocol_name = None;
            g.empty_since_ms = now_ms;
            self.persist_metadata(group_id);
            return;
        }
        if g.leader
            .as_ref()
            .is_some_and(|l| !g.members.contains_key(l))
        {
            g.leader = g.members.keys().next().cloned();
        }
        if g.state == GroupState::PreparingRebalance {
            self.maybe_complete_join(group_id, now_ms);
        } else {
            self.prepare_rebalance(group_id, now_ms);
        }
    }

    /// Expires sessions, pending members and rebalance deadlines of live groups, and runs the
    /// cleanup every offsets.retention.check.interval.ms (the first tick runs one). Without
    /// KIP-848 subscriptions: see [`Coordinator::tick_with`].
    pub fn tick(&mut self, now_ms: i64) {
        self.tick_with(now_ms, &|_| None);
    }

    /// [`Coordinator::tick`], with the subscriptions of KIP-848 groups for the cleanup. Costs
    /// O(live groups' members) between cleanups, whatever the number of idle groups.
    pub fn tick_with(&mut self, now_ms: i64, kip848: Kip848Subscriptions<'_>) {
        #[cfg(test)]
        {
            self.visited += self.live.len();
        }
        let due: Vec<String> = self
            .live
            .iter()
            .filter(|id| {
                self.groups.get(id.as_str()).is_some_and(|g| {
                    debug_assert!(
                        g.is_live() && g.idle_due_ms.is_none(),
                        "a group is in exactly one of live and idle, the one its state says"
                    );
                    Self::timer_due(g, now_ms)
                })
            })
            .cloned()
            .collect();
        for id in due {
            self.expire_timers(&id, now_ms);
            self.reindex(&id);
        }
        if now_ms >= self.next_cleanup_ms {
            self.cleanup(now_ms, kip848);
            self.next_cleanup_ms =
                now_ms.saturating_add(self.cfg.offsets_retention_check_interval_ms.max(1));
        }
    }

    /// Whether a member's session ends now; a member parked in JoinGroup is governed by the
    /// rebalance timeout instead.
    fn session_over(g: &Group, m: &Member, now_ms: i64) -> bool {
        let waiting_join = g.state == GroupState::PreparingRebalance && m.join_ticket.is_some();
        !waiting_join && now_ms - m.last_heartbeat_ms >= m.session_timeout_ms as i64
    }

    fn timer_due(g: &Group, now_ms: i64) -> bool {
        g.pending_members
            .values()
            .any(|deadline| *deadline <= now_ms)
            || (g.state == GroupState::PreparingRebalance && now_ms >= g.rebalance_deadline_ms)
            || g.members.values().any(|m| Self::session_over(g, m, now_ms))
    }

    fn expire_timers(&mut self, id: &str, now_ms: i64) {
        let Some(g) = self.groups.get_mut(id) else {
            return;
        };
        g.pending_members.retain(|_, deadline| *deadline > now_ms);
        let expired: Vec<String> = g
            .members
            .values()
            .filter(|m| Self::session_over(g, m, now_ms))
            .map(|m| m.member_id.clone())
            .collect();
        if !expired.is_empty() {
            let removed: Vec<Member> = expired.iter().filter_map(|k| g.members.remove(k)).collect();
            self.on_members_removed(id, removed, now_ms);
        }
        if self.groups.get(id).is_some_and(|g| {
            g.state == GroupState::PreparingRebalance && now_ms >= g.rebalance_deadline_ms
        }) {
            self.complete_join(id, now_ms, true);
        }
    }

    /// Kafka's `cleanupGroupMetadata`: expires offsets (Kafka's `cleanupExpiredOffsets`) and
    /// removes every idle group left without any. Visits the idle groups now due and the live
    /// groups holding offsets, not the others.
    fn cleanup(&mut self, now_ms: i64, kip848: Kip848Subscriptions<'_>) {
        let later = self
            .idle
            .split_off(&(now_ms.saturating_add(1), String::new()));
        let due = std::mem::replace(&mut self.idle, later);
        #[cfg(test)]
        {
            self.visited += due.len() + self.live.len();
        }
        for (_, id) in due {
            let Some(g) = self.groups.get_mut(&id) else {
                continue;
            };
            g.idle_due_ms = None;
            debug_assert!(!g.is_live(), "an indexed idle group has no timers");
            let (expired, next_due_ms) = self.expire_offsets(&id, now_ms, kip848);
            let Some(g) = self.groups.get_mut(&id) else {
                continue;
            };
            if g.offsets.is_empty() {
                // Its DeleteGroup record removes the expired offsets with it.
                self.remove_group(&id);
                continue;
            }
            g.idle_due_ms = Some(next_due_ms);
            self.idle.insert((next_due_ms, id.clone()));
            self.offset_tombstones(&id, expired);
        }
        let live_with_offsets: Vec<String> = self
            .live
            .iter()
            .filter(|id| {
                self.groups
                    .get(id.as_str())
                    .is_some_and(|g| !g.offsets.is_empty())
            })
            .cloned()
            .collect();
        for id in live_with_offsets {
            let (expired, _) = self.expire_offsets(&id, now_ms, kip848);
            self.offset_tombstones(&id, expired);
        }
    }

    /// Removes the group's expired offsets and returns them, with the earliest time another
    /// one may expire (the next cleanup if that depends on a subscription).
    fn expire_offsets(
        &mut self,
        id: &str,
        now_ms: i64,
        kip848: Kip848Subscriptions<'_>,
    ) -> (Vec<(String, i32)>, i64) {
        let next_cleanup_ms = now_ms.saturating_add(self.cfg.offsets_retention_check_interval_ms);
        let retention_ms = self.cfg.offsets_retention_ms;
        let Some(g) = self.groups.get_mut(id) else {
            return (Vec::new(), next_cleanup_ms);
        };
        if g.offsets.is_empty() {
            return (Vec::new(), next_cleanup_ms);
        }
        let Some((from, subscribed)) = g.expiration(kip848(id)) else {
            return (Vec::new(), next_cleanup_ms);
        };
        let mut next_due_ms = i64::MAX;
        let mut expired = Vec::new();
        for ((topic, partition), o) in &g.offsets {
            if subscribed.contains(topic) {
                next_due_ms = next_due_ms.min(next_cleanup_ms);
                continue;
            }
            let expires_at_ms = from.expires_at_ms(o, retention_ms);
            if now_ms >= expires_at_ms {
                expired.push((topic.clone(), *partition));
            } else {
                next_due_ms = next_due_ms.min(expires_at_ms);
            }
        }
        for key in &expired {
            g.offsets.remove(key);
        }
        (expired, next_due_ms)
    }

    fn offset_tombstones(&mut self, group_id: &str, expired: Vec<(String, i32)>) {
        for (topic, partition) in expired {
            self.records.push(StoreRecord::Offset {
                group: group_id.to_string(),
                topic,
                partition,
                value: None,
            });
        }
    }

    /// Makes sure a group entry exists to hold offsets (for KIP-848 groups, whose membership
    /// lives elsewhere). Refused past `max_groups`.
    pub fn ensure_group(&mut self, group_id: &str, now_ms: i64) -> Result<(), E> {
        if !self.admit(group_id) {
            return Err(E::CoordinatorNotAvailable);
        }
        if !self.groups.contains_key(group_id) {
            self.groups
                .insert(group_id.to_string(), Group::new(group_id, now_ms));
            self.reindex(group_id);
        }
        Ok(())
    }

    /// Validates an OffsetCommit against the group (Kafka's `validateOffsetCommit`).
    pub fn validate_commit(&mut self, req: &CommitRequest<'_>, now_ms: i64) -> Result<(), E> {
        let outsider = req.generation_id < 0 && req.member_id.is_empty();
        if outsider {
            // A commit from outside the group protocol (admin tools, manual assignment) creates
            // a group to hold the offsets (Kafka's "simple" group).
            self.ensure_group(req.group_id, now_ms)?;
        }
        let Some(g) = self.groups.get_mut(req.group_id) else {
            // No group, so no such member (and nothing created for a refused commit).
            return Err(E::UnknownMemberId);
        };
        if outsider {
            return if g.members.is_empty() {
                Ok(())
            } else {
                Err(E::UnknownMemberId)
            };
        }
        if g.state == GroupState::CompletingRebalance {
            return Err(E::RebalanceInProgress);
        }
        Self::check_member(g, req.member_id, req.group_instance_id, req.generation_id)?;
        if let Some(m) = g.members.get_mut(req.member_id) {
            m.last_heartbeat_ms = now_ms;
        }
        Ok(())
    }

    pub fn commit_offset(
        &mut self,
        group_id: &str,
        topic: &str,
        partition: i32,
        value: CommittedOffset,
    ) {
        if let Some(g) = self.groups.get_mut(group_id) {
            g.in_store = true;
            // An idle group's index entry stays: a newer commit expires later, never earlier.
            g.offsets
                .insert((topic.to_string(), partition), value.clone());
            self.records.push(StoreRecord::Offset {
                group: group_id.to_string(),
                topic: topic.to_string(),
                partition,
                value: Some(value),
            });
        }
    }

    pub fn fetch_offset(
        &self,
        group_id: &str,
        topic: &str,
        partition: i32,
    ) -> Option<&CommittedOffset> {
        self.groups
            .get(group_id)?
            .offsets
            .get(&(topic.to_string(), partition))
    }

    pub fn delete_group(&mut self, group_id: &str) -> i16 {
        match self.groups.get(group_id) {
            None => E::GroupIdNotFound.code(),
            Some(g) if g.state != GroupState::Empty || !g.members.is_empty() => {
                E::NonEmptyGroup.code()
            }
            Some(_) => {
                // With a DeleteGroup record, unless the store never knew the group.
                self.remove_group(group_id);
                0
            }
        }
    }

    /// OffsetDelete: per-partition error codes, or a group-level error.
    pub fn delete_offsets(
        &mut self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<Vec<i16>, i16> {
        let Some(g) = self.groups.get_mut(group_id) else {
            return Err(E::GroupIdNotFound.code());
        };
        let subscribed = if g.members.is_empty() {
            Some(HashSet::new())
        } else {
            g.subscribed_topics()
        };
        let Some(subscribed) = subscribed else {
            // A non-consumer group with members: Kafka refuses with NON_EMPTY_GROUP.
            return Err(E::NonEmptyGroup.code());
        };
        let mut codes = Vec::with_capacity(partitions.len());
        for (topic, p) in partitions {
            if subscribed.contains(topic) {
                codes.push(E::GroupSubscribedToTopic.code());
                continue;
            }
            if g.offsets.remove(&(topic.clone(), *p)).is_some() {
                self.records.push(StoreRecord::Offset {
                    group: group_id.to_string(),
                    topic: topic.clone(),
                    partition: *p,
                    value: None,
                });
            }
            codes.push(0);
        }
        // Left without offsets, an idle group goes at the next cleanup.
        self.reindex(group_id);
        Ok(codes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(member: &str, instance: Option<&str>) -> JoinRequest {
        JoinRequest {
            group_id: "g".into(),
            member_id: member.into(),
            group_instance_id: instance.map(Into::into),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 30_000,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"meta"))],
            require_known_member_id: true,
            supports_skip_assignment: true,
        }
    }

    fn joins(c: &mut Coordinator) -> HashMap<Ticket, JoinResult> {
        c.take_completions()
            .into_iter()
            .filter_map(|x| match x {
                Completion::Join(t, r) => Some((t, r)),
                _ => None,
            })
            .collect()
    }

    fn later<T: std::fmt::Debug>(r: Reply<T>) -> Ticket {
        match r {
            Reply::Later(t) => t,
            other => panic!("expected to wait, got {other:?}"),
        }
    }

    /// A member joins through MEMBER_ID_REQUIRED and returns its id.
    fn first_join(c: &mut Coordinator, now: i64) -> (String, Ticket) {
        let Reply::Now(r) = c.join(req("", None), now) else {
            panic!("expected MEMBER_ID_REQUIRED");
        };
        assert_eq!(r.error, E::MemberIdRequired.code());
        let t = later(c.join(req(&r.member_id, None), now));
        (r.member_id, t)
    }

    fn stable_single(c: &mut Coordinator) -> String {
        let (m, t) = first_join(c, 0);
        let r = joins(c).remove(&t).expect("join completes");
        assert_eq!(
            (r.error, r.generation_id, r.leader.as_str()),
            (0, 1, m.as_str())
        );
        assert_eq!(r.members.len(), 1);
        let s = c.sync(
            "g",
            1,
            &m,
            None,
            None,
            None,
            vec![(m.clone(), Bytes::from_static(b"a1"))],
            0,
        );
        let t = later(s);
        let done = c.take_completions();
        assert!(done.contains(&Completion::Sync(
            t,
            SyncResult {
                error: 0,
                protocol_type: Some("consumer".into()),
                protocol_name: Some("range".into()),
                assignment: Bytes::from_static(b"a1")
            }
        )));
        assert_eq!(c.group("g").map(|g| g.state), Some(GroupState::Stable));
        m
    }

    #[test]
    fn join_sync_and_second_member_rebalance() {
        let mut c = Coordinator::new(CoordinatorConfig::default());
        let m1 = stable_single(&mut c);
        assert_eq!(c.heartbeat("g", 1, &m1, None, 100), 0);
        let (m2, t2) = first_join(&mut c, 200);
        assert!(
            joins(&mut c).is_empty(),
            "waits for the first member to rejoin"
        );
        assert_eq!(
            c.heartbeat("g", 1, &m1, None, 300),
            E::RebalanceInProgress.code()
        );
        let t1 = later(c.join(req(&m1, None), 400));
        let done = joins(&mut c);
        let (r1, r2) = (&done[&t1], &done[&t2]);
        assert_eq!((r1.generation_id, r2.generation_id), (2, 2));
        assert_eq!(r1.leader, m1);
        assert_eq!((r1.members.len(), r2.members.len()), (2, 0));
        assert_eq!(
            c.heartbeat("g", 1, &m1, None, 500),
            E::IllegalGeneration.code()
        );
        let ts2 = later(c.sync("g", 2, &m2, None, None, None, vec![], 500));
        assert!(
            c.take_completions().is_empty(),
            "followers wait for the leader"
        );
        let _ = c.sync(
            "g",
            2,
            &m1,
            None,
            None,
            None,
            vec![(m2.clone(), Bytes::from_static(b"p2"))],
            600,
        );
        let done = c.take_completions();
        assert!(done.iter().any(|x| matches!(x, Completion::Sync(t, r) if *t == ts2 && r.assignment == Bytes::from_static(b"p2"))));
        assert_eq!(c.heartbeat("g", 2, &m2, None, 700), 0);
        assert_eq!(
            c.heartbeat("g", 2, "nobody", None, 700),
            E::UnknownMemberId.code()
        );
    }

    #[test]
    fn session_expiry_and_leave_trigger_rebalances() {
        let mut c = Coordinator::new(CoordinatorConfig::default());
        let m1 = stable_single(&mut c);
        let (m2, t2) = first_join(&mut c, 0);
        let t1 = later(c.join(req(&m1, None), 0));
        joins(&mut c);
        c.sync("g", 2, &m1, None, None, None, vec![], 0);
        c.sync("g", 2, &m2, None, None, None, vec![], 0);
        c.take_completions();
        let _ = (t1, t2);
        // m2 keeps heartbeating, m1 goes silent past its 10 s session.
        for now in (1_000..=11_000).step_by(1_000) {
            c.heartbeat("g", 2, &m2, None, now);
            c.tick(now);
        }
        let g = c.group("g").unwrap();
        assert!(!g.members.contains_key(&m1));
        assert_eq!(g.state, GroupState::PreparingRebalance);
        let t = later(c.join(req(&m2, None), 11_100));
        let r = joins(&mut c).remove(&t).unwrap();
        assert_eq!((r.generation_id, r.leader.as_str()), (3, m2.as_str()));
        c.sync("g", 3, &m2, None, None, None, vec![], 11_200);
        assert_eq!(c.leave("g", &[(m2.clone(), None)], 11_300), Ok(vec![0]));
        assert_eq!(c.group("g").unwrap().state, GroupState::Empty);
        assert_eq!(
            c.leave("g", &[(m2, None)], 11_400),
            Ok(vec![E::UnknownMemberId.code()])
        );
    }

    #[test]
    fn rebalance_timeout_drops_members_that_do_not_rejoin() {
        let mut c = Coordinator::new(CoordinatorConfig::default());
        let m1 = stable_single(&mut c);
        let (_m2, t2) = first_join(&mut c, 1_000);
        // m1 heartbeats (learning of the rebalance) but never rejoins.
        for now in (2_000..31_000).step_by(2_000) {
            c.heartbeat("g", 1, &m1, None, now);
            c.tick(now);
            assert!(joins(&mut c).is_empty());
        }
        c.tick(31_000);
        let r = joins(&mut c)
            .remove(&t2)
            .expect("completed at the rebalance timeout");
        assert_eq!((r.error, r.generation_id), (0, 2));
        assert!(!c.group("g").unwrap().members.contains_key(&m1));
    }

    #[test]
    fn static_member_rejoins_without_rebalance_and_fences_the_old_id() {
        let mut c = Coordinator::new(CoordinatorConfig::default());
        let leader = stable_single(&mut c);
        let t = later(c.join(req("", Some("worker-2")), 0));
        let t1 = later(c.join(req(&leader, None), 0));
        let done = joins(&mut c);
        let old = done[&t].member_id.clone();
        assert_eq!(done[&t1].generation_id, 2);
        c.sync("g", 2, &old, Some("worker-2"), None, None, vec![], 0);
        c.sync(
            "g",
            2,
            &leader,
            None,
            None,
            None,
            vec![(old.clone(), Bytes::from_static(b"mine"))],
            0,
        );
        c.take_completions();
        // The static member restarts: new member id, same instance id, same generation.
        let Reply::Now(r) = c.join(req("", Some("worker-2")), 5_000) else {
            panic!("a static follower rejoins at once");
        };
        assert_eq!((r.error, r.generation_id), (0, 2));
        assert_ne!(r.member_id, old);
        assert_eq!(c.group("g").unwrap().state, GroupState::Stable);
        let Reply::Now(s) = c.sync(
            "g",
            2,
            &r.member_id,
            Some("worker-2"),
            None,
            None,
            vec![],
            5_000,
        ) else {
            panic!("stable group answers at once");
        };
        assert_eq!(s.assignment, Bytes::from_static(b"mine"));
        assert_eq!(
            c.heartbeat("g", 2, &old, Some("worker-2"), 5_100),
            E::FencedInstanceId.code()
        );
        assert_eq!(
            c.heartbeat("g", 2, &r.member_id, Some("worker-2"), 5_100),
            0
        );
    }

    #[test]
    fn static_leader_rejoins_without_rebalance_and_skips_the_assignment() {
        let mut c = Coordinator::new(CoordinatorConfig::default());
        // Two static members, "leader-1" first (so it leads), Stable at generation 2.
        let t_leader = later(c.join(req("", Some("leader-1")), 0));
        let leader = joins(&mut c)[&t_leader].member_id.clone();
        c.sync("g", 1, &leader, Some("leader-1"), None, None, vec![], 0);
        c.take_completions();
        let t_f = later(c.join(req("", Some("worker-2")), 0));
        let t_l = later(c.join(req(&leader, Some("leader-1")), 0));
        let done = joins(&mut c);
        assert_eq!(done[&t_l].generation_id, 2);
        assert_eq!(done[&t_l].leader, leader);
        let follower = done[&t_f].member_id.clone();
        c.sync("g", 2, &follower, Some("worker-2"), None, None, vec![], 0);
        c.sync(
            "g",
            2,
            &leader,
            Some("leader-1"),
            None,
            None,
            vec![
                (leader.clone(), Bytes::from_static(b"L")),
                (follower.clone(), Bytes::from_static(b"F")),
            ],
            0,
        );
        c.take_completions();
        assert_eq!(c.group("g").unwrap().state, GroupState::Stable);

        // The leader restarts (v9+): no rebalance, the members, skip_assignment.
        let Reply::Now(r) = c.join(req("", Some("leader-1")), 1_000) else {
            panic!("a static leader rejoins a stable group at once");
        };
        assert_eq!((r.error, r.generation_id, r.skip_assignment), (0, 2, true));
        assert_eq!(r.leader, r.member_id);
        assert_eq!(r.members.len(), 2);
        assert_eq!(c.group("g").unwrap().state, GroupState::Stable);
        let Reply::Now(s) = c.sync(
            "g",
            2,
            &r.member_id,
            Some("leader-1"),
            None,
            None,
            vec![],
            1_000,
        ) else {
            panic!("stable group answers at once");
        };
        assert_eq!(s.assignment, Bytes::from_static(b"L"));
        // The follower was not disturbed.
        assert_eq!(c.heartbeat("g", 2, &follower, Some("worker-2"), 1_100), 0);

        // An older client (JoinGroup < v9) is answered as a follower: the old leader id.
        let mut old_client = req("", Some("leader-1"));
        old_client.supports_skip_assignment = false;
        let Reply::Now(r2) = c.join(old_client, 2_000) else {
            panic!("no rebalance for a pre-v9 static leader either");
        };
        assert_eq!(
            (r2.error, r2.generation_id, r2.skip_assignment),
            (0, 2, false)
        );
        assert_eq!(r2.leader, r.member_id);
        assert!(r2.members.is_empty());
        assert_eq!(c.group("g").unwrap().state, GroupState::Stable);
    }

    #[test]
    fn commits_are_fenced_and_offsets_expire_with_empty_groups() {
        let mut c = Coordinator::new(CoordinatorConfig {
            offsets_retention_ms: 60_000,
            offsets_retention_check_interval_ms: 1_000,
            ..CoordinatorConfig::default()
        });
        let m = stable_single(&mut c);
        let bad = CommitRequest {
            group_id: "g",
            generation_id: 1,
            member_id: "x",
            group_instance_id: None,
        };
        assert_eq!(c.validate_commit(&bad, 0), Err(E::UnknownMemberId));
        let stale = CommitRequest {
            group_id: "g",
            generation_id: 0,
            member_id: &m,
            group_instance_id: None,
        };
        assert_eq!(c.validate_commit(&stale, 0), Err(E::IllegalGeneration));
        let admin = CommitRequest {
            group_id: "g",
            generation_id: -1,
            member_id: "",
            group_instance_id: None,
        };
        assert_eq!(
            c.validate_commit(&admin, 0),
            Err(E::UnknownMemberId),
            "group has members"
        );
        let ok = CommitRequest {
            group_id: "g",
            generation_id: 1,
            member_id: &m,
            group_instance_id: None,
        };
        assert_eq!(c.validate_commit(&ok, 0), Ok(()));
        c.commit_offset(
            "g",
            "t",
            0,
            CommittedOffset {
                offset: 42,
                leader_epoch: 0,
                metadata: None,
                commit_ms: 0,
            },
        );
        assert_eq!(c.fetch_offset("g", "t", 0).map(|o| o.offset), Some(42));
        assert_eq!(c.delete_group("g"), E::NonEmptyGroup.code());
        c.leave("g", &[(m, None)], 1_000).unwrap();
        c.tick(30_000);
        assert_eq!(c.fetch_offset("g", "t", 0).map(|o| o.offset), Some(42));
        c.tick(61_000);
        assert!(c.fetch_offset("g", "t", 0).is_none());
        assert!(c
            .take_records()
            .contains(&StoreRecord::DeleteGroup { group: "g".into() }));
        assert_eq!(c.delete_group("g"), E::GroupIdNotFound.code());
    }

    #[test]
    fn offset_delete_refuses_subscribed_topics() {
        use kafka_protocol::messages::ConsumerProtocolSubscription;
        use kafka_protocol::protocol::{Encodable, StrBytes};
        let mut meta = bytes::BytesMut::new();
        meta.extend_from_slice(&1i16.to_be_bytes());
        ConsumerProtocolSubscription::default()
            .with_topics(vec![StrBytes::from_static_str("orders")])
            .encode(&mut meta, 1)
            .unwrap();
        let mut c = Coordinator::new(CoordinatorConfig::default());
        let mut r = req("", None);
        r.require_known_member_id = false;
        r.protocols = vec![("range".into(), meta.freeze())];
        let t = later(c.join(r, 0));
        let m = joins(&mut c).remove(&t).unwrap().member_id;
        c.sync("g", 1, &m, None, None, None, vec![], 0);
        let off = CommittedOffset {
            offset: 1,
            leader_epoch: -1,
            metadata: None,
            commit_ms: 0,
        };
        c.commit_offset("g", "orders", 0, off.clone());
        c.commit_offset("g", "old", 0, off);
        let codes = c
            .delete_offsets("g", &[("orders".into(), 0), ("old".into(), 0)])
            .unwrap();
        assert_eq!(codes, vec![E::GroupSubscribedToTopic.code(), 0]);
        assert!(c.fetch_offset("g", "old", 0).is_none());
        assert!(c.fetch_offset("g", "orders", 0).is_some());
        assert_eq!(
            c.delete_offsets("nope", &[]),
            Err(E::GroupIdNotFound.code())
        );
    }

    #[test]
    fn replayed_records_restore_offsets_and_members() {
        let mut c = Coordinator::new(CoordinatorConfig::default());
        let m = stable_single(&mut c);
        c.commit_offset(
            "g",
            "t",
            3,
            CommittedOffset {
                offset: 7,
                leader_epoch: -1,
                metadata: Some("x".into()),
                commit_ms: 0,
            },
        );
        let records = c.take_records();
        let mut d = Coordinator::new(CoordinatorConfig::default());
        for r in records {
            d.replay(r, 100);
        }
        assert_eq!(d.fetch_offset("g", "t", 3).map(|o| o.offset), Some(7));
        assert_eq!(d.heartbeat("g", 1, &m, None, 200), 0);
        assert_eq!(d.group("g").unwrap().state, GroupState::Stable);
    }

    #[test]
    fn inconsistent_protocols_and_bad_timeouts_are_refused() {
        let mut c = Coordinator::new(CoordinatorConfig::default());
        stable_single(&mut c);
        let mut other = req("", None);
        other.protocols = vec![("roundrobin".into(), Bytes::new())];
        assert!(
            matches!(c.join(other, 0), Reply::Now(r) if r.error == E::InconsistentGroupProtocol.code())
        );
        let mut short = req("", None);
        short.session_timeout_ms = 10;
        assert!(
            matches!(c.join(short, 0), Reply::Now(r) if r.error == E::InvalidSessionTimeout.code())
        );
        assert!(
            matches!(c.join(req("ghost", None), 0), Reply::Now(r) if r.error == E::UnknownMemberId.code())
        );
    }

    fn offset(now: i64) -> CommittedOffset {
        CommittedOffset {
            offset: 1,
            leader_epoch: -1,
            metadata: None,
            commit_ms: now,
        }
    }

    /// A commit from outside the group protocol (admin tools, a standalone consumer).
    fn outsider_commit(c: &mut Coordinator, group: &str, partition: i32, now: i64) {
        let r = CommitRequest {
            group_id: group,
            generation_id: -1,
            member_id: "",
            group_instance_id: None,
        };
        assert_eq!(c.validate_commit(&r, now), Ok(()));
        c.commit_offset(group, "t", partition, offset(now));
    }

    fn deleted(records: &[StoreRecord], group: &str) -> bool {
        records
            .iter()
            .any(|r| matches!(r, StoreRecord::DeleteGroup { group: g } if g == group))
    }

    #[test]
    fn groups_without_offsets_go_at_the_next_cleanup() {
        let mut c = Coordinator::new(CoordinatorConfig {
            offsets_retention_check_interval_ms: 10_000,
            ..CoordinatorConfig::default()
        });
        let m = stable_single(&mut c);
        c.tick(0);
        assert!(c.group("g").is_some(), "a group with members stays");
        c.leave("g", &[(m, None)], 1_000).unwrap();
        // A member told MEMBER_ID_REQUIRED that never comes back.
        let Reply::Now(r) = c.join(
            JoinRequest {
                group_id: "gone".into(),
                ..req("", None)
            },
            1_000,
        ) else {
            panic!("expected MEMBER_ID_REQUIRED");
        };
        assert_eq!(r.error, E::MemberIdRequired.code());
        c.tick(5_000);
        assert_eq!(c.group("g").map(|g| g.state), Some(GroupState::Empty));
        assert!(c.group("gone").is_some(), "its member may still come back");
        c.take_records();
        c.tick(10_000);
        assert!(c.group("g").is_none(), "empty and no offsets: removed");
        assert!(
            c.group("gone").is_some(),
            "the pending member's session lasts 10 s"
        );
        assert!(deleted(&c.take_records(), "g"));
        c.tick(20_000);
        assert!(c.group("gone").is_none());
        assert!(
            c.take_records().is_empty(),
            "a group the store never knew needs no record"
        );
        assert_eq!((c.groups().count(), c.live_group_count()), (0, 0));
    }

    #[test]
    fn offsets_keep_an_empty_group_until_they_expire() {
        let cfg = CoordinatorConfig {
            offsets_retention_ms: 60_000,
            offsets_retention_check_interval_ms: 1_000,
            ..CoordinatorConfig::default()
        };
        let mut c = Coordinator::new(cfg.clone());
        let m = stable_single(&mut c);
        c.commit_offset("g", "t", 0, offset(0));
        c.leave("g", &[(m, None)], 1_000).unwrap();
        // A standalone consumer's offsets expire one by one, from their commits.
        outsider_commit(&mut c, "solo", 0, 0);
        outsider_commit(&mut c, "solo", 1, 30_000);
        let mut records = c.take_records();
        for now in (1_000..=60_000).step_by(1_000) {
            c.tick(now);
        }
        assert!(
            c.fetch_offset("g", "t", 0).is_some(),
            "kept 60 s from empty"
        );
        assert!(c.fetch_offset("solo", "t", 0).is_none());
        assert!(c.fetch_offset("solo", "t", 1).is_some());
        let expired = c.take_records();
        assert!(expired.contains(&StoreRecord::Offset {
            group: "solo".into(),
            topic: "t".into(),
            partition: 0,
            value: None
        }));
        records.extend(expired);
        c.tick(61_000);
        assert!(
            c.group("g").is_none(),
            "its offsets expired: removed with them"
        );
        assert!(deleted(&c.take_records(), "g"));
        c.tick(90_000);
        assert!(c.group("solo").is_none());
        assert_eq!(c.groups().count(), 0);
        // Retention counts from when the group became empty, across a restart too.
        let mut d = Coordinator::new(cfg);
        for r in records {
            d.replay(r, 50_000);
        }
        assert!(d.fetch_offset("g", "t", 0).is_some());
        d.tick(50_000);
        assert!(d.fetch_offset("g", "t", 0).is_some());
        d.tick(61_000);
        assert!(d.group("g").is_none());
    }

    #[test]
    fn offsets_of_subscribed_topics_do_not_expire() {
        let mut c = Coordinator::new(CoordinatorConfig {
            offsets_retention_ms: 60_000,
            offsets_retention_check_interval_ms: 1_000,
            ..CoordinatorConfig::default()
        });
        // A KIP-848 group's offsets, held here while its members live in ConsumerGroups.
        c.ensure_group("next", 0).unwrap();
        c.commit_offset("next", "t", 0, offset(0));
        c.commit_offset("next", "old", 0, offset(0));
        let subscribed = |id: &str| (id == "next").then(|| HashSet::from(["t".to_string()]));
        c.tick_with(100_000, &subscribed);
        assert!(c.fetch_offset("next", "t", 0).is_some(), "subscribed: kept");
        assert!(
            c.fetch_offset("next", "old", 0).is_none(),
            "not subscribed: expired"
        );
        c.tick_with(101_000, &subscribed);
        assert!(c.group("next").is_some());
        // Its members are gone: the offsets expire from their commits.
        c.tick_with(102_000, &|_| None);
        assert!(c.group("next").is_none());
    }

    #[test]
    fn the_tick_visits_only_live_groups() {
        let mut c = Coordinator::new(CoordinatorConfig {
            max_groups: 200_000,
            ..CoordinatorConfig::default()
        });
        let ids: Vec<String> = (0..100_000).map(|i| format!("idle-{i}")).collect();
        for id in &ids {
            outsider_commit(&mut c, id, 0, 0);
        }
        let m = stable_single(&mut c);
        // The first cleanup looks at each newly idle group once and files it under its expiry.
        c.tick(0);
        assert_eq!(c.live_group_count(), 1);
        assert_eq!(c.idle.len(), 100_000);
        c.visited = 0;
        for now in (100..=600_000).step_by(100) {
            assert_eq!(c.heartbeat("g", 1, &m, None, now), 0);
            c.tick(now);
        }
        // 6,000 ticks and one cleanup, each visiting the one live group.
        assert_eq!(c.visited, 6_000 + 1);
        assert_eq!(c.groups().count(), 100_001);
    }

    #[test]
    fn new_groups_past_max_groups_are_refused_retriably() {
        let mut c = Coordinator::new(CoordinatorConfig {
            max_groups: 2,
            ..CoordinatorConfig::default()
        });
        stable_single(&mut c);
        outsider_commit(&mut c, "b", 0, 0);
        let join_c = JoinRequest {
            group_id: "c".into(),
            ..req("", None)
        };
        assert!(
            matches!(c.join(join_c.clone(), 0), Reply::Now(r) if r.error == E::CoordinatorNotAvailable.code())
        );
        let commit_c = CommitRequest {
            group_id: "c",
            generation_id: -1,
            member_id: "",
            group_instance_id: None,
        };
        assert_eq!(
            c.validate_commit(&commit_c, 0),
            Err(E::CoordinatorNotAvailable)
        );
        assert_eq!(c.ensure_group("c", 0), Err(E::CoordinatorNotAvailable));
        // A member's commit to a group that does not exist creates nothing.
        let member_commit = CommitRequest {
            group_id: "d",
            generation_id: 1,
            member_id: "m",
            group_instance_id: None,
        };
        assert_eq!(
            c.validate_commit(&member_commit, 0),
            Err(E::UnknownMemberId)
        );
        assert_eq!(c.groups().count(), 2);
        assert_eq!(c.take_groups_refused(), 3);
        // Existing groups carry on; room made by a deletion is taken.
        assert!(
            matches!(c.join(req("", None), 0), Reply::Now(r) if r.error == E::MemberIdRequired.code())
        );
        assert_eq!(c.delete_group("b"), 0);
        assert!(
            matches!(c.join(join_c, 0), Reply::Now(r) if r.error == E::MemberIdRequired.code())
        );
        assert_eq!(c.take_groups_refused(), 0);
    }
}
