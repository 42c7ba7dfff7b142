"""examples/001-todo (seed 001, the Todo AI Chatbot's event-driven services) against Vltava.

The example runs as a user would run it: `python3 -m todo_events setup-topics`, the five consumer
services as separate processes (`worker <group>`), and the Chat API's publisher (`publish`, events as
JSON lines on stdin, one acknowledgement a line on stdout). The test then checks what the seed asks
for, through the broker (raw records, read with librdkafka), the Schema Registry (REST) and the
services' own databases (SQLite files in a temporary directory):
- the topics exist with their partitions and retention;
- fan-out: each of the five groups processes every event meant for it, exactly once;
- every record is Avro in Confluent's framing (magic byte 0 + schema id) under a registered subject;
- per-key order on todo.tasks.events, on the log and as each service applied the events;
- a poisoned event (a recurrence pattern nobody can parse) goes to todo.recurring-task-cg.dlq after
  its bounded retries with backoff, and only there, while the events behind it keep flowing;
- a duplicate publish and redeliveries are absorbed (handlers are idempotent by event_id);
- Vltava restarted (SIGTERM, same port and data dir) while events are published: no acknowledged
  event is lost, and the services carry on.
"""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import defaultdict

import pytest
import requests
from confluent_kafka.admin import AdminClient, ConfigResource
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from conftest import REPO, wait_until
from util import read_messages, watermarks

pytestmark = pytest.mark.timeout(120)

EXAMPLE = os.path.join(REPO, "examples", "001-todo")
sys.path.insert(0, EXAMPLE)
from todo_events.publisher import derived_id  # noqa: E402  (the ids the services derive)

TASKS, REMINDERS, BROADCAST = "todo.tasks.events", "todo.reminders.events", "todo.task_updates.broadcast"
PARTITIONS = {TASKS: 6, REMINDERS: 3, BROADCAST: 3}
RETENTION_MS = {TASKS: 7 * 86_400_000, REMINDERS: 3 * 86_400_000, BROADCAST: 86_400_000}
GROUPS = ("recurring-task-cg", "reminder-scheduler-cg", "reminder-trigger-cg", "task-broadcaster-cg", "audit-log-cg")
TASK_GROUPS = ("recurring-task-cg", "reminder-scheduler-cg", "task-broadcaster-cg")
SUBJECTS = {f"{TASKS}-com.todo.events.TaskCreated", f"{TASKS}-com.todo.events.TaskUpdated",
            f"{TASKS}-com.todo.events.TaskDeleted", f"{REMINDERS}-com.todo.events.ReminderScheduled",
            f"{REMINDERS}-com.todo.events.ReminderTriggered", f"{REMINDERS}-com.todo.events.ReminderDismissed",
            f"{BROADCAST}-com.todo.events.TaskChanged"}
MAX_RETRIES, BACKOFF_MS = 3, 100
REMINDER_LEAD_MS = 15 * 60_000
HOUR_MS = 3_600_000


def now_ms():
    return time.time_ns() // 1_000_000


