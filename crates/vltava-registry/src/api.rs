//! The Confluent Schema Registry REST API over the [`KafkaStore`]. Request bodies are read as
//! JSON whatever their content type (clients send `application/vnd.schemaregistry.v1+json`),
//! answers carry that content type, and every error is `{"error_code", "message"}` with
//! Confluent's codes.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::body::{self, BodyError};
use crate::schema::{limits, ParsedSchema};
use crate::state::{NewSchema, RegistryState, Version, VersionSel};
use crate::store::KafkaStore;
use crate::types::{Compatibility, Mode, Reference, RegistryError, SchemaType};

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

pub struct ApiState {
    pub store: OnceLock<Arc<KafkaStore>>,
    pub max_body_bytes: usize,
}

type Q = Query<HashMap<String, String>>;
type ApiResult = Result<Response, RegistryError>;

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = json!({"error_code": self.code, "message": self.message});
        (
            status,
            [(header::CONTENT_TYPE, CONTENT_TYPE)],
            body.to_string(),
        )
            .into_response()
    }
}

fn ok(v: Value) -> ApiResult {
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        v.to_string(),
    )
        .into_response())
}

fn flag(q: &Q, name: &str) -> bool {
    q.get(name).is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

impl ApiState {
    fn store(&self) -> Result<&Arc<KafkaStore>, RegistryError> {
        self.store.get().ok_or_else(|| {
            RegistryError::new(
                500,
                50003,
                "The schema registry is starting: the schemas topic has not been read yet",
            )
        })
    }
}

/// Deepest `{`/`[` nesting read from a request body. Bodies are shallow (a schema travels as a
/// string; references and metadata add a few levels), and the JSON parser recurses per level.
const MAX_BODY_NESTING_DEPTH: usize = 32;

/// A request body of at most [`ApiState::max_body_bytes`]: 413 with a registry error beyond.
struct LimitedBody(Bytes);

impl FromRequest<Arc<ApiState>> for LimitedBody {
    type Rejection = RegistryError;

    async fn from_request(req: Request, s: &Arc<ApiState>) -> Result<Self, Self::Rejection> {
        let max_bytes = s.max_body_bytes;
        match body::read_limited(req.into_body(), max_bytes).await {
            Ok(b) => Ok(LimitedBody(b)),
            Err(BodyError::TooLarge) => Err(RegistryError::new(
                413,
                413,
                format!("Request body is larger than {max_bytes} bytes"),
            )),
            Err(BodyError::Read(e)) => Err(RegistryError::new(
                400,
                400,
                format!("Cannot read the request body: {e}"),
            )),
        }
    }
}

fn body_json(body: &Bytes) -> Result<Value, RegistryError> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(RegistryError::new(400, 400, "Request body is empty"));
    }
    if !limits::json_within_depth(body, MAX_BODY_NESTING_DEPTH) {
        return Err(RegistryError::new(
            400,
            400,
            format!("Malformed JSON body: nested deeper than {MAX_BODY_NESTING_DEPTH} levels"),
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| RegistryError::new(400, 400, format!("Malformed JSON body: {e}")))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaBody {
    schema: Option<String>,
    schema_type: Option<String>,
    #[serde(default)]
    references: Option<Vec<Reference>>,
    id: Option<i32>,
    version: Option<i32>,
}

/// The schema of a request body, checked against the [`limits`] (size, nesting) before any
/// other check, so every endpoint refuses a hostile schema the same way.
fn new_schema(body: &Bytes) -> Result<NewSchema, RegistryError> {
    let v = body_json(body)?;
    let b: SchemaBody = serde_json::from_value(v)
        .map_err(|e| RegistryError::unprocessable(format!("Unrecognized request: {e}")))?;
    let schema = b
        .schema
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| RegistryError::invalid_schema("Empty schema"))?;
    let schema_type = match b.schema_type.as_deref() {
        None => SchemaType::Avro,
        Some(t) => SchemaType::parse(t)
            .ok_or_else(|| RegistryError::unprocessable(format!("Invalid schema type {t}")))?,
    };
    limits::check(schema_type, &schema).map_err(|e| {
        RegistryError::invalid_schema(format!("of type {}: {e}", schema_type.name()))
    })?;
    Ok(NewSchema {
        schema_type,
        schema,
        references: b.references.unwrap_or_default(),
        id: b.id,
        version: b.version,
    })
}

/// The schema text to return: Protobuf as `.proto` text, or base64 with `format=serialized`.
fn render(state: &RegistryState, t: SchemaType, text: &str, refs: &[Reference], q: &Q) -> String {
    if t != SchemaType::Protobuf {
        return text.to_string();
    }
    let Ok(parsed) = state.parse(t, text, refs) else {
        return text.to_string();
    };
    if q.get("format").is_some_and(|f| f == "serialized") {
        parsed.serialized().unwrap_or_else(|| text.to_string())
    } else {
        parsed.text()
    }
}

/// A version as Confluent returns it (`schemaType` and `references` only when set).
fn version_json(state: &RegistryState, v: &Version, q: &Q) -> Value {
    let mut o = json!({
        "subject": v.subject,
        "version": v.version,
        "id": v.id,
        "schema": render(state, v.schema_type, &v.schema, &v.references, q),
    });
    if !v.schema_type.is_avro() {
        o["schemaType"] = json!(v.schema_type.name());
    }
    if !v.references.is_empty() {
        o["references"] = json!(v.references);
    }
    o
}

fn raw_schema(text: &str) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        text.to_string(),
    )
        .into_response()
}

