//! One module per group of Kafka APIs. Each handler takes the decoded request and returns the
//! response body; framing and dispatch are in `connection.rs`.

pub mod admin;
pub mod configs;
pub mod fetch;
pub mod groups;
pub mod metadata;
pub mod offsets;
pub mod produce;
pub mod producer_id;

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
