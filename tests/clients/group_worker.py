"""A consumer-group member for the group tests, run as its own process so a test can SIGKILL it.

Usage: python3 group_worker.py CLIENT BOOTSTRAP TOPIC GROUP OUTFILE
CLIENT is confluent, kafka-python or aiokafka. Every record received is appended to OUTFILE as a
JSON line {"p": partition, "o": offset, "v": value} and flushed at once. Auto-commit is on.
"""
import asyncio
import json
import sys

client, bootstrap, topic, group, outfile = sys.argv[1:6]
out = open(outfile, "a", buffering=1)


def record(p, o, v):
    out.write(json.dumps({"p": p, "o": o, "v": v}) + "\n")
    out.flush()


if client == "confluent":
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                  "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000,
                  "auto.commit.interval.ms": 500})
    c.subscribe([topic])
    while True:
        m = c.poll(0.5)
        if m is not None and not m.error():
            record(m.partition(), m.offset(), m.value().decode())
elif client == "kafka-python":
    from kafka import KafkaConsumer
    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                      session_timeout_ms=6000, heartbeat_interval_ms=1000, auto_commit_interval_ms=500)
    while True:
        for msgs in c.poll(timeout_ms=500).values():
            for m in msgs:
                record(m.partition, m.offset, m.value.decode())
elif client == "aiokafka":
    from aiokafka import AIOKafkaConsumer

    async def main():
        c = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                             session_timeout_ms=6000, heartbeat_interval_ms=1000, auto_commit_interval_ms=500)
        await c.start()
        async for m in c:
            record(m.partition, m.offset, m.value.decode())
    asyncio.run(main())
else:
    sys.exit(f"unknown client {client}")
