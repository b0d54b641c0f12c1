package dev.capsule.connect;

import io.vertx.core.Context;
import io.vertx.core.Vertx;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.http.HttpServerRequest;
import io.vertx.core.http.HttpServerResponse;
import io.vertx.core.http.HttpVersion;

import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.Semaphore;
import java.util.function.Consumer;

/**
 * One call in flight: its request headers, deadline and cancellation, and the one place that writes its response, so
 * that a handler, a deadline and a vanished client never write over each other.
 *
 * <p>Threading: the response is only ever touched on the request's Vert.x context (its event loop). Handlers run on
 * virtual threads and reach the response through {@link Context#runOnContext}, which keeps their writes in order;
 * the call's state ({@code finished}, {@code headWritten}, the pending send) is confined to that event loop, so every
 * decision about what may still be written is taken in one thread. Only {@link #cancellation} is read elsewhere.
 */
final class Call implements CallContext {
    /**
     * Bytes of stream messages a handler may have handed over that the event loop has not yet written, or that it
     * wrote while the connection was backed up. A send takes permits for its size (at most this many, so one large
     * message always fits) and only waits when they run out: a handler normally never waits for the event loop, each
     * wait having been a thread hand-off on the latency path of every message.
     */
    static final int MAX_BYTES_IN_FLIGHT = 256 * 1024;

    final HttpServerRequest request;
    final HttpServerResponse response;
    final Codec codec;
    /** A streaming call (connect+json / connect+proto): errors travel in the end-of-stream message. */
    final boolean stream;
    final int maxMessageBytes;
    /** The client accepts gzip-compressed response messages. */
    final boolean gzipResponses;
    /** The client compressed its request messages with gzip. */
    final boolean gzipRequests;
    /** Why the request cannot be served at all (bad headers), or null. */
    final ConnectException rejection;

    private final Context context;
    private final Instant deadline;
    private final List<Consumer<ConnectException>> cancelListeners = new ArrayList<>();
    private volatile ConnectException cancellation;
    private final Semaphore sendPermits = new Semaphore(MAX_BYTES_IN_FLIGHT);

    // Confined to the event loop.
    private final Map<String, String> responseHeaders = new LinkedHashMap<>();
    private long deadlineTimer = -1;
    private boolean headWritten;
    private boolean finished;
    /** Permits of messages written while the write queue was full: given back when it drains. */
    private int permitsHeldForDrain;

    /** Called on the event loop. Reads the call's headers; a bad header becomes {@link #rejection}. */
    Call(HttpServerRequest request, Codec codec, boolean stream, int maxMessageBytes) {
        this.request = request;
        this.response = request.response();
        this.codec = codec;
        this.stream = stream;
        this.maxMessageBytes = maxMessageBytes;
        this.context = Vertx.currentContext();
        String encodingHeader = stream ? "Connect-Content-Encoding" : "Content-Encoding";
        String requestEncoding = request.getHeader(encodingHeader);
        this.gzipRequests = "gzip".equalsIgnoreCase(requestEncoding);
        this.gzipResponses = Gzip.accepts(request.getHeader(stream ? "Connect-Accept-Encoding" : "Accept-Encoding"));
        Instant parsedDeadline = null;
        ConnectException problem = null;
        try {
            String version = request.getHeader("Connect-Protocol-Version");
            if (version != null && !version.equals("1")) {
                throw new ConnectException(Code.INVALID_ARGUMENT, "Connect-Protocol-Version must be 1, got '"
                        + version + "': this server speaks version 1 of the Connect protocol");
            }
            if (requestEncoding != null && !gzipRequests && !requestEncoding.equalsIgnoreCase("identity")) {
                responseHeaders.put(stream ? "Connect-Accept-Encoding" : "Accept-Encoding", "gzip");
                throw new ConnectException(Code.UNIMPLEMENTED, "unsupported " + encodingHeader + " '"
                        + requestEncoding + "': this server accepts gzip or identity");
            }
            parsedDeadline = parseDeadline(request.getHeader("Connect-Timeout-Ms"));
        } catch (ConnectException e) {
            problem = e;
        }
        this.deadline = parsedDeadline;
        this.rejection = problem;
    }

