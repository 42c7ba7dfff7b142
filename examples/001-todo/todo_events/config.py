"""Settings, from the environment (a Kubernetes ConfigMap in production), and the topic map.

Every duration carries its unit in its name. Defaults suit a laptop running `vltava serve`.
"""
import os
from dataclasses import dataclass, field

DAY_MS = 24 * 60 * 60 * 1000

# Topic naming convention: {project_name}.{domain_area}.{event_type}
TASKS_TOPIC = "todo.tasks.events"
REMINDERS_TOPIC = "todo.reminders.events"
BROADCAST_TOPIC = "todo.task_updates.broadcast"

# Consumer groups, one per service (each its own Deployment in production).
RECURRING_TASK_CG = "recurring-task-cg"
REMINDER_SCHEDULER_CG = "reminder-scheduler-cg"
REMINDER_TRIGGER_CG = "reminder-trigger-cg"
TASK_BROADCASTER_CG = "task-broadcaster-cg"
AUDIT_LOG_CG = "audit-log-cg"
CONSUMER_GROUPS = (RECURRING_TASK_CG, REMINDER_SCHEDULER_CG, REMINDER_TRIGGER_CG, TASK_BROADCASTER_CG,
                   AUDIT_LOG_CG)


def group_dlq_topic(group_id):
    """Where a consumer group puts the events it could not process after its retries."""
    return f"todo.{group_id}.dlq"


def topic_dlq_topic(topic):
    """Where a producer puts what it could not serialize for `topic` (schema mismatch)."""
    return f"{topic}.dlq"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    retention_ms: int

    def configs(self):
        return {"retention.ms": str(self.retention_ms), "cleanup.policy": "delete"}


DLQ_RETENTION_MS = 30 * DAY_MS
DLQ_PARTITIONS = 1  # low volume; one partition keeps failures in the order they happened

TOPICS = (
    TopicSpec(TASKS_TOPIC, 6, 7 * DAY_MS),        # key: task_id
    TopicSpec(REMINDERS_TOPIC, 3, 3 * DAY_MS),    # key: reminder_id
    TopicSpec(BROADCAST_TOPIC, 3, 1 * DAY_MS),    # key: user_id
) + tuple(TopicSpec(topic_dlq_topic(t), DLQ_PARTITIONS, DLQ_RETENTION_MS)
          for t in (TASKS_TOPIC, REMINDERS_TOPIC, BROADCAST_TOPIC)) \
  + tuple(TopicSpec(group_dlq_topic(g), DLQ_PARTITIONS, DLQ_RETENTION_MS) for g in CONSUMER_GROUPS)

# Which event types go to which topic, and the field that is the record key.
EVENT_TOPICS = {
    "TaskCreated": (TASKS_TOPIC, "id"),
    "TaskUpdated": (TASKS_TOPIC, "task_id"),
    "TaskDeleted": (TASKS_TOPIC, "task_id"),
    "ReminderScheduled": (REMINDERS_TOPIC, "reminder_id"),
    "ReminderTriggered": (REMINDERS_TOPIC, "reminder_id"),
    "ReminderDismissed": (REMINDERS_TOPIC, "reminder_id"),
    "TaskChanged": (BROADCAST_TOPIC, "user_id"),
}
SCHEMA_NAMESPACE = "com.todo.events"


def _env_int(name, default):
    return int(os.environ.get(name, default))


@dataclass(frozen=True)
class Settings:
    bootstrap_servers: str = field(default_factory=lambda: os.environ.get("KAFKA_BOOTSTRAP_SERVERS",
                                                                          "localhost:9092"))
    schema_registry_url: str = field(default_factory=lambda: os.environ.get("SCHEMA_REGISTRY_URL",
                                                                            "http://localhost:8081"))
    # 3 in the production cluster; a single `vltava serve` node can only hold 1 replica.
    replication_factor: int = field(default_factory=lambda: _env_int("TOPIC_REPLICATION_FACTOR", 1))
    # Processing retries of one event before it goes to the group's DLQ (attempts = retries + 1).
    max_retries: int = field(default_factory=lambda: _env_int("CONSUMER_MAX_RETRIES", 3))
    retry_backoff_ms: int = field(default_factory=lambda: _env_int("CONSUMER_RETRY_BACKOFF_MS", 500))
    retry_backoff_max_ms: int = field(default_factory=lambda: _env_int("CONSUMER_RETRY_BACKOFF_MAX_MS", 30_000))
    # Publishing: attempts on top of aiokafka's own retries before giving up on an event.
    publish_max_retries: int = field(default_factory=lambda: _env_int("PUBLISH_MAX_RETRIES", 6))
    publish_backoff_ms: int = field(default_factory=lambda: _env_int("PUBLISH_RETRY_BACKOFF_MS", 250))
    publish_backoff_max_ms: int = field(default_factory=lambda: _env_int("PUBLISH_RETRY_BACKOFF_MAX_MS", 8_000))
    # Where the Chat API writes events it could not publish, for out-of-band recovery.
    publish_fallback_path: str = field(default_factory=lambda: os.environ.get(
        "PUBLISH_FALLBACK_PATH", "./todo-state/unpublished-events.jsonl"))
    # The services' databases (SQLite files here; PostgreSQL in production).
    state_dir: str = field(default_factory=lambda: os.environ.get("TODO_STATE_DIR", "./todo-state"))
    # A reminder fires this long before the task is due.
    reminder_lead_ms: int = field(default_factory=lambda: _env_int("REMINDER_LEAD_MS", 15 * 60 * 1000))
    # How often the reminder trigger and the recurrence scheduler look for due work.
    scheduler_tick_ms: int = field(default_factory=lambda: _env_int("SCHEDULER_TICK_MS", 500))
    session_timeout_ms: int = field(default_factory=lambda: _env_int("CONSUMER_SESSION_TIMEOUT_MS", 10_000))
    heartbeat_interval_ms: int = field(default_factory=lambda: _env_int("CONSUMER_HEARTBEAT_INTERVAL_MS", 3_000))
    # The most records one poll returns (each is processed, then its offset committed).
    max_poll_records: int = field(default_factory=lambda: _env_int("CONSUMER_MAX_POLL_RECORDS", 100))


def backoff_ms(attempt, base_ms, max_ms):
    """Exponential backoff: base, 2*base, 4*base, ... capped at max_ms (attempt counts from 0)."""
    return min(max_ms, base_ms * (2 ** attempt))
