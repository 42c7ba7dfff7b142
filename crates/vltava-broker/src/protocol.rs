//! The Kafka wire protocol at the edge: request header parsing, the version table the broker
//! advertises, and response framing. Pure functions over bytes; no I/O.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::buf::ByteBufMut;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use vltava_storage::FileRange;

/// The APIs and versions Vltava implements, and so advertises. Produce is advertised from v0
/// although v0–2 (message formats v0/v1) are refused, as Kafka 4.0 does: older librdkafka decides
/// which compression codecs it may use from the advertised minimum.
pub const SUPPORTED_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 0, 13),
    (ApiKey::Fetch, 4, 17),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    (ApiKey::StreamsGroupHeartbeat, 0, 0),
    (ApiKey::StreamsGroupDescribe, 0, 0),
    (ApiKey::DescribeTopicPartitions, 0, 0),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::AlterReplicaLogDirs, 1, 2),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::AlterPartitionReassignments, 0, 0),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::DescribeQuorum, 0, 2),
    (ApiKey::DescribeProducers, 0, 0),
    (ApiKey::ListConfigResources, 0, 1),
];

/// The lowest Produce version whose records the broker can read (message format v2).
pub const MIN_DECODABLE_PRODUCE_VERSION: i16 = 3;

pub fn supported_range(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED_APIS
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|&(_, min, max)| (min, max))
}

/// The first eight bytes of every request, read without the codec so that a request the broker
/// cannot decode can still be answered or logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawHeader {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
}

pub fn peek_header(frame: &[u8]) -> Option<RawHeader> {
    if frame.len() < 8 {
        return None;
    }
    Some(RawHeader {
        api_key: i16::from_be_bytes([frame[0], frame[1]]),
        api_version: i16::from_be_bytes([frame[2], frame[3]]),
        correlation_id: i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]),
    })
}

/// Why a connection is closed instead of answered (Kafka closes it in the same cases).
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("frame of {0} bytes is shorter than a request header")]
    ShortFrame(usize),
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    #[error("{key:?} v{version} is not supported")]
    UnsupportedVersion { key: ApiKey, version: i16 },
    #[error("cannot decode {key:?} v{version}: {reason}")]
    Malformed {
        key: ApiKey,
        version: i16,
        reason: String,
    },
    #[error("{key:?} v{version} failed inside the broker: {reason}")]
    Internal {
        key: ApiKey,
        version: i16,
        reason: String,
    },
    #[error("cannot encode the response to {key:?} v{version}: {reason}")]
    Encode {
        key: ApiKey,
        version: i16,
        reason: String,
    },
}

/// Decodes the request header, leaving `frame` at the start of the body.
pub fn decode_header(
    frame: &mut Bytes,
    key: ApiKey,
    version: i16,
) -> Result<RequestHeader, ProtocolError> {
    let hv = key.request_header_version(version);
    RequestHeader::decode(frame, hv).map_err(|e| ProtocolError::Malformed {
        key,
        version,
        reason: e.to_string(),
    })
}

pub fn decode_body<T: Decodable>(
    frame: &mut Bytes,
    key: ApiKey,
    version: i16,
) -> Result<T, ProtocolError> {
    T::decode(frame, version).map_err(|e| ProtocolError::Malformed {
        key,
        version,
        reason: e.to_string(),
    })
}

/// Encodes a size-prefixed response frame.
pub fn encode_response<R: Encodable + HeaderVersion>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &R,
) -> Result<Bytes, ProtocolError> {
    let buf = encode_with(key, version, correlation_id, body, |size| {
        BytesMut::with_capacity(4 + size)
    })?;
    Ok(buf.freeze())
}

/// Encodes size, header and body into the buffer `make(size)` returns.
fn encode_with<R: Encodable + HeaderVersion, B: ByteBufMut>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &R,
    make: impl FnOnce(usize) -> B,
) -> Result<B, ProtocolError> {
    let err = |e: anyhow::Error| ProtocolError::Encode {
        key,
        version,
        reason: e.to_string(),
    };
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let hv = R::header_version(version);
    let size = header.compute_size(hv).map_err(err)? + body.compute_size(version).map_err(err)?;
    let mut buf = make(size);
    buf.put_i32(size as i32);
    header.encode(&mut buf, hv).map_err(err)?;
    body.encode(&mut buf, version).map_err(err)?;
    Ok(buf)
}

/// Byte fields at least this long are sent from their own buffer instead of being copied into
/// the encoded response.
const SHARED_MIN_BYTES: usize = 4096;

/// A piece of an encoded response, written to the socket in order: bytes, or whole record
/// batches of a segment file, which go from the page cache to the socket (`sendfile`).
#[derive(Debug, Clone)]
pub enum Chunk {
    Bytes(Bytes),
    File(FileRange),
}

