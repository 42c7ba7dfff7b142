//! Vltava's HTTP API, served by `vltava serve`: health probes, `/status`, Prometheus `/metrics`
//! (with consumer lag), Confluent REST Proxy v3 (clusters, topics, partitions, produce) and
//! v2-style consumer instances, and `/openapi.json`.
//!
//! Status, health and the broker's own metrics read the in-process broker. Everything else is a
//! Kafka client of `bootstrap` (the control plane through `vltava-client`, records through
//! librdkafka), so the REST endpoints work unchanged over any Kafka-compatible cluster.

// The OpenAPI document is one large `json!` literal.
#![recursion_limit = "512"]

mod console;
mod consumers;
mod error;
mod openapi;
mod registry;
mod status;
mod v3;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use rdkafka::config::ClientConfig;
use rdkafka::producer::FutureProducer;
use serde_json::json;
use tokio::sync::watch;
use vltava_broker::state::BrokerState;
use vltava_client::{Client, ClientOptions};

pub use error::{ApiError, ApiResult};

/// Settings of the HTTP server.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    pub bind: SocketAddr,
    /// The Kafka cluster the REST layer is a client of.
    pub bootstrap: String,
    /// Largest request body accepted; larger ones get 413.
    pub max_body_bytes: usize,
    /// A consumer instance not used for this long is closed (consumer.instance.timeout.ms).
    pub consumer_idle_timeout_ms: u64,
    /// Most consumer instances open at once; more get 429.
    pub max_consumer_instances: usize,
    /// Timeout of each Kafka request made for an HTTP request.
    pub kafka_timeout_ms: u64,
    /// The Schema Registry the console shows and decodes records with (`http://host:port`).
    pub registry_url: Option<String>,
}

impl HttpConfig {
    pub fn new(bind: SocketAddr, bootstrap: &str) -> HttpConfig {
        HttpConfig {
            bind,
            bootstrap: bootstrap.to_string(),
            max_body_bytes: 8 * 1024 * 1024,
            consumer_idle_timeout_ms: 300_000,
            max_consumer_instances: 100,
            kafka_timeout_ms: 10_000,
            registry_url: None,
        }
    }
}

pub(crate) struct AppState {
    cfg: HttpConfig,
    /// `http://host:port`, for the links in v3 resources and v2 `base_uri`s.
    base_url: String,
    started: Instant,
    broker: RwLock<Option<Arc<BrokerState>>>,
    /// Made on first use, so that nothing connects before the broker is up.
    producer: std::sync::OnceLock<FutureProducer>,
    consumers: consumers::Registry,
    registry: registry::RegistryLink,
}

impl AppState {
    /// A fresh control-plane client (a loopback connect is far cheaper than sharing one behind a
    /// lock across concurrent requests).
    async fn client(&self) -> ApiResult<Client> {
        let mut o = ClientOptions::new(&self.cfg.bootstrap);
        o.client_id = "vltava-http".into();
        o.timeout_ms = self.cfg.kafka_timeout_ms;
        Ok(Client::connect(o).await?)
    }

