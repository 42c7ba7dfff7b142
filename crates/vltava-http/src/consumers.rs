//! Confluent REST Proxy v2-style consumer instances, for clients that can only speak HTTP.
//! Each instance is a librdkafka group member; instances idle for longer than the idle timeout
//! are closed, and at most `max_instances` exist at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::{read_body, read_json, AppState};

/// Most records one fetch returns.
const MAX_RECORDS_PER_FETCH: usize = 1000;
/// Longest a fetch waits for records.
const MAX_FETCH_WAIT_MS: u64 = 30_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Binary,
    Json,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Binary => "binary",
            Format::Json => "json",
        }
    }
}

struct Instance {
    consumer: Arc<BaseConsumer>,
    format: Format,
    subscription: Mutex<Vec<String>>,
    /// Monotonic milliseconds of the last request.
    last_used_ms: AtomicI64,
    /// One fetch / commit at a time per instance.
    busy: tokio::sync::Mutex<()>,
}

type Key = (String, String);

pub struct Registry {
    instances: Mutex<HashMap<Key, Arc<Instance>>>,
    max_instances: usize,
    idle_timeout_ms: u64,
    epoch: Instant,
}

impl Registry {
    pub fn new(max_instances: usize, idle_timeout_ms: u64) -> Registry {
        Registry {
            instances: Mutex::new(HashMap::new()),
            max_instances,
            idle_timeout_ms,
            epoch: Instant::now(),
        }
    }

    fn now_ms(&self) -> i64 {
        self.epoch.elapsed().as_millis() as i64
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Arc<Instance>>> {
        self.instances.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, group: &str, name: &str) -> ApiResult<Arc<Instance>> {
        let i = self
            .map()
            .get(&(group.to_string(), name.to_string()))
            .cloned()
            .ok_or_else(|| {
                ApiError::new(StatusCode::NOT_FOUND, 40403, "Consumer instance not found.")
            })?;
        i.last_used_ms.store(self.now_ms(), Ordering::Relaxed);
        Ok(i)
    }

    fn remove_idle(&self) -> Vec<Arc<Instance>> {
        let now = self.now_ms();
        let limit = self.idle_timeout_ms as i64;
        let mut map = self.map();
        let idle: Vec<Key> = map
            .iter()
            .filter(|(_, i)| now - i.last_used_ms.load(Ordering::Relaxed) > limit)
            .map(|(k, _)| k.clone())
            .collect();
        idle.iter().filter_map(|k| map.remove(k)).collect()
    }

    pub async fn close_all(&self) {
        let all: Vec<Arc<Instance>> = self.map().drain().map(|(_, v)| v).collect();
        for i in all {
            close(i).await;
        }
    }
}

/// Leaves the group and frees the consumer on a blocking thread (librdkafka's close blocks).
async fn close(i: Arc<Instance>) {
    let _ = tokio::task::spawn_blocking(move || {
        i.consumer.unsubscribe();
        drop(i);
    })
    .await;
}

pub fn spawn_reaper(state: Arc<AppState>) {
    let weak = Arc::downgrade(&state);
    drop(state);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(1000));
        loop {
            tick.tick().await;
            let Some(s) = weak.upgrade() else { return };
            for i in s.consumers.remove_idle() {
                tracing::info!("closing an idle REST consumer instance");
                close(i).await;
            }
        }
    });
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 249
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

#[derive(Deserialize)]
pub struct CreateInstance {
    name: Option<String>,
    format: Option<String>,
    #[serde(rename = "auto.offset.reset")]
    auto_offset_reset: Option<String>,
    #[serde(rename = "auto.commit.enable")]
    auto_commit_enable: Option<Value>,
    #[serde(rename = "fetch.min.bytes")]
    fetch_min_bytes: Option<Value>,
    #[serde(rename = "consumer.request.timeout.ms")]
    consumer_request_timeout_ms: Option<Value>,
}

