//! Hostile and malformed input against an in-process broker: each bad request fails alone, the
//! broker keeps serving, and nothing acknowledged is lost. (The happy paths are proven by real
//! Kafka clients in tests/clients.)

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, FetchRequest, FetchResponse,
    MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse, RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vltava_broker::{Broker, BrokerConfig, BrokerHandle};

async fn start(auto_create: bool) -> (BrokerHandle, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = BrokerConfig::new("127.0.0.1:0".parse().expect("addr"), dir.path());
    cfg.auto_create_topics = auto_create;
    cfg.max_request_bytes = 1024 * 1024;
    let b = Broker::start(cfg).await.expect("start");
    (b, dir)
}

async fn connect(b: &BrokerHandle) -> TcpStream {
    TcpStream::connect(b.local_addrs()[0])
        .await
        .expect("connect")
}

/// Sends a request and reads the response body (after the response header).
async fn call<Req: Request + Encodable + HeaderVersion, Resp: Decodable + HeaderVersion>(
    s: &mut TcpStream,
    req: &Req,
    version: i16,
) -> Option<Resp> {
    let mut buf = BytesMut::new();
    let header = RequestHeader::default()
        .with_request_api_key(Req::KEY)
        .with_request_api_version(version)
        .with_correlation_id(42)
        .with_client_id(Some(StrBytes::from_static_str("bad-input-test")));
    header.encode(&mut buf, Req::header_version(version)).ok()?;
    req.encode(&mut buf, version).ok()?;
    let mut frame = BytesMut::new();
    frame.put_i32(buf.len() as i32);
    frame.extend_from_slice(&buf);
    s.write_all(&frame).await.ok()?;
    let mut body = read_frame(s).await?;
    let _ =
        kafka_protocol::messages::ResponseHeader::decode(&mut body, Resp::header_version(version))
            .ok()?;
    Resp::decode(&mut body, version).ok()
}

async fn read_frame(s: &mut TcpStream) -> Option<Bytes> {
    let n = tokio::time::timeout(Duration::from_secs(10), s.read_i32())
        .await
        .ok()?
        .ok()?;
    let mut buf = vec![0u8; n as usize];
    s.read_exact(&mut buf).await.ok()?;
    Some(Bytes::from(buf))
}

/// True when the broker closed the connection (EOF) within the deadline.
async fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_secs(10), s.read(&mut b)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

fn batch(values: &[&str]) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder groups records whose offset - sequence is constant into one batch.
            sequence: i as i32 - 1,
            timestamp: 1_700_000_000_000 + i as i64,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(v.to_string())),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encode batch");
    buf.freeze()
}

async fn create_topic(
    s: &mut TcpStream,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> CreateTopicsResponse {
    let t = CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_string(name.into())))
        .with_num_partitions(partitions)
        .with_replication_factor(1)
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(StrBytes::from_string(k.to_string()))
                        .with_value(Some(StrBytes::from_string(v.to_string())))
                })
                .collect(),
        );
    call(
        s,
        &CreateTopicsRequest::default()
            .with_topics(vec![t])
            .with_timeout_ms(5000),
        5,
    )
    .await
    .expect("create topics response")
}

fn produce_req(topic: &str, parts: Vec<(i32, Bytes)>) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partition_data(
                parts
                    .into_iter()
                    .map(|(i, r)| {
                        PartitionProduceData::default()
                            .with_index(i)
                            .with_records(Some(r))
                    })
                    .collect(),
            )])
}

async fn fetch_count(s: &mut TcpStream, topic: &str, partition: i32) -> (i16, i64) {
    let req = FetchRequest::default()
        .with_max_wait_ms(100)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.into())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let r: FetchResponse = call(s, &req, 11).await.expect("fetch response");
    let p = &r.responses[0].partitions[0];
    (p.error_code, p.high_watermark)
}

async fn broker_still_serves(b: &BrokerHandle) {
    let mut s = connect(b).await;
    let r: MetadataResponse = call(&mut s, &MetadataRequest::default(), 12)
        .await
        .expect("metadata after bad input");
    assert_eq!(r.brokers.len(), 1);
}

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
    create_topic(&mut s, "keep", 1, &[]).await;
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
