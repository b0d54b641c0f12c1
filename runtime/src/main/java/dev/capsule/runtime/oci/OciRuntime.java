package dev.capsule.runtime.oci;

import dev.capsule.runtime.ConsoleLog;
import dev.capsule.runtime.ConsoleOutput;
import dev.capsule.runtime.NetworkPolicy;
import dev.capsule.runtime.ResourceUsage;
import dev.capsule.runtime.Resources;
import dev.capsule.runtime.Resumed;
import dev.capsule.runtime.RuntimeFailure;
import dev.capsule.runtime.SandboxInstance;
import dev.capsule.runtime.SandboxRuntime;
import dev.capsule.runtime.SandboxSpec;
import dev.capsule.runtime.SnapshotLayer;
import dev.capsule.runtime.UnknownTemplate;
import dev.capsule.runtime.bundle.RuntimeBundle;
import dev.capsule.runtime.cgroup.CgroupStats;
import dev.capsule.runtime.envd.EnvdHealth;
import dev.capsule.runtime.host.DiskUsage;
import dev.capsule.runtime.host.Command;
import dev.capsule.runtime.host.HostLock;
import dev.capsule.runtime.host.Mounts;
import dev.capsule.runtime.host.Processes;
import dev.capsule.runtime.layer.Layer;
import dev.capsule.runtime.layer.LayerStore;
import dev.capsule.runtime.network.SandboxNetwork;
import dev.capsule.runtime.network.SandboxNetworks;
import dev.capsule.runtime.template.Template;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Pattern;

/**
 * The {@code oci} driver: each sandbox is a runc container (overlay over the template, Docker-like confinement,
 * cgroup limits; see {@link RuncRuntime}) in its own network namespace ({@link SandboxNetworks}), with envd
 * started by the bundle's init as its only command.
 *
 * <p>Everything it knows is on disk or in the kernel, so a new instance (a restarted server) finds the sandboxes
 * of the previous one: runc's state, {@code <data>/sandboxes/<id>/sandbox.json} ({@link SandboxManifest}) and the
 * network namespaces. A sandbox is running or frozen while runc runs or has paused its container; with its
 * sandbox.json but no running container it is stopped (paused without memory, its init died, or a host reboot
 * emptied runc's state, the mounts and the namespaces under /run): only its files are kept and {@link #resume}
 * cold-boots it from them. The constructor re-adopts the networks of running and frozen sandboxes, releases what
 * stopped ones still hold, and removes the networks of sandboxes that are gone; {@link #removeOrphans} removes the
 * sandboxes the server does not know. One process per runc root and network uses them: the constructor claims both
 * with a {@link HostLock}, so a second server on this host fails to start instead of adopting and removing the
 * first one's sandboxes.
 *
 * <p>Sandboxes start from template {@value #BASE_TEMPLATE} (built, minutes, the first time it is needed or by
 * {@link #prepare()}) or from a snapshot taken on this host: a read-only layer of another sandbox's writes in a
 * {@link LayerStore}, stacked between the template and the new sandbox's own writable layer.
 */
public final class OciRuntime implements SandboxRuntime {

    public static final String NAME = "oci";
    public static final String BASE_TEMPLATE = "base";
    /** envd's arguments; --forward-loopback makes servers on the sandbox's 127.0.0.1 reachable, as in E2B. */
    public static final List<String> ENVD_ARGS = List.of("--port", String.valueOf(SandboxInstance.ENVD_PORT),
            "--default-user", "user", "--forward-loopback");

    private static final System.Logger LOG = System.getLogger(OciRuntime.class.getName());
    private static final Pattern SANDBOX_ID = Pattern.compile("[a-z0-9][a-z0-9-]{0,62}");
    private static final long COPY_TIMEOUT_SECONDS = 3600;
    /** Memory reported as a sandbox's total when its cgroup has no limit. */
    private static final long HOST_MEMORY = hostMemory();

    private final OciRuntimeConfig config;
    /** This process's claim on the runc root and the network, released by close(). */
    private final List<HostLock> claims;
    private final RuncRuntime runc;
    private final LayerStore layers;
    private final SandboxImages images;
    private final SandboxNetworks networks;
    /** Ids this instance is starting now: not taken by another start, not listed, not orphans. */
    private final Set<String> starting = ConcurrentHashMap.newKeySet();
    private final DiskUsage disks = new DiskUsage();

