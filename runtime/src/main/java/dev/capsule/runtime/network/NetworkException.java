package dev.capsule.runtime.network;

/**
 * A host networking operation failed: an {@code ip} or {@code nft} command exited non-zero, timed out, or the
 * host state was not what Capsule left there. The message names the command and its error output.
 */
public final class NetworkException extends RuntimeException {

    public NetworkException(String message) {
        super(message);
    }

    public NetworkException(String message, Throwable cause) {
        super(message, cause);
    }
}
