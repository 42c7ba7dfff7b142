"""Reminder Scheduling Worker (group reminder-scheduler-cg, todo.tasks.events).

A task with a due date gets a reminder REMINDER_LEAD_MS before it: ReminderScheduled on
todo.reminders.events. A new due date reschedules (the old reminder is dismissed); completing or
deleting the task dismisses it. The reminder id is derived from (task, due date), so scheduling the
same reminder twice is the same reminder.
"""
from ..config import REMINDER_SCHEDULER_CG, TASKS_TOPIC
from ..publisher import derived_id
from ..store import now_ms
from ..worker import Service

SCHEMA = """
CREATE TABLE IF NOT EXISTS task_reminders (
    task_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    title TEXT NOT NULL,
    version INTEGER NOT NULL,
    due_date_ms INTEGER,
    reminder_id TEXT,          -- the active reminder, if any
    remind_at_ms INTEGER,
    closed INTEGER NOT NULL DEFAULT 0  -- completed or deleted
);
"""


class ReminderSchedulingWorker(Service):
    group_id = REMINDER_SCHEDULER_CG
    topics = (TASKS_TOPIC,)
    schema_sql = SCHEMA

    async def handle(self, ctx, event_type, event):
        db = ctx.db
        task_id = event["id"] if event_type == "TaskCreated" else event["task_id"]
        row = db.execute("SELECT * FROM task_reminders WHERE task_id = ?", (task_id,)).fetchone()
        if row is not None and event["version"] <= row["version"]:
            return  # stale or already applied under another event id
        if row is None:
            db.execute("INSERT INTO task_reminders (task_id, user_id, title, version) VALUES (?, ?, ?, ?)",
                       (task_id, event["user_id"], event.get("title") or "", event["version"]))
            row = db.execute("SELECT * FROM task_reminders WHERE task_id = ?", (task_id,)).fetchone()
        db.execute("UPDATE task_reminders SET version = ?, title = COALESCE(?, title) WHERE task_id = ?",
                   (event["version"], event.get("title"), task_id))
        title = event.get("title") or row["title"]

        if event_type == "TaskDeleted" or (event_type == "TaskUpdated" and event["completed"]):
            reason = "DELETED" if event_type == "TaskDeleted" else "COMPLETED"
            await self._dismiss(ctx, row, event, reason)
            db.execute("UPDATE task_reminders SET closed = 1, reminder_id = NULL WHERE task_id = ?", (task_id,))
            return
        due = event.get("due_date")
        if due is None or row["closed"] or due == row["due_date_ms"]:
            return
        if row["reminder_id"] is not None:
            await self._dismiss(ctx, row, event, "RESCHEDULED")
        reminder_id = derived_id("reminder", task_id, due)
        remind_at = due - self.settings.reminder_lead_ms
        await ctx.publish("ReminderScheduled", {
            "event_id": derived_id("reminder-scheduled", event["event_id"]),
            "reminder_id": reminder_id,
            "task_id": task_id,
            "user_id": event["user_id"],
            "title": title,
            "due_date": due,
            "remind_at": remind_at,
            "scheduled_at": now_ms(),
            "source_event_id": event["event_id"],
        })
        db.execute("UPDATE task_reminders SET due_date_ms = ?, reminder_id = ?, remind_at_ms = ? WHERE task_id = ?",
                   (due, reminder_id, remind_at, task_id))

    async def _dismiss(self, ctx, row, event, reason):
        if row["reminder_id"] is None:
            return
        await ctx.publish("ReminderDismissed", {
            "event_id": derived_id("reminder-dismissed", event["event_id"], row["reminder_id"]),
            "reminder_id": row["reminder_id"],
            "task_id": row["task_id"],
            "user_id": row["user_id"],
            "reason": reason,
            "dismissed_at": now_ms(),
            "source_event_id": event["event_id"],
        })
