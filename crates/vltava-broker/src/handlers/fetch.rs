//! Fetch: serve stored batches below the high watermark (below the last stable offset, with the
//! aborted transactions of the range, for read_committed), long-polling until `min_bytes` are
//! available or `max_wait_ms` passes. Sessionless: a session id of 0 in the answer tells clients
//! that use fetch sessions (KIP-227) to send full requests.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::fetch_request::FetchTopic;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProducerId};
use vltava_storage::segment::CorruptBatch;
use vltava_storage::{ReadData, ReadError, ReadPlan};

use super::code;
use crate::protocol::{Chunk, Shared};
use crate::state::BrokerState;
use crate::topics::Topic;

/// The most record bytes one fetch response carries, whatever the client asks (Kafka's broker
/// `fetch.max.bytes`, 55 MiB): bounds the memory of a read-buffered response. The first batch
/// is returned whole even beyond it (KIP-74); batches are at most `max.message.bytes`.
const FETCH_MAX_BYTES: usize = 55 * 1024 * 1024;

/// The longest a fetch may long-poll, whatever the client asks.
const MAX_FETCH_WAIT_MS: u64 = 60_000;

fn partition_error(index: i32, err: E) -> PartitionData {
    PartitionData::default()
        .with_partition_index(index)
        .with_error_code(code(err))
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
}

/// Record batches at least this long go from the segment file to the socket (`sendfile`)
/// instead of through a read buffer; shorter ones are read (one `pread` beats a header read per
/// batch plus the send).
const SEND_FROM_FILE_MIN_BYTES: u64 = 64 * 1024;

/// A fetch response and what goes to the socket in place of its record fields.
pub struct FetchReply {
    pub resp: FetchResponse,
    /// Each partition's records, in response order: the body holds their stand-ins.
    pub shared: Vec<Shared>,
    /// Bytes and records sent, per topic (for the metrics).
    sent: Vec<(String, u64, u64)>,
}

/// One pass over the requested partitions. Returns the reply, the bytes it carries and whether
/// a partition failed.
fn build(state: &BrokerState, req: &FetchRequest, version: i16) -> (FetchReply, usize, bool) {
    let mut total = 0usize;
    let mut any_error = false;
    let max_bytes = if req.max_bytes <= 0 {
        FETCH_MAX_BYTES
    } else {
        (req.max_bytes as usize).min(FETCH_MAX_BYTES)
    };
    let read_committed = req.isolation_level == 1;
    let mut topics = Vec::with_capacity(req.topics.len());
    let mut shared = Vec::new();
    let mut sent = Vec::new();
    for ft in &req.topics {
        let topic = fetched_topic(state, ft, version);
        let (mut topic_bytes, mut topic_records) = (0u64, 0u64);
        let mut parts = Vec::with_capacity(ft.partitions.len());
        for fp in &ft.partitions {
            let Some(partition) = topic.as_ref().and_then(|t| t.partition(fp.partition)) else {
                any_error = true;
                let err = if version >= 13 && topic.is_none() {
                    E::UnknownTopicId
                } else {
                    E::UnknownTopicOrPartition
                };
                parts.push(partition_error(fp.partition, err));
                continue;
            };
            if state.health.is_offline() {
                any_error = true;
                parts.push(partition_error(fp.partition, E::KafkaStorageError));
                continue;
            }
            // `total` may pass `max_bytes`: the first batch is returned whole (KIP-74).
            let budget =
                (fp.partition_max_bytes.max(0) as usize).min(max_bytes.saturating_sub(total));
            // read_committed reads stop at the last stable offset and list the aborted
            // transactions in the range (the consumer skips their batches).
            let planned = {
                let log = partition.log();
                let (plan, aborted) = if read_committed {
                    match log.read_committed(fp.fetch_offset, budget as u64, total == 0) {
                        Ok((plan, aborted)) => (Ok(plan), aborted),
                        Err(e) => (Err(e), Vec::new()),
                    }
                } else {
                    (
                        log.read(fp.fetch_offset, budget as u64, total == 0),
                        Vec::new(),
                    )
                };
                let lso = log.last_stable_offset();
                (
                    plan,
                    log.high_watermark(),
                    lso,
                    log.log_start_offset(),
                    aborted,
                )
            };
            let (plan, hw, lso, log_start, aborted) = planned;
            let data = match plan.map(|p: ReadPlan| resolve(&p)) {
                Ok(Ok(data)) => data,
                Ok(Err(e)) | Err(ReadError::Io(e))
                    if e.get_ref().is_some_and(|inner| inner.is::<CorruptBatch>()) =>
                {
                    // A damaged sealed segment: that partition's read fails, the disk is fine.
                    any_error = true;
                    parts.push(partition_error(fp.partition, E::CorruptMessage));
                    continue;
                }
                Ok(Err(_)) | Err(ReadError::Io(_)) if partition.log().is_deleted() => {
                    // Deleted while this fetch ran: its files are going away.
                    any_error = true;
                    parts.push(partition_error(fp.partition, E::UnknownTopicOrPartition));
                    continue;
                }
                Ok(Err(e)) | Err(ReadError::Io(e)) => {
                    let what = format!("read of partition {}-{}", partition.topic, partition.index);
                    state.health.fail(&what, &e);
                    any_error = true;
                    parts.push(partition_error(fp.partition, E::KafkaStorageError));
                    continue;
                }
                Err(ReadError::OffsetOutOfRange { .. }) => {
                    any_error = true;
                    parts.push(
                        partition_error(fp.partition, E::OffsetOutOfRange)
                            .with_high_watermark(hw)
                            .with_last_stable_offset(lso)
                            .with_log_start_offset(log_start),
                    );
                    continue;
                }
            };
            let (records, count) = data;
            total += records.stand_in.len();
            topic_bytes += records.stand_in.len() as u64;
            topic_records += count;
            parts.push(
                PartitionData::default()
                    .with_partition_index(fp.partition)
                    .with_high_watermark(hw)
                    .with_last_stable_offset(lso)
                    .with_log_start_offset(log_start)
                    .with_aborted_transactions(read_committed.then(|| {
                        aborted
                            .iter()
                            .map(|a| {
                                AbortedTransaction::default()
                                    .with_producer_id(ProducerId(a.producer_id))
                                    .with_first_offset(a.first_offset)
                            })
                            .collect()
                    }))
                    .with_records(Some(records.stand_in.clone())),
            );
            shared.push(records);
        }
        if topic_bytes > 0 {
            if let Some(t) = &topic {
                sent.push((t.name.clone(), topic_bytes, topic_records));
            }
        }
        topics.push(
            FetchableTopicResponse::default()
                .with_topic(ft.topic.clone())
                .with_topic_id(ft.topic_id)
                .with_partitions(parts),
        );
    }
    let reply = FetchReply {
        resp: FetchResponse::default().with_responses(topics),
        shared,
        sent,
    };
    (reply, total, any_error)
}

