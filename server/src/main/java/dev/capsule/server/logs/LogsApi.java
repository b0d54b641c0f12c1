package dev.capsule.server.logs;

import dev.capsule.server.api.Endpoints;
import dev.capsule.server.api.Endpoints.Reply;
import dev.capsule.server.events.SandboxEvents;
import dev.capsule.server.lifecycle.LifecycleException.SandboxNotFound;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import io.vertx.ext.web.Router;
import io.vertx.ext.web.RoutingContext;
import java.time.Clock;
import java.util.Locale;
import java.util.concurrent.ExecutorService;

/**
 * A sandbox's log (E2B-PROTOCOL.md §1.3), also after a kill within the logs retention:
 * {@code GET /sandboxes/{id}/logs} ({@code start} ms, {@code limit} 1..1000) →
 * {@code {logs: [{timestamp, line}], logEntries: [{timestamp, level, message, fields}]}}, oldest first, and
 * {@code GET /v2/sandboxes/{id}/logs} ({@code cursor} ms, {@code limit} 1..1000, {@code direction}
 * forward|backward, {@code level} as a minimum, {@code search}) → {@code {logs: [...]}}.
 */
public final class LogsApi {

    public static final int MAX_LIMIT = 1000;

    private final SandboxLogs logs;
    private final SandboxEvents events;
    private final ExecutorService workers;
    private final Clock clock;

    public LogsApi(SandboxLogs logs, SandboxEvents events, ExecutorService workers, Clock clock) {
        this.logs = logs;
        this.events = events;
        this.workers = workers;
        this.clock = clock;
    }

    public void routes(Router r) {
        r.get("/sandboxes/:id/logs").handler(this::v1);
        r.get("/v2/sandboxes/:id/logs").handler(this::v2);
    }

    private void v1(RoutingContext ctx) {
        Endpoints.blocking(ctx, workers, () -> {
            var q = Endpoints.query(ctx);
            long start = q.number("start", 0, 0, Long.MAX_VALUE);
            int limit = (int) q.number("limit", MAX_LIMIT, 1, MAX_LIMIT);
            String id = known(ctx);
            var lines = logs.page(id, start, true, limit, null, null);
            return Reply.json(200, new JsonObject()
                    .put("logs", new JsonArray(lines.stream().map(l -> new JsonObject()
                            .put("timestamp", l.timestamp().toString()).put("line", l.message())).toList()))
                    .put("logEntries", new JsonArray(lines.stream().map(SandboxLogs.Line::toJson).toList())));
        });
    }

    private void v2(RoutingContext ctx) {
        Endpoints.blocking(ctx, workers, () -> {
            var q = Endpoints.query(ctx);
            String direction = q.text("direction") == null ? "forward" : q.text("direction").toLowerCase(Locale.ROOT);
            if (!direction.equals("forward") && !direction.equals("backward")) {
                throw Endpoints.badRequest("'direction' must be forward or backward, got '" + q.text("direction") + "'");
            }
            boolean forward = direction.equals("forward");
            long cursor = q.number("cursor", forward ? 0 : clock.millis(), 0, Long.MAX_VALUE);
            int limit = (int) q.number("limit", MAX_LIMIT, 1, MAX_LIMIT);
            String level = q.text("level") == null ? null : q.text("level").toLowerCase(Locale.ROOT);
            if (level != null && !SandboxLogs.LEVELS.contains(level)) {
                throw Endpoints.badRequest("'level' must be one of " + String.join(", ", SandboxLogs.LEVELS)
                        + ", got '" + q.text("level") + "'");
            }
            String search = q.text("search");
            if (search != null && search.length() > 256) throw Endpoints.badRequest("'search' is longer than 256 characters");
            String id = known(ctx);
            return Reply.json(200, new JsonObject().put("logs", new JsonArray(logs.page(id, cursor, forward, limit, level, search)
                    .stream().map(SandboxLogs.Line::toJson).toList())));
        });
    }

    /** The path's sandbox id, or 404 when this server has no record of it. */
    private String known(RoutingContext ctx) {
        String id = ctx.pathParam("id");
        if (!events.known(id)) throw new SandboxNotFound(id);
        return id;
    }
}
