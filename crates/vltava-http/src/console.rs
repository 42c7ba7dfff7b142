//! The web console: its page and assets (embedded in the binary) and the JSON endpoints under
//! `/api/` it needs beyond `/status` and the REST Proxy v3 API. Every endpoint here is a Kafka
//! client of `bootstrap` (control plane through `vltava-client`, records through librdkafka), so
//! the console works over any Kafka-compatible cluster.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde::Deserialize;
use serde_json::{json, Value};
use vltava_client::{ResetRow, ResetTarget};

use crate::error::{ApiError, ApiResult};
use crate::registry::{self, Format};
use crate::AppState;

const INDEX_HTML: &str = include_str!("../console/index.html");
const APP_JS: &str = include_str!("../console/app.js");
const STYLE_CSS: &str = include_str!("../console/style.css");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

pub async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

pub async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

pub async fn style_css() -> Response {
    asset("text/css; charset=utf-8", STYLE_CSS)
}

/// `GET /api/topics/{topic}`: partitions with their earliest and latest offsets, and configs.
pub async fn topic(
    State(s): State<Arc<AppState>>,
    Path(topic): Path<String>,
) -> ApiResult<Json<Value>> {
    let mut c = s.client().await?;
    let meta = c.topic(&topic).await?;
    let wms = c.watermarks(std::slice::from_ref(&topic)).await?;
    let partitions: Vec<Value> = meta
        .partitions
        .iter()
        .map(|p| {
            let w = wms.iter().find(|w| w.partition == p.partition);
            let (lo, hi) = w.map(|w| (w.earliest, w.latest)).unwrap_or((0, 0));
            json!({"partition": p.partition, "leader": p.leader, "earliest_offset": lo,
                   "latest_offset": hi, "records": (hi - lo).max(0)})
        })
        .collect();
    let configs: Vec<Value> = c
        .topic_configs(&topic)
        .await?
        .into_iter()
        .map(|e| {
            json!({"name": e.name, "value": e.value, "source": e.source,
                   "is_override": e.is_topic_override(), "read_only": e.read_only,
                   "sensitive": e.sensitive})
        })
        .collect();
    let records: i64 = partitions
        .iter()
        .filter_map(|p| p["records"].as_i64())
        .sum();
    Ok(Json(json!({
        "name": meta.name,
        "internal": meta.internal,
        "partitions": partitions,
        "records": records,
        "configs": configs,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlterConfigs {
    #[serde(default)]
    set: HashMap<String, String>,
    #[serde(default)]
    delete: Vec<String>,
    #[serde(default)]
    validate_only: bool,
}

/// `POST /api/topics/{topic}/configs` `{"set": {name: value}, "delete": [name]}`.
pub async fn alter_configs(
    State(s): State<Arc<AppState>>,
    Path(topic): Path<String>,
    body: axum::body::Body,
) -> ApiResult<Json<Value>> {
    let req: AlterConfigs = crate::read_json(&s, body).await?;
    let mut set: Vec<(String, String)> = req.set.into_iter().collect();
    set.sort();
    let mut c = s.client().await?;
    c.alter_topic_configs(&topic, &set, &req.delete, req.validate_only)
        .await?;
    Ok(Json(
        json!({"topic": topic, "set": set.len(), "deleted": req.delete.len()}),
    ))
}

/// Query of `GET /api/topics/{topic}/messages`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BrowseQuery {
    /// A partition number; all partitions when absent.
    partition: Option<i32>,
    /// `newest` (default), `oldest`, `offset` or `time`.
    from: Option<String>,
    offset: Option<i64>,
    /// Epoch milliseconds or RFC 3339.
    time: Option<String>,
    limit: Option<usize>,
    /// Case-insensitive text the key must contain.
    key: Option<String>,
    /// Case-insensitive text the value must contain.
    value: Option<String>,
    /// `name` (the header must be present) or `name=text` (its value must contain text).
    header: Option<String>,
    /// `auto` (default), `json`, `text` or `hex`, for keys and values.
    format: Option<String>,
}

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 500;
/// Most records read to answer one browse request (filters scan up to this many).
const MAX_SCANNED_RECORDS: usize = 20_000;
/// Longest a browse request reads before answering with what it has.
const BROWSE_BUDGET_MS: u64 = 5_000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum From {
    Newest,
    Oldest,
    Offset(i64),
    Time(i64),
}

struct RawRecord {
    partition: i32,
    offset: i64,
    timestamp_ms: Option<i64>,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

/// What to read from one partition: offsets `[start, end)`.
struct Span {
    partition: i32,
    start: i64,
    end: i64,
}

fn parse_time(t: &str) -> ApiResult<i64> {
    if let Ok(ms) = t.parse::<i64>() {
        return Ok(ms);
    }
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|d| d.timestamp_millis())
        .map_err(|e| {
            ApiError::bad_request(format!("time '{t}' is neither epoch ms nor RFC 3339: {e}"))
        })
}

struct Filter {
    key: Option<String>,
    value: Option<String>,
    header: Option<(String, Option<String>)>,
}

impl Filter {
    fn is_empty(&self) -> bool {
        self.key.is_none() && self.value.is_none() && self.header.is_none()
    }

    fn contains(hay: &Value, needle: &str) -> bool {
        let text = match &hay["data"] {
            Value::String(s) => s.to_lowercase(),
            Value::Null => return false,
            other => other.to_string().to_lowercase(),
        };
        text.contains(needle)
    }

    fn matches(&self, key: &Value, value: &Value, headers: &[(String, Option<Vec<u8>>)]) -> bool {
        if let Some(k) = &self.key {
            if !Filter::contains(key, k) {
                return false;
            }
        }
        if let Some(v) = &self.value {
            if !Filter::contains(value, v) {
                return false;
            }
        }
        if let Some((name, text)) = &self.header {
            let hit = headers.iter().any(|(n, v)| {
                n == name
                    && match text {
                        None => true,
                        Some(t) => v
                            .as_deref()
                            .map(|v| String::from_utf8_lossy(v).to_lowercase().contains(t))
                            .unwrap_or(false),
                    }
            });
            if !hit {
                return false;
            }
        }
        true
    }
}

/// `GET /api/topics/{topic}/messages`: records decoded for people, newest first for `newest`,
/// oldest first otherwise.
pub async fn messages(
    State(s): State<Arc<AppState>>,
    Path(topic): Path<String>,
    Query(q): Query<BrowseQuery>,
) -> ApiResult<Json<Value>> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let from = match q.from.as_deref().unwrap_or("newest") {
        "newest" | "" => From::Newest,
        "oldest" => From::Oldest,
        "offset" => From::Offset(
            q.offset
                .ok_or_else(|| ApiError::bad_request("from=offset needs offset=N"))?,
        ),
        "time" => {
            From::Time(parse_time(q.time.as_deref().ok_or_else(|| {
                ApiError::bad_request("from=time needs time=...")
            })?)?)
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "from must be newest, oldest, offset or time, not '{other}'"
            )))
        }
    };
    let format = Format::parse(q.format.as_deref())?;
    let lower = |o: &Option<String>| {
        o.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_lowercase)
    };
    let filter = Filter {
        key: lower(&q.key),
        value: lower(&q.value),
        header: q
            .header
            .as_deref()
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(|h| match h.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_lowercase())),
                None => (h.to_string(), None),
            }),
    };

    let mut c = s.client().await?;
    let meta = c.topic(&topic).await?;
    let parts: Vec<i32> = match q.partition {
        Some(p) => {
            meta.check_partitions(&[p])?;
            vec![p]
        }
        None => meta.partition_ids(),
    };
    let tps: Vec<(String, i32)> = parts.iter().map(|p| (topic.clone(), *p)).collect();
    let wms = c.watermarks_of(&tps).await?;
    let by_time = match from {
        From::Time(ts) => {
            let q: Vec<_> = parts.iter().map(|p| (topic.clone(), *p, ts)).collect();
            c.list_offsets(&q).await?
        }
        _ => HashMap::new(),
    };
    // Without a filter, `limit` records per partition are enough; with one, scan a window.
    let per_partition = if filter.is_empty() {
        limit
    } else {
        (MAX_SCANNED_RECORDS / parts.len().max(1)).max(limit)
    } as i64;
    let spans: Vec<Span> = wms
        .iter()
        .map(|w| {
            let (lo, hi) = (w.earliest, w.latest);
            let start = match from {
                From::Newest => (hi - per_partition).max(lo),
                From::Oldest => lo,
                From::Offset(o) => o.clamp(lo, hi),
                From::Time(_) => match by_time.get(&(topic.clone(), w.partition)) {
                    Some(o) if o.offset >= 0 => o.offset.clamp(lo, hi),
                    _ => hi,
                },
            };
            Span {
                partition: w.partition,
                start,
                end: hi.min(start.saturating_add(per_partition)),
            }
        })
        .filter(|s| s.start < s.end)
        .collect();

    let bootstrap = s.cfg.bootstrap.clone();
    let topic_name = topic.clone();
    let started = Instant::now();
    let (raw, complete) =
        tokio::task::spawn_blocking(move || read_spans(&bootstrap, &topic_name, &spans))
            .await
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, 500, e.to_string()))??;
    let scanned = raw.len();

    let mut out: Vec<(i64, i32, i64, Value)> = Vec::new();
    for r in raw {
        let key = registry::decode(&s.registry, r.key.as_deref(), format).await;
        let value = registry::decode(&s.registry, r.value.as_deref(), format).await;
        if !filter.matches(&key, &value, &r.headers) {
            continue;
        }
        let headers: Vec<Value> = r
            .headers
            .iter()
            .map(|(n, v)| {
                json!({"name": n, "value": v.as_deref().map(|v| String::from_utf8_lossy(v).into_owned())})
            })
            .collect();
        let ts = r.timestamp_ms.unwrap_or(-1);
        out.push((
            ts,
            r.partition,
            r.offset,
            json!({
                "partition": r.partition,
                "offset": r.offset,
                "timestamp_ms": r.timestamp_ms,
                "timestamp": r.timestamp_ms.and_then(chrono::DateTime::from_timestamp_millis)
                    .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
                "key": key,
                "value": value,
                "headers": headers,
            }),
        ));
    }
    if from == From::Newest {
        out.sort_by_key(|m| std::cmp::Reverse((m.0, m.2, m.1)));
    } else {
        out.sort_by_key(|m| (m.0, m.2, m.1));
    }
    out.truncate(limit);
    let partitions: Vec<Value> = wms
        .iter()
        .map(|w| json!({"partition": w.partition, "earliest_offset": w.earliest, "latest_offset": w.latest}))
        .collect();
    Ok(Json(json!({
        "topic": topic,
        "scanned": scanned,
        "complete": complete,
        "elapsed_ms": started.elapsed().as_millis() as u64,
        "partitions": partitions,
        "messages": out.into_iter().map(|m| m.3).collect::<Vec<_>>(),
    })))
}

