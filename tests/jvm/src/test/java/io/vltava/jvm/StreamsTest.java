package io.vltava.jvm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.function.Supplier;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.ListStreamsGroupOffsetsSpec;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.StreamsGroupDescription;
import org.apache.kafka.clients.admin.StreamsGroupMemberAssignment;
import org.apache.kafka.clients.admin.StreamsGroupMemberDescription;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.GroupType;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * A stateful Kafka Streams 4.4 application ({@link StreamsApp}: per-key aggregates in RocksDB
 * stores with changelogs, a re-keying through a repartition topic, a windowed KStream-KStream
 * join) at-least-once on Vltava: the internal topics Streams creates, and exactly the right output
 * when nothing fails, when the broker is SIGKILLed and restarted mid-processing, and when the
 * application itself (a child JVM) is SIGKILLed and restarted, once on its old state directory and
 * once on a fresh one (so its state is restored from the changelogs), with new input processed on
 * top of the restored state.
 *
 * <p>The crash tests check the idempotent aggregates (event-id sets, see {@link StreamsApp}) and
 * the join output as a set exactly; the plain {@code count()} only as a lower bound, since
 * at-least-once may count re-processed records twice.
 */
class StreamsTest {
    private static final Duration OUTPUT_TIMEOUT = Duration.ofSeconds(90);

    /** A broker per test: the broker-kill test restarts it, and each test starts from nothing. */
    @RegisterExtension
    final VltavaBrokerExtension broker = new VltavaBrokerExtension();

    // ---- group.protocol=classic and =streams, nothing fails -----------------------------------

    @Test
    void classicProtocolComputesExactResults() throws Exception {
        runWithoutFailures("classic");
    }

    /**
     * The same with KIP-1071's streams rebalance protocol. It passes against Apache Kafka 4.4.0 (a
     * combined KRaft node formatted with --feature streams.version=1; run once by hand, as the
     * classic variant was): there the broker creates the internal topics from the topology the
     * client sends in StreamsGroupHeartbeat, with the same configs, and describeStreamsGroups
     * shows one member owning both sub-topologies' tasks.
     */
    @Test
    void streamsProtocolComputesExactResults() throws Exception {
        runWithoutFailures("streams");
    }

    /**
     * Half the events before the application starts, half while it runs; then the outputs are
     * exactly the expected ones (the plain count too, and no join result twice), the internal
     * topics exist with Streams' configs, the group is as Kafka describes it and has committed
     * every input record.
     */
    private void runWithoutFailures(String protocol) throws Exception {
        String appId = "vltava-streams-" + protocol;
        long base = System.currentTimeMillis();
        try (Admin admin = Clients.admin(bootstrap());
             KafkaProducer<String, String> producer = producer();
             Outputs outputs = new Outputs(bootstrap());
             InProcessApp app = new InProcessApp(bootstrap(), appId, protocol)) {
            createTopics(admin);
            producePromos(producer, base);
            produceEvents(producer, base, 0, StreamsApp.EVENT_COUNT / 2);
            app.start();
            app.awaitRunning(Duration.ofSeconds(60));
            produceEvents(producer, base, StreamsApp.EVENT_COUNT / 2, StreamsApp.EVENT_COUNT);

            StreamsApp.Expected expected = StreamsApp.expected(base, StreamsApp.EVENT_COUNT);
            awaitOutput(outputs, expected, true, app::assertHealthy);
            assertInternalTopics(admin, appId);
            awaitCommittedToEnd(admin, appId, protocol);
            outputs.poll();
            assertOutput(outputs, expected, true);
            assertEquals(expected.joined().size(), outputs.joinedRecords,
                    "no failure: every join result exactly once");
            if (protocol.equals("classic")) {
                assertClassicGroup(admin, appId);
            } else {
                assertStreamsGroup(admin, appId);
            }
            app.assertHealthy();
            assertFalse(app.transitions().contains(KafkaStreams.State.ERROR), "transitions " + app.transitions());
            System.out.printf("%s: %d events, %d promos -> %d join results; transitions %s%n", protocol,
                    StreamsApp.EVENT_COUNT, StreamsApp.PROMO_COUNT, expected.joined().size(), app.transitions());
        }
    }

    // ---- Kafka's kafka-streams-groups tool -----------------------------------------------------

    /** What {@code scripts/kafka streams-groups ARGS} printed and how it exited. */
    record ToolRun(int exitCode, String stdout, String stderr) {
    }

    private ToolRun streamsGroups(String... args) {
        try {
            return runStreamsGroups(args);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted", e);
        }
    }

