//! The log of one partition: ordered segments, the last one active. Appends assign offsets; the
//! high watermark is the end of what has been fsynced, and only data below it is readable, so a
//! consumer never sees a record that a crash could take back.
//!
//! Durability is split so that no lock is held across an fsync: [`PartitionLog::sync_work`] hands
//! out the files to sync and the point they cover, the caller syncs them without the log, then
//! reports back with [`PartitionLog::mark_durable`].

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::batch::{self, BatchError, BatchHeader, BatchWalker};
use crate::cleaner::{
    CleanPlan, CleanStats, CleanerCheckpoint, PlannedSegment, PreparedClean, Swap, CHECKPOINT_FILE,
    CLEANED_SUFFIX,
};
use crate::producer_state::{
    CompletedTxn, ProducerBatch, ProducerError, ProducerStateTable, SequenceVerdict,
};
use crate::segment::{CorruptBatch, ScanReport, Segment, SegmentCheck, TRUSTED_ACTIVE_MIN_BYTES};
use crate::txn::{self, AbortedTxn, ControlType, Marker};

/// Topic-level settings the log obeys (Kafka's names in the comments).
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// segment.bytes
    pub segment_bytes: u64,
    /// segment.ms
    pub segment_ms: i64,
    /// retention.ms; negative means keep forever.
    pub retention_ms: i64,
    /// retention.bytes; negative means no size limit.
    pub retention_bytes: i64,
    /// cleanup.policy contains `delete`.
    pub delete_enabled: bool,
    /// max.message.bytes: the largest batch accepted.
    pub max_message_bytes: usize,
    /// message.timestamp.type=LogAppendTime
    pub log_append_time: bool,
    /// cleanup.policy contains `compact`.
    pub compact_enabled: bool,
    /// min.cleanable.dirty.ratio
    pub min_cleanable_dirty_ratio: f64,
    /// delete.retention.ms: how long a tombstone outlives its timestamp.
    pub delete_retention_ms: i64,
    /// min.compaction.lag.ms
    pub min_compaction_lag_ms: i64,
    /// max.compaction.lag.ms: dirty data this old is cleaned whatever the dirty ratio.
    pub max_compaction_lag_ms: i64,
    /// index.interval.bytes: bytes of batches between two offset-index entries.
    pub index_interval_bytes: u64,
    /// segment.jitter.ms: up to this much is taken off segment.ms, per segment.
    pub segment_jitter_ms: i64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            delete_enabled: true,
            max_message_bytes: 1_048_588,
            log_append_time: false,
            compact_enabled: false,
            min_cleanable_dirty_ratio: 0.5,
            delete_retention_ms: 24 * 3600 * 1000,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            index_interval_bytes: crate::segment::INDEX_INTERVAL_BYTES,
            segment_jitter_ms: 0,
        }
    }
}

impl LogConfig {
    /// The age at which the segment starting at `base_offset` rolls: segment.ms less its jitter.
    /// Kafka draws each segment's jitter at random in [0, segment.jitter.ms); here it is drawn
    /// from the segment's base offset, so that it stays the same across restarts.
    pub fn roll_after_ms(&self, base_offset: i64) -> i64 {
        let jitter_ms = self.segment_jitter_ms.min(self.segment_ms);
        if jitter_ms <= 0 {
            return self.segment_ms;
        }
        // SplitMix64 of the base offset: consecutive segments get unrelated jitters.
        let mut z = (base_offset as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        self.segment_ms - (z % jitter_ms as u64) as i64
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error("batch of {size_bytes} bytes exceeds max.message.bytes {max_bytes}")]
    TooLarge { size_bytes: usize, max_bytes: usize },
    #[error(transparent)]
    Producer(#[from] ProducerError),
    #[error("I/O error appending: {0}")]
    Io(#[from] io::Error),
    #[error("the partition was deleted")]
    Deleted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The broker's timestamp when the topic uses LogAppendTime, else -1.
    pub log_append_time_ms: i64,
    /// The batch was a retry of one already in the log; nothing was written.
    pub duplicate: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("offset {offset} is outside [{log_start_offset}, {high_watermark}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        high_watermark: i64,
    },
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Where the durable prefix of the log ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurablePoint {
    pub offset: i64,
    pub segment_base: i64,
    pub position: u64,
}

/// Files to fsync so that the log is durable up to `point`.
pub struct SyncWork {
    pub files: Vec<Arc<File>>,
    /// The partition directory, when a segment file was created or removed since the last sync.
    pub dir: Option<PathBuf>,
    pub point: DurablePoint,
}

impl SyncWork {
    /// Performs the syncs. Call without holding the log.
    pub fn run(&self) -> io::Result<()> {
        for f in &self.files {
            f.sync_data()?;
        }
        if let Some(dir) = &self.dir {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

/// Most batch headers [`ReadPlan::resolve`] reads to find the whole batches of a range.
pub const MAX_HEADER_READS: usize = 32;

/// Whole batches of a segment file, to be sent from the file as they are.
#[derive(Debug, Clone)]
pub struct FileRange {
    pub file: Arc<File>,
    pub position: u64,
    pub len_bytes: u64,
    /// Records in the range's batches (from their headers).
    pub records: u64,
}

/// What a read plan resolves to.
#[derive(Debug, Clone)]
pub enum ReadData {
    Memory(Bytes),
    File(FileRange),
}

/// A read decided under the log's lock and performed outside it.
pub struct ReadPlan {
    file: Option<Arc<File>>,
    position: u64,
    len_bytes: u64,
    /// Set when the range is in a segment whose CRCs are not all checked yet: the batches are
    /// read into memory and checked before they are served.
    check: Option<PlanCheck>,
}

struct PlanCheck {
    check: Arc<SegmentCheck>,
    segment_size: u64,
    segment: PathBuf,
}

impl ReadPlan {
    pub fn empty() -> Self {
        ReadPlan {
            file: None,
            position: 0,
            len_bytes: 0,
            check: None,
        }
    }
    pub fn len_bytes(&self) -> u64 {
        self.len_bytes
    }

    /// Resolves the plan for sending: a range of the segment file that can go to a socket
    /// without passing through memory (`sendfile`) when the planned range is at least
    /// `min_file_bytes` and its whole batches are found within [`MAX_HEADER_READS`] header
    /// reads; otherwise the bytes, read and trimmed as [`ReadPlan::execute`] does. Either way
    /// the result is whole batches, always keeping the first.
    pub fn resolve(&self, min_file_bytes: u64) -> io::Result<ReadData> {
        let Some(file) = &self.file else {
            return Ok(ReadData::Memory(Bytes::new()));
        };
        if self.len_bytes < min_file_bytes.max(1) || self.check.is_some() {
            return self.execute().map(ReadData::Memory);
        }
        let end = self.position + self.len_bytes;
        let (mut pos, mut records, mut batches) = (self.position, 0u64, 0usize);
        let mut hdr = [0u8; batch::BATCH_HEADER_BYTES];
        while pos + batch::BATCH_HEADER_BYTES as u64 <= end {
            if batches == MAX_HEADER_READS {
                // Many small batches: one read of the range costs less than a read per header.
                return self.execute().map(ReadData::Memory);
            }
            std::os::unix::fs::FileExt::read_exact_at(file.as_ref(), &mut hdr, pos)?;
            let Ok(h) = BatchHeader::parse(&hdr) else {
                break;
            };
            if pos + h.size_bytes() as u64 > end {
                break;
            }
            records += h.records_count.max(0) as u64;
            pos += h.size_bytes() as u64;
            batches += 1;
        }
        if batches == 0 {
            return self.execute().map(ReadData::Memory);
        }
        Ok(ReadData::File(FileRange {
            file: file.clone(),
            position: self.position,
            len_bytes: pos - self.position,
            records,
        }))
    }
    /// Reads the planned range and trims it to whole batches (always keeping the first).
    pub fn execute(&self) -> io::Result<Bytes> {
        let Some(file) = &self.file else {
            return Ok(Bytes::new());
        };
        // pread into uninitialised capacity: zeroing the buffer first cost as much as the read.
        let len = self.len_bytes as usize;
        let mut buf: Vec<u8> = Vec::with_capacity(len);
        while buf.len() < len {
            let at = self.position + buf.len() as u64;
            let n = rustix::io::pread(file.as_ref(), rustix::buffer::spare_capacity(&mut buf), at)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        let mut walker = BatchWalker::new(&buf);
        walker.by_ref().for_each(drop);
        let whole = walker.consumed();
        buf.truncate(whole);
        if let Some(c) = &self.check {
            let good = self.check_batches(c, &buf)?;
            buf.truncate(good);
        }
        Ok(Bytes::from(buf))
    }

    /// Checks the CRC of every batch in `buf` (read from the plan's position): the length of the
    /// good prefix. A corrupt first batch is an error ([`CorruptBatch`]); one later cuts the
    /// read short before it.
    fn check_batches(&self, c: &PlanCheck, buf: &[u8]) -> io::Result<usize> {
        let mut good = 0usize;
        let mut corrupt = None;
        for (at, h) in BatchWalker::new(buf) {
            let end = at + h.size_bytes();
            if batch::check_stored(&buf[at..end]).is_none() {
                corrupt = Some(at);
                break;
            }
            good = end;
        }
        c.check
            .checked_good(self.position, self.position + good as u64, c.segment_size);
        let Some(at) = corrupt else {
            return Ok(good);
        };
        let position = self.position + at as u64;
        if c.check.found_corrupt(position) {
            tracing::error!(
                segment = %c.segment.display(),
                position,
                "corrupt batch in a sealed segment (its CRC does not match): not served; fetches from it get CORRUPT_MESSAGE"
            );
        }
        if good == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                CorruptBatch {
                    segment: c.segment.clone(),
                    position,
                },
            ));
        }
        Ok(good)
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    pub segments: usize,
    pub active: ScanReport,
    /// The active segment was opened from its index files and the producer state saved at a
    /// clean shutdown, without a scan.
    pub trusted_active: bool,
}

const LOG_START_FILE: &str = "log-start-offset";

pub struct PartitionLog {
    dir: PathBuf,
    segments: Vec<Segment>,
    log_start_offset: i64,
    durable: DurablePoint,
    unsynced: Vec<Arc<File>>,
    dir_dirty: bool,
    producers: ProducerStateTable,
    /// Transactions closed by a marker not yet durable: their data stays above the last stable
    /// offset until the marker is (Kafka's unreplicated transactions).
    unstable: Vec<CompletedTxn>,
    cleaner: CleanerCheckpoint,
    /// Set when its topic is deleted (its directory is renamed, then removed): nothing is
    /// appended, synced or retained any more.
    deleted: bool,
}

/// The names of the files in `dir` (created when missing): one directory listing per open.
pub fn list_files(dir: &Path) -> io::Result<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dir)?;
            return Ok(Vec::new());
        }
        Err(e) => return Err(e),
    };
    let mut names = Vec::new();
    for entry in entries {
        names.push(entry?.file_name().to_string_lossy().into_owned());
    }
    Ok(names)
}

fn segment_bases(files: &[String]) -> Vec<i64> {
    let mut bases: Vec<i64> = files
        .iter()
        .filter_map(|n| n.strip_suffix(".log")?.parse::<i64>().ok())
        .collect();
    bases.sort_unstable();
    bases
}

fn snapshot_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(crate::segment::segment_file_name(base_offset, ".snapshot"))
}

/// Applies one batch found in the log to the producer state (recovery), collecting the
/// transactions its marker aborts.
fn replay_batch(
    producers: &mut ProducerStateTable,
    aborted: &mut Vec<AbortedTxn>,
    h: &BatchHeader,
    marker: Option<Marker>,
) {
    if !h.has_producer_id() {
        return;
    }
    if h.is_control() {
        let Some(m) = marker else { return };
        let done = producers.record_marker(
            h.producer_id,
            h.producer_epoch,
            m.coordinator_epoch,
            h.base_offset,
            h.max_timestamp,
        );
        if let (Some(c), ControlType::Abort) = (done, m.kind) {
            aborted.push(AbortedTxn {
                producer_id: c.producer_id,
                first_offset: c.first_offset,
                last_offset: c.marker_offset,
                last_stable_offset: producers.stable_offset_after(&c),
            });
        }
    } else if h.base_sequence >= 0 {
        producers.record_batch(
            ProducerBatch {
                producer_id: h.producer_id,
                epoch: h.producer_epoch,
                first_seq: h.base_sequence,
                last_seq: h.last_sequence(),
            },
            h.is_transactional(),
            h.base_offset,
            h.last_offset(),
            h.max_timestamp,
        );
    }
}

impl PartitionLog {
    /// Opens (or creates) the log in `dir`, recovering the active segment.
    pub fn open(dir: &Path) -> io::Result<(PartitionLog, RecoveryReport)> {
        PartitionLog::open_after(dir, false)
    }

