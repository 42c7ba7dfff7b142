//! The transaction coordinator as a deterministic state machine: no I/O, no clock. Every call
//! takes `now_ms`. Changes that must be durable before the answer come out of
//! [`TxnCoordinator::take_records`] (each the whole state of one transactional id, as Kafka's
//! `__transaction_state` values are); markers to write to the partitions of a transaction come
//! out of [`TxnCoordinator::take_actions`], and [`TxnCoordinator::markers_written`] completes the
//! transaction once they are durable. Semantics follow Kafka's `TransactionCoordinator` and
//! `TransactionMetadata` for transaction versions 0 and 1 (KIP-98, KIP-360, KIP-588):
//!
//! ```text
//! Empty ──AddPartitions/AddOffsets──▶ Ongoing ──EndTxn(commit)──▶ PrepareCommit ──markers──▶ CompleteCommit
//!                                       │ └────EndTxn(abort)───▶ PrepareAbort ──markers──▶ CompleteAbort
//!                                       └─timeout / InitProducerId─▶ (epoch bumped) PrepareAbort
//! Complete* ──AddPartitions──▶ Ongoing;  Empty / Complete* ──InitProducerId──▶ Empty (epoch bumped)
//! ```
//!
//! Fencing is by epoch: InitProducerId bumps it, so an older instance of the same
//! transactional id gets PRODUCER_FENCED. A transaction open past its timeout, or when a new
//! instance initialises, is aborted with the epoch bumped (Kafka's PrepareEpochFence followed by
//! PrepareAbort, one durable step here).

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError as E;
use serde::{Deserialize, Serialize};

/// Kafka's `TransactionState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

impl TxnState {
    /// The names DescribeTransactions and ListTransactions use (Kafka's `stateName`).
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }
    pub fn from_name(name: &str) -> Option<TxnState> {
        [
            TxnState::Empty,
            TxnState::Ongoing,
            TxnState::PrepareCommit,
            TxnState::PrepareAbort,
            TxnState::CompleteCommit,
            TxnState::CompleteAbort,
            TxnState::Dead,
            TxnState::PrepareEpochFence,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }
    fn is_complete(self) -> bool {
        matches!(
            self,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        )
    }
}

/// A topic partition of a transaction.
pub type TopicPartition = (String, i32);

/// The state of one transactional id (Kafka's `TransactionMetadata`), persisted whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnMetadata {
    pub transactional_id: String,
    pub producer_id: i64,
    /// The producer id before the last one was handed out for epoch exhaustion (KIP-360
    /// retries of InitProducerId may name it).
    pub prev_producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch before the last bump (KIP-360: a retried InitProducerId names it).
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<TopicPartition>,
    /// Groups whose offsets the transaction commits (AddOffsetsToTxn).
    pub groups: BTreeSet<String>,
    /// When the transaction became Ongoing; -1 when none is.
    pub start_ms: i64,
    pub last_update_ms: i64,
}

/// A durable change: the whole state of a transactional id, or its removal (expiration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnRecord {
    Txn(TxnMetadata),
    Remove { transactional_id: String },
}

/// Work for the driver: write these markers (then call [`TxnCoordinator::markers_written`]),
/// and apply or discard the transaction's staged offsets in `groups`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteMarkers {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    pub partitions: Vec<TopicPartition>,
    pub groups: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct TxnConfig {
    /// transaction.max.timeout.ms
    pub max_timeout_ms: i32,
    /// transactional.id.expiration.ms
    pub id_expiration_ms: i64,
    /// Vltava's bound (Kafka has none): transactional ids held at once.
    pub max_transactional_ids: usize,
    /// Vltava's bound: partitions (and groups) one transaction may hold.
    pub max_partitions_per_txn: usize,
}

impl Default for TxnConfig {
    fn default() -> Self {
        TxnConfig {
            max_timeout_ms: 900_000,
            id_expiration_ms: 7 * 24 * 3600 * 1000,
            max_transactional_ids: 100_000,
            max_partitions_per_txn: 10_000,
        }
    }
}

/// What InitProducerId needs from the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitOutcome {
    Ok {
        producer_id: i64,
        epoch: i16,
    },
    /// Call again with a freshly allocated producer id.
    NeedsProducerId,
    Err(E),
}

