package io.vltava.jvm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Test;

/** The harness itself: start, SIGKILL, restart on the same port and data, close cleans up. */
class VltavaBrokerTest {
    @Test
    void kill9AndRestartKeepPortAndAcknowledgedRecords() throws Exception {
        Path dir;
        Path log;
        try (VltavaBroker b = VltavaBroker.start("--default-partitions", "2")) {
            dir = b.dataDir();
            log = b.logFile();
            int port = b.kafkaPort();
            long pid = b.pid();
            try (Admin admin = Clients.admin(b.bootstrap())) {
                Clients.createTopic(admin, "harness", 1);
            }
            try (KafkaProducer<String, String> p = Clients.producer(b.bootstrap())) {
                for (int i = 0; i < 100; i++) {
                    p.send(new ProducerRecord<>("harness", "k" + i, "v" + i)).get();
                }
            }
            b.kill9();
            assertFalse(b.isAlive());
            assertFalse(ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false), "pid " + pid + " gone");

            b.restart();
            assertEquals(port, b.kafkaPort());
            assertNotEquals(pid, b.pid());
            List<ConsumerRecord<String, String>> rs = Clients.readAll(b.bootstrap(),
                    List.of(new TopicPartition("harness", 0)), Duration.ofSeconds(30));
            assertEquals(100, rs.size(), "acknowledged (acks=all) records survive kill -9");
            for (int i = 0; i < 100; i++) {
                assertEquals("v" + i, rs.get(i).value());
                assertEquals(i, rs.get(i).offset());
            }

            assertEquals(0, b.stop(), "SIGTERM exits 0");
            b.restart();
            assertTrue(b.isAlive());
            assertTrue(b.readLog().contains("ready"), b.logTail(2000));
        }
        assertFalse(Files.exists(dir), "data dir removed");
        assertFalse(Files.exists(log), "log removed");
    }
}
