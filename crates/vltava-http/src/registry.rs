//! The Schema Registry as the console sees it: `/api/registry/*` forwarded to the registry (so the
//! browser needs one origin), and record keys and values decoded through it (Confluent's wire
//! format: magic byte 0, a 4-byte schema id, then the Avro datum or the JSON text).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use vltava_registry::schema::limits;
use vltava_registry::types::SchemaType;

use crate::error::{ApiError, ApiResult};
use crate::AppState;

/// Most schemas kept decoded; the cache is cleared when it would grow beyond.
const MAX_CACHED_SCHEMAS: usize = 1024;
/// Deepest chain of schema references followed.
const MAX_REFERENCE_DEPTH: usize = 8;

pub(crate) struct RegistryLink {
    url: Mutex<Option<String>>,
    http: HyperClient<HttpConnector, Full<Bytes>>,
    schemas: Mutex<HashMap<u32, Arc<Decoder>>>,
    max_body_bytes: usize,
    timeout_ms: u64,
}

/// A schema ready to decode payloads with.
pub(crate) enum Decoder {
    Avro {
        schema: apache_avro::Schema,
        named: Vec<apache_avro::Schema>,
    },
    Json,
    Protobuf {
        pool: prost_reflect::DescriptorPool,
        /// The registered schema's file in `pool`.
        file: String,
    },
    /// A schema type the console does not know: the payload is shown in hex.
    Other(String),
}

/// The name the registered Protobuf schema gets (its references keep their own names).
const MAIN_PROTO: &str = "__registered__.proto";

/// Serves a schema's `.proto` text and its references' to the Protobuf compiler; Google's
/// well-known types come from protox.
struct ProtoFiles(HashMap<String, String>);

impl protox::file::FileResolver for ProtoFiles {
    fn open_file(&self, name: &str) -> Result<protox::file::File, protox::Error> {
        match self.0.get(name) {
            Some(src) => protox::file::File::from_source(name, src),
            None => Err(protox::Error::file_not_found(name)),
        }
    }
}

fn compile_proto(
    text: &str,
    refs: Vec<(String, String)>,
) -> Result<prost_reflect::DescriptorPool, String> {
    let mut files: HashMap<String, String> = refs.into_iter().collect();
    files.insert(MAIN_PROTO.to_string(), text.to_string());
    let mut chain = protox::file::ChainFileResolver::new();
    chain.add(ProtoFiles(files));
    chain.add(protox::file::GoogleFileResolver::new());
    let mut compiler = protox::Compiler::with_file_resolver(chain);
    compiler.include_imports(true);
    compiler.open_file(MAIN_PROTO).map_err(|e| e.to_string())?;
    Ok(compiler.descriptor_pool())
}

/// Holds a schema from the registry, and the schemas it references, to the registry's own
/// bounds on size and nesting before any parser sees them: the registry the console points at
/// may not be Vltava's, and a parser's stack overflow would take the whole process down.
fn check_limits(kind: SchemaType, text: &str, refs: &[(String, String)]) -> Result<(), String> {
    limits::check(kind, text).map_err(|e| e.to_string())?;
    for (name, t) in refs {
        limits::check(kind, t).map_err(|e| format!("reference '{name}': {e}"))?;
    }
    Ok(())
}

/// Reads one zig-zag varint (Confluent's message-index encoding).
fn read_zigzag(buf: &mut &[u8]) -> Option<i64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(((v >> 1) as i64) ^ -((v & 1) as i64));
        }
    }
    None
}

