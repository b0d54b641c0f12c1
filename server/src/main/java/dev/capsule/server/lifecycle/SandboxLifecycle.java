package dev.capsule.server.lifecycle;

import dev.capsule.runtime.RuntimeFailure;
import dev.capsule.runtime.SandboxInstance;
import dev.capsule.runtime.SandboxIds;
import dev.capsule.runtime.SandboxRuntime;
import dev.capsule.runtime.SandboxSpec;
import dev.capsule.runtime.pool.WarmPool;
import dev.capsule.server.lifecycle.LifecycleException.Conflict;
import dev.capsule.server.lifecycle.LifecycleException.DriverFailure;
import dev.capsule.server.lifecycle.LifecycleException.InvalidRequest;
import dev.capsule.server.lifecycle.LifecycleException.SandboxNotFound;
import dev.capsule.server.lifecycle.LifecycleException.TemplateNotFound;
import dev.capsule.server.store.SandboxQuery;
import dev.capsule.server.store.SandboxRecord;
import dev.capsule.server.store.SandboxState;
import dev.capsule.server.store.Store;
import dev.capsule.server.store.TemplateRecord;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.security.SecureRandom;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.HashMap;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Supplier;

/**
 * The one owner of every sandbox's state machine: creating → running ⇄ paused → killed (row gone). Every transition — create, connect, timeout changes, kill, expiry, restart recovery — runs
 * under that sandbox's lock and writes the store before it returns, so concurrent calls cannot leave a sandbox
 * half-done: a kill during a create waits for the create and then kills; a failed create destroys what it started
 * and deletes its row. Also keeps the gateway's route cache coherent, because only this class changes a route.
 *
 * <p>A paused sandbox has no timer: paused time does not count against its timeout, and resuming gives it a fresh
 * one. The driver pauses first and the row follows, so a crash in between leaves a row that restart recovery
 * makes the host agree with ({@link #recover()}).
 *
 * <p>All methods block (store, driver, envd): call them from virtual threads.
 */
public final class SandboxLifecycle implements AutoCloseable {

    private static final System.Logger LOG = System.getLogger(SandboxLifecycle.class.getName());
    private static final SecureRandom RANDOM = new SecureRandom();
    /** The user envd runs commands as when a request names none, as in E2B's base template. */
    public static final String DEFAULT_USER = "user";
    /** How long a failed expiry waits before it tries again. */
    private static final Duration RETRY_AFTER_FAILURE = Duration.ofSeconds(10);

    private final Store store;
    private final SandboxRuntime runtime;
    private final EnvdClient envd;
    private final Clock clock;
    private final Duration defaultTimeout;
    private final Duration maxTimeout;
    private final ConcurrentHashMap<String, ReentrantLock> locks = new ConcurrentHashMap<>();
    private final ConcurrentHashMap<String, Route> routes = new ConcurrentHashMap<>();
    private final ConcurrentHashMap<String, ScheduledFuture<?>> timers = new ConcurrentHashMap<>();
    private final ScheduledExecutorService scheduler = Executors.newSingleThreadScheduledExecutor(
            Thread.ofPlatform().daemon().name("capsule-timeouts").factory());
    private final ExecutorService workers = Executors.newVirtualThreadPerTaskExecutor();
    private volatile WarmPool pool;

    public SandboxLifecycle(Store store, SandboxRuntime runtime, EnvdClient envd, Clock clock,
                            Duration defaultTimeout, Duration maxTimeout) {
        this.store = store;
        this.runtime = runtime;
        this.envd = envd;
        this.clock = clock;
        this.defaultTimeout = defaultTimeout;
        this.maxTimeout = maxTimeout;
    }

    /**
     * Lets creates take started sandboxes from a warm pool. Attach it after {@link #recover()}: recovery destroys
     * every sandbox on the host that the store does not know, and idle pool sandboxes are such sandboxes.
     */
    public void useWarmPool(WarmPool pool) {
        this.pool = pool;
    }

    public Duration defaultTimeout() {
        return defaultTimeout;
    }

    public Duration maxTimeout() {
        return maxTimeout;
    }

    // ---- transitions ----

