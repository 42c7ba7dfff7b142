package io.vltava.jvm;

import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStreamWriter;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;

import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;

/**
 * A {@link GroupMember} in its own JVM, started by ConsumerGroupTest and SIGKILLed by it. Writes
 * what it does to a file, flushed to the OS before each commit (so it survives SIGKILL):
 *
 * <pre>
 * A p,p,...            assignment
 * R batch p offset v   record processed
 * C batch p:o,p:o      commitSync of the batch returned (committed next offsets)
 * F batch message      commitSync of the batch failed
 * E message            the poll loop failed
 * </pre>
 *
 * Args: bootstrap topic group protocol clientId sessionTimeoutMs outFile. Exits by itself after
 * five minutes, in case nobody kills it.
 */
public final class GroupMemberMain {
    public static void main(String[] args) throws IOException {
        if (args.length != 7) {
            System.err.println("usage: GroupMemberMain bootstrap topic group protocol clientId sessionTimeoutMs outFile");
            System.exit(2);
        }
        PrintWriter out = new PrintWriter(new OutputStreamWriter(new FileOutputStream(args[6], true), StandardCharsets.UTF_8));
        GroupMember.Sink sink = new GroupMember.Sink() {
            @Override
            public synchronized void assigned(Collection<TopicPartition> assignment) {
                out.println("A " + assignment.stream().map(tp -> String.valueOf(tp.partition())).sorted()
                        .collect(Collectors.joining(",")));
                out.flush();
            }

            @Override
            public synchronized void records(long batch, List<ConsumerRecord<String, String>> records) {
                for (ConsumerRecord<String, String> r : records) {
                    out.println("R " + batch + " " + r.partition() + " " + r.offset() + " " + r.value());
                }
                out.flush();
            }

            @Override
            public synchronized void committed(long batch, Map<TopicPartition, OffsetAndMetadata> offsets) {
                out.println("C " + batch + " " + offsets.entrySet().stream()
                        .map(e -> e.getKey().partition() + ":" + e.getValue().offset()).collect(Collectors.joining(",")));
                out.flush();
            }

            @Override
            public synchronized void commitFailed(long batch, Exception e) {
                out.println("F " + batch + " " + e);
                out.flush();
            }

            @Override
            public synchronized void error(Exception e) {
                out.println("E " + e);
                out.flush();
                e.printStackTrace();
            }
        };
        GroupMember member = new GroupMember(args[0], args[1], args[2], args[3], args[4], Integer.parseInt(args[5]), sink);
        Thread watchdog = new Thread(() -> {
            try {
                Thread.sleep(300_000);
            } catch (InterruptedException ignored) {
                return;
            }
            System.err.println("GroupMemberMain: not killed within five minutes, exiting");
            Runtime.getRuntime().halt(3);
        }, "watchdog");
        watchdog.setDaemon(true);
        watchdog.start();
        member.run();
    }
}