/// Decodes a Confluent Protobuf payload (message indexes, then the message) to JSON.
fn decode_protobuf(
    pool: &prost_reflect::DescriptorPool,
    file: &str,
    payload: &[u8],
) -> Result<Value, String> {
    let mut buf = payload;
    let count = read_zigzag(&mut buf).ok_or("truncated message indexes")?;
    let indexes: Vec<i64> = if count == 0 {
        vec![0]
    } else {
        if !(1..=64).contains(&count) {
            return Err(format!("{count} message indexes"));
        }
        (0..count)
            .map(|_| read_zigzag(&mut buf).ok_or("truncated message indexes"))
            .collect::<Result<_, _>>()?
    };
    let fd = pool.get_file_by_name(file).ok_or("schema file missing")?;
    let mut msg = usize::try_from(indexes[0])
        .ok()
        .and_then(|i| fd.messages().nth(i))
        .ok_or_else(|| format!("no message {} in the schema", indexes[0]))?;
    for &i in &indexes[1..] {
        msg = usize::try_from(i)
            .ok()
            .and_then(|i| msg.child_messages().nth(i))
            .ok_or_else(|| format!("no nested message {i} in {}", msg.full_name()))?;
    }
    let name = msg.full_name().to_string();
    let m = prost_reflect::DynamicMessage::decode(msg, buf)
        .map_err(|e| format!("not a {name}: {e}"))?;
    serde_json::to_value(&m).map_err(|e| e.to_string())
}

impl RegistryLink {
    pub fn new(url: Option<String>, max_body_bytes: usize, timeout_ms: u64) -> RegistryLink {
        RegistryLink {
            url: Mutex::new(url),
            http: HyperClient::builder(TokioExecutor::new()).build_http(),
            schemas: Mutex::new(HashMap::new()),
            max_body_bytes,
            timeout_ms,
        }
    }

    pub fn set_url(&self, url: Option<String>) {
        *self.url.lock().unwrap_or_else(|p| p.into_inner()) = url;
        self.schemas
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    pub fn url(&self) -> Option<String> {
        self.url.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// One request to the registry: its status, content type and body.
    pub async fn request(
        &self,
        method: Method,
        path_and_query: &str,
        content_type: Option<HeaderValue>,
        body: Bytes,
    ) -> ApiResult<(StatusCode, Option<HeaderValue>, Bytes)> {
        let base = self.url().ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                50303,
                "no schema registry is configured (vltava serve --registry)",
            )
        })?;
        let uri = format!("{}{}", base.trim_end_matches('/'), path_and_query);
        let mut req = Request::builder().method(method).uri(&uri);
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| ApiError::bad_request(format!("bad registry request {uri}: {e}")))?;
        let unreachable = |e: String| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                50204,
                format!("schema registry {base}: {e}"),
            )
        };
        let resp = tokio::time::timeout(
            Duration::from_millis(self.timeout_ms),
            self.http.request(req),
        )
        .await
        .map_err(|_| unreachable(format!("no answer in {} ms", self.timeout_ms)))?
        .map_err(|e| unreachable(e.to_string()))?;
        let status = resp.status();
        let ct = resp.headers().get(header::CONTENT_TYPE).cloned();
        let body = Limited::new(resp.into_body(), self.max_body_bytes)
            .collect()
            .await
            .map_err(|e| unreachable(format!("reading the answer: {e}")))?
            .to_bytes();
        Ok((status, ct, body))
    }

    async fn get_json(&self, path: &str) -> ApiResult<Value> {
        let (status, _, body) = self.request(Method::GET, path, None, Bytes::new()).await?;
        if !status.is_success() {
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                50204,
                format!(
                    "schema registry answered {status} to GET {path}: {}",
                    String::from_utf8_lossy(&body)
                ),
            ));
        }
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                50204,
                format!("schema registry GET {path}: {e}"),
            )
        })
    }

    /// The decoder of schema `id`, fetched once.
    pub async fn decoder(&self, id: u32) -> ApiResult<Arc<Decoder>> {
        if let Some(d) = self
            .schemas
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
        {
            return Ok(d.clone());
        }
        let doc = self.get_json(&format!("/schemas/ids/{id}")).await?;
        let decoder = Arc::new(self.build_decoder(&doc).await?);
        let mut cache = self.schemas.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_CACHED_SCHEMAS {
            cache.clear();
        }
        cache.insert(id, decoder.clone());
        Ok(decoder)
    }

    async fn build_decoder(&self, doc: &Value) -> ApiResult<Decoder> {
        let kind = doc["schemaType"].as_str().unwrap_or("AVRO").to_string();
        let text = doc["schema"].as_str().unwrap_or_default().to_string();
        let bad = |what: &str, e: String| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                50204,
                format!("registry schema {what}: {e}"),
            )
        };
        match kind.as_str() {
            "AVRO" => {
                let mut refs = Vec::new();
                self.referenced(doc, &mut refs, 0).await?;
                check_limits(SchemaType::Avro, &text, &refs).map_err(|e| bad("is refused", e))?;
                let named: Vec<&str> = refs.iter().map(|(_, t)| t.as_str()).collect();
                let (schema, named) = limits::on_parser_stack(|| {
                    apache_avro::Schema::parse_str_with_list(&text, &named)
                        .map_err(|e| e.to_string())
                })
                .map_err(|e| e.to_string())
                .and_then(|parsed| parsed)
                .map_err(|e| bad("does not parse", e))?;
                Ok(Decoder::Avro { schema, named })
            }
            "JSON" => Ok(Decoder::Json),
            "PROTOBUF" => {
                let mut refs = Vec::new();
                self.referenced(doc, &mut refs, 0).await?;
                check_limits(SchemaType::Protobuf, &text, &refs)
                    .map_err(|e| bad("is refused", e))?;
                let pool = limits::on_parser_stack(|| compile_proto(&text, refs))
                    .map_err(|e| e.to_string())
                    .and_then(|compiled| compiled)
                    .map_err(|e| bad("does not compile", e))?;
                Ok(Decoder::Protobuf {
                    pool,
                    file: MAIN_PROTO.to_string(),
                })
            }
            other => Ok(Decoder::Other(other.to_string())),
        }
    }

    /// The names and texts of the schemas `doc` references, dependencies first.
    async fn referenced(
        &self,
        doc: &Value,
        out: &mut Vec<(String, String)>,
        depth: usize,
    ) -> ApiResult<()> {
        let Some(refs) = doc["references"].as_array() else {
            return Ok(());
        };
        if depth >= MAX_REFERENCE_DEPTH {
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                50204,
                "schema references nest too deeply",
            ));
        }
        for r in refs {
            let (Some(name), Some(subject), Some(version)) = (
                r["name"].as_str(),
                r["subject"].as_str(),
                r["version"].as_i64(),
            ) else {
                continue;
            };
            let d = self
                .get_json(&format!(
                    "/subjects/{}/versions/{version}",
                    encode_path(subject)
                ))
                .await?;
            Box::pin(self.referenced(&d, out, depth + 1)).await?;
            if let Some(t) = d["schema"].as_str() {
                if !out.iter().any(|(n, _)| n == name) {
                    out.push((name.to_string(), t.to_string()));
                }
            }
        }
        Ok(())
    }
}

