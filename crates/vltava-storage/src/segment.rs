//! One segment of a partition log: a `.log` file of consecutive record batches starting at
//! `base_offset`, with a sparse offset index and a time index kept in memory and written to
//! `.index` / `.timeindex` when the segment is sealed (rolled, or at a clean shutdown).
//!
//! Index files are an optimisation only: one that is missing, torn or inconsistent with the log
//! is rebuilt by scanning the log. After a crash the active segment is rebuilt by scanning, which
//! also validates every batch (length, CRC, contiguous offsets) and truncates a torn tail. After
//! a clean shutdown an active segment of [`TRUSTED_ACTIVE_MIN_BYTES`] or more is opened as a
//! sealed one is, from its index files, and only its last batch is validated.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::batch::{self, BatchHeader, BATCH_HEADER_BYTES};
use crate::fd_cache::SegmentFile;
use crate::txn::{self, AbortedTxn, Marker};

/// An offset index entry: the batch starting at `position` has base offset
/// `segment.base_offset + rel_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub rel_offset: u32,
    pub position: u32,
}

/// A time index entry: no batch before the one with base offset `base + rel_offset` has a
/// timestamp larger than `timestamp_ms` (the running maximum, as Kafka's TimeIndex).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp_ms: i64,
    pub rel_offset: u32,
}

/// Below this size an active segment costs less to scan than its index files cost to read.
pub const TRUSTED_ACTIVE_MIN_BYTES: u64 = 1 << 20;

const INDEX_ENTRY_BYTES: usize = 8;
const TIME_ENTRY_BYTES: usize = 12;

pub fn log_file_name(base_offset: i64) -> String {
    segment_file_name(base_offset, ".log")
}

/// `{base_offset:020}{suffix}`: the name of one of a segment's files. Written digit by digit
/// because `format!` pads one `write_char` at a time, and a start-up names a file of each of
/// tens of thousands of partitions.
/// Removes the index files of the segment at `base_offset` in `dir` (before its log file is
/// replaced), if there are any.
pub(crate) fn delete_index_files(dir: &Path, base_offset: i64) {
    let _ = fs::remove_file(dir.join(segment_file_name(base_offset, ".index")));
    let _ = fs::remove_file(dir.join(segment_file_name(base_offset, ".timeindex")));
}

pub(crate) fn segment_file_name(base_offset: i64, suffix: &str) -> String {
    let Ok(mut n) = u64::try_from(base_offset) else {
        return format!("{base_offset:020}{suffix}");
    };
    let mut digits = [b'0'; 20];
    for d in digits.iter_mut().rev() {
        if n == 0 {
            break;
        }
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    let mut name = String::with_capacity(digits.len() + suffix.len());
    name.extend(digits.iter().map(|&b| char::from(b)));
    name.push_str(suffix);
    name
}

pub struct Segment {
    pub base_offset: i64,
    /// Opened on demand through the bounded descriptor cache ([`crate::fd_cache`]).
    file: SegmentFile,
    /// Whether its CRCs were checked since start-up.
    check: Arc<SegmentCheck>,
    /// The descriptor of the last write not yet handed to an fsync: kept open so that the
    /// fsync is on the descriptor that wrote (and sees its errors).
    unsynced_write: Option<Arc<File>>,
    log_path: PathBuf,
    size_bytes: u64,
    next_offset: i64,
    index: Vec<IndexEntry>,
    time_index: Vec<TimeEntry>,
    max_timestamp_ms: i64,
    offset_of_max_timestamp: i64,
    bytes_since_index_entry: u64,
    /// index.interval.bytes of the topic, as of its last append.
    index_interval_bytes: u64,
    /// Wall-clock time of the first append into this segment, for segment.ms rolls.
    first_append_ms: Option<i64>,
    /// The transactions aborted by markers in this segment, in marker order (its `.txnindex`).
    aborted: Vec<AbortedTxn>,
}

/// Whether a segment's batches have had their CRCs checked since start-up. A sealed segment
/// opened from its index files is not read at start-up; its batches are checked as reads
/// return them (never served unchecked), and once reads have checked it from the start to its
/// end it counts as verified (and may go to sockets by `sendfile` again).
#[derive(Debug)]
pub struct SegmentCheck {
    /// Bytes from the start known good; `u64::MAX` once the whole segment is.
    verified_to: std::sync::atomic::AtomicU64,
    /// Position of the first batch found corrupt, `u64::MAX` if none.
    corrupt_from: std::sync::atomic::AtomicU64,
}

/// Corrupt batches found in sealed segments since start-up (for `/metrics`).
static CORRUPT_BATCHES_FOUND: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many corrupt batches reads of sealed segments have found since start-up.
pub fn corrupt_batches_found() -> u64 {
    CORRUPT_BATCHES_FOUND.load(std::sync::atomic::Ordering::Relaxed)
}

/// A read found a stored batch whose CRC does not match: it is not served.
#[derive(Debug, thiserror::Error)]
#[error("corrupt batch at position {position} of {segment}: its CRC does not match")]
pub struct CorruptBatch {
    pub segment: PathBuf,
    pub position: u64,
}

impl SegmentCheck {
    fn verified() -> Arc<SegmentCheck> {
        Arc::new(SegmentCheck {
            verified_to: u64::MAX.into(),
            corrupt_from: u64::MAX.into(),
        })
    }
    fn unverified() -> Arc<SegmentCheck> {
        Arc::new(SegmentCheck {
            verified_to: 0.into(),
            corrupt_from: u64::MAX.into(),
        })
    }
    /// Whether the bytes up to `to` are known good.
    pub fn covers(&self, to: u64) -> bool {
        to <= self.verified_to.load(std::sync::atomic::Ordering::Acquire)
    }
    /// Records that `[from, to)` checked good: extends what is verified when it starts within it.
    pub fn checked_good(&self, from: u64, to: u64, segment_size: u64) {
        use std::sync::atomic::Ordering;
        let _ = self
            .verified_to
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                (from <= v && to > v).then_some(if to >= segment_size { u64::MAX } else { to })
            });
    }
    /// Records a corrupt batch at `position`; true the first time (to log and count it once).
    pub fn found_corrupt(&self, position: u64) -> bool {
        use std::sync::atomic::Ordering;
        let first = self.corrupt_from.fetch_min(position, Ordering::AcqRel) == u64::MAX;
        if first {
            CORRUPT_BATCHES_FOUND.fetch_add(1, Ordering::Relaxed);
        }
        first
    }
}

