package dev.capsule.envd.files;

/**
 * A /files failure with an HTTP status that has no Connect code of its own (507 Insufficient Storage, 406 Not
 * Acceptable); everything else is a {@link dev.capsule.connect.ConnectException}.
 */
final class FileTransferException extends RuntimeException {
    private final int status;

    FileTransferException(int status, String message) {
        super(message);
        this.status = status;
    }

    int status() {
        return status;
    }
}
