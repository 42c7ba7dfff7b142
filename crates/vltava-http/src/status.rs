//! Health probes, `/status` and Prometheus `/metrics`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use prometheus::{Encoder, IntGaugeVec, Opts, Registry, TextEncoder};
use serde_json::json;
use vltava_client::{Client, GroupLag};

use crate::error::{ApiError, ApiResult};
use crate::AppState;

pub async fn live() -> Json<serde_json::Value> {
    Json(json!({"status": "live"}))
}

/// 200 once the broker has recovered its logs and accepts connections; 503 again once its data
/// directory went offline after a storage error.
pub async fn ready(State(s): State<Arc<AppState>>) -> Response {
    match s.broker() {
        Some(b) if b.health.is_offline() => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "storage offline", "reason": b.health.reason()})),
        )
            .into_response(),
        Some(_) => (StatusCode::OK, Json(json!({"status": "ready"}))).into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "starting"})),
        )
            .into_response(),
    }
}

fn starting() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        50301,
        "the broker is still recovering its logs",
    )
}

/// Every group with its lag; groups that vanish while being read are left out.
async fn groups_with_lag(c: &mut Client) -> ApiResult<Vec<GroupLag>> {
    let mut out = Vec::new();
    for g in c.list_groups().await? {
        if let Ok(l) = c.group_lag(&g.group_id).await {
            out.push(l);
        }
    }
    Ok(out)
}

pub async fn status(State(s): State<Arc<AppState>>) -> ApiResult<Json<serde_json::Value>> {
    let broker = s.broker().ok_or_else(starting)?;
    let listeners: Vec<_> = broker
        .listeners
        .iter()
        .map(|l| json!({"name": l.name, "host": l.host, "port": l.port, "bootstrap": format!("{}:{}", l.host, l.port)}))
        .collect();
    let bootstrap = broker
        .listeners
        .first()
        .map(|l| format!("{}:{}", l.host, l.port))
        .unwrap_or_default();
    let mut topics: Vec<_> = broker
        .topics
        .all()
        .iter()
        .map(|t| {
            let parts: Vec<_> = t
                .partitions
                .iter()
                .map(|p| {
                    let log = p.log();
                    let damaged: Vec<_> = p
                        .damaged
                        .iter()
                        .map(|d| json!({"position": d.position, "bytes": d.bytes, "next_offset_kept": d.next_offset_kept, "saved_to": d.saved_to.display().to_string(), "reason": d.reason}))
                        .collect();
                    json!({
                        "partition": p.index,
                        "damaged_ranges_recovered": damaged,
                        "size_bytes": log.size_bytes(),
                        "log_start_offset": log.log_start_offset(),
                        "log_end_offset": log.high_watermark(),
                    })
                })
                .collect();
            let size: u64 = parts.iter().filter_map(|p| p["size_bytes"].as_u64()).sum();
            let records: i64 = parts
                .iter()
                .filter_map(|p| Some(p["log_end_offset"].as_i64()? - p["log_start_offset"].as_i64()?))
                .sum();
            json!({"name": t.name, "partitions": parts.len(), "size_bytes": size, "records": records, "partition_details": parts})
        })
        .collect();
    topics.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    let (kafka, groups) = match s.client().await {
        Ok(mut c) => match groups_with_lag(&mut c).await {
            Ok(g) => ("connected", g),
            Err(_) => ("not connected", Vec::new()),
        },
        Err(_) => ("not connected", Vec::new()),
    };
    let groups: Vec<_> = groups
        .iter()
        .map(|g| {
            json!({
                "group": g.group.group_id,
                "state": g.group.state,
                "type": g.group.group_type,
                "members": g.group.members.len(),
                "total_lag": g.total_lag(),
            })
        })
        .collect();
    let m = &broker.metrics;
    let totals = json!({
        "bytes_in": counter_sum(&m.bytes_in),
        "records_in": counter_sum(&m.records_in),
        "bytes_out": counter_sum(&m.bytes_out),
        "records_out": counter_sum(&m.records_out),
        "connections_active": m.connections_active.get(),
    });
    let storage = json!({
        "data_dir": broker.config.data_dir.display().to_string(),
        "offline": broker.health.is_offline(),
        "reason": broker.health.reason(),
        "corrupt_batches_found": vltava_broker::storage_stats::corrupt_batches_found(),
        "open_segment_files": vltava_broker::storage_stats::open_segment_files(),
    });
    Ok(Json(json!({
        "node_id": broker.config.node_id,
        "storage": storage,
        "totals": totals,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_ms": s.started.elapsed().as_millis() as u64,
        "kafka": kafka,
        "bootstrap": bootstrap,
        "listeners": listeners,
        "topics": topics,
        "groups": groups,
    })))
}

/// The sum of a counter over all its labels.
fn counter_sum(v: &prometheus::IntCounterVec) -> u64 {
    use prometheus::core::Collector;
    v.collect()
        .iter()
        .flat_map(|f| f.get_metric())
        .map(|m| m.get_counter().get_value() as u64)
        .sum()
}

/// Prometheus text format: the broker's registry plus consumer lag computed as a client would.
pub async fn metrics(State(s): State<Arc<AppState>>) -> ApiResult<Response> {
    let broker = s.broker().ok_or_else(starting)?;
    broker.metrics.refresh_logs(&broker.topics);
    broker
        .metrics
        .log_dir_offline
        .set(broker.health.is_offline() as i64);
    let m = &broker.metrics;
    m.corrupt_batches_found
        .set(vltava_broker::storage_stats::corrupt_batches_found() as i64);
    m.open_segment_files
        .set(vltava_broker::storage_stats::open_segment_files() as i64);
    let mut families = broker.metrics.registry.gather();
    let lag_registry = Registry::new();
    let gauge = |name: &str, help: &str, labels: &[&str]| -> ApiResult<IntGaugeVec> {
        let g = IntGaugeVec::new(Opts::new(name, help), labels)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, 500, e.to_string()))?;
        lag_registry
            .register(Box::new(g.clone()))
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, 500, e.to_string()))?;
        Ok(g)
    };
    let lag = gauge(
        "vltava_consumer_group_lag",
        "Log end offset minus committed offset, per group and partition",
        &["group", "topic", "partition"],
    )?;
    let committed = gauge(
        "vltava_consumer_group_committed_offset",
        "Committed offset, per group and partition",
        &["group", "topic", "partition"],
    )?;
    let lag_sum = gauge(
        "vltava_consumer_group_lag_sum",
        "Total lag of a group",
        &["group"],
    )?;
    let members = gauge(
        "vltava_consumer_group_members",
        "Members of a group",
        &["group"],
    )?;
    if let Ok(mut c) = s.client().await {
        if let Ok(groups) = groups_with_lag(&mut c).await {
            for g in &groups {
                let id = g.group.group_id.as_str();
                for p in &g.partitions {
                    let part = p.partition.to_string();
                    let labels = [id, p.topic.as_str(), part.as_str()];
                    if let (Some(l), Some(o)) = (p.lag, p.current_offset) {
                        lag.with_label_values(&labels).set(l);
                        committed.with_label_values(&labels).set(o);
                    }
                }
                lag_sum.with_label_values(&[id]).set(g.total_lag());
                members
                    .with_label_values(&[id])
                    .set(g.group.members.len() as i64);
            }
        }
    }
    families.extend(lag_registry.gather());
    let mut buf = Vec::new();
    let encoder = TextEncoder::new();
    encoder
        .encode(&families, &mut buf)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, 500, e.to_string()))?;
    Ok((
        [(header::CONTENT_TYPE, encoder.format_type().to_string())],
        buf,
    )
        .into_response())
}
