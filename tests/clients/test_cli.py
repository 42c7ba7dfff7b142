"""End-to-end tests of the `vltava` CLI against a running Vltava, each cross-checked with an
independent client (confluent-kafka / librdkafka, kcat)."""
import json
import os
import random
import signal
import subprocess
import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource

from conftest import BIN, free_port, run, wait_until
from util import watermarks

pytestmark = pytest.mark.timeout(180)


def cli(b, *args, input_bytes=None, check=True, timeout_s=60, env=None):
    """Runs `vltava ARGS --bootstrap <broker>`; returns the CompletedProcess."""
    cmd = [BIN, *args]
    if b is not None:
        cmd += ["--bootstrap", b.bootstrap]
    r = subprocess.run(cmd, capture_output=True, timeout=timeout_s, input=input_bytes, env=env)
    if check:
        assert r.returncode == 0, f"{cmd} failed ({r.returncode}):\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    return r


def cli_json(b, *args):
    return json.loads(cli(b, *args, "--output", "json").stdout)


def fails(b, *args, expect, env=None, input_bytes=None):
    """The command exits non-zero with one line on stderr that contains `expect`."""
    r = cli(b, *args, check=False, env=env, input_bytes=input_bytes)
    err = r.stderr.decode()
    assert r.returncode != 0, f"{args} succeeded:\n{r.stdout}"
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"{args}: expected a one-line reason, got:\n{err}"
    assert lines[0].startswith("error: "), err
    assert expect in lines[0], f"{args}: {lines[0]!r} does not mention {expect!r}"
    return lines[0]


def produce(bs, topic, records, **conf):
    """records: (partition or None, key, value, headers, timestamp or None)."""
    p = Producer({"bootstrap.servers": bs, "linger.ms": 5, **conf})
    for part, key, value, headers, ts in records:
        kw = {}
        if part is not None:
            kw["partition"] = part
        if ts is not None:
            kw["timestamp"] = ts
        p.produce(topic, key=key, value=value, headers=headers, **kw)
    assert p.flush(30) == 0


def group_consume(bs, group, topic, count, client_id="vltava-test", close=True, extra=None):
    """A confluent-kafka group member that reads `count` records and commits them synchronously.
    Returns (consumer or None, records)."""
    c = Consumer({
        "bootstrap.servers": bs,
        "group.id": group,
        "client.id": client_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        **(extra or {}),
    })
    c.subscribe([topic])
    got = []
    deadline = time.monotonic() + 60
    while len(got) < count and time.monotonic() < deadline:
        for m in c.consume(count - len(got), 0.5):
            if m.error():
                raise AssertionError(m.error())
            got.append(m)
    assert len(got) == count, f"read {len(got)} of {count}"
    c.commit(asynchronous=False)
    if close:
        c.close()
        return None, got
    return c, got


def committed(bs, group, topic, partitions):
    c = Consumer({"bootstrap.servers": bs, "group.id": group, "enable.auto.commit": False})
    try:
        return {tp.partition: tp.offset for tp in
                c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)}
    finally:
        c.close()


def topic_config(bs, topic, name):
    admin = AdminClient({"bootstrap.servers": bs})
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    configs = admin.describe_configs([res])[res].result(10)
    return configs[name].value


def partition_count(bs, topic):
    # All topics: asking for one by name would let the broker auto-create it.
    md = AdminClient({"bootstrap.servers": bs}).list_topics(timeout=10)
    t = md.topics.get(topic)
    return None if t is None or t.error is not None else len(t.partitions)


