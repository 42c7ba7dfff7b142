//! The Vltava broker: a single-node server for the Apache Kafka wire protocol over
//! `vltava-storage`. Start one with [`Broker::start`]; see ARCHITECTURE.md for the request paths.

pub mod clock;
pub mod config;
pub mod connection;
pub mod fd_limit;
pub mod group;
pub mod group_config;
pub mod handlers;
pub mod log_limit;
pub mod metrics;
pub mod producer_ids;
pub mod protocol;
pub mod record_check;
pub mod request_limits;
pub mod server;
pub mod state;
pub mod syncer;
pub mod topic_config;
pub mod topics;
pub mod txn;

pub use config::{BrokerConfig, ListenerConfig};
pub use server::{Broker, BrokerHandle};

/// Process-wide storage figures for `/metrics` and `/status`.
pub mod storage_stats {
    /// Sealed segments in which a read found a corrupt batch since start-up.
    pub fn corrupt_batches_found() -> u64 {
        vltava_storage::segment::corrupt_batches_found()
    }
    /// Segment file descriptors held by the descriptor cache now.
    pub fn open_segment_files() -> usize {
        vltava_storage::fd_cache::cached_count()
    }
}
