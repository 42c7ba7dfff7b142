//! Broker configuration: what `vltava serve` passes to [`crate::Broker::start`].

use std::net::SocketAddr;
use std::path::PathBuf;

/// One listener: where the broker accepts connections and what address it tells clients
/// (Kafka's `listeners` / `advertised.listeners`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    pub name: String,
    pub bind: SocketAddr,
    pub advertised_host: String,
    pub advertised_port: u16,
}

impl ListenerConfig {
    /// A listener advertising its own bind address (port 0 is resolved once bound).
    pub fn new(name: &str, bind: SocketAddr) -> Self {
        ListenerConfig {
            name: name.to_string(),
            bind,
            advertised_host: bind.ip().to_string(),
            advertised_port: bind.port(),
        }
    }
}

pub use crate::group::coordinator::DEFAULT_MAX_GROUPS;

/// Kafka leaves max.connections.per.ip unbounded; a tenth of max.connections keeps room for
/// every other client when one peer opens sockets without end.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 1_000;
/// Kafka leaves queued.max.request.bytes unbounded; five of the largest requests at once.
pub const DEFAULT_QUEUED_MAX_REQUEST_BYTES: usize = 500 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub node_id: i32,
    pub listeners: Vec<ListenerConfig>,
    pub data_dir: PathBuf,
    /// auto.create.topics.enable
    pub auto_create_topics: bool,
    /// num.partitions: partitions of an auto-created topic or a CreateTopics with -1.
    pub default_partitions: i32,
    /// socket.request.max.bytes: larger frames close the connection unread.
    pub max_request_bytes: usize,
    /// log.retention.check.interval.ms
    pub retention_check_interval_ms: u64,
    /// log.cleaner.backoff.ms: how often compacted partitions are checked for cleaning.
    pub log_cleaner_backoff_ms: u64,
    /// Requests one connection may have read but not yet answered.
    pub max_inflight_requests_per_connection: usize,
    /// Connections accepted at once across all listeners (max.connections).
    pub max_connections: usize,
    /// Connections accepted at once from one IP address (max.connections.per.ip), so that one
    /// peer cannot take every slot.
    pub max_connections_per_ip: usize,
    /// Per-address exceptions to `max_connections_per_ip` (max.connections.per.ip.overrides).
    pub max_connections_per_ip_overrides: Vec<(std::net::IpAddr, usize)>,
    /// connections.max.idle.ms: a connection that sends no request for this long is closed.
    pub connections_max_idle_ms: u64,
    /// queued.max.request.bytes: request bytes read and not yet answered, over all connections;
    /// past it the broker stops reading sockets until answers free some.
    pub queued_max_request_bytes: usize,
    /// Segment files kept open at once (a cache: the rest are opened when read). `None`: half
    /// the open-files limit, which start-up first raises to its hard limit.
    pub max_open_segment_files: Option<usize>,
    /// producer.id.expiration.ms: idempotent producer state idle this long is dropped.
    pub producer_id_expiration_ms: i64,
    /// group.min.session.timeout.ms
    pub group_min_session_timeout_ms: i32,
    /// group.initial.rebalance.delay.ms
    pub group_initial_rebalance_delay_ms: i64,
    /// offsets.retention.minutes, in ms
    pub offsets_retention_ms: i64,
    /// offsets.retention.check.interval.ms: how often empty groups and expired offsets are
    /// removed.
    pub offsets_retention_check_interval_ms: i64,
    /// Groups held at once (Vltava's own bound; Kafka has none): past it a request that would
    /// create a group gets COORDINATOR_NOT_AVAILABLE.
    pub max_groups: usize,
    /// offsets.topic.num.partitions: partitions of `__consumer_offsets` when it is created.
    pub offsets_topic_num_partitions: i32,
}

impl BrokerConfig {
    /// Defaults for a broker on `listen` storing data in `data_dir`.
    pub fn new(listen: SocketAddr, data_dir: impl Into<PathBuf>) -> Self {
        BrokerConfig {
            node_id: 1,
            listeners: vec![ListenerConfig::new("PLAINTEXT", listen)],
            data_dir: data_dir.into(),
            auto_create_topics: true,
            default_partitions: 1,
            max_request_bytes: 100 * 1024 * 1024,
            retention_check_interval_ms: 300_000,
            log_cleaner_backoff_ms: 15_000,
            max_inflight_requests_per_connection: 16,
            max_connections: 10_000,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            max_connections_per_ip_overrides: Vec::new(),
            connections_max_idle_ms: 600_000,
            queued_max_request_bytes: DEFAULT_QUEUED_MAX_REQUEST_BYTES,
            max_open_segment_files: None,
            producer_id_expiration_ms: 86_400_000,
            group_min_session_timeout_ms: 1_000,
            group_initial_rebalance_delay_ms: 0,
            offsets_retention_ms: 7 * 24 * 3600 * 1000,
            offsets_retention_check_interval_ms: 600_000,
            max_groups: DEFAULT_MAX_GROUPS,
            offsets_topic_num_partitions: crate::group::offsets_topic::DEFAULT_PARTITIONS,
        }
    }
}
