//! One connection to one broker: framing, correlation ids and API version negotiation.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::error::{ClientError, Result};

/// The largest response frame the client accepts; control-plane answers are far smaller.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// A negotiated connection: requests are sent one at a time and answered in order.
pub struct Conn {
    addr: String,
    stream: BufReader<TcpStream>,
    client_id: String,
    timeout: Duration,
    next_correlation_id: i32,
    /// api key → (min, max) version the broker supports.
    versions: HashMap<i16, (i16, i16)>,
}

fn io_reason(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => "connection refused".into(),
        ConnectionReset => "connection reset by peer".into(),
        UnexpectedEof => "connection closed by the broker".into(),
        TimedOut => "timed out".into(),
        _ => {
            let s = e.to_string();
            if s.contains("lookup address") {
                return "unknown host".into();
            }
            // "failed to lookup address information: Name or service not known" and the like.
            match s.find(" (os error") {
                Some(i) => s[..i].to_lowercase(),
                None => s,
            }
        }
    }
}

impl Conn {
    /// Connects and negotiates API versions.
    pub async fn connect(addr: &str, client_id: &str, timeout: Duration) -> Result<Conn> {
        let unreachable = |reason: String| ClientError::Unreachable {
            addr: addr.to_string(),
            reason,
        };
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Err(_) => {
                return Err(unreachable(format!(
                    "timed out after {} ms",
                    timeout.as_millis()
                )))
            }
            Ok(Err(e)) => return Err(unreachable(io_reason(&e))),
            Ok(Ok(s)) => s,
        };
        let _ = stream.set_nodelay(true);
        let mut conn = Conn {
            addr: addr.to_string(),
            stream: BufReader::new(stream),
            client_id: client_id.to_string(),
            timeout,
            next_correlation_id: 1,
            versions: HashMap::new(),
        };
        conn.negotiate().await?;
        Ok(conn)
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The broker's supported versions, sorted by API key.
    pub fn api_versions(&self) -> Vec<(i16, i16, i16)> {
        let mut v: Vec<_> = self
            .versions
            .iter()
            .map(|(k, (a, b))| (*k, *a, *b))
            .collect();
        v.sort_unstable();
        v
    }

    async fn negotiate(&mut self) -> Result<()> {
        // v3 carries our name and version; a broker that does not know v3 answers with a v0 body
        // listing what it supports, and we retry with the highest ApiVersions it speaks.
        let mut version = 3;
        for _ in 0..2 {
            let req = ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("vltava"))
                .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
            let req = if version >= 3 {
                req
            } else {
                ApiVersionsRequest::default()
            };
            let resp: ApiVersionsResponse = self.send(&req, version).await?;
            if resp.error_code == 35 {
                let max = resp
                    .api_keys
                    .iter()
                    .find(|k| k.api_key == 18)
                    .map(|k| k.max_version)
                    .unwrap_or(0);
                version = max.min(3);
                continue;
            }
            if let Some(e) = ClientError::from_code(resp.error_code, &self.addr, None) {
                return Err(e);
            }
            self.versions = resp
                .api_keys
                .iter()
                .map(|k| (k.api_key, (k.min_version, k.max_version)))
                .collect();
            return Ok(());
        }
        Err(self.protocol("ApiVersions negotiation failed"))
    }

    fn protocol(&self, reason: impl Into<String>) -> ClientError {
        ClientError::Protocol {
            addr: self.addr.clone(),
            reason: reason.into(),
        }
    }

    /// The version to use for `R`: the highest both sides speak, at most `cap`.
    pub fn version_for<R: Request>(&self, cap: i16) -> Result<i16> {
        let name = api_name(R::KEY);
        let (bmin, bmax) = self.versions.get(&R::KEY).copied().ok_or_else(|| {
            ClientError::Unsupported(format!("{} does not support {name}", self.addr))
        })?;
        let max = bmax.min(R::VERSIONS.max).min(cap);
        let min = bmin.max(R::VERSIONS.min);
        if max < min {
            return Err(ClientError::Unsupported(format!(
                "{} speaks {name} v{bmin}-{bmax}, which this client does not",
                self.addr
            )));
        }
        Ok(max)
    }

    /// Whether the broker advertises API `key`.
    pub fn supports(&self, key: i16) -> bool {
        self.versions.contains_key(&key)
    }

    /// Sends `req` at `version` and decodes the answer. A failure leaves the connection unusable;
    /// the caller drops it.
    pub async fn send<R: Request>(&mut self, req: &R, version: i16) -> Result<R::Response> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let mut body = BytesMut::new();
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_string(self.client_id.clone())));
        header
            .encode(&mut body, R::header_version(version))
            .and_then(|_| req.encode(&mut body, version))
            .map_err(|e| ClientError::Other(format!("cannot encode {}: {e}", api_name(R::KEY))))?;
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
        let timeout = self.timeout;
        let name = api_name(R::KEY);
        let mut answer = match tokio::time::timeout(timeout, self.round_trip(&frame)).await {
            Err(_) => {
                return Err(self.protocol(format!(
                    "no answer to {name} within {} ms",
                    timeout.as_millis()
                )))
            }
            Ok(Err(e)) => return Err(self.protocol(io_reason(&e))),
            Ok(Ok(b)) => b,
        };
        let rh = ResponseHeader::decode(&mut answer, R::Response::header_version(version))
            .map_err(|e| self.protocol(format!("bad {name} response header: {e}")))?;
        if rh.correlation_id != correlation_id {
            return Err(self.protocol(format!(
                "{name}: correlation id {} does not match {correlation_id}",
                rh.correlation_id
            )));
        }
        R::Response::decode(&mut answer, version)
            .map_err(|e| self.protocol(format!("cannot decode {name} v{version} response: {e}")))
    }

    async fn round_trip(&mut self, frame: &[u8]) -> std::io::Result<Bytes> {
        self.stream.get_mut().write_all(frame).await?;
        let len = self.stream.read_i32().await?;
        if len < 0 || len as usize > MAX_RESPONSE_BYTES {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("response frame of {len} bytes"),
            ));
        }
        let mut buf = vec![0u8; len as usize];
        self.stream.read_exact(&mut buf).await?;
        let mut b = Bytes::from(buf);
        if b.remaining() < 4 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "short response frame",
            ));
        }
        Ok(b.split_off(0))
    }
}

/// The protocol name of an API key.
pub fn api_name(key: i16) -> String {
    match kafka_protocol::messages::ApiKey::try_from(key) {
        Ok(k) => format!("{k:?}"),
        Err(_) => format!("API {key}"),
    }
}
