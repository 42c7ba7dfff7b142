//! API semantics that no client test reaches directly, against an in-process broker.

mod common;

use common::*;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

async fn epoch_end(
    s: &mut tokio::net::TcpStream,
    topic: &str,
    leader_epoch: i32,
    current: i32,
) -> (i16, i32, i64) {
    let req =
        OffsetForLeaderEpochRequest::default().with_topics(vec![OffsetForLeaderTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.into())))
            .with_partitions(vec![OffsetForLeaderPartition::default()
                .with_partition(0)
                .with_leader_epoch(leader_epoch)
                .with_current_leader_epoch(current)])]);
    let r: OffsetForLeaderEpochResponse = call(s, &req, 2).await.expect("response");
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.leader_epoch, p.end_offset)
}

#[tokio::test]
async fn offset_for_leader_epoch_reports_the_single_epoch() {
    let (b, _dir) = start(true).await;
    let mut s = connect(&b).await;
    create_topic(&mut s, "ep", 1, &[]).await;
    let r: ProduceResponse = call(
        &mut s,
        &produce_req("ep", vec![(0, batch(&["a", "b", "c"]))]),
        9,
    )
    .await
    .expect("produce");
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    // Epoch 0 is the only epoch: it ends at the log end offset.
    assert_eq!(epoch_end(&mut s, "ep", 0, -1).await, (0, 0, 3));
    // An epoch this node never had: UNDEFINED.
    assert_eq!(epoch_end(&mut s, "ep", 5, -1).await, (0, -1, -1));
    // A client that believes in a newer leader epoch: UNKNOWN_LEADER_EPOCH.
    assert_eq!(epoch_end(&mut s, "ep", 0, 3).await.0, 75);
    assert_eq!(epoch_end(&mut s, "missing", 0, -1).await.0, 3);
    b.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn consumer_group_heartbeat_refuses_regex_subscriptions() {
    use kafka_protocol::messages::{
        ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, GroupId,
    };
    let (b, _dir) = start(true).await;
    let mut s = connect(&b).await;
    let req = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_member_id(StrBytes::from_static_str("m1"))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(10_000)
        .with_subscribed_topic_names(Some(vec![]))
        .with_subscribed_topic_regex(Some(StrBytes::from_static_str("orders.*")));
    let r: ConsumerGroupHeartbeatResponse = call(&mut s, &req, 1).await.expect("response");
    assert_eq!(r.error_code, 42, "INVALID_REQUEST");
    // The same member with a topic list joins.
    let req = req
        .with_subscribed_topic_regex(None)
        .with_subscribed_topic_names(Some(vec![TopicName(StrBytes::from_static_str("orders"))]));
    let r: ConsumerGroupHeartbeatResponse = call(&mut s, &req, 1).await.expect("response");
    assert_eq!(r.error_code, 0);
    assert!(r.member_epoch > 0);
    b.shutdown().await.expect("shutdown");
}
