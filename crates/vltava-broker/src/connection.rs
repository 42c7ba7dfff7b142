//! One client connection: read size-prefixed frames (bounded by `max_request_bytes`), dispatch
//! each request in order, write the responses in order. Anything the broker cannot parse closes
//! this connection only, as Kafka does.
//!
//! Requests are pipelined: a produce is appended when it is read, and its answer (which waits
//! for the fsync) is queued, so the next request is read and appended meanwhile and a producer's
//! in-flight requests share one group commit. At most `MAX_IN_FLIGHT` answers wait per
//! connection; responses always go out in request order.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterPartitionReassignmentsRequest, AlterReplicaLogDirsRequest, ApiKey,
    ApiVersionsRequest, ConsumerGroupDescribeRequest, ConsumerGroupHeartbeatRequest,
    CreatePartitionsRequest, CreateTopicsRequest, DeleteGroupsRequest, DeleteRecordsRequest,
    DeleteTopicsRequest, DescribeClusterRequest, DescribeConfigsRequest, DescribeGroupsRequest,
    DescribeLogDirsRequest, DescribeProducersRequest, DescribeQuorumRequest,
    DescribeTopicPartitionsRequest, ElectLeadersRequest, FetchRequest, FindCoordinatorRequest,
    HeartbeatRequest, IncrementalAlterConfigsRequest, InitProducerIdRequest, JoinGroupRequest,
    LeaveGroupRequest, ListConfigResourcesRequest, ListGroupsRequest, ListOffsetsRequest,
    ListPartitionReassignmentsRequest, MetadataRequest, OffsetCommitRequest, OffsetDeleteRequest,
    OffsetFetchRequest, OffsetForLeaderEpochRequest, ProduceRequest, StreamsGroupDescribeRequest,
    StreamsGroupHeartbeatRequest, SyncGroupRequest,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::handlers::groups::Caller;
use crate::handlers::{
    admin, cluster, configs, fetch, groups, metadata, offsets, produce, producer_id, streams,
};
use crate::protocol::{
    api_versions_body, decode_body, decode_header, encode_response, encode_response_chunks,
    peek_header, supported_range, unsupported_api_versions_response, Chunk, ProtocolError,
    MIN_DECODABLE_PRODUCE_VERSION,
};
use crate::request_limits::{Elements, MAX_REQUEST_ELEMENTS};
use crate::state::{BrokerState, ConnInfo};

/// Socket read buffer per connection: small, so that idle connections cost little; request
/// bodies larger than it are read straight into their own buffer.
const READ_BUFFER_BYTES: usize = 8 * 1024;
/// A request body's buffer starts at most this large and grows with the bytes that arrive, so
/// a peer that announces a large frame and sends nothing holds no more than this.
const FRAME_INITIAL_BYTES: usize = 64 * 1024;
/// Every request body must arrive within this much time, plus `FRAME_MIN_RATE_BYTES_PER_S`
/// of its size: a half-sent frame is not held forever.
const FRAME_READ_BASE_MS: u64 = 30_000;
const FRAME_MIN_RATE_BYTES_PER_S: u64 = 1024 * 1024;
/// Requests read but not yet answered, per connection (librdkafka keeps at most 5 produce
/// requests in flight with idempotence; Kafka itself handles one at a time).
const MAX_IN_FLIGHT: usize = 16;

/// An encoded response as chunks written back to back (`None`: no response, acks=0).
type Encoded = Result<Option<Vec<Chunk>>, ProtocolError>;

