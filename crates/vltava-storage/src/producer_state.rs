//! Idempotent-producer state of one partition: for each producer id its epoch and the last
//! [`CACHED_BATCHES_PER_PRODUCER`] batches' sequence ranges. A pure state machine with no I/O, the
//! rules of Kafka's `ProducerStateManager` / `ProducerAppendInfo`:
//!
//! - a batch whose epoch and sequence range equal a cached batch is a retry: it is answered with
//!   the original offsets and not appended again;
//! - an epoch below the current one is `InvalidProducerEpoch`;
//! - a new epoch must start at sequence 0 (unless the producer was unknown);
//! - otherwise the first sequence must follow the last one (wrapping at i32::MAX);
//! - a producer with no state here (new, or its batches removed by retention) may start anywhere.
//!
//! Transactions (Kafka's `ProducerStateEntry.currentTxnFirstOffset`): a producer's first
//! transactional batch after a marker opens its transaction at that batch's base offset; the
//! COMMIT / ABORT marker closes it. While one is open the producer may write only transactional
//! batches, and the earliest open transaction bounds the last stable offset.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

/// Kafka keeps the last five batches per producer: the most a producer may have in flight.
pub const CACHED_BATCHES_PER_PRODUCER: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedBatch {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
    pub last_offset: i64,
    pub timestamp_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerEntry {
    pub epoch: i16,
    pub batches: VecDeque<CachedBatch>,
    /// The first offset of the producer's open transaction in this partition.
    #[serde(default)]
    pub txn_first_offset: Option<i64>,
    /// The epoch of the transaction coordinator that wrote the producer's last marker: a marker
    /// from an older coordinator is refused; -1 before any marker (Kafka's initial value).
    #[serde(default = "no_coordinator_epoch")]
    pub coordinator_epoch: i32,
    /// Wall-clock time of the producer's last write (data or marker), for expiration.
    #[serde(default)]
    pub last_write_ms: i64,
}

fn no_coordinator_epoch() -> i32 {
    -1
}

impl Default for ProducerEntry {
    fn default() -> Self {
        ProducerEntry {
            epoch: 0,
            batches: VecDeque::new(),
            txn_first_offset: None,
            coordinator_epoch: no_coordinator_epoch(),
            last_write_ms: 0,
        }
    }
}

/// What the partition should do with an idempotent batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceVerdict {
    Append,
    /// A retry of a batch already in the log, at these offsets.
    Duplicate(CachedBatch),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProducerError {
    #[error("producer {producer_id} epoch {epoch} is older than the current epoch {current}")]
    InvalidProducerEpoch {
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
    #[error("out of order sequence for producer {producer_id} epoch {epoch}: got {first_seq}, expected {expected}")]
    OutOfOrderSequence {
        producer_id: i64,
        epoch: i16,
        first_seq: i32,
        expected: i32,
    },
    #[error(
        "producer {producer_id} has an open transaction: only transactional batches are accepted"
    )]
    TransactionalWriteExpected { producer_id: i64 },
    #[error(
        "marker of coordinator epoch {got} for producer {producer_id} is older than {current}"
    )]
    CoordinatorFenced {
        producer_id: i64,
        got: i32,
        current: i32,
    },
}

/// The identity of an idempotent batch, from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerBatch {
    pub producer_id: i64,
    pub epoch: i16,
    pub first_seq: i32,
    pub last_seq: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerStateTable {
    producers: BTreeMap<i64, ProducerEntry>,
    /// (first offset, producer id) of every open transaction: derived from `producers`
    /// (rebuilt by [`ProducerStateTable::reindex`] after a snapshot is read).
    #[serde(skip)]
    open_txns: BTreeSet<(i64, i64)>,
}

/// A transaction closed by a marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub marker_offset: i64,
}

fn in_sequence(last_seq: i32, next_seq: i32) -> bool {
    next_seq as i64 == last_seq as i64 + 1 || (next_seq == 0 && last_seq == i32::MAX)
}

