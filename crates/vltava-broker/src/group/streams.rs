//! The KIP-1071 streams group protocol as a state machine (no I/O, time as input), following
//! Kafka's `GroupMetadataManager.streamsGroupHeartbeat`, `StreamsGroup`, the streams
//! `CurrentAssignmentBuilder` and `StickyTaskAssignor`. Members heartbeat with their epoch, the
//! topology (when joining), their process id, endpoint and the tasks they own; the group keeps
//! the topology, configures it against the topics that exist (`streams_topology.rs`), computes
//! a target assignment of active and standby tasks (sticky, balanced, a standby never in its
//! active task's process; no warm-up tasks) and reconciles each member towards it: an active
//! task goes to a member only after its previous owner has revoked it.
//!
//! A group's committed offsets live in the classic coordinator. A group that loses its last
//! member stays here, Empty (as Kafka keeps it, for `kafka-streams-groups --describe`,
//! `--reset-offsets`, `--delete`), while the classic coordinator holds a memberless group of
//! that id (its offsets); [`StreamsGroups::prune`] removes it when that is gone. Every durable
//! change is emitted as a [`StreamsGroupSnapshot`] for the group store.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError as E;
use serde::{Deserialize, Serialize};

use super::streams_topology::{status, Configured, Topology};

/// Partitions by subtopology id.
pub type Tasks = BTreeMap<String, BTreeSet<i32>>;

/// Client tags one member may send (Kafka has no bound).
pub const MAX_CLIENT_TAGS: usize = 64;
/// Bytes of one client tag key or value, process id or endpoint host.
pub const MAX_MEMBER_STRING_BYTES: usize = 1_024;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSet {
    pub active: Tasks,
    pub standby: Tasks,
    pub warmup: Tasks,
}

#[derive(Debug, Clone)]
pub struct StreamsGroupsConfig {
    /// group.streams.session.timeout.ms
    pub session_timeout_ms: i64,
    /// group.streams.heartbeat.interval.ms
    pub heartbeat_interval_ms: i32,
    /// group.streams.num.standby.replicas
    pub num_standby_replicas: usize,
    /// group.streams.max.size
    pub max_group_size: usize,
    /// Groups with members held at once (as `ConsumerGroupsConfig::max_groups`).
    pub max_groups: usize,
    /// group.streams.acceptable.recovery.lag (reported; Vltava assigns no warm-up tasks).
    pub acceptable_recovery_lag: i32,
    /// group.streams.task.offset.interval.ms
    pub task_offset_interval_ms: i32,
}

impl Default for StreamsGroupsConfig {
    fn default() -> Self {
        StreamsGroupsConfig {
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
            num_standby_replicas: 0,
            max_group_size: 20,
            max_groups: super::coordinator::DEFAULT_MAX_GROUPS,
            acceptable_recovery_lag: 10_000,
            task_offset_interval_ms: 60_000,
        }
    }
}

/// A group's overrides of the streams group configs (`streams.*`, see `group_config.rs`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamsGroupOverrides {
    pub session_timeout_ms: Option<i64>,
    pub heartbeat_interval_ms: Option<i32>,
    pub num_standby_replicas: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub member_epoch: i32,
    previous_epoch: i32,
    rebalance_timeout_ms: i64,
    pub topology_epoch: i32,
    pub process_id: String,
    pub user_endpoint: Option<Endpoint>,
    pub client_tags: BTreeMap<String, String>,
    /// What the member has been told it owns.
    pub assigned: TaskSet,
    /// Active tasks it must give up; still its own until it reports them gone.
    pub revoking: Tasks,
    revoke_deadline_ms: i64,
    /// A static member that left with epoch -2: it keeps its tasks for its session, so that
    /// the same instance id rejoining takes them over without a rebalance.
    #[serde(default)]
    left_static: bool,
    #[serde(skip)]
    last_heartbeat_ms: i64,
    #[serde(skip)]
    last_sent: Option<TaskSet>,
    /// The changelog offsets the member reported last (for describe).
    #[serde(skip)]
    pub task_offsets: Vec<(String, i32, i64)>,
    #[serde(skip)]
    pub task_end_offsets: Vec<(String, i32, i64)>,
}

/// The durable state of one streams group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamsGroupSnapshot {
    pub group_id: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub topology: Option<Topology>,
    /// Tasks per subtopology the target was computed from.
    pub tasks: BTreeMap<String, i32>,
    pub members: Vec<SMember>,
    pub target: BTreeMap<String, TaskSet>,
    pub endpoint_epoch: i32,
    /// The group's end (deleted, or pruned with its offsets).
    #[serde(default)]
    pub removed: bool,
}

/// How often empty groups are checked against the classic coordinator's groups.
pub const PRUNE_INTERVAL_MS: i64 = 5_000;

#[derive(Debug, Clone, Default)]
pub struct SGroup {
    pub group_id: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub topology: Option<Topology>,
    pub tasks: BTreeMap<String, i32>,
    pub members: BTreeMap<String, SMember>,
    pub target: BTreeMap<String, TaskSet>,
    pub endpoint_epoch: i32,
    /// The topology configured against the topics at the last heartbeat (volatile).
    pub configured: Configured,
}

