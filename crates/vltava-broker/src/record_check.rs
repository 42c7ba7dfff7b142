//! Record-level checks at produce time, done before the batch is appended (Kafka's
//! LogValidator does the same work): every record readable, timestamps in range, and what a
//! few topics ask for:
//!
//! - compacted topics refuse records without a key (a key is what compaction keeps);
//! - topics with `confluent.value.schema.validation` / `confluent.key.schema.validation` refuse
//!   a value (key) that is not in the Schema Registry wire format — magic byte 0, then a
//!   big-endian schema id registered under `<topic>-value` (`<topic>-key`).
//!
//! The registered ids come from the registry's own `_schemas` topic, read straight from this
//! broker's log: [`SchemaIds`] is the index (a pure state machine fed the topic's records) and
//! [`refresh_schema_ids`] feeds it what was appended since the last look. A topic whose
//! `compression.type` names a codec gets its batches recompressed here too.

use std::collections::{HashMap, HashSet};

use vltava_storage::batch::{BatchHeader, BatchWalker};
use vltava_storage::cleaner::MAX_RECORDS_BYTES;
use vltava_storage::codec::CODEC_NONE;
use vltava_storage::records::{batch_records, for_each_record, parse_records, recompress_batch};

/// A record timestamp of -1: none given (Kafka's `RecordBatch.NO_TIMESTAMP`).
const NO_TIMESTAMP: i64 = -1;

use crate::topics::{Topic, TopicRegistry};

/// The Schema Registry's storage topic (Confluent's `kafkastore.topic` default).
pub const SCHEMAS_TOPIC: &str = "_schemas";
/// Most bytes read from `_schemas` per refresh step.
const REFRESH_READ_BYTES: u64 = 1 << 20;

/// Why a batch was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordProblem {
    /// The batch's records cannot be read (CORRUPT_MESSAGE).
    Corrupt(String),
    /// Records break the topic's rules: every one of them (INVALID_RECORD, or INVALID_TIMESTAMP
    /// when a timestamp is out of range).
    Invalid {
        errors: Vec<RecordError>,
        invalid_timestamp: bool,
    },
}

/// Which schema ids are registered under which subject, as the `_schemas` topic says.
#[derive(Debug, Default)]
pub struct SchemaIds {
    /// The next `_schemas` offset to read.
    pub next_offset: i64,
    /// (subject, version) → (schema id, soft-deleted).
    versions: HashMap<(String, i64), (i32, bool)>,
    /// Subjects wholly deleted up to a version (DELETE_SUBJECT records).
    deleted_up_to: HashMap<String, i64>,
}

#[derive(serde::Deserialize)]
struct SchemaKey {
    keytype: String,
    subject: Option<String>,
    version: Option<i64>,
}

#[derive(serde::Deserialize)]
struct SchemaValue {
    id: i32,
    #[serde(default)]
    deleted: bool,
}

#[derive(serde::Deserialize)]
struct DeleteSubjectValue {
    version: i64,
}

impl SchemaIds {
    /// Applies one `_schemas` record. Records this index does not understand are skipped.
    pub fn apply(&mut self, key: &[u8], value: Option<&[u8]>) {
        let Ok(k) = serde_json::from_slice::<SchemaKey>(key) else {
            return;
        };
        let Some(subject) = k.subject else { return };
        match (k.keytype.as_str(), value) {
            ("SCHEMA", Some(v)) => {
                if let (Some(version), Ok(v)) =
                    (k.version, serde_json::from_slice::<SchemaValue>(v))
                {
                    self.versions.insert((subject, version), (v.id, v.deleted));
                }
            }
            ("SCHEMA", None) => {
                if let Some(version) = k.version {
                    self.versions.remove(&(subject, version));
                }
            }
            ("DELETE_SUBJECT", Some(v)) => {
                if let Ok(d) = serde_json::from_slice::<DeleteSubjectValue>(v) {
                    self.deleted_up_to.insert(subject, d.version);
                }
            }
            _ => {}
        }
    }

    /// Whether `id` is the id of a live version of `subject`.
    pub fn is_registered(&self, subject: &str, id: i32) -> bool {
        let deleted_up_to = self.deleted_up_to.get(subject).copied().unwrap_or(0);
        self.versions.iter().any(|((s, version), &(i, deleted))| {
            s == subject && i == id && !deleted && *version > deleted_up_to
        })
    }

    /// The ids live under `subject` (for tests and diagnostics).
    pub fn ids(&self, subject: &str) -> HashSet<i32> {
        self.versions
            .iter()
            .filter(|((s, _), (_, deleted))| s == subject && !deleted)
            .map(|(_, (id, _))| *id)
            .collect()
    }
}

