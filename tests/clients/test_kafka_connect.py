"""Kafka Connect in distributed mode (Apache Kafka 4.4.0's ConnectDistributed, run by
scripts/kafka as bin/connect-distributed.sh runs it) against Vltava, unchanged: the worker creates
its compacted config/offset/status topics, joins its group with the `connect` protocol type,
runs a FileStreamSource and a FileStreamSink connector created through its REST API, and keeps
going across a SIGKILL and restart of the broker without re-reading its source from the start.

Everything is cross-checked outside Connect: the topics with confluent-kafka (librdkafka), the
groups with the `vltava` CLI, Kafka's own `kafka-groups` tool and librdkafka's AdminClient.

The class path (tests/jvm/pom.xml) pairs connect-runtime 4.4.0 with connect-file 4.3.1 (Maven
Central has no connect-file 4.4.0), and connect-file 4.3.1's connectors call
org.apache.kafka.common.utils.AppInfoParser.getVersion(), a class kafka-clients 4.4.0 moved to
org.apache.kafka.common.utils.internals: on that class path, POST /connectors answers 500
(NoClassDefFoundError in AbstractHerder.validateConnectorConfig) with any broker, Kafka's
included. The test compiles a one-method stand-in for the old class (it answers the 4.4.0 version
the moved class reads) and appends it to the JVM's boot class path; nothing of Connect or of the
broker is changed."""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import zipfile

import pytest
import requests
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource, NewTopic

from conftest import BIN, REPO, free_port, wait_until
from util import read_messages

pytestmark = pytest.mark.timeout(300)

KAFKA = os.path.join(REPO, "scripts", "kafka")
CLASSPATH_FILE = os.path.join(REPO, "tests", "jvm", "target", "tools.classpath")

GROUP = "vltava-connect"
CONFIG_TOPIC, OFFSET_TOPIC, STATUS_TOPIC = "vltava-connect-configs", "vltava-connect-offsets", "vltava-connect-status"
TOPIC = "connect-in"
SINK_GROUP = "connect-sink"  # Connect's name for a sink connector's consumer group: connect-<name>
FIRST, SECOND = 200, 100     # lines written before the broker's SIGKILL, and while it is down

APP_INFO_SHIM = """\
package org.apache.kafka.common.utils;

/** The one method connect-file 4.3.1 calls, on the boot class path: answers what the class
 *  kafka-clients 4.4.0 moved to org.apache.kafka.common.utils.internals answers. */
public final class AppInfoParser {
    private AppInfoParser() {}

    public static String getVersion() {
        try {
            return (String) ClassLoader.getSystemClassLoader()
                .loadClass("org.apache.kafka.common.utils.internals.AppInfoParser")
                .getMethod("getVersion").invoke(null);
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException(e);
        }
    }
}
"""


def needs_app_info_shim():
    """True unless the kafka-clients jar on the tools' class path still has the class
    connect-file 4.3.1 calls (if the class path is not resolved yet, scripts/kafka resolves the
    pinned pom, whose kafka-clients 4.4.0 does not)."""
    try:
        with open(CLASSPATH_FILE) as f:
            jars = [j for j in f.read().strip().split(":") if "/kafka-clients-" in j]
        return not any("org/apache/kafka/common/utils/AppInfoParser.class" in zipfile.ZipFile(j).namelist()
                       for j in jars)
    except OSError:
        return True


