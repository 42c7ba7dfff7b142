"""Publishing events: an aiokafka producer, Avro through the Schema Registry, retries with exponential
backoff for transient failures (broker or registry unreachable), and a way out for the rest.

The Chat API (FastAPI) publishes after its database commit, so an event it cannot publish is already
true in the database: after the last retry it is appended to a local file for out-of-band recovery
(`publish_fallback_path`). An event that does not match its schema goes, as JSON, to the topic's DLQ
(`{topic}.dlq`). The consumer services publish derived events through the same class without the
file fallback: they retry until the broker is back, since their input offset is not committed yet.
"""
import asyncio
import json
import logging
import os
import uuid

import aiokafka.errors as kafka_errors
from aiokafka import AIOKafkaProducer
from confluent_kafka.schema_registry.common._httpx_compat import httpx
from confluent_kafka.schema_registry.error import SchemaRegistryError

from .codec import EventCodec, UnknownEventType
from .config import EVENT_TOPICS, backoff_ms, topic_dlq_topic
from .store import now_ms

log = logging.getLogger("todo.publisher")

# Derived events get ids computed from the event they come from, so that re-processing an input
# (after a crash before its offset commit) publishes the same event_id again and downstream
# consumers drop the copy.
EVENT_ID_NAMESPACE = uuid.UUID("5d0c6b2e-7f54-4a36-9a61-8f1f0c1d7e42")


def derived_id(*parts):
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, ":".join(str(p) for p in parts)))


def is_transient(exc):
    """Failures worth retrying: the broker or the registry is unreachable or not ready. Anything
    else (a bug, bad data, a schema mismatch) will fail the same way next time."""
    if isinstance(exc, (kafka_errors.KafkaTimeoutError, kafka_errors.KafkaConnectionError,
                        kafka_errors.NoBrokersAvailable)):
        return True
    if isinstance(exc, kafka_errors.KafkaError):
        return exc.retriable
    if isinstance(exc, httpx.TransportError):
        return True
    if isinstance(exc, SchemaRegistryError):
        return exc.http_status_code in (-1, 408, 429) or exc.http_status_code >= 500
    return isinstance(exc, (ConnectionError, asyncio.TimeoutError, PublishFailed))


class PublishFailed(Exception):
    """Gave up on an event after the retries (transient failures only)."""


class SchemaMismatch(Exception):
    """The event does not fit its schema (or the registry rejected the schema)."""


class EventPublisher:
    def __init__(self, settings, client_id, codec=None, fallback_path=None, retry_forever=False,
                 sleep=asyncio.sleep):
        self.settings = settings
        self.sleep = sleep  # a service passes one that stops waiting on SIGTERM
        self.client_id = client_id
        self.codec = codec or EventCodec(settings.schema_registry_url)
        self.fallback_path = fallback_path
        self.retry_forever = retry_forever
        self.producer = None

    def _new_producer(self):
        # acks=all + idempotence: an acknowledged event is on the log once, in order per partition,
        # even when aiokafka retries a batch after a broken connection.
        return AIOKafkaProducer(
            bootstrap_servers=self.settings.bootstrap_servers,
            client_id=self.client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            request_timeout_ms=15_000,
            retry_backoff_ms=200,
        )

    async def start(self):
        attempt = 0
        while True:
            self.producer = self._new_producer()
            try:
                await self.producer.start()
                return self
            except Exception as exc:  # the broker may still be starting
                await self.producer.stop()
                if not is_transient(exc) or (not self.retry_forever and attempt >= self.settings.publish_max_retries):
                    raise
                delay_ms = backoff_ms(attempt, self.settings.publish_backoff_ms, self.settings.publish_backoff_max_ms)
                log.warning("producer start failed (%r); retry in %d ms", exc, delay_ms)
                await self.sleep(delay_ms / 1000)
                attempt += 1

    async def stop(self):
        if self.producer is not None:
            await self.producer.stop()

    async def _with_retries(self, what, make_attempt):
        attempt = 0
        while True:
            try:
                return await make_attempt()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                if not self.retry_forever and attempt >= self.settings.publish_max_retries:
                    raise PublishFailed(f"{what}: {exc!r} after {attempt + 1} attempts") from exc
                delay_ms = backoff_ms(attempt, self.settings.publish_backoff_ms, self.settings.publish_backoff_max_ms)
                log.warning("%s failed (%r); retry %d in %d ms", what, exc, attempt + 1, delay_ms)
                await self.sleep(delay_ms / 1000)
                attempt += 1

    async def publish(self, event_type, event, extra_headers=()):
        """Serializes `event` (a dict in the event type's Avro shape) and publishes it keyed by its
        entity id; returns aiokafka's RecordMetadata once the broker acknowledged it."""
        if event_type not in EVENT_TOPICS:
            raise UnknownEventType(event_type)
        topic, key_field = EVENT_TOPICS[event_type]
        event.setdefault("event_id", str(uuid.uuid4()))
        key = str(event[key_field]).encode()
        headers = [("event_type", event_type.encode()), ("event_id", str(event["event_id"]).encode()),
                   ("producer", self.client_id.encode()), *extra_headers]
        what = f"publish {event_type} {event['event_id']}"
        try:
            value = await self._with_retries(what, lambda: self.codec.encode(topic, event_type, event))
        except PublishFailed:
            self._fallback(event_type, event, "schema registry unreachable")
            raise
        except Exception as exc:
            await self._schema_dlq(topic, event_type, event, key, exc)
            raise SchemaMismatch(f"{event_type} {event.get('event_id')}: {exc!r}") from exc
        try:
            return await self._with_retries(
                what, lambda: self.producer.send_and_wait(topic, value, key=key, headers=headers))
        except Exception as exc:
            self._fallback(event_type, event, repr(exc))
            raise

    async def send_raw(self, topic, value, key, headers):
        """For DLQs: the bytes exactly as they were, with headers saying why."""
        return await self._with_retries(
            f"send to {topic}", lambda: self.producer.send_and_wait(topic, value, key=key, headers=headers))

    async def _schema_dlq(self, topic, event_type, event, key, exc):
        log.error("%s %s does not match its schema: %r; sending it to %s", event_type, event.get("event_id"),
                  exc, topic_dlq_topic(topic))
        body = json.dumps({"event_type": event_type, "event": event}, default=str).encode()
        try:
            await self.send_raw(topic_dlq_topic(topic), body, key, [
                ("event_type", event_type.encode()), ("dlq.error.class", type(exc).__name__.encode()),
                ("dlq.error.message", str(exc)[:1000].encode()), ("dlq.failed.at.ms", str(now_ms()).encode())])
        except Exception as dlq_exc:
            self._fallback(event_type, event, f"{exc!r}; DLQ failed too: {dlq_exc!r}")

    def _fallback(self, event_type, event, error):
        if not self.fallback_path:
            return
        os.makedirs(os.path.dirname(os.path.abspath(self.fallback_path)), exist_ok=True)
        with open(self.fallback_path, "a") as f:
            f.write(json.dumps({"event_type": event_type, "event": event, "error": error,
                                "failed_at_ms": now_ms()}, default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())
        log.error("could not publish %s %s (%s): saved to %s for recovery", event_type, event.get("event_id"),
                  error, self.fallback_path)
