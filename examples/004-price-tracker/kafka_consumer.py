"""Kafka consumers of the Keeper price tracker (src/services/kafka_consumer.py in the app).

PriceUpdateConsumer  group `keeper-consumer-group`, topic `price-updates`:
    1. reads a price update
    2. skips it unless the ASIN is a watched product
    3. stores the price in price_history and as the product's current price
    4. current_price <= target_price * 1.01  ->  a row in price_alerts
DealUpdateConsumer   group `keeper-consumer-group-deals`, topic `deal-updates`:
    record_deal_price(): stores the price in price_history (+ the deal in `deals`) and creates
    or refreshes the watched product

auto_offset_reset="earliest", enable_auto_commit=True: at-least-once. A record redelivered after
a crash or a rebalance is recognised by its (topic, partition, offset) and not stored twice. If the
database is down, the consumer waits 5 s and retries the same record: no event is dropped.

    export KAFKA_BOOTSTRAP_SERVERS=localhost:9092
    export DATABASE_URL=postgresql://keeper:keeper@localhost:5432/keeper
    python kafka_consumer.py            # both consumers in one process
    python kafka_consumer.py prices     # only the price consumer (deals: only the deal consumer)

SIGTERM / Ctrl-C stops cleanly: the record being processed is finished, offsets are committed.
"""
import asyncio
import json
import logging
import os
import signal
import sys
from datetime import datetime
from decimal import Decimal
from typing import Optional

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaConnectionError

logger = logging.getLogger("keeper.kafka_consumer")

# src/config.py of the app (pydantic settings: the same names as environment variables).
KAFKA_BOOTSTRAP_SERVERS = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092")
KAFKA_TOPIC_PRICES = os.environ.get("KAFKA_TOPIC_PRICES", "price-updates")
KAFKA_TOPIC_DEALS = os.environ.get("KAFKA_TOPIC_DEALS", "deal-updates")
KAFKA_CONSUMER_GROUP = os.environ.get("KAFKA_CONSUMER_GROUP", "keeper-consumer-group")
DATABASE_URL = os.environ.get("DATABASE_URL", "postgresql://keeper:keeper@localhost:5432/keeper")
RETRY_SECONDS = float(os.environ.get("KEEPER_RETRY_SECONDS", "5"))

ALERT_MARGIN = 1.01  # alert when the price is within 1 % of the target (or below it)


def _dsn(url: str) -> str:
    # The app's SQLAlchemy URL is postgresql+asyncpg://...; asyncpg wants postgresql://...
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def _money(value) -> Optional[Decimal]:
    return None if value is None else Decimal(str(value))


def _event_time(value) -> Optional[datetime]:
    if not value:
        return None
    try:
        ts = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return ts.replace(tzinfo=None) if ts.tzinfo else ts


def _json_or_none(raw: bytes):
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None  # logged and skipped by the consumer


def should_alert(current_price, target_price) -> bool:
    return target_price is not None and current_price <= target_price * ALERT_MARGIN