/// Performs a read plan: a file range to send as is when it is long enough, else bytes.
/// Returns the records to send and how many records they hold.
fn resolve(plan: &ReadPlan) -> std::io::Result<(Shared, u64)> {
    if let ReadData::File(r) = plan.resolve(SEND_FROM_FILE_MIN_BYTES)? {
        let records = r.records;
        if let Some(shared) = Shared::file(r) {
            return Ok((shared, records));
        }
    }
    let bytes = plan.execute()?;
    let records = vltava_storage::batch::BatchWalker::new(&bytes)
        .map(|(_, h)| h.records_count.max(0) as u64)
        .sum();
    Ok((Shared::bytes(bytes), records))
}

/// Counts the bytes and records a fetch response carries, per topic.
fn count_out(state: &BrokerState, reply: &FetchReply) {
    let m = &state.metrics;
    let from_files: usize = reply
        .shared
        .iter()
        .filter(|s| matches!(s.chunk, Chunk::File(_)))
        .map(|s| s.chunk.len())
        .sum();
    m.fetch_file_bytes.inc_by(from_files as u64);
    for (name, bytes, records) in &reply.sent {
        m.bytes_out
            .with_label_values(&[name.as_str()])
            .inc_by(*bytes);
        m.records_out
            .with_label_values(&[name.as_str()])
            .inc_by(*records);
    }
}

pub async fn handle(state: &BrokerState, req: FetchRequest, version: i16) -> FetchReply {
    let reply = wait_and_build(state, &req, version).await;
    count_out(state, &reply);
    reply
}

/// The high-watermark channels of the partitions a fetch names that exist.
fn hw_watches(state: &BrokerState, req: &FetchRequest, version: i16) -> Vec<watch::Receiver<i64>> {
    let mut out = Vec::new();
    for ft in &req.topics {
        let Some(topic) = fetched_topic(state, ft, version) else {
            continue;
        };
        out.extend(
            ft.partitions
                .iter()
                .filter_map(|fp| topic.partition(fp.partition).map(|p| p.subscribe_hw())),
        );
    }
    out
}

/// The topic a fetch names: by id from version 13, by name before.
fn fetched_topic(state: &BrokerState, ft: &FetchTopic, version: i16) -> Option<Arc<Topic>> {
    if version >= 13 {
        state.topics.get_by_id(ft.topic_id)
    } else {
        state.topics.get(ft.topic.0.as_str())
    }
}

/// Resolves when any of `watches` has a value it has not seen: a fetch wakes only for the
/// partitions it reads, never for other partitions' fsyncs. A watch whose partition is gone
/// (its topic deleted) is dropped; with none left it stays pending (the deadline or shutdown
/// ends the wait).
async fn any_changed(watches: &mut Vec<watch::Receiver<i64>>) {
    while !watches.is_empty() {
        let changed = watches.iter_mut().map(|w| Box::pin(w.changed()));
        let gone = match futures::future::select_all(changed).await {
            (Ok(()), _, _) => return,
            (Err(_), gone, _) => gone,
        };
        watches.swap_remove(gone);
    }
    std::future::pending().await
}

async fn wait_and_build(state: &BrokerState, req: &FetchRequest, version: i16) -> FetchReply {
    let wait_ms = (req.max_wait_ms.max(0) as u64).min(MAX_FETCH_WAIT_MS);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
    let min_bytes = req.min_bytes.max(0) as usize;
    let mut stopping = state.stopping.subscribe();
    // Subscribed before the first pass, so that a high watermark published during a pass
    // wakes the wait after it.
    let mut watches = hw_watches(state, req, version);
    loop {
        for w in &mut watches {
            w.borrow_and_update();
        }
        let (resp, total, any_error) = build(state, req, version);
        if total >= min_bytes || any_error || req.topics.is_empty() || *stopping.borrow() {
            return resp;
        }
        tokio::select! {
            woken = tokio::time::timeout_at(deadline, any_changed(&mut watches)) => match woken {
                Ok(()) => continue,
                // Deadline: answer with what there is now.
                Err(_) => return build(state, req, version).0,
            },
            // Shutdown: answer now so that the connection can drain.
            _ = stopping.wait_for(|s| *s) => return build(state, req, version).0,
        }
    }
}
