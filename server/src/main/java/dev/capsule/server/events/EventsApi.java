package dev.capsule.server.events;

import dev.capsule.server.api.Endpoints;
import dev.capsule.server.api.Endpoints.Reply;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import io.vertx.ext.web.Router;
import io.vertx.ext.web.RoutingContext;
import java.util.List;
import java.util.concurrent.ExecutorService;

/**
 * E2B's lifecycle events API and webhooks (E2B-PROTOCOL.md §7): {@code GET /events/sandboxes[/{id}]} with
 * {@code offset} (0), {@code limit} (10, 1..100), {@code orderAsc} (false) and repeatable {@code types};
 * {@code POST/GET /events/webhooks}, {@code GET/PATCH/DELETE /events/webhooks/{id}} and the delivery log
 * {@code GET /events/webhooks/{id}/deliveries} ({@code limit} 1..100, default 100). Mounted behind the API key.
 */
public final class EventsApi {

    private final SandboxEvents events;
    private final Webhooks webhooks;
    private final WebhookDispatcher dispatcher;
    private final ExecutorService workers;

    public EventsApi(SandboxEvents events, Webhooks webhooks, WebhookDispatcher dispatcher, ExecutorService workers) {
        this.events = events;
        this.webhooks = webhooks;
        this.dispatcher = dispatcher;
        this.workers = workers;
    }

    public void routes(Router r) {
        r.get("/events/sandboxes").handler(ctx -> list(ctx, null));
        r.get("/events/sandboxes/:id").handler(ctx -> list(ctx, ctx.pathParam("id")));
        r.post("/events/webhooks").handler(this::create);
        r.get("/events/webhooks").handler(ctx -> Endpoints.blocking(ctx, workers, () ->
                Reply.json(200, new JsonArray(webhooks.list().stream().map(Webhook::toJson).toList()))));
        r.get("/events/webhooks/:id").handler(ctx -> Endpoints.blocking(ctx, workers, () ->
                Reply.json(200, found(webhooks.find(ctx.pathParam("id")), ctx).toJson())));
        r.patch("/events/webhooks/:id").handler(this::update);
        r.delete("/events/webhooks/:id").handler(ctx -> Endpoints.blocking(ctx, workers, () ->
                Reply.json(200, found(webhooks.delete(ctx.pathParam("id")), ctx).toJson())));
        r.get("/events/webhooks/:id/deliveries").handler(this::deliveries);
    }

    private void list(RoutingContext ctx, String sandboxId) {
        Endpoints.blocking(ctx, workers, () -> {
            var q = Endpoints.query(ctx);
            int offset = (int) q.number("offset", 0, 0, Integer.MAX_VALUE);
            int limit = (int) q.number("limit", 10, 1, 100);
            boolean asc = q.bool("orderAsc", false);
            List<String> types = q.list("types");
            for (String type : types) {
                if (!SandboxEvents.TYPES.contains(type)) {
                    throw Endpoints.badRequest("'types' has unknown type '" + type + "'; known types: "
                            + String.join(", ", SandboxEvents.TYPES));
                }
            }
            return Reply.json(200, new JsonArray(events.page(sandboxId, types, asc, offset, limit).stream()
                    .map(SandboxEvent::toJson).toList()));
        });
    }

    private void create(RoutingContext ctx) {
        Endpoints.blocking(ctx, workers, () -> {
            JsonObject body = Endpoints.jsonObject(ctx);
            Webhook created = webhooks.create(change(body, true));
            dispatcher.wake();
            return Reply.json(201, created.toJson());
        });
    }

    private void update(RoutingContext ctx) {
        Endpoints.blocking(ctx, workers, () -> {
            JsonObject body = Endpoints.jsonObject(ctx);
            Webhook updated = found(webhooks.update(ctx.pathParam("id"), change(body, false)), ctx);
            dispatcher.wake(); // an enabled webhook may have pending deliveries again
            return Reply.json(200, updated.toJson());
        });
    }

    private void deliveries(RoutingContext ctx) {
        Endpoints.blocking(ctx, workers, () -> {
            int limit = (int) Endpoints.query(ctx).number("limit", Webhooks.DELIVERY_LOG_SIZE, 1, Webhooks.DELIVERY_LOG_SIZE);
            String id = ctx.pathParam("id");
            found(webhooks.find(id), ctx);
            return Reply.json(200, new JsonArray(webhooks.deliveries(id, limit).stream().map(Delivery::toJson).toList()));
        });
    }

    private static Webhook found(java.util.Optional<Webhook> webhook, RoutingContext ctx) {
        return webhook.orElseThrow(() -> Endpoints.notFound("webhook '" + ctx.pathParam("id")
                + "' not found; list them with GET /events/webhooks"));
    }

    /** The fields of a create ({@code required}: name, url, events, signatureSecret) or a PATCH body. */
    private static Webhooks.Change change(JsonObject body, boolean required) {
        try {
            String name = string(body, "name");
            String url = string(body, "url");
            String secret = string(body, "signatureSecret");
            Object enabled = body.getValue("enabled");
            if (enabled != null && !(enabled instanceof Boolean)) throw new IllegalArgumentException("'enabled' must be true or false");
            List<String> types = null;
            Object events = body.getValue("events");
            if (events != null) {
                if (!(events instanceof JsonArray a) || !a.stream().allMatch(String.class::isInstance)) {
                    throw new IllegalArgumentException("'events' must be an array of event types, e.g. [\"" + SandboxEvents.CREATED + "\"]");
                }
                types = a.stream().map(String.class::cast).toList();
            }
            if (required) {
                for (var field : List.of("name", "url", "events", "signatureSecret")) {
                    if (body.getValue(field) == null) throw new IllegalArgumentException("'" + field + "' is required");
                }
            }
            return new Webhooks.Change(name, url, (Boolean) enabled, types, secret);
        } catch (IllegalArgumentException e) {
            throw Endpoints.badRequest(e.getMessage());
        }
    }

    private static String string(JsonObject body, String field) {
        Object v = body.getValue(field);
        if (v != null && !(v instanceof String)) throw new IllegalArgumentException("'" + field + "' must be a string");
        return (String) v;
    }
}
