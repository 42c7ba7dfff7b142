//! Consumer groups: the coordinator state machine, its durable store, and the service that
//! drives both for the request handlers.

pub mod consumer;
pub mod consumer_protocol;
pub mod coordinator;
pub mod offsets_topic;
pub mod service;
pub mod store;
pub mod streams;
pub mod streams_topology;