class Scenario:
    """Builds the Chat API's events and the reminders the services must derive from them (the
    reminder scheduler's rules: one reminder per (task, due date), dismissed on reschedule,
    completion or deletion; a reminder inside the lead time fires at once)."""

    def __init__(self):
        self.users = [str(uuid.uuid4()) for _ in range(4)]
        self.tasks = {}
        self.scheduled, self.dismissed = set(), set()
        self.near_due = set()  # reminder ids that must fire

    def created(self, kind, due=None, recurring=False, pattern=None, title=None, created_at=None):
        task_id = str(uuid.uuid4())
        user = self.users[len(self.tasks) % len(self.users)]
        self.tasks[task_id] = {"user": user, "version": 1, "due": due, "closed": False, "kind": kind, "rid": None}
        ev = {"event_id": str(uuid.uuid4()), "id": task_id, "user_id": user, "title": title or f"task {kind}",
              "description": None, "created_at": created_at or now_ms(), "due_date": due, "priority": "Medium",
              "tags": ["t"], "is_recurring_template": recurring, "recurrence_pattern": pattern, "version": 1}
        if due is not None:
            self._schedule(task_id, due)
        return task_id, {"event_type": "TaskCreated", "event": ev}

    def updated(self, task_id, **changes):
        t = self.tasks[task_id]
        t["version"] += 1
        ev = {"event_id": str(uuid.uuid4()), "task_id": task_id, "user_id": t["user"], "version": t["version"],
              "updated_at": now_ms(), **changes}
        if changes.get("completed"):
            self._close(task_id)
        elif changes.get("due_date") is not None and not t["closed"] and changes["due_date"] != t["due"]:
            if t["rid"]:
                self.dismissed.add(t["rid"])
            self._schedule(task_id, changes["due_date"])
        return {"event_type": "TaskUpdated", "event": ev}

    def deleted(self, task_id):
        t = self.tasks[task_id]
        t["version"] += 1
        self._close(task_id)
        return {"event_type": "TaskDeleted", "event": {"event_id": str(uuid.uuid4()), "task_id": task_id,
                                                       "user_id": t["user"], "version": t["version"],
                                                       "deleted_at": now_ms()}}

    def _schedule(self, task_id, due):
        rid = derived_id("reminder", task_id, due)
        self.tasks[task_id].update(due=due, rid=rid)
        self.scheduled.add(rid)
        if due - REMINDER_LEAD_MS <= now_ms():
            self.near_due.add(rid)

    def _close(self, task_id):
        t = self.tasks[task_id]
        if t["rid"] and not t["closed"]:
            self.dismissed.add(t["rid"])
        t["closed"] = True
        t["rid"] = None

    # What happens to a task after its creation, by kind.
    FOLLOW_UPS = {
        0: [{"title": "renamed"}, {"tags": ["a", "b"]}],            # due within the lead: its reminder fires
        1: [{"title": "renamed"}, "reschedule", {"completed": True}],  # reminder dismissed twice
        2: [{"title": "renamed"}, {"completed": True}, "delete"],     # no due date, no reminder
        3: [{"tags": ["x"]}, "delete"],                                # deleted while its reminder is pending
    }

    def batch(self, n_tasks):
        """Events of n_tasks new tasks of the four kinds, interleaved as users would produce them:
        all creations, then every task's first change, and so on."""
        soon, later = now_ms() + 5 * 60_000, now_ms() + 48 * HOUR_MS
        plans = []
        for i in range(n_tasks):
            kind = i % 4
            task_id, created = self.created(kind, due={0: soon, 1: later, 2: None, 3: later}[kind])
            plans.append((task_id, [created] + self.FOLLOW_UPS[kind]))
        lines = []
        for depth in range(max(len(plan) for _, plan in plans)):
            for task_id, plan in plans:
                if depth >= len(plan):
                    continue
                step = plan[depth]
                if "event_type" in step:
                    lines.append(step)
                elif step == "delete":
                    lines.append(self.deleted(task_id))
                elif step == "reschedule":
                    lines.append(self.updated(task_id, due_date=later + HOUR_MS))
                else:
                    lines.append(self.updated(task_id, **step))
        return lines


def jsonl(lines):
    return "".join(json.dumps(x) + "\n" for x in lines)


def query(state_dir, group, sql, args=()):
    path = os.path.join(state_dir, f"{group}.sqlite3")
    if not os.path.exists(path):
        return []
    db = sqlite3.connect(path, timeout=5)
    try:
        return db.execute(sql, args).fetchall()
    except sqlite3.OperationalError:  # tables not created yet
        return []
    finally:
        db.close()


def processed(state_dir, group):
    return {r[0] for r in query(state_dir, group, "SELECT event_id FROM processed_events")}


def header(msg, name):
    return dict(msg.headers() or ()).get(name, b"").decode()


