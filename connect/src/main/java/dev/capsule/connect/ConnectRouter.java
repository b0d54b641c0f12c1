package dev.capsule.connect;

import com.google.protobuf.Message;
import io.vertx.core.Handler;
import io.vertx.core.http.HttpMethod;
import io.vertx.core.http.HttpServerRequest;
import io.vertx.core.http.HttpServerResponse;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/**
 * Serves Connect procedures ({@code POST /<package>.<Service>/<Method>}) on a Vert.x HTTP server: unary calls with
 * {@code application/json} or {@code application/proto}, server- and client-streaming calls with
 * {@code application/connect+json} or {@code application/connect+proto}, gzip both ways, deadlines from
 * {@code Connect-Timeout-Ms}. Handlers run on virtual threads; the event loop only moves bytes.
 *
 * <p>Use {@link #handles} to decide whether a request is for this router, then pass it to {@link #handle}.
 */
public final class ConnectRouter implements Handler<HttpServerRequest> {
    private final Map<String, Procedure<?, ?>> procedures;
    private final Set<String> servicePrefixes;
    private final List<Interceptor> interceptors;
    private final ExecutorService executor;
    private final boolean ownsExecutor;
    private final int maxMessageBytes;

    private ConnectRouter(Builder builder) {
        this.procedures = Map.copyOf(builder.procedures);
        this.servicePrefixes = new HashSet<>();
        for (String path : procedures.keySet()) {
            servicePrefixes.add(path.substring(0, path.lastIndexOf('/') + 1));
        }
        this.interceptors = List.copyOf(builder.interceptors);
        this.executor = builder.executor != null ? builder.executor : Executors.newVirtualThreadPerTaskExecutor();
        this.ownsExecutor = builder.executor == null;
        this.maxMessageBytes = builder.maxMessageBytes;
    }

    public static Builder builder() {
        return new Builder();
    }

    /** True when the request's path names a service this router serves (known or unknown method). */
    public boolean handles(HttpServerRequest request) {
        String path = request.path();
        if (procedures.containsKey(path)) {
            return true;
        }
        int slash = path.lastIndexOf('/');
        return slash > 0 && servicePrefixes.contains(path.substring(0, slash + 1));
    }

    @Override
    public void handle(HttpServerRequest request) {
        HttpServerResponse response = request.response();
        Procedure<?, ?> procedure = procedures.get(request.path());
        if (procedure == null) {
            Errors.writeUnary(response, new ConnectException(Code.UNIMPLEMENTED,
                    request.path() + " is not implemented: no such procedure"), 404);
            return;
        }
        if (request.method() != HttpMethod.POST) {
            response.putHeader("Allow", "POST");
            Errors.writeUnary(response, new ConnectException(Code.UNIMPLEMENTED,
                    "method " + request.method() + " not allowed: Connect procedures are called with POST"), 405);
            return;
        }
        Codec codec = codecFor(request.getHeader("Content-Type"), procedure.kind());
        if (codec == null) {
            String expected = procedure.kind() == Kind.UNARY
                    ? "application/json or application/proto"
                    : "application/connect+json or application/connect+proto";
            response.putHeader("Accept-Post", expected);
            Errors.writeUnary(response, new ConnectException(Code.UNKNOWN,
                    "unsupported content type '" + request.getHeader("Content-Type") + "' for " + request.path()
                            + ": send " + expected), 415);
            return;
        }
        Call call = new Call(request, codec, procedure.kind() != Kind.UNARY, maxMessageBytes);
        if (call.rejection != null) {
            call.finishOnLoop(call.rejection);
            return;
        }
        call.arm();
        procedure.start(call, interceptors, executor);
    }

    /**
     * Stops taking new calls when the router runs them on its own executor (they fail with {@code unavailable});
     * calls in flight keep running. A caller-supplied executor is left alone.
     */
    public void close() {
        if (ownsExecutor) {
            executor.shutdown();
        }
    }

    private static Codec codecFor(String contentType, Kind kind) {
        if (contentType == null) {
            return null;
        }
        String type = contentType.split(";", 2)[0].trim().toLowerCase(java.util.Locale.ROOT);
        String prefix = kind == Kind.UNARY ? "application/" : "application/connect+";
        if (!type.startsWith(prefix)) {
            return null;
        }
        return Codec.named(type.substring(prefix.length()));
    }

    enum Kind { UNARY, SERVER_STREAM, CLIENT_STREAM }

    /** Registers procedures; each takes the request message's default instance, which tells how to decode it. */
    public static final class Builder {
        private final Map<String, Procedure<?, ?>> procedures = new HashMap<>();
        private final List<Interceptor> interceptors = new ArrayList<>();
        private ExecutorService executor;
        private int maxMessageBytes = 32 * 1024 * 1024;

        private Builder() {}

        public <I extends Message, O extends Message> Builder unary(
                String service, String method, I requestPrototype, UnaryHandler<I, O> handler) {
            return add(service, method, new Procedure<>(Kind.UNARY, requestPrototype, handler, null, null));
        }

        public <I extends Message, O extends Message> Builder serverStream(
                String service, String method, I requestPrototype, ServerStreamHandler<I, O> handler) {
            return add(service, method, new Procedure<>(Kind.SERVER_STREAM, requestPrototype, null, handler, null));
        }

        public <I extends Message, O extends Message> Builder clientStream(
                String service, String method, I requestPrototype, ClientStreamHandler<I, O> handler) {
            return add(service, method, new Procedure<>(Kind.CLIENT_STREAM, requestPrototype, null, null, handler));
        }

        /** Runs before every handler, in the order added. */
        public Builder interceptor(Interceptor interceptor) {
            interceptors.add(interceptor);
            return this;
        }

        /** Where handlers run; a new virtual thread per call by default. */
        public Builder executor(ExecutorService executor) {
            this.executor = executor;
            return this;
        }

        /** The largest request message accepted, after decompression (32 MiB by default). */
        public Builder maxMessageBytes(int maxMessageBytes) {
            this.maxMessageBytes = maxMessageBytes;
            return this;
        }

        public ConnectRouter build() {
            return new ConnectRouter(this);
        }

        private Builder add(String service, String method, Procedure<?, ?> procedure) {
            String path = "/" + service + "/" + method;
            if (procedures.putIfAbsent(path, procedure) != null) {
                throw new IllegalArgumentException(path + " is registered twice");
            }
            return this;
        }
    }
}
