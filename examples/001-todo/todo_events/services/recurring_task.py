"""Recurring Task Worker (group recurring-task-cg, todo.tasks.events).

Keeps one recurrence schedule per recurring template (TaskCreated/TaskUpdated with
is_recurring_template) and, when an occurrence is due, creates the task instance by publishing a
TaskCreated to todo.tasks.events. Instance ids are derived from (template, occurrence): creating the
same occurrence twice yields the same task and event id.

A recurrence pattern it cannot parse fails the event: retried, then sent to
todo.recurring-task-cg.dlq for someone to fix the template.
"""
import calendar
import datetime
import json
import re

from ..config import RECURRING_TASK_CG, TASKS_TOPIC
from ..publisher import derived_id
from ..store import now_ms, transaction
from ..worker import Service

SCHEMA = """
CREATE TABLE IF NOT EXISTS recurrence_schedules (
    template_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT,
    priority TEXT,
    tags TEXT NOT NULL,
    pattern TEXT NOT NULL,
    next_run_at_ms INTEGER NOT NULL,
    version INTEGER NOT NULL
);
"""

_UNITS_MS = {"minute": 60_000, "hour": 3_600_000, "day": 86_400_000, "week": 7 * 86_400_000}
_NAMED = {"hourly": "every 1 hour", "daily": "every 1 day", "weekly": "every 1 week"}
_EVERY = re.compile(r"^every\s+(\d+)\s+(minute|hour|day|week)s?$")


class InvalidRecurrencePattern(ValueError):
    pass


def next_occurrence_ms(pattern, after_ms):
    """The occurrence following `after_ms` for 'hourly', 'daily', 'weekly', 'monthly' or
    'every N minutes|hours|days|weeks'."""
    p = (pattern or "").strip().lower()
    if p == "monthly":
        d = datetime.datetime.fromtimestamp(after_ms / 1000, datetime.timezone.utc)
        year, month = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
        d = d.replace(year=year, month=month, day=min(d.day, calendar.monthrange(year, month)[1]))
        return int(d.timestamp() * 1000)
    m = _EVERY.match(_NAMED.get(p, p))
    if not m or int(m.group(1)) == 0:
        raise InvalidRecurrencePattern(f"unsupported recurrence pattern {pattern!r}")
    return after_ms + int(m.group(1)) * _UNITS_MS[m.group(2)]


class RecurringTaskWorker(Service):
    group_id = RECURRING_TASK_CG
    topics = (TASKS_TOPIC,)
    schema_sql = SCHEMA
    has_tick = True

    async def handle(self, ctx, event_type, event):
        db = ctx.db
        if event_type == "TaskCreated":
            if not event["is_recurring_template"]:
                return
            next_run = next_occurrence_ms(event["recurrence_pattern"], event["created_at"])
            db.execute("INSERT OR REPLACE INTO recurrence_schedules VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (event["id"], event["user_id"], event["title"], event["description"], event["priority"],
                        json.dumps(event["tags"]), event["recurrence_pattern"], next_run, event["version"]))
            self.log.info("template %s: %r, first occurrence at %d", event["id"], event["recurrence_pattern"], next_run)
        elif event_type == "TaskUpdated":
            row = db.execute("SELECT * FROM recurrence_schedules WHERE template_id = ?",
                             (event["task_id"],)).fetchone()
            if row is not None and event["version"] <= row["version"]:
                return  # stale: a newer version is applied already
            if event["is_recurring_template"] is False or event["completed"]:
                db.execute("DELETE FROM recurrence_schedules WHERE template_id = ?", (event["task_id"],))
                return
            if row is None and not event["is_recurring_template"]:
                return
            prev = dict(row) if row is not None else {}
            pattern = event["recurrence_pattern"] or prev.get("pattern")
            next_run = prev.get("next_run_at_ms")
            if next_run is None or event["recurrence_pattern"] is not None:
                next_run = next_occurrence_ms(pattern, event["updated_at"])
            db.execute("INSERT OR REPLACE INTO recurrence_schedules VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", (
                event["task_id"], event["user_id"], event["title"] or prev.get("title") or "(recurring task)",
                event["description"] if event["description"] is not None else prev.get("description"),
                event["priority"] or prev.get("priority"),
                json.dumps(event["tags"]) if event["tags"] is not None else prev.get("tags", "[]"),
                pattern, next_run, event["version"]))
        elif event_type == "TaskDeleted":
            db.execute("DELETE FROM recurrence_schedules WHERE template_id = ?", (event["task_id"],))

    async def tick(self, runtime):
        """Creates the instances whose occurrence is due (one per template per tick, catching up)."""
        async with runtime.db_lock:
            due = runtime.db.execute("SELECT * FROM recurrence_schedules WHERE next_run_at_ms <= ? LIMIT 100",
                                     (now_ms(),)).fetchall()
        for row in due:
            occurrence = row["next_run_at_ms"]
            instance_id = derived_id("recurring-instance", row["template_id"], occurrence)
            async with runtime.db_lock:
                with transaction(runtime.db):
                    await runtime.publisher.publish("TaskCreated", {
                        "event_id": derived_id("task-created", instance_id),
                        "id": instance_id,
                        "user_id": row["user_id"],
                        "title": row["title"],
                        "description": row["description"],
                        "created_at": occurrence,
                        "due_date": None,
                        "priority": row["priority"],
                        "tags": json.loads(row["tags"]),
                        "is_recurring_template": False,
                        "recurrence_pattern": None,
                        "recurring_template_id": row["template_id"],
                        "version": 1,
                    })
                    runtime.db.execute("UPDATE recurrence_schedules SET next_run_at_ms = ? WHERE template_id = ? "
                                       "AND next_run_at_ms = ?",
                                       (next_occurrence_ms(row["pattern"], occurrence), row["template_id"], occurrence))
            self.log.info("template %s: created instance %s for occurrence %d", row["template_id"], instance_id,
                          occurrence)
