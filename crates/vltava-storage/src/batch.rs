//! The Kafka record batch (magic v2) header: parsing, validation and the few fields the broker
//! rewrites on append. Layout (DefaultRecordBatch.java):
//!
//! ```text
//! baseOffset:int64 batchLength:int32 partitionLeaderEpoch:int32 magic:int8 crc:uint32
//! attributes:int16 lastOffsetDelta:int32 baseTimestamp:int64 maxTimestamp:int64
//! producerId:int64 producerEpoch:int16 baseSequence:int32 recordsCount:int32 records...
//! ```
//! The CRC (CRC-32C) covers everything from `attributes` to the end of the batch, so the broker can
//! rewrite `baseOffset` and `partitionLeaderEpoch` without recomputing it.

/// Bytes before `batchLength`'s payload starts: baseOffset + batchLength.
pub const LOG_OVERHEAD_BYTES: usize = 12;
/// Size of a v2 batch header including the log overhead.
pub const BATCH_HEADER_BYTES: usize = 61;

const PARTITION_LEADER_EPOCH_AT: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const LAST_OFFSET_DELTA_AT: usize = 23;
const BASE_TIMESTAMP_AT: usize = 27;
const MAX_TIMESTAMP_AT: usize = 35;
const PRODUCER_ID_AT: usize = 43;
const PRODUCER_EPOCH_AT: usize = 51;
const BASE_SEQUENCE_AT: usize = 53;
const RECORDS_COUNT_AT: usize = 57;

pub const ATTR_COMPRESSION_MASK: i16 = 0x07;
pub const ATTR_LOG_APPEND_TIME: i16 = 0x08;
pub const ATTR_TRANSACTIONAL: i16 = 0x10;
pub const ATTR_CONTROL: i16 = 0x20;

/// Why a batch was refused. The broker maps `Corrupt` to CORRUPT_MESSAGE and `Invalid` to
/// INVALID_RECORD, as Kafka's LogValidator does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("corrupt record batch: {0}")]
    Corrupt(String),
    #[error("invalid record batch: {0}")]
    Invalid(String),
}

/// The parsed fixed-size header of one record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// Bytes after the `batchLength` field.
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

impl BatchHeader {
    /// Parses the header at the start of `buf`. Needs [`BATCH_HEADER_BYTES`]; checks nothing
    /// beyond the length field being plausible.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        if buf.len() < BATCH_HEADER_BYTES {
            return Err(BatchError::Corrupt(format!(
                "{} bytes is shorter than a batch header",
                buf.len()
            )));
        }
        let h = BatchHeader {
            base_offset: be_i64(buf, 0),
            batch_length: be_i32(buf, 8),
            partition_leader_epoch: be_i32(buf, PARTITION_LEADER_EPOCH_AT),
            magic: buf[MAGIC_AT] as i8,
            crc: u32::from_be_bytes([
                buf[CRC_AT],
                buf[CRC_AT + 1],
                buf[CRC_AT + 2],
                buf[CRC_AT + 3],
            ]),
            attributes: be_i16(buf, ATTRIBUTES_AT),
            last_offset_delta: be_i32(buf, LAST_OFFSET_DELTA_AT),
            base_timestamp: be_i64(buf, BASE_TIMESTAMP_AT),
            max_timestamp: be_i64(buf, MAX_TIMESTAMP_AT),
            producer_id: be_i64(buf, PRODUCER_ID_AT),
            producer_epoch: be_i16(buf, PRODUCER_EPOCH_AT),
            base_sequence: be_i32(buf, BASE_SEQUENCE_AT),
            records_count: be_i32(buf, RECORDS_COUNT_AT),
        };
        if (h.batch_length as i64) < (BATCH_HEADER_BYTES - LOG_OVERHEAD_BYTES) as i64 {
            return Err(BatchError::Corrupt(format!(
                "batch length {} is below the minimum",
                h.batch_length
            )));
        }
        Ok(h)
    }

    /// The whole batch on disk / on the wire, log overhead included.
    pub fn size_bytes(&self) -> usize {
        LOG_OVERHEAD_BYTES + self.batch_length as usize
    }
    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }
    pub fn compression(&self) -> i16 {
        self.attributes & ATTR_COMPRESSION_MASK
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }
    /// Sequence of the last record, wrapping at i32::MAX as Kafka's DefaultRecordBatch does.
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence < 0 {
            return -1;
        }
        let last = self.base_sequence as i64 + self.last_offset_delta as i64;
        if last > i32::MAX as i64 {
            (last - i32::MAX as i64 - 1) as i32
        } else {
            last as i32
        }
    }
}

/// CRC-32C over the checksummed part of a complete batch.
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[ATTRIBUTES_AT..])
}

