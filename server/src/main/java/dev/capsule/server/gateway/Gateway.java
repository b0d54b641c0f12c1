package dev.capsule.server.gateway;

import dev.capsule.runtime.SandboxInstance;
import dev.capsule.server.lifecycle.Route;
import dev.capsule.server.lifecycle.SandboxLifecycle;
import dev.capsule.server.store.SandboxState;
import io.vertx.core.Context;
import io.vertx.core.MultiMap;
import io.vertx.core.Vertx;
import io.vertx.core.http.HttpClient;
import io.vertx.core.http.HttpClientOptions;
import io.vertx.core.http.HttpClientResponse;
import io.vertx.core.http.HttpHeaders;
import io.vertx.core.http.HttpMethod;
import io.vertx.core.http.HttpServerRequest;
import io.vertx.core.http.HttpServerResponse;
import io.vertx.core.http.PoolOptions;
import io.vertx.core.http.RequestOptions;
import io.vertx.core.http.WebSocketBase;
import io.vertx.core.http.WebSocketClient;
import io.vertx.core.http.WebSocketClientOptions;
import io.vertx.core.http.WebSocketConnectOptions;
import io.vertx.core.json.JsonObject;
import io.vertx.core.net.SocketAddress;
import java.util.ArrayList;
import java.util.Locale;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Sandbox traffic on the API's port: a request with {@code E2b-Sandbox-Id} + {@code E2b-Sandbox-Port}, or with Host
 * {@code <port>-<sandboxId>.<domain>}, is proxied to that port at the sandbox's address — bodies streamed both ways
 * with back-pressure (nothing is buffered whole), WebSocket upgrades bridged frame by frame. A paused sandbox
 * created with autoResume is resumed first while the request waits. Unknown, killed or other paused sandboxes
 * and closed ports answer 502 {@code {"sandboxId","message","code":502}}, which the SDKs read as
 * "not running".
 */
public final class Gateway {

