"""Reminder Triggering Worker (group reminder-trigger-cg, todo.reminders.events).

Keeps the schedule of reminders (persistent, so a restart loses none) from ReminderScheduled and
ReminderDismissed. When a reminder's remind_at is reached it notifies the user and publishes
ReminderTriggered to todo.reminders.events (which it reads back and ignores, like the audit log
does not). The notification and the event are keyed by the reminder id: a reminder fires once.
"""
from ..config import REMINDER_TRIGGER_CG, REMINDERS_TOPIC
from ..publisher import derived_id
from ..store import now_ms, transaction
from ..worker import Service

SCHEMA = """
CREATE TABLE IF NOT EXISTS reminders (
    reminder_id TEXT PRIMARY KEY,
    task_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    title TEXT NOT NULL,
    due_date_ms INTEGER NOT NULL,
    remind_at_ms INTEGER NOT NULL,
    status TEXT NOT NULL,      -- scheduled | triggered | dismissed
    status_at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS reminders_due ON reminders (status, remind_at_ms);
CREATE TABLE IF NOT EXISTS notifications (
    reminder_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    message TEXT NOT NULL,
    sent_at_ms INTEGER NOT NULL
);
"""


class ReminderTriggeringWorker(Service):
    group_id = REMINDER_TRIGGER_CG
    topics = (REMINDERS_TOPIC,)
    schema_sql = SCHEMA
    has_tick = True

    def entity_version(self, event_type, event):
        return None

    async def handle(self, ctx, event_type, event):
        if event_type == "ReminderScheduled":
            # INSERT OR IGNORE: a reminder already triggered or dismissed stays so.
            ctx.db.execute("INSERT OR IGNORE INTO reminders VALUES (?, ?, ?, ?, ?, ?, 'scheduled', ?)",
                           (event["reminder_id"], event["task_id"], event["user_id"], event["title"],
                            event["due_date"], event["remind_at"], now_ms()))
        elif event_type == "ReminderDismissed":
            ctx.db.execute("UPDATE reminders SET status = 'dismissed', status_at_ms = ? "
                           "WHERE reminder_id = ? AND status = 'scheduled'", (now_ms(), event["reminder_id"]))
        # ReminderTriggered: our own output; nothing to do.

    async def tick(self, runtime):
        async with runtime.db_lock:
            due = runtime.db.execute("SELECT * FROM reminders WHERE status = 'scheduled' AND remind_at_ms <= ? "
                                     "ORDER BY remind_at_ms LIMIT 100", (now_ms(),)).fetchall()
        for r in due:
            async with runtime.db_lock:
                with transaction(runtime.db):
                    current = runtime.db.execute("SELECT status FROM reminders WHERE reminder_id = ?",
                                                 (r["reminder_id"],)).fetchone()
                    if current["status"] != "scheduled":
                        continue  # dismissed meanwhile
                    await self.notify(runtime, r)
                    triggered_at = now_ms()
                    await runtime.publisher.publish("ReminderTriggered", {
                        "event_id": derived_id("reminder-triggered", r["reminder_id"]),
                        "reminder_id": r["reminder_id"],
                        "task_id": r["task_id"],
                        "user_id": r["user_id"],
                        "remind_at": r["remind_at_ms"],
                        "triggered_at": triggered_at,
                    })
                    runtime.db.execute("UPDATE reminders SET status = 'triggered', status_at_ms = ? "
                                       "WHERE reminder_id = ?", (triggered_at, r["reminder_id"]))

    async def notify(self, runtime, reminder):
        """Stands for the call to the Notification Service (push, e-mail)."""
        message = f"Reminder: '{reminder['title']}' is due soon"
        cur = runtime.db.execute("INSERT OR IGNORE INTO notifications VALUES (?, ?, ?, ?)",
                                 (reminder["reminder_id"], reminder["user_id"], message, now_ms()))
        if cur.rowcount:
            self.log.info("notify user %s: %s", reminder["user_id"], message)
