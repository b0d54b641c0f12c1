package dev.capsule.server.api;

import dev.capsule.runtime.NetworkPolicy;
import dev.capsule.server.auth.ApiKeys;
import dev.capsule.server.lifecycle.CreateRequest;
import dev.capsule.server.lifecycle.LifecycleException;
import dev.capsule.server.lifecycle.SandboxLifecycle;
import dev.capsule.server.ratelimit.RateLimited;
import dev.capsule.server.ratelimit.RateLimiter;
import dev.capsule.server.store.ApiKeyRecord;
import dev.capsule.server.store.SandboxQuery;
import dev.capsule.server.store.SandboxRecord;
import dev.capsule.server.store.SandboxState;
import io.vertx.core.Context;
import io.vertx.core.MultiMap;
import io.vertx.core.Vertx;
import io.vertx.core.json.DecodeException;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import io.vertx.ext.web.Router;
import io.vertx.ext.web.RoutingContext;
import io.vertx.ext.web.handler.BodyHandler;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;

/**
 * E2B's REST API for sandboxes (E2B-PROTOCOL.md §1) on a Vert.x Router. Handlers parse and validate on the event
 * loop, run the lifecycle on virtual threads, and answer every error as {@code {"code": <status>, "message"}} —
 * the SDKs branch on that {@code code}.
 */
public final class SandboxApi {

    /** Request bodies above this are refused with 413: create bodies are small JSON. */
    public static final long MAX_BODY_BYTES = 1024 * 1024;
    private static final System.Logger LOG = System.getLogger(SandboxApi.class.getName());

    /** Where {@link #authenticate} leaves the caller's {@link ApiKeyRecord} for the handlers. */
    private static final String API_KEY = "capsule.apiKey";

    private final SandboxLifecycle lifecycle;
    private final ApiKeys apiKeys;
    private final RateLimiter limits;
    private final ExecutorService workers;
    private final String domain;
    private final List<java.util.function.Consumer<Router>> extensions = new ArrayList<>();

    public SandboxApi(SandboxLifecycle lifecycle, ApiKeys apiKeys, RateLimiter limits, ExecutorService workers, String domain) {
        this.lifecycle = lifecycle;
        this.apiKeys = apiKeys;
        this.limits = limits;
        this.workers = workers;
        this.domain = domain;
    }

    /**
     * Adds endpoints from another class (events, metrics, logs...): they are served behind the same body limit
     * and API-key check, ahead of this class's own routes (so {@code /sandboxes/metrics} is not read as a sandbox
     * id) and of the 404 fallback.
     */
    public SandboxApi with(java.util.function.Consumer<Router> routes) {
        extensions.add(routes);
        return this;
    }

    public Router router(Vertx vertx) {
        Router r = Router.router(vertx);
        // E2B's /health is a bodiless 204; the header says how pause keeps memory on this host (e.g. "freeze":
        // frozen in RAM, no CRIU checkpoint), and /health/details says it with the reason, as JSON.
        r.get("/health").handler(ctx -> ctx.response().setStatusCode(204)
                .putHeader("Capsule-Pause-Mode", lifecycle.pauseMode()).end());
        r.get("/health/details").handler(ctx -> send(ctx, Reply.json(200, new JsonObject().put("status", "ok")
                .put("runtime", lifecycle.runtimeName()).put("pauseMode", lifecycle.pauseMode())
                .put("pauseModeReason", lifecycle.pauseModeReason()))));
        r.route().handler(BodyHandler.create(false).setBodyLimit(MAX_BODY_BYTES));
        r.route().handler(this::authenticate);
        extensions.forEach(e -> e.accept(r));
        r.post("/sandboxes").handler(ctx -> create(ctx, false));
        r.post("/v2/sandboxes").handler(ctx -> create(ctx, true));
        r.get("/v2/sandboxes").handler(this::list);
        r.get("/sandboxes").handler(this::listRunningDeprecated);
        r.get("/sandboxes/:id").handler(ctx -> run(ctx, () -> Reply.json(200,
                SandboxJson.detail(lifecycle.get(ctx.pathParam("id")), domain))));
        r.delete("/sandboxes/:id").handler(ctx -> run(ctx, () -> {
            lifecycle.kill(ctx.pathParam("id"));
            return Reply.empty(204);
        }));
        r.post("/sandboxes/:id/connect").handler(ctx -> connect(ctx, false));
        r.post("/v2/sandboxes/:id/connect").handler(ctx -> connect(ctx, true));
        r.post("/sandboxes/:id/pause").handler(this::pause);
        r.post("/sandboxes/:id/resume").handler(this::resumeDeprecated);
        r.post("/sandboxes/:id/timeout").handler(this::setTimeout);
        r.post("/sandboxes/:id/refreshes").handler(this::refresh);
        new SnapshotApi(this, lifecycle, limits, domain).routes(r);
        r.put("/sandboxes/:id/network").handler(this::updateNetwork);
        r.route().last().handler(ctx -> send(ctx, Reply.error(404, "no endpoint " + ctx.request().method() + " "
                + ctx.request().path() + "; see the E2B API reference for the sandbox endpoints")));
        r.route().failureHandler(this::failure);
        return r;
    }