def compile_app_info_shim(work):
    src = os.path.join(work, "shim-src", "org", "apache", "kafka", "common", "utils")
    os.makedirs(src)
    with open(os.path.join(src, "AppInfoParser.java"), "w") as f:
        f.write(APP_INFO_SHIM)
    classes = os.path.join(work, "shim-classes")
    javac = shutil.which("javac")
    assert javac, "javac (a JDK) is needed to compile the AppInfoParser stand-in"
    r = subprocess.run([javac, "--release", "17", "-d", classes, os.path.join(src, "AppInfoParser.java")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"javac failed:\n{r.stdout}\n{r.stderr}"
    return classes


class ConnectWorker:
    """One `scripts/kafka connect-distributed` JVM; its output goes to a log file."""

    def __init__(self, work, bootstrap):
        self.work = work
        self.rest_port = free_port()
        self.url = f"http://127.0.0.1:{self.rest_port}"
        self.log_path = os.path.join(work, "worker.log")
        self.props = os.path.join(work, "worker.properties")
        settings = {
            "bootstrap.servers": bootstrap,
            "group.id": GROUP,
            "config.storage.topic": CONFIG_TOPIC,
            "offset.storage.topic": OFFSET_TOPIC,
            "status.storage.topic": STATUS_TOPIC,
            "config.storage.replication.factor": "1",
            "offset.storage.replication.factor": "1",
            "status.storage.replication.factor": "1",
            "key.converter": "org.apache.kafka.connect.storage.StringConverter",
            "value.converter": "org.apache.kafka.connect.storage.StringConverter",
            "listeners": self.url,
            "offset.flush.interval.ms": "1000",
            # A sink task's consumer that could not leave its group while the broker was down stays
            # a member of it after the restart until its session times out (Kafka's coordinator
            # keeps a loaded group's members as well); 6 s instead of the consumer's 45 s default.
            "consumer.session.timeout.ms": "6000",
            "consumer.heartbeat.interval.ms": "1000",
            # Bounds the wait for a lost worker's assignment (default 5 minutes) should one occur.
            "scheduled.rebalance.max.delay.ms": "5000",
        }
        with open(self.props, "w") as f:
            f.writelines(f"{k}={v}\n" for k, v in settings.items())
        self.proc = None

    def start(self, kafka_opts=""):
        env = {**os.environ, "KAFKA_LOG_LEVEL": "info", "KAFKA_HEAP_OPTS": "-Xmx512m",
               "KAFKA_OPTS": kafka_opts}
        log = open(self.log_path, "ab")
        # scripts/kafka execs java: this PID is the worker's.
        self.proc = subprocess.Popen([KAFKA, "connect-distributed", self.props], stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        log.close()

    def alive(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"the Connect worker exited with {self.proc.returncode}:\n{self.log_tail()}")
        return True

    def get(self, path):
        return requests.get(self.url + path, timeout=5)

    def wait_ready(self, timeout_s=120):
        def ready():
            self.alive()
            try:
                r = self.get("/")
                return r.json() if r.status_code == 200 else None
            except (requests.RequestException, ValueError):
                return None
        return wait_until(ready, timeout_s, interval_s=0.25, what="the Connect REST API to answer GET /")

    def put_connector(self, name, config, timeout_s=60):
        """Creates the connector with PUT /connectors/<name>/config; retried while the worker
        answers 409 (a rebalance in progress) or is not yet able to forward the request."""
        def created():
            self.alive()
            try:
                r = requests.put(f"{self.url}/connectors/{name}/config", json=config, timeout=30)
            except requests.RequestException:
                return None
            if r.status_code in (200, 201):
                return r.json()
            assert r.status_code in (409, 500, 503), f"PUT /connectors/{name}/config: {r.status_code} {r.text}"
            return None
        return wait_until(created, timeout_s, interval_s=0.5, what=f"connector {name} created")

    def status(self, name):
        r = self.get(f"/connectors/{name}/status")
        return r.json() if r.status_code == 200 else None

    def running(self, name):
        self.alive()
        try:
            s = self.status(name)
        except requests.RequestException:
            return None
        if s and s["connector"]["state"] == "RUNNING" and s["tasks"] and \
                all(t["state"] == "RUNNING" for t in s["tasks"]):
            return s
        return None

    def offsets(self, name):
        """GET /connectors/<name>/offsets (KIP-875) as [(partition, offset)], or None."""
        try:
            r = self.get(f"/connectors/{name}/offsets")
        except requests.RequestException:
            return None
        if r.status_code != 200:
            return None
        return [(o["partition"], o["offset"]) for o in r.json()["offsets"]]

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, chars=12000):
        noise = ("Rebootstrapping with", "Resetting the last seen epoch", "could not be established",
                 "disconnected", "DisconnectException", "Error sending fetch request")
        return "\n".join(l for l in self.log().splitlines() if not any(n in l for n in noise))[-chars:]

    def stop(self, timeout_s=30):
        """SIGTERM (Connect's shutdown hook stops the herder), SIGKILL after the deadline."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def connect_env(broker_factory, request):
    """A broker, a temp dir and a (not yet started) worker; the worker is stopped by PID before
    the broker is, its log printed if the test failed, and the temp dir removed."""
    b = broker_factory()
    work = tempfile.mkdtemp(prefix="vltava-connect-")
    w = ConnectWorker(work, b.bootstrap)
    try:
        yield b, w, work
    finally:
        w.stop()
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            print(f"--- Connect worker log ({w.url}) ---\n{w.log_tail()}")
        shutil.rmtree(work, ignore_errors=True)


def written(path):
    """The complete (newline-terminated) lines of a file, [] if it does not exist yet."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return []
    lines = text.split("\n")
    return lines[:-1]  # the last element is "" or an unterminated line still being written


def append_lines(path, lines):
    with open(path, "a", encoding="utf-8") as f:
        f.write("".join(l + "\n" for l in lines))
        f.flush()
        os.fsync(f.fileno())


def topic_values(bootstrap, expected, timeout_s=30):
    return [m.value().decode() for m in read_messages(bootstrap, TOPIC, 1, expected, timeout_s)]


def check_at_least_once(seq, lines, kept, what):
    """`seq` is what an at-least-once, in-order pipeline delivered of `lines`: every line, none
    foreign, first appearances in the written order, and any repeat a re-delivery that starts
    again at an earlier line, never before `kept` (the lines delivered and committed before the
    failure, which must therefore appear exactly once). Returns the number of repeats."""
    index = {l: i for i, l in enumerate(lines)}
    foreign = [l for l in seq if l not in index]
    assert not foreign, f"{what}: lines never written: {foreign[:5]}"
    missing = [l for l in lines if l not in set(seq)]
    assert not missing, f"{what}: {len(missing)} lines missing, e.g. {missing[:5]}"
    firsts = list(dict.fromkeys(seq))
    assert firsts == lines, f"{what}: lines first appear out of the written order"
    assert seq[0] == lines[0], f"{what}: starts at {seq[0]!r}"
    for prev, cur in zip(seq, seq[1:]):
        i, j = index[prev], index[cur]
        if j != i + 1:
            assert j <= i, f"{what}: {cur!r} follows {prev!r}, skipping lines"
            assert j >= kept, f"{what}: re-delivered {cur!r}, which was committed before the failure"
    return len(seq) - len(lines)


def test_connect_distributed_file_source_and_sink_across_a_broker_sigkill(connect_env):
    """FileStreamSource -> topic connect-in -> FileStreamSink through a distributed worker.

    Before the failure: the internal topics exist as Connect created them (compacted, the
    config topic with one partition), the worker's group has protocol type `connect` and chose
    the `sessioned` protocol (incremental cooperative rebalancing), both connectors and tasks are
    RUNNING, the topic holds exactly the written lines once in order, the output file equals them,
    and both connectors' offsets are committed (the source's position is the file's length, the
    sink group's committed offset the topic's end).

    Across the broker's SIGKILL and restart (more lines are appended while it is down; the worker
    revokes its own tasks after its coordinator is unreachable for heartbeat.interval.ms and starts
    them again when it rejoins): Connect is at-least-once, so a line the source read but whose
    offset it had not committed may be produced twice, and the sink may write again what it had
    not committed. Asserted, for the topic and the output file alike: every line is there, none is
    foreign, lines first appear in the written order, and any repeat is a re-delivery that restarts
    at an earlier line but never at one committed before the failure; so each line written before
    the failure is there exactly once (the source resumed from its stored offset, not the start of
    the file, and the sink from its group's committed offset). The connectors and tasks are RUNNING
    again and their offsets cover everything."""
    b, w, work = connect_env
    src, out = os.path.join(work, "in.txt"), os.path.join(work, "out.txt")
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    # The connectors' topic has one partition, so the topic and the output file have one order.
    for f in admin.create_topics([NewTopic(TOPIC, 1, 1)]).values():
        f.result(30)
    lines = [f"line-{i:04d} {'x' * (i % 37)}" for i in range(FIRST + SECOND)]
    append_lines(src, lines[:FIRST])

    w.start(kafka_opts=f"-Xbootclasspath/a:{compile_app_info_shim(work)}" if needs_app_info_shim() else "")
    root = w.wait_ready()
    assert root["version"] == "4.4.0"
    assert root["kafka_cluster_id"] == admin.list_topics(timeout=10).cluster_id

    # Connect created its topics itself (it creates them before the REST API comes up), compacted.
    md = admin.list_topics(timeout=10)
    partitions = {t: len(md.topics[t].partitions) for t in (CONFIG_TOPIC, OFFSET_TOPIC, STATUS_TOPIC)}
    # 1 is required for the config topic; 25 and 5 are offset/status.storage.partitions' defaults.
    assert partitions == {CONFIG_TOPIC: 1, OFFSET_TOPIC: 25, STATUS_TOPIC: 5}
    configs = admin.describe_configs([ConfigResource("topic", t) for t in partitions])
    for res, f in configs.items():
        policy = f.result(30)["cleanup.policy"]
        assert (policy.value, policy.source) == ("compact", ConfigSource.DYNAMIC_TOPIC_CONFIG.value), res.name
    plugins = {p["class"]: p for p in w.get("/connector-plugins").json()}
    assert plugins["org.apache.kafka.connect.file.FileStreamSourceConnector"]["type"] == "source"
    assert plugins["org.apache.kafka.connect.file.FileStreamSinkConnector"]["type"] == "sink"

    w.put_connector("src", {"connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
                            "tasks.max": "1", "file": src, "topic": TOPIC})
    w.put_connector("sink", {"connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector",
                             "tasks.max": "1", "file": out, "topics": TOPIC})
    for name in ("src", "sink"):
        s = wait_until(lambda: w.running(name), 60, interval_s=0.25, what=f"{name} and its task RUNNING")
        assert len(s["tasks"]) == 1 and s["type"] == {"src": "source", "sink": "sink"}[name]
    assert sorted(w.get("/connectors").json()) == ["sink", "src"]

    wait_until(lambda: w.alive() and len(written(out)) >= FIRST, 60, interval_s=0.2,
               what=f"{FIRST} lines in the sink's file")
    assert written(out) == lines[:FIRST]
    assert topic_values(b.bootstrap, FIRST) == lines[:FIRST]

    # Both connectors' offsets are committed before the failure: the source's position is the
    # file's length (in Connect's offsets topic), the sink group's committed offset the topic's end.
    size = os.path.getsize(src)
    src_offsets = [({"filename": src}, {"position": size})]
    sink_offsets = [({"kafka_topic": TOPIC, "kafka_partition": 0}, {"kafka_offset": FIRST})]
    wait_until(lambda: w.offsets("src") == src_offsets, 30, interval_s=0.25, what="the source's offset flushed")
    wait_until(lambda: w.offsets("sink") == sink_offsets, 30, interval_s=0.25, what="the sink's offset committed")
    stored = {}
    for m in read_messages(b.bootstrap, OFFSET_TOPIC, 25, 1, timeout_s=30):
        stored[m.key().decode()] = json.loads(m.value())
    assert stored == {json.dumps(["src", {"filename": src}], separators=(",", ":")): {"position": size}}

    # The worker's group: protocol type `connect`, protocol `sessioned`; the sink's a consumer group.
    listed = {g["group"]: g for g in vltava_json(b, "groups", "list")}
    assert listed[GROUP]["protocol_type"] == "connect" and listed[GROUP]["state"] == "Stable"
    assert listed[SINK_GROUP]["protocol_type"] == "consumer" and listed[SINK_GROUP]["state"] == "Stable"
    [worker_group] = vltava_json(b, "groups", "describe", GROUP)
    assert (worker_group["type"], worker_group["protocol"], worker_group["state"]) == ("classic", "sessioned", "Stable")
    [member] = worker_group["members"]
    assert member["client_id"].startswith("connect-") and member["assignment"] == []
    [sink_group] = vltava_json(b, "groups", "describe", SINK_GROUP)
    assert sink_group["protocol"] == "range"
    assert [(p["topic"], p["partition"], p["current_offset"], p["lag"]) for p in sink_group["partitions"]] == \
        [(TOPIC, 0, FIRST, 0)]
    r = subprocess.run([KAFKA, "groups", "--bootstrap-server", b.bootstrap, "--list"], capture_output=True,
                       text=True, timeout=120, env={**os.environ, "KAFKA_LOG_LEVEL": "warn"})
    assert r.returncode == 0, r.stdout + r.stderr
    rows = {f[0]: f[1:] for f in (l.split() for l in r.stdout.splitlines()) if f}
    assert rows["GROUP"] == ["TYPE", "PROTOCOL"]
    assert rows[GROUP] == ["Classic", "connect"] and rows[SINK_GROUP] == ["Classic", "consumer"]
    # librdkafka's DescribeConsumerGroups refuses a group whose DescribeGroups protocol type is
    # not `consumer`, naming it, as Kafka's Admin client does.
    with pytest.raises(KafkaException) as refused:
        admin.describe_consumer_groups([GROUP])[GROUP].result(30)
    assert refused.value.args[0].code() == KafkaError._INVALID_ARG
    assert f"GroupId {GROUP} is not a consumer group (connect)." in refused.value.args[0].str()

    del admin  # no client of the test's own stays connected across the outage

    # SIGKILL the broker; more lines are written while it is down.
    log_mark = len(w.log())
    b.kill9()
    append_lines(src, lines[FIRST:])
    # The worker notices its coordinator is gone and stops its tasks (Kafka's WorkerCoordinator:
    # revoked after heartbeat.interval.ms, 3 s), so they start again, from their offsets, after.
    wait_until(lambda: w.alive() and "Broker coordinator was unreachable" in w.log()[log_mark:], 60,
               interval_s=0.2, what="the worker revoking its tasks while the broker is down")
    b.start()

    wait_until(lambda: w.alive() and set(written(out)) >= set(lines), 90, interval_s=0.2,
               what=f"all {len(lines)} lines in the sink's file after the broker's restart")
    for name in ("src", "sink"):
        wait_until(lambda: w.running(name), 60, interval_s=0.25, what=f"{name} and its task RUNNING again")
    restarted = w.log()[log_mark:]
    assert "Starting task src-0" in restarted and "Starting task sink-0" in restarted

    size = os.path.getsize(src)
    wait_until(lambda: w.offsets("src") == [({"filename": src}, {"position": size})], 30, interval_s=0.25,
               what="the source's offset at the end of the file")
    end = read_messages(b.bootstrap, TOPIC, 1, len(lines), timeout_s=30)
    in_topic = [m.value().decode() for m in end]
    wait_until(lambda: w.offsets("sink") == [({"kafka_topic": TOPIC, "kafka_partition": 0},
                                              {"kafka_offset": len(in_topic)})], 30, interval_s=0.25,
               what="the sink's offset at the topic's end")
    topic_repeats = check_at_least_once(in_topic, lines, FIRST, "topic connect-in")
    file_repeats = check_at_least_once(written(out), lines, FIRST, "the sink's file")
    print(f"re-delivered after the broker's SIGKILL: {topic_repeats} records in the topic, "
          f"{file_repeats} lines in the sink's file")
    [worker_group] = vltava_json(b, "groups", "describe", GROUP)
    assert (worker_group["protocol"], worker_group["state"], len(worker_group["members"])) == ("sessioned", "Stable", 1)


def vltava_json(b, *args):
    r = subprocess.run([BIN, *args, "--bootstrap", b.bootstrap, "--output", "json"],
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    return json.loads(r.stdout)