fn id_param(id: &str) -> Result<i32, RegistryError> {
    id.parse::<i32>()
        .map_err(|_| RegistryError::new(404, 40403, format!("Schema {id} not found")))
}

// ---- schemas ----

async fn root() -> ApiResult {
    ok(json!({}))
}

async fn schema_types() -> ApiResult {
    ok(json!(["JSON", "PROTOBUF", "AVRO"]))
}

async fn schema_by_id(State(s): State<Arc<ApiState>>, Path(id): Path<String>, q: Q) -> ApiResult {
    let id = id_param(&id)?;
    let store = s.store()?;
    let state = store.read();
    let (t, text, refs) = state.schema_by_id(id)?;
    let mut o = json!({ "schema": render(&state, t, text, refs, &q) });
    if !t.is_avro() {
        o["schemaType"] = json!(t.name());
    }
    if !refs.is_empty() {
        o["references"] = json!(refs);
    }
    ok(o)
}

async fn schema_by_id_raw(
    State(s): State<Arc<ApiState>>,
    Path(id): Path<String>,
    q: Q,
) -> ApiResult {
    let id = id_param(&id)?;
    let store = s.store()?;
    let state = store.read();
    let (t, text, refs) = state.schema_by_id(id)?;
    Ok(raw_schema(&render(&state, t, text, refs, &q)))
}

async fn schema_id_subjects(
    State(s): State<Arc<ApiState>>,
    Path(id): Path<String>,
    q: Q,
) -> ApiResult {
    let id = id_param(&id)?;
    let store = s.store()?;
    let state = store.read();
    state.schema_by_id(id)?;
    let mut subjects: Vec<&str> = state
        .id_usages(id, flag(&q, "deleted"))
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    subjects.dedup();
    ok(json!(subjects))
}

async fn schema_id_versions(
    State(s): State<Arc<ApiState>>,
    Path(id): Path<String>,
    q: Q,
) -> ApiResult {
    let id = id_param(&id)?;
    let store = s.store()?;
    let state = store.read();
    state.schema_by_id(id)?;
    let usages: Vec<Value> = state
        .id_usages(id, flag(&q, "deleted"))
        .into_iter()
        .map(|(s, v)| json!({"subject": s, "version": v}))
        .collect();
    ok(json!(usages))
}

async fn list_schemas(State(s): State<Arc<ApiState>>, q: Q) -> ApiResult {
    let store = s.store()?;
    let state = store.read();
    let prefix = q.get("subjectPrefix").map_or("", String::as_str);
    let deleted = flag(&q, "deleted");
    let latest_only = flag(&q, "latestOnly");
    let mut out = Vec::new();
    for subject in state.subjects(deleted, prefix) {
        let Ok(versions) = state.versions(&subject, deleted) else {
            continue;
        };
        if latest_only {
            out.extend(versions.last().map(|v| version_json(&state, v, &q)));
        } else {
            out.extend(versions.iter().map(|v| version_json(&state, v, &q)));
        }
    }
    ok(json!(out))
}

