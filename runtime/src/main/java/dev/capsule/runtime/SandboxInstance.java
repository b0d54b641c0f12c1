package dev.capsule.runtime;

import java.net.InetAddress;
import java.time.Instant;

/** A started sandbox as its driver sees it: where its envd and user ports are reachable from the host. */
public record SandboxInstance(String sandboxId, String templateId, InetAddress address, Instant startedAt) {

    /** The port envd listens on inside every sandbox. */
    public static final int ENVD_PORT = 49983;
}