def test_topics_lifecycle_cross_checked(broker_factory):
    b = broker_factory()
    bs = b.bootstrap
    out = cli(b, "topics", "create", "orders", "--partitions", "3", "--config", "retention.ms=3600000")
    assert b"created topic 'orders'" in out.stdout
    assert partition_count(bs, "orders") == 3
    assert topic_config(bs, "orders", "retention.ms") == "3600000"

    cli(b, "topics", "alter-config", "orders", "--set", "retention.ms=7200000", "--set", "segment.ms=600000")
    assert topic_config(bs, "orders", "retention.ms") == "7200000"
    assert topic_config(bs, "orders", "segment.ms") == "600000"
    cli(b, "topics", "alter-config", "orders", "--delete", "segment.ms")
    assert topic_config(bs, "orders", "segment.ms") == "604800000"

    cli(b, "topics", "add-partitions", "orders", "--partitions", "5")
    assert partition_count(bs, "orders") == 5

    produce(bs, "orders", [(i % 5, b"k", b"v%d" % i, None, None) for i in range(23)])
    listed = {t["name"]: t for t in cli_json(b, "topics", "list")}
    assert listed["orders"]["partitions"] == 5 and listed["orders"]["records"] == 23

    [d] = cli_json(b, "topics", "describe", "orders")
    assert d["records"] == 23 and len(d["partitions"]) == 5
    wms = watermarks(bs, "orders", 5)
    for p in d["partitions"]:
        assert (p["earliest_offset"], p["latest_offset"]) == wms[p["partition"]]
        assert p["leader"] == 1
    assert d["configs"]["retention.ms"] == {
        "value": "7200000", "source": "DYNAMIC_TOPIC_CONFIG", "read_only": False, "sensitive": False}
    table = cli(b, "topics", "describe", "orders").stdout.decode()
    assert "PartitionCount: 5" in table and "retention.ms=7200000" in table and "EARLIEST" in table

    # Idempotent forms succeed; the plain forms fail with a reason.
    cli(b, "topics", "create", "orders", "--if-not-exists")
    fails(b, "topics", "create", "orders", expect="topic 'orders' already exists")
    cli(b, "topics", "create", "checked", "--validate-only")
    assert partition_count(bs, "checked") is None

    cli(b, "topics", "delete", "orders")
    wait_until(lambda: partition_count(bs, "orders") is None, 10, what="topic deleted")
    cli(b, "topics", "delete", "orders", "--if-exists")
    fails(b, "topics", "delete", "orders", expect="topic 'orders' does not exist")


def random_lines(n, seed, forbidden=(10, 13)):
    rnd = random.Random(seed)
    alphabet = [c for c in range(256) if c not in forbidden]
    return [bytes(rnd.choice(alphabet) for _ in range(rnd.randint(1, 120))) for _ in range(n)]


def test_produce_is_read_byte_exact_by_kcat(broker_factory):
    b = broker_factory()
    bs = b.bootstrap
    for codec in ("none", "gzip", "snappy", "lz4", "zstd"):
        topic = f"cli-to-kcat-{codec}"
        cli(b, "topics", "create", topic, "--partitions", "1")
        keys = random_lines(150, seed=codec, forbidden=(10, 13, ord(":")))
        values = random_lines(150, seed=codec + "v")
        data = b"".join(k + b":" + v + b"\n" for k, v in zip(keys, values))
        r = cli(b, "produce", topic, "--key-separator", ":", "--header", "src=cli", "--header", "n=1",
                "--compression", codec, input_bytes=data)
        assert b"150 records" in r.stderr
        out = run(["kcat", "-C", "-b", bs, "-t", topic, "-o", "beginning", "-e", "-q",
                   "-f", "%k:%s\n"]).stdout
        assert out == data, f"{codec}: kcat read different bytes"
        hdrs = run(["kcat", "-C", "-b", bs, "-t", topic, "-o", "beginning", "-e", "-q", "-c", "1",
                    "-f", "%h\n"]).stdout
        assert hdrs == b"src=cli,n=1\n"


def test_kcat_records_are_read_byte_exact_by_cli(broker_factory):
    b = broker_factory()
    bs = b.bootstrap
    topic = "kcat-to-cli"
    cli(b, "topics", "create", topic, "--partitions", "1")
    keys = random_lines(200, seed="k", forbidden=(10, 13, ord(":")))
    values = random_lines(200, seed="v")
    data = b"".join(k + b":" + v + b"\n" for k, v in zip(keys, values))
    run(["kcat", "-P", "-b", bs, "-t", topic, "-K", ":", "-z", "lz4"], input_bytes=data)
    out = cli(b, "consume", topic, "--format", "{key}:{value}").stdout
    assert out == data
    # --output json keeps non-UTF-8 bytes exact through base64.
    import base64
    lines = cli(b, "consume", topic, "-o", "json").stdout.decode().splitlines()
    assert len(lines) == 200
    for line, k, v in zip(lines, keys, values):
        rec = json.loads(line)
        got_v = rec["value"].encode() if rec["value"] is not None else base64.b64decode(rec["value_base64"])
        got_k = rec["key"].encode() if rec["key"] is not None else base64.b64decode(rec["key_base64"])
        assert (got_k, got_v) == (k, v)


