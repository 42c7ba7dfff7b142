//! Produce: validate each partition's batch, append it, queue the partition for group commit,
//! and (for acks=1/all) answer once the batch is fsynced. Partitions fail independently.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use vltava_storage::batch::{BatchError, BatchHeader};
use vltava_storage::producer_state::ProducerError;
use vltava_storage::AppendError;

use super::{code, now_ms, s};
use crate::record_check::{self, RecordProblem};
use crate::state::BrokerState;
use crate::topics::{Partition, Topic};

/// The longest a produce waits for its fsync before answering REQUEST_TIMED_OUT.
const MAX_PRODUCE_WAIT_MS: u64 = 300_000;

struct Pending {
    topic_idx: usize,
    part_idx: usize,
    partition: Arc<Partition>,
    last_offset: i64,
}

fn error_response(index: i32, err: E, msg: Option<String>) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(code(err))
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
        .with_error_message(msg.map(|m| s(&m)))
}

/// Appends one partition's records. Returns the response and, on success, what to wait for.
fn append_one(
    state: &BrokerState,
    topic: &Topic,
    index: i32,
    records: Option<Bytes>,
    acks: i16,
) -> (PartitionProduceResponse, Option<(Arc<Partition>, i64)>) {
    let Some(partition) = topic.partition(index) else {
        return (
            error_response(index, E::UnknownTopicOrPartition, None),
            None,
        );
    };
    let records = records.unwrap_or_default();
    if crate::handlers::metadata::is_internal(&topic.name) {
        // The coordinators write their internal topics; clients may not (Kafka's
        // ReplicaManager: internalTopicsAllowed is false for client requests).
        let msg = format!("Cannot append to internal topic {}", topic.name);
        return (
            error_response(index, E::InvalidTopicException, Some(msg)),
            None,
        );
    }
    if let Some(resp) = offline_response(state, index) {
        count_error(state, topic, resp.error_code);
        return (resp, None);
    }
    if acks == -1 && topic.config.min_insync_replicas() > 1 {
        let msg = format!(
            "min.insync.replicas is {} but a single node has 1 in-sync replica",
            topic.config.min_insync_replicas()
        );
        return (error_response(index, E::NotEnoughReplicas, Some(msg)), None);
    }
    // Exactly one batch per partition, as Kafka requires for Produce v3+.
    if let Ok(h) = BatchHeader::parse(&records) {
        if h.size_bytes() < records.len() {
            let msg = "Produce requests must contain exactly one record batch per partition";
            return (
                error_response(index, E::InvalidRecord, Some(msg.into())),
                None,
            );
        }
        if h.is_transactional() {
            let msg = "transactional produce is not supported by this broker yet";
            return (
                error_response(index, E::InvalidRecord, Some(msg.into())),
                None,
            );
        }
    }
    // A batch that fails validation here is refused by the append below with the right error.
    let mut records = records;
    if let Ok(h) = vltava_storage::batch::validate(&records) {
        match record_check::check_produce(
            &state.topics,
            &state.schema_ids,
            topic,
            &records,
            &h,
            now_ms(),
        ) {
            Ok(None) => {}
            Ok(Some(recompressed)) => records = Bytes::from(recompressed),
            Err(problem) => {
                let resp = match problem {
                    RecordProblem::Corrupt(m) => error_response(index, E::CorruptMessage, Some(m)),
                    RecordProblem::Invalid {
                        errors,
                        invalid_timestamp,
                    } => {
                        let err = if invalid_timestamp {
                            E::InvalidTimestamp
                        } else {
                            E::InvalidRecord
                        };
                        let msg = record_check::record_errors_message(&errors, invalid_timestamp);
                        let record_errors = errors
                            .into_iter()
                            .map(|e| {
                                BatchIndexAndErrorMessage::default()
                                    .with_batch_index(e.batch_index)
                                    .with_batch_index_error_message(Some(s(&e.message)))
                            })
                            .collect();
                        error_response(index, err, Some(msg)).with_record_errors(record_errors)
                    }
                };
                count_error(state, topic, resp.error_code);
                return (resp, None);
            }
        }
    }
    let cfg = topic.config.log_config();
    let result = partition.log().append(&records, &cfg, now_ms());
    match result {
        Ok(out) => {
            if !out.duplicate {
                state.syncer.request(partition);
                let m = &state.metrics;
                m.bytes_in
                    .with_label_values(&[topic.name.as_str()])
                    .inc_by(records.len() as u64);
                m.records_in
                    .with_label_values(&[topic.name.as_str()])
                    .inc_by((out.last_offset - out.base_offset + 1).max(0) as u64);
            }
            let log_start = partition.log().log_start_offset();
            let resp = PartitionProduceResponse::default()
                .with_index(index)
                .with_base_offset(out.base_offset)
                .with_log_append_time_ms(out.log_append_time_ms)
                .with_log_start_offset(log_start);
            (resp, Some((partition.clone(), out.last_offset)))
        }
        Err(e) => {
            let msg = Some(e.to_string());
            let err = match &e {
                AppendError::Batch(BatchError::Corrupt(_)) => E::CorruptMessage,
                AppendError::Batch(BatchError::Invalid(_)) => E::InvalidRecord,
                AppendError::TooLarge { .. } => E::MessageTooLarge,
                AppendError::Producer(ProducerError::InvalidProducerEpoch { .. }) => {
                    E::InvalidProducerEpoch
                }
                AppendError::Producer(ProducerError::OutOfOrderSequence { .. }) => {
                    E::OutOfOrderSequenceNumber
                }
                AppendError::Producer(ProducerError::TransactionalWriteExpected { .. }) => {
                    E::InvalidTxnState
                }
                AppendError::Producer(ProducerError::CoordinatorFenced { .. }) => {
                    E::TransactionCoordinatorFenced
                }
                AppendError::Deleted => E::UnknownTopicOrPartition,
                AppendError::Io(io) => {
                    let what = format!("append to partition {}-{index}", topic.name);
                    state.health.fail(&what, io);
                    E::KafkaStorageError
                }
            };
            tracing::debug!(topic = %topic.name, partition = index, error = %e, "produce refused");
            count_error(state, topic, code(err));
            (error_response(index, err, msg), None)
        }
    }
}

