//! ListOffsets, OffsetForLeaderEpoch and DeleteRecords: questions about a partition's offsets.

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    DeleteRecordsRequest, DeleteRecordsResponse, ListOffsetsRequest, ListOffsetsResponse,
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
};
use vltava_storage::ReadError;

use super::{code, LEADER_EPOCH};
use crate::state::BrokerState;
use crate::topics::Partition;
use std::sync::Arc;

pub const LATEST_TIMESTAMP: i64 = -1;
pub const EARLIEST_TIMESTAMP: i64 = -2;
pub const MAX_TIMESTAMP: i64 = -3;
pub const EARLIEST_LOCAL_TIMESTAMP: i64 = -4;
pub const LATEST_TIERED_TIMESTAMP: i64 = -5;

fn find(state: &BrokerState, topic: &str, p: i32) -> Option<Arc<Partition>> {
    state.topics.get(topic)?.partition(p).cloned()
}

pub fn list_offsets(
    state: &BrokerState,
    req: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    // read_committed (isolation level 1, v2+): the latest offset is the last stable offset.
    let read_committed = req.isolation_level == 1;
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let parts = t
                .partitions
                .iter()
                .map(|lp| {
                    let base = ListOffsetsPartitionResponse::default()
                        .with_partition_index(lp.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1);
                    let Some(p) = find(state, t.name.0.as_str(), lp.partition_index) else {
                        return base.with_error_code(code(E::UnknownTopicOrPartition));
                    };
                    let found = {
                        let log = p.log();
                        match lp.timestamp {
                            LATEST_TIMESTAMP if read_committed => {
                                Ok(Some((log.last_stable_offset(), -1)))
                            }
                            LATEST_TIMESTAMP => Ok(Some((log.high_watermark(), -1))),
                            EARLIEST_TIMESTAMP | EARLIEST_LOCAL_TIMESTAMP => {
                                Ok(Some((log.log_start_offset(), -1)))
                            }
                            MAX_TIMESTAMP => log.max_timestamp_offset(),
                            LATEST_TIERED_TIMESTAMP => Ok(None),
                            ts if ts < 0 => Ok(None),
                            ts => log.offset_for_timestamp(ts),
                        }
                    };
                    match found {
                        Ok(Some((offset, ts))) => {
                            let r = base.with_offset(offset).with_timestamp(ts);
                            if version >= 4 {
                                r.with_leader_epoch(LEADER_EPOCH)
                            } else {
                                r
                            }
                        }
                        Ok(None) => base,
                        Err(e) => {
                            tracing::error!(error = %e, "list offsets failed");
                            base.with_error_code(code(E::KafkaStorageError))
                        }
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(parts)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

pub fn offset_for_leader_epoch(
    state: &BrokerState,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let parts = t
                .partitions
                .iter()
                .map(|op| {
                    let base = EpochEndOffset::default()
                        .with_partition(op.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    let Some(p) = find(state, t.topic.0.as_str(), op.partition) else {
                        return base.with_error_code(code(E::UnknownTopicOrPartition));
                    };
                    if op.current_leader_epoch > LEADER_EPOCH {
                        return base.with_error_code(code(E::UnknownLeaderEpoch));
                    }
                    if op.leader_epoch == LEADER_EPOCH {
                        base.with_leader_epoch(LEADER_EPOCH)
                            .with_end_offset(p.log().log_end_offset())
                    } else {
                        // An epoch this node never had: Kafka answers UNDEFINED (-1, -1).
                        base
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(parts)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

pub fn delete_records(state: &BrokerState, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let parts = t
                .partitions
                .iter()
                .map(|dp| {
                    let base = DeleteRecordsPartitionResult::default()
                        .with_partition_index(dp.partition_index)
                        .with_low_watermark(-1);
                    let Some(p) = find(state, t.name.0.as_str(), dp.partition_index) else {
                        return base.with_error_code(code(E::UnknownTopicOrPartition));
                    };
                    let result = p.log().delete_records_before(dp.offset);
                    match result {
                        Ok(low) => {
                            state.syncer.request(&p);
                            base.with_low_watermark(low)
                        }
                        Err(ReadError::OffsetOutOfRange { .. }) => {
                            base.with_error_code(code(E::OffsetOutOfRange))
                        }
                        Err(ReadError::Io(e)) => {
                            tracing::error!(error = %e, "delete records failed");
                            base.with_error_code(code(E::KafkaStorageError))
                        }
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(parts)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}
