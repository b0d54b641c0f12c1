package dev.capsule.server.api;

import static org.assertj.core.api.Assertions.assertThat;

import dev.capsule.runtime.NetworkPolicy;
import dev.capsule.server.store.SandboxState;
import dev.capsule.server.testing.EnvdStandIn;
import dev.capsule.server.testing.RecordingRuntime;
import dev.capsule.server.testing.TestServer;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code PUT /sandboxes/{id}/network} and the network part of the create body, against the recording driver. */
class NetworkApiTest {

    static final String ID = "n0000000000000000001";

    @TempDir Path tmp;
    RecordingRuntime runtime = new RecordingRuntime();
    TestServer s;

    @BeforeEach
    void start() {
        s = new TestServer(tmp.resolve("data"), runtime);
    }

    @AfterEach
    void stop() {
        s.close();
    }

    HttpResponse<String> put(String id, String json) {
        return s.send(s.request("/sandboxes/" + id + "/network").header("Content-Type", "application/json")
                .PUT(HttpRequest.BodyPublishers.ofString(json)).build());
    }

    @Test
    void anUpdateReplacesThePolicyOfARunningSandboxAndIsStoredWithoutThePassword() {
        s.insertSandbox(ID, SandboxState.RUNNING, Instant.now(), Map.of(), "10.11.0.2");
        var response = put(ID, """
                {"allowOut": ["api.example.com", "*.cdn.example.com", "198.51.100.7"], "denyOut": ["0.0.0.0/0"],
                 "egressProxy": {"address": "proxy.example.com:1080", "username": "u", "password": "secret"}}""");
        assertThat(response.statusCode()).isEqualTo(204);
        assertThat(runtime.policies.get(ID)).isEqualTo(new NetworkPolicy(true,
                List.of("api.example.com", "*.cdn.example.com", "198.51.100.7"), List.of("0.0.0.0/0"),
                new NetworkPolicy.EgressProxy("proxy.example.com:1080", "u", "secret")));
        JsonObject detail = new JsonObject(s.get("/sandboxes/" + ID).body());
        assertThat(detail.getJsonObject("network").getJsonArray("allowOut")).hasSize(3);
        assertThat(detail.getJsonObject("network").getJsonObject("egressProxy").encode())
                .contains("proxy.example.com:1080").doesNotContain("secret");

        assertThat(put(ID, "{\"allow_internet_access\": false}").statusCode()).isEqualTo(204);
        assertThat(runtime.policies.get(ID)).as("a full replacement").isEqualTo(NetworkPolicy.NO_INTERNET);
        assertThat(new JsonObject(s.get("/sandboxes/" + ID).body()).getBoolean("allowInternetAccess")).isFalse();
    }

    @Test
    void policiesThatCannotBeEnforcedAreRefusedWithTheReason() {
        s.insertSandbox(ID, SandboxState.RUNNING, Instant.now(), Map.of(), "10.11.0.2");
        assertError(put(ID, "{\"allowOut\": [\"example.com\"]}"), 400, "0.0.0.0/0");
        assertError(put(ID, "{\"denyOut\": [\"example.com\"]}"), 400, "denyOut takes IPv4");
        assertError(put(ID, "{\"denyOut\": [\"10.0.0.1/8\"]}"), 400, "host bits");
        assertError(put(ID, "{\"allowOut\": [\"10.0.0.256\"]}"), 400, "not a valid IPv4 address");
        assertError(put(ID, "{\"allowOut\": [\"::1\"]}"), 400, "IPv6");
        assertError(put(ID, "{\"allowOut\": [\"bad name!\"]}"), 400, "domain name");
        assertError(put(ID, "{\"egressProxy\": {\"address\": \"proxy\"}}"), 400, "host:port");
        assertError(put(ID, "{\"egressProxy\": {\"address\": \"127.0.0.1:1080\"}}"), 400, "loopback");
        assertError(put(ID, "{\"egressProxy\": {\"address\": \"p.example:1080\", \"password\": \"x\"}}"), 400,
                "username");
        assertError(put(ID, "{\"rules\": {\"api.example.com\": [{\"transform\": {\"headers\": {\"a\": \"b\"}}}]}}"),
                400, "not supported");
        assertError(put(ID, "{\"allowOut\": \"example.com\"}"), 400, "array");
        assertThat(runtime.policies).isEmpty();
        assertThat(put(ID, "{\"rules\": {\"api.example.com\": [{}]}, \"allowOut\": [\"api.example.com\"],"
                + " \"denyOut\": [\"0.0.0.0/0\"]}").statusCode()).as("rules without transforms").isEqualTo(204);
    }

    @Test
    void unknownAndPausedSandboxesAre404And409() {
        assertError(put("n0000000000000000009", "{}"), 404, "not found");
        s.insertSandbox(ID, SandboxState.PAUSED, Instant.now(), Map.of(), "10.11.0.2");
        assertError(put(ID, "{}"), 409, "paused");
        assertThat(runtime.policies).isEmpty();
    }

    @Test
    void theCreateBodyIsValidatedTheSameWay() {
        assertError(s.post("/v2/sandboxes", "{\"templateID\": \"base\", \"network\": {\"allowOut\": [\"a.test\"]}}"),
                400, "0.0.0.0/0");
        assertError(s.post("/v2/sandboxes", "{\"templateID\": \"base\", \"network\": {\"denyOut\": [\"a.test\"]}}"),
                400, "denyOut");
    }

    static void assertError(HttpResponse<String> r, int status, String messagePart) {
        assertThat(r.statusCode()).as(r.body()).isEqualTo(status);
        JsonObject body = new JsonObject(r.body());
        assertThat(body.getInteger("code")).isEqualTo(status);
        assertThat(body.getString("message")).contains(messagePart);
    }

    @Test
    void aForkGetsTheSourcesEgressProxyWithItsPassword() throws Exception {
        try (var envd = new EnvdStandIn(); var server = new TestServer(tmp.resolve("data2"), envd.runtime)) {
            var created = server.post("/v2/sandboxes", """
                    {"templateID": "base", "network": {"denyOut": ["0.0.0.0/0"],
                     "egressProxy": {"address": "198.51.100.9:1080", "username": "u", "password": "secret"}}}""");
            assertThat(created.statusCode()).as(created.body()).isEqualTo(201);
            String id = new JsonObject(created.body()).getString("sandboxID");
            var forked = server.post("/sandboxes/" + id + "/fork", "{}");
            assertThat(forked.statusCode()).as(forked.body()).isEqualTo(201);
            String forkId = new JsonArray(forked.body()).getJsonObject(0).getJsonObject("sandbox").getString("sandboxID");
            // the store keeps no password: the fork's policy comes from the driver, so it cannot get out around the proxy
            assertThat(envd.runtime.networkPolicy(forkId)).isEqualTo(new NetworkPolicy(true, List.of(),
                    List.of("0.0.0.0/0"), new NetworkPolicy.EgressProxy("198.51.100.9:1080", "u", "secret")));
        }
    }
}
