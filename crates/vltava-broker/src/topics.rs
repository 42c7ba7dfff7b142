//! Topics and their partitions, and the metadata files that make them survive restarts.
//!
//! * `<data-dir>/meta.properties` (as Kafka's) marks the directory as Vltava's and holds the
//!   cluster id. Vltava starts only on a directory that has it, is empty, or holds an older
//!   Vltava's `meta.json`; any other directory is refused, so Vltava never touches files it did
//!   not create.
//! * `<data-dir>/meta.json` holds, per topic, its id, partition count and config overrides, and
//!   the ids of deleted topics whose directories may still exist. It is replaced on every change
//!   (the previous copy kept as `meta.json.prev`), durably.
//! * Partition logs live in `<data-dir>/<topic>-<partition>/`, as in Kafka, each with Kafka's
//!   `partition.metadata` (the topic id). Should `meta.json` and its previous copy both be lost
//!   or torn, the topics are rebuilt from these files (config overrides from the previous copy
//!   when it is readable, else the defaults, said in the log).
//! * A directory is removed only when its `partition.metadata` names a topic recorded as
//!   deleted; never because of its name alone.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use uuid::Uuid;
use vltava_storage::durable::{self, StorageHealth};
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
    /// Set while an fsync of the partition runs: at most one at a time (asserted).
    pub(crate) syncing: std::sync::atomic::AtomicBool,
    /// Damaged ranges recovery cut out of the active segment at this start (for `/status`).
    pub damaged: Vec<vltava_storage::segment::DamagedRange>,
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
            syncing: std::sync::atomic::AtomicBool::new(false),
            damaged: report.active.damaged,
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
        // Invariant: the high watermark never goes back (a lower value is never published).
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
    /// Deleted topics (id → name) whose partition directories may still be on disk (a crash
    /// during the delete): start-up removes the directories whose `partition.metadata` names
    /// one of these ids, and nothing else.
    #[serde(default)]
    deleted: BTreeMap<Uuid, String>,
}

const META_FILE: &str = "meta.json";
const META_PREV_FILE: &str = "meta.json.prev";
const META_TMP_FILE: &str = "meta.json.tmp";
const META_PROPERTIES_FILE: &str = "meta.properties";
const PARTITION_METADATA_FILE: &str = "partition.metadata";
/// Files Vltava itself may have put in a directory before it became Vltava's.
const OWN_MARKER_FILES: &[&str] = &[".lock"];

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
    /// Deleted topics whose directories are not known to be gone (persisted in `meta.json`).
    deleted: Arc<Mutex<BTreeMap<Uuid, String>>>,
    /// Hands the renamed directories of a deleted topic to the thread that removes them.
    deleter: std::sync::mpsc::SyncSender<Deletion>,
    /// Serialises changes (create, delete, alter, grow) so that each sees the previous one.
    admin: Mutex<()>,
    health: StorageHealth,
    /// Whether the previous run ended with a clean shutdown (everything synced and closed).
    pub opened_after_clean_shutdown: bool,
}

fn partition_dir(data_dir: &Path, topic: &str, p: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{p}"))
}

/// The suffix of a deleted partition's directory, renamed to `<topic>-<p>.<topic id hex>-delete`
/// (Kafka's name) before a background thread removes it.
const DELETE_SUFFIX: &str = "-delete";

/// How many deleted topics may wait for their directories to be removed; a delete past that
/// waits for room (removing files can be slow: ext4 with `discard` waits on the device).
const MAX_PENDING_DELETIONS: usize = 64;

/// A deleted topic's partition directories (already renamed), for the deleter thread.
struct Deletion {
    id: Uuid,
    dirs: Vec<PathBuf>,
}

fn deleted_partition_dir(dir: &Path, id: Uuid) -> PathBuf {
    let mut name = dir.as_os_str().to_owned();
    name.push(format!(".{}{DELETE_SUFFIX}", id.simple()));
    PathBuf::from(name)
}

/// Whether a directory name is that of a deleted partition awaiting removal.
fn is_deleted_partition_dir_name(name: &str) -> bool {
    name.strip_suffix(DELETE_SUFFIX)
        .and_then(|rest| rest.rsplit_once('.'))
        .is_some_and(|(base, hex)| {
            parse_partition_dir_name(base).is_some() && Uuid::try_parse(hex).is_ok()
        })
}

