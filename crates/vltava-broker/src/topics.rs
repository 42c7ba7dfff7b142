//! Topics and their partitions, and the metadata file that makes them survive restarts.
//!
//! `<data-dir>/meta.json` holds the cluster id and, per topic, its id, partition count and config
//! overrides; it is replaced atomically (write, fsync, rename, fsync the directory) on every
//! change. Partition logs live in `<data-dir>/<topic>-<partition>/`, as in Kafka.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use uuid::Uuid;
use vltava_storage::log::list_files;
use vltava_storage::PartitionLog;

use crate::topic_config::TopicConfig;

pub const MAX_TOPIC_NAME_LEN: usize = 249;
/// Upper bound on partitions per topic, so a request cannot make the broker open millions of files.
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 10_000;

/// Kafka's topic name rule: 1–249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("Topic name is illegal, it can't be empty".into());
    }
    if name == "." || name == ".." {
        return Err("Topic name cannot be \".\" or \"..\"".into());
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return Err(format!(
            "Topic name is illegal, it can't be longer than {MAX_TOPIC_NAME_LEN} characters, topic name: {name}"
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(format!(
            "Topic name \"{name}\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    Ok(())
}

pub struct Partition {
    pub topic: String,
    pub index: i32,
    log: Mutex<PartitionLog>,
    /// The high watermark, published after each fsync; produce waits and fetch reads use it.
    hw: watch::Sender<i64>,
    /// Set while the partition is queued for the syncer.
    pub(crate) sync_queued: std::sync::atomic::AtomicBool,
}

impl Partition {
    fn open(
        dir: &Path,
        topic: &str,
        index: i32,
        clean: bool,
        listed: Option<Vec<String>>,
        trusted: Option<&AtomicUsize>,
    ) -> io::Result<Arc<Partition>> {
        let (log, report) = match listed {
            // The listing recorded at shutdown saves one per partition; should it not match
            // the directory (someone changed it while the broker was stopped), list it.
            Some(files) => PartitionLog::open_listed(dir, clean, Some(files))
                .or_else(|_| PartitionLog::open_after(dir, false))?,
            None => PartitionLog::open_after(dir, clean)?,
        };
        if let Some(count) = trusted.filter(|_| report.trusted_active) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        if report.active.truncated_bytes > 0 {
            tracing::warn!(
                topic,
                partition = index,
                truncated_bytes = report.active.truncated_bytes,
                reason = report.active.reason.as_deref().unwrap_or(""),
                "recovered partition by truncating its tail"
            );
        }
        let (hw, _) = watch::channel(log.high_watermark());
        Ok(Arc::new(Partition {
            topic: topic.to_string(),
            index,
            log: Mutex::new(log),
            hw,
            sync_queued: std::sync::atomic::AtomicBool::new(false),
        }))
    }

    /// Locks the log. Critical sections are short: page-cache writes and small reads, never an
    /// fsync. A poisoned lock (a panic elsewhere) still guards a consistent log, so it is taken.
    pub fn log(&self) -> MutexGuard<'_, PartitionLog> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn high_watermark(&self) -> i64 {
        *self.hw.borrow()
    }
    pub fn subscribe_hw(&self) -> watch::Receiver<i64> {
        self.hw.subscribe()
    }
    pub(crate) fn publish_hw(&self, hw: i64) {
        self.hw.send_if_modified(|cur| {
            if hw > *cur {
                *cur = hw;
                true
            } else {
                false
            }
        });
    }
}

pub struct Topic {
    pub name: String,
    pub id: Uuid,
    pub config: TopicConfig,
    pub partitions: Vec<Arc<Partition>>,
}

impl Topic {
    /// Partition `index`, if the topic has it (a peer's index may be anything).
    pub fn partition(&self, index: i32) -> Option<&Arc<Partition>> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.get(i))
    }
}

#[derive(Serialize, Deserialize, Default)]
struct MetaFile {
    cluster_id: String,
    topics: BTreeMap<String, TopicMeta>,
}

#[derive(Serialize, Deserialize, Clone)]
struct TopicMeta {
    id: Uuid,
    partitions: i32,
    #[serde(default)]
    config: TopicConfig,
}

/// All topics. Reads take a snapshot (`Arc<Topic>`); changes go through `&mut self` under the
/// broker's admin lock and are persisted before they are visible.
pub struct TopicRegistry {
    data_dir: PathBuf,
    pub cluster_id: String,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Serialises changes (create, delete, alter, grow) so that each sees the previous one.
    admin: Mutex<()>,
}

fn partition_dir(data_dir: &Path, topic: &str, p: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{p}"))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The marker of a clean shutdown (Kafka's `.kafka_cleanshutdown`).
const CLEAN_SHUTDOWN_FILE: &str = ".clean-shutdown";

/// Threads that open (recover) partitions at start-up: opening is mostly waiting on the file
/// system (directory listings, index reads, an fdatasync each), so more threads than cores help.
const OPEN_THREADS: usize = 8;

/// Opens every partition of `topics` on `OPEN_THREADS` threads; the result is in topic order.
/// What a clean shutdown records in its marker: the files of every partition directory, so that
/// the next start needs no directory listing per partition.
#[derive(Serialize, Deserialize, Default)]
struct CleanShutdown {
    partition_files: HashMap<String, Vec<String>>,
}

/// One partition to open: topic index, topic name, partition, its recorded file names (taken by
/// the thread that opens it).
type OpenJob<'a> = (usize, &'a str, i32, Mutex<Option<Vec<String>>>);

fn open_partitions(
    data_dir: &Path,
    topics: &BTreeMap<String, TopicMeta>,
    clean: bool,
    mut listed: HashMap<String, Vec<String>>,
    trusted: &AtomicUsize,
) -> io::Result<Vec<Vec<Arc<Partition>>>> {
    let jobs: Vec<OpenJob<'_>> = topics
        .iter()
        .enumerate()
        .flat_map(|(t, (name, tm))| (0..tm.partitions).map(move |p| (t, name.as_str(), p)))
        .map(|(t, name, p)| {
            let files = listed.remove(&format!("{name}-{p}"));
            (t, name, p, Mutex::new(files))
        })
        .collect();
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<io::Result<Arc<Partition>>>>> =
        jobs.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..OPEN_THREADS.min(jobs.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((_, name, p, files)) = jobs.get(i) else {
                    return;
                };
                let files = files.lock().unwrap_or_else(|e| e.into_inner()).take();
                let dir = partition_dir(data_dir, name, *p);
                let r = Partition::open(&dir, name, *p, clean, files, Some(trusted));
                *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
            });
        }
    });
    let mut out: Vec<Vec<Arc<Partition>>> = topics.values().map(|_| Vec::new()).collect();
    for ((t, _, _, _), slot) in jobs.iter().zip(slots) {
        let opened = slot
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .unwrap_or_else(|| Err(io::Error::other("a partition was not opened")))?;
        out[*t].push(opened);
    }
    Ok(out)
}