impl SGroup {
    /// Kafka's streams group states (`StreamsGroup.StreamsGroupState`), as ListGroups and
    /// describe name them.
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.configured.tasks.is_empty() {
            "NotReady"
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
    pub endpoint_information_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub topology: Option<Topology>,
    pub active_tasks: Option<Tasks>,
    pub standby_tasks: Option<Tasks>,
    pub warmup_tasks: Option<Tasks>,
    pub process_id: Option<String>,
    pub user_endpoint: Option<Endpoint>,
    pub client_tags: Option<BTreeMap<String, String>>,
    pub task_offsets: Option<Vec<(String, i32, i64)>>,
    pub task_end_offsets: Option<Vec<(String, i32, i64)>>,
    pub shutdown_application: bool,
    pub client_id: String,
    pub client_host: String,
}

/// One member's endpoint and the input partitions of its tasks (IQ).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointPartitions {
    pub endpoint: Endpoint,
    pub active: BTreeMap<String, BTreeSet<i32>>,
    pub standby: BTreeMap<String, BTreeSet<i32>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeartbeatResp {
    pub error: i16,
    pub message: Option<String>,
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    pub acceptable_recovery_lag: i32,
    pub task_offset_interval_ms: i32,
    pub statuses: Vec<(i8, String)>,
    /// All three task lists, or none (unchanged).
    pub assignment: Option<TaskSet>,
    pub endpoint_information_epoch: i32,
    pub partitions_by_endpoint: Option<Vec<EndpointPartitions>>,
}

#[derive(Default)]
pub struct StreamsGroups {
    cfg: StreamsGroupsConfig,
    overrides: BTreeMap<String, StreamsGroupOverrides>,
    /// Groups with members, and empty ones whose offsets the classic coordinator still holds.
    groups: BTreeMap<String, SGroup>,
    /// The groups with members: the only ones the tick visits.
    live: BTreeSet<String>,
    next_prune_ms: i64,
    records: Vec<StreamsGroupSnapshot>,
    groups_refused: u64,
    /// Groups whose members asked for the application's shutdown (volatile, as in Kafka).
    shutdown_requested: BTreeSet<String>,
}

fn count(t: &Tasks) -> usize {
    t.values().map(BTreeSet::len).sum()
}

fn minus(a: &Tasks, b: &Tasks) -> Tasks {
    let mut out = Tasks::new();
    for (s, ps) in a {
        let rest: BTreeSet<i32> = ps
            .iter()
            .filter(|p| !b.get(s).is_some_and(|x| x.contains(p)))
            .copied()
            .collect();
        if !rest.is_empty() {
            out.insert(s.clone(), rest);
        }
    }
    out
}

fn intersect(a: &Tasks, b: &Tasks) -> Tasks {
    let mut out = Tasks::new();
    for (s, ps) in a {
        if let Some(bs) = b.get(s) {
            let both: BTreeSet<i32> = ps.intersection(bs).copied().collect();
            if !both.is_empty() {
                out.insert(s.clone(), both);
            }
        }
    }
    out
}

fn union_into(a: &mut Tasks, b: &Tasks) {
    for (s, ps) in b {
        a.entry(s.clone()).or_default().extend(ps.iter().copied());
    }
}

fn contains(t: &Tasks, s: &str, p: i32) -> bool {
    t.get(s).is_some_and(|x| x.contains(&p))
}

fn insert(t: &mut Tasks, s: &str, p: i32) {
    t.entry(s.to_string()).or_default().insert(p);
}

/// The target assignment, as Kafka's `StickyTaskAssignor` decides it: active tasks balanced
/// over members (each member is one stream thread), a task staying with its previous owner while
/// that keeps the balance, else going to the least loaded member of its previous owner's
/// process, else to the least loaded member; then `standbys` standby replicas of each task, each
/// in a process other than the active task's and the other replicas', sticky the same way.
fn assign(g: &SGroup, standbys: usize) -> BTreeMap<String, TaskSet> {
    let mut target: BTreeMap<String, TaskSet> = g
        .members
        .keys()
        .map(|m| (m.clone(), TaskSet::default()))
        .collect();
    if g.members.is_empty() {
        return target;
    }
    let all: Vec<(String, i32)> = g
        .configured
        .tasks
        .iter()
        .flat_map(|(s, &n)| (0..n).map(move |p| (s.clone(), p)))
        .collect();
    let n_members = g.members.len();
    let quota = all.len().div_ceil(n_members);
    let mut load: BTreeMap<&String, usize> = g.members.keys().map(|m| (m, 0)).collect();
    let process = |m: &String| g.members[m].process_id.as_str();
    let prev_owner = |s: &str, p: i32| -> Option<&String> {
        g.members
            .keys()
            .find(|m| contains(&g.members[*m].assigned.active, s, p))
            .or_else(|| {
                g.members
                    .keys()
                    .find(|m| contains(&g.members[*m].revoking, s, p))
            })
            .or_else(|| {
                g.target
                    .iter()
                    .find(|(m, t)| g.members.contains_key(*m) && contains(&t.active, s, p))
                    .and_then(|(m, _)| g.members.get_key_value(m).map(|(k, _)| k))
            })
    };
    let mut pending = Vec::new();
    for (s, p) in &all {
        match prev_owner(s, *p) {
            Some(m) if load[m] < quota => {
                *load.get_mut(m).expect("member") += 1;
                insert(&mut target.get_mut(m).expect("member").active, s, *p);
            }
            prev => pending.push((s, *p, prev.map(|m| process(m).to_string()))),
        }
    }
    for (s, p, prev_process) in pending {
        let least = |same_process: bool| {
            load.iter()
                .filter(|(m, l)| {
                    **l < quota && (!same_process || Some(process(m)) == prev_process.as_deref())
                })
                .min_by(|x, y| x.1.cmp(y.1).then(x.0.cmp(y.0)))
                .map(|(m, _)| *m)
        };
        let m = least(true)
            .or_else(|| least(false))
            .expect("quota × members ≥ tasks");
        *load.get_mut(m).expect("member") += 1;
        insert(&mut target.get_mut(m).expect("member").active, s, p);
    }
    if standbys == 0 {
        return target;
    }
    let active_process: BTreeMap<(String, i32), String> = target
        .iter()
        .flat_map(|(m, t)| {
            t.active.iter().flat_map(move |(s, ps)| {
                ps.iter()
                    .map(move |p| ((s.clone(), *p), process(m).to_string()))
            })
        })
        .collect();
    let mut standby_load: BTreeMap<&String, usize> = g.members.keys().map(|m| (m, 0)).collect();
    for (s, p) in &all {
        let mut used: BTreeSet<String> = active_process
            .get(&(s.clone(), *p))
            .into_iter()
            .cloned()
            .collect();
        for _ in 0..standbys {
            let prev = g.members.keys().find(|m| {
                (contains(&g.members[*m].assigned.standby, s, *p)
                    || g.target
                        .get(*m)
                        .is_some_and(|t| contains(&t.standby, s, *p)))
                    && !used.contains(process(m))
            });
            let pick = prev.or_else(|| {
                standby_load
                    .iter()
                    .filter(|(m, _)| !used.contains(process(m)))
                    .min_by(|x, y| x.1.cmp(y.1).then(x.0.cmp(y.0)))
                    .map(|(m, _)| *m)
            });
            let Some(m) = pick else {
                // Fewer processes than replicas: Kafka leaves the rest unassigned too.
                break;
            };
            used.insert(process(m).to_string());
            *standby_load.get_mut(m).expect("member") += 1;
            insert(&mut target.get_mut(m).expect("member").standby, s, *p);
        }
    }
    target
}

impl StreamsGroups {
    pub fn new(cfg: StreamsGroupsConfig) -> Self {
        StreamsGroups {
            cfg,
            ..Default::default()
        }
    }
    pub fn take_groups_refused(&mut self) -> u64 {
        std::mem::take(&mut self.groups_refused)
    }
    pub fn take_records(&mut self) -> Vec<StreamsGroupSnapshot> {
        std::mem::take(&mut self.records)
    }

