package dev.capsule.server.lifecycle;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.capsule.runtime.RuntimeFailure;
import dev.capsule.runtime.SandboxInstance;
import dev.capsule.server.store.EventRecord;
import dev.capsule.server.store.SandboxState;
import dev.capsule.server.testing.RecordingRuntime;
import dev.capsule.server.testing.TestServer;
import io.vertx.core.Vertx;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.net.InetAddress;
import java.net.URI;
import java.net.http.HttpRequest;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Pause without memory and cold resume, restart recovery after a host reboot or an interrupted transition, and the
 * lifecycle's bookkeeping (locks for unknown ids, a resume the store cannot record, a sandbox's own timeout),
 * through the real API, gateway and store. The driver is the recording stand-in; two real HTTP servers on
 * loopback addresses play the sandbox's envd before and after a cold boot (which may change its address).
 */
class PersistenceTest {

    @TempDir Path tmp;
    Vertx vertx;
    InetAddress first;
    InetAddress second;
    RecordingRuntime runtime;
    TestServer s;
    /** Each /init an envd stand-in received: its address and body. */
    final ConcurrentLinkedQueue<Map.Entry<InetAddress, JsonObject>> inits = new ConcurrentLinkedQueue<>();

    @BeforeEach
    void start() throws Exception {
        vertx = Vertx.vertx();
        var rnd = ThreadLocalRandom.current();
        String prefix = "127." + rnd.nextInt(1, 250) + "." + rnd.nextInt(1, 250) + ".";
        first = envd(InetAddress.getByName(prefix + "2"));
        second = envd(InetAddress.getByName(prefix + "3"));
        runtime = RecordingRuntime.loopback();
        runtime.onStart = spec -> first;
        runtime.onColdBoot = id -> second;
        s = new TestServer(tmp.resolve("data"), runtime);
    }

    private InetAddress envd(InetAddress address) throws Exception {
        vertx.createHttpServer().requestHandler(req -> {
            switch (req.path()) {
                case "/init" -> req.body().onSuccess(b -> {
                    inits.add(Map.entry(address, b.toJsonObject()));
                    req.response().setStatusCode(204).end();
                });
                case "/health" -> req.response().setStatusCode(204).end();
                default -> req.response().setStatusCode(404).end();
            }
        }).listen(SandboxInstance.ENVD_PORT, address.getHostAddress()).toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
        return address;
    }

    @AfterEach
    void stop() throws Exception {
        if (s != null) s.close();
        vertx.close().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
    }

    private String create(String body) {
        var r = s.post("/v2/sandboxes", body);
        assertThat(r.statusCode()).as(r.body()).isEqualTo(201);
        inits.clear();
        return new JsonObject(r.body()).getString("sandboxID");
    }

    private JsonObject info(String id) {
        var r = s.get("/sandboxes/" + id);
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        return new JsonObject(r.body());
    }

    private int envdHealth(String id) {
        return s.send(HttpRequest.newBuilder(URI.create(s.url("/health"))).header("E2b-Sandbox-Id", id)
                .header("E2b-Sandbox-Port", "49983").GET().build()).statusCode();
    }

    private List<EventRecord> events(String id, String type) {
        return s.server.store().events(id).stream().filter(e -> e.type().equals(type)).toList();
    }

    // ---- pause without memory, cold resume ----

