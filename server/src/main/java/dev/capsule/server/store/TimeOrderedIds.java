package dev.capsule.server.store;

import java.security.SecureRandom;
import java.util.UUID;

/**
 * UUIDs of version 7 (RFC 9562): 48 bits of epoch milliseconds, then a 12-bit counter, then random bits. Within
 * this JVM they are strictly increasing — two ids made in the same millisecond differ in the counter — so rows
 * keyed by them (events, webhook deliveries, log lines) sort by time with ties in the order they happened, on
 * SQLite and PostgreSQL alike, as plain text.
 */
public final class TimeOrderedIds {

    private static final SecureRandom RANDOM = new SecureRandom();
    private static long lastMillis;
    private static int counter;

    private TimeOrderedIds() {}

    /** A new id for a row made at {@code millis} (epoch ms); later calls never sort before earlier ones. */
    public static synchronized String next(long millis) {
        if (millis > lastMillis) {
            lastMillis = millis;
            counter = 0;
        } else if (++counter > 0xFFF) {
            lastMillis++; // 4096 ids in one millisecond: borrow the next one rather than repeat or go back
            counter = 0;
        }
        long high = (lastMillis << 16) | 0x7000L | counter;
        long low = (RANDOM.nextLong() & 0x3FFFFFFFFFFFFFFFL) | 0x8000000000000000L;
        return new UUID(high, low).toString();
    }
}
