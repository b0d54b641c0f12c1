package dev.capsule.server.ratelimit;

import java.time.Duration;

/**
 * A token bucket: holds up to {@code capacity} tokens and gains {@code capacity} of them per {@code period}, evenly;
 * each admitted event takes one. So {@code capacity} events pass at once after a quiet period, and
 * {@code capacity} per {@code period} on average. Thread-safe; times are the caller's monotonic nanoseconds.
 */
final class TokenBucket {

    private final int capacity;
    private final long periodNanos;
    private double tokens;
    private long updatedNanos;

    TokenBucket(int capacity, Duration period, long nowNanos) {
        if (capacity < 1) throw new IllegalArgumentException("a bucket holds at least one token, got " + capacity);
        this.capacity = capacity;
        this.periodNanos = period.toNanos();
        this.tokens = capacity;
        this.updatedNanos = nowNanos;
    }

    int capacity() {
        return capacity;
    }

    /** Takes a token and returns 0, or takes none and returns how many nanoseconds until one will be there. */
    synchronized long take(long nowNanos) {
        long elapsed = Math.max(0, nowNanos - updatedNanos);
        tokens = Math.min(capacity, tokens + (double) elapsed * capacity / periodNanos);
        updatedNanos = nowNanos;
        if (tokens >= 1) {
            tokens -= 1;
            return 0;
        }
        return (long) Math.ceil((1 - tokens) * periodNanos / capacity);
    }
}
