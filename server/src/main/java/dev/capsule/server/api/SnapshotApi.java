package dev.capsule.server.api;

import dev.capsule.server.lifecycle.SandboxLifecycle;
import dev.capsule.server.ratelimit.RateLimited;
import dev.capsule.server.ratelimit.RateLimiter;
import dev.capsule.server.store.ApiKeyRecord;
import dev.capsule.server.store.SnapshotRecord;
import io.vertx.core.MultiMap;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import io.vertx.ext.web.Router;
import io.vertx.ext.web.RoutingContext;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * E2B's snapshot and fork endpoints (E2B-PROTOCOL.md §1.3, §6): {@code POST /sandboxes/{id}/snapshots},
 * {@code GET /snapshots}, {@code DELETE /templates/{snapshotID}} and {@code POST /sandboxes/{id}/fork}, on the
 * same router, auth and error handling as {@link SandboxApi}.
 */
final class SnapshotApi {

    private final SandboxApi api;
    private final SandboxLifecycle lifecycle;
    private final RateLimiter limits;
    private final String domain;

    SnapshotApi(SandboxApi api, SandboxLifecycle lifecycle, RateLimiter limits, String domain) {
        this.api = api;
        this.lifecycle = lifecycle;
        this.limits = limits;
        this.domain = domain;
    }

    void routes(Router r) {
        r.post("/sandboxes/:id/snapshots").handler(this::create);
        r.get("/snapshots").handler(this::list);
        // The SDK encodes the whole snapshot id into one segment ('/' as %2F, ':' as %3A); the router decodes it.
        r.delete("/templates/:templateID").handler(ctx -> api.run(ctx, () -> {
            lifecycle.deleteSnapshot(ctx.pathParam("templateID"));
            return SandboxApi.Reply.empty(204);
        }));
        r.post("/sandboxes/:id/fork").handler(this::fork);
    }

    /** E2B's {@code SnapshotInfo}: {@code {snapshotID, names}}. */
    static JsonObject info(SnapshotRecord s) {
        return new JsonObject().put("snapshotID", s.snapshotId()).put("names", new JsonArray(s.names()));
    }

    private void create(RoutingContext ctx) {
        JsonObject body = api.jsonBody(ctx, false);
        if (body == null) return;
        String name;
        try {
            Object v = body.getValue("name");
            if (v != null && !(v instanceof String)) throw Bodies.bad("'name' must be a string, e.g. {\"name\": \"my-snapshot\"}");
            name = v == null || ((String) v).isEmpty() ? null : (String) v;
        } catch (ApiError e) {
            SandboxApi.send(ctx, SandboxApi.Reply.error(e.status, e.getMessage()));
            return;
        }
        api.run(ctx, () -> SandboxApi.Reply.json(201, info(lifecycle.snapshot(ctx.pathParam("id"), name))));
    }

    private void list(RoutingContext ctx) {
        MultiMap q = ctx.queryParams();
        String sandboxId = emptyToNull(q.get("sandboxID"));
        String name = emptyToNull(q.get("name"));
        int limit;
        dev.capsule.server.store.SandboxQuery.Cursor after;
        try {
            limit = SandboxApi.pageLimit(q);
            after = SandboxApi.nextToken(q);
        } catch (ApiError e) {
            SandboxApi.send(ctx, SandboxApi.Reply.error(e.status, e.getMessage()));
            return;
        }
        api.run(ctx, () -> {
            SnapshotRecord.Page page = lifecycle.listSnapshots(sandboxId, name, after, limit);
            Map<String, String> headers = new LinkedHashMap<>();
            if (page.next() != null) headers.put("X-Next-Token", page.next().encode());
            return new SandboxApi.Reply(200, new JsonArray(page.items().stream().map(SnapshotApi::info).toList()), headers);
        });
    }

    private void fork(RoutingContext ctx) {
        JsonObject body = api.jsonBody(ctx, false);
        if (body == null) return;
        Duration timeout;
        int count;
        try {
            Long seconds = Bodies.optionalInteger(body, "timeout");
            Long n = Bodies.optionalInteger(body, "count");
            if (n != null && (n < 1 || n > SandboxLifecycle.MAX_FORKS)) {
                throw Bodies.bad("'count' must be between 1 and " + SandboxLifecycle.MAX_FORKS + ", got " + n);
            }
            timeout = seconds == null ? null : Duration.ofSeconds(seconds);
            count = n == null ? 1 : n.intValue();
        } catch (ApiError e) {
            SandboxApi.send(ctx, SandboxApi.Reply.error(e.status, e.getMessage()));
            return;
        }
        ApiKeyRecord key = SandboxApi.apiKey(ctx);
        api.run(ctx, () -> {
            // Each fork is a create of the caller's key: the forks its limits admit start, the rest are reported
            // as 429s in their places; when none is admitted the request itself is refused (with Retry-After).
            List<RateLimiter.Reservation> admitted = new ArrayList<>();
            RateLimited refused = null;
            try {
                try {
                    while (admitted.size() < count) admitted.add(limits.admitCreate(key));
                } catch (RateLimited e) {
                    if (admitted.isEmpty()) throw e;
                    refused = e;
                }
                var results = new JsonArray();
                for (var fork : lifecycle.fork(ctx.pathParam("id"), timeout, admitted.size(), key.id())) {
                    results.add(fork.sandbox() != null
                            ? new JsonObject().put("sandbox", SandboxJson.sandbox(fork.sandbox(), domain))
                            : error(SandboxApi.statusOf(fork.error()), fork.error().getMessage()));
                }
                for (int i = admitted.size(); i < count; i++) results.add(error(429, refused.getMessage()));
                return new SandboxApi.Reply(201, results, Map.of());
            } finally {
                admitted.forEach(RateLimiter.Reservation::close);
            }
        });
    }

    private static JsonObject error(int code, String message) {
        return new JsonObject().put("error", new JsonObject().put("code", code).put("message", message));
    }

    private static String emptyToNull(String s) {
        return s == null || s.isEmpty() ? null : s;
    }
}