fn kafka_err(e: KafkaError) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        50302,
        format!("reading records: {e}"),
    )
}

/// Reads every span with a librdkafka consumer that is assigned partitions (no group). Returns
/// the records and whether every span was read to its end within the time budget.
fn read_spans(bootstrap: &str, topic: &str, spans: &[Span]) -> ApiResult<(Vec<RawRecord>, bool)> {
    if spans.is_empty() {
        return Ok((Vec::new(), true));
    }
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("client.id", "vltava-console")
        // librdkafka wants a group for assign(); nothing joins it or commits to it.
        .set("group.id", "vltava-console-browser")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("fetch.wait.max.ms", "100")
        .create()
        .map_err(kafka_err)?;
    let mut tpl = TopicPartitionList::new();
    for sp in spans {
        tpl.add_partition_offset(topic, sp.partition, Offset::Offset(sp.start))
            .map_err(kafka_err)?;
    }
    consumer.assign(&tpl).map_err(kafka_err)?;
    let end: HashMap<i32, i64> = spans.iter().map(|s| (s.partition, s.end)).collect();
    let mut remaining: HashMap<i32, i64> = spans.iter().map(|s| (s.partition, s.start)).collect();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_millis(BROWSE_BUDGET_MS);
    while !remaining.is_empty() && Instant::now() < deadline && out.len() < MAX_SCANNED_RECORDS {
        let Some(m) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = match m {
            Ok(m) => m,
            // The end of the log before `end` (compacted topics have gaps): this partition is done.
            Err(KafkaError::PartitionEOF(p)) => {
                remaining.remove(&p);
                continue;
            }
            Err(e) => {
                tracing::debug!(error = %e, "console browse poll");
                continue;
            }
        };
        let p = m.partition();
        let Some(stop) = end.get(&p).copied() else {
            continue;
        };
        if m.offset() >= stop || !remaining.contains_key(&p) {
            remaining.remove(&p);
            continue;
        }
        let headers = m
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| (h.key.to_string(), h.value.map(|v| v.to_vec())))
                    .collect()
            })
            .unwrap_or_default();
        out.push(RawRecord {
            partition: p,
            offset: m.offset(),
            timestamp_ms: m.timestamp().to_millis(),
            key: m.key().map(|k| k.to_vec()),
            value: m.payload().map(|v| v.to_vec()),
            headers,
        });
        if m.offset() + 1 >= stop {
            remaining.remove(&p);
        }
    }
    Ok((out, remaining.is_empty()))
}

