package dev.capsule.server.api;

import static dev.capsule.server.api.SandboxApiTest.assertError;
import static org.assertj.core.api.Assertions.assertThat;

import dev.capsule.server.store.ApiKeyRecord;
import dev.capsule.server.testing.EnvdStandIn;
import dev.capsule.server.testing.TestServer;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Traffic access tokens, per-key rate limits and the sandbox quota through the real API. */
class AccessApiTest {

    @TempDir Path tmp;
    EnvdStandIn envd;
    TestServer s;

    @BeforeEach
    void start() throws Exception {
        envd = new EnvdStandIn();
    }

    @AfterEach
    void stop() throws Exception {
        if (s != null) s.close();
        envd.close();
    }

    void serve(String... args) {
        s = new TestServer(tmp.resolve("data"), envd.runtime, args);
    }

    JsonObject created(HttpResponse<String> r) {
        assertThat(r.statusCode()).as(r.body()).isEqualTo(201);
        return new JsonObject(r.body());
    }

    @Test
    void closedUserPortsGetATrafficTokenThatConnectReturnsAndInfoDoesNot() {
        serve();
        JsonObject open = created(s.post("/v2/sandboxes", "{\"templateID\":\"base\"}"));
        assertThat(open.containsKey("trafficAccessToken")).isTrue();
        assertThat(open.getValue("trafficAccessToken")).isNull();

        JsonObject closed = created(s.post("/v2/sandboxes",
                "{\"templateID\":\"base\",\"network\":{\"allowPublicTraffic\":false}}"));
        String token = closed.getString("trafficAccessToken");
        assertThat(token).matches("[0-9a-f]{64}").isNotEqualTo(closed.getString("envdAccessToken"));
        String id = closed.getString("sandboxID");

        var connected = new JsonObject(s.post("/v2/sandboxes/" + id + "/connect", "{\"timeout\":60}").body());
        assertThat(connected.getString("trafficAccessToken")).isEqualTo(token);

        var info = new JsonObject(s.get("/sandboxes/" + id).body());
        assertThat(info.getJsonObject("network").getBoolean("allowPublicTraffic")).isFalse();
        assertThat(info.containsKey("trafficAccessToken")).isFalse(); // not in E2B's SandboxDetail
        var listed = new JsonArray(s.get("/v2/sandboxes").body());
        assertThat(listed.encode()).doesNotContain(token).doesNotContain(closed.getString("envdAccessToken"));
        assertThat(s.server.store().findSandbox(id).orElseThrow().apiKeyId()).isEqualTo(s.apiKey.substring(4, 12));
    }

    @Test
    void closingUserPortsNeedsASecuredSandboxAsInE2b() {
        serve();
        assertError(s.post("/sandboxes", "{\"templateID\":\"base\",\"secure\":false,\"network\":{\"allowPublicTraffic\":false}}"),
                400, "without public access unless you enable secure envd access");
        created(s.post("/sandboxes", "{\"templateID\":\"base\",\"secure\":true,\"network\":{\"allowPublicTraffic\":false}}"));
        // v2 has no 'secure': every sandbox is secured
        created(s.post("/v2/sandboxes", "{\"templateID\":\"base\",\"secure\":false,\"network\":{\"allowPublicTraffic\":false}}"));
        assertError(s.post("/v2/sandboxes", "{\"templateID\":\"base\",\"network\":{\"allowPublicTraffic\":\"no\"}}"),
                400, "'allowPublicTraffic' must be true or false");
        assertError(s.post("/sandboxes", "{\"templateID\":\"base\",\"secure\":1}"), 400, "'secure' must be true or false");
    }