pub async fn create(
    State(s): State<Arc<AppState>>,
    Path(group): Path<String>,
    body: axum::body::Body,
) -> ApiResult<Json<Value>> {
    let req: CreateInstance = read_json(&s, body).await?;
    let _ = (&req.fetch_min_bytes, &req.consumer_request_timeout_ms);
    if !valid_name(&group) {
        return Err(ApiError::unprocessable(
            "group names are 1-249 characters of [A-Za-z0-9._-]",
        ));
    }
    let name = req
        .name
        .unwrap_or_else(|| format!("rest-consumer-{}", uuid::Uuid::new_v4()));
    if !valid_name(&name) {
        return Err(ApiError::unprocessable(
            "instance names are 1-249 characters of [A-Za-z0-9._-]",
        ));
    }
    let format = match req
        .format
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("binary") => Format::Binary,
        Some("json") => Format::Json,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                42204,
                format!("format '{other}' is not supported (binary or json)"),
            ))
        }
    };
    let reset = match req.auto_offset_reset.as_deref() {
        None | Some("latest") | Some("largest") => "latest",
        Some("earliest") | Some("smallest") => "earliest",
        Some(other) => {
            return Err(ApiError::unprocessable(format!(
                "auto.offset.reset '{other}' is not earliest or latest"
            )))
        }
    };
    let auto_commit = match &req.auto_commit_enable {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(v)) if v == "true" || v == "false" => v == "true",
        Some(v) => {
            return Err(ApiError::unprocessable(format!(
                "auto.commit.enable {v} is not true or false"
            )))
        }
    };
    let key = (group.clone(), name.clone());
    {
        let map = s.consumers.map();
        if map.contains_key(&key) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                40902,
                "Consumer instance with the specified name already exists.",
            ));
        }
        if map.len() >= s.consumers.max_instances {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                42901,
                format!(
                    "too many consumer instances (at most {}); delete idle ones",
                    s.consumers.max_instances
                ),
            ));
        }
    }
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &s.cfg.bootstrap)
        .set("group.id", &group)
        .set("client.id", &name)
        .set("auto.offset.reset", reset)
        .set(
            "enable.auto.commit",
            if auto_commit { "true" } else { "false" },
        )
        .set("enable.auto.offset.store", "false")
        .create()
        .map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                50302,
                format!("cannot create the consumer: {e}"),
            )
        })?;
    let instance = Arc::new(Instance {
        consumer: Arc::new(consumer),
        format,
        subscription: Mutex::new(Vec::new()),
        last_used_ms: AtomicI64::new(s.consumers.now_ms()),
        busy: tokio::sync::Mutex::new(()),
    });
    {
        let mut map = s.consumers.map();
        if map.contains_key(&key) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                40902,
                "Consumer instance with the specified name already exists.",
            ));
        }
        map.insert(key, instance);
    }
    Ok(Json(json!({
        "instance_id": name,
        "base_uri": format!("{}/consumers/{group}/instances/{name}", s.base_url),
    })))
}

pub async fn delete(
    State(s): State<Arc<AppState>>,
    Path((group, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let removed = s.consumers.map().remove(&(group, name));
    match removed {
        Some(i) => {
            close(i).await;
            Ok(StatusCode::NO_CONTENT)
        }
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            40403,
            "Consumer instance not found.",
        )),
    }
}

#[derive(Deserialize)]
pub struct Subscription {
    topics: Option<Vec<String>>,
    topic_pattern: Option<String>,
}

