package dev.capsule.connect;

import com.google.protobuf.Message;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.http.HttpServerRequest;

import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.atomic.AtomicBoolean;

/** One registered procedure: how to read its request, which handler serves it, how its response is written. */
final class Procedure<I extends Message, O extends Message> {
    private static final int CLIENT_STREAM_HIGH_WATER = 16;
    private static final int CLIENT_STREAM_LOW_WATER = 4;

    private final ConnectRouter.Kind kind;
    private final I prototype;
    private final UnaryHandler<I, O> unary;
    private final ServerStreamHandler<I, O> serverStream;
    private final ClientStreamHandler<I, O> clientStream;

    Procedure(ConnectRouter.Kind kind, I prototype, UnaryHandler<I, O> unary,
              ServerStreamHandler<I, O> serverStream, ClientStreamHandler<I, O> clientStream) {
        this.kind = kind;
        this.prototype = prototype;
        this.unary = unary;
        this.serverStream = serverStream;
        this.clientStream = clientStream;
    }

    ConnectRouter.Kind kind() {
        return kind;
    }

    /** Called on the event loop: sets up body reading, then runs the handler on the executor. */
    void start(Call call, List<Interceptor> interceptors, ExecutorService executor) {
        if (kind == ConnectRouter.Kind.CLIENT_STREAM) {
            startClientStream(call, interceptors, executor);
            return;
        }
        HttpServerRequest request = call.request;
        // Unary bodies are one (possibly compressed) message; a server stream's body is one envelope.
        long limit = call.maxMessageBytes + (kind == ConnectRouter.Kind.UNARY ? 0L : 5L);
        String declared = request.getHeader("Content-Length");
        if (declared != null && declared.chars().allMatch(Character::isDigit) && declared.length() < 19
                && Long.parseLong(declared) > limit) {
            // Read and drop whatever of the body still arrives: on HTTP/2, unread bytes would hold the connection's
            // flow-control window and stall the other streams on it.
            request.handler(chunk -> { });
            request.exceptionHandler(e -> { });
            tooLarge(call);
            return;
        }
        Buffer body = Buffer.buffer();
        request.handler(chunk -> {
            if (call.finishedOnLoop()) {
                return;
            }
            if (body.length() + (long) chunk.length() > limit) {
                tooLarge(call);
                return;
            }
            body.appendBuffer(chunk);
        });
        request.exceptionHandler(e -> call.cancelOnLoop(new ConnectException(Code.CANCELED,
                "the request body could not be read: " + e.getMessage())));
        request.endHandler(v -> {
            if (!call.finishedOnLoop()) {
                run(executor, call, () -> serve(call, interceptors, body.getBytes()));
            }
        });
    }

    private static void tooLarge(Call call) {
        // The client may still be sending the rest; closing the connection afterwards stops it.
        call.closeConnectionAfterResponse();
        call.finishOnLoop(new ConnectException(Code.RESOURCE_EXHAUSTED, "request message larger than the limit of "
                + call.maxMessageBytes + " bytes: send a smaller message"));
    }

    private void serve(Call call, List<Interceptor> interceptors, byte[] body) {
        ConnectException outcome = null;
        try {
            // Interceptors (e.g. authentication) decide before the request is even decoded.
            for (Interceptor interceptor : interceptors) {
                interceptor.intercept(call);
            }
            I message = kind == ConnectRouter.Kind.UNARY ? decodeUnary(call, body) : decodeSingleEnvelope(call, body);
            if (kind == ConnectRouter.Kind.UNARY) {
                O response = unary.handle(message, call);
                call.respondUnary(call.codec.encode(response));
                return;
            }
            serverStream.handle(message, call, out -> call.sendStreamMessage(call.codec.encode(out)));
        } catch (Throwable e) {
            outcome = asConnectException(call, e);
        }
        call.finish(outcome);
    }

    private I decodeUnary(Call call, byte[] body) {
        byte[] bytes = call.gzipRequests ? Gzip.decompress(body, call.maxMessageBytes) : body;
        return call.codec.decode(bytes, prototype);
    }