/// What scanning a segment found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ScanReport {
    pub batches: u64,
    /// Bytes cut from the end because they were not a whole, valid batch.
    pub truncated_bytes: u64,
    pub reason: Option<String>,
    /// Damaged ranges with valid batches after them: cut out of the segment (the batches after
    /// are kept, leaving an offset gap as a compacted log has) and saved beside it.
    pub damaged: Vec<DamagedRange>,
}

/// A damaged range of a segment found at recovery, moved out of the log into `saved_to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedRange {
    /// Where the range started in the segment as it was.
    pub position: u64,
    pub bytes: u64,
    /// The first offset after the range that the log still has.
    pub next_offset_kept: i64,
    pub saved_to: PathBuf,
    pub reason: String,
}

/// The suffix of a segment rewritten without a damaged range, before it is renamed over the
/// segment; one left by a crash is removed at start-up and the repair is done again.
pub const REPAIRED_SUFFIX: &str = ".repaired";
/// The suffix of a file holding a damaged range cut out of a segment (kept for the operator).
pub const CORRUPT_SUFFIX: &str = ".corrupt";

impl Segment {
    fn paths(dir: &Path, base_offset: i64) -> (PathBuf, PathBuf, PathBuf) {
        (
            dir.join(log_file_name(base_offset)),
            dir.join(segment_file_name(base_offset, ".index")),
            dir.join(segment_file_name(base_offset, ".timeindex")),
        )
    }

    fn empty(base_offset: i64, file: SegmentFile) -> Segment {
        Segment {
            base_offset,
            log_path: file.path().to_path_buf(),
            file,
            // Written by this process or scanned with CRC checks: see the openers.
            check: SegmentCheck::verified(),
            unsynced_write: None,
            size_bytes: 0,
            next_offset: base_offset,
            index: Vec::new(),
            time_index: Vec::new(),
            max_timestamp_ms: -1,
            offset_of_max_timestamp: -1,
            bytes_since_index_entry: 0,
            index_interval_bytes: INDEX_INTERVAL_BYTES,
            first_append_ms: None,
            aborted: Vec::new(),
        }
    }

