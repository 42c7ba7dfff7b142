package io.vltava.jvm;

import java.time.Duration;
import java.util.Optional;
import java.util.function.BooleanSupplier;
import java.util.function.Supplier;

/** Polls a condition until it holds or a deadline passes: no fixed sleeps in the tests. */
public final class Wait {
    private static final long INTERVAL_MS = 50;

    private Wait() {
    }

    /** Waits until {@code condition} is true; fails with {@code what} after {@code timeout}. */
    public static void until(Duration timeout, String what, BooleanSupplier condition) {
        forValue(timeout, what, () -> condition.getAsBoolean() ? Optional.of(Boolean.TRUE) : Optional.empty());
    }

    /**
     * Waits until {@code probe} returns a present value and returns it; exceptions thrown by the
     * probe count as "not yet" (the last one is attached to the failure).
     */
    public static <T> T forValue(Duration timeout, String what, Supplier<Optional<T>> probe) {
        long deadline = System.nanoTime() + timeout.toNanos();
        RuntimeException last = null;
        while (true) {
            try {
                Optional<T> v = probe.get();
                if (v.isPresent()) {
                    return v.get();
                }
            } catch (RuntimeException e) {
                last = e;
            }
            if (System.nanoTime() > deadline) {
                AssertionError err = new AssertionError("timed out after " + timeout.toMillis()
                        + " ms waiting for " + what);
                if (last != null) {
                    err.initCause(last);
                }
                throw err;
            }
            try {
                Thread.sleep(INTERVAL_MS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new AssertionError("interrupted waiting for " + what, e);
            }
        }
    }
}