    fn snapshot(g: &SGroup) -> StreamsGroupSnapshot {
        StreamsGroupSnapshot {
            group_id: g.group_id.clone(),
            group_epoch: g.group_epoch,
            assignment_epoch: g.assignment_epoch,
            topology: g.topology.clone(),
            tasks: g.tasks.clone(),
            // Without the volatile fields, so that a plain heartbeat changes nothing durable.
            members: g
                .members
                .values()
                .map(|m| SMember {
                    last_heartbeat_ms: 0,
                    last_sent: None,
                    task_offsets: Vec::new(),
                    task_end_offsets: Vec::new(),
                    ..m.clone()
                })
                .collect(),
            target: g.target.clone(),
            endpoint_epoch: g.endpoint_epoch,
            removed: false,
        }
    }

    fn end_record(group_id: &str) -> StreamsGroupSnapshot {
        StreamsGroupSnapshot {
            group_id: group_id.to_string(),
            group_epoch: 0,
            assignment_epoch: 0,
            topology: None,
            tasks: BTreeMap::new(),
            members: Vec::new(),
            target: BTreeMap::new(),
            endpoint_epoch: 0,
            removed: true,
        }
    }

    fn set_live(&mut self, group_id: &str) {
        if self
            .groups
            .get(group_id)
            .is_some_and(|g| !g.members.is_empty())
        {
            self.live.insert(group_id.to_string());
        } else {
            self.live.remove(group_id);
        }
    }

    /// Removes empty groups for which `keep` is false (their offsets are gone, or another
    /// protocol's group took the id), at most every [`PRUNE_INTERVAL_MS`].
    pub fn prune(&mut self, now_ms: i64, keep: &dyn Fn(&str) -> bool) {
        if now_ms < self.next_prune_ms {
            return;
        }
        self.next_prune_ms = now_ms + PRUNE_INTERVAL_MS;
        let gone: Vec<String> = self
            .groups
            .values()
            .filter(|g| g.members.is_empty() && !keep(&g.group_id))
            .map(|g| g.group_id.clone())
            .collect();
        for id in gone {
            self.groups.remove(&id);
            self.records.push(Self::end_record(&id));
        }
    }

    /// DeleteGroups: `None` if there is no such streams group, NON_EMPTY_GROUP while it has
    /// members.
    pub fn delete(&mut self, group_id: &str) -> Option<Result<(), E>> {
        let g = self.groups.get(group_id)?;
        if !g.members.is_empty() {
            return Some(Err(E::NonEmptyGroup));
        }
        self.groups.remove(group_id);
        self.shutdown_requested.remove(group_id);
        self.records.push(Self::end_record(group_id));
        Some(Ok(()))
    }

    pub fn snapshots(&self) -> Vec<StreamsGroupSnapshot> {
        self.groups.values().map(Self::snapshot).collect()
    }

    /// Restores a group at start-up; its members get a fresh session from `now_ms`.
    pub fn replay(&mut self, s: StreamsGroupSnapshot, now_ms: i64) {
        let id = s.group_id.clone();
        if s.removed {
            self.groups.remove(&id);
            self.live.remove(&id);
            return;
        }
        let members = s
            .members
            .into_iter()
            .map(|mut m| {
                m.last_heartbeat_ms = now_ms;
                m.revoke_deadline_ms = now_ms + m.rebalance_timeout_ms;
                m.last_sent = None;
                (m.member_id.clone(), m)
            })
            .collect();
        self.groups.insert(
            s.group_id.clone(),
            SGroup {
                group_id: s.group_id,
                group_epoch: s.group_epoch,
                assignment_epoch: s.assignment_epoch,
                topology: s.topology,
                configured: Configured {
                    tasks: s.tasks.clone(),
                    ..Default::default()
                },
                tasks: s.tasks,
                members,
                target: s.target,
                endpoint_epoch: s.endpoint_epoch,
            },
        );
        self.set_live(&id);
    }

    pub fn group(&self, id: &str) -> Option<&SGroup> {
        self.groups.get(id)
    }
    pub fn groups(&self) -> impl Iterator<Item = &SGroup> {
        self.groups.values()
    }
    pub fn is_active(&self, id: &str) -> bool {
        self.groups.get(id).is_some_and(|g| !g.members.is_empty())
    }
    /// The topology of group `id`, for the caller to create its missing internal topics.
    pub fn topology(&self, id: &str) -> Option<&Topology> {
        self.groups.get(id).and_then(|g| g.topology.as_ref())
    }
    /// The source topics of group `id` (offsets of those are never expired while it has members).
    pub fn subscribed_topics(&self, id: &str) -> Option<std::collections::HashSet<String>> {
        let g = self.groups.get(id).filter(|g| !g.members.is_empty())?;
        let t = g.topology.as_ref()?;
        Some(
            t.subtopologies
                .iter()
                .flat_map(|s| {
                    s.source_topics
                        .iter()
                        .cloned()
                        .chain(s.repartition_source_topics.iter().map(|t| t.name.clone()))
                })
                .collect(),
        )
    }

    pub fn set_overrides(&mut self, group_id: &str, o: StreamsGroupOverrides) {
        if o == StreamsGroupOverrides::default() {
            self.overrides.remove(group_id);
        } else {
            self.overrides.insert(group_id.to_string(), o);
        }
    }

