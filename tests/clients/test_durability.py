"""Durability and idempotence with real clients: SIGKILL mid-stream, a corrupted log tail, and an
idempotent producer whose requests are retried because a proxy cuts connections."""
import glob
import os
import re
import socket
import struct
import threading
import time

import pytest
import requests
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import free_port, wait_until
from util import check_order_and_count, fetch_error, frame, read_all, read_frame, value_for

pytestmark = pytest.mark.timeout(180)


def create(bs, topic, partitions, config=None):
    admin = AdminClient({"bootstrap.servers": bs})
    for f in admin.create_topics([NewTopic(topic, partitions, 1, config=config or {})]).values():
        f.result(10)


def test_acknowledged_records_survive_sigkill(broker_factory):
    b = broker_factory()
    bs, topic, partitions = b.bootstrap, "durable", 3
    create(bs, topic, partitions)
    acked = {}
    failed = []

    def on_delivery(err, msg):
        if err is None:
            acked[msg.value().decode()] = (msg.partition(), msg.offset())
        else:
            failed.append(err)

    p = Producer({"bootstrap.servers": bs, "acks": "all", "linger.ms": 2, "partitioner": "murmur2_random",
                  "message.timeout.ms": 3000, "retries": 0})
    sent = 0
    deadline = time.monotonic() + 30
    # Keep producing while the broker is killed, so that some requests are in flight.
    while time.monotonic() < deadline and len(acked) < 5000:
        key = f"k{sent % 20}"
        try:
            p.produce(topic, key=key, value=value_for(key, sent, "kill"), on_delivery=on_delivery)
            sent += 1
        except BufferError:
            p.poll(0.01)
        if sent % 100 == 0:
            p.poll(0)
    assert len(acked) >= 5000
    for _ in range(500):
        key = f"k{sent % 20}"
        p.produce(topic, key=key, value=value_for(key, sent, "kill"), on_delivery=on_delivery)
        sent += 1
    b.kill9()
    p.flush(10)
    b.start()
    records = read_all(bs, topic, partitions, len(acked), timeout_s=30)
    seen = {}
    for part, off, _, value, _ in records:
        assert value not in seen, f"{value} appears twice"
        seen[value] = (part, off)
    missing = [v for v in acked if v not in seen]
    assert not missing, f"{len(missing)} acknowledged records lost, e.g. {missing[:3]}"
    moved = [v for v in acked if seen[v] != acked[v]]
    assert not moved, f"acknowledged records at different offsets after restart: {moved[:3]}"
    check_order_and_count(records, len(records))


def trusted_at_last_start(broker):
    """How many active segments the broker's last start opened from their index files."""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", broker.log())
    counts = re.findall(r"active_segments_opened_from_their_indexes=(\d+)", plain)
    assert counts, plain[-2000:]
    return int(counts[-1])


# A segment under 1 MiB is always scanned at start-up; a larger one, after a clean shutdown, is
# opened from its index files and only its last batch is checked: both find the torn tail.
@pytest.mark.parametrize("pad_bytes", [0, 30_000], ids=["small-segment", "large-segment"])
def test_corrupt_tail_is_truncated_at_startup(broker_factory, pad_bytes):
    b = broker_factory()
    bs, topic = b.bootstrap, "torn"
    create(bs, topic, 1)
    tag = "torn" + "x" * pad_bytes
    p = Producer({"bootstrap.servers": bs, "linger.ms": 0, "batch.num.messages": 1})
    for i in range(50):
        p.produce(topic, key="k", value=value_for("k", i, tag))
        p.flush(10)  # one batch per record
    assert b.terminate() == 0
    seg = sorted(glob.glob(os.path.join(b.data_dir, f"{topic}-0", "*.log")))[-1]
    size = os.path.getsize(seg)
    with open(seg, "r+b") as f:
        f.seek(size - 5)
        byte = f.read(1)
        f.seek(size - 5)
        f.write(bytes([byte[0] ^ 0xFF]))
    b.start()
    assert "truncat" in b.log()
    records = read_all(bs, topic, 1, 49, timeout_s=20)
    check_order_and_count(records, 49)
    assert [int(r[3].split("|")[1]) for r in sorted(records, key=lambda r: r[1])] == list(range(49))
    # The log goes on at the truncation point.
    p = Producer({"bootstrap.servers": bs})
    offsets = []
    p.produce(topic, key="k", value=value_for("k", 100, "after"), on_delivery=lambda e, m: offsets.append(m.offset()))
    p.flush(10)
    assert offsets == [49]


