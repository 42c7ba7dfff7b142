"""Recommendations worker: batch jobs triggered by lunch-bot.daily-tasks.

    python -m workers.recommendations        (from backend/)

On `generate_recommendations` (published at 03:00 by the scheduler):
1. Query active users (>= 5 orders in the last 30 days)
2. For each user, collect order statistics and generate recommendations
3. Cache them (TTL 24 hours)

The Gemini call is replaced by a frequency count (the user's favourite dishes, and dishes popular
with everyone that the user has not tried), and Redis by the recommendations_cache table. Rerunning
a task overwrites each user's entry with the same content, so a redelivered event is harmless.
"""
import asyncio
import logging
from datetime import timedelta

from faststream import AckPolicy, FastStream
from faststream.kafka import KafkaBroker

from src import db
from src.config import settings
from src.kafka.schemas import DAILY_TASKS_TOPIC, DailyTaskEvent
from workers import logs

logs.setup("recommendations")
logger = logging.getLogger("recommendations")

broker = KafkaBroker(settings.KAFKA_BROKER_URL)
app = FastStream(broker)
conn = None


@app.on_startup
async def open_database() -> None:
    global conn
    conn = db.connect()
    db.init_db(conn)


def recommend(user_counts: dict[str, int], everyone_counts: dict[str, int], n: int = 3) -> dict:
    def top(counts):
        return [dish for dish, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    return {
        "favourites": top(user_counts)[:n],
        "try_next": [d for d in top(everyone_counts) if d not in user_counts][:n],
    }


async def generate_recommendations_batch(event: DailyTaskEvent) -> int:
    until = event.timestamp.date()
    users = db.active_users(conn, until)
    everyone = db.dish_counts(conn, None, until)
    expires_at = (event.timestamp + timedelta(seconds=settings.RECOMMENDATIONS_TTL_S)).isoformat()
    for user_id in users:
        try:
            payload = recommend(db.dish_counts(conn, user_id, until), everyone)
            payload["generated_for"] = until.isoformat()
            db.cache_recommendations(conn, user_id, payload, expires_at)
        except Exception:
            # One user's failure must not stop the batch.
            logger.exception("Recommendation failed", extra={"user_id": user_id})
        await asyncio.sleep(0)  # users are processed sequentially; let the consumer heartbeat
    logger.info("Recommendations generated", extra={"users": len(users), "date": until.isoformat()})
    return len(users)


@broker.subscriber(DAILY_TASKS_TOPIC, group_id="recommendations-worker",
                   auto_offset_reset="earliest", ack_policy=AckPolicy.ACK)
async def handle_daily_task(event: DailyTaskEvent) -> None:
    if event.type == "generate_recommendations":
        await generate_recommendations_batch(event)
    else:
        logger.warning("Unknown daily task, ignored", extra={"type": event.type})


if __name__ == "__main__":
    asyncio.run(app.run())
