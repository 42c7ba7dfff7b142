//! Durable group state: an append-only file of [`StoreRecord`]s (length, CRC-32C, JSON), replayed
//! at start-up and rewritten as a snapshot when it grows. A torn or corrupt tail (a crash
//! mid-write) is cut off at start-up.
//!
//! Group commit: [`GroupStore::append`] only queues the encoded records and returns their
//! sequence number, so the group lock is never held across I/O. One thread, which alone owns the
//! file, takes everything queued, writes it, fdatasyncs once, and publishes the last sequence
//! number it made durable ([`Durable`]); a request is answered once that number reaches its own.
//! Snapshots go through the same queue, so records queued after a snapshot land in the new file.
//! After a failed write or fsync nothing more is made durable (what reached the disk is
//! unknown): the store refuses new records and waiters get the error until a restart replays
//! the file.
//!
//! The store is generic over its record type: the transaction coordinator's state
//! (`crate::txn::store`) is kept the same way, in its own file and thread.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::watch;
use vltava_storage::durable::{self, StorageHealth};

use super::consumer::ConsumerGroups;
use super::coordinator::{Coordinator, StoreRecord};
use super::streams::StreamsGroups;

const FILE: &str = "groups.log";
/// Rewrite the file when it is this many times larger than a fresh snapshot would be.
const COMPACT_FACTOR: u64 = 4;
const MIN_COMPACT_BYTES: u64 = 1 << 20;
/// Queued bytes beyond which new group requests wait for the sync thread before they run.
pub const MAX_PENDING_BYTES: u64 = 16 << 20;

/// What the sync thread has made durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Durable {
    /// Every operation with a sequence number up to this one is on disk.
    pub seq: u64,
    /// A write or fsync failed: nothing after `seq` will become durable.
    pub failed: bool,
}

/// One record of a coordinator's Kafka-format view (`__consumer_offsets`): the group or
/// transactional id that picks its partition, and the record's key and value (`None`: a
/// tombstone) in Kafka's coordinator record format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewRecord {
    pub partition_key: String,
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

impl ViewRecord {
    fn len(&self) -> u64 {
        (self.partition_key.len() + self.key.len() + self.value.as_ref().map_or(0, Vec::len)) as u64
    }
}

/// Where the sync thread hands view records once the store records they came with are durable
/// (never before: the view shows no state that a power loss could take back from the store).
pub trait ViewSink: Send {
    fn publish(&mut self, records: Vec<ViewRecord>);
}

enum Op {
    /// Encoded store records, and the view records they make.
    Append(Vec<u8>, Vec<ViewRecord>),
    /// The whole state as of this point: replaces the file.
    Snapshot(Vec<u8>),
}

impl Op {
    fn len(&self) -> u64 {
        match self {
            Op::Append(b, view) => b.len() as u64 + view.iter().map(ViewRecord::len).sum::<u64>(),
            Op::Snapshot(b) => b.len() as u64,
        }
    }
}

#[derive(Default)]
struct Queue {
    ops: Vec<Op>,
    /// Sequence number of the last operation queued.
    last_seq: u64,
    stopping: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    durable: watch::Sender<Durable>,
    pending_bytes: Arc<AtomicU64>,
    failed: AtomicBool,
    /// The data directory's latch: a failure here takes the whole directory offline.
    health: StorageHealth,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The file and where it lives: owned by the sync thread.
struct Writer {
    path: PathBuf,
    file: File,
    view: Option<Box<dyn ViewSink>>,
}

impl Writer {
    fn apply(&mut self, ops: &[Op]) -> io::Result<()> {
        let mut dirty = false;
        for op in ops {
            match op {
                Op::Append(bytes, _) => {
                    if !bytes.is_empty() {
                        self.file.write_all(bytes)?;
                        dirty = true;
                    }
                }
                Op::Snapshot(bytes) => {
                    if dirty {
                        self.file.sync_data()?;
                        dirty = false;
                    }
                    durable::write_atomically(&self.path, bytes)?;
                    self.file = OpenOptions::new().append(true).open(&self.path)?;
                }
            }
        }
        if dirty {
            self.file.sync_data()?;
        }
        Ok(())
    }

