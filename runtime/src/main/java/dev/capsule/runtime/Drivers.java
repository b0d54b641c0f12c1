package dev.capsule.runtime;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Several drivers side by side behind the one seam, e.g. {@code oci} and {@code microvm} on one server: each
 * sandbox runs on the driver its {@link SandboxSpec#runtime()} names (null: the default, the first one). The server
 * records each sandbox's driver and asks for it by name ({@link #driver}); calls by sandbox id go to the driver that
 * owns it, learnt when it started it or found it ({@link #discover}). {@link #discover} and {@link #removeOrphans}
 * span all drivers; each driver must have host state of its own (data, network), as it removes what it does not
 * know.
 */
public final class Drivers implements SandboxRuntime {

    private final Map<String, SandboxRuntime> drivers = new LinkedHashMap<>();
    private final SandboxRuntime defaultDriver;
    private final Map<String, SandboxRuntime> owners = new ConcurrentHashMap<>();

    /** @param drivers the default driver first, then the others; their names must differ */
    public Drivers(List<SandboxRuntime> drivers) {
        if (drivers.isEmpty()) {
            throw new IllegalArgumentException("at least one driver is needed");
        }
        for (SandboxRuntime driver : drivers) {
            if (this.drivers.putIfAbsent(driver.name(), driver) != null) {
                throw new IllegalArgumentException("two drivers named " + driver.name());
            }
        }
        this.defaultDriver = drivers.getFirst();
    }

    /** The default driver's name. */
    @Override
    public String name() {
        return defaultDriver.name();
    }

    @Override
    public List<String> drivers() {
        return List.copyOf(drivers.keySet());
    }

    @Override
    public SandboxRuntime driver(String runtime) {
        if (runtime == null) {
            return defaultDriver;
        }
        SandboxRuntime driver = drivers.get(runtime);
        if (driver == null) {
            throw new UnknownRuntime(runtime, drivers());
        }
        return driver;
    }

    @Override
    public SandboxInstance start(SandboxSpec spec) {
        SandboxRuntime driver = driver(spec.runtime());
        SandboxInstance instance = driver.start(spec);
        owners.put(spec.sandboxId(), driver);
        return instance;
    }

    @Override
    public void applyNetworkPolicy(String sandboxId, NetworkPolicy policy) {
        owner(sandboxId).applyNetworkPolicy(sandboxId, policy);
    }

    @Override
    public NetworkPolicy networkPolicy(String sandboxId) {
        return owner(sandboxId).networkPolicy(sandboxId);
    }

    @Override
    public void pause(String sandboxId, boolean keepMemory) {
        owner(sandboxId).pause(sandboxId, keepMemory);
    }

    @Override
    public Resumed resume(String sandboxId) {
        return owner(sandboxId).resume(sandboxId);
    }

    /** The default driver's: the server's pause mode as {@code GET /health} reports it. */
    @Override
    public String pauseMode() {
        return defaultDriver.pauseMode();
    }

    @Override
    public String pauseModeReason() {
        return defaultDriver.pauseModeReason();
    }

    @Override
    public SnapshotLayer snapshot(String sandboxId, String snapshotId) {
        return owner(sandboxId).snapshot(sandboxId, snapshotId);
    }

    /** Every driver is asked: a snapshot's driver is not remembered across restarts here, and unknown ids are no-ops. */
    @Override
    public void deleteSnapshot(String snapshotId) {
        drivers.values().forEach(driver -> driver.deleteSnapshot(snapshotId));
    }

    @Override
    public Optional<ResourceUsage> usage(String sandboxId) {
        return known(sandboxId).flatMap(driver -> driver.usage(sandboxId));
    }

    @Override
    public Optional<ConsoleOutput> console(String sandboxId, long from, int maxBytes) {
        return known(sandboxId).flatMap(driver -> driver.console(sandboxId, from, maxBytes));
    }

    /** Destroys it on its driver, or on every driver when none is known to own it (destroy is idempotent). */
    @Override
    public void destroy(String sandboxId) {
        Optional<SandboxRuntime> owner = known(sandboxId);
        if (owner.isPresent()) {
            owner.get().destroy(sandboxId);
        } else {
            drivers.values().forEach(driver -> driver.destroy(sandboxId));
        }
        owners.remove(sandboxId);
    }

    @Override
    public List<SandboxInstance> discover() {
        List<SandboxInstance> found = new ArrayList<>();
        for (SandboxRuntime driver : drivers.values()) {
            for (SandboxInstance instance : driver.discover()) {
                owners.put(instance.sandboxId(), driver);
                found.add(instance);
            }
        }
        return found;
    }

    @Override
    public List<String> removeOrphans(Set<String> keep) {
        List<String> removed = new ArrayList<>();
        for (SandboxRuntime driver : drivers.values()) {
            removed.addAll(driver.removeOrphans(keep));
        }
        removed.forEach(owners::remove);
        return removed;
    }

    @Override
    public void close() {
        RuntimeException failure = null;
        for (SandboxRuntime driver : drivers.values()) {
            try {
                driver.close();
            } catch (RuntimeException e) {
                if (failure == null) {
                    failure = e;
                } else {
                    failure.addSuppressed(e);
                }
            }
        }
        if (failure != null) {
            throw failure;
        }
    }

    private SandboxRuntime owner(String sandboxId) {
        return known(sandboxId).orElseThrow(() -> new RuntimeFailure("sandbox " + sandboxId + " is on none of this"
                + " server's drivers (" + String.join(", ", drivers()) + ")"));
    }

    /** Its driver: as remembered, else as the drivers' {@link #discover} shows now (after a restart). */
    private Optional<SandboxRuntime> known(String sandboxId) {
        SandboxRuntime owner = owners.get(sandboxId);
        if (owner == null) {
            discover();
            owner = owners.get(sandboxId);
        }
        return Optional.ofNullable(owner);
    }
}
