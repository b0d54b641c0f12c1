package dev.capsule.connect;

import com.google.protobuf.Message;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.http.HttpServerRequest;

import java.util.List;
import java.util.Queue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.RejectedExecutionException;

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
        int limit = call.maxMessageBytes + (kind == ConnectRouter.Kind.UNARY ? 0 : 5);
        Buffer body = Buffer.buffer();
        boolean[] tooLarge = {false};
        request.handler(chunk -> {
            if (tooLarge[0]) {
                return;
            }
            if (body.length() + chunk.length() > limit) {
                tooLarge[0] = true;
                call.response.putHeader("Connection", "close");
                call.fail(new ConnectException(Code.RESOURCE_EXHAUSTED,
                        "request body larger than the limit of " + call.maxMessageBytes + " bytes"));
                return;
            }
            body.appendBuffer(chunk);
        });
        request.exceptionHandler(e -> call.cancel(new ConnectException(Code.CANCELED,
                "the request body could not be read: " + e.getMessage())));
        request.endHandler(v -> {
            if (!tooLarge[0]) {
                run(executor, call, () -> serve(call, interceptors, body.getBytes()));
            }
        });
    }

    private void serve(Call call, List<Interceptor> interceptors, byte[] body) {
        ConnectException outcome = null;
        try {
            I message = kind == ConnectRouter.Kind.UNARY ? decodeUnary(call, body) : decodeSingleEnvelope(call, body);
            for (Interceptor interceptor : interceptors) {
                interceptor.intercept(call);
            }
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
        Envelope.Reader reader = new Envelope.Reader(call.maxMessageBytes);
        Queue<Envelope> envelopes = reader.feed(Buffer.buffer(body));
        if (envelopes.size() != 1 || reader.hasPartial()) {
            throw new ConnectException(Code.INVALID_ARGUMENT, "a server-streaming request must carry exactly one "
                    + "enveloped message (1 flags byte, 4-byte big-endian length, payload); got "
                    + envelopes.size() + (reader.hasPartial() ? " and a truncated one" : ""));
        }
        return decodeEnvelope(call, envelopes.peek());
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
        LinkedBlockingQueue<Object> queue = new LinkedBlockingQueue<>();
        Object end = new Object();
        Envelope.Reader reader = new Envelope.Reader(call.maxMessageBytes);
        boolean[] paused = {false};
        request.handler(chunk -> {
            try {
                queue.addAll(reader.feed(chunk));
            } catch (ConnectException e) {
                queue.add(e);
            }
            synchronized (paused) {
                if (queue.size() >= CLIENT_STREAM_HIGH_WATER && !paused[0]) {
                    paused[0] = true;
                    request.pause();
                }
            }
        });
        request.exceptionHandler(e -> queue.add(new ConnectException(Code.CANCELED,
                "the request stream broke: " + e.getMessage())));
        request.endHandler(v -> queue.add(reader.hasPartial()
                ? new ConnectException(Code.INVALID_ARGUMENT, "the request stream ended inside a message")
                : end));
        StreamReceiver<I> receiver = () -> {
            Object next;
            try {
                next = queue.take();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new ConnectException(Code.CANCELED, "interrupted while receiving");
            }
            synchronized (paused) {
                if (paused[0] && queue.size() <= CLIENT_STREAM_LOW_WATER) {
                    paused[0] = false;
                    request.resume();
                }
            }
            if (next == end) {
                queue.add(end);
                return null;
            }
            if (next instanceof ConnectException e) {
                queue.add(e);
                throw e;
            }
            Envelope envelope = (Envelope) next;
            if ((envelope.flags & Envelope.END_STREAM) != 0) {
                throw new ConnectException(Code.INVALID_ARGUMENT, "clients must not send end-of-stream messages");
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
            call.fail(new ConnectException(Code.UNAVAILABLE, "the server is shutting down; retry elsewhere"));
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
