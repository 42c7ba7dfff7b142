"""Publishing lunch-bot events (the backend API's side).

In the API the broker is connected once at startup (FastAPI lifespan: `await broker.connect()`)
and the functions below are awaited after the deadline check:

    if datetime.now() > deadline:
        await publish_deadline_passed(cafe_id=123, date="2025-12-08")

From a shell (each line printed is one event the broker acknowledged):

    python -m src.kafka.producer deadline --date 2025-12-08 1 2 3
    python -m src.kafka.producer daily-task generate_recommendations
"""
import argparse
import asyncio
import json
from datetime import datetime, timezone

from faststream.kafka import KafkaBroker

from src.config import settings
from src.kafka.schemas import DAILY_TASKS_TOPIC, DEADLINES_TOPIC, DailyTaskEvent, DeadlinePassedEvent

# acks="all": an event is acknowledged only once it is durable, so a broker restart right after the
# acknowledgement loses nothing (aiokafka's default is acks=1).
broker = KafkaBroker(settings.KAFKA_BROKER_URL, acks="all")


async def publish_deadline_passed(cafe_id: int, date: str):
    event = DeadlinePassedEvent(cafe_id=cafe_id, date=date, timestamp=datetime.now(timezone.utc))
    # Keyed by cafe: all of one cafe's deadlines stay in order on one partition.
    return await broker.publish(event, topic=DEADLINES_TOPIC, key=str(cafe_id).encode())


async def publish_daily_task(task_type: str = "generate_recommendations"):
    event = DailyTaskEvent(type=task_type, timestamp=datetime.now(timezone.utc))
    return await broker.publish(event, topic=DAILY_TASKS_TOPIC)


async def main() -> None:
    parser = argparse.ArgumentParser(description="Publish lunch-bot events")
    sub = parser.add_subparsers(dest="command", required=True)
    deadline = sub.add_parser("deadline", help="deadline.passed for each cafe id")
    deadline.add_argument("--date", required=True, help="YYYY-MM-DD")
    deadline.add_argument("cafe_ids", nargs="+", type=int)
    task = sub.add_parser("daily-task", help="a DailyTaskEvent")
    task.add_argument("type", nargs="?", default="generate_recommendations")
    args = parser.parse_args()

    await broker.connect()
    try:
        if args.command == "deadline":
            for cafe_id in args.cafe_ids:
                meta = await publish_deadline_passed(cafe_id, args.date)
                print(json.dumps({"topic": meta.topic, "partition": meta.partition, "offset": meta.offset,
                                  "cafe_id": cafe_id, "date": args.date}), flush=True)
        else:
            meta = await publish_daily_task(args.type)
            print(json.dumps({"topic": meta.topic, "partition": meta.partition, "offset": meta.offset,
                              "type": args.type}), flush=True)
    finally:
        await broker.stop()


if __name__ == "__main__":
    asyncio.run(main())