    @Test
    void pauseWithoutMemoryKeepsFilesOnlyAndConnectColdBootsWithInitAgain() {
        String id = create("{\"templateID\":\"base\",\"envVars\":{\"FOO\":\"bar\"}}");
        String token = info(id).getString("envdAccessToken");

        assertThat(s.post("/sandboxes/" + id + "/pause", "{\"memory\":false}").statusCode()).isEqualTo(204);
        JsonObject paused = info(id);
        assertThat(paused.getString("state")).isEqualTo("paused");
        assertThat(paused.getBoolean("memoryKept")).isFalse();
        assertThat(s.server.store().findSandbox(id).orElseThrow().address()).as("its network was released").isNull();
        assertThat(envdHealth(id)).isEqualTo(502);
        assertThat(events(id, "sandbox.lifecycle.paused")).singleElement()
                .satisfies(e -> assertThat(new JsonObject(e.data()).getBoolean("memory_kept")).isFalse());

        var connected = s.post("/sandboxes/" + id + "/connect", "{\"timeout\":60}");
        assertThat(connected.statusCode()).as(connected.body()).isEqualTo(201);
        assertThat(runtime.transitions).containsExactly("stop:" + id, "boot:" + id);
        assertThat(inits).as("envd at its new address got /init again with the same env, token and user").singleElement()
                .satisfies(init -> {
                    assertThat(init.getKey()).isEqualTo(second);
                    assertThat(init.getValue().getJsonObject("envVars").getMap()).isEqualTo(Map.of("FOO", "bar"));
                    assertThat(init.getValue().getString("accessToken")).isEqualTo(token);
                    assertThat(init.getValue().getString("defaultUser")).isEqualTo("user");
                });
        JsonObject resumed = info(id);
        assertThat(resumed.getString("state")).isEqualTo("running");
        assertThat(resumed.getBoolean("memoryKept")).isFalse();
        assertThat(s.server.store().findSandbox(id).orElseThrow().address()).isEqualTo(second.getHostAddress());
        assertThat(envdHealth(id)).as("routed to the new address").isEqualTo(204);
        assertThat(events(id, "sandbox.lifecycle.resumed")).singleElement()
                .satisfies(e -> assertThat(new JsonObject(e.data()).getBoolean("memory_kept")).isFalse());

        // a later pause with memory and resume keeps memory again
        assertThat(s.post("/sandboxes/" + id + "/pause", "{}").statusCode()).isEqualTo(204);
        assertThat(info(id).getBoolean("memoryKept")).isTrue();
        assertThat(s.post("/v2/sandboxes/" + id + "/connect", "{}").statusCode()).isEqualTo(201);
        assertThat(info(id).getBoolean("memoryKept")).isTrue();
        assertThat(runtime.transitions).endsWith("pause:" + id, "resume:" + id);
    }

    @Test
    void rebootOnResumeStopsAFrozenSandboxFirstAndTheDeprecatedResumeCanColdBootToo() {
        String id = create("{\"templateID\":\"base\"}");
        assertThat(s.post("/sandboxes/" + id + "/pause", "{}").statusCode()).isEqualTo(204);
        var reboot = s.post("/v2/sandboxes/" + id + "/connect", "{\"memory\":false}");
        assertThat(reboot.statusCode()).as(reboot.body()).isEqualTo(201);
        assertThat(runtime.transitions).containsExactly("pause:" + id, "stop:" + id, "boot:" + id);
        assertThat(info(id).getBoolean("memoryKept")).isFalse();
        assertThat(inits).hasSize(1);
        // memory: false on a running sandbox only extends it (no reboot of a running sandbox)
        assertThat(s.post("/v2/sandboxes/" + id + "/connect", "{\"memory\":false}").statusCode()).isEqualTo(200);

        String other = create("{\"templateID\":\"base\"}");
        assertThat(s.post("/sandboxes/" + other + "/pause", "{}").statusCode()).isEqualTo(204);
        var resumed = s.post("/sandboxes/" + other + "/resume", "{\"timeout\":60,\"memory\":false}");
        assertThat(resumed.statusCode()).as(resumed.body()).isEqualTo(201);
        assertThat(runtime.transitions).endsWith("pause:" + other, "stop:" + other, "boot:" + other);
    }

