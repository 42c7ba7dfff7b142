"""The "Adding a new Kafka consumer" example: my_topic, messages {"data": {"id": ..., ...}}."""
import json
import logging

from database import SessionLocal

logger = logging.getLogger(__name__)


async def process_my_messages(data):
    """Process my messages"""
    try:
        # Keyed by the message's id: handling a redelivered message again changes nothing.
        db = SessionLocal()
        try:
            db.execute(
                "INSERT INTO my_events (id, data) VALUES (?, ?) "
                "ON CONFLICT (id) DO UPDATE SET deliveries = deliveries + 1",
                (str(data["id"]), json.dumps(data, ensure_ascii=False)))
            db.commit()
        finally:
            db.close()
        logger.info(f"Processing my message: {data}")
    except Exception as e:
        logger.error(f"Error processing my message: {str(e)}")