/// Removes deleted topics' directories, one topic at a time, then forgets their ids (dropped
/// from `meta.json` at its next write). Ends when the registry is dropped.
fn spawn_deleter(
    deleted: Arc<Mutex<BTreeMap<Uuid, String>>>,
) -> io::Result<std::sync::mpsc::SyncSender<Deletion>> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Deletion>(MAX_PENDING_DELETIONS);
    std::thread::Builder::new()
        .name("vltava-deleter".into())
        .spawn(move || {
            for d in rx {
                let mut all_gone = true;
                for dir in &d.dirs {
                    if let Err(e) = fs::remove_dir_all(dir) {
                        all_gone = false;
                        tracing::warn!(dir = %dir.display(), error = %e, "could not remove a deleted partition's directory");
                    }
                }
                if all_gone {
                    deleted.lock().unwrap_or_else(|p| p.into_inner()).remove(&d.id);
                }
            }
        })?;
    Ok(tx)
}

/// Kafka's topic-id text: the 16 bytes in URL-safe base64 without padding.
fn topic_id_text(id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(id.into_bytes())
}

/// Replaces `meta.json`, keeping the previous one as `meta.json.prev`: a crash leaves the old
/// state in `meta.json` or in `meta.json.prev`, and start-up reads whichever is there.
fn write_meta_json(data_dir: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let path = data_dir.join(META_FILE);
    let tmp = data_dir.join(META_TMP_FILE);
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    match fs::rename(&path, data_dir.join(META_PREV_FILE)) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    fs::rename(&tmp, &path)?;
    durable::sync_dir(data_dir)
}

/// Writes Kafka's `partition.metadata` (the topic id) into a partition directory, durably.
fn partition_metadata_text(id: Uuid) -> String {
    format!("version: 0\ntopic_id: {}\n", topic_id_text(id))
}

fn write_partition_metadata(dir: &Path, id: Uuid) -> io::Result<()> {
    let text = partition_metadata_text(id);
    durable::write_atomically(&dir.join(PARTITION_METADATA_FILE), text.as_bytes())
}

/// Writes `partition.metadata` into a partition directory just created (no earlier copy to
/// keep): written, fsynced, and the directory fsynced for its name (and the segment's).
fn write_partition_metadata_in_new_dir(dir: &Path, id: Uuid) -> io::Result<()> {
    let mut f = File::create(dir.join(PARTITION_METADATA_FILE))?;
    io::Write::write_all(&mut f, partition_metadata_text(id).as_bytes())?;
    f.sync_all()?;
    durable::sync_dir(dir)
}

/// The topic id in a partition directory's `partition.metadata`: `Ok(None)` when the file is
/// missing, an error when it is unreadable.
fn read_partition_metadata(dir: &Path) -> io::Result<Option<Uuid>> {
    let text = match fs::read_to_string(dir.join(PARTITION_METADATA_FILE)) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let id = text
        .lines()
        .find_map(|l| l.strip_prefix("topic_id:"))
        .map(str::trim)
        .and_then(|t| URL_SAFE_NO_PAD.decode(t).ok())
        .and_then(|b| <[u8; 16]>::try_from(b.as_slice()).ok())
        .map(Uuid::from_bytes);
    id.map(Some).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} has no valid topic_id",
                dir.join(PARTITION_METADATA_FILE).display()
            ),
        )
    })
}

/// `<topic>-<partition>` split, when a directory name has that form.
fn parse_partition_dir_name(name: &str) -> Option<(&str, i32)> {
    let (topic, p) = name.rsplit_once('-')?;
    let p = p.parse::<i32>().ok().filter(|p| *p >= 0)?;
    validate_topic_name(topic).ok()?;
    Some((topic, p))
}

/// The cluster id in `meta.properties`, `Ok(None)` when the file is missing.
fn read_meta_properties(data_dir: &Path) -> io::Result<Option<String>> {
    let path = data_dir.join(META_PROPERTIES_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .find_map(|l| l.split_once('=').filter(|(k, _)| k.trim() == "cluster.id"))
        .map(|(_, v)| Some(v.trim().to_string()))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} has no cluster.id", path.display()),
            )
        })
}

