//! `__consumer_offsets`: the group coordinator's state as Kafka's internal topic shows it, for
//! the tools that read it (`kafka-console-consumer --formatter
//! org.apache.kafka.tools.consumer.OffsetsMessageFormatter`, Burrow, Kafka UIs) and the clients
//! that must skip it (`exclude.internal.topics`).
//!
//! The topic is a *view*: the group store (`store.rs`, `__groups/groups.log`) stays the record
//! of truth and is what a restart replays. Every store record the coordinator makes is turned
//! here into Kafka's coordinator records, with Kafka's keys and value versions:
//! - an offset commit: `OffsetCommitKey` (record type 1: group, topic, partition) and
//!   `OffsetCommitValue` v3 (offset, leader epoch, metadata, commit timestamp); a removed or
//!   expired offset: its tombstone;
//! - a classic group's membership: `GroupMetadataKey` (type 2: group) and `GroupMetadataValue`
//!   v3; a deleted group: tombstones of its offsets and of its metadata.
//!
//! KIP-848 consumer groups and KIP-1071 streams groups show their offsets only: their
//! membership records (types 3 and up) are not written.
//!
//! The store's sync thread hands the records over once the store records they came from are
//! durable ([`ViewSink`]), so the topic never shows a commit that a power loss could take back.
//! It appends them as the coordinator (never a client: Produce to an internal topic is refused)
//! to partition `abs(javaHashCode(group)) % partitions`, as Kafka's `partitionFor`. After a
//! crash the records of the last moments before it may be missing from the view (they were
//! durable in the store, not yet appended here): the next start re-publishes the whole state,
//! so every key's latest value is the store's again; a key deleted in those moments stays
//! until the group is deleted again.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use vltava_storage::durable::StorageHealth;
use vltava_storage::AppendError;

use super::coordinator::{Coordinator, StoreRecord};
use super::store::{ViewRecord, ViewSink};
use crate::log_limit::LogLimiter;
use crate::syncer::Syncer;
use crate::topic_config::TopicConfig;
use crate::topics::{Topic, TopicRegistry};

pub const TOPIC: &str = "__consumer_offsets";
/// Kafka's offsets.topic.num.partitions default.
pub const DEFAULT_PARTITIONS: i32 = 50;
/// Kafka's offsets.topic.segment.bytes default.
const SEGMENT_BYTES: &str = "104857600";
/// Record types (the key's leading int16, Kafka's `CoordinatorRecordType`).
const OFFSET_COMMIT_KEY: i16 = 1;
const GROUP_METADATA_KEY: i16 = 2;
/// The value versions Kafka 4 writes.
const OFFSET_COMMIT_VALUE_VERSION: i16 = 3;
const GROUP_METADATA_VALUE_VERSION: i16 = 3;
/// About the largest batch appended at once (a commit of many partitions is split), well
/// below the topic's max.message.bytes.
const MAX_BATCH_BYTES: usize = 256 * 1024;

/// Kafka's `partitionFor(groupId)`: `Utils.abs(groupId.hashCode()) % partitions`, with Java's
/// `String.hashCode` over UTF-16 code units.
pub fn partition_for(key: &str, partitions: i32) -> i32 {
    let hash = key
        .encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)));
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs % partitions.max(1)
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Group ids, topic names, member ids and metadata all arrive in int16-length strings.
    let len = i16::try_from(s.len()).unwrap_or(i16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..len as usize]);
}

fn put_nullable_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => put_str(out, s),
        None => out.extend_from_slice(&(-1i16).to_be_bytes()),
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as i32).to_be_bytes());
    out.extend_from_slice(b);
}

fn offset_key(group: &str, topic: &str, partition: i32) -> Vec<u8> {
    let mut k = OFFSET_COMMIT_KEY.to_be_bytes().to_vec();
    put_str(&mut k, group);
    put_str(&mut k, topic);
    k.extend_from_slice(&partition.to_be_bytes());
    k
}

fn group_key(group: &str) -> Vec<u8> {
    let mut k = GROUP_METADATA_KEY.to_be_bytes().to_vec();
    put_str(&mut k, group);
    k
}

