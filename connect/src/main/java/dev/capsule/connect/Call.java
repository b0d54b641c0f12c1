package dev.capsule.connect;

import io.vertx.core.Future;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.http.HttpServerRequest;
import io.vertx.core.http.HttpServerResponse;

import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Consumer;

/**
 * One call in flight: its request headers, deadline and cancellation, and the one place that writes its response, so
 * that a handler, a deadline and a vanished client never write over each other.
 */
final class Call implements CallContext {
    private static final long MAX_TIMEOUT_MS = 9_999_999_999L;

    final HttpServerRequest request;
    final HttpServerResponse response;
    final Codec codec;
    final int maxMessageBytes;
    /** The client accepts gzip-compressed response messages. */
    final boolean gzipResponses;
    /** The client compressed its request messages with gzip. */
    final boolean gzipRequests;

    private final Instant deadline;
    private final Map<String, String> responseHeaders = new LinkedHashMap<>();
    private final List<Consumer<ConnectException>> cancelListeners = new ArrayList<>();
    private final ReentrantLock writeLock = new ReentrantLock();
    private ScheduledFuture<?> deadlineTimer;
    private volatile ConnectException cancellation;
    private boolean headWritten;
    private boolean finished;

    Call(HttpServerRequest request, Codec codec, ScheduledExecutorService timers, int maxMessageBytes) {
        this.request = request;
        this.response = request.response();
        this.codec = codec;
        this.maxMessageBytes = maxMessageBytes;
        String version = request.getHeader("Connect-Protocol-Version");
        if (version != null && !version.equals("1")) {
            throw new ConnectException(Code.INVALID_ARGUMENT,
                    "Connect-Protocol-Version must be 1, got '" + version + "'");
        }
        this.deadline = parseDeadline(request.getHeader("Connect-Timeout-Ms"));
        boolean unary = codec != null && isUnaryContentType(request.getHeader("Content-Type"));
        String requestEncoding = request.getHeader(unary ? "Content-Encoding" : "Connect-Content-Encoding");
        if (requestEncoding != null && !requestEncoding.equalsIgnoreCase("gzip")
                && !requestEncoding.equalsIgnoreCase("identity")) {
            throw new ConnectException(Code.UNIMPLEMENTED, "unsupported request compression '" + requestEncoding
                    + "': this server accepts gzip or identity");
        }
        this.gzipRequests = "gzip".equalsIgnoreCase(requestEncoding);
        this.gzipResponses = Gzip.accepts(request.getHeader(unary ? "Accept-Encoding" : "Connect-Accept-Encoding"));
        response.closeHandler(v -> cancel(new ConnectException(Code.CANCELED, "the client closed the connection")));
        if (deadline != null) {
            long delay = Math.max(0, deadline.toEpochMilli() - System.currentTimeMillis());
            deadlineTimer = timers.schedule(() -> cancel(new ConnectException(Code.DEADLINE_EXCEEDED,
                    "the call's deadline (Connect-Timeout-Ms) passed")), delay, TimeUnit.MILLISECONDS);
        }
    }

    private static boolean isUnaryContentType(String contentType) {
        return contentType != null && !contentType.toLowerCase(java.util.Locale.ROOT).startsWith("application/connect+");
    }

    private static Instant parseDeadline(String header) {
        if (header == null || header.isEmpty()) {
            return null;
        }
        if (header.length() > 10 || !header.chars().allMatch(Character::isDigit)) {
            throw new ConnectException(Code.INVALID_ARGUMENT,
                    "invalid Connect-Timeout-Ms '" + header + "': send a positive integer of at most 10 digits");
        }
        long ms = Math.min(Long.parseLong(header), MAX_TIMEOUT_MS);
        return Instant.now().plusMillis(ms);
    }

    @Override
    public String procedure() {
        return request.path();
    }

    @Override
    public String header(String name) {
        return request.getHeader(name);
    }

    @Override
    public String remoteAddress() {
        return String.valueOf(request.remoteAddress());
    }

    @Override
    public Optional<Instant> deadline() {
        return Optional.ofNullable(deadline);
    }

    @Override
    public boolean isCancelled() {
        return cancellation != null;
    }

    /** The reason the call was cancelled, or null. */
    ConnectException cancellation() {
        return cancellation;
    }

    @Override
    public void onCancel(Consumer<ConnectException> listener) {
        ConnectException already;
        synchronized (cancelListeners) {
            already = cancellation;
            if (already == null) {
                cancelListeners.add(listener);
                return;
            }
        }
        Thread.ofVirtual().start(() -> listener.accept(already));
    }

