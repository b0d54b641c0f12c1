package dev.capsule.server.store;

import static org.assertj.core.api.Assertions.assertThat;

import dev.capsule.runtime.Resources;
import dev.capsule.server.testing.PostgresFixture;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The store on both databases it supports, through the same migrations. */
class StoreTest {

    @TempDir Path tmp;
    private Store store;

    private Store open(String db) {
        String url = db.equals("sqlite") ? "jdbc:sqlite:" + tmp.resolve("data/capsule.db") : PostgresFixture.get().newDatabase();
        store = Store.open(url, db.equals("sqlite") ? "" : "postgres", "", SecretBox.fromKeyFile(tmp.resolve("store.key")));
        return store;
    }

    @AfterEach
    void close() {
        if (store != null) store.close();
    }

    static SandboxRecord sandbox(String id, SandboxState state, long startedMillis, Map<String, String> metadata) {
        return new SandboxRecord(id, "base", "base", state, Instant.ofEpochMilli(startedMillis),
                Instant.ofEpochMilli(startedMillis + 300_000), new Resources(2, 512, 4096), metadata,
                Map.of("SECRET", "v"), "token-" + id, null, null, SandboxRecord.Lifecycle.KILL, "127.0.0.1", "oci");
    }

    @ParameterizedTest
    @ValueSource(strings = {"sqlite", "postgres"})
    void sandboxRowsRoundTripWithSecretsEncryptedAtRest(String db) {
        Store s = open(db);
        var rec = new SandboxRecord("abcdefghij0123456789", "base", "base", SandboxState.CREATING,
                Instant.ofEpochMilli(1_000), Instant.ofEpochMilli(2_000), new Resources(1, 256, 100),
                Map.of("user", "alice"), Map.of("FOO", "bar"), "tok-secret", false, "{\"allowOut\":[\"1.1.1.1\"]}",
                new SandboxRecord.Lifecycle(true, false, true), null, "oci");
        s.insertSandbox(rec);
        assertThat(s.findSandbox(rec.id())).contains(rec);

        String rawToken = s.jdbi().withHandle(h -> h.createQuery("SELECT envd_access_token || env_vars FROM sandboxes")
                .mapTo(String.class).one());
        assertThat(rawToken).doesNotContain("tok-secret").doesNotContain("bar");

        assertThat(s.updateSandbox(rec.id(), SandboxState.RUNNING, "10.0.0.2", Instant.ofEpochMilli(9_000))).isTrue();
        var updated = s.findSandbox(rec.id()).orElseThrow();
        assertThat(updated.state()).isEqualTo(SandboxState.RUNNING);
        assertThat(updated.address()).isEqualTo("10.0.0.2");
        assertThat(updated.endAt()).isEqualTo(Instant.ofEpochMilli(9_000));
        assertThat(s.countSandboxes(SandboxState.RUNNING)).isEqualTo(1);

        assertThat(s.deleteSandbox(rec.id())).isTrue();
        assertThat(s.deleteSandbox(rec.id())).isFalse();
        assertThat(s.updateSandbox(rec.id(), SandboxState.RUNNING, null, Instant.EPOCH)).isFalse();
        assertThat(s.findSandbox(rec.id())).isEmpty();
    }

    @ParameterizedTest
    @ValueSource(strings = {"sqlite", "postgres"})
    void listingPagesByStartTimeWithStateAndMetadataFilters(String db) {
        Store s = open(db);
        for (int i = 0; i < 25; i++) {
            s.insertSandbox(sandbox(String.format("sbx%017d", i), i % 5 == 0 ? SandboxState.PAUSED : SandboxState.RUNNING,
                    1000L * (i / 2), Map.of("team", i % 2 == 0 ? "even" : "odd")));
        }
        s.insertSandbox(sandbox("creating000000000000", SandboxState.CREATING, 5, Map.of()));

        // every running or paused row exactly once, newest first, across pages of 7
        var seen = new ArrayList<SandboxRecord>();
        SandboxQuery.Cursor cursor = null;
        do {
            var page = s.listSandboxes(new SandboxQuery(Set.of(SandboxState.RUNNING, SandboxState.PAUSED), Map.of(), false, cursor, 7));
            assertThat(page.items().size()).isLessThanOrEqualTo(7);
            seen.addAll(page.items());
            cursor = page.next() == null ? null : SandboxQuery.Cursor.decode(page.next().encode());
        } while (cursor != null);
        assertThat(seen).hasSize(25).extracting(SandboxRecord::id).doesNotHaveDuplicates().doesNotContain("creating000000000000");
        assertThat(seen).isSortedAccordingTo((a, b) -> b.startedAt().compareTo(a.startedAt()) != 0
                ? b.startedAt().compareTo(a.startedAt()) : b.id().compareTo(a.id()));

        var evenRunning = s.listSandboxes(new SandboxQuery(Set.of(SandboxState.RUNNING), Map.of("team", "even"), true, null, 100));
        assertThat(evenRunning.next()).isNull();
        assertThat(evenRunning.items()).allSatisfy(r -> {
            assertThat(r.metadata()).containsEntry("team", "even");
            assertThat(r.state()).isEqualTo(SandboxState.RUNNING);
        }).hasSize(10); // 13 even ids, of which 0, 10, 20 are paused
        assertThat(evenRunning.items()).isSortedAccordingTo((a, b) -> a.startedAt().compareTo(b.startedAt()));
    }

