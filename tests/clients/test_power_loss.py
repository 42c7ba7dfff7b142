"""An acknowledgement waits for fsync: the broker runs on a FUSE file system (powerloss_fs.py) that,
at a simulated power loss, drops every byte and every name that no completed fsync covered.
Acknowledged records must all survive that; a broker that acknowledges before fsyncing must be
caught; a failing fsync must take the data directory offline."""
import json
import os
import socket
import struct
import threading
import time
from types import SimpleNamespace

import pytest
import requests
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import Broker, wait_until
from powerloss_fs import mount_or_skip
from util import fetch_error, frame, read_frame, read_messages

pytestmark = pytest.mark.timeout(120)

UNSAFE = "VLTAVA_UNSAFE_ACK_BEFORE_FSYNC"
KAFKA_STORAGE_ERROR = 56


@pytest.fixture
def rig(tmp_path, request):
    """The file system mounted on tmp_path/mnt, with the broker's data dir mnt/data already
    there (and durable: it is in the backing directory before the mount). Brokers made with
    `rig.broker()` are killed, and the file system unmounted, whatever the outcome."""
    os.makedirs(tmp_path / "backing" / "data")
    fs = mount_or_skip(tmp_path)
    brokers = []

    def broker(*args):
        b = Broker(args, data_dir=os.path.join(fs.mnt, "data"))
        brokers.append(b)
        return b

    try:
        yield SimpleNamespace(fs=fs, broker=broker)
    finally:
        rep = getattr(request.node, "rep_call", None)
        try:
            for b in brokers:
                if rep is not None and rep.failed:
                    print(f"--- broker log ({b.bootstrap}) ---\n{b.log()[-8000:]}")
                b.cleanup()
        finally:
            fs.unmount()
            if rep is not None and rep.failed:
                print(f"--- file system log ---\n{fs.log()[-4000:]}")
    assert "Traceback" not in fs.log(), f"the file system failed an operation:\n{fs.log()[-4000:]}"


def create(bs, topic, partitions):
    admin = AdminClient({"bootstrap.servers": bs})
    for f in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        f.result(10)


def produce_until_killed(b, topic, min_acked=2000, max_sent=200_000):
    """Produces keyed records (acks=all) from a thread until at least `min_acked` are acknowledged,
    SIGKILLs the broker while the thread still produces, and returns {value: (partition, offset)}
    of every acknowledged record."""
    acked = {}
    stop = threading.Event()
    errors = []

    def on_delivery(err, msg):
        if err is None:
            acked[msg.value().decode()] = (msg.partition(), msg.offset())

    def run():
        try:
            p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 2,
                          "message.timeout.ms": 5000, "retries": 0, "log_level": 2})
            sent = 0
            while not stop.is_set() and sent < max_sent:
                key = f"k{sent % 20}"
                try:
                    p.produce(topic, key=key, value=f"{key}|{sent}", on_delivery=on_delivery)
                    sent += 1
                except BufferError:
                    p.poll(0.01)
                p.poll(0)
            p.purge(in_queue=True, in_flight=False)  # never sent: no need to wait for their timeout
            p.flush(8)
        except Exception as e:  # reported by the main thread
            errors.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        wait_until(lambda: len(acked) >= min_acked or not t.is_alive(), 40, what=f"{min_acked} acks")
        assert t.is_alive(), f"the producer stopped before the kill: {errors}"
        b.kill9()
    finally:
        stop.set()
        t.join(20)
    assert not t.is_alive() and not errors, errors
    return dict(acked)


