//! Record-level reads of one stored batch, for the rare lookups that need individual records
//! (ListOffsets by timestamp). Decompression and record parsing are the `kafka-protocol`
//! crate's; the hot paths never come here.

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;

use crate::batch::{BatchHeader, ATTR_LOG_APPEND_TIME};

/// The first record of `raw` (one whole stored batch with header `h`) at or after `offset_floor`
/// whose timestamp is at least `ts`, as (offset, timestamp).
pub fn first_at_or_after(
    h: &BatchHeader,
    mut raw: Bytes,
    ts: i64,
    offset_floor: i64,
) -> Option<(i64, i64)> {
    if h.attributes & ATTR_LOG_APPEND_TIME != 0 {
        // Every record of a LogAppendTime batch carries the batch's max timestamp.
        return (h.max_timestamp >= ts && h.last_offset() >= offset_floor)
            .then(|| (h.base_offset.max(offset_floor), h.max_timestamp));
    }
    match RecordBatchDecoder::decode(&mut raw) {
        Ok(set) => set
            .records
            .iter()
            .find(|r| r.offset >= offset_floor && r.timestamp >= ts)
            .map(|r| (r.offset, r.timestamp)),
        Err(e) => {
            tracing::warn!(base_offset = h.base_offset, error = %e, "cannot decode stored batch");
            None
        }
    }
}