    // ---- auth ----

    private void authenticate(RoutingContext ctx) {
        String key = ctx.request().getHeader("X-API-Key");
        if (key == null || key.isBlank()) {
            send(ctx, Reply.error(401, "missing X-API-Key header; send the key printed at the server's first start"
                    + " (also in <data-dir>/api-key) or one from 'capsule keys create'"));
            return;
        }
        Context vc = Vertx.currentContext();
        workers.execute(() -> {
            Optional<ApiKeyRecord> found;
            try {
                found = apiKeys.authenticate(key.strip());
            } catch (RuntimeException e) {
                LOG.log(System.Logger.Level.ERROR, "API key check failed", e);
                vc.runOnContext(v -> send(ctx, Reply.error(503, "could not check the API key: the store failed;"
                        + " retry, and see the server log")));
                return;
            }
            Reply refused = null;
            if (found.isEmpty()) {
                refused = Reply.error(401, "invalid or revoked API key; create one with 'capsule keys create'");
            } else {
                try {
                    limits.admitRequest(found.get());
                } catch (RateLimited e) {
                    refused = Reply.rateLimited(e);
                }
            }
            Reply r = refused;
            vc.runOnContext(v -> {
                if (r != null) {
                    send(ctx, r);
                } else {
                    ctx.put(API_KEY, found.get());
                    ctx.next();
                }
            });
        });
    }

    // ---- handlers ----

    private void create(RoutingContext ctx, boolean v2) {
        JsonObject body = jsonBody(ctx, true);
        if (body == null) return;
        CreateRequest request;
        try {
            String template = Bodies.templateRef(body);
            Long timeout = Bodies.optionalInteger(body, "timeout");
            Boolean autoPause = Bodies.optionalBoolean(body, "autoPause");
            Boolean autoPauseMemory = Bodies.optionalBoolean(body, "autoPauseMemory");
            JsonObject autoResume = Bodies.optionalObject(body, "autoResume");
            boolean resume = autoResume != null && Boolean.TRUE.equals(Bodies.optionalBoolean(autoResume, "enabled"));
            if (resume && !Boolean.TRUE.equals(autoPause)) {
                throw Bodies.bad("autoResume needs autoPause: true (a sandbox that is killed at its timeout cannot be resumed)");
            }
            if (resume && Boolean.FALSE.equals(autoPauseMemory)) {
                throw Bodies.bad("autoResume cannot be combined with autoPauseMemory: false, as in E2B (a filesystem-only"
                        + " pause is meant to be resumed with Sandbox.connect()); drop one of the two");
            }
            Boolean internet = Bodies.optionalBoolean(body, "allow_internet_access");
            JsonObject network = Bodies.optionalObject(body, "network");
            // not E2B's: which driver runs it (oci, microvm) on a server that runs several
            String runtime = Bodies.optionalString(body, "runtime");
            boolean publicTraffic = publicTraffic(body, network, v2);
            request = new CreateRequest(template, timeout == null ? null : Duration.ofSeconds(timeout),
                    Bodies.metadata(body), Bodies.envVars(body), internet,
                    NetworkBodies.stored(network), NetworkBodies.policy(internet, network),
                    new SandboxRecord.Lifecycle(Boolean.TRUE.equals(autoPause), !Boolean.FALSE.equals(autoPauseMemory), resume),
                    publicTraffic, apiKey(ctx).id(), runtime);
        } catch (ApiError e) {
            send(ctx, Reply.error(e.status, e.getMessage()));
            return;
        }
        ApiKeyRecord key = apiKey(ctx);
        run(ctx, () -> {
            try (RateLimiter.Reservation admitted = limits.admitCreate(key)) {
                return Reply.json(201, SandboxJson.sandbox(lifecycle.create(request), domain));
            }
        });
    }

