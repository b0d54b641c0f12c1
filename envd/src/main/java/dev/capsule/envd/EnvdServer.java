package dev.capsule.envd;

import dev.capsule.connect.ConnectRouter;
import dev.capsule.envd.auth.AccessControl;
import dev.capsule.envd.files.FilesEndpoint;
import dev.capsule.envd.system.SystemEndpoints;
import dev.capsule.envd.system.SystemMetrics;
import dev.capsule.envd.users.UserResolver;
import io.vertx.core.Vertx;
import io.vertx.core.VertxOptions;
import io.vertx.core.http.HttpMethod;
import io.vertx.core.http.HttpServer;
import io.vertx.core.http.HttpServerOptions;
import io.vertx.core.http.HttpServerRequest;
import io.vertx.core.http.HttpServerResponse;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * envd's HTTP server: one Vert.x server on one port (49983 by default) serving Connect RPC for the given services
 * and the plain endpoints /health, /envs, /metrics, /init and /files, behind CORS and the access-token check.
 * HTTP/1.1, which is what the SDKs speak to envd; h2c with prior knowledge works on the same port too.
 */
public final class EnvdServer implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(EnvdServer.class.getName());

    /** E2B's envd port; the SDKs hard-code it. */
    public static final int DEFAULT_PORT = 49983;

    private static final String EXPOSED_HEADERS = String.join(", ", "Connect-Content-Encoding",
            "Connect-Accept-Encoding", "Grpc-Status", "Grpc-Message", "Grpc-Status-Details-Bin", "Content-Encoding",
            "Content-Disposition", "Content-Length", "Content-Type");

    private final Vertx vertx;
    private final HttpServer server;
    private final ConnectRouter connect;
    private final List<RpcService> services;
    private final ExecutorService executor;
    private final AccessControl access;
    private final SystemEndpoints system;
    private final FilesEndpoint files;

    private EnvdServer(String host, int port, EnvdState state, UserResolver users, List<RpcService> services) {
        this.services = List.copyOf(services);
        this.executor = Executors.newVirtualThreadPerTaskExecutor();
        this.access = new AccessControl(state);
        this.system = new SystemEndpoints(state, access, new SystemMetrics(), executor);
        this.files = new FilesEndpoint(users, state, access, executor);
        ConnectRouter.Builder builder = ConnectRouter.builder().interceptor(access.interceptor());
        for (RpcService service : this.services) {
            service.register(builder);
        }
        this.connect = builder.build();
        // One server instance uses one event loop (a second one would only hold memory); all blocking work runs on
        // virtual threads.
        this.vertx = Vertx.vertx(new VertxOptions().setEventLoopPoolSize(1).setWorkerPoolSize(1)
                .setInternalBlockingPoolSize(1));
        HttpServerOptions options = new HttpServerOptions()
                .setHost(host)
                .setPort(port)
                .setHttp2ClearTextEnabled(true)
                .setCompressionSupported(false)   // /files and Connect each negotiate their own gzip
                .setDecompressionSupported(false)
                .setMaxInitialLineLength(64 * 1024)  // signed URLs of long paths
                .setMaxHeaderSize(64 * 1024)
                // Uploads arrive in pieces of up to this size (Netty's default is 8 KiB): fewer hand-offs to the
                // virtual thread that writes the file; 1 MiB uploads take about a third less time.
                .setMaxChunkSize(64 * 1024)
                // curl (and other clients) send 'Expect: 100-continue' with large uploads and wait a second for
                // the go-ahead unless the server answers it.
                .setHandle100ContinueAutomatically(true);
        this.server = vertx.createHttpServer(options).requestHandler(this::handle);
    }

    /**
     * Starts envd on {@code host:port} (port 0 picks a free one) and returns once it accepts connections.
     * {@code services} are the Connect services to serve; the server closes them when it closes.
     */
    public static EnvdServer start(String host, int port, EnvdState state, UserResolver users,
                                   List<RpcService> services) {
        EnvdServer envd = new EnvdServer(host, port, state, users, services);
        try {
            envd.server.listen().toCompletionStage().toCompletableFuture().get(30, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            envd.close();
            throw new IllegalStateException("interrupted while starting envd", e);
        } catch (ExecutionException | TimeoutException e) {
            envd.close();
            Throwable cause = e instanceof ExecutionException ? e.getCause() : e;
            throw new IllegalStateException("envd cannot listen on " + host + ":" + port + ": " + cause.getMessage()
                    + " (is another envd running? choose another --port)", cause);
        }
        return envd;
    }

    /** The port envd listens on. */
    public int port() {
        return server.actualPort();
    }

    private void handle(HttpServerRequest request) {
        HttpServerResponse response = request.response();
        String origin = request.getHeader("Origin");
        if (origin != null) {
            response.putHeader("Access-Control-Allow-Origin", "*")
                    .putHeader("Access-Control-Expose-Headers", EXPOSED_HEADERS)
                    .putHeader("Vary", "Origin");
        }
        if (request.method() == HttpMethod.OPTIONS) {
            preflight(request);
            return;
        }
        String path = request.path();
        boolean rpc = connect.handles(request);
        if (!rpc && !AccessControl.exempt(request.method().name(), path)
                && access.tokenRequired() && !access.tokenMatches(request.getHeader(AccessControl.TOKEN_HEADER))) {
            try {
                access.checkToken(request.getHeader(AccessControl.TOKEN_HEADER));
            } catch (dev.capsule.connect.ConnectException e) {
                EnvdHttp.error(response, e);
            }
            return;
        }
        if (rpc) {
            connect.handle(request); // the router's interceptor checks the token
            return;
        }
        try {
            switch (path) {
                case "/health" -> only(request, HttpMethod.GET, system::health);
                case "/envs" -> only(request, HttpMethod.GET, system::envs);
                case "/metrics" -> only(request, HttpMethod.GET, system::metrics);
                case "/init" -> only(request, HttpMethod.POST, system::init);
                case "/files" -> files.handle(request);
                default -> EnvdHttp.error(response, 404, "no such endpoint: " + request.method() + " " + path);
            }
        } catch (RuntimeException e) {
            LOG.log(Level.WARNING, "request " + request.method() + " " + path + " failed", e);
            EnvdHttp.error(response, 500, "envd failed to serve " + path + ": " + e.getMessage());
        }
    }

    private static void only(HttpServerRequest request, HttpMethod method,
                             io.vertx.core.Handler<HttpServerRequest> handler) {
        if (request.method() == method) {
            handler.handle(request);
        } else {
            request.response().putHeader("Allow", method.name());
            EnvdHttp.error(request.response(), 405, "method " + request.method() + " not allowed on "
                    + request.path() + ": use " + method.name());
        }
    }

    /** CORS preflight: any origin, the requested method and headers, cached for two hours. */
    private static void preflight(HttpServerRequest request) {
        HttpServerResponse response = request.response();
        String method = request.getHeader("Access-Control-Request-Method");
        String headers = request.getHeader("Access-Control-Request-Headers");
        response.putHeader("Access-Control-Allow-Origin", "*")
                .putHeader("Access-Control-Allow-Methods",
                        method != null ? method : "GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS")
                .putHeader("Access-Control-Allow-Headers", headers != null ? headers : "*")
                .putHeader("Access-Control-Max-Age", "7200")
                .putHeader("Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
                .setStatusCode(204)
                .end();
    }

    /** Stops listening, closes the services (their processes keep running) and releases threads. */
    @Override
    public void close() {
        try {
            server.close().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
        } catch (Exception e) {
            LOG.log(Level.FINE, "closing the HTTP server", e);
        }
        List<RuntimeException> failures = new ArrayList<>();
        for (RpcService service : services) {
            try {
                service.close();
            } catch (RuntimeException e) {
                failures.add(e);
            }
        }
        connect.close();
        executor.shutdownNow();
        try {
            vertx.close().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
        } catch (Exception e) {
            LOG.log(Level.FINE, "closing Vert.x", e);
        }
        for (RuntimeException e : failures) {
            LOG.log(Level.WARNING, "a service failed to close", e);
        }
    }
}