fn write_meta_properties(data_dir: &Path, cluster_id: &str) -> io::Result<()> {
    let text = format!(
        "# Written by Vltava: this directory holds a Vltava broker's data.\nversion=1\ncluster.id={cluster_id}\n"
    );
    durable::write_atomically(&data_dir.join(META_PROPERTIES_FILE), text.as_bytes())
}

/// Decides whether Vltava may use `data_dir`, before anything is written to it: it may if the
/// directory is missing, empty, marked as Vltava's (`meta.properties`), or an older Vltava's
/// (`meta.json`). Any other directory is refused with a one-line reason.
pub fn check_data_dir(data_dir: &Path) -> io::Result<()> {
    let entries = match fs::read_dir(data_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut foreign = Vec::new();
    for entry in entries {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name == META_PROPERTIES_FILE || name == META_FILE || name == META_PREV_FILE {
            return Ok(());
        }
        if !OWN_MARKER_FILES.contains(&name.as_str()) {
            foreign.push(name);
        }
    }
    if foreign.is_empty() {
        return Ok(());
    }
    foreign.sort();
    foreign.truncate(3);
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!(
            "{} is not empty and is not a Vltava data directory (no {META_PROPERTIES_FILE}; it holds {}): use an empty or new directory with --data-dir",
            data_dir.display(),
            foreign.join(", ")
        ),
    ))
}

/// The marker of a clean shutdown (Kafka's `.kafka_cleanshutdown`).
const CLEAN_SHUTDOWN_FILE: &str = ".clean-shutdown";

/// Threads that open (recover) partitions at start-up: opening is mostly waiting on the file
/// system (directory listings, index reads, an fdatasync each), so more threads than cores help.
const OPEN_THREADS: usize = 8;

/// Threads that create and fsync the partitions of one CreateTopics or CreatePartitions.
const ADMIN_SYNC_THREADS: usize = 16;

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
    let opened = parallel_map(&jobs, OPEN_THREADS, |(_, name, p, files)| {
        let files = files.lock().unwrap_or_else(|e| e.into_inner()).take();
        let dir = partition_dir(data_dir, name, *p);
        Partition::open(&dir, name, *p, clean, files, Some(trusted))
    });
    let mut out: Vec<Vec<Arc<Partition>>> = topics.values().map(|_| Vec::new()).collect();
    for ((t, _, _, _), opened) in jobs.iter().zip(opened) {
        out[*t].push(opened?);
    }
    Ok(out)
}

