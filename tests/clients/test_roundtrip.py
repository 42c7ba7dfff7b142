"""Each real client against a `vltava serve` process: create a 6-partition topic, produce at least
10,000 keyed records with every codec the client supports, read them all back, list offsets,
describe and alter a topic config, delete the topic."""
import asyncio
import json
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   NewTopic)

from conftest import run, run_node, wait_until
from util import (KEYS, check_offsets_by_timestamp, check_order_and_count, read_all, topic_exists,
                  value_for, watermarks)

pytestmark = pytest.mark.timeout(240)
PARTITIONS = 6
PER_CODEC = 2000


def confluent_lookup(bootstrap, topic):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "vltava-test-ts"})

    def lookup(p, ts):
        return c.offsets_for_times([TopicPartition(topic, p, ts)], timeout=10)[0].offset
    return c, lookup


def test_confluent_kafka(broker):
    bs, topic = broker.bootstrap, "cf-roundtrip"
    admin = AdminClient({"bootstrap.servers": bs})
    for f in admin.create_topics([NewTopic(topic, PARTITIONS, 1)]).values():
        f.result(10)
    codecs = ["none", "gzip", "snappy", "lz4", "zstd"]
    for codec in codecs:
        p = Producer({"bootstrap.servers": bs, "compression.type": codec, "linger.ms": 5,
                      "partitioner": "murmur2_random"})
        errors = []
        for i in range(PER_CODEC):
            key = f"k{i % KEYS}"
            p.produce(topic, key=key, value=value_for(key, i, codec),
                      on_delivery=lambda e, m: e and errors.append(e))
            if i % 500 == 0:
                p.poll(0)
        assert p.flush(30) == 0
        assert not errors, errors
    total = PER_CODEC * len(codecs)
    records = read_all(bs, topic, PARTITIONS, total)
    check_order_and_count(records, total)
    wm = watermarks(bs, topic, PARTITIONS)
    assert all(lo == 0 for lo, _ in wm) and sum(hi for _, hi in wm) == total
    c, lookup = confluent_lookup(bs, topic)
    try:
        check_offsets_by_timestamp(records, lookup)
    finally:
        c.close()
    res = ConfigResource("topic", topic)
    described = list(admin.describe_configs([res]).values())[0].result(10)
    assert described["retention.ms"].value == "604800000"
    alter = ConfigResource("topic", topic, incremental_configs=[
        ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET)])
    for f in admin.incremental_alter_configs([alter]).values():
        f.result(10)
    described = list(admin.describe_configs([res]).values())[0].result(10)
    assert described["retention.ms"].value == "3600000"
    assert not described["retention.ms"].is_default
    for f in admin.delete_topics([topic]).values():
        f.result(10)
    wait_until(lambda: not topic_exists(bs, topic), 10, what="topic deletion")


def test_kafka_python(broker):
    from kafka import KafkaConsumer, KafkaProducer
    from kafka import TopicPartition as KTP
    from kafka.admin import ConfigResource as KCR
    from kafka.admin import ConfigResourceType, KafkaAdminClient
    from kafka.admin import NewTopic as KNewTopic
    bs, topic = broker.bootstrap, "kp-roundtrip"
    admin = KafkaAdminClient(bootstrap_servers=bs)
    admin.create_topics([KNewTopic(topic, PARTITIONS, 1)])
    codecs = [None, "gzip", "snappy", "lz4", "zstd"]
    for codec in codecs:
        p = KafkaProducer(bootstrap_servers=bs, compression_type=codec, linger_ms=5)
        futures = []
        for i in range(PER_CODEC):
            key = f"k{i % KEYS}"
            futures.append(p.send(topic, key=key.encode(), value=value_for(key, i, codec).encode()))
        p.flush(30)
        for f in futures:
            f.get(10)
        p.close()
    total = PER_CODEC * len(codecs)
    c = KafkaConsumer(bootstrap_servers=bs, group_id=None, consumer_timeout_ms=3000,
                      auto_offset_reset="earliest")
    tps = [KTP(topic, p) for p in range(PARTITIONS)]
    c.assign(tps)
    c.seek_to_beginning()
    own = [(m.partition, m.offset, m.key.decode(), m.value.decode(), m.timestamp) for m in c]
    check_order_and_count(own, total)
    assert sum(c.end_offsets(tps).values()) == total
    assert set(c.beginning_offsets(tps).values()) == {0}

    def lookup(p, ts):
        r = c.offsets_for_times({KTP(topic, p): ts})[KTP(topic, p)]
        return None if r is None else r.offset
    check_offsets_by_timestamp(own, lookup)
    c.close()
    cfg = admin.describe_configs([KCR(ConfigResourceType.TOPIC, topic)], config_filter="all")
    assert cfg["topic"][topic]["retention.ms"]["value"] == "604800000"
    admin.alter_configs([KCR(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "7200000"})])
    cfg = admin.describe_configs([KCR(ConfigResourceType.TOPIC, topic)], config_filter="all")
    assert cfg["topic"][topic]["retention.ms"]["value"] == "7200000"
    admin.delete_topics([topic])
    wait_until(lambda: not topic_exists(bs, topic), 10, what="topic deletion")
    admin.close()