def test_a_clean_restart_opens_a_large_active_segment_from_its_indexes(broker_factory):
    b = broker_factory()
    bs, topic = b.bootstrap, "big-active"
    create(bs, topic, 1)
    tag = "big" + "x" * 30_000
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)

    # One idempotent producer, kept across the restart: its sequence numbers go on from the
    # producer state the broker saved at the shutdown.
    p = Producer({"bootstrap.servers": bs, "enable.idempotence": True, "linger.ms": 0,
                  "batch.num.messages": 1})
    for i in range(50):
        p.produce(topic, key="k", value=value_for("k", i, tag), on_delivery=on_delivery)
        p.flush(10)
    assert b.terminate() == 0
    b.start()
    assert trusted_at_last_start(b) == 1
    for i in range(50, 60):
        p.produce(topic, key="k", value=value_for("k", i, tag), on_delivery=on_delivery)
    p.flush(30)
    assert not errors, errors
    records = read_all(bs, topic, 1, 60, timeout_s=20)
    check_order_and_count(records, 60)
    assert sorted(r[1] for r in records) == list(range(60))
    assert "truncat" not in b.log()
    # Killed now, the next start scans the segment again (the marker is gone) and finds the same.
    b.kill9()
    b.start()
    assert trusted_at_last_start(b) == 0
    check_order_and_count(read_all(bs, topic, 1, 60, timeout_s=20), 60)


class DroppingProxy:
    """Forwards client<->broker bytes; after forwarding a Produce request it closes the
    connection (a bounded number of times) before the response reaches the client, so the client
    must retry a request the broker has already appended."""

    def __init__(self, broker_port, drops):
        self.port = free_port()
        self.broker_port = broker_port
        self.drops_left = drops
        self.dropped = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.thread = threading.Thread(target=self.accept, daemon=True)
        self.thread.start()

    def accept(self):
        while not self.stop.is_set():
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            try:
                b = socket.create_connection(("127.0.0.1", self.broker_port))
            except OSError:
                c.close()
                continue
            threading.Thread(target=self.client_to_broker, args=(c, b), daemon=True).start()
            threading.Thread(target=self.broker_to_client, args=(b, c), daemon=True).start()

    def close_both(self, a, b):
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def client_to_broker(self, c, b):
        buf = b""
        try:
            while True:
                data = c.recv(65536)
                if not data:
                    break
                buf += data
                while len(buf) >= 4 and len(buf) >= 4 + int.from_bytes(buf[:4], "big"):
                    n = int.from_bytes(buf[:4], "big")
                    frame, buf = buf[:4 + n], buf[4 + n:]
                    b.sendall(frame)
                    api_key = int.from_bytes(frame[4:6], "big")
                    if api_key == 0:
                        with self.lock:
                            drop = self.drops_left > 0
                            if drop:
                                self.drops_left -= 1
                        if drop:
                            # Give the broker time to append before the client sees the cut;
                            # whether or not it did, the client must retry.
                            time.sleep(0.05)
                            with self.lock:
                                self.dropped += 1
                            self.close_both(c, b)
                            return
        except OSError:
            pass
        self.close_both(c, b)

    def broker_to_client(self, b, c):
        try:
            while True:
                data = b.recv(65536)
                if not data:
                    break
                c.sendall(data)
        except OSError:
            pass
        self.close_both(c, b)

    def close(self):
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