/// Kafka's bound: an epoch that reached it needs a new producer id.
const MAX_EPOCH: i16 = i16::MAX - 1;

pub struct TxnCoordinator {
    cfg: TxnConfig,
    txns: BTreeMap<String, TxnMetadata>,
    records: Vec<TxnRecord>,
    actions: Vec<WriteMarkers>,
}

impl TxnCoordinator {
    pub fn new(cfg: TxnConfig) -> Self {
        TxnCoordinator {
            cfg,
            txns: BTreeMap::new(),
            records: Vec::new(),
            actions: Vec::new(),
        }
    }

    pub fn config(&self) -> &TxnConfig {
        &self.cfg
    }

    /// Folds in a record read back from the store (start-up replay).
    pub fn replay(&mut self, r: TxnRecord) {
        match r {
            TxnRecord::Txn(m) => {
                self.txns.insert(m.transactional_id.clone(), m);
            }
            TxnRecord::Remove { transactional_id } => {
                self.txns.remove(&transactional_id);
            }
        }
    }

    /// After the replay: the transactions prepared before a crash get their markers written
    /// again (markers are idempotent for the log: a second one closes nothing).
    pub fn recover(&mut self) {
        let prepared: Vec<String> = self
            .txns
            .values()
            .filter(|m| matches!(m.state, TxnState::PrepareCommit | TxnState::PrepareAbort))
            .map(|m| m.transactional_id.clone())
            .collect();
        for id in prepared {
            self.push_markers(&id);
        }
    }

    pub fn take_records(&mut self) -> Vec<TxnRecord> {
        std::mem::take(&mut self.records)
    }
    pub fn take_actions(&mut self) -> Vec<WriteMarkers> {
        std::mem::take(&mut self.actions)
    }
    /// Every transactional id's state, for a compacted snapshot of the store.
    pub fn snapshot(&self) -> Vec<TxnRecord> {
        self.txns.values().cloned().map(TxnRecord::Txn).collect()
    }
    pub fn get(&self, transactional_id: &str) -> Option<&TxnMetadata> {
        self.txns.get(transactional_id)
    }
    pub fn iter(&self) -> impl Iterator<Item = &TxnMetadata> {
        self.txns.values()
    }
    pub fn len(&self) -> usize {
        self.txns.len()
    }
    pub fn is_empty(&self) -> bool {
        self.txns.is_empty()
    }

    fn persist(&mut self, id: &str) {
        if let Some(m) = self.txns.get(id) {
            self.records.push(TxnRecord::Txn(m.clone()));
        }
    }

    fn push_markers(&mut self, id: &str) {
        let Some(m) = self.txns.get(id) else { return };
        // Invariant: markers are written only for a prepared transaction.
        assert!(
            matches!(m.state, TxnState::PrepareCommit | TxnState::PrepareAbort),
            "markers for a transaction in state {:?}",
            m.state
        );
        self.actions.push(WriteMarkers {
            transactional_id: m.transactional_id.clone(),
            producer_id: m.producer_id,
            producer_epoch: m.producer_epoch,
            commit: m.state == TxnState::PrepareCommit,
            partitions: m.partitions.iter().cloned().collect(),
            groups: m.groups.iter().cloned().collect(),
        });
    }

