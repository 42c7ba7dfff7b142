//! Vltava's Kafka client for its own tools (the CLI, the HTTP API, the schema registry).
//!
//! The control plane (metadata, topics, configs, groups, offsets) is spoken directly with the
//! `kafka-protocol` codec, version-negotiated per broker, so the tools work against Vltava and
//! any Kafka-compatible cluster. Producing and consuming records is left to librdkafka.

pub mod admin;
pub mod client;
pub mod conn;
pub mod error;

pub use admin::*;
pub use client::{Client, ClientOptions, Node};
pub use error::{ClientError, Result};
