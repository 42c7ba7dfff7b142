"""The HTTP API against a running Vltava, cross-checked with confluent-kafka: REST v3 produce,
v2 consumer instances, /metrics (parsed by prometheus_client), /status, error bodies, and a
schemathesis run over /openapi.json."""
import base64
import json
import os
import subprocess
import sys

import pytest
import requests
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client.parser import text_string_to_metric_families

from conftest import wait_until
from util import read_messages, watermarks

pytestmark = pytest.mark.timeout(240)


def b64(b):
    return base64.b64encode(b).decode()


def cluster_id(b):
    r = requests.get(f"{b.http}/v3/clusters", timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["data"][0]["cluster_id"]


def create_topic(bs, name, partitions):
    admin = AdminClient({"bootstrap.servers": bs})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(10)


def read_raw(bs, topic, partitions, expected, timeout_s=30):
    """Every record of `topic` read by librdkafka without a group: list of messages."""
    return read_messages(bs, topic, partitions, expected, timeout_s)


def committed(bs, group, topic, partitions):
    c = Consumer({"bootstrap.servers": bs, "group.id": group, "enable.auto.commit": False})
    try:
        return {tp.partition: tp.offset for tp in
                c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)}
    finally:
        c.close()


def test_health_and_status_reflect_a_new_topic(broker_factory):
    b = broker_factory()
    assert requests.get(f"{b.http}/health/live", timeout=5).json() == {"status": "live"}
    # The Kafka port opens before recovery ends; readiness follows it.
    wait_until(lambda: requests.get(f"{b.http}/health/ready", timeout=5).status_code == 200, 15,
               what="/health/ready 200")
    create_topic(b.bootstrap, "fresh-topic", 4)
    st = requests.get(f"{b.http}/status", timeout=10).json()
    assert st["node_id"] == 1 and st["kafka"] == "connected"
    assert st["bootstrap"] == b.bootstrap
    assert [l["bootstrap"] for l in st["listeners"]] == [b.bootstrap]
    topics = {t["name"]: t for t in st["topics"]}
    assert topics["fresh-topic"]["partitions"] == 4 and topics["fresh-topic"]["records"] == 0

    p = Producer({"bootstrap.servers": b.bootstrap})
    for i in range(12):
        p.produce("fresh-topic", value=b"x" * 100, partition=i % 4)
    assert p.flush(10) == 0
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "status-group", "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    c.assign([TopicPartition("fresh-topic", 0, 0)])
    got = []
    wait_until(lambda: got.extend(c.consume(10, 0.5)) or len(got) >= 3, 20, what="3 records")
    c.commit(asynchronous=False)
    c.close()
    st = requests.get(f"{b.http}/status", timeout=10).json()
    t = {t["name"]: t for t in st["topics"]}["fresh-topic"]
    assert t["records"] == 12 and t["size_bytes"] > 1200
    groups = {g["group"]: g for g in st["groups"]}
    assert groups["status-group"]["total_lag"] == 0 and groups["status-group"]["state"] == "Empty"