/// The view records of store records the coordinator just made; `now_ms` stamps a group's
/// `currentStateTimestamp`.
pub fn view_records(records: &[StoreRecord], now_ms: i64) -> Vec<ViewRecord> {
    let mut out = Vec::new();
    for r in records {
        match r {
            StoreRecord::Offset {
                group,
                topic,
                partition,
                value,
            } => {
                let value = value.as_ref().map(|v| {
                    let mut b = OFFSET_COMMIT_VALUE_VERSION.to_be_bytes().to_vec();
                    b.extend_from_slice(&v.offset.to_be_bytes());
                    b.extend_from_slice(&v.leader_epoch.to_be_bytes());
                    put_str(&mut b, v.metadata.as_deref().unwrap_or(""));
                    b.extend_from_slice(&v.commit_ms.to_be_bytes());
                    b
                });
                out.push(ViewRecord {
                    partition_key: group.clone(),
                    key: offset_key(group, topic, *partition),
                    value,
                });
            }
            StoreRecord::Metadata {
                group,
                generation_id,
                protocol_type,
                protocol_name,
                leader,
                members,
                ..
            } => {
                let mut b = GROUP_METADATA_VALUE_VERSION.to_be_bytes().to_vec();
                put_str(&mut b, protocol_type.as_deref().unwrap_or(""));
                b.extend_from_slice(&generation_id.to_be_bytes());
                put_nullable_str(&mut b, protocol_name.as_deref());
                put_nullable_str(&mut b, leader.as_deref());
                b.extend_from_slice(&now_ms.to_be_bytes());
                b.extend_from_slice(&(members.len() as i32).to_be_bytes());
                for m in members {
                    put_str(&mut b, &m.member_id);
                    put_nullable_str(&mut b, m.group_instance_id.as_deref());
                    put_str(&mut b, &m.client_id);
                    put_str(&mut b, &m.client_host);
                    b.extend_from_slice(&m.rebalance_timeout_ms.to_be_bytes());
                    b.extend_from_slice(&m.session_timeout_ms.to_be_bytes());
                    let subscription = protocol_name
                        .as_deref()
                        .and_then(|p| m.protocols.iter().find(|(n, _)| n == p))
                        .map(|(_, meta)| meta.as_ref())
                        .unwrap_or_default();
                    put_bytes(&mut b, subscription);
                    put_bytes(&mut b, &m.assignment);
                }
                out.push(ViewRecord {
                    partition_key: group.clone(),
                    key: group_key(group),
                    value: Some(b),
                });
            }
            StoreRecord::DeleteGroup { group } => out.push(ViewRecord {
                partition_key: group.clone(),
                key: group_key(group),
                value: None,
            }),
            StoreRecord::ConsumerGroup(_) | StoreRecord::StreamsGroup(_) => {}
        }
    }
    out
}

/// The view records of the coordinator's whole state (re-published at start-up).
pub fn state_view(coord: &Coordinator, now_ms: i64) -> Vec<ViewRecord> {
    let mut records = Vec::new();
    for g in coord.groups() {
        records.push(g.metadata_record());
        for ((topic, partition), v) in &g.offsets {
            records.push(StoreRecord::Offset {
                group: g.group_id.clone(),
                topic: topic.clone(),
                partition: *partition,
                value: Some(v.clone()),
            });
        }
    }
    view_records(&records, now_ms)
}

/// The topic, created (compacted, as Kafka's) if it does not exist yet: at the first
/// FindCoordinator for a group, as Kafka does, or at the first record of the view.
pub fn ensure_topic(topics: &TopicRegistry, partitions: i32) -> io::Result<Arc<Topic>> {
    if let Some(t) = topics.get(TOPIC) {
        return Ok(t);
    }
    let config = TopicConfig::from_pairs([
        ("cleanup.policy", Some("compact")),
        ("compression.type", Some("producer")),
        ("segment.bytes", Some(SEGMENT_BYTES)),
    ])
    .map_err(io::Error::other)?;
    match topics.create(TOPIC, partitions.max(1), config)? {
        Some(t) => {
            tracing::info!(topic = TOPIC, partitions, "created the offsets topic");
            Ok(t)
        }
        None => topics
            .get(TOPIC)
            .ok_or_else(|| io::Error::other("the offsets topic vanished while created")),
    }
}