/// KAFKA_STORAGE_ERROR once the data directory is offline (see `vltava_storage::durable`).
fn offline_response(state: &BrokerState, index: i32) -> Option<PartitionProduceResponse> {
    state.health.is_offline().then(|| {
        let msg = state.health.offline_error().to_string();
        error_response(index, E::KafkaStorageError, Some(msg))
    })
}

fn count_error(state: &BrokerState, topic: &Topic, error_code: i16) {
    let name =
        E::try_from_code(error_code).map_or_else(|| error_code.to_string(), |e| format!("{e:?}"));
    state
        .metrics
        .produce_errors
        .with_label_values(&[topic.name.as_str(), &name])
        .inc();
}

/// A produce whose batches are appended (in request order, before the next request on the
/// connection is read) and whose answer waits for their fsync.
pub struct Appended {
    health: vltava_storage::durable::StorageHealth,
    acks: i16,
    timeout_ms: i32,
    responses: Vec<TopicProduceResponse>,
    pending: Vec<Pending>,
}

/// Validates and appends every partition's batch now. The connection reads its next request while
/// [`Appended::finish`] waits for durability, so a producer's pipelined requests share fsyncs.
pub fn append(state: &BrokerState, req: ProduceRequest, version: i16) -> Appended {
    let acks = req.acks;
    let valid_acks = matches!(acks, -1..=1);
    let mut responses = Vec::with_capacity(req.topic_data.len());
    let mut pending = Vec::new();
    for (ti, td) in req.topic_data.into_iter().enumerate() {
        let topic = if version >= 13 {
            state.topics.get_by_id(td.topic_id)
        } else {
            state.topics.get(td.name.0.as_str())
        };
        let unknown = if version >= 13 {
            E::UnknownTopicId
        } else {
            E::UnknownTopicOrPartition
        };
        let mut parts = Vec::with_capacity(td.partition_data.len());
        for pd in td.partition_data {
            let r = match (&topic, valid_acks) {
                (_, false) => error_response(pd.index, E::InvalidRequiredAcks, None),
                (None, _) => error_response(pd.index, unknown, None),
                (Some(t), true) => {
                    let (r, wait) = append_one(state, t, pd.index, pd.records, acks);
                    if let Some((partition, last_offset)) = wait {
                        pending.push(Pending {
                            topic_idx: ti,
                            part_idx: parts.len(),
                            partition,
                            last_offset,
                        });
                    }
                    r
                }
            };
            parts.push(r);
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(td.name)
                .with_topic_id(td.topic_id)
                .with_partition_responses(parts),
        );
    }
    Appended {
        health: state.health.clone(),
        acks,
        timeout_ms: req.timeout_ms,
        responses,
        pending,
    }
}

impl Appended {
    /// `None` for acks=0 (no response is sent).
    pub fn needs_response(&self) -> bool {
        self.acks != 0
    }

    /// Waits (at most the request's timeout) until every appended batch is fsynced.
    pub async fn finish(self) -> Option<ProduceResponse> {
        let Appended {
            health,
            acks,
            timeout_ms,
            mut responses,
            pending,
        } = self;
        if acks == 0 {
            return None;
        }
        let wait_ms = (timeout_ms.max(0) as u64).min(MAX_PRODUCE_WAIT_MS);
        let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
        for p in pending {
            let mut rx = p.partition.subscribe_hw();
            let durable = tokio::time::timeout_at(deadline, rx.wait_for(|hw| *hw > p.last_offset));
            let r = &mut responses[p.topic_idx].partition_responses[p.part_idx];
            tokio::select! {
                biased;
                done = durable => if !matches!(done, Ok(Ok(_))) {
                    *r = error_response(
                        r.index,
                        E::RequestTimedOut,
                        Some("the batch was not fsynced within the request timeout".into()),
                    );
                },
                // The batch may never become durable: it is not acknowledged.
                _ = health.offline() => {
                    let msg = health.offline_error().to_string();
                    *r = error_response(r.index, E::KafkaStorageError, Some(msg));
                }
            }
        }
        Some(ProduceResponse::default().with_responses(responses))
    }
}

pub async fn handle(
    state: &BrokerState,
    req: ProduceRequest,
    version: i16,
) -> Option<ProduceResponse> {
    append(state, req, version).finish().await
}