def test_rest_produce_is_read_by_confluent(broker_factory):
    b = broker_factory()
    cid = cluster_id(b)
    url = f"{b.http}/v3/clusters/{cid}/topics"
    r = requests.post(url, json={"topic_name": "rest-in", "partitions_count": 3,
                                 "configs": [{"name": "retention.ms", "value": "86400000"}]}, timeout=10)
    assert r.status_code == 201, r.text
    assert r.json()["partitions_count"] == 3
    assert "rest-in" in [t["topic_name"] for t in requests.get(url, timeout=10).json()["data"]]
    configs = {c["name"]: c for c in requests.get(f"{url}/rest-in/configs", timeout=10).json()["data"]}
    assert configs["retention.ms"]["value"] == "86400000" and not configs["retention.ms"]["is_default"]
    brokers = requests.get(f"{b.http}/v3/clusters/{cid}/brokers", timeout=10).json()["data"]
    assert [(x["broker_id"], x["port"]) for x in brokers] == [(1, b.port)]

    records = [
        {"key": {"type": "STRING", "data": "order-1"}, "value": {"type": "JSON", "data": {"total": 12, "items": ["a"]}},
         "headers": [{"name": "source", "value": b64(b"rest")}, {"name": "empty", "value": None}]},
        {"partition_id": 2, "value": {"type": "BINARY", "data": b64(bytes(range(256)))},
         "timestamp": "2026-01-02T03:04:05.678Z"},
        {"key": {"type": "BINARY", "data": b64(b"\x00\x01key")}, "value": {"type": "STRING", "data": "plain text"}},
        {"key": {"type": "STRING", "data": "order-1"}, "value": None},
    ]
    reports = []
    for rec in records:
        r = requests.post(f"{url}/rest-in/records", json=rec, timeout=10)
        assert r.status_code == 200, r.text
        assert r.json()["error_code"] == 200
        reports.append(r.json())
    # A stream of concatenated JSON records: one report each, in order.
    stream = "".join(json.dumps({"key": {"type": "STRING", "data": f"s{i}"}, "value": {"type": "STRING", "data": f"v{i}"}})
                     for i in range(20))
    r = requests.post(f"{url}/rest-in/records", data=stream, headers={"Content-Type": "application/json"}, timeout=20)
    assert r.status_code == 200, r.text
    streamed = [json.loads(line) for line in r.text.splitlines() if line.strip()]
    assert len(streamed) == 20 and all(s["error_code"] == 200 for s in streamed)
    reports += streamed

    msgs = read_raw(b.bootstrap, "rest-in", 3, len(reports))
    assert len(msgs) == len(reports)
    by_pos = {(m.partition(), m.offset()): m for m in msgs}
    m0 = by_pos[(reports[0]["partition_id"], reports[0]["offset"])]
    assert m0.key() == b"order-1" and json.loads(m0.value()) == {"total": 12, "items": ["a"]}
    assert m0.headers() == [("source", b"rest"), ("empty", None)]
    m1 = by_pos[(2, reports[1]["offset"])]
    assert reports[1]["partition_id"] == 2 and m1.value() == bytes(range(256)) and m1.key() is None
    assert m1.timestamp()[1] == 1767323045678
    m2 = by_pos[(reports[2]["partition_id"], reports[2]["offset"])]
    assert m2.key() == b"\x00\x01key" and m2.value() == b"plain text"
    m3 = by_pos[(reports[3]["partition_id"], reports[3]["offset"])]
    assert m3.value() is None and reports[3]["partition_id"] == reports[0]["partition_id"]
    for i, s in enumerate(streamed):
        m = by_pos[(s["partition_id"], s["offset"])]
        assert (m.key(), m.value()) == (f"s{i}".encode(), f"v{i}".encode())

    # Keys go where the Java client (murmur2) would put them.
    p = Producer({"bootstrap.servers": b.bootstrap, "partitioner": "murmur2_random"})
    placed = {}
    for i in range(20):
        p.produce("rest-in", key=f"s{i}", value=b"check",
                  on_delivery=lambda err, msg: placed.__setitem__(msg.key().decode(), msg.partition()))
    assert p.flush(10) == 0
    assert all(placed[f"s{i}"] == s["partition_id"] for i, s in enumerate(streamed))

    assert requests.delete(f"{url}/rest-in", timeout=10).status_code == 204
    assert requests.get(f"{url}/rest-in", timeout=10).status_code == 404


