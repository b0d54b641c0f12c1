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

    /** The names of the drivers behind this seam: this driver's alone, or each of a {@link Drivers}' (default first). */
    default List<String> drivers() {
        return List.of(name());
    }

    /**
     * The driver named {@code runtime} (null: the default one): this one, for a single driver.
     *
     * @throws UnknownRuntime no driver of that name runs on this server
     */
    default SandboxRuntime driver(String runtime) {
        if (runtime == null || runtime.equals(name())) {
            return this;
        }
        throw new UnknownRuntime(runtime, drivers());
    }

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
     * The egress policy in force for the sandbox (running or paused), as it was started or last applied, with the
     * egress proxy's credentials, which the store does not keep.
     *
     * @throws RuntimeFailure there is no such sandbox on this host
     */
    NetworkPolicy networkPolicy(String sandboxId);

    /**
     * Pauses the sandbox. With {@code keepMemory}: on return its filesystem changes are durable on disk and its
     * processes are frozen (memory kept, no CPU used; how is the driver's {@link #pauseMode()}), state
     * {@link SandboxInstance.State#FROZEN}. Without: its filesystem is made durable, its processes are stopped and
     * everything but its disk (memory, network, cgroups) is released, state {@link SandboxInstance.State#STOPPED}.
     * Pausing a frozen sandbox with memory does nothing; pausing a frozen one without memory stops it.
     *
     * @throws RuntimeFailure the sandbox does not exist or could not be paused; it is left as it was
     */
    default void pause(String sandboxId, boolean keepMemory) {
        throw new RuntimeFailure("the " + name() + " driver cannot pause sandboxes");
    }

    /**
     * Resumes a paused sandbox: a frozen one continues where it stopped (memory kept); a stopped one — paused
     * without memory, or whose processes a host reboot ended — is cold-booted from its kept filesystem with the
     * same id and network policy (memory not kept; envd's {@code /init} is the caller's to send again). Resuming a
     * running sandbox does nothing and reports its memory kept.
     *
     * @throws RuntimeFailure the sandbox does not exist or could not be resumed; it is left paused
     */
    default Resumed resume(String sandboxId) {
        throw new RuntimeFailure("the " + name() + " driver cannot resume sandboxes");
    }

    /**
     * How {@link #pause} keeps a sandbox's memory on this host, for logs and {@code /health}: e.g. {@code freeze}
     * (processes frozen in RAM), {@code hibernate} (checkpointed to disk) or {@code none} when the driver cannot
     * pause.
     */
    default String pauseMode() {
        return "none";
    }

    /** Why {@link #pauseMode()} is what it is on this host, in a sentence for logs and {@code /health}. */
    default String pauseModeReason() {
        return "the " + name() + " driver cannot pause sandboxes";
    }

    /**
     * Stores the sandbox's current filesystem (and memory where the driver can) as snapshot {@code snapshotId},
     * which {@link #start} then accepts as a template id: sandboxes started from it share it read-only and each
     * get their own writable layer. A running sandbox is paused briefly and keeps running; a paused one stays
     * paused.
     *
     * @throws RuntimeFailure the sandbox does not exist, the id is taken, or storing failed (nothing is left)
     */
    default SnapshotLayer snapshot(String sandboxId, String snapshotId) {
        throw new RuntimeFailure("the " + name() + " driver cannot snapshot sandboxes");
    }

    /**
     * Deletes snapshot {@code snapshotId}; sandboxes already started from it keep working (its files go when the
     * last of them is destroyed). Deleting an unknown snapshot does nothing.
     */
    default void deleteSnapshot(String snapshotId) {
        throw new RuntimeFailure("the " + name() + " driver has no snapshots");
    }

    /**
     * One sample of the sandbox's resource use, or empty when it is not running (paused, stopped or gone).
     */
    default java.util.Optional<ResourceUsage> usage(String sandboxId) {
        return java.util.Optional.empty();
    }

    /**
     * Up to {@code maxBytes} of the sandbox's console output from byte {@code from} as whole lines (a single line
     * longer than {@code maxBytes} comes cut at that length), or empty when the driver keeps no console for it (it
     * is gone). The console is append-only for the sandbox's life and removed by {@link #destroy}: read what you
     * want to keep before that.
     */
    default java.util.Optional<ConsoleOutput> console(String sandboxId, long from, int maxBytes) {
        return java.util.Optional.empty();
    }

    /** Stops the sandbox and releases everything it held (processes, mounts, disk, network); idempotent. */
    void destroy(String sandboxId);

    /**
     * The usable sandboxes of this driver found on the host — running or paused, with their network — e.g. after a
     * server restart, so that the server re-adopts the ones it knows; {@link SandboxInstance#state()} says which (a stopped sandbox, of which only the filesystem is kept, is
     * listed too). Sandboxes still being started by this instance are not listed. Changes nothing on the host.
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
