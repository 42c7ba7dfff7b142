"""Stand-in for the lunch bot's PostgreSQL: the same tables in a SQLite file (DATABASE_PATH).

The workers only read orders and write outcomes, so swapping this for SQLAlchemy + asyncpg changes
no Kafka code. Every write is keyed (primary key or upsert) so that a redelivered event changes
nothing: Kafka delivers at least once.

    python -m src.db --demo     # create the tables and the seed's sample orders
"""
import argparse
import json
import sqlite3
from dataclasses import dataclass
from datetime import date as Date, timedelta

from src.config import settings

SCHEMA = """
CREATE TABLE IF NOT EXISTS cafes (
    id               INTEGER PRIMARY KEY,
    name             TEXT NOT NULL,
    telegram_chat_id INTEGER            -- NULL: the cafe has not linked its Telegram chat
);
CREATE TABLE IF NOT EXISTS users (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS orders (
    id          INTEGER PRIMARY KEY,
    cafe_id     INTEGER NOT NULL REFERENCES cafes(id),
    user_id     INTEGER NOT NULL REFERENCES users(id),
    date        TEXT NOT NULL,          -- YYYY-MM-DD, the day the lunch is delivered
    combo_name  TEXT NOT NULL,          -- e.g. "Салат + Суп + Основное блюдо"
    combo_price INTEGER NOT NULL,       -- roubles
    combo_items TEXT NOT NULL,          -- JSON [[dish, category], ...]
    extras      TEXT NOT NULL DEFAULT '[]',  -- JSON [[name, quantity, unit_price], ...]
    deliver_at  TEXT                    -- "12:30"
);
CREATE INDEX IF NOT EXISTS orders_cafe_date ON orders (cafe_id, date);
-- One row per (cafe, date): what the notifications worker did ("Failed notifications -> log to
-- PostgreSQL"); status 'sent' makes a redelivered deadline event a no-op.
CREATE TABLE IF NOT EXISTS cafe_notifications (
    cafe_id     INTEGER NOT NULL,
    date        TEXT NOT NULL,
    status      TEXT NOT NULL,          -- sent | failed | no_orders | no_chat
    attempts    INTEGER NOT NULL DEFAULT 0,
    error       TEXT,
    updated_at  TEXT NOT NULL DEFAULT (datetime('now')),
    PRIMARY KEY (cafe_id, date)
);
-- Stand-in for the Redis cache of recommendations (key per user, TTL 24 hours).
CREATE TABLE IF NOT EXISTS recommendations_cache (
    user_id     INTEGER PRIMARY KEY,
    payload     TEXT NOT NULL,          -- JSON
    expires_at  TEXT NOT NULL
);
"""


@dataclass
class Cafe:
    id: int
    name: str
    telegram_chat_id: int | None


@dataclass
class Order:
    id: int
    user_name: str
    combo_name: str
    combo_price: int
    combo_items: list[tuple[str, str]]
    extras: list[tuple[str, int, int]]
    deliver_at: str | None

    @property
    def total(self) -> int:
        return self.combo_price + sum(qty * price for _, qty, price in self.extras)