def test_rest_consumer_instance_reads_confluent_records(broker_factory):
    b = broker_factory("--http-consumer-idle-timeout-ms", "2000")
    create_topic(b.bootstrap, "to-http", 2)
    p = Producer({"bootstrap.servers": b.bootstrap})
    sent = {}
    for i in range(40):
        value = json.dumps({"n": i}).encode()
        p.produce("to-http", key=f"k{i}".encode(), value=value, partition=i % 2)
        sent[f"k{i}".encode()] = value
    assert p.flush(10) == 0

    base = f"{b.http}/consumers/http-group"
    r = requests.post(base, json={"name": "reader", "format": "binary", "auto.offset.reset": "earliest",
                                  "auto.commit.enable": "false"}, timeout=10)
    assert r.status_code == 200, r.text
    inst = r.json()["base_uri"]
    assert inst == f"{b.http}/consumers/http-group/instances/reader"
    assert requests.post(f"{inst}/subscription", json={"topics": ["to-http"]}, timeout=10).status_code == 204
    assert requests.get(f"{inst}/subscription", timeout=10).json() == {"topics": ["to-http"]}
    got = {}

    def fetch():
        r = requests.get(f"{inst}/records", params={"timeout": 1000},
                         headers={"Accept": "application/vnd.kafka.binary.v2+json"}, timeout=20)
        assert r.status_code == 200, r.text
        for rec in r.json():
            got[base64.b64decode(rec["key"])] = (base64.b64decode(rec["value"]), rec["partition"], rec["offset"])
        return len(got) >= 40
    wait_until(fetch, 60, interval_s=0, what="40 records over REST")
    assert {k: v[0] for k, v in got.items()} == sent
    assert requests.get(f"{inst}/assignments", timeout=10).json()["partitions"] != []
    # Nothing committed yet (auto commit off); an empty commit commits everything fetched.
    assert all(o < 0 for o in committed(b.bootstrap, "http-group", "to-http", 2).values())
    assert requests.post(f"{inst}/offsets", timeout=10).status_code == 200
    assert committed(b.bootstrap, "http-group", "to-http", 2) == {0: 20, 1: 20}
    # Explicit offsets are those of the last record processed (Confluent's convention).
    r = requests.post(f"{inst}/offsets", json={"offsets": [{"topic": "to-http", "partition": 0, "offset": 4}]}, timeout=10)
    assert r.status_code == 200, r.text
    assert committed(b.bootstrap, "http-group", "to-http", 2)[0] == 5
    wrong = requests.get(f"{inst}/records", headers={"Accept": "application/vnd.kafka.json.v2+json"}, timeout=10)
    assert wrong.status_code == 406 and wrong.json()["error_code"] == 40601
    assert requests.delete(inst, timeout=10).status_code == 204
    gone = requests.get(f"{inst}/records", timeout=10)
    assert gone.status_code == 404 and gone.json() == {"error_code": 40403, "message": "Consumer instance not found."}

    # A JSON-format instance embeds the values as JSON; idle instances are closed.
    base = f"{b.http}/consumers/http-json-group"
    r = requests.post(base, json={"name": "json-reader", "format": "json", "auto.offset.reset": "earliest"}, timeout=10)
    inst = r.json()["base_uri"]
    requests.post(f"{inst}/subscription", json={"topics": ["to-http"]}, timeout=10)
    values = []
    wait_until(lambda: values.extend(requests.get(f"{inst}/records", timeout=20).json()) or len(values) >= 40, 60,
               interval_s=0, what="json records")
    assert all(isinstance(v["value"], dict) and "n" in v["value"] for v in values)
    dup = requests.post(base, json={"name": "json-reader"}, timeout=10)
    assert dup.status_code == 409 and dup.json()["error_code"] == 40902
    # Polling the instance would keep it alive: watch its group empty out instead.
    admin = AdminClient({"bootstrap.servers": b.bootstrap})

    def group_empty():
        d = admin.describe_consumer_groups(["http-json-group"])["http-json-group"].result(10)
        return len(d.members) == 0
    wait_until(group_empty, 20, interval_s=0.2, what="idle instance closed")
    assert requests.get(f"{inst}/subscription", timeout=10).status_code == 404


def metric_samples(b):
    r = requests.get(f"{b.http}/metrics", timeout=20)
    assert r.status_code == 200
    samples = {}
    for fam in text_string_to_metric_families(r.text):
        for s in fam.samples:
            samples.setdefault(s.name, []).append(s)
    return samples