    @Test
    void requestsOverTheKeysLimitGet429WithRetryAfter() {
        serve("--rate-limit-requests", "3", "--rate-limit-interval", "60s");
        for (int i = 0; i < 3; i++) assertThat(s.get("/v2/sandboxes").statusCode()).isEqualTo(200);
        var refused = s.get("/v2/sandboxes");
        assertError(refused, 429, "more than 3 requests in 60 s");
        assertThat(refused.headers().firstValue("Retry-After")).hasValueSatisfying(v -> assertThat(v).matches("[1-9][0-9]*"));
        // health is not an API call of a key; a wrong key is refused before any limit is counted
        assertThat(s.send(HttpRequest.newBuilder(URI.create(s.url("/health"))).GET().build()).statusCode()).isEqualTo(204);
        assertThat(s.send(HttpRequest.newBuilder(URI.create(s.url("/v2/sandboxes")))
                .header("X-API-Key", "e2b_" + "0".repeat(40)).GET().build()).statusCode()).isEqualTo(401);
        // another key has its own budget
        String other = s.server.apiKeys().create("other").key();
        assertThat(s.send(HttpRequest.newBuilder(URI.create(s.url("/v2/sandboxes"))).header("X-API-Key", other).GET().build())
                .statusCode()).isEqualTo(200);
    }

    @Test
    void createsPerSecondAndTheSandboxQuotaGet429() {
        serve("--rate-limit-creates", "1", "--max-sandboxes-per-key", "2");
        created(s.post("/v2/sandboxes", "{\"templateID\":\"base\",\"timeout\":600}"));
        var tooFast = s.post("/v2/sandboxes", "{\"templateID\":\"base\"}");
        assertError(tooFast, 429, "more than 1 sandboxes in a second");
        assertThat(tooFast.headers().firstValue("Retry-After")).hasValue("1");

        // the quota: lift the per-second limit for this key and fill it
        s.server.apiKeys().setLimits(s.apiKey, new ApiKeyRecord.Limits(null, 0, null));
        String second = created(s.post("/v2/sandboxes", "{\"templateID\":\"base\",\"timeout\":300}")).getString("sandboxID");
        var full = s.post("/v2/sandboxes", "{\"templateID\":\"base\"}");
        assertError(full, 429, "has 2 sandboxes (running or paused), its limit");
        assertThat(full.headers().firstValue("Retry-After")).hasValueSatisfying(v -> assertThat(Long.parseLong(v)).isBetween(1L, 300L));
        // a paused one still counts
        assertThat(s.post("/sandboxes/" + second + "/pause", "{}").statusCode()).isEqualTo(204);
        assertError(s.post("/v2/sandboxes", "{\"templateID\":\"base\"}"), 429, "its limit");
        assertThat(s.delete("/sandboxes/" + second).statusCode()).isEqualTo(204);
        // creates that fail give their place back: after two, the last place still takes a sandbox
        assertError(s.post("/v2/sandboxes", "{\"templateID\":\"nope\"}"), 404, "not found");
        assertError(s.post("/v2/sandboxes", "{\"templateID\":\"nope\"}"), 404, "not found");
        created(s.post("/v2/sandboxes", "{\"templateID\":\"base\"}"));
    }

    @Test
    void forksCountAgainstTheCallersQuotaAndKeepTheSourcesTrafficToken() {
        serve("--max-sandboxes-per-key", "3");
        JsonObject source = created(s.post("/v2/sandboxes",
                "{\"templateID\":\"base\",\"network\":{\"allowPublicTraffic\":false}}"));
        // room for two more: two forks start, the third is refused in its place
        var r = s.post("/sandboxes/" + source.getString("sandboxID") + "/fork", "{\"count\":3}");
        assertThat(r.statusCode()).as(r.body()).isEqualTo(201);
        JsonArray results = new JsonArray(r.body());
        assertThat(results).hasSize(3);
        for (int i = 0; i < 2; i++) {
            JsonObject fork = results.getJsonObject(i).getJsonObject("sandbox");
            assertThat(fork).as(results.encode()).isNotNull();
            // a fork of a closed sandbox is closed too, with its own token
            String token = fork.getString("trafficAccessToken");
            assertThat(token).isNotBlank().isNotEqualTo(source.getString("trafficAccessToken"));
        }
        JsonObject refused = results.getJsonObject(2).getJsonObject("error");
        assertThat(refused.getInteger("code")).isEqualTo(429);
        assertThat(refused.getString("message")).contains("its limit");
        // full now: a whole fork request is refused, and leaves nothing behind
        assertError(s.post("/sandboxes/" + source.getString("sandboxID") + "/fork", "{}"), 429, "its limit");
        assertThat(new JsonArray(s.get("/v2/sandboxes").body())).hasSize(3);
    }
}
