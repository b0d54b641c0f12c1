package dev.capsule.runtime;

import java.net.InetAddress;
import java.time.Instant;

/**
 * A sandbox as its driver sees it: where its envd and user ports are reachable from the host, and in which
 * {@link State} it is. A {@link State#STOPPED} sandbox has no address (its network was released).
 */
public record SandboxInstance(String sandboxId, String templateId, InetAddress address, Instant startedAt,
                              State state) {

    /** The port envd listens on inside every sandbox. */
    public static final int ENVD_PORT = 49983;

    /** What runs of a sandbox on the host. */
    public enum State {
        /** Its processes run. */
        RUNNING,
        /** Paused with its memory: processes frozen (or hibernated), resumable where they stopped. */
        FROZEN,
        /**
         * Only its filesystem is kept (paused without memory, or its processes lost, e.g. by a host reboot):
         * resuming cold-boots it from that filesystem.
         */
        STOPPED
    }

    /** A running sandbox. */
    public SandboxInstance(String sandboxId, String templateId, InetAddress address, Instant startedAt) {
        this(sandboxId, templateId, address, startedAt, State.RUNNING);
    }

    /** Whether it is paused in any way (frozen or stopped). */
    public boolean paused() {
        return state != State.RUNNING;
    }
}