def value(samples, name, **labels):
    found = [s.value for s in samples.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, f"{name}{labels}: {found}"
    return found[0]


def test_metrics_parse_and_lag_equals_confluent(broker_factory):
    b = broker_factory()
    create_topic(b.bootstrap, "metered", 3)
    p = Producer({"bootstrap.servers": b.bootstrap})
    for i in range(90):
        p.produce("metered", value=b"m" * 50, partition=i % 3)
    assert p.flush(10) == 0
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "metered-group", "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    c.assign([TopicPartition("metered", 0, 0), TopicPartition("metered", 1, 0)])
    got = []
    wait_until(lambda: got.extend(c.consume(100, 0.5)) or len(got) >= 30, 20, what="records")
    c.commit(offsets=[TopicPartition("metered", 0, 7), TopicPartition("metered", 1, 19)], asynchronous=False)
    c.close()
    wms = watermarks(b.bootstrap, "metered", 3)
    commits = committed(b.bootstrap, "metered-group", "metered", 3)

    s = metric_samples(b)
    for part in (0, 1):
        lag = value(s, "vltava_consumer_group_lag", group="metered-group", topic="metered", partition=str(part))
        assert lag == wms[part][1] - commits[part]
    assert not [x for x in s.get("vltava_consumer_group_lag", []) if x.labels.get("partition") == "2"]
    assert value(s, "vltava_consumer_group_lag_sum", group="metered-group") == (30 - 7) + (30 - 19)
    assert value(s, "vltava_topic_records_in_total", topic="metered") == 90
    assert value(s, "vltava_topic_bytes_in_total", topic="metered") > 90 * 50
    assert value(s, "vltava_topic_records_out_total", topic="metered") >= 30
    for part in range(3):
        assert value(s, "vltava_log_end_offset", topic="metered", partition=str(part)) == wms[part][1]
        assert value(s, "vltava_log_size_bytes", topic="metered", partition=str(part)) > 0
    assert value(s, "vltava_requests_total", api="Produce") >= 1
    assert value(s, "vltava_request_duration_seconds_count", api="Fetch") >= 1
    assert [x for x in s["vltava_request_duration_seconds_bucket"] if x.labels.get("api") == "Produce"]
    assert value(s, "vltava_fsync_total") >= 1
    assert value(s, "vltava_fsync_duration_seconds_count") >= 1
    assert value(s, "vltava_connections_active") >= 0
    assert value(s, "process_resident_memory_bytes") > 1_000_000
    assert value(s, "process_cpu_seconds_total") >= 0


def test_http_bad_input_gets_4xx_with_a_message(broker_factory):
    b = broker_factory("--http-max-body-bytes", "4096", "--no-auto-create-topics")
    cid = cluster_id(b)
    create_topic(b.bootstrap, "present", 2)
    rec_url = f"{b.http}/v3/clusters/{cid}/topics/present/records"

    def check(r, status, code=None, text=None):
        assert r.status_code == status, f"{r.status_code}: {r.text}"
        body = r.json()
        assert set(body) == {"error_code", "message"} and body["message"]
        if code is not None:
            assert body["error_code"] == code, body
        if text is not None:
            assert text in body["message"], body

    hdr = {"Content-Type": "application/json"}
    check(requests.post(rec_url, data='{"value": ', headers=hdr, timeout=10), 400, 400, "malformed JSON")
    check(requests.post(rec_url, data="", headers=hdr, timeout=10), 400, 400, "no record")
    check(requests.post(rec_url, json={"value": {"type": "BINARY", "data": "%%%not-base64"}}, timeout=10), 400, 400, "base64")
    check(requests.post(rec_url, json={"headers": [{"name": "h", "value": "***"}]}, timeout=10), 400, 400, "base64")
    check(requests.post(rec_url, json={"value": {"type": "XML", "data": "<a/>"}}, timeout=10), 400, 400, "XML")
    check(requests.post(rec_url, json={"valeu": {"data": 1}}, timeout=10), 400, 400, "valeu")
    check(requests.post(rec_url, json={"partition_id": 7, "value": {"data": 1}}, timeout=10), 404, 40403, "partition 7")
    check(requests.post(rec_url, json={"timestamp": "yesterday", "value": {"data": 1}}, timeout=10), 400, 400, "RFC 3339")
    check(requests.post(rec_url, data=json.dumps({"value": {"type": "STRING", "data": "x" * 8000}}), headers=hdr,
                        timeout=10), 413, 413)
    missing = f"{b.http}/v3/clusters/{cid}/topics/missing"
    check(requests.post(f"{missing}/records", json={"value": {"data": 1}}, timeout=10), 404, 40403, "missing")
    check(requests.get(missing, timeout=10), 404, 40403)
    check(requests.get(f"{b.http}/v3/clusters/not-this-one/topics", timeout=10), 404, 40403, "not-this-one")
    check(requests.get(f"{b.http}/v3/clusters/{cid}/topics/present/partitions/9", timeout=10), 404, 40403)
    check(requests.post(f"{b.http}/v3/clusters/{cid}/topics", json={"topic_name": "present"}, timeout=10), 409, 40902)
    check(requests.post(f"{b.http}/v3/clusters/{cid}/topics", json={"topic_name": "x", "partitions_count": 0},
                        timeout=10), 400, 400, "partitions_count")
    check(requests.post(f"{b.http}/v3/clusters/{cid}/topics", json={"topic_name": "bad/name"}, timeout=10), 400, 400)
    check(requests.post(f"{b.http}/consumers/g", json={"format": "avro"}, timeout=10), 422, 42204, "avro")
    check(requests.post(f"{b.http}/consumers/g", json={"auto.offset.reset": "sideways"}, timeout=10), 422, 422)
    check(requests.post(f"{b.http}/consumers/g", data="[1,2", headers=hdr, timeout=10), 400, 400)
    check(requests.get(f"{b.http}/consumers/g/instances/nobody/records", timeout=10), 404, 40403)
    check(requests.get(f"{b.http}/no/such/endpoint", timeout=10), 404, 404)
    check(requests.put(f"{b.http}/status", timeout=10), 405, 405)
    # Nothing above produced anything.
    assert watermarks(b.bootstrap, "present", 2) == [(0, 0), (0, 0)]


def test_schemathesis_finds_no_server_error(broker_factory):
    b = broker_factory()
    create_topic(b.bootstrap, "fuzzed", 2)
    # The CLI installed next to this interpreter (pip's scripts directory), else from PATH.
    exe = os.path.join(os.path.dirname(sys.executable), "schemathesis")
    cmd = [exe if os.path.exists(exe) else "schemathesis", "run", f"{b.http}/openapi.json",
           "--checks", "not_a_server_error",
           "--max-examples", "15",
           "--generation-deterministic",
           "--request-timeout", "20",
           "--workers", "1",
           "--phases", "examples,coverage,fuzzing"]
    env = dict(os.environ, SCHEMATHESIS_HOOKS="", NO_COLOR="1")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=200, env=env)
    assert r.returncode == 0, f"schemathesis found failures:\n{r.stdout[-6000:]}\n{r.stderr[-2000:]}"
    assert "passed" in r.stdout and "Tested: 24" in r.stdout, r.stdout[-3000:]
    # The broker is still up and serving.
    assert requests.get(f"{b.http}/health/ready", timeout=5).status_code == 200