/// Runs `f` on every item on up to `threads` threads (file-system work: mostly waiting, and
/// concurrent fsyncs share journal commits); the results are in item order.
fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..threads.min(items.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else {
                    return;
                };
                let r = f(item);
                *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
            });
        }
    });
    // A worker that panicked re-raises its panic when the scope ends, so every slot is filled.
    let out: Vec<R> = slots
        .into_iter()
        .filter_map(|s| s.into_inner().unwrap_or_else(|e| e.into_inner()))
        .collect();
    assert_eq!(out.len(), items.len(), "every item was run");
    out
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

    /// Loads the metadata and opens (recovers) every partition. The directory must have passed
    /// [`check_data_dir`].
    pub fn open(data_dir: &Path, health: StorageHealth) -> io::Result<TopicRegistry> {
        fs::create_dir_all(data_dir)?;
        let marked = read_meta_properties(data_dir)?;
        let (mut meta, fresh) = load_meta(data_dir, marked.as_deref())?;
        if let Some(id) = &marked {
            if *id != meta.cluster_id {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{} belongs to cluster {id} but meta.json to cluster {}: refusing to mix them",
                        data_dir.display(),
                        meta.cluster_id
                    ),
                ));
            }
        }
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
            durable::sync_dir(data_dir)?;
        }
        // Partitions of an older Vltava have no partition.metadata yet: it is what a lost
        // meta.json is rebuilt from.
        for (tm, partitions) in meta.topics.values().zip(&opened) {
            for p in partitions {
                let dir = p.log().dir().to_path_buf();
                match read_partition_metadata(&dir) {
                    Ok(Some(id)) if id == tm.id => {}
                    Ok(Some(other)) => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!(
                            "{} belongs to topic id {} but meta.json says {}: refusing to serve it",
                            dir.display(),
                            topic_id_text(other),
                            topic_id_text(tm.id)
                        ),
                        ))
                    }
                    Ok(None) | Err(_) => write_partition_metadata(&dir, tm.id)?,
                }
            }
        }
        let deleted = Arc::new(Mutex::new(std::mem::take(&mut meta.deleted)));
        let deleter = spawn_deleter(Arc::clone(&deleted))?;
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
            deleted,
            deleter,
            admin: Mutex::new(()),
            health,
            opened_after_clean_shutdown: clean,
        };
        if marked.is_none() {
            write_meta_properties(data_dir, &reg.cluster_id)?;
        }
        let had_deleted = !reg.deleted_lock().is_empty();
        reg.remove_deleted_dirs();
        // A new (or rebuilt) directory records its metadata; so does one whose deleted topics
        // are now gone.
        if fresh || had_deleted {
            reg.persist()?;
        }
        Ok(reg)
    }

    fn deleted_lock(&self) -> MutexGuard<'_, BTreeMap<Uuid, String>> {
        self.deleted.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Removes the partition directories of deleted topics left by a crash during a delete:
    /// only those whose `partition.metadata` names a deleted topic's id. Directories of
    /// unknown topics are left alone (and said in the log).
    fn remove_deleted_dirs(&self) {
        let Ok(entries) = fs::read_dir(&self.data_dir) else {
            return;
        };
        let topics = self.read();
        let mut deleted = self.deleted_lock();
        for entry in entries.flatten() {
            // The type comes with the directory listing (no stat per entry).
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let name = entry.file_name().to_string_lossy().to_string();
            // Ours to remove: a directory a delete renamed (stopped before it was removed) of a
            // topic that is gone, or a partition directory of a topic id recorded as deleted;
            // either way only if its partition.metadata says so.
            let renamed = is_deleted_partition_dir_name(&name);
            if !renamed {
                let Some((topic, p)) = parse_partition_dir_name(&name) else {
                    continue;
                };
                if topics.get(topic).is_some_and(|t| t.partition(p).is_some()) {
                    continue;
                }
            }
            match read_partition_metadata(&entry.path()) {
                Ok(Some(id))
                    if (renamed && !topics.values().any(|t| t.id == id))
                        || deleted.contains_key(&id) =>
                {
                    tracing::info!(dir = %entry.path().display(), "removing partition directory of a deleted topic");
                    if let Err(e) = fs::remove_dir_all(entry.path()) {
                        tracing::warn!(dir = %entry.path().display(), error = %e, "could not remove partition directory");
                        return;
                    }
                }
                _ => tracing::warn!(
                    dir = %entry.path().display(),
                    "a directory that is no partition of a known topic: left as it is"
                ),
            }
        }
        deleted.clear();
    }

    /// Removes a leftover directory where a new partition goes, only if it is Vltava's (has a
    /// `partition.metadata` of a topic that no longer exists); refuses otherwise.
    fn clear_partition_dir(&self, dir: &Path) -> io::Result<()> {
        if !dir.exists() {
            return Ok(());
        }
        let live = |id: Uuid| self.read().values().any(|t| t.id == id);
        // A creation cut short (a full disk, a failed fsync, a crash) leaves the directory with
        // no data: only empty files of the names a new partition gets. Nothing of anyone's, so
        // it is taken over.
        let entries: Vec<fs::DirEntry> = fs::read_dir(dir)?.collect::<io::Result<_>>()?;
        let unfinished = entries.iter().all(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            let ours = name == "partition.metadata"
                || name.split_once('.').is_some_and(|(base, ext)| {
                    base.len() == 20
                        && base.bytes().all(|b| b.is_ascii_digit())
                        && matches!(ext, "log" | "index" | "timeindex" | "txnindex")
                });
            ours && e.metadata().is_ok_and(|m| m.is_file() && m.len() == 0)
        });
        if unfinished {
            for e in &entries {
                fs::remove_file(e.path())?;
            }
            return fs::remove_dir(dir);
        }
        match read_partition_metadata(dir) {
            Ok(Some(id)) if !live(id) => fs::remove_dir_all(dir),
            _ => Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} already exists and is not a leftover of a deleted topic: remove it by hand if it is not needed",
                    dir.display()
                ),
            )),
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
            deleted: self.deleted_lock().clone(),
        };
        let bytes = serde_json::to_vec_pretty(&meta).map_err(io::Error::other)?;
        self.health.guard("writing meta.json", || {
            write_meta_json(&self.data_dir, &bytes)
        })
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

    /// Makes `next` the topic map: persisted first (without the map's lock, so produce and
    /// fetch lookups never wait on this fsync), then swapped in. Callers hold the admin lock, so
    /// no other change happens in between.
    fn commit(&self, next: BTreeMap<String, Arc<Topic>>) -> io::Result<()> {
        self.persist_map(&next)?;
        *self.write() = next;
        Ok(())
    }

    /// Opens partitions `from..to` of a new or growing topic in fresh directories, each with its
    /// `partition.metadata`.
    fn open_new_partitions(
        &self,
        name: &str,
        id: Uuid,
        from: i32,
        to: i32,
    ) -> io::Result<Vec<Arc<Partition>>> {
        // Every place is checked before anything is created: a refusal leaves nothing behind.
        for p in from..to {
            self.clear_partition_dir(&partition_dir(&self.data_dir, name, p))?;
        }
        // The directories are new and nothing refers to them until the topic map is committed,
        // so their files need no temporary copies; their fsyncs run in parallel (they share the
        // file system's journal commits), then one fsync of the data directory covers the new
        // names. A crash before the commit leaves directories the next create refuses or clears.
        let indexes: Vec<i32> = (from..to).collect();
        let opened = parallel_map(&indexes, ADMIN_SYNC_THREADS, |&p| {
            let dir = partition_dir(&self.data_dir, name, p);
            let partition = Partition::open(&dir, name, p, false, None, None)?;
            self.health.guard("writing partition.metadata", || {
                write_partition_metadata_in_new_dir(&dir, id)
            })?;
            Ok::<_, io::Error>(partition)
        });
        let parts = opened.into_iter().collect::<io::Result<Vec<_>>>()?;
        self.health.guard("syncing the data directory", || {
            durable::sync_dir(&self.data_dir)
        })?;
        Ok(parts)
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
        let id = Uuid::new_v4();
        let parts = self.open_new_partitions(name, id, 0, partitions)?;
        let topic = Arc::new(Topic {
            name: name.to_string(),
            id,
            config,
            partitions: parts,
        });
        let mut next = self.read().clone();
        next.insert(name.to_string(), topic.clone());
        self.commit(next)?;
        Ok(Some(topic))
    }

    /// Deletes a topic: forgotten in the metadata first (its id recorded as deleted), then its
    /// files removed; a crash in between leaves directories that the next start removes.
    pub fn delete(&self, name: &str) -> io::Result<Option<Arc<Topic>>> {
        let _admin = self.admin_lock();
        let mut next = self.read().clone();
        let Some(removed) = next.remove(name) else {
            return Ok(None);
        };
        self.deleted_lock().insert(removed.id, name.to_string());
        if let Err(e) = self.commit(next) {
            self.deleted_lock().remove(&removed.id);
            return Err(e);
        }
        // Renamed now (fast), removed by the deleter thread: the name is free for a new topic
        // at once, and removing the files (slow on some file systems) holds nothing up.
        let mut dirs = Vec::with_capacity(removed.partitions.len());
        for p in &removed.partitions {
            let mut log = p.log();
            log.mark_deleted();
            let dir = log.dir().to_path_buf();
            drop(log);
            let renamed = deleted_partition_dir(&dir, removed.id);
            match fs::rename(&dir, &renamed) {
                Ok(()) => dirs.push(renamed),
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "could not rename a deleted partition's directory");
                    dirs.push(dir);
                }
            }
        }
        if let Err(e) = durable::sync_dir(&self.data_dir) {
            // The metadata already says deleted; at worst the next start removes them.
            tracing::warn!(error = %e, "could not sync the data directory after a delete");
        }
        if let Err(std::sync::mpsc::SendError(d)) = self.deleter.send(Deletion {
            id: removed.id,
            dirs,
        }) {
            tracing::warn!(
                dirs = d.dirs.len(),
                "the deleter thread is gone: the directories are removed at the next start"
            );
        }
        Ok(Some(removed))
    }

    /// Replaces a topic's config.
    pub fn set_config(&self, name: &str, config: TopicConfig) -> io::Result<bool> {
        let _admin = self.admin_lock();
        let mut next = self.read().clone();
        let Some(old) = next.get(name).cloned() else {
            return Ok(false);
        };
        let new = Arc::new(Topic {
            name: old.name.clone(),
            id: old.id,
            config,
            partitions: old.partitions.clone(),
        });
        next.insert(name.to_string(), new);
        self.commit(next)?;
        Ok(true)
    }

    /// Grows a topic to `count` partitions.
    pub fn add_partitions(&self, name: &str, count: i32) -> io::Result<bool> {
        let _admin = self.admin_lock();
        let Some(old) = self.get(name) else {
            return Ok(false);
        };
        let mut partitions = old.partitions.clone();
        partitions.extend(self.open_new_partitions(
            name,
            old.id,
            old.partitions.len() as i32,
            count,
        )?);
        let new = Arc::new(Topic {
            name: old.name.clone(),
            id: old.id,
            config: old.config.clone(),
            partitions,
        });
        let mut next = self.read().clone();
        next.insert(name.to_string(), new);
        self.commit(next)?;
        Ok(true)
    }
}

