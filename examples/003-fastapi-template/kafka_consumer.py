"""Kafka consumer framework: batches of up to 25 messages (or whatever arrived in 5 s), routed by topic.

Delivery is at least once: offsets are committed after a batch is processed, so after a rebalance
or a restart some messages may be handled again. Every handler is idempotent (keyed writes, claimed
rows) for that reason.
"""
import asyncio
import json
import logging
import socket
import threading
import time
from dataclasses import dataclass
from threading import Thread
from typing import Any, List, Optional

from kafka import KafkaConsumer
from kafka.serializer import Deserializer

from consumers.generic_consumer import process_generic_message
from consumers.kafka_config import KafkaConfig, get_default_config
from consumers.my_consumer import process_my_messages
from consumers.notification_consumer import process_notifications
from core.config import get_settings

logger = logging.getLogger(__name__)

TOPICS = [
    "notifications",
    "generic_topic",
    "my_topic",
    # Add more topics as needed
]

BATCH_SIZE = 25  # Process messages in smaller batches
BATCH_TIMEOUT = 5  # Wait up to 5 seconds to collect messages
CONNECT_TIMEOUT_S = 5

# Set by the scheduler on SIGTERM: the consumer finishes its batch, commits and leaves the group.
stop_event = threading.Event()


@dataclass
class Message:
    topic: str
    value: Any
    partition: int
    offset: int


class SafeJsonDeserializer(Deserializer):
    """JSON values; None for anything else. A message that is not JSON must not stop the consumer:
    a raising deserializer makes poll() raise on the same record again and again."""

    def deserialize(self, topic, headers, data):
        if data is None:
            return None
        try:
            return json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            logger.error(f"Skipping a message on {topic} that is not UTF-8 JSON: {data[:100]!r}")
            return None


def wait_for_broker(bootstrap_servers: str, timeout_s: float) -> None:
    """Raises ConnectionError unless one bootstrap server accepts a TCP connection.

    kafka-python 3.x's consumer.topics() does not fail while no broker answers: it blocks, retrying
    inside its IO thread, with no deadline. This check is what fails fast, so that the retry loop
    below sees the broker is not up yet.
    """
    errors = []
    for server in bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            socket.create_connection((host.strip("[]"), int(port or 9092)), timeout=timeout_s).close()
            return
        except OSError as e:
            errors.append(f"{server}: {e}")
    raise ConnectionError("no bootstrap server reachable (" + "; ".join(errors) + ")")


def create_kafka_consumer(
    topics: list[str], config: Optional[KafkaConfig] = None, max_retries: Optional[int] = None
) -> Optional[KafkaConsumer]:
    """Create a Kafka consumer for the specified topics with retry mechanism.

    Waits min(KAFKA_RETRY_BASE_S * 2^n, KAFKA_RETRY_MAX_S) between attempts; gives up after
    max_retries attempts (default KAFKA_MAX_RETRIES; 0 = never).
    """
    settings = get_settings()
    kafka_config = config or get_default_config()
    max_retries = settings.KAFKA_MAX_RETRIES if max_retries is None else max_retries
    retry_count = 0
    while not stop_event.is_set():
        consumer = None
        try:
            logger.debug(f"Attempting to create Kafka consumer for topics: {topics} (attempt {retry_count + 1})")
            wait_for_broker(kafka_config.bootstrap_servers, CONNECT_TIMEOUT_S)
            consumer = KafkaConsumer(
                *topics,
                bootstrap_servers=kafka_config.bootstrap_servers,
                value_deserializer=SafeJsonDeserializer(),
                auto_offset_reset=kafka_config.auto_offset_reset,
                enable_auto_commit=kafka_config.enable_auto_commit,
                group_id=kafka_config.group_id,
                api_version=kafka_config.api_version,
                # Add connection timeout to prevent hanging
                session_timeout_ms=6000,
                heartbeat_interval_ms=2000,
                request_timeout_ms=10000,
                # Reconnect quickly after a broker restart (kafka-python's default backs off to 30 s).
                reconnect_backoff_max_ms=2000,
            )
            # Test the connection
            consumer.topics()
            logger.info("Successfully created Kafka consumer")
            return consumer
        except Exception as e:
            if consumer is not None:
                consumer.close(autocommit=False)
            retry_count += 1
            if max_retries and retry_count >= max_retries:
                logger.error(f"Failed to create Kafka consumer after {max_retries} attempts: {str(e)}")
                return None
            # Exponential backoff capped at KAFKA_RETRY_MAX_S (30 seconds by default)
            wait_time = min(settings.KAFKA_RETRY_BASE_S * 2**retry_count, settings.KAFKA_RETRY_MAX_S)
            logger.warning(
                f"Failed to create Kafka consumer (attempt {retry_count}): {str(e)}. "
                f"Retrying in {wait_time:g} seconds..."
            )
            stop_event.wait(wait_time)
    return None