    /**
     * Opens the driver on this host and re-adopts what a previous instance left: networks of running and frozen
     * sandboxes are kept with their recorded policy, stopped sandboxes release what they still hold, networks of
     * anything else are removed, and so are snapshot layers that an interrupted snapshot left half-written.
     *
     * @throws RuntimeFailure the host's networking could not be brought to a known state
     */
    public OciRuntime(OciRuntimeConfig config) {
        this.config = config;
        this.claims = claimHost(config);
        CriuProbe.onThisHost(); // probed and logged once per process, at start-up rather than on a first /health
        this.runc = new RuncRuntime(config.dataDir(), config.runcRoot(), "runc", config.cgroupParent());
        this.layers = new LayerStore(config.dataDir().resolve("layers"), this::layersInUse);
        this.images = new SandboxImages(config, layers);
        try {
            this.networks = SandboxNetworks.open(config.network());
            Map<String, NetworkPolicy> live = new TreeMap<>();
            for (String id : runc.list()) {
                Optional<SandboxManifest> manifest = manifest(id);
                Optional<ContainerState.Status> status = statusIfReadable(id);
                if (manifest.isEmpty() || status.isEmpty()) {
                    continue; // half-created or unreadable: its network goes, removeOrphans removes the rest
                }
                if (runs(status.get())) {
                    live.put(id, manifest.get().network());
                } else {
                    settleStopped(id);
                }
            }
            networks.adopt(live); // the networks of stopped sandboxes go: a cold boot makes a new one
        } catch (RuntimeException e) {
            claims.forEach(HostLock::close);
            throw new RuntimeFailure("cannot open the oci runtime on this host (runc root " + config.runcRoot()
                    + ", network " + config.network().name() + "): " + e.getMessage(), e);
        }
        try {
            layers.recover();
        } catch (RuntimeException e) {
            LOG.log(System.Logger.Level.WARNING, "could not remove what interrupted snapshots left in "
                    + layers.dir() + "; it is retried at the next start", e);
        }
    }

    /**
     * Claims the runc root and the sandbox network for this process: a second server on the same ones would adopt
     * and remove this one's sandboxes.
     */
    private static List<HostLock> claimHost(OciRuntimeConfig config) {
        // Inside the runc root (runc lists directories only), so it goes when the root goes.
        Path runcLock = config.runcRoot().resolve(".capsule.lock");
        Path networkLock = config.network().runDirectory().resolve("network-" + config.network().name() + ".lock");
        return HostLock.claimAll(List.of(runcLock, networkLock), file -> "another Capsule server on this host"
                + " already uses runc root " + config.runcRoot() + " and network '" + config.network().name() + "' ("
                + file + " is locked); stop it, or give this server its own CAPSULE_RUNC_ROOT, CAPSULE_NETWORK_NAME,"
                + " CAPSULE_NETWORK_INTERFACE_PREFIX and CAPSULE_NETWORK_POOL");
    }

    @Override
    public String name() {
        return NAME;
    }

    public OciRuntimeConfig config() {
        return config;
    }

    /** Builds (first time: minutes) or finds the base template and the runtime bundle, so start() need not. */
    public void prepare() {
        images.template(BASE_TEMPLATE);
        images.bundle();
    }

    @Override
    public SandboxInstance start(SandboxSpec spec) {
        String id = spec.sandboxId();
        if (id == null || !SANDBOX_ID.matcher(id).matches()) {
            throw new RuntimeFailure("sandbox id must be 1-63 lower-case letters, digits or '-' starting with a "
                    + "letter or digit (it is the hostname), got " + id);
        }
        Rootfs rootfs = images.rootfs(spec.templateId());
        RuntimeBundle runtimeBundle = images.bundle();
        if (!starting.add(id)) {
            throw new RuntimeFailure("sandbox " + id + " is already being started; choose another id");
        }
        // pinned until the sandbox's record names its layers (or the start failed)
        try (LayerStore.Pin pin = layers.pin(rootfs.layerNames())) {
            if (Files.exists(runc.directory(id).dir()) || networks.find(id).isPresent()) {
                throw new RuntimeFailure("sandbox " + id + " already exists on this host; choose another id");
            }
            Template template = rootfs.template();
            SandboxManifest manifest = new SandboxManifest(id, spec.templateId(), template.name(), template.hash(),
                    rootfs.layerNames(), spec.resources() == null ? rootfs.resources() : spec.resources(),
                    Instant.now(), spec.network() == null ? NetworkPolicy.OPEN : spec.network());
            return boot(manifest, rootfs, runtimeBundle, true);
        } finally {
            starting.remove(id);
        }
    }