    /// Opens the log; `clean_shutdown` says the broker stopped cleanly (every segment was
    /// fsynced at shutdown), so the active segment needs no fdatasync before it is served.
    pub fn open_after(
        dir: &Path,
        clean_shutdown: bool,
    ) -> io::Result<(PartitionLog, RecoveryReport)> {
        PartitionLog::open_listed(dir, clean_shutdown, None)
    }

    /// As [`PartitionLog::open_after`], with the names of the files in `dir` when the caller
    /// knows them (recorded at a clean shutdown), which saves the directory listing.
    pub fn open_listed(
        dir: &Path,
        clean_shutdown: bool,
        listed: Option<Vec<String>>,
    ) -> io::Result<(PartitionLog, RecoveryReport)> {
        // One listing tells which of the optional files exist, so absent ones cost no open.
        let files = match listed {
            Some(files) => files,
            None => list_files(dir)?,
        };
        let has = |name: &str| files.iter().any(|f| f == name);
        let mut bases = segment_bases(&files);
        let created = bases.is_empty();
        if created {
            Segment::create(dir, 0)?;
            bases.push(0);
        }
        let mut report = RecoveryReport {
            segments: bases.len(),
            ..Default::default()
        };
        let mut segments = Vec::with_capacity(bases.len());
        let (&active_base, sealed) = bases.split_last().unwrap_or((&0, &[]));
        let mut txn_index_missing = false;
        for &base in sealed {
            let mut seg = Segment::open_sealed(dir, base)?;
            let listed = has(&crate::segment::segment_file_name(
                base,
                txn::TXN_INDEX_SUFFIX,
            ));
            txn_index_missing |= !(listed && seg.load_txn_index(dir));
            segments.push(seg);
        }
        let read_snapshot = |offset: i64| -> Option<ProducerStateTable> {
            let path = snapshot_path(dir, offset);
            // Not listed: not there, and not worth a failed open.
            if !path.file_name().is_some_and(|n| has(&n.to_string_lossy())) {
                return None;
            }
            let bytes = fs::read(&path).ok()?;
            serde_json::from_slice::<ProducerStateTable>(&bytes)
                .map_err(|e| {
                    tracing::warn!(snapshot = %path.display(), error = %e, "unreadable producer snapshot");
                })
                .ok()
                .map(|mut t| {
                    t.reindex();
                    t
                })
        };
        // After a clean shutdown a large active segment is trusted with its index files and the
        // producer state written at the shutdown for its end; otherwise it is scanned, replaying
        // its batches onto the state as of its start.
        let (mut active, trusted) = if clean_shutdown {
            Segment::open_active_after_clean_shutdown(dir, active_base)?
        } else {
            (Segment::open_unscanned(dir, active_base)?, false)
        };
        let at_end = if trusted && !txn_index_missing {
            read_snapshot(active.next_offset()).and_then(|p| {
                let listed = has(&crate::segment::segment_file_name(
                    active_base,
                    txn::TXN_INDEX_SUFFIX,
                ));
                (listed && active.load_txn_index(dir)).then_some(p)
            })
        } else {
            None
        };
        report.trusted_active = at_end.is_some();
        let (producers, scan) = match at_end {
            Some(producers) => (producers, ScanReport::default()),
            None => {
                let mut producers = match read_snapshot(active_base) {
                    Some(p) if !txn_index_missing => p,
                    // Without the state at the active segment's start (a crash right after a
                    // roll) or a sealed segment's aborted transactions (a crash before its
                    // index was synced, or a log older than transactions), both are rebuilt
                    // from the whole log, as Kafka rebuilds from the log start without a
                    // snapshot.
                    _ if !segments.is_empty() => {
                        tracing::info!(dir = %dir.display(), "rebuilding producer state and aborted-transaction indexes from the whole log");
                        Self::rebuild_sealed(&mut segments)?
                    }
                    _ => ProducerStateTable::default(),
                };
                let mut aborted = Vec::new();
                let scan = active.scan_active(|h, marker| {
                    replay_batch(&mut producers, &mut aborted, h, marker)
                })?;
                active.set_aborted(aborted);
                (producers, scan)
            }
        };
        if let Some(reason) = &scan.reason {
            tracing::warn!(
                segment = %active.log_path().display(),
                truncated_bytes = scan.truncated_bytes,
                %reason,
                "truncated the log's tail at start-up"
            );
        }
        // Whatever is in the file now is made durable before it is served (after a crash the
        // page cache may hold bytes the disk does not).
        if !clean_shutdown || scan.truncated_bytes > 0 {
            active.file()?.sync_data()?;
        }
        report.active = scan;
        segments.push(active);
        let persisted_start = has(LOG_START_FILE)
            .then(|| fs::read_to_string(dir.join(LOG_START_FILE)).ok())
            .flatten()
            .and_then(|s| s.trim().parse::<i64>().ok());
        let first_base = segments.first().map_or(0, |s| s.base_offset);
        let last = segments.last().map_or((0, 0, 0), |s| {
            (s.next_offset(), s.base_offset, s.size_bytes())
        });
        // The persisted start wins: after compaction removed the first segments the log starts
        // below its first segment's base (reads there return the next batch).
        let log_start_offset = persisted_start.unwrap_or(first_base).min(last.0);
        // Remove snapshots other than the active segment's, and a cleaning cut short.
        for name in &files {
            if name.ends_with(CLEANED_SUFFIX) || name.ends_with(crate::segment::REPAIRED_SUFFIX) {
                let _ = fs::remove_file(dir.join(name));
            }
            if let Some(stem) = name.strip_suffix(".snapshot") {
                if stem.parse::<i64>().ok() != Some(active_base) {
                    let _ = fs::remove_file(dir.join(name));
                }
            }
        }
        let log = PartitionLog {
            dir: dir.to_path_buf(),
            segments,
            log_start_offset,
            durable: DurablePoint {
                offset: last.0,
                segment_base: last.1,
                position: last.2,
            },
            unsynced: Vec::new(),
            // A segment file created here, or found after a crash (its directory entry may be in
            // the page cache only), must have its directory entry synced too; a clean shutdown
            // synced every one.
            dir_dirty: created || !clean_shutdown,
            deleted: false,
            producers,
            unstable: Vec::new(),
            cleaner: if has(CHECKPOINT_FILE) {
                CleanerCheckpoint::load(dir)
            } else {
                CleanerCheckpoint::default()
            },
        };
        Ok((log, report))
    }