    private ToolRun runStreamsGroups(String... args) throws IOException, InterruptedException {
        Path repo = Path.of(System.getProperty("user.dir")).getParent().getParent();
        List<String> cmd = new ArrayList<>(List.of(repo.resolve("scripts/kafka").toString(), "streams-groups",
                "--bootstrap-server", bootstrap()));
        cmd.addAll(List.of(args));
        Path out = Files.createTempFile("vltava-tool-", ".out");
        Path err = Files.createTempFile("vltava-tool-", ".err");
        try {
            Process p = new ProcessBuilder(cmd).redirectOutput(out.toFile()).redirectError(err.toFile())
                    .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null"))).start();
            if (!p.waitFor(120, java.util.concurrent.TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new AssertionError("kafka-streams-groups " + List.of(args) + " did not finish in 120 s");
            }
            ToolRun r = new ToolRun(p.exitValue(), read(out), read(err));
            System.out.printf("kafka-streams-groups %s -> %d%n%s%s%n", List.of(args), r.exitCode(), r.stdout(), r.stderr());
            return r;
        } finally {
            Files.deleteIfExists(out);
            Files.deleteIfExists(err);
        }
    }

    /**
     * Kafka 4.4's StreamsGroupCommand against a running streams-protocol application: --list,
     * --describe (offsets and lag, --members, --state), a group that does not exist, and
     * --delete of a group with members (refused).
     */
    @Test
    void streamsGroupsToolListsAndDescribesTheGroup() throws Exception {
        String appId = "vltava-streams-tool";
        long base = System.currentTimeMillis();
        try (Admin admin = Clients.admin(bootstrap());
             KafkaProducer<String, String> producer = producer();
             Outputs outputs = new Outputs(bootstrap());
             InProcessApp app = new InProcessApp(bootstrap(), appId, "streams")) {
            createTopics(admin);
            producePromos(producer, base);
            produceEvents(producer, base, 0, StreamsApp.EVENT_COUNT);
            app.start();
            app.awaitRunning(Duration.ofSeconds(60));
            awaitOutput(outputs, StreamsApp.expected(base, StreamsApp.EVENT_COUNT), false, app::assertHealthy);
            awaitCommittedToEnd(admin, appId, "streams");

            ToolRun list = streamsGroups("--list");
            assertEquals(0, list.exitCode(), list.stderr());
            assertEquals(List.of(appId), rows(list.stdout()).stream().map(r -> r[0]).toList(), "--list");

            // Offsets and lag: every source and repartition partition, committed to its end.
            ToolRun offsets = streamsGroups("--describe", "--group", appId);
            assertEquals(0, offsets.exitCode(), offsets.stderr());
            List<String[]> table = rows(offsets.stdout());
            assertEquals(List.of("GROUP", "TOPIC", "PARTITION", "OFFSET-LAG"), List.of(table.get(0)));
            Set<TopicPartition> described = new HashSet<>();
            for (String[] r : table.subList(1, table.size())) {
                assertEquals(appId, r[0]);
                described.add(new TopicPartition(r[1], Integer.parseInt(r[2])));
                assertEquals("0", r[3], "lag of " + r[1] + "-" + r[2]);
            }
            assertEquals(inputEnds(admin, appId).keySet(), described, "partitions of --describe");

            // Members: the one member as the Admin client describes it, with every task.
            StreamsGroupMemberDescription member = Clients.get(admin.describeStreamsGroups(List.of(appId))
                    .describedGroups().get(appId)).members().iterator().next();
            ToolRun members = streamsGroups("--describe", "--group", appId, "--members");
            assertEquals(0, members.exitCode(), members.stderr());
            List<String[]> m = rows(members.stdout());
            assertEquals(List.of("GROUP", "MEMBER", "PROCESS", "CLIENT-ID", "ASSIGNMENTS"),
                    List.of(m.get(0)));
            assertEquals(2, m.size(), "one member: " + members.stdout());
            assertEquals(List.of(appId, member.memberId(), member.processId(), member.clientId()),
                    List.of(m.get(1)).subList(0, 4));
            assertEquals("ACTIVE: 0:[0,1,2]; 1:[0,1,2];",
                    String.join(" ", List.of(m.get(1)).subList(4, m.get(1).length)));
            ToolRun verbose = streamsGroups("--describe", "--group", appId, "--members", "--verbose");
            assertEquals(0, verbose.exitCode(), verbose.stderr());
            List<String[]> v = rows(verbose.stdout());
            int epoch = List.of(v.get(0)).indexOf("MEMBER-EPOCH");
            int protocolColumn = List.of(v.get(0)).indexOf("MEMBER-PROTOCOL");
            assertEquals(String.valueOf(member.memberEpoch()), v.get(1)[epoch]);
            assertEquals("streams", v.get(1)[protocolColumn]);
            assertTrue(verbose.stdout().contains("TARGET-ACTIVE: 0:[0,1,2]; 1:[0,1,2];"), verbose.stdout());

            ToolRun state = streamsGroups("--describe", "--group", appId, "--state");
            assertEquals(0, state.exitCode(), state.stderr());
            String[] st = rows(state.stdout()).get(1);
            assertEquals(appId, st[0]);
            assertEquals("(" + broker.broker().nodeId() + ")", st[2]);
            assertEquals(List.of("Stable", "1"), List.of(st).subList(st.length - 2, st.length));

            ToolRun missing = streamsGroups("--describe", "--group", "no-such-group");
            assertEquals(1, missing.exitCode());
            assertTrue((missing.stdout() + missing.stderr())
                    .contains("GroupIdNotFoundException: Group no-such-group not found."), missing.stderr());

            // A group with members is not deleted (the tool says so and exits 0, as with Kafka).
            ToolRun delete = streamsGroups("--delete", "--group", appId);
            assertTrue((delete.stdout() + delete.stderr()).contains("GroupNotEmptyException"), delete.stdout());
            assertEquals(List.of(appId), rows(streamsGroups("--list").stdout()).stream().map(r -> r[0]).toList());
            app.assertHealthy();

            // The application stops: the group stays, Empty, with its offsets, and is deleted.
            app.streams.close(Duration.ofSeconds(30));
            Wait.until(Duration.ofSeconds(30), "the group to be Empty", () -> {
                ToolRun r = streamsGroups("--describe", "--group", appId, "--state");
                // The tool also prints "Error: Streams group '...' has no active members." (and exits 0).
                return r.exitCode() == 0 && rows(r.stdout()).stream()
                        .anyMatch(x -> x[0].equals(appId) && List.of(x).contains("Empty"));
            });
            ToolRun emptyOffsets = streamsGroups("--describe", "--group", appId);
            assertEquals(0, emptyOffsets.exitCode(), emptyOffsets.stderr());
            // Kafka 4.4's tool lists the partitions of members' assignments only: none here.
            assertEquals(List.of(), rows(emptyOffsets.stdout()).stream().filter(x -> x[0].equals(appId)).toList());
            Set<TopicPartition> committed = inputEnds(admin, appId).entrySet().stream()
                    .filter(e -> e.getValue() > 0).map(Map.Entry::getKey).collect(Collectors.toSet());
            assertEquals(committed, Clients.get(admin.listStreamsGroupOffsets(
                    Map.of(appId, new ListStreamsGroupOffsetsSpec())).partitionsToOffsetAndMetadata(appId)).keySet(),
                    "the offsets remain");
            assertEquals(List.of(appId), rows(streamsGroups("--list").stdout()).stream().map(r -> r[0]).toList());
            ToolRun deleted = streamsGroups("--delete", "--group", appId);
            assertEquals(0, deleted.exitCode(), deleted.stderr());
            assertTrue(deleted.stdout().contains("successful"), deleted.stdout());
            assertEquals(List.of(), rows(streamsGroups("--list").stdout()), "deleted");
            assertTrue(Clients.get(admin.listStreamsGroupOffsets(Map.of(appId, new ListStreamsGroupOffsetsSpec()))
                    .partitionsToOffsetAndMetadata(appId)).isEmpty(), "its offsets went with it");
        }
    }

    /** The non-empty lines of a tool's table, split on runs of spaces. */
    private static List<String[]> rows(String out) {
        return out.lines().map(String::strip).filter(l -> !l.isEmpty()).map(l -> l.split("\\s+")).toList();
    }

    // ---- the broker is SIGKILLed while the application processes ------------------------------

    /**
     * The application processes the first half of the events when the broker is SIGKILLed; the
     * second half is sent while it is down, then it restarts on the same data directory. The
     * application and the producer recover by themselves and the output is exactly right.
     */
    @Test
    void survivesBrokerKill9AndRestart() throws Exception {
        brokerKill9AndRestart("classic");
    }

    /** The same with the streams protocol: the group's members and tasks survive the restart. */
    @Test
    void streamsProtocolSurvivesBrokerKill9AndRestart() throws Exception {
        brokerKill9AndRestart("streams");
    }

    private void brokerKill9AndRestart(String protocol) throws Exception {
        String appId = "vltava-streams-broker-kill-" + protocol;
        long base = System.currentTimeMillis();
        ConcurrentLinkedQueue<Exception> sendErrors = new ConcurrentLinkedQueue<>();
        try (Admin admin = Clients.admin(bootstrap());
             KafkaProducer<String, String> producer = producer();
             Outputs outputs = new Outputs(bootstrap());
             InProcessApp app = new InProcessApp(bootstrap(), appId, protocol)) {
            createTopics(admin);
            shortStreamsSessions(admin, appId, protocol);
            app.start();
            app.awaitRunning(Duration.ofSeconds(60));
            producePromos(producer, base);
            produceEvents(producer, base, 0, StreamsApp.EVENT_COUNT / 2);
            Wait.until(Duration.ofSeconds(60), "the application's first output records", () -> {
                app.assertHealthy();
                outputs.poll();
                return outputs.records > 0;
            });
            long outputAtKill = outputs.records;
            broker.broker().kill9();

            // The producer's send() waits for metadata while the broker is down (max.block.ms),
            // so the second half is sent from another thread while the broker restarts.
            Thread sender = new Thread(() -> {
                try {
                    for (int i = StreamsApp.EVENT_COUNT / 2; i < StreamsApp.EVENT_COUNT; i++) {
                        producer.send(eventRecord(base, i), (md, e) -> {
                            if (e != null) {
                                sendErrors.add(e);
                            }
                        });
                    }
                    producer.flush();
                } catch (Exception e) {
                    sendErrors.add(e);
                }
            }, "sender");
            sender.setDaemon(true);
            sender.start();
            broker.broker().start();
            sender.join(Duration.ofSeconds(90).toMillis());
            assertFalse(sender.isAlive(), "the producer delivered the second half within 90 s of the restart");
            if (!sendErrors.isEmpty()) {
                fail("produce across the broker restart failed", sendErrors.peek());
            }

            StreamsApp.Expected expected = StreamsApp.expected(base, StreamsApp.EVENT_COUNT);
            awaitOutput(outputs, expected, false, () -> {
            });
            awaitCommittedToEnd(admin, appId, protocol);
            outputs.poll();
            assertOutput(outputs, expected, false);
            Wait.until(Duration.ofSeconds(30), "KafkaStreams RUNNING after the recovery",
                    () -> app.streams.state() == KafkaStreams.State.RUNNING);
            System.out.printf("broker kill: %d output records before the kill, %d after; join results %d "
                            + "(%d distinct); uncaught exceptions %s; transitions %s%n",
                    outputAtKill, outputs.records, outputs.joinedRecords, outputs.joined.size(),
                    app.errors, app.transitions());
        }
    }

    // ---- the application is SIGKILLed and restarted -------------------------------------------

    /**
     * Child JVM A processes, is SIGKILLed in the middle of the second batch of events; B takes
     * over with A's state directory; B is SIGKILLed and C starts on an empty state directory, so it
     * restores every store from its changelog; new events are then processed on top of the restored
     * state. After each step the output is exactly right.
     */
    @Test
    void survivesApplicationKill9AndRestartFromChangelog() throws Exception {
        applicationKill9AndRestartFromChangelog("classic");
    }

    /**
     * The same with the streams protocol: a SIGKILLed member's tasks go to the next instance
     * once the group's streams.session.timeout.ms (6 s here) has passed.
     */
    @Test
    void streamsProtocolSurvivesApplicationKill9AndRestartFromChangelog() throws Exception {
        applicationKill9AndRestartFromChangelog("streams");
    }

    private void applicationKill9AndRestartFromChangelog(String protocol) throws Exception {
        String appId = "vltava-streams-app-restart-" + protocol;
        long base = System.currentTimeMillis();
        Path stateA = Files.createTempDirectory("vltava-streams-state-");
        Path stateC = Files.createTempDirectory("vltava-streams-state-");
        List<Path> outFiles = new ArrayList<>();
        List<ChildJvm> children = new ArrayList<>();
        boolean ok = false;
        try (Admin admin = Clients.admin(bootstrap());
             KafkaProducer<String, String> producer = producer();
             Outputs outputs = new Outputs(bootstrap())) {
            createTopics(admin);
            shortStreamsSessions(admin, appId, protocol);
            producePromos(producer, base);
            produceEvents(producer, base, 0, 200);

            // A: processes events 0..199, then is killed while it processes 200..399.
            Path outA = tempOut(outFiles);
            ChildJvm a = startApp(children, "streams-a", appId, stateA, outA, protocol);
            awaitOutput(outputs, StreamsApp.expected(base, 200), false, () -> assertChildHealthy(a, outA));
            StreamsApp.Expected after200 = StreamsApp.expected(base, 200);
            produceEvents(producer, base, 200, 400);
            Wait.until(Duration.ofSeconds(60), "A to process some of events 200..399", () -> {
                assertChildHealthy(a, outA);
                outputs.poll();
                return !outputs.userTotals.equals(after200.userTotals());
            });
            a.kill9();

            // B: same application.id and state directory; finishes 200..399, then 400..499.
            Path outB = tempOut(outFiles);
            ChildJvm b = startApp(children, "streams-b", appId, stateA, outB, protocol);
            awaitOutput(outputs, StreamsApp.expected(base, 400), false, () -> assertChildHealthy(b, outB));
            awaitState(b, outB, "RUNNING");
            produceEvents(producer, base, 400, 500);
            awaitOutput(outputs, StreamsApp.expected(base, 500), false, () -> assertChildHealthy(b, outB));
            awaitCommittedToEnd(admin, appId, protocol);
            b.kill9();

            // C: a fresh state directory: every store is restored from its changelog, then 500..599.
            Path outC = tempOut(outFiles);
            ChildJvm c = startApp(children, "streams-c", appId, stateC, outC, protocol);
            awaitState(c, outC, "RUNNING");
            produceEvents(producer, base, 500, StreamsApp.EVENT_COUNT);
            StreamsApp.Expected expected = StreamsApp.expected(base, StreamsApp.EVENT_COUNT);
            awaitOutput(outputs, expected, false, () -> assertChildHealthy(c, outC));
            awaitCommittedToEnd(admin, appId, protocol);
            outputs.poll();
            assertOutput(outputs, expected, false);

            Map<String, Long> restored = restored(outC);
            for (int p = 0; p < StreamsApp.PARTITIONS; p++) {
                for (String store : List.of(StreamsApp.USER_STORE, StreamsApp.COUNT_STORE)) {
                    String key = store + " " + appId + "-" + store + "-changelog-" + p;
                    assertTrue(restored.getOrDefault(key, 0L) > 0,
                            "C restored " + key + " from the changelog; restored: " + restored);
                }
            }
            assertChildHealthy(c, outC);
            System.out.printf("application restart: C restored %s; join results %d (%d distinct)%n",
                    new TreeMap<>(restored), outputs.joinedRecords, outputs.joined.size());
            ok = true;
        } finally {
            for (ChildJvm child : children) {
                if (!ok) {
                    System.err.println("--- " + child.describe() + " log ---\n" + tail(child.log(), 6000));
                }
                child.close();
            }
            for (Path p : outFiles) {
                if (!ok) {
                    System.err.println("--- " + p + " ---\n" + tail(read(p), 4000));
                }
                Files.deleteIfExists(p);
            }
            VltavaBroker.deleteRecursively(stateA);
            VltavaBroker.deleteRecursively(stateC);
        }
    }

    // ---- the application in the test JVM -------------------------------------------------------

    /** A KafkaStreams instance with its own state directory; threads that die are replaced. */
    static final class InProcessApp implements AutoCloseable {
        final KafkaStreams streams;
        final Path stateDir;
        final ConcurrentLinkedQueue<Throwable> errors = new ConcurrentLinkedQueue<>();
        private final List<KafkaStreams.State> transitions = Collections.synchronizedList(new ArrayList<>());

        InProcessApp(String bootstrap, String appId, String protocol) throws IOException {
            stateDir = Files.createTempDirectory("vltava-streams-state-");
            streams = new KafkaStreams(StreamsApp.topology(), StreamsApp.config(bootstrap, appId, stateDir, protocol));
            streams.setStateListener((newState, oldState) -> transitions.add(newState));
            streams.setUncaughtExceptionHandler(e -> {
                errors.add(e);
                return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.REPLACE_THREAD;
            });
        }

        void start() {
            streams.start();
        }

        List<KafkaStreams.State> transitions() {
            synchronized (transitions) {
                return new ArrayList<>(transitions);
            }
        }

        void awaitRunning(Duration timeout) {
            Wait.until(timeout, "KafkaStreams RUNNING", () -> {
                assertHealthy();
                return streams.state() == KafkaStreams.State.RUNNING;
            });
        }

        /** No uncaught exception and not in ERROR (an AssertionError, so that Wait stops at once). */
        void assertHealthy() {
            Throwable e = errors.peek();
            if (e != null) {
                AssertionError err = new AssertionError("stream thread died: " + e + "; transitions " + transitions());
                err.initCause(e);
                throw err;
            }
            if (streams.state() == KafkaStreams.State.ERROR || streams.state() == KafkaStreams.State.PENDING_ERROR) {
                throw new AssertionError("KafkaStreams in " + streams.state() + "; transitions " + transitions());
            }
        }

        @Override
        public void close() {
            try {
                streams.close(Duration.ofSeconds(30));
                streams.cleanUp();
            } finally {
                VltavaBroker.deleteRecursively(stateDir);
            }
        }
    }

    // ---- the application in a child JVM ---------------------------------------------------------

    private ChildJvm startApp(List<ChildJvm> children, String name, String appId, Path stateDir, Path out,
                              String protocol) {
        ChildJvm c = ChildJvm.start(name, StreamsAppMain.class,
                List.of(bootstrap(), appId, stateDir.toString(), protocol, out.toString()));
        children.add(c);
        return c;
    }

    private static Path tempOut(List<Path> outFiles) throws IOException {
        Path p = Files.createTempFile("vltava-streams-app-", ".out");
        outFiles.add(p);
        return p;
    }

    /** The complete lines of a StreamsAppMain report (a SIGKILL may cut the last one). */
    private static List<String> lines(Path out) {
        String text = read(out);
        int end = text.lastIndexOf('\n');
        return end < 0 ? List.of() : List.of(text.substring(0, end).split("\n"));
    }

    private static void assertChildHealthy(ChildJvm child, Path out) {
        if (!child.isAlive()) {
            throw new AssertionError(child.describe() + " died:\n" + tail(child.log(), 6000));
        }
        for (String l : lines(out)) {
            if (l.startsWith("E ") || l.endsWith(" ERROR")) {
                throw new AssertionError(child.describe() + ": " + l + "\n" + tail(child.log(), 6000));
            }
        }
    }

    private static void awaitState(ChildJvm child, Path out, String state) {
        Wait.until(Duration.ofSeconds(60), child.describe() + " to reach " + state, () -> {
            assertChildHealthy(child, out);
            return lines(out).stream().anyMatch(l -> l.startsWith("S ") && l.endsWith(" " + state));
        });
    }

    /** "store topic-partition" to records restored, from the R lines. */
    private static Map<String, Long> restored(Path out) {
        Map<String, Long> m = new HashMap<>();
        for (String l : lines(out)) {
            if (l.startsWith("R ")) {
                String[] f = l.split(" ");
                m.merge(f[1] + " " + f[2], Long.parseLong(f[3]), Long::sum);
            }
        }
        return m;
    }

    // ---- input ----------------------------------------------------------------------------------

    private String bootstrap() {
        return broker.bootstrap();
    }

    private KafkaProducer<String, String> producer() {
        Map<String, Object> c = Clients.producerConfig(bootstrap());
        c.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true);
        c.put(ProducerConfig.LINGER_MS_CONFIG, 5);
        return new KafkaProducer<>(c);
    }

