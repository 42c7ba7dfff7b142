"""Consumer groups with real clients: members share partitions without overlap, a killed
member's partitions move to the others, groups fan out, committed offsets survive restarts,
cooperative-sticky rebalancing, static membership, lag as tools compute it, empty groups removed
at the retention check, and the bound on the number of groups."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import NODE_DIR, wait_until
from util import value_for

pytestmark = pytest.mark.timeout(180)
HERE = os.path.dirname(os.path.abspath(__file__))


def create(bs, topic, partitions):
    admin = AdminClient({"bootstrap.servers": bs})
    for f in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        f.result(10)


def produce(bs, topic, start, count):
    p = Producer({"bootstrap.servers": bs, "partitioner": "murmur2_random", "linger.ms": 2})
    for i in range(start, start + count):
        key = f"k{i % 60}"
        p.produce(topic, key=key, value=value_for(key, i, "g"))
    assert p.flush(20) == 0
    return {value_for(f"k{i % 60}", i, "g") for i in range(start, start + count)}


def group_state(bs, group):
    admin = AdminClient({"bootstrap.servers": bs})
    d = list(admin.describe_consumer_groups([group]).values())[0].result(10)
    return d


class Worker:
    def __init__(self, client, bs, topic, group):
        fd, self.path = tempfile.mkstemp(prefix="vltava-worker-", suffix=".jsonl")
        os.close(fd)
        if client == "kafkajs":
            cmd = ["node", os.path.join(NODE_DIR, "group_worker.js"), bs, topic, group, self.path]
        else:
            cmd = [sys.executable, os.path.join(HERE, "group_worker.py"), client, bs, topic, group, self.path]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def records(self):
        with open(self.path) as f:
            return [json.loads(line) for line in f if line.endswith("\n")]

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def cleanup(self):
        self.kill()
        os.remove(self.path)


@pytest.fixture
def workers():
    started = []
    yield started
    for w in started:
        w.cleanup()


@pytest.mark.parametrize("client", ["confluent", "kafka-python", "aiokafka", "kafkajs"])
def test_members_share_partitions_and_take_over_from_a_killed_member(broker, workers, client):
    bs, topic, group = broker.bootstrap, f"shared-{client}", f"workers-{client}"
    create(bs, topic, 6)
    for _ in range(3):
        workers.append(Worker(client, bs, topic, group))

    def stable_with(n):
        d = group_state(bs, group)
        return d.state.name == "STABLE" and len(d.members) == n and all(m.assignment.topic_partitions for m in d.members)
    wait_until(lambda: stable_with(3), 60, interval_s=0.2, what="3 members with partitions")
    sent = produce(bs, topic, 0, 600)

    def seen():
        return {r["v"] for w in workers for r in w.records()}
    wait_until(lambda: sent <= seen(), 60, interval_s=0.2, what="every record consumed")
    owners = {}
    for i, w in enumerate(workers):
        for r in w.records():
            owners.setdefault(r["p"], set()).add(i)
    assert sorted(owners) == list(range(6))
    assert all(len(o) == 1 for o in owners.values()), f"a partition was consumed by two members: {owners}"
    assert len({next(iter(o)) for o in owners.values()}) == 3, "every member should own partitions"

    workers[0].kill()
    wait_until(lambda: stable_with(2), 60, interval_s=0.2, what="the group to rebalance to 2 members")
    sent |= produce(bs, topic, 600, 600)
    wait_until(lambda: sent <= seen(), 60, interval_s=0.2, what="every record after the kill")


def consume_n(bs, topic, group, n, extra=None, timeout_s=30):
    conf = {"bootstrap.servers": bs, "group.id": group, "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000, "auto.commit.interval.ms": 200}
    conf.update(extra or {})
    c = Consumer(conf)
    c.subscribe([topic])
    got = []
    deadline = time.monotonic() + timeout_s
    while len(got) < n and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.append(m)
    return c, got


def test_two_groups_each_receive_every_record(broker):
    bs = broker.bootstrap
    create(bs, "fanout", 3)
    sent = produce(bs, "fanout", 0, 300)
    for group in ("notifications", "audit"):
        c, got = consume_n(bs, "fanout", group, 300)
        c.close()
        assert {m.value().decode() for m in got} == sent, group


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
@pytest.mark.parametrize("commit", ["auto", "manual"])
def test_group_resumes_at_committed_offsets_after_restart(broker, how, commit):
    bs, topic, group = broker.bootstrap, "resume", "resumers"
    create(bs, topic, 2)
    first = produce(bs, topic, 0, 200)
    extra = {"enable.auto.commit": commit == "auto"}
    c, got = consume_n(bs, topic, group, 200, extra)
    assert {m.value().decode() for m in got} == first
    if commit == "manual":
        c.commit(asynchronous=False)
    else:
        # Auto-commit: wait until the committed offsets cover everything read.
        wait_until(lambda: sum(tp.offset for tp in c.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], 10)) == 200,
                   20, interval_s=0.2, what="auto-commit")
    c.close()
    if how == "sigterm":
        assert broker.terminate() == 0
    else:
        broker.kill9()
    broker.start()
    second = produce(bs, topic, 200, 50)
    c, got = consume_n(bs, topic, group, 50, extra)
    # Nothing more arrives: the group resumed exactly at its committed offsets.
    extra_msg = c.poll(2)
    c.close()
    values = {m.value().decode() for m in got}
    assert values == second, f"expected only the 50 new records, got {len(values)}"
    assert extra_msg is None or extra_msg.error()


def test_cooperative_sticky_incremental_rebalance(broker):
    bs, topic, group = broker.bootstrap, "coop", "coop-group"
    create(bs, topic, 4)
    events = {"a": [], "b": []}

    def consumer(name):
        c = Consumer({"bootstrap.servers": bs, "group.id": group, "auto.offset.reset": "earliest",
                      "partition.assignment.strategy": "cooperative-sticky", "session.timeout.ms": 6000})
        c.subscribe([topic], on_assign=lambda _c, ps: events[name].append(("assign", sorted(p.partition for p in ps))),
                     on_revoke=lambda _c, ps: events[name].append(("revoke", sorted(p.partition for p in ps))))
        return c
    a = consumer("a")
    wait_until(lambda: a.poll(0.2) is None and len(a.assignment()) == 4, 30, interval_s=0, what="a owns all partitions")
    b = consumer("b")

    def balanced():
        a.poll(0.1)
        b.poll(0.1)
        return len(a.assignment()) == 2 and len(b.assignment()) == 2
    wait_until(balanced, 30, interval_s=0, what="an incremental rebalance to 2+2")
    # Incremental: a gave up exactly two partitions and kept the others throughout.
    revokes = [e for e in events["a"] if e[0] == "revoke" and e[1]]
    assert revokes and all(len(e[1]) == 2 for e in revokes), events
    assert sorted(p.partition for p in a.assignment() + b.assignment()) == [0, 1, 2, 3]
    b.close()
    a.close()


def test_static_member_restart_within_session_timeout_does_not_rebalance(broker):
    bs, topic, group = broker.bootstrap, "static", "static-group"
    create(bs, topic, 2)
    revoked = []

    def member(instance):
        c = Consumer({"bootstrap.servers": bs, "group.id": group, "group.instance.id": instance,
                      "session.timeout.ms": 10000, "auto.offset.reset": "earliest"})
        c.subscribe([topic], on_revoke=lambda _c, ps: revoked.append((instance, [p.partition for p in ps])))
        return c
    # a joins first and so leads the group; the member restarted below is the follower b (a
    # static *leader* rejoining triggers a rebalance for JoinGroup < v9, in Kafka too).
    a = member("a")
    wait_until(lambda: (a.poll(0.1), len(a.assignment()) == 2)[1], 30, interval_s=0, what="a alone owns both")
    b = member("b")

    def both_assigned():
        a.poll(0.1)
        b.poll(0.1)
        return len(a.assignment()) == 1 and len(b.assignment()) == 1
    wait_until(both_assigned, 30, interval_s=0, what="one partition each")
    generation = group_state(bs, group)
    revoked.clear()
    b.close()  # a static member's close does not leave the group
    b = member("b")
    wait_until(lambda: (a.poll(0.1), b.poll(0.1), len(b.assignment()) == 1)[2], 20, interval_s=0,
               what="the restarted static member to get its partition back")
    for _ in range(10):
        a.poll(0.1)
    assert [r for r in revoked if r[0] == "a" and r[1]] == [], f"member a was rebalanced: {revoked}"
    assert len(group_state(bs, group).members) == 2
    assert generation.state.name == "STABLE"
    a.close()
    b.close()


def test_lag_from_committed_offsets_and_watermarks(broker):
    bs, topic, group = broker.bootstrap, "lagging", "laggards"
    create(bs, topic, 2)
    produce(bs, topic, 0, 100)
    c, got = consume_n(bs, topic, group, 100, {"enable.auto.commit": False})
    c.commit(asynchronous=False)
    produce(bs, topic, 100, 40)
    tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
    committed = c.committed(tps, 10)
    lag = sum(c.get_watermark_offsets(tp, 10)[1] - cm.offset for tp, cm in zip(tps, committed))
    assert lag == 40
    admin = AdminClient({"bootstrap.servers": bs})
    from confluent_kafka import ConsumerGroupTopicPartitions
    listed = list(admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)]).values())[0].result(10)
    assert sum(tp.offset for tp in listed.topic_partitions) == 100
    c.close()


def test_list_describe_delete_groups_and_offsets(broker):
    from confluent_kafka import ConsumerGroupState, ConsumerGroupTopicPartitions
    bs, topic = broker.bootstrap, "admin-groups"
    create(bs, topic, 2)
    produce(bs, topic, 0, 20)
    c, _ = consume_n(bs, topic, "live", 20, {"enable.auto.commit": False})
    c.commit(asynchronous=False)
    d, _ = consume_n(bs, topic, "idle", 20, {"enable.auto.commit": False})
    d.commit(asynchronous=False)
    d.close()
    admin = AdminClient({"bootstrap.servers": bs})
    listed = admin.list_consumer_groups().result(10)
    states = {g.group_id: g.state for g in listed.valid}
    assert states["live"] == ConsumerGroupState.STABLE and states["idle"] == ConsumerGroupState.EMPTY
    only_empty = admin.list_consumer_groups(states={ConsumerGroupState.EMPTY}).result(10)
    assert [g.group_id for g in only_empty.valid] == ["idle"]
    desc = list(admin.describe_consumer_groups(["live"]).values())[0].result(10)
    assert len(desc.members) == 1 and desc.partition_assignor == "range"
    assert sorted(tp.partition for tp in desc.members[0].assignment.topic_partitions) == [0, 1]
    # A group with members cannot be deleted; an empty one can.
    with pytest.raises(Exception) as e:
        list(admin.delete_consumer_groups(["live"]).values())[0].result(10)
    assert "NON_EMPTY_GROUP" in str(e.value)
    list(admin.delete_consumer_groups(["idle"]).values())[0].result(10)
    assert "idle" not in {g.group_id for g in admin.list_consumer_groups().result(10).valid}
    c.close()


def test_commit_errors_leave_the_group_intact(broker):
    """Commits for an unknown topic, with a stale generation or an unknown member get Kafka's
    error codes, and the group keeps its members and offsets."""
    bs, topic, group = broker.bootstrap, "commits", "committers"
    create(bs, topic, 1)
    produce(bs, topic, 0, 10)
    c, _ = consume_n(bs, topic, group, 10, {"enable.auto.commit": False})
    c.commit(asynchronous=False)
    from confluent_kafka import KafkaException
    with pytest.raises(KafkaException) as e:
        c.commit(offsets=[TopicPartition("no-such-topic", 0, 5)], asynchronous=False)
    assert "UNKNOWN_TOPIC_OR_PART" in str(e.value) or "Unknown topic" in str(e.value)
    # A commit from outside the group (no member id, generation -1) while it has members.
    outsider = Consumer({"bootstrap.servers": bs, "group.id": group, "enable.auto.commit": False})
    with pytest.raises(KafkaException) as e:
        outsider.commit(offsets=[TopicPartition(topic, 0, 1)], asynchronous=False)
    assert "UNKNOWN_MEMBER_ID" in str(e.value)
    outsider.close()
    with pytest.raises(KafkaException) as e:
        c.commit(offsets=[TopicPartition(topic, 0, 3, metadata="m" * 5000)], asynchronous=False)
    assert "OFFSET_METADATA_TOO_LARGE" in str(e.value) or "metadata" in str(e.value).lower()
    assert [tp.offset for tp in c.committed([TopicPartition(topic, 0)], 10)] == [10]
    assert len(group_state(bs, group).members) == 1
    c.close()


def test_kip848_consumer_protocol_with_librdkafka(broker):
    """librdkafka with group.protocol=consumer (KIP-848): server-side assignment across two
    members, takeover when one leaves, offsets committed with the member epoch."""
    bs, topic, group = broker.bootstrap, "kip848", "next-gen"
    create(bs, topic, 4)
    sent = produce(bs, topic, 0, 400)

    def member():
        c = Consumer({"bootstrap.servers": bs, "group.id": group, "group.protocol": "consumer",
                      "auto.offset.reset": "earliest", "auto.commit.interval.ms": 200})
        c.subscribe([topic])
        return c
    a, b = member(), member()
    seen = {}

    def poll_both():
        for name, c in (("a", a), ("b", b)):
            m = c.poll(0.1)
            if m is not None and not m.error():
                seen.setdefault(m.value().decode(), set()).add((name, m.partition()))
        return len(a.assignment()) == 2 and len(b.assignment()) == 2
    wait_until(poll_both, 60, interval_s=0, what="2+2 partitions assigned by the broker")
    assert {p.partition for p in a.assignment()}.isdisjoint({p.partition for p in b.assignment()})
    wait_until(lambda: (poll_both(), sent <= set(seen))[1], 60, interval_s=0, what="every record")
    admin = AdminClient({"bootstrap.servers": bs})
    listed = {g.group_id: g for g in admin.list_consumer_groups().result(10).valid}
    assert group in listed
    b.close()  # leaves the group (member epoch -1)

    def a_owns_all():
        a.poll(0.1)
        return len(a.assignment()) == 4
    wait_until(a_owns_all, 60, interval_s=0, what="the remaining member to own every partition")
    more = produce(bs, topic, 400, 100)
    got = set()
    wait_until(lambda: (lambda m: m is not None and not m.error() and got.add(m.value().decode()))(a.poll(0.2)) or more <= got,
               60, interval_s=0, what="records after the takeover")
    a.commit(asynchronous=False)
    committed = a.committed([TopicPartition(topic, p) for p in range(4)], 10)
    assert sum(tp.offset for tp in committed) == 500
    a.close()


def test_kip848_member_carries_on_after_broker_sigkill(broker):
    """A KIP-848 member's epoch and partitions, and its committed offsets, survive a SIGKILL of
    the broker: it keeps consuming where it committed without rejoining."""
    bs, topic, group = broker.bootstrap, "kip848-restart", "durable-next-gen"
    create(bs, topic, 2)
    first = produce(bs, topic, 0, 100)
    c = Consumer({"bootstrap.servers": bs, "group.id": group, "group.protocol": "consumer",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    got = set()
    wait_until(lambda: (lambda m: m is not None and not m.error() and got.add(m.value().decode()))(c.poll(0.2)) or first <= got,
               60, interval_s=0, what="the first records")
    c.commit(asynchronous=False)
    admin = AdminClient({"bootstrap.servers": bs})
    member_before = list(admin.describe_consumer_groups([group]).values())[0].result(10).members[0].member_id
    broker.kill9()
    broker.start()
    second = produce(bs, topic, 100, 50)
    got2 = set()
    wait_until(lambda: (lambda m: m is not None and not m.error() and got2.add(m.value().decode()))(c.poll(0.2)) or second <= got2,
               60, interval_s=0, what="records after the restart")
    assert got2 == second, "the member resumed at its committed offsets"
    # A client of its own asks the restarted broker: the admin client connected across the
    # SIGKILL once left this describe unanswered for 10 s in a full-suite run (librdkafka
    # reconnecting; not reproduced in 7 reruns), which is not what this test is about.
    admin = AdminClient({"bootstrap.servers": bs})
    after = list(admin.describe_consumer_groups([group]).values())[0].result(10)
    assert [m.member_id for m in after.members] == [member_before]
    c.close()


def listed_groups(admin):
    return {g.group_id for g in admin.list_consumer_groups().result(10).valid}


def join_and_leave(bs, topic, groups, extra=None):
    """One consumer per group subscribes, waits for its assignment and closes (leaving the
    group) without committing."""
    consumers = []
    for g in groups:
        c = Consumer({"bootstrap.servers": bs, "group.id": g, "enable.auto.commit": False, **(extra or {})})
        c.subscribe([topic])
        consumers.append(c)

    def all_assigned():
        for c in consumers:
            c.poll(0)
        return all(c.assignment() for c in consumers)
    wait_until(all_assigned, 60, interval_s=0.01, what=f"{len(groups)} consumers assigned")
    for c in consumers:
        c.close()


def test_groups_without_offsets_are_removed_at_the_retention_check(broker_factory):
    """Kafka's cleanupGroupMetadata: a group left empty without committed offsets is removed at
    the next offsets.retention.check.interval.ms, classic or KIP-848; groups with committed
    offsets stay (offsets.retention.minutes has not passed)."""
    b = broker_factory("--offsets-retention-check-interval-ms", "500")
    bs, topic = b.bootstrap, "expiring-groups"
    create(bs, topic, 1)
    produce(bs, topic, 0, 10)
    admin = AdminClient({"bootstrap.servers": bs})
    keepers = {"keeper-classic": {"session.timeout.ms": 6000}, "keeper-kip848": {"group.protocol": "consumer"}}
    for group, extra in keepers.items():
        c = Consumer({"bootstrap.servers": bs, "group.id": group, "auto.offset.reset": "earliest",
                      "enable.auto.commit": False, **extra})
        c.subscribe([topic])
        got = []
        wait_until(lambda: (lambda m: m is not None and not m.error() and got.append(m))(c.poll(0.2)) or len(got) == 10,
                   60, interval_s=0, what=f"{group} to read every record")
        c.commit(asynchronous=False)
        c.close()
    transient = [f"transient-{i}" for i in range(200)]
    for start in range(0, len(transient), 25):
        batch = transient[start:start + 25]
        consumers = []
        for g in batch:
            c = Consumer({"bootstrap.servers": bs, "group.id": g, "enable.auto.commit": False})
            c.subscribe([topic])
            consumers.append(c)

        def all_assigned():
            for c in consumers:
                c.poll(0)
            return all(c.assignment() for c in consumers)
        wait_until(all_assigned, 60, interval_s=0.01, what="a batch of consumers assigned")
        # Groups with members are never removed, whatever the check interval.
        assert set(batch) <= listed_groups(admin)
        for c in consumers:
            c.close()
    join_and_leave(bs, topic, ["transient-kip848"], {"group.protocol": "consumer"})
    wait_until(lambda: not {g for g in listed_groups(admin) if g.startswith("transient-")}, 30,
               interval_s=0.1, what="every group without offsets to be removed")
    assert set(keepers) <= listed_groups(admin)
    from confluent_kafka import ConsumerGroupTopicPartitions
    for group in keepers:
        offsets = list(admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)]).values())[0].result(10)
        assert [tp.offset for tp in offsets.topic_partitions] == [10], group


def test_a_new_group_past_max_groups_waits_for_room(broker_factory):
    """--max-groups: a consumer whose group would be one too many is answered
    COORDINATOR_NOT_AVAILABLE and keeps retrying; it joins once a group is deleted. Existing
    groups carry on meanwhile."""
    b = broker_factory("--max-groups", "2")
    bs, topic = b.bootstrap, "bounded-groups"
    create(bs, topic, 1)
    produce(bs, topic, 0, 10)
    for group in ("first", "second"):
        c, got = consume_n(bs, topic, group, 10, {"enable.auto.commit": False})
        assert len(got) == 10
        c.commit(asynchronous=False)
        c.close()
    late = Consumer({"bootstrap.servers": bs, "group.id": "third", "auto.offset.reset": "earliest"})
    late.subscribe([topic])
    wait_until(lambda: (late.poll(0.1), "refusing new groups" in b.log())[1], 30, interval_s=0,
               what="the broker to refuse the third group")
    assert not late.assignment()
    join_and_leave(bs, topic, ["first"])  # an existing group still takes members
    admin = AdminClient({"bootstrap.servers": bs})
    list(admin.delete_consumer_groups(["second"]).values())[0].result(10)
    got = []
    wait_until(lambda: (lambda m: m is not None and not m.error() and got.append(m))(late.poll(0.2)) or len(got) == 10,
               60, interval_s=0, what="the third group to join and read once there is room")
    assert "third" in listed_groups(admin) and "second" not in listed_groups(admin)
    late.close()
