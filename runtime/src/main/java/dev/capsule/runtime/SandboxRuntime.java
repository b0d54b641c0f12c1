package dev.capsule.runtime;

import java.util.List;

/**
 * A runtime driver: what runs sandboxes on this host, {@code oci} (runc containers) or {@code microvm} (QEMU).
 * Everything above this interface — the API, the lifecycle, the gateway — is the same for both. Each method blocks
 * (call it from a virtual thread) and either completes or throws {@link RuntimeFailure} having released whatever it
 * had taken, so a failed call leaves nothing behind.
 */
public interface SandboxRuntime extends AutoCloseable {

    /** The driver's name as configuration and {@code getInfo} spell it: {@code oci} or {@code microvm}. */
    String name();

    /**
     * Starts a sandbox and returns once its envd answers {@code GET /health} at the returned address. envd's
     * {@code /init} (env vars, token, user) is the caller's to send.
     */
    SandboxInstance start(SandboxSpec spec);

    /** Replaces the sandbox's egress policy while it runs. */
    void applyNetworkPolicy(String sandboxId, NetworkPolicy policy);

    /** Stops the sandbox and releases everything it held (processes, mounts, disk, network); idempotent. */
    void destroy(String sandboxId);

    /**
     * The sandboxes of this driver found on the host, e.g. after a server restart, so that the server re-adopts the
     * ones it knows and destroys the others.
     */
    List<SandboxInstance> discover();

    /** Releases the driver's own resources; running sandboxes keep running. */
    @Override
    void close();
}