def test_idempotent_producer_retries_write_no_duplicates(broker_factory):
    b = broker_factory(start=False)
    proxy = DroppingProxy(b.port, drops=8)
    b.advertise = f"127.0.0.1:{proxy.port}"
    b.start()
    try:
        bs = f"127.0.0.1:{proxy.port}"
        topic, partitions, total = "idem", 3, 3000
        create(bs, topic, partitions)
        errors = []
        p = Producer({"bootstrap.servers": bs, "enable.idempotence": True, "linger.ms": 5,
                      "partitioner": "murmur2_random", "batch.num.messages": 100,
                      "retry.backoff.ms": 50, "message.timeout.ms": 60000})
        for i in range(total):
            key = f"k{i % 30}"
            p.produce(topic, key=key, value=value_for(key, i, "idem"),
                      on_delivery=lambda e, m: e and errors.append(e))
            if i % 100 == 0:
                p.poll(0)
                time.sleep(0.005)
        assert p.flush(60) == 0
        assert not errors, errors[:3]
        assert proxy.dropped >= 3, f"only {proxy.dropped} produce requests were cut"
        records = read_all(b.bootstrap, topic, partitions, total, timeout_s=30)
        check_order_and_count(records, total)
    finally:
        proxy.close()


def test_sigterm_exits_zero_and_keeps_everything(broker_factory):
    b = broker_factory()
    create(b.bootstrap, "term", 2)
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "1"})
    for i in range(1000):
        p.produce("term", key=f"k{i % 7}", value=value_for(f"k{i % 7}", i, "t"))
    assert p.flush(10) == 0
    assert b.terminate() == 0
    assert "stopped cleanly" in b.log()
    b.start()
    check_order_and_count(read_all(b.bootstrap, "term", 2, 1000), 1000)
    wait_until(lambda: "ready" in b.log(), 5, what="start-up line")


def test_sigterm_answers_long_polling_fetches_instead_of_waiting_them_out(broker_factory):
    """A consumer long-polling an idle topic (fetch.wait.max.ms 60 s) must not hold shutdown until
    its wait ends: the broker answers it at once and drains without hitting the drain deadline."""
    from confluent_kafka import Consumer
    b = broker_factory()
    create(b.bootstrap, "idle", 1)
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "idle-poller", "auto.offset.reset": "earliest",
                  "fetch.wait.max.ms": 60000, "socket.timeout.ms": 120000})
    try:
        c.assign([__import__("confluent_kafka").TopicPartition("idle", 0, 0)])
        # librdkafka keeps a fetch outstanding while it has an assigned partition; wait until the
        # broker has counted one.
        def fetching():
            c.poll(0.1)
            import requests
            text = requests.get(f"{b.http}/metrics", timeout=5).text
            return any(line.startswith('vltava_requests_total{api="Fetch"') and not line.endswith(" 0")
                       for line in text.splitlines())
        wait_until(fetching, 20, what="a Fetch request")
        assert b.terminate(timeout_s=30) == 0
    finally:
        c.close()
    log = b.log()
    assert "stopped cleanly" in log
    assert "connections still open after the drain period" not in log


