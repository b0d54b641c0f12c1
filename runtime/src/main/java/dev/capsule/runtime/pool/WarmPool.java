package dev.capsule.runtime.pool;

import dev.capsule.runtime.NetworkPolicy;
import dev.capsule.runtime.Resources;
import dev.capsule.runtime.RuntimeFailure;
import dev.capsule.runtime.SandboxIds;
import dev.capsule.runtime.SandboxInstance;
import dev.capsule.runtime.SandboxRuntime;
import dev.capsule.runtime.SandboxSpec;
import dev.capsule.runtime.envd.EnvdWarmup;

import java.io.IOException;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * Started sandboxes kept ready per template, so creating a sandbox does not wait for envd's start. Each template
 * has one filler, a virtual thread that starts one sandbox at a time until the pool has its target size again
 * (on a 2-core host parallel starts only slow each other down); {@link #take} never waits for it.
 *
 * <p>Pool sandboxes are the driver's like any other: a taken one is the caller's to {@code destroy}. They start
 * with {@link NetworkPolicy#OPEN} and the target's resources; a caller that wants another policy applies it with
 * {@link SandboxRuntime#applyNetworkPolicy} before handing the sandbox out (no user code ran in it yet). Their ids
 * are the pool's: 20 characters of [a-z0-9], E2B's alphabet. Create the pool after the server has removed orphans
 * ({@link SandboxRuntime#removeOrphans}), which would otherwise count the pool's idle sandboxes among them.
 *
 * <p>An idle sandbox is not re-checked when taken: the caller's first request to its envd ({@code /init}) finds
 * out, and the caller may then destroy it and start one itself.
 */
public final class WarmPool implements AutoCloseable {

    /** Pool size for the base template unless configured. */
    public static final int DEFAULT_BASE_SIZE = 2;

    private static final Duration FIRST_BACKOFF = Duration.ofSeconds(1);
    private static final Duration WARMUP_TIMEOUT = Duration.ofSeconds(20);
    private static final Duration MAX_BACKOFF = Duration.ofSeconds(30);

    /** How many started sandboxes of {@code templateId} to keep, with what resources; size 0 disables it. */
    public record Target(String templateId, int size, Resources resources) {
        public Target {
            if (templateId == null || templateId.isBlank()) {
                throw new IllegalArgumentException("a pool target needs a template id");
            }
            if (size < 0) {
                throw new IllegalArgumentException("pool size of template " + templateId + " must be >= 0, was " + size);
            }
            if (resources == null) {
                throw new IllegalArgumentException("pool target " + templateId + " needs resources");
            }
        }

        /** The base template with its default resources. */
        public static Target base(int size) {
            return new Target("base", size, Resources.DEFAULT);
        }
    }

    private final SandboxRuntime runtime;
    private final ReentrantLock lock = new ReentrantLock();
    private final Map<String, Filler> fillers = new LinkedHashMap<>();
    private final AtomicLong hits = new AtomicLong();
    private final AtomicLong misses = new AtomicLong();
    private final AtomicLong startFailures = new AtomicLong();
    private final AtomicLong warmupFailures = new AtomicLong();
    private volatile RuntimeFailure lastFailure;
    private boolean closed;

    /** Starts filling at once, in the background. */
    public WarmPool(SandboxRuntime runtime, List<Target> targets) {
        this.runtime = runtime;
        for (Target target : targets) {
            if (fillers.containsKey(target.templateId())) {
                throw new IllegalArgumentException("template " + target.templateId() + " is listed twice in the pool");
            }
            if (target.size() > 0) {
                fillers.put(target.templateId(), new Filler(target));
            }
        }
        fillers.values().forEach(Filler::start);
    }

    /** A pool of {@value #DEFAULT_BASE_SIZE} base sandboxes. */
    public static WarmPool withDefaults(SandboxRuntime runtime) {
        return new WarmPool(runtime, List.of(Target.base(DEFAULT_BASE_SIZE)));
    }

    /**
     * A ready sandbox of {@code templateId}, now, or empty if none is idle (the pool is still filling, is disabled
     * for that template, or is closed): the caller then starts one itself.
     */
    public Optional<SandboxInstance> take(String templateId) {
        Filler filler = fillers.get(templateId);
        SandboxInstance taken = null;
        if (filler != null) {
            lock.lock();
            try {
                if (!closed) {
                    taken = filler.idle.pollFirst();
                    if (taken != null) {
                        filler.needed.signal();
                    }
                }
            } finally {
                lock.unlock();
            }
        }
        (taken == null ? misses : hits).incrementAndGet();
        return Optional.ofNullable(taken);
    }

    /** The resources the pool's sandboxes of {@code templateId} have, or null if the pool keeps none of it. */
    public Resources resources(String templateId) {
        Filler filler = fillers.get(templateId);
        return filler == null ? null : filler.target.resources();
    }

    /** Idle sandboxes of {@code templateId} right now. */
    public int idle(String templateId) {
        Filler filler = fillers.get(templateId);
        if (filler == null) {
            return 0;
        }
        lock.lock();
        try {
            return filler.idle.size();
        } finally {
            lock.unlock();
        }
    }

    /** Takes that got a ready sandbox. */
    public long hits() {
        return hits.get();
    }

    /** Takes that found none ready. */
    public long misses() {
        return misses.get();
    }

    /** Background starts that failed (each retried after a growing pause). */
    public long startFailures() {
        return startFailures.get();
    }

    /** Pooled sandboxes whose envd did not run the warm-up command (they are pooled all the same, only slower). */
    public long warmupFailures() {
        return warmupFailures.get();
    }

    /** The last background start failure, for health reporting; empty if none happened. */
    public Optional<RuntimeFailure> lastFailure() {
        return Optional.ofNullable(lastFailure);
    }

    /**
     * Stops filling and destroys the idle sandboxes; taken ones are the callers'. Waits for starts in progress
     * to finish (each is bounded by the driver's start timeout) and destroys what they made.
     */
    @Override
    public void close() {
        lock.lock();
        try {
            if (closed) {
                return;
            }
            closed = true;
            fillers.values().forEach(filler -> filler.needed.signalAll());
        } finally {
            lock.unlock();
        }
        List<SandboxInstance> toDestroy = new ArrayList<>();
        for (Filler filler : fillers.values()) {
            filler.join();
            lock.lock();
            try {
                toDestroy.addAll(filler.idle);
                filler.idle.clear();
            } finally {
                lock.unlock();
            }
        }
        RuntimeFailure failure = null;
        for (SandboxInstance sandbox : toDestroy) {
            try {
                runtime.destroy(sandbox.sandboxId());
            } catch (RuntimeException e) {
                if (failure == null) {
                    failure = new RuntimeFailure("closing the warm pool could not destroy every idle sandbox: "
                            + e.getMessage(), e);
                } else {
                    failure.addSuppressed(e);
                }
            }
        }
        if (failure != null) {
            throw failure;
        }
    }

    /** One template's idle sandboxes and the virtual thread that keeps them at the target size. */
    private final class Filler {
        final Target target;
        final Deque<SandboxInstance> idle = new ArrayDeque<>();
        final Condition needed = lock.newCondition();
        Thread thread;

        Filler(Target target) {
            this.target = target;
        }

        void start() {
            thread = Thread.ofVirtual().name("warm-pool-" + target.templateId()).start(this::fill);
        }

        void join() {
            // Not interrupted: a start cut short by an interrupt could not clean up after itself.
            boolean interrupted = false;
            while (true) {
                try {
                    thread.join();
                    break;
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }

        private void fill() {
            Duration backoff = FIRST_BACKOFF;
            while (awaitNeed()) {
                SandboxInstance started;
                try {
                    started = runtime.start(new SandboxSpec(SandboxIds.newId(), target.templateId(), target.resources(),
                            NetworkPolicy.OPEN));
                    backoff = FIRST_BACKOFF;
                    try {
                        EnvdWarmup.run(started.address(), 1, WARMUP_TIMEOUT);
                    } catch (IOException e) {
                        // it only costs the first requests' speed
                        warmupFailures.incrementAndGet();
                    }
                } catch (RuntimeException e) {
                    startFailures.incrementAndGet();
                    lastFailure = e instanceof RuntimeFailure failure ? failure
                            : new RuntimeFailure("warm pool start of a " + target.templateId() + " sandbox failed: "
                                    + e.getMessage(), e);
                    pause(backoff);
                    backoff = backoff.multipliedBy(2).compareTo(MAX_BACKOFF) > 0 ? MAX_BACKOFF : backoff.multipliedBy(2);
                    continue;
                }
                boolean kept;
                lock.lock();
                try {
                    kept = !closed;
                    if (kept) {
                        idle.addLast(started);
                    }
                } finally {
                    lock.unlock();
                }
                if (!kept) {
                    try {
                        runtime.destroy(started.sandboxId());
                    } catch (RuntimeException e) {
                        lastFailure = new RuntimeFailure("the warm pool closed while starting sandbox "
                                + started.sandboxId() + " and could not destroy it: " + e.getMessage(), e);
                    }
                }
            }
        }

        /** Waits until the pool is short of a sandbox; false once it is closed. */
        private boolean awaitNeed() {
            lock.lock();
            try {
                while (!closed && idle.size() >= target.size()) {
                    needed.awaitUninterruptibly();
                }
                return !closed;
            } finally {
                lock.unlock();
            }
        }

        /** Sleeps after a failure, waking early if the pool closes. */
        private void pause(Duration duration) {
            lock.lock();
            try {
                long nanos = duration.toNanos();
                while (!closed && nanos > 0) {
                    nanos = needed.awaitNanos(nanos);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            } finally {
                lock.unlock();
            }
        }
    }
}
