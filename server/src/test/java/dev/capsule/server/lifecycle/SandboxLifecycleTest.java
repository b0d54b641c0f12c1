package dev.capsule.server.lifecycle;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.capsule.runtime.SandboxInstance;
import dev.capsule.server.store.SandboxState;
import dev.capsule.server.testing.RecordingRuntime;
import dev.capsule.server.testing.TestServer;
import io.vertx.core.Vertx;
import io.vertx.core.http.HttpServer;
import io.vertx.core.json.JsonObject;
import java.net.InetAddress;
import java.net.URI;
import java.net.http.HttpRequest;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.Map;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Create, kill, expiry and restart recovery through the real API. The runtime is the recording stand-in: its
 * start hands out a loopback address where this test runs a real HTTP server as the sandbox's envd (port 49983).
 */
class SandboxLifecycleTest {

    @TempDir Path tmp;
    Vertx vertx;
    HttpServer envd;
    InetAddress address;
    RecordingRuntime runtime;
    TestServer s;
    final ConcurrentLinkedQueue<JsonObject> inits = new ConcurrentLinkedQueue<>();
    volatile int initStatus = 204;

    @BeforeEach
    void start() throws Exception {
        var rnd = ThreadLocalRandom.current();
        address = InetAddress.getByName("127." + rnd.nextInt(1, 250) + "." + rnd.nextInt(1, 250) + "." + rnd.nextInt(2, 250));
        vertx = Vertx.vertx();
        envd = vertx.createHttpServer().requestHandler(req -> {
            if (req.path().equals("/init")) {
                req.body().onSuccess(b -> {
                    inits.add(b.toJsonObject());
                    req.response().setStatusCode(initStatus).end();
                });
            } else if (req.path().equals("/health")) {
                req.response().setStatusCode(204).end();
            } else {
                req.response().setStatusCode(404).end();
            }
        });
        envd.listen(SandboxInstance.ENVD_PORT, address.getHostAddress()).toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
        runtime = RecordingRuntime.loopback();
        runtime.onStart = spec -> address;
        s = new TestServer(tmp.resolve("data"), runtime);
    }

    @AfterEach
    void stop() throws Exception {
        if (s != null) s.close();
        vertx.close().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
    }

    private String create(String body) {
        var r = s.post("/v2/sandboxes", body);
        assertThat(r.statusCode()).as(r.body()).isEqualTo(201);
        return new JsonObject(r.body()).getString("sandboxID");
    }

    @Test
    void createInitialisesEnvdAndTheSandboxIsRoutedUntilKilled() {
        var r = s.post("/sandboxes", "{\"templateID\":\"base\",\"timeout\":120,\"metadata\":{\"who\":\"me\"},\"envVars\":{\"FOO\":\"bar\"},"
                + "\"allow_internet_access\":false,\"secure\":true}");
        assertThat(r.statusCode()).as(r.body()).isEqualTo(201);
        JsonObject created = new JsonObject(r.body());
        String id = created.getString("sandboxID");
        assertThat(id).matches("[a-z0-9]{20}");
        assertThat(created.getString("templateID")).isEqualTo("base");
        assertThat(created.getString("clientID")).isEqualTo("6532622b");
        assertThat(created.getString("envdVersion")).isEqualTo("0.6.13");
        assertThat(created.getString("domain")).isEqualTo("localhost");

        JsonObject init = inits.poll();
        assertThat(init).isNotNull();
        assertThat(init.getJsonObject("envVars").getMap()).isEqualTo(Map.of("FOO", "bar"));
        assertThat(init.getString("accessToken")).isEqualTo(created.getString("envdAccessToken")).isNotBlank();
        assertThat(init.getString("defaultUser")).isEqualTo("user");
        assertThat(runtime.started).singleElement().satisfies(spec -> {
            assertThat(spec.sandboxId()).isEqualTo(id);
            assertThat(spec.network().internetAccess()).isFalse();
            assertThat(spec.resources().cpuCount()).isEqualTo(2);
        });

        JsonObject detail = new JsonObject(s.get("/sandboxes/" + id).body());
        assertThat(detail.getString("state")).isEqualTo("running");
        assertThat(detail.getBoolean("allowInternetAccess")).isFalse();
        assertThat(Duration.between(Instant.parse(detail.getString("startedAt")), Instant.parse(detail.getString("endAt"))))
                .isGreaterThanOrEqualTo(Duration.ofSeconds(120));

        var health = s.send(HttpRequest.newBuilder(URI.create(s.url("/health"))).header("E2b-Sandbox-Id", id)
                .header("E2b-Sandbox-Port", "49983").GET().build());
        assertThat(health.statusCode()).isEqualTo(204); // envd's health through the gateway

        assertThat(s.delete("/sandboxes/" + id).statusCode()).isEqualTo(204);
        assertThat(runtime.destroyed).containsExactly(id);
        var after = s.send(HttpRequest.newBuilder(URI.create(s.url("/health"))).header("E2b-Sandbox-Id", id)
                .header("E2b-Sandbox-Port", "49983").GET().build());
        assertThat(after.statusCode()).isEqualTo(502);
        assertThat(s.server.store().events(id)).extracting(e -> e.type())
                .containsExactly("sandbox.lifecycle.created", "sandbox.lifecycle.killed");
    }