pub async fn subscribe(
    State(s): State<Arc<AppState>>,
    Path((group, name)): Path<(String, String)>,
    body: axum::body::Body,
) -> ApiResult<StatusCode> {
    let i = s.consumers.get(&group, &name)?;
    let req: Subscription = read_json(&s, body).await?;
    let topics = match (req.topics, req.topic_pattern) {
        (Some(t), None) if !t.is_empty() => t,
        (None, Some(p)) if !p.is_empty() => vec![format!("^{}", p.trim_start_matches('^'))],
        _ => {
            return Err(ApiError::unprocessable(
                "give either a non-empty 'topics' list or 'topic_pattern'",
            ))
        }
    };
    if let Some(bad) = topics.iter().find(|t| t.is_empty() || t.len() > 249) {
        return Err(ApiError::unprocessable(format!(
            "'{bad}' is not a topic name"
        )));
    }
    let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    i.consumer
        .subscribe(&refs)
        .map_err(|e| ApiError::unprocessable(format!("cannot subscribe: {e}")))?;
    *i.subscription.lock().unwrap_or_else(|p| p.into_inner()) = topics;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn subscription(
    State(s): State<Arc<AppState>>,
    Path((group, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let i = s.consumers.get(&group, &name)?;
    let topics = i
        .subscription
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Ok(Json(json!({"topics": topics})))
}

pub async fn unsubscribe(
    State(s): State<Arc<AppState>>,
    Path((group, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let i = s.consumers.get(&group, &name)?;
    i.consumer.unsubscribe();
    i.subscription
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clear();
    Ok(StatusCode::NO_CONTENT)
}

pub async fn assignments(
    State(s): State<Arc<AppState>>,
    Path((group, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let i = s.consumers.get(&group, &name)?;
    let tpl = i
        .consumer
        .assignment()
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, 50302, e.to_string()))?;
    let parts: Vec<Value> = tpl
        .elements()
        .iter()
        .map(|e| json!({"topic": e.topic(), "partition": e.partition()}))
        .collect();
    Ok(Json(json!({"partitions": parts})))
}

fn query_u64(q: &HashMap<String, String>, name: &str, default: u64) -> ApiResult<u64> {
    match q.get(name) {
        None => Ok(default),
        Some(v) => v.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!(
                "query parameter {name}={v} is not a non-negative integer"
            ))
        }),
    }
}

fn embed(format: Format, b: Option<&[u8]>) -> Value {
    match b {
        None => Value::Null,
        Some(b) => match format {
            Format::Binary => json!(base64::engine::general_purpose::STANDARD.encode(b)),
            // Records that are not JSON are returned as a JSON string of their text.
            Format::Json => {
                serde_json::from_slice(b).unwrap_or_else(|_| json!(String::from_utf8_lossy(b)))
            }
        },
    }
}

/// GET .../records?timeout=MS&max_bytes=N: waits up to `timeout` for records, returns as soon
/// as some arrived and no more are immediately available.
pub async fn records(
    State(s): State<Arc<AppState>>,
    Path((group, name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let i = s.consumers.get(&group, &name)?;
    if let Some(accept) = headers.get("accept").and_then(|v| v.to_str().ok()) {
        let wants = |f: &str| accept.contains(&format!("vnd.kafka.{f}.v2"));
        let other = if i.format == Format::Binary {
            "json"
        } else {
            "binary"
        };
        if wants(other) && !wants(i.format.name()) {
            return Err(ApiError::new(
                StatusCode::NOT_ACCEPTABLE,
                40601,
                format!("this consumer instance returns {} records", i.format.name()),
            ));
        }
    }
    let timeout_ms = query_u64(&q, "timeout", 1000)?.min(MAX_FETCH_WAIT_MS);
    let max_bytes = query_u64(&q, "max_bytes", 64 * 1024 * 1024)?;
    let _busy = i.busy.lock().await;
    let consumer = i.consumer.clone();
    let format = i.format;
    let polled = tokio::task::spawn_blocking(move || -> Result<Vec<Value>, KafkaError> {
        let deadline = Instant::now() + Duration::from_millis(timeout_ms);
        let mut out = Vec::new();
        let mut bytes = 0u64;
        loop {
            let now = Instant::now();
            if now >= deadline || out.len() >= MAX_RECORDS_PER_FETCH || bytes >= max_bytes {
                break;
            }
            // Once records arrived, only wait briefly for more.
            let wait = if out.is_empty() {
                deadline - now
            } else {
                Duration::from_millis(20).min(deadline - now)
            };
            match consumer.poll(wait) {
                None if !out.is_empty() => break,
                None => {}
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(e)) => {
                    if out.is_empty() {
                        return Err(e);
                    }
                    break;
                }
                Some(Ok(m)) => {
                    bytes += (m.payload_len() + m.key().map(|k| k.len()).unwrap_or(0)) as u64;
                    out.push(json!({
                        "topic": m.topic(),
                        "key": embed(format, m.key()),
                        "value": embed(format, m.payload()),
                        "partition": m.partition(),
                        "offset": m.offset(),
                    }));
                    let _ = consumer.store_offset_from_message(&m);
                }
            }
        }
        Ok(out)
    })
    .await
    .map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            500,
            format!("fetch failed: {e}"),
        )
    })?;
    match polled {
        Ok(records) => Ok(Json(Value::Array(records)).into_response()),
        Err(KafkaError::MessageConsumption(RDKafkaErrorCode::UnknownTopicOrPartition)) => {
            Err(ApiError::new(
                StatusCode::NOT_FOUND,
                40403,
                "a subscribed topic does not exist",
            ))
        }
        Err(e) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            50302,
            format!("fetch failed: {e}"),
        )),
    }
}

#[derive(Deserialize)]
pub struct CommitBody {
    offsets: Option<Vec<CommitOffset>>,
}

#[derive(Deserialize)]
pub struct CommitOffset {
    topic: String,
    partition: i32,
    offset: i64,
}

/// POST .../offsets: commits the given offsets (each the offset of the last record processed,
/// as Confluent's proxy takes them), or with no body everything fetched so far.
pub async fn commit(
    State(s): State<Arc<AppState>>,
    Path((group, name)): Path<(String, String)>,
    body: axum::body::Body,
) -> ApiResult<StatusCode> {
    let i = s.consumers.get(&group, &name)?;
    let bytes = read_body(&s, body).await?;
    let req: CommitBody = if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        CommitBody { offsets: None }
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_request(format!("malformed JSON body: {e}")))?
    };
    let _busy = i.busy.lock().await;
    let consumer = i.consumer.clone();
    let tpl = match req.offsets.filter(|o| !o.is_empty()) {
        Some(offsets) => {
            let mut tpl = TopicPartitionList::new();
            for o in offsets {
                if o.offset < 0 || o.partition < 0 {
                    return Err(ApiError::unprocessable(
                        "offsets and partitions must not be negative",
                    ));
                }
                tpl.add_partition_offset(&o.topic, o.partition, Offset::Offset(o.offset + 1))
                    .map_err(|e| ApiError::unprocessable(e.to_string()))?;
            }
            Some(tpl)
        }
        None => None,
    };
    let result = tokio::task::spawn_blocking(move || match tpl {
        Some(tpl) => consumer.commit(&tpl, CommitMode::Sync),
        None => consumer.commit_consumer_state(CommitMode::Sync),
    })
    .await
    .map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            500,
            format!("commit failed: {e}"),
        )
    })?;
    match result {
        Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => Ok(StatusCode::OK),
        Err(e) => Err(ApiError::new(
            StatusCode::CONFLICT,
            40901,
            format!("commit failed: {e}"),
        )),
    }
}
