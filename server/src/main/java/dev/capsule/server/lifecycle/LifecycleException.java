package dev.capsule.server.lifecycle;

/**
 * What the lifecycle refuses or fails to do. The REST edge maps each kind to a status once; the message is for the
 * user and says what to do.
 */
public sealed class LifecycleException extends RuntimeException {

    LifecycleException(String message, Throwable cause) {
        super(message, cause);
    }

    /** The request is malformed or out of range (400). */
    public static final class InvalidRequest extends LifecycleException {
        public InvalidRequest(String message) {
            super(message, null);
        }
    }

    /** No sandbox with that id: never existed, killed or timed out (404). */
    public static final class SandboxNotFound extends LifecycleException {
        public SandboxNotFound(String id) {
            super("sandbox '" + id + "' not found: it was killed, timed out or never existed; create a new one", null);
        }
    }

    /** No template with that id or alias (404). */
    public static final class TemplateNotFound extends LifecycleException {
        public TemplateNotFound(String ref) {
            super("template '" + ref + "' not found; use an existing template id or alias such as 'base'", null);
        }
    }

    /** No snapshot with that id or name (404). */
    public static final class SnapshotNotFound extends LifecycleException {
        public SnapshotNotFound(String ref) {
            super("snapshot '" + ref + "' not found: it was deleted or never existed; list snapshots with"
                    + " GET /snapshots (Sandbox.listSnapshots())", null);
        }
    }

    /** The sandbox is in a state that does not allow this (409). */
    public static final class Conflict extends LifecycleException {
        public Conflict(String message) {
            super(message, null);
        }
    }

    /** The runtime driver or the sandbox's envd failed; what a failed create had taken was released (500). */
    public static final class DriverFailure extends LifecycleException {
        public DriverFailure(String message, Throwable cause) {
            super(message, cause);
        }
    }
}