    /// Hands the view records of `ops` (now durable) to the view.
    fn publish(&mut self, ops: Vec<Op>) {
        let Some(view) = self.view.as_mut() else {
            return;
        };
        let records: Vec<ViewRecord> = ops
            .into_iter()
            .flat_map(|op| match op {
                Op::Append(_, v) => v,
                Op::Snapshot(_) => Vec::new(),
            })
            .collect();
        if !records.is_empty() {
            view.publish(records);
        }
    }
}

fn run_writer(shared: Arc<Shared>, mut w: Writer) {
    loop {
        let (ops, last_seq) = {
            let mut q = shared.lock();
            while q.ops.is_empty() && !q.stopping {
                q = shared.wake.wait(q).unwrap_or_else(|p| p.into_inner());
            }
            if q.ops.is_empty() {
                return;
            }
            (std::mem::take(&mut q.ops), q.last_seq)
        };
        let bytes: u64 = ops.iter().map(Op::len).sum();
        let outcome = (!shared.failed.load(Ordering::Acquire)).then(|| w.apply(&ops));
        // Room in the queue first, so that whoever the news below wakes sees it.
        shared.pending_bytes.fetch_sub(bytes, Ordering::AcqRel);
        match outcome {
            Some(Ok(())) => {
                shared.durable.send_modify(|d| d.seq = last_seq);
                w.publish(ops);
            }
            Some(Err(e)) => {
                shared
                    .health
                    .fail(&format!("writing {}", w.path.display()), &e);
                shared.failed.store(true, Ordering::Release);
                shared.durable.send_modify(|d| d.failed = true);
            }
            // Failed before: wakes requests waiting for room so that they fail too.
            None => shared.durable.send_modify(|_| {}),
        }
    }
}

/// Waits until everything up to `seq` is durable; fails if the store failed first.
pub async fn wait_durable(rx: &mut watch::Receiver<Durable>, seq: u64) -> io::Result<()> {
    let d = rx
        .wait_for(|d| d.seq >= seq || d.failed)
        .await
        .map_err(|_| io::Error::other("the group store has stopped"))?;
    if d.seq >= seq {
        Ok(())
    } else {
        Err(io::Error::other("the group store failed to persist"))
    }
}

pub struct GroupStore<R = StoreRecord> {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    size_bytes: u64,
    snapshot_bytes: u64,
    records: std::marker::PhantomData<fn(R)>,
}

fn encode<R: Serialize>(r: &R) -> io::Result<Vec<u8>> {
    let json = serde_json::to_vec(r).map_err(io::Error::other)?;
    let mut out = Vec::with_capacity(8 + json.len());
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(&json).to_be_bytes());
    out.extend_from_slice(&json);
    Ok(out)
}

impl GroupStore<StoreRecord> {
    /// Opens the store in `dir`, returning it and the records to replay.
    /// `view`, if any, receives the view records of [`GroupStore::append_viewed`] once durable.
    pub fn open(
        dir: &Path,
        health: StorageHealth,
        view: Option<Box<dyn ViewSink>>,
    ) -> io::Result<(GroupStore, Vec<StoreRecord>)> {
        Self::open_file(dir, FILE, "vltava-group-sync", health, view)
    }

    /// Starts the sync thread on `writer`, whose file holds `size_bytes`.
    #[cfg(test)]
    fn start(writer: Writer, size_bytes: u64, health: StorageHealth) -> io::Result<GroupStore> {
        Self::start_named(writer, size_bytes, health, "vltava-group-sync")
    }
}

impl<R: Serialize + DeserializeOwned> GroupStore<R> {
    /// Opens the store file `file_name` in `dir` with its sync thread `thread_name`, returning
    /// it and the records to replay.
    pub fn open_file(
        dir: &Path,
        file_name: &str,
        thread_name: &str,
        health: StorageHealth,
        view: Option<Box<dyn ViewSink>>,
    ) -> io::Result<(GroupStore<R>, Vec<R>)> {
        let dir_existed = dir.exists();
        fs::create_dir_all(dir)?;
        if !dir_existed {
            // The new directory's own name must survive a power loss.
            durable::sync_parent(dir)?;
        }
        let path = dir.join(file_name);
        let file_existed = path.exists();
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
            match serde_json::from_slice::<R>(body) {
                Ok(r) => records.push(r),
                Err(_) => break,
            }
            pos += 8 + len;
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        if !file_existed {
            // Its appends are fdatasynced, which does not make its name durable: the directory
            // is, once, before any offset commit is answered (found by the power-loss test).
            durable::sync_dir(dir)?;
        }
        if pos < bytes.len() {
            tracing::warn!(file = %path.display(), cut_bytes = bytes.len() - pos, "truncated a torn tail of the store");
            file.set_len(pos as u64)?;
            file.sync_all()?;
        }
        let store =
            Self::start_named(Writer { path, file, view }, pos as u64, health, thread_name)?;
        Ok((store, records))
    }