    /**
     * Creates a sandbox and returns it running, with envd initialised. On any failure nothing is left: the driver
     * destroys what it started, the row is deleted, and {@link DriverFailure} says what went wrong.
     */
    public SandboxRecord create(CreateRequest request) {
        TemplateRecord template = store.findTemplate(request.templateRef())
                .orElseThrow(() -> new TemplateNotFound(request.templateRef()));
        Duration timeout = request.timeout() == null ? defaultTimeout : checkTimeout(request.timeout());
        // A pooled sandbox is already running under its own id, which becomes this sandbox's id. If the server
        // dies before the row below exists, recovery destroys it as an orphan.
        WarmPool warm = pool;
        Optional<SandboxInstance> pooled = warm == null || !template.resources().equals(warm.resources(template.id()))
                ? Optional.empty() : warm.take(template.id());
        String id = pooled.map(SandboxInstance::sandboxId).orElseGet(SandboxIds::newId);
        String token = newToken();
        String alias = template.aliases().contains(request.templateRef()) ? request.templateRef()
                : template.aliases().isEmpty() ? null : template.aliases().getFirst();
        Instant now = clock.instant();
        var record = new SandboxRecord(id, template.id(), alias, SandboxState.CREATING, now, now.plus(timeout),
                template.resources(), request.metadata(), request.envVars(), token, request.allowInternetAccess(),
                request.network(), request.lifecycle(), null, runtime.name());
        return locked(id, () -> {
            Instant endAt;
            String address;
            SandboxInstance instance;
            boolean inserted = false;
            try {
                store.insertSandbox(record);
                inserted = true;
                if (pooled.isPresent()) {
                    instance = pooled.get();
                    if (!request.policy().equals(dev.capsule.runtime.NetworkPolicy.OPEN)) {
                        runtime.applyNetworkPolicy(id, request.policy());
                    }
                } else {
                    instance = runtime.start(new SandboxSpec(id, template.id(), template.resources(), request.policy()));
                }
                envd.init(instance.address(), SandboxInstance.ENVD_PORT, request.envVars(), token, DEFAULT_USER);
                endAt = clock.instant().plus(timeout);
                address = instance.address().getHostAddress();
                store.updateSandbox(id, SandboxState.RUNNING, address, endAt);
            } catch (Exception | Error e) {
                if (e instanceof InterruptedException) Thread.currentThread().interrupt();
                if (inserted || pooled.isPresent()) {
                    abandon(id);
                }
                String cause = e instanceof RuntimeFailure ? e.getMessage() : e.getClass().getSimpleName() + ": " + e.getMessage();
                throw new DriverFailure("could not start a sandbox from template '" + request.templateRef() + "': "
                        + cause + "; nothing was left behind, try again or check the server log", e);
            }
            routes.put(id, new Route(id, SandboxState.RUNNING, instance.address(), request.lifecycle().autoResume()));
            arm(id, endAt);
            event(id, "sandbox.lifecycle.created", null);
            return record.withState(SandboxState.RUNNING).withAddress(address).withEndAt(endAt);
        });
    }

    /** Releases a half-created sandbox: the driver's part first, then the row. Never throws. */
    private void abandon(String id) {
        try {
            runtime.destroy(id);
        } catch (RuntimeException e) {
            LOG.log(System.Logger.Level.WARNING, "destroying half-created sandbox " + id + " failed; restart recovery"
                    + " will retry", e);
        }
        try {
            store.deleteSandbox(id);
        } catch (RuntimeException e) {
            LOG.log(System.Logger.Level.WARNING, "deleting the row of half-created sandbox " + id + " failed", e);
        }
    }

    /** The result of a connect: the sandbox, and whether it had to be resumed (201) rather than found running (200). */
    public record Connected(SandboxRecord sandbox, boolean resumed) {}

    /**
     * Connects to a sandbox: a paused one is resumed with a fresh timeout of {@code timeout}; a running one has its
     * timeout extended (never shortened) to at least now + {@code timeout}.
     */
    public Connected connect(String id, Duration timeout) {
        return connect(id, timeout, true);
    }