def lost_after_power_loss(rig, unsafe):
    """The scenario: produce, SIGKILL, power loss, remount, restart, read back. Returns the
    acknowledged records, the ones lost or moved, and what the file system dropped."""
    if unsafe:
        os.environ[UNSAFE] = "1"
    try:
        b = rig.broker().start()
    finally:
        os.environ.pop(UNSAFE, None)
    topic, partitions = "durable", 3
    create(b.bootstrap, topic, partitions)
    acked = produce_until_killed(b, topic)
    dropped = rig.fs.power_loss()
    rig.fs.mount()
    b.start()
    seen = {}
    for m in read_messages(b.bootstrap, topic, partitions, expected=0, timeout_s=30):
        assert m.value().decode() not in seen, f"{m.value()} appears twice"
        seen[m.value().decode()] = (m.partition(), m.offset())
    lost = sorted(v for v, at in acked.items() if seen.get(v) != at)
    return acked, lost, dropped, seen, b


def test_acknowledged_records_survive_power_loss(rig):
    acked, lost, dropped, seen, _ = lost_after_power_loss(rig, unsafe=False)
    print(f"{len(acked)} acknowledged, {len(seen)} read back; the power loss dropped: {dropped}")
    assert not lost, (f"{len(lost)} of {len(acked)} acknowledged records lost or moved, e.g. "
                      f"{[(v, acked[v], seen.get(v)) for v in lost[:3]]}; the power loss dropped: {dropped}")


def test_power_loss_check_catches_acks_without_fsync(rig):
    """The same check against a broker that acknowledges without fsyncing must find losses:
    the check can fail."""
    acked, lost, dropped, _, b = lost_after_power_loss(rig, unsafe=True)
    print(f"{len(lost)} of {len(acked)} acknowledged records lost; the power loss dropped: {dropped}")
    assert lost, (f"all {len(acked)} records acknowledged without fsync survived the power loss: "
                  f"the check cannot tell (dropped: {dropped}; the broker log "
                  f"{'mentions' if UNSAFE in b.log() else 'does not mention'} {UNSAFE})")


def produce_one(bs, topic, value):
    """One record, acks=all, no retries: the delivery report's error (None once acknowledged)
    and offset."""
    out = []
    p = Producer({"bootstrap.servers": bs, "acks": "all", "retries": 0, "linger.ms": 0,
                  "request.timeout.ms": 8000, "message.timeout.ms": 10000})
    p.produce(topic, value=value, partition=0, on_delivery=lambda err, msg: out.append((err, msg.offset())))
    p.flush(15)
    assert out, "no delivery report within the message timeout"
    return out[0]


def ready(b):
    r = requests.get(f"{b.http}/health/ready", timeout=5)
    return r.status_code, r.json()


def test_fsync_error_takes_the_data_directory_offline(rig):
    b = rig.broker().start()
    topic = "offline"
    create(b.bootstrap, topic, 1)
    acked = [produce_one(b.bootstrap, topic, f"before-{i}") for i in range(5)]
    assert [err for err, _ in acked] == [None] * 5
    assert [off for _, off in acked] == list(range(5))
    assert ready(b)[0] == 200

    rig.fs.send("eio on")
    err, _ = produce_one(b.bootstrap, topic, "after-fault")
    assert err is not None, "a record was acknowledged although its fsync failed"
    assert err.code() == KafkaError.KAFKA_STORAGE_ERROR, err
    assert rig.fs.send("stats")["failed_fsync"] >= 1
    code, body = ready(b)
    assert code == 503 and "Input/output error" in (body.get("reason") or ""), body
    status = requests.get(f"{b.http}/status", timeout=5).json()
    assert body["reason"] in json.dumps(status), status
    assert "Input/output error" in b.log()

    def offline_checks():
        e, hwm, records = fetch_error(b.port, topic, 0, 0)
        assert e == KAFKA_STORAGE_ERROR and not records, (e, hwm, len(records))
        assert hwm <= 5, hwm
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "offline-reader",
                      "enable.auto.commit": False})
        try:
            c.assign([TopicPartition(topic, 0, 0)])
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:
                for m in c.consume(100, 0.5):
                    assert m.error() or m.offset() < 5, f"data past what was acknowledged: {m.offset()}"
        finally:
            c.close()
        err, _ = produce_one(b.bootstrap, topic, "while-offline")
        assert err is not None and err.code() == KafkaError.KAFKA_STORAGE_ERROR, err
        assert ready(b)[0] == 503

    offline_checks()
    rig.fs.send("eio off")  # the disk works again, but the latch holds until a restart
    offline_checks()

    b.restart()
    wait_until(lambda: ready(b)[0] == 200, 20, what="ready after the restart")
    back = {m.offset(): m.value().decode() for m in read_messages(b.bootstrap, topic, 1, 5, timeout_s=20)}
    assert all(back.get(i) == f"before-{i}" for i in range(5)), back
    err, off = produce_one(b.bootstrap, topic, "after-restart")
    assert err is None and off >= 5, (err, off)


