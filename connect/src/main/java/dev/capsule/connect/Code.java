package dev.capsule.connect;

import java.util.Locale;

/** The Connect protocol's error codes, with their wire names and the HTTP statuses a unary error carries. */
public enum Code {
    CANCELED(499),
    UNKNOWN(500),
    INVALID_ARGUMENT(400),
    DEADLINE_EXCEEDED(504),
    NOT_FOUND(404),
    ALREADY_EXISTS(409),
    PERMISSION_DENIED(403),
    RESOURCE_EXHAUSTED(429),
    FAILED_PRECONDITION(400),
    ABORTED(409),
    OUT_OF_RANGE(400),
    UNIMPLEMENTED(501),
    INTERNAL(500),
    UNAVAILABLE(503),
    DATA_LOSS(500),
    UNAUTHENTICATED(401);

    private final int httpStatus;
    private final String wireName;

    Code(int httpStatus) {
        this.httpStatus = httpStatus;
        this.wireName = name().toLowerCase(Locale.ROOT);
    }

    /** The lowercase name used in JSON error bodies, e.g. {@code not_found}. */
    public String wireName() {
        return wireName;
    }

    /** The HTTP status of a unary response that fails with this code. */
    public int httpStatus() {
        return httpStatus;
    }

    /** The code for a wire name, or {@link #UNKNOWN} for a name this enum does not know. */
    public static Code fromWireName(String name) {
        for (Code code : values()) {
            if (code.wireName.equals(name)) {
                return code;
            }
        }
        return UNKNOWN;
    }
}
