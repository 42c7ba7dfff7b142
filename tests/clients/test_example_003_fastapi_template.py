"""examples/003-fastapi-template against Vltava: the template's kafka-python consumer (api_version
(2, 5, 0), group fastapi_template_group, batches of up to 25 within 5 s, routing by topic) started
before the broker, then fed by the template's producer (acks=all) across a broker restart.

Asserts: the consumer retries the connection with capped exponential backoff until the broker is
up; every acknowledged message reaches its topic's handler (notifications delivered once each,
generic_topic and my_topic events stored once each); batches never exceed 25 and fill up to 25
when messages are waiting; nothing acknowledged before or after the restart is lost.
"""
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys

import pytest

from conftest import REPO, wait_until

pytestmark = pytest.mark.timeout(90)

EXAMPLE = os.path.join(REPO, "examples", "003-fastapi-template")
BATCH_SIZE = 25
RETRY_BASE_S, RETRY_MAX_S = 0.25, 2.0


def read_jsonl(path):
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.endswith("\n")]


def produce(env, tag, notifications, generic, my):
    """Runs the template's producer (kafka-python, acks=all); returns the acknowledged messages."""
    r = subprocess.run([sys.executable, "kafka_producer.py", "--notifications", str(notifications),
                        "--generic", str(generic), "--my", str(my), "--tag", tag],
                       cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"producer failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    acked = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(acked) == notifications + generic + my, r.stdout
    return acked


def test_fastapi_template_consumer(broker_factory, procs, tmp_path):
    b = broker_factory("--default-partitions", "3", start=False)
    db_path = str(tmp_path / "app.sqlite3")
    outbox = str(tmp_path / "outbox.jsonl")
    batch_log = str(tmp_path / "batches.jsonl")
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=b.bootstrap, DATABASE_PATH=db_path,
               NOTIFICATIONS_OUTBOX=outbox, KAFKA_BATCH_LOG=batch_log,
               KAFKA_RETRY_BASE_S=str(RETRY_BASE_S), KAFKA_RETRY_MAX_S=str(RETRY_MAX_S),
               # Only Kafka messages trigger delivery during the test, not the 30 s schedule.
               NOTIFICATIONS_INTERVAL_S="3600", PYTHONUNBUFFERED="1")

    # 1. The consumer starts before the broker and backs off: 0.5, 1, 2, 2 s (capped).
    consumer = procs.start("scheduler", ["scheduler.py"], env)
    retry_waits = lambda: [float(w) for w in re.findall(r"Retrying in ([\d.]+) seconds", procs.log("scheduler"))]
    wait_until(lambda: len(retry_waits()) >= 4 or consumer.poll() is not None, 20, what="4 connection retries")
    assert consumer.poll() is None, procs.log("scheduler")
    waits = retry_waits()
    assert waits[:4] == [0.5, 1.0, 2.0, 2.0], waits

    b.start()
    wait_until(lambda: "Successfully created Kafka consumer" in procs.log("scheduler"), 20,
               what="consumer connected once the broker is up")

    # 2. Messages on all three topics, acknowledged (acks=all) before the restart.
    acked = produce(env, "a", notifications=30, generic=30, my=5)
    wait_until(lambda: read_jsonl(batch_log), 30, what="a first batch processed")

    # 3. Restart in the middle (SIGTERM, same port and data dir); more messages after it.
    b.restart()
    acked += produce(env, "b", notifications=20, generic=20, my=5)

    notification_ids = {m["id"] for m in acked if m["topic"] == "notifications"}
    generic_ids = {m["id"] for m in acked if m["topic"] == "generic_topic"}
    my_ids = {m["id"] for m in acked if m["topic"] == "my_topic"}
    assert (len(notification_ids), len(generic_ids), len(my_ids)) == (50, 50, 10)

    def stored(table):
        conn = sqlite3.connect(db_path, timeout=10)
        try:
            return {row[0]: row[1] for row in conn.execute(f"SELECT id, deliveries FROM {table}")}
        finally:
            conn.close()

    def all_done():
        delivered = {r["notification_id"] for r in read_jsonl(outbox)}
        return (notification_ids <= delivered and generic_ids <= set(stored("generic_events"))
                and my_ids <= set(stored("my_events")))
    wait_until(all_done, 60, interval_s=0.2, what="every acknowledged message handled")

    # Each topic reached its own handler, and each effect happened once (idempotent handlers;
    # `deliveries` > 1 would only mean a message was redelivered, which at-least-once allows).
    delivered = [r["notification_id"] for r in read_jsonl(outbox)]
    assert sorted(delivered) == sorted(notification_ids), "a notification was delivered twice or unasked"
    assert set(stored("generic_events")) == generic_ids
    assert set(stored("my_events")) == my_ids
    conn = sqlite3.connect(db_path, timeout=10)
    pending = conn.execute("SELECT COUNT(*) FROM notifications WHERE sent_status = 0").fetchone()[0]
    conn.close()
    assert pending == 0

    # Batches: never more than 25; full batches when a backlog was waiting; only the three topics.
    batches = read_jsonl(batch_log)
    sizes = [bt["size"] for bt in batches]
    assert all(1 <= s <= BATCH_SIZE for s in sizes), sizes
    assert BATCH_SIZE in sizes, sizes
    assert sum(sizes) >= len(acked), (sum(sizes), len(acked))
    seen_topics = set().union(*(bt["topics"] for bt in batches))
    assert seen_topics == {"notifications", "generic_topic", "my_topic"}, seen_topics
    assert consumer.poll() is None, "the consumer exited"
