//! Drives the coordinator for the async handlers: one lock around the state machine, its store
//! and the waiting requests. After every call, new records are fsynced and finished waits are
//! handed to their requests.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use kafka_protocol::error::ResponseError as E;
use tokio::sync::oneshot;

use super::consumer::{ConsumerGroups, ConsumerGroupsConfig};
use super::coordinator::{
    Completion, Coordinator, CoordinatorConfig, JoinRequest, JoinResult, Reply, StoreRecord,
    SyncResult, Ticket,
};
use super::store::GroupStore;

pub struct Inner {
    pub coord: Coordinator,
    /// KIP-848 groups (membership only; their offsets live in `coord`).
    pub cgroups: ConsumerGroups,
    store: GroupStore,
    waiters: HashMap<Ticket, oneshot::Sender<Completion>>,
}

pub struct GroupService {
    inner: Mutex<Inner>,
}

impl GroupService {
    pub fn open(dir: &Path, cfg: CoordinatorConfig, now_ms: i64) -> io::Result<GroupService> {
        let (store, records) = GroupStore::open(dir)?;
        let mut coord = Coordinator::new(cfg);
        let mut cgroups = ConsumerGroups::new(ConsumerGroupsConfig::default());
        for r in records {
            match r {
                StoreRecord::ConsumerGroup(s) => cgroups.replay(s, now_ms),
                r => coord.replay(r, now_ms),
            }
        }
        Ok(GroupService {
            inner: Mutex::new(Inner {
                coord,
                cgroups,
                store,
                waiters: HashMap::new(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the coordinator, then persists what it recorded and completes finished waits.
    /// Fails if the records could not be made durable.
    pub fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> io::Result<R> {
        let mut inner = self.lock();
        let r = f(&mut inner);
        let mut records = inner.coord.take_records();
        records.extend(
            inner
                .cgroups
                .take_records()
                .into_iter()
                .map(StoreRecord::ConsumerGroup),
        );
        let persisted = inner.store.append(&records);
        if persisted.is_ok() && !records.is_empty() {
            let Inner {
                coord,
                cgroups,
                store,
                ..
            } = &mut *inner;
            if let Err(e) = store.maybe_compact(coord, cgroups) {
                tracing::warn!(error = %e, "group store compaction failed");
            }
        }
        for c in inner.coord.take_completions() {
            let t = match &c {
                Completion::Join(t, _) | Completion::Sync(t, _) => *t,
            };
            if let Some(tx) = inner.waiters.remove(&t) {
                let _ = tx.send(c);
            }
        }
        persisted.map(|_| r)
    }

    pub fn tick(&self, now_ms: i64) {
        if let Err(e) = self.with(|i| {
            i.coord.tick(now_ms);
            i.cgroups.tick(now_ms);
        }) {
            tracing::error!(error = %e, "cannot persist group state");
        }
    }

    /// Shutdown: JoinGroup and SyncGroup requests waiting for a rebalance are answered at once
    /// with COORDINATOR_NOT_AVAILABLE (clients retry against the restarted coordinator) instead of
    /// holding the connection drain until the rebalance ends.
    pub fn abandon_waiters(&self) {
        let _ = self.with(|i| i.waiters.clear());
    }

    pub async fn join(&self, req: JoinRequest, now_ms: i64) -> JoinResult {
        let member_id = req.member_id.clone();
        let (tx, rx) = oneshot::channel();
        let reply = self.with(|i| {
            let r = i.coord.join(req, now_ms);
            if let Reply::Later(t) = r {
                i.waiters.insert(t, tx);
            }
            r
        });
        match reply {
            Ok(Reply::Now(r)) => r,
            Ok(Reply::Later(_)) => match rx.await {
                Ok(Completion::Join(_, r)) => r,
                _ => unavailable_join(&member_id),
            },
            Err(e) => {
                tracing::error!(error = %e, "cannot persist group state");
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
        let reply = self.with(|i| {
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
        });
        let unavailable = SyncResult {
            error: E::CoordinatorNotAvailable.code(),
            ..Default::default()
        };
        match reply {
            Ok(Reply::Now(r)) => r,
            Ok(Reply::Later(_)) => match rx.await {
                Ok(Completion::Sync(_, r)) => r,
                _ => unavailable,
            },
            Err(e) => {
                tracing::error!(error = %e, "cannot persist group state");
                unavailable
            }
        }
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
