package dev.capsule.runtime;

import java.net.InetAddress;
import java.time.Instant;

/**
 * A started sandbox as its driver sees it: where its envd and user ports are reachable from the host, and whether
 * it is paused (its processes frozen, memory kept) rather than running.
 */
public record SandboxInstance(String sandboxId, String templateId, InetAddress address, Instant startedAt,
                              boolean paused) {

    /** The port envd listens on inside every sandbox. */
    public static final int ENVD_PORT = 49983;

    /** A running sandbox. */
    public SandboxInstance(String sandboxId, String templateId, InetAddress address, Instant startedAt) {
        this(sandboxId, templateId, address, startedAt, false);
    }
}
