//! Starting and stopping a broker: bind the listeners, recover the data directory, accept
//! connections, run retention, and on shutdown drain connections and sync everything.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::config::BrokerConfig;
use crate::connection;
use crate::handlers::now_ms;
use crate::state::{BrokerState, ListenerInfo};
use crate::syncer::sync_partition;

/// How long shutdown waits for connections to finish their in-flight request.
const SHUTDOWN_DRAIN_MS: u64 = 10_000;
/// Resolution of group session and rebalance timeouts.
const GROUP_TICK_MS: u64 = 100;

pub struct Broker;

/// A running broker.
pub struct BrokerHandle {
    state: Arc<BrokerState>,
    local_addrs: Vec<SocketAddr>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    connections: Arc<ConnCount>,
}

#[derive(Default)]
struct ConnCount {
    open: AtomicUsize,
    zero: Notify,
    /// Open connections per peer address (max.connections.per.ip); an address leaves the map
    /// with its last connection, so it holds at most `max.connections` entries.
    per_ip: std::sync::Mutex<std::collections::HashMap<IpAddr, usize>>,
}

impl ConnCount {
    fn per_ip(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<IpAddr, usize>> {
        self.per_ip.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct ConnGuard(Arc<ConnCount>, IpAddr);
impl Drop for ConnGuard {
    fn drop(&mut self) {
        {
            let mut per_ip = self.0.per_ip();
            if let Some(n) = per_ip.get_mut(&self.1) {
                *n -= 1;
                if *n == 0 {
                    per_ip.remove(&self.1);
                }
            }
        }
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.zero.notify_waiters();
        }
    }
}

fn default_advertised_host(bind: &SocketAddr) -> String {
    if bind.ip().is_unspecified() {
        // 0.0.0.0 is not an address a client can connect to: advertise this host's name.
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".to_string())
    } else {
        bind.ip().to_string()
    }
}

impl Broker {
    /// Binds every listener, recovers the data directory and starts serving.
    pub async fn start(config: BrokerConfig) -> anyhow::Result<BrokerHandle> {
        if config.listeners.is_empty() {
            anyhow::bail!("at least one listener is required");
        }
        let mut bound = Vec::new();
        let mut infos = Vec::new();
        for l in &config.listeners {
            let sock = TcpListener::bind(l.bind)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {} ({}): {e}", l.bind, l.name))?;
            let local = sock.local_addr()?;
            let unspecified = l
                .advertised_host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_unspecified());
            let host = if l.advertised_host.is_empty() || unspecified {
                default_advertised_host(&local)
            } else {
                l.advertised_host.clone()
            };
            let port = if l.advertised_port == 0 {
                local.port()
            } else {
                l.advertised_port
            };
            infos.push(ListenerInfo {
                name: l.name.clone(),
                host,
                port: port as i32,
            });
            bound.push((sock, local));
        }
        let state = {
            let infos = infos.clone();
            let config = config.clone();
            tokio::task::spawn_blocking(move || BrokerState::open(config, infos)).await??
        };
        let state = Arc::new(state);
        let (shutdown, _) = watch::channel(false);
        let connections = Arc::new(ConnCount::default());
        let mut tasks = Vec::new();
        let mut local_addrs = Vec::new();
        for ((sock, local), info) in bound.into_iter().zip(infos) {
            local_addrs.push(local);
            tasks.push(tokio::spawn(accept_loop(
                state.clone(),
                Arc::new(info),
                sock,
                shutdown.subscribe(),
                connections.clone(),
            )));
        }
        tasks.push(tokio::spawn(periodic(
            state.clone(),
            shutdown.subscribe(),
            state.config.retention_check_interval_ms,
            run_retention,
        )));
        // The log cleaner: one partition at a time (Kafka's log.cleaner.threads=1).
        tasks.push(tokio::spawn(periodic(
            state.clone(),
            shutdown.subscribe(),
            state.config.log_cleaner_backoff_ms,
            run_cleaner,
        )));
        tasks.push(tokio::spawn(group_tick_loop(
            state.clone(),
            shutdown.subscribe(),
        )));
        Ok(BrokerHandle {
            state,
            local_addrs,
            shutdown,
            tasks,
            connections,
        })
    }
}

async fn accept_loop(
    state: Arc<BrokerState>,
    info: Arc<ListenerInfo>,
    sock: TcpListener,
    mut shutdown: watch::Receiver<bool>,
    connections: Arc<ConnCount>,
) {
    loop {
        let accepted = tokio::select! {
            r = sock.accept() => r,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                crate::warn_limited!(state.log_limit, "accept", error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if connections.open.load(Ordering::Acquire) >= state.config.max_connections {
            crate::warn_limited!(state.log_limit, "max.connections", %peer, max = state.config.max_connections, "refusing connection: max.connections reached");
            continue;
        }
        let ip = peer.ip();
        let cfg = &state.config;
        let ip_max = cfg
            .max_connections_per_ip_overrides
            .iter()
            .find(|(o, _)| *o == ip)
            .map_or(cfg.max_connections_per_ip, |(_, n)| *n);
        {
            let mut per_ip = connections.per_ip();
            let n = per_ip.entry(ip).or_insert(0);
            if *n >= ip_max {
                if *n == 0 {
                    per_ip.remove(&ip);
                }
                drop(per_ip);
                crate::warn_limited!(state.log_limit, "max.connections.per.ip", %peer, max = ip_max, "refusing connection: max.connections.per.ip reached");
                continue;
            }
            *n += 1;
        }
        connections.open.fetch_add(1, Ordering::AcqRel);
        let guard = ConnGuard(connections.clone(), ip);
        let (state, info, shutdown) = (state.clone(), info.clone(), shutdown.clone());
        tokio::spawn(async move {
            let _guard = guard;
            connection::serve(state, info, stream, shutdown).await;
        });
    }
}

/// Runs `work` on a blocking thread every `period_ms` until shutdown (retention, the cleaner).
async fn periodic(
    state: Arc<BrokerState>,
    mut shutdown: watch::Receiver<bool>,
    period_ms: u64,
    work: fn(&BrokerState),
) {
    let mut tick = tokio::time::interval(Duration::from_millis(period_ms.max(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let state = state.clone();
        let _ = tokio::task::spawn_blocking(move || work(&state)).await;
    }
}

/// One cleaner pass: every compacted partition whose dirty ratio (or tombstone horizon) is due
/// is planned under its lock, cleaned without it, and the result swapped in under it again.
pub fn run_cleaner(state: &BrokerState) {
    for topic in state.topics.all() {
        let cfg = topic.config.log_config();
        if !cfg.compact_enabled {
            continue;
        }
        for p in &topic.partitions {
            let Some(plan) = p.log().plan_clean(&cfg, now_ms()) else {
                continue;
            };
            // Only the swap takes the lock; it renames and the syncer makes that durable.
            let outcome = plan
                .run()
                .and_then(|result| result.prepare())
                .and_then(|prepared| p.log().install_clean(prepared));
            match outcome {
                Ok(stats) => {
                    tracing::info!(
                        topic = %topic.name,
                        partition = p.index,
                        records_removed = stats.records_removed,
                        bytes_before = stats.bytes_before,
                        bytes_after = stats.bytes_after,
                        segments_removed = stats.segments_removed,
                        "compacted"
                    );
                    state.metrics.observe_clean(&stats);
                    state.syncer.request(p);
                }
                Err(e) => {
                    tracing::error!(topic = %topic.name, partition = p.index, error = %e, "log cleaning failed")
                }
            }
        }
    }
}

/// Drives the group coordinator's clock: session expiry, rebalance deadlines, offset expiry.
async fn group_tick_loop(state: Arc<BrokerState>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(GROUP_TICK_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        state.groups.tick(now_ms());
    }
}

/// One retention pass over every partition.
pub fn run_retention(state: &BrokerState) {
    let now = now_ms();
    for topic in state.topics.all() {
        let cfg = topic.config.log_config();
        for p in &topic.partitions {
            let result = {
                let mut log = p.log();
                log.expire_producers(now, state.config.producer_id_expiration_ms);
                log.apply_retention(&cfg, now)
            };
            match result {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(topic = %topic.name, partition = p.index, segments = n, "retention deleted segments");
                    state.syncer.request(p);
                }
                Err(e) => {
                    tracing::error!(topic = %topic.name, partition = p.index, error = %e, "retention failed")
                }
            }
        }
    }
}

impl BrokerHandle {
    /// `host:port` of the first listener, as clients should use it.
    pub fn bootstrap(&self) -> String {
        let l = &self.state.listeners[0];
        format!("{}:{}", l.host, l.port)
    }
    pub fn listeners(&self) -> &[ListenerInfo] {
        &self.state.listeners
    }
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }
    pub fn state(&self) -> &Arc<BrokerState> {
        &self.state
    }

    /// Stops accepting, lets every connection finish its in-flight request, syncs all data and
    /// writes the active segments' indexes.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        self.state.stopping.send_replace(true);
        self.state.groups.abandon_waiters();
        let drained = async {
            loop {
                let notified = self.connections.zero.notified();
                if self.connections.open.load(Ordering::Acquire) == 0 {
                    return;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(Duration::from_millis(SHUTDOWN_DRAIN_MS), drained)
            .await
            .is_err()
        {
            tracing::warn!("connections still open after the drain period; closing anyway");
        }
        for t in self.tasks {
            t.abort();
        }
        let state = self.state.clone();
        tokio::task::spawn_blocking(move || {
            state.syncer.stop();
            let mut clean = true;
            for topic in state.topics.all() {
                for p in &topic.partitions {
                    sync_partition(p, &state.metrics, &state.health, false);
                    let mut log = p.log();
                    if let Err(e) = log.close() {
                        clean = false;
                        tracing::warn!(topic = %topic.name, partition = p.index, error = %e, "cannot write indexes at shutdown");
                    }
                    clean &= log.high_watermark() == log.log_end_offset();
                }
            }
            // After a storage failure the next start must check everything.
            if clean && !state.health.is_offline() {
                if let Err(e) = state.topics.mark_clean_shutdown() {
                    tracing::warn!(error = %e, "cannot record the clean shutdown");
                }
            }
        })
        .await?;
        Ok(())
    }
}