/// Validates one complete batch as a client sent it: exact length, magic 2, CRC, codec, and the
/// record count agreeing with the offset delta. Returns the parsed header.
pub fn validate(batch: &[u8]) -> Result<BatchHeader, BatchError> {
    let h = BatchHeader::parse(batch)?;
    if h.size_bytes() != batch.len() {
        return Err(BatchError::Corrupt(format!(
            "batch length field says {} bytes but {} were sent",
            h.size_bytes(),
            batch.len()
        )));
    }
    if h.magic != 2 {
        return Err(BatchError::Invalid(format!(
            "record batch magic {} is not supported (only v2)",
            h.magic
        )));
    }
    let crc = compute_crc(batch);
    if crc != h.crc {
        return Err(BatchError::Corrupt(format!(
            "CRC mismatch: stored {:#010x}, computed {:#010x}",
            h.crc, crc
        )));
    }
    if h.compression() > 4 {
        return Err(BatchError::Invalid(format!(
            "unknown compression codec {}",
            h.compression()
        )));
    }
    if h.records_count <= 0 || h.last_offset_delta != h.records_count - 1 {
        return Err(BatchError::Invalid(format!(
            "records count {} does not match last offset delta {}",
            h.records_count, h.last_offset_delta
        )));
    }
    Ok(h)
}

/// Validates a batch read back from disk: header, length within `available` bytes, CRC.
/// Returns `None` for a torn or corrupt batch.
pub fn check_stored(buf: &[u8]) -> Option<BatchHeader> {
    let h = BatchHeader::parse(buf).ok()?;
    if h.magic != 2 || h.size_bytes() > buf.len() {
        return None;
    }
    if compute_crc(&buf[..h.size_bytes()]) != h.crc {
        return None;
    }
    Some(h)
}

pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
}

pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[PARTITION_LEADER_EPOCH_AT..PARTITION_LEADER_EPOCH_AT + 4]
        .copy_from_slice(&epoch.to_be_bytes());
}

/// Marks the batch as LogAppendTime with `now_ms` as its max timestamp and recomputes the CRC,
/// as Kafka's `DefaultRecordBatch.setMaxTimestamp(LOG_APPEND_TIME, now)`.
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    let (header, body) = batch.split_at_mut(BATCH_HEADER_BYTES);
    set_log_append_time_split(header, body, now_ms);
}

