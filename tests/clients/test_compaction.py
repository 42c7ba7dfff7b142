"""Log compaction (cleanup.policy=compact) as a real client sees it: the cleaner (checked every
--log-cleaner-backoff-ms) drops superseded values from rolled segments, keeps the newest value of
every key and the offsets of what it keeps, and removes tombstones after delete.retention.ms."""
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from conftest import wait_until
from util import watermarks

pytestmark = pytest.mark.timeout(300)

KEYS = [f"k{i}" for i in range(5)]
TOMBSTONED = "k0"
PAD = "x" * 80


class Writer:
    """Produces keyed records one batch each (so segments roll by size) and remembers the newest
    value, timestamp and offset of every key."""

    def __init__(self, bs, topic):
        self.topic = topic
        self.p = Producer({"bootstrap.servers": bs, "linger.ms": 0, "message.timeout.ms": 20000})
        self.latest = {}  # key -> (value or None, timestamp, offset)
        self.produced = 0
        self.seq = 0

    def put(self, key, value):
        ts = int(time.time() * 1000)
        reports = []
        self.p.produce(self.topic, key=key.encode(), value=None if value is None else value.encode(), timestamp=ts,
                       on_delivery=lambda err, msg: reports.append((err, msg)))
        assert self.p.flush(20) == 0
        [(err, msg)] = reports
        assert err is None, err
        self.latest[key] = (value, ts, msg.offset())
        self.produced += 1

    def update(self, key):
        self.seq += 1
        self.put(key, f"{key}|{self.seq}|{PAD}")


def read_log(bs, topic):
    """Every record of partition 0 from the log start to the high watermark: (offset, key, value, ts)."""
    low, high = watermarks(bs, topic, 1)[0]
    out = []
    if high == low:
        return out
    c = Consumer({"bootstrap.servers": bs, "group.id": "compaction-check", "enable.auto.commit": False,
                  "enable.partition.eof": True, "auto.offset.reset": "earliest"})
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    if out and out[-1][0] >= high - 1:
                        break
                    continue
                raise AssertionError(m.error())
            value = None if m.value() is None else m.value().decode()
            out.append((m.offset(), m.key().decode(), value, m.timestamp()[1]))
            if m.offset() >= high - 1:
                break
    finally:
        c.close()
    assert out and out[-1][0] == high - 1, f"did not reach the high watermark {high}: {out[-3:]}"
    return out


def check_log(records, writer):
    """What compaction must never break: offsets strictly increasing, and the newest record of every
    key is the one last written (same value, timestamp and offset); a tombstoned key shows no older
    value. Returns {key: count}."""
    offsets = [r[0] for r in records]
    assert offsets == sorted(set(offsets)), "offsets must be strictly increasing"
    last, counts = {}, {}
    for off, key, value, ts in records:
        last[key] = (value, ts, off)
        counts[key] = counts.get(key, 0) + 1
    for key, expected in writer.latest.items():
        if expected[0] is None:
            if key in last:
                assert last[key] == expected, f"{key}: an older value outlived its tombstone: {last[key]}"
        else:
            assert last.get(key) == expected, f"{key}: newest record is {last.get(key)}, expected {expected}"
    assert set(last) <= set(writer.latest)
    return counts


