//! Transactions in the log: Kafka's control records (the COMMIT / ABORT end-transaction markers a
//! transaction coordinator writes to every partition of a transaction) and the aborted-transaction
//! index of a segment (Kafka's `.txnindex`). Pure apart from the index file's read and write.
//!
//! A control batch (`ControlRecordType`, `EndTransactionMarker` in Kafka's clients) has the
//! transactional and control attribute bits, the producer's id and epoch, base sequence -1 and
//! one uncompressed record: key = version (i16 0) + type (i16: 0 abort, 1 commit), value =
//! version (i16 0) + coordinator epoch (i32).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::batch::{self, BatchHeader, ATTR_CONTROL, ATTR_TRANSACTIONAL, BATCH_HEADER_BYTES};

/// The two end-transaction marker types (Kafka's `ControlRecordType` ABORT = 0, COMMIT = 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlType {
    Abort,
    Commit,
}

impl ControlType {
    fn code(self) -> i16 {
        match self {
            ControlType::Abort => 0,
            ControlType::Commit => 1,
        }
    }
}

/// An end-transaction marker as read from a control batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub kind: ControlType,
    pub coordinator_epoch: i32,
}

fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// Builds a control batch holding one end-transaction marker, base offset 0 (the log assigns
/// it), timestamp `now_ms`.
pub fn control_batch(
    producer_id: i64,
    producer_epoch: i16,
    marker: Marker,
    now_ms: i64,
) -> Vec<u8> {
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&marker.kind.code().to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&marker.coordinator_epoch.to_be_bytes());
    let mut rec = vec![0u8]; // attributes
    put_varint(&mut rec, 0); // timestamp delta
    put_varint(&mut rec, 0); // offset delta
    put_varint(&mut rec, key.len() as i64);
    rec.extend_from_slice(&key);
    put_varint(&mut rec, value.len() as i64);
    rec.extend_from_slice(&value);
    put_varint(&mut rec, 0); // headers
    let mut records = Vec::with_capacity(rec.len() + 2);
    put_varint(&mut records, rec.len() as i64);
    records.extend_from_slice(&rec);

    let mut b = Vec::with_capacity(BATCH_HEADER_BYTES + records.len());
    b.extend_from_slice(&0i64.to_be_bytes()); // base offset
    let len = (BATCH_HEADER_BYTES - batch::LOG_OVERHEAD_BYTES + records.len()) as i32;
    b.extend_from_slice(&len.to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // partition leader epoch
    b.push(2); // magic
    b.extend_from_slice(&0u32.to_be_bytes()); // crc, set below
    b.extend_from_slice(&(ATTR_TRANSACTIONAL | ATTR_CONTROL).to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
    b.extend_from_slice(&now_ms.to_be_bytes());
    b.extend_from_slice(&now_ms.to_be_bytes());
    b.extend_from_slice(&producer_id.to_be_bytes());
    b.extend_from_slice(&producer_epoch.to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    b.extend_from_slice(&1i32.to_be_bytes()); // records count
    b.extend_from_slice(&records);
    let crc = batch::compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    debug_assert!(batch::validate(&b).is_ok_and(|h| h.is_control()));
    b
}

/// The marker of a whole control batch `batch` (header `h`); `None` when it holds no
/// end-transaction marker Kafka defines (unknown control types are skipped, as Kafka does).
pub fn parse_marker(batch: &[u8], h: &BatchHeader) -> Option<Marker> {
    if !h.is_control() || batch.len() < h.size_bytes() || h.compression() != 0 {
        return None;
    }
    let raw = &batch[BATCH_HEADER_BYTES..h.size_bytes()];
    let records = crate::records::parse_records(raw, h.records_count).ok()?;
    let r = records.first()?;
    let key = r.key?;
    if key.len() < 4 {
        return None;
    }
    let kind = match i16::from_be_bytes([key[2], key[3]]) {
        0 => ControlType::Abort,
        1 => ControlType::Commit,
        _ => return None,
    };
    let coordinator_epoch = match r.value {
        Some(v) if v.len() >= 6 => i32::from_be_bytes([v[2], v[3], v[4], v[5]]),
        _ => 0,
    };
    Some(Marker {
        kind,
        coordinator_epoch,
    })
}

/// One aborted transaction of a partition (Kafka's `AbortedTxn`): its data lies in
/// `[first_offset, last_offset]` (the last being the ABORT marker's offset) and belongs to
/// `producer_id`; `last_stable_offset` is the partition's LSO right after the abort, used to
/// stop a search early (every transaction with data below it had ended by then).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
    pub last_stable_offset: i64,
}

/// Kafka's on-disk entry: version (i16 0), producer id, first offset, last offset, LSO.
const ENTRY_BYTES: usize = 2 + 8 * 4;
/// Vltava appends a trailer (magic + CRC-32C of the entries) so that a torn or empty file left
/// by a crash is told apart from a segment without aborts.
const TRAILER_MAGIC: u32 = 0x5458_4e31; // "TXN1"
const TRAILER_BYTES: usize = 8;

pub const TXN_INDEX_SUFFIX: &str = ".txnindex";

pub fn txn_index_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(crate::segment::segment_file_name(
        base_offset,
        TXN_INDEX_SUFFIX,
    ))
}

