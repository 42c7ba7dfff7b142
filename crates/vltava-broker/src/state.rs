//! The broker's shared state, handed to every request handler.

use std::io;
use std::sync::Arc;

use vltava_storage::durable::StorageHealth;

use crate::config::BrokerConfig;
use crate::group::coordinator::CoordinatorConfig;
use crate::group::service::GroupService;
use crate::metrics::Metrics;
use crate::producer_ids::ProducerIdAllocator;
use crate::syncer::Syncer;
use crate::topic_config::TopicConfig;
use crate::topics::{Topic, TopicRegistry};

/// A listener as clients see it: the address Metadata returns for connections that came in on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerInfo {
    pub name: String,
    pub host: String,
    pub port: i32,
}

/// One client connection as handlers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfo {
    pub listener: ListenerInfo,
    /// The peer's IP address (DescribeGroups' client host).
    pub peer_host: String,
}

pub struct BrokerState {
    pub config: BrokerConfig,
    /// The data directory's failure latch, shared by every writer (see `vltava_storage::durable`).
    pub health: StorageHealth,
    pub topics: Arc<TopicRegistry>,
    pub syncer: Arc<Syncer>,
    pub metrics: Arc<Metrics>,
    pub producer_ids: ProducerIdAllocator,
    pub groups: GroupService,
    /// Group configs (kafka-configs --entity-type groups); the consumer timeouts among them are
    /// pushed into `groups`.
    pub group_configs: std::sync::Mutex<crate::group_config::GroupConfigs>,
    pub listeners: Vec<ListenerInfo>,
    /// Schema ids registered per subject, for topics with schema validation.
    pub schema_ids: std::sync::Mutex<crate::record_check::SchemaIds>,
    /// Peer-caused warnings, rate-limited per cause.
    pub log_limit: crate::log_limit::LogLimiter,
    /// Request bytes read and not yet answered, over all connections (queued.max.request.bytes).
    pub request_memory: Arc<tokio::sync::Semaphore>,
    /// True once shutdown began: long-polling fetches answer at once instead of waiting.
    pub stopping: tokio::sync::watch::Sender<bool>,
    /// `<data-dir>/.lock`, locked exclusively for the broker's life: a second broker on the same
    /// directory refuses to start (as Kafka's `.lock`).
    _data_dir_lock: std::fs::File,
}

/// Locks `<data_dir>/.lock` (created if missing) or says which directory is in use.
fn lock_data_dir(data_dir: &std::path::Path) -> io::Result<std::fs::File> {
    std::fs::create_dir_all(data_dir)?;
    let path = data_dir.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "data directory {} is in use by another Vltava process (it holds {})",
                data_dir.display(),
                path.display()
            ),
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

impl BrokerState {
    pub fn open(config: BrokerConfig, listeners: Vec<ListenerInfo>) -> io::Result<BrokerState> {
        // Before anything is written there: a foreign directory is refused untouched.
        crate::topics::check_data_dir(&config.data_dir)?;
        let lock = lock_data_dir(&config.data_dir)?;
        let fds = crate::fd_limit::configure(config.max_open_segment_files);
        tracing::info!(
            open_files_limit = fds.soft_now,
            raised_from = fds.soft_before,
            max_open_segment_files = fds.max_open_segment_files,
            "descriptors"
        );
        let health = StorageHealth::new();
        let topics = Arc::new(TopicRegistry::open(&config.data_dir, health.clone())?);
        let metrics = Arc::new(Metrics::new());
        let syncer = Syncer::start(metrics.clone(), health.clone());
        let producer_ids = ProducerIdAllocator::open(&config.data_dir, health.clone())?;
        // The view is re-published after a crash (its last records may be missing) and when a
        // store from before the view exists without it.
        let republish = !topics.opened_after_clean_shutdown
            || topics.get(crate::group::offsets_topic::TOPIC).is_none();
        let view = crate::group::offsets_topic::OffsetsTopicView {
            topics: topics.clone(),
            syncer: syncer.clone(),
            health: health.clone(),
            partitions: config.offsets_topic_num_partitions,
            log_limit: Default::default(),
        };
        let groups = GroupService::open(
            &config.data_dir.join("__groups"),
            CoordinatorConfig {
                min_session_timeout_ms: config.group_min_session_timeout_ms,
                initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms,
                offsets_retention_ms: config.offsets_retention_ms,
                offsets_retention_check_interval_ms: config.offsets_retention_check_interval_ms,
                max_groups: config.max_groups,
                ..CoordinatorConfig::default()
            },
            crate::clock::now_ms(),
            health.clone(),
            Some(Box::new(view)),
            republish,
        )?;
        // After the group store, which creates (and makes durable) the directory.
        let group_configs =
            crate::group_config::GroupConfigs::open(&config.data_dir.join("__groups"))?;
        for (group, t) in group_configs.all_timeouts() {
            groups.set_group_timeouts(&group, t)?;
            groups.set_streams_overrides(&group, group_configs.streams_overrides(&group))?;
        }
        let request_memory = Arc::new(tokio::sync::Semaphore::new(
            config
                .queued_max_request_bytes
                .min(tokio::sync::Semaphore::MAX_PERMITS),
        ));
        Ok(BrokerState {
            config,
            topics,
            syncer,
            health,
            metrics,
            producer_ids,
            groups,
            group_configs: std::sync::Mutex::new(group_configs),
            listeners,
            schema_ids: Default::default(),
            log_limit: Default::default(),
            request_memory,
            stopping: tokio::sync::watch::channel(false).0,
            _data_dir_lock: lock,
        })
    }

    /// Creates `name` with the broker defaults if auto-creation is on (Metadata requests).
    pub fn auto_create(&self, name: &str) -> io::Result<Option<Arc<Topic>>> {
        if !self.config.auto_create_topics {
            return Ok(None);
        }
        tracing::info!(
            topic = name,
            partitions = self.config.default_partitions,
            "auto-creating topic"
        );
        match self
            .topics
            .create(name, self.config.default_partitions, TopicConfig::default())?
        {
            Some(t) => Ok(Some(t)),
            // Created concurrently by another request.
            None => Ok(self.topics.get(name)),
        }
    }
}
