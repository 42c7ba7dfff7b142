"""The API's side: write a notification row, then tell the consumer through Kafka; or publish events.

In the API, one producer is created at startup and reused:

    producer = get_producer()
    notification_id = create_notification(producer, [42], "order.shipped", "Your order is on its way")
    publish(producer, "generic_topic", {"id": "evt-1", "kind": "audit"})

From a shell (each line printed is one message the broker acknowledged):

    python kafka_producer.py --notifications 3 --generic 3 --my 1 --tag demo
"""
import argparse
import json
import logging
import uuid

from kafka import KafkaProducer
from kafka.serializer import DefaultSerializer, JsonSerializer

from consumers.kafka_config import get_default_config
from database import SessionLocal, init_db

logger = logging.getLogger(__name__)


def get_producer() -> KafkaProducer:
    config = get_default_config()
    return KafkaProducer(
        bootstrap_servers=config.bootstrap_servers,
        api_version=config.api_version,
        # Acknowledged only once durable: survives a broker restart right after the send.
        acks="all",
        retries=10,
        # kafka-python 3.x takes Serializer objects (plain functions still work, deprecated).
        value_serializer=JsonSerializer(),
        key_serializer=DefaultSerializer(),
        request_timeout_ms=10000,
    )


def publish(producer: KafkaProducer, topic: str, value: dict, key: str | None = None, timeout_s: float = 30):
    """Sends and waits for the broker's acknowledgement; returns its RecordMetadata."""
    return producer.send(topic, value=value, key=key).get(timeout=timeout_s)


def create_notification(producer: KafkaProducer, users: list[int], event: str, message: str) -> tuple[int, object]:
    """Stores the notification (pending), then publishes it; the consumer delivers pending rows."""
    db = SessionLocal()
    try:
        cur = db.execute("INSERT INTO notifications (users, event, message) VALUES (?, ?, ?)",
                         (json.dumps(users), event, message))
        db.commit()
        notification_id = cur.lastrowid
    finally:
        db.close()
    meta = publish(producer, "notifications",
                   {"notification_id": notification_id, "user_id": users[0], "event": event, "content": message},
                   key=str(users[0]))
    return notification_id, meta


def main():
    parser = argparse.ArgumentParser(description="Publish sample messages to the three topics")
    parser.add_argument("--notifications", type=int, default=0, help="notifications to create")
    parser.add_argument("--generic", type=int, default=0, help="generic_topic events")
    parser.add_argument("--my", type=int, default=0, help="my_topic events")
    parser.add_argument("--tag", default=uuid.uuid4().hex[:8], help="prefix of the event ids")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    init_db()

    def ack(meta, **fields):
        print(json.dumps({"topic": meta.topic, "partition": meta.partition, "offset": meta.offset, **fields}),
              flush=True)

    producer = get_producer()
    try:
        # Interleaved, so that batches mix topics.
        for i in range(max(args.notifications, args.generic, args.my)):
            if i < args.notifications:
                nid, meta = create_notification(producer, [1000 + i], "demo.event", f"{args.tag} notification {i}")
                ack(meta, id=nid)
            if i < args.generic:
                eid = f"{args.tag}-g{i}"
                ack(publish(producer, "generic_topic", {"id": eid, "n": i}, key=eid), id=eid)
            if i < args.my:
                eid = f"{args.tag}-m{i}"
                ack(publish(producer, "my_topic", {"data": {"id": eid, "n": i}}, key=eid), id=eid)
    finally:
        producer.close()


if __name__ == "__main__":
    main()