def record_batch(messages: List[Message]) -> None:
    path = get_settings().KAFKA_BATCH_LOG
    if not path:
        return
    topics: dict[str, int] = {}
    for m in messages:
        topics[m.topic] = topics.get(m.topic, 0) + 1
    with open(path, "a") as f:
        f.write(json.dumps({"ts": time.time(), "size": len(messages), "topics": topics}) + "\n")


async def process_message_batch(messages: List[Message]) -> None:
    """Route messages to appropriate processors"""
    for message in messages:
        try:
            logger.debug(f"Processing message from batch: {message.topic} - {message.value}")
            if not isinstance(message.value, dict):
                logger.error(f"Skipping malformed message at {message.topic}[{message.partition}]@{message.offset}")
                continue

            if message.topic == "notifications":
                # Process notification messages
                user_id = message.value.get("user_id")
                event = message.value.get("event")
                content = message.value.get("content")

                if all([user_id, event, content]):
                    # The row was written before the message was published: deliver what is pending.
                    await process_notifications()
                else:
                    logger.error("Missing required fields in notification message")
                continue

            if message.topic == "generic_topic":
                await process_generic_message(message.value)
                continue

            if message.topic == "my_topic":
                data = message.value.get("data")
                if data:
                    await process_my_messages(data)
                else:
                    logger.error("Missing data in my topic message")
                continue

            # Default case for unhandled topics
            logger.warning(f"Unhandled message topic: {message.topic}")

        except Exception as e:
            logger.error(f"Error processing message in batch: {str(e)}")
            continue


async def consume_messages(consumer: KafkaConsumer) -> None:
    """Consume and batch process messages from Kafka until stop_event is set."""
    if not consumer:
        logger.error("No consumer provided")
        return

    logger.debug("Starting to consume messages")
    while not stop_event.is_set():
        try:
            # Collect up to BATCH_SIZE messages, waiting at most BATCH_TIMEOUT seconds. Ask poll()
            # for no more than still fits: records it returned but we dropped would count as
            # consumed and be committed with the batch, i.e. lost.
            message_batch: List[Message] = []
            deadline = time.monotonic() + BATCH_TIMEOUT
            while len(message_batch) < BATCH_SIZE and not stop_event.is_set():
                remaining_ms = int((deadline - time.monotonic()) * 1000)
                if remaining_ms <= 0:
                    break
                messages = consumer.poll(timeout_ms=remaining_ms, max_records=BATCH_SIZE - len(message_batch))
                for topic_partition, records in messages.items():
                    for record in records:
                        message_batch.append(
                            Message(topic=record.topic, value=record.value,
                                    partition=record.partition, offset=record.offset)
                        )

            if not message_batch:
                continue

            # Process the batch of messages, then commit it
            await process_message_batch(message_batch)
            record_batch(message_batch)
            logger.info(f"Successfully processed batch of {len(message_batch)} messages")
            consumer.commit(timeout_ms=10000)

        except Exception as e:
            # E.g. the commit failing while the broker restarts: the next batch's commit covers
            # these offsets, or after a rebalance the messages come again (handlers are idempotent).
            logger.error(f"Consumer error: {type(e).__name__}: {str(e)}")
            await asyncio.sleep(1)  # Prevent tight error loop
            continue


def start_kafka_consumer() -> Optional[Thread]:
    """Start a Kafka consumer in a separate thread"""

    def run_consumer():
        try:
            # Create new event loop for this thread
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)

            logger.debug("Starting Kafka consumer")
            consumer = create_kafka_consumer(TOPICS)
            if not consumer:
                logger.error("Failed to create consumer")
                return

            try:
                loop.run_until_complete(consume_messages(consumer))
            finally:
                consumer.close()  # commits what was processed and leaves the group
                loop.close()
        except Exception as e:
            logger.error(f"Error in consumer thread: {str(e)}")

    try:
        consumer_thread = Thread(target=run_consumer, name="kafka-consumer", daemon=True)
        consumer_thread.start()
        logger.debug("Kafka consumer thread started")
        return consumer_thread
    except Exception as e:
        logger.error(f"Failed to start consumer thread: {str(e)}")
        return None
