"""Retention with real clients: old segments go, the earliest offset advances, and consumers
positioned before it are reset according to auto.offset.reset."""
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import wait_until
from util import value_for, watermarks

pytestmark = pytest.mark.timeout(120)


def fill(bs, topic, n, start=0, timestamp_ms=0):
    p = Producer({"bootstrap.servers": bs, "linger.ms": 0, "batch.num.messages": 10})
    for i in range(start, start + n):
        p.produce(topic, key="k", value=value_for("k", i, "x" * 50), timestamp=timestamp_ms)
        if i % 10 == 0:
            p.flush(10)
    assert p.flush(10) == 0


def first_record(bs, topic, reset):
    c = Consumer({"bootstrap.servers": bs, "group.id": "retention-test", "auto.offset.reset": reset,
                  "enable.auto.commit": False, "enable.partition.eof": True})
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        return wait_until(lambda: c.poll(0.5), 20, interval_s=0, what=f"a message with auto.offset.reset={reset}")
    finally:
        c.close()


@pytest.mark.parametrize("config", [
    {"segment.bytes": "1024", "retention.ms": "60000"},
    {"segment.bytes": "1024", "retention.bytes": "3000"},
], ids=["retention.ms", "retention.bytes"])
def test_old_segments_are_deleted_and_consumers_reset(broker_factory, config):
    b = broker_factory("--retention-check-interval-ms", "200")
    bs, topic = b.bootstrap, "retained"
    admin = AdminClient({"bootstrap.servers": bs})
    for f in admin.create_topics([NewTopic(topic, 1, 1, config=config)]).values():
        f.result(10)
    if "retention.ms" in config:
        # An hour old: past retention.ms. The newest 20 records are not.
        fill(bs, topic, 300, timestamp_ms=int(time.time() * 1000) - 3_600_000)
        fill(bs, topic, 20, start=300)
    else:
        fill(bs, topic, 320)
    if "retention.bytes" in config:
        # Each record is at least 60 bytes on disk; at most retention.bytes plus one segment stay
        # once a retention pass has run after the last produce (one may have run mid-fill).
        def settled():
            low, high = watermarks(bs, topic, 1)[0]
            return (low, high) if low > 0 and (high - low) * 60 <= 3000 + 1024 else None
        low, high = wait_until(settled, 30, what="retention.bytes to trim the log to its limit")
    else:
        low = wait_until(lambda: watermarks(bs, topic, 1)[0][0] or None, 30, what="the earliest offset to advance")
        high = watermarks(bs, topic, 1)[0][1]
    assert 0 < low <= high
    if "retention.ms" in config:
        assert low <= 300 and high == 320, "only the old records may go"
    # Offset 0 is gone: earliest resets to the log start offset.
    m = first_record(bs, topic, "earliest")
    assert not m.error() and m.offset() >= low
    # latest: positioned at the end, no old records.
    m = first_record(bs, topic, "latest")
    assert m.error() and m.error().code() == KafkaError._PARTITION_EOF
    # error: the consumer reports the out-of-range position.
    m = first_record(bs, topic, "error")
    assert m.error() is not None and m.error().code() == KafkaError._AUTO_OFFSET_RESET, m.error()
