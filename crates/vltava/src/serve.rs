//! `vltava serve`: run the broker.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{anyhow, bail, Context};
use clap::Parser;
use vltava_broker::{Broker, BrokerConfig, ListenerConfig};

#[derive(Parser)]
pub struct ServeArgs {
    /// Address of the default listener (PLAINTEXT) [default: 127.0.0.1:9092 when no --listener is given].
    #[arg(long, env = "VLTAVA_LISTEN")]
    listen: Option<String>,
    /// Named listener NAME=HOST:PORT; repeat for several (comma-separated in the variable).
    #[arg(long = "listener", env = "VLTAVA_LISTENERS", value_delimiter = ',')]
    listeners: Vec<String>,
    /// Address clients are told to use: HOST:PORT for the default listener, or NAME=HOST:PORT.
    #[arg(long = "advertise", env = "VLTAVA_ADVERTISE", value_delimiter = ',')]
    advertise: Vec<String>,
    /// Where topics and their logs are stored.
    #[arg(long, env = "VLTAVA_DATA_DIR", default_value = "./vltava-data")]
    data_dir: PathBuf,
    /// Create a topic when a client asks for metadata of one that does not exist.
    #[arg(long, env = "VLTAVA_AUTO_CREATE_TOPICS", default_value_t = true, action = clap::ArgAction::Set)]
    auto_create_topics: bool,
    /// Same as --auto-create-topics false.
    #[arg(long, conflicts_with = "auto_create_topics")]
    no_auto_create_topics: bool,
    /// Partitions of auto-created topics and of CreateTopics asking for the default (num.partitions).
    #[arg(long, env = "VLTAVA_DEFAULT_PARTITIONS", default_value_t = 1)]
    default_partitions: i32,
    /// This broker's node id.
    #[arg(long, env = "VLTAVA_NODE_ID", default_value_t = 1)]
    node_id: i32,
    /// Largest request frame accepted; larger ones close the connection (socket.request.max.bytes).
    #[arg(long, env = "VLTAVA_MAX_REQUEST_BYTES", default_value_t = 100 * 1024 * 1024)]
    max_request_bytes: usize,
    /// How often retention runs (log.retention.check.interval.ms).
    #[arg(
        long,
        env = "VLTAVA_RETENTION_CHECK_INTERVAL_MS",
        default_value_t = 300_000
    )]
    retention_check_interval_ms: u64,
    /// How often compacted topics are checked for cleaning (log.cleaner.backoff.ms).
    #[arg(long, env = "VLTAVA_LOG_CLEANER_BACKOFF_MS", default_value_t = 15_000)]
    log_cleaner_backoff_ms: u64,
    /// Most client connections served at once (max.connections).
    #[arg(long, env = "VLTAVA_MAX_CONNECTIONS", default_value_t = 10_000)]
    max_connections: usize,
    /// Most connections from one IP address (max.connections.per.ip).
    #[arg(long, env = "VLTAVA_MAX_CONNECTIONS_PER_IP", default_value_t = vltava_broker::config::DEFAULT_MAX_CONNECTIONS_PER_IP)]
    max_connections_per_ip: usize,
    /// Exceptions to --max-connections-per-ip, as IP:N,IP:N (max.connections.per.ip.overrides).
    #[arg(
        long,
        env = "VLTAVA_MAX_CONNECTIONS_PER_IP_OVERRIDES",
        value_delimiter = ','
    )]
    max_connections_per_ip_overrides: Vec<String>,
    /// Close a connection that sends no request for this long (connections.max.idle.ms).
    #[arg(
        long,
        env = "VLTAVA_CONNECTIONS_MAX_IDLE_MS",
        default_value_t = 600_000
    )]
    connections_max_idle_ms: u64,
    /// Request bytes held at once over all connections; past it sockets are not read until
    /// answers free some (queued.max.request.bytes).
    #[arg(long, env = "VLTAVA_QUEUED_MAX_REQUEST_BYTES", default_value_t = vltava_broker::config::DEFAULT_QUEUED_MAX_REQUEST_BYTES)]
    queued_max_request_bytes: usize,
    /// Segment files kept open at once; others are opened when read [default: half the
    /// open-files limit, which start-up raises to its hard limit].
    #[arg(long, env = "VLTAVA_MAX_OPEN_SEGMENT_FILES")]
    max_open_segment_files: Option<usize>,
    /// Smallest session.timeout.ms a group member may ask for (group.min.session.timeout.ms).
    #[arg(
        long,
        env = "VLTAVA_GROUP_MIN_SESSION_TIMEOUT_MS",
        default_value_t = 1_000
    )]
    group_min_session_timeout_ms: i32,
    /// Wait before the first rebalance of an empty group (group.initial.rebalance.delay.ms).
    #[arg(
        long,
        env = "VLTAVA_GROUP_INITIAL_REBALANCE_DELAY_MS",
        default_value_t = 0
    )]
    group_initial_rebalance_delay_ms: i64,
    /// How long an empty group's committed offsets are kept (offsets.retention.minutes).
    #[arg(
        long,
        env = "VLTAVA_OFFSETS_RETENTION_MINUTES",
        default_value_t = 10_080
    )]
    offsets_retention_minutes: i64,
    /// How often empty groups and expired offsets are removed
    /// (offsets.retention.check.interval.ms).
    #[arg(
        long,
        env = "VLTAVA_OFFSETS_RETENTION_CHECK_INTERVAL_MS",
        default_value_t = 600_000
    )]
    offsets_retention_check_interval_ms: i64,
    /// Most consumer groups held at once; past it a JoinGroup, ConsumerGroupHeartbeat or
    /// OffsetCommit that would create one gets COORDINATOR_NOT_AVAILABLE, which clients retry
    /// (Vltava's own limit: Kafka has none).
    #[arg(long, env = "VLTAVA_MAX_GROUPS", default_value_t = vltava_broker::config::DEFAULT_MAX_GROUPS)]
    max_groups: usize,
    /// Partitions of the `__consumer_offsets` topic, Kafka's view of the group state, when it
    /// is created (offsets.topic.num.partitions).
    #[arg(
        long,
        env = "VLTAVA_OFFSETS_TOPIC_NUM_PARTITIONS",
        default_value_t = vltava_broker::group::offsets_topic::DEFAULT_PARTITIONS
    )]
    offsets_topic_num_partitions: i32,
    /// Address of the HTTP API (status, health, metrics, REST produce/consume).
    #[arg(long, env = "VLTAVA_HTTP", default_value = "127.0.0.1:8080")]
    http: String,
    /// Do not serve the HTTP API.
    #[arg(long)]
    no_http: bool,
    /// The Kafka cluster the REST endpoints are a client of [default: this broker's first listener].
    #[arg(long, env = "VLTAVA_HTTP_BOOTSTRAP")]
    http_bootstrap: Option<String>,
    /// Close REST consumer instances idle for this long (consumer.instance.timeout.ms).
    #[arg(
        long,
        env = "VLTAVA_HTTP_CONSUMER_IDLE_TIMEOUT_MS",
        default_value_t = 300_000
    )]
    http_consumer_idle_timeout_ms: u64,
    /// Largest HTTP request body accepted (413 beyond).
    #[arg(long, env = "VLTAVA_HTTP_MAX_BODY_BYTES", default_value_t = 8 * 1024 * 1024)]
    http_max_body_bytes: usize,
    /// Address of the Schema Registry (Confluent's REST API).
    #[arg(long, env = "VLTAVA_REGISTRY", default_value = "127.0.0.1:8081")]
    registry: String,
    /// Do not serve the Schema Registry.
    #[arg(long)]
    no_registry: bool,
    /// The Kafka cluster whose `_schemas` topic the registry uses [default: this broker].
    #[arg(long, env = "VLTAVA_REGISTRY_BOOTSTRAP")]
    registry_bootstrap: Option<String>,
    /// The Schema Registry the web console shows and decodes records with, as http://HOST:PORT
    /// [default: the one this process serves].
    #[arg(long, env = "VLTAVA_CONSOLE_REGISTRY_URL")]
    console_registry_url: Option<String>,
    /// Log filter, e.g. info or vltava_broker=debug.
    #[arg(long, env = "VLTAVA_LOG", default_value = "info")]
    pub log: String,
    /// Log lines as text (coloured only on a terminal) or one JSON object per line, for log
    /// shippers.
    #[arg(long, env = "VLTAVA_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

