//! Log compaction (Kafka's LogCleaner) for topics with `cleanup.policy=compact`.
//!
//! A partition's sealed, durable segments split at the *first dirty offset* (the cleaner's
//! checkpoint) into a clean head that already holds at most one record per key and a dirty tail
//! written since. Cleaning, when the dirty share of those bytes reaches min.cleanable.dirty.ratio:
//!
//! 1. [`crate::PartitionLog::plan_clean`] (under the log's lock) picks the segments: sealed,
//!    durable, and older than min.compaction.lag.ms.
//! 2. [`CleanPlan::run`] (without the lock; sealed segments never change) maps every key of the
//!    dirty segments to its latest offset, then copies each planned segment to `<base>.cleaned`
//!    keeping a record unless a newer record has the same key. A tombstone (null value) that is
//!    the latest for its key is kept until `delete.retention.ms` after its timestamp, so a
//!    consumer reading from the start has that long to see the delete. Kept records are copied
//!    verbatim into batches with the same base offset, base timestamp and last offset delta:
//!    offsets never change. Batches that cannot be decoded are kept whole.
//! 3. [`CleanResult::prepare`] (without the lock) scans each copy into a [`Segment`] and removes
//!    the index files of the segments to be replaced, fsyncing the directory.
//! 4. [`crate::PartitionLog::install_clean`] (under the lock) swaps the files in with renames and
//!    marks the directory dirty; the partition's next sync fsyncs it (without the lock).
//!
//! Transactions (Kafka's rules): only segments wholly below the last stable offset are cleaned,
//! so no open transaction is touched. Batches of aborted transactions are removed and never
//! count as the latest record of a key; control batches (COMMIT / ABORT markers) are always
//! kept, so a segment holding a marker is never emptied and its aborted-transaction index stays
//! as it was. (Kafka also drops a marker once its transaction's data is gone and
//! delete.retention.ms has passed; Vltava keeps it: a marker is one small batch.)
//!
//! Crash safety: a `.cleaned` file is complete and synced before it is renamed over its
//! segment; a crash before the rename leaves the old segment (the `.cleaned` file is removed at
//! start-up), after it the new one. Index files are removed, durably, before the rename and
//! rebuilt, so a stale index never describes a new file. The checkpoint is written last; a stale
//! one only means some data is cleaned again.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::batch::{BatchHeader, BATCH_HEADER_BYTES};
use crate::records::{batch_records, parse_records, rebuild_batch};
use crate::segment::{self, Segment};
use crate::txn::AbortedTxn;

/// Largest decompressed records section the cleaner will open; a larger batch is kept whole.
pub const MAX_RECORDS_BYTES: usize = 64 << 20;
/// Memory for the key → offset map of one cleaning (Kafka's log.cleaner.dedupe.buffer.size);
/// when the dirty segments hold more keys, a cleaning covers a prefix of them.
pub const MAX_OFFSET_MAP_BYTES: usize = 64 << 20;
/// Map overhead counted per key, beside the key's bytes.
const MAP_ENTRY_OVERHEAD_BYTES: usize = 48;

pub(crate) const CHECKPOINT_FILE: &str = "cleaner-checkpoint";
pub(crate) const CLEANED_SUFFIX: &str = ".cleaned";

/// What the cleaner remembers per partition (persisted as JSON in `cleaner-checkpoint`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CleanerCheckpoint {
    /// Everything below this offset has been cleaned.
    pub first_dirty_offset: i64,
    /// When the earliest tombstone kept by the last cleaning may be removed.
    pub tombstone_horizon_ms: Option<i64>,
}