    @Test
    void aFailedEnvdInitDestroysTheSandboxAndDeletesItsRow() {
        initStatus = 500;
        var r = s.post("/v2/sandboxes", "{\"templateID\":\"base\"}");
        assertThat(r.statusCode()).isEqualTo(500);
        assertThat(new JsonObject(r.body()).getString("message")).contains("envd /init answered 500");
        assertThat(runtime.destroyed).containsExactly(runtime.started.getFirst().sandboxId());
        assertThat(s.server.store().allSandboxes()).isEmpty();
    }

    @Test
    void theTimeoutKillsAndAnExtensionPostponesIt() {
        String doomed = create("{\"templateID\":\"base\",\"timeout\":300}");
        String kept = create("{\"templateID\":\"base\",\"timeout\":300}");
        assertThat(s.post("/sandboxes/" + doomed + "/timeout", "{\"timeout\":0}").statusCode()).isEqualTo(204);
        await().atMost(Duration.ofSeconds(20)).until(() -> runtime.destroyed.contains(doomed));
        assertThat(s.get("/sandboxes/" + doomed).statusCode()).isEqualTo(404);
        assertThat(s.get("/sandboxes/" + kept).statusCode()).isEqualTo(200);
        assertThat(runtime.destroyed).doesNotContain(kept);
    }

    @Test
    void concurrentCreatesAndKillsLeaveNoRowsAndNoSandboxes() throws Exception {
        var ids = new ConcurrentLinkedQueue<String>();
        try (var pool = java.util.concurrent.Executors.newVirtualThreadPerTaskExecutor()) {
            for (int i = 0; i < 20; i++) {
                pool.submit(() -> {
                    String id = create("{\"templateID\":\"base\"}");
                    ids.add(id);
                    assertThat(s.delete("/sandboxes/" + id).statusCode()).isEqualTo(204);
                    return null;
                });
            }
        }
        assertThat(ids).hasSize(20).doesNotHaveDuplicates();
        assertThat(runtime.destroyed).containsExactlyInAnyOrderElementsOf(ids);
        assertThat(runtime.onHost).isEmpty();
        assertThat(s.server.store().allSandboxes()).isEmpty();
    }

    @Test
    void aRestartAdoptsLiveSandboxesAndCleansUpTheRest() {
        String live = create("{\"templateID\":\"base\",\"timeout\":600}");
        String expiring = create("{\"templateID\":\"base\",\"timeout\":600}");
        s.close();
        s = null;
        // while the server is down: a row left half-created, a row whose sandbox vanished, a sandbox with no row,
        // and one whose end time passes
        var halfCreated = "halfcreated000000001";
        var vanished = "vanished000000000001";
        var orphan = "orphan00000000000001";
        runtime.onHost.put(orphan, new SandboxInstance(orphan, "base", address, Instant.now()));
        runtime.onHost.put(halfCreated, new SandboxInstance(halfCreated, "base", address, Instant.now()));
        try (var store = dev.capsule.server.store.Store.open("jdbc:sqlite:" + tmp.resolve("data/capsule.db"), "", "",
                dev.capsule.server.store.SecretBox.fromKeyFile(tmp.resolve("data/store.key")))) {
            var template = store.findSandbox(live).orElseThrow();
            store.insertSandbox(new dev.capsule.server.store.SandboxRecord(halfCreated, "base", "base", SandboxState.CREATING,
                    Instant.now(), Instant.now().plusSeconds(60), template.resources(), Map.of(), Map.of(), "t", null, null,
                    template.lifecycle(), null, "oci"));
            store.insertSandbox(new dev.capsule.server.store.SandboxRecord(vanished, "base", "base", SandboxState.RUNNING,
                    Instant.now(), Instant.now().plusSeconds(60), template.resources(), Map.of(), Map.of(), "t", null, null,
                    template.lifecycle(), "127.0.0.1", "oci"));
            store.updateSandbox(expiring, SandboxState.RUNNING, address.getHostAddress(), Instant.now().minusSeconds(1));
        }
        runtime.destroyed.clear();

        s = new TestServer(tmp.resolve("data"), runtime);

        assertThat(runtime.destroyed).contains(orphan, halfCreated).doesNotContain(live);
        await().atMost(Duration.ofSeconds(20)).until(() -> runtime.destroyed.contains(expiring));
        assertThat(s.server.store().allSandboxes()).extracting(r -> r.id()).containsExactly(live);
        assertThat(s.get("/sandboxes/" + live).statusCode()).isEqualTo(200);
        var health = s.send(HttpRequest.newBuilder(URI.create(s.url("/health"))).header("E2b-Sandbox-Id", live)
                .header("E2b-Sandbox-Port", "49983").GET().build());
        assertThat(health.statusCode()).isEqualTo(204);
    }
}
