"""Notifications worker: after a cafe's order deadline, send the cafe its orders via Telegram.

    python -m workers.notifications          (from backend/; or: faststream run workers.notifications:app)

1. Receive `deadline.passed` from lunch-bot.deadlines
2. Query the cafe's orders for that date
3. Format the notification (one block per order, totals at the end)
4. Send it to the cafe's chat: at most 30 messages/s, network errors retried with exponential backoff
5. Log success or failure (and record it in the database)

Delivery is at least once: the offset is committed after the handler returns (AckPolicy.ACK), so an
event whose handling was interrupted is handled again; the `sent` row in cafe_notifications makes
the repeat a no-op. (A crash between Telegram accepting the message and that row being written
would send it twice: Telegram has no idempotency key.)
"""
import asyncio
import logging

from faststream import AckPolicy, FastStream
from faststream.kafka import KafkaBroker, Topic

from src import db
from src.config import settings
from src.kafka.schemas import DEADLINES_TOPIC, DeadlinePassedEvent
from workers import logs
from workers.telegram import (FakeTelegramBot, SlidingWindowRateLimiter, TelegramNetworkError,
                              parse_failures, send_with_retry)

logs.setup("notifications")
logger = logging.getLogger("notifications")

broker = KafkaBroker(settings.KAFKA_BROKER_URL)
app = FastStream(broker)

bot = FakeTelegramBot(settings.TELEGRAM_OUTBOX, parse_failures(settings.TELEGRAM_FAKE_FAILURES))
# One limiter per bot token: run one notifications worker per bot, or share the limit (e.g. Redis).
limiter = SlidingWindowRateLimiter(settings.TELEGRAM_RATE_LIMIT_PER_S, period_s=1.0)
conn = None

SEPARATOR = "━" * 21


def orders_word(n: int) -> str:
    """Russian plural of "заказ" for n: 1 заказ, 2 заказа, 5 заказов, 21 заказ, 12 заказов."""
    if n % 10 == 1 and n % 100 != 11:
        return "заказ"
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return "заказа"
    return "заказов"


def format_notification(cafe_name: str, date: str, orders: list[db.Order]) -> str:
    blocks = []
    for o in orders:
        lines = [f"👤 {o.user_name}:", f"  • {o.combo_name} ({o.combo_price}₽)"]
        lines += [f"    - {dish} ({category})" for dish, category in o.combo_items]
        lines += [f"  • {name} ×{qty} ({qty * price}₽)" for name, qty, price in o.extras]
        if o.deliver_at:
            lines.append(f"  📍 Доставить к {o.deliver_at}")
        blocks.append("\n".join(lines))
    total = sum(o.total for o in orders)
    return "\n".join([
        f"📋 {cafe_name} — Заказ на {date}",
        SEPARATOR,
        "",
        "\n\n".join(blocks),
        "",
        SEPARATOR,
        f"Итого: {len(orders)} {orders_word(len(orders))}, {total}₽",
    ])


@app.on_startup
async def open_database() -> None:
    global conn
    conn = db.connect()
    db.init_db(conn)


@broker.subscriber(
    # FastStream creates the topics it subscribes to, with 1 partition unless told otherwise. Three
    # let up to three workers share the events; each then has its own limiter, so give each
    # TELEGRAM_RATE_LIMIT_PER_S=10 to stay within the bot's 30/s.
    Topic(DEADLINES_TOPIC, num_partitions=3),
    group_id="notifications-worker",
    # A new group starts from the oldest event: deadlines published before the worker first ran
    # are still notified.
    auto_offset_reset="earliest",
    # Commit after the handler, not on receipt (FastStream's default for Kafka is ACK_FIRST, i.e.
    # auto-commit): a worker killed mid-send gets the event again instead of dropping it. An
    # unexpected exception is logged by FastStream and the event committed all the same
    # (NACK_ON_ERROR would redeliver it, forever if the error is permanent).
    ack_policy=AckPolicy.ACK,
)
async def handle_deadline_passed(event: DeadlinePassedEvent) -> None:
    ctx = {"cafe_id": event.cafe_id, "date": event.date}
    if db.notification_status(conn, event.cafe_id, event.date) == "sent":
        logger.info("Notification already sent, skipping redelivered event", extra=ctx)
        return
    cafe = db.get_cafe(conn, event.cafe_id)
    if cafe is None or cafe.telegram_chat_id is None:
        logger.error("Unknown cafe, or no linked Telegram chat", extra=ctx)
        db.record_notification(conn, event.cafe_id, event.date, "no_chat")
        return
    orders = db.orders_for(conn, event.cafe_id, event.date)
    if not orders:
        logger.info("No orders, nothing to send", extra=ctx)
        db.record_notification(conn, event.cafe_id, event.date, "no_orders")
        return

    text = format_notification(cafe.name, event.date, orders)
    try:
        attempts = await send_with_retry(
            bot, limiter, cafe.telegram_chat_id, text,
            max_attempts=settings.SEND_MAX_ATTEMPTS, base_s=settings.SEND_RETRY_BASE_S,
            max_s=settings.SEND_RETRY_MAX_S)
    except TelegramNetworkError as e:
        logger.error("Notification failed", extra={**ctx, "attempts": settings.SEND_MAX_ATTEMPTS, "error": str(e)})
        db.record_notification(conn, event.cafe_id, event.date, "failed", settings.SEND_MAX_ATTEMPTS, str(e))
        return
    db.record_notification(conn, event.cafe_id, event.date, "sent", attempts)
    logger.info("Notification sent", extra={**ctx, "orders_count": len(orders),
                                            "telegram_chat_id": cafe.telegram_chat_id, "attempts": attempts})


if __name__ == "__main__":
    asyncio.run(app.run())