impl ProducerStateTable {
    pub fn len(&self) -> usize {
        self.producers.len()
    }
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }
    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }
    /// Every producer remembered, by id.
    pub fn iter(&self) -> impl Iterator<Item = (&i64, &ProducerEntry)> {
        self.producers.iter()
    }

    /// Rebuilds the open-transaction index from the entries (after deserialising a snapshot).
    pub fn reindex(&mut self) {
        self.open_txns = self
            .producers
            .iter()
            .filter_map(|(&pid, e)| Some((e.txn_first_offset?, pid)))
            .collect();
    }

    /// The first offset of the earliest open transaction.
    pub fn first_open_txn_offset(&self) -> Option<i64> {
        self.open_txns.first().map(|&(o, _)| o)
    }
    /// How many transactions are open.
    pub fn open_txn_count(&self) -> usize {
        self.open_txns.len()
    }
    /// The first offsets of open transactions other than `producer_id`'s, the earliest first.
    fn first_open_other_than(&self, producer_id: i64) -> Option<i64> {
        self.open_txns
            .iter()
            .find(|&&(_, pid)| pid != producer_id)
            .map(|&(o, _)| o)
    }

    /// Decides whether `b` (transactional or not) may be appended. Does not change the table.
    pub fn check_batch(
        &self,
        b: ProducerBatch,
        transactional: bool,
    ) -> Result<SequenceVerdict, ProducerError> {
        let verdict = self.check(b)?;
        // Whatever the epoch, as Kafka's `ProducerAppendInfo`: only a marker ends the
        // transaction, so a non-transactional write would leave it open under the LSO.
        let open = self
            .producers
            .get(&b.producer_id)
            .is_some_and(|e| e.txn_first_offset.is_some());
        if open && !transactional && verdict == SequenceVerdict::Append {
            return Err(ProducerError::TransactionalWriteExpected {
                producer_id: b.producer_id,
            });
        }
        Ok(verdict)
    }

    /// Decides whether `b` may be appended. Does not change the table.
    pub fn check(&self, b: ProducerBatch) -> Result<SequenceVerdict, ProducerError> {
        let Some(entry) = self.producers.get(&b.producer_id) else {
            return Ok(SequenceVerdict::Append);
        };
        if b.epoch == entry.epoch && entry.batches.is_empty() {
            // Only markers known (the producer's data was removed or it wrote none here).
            return Ok(SequenceVerdict::Append);
        }
        if b.epoch < entry.epoch {
            return Err(ProducerError::InvalidProducerEpoch {
                producer_id: b.producer_id,
                epoch: b.epoch,
                current: entry.epoch,
            });
        }
        if b.epoch == entry.epoch {
            if let Some(dup) = entry
                .batches
                .iter()
                .find(|c| c.first_seq == b.first_seq && c.last_seq == b.last_seq)
            {
                return Ok(SequenceVerdict::Duplicate(*dup));
            }
            match entry.batches.back() {
                Some(last) if !in_sequence(last.last_seq, b.first_seq) => {
                    Err(ProducerError::OutOfOrderSequence {
                        producer_id: b.producer_id,
                        epoch: b.epoch,
                        first_seq: b.first_seq,
                        expected: last.last_seq.wrapping_add(1).max(0),
                    })
                }
                _ => Ok(SequenceVerdict::Append),
            }
        } else if b.first_seq != 0 {
            Err(ProducerError::OutOfOrderSequence {
                producer_id: b.producer_id,
                epoch: b.epoch,
                first_seq: b.first_seq,
                expected: 0,
            })
        } else {
            Ok(SequenceVerdict::Append)
        }
    }

    /// Records an appended batch (or one found in the log during recovery).
    pub fn record(&mut self, b: ProducerBatch, base_offset: i64, last_offset: i64, ts_ms: i64) {
        self.record_batch(b, false, base_offset, last_offset, ts_ms);
    }

    /// Records an appended batch; a transactional one opens the producer's transaction unless
    /// one is open.
    pub fn record_batch(
        &mut self,
        b: ProducerBatch,
        transactional: bool,
        base_offset: i64,
        last_offset: i64,
        ts_ms: i64,
    ) {
        let entry = self.producers.entry(b.producer_id).or_default();
        entry.last_write_ms = ts_ms;
        if b.epoch != entry.epoch {
            entry.epoch = b.epoch;
            entry.batches.clear();
        }
        if transactional && entry.txn_first_offset.is_none() {
            entry.txn_first_offset = Some(base_offset);
            self.open_txns.insert((base_offset, b.producer_id));
        }
        if entry.batches.len() == CACHED_BATCHES_PER_PRODUCER {
            entry.batches.pop_front();
        }
        entry.batches.push_back(CachedBatch {
            first_seq: b.first_seq,
            last_seq: b.last_seq,
            base_offset,
            last_offset,
            timestamp_ms: ts_ms,
        });
    }

    /// Checks an end-transaction marker of `producer_id` at `epoch` written by a coordinator at
    /// `coordinator_epoch` (Kafka's `appendEndTxnMarker` checks). Does not change the table.
    pub fn check_marker(
        &self,
        producer_id: i64,
        epoch: i16,
        coordinator_epoch: i32,
    ) -> Result<(), ProducerError> {
        let Some(entry) = self.producers.get(&producer_id) else {
            return Ok(());
        };
        if epoch < entry.epoch {
            return Err(ProducerError::InvalidProducerEpoch {
                producer_id,
                epoch,
                current: entry.epoch,
            });
        }
        if coordinator_epoch < entry.coordinator_epoch {
            return Err(ProducerError::CoordinatorFenced {
                producer_id,
                got: coordinator_epoch,
                current: entry.coordinator_epoch,
            });
        }
        Ok(())
    }

    /// Records a marker at `marker_offset`: closes the producer's open transaction, if any.
    pub fn record_marker(
        &mut self,
        producer_id: i64,
        epoch: i16,
        coordinator_epoch: i32,
        marker_offset: i64,
        ts_ms: i64,
    ) -> Option<CompletedTxn> {
        let entry = self.producers.entry(producer_id).or_default();
        if epoch != entry.epoch {
            // A bumped epoch (fencing, transaction version 2) restarts the sequences.
            entry.epoch = epoch;
            entry.batches.clear();
        }
        entry.coordinator_epoch = coordinator_epoch;
        entry.last_write_ms = ts_ms;
        let first_offset = entry.txn_first_offset.take()?;
        let removed = self.open_txns.remove(&(first_offset, producer_id));
        debug_assert!(removed, "open transaction missing from the index");
        Some(CompletedTxn {
            producer_id,
            first_offset,
            marker_offset,
        })
    }

    /// The LSO right after `completed` ended: the earliest other open transaction, else the
    /// offset after its marker (the `lastStableOffset` of Kafka's aborted-transaction entry).
    pub fn stable_offset_after(&self, completed: &CompletedTxn) -> i64 {
        self.first_open_other_than(completed.producer_id)
            .map_or(completed.marker_offset + 1, |o| {
                o.min(completed.marker_offset + 1)
            })
    }

    /// Forgets producers whose last batch lies below `log_start_offset` (Kafka removes such
    /// producers when retention deletes their data). A producer with an open transaction is
    /// kept: its marker is still to come.
    pub fn evict_below(&mut self, log_start_offset: i64) {
        self.producers.retain(|_, e| {
            e.txn_first_offset.is_some()
                || e.batches
                    .back()
                    .is_some_and(|b| b.last_offset >= log_start_offset)
        });
    }

    /// Forgets producers whose last write is older than `now_ms - expiration_ms`
    /// (transactional.id.expiration / producer.id.expiration.ms), except those with an open
    /// transaction (the coordinator aborts it first).
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) {
        self.producers.retain(|_, e| {
            let last = e
                .batches
                .back()
                .map_or(e.last_write_ms, |b| b.timestamp_ms.max(e.last_write_ms));
            e.txn_first_offset.is_some() || now_ms.saturating_sub(last) < expiration_ms
        });
    }

    /// Removes the state of batches at or after `offset` (used when a torn tail is truncated).
    pub fn truncate_from(&mut self, offset: i64) {
        for e in self.producers.values_mut() {
            e.batches.retain(|b| b.last_offset < offset);
            if e.txn_first_offset.is_some_and(|o| o >= offset) {
                e.txn_first_offset = None;
            }
        }
        self.producers
            .retain(|_, e| !e.batches.is_empty() || e.txn_first_offset.is_some());
        self.reindex();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(pid: i64, epoch: i16, first: i32, last: i32) -> ProducerBatch {
        ProducerBatch {
            producer_id: pid,
            epoch,
            first_seq: first,
            last_seq: last,
        }
    }

    #[test]
    fn unknown_producer_may_start_anywhere() {
        let t = ProducerStateTable::default();
        assert_eq!(t.check(b(1, 0, 17, 20)), Ok(SequenceVerdict::Append));
    }

    #[test]
    fn in_order_then_duplicate_then_gap() {
        let mut t = ProducerStateTable::default();
        t.record(b(1, 0, 0, 4), 100, 104, 0);
        assert_eq!(t.check(b(1, 0, 5, 9)), Ok(SequenceVerdict::Append));
        t.record(b(1, 0, 5, 9), 105, 109, 0);
        match t.check(b(1, 0, 0, 4)) {
            Ok(SequenceVerdict::Duplicate(c)) => {
                assert_eq!((c.base_offset, c.last_offset), (100, 104))
            }
            other => panic!("expected duplicate, got {other:?}"),
        }
        assert!(matches!(
            t.check(b(1, 0, 12, 13)),
            Err(ProducerError::OutOfOrderSequence { expected: 10, .. })
        ));
    }

    #[test]
    fn epoch_rules() {
        let mut t = ProducerStateTable::default();
        t.record(b(1, 3, 0, 0), 0, 0, 0);
        assert!(matches!(
            t.check(b(1, 2, 1, 1)),
            Err(ProducerError::InvalidProducerEpoch { .. })
        ));
        assert!(matches!(
            t.check(b(1, 4, 5, 5)),
            Err(ProducerError::OutOfOrderSequence { expected: 0, .. })
        ));
        assert_eq!(t.check(b(1, 4, 0, 0)), Ok(SequenceVerdict::Append));
        t.record(b(1, 4, 0, 0), 1, 1, 0);
        assert_eq!(t.get(1).map(|e| e.batches.len()), Some(1));
    }

    #[test]
    fn only_last_five_batches_are_remembered() {
        let mut t = ProducerStateTable::default();
        for i in 0..7 {
            t.record(b(1, 0, i, i), i as i64, i as i64, 0);
        }
        assert!(matches!(
            t.check(b(1, 0, 1, 1)),
            Err(ProducerError::OutOfOrderSequence { .. })
        ));
        assert!(matches!(
            t.check(b(1, 0, 6, 6)),
            Ok(SequenceVerdict::Duplicate(_))
        ));
    }

    #[test]
    fn sequence_wraps_at_i32_max() {
        let mut t = ProducerStateTable::default();
        t.record(b(1, 0, i32::MAX - 1, i32::MAX), 0, 1, 0);
        assert_eq!(t.check(b(1, 0, 0, 3)), Ok(SequenceVerdict::Append));
    }

    #[test]
    fn eviction_and_truncation() {
        let mut t = ProducerStateTable::default();
        t.record(b(1, 0, 0, 0), 0, 0, 0);
        t.record(b(2, 0, 0, 0), 10, 10, 1000);
        t.evict_below(5);
        assert!(t.get(1).is_none() && t.get(2).is_some());
        t.truncate_from(10);
        assert!(t.is_empty());
        t.record(b(3, 0, 0, 0), 20, 20, 1000);
        t.expire(2000, 500);
        assert!(t.is_empty());
    }
}
