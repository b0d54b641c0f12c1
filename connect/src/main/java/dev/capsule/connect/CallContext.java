package dev.capsule.connect;

import java.time.Instant;
import java.util.Optional;
import java.util.function.Consumer;

/** What a handler knows about the call it serves: request headers, deadline, cancellation, response headers. */
public interface CallContext {

    /** The procedure path, e.g. {@code /process.Process/Start}. */
    String procedure();

    /** A request header by case-insensitive name, or null. */
    String header(String name);

    /** The remote peer's address, as {@code host:port}. */
    String remoteAddress();

    /** When the call must be finished, from the client's {@code Connect-Timeout-Ms}; empty if it set none. */
    Optional<Instant> deadline();

    /** True once the client went away or the deadline passed. */
    boolean isCancelled();

    /**
     * Runs the listener once, on another thread, when the client goes away ({@link Code#CANCELED}) or the deadline
     * passes ({@link Code#DEADLINE_EXCEEDED}); at once if that already happened.
     */
    void onCancel(Consumer<ConnectException> listener);

    /** Adds a response header; has effect only before the first response byte is written. */
    void setResponseHeader(String name, String value);
}
