package dev.capsule.server.lifecycle;

import dev.capsule.server.store.SandboxState;
import java.net.InetAddress;

/**
 * Where the gateway sends a sandbox's traffic, and its state (only running sandboxes take traffic). The tokens let
 * the gateway check traffic before it reaches (or wakes) the sandbox: {@code trafficAccessToken} is required on user
 * ports when not null; {@code envdAccessToken} is envd's, which envd itself enforces.
 */
public record Route(String sandboxId, SandboxState state, InetAddress address, boolean autoResume,
                    String envdAccessToken, String trafficAccessToken) {}