/// Feeds `schema_ids` the `_schemas` records appended since the last refresh.
pub fn refresh_schema_ids(topics: &TopicRegistry, schema_ids: &std::sync::Mutex<SchemaIds>) {
    let Some(topic) = topics.get(SCHEMAS_TOPIC) else {
        return;
    };
    let Some(partition) = topic.partitions.first() else {
        return;
    };
    let mut ids = schema_ids.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let (plan, log_start) = {
            let log = partition.log();
            let start = log.log_start_offset();
            if ids.next_offset < start {
                ids.next_offset = start;
            }
            if ids.next_offset >= log.high_watermark() {
                return;
            }
            (log.read(ids.next_offset, REFRESH_READ_BYTES, true), start)
        };
        let data = match plan.and_then(|p| p.execute().map_err(Into::into)) {
            Ok(d) if !d.is_empty() => d,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, log_start, "cannot read {SCHEMAS_TOPIC}");
                return;
            }
        };
        for (pos, h) in BatchWalker::new(&data) {
            let batch = &data[pos..pos + h.size_bytes()];
            if !h.is_control() {
                if let Ok(raw) = batch_records(batch, &h, MAX_RECORDS_BYTES) {
                    if let Ok(records) = parse_records(&raw, h.records_count) {
                        for r in records {
                            let offset = h.base_offset + r.offset_delta as i64;
                            if offset >= ids.next_offset {
                                if let Some(k) = r.key {
                                    ids.apply(k, r.value);
                                }
                            }
                        }
                    }
                }
            }
            ids.next_offset = ids.next_offset.max(h.next_offset());
        }
    }
}

/// One record's refusal: its index in the batch and why (Kafka's `RecordError`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    pub batch_index: i32,
    pub message: String,
}

/// What the checks make of a batch that passes: the bytes to append when the topic's
/// `compression.type` asks the broker to recompress it, `None` to append it as sent.
pub type Checked = Option<Vec<u8>>;

/// Checks every record of one validated batch as Kafka's `LogValidator` does, reading the
/// records once (decompressed within `max.decompressed.message.bytes` and
/// [`MAX_RECORDS_BYTES`]):
///
/// - the records parse and their offset deltas are consecutive from 0 (else CORRUPT_MESSAGE:
///   a poison batch would stop every consumer of the partition at it);
/// - with CreateTime, every timestamp lies within message.timestamp.before.max.ms behind and
///   message.timestamp.after.max.ms ahead of `now_ms` (INVALID_TIMESTAMP);
/// - on compacted topics every record has a key, and with schema validation every key/value
///   carries a registered schema id (INVALID_RECORD).
///
/// Every refused record is reported, not only the first (librdkafka fails the whole batch on
/// INVALID_RECORD without them). A batch that passes is recompressed when the topic's
/// `compression.type` names a codec other than the batch's.
pub fn check_produce(
    topics: &TopicRegistry,
    schema_ids: &std::sync::Mutex<SchemaIds>,
    topic: &Topic,
    batch: &[u8],
    h: &BatchHeader,
    now_ms: i64,
) -> Result<Checked, RecordProblem> {
    let limit_bytes = MAX_RECORDS_BYTES.min(topic.config.max_decompressed_bytes());
    let body = batch
        .get(vltava_storage::batch::BATCH_HEADER_BYTES..h.size_bytes())
        .unwrap_or_default();
    let inflated;
    let raw: &[u8] = if h.compression() == CODEC_NONE {
        body
    } else {
        inflated = batch_records(batch, h, limit_bytes).map_err(|e| {
            RecordProblem::Corrupt(format!("the batch's records cannot be decompressed: {e}"))
        })?;
        &inflated
    };
    let compact = topic.config.compact();
    let (check_key, check_value) = topic.config.schema_validation();
    if check_key || check_value {
        refresh_schema_ids(topics, schema_ids);
    }
    let ids =
        (check_key || check_value).then(|| schema_ids.lock().unwrap_or_else(|e| e.into_inner()));
    let bounds = topic.config.timestamp_bounds_ms();
    let mut errors: Vec<RecordError> = Vec::new();
    let mut invalid_timestamp = false;
    for_each_record(raw, h.records_count, |i, r| {
        if r.offset_delta != i {
            return Err(format!(
                "record {i}: offset delta {}, inner offsets must be consecutive",
                r.offset_delta
            ));
        }
        let mut refuse = |message: String| {
            errors.push(RecordError {
                batch_index: i,
                message,
            })
        };
        if let Some((before_ms, after_ms)) = bounds {
            let ts = h.base_timestamp.saturating_add(r.timestamp_delta);
            if ts != NO_TIMESTAMP
                && (now_ms.saturating_sub(ts) > before_ms || ts.saturating_sub(now_ms) > after_ms)
            {
                invalid_timestamp = true;
                refuse(format!(
                    "Timestamp {ts} of message with offset {i} is out of range. The timestamp should be within [{}, {}]",
                    now_ms.saturating_sub(before_ms),
                    now_ms.saturating_add(after_ms)
                ));
                return Ok(());
            }
        }
        if compact && r.key.is_none() {
            refuse(format!(
                "Compacted topic cannot accept message without key in topic partition {}.",
                topic.name
            ));
            return Ok(());
        }
        if let Some(ids) = &ids {
            for (on, field, what) in [(check_key, r.key, "key"), (check_value, r.value, "value")] {
                let Some(bytes) = field.filter(|_| on) else {
                    continue;
                };
                let subject = format!("{}-{what}", topic.name);
                let problem = match bytes {
                    [0, a, b, c, d, ..] => {
                        let id = i32::from_be_bytes([*a, *b, *c, *d]);
                        (!ids.is_registered(&subject, id)).then(|| format!(
                            "Record {i} of the batch failed schema validation: {what} schema id {id} is not registered under subject '{subject}'"
                        ))
                    }
                    _ => Some(format!(
                        "Record {i} of the batch failed schema validation: the {what} is not in the Schema Registry wire format (magic byte 0 and a schema id) required by confluent.{what}.schema.validation"
                    )),
                };
                if let Some(m) = problem {
                    refuse(m);
                    return Ok(());
                }
            }
        }
        Ok(())
    })
    .map_err(RecordProblem::Corrupt)?;
    if !errors.is_empty() {
        return Err(RecordProblem::Invalid {
            errors,
            invalid_timestamp,
        });
    }
    match topic.config.compression() {
        Some((codec, level)) if codec != h.compression() => {
            recompress_batch(batch, raw, h.records_count, codec, level)
                .map(Some)
                .map_err(|e| RecordProblem::Corrupt(format!("cannot recompress the batch: {e}")))
        }
        _ => Ok(None),
    }
}

