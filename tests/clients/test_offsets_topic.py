"""`__consumer_offsets`, Kafka's internal view of the group state, read with Kafka's own tools
(kafka-console-consumer with Kafka 4.4's OffsetsMessageFormatter and GroupMetadataMessageFormatter,
kafka-topics) and written through confluent-kafka (librdkafka) group commits."""
import json
import os
import subprocess

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from conftest import REPO, wait_until
from util import watermarks

pytestmark = pytest.mark.timeout(300)

KAFKA = os.path.join(REPO, "scripts", "kafka")
TOPIC = "__consumer_offsets"
PARTITIONS = 5


def kafka(tool, *args, check=True):
    r = subprocess.run([KAFKA, tool, *args], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "KAFKA_LOG_LEVEL": "warn"})
    if check:
        assert r.returncode == 0, f"kafka-{tool} {args} failed ({r.returncode}):\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    return r


def java_partition_for(group, partitions):
    """Kafka's partitionFor: Utils.abs(group.hashCode()) % partitions (Java String.hashCode)."""
    h = 0
    for unit in group.encode("utf-16-be").hex(" ", 2).split():
        h = (31 * h + int(unit, 16)) & 0xFFFFFFFF
    if h >= 1 << 31:
        h -= 1 << 32
    return (0 if h == -(1 << 31) else abs(h)) % partitions


def view(b, formatter, partition=None):
    """Every record of the view, decoded by Kafka's formatter: a list of {"key", "value"}."""
    where = ["--partition", str(partition), "--offset", "earliest"] if partition is not None else ["--from-beginning"]
    total = sum(hi for _, hi in watermarks(b.bootstrap, TOPIC, PARTITIONS)) if partition is None else \
        watermarks(b.bootstrap, TOPIC, PARTITIONS)[partition][1]
    r = kafka("console-consumer", "--bootstrap-server", b.bootstrap, "--topic", TOPIC, *where,
              "--formatter", f"org.apache.kafka.tools.consumer.{formatter}",
              "--max-messages", str(total), "--timeout-ms", "20000", check=False)
    assert f"Processed a total of {total} messages" in r.stderr, r.stderr[-3000:]
    # The formatters print one JSON object per record, without a separator.
    out, dec, pos = [], json.JSONDecoder(), 0
    text = r.stdout
    while pos < len(text):
        if text[pos].isspace():
            pos += 1
            continue
        obj, pos = dec.raw_decode(text, pos)
        out.append(obj)
    return out


def latest_offsets(records):
    """(group, topic, partition) -> committed offset or None (tombstone), the latest of each key."""
    latest = {}
    for r in records:
        k = r["key"]
        if k["type"] not in (0, 1):
            continue
        d = k["data"]
        latest[(d["group"], d["topic"], d["partition"])] = None if r["value"] is None else r["value"]["data"]["offset"]
    return latest


def commit(b, group, topic, offsets):
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        c.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False)
    finally:
        c.close()


def produce(b, topic, n):
    p = Producer({"bootstrap.servers": b.bootstrap})
    for i in range(n):
        p.produce(topic, value=b"v%d" % i, partition=i % 3)
    assert p.flush(30) == 0


