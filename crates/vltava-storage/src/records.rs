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

/// One record inside a decompressed records section, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRecord<'a> {
    /// The whole record, its length prefix included: copied verbatim when a batch is rebuilt.
    pub bytes: &'a [u8],
    pub offset_delta: i32,
    pub timestamp_delta: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

fn varlong(buf: &[u8], pos: &mut usize) -> Result<i64, String> {
    let mut raw: u64 = 0;
    for shift in (0..70).step_by(7) {
        let b = *buf
            .get(*pos)
            .ok_or_else(|| "record truncated inside a varint".to_string())?;
        *pos += 1;
        if shift == 63 && b > 1 {
            return Err("varint longer than 64 bits".into());
        }
        raw |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            return Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64));
        }
    }
    Err("varint longer than 64 bits".into())
}

fn varint(buf: &[u8], pos: &mut usize) -> Result<i32, String> {
    let v = varlong(buf, pos)?;
    i32::try_from(v).map_err(|_| format!("varint {v} out of 32-bit range"))
}

/// A length-prefixed byte field (-1 = null).
fn bytes_field<'a>(buf: &'a [u8], pos: &mut usize) -> Result<Option<&'a [u8]>, String> {
    let len = varint(buf, pos)?;
    if len < 0 {
        return Ok(None);
    }
    let end = pos
        .checked_add(len as usize)
        .filter(|&e| e <= buf.len())
        .ok_or_else(|| format!("field of {len} bytes runs past the record"))?;
    let field = &buf[*pos..end];
    *pos = end;
    Ok(Some(field))
}

/// Visits the `count` records of a decompressed records section (v2 record format), checking
/// what Kafka's `LogValidator` checks of each: every field inside the record's declared length
/// and filling it exactly, header keys present, and nothing after the last record. `visit` gets
/// each record with its index and may refuse it. Nothing is allocated.
pub fn for_each_record<'a>(
    raw: &'a [u8],
    count: i32,
    mut visit: impl FnMut(i32, RawRecord<'a>) -> Result<(), String>,
) -> Result<(), String> {
    let mut pos = 0usize;
    for i in 0..count.max(0) {
        let start = pos;
        let len = varint(raw, &mut pos)?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| pos.checked_add(l))
            .filter(|&e| e <= raw.len())
            .ok_or_else(|| format!("record {i}: length {len} runs past the batch"))?;
        let body = &raw[..end];
        if pos >= end {
            return Err(format!("record {i}: empty"));
        }
        pos += 1; // attributes
        let timestamp_delta = varlong(body, &mut pos)?;
        let offset_delta = varint(body, &mut pos)?;
        let key = bytes_field(body, &mut pos)?;
        let value = bytes_field(body, &mut pos)?;
        let headers = varint(body, &mut pos)?;
        if headers < 0 {
            return Err(format!("record {i}: negative header count {headers}"));
        }
        for _ in 0..headers {
            if bytes_field(body, &mut pos)?.is_none() {
                return Err(format!("record {i}: a header with a null key"));
            }
            bytes_field(body, &mut pos)?;
        }
        if pos != end {
            return Err(format!(
                "record {i} declares {len} bytes but its fields take {}",
                len as i64 + (pos as i64 - end as i64)
            ));
        }
        visit(
            i,
            RawRecord {
                bytes: &raw[start..end],
                offset_delta,
                timestamp_delta,
                key,
                value,
            },
        )?;
    }
    if pos != raw.len() {
        return Err(format!(
            "{} bytes follow the batch's {count} records",
            raw.len() - pos
        ));
    }
    Ok(())
}

/// Parses the `count` records of a decompressed records section (see [`for_each_record`]).
pub fn parse_records(raw: &[u8], count: i32) -> Result<Vec<RawRecord<'_>>, String> {
    let mut out = Vec::with_capacity((count.max(0) as usize).min(raw.len()));
    for_each_record(raw, count, |_, r| {
        out.push(r);
        Ok(())
    })?;
    Ok(out)
}

