//! Confluent REST Proxy v3: clusters, topics, partitions and produce.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use futures::stream::{FuturesOrdered, StreamExt};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use serde::Deserialize;
use serde_json::{json, Value};
use vltava_client::{Client, NewTopic, TopicMetadata};

use crate::error::{ApiError, ApiResult};
use crate::{read_body, read_json, AppState};

/// Most partitions a topic may be created with over REST.
const MAX_PARTITIONS: i32 = 10_000;

async fn cluster_client(s: &AppState, cluster_id: &str) -> ApiResult<(Client, String)> {
    let mut c = s.client().await?;
    let info = c.describe_cluster().await?;
    let id = info.cluster_id.unwrap_or_default();
    if id != cluster_id {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            40403,
            format!("cluster '{cluster_id}' not found"),
        ));
    }
    Ok((c, id))
}

fn cluster_json(s: &AppState, id: &str, controller: i32) -> Value {
    let base = format!("{}/v3/clusters/{id}", s.base_url);
    json!({
        "kind": "KafkaCluster",
        "metadata": {"self": base, "resource_name": format!("crn:///kafka={id}")},
        "cluster_id": id,
        "controller": {"related": format!("{base}/brokers/{controller}")},
        "brokers": {"related": format!("{base}/brokers")},
        "topics": {"related": format!("{base}/topics")},
    })
}

fn topic_json(s: &AppState, cluster: &str, t: &TopicMetadata) -> Value {
    let base = format!("{}/v3/clusters/{cluster}/topics/{}", s.base_url, t.name);
    json!({
        "kind": "KafkaTopic",
        "metadata": {"self": base, "resource_name": format!("crn:///kafka={cluster}/topic={}", t.name)},
        "cluster_id": cluster,
        "topic_name": t.name,
        "is_internal": t.internal,
        "replication_factor": t.partitions.first().map(|p| p.replicas.len()).unwrap_or(0),
        "partitions_count": t.partitions.len(),
        "partitions": {"related": format!("{base}/partitions")},
        "configs": {"related": format!("{base}/configs")},
    })
}

fn partition_json(s: &AppState, cluster: &str, topic: &str, partition: i32, leader: i32) -> Value {
    let base = format!("{}/v3/clusters/{cluster}", s.base_url);
    json!({
        "kind": "KafkaPartition",
        "metadata": {"self": format!("{base}/topics/{topic}/partitions/{partition}")},
        "cluster_id": cluster,
        "topic_name": topic,
        "partition_id": partition,
        "leader": {"related": format!("{base}/brokers/{leader}")},
    })
}

fn list_json(kind: &str, self_url: String, data: Vec<Value>) -> Value {
    json!({"kind": kind, "metadata": {"self": self_url, "next": null}, "data": data})
}

pub async fn clusters(State(s): State<Arc<AppState>>) -> ApiResult<Json<Value>> {
    let mut c = s.client().await?;
    let info = c.describe_cluster().await?;
    let id = info.cluster_id.unwrap_or_default();
    Ok(Json(list_json(
        "KafkaClusterList",
        format!("{}/v3/clusters", s.base_url),
        vec![cluster_json(&s, &id, info.controller_id)],
    )))
}