    /** As {@link #connect(String, Duration)}; {@code memory} false (resume by cold boot) is refused for paused ones. */
    public Connected connect(String id, Duration timeout, boolean memory) {
        checkTimeout(timeout);
        return locked(id, () -> {
            SandboxRecord s = find(id);
            if (s.state() == SandboxState.PAUSED) {
                if (!memory) {
                    throw new InvalidRequest("resuming by cold boot (memory: false / onResume: 'reboot') is not"
                            + " supported by this server yet; connect without it to resume with memory");
                }
                return new Connected(resumeLocked(s, timeout), true);
            }
            Instant wanted = clock.instant().plus(timeout);
            if (wanted.isAfter(s.endAt())) {
                s = setEnd(s, wanted);
            }
            return new Connected(s, false);
        });
    }

    /**
     * Pauses a running sandbox, keeping its memory (the driver's {@link SandboxRuntime#pauseMode()}), after making
     * its files durable; its timer stops. {@code memory} false (filesystem only) is refused for now.
     *
     * @throws Conflict it is already paused
     */
    public void pause(String id, boolean memory) {
        if (!memory) throw filesystemOnlyRefused();
        locked(id, () -> {
            SandboxRecord s = find(id);
            if (s.state() == SandboxState.PAUSED) {
                throw new Conflict("sandbox '" + id + "' is already paused; resume it with Sandbox.connect()");
            }
            return pauseLocked(s);
        });
    }

    /**
     * Resumes a paused sandbox (the deprecated {@code POST /sandboxes/{id}/resume}) with a fresh timeout.
     *
     * @throws Conflict it is running
     */
    public SandboxRecord resume(String id, Duration timeout) {
        checkTimeout(timeout);
        return locked(id, () -> {
            SandboxRecord s = find(id);
            if (s.state() != SandboxState.PAUSED) {
                throw new Conflict("sandbox '" + id + "' is already running; connect to it with Sandbox.connect()");
            }
            return resumeLocked(s, timeout);
        });
    }

    /**
     * For gateway traffic to a paused sandbox: resumes it when it was created with {@code autoResume}, with a fresh
     * default timeout. Returns its route afterwards (still paused without autoResume); empty if it is gone.
     */
    public Optional<Route> wakeForTraffic(String id) {
        if (!isSandboxId(id)) return Optional.empty();
        return locked(id, () -> {
            Optional<SandboxRecord> found = store.findSandbox(id).filter(s -> s.state() != SandboxState.CREATING);
            if (found.isEmpty()) return Optional.empty();
            SandboxRecord s = found.get();
            if (s.state() == SandboxState.PAUSED && s.lifecycle().autoResume()) {
                s = resumeLocked(s, defaultTimeout);
            }
            return Optional.of(routeOf(s));
        });
    }

    /** How paused sandboxes keep their memory on this host (the driver's pause mode). */
    public String pauseMode() {
        return runtime.pauseMode();
    }

    public static InvalidRequest filesystemOnlyRefused() {
        return new InvalidRequest("pausing without memory (memory: false / keepMemory: false / autoPauseMemory: false)"
                + " is not supported by this server yet; pause with memory (the default)");
    }

    /**
     * Puts back the timer of a sandbox whose pause failed. A timer already due (the pause came from expiry) is
     * retried after {@link #RETRY_AFTER_FAILURE}, not at once, so a pause that keeps failing does not spin.
     */
    private void rearmAfterFailure(SandboxRecord s) {
        Instant retry = clock.instant().plus(RETRY_AFTER_FAILURE);
        arm(s.id(), s.endAt().isAfter(retry) ? s.endAt() : retry);
    }

    private SandboxRecord pauseLocked(SandboxRecord s) {
        cancelTimer(s.id());
        // Routed as paused before the freeze, so no new request is sent into a sandbox that is freezing.
        routes.put(s.id(), new Route(s.id(), SandboxState.PAUSED, parseAddress(s.address()), s.lifecycle().autoResume()));
        try {
            runtime.pause(s.id(), true);
        } catch (RuntimeException e) {
            routes.put(s.id(), routeOf(s));
            rearmAfterFailure(s);
            throw new DriverFailure("could not pause sandbox '" + s.id() + "': " + e.getMessage()
                    + "; it is still running, retry the pause or check the server log", e);
        }
        try {
            store.updateSandbox(s.id(), SandboxState.PAUSED, s.address(), s.endAt());
        } catch (RuntimeException e) {
            try {
                runtime.resume(s.id());
            } catch (RuntimeException thaw) {
                e.addSuppressed(thaw);
            }
            routes.put(s.id(), routeOf(s));
            rearmAfterFailure(s);
            throw e;
        }
        event(s.id(), "sandbox.lifecycle.paused", null);
        return s.withState(SandboxState.PAUSED);
    }