pub fn encode_index(entries: &[AbortedTxn]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * ENTRY_BYTES + TRAILER_BYTES);
    for e in entries {
        out.extend_from_slice(&0i16.to_be_bytes());
        out.extend_from_slice(&e.producer_id.to_be_bytes());
        out.extend_from_slice(&e.first_offset.to_be_bytes());
        out.extend_from_slice(&e.last_offset.to_be_bytes());
        out.extend_from_slice(&e.last_stable_offset.to_be_bytes());
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&TRAILER_MAGIC.to_be_bytes());
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// Decodes an index file; `None` when torn, corrupt or inconsistent (the caller rebuilds it).
pub fn decode_index(bytes: &[u8]) -> Option<Vec<AbortedTxn>> {
    let body_len = bytes.len().checked_sub(TRAILER_BYTES)?;
    if body_len % ENTRY_BYTES != 0 {
        return None;
    }
    let (body, trailer) = bytes.split_at(body_len);
    let magic = u32::from_be_bytes(trailer[0..4].try_into().ok()?);
    let crc = u32::from_be_bytes(trailer[4..8].try_into().ok()?);
    if magic != TRAILER_MAGIC || crc != crc32c::crc32c(body) {
        return None;
    }
    let i64_at = |c: &[u8], at: usize| -> Option<i64> {
        Some(i64::from_be_bytes(c.get(at..at + 8)?.try_into().ok()?))
    };
    let mut out = Vec::with_capacity(body.len() / ENTRY_BYTES);
    for c in body.chunks_exact(ENTRY_BYTES) {
        let e = AbortedTxn {
            producer_id: i64_at(c, 2)?,
            first_offset: i64_at(c, 10)?,
            last_offset: i64_at(c, 18)?,
            last_stable_offset: i64_at(c, 26)?,
        };
        // Invariant: an aborted range is non-empty and entries come in marker order.
        if e.first_offset > e.last_offset
            || out
                .last()
                .is_some_and(|p: &AbortedTxn| p.last_offset >= e.last_offset)
        {
            return None;
        }
        out.push(e);
    }
    Some(out)
}

/// Reads a segment's index; `None` if missing or invalid.
pub fn read_index(dir: &Path, base_offset: i64) -> Option<Vec<AbortedTxn>> {
    decode_index(&fs::read(txn_index_path(dir, base_offset)).ok()?)
}

/// Writes a segment's index (not synced) and returns the open file, for the fsync that makes it
/// durable with the segment.
pub fn write_index(dir: &Path, base_offset: i64, entries: &[AbortedTxn]) -> io::Result<File> {
    let path = txn_index_path(dir, base_offset);
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    f.write_all(&encode_index(entries))?;
    Ok(f)
}

/// The aborted transactions of `entries` (one segment's, in marker order) that overlap
/// `[from, upto)`, appended to `out`. Returns true when the search may stop: an entry's LSO
/// reached `upto`, so no later entry has data below `upto` (Kafka's `TxnIndexSearchResult`).
pub fn collect_overlapping(
    entries: &[AbortedTxn],
    from: i64,
    upto: i64,
    out: &mut Vec<AbortedTxn>,
) -> bool {
    let start = entries.partition_point(|e| e.last_offset < from);
    for e in &entries[start..] {
        if e.first_offset < upto {
            out.push(*e);
        }
        if e.last_stable_offset >= upto {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_batch_round_trip() {
        let m = Marker {
            kind: ControlType::Commit,
            coordinator_epoch: 7,
        };
        let b = control_batch(42, 3, m, 1_000);
        let h = batch::validate(&b).expect("valid");
        assert!(h.is_control() && h.is_transactional());
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (42, 3, -1)
        );
        assert_eq!(parse_marker(&b, &h), Some(m));
        let a = control_batch(
            1,
            0,
            Marker {
                kind: ControlType::Abort,
                coordinator_epoch: 0,
            },
            5,
        );
        let ha = batch::validate(&a).expect("valid");
        assert_eq!(
            parse_marker(&a, &ha).map(|m| m.kind),
            Some(ControlType::Abort)
        );
    }

    fn e(pid: i64, first: i64, last: i64, lso: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: lso,
        }
    }

    #[test]
    fn index_round_trip_and_torn_files() {
        let entries = vec![e(1, 0, 5, 6), e(2, 3, 9, 10)];
        let bytes = encode_index(&entries);
        assert_eq!(decode_index(&bytes), Some(entries));
        assert_eq!(decode_index(&encode_index(&[])), Some(vec![]));
        assert_eq!(
            decode_index(&[]),
            None,
            "an empty file is not an empty index"
        );
        assert_eq!(decode_index(&bytes[..bytes.len() - 1]), None);
        let mut flipped = bytes.clone();
        flipped[5] ^= 1;
        assert_eq!(decode_index(&flipped), None);
    }

    #[test]
    fn overlapping_search_stops_at_the_lso() {
        let entries = vec![
            e(1, 0, 2, 3),
            e(2, 4, 8, 5),
            e(3, 5, 12, 20),
            e(4, 21, 22, 23),
        ];
        let mut out = Vec::new();
        assert!(collect_overlapping(&entries, 3, 15, &mut out));
        assert_eq!(out, vec![entries[1], entries[2]]);
        out.clear();
        assert!(!collect_overlapping(&entries, 23, 30, &mut out));
        assert!(out.is_empty());
    }
}
