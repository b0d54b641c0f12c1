package dev.capsule.server.api;

/** An error the REST edge answers directly (bad query, bad body, auth); the message says what to do. */
final class ApiError extends RuntimeException {
    final int status;

    ApiError(int status, String message) {
        super(message);
        this.status = status;
    }
}
