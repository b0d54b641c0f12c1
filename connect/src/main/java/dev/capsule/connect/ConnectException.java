package dev.capsule.connect;

/**
 * A failed call: a Connect code and a message for the caller. Handlers throw it; the server turns it into a unary
 * error response or a stream's end message. Any other exception a handler throws becomes {@link Code#INTERNAL}.
 */
public class ConnectException extends RuntimeException {
    private final Code code;

    public ConnectException(Code code, String message) {
        super(message);
        this.code = code;
    }

    public ConnectException(Code code, String message, Throwable cause) {
        super(message, cause);
        this.code = code;
    }

    public Code code() {
        return code;
    }
}