def test_consume_positions_formats_and_follow(broker_factory):
    b = broker_factory()
    bs = b.bootstrap
    topic = "positions"
    cli(b, "topics", "create", topic, "--partitions", "2")
    base_ts = 1_700_000_000_000
    produce(bs, topic, [(0, b"k%d" % i, b"v%d" % i, [("h", b"x%d" % i)], base_ts + i * 1000) for i in range(20)])

    def values(*args):
        return cli(b, "consume", topic, *args).stdout.decode().splitlines()

    assert values("--partition", "0", "--offset", "5", "-n", "3", "--format", "{offset}") == ["5", "6", "7"]
    assert values("--partition", "0", "--offset", "-2", "--format", "{offset}") == ["18", "19"]
    assert values("--partition", "0", "--from-time", str(base_ts + 10_000), "-n", "1",
                  "--format", "{offset} {key} {headers} {timestamp}") == [f"10 k10 h=x10 {base_ts + 10_000}"]
    assert values("--partition", "0", "--from-time", "2023-11-14T22:13:30Z", "-n", "1",
                  "--format", "{offset}") == ["10"]
    assert values("--from-end") == []
    assert len(values()) == 20
    rec = json.loads(values("-o", "json", "-n", "1")[0])
    assert rec == {"topic": topic, "partition": 0, "offset": 0, "timestamp": base_ts, "key": "k0",
                   "value": "v0", "headers": [{"key": "h", "value": "x0"}]}

    # With a group: commits what it printed, and the next run carries on from there.
    assert len(values("--group", "cg", "-n", "4")) == 4
    assert sum(o for o in committed(bs, "cg", topic, 2).values() if o >= 0) == 4
    assert len(values("--group", "cg")) == 16
    assert committed(bs, "cg", topic, 2)[0] == 20

    # Follow mode: a record produced after the start is printed; SIGTERM ends it cleanly.
    p = subprocess.Popen([BIN, "consume", topic, "--partition", "1", "--follow", "--bootstrap", bs],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(iter(p.stdout.readline, b"")), daemon=True)
    reader.start()
    try:
        produce(bs, topic, [(1, None, b"first", None, None)])
        wait_until(lambda: b"first\n" in lines, 20, what="followed record")
        produce(bs, topic, [(1, None, b"second", None, None)])
        wait_until(lambda: b"second\n" in lines, 20, what="second followed record")
        p.send_signal(signal.SIGTERM)
        assert p.wait(20) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)


def test_group_lag_matches_confluent(broker_factory):
    b = broker_factory()
    bs = b.bootstrap
    topic = "lagged"
    cli(b, "topics", "create", topic, "--partitions", "3")
    produce(bs, topic, [(None, b"key-%d" % i, b"value", None, None) for i in range(300)])
    consumer, _ = group_consume(bs, "lag-group", topic, 100, client_id="lag-client", close=False)
    try:
        wms = watermarks(bs, topic, 3)
        commits = committed(bs, "lag-group", topic, 3)
        expected_lag = {p: wms[p][1] - commits[p] for p in range(3) if commits[p] >= 0}
        [d] = cli_json(b, "groups", "describe", "lag-group")
        assert d["state"] == "Stable"
        assert [m["client_id"] for m in d["members"]] == ["lag-client"]
        rows = {r["partition"]: r for r in d["partitions"]}
        assert set(rows) == {0, 1, 2}
        for p in range(3):
            assert rows[p]["log_end_offset"] == wms[p][1]
            assert rows[p]["client_id"] == "lag-client"
            if p in expected_lag:
                assert rows[p]["current_offset"] == commits[p]
                assert rows[p]["lag"] == expected_lag[p]
        assert d["total_lag"] == sum(expected_lag.values())
        table = cli(b, "groups", "describe", "lag-group").stdout.decode()
        assert f"total lag {sum(expected_lag.values())}" in table and "LOG-END-OFFSET" in table
        listed = {g["group"]: g for g in cli_json(b, "groups", "list")}
        assert listed["lag-group"]["state"] == "Stable"
        fails(b, "groups", "delete", "lag-group", expect="still has members")
    finally:
        consumer.close()
    [d] = cli_json(b, "groups", "describe", "lag-group")
    assert d["state"] == "Empty" and d["members"] == []
    assert d["total_lag"] == sum(expected_lag.values())
    cli(b, "groups", "delete", "lag-group")
    fails(b, "groups", "describe", "lag-group", expect="group 'lag-group' does not exist")