    private SandboxRecord resumeLocked(SandboxRecord s, Duration timeout) {
        try {
            runtime.resume(s.id());
        } catch (RuntimeException e) {
            throw new DriverFailure("could not resume sandbox '" + s.id() + "': " + e.getMessage()
                    + "; it stays paused, retry or kill it", e);
        }
        Instant endAt = clock.instant().plus(timeout);
        store.updateSandbox(s.id(), SandboxState.RUNNING, s.address(), endAt);
        SandboxRecord running = s.withState(SandboxState.RUNNING).withEndAt(endAt);
        routes.put(s.id(), routeOf(running));
        arm(s.id(), endAt);
        event(s.id(), "sandbox.lifecycle.resumed", null);
        return running;
    }

    private static Route routeOf(SandboxRecord s) {
        return new Route(s.id(), s.state(), parseAddress(s.address()), s.lifecycle().autoResume());
    }

    /**
     * Replaces the egress policy of a running sandbox (E2B's full replacement: what the update leaves out is cleared)
     * and records it, with {@code network} (its JSON, without secrets) for getInfo.
     *
     * @throws Conflict the sandbox is paused: resume it first
     */
    public void updateNetwork(String id, dev.capsule.runtime.NetworkPolicy policy, Boolean allowInternetAccess,
                              String network) {
        locked(id, () -> {
            SandboxRecord s = find(id);
            if (s.state() != SandboxState.RUNNING) {
                throw new Conflict("sandbox '" + id + "' is " + s.state().wire() + "; resume it with Sandbox.connect()"
                        + " before changing its network");
            }
            try {
                runtime.applyNetworkPolicy(id, policy);
            } catch (RuntimeFailure e) {
                throw new DriverFailure("could not apply the network policy of sandbox '" + id + "': "
                        + e.getMessage() + "; its previous policy is still in force", e);
            }
            store.updateNetwork(id, allowInternetAccess, network);
            event(id, "sandbox.lifecycle.updated", null);
            return null;
        });
    }

    /** Sets the sandbox's end to now + {@code timeout}; this may shorten it. */
    public void setTimeout(String id, Duration timeout) {
        checkTimeout(timeout);
        locked(id, () -> setEnd(find(id), clock.instant().plus(timeout)));
    }

    /** Keeps the sandbox alive for at least {@code duration} more; never shortens. */
    public void refresh(String id, Duration duration) {
        locked(id, () -> {
            SandboxRecord s = find(id);
            Instant wanted = clock.instant().plus(duration);
            return wanted.isAfter(s.endAt()) ? setEnd(s, wanted) : s;
        });
    }

    private SandboxRecord setEnd(SandboxRecord s, Instant endAt) {
        store.updateSandbox(s.id(), s.state(), s.address(), endAt);
        if (s.state() == SandboxState.RUNNING) arm(s.id(), endAt);
        event(s.id(), "sandbox.lifecycle.updated", "{\"set_timeout\":\"" + endAt + "\"}");
        return s.withEndAt(endAt);
    }

    /** Kills a running or paused sandbox; {@link SandboxNotFound} if there is none. */
    public void kill(String id) {
        locked(id, () -> {
            killLocked(find(id));
            return null;
        });
    }

    private void killLocked(SandboxRecord s) {
        routes.remove(s.id());
        cancelTimer(s.id());
        try {
            runtime.destroy(s.id());
        } catch (RuntimeFailure e) {
            rearmAfterFailure(s); // it must still expire, or it would run unbounded
            throw new DriverFailure("could not kill sandbox '" + s.id() + "': " + e.getMessage()
                    + "; it is no longer routed to, retry the kill", e);
        }
        store.deleteSandbox(s.id());
        event(s.id(), "sandbox.lifecycle.killed", null);
        locks.remove(s.id());
    }

    // ---- reads ----

    /** The sandbox, if it is running or paused. */
    public SandboxRecord get(String id) {
        return find(id);
    }