/// Encodes `records` as uncompressed batches of at most [`MAX_BATCH_BYTES`] each (a record
/// larger than that gets a batch of its own).
fn batches(records: &[&ViewRecord], now_ms: i64) -> io::Result<Vec<Bytes>> {
    let mut out = Vec::new();
    let mut chunk: Vec<Record> = Vec::new();
    let mut chunk_bytes = 0usize;
    let flush = |chunk: &mut Vec<Record>, out: &mut Vec<Bytes>| -> io::Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            chunk.iter(),
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .map_err(|e| io::Error::other(format!("encoding an offsets topic batch: {e}")))?;
        out.push(buf.freeze());
        chunk.clear();
        Ok(())
    };
    for r in records {
        // Key and value plus a generous bound on the record's framing in the batch.
        let size = r.key.len() + r.value.as_ref().map_or(0, Vec::len) + 64;
        if chunk_bytes + size > MAX_BATCH_BYTES {
            flush(&mut chunk, &mut out)?;
            chunk_bytes = 0;
        }
        chunk.push(Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: chunk.len() as i64,
            // The encoder starts a new batch where offset - sequence changes: a constant
            // difference keeps one batch, whose base sequence is -1 (no producer).
            sequence: chunk.len() as i32 - 1,
            timestamp: now_ms,
            key: Some(Bytes::copy_from_slice(&r.key)),
            value: r.value.as_deref().map(Bytes::copy_from_slice),
            headers: IndexMap::new(),
        });
        chunk_bytes += size;
    }
    flush(&mut chunk, &mut out)?;
    Ok(out)
}

/// Appends the view to the topic's partitions, on the group store's sync thread.
pub struct OffsetsTopicView {
    pub topics: Arc<TopicRegistry>,
    pub syncer: Arc<Syncer>,
    pub health: StorageHealth,
    /// offsets.topic.num.partitions, for the topic's creation (an existing topic keeps its
    /// count, which then picks the partitions).
    pub partitions: i32,
    pub log_limit: LogLimiter,
}

