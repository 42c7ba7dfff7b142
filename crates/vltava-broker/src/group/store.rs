//! Durable group state: an append-only file of [`StoreRecord`]s (length, CRC-32C, JSON), fsynced
//! before the request that produced them is answered, replayed at start-up, and rewritten as a
//! snapshot when it grows. A torn or corrupt tail (a crash mid-write) is cut off at start-up.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::consumer::ConsumerGroups;
use super::coordinator::{Coordinator, StoreRecord};

const FILE: &str = "groups.log";
/// Rewrite the file when it is this many times larger than a fresh snapshot would be.
const COMPACT_FACTOR: u64 = 4;
const MIN_COMPACT_BYTES: u64 = 1 << 20;

pub struct GroupStore {
    path: PathBuf,
    file: File,
    size_bytes: u64,
    snapshot_bytes: u64,
}

fn encode(r: &StoreRecord) -> io::Result<Vec<u8>> {
    let json = serde_json::to_vec(r).map_err(io::Error::other)?;
    let mut out = Vec::with_capacity(8 + json.len());
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(&json).to_be_bytes());
    out.extend_from_slice(&json);
    Ok(out)
}

impl GroupStore {
    /// Opens the store in `dir`, returning it and the records to replay.
    pub fn open(dir: &Path) -> io::Result<(GroupStore, Vec<StoreRecord>)> {
        fs::create_dir_all(dir)?;
        let path = dir.join(FILE);
        let mut bytes = Vec::new();
        if let Ok(mut f) = File::open(&path) {
            f.read_to_end(&mut bytes)?;
        }
        let mut records = Vec::new();
        let mut pos = 0usize;
        while pos + 8 <= bytes.len() {
            let len =
                u32::from_be_bytes([bytes[pos], bytes[pos + 1], bytes[pos + 2], bytes[pos + 3]])
                    as usize;
            let crc = u32::from_be_bytes([
                bytes[pos + 4],
                bytes[pos + 5],
                bytes[pos + 6],
                bytes[pos + 7],
            ]);
            let Some(body) = bytes.get(pos + 8..pos + 8 + len) else {
                break;
            };
            if crc32c::crc32c(body) != crc {
                break;
            }
            match serde_json::from_slice::<StoreRecord>(body) {
                Ok(r) => records.push(r),
                Err(_) => break,
            }
            pos += 8 + len;
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        if pos < bytes.len() {
            tracing::warn!(file = %path.display(), cut_bytes = bytes.len() - pos, "truncated a torn tail of the group store");
            file.set_len(pos as u64)?;
            file.sync_all()?;
        }
        let store = GroupStore {
            path,
            file,
            size_bytes: pos as u64,
            snapshot_bytes: pos as u64,
        };
        Ok((store, records))
    }

    /// Appends records and fsyncs them.
    pub fn append(&mut self, records: &[StoreRecord]) -> io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for r in records {
            buf.extend_from_slice(&encode(r)?);
        }
        self.file.write_all(&buf)?;
        self.file.sync_data()?;
        self.size_bytes += buf.len() as u64;
        Ok(())
    }

    /// Rewrites the file as a snapshot of `c` when it has grown well past one.
    pub fn maybe_compact(&mut self, c: &Coordinator, cg: &ConsumerGroups) -> io::Result<()> {
        if self.size_bytes < MIN_COMPACT_BYTES.max(self.snapshot_bytes * COMPACT_FACTOR) {
            return Ok(());
        }
        let mut buf = Vec::new();
        for g in c.groups() {
            buf.extend_from_slice(&encode(&StoreRecord::Metadata {
                group: g.group_id.clone(),
                generation_id: g.generation_id,
                protocol_type: g.protocol_type.clone(),
                protocol_name: g.protocol_name.clone(),
                leader: g.leader.clone(),
                members: g.members.values().cloned().collect(),
            })?);
            for ((topic, partition), v) in &g.offsets {
                buf.extend_from_slice(&encode(&StoreRecord::Offset {
                    group: g.group_id.clone(),
                    topic: topic.clone(),
                    partition: *partition,
                    value: Some(v.clone()),
                })?);
            }
        }
        for snap in cg.snapshots() {
            buf.extend_from_slice(&encode(&StoreRecord::ConsumerGroup(snap))?);
        }
        let tmp = self.path.with_extension("tmp");
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&buf)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        self.size_bytes = buf.len() as u64;
        self.snapshot_bytes = buf.len() as u64;
        Ok(())
    }
}
