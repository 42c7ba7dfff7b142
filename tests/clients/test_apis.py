"""The remaining broker APIs through librdkafka's admin client: ListOffsets (incl. max
timestamp), DeleteRecords, CreatePartitions, DescribeCluster, DescribeTopics, LogAppendTime, and
a fetch long poll woken by a produce."""
import json
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic, OffsetSpec

from conftest import wait_until
from util import read_all, watermarks

pytestmark = pytest.mark.timeout(60)


def produce(bs, topic, values, partition=0, timestamps=None):
    p = Producer({"bootstrap.servers": bs, "linger.ms": 0})
    for i, v in enumerate(values):
        kw = {"timestamp": timestamps[i]} if timestamps else {}
        p.produce(topic, value=v, partition=partition, **kw)
        p.flush(10)
    assert p.flush(10) == 0


def test_list_offsets_delete_records_and_create_partitions(broker):
    bs = broker.bootstrap
    admin = AdminClient({"bootstrap.servers": bs})
    for f in admin.create_topics([NewTopic("apis", 2, 1)]).values():
        f.result(10)
    base = int(time.time() * 1000) - 100_000
    stamps = [base + d for d in (10, 50, 20, 40, 30)]  # max timestamp at offset 1
    produce(bs, "apis", [b"a", b"b", b"c", b"d", b"e"], timestamps=stamps)
    tp = TopicPartition("apis", 0)

    def offset(spec):
        return list(admin.list_offsets({tp: spec}).values())[0].result(10)

    assert offset(OffsetSpec.earliest()).offset == 0
    assert offset(OffsetSpec.latest()).offset == 5
    mx = offset(OffsetSpec.max_timestamp())
    assert (mx.offset, mx.timestamp) == (1, base + 50)
    assert offset(OffsetSpec.for_timestamp(base + 35)).offset == 1
    assert offset(OffsetSpec.for_timestamp(base + 1000)).offset == -1

    deleted = list(admin.delete_records([TopicPartition("apis", 0, 3)]).values())[0].result(10)
    assert deleted.low_watermark == 3
    assert watermarks(bs, "apis", 2)[0] == (3, 5)
    assert [r[1] for r in read_all(bs, "apis", 1, 2)] == [3, 4]
    with pytest.raises(KafkaException) as e:
        list(admin.delete_records([TopicPartition("apis", 0, 99)]).values())[0].result(10)
    assert e.value.args[0].code() == KafkaError.OFFSET_OUT_OF_RANGE

    for f in admin.create_partitions([NewPartitions("apis", 4)]).values():
        f.result(10)
    assert len(admin.list_topics("apis", timeout=10).topics["apis"].partitions) == 4
    with pytest.raises(KafkaException) as e:
        list(admin.create_partitions([NewPartitions("apis", 3)]).values())[0].result(10)
    assert e.value.args[0].code() == KafkaError.INVALID_PARTITIONS
    for f in admin.create_partitions([NewPartitions("apis", 8)], validate_only=True).values():
        f.result(10)
    assert len(admin.list_topics("apis", timeout=10).topics["apis"].partitions) == 4
    produce(bs, "apis", [b"new"], partition=3)
    assert watermarks(bs, "apis", 4)[3] == (0, 1)


def test_describe_cluster_and_topics(broker):
    from confluent_kafka import TopicCollection
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    cluster = admin.describe_cluster().result(10)
    assert [n.id for n in cluster.nodes] == [1]
    assert cluster.controller.id == 1 and cluster.nodes[0].port == broker.port
    assert len(cluster.cluster_id) == 22
    for f in admin.create_topics([NewTopic("described", 3, 1)]).values():
        f.result(10)
    desc = list(admin.describe_topics(TopicCollection(["described"])).values())[0].result(10)
    assert len(desc.partitions) == 3
    assert all(p.leader.id == 1 and [r.id for r in p.isr] == [1] for p in desc.partitions)


