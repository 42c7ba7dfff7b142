"""The producer side of the Chat API (FastAPI backend): after its database commit, an endpoint builds
the task event and publishes it without blocking the event loop.

    publisher = await TaskEvents.connect(Settings())      # at application start-up
    ...
    async def create_task(body, user):                      # a FastAPI endpoint
        task = await tasks_repo.insert(body, user)          # the DB transaction commits first
        await publisher.task_created(task)                  # then the event

The web framework is left out of this example; `python3 -m todo_events demo` drives the same calls.
"""
import uuid

from .publisher import EventPublisher
from .store import now_ms


class TaskEvents:
    def __init__(self, settings, client_id="chat-api"):
        self.publisher = EventPublisher(settings, client_id=client_id, fallback_path=settings.publish_fallback_path)

    @classmethod
    async def connect(cls, settings, client_id="chat-api"):
        self = cls(settings, client_id)
        await self.publisher.start()
        return self

    async def close(self):
        await self.publisher.stop()

    async def publish(self, event_type, event):
        """Publishes an event given as a dict in its Avro shape; returns (event, RecordMetadata)."""
        md = await self.publisher.publish(event_type, event)
        return event, md

    async def task_created(self, task_id, user_id, title, *, description=None, due_date=None, priority=None,
                           tags=(), is_recurring_template=False, recurrence_pattern=None, created_at=None):
        return await self.publish("TaskCreated", {
            "event_id": str(uuid.uuid4()),
            "id": str(task_id),
            "user_id": str(user_id),
            "title": title,
            "description": description,
            "created_at": created_at or now_ms(),
            "due_date": due_date,
            "priority": priority,
            "tags": list(tags),
            "is_recurring_template": is_recurring_template,
            "recurrence_pattern": recurrence_pattern,
            "recurring_template_id": None,
            "version": 1,
        })

    async def task_updated(self, task_id, user_id, version, **changes):
        """`changes`: any of title, description, due_date, priority, tags, completed,
        is_recurring_template, recurrence_pattern; the others are sent as null (unchanged)."""
        event = {"event_id": str(uuid.uuid4()), "task_id": str(task_id), "user_id": str(user_id),
                 "version": version, "updated_at": now_ms()}
        for name in ("title", "description", "due_date", "priority", "tags", "completed", "is_recurring_template",
                     "recurrence_pattern"):
            event[name] = changes.pop(name, None)
        if changes:
            raise TypeError(f"unknown task fields: {sorted(changes)}")
        return await self.publish("TaskUpdated", event)

    async def task_deleted(self, task_id, user_id, version):
        return await self.publish("TaskDeleted", {"event_id": str(uuid.uuid4()), "task_id": str(task_id),
                                                  "user_id": str(user_id), "version": version,
                                                  "deleted_at": now_ms()})
