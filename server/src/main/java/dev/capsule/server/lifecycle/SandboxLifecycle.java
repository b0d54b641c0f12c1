package dev.capsule.server.lifecycle;

import dev.capsule.runtime.NetworkPolicy;
import dev.capsule.runtime.Resumed;
import dev.capsule.runtime.RuntimeFailure;
import dev.capsule.runtime.SandboxInstance;
import dev.capsule.runtime.SandboxIds;
import dev.capsule.runtime.SandboxRuntime;
import dev.capsule.runtime.SandboxSpec;
import dev.capsule.runtime.SnapshotLayer;
import dev.capsule.runtime.UnknownRuntime;
import dev.capsule.runtime.UnknownTemplate;
import dev.capsule.runtime.pool.WarmPool;
import dev.capsule.server.events.SandboxEvents;
import dev.capsule.server.logging.LogContext;
import dev.capsule.server.lifecycle.LifecycleException.Conflict;
import dev.capsule.server.lifecycle.LifecycleException.DriverFailure;
import dev.capsule.server.lifecycle.LifecycleException.InvalidRequest;
import dev.capsule.server.lifecycle.LifecycleException.SandboxNotFound;
import dev.capsule.server.lifecycle.LifecycleException.SnapshotNotFound;
import dev.capsule.server.lifecycle.LifecycleException.TemplateNotFound;
import dev.capsule.server.store.SandboxQuery;
import dev.capsule.server.store.SandboxRecord;
import dev.capsule.server.store.SandboxState;
import dev.capsule.server.store.SnapshotRecord;
import dev.capsule.server.store.Store;
import dev.capsule.server.store.TemplateRecord;
import java.io.IOException;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.security.SecureRandom;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Supplier;
import java.util.regex.Pattern;

