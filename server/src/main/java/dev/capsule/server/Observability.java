package dev.capsule.server;

import dev.capsule.runtime.SandboxRuntime;
import dev.capsule.server.auth.ApiKeys;
import dev.capsule.server.config.ObservabilityConfig;
import dev.capsule.server.events.EventsApi;
import dev.capsule.server.events.SandboxEvents;
import dev.capsule.server.events.WebhookDispatcher;
import dev.capsule.server.events.Webhooks;
import dev.capsule.server.logs.LogsApi;
import dev.capsule.server.logs.SandboxLogs;
import dev.capsule.server.metrics.MetricsApi;
import dev.capsule.server.metrics.MetricsSampler;
import dev.capsule.server.metrics.ServerMetrics;
import dev.capsule.server.store.SecretBox;
import dev.capsule.server.store.Store;
import io.vertx.core.Vertx;
import io.vertx.ext.web.Router;
import java.time.Clock;
import java.time.Duration;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Everything that watches sandboxes and the server, wired together: lifecycle events and webhooks
 * ({@code server/events}), the metrics sampler and the server's Prometheus metrics ({@code server/metrics}), and
 * sandbox logs ({@code server/logs}). One timer thread schedules the periodic work — sampling, copying consoles,
 * pruning past the retention windows — and each run happens on a virtual thread, skipped when the previous run of
 * the same job has not finished (a slow store never piles passes up). None of it holds a lifecycle lock.
 */
public final class Observability implements AutoCloseable {

    /** How often what is past its retention is deleted. */
    private static final Duration PRUNE_EVERY = Duration.ofMinutes(10);
    private static final System.Logger LOG = System.getLogger(Observability.class.getName());

    private final ObservabilityConfig config;
    private final ExecutorService workers;
    private final SandboxEvents events;
    private final Webhooks webhooks;
    private final WebhookDispatcher dispatcher;
    private final SandboxLogs logs;
    private final MetricsSampler sampler;
    private final ServerMetrics metrics;
    private final Clock clock;
    private final ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor(
            Thread.ofPlatform().daemon().name("capsule-observability").factory());
    private final ExecutorService jobs = Executors.newVirtualThreadPerTaskExecutor();

    public Observability(ObservabilityConfig config, Store store, SecretBox secrets, SandboxRuntime runtime,
                         ApiKeys apiKeys, ExecutorService workers, Clock clock) {
        this.config = config;
        this.workers = workers;
        this.clock = clock;
        this.events = new SandboxEvents(store, clock);
        this.webhooks = new Webhooks(store, secrets, clock);
        this.dispatcher = new WebhookDispatcher(store, events, webhooks, clock);
        this.logs = new SandboxLogs(store, runtime, clock);
        this.sampler = new MetricsSampler(store, runtime, clock);
        this.metrics = new ServerMetrics(store, apiKeys, workers, config.metricsEndpoint());
        events.onRecorded(e -> {
            if (e.type().equals(SandboxEvents.CREATED) || e.type().equals(SandboxEvents.RESUMED)) {
                jobs.execute(() -> sampler.prime(e.sandboxId()));
            }
        });
        events.onBeforeDestroy(logs::beforeDestroy);
        events.onTransition(metrics::transition);
        dispatcher.onOutcome(metrics::webhookOutcome);
    }

    /** Starts delivering webhooks (what a previous run left pending first) and the periodic jobs. */
    public void start() {
        dispatcher.start();
        long interval = config.metricsInterval().toMillis();
        every("sampling sandbox metrics", interval, () -> {
            long began = System.nanoTime();
            sampler.sampleRunning();
            metrics.samplerPass(Duration.ofNanos(System.nanoTime() - began));
        });
        every("copying sandbox consoles", interval, logs::collectRunning);
        every("pruning past the retention", PRUNE_EVERY.toMillis(), () -> {
            int e = events.prune(config.eventsRetention());
            int m = sampler.prune(config.metricsRetention());
            int l = logs.prune(config.logsRetention());
            if (e + m + l > 0) {
                LOG.log(System.Logger.Level.INFO, "pruned " + e + " events, " + m + " metric samples and " + l
                        + " log lines past their retention");
            }
        });
    }

    private void every(String what, long periodMillis, Runnable job) {
        AtomicBoolean running = new AtomicBoolean();
        timer.scheduleAtFixedRate(() -> {
            if (!running.compareAndSet(false, true)) return; // the previous run is still going
            jobs.execute(() -> {
                try {
                    job.run();
                } catch (RuntimeException e) {
                    LOG.log(System.Logger.Level.WARNING, what + " failed; trying again next time", e);
                } finally {
                    running.set(false);
                }
            });
        }, periodMillis, periodMillis, TimeUnit.MILLISECONDS);
    }

    /** The endpoints, mounted behind the API key by {@code SandboxApi.with}. */
    public void routes(Router r) {
        new MetricsApi(sampler, events, workers, clock).routes(r);
        new LogsApi(logs, events, workers, clock).routes(r);
        new EventsApi(events, webhooks, dispatcher, workers).routes(r);
    }

    /** The API's root router: request metrics and {@code GET /metrics} in front of {@code api}. */
    public Router router(Vertx vertx, Router api) {
        return metrics.router(vertx, api);
    }

    public SandboxEvents events() {
        return events;
    }

    public Webhooks webhooks() {
        return webhooks;
    }

    public SandboxLogs logs() {
        return logs;
    }

    public MetricsSampler sampler() {
        return sampler;
    }

    public ServerMetrics metrics() {
        return metrics;
    }

    /** Stops the jobs and deliveries; what is pending stays in the store for the next start. */
    @Override
    public void close() {
        timer.shutdownNow();
        dispatcher.close();
        jobs.shutdownNow();
    }
}
