package io.vltava.jvm;

import java.util.List;

import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.BeforeEachCallback;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.TestWatcher;

/**
 * A {@link VltavaBroker} for a JUnit 5 test class or test:
 *
 * <pre>
 * &#64;RegisterExtension
 * static final VltavaBrokerExtension BROKER = new VltavaBrokerExtension("--default-partitions", "6");
 * </pre>
 *
 * A static field gives one broker for the class (started before all tests, closed after all); an
 * instance field gives one per test. When a test fails, the tail of the broker's log is printed.
 */
public final class VltavaBrokerExtension
        implements BeforeAllCallback, AfterAllCallback, BeforeEachCallback, AfterEachCallback, TestWatcher {
    private static final int LOG_TAIL_CHARS = 12_000;

    private final List<String> args;
    private VltavaBroker broker;
    private boolean perClass;

    public VltavaBrokerExtension(String... args) {
        this.args = List.of(args);
    }

    public VltavaBroker broker() {
        if (broker == null) {
            throw new IllegalStateException("broker not started (register the extension with @RegisterExtension)");
        }
        return broker;
    }

    public String bootstrap() {
        return broker().bootstrap();
    }

    @Override
    public void beforeAll(ExtensionContext context) {
        perClass = true;
        broker = VltavaBroker.start(args.toArray(String[]::new));
    }

    @Override
    public void afterAll(ExtensionContext context) {
        closeBroker();
    }

    @Override
    public void beforeEach(ExtensionContext context) {
        if (!perClass) {
            broker = VltavaBroker.start(args.toArray(String[]::new));
            logStart = 0;
        } else {
            logStart = broker.readLog().length();
        }
    }

    @Override
    public void afterEach(ExtensionContext context) {
        if (!perClass) {
            closeBroker();
        }
    }

    @Override
    public void testFailed(ExtensionContext context, Throwable cause) {
        // Per-class broker: what it logged during this test. Per-test broker: afterEach has closed
        // it already, so the copy taken then.
        String tail = broker != null ? sinceTestStart() : lastClosedLog;
        System.err.println("--- vltava log (" + context.getRequiredTestClass().getSimpleName() + " "
                + context.getDisplayName() + ") ---\n" + tail + "\n--- end of vltava log ---");
    }

    private String lastClosedLog = "";
    private int logStart;

    private String sinceTestStart() {
        String log = broker.readLog();
        String since = log.substring(Math.min(logStart, log.length()));
        return since.length() <= LOG_TAIL_CHARS ? since : "..." + since.substring(since.length() - LOG_TAIL_CHARS);
    }

    private void closeBroker() {
        if (broker != null) {
            lastClosedLog = sinceTestStart();
            broker.close();
            broker = null;
        }
    }
}