    private static Instant parseDeadline(String header) {
        if (header == null) {
            return null;
        }
        if (header.isEmpty() || header.length() > 10 || !header.chars().allMatch(c -> c >= '0' && c <= '9')) {
            throw new ConnectException(Code.INVALID_ARGUMENT, "invalid Connect-Timeout-Ms '" + header
                    + "': send the timeout in milliseconds as a non-negative integer of at most 10 digits");
        }
        return Instant.now().plusMillis(Long.parseLong(header));
    }

    /** Called on the event loop once the call is accepted: starts watching the connection and the deadline. */
    void arm() {
        response.closeHandler(v -> cancelOnLoop(new ConnectException(Code.CANCELED,
                "the client closed the connection")));
        if (deadline != null) {
            long delay = Math.max(1, deadline.toEpochMilli() - System.currentTimeMillis());
            deadlineTimer = context.owner().setTimer(delay, id -> {
                deadlineTimer = -1;
                cancelOnLoop(deadlineExceeded());
            });
        }
    }

    private ConnectException deadlineExceeded() {
        return new ConnectException(Code.DEADLINE_EXCEEDED, "the call's deadline (Connect-Timeout-Ms: "
                + request.getHeader("Connect-Timeout-Ms") + ") passed before it finished");
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
        onLoop(() -> {
            if (!headWritten) {
                responseHeaders.put(name, value);
            }
        });
    }

    // ---- called from handler threads ----

    /** Writes a unary success response. Ignored if the call already ended (e.g. its deadline passed). */
    void respondUnary(byte[] body) {
        boolean compress = gzipResponses && body.length >= Gzip.MIN_COMPRESS_BYTES;
        Buffer payload = Buffer.buffer(compress ? Gzip.compress(body) : body);
        onLoop(() -> {
            if (finished) {
                return;
            }
            markFinished();
            writeHead(200, codec.unaryContentType());
            if (compress) {
                response.putHeader("Content-Encoding", "gzip");
            }
            response.end(payload);
        });
    }

    /**
     * Writes one message envelope of a stream. Returns at once while the connection keeps up; blocks while the client
     * reads slower than the handler sends (the write queue is full), so about {@value #MAX_BYTES_IN_FLIGHT} bytes
     * (or one larger message) wait in memory. Throws the reason once the call was cancelled (client gone, deadline passed).
     */
    void sendStreamMessage(byte[] message) {
        ConnectException over = cancellation;
        if (over != null) {
            throw over;
        }
        byte flags = 0;
        if (gzipResponses && message.length >= Gzip.MIN_COMPRESS_BYTES) {
            message = Gzip.compress(message);
            flags = Envelope.COMPRESSED;
        }
        Buffer frame = Envelope.frame(flags, message);
        int permits = Math.min(frame.length(), MAX_BYTES_IN_FLIGHT);
        try {
            sendPermits.acquire(permits);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new ConnectException(Code.CANCELED, "interrupted while sending a stream message");
        }
        over = cancellation;
        if (over != null) {
            sendPermits.release(permits);
            throw over;
        }
        onLoop(() -> writeMessageOnLoop(frame, permits));
    }

    /** Ends the call: a stream with success (error null) or the error, a unary call with the error. */
    void finish(ConnectException error) {
        onLoop(() -> finishOnLoop(error));
    }

    // ---- event loop ----

    private void onLoop(Runnable action) {
        context.runOnContext(v -> action.run());
    }