impl Chunk {
    pub fn len(&self) -> usize {
        match self {
            Chunk::Bytes(b) => b.len(),
            Chunk::File(r) => r.len_bytes as usize,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A byte field of a response body that goes to the socket from elsewhere: the body holds
/// `stand_in` (only its address and length matter), and `chunk` is sent in its place.
#[derive(Debug, Clone)]
pub struct Shared {
    pub stand_in: Bytes,
    pub chunk: Chunk,
}

impl Shared {
    /// Bytes sent from their own buffer.
    pub fn bytes(b: Bytes) -> Shared {
        Shared {
            stand_in: b.clone(),
            chunk: Chunk::Bytes(b),
        }
    }

    /// A file range, if it is short enough to have a stand-in ([`FILE_STAND_IN_MAX_BYTES`]).
    pub fn file(r: FileRange) -> Option<Shared> {
        let len = usize::try_from(r.len_bytes).ok()?;
        let stand_in = stand_in(len)?;
        Some(Shared {
            stand_in: Bytes::from_static(stand_in),
            chunk: Chunk::File(r),
        })
    }
}

/// The longest file range a response can send in place of a byte field.
pub const FILE_STAND_IN_MAX_BYTES: usize = 16 * 1024 * 1024;

/// What a response body holds in place of the record batches sent from a file: zeros that are
/// never read or written (the encoder sees only their address and length). The cell keeps them
/// in `.bss` rather than in the binary's read-only data, so the pages are never mapped in.
struct StandIn(std::cell::UnsafeCell<[u8; FILE_STAND_IN_MAX_BYTES]>);

// SAFETY: the bytes are never written, so shared references to them from any thread are sound.
unsafe impl Sync for StandIn {}

static STAND_IN: StandIn = StandIn(std::cell::UnsafeCell::new([0; FILE_STAND_IN_MAX_BYTES]));

/// The first `len` stand-in bytes, if there are that many.
fn stand_in(len: usize) -> Option<&'static [u8]> {
    // SAFETY: nothing ever writes through the cell, so this shared reference never aliases a
    // mutable one.
    let all: &'static [u8; FILE_STAND_IN_MAX_BYTES] = unsafe { &*STAND_IN.0.get() };
    all.get(..len)
}

/// An encode buffer that keeps the given large byte fields (a fetch's record batches) out of
/// the encoded bytes: the response becomes a list of chunks written back to back, and the
/// records go from their read buffer or their file to the socket with no copy.
struct ChunkedBuf<'a> {
    done: Vec<Chunk>,
    done_len: usize,
    cur: BytesMut,
    shared: &'a [Shared],
    /// Where the next shared field is looked for first: stand-ins of equal length share their
    /// address, so they are matched in order.
    next_shared: usize,
}

impl ChunkedBuf<'_> {
    /// Joins everything into `cur` (only if an encoder seeks back, which response bodies don't).
    fn flatten(&mut self) {
        if self.done.is_empty() {
            return;
        }
        let mut all = BytesMut::with_capacity(self.done_len + self.cur.len());
        for c in self.done.drain(..) {
            match c {
                Chunk::Bytes(b) => all.extend_from_slice(&b),
                // Unreachable: response bodies never seek back. Were one to, the stand-in's
                // zeros must not go out in place of records: read them.
                Chunk::File(r) => {
                    let mut buf = vec![0u8; r.len_bytes as usize];
                    if std::os::unix::fs::FileExt::read_exact_at(
                        r.file.as_ref(),
                        &mut buf,
                        r.position,
                    )
                    .is_err()
                    {
                        tracing::error!(
                            "cannot read back a file range while re-encoding a response"
                        );
                    }
                    all.extend_from_slice(&buf);
                }
            }
        }
        all.extend_from_slice(&self.cur);
        self.cur = all;
        self.done_len = 0;
    }

    fn into_chunks(mut self) -> Vec<Chunk> {
        if !self.cur.is_empty() {
            self.done.push(Chunk::Bytes(self.cur.freeze()));
        }
        self.done
    }
}

// SAFETY: every method delegates to `BytesMut`, whose `BufMut` implementation upholds the
// trait's contract; `put_slice` only appends (to `cur` or as a whole chunk).
unsafe impl BufMut for ChunkedBuf<'_> {
    fn remaining_mut(&self) -> usize {
        self.cur.remaining_mut()
    }
    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller guarantees `cnt` bytes of `chunk_mut()` (which is `cur`'s) were
        // initialised, exactly `BytesMut::advance_mut`'s requirement.
        unsafe { self.cur.advance_mut(cnt) }
    }
    fn chunk_mut(&mut self) -> &mut bytes::buf::UninitSlice {
        self.cur.chunk_mut()
    }
    fn put_slice(&mut self, src: &[u8]) {
        if src.len() >= SHARED_MIN_BYTES {
            let is =
                |s: &Shared| s.stand_in.as_ptr() == src.as_ptr() && s.stand_in.len() == src.len();
            let n = self.shared.len();
            let found = (0..n)
                .map(|i| (self.next_shared + i) % n)
                .find(|&i| is(&self.shared[i]));
            if let Some(i) = found {
                self.next_shared = i + 1;
                let chunk = self.shared[i].chunk.clone();
                let head = self.cur.split().freeze();
                self.done_len += head.len() + chunk.len();
                if !head.is_empty() {
                    self.done.push(Chunk::Bytes(head));
                }
                self.done.push(chunk);
                return;
            }
        }
        self.cur.extend_from_slice(src);
    }
}