pub async fn cluster(
    State(s): State<Arc<AppState>>,
    Path(cluster_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (mut c, id) = cluster_client(&s, &cluster_id).await?;
    let controller = c.describe_cluster().await?.controller_id;
    Ok(Json(cluster_json(&s, &id, controller)))
}

fn broker_json(s: &AppState, cluster: &str, b: &vltava_client::BrokerInfo) -> Value {
    json!({
        "kind": "KafkaBroker",
        "metadata": {"self": format!("{}/v3/clusters/{cluster}/brokers/{}", s.base_url, b.id)},
        "cluster_id": cluster,
        "broker_id": b.id,
        "host": b.host,
        "port": b.port,
        "rack": b.rack,
    })
}

pub async fn list_brokers(
    State(s): State<Arc<AppState>>,
    Path(cluster_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (mut c, id) = cluster_client(&s, &cluster_id).await?;
    let info = c.describe_cluster().await?;
    let data = info
        .brokers
        .iter()
        .map(|b| broker_json(&s, &id, b))
        .collect();
    Ok(Json(list_json(
        "KafkaBrokerList",
        format!("{}/v3/clusters/{id}/brokers", s.base_url),
        data,
    )))
}

pub async fn get_broker(
    State(s): State<Arc<AppState>>,
    Path((cluster_id, broker)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let (mut c, id) = cluster_client(&s, &cluster_id).await?;
    let info = c.describe_cluster().await?;
    let b = broker
        .parse::<i32>()
        .ok()
        .and_then(|n| info.brokers.iter().find(|b| b.id == n))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                40403,
                format!("broker '{broker}' not found"),
            )
        })?;
    Ok(Json(broker_json(&s, &id, b)))
}