    private void writeMessageOnLoop(Buffer frame, int permits) {
        if (finished) {
            sendPermits.release(permits);
            return;
        }
        writeHead(200, codec.streamContentType());
        response.write(frame).onFailure(e -> cancelOnLoop(new ConnectException(Code.CANCELED,
                "the client went away: " + e.getMessage())));
        if (response.writeQueueFull()) {
            permitsHeldForDrain += permits;
            response.drainHandler(v -> releaseSendPermits());
        } else {
            sendPermits.release(permits);
        }
    }

    /** Lets blocked senders go on: the connection drained, or the call ended (they then see why and stop). */
    private void releaseSendPermits() {
        int held = permitsHeldForDrain;
        permitsHeldForDrain = 0;
        sendPermits.release(finished ? MAX_BYTES_IN_FLIGHT + held : held);
    }

    /** Ends the call with success or an error: a unary error response, or a stream's end message. */
    void finishOnLoop(ConnectException error) {
        if (finished) {
            return;
        }
        if (error == null && stream && deadline != null && !Instant.now().isBefore(deadline)) {
            // The handler ended just as the deadline passed (say, a process killed at its deadline), before the
            // deadline timer ran: the client times out as well, so the call reports the deadline, not a race.
            error = deadlineExceeded();
        }
        markFinished();
        if (stream) {
            writeHead(200, codec.streamContentType());
            response.end(Envelope.frame(Envelope.END_STREAM, Errors.endStreamJson(error)));
            releaseSendPermits();
            return;
        }
        if (error == null) {
            throw new IllegalStateException("a unary call ends with a response or an error");
        }
        writeHead(error.code().httpStatus(), "application/json");
        response.end(Errors.unaryErrorBody(error));
    }

    /** Ends the call because the client went away or the deadline passed; tells the handler's listeners. */
    void cancelOnLoop(ConnectException reason) {
        List<Consumer<ConnectException>> listeners;
        synchronized (cancelListeners) {
            if (finished || cancellation != null) {
                return;
            }
            cancellation = reason;
            listeners = List.copyOf(cancelListeners);
            cancelListeners.clear();
        }
        if (reason.code() == Code.DEADLINE_EXCEEDED) {
            finishOnLoop(reason);
        } else {
            markFinished();
        }
        releaseSendPermits();
        for (Consumer<ConnectException> listener : listeners) {
            Thread.ofVirtual().start(() -> listener.accept(reason));
        }
    }

    /** Closes the connection after the response (HTTP/1.x only: HTTP/2 forbids the header and ends just the stream). */
    void closeConnectionAfterResponse() {
        if (request.version() != HttpVersion.HTTP_2 && !headWritten) {
            responseHeaders.put("Connection", "close");
        }
    }

    private void markFinished() {
        finished = true;
        if (deadlineTimer != -1) {
            context.owner().cancelTimer(deadlineTimer);
            deadlineTimer = -1;
        }
        if (!request.isEnded()) {
            // Whatever the client still sends is of no use now: drop it rather than queue it. Reading it (rather
            // than leaving it paused) also gives HTTP/2 flow-control credit back, so other streams keep moving.
            request.handler(chunk -> {});
            request.resume();
        }
    }

    private void writeHead(int status, String contentType) {
        if (headWritten) {
            return;
        }
        headWritten = true;
        responseHeaders.forEach(response::putHeader);
        response.setStatusCode(status);
        response.putHeader("Content-Type", contentType);
        if (stream) {
            if (gzipResponses) {
                response.putHeader("Connect-Content-Encoding", "gzip");
            }
            response.setChunked(true);
        }
    }

    /** True once the response is complete or can no longer be written (event loop only). */
    boolean finishedOnLoop() {
        return finished;
    }

    /** Resumes reading the request body (client streams pause it while the handler is behind). */
    void resumeRequest() {
        onLoop(() -> {
            if (!finished) {
                request.resume();
            }
        });
    }

    static boolean isStreamContentType(String contentType) {
        return contentType != null && contentType.toLowerCase(Locale.ROOT).startsWith("application/connect+");
    }
}