impl TopicRegistry {
    /// Records that every partition was fsynced and closed (the last thing a clean shutdown
    /// does), so the next start skips the per-partition fdatasync.
    pub fn mark_clean_shutdown(&self) -> io::Result<()> {
        let mut marker = CleanShutdown::default();
        for t in self.read().values() {
            for p in &t.partitions {
                let dir = partition_dir(&self.data_dir, &t.name, p.index);
                marker
                    .partition_files
                    .insert(format!("{}-{}", t.name, p.index), list_files(&dir)?);
            }
        }
        let bytes = serde_json::to_vec(&marker).map_err(io::Error::other)?;
        // The index files and producer snapshots the partitions wrote when closing reach the
        // disk before the marker that tells the next start to trust them.
        rustix::fs::syncfs(File::open(&self.data_dir)?).map_err(io::Error::from)?;
        let mut f = File::create(self.data_dir.join(CLEAN_SHUTDOWN_FILE))?;
        std::io::Write::write_all(&mut f, &bytes)?;
        f.sync_all()?;
        File::open(&self.data_dir)?.sync_all()
    }

    /// Loads the metadata and opens (recovers) every partition.
    pub fn open(data_dir: &Path) -> io::Result<TopicRegistry> {
        fs::create_dir_all(data_dir)?;
        let meta_path = data_dir.join("meta.json");
        let (meta, fresh): (MetaFile, bool) = match fs::read(&meta_path) {
            Ok(bytes) => (
                serde_json::from_slice(&bytes).map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{} is not valid: {e}", meta_path.display()),
                    )
                })?,
                false,
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound => (
                MetaFile {
                    cluster_id: new_cluster_id(),
                    topics: BTreeMap::new(),
                },
                true,
            ),
            Err(e) => return Err(e),
        };
        // Written at a clean shutdown, removed before anything is served: its presence means
        // every partition was fsynced and closed.
        let marker = data_dir.join(CLEAN_SHUTDOWN_FILE);
        let (clean, listed) = match fs::read(&marker) {
            // An unreadable or older (empty) marker still says the shutdown was clean.
            Ok(bytes) => (
                true,
                serde_json::from_slice::<CleanShutdown>(&bytes)
                    .map(|m| m.partition_files)
                    .unwrap_or_default(),
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound => (false, HashMap::new()),
            Err(e) => return Err(e),
        };
        let trusted = AtomicUsize::new(0);
        let opened = open_partitions(data_dir, &meta.topics, clean, listed, &trusted)?;
        tracing::info!(
            partitions = opened.iter().map(Vec::len).sum::<usize>(),
            clean_shutdown = clean,
            active_segments_opened_from_their_indexes = trusted.load(Ordering::Relaxed),
            "opened the partitions"
        );
        if clean {
            fs::remove_file(&marker)?;
            File::open(data_dir)?.sync_all()?;
        }
        let mut topics = BTreeMap::new();
        for ((name, tm), partitions) in meta.topics.iter().zip(opened) {
            topics.insert(
                name.clone(),
                Arc::new(Topic {
                    name: name.clone(),
                    id: tm.id,
                    config: tm.config.clone(),
                    partitions,
                }),
            );
        }
        let reg = TopicRegistry {
            data_dir: data_dir.to_path_buf(),
            cluster_id: meta.cluster_id,
            topics: RwLock::new(topics),
            admin: Mutex::new(()),
        };
        // A new data directory records its cluster id; an existing meta.json is already what
        // the registry holds.
        if fresh {
            reg.persist()?;
        }
        reg.remove_orphan_dirs();
        Ok(reg)
    }

    /// Partition directories whose topic is gone (a crash during a delete) are removed.
    fn remove_orphan_dirs(&self) {
        let topics = self.read();
        let Ok(entries) = fs::read_dir(&self.data_dir) else {
            return;
        };
        for entry in entries.flatten() {
            // The type comes with the directory listing (no stat per entry).
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let name = entry.file_name().to_string_lossy().to_string();
            let Some((topic, p)) = name.rsplit_once('-') else {
                continue;
            };
            let Ok(p) = p.parse::<i32>() else { continue };
            let known = topics
                .get(topic)
                .is_some_and(|t| (p as usize) < t.partitions.len());
            if !known {
                tracing::info!(dir = %entry.path().display(), "removing partition directory of a deleted topic");
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }

    fn admin_lock(&self) -> MutexGuard<'_, ()> {
        self.admin.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Topic>>> {
        self.topics.read().unwrap_or_else(|p| p.into_inner())
    }
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<Topic>>> {
        self.topics.write().unwrap_or_else(|p| p.into_inner())
    }

    fn persist_map(&self, map: &BTreeMap<String, Arc<Topic>>) -> io::Result<()> {
        let meta = MetaFile {
            cluster_id: self.cluster_id.clone(),
            topics: map
                .iter()
                .map(|(k, t)| {
                    (
                        k.clone(),
                        TopicMeta {
                            id: t.id,
                            partitions: t.partitions.len() as i32,
                            config: t.config.clone(),
                        },
                    )
                })
                .collect(),
        };
        let bytes = serde_json::to_vec_pretty(&meta).map_err(io::Error::other)?;
        write_atomically(&self.data_dir.join("meta.json"), &bytes)
    }

    fn persist(&self) -> io::Result<()> {
        self.persist_map(&self.read())
    }

    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.read().get(name).cloned()
    }
    pub fn get_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.read().values().find(|t| t.id == id).cloned()
    }
    pub fn all(&self) -> Vec<Arc<Topic>> {
        self.read().values().cloned().collect()
    }

    /// Creates a topic (name and config already validated). Errors if it exists.
    pub fn create(
        &self,
        name: &str,
        partitions: i32,
        config: TopicConfig,
    ) -> io::Result<Option<Arc<Topic>>> {
        let _admin = self.admin_lock();
        if self.read().contains_key(name) {
            return Ok(None);
        }
        let mut parts = Vec::with_capacity(partitions as usize);
        for p in 0..partitions {
            let dir = partition_dir(&self.data_dir, name, p);
            // A leftover directory from an earlier topic of this name holds nothing of ours.
            let _ = fs::remove_dir_all(&dir);
            parts.push(Partition::open(&dir, name, p, false, None, None)?);
        }
        let topic = Arc::new(Topic {
            name: name.to_string(),
            id: Uuid::new_v4(),
            config,
            partitions: parts,
        });
        let mut map = self.write();
        map.insert(name.to_string(), topic.clone());
        if let Err(e) = self.persist_map(&map) {
            map.remove(name);
            return Err(e);
        }
        Ok(Some(topic))
    }

    /// Deletes a topic: forgotten in the metadata first, then its files removed.
    pub fn delete(&self, name: &str) -> io::Result<Option<Arc<Topic>>> {
        let _admin = self.admin_lock();
        let removed = {
            let mut map = self.write();
            let Some(t) = map.remove(name) else {
                return Ok(None);
            };
            if let Err(e) = self.persist_map(&map) {
                map.insert(name.to_string(), t);
                return Err(e);
            }
            t
        };
        for p in &removed.partitions {
            let dir = p.log().dir().to_path_buf();
            if let Err(e) = fs::remove_dir_all(&dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "could not remove partition directory");
            }
        }
        Ok(Some(removed))
    }

    /// Replaces a topic's config.
    pub fn set_config(&self, name: &str, config: TopicConfig) -> io::Result<bool> {
        let _admin = self.admin_lock();
        let mut map = self.write();
        let Some(old) = map.get(name).cloned() else {
            return Ok(false);
        };
        let new = Arc::new(Topic {
            name: old.name.clone(),
            id: old.id,
            config,
            partitions: old.partitions.clone(),
        });
        map.insert(name.to_string(), new);
        if let Err(e) = self.persist_map(&map) {
            map.insert(name.to_string(), old);
            return Err(e);
        }
        Ok(true)
    }

    /// Grows a topic to `count` partitions.
    pub fn add_partitions(&self, name: &str, count: i32) -> io::Result<bool> {
        let _admin = self.admin_lock();
        let Some(old) = self.get(name) else {
            return Ok(false);
        };
        let mut partitions = old.partitions.clone();
        for p in old.partitions.len() as i32..count {
            let dir = partition_dir(&self.data_dir, name, p);
            let _ = fs::remove_dir_all(&dir);
            partitions.push(Partition::open(&dir, name, p, false, None, None)?);
        }
        let new = Arc::new(Topic {
            name: old.name.clone(),
            id: old.id,
            config: old.config.clone(),
            partitions,
        });
        let mut map = self.write();
        map.insert(name.to_string(), new);
        if let Err(e) = self.persist_map(&map) {
            map.insert(name.to_string(), old);
            return Err(e);
        }
        Ok(true)
    }
}