def test_aiokafka(broker):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource as ACR
    from aiokafka.admin.config_resource import ConfigResourceType as ACRT
    from aiokafka.admin import NewTopic as ANewTopic
    from aiokafka.structs import TopicPartition as ATP
    bs, topic = broker.bootstrap, "ak-roundtrip"
    codecs = [None, "gzip", "snappy", "lz4", "zstd"]
    total = PER_CODEC * len(codecs)

    async def scenario():
        admin = AIOKafkaAdminClient(bootstrap_servers=bs)
        await admin.start()
        try:
            await admin.create_topics([ANewTopic(topic, PARTITIONS, 1)])
            for codec in codecs:
                p = AIOKafkaProducer(bootstrap_servers=bs, compression_type=codec, linger_ms=5)
                await p.start()
                try:
                    futs = []
                    for i in range(PER_CODEC):
                        key = f"k{i % KEYS}"
                        futs.append(await p.send(topic, key=key.encode(), value=value_for(key, i, codec).encode()))
                    await asyncio.gather(*futs)
                finally:
                    await p.stop()
            c = AIOKafkaConsumer(bootstrap_servers=bs, group_id=None, auto_offset_reset="earliest")
            await c.start()
            try:
                tps = [ATP(topic, p) for p in range(PARTITIONS)]
                c.assign(tps)
                await c.seek_to_beginning(*tps)
                own = []
                deadline = time.monotonic() + 60
                while len(own) < total and time.monotonic() < deadline:
                    batch = await c.getmany(timeout_ms=500)
                    for msgs in batch.values():
                        own += [(m.partition, m.offset, m.key.decode(), m.value.decode(), m.timestamp) for m in msgs]
                check_order_and_count(own, total)
                assert sum((await c.end_offsets(tps)).values()) == total
                assert set((await c.beginning_offsets(tps)).values()) == {0}
                rows = {}
                for p, off, _, _, ts in own:
                    rows.setdefault(p, []).append((off, ts))
                answers = {}
                for p, r in rows.items():
                    r.sort()
                    # The same targets check_offsets_by_timestamp asks for.
                    for target in (r[0][1], r[len(r) // 2][1], r[-1][1], r[-1][1] + 10_000_000):
                        found = (await c.offsets_for_times({ATP(topic, p): target}))[ATP(topic, p)]
                        answers[(p, target)] = None if found is None else found.offset
            finally:
                await c.stop()
            check_offsets_by_timestamp(own, lambda p, ts: answers[(p, ts)])
            described = await admin.describe_configs([ACR(ACRT.TOPIC, topic)])
            entries = {e[0]: e[1] for r in described for res in r.resources for e in res[4]}
            assert entries["retention.ms"] == "604800000"
            await admin.alter_configs([ACR(ACRT.TOPIC, topic, {"retention.ms": "1800000"})])
            described = await admin.describe_configs([ACR(ACRT.TOPIC, topic)])
            entries = {e[0]: e[1] for r in described for res in r.resources for e in res[4]}
            assert entries["retention.ms"] == "1800000"
            await admin.delete_topics([topic])
        finally:
            await admin.close()

    asyncio.run(scenario())
    wait_until(lambda: not topic_exists(bs, topic), 10, what="topic deletion")


def test_kafkajs(broker):
    bs, topic = broker.bootstrap, "kjs-roundtrip"
    out = json.loads(run_node("roundtrip.js", bs, topic, str(PER_CODEC)).strip().splitlines()[-1])
    total = out["produced"]
    assert total >= 10_000
    # KafkaJS reads only through consumer groups (not yet in Vltava): librdkafka reads back.
    records = read_all(bs, topic, PARTITIONS, total)
    check_order_and_count(records, total)
    assert sum(int(o["high"]) for o in out["offsets"]) == total
    assert all(int(o["low"]) == 0 for o in out["offsets"])
    first_ts = min(r[4] for r in records)
    for o in out["byTimestamp"]:
        assert int(o["offset"]) == 0, o  # every record is newer than the lookup time
    assert out["configBefore"] == "604800000" and out["configAfter"] == "900000"
    assert first_ts >= out["lookupTs"]
    run_node("delete_topic.js", bs, topic)
    wait_until(lambda: not topic_exists(bs, topic), 10, what="topic deletion")


def test_kcat(broker_factory):
    b = broker_factory("--default-partitions", "6")
    bs, topic = b.bootstrap, "kcat-roundtrip"
    codecs = ["none", "gzip", "snappy", "lz4", "zstd"]
    for codec in codecs:
        lines = "".join(f"k{i % KEYS}:{value_for(f'k{i % KEYS}', i, codec)}\n" for i in range(PER_CODEC))
        run(["kcat", "-P", "-b", bs, "-t", topic, "-K", ":", "-z", codec,
             "-X", "partitioner=murmur2_random"], input_bytes=lines.encode())
    total = PER_CODEC * len(codecs)
    r = run(["kcat", "-C", "-b", bs, "-t", topic, "-o", "beginning", "-e", "-q",
             "-f", "%p\t%o\t%k\t%s\t%T\n"], timeout_s=120)
    own = []
    for line in r.stdout.decode().splitlines():
        p, o, k, v, ts = line.split("\t")
        own.append((int(p), int(o), k, v, int(ts)))
    check_order_and_count(own, total)

    def lookup(p, ts):
        out = run(["kcat", "-Q", "-b", bs, "-t", f"{topic}:{p}:{ts}"]).stdout.decode()
        # "<topic> [<p>] offset <n>"
        return int(out.strip().split()[-1])
    check_offsets_by_timestamp(own, lookup)
    # kcat has no config or topic admin: configs and deletion are covered by the other clients.
    md = run(["kcat", "-L", "-b", bs, "-t", topic]).stdout.decode()
    assert f'topic "{topic}" with {PARTITIONS} partitions' in md


def test_same_key_lands_on_same_partition_whichever_client_produced_it(broker):
    """Every client's default (or murmur2-configured) partitioner agrees with Java's murmur2."""
    from kafka import KafkaProducer
    bs = broker.bootstrap
    keys = [f"user-{i}" for i in range(40)]
    # confluent-kafka
    p = Producer({"bootstrap.servers": bs, "partitioner": "murmur2_random"})
    for k in keys:
        p.produce("part-cf", key=k, value=value_for(k, 0, "cf"))
    assert p.flush(30) == 0
    # kafka-python
    kp = KafkaProducer(bootstrap_servers=bs)
    for k in keys:
        kp.send("part-kp", key=k.encode(), value=value_for(k, 0, "kp").encode())
    kp.flush(30)
    kp.close()

    # aiokafka
    async def aio():
        from aiokafka import AIOKafkaProducer
        ap = AIOKafkaProducer(bootstrap_servers=bs)
        await ap.start()
        try:
            for k in keys:
                await ap.send_and_wait("part-ak", key=k.encode(), value=value_for(k, 0, "ak").encode())
        finally:
            await ap.stop()
    asyncio.run(aio())
    # KafkaJS
    run_node("produce_keys.js", bs, "part-kjs", ",".join(keys))
    # kcat
    run(["kcat", "-P", "-b", bs, "-t", "part-kcat", "-K", ":", "-X", "partitioner=murmur2_random"],
        input_bytes="".join(f"{k}:{value_for(k, 0, 'kcat')}\n" for k in keys).encode())
    maps = {}
    for t in ("part-cf", "part-kp", "part-ak", "part-kjs", "part-kcat"):
        maps[t] = check_order_and_count(read_all(bs, t, PARTITIONS, len(keys)), len(keys))
    first = maps["part-cf"]
    assert len(set(first.values())) > 1, "keys should spread over partitions"
    for t, m in maps.items():
        assert m == first, f"{t} placed keys differently from librdkafka's murmur2"
