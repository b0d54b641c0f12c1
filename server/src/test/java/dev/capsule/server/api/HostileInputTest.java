package dev.capsule.server.api;

import static dev.capsule.server.api.SandboxApiTest.assertError;
import static org.assertj.core.api.Assertions.assertThat;

import dev.capsule.envd.fuzz.RawHttp;
import dev.capsule.server.testing.EnvdStandIn;
import dev.capsule.server.testing.TestServer;
import io.vertx.core.json.JsonObject;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Requests the fuzz run (RestApiFuzzTest) found answered with 500 or worse, each pinned down: now 400s. */
class HostileInputTest {

    @TempDir Path tmp;
    EnvdStandIn envd;
    TestServer s;

    @BeforeEach
    void start() throws Exception {
        envd = new EnvdStandIn();
        s = new TestServer(tmp.resolve("data"), envd.runtime);
    }

    @AfterEach
    void stop() throws Exception {
        s.close();
        envd.close();
    }

    RawHttp.Response raw(String method, String target, String host) throws Exception {
        return RawHttp.exchange("127.0.0.1", s.server.port(), RawHttp.request(method, target,
                List.<String[]>of(new String[] {"Host", host}, new String[] {"X-API-Key", s.apiKey}), null, false),
                Duration.ofSeconds(10));
    }

    static void assert400(RawHttp.Response r, String messagePart) {
        assertThat(r.status()).as(r.text()).isEqualTo(400);
        assertThat(new JsonObject(r.text()).getString("message")).contains(messagePart);
    }

    @Test
    void hostHeadersThatAreNoHostAre400() throws Exception {
        for (String host : List.of("\u0b82q", "[::1", "a b", "h:99999999", "h:x", "a/b", "[zz]:1", "x".repeat(300))) {
            assert400(raw("GET", "/v2/sandboxes", new String(host.getBytes(StandardCharsets.UTF_8), StandardCharsets.ISO_8859_1)),
                    "Host header");
        }
        // control characters are refused by the HTTP decoder itself, before any handler
        assertThat(raw("GET", "/v2/sandboxes", "a\u0010b").status()).isEqualTo(400);
        for (String host : List.of("localhost", "127.0.0.1:3000", "[::1]:80", "49983-abc.localhost:3000", "Example.COM")) {
            assertThat(raw("GET", "/v2/sandboxes", host).status()).as(host).isEqualTo(200);
        }
    }

    @Test
    void brokenPercentEscapesInThePathOrAnApiQueryAre400() throws Exception {
        assert400(raw("GET", "/sandboxes/%u0000", "localhost"), "request path");
        assert400(raw("GET", "/sandboxes/abc%2", "localhost"), "request path");
        assert400(raw("GET", "/v2/sandboxes?metadata=%&state=%2", "localhost"), "query");
        assert400(raw("GET", "/files?path=x&signature=%", "localhost"), "query");
        // a sandbox's own server gets its query as sent
        assertThat(raw("GET", "/x?q=100%", "49983-unknown0000000000000.localhost").status()).isEqualTo(502);
    }

    @Test
    void anEmptySandboxIdIsAnsweredNotLeftHanging() throws Exception {
        var r = RawHttp.exchange("127.0.0.1", s.server.port(), RawHttp.request("TRACE", "/sandboxes",
                List.<String[]>of(new String[] {"Host", "localhost"}, new String[] {"E2b-Sandbox-Id", ""},
                        new String[] {"E2b-Sandbox-Port", "1"}), null, false), Duration.ofSeconds(10));
        assert400(r, "E2b-Sandbox-Id is empty");
    }

    @Test
    void envVarsMustFitAProcessEnvironmentAndMapsHaveABound() {
        assertError(s.post("/v2/sandboxes", "{\"templateID\":\"base\",\"envVars\":{\"A=B\":\"x\"}}"), 400, "neither '=' nor NUL");
        assertError(s.post("/v2/sandboxes", "{\"templateID\":\"base\",\"envVars\":{\"\":\"x\"}}"), 400, "non-empty");
        assertError(s.post("/v2/sandboxes", "{\"templateID\":\"base\",\"envVars\":{\"A\":\"x\\u0000y\"}}"), 400, "NUL");
        assertError(s.post("/v2/sandboxes", "{\"templateID\":\"base\",\"metadata\":{\"a\":\"\\ud800\"}}"), 400, "surrogate");
        assertError(s.post("/v2/sandboxes", "{\"templateID\":\"base\",\"metadata\":{\"a\":\"" + "x".repeat(70_000) + "\"}}"),
                400, "at most 65536");
        assertError(s.post("/v2/sandboxes", "{\"templateID\":\"base\\u0000\"}"), 400, "without control characters");
        assertThat(s.post("/v2/sandboxes", "{\"templateID\":\"base\",\"envVars\":{\"A\":\"é=😀\"},\"metadata\":{\"k\":\"\\ud83d\\ude00\"}}")
                .statusCode()).isEqualTo(201);
    }
}
