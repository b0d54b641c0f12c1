package dev.capsule.server;

import dev.capsule.runtime.SandboxRuntime;
import dev.capsule.runtime.pool.WarmPool;
import dev.capsule.server.api.SandboxApi;
import dev.capsule.server.auth.ApiKeys;
import dev.capsule.server.config.Config;
import dev.capsule.server.gateway.Gateway;
import dev.capsule.server.gateway.RequestChecks;
import dev.capsule.server.lifecycle.EnvdClient;
import dev.capsule.server.lifecycle.SandboxLifecycle;
import dev.capsule.server.ratelimit.RateLimiter;
import dev.capsule.server.store.SecretBox;
import dev.capsule.server.store.Store;
import io.vertx.core.Vertx;
import io.vertx.core.http.HttpServer;
import io.vertx.core.http.HttpServerOptions;
import io.vertx.core.json.JsonObject;
import io.vertx.ext.web.Router;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.time.Clock;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/**
 * The control plane as one object: opens the store, makes the first API key, re-adopts the runtime's sandboxes,
 * and serves the E2B API and the sandbox gateway on one port. {@code capsule server} builds a {@link Config} and
 * the configured {@link SandboxRuntime} and calls {@link #start}; {@link #close} stops serving and leaves running
 * sandboxes running (the next start re-adopts them). The runtime stays the caller's to close.
 */
public final class CapsuleServer implements AutoCloseable {

    /** Seconds a client connection may stay silent both ways before it is closed. */
    static final int IDLE_TIMEOUT_SECONDS = 620;

    private final Config config;
    private final Store store;
    private final ApiKeys apiKeys;
    private final SandboxLifecycle lifecycle;
    private final ExecutorService workers;
    private final Vertx vertx;
    private final Gateway gateway;
    private final HttpServer http;
    private final Optional<ApiKeys.CreatedKey> initialKey;
    private final WarmPool pool;
    private final Observability observability;

    private CapsuleServer(Config config, Store store, ApiKeys apiKeys, SandboxLifecycle lifecycle, ExecutorService workers,
                          Vertx vertx, Gateway gateway, HttpServer http, Optional<ApiKeys.CreatedKey> initialKey,
                          WarmPool pool, Observability observability) {
        this.config = config;
        this.store = store;
        this.apiKeys = apiKeys;
        this.lifecycle = lifecycle;
        this.workers = workers;
        this.vertx = vertx;
        this.gateway = gateway;
        this.http = http;
        this.initialKey = initialKey;
        this.pool = pool;
        this.observability = observability;
    }

    /** What the log says at start-up about how paused sandboxes keep their memory on this host, and why. */
    static String pauseModeNote(SandboxRuntime runtime) {
        return "pause mode: " + runtime.pauseMode() + " (" + runtime.pauseModeReason() + "); GET /health reports it in"
                + " the Capsule-Pause-Mode header, GET /health/details with the reason";
    }