// ---- subjects ----

async fn list_subjects(State(s): State<Arc<ApiState>>, q: Q) -> ApiResult {
    let store = s.store()?;
    let state = store.read();
    let prefix = q.get("subjectPrefix").map_or("", String::as_str);
    ok(json!(state.subjects(flag(&q, "deleted"), prefix)))
}

async fn list_versions(
    State(s): State<Arc<ApiState>>,
    Path(subject): Path<String>,
    q: Q,
) -> ApiResult {
    let store = s.store()?;
    let state = store.read();
    let versions: Vec<i32> = state
        .versions(&subject, flag(&q, "deleted"))?
        .into_iter()
        .map(|v| v.version)
        .collect();
    ok(json!(versions))
}

async fn get_version(
    State(s): State<Arc<ApiState>>,
    Path((subject, version)): Path<(String, String)>,
    q: Q,
) -> ApiResult {
    let sel = VersionSel::parse(&version)?;
    let store = s.store()?;
    let state = store.read();
    ok(version_json(
        &state,
        state.version(&subject, sel, flag(&q, "deleted"))?,
        &q,
    ))
}

async fn get_version_raw(
    State(s): State<Arc<ApiState>>,
    Path((subject, version)): Path<(String, String)>,
    q: Q,
) -> ApiResult {
    let sel = VersionSel::parse(&version)?;
    let store = s.store()?;
    let state = store.read();
    let v = state.version(&subject, sel, flag(&q, "deleted"))?;
    Ok(raw_schema(&render(
        &state,
        v.schema_type,
        &v.schema,
        &v.references,
        &q,
    )))
}

async fn referenced_by(
    State(s): State<Arc<ApiState>>,
    Path((subject, version)): Path<(String, String)>,
) -> ApiResult {
    let sel = VersionSel::parse(&version)?;
    let store = s.store()?;
    let state = store.read();
    let v = state.version(&subject, sel, true)?;
    ok(json!(state.referenced_by(&subject, v.version)))
}

async fn register(
    State(s): State<Arc<ApiState>>,
    Path(subject): Path<String>,
    LimitedBody(body): LimitedBody,
) -> ApiResult {
    let req = new_schema(&body)?;
    let store = s.store()?;
    let id = store
        .write(|state| {
            let r = state.register(&subject, &req)?;
            Ok((r.id, r.writes))
        })
        .await?;
    // Only the id: confluent-kafka caches a returned schema text as the registered one.
    ok(json!({ "id": id }))
}

async fn lookup(
    State(s): State<Arc<ApiState>>,
    Path(subject): Path<String>,
    q: Q,
    LimitedBody(body): LimitedBody,
) -> ApiResult {
    let req = new_schema(&body)?;
    let store = s.store()?;
    let state = store.read();
    let deleted = flag(&q, "deleted");
    state.versions(&subject, deleted)?;
    let parsed = state.parse(req.schema_type, &req.schema, &req.references)?;
    ok(version_json(
        &state,
        state.lookup(&subject, &parsed, &req.references, deleted)?,
        &q,
    ))
}

async fn delete_version(
    State(s): State<Arc<ApiState>>,
    Path((subject, version)): Path<(String, String)>,
    q: Q,
) -> ApiResult {
    let sel = VersionSel::parse(&version)?;
    let permanent = flag(&q, "permanent");
    let store = s.store()?;
    let deleted = store
        .write(|state| state.delete_version(&subject, sel, permanent))
        .await?;
    ok(json!(deleted))
}

async fn delete_subject(
    State(s): State<Arc<ApiState>>,
    Path(subject): Path<String>,
    q: Q,
) -> ApiResult {
    let permanent = flag(&q, "permanent");
    let store = s.store()?;
    let versions = store
        .write(|state| state.delete_subject(&subject, permanent))
        .await?;
    ok(json!(versions))
}

// ---- compatibility ----

fn compat_answer(messages: Vec<String>, verbose: bool) -> ApiResult {
    let mut o = json!({"is_compatible": messages.is_empty()});
    if verbose {
        o["messages"] = json!(messages);
    }
    ok(o)
}