impl ByteBufMut for ChunkedBuf<'_> {
    fn offset(&self) -> usize {
        self.done_len + self.cur.len()
    }
    fn seek(&mut self, offset: usize) {
        self.flatten();
        self.cur.seek(offset);
    }
    fn range(&mut self, r: std::ops::Range<usize>) -> &mut [u8] {
        self.flatten();
        self.cur.range(r)
    }
}

/// Like [`encode_response`], but the byte fields in `shared` (record batches read for a fetch)
/// are not copied: the response is the returned chunks, in order, with each shared field's
/// chunk in place of its stand-in.
pub fn encode_response_chunks<R: Encodable + HeaderVersion>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &R,
    shared: &[Shared],
) -> Result<Vec<Chunk>, ProtocolError> {
    let shared_len: usize = shared.iter().map(|s| s.stand_in.len()).sum();
    let buf = encode_with(key, version, correlation_id, body, |size| ChunkedBuf {
        done: Vec::new(),
        done_len: 0,
        cur: BytesMut::with_capacity((4 + size).saturating_sub(shared_len).max(64)),
        shared,
        next_shared: 0,
    })?;
    Ok(buf.into_chunks())
}

/// The ApiVersions body listing [`SUPPORTED_APIS`].
/// The features (KIP-584) this node supports, with the level it runs at (the finalized level):
/// `(name, min, max, finalized)`. `metadata.version` 25 is Kafka 4.0-IV3, the 4.0 broker whose
/// APIs Vltava implements; `group.version` 1 is the KIP-848 consumer group protocol;
/// `streams.version` 1 is the KIP-1071 streams group protocol. The others are at 0: Vltava has
/// no transactions (TV2), share groups, ELR or KRaft voter changes yet, and clients must not use
/// them.
pub const FEATURES: &[(&str, i16, i16, i16)] = &[
    ("metadata.version", 7, 25, 25),
    ("group.version", 0, 1, 1),
    ("kraft.version", 0, 0, 0),
    ("transaction.version", 0, 0, 0),
    ("share.version", 0, 0, 0),
    ("streams.version", 0, 1, 1),
    ("eligible.leader.replicas.version", 0, 0, 0),
];

/// The epoch of the finalized features: they never change while Vltava runs.
pub const FINALIZED_FEATURES_EPOCH: i64 = 1;