/**
 * The one owner of every sandbox's state machine: creating → running ⇄ paused → killed (row gone). Every transition — create, connect, timeout changes, kill, expiry, restart recovery — runs
 * under that sandbox's lock and writes the store before it returns, so concurrent calls cannot leave a sandbox
 * half-done: a kill during a create waits for the create and then kills; a failed create destroys what it started
 * and deletes its row. Also keeps the gateway's route cache coherent, because only this class changes a route.
 *
 * <p>A paused sandbox has no timer: paused time does not count against its timeout, and resuming gives it a fresh
 * one. It is paused with its memory (frozen, resumes where it stopped) or without (only its files kept: resuming
 * cold-boots it and sends envd's {@code /init} again, and its info and events say its memory was not kept). The
 * driver pauses first and the row follows, so a crash in between leaves a row that restart recovery makes the host
 * agree with ({@link #recover()}). Snapshots and forks are taken under the source's lock too.
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
    private final SandboxEvents events;
    private final ConcurrentHashMap<String, ReentrantLock> locks = new ConcurrentHashMap<>();
    private final ConcurrentHashMap<String, Route> routes = new ConcurrentHashMap<>();
    private final ConcurrentHashMap<String, ScheduledFuture<?>> timers = new ConcurrentHashMap<>();
    private final ScheduledExecutorService scheduler = Executors.newSingleThreadScheduledExecutor(
            Thread.ofPlatform().daemon().name("capsule-timeouts").factory());
    private final ExecutorService workers = Executors.newVirtualThreadPerTaskExecutor();
    private volatile WarmPool pool;

    public SandboxLifecycle(Store store, SandboxRuntime runtime, EnvdClient envd, Clock clock,
                            Duration defaultTimeout, Duration maxTimeout) {
        this(store, runtime, envd, clock, defaultTimeout, maxTimeout, new SandboxEvents(store, clock));
    }

    /** With the server's events component, which also feeds webhooks, sandbox logs and metrics. */
    public SandboxLifecycle(Store store, SandboxRuntime runtime, EnvdClient envd, Clock clock,
                            Duration defaultTimeout, Duration maxTimeout, SandboxEvents events) {
        this.events = events;
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

    public Duration maxTimeout() {
        return maxTimeout;
    }

    // ---- transitions ----

    /**
     * Creates a sandbox from a template or a snapshot (by id or name, with or without {@code :default}) and returns
     * it running, with envd initialised. On any failure nothing is left: the driver destroys what it started, the
     * row is deleted, and {@link DriverFailure} says what went wrong.
     */
    public SandboxRecord create(CreateRequest request) {
        TemplateRecord template = store.findTemplate(request.templateRef())
                .orElseThrow(() -> new TemplateNotFound(request.templateRef()));
        String alias = template.aliases().contains(request.templateRef()) ? request.templateRef()
                : template.aliases().isEmpty() ? null : template.aliases().getFirst();
        return createFrom(template, template.id(), alias, request);
    }

    /**
     * Starts a sandbox from {@code source} (a template or snapshot) and records it as made from {@code templateId}
     * / {@code alias} (the same, except for forks, which report their source's template).
     */
    private SandboxRecord createFrom(TemplateRecord source, String templateId, String alias, CreateRequest request) {
        long began = System.nanoTime();
        Duration timeout = request.timeout() == null ? defaultTimeout : checkTimeout(request.timeout());
        String driver = driverFor(source, request);
        // A pooled sandbox is already running under its own id, which becomes this sandbox's id. If the server
        // dies before the row below exists, recovery destroys it as an orphan. Snapshots have no pool; the pool's
        // sandboxes run on the template's own driver.
        WarmPool warm = pool;
        Optional<SandboxInstance> pooled = warm == null || !source.resources().equals(warm.resources(source.id()))
                || !driver.equals(runtime.driver(source.runtime()).name()) ? Optional.empty() : warm.take(source.id());
        String id = pooled.map(SandboxInstance::sandboxId).orElseGet(SandboxIds::newId);
        String token = newToken();
        Instant now = clock.instant();
        String trafficToken = request.publicTraffic() ? null : newToken();
        var record = new SandboxRecord(id, templateId, alias, SandboxState.CREATING, now, now.plus(timeout),
                source.resources(), request.metadata(), request.envVars(), token, request.allowInternetAccess(),
                request.network(), request.lifecycle(), null, driver, timeout, true, trafficToken,
                request.apiKeyId());
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
                        runtime.driver(driver).applyNetworkPolicy(id, request.policy());
                    }
                } else {
                    instance = runtime.start(new SandboxSpec(id, source.id(), source.resources(), request.policy(),
                            driver));
                }
                envd.init(instance.address(), SandboxInstance.ENVD_PORT, request.envVars(), token, DEFAULT_USER);
                endAt = clock.instant().plus(timeout);
                address = instance.address().getHostAddress();
                store.updateSandbox(id, SandboxState.RUNNING, address, endAt);
            } catch (Exception | Error e) {
                if (e instanceof InterruptedException) Thread.currentThread().interrupt();
                if (inserted || pooled.isPresent()) {
                    abandon(id, driver);
                }
                // e.g. a snapshot deleted between its lookup and this start
                if (e instanceof UnknownTemplate) throw new TemplateNotFound(request.templateRef());
                String cause = e instanceof RuntimeFailure ? e.getMessage() : e.getClass().getSimpleName() + ": " + e.getMessage();
                throw new DriverFailure("could not start a sandbox from template '" + request.templateRef() + "': "
                        + cause + "; nothing was left behind, try again or check the server log", e);
            }
            routes.put(id, routeOf(record.withState(SandboxState.RUNNING).withAddress(address)));
            arm(id, endAt);
            event(id, "sandbox.lifecycle.created", null);
            events.transitionTook("create", began);
            return record.withState(SandboxState.RUNNING).withAddress(address).withEndAt(endAt);
        });
    }

    /**
     * The driver a new sandbox runs on: the one the request names, else its template's, else the server's default.
     * A template that names its driver (a snapshot names the one that took it) runs only there.
     */
    private String driverFor(TemplateRecord source, CreateRequest request) {
        if (request.runtime() != null && source.runtime() != null && !request.runtime().equals(source.runtime())) {
            throw new InvalidRequest("template '" + request.templateRef() + "' runs on the " + source.runtime()
                    + " driver (a snapshot starts only on the driver that took it), not on " + request.runtime()
                    + "; leave out 'runtime' or name " + source.runtime());
        }
        try {
            return runtime.driver(request.runtime() != null ? request.runtime() : source.runtime()).name();
        } catch (UnknownRuntime e) {
            throw new InvalidRequest(e.getMessage());
        }
    }

    /** The driver that runs sandbox {@code s}, as its row records. */
    private SandboxRuntime driverOf(SandboxRecord s) {
        return runtime.driver(s.runtime());
    }

    /** Releases a half-created sandbox: the driver's part first, then the row. Never throws. */
    private void abandon(String id, String driver) {
        try {
            runtime.driver(driver).destroy(id);
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
     * timeout extended (never shortened) to at least now + {@code timeout}. A null {@code timeout} means the
     * sandbox's own, the one it was created with. {@code memory} false (SDK {@code onResume: 'reboot'}) resumes a
     * paused sandbox by cold boot even if its memory was kept.
     */
    public Connected connect(String id, Duration timeout, boolean memory) {
        if (timeout != null) checkTimeout(timeout);
        return locked(id, () -> {
            SandboxRecord s = find(id);
            Duration t = timeout == null ? ownTimeout(s) : timeout;
            if (s.state() == SandboxState.PAUSED) {
                return new Connected(resumeLocked(s, clock.instant().plus(t), memory), true);
            }
            Instant wanted = clock.instant().plus(t);
            if (wanted.isAfter(s.endAt())) {
                s = setEnd(s, wanted);
            }
            return new Connected(s, false);
        });
    }

    /**
     * Pauses a running sandbox after making its files durable; its timer stops. With {@code memory} its processes
     * are kept (the driver's {@link SandboxRuntime#pauseMode()}); without, only its files are, and resuming it
     * cold-boots it.
     *
     * @throws Conflict it is already paused
     */
    public void pause(String id, boolean memory) {
        locked(id, () -> {
            SandboxRecord s = find(id);
            if (s.state() == SandboxState.PAUSED) {
                throw new Conflict("sandbox '" + id + "' is already paused; resume it with Sandbox.connect()");
            }
            return pauseLocked(s, memory);
        });
    }

    /**
     * Resumes a paused sandbox (the deprecated {@code POST /sandboxes/{id}/resume}) with a fresh timeout;
     * {@code memory} false cold-boots it.
     *
     * @throws Conflict it is running
     */
    public SandboxRecord resume(String id, Duration timeout, boolean memory) {
        checkTimeout(timeout);
        return locked(id, () -> {
            SandboxRecord s = find(id);
            if (s.state() != SandboxState.PAUSED) {
                throw new Conflict("sandbox '" + id + "' is already running; connect to it with Sandbox.connect()");
            }
            return resumeLocked(s, clock.instant().plus(timeout), memory);
        });
    }

    /**
     * For gateway traffic to a paused sandbox: resumes it when it was created with {@code autoResume}, with a fresh
     * timeout of its own (the one it was created with); one paused without memory is cold-booted. Returns its route
     * afterwards (still paused without autoResume); empty if it is gone. Ids with no row take no lock, so traffic
     * for made-up ids leaves nothing behind.
     */
    public Optional<Route> wakeForTraffic(String id) {
        if (!isSandboxId(id) || store.findSandbox(id).isEmpty()) return Optional.empty();
        return locked(id, () -> {
            Optional<SandboxRecord> found = store.findSandbox(id).filter(s -> s.state() != SandboxState.CREATING);
            if (found.isEmpty()) {
                dropLockIfGone(id);
                return Optional.empty();
            }
            SandboxRecord s = found.get();
            if (s.state() == SandboxState.PAUSED && s.lifecycle().autoResume()) {
                s = resumeLocked(s, clock.instant().plus(ownTimeout(s)), true);
            }
            return Optional.of(routeOf(s));
        });
    }

    /** How paused sandboxes keep their memory on this host (the driver's pause mode). */
    public String pauseMode() {
        return runtime.pauseMode();
    }

    /** Why the pause mode is what it is on this host, in a sentence. */
    public String pauseModeReason() {
        return runtime.pauseModeReason();
    }

    /** The runtime driver's name ({@code oci}, {@code microvm}). */
    public String runtimeName() {
        return runtime.name();
    }

    /**
     * Puts back the timer of a sandbox whose pause failed. A timer already due (the pause came from expiry) is
     * retried after {@link #RETRY_AFTER_FAILURE}, not at once, so a pause that keeps failing does not spin.
     */
    private void rearmAfterFailure(SandboxRecord s) {
        Instant retry = clock.instant().plus(RETRY_AFTER_FAILURE);
        arm(s.id(), s.endAt().isAfter(retry) ? s.endAt() : retry);
    }

    private SandboxRecord pauseLocked(SandboxRecord s, boolean keepMemory) {
        long began = System.nanoTime();
        cancelTimer(s.id());
        // Routed as paused before the freeze, so no new request is sent into a sandbox that is freezing.
        routes.put(s.id(), routeOf(s.withState(SandboxState.PAUSED)));
        try {
            driverOf(s).pause(s.id(), keepMemory);
        } catch (RuntimeException e) {
            routes.put(s.id(), routeOf(s));
            rearmAfterFailure(s);
            throw new DriverFailure("could not pause sandbox '" + s.id() + "': " + e.getMessage()
                    + "; it is still running, retry the pause or check the server log", e);
        }
        // Without memory its network was released: the address may go to another sandbox.
        SandboxRecord paused = s.withState(SandboxState.PAUSED).withMemoryKept(keepMemory)
                .withAddress(keepMemory ? s.address() : null);
        try {
            store.updateSandbox(s.id(), SandboxState.PAUSED, paused.address(), s.endAt(), keepMemory);
        } catch (RuntimeException e) {
            try {
                Resumed back = driverOf(s).resume(s.id());
                if (!back.memoryKept()) initEnvd(s, back.instance());
                routes.put(s.id(), routeOf(s.withAddress(back.instance().address().getHostAddress())));
            } catch (Exception | Error undo) {
                e.addSuppressed(undo);
            }
            rearmAfterFailure(s);
            throw e;
        }
        routes.put(s.id(), routeOf(paused));
        event(s.id(), "sandbox.lifecycle.paused", memoryKept(keepMemory));
        events.transitionTook("pause", began);
        return paused;
    }

    /**
     * Resumes a paused sandbox until {@code endAt}. {@code keepMemory} false on one whose memory was kept stops it
     * first, so that it cold-boots. After a cold boot envd gets its {@code /init} again (env vars, token, user) and
     * the sandbox's new address is stored and routed. On failure it stays paused (the row unchanged but for the
     * memory it lost) and {@link DriverFailure} says why; if the store cannot record it running, it is paused again
     * and the store's error is thrown, as {@link #pauseLocked} does the other way round.
     */
    private SandboxRecord resumeLocked(SandboxRecord s, Instant endAt, boolean keepMemory) {
        if (!keepMemory && s.memoryKept()) {
            try {
                driverOf(s).pause(s.id(), false);
            } catch (RuntimeException e) {
                throw new DriverFailure("could not drop the memory of sandbox '" + s.id() + "' to reboot it: "
                        + e.getMessage() + "; it stays paused with its memory, connect without memory: false or retry", e);
            }
            s = s.withMemoryKept(false).withAddress(null);
            store.updateSandbox(s.id(), SandboxState.PAUSED, null, s.endAt(), false);
            routes.put(s.id(), routeOf(s));
        }
        long began = System.nanoTime();
        Resumed resumed;
        try {
            resumed = driverOf(s).resume(s.id());
        } catch (RuntimeException e) {
            throw new DriverFailure("could not resume sandbox '" + s.id() + "': " + e.getMessage()
                    + "; it stays paused, retry or kill it", e);
        }
        if (!resumed.memoryKept()) {
            try {
                initEnvd(s, resumed.instance());
            } catch (Exception | Error e) {
                if (e instanceof InterruptedException) Thread.currentThread().interrupt();
                try {
                    driverOf(s).pause(s.id(), false);
                } catch (RuntimeException stop) {
                    e.addSuppressed(stop);
                }
                throw new DriverFailure("sandbox '" + s.id() + "' was cold-booted but its envd did not take /init ("
                        + e.getMessage() + "); it stays paused, retry or kill it", e);
            }
        }
        String address = resumed.instance().address().getHostAddress();
        try {
            store.updateSandbox(s.id(), SandboxState.RUNNING, address, endAt, resumed.memoryKept());
        } catch (RuntimeException e) {
            try {
                driverOf(s).pause(s.id(), resumed.memoryKept());
            } catch (RuntimeException pause) {
                e.addSuppressed(pause);
            }
            throw e;
        }
        SandboxRecord running = s.withState(SandboxState.RUNNING).withAddress(address).withEndAt(endAt)
                .withMemoryKept(resumed.memoryKept());
        routes.put(s.id(), routeOf(running));
        arm(s.id(), endAt);
        event(s.id(), "sandbox.lifecycle.resumed", memoryKept(resumed.memoryKept()));
        events.transitionTook("resume", began);
        return running;
    }

    /** envd's {@code /init} after a cold boot: the same env vars, token and user as at create. */
    private void initEnvd(SandboxRecord s, SandboxInstance instance) throws IOException, InterruptedException {
        envd.init(instance.address(), SandboxInstance.ENVD_PORT, s.envVars(), s.envdAccessToken(), DEFAULT_USER);
    }

    /** Event data saying whether a pause or resume kept the sandbox's memory. */
    private static String memoryKept(boolean kept) {
        return "{\"memory_kept\":" + kept + "}";
    }

    private static Route routeOf(SandboxRecord s) {
        return new Route(s.id(), s.state(), s.address() == null ? null : parseAddress(s.address()),
                s.lifecycle().autoResume(), s.envdAccessToken(), s.trafficAccessToken());
    }

    /** The sandbox's own timeout (from its create), at most the server's maximum; the default for older rows. */
    private Duration ownTimeout(SandboxRecord s) {
        if (s.timeout() == null) return defaultTimeout;
        return s.timeout().compareTo(maxTimeout) > 0 ? maxTimeout : s.timeout();
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
                driverOf(s).applyNetworkPolicy(id, policy);
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
        events.beforeDestroy(s.id()); // its console goes with it: the sandbox's log keeps what it said
        try {
            driverOf(s).destroy(s.id());
        } catch (RuntimeFailure e) {
            rearmAfterFailure(s); // it must still expire, or it would run unbounded
            throw new DriverFailure("could not kill sandbox '" + s.id() + "': " + e.getMessage()
                    + "; it is no longer routed to, retry the kill", e);
        }
        store.deleteSandbox(s.id());
        event(s.id(), "sandbox.lifecycle.killed", null);
        dropLockIfGone(s.id());
    }

    // ---- snapshots and forks ----

    /** Most forks one call makes, as E2B allows. */
    public static final int MAX_FORKS = 100;
    /** Forks started at once: each start is a driver start plus an envd boot, CPU-bound on a small host. */
    private static final int FORK_PARALLELISM = 4;
    /** Snapshot names: E2B's template names, {@code [namespace/]name} of lowercase letters, digits, {@code . _ -}. */
    private static final Pattern SNAPSHOT_NAME = Pattern.compile(
            "[a-z0-9](?:[a-z0-9._-]*[a-z0-9])?(?:/[a-z0-9](?:[a-z0-9._-]*[a-z0-9])?)?");

    /**
     * Snapshots a sandbox's files (and memory where the driver can) as a template that sandboxes can be created
     * from. A running sandbox is paused briefly and keeps running; a paused one stays paused. A {@code name}
     * already used by a snapshot moves to this one, and the old snapshot is deleted (sandboxes created from it keep
     * running).
     *
     * @throws InvalidRequest the name is malformed
     * @throws Conflict       the name belongs to a template that is not a snapshot
     */
    public SnapshotRecord snapshot(String sandboxId, String name) {
        if (name != null && (name.length() > 128 || !SNAPSHOT_NAME.matcher(name).matches())) {
            throw new InvalidRequest("snapshot name '" + name + "' is not valid: use at most 128 lowercase letters,"
                    + " digits, '.', '_' and '-' (starting and ending with a letter or digit), optionally after one"
                    + " 'namespace/', e.g. 'my-snapshot'");
        }
        return locked(sandboxId, () -> {
            SandboxRecord s = find(sandboxId);
            if (name != null && store.templateKind(name).filter(k -> !k.equals(Store.SNAPSHOT)).isPresent()) {
                throw new Conflict("the name '" + name + "' belongs to a template; choose another snapshot name");
            }
            return takeSnapshot(s, name, Store.SNAPSHOT);
        });
    }

    /** Stores a snapshot of {@code s} (under its lock): row first (not ready), driver, then the row ready. */
    private SnapshotRecord takeSnapshot(SandboxRecord s, String name, String kind) {
        String snapshotId = SandboxIds.newId();
        Instant now = clock.instant();
        store.insertSnapshot(snapshotId, kind, s.id(), s.resources(), s.runtime(), now);
        SnapshotLayer layer;
        try {
            layer = driverOf(s).snapshot(s.id(), snapshotId);
        } catch (RuntimeException e) {
            discardSnapshot(snapshotId);
            throw new DriverFailure("could not snapshot sandbox '" + s.id() + "': " + e.getMessage() + "; the sandbox is "
                    + s.state().wire() + " as before, retry or check the server log", e);
        }
        Optional<String> replaced;
        try {
            replaced = store.finishSnapshot(snapshotId, layer.sizeBytes(), name);
        } catch (RuntimeException e) {
            discardSnapshot(snapshotId);
            if (e instanceof IllegalArgumentException) throw new Conflict(e.getMessage() + "; choose another snapshot name");
            throw e;
        }
        replaced.ifPresent(old -> {
            try {
                runtime.deleteSnapshot(old);
            } catch (RuntimeException e) {
                LOG.log(System.Logger.Level.WARNING, "deleting the files of snapshot " + old + ", replaced by " + snapshotId
                        + " under the name '" + name + "', failed; they stay on disk", e);
            }
        });
        event(s.id(), "sandbox.lifecycle.checkpointed", "{\"snapshot_id\":\"" + snapshotId + "\"}");
        return new SnapshotRecord(snapshotId, name, s.id(), now, layer.sizeBytes());
    }

    /** Deletes a snapshot's files and row, logging (not throwing) failures: for clean-ups. */
    private void discardSnapshot(String snapshotId) {
        try {
            runtime.deleteSnapshot(snapshotId);
            store.deleteTemplate(snapshotId);
        } catch (RuntimeException e) {
            LOG.log(System.Logger.Level.WARNING, "discarding snapshot " + snapshotId + " failed; the next start retries", e);
        }
    }

    /** One page of snapshots, newest first; {@code sandboxId} and {@code name} filter when not null. */
    public SnapshotRecord.Page listSnapshots(String sandboxId, String name, SandboxQuery.Cursor after, int limit) {
        return store.listSnapshots(sandboxId, name, after, limit);
    }

    /**
     * Deletes a snapshot named by its snapshot id, template id or name. Sandboxes created from it keep running.
     *
     * @throws SnapshotNotFound there is no such snapshot (also for the second of two deletes)
     * @throws InvalidRequest   {@code ref} names a template that is not a snapshot
     */
    public void deleteSnapshot(String ref) {
        SnapshotRecord snapshot = store.findSnapshot(ref).orElseThrow(() -> store.templateKind(ref).isPresent()
                ? new InvalidRequest("'" + ref + "' is a template, not a snapshot; only snapshots can be deleted")
                : new SnapshotNotFound(ref));
        try {
            runtime.deleteSnapshot(snapshot.id());
        } catch (RuntimeException e) {
            throw new DriverFailure("could not delete the files of snapshot '" + ref + "': " + e.getMessage()
                    + "; it is still there, retry the delete", e);
        }
        if (!store.deleteTemplate(snapshot.id())) throw new SnapshotNotFound(ref);
    }

    /** One fork's outcome: its sandbox, or why it could not be started. */
    public record ForkResult(SandboxRecord sandbox, LifecycleException error) {}

    /**
     * Forks a sandbox {@code count} times: snapshots it once (internally, never listed), creates the forks from
     * that snapshot, then deletes it (the forks keep its files). Each fork gets the source's files, metadata, env
     * vars, network settings and lifecycle, a new id and token, and {@code timeout} (null: the server default).
     * Where the driver keeps no memory in snapshots (oci), forks start their processes afresh. The source keeps
     * its id, state and expiry. Each fork succeeds or fails on its own.
     */
    public List<ForkResult> fork(String id, Duration timeout, int count, String apiKeyId) {
        if (count < 1 || count > MAX_FORKS) {
            throw new InvalidRequest("'count' must be between 1 and " + MAX_FORKS + ", got " + count);
        }
        if (timeout != null) checkTimeout(timeout);
        SandboxRecord[] source = new SandboxRecord[1];
        NetworkPolicy[] policy = new NetworkPolicy[1];
        SnapshotRecord snapshot = locked(id, () -> {
            source[0] = find(id);
            // from the driver: the store keeps no egress proxy password, and a fork must not get out around it
            policy[0] = driverOf(source[0]).networkPolicy(id);
            return takeSnapshot(source[0], null, Store.FORK_SNAPSHOT);
        });
        SandboxRecord s = source[0];
        try {
            var template = new TemplateRecord(snapshot.id(), List.of(), s.resources(), s.runtime());
            var request = new CreateRequest(snapshot.id(), timeout, s.metadata(), s.envVars(), s.allowInternetAccess(),
                    s.network(), policy[0], s.lifecycle(), s.trafficAccessToken() == null, apiKeyId, s.runtime());
            var gate = new Semaphore(FORK_PARALLELISM);
            List<Future<ForkResult>> started = new ArrayList<>();
            try (var forks = Executors.newVirtualThreadPerTaskExecutor()) {
                for (int i = 0; i < count; i++) {
                    started.add(forks.submit(() -> {
                        gate.acquire();
                        try {
                            return new ForkResult(createFrom(template, s.templateId(), s.alias(), request), null);
                        } catch (LifecycleException e) {
                            return new ForkResult(null, e);
                        } finally {
                            gate.release();
                        }
                    }));
                }
            }
            List<ForkResult> results = new ArrayList<>();
            for (Future<ForkResult> f : started) {
                try {
                    results.add(f.get());
                } catch (ExecutionException e) {
                    results.add(new ForkResult(null, new DriverFailure("could not start a fork of sandbox '" + id
                            + "': " + e.getCause() + "; see the server log", e.getCause())));
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new IllegalStateException("interrupted while forking sandbox " + id, e);
                }
            }
            return results;
        } finally {
            discardSnapshot(snapshot.id());
        }
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

    /**
     * Every cached route, without blocking: after {@link #recover()} that is every sandbox this server runs or keeps
     * paused. The gateway looks signed URLs that name no sandbox up among them.
     */
    public java.util.Collection<Route> cachedRoutes() {
        return java.util.List.copyOf(routes.values());
    }

    /**
     * The sandbox's route, from the cache or the store (blocking); empty when there is no such sandbox. Ids with no
     * row take no lock, so unauthenticated traffic for made-up ids leaves nothing behind.
     */
    public Optional<Route> route(String id) {
        Route cached = routes.get(id);
        if (cached != null) return Optional.of(cached);
        if (!isSandboxId(id) || store.findSandbox(id).isEmpty()) return Optional.empty();
        // Under the lock, so a route read just before a kill cannot be cached after it.
        return locked(id, () -> {
            Optional<Route> route = store.findSandbox(id)
                    .filter(s -> s.state() != SandboxState.CREATING)
                    .map(s -> {
                        Route r = routeOf(s);
                        routes.put(id, r);
                        return r;
                    });
            if (route.isEmpty()) dropLockIfGone(id);
            return route;
        });
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
                    pauseLocked(s, s.lifecycle().autoPauseMemory());
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
     * Reconciles the store with what the driver finds on the host after a (re)start, making the host match each
     * row (the last state a caller was told), and never dropping a sandbox whose files remain:
     * <ul>
     * <li>half-created rows are removed with what they started; a row with nothing on the host (no processes, no
     *     files) is deleted with a {@code killed} event; sandboxes on the host without a row are destroyed;
     * <li>running row: a running sandbox is adopted (route, timer, address refreshed); a frozen one (interrupted
     *     pause) is thawed; a stopped one (host reboot, interrupted pause without memory) is cold-booted back to
     *     running, its memory reported not kept — and if that fails it becomes paused;
     * <li>paused row: adopted as paused; a running one (interrupted resume) is paused again as the row says; a
     *     stopped one whose row said memory was kept lost it (host reboot): the row says so, resuming cold-boots.
     * </ul>
     * Rows of a driver this server does not run are left alone. Snapshots a crash left unfinished, and forks' internal snapshots, are
     * deleted.
     */
    public void recover() {
        Map<String, SandboxInstance> onHost = new HashMap<>();
        for (SandboxInstance i : runtime.discover()) onHost.put(i.sandboxId(), i);
        Set<String> known = new HashSet<>();
        for (SandboxRecord s : store.allSandboxes()) {
            if (!runtime.drivers().contains(s.runtime())) continue;
            known.add(s.id());
            locked(s.id(), () -> {
                try {
                    recoverLocked(s, onHost.get(s.id()));
                } catch (RuntimeException e) {
                    LOG.log(System.Logger.Level.WARNING, "could not bring sandbox " + s.id() + " to its recorded state "
                            + s.state().wire() + "; it is left as it is", e);
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
        for (String snapshot : store.unfinishedSnapshots()) {
            LOG.log(System.Logger.Level.INFO, "deleting snapshot " + snapshot + " left unfinished or unused by a previous run");
            discardSnapshot(snapshot);
        }
    }

    private void recoverLocked(SandboxRecord s, SandboxInstance live) {
        if (s.state() == SandboxState.CREATING) {
            LOG.log(System.Logger.Level.INFO, "removing sandbox " + s.id() + " left half-created by a previous run");
            abandon(s.id(), s.runtime());
            dropLockIfGone(s.id());
            return;
        }
        if (live == null) {
            LOG.log(System.Logger.Level.INFO, "sandbox " + s.id() + " (" + s.state().wire() + ") is gone from the host,"
                    + " files included; removing its row");
            store.deleteSandbox(s.id());
            event(s.id(), "sandbox.lifecycle.killed", null);
            dropLockIfGone(s.id());
            return;
        }
        if (s.state() == SandboxState.RUNNING) {
            recoverRunning(s, live);
        } else {
            recoverPaused(s, live);
        }
    }

    private void recoverRunning(SandboxRecord s, SandboxInstance live) {
        switch (live.state()) {
            case RUNNING -> adoptRunning(s, live);
            case FROZEN -> {
                LOG.log(System.Logger.Level.INFO, "sandbox " + s.id() + " was left frozen by an interrupted pause; thawing it");
                Resumed thawed;
                try {
                    thawed = driverOf(s).resume(s.id());
                } catch (RuntimeException e) {
                    LOG.log(System.Logger.Level.WARNING, "thawing sandbox " + s.id() + " failed; recording it as paused"
                            + " with its memory", e);
                    markPaused(s, live.address(), true);
                    return;
                }
                if (thawed.memoryKept()) {
                    adoptRunning(s, thawed.instance());
                } else {
                    coldBootRunning(s.withMemoryKept(false));
                }
            }
            case STOPPED -> coldBootRunning(s);
        }
    }

    /**
     * A running row whose processes are gone but whose files remain: cold-boots it with its end time, memory not
     * kept (getInfo and the {@code resumed} event say so); if that fails the row becomes paused, resumable later.
     */
    private void coldBootRunning(SandboxRecord s) {
        LOG.log(System.Logger.Level.INFO, "sandbox " + s.id() + " was running but its processes are gone (host reboot"
                + " or interrupted pause); cold-booting it from its files, its memory was not kept");
        SandboxRecord stopped = s.withState(SandboxState.PAUSED).withMemoryKept(false).withAddress(null);
        try {
            resumeLocked(stopped, s.endAt(), false);
        } catch (RuntimeException e) {
            LOG.log(System.Logger.Level.WARNING, "cold-booting sandbox " + s.id() + " failed; recording it as paused"
                    + " (without memory), connect to retry", e);
            markPaused(s, null, false);
        }
    }

    private void adoptRunning(SandboxRecord s, SandboxInstance live) {
        String address = live.address().getHostAddress();
        if (!address.equals(s.address())) store.updateSandbox(s.id(), SandboxState.RUNNING, address, s.endAt(), s.memoryKept());
        routes.put(s.id(), routeOf(s.withAddress(address)));
        arm(s.id(), s.endAt()); // an end time already past fires at once
    }

    private void markPaused(SandboxRecord s, InetAddress address, boolean memoryKept) {
        SandboxRecord paused = s.withState(SandboxState.PAUSED).withMemoryKept(memoryKept)
                .withAddress(address == null ? null : address.getHostAddress());
        store.updateSandbox(s.id(), SandboxState.PAUSED, paused.address(), s.endAt(), memoryKept);
        routes.put(s.id(), routeOf(paused));
        event(s.id(), "sandbox.lifecycle.paused", memoryKept(memoryKept));
    }

    private void recoverPaused(SandboxRecord s, SandboxInstance live) {
        boolean kept = s.memoryKept();
        switch (live.state()) {
            case RUNNING -> {
                LOG.log(System.Logger.Level.INFO, "sandbox " + s.id() + " was left running by an interrupted resume; pausing it"
                        + (kept ? "" : " without memory, as it was"));
                driverOf(s).pause(s.id(), kept);
            }
            case FROZEN -> {
                if (!kept) {
                    LOG.log(System.Logger.Level.INFO, "sandbox " + s.id() + " was left frozen by an interrupted pause"
                            + " without memory; stopping it");
                    driverOf(s).pause(s.id(), false);
                }
            }
            case STOPPED -> {
                if (kept) {
                    LOG.log(System.Logger.Level.WARNING, "paused sandbox " + s.id() + " lost its memory (host reboot);"
                            + " its files are kept and resuming it cold-boots it");
                    kept = false;
                }
            }
        }
        String address = kept && live.address() != null ? live.address().getHostAddress() : null;
        if (kept != s.memoryKept() || !java.util.Objects.equals(address, s.address())) {
            store.updateSandbox(s.id(), SandboxState.PAUSED, address, s.endAt(), kept);
        }
        routes.put(s.id(), routeOf(s.withMemoryKept(kept).withAddress(address)));
    }

    // ---- helpers ----

    private <T> T locked(String id, Supplier<T> work) {
        ReentrantLock lock = locks.computeIfAbsent(id, k -> new ReentrantLock());
        lock.lock();
        try {
            return LogContext.forSandbox(id, work); // the server's log lines name the sandbox
        } catch (SandboxNotFound e) {
            dropLockIfGone(id); // an unknown id named once must not keep a lock forever
            throw e;
        } finally {
            lock.unlock();
        }
    }

    /**
     * Forgets the lock of a sandbox that has no row (any more), if the calling thread holds it. A thread already
     * waiting for it still gets it and then finds no row, as it would have anyway.
     */
    private void dropLockIfGone(String id) {
        locks.computeIfPresent(id, (k, lock) -> lock.isHeldByCurrentThread() ? null : lock);
    }

    /** How many sandbox locks exist (tests: unknown ids must not leave any). */
    int lockCount() {
        return locks.size();
    }

    private void event(String id, String type, String data) {
        try {
            events.record(id, type, data);
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
