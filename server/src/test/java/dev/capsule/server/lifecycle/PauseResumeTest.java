package dev.capsule.server.lifecycle;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.capsule.runtime.RuntimeFailure;
import dev.capsule.runtime.SandboxInstance;
import dev.capsule.server.store.SandboxState;
import dev.capsule.server.testing.RecordingRuntime;
import dev.capsule.server.testing.TestServer;
import io.vertx.core.Vertx;
import io.vertx.core.http.HttpServer;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.net.InetAddress;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Pause and resume through the real API and gateway: the state machine (running ⇄ paused, kill from both), its
 * conflicts, timers that stop while paused, auto-pause at the timeout, auto-resume by gateway traffic, and
 * adoption of paused sandboxes after a restart. The driver is the recording stand-in; a real HTTP server on a
 * loopback address plays the sandbox's envd.
 */
class PauseResumeTest {

    @TempDir Path tmp;
    Vertx vertx;
    HttpServer envd;
    InetAddress address;
    RecordingRuntime runtime;
    TestServer s;

    @BeforeEach
    void start() throws Exception {
        var rnd = ThreadLocalRandom.current();
        address = InetAddress.getByName("127." + rnd.nextInt(1, 250) + "." + rnd.nextInt(1, 250) + "." + rnd.nextInt(2, 250));
        vertx = Vertx.vertx();
        envd = vertx.createHttpServer().requestHandler(req -> {
            if (req.path().equals("/init")) {
                req.body().onSuccess(b -> req.response().setStatusCode(204).end());
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

    private String state(String id) {
        return new JsonObject(s.get("/sandboxes/" + id).body()).getString("state");
    }

    private int envdHealth(String id) {
        return s.send(HttpRequest.newBuilder(URI.create(s.url("/health"))).header("E2b-Sandbox-Id", id)
                .header("E2b-Sandbox-Port", "49983").GET().build()).statusCode();
    }

    @Test
    void pauseThenConnectResumesAndEachTransitionIsRecorded() {
        String id = create("{\"templateID\":\"base\",\"timeout\":300}");

        assertThat(s.post("/sandboxes/" + id + "/pause", "{}").statusCode()).isEqualTo(204);
        assertThat(state(id)).isEqualTo("paused");
        var again = s.post("/sandboxes/" + id + "/pause", "{\"memory\":true}");
        assertThat(again.statusCode()).isEqualTo(409);
        assertThat(new JsonObject(again.body()).getString("message")).contains("already paused");
        assertThat(envdHealth(id)).as("no autoResume: the gateway answers 502").isEqualTo(502);
        assertThat(new JsonArray(s.get("/v2/sandboxes?state=paused").body())).extracting(o -> ((JsonObject) o).getString("sandboxID"))
                .containsExactly(id);
        assertThat(new JsonArray(s.get("/v2/sandboxes?state=running").body())).isEmpty();

        var connected = s.post("/sandboxes/" + id + "/connect", "{\"timeout\":60}");
        assertThat(connected.statusCode()).as(connected.body()).isEqualTo(201);
        assertThat(new JsonObject(connected.body()).getString("sandboxID")).isEqualTo(id);
        assertThat(state(id)).isEqualTo("running");
        assertThat(envdHealth(id)).isEqualTo(204);
        assertThat(s.post("/v2/sandboxes/" + id + "/connect", "{}").statusCode()).as("running: 200").isEqualTo(200);
        assertThat(runtime.transitions).containsExactly("pause:" + id, "resume:" + id);
        assertThat(s.server.store().events(id)).extracting(e -> e.type()).containsSubsequence(
                "sandbox.lifecycle.created", "sandbox.lifecycle.paused", "sandbox.lifecycle.resumed");
    }

    @Test
    void theDeprecatedResumeResumesAPausedSandboxAndRefusesARunningOne() {
        String id = create("{\"templateID\":\"base\"}");
        var running = s.post("/sandboxes/" + id + "/resume", "{}");
        assertThat(running.statusCode()).isEqualTo(409);
        assertThat(new JsonObject(running.body()).getString("message")).contains("already running");

        assertThat(s.post("/sandboxes/" + id + "/pause", "").statusCode()).isEqualTo(204);
        var resumed = s.post("/sandboxes/" + id + "/resume", "{\"timeout\":120,\"autoPause\":false}");
        assertThat(resumed.statusCode()).as(resumed.body()).isEqualTo(201);
        assertThat(state(id)).isEqualTo("running");
        JsonObject info = new JsonObject(s.get("/sandboxes/" + id).body());
        assertThat(Instant.parse(info.getString("endAt"))).isAfter(Instant.now().plusSeconds(60));
    }

    @Test
    void unknownSandboxesAndMalformedPausesAreRefusedClearly() {
        String unknown = "nosuchsandbox0000001";
        assertThat(s.post("/sandboxes/" + unknown + "/pause", "{}").statusCode()).isEqualTo(404);
        assertThat(s.post("/sandboxes/" + unknown + "/resume", "{}").statusCode()).isEqualTo(404);
        assertThat(s.post("/sandboxes/../pause", "{}").statusCode()).isIn(400, 404);

        String id = create("{\"templateID\":\"base\"}");
        assertThat(s.post("/sandboxes/" + id + "/pause", "{\"memory\":\"yes\"}").statusCode()).isEqualTo(400);
        assertThat(s.post("/sandboxes/" + id + "/pause", "[1]").statusCode()).isEqualTo(400);
        assertThat(state(id)).isEqualTo("running");
        var create = s.post("/v2/sandboxes", "{\"templateID\":\"base\",\"autoPause\":true,\"autoPauseMemory\":false,"
                + "\"autoResume\":{\"enabled\":true}}");
        assertThat(create.statusCode()).isEqualTo(400);
        assertThat(new JsonObject(create.body()).getString("message")).contains("autoPauseMemory: false");
        assertThat(runtime.transitions).isEmpty();
    }

    @Test
    void aPausedSandboxCanBeKilled() {
        String id = create("{\"templateID\":\"base\"}");
        assertThat(s.post("/sandboxes/" + id + "/pause", "{}").statusCode()).isEqualTo(204);
        assertThat(s.delete("/sandboxes/" + id).statusCode()).isEqualTo(204);
        assertThat(runtime.destroyed).containsExactly(id);
        assertThat(s.get("/sandboxes/" + id).statusCode()).isEqualTo(404);
        assertThat(s.post("/sandboxes/" + id + "/connect", "{\"timeout\":10}").statusCode()).isEqualTo(404);
        assertThat(envdHealth(id)).isEqualTo(502);
    }

    @Test
    void pausedTimeDoesNotCountAndAResumedSandboxGetsAFreshTimeout() {
        String paused = create("{\"templateID\":\"base\",\"timeout\":300}");
        assertThat(s.post("/sandboxes/" + paused + "/pause", "{}").statusCode()).isEqualTo(204);
        // its end passes while it is paused: nothing happens to it
        assertThat(s.post("/sandboxes/" + paused + "/timeout", "{\"timeout\":0}").statusCode()).isEqualTo(204);
        String control = create("{\"templateID\":\"base\",\"timeout\":0}");
        await().atMost(Duration.ofSeconds(20)).until(() -> runtime.destroyed.contains(control));
        assertThat(runtime.destroyed).doesNotContain(paused);
        assertThat(state(paused)).isEqualTo("paused");

        var connected = s.post("/sandboxes/" + paused + "/connect", "{\"timeout\":300}");
        assertThat(connected.statusCode()).isEqualTo(201);
        JsonObject info = new JsonObject(s.get("/sandboxes/" + paused).body());
        assertThat(Instant.parse(info.getString("endAt"))).isAfter(Instant.now().plusSeconds(200));
        // and its timer runs again
        assertThat(s.post("/sandboxes/" + paused + "/timeout", "{\"timeout\":0}").statusCode()).isEqualTo(204);
        await().atMost(Duration.ofSeconds(20)).until(() -> runtime.destroyed.contains(paused));
    }

    @Test
    void autoPausePausesAtTheTimeoutInsteadOfKilling() {
        String id = create("{\"templateID\":\"base\",\"timeout\":0,\"autoPause\":true}");
        await().atMost(Duration.ofSeconds(20)).until(() -> "paused".equals(state(id)));
        assertThat(runtime.destroyed).isEmpty();
        JsonObject info = new JsonObject(s.get("/sandboxes/" + id).body());
        assertThat(info.getJsonObject("lifecycle").getString("onTimeout")).isEqualTo("pause");
        assertThat(envdHealth(id)).isEqualTo(502);

        assertThat(s.post("/sandboxes/" + id + "/connect", "{\"timeout\":0}").statusCode()).isEqualTo(201);
        // it pauses again at the new timeout: autoPause persists across resumes
        await().atMost(Duration.ofSeconds(20)).until(() -> runtime.transitions.size() == 3);
        assertThat(runtime.transitions).containsExactly("pause:" + id, "resume:" + id, "pause:" + id);
        assertThat(state(id)).isEqualTo("paused");
    }

    @Test
    void autoResumeWakesAPausedSandboxWhenTrafficArrives() {
        String id = create("{\"templateID\":\"base\",\"autoPause\":true,\"autoResume\":{\"enabled\":true}}");
        assertThat(s.post("/sandboxes/" + id + "/pause", "{}").statusCode()).isEqualTo(204);

        assertThat(envdHealth(id)).as("the request waits for the resume and then succeeds").isEqualTo(204);
        assertThat(state(id)).isEqualTo("running");
        assertThat(runtime.transitions).containsExactly("pause:" + id, "resume:" + id);
        assertThat(new JsonObject(s.get("/sandboxes/" + id).body()).getJsonObject("lifecycle").getBoolean("autoResume")).isTrue();
    }

    @Test
    void concurrentPausesPauseOnceAndConcurrentConnectsResumeOnce() throws Exception {
        String id = create("{\"templateID\":\"base\"}");
        assertThat(statuses(10, () -> s.post("/sandboxes/" + id + "/pause", "{}")))
                .containsOnly(204, 409).filteredOn(c -> c == 204).hasSize(1);
        assertThat(statuses(10, () -> s.post("/sandboxes/" + id + "/connect", "{\"timeout\":60}")))
                .containsOnly(200, 201).filteredOn(c -> c == 201).hasSize(1);
        assertThat(runtime.transitions).containsExactly("pause:" + id, "resume:" + id);

        // pause and kill racing: whichever runs second sees the result of the first, and nothing is left
        var results = statuses(2, new Callable<>() {
            int n;
            @Override
            public HttpResponse<String> call() {
                synchronized (this) {
                    n++;
                    if (n == 1) return s.post("/sandboxes/" + id + "/pause", "{}");
                }
                return s.delete("/sandboxes/" + id);
            }
        });
        assertThat(results).contains(204);
        assertThat(runtime.destroyed).containsExactly(id);
        assertThat(s.get("/sandboxes/" + id).statusCode()).isEqualTo(404);
        assertThat(s.server.store().allSandboxes()).isEmpty();
    }

    private static List<Integer> statuses(int n, Callable<HttpResponse<String>> call) throws Exception {
        try (var pool = Executors.newVirtualThreadPerTaskExecutor()) {
            List<Future<HttpResponse<String>>> futures = new ArrayList<>();
            for (int i = 0; i < n; i++) futures.add(pool.submit(call));
            List<Integer> codes = new ArrayList<>();
            for (var f : futures) codes.add(f.get().statusCode());
            return codes;
        }
    }

    @Test
    void aFailedPauseLeavesTheSandboxRunningAndRouted() {
        String id = create("{\"templateID\":\"base\"}");
        runtime.onPause = x -> {
            throw new RuntimeFailure("the freezer refused");
        };
        var r = s.post("/sandboxes/" + id + "/pause", "{}");
        assertThat(r.statusCode()).isEqualTo(500);
        assertThat(new JsonObject(r.body()).getString("message")).contains("the freezer refused", "still running");
        assertThat(state(id)).isEqualTo("running");
        assertThat(envdHealth(id)).isEqualTo(204);
    }

    @Test
    void anAutoPauseThatKeepsFailingIsRetriedLaterNotInALoop() throws Exception {
        java.util.concurrent.atomic.AtomicInteger attempts = new java.util.concurrent.atomic.AtomicInteger();
        runtime.onPause = x -> {
            attempts.incrementAndGet();
            throw new RuntimeFailure("the freezer refused");
        };
        String id = create("{\"templateID\":\"base\",\"timeout\":0,\"autoPause\":true}");
        await().atMost(Duration.ofSeconds(20)).until(() -> attempts.get() >= 1);
        Thread.sleep(1500);
        assertThat(attempts.get()).as("retries wait, they do not spin").isEqualTo(1);
        assertThat(state(id)).isEqualTo("running");
    }

    @Test
    void aRestartAdoptsPausedSandboxesAsPausedAndFinishesInterruptedPauses() {
        String paused = create("{\"templateID\":\"base\",\"timeout\":0,\"autoPause\":true}");
        await().atMost(Duration.ofSeconds(20)).until(() -> "paused".equals(state(paused)));
        String frozenButRunning = create("{\"templateID\":\"base\",\"timeout\":600}");
        s.close();
        s = null;
        // a crash between the freeze and the row's update: the host has it paused, the row says running
        runtime.pause(frozenButRunning, true);
        runtime.transitions.clear();

        s = new TestServer(tmp.resolve("data"), runtime);

        assertThat(state(paused)).isEqualTo("paused");
        assertThat(runtime.onHost.get(paused).paused()).isTrue();
        assertThat(state(frozenButRunning)).isEqualTo("running");
        assertThat(runtime.transitions).containsExactly("resume:" + frozenButRunning);
        assertThat(runtime.destroyed).isEmpty();
        assertThat(envdHealth(paused)).isEqualTo(502);
        assertThat(envdHealth(frozenButRunning)).isEqualTo(204);
        assertThat(s.post("/sandboxes/" + paused + "/connect", "{\"timeout\":60}").statusCode()).isEqualTo(201);
        assertThat(envdHealth(paused)).isEqualTo(204);
    }

    @Test
    void healthSaysHowPauseKeepsMemory() {
        var health = s.get("/health");
        assertThat(health.statusCode()).isEqualTo(204);
        assertThat(health.headers().firstValue("Capsule-Pause-Mode")).contains("freeze");
        var details = s.send(HttpRequest.newBuilder(URI.create(s.url("/health/details"))).GET().build());
        assertThat(details.statusCode()).as("no API key needed").isEqualTo(200);
        JsonObject body = new JsonObject(details.body());
        assertThat(body.getString("pauseMode")).isEqualTo("freeze");
        assertThat(body.getString("pauseModeReason")).isEqualTo(runtime.pauseModeReason());
        assertThat(body.getString("runtime")).isEqualTo("oci");
    }
}
