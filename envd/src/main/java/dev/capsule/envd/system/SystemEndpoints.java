package dev.capsule.envd.system;

import dev.capsule.envd.EnvdHttp;
import dev.capsule.envd.EnvdState;
import dev.capsule.envd.auth.AccessControl;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.http.HttpServerRequest;
import io.vertx.core.http.HttpServerResponse;
import io.vertx.core.json.DecodeException;
import io.vertx.core.json.JsonObject;

import java.time.Duration;
import java.time.Instant;
import java.time.format.DateTimeParseException;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * envd's small endpoints: {@code GET /health}, {@code GET /envs}, {@code GET /metrics} and {@code POST /init}, the
 * call through which the control plane hands a sandbox its env vars, access token and defaults.
 */
public final class SystemEndpoints {
    private static final Logger LOG = Logger.getLogger(SystemEndpoints.class.getName());
    private static final int MAX_INIT_BYTES = 1024 * 1024;

    private final EnvdState state;
    private final AccessControl access;
    private final SystemMetrics metrics;
    private final ExecutorService executor;

    public SystemEndpoints(EnvdState state, AccessControl access, SystemMetrics metrics, ExecutorService executor) {
        this.state = state;
        this.access = access;
        this.metrics = metrics;
        this.executor = executor;
    }

    public void health(HttpServerRequest request) {
        request.response().setStatusCode(204).putHeader("Cache-Control", "no-store").end();
    }

    public void envs(HttpServerRequest request) {
        JsonObject body = new JsonObject();
        state.envVars().forEach(body::put);
        json(request.response(), 200, body);
    }

    public void metrics(HttpServerRequest request) {
        HttpServerResponse response = request.response();
        // Reading /proc and sampling CPU blocks: off the event loop.
        executor.execute(() -> {
            try {
                SystemMetrics.Reading r = metrics.read();
                json(response, 200, new JsonObject()
                        .put("ts", r.ts())
                        .put("cpu_count", r.cpuCount())
                        .put("cpu_used_pct", r.cpuUsedPct())
                        .put("mem_total", r.memTotal())
                        .put("mem_used", r.memUsed())
                        .put("mem_cache", r.memCache())
                        .put("mem_total_mib", r.memTotalMib())
                        .put("mem_used_mib", r.memUsedMib())
                        .put("disk_used", r.diskUsed())
                        .put("disk_total", r.diskTotal()));
            } catch (Exception e) {
                LOG.log(Level.WARNING, "cannot read metrics", e);
                EnvdHttp.error(response, 500, "cannot read system metrics: " + e.getMessage());
            }
        });
    }

    /**
     * {@code POST /init}: merges env vars, sets the access token, default user and workdir; 204. Repeating it is
     * harmless. The {@code timestamp} is deliberately not applied to the clock: the realtime clock is not
     * namespaced, so in a container it is the host's clock, and a microVM keeps time through its paravirtual clock.
     * A token, once set, can only be replaced by a request that presents it (else 409): /init itself needs no token,
     * and anything inside the sandbox could otherwise take over envd.
     */
    public void init(HttpServerRequest request) {
        HttpServerResponse response = request.response();
        Buffer body = Buffer.buffer();
        boolean[] tooLarge = {false};
        request.handler(chunk -> {
            if (body.length() + chunk.length() > MAX_INIT_BYTES) {
                tooLarge[0] = true;
            } else if (!tooLarge[0]) {
                body.appendBuffer(chunk);
            }
        });
        request.exceptionHandler(e -> LOG.log(Level.FINE, "/init request failed", e));
        request.endHandler(v -> {
            if (tooLarge[0]) {
                EnvdHttp.error(response, 413, "the /init body is larger than " + MAX_INIT_BYTES + " bytes");
                return;
            }
            applyInit(request, body, response);
        });
    }

    private void applyInit(HttpServerRequest request, Buffer body, HttpServerResponse response) {
        JsonObject init;
        try {
            init = body.length() == 0 || body.toString().isBlank() ? new JsonObject() : new JsonObject(body);
        } catch (DecodeException | ClassCastException e) {
            EnvdHttp.error(response, 400, "the /init body is not a JSON object: " + e.getMessage());
            return;
        }
        try {
            Map<String, String> envVars = null;
            if (init.getValue("envVars") instanceof JsonObject vars) {
                envVars = new HashMap<>(state.envVars());
                for (Map.Entry<String, Object> e : vars) {
                    envVars.put(e.getKey(), e.getValue() == null ? "" : e.getValue().toString());
                }
            }
            String token = init.getValue("accessToken") instanceof String t ? t : null;
            // /init needs no token until one is set; after that it needs the current one (in the header, or as the
            // body's token for an idempotent repeat), or any process inside the sandbox could change the default
            // user, the env vars every command gets, or the token itself.
            if (state.accessToken() != null && !access.tokenMatches(request.getHeader(AccessControl.TOKEN_HEADER))
                    && !(token != null && access.tokenMatches(token))) {
                EnvdHttp.error(response, 401, "envd's access token is set: send it in X-Access-Token to call /init");
                return;
            }
            if (init.getValue("timestamp") instanceof String ts) {
                logSkew(ts);
            }
            if (envVars != null) {
                state.setEnvVars(envVars);
            }
            if (token != null) {
                state.setAccessToken(token);
            }
            if (init.getValue("defaultUser") instanceof String user) {
                state.setDefaultUser(user);
            }
            if (init.getValue("defaultWorkdir") instanceof String workdir) {
                state.setDefaultWorkdir(workdir);
            }
        } catch (ClassCastException e) {
            EnvdHttp.error(response, 400, "the /init body has a field of the wrong type: " + e.getMessage());
            return;
        }
        response.setStatusCode(204).putHeader("Cache-Control", "no-store").end();
    }

    private static void logSkew(String timestamp) {
        try {
            Duration skew = Duration.between(Instant.parse(timestamp), Instant.now()).abs();
            if (skew.compareTo(Duration.ofSeconds(2)) > 0) {
                LOG.warning("the sandbox clock differs from the control plane's by " + skew.toMillis()
                        + " ms; envd does not set the clock (it would be the host's clock in a container)");
            }
        } catch (DateTimeParseException e) {
            LOG.fine("ignoring unparseable /init timestamp " + timestamp);
        }
    }

    private static void json(HttpServerResponse response, int status, JsonObject body) {
        response.setStatusCode(status)
                .putHeader("Content-Type", "application/json")
                .putHeader("Cache-Control", "no-store")
                .end(body.encode());
    }
}