def test_group_describe_kip848_member(broker_factory):
    b = broker_factory()
    bs = b.bootstrap
    topic = "lag848"
    cli(b, "topics", "create", topic, "--partitions", "2")
    produce(bs, topic, [(i % 2, None, b"v", None, None) for i in range(40)])
    consumer, _ = group_consume(bs, "g848", topic, 10, client_id="new-protocol", close=False,
                                extra={"group.protocol": "consumer"})
    try:
        def described():
            [d] = cli_json(b, "groups", "describe", "g848")
            owned = [r for r in d["partitions"] if r["client_id"] == "new-protocol"]
            return d if len(owned) == 2 else None
        d = wait_until(described, 20, what="KIP-848 member owning both partitions")
        assert d["type"] == "consumer"
        commits = committed(bs, "g848", topic, 2)
        wms = watermarks(bs, topic, 2)
        assert d["total_lag"] == sum(wms[p][1] - commits[p] for p in range(2) if commits[p] >= 0)
    finally:
        consumer.close()


def test_reset_offsets_is_observed_by_a_consumer(broker_factory):
    b = broker_factory()
    bs = b.bootstrap
    topic = "resettable"
    # The "new" records are stamped 2027-01-15: beyond Kafka 4's default
    # message.timestamp.after.max.ms (1 h ahead), so the topic allows any future timestamp.
    cli(b, "topics", "create", topic, "--partitions", "2",
        "--config", "message.timestamp.after.max.ms=9223372036854775807")
    produce(bs, topic, [(i % 2, None, b"old-%d" % i, None, 1_700_000_000_000) for i in range(60)])
    produce(bs, topic, [(i % 2, None, b"new-%d" % i, None, 1_800_000_000_000) for i in range(40)])
    group_consume(bs, "rg", topic, 100)
    assert committed(bs, "rg", topic, 2) == {0: 50, 1: 50}

    # Dry run by default: shows the plan, changes nothing.
    r = cli(b, "groups", "reset-offsets", "rg", "--topic", topic, "--to-earliest")
    assert b"dry run" in r.stderr and b"NEW-OFFSET" in r.stdout
    assert committed(bs, "rg", topic, 2) == {0: 50, 1: 50}

    plan = cli_json(b, "groups", "reset-offsets", "rg", "--topic", topic, "--to-earliest", "--execute")
    assert plan["executed"] and {p["new_offset"] for p in plan["partitions"]} == {0}
    assert committed(bs, "rg", topic, 2) == {0: 0, 1: 0}
    _, got = group_consume(bs, "rg", topic, 100)
    assert sorted(m.value() for m in got)[:1] == [b"new-0"] and len(got) == 100

    cli(b, "groups", "reset-offsets", "rg", "--all-topics", "--shift-by", "-10", "--execute")
    assert committed(bs, "rg", topic, 2) == {0: 40, 1: 40}
    _, got = group_consume(bs, "rg", topic, 20)
    assert all(m.value().startswith(b"new-") for m in got)

    cli(b, "groups", "reset-offsets", "rg", "--topic", f"{topic}:1", "--to-datetime",
        "2027-01-15T08:00:00Z", "--execute")
    assert committed(bs, "rg", topic, 2) == {0: 50, 1: 30}
    _, got = group_consume(bs, "rg", topic, 20)
    assert {m.partition() for m in got} == {1}

    cli(b, "groups", "reset-offsets", "rg", "--topic", f"{topic}:0", "--to-offset", "7", "--execute")
    assert committed(bs, "rg", topic, 2)[0] == 7
    # Offsets beyond the log are moved to its end, as Kafka's tool does.
    cli(b, "groups", "reset-offsets", "rg", "--topic", f"{topic}:0", "--to-offset", "9999", "--execute")
    assert committed(bs, "rg", topic, 2)[0] == 50

    # A group with live members is refused.
    c = Consumer({"bootstrap.servers": bs, "group.id": "rg", "enable.auto.commit": False})
    c.subscribe([topic])
    try:
        wait_until(lambda: (c.poll(0.2), c.assignment())[1], 20, what="assignment")
        fails(b, "groups", "reset-offsets", "rg", "--topic", topic, "--to-earliest", "--execute",
              expect="active member")
    finally:
        c.close()


