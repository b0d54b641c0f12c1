package dev.capsule.server.metrics;

import dev.capsule.runtime.pool.WarmPool;
import dev.capsule.server.auth.ApiKeys;
import dev.capsule.server.events.WebhookDispatcher;
import dev.capsule.server.store.Store;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.Timer;
import io.micrometer.core.instrument.binder.jvm.JvmMemoryMetrics;
import io.micrometer.core.instrument.binder.jvm.JvmThreadMetrics;
import io.micrometer.core.instrument.binder.system.ProcessorMetrics;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.vertx.core.Context;
import io.vertx.core.Vertx;
import io.vertx.core.http.HttpMethod;
import io.vertx.core.http.HttpServerRequest;
import io.vertx.ext.web.Route;
import io.vertx.ext.web.Router;
import io.vertx.ext.web.RoutingContext;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Pattern;

/**
 * The server's own metrics in Prometheus' text format at {@code GET /metrics}: API requests by method, route
 * template and status (count and latency), gateway requests, sandboxes by state, create/pause/resume durations,
 * warm-pool hits and misses, webhook delivery outcomes, sampler passes, and the JVM's memory, threads and CPU.
 * Labels never carry a sandbox id or a raw path, so their number stays bounded.
 *
 * <p>{@code /metrics} is on the API's port; the gateway only takes requests that name a sandbox (an
 * {@code E2b-Sandbox-Id} header or a {@code <port>-<id>.<domain>} host), so a scrape of {@code host:3000/metrics}
 * is never sandbox traffic (envd's own {@code /metrics} is reached only through those). Access is the
 * {@code metrics_endpoint} setting: {@code public} (default: scrapers rarely hold API keys, and nothing here names
 * a sandbox or a key), {@code key} (an API key as {@code X-API-Key} or {@code Authorization: Bearer}) or
 * {@code off}.
 */
public final class ServerMetrics {

    public static final String CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";
    private static final System.Logger LOG = System.getLogger(ServerMetrics.class.getName());

    private final PrometheusMeterRegistry registry = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
    private final Store store;
    private final ApiKeys apiKeys;
    private final ExecutorService workers;
    private final String access;
    private final Map<String, AtomicLong> sandboxesByState = new ConcurrentHashMap<>();
    private final Timer samplerPasses;
    private volatile List<Template> templates = List.of();

    /** A route's method set and path pattern, and its template as the label shows it. */
    private record Template(Set<HttpMethod> methods, Pattern path, String label) {}

    public ServerMetrics(Store store, ApiKeys apiKeys, ExecutorService workers, String access) {
        this.store = store;
        this.apiKeys = apiKeys;
        this.workers = workers;
        this.access = access;
        new JvmMemoryMetrics().bindTo(registry);
        new JvmThreadMetrics().bindTo(registry);
        new ProcessorMetrics().bindTo(registry);
        for (String state : List.of("creating", "running", "paused")) {
            AtomicLong count = new AtomicLong();
            sandboxesByState.put(state, count);
            Gauge.builder("capsule.sandboxes", count, AtomicLong::get).tag("state", state)
                    .description("sandboxes by state, counted at each scrape").register(registry);
        }
        samplerPasses = Timer.builder("capsule.metrics.sampler.pass")
                .description("one pass of the sandbox metrics sampler over every running sandbox").register(registry);
    }

    public PrometheusMeterRegistry registry() {
        return registry;
    }

    /**
     * The API's root router: times every request by route template, serves {@code GET /metrics}, and hands the
     * rest to {@code api} (whose routes give the templates).
     */
    public Router router(Vertx vertx, Router api) {
        Router root = Router.router(vertx);
        root.route().handler(ctx -> {
            long start = System.nanoTime();
            ctx.addEndHandler(v -> record(ctx.request(), label(ctx.request()), ctx.response().getStatusCode(), start));
            ctx.next();
        });
        if (!access.equals("off")) root.get("/metrics").handler(this::scrape);
        root.route("/*").subRouter(api);
        List<Template> found = new ArrayList<>();
        if (!access.equals("off")) found.add(template(Set.of(HttpMethod.GET), "/metrics"));
        for (Route route : api.getRoutes()) {
            if (route.getPath() != null) found.add(template(route.methods(), route.getPath()));
        }
        templates = List.copyOf(found);
        return root;
    }