fn resolve(addr: &str) -> anyhow::Result<SocketAddr> {
    addr.to_socket_addrs()
        .with_context(|| format!("'{addr}' is not a HOST:PORT address"))?
        .next()
        .ok_or_else(|| anyhow!("'{addr}' resolves to no address"))
}

fn split_host_port(s: &str) -> anyhow::Result<(String, u16)> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| anyhow!("'{s}' is not HOST:PORT"))?;
    let port = port
        .parse::<u16>()
        .with_context(|| format!("'{port}' in '{s}' is not a port number"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        bail!("'{s}' has no host");
    }
    Ok((host.to_string(), port))
}

fn broker_config(a: &ServeArgs) -> anyhow::Result<BrokerConfig> {
    let mut listeners = Vec::new();
    for l in &a.listeners {
        let (name, addr) = l
            .split_once('=')
            .ok_or_else(|| anyhow!("--listener '{l}' must be NAME=HOST:PORT"))?;
        if name.is_empty() || listeners.iter().any(|x: &ListenerConfig| x.name == name) {
            bail!("--listener '{l}': listener names must be non-empty and unique");
        }
        listeners.push(ListenerConfig::new(name, resolve(addr)?));
    }
    if a.listen.is_some() || listeners.is_empty() {
        let addr = a.listen.as_deref().unwrap_or("127.0.0.1:9092");
        if listeners.iter().any(|x| x.name == "PLAINTEXT") {
            bail!("--listen adds the PLAINTEXT listener, which --listener also names");
        }
        listeners.insert(0, ListenerConfig::new("PLAINTEXT", resolve(addr)?));
    }
    for adv in &a.advertise {
        let (target, hp) = match adv.split_once('=') {
            Some((name, hp)) => (
                listeners
                    .iter_mut()
                    .find(|l| l.name == name)
                    .ok_or_else(|| anyhow!("--advertise '{adv}': no listener named '{name}'"))?,
                hp,
            ),
            None => (&mut listeners[0], adv.as_str()),
        };
        let (host, port) = split_host_port(hp)?;
        target.advertised_host = host;
        target.advertised_port = port;
    }
    if a.default_partitions < 1 {
        bail!("--default-partitions must be at least 1");
    }
    if a.max_request_bytes < 1024 {
        bail!("--max-request-bytes must be at least 1024");
    }
    let mut c = BrokerConfig::new(listeners[0].bind, a.data_dir.clone());
    c.listeners = listeners;
    c.node_id = a.node_id;
    c.auto_create_topics = a.auto_create_topics && !a.no_auto_create_topics;
    c.default_partitions = a.default_partitions;
    c.max_request_bytes = a.max_request_bytes;
    c.retention_check_interval_ms = a.retention_check_interval_ms;
    c.log_cleaner_backoff_ms = a.log_cleaner_backoff_ms;
    c.max_connections = a.max_connections;
    c.max_connections_per_ip = a.max_connections_per_ip;
    for o in &a.max_connections_per_ip_overrides {
        let (ip, n) = o
            .rsplit_once(':')
            .ok_or_else(|| anyhow!("--max-connections-per-ip-overrides '{o}' must be IP:N"))?;
        let ip = ip
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .with_context(|| format!("'{ip}' in '{o}' is not an IP address"))?;
        let n = n
            .parse()
            .with_context(|| format!("'{n}' in '{o}' is not a number"))?;
        c.max_connections_per_ip_overrides.push((ip, n));
    }
    if a.connections_max_idle_ms < 1000 {
        bail!("--connections-max-idle-ms must be at least 1000");
    }
    c.connections_max_idle_ms = a.connections_max_idle_ms;
    if a.queued_max_request_bytes < a.max_request_bytes {
        bail!("--queued-max-request-bytes must be at least --max-request-bytes (one largest request must fit)");
    }
    c.queued_max_request_bytes = a.queued_max_request_bytes;
    if a.max_open_segment_files
        .is_some_and(|n| n < vltava_broker::fd_limit::MIN_MAX_OPEN_SEGMENT_FILES)
    {
        bail!(
            "--max-open-segment-files must be at least {}",
            vltava_broker::fd_limit::MIN_MAX_OPEN_SEGMENT_FILES
        );
    }
    c.max_open_segment_files = a.max_open_segment_files;
    if a.group_min_session_timeout_ms < 1
        || a.offsets_retention_minutes < 1
        || a.group_initial_rebalance_delay_ms < 0
        || a.offsets_retention_check_interval_ms < 1
        || a.max_groups < 1
    {
        bail!("group timeouts, offsets retention and its check interval, and --max-groups must be positive");
    }
    c.group_min_session_timeout_ms = a.group_min_session_timeout_ms;
    c.group_initial_rebalance_delay_ms = a.group_initial_rebalance_delay_ms;
    c.offsets_retention_ms = a.offsets_retention_minutes * 60_000;
    c.offsets_retention_check_interval_ms = a.offsets_retention_check_interval_ms;
    c.max_groups = a.max_groups;
    if a.offsets_topic_num_partitions < 1 {
        bail!("--offsets-topic-num-partitions must be at least 1");
    }
    c.offsets_topic_num_partitions = a.offsets_topic_num_partitions;
    Ok(c)
}

