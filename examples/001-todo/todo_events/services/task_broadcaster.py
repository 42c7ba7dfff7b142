"""Task Update Broadcaster (group task-broadcaster-cg, todo.tasks.events).

Keeps each task's current state and publishes it after every change as TaskChanged on
todo.task_updates.broadcast, keyed by user_id so that one user's UI sees their changes in order.
"""
import json

from ..config import TASK_BROADCASTER_CG, TASKS_TOPIC
from ..publisher import derived_id
from ..worker import Service

SCHEMA = """
CREATE TABLE IF NOT EXISTS task_snapshots (
    task_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    title TEXT,
    completed INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    due_date_ms INTEGER,
    tags TEXT NOT NULL DEFAULT '[]',
    version INTEGER NOT NULL
);
"""


class TaskUpdateBroadcaster(Service):
    group_id = TASK_BROADCASTER_CG
    topics = (TASKS_TOPIC,)
    schema_sql = SCHEMA

    async def handle(self, ctx, event_type, event):
        db = ctx.db
        task_id = event["id"] if event_type == "TaskCreated" else event["task_id"]
        row = db.execute("SELECT * FROM task_snapshots WHERE task_id = ?", (task_id,)).fetchone()
        if row is not None and event["version"] <= row["version"]:
            return  # stale: the UI already has a newer state
        snap = dict(row) if row is not None else {"task_id": task_id, "user_id": event["user_id"], "title": None,
                                                  "completed": 0, "deleted": 0, "due_date_ms": None, "tags": "[]"}
        snap["version"] = event["version"]
        if event_type == "TaskCreated":
            change = "CREATED"
            snap.update(title=event["title"], due_date_ms=event["due_date"], tags=json.dumps(event["tags"]))
        elif event_type == "TaskUpdated":
            change = "COMPLETED" if event["completed"] and not snap["completed"] else "UPDATED"
            if event["title"] is not None:
                snap["title"] = event["title"]
            if event["due_date"] is not None:
                snap["due_date_ms"] = event["due_date"]
            if event["tags"] is not None:
                snap["tags"] = json.dumps(event["tags"])
            if event["completed"] is not None:
                snap["completed"] = int(event["completed"])
        else:
            change = "DELETED"
            snap["deleted"] = 1
        db.execute("INSERT OR REPLACE INTO task_snapshots (task_id, user_id, title, completed, deleted, due_date_ms, "
                   "tags, version) VALUES (:task_id, :user_id, :title, :completed, :deleted, :due_date_ms, :tags, "
                   ":version)", snap)
        await ctx.publish("TaskChanged", {
            "event_id": derived_id("task-changed", event["event_id"]),
            "task_id": task_id,
            "user_id": snap["user_id"],
            "change_type": change,
            "version": snap["version"],
            "title": snap["title"],
            "completed": bool(snap["completed"]),
            "due_date": snap["due_date_ms"],
            "tags": json.loads(snap["tags"]),
            "changed_at": event.get("created_at") or event.get("updated_at") or event.get("deleted_at"),
            "source_event_id": event["event_id"],
        })