    private I decodeSingleEnvelope(Call call, byte[] body) {
        // The whole body is here (its size already checked), so any mismatch is a malformed request.
        long declared = body.length >= 5 ? Buffer.buffer(body).getUnsignedInt(1) : -1;
        if (declared != body.length - 5L) {
            throw new ConnectException(Code.INVALID_ARGUMENT, "a server-streaming request must carry exactly one "
                    + "enveloped message (1 flags byte, 4-byte big-endian length, payload); got a body of "
                    + body.length + " bytes" + (declared >= 0 ? " whose envelope announces " + declared : ""));
        }
        byte flags = body[0];
        if ((flags & Envelope.END_STREAM) != 0) {
            throw new ConnectException(Code.INVALID_ARGUMENT, "clients must not send end-of-stream messages (flag 0x02)");
        }
        return decodeEnvelope(call, new Envelope(flags, java.util.Arrays.copyOfRange(body, 5, body.length)));
    }

    private I decodeEnvelope(Call call, Envelope envelope) {
        byte[] payload = envelope.payload;
        if ((envelope.flags & Envelope.COMPRESSED) != 0) {
            if (!call.gzipRequests) {
                throw new ConnectException(Code.INTERNAL,
                        "received a compressed message without Connect-Content-Encoding: gzip");
            }
            payload = Gzip.decompress(payload, call.maxMessageBytes);
        }
        return call.codec.decode(payload, prototype);
    }

    private void startClientStream(Call call, List<Interceptor> interceptors, ExecutorService executor) {
        HttpServerRequest request = call.request;
        // Holds decoded envelopes, the end marker or a ConnectException; the request is paused while it is long,
        // so a client cannot make the server buffer more than about CLIENT_STREAM_HIGH_WATER messages.
        LinkedBlockingQueue<Object> queue = new LinkedBlockingQueue<>();
        Object end = new Object();
        Envelope.Reader reader = new Envelope.Reader(call.maxMessageBytes);
        AtomicBoolean paused = new AtomicBoolean();
        boolean[] broken = {false};
        request.handler(chunk -> {
            if (broken[0] || call.finishedOnLoop()) {
                return;
            }
            try {
                queue.addAll(reader.feed(chunk));
            } catch (ConnectException e) {
                broken[0] = true;
                queue.add(e);
                return;
            }
            if (queue.size() >= CLIENT_STREAM_HIGH_WATER && paused.compareAndSet(false, true)) {
                request.pause();
            }
        });
        request.exceptionHandler(e -> queue.add(new ConnectException(Code.CANCELED,
                "the request stream broke: " + e.getMessage())));
        request.endHandler(v -> {
            if (!broken[0]) {
                queue.add(reader.hasPartial()
                        ? new ConnectException(Code.INVALID_ARGUMENT, "the request stream ended inside a message: "
                                + "each message needs its 5-byte header and the full payload it announces")
                        : end);
            }
        });
        call.onCancel(queue::add);
        StreamReceiver<I> receiver = () -> {
            Object next;
            try {
                next = queue.take();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new ConnectException(Code.CANCELED, "interrupted while receiving");
            }
            if (queue.size() <= CLIENT_STREAM_LOW_WATER && paused.compareAndSet(true, false)) {
                call.resumeRequest();
            }
            if (next == end || next instanceof ConnectException) {
                queue.add(next); // every later receive() sees the same outcome
                if (next == end) {
                    return null;
                }
                throw (ConnectException) next;
            }
            Envelope envelope = (Envelope) next;
            if ((envelope.flags & Envelope.END_STREAM) != 0) {
                throw new ConnectException(Code.INVALID_ARGUMENT, "clients must not send end-of-stream messages "
                        + "(flag 0x02): end the request body instead");
            }
            return decodeEnvelope(call, envelope);
        };
        run(executor, call, () -> {
            ConnectException outcome = null;
            try {
                for (Interceptor interceptor : interceptors) {
                    interceptor.intercept(call);
                }
                O response = clientStream.handle(receiver, call);
                call.sendStreamMessage(call.codec.encode(response));
            } catch (Throwable e) {
                outcome = asConnectException(call, e);
            }
            call.finish(outcome);
        });
    }

    private static void run(ExecutorService executor, Call call, Runnable task) {
        try {
            executor.execute(task);
        } catch (RejectedExecutionException e) {
            call.finishOnLoop(new ConnectException(Code.UNAVAILABLE, "the server is shutting down; retry elsewhere"));
        }
    }

    private static ConnectException asConnectException(Call call, Throwable e) {
        if (call.cancellation() != null) {
            return call.cancellation();
        }
        if (e instanceof ConnectException ce) {
            return ce;
        }
        return new ConnectException(Code.INTERNAL, "internal error: " + e, e);
    }
}
