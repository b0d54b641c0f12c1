package dev.capsule.server.store;

import static org.assertj.core.api.Assertions.assertThat;

import dev.capsule.runtime.Resources;
import dev.capsule.server.testing.PostgresFixture;
import java.nio.file.Path;
import java.time.Instant;
import java.util.EnumSet;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** What the store keeps for access control and quotas (migration V4), on both databases. */
class AccessStoreTest {

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

    static SandboxRecord sandbox(String id, SandboxState state, long endMillis, String trafficToken, String keyId) {
        return new SandboxRecord(id, "base", "base", state, Instant.ofEpochMilli(1), Instant.ofEpochMilli(endMillis),
                new Resources(2, 512, 4096), Map.of(), Map.of(), "envd-" + id, true, null,
                SandboxRecord.Lifecycle.KILL, "127.0.0.1", "oci", null, true, trafficToken, keyId);
    }

    @ParameterizedTest
    @ValueSource(strings = {"sqlite", "postgres"})
    void trafficTokensAreSealedAndSandboxesCountPerKey(String db) {
        Store s = open(db);
        s.insertSandbox(sandbox("a0000000000000000001", SandboxState.RUNNING, 9_000, "traffic-secret", "key1"));
        s.insertSandbox(sandbox("a0000000000000000002", SandboxState.RUNNING, 5_000, null, "key1"));
        s.insertSandbox(sandbox("a0000000000000000003", SandboxState.PAUSED, 1_000, null, "key1"));
        s.insertSandbox(sandbox("a0000000000000000004", SandboxState.CREATING, 1_000, null, "key1"));
        s.insertSandbox(sandbox("a0000000000000000005", SandboxState.RUNNING, 1_000, null, "key2"));
        s.insertSandbox(sandbox("a0000000000000000006", SandboxState.RUNNING, 1_000, null, null));

        assertThat(s.findSandbox("a0000000000000000001")).hasValueSatisfying(r -> {
            assertThat(r.trafficAccessToken()).isEqualTo("traffic-secret");
            assertThat(r.apiKeyId()).isEqualTo("key1");
        });
        assertThat(s.findSandbox("a0000000000000000002").orElseThrow().trafficAccessToken()).isNull();
        String raw = s.jdbi().withHandle(h -> h.createQuery(
                "SELECT traffic_access_token FROM sandboxes WHERE id = 'a0000000000000000001'").mapTo(String.class).one());
        assertThat(raw).startsWith("v1:").doesNotContain("traffic-secret");

        var held = EnumSet.of(SandboxState.RUNNING, SandboxState.PAUSED);
        // running and paused count, creating does not; the first end is among running ones only
        assertThat(s.keyUsage("key1", held)).isEqualTo(new Store.KeyUsage(3, Instant.ofEpochMilli(5_000)));
        assertThat(s.keyUsage("key2", held)).isEqualTo(new Store.KeyUsage(1, Instant.ofEpochMilli(1_000)));
        assertThat(s.keyUsage("nokey", held)).isEqualTo(new Store.KeyUsage(0, null));
        assertThat(s.keyUsage("key1", EnumSet.of(SandboxState.PAUSED))).isEqualTo(new Store.KeyUsage(1, null));
    }

    @ParameterizedTest
    @ValueSource(strings = {"sqlite", "postgres"})
    void apiKeysKeepTheirOwnLimits(String db) {
        Store s = open(db);
        s.insertApiKey(new ApiKeyRecord("0123abcd", "ff".repeat(32), "ci", Instant.ofEpochMilli(5), null, null));
        assertThat(s.findApiKey("0123abcd").orElseThrow().limits()).isEqualTo(ApiKeyRecord.Limits.SERVER_SETTINGS);
        assertThat(s.setApiKeyLimits("0123abcd", new ApiKeyRecord.Limits(100, 0, null))).isTrue();
        assertThat(s.findApiKey("0123abcd").orElseThrow().limits()).isEqualTo(new ApiKeyRecord.Limits(100, 0, null));
        assertThat(s.setApiKeyLimits("nokey000", new ApiKeyRecord.Limits(1, 1, 1))).isFalse();
    }
}
