"""Apache Kafka's own command-line tools (Kafka 4.4's jars, run by scripts/kafka as a user runs
bin/kafka-*.sh) against Vltava: their output parsed and their exit codes checked, each cross-checked
with an independent client (confluent-kafka / librdkafka) or the `vltava` CLI."""
import json
import os
import re
import subprocess
import threading
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from conftest import BIN, REPO, wait_until
from util import watermarks

pytestmark = pytest.mark.timeout(300)

KAFKA = os.path.join(REPO, "scripts", "kafka")


def kafka(tool, *args, check=True, timeout_s=120, input_text=None):
    """Runs Kafka's `tool` (e.g. "topics") with `args`; returns the CompletedProcess (text)."""
    r = subprocess.run([KAFKA, tool, *args], capture_output=True, text=True, timeout=timeout_s,
                       input=input_text, env={**os.environ, "KAFKA_LOG_LEVEL": "warn"})
    if check:
        assert r.returncode == 0, f"kafka-{tool} {args} failed ({r.returncode}):\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    return r


def vltava_json(b, *args):
    r = subprocess.run([BIN, *args, "--bootstrap", b.bootstrap, "--output", "json"],
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    return json.loads(r.stdout)


def produce(bs, topic, n, keyed=True, partition=None):
    p = Producer({"bootstrap.servers": bs, "linger.ms": 5})
    for i in range(n):
        kw = {} if partition is None else {"partition": partition}
        p.produce(topic, key=(b"k%d" % (i % 10)) if keyed else None, value=b"v%d" % i, **kw)
    assert p.flush(30) == 0


def test_topics_create_list_describe_alter_delete(broker):
    bs = ["--bootstrap-server", broker.bootstrap]
    out = kafka("topics", *bs, "--create", "--topic", "orders", "--partitions", "3",
                "--replication-factor", "1", "--config", "cleanup.policy=compact",
                "--config", "index.interval.bytes=8192").stdout
    assert "Created topic orders." in out
    # Kafka's answers to what one node cannot do, and to a name that exists.
    r = kafka("topics", *bs, "--create", "--topic", "orders", check=False)
    assert r.returncode != 0 and "Topic 'orders' already exists." in r.stdout + r.stderr
    r = kafka("topics", *bs, "--create", "--topic", "rf3", "--replication-factor", "3", check=False)
    assert r.returncode != 0 and "InvalidReplicationFactorException" in r.stdout + r.stderr
    r = kafka("topics", *bs, "--create", "--topic", "bad", "--config", "no.such.config=1", check=False)
    assert r.returncode != 0 and "no.such.config" in r.stdout + r.stderr

    listed = kafka("topics", *bs, "--list").stdout.split()
    assert "orders" in listed and "rf3" not in listed

    desc = kafka("topics", *bs, "--describe", "--topic", "orders").stdout
    head = re.search(r"Topic: orders\tTopicId: (\S+)\tPartitionCount: 3\tReplicationFactor: 1\tConfigs: (.*)", desc)
    assert head, desc
    assert set(head.group(2).split(",")) == {"cleanup.policy=compact", "index.interval.bytes=8192"}
    rows = re.findall(r"Partition: (\d+)\tLeader: (\d+)\tReplicas: (\S+)\tIsr: (\S+)", desc)
    assert sorted(int(p) for p, *_ in rows) == [0, 1, 2]
    assert all(leader == "1" and rep == "1" and isr == "1" for _, leader, rep, isr in rows)

    kafka("topics", *bs, "--alter", "--topic", "orders", "--partitions", "5")
    desc = kafka("topics", *bs, "--describe", "--topic", "orders").stdout
    assert "PartitionCount: 5" in desc and len(re.findall(r"Partition: \d+\t", desc)) == 5
    r = kafka("topics", *bs, "--alter", "--topic", "orders", "--partitions", "2", check=False)
    assert r.returncode != 0 and "InvalidPartitionsException" in r.stdout + r.stderr

    kafka("topics", *bs, "--delete", "--topic", "orders")
    wait_until(lambda: "orders" not in kafka("topics", *bs, "--list").stdout.split(),
               what="orders gone from --list")
    r = kafka("topics", *bs, "--describe", "--topic", "orders", check=False)
    assert r.returncode != 0 and "does not exist" in r.stdout + r.stderr


def test_topics_describe_pages_through_many_partitions(broker):
    """Kafka 4's TopicCommand describes with DescribeTopicPartitions, 2,000 partitions a page
    (`--partition-size-limit-per-response` smaller here): every partition of every topic once."""
    bs = ["--bootstrap-server", broker.bootstrap]
    for name, n in (("pa", 7), ("pb", 3), ("pc", 5)):
        kafka("topics", *bs, "--create", "--topic", name, "--partitions", str(n))
    desc = kafka("topics", *bs, "--describe", "--partition-size-limit-per-response", "2",
                 "--exclude-internal").stdout
    rows = re.findall(r"Topic: (p[abc])\tPartition: (\d+)\t", desc)
    assert sorted(rows) == sorted([(t, str(p)) for t, n in (("pa", 7), ("pb", 3), ("pc", 5))
                                   for p in range(n)])


def test_console_producer_and_consumer_with_keys_headers_and_group(broker):
    bs = ["--bootstrap-server", broker.bootstrap]
    kafka("topics", *bs, "--create", "--topic", "console", "--partitions", "2")
    lines = "".join(f"h1:x{i},h2:y\tkey{i}\tvalue {i}\n" for i in range(20))
    kafka("console-producer", *bs, "--topic", "console", "--reader-property", "parse.key=true",
          "--reader-property", "parse.headers=true", "--reader-property", "key.separator=\t",
          input_text=lines)
    # librdkafka sees what the Java producer wrote.
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "check",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.assign([TopicPartition("console", p, 0) for p in range(2)])
    got = {}
    deadline = time.monotonic() + 30
    while len(got) < 20 and time.monotonic() < deadline:
        for m in c.consume(100, 0.5):
            assert not m.error(), m.error()
            got[m.key().decode()] = (m.value().decode(), m.headers())
    c.close()
    assert len(got) == 20
    assert got["key7"] == ("value 7", [("h1", b"x7"), ("h2", b"y")])

    out = kafka("console-consumer", *bs, "--topic", "console", "--from-beginning",
                "--max-messages", "20", "--group", "console-group",
                "--formatter-property", "print.key=true", "--formatter-property", "print.headers=true",
                "--formatter-property", "key.separator=|", "--formatter-property", "headers.separator=;").stdout
    printed = [l for l in out.splitlines() if "|" in l]
    assert len(printed) == 20
    assert "h1:x3;h2:y|key3|value 3" in printed
    # The group committed what it read: no lag left.
    rows = {(r["topic"], r["partition"]): r for r in
            vltava_json(broker, "groups", "describe", "console-group")[0]["partitions"]}
    assert sum(r["lag"] for r in rows.values()) == 0
    assert sum(r["current_offset"] for r in rows.values()) == 20


def parse_group_table(out):
    """kafka-consumer-groups --describe rows as {(topic, partition): (current, log_end, lag)}."""
    rows = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 6 and f[2].isdigit() and f[0] != "GROUP":
            cur = None if f[3] == "-" else int(f[3])
            lag = None if f[5] == "-" else int(f[5])
            rows[(f[1], int(f[2]))] = (cur, int(f[4]), lag)
    return rows


def test_consumer_groups_list_describe_lag_reset_delete(broker):
    bs = ["--bootstrap-server", broker.bootstrap]
    kafka("topics", *bs, "--create", "--topic", "lagged", "--partitions", "3")
    produce(broker.bootstrap, "lagged", 300)
    # A librdkafka member reads 120 records, commits and stays in the group.
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "lag-g", "client.id": "lagger",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    c.subscribe(["lagged"])
    n = 0
    deadline = time.monotonic() + 30
    while n < 120 and time.monotonic() < deadline:
        for m in c.consume(120 - n, 0.5):
            assert not m.error()
            n += 1
    c.commit(asynchronous=False)
    try:
        assert "lag-g" in kafka("consumer-groups", *bs, "--list").stdout.split()
        out = kafka("consumer-groups", *bs, "--describe", "--group", "lag-g").stdout
        rows = parse_group_table(out)
        [ours] = vltava_json(broker, "groups", "describe", "lag-g")
        theirs = {("lagged", r["partition"]): (r["current_offset"], r["log_end_offset"], r["lag"])
                  for r in ours["partitions"]}
        assert set(rows) == {("lagged", p) for p in range(3)}
        for k, (cur, end, lag) in rows.items():
            v_cur, v_end, v_lag = theirs[k]
            assert end == v_end
            if cur is not None:
                assert (cur, lag) == (v_cur, v_lag), (k, rows[k], theirs[k])
        assert sum(l for _, _, l in rows.values() if l is not None) == ours["total_lag"]
        # The member read 120 of 300 records and committed them (a partition it has not read
        # from yet shows "-", as Kafka shows it).
        assert sum(c for c, _, _ in rows.values() if c is not None) == 120
        assert "lagger" in out
        state = kafka("consumer-groups", *bs, "--describe", "--group", "lag-g", "--state").stdout
        assert re.search(r"lag-g\s+127\.0\.0\.1:\d+\s+\(1\)\s+range\s+Stable\s+1\s*$", state, re.M), state
        members = kafka("consumer-groups", *bs, "--describe", "--group", "lag-g", "--members").stdout
        assert "lagger" in members
        # Kafka's tool reports the refusal and exits 0.
        r = kafka("consumer-groups", *bs, "--delete", "--group", "lag-g", check=False)
        assert "GroupNotEmptyException: The group is not empty." in r.stdout + r.stderr
    finally:
        c.close()
    wait_until(lambda: "Empty" in kafka("consumer-groups", *bs, "--describe", "--group", "lag-g",
                                        "--state").stdout, what="group empty")
    plan = kafka("consumer-groups", *bs, "--group", "lag-g", "--reset-offsets", "--to-earliest",
                 "--topic", "lagged", "--dry-run").stdout
    assert re.search(r"lag-g\s+lagged\s+0\s+0", plan)
    kafka("consumer-groups", *bs, "--group", "lag-g", "--reset-offsets", "--to-offset", "5",
          "--topic", "lagged", "--execute")
    [ours] = vltava_json(broker, "groups", "describe", "lag-g")
    assert {r["partition"]: r["current_offset"] for r in ours["partitions"]} == {0: 5, 1: 5, 2: 5}
    kafka("consumer-groups", *bs, "--delete-offsets", "--group", "lag-g", "--topic", "lagged:0")
    out = kafka("consumer-groups", *bs, "--delete", "--group", "lag-g").stdout
    assert "Deletion of requested consumer groups ('lag-g') was successful." in out
    assert "lag-g" not in kafka("consumer-groups", *bs, "--list").stdout.split()


def test_configs_topics_and_brokers(broker):
    bs = ["--bootstrap-server", broker.bootstrap]
    kafka("topics", *bs, "--create", "--topic", "cfg")
    out = kafka("configs", *bs, "--entity-type", "topics", "--entity-name", "cfg", "--alter",
                "--add-config", "retention.ms=3600000,flush.messages=1,segment.jitter.ms=100").stdout
    assert "Completed updating config for topic cfg." in out
    desc = kafka("configs", *bs, "--entity-type", "topics", "--entity-name", "cfg", "--describe").stdout
    assert "retention.ms=3600000" in desc and "flush.messages=1" in desc
    assert "DEFAULT_CONFIG:log.retention.ms=604800000" in desc
    kafka("configs", *bs, "--entity-type", "topics", "--entity-name", "cfg", "--alter",
          "--delete-config", "retention.ms")
    desc = kafka("configs", *bs, "--entity-type", "topics", "--entity-name", "cfg", "--describe").stdout
    assert "retention.ms=" not in desc.replace("DEFAULT_CONFIG:log.retention.ms", "")
    everything = kafka("configs", *bs, "--entity-type", "topics", "--entity-name", "cfg",
                       "--describe", "--all").stdout
    for name in ("file.delete.delay.ms=60000", "index.interval.bytes=4096", "preallocate=false",
                 "message.timestamp.after.max.ms=3600000", "compression.type=producer"):
        assert name in everything, name
    r = kafka("configs", *bs, "--entity-type", "topics", "--entity-name", "cfg", "--alter",
              "--add-config", "remote.storage.enable=true", check=False)
    assert r.returncode != 0 and "remote" in r.stdout + r.stderr
    brokers = kafka("configs", *bs, "--entity-type", "brokers", "--entity-name", "1", "--describe",
                    "--all").stdout
    assert "num.partitions=6" in brokers and "node.id=1" in brokers
    kafka("configs", *bs, "--entity-type", "brokers", "--entity-default", "--describe")


def test_get_offsets_delete_records_and_log_dirs(broker):
    bs = ["--bootstrap-server", broker.bootstrap]
    kafka("topics", *bs, "--create", "--topic", "offs", "--partitions", "2")
    produce(broker.bootstrap, "offs", 50, keyed=False, partition=0)
    produce(broker.bootstrap, "offs", 20, keyed=False, partition=1)
    latest = kafka("get-offsets", *bs, "--topic", "offs").stdout.split()
    assert sorted(latest) == ["offs:0:50", "offs:1:20"]
    spec = {"partitions": [{"topic": "offs", "partition": 0, "offset": 30}], "version": 1}
    path = os.path.join(broker.data_dir + "-delete.json")
    with open(path, "w") as f:
        json.dump(spec, f)
    try:
        out = kafka("delete-records", *bs, "--offset-json-file", path).stdout
    finally:
        os.remove(path)
    assert re.search(r"partition: offs-0\s+low_watermark: 30", out), out
    earliest = kafka("get-offsets", *bs, "--topic", "offs", "--time", "earliest").stdout.split()
    assert sorted(earliest) == ["offs:0:30", "offs:1:0"]
    assert watermarks(broker.bootstrap, "offs", 2)[0] == (30, 50)

    out = kafka("log-dirs", *bs, "--describe", "--topic-list", "offs").stdout
    report = json.loads(out.strip().splitlines()[-1])
    [b] = report["brokers"]
    assert b["broker"] == 1
    [d] = b["logDirs"]
    assert d["error"] is None and os.path.samefile(d["logDir"], broker.data_dir)
    sizes = {p["partition"]: p["size"] for p in d["partitions"]}
    for p in (0, 1):
        on_disk = sum(os.path.getsize(os.path.join(broker.data_dir, f"offs-{p}", f))
                      for f in os.listdir(os.path.join(broker.data_dir, f"offs-{p}"))
                      if f.endswith(".log"))
        assert sizes[f"offs-{p}"] == on_disk > 0


def test_cluster_tools_api_versions_features_quorum_elections_reassignments(broker):
    bs = ["--bootstrap-server", broker.bootstrap]
    kafka("topics", *bs, "--create", "--topic", "el", "--partitions", "2")
    versions = kafka("broker-api-versions", *bs).stdout
    for api in ("Produce(0)", "Fetch(1)", "DescribeLogDirs(35)", "ElectLeaders(43)",
                "DescribeQuorum(55)", "DescribeTopicPartitions(75)", "ConsumerGroupHeartbeat(68)",
                "StreamsGroupHeartbeat(88)", "StreamsGroupDescribe(89)"):
        assert re.search(re.escape(api) + r": \d+ to \d+ \[usable: \d+\]|" + re.escape(api)
                         + r": \d+ \[usable: \d+\]", versions), api
    # Never advertised without being implemented (CLIENTS.md rule 12).
    assert "GetTelemetrySubscriptions(71): UNSUPPORTED" in versions
    features = kafka("features", *bs, "describe").stdout
    assert re.search(r"Feature: metadata.version\s+SupportedMinVersion: 3.3-IV3\s+"
                     r"SupportedMaxVersion: 4.0-IV3\s+FinalizedVersionLevel: 4.0-IV3", features), features
    assert re.search(r"Feature: group.version\s+SupportedMinVersion: 0\s+SupportedMaxVersion: 1\s+"
                     r"FinalizedVersionLevel: 1", features), features
    assert re.search(r"Feature: streams.version\s+SupportedMinVersion: 0\s+SupportedMaxVersion: 1\s+"
                     r"FinalizedVersionLevel: 1", features), features
    assert re.search(r"Feature: transaction.version\s+SupportedMinVersion: 0\s+SupportedMaxVersion: 0",
                     features), features
    status = kafka("metadata-quorum", *bs, "describe", "--status").stdout
    assert re.search(r"LeaderId:\s+1\n", status) and '"id": 1' in status, status
    assert re.search(r"CurrentObservers:\s+\[\]", status)
    repl = kafka("metadata-quorum", *bs, "describe", "--replication").stdout
    assert re.search(r"^1\s.*Leader\s*$", repl, re.M), repl

    out = kafka("leader-election", *bs, "--election-type", "preferred", "--topic", "el",
                "--partition", "1").stdout
    assert "Valid replica already elected for partitions el-1" in out
    kafka("leader-election", *bs, "--election-type", "unclean", "--all-topic-partitions")
    r = kafka("leader-election", *bs, "--election-type", "preferred", "--topic", "nope",
              "--partition", "0", check=False)
    assert r.returncode != 0 and "UnknownTopicOrPartitionException" in r.stdout + r.stderr

    assert "No partition reassignments found." in kafka("reassign-partitions", *bs, "--list").stdout
    plan = os.path.join(broker.data_dir + "-reassign.json")
    with open(plan, "w") as f:
        json.dump({"version": 1, "partitions": [{"topic": "el", "partition": 0, "replicas": [1]}]}, f)
    try:
        out = kafka("reassign-partitions", *bs, "--execute", "--reassignment-json-file", plan).stdout
        assert "Successfully started partition reassignment for el-0" in out
        out = kafka("reassign-partitions", *bs, "--verify", "--reassignment-json-file", plan).stdout
        assert "Reassignment of partition el-0 is completed." in out
        with open(plan, "w") as f:
            json.dump({"version": 1, "partitions": [{"topic": "el", "partition": 0, "replicas": [1, 2]}]}, f)
        r = kafka("reassign-partitions", *bs, "--execute", "--reassignment-json-file", plan, check=False)
        assert r.returncode != 0
    finally:
        os.remove(plan)


def test_producer_and_consumer_perf_tests(broker):
    bs = ["--bootstrap-server", broker.bootstrap]
    kafka("topics", *bs, "--create", "--topic", "perf", "--partitions", "3")
    out = kafka("producer-perf-test", *bs, "--topic", "perf", "--num-records", "50000",
                "--record-size", "100", "--throughput", "-1",
                "--command-property", "compression.type=lz4", "acks=all").stdout
    m = re.search(r"^50000 records sent, [\d.]+ records/sec", out, re.M)
    assert m, out
    assert sum(hi for _, hi in watermarks(broker.bootstrap, "perf", 3)) == 50000
    out = kafka("consumer-perf-test", *bs, "--topic", "perf", "--num-records", "50000").stdout
    row = out.strip().splitlines()[-1].split(", ")
    assert int(row[4]) == 50000, out  # data.consumed.in.nMsg


def events(out):
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("{"):
            yield json.loads(line)


def test_verifiable_producer_and_consumer_across_a_broker_sigkill(broker_factory):
    """kafka-verifiable-producer writes while the broker is SIGKILLed and restarted and
    kafka-verifiable-consumer reads through it: every acknowledged record is consumed, and no
    record is consumed twice below an offset its group had committed."""
    b = broker_factory("--default-partitions", "3")
    bs = ["--bootstrap-server", b.bootstrap]
    kafka("topics", *bs, "--create", "--topic", "ver", "--partitions", "3")
    total = 6000
    env = {**os.environ, "KAFKA_LOG_LEVEL": "error"}
    # The producer's default delivery.timeout.ms (120 s) outlasts the broker's restart.
    prod = subprocess.Popen([KAFKA, "verifiable-producer", *bs, "--topic", "ver", "--max-messages",
                             str(total), "--throughput", "1000", "--acks", "-1"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    cons = subprocess.Popen([KAFKA, "verifiable-consumer", *bs, "--topic", "ver", "--group-id",
                             "ver-g", "--reset-policy", "earliest", "--max-messages", str(total),
                             "--session-timeout", "10000"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    prod_lines, cons_lines = [], []
    readers = [threading.Thread(target=lambda: prod_lines.extend(prod.stdout), daemon=True),
               threading.Thread(target=lambda: cons_lines.extend(cons.stdout), daemon=True)]
    for t in readers:
        t.start()
    try:
        acked = lambda: sum(1 for l in list(prod_lines) if "producer_send_success" in l)
        wait_until(lambda: acked() >= 1500, timeout_s=60, what="1,500 acknowledged records")
        b.kill9()
        b.start()
        assert prod.wait(180) == 0
        sent = [e for e in events("".join(prod_lines)) if e["name"] == "producer_send_success"]
        # Records whose delivery failed for good are not acknowledged; the rest must all arrive.
        want = {(e["partition"], e["offset"]) for e in sent}
        assert len(want) == len(sent) >= total * 0.9, len(sent)
        cons_done = lambda: any('"shutdown_complete"' in l for l in list(cons_lines)) or \
            sum(c["count"] for e in events("".join(list(cons_lines))) if e["name"] == "records_consumed"
                for c in e["partitions"]) >= len(want)
        wait_until(cons_done, timeout_s=120, what="the consumer to read every acknowledged record")
    finally:
        for p in (prod, cons):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(10)
        for t in readers:
            t.join(10)
    seen = set()
    committed = {}
    for e in events("".join(cons_lines)):
        if e["name"] == "offsets_committed" and e.get("success"):
            for o in e["offsets"]:
                committed[o["partition"]] = max(committed.get(o["partition"], 0), o["offset"])
        elif e["name"] == "records_consumed":
            for c in e["partitions"]:
                p = c["partition"]
                for off in range(c["minOffset"], c["maxOffset"] + 1):
                    if (p, off) in seen:
                        assert off >= committed.get(p, 0), \
                            f"ver-{p} offset {off} consumed again below committed {committed[p]}"
                    seen.add((p, off))
    missing = want - seen
    assert not missing, f"{len(missing)} acknowledged records never consumed, e.g. {sorted(missing)[:5]}"


def test_configs_groups_and_a_consumer_session_timeout_that_is_honoured(broker):
    """kafka-configs --entity-type groups (KIP-848 group configs): described with Kafka's names
    and defaults, altered, validated, deleted; a group's consumer.session.timeout.ms is what
    expires its SIGKILLed member (the default is 45 s; the test waits 25 s at most)."""
    bs = ["--bootstrap-server", broker.bootstrap]
    kafka("topics", *bs, "--create", "--topic", "gcfg")
    desc = kafka("configs", *bs, "--entity-type", "groups", "--entity-name", "gc", "--describe",
                 "--all").stdout
    for entry in ("consumer.session.timeout.ms=45000", "share.record.lock.duration.ms=30000",
                  "streams.num.standby.replicas=0", "share.isolation.level=read_uncommitted"):
        assert entry in desc, entry
    out = kafka("configs", *bs, "--entity-type", "groups", "--entity-name", "gc", "--alter",
                "--add-config", "consumer.session.timeout.ms=6000,consumer.heartbeat.interval.ms=500").stdout
    assert "Completed updating config for group gc." in out
    desc = kafka("configs", *bs, "--entity-type", "groups", "--entity-name", "gc", "--describe").stdout
    assert "consumer.session.timeout.ms=6000" in desc and "consumer.heartbeat.interval.ms=500" in desc
    r = kafka("configs", *bs, "--entity-type", "groups", "--entity-name", "gc", "--alter",
              "--add-config", "consumer.heartbeat.interval.ms=7000", check=False)
    assert r.returncode != 0 and "InvalidConfigurationException" in r.stdout + r.stderr
    r = kafka("configs", *bs, "--entity-type", "groups", "--entity-name", "gc", "--alter",
              "--add-config", "no.such.group.config=1", check=False)
    assert r.returncode != 0

    # A consumer-protocol member in a child process, SIGKILLed: no LeaveGroup, so only the
    # session timeout removes it.
    script = (
        "import sys\nfrom confluent_kafka import Consumer\n"
        f"c = Consumer({{'bootstrap.servers': '{broker.bootstrap}', 'group.id': 'gc', "
        "'group.protocol': 'consumer', 'auto.offset.reset': 'earliest'})\n"
        "c.subscribe(['gcfg'])\n"
        "while True:\n    c.poll(0.2)\n    if c.assignment():\n        print('assigned', flush=True)\n")
    child = subprocess.Popen([os.path.join(REPO, ".venv", "bin", "python"), "-c", script],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "assigned"

        def members():
            r = subprocess.run([BIN, "groups", "describe", "gc", "--bootstrap", broker.bootstrap,
                                "--output", "json"], capture_output=True, timeout=60)
            return json.loads(r.stdout)[0]["members"] if r.returncode == 0 else None
        wait_until(lambda: members(), timeout_s=15, what="the member in the group")
        child.kill()
        child.wait(10)
        t0 = time.monotonic()
        wait_until(lambda: members() in ([], None),
                   timeout_s=25, interval_s=0.25, what="the killed member to expire")
        assert time.monotonic() - t0 < 25
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
    kafka("configs", *bs, "--entity-type", "groups", "--entity-name", "gc", "--alter",
          "--delete-config", "consumer.session.timeout.ms,consumer.heartbeat.interval.ms")
    desc = kafka("configs", *bs, "--entity-type", "groups", "--entity-name", "gc", "--describe").stdout
    assert "consumer.session.timeout.ms" not in desc
    # The overrides survive a restart.
    kafka("configs", *bs, "--entity-type", "groups", "--entity-name", "gc", "--alter",
          "--add-config", "share.record.lock.duration.ms=5000")
    broker.restart()
    desc = kafka("configs", *bs, "--entity-type", "groups", "--entity-name", "gc", "--describe").stdout
    assert "share.record.lock.duration.ms=5000" in desc
