//! One module per group of Kafka APIs. Each handler takes the decoded request and returns the
//! response body; framing and dispatch are in `connection.rs`.

pub mod admin;
pub mod cluster;
pub mod configs;
pub mod fetch;
pub mod groups;
pub mod metadata;
pub mod offsets;
pub mod produce;
pub mod producer_id;
pub mod streams;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;

pub(crate) fn s(x: &str) -> StrBytes {
    StrBytes::from_string(x.to_string())
}

pub(crate) fn topic_name(x: &str) -> TopicName {
    TopicName(s(x))
}

pub(crate) fn code(e: ResponseError) -> i16 {
    e.code()
}

pub(crate) use crate::clock::now_ms;

/// The single partition leader epoch of a single-node broker. Every partition is led by this
/// node in epoch 0 for its whole life, so OffsetForLeaderEpoch never reports truncation.
pub const LEADER_EPOCH: i32 = 0;

/// What `include_*_authorized_operations` answers. Without an authorizer Kafka allows everything,
/// so it reports every operation the resource type supports (`AclEntry.supportedOperations`), as
/// a bit field of `AclOperation` codes; a request that does not ask gets `i32::MIN`.
pub mod authorized_operations {
    /// READ 3, WRITE 4, CREATE 5, DELETE 6, ALTER 7, DESCRIBE 8, DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11.
    pub const TOPIC: i32 = 1 << 3 | 1 << 4 | 1 << 5 | 1 << 6 | 1 << 7 | 1 << 8 | 1 << 10 | 1 << 11;
    /// READ 3, DELETE 6, DESCRIBE 8, DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11.
    pub const GROUP: i32 = 1 << 3 | 1 << 6 | 1 << 8 | 1 << 10 | 1 << 11;
    /// CREATE 5, ALTER 7, DESCRIBE 8, CLUSTER_ACTION 9, DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11,
    /// IDEMPOTENT_WRITE 12.
    pub const CLUSTER: i32 = 1 << 5 | 1 << 7 | 1 << 8 | 1 << 9 | 1 << 10 | 1 << 11 | 1 << 12;
    /// Kafka's "not requested" sentinel.
    pub const NOT_REQUESTED: i32 = i32::MIN;

    pub fn answer(requested: bool, all: i32) -> i32 {
        if requested {
            all
        } else {
            NOT_REQUESTED
        }
    }
}