/// What handling a request gives: the encoded response (`None`: no response, acks=0) now, or a
/// future that yields it once the request's batches are durable.
pub enum Reply {
    Now(Encoded),
    Later(Pin<Box<dyn Future<Output = Encoded> + Send + 'static>>),
}

/// Handles one request frame (without its size prefix) to completion.
pub async fn dispatch(state: &Arc<BrokerState>, conn: &ConnInfo, frame: Bytes) -> Encoded {
    match start(state, conn, frame).await {
        Reply::Now(r) => r,
        Reply::Later(f) => f.await,
    }
}

/// Handles one request frame up to the point where only waiting for durability is left.
pub async fn start(state: &Arc<BrokerState>, conn: &ConnInfo, frame: Bytes) -> Reply {
    match handle(state, conn, frame).await {
        Ok(r) => r,
        Err(e) => Reply::Now(Err(e)),
    }
}

async fn handle(
    state: &Arc<BrokerState>,
    conn: &ConnInfo,
    mut frame: Bytes,
) -> Result<Reply, ProtocolError> {
    let listener = &conn.listener;
    let raw = peek_header(&frame).ok_or(ProtocolError::ShortFrame(frame.len()))?;
    let (v, corr) = (raw.api_version, raw.correlation_id);
    if raw.api_key == ApiKey::ApiVersions as i16 {
        if let Some((min, max)) = supported_range(ApiKey::ApiVersions) {
            if v < min || v > max {
                return Ok(Reply::Now(
                    unsupported_api_versions_response(corr).map(|b| Some(vec![Chunk::Bytes(b)])),
                ));
            }
        }
    }
    let key =
        ApiKey::try_from(raw.api_key).map_err(|_| ProtocolError::UnknownApiKey(raw.api_key))?;
    let unsupported = ProtocolError::UnsupportedVersion { key, version: v };
    let Some((min, max)) = supported_range(key) else {
        return Err(unsupported);
    };
    if v < min || v > max || (key == ApiKey::Produce && v < MIN_DECODABLE_PRODUCE_VERSION) {
        return Err(unsupported);
    }
    let header = decode_header(&mut frame, key, v)?;
    let caller = Caller {
        client_id: header.client_id.as_deref().unwrap_or(""),
        client_host: &conn.peer_host,
    };
    macro_rules! body {
        ($t:ty) => {{
            let req = decode_body::<$t>(&mut frame, key, v)?;
            let elements = Elements::elements(&req);
            if elements > MAX_REQUEST_ELEMENTS {
                return Err(ProtocolError::Malformed {
                    key,
                    version: v,
                    reason: format!(
                        "the request names {elements} elements (topics, partitions, groups...), more than the {MAX_REQUEST_ELEMENTS} allowed"
                    ),
                });
            }
            req
        }};
    }
    macro_rules! reply {
        ($resp:expr) => {
            Ok(Reply::Now(
                encode_response(key, v, corr, &$resp).map(|b| Some(vec![Chunk::Bytes(b)])),
            ))
        };
    }
    // Topic admin touches the file system (directories, files, fsyncs): it runs on a blocking
    // thread, so the runtime keeps serving every other connection meanwhile. This connection
    // waits for it, so its later requests see the change (Kafka answers a connection's
    // requests one at a time, in order).
    macro_rules! off_request_path {
        ($handler:path, $t:ty $(, $arg:expr)*) => {{
            let req = body!($t);
            let state = Arc::clone(state);
            match tokio::task::spawn_blocking(move || $handler(&state, req $(, $arg)*)).await {
                Ok(resp) => reply!(resp),
                Err(e) => Err(ProtocolError::Internal {
                    key,
                    version: v,
                    reason: e.to_string(),
                }),
            }
        }};
    }
    match key {
        ApiKey::ApiVersions => {
            let _req = body!(ApiVersionsRequest);
            reply!(api_versions_body(0, false))
        }
        ApiKey::Metadata => reply!(metadata::handle(state, listener, body!(MetadataRequest), v)),
        ApiKey::Produce => {
            let appended = produce::append(state, body!(ProduceRequest), v);
            if !appended.needs_response() {
                return Ok(Reply::Now(Ok(None)));
            }
            Ok(Reply::Later(Box::pin(async move {
                match appended.finish().await {
                    Some(resp) => {
                        encode_response(key, v, corr, &resp).map(|b| Some(vec![Chunk::Bytes(b)]))
                    }
                    None => Ok(None),
                }
            })))
        }
        ApiKey::Fetch => {
            let f = fetch::handle(state, body!(FetchRequest), v).await;
            // The record batches go to the socket from their files or read buffers, uncopied.
            Ok(Reply::Now(
                encode_response_chunks(key, v, corr, &f.resp, &f.shared).map(Some),
            ))
        }
        ApiKey::ListOffsets => reply!(offsets::list_offsets(state, body!(ListOffsetsRequest), v)),
        ApiKey::OffsetForLeaderEpoch => reply!(offsets::offset_for_leader_epoch(
            state,
            body!(OffsetForLeaderEpochRequest)
        )),
        ApiKey::DeleteRecords => {
            off_request_path!(offsets::delete_records, DeleteRecordsRequest)
        }
        ApiKey::CreateTopics => off_request_path!(admin::create_topics, CreateTopicsRequest, v),
        ApiKey::DeleteTopics => off_request_path!(admin::delete_topics, DeleteTopicsRequest, v),
        ApiKey::CreatePartitions => {
            off_request_path!(admin::create_partitions, CreatePartitionsRequest)
        }
        ApiKey::DescribeConfigs => {
            reply!(configs::describe(state, body!(DescribeConfigsRequest), v))
        }
        ApiKey::AlterConfigs => off_request_path!(configs::alter, AlterConfigsRequest),
        ApiKey::IncrementalAlterConfigs => {
            off_request_path!(configs::incremental_alter, IncrementalAlterConfigsRequest)
        }
        ApiKey::DescribeCluster => reply!(metadata::describe_cluster(
            state,
            listener,
            body!(DescribeClusterRequest),
            v
        )),
        ApiKey::FindCoordinator => reply!(metadata::find_coordinator(
            state,
            listener,
            body!(FindCoordinatorRequest),
            v
        )),
        ApiKey::JoinGroup => reply!(groups::join(state, &caller, body!(JoinGroupRequest), v).await),
        ApiKey::SyncGroup => reply!(groups::sync(state, body!(SyncGroupRequest), v).await),
        ApiKey::Heartbeat => reply!(groups::heartbeat(state, body!(HeartbeatRequest)).await),
        ApiKey::LeaveGroup => reply!(groups::leave(state, body!(LeaveGroupRequest), v).await),
        ApiKey::OffsetCommit => {
            reply!(groups::offset_commit(state, body!(OffsetCommitRequest)).await)
        }
        ApiKey::OffsetFetch => {
            reply!(groups::offset_fetch(state, body!(OffsetFetchRequest), v).await)
        }
        ApiKey::ListGroups => reply!(groups::list_groups(state, body!(ListGroupsRequest), v).await),
        ApiKey::DescribeGroups => {
            reply!(groups::describe_groups(state, body!(DescribeGroupsRequest), v).await)
        }
        ApiKey::DeleteGroups => {
            reply!(groups::delete_groups(state, body!(DeleteGroupsRequest)).await)
        }
        ApiKey::OffsetDelete => {
            reply!(groups::offset_delete(state, body!(OffsetDeleteRequest)).await)
        }
        ApiKey::ConsumerGroupHeartbeat => reply!(
            groups::consumer_heartbeat(state, &caller, body!(ConsumerGroupHeartbeatRequest)).await
        ),
        ApiKey::ConsumerGroupDescribe => {
            reply!(groups::consumer_describe(state, body!(ConsumerGroupDescribeRequest)).await)
        }
        ApiKey::StreamsGroupHeartbeat => {
            reply!(streams::heartbeat(state, &caller, body!(StreamsGroupHeartbeatRequest)).await)
        }
        ApiKey::StreamsGroupDescribe => {
            reply!(streams::describe(state, body!(StreamsGroupDescribeRequest)).await)
        }
        ApiKey::InitProducerId => {
            reply!(
                producer_id::handle(
                    &state.producer_ids,
                    &state.log_limit,
                    body!(InitProducerIdRequest)
                )
                .await
            )
        }
        ApiKey::DescribeTopicPartitions => {
            let req = body!(DescribeTopicPartitionsRequest);
            let names: Vec<_> = req.topics.iter().map(|t| t.name.clone()).collect();
            match metadata::describe_topic_partitions(state, req) {
                Ok(resp) => reply!(resp),
                Err(msg) => {
                    tracing::debug!(%msg, "DescribeTopicPartitions refused");
                    reply!(metadata::describe_topic_partitions_error(names))
                }
            }
        }
        ApiKey::DescribeLogDirs => {
            reply!(cluster::describe_log_dirs(
                state,
                body!(DescribeLogDirsRequest)
            ))
        }
        ApiKey::AlterReplicaLogDirs => {
            reply!(cluster::alter_replica_log_dirs(
                state,
                body!(AlterReplicaLogDirsRequest)
            ))
        }
        ApiKey::ElectLeaders => {
            reply!(cluster::elect_leaders(state, body!(ElectLeadersRequest), v))
        }
        ApiKey::ListPartitionReassignments => reply!(cluster::list_partition_reassignments(
            state,
            body!(ListPartitionReassignmentsRequest)
        )),
        ApiKey::AlterPartitionReassignments => reply!(cluster::alter_partition_reassignments(
            state,
            body!(AlterPartitionReassignmentsRequest)
        )),
        ApiKey::DescribeQuorum => {
            reply!(cluster::describe_quorum(
                state,
                body!(DescribeQuorumRequest)
            ))
        }
        ApiKey::DescribeProducers => {
            reply!(cluster::describe_producers(
                state,
                body!(DescribeProducersRequest)
            ))
        }
        ApiKey::ListConfigResources => reply!(
            cluster::list_config_resources(state, body!(ListConfigResourcesRequest), v).await
        ),
        _ => Err(unsupported),
    }
}

/// Decrements the open-connections gauge when the connection ends, however it ends.
struct ConnectionGauge<'a>(&'a prometheus::IntGauge);

