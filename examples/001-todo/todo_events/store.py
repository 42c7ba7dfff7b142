"""Each service's database: a SQLite file here, PostgreSQL in production.

Every service keeps the same two bookkeeping tables next to its own:
- processed_events: one row per event_id applied. A redelivered event (a retry, a rebalance, a
  restart before the offset commit, a producer that published twice) finds its row and is skipped:
  that is what makes the handlers idempotent. `seq` is the order events were applied in.
- dead_letters: events sent to the group's DLQ, by (topic, partition, offset), so that a redelivered
  poison event is not dead-lettered twice.
The row in processed_events is written in the same transaction as the handler's own writes.
"""
import contextlib
import os
import sqlite3
import time

BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS processed_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    "offset" INTEGER NOT NULL,
    record_key TEXT,
    entity_version INTEGER,
    processed_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS duplicate_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    "offset" INTEGER NOT NULL,
    seen_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    "offset" INTEGER NOT NULL,
    event_id TEXT,
    dlq_topic TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    error TEXT NOT NULL,
    dead_lettered_at_ms INTEGER NOT NULL,
    PRIMARY KEY (topic, partition, "offset")
);
"""


def now_ms():
    return time.time_ns() // 1_000_000


def db_path(state_dir, group_id):
    return os.path.join(state_dir, f"{group_id}.sqlite3")


def open_db(path, schema_sql=""):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    # Autocommit mode: transactions are explicit (see `transaction`), so that one can span the
    # awaits of a handler that publishes.
    db = sqlite3.connect(path, isolation_level=None)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode=WAL")  # dashboards and tests read while the service writes
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA busy_timeout=5000")
    db.executescript(BOOKKEEPING + schema_sql)
    return db


@contextlib.contextmanager
def transaction(db):
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def is_processed(db, event_id):
    return db.execute("SELECT 1 FROM processed_events WHERE event_id = ?", (event_id,)).fetchone() is not None


def mark_processed(db, event_id, event_type, msg, version):
    db.execute(
        'INSERT INTO processed_events (event_id, event_type, topic, partition, "offset", record_key, '
        "entity_version, processed_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (event_id, event_type, msg.topic, msg.partition, msg.offset,
         msg.key.decode() if msg.key is not None else None, version, now_ms()))


def record_duplicate(db, event_id, msg):
    db.execute('INSERT INTO duplicate_deliveries (event_id, topic, partition, "offset", seen_at_ms) '
               "VALUES (?, ?, ?, ?, ?)", (event_id, msg.topic, msg.partition, msg.offset, now_ms()))


def is_dead_lettered(db, msg):
    return db.execute('SELECT 1 FROM dead_letters WHERE topic = ? AND partition = ? AND "offset" = ?',
                      (msg.topic, msg.partition, msg.offset)).fetchone() is not None


def record_dead_letter(db, msg, event_id, dlq_topic, attempts, error):
    db.execute('INSERT OR IGNORE INTO dead_letters (topic, partition, "offset", event_id, dlq_topic, attempts, '
               "error, dead_lettered_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
               (msg.topic, msg.partition, msg.offset, event_id, dlq_topic, attempts, error, now_ms()))