pub async fn topic_configs(
    State(s): State<Arc<AppState>>,
    Path((cluster_id, topic)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let (mut c, id) = cluster_client(&s, &cluster_id).await?;
    c.topic(&topic).await?;
    let base = format!("{}/v3/clusters/{id}/topics/{topic}/configs", s.base_url);
    let data = c
        .topic_configs(&topic)
        .await?
        .iter()
        .map(|e| {
            json!({
                "kind": "KafkaTopicConfig",
                "metadata": {"self": format!("{base}/{}", e.name)},
                "cluster_id": id,
                "topic_name": topic,
                "name": e.name,
                "value": if e.sensitive { None } else { e.value.clone() },
                "is_default": e.source == "DEFAULT_CONFIG",
                "is_read_only": e.read_only,
                "is_sensitive": e.sensitive,
                "source": e.source,
            })
        })
        .collect();
    Ok(Json(list_json("KafkaTopicConfigList", base, data)))
}

pub async fn list_topics(
    State(s): State<Arc<AppState>>,
    Path(cluster_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (mut c, id) = cluster_client(&s, &cluster_id).await?;
    let md = c.metadata(None, false).await?;
    let data = md.topics.iter().map(|t| topic_json(&s, &id, t)).collect();
    Ok(Json(list_json(
        "KafkaTopicList",
        format!("{}/v3/clusters/{id}/topics", s.base_url),
        data,
    )))
}

#[derive(Deserialize)]
pub struct CreateTopic {
    topic_name: String,
    partitions_count: Option<i64>,
    replication_factor: Option<i64>,
    #[serde(default)]
    configs: Vec<ConfigKv>,
}

#[derive(Deserialize)]
pub struct ConfigKv {
    name: String,
    value: Option<String>,
}

pub async fn create_topic(
    State(s): State<Arc<AppState>>,
    Path(cluster_id): Path<String>,
    body: axum::body::Body,
) -> ApiResult<Response> {
    let req: CreateTopic = read_json(&s, body).await?;
    let partitions = match req.partitions_count {
        None => -1,
        Some(n) if (1..=MAX_PARTITIONS as i64).contains(&n) => n as i32,
        Some(n) => {
            return Err(ApiError::bad_request(format!(
                "partitions_count {n} must be between 1 and {MAX_PARTITIONS}"
            )))
        }
    };
    let replication_factor = match req.replication_factor {
        None => -1,
        Some(n) if (1..=i16::MAX as i64).contains(&n) => n as i16,
        Some(n) => {
            return Err(ApiError::bad_request(format!(
                "replication_factor {n} must be at least 1"
            )))
        }
    };
    let (mut c, id) = cluster_client(&s, &cluster_id).await?;
    let t = NewTopic {
        name: req.topic_name.clone(),
        partitions,
        replication_factor,
        configs: req
            .configs
            .into_iter()
            .filter_map(|kv| kv.value.map(|v| (kv.name, v)))
            .collect(),
    };
    c.create_topic(&t, false).await?;
    let md = c.topic(&req.topic_name).await?;
    Ok((StatusCode::CREATED, Json(topic_json(&s, &id, &md))).into_response())
}

pub async fn get_topic(
    State(s): State<Arc<AppState>>,
    Path((cluster_id, topic)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let (mut c, id) = cluster_client(&s, &cluster_id).await?;
    let t = c.topic(&topic).await?;
    Ok(Json(topic_json(&s, &id, &t)))
}

pub async fn delete_topic(
    State(s): State<Arc<AppState>>,
    Path((cluster_id, topic)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (mut c, _) = cluster_client(&s, &cluster_id).await?;
    c.delete_topic(&topic).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_partitions(
    State(s): State<Arc<AppState>>,
    Path((cluster_id, topic)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let (mut c, id) = cluster_client(&s, &cluster_id).await?;
    let t = c.topic(&topic).await?;
    let data = t
        .partitions
        .iter()
        .map(|p| partition_json(&s, &id, &topic, p.partition, p.leader))
        .collect();
    Ok(Json(list_json(
        "KafkaPartitionList",
        format!("{}/v3/clusters/{id}/topics/{topic}/partitions", s.base_url),
        data,
    )))
}

pub async fn get_partition(
    State(s): State<Arc<AppState>>,
    Path((cluster_id, topic, partition)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let (mut c, id) = cluster_client(&s, &cluster_id).await?;
    let t = c.topic(&topic).await?;
    let p = partition
        .parse::<i32>()
        .ok()
        .and_then(|n| t.partitions.iter().find(|p| p.partition == n))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                40403,
                format!("topic '{topic}' has no partition {partition}"),
            )
        })?;
    Ok(Json(partition_json(&s, &id, &topic, p.partition, p.leader)))
}

/// One record of a produce request.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProduceRecord {
    partition_id: Option<i64>,
    #[serde(default)]
    headers: Vec<ProduceHeader>,
    key: Option<Data>,
    value: Option<Data>,
    timestamp: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProduceHeader {
    name: String,
    value: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "type")]
    kind: Option<String>,
    data: Option<Value>,
    schema_id: Option<Value>,
    schema: Option<Value>,
    subject: Option<Value>,
}

/// The bytes of a key or value and the type reported back.
fn encode(what: &str, d: &Option<Data>) -> ApiResult<Option<(Vec<u8>, String)>> {
    let Some(d) = d else { return Ok(None) };
    if d.schema_id.is_some() || d.schema.is_some() || d.subject.is_some() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            42206,
            format!("{what}: schema-based serialization is not supported by this REST endpoint; send BINARY, JSON or STRING"),
        ));
    }
    let kind = d.kind.as_deref().unwrap_or("JSON").to_ascii_uppercase();
    let Some(data) = &d.data else { return Ok(None) };
    let bytes = match kind.as_str() {
        "BINARY" => {
            let s = data.as_str().ok_or_else(|| {
                ApiError::bad_request(format!("{what}: BINARY data must be a base64 string"))
            })?;
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|e| {
                    ApiError::bad_request(format!("{what}: data is not valid base64: {e}"))
                })?
        }
        "STRING" => data
            .as_str()
            .ok_or_else(|| {
                ApiError::bad_request(format!("{what}: STRING data must be a JSON string"))
            })?
            .as_bytes()
            .to_vec(),
        "JSON" => {
            serde_json::to_vec(data).map_err(|e| ApiError::bad_request(format!("{what}: {e}")))?
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "{what}: unknown type '{other}' (BINARY, JSON or STRING)"
            )))
        }
    };
    Ok(Some((bytes, kind)))
}

