//! The OpenAPI 3.0 description of the HTTP API, served at `/openapi.json`.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::AppState;

fn error_responses(codes: &[&str]) -> serde_json::Map<String, Value> {
    codes
        .iter()
        .map(|c| {
            (
                c.to_string(),
                json!({"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}),
            )
        })
        .collect()
}

fn ok(description: &str, schema: Value, errors: &[&str]) -> Value {
    let mut r = error_responses(errors);
    r.insert(
        "200".into(),
        json!({"description": description, "content": {"application/json": {"schema": schema}}}),
    );
    Value::Object(r)
}

fn status_only(code: &str, description: &str, errors: &[&str]) -> Value {
    let mut r = error_responses(errors);
    r.insert(code.into(), json!({"description": description}));
    Value::Object(r)
}

fn path_param(name: &str, schema: Value) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": schema})
}

fn body(schema: Value) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": schema}}})
}

/// The document; `cluster_id` is this cluster's id (the only valid value) and `example_topic`
/// an existing topic, when known.
pub fn spec(base_url: &str, cluster_id: Option<&str>, example_topic: Option<&str>) -> Value {
    let name = json!({"type": "string", "pattern": "^[A-Za-z0-9._-]{1,249}$"});
    let cluster = path_param(
        "cluster_id",
        match cluster_id {
            Some(id) => json!({"type": "string", "enum": [id]}),
            None => json!({"type": "string"}),
        },
    );
    let mut topic_schema = name.clone();
    if let (Some(t), Some(o)) = (example_topic, topic_schema.as_object_mut()) {
        o.insert("example".into(), json!(t));
    }
    let topic = path_param("topic", topic_schema);
    let group = path_param("group", name.clone());
    let instance = path_param("instance", name.clone());
    let obj = json!({"type": "object"});
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Vltava HTTP API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Status, health, Prometheus metrics, and REST produce/consume compatible with Confluent REST Proxy v3 (clusters, topics, partitions, records) and v2 consumer instances."
        },
        "servers": [{"url": base_url}],
        "paths": {
            "/health/live": {"get": {"operationId": "live", "summary": "Liveness probe", "responses": ok("Alive", obj.clone(), &[])}},
            "/health/ready": {"get": {"operationId": "ready", "summary": "Readiness probe: 200 once the log is recovered", "responses": ok("Ready", obj.clone(), &["503"])}},
            "/status": {"get": {"operationId": "status", "summary": "Node, listeners, topics with sizes, groups with lag", "responses": ok("Status", json!({"$ref": "#/components/schemas/Status"}), &["503"])}},
            "/metrics": {"get": {"operationId": "metrics", "summary": "Prometheus text format", "responses": {"200": {"description": "Metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}, "503": {"description": "Starting"}}}},
            "/v3/clusters": {"get": {"operationId": "listClusters", "responses": ok("Clusters", obj.clone(), &["503"])}},
            "/v3/clusters/{cluster_id}": {"get": {"operationId": "getCluster", "parameters": [cluster.clone()], "responses": ok("Cluster", obj.clone(), &["404", "503"])}},
            "/v3/clusters/{cluster_id}/brokers": {"get": {"operationId": "listBrokers", "parameters": [cluster.clone()], "responses": ok("Brokers", obj.clone(), &["404", "503"])}},
            "/v3/clusters/{cluster_id}/brokers/{broker}": {"get": {"operationId": "getBroker", "parameters": [cluster.clone(), path_param("broker", json!({"type": "integer"}))], "responses": ok("Broker", obj.clone(), &["404", "503"])}},
            "/v3/clusters/{cluster_id}/topics/{topic}/configs": {"get": {"operationId": "listTopicConfigs", "parameters": [cluster.clone(), topic.clone()], "responses": ok("Topic configs", obj.clone(), &["404", "503"])}},
            "/v3/clusters/{cluster_id}/topics": {
                "get": {"operationId": "listTopics", "parameters": [cluster.clone()], "responses": ok("Topics", obj.clone(), &["404", "503"])},
                "post": {"operationId": "createTopic", "parameters": [cluster.clone()], "requestBody": body(json!({"$ref": "#/components/schemas/CreateTopic"})),
                         "responses": {
                             "201": {"description": "Created", "content": {"application/json": {"schema": obj.clone()}}},
                             "400": {"description": "Invalid"}, "404": {"description": "No such cluster"}, "409": {"description": "Exists"}, "413": {"description": "Too large"}, "503": {"description": "Unavailable"}}}
            },
            "/v3/clusters/{cluster_id}/topics/{topic}": {
                "get": {"operationId": "getTopic", "parameters": [cluster.clone(), topic.clone()], "responses": ok("Topic", obj.clone(), &["404", "503"])},
                "delete": {"operationId": "deleteTopic", "parameters": [cluster.clone(), topic.clone()], "responses": status_only("204", "Deleted", &["404", "503"])}
            },
            "/v3/clusters/{cluster_id}/topics/{topic}/partitions": {"get": {"operationId": "listPartitions", "parameters": [cluster.clone(), topic.clone()], "responses": ok("Partitions", obj.clone(), &["404", "503"])}},
            "/v3/clusters/{cluster_id}/topics/{topic}/partitions/{partition}": {"get": {"operationId": "getPartition", "parameters": [cluster.clone(), topic.clone(), path_param("partition", json!({"type": "integer", "minimum": 0, "maximum": 2147483647}))], "responses": ok("Partition", obj.clone(), &["404", "503"])}},
            "/v3/clusters/{cluster_id}/topics/{topic}/records": {"post": {
                "operationId": "produceRecords",
                "summary": "Produce one record, or a stream of concatenated JSON records (one delivery report each)",
                "parameters": [cluster.clone(), topic.clone()],
                "requestBody": body(json!({"$ref": "#/components/schemas/ProduceRecord"})),
                "responses": ok("Delivery report", json!({"$ref": "#/components/schemas/DeliveryReport"}), &["400", "404", "413", "422", "503"])
            }},
            "/consumers/{group}": {"post": {
                "operationId": "createConsumer", "parameters": [group.clone()],
                "requestBody": body(json!({"$ref": "#/components/schemas/CreateConsumer"})),
                "responses": ok("Created", json!({"type": "object", "properties": {"instance_id": {"type": "string"}, "base_uri": {"type": "string"}}}), &["400", "409", "413", "422", "429", "503"])
            }},
            "/consumers/{group}/instances/{instance}": {"delete": {"operationId": "deleteConsumer", "parameters": [group.clone(), instance.clone()], "responses": status_only("204", "Deleted", &["404"])}},
            "/consumers/{group}/instances/{instance}/subscription": {
                "post": {"operationId": "subscribe", "parameters": [group.clone(), instance.clone()],
                         "requestBody": body(json!({"type": "object", "properties": {"topics": {"type": "array", "items": name.clone(), "minItems": 1, "maxItems": 10}, "topic_pattern": {"type": "string"}}})),
                         "responses": status_only("204", "Subscribed", &["400", "404", "413", "422"])},
                "get": {"operationId": "getSubscription", "parameters": [group.clone(), instance.clone()], "responses": ok("Subscription", obj.clone(), &["404"])},
                "delete": {"operationId": "unsubscribe", "parameters": [group.clone(), instance.clone()], "responses": status_only("204", "Unsubscribed", &["404"])}
            },
            "/consumers/{group}/instances/{instance}/records": {"get": {
                "operationId": "fetchRecords",
                "parameters": [group.clone(), instance.clone(),
                    {"name": "timeout", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 2000}},
                    {"name": "max_bytes", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 67108864}}],
                "responses": ok("Records", json!({"type": "array", "items": {"$ref": "#/components/schemas/ConsumerRecord"}}), &["400", "404", "406", "503"])
            }},
            "/consumers/{group}/instances/{instance}/offsets": {"post": {
                "operationId": "commitOffsets", "parameters": [group.clone(), instance.clone()],
                "requestBody": {"required": false, "content": {"application/json": {"schema": {"type": "object", "properties": {"offsets": {"type": "array", "items": {"type": "object", "required": ["topic", "partition", "offset"], "properties": {"topic": name.clone(), "partition": {"type": "integer", "minimum": 0, "maximum": 1000}, "offset": {"type": "integer", "minimum": 0}}}}}}}}},
                "responses": status_only("200", "Committed", &["400", "404", "409", "413", "422"])
            }},
            "/consumers/{group}/instances/{instance}/assignments": {"get": {"operationId": "getAssignments", "parameters": [group.clone(), instance.clone()], "responses": ok("Assignments", obj.clone(), &["404", "503"])}}
        },
        "components": {"schemas": {
            "Error": {"type": "object", "required": ["error_code", "message"], "properties": {"error_code": {"type": "integer"}, "message": {"type": "string"}}},
            "Status": {"type": "object", "properties": {"node_id": {"type": "integer"}, "version": {"type": "string"}, "uptime_ms": {"type": "integer"}, "bootstrap": {"type": "string"}, "listeners": {"type": "array", "items": obj.clone()}, "topics": {"type": "array", "items": obj.clone()}, "groups": {"type": "array", "items": obj.clone()}}},
            "CreateTopic": {"type": "object", "required": ["topic_name"], "properties": {
                "topic_name": name.clone(),
                "partitions_count": {"type": "integer", "minimum": 1, "maximum": 64},
                "replication_factor": {"type": "integer", "minimum": 1, "maximum": 1},
                "configs": {"type": "array", "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "value": {"type": "string", "nullable": true}}}}}},
            "Data": {"type": "object", "nullable": true, "properties": {"type": {"type": "string", "enum": ["BINARY", "JSON", "STRING"]}, "data": {}}},
            "ProduceRecord": {"type": "object", "additionalProperties": false, "properties": {
                "partition_id": {"type": "integer", "nullable": true, "minimum": 0, "maximum": 2147483647},
                "headers": {"type": "array", "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "value": {"type": "string", "format": "byte", "nullable": true}}}},
                "key": {"$ref": "#/components/schemas/Data"},
                "value": {"$ref": "#/components/schemas/Data"},
                "timestamp": {"type": "string", "format": "date-time", "nullable": true}}},
            "DeliveryReport": {"type": "object", "properties": {"error_code": {"type": "integer"}, "cluster_id": {"type": "string"}, "topic_name": {"type": "string"}, "partition_id": {"type": "integer"}, "offset": {"type": "integer"}, "timestamp": {"type": "string"}}},
            "CreateConsumer": {"type": "object", "properties": {
                "name": name,
                "format": {"type": "string", "enum": ["binary", "json"]},
                "auto.offset.reset": {"type": "string", "enum": ["earliest", "latest"]},
                "auto.commit.enable": {"type": "string", "enum": ["true", "false"]}}},
            "ConsumerRecord": {"type": "object", "properties": {"topic": {"type": "string"}, "key": {}, "value": {}, "partition": {"type": "integer"}, "offset": {"type": "integer"}}}
        }}
    })
}

pub async fn document(State(s): State<Arc<AppState>>) -> Json<Value> {
    let mut cluster_id = None;
    let mut topic = None;
    if let Ok(mut c) = s.client().await {
        if let Ok(info) = c.describe_cluster().await {
            cluster_id = info.cluster_id;
        }
        if let Ok(md) = c.metadata(None, false).await {
            topic = md.topics.into_iter().find(|t| !t.internal).map(|t| t.name);
        }
    }
    Json(spec(&s.base_url, cluster_id.as_deref(), topic.as_deref()))
}