/// [`set_log_append_time`] for a batch held in two parts: its header (the first
/// [`BATCH_HEADER_BYTES`], rewritten here) and the records after it.
pub fn set_log_append_time_split(header: &mut [u8], records: &[u8], now_ms: i64) {
    let attrs = be_i16(header, ATTRIBUTES_AT) | ATTR_LOG_APPEND_TIME;
    header[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attrs.to_be_bytes());
    header[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&header[ATTRIBUTES_AT..]), records);
    header[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Sets the record count and the batch length (from the buffer's size) of a rebuilt batch and
/// recomputes its CRC.
/// Sets the codec bits of the attributes; the CRC is left for [`set_records_count`] to redo.
pub fn set_compression(batch: &mut [u8], codec: i16) {
    let attrs =
        (be_i16(batch, ATTRIBUTES_AT) & !ATTR_COMPRESSION_MASK) | (codec & ATTR_COMPRESSION_MASK);
    batch[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attrs.to_be_bytes());
}

pub fn set_records_count(batch: &mut [u8], count: i32) {
    batch[RECORDS_COUNT_AT..RECORDS_COUNT_AT + 4].copy_from_slice(&count.to_be_bytes());
    let length = (batch.len() - LOG_OVERHEAD_BYTES) as i32;
    batch[8..12].copy_from_slice(&length.to_be_bytes());
    let crc = compute_crc(batch);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Walks complete batches in a buffer holding consecutive batches. Stops at the first incomplete
/// or unparsable header; `consumed()` then tells how many bytes were whole batches.
pub struct BatchWalker<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> BatchWalker<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        BatchWalker { buf, pos: 0 }
    }
    pub fn consumed(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for BatchWalker<'a> {
    /// (position in the buffer, header)
    type Item = (usize, BatchHeader);
    fn next(&mut self) -> Option<Self::Item> {
        let rest = &self.buf[self.pos..];
        let h = BatchHeader::parse(rest).ok()?;
        if h.size_bytes() > rest.len() {
            return None;
        }
        let at = self.pos;
        self.pos += h.size_bytes();
        Some((at, h))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A record's key and value (None = null).
    pub type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

    /// Builds a valid uncompressed v2 batch of `count` records with the given values.
    pub fn make_batch(count: i32, base_ts: i64, producer: Option<(i64, i16, i32)>) -> Vec<u8> {
        let values: Vec<String> = (0..count).map(|i| format!("v{i}")).collect();
        let records: Vec<KeyValue> = values.iter().map(|v| (None, Some(v.as_bytes()))).collect();
        make_keyed_batch(&records, base_ts, producer)
    }

    /// Builds a valid uncompressed v2 batch of (key, value) records; record i has timestamp
    /// `base_ts + i`.
    pub fn make_keyed_batch(
        records: &[KeyValue],
        base_ts: i64,
        producer: Option<(i64, i16, i32)>,
    ) -> Vec<u8> {
        let count = records.len() as i32;
        let mut raw = Vec::new();
        for (i, (k, v)) in records.iter().enumerate() {
            let mut r = Vec::new();
            r.push(0u8); // attributes
            put_varint(&mut r, i as i64); // timestamp delta
            put_varint(&mut r, i as i64); // offset delta
            for field in [k, v] {
                match field {
                    Some(f) => {
                        put_varint(&mut r, f.len() as i64);
                        r.extend_from_slice(f);
                    }
                    None => put_varint(&mut r, -1),
                }
            }
            put_varint(&mut r, 0); // headers
            put_varint(&mut raw, r.len() as i64);
            raw.extend_from_slice(&r);
        }
        let (pid, epoch, seq) = producer.unwrap_or((-1, -1, -1));
        let mut b = Vec::new();
        b.extend_from_slice(&0i64.to_be_bytes());
        let len = (BATCH_HEADER_BYTES - LOG_OVERHEAD_BYTES + raw.len()) as i32;
        b.extend_from_slice(&len.to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes());
        b.push(2);
        b.extend_from_slice(&0u32.to_be_bytes());
        b.extend_from_slice(&0i16.to_be_bytes());
        b.extend_from_slice(&(count - 1).to_be_bytes());
        b.extend_from_slice(&base_ts.to_be_bytes());
        b.extend_from_slice(&(base_ts + count as i64 - 1).to_be_bytes());
        b.extend_from_slice(&pid.to_be_bytes());
        b.extend_from_slice(&epoch.to_be_bytes());
        b.extend_from_slice(&seq.to_be_bytes());
        b.extend_from_slice(&count.to_be_bytes());
        b.extend_from_slice(&raw);
        let crc = compute_crc(&b);
        b[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        b
    }

    fn put_varint(out: &mut Vec<u8>, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        loop {
            if z < 0x80 {
                out.push(z as u8);
                return;
            }
            out.push((z as u8 & 0x7f) | 0x80);
            z >>= 7;
        }
    }

    #[test]
    fn valid_batch_passes_and_bad_crc_is_corrupt() {
        let mut b = make_batch(3, 1000, None);
        let h = validate(&b).expect("valid");
        assert_eq!(h.records_count, 3);
        assert_eq!(h.last_offset_delta, 2);
        let last = b.len() - 1;
        b[last] ^= 0xff;
        assert!(matches!(validate(&b), Err(BatchError::Corrupt(_))));
    }

    #[test]
    fn length_mismatch_is_corrupt() {
        let mut b = make_batch(1, 0, None);
        b.push(0);
        assert!(matches!(validate(&b), Err(BatchError::Corrupt(_))));
        assert!(matches!(validate(&b[..20]), Err(BatchError::Corrupt(_))));
    }

    #[test]
    fn rewriting_offset_keeps_crc_and_log_append_time_recomputes_it() {
        let mut b = make_batch(2, 5, None);
        set_base_offset(&mut b, 42);
        set_partition_leader_epoch(&mut b, 0);
        let h = validate(&b).expect("still valid");
        assert_eq!(h.base_offset, 42);
        set_log_append_time(&mut b, 99);
        let h = validate(&b).expect("crc recomputed");
        assert_eq!(h.max_timestamp, 99);
        assert!(h.attributes & ATTR_LOG_APPEND_TIME != 0);
    }

    #[test]
    fn walker_stops_at_torn_tail() {
        let a = make_batch(1, 0, None);
        let mut buf = a.clone();
        buf.extend_from_slice(&a);
        buf.extend_from_slice(&a[..30]);
        let mut w = BatchWalker::new(&buf);
        assert_eq!(w.by_ref().count(), 2);
        assert_eq!(w.consumed(), a.len() * 2);
    }

    #[test]
    fn last_sequence_wraps() {
        let mut h = BatchHeader::parse(&make_batch(3, 0, Some((1, 0, i32::MAX - 1)))).unwrap();
        assert_eq!(h.last_sequence(), 0);
        h.base_sequence = 5;
        assert_eq!(h.last_sequence(), 7);
    }
}