def test_commits_and_group_metadata_in_kafkas_format(broker_factory):
    b = broker_factory("--offsets-topic-num-partitions", str(PARTITIONS), "--default-partitions", "3")
    produce(b, "orders", 30)
    # A classic group with a member: its GroupMetadata record, then its commits.
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "audit-loggers", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "client.id": "audit-1"})
    c.subscribe(["orders"])
    seen = []

    def consumed_all():
        m = c.poll(0.5)
        if m is not None and not m.error():
            seen.append(m)
        return len(seen) >= 30
    wait_until(consumed_all, 30, what="30 records consumed")
    c.commit(asynchronous=False)
    c.close()
    commit(b, "price-trackers", "orders", {0: 3, 1: 4})

    records = view(b, "OffsetsMessageFormatter")
    latest = latest_offsets(records)
    assert latest[("audit-loggers", "orders", 0)] == 10
    assert latest[("audit-loggers", "orders", 1)] == 10
    assert latest[("audit-loggers", "orders", 2)] == 10
    assert latest[("price-trackers", "orders", 0)] == 3
    assert latest[("price-trackers", "orders", 1)] == 4
    commit_values = [r["value"] for r in records if r["key"]["type"] == 1]
    assert all(v["version"] == 3 and v["data"]["commitTimestamp"] > 0 for v in commit_values), commit_values

    groups = view(b, "GroupMetadataMessageFormatter")
    audit = [r for r in groups if r["key"]["type"] == 2 and r["key"]["data"]["group"] == "audit-loggers"]
    assert audit, groups
    joined = [r["value"]["data"] for r in audit if r["value"] and r["value"]["data"]["members"]]
    assert joined and joined[0]["protocolType"] == "consumer" and joined[0]["generation"] >= 1
    assert joined[0]["members"][0]["clientId"] == "audit-1"

    def left():
        rs = [r for r in view(b, "GroupMetadataMessageFormatter")
              if r["key"]["type"] == 2 and r["key"]["data"]["group"] == "audit-loggers"]
        return rs[-1]["value"]["data"]["members"] == []
    wait_until(left, 60, interval_s=1, what="the member left: an empty generation is last")

    # Each group's records are on Kafka's partitionFor(group): tools that compute it find them.
    for group in ("audit-loggers", "price-trackers"):
        p = java_partition_for(group, PARTITIONS)
        mine = latest_offsets(view(b, "OffsetsMessageFormatter", partition=p))
        assert any(k[0] == group for k in mine), (group, p, mine)

    # Deleting a group writes tombstones for its offsets and its metadata.
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    for f in admin.delete_consumer_groups(["price-trackers"]).values():
        f.result(30)
    latest = latest_offsets(view(b, "OffsetsMessageFormatter"))
    assert latest[("price-trackers", "orders", 0)] is None
    assert latest[("price-trackers", "orders", 1)] is None
    assert latest[("audit-loggers", "orders", 0)] == 10
    groups = view(b, "GroupMetadataMessageFormatter")
    last = [r for r in groups if r["key"]["type"] == 2 and r["key"]["data"]["group"] == "price-trackers"][-1]
    assert last["value"] is None, last


def test_the_topic_is_internal_and_protected(broker_factory):
    b = broker_factory()
    produce(b, "t", 1)
    commit(b, "g", "t", {0: 1})
    # Created by the first FindCoordinator with Kafka's defaults, and listed only when asked.
    desc = kafka("topics", "--bootstrap-server", b.bootstrap, "--describe", "--topic", TOPIC).stdout
    assert "PartitionCount: 50" in desc and "cleanup.policy=compact" in desc, desc
    assert TOPIC in kafka("topics", "--bootstrap-server", b.bootstrap, "--list").stdout.split()
    assert TOPIC not in kafka("topics", "--bootstrap-server", b.bootstrap, "--list", "--exclude-internal").stdout.split()

    # Clients may not write it (Kafka: InvalidTopicException "Cannot append to internal topic").
    errors = []
    p = Producer({"bootstrap.servers": b.bootstrap, "message.send.max.retries": 0})
    p.produce(TOPIC, key=b"k", value=b"v", partition=0, on_delivery=lambda err, msg: errors.append(err))
    p.flush(30)
    assert len(errors) == 1 and errors[0] is not None, errors
    assert errors[0].code() == 17, errors[0]  # TOPIC_EXCEPTION (INVALID_TOPIC_EXCEPTION)

    # Nor delete it.
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    with pytest.raises(KafkaException) as e:
        admin.delete_topics([TOPIC])[TOPIC].result(30)
    assert e.value.args[0].code() == 42, e.value  # INVALID_REQUEST
    assert TOPIC in admin.list_topics(timeout=10).topics


def view_size(b):
    return sum(hi for _, hi in watermarks(b.bootstrap, TOPIC, PARTITIONS))


def test_the_view_is_republished_after_a_crash_not_after_a_clean_stop(broker_factory):
    b = broker_factory("--offsets-topic-num-partitions", str(PARTITIONS), "--default-partitions", "3")
    produce(b, "jobs", 9)
    commit(b, "scheduler", "jobs", {0: 2, 1: 3})
    wait_until(lambda: view_size(b) >= 2, what="two commits in the view")
    size = view_size(b)

    b.restart()  # SIGTERM: a clean shutdown, nothing to re-publish
    assert view_size(b) == size

    b.kill9()
    b.start()
    wait_until(lambda: view_size(b) > size, what="the state re-published after the crash")
    commit(b, "scheduler", "jobs", {0: 3})
    wait_until(lambda: latest_offsets(view(b, "OffsetsMessageFormatter")).get(("scheduler", "jobs", 0)) == 3,
               timeout_s=60, what="the new commit in the view")
    latest = latest_offsets(view(b, "OffsetsMessageFormatter"))
    assert latest[("scheduler", "jobs", 1)] == 3
