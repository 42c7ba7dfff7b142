"""Kafka producers of the Keeper price tracker (src/services/kafka_producer.py in the app).

PriceUpdateProducer  -> topic `price-updates`, key = ASIN (one product's updates stay on one
                        partition, so they are consumed in the order they were sent)
DealUpdateProducer   -> topic `deal-updates`, no key (spread over the partitions)

Both use send_and_wait(): a send returns once the broker has acknowledged the record (acks=1,
aiokafka's default); a KafkaError is logged and the send returns False, the scheduler carries on.

Run against Vltava (`vltava serve` listens on localhost:9092):

    export KAFKA_BOOTSTRAP_SERVERS=localhost:9092
    python kafka_producer.py price B07W6JN8V8 49.99 --target 45 --previous 59.99 \
        --title "Logitech K380 Multi-Device QWERTZ"
    python kafka_producer.py deal B07W6JN8V8 39.99 --original 59.99 --rating 4.5
    python kafka_producer.py demo --products 5 --rounds 10     # a simulated run_price_check()
"""
import argparse
import asyncio
import json
import logging
import os
import random
from datetime import datetime
from typing import Optional

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

logger = logging.getLogger("keeper.kafka_producer")

# src/config.py of the app (pydantic settings: the same names as environment variables).
KAFKA_BOOTSTRAP_SERVERS = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092")
KAFKA_TOPIC_PRICES = os.environ.get("KAFKA_TOPIC_PRICES", "price-updates")
KAFKA_TOPIC_DEALS = os.environ.get("KAFKA_TOPIC_DEALS", "deal-updates")


def _new_producer(bootstrap_servers: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        # default=str: datetimes, Decimals etc. do not crash the serializer
        value_serializer=lambda v: json.dumps(v, default=str).encode("utf-8"),
        key_serializer=lambda k: k.encode("utf-8") if k else None,
    )


def _timestamp(ts) -> str:
    if ts is None:
        ts = datetime.now()
    return ts.isoformat(timespec="seconds") if isinstance(ts, datetime) else str(ts)


class PriceUpdateProducer:
    def __init__(self, bootstrap_servers: Optional[str] = None, topic: Optional[str] = None):
        self.producer: Optional[AIOKafkaProducer] = None
        self.bootstrap_servers = bootstrap_servers or KAFKA_BOOTSTRAP_SERVERS
        self.topic = topic or KAFKA_TOPIC_PRICES

    async def start(self):
        self.producer = _new_producer(self.bootstrap_servers)
        await self.producer.start()
        logger.info("price producer connected to %s, topic %s", self.bootstrap_servers, self.topic)

    async def stop(self):
        if self.producer is not None:
            await self.producer.stop()
            self.producer = None

    async def send_price_update(self, asin: str, product_title: str, current_price: float,
                                target_price: Optional[float] = None,
                                previous_price: Optional[float] = None,
                                domain: str = "de", currency: str = "EUR",
                                timestamp=None) -> bool:
        price_change = None
        if previous_price:
            # percent drop since the previous check (positive = cheaper now)
            price_change = round((previous_price - current_price) / previous_price * 100, 2)
        message = {
            "asin": asin,
            "product_title": product_title,
            "current_price": current_price,
            "target_price": target_price,
            "previous_price": previous_price,
            "price_change": price_change,
            "domain": domain,
            "currency": currency,
            "timestamp": _timestamp(timestamp),
            "event_type": "price_update",
        }
        try:
            result = await self.producer.send_and_wait(self.topic, key=asin, value=message)
        except KafkaError as e:
            logger.error("Failed to send price update for %s: %s", asin, e)
            return False
        logger.debug("price update %s -> %s[%d]@%d", asin, self.topic, result.partition, result.offset)
        return True


