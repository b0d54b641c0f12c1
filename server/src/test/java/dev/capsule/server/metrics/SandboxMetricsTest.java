package dev.capsule.server.metrics;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.capsule.runtime.ResourceUsage;
import dev.capsule.server.testing.EnvdStandIn;
import dev.capsule.server.testing.TestServer;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.Optional;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Sandbox metrics through the real API with a 1 s sampler: E2B's SandboxMetric shape, the CPU rate from two
 * readings, nothing while paused, the latest-per-sandbox endpoint, 404s and 400s, and the series kept after a
 * kill. The stand-in driver's usage() burns half a CPU of {@code cpuCount} 2 and uses 100 MB.
 */
class SandboxMetricsTest {

    @TempDir Path tmp;
    EnvdStandIn envd;
    TestServer s;
    final Instant began = Instant.now();

    @BeforeEach
    void start() throws Exception {
        envd = new EnvdStandIn();
        envd.runtime.onUsage = id -> {
            Instant now = Instant.now();
            long cpu = Duration.between(began, now).toNanos(); // one CPU busy out of two: 50 %
            return Optional.of(new ResourceUsage(now, 2, cpu, 100_000_000, 512L << 20, 3_000_000, 42_000, 4_000_000_000L));
        };
        s = new TestServer(tmp.resolve("data"), envd.runtime, "--metrics-interval", "1s");
    }

    @AfterEach
    void stop() throws Exception {
        if (s != null) s.close();
        envd.close();
    }

    private String create() {
        var r = s.post("/v2/sandboxes", "{\"templateID\":\"base\"}");
        assertThat(r.statusCode()).as(r.body()).isEqualTo(201);
        return new JsonObject(r.body()).getString("sandboxID");
    }

    private JsonArray metrics(String id, String query) {
        var r = s.get("/sandboxes/" + id + "/metrics" + query);
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        return new JsonArray(r.body());
    }

    @Test
    void runningSandboxesAreSampledInE2bsShape() {
        String id = create();
        await().atMost(Duration.ofSeconds(20)).until(() -> metrics(id, "").size() >= 2);
        JsonObject m = metrics(id, "").getJsonObject(0);
        assertThat(m.fieldNames()).containsExactlyInAnyOrder("timestamp", "timestampUnix", "cpuCount", "cpuUsedPct",
                "memUsed", "memTotal", "memCache", "diskUsed", "diskTotal");
        assertThat(Instant.parse(m.getString("timestamp")).getEpochSecond()).isEqualTo(m.getLong("timestampUnix"));
        assertThat(m.getInteger("cpuCount")).isEqualTo(2);
        assertThat(m.getDouble("cpuUsedPct")).isBetween(49.0, 51.0);
        assertThat(m.getLong("memUsed")).isEqualTo(100_000_000L);
        assertThat(m.getLong("memTotal")).isEqualTo(512L << 20);
        assertThat(m.getLong("memCache")).isEqualTo(3_000_000L);
        assertThat(m.getLong("diskUsed")).isEqualTo(42_000L);
        assertThat(m.getLong("diskTotal")).isEqualTo(4_000_000_000L);

        // start/end select by unix seconds, inclusive
        long t = m.getLong("timestampUnix");
        assertThat(metrics(id, "?start=" + t + "&end=" + t)).isNotEmpty()
                .allSatisfy(x -> assertThat(((JsonObject) x).getLong("timestampUnix")).isEqualTo(t));
        assertThat(metrics(id, "?end=" + (t - 1))).isEmpty();

        var latest = s.get("/sandboxes/metrics?sandbox_ids=" + id + ",aaaaaaaaaaaaaaaaaaaa");
        assertThat(latest.statusCode()).isEqualTo(200);
        JsonObject sandboxes = new JsonObject(latest.body()).getJsonObject("sandboxes");
        assertThat(sandboxes.fieldNames()).containsExactly(id);
        JsonArray all = metrics(id, "");
        assertThat(sandboxes.getJsonObject(id).getString("timestamp"))
                .isGreaterThanOrEqualTo(all.getJsonObject(all.size() - 1).getString("timestamp"));
    }

    @Test
    void pausedSandboxesReportNothingWhilePausedAndTheSeriesOutlivesTheKill() {
        String id = create();
        await().atMost(Duration.ofSeconds(20)).until(() -> metrics(id, "").size() >= 1);
        assertThat(s.post("/sandboxes/" + id + "/pause", "{}").statusCode()).isEqualTo(204);
        Instant paused = Instant.now();
        int before = metrics(id, "").size();
        // three sampling intervals pass while it is paused
        await().pollDelay(Duration.ofSeconds(3)).atMost(Duration.ofSeconds(10)).until(() -> true);
        assertThat(s.post("/sandboxes/" + id + "/connect", "{\"timeout\":300}").statusCode()).isEqualTo(201);
        Instant resumed = Instant.now();
        await().atMost(Duration.ofSeconds(20)).until(() -> metrics(id, "").size() > before);
        JsonArray series = metrics(id, "");
        assertThat(series.stream().map(x -> Instant.parse(((JsonObject) x).getString("timestamp"))))
                .noneMatch(at -> at.isAfter(paused.plusMillis(200)) && at.isBefore(resumed));

        assertThat(s.delete("/sandboxes/" + id).statusCode()).isEqualTo(204);
        assertThat(metrics(id, "")).hasSizeGreaterThanOrEqualTo(series.size());
    }

    @Test
    void unknownSandboxesAre404AndBadParametersAre400() {
        var unknown = s.get("/sandboxes/aaaaaaaaaaaaaaaaaaaa/metrics");
        assertThat(unknown.statusCode()).isEqualTo(404);
        assertThat(new JsonObject(unknown.body()).getInteger("code")).isEqualTo(404);
        assertThat(s.get("/sandboxes/not-an-id/metrics").statusCode()).isEqualTo(404);
        String id = create();
        for (String bad : new String[] {"?start=abc", "?start=-5", "?end=1.5", "?start=200&end=100"}) {
            var r = s.get("/sandboxes/" + id + "/metrics" + bad);
            assertThat(r.statusCode()).as(bad).isEqualTo(400);
            assertThat(new JsonObject(r.body()).getString("message")).as(bad).containsAnyOf("'start'", "'end'");
        }
        assertThat(s.get("/sandboxes/metrics").statusCode()).isEqualTo(400);
        assertThat(new JsonObject(s.get("/sandboxes/metrics?sandbox_ids=").body()).getString("message")).contains("sandbox_ids");
        assertThat(s.get("/sandboxes/metrics?sandbox_ids=" + "a,".repeat(101)).statusCode()).isEqualTo(400);
    }
}