pub fn api_versions_body(error_code: i16, only_api_versions: bool) -> ApiVersionsResponse {
    use kafka_protocol::messages::api_versions_response::{
        FinalizedFeatureKey, SupportedFeatureKey,
    };
    let api_keys = SUPPORTED_APIS
        .iter()
        .filter(|(k, _, _)| !only_api_versions || *k == ApiKey::ApiVersions)
        .map(|&(k, min, max)| {
            ApiVersion::default()
                .with_api_key(k as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect();
    let supported = FEATURES
        .iter()
        .map(|&(name, min, max, _)| {
            SupportedFeatureKey::default()
                .with_name(StrBytes::from_static_str(name))
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect();
    // Kafka lists a feature as finalized only at a level above 0.
    let finalized = FEATURES
        .iter()
        .filter(|&&(_, _, _, level)| level > 0)
        .map(|&(name, _, _, level)| {
            FinalizedFeatureKey::default()
                .with_name(StrBytes::from_static_str(name))
                .with_min_version_level(level)
                .with_max_version_level(level)
        })
        .collect();
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(api_keys)
        .with_supported_features(supported)
        .with_finalized_features_epoch(FINALIZED_FEATURES_EPOCH)
        .with_finalized_features(finalized)
}

/// Kafka's answer to an ApiVersions request of a version it does not know: the v0 body with
/// UNSUPPORTED_VERSION and the ApiVersions range, so that any client can parse it and retry.
pub fn unsupported_api_versions_response(correlation_id: i32) -> Result<Bytes, ProtocolError> {
    let body = api_versions_body(
        kafka_protocol::error::ResponseError::UnsupportedVersion.code(),
        true,
    );
    encode_response(ApiKey::ApiVersions, 0, correlation_id, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supported_ranges_are_within_the_codec() {
        for &(k, min, max) in SUPPORTED_APIS {
            let codec = k.valid_versions();
            let min = if k == ApiKey::Produce {
                MIN_DECODABLE_PRODUCE_VERSION
            } else {
                min
            };
            assert!(
                min >= codec.min && max <= codec.max,
                "{k:?} {min}..{max} vs {codec:?}"
            );
        }
    }

    #[test]
    fn unsupported_api_versions_reply_is_v0_with_error_35() {
        let frame = unsupported_api_versions_response(7).unwrap();
        // size, correlation id, error code, array of one entry.
        assert_eq!(&frame[4..8], &7i32.to_be_bytes());
        assert_eq!(&frame[8..10], &35i16.to_be_bytes());
        assert_eq!(&frame[10..14], &1i32.to_be_bytes());
        assert_eq!(&frame[14..16], &18i16.to_be_bytes());
        assert_eq!(frame.len(), 4 + 4 + 2 + 4 + 6);
    }

    #[test]
    fn chunked_fetch_responses_equal_the_copied_encoding_and_share_the_records() {
        let big = Bytes::from(vec![7u8; 100_000]);
        let small = Bytes::from_static(b"tiny");
        for version in [4i16, 11, 12, 16] {
            let resp = fetch_body(vec![big.clone(), small.clone(), big.clone()]);
            let whole = encode_response(ApiKey::Fetch, version, 9, &resp).unwrap();
            let chunks = encode_response_chunks(
                ApiKey::Fetch,
                version,
                9,
                &resp,
                &[Shared::bytes(big.clone()), Shared::bytes(small.clone())],
            )
            .unwrap();
            assert_eq!(join(&chunks), whole.to_vec(), "version {version}");
            let shared = chunks
                .iter()
                .filter(|c| matches!(c, Chunk::Bytes(b) if b.as_ptr() == big.as_ptr()))
                .count();
            assert_eq!(
                shared, 2,
                "both big record sets are sent from their own buffer"
            );
        }
    }

    /// A fetch response for topic "t" whose partitions 0, 1, ... hold these records.
    fn fetch_body(records: Vec<Bytes>) -> kafka_protocol::messages::FetchResponse {
        use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
        let partitions = records
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                PartitionData::default()
                    .with_partition_index(i as i32)
                    .with_records(Some(r))
            })
            .collect();
        kafka_protocol::messages::FetchResponse::default().with_responses(vec![
            FetchableTopicResponse::default()
                .with_topic(kafka_protocol::messages::TopicName(
                    kafka_protocol::protocol::StrBytes::from_static_str("t"),
                ))
                .with_partitions(partitions),
        ])
    }

    /// The chunks' bytes back to back, file ranges read from their files.
    fn join(chunks: &[Chunk]) -> Vec<u8> {
        let mut out = Vec::new();
        for c in chunks {
            match c {
                Chunk::Bytes(b) => out.extend_from_slice(b),
                Chunk::File(r) => {
                    let mut buf = vec![0u8; r.len_bytes as usize];
                    std::os::unix::fs::FileExt::read_exact_at(
                        r.file.as_ref(),
                        &mut buf,
                        r.position,
                    )
                    .unwrap();
                    out.extend_from_slice(&buf);
                }
            }
        }
        out
    }

    #[test]
    fn file_ranges_of_equal_length_go_out_in_place_of_their_stand_ins_in_order() {
        use std::io::Write;
        let mut f = tempfile::tempfile().unwrap();
        let (a, b) = (vec![1u8; 70_000], vec![2u8; 70_000]);
        f.write_all(&a).unwrap();
        f.write_all(&b).unwrap();
        let file = std::sync::Arc::new(f);
        let range = |position: u64| FileRange {
            file: file.clone(),
            position,
            len_bytes: 70_000,
            records: 1,
        };
        let shared = [
            Shared::file(range(0)).unwrap(),
            Shared::file(range(70_000)).unwrap(),
        ];
        assert_eq!(shared[0].stand_in.as_ptr(), shared[1].stand_in.as_ptr());
        let stand_ins = fetch_body(vec![shared[0].stand_in.clone(), shared[1].stand_in.clone()]);
        let chunks = encode_response_chunks(ApiKey::Fetch, 12, 3, &stand_ins, &shared).unwrap();
        let real = fetch_body(vec![Bytes::from(a), Bytes::from(b)]);
        let whole = encode_response(ApiKey::Fetch, 12, 3, &real).unwrap();
        assert_eq!(join(&chunks), whole.to_vec());
        assert_eq!(
            chunks
                .iter()
                .filter(|c| matches!(c, Chunk::File(_)))
                .count(),
            2
        );
        let too_long = FileRange {
            len_bytes: FILE_STAND_IN_MAX_BYTES as u64 + 1,
            ..range(0)
        };
        assert!(Shared::file(too_long).is_none());
    }
}