    @Test
    void autoPauseWithoutMemoryStopsAtTheTimeout() {
        String id = create("{\"templateID\":\"base\",\"timeout\":0,\"autoPause\":true,\"autoPauseMemory\":false}");
        await().atMost(Duration.ofSeconds(20)).until(() -> "paused".equals(info(id).getString("state")));
        assertThat(runtime.transitions).containsExactly("stop:" + id);
        assertThat(info(id).getBoolean("memoryKept")).isFalse();
        assertThat(envdHealth(id)).isEqualTo(502);
    }

    @Test
    void aColdBootWhoseEnvdRefusesInitLeavesTheSandboxPaused() throws Exception {
        // an address of this test's range where no envd stand-in listens
        InetAddress broken = InetAddress.getByAddress(new byte[] {127, first.getAddress()[1], first.getAddress()[2], 4});
        runtime.onColdBoot = id -> broken;
        String id = create("{\"templateID\":\"base\"}");
        assertThat(s.post("/sandboxes/" + id + "/pause", "{\"memory\":false}").statusCode()).isEqualTo(204);
        var r = s.post("/sandboxes/" + id + "/connect", "{\"timeout\":60}");
        assertThat(r.statusCode()).isEqualTo(500);
        assertThat(new JsonObject(r.body()).getString("message")).contains("did not take /init", "stays paused");
        assertThat(info(id).getString("state")).isEqualTo("paused");
        assertThat(runtime.transitions).containsExactly("stop:" + id, "boot:" + id, "stop:" + id);
        assertThat(runtime.onHost.get(id).state()).isEqualTo(SandboxInstance.State.STOPPED);

        runtime.onColdBoot = x -> second;
        assertThat(s.post("/sandboxes/" + id + "/connect", "{\"timeout\":60}").statusCode()).isEqualTo(201);
        assertThat(envdHealth(id)).isEqualTo(204);
    }

    // ---- restart recovery ----

    @Test
    void afterAHostRebootRunningSandboxesAreColdBootedAndPausedOnesStayPausedWithoutMemory() throws Exception {
        String running = create("{\"templateID\":\"base\",\"timeout\":600,\"envVars\":{\"K\":\"v\"}}");
        String paused = create("{\"templateID\":\"base\",\"timeout\":600}");
        String unbootable = create("{\"templateID\":\"base\",\"timeout\":600}");
        String vanished = create("{\"templateID\":\"base\",\"timeout\":600}");
        assertThat(s.post("/sandboxes/" + paused + "/pause", "{}").statusCode()).isEqualTo(204);
        Instant runningEnd = Instant.parse(info(running).getString("endAt"));
        s.close();
        s = null;
        // the reboot: every process is gone, the files of three remain, one is gone entirely
        for (String id : List.of(running, paused, unbootable)) runtime.place(id, first, SandboxInstance.State.STOPPED);
        runtime.onHost.remove(vanished);
        runtime.onResume = id -> {
            if (id.equals(unbootable)) throw new RuntimeFailure("its disk is unreadable");
        };
        runtime.transitions.clear();
        inits.clear();

        s = new TestServer(tmp.resolve("data"), runtime);

        JsonObject r = info(running);
        assertThat(r.getString("state")).isEqualTo("running");
        assertThat(r.getBoolean("memoryKept")).isFalse();
        assertThat(Instant.parse(r.getString("endAt"))).as("its end time is kept").isEqualTo(runningEnd);
        assertThat(inits).singleElement().satisfies(i -> {
            assertThat(i.getKey()).isEqualTo(second);
            assertThat(i.getValue().getJsonObject("envVars").getMap()).isEqualTo(Map.of("K", "v"));
        });
        assertThat(envdHealth(running)).isEqualTo(204);
        assertThat(events(running, "sandbox.lifecycle.resumed")).singleElement()
                .satisfies(e -> assertThat(e.data()).contains("\"memory_kept\":false"));

        JsonObject p = info(paused);
        assertThat(p.getString("state")).isEqualTo("paused");
        assertThat(p.getBoolean("memoryKept")).as("a reboot lost its memory").isFalse();
        assertThat(envdHealth(paused)).isEqualTo(502);

        JsonObject u = info(unbootable);
        assertThat(u.getString("state")).as("a failed cold boot leaves it paused, not deleted").isEqualTo("paused");
        assertThat(u.getBoolean("memoryKept")).isFalse();

        assertThat(s.get("/sandboxes/" + vanished).statusCode()).isEqualTo(404);
        assertThat(events(vanished, "sandbox.lifecycle.killed")).hasSize(1);
        assertThat(runtime.destroyed).isEmpty();

        runtime.onResume = id -> {};
        assertThat(s.post("/sandboxes/" + paused + "/connect", "{\"timeout\":60}").statusCode()).isEqualTo(201);
        assertThat(s.post("/sandboxes/" + unbootable + "/connect", "{\"timeout\":60}").statusCode()).isEqualTo(201);
        assertThat(runtime.transitions).containsExactly("boot:" + running, "boot:" + paused, "boot:" + unbootable);
        assertThat(envdHealth(paused)).isEqualTo(204);
    }