impl Drop for ConnectionGauge<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// A request in flight: its reply and what the metrics need.
struct InFlight {
    reply: Reply,
    api_key: i16,
    started: Instant,
    /// Its share of `queued.max.request.bytes`, returned once it is answered.
    _memory: tokio::sync::OwnedSemaphorePermit,
}

/// Serves one connection until the peer closes it, it sends something unparseable, or the
/// broker shuts down (after answering the requests in hand).
pub async fn serve(
    state: Arc<BrokerState>,
    listener: Arc<crate::state::ListenerInfo>,
    stream: TcpStream,
    shutdown: watch::Receiver<bool>,
) {
    let peer_addr = stream.peer_addr().ok();
    let peer = peer_addr.map(|a| a.to_string()).unwrap_or_default();
    let conn = ConnInfo {
        listener: (*listener).clone(),
        peer_host: peer_addr.map(|a| a.ip().to_string()).unwrap_or_default(),
    };
    let _ = stream.set_nodelay(true);
    state.metrics.connections_accepted.inc();
    state.metrics.connections_active.inc();
    let _open = ConnectionGauge(&state.metrics.connections_active);
    let (rd, mut wr) = stream.into_split();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<InFlight>(MAX_IN_FLIGHT);
    // Reader and writer run in this one task (no thread hand-off between them).
    let reader = read_requests(&state, &conn, &peer, rd, tx, shutdown);
    let writer = async {
        while let Some(f) = rx.recv().await {
            let result = match f.reply {
                Reply::Now(r) => r,
                Reply::Later(fut) => fut.await,
            };
            state
                .metrics
                .observe_request(f.api_key, f.started.elapsed().as_secs_f64());
            match result {
                Ok(Some(chunks)) => {
                    if let Err(e) = write_chunks(&mut wr, chunks).await {
                        tracing::debug!(%peer, error = %e, "closing connection");
                        return;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    crate::warn_limited!(state.log_limit, "bad request", %peer, error = %e, "closing connection");
                    return;
                }
            }
        }
    };
    tokio::pin!(reader, writer);
    tokio::select! {
        // The reader is done (peer closed, bad frame, shutdown): answer what it queued, then close.
        _ = &mut reader => writer.await,
        // The writer failed or hit an unparseable request: close at once.
        _ = &mut writer => {}
    }
}

/// Writes a response's chunks in order: bytes with `write_all`, file ranges with `sendfile`
/// from the page cache. A file shorter than its range (cannot happen: segments only shrink at
/// recovery, before any connection) is an error, and the caller closes the connection, since
/// the frame's length is already sent.
async fn write_chunks(
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    chunks: Vec<Chunk>,
) -> std::io::Result<()> {
    for c in chunks {
        match c {
            Chunk::Bytes(b) => wr.write_all(&b).await?,
            Chunk::File(r) => {
                let (mut position, end) = (r.position, r.position + r.len_bytes);
                while position < end {
                    let sock: &TcpStream = wr.as_ref();
                    sock.writable().await?;
                    let left = usize::try_from(end - position).unwrap_or(usize::MAX);
                    let sent = sock.try_io(tokio::io::Interest::WRITABLE, || {
                        rustix::fs::sendfile(sock, r.file.as_ref(), Some(&mut position), left)
                            .map_err(std::io::Error::from)
                    });
                    match sent {
                        Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
    }
    Ok(())
}

/// Reads frames and starts each request, queueing its reply for the writer. Returns (dropping
/// `tx`) when the peer closes, a frame is out of bounds, or the broker shuts down.
async fn read_requests(
    state: &Arc<BrokerState>,
    conn: &ConnInfo,
    peer: &str,
    rd: tokio::net::tcp::OwnedReadHalf,
    tx: tokio::sync::mpsc::Sender<InFlight>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut rd = BufReader::with_capacity(READ_BUFFER_BYTES, rd);
    let max = state.config.max_request_bytes;
    let idle = std::time::Duration::from_millis(state.config.connections_max_idle_ms);
    loop {
        let size = tokio::select! {
            r = tokio::time::timeout(idle, rd.read_i32()) => match r {
                Ok(Ok(n)) => n,
                Ok(Err(_)) => return,
                Err(_) => {
                    tracing::debug!(%peer, "closing connection idle for connections.max.idle.ms");
                    return;
                }
            },
            _ = shutdown.wait_for(|s| *s) => return,
        };
        if size < 0 || size as usize > max {
            crate::warn_limited!(state.log_limit, "frame size", %peer, size, max, "closing connection: frame size outside [0, socket.request.max.bytes]");
            return;
        }
        let size = size as usize;
        // The broker's budget for request bytes in hand (queued.max.request.bytes): charged as
        // the buffer grows with bytes that arrived, so a peer that only announces large frames
        // holds little of it; past it, this socket is not read until answers free some.
        let budget = state
            .config
            .queued_max_request_bytes
            .min(tokio::sync::Semaphore::MAX_PERMITS);
        let charge = |n: usize| {
            let sem = state.request_memory.clone();
            async move { sem.acquire_many_owned(n.clamp(1, budget) as u32).await }
        };
        let first = size.min(FRAME_INITIAL_BYTES);
        let mut memory = tokio::select! {
            p = charge(first) => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = shutdown.wait_for(|s| *s) => return,
        };
        // Grown with the bytes received (into uninitialised capacity: no zeroing), never
        // reserved whole for what a peer merely announces.
        let mut buf = BytesMut::with_capacity(first);
        let fill = async {
            while buf.len() < size {
                if buf.capacity() == buf.len() {
                    let more = buf.len().max(FRAME_INITIAL_BYTES).min(size - buf.len());
                    memory.merge(charge(more).await.map_err(std::io::Error::other)?);
                    buf.reserve(more);
                }
                let left = (size - buf.len()) as u64;
                if (&mut rd).take(left).read_buf(&mut buf).await? == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
            }
            Ok::<(), std::io::Error>(())
        };
        // Bounded by the idle limit too, so that a test (or a tight deployment) sees it soon.
        let deadline = std::time::Duration::from_millis(
            FRAME_READ_BASE_MS.min(state.config.connections_max_idle_ms)
                + size as u64 * 1000 / FRAME_MIN_RATE_BYTES_PER_S,
        );
        let read = tokio::select! {
            r = tokio::time::timeout(deadline, fill) => r,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        match read {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return,
            Err(_) => {
                crate::warn_limited!(state.log_limit, "frame deadline", %peer, size, "closing connection: a request frame did not arrive in time");
                return;
            }
        }
        let started = Instant::now();
        let api_key = match buf.get(..2) {
            Some(k) => i16::from_be_bytes([k[0], k[1]]),
            None => -1,
        };
        let reply = start(state, conn, buf.freeze()).await;
        let failed = matches!(reply, Reply::Now(Err(_)));
        let queued = tx
            .send(InFlight {
                reply,
                api_key,
                started,
                _memory: memory,
            })
            .await;
        if failed || queued.is_err() {
            return;
        }
    }
}