    private static final Pattern HOST_LABEL = Pattern.compile("(\\d{1,5})-([a-z0-9]{20})");
    /** Headers that describe one hop's connection and must not be forwarded (RFC 9110 §7.6.1). */
    private static final Set<String> HOP_BY_HOP = Set.of("connection", "keep-alive", "proxy-authenticate",
            "proxy-authorization", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade");
    /** envd's internal endpoints, for the host only (E2B's proxy blocks them too). */
    private static final Set<String> ENVD_INTERNAL = Set.of("/init", "/freeze", "/unfreeze", "/collapse", "/fsfreeze", "/fsthaw");

    private final SandboxLifecycle lifecycle;
    private final ExecutorService workers;
    private final String domain;
    private final String domainHost;
    private final HttpClient http;
    private final WebSocketClient webSockets;

    public Gateway(Vertx vertx, SandboxLifecycle lifecycle, ExecutorService workers, String domain) {
        this.lifecycle = lifecycle;
        this.workers = workers;
        this.domain = domain.toLowerCase(Locale.ROOT);
        int colon = this.domain.lastIndexOf(':');
        this.domainHost = colon > 0 ? this.domain.substring(0, colon) : this.domain;
        this.http = vertx.createHttpClient(new HttpClientOptions().setKeepAlive(true).setConnectTimeout(5_000),
                new PoolOptions().setHttp1MaxSize(64));
        this.webSockets = vertx.createWebSocketClient(new WebSocketClientOptions().setConnectTimeout(5_000)
                .setMaxFrameSize(16 * 1024 * 1024).setMaxMessageSize(64 * 1024 * 1024));
    }

    /** Where a request is going: a sandbox and one of its ports. */
    public record Target(String sandboxId, int port) {}

    /**
     * The sandbox target of this request, or null when it is API traffic. A request with a sandbox header but no
     * usable port header is answered 400 here and reported as handled (an empty-id target).
     */
    public Target target(HttpServerRequest req) {
        String host = req.getHeader(HttpHeaders.HOST);
        if (host != null) {
            Target byHost = fromHost(host.toLowerCase(Locale.ROOT));
            if (byHost != null) return byHost;
        }
        String id = req.getHeader("E2b-Sandbox-Id");
        if (id == null) return null;
        String portHeader = req.getHeader("E2b-Sandbox-Port");
        int port = parsePort(portHeader);
        if (port < 0) {
            respond(req, 400, id.strip(), "E2b-Sandbox-Id needs an E2b-Sandbox-Port header with a port number"
                    + " (49983 for envd); got " + (portHeader == null ? "none" : "'" + portHeader + "'"));
            return new Target("", 0);
        }
        return new Target(id.strip(), port);
    }

    private Target fromHost(String host) {
        for (String suffix : java.util.List.of("." + domain, "." + domainHost).stream().distinct().toList()) {
            String candidate = host;
            if (!candidate.endsWith(suffix)) {
                int colon = candidate.lastIndexOf(':');
                if (colon < 0) continue;
                candidate = candidate.substring(0, colon);
                if (!candidate.endsWith(suffix)) continue;
            }
            Matcher m = HOST_LABEL.matcher(candidate.substring(0, candidate.length() - suffix.length()));
            if (m.matches()) {
                int port = parsePort(m.group(1));
                if (port > 0) return new Target(m.group(2), port);
            }
        }
        return null;
    }

    private static int parsePort(String s) {
        if (s == null) return -1;
        try {
            int p = Integer.parseInt(s.strip());
            return p >= 1 && p <= 65535 ? p : -1;
        } catch (NumberFormatException e) {
            return -1;
        }
    }

    /** Proxies the request to its target; call on the request's event loop. */
    public void handle(HttpServerRequest req, Target target) {
        if (target.sandboxId().isEmpty()) return; // already answered by target()
        Route cached = lifecycle.cachedRoute(target.sandboxId());
        if (cached != null) {
            forward(req, target, cached);
            return;
        }
        req.pause();
        Context vc = Vertx.currentContext();
        workers.execute(() -> {
            Optional<Route> route;
            try {
                route = lifecycle.route(target.sandboxId());
            } catch (RuntimeException e) {
                vc.runOnContext(v -> respond(req, 502, target.sandboxId(), "could not look the sandbox up: " + e.getMessage()));
                return;
            }
            vc.runOnContext(v -> {
                if (route.isEmpty()) {
                    respond(req, 502, target.sandboxId(), "sandbox '" + target.sandboxId()
                            + "' not found: it was killed, timed out or never existed");
                } else {
                    forward(req, target, route.get());
                }
            });
        });
    }

    private void forward(HttpServerRequest req, Target target, Route route) {
        if (route.state() == SandboxState.PAUSED && route.autoResume()) {
            wake(req, target);
            return;
        }
        if (route.state() != SandboxState.RUNNING) {
            respond(req, 502, target.sandboxId(), "sandbox '" + target.sandboxId() + "' is " + route.state().wire()
                    + "; resume it with Sandbox.connect() before sending it traffic");
            return;
        }
        if (target.port() == SandboxInstance.ENVD_PORT && ENVD_INTERNAL.contains(req.path())) {
            respond(req, 403, target.sandboxId(), "envd's " + req.path() + " is internal to Capsule and not reachable through the gateway");
            return;
        }
        SocketAddress server = SocketAddress.inetSocketAddress(target.port(), route.address().getHostAddress());
        if (isWebSocketUpgrade(req)) {
            bridgeWebSocket(req, target, server);
            return;
        }
        req.pause();
        var options = new RequestOptions().setServer(server).setMethod(req.method()).setURI(req.uri())
                .setHeaders(forwardable(req.headers()));
        http.request(options).onComplete(ar -> {
            if (ar.failed()) {
                respond(req, 502, target.sandboxId(), portClosed(target, ar.cause()));
                return;
            }
            var upstream = ar.result();
            // A client that goes away must not leave the sandbox-side request open (a long stream would hold a
            // pooled connection to that sandbox port until the sandbox ends it, which may be never).
            AtomicBoolean relayed = new AtomicBoolean();
            req.response().closeHandler(v -> {
                if (!relayed.get()) upstream.reset();
            });
            boolean hasBody = req.headers().contains(HttpHeaders.CONTENT_LENGTH) || req.headers().contains(HttpHeaders.TRANSFER_ENCODING);
            if (!req.headers().contains(HttpHeaders.CONTENT_LENGTH) && hasBody) upstream.setChunked(true);
            var sent = hasBody ? upstream.send(req) : upstream.send();
            if (!hasBody) req.resume();
            sent.onComplete(res -> {
                if (res.failed()) {
                    if (!req.response().headWritten()) {
                        respond(req, 502, target.sandboxId(), portClosed(target, res.cause()));
                    } else {
                        req.response().reset();
                    }
                    return;
                }
                relayResponse(req, res.result(), relayed);
            });
        });
    }

    /**
     * Resumes a paused sandbox created with autoResume (on a virtual thread; the request waits, its body held back)
     * and then forwards the request to it.
     */
    private void wake(HttpServerRequest req, Target target) {
        req.pause();
        Context vc = Vertx.currentContext();
        workers.execute(() -> {
            Optional<Route> route;
            try {
                route = lifecycle.wakeForTraffic(target.sandboxId());
            } catch (RuntimeException e) {
                vc.runOnContext(v -> respond(req, 502, target.sandboxId(), "sandbox '" + target.sandboxId()
                        + "' is paused and could not be resumed: " + e.getMessage()));
                return;
            }
            vc.runOnContext(v -> {
                if (route.isEmpty()) {
                    respond(req, 502, target.sandboxId(), "sandbox '" + target.sandboxId()
                            + "' not found: it was killed, timed out or never existed");
                } else if (route.get().state() != SandboxState.RUNNING) {
                    respond(req, 502, target.sandboxId(), "sandbox '" + target.sandboxId() + "' is "
                            + route.get().state().wire() + "; resume it with Sandbox.connect() before sending it traffic");
                } else {
                    forward(req, target, route.get());
                }
            });
        });
    }

    private static void relayResponse(HttpServerRequest req, HttpClientResponse upstream, AtomicBoolean relayed) {
        HttpServerResponse response = req.response();
        response.setStatusCode(upstream.statusCode()).setStatusMessage(upstream.statusMessage());
        response.headers().setAll(forwardable(upstream.headers()));
        boolean bodyless = req.method() == HttpMethod.HEAD || upstream.statusCode() == 204 || upstream.statusCode() == 304
                || upstream.statusCode() / 100 == 1;
        if (!bodyless && !upstream.headers().contains(HttpHeaders.CONTENT_LENGTH)) response.setChunked(true);
        upstream.pipeTo(response).onComplete(done -> {
            if (done.succeeded()) {
                relayed.set(true);
                return;
            }
            if (!response.ended()) response.reset();
            upstream.request().reset();
        });
    }

    private void bridgeWebSocket(HttpServerRequest req, Target target, SocketAddress server) {
        req.pause();
        var options = new WebSocketConnectOptions().setServer(server).setURI(req.uri())
                .setHost(server.host()).setPort(target.port());
        MultiMap headers = forwardable(req.headers());
        headers.names().stream().filter(n -> n.toLowerCase(Locale.ROOT).startsWith("sec-websocket-")).toList()
                .forEach(headers::remove);
        headers.remove(HttpHeaders.HOST);
        options.setHeaders(headers);
        String protocols = req.getHeader("Sec-WebSocket-Protocol");
        if (protocols != null) {
            var list = new ArrayList<String>();
            for (String p : protocols.split(",")) if (!p.isBlank()) list.add(p.strip());
            options.setSubProtocols(list);
        }
        webSockets.connect(options).onComplete(ar -> {
            if (ar.failed()) {
                respond(req, 502, target.sandboxId(), portClosed(target, ar.cause()));
                return;
            }
            var upstream = ar.result();
            req.toWebSocket().onComplete(down -> {
                if (down.failed()) {
                    upstream.close();
                    return;
                }
                pipeFrames(down.result(), upstream);
                pipeFrames(upstream, down.result());
            });
        });
    }

    /** Forwards data frames from {@code from} to {@code to}, pausing {@code from} while {@code to} is backed up. */
    private static void pipeFrames(WebSocketBase from, WebSocketBase to) {
        from.frameHandler(frame -> {
            if (!(frame.isText() || frame.isBinary() || frame.isContinuation())) return;
            to.writeFrame(frame);
            if (to.writeQueueFull()) {
                from.pause();
                to.drainHandler(v -> from.resume());
            }
        });
        from.closeHandler(v -> {
            Short code = from.closeStatusCode();
            if (to.isClosed()) return;
            if (code == null || code == 1005 || code == 1006 || code == 1015) to.close();
            else to.close(code, from.closeReason());
        });
        from.exceptionHandler(e -> {
            if (!to.isClosed()) to.close((short) 1011);
        });
    }

    private static boolean isWebSocketUpgrade(HttpServerRequest req) {
        String upgrade = req.getHeader(HttpHeaders.UPGRADE);
        return upgrade != null && upgrade.equalsIgnoreCase("websocket") && req.method() == HttpMethod.GET;
    }

    private static MultiMap forwardable(MultiMap in) {
        MultiMap out = MultiMap.caseInsensitiveMultiMap();
        String connection = in.get(HttpHeaders.CONNECTION);
        Set<String> named = connection == null ? Set.of() : Set.of(connection.toLowerCase(Locale.ROOT).split("\\s*,\\s*"));
        for (var e : in) {
            String n = e.getKey().toLowerCase(Locale.ROOT);
            if (HOP_BY_HOP.contains(n) || named.contains(n)) continue;
            out.add(e.getKey(), e.getValue());
        }
        return out;
    }

    private static String portClosed(Target target, Throwable cause) {
        return "sandbox '" + target.sandboxId() + "' is running but nothing answered on port " + target.port() + " ("
                + cause.getMessage() + "); start a server listening on 0.0.0.0:" + target.port() + " in the sandbox";
    }

    private static void respond(HttpServerRequest req, int status, String sandboxId, String message) {
        req.resume();
        HttpServerResponse response = req.response();
        if (response.ended() || response.headWritten()) return;
        response.setStatusCode(status).putHeader(HttpHeaders.CONTENT_TYPE, "application/json")
                .end(new JsonObject().put("sandboxId", sandboxId).put("message", message).put("code", status).encode());
    }

    /** Closes the gateway's clients (open proxied connections end). */
    public void close() {
        http.close();
        webSockets.close();
    }
}
