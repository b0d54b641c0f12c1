package dev.capsule.server.store;

import java.time.Instant;

/**
 * An API key as stored: its public id (the first hex digits of the key), the SHA-256 of the whole key, never the key;
 * and the limits it has of its own.
 */
public record ApiKeyRecord(String id, String keyHash, String name, Instant createdAt, Instant lastUsedAt, Instant revokedAt,
                           Limits limits) {

    /** A key with the server's limits. */
    public ApiKeyRecord(String id, String keyHash, String name, Instant createdAt, Instant lastUsedAt, Instant revokedAt) {
        this(id, keyHash, name, createdAt, lastUsedAt, revokedAt, Limits.SERVER_SETTINGS);
    }

    public boolean revoked() {
        return revokedAt != null;
    }

    /**
     * A key's own rate limits and quota, each replacing the server's setting: requests per rate-limit interval,
     * sandbox creates per second, sandboxes at once (running and paused). Null: the server's setting; 0: no limit.
     */
    public record Limits(Integer requests, Integer createsPerSecond, Integer sandboxes) {
        public static final Limits SERVER_SETTINGS = new Limits(null, null, null);

        public Limits {
            for (Integer v : new Integer[] {requests, createsPerSecond, sandboxes}) {
                if (v != null && v < 0) {
                    throw new IllegalArgumentException("a limit cannot be negative, got " + v + "; use 0 for no limit");
                }
            }
        }
    }
}
