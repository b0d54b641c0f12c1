package dev.capsule.server.testing;

import dev.capsule.runtime.NetworkPolicy;
import dev.capsule.runtime.RuntimeFailure;
import dev.capsule.runtime.SandboxInstance;
import dev.capsule.runtime.SandboxRuntime;
import dev.capsule.runtime.SandboxSpec;
import java.net.InetAddress;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Function;

/**
 * Not a driver: it runs nothing. It stands in for the driver seam so the control plane can be tested without one —
 * {@code start} answers what the test says (by default: a failure, as with no driver installed; or the loopback
 * address of a real HTTP server the test runs as the "sandbox's" envd), {@code discover} returns what the test
 * lists, and every destroy is recorded so tests can check that nothing is leaked.
 */
public final class RecordingRuntime implements SandboxRuntime {

    public final List<SandboxSpec> started = new CopyOnWriteArrayList<>();
    public final List<String> destroyed = new CopyOnWriteArrayList<>();
    public final Map<String, SandboxInstance> onHost = new ConcurrentHashMap<>();
    public volatile Function<SandboxSpec, InetAddress> onStart = spec -> {
        throw new RuntimeFailure("no runtime driver in this test");
    };

    /** A runtime whose start hands out 127.0.0.1, where the test runs its envd stand-in. */
    public static RecordingRuntime loopback() {
        var r = new RecordingRuntime();
        r.onStart = spec -> InetAddress.getLoopbackAddress();
        return r;
    }

    @Override
    public String name() {
        return "oci";
    }

    @Override
    public SandboxInstance start(SandboxSpec spec) {
        started.add(spec);
        InetAddress address = onStart.apply(spec);
        var instance = new SandboxInstance(spec.sandboxId(), spec.templateId(), address, Instant.now());
        onHost.put(spec.sandboxId(), instance);
        return instance;
    }

    @Override
    public void applyNetworkPolicy(String sandboxId, NetworkPolicy policy) {
        policies.put(sandboxId, policy);
    }

    /** The last policy applied to each sandbox with {@link #applyNetworkPolicy}. */
    public final java.util.Map<String, NetworkPolicy> policies = new java.util.concurrent.ConcurrentHashMap<>();

    /** Pauses and resumes in order ("pause:<id>", "resume:<id>"); {@code onPause} may throw to fail a pause. */
    public final List<String> transitions = new CopyOnWriteArrayList<>();
    public volatile java.util.function.Consumer<String> onPause = id -> {};

    @Override
    public void pause(String sandboxId, boolean keepMemory) {
        SandboxInstance i = onHost.get(sandboxId);
        if (i == null) throw new RuntimeFailure("no sandbox " + sandboxId + " on this stand-in host");
        onPause.accept(sandboxId);
        transitions.add("pause:" + sandboxId);
        onHost.put(sandboxId, new SandboxInstance(i.sandboxId(), i.templateId(), i.address(), i.startedAt(),
                keepMemory ? SandboxInstance.State.FROZEN : SandboxInstance.State.STOPPED));
    }

    @Override
    public dev.capsule.runtime.Resumed resume(String sandboxId) {
        SandboxInstance i = onHost.get(sandboxId);
        if (i == null) throw new RuntimeFailure("no sandbox " + sandboxId + " on this stand-in host");
        transitions.add("resume:" + sandboxId);
        var running = new SandboxInstance(i.sandboxId(), i.templateId(), i.address(), i.startedAt());
        onHost.put(sandboxId, running);
        return new dev.capsule.runtime.Resumed(running, i.state() != SandboxInstance.State.STOPPED);
    }

    @Override
    public String pauseMode() {
        return "freeze";
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
