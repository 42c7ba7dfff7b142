"""Handler for generic_topic: stores each event once, keyed by its id."""
import json
import logging

from database import SessionLocal

logger = logging.getLogger(__name__)


async def process_generic_message(value: dict) -> None:
    event_id = value.get("id")
    if not event_id:
        logger.error("Missing id in generic topic message")
        return
    db = SessionLocal()
    try:
        db.execute(
            "INSERT INTO generic_events (id, payload) VALUES (?, ?) "
            "ON CONFLICT (id) DO UPDATE SET deliveries = deliveries + 1",
            (str(event_id), json.dumps(value, ensure_ascii=False)))
        db.commit()
    finally:
        db.close()
    logger.debug(f"Processed generic topic message {event_id}")
