"""Delivers pending notifications (rows of the notifications table).

Called for every message on the `notifications` topic and every NOTIFICATIONS_INTERVAL_S by the
scheduler, from two threads at once: each row is claimed with one conditional UPDATE before it is
delivered, so no notification is delivered twice however often this runs.
"""
import json
import logging
import time

from core.config import get_settings
from database import SessionLocal

logger = logging.getLogger(__name__)


def deliver(notification) -> None:
    """Stand-in for the real delivery (push, e-mail...): one JSON line in NOTIFICATIONS_OUTBOX."""
    record = {"ts": time.time(), "notification_id": notification["id"], "users": json.loads(notification["users"]),
              "event": notification["event"], "message": notification["message"]}
    with open(get_settings().NOTIFICATIONS_OUTBOX, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, ensure_ascii=False) + "\n")


async def process_notifications():
    """
    Process pending notifications.
    This is a generic implementation that can be customized based on your needs.
    """
    try:
        db = SessionLocal()
        try:
            # Get unsent notifications
            notifications = db.execute(
                "SELECT * FROM notifications WHERE sent_status = 0 ORDER BY created_at, id LIMIT 100"
            ).fetchall()

            if not notifications:
                return

            logger.info(f"Processing {len(notifications)} pending notifications")

            # Process each notification
            for notification in notifications:
                try:
                    # Claim it: only one caller turns 0 into 1.
                    claimed = db.execute(
                        "UPDATE notifications SET sent_status = 1, sent_at = datetime('now') "
                        "WHERE id = ? AND sent_status = 0", (notification["id"],)).rowcount
                    db.commit()
                    if not claimed:
                        continue
                    try:
                        deliver(notification)
                    except Exception:
                        # Not delivered: hand it back to the next run.
                        db.execute("UPDATE notifications SET sent_status = 0, sent_at = NULL WHERE id = ?",
                                   (notification["id"],))
                        db.commit()
                        raise
                    logger.info(
                        f"Sent notification {notification['id']} to users {notification['users']}: "
                        f"{notification['event']} - {notification['message']}"
                    )
                except Exception as e:
                    logger.error(f"Error processing notification {notification['id']}: {str(e)}")
                    db.rollback()
                    continue

            logger.info("Notification processing completed")

        except Exception as e:
            logger.error(f"Error in notification processing: {str(e)}")
            db.rollback()
        finally:
            db.close()
    except Exception as e:
        logger.error(f"Critical error in notification processing: {str(e)}")