fn parse_timestamp(ts: &Option<String>) -> ApiResult<Option<i64>> {
    match ts {
        None => Ok(None),
        Some(t) => chrono::DateTime::parse_from_rfc3339(t)
            .map(|d| Some(d.timestamp_millis()))
            .map_err(|e| ApiError::bad_request(format!("timestamp '{t}' is not RFC 3339: {e}"))),
    }
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

async fn produce_one(
    s: &AppState,
    cluster: &str,
    topic: &TopicMetadata,
    raw: Value,
) -> ApiResult<Value> {
    let rec: ProduceRecord = serde_json::from_value(raw)
        .map_err(|e| ApiError::bad_request(format!("malformed record: {e}")))?;
    let partition = match rec.partition_id {
        None => None,
        Some(p) => match i32::try_from(p) {
            Ok(p) if topic.partitions.iter().any(|m| m.partition == p) => Some(p),
            _ => {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    40403,
                    format!("topic '{}' has no partition {p}", topic.name),
                ))
            }
        },
    };
    let key = encode("key", &rec.key)?;
    let value = encode("value", &rec.value)?;
    let timestamp = parse_timestamp(&rec.timestamp)?;
    let mut headers = OwnedHeaders::new();
    let mut header_values = Vec::with_capacity(rec.headers.len());
    for h in &rec.headers {
        let v = match &h.value {
            None => None,
            Some(b64) => Some(
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|e| {
                        ApiError::bad_request(format!(
                            "header '{}': value is not valid base64: {e}",
                            h.name
                        ))
                    })?,
            ),
        };
        header_values.push(v);
    }
    for (h, v) in rec.headers.iter().zip(&header_values) {
        headers = headers.insert(Header {
            key: h.name.as_str(),
            value: v.as_deref(),
        });
    }
    let mut fr: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&topic.name).headers(headers);
    if let Some((k, _)) = &key {
        fr = fr.key(k.as_slice());
    }
    if let Some((v, _)) = &value {
        fr = fr.payload(v.as_slice());
    }
    if let Some(p) = partition {
        fr = fr.partition(p);
    }
    if let Some(ts) = timestamp {
        fr = fr.timestamp(ts);
    }
    let delivered = s
        .producer()?
        .send(fr, std::time::Duration::from_secs(5))
        .await;
    match delivered {
        Ok(d) => Ok(json!({
            "error_code": 200,
            "cluster_id": cluster,
            "topic_name": topic.name,
            "partition_id": d.partition,
            "offset": d.offset,
            "timestamp": rfc3339(d.timestamp.to_millis().or(timestamp).unwrap_or_else(now_ms)),
            "key": key.as_ref().map(|(b, t)| json!({"type": t, "size": b.len()})),
            "value": value.as_ref().map(|(b, t)| json!({"type": t, "size": b.len()})),
        })),
        Err((e, _)) => Err(match e {
            KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge) => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                413,
                format!("record too large: {e}"),
            ),
            KafkaError::MessageProduction(
                RDKafkaErrorCode::UnknownPartition
                | RDKafkaErrorCode::UnknownTopicOrPartition
                | RDKafkaErrorCode::UnknownTopic,
            ) => ApiError::new(StatusCode::NOT_FOUND, 40403, e.to_string()),
            KafkaError::MessageProduction(
                RDKafkaErrorCode::InvalidRecord | RDKafkaErrorCode::InvalidMessage,
            ) => ApiError::bad_request(e.to_string()),
            _ => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                50302,
                format!("record not acknowledged: {e}"),
            ),
        }),
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Records produced but not yet reported, per streaming request; reading the body pauses there.
const MAX_IN_FLIGHT_RECORDS: usize = 1000;
/// Reports buffered towards a slow reader of a streaming response.
const MAX_BUFFERED_REPORTS: usize = 256;