    fn producer(&self) -> ApiResult<&FutureProducer> {
        if let Some(p) = self.producer.get() {
            return Ok(p);
        }
        let p: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &self.cfg.bootstrap)
            .set("client.id", "vltava-http")
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "2")
            .set("partitioner", "murmur2_random")
            .set(
                "message.timeout.ms",
                self.cfg.kafka_timeout_ms.max(1000).to_string(),
            )
            .create()
            .map_err(|e| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    50302,
                    format!("cannot create the REST producer: {e}"),
                )
            })?;
        // A concurrent first use may have won; either producer is as good.
        let _ = self.producer.set(p);
        self.producer
            .get()
            .ok_or_else(|| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, 500, "no producer"))
    }

    fn broker(&self) -> Option<Arc<BrokerState>> {
        self.broker
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The running HTTP server.
pub struct HttpServer {
    pub addr: SocketAddr,
    state: Arc<AppState>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl HttpServer {
    /// Binds and serves. `/health/ready` answers 503 until [`HttpServer::set_broker`].
    pub async fn start(cfg: HttpConfig) -> std::io::Result<HttpServer> {
        let listener = tokio::net::TcpListener::bind(cfg.bind).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(AppState {
            base_url: format!("http://{addr}"),
            registry: registry::RegistryLink::new(
                cfg.registry_url.clone(),
                cfg.max_body_bytes,
                cfg.kafka_timeout_ms,
            ),
            consumers: consumers::Registry::new(
                cfg.max_consumer_instances,
                cfg.consumer_idle_timeout_ms,
            ),
            cfg,
            started: Instant::now(),
            broker: RwLock::new(None),
            producer: std::sync::OnceLock::new(),
        });
        consumers::spawn_reaper(state.clone());
        let app = router(state.clone());
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(error = %e, "HTTP server failed");
            }
        });
        Ok(HttpServer {
            addr,
            state,
            stop,
            task,
        })
    }

    /// The broker has recovered its logs: status and metrics can read it, readiness turns 200.
    pub fn set_broker(&self, broker: Arc<BrokerState>) {
        *self.state.broker.write().unwrap_or_else(|p| p.into_inner()) = Some(broker);
    }

    /// The Schema Registry the console uses, once it serves (`http://host:port`).
    pub fn set_registry(&self, url: Option<String>) {
        self.state.registry.set_url(url);
    }

    /// Stops accepting requests, closes consumer instances and waits for the server task.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        self.state.consumers.close_all().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(console::index))
        .route("/console/app.js", get(console::app_js))
        .route("/console/style.css", get(console::style_css))
        .route("/api", get(index))
        .route("/api/topics/{topic}", get(console::topic))
        .route("/api/topics/{topic}/configs", post(console::alter_configs))
        .route("/api/topics/{topic}/messages", get(console::messages))
        .route(
            "/api/groups/{group}",
            get(console::group).delete(console::delete_group),
        )
        .route("/api/groups/{group}/reset", post(console::reset))
        .route("/api/registry/{*path}", any(registry::proxy))
        .route("/health/live", get(status::live))
        .route("/health/ready", get(status::ready))
        .route("/status", get(status::status))
        .route("/metrics", get(status::metrics))
        .route("/openapi.json", get(openapi::document))
        .route("/v3/clusters", get(v3::clusters))
        .route("/v3/clusters/{cluster_id}", get(v3::cluster))
        .route("/v3/clusters/{cluster_id}/brokers", get(v3::list_brokers))
        .route(
            "/v3/clusters/{cluster_id}/brokers/{broker}",
            get(v3::get_broker),
        )
        .route(
            "/v3/clusters/{cluster_id}/topics/{topic}/configs",
            get(v3::topic_configs),
        )
        .route(
            "/v3/clusters/{cluster_id}/topics",
            get(v3::list_topics).post(v3::create_topic),
        )
        .route(
            "/v3/clusters/{cluster_id}/topics/{topic}",
            get(v3::get_topic).delete(v3::delete_topic),
        )
        .route(
            "/v3/clusters/{cluster_id}/topics/{topic}/partitions",
            get(v3::list_partitions),
        )
        .route(
            "/v3/clusters/{cluster_id}/topics/{topic}/partitions/{partition}",
            get(v3::get_partition),
        )
        .route(
            "/v3/clusters/{cluster_id}/topics/{topic}/records",
            post(v3::produce),
        )
        .route("/consumers/{group}", post(consumers::create))
        .route(
            "/consumers/{group}/instances/{instance}",
            axum::routing::delete(consumers::delete),
        )
        .route(
            "/consumers/{group}/instances/{instance}/subscription",
            post(consumers::subscribe)
                .get(consumers::subscription)
                .delete(consumers::unsubscribe),
        )
        .route(
            "/consumers/{group}/instances/{instance}/records",
            get(consumers::records),
        )
        .route(
            "/consumers/{group}/instances/{instance}/offsets",
            post(consumers::commit),
        )
        .route(
            "/consumers/{group}/instances/{instance}/assignments",
            get(consumers::assignments),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn index(State(s): State<Arc<AppState>>) -> Json<serde_json::Value> {
    Json(json!({
        "name": "vltava",
        "version": env!("CARGO_PKG_VERSION"),
        "links": {
            "console": format!("{}/", s.base_url),
            "status": format!("{}/status", s.base_url),
            "metrics": format!("{}/metrics", s.base_url),
            "openapi": format!("{}/openapi.json", s.base_url),
            "clusters": format!("{}/v3/clusters", s.base_url),
        }
    }))
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(format!("no such endpoint: {}", uri.path()))
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        405,
        "HTTP 405 Method Not Allowed",
    )
}

/// Reads a request body of at most `max_body_bytes` (413 beyond, once the excess has been
/// drained so that the client reads the answer rather than a connection reset).
pub(crate) async fn read_body(
    s: &AppState,
    body: axum::body::Body,
) -> ApiResult<axum::body::Bytes> {
    use vltava_registry::body::{read_limited, BodyError};
    read_limited(body, s.cfg.max_body_bytes)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                413,
                format!("request body larger than {} bytes", s.cfg.max_body_bytes),
            ),
            BodyError::Read(e) => {
                ApiError::bad_request(format!("cannot read the request body: {e}"))
            }
        })
}

/// Parses a JSON request body (400 with the parser's reason when it is not JSON).
pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
    s: &AppState,
    body: axum::body::Body,
) -> ApiResult<T> {
    let bytes = read_body(s, body).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("malformed JSON body: {e}")))
}