    public SandboxQuery.Page list(SandboxQuery query) {
        Set<SandboxState> states = new HashSet<>(query.states());
        states.remove(SandboxState.CREATING);
        return store.listSandboxes(new SandboxQuery(states, query.metadata(), query.ascending(), query.after(), query.limit()));
    }

    public int countRunning() {
        return store.countSandboxes(SandboxState.RUNNING);
    }

    /** A cached route without blocking, or null when this sandbox's route must be looked up with {@link #route}. */
    public Route cachedRoute(String id) {
        return routes.get(id);
    }

    /** The sandbox's route, from the cache or the store (blocking); empty when there is no such sandbox. */
    public Optional<Route> route(String id) {
        Route cached = routes.get(id);
        if (cached != null) return Optional.of(cached);
        if (!isSandboxId(id)) return Optional.empty();
        // Under the lock, so a route read just before a kill cannot be cached after it.
        return locked(id, () -> store.findSandbox(id)
                .filter(s -> s.state() != SandboxState.CREATING && s.address() != null)
                .map(s -> {
                    Route r = routeOf(s);
                    routes.put(id, r);
                    return r;
                }));
    }

    private SandboxRecord find(String id) {
        if (!isSandboxId(id)) throw new SandboxNotFound(id);
        return store.findSandbox(id).filter(s -> s.state() != SandboxState.CREATING)
                .orElseThrow(() -> new SandboxNotFound(id));
    }

    // ---- timeouts ----

    private Duration checkTimeout(Duration timeout) {
        if (timeout.isNegative()) {
            throw new InvalidRequest("timeout must not be negative; give seconds between 0 and " + maxTimeout.toSeconds());
        }
        if (timeout.compareTo(maxTimeout) > 0) {
            throw new InvalidRequest("timeout " + timeout.toSeconds() + "s is above this server's maximum of "
                    + maxTimeout.toSeconds() + "s; ask for at most " + maxTimeout.toSeconds() + " seconds");
        }
        return timeout;
    }

    private void arm(String id, Instant endAt) {
        long delay = Math.max(0, Duration.between(clock.instant(), endAt).toMillis());
        ScheduledFuture<?> next = scheduler.schedule(() -> workers.execute(() -> expire(id)), delay, TimeUnit.MILLISECONDS);
        ScheduledFuture<?> previous = timers.put(id, next);
        if (previous != null) previous.cancel(false);
    }

    private void cancelTimer(String id) {
        ScheduledFuture<?> t = timers.remove(id);
        if (t != null) t.cancel(false);
    }

    /** Runs at a sandbox's end time: kills it (or, with autoPause, pauses it) unless it was extended since. */
    private void expire(String id) {
        try {
            locked(id, () -> {
                Optional<SandboxRecord> found = store.findSandbox(id);
                if (found.isEmpty() || found.get().state() != SandboxState.RUNNING) return null;
                SandboxRecord s = found.get();
                if (s.endAt().isAfter(clock.instant())) {
                    arm(id, s.endAt()); // extended after this timer was set
                    return null;
                }
                if (s.lifecycle().pauseOnTimeout()) {
                    pauseLocked(s);
                } else {
                    killLocked(s);
                }
                return null;
            });
        } catch (RuntimeException e) {
            LOG.log(System.Logger.Level.WARNING, "expiring sandbox " + id + " failed; retrying in "
                    + RETRY_AFTER_FAILURE.toSeconds() + " s", e);
            arm(id, clock.instant().plus(RETRY_AFTER_FAILURE));
        }
    }

    // ---- restart ----

