//! The embedded "consumer" protocol: a member's subscription inside JoinGroup metadata.

use std::collections::HashSet;

use bytes::{Buf, Bytes};
use kafka_protocol::messages::ConsumerProtocolSubscription;
use kafka_protocol::protocol::Decodable;

/// Topics a consumer-protocol subscription names; `None` if the metadata does not parse.
pub fn subscribed_topics(metadata: &Bytes) -> Option<HashSet<String>> {
    let mut buf = metadata.clone();
    if buf.remaining() < 2 {
        return None;
    }
    // Newer clients may send versions above what the codec knows; their prefix is compatible.
    let version = buf.get_i16().clamp(0, 3);
    let sub = ConsumerProtocolSubscription::decode(&mut buf, version).ok()?;
    Some(sub.topics.into_iter().map(|t| t.to_string()).collect())
}