    /**
     * Whether the sandbox's user ports take traffic without a token: {@code network.allowPublicTraffic}, true when
     * absent. As in E2B, closing them needs a secured sandbox, so v1's explicit {@code secure: false} with it is
     * refused; otherwise {@code secure} changes nothing here: every Capsule sandbox gets an envd access token.
     */
    private static boolean publicTraffic(JsonObject body, JsonObject network, boolean v2) {
        Boolean secure = v2 ? null : Bodies.optionalBoolean(body, "secure");
        Boolean allowPublic = network == null ? null : Bodies.optionalBoolean(network, "allowPublicTraffic");
        if (Boolean.FALSE.equals(allowPublic) && Boolean.FALSE.equals(secure)) {
            throw Bodies.bad("You cannot create a sandbox without public access unless you enable secure envd access"
                    + " via 'secure' flag.");
        }
        return !Boolean.FALSE.equals(allowPublic);
    }

    static ApiKeyRecord apiKey(RoutingContext ctx) {
        return ctx.get(API_KEY);
    }

    private void connect(RoutingContext ctx, boolean v2) {
        JsonObject body = jsonBody(ctx, !v2);
        if (body == null) return;
        Duration timeout;
        boolean memory;
        try {
            Long seconds = Bodies.optionalInteger(body, "timeout");
            if (seconds == null && !v2) throw Bodies.bad("'timeout' (seconds) is required, e.g. {\"timeout\": 300}");
            timeout = seconds == null ? null : Duration.ofSeconds(seconds); // null: the sandbox's own timeout
            memory = !Boolean.FALSE.equals(Bodies.optionalBoolean(body, "memory"));
        } catch (ApiError e) {
            send(ctx, Reply.error(e.status, e.getMessage()));
            return;
        }
        run(ctx, () -> {
            var connected = lifecycle.connect(ctx.pathParam("id"), timeout, memory);
            return Reply.json(connected.resumed() ? 201 : 200, SandboxJson.sandbox(connected.sandbox(), domain));
        });
    }

    private void pause(RoutingContext ctx) {
        JsonObject body = jsonBody(ctx, false);
        if (body == null) return;
        boolean memory;
        try {
            memory = !Boolean.FALSE.equals(Bodies.optionalBoolean(body, "memory"));
        } catch (ApiError e) {
            send(ctx, Reply.error(e.status, e.getMessage()));
            return;
        }
        run(ctx, () -> {
            lifecycle.pause(ctx.pathParam("id"), memory);
            return Reply.empty(204);
        });
    }

    /** Deprecated {@code POST /sandboxes/{id}/resume}: {@code {timeout = 15, autoPause, memory}}; 409 if running. */
    private void resumeDeprecated(RoutingContext ctx) {
        JsonObject body = jsonBody(ctx, false);
        if (body == null) return;
        Duration timeout;
        boolean memory;
        try {
            Long seconds = Bodies.optionalInteger(body, "timeout");
            timeout = Duration.ofSeconds(seconds == null ? 15 : seconds);
            Bodies.optionalBoolean(body, "autoPause"); // accepted for compatibility; the create request's setting stays
            memory = !Boolean.FALSE.equals(Bodies.optionalBoolean(body, "memory"));
        } catch (ApiError e) {
            send(ctx, Reply.error(e.status, e.getMessage()));
            return;
        }
        run(ctx, () -> Reply.json(201, SandboxJson.sandbox(lifecycle.resume(ctx.pathParam("id"), timeout, memory), domain)));
    }