def test_a_full_disk_is_logged_reported_and_refused(rig):
    """ENOSPC on append takes the directory offline like any storage error: produce gets
    KAFKA_STORAGE_ERROR, the log, /status and /metrics say the disk is full, and an offset
    commit gets NOT_COORDINATOR (what Kafka answers when the offsets log cannot be written)."""
    b = rig.broker().start()
    topic = "full"
    create(b.bootstrap, topic, 1)
    assert produce_one(b.bootstrap, topic, "before")[0] is None
    rig.fs.send("enospc on")
    err, _ = produce_one(b.bootstrap, topic, "no-room")
    assert err is not None and err.code() == KafkaError.KAFKA_STORAGE_ERROR, err
    assert "No space left on device" in b.log()
    status = requests.get(f"{b.http}/status", timeout=5).json()
    assert "No space left on device" in json.dumps(status.get("storage")), status
    metrics = requests.get(f"{b.http}/metrics", timeout=5).text
    assert "vltava_log_dir_offline 1" in metrics
    assert ready(b)[0] == 503
    s = socket.create_connection(("127.0.0.1", b.port), timeout=10)
    try:
        # OffsetCommit v2: group, generation -1, member "", retention -1, one topic/partition.
        body = (struct.pack(">h", 5) + b"group" + struct.pack(">ih", -1, 0) + struct.pack(">q", -1)
                + struct.pack(">i", 1) + struct.pack(">h", len(topic)) + topic.encode()
                + struct.pack(">iiqh", 1, 0, 1, -1))
        s.sendall(frame(8, 2, 7, body))
        resp = read_frame(s)
        corr, topics, name_len = struct.unpack(">iih", resp[:10])
        partition, error = struct.unpack(">ih", resp[10 + name_len + 4:10 + name_len + 10])
        assert (corr, topics, partition) == (7, 1, 0)
        assert error == 16, f"OffsetCommit on a full disk answered {error}, not NOT_COORDINATOR (16)"
    finally:
        s.close()
    # Rate-limited: one error line for the failure, not one per refused request.
    for i in range(20):
        produce_one(b.bootstrap, topic, f"refused-{i}")
    assert b.log().count("No space left on device") <= 3, b.log()
    rig.fs.send("enospc off")
    b.restart()
    wait_until(lambda: ready(b)[0] == 200, 20, what="ready after the restart")
    assert produce_one(b.bootstrap, topic, "after")[0] is None



def test_committed_offsets_survive_power_loss(rig):
    """An answered OffsetCommit is as durable as an acknowledged record: the group store's file
    (data/__groups/groups.log) must have a durable name, not only fsynced bytes."""
    b = rig.broker().start()
    topic = "committed"
    create(b.bootstrap, topic, 1)
    assert [produce_one(b.bootstrap, topic, f"r{i}")[0] for i in range(3)] == [None] * 3
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "durable-group", "enable.auto.commit": False})
    try:
        c.commit(offsets=[TopicPartition(topic, 0, 3)], asynchronous=False)
    finally:
        c.close()
    b.kill9()
    dropped = rig.fs.power_loss()
    rig.fs.mount()
    b.start()
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "durable-group"})
    try:
        got = c.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
    finally:
        c.close()
    assert got == 3, f"the committed offset is {got} after the power loss, not 3 (dropped: {dropped})"
