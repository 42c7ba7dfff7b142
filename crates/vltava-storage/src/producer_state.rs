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

use std::collections::{BTreeMap, VecDeque};

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

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerEntry {
    pub epoch: i16,
    pub batches: VecDeque<CachedBatch>,
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

    /// Decides whether `b` may be appended. Does not change the table.
    pub fn check(&self, b: ProducerBatch) -> Result<SequenceVerdict, ProducerError> {
        let Some(entry) = self.producers.get(&b.producer_id) else {
            return Ok(SequenceVerdict::Append);
        };
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
        let entry = self.producers.entry(b.producer_id).or_default();
        if b.epoch != entry.epoch {
            entry.epoch = b.epoch;
            entry.batches.clear();
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

    /// Forgets producers whose last batch lies below `log_start_offset` (Kafka removes such
    /// producers when retention deletes their data).
    pub fn evict_below(&mut self, log_start_offset: i64) {
        self.producers.retain(|_, e| {
            e.batches
                .back()
                .is_some_and(|b| b.last_offset >= log_start_offset)
        });
    }

    /// Forgets producers whose last write is older than `now_ms - expiration_ms`
    /// (transactional.id.expiration / producer.id.expiration.ms).
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) {
        self.producers.retain(|_, e| {
            e.batches
                .back()
                .is_some_and(|b| now_ms.saturating_sub(b.timestamp_ms) < expiration_ms)
        });
    }

    /// Removes the state of batches at or after `offset` (used when a torn tail is truncated).
    pub fn truncate_from(&mut self, offset: i64) {
        for e in self.producers.values_mut() {
            e.batches.retain(|b| b.last_offset < offset);
        }
        self.producers.retain(|_, e| !e.batches.is_empty());
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