/// POST .../records: one JSON record, or a stream of concatenated JSON records answered by one
/// delivery report each (in order, each with its own `error_code`). With `Transfer-Encoding:
/// chunked` the request is streamed: each report is sent as soon as its record is acknowledged,
/// for as long as the client keeps the request open.
pub async fn produce(
    State(s): State<Arc<AppState>>,
    Path((cluster_id, topic)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> ApiResult<Response> {
    let chunked = headers
        .get(header::TRANSFER_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        let (mut c, id) = cluster_client(&s, &cluster_id).await?;
        let meta = c.topic(&topic).await?;
        return Ok(produce_stream(s, id, meta, body));
    }
    let bytes = read_body(&s, body).await?;
    let mut records = Vec::new();
    for v in serde_json::Deserializer::from_slice(&bytes).into_iter::<Value>() {
        records.push(v.map_err(|e| ApiError::bad_request(format!("malformed JSON body: {e}")))?);
    }
    if records.is_empty() {
        return Err(ApiError::bad_request("the body holds no record"));
    }
    let (mut c, id) = cluster_client(&s, &cluster_id).await?;
    let meta = c.topic(&topic).await?;
    if records.len() == 1 {
        let raw = records.pop().unwrap_or(Value::Null);
        return Ok(Json(produce_one(&s, &id, &meta, raw).await?).into_response());
    }
    // Records are sent in order and their reports awaited together (librdkafka batches them).
    let sends = records
        .into_iter()
        .map(|raw| produce_one(&s, &id, &meta, raw));
    let reports = futures::future::join_all(sends).await;
    let mut out = Vec::new();
    for r in reports {
        let v = r.unwrap_or_else(|e| e.body());
        let _ = serde_json::to_writer(&mut out, &v);
        out.push(b'\n');
    }
    Ok(([(header::CONTENT_TYPE, "application/json")], out).into_response())
}

fn report_line(v: &Value) -> Bytes {
    let mut out = serde_json::to_vec(v).unwrap_or_default();
    out.push(b'\n');
    Bytes::from(out)
}

/// Streaming produce: records are parsed from the body as they arrive, produced in order, and
/// their reports streamed back in the same order.
fn produce_stream(
    s: Arc<AppState>,
    id: String,
    meta: TopicMetadata,
    body: axum::body::Body,
) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(MAX_BUFFERED_REPORTS);
    tokio::spawn(async move {
        let mut chunks = body.into_data_stream();
        let mut buf: Vec<u8> = Vec::new();
        let mut pending = FuturesOrdered::new();
        let mut reading = true;
        let mut failure: Option<ApiError> = None;
        loop {
            if failure.is_none() {
                let mut it = serde_json::Deserializer::from_slice(&buf).into_iter::<Value>();
                loop {
                    match it.next() {
                        Some(Ok(v)) => pending.push_back(produce_one(&s, &id, &meta, v)),
                        Some(Err(e)) if e.is_eof() => break,
                        Some(Err(e)) => {
                            failure =
                                Some(ApiError::bad_request(format!("malformed JSON record: {e}")));
                            break;
                        }
                        None => break,
                    }
                }
                let consumed = it.byte_offset();
                buf.drain(..consumed);
                if buf.len() > s.cfg.max_body_bytes {
                    failure = Some(ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        413,
                        format!("record larger than {} bytes", s.cfg.max_body_bytes),
                    ));
                }
                if failure.is_some() {
                    reading = false;
                }
            }
            tokio::select! {
                Some(r) = pending.next(), if !pending.is_empty() => {
                    let v = r.unwrap_or_else(|e: ApiError| e.body());
                    if tx.send(report_line(&v)).await.is_err() {
                        return;
                    }
                }
                chunk = chunks.next(), if reading && pending.len() < MAX_IN_FLIGHT_RECORDS => match chunk {
                    Some(Ok(b)) => buf.extend_from_slice(&b),
                    Some(Err(_)) | None => {
                        reading = false;
                        if failure.is_none() && buf.iter().any(|b| !b.is_ascii_whitespace()) {
                            failure = Some(ApiError::bad_request("the body ends inside a record"));
                        }
                    }
                },
                else => break,
            }
        }
        if let Some(e) = failure {
            let _ = tx.send(report_line(&e.body())).await;
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<Bytes, std::io::Error>(b), rx))
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        axum::body::Body::from_stream(stream),
    )
        .into_response()
}