    @Override
    public void setResponseHeader(String name, String value) {
        writeLock.lock();
        try {
            if (!headWritten) {
                responseHeaders.put(name, value);
            }
        } finally {
            writeLock.unlock();
        }
    }

    /** Ends the call early (client gone or deadline passed): tells the listeners and, for a deadline, the client. */
    void cancel(ConnectException reason) {
        List<Consumer<ConnectException>> listeners;
        synchronized (cancelListeners) {
            if (cancellation != null || isFinished()) {
                return;
            }
            cancellation = reason;
            listeners = List.copyOf(cancelListeners);
            cancelListeners.clear();
        }
        if (reason.code() == Code.DEADLINE_EXCEEDED) {
            fail(reason);
        }
        for (Consumer<ConnectException> listener : listeners) {
            Thread.ofVirtual().start(() -> listener.accept(reason));
        }
    }

    private boolean isFinished() {
        writeLock.lock();
        try {
            return finished;
        } finally {
            writeLock.unlock();
        }
    }

    // ---- response writing: unary ----

    /** Writes a unary success response. Ignored if the call already ended (e.g. its deadline passed). */
    void respondUnary(byte[] body) {
        writeLock.lock();
        try {
            if (finished) {
                return;
            }
            finished = true;
            cancelTimer();
            applyHeaders();
            response.putHeader("Content-Type", codec.unaryContentType());
            if (gzipResponses && body.length >= Gzip.MIN_COMPRESS_BYTES) {
                body = Gzip.compress(body);
                response.putHeader("Content-Encoding", "gzip");
            }
            response.setStatusCode(200).end(Buffer.buffer(body));
        } finally {
            writeLock.unlock();
        }
    }

    // ---- response writing: streams ----

    /** Writes one message envelope of a server stream, waiting until the connection has taken it. */
    void sendStreamMessage(byte[] message) {
        Future<Void> written;
        writeLock.lock();
        try {
            if (finished || cancellation != null) {
                throw cancellation != null ? cancellation
                        : new ConnectException(Code.CANCELED, "the stream has already ended");
            }
            writeStreamHead();
            byte flags = 0;
            if (gzipResponses && message.length >= Gzip.MIN_COMPRESS_BYTES) {
                message = Gzip.compress(message);
                flags = Envelope.COMPRESSED;
            }
            written = response.write(Envelope.frame(flags, message));
        } finally {
            writeLock.unlock();
        }
        await(written);
    }

    /** Ends a server stream (or a call whose outcome is an error) with success or the given error. */
    void finish(ConnectException error) {
        if (error == null) {
            endStream(null);
        } else {
            fail(error);
        }
    }

    /** Ends the call with an error: a unary error response, or a stream's end message carrying it. */
    void fail(ConnectException error) {
        writeLock.lock();
        try {
            if (finished) {
                return;
            }
            if (isStream()) {
                endStreamLocked(error);
                return;
            }
            finished = true;
            cancelTimer();
            applyHeaders();
            Errors.writeUnary(response, error, error.code().httpStatus());
        } finally {
            writeLock.unlock();
        }
    }

    private void endStream(ConnectException error) {
        writeLock.lock();
        try {
            if (!finished) {
                endStreamLocked(error);
            }
        } finally {
            writeLock.unlock();
        }
    }

    private void endStreamLocked(ConnectException error) {
        finished = true;
        cancelTimer();
        writeStreamHead();
        response.end(Envelope.frame(Envelope.END_STREAM, Errors.endStreamJson(error)));
    }

    private boolean isStream() {
        return !isUnaryContentType(request.getHeader("Content-Type"));
    }

    private void writeStreamHead() {
        if (headWritten) {
            return;
        }
        applyHeaders();
        response.setStatusCode(200);
        response.putHeader("Content-Type", codec.streamContentType());
        if (gzipResponses) {
            response.putHeader("Connect-Content-Encoding", "gzip");
        }
        response.setChunked(true);
    }

    private void applyHeaders() {
        if (headWritten) {
            return;
        }
        headWritten = true;
        responseHeaders.forEach(response::putHeader);
    }

    private void cancelTimer() {
        if (deadlineTimer != null) {
            deadlineTimer.cancel(false);
        }
    }

    private void await(Future<Void> written) {
        try {
            written.toCompletionStage().toCompletableFuture().get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new ConnectException(Code.CANCELED, "interrupted while sending");
        } catch (ExecutionException e) {
            ConnectException reason = new ConnectException(Code.CANCELED,
                    "the client went away: " + e.getCause().getMessage());
            cancel(reason);
            throw cancellation != null ? cancellation : reason;
        }
    }
}