/// Kafka cluster ids are 16 random bytes in URL-safe base64 without padding (22 characters).
fn new_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = Uuid::new_v4().into_bytes();
    let mut out = String::with_capacity(22);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for b in bytes {
        acc = (acc << 8) | b as u32;
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(ALPHABET[((acc >> bits) & 63) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (6 - bits)) & 63) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("orders.v1_x-y").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name("bad name").is_err());
        assert!(validate_topic_name(&"a".repeat(250)).is_err());
    }

    #[test]
    fn topics_survive_reopen_and_deletion_is_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let id;
        {
            let reg = TopicRegistry::open(dir.path()).unwrap();
            let t = reg.create("a", 3, TopicConfig::default()).unwrap().unwrap();
            id = t.id;
            reg.create("b", 1, TopicConfig::default()).unwrap().unwrap();
            assert!(reg
                .create("a", 1, TopicConfig::default())
                .unwrap()
                .is_none());
            reg.delete("b").unwrap().unwrap();
            reg.add_partitions("a", 4).unwrap();
        }
        let reg = TopicRegistry::open(dir.path()).unwrap();
        let t = reg.get("a").unwrap();
        assert_eq!(t.id, id);
        assert_eq!(t.partitions.len(), 4);
        assert!(reg.get("b").is_none());
        assert!(!dir.path().join("b-0").exists());
        assert_eq!(reg.cluster_id.len(), 22);
    }
}
