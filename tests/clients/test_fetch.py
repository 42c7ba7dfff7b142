"""Fetch sends stored record batches straight from the segment files (sendfile) when a partition's
share of a response is at least 64 KiB and made of few batches, and reads them into memory
otherwise. Whichever way, every client must get exactly the bytes that were produced: when the
partition budget ends inside a batch (whole batches only are sent), when one batch is larger than
the budget (KIP-74: the first batch goes whole), and when a partition holds many small batches."""
import asyncio
import hashlib

import pytest
import requests
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import run, wait_until

pytestmark = pytest.mark.timeout(240)
TOPIC = "fetch-paths"
RECORDS = 1500  # per partition
VALUE_BYTES = 1000


def value(p, i):
    """1000 bytes that differ from record to record, so a misplaced or stale byte shows."""
    seed = hashlib.sha256(f"{p}:{i}".encode()).hexdigest()
    return (f"{p}:{i}:" + seed * 16)[:VALUE_BYTES].encode()


def metric(b, name):
    for line in requests.get(f"{b.http}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


@pytest.fixture(scope="module")
def loaded(request):
    """A broker with partition 0 in ~128 KB batches and partition 1 in one-record batches."""
    from conftest import Broker
    b = Broker().start()
    request.addfinalizer(b.cleanup)
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    for f in admin.create_topics([NewTopic(TOPIC, 2, 1)]).values():
        f.result(10)
    for p, conf in [(0, {"batch.size": 131072, "linger.ms": 1000}),
                    (1, {"batch.num.messages": 1, "linger.ms": 0})]:
        prod = Producer({"bootstrap.servers": b.bootstrap, **conf})
        for i in range(RECORDS):
            prod.produce(TOPIC, key=str(i).encode(), value=value(p, i), partition=p)
            if i % 100 == 0:
                prod.poll(0)
        assert prod.flush(60) == 0
    return b


def check(records):
    """`records`: (partition, offset, key, value) as read by a client."""
    by_p = {0: [], 1: []}
    for p, o, k, v in records:
        by_p[p].append((o, k, v))
    for p, got in by_p.items():
        assert [o for o, _, _ in got] == list(range(RECORDS)), f"partition {p}: offsets"
        for o, k, v in got:
            assert k == str(o).encode() and v == value(p, o), f"partition {p} offset {o}"


def test_confluent_kafka_budget_ending_inside_a_batch(loaded):
    before = metric(loaded, "vltava_fetch_file_bytes_total")
    c = Consumer({"bootstrap.servers": loaded.bootstrap, "group.id": "fetch-cf",
                  "enable.auto.commit": False, "max.partition.fetch.bytes": 300000})
    try:
        c.assign([TopicPartition(TOPIC, p, 0) for p in (0, 1)])
        out = []
        wait_until(lambda: out.extend((m.partition(), m.offset(), m.key(), m.value())
                                      for m in c.consume(1000, 0.2) if not m.error())
                   or len(out) >= 2 * RECORDS, 60, what="every record")
    finally:
        c.close()
    check(out)
    # Partition 0 (~1.5 MB in ~128 KB batches) went from the file.
    assert metric(loaded, "vltava_fetch_file_bytes_total") - before >= 1_000_000


def test_kafka_python_batch_larger_than_the_budget(loaded):
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTP
    before = metric(loaded, "vltava_fetch_file_bytes_total")
    c = KafkaConsumer(bootstrap_servers=loaded.bootstrap, enable_auto_commit=False,
                      max_partition_fetch_bytes=50000, auto_offset_reset="earliest")
    try:
        c.assign([KTP(TOPIC, 0), KTP(TOPIC, 1)])
        c.seek_to_beginning()
        out = []

        def more():
            for tp, msgs in c.poll(timeout_ms=200).items():
                out.extend((tp.partition, m.offset, m.key, m.value) for m in msgs)
            return len(out) >= 2 * RECORDS
        wait_until(more, 90, what="every record")
    finally:
        c.close()
    check(out)
    assert metric(loaded, "vltava_fetch_file_bytes_total") - before >= 1_000_000


def test_aiokafka(loaded):
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition as ATP

    async def scenario():
        c = AIOKafkaConsumer(bootstrap_servers=loaded.bootstrap, enable_auto_commit=False,
                             max_partition_fetch_bytes=200000, auto_offset_reset="earliest")
        await c.start()
        try:
            c.assign([ATP(TOPIC, 0), ATP(TOPIC, 1)])
            await c.seek_to_beginning()
            out = []
            async with asyncio.timeout(90):
                while len(out) < 2 * RECORDS:
                    for tp, msgs in (await c.getmany(timeout_ms=200)).items():
                        out.extend((tp.partition, m.offset, m.key, m.value) for m in msgs)
            return out
        finally:
            await c.stop()
    check(asyncio.run(scenario()))


def test_kcat(loaded):
    r = run(["kcat", "-C", "-b", loaded.bootstrap, "-t", TOPIC, "-o", "beginning", "-e", "-q",
             "-X", "fetch.message.max.bytes=100000", "-f", "%p %o %k %s\n"], timeout_s=120)
    out = []
    for line in r.stdout.decode().splitlines():
        p, o, k, v = line.split(" ")
        out.append((int(p), int(o), k.encode(), v.encode()))
    check(out)
