package io.vltava.jvm;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * One {@code vltava serve} process for a test: free loopback ports (Kafka, HTTP API, Schema
 * Registry), its own temporary data directory, stdout and stderr appended to a log file.
 *
 * <p>{@link #start()} waits (polling, with a deadline) until the Kafka port accepts connections.
 * {@link #kill9()} SIGKILLs the process, {@link #stop()} SIGTERMs it, {@link #restart()} starts it
 * again on the same ports and data directory. {@link #close()} kills it by PID and deletes the
 * data directory and the log. A JVM shutdown hook kills brokers still running when the test JVM
 * exits, so an aborted run leaves no process behind.
 *
 * <p>The binary is {@code $VLTAVA_BIN}, or {@code ../../target/release/vltava} relative to the
 * working directory (tests/jvm) when the variable is unset or empty.
 */
public final class VltavaBroker implements AutoCloseable {
    private static final Duration START_TIMEOUT = Duration.ofSeconds(30);
    private static final Duration STOP_TIMEOUT = Duration.ofSeconds(20);
    private static final Set<VltavaBroker> LIVE = ConcurrentHashMap.newKeySet();

    static {
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            for (VltavaBroker b : LIVE) {
                Process p = b.process;
                if (p != null) {
                    p.destroyForcibly();
                }
            }
        }, "vltava-broker-reaper"));
    }

    private final List<String> extraArgs;
    private final boolean http;
    private final boolean registry;
    private final Path dataDir;
    private final Path logFile;
    private int kafkaPort;
    private int httpPort;
    private int registryPort;
    private boolean startedOnce;
    private volatile Process process;

    /** A broker that is not started yet; {@code extraArgs} are appended to {@code vltava serve}. */
    public VltavaBroker(String... extraArgs) {
        this(List.of(extraArgs));
    }

    public VltavaBroker(List<String> extraArgs) {
        this.extraArgs = List.copyOf(extraArgs);
        this.http = !this.extraArgs.contains("--no-http");
        this.registry = !this.extraArgs.contains("--no-registry");
        try {
            this.dataDir = Files.createTempDirectory("vltava-jvm-test-");
            this.logFile = Paths.get(dataDir + ".log");
            Files.createFile(logFile);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        pickPorts();
    }

    /** Creates and starts a broker. */
    public static VltavaBroker start(String... extraArgs) {
        VltavaBroker b = new VltavaBroker(extraArgs);
        try {
            return b.start();
        } catch (RuntimeException | Error e) {
            b.close();
            throw e;
        }
    }

    /** The binary under test: $VLTAVA_BIN, else ../../target/release/vltava. */
    public static Path binary() {
        String env = System.getenv("VLTAVA_BIN");
        // Maven leaves an undefined ${env.VLTAVA_BIN} as it is: that counts as unset too.
        boolean unset = env == null || env.isBlank() || env.startsWith("${");
        Path p = unset ? Paths.get("..", "..", "target", "release", "vltava")
                : Paths.get(env);
        return p.toAbsolutePath().normalize();
    }

    /**
     * {@code n} distinct free loopback ports. All are held open while they are picked, so the
     * kernel cannot hand out the same one twice.
     */
    public static int[] freePorts(int n) {
        List<ServerSocket> sockets = new ArrayList<>();
        try {
            int[] ports = new int[n];
            for (int i = 0; i < n; i++) {
                ServerSocket s = new ServerSocket();
                s.setReuseAddress(false);
                s.bind(new InetSocketAddress("127.0.0.1", 0));
                sockets.add(s);
                ports[i] = s.getLocalPort();
            }
            return ports;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } finally {
            for (ServerSocket s : sockets) {
                try {
                    s.close();
                } catch (IOException ignored) {
                    // closing a listening socket that was never used
                }
            }
        }
    }

    private void pickPorts() {
        int[] p = freePorts(3);
        kafkaPort = p[0];
        httpPort = p[1];
        registryPort = p[2];
    }

    public List<String> command() {
        List<String> cmd = new ArrayList<>(List.of(binary().toString(), "serve",
                "--listen", "127.0.0.1:" + kafkaPort, "--data-dir", dataDir.toString()));
        if (http) {
            cmd.addAll(List.of("--http", "127.0.0.1:" + httpPort));
        }
        if (registry) {
            cmd.addAll(List.of("--registry", "127.0.0.1:" + registryPort));
        }
        cmd.addAll(extraArgs);
        return cmd;
    }

    /**
     * Starts the process and waits until the Kafka port accepts connections. On the first start a
     * port taken by another process between its pick and the broker's bind is picked again (up to
     * three attempts); a restart keeps the ports.
     */
    public synchronized VltavaBroker start() {
        if (isAlive()) {
            throw new IllegalStateException("broker already running (pid " + process.pid() + ")");
        }
        Path bin = binary();
        if (!Files.isExecutable(bin)) {
            throw new IllegalStateException("vltava binary not found or not executable: " + bin
                    + " (set VLTAVA_BIN or build target/release/vltava)");
        }
        int attempts = startedOnce ? 1 : 3;
        for (int attempt = 1; ; attempt++) {
            long logStart = logSize();
            appendLog("--- start: " + String.join(" ", command()) + "\n");
            ProcessBuilder pb = new ProcessBuilder(command())
                    .redirectErrorStream(true)
                    .redirectOutput(ProcessBuilder.Redirect.appendTo(logFile.toFile()))
                    .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")));
            pb.environment().putIfAbsent("NO_COLOR", "1");
            try {
                process = pb.start();
            } catch (IOException e) {
                throw new UncheckedIOException("cannot start " + bin, e);
            }
            LIVE.add(this);
            long deadline = System.nanoTime() + START_TIMEOUT.toNanos();
            while (process.isAlive() && !portOpen(kafkaPort)) {
                if (System.nanoTime() > deadline) {
                    destroyNow();
                    throw new IllegalStateException("broker did not open 127.0.0.1:" + kafkaPort
                            + " within " + START_TIMEOUT.toSeconds() + " s; log:\n" + logTail(8000));
                }
                pause(20);
            }
            if (process.isAlive()) {
                startedOnce = true;
                return this;
            }
            LIVE.remove(this);
            String log = readLog();
            String since = log.substring((int) Math.min(logStart, log.length()));
            if (attempt < attempts && since.contains("Address already in use")) {
                pickPorts();
                continue;
            }
            throw new IllegalStateException("broker exited with " + process.exitValue()
                    + " before its port opened; log:\n" + logTail(8000));
        }
    }

    /** SIGKILL, then waits for the process to be gone. */
    public synchronized void kill9() {
        if (process == null) {
            return;
        }
        ProcessHandle h = process.toHandle();
        h.destroyForcibly();
        waitExit(process, Duration.ofSeconds(10));
        LIVE.remove(this);
    }

    /** SIGTERM (a clean shutdown); returns the exit code. SIGKILLs when it takes too long. */
    public synchronized int stop() {
        if (process == null) {
            return -1;
        }
        if (process.isAlive()) {
            process.destroy();
            if (!waitExit(process, STOP_TIMEOUT)) {
                appendLog("--- did not stop within " + STOP_TIMEOUT.toSeconds() + " s of SIGTERM: SIGKILL\n");
                kill9();
            }
        }
        LIVE.remove(this);
        return process.exitValue();
    }

    /** Stops the broker if it runs (SIGTERM) and starts it again on the same ports and data dir. */
    public synchronized VltavaBroker restart() {
        if (isAlive()) {
            stop();
        }
        return start();
    }

    public synchronized boolean isAlive() {
        return process != null && process.isAlive();
    }

    public synchronized long pid() {
        if (process == null) {
            throw new IllegalStateException("not started");
        }
        return process.pid();
    }

    public String bootstrap() {
        return "127.0.0.1:" + kafkaPort;
    }

    public int kafkaPort() {
        return kafkaPort;
    }

    public int httpPort() {
        return httpPort;
    }

    public int registryPort() {
        return registryPort;
    }

    public String httpUrl() {
        return "http://127.0.0.1:" + httpPort;
    }

    public String registryUrl() {
        return "http://127.0.0.1:" + registryPort;
    }

    /** The node id the broker was started with (--node-id, default 1). */
    public int nodeId() {
        int i = extraArgs.indexOf("--node-id");
        return i >= 0 && i + 1 < extraArgs.size() ? Integer.parseInt(extraArgs.get(i + 1)) : 1;
    }

    public Path dataDir() {
        return dataDir;
    }

    public Path logFile() {
        return logFile;
    }

    /** Client properties with bootstrap.servers set, to be extended by the caller. */
    public Map<String, Object> clientConfig() {
        Map<String, Object> m = new HashMap<>();
        m.put("bootstrap.servers", bootstrap());
        return m;
    }

    /** Everything the broker has logged so far (all starts). */
    public String readLog() {
        try {
            return Files.readString(logFile, StandardCharsets.UTF_8);
        } catch (IOException e) {
            return "";
        }
    }

    /** The last {@code maxChars} characters of the log. */
    public String logTail(int maxChars) {
        String log = readLog();
        return log.length() <= maxChars ? log : "..." + log.substring(log.length() - maxChars);
    }

    /** Kills the process by PID (when running), deletes the data directory and the log file. */
    @Override
    public synchronized void close() {
        destroyNow();
        deleteRecursively(dataDir);
        try {
            Files.deleteIfExists(logFile);
        } catch (IOException ignored) {
            // a temp file; nothing else to do
        }
    }

    private synchronized void destroyNow() {
        if (process != null && process.isAlive()) {
            ProcessHandle.of(process.pid()).ifPresent(ProcessHandle::destroyForcibly);
            waitExit(process, Duration.ofSeconds(10));
        }
        LIVE.remove(this);
    }

    private long logSize() {
        try {
            return Files.size(logFile);
        } catch (IOException e) {
            return 0;
        }
    }

    private void appendLog(String line) {
        try {
            Files.writeString(logFile, line, StandardCharsets.UTF_8,
                    java.nio.file.StandardOpenOption.APPEND);
        } catch (IOException ignored) {
            // the log is a diagnostic aid
        }
    }

    static boolean waitExit(Process p, Duration timeout) {
        try {
            return p.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return !p.isAlive();
        }
    }

    static boolean portOpen(int port) {
        try (Socket s = new Socket()) {
            s.connect(new InetSocketAddress("127.0.0.1", port), 200);
            return true;
        } catch (IOException e) {
            return false;
        }
    }

    private static void pause(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted", e);
        }
    }

    static void deleteRecursively(Path dir) {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> walk = Files.walk(dir)) {
            List<Path> paths = new ArrayList<>(walk.toList());
            paths.sort(Comparator.reverseOrder());
            for (Path p : paths) {
                try {
                    Files.deleteIfExists(p);
                } catch (IOException ignored) {
                    // best effort, the directory is under the temp dir
                }
            }
        } catch (IOException | UncheckedIOException ignored) {
            // best effort
        }
    }

    @Override
    public String toString() {
        return "vltava@" + bootstrap() + " (data " + dataDir + ")";
    }

    /** Unmodifiable view of the extra serve args. */
    public List<String> extraArgs() {
        return Collections.unmodifiableList(extraArgs);
    }
}
