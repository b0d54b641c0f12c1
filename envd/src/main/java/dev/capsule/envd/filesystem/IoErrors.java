package dev.capsule.envd.filesystem;

import dev.capsule.connect.Code;
import dev.capsule.connect.ConnectException;

import java.io.IOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileSystemException;

/**
 * The one mapping from a failed file operation to what the client is told. The kernel's reason says whose fault it
 * was: a name too long, a link loop, a directory where a file was wanted are the request's (4xx codes); only a
 * failure that names no such reason is envd's ({@link Code#INTERNAL}).
 */
public final class IoErrors {
    private IoErrors() {}

    /** {@code what} failed with {@code e}: the Connect error that says so, with the kernel's reason. */
    public static ConnectException of(String what, IOException e) {
        String reason = e instanceof FileSystemException fse && fse.getReason() != null ? fse.getReason() : "";
        String detail = e instanceof FileSystemException fse && fse.getReason() != null
                ? fse.getFile() + ": " + fse.getReason() : String.valueOf(e.getMessage());
        Code code;
        if (e instanceof AccessDeniedException || reason.contains("Operation not permitted")
                || reason.contains("Read-only file system")) {
            code = Code.PERMISSION_DENIED;
        } else if (reason.contains("File name too long") || reason.contains("Is a directory")
                || reason.contains("Invalid argument")) {
            code = Code.INVALID_ARGUMENT;
        } else if (reason.contains("Too many levels of symbolic links") || reason.contains("Directory not empty")
                || reason.contains("Device or resource busy") || reason.contains("Text file busy")) {
            code = Code.FAILED_PRECONDITION;
        } else if (reason.contains("No space left on device") || reason.contains("Disk quota exceeded")) {
            code = Code.RESOURCE_EXHAUSTED;
        } else {
            code = Code.INTERNAL;
        }
        return new ConnectException(code, what + ": " + detail, e);
    }
}