def test_rest_produce_streaming_reports_each_record_as_it_is_acknowledged(broker_factory):
    """Confluent's streaming mode: a chunked request stays open; each record's report comes back
    before the next record is sent."""
    import http.client
    b = broker_factory()
    create_topic(b.bootstrap, "streamed", 2)
    cid = cluster_id(b)
    conn = http.client.HTTPConnection("127.0.0.1", b.http_port, timeout=20)
    conn.putrequest("POST", f"/v3/clusters/{cid}/topics/streamed/records")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()

    def chunk(data):
        conn.send(b"%x\r\n%s\r\n" % (len(data), data))

    chunk(json.dumps({"key": {"type": "STRING", "data": "k0"}, "value": {"type": "STRING", "data": "v0"}}).encode())
    resp = conn.getresponse()
    assert resp.status == 200
    reports = [json.loads(resp.readline())]
    for i in range(1, 10):
        chunk(json.dumps({"partition_id": i % 2, "value": {"type": "STRING", "data": f"v{i}"}}).encode())
        reports.append(json.loads(resp.readline()))
    # A record split across chunks, then a bad one: reports keep their order.
    chunk(b'{"value": {"type": "STRING", "da')
    chunk(b'ta": "split"}} {"value": {"type": "BINARY", "data": "!!"}}')
    reports.append(json.loads(resp.readline()))
    bad = json.loads(resp.readline())
    chunk(b"")  # the terminating zero-length chunk
    assert resp.read() == b""
    conn.close()
    assert [r["error_code"] for r in reports] == [200] * 11
    assert bad["error_code"] == 400 and "base64" in bad["message"]
    msgs = read_raw(b.bootstrap, "streamed", 2, 11)
    by_pos = {(m.partition(), m.offset()): m.value() for m in msgs}
    assert [by_pos[(r["partition_id"], r["offset"])] for r in reports] == \
        [f"v{i}".encode() for i in range(10)] + [b"split"]
