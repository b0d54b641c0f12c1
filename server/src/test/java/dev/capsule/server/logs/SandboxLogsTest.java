package dev.capsule.server.logs;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.capsule.server.testing.EnvdStandIn;
import dev.capsule.server.testing.TestServer;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Sandbox logs through the real API: console lines copied with their levels, lifecycle messages, what was written
 * just before a kill, readable after it; the v1 and v2 shapes, v2's cursor, direction, level and search; 404s and
 * 400s. The stand-in driver serves the console from a list.
 */
class SandboxLogsTest {

    @TempDir Path tmp;
    EnvdStandIn envd;
    TestServer s;

    @BeforeEach
    void start() throws Exception {
        envd = new EnvdStandIn();
        s = new TestServer(tmp.resolve("data"), envd.runtime, "--metrics-interval", "1s");
    }

    @AfterEach
    void stop() throws Exception {
        if (s != null) s.close();
        envd.close();
    }

    private String create(List<String> console) {
        var r = s.post("/v2/sandboxes", "{\"templateID\":\"base\"}");
        assertThat(r.statusCode()).as(r.body()).isEqualTo(201);
        String id = new JsonObject(r.body()).getString("sandboxID");
        envd.runtime.consoles.put(id, console);
        return id;
    }

    private JsonArray v2(String id, String query) {
        var r = s.get("/v2/sandboxes/" + id + "/logs" + query);
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        return new JsonObject(r.body()).getJsonArray("logs");
    }

    private static List<String> messages(JsonArray logs) {
        return logs.stream().map(l -> ((JsonObject) l).getString("message")).toList();
    }

    @Test
    void consoleAndLifecycleLinesAreKeptWithLevelsAndOutliveTheKill() {
        var console = new CopyOnWriteArrayList<>(List.of("envd listening on 0.0.0.0:49983",
                "Nov 27, 2026 6:34:39 PM dev.capsule.envd.files.FilesEndpoint upload",
                "WARNING: upload of /tmp/x failed: disk full",
                "{\"level\":\"error\",\"message\":\"structured trouble\"}"));
        String id = create(console);
        await().atMost(Duration.ofSeconds(20)).until(() -> messages(v2(id, "")).contains("structured trouble"));
        JsonArray logs = v2(id, "");
        assertThat(messages(logs)).containsSubsequence("sandbox created from template base",
                "envd listening on 0.0.0.0:49983", "upload of /tmp/x failed: disk full", "structured trouble");
        JsonObject warning = logs.stream().map(JsonObject.class::cast)
                .filter(l -> l.getString("message").startsWith("upload")).findFirst().orElseThrow();
        assertThat(warning.getString("level")).isEqualTo("warn");
        assertThat(warning.getJsonObject("fields").getString("logger")).isEqualTo("dev.capsule.envd.files.FilesEndpoint");
        assertThat(warning.getJsonObject("fields").getString("source")).isEqualTo("console");

        // written right before the kill: the kill copies it before the console goes
        console.add("last words");
        assertThat(s.delete("/sandboxes/" + id).statusCode()).isEqualTo(204);
        assertThat(messages(v2(id, ""))).endsWith("last words", "sandbox killed").doesNotHaveDuplicates();

        var v1 = s.get("/sandboxes/" + id + "/logs");
        assertThat(v1.statusCode()).isEqualTo(200);
        JsonObject body = new JsonObject(v1.body());
        assertThat(body.getJsonArray("logs").getJsonObject(0).fieldNames()).containsExactlyInAnyOrder("timestamp", "line");
        assertThat(body.getJsonArray("logs").getJsonObject(0).getString("line")).isEqualTo("sandbox created from template base");
        assertThat(body.getJsonArray("logEntries").getJsonObject(0).fieldNames())
                .containsExactlyInAnyOrder("timestamp", "level", "message", "fields");
        assertThat(new JsonObject(s.get("/sandboxes/" + id + "/logs?limit=2").body()).getJsonArray("logs")).hasSize(2);
    }

    @Test
    void v2FiltersByLevelSearchCursorAndDirection() {
        String id = create(new CopyOnWriteArrayList<>(List.of("SEVERE: boom one", "INFO: calm", "WARNING: 100% full_disk",
                "plain Boom two")));
        await().atMost(Duration.ofSeconds(20)).until(() -> messages(v2(id, "")).contains("plain Boom two"));
        assertThat(messages(v2(id, "?level=warn"))).containsExactly("boom one", "100% full_disk");
        assertThat(messages(v2(id, "?level=error"))).containsExactly("boom one");
        assertThat(messages(v2(id, "?search=BOOM"))).containsExactly("boom one", "plain Boom two");
        // % and _ are matched literally
        assertThat(messages(v2(id, "?search=" + URLEncoder.encode("0% full_", StandardCharsets.UTF_8)))).containsExactly("100% full_disk");
        assertThat(messages(v2(id, "?search=" + URLEncoder.encode("1_0", StandardCharsets.UTF_8)))).isEmpty();
        assertThat(messages(v2(id, "?direction=backward&limit=2"))).containsExactly("plain Boom two", "100% full_disk");
        JsonArray all = v2(id, "");
        long first = java.time.Instant.parse(all.getJsonObject(0).getString("timestamp")).toEpochMilli();
        assertThat(v2(id, "?direction=backward&cursor=" + (first - 1))).isEmpty();
        assertThat(v2(id, "?cursor=" + first)).hasSize(all.size());
        assertThat(v2(id, "?limit=1")).hasSize(1);
    }

    @Test
    void unknownSandboxesAre404AndBadParametersAre400() {
        assertThat(s.get("/v2/sandboxes/aaaaaaaaaaaaaaaaaaaa/logs").statusCode()).isEqualTo(404);
        assertThat(s.get("/sandboxes/aaaaaaaaaaaaaaaaaaaa/logs").statusCode()).isEqualTo(404);
        String id = create(new CopyOnWriteArrayList<>());
        for (String bad : new String[] {"?limit=0", "?limit=1001", "?cursor=x", "?direction=sideways", "?level=loud"}) {
            var r = s.get("/v2/sandboxes/" + id + "/logs" + bad);
            assertThat(r.statusCode()).as(bad).isEqualTo(400);
            assertThat(new JsonObject(r.body()).getString("message")).as(bad)
                    .containsAnyOf("'limit'", "'cursor'", "'direction'", "'level'");
        }
        assertThat(s.get("/sandboxes/" + id + "/logs?start=-1").statusCode()).isEqualTo(400);
        assertThat(s.get("/sandboxes/" + id + "/logs?limit=5000").statusCode()).isEqualTo(400);
    }
}
