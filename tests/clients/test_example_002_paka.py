"""examples/002-paka: the Paka API's KafkaJS integration (seed 002) running on Vltava.

Starts Vltava and the example's Node service, publishes notification / audit / report / document
events through its HTTP endpoints and checks that each of the four consumer groups processes its
own events (and that the processors' follow-up events reach their topics). Then stops Vltava: the
status endpoint must say "not connected" and events must be processed synchronously. Starts Vltava
again on the same port and data directory: the service must reconnect, new events must flow
through Kafka again, and every event the service acknowledged as sent to Kafka (HTTP 202,
via=kafka) must be in its topic and processed, including a burst published just before the
broker stopped (mostly still unconsumed then).

Needs `(cd examples/002-paka && npm ci)`.
"""
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from confluent_kafka import Consumer, TopicPartition

from conftest import REPO, free_port, wait_until

pytestmark = pytest.mark.timeout(120)

EXAMPLE = os.path.join(REPO, "examples", "002-paka")
TOKEN = "paka-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

TOPICS = ["document.uploaded", "document.parsed", "document.embedded", "notification.send",
          "notification.sent", "audit.event", "report.generate", "report.ready"]
GROUPS = ["paka-document-processor", "paka-notification-processor", "paka-audit-logger",
          "paka-report-generator"]
# endpoint -> (topic, consumer group, request body)
KINDS = {
    "notification": ("notification.send", "paka-notification-processor",
                     {"title": "Test Alert", "body": "This notification was sent via Kafka!"}),
    "audit": ("audit.event", "paka-audit-logger",
              {"action": "test_action", "resource": "document", "resourceId": 123,
               "details": {"note": "Testing Kafka audit"}}),
    "report": ("report.generate", "paka-report-generator", {"reportType": "weekly"}),
    "document": ("document.uploaded", "paka-document-processor",
                 {"filename": "notes.txt", "text": "first chunk\n\nsecond chunk\n\nthird chunk"}),
}
# topic a processor publishes its follow-up event to, per endpoint
FOLLOW_UPS = {"notification": "notification.sent", "report": "report.ready",
              "document": "document.embedded"}


class Service:
    """The example's Node process, started with the broker's bootstrap and a free HTTP port."""

    def __init__(self, bootstrap):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        fd, self.processed_path = tempfile.mkstemp(prefix="paka-processed-", suffix=".jsonl")
        os.close(fd)
        fd, self.log_path = tempfile.mkstemp(prefix="paka-node-", suffix=".log")
        os.close(fd)
        env = dict(os.environ, KAFKA_BROKERS=bootstrap, PORT=str(self.port),
                   PROCESSED_LOG=self.processed_path, API_TOKEN=TOKEN)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(["node", os.path.join("src", "index.js")], cwd=EXAMPLE,
                                         env=env, stdout=log, stderr=log)

    def status(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"node service exited with {self.proc.returncode}:\n{self.log()}")
        try:
            r = requests.get(f"{self.base}/kafka/status", timeout=5)
        except requests.RequestException:
            return None
        assert r.status_code == 200, r.text
        return r.json()

    def connected(self):
        s = self.status()
        return s is not None and s["kafka"]["connected"]

    def disconnected(self):
        s = self.status()
        return s is not None and not s["kafka"]["connected"]

    def publish(self, kind, headers=AUTH):
        return requests.post(f"{self.base}/kafka/test/{kind}", json=KINDS[kind][2], headers=headers,
                             timeout=20)

    def processed(self):
        with open(self.processed_path) as f:
            return [json.loads(line) for line in f if line.endswith("\n")]

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self):
        """Stops the node process by PID: SIGTERM, then SIGKILL if it does not exit."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait(10)
        for p in (self.processed_path, self.log_path):
            try:
                os.remove(p)
            except OSError:
                pass


@pytest.fixture
def service_factory(request):
    services = []

    def make(bootstrap):
        s = Service(bootstrap)
        services.append(s)
        return s

    yield make
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for s in services:
        if failed:
            print(f"--- node service log ---\n{s.log()[-12000:]}")
        s.stop()


def publish_ok(svc, kind, via):
    r = svc.publish(kind)
    expected = 202 if via == "kafka" else 200
    assert r.status_code == expected, f"{kind}: {r.status_code} {r.text}"
    body = r.json()
    assert body["ok"] is True and body["via"] == via and body["topic"] == KINDS[kind][0], body
    return body["eventId"]


def processed_ids(svc, group, via):
    return {p["eventId"] for p in svc.processed() if p["group"] == group and p["via"] == via}


def wait_processed(svc, ids_by_kind, via="kafka", timeout_s=30):
    for kind, ids in ids_by_kind.items():
        group = KINDS[kind][1]
        wait_until(lambda: set(ids) <= processed_ids(svc, group, via), timeout_s,
                   what=f"{group} to process {len(ids)} {kind} events via {via}")


def topic_values(bootstrap, topic, timeout_s=20):
    """All values of `topic` (read from the beginning of every partition)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "paka-test-reader",
                  "enable.auto.commit": False})
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
        c.assign([TopicPartition(topic, p, 0) for p in parts])
        pos = {p: 0 for p in parts}
        values = []
        deadline = time.monotonic() + timeout_s
        while any(pos[p] < ends[p] for p in parts):
            assert time.monotonic() < deadline, f"timed out reading {topic}: {pos} of {ends}"
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            pos[m.partition()] = m.offset() + 1
            values.append(json.loads(m.value()))
        return values
    finally:
        c.close()