    @Test
    void interruptedTransitionsWithoutMemoryAreFinishedAsTheRowSays() {
        String stoppedButRunning = create("{\"templateID\":\"base\",\"timeout\":600}");
        String bootedButPaused = create("{\"templateID\":\"base\",\"timeout\":600}");
        String frozenButStopped = create("{\"templateID\":\"base\",\"timeout\":600}");
        assertThat(s.post("/sandboxes/" + bootedButPaused + "/pause", "{\"memory\":false}").statusCode()).isEqualTo(204);
        assertThat(s.post("/sandboxes/" + frozenButStopped + "/pause", "{\"memory\":false}").statusCode()).isEqualTo(204);
        s.close();
        s = null;
        // crashes: a pause without memory that stopped the sandbox but never wrote the row; a cold resume that
        // booted it but never wrote the row; a pause without memory that had only frozen it
        runtime.pause(stoppedButRunning, false);
        runtime.resume(bootedButPaused);
        runtime.place(frozenButStopped, first, SandboxInstance.State.FROZEN);
        runtime.transitions.clear();
        inits.clear();

        s = new TestServer(tmp.resolve("data"), runtime);

        assertThat(info(stoppedButRunning).getString("state")).isEqualTo("running");
        assertThat(info(stoppedButRunning).getBoolean("memoryKept")).isFalse();
        assertThat(info(bootedButPaused).getString("state")).isEqualTo("paused");
        assertThat(info(frozenButStopped).getString("state")).isEqualTo("paused");
        assertThat(runtime.transitions).containsExactlyInAnyOrder("boot:" + stoppedButRunning, "stop:" + bootedButPaused,
                "stop:" + frozenButStopped);
        assertThat(runtime.onHost.get(bootedButPaused).state()).isEqualTo(SandboxInstance.State.STOPPED);
        assertThat(runtime.onHost.get(frozenButStopped).state()).isEqualTo(SandboxInstance.State.STOPPED);
        assertThat(envdHealth(stoppedButRunning)).isEqualTo(204);
    }

    // ---- issue #3 leftovers ----

    @Test
    void gatewayTrafficAndApiCallsForUnknownIdsLeaveNoLocksBehind() {
        SandboxLifecycle lifecycle = s.server.lifecycle();
        int before = lifecycle.lockCount();
        for (int i = 0; i < 50; i++) {
            String unknown = String.format("unknown%013d", i);
            assertThat(envdHealth(unknown)).isEqualTo(502);
            assertThat(s.get("/sandboxes/" + unknown).statusCode()).isEqualTo(404);
            assertThat(s.post("/sandboxes/" + unknown + "/pause", "{}").statusCode()).isEqualTo(404);
            assertThat(s.delete("/sandboxes/" + unknown).statusCode()).isEqualTo(404);
        }
        assertThat(lifecycle.lockCount()).isEqualTo(before);

        String id = create("{\"templateID\":\"base\"}");
        assertThat(lifecycle.lockCount()).isEqualTo(before + 1);
        assertThat(s.delete("/sandboxes/" + id).statusCode()).isEqualTo(204);
        assertThat(envdHealth(id)).isEqualTo(502);
        assertThat(lifecycle.lockCount()).as("a killed sandbox's lock goes too").isEqualTo(before);
    }

