package io.vltava.jvm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.GroupType;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Three members of one group (classic protocol, and KIP-848's consumer protocol) share a
 * 6-partition topic while a producer writes; one member is a child JVM that is SIGKILLed mid-run.
 * The group fences it, the two survivors take over its partitions from its committed offsets, and
 * the union of what was consumed covers every record produced. A record may be delivered twice only
 * when one delivery was never committed (the killed member's uncommitted tail, or a survivor's
 * batch whose commitSync failed); a committed record is never delivered again.
 */
class ConsumerGroupTest {
    private static final int PARTITIONS = 6;
    private static final int BEFORE_TAKEOVER = 8_000;
    private static final int AFTER_TAKEOVER = 2_000;
    private static final int TOTAL = BEFORE_TAKEOVER + AFTER_TAKEOVER;
    private static final String KILLED = "killed-member";
    /** Classic session timeout of every member: Kafka's group.min.session.timeout.ms (6 s). */
    private static final int SESSION_TIMEOUT_MS = 6_000;

    @RegisterExtension
    static final VltavaBrokerExtension BROKER = new VltavaBrokerExtension();

    /** One delivery of a record to a member; batch = the member's poll number. */
    record Delivery(String member, long batch, int partition, long offset, String value) {
        String batchKey() {
            return member + "#" + batch;
        }
    }

    /** What all members saw, collected from the in-process survivors and the child's file. */
    static final class Observed {
        final List<Delivery> deliveries = new ArrayList<>();
        final Set<String> committedBatches = new HashSet<>();
        final List<String> commitFailures = new ArrayList<>();
        final List<String> errors = new ArrayList<>();
        final Map<String, Set<Integer>> lastAssignment = new HashMap<>();
    }

    /** Survivors report here, from their poll threads. */
    static final class MemorySink implements GroupMember.Sink {
        final String member;
        final ConcurrentLinkedQueue<Object[]> events = new ConcurrentLinkedQueue<>();

        MemorySink(String member) {
            this.member = member;
        }

        @Override
        public void assigned(Collection<TopicPartition> assignment) {
            events.add(new Object[]{"A", assignment.stream().map(TopicPartition::partition).collect(Collectors.toSet())});
        }

        @Override
        public void records(long batch, List<ConsumerRecord<String, String>> records) {
            for (ConsumerRecord<String, String> r : records) {
                events.add(new Object[]{"R", new Delivery(member, batch, r.partition(), r.offset(), r.value())});
            }
        }

        @Override
        public void committed(long batch, Map<TopicPartition, OffsetAndMetadata> offsets) {
            events.add(new Object[]{"C", batch});
        }

        @Override
        public void commitFailed(long batch, Exception e) {
            events.add(new Object[]{"F", batch + " " + e});
        }

        @Override
        public void error(Exception e) {
            events.add(new Object[]{"E", String.valueOf(e)});
        }

        @SuppressWarnings("unchecked")
        void into(Observed o) {
            for (Object[] e : events) {
                switch ((String) e[0]) {
                    case "A" -> o.lastAssignment.put(member, (Set<Integer>) e[1]);
                    case "R" -> o.deliveries.add((Delivery) e[1]);
                    case "C" -> o.committedBatches.add(member + "#" + e[1]);
                    case "F" -> o.commitFailures.add(member + " batch " + e[1]);
                    case "E" -> o.errors.add(member + ": " + e[1]);
                    default -> throw new IllegalStateException();
                }
            }
        }
    }

    /** Parses the complete lines of GroupMemberMain's file (a SIGKILL may cut the last one). */
    static void parseChild(Path file, Observed o) {
        String text;
        try {
            text = Files.readString(file, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new AssertionError(e);
        }
        int end = text.lastIndexOf('\n');
        if (end < 0) {
            return;
        }
        for (String line : text.substring(0, end).split("\n")) {
            String[] f = line.split(" ", 5);
            switch (f[0]) {
                case "A" -> o.lastAssignment.put(KILLED, f.length < 2 || f[1].isEmpty() ? Set.of()
                        : java.util.Arrays.stream(f[1].split(",")).map(Integer::parseInt).collect(Collectors.toSet()));
                case "R" -> o.deliveries.add(new Delivery(KILLED, Long.parseLong(f[1]), Integer.parseInt(f[2]),
                        Long.parseLong(f[3]), f[4]));
                case "C" -> o.committedBatches.add(KILLED + "#" + f[1]);
                case "F" -> o.commitFailures.add(KILLED + " batch " + line.substring(2));
                case "E" -> o.errors.add(KILLED + ": " + line.substring(2));
                default -> throw new AssertionError("bad line in child output: " + line);
            }
        }
    }

    @ParameterizedTest(name = "group.protocol={0}")
    @ValueSource(strings = {"classic", "consumer"})
    void killedMembersPartitionsAreTakenOverWithoutLoss(String protocol) throws Exception {
        String topic = "group-topic-" + protocol;
        String group = "group-" + protocol;
        GroupType type = protocol.equals("classic") ? GroupType.CLASSIC : GroupType.CONSUMER;
        Path childOut = Files.createTempFile("vltava-group-member-", ".out");
        Admin admin = Clients.admin(BROKER.bootstrap());
        ChildJvm child = null;
        List<GroupMember> survivors = new ArrayList<>();
        List<MemorySink> sinks = new ArrayList<>();
        List<Thread> threads = new ArrayList<>();
        boolean ok = false;
        try {
            Clients.createTopic(admin, topic, PARTITIONS);
            child = ChildJvm.start(KILLED, GroupMemberMain.class, List.of(BROKER.bootstrap(), topic, group, protocol,
                    KILLED, String.valueOf(SESSION_TIMEOUT_MS), childOut.toString()));
            for (int i = 1; i <= 2; i++) {
                MemorySink sink = new MemorySink("survivor-" + i);
                GroupMember m = new GroupMember(BROKER.bootstrap(), topic, group, protocol, sink.member,
                        SESSION_TIMEOUT_MS, sink);
                Thread t = new Thread(m, sink.member);
                t.setDaemon(true);
                sinks.add(sink);
                survivors.add(m);
                threads.add(t);
                t.start();
            }

            // 1. All three members in a stable group, each owning two of the six partitions.
            ChildJvm c = child;
            ConsumerGroupDescription before = Wait.forValue(Duration.ofSeconds(60),
                    "a stable group of 3 members covering all 6 partitions", () -> {
                        if (!c.isAlive()) {
                            throw new AssertionError(c.describe() + " died:\n" + c.log());
                        }
                        ConsumerGroupDescription d = describe(admin, group);
                        return settled(d, type, Set.of(KILLED, "survivor-1", "survivor-2")) ? Optional.of(d) : Optional.empty();
                    });
            assertGroupDescription(before, group, type, 3);
            for (MemberDescription m : before.members()) {
                assertEquals(2, m.assignment().topicPartitions().size(), "balanced assignment: " + before);
            }
            Set<Integer> childPartitions = partitionsOf(before, KILLED);

            // 2. A producer writes while the members consume; the child is killed once it has
            //    processed and committed some of its records.
            ConcurrentLinkedQueue<Exception> produceErrors = new ConcurrentLinkedQueue<>();
            Thread producer = new Thread(() -> produce(topic, 0, BEFORE_TAKEOVER, produceErrors), "producer");
            producer.start();
            Wait.until(Duration.ofSeconds(60), "the child member to process and commit records", () -> {
                Observed o = new Observed();
                parseChild(childOut, o);
                if (!o.errors.isEmpty()) {
                    throw new AssertionError("child failed: " + o.errors);
                }
                return o.deliveries.size() >= 100 && !o.committedBatches.isEmpty();
            });
            child.kill9();
            producer.join(60_000);
            assertFalse(producer.isAlive(), "producer finished");
            if (!produceErrors.isEmpty()) {
                fail("produce failed", produceErrors.peek());
            }

            // 3. The group fences the killed member (session timeout: the classic one is the
            //    member's, 6 s; the consumer protocol's is the broker's 45 s) and the survivors
            //    own all six partitions.
            Duration fence = type == GroupType.CLASSIC ? Duration.ofSeconds(30) : Duration.ofSeconds(75);
            ConsumerGroupDescription after = Wait.forValue(fence,
                    "the survivors to own all 6 partitions without the killed member", () -> {
                        ConsumerGroupDescription d = describe(admin, group);
                        return settled(d, type, Set.of("survivor-1", "survivor-2")) ? Optional.of(d) : Optional.empty();
                    });
            assertGroupDescription(after, group, type, 2);

            // 4. More records after the takeover; everything is consumed and committed.
            List<Exception> errs = new ArrayList<>();
            produce(topic, BEFORE_TAKEOVER, AFTER_TAKEOVER, errs);
            if (!errs.isEmpty()) {
                fail("produce failed", errs.get(0));
            }
            Set<String> produced = new HashSet<>();
            for (int i = 0; i < TOTAL; i++) {
                produced.add(value(i));
            }
            Wait.until(Duration.ofSeconds(60), "every produced record to be consumed", () -> {
                Observed o = observe(sinks, childOut);
                if (!o.errors.isEmpty()) {
                    throw new AssertionError("member failed: " + o.errors);
                }
                return o.deliveries.stream().map(Delivery::value).collect(Collectors.toSet()).containsAll(produced);
            });
            Map<TopicPartition, Long> ends;
            try (var consumer = new org.apache.kafka.clients.consumer.KafkaConsumer<String, String>(
                    Clients.consumerConfig(BROKER.bootstrap()))) {
                ends = consumer.endOffsets(Clients.partitions(topic, PARTITIONS), Clients.CALL_TIMEOUT);
            }
            assertEquals((long) TOTAL, ends.values().stream().mapToLong(Long::longValue).sum(), "records in the topic");
            Wait.until(Duration.ofSeconds(30), "the group's committed offsets to reach the end offsets", () -> {
                Map<TopicPartition, OffsetAndMetadata> committed =
                        Clients.get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata());
                return ends.entrySet().stream().allMatch(e -> committed.get(e.getKey()) != null
                        && committed.get(e.getKey()).offset() == e.getValue());
            });
            for (GroupMember m : survivors) {
                m.close();
            }
            for (Thread t : threads) {
                t.join(30_000);
                assertFalse(t.isAlive(), t.getName() + " stopped");
            }

            // 5. The record-level verdict.
            Observed o = observe(sinks, childOut);
            assertTrue(o.errors.isEmpty(), "member errors: " + o.errors);
            Map<String, List<Delivery>> byValue = o.deliveries.stream().collect(Collectors.groupingBy(Delivery::value));
            assertEquals(produced, byValue.keySet(), "consumed exactly the produced records (none lost, none invented)");
            int duplicates = 0;
            for (Map.Entry<String, List<Delivery>> e : byValue.entrySet()) {
                List<Delivery> ds = e.getValue();
                if (ds.size() == 1) {
                    continue;
                }
                duplicates += ds.size() - 1;
                long committedDeliveries = ds.stream().filter(d -> o.committedBatches.contains(d.batchKey())).count();
                assertTrue(committedDeliveries <= 1, "record " + e.getKey() + " delivered again after a commit: " + ds);
                Set<Integer> positions = ds.stream().map(d -> d.partition()).collect(Collectors.toSet());
                assertEquals(1, positions.size(), "one partition per record: " + ds);
            }
            List<Delivery> childTail = o.deliveries.stream()
                    .filter(d -> d.member().equals(KILLED) && !o.committedBatches.contains(d.batchKey())).toList();
            if (o.commitFailures.isEmpty()) {
                // Then every re-delivered record is one of the killed member's uncommitted ones.
                Set<String> tail = childTail.stream().map(Delivery::value).collect(Collectors.toSet());
                for (Map.Entry<String, List<Delivery>> e : byValue.entrySet()) {
                    if (e.getValue().size() > 1) {
                        assertTrue(tail.contains(e.getKey()), "duplicate outside the killed member's uncommitted tail: " + e.getValue());
                    }
                }
            }
            // The survivors consumed from every partition the killed member had owned.
            for (int p : childPartitions) {
                assertTrue(o.deliveries.stream().anyMatch(d -> !d.member().equals(KILLED) && d.partition() == p),
                        "survivors took over partition " + p);
            }
            // Per member and partition, offsets only go forward, one by one: no gaps, no re-reads
            // (the single rebalance after the kill never hands a member back a partition it lost).
            Map<String, Long> lastOffset = new HashMap<>();
            for (Delivery d : o.deliveries) {
                Long prev = lastOffset.put(d.member() + "/" + d.partition(), d.offset());
                assertTrue(prev == null || d.offset() == prev + 1,
                        d.member() + " read partition " + d.partition() + " offset " + d.offset() + " after " + prev);
            }
            System.out.printf("%s: %d deliveries, %d duplicates (killed member's uncommitted tail: %d records), "
                            + "commit failures: %s, killed member had partitions %s%n",
                    protocol, o.deliveries.size(), duplicates, childTail.size(), o.commitFailures, new TreeSet<>(childPartitions));
            ok = true;
        } finally {
            for (GroupMember m : survivors) {
                m.close();
            }
            for (Thread t : threads) {
                t.join(15_000);
            }
            if (child != null) {
                if (!ok) {
                    System.err.println("--- " + child.describe() + " log ---\n" + tail(child.log(), 8000));
                }
                child.close();
            }
            admin.close(Duration.ofSeconds(10));
            Files.deleteIfExists(childOut);
        }
    }

    private static Observed observe(List<MemorySink> sinks, Path childOut) {
        Observed o = new Observed();
        parseChild(childOut, o);
        for (MemorySink s : sinks) {
            s.into(o);
        }
        return o;
    }

    private static void produce(String topic, int from, int count, Collection<Exception> errors) {
        try (KafkaProducer<String, String> p = Clients.producer(BROKER.bootstrap())) {
            for (int i = from; i < from + count; i++) {
                p.send(new ProducerRecord<>(topic, i % PARTITIONS, "k" + i, value(i)), (md, e) -> {
                    if (e != null) {
                        errors.add(e);
                    }
                });
                if ((i + 1) % 500 == 0) {
                    p.flush();
                }
            }
            p.flush();
        } catch (Exception e) {
            errors.add(e);
        }
    }

    private static String value(int i) {
        return String.format("record-%05d", i);
    }

    private static ConsumerGroupDescription describe(Admin admin, String group) {
        return Clients.get(admin.describeConsumerGroups(List.of(group)).describedGroups().get(group));
    }

    /**
     * Stable, exactly the members {@code clientIds}, their assignments disjoint and covering all
     * partitions; for the consumer protocol also every member at the target assignment epoch.
     */
    private static boolean settled(ConsumerGroupDescription d, GroupType type, Set<String> clientIds) {
        if (d.groupState() != GroupState.STABLE) {
            return false;
        }
        Set<String> ids = d.members().stream().map(MemberDescription::clientId).collect(Collectors.toSet());
        if (d.members().size() != clientIds.size() || !ids.equals(clientIds)) {
            return false;
        }
        List<Integer> all = d.members().stream().flatMap(m -> m.assignment().topicPartitions().stream())
                .map(TopicPartition::partition).sorted().toList();
        if (!all.equals(List.of(0, 1, 2, 3, 4, 5))) {
            return false;
        }
        if (type == GroupType.CONSUMER) {
            Optional<Integer> target = d.targetAssignmentEpoch();
            return target.isPresent() && d.members().stream().allMatch(m -> m.memberEpoch().equals(target)
                    && m.targetAssignment().map(t -> t.equals(m.assignment())).orElse(false));
        }
        return true;
    }

    private static void assertGroupDescription(ConsumerGroupDescription d, String group, GroupType type, int members) {
        assertEquals(group, d.groupId());
        assertEquals(type, d.type(), "group type");
        assertEquals(GroupState.STABLE, d.groupState());
        assertFalse(d.isSimpleConsumerGroup());
        assertEquals(members, d.members().size());
        assertEquals(BROKER.broker().nodeId(), d.coordinator().id(), "coordinator");
        assertEquals(type == GroupType.CLASSIC ? "range" : "uniform", d.partitionAssignor(), "assignor");
        for (MemberDescription m : d.members()) {
            assertFalse(m.consumerId().isEmpty(), "member id");
            assertFalse(m.host().isEmpty(), "member host");
            assertTrue(m.groupInstanceId().isEmpty());
        }
        if (type == GroupType.CONSUMER) {
            assertTrue(d.groupEpoch().isPresent() && d.groupEpoch().get() > 0, "group epoch " + d.groupEpoch());
            assertEquals(d.groupEpoch(), d.targetAssignmentEpoch(), "target assignment epoch");
        } else {
            assertTrue(d.groupEpoch().isEmpty(), "no group epoch for a classic group");
        }
    }

    private static Set<Integer> partitionsOf(ConsumerGroupDescription d, String clientId) {
        return d.members().stream().filter(m -> m.clientId().equals(clientId))
                .flatMap(m -> m.assignment().topicPartitions().stream()).map(TopicPartition::partition)
                .collect(Collectors.toSet());
    }

    private static String tail(String s, int n) {
        return s.length() <= n ? s : "..." + s.substring(s.length() - n);
    }
}