    /** Starts everything and returns once the port is listening; prints the API key on a first start. */
    public static CapsuleServer start(Config config, SandboxRuntime runtime) {
        try {
            Files.createDirectories(config.dataDir());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot create the data directory " + config.dataDir()
                    + "; create it or point --data-dir / CAPSULE_DATA_DIR somewhere writable", e);
        }
        SecretBox secrets = SecretBox.fromKeyFile(config.dataDir().resolve("store.key"));
        Store store = Store.open(config.databaseUrl(), config.databaseUser(), config.databasePassword(), secrets);
        ExecutorService workers = Executors.newVirtualThreadPerTaskExecutor();
        SandboxLifecycle lifecycle = null;
        Observability observability = null;
        WarmPool pool = null;
        Vertx vertx = null;
        try {
            ApiKeys apiKeys = new ApiKeys(store, Clock.systemUTC());
            Optional<ApiKeys.CreatedKey> initial = apiKeys.ensureInitialKey(config.apiKeyFile());
            initial.ifPresent(k -> System.getLogger(CapsuleServer.class.getName()).log(System.Logger.Level.INFO,
                    "Created API key " + k.key() + " (also written to " + config.apiKeyFile() + "). Use it as E2B_API_KEY."));
            observability = new Observability(config.observability(), store, secrets, runtime, apiKeys, workers, Clock.systemUTC());
            lifecycle = new SandboxLifecycle(store, runtime, new EnvdClient(Duration.ofSeconds(10)), Clock.systemUTC(),
                    config.defaultTimeout(), config.maxTimeout(), observability.events());
            lifecycle.recover();
            observability.start();
            System.getLogger(CapsuleServer.class.getName()).log(System.Logger.Level.INFO, pauseModeNote(runtime));
            pool = warmPool(config, store, runtime);
            lifecycle.useWarmPool(pool);
            if (pool != null) observability.metrics().warmPool(pool, "base");

            vertx = Vertx.vertx();
            String publicDomain = publicDomain(config);
            Router router = observability.router(vertx,
                    new SandboxApi(lifecycle, apiKeys, new RateLimiter(config.rateLimits(), store), workers, publicDomain)
                            .with(observability::routes).router(vertx));
            Gateway gateway = new Gateway(vertx, lifecycle, workers, config.domain());
            var metrics = observability.metrics();
            // Connections with no traffic either way for IDLE_TIMEOUT are closed, as E2B's proxy does (620 s), so
            // clients that open connections and go quiet cannot hold them forever; SDK streams send keepalives.
            HttpServer http = vertx.createHttpServer(new HttpServerOptions().setHost(config.host()).setPort(config.port())
                    .setMaxWebSocketFrameSize(16 * 1024 * 1024).setMaxWebSocketMessageSize(64 * 1024 * 1024)
                    .setIdleTimeout(IDLE_TIMEOUT_SECONDS));
            http.requestHandler(req -> {
                try {
                    String problem = RequestChecks.problem(req);
                    Gateway.Target target = problem == null ? gateway.target(req) : null;
                    if (problem == null && target == null) problem = RequestChecks.queryProblem(req);
                    if (problem != null) {
                        req.response().setStatusCode(400).putHeader("Content-Type", "application/json")
                                .end(new JsonObject().put("code", 400).put("message", problem).encode());
                    } else if (target != null) {
                        metrics.gatewayRequest(req);
                        gateway.handle(req, target);
                    } else {
                        router.handle(req);
                    }
                } catch (RuntimeException e) {
                    System.getLogger(CapsuleServer.class.getName()).log(System.Logger.Level.ERROR, "request failed", e);
                    if (!req.response().headWritten()) {
                        req.response().setStatusCode(500).putHeader("Content-Type", "application/json")
                                .end("{\"code\":500,\"message\":\"internal error; see the server log\"}");
                    }
                }
            });
            http.listen().toCompletionStage().toCompletableFuture().join();
            return new CapsuleServer(config, store, apiKeys, lifecycle, workers, vertx, gateway, http, initial, pool,
                    observability);
        } catch (RuntimeException e) {
            if (vertx != null) vertx.close();
            if (pool != null) pool.close();
            if (lifecycle != null) lifecycle.close();
            if (observability != null) observability.close();
            workers.shutdown();
            store.close();
            throw e;
        }
    }

    /**
     * The base template's warm pool on the template's driver, filling in the background; null when the configured
     * size is 0.
     */
    private static WarmPool warmPool(Config config, Store store, SandboxRuntime runtime) {
        if (config.warmPoolSize() == 0) return null;
        return store.findTemplate("base")
                .map(t -> new WarmPool(runtime.driver(t.runtime()),
                        List.of(new WarmPool.Target(t.id(), config.warmPoolSize(), t.resources()))))
                .orElse(null);
    }

    /**
     * The domain handed to SDKs in {@code Sandbox.domain}: the configured one, with the server's port appended when
     * it is not 80 and the domain names none, so that {@code getHost(port)} = {@code <port>-<id>.localhost:3000}
     * reaches this gateway with no DNS or proxy in front.
     */
    static String publicDomain(Config config) {
        String d = config.domain();
        if (d.contains(":") || config.port() == 80 || config.port() == 0) return d;
        return d + ":" + config.port();
    }

    /** The port actually listened on (useful with port 0). */
    public int port() {
        return http.actualPort();
    }

    public Config config() {
        return config;
    }

    public Store store() {
        return store;
    }

    public ApiKeys apiKeys() {
        return apiKeys;
    }

    public SandboxLifecycle lifecycle() {
        return lifecycle;
    }

    /** Events, webhooks, sandbox metrics and logs, the server's own metrics. */
    public Observability observability() {
        return observability;
    }

    /** The key created on this start when the store had none. */
    public Optional<ApiKeys.CreatedKey> initialKey() {
        return initialKey;
    }

    @Override
    public void close() {
        http.close().toCompletionStage().toCompletableFuture().join();
        gateway.close();
        vertx.close().toCompletionStage().toCompletableFuture().join();
        if (pool != null) pool.close();
        lifecycle.close();
        observability.close();
        workers.shutdown();
        store.close();
    }
}