impl ViewSink for OffsetsTopicView {
    fn publish(&mut self, records: Vec<ViewRecord>) {
        if self.health.is_offline() {
            return;
        }
        let topic = match ensure_topic(&self.topics, self.partitions) {
            Ok(t) => t,
            Err(e) => {
                self.health.fail("creating the offsets topic", &e);
                return;
            }
        };
        let n = topic.partitions.len() as i32;
        let mut by_partition: BTreeMap<i32, Vec<&ViewRecord>> = BTreeMap::new();
        for r in &records {
            by_partition
                .entry(partition_for(&r.partition_key, n))
                .or_default()
                .push(r);
        }
        let now_ms = crate::clock::now_ms();
        let cfg = topic.config.log_config();
        for (index, records) in by_partition {
            let Some(partition) = topic.partition(index) else {
                continue;
            };
            let batches = match batches(&records, now_ms) {
                Ok(b) => b,
                Err(e) => {
                    crate::warn_limited!(self.log_limit, "offsets.topic.encode", error = %e, "offsets topic view: a batch was not written");
                    continue;
                }
            };
            for batch in batches {
                let appended = partition.log().append(&batch, &cfg, now_ms);
                match appended {
                    Ok(_) => self.syncer.request(partition),
                    Err(AppendError::Io(e)) => {
                        self.health
                            .fail(&format!("appending to partition {TOPIC}-{index}"), &e);
                        return;
                    }
                    Err(e) => {
                        crate::warn_limited!(self.log_limit, "offsets.topic.append", error = %e, partition = index, "offsets topic view: a batch was refused");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::coordinator::{CommittedOffset, Member};

    #[test]
    fn partition_for_is_kafkas() {
        // Java: Math.abs("my-group".hashCode()) % 50, checked with jshell.
        assert_eq!("my-group".encode_utf16().count(), 8);
        assert_eq!(partition_for("", 50), 0);
        // "polygenelubricants".hashCode() == Integer.MIN_VALUE: Utils.abs maps it to 0.
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        // A hash that overflows: still in range.
        let p = partition_for(&"x".repeat(1000), 50);
        assert!((0..50).contains(&p));
        assert_eq!(partition_for("g", 1), 0);
    }

    #[test]
    fn offset_records_have_kafkas_layout() {
        let rs = view_records(
            &[StoreRecord::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 3,
                value: Some(CommittedOffset {
                    offset: 42,
                    leader_epoch: 7,
                    metadata: Some("m".into()),
                    commit_ms: 1000,
                }),
            }],
            0,
        );
        assert_eq!(rs.len(), 1);
        assert_eq!(
            rs[0].key,
            vec![0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 3],
            "type 1, group, topic, partition"
        );
        let mut v = vec![0, 3];
        v.extend_from_slice(&42i64.to_be_bytes());
        v.extend_from_slice(&7i32.to_be_bytes());
        v.extend_from_slice(&[0, 1, b'm']);
        v.extend_from_slice(&1000i64.to_be_bytes());
        assert_eq!(rs[0].value.as_deref(), Some(v.as_slice()));
        let tomb = view_records(
            &[StoreRecord::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 3,
                value: None,
            }],
            0,
        );
        assert_eq!(tomb[0].key, rs[0].key);
        assert_eq!(tomb[0].value, None);
    }

    #[test]
    fn group_metadata_has_kafkas_layout_and_deletion_is_a_tombstone() {
        let member = Member {
            member_id: "m1".into(),
            group_instance_id: None,
            client_id: "c".into(),
            client_host: "/h".into(),
            session_timeout_ms: 10,
            rebalance_timeout_ms: 20,
            protocols: vec![
                ("other".into(), Bytes::from_static(b"zz")),
                ("range".into(), Bytes::from_static(b"sub")),
            ],
            assignment: Bytes::from_static(b"as"),
            ..Member::default()
        };
        let rs = view_records(
            &[
                StoreRecord::Metadata {
                    group: "g".into(),
                    generation_id: 5,
                    protocol_type: Some("consumer".into()),
                    protocol_name: Some("range".into()),
                    leader: Some("m1".into()),
                    members: vec![member],
                    empty_since_ms: None,
                },
                StoreRecord::DeleteGroup { group: "g".into() },
            ],
            99,
        );
        assert_eq!(rs[0].key, vec![0, 2, 0, 1, b'g']);
        let mut v = vec![0, 3, 0, 8];
        v.extend_from_slice(b"consumer");
        v.extend_from_slice(&5i32.to_be_bytes());
        v.extend_from_slice(&[0, 5]);
        v.extend_from_slice(b"range");
        v.extend_from_slice(&[0, 2, b'm', b'1']);
        v.extend_from_slice(&99i64.to_be_bytes());
        v.extend_from_slice(&1i32.to_be_bytes());
        v.extend_from_slice(&[0, 2, b'm', b'1', 0xff, 0xff, 0, 1, b'c', 0, 2, b'/', b'h']);
        v.extend_from_slice(&20i32.to_be_bytes());
        v.extend_from_slice(&10i32.to_be_bytes());
        v.extend_from_slice(&[0, 0, 0, 3, b's', b'u', b'b', 0, 0, 0, 2, b'a', b's']);
        assert_eq!(rs[0].value.as_deref(), Some(v.as_slice()));
        assert_eq!(rs[1].key, rs[0].key);
        assert_eq!(rs[1].value, None);
    }

    #[test]
    fn large_views_are_split_into_bounded_batches() {
        let records: Vec<ViewRecord> = (0..2000)
            .map(|i| ViewRecord {
                partition_key: "g".into(),
                key: format!("k{i}").into_bytes(),
                value: Some(vec![0u8; 500]),
            })
            .collect();
        let refs: Vec<&ViewRecord> = records.iter().collect();
        let out = batches(&refs, 0).expect("encode");
        assert!(out.len() > 1);
        let sizes: Vec<usize> = out.iter().map(Bytes::len).collect();
        // Each well below the topic's max.message.bytes (Kafka's default, 1 MiB), which the
        // log enforces.
        let max_message_bytes = TopicConfig::default().log_config().max_message_bytes;
        assert!(
            sizes
                .iter()
                .all(|&n| n <= MAX_BATCH_BYTES * 2 && n < max_message_bytes),
            "{sizes:?}"
        );
        let total: usize = out
            .iter()
            .map(|b| {
                vltava_storage::batch::validate(b)
                    .expect("a valid batch")
                    .records_count as usize
            })
            .sum();
        assert_eq!(total, 2000);
    }
}
