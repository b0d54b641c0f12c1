package dev.capsule.server.ratelimit;

import dev.capsule.server.config.Config;
import dev.capsule.server.store.ApiKeyRecord;
import dev.capsule.server.store.SandboxState;
import dev.capsule.server.store.Store;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.EnumSet;
import java.util.OptionalLong;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.LongSupplier;

/**
 * Rate limits and the sandbox quota of each API key. Requests and creates are token buckets in this process's memory
 * (so they start full again after a restart, and each API node counts its own); the quota counts the key's running
 * and paused sandboxes in the store — paused ones too, because a paused sandbox keeps its memory on the host — plus
 * the creates this node is still running for the key. Each key's limits are its own where it has them
 * ({@link ApiKeyRecord.Limits}), else the server's ({@link Config.RateLimits}); 0 means no limit.
 */
public final class RateLimiter {

    private static final EnumSet<SandboxState> HELD = EnumSet.of(SandboxState.RUNNING, SandboxState.PAUSED);

    private final Config.RateLimits settings;
    private final Store store;
    private final Clock clock;
    private final LongSupplier nanoTime;
    private final ConcurrentHashMap<String, TokenBucket> requests = new ConcurrentHashMap<>();
    private final ConcurrentHashMap<String, TokenBucket> creates = new ConcurrentHashMap<>();
    private final ConcurrentHashMap<String, AtomicInteger> creating = new ConcurrentHashMap<>();
    private final ConcurrentHashMap<String, ReentrantLock> quotaLocks = new ConcurrentHashMap<>();

    public RateLimiter(Config.RateLimits settings, Store store, Clock clock, LongSupplier nanoTime) {
        this.settings = settings;
        this.store = store;
        this.clock = clock;
        this.nanoTime = nanoTime;
    }

    public RateLimiter(Config.RateLimits settings, Store store) {
        this(settings, store, Clock.systemUTC(), System::nanoTime);
    }

    /** Admits one API request of {@code key}, or throws {@link RateLimited}. Does not block. */
    public void admitRequest(ApiKeyRecord key) {
        int limit = effective(key.limits().requests(), settings.requests());
        if (limit == 0) return;
        long wait = bucket(requests, key.id(), limit, settings.interval()).take(nanoTime.getAsLong());
        if (wait > 0) {
            throw new RateLimited("API key " + key.id() + " sent more than " + limit + " requests in "
                    + settings.interval().toSeconds() + " s; retry after the Retry-After header's seconds, or ask the"
                    + " server's operator for a higher limit (capsule keys limits --requests)", OptionalLong.of(seconds(wait)));
        }
    }

    /**
     * Admits one sandbox create of {@code key}, or throws {@link RateLimited}. Close the returned reservation when the
     * create has finished, whether it succeeded or not. Blocks on the store: call it off the event loop.
     */
    public Reservation admitCreate(ApiKeyRecord key) {
        int max = effective(key.limits().sandboxes(), settings.sandboxes());
        int perSecond = effective(key.limits().createsPerSecond(), settings.createsPerSecond());
        AtomicInteger inFlight = creating.computeIfAbsent(key.id(), k -> new AtomicInteger());
        ReentrantLock lock = quotaLocks.computeIfAbsent(key.id(), k -> new ReentrantLock());
        lock.lock();
        try {
            if (max > 0) {
                Store.KeyUsage usage = store.keyUsage(key.id(), HELD);
                if (usage.sandboxes() + inFlight.get() >= max) {
                    throw new RateLimited("API key " + key.id() + " has " + max + " sandboxes (running or paused),"
                            + " its limit; kill one, or ask the server's operator for a higher limit (capsule keys"
                            + " limits --sandboxes)", untilFirstEnd(usage.firstEnd()));
                }
            }
            if (perSecond > 0) {
                long wait = bucket(creates, key.id(), perSecond, Duration.ofSeconds(1)).take(nanoTime.getAsLong());
                if (wait > 0) {
                    throw new RateLimited("API key " + key.id() + " created more than " + perSecond
                            + " sandboxes in a second; retry after the Retry-After header's seconds",
                            OptionalLong.of(seconds(wait)));
                }
            }
            inFlight.incrementAndGet();
        } finally {
            lock.unlock();
        }
        return inFlight::decrementAndGet;
    }

    /** A create admitted by {@link #admitCreate}; closing it ends its count as a sandbox in progress. */
    @FunctionalInterface
    public interface Reservation extends AutoCloseable {
        @Override
        void close();
    }

    /** The bucket of this key, made again when the key's limit changed since. */
    private TokenBucket bucket(ConcurrentHashMap<String, TokenBucket> buckets, String keyId, int limit, Duration period) {
        return buckets.compute(keyId, (k, b) -> b != null && b.capacity() == limit ? b
                : new TokenBucket(limit, period, nanoTime.getAsLong()));
    }

    /** The seconds until the key's first running sandbox times out: the earliest a quota slot frees by itself. */
    private OptionalLong untilFirstEnd(Instant firstEnd) {
        if (firstEnd == null) return OptionalLong.empty(); // only paused sandboxes: none ends by itself
        long millis = Duration.between(clock.instant(), firstEnd).toMillis();
        return OptionalLong.of(Math.max(1, (millis + 999) / 1000));
    }

    private static int effective(Integer own, int server) {
        return own != null ? own : server;
    }

    private static long seconds(long nanos) {
        return Math.max(1, (nanos + 999_999_999L) / 1_000_000_000L);
    }
}
