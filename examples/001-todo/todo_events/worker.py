"""The consumer side shared by the five services: an aiokafka consumer in its own group, Avro decoding,
idempotent application, bounded retries with exponential backoff, the group's DLQ, offset commits.

For each record, in partition order:
1. decode it (writer schema from the registry);
2. in one database transaction: skip it if its event_id was already processed (a redelivery),
   else run the service's handler (its own writes, and the events it publishes, awaited until
   acknowledged) and record the event_id;
3. if that fails, retry after 0.5 s, 1 s, 2 s, ... (CONSUMER_RETRY_BACKOFF_MS doubling, capped);
   after CONSUMER_MAX_RETRIES retries the record goes unchanged to `todo.{group}.dlq` with headers
   saying where it came from and why, and processing moves on;
4. commit the offsets of what was processed (after each poll's batch).
A failure that is not the record's fault (broker or registry unreachable) is retried with the same
backoff without a bound and never sends the record to the DLQ. Offsets are committed only after
processing, so delivery is at least once; step 2 makes it effectively once.
"""
import asyncio
import logging
import os

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener

from .codec import EventCodec
from .config import backoff_ms, group_dlq_topic
from .publisher import EventPublisher, is_transient
from .store import (db_path, is_dead_lettered, is_processed, mark_processed, now_ms, open_db,
                    record_dead_letter, record_duplicate, transaction)


class Stopping(Exception):
    """SIGTERM arrived while waiting: leave the record uncommitted, it is redelivered later."""


class HandlerContext:
    def __init__(self, runtime, msg, event_id):
        self.runtime = runtime
        self.msg = msg
        self.event_id = event_id
        self.db = runtime.db
        self.settings = runtime.settings

    async def publish(self, event_type, event):
        return await self.runtime.publisher.publish(
            event_type, event, extra_headers=[("causation_id", self.event_id.encode())])


class Service:
    """One consumer service. Subclasses set group_id, topics and schema_sql and implement handle();
    tick() is called every SCHEDULER_TICK_MS for time-driven work (reminders, recurrences)."""
    group_id = None
    topics = ()
    schema_sql = ""
    has_tick = False

    def __init__(self, settings):
        self.settings = settings
        self.log = logging.getLogger(f"todo.{self.group_id}")

    def entity_version(self, event_type, event):
        return event.get("version")

    async def handle(self, ctx, event_type, event):
        raise NotImplementedError

    async def tick(self, runtime):
        pass


class _Listener(ConsumerRebalanceListener):
    def __init__(self, log):
        self.log = log

    async def on_partitions_revoked(self, revoked):
        if revoked:
            self.log.info("partitions revoked: %s", sorted((tp.topic, tp.partition) for tp in revoked))

    async def on_partitions_assigned(self, assigned):
        self.log.info("partitions assigned: %s", sorted((tp.topic, tp.partition) for tp in assigned))