    @ParameterizedTest
    @ValueSource(strings = {"sqlite", "postgres"})
    void templatesApiKeysAndEvents(String db) {
        Store s = open(db);
        assertThat(s.findTemplate("base")).hasValueSatisfying(t -> assertThat(t.resources().cpuCount()).isEqualTo(2));
        assertThat(s.findTemplate("base:default")).isPresent();
        assertThat(s.findTemplate("nope")).isEmpty();
        s.putTemplate(new TemplateRecord("tpl123", List.of("py", "team/py"), new Resources(4, 2048, 8192)));
        assertThat(s.findTemplate("team/py")).hasValueSatisfying(t -> {
            assertThat(t.id()).isEqualTo("tpl123");
            assertThat(t.aliases()).containsExactly("py", "team/py");
        });

        s.insertApiKey(new ApiKeyRecord("0123abcd", "ff".repeat(32), "ci", Instant.ofEpochMilli(5), null, null));
        assertThat(s.hasActiveApiKey()).isTrue();
        assertThat(s.revokeApiKey("0123abcd", Instant.ofEpochMilli(6))).isTrue();
        assertThat(s.revokeApiKey("0123abcd", Instant.ofEpochMilli(7))).isFalse();
        assertThat(s.findApiKey("0123abcd")).hasValueSatisfying(k -> assertThat(k.revoked()).isTrue());
        assertThat(s.hasActiveApiKey()).isFalse();

        var events = new dev.capsule.server.events.SandboxEvents(s, java.time.Clock.systemUTC());
        events.record("sbx", "sandbox.lifecycle.created", null);
        events.record("sbx", "sandbox.lifecycle.killed", "{}");
        assertThat(s.events("sbx")).extracting(EventRecord::type).contains("sandbox.lifecycle.created", "sandbox.lifecycle.killed");
    }

    @ParameterizedTest
    @ValueSource(strings = {"sqlite", "postgres"})
    void ownTimeoutAndMemoryKeptRoundTrip(String db) {
        Store s = open(db);
        var rec = new SandboxRecord("owntimeout0000000001", "base", "base", SandboxState.RUNNING, Instant.ofEpochMilli(1_000),
                Instant.ofEpochMilli(31_000), new Resources(2, 512, 4096), Map.of(), Map.of(), "t", null, null,
                SandboxRecord.Lifecycle.KILL, "10.0.0.2", "oci", java.time.Duration.ofSeconds(30), true, null, null);
        s.insertSandbox(rec);
        assertThat(s.findSandbox(rec.id())).contains(rec);
        assertThat(s.updateSandbox(rec.id(), SandboxState.PAUSED, null, rec.endAt(), false)).isTrue();
        assertThat(s.findSandbox(rec.id())).contains(rec.withState(SandboxState.PAUSED).withAddress(null).withMemoryKept(false));
        // rows written without an own timeout (older servers) read back with none
        s.insertSandbox(sandbox("oldrow00000000000001", SandboxState.RUNNING, 1, Map.of()));
        assertThat(s.findSandbox("oldrow00000000000001").orElseThrow().timeout()).isNull();
    }

    @ParameterizedTest
    @ValueSource(strings = {"sqlite", "postgres"})
    void snapshotsAreTemplatesWithUniqueNamesPagesAndCleanUp(String db) {
        Store s = open(db);
        var res = new Resources(2, 512, 4096);
        s.insertSnapshot("snap0000000000000001", Store.SNAPSHOT, "src00000000000000001", res, "oci", Instant.ofEpochMilli(1_000));
        assertThat(s.findTemplate("snap0000000000000001")).as("not ready: not found").isEmpty();
        assertThat(s.listSnapshots(null, null, null, 100).items()).isEmpty();
        assertThat(s.unfinishedSnapshots()).containsExactly("snap0000000000000001");
        assertThat(s.finishSnapshot("snap0000000000000001", 123, "team/my-snap")).isEmpty();
        assertThat(s.unfinishedSnapshots()).isEmpty();
        assertThat(s.findTemplate("team/my-snap:default")).hasValueSatisfying(t -> assertThat(t.id()).isEqualTo("snap0000000000000001"));
        assertThat(s.findSnapshot("team/my-snap")).contains(new SnapshotRecord("snap0000000000000001", "team/my-snap",
                "src00000000000000001", Instant.ofEpochMilli(1_000), 123));
        assertThat(s.templateKind("team/my-snap:default")).contains(Store.SNAPSHOT);
        assertThat(s.templateKind("base")).contains("template");

        // the same name again: the new snapshot takes it, the old row goes and its id is returned
        s.insertSnapshot("snap0000000000000002", Store.SNAPSHOT, "src00000000000000002", res, "oci", Instant.ofEpochMilli(2_000));
        assertThat(s.finishSnapshot("snap0000000000000002", 456, "team/my-snap")).contains("snap0000000000000001");
        assertThat(s.findSnapshot("team/my-snap:default").orElseThrow().id()).isEqualTo("snap0000000000000002");
        assertThat(s.findTemplate("snap0000000000000001")).isEmpty();
        // a template's name is refused and nothing changes
        s.insertSnapshot("snap0000000000000003", Store.SNAPSHOT, "src00000000000000001", res, "oci", Instant.ofEpochMilli(3_000));
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> s.finishSnapshot("snap0000000000000003", 1, "base"))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("base");
        assertThat(s.findTemplate("base").orElseThrow().id()).isEqualTo("base");
        assertThat(s.finishSnapshot("snap0000000000000003", 1, null)).isEmpty();
        // a fork's internal snapshot is found by nothing and cleaned up at start
        s.insertSnapshot("fork0000000000000001", Store.FORK_SNAPSHOT, "src00000000000000001", res, "oci", Instant.ofEpochMilli(4_000));
        s.finishSnapshot("fork0000000000000001", 1, null);
        assertThat(s.findTemplate("fork0000000000000001")).isEmpty();
        assertThat(s.unfinishedSnapshots()).containsExactly("fork0000000000000001");