    /// Creates a new empty segment file.
    pub fn create(dir: &Path, base_offset: i64) -> io::Result<Segment> {
        let (log_path, index_path, time_path) = Self::paths(dir, base_offset);
        // Stale index files of an earlier segment at this offset must not be trusted.
        let _ = fs::remove_file(&index_path);
        let _ = fs::remove_file(&time_path);
        let _ = fs::remove_file(txn::txn_index_path(dir, base_offset));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&log_path)?;
        Ok(Self::empty(
            base_offset,
            SegmentFile::opened(log_path, file),
        ))
    }

    fn open_file(dir: &Path, base_offset: i64) -> io::Result<Segment> {
        let log_path = dir.join(log_file_name(base_offset));
        let file = OpenOptions::new().read(true).write(true).open(&log_path)?;
        let size = file.metadata()?.len();
        let mut s = Self::empty(base_offset, SegmentFile::opened(log_path, file));
        s.size_bytes = size;
        Ok(s)
    }

    /// Opens a sealed segment: trusts its index files if they are consistent with the log,
    /// otherwise rebuilds them by scanning (without truncating anything).
    pub fn open_sealed(dir: &Path, base_offset: i64) -> io::Result<Segment> {
        let mut s = Self::open_file(dir, base_offset)?;
        // Neither path checks CRCs: reads do (see `SegmentCheck`).
        s.check = SegmentCheck::unverified();
        if s.load_indexes(dir)?.is_none() {
            tracing::info!(segment = %s.log_path.display(), "rebuilding index by scanning");
            s.scan(false, |_, _| {})?;
        }
        Ok(s)
    }

    /// Opens a cleaner's copy at `path` as the segment it will be once renamed over the one at
    /// `base_offset` in `dir`, scanning it for its indexes (no lock held: the swap only renames).
    pub(crate) fn open_replacement(
        dir: &Path,
        base_offset: i64,
        path: &Path,
    ) -> io::Result<Segment> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let size = file.metadata()?.len();
        // Pinned open until it is renamed into place (its path is where it will be).
        let file = SegmentFile::pinned(dir.join(log_file_name(base_offset)), file);
        let mut s = Self::empty(base_offset, file);
        s.size_bytes = size;
        s.scan(false, |_, _| {})?;
        Ok(s)
    }

    /// Opens the active segment without reading it: [`Segment::scan_active`] comes next.
    pub fn open_unscanned(dir: &Path, base_offset: i64) -> io::Result<Segment> {
        Self::open_file(dir, base_offset)
    }

    /// Opens the active segment after a clean shutdown. One of at least
    /// [`TRUSTED_ACTIVE_MIN_BYTES`] whose index files (written at the shutdown) agree with it and
    /// whose last batch passes its checks is trusted as a sealed segment is: `(segment, true)`.
    /// Otherwise `(segment, false)` with nothing read yet: the caller scans it with
    /// [`Segment::scan_active`].
    pub fn open_active_after_clean_shutdown(
        dir: &Path,
        base_offset: i64,
    ) -> io::Result<(Segment, bool)> {
        let mut s = Self::open_file(dir, base_offset)?;
        if s.size_bytes < TRUSTED_ACTIVE_MIN_BYTES {
            return Ok((s, false));
        }
        // Only its last batch is checked here: reads check the rest.
        s.check = SegmentCheck::unverified();
        match s.load_indexes(dir)? {
            Some(last_batch) if s.batch_is_valid_from(last_batch)? => {}
            _ => return Ok((s, false)),
        }
        // As `track` counts: the bytes from the last index entry (or the start) to the end.
        s.bytes_since_index_entry = s.size_bytes - s.index.last().map_or(0, |e| e.position as u64);
        Ok((s, true))
    }

    /// Validates the active segment batch by batch from the start (length, CRC, contiguous
    /// offsets), truncating a torn or corrupt tail and rebuilding the indexes. `on_batch` sees
    /// every valid batch (to rebuild producer state), with the marker of a control batch.
    pub fn scan_active(
        &mut self,
        on_batch: impl FnMut(&BatchHeader, Option<Marker>),
    ) -> io::Result<ScanReport> {
        let report = self.scan(true, on_batch)?;
        self.check = SegmentCheck::verified();
        Ok(report)
    }

    /// Whether the bytes from `pos` to the end are one whole batch that passes its CRC check
    /// (none at all counts as valid): a write torn by a crash would be in the last batch.
    fn batch_is_valid_from(&self, pos: u64) -> io::Result<bool> {
        if pos >= self.size_bytes {
            return Ok(true);
        }
        let mut batch = vec![0u8; (self.size_bytes - pos) as usize];
        match self.file.get()?.read_exact_at(&mut batch, pos) {
            Ok(()) => {
                Ok(batch::check_stored(&batch).is_some_and(|h| h.size_bytes() == batch.len()))
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Loads the index files if they agree with the log: the position of the last batch (the
    /// file's size when it holds none), or `None`.
    fn load_indexes(&mut self, dir: &Path) -> io::Result<Option<u64>> {
        let (_, index_path, time_path) = Self::paths(dir, self.base_offset);
        let (Ok(idx), Ok(tix)) = (fs::read(&index_path), fs::read(&time_path)) else {
            return Ok(None);
        };
        if idx.len() % INDEX_ENTRY_BYTES != 0 || tix.len() % TIME_ENTRY_BYTES != 0 {
            return Ok(None);
        }
        let mut index = Vec::with_capacity(idx.len() / INDEX_ENTRY_BYTES);
        for c in idx.chunks_exact(INDEX_ENTRY_BYTES) {
            let e = IndexEntry {
                rel_offset: u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
                position: u32::from_be_bytes([c[4], c[5], c[6], c[7]]),
            };
            let ok = index.last().is_none_or(|p: &IndexEntry| {
                e.rel_offset > p.rel_offset && e.position > p.position
            });
            if !ok || e.position as u64 >= self.size_bytes {
                return Ok(None);
            }
            index.push(e);
        }
        let mut time_index = Vec::with_capacity(tix.len() / TIME_ENTRY_BYTES);
        for c in tix.chunks_exact(TIME_ENTRY_BYTES) {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&c[0..8]);
            let e = TimeEntry {
                timestamp_ms: i64::from_be_bytes(ts),
                rel_offset: u32::from_be_bytes([c[8], c[9], c[10], c[11]]),
            };
            if time_index
                .last()
                .is_some_and(|p: &TimeEntry| e.timestamp_ms < p.timestamp_ms)
            {
                return Ok(None);
            }
            time_index.push(e);
        }
        // The last batch: walk headers from the last indexed position to the end of the file.
        let mut pos = index.last().map_or(0, |e| e.position as u64);
        let mut next = self.base_offset;
        let mut last_batch = self.size_bytes;
        while pos < self.size_bytes {
            let Some(h) = self.read_header_at(pos)? else {
                return Ok(None);
            };
            if h.base_offset < self.base_offset || pos + h.size_bytes() as u64 > self.size_bytes {
                return Ok(None);
            }
            next = h.next_offset();
            last_batch = pos;
            pos += h.size_bytes() as u64;
        }
        self.index = index;
        self.next_offset = next;
        if let Some(last) = time_index.last() {
            self.max_timestamp_ms = last.timestamp_ms;
            self.offset_of_max_timestamp = self.base_offset + last.rel_offset as i64;
        }
        self.time_index = time_index;
        Ok(Some(last_batch))
    }

    /// Scans the whole file, rebuilding the indexes. With `truncate`, validates CRCs and offset
    /// continuity and cuts the file at the first bad batch.
    fn scan(
        &mut self,
        truncate: bool,
        mut on_batch: impl FnMut(&BatchHeader, Option<Marker>),
    ) -> io::Result<ScanReport> {
        let mut report = ScanReport::default();
        let file_len = self.size_bytes;
        self.size_bytes = 0;
        self.next_offset = self.base_offset;
        self.index.clear();
        self.time_index.clear();
        self.max_timestamp_ms = -1;
        self.offset_of_max_timestamp = -1;
        self.bytes_since_index_entry = 0;
        let mut reader = ScanReader::default();
        let mut file = self.file.get()?;
        let mut pos = 0u64;
        let mut file_len = file_len;
        // Where a damaged range was cut out (now or at an earlier start), the batch after it
        // starts past the expected offset: those offsets are named by the `.corrupt` files.
        let mut gaps_to = if truncate {
            self.recorded_gaps()
        } else {
            Vec::new()
        };
        while pos < file_len {
            let bad = |why: String| Some(why);
            let header = reader
                .get(&file, file_len, pos, BATCH_HEADER_BYTES)?
                .and_then(|b| BatchHeader::parse(b).ok())
                .filter(|h| h.magic == 2);
            let problem = match header {
                None => bad(format!("torn batch header at position {pos}")),
                Some(h) if pos + h.size_bytes() as u64 > file_len => bad(format!(
                    "batch at position {pos} claims {} bytes, only {} remain",
                    h.size_bytes(),
                    file_len - pos
                )),
                Some(h)
                    if truncate
                        && (h.base_offset < self.next_offset
                            || (h.base_offset != self.next_offset
                                && !gaps_to.contains(&h.base_offset))) =>
                {
                    bad(format!(
                        "batch at position {pos} has offset {} where {} was expected",
                        h.base_offset, self.next_offset
                    ))
                }
                Some(h) => {
                    let valid = if truncate {
                        reader
                            .get(&file, file_len, pos, h.size_bytes())?
                            .is_some_and(|b| batch::check_stored(b).is_some())
                    } else {
                        true
                    };
                    if valid {
                        let marker = if h.is_control() {
                            reader
                                .get(&file, file_len, pos, h.size_bytes())?
                                .and_then(|b| txn::parse_marker(b, &h))
                        } else {
                            None
                        };
                        self.track(&h, pos);
                        self.size_bytes = pos + h.size_bytes() as u64;
                        on_batch(&h, marker);
                        report.batches += 1;
                        pos += h.size_bytes() as u64;
                        None
                    } else {
                        bad(format!("CRC mismatch in batch at position {pos}"))
                    }
                }
            };
            if let Some(why) = problem {
                if truncate {
                    if let Some(next) = self.find_valid_batch(&mut reader, file_len, pos + 1)? {
                        let damage = self.cut_out(pos, next, file_len, why)?;
                        tracing::error!(
                            segment = %self.log_path.display(),
                            position = damage.position,
                            bytes = damage.bytes,
                            next_offset_kept = damage.next_offset_kept,
                            saved_to = %damage.saved_to.display(),
                            reason = %damage.reason,
                            "damaged batches in the middle of a segment: cut out and saved beside it; the valid batches after them are kept"
                        );
                        gaps_to.push(damage.next_offset_kept);
                        report.damaged.push(damage);
                        file_len -= next - pos;
                        reader = ScanReader::default();
                        file = self.file.get()?;
                        continue;
                    }
                    report.truncated_bytes = file_len - pos;
                    report.reason = Some(why);
                    file.set_len(pos)?;
                    file.sync_all()?;
                }
                break;
            }
        }
        Ok(report)
    }

    /// The position of the first whole batch at or after `from` that passes its CRC check and
    /// continues the log (offset at least the next one expected), if any. A linear search:
    /// recovery only, after a damaged batch.
    fn find_valid_batch(
        &self,
        reader: &mut ScanReader,
        file_len: u64,
        from: u64,
    ) -> io::Result<Option<u64>> {
        let file = self.file.get()?;
        let mut p = from;
        while p + BATCH_HEADER_BYTES as u64 <= file_len {
            let plausible = reader
                .get(&file, file_len, p, BATCH_HEADER_BYTES)?
                .and_then(|b| BatchHeader::parse(b).ok())
                .filter(|h| {
                    h.magic == 2
                        && h.base_offset >= self.next_offset
                        && h.records_count > 0
                        && p + h.size_bytes() as u64 <= file_len
                });
            if let Some(h) = plausible {
                let valid = reader
                    .get(&file, file_len, p, h.size_bytes())?
                    .is_some_and(|b| batch::check_stored(b).is_some());
                if valid {
                    return Ok(Some(p));
                }
            }
            p += 1;
        }
        Ok(None)
    }

    /// The offsets at which this segment's log resumes after a damaged range cut out at an
    /// earlier start (`<segment>.log.<offset>.corrupt` beside it).
    fn recorded_gaps(&self) -> Vec<i64> {
        let (Some(dir), Some(name)) = (self.log_path.parent(), self.log_path.file_name()) else {
            return Vec::new();
        };
        let prefix = format!("{}.", name.to_string_lossy());
        let Ok(entries) = fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.strip_prefix(&prefix)?
                    .strip_suffix(CORRUPT_SUFFIX)?
                    .parse::<i64>()
                    .ok()
            })
            .collect()
    }

    /// Moves the bytes `[from, to)` of the segment (of `file_len` bytes) into a `.corrupt` file
    /// beside it and rewrites the segment without them: the copy is written and fsynced as
    /// `.repaired`, then renamed over the segment and the directory fsynced, so a crash leaves
    /// the old segment (the repair is redone) or the new one.
    fn cut_out(
        &mut self,
        from: u64,
        to: u64,
        file_len: u64,
        reason: String,
    ) -> io::Result<DamagedRange> {
        let name = self
            .log_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dir = self
            .log_path
            .parent()
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let next_offset_kept = self
            .read_header_at(to)?
            .map_or(self.next_offset, |h| h.base_offset);
        // Named by the offset after the gap, which later scans accept as a gap.
        let saved_to = dir.join(format!("{name}.{next_offset_kept}{CORRUPT_SUFFIX}"));
        let repaired = dir.join(format!("{name}{REPAIRED_SUFFIX}"));
        let copy = |out: &File, src_from: u64, len: u64, dst_at: u64| -> io::Result<()> {
            let mut buf = vec![0u8; SCAN_CHUNK_BYTES];
            let mut done = 0u64;
            while done < len {
                let n = (len - done).min(buf.len() as u64) as usize;
                self.file
                    .get()?
                    .read_exact_at(&mut buf[..n], src_from + done)?;
                out.write_all_at(&buf[..n], dst_at + done)?;
                done += n as u64;
            }
            Ok(())
        };
        {
            let out = File::create(&saved_to)?;
            copy(&out, from, to - from, 0)?;
            out.sync_all()?;
        }
        {
            let out = File::create(&repaired)?;
            copy(&out, 0, from, 0)?;
            copy(&out, to, file_len - to, from)?;
            out.sync_all()?;
        }
        fs::rename(&repaired, &self.log_path)?;
        crate::durable::sync_dir(&dir)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.log_path)?;
        self.file.forget();
        self.file = SegmentFile::opened(self.log_path.clone(), file);
        Ok(DamagedRange {
            position: from,
            bytes: to - from,
            next_offset_kept,
            saved_to,
            reason,
        })
    }

    pub fn read_header_at(&self, pos: u64) -> io::Result<Option<BatchHeader>> {
        let mut hdr = [0u8; BATCH_HEADER_BYTES];
        match self.file.get()?.read_exact_at(&mut hdr, pos) {
            Ok(()) => Ok(BatchHeader::parse(&hdr).ok().filter(|h| h.magic == 2)),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sets how many bytes of batches lie between two offset-index entries from now on
    /// (index.interval.bytes; 0 indexes every batch).
    pub fn set_index_interval_bytes(&mut self, bytes: u64) {
        self.index_interval_bytes = bytes;
    }

    /// Updates in-memory indexes for a batch at `pos` (already in the file).
    fn track(&mut self, h: &BatchHeader, pos: u64) {
        let rel = (h.base_offset - self.base_offset) as u32;
        if self.bytes_since_index_entry >= self.index_interval_bytes {
            self.index.push(IndexEntry {
                rel_offset: rel,
                position: pos as u32,
            });
            self.bytes_since_index_entry = 0;
            if self.max_timestamp_ms >= 0
                && self
                    .time_index
                    .last()
                    .is_none_or(|t| t.timestamp_ms < self.max_timestamp_ms)
            {
                self.time_index.push(TimeEntry {
                    timestamp_ms: self.max_timestamp_ms,
                    rel_offset: (self.offset_of_max_timestamp - self.base_offset) as u32,
                });
            }
        }
        self.bytes_since_index_entry += h.size_bytes() as u64;
        if h.max_timestamp > self.max_timestamp_ms {
            self.max_timestamp_ms = h.max_timestamp;
            self.offset_of_max_timestamp = h.base_offset;
        }
        self.next_offset = h.next_offset();
    }

    /// Appends one validated batch whose base offset is already set, given as two consecutive
    /// parts (the rewritten header and the records).
    pub fn append_parts(
        &mut self,
        head: &[u8],
        rest: &[u8],
        h: &BatchHeader,
        now_ms: i64,
    ) -> io::Result<()> {
        let pos = self.size_bytes;
        let file = self.file.get()?;
        if let Err(e) = write_all_parts_at(&file, head, rest, pos) {
            // Leave no partial batch behind for readers or for recovery to find.
            let _ = file.set_len(pos);
            return Err(e);
        }
        self.unsynced_write = Some(file);
        self.track(h, pos);
        self.size_bytes = pos + (head.len() + rest.len()) as u64;
        self.first_append_ms.get_or_insert(now_ms);
        Ok(())
    }

    /// Writes the index files (at a roll or a clean shutdown). Not synced: a torn index is
    /// detected and rebuilt at the next start.
    pub fn write_indexes(&self) -> io::Result<()> {
        let dir = self.log_path.parent().unwrap_or(Path::new("."));
        let (_, index_path, time_path) = Self::paths(dir, self.base_offset);
        let mut idx = Vec::with_capacity(self.index.len() * INDEX_ENTRY_BYTES);
        for e in &self.index {
            idx.extend_from_slice(&e.rel_offset.to_be_bytes());
            idx.extend_from_slice(&e.position.to_be_bytes());
        }
        let mut tix = Vec::with_capacity((self.time_index.len() + 1) * TIME_ENTRY_BYTES);
        let mut entries = self.time_index.clone();
        if self.max_timestamp_ms >= 0
            && entries
                .last()
                .is_none_or(|t| t.timestamp_ms < self.max_timestamp_ms)
        {
            entries.push(TimeEntry {
                timestamp_ms: self.max_timestamp_ms,
                rel_offset: (self.offset_of_max_timestamp - self.base_offset) as u32,
            });
        }
        for e in &entries {
            tix.extend_from_slice(&e.timestamp_ms.to_be_bytes());
            tix.extend_from_slice(&e.rel_offset.to_be_bytes());
        }
        fs::write(index_path, idx)?;
        fs::write(time_path, tix)
    }

    /// Removes the segment's files.
    pub fn delete_files(&self) -> io::Result<()> {
        let dir = self.log_path.parent().unwrap_or(Path::new("."));
        let (log, index, time) = Self::paths(dir, self.base_offset);
        let _ = fs::remove_file(index);
        let _ = fs::remove_file(time);
        let _ = fs::remove_file(txn::txn_index_path(dir, self.base_offset));
        fs::remove_file(log)
    }

    /// The transactions aborted by markers in this segment, in marker order.
    pub fn aborted(&self) -> &[AbortedTxn] {
        &self.aborted
    }
    /// Records a transaction aborted by a marker just appended to this segment.
    pub fn push_aborted(&mut self, e: AbortedTxn) {
        // Invariant: entries are in marker order, and a marker lies in this segment.
        assert!(
            e.last_offset >= self.base_offset
                && e.last_offset < self.next_offset
                && self
                    .aborted
                    .last()
                    .is_none_or(|p| p.last_offset < e.last_offset),
            "aborted transaction out of order"
        );
        self.aborted.push(e);
    }
    pub fn set_aborted(&mut self, entries: Vec<AbortedTxn>) {
        self.aborted = entries;
    }
    /// Loads the segment's `.txnindex`; false when it is missing or invalid.
    pub fn load_txn_index(&mut self, dir: &Path) -> bool {
        match txn::read_index(dir, self.base_offset) {
            Some(entries) => {
                self.aborted = entries;
                true
            }
            None => false,
        }
    }
    /// Writes the segment's `.txnindex` (not synced); the file is returned for the fsync.
    pub fn write_txn_index(&self) -> io::Result<File> {
        let dir = self.log_path.parent().unwrap_or(Path::new("."));
        txn::write_index(dir, self.base_offset, &self.aborted)
    }

    /// Visits every batch of a sealed segment in order, with the marker of each control batch
    /// (whose CRC is checked before it is believed). Stops at the first unreadable header.
    /// Recovery only: rebuilding producer state and aborted transactions from the log.
    pub fn replay(&self, mut f: impl FnMut(&BatchHeader, Option<Marker>)) -> io::Result<()> {
        let mut pos = 0u64;
        while pos < self.size_bytes {
            let Some(h) = self.read_header_at(pos)? else {
                break;
            };
            if pos + h.size_bytes() as u64 > self.size_bytes {
                break;
            }
            let marker = if h.is_control() && h.size_bytes() <= 4096 {
                let mut buf = vec![0u8; h.size_bytes()];
                self.read_at(&mut buf, pos)?;
                batch::check_stored(&buf).and_then(|h| txn::parse_marker(&buf, &h))
            } else {
                None
            };
            f(&h, marker);
            pos += h.size_bytes() as u64;
        }
        Ok(())
    }

    /// Whether its batches' CRCs were checked (shared with reads planned from it).
    pub fn check(&self) -> &Arc<SegmentCheck> {
        &self.check
    }

    /// The open file (opened again if its descriptor was closed).
    pub fn file(&self) -> io::Result<Arc<File>> {
        self.file.get()
    }
    /// The handle of the file, to open it later without the log (the cleaner).
    pub fn file_handle(&self) -> &SegmentFile {
        &self.file
    }
    /// The cleaner's copy is now at its path: its descriptor joins the cache.
    pub(crate) fn unpin(&mut self) {
        self.file.unpin();
    }
    /// The descriptor written since the last call, for the fsync that makes it durable.
    pub fn take_unsynced_write(&mut self) -> Option<Arc<File>> {
        self.unsynced_write.take()
    }
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }
    pub fn is_empty(&self) -> bool {
        self.size_bytes == 0
    }
    pub fn max_timestamp_ms(&self) -> i64 {
        self.max_timestamp_ms
    }
    pub fn offset_of_max_timestamp(&self) -> i64 {
        self.offset_of_max_timestamp
    }
    pub fn first_append_ms(&self) -> Option<i64> {
        self.first_append_ms
    }
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Position to start scanning from for `offset`: the last index entry at or below it.
    fn index_floor(&self, offset: i64) -> u64 {
        let rel = offset - self.base_offset;
        let i = self.index.partition_point(|e| (e.rel_offset as i64) <= rel);
        if i == 0 {
            0
        } else {
            self.index[i - 1].position as u64
        }
    }

    /// Finds the first batch whose last offset is at least `offset`, scanning no further than
    /// `limit_bytes`. Returns its position and header.
    pub fn find_batch(
        &self,
        offset: i64,
        limit_bytes: u64,
    ) -> io::Result<Option<(u64, BatchHeader)>> {
        let mut pos = self.index_floor(offset);
        while pos < limit_bytes {
            let Some(h) = self.read_header_at(pos)? else {
                return Ok(None);
            };
            if h.last_offset() >= offset {
                return Ok(Some((pos, h)));
            }
            pos += h.size_bytes() as u64;
        }
        Ok(None)
    }

    /// Finds the first batch whose max timestamp is at least `ts`, within `limit_bytes`.
    pub fn find_batch_by_timestamp(
        &self,
        ts: i64,
        limit_bytes: u64,
    ) -> io::Result<Option<(u64, BatchHeader)>> {
        if self.max_timestamp_ms < ts {
            return Ok(None);
        }
        // The last time entry below `ts` bounds where the answer can start.
        let i = self.time_index.partition_point(|e| e.timestamp_ms < ts);
        let start_offset = if i == 0 {
            self.base_offset
        } else {
            self.base_offset + self.time_index[i - 1].rel_offset as i64
        };
        let mut pos = self.index_floor(start_offset);
        while pos < limit_bytes {
            let Some(h) = self.read_header_at(pos)? else {
                return Ok(None);
            };
            if h.max_timestamp >= ts {
                return Ok(Some((pos, h)));
            }
            pos += h.size_bytes() as u64;
        }
        Ok(None)
    }

    pub fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        self.file.get()?.read_exact_at(buf, pos)
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // Its cached descriptor closes with it (users of an `Arc<File>` keep theirs).
        self.file.forget();
    }
}

