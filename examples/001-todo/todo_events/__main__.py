"""Command line: python3 -m todo_events {setup-topics,worker,publish,demo} (run from examples/001-todo).

  setup-topics          create the topics (partitions, retention) and the DLQ topics
  worker GROUP...       run consumer services until SIGTERM: recurring-task-cg, reminder-scheduler-cg,
                        reminder-trigger-cg, task-broadcaster-cg, audit-log-cg, or `all`
  publish               publish events read from stdin, one JSON object a line:
                        {"event_type": "TaskCreated", "event": {...}}; prints one JSON line per event
                        when the broker acknowledged it ({"event_id", "topic", "partition", "offset"})
                        or gave up ({"event_id", "error"})
  demo                  a few users create, update, complete and delete tasks through the Chat API
                        publisher

Configuration comes from the environment: KAFKA_BOOTSTRAP_SERVERS, SCHEMA_REGISTRY_URL and the others
in todo_events/config.py.
"""
import argparse
import asyncio
import json
import logging
import os
import sys
import uuid

from .config import CONSUMER_GROUPS, Settings
from .store import now_ms


def _setup_logging():
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("aiokafka").setLevel(os.environ.get("AIOKAFKA_LOG_LEVEL", "WARNING"))
    logging.getLogger("httpx2").setLevel("WARNING")  # one line per registry request otherwise
    logging.getLogger("httpx").setLevel("WARNING")


async def cmd_setup_topics(settings, _args):
    from .topics import ensure_topics
    result = await ensure_topics(settings)
    for name, (partitions, retention_ms) in sorted(result.items()):
        print(f"{name:40} partitions={partitions} retention.ms={retention_ms}")


async def cmd_worker(settings, args):
    from .services import SERVICES
    from .worker import run_services
    names = list(CONSUMER_GROUPS) if args.groups == ["all"] else args.groups
    unknown = [n for n in names if n not in SERVICES]
    if unknown:
        sys.exit(f"unknown consumer group(s) {unknown}; choose from {list(SERVICES)} or all")
    await run_services([SERVICES[n] for n in names], settings)


async def cmd_publish(settings, args):
    from .chat_api import TaskEvents
    api = await TaskEvents.connect(settings, client_id=args.client_id)
    failed = 0
    try:
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            if not line.strip():
                continue
            item = json.loads(line)
            event = item["event"]
            try:
                _, md = await api.publish(item["event_type"], event)
                out = {"event_id": event["event_id"], "event_type": item["event_type"], "topic": md.topic,
                       "partition": md.partition, "offset": md.offset}
            except Exception as exc:  # already logged, and saved to the fallback file if transient
                failed += 1
                out = {"event_id": event.get("event_id"), "event_type": item["event_type"], "error": repr(exc)}
            print(json.dumps(out), flush=True)
            if args.interval_ms:
                await asyncio.sleep(args.interval_ms / 1000)
    finally:
        await api.close()
    if failed:
        sys.exit(1)


async def cmd_demo(settings, args):
    from .chat_api import TaskEvents
    api = await TaskEvents.connect(settings)
    try:
        hour = 3_600_000
        for u in range(args.users):
            user = uuid.uuid4()
            bill, groceries, report, standup = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
            # Due in 10 minutes: inside the 15-minute reminder lead, so its reminder fires at once.
            await api.task_created(bill, user, "Pay the electricity bill", due_date=now_ms() + 10 * 60_000,
                                   priority="Medium", tags=["home"])
            await api.task_created(groceries, user, "Buy groceries", tags=["home"], priority="Low")
            await api.task_created(report, user, "Write the quarterly report", priority="High",
                                   due_date=now_ms() + 48 * hour, tags=["work"])
            await api.task_created(standup, user, "Daily stand-up notes", is_recurring_template=True,
                                   recurrence_pattern="daily")
            await api.task_updated(report, user, 2, due_date=now_ms() + 24 * hour)  # rescheduled reminder
            await api.task_updated(groceries, user, 2, completed=True)
            await api.task_deleted(standup, user, 2)
            print(f"user {user}: 4 tasks created, 1 rescheduled, 1 completed, 1 deleted", flush=True)
    finally:
        await api.close()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m todo_events", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("setup-topics").set_defaults(fn=cmd_setup_topics)
    w = sub.add_parser("worker")
    w.add_argument("groups", nargs="+")
    w.set_defaults(fn=cmd_worker)
    p = sub.add_parser("publish")
    p.add_argument("--interval-ms", type=int, default=0, help="pause after each acknowledged event")
    p.add_argument("--client-id", default="chat-api")
    p.set_defaults(fn=cmd_publish)
    d = sub.add_parser("demo")
    d.add_argument("--users", type=int, default=3)
    d.set_defaults(fn=cmd_demo)
    args = parser.parse_args(argv)
    _setup_logging()
    asyncio.run(args.fn(Settings(), args))


if __name__ == "__main__":
    main()
