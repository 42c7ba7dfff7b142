//! Vltava's Schema Registry: Confluent Schema Registry's REST API, storing schemas in a
//! compacted `_schemas` topic through the Kafka protocol (Confluent's record layout), so ids are
//! stable across restarts and the registry runs over any Kafka-compatible cluster.
//!
//! - `types`: schema types, compatibility levels, modes, Confluent's error codes.
//! - `schema/`: parsing, canonical forms and compatibility rules of AVRO, JSON and PROTOBUF.
//! - `store_format`: the `_schemas` keys and values.
//! - `state`: the registry as a pure state machine over those records.
//! - `store`: the Kafka layer (reader thread, writes read back before answering).
//! - `api`: the HTTP routes; `body`: request bodies read up to the limit.

pub mod api;
pub mod body;
pub mod schema;
pub mod state;
pub mod store;
pub mod store_format;
pub mod types;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::watch;

use crate::api::ApiState;
use crate::store::{KafkaStore, StoreConfig};

#[derive(Debug, Clone)]
pub struct RegistryConfig {
    pub bind: SocketAddr,
    /// The Kafka cluster holding the schemas topic.
    pub bootstrap: String,
    /// Confluent's kafkastore.topic.
    pub topic: String,
    pub timeout_ms: u64,
    /// Largest request body accepted (413 beyond).
    pub max_body_bytes: usize,
}

impl RegistryConfig {
    pub fn new(bind: SocketAddr, bootstrap: &str) -> RegistryConfig {
        RegistryConfig {
            bind,
            bootstrap: bootstrap.to_string(),
            topic: "_schemas".into(),
            timeout_ms: 10_000,
            max_body_bytes: 8 * 1024 * 1024,
        }
    }
}

/// Delay between attempts to open the store while the cluster is unreachable.
const OPEN_RETRY_MS: u64 = 1000;

pub struct RegistryServer {
    pub addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    opener: tokio::task::JoinHandle<()>,
    state: Arc<ApiState>,
}

impl RegistryServer {
    /// Binds the HTTP port now and opens the store in the background (answering 500/50003
    /// until the schemas topic has been read).
    pub async fn start(cfg: RegistryConfig) -> std::io::Result<RegistryServer> {
        let listener = tokio::net::TcpListener::bind(cfg.bind).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(ApiState {
            store: OnceLock::new(),
            max_body_bytes: cfg.max_body_bytes,
        });
        let (shutdown, mut rx) = watch::channel(false);
        let app = api::router(state.clone());
        let server = tokio::spawn(async move {
            let stop = async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
            {
                tracing::error!(error = %e, "schema registry HTTP server failed");
            }
        });
        let opener = {
            let state = state.clone();
            let mut rx = shutdown.subscribe();
            tokio::spawn(async move {
                let store_cfg = StoreConfig {
                    bootstrap: cfg.bootstrap.clone(),
                    topic: cfg.topic.clone(),
                    timeout_ms: cfg.timeout_ms,
                };
                loop {
                    match KafkaStore::open(store_cfg.clone()).await {
                        Ok(store) => {
                            let _ = state.store.set(store);
                            tracing::info!(topic = %cfg.topic, "schema registry ready");
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, bootstrap = %cfg.bootstrap, "schema registry cannot open its store yet")
                        }
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(OPEN_RETRY_MS)) => {}
                        _ = rx.wait_for(|s| *s) => return,
                    }
                }
            })
        };
        Ok(RegistryServer {
            addr,
            shutdown,
            server,
            opener,
            state,
        })
    }

    pub fn is_ready(&self) -> bool {
        self.state.store.get().is_some()
    }

    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        self.opener.abort();
        let _ = self.server.await;
        if let Some(store) = self.state.store.get().cloned() {
            let _ = tokio::task::spawn_blocking(move || store.stop()).await;
        }
    }
}