fn parse_for_check(state: &RegistryState, req: &NewSchema) -> Result<ParsedSchema, RegistryError> {
    state.parse(req.schema_type, &req.schema, &req.references)
}

async fn check_against_version(
    State(s): State<Arc<ApiState>>,
    Path((subject, version)): Path<(String, String)>,
    q: Q,
    LimitedBody(body): LimitedBody,
) -> ApiResult {
    let sel = VersionSel::parse(&version)?;
    let req = new_schema(&body)?;
    let store = s.store()?;
    let state = store.read();
    if let VersionSel::Number(_) = sel {
        state.version(&subject, sel, false)?;
    }
    let parsed = parse_for_check(&state, &req)?;
    let messages = state.compatibility_messages(&subject, &parsed, Some(sel))?;
    compat_answer(messages, flag(&q, "verbose"))
}

async fn check_against_all(
    State(s): State<Arc<ApiState>>,
    Path(subject): Path<String>,
    q: Q,
    LimitedBody(body): LimitedBody,
) -> ApiResult {
    let req = new_schema(&body)?;
    let store = s.store()?;
    let state = store.read();
    let parsed = parse_for_check(&state, &req)?;
    let messages = state.compatibility_messages(&subject, &parsed, None)?;
    compat_answer(messages, flag(&q, "verbose"))
}

// ---- config and mode ----

