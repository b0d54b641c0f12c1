package dev.capsule.server.config;

import java.nio.file.Path;
import java.time.Duration;

/**
 * The server's configuration, resolved from flags, {@code CAPSULE_*} environment variables, the config file and
 * defaults (in that order of precedence) by {@link ConfigLoader}. {@link #databaseUrl()} is never null: without
 * one configured it is a SQLite file in the data directory.
 */
public record Config(
        String host,
        int port,
        Path dataDir,
        String domain,
        String runtime,
        Path cacheDir,
        String databaseUrl,
        String databaseUser,
        String databasePassword,
        Duration defaultTimeout,
        Duration maxTimeout,
        int warmPoolSize,
        ObservabilityConfig observability,
        RateLimits rateLimits,
        java.util.List<String> runtimes) {

    public Config {
        if (port < 0 || port > 65535) {
            throw new ConfigException("port " + port + " is out of range; use 0..65535 (0 picks a free port)");
        }
        if (defaultTimeout.isNegative() || maxTimeout.isNegative() || defaultTimeout.compareTo(maxTimeout) > 0) {
            throw new ConfigException("default_timeout (" + defaultTimeout.toSeconds() + "s) must be between 0 and"
                    + " max_timeout (" + maxTimeout.toSeconds() + "s); raise max_timeout or lower default_timeout");
        }
        if (warmPoolSize < 0) {
            throw new ConfigException("warm_pool_size " + warmPoolSize + " is negative; use 0 to disable the pool");
        }
        // the default driver first, then the others the server also runs
        var all = new java.util.ArrayList<String>(java.util.List.of(runtime));
        for (String r : runtimes) {
            if (!all.contains(r)) all.add(r);
        }
        runtimes = java.util.List.copyOf(all);
        if (databaseUrl == null || databaseUrl.isBlank()) {
            databaseUrl = "jdbc:sqlite:" + dataDir.resolve("capsule.db");
        }
    }

    /**
     * What each API key may do, unless the key has limits of its own ({@code capsule keys limits}): {@code requests}
     * API requests per {@code interval}, {@code createsPerSecond} sandbox creates per second, {@code sandboxes}
     * sandboxes at once (running and paused). 0 means no limit.
     */
    public record RateLimits(int requests, Duration interval, int createsPerSecond, int sandboxes) {
        public RateLimits {
            if (requests < 0 || createsPerSecond < 0 || sandboxes < 0) {
                throw new ConfigException("rate limits cannot be negative (rate_limit_requests " + requests
                        + ", rate_limit_creates " + createsPerSecond + ", max_sandboxes_per_key " + sandboxes
                        + "); use 0 for no limit");
            }
            if (interval.isNegative() || interval.isZero()) {
                throw new ConfigException("rate_limit_interval must be at least 1 second, got " + interval.toSeconds()
                        + "s; e.g. 30s");
            }
        }
    }

    /** Whether the store is PostgreSQL (a {@code jdbc:postgresql:} URL) rather than the embedded SQLite file. */
    public boolean usesPostgres() {
        return databaseUrl.startsWith("jdbc:postgresql:");
    }

    /** Where the first API key is written on first start. */
    public Path apiKeyFile() {
        return dataDir.resolve("api-key");
    }
}