/// Bytes of log between two offset index entries (Kafka's index.interval.bytes default).
pub const INDEX_INTERVAL_BYTES: u64 = 4096;

/// Most bytes a segment scan reads at once.
const SCAN_CHUNK_BYTES: usize = 1024 * 1024;

/// Reads a segment front to back in chunks of up to [`SCAN_CHUNK_BYTES`] (a batch larger than
/// that is read whole), so that scanning a small active segment at start-up costs one `pread`
/// instead of two per batch.
#[derive(Default)]
struct ScanReader {
    buf: Vec<u8>,
    /// File position of `buf[0]`.
    start: u64,
}

impl ScanReader {
    /// `len` bytes at `pos`, or `None` when the file (of `file_len` bytes) ends first.
    fn get(
        &mut self,
        file: &File,
        file_len: u64,
        pos: u64,
        len: usize,
    ) -> io::Result<Option<&[u8]>> {
        let end = pos.saturating_add(len as u64);
        if end > file_len {
            return Ok(None);
        }
        if pos < self.start || end > self.start + self.buf.len() as u64 {
            let want = (len.max(SCAN_CHUNK_BYTES) as u64).min(file_len - pos) as usize;
            self.buf.resize(want, 0);
            file.read_exact_at(&mut self.buf, pos)?;
            self.start = pos;
        }
        let off = (pos - self.start) as usize;
        Ok(Some(&self.buf[off..off + len]))
    }
}

/// Writes `head` then `rest` at `pos`: one `pwritev` in the common case, then what a short
/// write left.
fn write_all_parts_at(file: &File, head: &[u8], rest: &[u8], pos: u64) -> io::Result<()> {
    let written = loop {
        match rustix::io::pwritev(file, &[io::IoSlice::new(head), io::IoSlice::new(rest)], pos) {
            Ok(n) => break n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    let total = head.len() + rest.len();
    if written >= total {
        return Ok(());
    }
    if written < head.len() {
        file.write_all_at(&head[written..], pos + written as u64)?;
        file.write_all_at(rest, pos + head.len() as u64)
    } else {
        let done = written - head.len();
        file.write_all_at(&rest[done..], pos + written as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_file_names_are_twenty_digits_and_the_suffix() {
        for base in [0, 7, 1_200, 4_294_967_296, i64::MAX, -1] {
            assert_eq!(
                segment_file_name(base, ".index"),
                format!("{base:020}.index")
            );
        }
        assert_eq!(log_file_name(42), "00000000000000000042.log");
    }
}
