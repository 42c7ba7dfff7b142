"""Bad input from real clients and raw sockets: each gets Kafka's error code or a closed
connection, and the broker keeps serving."""
import socket
import struct

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   NewTopic)

from conftest import run

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


def frame(api_key, version, correlation_id, body=b"", client_id=b"raw", flexible=False):
    header = struct.pack(">hhi", api_key, version, correlation_id)
    header += struct.pack(">h", len(client_id)) + client_id
    if flexible:
        header += b"\x00"  # empty tagged fields
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def read_frame(s):
    def exact(n):
        buf = b""
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        return buf
    (n,) = struct.unpack(">i", exact(4))
    return exact(n)


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