    @Test
    void aResumeTheStoreCannotRecordIsPausedAgainAndReported() {
        String id = create("{\"templateID\":\"base\"}");
        assertThat(s.post("/sandboxes/" + id + "/pause", "{}").statusCode()).isEqualTo(204);
        // a real store failure: the database refuses to mark this sandbox running
        s.server.store().jdbi().useHandle(h -> h.execute("CREATE TRIGGER refuse_running BEFORE UPDATE ON sandboxes"
                + " WHEN NEW.state = 'running' BEGIN SELECT RAISE(ABORT, 'disk full'); END"));

        var r = s.post("/sandboxes/" + id + "/connect", "{\"timeout\":60}");
        assertThat(r.statusCode()).isEqualTo(500);
        assertThat(runtime.transitions).containsExactly("pause:" + id, "resume:" + id, "pause:" + id);
        assertThat(runtime.onHost.get(id).state()).as("paused again, as its row says").isEqualTo(SandboxInstance.State.FROZEN);
        assertThat(info(id).getString("state")).isEqualTo("paused");
        assertThat(envdHealth(id)).isEqualTo(502);

        s.server.store().jdbi().useHandle(h -> h.execute("DROP TRIGGER refuse_running"));
        assertThat(s.post("/sandboxes/" + id + "/connect", "{\"timeout\":60}").statusCode()).isEqualTo(201);
        assertThat(envdHealth(id)).isEqualTo(204);
    }

    @Test
    void autoResumeAndAConnectWithoutTimeoutGiveTheSandboxItsOwnTimeout() {
        // created with 40 s; the server's default is 300 s
        String id = create("{\"templateID\":\"base\",\"timeout\":40,\"autoPause\":true,\"autoResume\":{\"enabled\":true}}");
        assertThat(s.post("/sandboxes/" + id + "/pause", "{}").statusCode()).isEqualTo(204);
        Instant woken = Instant.now();
        assertThat(envdHealth(id)).isEqualTo(204);
        assertThat(Instant.parse(info(id).getString("endAt"))).isBetween(woken.plusSeconds(39), woken.plusSeconds(60));

        assertThat(s.post("/sandboxes/" + id + "/pause", "{}").statusCode()).isEqualTo(204);
        Instant connected = Instant.now();
        assertThat(s.post("/v2/sandboxes/" + id + "/connect", "{}").statusCode()).isEqualTo(201);
        assertThat(Instant.parse(info(id).getString("endAt"))).isBetween(connected.plusSeconds(39), connected.plusSeconds(60));
        assertThat(s.server.store().findSandbox(id).orElseThrow().timeout()).isEqualTo(Duration.ofSeconds(40));
    }

    // ---- snapshots ----

