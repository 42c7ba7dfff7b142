//! A client of a whole cluster: bootstrap, broker addresses from metadata, one connection per
//! broker, and requests routed to any broker, a given broker, a partition leader or a group
//! coordinator.

use std::collections::HashMap;
use std::time::Duration;

use kafka_protocol::messages::MetadataRequest;
use kafka_protocol::protocol::Request;

use crate::conn::Conn;
use crate::error::{ClientError, Result};

/// Options for [`Client::connect`].
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// `host:port[,host:port...]`.
    pub bootstrap: String,
    pub client_id: String,
    /// Connect and per-request timeout.
    pub timeout_ms: u64,
}

impl ClientOptions {
    pub fn new(bootstrap: &str) -> ClientOptions {
        ClientOptions {
            bootstrap: bootstrap.to_string(),
            client_id: "vltava".to_string(),
            timeout_ms: 10_000,
        }
    }
}

/// Where a request goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Node {
    /// The bootstrap connection (any broker can answer).
    Any,
    /// The broker with this node id.
    Id(i32),
}

/// A connected cluster client. Requests are sequential; a failed connection is dropped and made
/// again on the next request.
pub struct Client {
    opts: ClientOptions,
    bootstrap: Option<Conn>,
    /// node id → `host:port`, learnt from Metadata / FindCoordinator.
    pub(crate) brokers: HashMap<i32, String>,
    conns: HashMap<i32, Conn>,
}

impl Client {
    /// Connects to the first reachable bootstrap address.
    pub async fn connect(opts: ClientOptions) -> Result<Client> {
        let mut client = Client {
            opts,
            bootstrap: None,
            brokers: HashMap::new(),
            conns: HashMap::new(),
        };
        client.bootstrap_conn().await?;
        Ok(client)
    }

    pub fn options(&self) -> &ClientOptions {
        &self.opts
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.opts.timeout_ms)
    }

    async fn bootstrap_conn(&mut self) -> Result<&mut Conn> {
        if self.bootstrap.is_none() {
            let mut last = None;
            let addrs: Vec<String> = self
                .opts
                .bootstrap
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            if addrs.is_empty() {
                return Err(ClientError::Other("no bootstrap address given".into()));
            }
            for addr in addrs {
                let addr = if addr.contains(':') {
                    addr
                } else {
                    format!("{addr}:9092")
                };
                match Conn::connect(&addr, &self.opts.client_id, self.timeout()).await {
                    Ok(c) => {
                        self.bootstrap = Some(c);
                        break;
                    }
                    Err(e) => last = Some(e),
                }
            }
            if self.bootstrap.is_none() {
                return Err(last.unwrap_or_else(|| ClientError::Other("no bootstrap".into())));
            }
        }
        self.bootstrap
            .as_mut()
            .ok_or_else(|| ClientError::Other("no bootstrap connection".into()))
    }

    async fn conn(&mut self, node: Node) -> Result<&mut Conn> {
        match node {
            Node::Any => self.bootstrap_conn().await,
            Node::Id(id) => {
                if !self.conns.contains_key(&id) {
                    if !self.brokers.contains_key(&id) {
                        self.refresh_brokers().await?;
                    }
                    let addr = self.brokers.get(&id).cloned().ok_or_else(|| {
                        ClientError::Other(format!("broker {id} is not in the cluster metadata"))
                    })?;
                    let timeout = self.timeout();
                    let c = Conn::connect(&addr, &self.opts.client_id, timeout).await?;
                    self.conns.insert(id, c);
                }
                self.conns
                    .get_mut(&id)
                    .ok_or_else(|| ClientError::Other(format!("no connection to broker {id}")))
            }
        }
    }

    /// Learns broker addresses from a Metadata request for no topics, on the bootstrap connection.
    pub async fn refresh_brokers(&mut self) -> Result<()> {
        let conn = self.bootstrap_conn().await?;
        let version = conn.version_for::<MetadataRequest>(12)?;
        let req = MetadataRequest::default().with_topics(Some(Vec::new()));
        let resp = match conn.send(&req, version).await {
            Ok(r) => r,
            Err(e) => {
                self.bootstrap = None;
                return Err(e);
            }
        };
        for b in resp.brokers {
            self.brokers
                .insert(b.node_id.0, format!("{}:{}", b.host, b.port));
        }
        Ok(())
    }

    /// The version `R` would be sent at on `node`.
    pub async fn version_for<R: Request>(&mut self, node: Node, cap: i16) -> Result<i16> {
        self.conn(node).await?.version_for::<R>(cap)
    }

    /// Whether the bootstrap broker advertises API `key`.
    pub async fn supports(&mut self, key: i16) -> Result<bool> {
        Ok(self.bootstrap_conn().await?.supports(key))
    }

    /// The bootstrap broker's API versions: (key, min, max).
    pub async fn api_versions(&mut self) -> Result<Vec<(i16, i16, i16)>> {
        Ok(self.bootstrap_conn().await?.api_versions())
    }

    /// Sends a request built for the negotiated version (at most `cap`) to `node`.
    pub async fn call<R: Request>(
        &mut self,
        node: Node,
        cap: i16,
        build: impl FnOnce(i16) -> R,
    ) -> Result<(R::Response, i16)> {
        let conn = self.conn(node).await?;
        let version = conn.version_for::<R>(cap)?;
        let req = build(version);
        match conn.send(&req, version).await {
            Ok(r) => Ok((r, version)),
            Err(e) => {
                // The connection is in an unknown state; drop it so the next call reconnects.
                match node {
                    Node::Any => self.bootstrap = None,
                    Node::Id(id) => {
                        self.conns.remove(&id);
                    }
                }
                Err(e)
            }
        }
    }
}
