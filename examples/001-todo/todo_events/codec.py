"""Avro events through the Schema Registry, in Confluent's wire format (magic byte 0, 4-byte schema id,
Avro binary body).

Several event types share a topic (TaskCreated, TaskUpdated and TaskDeleted on todo.tasks.events), so
schemas are registered under the TopicRecordNameStrategy: subject `{topic}-{namespace}.{name}`, e.g.
`todo.tasks.events-com.todo.events.TaskCreated`. Consumers read with the writer's schema, fetched by the
id in the record, and learn the event type from that schema's name.

confluent-kafka's serializers are synchronous (HTTP to the registry on a cache miss), so the asyncio
services call them through `asyncio.to_thread`: a slow registry never stalls aiokafka's heartbeats.
"""
import asyncio
import datetime
import json
import os
import struct
import uuid

from confluent_kafka.schema_registry import SchemaRegistryClient, topic_record_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from .config import EVENT_TOPICS

SCHEMA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "schemas")
MAGIC_BYTE = 0
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


class UnknownEventType(ValueError):
    pass


def load_schema_str(event_type):
    with open(os.path.join(SCHEMA_DIR, f"{event_type}.avsc")) as f:
        return f.read()


def _plain(value):
    """fastavro returns logical types as Python objects; the services work with UUID strings and
    epoch milliseconds, as the producers send them."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return (value - _EPOCH) // datetime.timedelta(milliseconds=1)
    return value


def schema_id_of(raw):
    """The schema id of a Confluent-framed value; ValueError if the value is not framed."""
    if raw is None or len(raw) < 5 or raw[0] != MAGIC_BYTE:
        raise ValueError("not a Schema Registry framed value (magic byte 0 + schema id)")
    return struct.unpack(">I", raw[1:5])[0]


class EventCodec:
    def __init__(self, schema_registry_url):
        # max.retries: the client's own retries on connection errors and 5xx; our callers retry
        # further with backoff.
        self.registry = SchemaRegistryClient({"url": schema_registry_url, "max.retries": 2,
                                              "retries.wait.ms": 200, "timeout": 10})
        self._serializers = {}
        self._deserializer = AvroDeserializer(self.registry)
        self._type_by_schema_id = {}

    def _serializer(self, event_type):
        ser = self._serializers.get(event_type)
        if ser is None:
            if event_type not in EVENT_TOPICS:
                raise UnknownEventType(event_type)
            ser = AvroSerializer(self.registry, load_schema_str(event_type), conf={
                "subject.name.strategy": topic_record_subject_name_strategy,
                "auto.register.schemas": True,
            })
            self._serializers[event_type] = ser
        return ser

    def encode_sync(self, topic, event_type, event):
        return self._serializer(event_type)(event, SerializationContext(topic, MessageField.VALUE))

    async def encode(self, topic, event_type, event):
        return await asyncio.to_thread(self.encode_sync, topic, event_type, event)

    def decode_sync(self, topic, raw):
        """Returns (event_type, event) with the writer's schema."""
        schema_id = schema_id_of(raw)
        event = self._deserializer(raw, SerializationContext(topic, MessageField.VALUE))
        event_type = self._type_by_schema_id.get(schema_id)
        if event_type is None:
            # Cached by the client: the deserializer has just fetched this id.
            schema = json.loads(self.registry.get_schema(schema_id).schema_str)
            event_type = schema["name"].rsplit(".", 1)[-1]
            self._type_by_schema_id[schema_id] = event_type
        return event_type, _plain(event)

    async def decode(self, topic, raw):
        return await asyncio.to_thread(self.decode_sync, topic, raw)