/// `GET /api/groups/{group}`: state, members with their assignment, lag per partition.
pub async fn group(
    State(s): State<Arc<AppState>>,
    Path(group): Path<String>,
) -> ApiResult<Json<Value>> {
    let mut c = s.client().await?;
    let lag = c.group_lag(&group).await?;
    let members: Vec<Value> = lag
        .group
        .members
        .iter()
        .map(|m| {
            json!({"member_id": m.member_id, "instance_id": m.instance_id, "client_id": m.client_id,
                   "host": m.host,
                   "assignment": m.assignment.iter().map(|(t, p)| json!({"topic": t, "partition": p})).collect::<Vec<_>>()})
        })
        .collect();
    let partitions: Vec<Value> = lag
        .partitions
        .iter()
        .map(|p| {
            json!({"topic": p.topic, "partition": p.partition, "current_offset": p.current_offset,
                   "log_end_offset": p.log_end_offset, "lag": p.lag,
                   "member_id": p.member.as_ref().map(|m| m.member_id.clone()),
                   "client_id": p.member.as_ref().map(|m| m.client_id.clone())})
        })
        .collect();
    Ok(Json(json!({
        "group": lag.group.group_id,
        "state": lag.group.state,
        "type": lag.group.group_type,
        "protocol": lag.group.protocol,
        "protocol_type": lag.group.protocol_type,
        "total_lag": lag.total_lag(),
        "members": members,
        "partitions": partitions,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetTopic {
    topic: String,
    partitions: Option<Vec<i32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    #[serde(default)]
    topics: Vec<ResetTopic>,
    /// Also every partition the group has committed.
    #[serde(default)]
    all_topics: bool,
    /// `earliest`, `latest`, `offset`, `time` or `shift`.
    to: String,
    /// The offset, time (epoch ms or RFC 3339) or shift for `offset`, `time` and `shift`.
    value: Option<Value>,
    /// False (the default): a dry run that only shows the plan.
    #[serde(default)]
    execute: bool,
}

fn number(v: &Option<Value>, what: &str) -> ApiResult<i64> {
    match v {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or_else(|| ApiError::bad_request(format!("'{what}' needs an integer value")))
}

/// `POST /api/groups/{group}/reset`: the new offsets per partition; applied only with
/// `"execute": true` (the group must have no live members).
pub async fn reset(
    State(s): State<Arc<AppState>>,
    Path(group): Path<String>,
    body: axum::body::Body,
) -> ApiResult<Json<Value>> {
    let req: ResetRequest = crate::read_json(&s, body).await?;
    let target = match req.to.as_str() {
        "earliest" => ResetTarget::Earliest,
        "latest" => ResetTarget::Latest,
        "offset" => ResetTarget::Offset(number(&req.value, "offset")?),
        "shift" => ResetTarget::Shift(number(&req.value, "shift")?),
        "time" => ResetTarget::Time(match &req.value {
            Some(Value::String(t)) => parse_time(t)?,
            Some(Value::Number(n)) => n
                .as_i64()
                .ok_or_else(|| ApiError::bad_request("'time' needs epoch ms"))?,
            _ => return Err(ApiError::bad_request("'time' needs a value")),
        }),
        other => {
            return Err(ApiError::bad_request(format!(
                "'to' must be earliest, latest, offset, time or shift, not '{other}'"
            )))
        }
    };
    let selection: Vec<(String, Option<Vec<i32>>)> = req
        .topics
        .into_iter()
        .map(|t| (t.topic, t.partitions))
        .collect();
    let mut c = s.client().await?;
    let plan: Vec<ResetRow> = c
        .plan_offset_reset(&group, &selection, req.all_topics, target)
        .await?;
    if req.execute {
        let offsets: Vec<(String, i32, i64)> = plan
            .iter()
            .map(|r| (r.topic.clone(), r.partition, r.new_offset))
            .collect();
        c.commit(&group, &offsets).await?;
    }
    Ok(Json(json!({
        "group": group,
        "executed": req.execute,
        "partitions": plan.iter().map(|r| json!({"topic": r.topic, "partition": r.partition,
            "current_offset": r.current_offset, "new_offset": r.new_offset})).collect::<Vec<_>>(),
    })))
}

/// `DELETE /api/groups/{group}`.
pub async fn delete_group(
    State(s): State<Arc<AppState>>,
    Path(group): Path<String>,
) -> ApiResult<Response> {
    let mut c = s.client().await?;
    c.delete_group(&group).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
