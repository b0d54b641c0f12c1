package dev.capsule.server.metrics;

import dev.capsule.server.api.Endpoints;
import dev.capsule.server.api.Endpoints.Reply;
import dev.capsule.server.events.SandboxEvents;
import dev.capsule.server.lifecycle.LifecycleException.SandboxNotFound;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import io.vertx.ext.web.Router;
import io.vertx.ext.web.RoutingContext;
import java.time.Clock;
import java.time.Instant;
import java.util.List;
import java.util.concurrent.ExecutorService;

/**
 * Sandbox metrics (E2B-PROTOCOL.md §1.3): {@code GET /sandboxes/{id}/metrics?start=&end=} (unix seconds, both
 * optional and inclusive; default everything kept up to now) → {@code SandboxMetric[]} oldest first, also for a
 * killed sandbox within the metrics retention; {@code GET /sandboxes/metrics?sandbox_ids=a,b} (1..100 ids) →
 * {@code {sandboxes: {id: SandboxMetric}}} with the newest sample of each id that has one.
 */
public final class MetricsApi {

    private static final int MAX_IDS = 100;

    private final MetricsSampler sampler;
    private final SandboxEvents events;
    private final ExecutorService workers;
    private final Clock clock;

    public MetricsApi(MetricsSampler sampler, SandboxEvents events, ExecutorService workers, Clock clock) {
        this.sampler = sampler;
        this.events = events;
        this.workers = workers;
        this.clock = clock;
    }

    public void routes(Router r) {
        r.get("/sandboxes/metrics").handler(this::latest);
        r.get("/sandboxes/:id/metrics").handler(this::series);
    }

    private void series(RoutingContext ctx) {
        Endpoints.blocking(ctx, workers, () -> {
            var q = Endpoints.query(ctx);
            long now = clock.millis() / 1000;
            long start = q.number("start", 0, 0, Long.MAX_VALUE / 1000);
            long end = q.number("end", Math.max(now, start), 0, Long.MAX_VALUE / 1000);
            if (start > end) {
                throw Endpoints.badRequest("'start' (" + start + ") is after 'end' (" + end + "); both are unix seconds");
            }
            String id = ctx.pathParam("id");
            if (!events.known(id)) throw new SandboxNotFound(id);
            // end is inclusive in whole seconds: a sample at end + 0.5 s belongs to it
            return Reply.json(200, new JsonArray(sampler.series(id, Instant.ofEpochSecond(start),
                    Instant.ofEpochSecond(end).plusMillis(999)).stream().map(SandboxMetric::toJson).toList()));
        });
    }

    private void latest(RoutingContext ctx) {
        Endpoints.blocking(ctx, workers, () -> {
            List<String> ids = Endpoints.query(ctx).list("sandbox_ids");
            if (ids.isEmpty()) {
                throw Endpoints.badRequest("'sandbox_ids' is required: a comma-separated list of sandbox ids, e.g. sandbox_ids=a,b");
            }
            if (ids.size() > MAX_IDS) {
                throw Endpoints.badRequest("'sandbox_ids' lists " + ids.size() + " ids; ask for at most " + MAX_IDS + " at once");
            }
            var sandboxes = new JsonObject();
            sampler.latest(ids.stream().distinct().toList()).forEach((id, m) -> sandboxes.put(id, m.toJson()));
            return Reply.json(200, new JsonObject().put("sandboxes", sandboxes));
        });
    }
}
