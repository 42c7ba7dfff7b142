"""The Confluent Schema Registry API served by `vltava serve --registry`, checked against Confluent
Schema Registry's documented behaviour with real clients: confluent-kafka's SchemaRegistryClient and
its Avro / JSON Schema / Protobuf serializers (through the broker), @kafkajs/confluent-schema-registry
with KafkaJS, and plain HTTP for the REST API, compatibility rules and error codes. Also the broker's
`confluent.value.schema.validation` topic config.

The clients are used with their defaults where that matters: confluent-kafka 2.16's serializers
first ask GET /associations/resources/-/{topic} (a 404 means "none", then the topic name strategy)
and send `?normalize=False`; the Protobuf serializer registers schemas as base64 FileDescriptorProtos
and its deserializer fetches them back with `?format=serialized`.
"""
import base64
import datetime
import json
import struct
import uuid

import pytest
import requests
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
from confluent_kafka.schema_registry import Schema, SchemaReference, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from fastavro.schema import parse_schema, to_parsing_canonical_form
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2

from conftest import port_open, run_node, wait_until
from util import read_messages

pytestmark = pytest.mark.timeout(240)

SR_JSON = "application/vnd.schemaregistry.v1+json"
UTC = datetime.timezone.utc
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=UTC)

# --- schemas -----------------------------------------------------------------------------------

# The todo system's event (seed 001): logical types, an enum, defaults, nullable unions.
TASK_CREATED = {
    "type": "record",
    "name": "TaskCreated",
    "namespace": "com.todo.events",
    "fields": [
        {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "user_id", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "title", "type": "string"},
        {"name": "description", "type": ["null", "string"], "default": None},
        {"name": "created_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "due_date", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}], "default": None},
        {"name": "priority", "type": ["null", {"type": "enum", "name": "PriorityEnum",
                                              "symbols": ["Low", "Medium", "High"]}], "default": None},
        {"name": "tags", "type": {"type": "array", "items": "string"}, "default": []},
        {"name": "is_recurring_template", "type": "boolean", "default": False},
        {"name": "recurrence_pattern", "type": ["null", "string"], "default": None},
    ],
}

TASK_UPDATED_JSON = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "TaskUpdated",
    "type": "object",
    "properties": {
        "task_id": {"type": "string"},
        "user_id": {"type": "string"},
        "version": {"type": "integer", "minimum": 1},
        "updated_at": {"type": "string"},
        "completed": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "changes": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean", "null"]}},
    },
    "required": ["task_id", "version", "updated_at"],
    "additionalProperties": False,
}


def avro_record(fields, name="User"):
    return json.dumps({"type": "record", "name": name, "namespace": "vltava.test", "fields": fields})


NAME = {"name": "name", "type": "string"}
AGE = {"name": "age", "type": "int"}
AGE_DEFAULT = {"name": "age", "type": "int", "default": 0}
EMAIL_DEFAULT = {"name": "email", "type": "string", "default": ""}

USER_V1 = avro_record([NAME])
USER_V2 = avro_record([NAME, AGE_DEFAULT])
USER_V3 = avro_record([NAME, AGE_DEFAULT, EMAIL_DEFAULT])

ORDER_PROTO = """syntax = "proto3";
package vltava.test;

message Order {
  string id = 1;
  int32 quantity = 2;
  repeated string items = 3;
}
"""


def jschema(properties, required=(), closed=False):
    s = {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "properties": properties}
    if required:
        s["required"] = list(required)
    if closed:
        s["additionalProperties"] = False
    return json.dumps(s)


def proto(body, package="vltava.test"):
    return f'syntax = "proto3";\npackage {package};\n\n{body}\n'


# --- HTTP helpers ------------------------------------------------------------------------------

class Registry:
    """Plain-HTTP access to the registry, asserting Confluent's status codes and error bodies."""

    def __init__(self, base):
        self.base = base

    def call(self, method, path, body=None, params=None, ctype=SR_JSON):
        headers = {"Accept": "application/vnd.schemaregistry.v1+json, application/json"}
        data = None
        if body is not None:
            data = json.dumps(body)
            headers["Content-Type"] = ctype
        return requests.request(method, self.base + path, data=data, params=params, headers=headers, timeout=20)

    def ok(self, method, path, body=None, params=None, ctype=SR_JSON):
        r = self.call(method, path, body, params, ctype)
        assert r.status_code == 200, f"{method} {path} {params or ''}: {r.status_code} {r.text}"
        return r.json()

    def fails(self, method, path, status, code, body=None, params=None):
        r = self.call(method, path, body, params)
        assert r.status_code == status, \
            f"{method} {path} {params or ''}: expected {status}, got {r.status_code} {r.text}"
        err = r.json()
        assert err.get("error_code") == code, f"{method} {path}: expected error_code {code}, got {err}"
        assert isinstance(err.get("message"), str) and err["message"], err
        return err

    def get(self, path, **params):
        return self.ok("GET", path, params=params or None)

    @staticmethod
    def body(schema, schema_type=None, references=None, **extra):
        b = {"schema": schema if isinstance(schema, str) else json.dumps(schema)}
        if schema_type is not None:
            b["schemaType"] = schema_type
        if references is not None:
            b["references"] = references
        b.update(extra)
        return b

    def register(self, subject, schema, schema_type=None, references=None, ctype=SR_JSON, **extra):
        """POST /subjects/{s}/versions; returns the id."""
        out = self.ok("POST", f"/subjects/{subject}/versions", self.body(schema, schema_type, references, **extra),
                      ctype=ctype)
        assert isinstance(out.get("id"), int) and out["id"] > 0, out
        return out["id"]

    def register_fails(self, subject, schema, status, code, schema_type=None, references=None, **extra):
        return self.fails("POST", f"/subjects/{subject}/versions", status, code,
                          self.body(schema, schema_type, references, **extra))

    def compatible(self, subject, schema, schema_type=None, version="latest", verbose=False):
        params = {"verbose": "true"} if verbose else None
        return self.ok("POST", f"/compatibility/subjects/{subject}/versions/{version}",
                       self.body(schema, schema_type), params=params)

    def set_compat(self, level, subject=None):
        path = f"/config/{subject}" if subject else "/config"
        assert self.ok("PUT", path, {"compatibility": level}) == {"compatibility": level}

    def versions(self, subject, deleted=False):
        return self.get(f"/subjects/{subject}/versions", **({"deleted": "true"} if deleted else {}))


def started(broker_factory, *args):
    b = broker_factory(*args)
    b.wait_registry()
    return b, Registry(b.registry)


# --- Kafka helpers -----------------------------------------------------------------------------

def create_topic(bs, name, partitions=1, config=None):
    admin = AdminClient({"bootstrap.servers": bs})
    admin.create_topics([NewTopic(name, partitions, 1, config=config or {})])[name].result(15)


def produce(bs, topic, records, **conf):
    """records: (key, value) pairs, all in one flush. Returns the delivery reports (err, msg)."""
    reports = []
    p = Producer({"bootstrap.servers": bs, "linger.ms": 5, "message.timeout.ms": 20000, **conf})
    for key, value in records:
        p.produce(topic, key=key, value=value, on_delivery=lambda err, msg: reports.append((err, msg)))
    assert p.flush(30) == 0, "undelivered messages"
    assert len(reports) == len(records)
    return reports


