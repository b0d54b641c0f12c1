package dev.capsule.server.api;

import dev.capsule.runtime.SandboxIds;
import dev.capsule.server.lifecycle.LifecycleException;
import dev.capsule.server.logging.LogContext;
import io.vertx.core.Context;
import io.vertx.core.MultiMap;
import io.vertx.core.Vertx;
import io.vertx.core.json.DecodeException;
import io.vertx.core.json.Json;
import io.vertx.core.json.JsonObject;
import io.vertx.ext.web.RoutingContext;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ExecutorService;
import java.util.function.Supplier;

/**
 * The plumbing that endpoint classes outside {@link SandboxApi} (events, webhooks, metrics, logs) share with it:
 * blocking work on virtual threads answered on the request's context, errors as E2B's {@code {code, message}}
 * mapped once here ({@link LifecycleException} kinds as {@link SandboxApi} maps them, {@link #badRequest} and
 * {@link #notFound}), and typed reads of query parameters that fail with a 400 naming the parameter.
 */
public final class Endpoints {

    private static final System.Logger LOG = System.getLogger(Endpoints.class.getName());

    private Endpoints() {}

    /** A response: status and JSON body (a JsonObject, JsonArray, or null for none). */
    public record Reply(int status, Object body) {
        public static Reply json(int status, Object body) {
            return new Reply(status, body);
        }

        public static Reply empty(int status) {
            return new Reply(status, null);
        }
    }

    /** A 400 whose message says what was wrong and what to send instead. */
    public static RuntimeException badRequest(String message) {
        return new ApiError(400, message);
    }

    /** A 404 for something other than a sandbox (a webhook...); sandboxes use {@link LifecycleException.SandboxNotFound}. */
    public static RuntimeException notFound(String message) {
        return new ApiError(404, message);
    }

    /**
     * Runs {@code work} on a virtual thread and answers with its reply on the request's context; errors become
     * {@code {code, message}}. Validation that needs no I/O may throw here already, on the event loop, as well.
     */
    public static void blocking(RoutingContext ctx, ExecutorService workers, Supplier<Reply> work) {
        Context vc = Vertx.currentContext();
        String id = ctx.pathParam("id");
        String sandbox = SandboxIds.isValid(id) ? id : null;
        workers.execute(() -> {
            Reply reply;
            try {
                // lines logged for a request about one sandbox carry its id
                reply = sandbox == null ? work.get() : LogContext.forSandbox(sandbox, work);
            } catch (LifecycleException e) {
                reply = error(SandboxApi.statusOf(e), e.getMessage());
            } catch (ApiError e) {
                reply = error(e.status, e.getMessage());
            } catch (Exception | Error e) {
                LOG.log(System.Logger.Level.ERROR, "request " + ctx.request().method() + " " + ctx.request().path() + " failed", e);
                reply = error(500, "internal error (" + e.getClass().getSimpleName() + "); see the server log");
            }
            Reply r = reply;
            vc.runOnContext(v -> send(ctx, r));
        });
    }

    public static Reply error(int status, String message) {
        return new Reply(status, new JsonObject().put("code", status).put("message", message));
    }

    public static void send(RoutingContext ctx, Reply reply) {
        var response = ctx.response();
        if (response.ended()) return;
        response.setStatusCode(reply.status());
        if (reply.body() == null) {
            response.end();
        } else {
            response.putHeader("Content-Type", "application/json").end(reply.body().toString());
        }
    }

    /** The request body as a JSON object; {@link #badRequest} when it is missing or not an object. */
    public static JsonObject jsonObject(RoutingContext ctx) {
        var body = ctx.body() == null ? null : ctx.body().buffer();
        if (body == null || body.length() == 0) {
            throw badRequest("request body is missing; send a JSON object with Content-Type: application/json");
        }
        Object value;
        try {
            value = Json.decodeValue(body);
        } catch (DecodeException e) {
            throw badRequest("request body is not valid JSON (" + e.getMessage().lines().findFirst().orElse("")
                    + "); send a JSON object with Content-Type: application/json");
        }
        if (value instanceof JsonObject o) return o;
        throw badRequest("request body must be a JSON object ({...})");
    }

    /** Typed reads of a request's query parameters. */
    public static Query query(RoutingContext ctx) {
        return new Query(ctx.queryParams());
    }

    public record Query(MultiMap params) {

        /** The parameter's value, or null when absent or empty. */
        public String text(String name) {
            String v = params.get(name);
            return v == null || v.isEmpty() ? null : v;
        }

        /** A whole number in [min, max], or {@code fallback} when absent. */
        public long number(String name, long fallback, long min, long max) {
            String v = text(name);
            if (v == null) return fallback;
            long n;
            try {
                n = Long.parseLong(v.strip());
            } catch (NumberFormatException e) {
                throw badRequest("'" + name + "' must be a whole number, got '" + v + "'");
            }
            if (n < min || n > max) {
                throw badRequest("'" + name + "' must be between " + min + " and " + max + ", got " + n);
            }
            return n;
        }

        /** true or false, or {@code fallback} when absent. */
        public boolean bool(String name, boolean fallback) {
            String v = text(name);
            if (v == null) return fallback;
            return switch (v.strip().toLowerCase(Locale.ROOT)) {
                case "true" -> true;
                case "false" -> false;
                default -> throw badRequest("'" + name + "' must be true or false, got '" + v + "'");
            };
        }

        /** Every value of a repeatable parameter, comma-separated lists split, empty entries dropped. */
        public List<String> list(String name) {
            var out = new ArrayList<String>();
            for (String v : params.getAll(name)) {
                for (String part : v.split(",")) {
                    if (!part.isBlank()) out.add(part.strip());
                }
            }
            return out;
        }
    }
}