    /**
     * The streams protocol takes the session timeout and heartbeat interval from the group's
     * configs (the classic one from the client, 6 s / 1 s in {@link StreamsApp#config}): the same
     * here, so a SIGKILLed member's tasks move on after 6 s, not Kafka's default 45 s. (Apache
     * Kafka also needs its broker's group.streams.min.session.timeout.ms and
     * group.streams.min.heartbeat.interval.ms lowered to accept them.)
     */
    private static void shortStreamsSessions(Admin admin, String appId, String protocol) {
        if (!protocol.equals("streams")) {
            return;
        }
        ConfigResource group = new ConfigResource(ConfigResource.Type.GROUP, appId);
        Clients.get(admin.incrementalAlterConfigs(Map.of(group, List.of(
                new AlterConfigOp(new ConfigEntry("streams.session.timeout.ms", "6000"), AlterConfigOp.OpType.SET),
                new AlterConfigOp(new ConfigEntry("streams.heartbeat.interval.ms", "1000"), AlterConfigOp.OpType.SET))))
                .all());
    }

    private static void createTopics(Admin admin) {
        for (String t : List.of(StreamsApp.EVENTS, StreamsApp.PROMOS, StreamsApp.USER_TOTALS, StreamsApp.USER_COUNTS,
                StreamsApp.REGION_TOTALS, StreamsApp.JOINED)) {
            Clients.createTopic(admin, t, StreamsApp.PARTITIONS);
        }
    }

