//! The Kafka layer of the registry: a reader thread that follows the `_schemas` topic from the
//! beginning and applies every record to the [`RegistryState`], and a writer that produces the
//! records an operation decided and waits until the reader has applied them (read your own
//! writes). Writes are serialized by one lock held across decide → produce → applied, so two
//! requests never pick the same id or version. Everything goes through the Kafka protocol, so the
//! registry works over any Kafka-compatible cluster.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use tokio::sync::watch;
use vltava_client::{Client, ClientOptions, NewTopic};

use crate::state::RegistryState;
use crate::store_format::StoreWrite;
use crate::types::RegistryError;

/// How long the reader waits in one poll (also how fast it notices shutdown).
const POLL_MS: u64 = 100;

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub bootstrap: String,
    pub topic: String,
    /// Timeout of each Kafka operation and of waiting for a write to be read back.
    pub timeout_ms: u64,
}

pub struct KafkaStore {
    cfg: StoreConfig,
    state: Arc<RwLock<RegistryState>>,
    /// The next `_schemas` offset the reader will apply.
    applied: watch::Receiver<i64>,
    producer: FutureProducer,
    write_lock: tokio::sync::Mutex<()>,
    stop: Arc<AtomicBool>,
    reader: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Drop for KafkaStore {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

impl KafkaStore {
    /// Stops the reader thread and waits for it (before the broker it reads from goes away).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        let reader = self.reader.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(r) = reader {
            let _ = r.join();
        }
    }
}

fn store_err(e: impl std::fmt::Display) -> RegistryError {
    RegistryError::store(format!("Error in the backend data store: {e}"))
}

impl KafkaStore {
    /// Creates the topic if needed, starts the reader and waits until it has read everything
    /// that was in the topic.
    pub async fn open(cfg: StoreConfig) -> Result<Arc<KafkaStore>, RegistryError> {
        let mut opts = ClientOptions::new(&cfg.bootstrap);
        opts.client_id = "vltava-registry".into();
        opts.timeout_ms = cfg.timeout_ms;
        let mut client = Client::connect(opts).await.map_err(store_err)?;
        let exists = client
            .topic_names()
            .await
            .map_err(store_err)?
            .iter()
            .any(|t| t == &cfg.topic);
        if !exists {
            let t = NewTopic {
                name: cfg.topic.clone(),
                partitions: 1,
                replication_factor: -1,
                configs: vec![("cleanup.policy".into(), "compact".into())],
            };
            match client.create_topic(&t, false).await {
                Ok(()) => tracing::info!(topic = %cfg.topic, "created the schemas topic"),
                // Created concurrently (code 36, TOPIC_ALREADY_EXISTS) is as good.
                Err(vltava_client::ClientError::Kafka { code: 36, .. }) => {}
                Err(e) => return Err(store_err(e)),
            }
        }
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &cfg.bootstrap)
            .set("client.id", "vltava-registry")
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "0")
            .set("message.timeout.ms", cfg.timeout_ms.max(1000).to_string())
            .create()
            .map_err(store_err)?;
        let consumer: BaseConsumer<ReaderContext> = ClientConfig::new()
            .set("bootstrap.servers", &cfg.bootstrap)
            .set("client.id", "vltava-registry-reader")
            .set("group.id", "vltava-registry-reader")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("fetch.wait.max.ms", "50")
            .set("enable.partition.eof", "true")
            .create_with_context(ReaderContext)
            .map_err(store_err)?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&cfg.topic, 0, Offset::Beginning)
            .map_err(store_err)?;
        consumer.assign(&tpl).map_err(store_err)?;
        let state = Arc::new(RwLock::new(RegistryState::default()));
        let (applied_tx, applied) = watch::channel(0i64);
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (state, stop, topic) = (state.clone(), stop.clone(), cfg.topic.clone());
            std::thread::Builder::new()
                .name("registry-reader".into())
                .spawn(move || read_loop(consumer, &topic, &state, &applied_tx, &stop))
                .map_err(store_err)?
        };
        let store = Arc::new(KafkaStore {
            cfg,
            state,
            applied,
            producer,
            write_lock: tokio::sync::Mutex::new(()),
            stop,
            reader: std::sync::Mutex::new(Some(reader)),
        });
        store.catch_up().await?;
        Ok(store)
    }

    /// The state as far as the reader has applied it.
    pub fn read(&self) -> RwLockReadGuard<'_, RegistryState> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    async fn wait_applied(&self, offset: i64) -> Result<(), RegistryError> {
        let mut rx = self.applied.clone();
        let reached = tokio::time::timeout(Duration::from_millis(self.cfg.timeout_ms), async {
            rx.wait_for(|a| *a >= offset).await.is_ok()
        })
        .await;
        match reached {
            Ok(true) => Ok(()),
            _ => Err(RegistryError::timeout(format!(
                "Timed out waiting for the schemas topic to be read up to offset {offset}"
            ))),
        }
    }

    /// Waits until everything in the topic now has been applied.
    async fn catch_up(&self) -> Result<(), RegistryError> {
        let mut opts = ClientOptions::new(&self.cfg.bootstrap);
        opts.client_id = "vltava-registry".into();
        opts.timeout_ms = self.cfg.timeout_ms;
        let mut client = Client::connect(opts).await.map_err(store_err)?;
        let marks = client
            .watermarks(std::slice::from_ref(&self.cfg.topic))
            .await
            .map_err(store_err)?;
        let end = marks.first().map_or(0, |w| w.latest);
        self.wait_applied(end).await
    }

    /// Runs one write operation: `decide` sees the current state and returns its result and the
    /// records to write; they are written and read back before the result is returned.
    pub async fn write<T>(
        &self,
        decide: impl FnOnce(&RegistryState) -> Result<(T, Vec<StoreWrite>), RegistryError>,
    ) -> Result<T, RegistryError> {
        let _serialized = self.write_lock.lock().await;
        let (result, writes) = {
            let state = self.read();
            decide(&state)?
        };
        let mut last_offset = None;
        for w in &writes {
            let key = w.key_bytes();
            let value = w.value_bytes();
            let mut record = FutureRecord::<Vec<u8>, Vec<u8>>::to(&self.cfg.topic)
                .partition(0)
                .key(&key);
            if let Some(v) = &value {
                record = record.payload(v);
            }
            let delivery = self
                .producer
                .send(record, Duration::from_millis(self.cfg.timeout_ms))
                .await
                .map_err(|(e, _)| store_err(e))?;
            last_offset = Some(delivery.offset);
        }
        if let Some(o) = last_offset {
            self.wait_applied(o + 1).await?;
        }
        Ok(result)
    }
}

