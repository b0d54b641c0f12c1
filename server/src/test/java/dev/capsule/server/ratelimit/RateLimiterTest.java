package dev.capsule.server.ratelimit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.capsule.runtime.Resources;
import dev.capsule.server.config.Config;
import dev.capsule.server.store.ApiKeyRecord;
import dev.capsule.server.store.SandboxRecord;
import dev.capsule.server.store.SandboxState;
import dev.capsule.server.store.SecretBox;
import dev.capsule.server.store.Store;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Token buckets and the sandbox quota against a real SQLite store; time is a counter the test advances. */
class RateLimiterTest {

    @TempDir Path tmp;
    Store store;
    final AtomicLong nanos = new AtomicLong(1_000_000_000L);
    final Instant now = Instant.parse("2030-01-01T00:00:00Z");
    final ApiKeyRecord key = new ApiKeyRecord("key00001", "h", "k", now, null, null);

    @BeforeEach
    void open() {
        store = Store.open("jdbc:sqlite:" + tmp.resolve("capsule.db"), "", "", SecretBox.fromKeyFile(tmp.resolve("store.key")));
    }

    @AfterEach
    void close() {
        store.close();
    }

    RateLimiter limiter(int requests, Duration interval, int creates, int sandboxes) {
        return new RateLimiter(new Config.RateLimits(requests, interval, creates, sandboxes), store,
                Clock.fixed(now, ZoneOffset.UTC), nanos::get);
    }

    void advance(Duration d) {
        nanos.addAndGet(d.toNanos());
    }

    @Test
    void requestsPassUpToTheLimitThenWaitForTheBucketToRefill() {
        RateLimiter l = limiter(3, Duration.ofSeconds(30), 0, 0);
        for (int i = 0; i < 3; i++) l.admitRequest(key);
        assertThatThrownBy(() -> l.admitRequest(key)).isInstanceOfSatisfying(RateLimited.class, e -> {
            assertThat(e.retryAfterSeconds()).hasValue(10); // one token per 10 s
            assertThat(e.getMessage()).contains("key00001", "3 requests in 30 s", "Retry-After");
        });
        advance(Duration.ofSeconds(9));
        assertThatThrownBy(() -> l.admitRequest(key)).isInstanceOfSatisfying(RateLimited.class,
                e -> assertThat(e.retryAfterSeconds()).hasValue(1));
        advance(Duration.ofSeconds(1));
        l.admitRequest(key);
        // another key has its own bucket
        l.admitRequest(new ApiKeyRecord("key00002", "h", "k", now, null, null));
    }

    @Test
    void aKeysOwnLimitsReplaceTheServersAndZeroMeansNone() {
        RateLimiter l = limiter(1, Duration.ofSeconds(30), 1, 1);
        var unlimited = new ApiKeyRecord("key00003", "h", "k", now, null, null, new ApiKeyRecord.Limits(0, 0, 0));
        for (int i = 0; i < 100; i++) {
            l.admitRequest(unlimited);
            l.admitCreate(unlimited).close();
        }
        var five = new ApiKeyRecord("key00004", "h", "k", now, null, null, new ApiKeyRecord.Limits(5, null, null));
        for (int i = 0; i < 5; i++) l.admitRequest(five);
        assertThatThrownBy(() -> l.admitRequest(five)).isInstanceOf(RateLimited.class);
    }

    @Test
    void createsPerSecondRefillWithinTheSecond() {
        RateLimiter l = limiter(0, Duration.ofSeconds(30), 2, 0);
        l.admitCreate(key).close();
        l.admitCreate(key).close();
        assertThatThrownBy(() -> l.admitCreate(key)).isInstanceOfSatisfying(RateLimited.class, e -> {
            assertThat(e.retryAfterSeconds()).hasValue(1);
            assertThat(e.getMessage()).contains("more than 2 sandboxes in a second");
        });
        advance(Duration.ofMillis(500));
        l.admitCreate(key).close();
    }

    @Test
    void theQuotaCountsRunningPausedAndInFlightSandboxesOfTheKey() {
        RateLimiter l = limiter(0, Duration.ofSeconds(30), 0, 3);
        insert("q0000000000000000001", SandboxState.RUNNING, now.plusSeconds(90), key.id());
        insert("q0000000000000000002", SandboxState.PAUSED, now.plusSeconds(10), key.id());
        insert("q0000000000000000003", SandboxState.RUNNING, now.plusSeconds(10), "otherkey"); // not this key's
        RateLimiter.Reservation inFlight = l.admitCreate(key); // 2 held + this one = 3
        assertThatThrownBy(() -> l.admitCreate(key)).isInstanceOfSatisfying(RateLimited.class, e -> {
            assertThat(e.retryAfterSeconds()).hasValue(90); // when its first running sandbox times out
            assertThat(e.getMessage()).contains("3 sandboxes (running or paused)", "kill one");
        });
        inFlight.close();
        l.admitCreate(key).close();

        store.deleteSandbox("q0000000000000000001");
        insert("q0000000000000000004", SandboxState.PAUSED, now, key.id());
        insert("q0000000000000000005", SandboxState.PAUSED, now, key.id());
        assertThatThrownBy(() -> l.admitCreate(key)).isInstanceOfSatisfying(RateLimited.class,
                e -> assertThat(e.retryAfterSeconds()).isEmpty()); // paused ones never end by themselves
    }

    private void insert(String id, SandboxState state, Instant endAt, String keyId) {
        store.insertSandbox(new SandboxRecord(id, "base", "base", state, now, endAt, new Resources(1, 256, 1024),
                Map.of(), Map.of(), "t", true, null, SandboxRecord.Lifecycle.KILL, "127.0.0.1", "oci", null, true, null, keyId));
    }
}