    private static ProducerRecord<String, String> eventRecord(long base, int i) {
        return new ProducerRecord<>(StreamsApp.EVENTS, null, StreamsApp.eventTimestamp(base, i),
                StreamsApp.eventUser(i), StreamsApp.eventValue(i));
    }

    private static void produceEvents(KafkaProducer<String, String> p, long base, int from, int to) throws Exception {
        List<java.util.concurrent.Future<?>> fs = new ArrayList<>();
        for (int i = from; i < to; i++) {
            fs.add(p.send(eventRecord(base, i)));
        }
        p.flush();
        for (var f : fs) {
            f.get();
        }
    }

    private static void producePromos(KafkaProducer<String, String> p, long base) throws Exception {
        List<java.util.concurrent.Future<?>> fs = new ArrayList<>();
        for (int j = 0; j < StreamsApp.PROMO_COUNT; j++) {
            fs.add(p.send(new ProducerRecord<>(StreamsApp.PROMOS, null, StreamsApp.promoTimestamp(base, j),
                    StreamsApp.promoUser(j), StreamsApp.promoId(j))));
        }
        p.flush();
        for (var f : fs) {
            f.get();
        }
    }

    // ---- output ---------------------------------------------------------------------------------

    /** Reads the four output topics from the beginning (assign, no group) and keeps what they say. */
    static final class Outputs implements AutoCloseable {
        private final KafkaConsumer<String, String> consumer;
        final Map<String, String> userTotals = new HashMap<>();
        final Map<String, String> regionTotals = new HashMap<>();
        final Map<String, String> userCounts = new HashMap<>();
        final Set<String> joined = new HashSet<>();
        long joinedRecords;
        long records;