    /// InitProducerId with a transactional id. `expected` is the producer id and epoch the
    /// client already has (KIP-360), `new_producer_id` one the caller allocated after a
    /// [`InitOutcome::NeedsProducerId`].
    pub fn init_producer_id(
        &mut self,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        new_producer_id: Option<i64>,
        now_ms: i64,
    ) -> InitOutcome {
        if transactional_id.is_empty() {
            return InitOutcome::Err(E::InvalidRequest);
        }
        if timeout_ms <= 0 || timeout_ms > self.cfg.max_timeout_ms {
            return InitOutcome::Err(E::InvalidTransactionTimeout);
        }
        let Some(m) = self.txns.get(transactional_id) else {
            if self.txns.len() >= self.cfg.max_transactional_ids {
                return InitOutcome::Err(E::CoordinatorNotAvailable);
            }
            let Some(pid) = new_producer_id else {
                return InitOutcome::NeedsProducerId;
            };
            let m = TxnMetadata {
                transactional_id: transactional_id.to_string(),
                producer_id: pid,
                prev_producer_id: -1,
                producer_epoch: 0,
                last_producer_epoch: -1,
                timeout_ms,
                state: TxnState::Empty,
                partitions: BTreeSet::new(),
                groups: BTreeSet::new(),
                start_ms: -1,
                last_update_ms: now_ms,
            };
            self.txns.insert(transactional_id.to_string(), m);
            self.persist(transactional_id);
            return InitOutcome::Ok {
                producer_id: pid,
                epoch: 0,
            };
        };
        // KIP-360: the client names what it has; a retry of an InitProducerId that was answered
        // (the client names the previous epoch) gets the same answer again.
        if let Some((pid, epoch)) = expected {
            let current = pid == m.producer_id && epoch == m.producer_epoch;
            let retried = (pid == m.producer_id && epoch == m.last_producer_epoch)
                || (pid == m.prev_producer_id && m.producer_epoch == 0);
            if retried && m.state.is_complete() {
                return InitOutcome::Ok {
                    producer_id: m.producer_id,
                    epoch: m.producer_epoch,
                };
            }
            if !current && !retried {
                return InitOutcome::Err(E::ProducerFenced);
            }
        }
        match m.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => {
                InitOutcome::Err(E::ConcurrentTransactions)
            }
            TxnState::Ongoing => {
                // Fence the previous instance and abort its transaction; the client retries
                // and gets a new epoch once the abort completed.
                self.fence_and_abort(transactional_id, now_ms);
                InitOutcome::Err(E::ConcurrentTransactions)
            }
            TxnState::Dead => InitOutcome::Err(E::ConcurrentTransactions),
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                let exhausted = m.producer_epoch >= MAX_EPOCH;
                if exhausted && new_producer_id.is_none() {
                    return InitOutcome::NeedsProducerId;
                }
                let Some(m) = self.txns.get_mut(transactional_id) else {
                    return InitOutcome::Err(E::CoordinatorNotAvailable);
                };
                if exhausted {
                    m.prev_producer_id = m.producer_id;
                    m.producer_id = new_producer_id.unwrap_or(m.producer_id);
                    m.last_producer_epoch = -1;
                    m.producer_epoch = 0;
                } else {
                    m.last_producer_epoch = m.producer_epoch;
                    m.producer_epoch += 1;
                }
                m.timeout_ms = timeout_ms;
                m.state = TxnState::Empty;
                m.partitions.clear();
                m.groups.clear();
                m.start_ms = -1;
                m.last_update_ms = now_ms;
                let out = InitOutcome::Ok {
                    producer_id: m.producer_id,
                    epoch: m.producer_epoch,
                };
                self.persist(transactional_id);
                out
            }
        }
    }

    /// Bumps the epoch (fencing the current instance) and aborts the ongoing transaction.
    fn fence_and_abort(&mut self, id: &str, now_ms: i64) {
        let Some(m) = self.txns.get_mut(id) else {
            return;
        };
        debug_assert_eq!(m.state, TxnState::Ongoing);
        if m.producer_epoch < MAX_EPOCH {
            m.last_producer_epoch = m.producer_epoch;
            m.producer_epoch += 1;
        }
        m.state = TxnState::PrepareAbort;
        m.last_update_ms = now_ms;
        self.persist(id);
        self.push_markers(id);
    }

    /// The checks every request of a transaction makes first.
    fn check_producer(&self, id: &str, producer_id: i64, epoch: i16) -> Result<&TxnMetadata, E> {
        let m = self.txns.get(id).ok_or(E::InvalidProducerIdMapping)?;
        if m.producer_id != producer_id {
            return Err(E::InvalidProducerIdMapping);
        }
        if m.producer_epoch != epoch {
            return Err(E::ProducerFenced);
        }
        Ok(m)
    }

    /// AddPartitionsToTxn (v0–v3, and v4+ non-verify-only) and AddOffsetsToTxn (with
    /// `groups`): starts the transaction if none is open.
    pub fn add_to_txn(
        &mut self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[TopicPartition],
        groups: &[String],
        now_ms: i64,
    ) -> Result<(), E> {
        let m = self.check_producer(id, producer_id, epoch)?;
        match m.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => {
                return Err(E::ConcurrentTransactions)
            }
            TxnState::Dead => return Err(E::InvalidTxnState),
            _ => {}
        }
        let has_all = m.state == TxnState::Ongoing
            && partitions.iter().all(|p| m.partitions.contains(p))
            && groups.iter().all(|g| m.groups.contains(g));
        if has_all {
            return Ok(());
        }
        let start_new = m.state != TxnState::Ongoing;
        let (known_p, known_g) = if start_new {
            (0, 0)
        } else {
            (m.partitions.len(), m.groups.len())
        };
        if known_p + partitions.len() > self.cfg.max_partitions_per_txn
            || known_g + groups.len() > self.cfg.max_partitions_per_txn
        {
            return Err(E::InvalidRequest);
        }
        let Some(m) = self.txns.get_mut(id) else {
            return Err(E::InvalidProducerIdMapping);
        };
        if start_new {
            m.partitions.clear();
            m.groups.clear();
            m.start_ms = now_ms;
            m.state = TxnState::Ongoing;
        }
        m.partitions.extend(partitions.iter().cloned());
        m.groups.extend(groups.iter().cloned());
        m.last_update_ms = now_ms;
        self.persist(id);
        Ok(())
    }

    /// The verify-only form of AddPartitionsToTxn (KIP-890) and the check a transactional
    /// produce makes: the partition is in the producer's ongoing transaction.
    pub fn verify_partition(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partition: &TopicPartition,
    ) -> Result<(), E> {
        let m = self.check_producer(id, producer_id, epoch)?;
        if m.state == TxnState::Ongoing && m.partitions.contains(partition) {
            Ok(())
        } else {
            Err(E::InvalidTxnState)
        }
    }

    /// Whether `group` is part of the producer's ongoing transaction (TxnOffsetCommit).
    pub fn verify_group(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        group: &str,
    ) -> Result<(), E> {
        let m = self.check_producer(id, producer_id, epoch)?;
        if m.state == TxnState::Ongoing && m.groups.contains(group) {
            Ok(())
        } else {
            Err(E::InvalidTxnState)
        }
    }

    /// EndTxn: prepares the commit or abort (durable before the answer) and hands the markers
    /// to the driver.
    pub fn end_txn(
        &mut self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        now_ms: i64,
    ) -> Result<(), E> {
        let m = self.check_producer(id, producer_id, epoch)?;
        match (m.state, commit) {
            (TxnState::Ongoing, _) => {}
            // A retry of an EndTxn already done.
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => return Ok(()),
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                return Err(E::ConcurrentTransactions)
            }
            (TxnState::PrepareEpochFence, _) => return Err(E::ConcurrentTransactions),
            _ => return Err(E::InvalidTxnState),
        }
        let Some(m) = self.txns.get_mut(id) else {
            return Err(E::InvalidProducerIdMapping);
        };
        m.state = if commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        m.last_update_ms = now_ms;
        self.persist(id);
        self.push_markers(id);
        Ok(())
    }

    /// The markers of `id`'s prepared transaction are durable: it is complete.
    pub fn markers_written(&mut self, id: &str, producer_epoch: i16, now_ms: i64) {
        let Some(m) = self.txns.get_mut(id) else {
            return;
        };
        let next = match m.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            TxnState::PrepareAbort => TxnState::CompleteAbort,
            _ => return,
        };
        if m.producer_epoch != producer_epoch {
            // Not the markers of the prepared transaction (a stale completion).
            return;
        }
        m.state = next;
        m.partitions.clear();
        m.groups.clear();
        m.start_ms = -1;
        m.last_update_ms = now_ms;
        self.persist(id);
    }

    /// Kafka's `abortTimedOutTransactions` and `removeExpiredTransactionalIds`: aborts (epoch
    /// bumped) every transaction open past its timeout, and removes ids idle past
    /// transactional.id.expiration.ms. O(transactional ids), run every few seconds like Kafka's
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`.
    pub fn tick(&mut self, now_ms: i64) {
        let timed_out: Vec<String> = self
            .txns
            .values()
            .filter(|m| {
                m.state == TxnState::Ongoing
                    && now_ms.saturating_sub(m.start_ms) > m.timeout_ms as i64
            })
            .map(|m| m.transactional_id.clone())
            .collect();
        for id in timed_out {
            tracing::info!(transactional_id = %id, "aborting a transaction open past its timeout");
            self.fence_and_abort(&id, now_ms);
        }
        let expired: Vec<String> = self
            .txns
            .values()
            .filter(|m| {
                m.state.is_complete()
                    && now_ms.saturating_sub(m.last_update_ms) > self.cfg.id_expiration_ms
            })
            .map(|m| m.transactional_id.clone())
            .collect();
        for id in expired {
            self.txns.remove(&id);
            self.records.push(TxnRecord::Remove {
                transactional_id: id,
            });
        }
    }

    /// ListTransactions: ids whose state is in `states` (all if empty), whose producer id is in
    /// `producer_ids` (all if empty) and, with `min_duration_ms` ≥ 0, open at least that long
    /// (KIP-994).
    pub fn list(
        &self,
        states: &[TxnState],
        producer_ids: &[i64],
        min_duration_ms: i64,
        now_ms: i64,
    ) -> Vec<&TxnMetadata> {
        self.txns
            .values()
            .filter(|m| states.is_empty() || states.contains(&m.state))
            .filter(|m| producer_ids.is_empty() || producer_ids.contains(&m.producer_id))
            .filter(|m| {
                min_duration_ms < 0
                    || (m.start_ms >= 0 && now_ms.saturating_sub(m.start_ms) >= min_duration_ms)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(t: &str, p: i32) -> TopicPartition {
        (t.to_string(), p)
    }

    fn init(c: &mut TxnCoordinator, id: &str, next_pid: i64, now: i64) -> (i64, i16) {
        match c.init_producer_id(id, 60_000, None, None, now) {
            InitOutcome::Ok { producer_id, epoch } => (producer_id, epoch),
            InitOutcome::NeedsProducerId => {
                match c.init_producer_id(id, 60_000, None, Some(next_pid), now) {
                    InitOutcome::Ok { producer_id, epoch } => (producer_id, epoch),
                    other => panic!("init: {other:?}"),
                }
            }
            InitOutcome::Err(e) => panic!("init: {e:?}"),
        }
    }

    #[test]
    fn commit_goes_through_prepare_and_complete() {
        let mut c = TxnCoordinator::new(TxnConfig::default());
        let (pid, epoch) = init(&mut c, "t", 7, 0);
        assert_eq!((pid, epoch), (7, 0));
        assert_eq!(
            c.take_records().len(),
            1,
            "a new id is durable before its answer"
        );
        assert_eq!(
            c.verify_partition("t", pid, epoch, &tp("a", 0)),
            Err(E::InvalidTxnState),
            "a partition not added"
        );
        c.add_to_txn("t", pid, epoch, &[tp("a", 0), tp("a", 1)], &[], 10)
            .unwrap();
        c.add_to_txn("t", pid, epoch, &[], &["g".into()], 11)
            .unwrap();
        assert_eq!(c.get("t").unwrap().state, TxnState::Ongoing);
        assert_eq!(c.get("t").unwrap().start_ms, 10);
        c.verify_partition("t", pid, epoch, &tp("a", 1)).unwrap();
        c.verify_group("t", pid, epoch, "g").unwrap();
        c.take_records();
        c.end_txn("t", pid, epoch, true, 20).unwrap();
        assert_eq!(c.get("t").unwrap().state, TxnState::PrepareCommit);
        assert_eq!(c.take_records().len(), 1);
        let actions = c.take_actions();
        assert_eq!(actions.len(), 1);
        assert!(actions[0].commit);
        assert_eq!(actions[0].partitions, vec![tp("a", 0), tp("a", 1)]);
        assert_eq!(actions[0].groups, vec!["g".to_string()]);
        // A second EndTxn while markers are written, and one of the other kind.
        assert_eq!(
            c.end_txn("t", pid, epoch, true, 21),
            Err(E::ConcurrentTransactions)
        );
        assert_eq!(
            c.end_txn("t", pid, epoch, false, 21),
            Err(E::InvalidTxnState)
        );
        assert_eq!(
            c.add_to_txn("t", pid, epoch, &[tp("b", 0)], &[], 21),
            Err(E::ConcurrentTransactions)
        );
        c.markers_written("t", epoch, 30);
        let m = c.get("t").unwrap();
        assert_eq!(
            (m.state, m.partitions.len(), m.start_ms),
            (TxnState::CompleteCommit, 0, -1)
        );
        // A retried commit is fine; an abort now is not.
        c.end_txn("t", pid, epoch, true, 31).unwrap();
        assert_eq!(
            c.end_txn("t", pid, epoch, false, 31),
            Err(E::InvalidTxnState)
        );
        // The next transaction starts from CompleteCommit.
        c.add_to_txn("t", pid, epoch, &[tp("b", 0)], &[], 40)
            .unwrap();
        assert_eq!(c.get("t").unwrap().partitions.len(), 1);
    }

    #[test]
    fn bad_requests_get_kafkas_errors() {
        let mut c = TxnCoordinator::new(TxnConfig {
            max_timeout_ms: 1000,
            ..TxnConfig::default()
        });
        assert_eq!(
            c.init_producer_id("t", 1001, None, Some(1), 0),
            InitOutcome::Err(E::InvalidTransactionTimeout)
        );
        assert_eq!(
            c.end_txn("nope", 1, 0, true, 0),
            Err(E::InvalidProducerIdMapping)
        );
        assert_eq!(
            c.init_producer_id("t", 500, None, Some(1), 0),
            InitOutcome::Ok {
                producer_id: 1,
                epoch: 0
            }
        );
        assert_eq!(
            c.end_txn("t", 1, 0, true, 0),
            Err(E::InvalidTxnState),
            "Empty"
        );
        assert_eq!(
            c.end_txn("t", 2, 0, true, 0),
            Err(E::InvalidProducerIdMapping)
        );
        assert_eq!(
            c.add_to_txn("t", 1, 3, &[tp("a", 0)], &[], 0),
            Err(E::ProducerFenced)
        );
    }

    #[test]
    fn a_second_instance_fences_the_first_and_aborts_its_transaction() {
        let mut c = TxnCoordinator::new(TxnConfig::default());
        let (pid, e0) = init(&mut c, "t", 1, 0);
        c.add_to_txn("t", pid, e0, &[tp("a", 0)], &[], 1).unwrap();
        c.take_actions();
        // The new instance's InitProducerId aborts the open transaction with a bumped epoch.
        assert_eq!(
            c.init_producer_id("t", 60_000, None, None, 2),
            InitOutcome::Err(E::ConcurrentTransactions)
        );
        let actions = c.take_actions();
        assert_eq!(actions.len(), 1);
        assert!(!actions[0].commit);
        assert_eq!(
            actions[0].producer_epoch,
            e0 + 1,
            "markers carry the fencing epoch"
        );
        assert_eq!(c.end_txn("t", pid, e0, true, 3), Err(E::ProducerFenced));
        c.markers_written("t", e0 + 1, 4);
        assert_eq!(c.get("t").unwrap().state, TxnState::CompleteAbort);
        let (pid2, e2) = init(&mut c, "t", 99, 5);
        assert_eq!((pid2, e2), (pid, e0 + 2));
        assert_eq!(
            c.add_to_txn("t", pid, e0, &[tp("a", 0)], &[], 6),
            Err(E::ProducerFenced)
        );
        // KIP-360: a retry naming the epoch before the bump gets the same answer.
        assert_eq!(
            c.init_producer_id("t", 60_000, Some((pid, e0 + 1)), None, 7),
            InitOutcome::Ok {
                producer_id: pid,
                epoch: e0 + 2
            }
        );
        assert_eq!(
            c.init_producer_id("t", 60_000, Some((pid, e0)), None, 7),
            InitOutcome::Err(E::ProducerFenced)
        );
    }

    #[test]
    fn epoch_exhaustion_takes_a_new_producer_id() {
        let mut c = TxnCoordinator::new(TxnConfig::default());
        init(&mut c, "t", 1, 0);
        c.txns.get_mut("t").unwrap().producer_epoch = MAX_EPOCH;
        assert_eq!(
            c.init_producer_id("t", 60_000, None, None, 1),
            InitOutcome::NeedsProducerId
        );
        assert_eq!(
            c.init_producer_id("t", 60_000, None, Some(2), 1),
            InitOutcome::Ok {
                producer_id: 2,
                epoch: 0
            }
        );
        assert_eq!(c.get("t").unwrap().prev_producer_id, 1);
    }

    #[test]
    fn timeouts_abort_and_idle_ids_expire() {
        let mut c = TxnCoordinator::new(TxnConfig {
            id_expiration_ms: 10_000,
            ..TxnConfig::default()
        });
        let (pid, e) = init(&mut c, "t", 1, 0);
        c.add_to_txn("t", pid, e, &[tp("a", 0)], &[], 100).unwrap();
        c.tick(100 + 60_000);
        assert!(c.take_actions().is_empty(), "not past the timeout yet");
        c.tick(100 + 60_001);
        let a = c.take_actions();
        assert_eq!(a.len(), 1);
        assert!(!a[0].commit && a[0].producer_epoch == e + 1);
        assert_eq!(c.get("t").unwrap().state, TxnState::PrepareAbort);
        // The timed-out producer is fenced.
        assert_eq!(c.end_txn("t", pid, e, true, 60_200), Err(E::ProducerFenced));
        c.markers_written("t", e + 1, 60_200);
        c.take_records();
        c.tick(60_200 + 10_001);
        assert!(c.get("t").is_none());
        assert_eq!(
            c.take_records(),
            vec![TxnRecord::Remove {
                transactional_id: "t".into()
            }]
        );
    }

    #[test]
    fn replay_restores_state_and_recovery_rewrites_prepared_markers() {
        let mut c = TxnCoordinator::new(TxnConfig::default());
        let (p1, e1) = init(&mut c, "prepared", 1, 0);
        c.add_to_txn("prepared", p1, e1, &[tp("a", 0)], &[], 1)
            .unwrap();
        c.end_txn("prepared", p1, e1, true, 2).unwrap();
        let (p2, e2) = init(&mut c, "open", 2, 0);
        c.add_to_txn("open", p2, e2, &[tp("a", 1)], &[], 3).unwrap();
        let records = c.take_records();

        let mut r = TxnCoordinator::new(TxnConfig::default());
        for rec in records {
            r.replay(rec);
        }
        r.recover();
        let a = r.take_actions();
        assert_eq!(a.len(), 1);
        assert_eq!(
            (a[0].transactional_id.as_str(), a[0].commit),
            ("prepared", true)
        );
        assert_eq!(r.get("open").unwrap().state, TxnState::Ongoing);
        assert_eq!(
            r.get("open").unwrap().start_ms,
            3,
            "the timeout still counts from the start"
        );
        assert_eq!(r.list(&[TxnState::Ongoing], &[], -1, 10).len(), 1);
        assert_eq!(r.list(&[], &[p1], -1, 10).len(), 1);
        // Both started at least 5 ms ago (a prepared transaction is still running).
        assert_eq!(r.list(&[], &[], 5, 10).len(), 2);
        assert_eq!(
            r.list(&[], &[], 8, 10).len(),
            1,
            "only the one started at 1"
        );
        assert_eq!(r.list(&[], &[], 50, 10).len(), 0);
    }

    #[test]
    fn limits_bound_what_a_peer_grows() {
        let mut c = TxnCoordinator::new(TxnConfig {
            max_transactional_ids: 1,
            max_partitions_per_txn: 2,
            ..TxnConfig::default()
        });
        let (pid, e) = init(&mut c, "t", 1, 0);
        assert_eq!(
            c.init_producer_id("u", 1000, None, Some(2), 0),
            InitOutcome::Err(E::CoordinatorNotAvailable)
        );
        assert_eq!(
            c.add_to_txn("t", pid, e, &[tp("a", 0), tp("a", 1), tp("a", 2)], &[], 0),
            Err(E::InvalidRequest)
        );
    }
}
