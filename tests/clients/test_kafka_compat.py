"""Compatibility defects found by running Kafka's own tools and the JVM clients against Vltava,
each proved fixed with an independent client (confluent-kafka / librdkafka, kafka-python):
broker-side `compression.type`, CreateTime bounds (message.timestamp.*.max.ms), every topic config
name Kafka defines, authorized operations without an authorizer, CreateTopics' null error
message, which topics are internal."""
import os
import struct
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicCollection, TopicPartition
from confluent_kafka.admin import AclOperation, AdminClient, ConfigResource, NewTopic

from util import read_all

pytestmark = pytest.mark.timeout(120)

CODECS = {"uncompressed": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


def create(bs, name, partitions=1, **config):
    admin = AdminClient({"bootstrap.servers": bs})
    fs = admin.create_topics([NewTopic(name, partitions, 1, config={k.replace("_", "."): v for k, v in config.items()})])
    fs[name].result(15)


def stored_codecs(data_dir, topic, partition=0):
    """The codec id of every batch in the partition's segment files."""
    d = os.path.join(data_dir, f"{topic}-{partition}")
    out = []
    for f in sorted(os.listdir(d)):
        if not f.endswith(".log"):
            continue
        buf = open(os.path.join(d, f), "rb").read()
        pos = 0
        while pos + 61 <= len(buf):
            length = struct.unpack(">i", buf[pos + 8:pos + 12])[0]
            attributes = struct.unpack(">h", buf[pos + 21:pos + 23])[0]
            out.append(attributes & 7)
            pos += 12 + length
    return out


@pytest.mark.parametrize("target", list(CODECS))
def test_topic_compression_type_recompresses_on_the_broker(broker, target):
    """compression.type=gzip/snappy/lz4/zstd/uncompressed: the broker stores every batch in that
    codec, whatever the producer sent, as Kafka's LogValidator does; consumers read it as sent."""
    bs = broker.bootstrap
    topic = f"cmp-{target}"
    create(bs, topic, compression_type=target)
    sent_codec = "lz4" if target == "uncompressed" else "none"
    p = Producer({"bootstrap.servers": bs, "compression.type": sent_codec, "linger.ms": 20})
    for i in range(500):
        p.produce(topic, key=b"k%d" % (i % 7), value=(b"value-%d-" % i) * 10, headers=[("h", b"%d" % i)])
    assert p.flush(30) == 0
    records = read_all(bs, topic, 1, 500)
    assert [v for _, _, _, v, _ in records] == [f"value-{i}-" * 10 for i in range(500)]
    assert [o for _, o, _, _, _ in records] == list(range(500))
    codecs = stored_codecs(broker.data_dir, topic)
    assert codecs and set(codecs) == {CODECS[target]}, codecs


def test_compression_levels_are_used(broker):
    """compression.gzip.level=1 and 9 give different stored bytes for the same records, both
    readable."""
    bs = broker.bootstrap
    sizes = {}
    for level in ("1", "9"):
        topic = f"gz-{level}"
        create(bs, topic, compression_type="gzip", compression_gzip_level=level)
        p = Producer({"bootstrap.servers": bs, "compression.type": "none", "linger.ms": 50,
                      "batch.num.messages": 10000})
        for i in range(2000):
            p.produce(topic, value=b"%08d some text that repeats %d" % (i, i % 13))
        assert p.flush(30) == 0
        assert len(read_all(bs, topic, 1, 2000)) == 2000
        d = os.path.join(broker.data_dir, f"{topic}-0")
        sizes[level] = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d) if f.endswith(".log"))
    assert sizes["1"] != sizes["9"], sizes


def delivery_errors(bs, topic, records):
    p = Producer({"bootstrap.servers": bs, "linger.ms": 0, "retries": 0})
    errors = []
    for ts in records:
        p.produce(topic, value=b"x", timestamp=ts, on_delivery=lambda e, m: errors.append(e))
        p.flush(15)
    return errors