        Outputs(String bootstrap) {
            Map<String, Object> c = Clients.consumerConfig(bootstrap);
            c.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, 2000);
            consumer = new KafkaConsumer<>(c);
            List<TopicPartition> tps = new ArrayList<>();
            for (String t : List.of(StreamsApp.USER_TOTALS, StreamsApp.REGION_TOTALS, StreamsApp.USER_COUNTS, StreamsApp.JOINED)) {
                tps.addAll(Clients.partitions(t, StreamsApp.PARTITIONS));
            }
            consumer.assign(tps);
            consumer.seekToBeginning(tps);
        }

        /** Everything available now; per key, the last value read is the latest (one partition per key). */
        void poll() {
            ConsumerRecords<String, String> rs;
            do {
                rs = consumer.poll(Duration.ofMillis(100));
                for (ConsumerRecord<String, String> r : rs) {
                    records++;
                    switch (r.topic()) {
                        case StreamsApp.USER_TOTALS -> userTotals.put(r.key(), r.value());
                        case StreamsApp.REGION_TOTALS -> regionTotals.put(r.key(), r.value());
                        case StreamsApp.USER_COUNTS -> userCounts.put(r.key(), r.value());
                        case StreamsApp.JOINED -> {
                            joinedRecords++;
                            joined.add(r.key() + "|" + r.value());
                        }
                        default -> throw new IllegalStateException(r.topic());
                    }
                }
            } while (!rs.isEmpty());
        }