def produce_ok(bs, topic, records, **conf):
    reports = produce(bs, topic, records, **conf)
    errors = [err for err, _ in reports if err is not None]
    assert not errors, f"delivery failed: {errors[:3]}"
    return reports


def consume_all(bs, topic, partitions, expected, timeout_s=40):
    """Every record of `topic` read from offset 0 by librdkafka, without a group."""
    out = read_messages(bs, topic, partitions, expected, timeout_s)
    assert len(out) == expected, f"read {len(out)} of {expected} records from {topic}"
    return out


def sr_client(b):
    return SchemaRegistryClient({"url": b.registry})


def ctx(topic):
    return SerializationContext(topic, MessageField.VALUE)


def framed_id(value):
    """The schema id of a Confluent-framed value (magic byte 0, 4-byte big-endian id)."""
    assert value[0] == 0, f"magic byte is {value[0]}"
    return struct.unpack(">I", value[1:5])[0]


def pcf(schema):
    """Avro Parsing Canonical Form of a schema given as a JSON string or dict."""
    return to_parsing_canonical_form(parse_schema(json.loads(schema) if isinstance(schema, str) else schema))


def ms(dt):
    return (dt - EPOCH) // datetime.timedelta(milliseconds=1)


# --- Serializer round trips through the broker -------------------------------------------------

def task_created(i):
    base = datetime.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    return {
        "id": uuid.UUID(int=(0x6F1C2D3E4A5B4C6D8E7F << 48) + i),
        "user_id": uuid.UUID(int=(0x1234 << 64) + i % 5),
        "title": f"Buy milk #{i} — ünïcode ✓",
        "description": None if i % 3 == 0 else f"details for task {i}",
        "created_at": base + datetime.timedelta(seconds=i, milliseconds=i),
        "due_date": None if i % 4 == 0 else base + datetime.timedelta(days=i),
        "priority": [None, "Low", "Medium", "High"][i % 4],
        "tags": [f"t{j}" for j in range(i % 3)],
        "is_recurring_template": i % 5 == 0,
        "recurrence_pattern": "FREQ=DAILY" if i % 5 == 0 else None,
    }


def test_avro_serializer_round_trip_through_broker(broker_factory):
    b, reg = started(broker_factory)
    topic = "todo.tasks.events"
    create_topic(b.bootstrap, topic, 3)
    producer_client = sr_client(b)
    ser = AvroSerializer(producer_client, json.dumps(TASK_CREATED))
    sent = {str(t["id"]): t for t in map(task_created, range(40))}
    # A minimal event: every field with a default left out, filled in by the serializer.
    minimal = {"id": uuid.UUID(int=7), "user_id": uuid.UUID(int=8), "title": "defaults",
               "created_at": datetime.datetime(2026, 3, 1, tzinfo=UTC)}
    sent[str(minimal["id"])] = {**minimal, "description": None, "due_date": None, "priority": None, "tags": [],
                                "is_recurring_template": False, "recurrence_pattern": None}
    records = [(k.encode(), ser(v if k != str(minimal["id"]) else minimal, ctx(topic))) for k, v in sent.items()]
    produce_ok(b.bootstrap, topic, records)

    latest = producer_client.get_latest_version(f"{topic}-value")
    sid = latest.schema_id
    assert latest.version == 1 and latest.subject == f"{topic}-value"
    assert reg.versions(f"{topic}-value") == [1]
    assert pcf(reg.get(f"/schemas/ids/{sid}")["schema"]) == pcf(TASK_CREATED)
    # The logical types, the enum and the defaults survive in the stored schema.
    stored = reg.get(f"/subjects/{topic}-value/versions/1/schema")
    assert stored["name"] == "TaskCreated" and stored["namespace"] == "com.todo.events"
    fields = {f["name"]: f for f in stored["fields"]}
    assert fields["created_at"]["type"] == {"type": "long", "logicalType": "timestamp-millis"}
    assert fields["id"]["type"] == {"type": "string", "logicalType": "uuid"}
    assert fields["tags"]["default"] == [] and fields["is_recurring_template"]["default"] is False
    assert fields["priority"]["default"] is None

    consumer_client = sr_client(b)  # a separate application: nothing cached
    de = AvroDeserializer(consumer_client)
    msgs = consume_all(b.bootstrap, topic, 3, len(sent))
    got = {}
    for m in msgs:
        assert m.value()[:5] == b"\x00" + struct.pack(">I", sid)
        got[m.key().decode()] = de(m.value(), ctx(topic))
    assert got == sent

    # A second producer with its own client registers the same schema: same id, no new version.
    again = AvroSerializer(sr_client(b), json.dumps(TASK_CREATED, indent=2))
    assert framed_id(again(sent[str(minimal["id"])], ctx(topic))) == sid
    assert reg.versions(f"{topic}-value") == [1]


def test_json_schema_serializer_round_trip_through_broker(broker_factory):
    b, reg = started(broker_factory)
    topic = "todo.tasks.updates"
    create_topic(b.bootstrap, topic, 2)
    ser = JSONSerializer(json.dumps(TASK_UPDATED_JSON), sr_client(b))
    sent = {}
    for i in range(30):
        v = {"task_id": f"task-{i}", "version": i + 1, "updated_at": f"2026-01-02T03:04:{i % 60:02d}Z"}
        if i % 2:
            v["completed"] = i % 4 == 1
            v["tags"] = ["a", f"t{i}"]
        if i % 3 == 0:
            v["changes"] = {"title": f"renamed {i}", "priority": i, "done": True, "due": None}
        sent[v["task_id"]] = v
    produce_ok(b.bootstrap, topic, [(k.encode(), ser(v, ctx(topic))) for k, v in sent.items()])

    latest = reg.get(f"/subjects/{topic}-value/versions/latest")
    assert latest["schemaType"] == "JSON" and latest["version"] == 1
    assert json.loads(latest["schema"]) == TASK_UPDATED_JSON
    assert json.loads(reg.get(f"/schemas/ids/{latest['id']}")["schema"]) == TASK_UPDATED_JSON

    de = JSONDeserializer(None, schema_registry_client=sr_client(b))
    got = {}
    for m in consume_all(b.bootstrap, topic, 2, len(sent)):
        assert framed_id(m.value()) == latest["id"]
        got[m.key().decode()] = de(m.value(), ctx(topic))
    assert got == sent