@pytest.fixture
def procs(request, tmp_path):
    """Subprocesses of the example; stopped by PID at teardown (logs printed if the test failed)."""
    started = []

    def spawn(name, args, **kw):
        log_path = tmp_path / f"{name}.log"
        log = open(log_path, "wb")
        p = subprocess.Popen([sys.executable, "-m", "todo_events", *args], cwd=EXAMPLE, stderr=log,
                             stdout=kw.pop("stdout", log), **kw)
        log.close()
        p.log_path = log_path
        p.name = name
        started.append(p)
        return p

    yield spawn
    for p in started:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in started:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        for p in started:
            print(f"--- {p.name} (exit {p.returncode}) ---\n{p.log_path.read_text(errors='replace')[-6000:]}")


def test_todo_services_on_vltava(broker_factory, procs, tmp_path):
    broker = broker_factory().wait_registry()
    state = str(tmp_path / "state")
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap, SCHEMA_REGISTRY_URL=broker.registry,
               TODO_STATE_DIR=state, PUBLISH_FALLBACK_PATH=str(tmp_path / "unpublished.jsonl"),
               CONSUMER_MAX_RETRIES=str(MAX_RETRIES), CONSUMER_RETRY_BACKOFF_MS=str(BACKOFF_MS),
               CONSUMER_RETRY_BACKOFF_MAX_MS="2000", CONSUMER_SESSION_TIMEOUT_MS="6000",
               CONSUMER_HEARTBEAT_INTERVAL_MS="1000", SCHEDULER_TICK_MS="200", PYTHONUNBUFFERED="1")

    # --- setup: topics with partitions and retention (twice: it must be re-runnable) -------------
    for _ in range(2):
        r = subprocess.run([sys.executable, "-m", "todo_events", "setup-topics"], cwd=EXAMPLE, env=env,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    md = admin.list_topics(timeout=10)
    for topic, n in PARTITIONS.items():
        assert len(md.topics[topic].partitions) == n, topic
    for g in GROUPS:
        assert f"todo.{g}.dlq" in md.topics
    futures = admin.describe_configs([ConfigResource("topic", t) for t in RETENTION_MS])
    for res, fut in futures.items():
        assert int(fut.result(10)["retention.ms"].value) == RETENTION_MS[res.name], res.name

    # --- the five services, one process each ------------------------------------------------------
    workers = {g: procs(g, ["worker", g], env=env) for g in GROUPS}

    def alive():
        for g, p in workers.items():
            assert p.poll() is None, f"{g} exited with {p.returncode}:\n{p.log_path.read_text()[-4000:]}"
        return True

    def publish(lines, name, interval_ms=0):
        """Starts the Chat API publisher on `lines`; returns the process and its ack file."""
        acks = tmp_path / f"{name}.acks"
        out = open(acks, "wb")
        p = procs(name, ["publish", "--interval-ms", str(interval_ms)], env=env, stdin=subprocess.PIPE, stdout=out)
        out.close()
        p.stdin.write(jsonl(lines).encode())
        p.stdin.close()
        return p, acks

    def read_acks(path):
        # Only whole lines: the publisher may be writing the next one.
        return [json.loads(line) for line in path.read_text().split("\n")[:-1] if line.strip()]

    # --- phase A: tasks of every kind, a poisoned template, a duplicate publish -------------------
    sc = Scenario()
    lines = sc.batch(24)
    _, daily = sc.created("recurring", recurring=True, pattern="daily", title="stand-up notes")
    # Created 90 minutes ago, hourly: one occurrence is due, so the recurring-task worker creates one
    # instance (a TaskCreated it publishes), and the next is 30 minutes away.
    hourly_created_at = now_ms() - 90 * 60_000
    hourly_id, hourly = sc.created("recurring", recurring=True, pattern="every 1 hour", title="water the plants",
                                   created_at=hourly_created_at)
    instance_id = derived_id("recurring-instance", hourly_id, hourly_created_at + HOUR_MS)
    instance_event_id = derived_id("task-created", instance_id)
    poison_task, poison = sc.created("recurring", recurring=True, pattern="every blue moon", title="poison")
    first_created = next(x for x in lines if x["event_type"] == "TaskCreated" and x["event"]["due_date"])
    dup_index = lines.index(first_created)
    # The Chat API publishes one event twice (a retry after a timeout): same event_id.
    lines.insert(dup_index + 1, first_created)
    # The poison's own update comes after it on its partition: it must not be held up.
    lines += [daily, hourly, poison, sc.updated(poison_task, title="poison, renamed"),
              sc.updated(daily["event"]["id"], title="stand-up notes, renamed")]
    p, acks_path = publish(lines, "publish-a")
    assert p.wait(60) == 0, p.log_path.read_text()[-4000:]
    acks = read_acks(acks_path)
    assert len(acks) == len(lines) and all("offset" in a for a in acks), acks
    task_ids = {x["event"]["event_id"] for x in lines} | {instance_event_id}
    poison_id = poison["event"]["event_id"]
    dup_id = first_created["event"]["event_id"]

    def task_groups_done(ids):
        alive()
        for g in TASK_GROUPS:
            want = ids - {poison_id} if g == "recurring-task-cg" else ids
            if not want <= processed(state, g):
                return False
        return ids <= processed(state, "audit-log-cg")

    wait_until(lambda: task_groups_done(task_ids), 60, 0.2, "the task events in every task group")

    def reminders_settled():
        alive()
        rows = dict(query(state, "reminder-trigger-cg", "SELECT reminder_id, status FROM reminders"))
        want = {rid: "triggered" if rid in sc.near_due else "dismissed" if rid in sc.dismissed else "scheduled"
                for rid in sc.scheduled}
        return rows == want

    wait_until(reminders_settled, 60, 0.2, "the reminders scheduled, dismissed and triggered")

    def check_poison_dlq():
        dlq = read_messages(broker.bootstrap, "todo.recurring-task-cg.dlq", 1, 1, timeout_s=20)
        assert len(dlq) == 1, [m.value() for m in dlq]
        m = dlq[0]
        ack = next(a for a in acks if a["event_id"] == poison_id)
        assert header(m, "dlq.original.topic") == TASKS
        assert (int(header(m, "dlq.original.partition")), int(header(m, "dlq.original.offset"))) == \
               (ack["partition"], ack["offset"])
        assert header(m, "dlq.consumer.group") == "recurring-task-cg"
        assert header(m, "dlq.error.class") == "InvalidRecurrencePattern"
        assert int(header(m, "dlq.attempts")) == MAX_RETRIES + 1
        # The retries waited 100 + 200 + 400 ms (exponential backoff) between the first and last failure.
        waited = int(header(m, "dlq.last.failure.ms")) - int(header(m, "dlq.first.failure.ms"))
        assert waited >= BACKOFF_MS * (2 ** MAX_RETRIES - 1), waited
        assert header(m, "event_id") == poison_id and m.key().decode() == poison_task
        assert m.value()[0] == 0  # the original Avro record, untouched
        # Only that group dead-lettered it; every other DLQ is empty.
        for g in GROUPS:
            if g != "recurring-task-cg":
                assert watermarks(broker.bootstrap, f"todo.{g}.dlq", 1)[0][1] == 0, g
        assert query(state, "recurring-task-cg", "SELECT event_id, attempts FROM dead_letters") == \
               [(poison_id, MAX_RETRIES + 1)]
        return m

    # Deterministic by now: the poison's update, behind it on its partition, was processed after it.
    dlq_record = check_poison_dlq()
    # The valid templates got their schedules, the poisoned one none; its update flowed behind it.
    templates = {r[0] for r in query(state, "recurring-task-cg", "SELECT template_id FROM recurrence_schedules")}
    assert templates == {daily["event"]["id"], hourly_id}
    assert lines[-2]["event"]["task_id"] == poison_task
    assert lines[-2]["event"]["event_id"] in processed(state, "recurring-task-cg")

    # Idempotent: the duplicate publish is on the log twice but applied once everywhere.
    assert sum(1 for a in acks if a["event_id"] == dup_id) == 2
    for g in TASK_GROUPS + ("audit-log-cg",):
        assert query(state, g, "SELECT count(*) FROM processed_events WHERE event_id = ?", (dup_id,)) == [(1,)], g
        assert query(state, g, "SELECT count(*) FROM duplicate_deliveries WHERE event_id = ?", (dup_id,))[0][0] >= 1, g
    assert query(state, "reminder-trigger-cg", "SELECT count(*) FROM notifications") == [(len(sc.near_due),)]

    # --- phase B: Vltava restarts (SIGTERM, same port and data dir) while events are published ---
    lines_b = sc.batch(16)
    p, acks_b_path = publish(lines_b, "publish-b", interval_ms=25)
    wait_until(lambda: len(read_acks(acks_b_path)) >= 10 or p.poll() is not None, 30, 0.05, "first acks of phase B")
    assert p.poll() is None, "phase B ended before the restart: make it longer"
    broker.restart()
    broker.wait_registry()
    assert p.wait(90) == 0, p.log_path.read_text()[-4000:]
    acks_b = read_acks(acks_b_path)
    assert len(acks_b) == len(lines_b) and all("offset" in a for a in acks_b), acks_b
    assert not os.path.exists(tmp_path / "unpublished.jsonl")
    task_ids |= {x["event"]["event_id"] for x in lines_b}
    wait_until(lambda: task_groups_done(task_ids), 90, 0.2, "every acknowledged task event after the restart")
    wait_until(reminders_settled, 60, 0.2, "the reminders after the restart")

    # --- the log: nothing acknowledged lost, Avro everywhere, per-key order -----------------------
    raw = {}
    for topic, n in PARTITIONS.items():
        expected = len(acks) + len(acks_b) if topic == TASKS else 1
        raw[topic] = read_messages(broker.bootstrap, topic, n, expected, timeout_s=30)
    at = {(m.partition(), m.offset()): m for m in raw[TASKS]}
    for a in acks + acks_b:
        m = at.get((a["partition"], a["offset"]))
        assert m is not None and header(m, "event_id") == a["event_id"], f"acknowledged event lost: {a}"
    poison_ack = next(a for a in acks if a["event_id"] == poison_id)
    assert dlq_record.value() == at[(poison_ack["partition"], poison_ack["offset"])].value()

    registry = requests.get(f"{broker.registry}/subjects", timeout=10).json()
    assert SUBJECTS <= set(registry), registry
    ids = {}
    for subject in SUBJECTS:
        for v in requests.get(f"{broker.registry}/subjects/{subject}/versions", timeout=10).json():
            ids[requests.get(f"{broker.registry}/subjects/{subject}/versions/{v}", timeout=10).json()["id"]] = subject
    sr = SchemaRegistryClient({"url": broker.registry})
    deser = AvroDeserializer(sr)
    decoded = {}
    for topic, msgs in raw.items():
        for m in msgs:
            v = m.value()
            assert v[0] == 0, f"{topic}: not Confluent-framed Avro: {v[:8]!r}"
            subject = ids.get(int.from_bytes(v[1:5], "big"))
            assert subject is not None and subject.startswith(topic + "-"), (topic, subject)
            assert subject.endswith("." + header(m, "event_type"))
            decoded[(topic, m.partition(), m.offset())] = deser(v, SerializationContext(topic, MessageField.VALUE))

    # Per-key order on todo.tasks.events: one partition per task, versions rising with the offset
    # (a re-published event, same event_id, may repeat; it is not a new version).
    seen_ids, last, part_of = set(), {}, {}
    for m in sorted(raw[TASKS], key=lambda m: (m.partition(), m.offset())):
        ev = decoded[(TASKS, m.partition(), m.offset())]
        key = m.key().decode()
        assert key == str(ev.get("id") or ev.get("task_id"))
        assert part_of.setdefault(key, m.partition()) == m.partition(), f"task {key} on two partitions"
        if ev["event_id"] in seen_ids:
            continue
        seen_ids.add(ev["event_id"])
        assert ev["version"] > last.get(key, 0), f"task {key}: version {ev['version']} after {last.get(key)}"
        last[key] = ev["version"]
    assert {str(i) for i in seen_ids} == task_ids
    instance = [d for (t, _, _), d in decoded.items() if t == TASKS and str(d["event_id"]) == instance_event_id]
    assert len(instance) == 1 and str(instance[0]["recurring_template_id"]) == hourly_id, instance
    # ... and as each service applied them.
    for g in TASK_GROUPS + ("audit-log-cg",):
        applied = defaultdict(list)
        for key, version in query(state, g, "SELECT record_key, entity_version FROM processed_events WHERE topic = ? "
                                            "ORDER BY seq", (TASKS,)):
            applied[key].append(version)
        for key, versions in applied.items():
            assert versions == sorted(set(versions)), f"{g} applied task {key} out of order: {versions}"

    # --- fan-out of the derived events, each applied once --------------------------------------------
    reminder_ids = {str(d["event_id"]) for (t, _, _), d in decoded.items() if t == REMINDERS}
    broadcast = [d for (t, _, _), d in decoded.items() if t == BROADCAST]
    # One TaskChanged per task event, whatever was redelivered around the restart.
    assert {str(d["source_event_id"]) for d in broadcast} == task_ids
    assert {str(d["event_id"]) for d in broadcast} == {derived_id("task-changed", i) for i in task_ids}
    kinds = defaultdict(set)
    for (t, _, _), d in decoded.items():
        if t == REMINDERS:
            kinds["scheduled" if "scheduled_at" in d else "triggered" if "triggered_at" in d else "dismissed"].add(
                str(d["reminder_id"]))
    assert kinds == {"scheduled": sc.scheduled, "triggered": sc.near_due, "dismissed": sc.dismissed}
    wait_until(lambda: alive() and reminder_ids <= processed(state, "reminder-trigger-cg"), 30, 0.2,
               "every reminder event in reminder-trigger-cg")
    everything = task_ids | reminder_ids | {str(d["event_id"]) for d in broadcast}
    wait_until(lambda: alive() and everything <= processed(state, "audit-log-cg"), 30, 0.2,
               "every event of the three topics in audit-log-cg")
    assert processed(state, "audit-log-cg") == everything
    assert query(state, "audit-log-cg", "SELECT count(*) FROM audit_log") == [(len(everything),)]
    for g in TASK_GROUPS:
        want = task_ids - {poison_id} if g == "recurring-task-cg" else task_ids
        assert processed(state, g) == want, g
    assert query(state, "reminder-trigger-cg", "SELECT count(*) FROM notifications") == [(len(sc.near_due),)]
    # Still exactly one dead letter, and nothing else failed anywhere.
    assert read_messages(broker.bootstrap, "todo.recurring-task-cg.dlq", 1, 1, timeout_s=10)[0].offset() == \
        dlq_record.offset()
    assert watermarks(broker.bootstrap, "todo.recurring-task-cg.dlq", 1)[0][1] == 1
    for g in GROUPS:
        if g != "recurring-task-cg":
            assert watermarks(broker.bootstrap, f"todo.{g}.dlq", 1)[0][1] == 0, g

    # The services stop cleanly on SIGTERM (as Kubernetes stops a pod).
    for g, p in workers.items():
        p.send_signal(signal.SIGTERM)
    for g, p in workers.items():
        assert p.wait(20) == 0, f"{g} exited with {p.returncode}"