def test_offsets_and_delete_records(broker_factory):
    b = broker_factory()
    bs = b.bootstrap
    topic = "counted"
    cli(b, "topics", "create", topic, "--partitions", "3")
    base_ts = 1_750_000_000_000
    produce(bs, topic, [(p, None, b"x", None, base_ts + i) for p in range(3) for i in range(10)])
    rows = cli_json(b, "offsets", topic)
    assert [(r["partition"], r["earliest"], r["latest"], r["records"]) for r in rows] == [
        (p, 0, 10, 10) for p in range(3)]
    at = cli_json(b, "offsets", topic, "--time", str(base_ts + 4))
    c = Consumer({"bootstrap.servers": bs, "group.id": "ts-check"})
    try:
        expected = c.offsets_for_times([TopicPartition(topic, p, base_ts + 4) for p in range(3)], timeout=10)
    finally:
        c.close()
    assert [r["offset"] for r in at] == [tp.offset for tp in expected] == [4, 4, 4]

    out = cli_json(b, "delete-records", topic, "--before", "4", "--partition", "1")
    assert out == [{"topic": topic, "partition": 1, "low_watermark": 4}]
    assert watermarks(bs, topic, 3) == [(0, 10), (4, 10), (0, 10)]
    cli(b, "delete-records", topic, "--before", "end")
    assert watermarks(bs, topic, 3) == [(10, 10)] * 3
    assert [r["records"] for r in cli_json(b, "offsets", topic)] == [0, 0, 0]


def test_cluster_help_and_completions(broker_factory):
    b = broker_factory()
    info = cli_json(b, "cluster")
    assert info["controller_id"] == 1
    assert [(x["id"], x["host"], x["port"]) for x in info["brokers"]] == [(1, "127.0.0.1", b.port)]
    names = {a["name"] for a in info["apis"]}
    assert {"Produce", "Fetch", "Metadata", "JoinGroup"} <= names
    table = cli(b, "cluster", "--apis").stdout.decode()
    assert "BROKER" in table and "Produce" in table

    for shell in ("bash", "zsh", "fish"):
        out = cli(None, "completions", shell).stdout.decode()
        assert "vltava" in out and "reset-offsets" in out
    subcommands = [["topics", "list"], ["topics", "describe"], ["topics", "create"], ["topics", "alter-config"],
                   ["topics", "add-partitions"], ["topics", "delete"], ["produce"], ["consume"],
                   ["groups", "list"], ["groups", "describe"], ["groups", "reset-offsets"], ["groups", "delete"],
                   ["offsets"], ["delete-records"], ["cluster"], ["serve"]]
    for sub in subcommands:
        out = cli(None, *sub, "--help").stdout.decode()
        assert "Example" in out, f"vltava {' '.join(sub)} --help has no examples"