        for (int i = 0; i < 7; i++) {
            String id = String.format("page%016d", i);
            s.insertSnapshot(id, Store.SNAPSHOT, "src00000000000000003", res, "oci", Instant.ofEpochMilli(10_000 + i / 2));
            s.finishSnapshot(id, 1, null);
        }
        var seen = new ArrayList<SnapshotRecord>();
        SandboxQuery.Cursor cursor = null;
        do {
            var page = s.listSnapshots(null, null, cursor, 3);
            assertThat(page.items().size()).isLessThanOrEqualTo(3);
            seen.addAll(page.items());
            cursor = page.next() == null ? null : SandboxQuery.Cursor.decode(page.next().encode());
        } while (cursor != null);
        assertThat(seen).hasSize(9).extracting(SnapshotRecord::id).doesNotHaveDuplicates().doesNotContain("fork0000000000000001");
        assertThat(seen).isSortedAccordingTo((a, b) -> b.createdAt().compareTo(a.createdAt()) != 0
                ? b.createdAt().compareTo(a.createdAt()) : b.id().compareTo(a.id()));
        assertThat(s.listSnapshots("src00000000000000001", null, null, 100).items()).extracting(SnapshotRecord::id)
                .containsExactly("snap0000000000000003");
        assertThat(s.listSnapshots(null, "team/my-snap:default", null, 100).items()).extracting(SnapshotRecord::snapshotId)
                .containsExactly("team/my-snap:default");

        assertThat(s.deleteTemplate("snap0000000000000002")).isTrue();
        assertThat(s.deleteTemplate("snap0000000000000002")).isFalse();
        assertThat(s.findSnapshot("team/my-snap")).isEmpty();
    }

    @ParameterizedTest
    @ValueSource(strings = {"sqlite", "postgres"})
    void concurrentWritersAllLand(String db) throws Exception {
        Store s = open(db);
        try (var pool = Executors.newVirtualThreadPerTaskExecutor()) {
            var futures = new ArrayList<Future<?>>();
            for (int i = 0; i < 200; i++) {
                int n = i;
                futures.add(pool.submit(() -> {
                    String id = String.format("c%019d", n);
                    s.insertSandbox(sandbox(id, SandboxState.CREATING, n, Map.of()));
                    s.updateSandbox(id, SandboxState.RUNNING, "127.0.0.1", Instant.ofEpochMilli(n));
                    s.findSandbox(id).orElseThrow();
                }));
            }
            for (var f : futures) f.get();
        }
        assertThat(s.countSandboxes(SandboxState.RUNNING)).isEqualTo(200);
    }

    @org.junit.jupiter.api.Test
    void sqliteRunsInWalModeAndReopensWithItsKey() throws Exception {
        Store s = open("sqlite");
        String mode = s.jdbi().withHandle(h -> h.createQuery("PRAGMA journal_mode").mapTo(String.class).one());
        assertThat(mode).isEqualToIgnoringCase("wal");
        s.insertSandbox(sandbox("reopen00000000000000", SandboxState.RUNNING, 1, Map.of()));
        s.close();
        store = Store.open("jdbc:sqlite:" + tmp.resolve("data/capsule.db"), "", "", SecretBox.fromKeyFile(tmp.resolve("store.key")));
        assertThat(store.findSandbox("reopen00000000000000")).hasValueSatisfying(r -> assertThat(r.envdAccessToken()).isEqualTo("token-reopen00000000000000"));
        assertThat(Files.getPosixFilePermissions(tmp.resolve("store.key"))).hasToString("[OWNER_READ, OWNER_WRITE]");
    }
}