pub async fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    // Installed first: a SIGTERM that arrives during start-up is kept and acted on once started.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let config = broker_config(&a)?;
    let data_dir = config.data_dir.clone();
    // The HTTP API starts first so that liveness answers during recovery; readiness turns 200
    // once the broker is up.
    let own_bootstrap = {
        let l = &config.listeners[0];
        let ip = if l.bind.ip().is_unspecified() {
            std::net::IpAddr::from([127, 0, 0, 1])
        } else {
            l.bind.ip()
        };
        SocketAddr::new(ip, l.bind.port()).to_string()
    };
    let http = if a.no_http {
        None
    } else {
        let bind = resolve(&a.http).context("--http")?;
        let bootstrap = a
            .http_bootstrap
            .clone()
            .unwrap_or_else(|| own_bootstrap.clone());
        if a.http_max_body_bytes < 1024 {
            bail!("--http-max-body-bytes must be at least 1024");
        }
        let mut hc = vltava_http::HttpConfig::new(bind, &bootstrap);
        hc.consumer_idle_timeout_ms = a.http_consumer_idle_timeout_ms;
        hc.max_body_bytes = a.http_max_body_bytes;
        Some(
            vltava_http::HttpServer::start(hc)
                .await
                .with_context(|| format!("cannot serve HTTP on {}", a.http))?,
        )
    };
    let registry_bind = if a.no_registry {
        None
    } else {
        Some(resolve(&a.registry).context("--registry")?)
    };
    let broker = Broker::start(config).await?;
    if let Some(h) = &http {
        h.set_broker(broker.state().clone());
    }
    // The registry is a Kafka client of the broker, so it starts once the broker listens.
    let registry = match registry_bind {
        None => None,
        Some(bind) => {
            let bootstrap = a.registry_bootstrap.as_deref().unwrap_or(&own_bootstrap);
            let rc = vltava_registry::RegistryConfig::new(bind, bootstrap);
            Some(
                vltava_registry::RegistryServer::start(rc)
                    .await
                    .with_context(|| {
                        format!("cannot serve the schema registry on {}", a.registry)
                    })?,
            )
        }
    };
    println!(
        "Vltava {} ready in {} ms, data in {}",
        env!("CARGO_PKG_VERSION"),
        started.elapsed().as_millis(),
        data_dir.display()
    );
    for l in broker.listeners() {
        println!("  bootstrap servers ({}): {}:{}", l.name, l.host, l.port);
    }
    if let Some(h) = &http {
        println!("  HTTP API: http://{}", h.addr);
    }
    if let Some(r) = &registry {
        println!("  Schema Registry: http://{}", r.addr);
    }
    if let Some(h) = &http {
        let own_registry = registry.as_ref().map(|r| {
            let ip = if r.addr.ip().is_unspecified() {
                std::net::IpAddr::from([127, 0, 0, 1])
            } else {
                r.addr.ip()
            };
            format!("http://{}", SocketAddr::new(ip, r.addr.port()))
        });
        h.set_registry(a.console_registry_url.clone().or(own_registry));
        println!("  Web console: http://{}/", h.addr);
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
    }
    if let Some(r) = registry {
        r.shutdown().await;
    }
    if let Some(h) = http {
        h.shutdown().await;
    }
    broker.shutdown().await?;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// How `vltava serve` writes its log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}
