//! Drives the coordinator for the async handlers: one lock around the state machine, its store
//! and the waiting requests. Each call queues the records it produced (group commit, see
//! `store.rs`), hands finished waits to their requests and releases the lock; a request is
//! answered only once everything queued by then is durable, so no answer reveals state that a
//! power loss could take back. No lock is held across the fsync.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use kafka_protocol::error::ResponseError as E;
use tokio::sync::{oneshot, watch};

use super::consumer::{ConsumerGroups, ConsumerGroupsConfig};
use super::coordinator::{
    Completion, Coordinator, CoordinatorConfig, JoinRequest, JoinResult, Reply, StoreRecord,
    SyncResult, Ticket,
};
use super::offsets_topic;
use super::store::{self, GroupStore, ViewSink, MAX_PENDING_BYTES};
use super::streams::{StreamsGroupOverrides, StreamsGroups, StreamsGroupsConfig};
use crate::log_limit::LogLimiter;
use vltava_storage::durable::StorageHealth;

pub struct Inner {
    pub coord: Coordinator,
    /// KIP-848 groups (membership only; their offsets live in `coord`).
    pub cgroups: ConsumerGroups,
    /// KIP-1071 streams groups (membership and topology; their offsets live in `coord`).
    pub sgroups: StreamsGroups,
    store: GroupStore,
    /// Requests waiting for a rebalance; a completion carries the store sequence number to
    /// wait for before answering.
    waiters: HashMap<Ticket, oneshot::Sender<(Completion, u64)>>,
}

pub struct GroupService {
    inner: Mutex<Inner>,
    /// What the store has made durable (see `store.rs`).
    durable: watch::Receiver<store::Durable>,
    pending_bytes: Arc<AtomicU64>,
    /// Refusals of new groups are logged at most once per interval: peers cause them.
    log_limit: LogLimiter,
    /// Whether the store feeds the `__consumer_offsets` view (`offsets_topic.rs`).
    viewed: bool,
}

