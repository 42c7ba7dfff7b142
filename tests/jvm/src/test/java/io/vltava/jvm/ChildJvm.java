package io.vltava.jvm;

import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * A Java main class run in a child JVM with the test class path, its stdout and stderr in a log
 * file. {@link #kill9()} SIGKILLs it (the most faithful "crashed client"); {@link #close()} kills
 * it by PID if it still runs and deletes the log. A shutdown hook kills children still running
 * when the test JVM exits.
 */
public final class ChildJvm implements AutoCloseable {
    private static final Set<Process> LIVE = ConcurrentHashMap.newKeySet();

    static {
        Runtime.getRuntime().addShutdownHook(new Thread(() -> LIVE.forEach(Process::destroyForcibly),
                "child-jvm-reaper"));
    }

    private final Process process;
    private final Path log;
    private final String name;

    private ChildJvm(String name, Process process, Path log) {
        this.name = name;
        this.process = process;
        this.log = log;
    }

    /** The class path of the test JVM (surefire's real one, not its manifest-only booter jar). */
    public static String testClassPath() {
        String cp = System.getProperty("surefire.test.class.path");
        return cp != null && !cp.isBlank() ? cp : System.getProperty("java.class.path");
    }

    public static ChildJvm start(String name, Class<?> mainClass, List<String> args) {
        String java = Paths.get(System.getProperty("java.home"), "bin", "java").toString();
        List<String> cmd = new ArrayList<>(List.of(java, "-Xmx256m", "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1", "-Xshare:auto", "-cp", testClassPath(), mainClass.getName()));
        cmd.addAll(args);
        try {
            Path log = Files.createTempFile("vltava-child-" + name + "-", ".log");
            Process p = new ProcessBuilder(cmd)
                    .redirectErrorStream(true)
                    .redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile()))
                    .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
                    .start();
            LIVE.add(p);
            return new ChildJvm(name, p, log);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public long pid() {
        return process.pid();
    }

    public boolean isAlive() {
        return process.isAlive();
    }

    /** SIGKILL and wait until the process is gone. */
    public void kill9() {
        ProcessHandle.of(process.pid()).ifPresent(ProcessHandle::destroyForcibly);
        if (!VltavaBroker.waitExit(process, Duration.ofSeconds(10))) {
            throw new IllegalStateException("child " + name + " (pid " + pid() + ") survived SIGKILL");
        }
        LIVE.remove(process);
    }

    public String log() {
        try {
            return Files.readString(log, StandardCharsets.UTF_8);
        } catch (IOException e) {
            return "";
        }
    }

    public String describe() {
        return "child JVM " + name + " (pid " + process.pid() + ", "
                + (process.isAlive() ? "running" : "exit " + process.exitValue()) + ")";
    }

    @Override
    public void close() {
        if (process.isAlive()) {
            ProcessHandle.of(process.pid()).ifPresent(ProcessHandle::destroyForcibly);
            VltavaBroker.waitExit(process, Duration.ofSeconds(10));
        }
        LIVE.remove(process);
        try {
            Files.deleteIfExists(log);
        } catch (IOException ignored) {
            // a temp file
        }
    }
}