def test_create_time_outside_the_timestamp_bounds_is_refused(broker):
    """message.timestamp.after.max.ms (default 1 h) and message.timestamp.before.max.ms:
    INVALID_TIMESTAMP for a record out of range, as Kafka 4 does; LogAppendTime topics take any."""
    bs = broker.bootstrap
    now = int(time.time() * 1000)
    create(bs, "ts-default")
    errs = delivery_errors(bs, "ts-default", [now, now + 2 * 3600 * 1000, now - 30 * 86400 * 1000])
    assert errs[0] is None and errs[2] is None
    assert errs[1] is not None and errs[1].code() == KafkaError.INVALID_TIMESTAMP, errs
    create(bs, "ts-strict", message_timestamp_before_max_ms="60000", message_timestamp_after_max_ms="60000")
    errs = delivery_errors(bs, "ts-strict", [now, now - 3600 * 1000, now + 3600 * 1000])
    assert errs[0] is None
    assert [e.code() for e in errs[1:]] == [KafkaError.INVALID_TIMESTAMP] * 2, errs
    create(bs, "ts-append", message_timestamp_type="LogAppendTime")
    assert delivery_errors(bs, "ts-append", [now + 2 * 3600 * 1000]) == [None]


def test_every_kafka_topic_config_name_is_accepted(broker):
    """Each topic config Kafka 4.4 defines (LogConfig) is accepted, stored and described; values
    Kafka refuses are refused."""
    bs = broker.bootstrap
    admin = AdminClient({"bootstrap.servers": bs})
    values = {
        "file.delete.delay.ms": "1000", "flush.messages": "1", "flush.ms": "1000",
        "index.interval.bytes": "1024", "segment.index.bytes": "4096", "segment.jitter.ms": "10",
        "preallocate": "true", "unclean.leader.election.enable": "true",
        "leader.replication.throttled.replicas": "*",
        "follower.replication.throttled.replicas": "0:1,1:1",
        "local.retention.ms": "-2", "local.retention.bytes": "-2", "remote.log.copy.disable": "false",
        "remote.log.delete.on.disable": "false", "remote.copy.lag.ms": "0", "remote.copy.lag.bytes": "-1",
        "message.timestamp.after.max.ms": "7200000", "message.timestamp.before.max.ms": "86400000",
        "max.decompressed.message.bytes": "1048576", "compression.zstd.level": "5",
        "compression.lz4.level": "4", "compression.gzip.level": "6",
        "errors.deadletterqueue.group.enable": "false",
    }
    create(bs, "allcfg", **{k.replace(".", "_"): v for k, v in values.items()})
    res = ConfigResource(ConfigResource.Type.TOPIC, "allcfg")
    described = admin.describe_configs([res])[res].result(10)
    for k, v in values.items():
        assert described[k].value == v, k
    for bad in ({"remote.storage.enable": "true"}, {"compression.gzip.level": "0"},
                {"leader.replication.throttled.replicas": "zero"}, {"index.interval.bytes": "-1"}):
        fs = admin.create_topics([NewTopic("refused", 1, 1, config=bad)])
        with pytest.raises(Exception) as e:
            fs["refused"].result(10)
        assert "INVALID_CONFIG" in str(e.value) or "InvalidConfig" in str(e.value), bad


def test_authorized_operations_without_an_authorizer_are_all_operations(broker):
    """include_authorized_operations: with no authorizer Kafka allows, and so reports, every
    operation the resource type supports."""
    bs = broker.bootstrap
    create(bs, "ops")
    admin = AdminClient({"bootstrap.servers": bs})
    [t] = admin.describe_topics(TopicCollection(["ops"]), include_authorized_operations=True).values()
    assert set(t.result(10).authorized_operations) == {
        AclOperation.READ, AclOperation.WRITE, AclOperation.CREATE, AclOperation.DELETE,
        AclOperation.ALTER, AclOperation.DESCRIBE, AclOperation.DESCRIBE_CONFIGS,
        AclOperation.ALTER_CONFIGS}
    cluster = admin.describe_cluster(include_authorized_operations=True).result(10)
    assert set(cluster.authorized_operations) == {
        AclOperation.CREATE, AclOperation.ALTER, AclOperation.DESCRIBE, AclOperation.CLUSTER_ACTION,
        AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS, AclOperation.IDEMPOTENT_WRITE}
    assert not admin.describe_cluster().result(10).authorized_operations
    c = Consumer({"bootstrap.servers": bs, "group.id": "ops-g", "auto.offset.reset": "earliest"})
    c.subscribe(["ops"])
    deadline = time.monotonic() + 20
    while not c.assignment() and time.monotonic() < deadline:
        c.poll(0.2)
    try:
        [g] = admin.describe_consumer_groups(["ops-g"], include_authorized_operations=True).values()
        assert set(g.result(10).authorized_operations) == {
            AclOperation.READ, AclOperation.DELETE, AclOperation.DESCRIBE,
            AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS}
    finally:
        c.close()


