package dev.capsule.server.events;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.capsule.runtime.Resources;
import dev.capsule.runtime.ResourceUsage;
import dev.capsule.server.logs.SandboxLogs;
import dev.capsule.server.metrics.MetricsSampler;
import dev.capsule.server.store.SandboxRecord;
import dev.capsule.server.store.SandboxState;
import dev.capsule.server.store.SecretBox;
import dev.capsule.server.store.Store;
import dev.capsule.server.testing.PostgresFixture;
import dev.capsule.server.testing.Receiver;
import dev.capsule.server.testing.RecordingRuntime;
import io.vertx.core.Vertx;
import io.vertx.core.json.JsonObject;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The observability components' SQL on both databases the store supports: events, webhook deliveries (queue
 * heads, the bounded log), metric series and latest samples, log search and levels, "known" and pruning.
 */
class ObservabilityStoreTest {

    @TempDir Path tmp;
    Store store;
    Vertx vertx;

    private Store open(String db) {
        String url = db.equals("sqlite") ? "jdbc:sqlite:" + tmp.resolve("data/capsule.db") : PostgresFixture.get().newDatabase();
        store = Store.open(url, db.equals("sqlite") ? "" : "postgres", "", SecretBox.fromKeyFile(tmp.resolve("store.key")));
        return store;
    }

    @AfterEach
    void close() throws Exception {
        if (store != null) store.close();
        if (vertx != null) vertx.close().toCompletionStage().toCompletableFuture().get();
    }

    private static SandboxRecord sandbox(String id) {
        return new SandboxRecord(id, "tpl", null, SandboxState.RUNNING, Instant.now(), Instant.now().plusSeconds(300),
                new Resources(1, 512, 4096), Map.of(), Map.of(), "t", null, null, SandboxRecord.Lifecycle.KILL, "127.0.0.1", "oci");
    }

    @ParameterizedTest
    @ValueSource(strings = {"sqlite", "postgres"})
    void eventsDeliveriesMetricsAndLogsOnBothDatabases(String db) throws Exception {
        Store s = open(db);
        Clock clock = Clock.systemUTC();
        var events = new SandboxEvents(s, clock);
        var webhooks = new Webhooks(s, SecretBox.fromKeyFile(tmp.resolve("store.key")), clock);
        vertx = Vertx.vertx();
        try (var receiver = new Receiver(vertx)) {
            webhooks.create(new Webhooks.Change("h", receiver.url(), true, SandboxEvents.TYPES, "secret"));
            String id = "a".repeat(20);
            s.insertSandbox(sandbox(id));
            events.record(id, SandboxEvents.CREATED, null);
            events.record(id, SandboxEvents.UPDATED, "{\"set_timeout\":\"2030-01-01T00:00:00Z\"}");
            s.deleteSandbox(id);
            events.record(id, SandboxEvents.KILLED, null);
            assertThat(events.page(id, List.of(), true, 0, 10)).extracting(SandboxEvent::type)
                    .containsExactly(SandboxEvents.CREATED, SandboxEvents.UPDATED, SandboxEvents.KILLED);
            assertThat(events.page(null, List.of(SandboxEvents.KILLED), false, 0, 10)).singleElement()
                    .satisfies(e -> assertThat(e.templateId()).isEqualTo("tpl"));
            assertThat(events.known(id)).isTrue();
            assertThat(events.known("b".repeat(20))).isFalse();

            try (var dispatcher = new WebhookDispatcher(s, events, webhooks, clock)) {
                dispatcher.start();
                await().atMost(Duration.ofSeconds(20)).until(() -> receiver.requests.size() == 3);
            }
            assertThat(receiver.requests.stream().map(r -> new JsonObject(r.body()).getString("type")))
                    .containsExactly(SandboxEvents.CREATED, SandboxEvents.UPDATED, SandboxEvents.KILLED);
            String hook = webhooks.list().getFirst().id();
            await().atMost(Duration.ofSeconds(5)).until(() -> webhooks.deliveries(hook, 100).stream()
                    .allMatch(d -> d.status().equals("delivered")));

            // lifecycle lines came with the events; search and levels
            var logs = new SandboxLogs(s, new RecordingRuntime(), clock);
            s.write(h -> {
                SandboxLogs.insert(h, id, clock.millis(), "error", "50%_off BROKEN", new JsonObject(), 7L);
                return null;
            });
            assertThat(logs.page(id, 0, true, 100, "warn", null)).extracting(SandboxLogs.Line::message).containsExactly("50%_off BROKEN");
            assertThat(logs.page(id, 0, true, 100, null, "%_off broken")).hasSize(1);
            assertThat(logs.page(id, 0, true, 100, null, "5_%")).isEmpty();
            assertThat(logs.page(id, Long.MAX_VALUE, false, 2, null, null)).extracting(SandboxLogs.Line::message)
                    .containsExactly("50%_off BROKEN", "sandbox killed");
            assertThat(logs.prune(Duration.ZERO)).isPositive(); // the sandbox is gone, its lines are past 0 s
        }

        // metrics: series, latest per sandbox, pruning only of sandboxes that are gone
        var runtime = new RecordingRuntime();
        String live = "c".repeat(20);
        s.insertSandbox(sandbox(live));
        runtime.onHost.put(live, new dev.capsule.runtime.SandboxInstance(live, "tpl", java.net.InetAddress.getLoopbackAddress(), Instant.now()));
        long[] cpu = {0};
        runtime.onUsage = x -> Optional.of(new ResourceUsage(Instant.now(), 1, cpu[0] += 1_000_000, 1, 2, 3, 4, 5));
        var sampler = new MetricsSampler(s, runtime, Clock.tick(Clock.systemUTC(), Duration.ofMillis(1)));
        sampler.prime(live);
        for (int i = 0; i < 3; i++) {
            Thread.sleep(5);
            assertThat(sampler.sampleRunning()).hasSize(1);
        }
        assertThat(sampler.series(live, Instant.EPOCH, Instant.now().plusSeconds(1))).hasSize(3);
        assertThat(sampler.latest(List.of(live, "d".repeat(20)))).containsOnlyKeys(live);
        assertThat(sampler.prune(Duration.ZERO)).isZero(); // still running: kept
        s.deleteSandbox(live);
        assertThat(sampler.prune(Duration.ZERO)).isEqualTo(3);
        var future = Clock.offset(Clock.systemUTC(), Duration.ofDays(8));
        assertThat(new SandboxEvents(s, future).prune(Duration.ofDays(7))).isEqualTo(3);
    }
}