    private void setTimeout(RoutingContext ctx) {
        JsonObject body = jsonBody(ctx, true);
        if (body == null) return;
        Long seconds;
        try {
            seconds = Bodies.optionalInteger(body, "timeout");
            if (seconds == null) throw Bodies.bad("'timeout' (seconds) is required, e.g. {\"timeout\": 300}");
        } catch (ApiError e) {
            send(ctx, Reply.error(e.status, e.getMessage()));
            return;
        }
        run(ctx, () -> {
            lifecycle.setTimeout(ctx.pathParam("id"), Duration.ofSeconds(seconds));
            return Reply.empty(204);
        });
    }

    /** {@code PUT /sandboxes/{id}/network}: replaces the whole egress policy of a running sandbox; 204. */
    private void updateNetwork(RoutingContext ctx) {
        JsonObject body = jsonBody(ctx, true);
        if (body == null) return;
        Boolean internet;
        NetworkPolicy policy;
        try {
            internet = Bodies.optionalBoolean(body, "allow_internet_access");
            policy = NetworkBodies.policy(internet, body);
        } catch (ApiError e) {
            send(ctx, Reply.error(e.status, e.getMessage()));
            return;
        }
        JsonObject stored = body.copy();
        stored.remove("allow_internet_access");
        run(ctx, () -> {
            lifecycle.updateNetwork(ctx.pathParam("id"), policy, internet, NetworkBodies.stored(stored));
            return Reply.empty(204);
        });
    }

    private void refresh(RoutingContext ctx) {
        JsonObject body = jsonBody(ctx, false);
        if (body == null) return;
        long seconds;
        try {
            Long d = Bodies.optionalInteger(body, "duration");
            seconds = d == null ? 15 : d;
            if (seconds < 0 || seconds > 3600) throw Bodies.bad("'duration' must be between 0 and 3600 seconds, got " + seconds);
        } catch (ApiError e) {
            send(ctx, Reply.error(e.status, e.getMessage()));
            return;
        }
        run(ctx, () -> {
            lifecycle.refresh(ctx.pathParam("id"), Duration.ofSeconds(seconds));
            return Reply.empty(204);
        });
    }

    private void list(RoutingContext ctx) {
        SandboxQuery query;
        try {
            MultiMap q = ctx.queryParams();
            Set<SandboxState> states = parseStates(q.getAll("state"));
            boolean asc = switch (q.get("order") == null ? "desc" : q.get("order").toLowerCase(Locale.ROOT)) {
                case "asc" -> true;
                case "desc" -> false;
                default -> throw Bodies.bad("'order' must be asc or desc, got '" + q.get("order") + "'");
            };
            query = new SandboxQuery(states, parseMetadata(q.get("metadata")), asc, nextToken(q), pageLimit(q));
        } catch (ApiError e) {
            send(ctx, Reply.error(e.status, e.getMessage()));
            return;
        }
        run(ctx, () -> {
            var page = lifecycle.list(query);
            var headers = new LinkedHashMap<String, String>();
            if (page.next() != null) headers.put("X-Next-Token", page.next().encode());
            if (query.states().contains(SandboxState.RUNNING)) headers.put("X-Total-Running", String.valueOf(lifecycle.countRunning()));
            return new Reply(200, new JsonArray(page.items().stream().map(SandboxJson::listed).toList()), headers);
        });
    }

