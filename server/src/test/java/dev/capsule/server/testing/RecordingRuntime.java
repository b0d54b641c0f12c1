package dev.capsule.server.testing;

import dev.capsule.runtime.NetworkPolicy;
import dev.capsule.runtime.Resumed;
import dev.capsule.runtime.RuntimeFailure;
import dev.capsule.runtime.SandboxInstance;
import dev.capsule.runtime.SandboxRuntime;
import dev.capsule.runtime.SandboxSpec;
import dev.capsule.runtime.SnapshotLayer;
import dev.capsule.runtime.UnknownTemplate;
import java.net.InetAddress;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Consumer;
import java.util.function.Function;

/**
 * Not a driver: it runs nothing. It stands in for the driver seam so the control plane can be tested without one —
 * {@code start} answers what the test says (by default: a failure, as with no driver installed; or the loopback
 * address of a real HTTP server the test runs as the "sandbox's" envd), {@code discover} returns what the test
 * lists, and every destroy, pause, resume and snapshot is recorded so tests can check what the server asked for.
 * It keeps the seam's states: pause with memory freezes (FROZEN), without stops (STOPPED, no address); resuming a
 * stopped one "cold-boots" it at {@code onColdBoot}'s address and reports its memory not kept.
 */
public final class RecordingRuntime implements SandboxRuntime {

    public final List<SandboxSpec> started = new CopyOnWriteArrayList<>();
    public final List<String> destroyed = new CopyOnWriteArrayList<>();
    public final Map<String, SandboxInstance> onHost = new ConcurrentHashMap<>();
    public volatile Function<SandboxSpec, InetAddress> onStart = spec -> {
        throw new RuntimeFailure("no runtime driver in this test");
    };
    /** Where a cold-booted sandbox comes back; by default where it was started. */
    public volatile Function<String, InetAddress> onColdBoot;
    private final Map<String, InetAddress> startedAt = new ConcurrentHashMap<>();
    private final String name;

    /** The {@code oci} driver's stand-in. */
    public RecordingRuntime() {
        this("oci");
    }

    /** A stand-in for the driver called {@code name}, for servers that run several side by side. */
    public RecordingRuntime(String name) {
        this.name = name;
    }

