package dev.capsule.server.ratelimit;

import java.util.OptionalLong;

/**
 * A request refused for its API key's rate limit or sandbox quota: HTTP 429, with {@code Retry-After} (whole seconds)
 * when waiting is known to help. The message says which limit and what to do.
 */
public final class RateLimited extends RuntimeException {

    private final OptionalLong retryAfterSeconds;

    RateLimited(String message, OptionalLong retryAfterSeconds) {
        super(message, null, false, false);
        this.retryAfterSeconds = retryAfterSeconds;
    }

    /** Seconds to wait before a retry can pass, when known; the SDKs retry a 429 only when it is given. */
    public OptionalLong retryAfterSeconds() {
        return retryAfterSeconds;
    }
}