/// Reads `meta.json`. Without it: the fsynced `meta.json.tmp` of a change cut short between its
/// two renames, else a rebuild from the partitions' `partition.metadata` (config overrides from
/// `meta.json.prev` where its topic ids match). Returns the metadata and whether it must be
/// written (new, or recovered).
fn load_meta(data_dir: &Path, marked: Option<&str>) -> io::Result<(MetaFile, bool)> {
    let parse = |name: &str| -> io::Result<Option<MetaFile>> {
        let path = data_dir.join(name);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} is not valid: {e}", path.display()),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    };
    let current = parse(META_FILE);
    if let Ok(Some(meta)) = current {
        return Ok((meta, false));
    }
    if matches!(current, Ok(None)) {
        // Written and fsynced before meta.json was moved aside: the change was complete.
        if let Ok(Some(meta)) = parse(META_TMP_FILE) {
            tracing::warn!(
                "completing a metadata change cut short: meta.json.tmp becomes meta.json"
            );
            return Ok((meta, true));
        }
    }
    let prev = parse(META_PREV_FILE).ok().flatten();
    if matches!(current, Ok(None)) && prev.is_none() && marked.is_none() {
        return Ok((
            MetaFile {
                cluster_id: new_cluster_id(),
                ..MetaFile::default()
            },
            true,
        ));
    }
    let cluster_id = marked
        .map(str::to_string)
        .or_else(|| prev.as_ref().map(|p| p.cluster_id.clone()))
        .unwrap_or_else(new_cluster_id);
    let meta = rebuild_meta(data_dir, cluster_id, prev.as_ref())?;
    let why = match &current {
        Err(e) => e.to_string(),
        Ok(_) => "meta.json is missing".to_string(),
    };
    tracing::warn!(
        reason = %why,
        topics = meta.topics.len(),
        config_from_previous_copy = prev.is_some(),
        "rebuilt the topics from the partitions' partition.metadata files (config overrides come from meta.json.prev where it has them, else the defaults: check them with `vltava topics describe`)"
    );
    Ok((meta, true))
}