    /**
     * Gives the sandbox a network, runs its container and waits for envd: on its files kept from a previous run
     * ({@code fresh} false: a cold boot) or on new ones. On failure everything this call took is released again;
     * a cold-booted sandbox keeps its files and stays stopped.
     */
    private SandboxInstance boot(SandboxManifest manifest, Rootfs rootfs, RuntimeBundle runtimeBundle,
                                 boolean fresh) {
        String id = manifest.sandboxId();
        SandboxNetwork network = null;
        Sandbox container = null;
        boolean interrupted = false;
        try {
            Resources resources = manifest.resources();
            ResourceLimits limits = new ResourceLimits(resources.cpuCount(), resources.memoryMB(), config.pidsMax(),
                    resources.diskSizeMB());
            network = networks.allocate(id, manifest.network());
            ContainerSpec containerSpec = new ContainerSpec(id, rootfs.template(), rootfs.layerDirs(), runtimeBundle,
                    Optional.of(network.namespacePath()), RuntimeBundle.envdCommand(ENVD_ARGS),
                    Map.of(), limits, network.nameservers());
            container = fresh ? runc.start(containerSpec) : runc.restart(containerSpec);
            if (fresh) {
                manifest.write(container.directory());
            }
            Sandbox started = container;
            EnvdHealth.await(id, network.address(), config.startTimeout(), () -> Processes.alive(started.pid()),
                    () -> RuncRuntime.logTail(started.directory()));
            return new SandboxInstance(id, manifest.templateId(), network.address(), manifest.startedAt());
        } catch (RuntimeException | InterruptedException e) {
            // Cleanup runs host commands; an interrupt flag would make each of them fail at once.
            interrupted = e instanceof InterruptedException || Thread.interrupted();
            RuntimeFailure failure = e instanceof RuntimeFailure f ? f : new RuntimeFailure("cannot "
                    + (fresh ? "start" : "cold-boot") + " sandbox " + id + ": " + describe(e), e);
            if (container != null) {
                try {
                    if (fresh) {
                        runc.delete(id);
                    } else {
                        runc.stop(id);
                    }
                } catch (RuntimeException cleanup) {
                    failure.addSuppressed(cleanup);
                }
            }
            if (network != null) {
                try {
                    networks.release(id);
                } catch (RuntimeException cleanup) {
                    failure.addSuppressed(cleanup);
                }
            }
            throw failure;
        } finally {
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
    }

    private static String describe(Throwable e) {
        return e instanceof InterruptedException ? "interrupted" : e.getMessage();
    }

    /**
     * Replaces the sandbox's egress policy: at once while it runs or is frozen; a stopped sandbox has no network,
     * so the policy is recorded and its cold boot applies it.
     */
    @Override
    public void applyNetworkPolicy(String sandboxId, NetworkPolicy policy) {
        SandboxManifest manifest = existing(sandboxId, "apply the policy to");
        if (runs(status(sandboxId))) {
            try {
                networks.updatePolicy(sandboxId, policy);
            } catch (RuntimeException e) {
                throw new RuntimeFailure("cannot apply the network policy of sandbox " + sandboxId + ": "
                        + e.getMessage(), e);
            }
        }
        // recorded after it holds, so a restarted server or a cold boot re-applies the policy that was in force
        manifest.withNetwork(policy).write(runc.directory(sandboxId));
    }

    @Override
    public NetworkPolicy networkPolicy(String sandboxId) {
        return existing(sandboxId, "read the network policy of").network();
    }

    /**
     * What {@link #pauseMode()} answers: memory stays in RAM under a frozen cgroup. CRIU cannot checkpoint on the
     * hosts we measured (OCI-NOTES.md), so hibernating to disk is not built; {@link CriuProbe} says, in
     * {@link #pauseModeReason()}, what CRIU does on this host.
     */
    public static final String PAUSE_MODE = "freeze";

    @Override
    public String pauseMode() {
        return PAUSE_MODE;
    }

    @Override
    public String pauseModeReason() {
        return CriuProbe.onThisHost().reason();
    }

    /**
     * Freezes the sandbox's cgroup (runc pause: the v1 freezer or cgroup.freeze on v2), then flushes its upper
     * dir's file system (syncfs). Freezing first means no write can land after the flush, so everything the
     * sandbox wrote before the pause is on disk when this returns. If the flush fails a sandbox this call froze is
     * thawed again. Without {@code keepMemory} the frozen sandbox is then stopped: its processes killed, its
     * container, cgroup, overlay and disk mounts and network released, its files kept. A stopped sandbox stays as
     * it is.
     */
    @Override
    public void pause(String sandboxId, boolean keepMemory) {
        existing(sandboxId, "pause");
        ContainerState.Status status = status(sandboxId);
        if (!runs(status)) {
            return; // stopped already: nothing in memory to keep or release
        }
        freezeAndFlush(sandboxId, status);
        if (!keepMemory) {
            stopKeepingFiles(sandboxId);
        }
    }

    /** Freezes the sandbox unless it is frozen, and flushes its files; returns whether this call froze it. */
    private boolean freezeAndFlush(String sandboxId, ContainerState.Status status) {
        boolean froze = status == ContainerState.Status.RUNNING;
        if (froze) {
            try {
                runc.pause(sandboxId);
            } catch (RuntimeException e) {
                throw new RuntimeFailure("cannot freeze sandbox " + sandboxId + ": " + e.getMessage(), e);
            }
        }
        try {
            flush(sandboxId);
        } catch (RuntimeFailure failure) {
            if (froze) {
                thawAfterFailure(sandboxId, failure);
            }
            throw failure;
        }
        return froze;
    }

    /** Makes everything the sandbox wrote durable: syncfs of the file system that holds its upper dir. */
    private void flush(String sandboxId) {
        Path upper = runc.directory(sandboxId).upper();
        Command.Result flushed = Command.run(List.of("sync", "-f", upper.toString()), 60);
        if (!flushed.ok()) {
            throw new RuntimeFailure("cannot flush the files of sandbox " + sandboxId + " (" + upper + ") to disk: "
                    + flushed.stderr().strip());
        }
    }

    private void thawAfterFailure(String sandboxId, RuntimeFailure failure) {
        try {
            runc.resume(sandboxId);
        } catch (RuntimeException e) {
            failure.addSuppressed(e);
        }
    }

    /** Kills the sandbox's processes and releases all but its files: container, cgroup, overlay mount, network. */
    private void stopKeepingFiles(String sandboxId) {
        try {
            runc.stop(sandboxId);
        } catch (RuntimeException e) {
            throw new RuntimeFailure("cannot stop sandbox " + sandboxId + " (its files are on disk): "
                    + e.getMessage() + "; pause or destroy it again", e);
        }
        try {
            networks.release(sandboxId);
        } catch (RuntimeException e) {
            throw new RuntimeFailure("sandbox " + sandboxId + " is stopped but its network could not be released: "
                    + e.getMessage() + "; resuming or destroying it retries", e);
        }
    }

    /**
     * After a restart, a stopped sandbox may still hold a dead container (its init died), a cgroup or its overlay
     * mount (a crash in the middle of a pause): released here, so that stopped means only its files are kept. A
     * failure is logged, not thrown: resuming or destroying the sandbox retries.
     */
    private void settleStopped(String sandboxId) {
        try {
            runc.stop(sandboxId);
        } catch (RuntimeException e) {
            LOG.log(System.Logger.Level.WARNING, "stopped sandbox " + sandboxId + " still holds a container or "
                    + "mount that could not be released; resuming or destroying it retries", e);
        }
    }

    /**
     * Thaws a frozen sandbox, or cold-boots a stopped one from its files: the template and layers it was made
     * from, its own writes, its resources and its recorded network policy, in a new network (its address may
     * change). A failed cold boot leaves it stopped with nothing taken.
     */
    @Override
    public Resumed resume(String sandboxId) {
        SandboxManifest manifest = existing(sandboxId, "resume");
        ContainerState.Status status = status(sandboxId);
        if (status == ContainerState.Status.RUNNING) {
            return new Resumed(instance(sandboxId, SandboxInstance.State.RUNNING), true);
        }
        if (status == ContainerState.Status.PAUSED) {
            try {
                runc.resume(sandboxId);
            } catch (RuntimeException e) {
                throw new RuntimeFailure("cannot thaw sandbox " + sandboxId + ": " + e.getMessage(), e);
            }
            return new Resumed(instance(sandboxId, SandboxInstance.State.RUNNING), true);
        }
        return new Resumed(coldBoot(manifest), false);
    }

    private SandboxInstance coldBoot(SandboxManifest manifest) {
        String id = manifest.sandboxId();
        Rootfs rootfs = images.rootfs(manifest);
        RuntimeBundle runtimeBundle = images.bundle();
        if (!starting.add(id)) {
            throw new RuntimeFailure("sandbox " + id + " is already being started; wait for it");
        }
        try {
            try {
                // what a crash or a dead init may have left of the previous run
                runc.stop(id);
                networks.release(id);
            } catch (RuntimeException e) {
                throw new RuntimeFailure("cannot cold-boot sandbox " + id + ": what its previous run left could not"
                        + " be released: " + e.getMessage(), e);
            }
            return boot(manifest, rootfs, runtimeBundle, false);
        } finally {
            starting.remove(id);
        }
    }

    /**
     * Copies the sandbox's writable layer (its upper dir: its writes, whiteouts of what it deleted, opaque
     * directories, with owners, modes, extended attributes, links and holes, as {@code cp -a} as root does) into a
     * new layer over the layers the sandbox itself stacks. A running sandbox is frozen and flushed for the copy
     * and thawed after it, whatever happened; a frozen or stopped one stays as it is.
     */
    @Override
    public SnapshotLayer snapshot(String sandboxId, String snapshotId) {
        SandboxManifest manifest = existing(sandboxId, "snapshot");
        if (snapshotId == null || snapshotId.isBlank() || BASE_TEMPLATE.equals(snapshotId)) {
            throw new RuntimeFailure("'" + snapshotId + "' cannot name a snapshot: it is empty or a template's name;"
                    + " choose another id");
        }
        Rootfs rootfs = images.rootfs(manifest);
        requireStackable(sandboxId, rootfs);
        Layer layer = layers.create(snapshotId, new LayerStore.Origin(rootfs.template().name(),
                rootfs.template().hash(), rootfs.layerNames(), manifest.resources()), fs -> copyFiles(sandboxId, fs));
        return new SnapshotLayer(snapshotId, layer.sizeBytes(), false);
    }

    /** Refuses a snapshot whose layers one more overlay mount could not stack (a page of mount options). */
    private void requireStackable(String sandboxId, Rootfs rootfs) {
        List<Path> lowers = new ArrayList<>();
        lowers.add(layers.fs("0".repeat(LayerStore.NAME_LENGTH)));
        lowers.addAll(rootfs.layerDirs());
        lowers.add(rootfs.template().rootfs());
        SandboxDirectory dir = runc.directory(sandboxId);
        if (Mounts.overlayOptions(lowers, dir.upper(), dir.work()).length() > Mounts.MAX_MOUNT_OPTIONS) {
            throw new RuntimeFailure("sandbox " + sandboxId + " rests on " + rootfs.layers().size() + " snapshot "
                    + "layers: sandboxes from a snapshot of it could not stack one more; snapshot a sandbox made from"
                    + " a shallower snapshot, or configure a shorter data directory path");
        }
    }

    private void copyFiles(String sandboxId, Path target) {
        ContainerState.Status status = status(sandboxId);
        if (!runs(status)) {
            runc.withFiles(sandboxId, () -> copyUpper(sandboxId, target));
            return;
        }
        boolean froze = freezeAndFlush(sandboxId, status);
        try {
            copyUpper(sandboxId, target);
        } catch (RuntimeFailure failure) {
            if (froze) {
                thawAfterFailure(sandboxId, failure);
            }
            throw failure;
        }
        if (froze) {
            try {
                runc.resume(sandboxId);
            } catch (RuntimeException e) {
                throw new RuntimeFailure("cannot thaw sandbox " + sandboxId + " after copying its files (the "
                        + "snapshot was not stored): " + e.getMessage() + "; resume the sandbox", e);
            }
        }
    }

    private void copyUpper(String sandboxId, Path target) {
        Path upper = runc.directory(sandboxId).upper();
        Command.Result copied;
        try {
            copied = Command.run(List.of("cp", "-a", "-T", upper.toString(), target.toString()), COPY_TIMEOUT_SECONDS);
        } catch (RuntimeException e) {
            throw new RuntimeFailure("cannot copy the files of sandbox " + sandboxId + ": " + e.getMessage(), e);
        }
        if (!copied.ok()) {
            throw new RuntimeFailure("cannot copy the files of sandbox " + sandboxId + " (" + upper + "): "
                    + copied.stderr().strip());
        }
    }

    /**
     * Deletes the snapshot's id at once; its layer's files go when nothing uses them any more (no sandbox started
     * from it, no snapshot taken over it).
     */
    @Override
    public void deleteSnapshot(String snapshotId) {
        if (snapshotId != null && !snapshotId.isBlank()) {
            layers.delete(snapshotId);
        }
    }

    /** The sandbox as recorded on disk and in its network, in {@code state}. */
    private SandboxInstance instance(String id, SandboxInstance.State state) {
        SandboxManifest manifest = existing(id, "describe");
        SandboxNetwork network = networks.find(id).orElseThrow(() -> new RuntimeFailure("sandbox " + id
                + " has no network on this host"));
        return new SandboxInstance(id, manifest.templateId(), network.address(), manifest.startedAt(), state);
    }

    /** runc's status of the sandbox; STOPPED when runc does not know it. */
    private ContainerState.Status status(String id) {
        try {
            return runc.state(id).map(ContainerState::status).orElse(ContainerState.Status.STOPPED);
        } catch (RuntimeException e) {
            throw new RuntimeFailure("cannot read the state of sandbox " + id + ": " + e.getMessage(), e);
        }
    }

    /**
     * From the sandbox's cgroup (CPU time, memory, the CPU quota) and its upper dir ({@link DiskUsage}: the
     * writable layer's own file system if it has one, else a bounded walk; total is the size of the file system
     * the layer is on). Empty when it is frozen or gone.
     */
    @Override
    public Optional<ResourceUsage> usage(String sandboxId) {
        Optional<CgroupStats> stats = CgroupStats.read(runc.cgroupsPath(requireId(sandboxId)));
        if (stats.isEmpty() || stats.get().frozen()) {
            return Optional.empty();
        }
        DiskUsage.Measured disk = disks.of(runc.directory(sandboxId).upper());
        if (disk == null) {
            return Optional.empty();
        }
        CgroupStats s = stats.get();
        long memTotal = s.memoryLimit() > 0 ? Math.min(s.memoryLimit(), HOST_MEMORY) : HOST_MEMORY;
        return Optional.of(new ResourceUsage(Instant.now(),
                s.cpuQuota() > 0 ? s.cpuQuota() : Runtime.getRuntime().availableProcessors(), s.cpuNanos(),
                s.workingSet(), memTotal, s.cacheBytes(), disk.used(), disk.total()));
    }

    /** The sandbox's console.log (its init's and envd's stdout and stderr, see {@link RuncRuntime}). */
    @Override
    public Optional<ConsoleOutput> console(String sandboxId, long from, int maxBytes) {
        return ConsoleLog.read(runc.directory(requireId(sandboxId)).log(), from, maxBytes);
    }

    /** runc's status of the sandbox (STOPPED when runc does not know it), or empty when runc cannot tell. */
    private Optional<ContainerState.Status> statusIfReadable(String id) {
        try {
            return Optional.of(status(id));
        } catch (RuntimeFailure e) {
            return Optional.empty();
        }
    }

    /** Whether its processes exist: running, or frozen by a pause with memory. */
    private static boolean runs(ContainerState.Status status) {
        return status == ContainerState.Status.RUNNING || status == ContainerState.Status.PAUSED;
    }

    /** As the interface says; layers deleted earlier that only this sandbox used go with it. */
    @Override
    public void destroy(String sandboxId) {
        requireId(sandboxId);
        Optional<SandboxManifest> manifest = manifest(sandboxId);
        RuntimeFailure failure = null;
        try {
            runc.delete(sandboxId);
        } catch (RuntimeException e) {
            failure = new RuntimeFailure("cannot remove the container of sandbox " + sandboxId + ": "
                    + e.getMessage(), e);
        }
        try {
            networks.release(sandboxId);
        } catch (RuntimeException e) {
            if (failure == null) {
                failure = new RuntimeFailure("cannot remove the network of sandbox " + sandboxId + ": "
                        + e.getMessage(), e);
            } else {
                failure.addSuppressed(e);
            }
        }
        // a half-created sandbox (no record) may have stacked layers as well
        if (failure == null && (manifest.isEmpty() || !manifest.get().layers().isEmpty())) {
            try {
                layers.collectGarbage();
            } catch (RuntimeException e) {
                failure = new RuntimeFailure("sandbox " + sandboxId + " is destroyed but the snapshot layers only it"
                        + " used could not be removed: " + e.getMessage(), e);
            }
        }
        if (failure != null) {
            throw failure;
        }
    }

    /**
     * Running and frozen sandboxes with their network, and stopped ones (sandbox.json but no running container)
     * without an address. A running container without its sandbox.json or its network is not usable and not listed.
     */
    @Override
    public List<SandboxInstance> discover() {
        List<SandboxInstance> found = new ArrayList<>();
        for (String id : runc.list()) {
            if (starting.contains(id)) {
                continue;
            }
            Optional<SandboxManifest> manifest = manifest(id);
            Optional<ContainerState.Status> status = statusIfReadable(id);
            if (manifest.isEmpty() || status.isEmpty()) {
                continue;
            }
            SandboxManifest m = manifest.get();
            if (!runs(status.get())) {
                found.add(new SandboxInstance(id, m.templateId(), null, m.startedAt(), SandboxInstance.State.STOPPED));
                continue;
            }
            networks.find(id).ifPresent(network -> found.add(new SandboxInstance(id, m.templateId(),
                    network.address(), m.startedAt(), status.get() == ContainerState.Status.PAUSED
                    ? SandboxInstance.State.FROZEN : SandboxInstance.State.RUNNING)));
        }
        return found;
    }

    /**
     * As {@link SandboxRuntime#removeOrphans}, and also removes what half-created sandboxes left: a container
     * directory without sandbox.json, a network without a container. Stopped sandboxes in {@code keep} stay.
     */
    @Override
    public List<String> removeOrphans(Set<String> keep) {
        Set<String> usable = new TreeSet<>();
        discover().forEach(instance -> usable.add(instance.sandboxId()));
        Set<String> candidates = new TreeSet<>(runc.list());
        networks.list().forEach(network -> candidates.add(network.sandboxId()));
        List<String> removed = new ArrayList<>();
        for (String id : candidates) {
            if (starting.contains(id) || (keep.contains(id) && usable.contains(id))) {
                continue;
            }
            destroy(id);
            removed.add(id);
        }
        return removed;
    }

    /** Releases this process's claim on the runc root and network; sandboxes keep running, their state is on disk. */
    @Override
    public void close() {
        networks.close();
        claims.forEach(HostLock::close);
    }

    // --- state on disk ------------------------------------------------------------------------------------

    /** The layers the sandboxes on this host stack, as their records say. */
    private Set<String> layersInUse() {
        Set<String> used = new HashSet<>();
        for (String id : runc.list()) {
            manifest(id).ifPresent(manifest -> used.addAll(manifest.layers()));
        }
        return used;
    }

    private Optional<SandboxManifest> manifest(String id) {
        return SandboxManifest.read(runc.directory(id), Resources.DEFAULT);
    }

    /** The sandbox's record; fails saying it does not exist (so there is nothing to {@code action}). */
    private SandboxManifest existing(String id, String action) {
        requireId(id);
        return manifest(id).orElseThrow(() -> new RuntimeFailure("sandbox " + id + " does not exist on this host;"
                + " there is nothing to " + action));
    }

    private static long hostMemory() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/meminfo"))) {
                if (line.startsWith("MemTotal:")) {
                    return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
                }
            }
        } catch (IOException | NumberFormatException e) {
            // fall through: no better figure than the JVM's own view
        }
        return Runtime.getRuntime().maxMemory();
    }

    private static String requireId(String id) {
        if (id == null || !SANDBOX_ID.matcher(id).matches()) {
            throw new RuntimeFailure("not a sandbox id: " + id);
        }
        return id;
    }
}
