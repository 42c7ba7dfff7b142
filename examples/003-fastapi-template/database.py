"""Stand-in for the template's SQLAlchemy `SessionLocal` (PostgreSQL): the same tables in SQLite.

`SessionLocal()` returns a sqlite3 connection; swapping it back for SQLAlchemy changes no Kafka code.
"""
import sqlite3

from core.config import get_settings

SCHEMA = """
CREATE TABLE IF NOT EXISTS notifications (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    users       TEXT NOT NULL,              -- JSON list of user ids
    event       TEXT NOT NULL,
    message     TEXT NOT NULL,
    sent_status INTEGER NOT NULL DEFAULT 0, -- 0 pending, 1 sent (or being sent)
    created_at  TEXT NOT NULL DEFAULT (datetime('now')),
    sent_at     TEXT
);
CREATE INDEX IF NOT EXISTS notifications_pending ON notifications (sent_status, created_at);
-- What the generic_topic and my_topic handlers store, keyed by the message's own id: a redelivered
-- message bumps `deliveries` and changes nothing else.
CREATE TABLE IF NOT EXISTS generic_events (
    id          TEXT PRIMARY KEY,
    payload     TEXT NOT NULL,
    deliveries  INTEGER NOT NULL DEFAULT 1,
    processed_at TEXT NOT NULL DEFAULT (datetime('now'))
);
CREATE TABLE IF NOT EXISTS my_events (
    id          TEXT PRIMARY KEY,
    data        TEXT NOT NULL,
    deliveries  INTEGER NOT NULL DEFAULT 1,
    processed_at TEXT NOT NULL DEFAULT (datetime('now'))
);
"""


def SessionLocal() -> sqlite3.Connection:  # noqa: N802 (named after the SQLAlchemy session factory)
    # The API, the producer and the consumer thread open the file at once: WAL and a busy timeout.
    conn = sqlite3.connect(get_settings().DATABASE_PATH, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.row_factory = sqlite3.Row
    return conn


def init_db() -> None:
    conn = SessionLocal()
    try:
        conn.executescript(SCHEMA)
    finally:
        conn.close()