def connect(path: str | None = None) -> sqlite3.Connection:
    # The producer, both workers and an operator may open the file at once: WAL plus a busy timeout
    # instead of "database is locked".
    conn = sqlite3.connect(path or settings.DATABASE_PATH, timeout=30, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.row_factory = sqlite3.Row
    return conn


def init_db(conn: sqlite3.Connection) -> None:
    conn.executescript(SCHEMA)


def get_cafe(conn: sqlite3.Connection, cafe_id: int) -> Cafe | None:
    row = conn.execute("SELECT id, name, telegram_chat_id FROM cafes WHERE id = ?", (cafe_id,)).fetchone()
    return Cafe(row["id"], row["name"], row["telegram_chat_id"]) if row else None


def orders_for(conn: sqlite3.Connection, cafe_id: int, date: str) -> list[Order]:
    rows = conn.execute(
        """SELECT o.id, u.name AS user_name, o.combo_name, o.combo_price, o.combo_items, o.extras,
                  o.deliver_at
           FROM orders o JOIN users u ON u.id = o.user_id
           WHERE o.cafe_id = ? AND o.date = ?
           ORDER BY u.name, o.id""",
        (cafe_id, date),
    ).fetchall()
    return [
        Order(r["id"], r["user_name"], r["combo_name"], r["combo_price"],
              [tuple(i) for i in json.loads(r["combo_items"])],
              [tuple(e) for e in json.loads(r["extras"])], r["deliver_at"])
        for r in rows
    ]


def notification_status(conn: sqlite3.Connection, cafe_id: int, date: str) -> str | None:
    row = conn.execute("SELECT status FROM cafe_notifications WHERE cafe_id = ? AND date = ?",
                       (cafe_id, date)).fetchone()
    return row["status"] if row else None


def record_notification(conn: sqlite3.Connection, cafe_id: int, date: str, status: str,
                        attempts: int = 0, error: str | None = None) -> None:
    conn.execute(
        """INSERT INTO cafe_notifications (cafe_id, date, status, attempts, error)
           VALUES (?, ?, ?, ?, ?)
           ON CONFLICT (cafe_id, date) DO UPDATE SET status = excluded.status,
               attempts = cafe_notifications.attempts + excluded.attempts,
               error = excluded.error, updated_at = datetime('now')""",
        (cafe_id, date, status, attempts, error),
    )


def active_users(conn: sqlite3.Connection, until: Date, days: int = 30, min_orders: int = 5) -> list[int]:
    """Users with at least `min_orders` orders in the `days` days up to `until`."""
    since = until - timedelta(days=days)
    rows = conn.execute(
        """SELECT user_id FROM orders WHERE date > ? AND date <= ?
           GROUP BY user_id HAVING COUNT(*) >= ? ORDER BY user_id""",
        (since.isoformat(), until.isoformat(), min_orders),
    ).fetchall()
    return [r["user_id"] for r in rows]


def dish_counts(conn: sqlite3.Connection, user_id: int | None, until: Date, days: int = 30) -> dict[str, int]:
    """How often each dish was ordered in the window, by one user or (None) by everyone."""
    since = until - timedelta(days=days)
    sql = "SELECT combo_items FROM orders WHERE date > ? AND date <= ?"
    args: tuple = (since.isoformat(), until.isoformat())
    if user_id is not None:
        sql += " AND user_id = ?"
        args += (user_id,)
    counts: dict[str, int] = {}
    for (items,) in conn.execute(sql, args):
        for dish, _category in json.loads(items):
            counts[dish] = counts.get(dish, 0) + 1
    return counts


def cache_recommendations(conn: sqlite3.Connection, user_id: int, payload: dict, expires_at: str) -> None:
    conn.execute(
        """INSERT INTO recommendations_cache (user_id, payload, expires_at) VALUES (?, ?, ?)
           ON CONFLICT (user_id) DO UPDATE SET payload = excluded.payload, expires_at = excluded.expires_at""",
        (user_id, json.dumps(payload, ensure_ascii=False), expires_at),
    )


def add_cafe(conn, cafe_id: int, name: str, telegram_chat_id: int | None) -> None:
    conn.execute("INSERT OR REPLACE INTO cafes (id, name, telegram_chat_id) VALUES (?, ?, ?)",
                 (cafe_id, name, telegram_chat_id))


def add_user(conn, user_id: int, name: str) -> None:
    conn.execute("INSERT OR REPLACE INTO users (id, name) VALUES (?, ?)", (user_id, name))


def add_order(conn, cafe_id: int, user_id: int, date: str, combo_name: str, combo_price: int,
              combo_items: list, extras: list = (), deliver_at: str | None = None) -> int:
    cur = conn.execute(
        """INSERT INTO orders (cafe_id, user_id, date, combo_name, combo_price, combo_items, extras, deliver_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
        (cafe_id, user_id, date, combo_name, combo_price, json.dumps(list(combo_items), ensure_ascii=False),
         json.dumps(list(extras), ensure_ascii=False), deliver_at),
    )
    return cur.lastrowid


def load_demo(conn) -> None:
    """The seed's sample: Столовая №1 with Иван Петров's order for 2025-12-08."""
    add_cafe(conn, 1, "Столовая №1", 456789)
    add_user(conn, 1, "Иван Петров")
    add_user(conn, 2, "Анна Смирнова")
    add_order(conn, 1, 1, "2025-12-08", "Салат + Суп + Основное блюдо", 550,
              [["Салат с курицей", "салат"], ["Борщ с курицей", "суп"], ["Котлета с пюре", "основное"]],
              [["Фокачча с пряным маслом", 1, 50]], "12:30")
    add_order(conn, 1, 2, "2025-12-08", "Суп + Основное блюдо", 450,
              [["Борщ с курицей", "суп"], ["Плов", "основное"]], [], "13:00")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", action="store_true", help="also insert the sample cafe and orders")
    args = parser.parse_args()
    conn = connect()
    init_db(conn)
    if args.demo:
        load_demo(conn)
    print(f"initialised {settings.DATABASE_PATH}")