    fn session_timeout_ms(&self, group_id: &str) -> i64 {
        self.overrides
            .get(group_id)
            .and_then(|o| o.session_timeout_ms)
            .unwrap_or(self.cfg.session_timeout_ms)
    }
    fn heartbeat_interval_ms(&self, group_id: &str) -> i32 {
        self.overrides
            .get(group_id)
            .and_then(|o| o.heartbeat_interval_ms)
            .unwrap_or(self.cfg.heartbeat_interval_ms)
    }
    fn num_standby_replicas(&self, group_id: &str) -> usize {
        self.overrides
            .get(group_id)
            .and_then(|o| o.num_standby_replicas)
            .map(|n| n.max(0) as usize)
            .unwrap_or(self.cfg.num_standby_replicas)
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

    /// Kafka's `throwIfStreamsGroupHeartbeatRequestIsInvalid`, plus Vltava's bounds.
    fn validate(req: &HeartbeatReq) -> Result<(), (E, String)> {
        let invalid = |m: &str| Err((E::InvalidRequest, m.to_string()));
        if req.group_id.is_empty() {
            return Err((E::InvalidGroupId, "GroupId can't be empty.".into()));
        }
        if req.member_id.is_empty() {
            return invalid("MemberId can't be empty.");
        }
        if req.instance_id.as_deref() == Some("") {
            return invalid("InstanceId can't be empty.");
        }
        if req.rack_id.as_deref() == Some("") {
            return invalid("RackId can't be empty.");
        }
        let long = |s: &str| s.len() > MAX_MEMBER_STRING_BYTES;
        if req.process_id.as_deref().is_some_and(long)
            || req.user_endpoint.as_ref().is_some_and(|e| long(&e.host))
            || req.client_tags.as_ref().is_some_and(|t| {
                t.len() > MAX_CLIENT_TAGS || t.iter().any(|(k, v)| long(k) || long(v))
            })
        {
            return invalid("the process id, endpoint or client tags exceed this broker's bounds");
        }
        match req.member_epoch {
            0 => {
                if req.rebalance_timeout_ms == -1 {
                    return invalid("RebalanceTimeoutMs must be provided when joining.");
                }
                let Some(t) = &req.topology else {
                    return invalid("Topology must be non-null when joining.");
                };
                let empty = |t: &Option<Tasks>| t.as_ref().is_some_and(|t| count(t) == 0);
                if !empty(&req.active_tasks)
                    || !empty(&req.standby_tasks)
                    || !empty(&req.warmup_tasks)
                {
                    return invalid("ActiveTasks, StandbyTasks and WarmupTasks must be empty when (re-)joining.");
                }
                if req.process_id.as_deref().is_none_or(str::is_empty) {
                    return invalid("ProcessId can't be null or empty when joining.");
                }
                t.validate().map_err(|m| (E::StreamsInvalidTopology, m))?;
            }
            e if e < -2 => return invalid("MemberEpoch is invalid."),
            -2 if req.instance_id.is_none() => {
                return invalid("InstanceId can't be null when leaving with MemberEpoch -2.")
            }
            _ => {
                if req.topology.is_some() {
                    return invalid("Topology can only be provided when (re-)joining.");
                }
            }
        }
        Ok(())
    }

    /// StreamsGroupHeartbeat. `topics` maps every existing topic to its partition count.
    pub fn heartbeat(
        &mut self,
        req: HeartbeatReq,
        topics: &BTreeMap<String, i32>,
        now_ms: i64,
    ) -> HeartbeatResp {
        if let Err((e, m)) = Self::validate(&req) {
            return Self::error(e, &m, &req.member_id);
        }
        let group_id = req.group_id.clone();
        let before = self.groups.get(&group_id).map(Self::snapshot);
        let is_new = before.is_none();
        if is_new && req.member_epoch == 0 && self.groups.len() >= self.cfg.max_groups {
            self.groups_refused += 1;
            return Self::error(
                E::CoordinatorNotAvailable,
                "the broker holds its maximum number of groups",
                &req.member_id,
            );
        }
        let resp = self.heartbeat_inner(req, topics, now_ms);
        match self.groups.get(&group_id) {
            // A heartbeat that joined nothing leaves nothing behind.
            Some(g) if g.members.is_empty() && is_new => {
                self.groups.remove(&group_id);
            }
            Some(g) => {
                if g.members.is_empty() {
                    self.shutdown_requested.remove(&group_id);
                }
                let after = Self::snapshot(g);
                if before.as_ref() != Some(&after) {
                    self.records.push(after);
                }
            }
            None => {}
        }
        self.set_live(&group_id);
        resp
    }

    fn heartbeat_inner(
        &mut self,
        req: HeartbeatReq,
        topics: &BTreeMap<String, i32>,
        now_ms: i64,
    ) -> HeartbeatResp {
        let interval = self.heartbeat_interval_ms(&req.group_id);
        let standbys = self.num_standby_replicas(&req.group_id);
        let (max, lag, offset_interval) = (
            self.cfg.max_group_size,
            self.cfg.acceptable_recovery_lag,
            self.cfg.task_offset_interval_ms,
        );
        let g = self
            .groups
            .entry(req.group_id.clone())
            .or_insert_with(|| SGroup {
                group_id: req.group_id.clone(),
                ..Default::default()
            });
        let member_id = req.member_id.clone();
        let mut joined = false;
        // Whether the group epoch moves (once per heartbeat, however many things changed).
        let mut bump = false;
        match req.member_epoch {
            0 => {
                let topology = req.topology.clone().expect("validated");
                // A static member rejoining under a new member id takes over its tasks.
                let mut replaced = None;
                if let Some(instance) = &req.instance_id {
                    let holder = g
                        .members
                        .values()
                        .find(|m| {
                            m.member_id != member_id && m.instance_id.as_ref() == Some(instance)
                        })
                        .map(|m| (m.member_id.clone(), m.left_static));
                    match holder {
                        Some((_, false)) => {
                            return Self::error(
                                E::UnreleasedInstanceId,
                                &format!("Static member with instance id {instance} is still in the group: it must leave first."),
                                &member_id,
                            );
                        }
                        Some((old, true)) => {
                            replaced = g.members.remove(&old);
                            if let Some(t) = g.target.remove(&old) {
                                g.target.insert(member_id.clone(), t);
                            }
                        }
                        None => {}
                    }
                }
                if replaced.is_none()
                    && !g.members.contains_key(&member_id)
                    && g.members.len() >= max
                {
                    return Self::error(
                        E::GroupMaxSizeReached,
                        &format!(
                            "The streams group has reached its maximum capacity of {max} members."
                        ),
                        &member_id,
                    );
                }
                // The group's topology: set by its first member, replaced by a member with a
                // newer epoch or when no other member runs the old one.
                let others = g.members.keys().filter(|m| **m != member_id).count();
                match &g.topology {
                    Some(t) if t.epoch == topology.epoch && *t != topology && others > 0 => {
                        return Self::error(
                            E::StreamsInvalidTopologyEpoch,
                            &format!(
                                "Topology updated but topology epoch {} not incremented.",
                                topology.epoch
                            ),
                            &member_id,
                        );
                    }
                    Some(t) if t.epoch > topology.epoch && others > 0 => {}
                    Some(t) if *t == topology => {}
                    _ => {
                        g.topology = Some(topology.clone());
                        bump = true;
                    }
                }
                let old = g.members.remove(&member_id);
                let rebalance_timeout_ms = req.rebalance_timeout_ms.max(0) as i64;
                let member = match replaced {
                    Some(r) => SMember {
                        member_id: member_id.clone(),
                        left_static: false,
                        last_sent: None,
                        last_heartbeat_ms: now_ms,
                        rebalance_timeout_ms,
                        topology_epoch: topology.epoch,
                        ..r
                    },
                    None => {
                        bump = true;
                        SMember {
                            member_id: member_id.clone(),
                            instance_id: req.instance_id.clone(),
                            rack_id: None,
                            client_id: String::new(),
                            client_host: String::new(),
                            member_epoch: 0,
                            previous_epoch: -1,
                            rebalance_timeout_ms,
                            topology_epoch: topology.epoch,
                            process_id: String::new(),
                            user_endpoint: None,
                            client_tags: BTreeMap::new(),
                            assigned: TaskSet::default(),
                            // Whatever a rejoining member still held must be released first.
                            revoking: old.map(|m| m.assigned.active).unwrap_or_default(),
                            revoke_deadline_ms: now_ms + rebalance_timeout_ms,
                            left_static: false,
                            last_heartbeat_ms: now_ms,
                            last_sent: None,
                            task_offsets: Vec::new(),
                            task_end_offsets: Vec::new(),
                        }
                    }
                };
                g.members.insert(member_id.clone(), member);
                joined = true;
            }
            -1 | -2 => {
                let static_leave = req.member_epoch == -2;
                match g.members.get_mut(&member_id) {
                    Some(m) if static_leave && m.instance_id.is_some() => {
                        // Kept, tasks and all, until its session ends or its instance rejoins.
                        m.left_static = true;
                        m.last_heartbeat_ms = now_ms;
                    }
                    Some(_) => {
                        g.members.remove(&member_id);
                        g.target.remove(&member_id);
                        g.group_epoch += 1;
                        g.endpoint_epoch += 1;
                    }
                    None => {}
                }
                return HeartbeatResp {
                    member_id,
                    member_epoch: req.member_epoch,
                    ..Default::default()
                };
            }
            epoch => {
                let Some(m) = g.members.get_mut(&member_id) else {
                    return Self::error(
                        E::UnknownMemberId,
                        &format!(
                            "Member {member_id} is not a member of group {}.",
                            req.group_id
                        ),
                        &member_id,
                    );
                };
                if epoch != m.member_epoch && epoch != m.previous_epoch {
                    return Self::error(
                        E::FencedMemberEpoch,
                        &format!(
                            "The streams group member has a smaller member epoch ({epoch}) than the one known by the group coordinator ({}). The member must abandon all its tasks and rejoin.",
                            m.member_epoch
                        ),
                        &member_id,
                    );
                }
                if epoch == m.previous_epoch && epoch != m.member_epoch {
                    // The member missed the answer moving it on: resend its assignment.
                    m.last_sent = None;
                }
                m.last_heartbeat_ms = now_ms;
                if req.rebalance_timeout_ms > 0 {
                    m.rebalance_timeout_ms = req.rebalance_timeout_ms as i64;
                }
            }
        }
        // Member metadata that changed (null: unchanged).
        let m = g.members.get_mut(&member_id).expect("member exists");
        m.client_id = req.client_id.clone();
        m.client_host = req.client_host.clone();
        if req.rack_id.is_some() {
            m.rack_id = req.rack_id.clone();
        }
        if let Some(p) = &req.process_id {
            if *p != m.process_id {
                m.process_id = p.clone();
                bump = true;
            }
        }
        if let Some(e) = &req.user_endpoint {
            if m.user_endpoint.as_ref() != Some(e) {
                m.user_endpoint = Some(e.clone());
                g.endpoint_epoch += 1;
            }
        }
        if let Some(t) = &req.client_tags {
            m.client_tags = t.clone();
        }
        if let Some(o) = &req.task_offsets {
            m.task_offsets = o.clone();
        }
        if let Some(o) = &req.task_end_offsets {
            m.task_end_offsets = o.clone();
        }
        let member_topology_epoch = m.topology_epoch;
        if req.shutdown_application {
            self.shutdown_requested.insert(req.group_id.clone());
        }
        // The topology against the topics as they exist now; the tasks change with them.
        g.configured = g
            .topology
            .as_ref()
            .map(|t| t.configure(topics))
            .unwrap_or_default();
        if g.configured.tasks != g.tasks {
            g.tasks = g.configured.tasks.clone();
            bump = true;
        }
        if bump {
            g.group_epoch += 1;
        }
        if g.assignment_epoch < g.group_epoch {
            g.target = assign(g, standbys);
            g.assignment_epoch = g.group_epoch;
        }
        let changed_endpoints = Self::reconcile(g, &member_id, &req, now_ms);
        if changed_endpoints {
            g.endpoint_epoch += 1;
        }
        let mut statuses = g.configured.statuses.clone();
        if let Some(t) = &g.topology {
            if member_topology_epoch < t.epoch {
                statuses.push((
                    status::STALE_TOPOLOGY,
                    format!(
                        "The member's topology epoch {member_topology_epoch} is behind the group's topology epoch {}.",
                        t.epoch
                    ),
                ));
            }
        }
        if self.shutdown_requested.contains(&req.group_id) {
            statuses.push((
                status::SHUTDOWN_APPLICATION,
                "A KafkaStreams instance encountered a fatal error and requested a shutdown for the entire application.".into(),
            ));
        }
        let partitions_by_endpoint =
            (req.endpoint_information_epoch != g.endpoint_epoch).then(|| Self::endpoints(g));
        let m = g.members.get_mut(&member_id).expect("member exists");
        let changed = m.last_sent.as_ref() != Some(&m.assigned) || joined;
        if changed {
            m.last_sent = Some(m.assigned.clone());
        }
        HeartbeatResp {
            error: 0,
            message: None,
            member_id,
            member_epoch: m.member_epoch,
            heartbeat_interval_ms: interval,
            acceptable_recovery_lag: lag,
            task_offset_interval_ms: offset_interval,
            statuses,
            assignment: changed.then(|| m.assigned.clone()),
            endpoint_information_epoch: g.endpoint_epoch,
            partitions_by_endpoint,
        }
    }

    /// Moves the member towards its target; returns whether what it owns changed.
    fn reconcile(g: &mut SGroup, member_id: &str, req: &HeartbeatReq, now_ms: i64) -> bool {
        let target = g.target.get(member_id).cloned().unwrap_or_default();
        // Active tasks held (assigned or still revoking) by everyone else.
        let mut others = Tasks::new();
        for (id, m) in &g.members {
            if id != member_id {
                union_into(&mut others, &m.assigned.active);
                union_into(&mut others, &m.revoking);
            }
        }
        let epoch = g.assignment_epoch;
        let m = g.members.get_mut(member_id).expect("member exists");
        let before = m.assigned.clone();
        if let Some(owned) = &req.active_tasks {
            // Revoked tasks it no longer reports are free.
            m.revoking = intersect(&m.revoking, owned);
        }
        let revoke = minus(&m.assigned.active, &target.active);
        if count(&revoke) > 0 {
            union_into(&mut m.revoking, &revoke);
            m.assigned.active = intersect(&m.assigned.active, &target.active);
            m.revoke_deadline_ms = now_ms + m.rebalance_timeout_ms;
        }
        // Standby and warm-up tasks that are no longer its own go at once.
        m.assigned.standby = intersect(&m.assigned.standby, &target.standby);
        m.assigned.warmup = intersect(&m.assigned.warmup, &target.warmup);
        if count(&m.revoking) > 0 {
            // Stays in its epoch until the revocation is acknowledged.
            return before != m.assigned;
        }
        let new = minus(&minus(&target.active, &m.assigned.active), &others);
        union_into(&mut m.assigned.active, &new);
        // ARCHITECTURE.md: an active task has at most one owner at a time.
        assert!(
            count(&intersect(&m.assigned.active, &others)) == 0,
            "an active task given to two members"
        );
        m.assigned.standby = target.standby.clone();
        m.assigned.warmup = target.warmup.clone();
        if m.member_epoch != epoch {
            m.previous_epoch = m.member_epoch;
            m.member_epoch = epoch;
        }
        before != m.assigned
    }

    /// IQ: every member with an endpoint and the input partitions of its tasks.
    fn endpoints(g: &SGroup) -> Vec<EndpointPartitions> {
        let Some(topology) = &g.topology else {
            return Vec::new();
        };
        let parts = |tasks: &Tasks| {
            let mut out: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
            for (s, ps) in tasks {
                for t in topology.inputs_of(s) {
                    let n = g.configured.input_partitions.get(t).copied().unwrap_or(0);
                    let e = out.entry(t.to_string()).or_default();
                    e.extend(ps.iter().copied().filter(|p| *p < n));
                }
            }
            out.retain(|_, v| !v.is_empty());
            out
        };
        g.members
            .values()
            .filter_map(|m| {
                Some(EndpointPartitions {
                    endpoint: m.user_endpoint.clone()?,
                    active: parts(&m.assigned.active),
                    standby: parts(&m.assigned.standby),
                })
            })
            .collect()
    }

    /// Expires silent members and members that do not revoke within their rebalance timeout.
    /// Visits only the groups with members.
    pub fn tick(&mut self, now_ms: i64) {
        let mut emptied = Vec::new();
        let sessions: BTreeMap<String, i64> = self
            .live
            .iter()
            .map(|id| (id.clone(), self.session_timeout_ms(id)))
            .collect();
        for (id, session) in sessions {
            let Some(g) = self.groups.get_mut(&id) else {
                continue;
            };
            let before = g.members.len();
            g.members.retain(|_, m| {
                now_ms - m.last_heartbeat_ms < session
                    && (m.revoking.is_empty() || now_ms < m.revoke_deadline_ms)
            });
            if g.members.len() != before {
                g.target.retain(|id, _| g.members.contains_key(id));
                g.group_epoch += 1;
                g.endpoint_epoch += 1;
                self.records.push(Self::snapshot(g));
                if g.members.is_empty() {
                    emptied.push(g.group_id.clone());
                }
            }
        }
        for id in emptied {
            // Kept, Empty, while its offsets are (see `prune`).
            self.live.remove(&id);
            self.shutdown_requested.remove(&id);
        }
    }

    /// OffsetCommit from a streams group member: the epoch must be current (as KIP-848's).
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
            Some(m) if epoch > m.member_epoch => Err(E::StaleMemberEpoch),
            Some(m) if epoch != m.member_epoch && epoch != m.previous_epoch => {
                Err(E::StaleMemberEpoch)
            }
            Some(_) => Ok(()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::streams_topology::{Subtopology, TopicDef};
    use super::*;

    fn topology() -> Topology {
        Topology {
            epoch: 0,
            subtopologies: vec![
                Subtopology {
                    id: "0".into(),
                    source_topics: vec!["in".into()],
                    repartition_sink_topics: vec!["app-r-repartition".into()],
                    ..Default::default()
                },
                Subtopology {
                    id: "1".into(),
                    repartition_source_topics: vec![TopicDef {
                        name: "app-r-repartition".into(),
                        ..Default::default()
                    }],
                    state_changelog_topics: vec![TopicDef {
                        name: "app-s-changelog".into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            ],
        }
    }

    fn topics() -> BTreeMap<String, i32> {
        [
            ("in".to_string(), 3),
            ("app-r-repartition".to_string(), 3),
            ("app-s-changelog".to_string(), 3),
        ]
        .into()
    }

    fn join(member: &str, process: &str) -> HeartbeatReq {
        HeartbeatReq {
            group_id: "g".into(),
            member_id: member.into(),
            member_epoch: 0,
            rebalance_timeout_ms: 10_000,
            topology: Some(topology()),
            active_tasks: Some(Tasks::new()),
            standby_tasks: Some(Tasks::new()),
            warmup_tasks: Some(Tasks::new()),
            process_id: Some(process.into()),
            ..Default::default()
        }
    }

    fn hb(member: &str, epoch: i32, owned: Option<Tasks>) -> HeartbeatReq {
        HeartbeatReq {
            group_id: "g".into(),
            member_id: member.into(),
            member_epoch: epoch,
            rebalance_timeout_ms: -1,
            active_tasks: owned,
            ..Default::default()
        }
    }

    fn active(r: &HeartbeatResp) -> Tasks {
        r.assignment
            .as_ref()
            .map(|a| a.active.clone())
            .unwrap_or_default()
    }

    #[test]
    fn one_member_gets_every_task() {
        let mut s = StreamsGroups::new(StreamsGroupsConfig::default());
        let r = s.heartbeat(join("a", "p1"), &topics(), 0);
        assert_eq!(r.error, 0, "{:?}", r.message);
        assert_eq!(r.member_epoch, 1, "the first member joins in epoch 1");
        assert_eq!(count(&active(&r)), 6);
        let a = r.assignment.unwrap();
        assert!(a.standby.is_empty() && a.warmup.is_empty());
        assert_eq!(r.heartbeat_interval_ms, 5_000);
        assert!(r.statuses.is_empty());
        assert_eq!(s.group("g").unwrap().state_name(), "Stable");
        let again = s.heartbeat(hb("a", 2, None), &topics(), 10);
        assert!(again.assignment.is_none(), "unchanged: not resent");
    }

    #[test]
    fn tasks_move_only_after_revocation_and_stick() {
        let mut s = StreamsGroups::new(StreamsGroupsConfig::default());
        let a = s.heartbeat(join("a", "p1"), &topics(), 0);
        let b = s.heartbeat(join("b", "p2"), &topics(), 10);
        assert_eq!(b.member_epoch, 2);
        assert_eq!(count(&active(&b)), 0, "b waits for a's tasks");
        let a2 = s.heartbeat(hb("a", a.member_epoch, None), &topics(), 20);
        assert_eq!(a2.member_epoch, 1, "a stays in its epoch until it revokes");
        let kept = active(&a2);
        assert_eq!(count(&kept), 3);
        let b2 = s.heartbeat(hb("b", 2, None), &topics(), 30);
        assert!(b2.assignment.is_none(), "a has not revoked yet");
        let a3 = s.heartbeat(hb("a", 1, Some(kept.clone())), &topics(), 40);
        assert_eq!(a3.member_epoch, 2);
        let b3 = s.heartbeat(hb("b", 2, None), &topics(), 50);
        let got = active(&b3);
        assert_eq!(count(&got), 3);
        assert!(minus(&got, &kept) == got, "disjoint");
        assert_eq!(s.group("g").unwrap().state_name(), "Stable");
        // b leaves: a gets everything back, keeping what it had.
        s.heartbeat(hb("b", -1, None), &topics(), 60);
        let a4 = s.heartbeat(hb("a", 2, Some(kept.clone())), &topics(), 70);
        assert_eq!(count(&active(&a4)), 6);
        assert_eq!(intersect(&active(&a4), &kept), kept);
        assert_eq!(s.validate_commit("g", "a", a4.member_epoch), Some(Ok(())));
        assert_eq!(
            s.validate_commit("g", "a", 99),
            Some(Err(E::StaleMemberEpoch))
        );
        assert_eq!(
            s.validate_commit("g", "x", 1),
            Some(Err(E::UnknownMemberId))
        );
    }

    #[test]
    fn standbys_go_to_other_processes() {
        let mut s = StreamsGroups::new(StreamsGroupsConfig {
            num_standby_replicas: 1,
            ..Default::default()
        });
        s.heartbeat(join("a", "p1"), &topics(), 0);
        s.heartbeat(join("b", "p2"), &topics(), 0);
        let g = s.group("g").unwrap();
        for (m, t) in &g.target {
            for (sub, ps) in &t.standby {
                for p in ps {
                    let owner = g.target.iter().find(|(_, o)| contains(&o.active, sub, *p));
                    assert_ne!(
                        owner.map(|(id, _)| id),
                        Some(m),
                        "standby apart from active"
                    );
                }
            }
        }
        let standbys: usize = g.target.values().map(|t| count(&t.standby)).sum();
        assert_eq!(standbys, 6, "one replica of each task");
        // Two members of one process: no standby can be placed.
        let mut s = StreamsGroups::new(StreamsGroupsConfig {
            num_standby_replicas: 1,
            ..Default::default()
        });
        s.heartbeat(join("a", "p1"), &topics(), 0);
        s.heartbeat(join("b", "p1"), &topics(), 0);
        let standbys: usize = s
            .group("g")
            .unwrap()
            .target
            .values()
            .map(|t| count(&t.standby))
            .sum();
        assert_eq!(standbys, 0);
    }

    #[test]
    fn missing_topics_give_statuses_and_no_tasks() {
        let mut s = StreamsGroups::new(StreamsGroupsConfig::default());
        let none = BTreeMap::new();
        let r = s.heartbeat(join("a", "p1"), &none, 0);
        assert_eq!(r.statuses[0].0, status::MISSING_SOURCE_TOPICS);
        assert_eq!(count(&active(&r)), 0);
        assert_eq!(s.group("g").unwrap().state_name(), "NotReady");
        let only_source: BTreeMap<String, i32> = [("in".to_string(), 3)].into();
        let r = s.heartbeat(hb("a", r.member_epoch, None), &only_source, 10);
        assert_eq!(r.statuses[0].0, status::MISSING_INTERNAL_TOPICS);
        let r = s.heartbeat(hb("a", r.member_epoch, None), &topics(), 20);
        assert!(r.statuses.is_empty());
        assert_eq!(count(&active(&r)), 6);
    }

    #[test]
    fn invalid_requests_and_fencing() {
        let mut s = StreamsGroups::new(StreamsGroupsConfig::default());
        let mut r = join("", "p1");
        assert_eq!(
            s.heartbeat(r.clone(), &topics(), 0).error,
            E::InvalidRequest.code()
        );
        r.member_id = "a".into();
        r.topology = None;
        assert_eq!(
            s.heartbeat(r.clone(), &topics(), 0).error,
            E::InvalidRequest.code()
        );
        let mut bad = join("a", "p1");
        bad.topology.as_mut().unwrap().subtopologies[1].id = "0".into();
        assert_eq!(
            s.heartbeat(bad, &topics(), 0).error,
            E::StreamsInvalidTopology.code()
        );
        assert!(s.group("g").is_none(), "nothing left behind");
        let a = s.heartbeat(join("a", "p1"), &topics(), 0);
        assert_eq!(
            s.heartbeat(hb("a", a.member_epoch + 5, None), &topics(), 0)
                .error,
            E::FencedMemberEpoch.code()
        );
        assert_eq!(
            s.heartbeat(hb("zz", 3, None), &topics(), 0).error,
            E::UnknownMemberId.code()
        );
        let mut changed = join("b", "p2");
        changed.topology.as_mut().unwrap().subtopologies.pop();
        changed.topology.as_mut().unwrap().subtopologies[0]
            .repartition_sink_topics
            .clear();
        assert_eq!(
            s.heartbeat(changed, &topics(), 0).error,
            E::StreamsInvalidTopologyEpoch.code()
        );
    }

    #[test]
    fn sessions_expire_and_snapshots_restore() {
        let mut s = StreamsGroups::new(StreamsGroupsConfig::default());
        let a = s.heartbeat(join("a", "p1"), &topics(), 0);
        s.heartbeat(join("b", "p2"), &topics(), 0);
        let records = s.take_records();
        let mut d = StreamsGroups::new(StreamsGroupsConfig::default());
        for r in records {
            d.replay(r, 1_000);
        }
        let again = d.heartbeat(hb("a", a.member_epoch, None), &topics(), 1_100);
        assert_eq!(again.error, 0);
        assert!(again.assignment.is_some(), "resent after a restart");
        // a revokes what b is to get, then a plain heartbeat changes nothing durable.
        let acked = d.heartbeat(
            hb("a", again.member_epoch, Some(active(&again))),
            &topics(),
            1_150,
        );
        assert_eq!(acked.member_epoch, 2);
        d.take_records();
        d.heartbeat(hb("a", acked.member_epoch, None), &topics(), 1_200);
        assert!(
            d.take_records().is_empty(),
            "a plain heartbeat writes nothing"
        );
        // b never heartbeats again: its session ends, a gets everything once it revokes.
        d.tick(1_000 + 45_000);
        assert_eq!(d.group("g").unwrap().members.len(), 1);
        d.set_overrides(
            "g",
            StreamsGroupOverrides {
                session_timeout_ms: Some(6_000),
                ..Default::default()
            },
        );
        d.tick(1_200 + 6_000);
        let g = d.group("g").expect("kept while its offsets are");
        assert_eq!((g.state_name(), g.members.len()), ("Empty", 0));
        assert!(g.topology.is_some(), "with its topology");
        assert!(!d.is_active("g"));
        let mut e = StreamsGroups::new(StreamsGroupsConfig::default());
        for r in d.take_records() {
            e.replay(r, 50_000);
        }
        assert_eq!(
            e.group("g").map(|g| g.members.len()),
            Some(0),
            "Empty after a restart"
        );
        // The classic coordinator still has the group's offsets: kept; then they are gone.
        d.prune(10_000, &|_| true);
        assert!(d.group("g").is_some());
        d.prune(12_000, &|_| false);
        assert!(d.group("g").is_some(), "at most every PRUNE_INTERVAL_MS");
        d.prune(15_000, &|_| false);
        assert!(d.group("g").is_none());
        for r in d.take_records() {
            e.replay(r, 60_000);
        }
        assert_eq!(e.groups().count(), 0, "its end is durable");
        // An empty group is deleted; one with members is not.
        e.heartbeat(join("a", "p1"), &topics(), 70_000);
        assert_eq!(e.delete("g"), Some(Err(E::NonEmptyGroup)));
        e.heartbeat(hb("a", -1, None), &topics(), 70_100);
        assert_eq!(e.delete("g"), Some(Ok(())));
        assert_eq!(e.delete("g"), None);
    }

    #[test]
    fn static_members_rejoin_with_their_tasks() {
        let mut s = StreamsGroups::new(StreamsGroupsConfig::default());
        let mut j = join("a", "p1");
        j.instance_id = Some("i".into());
        let a = s.heartbeat(j, &topics(), 0);
        let mut dup = join("b", "p1");
        dup.instance_id = Some("i".into());
        assert_eq!(
            s.heartbeat(dup.clone(), &topics(), 10).error,
            E::UnreleasedInstanceId.code()
        );
        let mut leave = hb("a", -2, None);
        leave.instance_id = Some("i".into());
        assert_eq!(s.heartbeat(leave, &topics(), 20).member_epoch, -2);
        let epoch = s.group("g").unwrap().group_epoch;
        let b = s.heartbeat(dup, &topics(), 30);
        assert_eq!(b.error, 0);
        assert_eq!(b.member_epoch, a.member_epoch, "no rebalance");
        assert_eq!(count(&active(&b)), 6);
        assert_eq!(s.group("g").unwrap().group_epoch, epoch);
    }

    #[test]
    fn endpoints_map_partitions_for_interactive_queries() {
        let mut s = StreamsGroups::new(StreamsGroupsConfig::default());
        let mut j = join("a", "p1");
        j.user_endpoint = Some(Endpoint {
            host: "h".into(),
            port: 7,
        });
        let r = s.heartbeat(j, &topics(), 0);
        let e = r
            .partitions_by_endpoint
            .expect("epoch differs from the client's 0");
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].active["in"], [0, 1, 2].into());
        assert_eq!(e[0].active["app-r-repartition"], [0, 1, 2].into());
        let mut again = hb("a", r.member_epoch, None);
        again.endpoint_information_epoch = r.endpoint_information_epoch;
        assert!(s
            .heartbeat(again, &topics(), 10)
            .partitions_by_endpoint
            .is_none());
    }

    #[test]
    fn groups_are_bounded() {
        let mut s = StreamsGroups::new(StreamsGroupsConfig {
            max_groups: 1,
            max_group_size: 1,
            ..Default::default()
        });
        assert_eq!(s.heartbeat(join("a", "p"), &topics(), 0).error, 0);
        assert_eq!(
            s.heartbeat(join("b", "p"), &topics(), 0).error,
            E::GroupMaxSizeReached.code()
        );
        let other = HeartbeatReq {
            group_id: "h".into(),
            ..join("c", "p")
        };
        assert_eq!(
            s.heartbeat(other, &topics(), 0).error,
            E::CoordinatorNotAvailable.code()
        );
        assert_eq!(s.take_groups_refused(), 1);
    }
}