    /** Deprecated {@code GET /sandboxes}: every running sandbox, with the metadata filter, in one response. */
    private void listRunningDeprecated(RoutingContext ctx) {
        Map<String, String> metadata;
        try {
            metadata = parseMetadata(ctx.queryParams().get("metadata"));
        } catch (ApiError e) {
            send(ctx, Reply.error(e.status, e.getMessage()));
            return;
        }
        run(ctx, () -> {
            var all = new ArrayList<JsonObject>();
            SandboxQuery.Cursor cursor = null;
            do {
                var page = lifecycle.list(new SandboxQuery(Set.of(SandboxState.RUNNING), metadata, false, cursor, 100));
                page.items().forEach(s -> all.add(SandboxJson.listed(s)));
                cursor = page.next();
            } while (cursor != null);
            return new Reply(200, new JsonArray(new ArrayList<>(all)), Map.of());
        });
    }

    static Set<SandboxState> parseStates(List<String> values) {
        if (values.isEmpty()) return EnumSet.of(SandboxState.RUNNING, SandboxState.PAUSED);
        var states = EnumSet.noneOf(SandboxState.class);
        for (String value : values) {
            for (String s : value.split(",")) {
                switch (s.strip().toLowerCase(Locale.ROOT)) {
                    case "running" -> states.add(SandboxState.RUNNING);
                    case "paused" -> states.add(SandboxState.PAUSED);
                    case "" -> { }
                    default -> throw Bodies.bad("'state' must be running, paused or both (state=running,paused), got '" + s + "'");
                }
            }
        }
        return states.isEmpty() ? EnumSet.of(SandboxState.RUNNING, SandboxState.PAUSED) : states;
    }

    /** The {@code limit} query parameter of a paginated list: 1 to 100, default 100. */
    static int pageLimit(MultiMap q) {
        if (q.get("limit") == null) return 100;
        int limit;
        try {
            limit = Integer.parseInt(q.get("limit"));
        } catch (NumberFormatException e) {
            limit = -1;
        }
        if (limit < 1 || limit > 100) throw Bodies.bad("'limit' must be a whole number from 1 to 100, got '" + q.get("limit") + "'");
        return limit;
    }

    /** The {@code nextToken} query parameter: the cursor of the previous page's {@code X-Next-Token}, or null. */
    static SandboxQuery.Cursor nextToken(MultiMap q) {
        if (q.get("nextToken") == null || q.get("nextToken").isEmpty()) return null;
        try {
            return SandboxQuery.Cursor.decode(q.get("nextToken"));
        } catch (RuntimeException e) {
            throw Bodies.bad("'nextToken' is not a token this server issued; pass the X-Next-Token header of the previous page");
        }
    }

    /**
     * The SDK URL-encodes {@code k=v&k2=v2} (each key and value encoded) and then encodes that again as the query
     * value. The router has undone the outer encoding, so split on {@code &} and {@code =} and decode each part;
     * decoding the whole once more first would split values that contain an encoded {@code &} or {@code =}.
     */
    static Map<String, String> parseMetadata(String once) {
        if (once == null || once.isEmpty()) return Map.of();
        try {
            var out = new LinkedHashMap<String, String>();
            for (String pair : once.split("&")) {
                if (pair.isEmpty()) continue;
                int eq = pair.indexOf('=');
                if (eq <= 0) throw Bodies.bad("'metadata' must look like key=value&key2=value2, got '" + pair + "'");
                out.put(URLDecoder.decode(pair.substring(0, eq), StandardCharsets.UTF_8),
                        URLDecoder.decode(pair.substring(eq + 1), StandardCharsets.UTF_8));
            }
            return out;
        } catch (IllegalArgumentException e) {
            throw Bodies.bad("'metadata' is not valid URL encoding: " + e.getMessage());
        }
    }

    // ---- plumbing ----

    /** The body as a JSON object, an empty object when absent and optional; answers 400 and returns null otherwise. */
    JsonObject jsonBody(RoutingContext ctx, boolean required) {
        var body = ctx.body() == null ? null : ctx.body().buffer();
        if (body == null || body.length() == 0) {
            if (!required) return new JsonObject();
            send(ctx, Reply.error(400, "request body is missing; send a JSON object with Content-Type: application/json"));
            return null;
        }
        try {
            Object value = io.vertx.core.json.Json.decodeValue(body);
            if (value instanceof JsonObject o) return o;
            send(ctx, Reply.error(400, "request body must be a JSON object ({...}), not " + (value == null ? "null" : "a " + value.getClass().getSimpleName())));
        } catch (DecodeException e) {
            send(ctx, Reply.error(400, "request body is not valid JSON (" + e.getMessage().lines().findFirst().orElse("")
                    + "); send a JSON object with Content-Type: application/json"));
        }
        return null;
    }