def test_cli_errors_are_one_line(broker_factory):
    b = broker_factory("--no-auto-create-topics")
    port = free_port()
    down = type("Down", (), {"bootstrap": f"127.0.0.1:{port}"})()
    for args in (["topics", "list"], ["produce", "t", "--value", "x"], ["consume", "t"],
                 ["groups", "list"], ["cluster"]):
        fails(down, *args, expect=f"cannot reach 127.0.0.1:{port}: connection refused")
    # VLTAVA_BOOTSTRAP is the default bootstrap.
    env = dict(os.environ, VLTAVA_BOOTSTRAP=f"127.0.0.1:{port}")
    fails(None, "topics", "list", env=env, expect=f"cannot reach 127.0.0.1:{port}")
    env = dict(os.environ, VLTAVA_BOOTSTRAP=b.bootstrap)
    assert cli(None, "topics", "list", env=env).returncode == 0

    missing = "topic 'missing' does not exist"
    fails(b, "produce", "missing", expect=missing, input_bytes=b"x\n")
    fails(b, "consume", "missing", expect=missing)
    fails(b, "topics", "describe", "missing", expect=missing)
    fails(b, "topics", "alter-config", "missing", "--set", "retention.ms=1", expect=missing)
    fails(b, "topics", "add-partitions", "missing", "--partitions", "3", expect=missing)
    fails(b, "offsets", "missing", expect=missing)
    fails(b, "delete-records", "missing", "--before", "1", expect=missing)
    fails(b, "groups", "describe", "nogroup", expect="group 'nogroup' does not exist")
    fails(b, "groups", "delete", "nogroup", expect="group 'nogroup' does not exist")
    fails(b, "groups", "reset-offsets", "nogroup", "--topic", "missing", "--to-earliest", expect=missing)

    cli(b, "topics", "create", "present", "--partitions", "2")
    fails(b, "topics", "create", "bad", "--config", "no.such.config=1", expect="no.such.config")
    fails(b, "topics", "create", "bad", "--config", "retention.ms=abc", expect="retention.ms")
    fails(b, "topics", "create", "bad", "--partitions", "0", expect="--partitions")
    fails(b, "topics", "create", "bad/name", expect="bad/name")
    fails(b, "topics", "alter-config", "present", "--set", "no.such.config=1", expect="no.such.config")
    fails(b, "topics", "alter-config", "present", expect="nothing to change")
    fails(b, "topics", "add-partitions", "present", "--partitions", "1", expect="has 2 partitions")
    fails(b, "produce", "present", "--partition", "5", "--value", "x", expect="has no partition 5")
    fails(b, "consume", "present", "--partition", "5", expect="has no partition 5")
    fails(b, "consume", "present", "--from-time", "last tuesday", expect="is not a time")
    fails(b, "consume", "present", "--format", "{nope}", expect="unknown placeholder")
    fails(b, "offsets", "present", "--time", "soon", expect="is not a time")
    fails(b, "delete-records", "present", "--before", "-3", expect="--before")
    fails(b, "delete-records", "present", "--before", "1", "--partition", "9", expect="has no partition 9")
    fails(b, "groups", "reset-offsets", "g", "--all-topics", "--to-earliest", expect="no committed offsets")
    fails(b, "produce", "present", "--file", "/nonexistent/input.txt", expect="cannot open")
    # Nothing above changed the topic.
    assert watermarks(b.bootstrap, "present", 2) == [(0, 0), (0, 0)]
    # Usage errors are clap's (exit 2).
    assert cli(b, "topics", "frobnicate", check=False).returncode == 2


def test_log_is_plain_text_off_a_terminal_and_json_on_request(broker_factory):
    """Colour codes only on a terminal (the broker's stderr here is a file); --log-format json
    writes one JSON object per log line with the level, the message and the fields."""
    b = broker_factory()
    AdminClient({"bootstrap.servers": b.bootstrap}).list_topics(timeout=10)
    b.terminate()
    text = b.log()
    assert "INFO" in text and "\x1b[" not in text, text[:500]
    j = broker_factory("--log-format", "json")
    AdminClient({"bootstrap.servers": j.bootstrap}).list_topics(timeout=10)
    j.terminate()
    # The start-up banner goes to stdout (for people); the log is stderr (the same file here).
    lines = [line for line in j.log().splitlines() if line.startswith("{")]
    assert len(lines) >= 3, j.log()
    records = [json.loads(line) for line in lines]
    assert all("level" in r and "fields" in r and "timestamp" in r for r in records), records[:3]
    assert any(r["level"] == "INFO" and "message" in r["fields"] for r in records), records[:3]