def test_compaction_keeps_the_latest_value_per_key(broker_factory):
    b = broker_factory("--log-cleaner-backoff-ms", "200")
    bs, topic = b.bootstrap, "compacted"
    config = {"cleanup.policy": "compact", "segment.bytes": "1024", "segment.ms": "500",
              "min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": "1000"}
    admin = AdminClient({"bootstrap.servers": bs})
    admin.create_topics([NewTopic(topic, 1, 1, config=config)])[topic].result(10)
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    assert admin.describe_configs([res])[res].result(10)["cleanup.policy"].value == "compact"

    w = Writer(bs, topic)
    for _ in range(30):
        for key in KEYS:
            w.update(key)
    w.put(TOMBSTONED, None)
    # More updates of the other keys, so the tombstone's segment rolls and gets cleaned too.
    for _ in range(8):
        for key in KEYS[1:]:
            w.update(key)
    assert w.produced == 30 * len(KEYS) + 1 + 8 * (len(KEYS) - 1)
    check_log(read_log(bs, topic), w)

    def compacted():
        w.update(KEYS[1 + w.seq % (len(KEYS) - 1)])  # keep the log dirty and rolling
        records = read_log(bs, topic)
        check_log(records, w)
        return len(records) < w.produced // 2 and records

    records = wait_until(compacted, 60, interval_s=0.2, what="the cleaner to drop superseded records")
    # The offsets of what remains are those the records were written at: the log keeps its holes.
    assert records[-1][0] == w.produced - 1
    assert watermarks(bs, topic, 1)[0][1] == w.produced

    def tombstone_gone():
        w.update(KEYS[1 + w.seq % (len(KEYS) - 1)])
        records = read_log(bs, topic)
        counts = check_log(records, w)
        return TOMBSTONED not in counts and records

    wait_until(tombstone_gone, 60, interval_s=0.2, what="the tombstone to be removed after delete.retention.ms")

    def settled():
        records = read_log(bs, topic)
        counts = check_log(records, w)
        # Cleaned segments hold one record per key; only the newest few segments may repeat keys.
        repeated = sum(n - 1 for n in counts.values())
        return repeated <= 16 and records

    # Stop writing: the cleaner catches up with everything but the active segment.
    records = wait_until(settled, 60, interval_s=0.2, what="cleaned segments to hold one record per key")
    assert {r[1] for r in records} == set(KEYS) - {TOMBSTONED}
    assert len(records) < w.produced // 10


@pytest.mark.parametrize("stop", ["restart", "kill9"])
def test_compaction_survives_restart(broker_factory, stop):
    """A clean restart, or SIGKILL with the cleaner at work (its last swap's renames perhaps not
    yet fsynced, the index files of the segments it replaced removed and rebuilt at start-up)."""
    b = broker_factory("--log-cleaner-backoff-ms", "200")
    bs, topic = b.bootstrap, "compacted-restart"
    config = {"cleanup.policy": "compact", "segment.bytes": "1024", "min.cleanable.dirty.ratio": "0.01"}
    admin = AdminClient({"bootstrap.servers": bs})
    admin.create_topics([NewTopic(topic, 1, 1, config=config)])[topic].result(10)
    w = Writer(bs, topic)
    for _ in range(20):
        for key in KEYS:
            w.update(key)

    def compacted():
        records = read_log(bs, topic)
        check_log(records, w)
        return len(records) < w.produced // 2 and records

    records = wait_until(compacted, 60, interval_s=0.2, what="compaction before the restart")
    seen_until = w.produced
    if stop == "kill9":
        # More updates keep the cleaner busy up to the kill.
        for key in KEYS:
            w.update(key)
        b.kill9()
        b.start()
    else:
        b.restart()
    after = read_log(bs, topic)
    check_log(after, w)
    # The cleaner may have gone further before stopping, never backwards.
    assert {r[0] for r in after if r[0] < seen_until} <= {r[0] for r in records}
    assert watermarks(bs, topic, 1)[0][1] == w.produced
    # The log keeps working after the restart: new updates land at the next offset.
    w.update(KEYS[0])
    assert w.latest[KEYS[0]][2] == w.produced - 1
    check_log(read_log(bs, topic), w)



def test_compacted_topic_refuses_records_without_a_key(broker_factory):
    b = broker_factory()
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    admin.create_topics([NewTopic("keyed-only", 1, 1, config={"cleanup.policy": "compact"})])["keyed-only"].result(10)
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 0, "message.timeout.ms": 10000,
                  "retries": 0})
    reports = []
    # One record per batch: Kafka refuses a whole batch when one of its records breaks the rule.
    p.produce("keyed-only", value=b"no key", on_delivery=lambda err, msg: reports.append(err))
    assert p.flush(20) == 0
    p.produce("keyed-only", key=b"k", value=b"with key", on_delivery=lambda err, msg: reports.append(err))
    assert p.flush(20) == 0
    assert len(reports) == 2
    assert reports[0] is not None and reports[0].code() == KafkaError.INVALID_RECORD, reports
    assert reports[1] is None, reports
    assert watermarks(b.bootstrap, "keyed-only", 1)[0] == (0, 1)
