"""Creates the topics with their partitions and retention, with aiokafka's admin client. Safe to run
again: an existing topic gets its configs set and missing partitions added (never removed)."""
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from .config import TOPICS

log = logging.getLogger("todo.setup")
TOPIC_ALREADY_EXISTS = 36


async def ensure_topics(settings, specs=TOPICS):
    """Returns {topic: (partitions, retention.ms)} as the broker reports them afterwards."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers, client_id="todo-setup")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if missing:
            resp = await admin.create_topics([
                NewTopic(s.name, s.partitions, settings.replication_factor, topic_configs=s.configs())
                for s in missing])
            for topic, code, *message in resp.topic_errors:
                if code not in (0, TOPIC_ALREADY_EXISTS):
                    raise RuntimeError(f"creating {topic} failed: error {code} {message}")
                log.info("created %s", topic)
        present = [s for s in specs if s.name in existing]
        if present:
            topics = await admin.describe_topics([s.name for s in present])
            described = {t["topic"]: len(t["partitions"]) for t in topics}
            grow = {s.name: NewPartitions(s.partitions) for s in present if described.get(s.name, 0) < s.partitions}
            if grow:
                await admin.create_partitions(grow)
                log.info("added partitions to %s", ", ".join(grow))
            for resp in await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, s.name, s.configs())
                                                   for s in present]):
                for code, message, _rtype, name in resp.resources:
                    if code:
                        raise RuntimeError(f"setting configs of {name} failed: error {code} {message}")
        return await describe(admin, specs)
    finally:
        await admin.close()


async def describe(admin, specs):
    partitions = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics([s.name for s in specs])}
    out = {}
    for resp in await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, s.name, {"retention.ms": None})
                                              for s in specs]):
        for code, message, _rtype, name, entries in resp.resources:
            if code:
                raise RuntimeError(f"describing {name} failed: error {code} {message}")
            retention = next((e[1] for e in entries if e[0] == "retention.ms"), None)
            out[name] = (partitions.get(name), int(retention) if retention is not None else None)
    return out