def test_create_topics_success_has_a_null_error_message_and_only_kafkas_internal_topics_are_internal(broker):
    from kafka.admin import KafkaAdminClient
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        resp = admin.create_topics({"__not_internal": {"num_partitions": 1}, "plain": {"num_partitions": 2}})
        topics = {t["name"]: t for t in resp["topics"]}
        for name in ("__not_internal", "plain"):
            assert topics[name]["error_code"] == 0 and topics[name]["error_message"] is None, topics[name]
        described = {t["name"]: t for t in admin.describe_topics(["__not_internal", "plain"])}
        # Kafka's Topic.isInternal: only its coordinators' topics, not every name with "__".
        assert described["__not_internal"]["is_internal"] is False
        assert described["plain"]["is_internal"] is False
    finally:
        admin.close()


def test_a_restarted_static_member_leader_or_not_rejoins_without_a_rebalance(broker):
    """KIP-345: two static members (group.instance.id); each in turn is closed (a static member
    does not leave) and restarted with the same instance id. One of them led the group: neither
    restart may rebalance it — the other member's assignment callbacks never fire again and each
    restarted member gets its old partitions back."""
    bs = broker.bootstrap
    create(bs, "static", partitions=6)
    calls = {"a": [], "b": []}

    def member(name):
        c = Consumer({"bootstrap.servers": bs, "group.id": "static-g", "group.instance.id": name,
                      "session.timeout.ms": 30000, "auto.offset.reset": "earliest",
                      "partition.assignment.strategy": "range"})
        c.subscribe(["static"], on_assign=lambda _c, ps: calls[name].append(("assign", sorted(p.partition for p in ps))),
                    on_revoke=lambda _c, ps: calls[name].append(("revoke", sorted(p.partition for p in ps))))
        return c

    def poll_until(consumers, cond, what):
        deadline = time.monotonic() + 30
        while not cond():
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {calls}"
            for c in consumers:
                c.poll(0.1)

    def owned(name):
        assigns = [ps for kind, ps in calls[name] if kind == "assign"]
        return assigns[-1] if assigns else None

    a, b = member("a"), member("b")
    try:
        poll_until([a, b], lambda: owned("a") and owned("b") and len(owned("a") + owned("b")) == 6,
                   "both members assigned")
        # Let the group settle: no further callbacks for a moment of polling both.
        settled = {k: len(v) for k, v in calls.items()}
        for _ in range(20):
            a.poll(0.05)
            b.poll(0.05)
        assert {k: len(v) for k, v in calls.items()} == settled
        before = {"a": owned("a"), "b": owned("b")}
        for name in ("a", "b"):
            other = "b" if name == "a" else "a"
            other_calls = len(calls[other])
            (a if name == "a" else b).close()
            calls[name].clear()
            restarted = member(name)
            if name == "a":
                a = restarted
            else:
                b = restarted
            poll_until([a, b], lambda: owned(name) is not None, f"{name} back")
            assert owned(name) == before[name]
            for _ in range(20):
                a.poll(0.05)
                b.poll(0.05)
            assert len(calls[other]) == other_calls, f"{other} was rebalanced: {calls[other]}"
    finally:
        a.close()
        b.close()