    private static Template template(Set<HttpMethod> methods, String path) {
        String regex = Pattern.quote(path).replaceAll(":[A-Za-z0-9_]+", "\\\\E[^/]+\\\\Q");
        return new Template(methods == null ? Set.of() : Set.copyOf(methods), Pattern.compile(regex + "/?"), path);
    }

    private String label(HttpServerRequest req) {
        for (Template t : templates) {
            if ((t.methods().isEmpty() || t.methods().contains(req.method())) && t.path().matcher(req.path()).matches()) {
                return t.label();
            }
        }
        return "unmatched";
    }

    /** Records one request: API requests under their route template, gateway traffic as {@code gateway}. */
    public void record(HttpServerRequest req, String route, int status, long startNanos) {
        Timer.builder("capsule.http.requests").description("HTTP requests to the API and the gateway")
                .tag("method", req.method().name()).tag("route", route).tag("status", String.valueOf(status))
                .register(registry).record(System.nanoTime() - startNanos, TimeUnit.NANOSECONDS);
    }

    /** Times gateway requests: call when the gateway takes one. */
    public void gatewayRequest(HttpServerRequest req) {
        long start = System.nanoTime();
        req.response().endHandler(v -> record(req, "gateway", req.response().getStatusCode(), start));
    }

    /** A lifecycle transition's duration ({@code create}, {@code pause}, {@code resume}). */
    public void transition(String name, Duration took) {
        Timer.builder("capsule.sandbox.transition").description("successful sandbox transitions, end to end")
                .tag("transition", name).register(registry).record(took);
    }

    public void samplerPass(Duration took) {
        samplerPasses.record(took);
    }

    public void webhookOutcome(WebhookDispatcher.Outcome outcome) {
        Counter.builder("capsule.webhook.deliveries").description("webhook delivery attempts by outcome: delivered,"
                        + " retry (refused, retried later), failed (given up)")
                .tag("outcome", outcome.name().toLowerCase(Locale.ROOT)).register(registry).increment();
    }

    /** Warm-pool takes (hits, misses) and idle sandboxes of the base template. */
    public void warmPool(WarmPool pool, String templateId) {
        FunctionCounter.builder("capsule.warm_pool.takes", pool, WarmPool::hits).tag("result", "hit")
                .description("creates that took a started sandbox from the warm pool").register(registry);
        FunctionCounter.builder("capsule.warm_pool.takes", pool, WarmPool::misses).tag("result", "miss")
                .description("creates that found the warm pool empty").register(registry);
        Gauge.builder("capsule.warm_pool.idle", pool, p -> p.idle(templateId)).tag("template", templateId)
                .description("started sandboxes waiting in the warm pool").register(registry);
    }

    private void scrape(RoutingContext ctx) {
        Context vc = Vertx.currentContext();
        workers.execute(() -> {
            int status = 200;
            String body;
            try {
                if (access.equals("key") && !authorised(ctx.request())) {
                    status = 401;
                    body = "an API key is required for /metrics (metrics_endpoint = key): send it as X-API-Key or"
                            + " Authorization: Bearer <key>\n";
                } else {
                    countSandboxes();
                    body = registry.scrape();
                }
            } catch (RuntimeException e) {
                LOG.log(System.Logger.Level.ERROR, "rendering /metrics failed", e);
                status = 500;
                body = "rendering the metrics failed; see the server log\n";
            }
            int s = status;
            String b = body;
            vc.runOnContext(v -> ctx.response().setStatusCode(s)
                    .putHeader("Content-Type", s == 200 ? CONTENT_TYPE : "text/plain; charset=utf-8").end(b));
        });
    }

    private boolean authorised(HttpServerRequest req) {
        String key = req.getHeader("X-API-Key");
        String auth = req.getHeader("Authorization");
        if ((key == null || key.isBlank()) && auth != null && auth.regionMatches(true, 0, "Bearer ", 0, 7)) {
            key = auth.substring(7);
        }
        return key != null && !key.isBlank() && apiKeys.authenticate(key.strip()).isPresent();
    }

    private void countSandboxes() {
        Map<String, Long> counts = store.read(h -> {
            Map<String, Long> m = new java.util.HashMap<>();
            h.createQuery("SELECT state, COUNT(*) FROM sandboxes GROUP BY state")
                    .map((rs, c) -> Map.entry(rs.getString(1), rs.getLong(2))).forEach(e -> m.put(e.getKey(), e.getValue()));
            return m;
        });
        sandboxesByState.forEach((state, count) -> count.set(counts.getOrDefault(state, 0L)));
    }
}