class _Consumer:
    """The consume loop the app's two consumers share."""
    topic: str
    group_id: str

    def __init__(self, db_url: str = DATABASE_URL, bootstrap_servers: str = KAFKA_BOOTSTRAP_SERVERS):
        self.db_url = db_url
        self.bootstrap_servers = bootstrap_servers
        self.consumer: Optional[AIOKafkaConsumer] = None
        self.db: Optional[asyncpg.Connection] = None
        self.running = False
        self._busy = asyncio.Lock()
        self._pending = None  # the record fetched and not yet processed
        self._stopping = False

    async def start(self):
        self.db = await self._reconnect()
        while True:  # Kafka may come up after us (docker-compose) or be restarting
            self.consumer = AIOKafkaConsumer(
                self.topic,
                bootstrap_servers=self.bootstrap_servers,
                group_id=self.group_id,
                value_deserializer=_json_or_none,
                auto_offset_reset="earliest",   # a new group reads from the beginning
                enable_auto_commit=True,        # offsets are committed every few seconds
            )
            try:
                await self.consumer.start()
                break
            except KafkaConnectionError as e:
                logger.error("%s: Kafka not reachable (%s), retrying in %gs", type(self).__name__,
                             e, RETRY_SECONDS)
                await self.consumer.stop()
                await asyncio.sleep(RETRY_SECONDS)
        self.running = True
        logger.info("%s: consuming %s as group %s from %s", type(self).__name__, self.topic,
                    self.group_id, self.bootstrap_servers)

    async def stop(self, task: Optional[asyncio.Task] = None):
        """Stops after the record in progress; `task` is the one running consume()."""
        self.running = False
        self._stopping = True
        async with self._busy:  # no record is being processed while we hold this
            if task is not None:
                task.cancel()  # it waits in getone() or for the lock: nothing half-done
                await asyncio.gather(task, return_exceptions=True)
            if self.consumer is not None:
                if self._pending is not None:  # fetched but not processed: not committed either
                    tp = TopicPartition(self._pending.topic, self._pending.partition)
                    self.consumer.seek(tp, self._pending.offset)
                await self.consumer.stop()  # commits the consumed offsets
        if self.db is not None:
            await self.db.close()

    async def consume(self):
        while self.running:
            try:
                async for message in self.consumer:
                    self._pending = message
                    async with self._busy:
                        await self._handle(message)
                    self._pending = None
            except Exception as e:
                logger.error("%s: consumer error: %s", type(self).__name__, e)
                if self.running:
                    await asyncio.sleep(RETRY_SECONDS)  # wait, then retry

    async def _handle(self, message):
        if not isinstance(message.value, dict):
            logger.error("%s: %s[%d]@%d is not a JSON object, skipped", type(self).__name__,
                         message.topic, message.partition, message.offset)
            return
        try:
            await self.process_message(message)
        except (KeyError, TypeError, ValueError, ArithmeticError, asyncpg.DataError) as e:
            logger.error("%s: %s[%d]@%d malformed (%r), skipped", type(self).__name__,
                         message.topic, message.partition, message.offset, e)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as e:
            # The database is unreachable or refused the write: read this record again after the
            # pause instead of skipping it (Kafka is the buffer while the database is down).
            logger.error("%s: %s[%d]@%d not stored, retrying: %s", type(self).__name__,
                         message.topic, message.partition, message.offset, e)
            self.consumer.seek(TopicPartition(message.topic, message.partition), message.offset)
            self._pending = None
            if self.db.is_closed():
                self.db = await self._reconnect()
            raise

    async def _reconnect(self):
        """Connects to PostgreSQL, waiting while it is down or starting (a wrong URL, password or
        database name raises)."""
        while True:
            try:
                return await asyncpg.connect(_dsn(self.db_url))
            except (OSError, asyncio.TimeoutError, asyncpg.CannotConnectNowError) as e:
                if self._stopping:
                    raise
                logger.error("database unreachable: %s", e)
                await asyncio.sleep(RETRY_SECONDS)

    async def process_message(self, message):
        raise NotImplementedError