/// The reader's librdkafka context: reaching the end of the topic is how it learns it caught up,
/// not an error worth logging.
struct ReaderContext;

impl ClientContext for ReaderContext {
    fn error(&self, error: KafkaError, reason: &str) {
        let eof = matches!(
            error,
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
        );
        if !eof {
            tracing::warn!(%error, reason, "schemas topic reader");
        }
    }
}

impl ConsumerContext for ReaderContext {}

fn read_loop(
    consumer: BaseConsumer<ReaderContext>,
    topic: &str,
    state: &RwLock<RegistryState>,
    applied: &watch::Sender<i64>,
    stop: &AtomicBool,
) {
    let mut logged_error = false;
    while !stop.load(Ordering::Acquire) {
        match consumer.poll(Duration::from_millis(POLL_MS)) {
            Some(Ok(m)) => {
                logged_error = false;
                if let Some(key) = m.key() {
                    state
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .apply(key, m.payload());
                }
                applied.send_replace(m.offset() + 1);
            }
            Some(Err(KafkaError::PartitionEOF(_))) => {
                // Caught up. After compaction the end may lie past the last record read.
                let position = consumer
                    .position()
                    .ok()
                    .and_then(|p| p.find_partition(topic, 0).map(|e| e.offset()));
                if let Some(Offset::Offset(pos)) = position {
                    if *applied.borrow() < pos {
                        applied.send_replace(pos);
                    }
                }
            }
            Some(Err(e)) if !logged_error => {
                tracing::warn!(topic, error = %e, "reading the schemas topic");
                logged_error = true;
            }
            Some(Err(_)) | None => {}
        }
    }
}
