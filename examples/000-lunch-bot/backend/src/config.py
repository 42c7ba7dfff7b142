"""Settings from the environment (pydantic-settings), as the lunch-bot backend reads them."""
from pydantic_settings import BaseSettings


class Settings(BaseSettings):
    # Kafka: localhost:9092 from the host, kafka:29092 inside the compose network.
    KAFKA_BROKER_URL: str = "localhost:9092"

    # Stand-in for DATABASE_URL (PostgreSQL in production): a SQLite file with the same tables.
    DATABASE_PATH: str = "lunch_bot.sqlite3"

    # Stand-in for the Telegram Bot API: every sendMessage call becomes one JSON line here.
    TELEGRAM_OUTBOX: str = "telegram_outbox.jsonl"
    # Fault injection for the stand-in: "chat_id:count,..." makes the first `count` calls to that
    # chat fail with a network error (to see the retries).
    TELEGRAM_FAKE_FAILURES: str = ""
    # Telegram allows about 30 messages per second to different chats per bot.
    TELEGRAM_RATE_LIMIT_PER_S: int = 30

    # Network errors: retry with exponential backoff, SEND_RETRY_BASE_S * 2^(attempt-1) capped at
    # SEND_RETRY_MAX_S, at most SEND_MAX_ATTEMPTS calls in all.
    SEND_MAX_ATTEMPTS: int = 5
    SEND_RETRY_BASE_S: float = 1.0
    SEND_RETRY_MAX_S: float = 30.0

    # Recommendations cache (Redis in production, TTL 24 hours).
    RECOMMENDATIONS_TTL_S: int = 24 * 3600


settings = Settings()