    fn start_named(
        writer: Writer,
        size_bytes: u64,
        health: StorageHealth,
        thread_name: &str,
    ) -> io::Result<GroupStore<R>> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            durable: watch::channel(Durable::default()).0,
            pending_bytes: Arc::new(AtomicU64::new(0)),
            failed: AtomicBool::new(false),
            health,
        });
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name(thread_name.into())
            .spawn(move || run_writer(worker, writer))?;
        Ok(GroupStore {
            shared,
            thread: Some(thread),
            size_bytes,
            snapshot_bytes: size_bytes,
            records: std::marker::PhantomData,
        })
    }

    fn push(&mut self, op: Op) -> io::Result<()> {
        if self.failed() {
            return Err(io::Error::other("the group store failed to persist"));
        }
        self.shared
            .pending_bytes
            .fetch_add(op.len(), Ordering::AcqRel);
        let mut q = self.shared.lock();
        q.last_seq += 1;
        q.ops.push(op);
        drop(q);
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Sequence number of the last operation queued: once it is durable, so is every record
    /// queued so far.
    pub fn last_seq(&self) -> u64 {
        self.shared.lock().last_seq
    }

    /// Follows what the sync thread has made durable.
    pub fn subscribe(&self) -> watch::Receiver<Durable> {
        self.shared.durable.subscribe()
    }

    /// Bytes queued and not yet written (readable without the group lock).
    pub fn pending_bytes(&self) -> Arc<AtomicU64> {
        self.shared.pending_bytes.clone()
    }

    /// Refuses new records after a failed write or fsync, here or anywhere in the data
    /// directory (the group state lives in it too, as Kafka's `__consumer_offsets` does).
    pub fn failed(&self) -> bool {
        self.shared.failed.load(Ordering::Acquire) || self.shared.health.is_offline()
    }

    /// Queues records for the sync thread; they are durable once [`Durable::seq`] reaches
    /// [`GroupStore::last_seq`].
    pub fn append(&mut self, records: &[R]) -> io::Result<()> {
        self.append_viewed(records, Vec::new())
    }

    /// [`GroupStore::append`], with the view records that `records` make: the view receives
    /// them once `records` are durable.
    pub fn append_viewed(&mut self, records: &[R], view: Vec<ViewRecord>) -> io::Result<()> {
        if records.is_empty() && view.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for r in records {
            buf.extend_from_slice(&encode(r)?);
        }
        let len = buf.len() as u64;
        self.push(Op::Append(buf, view))?;
        self.size_bytes += len;
        Ok(())
    }

    /// Whether the file has grown well past a fresh snapshot: time to rewrite it.
    pub fn compaction_due(&self) -> bool {
        self.size_bytes >= MIN_COMPACT_BYTES.max(self.snapshot_bytes * COMPACT_FACTOR)
    }

    /// Queues a rewrite of the file holding only `records` (the whole state now).
    pub fn snapshot(&mut self, records: impl IntoIterator<Item = R>) -> io::Result<()> {
        let mut buf = Vec::new();
        for r in records {
            buf.extend_from_slice(&encode(&r)?);
        }
        let len = buf.len() as u64;
        self.push(Op::Snapshot(buf))?;
        self.size_bytes = len;
        self.snapshot_bytes = len;
        Ok(())
    }
}

impl GroupStore<StoreRecord> {
    /// Queues a rewrite of the file as a snapshot of `c`, `cg` and `sg` when it has grown well
    /// past one.
    pub fn maybe_compact(
        &mut self,
        c: &Coordinator,
        cg: &ConsumerGroups,
        sg: &StreamsGroups,
    ) -> io::Result<()> {
        if !self.compaction_due() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for g in c.groups() {
            buf.extend_from_slice(&encode(&g.metadata_record())?);
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
        for snap in sg.snapshots() {
            buf.extend_from_slice(&encode(&StoreRecord::StreamsGroup(snap))?);
        }
        let len = buf.len() as u64;
        self.push(Op::Snapshot(buf))?;
        self.size_bytes = len;
        self.snapshot_bytes = len;
        Ok(())
    }
}

impl<R> Drop for GroupStore<R> {
    /// Lets the sync thread finish what is queued, then stops it.
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offset(group: &str, partition: i32) -> StoreRecord {
        StoreRecord::Offset {
            group: group.into(),
            topic: "t".into(),
            partition,
            value: None,
        }
    }

    fn partitions(records: &[StoreRecord]) -> Vec<(String, i32)> {
        records
            .iter()
            .filter_map(|r| match r {
                StoreRecord::Offset {
                    group, partition, ..
                } => Some((group.clone(), *partition)),
                _ => None,
            })
            .collect()
    }

    async fn durable(store: &GroupStore) -> io::Result<()> {
        let mut rx = store.subscribe();
        let wait = wait_durable(&mut rx, store.last_seq());
        tokio::time::timeout(std::time::Duration::from_secs(10), wait)
            .await
            .map_err(|_| io::Error::other("not durable within 10 s"))?
    }