def todo_proto_classes():
    """Task and Reminder message classes built at run time (no protoc): one file, two messages, a
    google.protobuf.Timestamp import."""
    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(name="vltava/todo.proto", package="vltava.todo", syntax="proto3",
                                             dependency=["google/protobuf/timestamp.proto"])
    task = fdp.message_type.add(name="Task")
    task.field.add(name="id", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    task.field.add(name="title", number=2, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    task.field.add(name="priority", number=3, type=F.TYPE_INT32, label=F.LABEL_OPTIONAL)
    task.field.add(name="tags", number=4, type=F.TYPE_STRING, label=F.LABEL_REPEATED)
    task.field.add(name="done", number=5, type=F.TYPE_BOOL, label=F.LABEL_OPTIONAL)
    task.field.add(name="due", number=6, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                   type_name=".google.protobuf.Timestamp")
    reminder = fdp.message_type.add(name="Reminder")
    reminder.field.add(name="task_id", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    reminder.field.add(name="at_ms", number=2, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(fdp)
    return (message_factory.GetMessageClass(pool.FindMessageTypeByName("vltava.todo.Task")),
            message_factory.GetMessageClass(pool.FindMessageTypeByName("vltava.todo.Reminder")))


def test_protobuf_serializer_round_trip_through_broker(broker_factory):
    b, reg = started(broker_factory)
    Task, Reminder = todo_proto_classes()
    conf = {"use.deprecated.format": False}
    bs = b.bootstrap
    create_topic(bs, "tasks-proto", 2)
    create_topic(bs, "reminders-proto", 1)

    ser = ProtobufSerializer(Task, sr_client(b), conf)
    tasks = {}
    for i in range(25):
        t = Task(id=f"task-{i}", title=f"title {i}", priority=i % 3, tags=[f"t{j}" for j in range(i % 4)],
                 done=i % 2 == 0)
        if i % 5:
            t.due.FromMilliseconds(1767323045000 + i * 1000)
        tasks[t.id] = t
    produce_ok(bs, "tasks-proto", [(k.encode(), ser(v, ctx("tasks-proto"))) for k, v in tasks.items()])
    rser = ProtobufSerializer(Reminder, sr_client(b), conf)
    reminders = {f"task-{i}": Reminder(task_id=f"task-{i}", at_ms=1767323045000 + i) for i in range(10)}
    produce_ok(bs, "reminders-proto", [(k.encode(), rser(v, ctx("reminders-proto"))) for k, v in reminders.items()])

    latest = reg.get("/subjects/tasks-proto-value/versions/latest")
    assert latest["schemaType"] == "PROTOBUF" and latest["version"] == 1
    assert "message Task" in latest["schema"] and "message Reminder" in latest["schema"]
    # The same file registered for the reminders topic: the same schema, so the same id.
    assert reg.get("/subjects/reminders-proto-value/versions/latest")["id"] == latest["id"]
    serialized = reg.get(f"/schemas/ids/{latest['id']}", format="serialized")
    fd = descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(serialized["schema"]))
    assert fd.package == "vltava.todo"
    assert [m.name for m in fd.message_type] == ["Task", "Reminder"]
    assert [(f.name, f.number) for f in fd.message_type[0].field] == [
        ("id", 1), ("title", 2), ("priority", 3), ("tags", 4), ("done", 5), ("due", 6)]
    assert "google/protobuf/timestamp.proto" in fd.dependency

    de = ProtobufDeserializer(Task, conf, schema_registry_client=sr_client(b))
    got = {}
    for m in consume_all(bs, "tasks-proto", 2, len(tasks)):
        assert framed_id(m.value()) == latest["id"]
        assert m.value()[5:6] == b"\x00", "message index of the first message is a single 0"
        got[m.key().decode()] = de(m.value(), ctx("tasks-proto"))
    assert got == tasks
    rde = ProtobufDeserializer(Reminder, conf, schema_registry_client=sr_client(b))
    got = {m.key().decode(): rde(m.value(), ctx("reminders-proto"))
           for m in consume_all(bs, "reminders-proto", 1, len(reminders))}
    assert got == reminders


def test_kafkajs_schema_registry_round_trip(broker_factory):
    b, reg = started(broker_factory)
    topic = "todo.tasks.kjs"
    out = json.loads(run_node("registry_roundtrip.js", b.bootstrap, b.registry, topic, "25").strip().splitlines()[-1])
    sid = out["id"]
    assert out["latestId"] == sid
    assert out["received"] == out["sent"] and len(out["sent"]) == 25
    assert out["wire"] == [{"magic": 0, "id": sid}] * 25
    assert out["offsets"] == list(range(25))
    # The id the Node client got resolves here to the schema it registered.
    assert pcf(reg.get(f"/schemas/ids/{sid}")["schema"]) == pcf(out["schema"])
    assert reg.versions(f"{topic}-value") == [1]
    # The library sets the subject's compatibility on first registration.
    assert reg.get(f"/config/{topic}-value")["compatibilityLevel"] == "BACKWARD"

    # confluent-kafka reads what KafkaJS wrote.
    de = AvroDeserializer(sr_client(b))
    decoded = [de(m.value(), ctx(topic)) for m in consume_all(b.bootstrap, topic, 1, 25)]
    assert [str(d["id"]) for d in decoded] == [s["id"] for s in out["sent"]]
    assert [ms(d["updated_at"]) for d in decoded] == [s["updated_at"] for s in out["sent"]]
    assert [(d["title"], d["description"], d["priority"], d["tags"], d["completed"]) for d in decoded] == [
        (s["title"], s["description"], s["priority"], s["tags"], s["completed"]) for s in out["sent"]]


# --- Registry API ------------------------------------------------------------------------------

def test_register_lookup_and_listing(broker_factory):
    b, reg = started(broker_factory)
    assert reg.get("/subjects") == []
    assert sorted(reg.get("/schemas/types")) == ["AVRO", "JSON", "PROTOBUF"]

    id1 = reg.register("users-value", USER_V1)
    # Idempotent: the same schema (whitespace differs, plain JSON content type) gets the same id and version.
    assert reg.register("users-value", json.dumps(json.loads(USER_V1), indent=4), ctype="application/json") == id1
    assert reg.register("users-value", USER_V1, schema_type="AVRO") == id1
    assert reg.versions("users-value") == [1]
    # The same schema under another subject: the same id.
    assert reg.register("people-value", USER_V1) == id1
    id2 = reg.register("users-value", USER_V2)
    assert id2 != id1
    assert reg.versions("users-value") == [1, 2]
    assert reg.versions("people-value") == [1]
    json_id = reg.register("events-value", jschema({"a": {"type": "string"}}), schema_type="JSON")
    proto_id = reg.register("orders-value", ORDER_PROTO, schema_type="PROTOBUF")
    assert len({id1, id2, json_id, proto_id}) == 4

    subjects = reg.get("/subjects")
    assert sorted(subjects) == ["events-value", "orders-value", "people-value", "users-value"]
    assert len(subjects) == 4

    latest = reg.get("/subjects/users-value/versions/latest")
    assert (latest["subject"], latest["version"], latest["id"]) == ("users-value", 2, id2)
    assert latest.get("schemaType", "AVRO") == "AVRO"
    assert json.loads(latest["schema"]) == json.loads(USER_V2)
    v1 = reg.get("/subjects/users-value/versions/1")
    assert (v1["subject"], v1["version"], v1["id"]) == ("users-value", 1, id1)
    assert reg.get("/subjects/users-value/versions/1/schema") == json.loads(USER_V1)
    assert reg.get("/subjects/orders-value/versions/latest")["schemaType"] == "PROTOBUF"
    assert reg.get("/subjects/events-value/versions/latest")["schemaType"] == "JSON"

    by_id = reg.get(f"/schemas/ids/{id1}")
    assert json.loads(by_id["schema"]) == json.loads(USER_V1)
    assert by_id.get("schemaType", "AVRO") == "AVRO"
    assert reg.get(f"/schemas/ids/{json_id}")["schemaType"] == "JSON"
    assert "message Order" in reg.get(f"/schemas/ids/{proto_id}")["schema"]
    assert sorted(reg.get(f"/schemas/ids/{id1}/subjects")) == ["people-value", "users-value"]
    assert sorted(reg.get(f"/schemas/ids/{id1}/versions"), key=lambda sv: sv["subject"]) == [
        {"subject": "people-value", "version": 1}, {"subject": "users-value", "version": 1}]
    assert reg.get(f"/schemas/ids/{id2}/versions") == [{"subject": "users-value", "version": 2}]

    # Lookup: POST /subjects/{s} finds the version a schema is registered as.
    found = reg.ok("POST", "/subjects/users-value", reg.body(USER_V1))
    assert (found["subject"], found["version"], found["id"]) == ("users-value", 1, id1)
    assert json.loads(found["schema"]) == json.loads(USER_V1)
    found = reg.ok("POST", "/subjects/orders-value", reg.body(ORDER_PROTO, "PROTOBUF"))
    assert (found["version"], found["id"]) == (1, proto_id)
    reg.fails("POST", "/subjects/users-value", 404, 40403, reg.body(USER_V3))
    reg.fails("POST", "/subjects/nobody-value", 404, 40401, reg.body(USER_V1))

    # confluent-kafka's client sees the same.
    client = sr_client(b)
    assert sorted(client.get_subjects()) == sorted(subjects)
    assert client.get_versions("users-value") == [1, 2]
    assert client.lookup_schema("users-value", Schema(USER_V2, "AVRO")).version == 2
    assert client.get_version("users-value", 1).schema_id == id1
    assert json.loads(client.get_schema(id2).schema_str) == json.loads(USER_V2)
    assert client.register_schema("users-value", Schema(USER_V2, "AVRO")) == id2
    assert sorted(client.get_schema_types()) == ["AVRO", "JSON", "PROTOBUF"]


def test_compatibility_config_global_and_per_subject(broker_factory):
    b, reg = started(broker_factory)
    assert reg.get("/config")["compatibilityLevel"] == "BACKWARD"
    reg.set_compat("FULL")
    assert reg.get("/config")["compatibilityLevel"] == "FULL"
    reg.set_compat("NONE", "free-value")
    assert reg.get("/config/free-value")["compatibilityLevel"] == "NONE"
    # No subject-level setting: 40408, unless asked to fall back to the global one.
    reg.fails("GET", "/config/strict-value", 404, 40408)
    assert reg.get("/config/strict-value", defaultToGlobal="true")["compatibilityLevel"] == "FULL"

    # FULL (global) applies to strict-value, NONE to free-value.
    for subject in ("strict-value", "free-value"):
        reg.register(subject, USER_V1)
    reg.register_fails("strict-value", avro_record([NAME, AGE]), 409, 409)
    reg.register("free-value", avro_record([NAME, AGE]))
    reg.register("free-value", avro_record([{"name": "name", "type": "long"}]))
    assert reg.versions("free-value") == [1, 2, 3]
    assert reg.versions("strict-value") == [1]

    client = sr_client(b)
    assert client.get_compatibility() == "FULL"
    assert client.get_compatibility("free-value") == "NONE"
    client.set_compatibility("strict-value", "FORWARD")
    assert reg.get("/config/strict-value")["compatibilityLevel"] == "FORWARD"

    # Deleting the subject-level setting falls back to the global one.
    assert reg.call("DELETE", "/config/free-value").status_code == 200
    reg.fails("GET", "/config/free-value", 404, 40408)
    assert reg.get("/config/free-value", defaultToGlobal="true")["compatibilityLevel"] == "FULL"
    reg.register_fails("free-value", avro_record([{"name": "name", "type": "long"}, AGE]), 409, 409)

    reg.fails("PUT", "/config", 422, 42203, {"compatibility": "SIDEWAYS"})
    reg.fails("PUT", "/config/strict-value", 422, 42203, {"compatibility": "backwardish"})
    assert reg.get("/config")["compatibilityLevel"] == "FULL"


def test_modes_readonly_readwrite_import(broker_factory):
    b, reg = started(broker_factory)
    assert reg.get("/mode") == {"mode": "READWRITE"}
    id1 = reg.register("users-value", USER_V1)

    assert reg.ok("PUT", "/mode", {"mode": "READONLY"}) == {"mode": "READONLY"}
    assert reg.get("/mode") == {"mode": "READONLY"}
    reg.register_fails("others-value", USER_V1, 422, 42205)
    reg.register_fails("users-value", USER_V2, 422, 42205)
    # Reads still work.
    assert reg.get(f"/schemas/ids/{id1}")["schema"]
    assert reg.ok("POST", "/subjects/users-value", reg.body(USER_V1))["id"] == id1
    assert reg.ok("PUT", "/mode", {"mode": "READWRITE"}) == {"mode": "READWRITE"}
    assert reg.register("others-value", USER_V1) == id1

    # A subject-level mode overrides the global one for that subject only.
    assert reg.ok("PUT", "/mode/users-value", {"mode": "READONLY"}) == {"mode": "READONLY"}
    assert reg.get("/mode/users-value") == {"mode": "READONLY"}
    reg.register_fails("users-value", USER_V2, 422, 42205)
    reg.register("others-value", USER_V2)
    reg.fails("GET", "/mode/others-value", 404, 40409)
    assert reg.get("/mode/others-value", defaultToGlobal="true") == {"mode": "READWRITE"}
    assert reg.call("DELETE", "/mode/users-value").status_code == 200
    reg.register("users-value", USER_V2)
    assert reg.versions("users-value") == [1, 2]

    # IMPORT needs an empty registry (unless forced); invalid modes are 42204.
    reg.fails("PUT", "/mode", 422, 42205, {"mode": "IMPORT"})
    assert reg.get("/mode") == {"mode": "READWRITE"}
    reg.fails("PUT", "/mode", 422, 42204, {"mode": "WRITEONLY"})
    reg.fails("PUT", "/mode/users-value", 422, 42204, {"mode": "readwrite-ish"})


def test_import_mode_keeps_given_ids(broker_factory):
    b, reg = started(broker_factory)
    assert reg.ok("PUT", "/mode", {"mode": "IMPORT"}) == {"mode": "IMPORT"}
    assert reg.register("imported-value", USER_V1, id=100, version=1) == 100
    assert reg.register("imported-value", USER_V2, id=250, version=2) == 250
    assert reg.register("elsewhere-value", USER_V3, id=180, version=7) == 180
    # IMPORT registrations must carry an id.
    r = reg.call("POST", "/subjects/noid-value/versions", reg.body(avro_record([NAME], "NoId")))
    assert r.status_code == 422, r.text
    assert reg.ok("PUT", "/mode", {"mode": "READWRITE"}) == {"mode": "READWRITE"}

    assert reg.versions("imported-value") == [1, 2]
    assert reg.versions("elsewhere-value") == [7]
    assert reg.get("/subjects/imported-value/versions/2")["id"] == 250
    assert json.loads(reg.get("/schemas/ids/100")["schema"]) == json.loads(USER_V1)
    assert json.loads(reg.get("/schemas/ids/180")["schema"]) == json.loads(USER_V3)
    # Registering an imported schema again finds it; a new schema gets an id past every imported one.
    assert reg.register("imported-value", USER_V2) == 250
    assert reg.register("fresh-value", avro_record([NAME], "Fresh")) > 250


def test_delete_subject_soft_then_hard(broker_factory):
    b, reg = started(broker_factory)
    id1 = reg.register("doomed", USER_V1)
    id2 = reg.register("doomed", USER_V2)
    reg.register("keeper", USER_V3)

    reg.fails("DELETE", "/subjects/doomed", 404, 40405, params={"permanent": "true"})
    assert reg.ok("DELETE", "/subjects/doomed") == [1, 2]
    assert reg.get("/subjects") == ["keeper"]
    assert sorted(reg.get("/subjects", deleted="true")) == ["doomed", "keeper"]
    reg.fails("GET", "/subjects/doomed/versions", 404, 40401)
    reg.fails("GET", "/subjects/doomed/versions/latest", 404, 40401)
    assert reg.versions("doomed", deleted=True) == [1, 2]
    # Ids of soft-deleted schemas still resolve (old records keep their framing valid).
    assert json.loads(reg.get(f"/schemas/ids/{id1}")["schema"]) == json.loads(USER_V1)
    found = reg.ok("POST", "/subjects/doomed", reg.body(USER_V2), params={"deleted": "true"})
    assert (found["version"], found["id"]) == (2, id2)
    reg.fails("DELETE", "/subjects/doomed", 404, 40404)

    assert reg.ok("DELETE", "/subjects/doomed", params={"permanent": "true"}) == [1, 2]
    assert reg.get("/subjects", deleted="true") == ["keeper"]
    reg.fails("GET", "/subjects/doomed/versions", 404, 40401, params={"deleted": "true"})
    reg.fails("DELETE", "/subjects/doomed", 404, 40401, params={"permanent": "true"})
    reg.fails("DELETE", "/subjects/never-was", 404, 40401)

    # Re-registering into a soft-deleted subject: same ids, versions continue after the deleted ones.
    ia = reg.register("phoenix", USER_V1)
    ib = reg.register("phoenix", USER_V2)
    assert reg.ok("DELETE", "/subjects/phoenix") == [1, 2]
    assert reg.register("phoenix", USER_V1) == ia
    assert reg.register("phoenix", USER_V2) == ib
    assert reg.versions("phoenix") == [3, 4]
    reg.fails("GET", "/subjects/phoenix/versions/1", 404, 40402)


def test_delete_version_soft_then_hard(broker_factory):
    b, reg = started(broker_factory)
    ids = [reg.register("versioned", s) for s in (USER_V1, USER_V2, USER_V3)]

    reg.fails("DELETE", "/subjects/versioned/versions/2", 404, 40407, params={"permanent": "true"})
    assert reg.ok("DELETE", "/subjects/versioned/versions/2") == 2
    assert reg.versions("versioned") == [1, 3]
    assert reg.versions("versioned", deleted=True) == [1, 2, 3]
    reg.fails("GET", "/subjects/versioned/versions/2", 404, 40402)
    soft = reg.get("/subjects/versioned/versions/2", deleted="true")
    assert (soft["version"], soft["id"]) == (2, ids[1])
    reg.fails("DELETE", "/subjects/versioned/versions/2", 404, 40406)
    reg.fails("POST", "/subjects/versioned", 404, 40403, reg.body(USER_V2))
    assert reg.get("/subjects/versioned/versions/latest")["version"] == 3

    assert reg.ok("DELETE", "/subjects/versioned/versions/2", params={"permanent": "true"}) == 2
    reg.fails("GET", "/subjects/versioned/versions/2", 404, 40402, params={"deleted": "true"})
    assert reg.versions("versioned", deleted=True) == [1, 3]
    reg.fails("DELETE", "/subjects/versioned/versions/2", 404, 40402, params={"permanent": "true"})
    reg.fails("DELETE", "/subjects/versioned/versions/99", 404, 40402)
    reg.fails("DELETE", "/subjects/nowhere/versions/1", 404, 40401)

    assert reg.ok("DELETE", "/subjects/versioned/versions/latest") == 3
    latest = reg.get("/subjects/versioned/versions/latest")
    assert (latest["version"], latest["id"]) == (1, ids[0])
    assert reg.ok("DELETE", "/subjects/versioned/versions/1") == 1
    # No live version left: the subject is gone from listings.
    reg.fails("GET", "/subjects/versioned/versions", 404, 40401)
    assert "versioned" not in reg.get("/subjects")


ADDRESS = {"type": "record", "name": "Address", "namespace": "vltava.test",
           "fields": [{"name": "street", "type": "string"}, {"name": "city", "type": "string"}]}
CUSTOMER = {"type": "record", "name": "Customer", "namespace": "vltava.test",
            "fields": [{"name": "name", "type": "string"}, {"name": "address", "type": "vltava.test.Address"}]}


def test_schema_references(broker_factory):
    b, reg = started(broker_factory)
    ref = {"name": "vltava.test.Address", "subject": "address", "version": 1}
    address_id = reg.register("address", ADDRESS)
    # Without the reference the named type is unknown: an invalid schema.
    reg.register_fails("customers-value", CUSTOMER, 422, 42201)
    customer_id = reg.register("customers-value", CUSTOMER, references=[ref])
    assert customer_id != address_id
    assert reg.register("customers-value", CUSTOMER, references=[ref]) == customer_id

    by_id = reg.get(f"/schemas/ids/{customer_id}")
    assert by_id["references"] == [ref]
    stored = json.loads(by_id["schema"])
    assert (stored["name"], [f["name"] for f in stored["fields"]]) == ("Customer", ["name", "address"])
    # The referenced type stays a name (Avro may shorten it within the same namespace).
    assert stored["fields"][1]["type"] in ("vltava.test.Address", "Address")
    assert reg.get("/subjects/customers-value/versions/latest")["references"] == [ref]
    assert reg.get("/subjects/address/versions/1/referencedby") == [customer_id]

    # confluent-kafka resolves the reference on both sides.
    create_topic(b.bootstrap, "customers")
    ser = AvroSerializer(sr_client(b), Schema(json.dumps(CUSTOMER), "AVRO", [SchemaReference(**ref)]),
                         conf={"auto.register.schemas": False, "use.latest.version": True})
    customers = [{"name": f"c{i}", "address": {"street": f"{i} Main St", "city": "Praha"}} for i in range(5)]
    produce_ok(b.bootstrap, "customers", [(None, ser(c, ctx("customers"))) for c in customers])
    de = AvroDeserializer(sr_client(b))
    msgs = consume_all(b.bootstrap, "customers", 1, len(customers))
    assert [framed_id(m.value()) for m in msgs] == [customer_id] * len(customers)
    assert [de(m.value(), ctx("customers")) for m in msgs] == customers

    # A referenced version cannot be deleted; once the referrer is gone it can.
    reg.fails("DELETE", "/subjects/address/versions/1", 422, 42206)
    assert reg.versions("address") == [1]
    assert reg.ok("DELETE", "/subjects/customers-value") == [1]
    assert reg.get("/subjects/address/versions/1/referencedby") == []
    assert reg.ok("DELETE", "/subjects/address/versions/1") == 1


def test_error_codes(broker_factory):
    b, reg = started(broker_factory)
    reg.register("users-value", USER_V1)

    undefined_type = {"type": "record", "name": "Bad", "fields": [{"name": "x", "type": "no.such.Type"}]}
    reg.register_fails("bad-value", undefined_type, 422, 42201)
    reg.register_fails("bad-value", "{this is not json", 422, 42201)
    reg.register_fails("bad-value", "{not json either", 422, 42201, schema_type="JSON")
    reg.register_fails("bad-value", 'syntax = "proto3";\nmessage {', 422, 42201, schema_type="PROTOBUF")
    reg.fails("GET", "/subjects/bad-value/versions", 404, 40401)

    reg.fails("GET", "/subjects/nope/versions", 404, 40401)
    reg.fails("GET", "/subjects/nope/versions/latest", 404, 40401)
    reg.fails("GET", "/subjects/users-value/versions/99", 404, 40402)
    reg.fails("GET", "/subjects/users-value/versions/abc", 422, 42202)
    reg.fails("GET", "/subjects/users-value/versions/0", 422, 42202)
    reg.fails("GET", "/schemas/ids/987654", 404, 40403)
    reg.fails("PUT", "/config", 422, 42203, {"compatibility": "SIDEWAYS"})
    reg.fails("PUT", "/mode", 422, 42204, {"mode": "SIDEWAYS"})
    reg.fails("POST", "/compatibility/subjects/users-value/versions/100", 404, 40402, reg.body(USER_V2))
    reg.fails("POST", "/compatibility/subjects/users-value/versions/earliest", 422, 42202, reg.body(USER_V2))
    # Nothing to be incompatible with.
    assert reg.compatible("nobody-value", USER_V1)["is_compatible"] is True

    client = sr_client(b)
    with pytest.raises(SchemaRegistryError) as e:
        client.get_latest_version("nope")
    assert (e.value.http_status_code, e.value.error_code) == (404, 40401)
    with pytest.raises(SchemaRegistryError) as e:
        client.get_schema(987654)
    assert (e.value.http_status_code, e.value.error_code) == (404, 40403)
    with pytest.raises(SchemaRegistryError) as e:
        client.register_schema("users-value", Schema(avro_record([NAME, AGE]), "AVRO"))
    assert (e.value.http_status_code, e.value.error_code) == (409, 409)


def test_no_registry_flag(broker_factory):
    b = broker_factory("--no-registry")
    # The Kafka port opens before recovery ends; readiness follows it.
    wait_until(lambda: requests.get(f"{b.http}/health/ready", timeout=5).status_code == 200, 15,
               what="/health/ready 200")
    assert not port_open(b.registry_port)
    create_topic(b.bootstrap, "plain")
    produce_ok(b.bootstrap, "plain", [(b"k", b"v")])


# --- Compatibility rules -----------------------------------------------------------------------

def check_evolution(reg, subject, level, first, second, compatible, schema_type=None):
    """Registers `first` under `level`, then checks `second` with the compatibility endpoint and by
    registering it: 200 with a new version if compatible, 409 otherwise."""
    reg.set_compat(level, subject)
    reg.register(subject, first, schema_type=schema_type)
    assert reg.compatible(subject, second, schema_type)["is_compatible"] is compatible
    verbose = reg.compatible(subject, second, schema_type, verbose=True)
    assert verbose["is_compatible"] is compatible
    if compatible:
        reg.register(subject, second, schema_type=schema_type)
        assert reg.versions(subject) == [1, 2]
    else:
        assert isinstance(verbose.get("messages"), list) and verbose["messages"], verbose
        assert all(isinstance(m, str) and m for m in verbose["messages"])
        reg.register_fails(subject, second, 409, 409, schema_type=schema_type)
        assert reg.versions(subject) == [1]


AVRO_CASES = [
    # (id, level, first fields, second fields, compatible)
    ("add-field-with-default", "BACKWARD", [NAME], [NAME, AGE_DEFAULT], True),
    ("add-field-without-default", "BACKWARD", [NAME], [NAME, AGE], False),
    ("remove-field", "BACKWARD", [NAME, AGE], [NAME], True),
    ("promote-int-to-long", "BACKWARD", [NAME, AGE], [NAME, {"name": "age", "type": "long"}], True),
    ("narrow-long-to-int", "BACKWARD", [NAME, {"name": "age", "type": "long"}], [NAME, AGE], False),
    ("change-type", "BACKWARD", [NAME], [{"name": "name", "type": "int"}], False),
    ("forward-remove-field-without-default", "FORWARD", [NAME, AGE], [NAME], False),
    ("forward-remove-field-with-default", "FORWARD", [NAME, AGE_DEFAULT], [NAME], True),
    ("forward-add-field-without-default", "FORWARD", [NAME], [NAME, AGE], True),
    ("full-add-field-with-default", "FULL", [NAME], [NAME, AGE_DEFAULT], True),
    ("full-add-field-without-default", "FULL", [NAME], [NAME, AGE], False),
    ("full-remove-field-without-default", "FULL", [NAME, AGE], [NAME], False),
    ("full-swap-defaulted-fields", "FULL", [NAME, AGE_DEFAULT], [NAME, EMAIL_DEFAULT], True),
    ("none-change-type", "NONE", [NAME], [{"name": "name", "type": "int"}], True),
    ("none-add-field-without-default", "NONE", [NAME], [NAME, AGE], True),
]


@pytest.mark.parametrize("level,first,second,compatible", [c[1:] for c in AVRO_CASES], ids=[c[0] for c in AVRO_CASES])
def test_avro_compatibility(broker_factory, level, first, second, compatible):
    b, reg = started(broker_factory)
    check_evolution(reg, "avro-evolution", level, avro_record(first), avro_record(second), compatible)


# Three versions where the third is compatible with the second but not with the first.
TRANSITIVE = {
    # v3 (age without default) reads v2 data (which has age) but not v1 data.
    "backward": [[NAME], [NAME, AGE_DEFAULT], [NAME, AGE]],
    # v1 (age without default) cannot read v3 data (no age); v2 (age with default) can.
    "forward": [[NAME, AGE], [NAME, AGE_DEFAULT], [NAME]],
}
TRANSITIVE_CASES = [
    ("backward", "BACKWARD", True), ("backward", "BACKWARD_TRANSITIVE", False),
    ("backward", "FULL", True), ("backward", "FULL_TRANSITIVE", False),
    ("forward", "FORWARD", True), ("forward", "FORWARD_TRANSITIVE", False),
    ("forward", "FULL", True), ("forward", "FULL_TRANSITIVE", False),
    ("backward", "NONE", True),
]


@pytest.mark.parametrize("scenario,level,third_ok", TRANSITIVE_CASES, ids=[f"{s}-{l}" for s, l, _ in TRANSITIVE_CASES])
def test_avro_transitive_compatibility(broker_factory, scenario, level, third_ok):
    b, reg = started(broker_factory)
    subject = "transitive-value"
    v1, v2, v3 = (avro_record(f) for f in TRANSITIVE[scenario])
    reg.set_compat(level, subject)
    reg.register(subject, v1)
    reg.register(subject, v2)
    # versions/latest compares with the latest version only, whatever the level: v3 fits v2.
    assert reg.compatible(subject, v3)["is_compatible"] is True
    if third_ok:
        reg.register(subject, v3)
        assert reg.versions(subject) == [1, 2, 3]
    else:
        reg.register_fails(subject, v3, 409, 409)
        assert reg.versions(subject) == [1, 2]
        # ...while against version 1 alone the endpoint reports the incompatibility.
        assert reg.compatible(subject, v3, version="1")["is_compatible"] is False


JSON_CASES = [
    # (id, first, second, compatible under BACKWARD) -- outcomes of Confluent's JsonSchemaDiff.
    ("property-type-string-to-integer",
     jschema({"a": {"type": "string"}}), jschema({"a": {"type": "integer"}}), False),
    ("optional-property-added-to-closed-model",
     jschema({"a": {"type": "string"}}, closed=True),
     jschema({"a": {"type": "string"}, "b": {"type": "integer"}}, closed=True), True),
    ("required-property-added-to-closed-model",
     jschema({"a": {"type": "string"}}, closed=True),
     jschema({"a": {"type": "string"}, "b": {"type": "integer"}}, required=["b"], closed=True), False),
    ("property-added-to-open-model",
     jschema({"a": {"type": "string"}}),
     jschema({"a": {"type": "string"}, "b": {"type": "integer"}}), False),
    ("property-removed-from-closed-model",
     jschema({"a": {"type": "string"}, "b": {"type": "integer"}}, closed=True),
     jschema({"a": {"type": "string"}}, closed=True), False),
    ("property-removed-from-open-model",
     jschema({"a": {"type": "string"}, "b": {"type": "integer"}}),
     jschema({"a": {"type": "string"}}), True),
    ("max-length-narrowed",
     jschema({"a": {"type": "string", "maxLength": 20}}), jschema({"a": {"type": "string", "maxLength": 10}}), False),
    ("max-length-widened",
     jschema({"a": {"type": "string", "maxLength": 10}}), jschema({"a": {"type": "string", "maxLength": 20}}), True),
    ("property-made-required",
     jschema({"a": {"type": "string"}, "b": {"type": "integer"}}),
     jschema({"a": {"type": "string"}, "b": {"type": "integer"}}, required=["b"]), False),
    ("property-made-optional",
     jschema({"a": {"type": "string"}, "b": {"type": "integer"}}, required=["b"]),
     jschema({"a": {"type": "string"}, "b": {"type": "integer"}}), True),
]


@pytest.mark.parametrize("first,second,compatible", [c[1:] for c in JSON_CASES], ids=[c[0] for c in JSON_CASES])
def test_json_schema_compatibility(broker_factory, first, second, compatible):
    b, reg = started(broker_factory)
    check_evolution(reg, "json-evolution", "BACKWARD", first, second, compatible, schema_type="JSON")


def test_json_schema_compatibility_none_accepts_anything(broker_factory):
    b, reg = started(broker_factory)
    check_evolution(reg, "json-none", "NONE", jschema({"a": {"type": "string"}}), jschema({"a": {"type": "integer"}}),
                    True, schema_type="JSON")


ORDER_V1 = "message Order {\n  string id = 1;\n  int32 quantity = 2;\n}"
PROTO_CASES = [
    # (id, first, second, compatible under BACKWARD) -- outcomes of Confluent's protobuf SchemaDiff.
    ("field-added", proto(ORDER_V1),
     proto("message Order {\n  string id = 1;\n  int32 quantity = 2;\n  string note = 3;\n}"), True),
    ("field-removed", proto(ORDER_V1), proto("message Order {\n  string id = 1;\n}"), True),
    ("field-renamed", proto(ORDER_V1), proto("message Order {\n  string id = 1;\n  int32 qty = 2;\n}"), True),
    ("int32-to-int64", proto(ORDER_V1), proto("message Order {\n  string id = 1;\n  int64 quantity = 2;\n}"), True),
    ("string-to-int32", proto(ORDER_V1), proto("message Order {\n  int32 id = 1;\n  int32 quantity = 2;\n}"), False),
    ("scalar-to-message", proto(ORDER_V1 + "\nmessage Qty {\n  int32 n = 1;\n}"),
     proto("message Order {\n  string id = 1;\n  Qty quantity = 2;\n}\nmessage Qty {\n  int32 n = 1;\n}"), False),
    ("message-removed", proto(ORDER_V1 + "\nmessage Line {\n  string sku = 1;\n}"), proto(ORDER_V1), False),
    ("message-added", proto(ORDER_V1), proto(ORDER_V1 + "\nmessage Line {\n  string sku = 1;\n}"), True),
    ("package-changed", proto(ORDER_V1), proto(ORDER_V1, package="vltava.other"), False),
]


@pytest.mark.parametrize("first,second,compatible", [c[1:] for c in PROTO_CASES], ids=[c[0] for c in PROTO_CASES])
def test_protobuf_compatibility(broker_factory, first, second, compatible):
    b, reg = started(broker_factory)
    check_evolution(reg, "proto-evolution", "BACKWARD", first, second, compatible, schema_type="PROTOBUF")


# --- Durability of ids -------------------------------------------------------------------------

@pytest.mark.parametrize("stop", ["sigterm", "kill9"])
def test_ids_stable_across_restart(broker_factory, stop):
    b, reg = started(broker_factory)
    schemas = [  # (subject, schema, type)
        ("users-value", USER_V1, None),
        ("users-value", USER_V2, None),
        ("mirror-value", USER_V1, None),
        ("tasks-value", json.dumps(TASK_CREATED), None),
        ("events-value", json.dumps(TASK_UPDATED_JSON), "JSON"),
        ("orders-value", ORDER_PROTO, "PROTOBUF"),
        ("doomed-value", avro_record([NAME], "Doomed"), None),
    ]
    ids = [reg.register(s, schema, schema_type=t) for s, schema, t in schemas]
    assert ids[0] == ids[2] and len(set(ids)) == 6
    reg.set_compat("FULL", "users-value")
    assert reg.ok("DELETE", "/subjects/doomed-value") == [1]
    # A record framed before the restart must decode after it.
    create_topic(b.bootstrap, "tasks")
    ser = AvroSerializer(sr_client(b), json.dumps(TASK_CREATED))
    produce_ok(b.bootstrap, "tasks", [(b"k", ser(task_created(1), ctx("tasks")))])

    def snapshot():
        return {
            "ids": {i: reg.get(f"/schemas/ids/{i}") for i in set(ids)},
            "subjects": sorted(reg.get("/subjects")),
            "deleted": sorted(reg.get("/subjects", deleted="true")),
            "versions": {s: reg.versions(s) for s in ("users-value", "mirror-value", "tasks-value", "events-value",
                                                      "orders-value")},
            "latest": reg.get("/subjects/users-value/versions/latest"),
            "config": reg.get("/config/users-value"),
        }

    before = snapshot()
    if stop == "kill9":
        b.kill9()
        b.start()
    else:
        assert b.restart() is b
    b.wait_registry()
    assert snapshot() == before
    assert before["config"]["compatibilityLevel"] == "FULL"
    assert "doomed-value" not in before["subjects"] and "doomed-value" in before["deleted"]

    again = [reg.register(s, schema, schema_type=t) for s, schema, t in schemas]
    assert again == ids
    assert reg.versions("doomed-value") == [2], "re-registering into a soft-deleted subject continues its versions"
    new_id = reg.register("users-value", USER_V3)
    assert new_id > max(ids)
    de = AvroDeserializer(sr_client(b))
    [m] = consume_all(b.bootstrap, "tasks", 1, 1)
    assert framed_id(m.value()) == ids[3]
    assert de(m.value(), ctx("tasks")) == task_created(1)


# --- Broker-side schema validation -------------------------------------------------------------

def test_broker_validates_value_schema_ids(broker_factory):
    b, reg = started(broker_factory)
    bs = b.bootstrap
    topic = "validated"
    create_topic(bs, topic, 1, {"confluent.value.schema.validation": "true"})
    create_topic(bs, "unvalidated", 1)
    admin = AdminClient({"bootstrap.servers": bs})
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    assert admin.describe_configs([res])[res].result(10)["confluent.value.schema.validation"].value == "true"

    ser = AvroSerializer(sr_client(b), USER_V1)
    good = ser({"name": "alice"}, ctx(topic))
    sid = framed_id(good)
    assert reg.get(f"/subjects/{topic}-value/versions/latest")["id"] == sid
    other_id = reg.register("other-value", avro_record([NAME], "Other"))
    unknown_id = max(sid, other_id) + 1000

    def rejected(value):
        [(err, _)] = produce(bs, topic, [(b"k", value)], **{"linger.ms": 0})
        assert err is not None, f"{value[:12]!r} was accepted"
        assert err.code() == KafkaError.INVALID_RECORD, err
        return err

    def accepted(value):
        [(err, msg)] = produce(bs, topic, [(b"k", value)], **{"linger.ms": 0})
        assert err is None, err
        return msg.offset()

    assert accepted(good) == 0
    rejected(b"hello")
    rejected(b"")
    rejected(b"\x00\x00")
    rejected(b"\x00" + struct.pack(">I", other_id) + good[5:])
    rejected(b"\x00" + struct.pack(">I", unknown_id) + good[5:])
    rejected(b"\x01" + good[1:])
    assert accepted(ser({"name": "bob"}, ctx(topic))) == 1
    # A second schema registered under <topic>-value is accepted too.
    ser2 = AvroSerializer(sr_client(b), USER_V2)
    v2 = ser2({"name": "carol", "age": 3}, ctx(topic))
    assert framed_id(v2) != sid
    assert accepted(v2) == 2
    # The topic without the config takes anything.
    produce_ok(bs, "unvalidated", [(b"k", b"hello")])

    values = [m.value() for m in consume_all(bs, topic, 1, 3)]
    assert values[0] == good and values[2] == v2
    assert all(framed_id(v) in (sid, framed_id(v2)) for v in values)


# --- Hostile schemas and bodies (issue 23, items 7 and 18) -------------------------------------

def nested_proto(depth):
    """`message M0 { message M1 { ... } }`, `depth` messages deep."""
    return 'syntax = "proto3";\n' + "".join(f"message M{i} {{ " for i in range(depth)) + "}" * depth + "\n"


def test_deeply_nested_protobuf_schema_is_refused_and_the_broker_survives(broker_factory):
    b, reg = started(broker_factory)
    create_topic(b.bootstrap, "survivor")
    produce_ok(b.bootstrap, "survivor", [(b"k", b"before")])
    deep = nested_proto(800)
    body = json.dumps(reg.body(deep, "PROTOBUF"))
    headers = {"Content-Type": SR_JSON}
    targets = [
        f"{b.registry}/subjects/deep-value/versions",
        f"{b.registry}/compatibility/subjects/deep-value/versions/latest",
        f"{b.registry}/subjects/deep-value",
        # The web console forwards /api/registry/* to the registry.
        f"{b.http}/api/registry/subjects/deep-value/versions",
    ]
    for url in targets:
        try:
            r = requests.post(url, data=body, headers=headers, timeout=20)
        except requests.ConnectionError as e:
            raise AssertionError(f"POST {url} of an 800-deep Protobuf schema: no answer ({e}); "
                                 f"broker exit code {b.proc.poll()}") from e
        assert r.status_code == 422, f"POST {url}: {r.status_code} {r.text[:300]}"
        err = r.json()
        assert err["error_code"] == 42201, err
        assert "nest" in err["message"], err
    assert b.proc.poll() is None, "the process died"
    # The broker still serves clients, and the registry still works.
    produce_ok(b.bootstrap, "survivor", [(b"k", b"after")])
    assert [m.value() for m in consume_all(b.bootstrap, "survivor", 1, 2)] == [b"before", b"after"]
    assert reg.register("fine-value", proto("message Fine { string a = 1; }"), "PROTOBUF") > 0
    # A schema nested well within the limit is still accepted.
    assert reg.register("nested-value", nested_proto(30), "PROTOBUF") > 0
    reg.fails("GET", "/subjects/deep-value/versions", 404, 40401)


def test_request_body_limit_is_the_registrys_own_with_json_errors(broker_factory):
    b, reg = started(broker_factory)
    headers = {"Content-Type": SR_JSON}
    # 3 MiB is within the registry's 8 MiB body limit (axum's default 2 MiB must not apply):
    # the registry itself answers, refusing a schema that large.
    big = {"type": "record", "name": "Big", "fields": [], "doc": "x" * (3 * 1024 * 1024)}
    r = requests.post(f"{b.registry}/subjects/big-value/versions",
                      data=json.dumps({"schema": json.dumps(big)}), headers=headers, timeout=30)
    assert r.status_code == 422, f"{r.status_code} {r.text[:300]}"
    assert r.json()["error_code"] == 42201, r.text[:300]
    # Over 8 MiB: 413, as Confluent-style JSON.
    huge = {"type": "record", "name": "Huge", "fields": [], "doc": "x" * (9 * 1024 * 1024)}
    for path in ["/subjects/huge-value/versions", "/config"]:
        r = requests.request("PUT" if path == "/config" else "POST", f"{b.registry}{path}",
                             data=json.dumps({"schema": json.dumps(huge)}), headers=headers, timeout=30)
        assert r.status_code == 413, f"{path}: {r.status_code} {r.text[:300]}"
        assert r.headers["Content-Type"].startswith(SR_JSON), r.headers
        err = r.json()
        assert err["error_code"] == 413 and "8388608" in err["message"], err
    # A request body nested deeper than the JSON parser allows is a 400, not a crash.
    r = requests.post(f"{b.registry}/subjects/x-value/versions", data="[" * 100_000, headers=headers, timeout=20)
    assert r.status_code == 400 and r.json()["error_code"] == 400, r.text[:300]
    assert reg.register("after-value", USER_V1) > 0