impl GroupService {
    /// `view`, if any, receives the state in `__consumer_offsets` form as it becomes durable;
    /// with `republish` the whole replayed state first (after a crash, or when the view is new).
    pub fn open(
        dir: &Path,
        cfg: CoordinatorConfig,
        now_ms: i64,
        health: StorageHealth,
        view: Option<Box<dyn ViewSink>>,
        republish: bool,
    ) -> io::Result<GroupService> {
        let viewed = view.is_some();
        let (mut store, records) = GroupStore::open(dir, health, view)?;
        let mut cgroups = ConsumerGroups::new(ConsumerGroupsConfig {
            max_groups: cfg.max_groups,
            ..ConsumerGroupsConfig::default()
        });
        let mut sgroups = StreamsGroups::new(StreamsGroupsConfig {
            max_groups: cfg.max_groups,
            ..StreamsGroupsConfig::default()
        });
        let mut coord = Coordinator::new(cfg);
        for r in records {
            match r {
                StoreRecord::ConsumerGroup(s) => cgroups.replay(s, now_ms),
                StoreRecord::StreamsGroup(s) => sgroups.replay(s, now_ms),
                r => coord.replay(r, now_ms),
            }
        }
        if viewed && republish {
            store.append_viewed(&[], offsets_topic::state_view(&coord, now_ms))?;
        }
        let (durable, pending_bytes) = (store.subscribe(), store.pending_bytes());
        Ok(GroupService {
            durable,
            pending_bytes,
            log_limit: LogLimiter::default(),
            viewed,
            inner: Mutex::new(Inner {
                coord,
                cgroups,
                sgroups,
                store,
                waiters: HashMap::new(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the coordinator, queues what it recorded and completes finished waits.
    /// Returns `f`'s result and the store sequence number that must be durable before it is
    /// revealed; fails if the store can no longer persist.
    fn apply<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> io::Result<(R, u64)> {
        let mut inner = self.lock();
        if inner.store.failed() {
            // Requests parked for a rebalance would wait for one that cannot happen any more:
            // dropping their senders answers them COORDINATOR_NOT_AVAILABLE.
            inner.waiters.clear();
            return Err(io::Error::other("the group store failed to persist"));
        }
        let r = f(&mut inner);
        let refused = inner.coord.take_groups_refused()
            + inner.cgroups.take_groups_refused()
            + inner.sgroups.take_groups_refused();
        if refused > 0 {
            let max_groups = inner.coord.config().max_groups;
            crate::warn_limited!(
                self.log_limit,
                "max.groups",
                refused,
                max_groups,
                "refusing new groups with COORDINATOR_NOT_AVAILABLE: the broker holds --max-groups groups"
            );
        }
        let mut records = inner.coord.take_records();
        records.extend(
            inner
                .cgroups
                .take_records()
                .into_iter()
                .map(StoreRecord::ConsumerGroup),
        );
        records.extend(
            inner
                .sgroups
                .take_records()
                .into_iter()
                .map(StoreRecord::StreamsGroup),
        );
        let view = if self.viewed {
            offsets_topic::view_records(&records, crate::clock::now_ms())
        } else {
            Vec::new()
        };
        let persisted = inner.store.append_viewed(&records, view);
        if persisted.is_ok() && !records.is_empty() {
            let Inner {
                coord,
                cgroups,
                sgroups,
                store,
                ..
            } = &mut *inner;
            if let Err(e) = store.maybe_compact(coord, cgroups, sgroups) {
                tracing::warn!(error = %e, "group store compaction failed");
            }
        }
        let seq = inner.store.last_seq();
        for c in inner.coord.take_completions() {
            let t = match &c {
                Completion::Join(t, _) | Completion::Sync(t, _) => *t,
            };
            if let Some(tx) = inner.waiters.remove(&t) {
                let _ = tx.send((c, seq));
            }
        }
        persisted.map(|_| (r, seq))
    }

    /// Runs `f` on the coordinator (see [`GroupService::apply`]) and returns its result once
    /// everything it could have observed is durable. Waits first while the store's queue is
    /// full.
    pub async fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> io::Result<R> {
        let mut durable = self.durable.clone();
        let room =
            |_: &store::Durable| self.pending_bytes.load(Ordering::Acquire) <= MAX_PENDING_BYTES;
        if !room(&durable.borrow()) {
            let room = durable.wait_for(room).await;
            room.map_err(|_| io::Error::other("the group store has stopped"))?;
        }
        let (r, seq) = self.apply(f)?;
        store::wait_durable(&mut durable, seq).await?;
        Ok(r)
    }

    /// Sets a consumer-protocol group's timeouts (its group configs, already made durable).
    pub fn set_group_timeouts(
        &self,
        group_id: &str,
        t: crate::group_config::GroupTimeouts,
    ) -> io::Result<()> {
        self.apply(|i| i.cgroups.set_timeouts(group_id, t))
            .map(|_| ())
    }

    /// Sets a streams group's `streams.*` overrides (its group configs, already made durable).
    pub fn set_streams_overrides(
        &self,
        group_id: &str,
        o: StreamsGroupOverrides,
    ) -> io::Result<()> {
        self.apply(|i| i.sgroups.set_overrides(group_id, o))
            .map(|_| ())
    }

    /// Advances the coordinator's clock. Nothing waits for its records: a request answered
    /// after this waits for them in [`GroupService::with`].
    pub fn tick(&self, now_ms: i64) {
        // After a failed write the store's thread has logged it once; the group APIs answer
        // COORDINATOR_NOT_AVAILABLE until a restart.
        let _ = self.apply(|i| {
            i.cgroups.tick(now_ms);
            i.sgroups.tick(now_ms);
            let Inner {
                coord,
                cgroups,
                sgroups,
                ..
            } = i;
            coord.tick_with(now_ms, &|id| {
                cgroups
                    .subscribed_topics(id)
                    .or_else(|| sgroups.subscribed_topics(id))
            });
            // An empty streams group lasts as long as its offsets (the classic coordinator's
            // memberless group of that id), and gives way to another protocol's group.
            sgroups.prune(now_ms, &|id| {
                coord.group(id).is_some_and(|g| g.members.is_empty()) && !cgroups.is_active(id)
            });
        });
    }

    /// Shutdown: JoinGroup and SyncGroup requests waiting for a rebalance are answered at once
    /// with COORDINATOR_NOT_AVAILABLE (clients retry against the restarted coordinator) instead of
    /// holding the connection drain until the rebalance ends.
    pub fn abandon_waiters(&self) {
        self.lock().waiters.clear();
    }

    pub async fn join(&self, req: JoinRequest, now_ms: i64) -> JoinResult {
        let member_id = req.member_id.clone();
        let (tx, rx) = oneshot::channel();
        let reply = self
            .with(|i| {
                let r = i.coord.join(req, now_ms);
                if let Reply::Later(t) = r {
                    i.waiters.insert(t, tx);
                }
                r
            })
            .await;
        let waited = match reply {
            Ok(Reply::Now(r)) => return r,
            Ok(Reply::Later(_)) => self.completion(rx).await,
            Err(e) => Err(e),
        };
        match waited {
            Ok(Completion::Join(_, r)) => r,
            Ok(_) => unavailable_join(&member_id),
            Err(e) => {
                log_unavailable(&e, "join");
                unavailable_join(&member_id)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn sync(
        &self,
        group_id: &str,
        generation_id: i32,
        member_id: &str,
        instance_id: Option<&str>,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, bytes::Bytes)>,
        now_ms: i64,
    ) -> SyncResult {
        let (tx, rx) = oneshot::channel();
        let reply = self
            .with(|i| {
                let r = i.coord.sync(
                    group_id,
                    generation_id,
                    member_id,
                    instance_id,
                    protocol_type,
                    protocol_name,
                    assignments,
                    now_ms,
                );
                if let Reply::Later(t) = r {
                    i.waiters.insert(t, tx);
                }
                r
            })
            .await;
        let unavailable = SyncResult {
            error: E::CoordinatorNotAvailable.code(),
            ..Default::default()
        };
        let waited = match reply {
            Ok(Reply::Now(r)) => return r,
            Ok(Reply::Later(_)) => self.completion(rx).await,
            Err(e) => Err(e),
        };
        match waited {
            Ok(Completion::Sync(_, r)) => r,
            Ok(_) => unavailable,
            Err(e) => {
                log_unavailable(&e, "sync");
                unavailable
            }
        }
    }

    /// A rebalance's answer to a waiting request, once the state it reveals is durable.
    async fn completion(&self, rx: oneshot::Receiver<(Completion, u64)>) -> io::Result<Completion> {
        let (c, seq) = rx
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::Interrupted, "the wait was abandoned"))?;
        store::wait_durable(&mut self.durable.clone(), seq).await?;
        Ok(c)
    }
}

/// A wait abandoned at shutdown (or after a store failure, logged by the store) is not news.
fn log_unavailable(e: &io::Error, what: &str) {
    if e.kind() != io::ErrorKind::Interrupted {
        tracing::warn!(error = %e, "{what} answered COORDINATOR_NOT_AVAILABLE");
    }
}

fn unavailable_join(member_id: &str) -> JoinResult {
    JoinResult {
        error: E::CoordinatorNotAvailable.code(),
        generation_id: -1,
        member_id: member_id.to_string(),
        ..Default::default()
    }
}