class DealUpdateProducer:
    def __init__(self, bootstrap_servers: Optional[str] = None, topic: Optional[str] = None):
        self.producer: Optional[AIOKafkaProducer] = None
        self.bootstrap_servers = bootstrap_servers or KAFKA_BOOTSTRAP_SERVERS
        self.topic = topic or KAFKA_TOPIC_DEALS

    async def start(self):
        self.producer = _new_producer(self.bootstrap_servers)
        await self.producer.start()
        logger.info("deal producer connected to %s, topic %s", self.bootstrap_servers, self.topic)

    async def stop(self):
        if self.producer is not None:
            await self.producer.stop()
            self.producer = None

    async def send_deal_update(self, asin: str, product_title: str, current_price: float,
                               original_price: Optional[float] = None,
                               discount_percent: Optional[float] = None,
                               rating: Optional[float] = None,
                               review_count: Optional[int] = None,
                               sales_rank: Optional[int] = None,
                               domain: str = "de", timestamp=None) -> bool:
        if discount_percent is None and original_price:
            discount_percent = round((original_price - current_price) / original_price * 100, 1)
        message = {
            "asin": asin,
            "product_title": product_title,
            "current_price": current_price,
            "original_price": original_price,
            "discount_percent": discount_percent,
            "rating": rating,
            "review_count": review_count,
            "sales_rank": sales_rank,
            "domain": domain,
            "timestamp": _timestamp(timestamp),
            "event_type": "deal_update",
        }
        try:
            # No key: the partitioner spreads deals over the partitions.
            result = await self.producer.send_and_wait(self.topic, value=message)
        except KafkaError as e:
            logger.error("Failed to send deal update for %s: %s", asin, e)
            return False
        logger.debug("deal update %s -> %s[%d]@%d", asin, self.topic, result.partition, result.offset)
        return True


# Singletons: created once, imported everywhere (the scheduler calls start() at start-up).
price_producer = PriceUpdateProducer()
deal_producer = DealUpdateProducer()


async def _demo(products: int, rounds: int) -> int:
    """A stand-in for the scheduler's run_price_check() and collect_deals...(): random-walk
    prices for a few products, one price update per product per round, and a deal now and then."""
    rng = random.Random()
    asins = [f"B0DEMO{i:04d}" for i in range(products)]
    prices = {a: round(rng.uniform(20, 200), 2) for a in asins}
    targets = {a: round(prices[a] * 0.9, 2) for a in asins}
    failed = 0
    await price_producer.start()
    await deal_producer.start()
    try:
        for _ in range(rounds):
            for a in asins:
                previous = prices[a]
                prices[a] = max(1.0, round(previous * rng.uniform(0.9, 1.08), 2))
                ok = await price_producer.send_price_update(
                    a, f"Demo product {a}", prices[a], targets[a], previous)
                failed += not ok
                if rng.random() < 0.2:
                    original = round(prices[a] * 1.3, 2)
                    ok = await deal_producer.send_deal_update(
                        a, f"Demo product {a}", prices[a], original,
                        rating=round(rng.uniform(3, 5), 1), review_count=rng.randint(1, 5000),
                        sales_rank=rng.randint(1, 100000))
                    failed += not ok
    finally:
        await price_producer.stop()
        await deal_producer.stop()
    print(f"demo: {products * rounds} price updates sent, {failed} failed")
    return 1 if failed else 0


async def _main(args) -> int:
    if args.cmd == "demo":
        return await _demo(args.products, args.rounds)
    if args.cmd == "price":
        await price_producer.start()
        try:
            ok = await price_producer.send_price_update(
                args.asin, args.title, args.current_price, args.target, args.previous,
                args.domain, args.currency)
        finally:
            await price_producer.stop()
    else:
        await deal_producer.start()
        try:
            ok = await deal_producer.send_deal_update(
                args.asin, args.title, args.current_price, args.original, args.discount,
                args.rating, args.reviews, args.sales_rank, args.domain)
        finally:
            await deal_producer.stop()
    print("sent" if ok else "FAILED")
    return 0 if ok else 1


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    price = sub.add_parser("price", help="send one price update to price-updates")
    price.add_argument("asin")
    price.add_argument("current_price", type=float)
    price.add_argument("--target", type=float)
    price.add_argument("--previous", type=float)
    price.add_argument("--title", default="")
    price.add_argument("--domain", default="de")
    price.add_argument("--currency", default="EUR")
    deal = sub.add_parser("deal", help="send one deal to deal-updates")
    deal.add_argument("asin")
    deal.add_argument("current_price", type=float)
    deal.add_argument("--original", type=float)
    deal.add_argument("--discount", type=float)
    deal.add_argument("--rating", type=float)
    deal.add_argument("--reviews", type=int)
    deal.add_argument("--sales-rank", type=int)
    deal.add_argument("--title", default="")
    deal.add_argument("--domain", default="de")
    demo = sub.add_parser("demo", help="simulate the scheduler: random-walk prices and some deals")
    demo.add_argument("--products", type=int, default=5)
    demo.add_argument("--rounds", type=int, default=10)
    args = p.parse_args()
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    raise SystemExit(asyncio.run(_main(args)))


if __name__ == "__main__":
    main()