    @Test
    void snapshotsAreListedFilteredPagedUsedAndDeleted() {
        String source = create("{\"templateID\":\"base\",\"metadata\":{\"role\":\"source\"}}");
        String other = create("{\"templateID\":\"base\"}");

        var named = s.post("/sandboxes/" + source + "/snapshots", "{\"name\":\"team/my-snap_1.x\"}");
        assertThat(named.statusCode()).as(named.body()).isEqualTo(201);
        JsonObject namedInfo = new JsonObject(named.body());
        assertThat(namedInfo.getString("snapshotID")).isEqualTo("team/my-snap_1.x:default");
        assertThat(namedInfo.getJsonArray("names")).containsExactly("team/my-snap_1.x");
        var unnamed = s.post("/sandboxes/" + other + "/snapshots", "{}");
        assertThat(unnamed.statusCode()).isEqualTo(201);
        String unnamedId = new JsonObject(unnamed.body()).getString("snapshotID");
        assertThat(unnamedId).matches("[a-z0-9]{20}:default");
        assertThat(new JsonObject(unnamed.body()).getJsonArray("names")).isEmpty();
        assertThat(info(source).getString("state")).as("the source keeps running").isEqualTo("running");
        assertThat(events(source, "sandbox.lifecycle.checkpointed")).hasSize(1);

        assertThat(snapshotIds("/snapshots")).containsExactlyInAnyOrder("team/my-snap_1.x:default", unnamedId);
        assertThat(snapshotIds("/snapshots?sandboxID=" + source)).containsExactly("team/my-snap_1.x:default");
        assertThat(snapshotIds("/snapshots?name=team%2Fmy-snap_1.x")).containsExactly("team/my-snap_1.x:default");
        var page = s.get("/snapshots?limit=1");
        assertThat(new JsonArray(page.body())).hasSize(1);
        String token = page.headers().firstValue("X-Next-Token").orElseThrow();
        var last = s.get("/snapshots?limit=1&nextToken=" + token);
        assertThat(new JsonArray(last.body())).hasSize(1);
        assertThat(last.headers().firstValue("X-Next-Token")).isEmpty();
        assertThat(s.get("/snapshots?limit=0").statusCode()).isEqualTo(400);
        assertThat(s.get("/snapshots?limit=101").statusCode()).isEqualTo(400);

        // a sandbox from a snapshot, by its snapshot id and by its name; no pool, its own upper layer
        for (String ref : List.of("team/my-snap_1.x:default", "team/my-snap_1.x", unnamedId)) {
            var created = s.post("/v2/sandboxes", new JsonObject().put("templateID", ref).encode());
            assertThat(created.statusCode()).as(created.body()).isEqualTo(201);
        }
        String namedTemplate = runtime.snapshotsTaken.getFirst().split(":")[1];
        assertThat(runtime.started).extracting(spec -> spec.templateId()).endsWith(namedTemplate, namedTemplate,
                unnamedId.substring(0, 20));

        // delete: the SDK encodes the id into one path segment; the second delete is a 404
        String encoded = "/templates/team%2Fmy-snap_1.x%3Adefault";
        assertThat(s.delete(encoded).statusCode()).isEqualTo(204);
        assertThat(runtime.snapshotsDeleted).containsExactly(namedTemplate);
        JsonObject again = new JsonObject(s.delete(encoded).body());
        assertThat(again.getInteger("code")).isEqualTo(404);
        assertThat(snapshotIds("/snapshots")).containsExactly(unnamedId);
        assertThat(s.post("/v2/sandboxes", "{\"templateID\":\"team/my-snap_1.x\"}").statusCode()).isEqualTo(404);
        assertThat(s.delete("/templates/" + unnamedId.replace(":", "%3A")).statusCode()).isEqualTo(204);

        var base = s.delete("/templates/base");
        assertThat(base.statusCode()).isEqualTo(400);
        assertThat(new JsonObject(base.body()).getString("message")).contains("not a snapshot");
        assertThat(s.delete("/templates/nosuchsnapshot").statusCode()).isEqualTo(404);
        assertThat(s.post("/sandboxes/nosuchsandbox0000001/snapshots", "{}").statusCode()).isEqualTo(404);
    }

    private List<String> snapshotIds(String path) {
        var r = s.get(path);
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        return new JsonArray(r.body()).stream().map(o -> ((JsonObject) o).getString("snapshotID")).toList();
    }