    /**
     * Reconciles the store with what the driver finds on the host after a (re)start: running sandboxes it knows are
     * adopted (route cached, timer re-armed, address refreshed); rows whose sandbox is gone, or that were left
     * half-created, are deleted; sandboxes on the host without a row are destroyed. Rows of another driver are left
     * alone. Paused sandboxes are adopted as paused (no timer). Where a crash interrupted a pause or a resume, the
     * host is made to match the row (the last state a caller was told): a row running over a frozen sandbox thaws
     * it, a paused row over a running sandbox freezes it. A paused row whose sandbox is gone from the host (its
     * memory lost, e.g. by a reboot) is kept: its files may remain, and kill removes it.
     */
    public void recover() {
        Map<String, SandboxInstance> onHost = new HashMap<>();
        for (SandboxInstance i : runtime.discover()) onHost.put(i.sandboxId(), i);
        Set<String> known = new HashSet<>();
        for (SandboxRecord s : store.allSandboxes()) {
            if (!s.runtime().equals(runtime.name())) continue;
            known.add(s.id());
            locked(s.id(), () -> {
                SandboxInstance live = onHost.get(s.id());
                if (s.state() == SandboxState.CREATING) {
                    LOG.log(System.Logger.Level.INFO, "removing sandbox " + s.id() + " left half-created by a previous run");
                    abandon(s.id());
                } else if (s.state() == SandboxState.RUNNING && live == null) {
                    LOG.log(System.Logger.Level.INFO, "sandbox " + s.id() + " is gone from the host; removing its row");
                    store.deleteSandbox(s.id());
                    event(s.id(), "sandbox.lifecycle.killed", null);
                } else if (s.state() == SandboxState.PAUSED && live == null) {
                    LOG.log(System.Logger.Level.WARNING, "paused sandbox " + s.id() + " is gone from the host (its"
                            + " memory was not kept); keeping its row, resuming it will fail until cold resume exists");
                } else {
                    try {
                        if (s.state() == SandboxState.RUNNING && live.paused()) {
                            LOG.log(System.Logger.Level.INFO, "sandbox " + s.id() + " was left frozen by an interrupted pause; thawing it");
                            runtime.resume(s.id());
                        } else if (s.state() == SandboxState.PAUSED && !live.paused()) {
                            LOG.log(System.Logger.Level.INFO, "sandbox " + s.id() + " was left running by an interrupted resume; pausing it");
                            runtime.pause(s.id(), true);
                        }
                    } catch (RuntimeException e) {
                        LOG.log(System.Logger.Level.WARNING, "could not bring sandbox " + s.id() + " to its recorded state "
                                + s.state().wire(), e);
                    }
                    String address = live.address().getHostAddress();
                    if (!address.equals(s.address())) store.updateSandbox(s.id(), s.state(), address, s.endAt());
                    routes.put(s.id(), new Route(s.id(), s.state(), live.address(), s.lifecycle().autoResume()));
                    if (s.state() == SandboxState.RUNNING) arm(s.id(), s.endAt()); // an end time already past fires at once
                }
                return null;
            });
        }
        for (String orphan : onHost.keySet()) {
            if (known.contains(orphan)) continue;
            LOG.log(System.Logger.Level.INFO, "destroying sandbox " + orphan + " found on the host without a record");
            try {
                runtime.destroy(orphan);
            } catch (RuntimeFailure e) {
                LOG.log(System.Logger.Level.WARNING, "destroying orphan sandbox " + orphan + " failed", e);
            }
        }
    }

    // ---- helpers ----

    private <T> T locked(String id, Supplier<T> work) {
        ReentrantLock lock = locks.computeIfAbsent(id, k -> new ReentrantLock());
        lock.lock();
        try {
            return work.get();
        } finally {
            lock.unlock();
        }
    }

    private void event(String id, String type, String data) {
        try {
            store.addEvent(id, type, data);
        } catch (RuntimeException e) {
            LOG.log(System.Logger.Level.WARNING, "recording event " + type + " of " + id + " failed", e);
        }
    }

    /** Whether {@code id} has the form of a sandbox id: 20 characters of [a-z0-9]. */
    public static boolean isSandboxId(String id) {
        return SandboxIds.isValid(id);
    }

    private static String newToken() {
        byte[] b = new byte[32];
        RANDOM.nextBytes(b);
        return HexFormat.of().formatHex(b);
    }

    private static InetAddress parseAddress(String literal) {
        try {
            return InetAddress.ofLiteral(literal);
        } catch (IllegalArgumentException e) {
            try {
                return InetAddress.getByName(literal);
            } catch (UnknownHostException u) {
                throw new IllegalStateException("stored address '" + literal + "' is not an IP address", u);
            }
        }
    }

    /** Stops timers; running sandboxes keep running and are re-adopted by {@link #recover()} on the next start. */
    @Override
    public void close() {
        scheduler.shutdownNow();
        workers.shutdown();
    }
}