/// Percent-encodes a path segment (subjects may hold any character).
pub(crate) fn encode_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `ANY /api/registry/{*path}`: forwarded to the registry with its query and body; the
/// registry's answer comes back as it is.
pub async fn proxy(
    State(s): State<Arc<AppState>>,
    method: Method,
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
    req: Request<Body>,
) -> ApiResult<Response> {
    let content_type = req.headers().get(header::CONTENT_TYPE).cloned();
    let body = crate::read_body(&s, req.into_body()).await?;
    let mut target = format!("/{}", path.trim_start_matches('/'));
    if let Some(q) = query {
        target.push('?');
        target.push_str(&q);
    }
    let (status, ct, body) = s
        .registry
        .request(method, &target, content_type, body)
        .await?;
    let mut resp = (status, body).into_response();
    if let Some(ct) = ct {
        resp.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    Ok(resp)
}

/// How the console shows a key or value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Schema Registry framing when present, else JSON, else UTF-8 text, else hex.
    Auto,
    Json,
    Text,
    Hex,
}

impl Format {
    pub fn parse(s: Option<&str>) -> ApiResult<Format> {
        match s.unwrap_or("auto") {
            "auto" | "" => Ok(Format::Auto),
            "json" => Ok(Format::Json),
            "text" => Ok(Format::Text),
            "hex" => Ok(Format::Hex),
            other => Err(ApiError::bad_request(format!(
                "unknown format '{other}' (auto, json, text or hex)"
            ))),
        }
    }
}

