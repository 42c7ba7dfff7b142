package io.vltava.jvm;

import java.time.Duration;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;

/**
 * A consumer-group member that processes a poll's records, then commits exactly their offsets
 * with commitSync, reporting every step to a {@link Sink}. Runs in the test JVM (a survivor) or in
 * a child JVM through {@link GroupMemberMain} (the member that gets killed).
 */
public final class GroupMember implements Runnable, AutoCloseable {
    /** What the member saw and did, in order. Batches are numbered from 1 per member. */
    public interface Sink {
        void assigned(Collection<TopicPartition> assignment);

        void records(long batch, List<ConsumerRecord<String, String>> records);

        void committed(long batch, Map<TopicPartition, OffsetAndMetadata> offsets);

        void commitFailed(long batch, Exception e);

        void error(Exception e);
    }

    private final KafkaConsumer<String, String> consumer;
    private final String topic;
    private final Sink sink;
    private volatile boolean running = true;

    /**
     * @param protocol "classic" or "consumer" (KIP-848)
     * @param sessionTimeoutMs classic only (the consumer protocol's session timeout is the broker's)
     */
    public GroupMember(String bootstrap, String topic, String group, String protocol, String clientId,
                       int sessionTimeoutMs, Sink sink) {
        Map<String, Object> c = Clients.consumerConfig(bootstrap);
        c.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        c.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, protocol);
        c.put(ConsumerConfig.CLIENT_ID_CONFIG, clientId);
        c.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, 50);
        if (protocol.equals("classic")) {
            c.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, sessionTimeoutMs);
            c.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, Math.max(100, sessionTimeoutMs / 6));
        }
        this.consumer = new KafkaConsumer<>(c);
        this.topic = topic;
        this.sink = sink;
    }

    @Override
    public void run() {
        try {
            consumer.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                @Override
                public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
                }

                @Override
                public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
                    sink.assigned(consumer.assignment());
                }

                @Override
                public void onPartitionsLost(Collection<TopicPartition> partitions) {
                }
            });
            long batch = 0;
            while (running) {
                ConsumerRecords<String, String> rs = consumer.poll(Duration.ofMillis(100));
                if (rs.isEmpty()) {
                    continue;
                }
                batch++;
                Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
                List<ConsumerRecord<String, String>> list = new java.util.ArrayList<>(rs.count());
                for (ConsumerRecord<String, String> r : rs) {
                    list.add(r);
                    offsets.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
                }
                sink.records(batch, list); // "processing"
                try {
                    consumer.commitSync(offsets, Duration.ofSeconds(15));
                    sink.committed(batch, offsets);
                } catch (WakeupException e) {
                    throw e;
                } catch (Exception e) {
                    sink.commitFailed(batch, e);
                }
            }
        } catch (WakeupException e) {
            if (running) {
                sink.error(e);
            }
        } catch (Exception e) {
            sink.error(e);
        } finally {
            consumer.close(org.apache.kafka.clients.consumer.CloseOptions.timeout(Duration.ofSeconds(10)));
        }
    }

    /** Stops the poll loop (from another thread); the loop's thread closes the consumer. */
    @Override
    public void close() {
        running = false;
        consumer.wakeup();
    }
}
