//! A raw Kafka client for in-process broker tests, built on the `kafka-protocol` codec.
#![allow(dead_code)]

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    CreateTopicsRequest, CreateTopicsResponse, FetchRequest, FetchResponse, MetadataRequest,
    MetadataResponse, ProduceRequest, RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vltava_broker::{Broker, BrokerConfig, BrokerHandle};

pub async fn start(auto_create: bool) -> (BrokerHandle, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = BrokerConfig::new("127.0.0.1:0".parse().expect("addr"), dir.path());
    cfg.auto_create_topics = auto_create;
    cfg.max_request_bytes = 1024 * 1024;
    let b = Broker::start(cfg).await.expect("start");
    (b, dir)
}

pub async fn connect(b: &BrokerHandle) -> TcpStream {
    TcpStream::connect(b.local_addrs()[0])
        .await
        .expect("connect")
}

/// Sends a request and reads the response body (after the response header).
pub async fn call<Req: Request + Encodable + HeaderVersion, Resp: Decodable + HeaderVersion>(
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

pub async fn read_frame(s: &mut TcpStream) -> Option<Bytes> {
    let n = tokio::time::timeout(Duration::from_secs(10), s.read_i32())
        .await
        .ok()?
        .ok()?;
    let mut buf = vec![0u8; n as usize];
    s.read_exact(&mut buf).await.ok()?;
    Some(Bytes::from(buf))
}

/// True when the broker closed the connection (EOF) within the deadline.
pub async fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_secs(10), s.read(&mut b)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

pub fn batch(values: &[&str]) -> Bytes {
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

pub async fn create_topic(
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

pub fn produce_req(topic: &str, parts: Vec<(i32, Bytes)>) -> ProduceRequest {
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

pub async fn fetch_count(s: &mut TcpStream, topic: &str, partition: i32) -> (i16, i64) {
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

pub async fn broker_still_serves(b: &BrokerHandle) {
    let mut s = connect(b).await;
    let r: MetadataResponse = call(&mut s, &MetadataRequest::default(), 12)
        .await
        .expect("metadata after bad input");
    assert_eq!(r.brokers.len(), 1);
}