class PriceUpdateConsumer(_Consumer):
    topic = KAFKA_TOPIC_PRICES
    group_id = KAFKA_CONSUMER_GROUP

    async def process_message(self, message):
        event = message.value
        asin = event["asin"]
        current_price = float(event["current_price"])
        async with self.db.transaction():
            watched = await self.db.fetchrow(
                "SELECT asin, product_title, target_price FROM watched_products WHERE asin = $1",
                asin)
            if watched is None:
                logger.debug("%s is not watched, skipped", asin)
                return
            history_id = await self.db.fetchval(
                """INSERT INTO price_history (asin, price, currency, domain, source, event_time,
                                              kafka_topic, kafka_partition, kafka_offset)
                   VALUES ($1, $2, $3, $4, 'price_update', $5, $6, $7, $8)
                   ON CONFLICT (kafka_topic, kafka_partition, kafka_offset) DO NOTHING
                   RETURNING id""",
                asin, _money(current_price), event.get("currency") or "EUR",
                event.get("domain") or "de", _event_time(event.get("timestamp")),
                message.topic, message.partition, message.offset)
            if history_id is None:
                return  # redelivered: already stored
            await self.db.execute(
                """UPDATE watched_products
                   SET current_price = $2, last_price_at = $3, updated_at = now()
                   WHERE asin = $1""",
                asin, _money(current_price), _event_time(event.get("timestamp")))
            target = event.get("target_price")
            if target is None and watched["target_price"] is not None:
                target = float(watched["target_price"])
            if should_alert(current_price, target):
                await self.db.execute(
                    """INSERT INTO price_alerts (asin, product_title, current_price, target_price,
                                                 price_history_id)
                       VALUES ($1, $2, $3, $4, $5)""",
                    asin, event.get("product_title") or watched["product_title"],
                    _money(current_price), _money(target), history_id)
                logger.info("price alert: %s at %.2f (target %.2f)", asin, current_price, target)


class DealUpdateConsumer(_Consumer):
    topic = KAFKA_TOPIC_DEALS
    group_id = KAFKA_CONSUMER_GROUP + "-deals"

    async def process_message(self, message):
        await self.record_deal_price(message)

    async def record_deal_price(self, message):
        event = message.value
        asin = event["asin"]
        price = _money(event["current_price"])
        event_time = _event_time(event.get("timestamp"))
        domain = event.get("domain") or "de"
        async with self.db.transaction():
            history_id = await self.db.fetchval(
                """INSERT INTO price_history (asin, price, domain, source, event_time,
                                              kafka_topic, kafka_partition, kafka_offset)
                   VALUES ($1, $2, $3, 'deal', $4, $5, $6, $7)
                   ON CONFLICT (kafka_topic, kafka_partition, kafka_offset) DO NOTHING
                   RETURNING id""",
                asin, price, domain, event_time, message.topic, message.partition, message.offset)
            if history_id is None:
                return  # redelivered: already stored
            await self.db.execute(
                """INSERT INTO deals (asin, product_title, current_price, original_price,
                                      discount_percent, rating, review_count, sales_rank, domain,
                                      event_time, price_history_id)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)""",
                asin, event.get("product_title"), price, _money(event.get("original_price")),
                _money(event.get("discount_percent")), _money(event.get("rating")),
                event.get("review_count"), event.get("sales_rank"), domain, event_time, history_id)
            await self.db.execute(
                """INSERT INTO watched_products (asin, product_title, domain, current_price,
                                                 last_price_at)
                   VALUES ($1, $2, $3, $4, $5)
                   ON CONFLICT (asin) DO UPDATE
                   SET product_title = COALESCE(EXCLUDED.product_title, watched_products.product_title),
                       current_price = EXCLUDED.current_price,
                       last_price_at = EXCLUDED.last_price_at,
                       updated_at = now()""",
                asin, event.get("product_title") or None, domain, price, event_time)


async def run(which: str = "all") -> None:
    consumers = []
    if which in ("all", "prices"):
        consumers.append(PriceUpdateConsumer())
    if which in ("all", "deals"):
        consumers.append(DealUpdateConsumer())
    for c in consumers:
        await c.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    tasks = [asyncio.create_task(c.consume()) for c in consumers]
    await stopping.wait()
    logger.info("stopping")
    await asyncio.gather(*(c.stop(t) for c, t in zip(consumers, tasks)))
    logger.info("stopped")


def main():
    which = sys.argv[1] if len(sys.argv) > 1 else "all"
    if which not in ("all", "prices", "deals"):
        raise SystemExit(f"usage: {sys.argv[0]} [all|prices|deals]")
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(run(which))


if __name__ == "__main__":
    main()