    #[tokio::test]
    async fn queued_records_become_durable_and_are_replayed_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut store, replayed) =
            GroupStore::open(dir.path(), StorageHealth::new(), None).expect("open");
        assert!(replayed.is_empty());
        for p in 0..50 {
            store.append(&[offset("g", p)]).expect("append");
        }
        assert_eq!(store.last_seq(), 50);
        durable(&store).await.expect("durable");
        assert_eq!(store.pending_bytes().load(Ordering::Acquire), 0);
        drop(store);
        let (_, replayed) =
            GroupStore::open(dir.path(), StorageHealth::new(), None).expect("reopen");
        let want: Vec<_> = (0..50).map(|p| ("g".to_string(), p)).collect();
        assert_eq!(partitions(&replayed), want);
    }

    #[tokio::test]
    async fn records_queued_after_a_snapshot_land_in_the_new_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut store, _) =
            GroupStore::open(dir.path(), StorageHealth::new(), None).expect("open");
        store.append(&[offset("old", 0)]).expect("append");
        store
            .push(Op::Snapshot(encode(&offset("snap", 1)).expect("encode")))
            .expect("push");
        store.append(&[offset("new", 2)]).expect("append");
        durable(&store).await.expect("durable");
        drop(store);
        let (_, replayed) =
            GroupStore::open(dir.path(), StorageHealth::new(), None).expect("reopen");
        assert_eq!(
            partitions(&replayed),
            vec![("snap".to_string(), 1), ("new".to_string(), 2)]
        );
    }

    #[tokio::test]
    async fn a_failed_write_fails_waiters_and_refuses_new_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(FILE);
        File::create(&path).expect("create");
        // A read-only handle: the sync thread's write fails as a full or broken disk's would.
        let file = File::open(&path).expect("open");
        let mut store = GroupStore::start(
            Writer {
                path,
                file,
                view: None,
            },
            0,
            StorageHealth::new(),
        )
        .expect("start");
        store.append(&[offset("g", 0)]).expect("queued");
        let err = durable(&store).await.expect_err("the write failed");
        assert!(err.to_string().contains("failed to persist"), "{err}");
        assert!(store.failed());
        assert!(store.append(&[offset("g", 1)]).is_err());
        assert_eq!(store.pending_bytes().load(Ordering::Acquire), 0);
    }

    struct Collect(Arc<Mutex<Vec<ViewRecord>>>);
    impl ViewSink for Collect {
        fn publish(&mut self, records: Vec<ViewRecord>) {
            self.0.lock().expect("lock").extend(records);
        }
    }

    fn view(key: &str) -> ViewRecord {
        ViewRecord {
            partition_key: "g".into(),
            key: key.as_bytes().to_vec(),
            value: None,
        }
    }

    #[tokio::test]
    async fn the_view_gets_its_records_in_order_once_durable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink: Box<dyn ViewSink> = Box::new(Collect(seen.clone()));
        let (mut store, _) =
            GroupStore::open(dir.path(), StorageHealth::new(), Some(sink)).expect("open");
        store.append_viewed(&[], vec![view("a")]).expect("append");
        store
            .append_viewed(&[offset("g", 0)], vec![view("b"), view("c")])
            .expect("append");
        durable(&store).await.expect("durable");
        // The sync thread publishes right after it announces durability: wait for it.
        drop(store);
        let keys: Vec<Vec<u8>> = seen
            .lock()
            .expect("lock")
            .iter()
            .map(|r| r.key.clone())
            .collect();
        assert_eq!(keys, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
    }

    #[tokio::test]
    async fn the_view_gets_nothing_that_failed_to_persist() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(FILE);
        File::create(&path).expect("create");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let file = File::open(&path).expect("open read-only");
        let mut store = GroupStore::start(
            Writer {
                path,
                file,
                view: Some(Box::new(Collect(seen.clone()))),
            },
            0,
            StorageHealth::new(),
        )
        .expect("start");
        store
            .append_viewed(&[offset("g", 0)], vec![view("lost")])
            .expect("queued");
        durable(&store).await.expect_err("the write failed");
        drop(store);
        assert!(seen.lock().expect("lock").is_empty());
    }

    #[test]
    fn dropping_the_store_writes_what_is_queued() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut store, _) =
            GroupStore::open(dir.path(), StorageHealth::new(), None).expect("open");
        store.append(&[offset("g", 7)]).expect("append");
        drop(store);
        let (_, replayed) =
            GroupStore::open(dir.path(), StorageHealth::new(), None).expect("reopen");
        assert_eq!(partitions(&replayed), vec![("g".to_string(), 7)]);
    }
}