/// Kafka's `LogValidator.processRecordErrors` message for a refused batch.
pub fn record_errors_message(errors: &[RecordError], invalid_timestamp: bool) -> String {
    if invalid_timestamp {
        return "One or more records have been rejected due to invalid timestamp".to_string();
    }
    let shown: Vec<String> = errors
        .iter()
        .take(3)
        .map(|e| {
            format!(
                "RecordError(batchIndex={}, message='{}')",
                e.batch_index, e.message
            )
        })
        .collect();
    format!(
        "One or more records have been rejected due to {} record errors in total, and only showing the first three errors at most: [{}]",
        errors.len(),
        shown.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_ids_follow_registrations_and_deletes() {
        let mut ids = SchemaIds::default();
        let key = |s: &str, v: i64| {
            format!(r#"{{"keytype":"SCHEMA","subject":"{s}","version":{v},"magic":1}}"#)
        };
        let val = |s: &str, v: i64, id: i32, deleted: bool| {
            format!(
                r#"{{"subject":"{s}","version":{v},"id":{id},"schema":"\"string\"","deleted":{deleted}}}"#
            )
        };
        ids.apply(
            key("t-value", 1).as_bytes(),
            Some(val("t-value", 1, 7, false).as_bytes()),
        );
        ids.apply(
            key("t-value", 2).as_bytes(),
            Some(val("t-value", 2, 9, false).as_bytes()),
        );
        ids.apply(b"{\"keytype\":\"NOOP\",\"magic\":0}", None);
        ids.apply(b"not json", Some(b"x"));
        assert!(ids.is_registered("t-value", 7));
        assert!(!ids.is_registered("t-key", 7));
        assert!(!ids.is_registered("t-value", 8));
        // Soft delete of version 1, then hard delete of it.
        ids.apply(
            key("t-value", 1).as_bytes(),
            Some(val("t-value", 1, 7, true).as_bytes()),
        );
        assert!(!ids.is_registered("t-value", 7));
        ids.apply(key("t-value", 1).as_bytes(), None);
        assert_eq!(ids.ids("t-value"), HashSet::from([9]));
        // A DELETE_SUBJECT up to version 2.
        ids.apply(
            br#"{"keytype":"DELETE_SUBJECT","subject":"t-value","magic":0}"#,
            Some(br#"{"subject":"t-value","version":2}"#),
        );
        assert!(!ids.is_registered("t-value", 9));
    }
}
