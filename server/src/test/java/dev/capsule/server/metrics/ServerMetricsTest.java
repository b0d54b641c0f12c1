package dev.capsule.server.metrics;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.capsule.server.testing.EnvdStandIn;
import dev.capsule.server.testing.Receiver;
import dev.capsule.server.testing.TestServer;
import io.vertx.core.json.JsonObject;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The server's Prometheus endpoint: what it counts, by route template, and its three access modes. */
class ServerMetricsTest {

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

    private HttpResponse<String> scrape(String key) {
        var b = HttpRequest.newBuilder(URI.create(s.url("/metrics"))).GET();
        if (key != null) b.header("Authorization", "Bearer " + key);
        return s.send(b.build());
    }

    @Test
    void publicByDefaultWithRequestsByRouteTemplateSandboxesTransitionsAndWebhooks() throws Exception {
        s = new TestServer(tmp.resolve("data"), envd.runtime);
        try (var receiver = new Receiver(envd.vertx)) {
            assertThat(s.post("/events/webhooks", "{\"name\":\"n\",\"url\":\"" + receiver.url() + "\",\"events\":"
                    + "[\"sandbox.lifecycle.created\"],\"signatureSecret\":\"k\"}").statusCode()).isEqualTo(201);
            var created = s.post("/v2/sandboxes", "{\"templateID\":\"base\"}");
            String id = new JsonObject(created.body()).getString("sandboxID");
            assertThat(s.post("/sandboxes/" + id + "/pause", "{}").statusCode()).isEqualTo(204);
            assertThat(s.post("/sandboxes/" + id + "/connect", "{\"timeout\":60}").statusCode()).isEqualTo(201);
            assertThat(s.get("/sandboxes/" + id).statusCode()).isEqualTo(200);
            assertThat(s.get("/sandboxes/metrics?sandbox_ids=" + id).statusCode()).isEqualTo(200);
            assertThat(s.get("/no/such/endpoint").statusCode()).isEqualTo(404);
            await().atMost(Duration.ofSeconds(10)).until(() -> receiver.requests.size() == 1);

            var r = scrape(null);
            assertThat(r.statusCode()).isEqualTo(200);
            assertThat(r.headers().firstValue("Content-Type")).hasValueSatisfying(t -> assertThat(t).startsWith("text/plain"));
            String text = r.body();
            assertThat(text).contains("capsule_http_requests_seconds_count{method=\"GET\",route=\"/sandboxes/:id\",status=\"200\"} 1");
            assertThat(text).contains("route=\"/sandboxes/metrics\"", "route=\"/v2/sandboxes\"", "route=\"unmatched\"");
            assertThat(text).contains("capsule_sandboxes{state=\"running\"} 1");
            assertThat(text).contains("capsule_sandbox_transition_seconds_count{transition=\"create\"} 1",
                    "capsule_sandbox_transition_seconds_count{transition=\"pause\"} 1",
                    "capsule_sandbox_transition_seconds_count{transition=\"resume\"} 1");
            assertThat(text).contains("capsule_webhook_deliveries_total{outcome=\"delivered\"} 1");
            assertThat(text).contains("jvm_memory_used_bytes");
            assertThat(text).doesNotContain(id); // no sandbox ids in labels
        }
    }

    @Test
    void keyModeWantsAnApiKeyAndOffModeServesNothing() {
        s = new TestServer(tmp.resolve("data"), envd.runtime, "--metrics-endpoint", "key");
        assertThat(scrape(null).statusCode()).isEqualTo(401);
        assertThat(scrape("e2b_" + "0".repeat(40)).statusCode()).isEqualTo(401);
        assertThat(scrape(s.apiKey).statusCode()).isEqualTo(200);
        assertThat(s.send(s.request("/metrics").GET().build()).statusCode()).isEqualTo(200); // X-API-Key
        s.close();
        s = new TestServer(tmp.resolve("data2"), envd.runtime, "--metrics-endpoint", "off");
        assertThat(s.send(s.request("/metrics").GET().build()).statusCode()).isEqualTo(404);
    }
}
