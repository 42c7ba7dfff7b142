package io.vltava.jvm;

import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStreamWriter;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Paths;

import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.processor.StateRestoreListener;

/**
 * {@link StreamsApp} in its own JVM, started by StreamsTest and SIGKILLed by it (a crashed
 * application instance). Reports to a file, flushed after every line (so it survives SIGKILL):
 *
 * <pre>
 * S old new                    KafkaStreams state transition
 * R store topic-partition n    a store partition restored n records from its changelog
 * E exception                  an uncaught exception in a stream thread (the thread is replaced)
 * </pre>
 *
 * Args: bootstrap applicationId stateDir groupProtocol outFile. Exits by itself after five
 * minutes, in case nobody kills it.
 */
public final class StreamsAppMain {
    public static void main(String[] args) throws IOException {
        if (args.length != 5) {
            System.err.println("usage: StreamsAppMain bootstrap applicationId stateDir groupProtocol outFile");
            System.exit(2);
        }
        PrintWriter out = new PrintWriter(new OutputStreamWriter(new FileOutputStream(args[4], true), StandardCharsets.UTF_8));
        KafkaStreams streams = new KafkaStreams(StreamsApp.topology(),
                StreamsApp.config(args[0], args[1], Paths.get(args[2]), args[3]));
        streams.setStateListener((newState, oldState) -> line(out, "S " + oldState + " " + newState));
        streams.setUncaughtExceptionHandler(e -> {
            line(out, "E " + String.valueOf(e).replace('\n', ' '));
            e.printStackTrace();
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.REPLACE_THREAD;
        });
        streams.setGlobalStateRestoreListener(new StateRestoreListener() {
            @Override
            public void onRestoreStart(TopicPartition tp, String store, long start, long end) {
            }

            @Override
            public void onBatchRestored(TopicPartition tp, String store, long batchEnd, long n) {
            }

            @Override
            public void onRestoreEnd(TopicPartition tp, String store, long total) {
                line(out, "R " + store + " " + tp + " " + total);
            }
        });
        Thread watchdog = new Thread(() -> {
            try {
                Thread.sleep(300_000);
            } catch (InterruptedException ignored) {
                return;
            }
            System.err.println("StreamsAppMain: not killed within five minutes, exiting");
            Runtime.getRuntime().halt(3);
        }, "watchdog");
        watchdog.setDaemon(true);
        watchdog.start();
        streams.start();
    }

    private static synchronized void line(PrintWriter out, String s) {
        out.println(s);
        out.flush();
    }
}
