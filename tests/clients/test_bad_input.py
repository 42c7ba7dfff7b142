"""Bad input from real clients and raw sockets: each gets Kafka's error code or a closed
connection, and the broker keeps serving."""
import socket
import time
import struct

import pytest
import requests
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   NewTopic)

from conftest import run
from util import frame, read_frame

pytestmark = pytest.mark.timeout(60)


def create_error(admin, topic):
    fut = list(admin.create_topics([topic]).values())[0]
    with pytest.raises(KafkaException) as e:
        fut.result(10)
    return e.value.args[0]


def test_admin_validation_errors(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    err = create_error(admin, NewTopic("bad name!", 1, 1))
    assert err.code() == KafkaError.TOPIC_EXCEPTION, err
    err = create_error(admin, NewTopic("cfg", 1, 1, config={"retention.ms": "abc"}))
    assert err.code() == KafkaError.INVALID_CONFIG and "retention.ms" in err.str(), err
    err = create_error(admin, NewTopic("rf", 1, 3))
    assert err.code() == KafkaError.INVALID_REPLICATION_FACTOR, err
    err = create_error(admin, NewTopic("unknown-cfg", 1, 1, config={"no.such.thing": "1"}))
    assert err.code() == KafkaError.INVALID_CONFIG, err
    for f in admin.create_topics([NewTopic("ok", 1, 1)]).values():
        f.result(10)
    err = create_error(admin, NewTopic("ok", 1, 1))
    assert err.code() == KafkaError.TOPIC_ALREADY_EXISTS, err
    bad = ConfigResource("topic", "ok", incremental_configs=[
        ConfigEntry("segment.bytes", "-5", incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(KafkaException) as e:
        list(admin.incremental_alter_configs([bad]).values())[0].result(10)
    assert e.value.args[0].code() == KafkaError.INVALID_CONFIG
    # validate_only creates nothing.
    for f in admin.create_topics([NewTopic("dry", 2, 1)], validate_only=True).values():
        f.result(10)
    assert "dry" not in admin.list_topics(timeout=10).topics


def test_record_larger_than_max_message_bytes(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for f in admin.create_topics([NewTopic("small", 1, 1, config={"max.message.bytes": "1000"})]).values():
        f.result(10)
    errors = []
    p = Producer({"bootstrap.servers": broker.bootstrap, "message.max.bytes": 100000})
    p.produce("small", value=b"x" * 5000, on_delivery=lambda e, m: errors.append(e))
    p.flush(10)  # separate batches: the broker refuses whole batches
    p.produce("small", value=b"fits", on_delivery=lambda e, m: errors.append(e))
    p.flush(10)
    codes = sorted(e.code() if e else 0 for e in errors)
    assert codes == [0, KafkaError.MSG_SIZE_TOO_LARGE], errors


def test_unknown_topic_with_auto_create_off(broker_factory):
    b = broker_factory("--no-auto-create-topics")
    errors = []
    p = Producer({"bootstrap.servers": b.bootstrap, "message.timeout.ms": 10000,
                  "topic.metadata.propagation.max.ms": 500})
    p.produce("does-not-exist", value=b"x", on_delivery=lambda e, m: errors.append(e))
    p.flush(10)
    assert len(errors) == 1 and errors[0] is not None
    assert errors[0].code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC), errors[0]
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    assert "does-not-exist" not in admin.list_topics(timeout=10).topics


def closed_by_peer(s):
    s.settimeout(10)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True


def still_serves(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(frame(18, 0, 9))
        body = read_frame(s)
        assert struct.unpack(">ih", body[:6]) == (9, 0)


def test_api_versions_v0_and_v3(broker):
    with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as s:
        s.sendall(frame(18, 0, 1))
        body = read_frame(s)
        corr, err, n = struct.unpack(">ihi", body[:10])
        assert (corr, err) == (1, 0) and n > 10
        keys = {struct.unpack(">hhh", body[10 + 6 * i:16 + 6 * i])[0]: struct.unpack(">hhh", body[10 + 6 * i:16 + 6 * i])[1:] for i in range(n)}
        assert keys[0] == (0, 13) and keys[18] == (0, 4) and keys[68] == (0, 1)
        assert 71 not in keys and 72 not in keys  # telemetry is not implemented, so not advertised
        # v3: flexible request; the response header stays v0 (no tagged fields after the id).
        sw = bytes([4]) + b"raw" + bytes([2]) + b"1" + b"\x00"
        s.sendall(frame(18, 3, 2, body=sw, flexible=True))
        body = read_frame(s)
        corr, err = struct.unpack(">ih", body[:6])
        assert (corr, err) == (2, 0)
        count = body[6] - 1  # compact array length
        assert count == n


def test_api_versions_too_new_gets_v0_error_body(broker):
    with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as s:
        s.sendall(frame(18, 99, 5))
        body = read_frame(s)
        corr, err, n, key, lo, hi = struct.unpack(">ihihhh", body[:16])
        assert (corr, err, n, key) == (5, 35, 1, 18) and lo == 0 and hi >= 3


def test_oversized_frame_and_unknown_api_close_only_that_connection(broker):
    with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as s:
        s.sendall(struct.pack(">i", 200 * 1024 * 1024) + b"\x00" * 16)
        assert closed_by_peer(s)
    with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as s:
        s.sendall(frame(9999, 0, 3))
        assert closed_by_peer(s)
    with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as s:
        s.sendall(frame(3, 77, 4))  # Metadata v77
        assert closed_by_peer(s)
    still_serves(broker.port)


def test_named_listeners_advertise_their_own_addresses(broker_factory):
    from conftest import free_ports
    p1, p2 = free_ports(2)
    b = broker_factory("--listener", f"A=127.0.0.1:{p1}", "--advertise", f"A=127.0.0.1:{p1}",
                       "--listener", f"B=127.0.0.1:{p2}", "--advertise", f"B=localhost:{p2}")
    md_default = run(["kcat", "-L", "-b", b.bootstrap]).stdout.decode()
    md_a = run(["kcat", "-L", "-b", f"127.0.0.1:{p1}"]).stdout.decode()
    md_b = run(["kcat", "-L", "-b", f"127.0.0.1:{p2}"]).stdout.decode()
    assert f"broker 1 at 127.0.0.1:{b.port}" in md_default
    assert f"broker 1 at 127.0.0.1:{p1}" in md_a
    assert f"broker 1 at localhost:{p2}" in md_b
    assert "bootstrap servers (B): localhost:" in b.log()


def proc_status(pid, field):
    """A /proc/<pid>/status field in KiB (VmHWM: peak resident memory; VmSize: address space)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field}")


def test_millions_of_names_in_one_request_close_that_connection_without_allocating(broker):
    """Issue 23.8: one 16 MiB DescribeGroups of 8M empty group ids peaked at 2.7 GB (OOM beyond);
    8M copies of one topic in Metadata made a 296 MiB reply."""
    pid = broker.proc.pid
    before = proc_status(pid, "VmHWM")
    n = 8_000_000
    cases = [
        (15, 0, struct.pack(">i", n) + b"\x00\x00" * n),  # DescribeGroups v0: n empty ids
        (3, 1, struct.pack(">i", n) + (struct.pack(">h", 1) + b"t") * (n // 2)),  # Metadata v1
    ]
    for key, version, body in cases:
        with socket.create_connection(("127.0.0.1", broker.port), timeout=30) as s:
            s.sendall(frame(key, version, 7, body))
            assert closed_by_peer(s), f"api {key}"
    grown_mib = (proc_status(pid, "VmHWM") - before) / 1024
    assert grown_mib < 400, f"peak RSS grew by {grown_mib:.0f} MiB"
    still_serves(broker.port)
    assert "more than the 100000 allowed" in broker.log()


def test_a_topic_named_many_times_is_answered_once(broker):
    body = struct.pack(">i", 1000) + (struct.pack(">h", 5) + b"dupes") * 1000
    with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as s:
        s.sendall(frame(3, 1, 8, body))  # Metadata v1 (auto-creates "dupes" once)
        resp = read_frame(s)
    pos = 4
    (brokers,) = struct.unpack(">i", resp[pos:pos + 4])
    pos += 4
    for _ in range(brokers):
        pos += 4
        (hl,) = struct.unpack(">h", resp[pos:pos + 2])
        pos += 2 + hl
        (rl,) = struct.unpack(">h", resp[pos:pos + 2])
        pos += 2 + max(rl, 0)
    pos += 4  # controller id
    (topics,) = struct.unpack(">i", resp[pos:pos + 4])
    assert topics == 1


def test_idle_and_half_sent_connections_are_closed(broker_factory):
    """Issue 23.10: connections.max.idle.ms, and a request frame must arrive in time."""
    b = broker_factory("--connections-max-idle-ms", "1000")
    idle = socket.create_connection(("127.0.0.1", b.port), timeout=10)
    half = socket.create_connection(("127.0.0.1", b.port), timeout=10)
    half.sendall(struct.pack(">i", 100) + b"\x00" * 10)
    t0 = time.monotonic()
    assert closed_by_peer(idle) and closed_by_peer(half)
    assert time.monotonic() - t0 < 9
    idle.close()
    half.close()
    # A connection that keeps asking stays open past the idle limit.
    with socket.create_connection(("127.0.0.1", b.port), timeout=10) as s:
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            s.sendall(frame(18, 0, 1))
            read_frame(s)
            time.sleep(0.2)


def test_one_peer_cannot_take_every_connection(broker_factory):
    """Issue 23.10: max.connections.per.ip (and its overrides) leave room for other clients."""
    b = broker_factory("--max-connections-per-ip", "20",
                       "--max-connections-per-ip-overrides", "127.0.0.3:30")
    def connect_from(src):
        s = socket.socket()
        s.settimeout(10)
        s.bind((src, 0))
        s.connect(("127.0.0.1", b.port))
        return s
    # The hog is 127.0.0.4 (the broker's own registry and HTTP API connect from 127.0.0.1).
    hog = [connect_from("127.0.0.4") for _ in range(20)]
    try:
        # Every slot of 127.0.0.4 is taken (each answers), the next one is refused...
        for s in hog[:3]:
            s.sendall(frame(18, 0, 1))
            read_frame(s)
        extra = connect_from("127.0.0.4")
        assert closed_by_peer(extra)
        extra.close()
        # ...and a client from another address is served as usual.
        other = connect_from("127.0.0.2")
        other.sendall(frame(18, 0, 2))
        assert struct.unpack(">ih", read_frame(other)[:6]) == (2, 0)
        other.close()
        more = [connect_from("127.0.0.3") for _ in range(25)]
        for s in more:
            s.sendall(frame(18, 0, 3))
            assert struct.unpack(">ih", read_frame(s)[:6]) == (3, 0), "the override allows 30"
        for s in more:
            s.close()
    finally:
        for s in hog:
            s.close()
    assert "max.connections.per.ip reached" in b.log()


def test_announced_frames_reserve_nothing(broker):
    """Issue 23.11: 1,000 sockets announcing 100 MiB frames used to reserve 102.7 GB of address
    space; buffers now grow with the bytes that arrive."""
    pid = broker.proc.pid
    before = proc_status(pid, "VmSize")
    socks = []
    try:
        for _ in range(900):
            s = socket.create_connection(("127.0.0.1", broker.port), timeout=10)
            s.sendall(struct.pack(">i", 100 * 1024 * 1024) + b"\x00" * 100)
            socks.append(s)
        # Every socket is read up to its few bytes (the last one too): then measure.
        wait_until_conns = time.monotonic() + 20
        while time.monotonic() < wait_until_conns:
            m = requests.get(f"{broker.http}/metrics", timeout=5).text
            active = [l for l in m.splitlines() if l.startswith("vltava_connections_active ")]
            if active and float(active[0].split()[1]) >= 900:
                break
            time.sleep(0.1)
        grown_mib = (proc_status(pid, "VmSize") - before) / 1024
        assert grown_mib < 1024, f"address space grew by {grown_mib:.0f} MiB for 900 announced frames"
        still_serves(broker.port)
    finally:
        for s in socks:
            s.close()


def test_creating_ten_thousand_partitions_leaves_the_broker_answering(broker):
    """CreateTopics works on the file system off the request path: while a 10,000-partition
    create runs, a new connection's ApiVersions and a produce to another topic are answered."""
    import os
    import threading
    from conftest import wait_until
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for f in admin.create_topics([NewTopic("other", 1, 1)]).values():
        f.result(10)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    producer.produce("other", b"warm-up")
    assert producer.flush(10) == 0
    done = threading.Event()
    failure = []

    def create():
        try:
            wide = AdminClient({"bootstrap.servers": broker.bootstrap})
            fut = wide.create_topics([NewTopic("wide", 10_000, 1)], request_timeout=120,
                                     operation_timeout=120)["wide"]
            fut.result(120)
        except Exception as e:  # reported below
            failure.append(e)
        done.set()

    t = threading.Thread(target=create, daemon=True)
    t.start()
    wait_until(lambda: done.is_set() or any(n.startswith("wide-") for n in os.listdir(broker.data_dir)),
               30, what="the create under way")
    still_serves(broker.port)
    delivered = []
    producer.produce("other", b"during", on_delivery=lambda e, m: delivered.append(e))
    producer.flush(30)
    assert delivered == [None]
    answered_during_create = not done.is_set()
    t.join(120)
    assert not failure, failure
    assert answered_during_create, "the create finished first: nothing was measured"
    assert len(admin.list_topics("wide", timeout=30).topics["wide"].partitions) == 10_000
    # Deleting renames the directories at once and removes them in the background: the name
    # is free again right away, and every directory is gone soon after.
    admin.delete_topics(["wide"], operation_timeout=60, request_timeout=60)["wide"].result(60)
    for f in admin.create_topics([NewTopic("wide", 1, 1)]).values():
        f.result(30)
    still_serves(broker.port)
    wait_until(lambda: not [n for n in os.listdir(broker.data_dir) if n.endswith("-delete")], 60,
               what="deleted directories removed")
    assert sorted(n for n in os.listdir(broker.data_dir) if n.startswith("wide-")) == ["wide-0"]


def test_fetch_max_bytes_is_spent_once_by_an_oversized_first_batch(broker):
    """KIP-74: a first batch larger than max_bytes is returned whole, and then the response is
    full: the other partitions get nothing (the budget left is 0, not an underflowed huge one)."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for f in admin.create_topics([NewTopic("big-first", 3, 1)]).values():
        f.result(10)
    p = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": "none"})
    for part in range(3):
        p.produce("big-first", value=b"x" * 5000, partition=part)
    assert p.flush(10) == 0
    t = b"big-first"
    body = struct.pack(">iiiib", -1, 100, 1, 100, 0) + struct.pack(">ih", 1, len(t)) + t
    body += struct.pack(">i", 3) + b"".join(struct.pack(">iqi", part, 0, 1 << 20) for part in range(3))
    with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as s:
        s.sendall(frame(1, 4, 5, body))
        resp = read_frame(s)
    corr, _, topics = struct.unpack_from(">iii", resp)
    assert (corr, topics) == (5, 1)
    pos = 12
    (name_len,) = struct.unpack_from(">h", resp, pos)
    pos += 2 + name_len
    (count,) = struct.unpack_from(">i", resp, pos)
    pos += 4
    sizes = {}
    for _ in range(count):
        part, err = struct.unpack_from(">ih", resp, pos)
        pos += 4 + 2 + 8 + 8
        (aborted,) = struct.unpack_from(">i", resp, pos)
        pos += 4 + max(aborted, 0) * 16
        (size,) = struct.unpack_from(">i", resp, pos)
        pos += 4 + max(size, 0)
        assert err == 0
        sizes[part] = max(size, 0)
    assert sizes[0] > 5000, sizes
    assert sizes[1] == 0 and sizes[2] == 0, sizes


def test_garbage_connections_are_logged_once_per_cause(broker):
    """A peer that opens many connections and sends garbage grows the log by one line per cause
    per 10 s, not one per connection."""
    for i in range(300):
        with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as s:
            s.sendall(frame(9999, 0, i))  # an unknown API key closes the connection
            assert closed_by_peer(s)
    still_serves(broker.port)
    lines = [line for line in broker.log().splitlines() if "unknown API key" in line]
    assert 1 <= len(lines) <= 3, lines
