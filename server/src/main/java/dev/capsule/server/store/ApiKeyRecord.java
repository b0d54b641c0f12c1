package dev.capsule.server.store;

import java.time.Instant;

/** An API key as stored: its public id (the first hex digits of the key), the SHA-256 of the whole key, never the key. */
public record ApiKeyRecord(String id, String keyHash, String name, Instant createdAt, Instant lastUsedAt, Instant revokedAt) {
    public boolean revoked() {
        return revokedAt != null;
    }
}