impl CleanerCheckpoint {
    pub(crate) fn load(dir: &Path) -> CleanerCheckpoint {
        fs::read(dir.join(CHECKPOINT_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }
    pub(crate) fn store(&self, dir: &Path) -> io::Result<()> {
        let tmp = dir.join("cleaner-checkpoint.tmp");
        fs::write(&tmp, serde_json::to_vec(self).map_err(io::Error::other)?)?;
        fs::rename(tmp, dir.join(CHECKPOINT_FILE))
    }
}

/// One segment a cleaning reads.
#[derive(Debug, Clone)]
pub struct PlannedSegment {
    pub base_offset: i64,
    /// The segment's end: the next segment's base offset.
    pub end_offset: i64,
    pub file: crate::fd_cache::SegmentFile,
    pub size_bytes: u64,
    /// At or after the first dirty offset.
    pub dirty: bool,
}

/// A cleaning decided under the log's lock, run without it.
#[derive(Debug, Clone)]
pub struct CleanPlan {
    pub dir: PathBuf,
    pub segments: Vec<PlannedSegment>,
    pub first_dirty_offset: i64,
    pub delete_retention_ms: i64,
    pub now_ms: i64,
    pub max_map_bytes: usize,
    /// The partition's aborted transactions with data in the planned segments.
    pub aborted: Vec<AbortedTxn>,
}

/// Aborted ranges by producer id, to tell whether a batch belongs to an aborted transaction.
struct AbortedRanges(HashMap<i64, Vec<(i64, i64)>>);

impl AbortedRanges {
    fn new(entries: &[AbortedTxn]) -> Self {
        let mut m: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
        for e in entries {
            m.entry(e.producer_id)
                .or_default()
                .push((e.first_offset, e.last_offset));
        }
        AbortedRanges(m)
    }
    fn contains(&self, h: &BatchHeader) -> bool {
        h.is_transactional()
            && !h.is_control()
            && self.0.get(&h.producer_id).is_some_and(|ranges| {
                ranges
                    .iter()
                    .any(|&(first, last)| first <= h.base_offset && h.base_offset <= last)
            })
    }
}

#[derive(Debug)]
pub enum SegmentOutcome {
    Unchanged,
    /// Nothing of the segment is left.
    Emptied,
    /// The cleaned copy, complete and synced.
    Replaced(PathBuf),
}

#[derive(Debug)]
pub struct CleanedSegment {
    pub base_offset: i64,
    /// The file the plan read ([`SegmentFile::id`]); the segment is only replaced if it is
    /// still this one.
    pub source: u64,
    pub outcome: SegmentOutcome,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CleanStats {
    pub segments_rewritten: usize,
    pub segments_removed: usize,
    pub records_removed: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

#[derive(Debug)]
pub struct CleanResult {
    /// The partition directory.
    pub dir: PathBuf,
    pub segments: Vec<CleanedSegment>,
    /// The new checkpoint: everything below this offset is now clean.
    pub checkpoint: CleanerCheckpoint,
    pub stats: CleanStats,
}

/// A segment's swap, readied without the log's lock.
pub(crate) enum Swap {
    Unchanged,
    Emptied,
    /// The cleaned copy at `path`, already scanned: `segment` is it as it will be once renamed.
    Replaced {
        path: PathBuf,
        segment: Box<Segment>,
    },
}

pub(crate) struct PreparedSegment {
    pub base_offset: i64,
    pub source: u64,
    pub swap: Swap,
}

/// A cleaning ready to be swapped in by [`crate::PartitionLog::install_clean`].
pub struct PreparedClean {
    pub(crate) segments: Vec<PreparedSegment>,
    pub(crate) checkpoint: CleanerCheckpoint,
    pub(crate) stats: CleanStats,
}

impl CleanResult {
    /// Readies the swap without the log's lock: scans each cleaned copy (its indexes built in
    /// memory), then removes the index files of the segments it replaces or empties and makes
    /// that durable (one directory fsync), so that no stale index file can ever describe a new
    /// segment file. Those segments are sealed: only a start-up reads their index files, and it
    /// rebuilds missing ones by scanning.
    pub fn prepare(self) -> io::Result<PreparedClean> {
        let mut segments = Vec::with_capacity(self.segments.len());
        let mut any_swap = false;
        for seg in self.segments {
            let swap = match seg.outcome {
                SegmentOutcome::Unchanged => Swap::Unchanged,
                SegmentOutcome::Emptied => Swap::Emptied,
                SegmentOutcome::Replaced(path) => {
                    match Segment::open_replacement(&self.dir, seg.base_offset, &path) {
                        Ok(segment) => Swap::Replaced {
                            path,
                            segment: Box::new(segment),
                        },
                        Err(e) => {
                            let _ = fs::remove_file(&path);
                            return Err(e);
                        }
                    }
                }
            };
            if !matches!(swap, Swap::Unchanged) {
                segment::delete_index_files(&self.dir, seg.base_offset);
                any_swap = true;
            }
            segments.push(PreparedSegment {
                base_offset: seg.base_offset,
                source: seg.source,
                swap,
            });
        }
        if any_swap {
            File::open(&self.dir)?.sync_all()?;
        }
        Ok(PreparedClean {
            segments,
            checkpoint: self.checkpoint,
            stats: self.stats,
        })
    }
}

/// The batches of a sealed segment file, in order.
fn for_each_batch(
    file: &File,
    size_bytes: u64,
    mut f: impl FnMut(&BatchHeader, &[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let mut pos = 0u64;
    let mut header = [0u8; BATCH_HEADER_BYTES];
    let mut buf = Vec::new();
    while pos + BATCH_HEADER_BYTES as u64 <= size_bytes {
        file.read_exact_at(&mut header, pos)?;
        let Ok(h) = BatchHeader::parse(&header) else {
            break;
        };
        let len = h.size_bytes() as u64;
        if pos + len > size_bytes {
            break;
        }
        buf.resize(len as usize, 0);
        file.read_exact_at(&mut buf, pos)?;
        f(&h, &buf)?;
        pos += len;
    }
    Ok(())
}

impl CleanPlan {
    /// Builds the key map and writes the cleaned copies. Does not touch the live segments.
    pub fn run(&self) -> io::Result<CleanResult> {
        let mut map: HashMap<Vec<u8>, i64> = HashMap::new();
        let aborted = AbortedRanges::new(&self.aborted);
        let mut map_bytes = 0usize;
        let mut clean_until = self.first_dirty_offset;
        for seg in self.segments.iter().filter(|s| s.dirty) {
            if map_bytes >= self.max_map_bytes && clean_until > self.first_dirty_offset {
                break;
            }
            for_each_batch(seg.file.get()?.as_ref(), seg.size_bytes, |h, batch| {
                if h.is_control() || aborted.contains(h) {
                    return Ok(());
                }
                let Ok(raw) = batch_records(batch, h, MAX_RECORDS_BYTES) else {
                    return Ok(());
                };
                let Ok(records) = parse_records(&raw, h.records_count) else {
                    return Ok(());
                };
                for r in records {
                    if let Some(k) = r.key {
                        let offset = h.base_offset + r.offset_delta as i64;
                        match map.get_mut(k) {
                            Some(o) => *o = (*o).max(offset),
                            None => {
                                map_bytes += k.len() + MAP_ENTRY_OVERHEAD_BYTES;
                                map.insert(k.to_vec(), offset);
                            }
                        }
                    }
                }
                Ok(())
            })?;
            clean_until = seg.end_offset;
        }

        let mut result = CleanResult {
            dir: self.dir.clone(),
            segments: Vec::new(),
            checkpoint: CleanerCheckpoint {
                first_dirty_offset: clean_until,
                tombstone_horizon_ms: None,
            },
            stats: CleanStats::default(),
        };
        for seg in &self.segments {
            if seg.base_offset >= clean_until {
                break;
            }
            let outcome = self.clean_segment(seg, &map, &aborted, &mut result)?;
            result.segments.push(CleanedSegment {
                base_offset: seg.base_offset,
                source: seg.file.id(),
                outcome,
            });
        }
        Ok(result)
    }

    fn clean_segment(
        &self,
        seg: &PlannedSegment,
        map: &HashMap<Vec<u8>, i64>,
        aborted: &AbortedRanges,
        result: &mut CleanResult,
    ) -> io::Result<SegmentOutcome> {
        let path = self.dir.join(format!(
            "{}{CLEANED_SUFFIX}",
            segment::log_file_name(seg.base_offset)
        ));
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        let mut out = BufWriter::new(file);
        let mut written = 0u64;
        let mut changed = false;
        let mut horizon = result.checkpoint.tombstone_horizon_ms;
        let mut removed = 0u64;
        for_each_batch(seg.file.get()?.as_ref(), seg.size_bytes, |h, batch| {
            if aborted.contains(h) {
                // Never visible to read_committed consumers: dropped (Kafka's cleaner does).
                changed = true;
                removed += h.records_count.max(0) as u64;
                return Ok(());
            }
            let decoded = if h.is_control() {
                None
            } else {
                batch_records(batch, h, MAX_RECORDS_BYTES).ok()
            };
            let records = decoded
                .as_deref()
                .and_then(|raw| parse_records(raw, h.records_count).ok());
            let Some(records) = records else {
                out.write_all(batch)?;
                written += batch.len() as u64;
                return Ok(());
            };
            let mut kept: Vec<&[u8]> = Vec::with_capacity(records.len());
            for r in &records {
                let offset = h.base_offset + r.offset_delta as i64;
                let superseded = r
                    .key
                    .and_then(|k| map.get(k))
                    .is_some_and(|&latest| latest > offset);
                if superseded {
                    continue;
                }
                if r.value.is_none() && r.key.is_some() {
                    // Timestamps are batch-relative; the batch's max bounds the record's.
                    let tombstone_until = h.max_timestamp.saturating_add(self.delete_retention_ms);
                    if self.now_ms >= tombstone_until {
                        continue;
                    }
                    horizon = Some(horizon.map_or(tombstone_until, |t| t.min(tombstone_until)));
                }
                kept.push(r.bytes);
            }
            removed += (records.len() - kept.len()) as u64;
            if kept.len() == records.len() {
                out.write_all(batch)?;
                written += batch.len() as u64;
            } else if !kept.is_empty() {
                changed = true;
                let rebuilt = rebuild_batch(batch, h, &kept).map_err(io::Error::other)?;
                out.write_all(&rebuilt)?;
                written += rebuilt.len() as u64;
            } else {
                changed = true;
            }
            Ok(())
        })?;
        result.checkpoint.tombstone_horizon_ms = horizon;
        if !changed {
            drop(out);
            fs::remove_file(&path)?;
            return Ok(SegmentOutcome::Unchanged);
        }
        result.stats.records_removed += removed;
        result.stats.bytes_before += seg.size_bytes;
        result.stats.bytes_after += written;
        if written == 0 {
            drop(out);
            fs::remove_file(&path)?;
            return Ok(SegmentOutcome::Emptied);
        }
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(SegmentOutcome::Replaced(path))
    }
}
