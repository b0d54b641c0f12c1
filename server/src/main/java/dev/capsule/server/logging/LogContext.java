package dev.capsule.server.logging;

import java.util.Optional;
import java.util.function.Supplier;

/**
 * The sandbox the current thread is working on, for the server's log lines: the lifecycle binds it around every
 * transition (under the sandbox's lock), the REST edge around requests about one sandbox, the sampler and the
 * webhook dispatcher around their per-sandbox work. {@link ServerLogging} reads it on the logging thread,
 * which is the calling thread (the handler formats synchronously), so every line written inside carries the id —
 * also lines from code that knows nothing of sandboxes (the driver, the store, envd's client). A scoped value
 * rather than a thread-local: bindings end with their block and are inherited by nothing by accident.
 */
public final class LogContext {

    private static final ScopedValue<String> SANDBOX_ID = ScopedValue.newInstance();

    private LogContext() {}

    /** Runs {@code work} with {@code sandboxId} as the current sandbox. */
    public static <T> T forSandbox(String sandboxId, Supplier<T> work) {
        return ScopedValue.where(SANDBOX_ID, sandboxId).call(work::get);
    }

    public static void forSandbox(String sandboxId, Runnable work) {
        ScopedValue.where(SANDBOX_ID, sandboxId).run(work);
    }

    /** The sandbox bound on this thread, if any. */
    public static Optional<String> sandboxId() {
        return SANDBOX_ID.isBound() ? Optional.of(SANDBOX_ID.get()) : Optional.empty();
    }
}