    /** Runs lifecycle work on a virtual thread and answers on the request's context. */
    void run(RoutingContext ctx, Callable<Reply> work) {
        Context vc = Vertx.currentContext();
        workers.execute(() -> {
            Reply reply;
            try {
                reply = work.call();
            } catch (LifecycleException e) {
                reply = Reply.error(statusOf(e), e.getMessage());
                if (e instanceof LifecycleException.DriverFailure) LOG.log(System.Logger.Level.WARNING, e.getMessage(), e);
            } catch (ApiError e) {
                reply = Reply.error(e.status, e.getMessage());
            } catch (RateLimited e) {
                reply = Reply.rateLimited(e);
            } catch (Exception | Error e) {
                LOG.log(System.Logger.Level.ERROR, "request " + ctx.request().method() + " " + ctx.request().path() + " failed", e);
                reply = Reply.error(500, "internal error (" + e.getClass().getSimpleName() + "); see the server log");
            }
            Reply r = reply;
            vc.runOnContext(v -> {
                try {
                    send(ctx, r);
                } catch (RuntimeException e) {
                    LOG.log(System.Logger.Level.ERROR, "answering " + ctx.request().path() + " failed", e);
                    ctx.response().setStatusCode(500).end();
                }
            });
        });
    }

    static int statusOf(LifecycleException e) {
        return switch (e) {
            case LifecycleException.InvalidRequest x -> 400;
            case LifecycleException.SandboxNotFound x -> 404;
            case LifecycleException.TemplateNotFound x -> 404;
            case LifecycleException.SnapshotNotFound x -> 404;
            case LifecycleException.Conflict x -> 409;
            case LifecycleException.DriverFailure x -> 500;
            default -> 500;
        };
    }

    private void failure(RoutingContext ctx) {
        int status = ctx.statusCode() > 0 ? ctx.statusCode() : 500;
        String message = switch (status) {
            case 413 -> "request body is larger than " + MAX_BODY_BYTES + " bytes; send a smaller body";
            case 400 -> "malformed request; check the body and query";
            default -> "internal error; see the server log";
        };
        if (status >= 500 && ctx.failure() != null) LOG.log(System.Logger.Level.ERROR, "request failed", ctx.failure());
        if (ctx.response().headWritten()) {
            ctx.response().reset();
        } else {
            send(ctx, Reply.error(status, message));
        }
    }

    static void send(RoutingContext ctx, Reply reply) {
        var response = ctx.response();
        if (response.ended()) return;
        response.setStatusCode(reply.status());
        reply.headers().forEach(response::putHeader);
        if (reply.body() == null) {
            response.end();
        } else {
            response.putHeader("Content-Type", "application/json").end(reply.body().toString());
        }
    }

    /** A response: status, JSON body (null for none) and extra headers. */
    record Reply(int status, Object body, Map<String, String> headers) {
        static Reply json(int status, JsonObject body) {
            return new Reply(status, body, Map.of());
        }

        static Reply empty(int status) {
            return new Reply(status, null, Map.of());
        }

        static Reply error(int status, String message) {
            return new Reply(status, new JsonObject().put("code", status).put("message", message), Map.of());
        }

        /** 429 with {@code Retry-After} in whole seconds when waiting helps: the SDKs retry only then. */
        static Reply rateLimited(RateLimited e) {
            Map<String, String> headers = e.retryAfterSeconds().isPresent()
                    ? Map.of("Retry-After", Long.toString(e.retryAfterSeconds().getAsLong())) : Map.of();
            return new Reply(429, new JsonObject().put("code", 429).put("message", e.getMessage()), headers);
        }
    }
}
