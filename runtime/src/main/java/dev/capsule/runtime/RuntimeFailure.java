package dev.capsule.runtime;

/** A driver could not do what was asked; the message says what failed and, where it can, what to do about it. */
public class RuntimeFailure extends RuntimeException {

    public RuntimeFailure(String message) {
        super(message);
    }

    public RuntimeFailure(String message, Throwable cause) {
        super(message, cause);
    }
}
