package io.vltava.jvm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentLinkedQueue;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.Metric;
import org.apache.kafka.common.MetricName;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.utils.Utils;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The Java producer with its defaults (idempotence on) and acks=all, for every compression.type:
 * 10,000 keyed records on a 6-partition topic are read back exactly once, in per-key order, each
 * key in the partition Kafka's default partitioner picks (murmur2 of the key bytes).
 */
class ProducerTest {
    private static final int PARTITIONS = 6;
    private static final int KEYS = 200;
    private static final int PER_KEY = 50;
    private static final int RECORDS = KEYS * PER_KEY;

    @RegisterExtension
    static final VltavaBrokerExtension BROKER = new VltavaBrokerExtension();

    @ParameterizedTest(name = "compression.type={0}")
    @ValueSource(strings = {"none", "gzip", "snappy", "lz4", "zstd"})
    void idempotentKeyedProduceIsReadBackExactlyOnceInOrder(String compression) throws Exception {
        String topic = "produce-" + compression;
        try (Admin admin = Clients.admin(BROKER.bootstrap())) {
            Clients.createTopic(admin, topic, PARTITIONS);
        }

        Map<String, Object> cfg = Clients.producerConfig(BROKER.bootstrap());
        cfg.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, compression);
        cfg.put(ProducerConfig.LINGER_MS_CONFIG, 5);
        // The default, set explicitly so that a broker without idempotence support fails the test
        // instead of the client quietly falling back.
        cfg.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true);
        cfg.put(ProducerConfig.CLIENT_ID_CONFIG, "producer-" + compression);
        ConcurrentLinkedQueue<Exception> sendErrors = new ConcurrentLinkedQueue<>();
        Map<String, Integer> ackedPartition = new java.util.concurrent.ConcurrentHashMap<>();
        double compressionRate;
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(cfg)) {
            // Interleave the keys: round s sends sequence number s of every key.
            for (int seq = 0; seq < PER_KEY; seq++) {
                for (int k = 0; k < KEYS; k++) {
                    String key = key(k);
                    producer.send(new ProducerRecord<>(topic, key, value(key, seq)), (md, e) -> {
                        if (e != null) {
                            sendErrors.add(e);
                        } else {
                            Integer prev = ackedPartition.putIfAbsent(key, md.partition());
                            if (prev != null && prev != md.partition()) {
                                sendErrors.add(new IllegalStateException(key + " acked in " + prev + " and " + md.partition()));
                            }
                        }
                    });
                }
            }
            producer.flush();
            compressionRate = metric(producer.metrics(), "compression-rate-avg");
        }
        if (!sendErrors.isEmpty()) {
            fail("send failed: " + sendErrors.peek(), sendErrors.peek());
        }
        if (!compression.equals("none")) {
            assertTrue(compressionRate > 0 && compressionRate < 0.9,
                    "batches were really compressed with " + compression + " (compression-rate-avg " + compressionRate + ")");
        }

        List<TopicPartition> tps = Clients.partitions(topic, PARTITIONS);
        List<ConsumerRecord<String, String>> records = Clients.readAll(BROKER.bootstrap(), tps, Duration.ofSeconds(60));
        assertEquals(RECORDS, records.size(), "records in the log (end offsets sum)");

        Set<String> seen = new HashSet<>();
        Map<String, Integer> nextSeq = new HashMap<>();
        Map<String, Integer> partitionOf = new HashMap<>();
        Map<TopicPartition, Long> lastOffset = new HashMap<>();
        for (ConsumerRecord<String, String> r : records) {
            assertTrue(seen.add(r.value()), "duplicate record " + r.value() + " at " + r.partition() + "/" + r.offset());
            String key = r.key();
            int expectedPartition = Utils.toPositive(Utils.murmur2(key.getBytes(StandardCharsets.UTF_8))) % PARTITIONS;
            assertEquals(expectedPartition, r.partition(), "partition of key " + key + " (default partitioner)");
            Integer p = partitionOf.putIfAbsent(key, r.partition());
            assertTrue(p == null || p == r.partition(), "key " + key + " in partitions " + p + " and " + r.partition());
            int seq = nextSeq.getOrDefault(key, 0);
            assertEquals(value(key, seq), r.value(), "per-key order of " + key);
            nextSeq.put(key, seq + 1);
            TopicPartition tp = new TopicPartition(r.topic(), r.partition());
            Long last = lastOffset.put(tp, r.offset());
            assertEquals(last == null ? 0L : last + 1, r.offset(), "offsets of " + tp + " are dense from 0");
        }
        assertEquals(RECORDS, seen.size());
        assertEquals(KEYS, nextSeq.size());
        nextSeq.forEach((k, n) -> assertEquals(PER_KEY, n, "records of key " + k));
        ackedPartition.forEach((k, p) -> assertEquals(partitionOf.get(k), p, "acked partition of " + k));
        // 200 keys hash into every one of the 6 partitions.
        assertEquals(PARTITIONS, new HashSet<>(partitionOf.values()).size());
        // Offsets are dense from 0, so the end offset of each partition is its record count.
        Map<TopicPartition, Integer> perPartition = new HashMap<>();
        records.forEach(r -> perPartition.merge(new TopicPartition(r.topic(), r.partition()), 1, Integer::sum));
        for (TopicPartition tp : tps) {
            assertEquals((long) perPartition.get(tp) - 1, lastOffset.get(tp), "last offset of " + tp);
        }
    }

    private static String key(int k) {
        return String.format("key-%03d", k);
    }

    private static String value(String key, int seq) {
        return key + ":seq-" + String.format("%05d", seq);
    }

    private static double metric(Map<MetricName, ? extends Metric> metrics, String name) {
        return metrics.entrySet().stream()
                .filter(e -> e.getKey().name().equals(name) && e.getKey().group().equals("producer-metrics"))
                .map(e -> ((Number) e.getValue().metricValue()).doubleValue())
                .findFirst().orElseThrow(() -> new AssertionError("no producer metric " + name));
    }
}