    /** A runtime whose start hands out 127.0.0.1, where the test runs its envd stand-in. */
    public static RecordingRuntime loopback() {
        var r = new RecordingRuntime();
        r.onStart = spec -> InetAddress.getLoopbackAddress();
        return r;
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public SandboxInstance start(SandboxSpec spec) {
        if (!spec.templateId().equals("base") && !snapshots.contains(spec.templateId())) {
            throw new UnknownTemplate(spec.templateId(), "no template or snapshot " + spec.templateId() + " on this stand-in host");
        }
        started.add(spec);
        InetAddress address = onStart.apply(spec);
        var instance = new SandboxInstance(spec.sandboxId(), spec.templateId(), address, Instant.now());
        onHost.put(spec.sandboxId(), instance);
        startedAt.put(spec.sandboxId(), address);
        return instance;
    }

    @Override
    public void applyNetworkPolicy(String sandboxId, NetworkPolicy policy) {
        policies.put(sandboxId, policy);
    }

    @Override
    public NetworkPolicy networkPolicy(String sandboxId) {
        NetworkPolicy applied = policies.get(sandboxId);
        if (applied != null) return applied;
        return started.stream().filter(s -> s.sandboxId().equals(sandboxId)).reduce((a, b) -> b)
                .map(SandboxSpec::network)
                .orElseThrow(() -> new RuntimeFailure("sandbox " + sandboxId + " was never started here"));
    }

    /** The last policy applied to each sandbox with {@link #applyNetworkPolicy}. */
    public final java.util.Map<String, NetworkPolicy> policies = new java.util.concurrent.ConcurrentHashMap<>();

    /**
     * Pauses and resumes in order: "pause:<id>" (with memory), "stop:<id>" (without), "resume:<id>" (thaw),
     * "boot:<id>" (cold boot). {@code onPause} and {@code onResume} may throw to fail one.
     */
    public final List<String> transitions = new CopyOnWriteArrayList<>();
    public volatile Consumer<String> onPause = id -> {};
    public volatile Consumer<String> onResume = id -> {};

    @Override
    public void pause(String sandboxId, boolean keepMemory) {
        SandboxInstance i = onHost.get(sandboxId);
        if (i == null) throw new RuntimeFailure("no sandbox " + sandboxId + " on this stand-in host");
        onPause.accept(sandboxId);
        if (keepMemory && i.state() != SandboxInstance.State.RUNNING) return;
        if (!keepMemory && i.state() == SandboxInstance.State.STOPPED) return;
        transitions.add((keepMemory ? "pause:" : "stop:") + sandboxId);
        onHost.put(sandboxId, new SandboxInstance(i.sandboxId(), i.templateId(), keepMemory ? i.address() : null,
                i.startedAt(), keepMemory ? SandboxInstance.State.FROZEN : SandboxInstance.State.STOPPED));
    }

    @Override
    public Resumed resume(String sandboxId) {
        SandboxInstance i = onHost.get(sandboxId);
        if (i == null) throw new RuntimeFailure("no sandbox " + sandboxId + " on this stand-in host");
        if (i.state() == SandboxInstance.State.RUNNING) return new Resumed(i, true);
        onResume.accept(sandboxId);
        boolean cold = i.state() == SandboxInstance.State.STOPPED;
        transitions.add((cold ? "boot:" : "resume:") + sandboxId);
        InetAddress address = !cold ? i.address()
                : onColdBoot != null ? onColdBoot.apply(sandboxId) : startedAt.get(sandboxId);
        var running = new SandboxInstance(i.sandboxId(), i.templateId(), address, i.startedAt());
        onHost.put(sandboxId, running);
        return new Resumed(running, !cold);
    }

    /** Puts a sandbox on the stand-in host directly, e.g. as a host reboot leaves it (stopped, files only). */
    public void place(String sandboxId, InetAddress address, SandboxInstance.State state) {
        startedAt.putIfAbsent(sandboxId, address);
        onHost.put(sandboxId, new SandboxInstance(sandboxId, "base", state == SandboxInstance.State.STOPPED ? null : address,
                Instant.now(), state));
    }

    @Override
    public String pauseMode() {
        return "freeze";
    }

    /** What usage() answers for a sandbox on the stand-in host (frozen ones report nothing, as drivers do). */
    public volatile Function<String, java.util.Optional<dev.capsule.runtime.ResourceUsage>> onUsage = id -> java.util.Optional.empty();
    /** Console lines per sandbox; console() serves them as a driver serves its console file. */
    public final Map<String, List<String>> consoles = new ConcurrentHashMap<>();

    @Override
    public java.util.Optional<dev.capsule.runtime.ResourceUsage> usage(String sandboxId) {
        SandboxInstance i = onHost.get(sandboxId);
        return i == null || i.paused() ? java.util.Optional.empty() : onUsage.apply(sandboxId);
    }

    /** Offsets are line numbers here: the stand-in's console is a list, not a file. */
    @Override
    public java.util.Optional<dev.capsule.runtime.ConsoleOutput> console(String sandboxId, long from, int maxBytes) {
        List<String> lines = consoles.get(sandboxId);
        if (lines == null || !onHost.containsKey(sandboxId)) return java.util.Optional.empty();
        List<String> copy = List.copyOf(lines);
        int start = (int) Math.min(from, copy.size());
        return java.util.Optional.of(new dev.capsule.runtime.ConsoleOutput(copy.subList(start, copy.size()), copy.size()));
    }

    @Override
    public String pauseModeReason() {
        return "the stand-in driver of the server's tests freezes nothing";
    }

    /** Snapshots stored and not deleted; every snapshot taken as "<sandbox>:<snapshot>", deletes by id. */
    public final Set<String> snapshots = ConcurrentHashMap.newKeySet();
    public final List<String> snapshotsTaken = new CopyOnWriteArrayList<>();
    public final List<String> snapshotsDeleted = new CopyOnWriteArrayList<>();
    public volatile Consumer<String> onSnapshot = id -> {};

    @Override
    public SnapshotLayer snapshot(String sandboxId, String snapshotId) {
        if (!onHost.containsKey(sandboxId)) throw new RuntimeFailure("no sandbox " + sandboxId + " on this stand-in host");
        if (!snapshots.add(snapshotId)) throw new RuntimeFailure("snapshot id " + snapshotId + " is taken");
        try {
            onSnapshot.accept(sandboxId);
        } catch (RuntimeException e) {
            snapshots.remove(snapshotId);
            throw e;
        }
        snapshotsTaken.add(sandboxId + ":" + snapshotId);
        return new SnapshotLayer(snapshotId, 4096, false);
    }

    @Override
    public void deleteSnapshot(String snapshotId) {
        snapshots.remove(snapshotId);
        snapshotsDeleted.add(snapshotId);
    }

    @Override
    public void destroy(String sandboxId) {
        destroyed.add(sandboxId);
        onHost.remove(sandboxId);
    }

    @Override
    public List<SandboxInstance> discover() {
        return List.copyOf(onHost.values());
    }

    @Override
    public void close() {}
}