    /// Replays every sealed segment from the first: the producer state at the active segment's
    /// start, and each segment's aborted transactions (its `.txnindex` rewritten and synced).
    fn rebuild_sealed(segments: &mut [Segment]) -> io::Result<ProducerStateTable> {
        let mut producers = ProducerStateTable::default();
        for seg in segments.iter_mut() {
            let mut aborted = Vec::new();
            seg.replay(|h, marker| replay_batch(&mut producers, &mut aborted, h, marker))?;
            seg.set_aborted(aborted);
            seg.write_txn_index()?.sync_all()?;
        }
        Ok(producers)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Marks the log deleted (its topic is gone): appends are refused, and no sync or
    /// retention touches its directory, which is renamed and removed next.
    pub fn mark_deleted(&mut self) {
        self.deleted = true;
    }
    pub fn is_deleted(&self) -> bool {
        self.deleted
    }
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }
    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset()
    }
    /// The end of the durable prefix: what consumers may read and ListOffsets(latest) returns.
    pub fn high_watermark(&self) -> i64 {
        self.durable.offset
    }
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size_bytes()).sum()
    }
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
    pub fn producers(&self) -> &ProducerStateTable {
        &self.producers
    }

    /// The last stable offset: every transaction with data below it has ended and its marker is
    /// durable. The high watermark when no transaction is open. What read_committed consumers
    /// may read, and ListOffsets(latest) returns to them.
    pub fn last_stable_offset(&self) -> i64 {
        let hw = self.high_watermark();
        let first_unstable = [
            self.producers.first_open_txn_offset(),
            self.unstable.iter().map(|c| c.first_offset).min(),
        ]
        .into_iter()
        .flatten()
        .min();
        let lso = first_unstable
            .map_or(hw, |o| o.min(hw))
            .max(self.log_start_offset);
        // Invariant: log start ≤ LSO ≤ high watermark.
        assert!(
            lso <= hw.max(self.log_start_offset),
            "LSO {lso} past the high watermark {hw}"
        );
        lso
    }

    /// The aborted transactions of every segment (oldest first), for tools and tests.
    pub fn aborted_transactions(&self) -> Vec<AbortedTxn> {
        self.segments
            .iter()
            .flat_map(|s| s.aborted().iter().copied())
            .collect()
    }

    fn active(&self) -> &Segment {
        // The log always holds at least one segment (open creates one; retention rolls first).
        &self.segments[self.segments.len() - 1]
    }
    fn active_mut(&mut self) -> &mut Segment {
        let i = self.segments.len() - 1;
        &mut self.segments[i]
    }

    /// Validates `batch` (as received), assigns offsets, applies the topic's timestamp type and
    /// the idempotent-producer rules, and writes it to the active segment (not yet synced).
    /// Appends one batch as the client sent it. The batch is not copied: the fields the log
    /// rewrites are all in its header, which is rewritten in a copy and written before the
    /// records in one vectored write.
    pub fn append(
        &mut self,
        batch: &[u8],
        cfg: &LogConfig,
        now_ms: i64,
    ) -> Result<AppendOutcome, AppendError> {
        if self.deleted {
            return Err(AppendError::Deleted);
        }
        let h = batch::validate(batch)?;
        if batch.len() > cfg.max_message_bytes {
            return Err(AppendError::TooLarge {
                size_bytes: batch.len(),
                max_bytes: cfg.max_message_bytes,
            });
        }
        if h.is_control() {
            return Err(BatchError::Invalid("clients may not send control batches".into()).into());
        }
        let idempotent = h.has_producer_id() && h.base_sequence >= 0;
        let transactional = h.is_transactional();
        if transactional && !idempotent {
            return Err(BatchError::Invalid(
                "a transactional batch must carry a producer id and a sequence".into(),
            )
            .into());
        }
        let pb = ProducerBatch {
            producer_id: h.producer_id,
            epoch: h.producer_epoch,
            first_seq: h.base_sequence,
            last_seq: h.last_sequence(),
        };
        if idempotent {
            if let SequenceVerdict::Duplicate(c) = self.producers.check_batch(pb, transactional)? {
                return Ok(AppendOutcome {
                    base_offset: c.base_offset,
                    last_offset: c.last_offset,
                    log_append_time_ms: if cfg.log_append_time {
                        c.timestamp_ms
                    } else {
                        -1
                    },
                    duplicate: true,
                });
            }
        }
        let (stored, log_append_time_ms) = self.write_batch(batch, &h, cfg, now_ms)?;
        let base_offset = stored.base_offset;
        if idempotent {
            let ts = if cfg.log_append_time {
                now_ms
            } else {
                stored.max_timestamp
            };
            self.producers
                .record_batch(pb, transactional, base_offset, stored.last_offset(), ts);
        }
        Ok(AppendOutcome {
            base_offset,
            last_offset: stored.last_offset(),
            log_append_time_ms,
            duplicate: false,
        })
    }

    /// Appends an end-transaction marker of `producer_id` (a control batch written by the
    /// transaction coordinator, never by a client): closes the producer's open transaction in
    /// this partition; an ABORT records it in the active segment's aborted-transaction index.
    /// A marker with no open transaction (nothing was written here) is still appended, as
    /// Kafka does.
    pub fn append_marker(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        marker: Marker,
        cfg: &LogConfig,
        now_ms: i64,
    ) -> Result<AppendOutcome, AppendError> {
        if self.deleted {
            return Err(AppendError::Deleted);
        }
        self.producers
            .check_marker(producer_id, producer_epoch, marker.coordinator_epoch)?;
        let batch = txn::control_batch(producer_id, producer_epoch, marker, now_ms);
        let h = batch::validate(&batch)?;
        let (stored, log_append_time_ms) = self.write_batch(&batch, &h, cfg, now_ms)?;
        let done = self.producers.record_marker(
            producer_id,
            producer_epoch,
            marker.coordinator_epoch,
            stored.base_offset,
            now_ms,
        );
        if let Some(c) = done {
            if marker.kind == ControlType::Abort {
                let e = AbortedTxn {
                    producer_id,
                    first_offset: c.first_offset,
                    last_offset: c.marker_offset,
                    last_stable_offset: self.producers.stable_offset_after(&c),
                };
                self.active_mut().push_aborted(e);
            }
            self.unstable.push(c);
        }
        Ok(AppendOutcome {
            base_offset: stored.base_offset,
            last_offset: stored.last_offset(),
            log_append_time_ms,
            duplicate: false,
        })
    }

    /// Writes a validated batch at the log end (rolling first if due): its stored header and
    /// the LogAppendTime set (-1 if none).
    fn write_batch(
        &mut self,
        batch: &[u8],
        h: &BatchHeader,
        cfg: &LogConfig,
        now_ms: i64,
    ) -> Result<(BatchHeader, i64), AppendError> {
        self.maybe_roll(batch.len() as u64, h.last_offset_delta, cfg, now_ms)?;
        let base_offset = self.log_end_offset();
        // `validate` checked the batch holds at least a header.
        let (header, records) = batch.split_at(batch::BATCH_HEADER_BYTES);
        let mut header: [u8; batch::BATCH_HEADER_BYTES] = header
            .try_into()
            .map_err(|_| BatchError::Corrupt("batch shorter than its header".into()))?;
        batch::set_base_offset(&mut header, base_offset);
        batch::set_partition_leader_epoch(&mut header, 0);
        let mut log_append_time_ms = -1;
        if cfg.log_append_time {
            batch::set_log_append_time_split(&mut header, records, now_ms);
            log_append_time_ms = now_ms;
        }
        let stored = BatchHeader::parse(&header)?;
        let active = self.active_mut();
        active.set_index_interval_bytes(cfg.index_interval_bytes);
        active.append_parts(&header, records, &stored, now_ms)?;
        // Invariant: offsets are assigned in order, without gaps, and the log end only grows.
        assert!(
            stored.base_offset == base_offset && self.log_end_offset() == stored.next_offset(),
            "offsets assigned out of order"
        );
        Ok((stored, log_append_time_ms))
    }

    fn maybe_roll(
        &mut self,
        incoming_bytes: u64,
        last_offset_delta: i32,
        cfg: &LogConfig,
        now_ms: i64,
    ) -> io::Result<()> {
        let a = self.active();
        if a.is_empty() {
            return Ok(());
        }
        let full = a.size_bytes() + incoming_bytes > cfg.segment_bytes;
        let old = a
            .first_append_ms()
            .is_some_and(|t| now_ms.saturating_sub(t) >= cfg.roll_after_ms(a.base_offset));
        // Index entries hold 32-bit relative offsets and positions.
        let rel_overflow = a.next_offset() + last_offset_delta as i64 - a.base_offset
            >= i32::MAX as i64
            || a.size_bytes() + incoming_bytes >= u32::MAX as u64;
        if full || old || rel_overflow {
            self.roll()?;
        }
        Ok(())
    }

    /// Seals the active segment and starts a new one at the log end offset.
    pub fn roll(&mut self) -> io::Result<()> {
        let next = self.log_end_offset();
        self.active().write_indexes()?;
        if let Some(sealed) = self.active_mut().take_unsynced_write() {
            self.unsynced.push(sealed);
        }
        // Synced with the sealed segment's data; a torn or missing one is rebuilt at start-up.
        let txn_index = self.active().write_txn_index()?;
        self.unsynced.push(Arc::new(txn_index));
        self.write_producer_snapshot(next)?;
        let _ = fs::remove_file(snapshot_path(&self.dir, self.active().base_offset));
        self.segments.push(Segment::create(&self.dir, next)?);
        self.dir_dirty = true;
        Ok(())
    }

    /// Saves the producer state as of `offset` (everything below it appended).
    fn write_producer_snapshot(&self, offset: i64) -> io::Result<()> {
        let snap = serde_json::to_vec(&self.producers).map_err(io::Error::other)?;
        let tmp = self.dir.join("producer-snapshot.tmp");
        fs::write(&tmp, snap)?;
        fs::rename(&tmp, snapshot_path(&self.dir, offset))
    }

    /// The point a sync now would make durable.
    fn end_point(&self) -> DurablePoint {
        let a = self.active();
        DurablePoint {
            offset: a.next_offset(),
            segment_base: a.base_offset,
            position: a.size_bytes(),
        }
    }

    /// Whether anything appended (or a segment created or removed) is not yet durable.
    pub fn needs_sync(&self) -> bool {
        !self.deleted && self.end_point() != self.durable
            || !self.unsynced.is_empty()
            || self.dir_dirty
    }

    /// What must be synced to make everything appended so far durable; `None` if it already is.
    pub fn sync_work(&mut self) -> Option<SyncWork> {
        if !self.needs_sync() {
            return None;
        }
        let point = self.end_point();
        let mut files = std::mem::take(&mut self.unsynced);
        // Only a written file has bytes to sync, and its write kept its descriptor for this.
        files.extend(self.active_mut().take_unsynced_write());
        let dir = std::mem::take(&mut self.dir_dirty).then(|| self.dir.clone());
        Some(SyncWork { files, dir, point })
    }

    /// Records that `point` is durable. Returns whether the high watermark moved.
    pub fn mark_durable(&mut self, point: DurablePoint) -> bool {
        // Invariant: durable ≤ appended (a sync covers only what was appended before it).
        assert!(
            point.offset <= self.log_end_offset(),
            "durable point {} past the log end {}",
            point.offset,
            self.log_end_offset()
        );
        if point.offset > self.durable.offset
            || (point.offset == self.durable.offset
                && point.segment_base >= self.durable.segment_base)
        {
            let moved = point.offset > self.durable.offset;
            let hw_before = self.high_watermark();
            self.durable = point;
            // A transaction whose marker is now durable is stable.
            self.unstable.retain(|c| c.marker_offset >= point.offset);
            // Invariant: the high watermark never goes back.
            assert!(self.high_watermark() >= hw_before);
            return moved;
        }
        false
    }

    /// How many bytes of `seg` are durable and so readable.
    fn readable_bytes(&self, seg: &Segment) -> u64 {
        use std::cmp::Ordering::*;
        match seg.base_offset.cmp(&self.durable.segment_base) {
            Less => seg.size_bytes(),
            Equal => self.durable.position.min(seg.size_bytes()),
            Greater => 0,
        }
    }

    fn segment_index_for(&self, offset: i64) -> usize {
        self.segments
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1)
    }

    /// Plans a read of whole batches starting with the one holding `offset`, at most
    /// `max_bytes` (but the first batch whole when `min_one_batch`).
    pub fn read(
        &self,
        offset: i64,
        max_bytes: u64,
        min_one_batch: bool,
    ) -> Result<ReadPlan, ReadError> {
        self.read_upto(offset, max_bytes, min_one_batch, self.high_watermark())
            .map(|(plan, _)| plan)
    }

    /// A read_committed read: as [`PartitionLog::read`] but only below the last stable offset,
    /// with the aborted transactions that overlap the range read (the fetch response's
    /// `aborted_transactions`: the consumer drops those producers' batches in them).
    pub fn read_committed(
        &self,
        offset: i64,
        max_bytes: u64,
        min_one_batch: bool,
    ) -> Result<(ReadPlan, Vec<AbortedTxn>), ReadError> {
        let lso = self.last_stable_offset();
        let (plan, upper) = self.read_upto(offset, max_bytes, min_one_batch, lso)?;
        let mut aborted = Vec::new();
        if plan.len_bytes() > 0 {
            for seg in &self.segments[self.segment_index_for(offset)..] {
                if txn::collect_overlapping(seg.aborted(), offset, upper, &mut aborted) {
                    break;
                }
            }
        }
        Ok((plan, aborted))
    }

    /// Plans a read starting at `offset` of batches below `upto` (a batch boundary at most the
    /// high watermark). Also returns an offset bounding the range read: `upto` or the end of
    /// the segment read, whichever is lower (Kafka's `fetchUpperBoundOffset`).
    fn read_upto(
        &self,
        offset: i64,
        max_bytes: u64,
        min_one_batch: bool,
        upto: i64,
    ) -> Result<(ReadPlan, i64), ReadError> {
        let hw = self.high_watermark();
        debug_assert!(upto <= hw);
        if offset < self.log_start_offset || offset > hw {
            return Err(ReadError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset,
                high_watermark: hw,
            });
        }
        if offset >= upto {
            return Ok((ReadPlan::empty(), upto));
        }
        for seg in &self.segments[self.segment_index_for(offset)..] {
            if seg.base_offset >= upto {
                break;
            }
            let mut limit = self.readable_bytes(seg);
            if upto < seg.next_offset() {
                // Stop before the batch holding `upto` (its first offset, where it is one).
                limit = match seg.find_batch(upto, limit)? {
                    Some((pos, _)) => pos,
                    None => limit,
                };
            }
            if limit == 0 {
                break;
            }
            let upper = upto.min(seg.next_offset());
            if let Some((pos, h)) = seg.find_batch(offset, limit)? {
                let available = limit - pos;
                let first = (h.size_bytes() as u64).min(available);
                let len = if max_bytes >= first {
                    max_bytes.min(available)
                } else if min_one_batch {
                    first
                } else {
                    return Ok((ReadPlan::empty(), upper));
                };
                let check = (!seg.check().covers(pos + len)).then(|| PlanCheck {
                    check: Arc::clone(seg.check()),
                    segment_size: seg.size_bytes(),
                    segment: seg.log_path().to_path_buf(),
                });
                let plan = ReadPlan {
                    file: Some(seg.file()?),
                    position: pos,
                    len_bytes: len,
                    check,
                };
                return Ok((plan, upper));
            }
        }
        Ok((ReadPlan::empty(), upto))
    }

    fn read_batch(&self, seg: &Segment, pos: u64, h: &BatchHeader) -> io::Result<Bytes> {
        let mut buf = vec![0u8; h.size_bytes()];
        seg.read_at(&mut buf, pos)?;
        Ok(Bytes::from(buf))
    }

    /// Kafka's ListOffsets by timestamp: the first offset whose record timestamp is at least
    /// `ts`, with that timestamp. `None` when no record is that new.
    pub fn offset_for_timestamp(&self, ts: i64) -> io::Result<Option<(i64, i64)>> {
        for seg in &self.segments {
            let limit = self.readable_bytes(seg);
            if limit == 0 || seg.max_timestamp_ms() < ts {
                continue;
            }
            if let Some((pos, h)) = seg.find_batch_by_timestamp(ts, limit)? {
                let raw = self.read_batch(seg, pos, &h)?;
                let found = crate::records::first_at_or_after(&h, raw, ts, self.log_start_offset);
                if let Some(found) = found {
                    return Ok(Some(found));
                }
            }
        }
        Ok(None)
    }

    /// Kafka's ListOffsets MAX_TIMESTAMP: the offset and timestamp of the record with the
    /// largest timestamp (the first such record).
    pub fn max_timestamp_offset(&self) -> io::Result<Option<(i64, i64)>> {
        let mut best: Option<&Segment> = None;
        for seg in &self.segments {
            if self.readable_bytes(seg) > 0
                && seg.max_timestamp_ms() >= 0
                && best.is_none_or(|b| seg.max_timestamp_ms() > b.max_timestamp_ms())
            {
                best = Some(seg);
            }
        }
        let Some(seg) = best else { return Ok(None) };
        let limit = self.readable_bytes(seg);
        match seg.find_batch(seg.offset_of_max_timestamp(), limit)? {
            Some((pos, h)) => {
                let raw = self.read_batch(seg, pos, &h)?;
                Ok(crate::records::first_at_or_after(
                    &h,
                    raw,
                    h.max_timestamp,
                    self.log_start_offset,
                ))
            }
            None => Ok(None),
        }
    }

    /// Deletes whole segments past retention.ms / retention.bytes; returns how many.
    pub fn apply_retention(&mut self, cfg: &LogConfig, now_ms: i64) -> io::Result<usize> {
        if !cfg.delete_enabled || self.deleted {
            return Ok(0);
        }
        let mut delete = 0usize;
        let mut total = self.size_bytes() as i64;
        for (i, seg) in self.segments.iter().enumerate() {
            let durable = seg.next_offset() <= self.durable.offset && !seg.is_empty();
            let last = i + 1 == self.segments.len();
            if !durable || (last && seg.is_empty()) {
                break;
            }
            let expired_by_time = cfg.retention_ms >= 0
                && seg.max_timestamp_ms() >= 0
                && now_ms.saturating_sub(seg.max_timestamp_ms()) > cfg.retention_ms;
            let over_size =
                cfg.retention_bytes >= 0 && total - seg.size_bytes() as i64 >= cfg.retention_bytes;
            if !(expired_by_time || over_size) {
                break;
            }
            total -= seg.size_bytes() as i64;
            delete += 1;
        }
        self.delete_leading_segments(delete)?;
        Ok(delete)
    }

    fn delete_leading_segments(&mut self, count: usize) -> io::Result<()> {
        if count == 0 {
            return Ok(());
        }
        if count >= self.segments.len() {
            self.roll()?;
        }
        for seg in self.segments.drain(..count) {
            seg.delete_files()?;
        }
        self.dir_dirty = true;
        let first_base = self.segments.first().map_or(0, |s| s.base_offset);
        if first_base > self.log_start_offset {
            self.log_start_offset = first_base;
            self.persist_log_start()?;
        }
        self.producers.evict_below(self.log_start_offset);
        Ok(())
    }

    fn persist_log_start(&self) -> io::Result<()> {
        let tmp = self.dir.join("log-start-offset.tmp");
        fs::write(&tmp, self.log_start_offset.to_string())?;
        fs::rename(&tmp, self.dir.join(LOG_START_FILE))
    }

    /// Kafka's DeleteRecords: moves the log start offset to `offset` (-1: the high watermark)
    /// and removes segments wholly below it. Returns the new log start offset.
    pub fn delete_records_before(&mut self, offset: i64) -> Result<i64, ReadError> {
        let hw = self.high_watermark();
        let target = if offset == -1 { hw } else { offset };
        if target < 0 || target > hw {
            return Err(ReadError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset,
                high_watermark: hw,
            });
        }
        if target > self.log_start_offset {
            self.log_start_offset = target;
            self.persist_log_start()?;
            let whole = self
                .segments
                .iter()
                .take_while(|s| !s.is_empty() && s.next_offset() <= target)
                .count();
            self.delete_leading_segments(whole)?;
            self.dir_dirty = true;
        }
        Ok(self.log_start_offset)
    }

    /// Drops the state of idempotent producers idle for `expiration_ms` (producer.id.expiration.ms).
    pub fn expire_producers(&mut self, now_ms: i64, expiration_ms: i64) {
        self.producers.expire(now_ms, expiration_ms);
    }

    /// Decides whether the log needs compacting now and what a cleaning would read (see
    /// [`crate::cleaner`]). `None` when the topic is not compacted or nothing is due.
    pub fn plan_clean(&self, cfg: &LogConfig, now_ms: i64) -> Option<CleanPlan> {
        if !cfg.compact_enabled || self.deleted {
            return None;
        }
        let sealed = &self.segments[..self.segments.len() - 1];
        let lag_floor_ms = now_ms.saturating_sub(cfg.min_compaction_lag_ms.max(0));
        // Below the LSO only: an open transaction's data is not touched (Kafka's
        // firstUncleanableOffset).
        let lso = self.last_stable_offset();
        let cleanable = sealed
            .iter()
            .take_while(|s| {
                s.next_offset() <= lso
                    && (cfg.min_compaction_lag_ms <= 0 || s.max_timestamp_ms() <= lag_floor_ms)
            })
            .count();
        if cleanable == 0 {
            return None;
        }
        let first_dirty = self.cleaner.first_dirty_offset.max(self.log_start_offset);
        let mut segments = Vec::with_capacity(cleanable);
        let (mut clean_bytes, mut dirty_bytes) = (0u64, 0u64);
        let mut oldest_dirty_ms = i64::MAX;
        for (i, s) in self.segments[..cleanable].iter().enumerate() {
            let dirty = s.base_offset >= first_dirty;
            if dirty {
                dirty_bytes += s.size_bytes();
                oldest_dirty_ms = oldest_dirty_ms.min(s.max_timestamp_ms());
            } else {
                clean_bytes += s.size_bytes();
            }
            segments.push(PlannedSegment {
                base_offset: s.base_offset,
                end_offset: self.segments[i + 1].base_offset,
                file: s.file_handle().clone(),
                size_bytes: s.size_bytes(),
                dirty,
            });
        }
        let total = (clean_bytes + dirty_bytes).max(1) as f64;
        let ratio_due =
            dirty_bytes > 0 && dirty_bytes as f64 / total >= cfg.min_cleanable_dirty_ratio;
        let overdue =
            dirty_bytes > 0 && now_ms.saturating_sub(oldest_dirty_ms) >= cfg.max_compaction_lag_ms;
        let tombstones_due = self
            .cleaner
            .tombstone_horizon_ms
            .is_some_and(|h| now_ms >= h);
        if !(ratio_due || overdue || tombstones_due) {
            return None;
        }
        Some(CleanPlan {
            dir: self.dir.clone(),
            segments,
            first_dirty_offset: first_dirty,
            delete_retention_ms: cfg.delete_retention_ms,
            now_ms,
            max_map_bytes: crate::cleaner::MAX_OFFSET_MAP_BYTES,
            aborted: {
                let end = self.segments[cleanable].base_offset;
                self.segments
                    .iter()
                    .flat_map(|s| s.aborted().iter().copied())
                    .filter(|e| e.first_offset < end)
                    .collect()
            },
        })
    }

    /// Swaps in the segments a [`CleanPlan::run`] wrote, readied by [`crate::cleaner::CleanResult::prepare`]:
    /// renames and in-memory swaps only, no fsync under the lock. The renames become durable
    /// with the partition's next sync (the directory is marked dirty: the caller asks the syncer
    /// for it); a crash before then leaves the old segments, which hold every record the new
    /// ones do, with their index files rebuilt at start-up. A segment that retention or
    /// DeleteRecords removed meanwhile is skipped. Removing the first segment does not move the
    /// log start offset (it is persisted first), as Kafka's compacted logs keep theirs.
    pub fn install_clean(&mut self, prepared: PreparedClean) -> io::Result<CleanStats> {
        if self.deleted {
            return Err(io::Error::other(
                "the partition was deleted while it was cleaned",
            ));
        }
        let mut stats = prepared.stats;
        let mut swaps: Vec<(usize, Option<(PathBuf, Segment)>)> = Vec::new();
        for seg in prepared.segments {
            let at = self
                .segments
                .iter()
                .position(|s| {
                    s.base_offset == seg.base_offset && s.file_handle().id() == seg.source
                })
                .filter(|&i| i + 1 < self.segments.len());
            match (at, seg.swap) {
                (_, Swap::Unchanged) => {}
                (Some(i), Swap::Replaced { path, segment }) => {
                    swaps.push((i, Some((path, *segment))))
                }
                (Some(i), Swap::Emptied) => swaps.push((i, None)),
                (None, Swap::Replaced { path, .. }) => {
                    let _ = fs::remove_file(path);
                }
                (None, Swap::Emptied) => {}
            }
        }
        if !swaps.is_empty() {
            if swaps.iter().any(|(i, c)| *i == 0 && c.is_none()) {
                self.persist_log_start()?;
            }
            // Replace in reverse so removals do not shift the indexes still to visit.
            for (i, cleaned) in swaps.into_iter().rev() {
                match cleaned {
                    Some((path, mut seg)) => {
                        fs::rename(path, seg.log_path())?;
                        seg.unpin();
                        // Markers are kept, so the segment's aborted transactions are too (its
                        // `.txnindex` file is unchanged).
                        seg.set_aborted(self.segments[i].aborted().to_vec());
                        // Not synced, as at a roll; a missing one is rebuilt at start-up.
                        if let Err(e) = seg.write_indexes() {
                            tracing::warn!(segment = %seg.log_path().display(), error = %e, "cannot write the cleaned segment's index files");
                        }
                        self.segments[i] = seg;
                        stats.segments_rewritten += 1;
                    }
                    None => {
                        let _ = fs::remove_file(txn::txn_index_path(
                            &self.dir,
                            self.segments[i].base_offset,
                        ));
                        fs::remove_file(self.segments[i].log_path())?;
                        self.segments.remove(i);
                        stats.segments_removed += 1;
                    }
                }
                self.dir_dirty = true;
            }
        }
        self.cleaner = prepared.checkpoint;
        self.cleaner.store(&self.dir)?;
        Ok(stats)
    }

    /// The cleaner's checkpoint (for metrics and tests).
    pub fn cleaner_checkpoint(&self) -> CleanerCheckpoint {
        self.cleaner
    }

    /// At a clean shutdown, when the next start will trust the active segment (see
    /// [`Segment::open_active_after_clean_shutdown`]), writes its indexes and the producer state
    /// at the log end; the caller syncs afterwards.
    pub fn close(&mut self) -> io::Result<()> {
        // A smaller active segment is scanned at the next start: index files would go unread.
        if self.active().size_bytes() >= TRUSTED_ACTIVE_MIN_BYTES {
            self.active().write_indexes()?;
            self.active().write_txn_index()?;
            self.write_producer_snapshot(self.log_end_offset())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::tests::{make_batch, make_keyed_batch, KeyValue};

    fn sync(log: &mut PartitionLog) {
        if let Some(w) = log.sync_work() {
            w.run().unwrap();
            log.mark_durable(w.point);
        }
    }

    #[test]
    fn append_assigns_offsets_and_reads_only_durable_data() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = PartitionLog::open(dir.path()).unwrap();
        let cfg = LogConfig::default();
        let a = log.append(&make_batch(3, 1000, None), &cfg, 0).unwrap();
        let b = log.append(&make_batch(2, 2000, None), &cfg, 0).unwrap();
        assert_eq!((a.base_offset, a.last_offset), (0, 2));
        assert_eq!((b.base_offset, b.last_offset), (3, 4));
        assert_eq!(log.high_watermark(), 0);
        assert_eq!(log.read(0, 1 << 20, true).unwrap().len_bytes(), 0);
        sync(&mut log);
        assert_eq!(log.high_watermark(), 5);
        let data = log.read(3, 1 << 20, true).unwrap().execute().unwrap();
        let h = BatchHeader::parse(&data).unwrap();
        assert_eq!(h.base_offset, 3);
        assert!(matches!(
            log.read(6, 10, true),
            Err(ReadError::OffsetOutOfRange { .. })
        ));
    }

    #[test]
    fn resolve_gives_whole_batches_from_the_file_or_from_memory() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = PartitionLog::open(dir.path()).unwrap();
        let cfg = LogConfig::default();
        let mut sizes = Vec::new();
        for i in 0..40 {
            let b = make_batch(3, i * 10, None);
            sizes.push(b.len() as u64);
            log.append(&b, &cfg, 0).unwrap();
        }
        sync(&mut log);
        let whole = |n: usize| sizes[..n].iter().sum::<u64>();
        let file_range = |d: ReadData| match d {
            ReadData::File(r) => r,
            ReadData::Memory(b) => panic!("read into memory ({} bytes)", b.len()),
        };

        // A range ending inside the fifth batch: four whole batches from the file, as
        // `execute` would have trimmed them, with their records counted from the headers.
        let budget = whole(4) + sizes[4] / 2;
        let plan = log.read(0, budget, true).unwrap();
        assert_eq!(plan.len_bytes(), budget);
        let r = file_range(plan.resolve(1).unwrap());
        assert_eq!((r.position, r.len_bytes, r.records), (0, whole(4), 12));
        let mut from_file = vec![0u8; r.len_bytes as usize];
        std::os::unix::fs::FileExt::read_exact_at(r.file.as_ref(), &mut from_file, 0).unwrap();
        assert_eq!(from_file, plan.execute().unwrap());

        // Below the threshold, or more batches than headers worth reading: memory, trimmed alike.
        for (budget, min) in [(budget, budget + 1), (whole(40), 1)] {
            let plan = log.read(0, budget, true).unwrap();
            match plan.resolve(min).unwrap() {
                ReadData::Memory(b) => assert_eq!(b, plan.execute().unwrap()),
                ReadData::File(r) => panic!("sent from the file: {r:?}"),
            }
        }
        const { assert!(40 > MAX_HEADER_READS) };

        // From the middle, the first batch kept even when it is larger than the budget.
        let r = file_range(log.read(6, 1, true).unwrap().resolve(1).unwrap());
        assert_eq!(
            (r.position, r.len_bytes, r.records),
            (whole(2), sizes[2], 3)
        );
        assert!(matches!(
            log.read(120, 1 << 20, true).unwrap().resolve(1).unwrap(),
            ReadData::Memory(b) if b.is_empty()
        ));
    }

    #[test]
    fn recovery_truncates_a_corrupt_tail_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LogConfig::default();
        {
            let (mut log, _) = PartitionLog::open(dir.path()).unwrap();
            for i in 0..5 {
                log.append(&make_batch(2, i * 10, None), &cfg, 0).unwrap();
            }
            sync(&mut log);
        }
        let path = dir.path().join(crate::segment::log_file_name(0));
        let mut bytes = fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 3] ^= 0x55;
        fs::write(&path, &bytes).unwrap();
        let (log, report) = PartitionLog::open(dir.path()).unwrap();
        assert_eq!(report.active.batches, 4);
        assert!(report.active.truncated_bytes > 0);
        assert_eq!(log.log_end_offset(), 8);
        assert_eq!(log.high_watermark(), 8);
    }

    #[test]
    fn recovery_cuts_out_a_damaged_batch_and_keeps_the_valid_ones_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LogConfig::default();
        let mut sizes = Vec::new();
        {
            let (mut log, _) = PartitionLog::open(dir.path()).unwrap();
            for i in 0..10 {
                let b = make_batch(2, i * 10, None);
                sizes.push(b.len());
                log.append(&b, &cfg, 0).unwrap();
            }
            sync(&mut log);
        }
        let path = dir.path().join(crate::segment::log_file_name(0));
        let mut bytes = fs::read(&path).unwrap();
        let before = bytes.len();
        // One flipped byte in the fourth batch's records (offsets 6 and 7).
        let fourth: usize = sizes[..3].iter().sum();
        bytes[fourth + sizes[3] - 5] ^= 0x55;
        fs::write(&path, &bytes).unwrap();
        let (log, report) = PartitionLog::open(dir.path()).unwrap();
        assert_eq!(report.active.truncated_bytes, 0);
        assert_eq!(report.active.batches, 9);
        let d = &report.active.damaged;
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(
            (d[0].position, d[0].bytes),
            (fourth as u64, sizes[3] as u64)
        );
        assert_eq!(d[0].next_offset_kept, 8);
        // The damaged bytes are kept beside the segment, the segment holds the rest.
        assert_eq!(
            fs::read(&d[0].saved_to).unwrap(),
            bytes[fourth..fourth + sizes[3]]
        );
        assert_eq!(
            fs::metadata(&path).unwrap().len() as usize,
            before - sizes[3]
        );
        assert_eq!(log.log_end_offset(), 20);
        assert_eq!(log.high_watermark(), 20);
        // Offset 6 falls in the gap: a read there returns the next batch, as in a compacted log.
        let data = log.read(6, 1 << 20, true).unwrap().execute().unwrap();
        assert_eq!(BatchHeader::parse(&data).unwrap().base_offset, 8);
        drop(log);
        // Opening again finds nothing more to repair.
        let (_, again) = PartitionLog::open(dir.path()).unwrap();
        assert!(again.active.damaged.is_empty());
        assert_eq!(again.active.batches, 9);
    }

    #[test]
    fn rolls_by_size_and_retention_deletes_old_segments() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LogConfig {
            segment_bytes: 200,
            retention_bytes: 300,
            ..LogConfig::default()
        };
        let (mut log, _) = PartitionLog::open(dir.path()).unwrap();
        for i in 0..10 {
            log.append(&make_batch(1, i, None), &cfg, 0).unwrap();
        }
        sync(&mut log);
        assert!(log.segment_count() > 3);
        let deleted = log.apply_retention(&cfg, 0).unwrap();
        assert!(deleted > 0);
        assert!(log.log_start_offset() > 0);
        assert!(log.size_bytes() as i64 <= 300 + 200);
        assert!(matches!(
            log.read(0, 100, true),
            Err(ReadError::OffsetOutOfRange { .. })
        ));
        // Reopen: sealed segments come back from their index files.
        let start = log.log_start_offset();
        drop(log);
        let (log, _) = PartitionLog::open(dir.path()).unwrap();
        assert_eq!(log.log_start_offset(), start);
        assert_eq!(log.log_end_offset(), 10);
    }

    #[test]
    fn rolls_by_age() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LogConfig {
            segment_ms: 1000,
            ..LogConfig::default()
        };
        let (mut log, _) = PartitionLog::open(dir.path()).unwrap();
        log.append(&make_batch(1, 0, None), &cfg, 10_000).unwrap();
        log.append(&make_batch(1, 0, None), &cfg, 10_999).unwrap();
        assert_eq!(log.segment_count(), 1);
        log.append(&make_batch(1, 0, None), &cfg, 11_000).unwrap();
        assert_eq!(log.segment_count(), 2);
        sync(&mut log);
        let data = log.read(2, 1 << 20, true).unwrap().execute().unwrap();
        assert_eq!(BatchHeader::parse(&data).unwrap().base_offset, 2);
    }

    #[test]
    fn segment_jitter_takes_up_to_the_jitter_off_segment_ms() {
        let cfg = LogConfig {
            segment_ms: 1000,
            segment_jitter_ms: 300,
            ..LogConfig::default()
        };
        let rolls: Vec<i64> = (0..200).map(|base| cfg.roll_after_ms(base)).collect();
        assert!(rolls.iter().all(|r| (701..=1000).contains(r)), "{rolls:?}");
        assert!(rolls.iter().collect::<std::collections::HashSet<_>>().len() > 50);
        // The same segment always gets the same jitter.
        assert_eq!(cfg.roll_after_ms(17), cfg.roll_after_ms(17));
        let none = LogConfig {
            segment_ms: 1000,
            ..LogConfig::default()
        };
        assert_eq!(none.roll_after_ms(17), 1000);
        // A jitter above segment.ms is bounded by it, as in Kafka.
        let huge = LogConfig {
            segment_ms: 10,
            segment_jitter_ms: i64::MAX,
            ..LogConfig::default()
        };
        assert!((1..=10).contains(&huge.roll_after_ms(3)));
    }

    #[test]
    fn index_interval_bytes_sets_the_offset_index_density() {
        let index_len = |interval: u64| {
            let dir = tempfile::tempdir().unwrap();
            let cfg = LogConfig {
                index_interval_bytes: interval,
                ..LogConfig::default()
            };
            let (mut log, _) = PartitionLog::open(dir.path()).unwrap();
            for i in 0..10 {
                log.append(&make_batch(1, i, None), &cfg, 0).unwrap();
            }
            log.roll().unwrap();
            std::fs::metadata(
                dir.path()
                    .join(crate::segment::segment_file_name(0, ".index")),
            )
            .unwrap()
            .len()
        };
        // index.interval.bytes=0: an entry (8 bytes) for every batch; the default 4096: none
        // for ten batches of under 100 bytes (the segment's start needs no entry, as in Kafka).
        assert_eq!(index_len(0), 10 * 8);
        assert_eq!(index_len(4096), 0);
    }

    #[test]
    fn idempotent_retry_is_not_appended_twice_even_after_restart() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LogConfig::default();
        let (mut log, _) = PartitionLog::open(dir.path()).unwrap();
        let batch = make_batch(3, 0, Some((7, 0, 0)));
        let first = log.append(&batch.clone(), &cfg, 0).unwrap();
        let again = log.append(&batch.clone(), &cfg, 0).unwrap();
        assert!(again.duplicate);
        assert_eq!(again.base_offset, first.base_offset);
        sync(&mut log);
        drop(log);
        let (mut log, _) = PartitionLog::open(dir.path()).unwrap();
        assert!(log.append(&batch.clone(), &cfg, 0).unwrap().duplicate);
        assert_eq!(log.log_end_offset(), 3);
        let gap = log.append(&make_batch(1, 0, Some((7, 0, 9))), &cfg, 0);
        assert!(matches!(gap, Err(AppendError::Producer(_))));
    }

    #[test]
    fn timestamps_and_delete_records() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LogConfig::default();
        let (mut log, _) = PartitionLog::open(dir.path()).unwrap();
        log.append(&make_batch(3, 100, None), &cfg, 0).unwrap(); // ts 100..102
        log.append(&make_batch(3, 200, None), &cfg, 0).unwrap(); // ts 200..202
        sync(&mut log);
        assert_eq!(log.offset_for_timestamp(101).unwrap(), Some((1, 101)));
        assert_eq!(log.offset_for_timestamp(150).unwrap(), Some((3, 200)));
        assert_eq!(log.offset_for_timestamp(500).unwrap(), None);
        assert_eq!(log.max_timestamp_offset().unwrap(), Some((5, 202)));
        assert_eq!(log.delete_records_before(4).unwrap(), 4);
        assert!(log.delete_records_before(99).is_err());
        drop(log);
        let (log, _) = PartitionLog::open(dir.path()).unwrap();
        assert_eq!(log.log_start_offset(), 4);
    }

    #[test]
    fn log_append_time_is_applied() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LogConfig {
            log_append_time: true,
            ..LogConfig::default()
        };
        let (mut log, _) = PartitionLog::open(dir.path()).unwrap();
        let out = log.append(&make_batch(2, 5, None), &cfg, 777).unwrap();
        assert_eq!(out.log_append_time_ms, 777);
        sync(&mut log);
        let data = log.read(0, 1 << 20, true).unwrap().execute().unwrap();
        // The CRC was recomputed over the rewritten header and the records the client sent.
        let stored = batch::validate(&data).unwrap();
        assert_eq!(stored.max_timestamp, 777);
        assert_eq!(log.offset_for_timestamp(700).unwrap(), Some((0, 777)));
    }

    fn compact_cfg() -> LogConfig {
        LogConfig {
            segment_bytes: 250,
            compact_enabled: true,
            delete_enabled: false,
            min_cleanable_dirty_ratio: 0.0,
            delete_retention_ms: 1000,
            ..LogConfig::default()
        }
    }

    /// (offset, key, value) of a record read back.
    type ReadRecord = (i64, Option<Vec<u8>>, Option<Vec<u8>>);

    /// Every readable (offset, key, value), following the log from its start.
    fn read_all(log: &PartitionLog) -> Vec<ReadRecord> {
        let mut out = Vec::new();
        let mut offset = log.log_start_offset();
        while offset < log.high_watermark() {
            let data = log.read(offset, 1 << 20, true).unwrap().execute().unwrap();
            assert!(!data.is_empty(), "no batch at or after offset {offset}");
            for (pos, h) in BatchWalker::new(&data) {
                let batch = &data[pos..pos + h.size_bytes()];
                assert!(batch::check_stored(batch).is_some(), "stored batch CRC");
                let raw = crate::records::batch_records(batch, &h, 1 << 20).unwrap();
                for r in crate::records::parse_records(&raw, h.records_count).unwrap() {
                    let o = h.base_offset + r.offset_delta as i64;
                    if o >= offset {
                        out.push((o, r.key.map(<[u8]>::to_vec), r.value.map(<[u8]>::to_vec)));
                    }
                }
                offset = h.next_offset();
            }
        }
        out
    }

    fn clean(log: &mut PartitionLog, cfg: &LogConfig, now_ms: i64) -> Option<CleanStats> {
        let plan = log.plan_clean(cfg, now_ms)?;
        let prepared = plan.run().unwrap().prepare().unwrap();
        let stats = log.install_clean(prepared).unwrap();
        // The renames are made durable by the partition's next sync, not under the lock.
        if stats.segments_rewritten + stats.segments_removed > 0 {
            let work = log.sync_work().expect("the directory needs a sync");
            assert_eq!(work.dir.as_deref(), Some(log.dir.as_path()));
            work.run().unwrap();
            log.mark_durable(work.point);
        }
        Some(stats)
    }

    #[test]
    fn compaction_keeps_the_latest_record_per_key_at_its_offset() {
        use crate::batch::tests::make_keyed_batch;
        let dir = tempfile::tempdir().unwrap();
        let cfg = compact_cfg();
        let (mut log, _) = PartitionLog::open(dir.path()).unwrap();
        let mut latest = std::collections::BTreeMap::new();
        for i in 0..40i64 {
            let key = format!("k{}", i % 4);
            let value = format!("value-{i}");
            let b = make_keyed_batch(&[(Some(key.as_bytes()), Some(value.as_bytes()))], i, None);
            let out = log.append(&b.clone(), &cfg, 0).unwrap();
            assert_eq!(out.base_offset, i);
            latest.insert(key.into_bytes(), (i, value.into_bytes()));
        }
        sync(&mut log);
        let before = read_all(&log);
        assert_eq!(before.len(), 40);
        assert!(log.segment_count() > 3);
        let stats = clean(&mut log, &cfg, 100).expect("a cleaning is due");
        assert!(stats.records_removed > 0);
        let after = read_all(&log);
        assert!(after.len() < before.len());
        // Offsets only increase, every survivor is unchanged at its original offset, and every
        // key's latest value is still there.
        assert!(after.windows(2).all(|w| w[0].0 < w[1].0));
        for (o, k, v) in &after {
            assert_eq!(&before[*o as usize], &(*o, k.clone(), v.clone()));
        }
        for (k, (o, v)) in &latest {
            assert!(after.contains(&(*o, Some(k.clone()), Some(v.clone()))));
        }
        // In the cleaned part, each key appears once.
        let cleaned_until = log.cleaner_checkpoint().first_dirty_offset;
        let mut seen = std::collections::HashSet::new();
        for (o, k, _) in after.iter().filter(|r| r.0 < cleaned_until) {
            assert!(
                seen.insert(k.clone()),
                "key {k:?} twice below {cleaned_until} (at {o})"
            );
        }
        // Reopening finds the same log; the same holds after appending more.
        drop(log);
        let (mut log, _) = PartitionLog::open(dir.path()).unwrap();
        assert_eq!(read_all(&log), after);
        assert_eq!(log.log_end_offset(), 40);
        let b = make_keyed_batch(&[(Some(b"k0"), Some(b"again"))], 50, None);
        assert_eq!(log.append(&b.clone(), &cfg, 0).unwrap().base_offset, 40);
        // Nothing dirty: no cleaning is planned at a high ratio.
        let strict = LogConfig {
            min_cleanable_dirty_ratio: 0.99,
            ..cfg.clone()
        };
        assert!(log.plan_clean(&strict, 100).is_none());
    }

    #[test]
    fn tombstones_last_delete_retention_ms_then_go() {
        use crate::batch::tests::make_keyed_batch;
        let dir = tempfile::tempdir().unwrap();
        let cfg = compact_cfg();
        let (mut log, _) = PartitionLog::open(dir.path()).unwrap();
        let batches: [(&[u8], Option<&[u8]>); 6] = [
            (b"a", Some(b"1")),
            (b"b", Some(b"1")),
            (b"a", None),
            (b"c", Some(b"1")),
            (b"c", Some(b"2")),
            (b"d", Some(b"1")),
        ];
        for (i, (k, v)) in batches.iter().enumerate() {
            let b = make_keyed_batch(&[(Some(*k), *v)], 1000 + i as i64, None);
            log.append(&b, &cfg, 0).unwrap();
            log.roll().unwrap();
        }
        sync(&mut log);
        clean(&mut log, &cfg, 1500).expect("due");
        let keys = |log: &PartitionLog| -> Vec<(i64, Vec<u8>, bool)> {
            read_all(log)
                .into_iter()
                .map(|(o, k, v)| (o, k.unwrap(), v.is_some()))
                .collect()
        };
        // The tombstone (offset 2, ts 1002) stays until 2002; "a"=1 is gone already.
        assert_eq!(
            keys(&log),
            vec![
                (1, b"b".to_vec(), true),
                (2, b"a".to_vec(), false),
                (4, b"c".to_vec(), true),
                (5, b"d".to_vec(), true),
            ]
        );
        assert_eq!(log.cleaner_checkpoint().tombstone_horizon_ms, Some(2002));
        // Nothing new was written: only the tombstone's horizon makes a cleaning due.
        assert!(log.plan_clean(&cfg, 2001).is_none());
        assert!(log
            .plan_clean(&cfg, 2002)
            .is_some_and(|p| p.segments.iter().all(|s| !s.dirty)));
        clean(&mut log, &cfg, 2002).expect("tombstone due");
        assert_eq!(
            keys(&log),
            vec![
                (1, b"b".to_vec(), true),
                (4, b"c".to_vec(), true),
                (5, b"d".to_vec(), true)
            ]
        );
        // Removing the first segments did not move the log start; reading from a removed offset
        // returns the next batch, also after a restart.
        assert_eq!(log.log_start_offset(), 0);
        let data = log.read(2, 1 << 20, true).unwrap().execute().unwrap();
        assert_eq!(BatchHeader::parse(&data).unwrap().base_offset, 4);
        drop(log);
        let (log, _) = PartitionLog::open(dir.path()).unwrap();
        assert_eq!(log.log_start_offset(), 0);
        assert_eq!(keys(&log).len(), 3);
    }

    #[test]
    fn a_cleaning_cut_short_leaves_the_log_readable() {
        use crate::batch::tests::make_keyed_batch;
        let dir = tempfile::tempdir().unwrap();
        let cfg = compact_cfg();
        let (mut log, _) = PartitionLog::open(dir.path()).unwrap();
        for i in 0..20i64 {
            let v = format!("{i}");
            let b = make_keyed_batch(&[(Some(b"k"), Some(v.as_bytes()))], i, None);
            log.append(&b, &cfg, 0).unwrap();
        }
        sync(&mut log);
        let before = read_all(&log);
        // The cleaner wrote its copies and died before installing them.
        let plan = log.plan_clean(&cfg, 100).unwrap();
        let result = plan.run().unwrap();
        assert!(result
            .segments
            .iter()
            .any(|s| matches!(s.outcome, crate::cleaner::SegmentOutcome::Replaced(_))));
        drop(result);
        drop(log);
        let (log, _) = PartitionLog::open(dir.path()).unwrap();
        assert_eq!(read_all(&log), before);
        // Again, dying after readying the swap (the old segments' index files removed).
        let plan = log.plan_clean(&cfg, 100).unwrap();
        let prepared = plan.run().unwrap().prepare().unwrap();
        drop(prepared);
        drop(log);
        let (mut log, _) = PartitionLog::open(dir.path()).unwrap();
        assert_eq!(read_all(&log), before);
        let leftovers = fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(CLEANED_SUFFIX)
            })
            .count();
        assert_eq!(leftovers, 0);
        // A segment deleted between planning and installing is left alone.
        let plan = log.plan_clean(&cfg, 100).unwrap();
        let result = plan.run().unwrap();
        log.delete_records_before(log.high_watermark()).unwrap();
        log.install_clean(result.prepare().unwrap()).unwrap();
        assert!(read_all(&log).is_empty());
    }

    /// 40 idempotent batches of 30 records of 1000 bytes (1.2 MB, over
    /// [`TRUSTED_ACTIVE_MIN_BYTES`]); record j of batch i has timestamp 1000 + 100 i + j.
    fn large_batch(i: i64) -> Vec<u8> {
        let value = vec![b'x'; 1000];
        let records: Vec<KeyValue> = (0..30).map(|_| (None, Some(&value[..]))).collect();
        make_keyed_batch(&records, 1000 + 100 * i, Some((7, 0, (i * 30) as i32)))
    }

    fn write_large_log_and_close(dir: &Path) {
        let (mut log, _) = PartitionLog::open(dir).unwrap();
        for i in 0..40 {
            log.append(&large_batch(i), &LogConfig::default(), 0)
                .unwrap();
        }
        sync(&mut log);
        log.close().unwrap();
    }

    /// The batch holding `offset`, read back through the log's index.
    fn batch_at(log: &PartitionLog, offset: i64) -> BatchHeader {
        let data = log.read(offset, 100, true).unwrap().execute().unwrap();
        BatchHeader::parse(&data).unwrap()
    }

    #[test]
    fn after_a_clean_shutdown_a_large_active_segment_opens_without_a_scan() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LogConfig::default();
        write_large_log_and_close(dir.path());
        let (mut log, report) = PartitionLog::open_after(dir.path(), true).unwrap();
        assert!(report.trusted_active);
        assert_eq!(report.active.batches, 0, "nothing was scanned");
        assert_eq!((log.log_end_offset(), log.high_watermark()), (1200, 1200));
        for offset in [0, 29, 30, 617, 1199] {
            let h = batch_at(&log, offset);
            assert!(
                h.base_offset <= offset && offset <= h.last_offset(),
                "{offset}"
            );
        }
        assert_eq!(log.offset_for_timestamp(3000).unwrap(), Some((600, 3000)));
        // The producer state saved at the shutdown: a retry of the last batch is answered with
        // its offsets, and the producer's next batch follows it.
        let retry = log.append(&large_batch(39), &cfg, 0).unwrap();
        assert!(retry.duplicate && retry.base_offset == 1170);
        let next = log.append(&large_batch(40), &cfg, 0).unwrap();
        assert_eq!((next.base_offset, next.duplicate), (1200, false));
        sync(&mut log);
        drop(log);
        // A scan of the same segment (as after a crash) finds what the index said.
        let (log, report) = PartitionLog::open_after(dir.path(), false).unwrap();
        assert!(!report.trusted_active);
        assert_eq!(report.active.batches, 41);
        assert_eq!(log.log_end_offset(), 1230);
        for offset in [0, 617, 1199, 1229] {
            let h = batch_at(&log, offset);
            assert!(
                h.base_offset <= offset && offset <= h.last_offset(),
                "{offset}"
            );
        }
    }

    #[test]
    fn after_a_clean_shutdown_a_torn_last_batch_is_still_found_and_cut() {
        let dir = tempfile::tempdir().unwrap();
        write_large_log_and_close(dir.path());
        let path = dir.path().join(crate::segment::log_file_name(0));
        let mut bytes = fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 3] ^= 0x55;
        fs::write(&path, &bytes).unwrap();
        let (log, report) = PartitionLog::open_after(dir.path(), true).unwrap();
        assert!(!report.trusted_active);
        assert_eq!(report.active.batches, 39);
        assert!(report.active.truncated_bytes > 0);
        assert_eq!((log.log_end_offset(), log.high_watermark()), (1170, 1170));
    }

    #[test]
    fn after_a_clean_shutdown_without_its_producer_snapshot_the_segment_is_scanned() {
        let dir = tempfile::tempdir().unwrap();
        write_large_log_and_close(dir.path());
        fs::remove_file(snapshot_path(dir.path(), 1200)).unwrap();
        let (mut log, report) = PartitionLog::open_after(dir.path(), true).unwrap();
        assert!(!report.trusted_active);
        assert_eq!(report.active.batches, 40);
        let retry = log
            .append(&large_batch(39), &LogConfig::default(), 0)
            .unwrap();
        assert!(retry.duplicate && retry.base_offset == 1170);
    }

    #[test]
    fn after_a_clean_shutdown_an_untouched_log_needs_no_sync() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut log, _) = PartitionLog::open(dir.path()).unwrap();
            log.append(&make_batch(2, 0, None), &LogConfig::default(), 0)
                .unwrap();
            sync(&mut log);
            log.close().unwrap();
        }
        // A clean shutdown synced everything: a broker stopping again syncs nothing.
        let (log, _) = PartitionLog::open_after(dir.path(), true).unwrap();
        assert!(!log.needs_sync());
        drop(log);
        // After a crash the directory entries are synced before anything is served.
        let (log, _) = PartitionLog::open_after(dir.path(), false).unwrap();
        assert!(log.needs_sync());
        // A segment created at open is synced too, clean or not.
        let fresh = tempfile::tempdir().unwrap();
        let (log, _) = PartitionLog::open_after(fresh.path(), true).unwrap();
        assert!(log.needs_sync());
    }

    /// A transactional batch of `count` keyed records of producer `pid`.
    fn txn_batch(records: &[KeyValue], pid: i64, epoch: i16, seq: i32) -> Vec<u8> {
        let mut b = make_keyed_batch(records, 1_000, Some((pid, epoch, seq)));
        let attrs = i16::from_be_bytes([b[21], b[22]]) | batch::ATTR_TRANSACTIONAL;
        b[21..23].copy_from_slice(&attrs.to_be_bytes());
        let crc = batch::compute_crc(&b);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    fn marker(kind: ControlType) -> Marker {
        Marker {
            kind,
            coordinator_epoch: 0,
        }
    }

    /// Base offsets of the batches a read_committed read from `offset` returns, and its
    /// aborted transactions.
    fn read_committed_batches(log: &PartitionLog, offset: i64) -> (Vec<i64>, Vec<AbortedTxn>) {
        let (plan, aborted) = log.read_committed(offset, 1 << 20, true).unwrap();
        let data = plan.execute().unwrap();
        let bases = BatchWalker::new(&data)
            .map(|(_, h)| h.base_offset)
            .collect();
        (bases, aborted)
    }

    #[test]
    fn open_transactions_hold_the_lso_and_aborts_are_indexed() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = PartitionLog::open(dir.path()).unwrap();
        let cfg = LogConfig::default();
        let kv: [KeyValue; 2] = [(Some(b"k"), Some(b"a")), (Some(b"k"), Some(b"b"))];
        log.append(&make_batch(1, 0, None), &cfg, 0).unwrap(); // 0
        log.append(&txn_batch(&kv, 1, 0, 0), &cfg, 0).unwrap(); // 1-2
        log.append(&txn_batch(&kv[..1], 2, 0, 0), &cfg, 0).unwrap(); // 3
        sync(&mut log);
        assert_eq!((log.high_watermark(), log.last_stable_offset()), (4, 1));
        assert_eq!(read_committed_batches(&log, 0), (vec![0], vec![]));
        assert!(log.read_committed(1, 1 << 20, true).unwrap().0.len_bytes() == 0);

        // An open transaction accepts only transactional batches from its producer.
        assert!(matches!(
            log.append(&make_batch(1, 0, Some((1, 0, 2))), &cfg, 0),
            Err(AppendError::Producer(
                ProducerError::TransactionalWriteExpected { .. }
            ))
        ));
        // Nor does a bumped epoch end it: only a marker does.
        assert!(matches!(
            log.append(&make_batch(1, 0, Some((1, 1, 0))), &cfg, 0),
            Err(AppendError::Producer(
                ProducerError::TransactionalWriteExpected { .. }
            ))
        ));
        // A marker of an older epoch is refused.
        log.append(&txn_batch(&kv[..1], 3, 5, 0), &cfg, 0).unwrap(); // 4
        assert!(matches!(
            log.append_marker(3, 4, marker(ControlType::Commit), &cfg, 0),
            Err(AppendError::Producer(
                ProducerError::InvalidProducerEpoch { .. }
            ))
        ));
        log.append_marker(3, 5, marker(ControlType::Commit), &cfg, 0)
            .unwrap(); // 5

        let c = log
            .append_marker(1, 0, marker(ControlType::Commit), &cfg, 0)
            .unwrap();
        assert_eq!(c.base_offset, 6);
        // The commit's marker is not durable yet: the LSO stays.
        assert_eq!(log.last_stable_offset(), 1);
        sync(&mut log);
        assert_eq!(
            log.last_stable_offset(),
            3,
            "producer 2's transaction is open"
        );
        assert_eq!(read_committed_batches(&log, 0).0, vec![0, 1]);

        let a = log
            .append_marker(2, 0, marker(ControlType::Abort), &cfg, 0)
            .unwrap();
        sync(&mut log);
        assert_eq!(log.last_stable_offset(), log.high_watermark());
        let aborted = AbortedTxn {
            producer_id: 2,
            first_offset: 3,
            last_offset: a.base_offset,
            last_stable_offset: a.base_offset + 1,
        };
        assert_eq!(log.aborted_transactions(), vec![aborted]);
        let (bases, got) = read_committed_batches(&log, 0);
        assert_eq!(bases, vec![0, 1, 3, 4, 5, 6, 7]);
        assert_eq!(got, vec![aborted]);
        assert_eq!(read_committed_batches(&log, 8), (vec![], vec![]));
        // A marker with no open transaction is still appended, and aborts nothing.
        log.append_marker(9, 0, marker(ControlType::Abort), &cfg, 0)
            .unwrap();
        assert_eq!(log.aborted_transactions().len(), 1);
    }

    #[test]
    fn recovery_after_a_crash_keeps_the_open_transaction_and_the_aborted_index() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LogConfig {
            segment_bytes: 200,
            ..LogConfig::default()
        };
        let kv: [KeyValue; 1] = [(Some(b"key"), Some(b"value-value"))];
        let expected_aborted;
        {
            let (mut log, _) = PartitionLog::open(dir.path()).unwrap();
            // Producer 1 aborts a transaction spanning segments; producer 2's stays open.
            for seq in 0..3 {
                log.append(&txn_batch(&kv, 1, 0, seq), &cfg, 0).unwrap();
            }
            log.append(&txn_batch(&kv, 2, 0, 0), &cfg, 0).unwrap(); // 3
            log.append_marker(1, 0, marker(ControlType::Abort), &cfg, 0)
                .unwrap(); // 4
            for seq in 1..4 {
                log.append(&txn_batch(&kv, 2, 0, seq), &cfg, 0).unwrap();
            }
            sync(&mut log);
            assert!(log.segment_count() > 2, "the test needs several segments");
            assert_eq!(log.last_stable_offset(), 3);
            expected_aborted = log.aborted_transactions();
            assert_eq!(expected_aborted.len(), 1);
            assert_eq!(
                (
                    expected_aborted[0].first_offset,
                    expected_aborted[0].last_offset
                ),
                (0, 4)
            );
            // Dropped without close: a crash.
        }
        let check = |why: &str| {
            let (mut log, _) = PartitionLog::open(dir.path()).unwrap();
            assert_eq!(log.last_stable_offset(), 3, "{why}");
            assert_eq!(log.aborted_transactions(), expected_aborted, "{why}");
            // The open transaction is still producer 2's: its abort indexes it from 3.
            log.append_marker(2, 0, marker(ControlType::Abort), &LogConfig::default(), 0)
                .unwrap();
            let last = log.aborted_transactions().last().copied().unwrap();
            assert_eq!((last.producer_id, last.first_offset), (2, 3), "{why}");
        };
        check("reopened from the snapshot");
        // The abort appended by `check` is in the file: a restart finds no open transaction.
        let (log, _) = PartitionLog::open(dir.path()).unwrap();
        assert_eq!(log.last_stable_offset(), log.high_watermark());
        drop(log);

        // Without the snapshot and the indexes (a crash right after a roll, or an older log),
        // everything is rebuilt from the whole log.
        let dir2 = tempfile::tempdir().unwrap();
        {
            let (mut log, _) = PartitionLog::open(dir2.path()).unwrap();
            for seq in 0..3 {
                log.append(&txn_batch(&kv, 1, 0, seq), &cfg, 0).unwrap();
            }
            log.append(&txn_batch(&kv, 2, 0, 0), &cfg, 0).unwrap();
            log.append_marker(1, 0, marker(ControlType::Abort), &cfg, 0)
                .unwrap();
            for seq in 1..4 {
                log.append(&txn_batch(&kv, 2, 0, seq), &cfg, 0).unwrap();
            }
            sync(&mut log);
        }
        for name in list_files(dir2.path()).unwrap() {
            if name.ends_with(".snapshot") || name.ends_with(txn::TXN_INDEX_SUFFIX) {
                fs::remove_file(dir2.path().join(name)).unwrap();
            }
        }
        let (log, _) = PartitionLog::open(dir2.path()).unwrap();
        assert_eq!(log.last_stable_offset(), 3);
        assert_eq!(log.aborted_transactions(), expected_aborted);
        assert_eq!(log.producers().open_txn_count(), 1);
    }

    #[test]
    fn compaction_drops_aborted_data_keeps_markers_and_stops_at_the_lso() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = compact_cfg();
        let (mut log, _) = PartitionLog::open(dir.path()).unwrap();
        let committed: [KeyValue; 1] = [(Some(b"k"), Some(b"committed"))];
        let aborted: [KeyValue; 1] = [(Some(b"k"), Some(b"aborted"))];
        log.append(&txn_batch(&committed, 1, 0, 0), &cfg, 0)
            .unwrap(); // 0
        log.append_marker(1, 0, marker(ControlType::Commit), &cfg, 0)
            .unwrap(); // 1
        log.append(&txn_batch(&aborted, 1, 0, 1), &cfg, 0).unwrap(); // 2
        log.append_marker(1, 0, marker(ControlType::Abort), &cfg, 0)
            .unwrap(); // 3
        for i in 0..6 {
            let other: [KeyValue; 1] = [(Some(b"other"), Some(b"value-of-other-key"))];
            let _ = i;
            log.append(&make_keyed_batch(&other, 0, None), &cfg, 0)
                .unwrap();
        }
        sync(&mut log);
        assert!(clean(&mut log, &cfg, 10).is_some());
        let records = read_all(&log);
        let values: Vec<_> = records
            .iter()
            .filter(|(_, k, _)| k.as_deref() == Some(b"k"))
            .map(|(o, _, v)| (*o, v.clone()))
            .collect();
        assert_eq!(
            values,
            vec![(0, Some(b"committed".to_vec()))],
            "the aborted write must not supersede the committed one"
        );
        // Markers stay (their control records have keys too, never compacted away).
        let mut markers = 0;
        let mut offset = 0;
        while offset < log.high_watermark() {
            let data = log.read(offset, 1 << 20, true).unwrap().execute().unwrap();
            for (_, h) in BatchWalker::new(&data) {
                markers += h.is_control() as usize;
                offset = h.next_offset();
            }
        }
        assert_eq!(markers, 2);

        // An open transaction's segments are not cleaned.
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = PartitionLog::open(dir.path()).unwrap();
        log.append(&txn_batch(&committed, 5, 0, 0), &cfg, 0)
            .unwrap();
        for _ in 0..6 {
            log.append(&make_keyed_batch(&committed, 0, None), &cfg, 0)
                .unwrap();
        }
        sync(&mut log);
        assert_eq!(log.last_stable_offset(), 0);
        assert!(log.plan_clean(&cfg, 10).is_none());
    }

    #[test]
    fn a_clean_shutdown_keeps_open_and_aborted_transactions_without_a_scan() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LogConfig::default();
        let value = vec![b'x'; 1000];
        let records: Vec<KeyValue> = (0..30).map(|_| (None, Some(&value[..]))).collect();
        let (expected_aborted, lso) = {
            let (mut log, _) = PartitionLog::open(dir.path()).unwrap();
            for seq in 0..20 {
                log.append(&txn_batch(&records, 1, 0, seq * 30), &cfg, 0)
                    .unwrap();
            }
            log.append_marker(1, 0, marker(ControlType::Abort), &cfg, 0)
                .unwrap();
            for seq in 0..20 {
                log.append(&txn_batch(&records, 2, 0, seq * 30), &cfg, 0)
                    .unwrap();
            }
            sync(&mut log);
            log.close().unwrap();
            (log.aborted_transactions(), log.last_stable_offset())
        };
        assert_eq!(expected_aborted.len(), 1);
        assert_eq!(
            lso, 601,
            "producer 2's transaction starts after the abort marker"
        );
        let (mut log, report) = PartitionLog::open_after(dir.path(), true).unwrap();
        assert!(
            report.trusted_active,
            "the segment is large enough to be trusted"
        );
        assert_eq!(log.aborted_transactions(), expected_aborted);
        assert_eq!(log.last_stable_offset(), lso);
        log.append_marker(2, 0, marker(ControlType::Commit), &cfg, 0)
            .unwrap();
        sync(&mut log);
        assert_eq!(log.last_stable_offset(), log.high_watermark());
    }
}
