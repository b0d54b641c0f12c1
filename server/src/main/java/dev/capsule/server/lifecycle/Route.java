package dev.capsule.server.lifecycle;

import dev.capsule.server.store.SandboxState;
import java.net.InetAddress;

/** Where the gateway sends a sandbox's traffic, and its state (only running sandboxes take traffic). */
public record Route(String sandboxId, SandboxState state, InetAddress address, boolean autoResume) {}
