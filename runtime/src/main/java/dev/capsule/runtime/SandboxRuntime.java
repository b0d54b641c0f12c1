package dev.capsule.runtime;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;

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
     *
     * @throws UnknownTemplate the driver has no template {@code spec.templateId()}; nothing was taken
     * @throws RuntimeFailure  anything else failed (the id is taken, the host refused, envd did not come up)
     */
    SandboxInstance start(SandboxSpec spec);

    /** Replaces the sandbox's egress policy while it runs. */
    void applyNetworkPolicy(String sandboxId, NetworkPolicy policy);

    /**
     * Pauses the sandbox with its memory: on return its filesystem changes are durable on disk and its processes
     * are frozen (memory kept, no CPU used). Pausing a paused sandbox does nothing. How memory is kept is the
     * driver's {@link #pauseMode()}.
     *
     * @throws RuntimeFailure the sandbox does not exist or could not be paused; it is left running
     */
    default void pause(String sandboxId) {
        throw new RuntimeFailure("the " + name() + " driver cannot pause sandboxes");
    }

    /**
     * Resumes a paused sandbox where it stopped: its processes continue from their state at the pause. Resuming a
     * running sandbox does nothing.
     *
     * @throws RuntimeFailure the sandbox does not exist or could not be resumed
     */
    default void resume(String sandboxId) {
        throw new RuntimeFailure("the " + name() + " driver cannot resume sandboxes");
    }

    /**
     * How {@link #pause} keeps a sandbox's memory on this host, for logs and {@code /health}: e.g. {@code freeze}
     * (processes frozen in RAM) or {@code none} when the driver cannot pause.
     */
    default String pauseMode() {
        return "none";
    }

    /** Stops the sandbox and releases everything it held (processes, mounts, disk, network); idempotent. */
    void destroy(String sandboxId);

    /**
     * The usable sandboxes of this driver found on the host — running or paused, with their network — e.g. after a
     * server restart, so that the server re-adopts the ones it knows; {@link SandboxInstance#paused()} says which. Sandboxes still being started by this instance are
     * not listed. Changes nothing on the host.
     */
    List<SandboxInstance> discover();

    /**
     * Destroys every sandbox of this driver on the host except those in {@code keep} that {@link #discover()}
     * lists: unknown ones, and half-created or broken ones even when kept (they cannot serve). Sandboxes being
     * started by this instance are left alone. Call it at start-up, before a warm pool fills, with the ids the
     * server's store knows. Returns the ids it destroyed.
     */
    default List<String> removeOrphans(Set<String> keep) {
        List<String> removed = new ArrayList<>();
        for (SandboxInstance instance : discover()) {
            if (!keep.contains(instance.sandboxId())) {
                destroy(instance.sandboxId());
                removed.add(instance.sandboxId());
            }
        }
        return removed;
    }

    /** Releases the driver's own resources; running sandboxes keep running. */
    @Override
    void close();
}
