//! Vltava's storage: per-partition append-only logs of Kafka record batches (magic v2), stored
//! as received apart from the broker-assigned offsets. This crate knows nothing about the
//! network, the Kafka request formats or topics: it is given batches and offsets, and it returns
//! byte ranges.

pub mod batch;
pub mod cleaner;
pub mod codec;
pub mod durable;
pub mod fd_cache;
pub mod log;
pub mod producer_state;
pub mod records;
pub mod segment;
pub mod txn;

pub use log::{
    AppendError, AppendOutcome, DurablePoint, FileRange, LogConfig, PartitionLog, ReadData,
    ReadError, ReadPlan, RecoveryReport, SyncWork,
};