    @Test
    void theSameNameAgainReplacesTheSnapshotAndBadNamesAreRefused() {
        String id = create("{\"templateID\":\"base\"}");
        assertThat(s.post("/sandboxes/" + id + "/snapshots", "{\"name\":\"nightly\"}").statusCode()).isEqualTo(201);
        assertThat(s.post("/sandboxes/" + id + "/pause", "{}").statusCode()).isEqualTo(204);
        var again = s.post("/sandboxes/" + id + "/snapshots", "{\"name\":\"nightly\"}");
        assertThat(again.statusCode()).as("a paused source works too").isEqualTo(201);
        assertThat(info(id).getString("state")).as("and stays paused").isEqualTo("paused");
        String firstBuild = runtime.snapshotsTaken.get(0).split(":")[1];
        String secondBuild = runtime.snapshotsTaken.get(1).split(":")[1];
        assertThat(runtime.snapshotsDeleted).containsExactly(firstBuild);
        assertThat(snapshotIds("/snapshots")).containsExactly("nightly:default");
        assertThat(s.server.store().findTemplate("nightly").orElseThrow().id()).isEqualTo(secondBuild);

        for (String bad : List.of("Has-Upper", "-dash", "a:b", "a/b/c", "sp ace", "x".repeat(129))) {
            var r = s.post("/sandboxes/" + id + "/snapshots", new JsonObject().put("name", bad).encode());
            assertThat(r.statusCode()).as(bad).isEqualTo(400);
        }
        assertThat(s.post("/sandboxes/" + id + "/snapshots", "{\"name\":7}").statusCode()).isEqualTo(400);
        var taken = s.post("/sandboxes/" + id + "/snapshots", "{\"name\":\"base\"}");
        assertThat(taken.statusCode()).isEqualTo(409);
        assertThat(runtime.snapshotsTaken).hasSize(2);
    }

    @Test
    void aFailedSnapshotLeavesNoRowAndTheSourceAsItWas() {
        String id = create("{\"templateID\":\"base\"}");
        runtime.onSnapshot = x -> {
            throw new RuntimeFailure("the disk is full");
        };
        var r = s.post("/sandboxes/" + id + "/snapshots", "{\"name\":\"doomed\"}");
        assertThat(r.statusCode()).isEqualTo(500);
        assertThat(new JsonObject(r.body()).getString("message")).contains("the disk is full", "running as before");
        assertThat(snapshotIds("/snapshots")).isEmpty();
        assertThat(s.server.store().unfinishedSnapshots()).isEmpty();
        assertThat(info(id).getString("state")).isEqualTo("running");
    }

    @Test
    void aSnapshotGoneFromTheHostIsA404AndLeavesNothing() {
        String id = create("{\"templateID\":\"base\"}");
        String snapshotId = new JsonObject(s.post("/sandboxes/" + id + "/snapshots", "{\"name\":\"gone\"}").body())
                .getString("snapshotID");
        runtime.snapshots.clear(); // deleted behind the server's back, or between a create's lookup and its start
        var r = s.post("/v2/sandboxes", new JsonObject().put("templateID", snapshotId).encode());
        assertThat(r.statusCode()).as(r.body()).isEqualTo(404);
        assertThat(new JsonObject(r.body()).getString("message")).contains("gone:default");
        assertThat(s.server.store().allSandboxes()).extracting(x -> x.id()).containsExactly(id);
    }

    @Test
    void snapshotsLeftUnfinishedByACrashAreDeletedAtStart() {
        String id = create("{\"templateID\":\"base\"}");
        s.server.store().insertSnapshot("unfinished0000000001", dev.capsule.server.store.Store.SNAPSHOT, id,
                new dev.capsule.runtime.Resources(2, 512, 4096), "oci", Instant.now());
        s.close();
        s = new TestServer(tmp.resolve("data"), runtime);
        assertThat(runtime.snapshotsDeleted).containsExactly("unfinished0000000001");
        assertThat(s.server.store().unfinishedSnapshots()).isEmpty();
    }

    // ---- fork ----

