"""Audit Logging Service (group audit-log-cg): every event of the three topics, once, in the audit
store (a table here; a dedicated audit database or log storage in production)."""
import json

from ..config import AUDIT_LOG_CG, BROADCAST_TOPIC, REMINDERS_TOPIC, TASKS_TOPIC
from ..store import now_ms
from ..worker import Service

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_log (
    event_id TEXT PRIMARY KEY,
    event_type TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    "offset" INTEGER NOT NULL,
    record_key TEXT,
    producer TEXT,
    payload TEXT NOT NULL,
    recorded_at_ms INTEGER NOT NULL
);
"""


class AuditLogService(Service):
    group_id = AUDIT_LOG_CG
    topics = (TASKS_TOPIC, REMINDERS_TOPIC, BROADCAST_TOPIC)
    schema_sql = SCHEMA

    async def handle(self, ctx, event_type, event):
        msg = ctx.msg
        producer = dict(msg.headers or ()).get("producer")
        ctx.db.execute('INSERT INTO audit_log (event_id, event_type, topic, partition, "offset", record_key, producer, '
                       "payload, recorded_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (ctx.event_id, event_type, msg.topic, msg.partition, msg.offset,
                        msg.key.decode() if msg.key is not None else None,
                        producer.decode() if producer else None, json.dumps(event, sort_keys=True), now_ms()))