/// Checks every record of one whole batch (already validated by `batch::validate`), the
/// compressed ones decompressed within `limit_bytes`: a batch whose CRC is right but whose
/// records cannot be read would otherwise get an offset and stop every consumer of the
/// partition at it. A producer's inner offset deltas are consecutive from 0 (as Kafka requires).
pub fn validate_batch_records(
    batch: &[u8],
    h: &BatchHeader,
    limit_bytes: usize,
) -> Result<(), String> {
    let body = batch
        .get(crate::batch::BATCH_HEADER_BYTES..h.size_bytes())
        .unwrap_or_default();
    let consecutive = |i: i32, r: RawRecord<'_>| {
        if r.offset_delta == i {
            Ok(())
        } else {
            Err(format!(
                "record {i}: offset delta {}, inner offsets must be consecutive",
                r.offset_delta
            ))
        }
    };
    if h.compression() == crate::codec::CODEC_NONE {
        return for_each_record(body, h.records_count, consecutive);
    }
    let raw = crate::codec::decompress(h.compression(), body, limit_bytes)
        .map_err(|e| format!("the batch's records cannot be decompressed: {e}"))?;
    for_each_record(&raw, h.records_count, consecutive)
}

/// The decompressed records section of one whole batch.
pub fn batch_records(
    batch: &[u8],
    h: &BatchHeader,
    limit_bytes: usize,
) -> Result<Vec<u8>, crate::codec::CodecError> {
    let body = batch
        .get(crate::batch::BATCH_HEADER_BYTES..h.size_bytes())
        .unwrap_or_default();
    crate::codec::decompress(h.compression(), body, limit_bytes)
}

/// A copy of `batch` holding only the records `kept` (verbatim, so their offset and timestamp
/// deltas still refer to the unchanged base offset and base timestamp), recompressed with the
/// batch's codec, with its count, length and CRC updated. The last offset delta is kept, as Kafka
/// keeps it, so the batch still ends where it did.
pub fn rebuild_batch(
    batch: &[u8],
    h: &BatchHeader,
    kept: &[&[u8]],
) -> Result<Vec<u8>, crate::codec::CodecError> {
    let raw: Vec<u8> = kept.concat();
    let body = crate::codec::compress(h.compression(), &raw)?;
    let mut out = Vec::with_capacity(crate::batch::BATCH_HEADER_BYTES + body.len());
    out.extend_from_slice(&batch[..crate::batch::BATCH_HEADER_BYTES]);
    out.extend_from_slice(&body);
    crate::batch::set_records_count(&mut out, kept.len() as i32);
    Ok(out)
}

/// `batch` (whose decompressed records section is `raw`) written again with `codec` at `level`:
/// the broker-side `compression.type` of a topic, as Kafka's `LogValidator` recompresses. The
/// header (offsets, timestamps, producer id, epoch and sequence) is kept; the codec bits, the
/// length and the CRC are new.
pub fn recompress_batch(
    batch: &[u8],
    raw: &[u8],
    count: i32,
    codec: i16,
    level: Option<i32>,
) -> Result<Vec<u8>, crate::codec::CodecError> {
    let body = crate::codec::compress_at(codec, raw, level)?;
    let mut out = Vec::with_capacity(crate::batch::BATCH_HEADER_BYTES + body.len());
    out.extend_from_slice(&batch[..crate::batch::BATCH_HEADER_BYTES]);
    out.extend_from_slice(&body);
    crate::batch::set_compression(&mut out, codec);
    crate::batch::set_records_count(&mut out, count);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{self, tests::make_keyed_batch, BatchHeader};
    use crate::codec::*;

    #[test]
    fn recompress_batch_keeps_the_records_and_header_with_a_new_codec_and_crc() {
        let records: Vec<batch::tests::KeyValue> = vec![
            (Some(b"a"), Some(b"one")),
            (None, Some(b"two")),
            (Some(b"c"), None),
        ];
        let original = make_keyed_batch(&records, 1000, Some((7, 1, 5)));
        let h = BatchHeader::parse(&original).unwrap();
        let raw = batch_records(&original, &h, 1 << 20).unwrap();
        for (codec, level) in [
            (CODEC_GZIP, Some(1)),
            (CODEC_GZIP, None),
            (CODEC_SNAPPY, None),
            (CODEC_LZ4, Some(9)),
            (CODEC_ZSTD, Some(19)),
            (CODEC_NONE, None),
        ] {
            let out = recompress_batch(&original, &raw, h.records_count, codec, level).unwrap();
            let nh = batch::validate(&out).expect("valid CRC and length");
            assert_eq!(nh.compression(), codec);
            assert_eq!(
                (
                    nh.producer_id,
                    nh.producer_epoch,
                    nh.base_sequence,
                    nh.records_count
                ),
                (
                    h.producer_id,
                    h.producer_epoch,
                    h.base_sequence,
                    h.records_count
                )
            );
            assert_eq!(
                (nh.base_timestamp, nh.max_timestamp),
                (h.base_timestamp, h.max_timestamp)
            );
            assert_eq!(batch_records(&out, &nh, 1 << 20).unwrap(), raw);
        }
    }
}