/// The topics as the partition directories record them: each `<topic>-<p>` directory with a
/// `partition.metadata` counts (unless `prev` records its topic as deleted); a topic has as many
/// partitions as its highest index + 1 (missing ones are created empty).
fn rebuild_meta(
    data_dir: &Path,
    cluster_id: String,
    prev: Option<&MetaFile>,
) -> io::Result<MetaFile> {
    let mut topics: BTreeMap<String, TopicMeta> = BTreeMap::new();
    let deleted = prev.map(|p| p.deleted.clone()).unwrap_or_default();
    for entry in fs::read_dir(data_dir)? {
        let entry = entry?;
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let name = entry.file_name().to_string_lossy().to_string();
        let Some((topic, p)) = parse_partition_dir_name(&name) else {
            continue;
        };
        let Ok(Some(id)) = read_partition_metadata(&entry.path()) else {
            tracing::warn!(dir = %entry.path().display(), "no readable partition.metadata: not part of the rebuilt topics");
            continue;
        };
        if deleted.contains_key(&id) {
            continue;
        }
        let config = prev
            .and_then(|m| m.topics.get(topic))
            .filter(|t| t.id == id)
            .map(|t| t.config.clone())
            .unwrap_or_default();
        let tm = topics.entry(topic.to_string()).or_insert(TopicMeta {
            id,
            partitions: 0,
            config,
        });
        if tm.id != id {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the partitions of topic {topic} name two topic ids: cannot rebuild meta.json; restore it from a backup"),
            ));
        }
        tm.partitions = tm.partitions.max(p + 1);
    }
    Ok(MetaFile {
        cluster_id,
        topics,
        deleted,
    })
}