/// Longest key or value text sent to the browser; longer ones are cut (and marked so).
const MAX_SHOWN_BYTES: usize = 64 * 1024;

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len().min(MAX_SHOWN_BYTES) * 2);
    for b in bytes.iter().take(MAX_SHOWN_BYTES) {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn text(bytes: &[u8]) -> Value {
    let cut = &bytes[..bytes.len().min(MAX_SHOWN_BYTES)];
    Value::String(String::from_utf8_lossy(cut).into_owned())
}

/// `{"format": ..., "data": ..., "schema_id"?: ..., "truncated"?: true, "error"?: ...}`.
pub async fn decode(link: &RegistryLink, bytes: Option<&[u8]>, format: Format) -> Value {
    let Some(bytes) = bytes else {
        return json!({"format": "null", "data": null});
    };
    let mut out = match format {
        Format::Hex => json!({"format": "hex", "data": hex(bytes)}),
        Format::Text => json!({"format": "text", "data": text(bytes)}),
        Format::Json => match serde_json::from_slice::<Value>(bytes) {
            Ok(v) => json!({"format": "json", "data": v}),
            Err(e) => {
                json!({"format": "text", "data": text(bytes), "error": format!("not JSON: {e}")})
            }
        },
        Format::Auto => decode_auto(link, bytes).await,
    };
    if bytes.len() > MAX_SHOWN_BYTES && (out["format"] == "hex" || out["format"] == "text") {
        out["truncated"] = json!(true);
    }
    out["size_bytes"] = json!(bytes.len());
    out
}

async fn decode_auto(link: &RegistryLink, bytes: &[u8]) -> Value {
    if bytes.len() >= 5 && bytes[0] == 0 && link.url().is_some() {
        let id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
        match link.decoder(id).await {
            Ok(d) => {
                let payload = &bytes[5..];
                match &*d {
                    Decoder::Avro { schema, named } => {
                        let mut r = payload;
                        let decoded = apache_avro::from_avro_datum_schemata(
                            schema,
                            named.iter().collect(),
                            &mut r,
                            None,
                        )
                        .map_err(|e| e.to_string())
                        .and_then(|v| Value::try_from(v).map_err(|e| e.to_string()));
                        return match decoded {
                            Ok(v) => json!({"format": "avro", "schema_id": id, "data": v}),
                            Err(e) => json!({"format": "hex", "schema_id": id, "data": hex(bytes),
                                             "error": format!("not Avro of schema {id}: {e}")}),
                        };
                    }
                    Decoder::Json => {
                        return match serde_json::from_slice::<Value>(payload) {
                            Ok(v) => json!({"format": "json-schema", "schema_id": id, "data": v}),
                            Err(e) => json!({"format": "hex", "schema_id": id, "data": hex(bytes),
                                             "error": format!("not JSON: {e}")}),
                        };
                    }
                    Decoder::Protobuf { pool, file } => {
                        return match decode_protobuf(pool, file, payload) {
                            Ok(v) => json!({"format": "protobuf", "schema_id": id, "data": v}),
                            Err(e) => json!({"format": "hex", "schema_id": id, "data": hex(bytes),
                                             "error": format!("not Protobuf of schema {id}: {e}")}),
                        };
                    }
                    Decoder::Other(kind) => {
                        return json!({"format": "hex", "schema_id": id, "data": hex(bytes),
                                      "error": format!("{kind} payloads are shown as hex")});
                    }
                }
            }
            // Not a registry payload after all (or the registry is down): fall through.
            Err(e) => {
                if std::str::from_utf8(bytes).is_err() {
                    return json!({"format": "hex", "data": hex(bytes), "error": e.message});
                }
            }
        }
    }
    if let Ok(s) = std::str::from_utf8(bytes) {
        let t = s.trim_start();
        if t.starts_with('{') || t.starts_with('[') {
            if let Ok(v) = serde_json::from_str::<Value>(s) {
                return json!({"format": "json", "data": v});
            }
        }
        return json!({"format": "text", "data": text(bytes)});
    }
    json!({"format": "hex", "data": hex(bytes)})
}