class Publisher(threading.Thread):
    """Publishes notifications one after another (paced) until stopped; sorts the answers into
    acknowledged-by-Kafka (202, via=kafka), processed-synchronously (200, via=sync) and failures."""

    def __init__(self, svc):
        super().__init__(daemon=True)
        self.svc = svc
        self.kafka, self.sync, self.failures = [], [], []
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            try:
                r = self.svc.publish("notification")
                body = r.json()
                if r.status_code == 202 and body.get("via") == "kafka":
                    self.kafka.append(body["eventId"])
                elif r.status_code == 200 and body.get("via") == "sync":
                    self.sync.append(body["eventId"])
                else:
                    self.failures.append(f"{r.status_code} {r.text}")
            except (requests.RequestException, ValueError) as e:
                self.failures.append(repr(e))
            self.halt.wait(0.05)  # pacing of the load, not a wait for a condition

    def stop(self):
        self.halt.set()
        self.join(30)
        assert not self.is_alive()


def test_paka_example_survives_broker_restart(broker_factory, service_factory):
    broker = broker_factory("--no-registry")
    svc = service_factory(broker.bootstrap)

    # Connected: the status endpoint answers as the seed documents.
    wait_until(svc.connected, 60, interval_s=0.2, what="status connected")
    s = svc.status()
    assert s["ok"] is True
    assert s["kafka"] == {"connected": True, "brokers": broker.bootstrap, "clientId": "paka-api"}
    assert s["topics"] == TOPICS
    assert s["consumers"] == GROUPS
    assert s["message"] == "Kafka is connected and processing events"
    assert svc.publish("notification", headers={}).status_code == 401

    # Every group processes its own events through Kafka, and nothing else.
    before = {kind: [publish_ok(svc, kind, "kafka") for _ in range(5)] for kind in KINDS}
    wait_processed(svc, before)
    for p in svc.processed():
        assert p["topic"] == {g: t for t, g, _ in KINDS.values()}[p["group"]], p
        assert p["via"] == "kafka" and p["partition"] is not None and p["offset"] is not None, p
    # The processors' follow-up events reached their topics.
    for kind, topic in FOLLOW_UPS.items():
        causes = {v.get("causationId") for v in topic_values(broker.bootstrap, topic)}
        assert set(before[kind]) <= causes, f"{topic} lacks follow-ups of {kind} events"

    # Keep publishing while the broker goes away and comes back.
    publisher = Publisher(svc)
    publisher.start()
    try:
        wait_until(lambda: len(publisher.kafka) >= 5, 30, what="publisher acknowledged by Kafka")

        # A burst right before the broker stops: some of it is likely still unconsumed then.
        with ThreadPoolExecutor(8) as pool:
            burst = list(pool.map(lambda _: publish_ok(svc, "notification", "kafka"), range(40)))
        t0 = time.monotonic()
        assert broker.terminate() == 0, broker.log()
        broker_exit_s = time.monotonic() - t0
        wait_until(svc.disconnected, 30, interval_s=0.1, what="status not connected")
        s = svc.status()
        assert s["ok"] is True and s["consumers"] == []
        assert s["kafka"]["brokers"] == broker.bootstrap and s["kafka"]["clientId"] == "paka-api"
        assert s["message"] == "Kafka not connected - async processing disabled"

        # Broker down: events are processed in-process before the response.
        down = {kind: [publish_ok(svc, kind, "sync")] for kind in KINDS}
        for kind, ids in down.items():
            assert set(ids) <= processed_ids(svc, KINDS[kind][1], "sync"), kind
        wait_until(lambda: len(publisher.sync) >= 3, 30, what="publisher falling back to sync")

        # Same port, same data directory.
        done_before_restart = processed_ids(svc, "paka-notification-processor", "kafka")
        broker.start()
        wait_until(svc.connected, 60, interval_s=0.2, what="status connected again")
        assert svc.status()["consumers"] == GROUPS
        after = {kind: [publish_ok(svc, kind, "kafka") for _ in range(3)] for kind in KINDS}
        wait_processed(svc, after)
        n_acked = len(publisher.kafka)
        wait_until(lambda: len(publisher.kafka) >= n_acked + 3, 30,
                   what="publisher acknowledged by Kafka after the restart")
    finally:
        publisher.stop()

    pending = set(burst + publisher.kafka) - done_before_restart
    print(f"publisher: {len(publisher.kafka)} acknowledged by Kafka, {len(publisher.sync)} processed "
          f"synchronously; {len(pending)} acknowledged notifications unprocessed when the broker "
          f"stopped; broker exit took {broker_exit_s:.1f}s")
    assert publisher.failures == [], publisher.failures[:5]
    # No event acknowledged as sent to Kafka is lost across the restart: all are in their topics
    # and all were processed by their groups.
    acked = {kind: before[kind] + after[kind] for kind in KINDS}
    acked["notification"] += burst + publisher.kafka
    for kind, ids in acked.items():
        stored = {v["eventId"] for v in topic_values(broker.bootstrap, KINDS[kind][0])}
        assert set(ids) <= stored, f"{KINDS[kind][0]} lost {sorted(set(ids) - stored)}"
    wait_processed(svc, acked)
    assert set(publisher.sync) <= processed_ids(svc, "paka-notification-processor", "sync")
    # Events processed before the restart were committed: not processed again afterwards.
    counts = {}
    for p in svc.processed():
        if p["via"] == "kafka":
            counts[p["eventId"]] = counts.get(p["eventId"], 0) + 1
    again = [i for ids in before.values() for i in ids if counts[i] != 1]
    assert again == [], f"processed more than once: {again}"
    assert svc.proc.poll() is None, svc.log()
