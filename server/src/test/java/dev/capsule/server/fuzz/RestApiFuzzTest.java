package dev.capsule.server.fuzz;

import static org.assertj.core.api.Assertions.assertThat;

import dev.capsule.envd.fuzz.FuzzReport;
import dev.capsule.envd.fuzz.Hostile;
import dev.capsule.envd.fuzz.RawHttp;
import dev.capsule.server.store.SandboxRecord;
import dev.capsule.server.testing.EnvdStandIn;
import dev.capsule.server.testing.RecordingRuntime;
import dev.capsule.server.testing.TestServer;
import io.vertx.core.json.JsonObject;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Hostile input against a real server (SQLite store, recording runtime whose sandboxes' envd is a stand-in):
 * malformed JSON, wrong types, oversized bodies, headers and URLs, path tricks, NUL bytes, huge metadata and env
 * maps, unicode, random methods and paths, and gateway routing headers. Every answer must be a 4xx, or a 2xx for
 * what is valid, or the gateway's 502 / a deliberate 503 with a JSON message; never a 500, a hang or a crash.
 * Afterwards the server is healthy and, once the sandboxes the fuzz created are killed, no row and no instance is
 * left. Fixed seed and counts: the same requests every run. Counts go to target/fuzz/rest-api.md (docs/SECURITY.md).
 */
class RestApiFuzzTest {

    static final long SEED = Long.getLong("capsule.fuzz.seed", 20_250_605L);
    /** Requests per category; the slow ones (megabyte bodies, thousands of map entries) send a fifth of that. */
    static final int ROUNDS = Integer.getInteger("capsule.fuzz.rounds", 150);
    static final Duration TIMEOUT = Duration.ofSeconds(5);
    static final List<String> POSTS = List.of("/sandboxes", "/v2/sandboxes", "/sandboxes/%s/connect",
            "/v2/sandboxes/%s/connect", "/sandboxes/%s/timeout", "/sandboxes/%s/pause", "/sandboxes/%s/resume",
            "/sandboxes/%s/refreshes");
    static final List<String> PATHS = List.of("/sandboxes", "/v2/sandboxes", "/sandboxes/%s", "/health",
            "/sandboxes/%s/connect", "/v2/sandboxes/%s/connect", "/sandboxes/%s/timeout", "/sandboxes/%s/pause",
            "/sandboxes/%s/resume", "/sandboxes/%s/refreshes", "/files", "/init", "/process.Process/Start", "/");

    @TempDir Path tmp;
    EnvdStandIn envd;
    RecordingRuntime runtime;
    TestServer s;
    Hostile h;
    FuzzReport report;
    final Set<String> created = ConcurrentHashMap.newKeySet();
    String validId;

    @BeforeEach
    void start() throws Exception {
        envd = new EnvdStandIn();
        envd.other = req -> req.response().end("envd");
        runtime = envd.runtime;
        // Limits high enough that the fuzz itself is not refused for its pace.
        s = new TestServer(tmp.resolve("data"), runtime, "--rate-limit-requests", "0", "--rate-limit-creates", "0",
                "--max-sandboxes-per-key", "0");
        h = new Hostile(SEED);
        report = new FuzzReport("REST API and gateway", RestApiFuzzTest::acceptable);
        var r = s.post("/v2/sandboxes", "{\"templateID\":\"base\",\"timeout\":600}");
        validId = new JsonObject(r.body()).getString("sandboxID");
        created.add(validId);
    }

    @AfterEach
    void stop() throws Exception {
        s.close();
        envd.close();
    }

    /**
     * 1xx-4xx; 2xx for what was valid; the gateway's 502 and deliberate 503s with a JSON message (a HEAD response
     * has no body to carry one).
     */
    static boolean acceptable(String method, RawHttp.Response r) {
        if (r.status() >= 100 && r.status() < 500) return true;
        if (r.status() == 502 || r.status() == 503) {
            if (method.equals("HEAD")) return true;
            try {
                String message = new JsonObject(r.text()).getString("message");
                return message != null && !message.isBlank();
            } catch (RuntimeException e) {
                return false;
            }
        }
        return false;
    }

    @Test
    void hostileRequestsGetNoServerErrorAndLeaveNothingBehind() throws Exception {
        category("malformed JSON bodies", () -> post(pathOf(h.pick(POSTS)), h.brokenJson(), "application/json"));
        category("wrong types", this::wrongTypes);
        category("oversized bodies", ROUNDS / 5, this::oversizedBody);
        category("oversized headers and URLs", this::oversizedHeaders);
        category("path tricks", this::pathTricks);
        category("NUL bytes and control characters", this::nulBytes);
        category("huge metadata and env maps", ROUNDS / 5, this::hugeMaps);
        category("unicode", this::unicode);
        category("list queries", this::listQueries);
        category("random methods and paths", () -> send(h.pick(Hostile.METHODS), h.target(paths()), apiHeaders(),
                h.chance(0.5) ? null : h.brokenJson()));
        category("gateway routing", this::gateway);

        // still healthy, and nothing left once the fuzz's own sandboxes are gone
        assertThat(get("/health").status()).isEqualTo(204);
        for (String id : created) s.delete("/sandboxes/" + id);
        assertThat(s.server.store().allSandboxes()).extracting(SandboxRecord::id).isEmpty();
        assertThat(runtime.onHost).isEmpty();
        assertThat(runtime.destroyed).containsAll(runtime.started.stream().map(spec -> spec.sandboxId()).toList());

        Path written = report.write(Path.of("target", "fuzz"), "rest-api.md", SEED,
                "./mvnw -q -B -o -pl server -am test -Dtest=RestApiFuzzTest -Dsurefire.failIfNoSpecifiedTests=false");
        System.out.println(report.markdown(SEED, "see " + written));
        assertThat(report.failures()).as("responses that break the rule").isEmpty();
    }

    // ---- categories ----

    private void wrongTypes() throws IOException {
        var body = new LinkedHashMap<String, Object>();
        for (String field : List.of("templateID", "timeout", "autoPause", "autoPauseMemory", "autoResume", "secure",
                "allow_internet_access", "network", "metadata", "envVars", "mcp", "volumeMounts", "memory", "duration")) {
            if (h.chance(0.5)) body.put(field, h.value(2));
        }
        if (h.chance(0.5)) body.put("templateID", "base");
        if (h.chance(0.3)) {
            var network = new LinkedHashMap<String, Object>();
            for (String f : List.of("allowPublicTraffic", "allowOut", "denyOut", "egressProxy", "maskRequestHost")) {
                if (h.chance(0.5)) network.put(f, h.value(2));
            }
            body.put("network", network);
        }
        post(pathOf(h.pick(POSTS)), Hostile.json(body).getBytes(StandardCharsets.UTF_8), "application/json");
    }

    private void oversizedBody() throws IOException {
        int size = h.between(1024 * 1024 + 1, 2 * 1024 * 1024);
        switch (h.between(0, 3)) {
            case 0 -> post(pathOf(h.pick(POSTS)), ("{\"templateID\":\"base\",\"metadata\":{\"a\":\"" + "x".repeat(size) + "\"}}")
                    .getBytes(StandardCharsets.UTF_8), "application/json");
            case 1 -> { // a length that is never sent
                var headers = apiHeaders();
                headers.add(new String[] {"Content-Type", "application/json"});
                headers.add(new String[] {"Content-Length", h.pick("99999999999", "1073741824", "-1", "1e9", "18446744073709551616")});
                exchange("POST", pathOf(h.pick(POSTS)), headers, "{}".getBytes(StandardCharsets.UTF_8), false);
            }
            default -> { // chunked, past the limit
                var headers = apiHeaders();
                headers.add(new String[] {"Content-Type", "application/json"});
                headers.add(new String[] {"Transfer-Encoding", "chunked"});
                exchange("POST", pathOf(h.pick(POSTS)), headers, chunked(new byte[size]), false);
            }
        }
    }

    private void oversizedHeaders() throws IOException {
        var headers = apiHeaders();
        switch (h.between(0, 4)) {
            case 0 -> headers.add(new String[] {"X-Big", "v".repeat(h.between(8 * 1024, 200 * 1024))});
            case 1 -> {
                for (int i = h.between(100, 3000); i > 0; i--) headers.add(new String[] {"X-H" + i, "v"});
            }
            case 2 -> headers.set(0, new String[] {"X-API-Key", s.apiKey + "x".repeat(h.between(100, 100_000))});
            default -> {
                exchange("GET", "/v2/sandboxes?metadata=" + "a".repeat(h.between(4 * 1024, 200 * 1024)), headers, null, true);
                return;
            }
        }
        exchange("GET", pathOf(h.pick(PATHS)), headers, null, true);
    }

    private void pathTricks() throws IOException {
        String id = h.pick(validId, "..", "%2e%2e", "../../health", "%2F", validId + "%00", validId + "/..",
                "a".repeat(h.between(21, 5000)), h.string(h.between(1, 6)), "", validId.toUpperCase(), "%u0000");
        String path = h.pick("/sandboxes/" + id, "/sandboxes/" + id + "/connect", "/sandboxes/" + id + "/../../v2/sandboxes",
                "/v2/sandboxes/" + id + "/connect", "//sandboxes//" + id, "/sandboxes/./" + id, "/./v2/./sandboxes",
                "/sandboxes/" + id + "/timeout/..%2f..%2f", "/%2e%2e/%2e%2e/etc/passwd", "/sandboxes/" + id + "%2fpause");
        send(h.pick("GET", "DELETE", "POST"), Hostile.escapeForRequestLine(path), apiHeaders(),
                "{\"timeout\":30}".getBytes(StandardCharsets.UTF_8));
    }

    private void nulBytes() throws IOException {
        String nul = h.pick("\u0000", "a\u0000b", "\u0001\u0002", "\u007f", "\u0000".repeat(50), "base\u0000");
        switch (h.between(0, 4)) {
            case 0 -> create(Map.of("templateID", h.pick("base", nul), "metadata", Map.of(nul, nul), "envVars", Map.of(nul, nul)));
            case 1 -> { // raw NUL and controls in a header value and in the request target
                var headers = apiHeaders();
                headers.add(new String[] {"X-Evil", "a" + nul + "b"});
                exchange("GET", "/v2/sandboxes?metadata=" + nul, headers, null, true);
            }
            case 2 -> exchange("GET", "/sandboxes/" + nul, apiHeaders(), null, true);
            default -> create(Map.of("templateID", "base", "network", Map.of("allowOut", List.of(nul), "denyOut", List.of(nul))));
        }
    }

    private void hugeMaps() throws IOException {
        int entries = h.pick(1, 10, 1000, 5000);
        int valueLength = Math.max(1, 900_000 / entries / 2);
        create(Map.of("templateID", "base", "metadata", h.stringMap(entries, Math.min(valueLength, 2000)),
                "envVars", h.stringMap(entries, Math.min(valueLength, 2000))));
    }

    private void unicode() throws IOException {
        var body = new LinkedHashMap<String, Object>();
        body.put("templateID", h.pick("base", h.string(), "bäse", "ｂａｓｅ", "base\u200B"));
        body.put("metadata", Map.of(h.string(), h.string()));
        body.put("envVars", Map.of(h.string(), h.string()));
        if (h.chance(0.5)) body.put("timeout", h.number());
        create(body);
    }

    private void listQueries() throws IOException {
        var q = new ArrayList<String>();
        for (String p : List.of("metadata", "state", "order", "limit", "nextToken", "startedAfter", "template")) {
            if (h.chance(0.5)) q.add(p + "=" + h.pick(h.string(), "running,paused", "asc", "0", "101", "-1", "%",
                    "%%", "%2", "%00", "a%3Db%26c", "9999999999999999999", "AAAA", h.huge(3000)));
        }
        send("GET", Hostile.escapeForRequestLine(h.pick("/v2/sandboxes", "/sandboxes") + "?" + String.join("&", q)),
                apiHeaders(), null);
    }

    private void gateway() throws IOException {
        var headers = new ArrayList<String[]>();
        String id = h.pick(validId, validId, h.string(h.between(0, 5)), "unknown0000000000000", "../etc", validId + " ");
        switch (h.between(0, 4)) {
            case 0 -> {
                headers.add(new String[] {"E2b-Sandbox-Id", id});
                if (h.chance(0.8)) headers.add(new String[] {"E2b-Sandbox-Port", h.pick("49983", "49983", "0", "-1", "65536",
                        "abc", "1", String.valueOf(h.between(1, 65536)), " 49983 ", "4998\u00003")});
            }
            case 1 -> headers.add(new String[] {"Host", h.pick("49983", String.valueOf(h.between(0, 99999)), "x", "")
                    + "-" + id + h.pick(".localhost", ".localhost:" + s.server.port(), ".evil.com", ".localhost.", "")});
            case 2 -> headers.add(new String[] {"Host", h.string(h.between(0, 10))});
            default -> { // signed-URL lookups and token headers with garbage
                exchange(h.pick("GET", "POST", "HEAD"), Hostile.escapeForRequestLine("/files?path=" + h.string(3)
                        + "&signature=" + h.pick("v1_", "", h.string(4)) + "&signature_expiration=" + h.pick("1", "x", "-1",
                        "99999999999999999999")), headers, null, true);
                return;
            }
        }
        if (h.chance(0.3)) headers.add(new String[] {"X-Access-Token", h.string(3)});
        if (h.chance(0.3)) headers.add(new String[] {"e2b-traffic-access-token", h.string(3)});
        String target = h.target(paths());
        byte[] body = h.chance(0.3) ? h.brokenJson() : null;
        if (h.chance(0.1)) {
            headers.add(new String[] {"Upgrade", "websocket"});
            headers.add(new String[] {"Connection", "Upgrade"});
            headers.add(new String[] {"Sec-WebSocket-Key", h.pick("dGhlIHNhbXBsZSBub25jZQ==", h.string(2))});
            headers.add(new String[] {"Sec-WebSocket-Version", h.pick("13", "8", h.string(1))});
        }
        exchange(h.pick(Hostile.METHODS), target, headers, body, true);
    }

    // ---- plumbing ----

    interface Step {
        void run() throws IOException;
    }

    private void category(String name, Step step) throws IOException {
        category(name, ROUNDS, step);
    }

    private void category(String name, int rounds, Step step) throws IOException {
        current = name;
        long started = System.nanoTime();
        for (int i = 0; i < rounds; i++) step.run();
        System.out.printf("%s: %d requests in %d ms%n", name, rounds, (System.nanoTime() - started) / 1_000_000);
        assertThat(get("/health").status()).as("healthy after " + name).isEqualTo(204);
    }

    private String current;

    private List<String> paths() {
        return PATHS.stream().map(this::pathOf).toList();
    }

    private String pathOf(String template) {
        return template.contains("%s") ? template.formatted(h.chance(0.7) ? validId : h.pick("unknown0000000000000", "x")) : template;
    }

    private List<String[]> apiHeaders() {
        var headers = new ArrayList<String[]>();
        headers.add(new String[] {"X-API-Key", s.apiKey});
        headers.add(new String[] {"Host", "127.0.0.1:" + s.server.port()});
        return headers;
    }

    private void create(Map<String, Object> body) throws IOException {
        post(h.pick("/sandboxes", "/v2/sandboxes"), Hostile.json(body).getBytes(StandardCharsets.UTF_8), "application/json");
    }

    private void post(String path, byte[] body, String contentType) throws IOException {
        var headers = apiHeaders();
        headers.add(new String[] {"Content-Type", contentType});
        exchange("POST", Hostile.escapeForRequestLine(path), headers, body, true);
    }

    private void send(String method, String target, List<String[]> headers, byte[] body) throws IOException {
        exchange(method, target, headers, body, true);
    }

    private RawHttp.Response get(String path) throws IOException {
        return RawHttp.exchange("127.0.0.1", s.server.port(), RawHttp.request("GET", path,
                List.<String[]>of(new String[] {"Host", "127.0.0.1"}), null, false), TIMEOUT);
    }

    private void exchange(String method, String target, List<String[]> headers, byte[] body, boolean contentLength)
            throws IOException {
        RawHttp.Response r = RawHttp.exchange("127.0.0.1", s.server.port(),
                RawHttp.request(method, target, headers, body, contentLength), TIMEOUT);
        if (r.status() == 201) {
            try {
                String id = new JsonObject(r.text()).getString("sandboxID");
                if (id != null) created.add(id);
            } catch (RuntimeException e) {
                // not a create
            }
        }
        report.record(current, method, method + " " + target + " (" + (body == null ? 0 : body.length) + " bytes) "
                + headers.stream().map(x -> x[0] + ": " + x[1]).toList(), r);
    }

    private static byte[] chunked(byte[] data) {
        var out = new ByteArrayOutputStream();
        for (int i = 0; i < data.length; i += 64 * 1024) {
            int n = Math.min(64 * 1024, data.length - i);
            out.writeBytes((Integer.toHexString(n) + "\r\n").getBytes(StandardCharsets.US_ASCII));
            out.write(data, i, n);
            out.writeBytes("\r\n".getBytes(StandardCharsets.US_ASCII));
        }
        out.writeBytes("0\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
        return out.toByteArray();
    }
}