class ServiceRuntime:
    def __init__(self, service, settings):
        self.service = service
        self.settings = settings
        self.group_id = service.group_id
        self.log = service.log
        self.dlq_topic = group_dlq_topic(self.group_id)
        self.db = open_db(db_path(settings.state_dir, self.group_id), service.schema_sql)
        # Handlers and tick() both hold a transaction across awaits: one at a time.
        self.db_lock = asyncio.Lock()
        self.codec = EventCodec(settings.schema_registry_url)
        self.publisher = EventPublisher(settings, client_id=f"{self.group_id}-{os.getpid()}", codec=self.codec,
                                        retry_forever=True, sleep=self.sleep_s)
        self.stop_event = asyncio.Event()
        self.consumer = None

    async def sleep_ms(self, ms):
        try:
            await asyncio.wait_for(self.stop_event.wait(), ms / 1000)
        except asyncio.TimeoutError:
            return
        raise Stopping()

    async def sleep_s(self, seconds):
        await self.sleep_ms(seconds * 1000)

    def stop(self):
        self.stop_event.set()

    async def _start_consumer(self):
        attempt = 0
        while True:
            self.consumer = AIOKafkaConsumer(
                bootstrap_servers=self.settings.bootstrap_servers,
                group_id=self.group_id,
                client_id=f"{self.group_id}-{os.getpid()}",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                session_timeout_ms=self.settings.session_timeout_ms,
                heartbeat_interval_ms=self.settings.heartbeat_interval_ms,
            )
            try:
                await self.consumer.start()
                # Subscribing after start(): subscribed first, start() would wait for the group's
                # assignment, deaf to SIGTERM. The join now runs in the background of getmany().
                self.consumer.subscribe(topics=list(self.service.topics), listener=_Listener(self.log))
                return
            except Exception as exc:
                await self.consumer.stop()
                if not is_transient(exc):
                    raise
                delay = backoff_ms(attempt, self.settings.retry_backoff_ms, self.settings.retry_backoff_max_ms)
                self.log.warning("consumer start failed (%r); retry in %d ms", exc, delay)
                await self.sleep_ms(delay)
                attempt += 1

    async def run(self):
        ticker = None
        pending = {}
        try:
            await self.publisher.start()
            await self._start_consumer()
            self.log.info("consuming %s as group %s; DLQ %s", ", ".join(self.service.topics), self.group_id,
                          self.dlq_topic)
            if self.service.has_tick:
                ticker = asyncio.create_task(self._tick_loop())
            while not self.stop_event.is_set():
                batches = await self._poll()
                for tp, msgs in batches.items():
                    for msg in msgs:
                        await self.process(msg)
                        pending[tp] = msg.offset + 1
                if pending:
                    await self._commit(pending)
                    pending = {}
        except Stopping:
            pass
        finally:
            if ticker is not None:
                ticker.cancel()
                await asyncio.gather(ticker, return_exceptions=True)
            if pending and self.consumer is not None:
                await self._commit(pending)
            if self.consumer is not None:
                await self._close_quietly("consumer", self.consumer.stop())
            await self._close_quietly("producer", self.publisher.stop())
            self.db.close()
            self.log.info("stopped")

    async def _close_quietly(self, what, closing):
        # With the broker unreachable, aiokafka's stop() can surface the cancellation of its own
        # fetch task; the process is exiting either way, and uncommitted records are redelivered.
        try:
            await asyncio.wait_for(closing, 10)
        except (Exception, asyncio.CancelledError) as exc:
            self.log.warning("closing the %s: %r", what, exc)

    async def _poll(self):
        # getmany() waits without a bound while the group rebalances (and a rebalance cannot end
        # while the broker is down): race it against SIGTERM.
        poll = asyncio.ensure_future(
            self.consumer.getmany(timeout_ms=500, max_records=self.settings.max_poll_records))
        stop = asyncio.ensure_future(self.stop_event.wait())
        await asyncio.wait({poll, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if poll.done():
            return poll.result()
        poll.cancel()
        await asyncio.gather(poll, return_exceptions=True)
        raise Stopping()

    async def _commit(self, offsets):
        # A failed commit only means redelivery, which processed_events absorbs.
        try:
            # Bounded: with the broker down, commit() would wait for the coordinator indefinitely.
            await asyncio.wait_for(self.consumer.commit(dict(offsets)), 15)
        except Exception as exc:
            self.log.warning("offset commit failed (%r); the records will be redelivered and skipped", exc)

    async def process(self, msg):
        async with self.db_lock:
            if is_dead_lettered(self.db, msg):
                return
        attempts = 0
        transient_attempts = 0
        first_failure_ms = None
        while True:
            try:
                event_type, event = await self.codec.decode(msg.topic, msg.value)
                await self._apply(msg, event_type, event)
                return
            except Stopping:
                raise
            except Exception as exc:
                if is_transient(exc):
                    delay = backoff_ms(transient_attempts, self.settings.retry_backoff_ms,
                                       self.settings.retry_backoff_max_ms)
                    transient_attempts += 1
                    self.log.warning("%s[%d]@%d: %r (not the record's fault); retry in %d ms", msg.topic,
                                     msg.partition, msg.offset, exc, delay)
                    await self.sleep_ms(delay)
                    continue
                attempts += 1
                now = now_ms()
                first_failure_ms = first_failure_ms or now
                if attempts > self.settings.max_retries:
                    await self.dead_letter(msg, exc, attempts, first_failure_ms, now)
                    return
                delay = backoff_ms(attempts - 1, self.settings.retry_backoff_ms, self.settings.retry_backoff_max_ms)
                self.log.warning("%s[%d]@%d failed (attempt %d of %d): %r; retry in %d ms", msg.topic, msg.partition,
                                 msg.offset, attempts, self.settings.max_retries + 1, exc, delay)
                await self.sleep_ms(delay)

    async def _apply(self, msg, event_type, event):
        event_id = event.get("event_id") or f"{msg.topic}/{msg.partition}/{msg.offset}"
        async with self.db_lock:
            with transaction(self.db):
                if is_processed(self.db, event_id):
                    record_duplicate(self.db, event_id, msg)
                    self.log.info("%s %s already processed: skipped (redelivery)", event_type, event_id)
                    return
                await self.service.handle(HandlerContext(self, msg, event_id), event_type, event)
                mark_processed(self.db, event_id, event_type, msg, self.service.entity_version(event_type, event))

    async def dead_letter(self, msg, exc, attempts, first_failure_ms, last_failure_ms):
        event_id = dict(msg.headers or ()).get("event_id", b"").decode() or None
        headers = list(msg.headers or ()) + [
            ("dlq.original.topic", msg.topic.encode()),
            ("dlq.original.partition", str(msg.partition).encode()),
            ("dlq.original.offset", str(msg.offset).encode()),
            ("dlq.original.timestamp.ms", str(msg.timestamp).encode()),
            ("dlq.consumer.group", self.group_id.encode()),
            ("dlq.error.class", type(exc).__name__.encode()),
            ("dlq.error.message", str(exc)[:1000].encode()),
            ("dlq.attempts", str(attempts).encode()),
            ("dlq.first.failure.ms", str(first_failure_ms).encode()),
            ("dlq.last.failure.ms", str(last_failure_ms).encode()),
        ]
        md = await self.publisher.send_raw(self.dlq_topic, msg.value, msg.key, headers)
        async with self.db_lock:
            with transaction(self.db):
                record_dead_letter(self.db, msg, event_id, self.dlq_topic, attempts, repr(exc))
        self.log.error("%s[%d]@%d (event %s) failed %d times (%r): moved to %s[%d]@%d", msg.topic, msg.partition,
                       msg.offset, event_id, attempts, exc, self.dlq_topic, md.partition, md.offset)

    async def _tick_loop(self):
        while True:
            try:
                await self.service.tick(self)
            except Stopping:
                return
            except Exception as exc:
                self.log.warning("scheduled work failed (%r); next tick retries", exc)
            try:
                await self.sleep_ms(self.settings.scheduler_tick_ms)
            except Stopping:
                return


async def run_services(services, settings):
    """Runs the given services in this process until SIGTERM/SIGINT (one per process in production)."""
    import signal
    runtimes = [ServiceRuntime(cls(settings), settings) for cls in services]
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: [r.stop() for r in runtimes])
    await asyncio.gather(*(r.run() for r in runtimes))