fn compat_body(body: &Bytes) -> Result<Compatibility, RegistryError> {
    let v = body_json(body)?;
    let level = v
        .get("compatibility")
        .or_else(|| v.get("compatibilityLevel"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    Compatibility::parse(level).ok_or_else(|| RegistryError::invalid_compatibility(level))
}

async fn get_global_config(State(s): State<Arc<ApiState>>) -> ApiResult {
    let store = s.store()?;
    let level = store.read().global_compatibility();
    ok(json!({"compatibilityLevel": level.name()}))
}

async fn put_global_config(
    State(s): State<Arc<ApiState>>,
    LimitedBody(body): LimitedBody,
) -> ApiResult {
    let level = compat_body(&body)?;
    let store = s.store()?;
    store
        .write(|state| Ok(((), state.set_compatibility(None, level)?)))
        .await?;
    ok(json!({"compatibility": level.name()}))
}

async fn delete_global_config(State(s): State<Arc<ApiState>>) -> ApiResult {
    let store = s.store()?;
    let old = store
        .write(|state| {
            Ok((
                state.global_compatibility(),
                state.delete_compatibility(None),
            ))
        })
        .await?;
    ok(json!({"compatibilityLevel": old.name()}))
}

async fn get_subject_config(
    State(s): State<Arc<ApiState>>,
    Path(subject): Path<String>,
    q: Q,
) -> ApiResult {
    let store = s.store()?;
    let state = store.read();
    let level = match state.subject_compatibility(&subject) {
        Some(l) => l,
        None if flag(&q, "defaultToGlobal") => state.global_compatibility(),
        None => return Err(RegistryError::subject_level_compat_not_configured(&subject)),
    };
    ok(json!({"compatibilityLevel": level.name()}))
}

async fn put_subject_config(
    State(s): State<Arc<ApiState>>,
    Path(subject): Path<String>,
    LimitedBody(body): LimitedBody,
) -> ApiResult {
    let level = compat_body(&body)?;
    let store = s.store()?;
    store
        .write(|state| Ok(((), state.set_compatibility(Some(&subject), level)?)))
        .await?;
    ok(json!({"compatibility": level.name()}))
}

async fn delete_subject_config(
    State(s): State<Arc<ApiState>>,
    Path(subject): Path<String>,
) -> ApiResult {
    let store = s.store()?;
    let old = store
        .write(|state| {
            let old = state
                .subject_compatibility(&subject)
                .ok_or_else(|| RegistryError::subject_not_found(&subject))?;
            Ok((old, state.delete_compatibility(Some(&subject))))
        })
        .await?;
    ok(json!({"compatibilityLevel": old.name()}))
}

fn mode_body(body: &Bytes) -> Result<Mode, RegistryError> {
    let v = body_json(body)?;
    let mode = v.get("mode").and_then(Value::as_str).unwrap_or_default();
    Mode::parse(mode).ok_or_else(|| RegistryError::invalid_mode(mode))
}

async fn get_global_mode(State(s): State<Arc<ApiState>>) -> ApiResult {
    let store = s.store()?;
    let mode = store.read().global_mode();
    ok(json!({"mode": mode.name()}))
}

async fn put_global_mode(
    State(s): State<Arc<ApiState>>,
    q: Q,
    LimitedBody(body): LimitedBody,
) -> ApiResult {
    let mode = mode_body(&body)?;
    let force = flag(&q, "force");
    let store = s.store()?;
    store
        .write(|state| Ok(((), state.set_mode(None, mode, force)?)))
        .await?;
    ok(json!({"mode": mode.name()}))
}

async fn get_subject_mode(
    State(s): State<Arc<ApiState>>,
    Path(subject): Path<String>,
    q: Q,
) -> ApiResult {
    let store = s.store()?;
    let state = store.read();
    let mode = match state.subject_mode(&subject) {
        Some(m) => m,
        None if flag(&q, "defaultToGlobal") => state.global_mode(),
        None => return Err(RegistryError::subject_level_mode_not_configured(&subject)),
    };
    ok(json!({"mode": mode.name()}))
}

async fn put_subject_mode(
    State(s): State<Arc<ApiState>>,
    Path(subject): Path<String>,
    q: Q,
    LimitedBody(body): LimitedBody,
) -> ApiResult {
    let mode = mode_body(&body)?;
    let force = flag(&q, "force");
    let store = s.store()?;
    store
        .write(|state| Ok(((), state.set_mode(Some(&subject), mode, force)?)))
        .await?;
    ok(json!({"mode": mode.name()}))
}

async fn delete_subject_mode(
    State(s): State<Arc<ApiState>>,
    Path(subject): Path<String>,
) -> ApiResult {
    let store = s.store()?;
    let old = store
        .write(|state| {
            let old = state
                .subject_mode(&subject)
                .ok_or_else(|| RegistryError::subject_level_mode_not_configured(&subject))?;
            Ok((old, state.delete_mode(&subject)))
        })
        .await?;
    ok(json!({"mode": old.name()}))
}

async fn not_found() -> Response {
    RegistryError::new(404, 404, "HTTP 404 Not Found").into_response()
}

async fn method_not_allowed() -> Response {
    RegistryError::new(405, 405, "HTTP 405 Method Not Allowed").into_response()
}

pub fn router(state: Arc<ApiState>) -> Router {
    use axum::routing::{get as g, post as p};
    // Bodies are read by `LimitedBody`, which enforces the limit itself (answering 413 as JSON);
    // axum's own limit (2 MiB by default) is set to the same for any other body extractor.
    let body_limit = DefaultBodyLimit::max(state.max_body_bytes);
    Router::new()
        .route("/", get(root))
        .route("/schemas", g(list_schemas))
        .route("/schemas/types", g(schema_types))
        .route("/schemas/ids/{id}", g(schema_by_id))
        .route("/schemas/ids/{id}/schema", g(schema_by_id_raw))
        .route("/schemas/ids/{id}/subjects", g(schema_id_subjects))
        .route("/schemas/ids/{id}/versions", g(schema_id_versions))
        .route("/subjects", g(list_subjects))
        .route("/subjects/{subject}", p(lookup).delete(delete_subject))
        .route(
            "/subjects/{subject}/versions",
            g(list_versions).post(register),
        )
        .route(
            "/subjects/{subject}/versions/{version}",
            g(get_version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            g(get_version_raw),
        )
        .route(
            "/subjects/{subject}/versions/{version}/referencedby",
            g(referenced_by),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            p(check_against_version),
        )
        .route(
            "/compatibility/subjects/{subject}/versions",
            p(check_against_all),
        )
        .route(
            "/config",
            g(get_global_config)
                .put(put_global_config)
                .delete(delete_global_config),
        )
        .route(
            "/config/{subject}",
            g(get_subject_config)
                .put(put_subject_config)
                .delete(delete_subject_config),
        )
        .route("/mode", g(get_global_mode).put(put_global_mode))
        .route(
            "/mode/{subject}",
            g(get_subject_mode)
                .put(put_subject_mode)
                .delete(delete_subject_mode),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(body_limit)
        .with_state(state)
}
