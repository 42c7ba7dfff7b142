"""Helpers shared by the real-client tests: a group-less confluent-kafka reader (the independent
cross-check) and the assertions every round trip makes."""
import signal
import socket
import struct
import subprocess
import sys
import time
from collections import defaultdict

from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient

KEYS = 50


def value_for(key, seq, tag):
    return f"{key}|{seq}|{tag}"


def read_messages(bootstrap, topic, partitions, expected, timeout_s=60, start=0):
    """Reads every partition from `start` with librdkafka (no consumer group) until `expected`
    records arrived and every partition is at EOF, or the deadline passed. Returns the
    confluent-kafka messages."""
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "vltava-test-reader",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
    })
    try:
        c.assign([TopicPartition(topic, p, start) for p in range(partitions)])
        out = []
        eof = set()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if len(out) >= expected and len(eof) == partitions:
                break
            for m in c.consume(1000, 0.5):
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        eof.add(m.partition())
                        continue
                    raise AssertionError(f"consume error: {m.error()}")
                eof.discard(m.partition())
                out.append(m)
        return out
    finally:
        c.close()


def read_all(bootstrap, topic, partitions, expected, timeout_s=60, start=0):
    """As `read_messages`, as a list of (partition, offset, key, value, timestamp) with text keys
    and values."""
    return [(m.partition(), m.offset(), m.key().decode() if m.key() is not None else None,
             m.value().decode(), m.timestamp()[1])
            for m in read_messages(bootstrap, topic, partitions, expected, timeout_s, start)]


def check_order_and_count(records, expected_count):
    """Every record once, each key on a single partition, per-key sequence increasing with the
    offset. Returns {key: partition}."""
    assert len(records) == expected_count, f"expected {expected_count} records, got {len(records)}"
    values = [r[3] for r in records]
    assert len(set(values)) == len(values), "duplicate records"
    key_partition = {}
    last = {}
    for p, off, key, value, _ in sorted(records, key=lambda r: (r[0], r[1])):
        k, seq, tag = value.split("|")
        assert k == key, f"record key {key} does not match value {value}"
        assert key_partition.setdefault(key, p) == p, f"key {key} found on two partitions"
        prev = last.get((key, tag), -1)
        assert int(seq) > prev, f"per-key order broken for {key} ({tag}): {seq} after {prev}"
        last[(key, tag)] = int(seq)
    return key_partition


def check_offsets_by_timestamp(records, lookup):
    """`lookup(partition, ts)` is the client's ListOffsets by timestamp; it must return the first
    offset whose record timestamp is at least ts, or -1/None past the end."""
    by_part = defaultdict(list)
    for p, off, _, _, ts in records:
        by_part[p].append((off, ts))
    checked = 0
    for p, rows in by_part.items():
        rows.sort()
        for target in (rows[0][1], rows[len(rows) // 2][1], rows[-1][1]):
            expected = min(off for off, ts in rows if ts >= target)
            got = lookup(p, target)
            assert got == expected, f"partition {p}: offset for ts {target} is {got}, expected {expected}"
            checked += 1
        past = lookup(p, rows[-1][1] + 10_000_000)
        assert past in (-1, None), f"partition {p}: offset past the newest timestamp is {past}"
    assert checked > 0


def topic_exists(bootstrap, topic):
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    return topic in md.topics


def watermarks(bootstrap, topic, partitions):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "vltava-test-wm"})
    try:
        return [c.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in range(partitions)]
    finally:
        c.close()


class ExampleProcs:
    """An example's processes (Python programs run in `cwd`): output to files in `tmp_path`,
    stopped by PID (SIGTERM, then SIGKILL) at teardown."""

    def __init__(self, tmp_path, cwd):
        self.tmp_path = tmp_path
        self.cwd = cwd
        self.procs = []

    def start(self, name, args, env):
        log = open(self.tmp_path / f"{name}.log", "ab")
        p = subprocess.Popen([sys.executable, *args], cwd=self.cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.procs.append((name, p))
        return p

    def log(self, name):
        path = self.tmp_path / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop_all(self):
        for _, p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for _, p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)

    def print_logs_if_failed(self, request):
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            for name, _ in self.procs:
                print(f"--- {name} output ---\n{self.log(name)[-6000:]}")


def frame(api_key, version, correlation_id, body=b"", client_id=b"raw", flexible=False):
    """A size-prefixed Kafka request with a v1 (or, `flexible`, v2) header, for raw-socket tests."""
    import struct
    header = struct.pack(">hhi", api_key, version, correlation_id)
    header += struct.pack(">h", len(client_id)) + client_id
    if flexible:
        header += b"\x00"  # empty tagged fields
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def read_frame(s):
    """One size-prefixed response from socket `s` (without its size)."""
    import struct

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


def fetch_error(port, topic, partition, offset):
    """A raw Fetch v4 of one partition: (error code, high watermark, record bytes)."""
    t = topic.encode()
    body = struct.pack(">iiiib", -1, 100, 1, 1 << 20, 0)
    body += struct.pack(">ih", 1, len(t)) + t + struct.pack(">iiqi", 1, partition, offset, 1 << 20)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(frame(1, 4, 7, body))
        resp = read_frame(s)
    (corr, _, _), pos = struct.unpack_from(">iii", resp), 12
    assert corr == 7
    (name_len,) = struct.unpack_from(">h", resp, pos)
    pos += 2 + name_len + 4  # topic name, partition count
    _, err, hwm = struct.unpack_from(">ihq", resp, pos)
    pos += 4 + 2 + 8 + 8  # partition, error, high watermark, last stable offset
    (aborted,) = struct.unpack_from(">i", resp, pos)
    pos += 4 + max(aborted, 0) * 16
    (size,) = struct.unpack_from(">i", resp, pos)
    return err, hwm, resp[pos + 4:pos + 4 + max(size, 0)]