def test_a_second_broker_on_the_same_data_dir_refuses_to_start(broker_factory):
    import subprocess
    first = broker_factory()
    second = broker_factory(start=False)
    second.data_dir, second.log_path = first.data_dir, first.log_path + ".second"
    r = subprocess.run(second.command(), capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "in use by another Vltava process" in r.stderr + r.stdout
    # The first broker is untouched and still serves.
    p = Producer({"bootstrap.servers": first.bootstrap})
    p.produce("still-here", value=b"x")
    assert p.flush(10) == 0


def test_sigterm_answers_joins_waiting_for_a_rebalance(broker_factory):
    """A JoinGroup waiting for a dead member's session to expire (45 s here) is answered at
    shutdown (COORDINATOR_NOT_AVAILABLE, which clients retry) instead of holding the drain."""
    import subprocess
    import sys
    import threading
    import requests
    from confluent_kafka import Consumer
    b = broker_factory()
    create(b.bootstrap, "rebal", 1)
    conf = {"bootstrap.servers": b.bootstrap, "group.id": "slow-rebalance", "session.timeout.ms": 45000,
            "heartbeat.interval.ms": 1000, "auto.offset.reset": "earliest"}
    member_a = subprocess.Popen([sys.executable, "-c", f"""
from confluent_kafka import Consumer
c = Consumer({conf!r})
c.subscribe(["rebal"])
while True:
    c.poll(0.2)
"""])
    try:
        def stable():
            r = requests.get(f"{b.http}/api/groups/slow-rebalance", timeout=5)
            return r.status_code == 200 and r.json()["state"] == "Stable" and len(r.json()["members"]) == 1
        wait_until(stable, 30, what="member A in the group")
        member_a.kill()
        member_a.wait(10)
        b_consumer = Consumer(conf)
        b_consumer.subscribe(["rebal"])
        stop = threading.Event()
        poller = threading.Thread(target=lambda: [b_consumer.poll(0.2) for _ in iter(stop.is_set, True)])
        poller.start()
        try:
            wait_until(lambda: requests.get(f"{b.http}/api/groups/slow-rebalance", timeout=5).json()["state"]
                       == "PreparingRebalance", 30, what="a join waiting for member A")
            assert b.terminate(timeout_s=30) == 0
        finally:
            stop.set()
            poller.join(30)
            b_consumer.close()
    finally:
        if member_a.poll() is None:
            member_a.kill()
    log = b.log()
    assert "stopped cleanly" in log
    assert "connections still open after the drain period" not in log


def test_clean_shutdown_listing_is_used_and_a_stale_one_is_ignored(broker_factory):
    """A clean shutdown records every partition's files in .clean-shutdown so the next start
    lists no directories; a listing that no longer matches the directory (or an empty marker from
    an older version) falls back to reading the directory, losing nothing."""
    import json as _json
    b = broker_factory()
    create(b.bootstrap, "listed", 2)
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all"})
    for i in range(400):
        p.produce("listed", key=f"k{i % 7}", value=value_for(f"k{i % 7}", i, "l"))
    assert p.flush(10) == 0
    marker = os.path.join(b.data_dir, ".clean-shutdown")
    assert b.terminate() == 0
    recorded = _json.load(open(marker))["partition_files"]
    assert any(f.endswith(".log") for f in recorded["listed-0"])
    b.start()
    check_order_and_count(read_all(b.bootstrap, "listed", 2, 400), 400)
    # A stale listing: a segment that does not exist.
    assert b.terminate() == 0
    recorded = _json.load(open(marker))
    recorded["partition_files"]["listed-0"].append("00000000000099999999.log")
    _json.dump(recorded, open(marker, "w"))
    b.start()
    check_order_and_count(read_all(b.bootstrap, "listed", 2, 400), 400)
    # An empty marker, as older versions wrote.
    assert b.terminate() == 0
    open(marker, "w").close()
    b.start()
    check_order_and_count(read_all(b.bootstrap, "listed", 2, 400), 400)


def test_a_foreign_directory_is_refused_and_left_untouched(broker_factory, tmp_path):
    """Issue 23.1: a non-empty directory Vltava did not create is never used, so nothing in it
    is deleted (a folder named like a partition, `project-2`, used to be removed)."""
    import subprocess
    foreign = tmp_path / "x"
    (foreign / "project-2").mkdir(parents=True)
    (foreign / "project-2" / "f").write_bytes(b"mine")
    b = broker_factory(start=False, data_dir=str(foreign))
    r = subprocess.run(b.command(), capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    out = r.stderr + r.stdout
    assert "is not a Vltava data directory" in out, out
    assert (foreign / "project-2" / "f").read_bytes() == b"mine"
    assert sorted(os.listdir(foreign)) == ["project-2"], "nothing was written into it"


def test_a_users_folder_inside_the_data_directory_survives_restarts(broker_factory):
    b = broker_factory()
    create(b.bootstrap, "orders", 1)
    assert b.terminate() == 0
    mine = os.path.join(b.data_dir, "project-2")
    os.mkdir(mine)
    with open(os.path.join(mine, "f"), "wb") as f:
        f.write(b"mine")
    b.start()
    assert b.terminate() == 0
    b.start()
    with open(os.path.join(mine, "f"), "rb") as f:
        assert f.read() == b"mine"
    assert "meta.properties" in os.listdir(b.data_dir)


@pytest.mark.parametrize("damage", ["removed", "torn", "both-removed"])
def test_lost_or_torn_topic_metadata_keeps_every_topic(broker_factory, damage):
    """Issue 23.1 and 23.6: a lost or torn meta.json neither stops start-up nor starts a new,
    empty cluster: the topics come back (from meta.json.prev, or rebuilt from the partitions'
    partition.metadata) with their records."""
    b = broker_factory()
    bs = b.bootstrap
    create(bs, "orders", 3)
    create(bs, "audit", 1)
    first_admin = AdminClient({"bootstrap.servers": bs})
    cluster = first_admin.describe_cluster().result(10).cluster_id
    p = Producer({"bootstrap.servers": bs})
    for i in range(30):
        p.produce("orders", key=f"k{i}", value=value_for(f"k{i}", i, "meta"))
    assert p.flush(10) == 0
    assert b.terminate() == 0
    meta = os.path.join(b.data_dir, "meta.json")
    if damage == "torn":
        with open(meta, "r+b") as f:
            f.truncate(os.path.getsize(meta) // 2)
    else:
        os.remove(meta)
        if damage == "both-removed":
            os.remove(os.path.join(b.data_dir, "meta.json.prev"))
    b.start()
    admin = AdminClient({"bootstrap.servers": bs})
    md = admin.list_topics(timeout=10)
    assert len(md.topics["orders"].partitions) == 3
    assert "audit" in md.topics
    records = read_all(bs, "orders", 3, 30, timeout_s=20)
    assert len(records) == 30
    assert admin.describe_cluster().result(10).cluster_id == cluster, "the same cluster, not a new one"


def batch_spans(path):
    """(position, size) of each record batch in a segment file."""
    spans, data = [], open(path, "rb").read()
    pos = 0
    while pos + 12 <= len(data):
        size = 12 + int.from_bytes(data[pos + 8:pos + 12], "big")
        spans.append((pos, size))
        pos += size
    return spans


def test_a_flipped_byte_mid_segment_keeps_the_batches_after_it(broker_factory):
    """Issue 23.4: one damaged batch in the middle of the active segment used to cut every
    acknowledged record after it; now only the damaged batch is lost, saved beside the segment,
    and /status says so."""
    b = broker_factory()
    bs, topic = b.bootstrap, "flipped"
    create(bs, topic, 1)
    p = Producer({"bootstrap.servers": bs, "linger.ms": 0, "batch.num.messages": 1})
    for i in range(100):
        p.produce(topic, key="k", value=value_for("k", i, "flip"))
        p.flush(10)  # one batch per record
    b.kill9()
    seg = sorted(glob.glob(os.path.join(b.data_dir, f"{topic}-0", "*.log")))[-1]
    spans = batch_spans(seg)
    assert len(spans) == 100
    pos, size = spans[50]
    with open(seg, "r+b") as f:
        f.seek(pos + size - 3)
        byte = f.read(1)
        f.seek(pos + size - 3)
        f.write(bytes([byte[0] ^ 0xFF]))
    b.start()
    records = read_all(bs, topic, 1, 99, timeout_s=20)
    seqs = sorted(int(r[3].split("|")[1]) for r in records)
    assert seqs == [i for i in range(100) if i != 50]
    offsets = sorted(r[1] for r in records)
    assert offsets == [i for i in range(100) if i != 50], "offsets never change; 50 is a gap"
    corrupt = glob.glob(os.path.join(b.data_dir, f"{topic}-0", "*.corrupt"))
    assert len(corrupt) == 1 and os.path.getsize(corrupt[0]) == size
    status = requests.get(f"{b.http}/status", timeout=5).json()
    part = next(t for t in status["topics"] if t["name"] == topic)["partition_details"][0]
    assert part["damaged_ranges_recovered"][0]["bytes"] == size
    # The log goes on after the last offset; a second restart finds nothing more to cut.
    out = []
    p = Producer({"bootstrap.servers": bs})
    p.produce(topic, key="k", value=value_for("k", 100, "after"), on_delivery=lambda e, m: out.append(m.offset()))
    p.flush(10)
    assert out == [100]
    assert b.terminate() == 0
    b.start()
    assert len(read_all(bs, topic, 1, 100, timeout_s=20)) == 100


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_partitions_do_not_take_every_descriptor(broker_factory):
    """Segment files are opened through a bounded cache: 1,200 partitions under a 1,024
    open-files limit still leave room for clients, and every record reads back. Start-up also
    raises the soft limit (256 here) to the hard one."""
    b = broker_factory(start=False)
    base = b.command
    b.command = lambda: ["prlimit", "--nofile=256:1024", "--"] + base()
    b.start()
    limits = open(f"/proc/{b.proc.pid}/limits").read()
    soft = int(re.search(r"Max open files\s+(\d+)", limits).group(1))
    assert soft == 1024, limits
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    for f in admin.create_topics([NewTopic("wide", 1200, 1)], request_timeout=60,
                                 operation_timeout=60).values():
        f.result(60)
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 5})
    for i in range(1200):
        p.produce("wide", value=f"v{i}".encode(), partition=i)
    assert p.flush(60) == 0
    # Half the limit for segment files (512), the rest for sockets and the process itself.
    assert open_fds(b.proc.pid) < 512 + 100, open_fds(b.proc.pid)
    socks = []
    try:
        for _ in range(300):
            s = socket.create_connection(("127.0.0.1", b.port), timeout=10)
            socks.append(s)
        for i, s in enumerate(socks):
            s.sendall(frame(18, 0, i))
            assert read_frame(s)[:4] == i.to_bytes(4, "big")
    finally:
        for s in socks:
            s.close()
    got = read_all(b.bootstrap, "wide", 1200, 1200, timeout_s=60)
    assert sorted(v for _, _, _, v, _ in got) == sorted(f"v{i}" for i in range(1200))
    assert all(v == f"v{part}" for part, _, _, v, _ in got)
    assert open_fds(b.proc.pid) < 512 + 100, open_fds(b.proc.pid)
    assert "Too many open files" not in b.log()


def batch_positions(path):
    """(position, base offset, size) of every batch in a segment file."""
    data = open(path, "rb").read()
    out, pos = [], 0
    while pos + 12 <= len(data):
        base, length = struct.unpack_from(">qi", data, pos)
        out.append((pos, base, 12 + length))
        pos += 12 + length
    return out


def test_a_corrupt_batch_in_a_sealed_segment_is_never_served(broker_factory):
    """Sealed segments are not read at start-up; a read checks their batches' CRCs before
    serving them. A byte flipped inside a stored batch gets CORRUPT_MESSAGE for that batch,
    the batches before it are served, the rest of the log too, and /metrics and /status
    count it. The data directory stays online."""
    b = broker_factory()
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    for f in admin.create_topics([NewTopic("sealed", 1, 1, config={"segment.bytes": "20000"})]).values():
        f.result(10)
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 0})
    for i in range(120):
        p.produce("sealed", value=(f"r{i}-".encode() + b"x" * 1000), partition=0)
        p.flush(10)
    b.terminate()
    segs = sorted(glob.glob(os.path.join(b.data_dir, "sealed-0", "*.log")))
    assert len(segs) >= 3, segs
    batches = batch_positions(segs[0])
    bad_pos, bad_offset, bad_size = batches[5]
    with open(segs[0], "r+b") as f:
        f.seek(bad_pos + bad_size - 100)  # inside the records, past the header
        byte = f.read(1)
        f.seek(bad_pos + bad_size - 100)
        f.write(bytes([byte[0] ^ 0xFF]))
    b.start()
    err, _, recs = fetch_error(b.port, "sealed", 0, bad_offset)
    assert err == 2 and not recs, (err, len(recs))  # CORRUPT_MESSAGE
    err, _, recs = fetch_error(b.port, "sealed", 0, 0)
    assert err == 0 and len(recs) == bad_pos, (err, len(recs), bad_pos)
    next_segment = int(os.path.basename(segs[1]).split(".")[0])
    err, _, recs = fetch_error(b.port, "sealed", 0, next_segment)
    assert err == 0 and recs, err
    assert "vltava_corrupt_batches_found 1" in requests.get(f"{b.http}/metrics", timeout=5).text
    storage = requests.get(f"{b.http}/status", timeout=5).json()["storage"]
    assert storage["corrupt_batches_found"] == 1 and not storage["offline"], storage
    assert "corrupt batch in a sealed segment" in b.log()
    assert requests.get(f"{b.http}/health/ready", timeout=5).status_code == 200