def test_log_append_time(broker):
    bs = broker.bootstrap
    admin = AdminClient({"bootstrap.servers": bs})
    for f in admin.create_topics([NewTopic("lat", 1, 1, config={"message.timestamp.type": "LogAppendTime"})]).values():
        f.result(10)
    before = int(time.time() * 1000)
    produce(bs, "lat", [b"old"], timestamps=[1_000_000])
    c = Consumer({"bootstrap.servers": bs, "group.id": "lat", "enable.auto.commit": False})
    c.assign([TopicPartition("lat", 0, 0)])
    m = None
    deadline = time.monotonic() + 10
    while m is None and time.monotonic() < deadline:
        m = c.poll(0.5)
    c.close()
    assert m is not None and not m.error()
    ts_type, ts = m.timestamp()
    assert ts_type == TIMESTAMP_LOG_APPEND_TIME and ts >= before - 1000


def test_fetch_long_poll_is_woken_by_a_produce(broker):
    """A consumer waiting with a long fetch.wait.max.ms gets a record produced meanwhile, before
    the wait runs out (the broker wakes parked fetches when data becomes durable)."""
    bs = broker.bootstrap
    admin = AdminClient({"bootstrap.servers": bs})
    for f in admin.create_topics([NewTopic("poll", 1, 1)]).values():
        f.result(10)
    stats = {}

    def on_stats(raw):
        stats.update(json.loads(raw))

    c = Consumer({"bootstrap.servers": bs, "group.id": "poll", "fetch.wait.max.ms": 30000, "enable.auto.commit": False,
                  "statistics.interval.ms": 50, "stats_cb": on_stats})
    c.assign([TopicPartition("poll", 0, 0)])

    def fetch_parked():
        c.poll(0.05)
        # librdkafka's statistics: a request awaiting its response on the broker connection and
        # the partition in the active fetch state means the fetch is parked in the broker.
        brokers = [b for b in stats.get("brokers", {}).values() if b.get("nodeid") == 1]
        part = stats.get("topics", {}).get("poll", {}).get("partitions", {}).get("0", {})
        return brokers and brokers[0].get("waitresp_cnt", 0) >= 1 and part.get("fetch_state") == "active"
    wait_until(fetch_parked, 20, interval_s=0, what="a parked fetch")
    produce(bs, "poll", [b"wake"])
    m = c.poll(20)
    c.close()
    # With a 30 s broker-side wait, only a wake-up delivers the record inside poll(20).
    assert m is not None and not m.error() and m.value() == b"wake"


def test_fetch_long_poll_outlives_a_deleted_topic(broker):
    """A fetch parked on two topics, one of which is deleted meanwhile, is still woken by a
    record on the other (a parked fetch waits on the high watermarks of its own partitions)."""
    bs = broker.bootstrap
    admin = AdminClient({"bootstrap.servers": bs})
    for f in admin.create_topics([NewTopic("poll-kept", 1, 1), NewTopic("poll-gone", 1, 1)]).values():
        f.result(10)
    stats = {}

    def on_stats(raw):
        stats.update(json.loads(raw))

    c = Consumer({"bootstrap.servers": bs, "group.id": "poll2", "fetch.wait.max.ms": 30000,
                  "enable.auto.commit": False, "topic.metadata.refresh.interval.ms": 600000,
                  "statistics.interval.ms": 50, "stats_cb": on_stats})
    c.assign([TopicPartition("poll-kept", 0, 0), TopicPartition("poll-gone", 0, 0)])

    def fetch_parked():
        c.poll(0.05)
        brokers = [b for b in stats.get("brokers", {}).values() if b.get("nodeid") == 1]
        topics = stats.get("topics", {})
        states = [topics.get(t, {}).get("partitions", {}).get("0", {}).get("fetch_state") for t in ("poll-kept", "poll-gone")]
        return brokers and brokers[0].get("waitresp_cnt", 0) >= 1 and states == ["active", "active"]
    wait_until(fetch_parked, 20, interval_s=0, what="a parked fetch on both topics")
    admin.delete_topics(["poll-gone"])["poll-gone"].result(10)
    produce(bs, "poll-kept", [b"still here"])
    deadline = time.monotonic() + 20
    m = None
    while time.monotonic() < deadline and (m is None or m.error()):
        m = c.poll(1)
    c.close()
    # The broker-side wait is 30 s: only a wake-up delivers the record inside 20.
    assert m is not None and not m.error() and m.value() == b"still here", m and m.error()