/// Kafka cluster ids are 16 random bytes in URL-safe base64 without padding (22 characters).
fn new_cluster_id() -> String {
    URL_SAFE_NO_PAD.encode(Uuid::new_v4().into_bytes())
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

    fn open(dir: &Path) -> TopicRegistry {
        check_data_dir(dir).unwrap();
        TopicRegistry::open(dir, StorageHealth::new()).unwrap()
    }

    #[test]
    fn a_foreign_directory_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("project-2")).unwrap();
        fs::write(dir.path().join("project-2/f"), b"mine").unwrap();
        let err = check_data_dir(dir.path()).unwrap_err();
        assert!(
            err.to_string().contains("not a Vltava data directory"),
            "{err}"
        );
        assert_eq!(fs::read(dir.path().join("project-2/f")).unwrap(), b"mine");
        assert!(!dir.path().join(META_PROPERTIES_FILE).exists());
        // An empty directory, or one with only our lock file, is fine.
        let empty = tempfile::tempdir().unwrap();
        fs::write(empty.path().join(".lock"), b"").unwrap();
        check_data_dir(empty.path()).unwrap();
    }

    #[test]
    fn a_directory_is_removed_only_for_a_deleted_topic_id() {
        let dir = tempfile::tempdir().unwrap();
        {
            let reg = open(dir.path());
            reg.create("keep", 1, TopicConfig::default())
                .unwrap()
                .unwrap();
        }
        // The user's own folder inside the data directory, named like a partition.
        fs::create_dir(dir.path().join("project-2")).unwrap();
        fs::write(dir.path().join("project-2/f"), b"mine").unwrap();
        // A deleted topic whose directory survived (a crash during the delete).
        let gone_id;
        {
            let reg = open(dir.path());
            gone_id = reg
                .create("gone", 1, TopicConfig::default())
                .unwrap()
                .unwrap()
                .id;
            let dir_copy = dir.path().join("gone-0.copy");
            fs::create_dir(&dir_copy).unwrap();
            fs::copy(
                dir.path().join("gone-0/partition.metadata"),
                dir_copy.join("partition.metadata"),
            )
            .unwrap();
            reg.delete("gone").unwrap().unwrap();
            assert!(!dir.path().join("gone-0").exists());
            // Put it back as a crash would have left it, and record the id as deleted again.
            fs::rename(&dir_copy, dir.path().join("gone-0")).unwrap();
            reg.deleted_lock().insert(gone_id, "gone".into());
            reg.persist().unwrap();
        }
        let reg = open(dir.path());
        assert!(reg.get("keep").is_some());
        assert!(reg.get("gone").is_none());
        assert!(
            !dir.path().join("gone-0").exists(),
            "the deleted topic's directory is removed"
        );
        assert_eq!(fs::read(dir.path().join("project-2/f")).unwrap(), b"mine");
        // Creating a topic over a directory that is not ours is refused, and it stays.
        assert!(reg.create("project", 3, TopicConfig::default()).is_err());
        assert_eq!(fs::read(dir.path().join("project-2/f")).unwrap(), b"mine");
        assert!(!dir.path().join("project-0").exists());
    }

    #[test]
    fn a_deleted_topic_is_renamed_at_once_and_removed_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        let renamed;
        {
            let reg = open(dir.path());
            let t = reg
                .create("gone", 2, TopicConfig::default())
                .unwrap()
                .unwrap();
            renamed = deleted_partition_dir(&dir.path().join("gone-1"), t.id);
            reg.delete("gone").unwrap().unwrap();
            assert!(t.partitions[0].log().is_deleted());
            assert!(
                !dir.path().join("gone-0").exists(),
                "renamed within the delete"
            );
            // The name is free at once.
            reg.create("gone", 1, TopicConfig::default())
                .unwrap()
                .unwrap();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while !reg.deleted_lock().is_empty() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the deleter never finished"
                );
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            assert!(!renamed.exists());
        }
        // A renamed directory left by a stop before the deleter finished is removed at start;
        // one that only looks like it (no partition.metadata of ours) is kept.
        fs::create_dir(&renamed).unwrap();
        write_partition_metadata(&renamed, Uuid::new_v4()).unwrap();
        let lookalike = dir
            .path()
            .join(format!("notes-0.{}-delete", Uuid::new_v4().simple()));
        fs::create_dir(&lookalike).unwrap();
        fs::write(lookalike.join("f"), b"mine").unwrap();
        let reg = open(dir.path());
        assert!(!renamed.exists());
        assert_eq!(fs::read(lookalike.join("f")).unwrap(), b"mine");
        assert!(reg.get("gone").is_some());
    }

    #[test]
    fn lost_or_torn_meta_json_is_recovered() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, cluster);
        {
            let reg = open(dir.path());
            cluster = reg.cluster_id.clone();
            a = reg
                .create("a", 3, TopicConfig::default())
                .unwrap()
                .unwrap()
                .id;
            b = reg
                .create("b", 1, TopicConfig::default())
                .unwrap()
                .unwrap()
                .id;
            reg.add_partitions("b", 2).unwrap();
        }
        for damage in ["remove", "tear", "remove-both"] {
            match damage {
                "remove" => fs::remove_file(dir.path().join(META_FILE)).unwrap(),
                "tear" => fs::write(dir.path().join(META_FILE), b"{\"cluster_id\": \"x").unwrap(),
                _ => {
                    fs::remove_file(dir.path().join(META_FILE)).unwrap();
                    let _ = fs::remove_file(dir.path().join(META_PREV_FILE));
                }
            }
            let reg = open(dir.path());
            assert_eq!(reg.cluster_id, cluster, "{damage}");
            let (ta, tb) = (reg.get("a").unwrap(), reg.get("b").unwrap());
            assert_eq!((ta.id, ta.partitions.len()), (a, 3), "{damage}");
            assert_eq!((tb.id, tb.partitions.len()), (b, 2), "{damage}");
        }
    }

    #[test]
    fn an_interrupted_metadata_change_is_completed() {
        let dir = tempfile::tempdir().unwrap();
        {
            let reg = open(dir.path());
            reg.create("a", 1, TopicConfig::default()).unwrap().unwrap();
        }
        // A crash after meta.json was moved aside, before meta.json.tmp took its place.
        fs::copy(dir.path().join(META_FILE), dir.path().join(META_TMP_FILE)).unwrap();
        fs::rename(dir.path().join(META_FILE), dir.path().join(META_PREV_FILE)).unwrap();
        let reg = open(dir.path());
        assert!(reg.get("a").is_some());
        assert!(dir.path().join(META_FILE).exists());
    }

    #[test]
    fn topics_survive_reopen_and_deletion_is_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let id;
        {
            let reg = TopicRegistry::open(dir.path(), StorageHealth::new()).unwrap();
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
        let reg = TopicRegistry::open(dir.path(), StorageHealth::new()).unwrap();
        let t = reg.get("a").unwrap();
        assert_eq!(t.id, id);
        assert_eq!(t.partitions.len(), 4);
        assert!(reg.get("b").is_none());
        assert!(!dir.path().join("b-0").exists());
        assert_eq!(reg.cluster_id.len(), 22);
    }
}
