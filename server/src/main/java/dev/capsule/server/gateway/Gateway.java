package dev.capsule.server.gateway;

import dev.capsule.envd.auth.Signatures;
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
import java.util.HexFormat;
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
 *
 * <p>Access: envd (port {@value SandboxInstance#ENVD_PORT}) checks its own access token and URL signatures, as in
 * E2B; the gateway keeps envd's internal endpoints unreachable, requires a sandbox's traffic access token on its
 * other ports when it has one (403 otherwise, E2B's messages), and wakes a paused sandbox only for a request that
 * carries what its target will check. A signed {@code /files} URL that names no sandbox (the SDK's
 * {@code downloadUrl}/{@code uploadUrl} with {@code E2B_SANDBOX_URL} set) goes to the sandbox whose envd token
 * signed it.
 */
public final class Gateway {

    private static final Pattern HOST_LABEL = Pattern.compile("(\\d{1,5})-([a-z0-9]{20})");
    /** Headers that describe one hop's connection and must not be forwarded (RFC 9110 §7.6.1). */
    private static final Set<String> HOP_BY_HOP = Set.of("connection", "keep-alive", "proxy-authenticate",
            "proxy-authorization", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade");
    /** envd's internal endpoints, for the host only (E2B's proxy blocks them too). */
    private static final Set<String> ENVD_INTERNAL = Set.of("/init", "/freeze", "/unfreeze", "/collapse", "/fsfreeze", "/fsthaw");
    /** E2B's header for a sandbox's traffic access token. */
    public static final String TRAFFIC_TOKEN_HEADER = "e2b-traffic-access-token";
    /** envd's own message for a request without its token (E2B envd's auth.go). */
    static final String ENVD_UNAUTHORIZED = "unauthorized access, please provide a valid access token or method signing"
            + " if supported";

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

    /** What {@link #target} returns for sandbox traffic it has already answered (with an error). */
    private static final Target ANSWERED = new Target("", 0);

    /**
     * The sandbox target of this request, or null when it is API traffic. A request with a sandbox header but no
     * usable port header or an empty id is answered 400 here (and a signed URL no sandbox made 401); {@link #handle}
     * then does nothing more with it.
     */
    public Target target(HttpServerRequest req) {
        String host = req.getHeader(HttpHeaders.HOST);
        if (host != null) {
            Target byHost = fromHost(host.toLowerCase(Locale.ROOT));
            if (byHost != null) return byHost;
        }
        String id = req.getHeader("E2b-Sandbox-Id");
        if (id == null) return signedFilesTarget(req);
        String portHeader = req.getHeader("E2b-Sandbox-Port");
        int port = parsePort(portHeader);
        if (port < 0) {
            respond(req, 400, id.strip(), "E2b-Sandbox-Id needs an E2b-Sandbox-Port header with a port number"
                    + " (49983 for envd); got " + (portHeader == null ? "none" : "'" + portHeader + "'"));
            return ANSWERED;
        }
        if (id.isBlank()) {
            respond(req, 400, "", "E2b-Sandbox-Id is empty; send the id of the sandbox, e.g. from Sandbox.create()");
            return ANSWERED;
        }
        return new Target(id.strip(), port);
    }

    /**
     * The target of a signed {@code /files} URL that names no sandbox: the SDK builds those from
     * {@code E2B_SANDBOX_URL} alone. The signature is {@link Signatures} over the path, operation, user, expiry and
     * the sandbox's envd token, so exactly one sandbox's token reproduces it. Null when the request is not such a
     * URL (API traffic); a signature no sandbox made is answered 401 here, in envd's words.
     */
    private Target signedFilesTarget(HttpServerRequest req) {
        if (!"/files".equals(req.path())) return null;
        String signature = queryParam(req, "signature");
        if (signature == null) return null;
        Signatures.Operation operation = req.method() == HttpMethod.POST ? Signatures.Operation.WRITE
                : req.method() == HttpMethod.GET || req.method() == HttpMethod.HEAD ? Signatures.Operation.READ : null;
        if (operation == null) return null;
        String path = req.getParam("path");
        Long expiration = null;
        String rawExpiration = req.getParam("signature_expiration");
        try {
            if (rawExpiration != null) expiration = Long.parseLong(rawExpiration.strip());
            for (Route route : lifecycle.cachedRoutes()) {
                if (route.envdAccessToken() == null) continue;
                String expected = Signatures.sign(path == null ? "" : path, operation, req.getParam("username"),
                        route.envdAccessToken(), expiration);
                if (Signatures.constantTimeEquals(expected, signature)) {
                    return new Target(route.sandboxId(), SandboxInstance.ENVD_PORT);
                }
            }
        } catch (NumberFormatException e) {
            // not a signature any sandbox made
        }
        respond(req, 401, "", "invalid signature");
        return ANSWERED;
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
        if (target == ANSWERED) return;
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
        if (!trafficAllowed(req, target, route)) return;
        if (target.port() == SandboxInstance.ENVD_PORT && ENVD_INTERNAL.contains(canonicalPath(req.path()))) {
            respond(req, 403, target.sandboxId(), "envd's " + req.path() + " is internal to Capsule and not reachable through the gateway");
            return;
        }
        if (route.state() == SandboxState.PAUSED && route.autoResume()) {
            if (target.port() == SandboxInstance.ENVD_PORT && !mayReachEnvd(req, route)) {
                respond(req, 401, target.sandboxId(), ENVD_UNAUTHORIZED);
                return;
            }
            wake(req, target);
            return;
        }
        if (route.state() != SandboxState.RUNNING) {
            respond(req, 502, target.sandboxId(), "sandbox '" + target.sandboxId() + "' is " + route.state().wire()
                    + "; resume it with Sandbox.connect() before sending it traffic");
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
     * Checks the sandbox's traffic access token on its user ports (envd has its own token); answers 403 with E2B's
     * messages and returns false when it is missing or wrong.
     */
    private static boolean trafficAllowed(HttpServerRequest req, Target target, Route route) {
        if (route.trafficAccessToken() == null || target.port() == SandboxInstance.ENVD_PORT) return true;
        String presented = req.getHeader(TRAFFIC_TOKEN_HEADER);
        if (presented == null || presented.isEmpty()) {
            respond(req, 403, target.sandboxId(), "Sandbox is secured with traffic access token. Token header '"
                    + TRAFFIC_TOKEN_HEADER + "' is missing");
            return false;
        }
        if (!Signatures.constantTimeEquals(route.trafficAccessToken(), presented)) {
            respond(req, 403, target.sandboxId(), "Sandbox is secured with traffic access token. Provided token in"
                    + " header '" + TRAFFIC_TOKEN_HEADER + "' is invalid");
            return false;
        }
        return true;
    }

    /**
     * Whether an envd request could pass envd's check: it carries the access token, is {@code GET /health} (which
     * envd answers to anyone, and which the SDK's {@code isRunning()} sends), or is a signed /files URL (envd verifies
     * the signature). Only such requests wake a paused sandbox; anything else would wake it for a 401.
     */
    private static boolean mayReachEnvd(HttpServerRequest req, Route route) {
        String token = req.getHeader("X-Access-Token");
        if (token != null && Signatures.constantTimeEquals(route.envdAccessToken(), token)) return true;
        if (req.method() == HttpMethod.GET && "/health".equals(req.path())) return true;
        return "/files".equals(req.path()) && queryParam(req, "signature") != null;
    }

    /** A decoded query parameter, or null when absent or when the query is not valid URL encoding. */
    private static String queryParam(HttpServerRequest req, String name) {
        try {
            return req.getParam(name);
        } catch (IllegalArgumentException e) {
            return null;
        }
    }

    /**
     * The path as a server that decodes and normalises it would see it: percent-escapes decoded, empty and "."
     * segments dropped, ".." applied, no trailing slash. So no spelling of an internal endpoint slips past the check.
     */
    static String canonicalPath(String raw) {
        String decoded = raw;
        for (int i = 0; i < 3 && decoded.indexOf('%') >= 0; i++) {
            decoded = percentDecode(decoded);
        }
        var segments = new java.util.ArrayDeque<String>();
        for (String segment : decoded.replace('\\', '/').split("/")) {
            if (segment.isEmpty() || segment.equals(".")) continue;
            if (segment.equals("..")) {
                segments.pollLast();
            } else {
                segments.addLast(segment);
            }
        }
        return "/" + String.join("/", segments);
    }

    /** Decodes %XX escapes; malformed ones stay as they are. */
    private static String percentDecode(String s) {
        var out = new java.io.ByteArrayOutputStream();
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '%' && i + 2 < s.length() && HexFormat.isHexDigit(s.charAt(i + 1)) && HexFormat.isHexDigit(s.charAt(i + 2))) {
                out.write(HexFormat.fromHexDigits(s, i + 1, i + 3));
                i += 2;
            } else {
                out.writeBytes(String.valueOf(c).getBytes(java.nio.charset.StandardCharsets.UTF_8));
            }
        }
        return out.toString(java.nio.charset.StandardCharsets.UTF_8);
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