        boolean reached(StreamsApp.Expected e, boolean exactCounts) {
            return userTotals.equals(e.userTotals()) && regionTotals.equals(e.regionTotals())
                    && joined.equals(e.joined()) && countsOk(e, exactCounts);
        }

        /** Exactly the expected counts, or (after a failure) at least them: re-processing counts twice. */
        boolean countsOk(StreamsApp.Expected e, boolean exact) {
            if (exact) {
                return userCounts.equals(e.userCounts());
            }
            return userCounts.keySet().equals(e.userCounts().keySet()) && e.userCounts().entrySet().stream()
                    .allMatch(x -> Long.parseLong(userCounts.get(x.getKey())) >= Long.parseLong(x.getValue()));
        }

        @Override
        public void close() {
            consumer.close(org.apache.kafka.clients.consumer.CloseOptions.timeout(Duration.ofSeconds(5)));
        }
    }

    /**
     * Waits until the outputs are the expected ones; {@code health} throws an AssertionError when
     * the application failed. On timeout, the difference is in the failure.
     */
    private static void awaitOutput(Outputs o, StreamsApp.Expected e, boolean exactCounts, Runnable health) {
        try {
            Wait.until(OUTPUT_TIMEOUT, "the output of " + e.userCounts().values().stream().mapToLong(Long::parseLong).sum()
                    + " events", () -> {
                        health.run();
                        o.poll();
                        return o.reached(e, exactCounts);
                    });
        } catch (AssertionError err) {
            if (err.getMessage() != null && err.getMessage().startsWith("timed out")) {
                throw new AssertionError(err.getMessage() + "\n" + diff(o, e), err);
            }
            throw err;
        }
    }

    private static void assertOutput(Outputs o, StreamsApp.Expected e, boolean exactCounts) {
        assertEquals(new TreeMap<>(e.userTotals()), new TreeMap<>(o.userTotals), "per-user totals (latest value per key)");
        assertEquals(new TreeMap<>(e.regionTotals()), new TreeMap<>(o.regionTotals), "per-region totals (latest value per key)");
        assertEquals(new TreeSet<>(e.joined()), new TreeSet<>(o.joined), "windowed join results");
        assertTrue(e.joined().size() > 50, "a join with substance: " + e.joined().size());
        if (exactCounts) {
            assertEquals(new TreeMap<>(e.userCounts()), new TreeMap<>(o.userCounts), "plain count() per user");
        } else {
            assertTrue(o.countsOk(e, false), "plain count() per user at least " + new TreeMap<>(e.userCounts())
                    + ": " + new TreeMap<>(o.userCounts));
        }
    }

    private static String diff(Outputs o, StreamsApp.Expected e) {
        StringBuilder sb = new StringBuilder();
        sb.append("user totals differing: ").append(mapDiff(e.userTotals(), o.userTotals)).append('\n');
        sb.append("region totals differing: ").append(mapDiff(e.regionTotals(), o.regionTotals)).append('\n');
        sb.append("user counts: ").append(new TreeMap<>(o.userCounts)).append(" expected ").append(new TreeMap<>(e.userCounts())).append('\n');
        Set<String> missing = new TreeSet<>(e.joined());
        missing.removeAll(o.joined);
        Set<String> extra = new TreeSet<>(o.joined);
        extra.removeAll(e.joined());
        sb.append("join results missing ").append(missing.size()).append(": ").append(tail(missing.toString(), 600))
                .append("; unexpected ").append(extra.size()).append(": ").append(tail(extra.toString(), 600));
        return sb.toString();
    }

    private static String mapDiff(Map<String, String> expected, Map<String, String> actual) {
        Map<String, String> d = new TreeMap<>();
        Set<String> keys = new TreeSet<>(expected.keySet());
        keys.addAll(actual.keySet());
        for (String k : keys) {
            if (!java.util.Objects.equals(expected.get(k), actual.get(k))) {
                d.put(k, actual.get(k) + " (expected " + expected.get(k) + ")");
            }
        }
        return d.toString();
    }

    // ---- what the broker holds ------------------------------------------------------------------

    /**
     * Streams created its internal topics as it asks: key-value store changelogs compacted; the
     * join's window store changelogs delete-only (StreamJoinedStoreFactory overrides the windowed
     * changelogs' compact,delete: a join store keeps duplicate keys, which compaction would lose),
     * kept for the store's retention (2 x window + grace) plus windowstore.changelog.additional.retention.ms
     * (a day); the repartition topic delete-only with infinite retention (Streams purges it itself
     * with DeleteRecords); each with the input's 3 partitions.
     */
    private static void assertInternalTopics(Admin admin, String appId) {
        long windowChangelogRetention = 2 * StreamsApp.JOIN_WINDOW.toMillis() + StreamsApp.JOIN_GRACE.toMillis()
                + Duration.ofDays(1).toMillis();
        Map<String, Map<String, String>> expected = new TreeMap<>();
        for (String store : List.of(StreamsApp.USER_STORE, StreamsApp.COUNT_STORE, StreamsApp.REGION_STORE)) {
            expected.put(appId + "-" + store + "-changelog", Map.of("cleanup.policy", "compact"));
        }
        for (String side : List.of("this", "other")) {
            expected.put(appId + "-" + StreamsApp.JOIN_STORE + "-" + side + "-join-store-changelog",
                    Map.of("cleanup.policy", "delete", "retention.ms", String.valueOf(windowChangelogRetention)));
        }
        expected.put(appId + "-" + StreamsApp.REPARTITION + "-repartition",
                Map.of("cleanup.policy", "delete", "retention.ms", "-1", "segment.bytes", "52428800"));

        Set<String> internal = Clients.get(admin.listTopics().names()).stream()
                .filter(t -> t.startsWith(appId + "-")).collect(Collectors.toCollection(TreeSet::new));
        assertEquals(expected.keySet(), internal, "internal topics of " + appId);
        Map<String, TopicDescription> descriptions = Clients.get(admin.describeTopics(internal).allTopicNames());
        List<ConfigResource> resources = internal.stream()
                .map(t -> new ConfigResource(ConfigResource.Type.TOPIC, t)).toList();
        Map<ConfigResource, Config> configs = Clients.get(admin.describeConfigs(resources).all());
        for (String t : internal) {
            assertEquals(StreamsApp.PARTITIONS, descriptions.get(t).partitions().size(), "partitions of " + t);
            assertFalse(descriptions.get(t).isInternal(), t + " is not a broker-internal topic");
            Config config = configs.get(new ConfigResource(ConfigResource.Type.TOPIC, t));
            for (Map.Entry<String, String> e : expected.get(t).entrySet()) {
                assertEquals(e.getValue(), config.get(e.getKey()).value(), e.getKey() + " of " + t);
            }
        }
    }

    /** The input topics' and the repartition topic's partitions, with the offsets of their ends. */
    private static Map<TopicPartition, Long> inputEnds(Admin admin, String appId) {
        Map<TopicPartition, OffsetSpec> specs = new HashMap<>();
        for (String t : List.of(StreamsApp.EVENTS, StreamsApp.PROMOS, appId + "-" + StreamsApp.REPARTITION + "-repartition")) {
            for (TopicPartition tp : Clients.partitions(t, StreamsApp.PARTITIONS)) {
                specs.put(tp, OffsetSpec.latest());
            }
        }
        return Clients.get(admin.listOffsets(specs).all()).entrySet().stream()
                .collect(Collectors.toMap(Map.Entry::getKey, e -> e.getValue().offset()));
    }

    /** The group has committed every record of its source topics (at-least-once: all processed). */
    private static void awaitCommittedToEnd(Admin admin, String appId, String protocol) {
        Map<TopicPartition, Long> ends = inputEnds(admin, appId);
        Supplier<Map<TopicPartition, OffsetAndMetadata>> committed = () -> protocol.equals("classic")
                ? Clients.get(admin.listConsumerGroupOffsets(appId).partitionsToOffsetAndMetadata())
                : Clients.get(admin.listStreamsGroupOffsets(Map.of(appId, new ListStreamsGroupOffsetsSpec()))
                        .partitionsToOffsetAndMetadata(appId));
        Map<TopicPartition, OffsetAndMetadata> last = new HashMap<>();
        try {
            Wait.until(Duration.ofSeconds(30), "the committed offsets of " + appId + " to reach the end offsets", () -> {
                Map<TopicPartition, OffsetAndMetadata> c = committed.get();
                last.clear();
                last.putAll(c);
                // An empty partition (a repartition partition no region hashes to) has no commit.
                return ends.entrySet().stream().allMatch(e -> c.get(e.getKey()) == null ? e.getValue() == 0
                        : c.get(e.getKey()).offset() == e.getValue());
            });
        } catch (AssertionError e) {
            throw new AssertionError(e.getMessage() + ": end offsets " + new TreeMap<>(ends.entrySet().stream()
                    .collect(Collectors.toMap(x -> x.getKey().toString(), Map.Entry::getValue))) + ", committed "
                    + new TreeMap<>(last.entrySet().stream().collect(Collectors.toMap(x -> x.getKey().toString(),
                    x -> x.getValue().offset()))), e);
        }
    }

    /** A classic group of one member using Streams' assignor, owning every source partition. */
    private void assertClassicGroup(Admin admin, String appId) {
        ConsumerGroupDescription d = Clients.get(admin.describeConsumerGroups(List.of(appId)).describedGroups().get(appId));
        assertEquals(GroupType.CLASSIC, d.type());
        assertEquals(GroupState.STABLE, d.groupState());
        assertEquals("stream", d.partitionAssignor());
        assertEquals(broker.broker().nodeId(), d.coordinator().id());
        assertEquals(1, d.members().size(), "members " + d.members());
        MemberDescription m = d.members().iterator().next();
        Set<TopicPartition> expected = new HashSet<>(inputEnds(admin, appId).keySet());
        assertEquals(expected, m.assignment().topicPartitions(), "the member's assignment");
    }

    /** A streams group (KIP-1071) of one member with every task of both sub-topologies. */
    private void assertStreamsGroup(Admin admin, String appId) {
        StreamsGroupDescription d = Clients.get(admin.describeStreamsGroups(List.of(appId)).describedGroups().get(appId));
        assertEquals(GroupState.STABLE, d.groupState());
        assertEquals(broker.broker().nodeId(), d.coordinator().id());
        assertEquals(2, d.subtopologies().size(), "sub-topologies " + d.subtopologies());
        assertEquals(1, d.members().size(), "members " + d.members());
        StreamsGroupMemberDescription m = d.members().iterator().next();
        Map<String, List<Integer>> tasks = new TreeMap<>();
        for (StreamsGroupMemberAssignment.TaskIds t : m.assignment().activeTasks()) {
            tasks.put(t.subtopologyId(), t.partitions().stream().sorted().toList());
        }
        assertEquals(Map.of("0", List.of(0, 1, 2), "1", List.of(0, 1, 2)), tasks, "active tasks of " + m);
        assertEquals(d.groupEpoch(), d.targetAssignmentEpoch());
    }

    private static String read(Path p) {
        try {
            return Files.readString(p, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static String tail(String s, int n) {
        return s.length() <= n ? s : "..." + s.substring(s.length() - n);
    }
}
