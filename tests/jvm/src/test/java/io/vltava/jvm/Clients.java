package io.vltava.jvm;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/** Client construction and small blocking helpers shared by the tests. */
public final class Clients {
    /** Upper bound for one admin/client call in a test. */
    public static final Duration CALL_TIMEOUT = Duration.ofSeconds(30);

    private Clients() {
    }

    public static Admin admin(String bootstrap) {
        Map<String, Object> c = new HashMap<>();
        c.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        c.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 15_000);
        c.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30_000);
        return Admin.create(c);
    }

    public static Map<String, Object> producerConfig(String bootstrap) {
        Map<String, Object> c = new HashMap<>();
        c.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        c.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        c.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        c.put(ProducerConfig.ACKS_CONFIG, "all");
        return c;
    }

    public static KafkaProducer<String, String> producer(String bootstrap) {
        return new KafkaProducer<>(producerConfig(bootstrap));
    }

    public static Map<String, Object> consumerConfig(String bootstrap) {
        Map<String, Object> c = new HashMap<>();
        c.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        c.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        c.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        c.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        c.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        return c;
    }

    public static <T> T get(KafkaFuture<T> f) {
        try {
            return f.get(CALL_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted", e);
        } catch (ExecutionException e) {
            Throwable c = e.getCause();
            if (c instanceof RuntimeException r) {
                throw r;
            }
            throw new AssertionError(c);
        } catch (TimeoutException e) {
            throw new AssertionError("admin call did not complete within " + CALL_TIMEOUT, e);
        }
    }

    /** The cause of the failure of {@code f}; fails the test when it succeeds. */
    public static Throwable failure(KafkaFuture<?> f) {
        try {
            Object v = f.get(CALL_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
            throw new AssertionError("expected a failure, got " + v);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted", e);
        } catch (ExecutionException e) {
            return e.getCause();
        } catch (TimeoutException e) {
            throw new AssertionError("admin call did not complete within " + CALL_TIMEOUT, e);
        }
    }

    public static void createTopic(Admin admin, String name, int partitions) {
        createTopic(admin, name, partitions, Map.of());
    }

    /**
     * Creates a topic and waits until every partition has a leader, as Kafka's own test utilities
     * do: on Kafka, CreateTopics returns once the controller has committed the topic, before the
     * broker has it (an idempotent producer's first batch would then get NOT_LEADER_OR_FOLLOWER).
     */
    public static void createTopic(Admin admin, String name, int partitions, Map<String, String> configs) {
        get(admin.createTopics(List.of(new NewTopic(name, partitions, (short) 1).configs(configs))).all());
        Wait.until(Duration.ofSeconds(15), "leaders of the " + partitions + " partitions of " + name, () -> {
            try {
                var d = get(admin.describeTopics(List.of(name)).allTopicNames()).get(name);
                return d.partitions().size() == partitions
                        && d.partitions().stream().allMatch(p -> p.leader() != null && !p.leader().isEmpty());
            } catch (org.apache.kafka.common.errors.UnknownTopicOrPartitionException e) {
                return false;
            }
        });
    }

    public static List<TopicPartition> partitions(String topic, int n) {
        List<TopicPartition> l = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            l.add(new TopicPartition(topic, i));
        }
        return l;
    }

    /**
     * Reads every record of {@code partitions} from the beginning up to their end offsets at the
     * time of the call (assign, no group), in partition-then-offset order per partition.
     */
    public static List<ConsumerRecord<String, String>> readAll(String bootstrap, Collection<TopicPartition> partitions,
                                                                Duration timeout) {
        Map<String, Object> c = consumerConfig(bootstrap);
        c.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, 2000);
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(c)) {
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            Map<TopicPartition, Long> end = consumer.endOffsets(partitions, CALL_TIMEOUT);
            List<ConsumerRecord<String, String>> out = new ArrayList<>();
            long deadline = System.nanoTime() + timeout.toNanos();
            while (partitions.stream().anyMatch(tp -> consumer.position(tp, CALL_TIMEOUT) < end.get(tp))) {
                if (System.nanoTime() > deadline) {
                    throw new AssertionError("read " + out.size() + " records in " + timeout + "; positions "
                            + partitions.stream().collect(Collectors.toMap(tp -> tp, consumer::position))
                            + ", end offsets " + end);
                }
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(200))) {
                    out.add(r);
                }
            }
            return out;
        }
    }
}
