"""Application settings from the environment."""
import os
from dataclasses import dataclass, field
from functools import lru_cache


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


@dataclass(frozen=True)
class Settings:
    # host:port[,host:port...]; empty means "not configured" (the consumer falls back to localhost:9092).
    KAFKA_BOOTSTRAP_SERVERS: str = field(default_factory=lambda: _env("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092"))
    KAFKA_ENABLED: bool = field(default_factory=lambda: _env("KAFKA_ENABLED", "true").lower() == "true")
    # Connection retries: min(KAFKA_RETRY_BASE_S * 2^n, KAFKA_RETRY_MAX_S) between attempts;
    # KAFKA_MAX_RETRIES=0 retries for ever (a worker started before the broker waits for it).
    KAFKA_RETRY_BASE_S: float = field(default_factory=lambda: float(_env("KAFKA_RETRY_BASE_S", "1")))
    KAFKA_RETRY_MAX_S: float = field(default_factory=lambda: float(_env("KAFKA_RETRY_MAX_S", "30")))
    KAFKA_MAX_RETRIES: int = field(default_factory=lambda: int(_env("KAFKA_MAX_RETRIES", "0")))
    # Optional: one JSON line per processed batch (size, topics), to watch the batching.
    KAFKA_BATCH_LOG: str = field(default_factory=lambda: _env("KAFKA_BATCH_LOG", ""))

    # Stand-in for DATABASE_URL (PostgreSQL + SQLAlchemy in the template): a SQLite file.
    DATABASE_PATH: str = field(default_factory=lambda: _env("DATABASE_PATH", "fastapi_template.sqlite3"))
    # Stand-in for notification delivery (push, e-mail...): one JSON line per notification sent.
    NOTIFICATIONS_OUTBOX: str = field(default_factory=lambda: _env("NOTIFICATIONS_OUTBOX", "notifications_outbox.jsonl"))
    NOTIFICATIONS_INTERVAL_S: int = field(default_factory=lambda: int(_env("NOTIFICATIONS_INTERVAL_S", "30")))

    def kafka_server(self) -> str:
        return self.KAFKA_BOOTSTRAP_SERVERS.strip()


@lru_cache
def get_settings() -> Settings:
    return Settings()