    @Test
    void forkCreatesCountSandboxesFromAnInternalSnapshotAndDeletesIt() {
        String source = create("{\"templateID\":\"base\",\"timeout\":300,\"metadata\":{\"m\":\"1\"},\"envVars\":{\"E\":\"2\"},"
                + "\"autoPause\":true}");
        Instant sourceEnd = Instant.parse(info(source).getString("endAt"));

        var r = s.post("/sandboxes/" + source + "/fork", "{\"count\":2,\"timeout\":120}");
        assertThat(r.statusCode()).as(r.body()).isEqualTo(201);
        JsonArray forks = new JsonArray(r.body());
        assertThat(forks).hasSize(2);
        String internal = runtime.snapshotsTaken.getFirst().split(":")[1];
        for (Object o : forks) {
            JsonObject sandbox = ((JsonObject) o).getJsonObject("sandbox");
            String id = sandbox.getString("sandboxID");
            assertThat(id).isNotEqualTo(source);
            JsonObject fork = info(id);
            assertThat(fork.getString("state")).isEqualTo("running");
            assertThat(fork.getString("templateID")).as("reports its source's template").isEqualTo("base");
            assertThat(fork.getJsonObject("metadata").getMap()).isEqualTo(Map.of("m", "1"));
            assertThat(fork.getJsonObject("lifecycle").getString("onTimeout")).isEqualTo("pause");
            assertThat(sandbox.getString("envdAccessToken")).isNotEqualTo(info(source).getString("envdAccessToken"));
            assertThat(Instant.parse(fork.getString("endAt"))).isBefore(Instant.now().plusSeconds(200));
            assertThat(envdHealth(id)).isEqualTo(204);
        }
        assertThat(inits).hasSize(2).allSatisfy(i ->
                assertThat(i.getValue().getJsonObject("envVars").getMap()).isEqualTo(Map.of("E", "2")));
        assertThat(runtime.started).extracting(spec -> spec.templateId()).endsWith(internal, internal);
        assertThat(runtime.snapshotsDeleted).containsExactly(internal);
        assertThat(snapshotIds("/snapshots")).as("the fork's snapshot is internal").isEmpty();
        assertThat(info(source).getString("state")).isEqualTo("running");
        assertThat(Instant.parse(info(source).getString("endAt"))).isEqualTo(sourceEnd);

        assertThat(s.post("/sandboxes/" + source + "/fork", "{\"count\":0}").statusCode()).isEqualTo(400);
        assertThat(s.post("/sandboxes/" + source + "/fork", "{\"count\":101}").statusCode()).isEqualTo(400);
        assertThat(s.post("/sandboxes/nosuchsandbox0000001/fork", "{}").statusCode()).isEqualTo(404);
        assertThat(runtime.snapshotsTaken).hasSize(1);
    }

    @Test
    void eachForkFailsOnItsOwn() {
        String source = create("{\"templateID\":\"base\"}");
        var starts = new java.util.concurrent.atomic.AtomicInteger();
        runtime.onStart = spec -> {
            if (starts.incrementAndGet() == 2) throw new RuntimeFailure("out of addresses");
            return first;
        };
        var r = s.post("/sandboxes/" + source + "/fork", "{\"count\":3}");
        assertThat(r.statusCode()).as(r.body()).isEqualTo(201);
        JsonArray forks = new JsonArray(r.body());
        assertThat(forks.stream().filter(o -> ((JsonObject) o).containsKey("sandbox"))).hasSize(2);
        assertThat(forks.stream().filter(o -> ((JsonObject) o).containsKey("error"))).singleElement().satisfies(o -> {
            JsonObject error = ((JsonObject) o).getJsonObject("error");
            assertThat(error.getInteger("code")).isEqualTo(500);
            assertThat(error.getString("message")).contains("out of addresses");
        });
        assertThat(s.server.store().allSandboxes()).extracting(x -> x.state()).containsOnly(SandboxState.RUNNING).hasSize(3);
    }
}
