//! Hostile and malformed input against an in-process broker: each bad request fails alone, the
//! broker keeps serving, and nothing acknowledged is lost. (The happy paths are proven by real
//! Kafka clients in tests/clients.)

mod common;

use bytes::{Buf, BufMut, BytesMut};
use common::*;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, MetadataRequest, MetadataResponse, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tokio::io::AsyncWriteExt;
use vltava_broker::{Broker, BrokerConfig};

#[tokio::test]
async fn oversized_frame_closes_only_that_connection() {
    let (b, _dir) = start(true).await;
    let mut s = connect(&b).await;
    // 1 GiB claimed; the broker must not allocate it.
    s.write_all(&(1i32 << 30).to_be_bytes()).await.unwrap();
    assert!(closed(&mut s).await);
    let mut neg = connect(&b).await;
    neg.write_all(&(-5i32).to_be_bytes()).await.unwrap();
    assert!(closed(&mut neg).await);
    broker_still_serves(&b).await;
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn unknown_api_key_and_version_close_the_connection() {
    let (b, _dir) = start(true).await;
    for (key, version) in [
        (9999i16, 0i16),
        (ApiKey::Metadata as i16, 99),
        (ApiKey::Produce as i16, 2),
        (ApiKey::SaslHandshake as i16, 0),
    ] {
        let mut s = connect(&b).await;
        let mut f = BytesMut::new();
        f.put_i32(10);
        f.put_i16(key);
        f.put_i16(version);
        f.put_i32(1);
        f.put_i16(-1);
        s.write_all(&f).await.unwrap();
        assert!(
            closed(&mut s).await,
            "api key {key} v{version} should close"
        );
    }
    broker_still_serves(&b).await;
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn api_versions_too_new_gets_the_v0_error_body() {
    let (b, _dir) = start(true).await;
    let mut s = connect(&b).await;
    let mut f = BytesMut::new();
    f.put_i32(10);
    f.put_i16(18);
    f.put_i16(99);
    f.put_i32(77);
    f.put_i16(-1);
    s.write_all(&f).await.unwrap();
    let mut body = read_frame(&mut s).await.expect("a reply");
    assert_eq!(body.get_i32(), 77);
    assert_eq!(body.get_i16(), 35);
    assert_eq!(body.get_i32(), 1);
    assert_eq!(body.get_i16(), 18);
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn truncated_and_garbage_bodies_close_the_connection() {
    let (b, _dir) = start(true).await;
    // A Metadata v12 header followed by an array length of 2^31-1 and nothing else.
    let mut s = connect(&b).await;
    let mut body = BytesMut::new();
    body.put_i16(ApiKey::Metadata as i16);
    body.put_i16(4);
    body.put_i32(1);
    body.put_i16(-1);
    body.put_i32(i32::MAX);
    let mut f = BytesMut::new();
    f.put_i32(body.len() as i32);
    f.extend_from_slice(&body);
    s.write_all(&f).await.unwrap();
    assert!(closed(&mut s).await);
    broker_still_serves(&b).await;
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn corrupt_batch_fails_its_partition_only() {
    let (b, _dir) = start(true).await;
    let mut s = connect(&b).await;
    let r = create_topic(&mut s, "crc", 2, &[]).await;
    assert_eq!(r.topics[0].error_code, 0);
    let good = batch(&["a", "b"]);
    let mut bad = BytesMut::from(&batch(&["c", "d"])[..]);
    let n = bad.len();
    bad[n - 1] ^= 0xff;
    let resp: ProduceResponse = call(
        &mut s,
        &produce_req("crc", vec![(0, good), (1, bad.freeze())]),
        9,
    )
    .await
    .expect("produce");
    let parts = &resp.responses[0].partition_responses;
    let by_index = |i: i32| parts.iter().find(|p| p.index == i).expect("partition");
    assert_eq!(by_index(0).error_code, 0, "{:?}", by_index(0).error_message);
    assert_eq!(by_index(0).base_offset, 0);
    assert_eq!(by_index(1).error_code, 2, "CORRUPT_MESSAGE");
    assert_eq!(fetch_count(&mut s, "crc", 0).await, (0, 2));
    assert_eq!(fetch_count(&mut s, "crc", 1).await, (0, 0));
    // A batch whose length field lies.
    let mut short = BytesMut::from(&batch(&["e"])[..]);
    short.truncate(short.len() - 3);
    let resp: ProduceResponse = call(&mut s, &produce_req("crc", vec![(0, short.freeze())]), 7)
        .await
        .expect("produce");
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 2);
    // Two batches in one partition's records.
    let mut two = BytesMut::from(&batch(&["f"])[..]);
    two.extend_from_slice(&batch(&["g"]));
    let resp: ProduceResponse = call(&mut s, &produce_req("crc", vec![(0, two.freeze())]), 7)
        .await
        .expect("produce");
    assert_eq!(
        resp.responses[0].partition_responses[0].error_code, 87,
        "INVALID_RECORD"
    );
    assert_eq!(fetch_count(&mut s, "crc", 0).await, (0, 2));
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn too_large_batch_unknown_topic_and_bad_configs() {
    let (b, _dir) = start(false).await;
    let mut s = connect(&b).await;
    let r = create_topic(&mut s, "small", 1, &[("max.message.bytes", "200")]).await;
    assert_eq!(r.topics[0].error_code, 0);
    let big = "x".repeat(500);
    let resp: ProduceResponse = call(&mut s, &produce_req("small", vec![(0, batch(&[&big]))]), 7)
        .await
        .expect("produce");
    assert_eq!(
        resp.responses[0].partition_responses[0].error_code, 10,
        "MESSAGE_TOO_LARGE"
    );
    let resp: ProduceResponse = call(&mut s, &produce_req("nope", vec![(0, batch(&["a"]))]), 7)
        .await
        .expect("produce");
    assert_eq!(
        resp.responses[0].partition_responses[0].error_code, 3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    let resp: ProduceResponse = call(&mut s, &produce_req("small", vec![(7, batch(&["a"]))]), 7)
        .await
        .expect("produce");
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 3);
    // Auto-create off: metadata does not create.
    let md: MetadataResponse = call(
        &mut s,
        &MetadataRequest::default()
            .with_topics(Some(vec![MetadataRequestTopic::default()
                .with_name(Some(TopicName(StrBytes::from_static_str("nope"))))]))
            .with_allow_auto_topic_creation(true),
        12,
    )
    .await
    .expect("metadata");
    assert_eq!(md.topics[0].error_code, 3);
    assert_eq!(
        create_topic(&mut s, "bad name!", 1, &[]).await.topics[0].error_code,
        17,
        "INVALID_TOPIC_EXCEPTION"
    );
    let r = create_topic(&mut s, "cfg", 1, &[("retention.ms", "abc")]).await;
    assert_eq!(r.topics[0].error_code, 40, "INVALID_CONFIG");
    assert!(r.topics[0]
        .error_message
        .as_ref()
        .is_some_and(|m| m.contains("retention.ms")));
    assert_eq!(
        create_topic(&mut s, "cfg", 1, &[("no.such.config", "1")])
            .await
            .topics[0]
            .error_code,
        40
    );
    assert_eq!(
        create_topic(&mut s, "zero", 0, &[]).await.topics[0].error_code,
        37,
        "INVALID_PARTITIONS"
    );
    assert_eq!(
        create_topic(&mut s, "small", 1, &[]).await.topics[0].error_code,
        36,
        "TOPIC_ALREADY_EXISTS"
    );
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn acknowledged_data_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = BrokerConfig::new("127.0.0.1:0".parse().unwrap(), dir.path());
    let b = Broker::start(cfg.clone()).await.unwrap();
    let mut s = connect(&b).await;
    // The test batches carry 2023 timestamps: under the default retention.ms (7 days) the
    // retention pass that runs at start-up could delete them before the fetch below.
    create_topic(&mut s, "keep", 1, &[("retention.ms", "-1")]).await;
    for i in 0..20 {
        let v = format!("v{i}");
        let resp: ProduceResponse = call(
            &mut s,
            &produce_req("keep", vec![(0, batch(&[&v, "x"]))]),
            9,
        )
        .await
        .unwrap();
        assert_eq!(resp.responses[0].partition_responses[0].base_offset, i * 2);
    }
    drop(s);
    b.shutdown().await.unwrap();
    let b = Broker::start(cfg).await.unwrap();
    let mut s = connect(&b).await;
    assert_eq!(fetch_count(&mut s, "keep", 0).await, (0, 40));
    b.shutdown().await.unwrap();
}

/// Zigzag varint, as the v2 record format writes its lengths and deltas.
fn varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        let b = (z & 0x7f) as u8;
        z >>= 7;
        if z == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// One record: no key, `value`, `headers` declared (none written) — with the length prefix.
fn record(value_len: i64, value: &[u8], headers: i64) -> Vec<u8> {
    let mut body = vec![0u8]; // attributes
    varint(&mut body, 0); // timestamp delta
    varint(&mut body, 0); // offset delta
    varint(&mut body, -1); // null key
    varint(&mut body, value_len);
    body.extend_from_slice(value);
    varint(&mut body, headers);
    let mut out = Vec::new();
    varint(&mut out, body.len() as i64);
    out.extend_from_slice(&body);
    out
}

/// A v2 batch of one record around `records` (the records section as given, compressed or
/// not as `attributes` claims), with a correct CRC: only its contents are wrong.
fn raw_batch(attributes: i16, records: &[u8]) -> bytes::Bytes {
    let mut b = BytesMut::new();
    b.put_i64(0); // base offset
    b.put_i32((49 + records.len()) as i32); // batch length
    b.put_i32(-1); // partition leader epoch
    b.put_i8(2); // magic
    b.put_u32(0); // crc, below
    b.put_i16(attributes);
    b.put_i32(0); // last offset delta
    b.put_i64(1_700_000_000_000);
    b.put_i64(1_700_000_000_000);
    b.put_i64(-1); // producer id
    b.put_i16(-1);
    b.put_i32(-1);
    b.put_i32(1); // records count
    b.extend_from_slice(records);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b.freeze()
}

#[tokio::test]
async fn poison_batches_with_a_valid_crc_are_refused() {
    let (b, _dir) = start(true).await;
    let mut s = connect(&b).await;
    let r = create_topic(&mut s, "poison", 1, &[]).await;
    assert_eq!(r.topics[0].error_code, 0);
    let plain = record(1, b"x", 0);
    let mut long_varint = vec![0xffu8; 19];
    long_varint.push(0x01);
    let cases: Vec<(&str, bytes::Bytes)> = vec![
        ("zstd-flagged, not compressed", raw_batch(4, &plain)),
        ("gzip-flagged, garbage", raw_batch(1, b"not gzip at all")),
        (
            "value length 2^31-1",
            raw_batch(0, &record(i32::MAX as i64, b"x", 0)),
        ),
        (
            "header count 2^31-1",
            raw_batch(0, &record(1, b"x", i32::MAX as i64)),
        ),
        ("20-byte varint", raw_batch(0, &long_varint)),
        (
            "bytes after the last record",
            raw_batch(0, &[plain.clone(), plain.clone()].concat()),
        ),
    ];
    for (what, batch) in cases {
        let resp: ProduceResponse = call(&mut s, &produce_req("poison", vec![(0, batch)]), 9)
            .await
            .expect("produce");
        let p = &resp.responses[0].partition_responses[0];
        assert_eq!(
            p.error_code, 2,
            "{what}: CORRUPT_MESSAGE, got {:?}",
            p.error_message
        );
    }
    assert_eq!(
        fetch_count(&mut s, "poison", 0).await,
        (0, 0),
        "nothing got an offset"
    );
    // A well-formed batch built the same way is taken, at offset 0.
    let resp: ProduceResponse = call(
        &mut s,
        &produce_req("poison", vec![(0, raw_batch(0, &plain))]),
        9,
    )
    .await
    .expect("produce");
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!(
        (p.error_code, p.base_offset),
        (0, 0),
        "{:?}",
        p.error_message
    );
    b.shutdown().await.unwrap();
}
